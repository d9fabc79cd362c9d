"""`rpctrace windbg`: the article's live-debugging sequence as a WinDbg/livekd script.

Two forms: ``rpctrace windbg FILE... --call ID`` takes the ids from a reconstructed call (client
pid/tid, server pid/tid, endpoint, interface, procedure, ALPC message id, failures and their
stacks); ``rpctrace windbg --client-pid P --client-tid T --arch x64|x86|wow64`` needs no trace.
"""

from __future__ import annotations

import argparse
import sys

from rpctrace.commands import EXIT_OK, RpctraceError, finish, warn
from rpctrace.commands.options import add_command, add_inputs, add_output, add_symbols


def _number(text: str) -> int:
    """A pid or tid: decimal, or hex with 0x."""
    try:
        value = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r} (decimal, or hex with 0x)") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"out of range: {text!r}")
    return value


def cmd_windbg(args) -> int:
    from rpctrace import pipeline
    from rpctrace.render.files import check_output, open_output
    from rpctrace.render.windbg import arch_for, script_for_call, script_for_client

    if args.output and args.output != "-":
        check_output(args.output)
    trace = None
    if args.files:
        if args.call is None and (args.client_pid is None or args.client_tid is None):
            raise RpctraceError("with a trace, say which call: --call ID (see `rpctrace calls FILE`)")
        if args.call is not None:
            record, trace = pipeline.call_with_stacks(args.files, args.call, keep_going=args.keep_going,
                                                      symbols=args.symbols, image_path=args.image_path)
            pid = record["server"]["pid"] if record["server"]["pid"] is not None else record["client"]["pid"]
            arch = args.arch or arch_for(trace.pointer_size(), trace.is_wow64(pid))
            try:
                text = script_for_call(record, arch)
            except ValueError as exc:
                raise RpctraceError(str(exc)) from None
        else:
            trace = pipeline.load(pipeline.debuggable(args.files), keep_going=args.keep_going)
            arch = args.arch or arch_for(trace.pointer_size(), trace.is_wow64(args.client_pid))
            text = script_for_client(args.client_pid, args.client_tid, arch, args.endpoint)
    else:
        if args.call is not None:
            raise RpctraceError("--call needs the trace: rpctrace windbg FILE... --call ID")
        if args.client_pid is None or args.client_tid is None:
            raise RpctraceError("give FILE... --call ID, or --client-pid P --client-tid T [--arch x64|x86|wow64]")
        text = script_for_client(args.client_pid, args.client_tid, args.arch or "x64", args.endpoint)
    if args.output and args.output != "-":
        with open_output(args.output) as fh:
            fh.write(text)
        warn(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return finish(trace) if trace is not None else EXIT_OK


def register(sub) -> None:
    p = add_command(sub, "windbg", "print the WinDbg/livekd commands that catch a call live (the article's "
                                   "breakpoint on the server's ALPC receive)")
    add_inputs(p, nargs="*")
    p.add_argument("--call", type=int, metavar="ID", help="the call (from `rpctrace calls`) whose ids to use")
    p.add_argument("--client-pid", type=_number, metavar="P", help="client process id (decimal, or 0x hex)")
    p.add_argument("--client-tid", type=_number, metavar="T", help="client thread id (decimal, or 0x hex)")
    p.add_argument("--endpoint", metavar="NAME", help="the LRPC endpoint, for the comments (e.g. AudioClientRpc)")
    p.add_argument("--arch", choices=("x64", "x86", "wow64"),
                   help="the server process's architecture (default: from the trace, else x64)")
    add_output(p, "FILE", "write the script to FILE instead of stdout")
    add_symbols(p)
    p.set_defaults(func=cmd_windbg)
