"""`rpctrace report`: one self-contained HTML page (findings, sequence diagrams, call tree,
timeline, filters) that opens from disk and loads nothing."""

from __future__ import annotations

import shlex

from rpctrace.commands import EXIT_OK, finish, progress_for, warn
from rpctrace.commands.options import (add_acl_sources, add_command, add_filters, add_index_call, add_inputs,
                                      add_output, add_symbols, call_filter, call_source)


def cmd_report(args) -> int:
    from rpctrace import pipeline
    from rpctrace.render.files import check_output
    from rpctrace.render.report import write_report

    check_output(args.output)
    with call_source(args) as (inputs, call_id), progress_for(args, "reading") as bar:
        model = pipeline.report(inputs, keep_going=args.keep_going, flt=call_filter(args), call_id=call_id,
                                hives=args.hive, sddl_pairs=args.sddl, hive_logs=args.hive_log, on_progress=bar,
                                symbols=args.symbols, image_path=args.image_path,
                                on_stage=bar.stage)
        bar.stage("writing the page")
        files = " ".join(shlex.quote(f) for f in inputs)
        size = write_report(model.trace, args.output, findings=model.findings, calls=model.calls,
                            total_calls=model.total_calls, scope=model.scope, limits=model.limits + model.warnings,
                             losses=model.losses,
                            commands={"calls_failed": f"rpctrace calls {files} --failed",
                                      "report_call": f"rpctrace report {files} --call ID -o call.html"})
    failing = sum(1 for c in model.calls if c.blamed)
    scope = f" (of {model.total_calls}: {model.scope})" if model.scope else ""
    warn(f"wrote {args.output}: {len(model.findings)} finding(s), {len(model.calls)} calls{scope}, {failing} with a "
         f"failing server operation ({size:,} bytes; open it in a browser, it needs no network)")
    for line in model.warnings:
        warn(line)
    return finish(model.trace, limits=True) or EXIT_OK


def register(sub) -> None:
    p = add_command(sub, "report", "write one self-contained HTML page: findings, sequence diagrams, call tree, timeline")
    add_inputs(p, nargs="*")
    add_output(p, "OUT.html", "the page to write", required=True)
    add_index_call(p)
    add_filters(p)
    add_acl_sources(p)
    add_symbols(p)
    p.set_defaults(func=cmd_report)
