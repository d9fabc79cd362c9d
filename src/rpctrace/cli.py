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


def _load(args):
    from rpctrace.trace import load

    trace = load(args.files, keep_going=args.keep_going)
    _report_sources(trace)
    if trace.error is not None and not trace.events:
        raise trace.error
    return trace


def _select(calls, args, trace):
    """Apply --client/--server/--interface/--failed filters."""

    def match_proc(spec: str, pid, tid) -> bool:
        if pid is None:
            return False
        head, _, tail = spec.partition(":")
        if head.isdigit():
            return int(head) == pid and (not tail or (tid is not None and tail.isdigit() and int(tail) == tid))
        info = trace.process(pid)
        return bool(info and info.image and info.image.lower() == spec.lower())

    out = []
    for c in calls:
        if args.client and not match_proc(args.client, c.client_pid, c.client_tid):
            continue
        if getattr(args, "server", None) and not match_proc(args.server, c.server_pid, None):
            continue
        if getattr(args, "interface", None):
            want = args.interface.lower().strip("{}")
            if (c.interface or "") != want:
                continue
        if getattr(args, "failed", False) and not (c.failures or (c.status or c.server_status)):
            continue
        out.append(c)
    return out


def cmd_calls(args) -> int:
    from rpctrace.correlate import call_record, correlate
    from rpctrace.render.calls import write_json, write_jsonl, write_table

    from rpctrace.knowledge.status import ntstatus_name

    trace = _load(args)
    result = correlate(trace)
    records = [call_record(c, trace, status_name=ntstatus_name) for c in _select(result.calls, args, trace)]
    {"json": write_json, "jsonl": write_jsonl, "table": write_table}[args.format](records, sys.stdout)
    if result.unpaired:
        parts = ", ".join(f"{n} {what}" for what, n in sorted(result.unpaired.items()))
        sys.stderr.write(f"rpctrace: could not pair: {parts}\n")
    if trace.error is not None:
        _err(trace.error.one_line())
        return EXIT_INPUT
    return EXIT_OK


def cmd_tree(args) -> int:
    from rpctrace.correlate import call_record, correlate
    from rpctrace.knowledge.status import ntstatus_name
    from rpctrace.render.calls import write_tree

    trace = _load(args)
    result = correlate(trace)
    if args.call is not None:
        roots = [c for c in result.calls if c.id == args.call]
        if not roots:
            raise RpctraceError(f"no call {args.call} (calls are numbered 1..{len(result.calls)})")
    else:
        roots = [c for c in result.calls if c.parent is None]
    write_tree(roots, trace, sys.stdout, lambda c: call_record(c, trace, status_name=ntstatus_name))
    if trace.error is not None:
        _err(trace.error.one_line())
        return EXIT_INPUT
    return EXIT_OK


def cmd_demo(args) -> int:
    """The main job on a bundled example: write the AudioSrv incident and show what rpctrace finds."""
    from rpctrace import synth
    from rpctrace.correlate import call_record, correlate
    from rpctrace.knowledge.status import ntstatus_name
    from rpctrace.render.calls import write_tree
    from rpctrace.render.demo import write_finding
    from rpctrace.trace import load

    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    etl = os.path.join(out_dir, "audiosrv-access-denied.etl")
    truth = os.path.join(out_dir, "audiosrv-access-denied.truth.json")
    summary = synth.synthesize("audiosrv-access-denied", etl, truth, seed=args.seed)
    trace = load([etl])
    result = correlate(trace)
    record = lambda c: call_record(c, trace, status_name=ntstatus_name)  # noqa: E731
    out = sys.stdout
    out.write(f"Wrote {etl}\n  {summary['record_count']} events recorded the way Windows' kernel logger and the "
              f"Microsoft-Windows-RPC provider would (ground truth: {truth}).\n")
    out.write(f"rpctrace read them back and rebuilt {len(result.calls)} RPC calls across "
              f"{len({c.server_pid for c in result.calls if c.server_pid})} server processes.\n\n")
    failing = [c for c in result.calls if any(op.fields.get("status") == 0xC0000022 for op in c.failures)]
    for call in failing:
        write_finding(call, trace, record(call), out)
        out.write("\nThe call, as a tree (process, thread, call, operations, stack):\n")
        write_tree([call], trace, out, record)
    out.write(f"\nTry: rpctrace calls {etl} --failed\n     rpctrace tree {etl} --call {failing[0].id if failing else 1}\n"
              f"     rpctrace events {etl} --format jsonl\n")
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

    p = sub.add_parser("calls", help="reconstruct RPC calls: client thread -> server thread, with what failed")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", choices=("table", "json", "jsonl"), default="table")
    p.add_argument("--client", metavar="NAME|PID[:TID]")
    p.add_argument("--server", metavar="NAME|PID")
    p.add_argument("--interface", metavar="UUID")
    p.add_argument("--failed", action="store_true", help="only calls that failed or whose server work failed")
    p.add_argument("--keep-going", action="store_true")
    p.set_defaults(func=cmd_calls)

    p = sub.add_parser("tree", help="the cross-process call tree: process, thread, call, operations")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--call", type=int, metavar="ID")
    p.add_argument("--keep-going", action="store_true")
    p.set_defaults(func=cmd_tree)

    p = sub.add_parser("demo", help="write the bundled AudioSrv incident trace and show what rpctrace finds in it")
    p.add_argument("--out", default="rpctrace-demo", metavar="DIR")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=cmd_demo)

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
