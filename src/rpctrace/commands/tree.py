"""`rpctrace tree`: the cross-process call tree, client process -> thread -> call -> operations."""

from __future__ import annotations

import sys

from rpctrace.commands import EXIT_OK, RpctraceError, finish, progress_for
from rpctrace.commands.options import add_command, add_filters, add_inputs, add_symbols, call_filter


def cmd_tree(args) -> int:
    from rpctrace import pipeline
    from rpctrace.render.calls import write_tree

    with progress_for(args, "reading") as bar:
        trace, result = pipeline.calls(args.files, keep_going=args.keep_going, on_progress=bar, symbols=args.symbols, image_path=args.image_path)
    roots = pipeline.tree_roots(result, trace, call_filter(args), args.call)
    if args.call is not None and not roots:
        raise RpctraceError(f"no call {args.call} (calls are numbered 1..{len(result.calls)})")
    write_tree(roots, trace, sys.stdout, pipeline.record_maker(trace))
    sys.stdout.flush()
    return finish(trace, limits=True) or EXIT_OK


def register(sub) -> None:
    p = add_command(sub, "tree", "the cross-process call tree: client process -> thread -> call -> server operations "
                                 "-> nested calls")
    add_inputs(p)
    p.add_argument("--call", type=int, metavar="ID", help="show this call (from `rpctrace calls`) and what it led to")
    add_filters(p)
    add_symbols(p)
    p.set_defaults(func=cmd_tree)
