"""Subcommands of the ``rpctrace`` CLI: one module per command (or family), each with
``register(subparsers)``.  Commands wire library pieces together and print; the logic lives in
sources, trace, correlate, explain and render.  Helpers shared by the commands are here.
"""

from __future__ import annotations

import sys

from rpctrace.errors import RpctraceError, printable

EXIT_OK, EXIT_INPUT = 0, 2

__all__ = ["EXIT_OK", "EXIT_INPUT", "RpctraceError", "err", "report_sources", "load_trace", "load_calls"]


def err(message: str) -> None:
    sys.stderr.write(f"rpctrace: error: {printable(message, 600)}\n")


def report_sources(trace) -> None:
    """Print losses and damage the readers counted (stderr, so stdout stays machine-readable)."""
    from rpctrace.sources import losses

    for info in trace.sources:
        events, buffers = losses(info)
        if events or buffers or info.get("buffers_flagged_lost"):
            sys.stderr.write(f"rpctrace: {info['path']}: the logger lost {events} events and {buffers} buffers\n")
        damage = info.get("damage") or []
        if damage:
            sys.stderr.write(f"rpctrace: {info['path']}: skipped {len(damage)} damaged region(s); first: {damage[0]}\n")


def load_trace(args):
    from rpctrace.trace import load

    trace = load(args.files, keep_going=args.keep_going)
    report_sources(trace)
    if trace.error is not None and not trace.events:
        raise trace.error
    return trace


def load_calls(args, operations: str = "all"):
    """``(trace, correlation)`` for commands that need the calls, not every event (streamed)."""
    from rpctrace.correlate import correlate_files

    trace, result = correlate_files(args.files, keep_going=args.keep_going, operations=operations)
    report_sources(trace)
    if trace.error is not None and not trace.records:
        raise trace.error
    return trace, result
