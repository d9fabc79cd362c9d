"""`rpctrace explain`: the root cause of each failing call, in the article's terms."""

from __future__ import annotations

import json
import sys

from rpctrace.commands import EXIT_OK, finish, progress_for
from rpctrace.commands.options import add_acl_sources, add_command, add_format, add_inputs


def cmd_explain(args) -> int:
    from rpctrace import pipeline
    from rpctrace.render.explain import write_text

    acls = pipeline.acl_sources(args.hive, args.sddl)
    with progress_for(args, "reading") as bar:
        # streamed: the calls keep their operations, no event list is kept (captures join in)
        trace, result = pipeline.calls(args.files, keep_going=args.keep_going, on_progress=bar)
        bar.stage("explaining")
        findings = pipeline.findings(trace, result, acls=acls)
    if args.format == "json":
        json.dump(findings, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        write_text(findings, sys.stdout)
    sys.stdout.flush()
    return finish(trace) or EXIT_OK


def register(sub) -> None:
    p = add_command(sub, "explain", "root cause: which call failed where, under which identity, and what to change")
    add_inputs(p)
    add_format(p, ("text", "json"), "text for people, json for programs")
    add_acl_sources(p)
    p.set_defaults(func=cmd_explain)
