"""`rpctrace record`: the capture recipe (a WPR profile plus the wpr/xperf/logman commands); on
Windows ``--start`` / ``--stop`` run wpr.exe."""

from __future__ import annotations

import sys

import argparse

from rpctrace.commands import EXIT_INPUT, EXIT_OK, RpctraceError, err
from rpctrace.commands.options import add_command


def cmd_record(args, runner=None, platform=None) -> int:
    """``runner`` and ``platform`` stand in for subprocess and sys.platform in tests."""
    from rpctrace import record
    from rpctrace.render import recipe

    action = "start" if args.start else "stop" if args.stop else "write"
    if args.profile == "-":
        if action == "start":
            raise RpctraceError("--start needs the profile in a file: give -o FILE.wprp, not -")
        if action == "write":
            sys.stdout.write(recipe.wprp_profile())
            return EXIT_OK
    plan = record.make_plan(action, None if args.profile == "-" else args.profile, args.stop)
    if action != "stop" and not args.print:
        record.write_profile(plan.profile_path)
    out = sys.stdout
    if action == "write" or args.print:
        out.write(record.instructions(plan, platform))
        if args.print and plan.run:
            out.write("Would run: " + " ".join(plan.run[0]) + "\n")
        return EXIT_OK
    if not record.is_windows(platform):
        out.write(record.instructions(plan, platform))
        out.flush()
        err(record.NEEDS_WINDOWS)
        return EXIT_INPUT
    record.run(plan, runner=runner, platform=platform)
    if action == "start":
        out.write(f"Recording with {plan.profile_path}. Reproduce the failure, then run:\n"
                  "  rpctrace record --stop incident.etl\n")
    else:
        out.write(f'Wrote {plan.etl_path}. Next:\n  rpctrace calls "{plan.etl_path}" --failed\n'
                  f'  rpctrace explain "{plan.etl_path}"\n')
    return EXIT_OK


def register(sub) -> None:
    p = add_command(sub, "record", "the capture recipe: write a WPR profile and print the wpr/xperf/logman commands "
                                   "(Windows: --start/--stop run wpr)")
    p.add_argument("-o", "--output", dest="profile", metavar="OUT.wprp", default=None,
                   help="where to write the WPR profile (default rpctrace.wprp; - prints it to stdout)")
    p.add_argument("--profile", dest="profile", metavar="OUT.wprp", help=argparse.SUPPRESS)  # the option's old name
    when = p.add_mutually_exclusive_group()
    when.add_argument("--start", action="store_true", help="Windows: write the profile and run wpr -start PROFILE -filemode")
    when.add_argument("--stop", metavar="OUT.etl", help="Windows: run wpr -stop OUT.etl")
    p.add_argument("--print", action="store_true", help="print the commands only: write and run nothing")
    p.set_defaults(func=cmd_record)
