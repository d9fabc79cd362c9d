"""`rpctrace demo`: the main job on the bundled AudioSrv example."""

from __future__ import annotations

import os
import shlex
import sys
import tempfile

from rpctrace.commands import EXIT_OK
from rpctrace.commands.options import add_command


def cmd_demo(args) -> int:
    """Write the AudioSrv incident, read it back, and print what rpctrace finds (about 40 lines)."""
    from rpctrace import pipeline, synth
    from rpctrace.explain import article
    from rpctrace.render.explain import write_text

    out_dir = os.path.abspath(args.out) if args.out else tempfile.mkdtemp(prefix="rpctrace-demo-")
    os.makedirs(out_dir, exist_ok=True)
    etl = os.path.join(out_dir, "audiosrv-access-denied.etl")
    truth = os.path.join(out_dir, "audiosrv-access-denied.truth.json")
    acl_args = os.path.join(out_dir, "audiosrv-acl.args")
    summary = synth.synthesize("audiosrv-access-denied", etl, truth, seed=args.seed)
    # The key's ACL is not in any trace: the article describes it, so the demo supplies that
    # description as SDDL (what `--sddl KEYPATH=SDDL` takes), also written to a file that any
    # command reads with @FILE (argparse's arguments-from-a-file), so the commands stay short.
    sddl = [f"{article.AUDIO_RENDER_KEY_PATH}={article.AUDIO_RENDER_KEY_SDDL}",
            f"{article.AUDIO_RENDER_PARENT_PATH}={article.AUDIO_RENDER_PARENT_SDDL}"]
    from rpctrace.render.files import open_output

    with open_output(acl_args) as fh:
        fh.write("".join(f"--sddl\n{pair}\n" for pair in sddl))
    trace = pipeline.load([etl])
    from rpctrace.correlate import correlate

    result = correlate(trace)
    findings = pipeline.findings(trace, result, (), sddl)
    out = sys.stdout
    servers = len({c.server_pid for c in result.calls if c.server_pid})
    out.write(f"rpctrace demo: the AudioSrv incident, written as a real-format trace and read back.\n"
              f"  {etl}: {summary['record_count']:,} events as Windows' kernel logger and the Microsoft-Windows-RPC "
              f"provider record them\n  {len(result.calls)} RPC calls rebuilt across {servers} server processes; "
              f"the key's ACL as the article describes it is in {os.path.basename(acl_args)}\n\n")
    first = next((f["call"] for f in findings if f.get("call") is not None), None)
    call = first if first is not None else 1
    name, args_name = os.path.basename(etl), "@" + os.path.basename(acl_args)
    write_text(findings[:1], out, brief=True, stack_lines=6,
               stack_hint=f"rpctrace tree {name} --call {call} shows them all")
    out.write(f"Try:\n  cd {shlex.quote(out_dir)}\n")
    for line in (f"rpctrace calls {name} --failed",
                 f"rpctrace tree {name} --call {call}",
                 f"rpctrace explain {name} {args_name}",
                 f"rpctrace report {name} {args_name} -o report.html",
                 f"rpctrace windbg {name} --call {call}",
                 f"rpctrace export {name} -o calls.json   # open in ui.perfetto.dev"):
        out.write(f"  {line}\n")
    return EXIT_OK


def register(sub) -> None:
    p = add_command(sub, "demo", "write the bundled AudioSrv incident trace and show what rpctrace finds in it")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="the directory to write the trace, its ground truth and the ACL file into "
                        "(default: a new temporary directory, kept so the suggested commands work)")
    p.add_argument("--seed", type=int, default=1, help="random seed of the trace writer (default 1)")
    p.set_defaults(func=cmd_demo)
