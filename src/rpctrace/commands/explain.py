"""`rpctrace explain`: the root cause of each failing call, in the article's terms."""

from __future__ import annotations

import json
import sys

from rpctrace.commands import EXIT_OK, finish, progress_for
from rpctrace.commands.options import add_acl_sources, add_command, add_format, add_index_call, add_inputs, call_source


def cmd_explain(args) -> int:
    from rpctrace import pipeline
    from rpctrace.render.explain import write_text

    acls = pipeline.acl_sources(args.hive, args.sddl)
    with call_source(args) as (files, call_id), progress_for(args, "reading") as bar:
        trace = pipeline.load(files, keep_going=args.keep_going, on_progress=bar)
        bar.stage("explaining")
        if call_id is None:
            findings = pipeline.findings(trace, acls=acls)
        else:
            findings = pipeline.findings_of_call(trace, call_id, acls=acls)
    if args.format == "json":
        json.dump(findings, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    elif call_id is not None and not findings:
        sys.stdout.write(f"Call {call_id}: no failure to explain (its server work succeeded, or failed only on "
                         "optional keys).\n")
    else:
        write_text(findings, sys.stdout)
    sys.stdout.flush()
    return finish(trace) or EXIT_OK


def register(sub) -> None:
    p = add_command(sub, "explain", "root cause: which call failed where, under which identity, and what to change")
    add_inputs(p, nargs="*")
    add_format(p, ("text", "json"), "text for people, json for programs")
    add_index_call(p)
    add_acl_sources(p)
    p.set_defaults(func=cmd_explain)
