"""The options several commands share, declared once so that one name means one thing everywhere.

docs/cli.md lists every command's options; ``tests/test_cli_options.py`` checks that the table
and the parser agree and that a shared option has the same help text in every command.

* inputs: ``FILE...`` (positional), sniffed by content, not by name;
* output file: ``-o/--output PATH`` in every command that writes a file (``demo --out DIR`` is
  a directory and says so);
* call filters: ``--client``, ``--server``, ``--interface``, ``--failed`` in ``calls``, ``tree``,
  ``report`` and ``export`` (:class:`rpctrace.correlate.select.CallFilter` is their meaning);
* security descriptors: ``--hive PATH`` and ``--sddl KEYPATH=SDDL`` in ``explain``, ``report``
  and ``acl``;
* global options: ``--rpcdb PATH`` and ``--keep-going`` are accepted before and after the
  command name (:data:`GLOBAL`).

Longer than a command module (about 150 lines): it is the table of every shared option and its
help text, which the commands would otherwise each repeat; it holds declarations, no analysis.
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from typing import Iterator

#: help texts of the shared options (one text per option, whatever the command)
HELP = {
    "files": "input files: .etl traces, Process Monitor .pml logs, .evtx logs or event XML exports, network "
             "captures (.pcap, .pcapng) (the format is read from the bytes, not the name); several files of one "
             "incident are merged",
    "client": "only calls made by this client: an image name (with or without .exe, any case), a service "
              "name, a pid, or pid:tid",
    "server": "only calls served by this server: an image name (with or without .exe, any case), a service "
              "name (e.g. Audiosrv), or a pid",
    "interface": "only calls of this interface: its UUID (braces optional) or its name",
    "failed": "only calls that failed: the RPC status, or a failing operation of the server's work on them",
    "hive": "a registry hive file copied from the machine (SOFTWARE, SYSTEM, NTUSER.DAT...), where the "
            "failing key's security descriptor is read; repeat for several hives",
    "sddl": "a key's security descriptor as SDDL (PowerShell: (Get-Acl KEY).Sddl); repeat for the parent "
            "key to get inheritance fixes",
    "hive_log": "a hive's transaction log (SYSTEM.LOG1, SYSTEM.LOG2) to apply before reading it, as Windows "
                "does for a hive not written cleanly; goes with the --hive of its name",
    "symbols": "symbol path, debugger syntax: srv*CACHE*URL, srv*URL, cache*DIR, plain directories, separated "
               "by ';' (default: $_NT_SYMBOL_PATH); the network is used only for the http(s) servers it names",
    "image_path": "directory of binaries copied from the traced machine (repeatable): a DLL matched by name, "
                  "SizeOfImage and TimeDateStamp names its PDB; its PDB may sit beside it",
    "rpcdb": "extra RPC interface database (RPCMon rpcdb.json or rpctrace's format) whose names take precedence "
             "over the packaged ones; also read from $RPCTRACE_RPCDB and ~/.config/rpctrace/rpcdb/",
    "on": "an index `rpctrace index` wrote (its directory): the tables to query, or where --call TRACE:ID is found",
    "keep_going": "skip damaged parts of the inputs, count them and go on (default: stop at the first damage, "
                  "after printing what was read before it)",
}


def global_options(suppress: bool) -> argparse.ArgumentParser:
    """The global options as a parent parser.

    The top-level parser takes them with real defaults; every command takes them again with
    ``SUPPRESS`` defaults (and ``--rpcdb`` into another attribute), so that a value given after
    the command adds to one given before it instead of being reset by the command's defaults.
    """
    p = argparse.ArgumentParser(add_help=False)
    if suppress:
        p.add_argument("--rpcdb", action="append", dest="rpcdb_after", default=argparse.SUPPRESS,
                       metavar="PATH", help=HELP["rpcdb"])
        p.add_argument("--keep-going", action="store_true", default=argparse.SUPPRESS, help=HELP["keep_going"])
    else:
        p.add_argument("--rpcdb", action="append", default=[], metavar="PATH", help=HELP["rpcdb"])
        p.add_argument("--keep-going", action="store_true", default=False, help=HELP["keep_going"])
    return p


#: parent parser every command is built with (see :func:`global_options`)
GLOBAL = global_options(suppress=True)


def add_command(sub, name: str, help: str, description: str | None = None, **kwargs) -> argparse.ArgumentParser:
    """A command's parser, with the global options and a description (the help line if none)."""
    return sub.add_parser(name, help=help, description=description or help[:1].upper() + help[1:] + ".",
                          parents=[GLOBAL], **kwargs)


