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
COMMANDS = ("demo", "explain", "calls", "tree", "events", "check", "report", "export", "windbg", "acl", "names", "symbols",
            "record", "synth", "index", "query")


def build_parser() -> argparse.ArgumentParser:
    from rpctrace.commands.options import global_options

    parser = argparse.ArgumentParser(
        prog="rpctrace",
        description="Follow a Windows RPC call across the process boundary and tell why it failed.",
        epilog="Global options may also follow the command (rpctrace calls FILE --keep-going). "
               "`rpctrace COMMAND --help` tells more; docs/cli.md lists every option.",
        parents=[global_options(suppress=False)],
        fromfile_prefix_chars="@",  # `rpctrace explain T.etl @acl.args`: arguments from a file, one per line
    )
    parser.add_argument("--version", action="version", version=f"rpctrace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"rpctrace.commands.{name}").register(sub)
    return parser


def _merge_globals(args: argparse.Namespace) -> None:
    """Global options given after the command add to those given before it."""
    after = getattr(args, "rpcdb_after", None)
    if after:
        args.rpcdb = list(args.rpcdb) + list(after)
    if hasattr(args, "rpcdb_after"):
        del args.rpcdb_after


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        # argparse's convention for a missing command: the usage on stderr, exit status 2
        parser.print_usage(sys.stderr)
        sys.stderr.write("rpctrace: error: choose a command (rpctrace --help lists them; rpctrace demo shows one)\n")
        return EXIT_INPUT
    _merge_globals(args)
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
        where = f"{files}: " if files else ""
        err(f"{where}{type(exc).__name__}: {exc} (set RPCTRACE_DEBUG=1 for details)")
        return EXIT_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
