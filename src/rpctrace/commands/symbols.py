"""`rpctrace symbols`: resolve offsets with a PDB, and fetch the PDBs a trace needs.

    rpctrace symbols resolve (--pdb FILE | --image FILE) OFFSET... [--format text|json]
                             [--symbols PATH] [--image-path DIR]
    rpctrace symbols fetch TRACE... [--symbols PATH] [--image-path DIR] [--all] [--format text|json]
"""

from __future__ import annotations

import sys

from rpctrace.commands import EXIT_INPUT, EXIT_OK, err, finish
from rpctrace.commands.options import GLOBAL, HELP, add_command, add_format



def cmd_resolve(args) -> int:
    from rpctrace import pipeline
    from rpctrace.render.symbols import resolve_json, resolve_text

    result, problems = pipeline.resolve_offsets(args.offsets, pdb=args.pdb, image=args.image, symbols=args.symbols,
                                                image_path=args.image_path, timeout=args.timeout)
    (resolve_json if args.format == "json" else resolve_text)(result, sys.stdout)
    for line in problems:
        err(line)
    return EXIT_OK


def cmd_fetch(args) -> int:
    from rpctrace import pipeline
    from rpctrace.render.symbols import fetch_json, fetch_text

    if not pipeline.has_symbol_source(args.symbols, args.image_path):
        err("no symbol path: give --symbols PATH (e.g. srv*C:\\symbols*https://msdl.microsoft.com/download/symbols) "
            "or set _NT_SYMBOL_PATH")
        return EXIT_INPUT
    trace, report, problems = pipeline.fetch_symbols(args.files, args.symbols, args.image_path, timeout=args.timeout,
                                                     include_all=args.all, keep_going=args.keep_going)
    (fetch_json if args.format == "json" else fetch_text)(report, sys.stdout)
    for line in problems:
        err(line)
    return finish(trace) or EXIT_OK


def _common(p) -> None:
    p.add_argument("--symbols", metavar="PATH", help=HELP["symbols"])
    p.add_argument("--image-path", action="append", default=[], metavar="DIR", help=HELP["image_path"])
    p.add_argument("--timeout", type=float, default=20.0, metavar="SECONDS",
                   help="seconds to wait for a symbol server before retrying (default 20)")
    add_format(p, ("text", "json"), "text for people, json for programs")


def register(sub) -> None:
    p = add_command(sub, "symbols", "resolve module offsets with PDBs; fetch the PDBs a trace needs")
    ss = p.add_subparsers(dest="symbols_command", metavar="SUBCOMMAND", required=True)

    r = ss.add_parser("resolve", parents=[GLOBAL], help="function+displacement (and file:line, inlined frames) of "
                                                        "module offsets")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--pdb", metavar="FILE", help="the PDB to look the offsets up in (no identity check)")
    src.add_argument("--image", metavar="FILE",
                     help="a DLL/EXE/SYS: its debug directory names the PDB, looked for through --symbols and beside "
                          "the image (GUID and age must match)")
    r.add_argument("offsets", nargs="+", metavar="OFFSET",
                   help="module-relative offset, hexadecimal as in a debugger (0x12ef9, 12ef9 or audiosrv+0x12ef9)")
    _common(r)
    r.set_defaults(func=cmd_resolve)

    f = ss.add_parser("fetch", parents=[GLOBAL], help="download the PDBs a trace's stacks need into the cache; "
                                                      "report what is missing")
    f.add_argument("files", nargs="+", metavar="TRACE", help="trace file(s) (.etl, .pml...)")
    f.add_argument("--all", action="store_true", help="every loaded image, not only those the stacks run through")
    _common(f)
    f.set_defaults(func=cmd_fetch)
