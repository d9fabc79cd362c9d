"""Command line: wires sources, trace, analyses and renderers together; holds no logic of its own.

Each subcommand lives in :mod:`rpctrace.commands` (one module per command family, with a
``register(subparsers)``); this module only builds the parser and turns errors into one line.
Every user-facing error is one line on stderr and exit status 2 (bad input) - never a traceback.
Set RPCTRACE_DEBUG=1 to see tracebacks when reporting a bug in rpctrace itself.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from rpctrace import __version__
from rpctrace.commands import EXIT_INPUT, EXIT_OK, err
from rpctrace.errors import RpctraceError

#: command modules under rpctrace.commands, in the order `rpctrace --help` lists them
COMMANDS = ("demo", "explain", "calls", "events", "report", "export", "windbg", "acl", "record", "synth", "symbols")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rpctrace",
        description="Follow a Windows RPC call across the process boundary and tell why it failed.",
    )
    parser.add_argument("--version", action="version", version=f"rpctrace {__version__}")
    parser.add_argument(
        "--rpcdb", action="append", default=[], metavar="PATH",
        help="extra RPC interface database (RPCMon rpcdb.json format or rpctrace's); also read from "
             "$RPCTRACE_RPCDB and ~/.config/rpctrace/rpcdb/",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"rpctrace.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_OK
    try:
        if args.rpcdb:
            from rpctrace.knowledge.interfaces import load_user_databases

            load_user_databases(args.rpcdb)
        return args.func(args)
    except RpctraceError as exc:
        err(str(exc))
        return EXIT_INPUT
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    except (MemoryError, RecursionError, ValueError, OSError) as exc:
        if os.environ.get("RPCTRACE_DEBUG"):
            raise
        files = " ".join(getattr(args, "files", []) or [])
        err(f"{files}: {type(exc).__name__}: {exc} (set RPCTRACE_DEBUG=1 for details)")
        return EXIT_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
