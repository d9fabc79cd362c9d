"""`rpctrace demo`: the main job on the bundled AudioSrv example."""

from __future__ import annotations

import os
import sys

from rpctrace.commands import EXIT_OK


def cmd_demo(args) -> int:
    """The main job on a bundled example: write the AudioSrv incident and show what rpctrace finds."""
    from rpctrace import synth
    from rpctrace.commands.explain import explain
    from rpctrace.correlate import call_record, correlate
    from rpctrace.explain import article
    from rpctrace.knowledge.interfaces import lookup
    from rpctrace.knowledge.status import ntstatus_name
    from rpctrace.render.calls import write_tree
    from rpctrace.render.explain import write_text
    from rpctrace.trace import load

    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    etl = os.path.join(out_dir, "audiosrv-access-denied.etl")
    truth = os.path.join(out_dir, "audiosrv-access-denied.truth.json")
    summary = synth.synthesize("audiosrv-access-denied", etl, truth, seed=args.seed)
    trace = load([etl])
    result = correlate(trace)
    out = sys.stdout
    out.write(f"Wrote {etl}\n  {summary['record_count']} events recorded the way Windows' kernel logger and the "
              f"Microsoft-Windows-RPC provider would (ground truth: {truth}).\n")
    out.write(f"rpctrace read them back and rebuilt {len(result.calls)} RPC calls across "
              f"{len({c.server_pid for c in result.calls if c.server_pid})} server processes.\n\n")
    # The key's ACL is not in any trace: the article describes it, so the demo supplies that
    # description as SDDL (what `rpctrace explain --sddl` takes; see rpctrace.explain.article).
    sddl = [f"{article.AUDIO_RENDER_KEY_PATH}={article.AUDIO_RENDER_KEY_SDDL}",
            f"{article.AUDIO_RENDER_PARENT_PATH}={article.AUDIO_RENDER_PARENT_SDDL}"]
    findings = explain(trace, (), sddl)
    out.write("rpctrace explain, with the key's and its parent's ACL as the article describes them:\n\n")
    write_text(findings, out)
    record = lambda c: call_record(c, trace, names=lookup, status_name=ntstatus_name)  # noqa: E731
    ids = [f["call"] for f in findings if f.get("call") is not None]
    if ids:
        out.write("The call, as a tree (process, thread, call, operations):\n")
        write_tree([c for c in result.calls if c.id == ids[0]], trace, out, record)
    first = ids[0] if ids else 1
    out.write(f"\nTry: rpctrace calls {etl} --failed\n     rpctrace tree {etl} --call {first}\n"
              f"     rpctrace explain {etl} --sddl '{sddl[0]}' --sddl '{sddl[1]}'\n"
              f"     rpctrace windbg {etl} --call {first}\n     rpctrace export {etl} --perfetto calls.json\n")
    return EXIT_OK


def register(sub) -> None:
    p = sub.add_parser("demo", help="write the bundled AudioSrv incident trace and show what rpctrace finds in it")
    p.add_argument("--out", default="rpctrace-demo", metavar="DIR")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=cmd_demo)
