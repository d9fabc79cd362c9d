"""`rpctrace names`: what rpctrace knows of an RPC interface, or which interfaces and procedures
bear a name.

    rpctrace names UUID [OPNUM] [--format text|json]
    rpctrace names --search TEXT [--limit N] [--format text|json]

Exit status: 0 when the interface (and the opnum asked) is named, 1 when rpctrace does not know
it (or nothing matches the search), 2 for bad input (a malformed UUID or opnum, an unreadable
``--rpcdb`` file).
"""

from __future__ import annotations

import sys

from rpctrace.commands import EXIT_OK
from rpctrace.commands.options import add_command, add_format
from rpctrace.errors import RpctraceError, printable

EXIT_NOT_FOUND = 1


def _opnum(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise RpctraceError(f"opnum {printable(text, 40)!r} is not a number") from None
    if not 0 <= value <= 0xFFFF:
        raise RpctraceError(f"opnum {value} is out of range (0-65535: the opnum is 16 bits on the wire)")
    return value


def cmd_names(args) -> int:
    from rpctrace import pipeline
    from rpctrace.render import names as render

    if args.search is not None:
        if args.uuid is not None:
            raise RpctraceError("give either a UUID or --search TEXT, not both")
        if not args.search.strip():
            raise RpctraceError("--search needs some text")
        if args.limit < 0:
            raise RpctraceError("--limit must be 0 (no limit) or more")
        matches = pipeline.search_names(args.search)
        shown = matches if args.limit == 0 else matches[: args.limit]
        records = render.search_records(shown)
        if args.format == "json":
            render.write_json({"query": args.search, "total": len(matches), "matches": records}, sys.stdout)
        else:
            render.write_search_text(args.search, records, len(matches), sys.stdout)
        return EXIT_OK if matches else EXIT_NOT_FOUND
    if args.uuid is None:
        raise RpctraceError("give an interface UUID (rpctrace names UUID [OPNUM]) or --search TEXT")
    uuid, info = pipeline.interface_names(args.uuid)
    if uuid is None:
        raise RpctraceError(f"{printable(args.uuid, 60)!r} is not a UUID (expected 8-4-4-4-12 hex digits, "
                            "braces optional, e.g. 12345678-1234-abcd-ef00-01234567cffb)")
    opnum = _opnum(args.opnum) if args.opnum is not None else None
    rec = render.interface_record(info, opnum) if info else render.unknown_record(uuid, opnum)
    if args.format == "json":
        render.write_json(rec, sys.stdout)
    else:
        render.write_interface_text(rec, sys.stdout)
    if info is None or (opnum is not None and rec["procedure"] is None):
        return EXIT_NOT_FOUND
    return EXIT_OK


def register(sub) -> None:
    p = add_command(
        sub, "names", "what rpctrace knows of an RPC interface: name, specification, module, procedures, sources",
        description="Print what rpctrace knows of an RPC interface (name, version, protocol specification, "
                    "module, service, every opnum with its procedure, and the sources of each), or find "
                    "interfaces and procedures by name with --search. Exit status: 0 found, 1 not known, "
                    "2 bad input. Your own databases (--rpcdb) take precedence over the packaged names.",
    )
    p.add_argument("uuid", nargs="?", metavar="UUID",
                   help="interface UUID, e.g. 12345678-1234-abcd-ef00-01234567cffb (braces and case don't matter)")
    p.add_argument("opnum", nargs="?", metavar="OPNUM",
                   help="procedure number (decimal or 0x hex): print that procedure only")
    p.add_argument("--search", metavar="TEXT",
                   help="find interfaces and procedures whose name contains TEXT (case-insensitive; also "
                        "matches UUIDs, modules, services and specification names such as MS-EFSR)")
    p.add_argument("--limit", type=int, default=50, metavar="N",
                   help="with --search: print at most N matches (default 50; 0 prints all)")
    add_format(p, ("text", "json"), "text for people, json for programs")
    p.set_defaults(func=cmd_names)
