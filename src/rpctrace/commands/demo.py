"""`rpctrace demo`: the main job on the bundled AudioSrv example."""

from __future__ import annotations

import os
import sys
import tempfile

from rpctrace.commands import EXIT_OK
from rpctrace.commands.options import add_command


def cmd_demo(args) -> int:
    """Write the AudioSrv incident, read it back, and print what rpctrace finds (about 40 lines)."""
    from rpctrace import pipeline
    from rpctrace.render.explain import write_demo

    out_dir = os.path.abspath(args.out) if args.out else tempfile.mkdtemp(prefix="rpctrace-demo-")
    write_demo(pipeline.demo(out_dir, seed=args.seed), sys.stdout)
    return EXIT_OK


def register(sub) -> None:
    p = add_command(sub, "demo", "write the bundled AudioSrv incident trace and show what rpctrace finds in it")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="the directory to write the trace, its ground truth and the ACL file into "
                        "(default: a new temporary directory, kept so the suggested commands work)")
    p.add_argument("--seed", type=int, default=1, help="random seed of the trace writer (default 1)")
    p.set_defaults(func=cmd_demo)
