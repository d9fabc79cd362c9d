"""`rpctrace export`: the reconstructed calls in formats other tools open (Perfetto / chrome://tracing)."""

from __future__ import annotations

import os
import sys

from rpctrace.commands import EXIT_INPUT, EXIT_OK, RpctraceError, err, load_trace


def cmd_export(args) -> int:
    from rpctrace.correlate import correlate
    from rpctrace.render import perfetto

    if not args.perfetto:
        raise RpctraceError("choose an output: --perfetto OUT.json")
    trace = load_trace(args)
    calls = correlate(trace).calls
    doc = perfetto.to_trace_events(trace, calls)
    if args.perfetto == "-":
        perfetto.write(doc, sys.stdout)
    else:
        tmp = f"{args.perfetto}.tmp{os.getpid()}"
        try:
            with open(tmp, "w", encoding="ascii") as fh:
                perfetto.write(doc, fh)
            os.replace(tmp, args.perfetto)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        meta = doc["metadata"]
        sys.stderr.write(
            f"rpctrace: wrote {args.perfetto}: {meta['calls']} calls, {meta['flows']} client->server flows, "
            f"{len(doc['traceEvents'])} events (open it in ui.perfetto.dev or chrome://tracing)\n"
        )
    if trace.error is not None:
        err(trace.error.one_line())
        return EXIT_INPUT
    return EXIT_OK


def register(sub) -> None:
    p = sub.add_parser("export", help="write the calls for other tools: --perfetto OUT.json (ui.perfetto.dev, chrome://tracing)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--perfetto", metavar="OUT.json",
                   help="Chrome trace-event JSON: a track per process and thread, calls as slices, flow arrows "
                        "from client call to server work (- for stdout)")
    p.add_argument("--keep-going", action="store_true", help="skip damaged parts, count them and go on")
    p.set_defaults(func=cmd_export)
