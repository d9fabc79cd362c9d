"""`rpctrace report`: one self-contained HTML page (findings, sequence diagrams, call tree,
timeline, filters) that opens from disk and loads nothing."""

from __future__ import annotations

import sys

from rpctrace.commands import EXIT_INPUT, EXIT_OK, RpctraceError, err, load_trace


def cmd_report(args) -> int:
    from rpctrace.commands.explain import explain
    from rpctrace.correlate import correlate
    from rpctrace.render.report import write_report

    if not args.output:
        raise RpctraceError("choose an output: -o OUT.html")
    trace = load_trace(args)
    findings = explain(trace, args.hive, args.sddl)
    calls = correlate(trace).calls
    size = write_report(trace, args.output, findings=findings, calls=calls)
    sys.stderr.write(
        f"rpctrace: wrote {args.output}: {len(findings)} finding(s), {len(calls)} calls, "
        f"{sum(1 for c in calls if c.failures)} with a failing server operation ({size:,} bytes; "
        "open it in a browser, it needs no network)\n"
    )
    if trace.error is not None:
        err(trace.error.one_line())
        return EXIT_INPUT
    return EXIT_OK


def register(sub) -> None:
    p = sub.add_parser("report", help="write one self-contained HTML page: findings, sequence diagrams, call tree, timeline")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-o", "--output", metavar="OUT.html", required=True, help="the page to write")
    p.add_argument("--hive", action="append", default=[], metavar="PATH",
                   help="registry hive copied from the machine (e.g. SOFTWARE), for the failing key's ACL")
    p.add_argument("--sddl", action="append", default=[], metavar="KEYPATH=SDDL",
                   help="a key's security descriptor as SDDL (Get-Acl ... | % Sddl); give the parent too for inheritance fixes")
    p.add_argument("--keep-going", action="store_true", help="skip damaged parts, count them and go on")
    p.set_defaults(func=cmd_report)
