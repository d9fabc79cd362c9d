"""Command line: wires sources, trace, analyses and renderers together; holds no logic of its own.

Every user-facing error is one line on stderr and exit status 2 (bad input) - never a traceback.
Set RPCTRACE_DEBUG=1 to see tracebacks when reporting a bug in rpctrace itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from rpctrace import __version__
from rpctrace.errors import RpctraceError

EXIT_OK, EXIT_INPUT = 0, 2


def _err(message: str) -> None:
    sys.stderr.write(f"rpctrace: error: {message}\n")


def _report_sources(trace) -> None:
    """Print losses and damage the readers counted (stderr, so stdout stays machine-readable)."""
    for info in trace.sources:
        lost = info.get("events_lost", 0) + info.get("buffers_lost", 0)
        if lost or info.get("buffers_flagged_lost"):
            sys.stderr.write(
                f"rpctrace: {info['path']}: the logger lost {info.get('events_lost', 0)} events and "
                f"{info.get('buffers_lost', 0)} buffers\n"
            )
        damage = info.get("damage") or []
        if damage:
            sys.stderr.write(f"rpctrace: {info['path']}: skipped {len(damage)} damaged region(s); first: {damage[0]}\n")


def cmd_events(args) -> int:
    from rpctrace.render.events import write_jsonl, write_text
    from rpctrace.trace import load

    trace = load(args.files, keep_going=args.keep_going)
    out = sys.stdout
    if args.format == "jsonl":
        write_jsonl(trace.events, out, symbolize=trace.symbolize)
    else:
        write_text(trace.events, out)
    out.flush()
    _report_sources(trace)
    if trace.error is not None:
        _err(trace.error.one_line())
        return EXIT_INPUT
    return EXIT_OK


def cmd_synth(args) -> int:
    from rpctrace import synth

    summary = synth.synthesize(
        args.scenario, args.output, args.truth, seed=args.seed, clients=args.clients, calls=args.calls,
        events=args.events, pointer_size=4 if args.x86 else 8, compress=args.compress,
    )
    sys.stderr.write(
        f"rpctrace: wrote {args.output}: {summary['record_count']} records, {summary.get('calls', 0)} calls"
        + (f", truth {args.truth}" if args.truth else "") + "\n"
    )
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rpctrace",
        description="Follow a Windows RPC call across the process boundary and tell why it failed.",
    )
    parser.add_argument("--version", action="version", version=f"rpctrace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("events", help="print every event record of the files, time ordered")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", choices=("text", "jsonl"), default="text")
    p.add_argument("--keep-going", action="store_true", help="skip damaged parts, count them and go on")
    p.set_defaults(func=cmd_events)

    p = sub.add_parser("synth", help="write a synthetic trace of a scenario, with its ground truth")
    p.add_argument("scenario")
    p.add_argument("-o", "--output", required=True, metavar="OUT.etl")
    p.add_argument("--truth", metavar="OUT.json")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--clients", type=int)
    p.add_argument("--calls", type=int)
    p.add_argument("--events", type=int)
    p.add_argument("--x86", action="store_true", help="write a 32-bit logger's trace")
    p.add_argument("--compress", action="store_true", help="compress buffers as Windows compressed mode does")
    p.set_defaults(func=cmd_synth)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_OK
    try:
        return args.func(args)
    except RpctraceError as exc:
        _err(str(exc))
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
        _err(f"{files}: {type(exc).__name__}: {exc} (set RPCTRACE_DEBUG=1 for details)")
        return EXIT_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
