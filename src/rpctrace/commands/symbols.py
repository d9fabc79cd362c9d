"""`rpctrace symbols`: resolve offsets with a PDB, and fetch the PDBs a trace needs.

    rpctrace symbols resolve (--pdb FILE | --image FILE) OFFSET... [--format text|json]
                             [--symbols PATH] [--image-path DIR]
    rpctrace symbols fetch TRACE... [--symbols PATH] [--image-path DIR] [--all] [--format text|json]

Wiring only: the work is in :mod:`rpctrace.symbols.lookup`, the printing in
:mod:`rpctrace.render.symbols`.
"""

from __future__ import annotations

import sys

from rpctrace.commands import EXIT_INPUT, EXIT_OK, err, load_trace

SYMBOLS_HELP = ("symbol path, debugger syntax: srv*CACHE*URL, srv*URL, cache*DIR, plain directories, separated "
                "by ';' (default: $_NT_SYMBOL_PATH); the network is used only for the http(s) servers it names")


def _symbolizer(args):
    from rpctrace.symbols import Symbolizer, symbol_path_from
    from rpctrace.symbols.download import Downloader

    path = symbol_path_from(args.symbols)
    return Symbolizer(path, args.image_path, downloader=Downloader(timeout=args.timeout))


def _problems(symbolizer) -> None:
    for line in symbolizer.problems:
        err(line)


def cmd_resolve(args) -> int:
    from rpctrace.render.symbols import resolve_json, resolve_text
    from rpctrace.symbols.lookup import parse_offset, resolve_in_image, resolve_in_pdb

    offsets = [parse_offset(o) for o in args.offsets]
    symbolizer = _symbolizer(args)
    if args.pdb:
        result = resolve_in_pdb(args.pdb, offsets, symbolizer)
    else:
        result = resolve_in_image(args.image, offsets, symbolizer)
    (resolve_json if args.format == "json" else resolve_text)(result, sys.stdout)
    _problems(symbolizer)
    return EXIT_OK


def cmd_fetch(args) -> int:
    from rpctrace.render.symbols import fetch_json, fetch_text
    from rpctrace.symbols.lookup import fetch_for_trace

    symbolizer = _symbolizer(args)
    if symbolizer.symbol_path is None and not args.image_path:
        err("no symbol path: give --symbols PATH (e.g. srv*C:\\symbols*https://msdl.microsoft.com/download/symbols) "
            "or set _NT_SYMBOL_PATH")
        return EXIT_INPUT
    trace = load_trace(args)
    report = fetch_for_trace(trace, symbolizer, include_all=args.all)
    (fetch_json if args.format == "json" else fetch_text)(report, sys.stdout)
    _problems(symbolizer)
    if trace.error is not None:
        err(trace.error.one_line())
        return EXIT_INPUT
    return EXIT_OK


def _common(p) -> None:
    p.add_argument("--symbols", metavar="PATH", help=SYMBOLS_HELP)
    p.add_argument("--image-path", action="append", default=[], metavar="DIR",
                   help="directory of binaries copied from the traced machine (repeatable): a DLL matched by name, "
                        "SizeOfImage and TimeDateStamp names its PDB; its PDB may sit beside it")
    p.add_argument("--timeout", type=float, default=20.0, metavar="SECONDS",
                   help="seconds to wait for a symbol server before retrying (default 20)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")


def register(sub) -> None:
    p = sub.add_parser("symbols", help="resolve module offsets with PDBs; fetch the PDBs a trace needs")
    ss = p.add_subparsers(dest="symbols_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), EXIT_OK)[1])

    r = ss.add_parser("resolve", help="function+displacement (and file:line, inlined frames) of module offsets")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--pdb", metavar="FILE", help="the PDB to look the offsets up in (no identity check)")
    src.add_argument("--image", metavar="FILE",
                     help="a DLL/EXE/SYS: its debug directory names the PDB, looked for through --symbols and beside "
                          "the image (GUID and age must match)")
    r.add_argument("offsets", nargs="+", metavar="OFFSET",
                   help="module-relative offset, hexadecimal as in a debugger (0x12ef9, 12ef9 or audiosrv+0x12ef9)")
    _common(r)
    r.set_defaults(func=cmd_resolve)

    f = ss.add_parser("fetch", help="download the PDBs a trace's stacks need into the cache; report what is missing")
    f.add_argument("files", nargs="+", metavar="TRACE", help="trace file(s) (.etl, .pml...)")
    f.add_argument("--all", action="store_true", help="every loaded image, not only those the stacks run through")
    f.add_argument("--keep-going", action="store_true", help="skip damaged parts of the trace and go on")
    _common(f)
    f.set_defaults(func=cmd_fetch)
