"""Child process that turns PDBs into symcaches (see :mod:`rpctrace.symbols.pdb`).

    python -m rpctrace.symbols.pdbworker --serve

reads one JSON request per line on stdin, ``{"pdb": PATH, "out": FILE}``, writes the symcache
of PATH to FILE and answers one JSON line on stdout: ``{"status": "ok", "meta": {...}}`` (the
PDB's identity, architecture and features) or ``{"status": "error", "message": "..."}`` for a
PDB that does not read.  It ends at the end of its input.  A native crash on a hostile PDB ends
the process; the parent reports it and starts another.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def serve(stdin, stdout) -> int:
    from rpctrace.errors import InputError
    from rpctrace.symbols.pdb import build_symcache

    for line in stdin:
        answer: dict[str, Any]
        try:
            request = json.loads(line)
            pdb, out = request["pdb"], request["out"]
        except (ValueError, KeyError, TypeError):
            answer = {"status": "error", "message": "unreadable request"}
        else:
            try:
                meta, data = build_symcache(pdb)
                with open(out, "wb") as fh:
                    fh.write(data)
                answer = {"status": "ok", "meta": meta}
            except InputError as exc:
                answer = {"status": "error", "message": exc.message}
            except MemoryError:
                answer = {"status": "error", "message": "the PDB reader ran out of memory"}
            except OSError as exc:
                answer = {"status": "error", "message": f"cannot write the symbol cache: {exc.strerror or exc}"}
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()
    return 0


def main(argv: list[str]) -> int:
    if argv != ["--serve"]:
        sys.stderr.write("usage: python -m rpctrace.symbols.pdbworker --serve\n")
        return 2
    return serve(sys.stdin, sys.stdout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
