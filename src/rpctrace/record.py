"""`rpctrace record`: write the capture profile, print the commands, and on Windows run wpr.exe.

The planning is pure and runs anywhere (tests run it on Linux); only :func:`run` touches the
system, through a *runner* (``runner(argv) -> exit status``) that tests replace.  Recording
itself needs Windows: elsewhere :func:`check_platform` says so in one line and the caller prints
the commands to run there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rpctrace.errors import RpctraceError
from rpctrace.render import recipe

DEFAULT_PROFILE = "rpctrace.wprp"
DEFAULT_ETL = "incident.etl"
NEEDS_WINDOWS = ("recording needs Windows (wpr.exe from an elevated prompt): copy the profile there and run "
                 "the commands printed above")

Runner = Callable[[Sequence[str]], int]


class NeedsWindows(RpctraceError):
    """Recording was asked for on a system that is not Windows."""


def is_windows(platform: str | None = None) -> bool:
    return (platform if platform is not None else sys.platform) == "win32"


def check_platform(platform: str | None = None) -> None:
    if not is_windows(platform):
        raise NeedsWindows(NEEDS_WINDOWS)


@dataclass
class Plan:
    """What `rpctrace record` will do: which profile to write and which commands to run."""

    profile_path: str
    etl_path: str
    action: str  # "write" (profile only), "start", "stop"
    run: list[list[str]] = field(default_factory=list)  # argv lists to execute, in order


def make_plan(action: str, profile_path: str | None = None, etl_path: str | None = None) -> Plan:
    """The commands for ``action``: "write" runs nothing, "start" runs ``wpr -start``, "stop"
    runs ``wpr -stop OUT.etl``."""
    if action not in ("write", "start", "stop"):
        raise ValueError(f"unknown action {action!r}")
    profile = profile_path or DEFAULT_PROFILE
    etl = etl_path or DEFAULT_ETL
    start, stop = recipe.wpr_commands(profile, etl)
    run = {"write": [], "start": [start], "stop": [stop]}[action]
    return Plan(profile, etl, action, run)


def write_profile(path: str) -> str:
    """Write the .wprp (UTF-8) and return its path."""
    from rpctrace.render.files import open_output

    text = recipe.wprp_profile()
    if is_windows():
        text = text.replace("\n", "\r\n")
    with open_output(path) as fh:
        fh.write(text)
    return path


def default_runner(argv: Sequence[str]) -> int:
    return subprocess.run(list(argv), check=False).returncode


def run(plan: Plan, runner: Runner | None = None, platform: str | None = None) -> None:
    """Run the plan's commands (Windows only); a missing wpr.exe or a failing one is one error."""
    if not plan.run:
        return
    check_platform(platform)
    runner = runner or default_runner
    for argv in plan.run:
        try:
            status = runner(argv)
        except FileNotFoundError:
            raise RpctraceError(
                f"{argv[0]} not found: install the Windows Performance Toolkit (Windows ADK) or use the "
                "xperf/logman commands from `rpctrace record --print`"
            ) from None
        if status != 0:
            raise RpctraceError(f"{' '.join(argv)} failed with exit status {status} (run it from an elevated prompt)")


def _with_reproduce(commands: list[str]) -> list[str]:
    """The commands, indented, with the "reproduce" step before the first stop command."""
    out: list[str] = []
    marked = False
    for c in commands:
        if not marked and (" -stop" in c or c.startswith("logman stop")):
            out.append("     (reproduce the failure now)")
            marked = True
        out.append(f"     {c}")
    return out


def instructions(plan: Plan, platform: str | None = None) -> str:
    """The text `rpctrace record` prints: the three steps with wpr, then the xperf and logman
    equivalents.  Off Windows the paths are shown as file names (the profile is copied over)."""
    show = (lambda p: p) if is_windows(platform) else os.path.basename
    profile, etl = show(plan.profile_path) or DEFAULT_PROFILE, show(plan.etl_path) or DEFAULT_ETL
    wpr_start, wpr_stop = recipe.wpr_command_lines(profile, etl)
    kernel, user = recipe.logman_files(etl)
    lines = [
        f"Capture profile: {plan.profile_path} (WPR profile for the NT Kernel Logger and a user session)",
        "",
        "1. Copy the profile to the Windows machine; from an elevated prompt start recording:",
        f"     {wpr_start}",
        "2. Reproduce the failure, then stop recording:",
        f"     {wpr_stop}",
        "3. Read it with rpctrace (any OS):",
        f'     rpctrace calls "{etl}" --failed',
        f'     rpctrace explain "{etl}"',
        "",
        "Same capture with xperf (Windows Performance Toolkit), kernel stacks on ALPC and registry events:",
    ]
    lines += _with_reproduce(recipe.xperf_commands(etl))
    lines += ["", "Same capture with logman (built into Windows; no stacks, two files):"]
    lines += _with_reproduce(recipe.logman_commands(etl))
    lines += [f'     rpctrace calls "{kernel}" "{user}" --failed', ""]
    return "\n".join(lines)
