"""`rpctrace explain`: the root cause of each failing call, in the article's terms."""

from __future__ import annotations

import json
import sys

from rpctrace.commands import EXIT_OK, finish, progress_for, warn
from rpctrace.commands.options import (add_acl_sources, add_command, add_format, add_index_call, add_inputs, add_symbols,
                                       call_source)


def cmd_explain(args) -> int:
    from rpctrace import pipeline
    from rpctrace.render.explain import write_text

    acls = pipeline.acl_sources(args.hive, args.sddl, args.hive_log)
    for line in acls.warnings:
        warn(line)
    with call_source(args) as (files, call_id), progress_for(args, "reading") as bar:
        result = pipeline.explain(files, keep_going=args.keep_going, acls=acls, include_expected=args.all,
                                  on_progress=bar, on_stage=bar.stage, call_id=call_id, symbols=args.symbols,
                                  image_path=args.image_path)
    if args.format == "json":
        json.dump(result.findings, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    elif call_id is not None and not result.findings:
        sys.stdout.write(f"Call {call_id}: no failure to explain (its server work succeeded, or failed only with "
                         "expected results; --all shows those).\n")
    else:
        write_text(result.findings, sys.stdout, left_out=result.left_out, limits=result.limits, calls=result.calls)
    sys.stdout.flush()
    return finish(result.trace, limits=True) or EXIT_OK


def register(sub) -> None:
    p = add_command(sub, "explain", "root cause: which call failed where, under which identity, and what to change")
    add_inputs(p, nargs="*")
    add_format(p, ("text", "json"), "text for people, json for programs")
    add_index_call(p)
    p.add_argument("--all", action="store_true",
                   help="also show expected results (optional keys not found, buffer sizes asked, fast I/O refused): "
                        "left out by default and counted")
    add_acl_sources(p)
    add_symbols(p)
    p.set_defaults(func=cmd_explain)
