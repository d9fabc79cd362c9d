"""`rpctrace acl`: would these principals get this access to a registry key, which ACE decides,
and what change would grant it.

    rpctrace acl KEYPATH (--hive PATH | --sddl KEYPATH=SDDL)... --principal NAME|SID...
                 [--access MASK|NAMES] [--format text|json]

``--hive`` and ``--sddl`` mean what they mean in ``explain`` and ``report``.  The parent key's
descriptor comes from the same hive, or from another ``--sddl PARENT=SDDL``; with it a fix can be
"re-enable inheritance".  ``--access`` defaults to MAXIMUM_ALLOWED, which reports what the
principals get without asking for anything (and so proposes no fix).
"""

from __future__ import annotations

import json
import sys

from rpctrace.commands import EXIT_OK, warn
from rpctrace.commands.options import HELP, add_command, add_format
from rpctrace.errors import RpctraceError


def cmd_acl(args) -> int:
    from rpctrace import pipeline
    from rpctrace.render.acl import write_text

    doc = pipeline.acl_check(args.key, args.hive, args.sddl, args.principal, args.access, hive_logs=args.hive_log,
                             as_service=args.as_)
    for line in doc["warnings"]:
        warn(line)
    if args.format == "json":
        json.dump(doc, sys.stdout, indent=2, ensure_ascii=True)
        sys.stdout.write("\n")
    else:
        write_text(doc, sys.stdout)
    return EXIT_OK


def register(sub) -> None:
    p = add_command(
        sub, "acl", "check a registry key's ACL for a principal set and propose the fix",
        description="Evaluate a registry key's DACL (from a hive file or SDDL) for a set of principals and an access "
                    "mask, name the deciding ACEs, and propose the smallest fix with a PowerShell snippet.",
    )
    p.add_argument("key", nargs="?", metavar="KEYPATH",
                   help="the key (HKLM\\SOFTWARE\\...): looked up in --hive, or named by --sddl KEYPATH=SDDL "
                        "(may be left out when one --sddl names it)")
    g = p.add_argument_group("security descriptors (at least one)")
    g.add_argument("--hive", action="append", default=[], metavar="PATH", help=HELP["hive"])
    g.add_argument("--sddl", action="append", default=[], metavar="KEYPATH=SDDL",
                   help=HELP["sddl"] + "; a bare SDDL is KEYPATH's")
    g.add_argument("--hive-log", action="append", default=[], metavar="PATH", help=HELP["hive_log"])
    p.add_argument("--as", dest="as_", metavar="service:NAME",
                   help="check for the token of a service's process: its service SID, account, Everyone, "
                        "Authenticated Users and the other groups such a token holds (listed in the output); "
                        "--principal adds more")
    p.add_argument("--principal", action="extend", nargs="+", default=[], metavar="NAME|SID",
                   help="SIDs or names in the token (repeat or list several): NT SERVICE\\Audiosrv, 'LOCAL SERVICE', "
                        "S-1-5-19, BA, Everyone...")
    p.add_argument("--access", default="MAXIMUM_ALLOWED", metavar="MASK|NAMES",
                   help="the desired access: 0x20106, KEY_WRITE|KEY_WOW64_64KEY, read, write "
                        "(default MAXIMUM_ALLOWED: report what the principals get)")
    add_format(p, ("text", "json"), "text for people, json for programs")
    p.set_defaults(func=_run)


def _run(args) -> int:
    if not args.hive and not args.sddl:
        raise RpctraceError("give the key's security descriptor: --hive PATH or --sddl KEYPATH=SDDL")
    if not args.principal and not args.as_:
        raise RpctraceError("say whose access to check: --principal NAME|SID... or --as service:NAME")
    return cmd_acl(args)


__all__ = ["cmd_acl", "register"]
