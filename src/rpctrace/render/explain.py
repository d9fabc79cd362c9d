"""Findings as text: the sentence first, then the chain, the ACL verdict and the fix."""

from __future__ import annotations

from typing import IO

STACK_LINES = 14


def write_text(findings: list[dict], out: IO[str]) -> None:
    if not findings:
        out.write("No failing call found: every call's server work succeeded (or failed only on optional keys).\n")
        return
    for n, f in enumerate(findings, 1):
        where = f"call {f['call']}" if f.get("call") is not None else "no correlated call"
        conf = f.get("confidence")
        how = f", confidence {conf:.2f}" if conf is not None else ", from the stack: no RPC events to correlate"
        out.write(f"Finding {n} ({where}{how})\n")
        out.write(f"  {f['summary']}\n\n")
        for step in f.get("chain", []):
            out.write(f"  - {step}\n")
        failure = f.get("failure") or {}
        if failure.get("stack"):
            frames = failure["stack"]
            out.write("  stack of the failing operation (innermost first):\n")
            for frame in frames[:STACK_LINES]:
                out.write(f"      {frame}\n")
            if len(frames) > STACK_LINES:
                out.write(f"      ... {len(frames) - STACK_LINES} more frames (rpctrace explain --format json has them all)\n")
        acl = f.get("acl")
        if acl:
            out.write(f"\n  ACL of {acl['key']} ({acl['source']}):\n    {acl.get('sddl')}\n")
            if acl.get("parent_sddl"):
                out.write(f"  ACL of the parent {acl['parent_key']}:\n    {acl['parent_sddl']}\n")
            if acl.get("desired_assumed"):
                out.write(f"  (the trace does not record the desired access; assumed {acl['requested_text']})\n")
            out.write(f"  verdict: {acl['verdict']}\n")
        fix = f.get("fix")
        if fix:
            out.write(f"\n  fix: {fix['text']}\n")
            if fix.get("sddl_after"):
                out.write(f"  SDDL after the change:\n    {fix['sddl_after']}\n")
            out.write("  PowerShell (elevated):\n")
            for line in fix["powershell"].splitlines():
                out.write(f"    {line}\n")
        out.write("\n")
