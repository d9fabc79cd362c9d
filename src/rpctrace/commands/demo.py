"""`rpctrace demo`: the main job on the bundled AudioSrv example."""

from __future__ import annotations

import os
import sys

from rpctrace.commands import EXIT_OK


def cmd_demo(args) -> int:
    """The main job on a bundled example: write the AudioSrv incident and show what rpctrace finds."""
    from rpctrace import synth
    from rpctrace.correlate import call_record, correlate
    from rpctrace.knowledge.interfaces import lookup
    from rpctrace.knowledge.status import ntstatus_name
    from rpctrace.render.calls import write_tree
    from rpctrace.render.demo import write_finding
    from rpctrace.trace import load

    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    etl = os.path.join(out_dir, "audiosrv-access-denied.etl")
    truth = os.path.join(out_dir, "audiosrv-access-denied.truth.json")
    summary = synth.synthesize("audiosrv-access-denied", etl, truth, seed=args.seed)
    trace = load([etl])
    result = correlate(trace)
    record = lambda c: call_record(c, trace, names=lookup, status_name=ntstatus_name)  # noqa: E731
    out = sys.stdout
    out.write(f"Wrote {etl}\n  {summary['record_count']} events recorded the way Windows' kernel logger and the "
              f"Microsoft-Windows-RPC provider would (ground truth: {truth}).\n")
    out.write(f"rpctrace read them back and rebuilt {len(result.calls)} RPC calls across "
              f"{len({c.server_pid for c in result.calls if c.server_pid})} server processes.\n\n")
    failing = [c for c in result.calls if any(op.fields.get("status") == 0xC0000022 for op in c.failures)]
    for call in failing:
        write_finding(call, trace, record(call), out)
        out.write("\nThe call, as a tree (process, thread, call, operations, stack):\n")
        write_tree([call], trace, out, record)
    out.write(f"\nTry: rpctrace calls {etl} --failed\n     rpctrace tree {etl} --call {failing[0].id if failing else 1}\n"
              f"     rpctrace events {etl} --format jsonl\n")
    return EXIT_OK


def register(sub) -> None:
    p = sub.add_parser("demo", help="write the bundled AudioSrv incident trace and show what rpctrace finds in it")
    p.add_argument("--out", default="rpctrace-demo", metavar="DIR")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=cmd_demo)
