#!/usr/bin/env python3
"""Writes a benchmark's result table into a document between its markers.

    bench/doc-table.py DOC NAME TABLE

Replaces everything between the lines `<!-- NAME:begin -->` and `<!-- NAME:end -->` of DOC
with the contents of the file TABLE; nothing else in DOC changes. Each marker must be in DOC
exactly once, as a line of its own (exit status 1 otherwise, DOC untouched).
"""

import os
import sys


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    doc, name, table_file = sys.argv[1:]
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    lines = open(doc, encoding="utf-8").read().split("\n")
    if lines.count(begin) != 1 or lines.count(end) != 1 or lines.index(begin) > lines.index(end):
        print(f"{doc} must contain the lines {begin!r} and {end!r} once each, in that order",
              file=sys.stderr)
        return 1
    table = open(table_file, encoding="utf-8").read().rstrip("\n").split("\n")
    out = lines[: lines.index(begin) + 1] + table + lines[lines.index(end):]
    with open(doc + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(out))
    os.replace(doc + ".tmp", doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
