"""Findings as text: the sentence first, then the chain (with the verdict and the fix once), the
stack, the descriptors and the PowerShell."""

from __future__ import annotations

from typing import IO

from rpctrace.schema import Finding

STACK_LINES = 14


def _nothing_found(out: IO[str], left_out: int, limits: list[str], calls: int | None) -> None:
    """No finding: say what was looked at and what could not be seen - never "it all worked"
    when the trace could not have shown a failure."""
    if limits:
        out.write("No failure to blame in what the input shows, but it cannot show everything:\n")
        for line in limits:
            out.write(f"  - {line}\n")
    elif calls:
        out.write(f"No failure to blame: none of the {calls} calls' server work failed with an error that deserves "
                  "blame.\n")
    else:
        out.write("No failure to blame in the input.\n")


def write_text(findings: list[Finding], out: IO[str], *, brief: bool = False, stack_lines: int = STACK_LINES,
               stack_hint: str = "rpctrace explain --format json has them all", left_out: int = 0,
               limits: list[str] | None = None, calls: int | None = None) -> None:
    """Every finding, then a line counting the expected results left out (``--all`` shows them).
    ``brief`` leaves out the security descriptors' SDDL (the demo: they were given on the command
    line); ``stack_hint`` says where the frames left out are; ``limits`` what the input could not
    show (said when nothing was found)."""
    if not findings:
        _nothing_found(out, left_out, limits or [], calls)
    for n, f in enumerate(findings, 1):
        if f.get("call") is not None:
            where = f"call {f['call']}"
        elif f.get("outside"):
            where = "outside any call the trace shows"
        else:
            where = "no correlated call"
        conf = f.get("confidence")
        how = f", confidence {conf:.2f}" if conf is not None else ""
        out.write(f"Finding {n} ({where}{how})\n")
        out.write(f"  {f['summary']}\n\n")
        if f.get("client") is None and f.get("client_note"):
            out.write(f"  - client: {f['client_note']}\n")
        for step in f.get("chain", []):
            out.write(f"  - {step}\n")
        failure = f.get("failure") or {}
        frames = failure.get("stack") or []
        if frames:
            out.write(f"  stack of the failing operation ({len(frames)} frames, innermost first):\n")
            for frame in frames[:stack_lines]:
                out.write(f"      {frame}\n")
            if len(frames) > stack_lines:
                out.write(f"      ... {len(frames) - stack_lines} more ({stack_hint})\n")
        acl = f.get("acl")
        if acl:
            if not brief:
                out.write(f"  ACL of {acl['key']} ({acl['source']}):\n    {acl.get('sddl')}\n")
                if acl.get("parent_sddl"):
                    out.write(f"  ACL of the parent {acl['parent_key']}:\n    {acl['parent_sddl']}\n")
            if acl.get("desired_assumed"):
                out.write(f"  (the trace does not record the desired access; assumed {acl['requested_text']})\n")
        fix = f.get("fix")
        if fix:
            if fix.get("sddl_after") and not brief:
                out.write(f"  SDDL after the change:\n    {fix['sddl_after']}\n")
            out.write("  PowerShell (elevated):\n")
            for line in fix["powershell"].splitlines():
                out.write(f"    {line}\n")
        out.write("\n")
    if left_out:
        out.write(f"{left_out} expected result{'s' if left_out != 1 else ''} left out (optional keys and values not found, "
                  "buffer sizes asked, fast I/O refused, ...): rpctrace explain --all shows them.\n")


def write_demo(demo, out: IO[str]) -> None:
    """What ``rpctrace demo`` prints (:class:`rpctrace.pipeline.DemoModel`): where the trace is, the
    first finding (briefly: the SDDL is in the ACL file) and short commands to try next."""
    import os
    import shlex

    out.write(f"rpctrace demo: the AudioSrv incident, written as a real-format trace and read back.\n"
              f"  {demo.etl}: {demo.records:,} events as Windows' kernel logger and the Microsoft-Windows-RPC "
              f"provider record them\n  {demo.calls} RPC calls rebuilt across {demo.servers} server processes; "
              f"the key's ACL as the article describes it is in {os.path.basename(demo.acl_args)}\n\n")
    first = next((f["call"] for f in demo.findings if f.get("call") is not None), None)
    call = first if first is not None else 1
    name, args_name = os.path.basename(demo.etl), "@" + os.path.basename(demo.acl_args)
    write_text(demo.findings[:1], out, brief=True, stack_lines=7,
               stack_hint=f"rpctrace tree {name} --call {call} --symbols symbols shows them all")
    out.write(f"Try:\n  cd {shlex.quote(demo.out_dir)}\n")
    for line in (f"rpctrace calls {name} --failed",
                 f"rpctrace tree {name} --call {call} --symbols symbols",
                 f"rpctrace explain {name} {args_name} --symbols symbols",
                 f"rpctrace report {name} {args_name} --symbols symbols -o report.html",
                 f"rpctrace windbg {name} --call {call} --symbols symbols",
                 f"rpctrace export {name} -o calls.json   # open in ui.perfetto.dev"):
        out.write(f"  {line}\n")
