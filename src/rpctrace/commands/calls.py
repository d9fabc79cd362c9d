"""`rpctrace calls` and `rpctrace tree`: reconstructed calls and the cross-process call tree."""

from __future__ import annotations

import sys

from rpctrace.commands import EXIT_INPUT, EXIT_OK, RpctraceError, err, load_calls


def _select(calls, args, trace):
    """Apply --client/--server/--interface/--failed filters (lazily: the listing streams)."""

    def match_proc(spec: str, pid, tid) -> bool:
        if pid is None:
            return False
        head, _, tail = spec.partition(":")
        if head.isdigit():
            return int(head) == pid and (not tail or (tid is not None and tail.isdigit() and int(tail) == tid))
        info = trace.process(pid)
        return bool(info and info.image and info.image.lower() == spec.lower())

    for c in calls:
        if args.client and not match_proc(args.client, c.client_pid, c.client_tid):
            continue
        if getattr(args, "server", None) and not match_proc(args.server, c.server_pid, None):
            continue
        if getattr(args, "interface", None):
            want = args.interface.lower().strip("{}")
            if (c.interface or "") != want:
                from rpctrace.knowledge.interfaces import info

                known = info(c.interface) if c.interface else None
                if not (known and known.name and known.name.lower() == want):
                    continue
        if getattr(args, "failed", False) and not (c.failures or (c.status or c.server_status)):
            continue
        yield c


def cmd_calls(args) -> int:
    from rpctrace.correlate.records import RecordMaker
    from rpctrace.knowledge.interfaces import lookup
    from rpctrace.knowledge.status import ntstatus_name
    from rpctrace.render.calls import write_json, write_jsonl, write_table
    from rpctrace.trace.gcpause import gc_paused

    # a listing shows the failed operations only: the others need not be kept
    trace, result = load_calls(args, operations="failed")
    # one record at a time: built, written, dropped (a listing can hold a million calls)
    records = map(RecordMaker(trace, names=lookup, status_name=ntstatus_name), _select(result.calls, args, trace))
    with gc_paused():  # records are freed as they are written; the collector would only rescan the calls
        {"json": write_json, "jsonl": write_jsonl, "table": write_table}[args.format](records, sys.stdout)
    if result.unpaired:
        parts = ", ".join(f"{n} {what}" for what, n in sorted(result.unpaired.items()))
        sys.stderr.write(f"rpctrace: could not pair: {parts}\n")
    if trace.error is not None:
        err(trace.error.one_line())
        return EXIT_INPUT
    return EXIT_OK


def cmd_tree(args) -> int:
    from rpctrace.correlate.records import RecordMaker
    from rpctrace.knowledge.interfaces import lookup
    from rpctrace.knowledge.status import ntstatus_name
    from rpctrace.render.calls import write_tree

    trace, result = load_calls(args)
    if args.call is not None:
        roots = [c for c in result.calls if c.id == args.call]
        if not roots:
            raise RpctraceError(f"no call {args.call} (calls are numbered 1..{len(result.calls)})")
    else:
        roots = [c for c in result.calls if c.parent is None]
    write_tree(roots, trace, sys.stdout, RecordMaker(trace, names=lookup, status_name=ntstatus_name))
    if trace.error is not None:
        err(trace.error.one_line())
        return EXIT_INPUT
    return EXIT_OK


def register(sub) -> None:
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
