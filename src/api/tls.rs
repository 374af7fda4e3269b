//! (added) HTTPS on `http.listen` when `http.tls_cert` and `http.tls_key` are set: rustls with
//! the ring provider, TLS 1.2 and 1.3 only, HTTP/1.1 (with upgrades, for the change feed).
//!
//! Handshakes run in their own tasks, each bounded in time, so a slow or silent client never
//! holds up the others; finished connections are handed to `axum::serve` through [`TlsListener`],
//! which keeps its graceful shutdown and the peer address (login rate limits).

use crate::settings::Problem;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Longest TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// Handshakes in progress at most; further connections wait to be accepted.
const HANDSHAKES: usize = 256;

/// The server configuration of a PEM certificate chain and its private key; problems name
/// `http.tls_cert` or `http.tls_key` and the file.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, Vec<Problem>> {
    let certs = crate::tls::certificates(cert).map_err(|e| Problem::new("http.tls_cert", e));
    let private = crate::tls::private_key(key).map_err(|e| Problem::new("http.tls_key", e));
    let (certs, private) = match (certs, private) {
        (Ok(c), Ok(k)) => (c, k),
        (c, k) => return Err(c.err().into_iter().chain(k.err()).collect()),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let built = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| vec![Problem::new("http.tls_cert", e.to_string())])?
        .with_no_client_auth()
        .with_single_cert(certs, private);
    match built {
        Ok(mut c) => {
            c.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Arc::new(c))
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(vec![Problem::new(
            "http.tls_key",
            format!(
                "{} is not the key of the certificate in {}",
                key.display(),
                cert.display()
            ),
        )]),
        Err(e) => Err(vec![Problem::new(
            "http.tls_key",
            format!("{} with {}: {e}", key.display(), cert.display()),
        )]),
    }
}

/// TLS connections of a TCP listener, for `axum::serve`.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` until `stop`, handshaking with `config`.
    pub fn new(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
        stop: CancellationToken,
    ) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let slots = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                let (stream, peer) = tokio::select! {
                    () = stop.cancelled() => return,
                    r = tcp.accept() => match r {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!(error = %e, "HTTPS accept failed.");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed.");
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out."),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The acceptor stopped (shutdown): no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Two sets of certificates from `deploy/make-certs.sh` (two authorities, two keys).
    fn certs() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/make-certs.sh");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for d in [&a, &b] {
            let out = Command::new("bash").arg(&script).arg(d).output().unwrap();
            assert!(out.status.success(), "{out:?}");
        }
        (dir, a, b)
    }

    fn keys(r: Result<Arc<rustls::ServerConfig>, Vec<Problem>>) -> Vec<String> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .map(|p| format!("{p}"))
            .collect()
    }

    #[test]
    fn certificate_and_key_are_checked_with_their_keys() {
        let (_d, a, b) = certs();
        let cfg = server_config(&a.join("server.crt"), &a.join("server.key")).unwrap();
        assert_eq!(cfg.alpn_protocols, [b"http/1.1".to_vec()]);
        // Missing files.
        let p = keys(server_config(&a.join("nope.crt"), &a.join("nope.key")));
        assert!(
            p[0].starts_with("http.tls_cert: cannot read") && p[0].contains("nope.crt"),
            "{p:?}"
        );
        assert!(p[1].starts_with("http.tls_key: cannot read"), "{p:?}");
        // A key where the certificate should be, and the other way round.
        let p = keys(server_config(&a.join("server.key"), &a.join("server.crt")));
        assert!(p[0].contains("holds no PEM certificate"), "{p:?}");
        assert!(p[1].contains("holds no PEM private key"), "{p:?}");
        // The key of another certificate.
        let p = keys(server_config(&a.join("server.crt"), &b.join("server.key")));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("http.tls_key: ") && p[0].contains("is not the key of"),
            "{p:?}"
        );
        // The key's content never shows.
        let key = std::fs::read_to_string(b.join("server.key")).unwrap();
        let body: String = key.lines().nth(1).unwrap().to_owned();
        assert!(p.iter().all(|m| !m.contains(&body)));
    }

    #[test]
    fn http_settings_want_both_files_or_neither_and_links_become_https() {
        let (_d, a, _b) = certs();
        let mut h = crate::api::HttpConfig {
            tls_cert: Some(a.join("server.crt")),
            ..Default::default()
        };
        let p: Vec<String> = h.validate().into_iter().map(|p| p.key).collect();
        assert_eq!(p, ["http.tls_key"]);
        assert_eq!(h.public_url(), "http://127.0.0.1:8080");
        h.tls_key = Some(a.join("server.key"));
        assert!(h.validate().is_empty(), "{:?}", h.validate());
        assert_eq!(h.public_url(), "https://127.0.0.1:8080");
        h.tls_cert = None;
        let p: Vec<String> = h.validate().into_iter().map(|p| p.key).collect();
        assert_eq!(p, ["http.tls_cert"]);
    }
}
