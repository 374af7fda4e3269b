#!/usr/bin/python3
"""Minimal SMTP capture server for integration tests.

Every accepted message is stored in MAILDIR as

    <nanosecond-timestamp>-<counter>.eml   the raw message bytes, exactly as received
    <nanosecond-timestamp>-<counter>.json  the envelope:
        {"mail_from": ..., "rcpt_tos": [...], "received_at_ns": ..., "auth_login": ...}

Both files are written under a temporary hidden name and then renamed. The .json
is renamed BEFORE the .eml, so a reader that sees a .eml file can rely on its
.json sidecar being complete already. Temporary files start with "." and end
in ".tmp", so globbing for "*.eml" never picks up a partially written message.

Requires aiosmtpd (Debian: python3-aiosmtpd) and is meant to run under
/usr/bin/python3. Runs until SIGTERM or SIGINT.

Usage:
    smtp_capture.py --listen 127.0.0.1:2525 --maildir /tmp/mail [--fail-first N]
                    [--ready-file PATH]
"""

import argparse
import asyncio
import itertools
import json
import os
import signal
import sys
import time
import warnings

from aiosmtpd.smtp import SMTP, AuthResult


# aiosmtpd itself still sets the deprecated Session.login_data after AUTH.
warnings.filterwarnings("ignore", message="Session.login_data is deprecated")


def log(msg):
    print(time.strftime("%Y-%m-%dT%H:%M:%S"), msg, file=sys.stderr, flush=True)


def atomic_write(directory, name, data):
    tmp = os.path.join(directory, "." + name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, os.path.join(directory, name))


def decode(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


class CaptureHandler:
    def __init__(self, maildir, fail_first):
        self.maildir = maildir
        # Number of DATA commands still to be refused with a transient (4xx)
        # error. Lets tests inject a temporary SMTP failure and check that the
        # sender retries instead of dropping the alert.
        self.fail_remaining = fail_first
        self.counter = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        if self.fail_remaining > 0:
            self.fail_remaining -= 1
            log(
                "refusing DATA with 451 (injected failure, %d more to refuse) "
                "from=%r to=%r" % (self.fail_remaining, envelope.mail_from, envelope.rcpt_tos)
            )
            return "451 4.3.0 Try again later"

        received_at_ns = time.time_ns()
        stem = "%d-%06d" % (received_at_ns, next(self.counter))
        raw = envelope.original_content
        if raw is None:
            raw = envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", errors="surrogateescape")

        login = getattr(session.auth_data, "login", None) if session.authenticated else None
        meta = {
            "mail_from": decode(envelope.mail_from),
            "rcpt_tos": [decode(r) for r in envelope.rcpt_tos],
            "received_at_ns": received_at_ns,
            "auth_login": decode(login) if login is not None else None,
        }
        atomic_write(self.maildir, stem + ".json", json.dumps(meta, indent=2).encode() + b"\n")
        atomic_write(self.maildir, stem + ".eml", raw)
        log("stored %s.eml (%d bytes) from=%r to=%r" % (stem, len(raw), meta["mail_from"], meta["rcpt_tos"]))
        return "250 OK"


def accept_any_auth(server, session, envelope, mechanism, auth_data):
    # Any credentials are accepted; the login name ends up in the .json sidecar.
    return AuthResult(success=True, auth_data=auth_data)


def parse_listen(value):
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % value)
    return host.strip("[]"), int(port)


async def serve(args):
    os.makedirs(args.maildir, exist_ok=True)
    handler = CaptureHandler(args.maildir, args.fail_first)
    host, port = args.listen
    loop = asyncio.get_running_loop()

    def factory():
        return SMTP(
            handler,
            hostname="smtp-capture.test",
            enable_SMTPUTF8=True,
            # AUTH PLAIN/LOGIN is offered without TLS and any credentials are
            # accepted, so clients configured with a user and password work too.
            authenticator=accept_any_auth,
            auth_require_tls=False,
        )

    server = await loop.create_server(factory, host=host, port=port, reuse_address=True)
    bound = server.sockets[0].getsockname()
    log("listening on %s:%d, saving mail to %s, fail-first=%d" % (bound[0], bound[1], args.maildir, args.fail_first))
    if args.ready_file:
        atomic_write(
            os.path.dirname(os.path.abspath(args.ready_file)),
            os.path.basename(args.ready_file),
            ("%s:%d\n" % (bound[0], bound[1])).encode(),
        )

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log("shutting down")
    server.close()
    await server.wait_closed()


def main():
    p = argparse.ArgumentParser(description="SMTP server that saves every message to a directory.")
    p.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 2525), help="HOST:PORT (port 0 = any free port)")
    p.add_argument("--maildir", required=True, help="directory for <ns>-<n>.eml and <ns>-<n>.json files")
    p.add_argument(
        "--fail-first",
        type=int,
        default=0,
        metavar="N",
        help="answer '451 4.3.0 Try again later' to the first N DATA commands (transient failure injection)",
    )
    p.add_argument("--ready-file", help="once listening, write the bound HOST:PORT into this file")
    asyncio.run(serve(p.parse_args()))


if __name__ == "__main__":
    main()
