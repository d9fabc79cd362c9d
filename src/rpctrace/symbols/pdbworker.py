"""Child process that turns one PDB into a symcache (see :mod:`rpctrace.symbols.pdb`).

    python -m rpctrace.symbols.pdbworker PDB OUT

writes OUT as: u32 length, that many bytes of JSON (identity, architecture, features), then the
symcache.  Exit status 0 on success, 3 with one line on stderr for a clean error (damaged PDB);
anything else (a signal, another status) is a failure of the reader on this file.
"""

from __future__ import annotations

import json
import struct
import sys


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m rpctrace.symbols.pdbworker PDB OUT\n")
        return 2
    from rpctrace.errors import InputError
    from rpctrace.symbols.pdb import build_symcache

    pdb, out = argv
    try:
        meta, data = build_symcache(pdb)
    except InputError as exc:
        sys.stderr.write(exc.message + "\n")
        return 3
    except MemoryError:
        sys.stderr.write("MemoryError\n")
        return 4
    head = json.dumps(meta).encode("utf-8")
    with open(out, "wb") as fh:
        fh.write(struct.pack("<I", len(head)))
        fh.write(head)
        fh.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
