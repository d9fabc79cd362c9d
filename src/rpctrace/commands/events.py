"""`rpctrace events`: every event record, time ordered."""

from __future__ import annotations

import sys

from rpctrace.commands import EXIT_OK, finish, progress_for
from rpctrace.commands.options import add_command, add_format, add_inputs, add_symbols


def cmd_events(args) -> int:
    from rpctrace import pipeline
    from rpctrace.render.events import write_jsonl, write_text

    with progress_for(args, "reading") as bar:
        trace = pipeline.load(args.files, keep_going=args.keep_going, on_progress=bar, symbols=args.symbols, image_path=args.image_path)
    out = sys.stdout
    if args.format == "jsonl":
        write_jsonl(trace.events, out, trace=trace)
    else:
        write_text(trace.events, out, trace=trace)
    out.flush()
    return finish(trace) or EXIT_OK


def register(sub) -> None:
    p = add_command(sub, "events", "print every event record of the files, time ordered")
    add_inputs(p)
    add_format(p, ("text", "jsonl"), "text for people (a line per event), jsonl for programs (an object per line)")
    add_symbols(p)
    p.set_defaults(func=cmd_events)
