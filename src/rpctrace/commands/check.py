"""`rpctrace check`: what the inputs hold and lack for rpctrace's questions, and what to enable."""

from __future__ import annotations

import sys

from rpctrace.commands import EXIT_OK, finish, progress_for
from rpctrace.commands.options import add_command, add_format, add_inputs


def cmd_check(args) -> int:
    from rpctrace import pipeline
    from rpctrace.render import check

    with progress_for(args, "reading") as bar:
        # stack walks must be read to be counted (a listing skips them: check would say there are none)
        trace, result = pipeline.calls(args.files, keep_going=args.keep_going, operations="failed", stacks=True,
                                       on_progress=bar)
    doc = {"files": list(args.files), "calls": len(result.calls), **pipeline.coverage(trace).to_dict()}
    (check.write_json if args.format == "json" else check.write_text)(doc, sys.stdout)
    sys.stdout.flush()
    return finish(trace) or EXIT_OK


def register(sub) -> None:
    p = add_command(sub, "check", "what the inputs hold and lack for rpctrace's questions (RPC events and "
                                  "results, ALPC, registry, files, stacks, processes, images, losses) and what to enable")
    add_inputs(p)
    add_format(p, ("text", "json"), "text for people, json for programs")
    p.set_defaults(func=cmd_check)
