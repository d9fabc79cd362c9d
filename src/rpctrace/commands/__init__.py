"""Subcommands of the ``rpctrace`` CLI: one module per command, each with ``register(subparsers)``.

A command parses its arguments (shared options: :mod:`rpctrace.commands.options`), calls the
pipeline (:mod:`rpctrace.pipeline`) and hands the result to a renderer (:mod:`rpctrace.render`);
it holds no analysis.  The helpers here print what every command prints the same way.
"""

from __future__ import annotations

import sys

from rpctrace.errors import InputError, RpctraceError, printable

EXIT_OK, EXIT_INPUT = 0, 2

__all__ = ["EXIT_OK", "EXIT_INPUT", "RpctraceError", "err", "warn", "finish", "progress_for"]


def err(message: str) -> None:
    sys.stderr.write(f"rpctrace: error: {printable(message, 600)}\n")


def warn(message: str) -> None:
    sys.stderr.write(f"rpctrace: {printable(message, 600)}\n")


def finish(trace, limits: bool = False) -> int:
    """Exit status after the output is written: 2 (with the damage named) when reading stopped at
    damage, else 0.  Losses and skipped damage are warned about first; with ``limits`` (the
    commands that answer about calls) what the input cannot show, before them."""
    from rpctrace import pipeline
    from rpctrace.pipeline import source_warnings

    for line in pipeline.limits(trace, losses=False) if limits else ():
        warn(line)
    for line in source_warnings(trace):
        warn(line)
    symbols = getattr(trace, "symbols", None)
    for line in (symbols.symbolizer.problems if symbols is not None else ()):
        warn(line)
    error: InputError | None = getattr(trace, "error", None)
    if error is not None:
        err(error.one_line())
        return EXIT_INPUT
    return EXIT_OK


def progress_for(args, description: str):
    """The progress bar of a command (shown only on a terminal, never with JSON output)."""
    from rpctrace.progress import Progress

    return Progress(description, json_output=getattr(args, "format", None) in ("json", "jsonl"))
