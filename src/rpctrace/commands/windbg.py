"""`rpctrace windbg`: the article's live-debugging sequence as a WinDbg/livekd script.

Two forms: ``rpctrace windbg FILE... --call ID`` takes the ids from a reconstructed call (client
pid/tid, server pid/tid, endpoint, ALPC message id, failures and their stacks); ``rpctrace windbg
--client-pid P --client-tid T --arch x64|x86|wow64`` needs no trace.
"""

from __future__ import annotations

import sys

from rpctrace.commands import EXIT_INPUT, EXIT_OK, RpctraceError, err, load_trace

WOW64_FLAG = 0x2  # Process event Flags (v4): 1 PackageFullName, 2 Wow64, 4 Protected (facts §4)


def _number(text: str) -> int:
    """A pid or tid: decimal, or hex with 0x."""
    import argparse

    try:
        value = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r} (decimal, or hex with 0x)") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"out of range: {text!r}")
    return value


def pointer_size(trace) -> int | None:
    for ev in trace.events:
        if ev.kind == "trace.header":
            size = ev.fields.get("pointer_size")
            if size in (4, 8):
                return size
    return None


def is_wow64(trace, pid: int | None) -> bool:
    """Whether the process events of ``pid`` carry the Wow64 flag."""
    if pid is None:
        return False
    for ev in trace.events:
        if ev.pid == pid and ev.kind in ("process.start", "process.rundown"):
            flags = ev.fields.get("flags")
            if isinstance(flags, int) and flags & WOW64_FLAG:
                return True
    return False


def arch_for(trace, pid: int | None) -> str:
    """The architecture of the code the breakpoints stop in (the process ``pid``, normally the
    server): a 4-byte trace is a 32-bit Windows (x86); on a 64-bit Windows a process whose process
    events say Wow64 is wow64, others x64.  Without a trace header: x64."""
    size = pointer_size(trace)
    if size == 4:
        return "x86"
    return "wow64" if is_wow64(trace, pid) else "x64"


def _record(call, trace) -> dict:
    from rpctrace.correlate import call_record
    from rpctrace.knowledge.status import ntstatus_name

    record = call_record(call, trace, status_name=ntstatus_name)
    for rec, op in zip(record["failures"], call.failures):
        if op.stack:
            rec["stack"] = [trace.symbolize(op.pid, addr) for addr in op.stack]
    return record


def cmd_windbg(args) -> int:
    from rpctrace.render.windbg import script_for_call, script_for_client

    error = None
    if args.files:
        if args.call is None and (args.client_pid is None or args.client_tid is None):
            raise RpctraceError("with a trace, say which call: --call ID (see `rpctrace calls FILE`)")
        from rpctrace.correlate import correlate

        trace = load_trace(args)
        error = trace.error
        if args.call is not None:
            calls = correlate(trace).calls
            found = [c for c in calls if c.id == args.call]
            if not found:
                raise RpctraceError(f"no call {args.call} (calls are numbered 1..{len(calls)})")
            call = found[0]
            arch = args.arch or arch_for(trace, call.server_pid if call.server_pid is not None else call.client_pid)
            try:
                text = script_for_call(_record(call, trace), arch)
            except ValueError as exc:
                raise RpctraceError(str(exc)) from None
        else:
            arch = args.arch or arch_for(trace, args.client_pid)
            text = script_for_client(args.client_pid, args.client_tid, arch, args.endpoint)
    else:
        if args.call is not None:
            raise RpctraceError("--call needs the trace: rpctrace windbg FILE... --call ID")
        if args.client_pid is None or args.client_tid is None:
            raise RpctraceError("give FILE... --call ID, or --client-pid P --client-tid T [--arch x64|x86|wow64]")
        text = script_for_client(args.client_pid, args.client_tid, args.arch or "x64", args.endpoint)
    if args.out and args.out != "-":
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
        sys.stderr.write(f"rpctrace: wrote {args.out}\n")
    else:
        sys.stdout.write(text)
    if error is not None:
        err(error.one_line())
        return EXIT_INPUT
    return EXIT_OK


def register(sub) -> None:
    p = sub.add_parser(
        "windbg",
        help="print the WinDbg/livekd commands that catch a call live (the article's breakpoint on the server's ALPC receive)",
    )
    p.add_argument("files", nargs="*", metavar="FILE")
    p.add_argument("--call", type=int, metavar="ID", help="the call (from `rpctrace calls`) whose ids to use")
    p.add_argument("--client-pid", type=_number, metavar="P", help="client process id (decimal, or 0x hex)")
    p.add_argument("--client-tid", type=_number, metavar="T", help="client thread id (decimal, or 0x hex)")
    p.add_argument("--endpoint", metavar="NAME", help="the LRPC endpoint, for the comments (e.g. AudioClientRpc)")
    p.add_argument("--arch", choices=("x64", "x86", "wow64"),
                   help="the server process's architecture (default: from the trace, else x64)")
    p.add_argument("-o", "--out", metavar="FILE", help="write the script to FILE instead of stdout")
    p.add_argument("--keep-going", action="store_true", help="skip damaged parts of the trace")
    p.set_defaults(func=cmd_windbg)
