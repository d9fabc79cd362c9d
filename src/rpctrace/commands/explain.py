"""`rpctrace explain`: the root cause of each failing call, in the article's terms."""

from __future__ import annotations

import json
import sys

from rpctrace.commands import EXIT_INPUT, EXIT_OK, err, load_trace


def explain(trace, hives=(), sddl_pairs=()):
    """Findings for a loaded trace (what `explain` prints; also used by `demo` and `report`)."""
    from rpctrace.correlate import correlate
    from rpctrace.explain.acl_sources import AclSources
    from rpctrace.explain.findings import build_findings

    acls = AclSources.from_args(list(hives), list(sddl_pairs))
    return build_findings(trace, correlate(trace), acls)


def cmd_explain(args) -> int:
    from rpctrace.render.explain import write_text

    trace = load_trace(args)
    findings = explain(trace, args.hive, args.sddl)
    if args.format == "json":
        json.dump(findings, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        write_text(findings, sys.stdout)
    if trace.error is not None:
        err(trace.error.one_line())
        return EXIT_INPUT
    return EXIT_OK


def register(sub) -> None:
    p = sub.add_parser("explain", help="root cause: which call failed where, under which identity, and what to change")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--hive", action="append", default=[], metavar="PATH",
                   help="registry hive copied from the machine (e.g. SOFTWARE), for the failing key's ACL")
    p.add_argument("--sddl", action="append", default=[], metavar="KEYPATH=SDDL",
                   help="a key's security descriptor as SDDL (Get-Acl ... | % Sddl); give the parent too for inheritance fixes")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--keep-going", action="store_true")
    p.set_defaults(func=cmd_explain)
