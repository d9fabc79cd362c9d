"""`rpctrace calls`: the reconstructed calls, client thread -> server thread, with what failed."""

from __future__ import annotations

import argparse
import sys

from rpctrace.commands import EXIT_OK, finish, progress_for, warn
from rpctrace.commands.options import add_command, add_filters, add_format, add_inputs, call_filter


def cmd_calls(args) -> int:
    from rpctrace import pipeline
    from rpctrace.render.calls import write_json, write_jsonl, write_table

    with progress_for(args, "reading") as bar:
        # a listing shows the failed operations only: the others need not be kept
        trace, result = pipeline.calls(args.files, keep_going=args.keep_going, operations="failed", on_progress=bar)
    # one record at a time: built, written, dropped (a listing can hold a million calls)
    records = pipeline.call_records(trace, pipeline.select(result, trace, call_filter(args), alpc=args.alpc))
    with pipeline.gc_paused():  # records are freed as they are written; the collector would only rescan the calls
        {"json": write_json, "jsonl": write_jsonl, "table": write_table}[args.format](records, sys.stdout)
    sys.stdout.flush()
    if result.unpaired:
        warn("could not pair: " + ", ".join(f"{n} {what}" for what, n in sorted(result.unpaired.items())))
    return finish(trace, limits=True) or EXIT_OK


def register(sub) -> None:
    from rpctrace.render.calls import COLUMNS

    p = add_command(sub, "calls", "reconstruct RPC calls: client thread -> server thread, with what failed",
                    epilog=COLUMNS, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_inputs(p)
    add_format(p, ("table", "json", "jsonl"), "table for people; json (one array) or jsonl (a call per line) for programs")
    add_filters(p)
    p.add_argument("--alpc", action="store_true",
                   help="also list ALPC message exchanges that belong to no RPC call (marked ALPC; shown anyway when "
                        "the trace has no RPC events at all)")
    p.set_defaults(func=cmd_calls)