def add_inputs(p: argparse.ArgumentParser, nargs: str = "+") -> None:
    p.add_argument("files", nargs=nargs, metavar="FILE", help=HELP["files"])


def add_filters(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("call filters")
    g.add_argument("--client", metavar="NAME|PID[:TID]", help=HELP["client"])
    g.add_argument("--server", metavar="NAME|PID", help=HELP["server"])
    g.add_argument("--interface", metavar="UUID|NAME", help=HELP["interface"])
    g.add_argument("--failed", action="store_true", help=HELP["failed"])


def add_output(p: argparse.ArgumentParser, metavar: str, help: str, required: bool = False) -> None:
    p.add_argument("-o", "--output", metavar=metavar, required=required, help=help)


def add_acl_sources(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("security descriptors (for the ACL verdict and the fix)")
    g.add_argument("--hive", action="append", default=[], metavar="PATH", help=HELP["hive"])
    g.add_argument("--sddl", action="append", default=[], metavar="KEYPATH=SDDL", help=HELP["sddl"])
    g.add_argument("--hive-log", action="append", default=[], metavar="PATH", help=HELP["hive_log"])


def add_symbols(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("symbols (stack frames named module!function)")
    g.add_argument("--symbols", metavar="PATH", help=HELP["symbols"])
    g.add_argument("--image-path", action="append", default=[], metavar="DIR", help=HELP["image_path"])


def add_format(p: argparse.ArgumentParser, choices: tuple[str, ...], help: str) -> None:
    p.add_argument("--format", choices=choices, default=choices[0], help=f"{help} (default {choices[0]})")


def call_filter(args):
    """The :class:`~rpctrace.correlate.select.CallFilter` the command line asked for."""
    from rpctrace.pipeline import CallFilter

    return CallFilter(client=getattr(args, "client", None), server=getattr(args, "server", None),
                      interface=getattr(args, "interface", None), failed=bool(getattr(args, "failed", False)))


def add_index_call(p: argparse.ArgumentParser) -> None:
    """``--call ID`` (or ``TRACE:ID`` with ``--on DIR``): one call, from the FILEs or from an index."""
    p.add_argument("--call", metavar="ID|TRACE:ID",
                   help="one call: its number from `rpctrace calls`; with --on, TRACE:ID (a trace id, path or file "
                        "name from the index's traces table, a colon, the call's number)")
    p.add_argument("--on", metavar="DIR", help=HELP["on"])


@contextmanager
def call_source(args) -> Iterator[tuple[list[str], "int | None"]]:
    """``(files, call id)`` a command reads: its FILEs and ``--call ID``, or with ``--on DIR``
    the input the index records for ``--call TRACE:ID`` (decompressed while in use, checked to
    be the trace that was indexed)."""
    from rpctrace.errors import RpctraceError

    if getattr(args, "on", None) is None:
        if not args.files:
            raise RpctraceError("give the trace files (FILE...), or --on DIR --call TRACE:ID for a call of an index")
        call = args.call
        if call is not None and not call.isdigit():
            raise RpctraceError(f"--call {call}: a call's number (TRACE:ID needs --on DIR)")
        yield list(args.files), int(call) if call is not None else None
        return
    if args.files:
        raise RpctraceError("--on DIR takes the trace from the index: give no FILE")
    if not args.call:
        raise RpctraceError("--on DIR needs --call TRACE:ID (which call of which trace)")
    from rpctrace.pipeline import indexed_trace

    with indexed_trace(args.on, args.call) as (path, call_id):
        yield [path], call_id
