"""`rpctrace synth`: write a scenario's trace and its ground truth."""

from __future__ import annotations

from rpctrace.commands import EXIT_OK, RpctraceError, progress_for, warn
from rpctrace.commands.options import add_command, add_output

#: the largest sizes synth takes: a trace of a billion records would fill a disk
MAX_EVENTS = 200_000_000
MAX_CALLS = 20_000_000
MAX_CLIENTS = 100_000


def _check(args) -> None:
    for name, limit in (("clients", MAX_CLIENTS), ("calls", MAX_CALLS), ("events", MAX_EVENTS)):
        value = getattr(args, name)
        if value is not None and not 1 <= value <= limit:
            raise RpctraceError(f"--{name} must be between 1 and {limit:,}, not {value}")
    if args.events is not None and args.calls is not None:
        raise RpctraceError("give --events (a record count: calls are added until it is reached) or --calls, not both")


def cmd_synth(args) -> int:
    from rpctrace import synth
    from rpctrace.render.files import check_output

    _check(args)
    check_output(args.output)
    if args.truth:
        check_output(args.truth)
    with progress_for(args, f"writing {args.scenario}") as bar:
        summary = synth.synthesize(
            args.scenario, args.output, args.truth, seed=args.seed, clients=args.clients, calls=args.calls,
            events=args.events, pointer_size=4 if args.x86 else 8, compress=args.compress, on_progress=bar,
        )
    made = summary["record_count"] + summary.get("events_lost", 0)
    if args.events is not None and made > args.events:
        import os

        os.unlink(args.output)
        if args.truth and os.path.exists(args.truth):
            os.unlink(args.truth)
        raise RpctraceError(f"--events {args.events:,} is less than the {args.scenario} scenario needs without any "
                            f"background call ({made:,} records): ask for at least {made:,}")
    warn(f"wrote {args.output}: {summary['record_count']} records, {summary.get('calls', 0)} calls"
         + (f", truth {args.truth}" if args.truth else ""))
    return EXIT_OK


def register(sub) -> None:
    from rpctrace.synth import SCENARIOS

    p = add_command(sub, "synth", "write a synthetic trace of a scenario, with its ground truth")
    p.add_argument("scenario", choices=sorted(SCENARIOS),
                   help="the scenario to write: " + ", ".join(sorted(SCENARIOS)) + " (docs/synth.md describes each)")
    add_output(p, "OUT.etl", "the .etl file to write", required=True)
    p.add_argument("--truth", metavar="OUT.json", help="also write the ground truth (every call, its threads and "
                                                        "failures) as JSON")
    p.add_argument("--seed", type=int, default=1, help="random seed: the same arguments give the same bytes (default 1)")
    p.add_argument("--clients", type=int, help="background client processes (default: the scenario's)")
    p.add_argument("--calls", type=int, help="background calls (default: the scenario's)")
    p.add_argument("--events", type=int, help="target record count instead of --calls (busy-server: exactly that many)")
    p.add_argument("--x86", action="store_true", help="write a 32-bit logger's trace")
    p.add_argument("--compress", action="store_true", help="compress buffers as Windows compressed mode does")
    p.set_defaults(func=cmd_synth)
