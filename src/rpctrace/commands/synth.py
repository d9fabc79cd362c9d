"""`rpctrace synth`: write a scenario's trace and its ground truth."""

from __future__ import annotations

import sys

from rpctrace.commands import EXIT_OK


def cmd_synth(args) -> int:
    from rpctrace import synth

    summary = synth.synthesize(
        args.scenario, args.output, args.truth, seed=args.seed, clients=args.clients, calls=args.calls,
        events=args.events, pointer_size=4 if args.x86 else 8, compress=args.compress,
    )
    sys.stderr.write(
        f"rpctrace: wrote {args.output}: {summary['record_count']} records, {summary.get('calls', 0)} calls"
        + (f", truth {args.truth}" if args.truth else "") + "\n"
    )
    return EXIT_OK


def register(sub) -> None:
    from rpctrace.synth import SCENARIOS

    p = sub.add_parser("synth", help="write a synthetic trace of a scenario, with its ground truth")
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("-o", "--output", required=True, metavar="OUT.etl")
    p.add_argument("--truth", metavar="OUT.json")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--clients", type=int)
    p.add_argument("--calls", type=int)
    p.add_argument("--events", type=int)
    p.add_argument("--x86", action="store_true", help="write a 32-bit logger's trace")
    p.add_argument("--compress", action="store_true", help="compress buffers as Windows compressed mode does")
    p.set_defaults(func=cmd_synth)
