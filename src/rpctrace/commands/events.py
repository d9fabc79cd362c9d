"""`rpctrace events`: every event record, time ordered."""

from __future__ import annotations

import sys

from rpctrace.commands import EXIT_INPUT, EXIT_OK, err, report_sources


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
    report_sources(trace)
    if trace.error is not None:
        err(trace.error.one_line())
        return EXIT_INPUT
    return EXIT_OK


def register(sub) -> None:
    p = sub.add_parser("events", help="print every event record of the files, time ordered")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", choices=("text", "jsonl"), default="text")
    p.add_argument("--keep-going", action="store_true", help="skip damaged parts, count them and go on")
    p.set_defaults(func=cmd_events)
