"""`rpctrace export`: the reconstructed calls in formats other tools open (Perfetto / chrome://tracing)."""

from __future__ import annotations

import argparse
import sys

from rpctrace.commands import EXIT_OK, RpctraceError, finish, progress_for, warn
from rpctrace.commands.options import add_command, add_filters, add_inputs, add_output, add_symbols, call_filter


def cmd_export(args) -> int:
    from rpctrace import pipeline
    from rpctrace.render import perfetto
    from rpctrace.render.files import check_output, open_output

    output = args.output or args.perfetto
    if not output:
        raise RpctraceError("choose an output: -o OUT.json (- for stdout)")
    if output != "-":
        check_output(output)
    with progress_for(args, "reading") as bar:
        trace, result = pipeline.calls(args.files, keep_going=args.keep_going, on_progress=bar, symbols=args.symbols, image_path=args.image_path)
        calls = list(pipeline.select(result, trace, call_filter(args)))
        bar.stage("writing")
        doc = perfetto.to_trace_events(trace, calls)
        if output == "-":
            perfetto.write(doc, sys.stdout)
        else:
            with open_output(output, encoding="ascii") as fh:
                perfetto.write(doc, fh)
    if output != "-":
        meta = doc["metadata"]
        warn(f"wrote {output}: {meta['calls']} calls, {meta['flows']} client->server flows, "
             f"{len(doc['traceEvents'])} events (open it in ui.perfetto.dev or chrome://tracing)")
    return finish(trace) or EXIT_OK


def register(sub) -> None:
    p = add_command(sub, "export", "write the calls for other tools: Chrome trace-event JSON for ui.perfetto.dev "
                                   "and chrome://tracing")
    add_inputs(p)
    add_output(p, "OUT.json", "the file to write (- for stdout): a track per process and thread, calls as slices "
                              "named by procedure, flow arrows from each client call to the server's work")
    p.add_argument("--format", choices=("perfetto",), default="perfetto",
                   help="perfetto: Chrome trace-event JSON (the only format so far; default)")
    p.add_argument("--perfetto", metavar="OUT.json", help=argparse.SUPPRESS)  # the option's old name
    add_filters(p)
    add_symbols(p)
    p.set_defaults(func=cmd_export)
