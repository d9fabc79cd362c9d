"""A progress bar on stderr for work that takes a while, and nothing otherwise.

Reading a large trace, writing a report or a big synthetic trace can take tens of seconds; a
person at a terminal should see that something happens.  A bar appears only when

* stderr is a terminal (never in a pipe, a file or CI logs),
* the command does not write JSON (``--format json|jsonl``: tools read that output), and
* the work has already taken about two seconds (short runs stay quiet),

and it is removed when the work ends, so what the command prints stays as it was.  It is drawn
by rich (MIT).  ``RPCTRACE_PROGRESS=0`` turns it off; ``RPCTRACE_PROGRESS_DELAY`` sets the delay
in seconds (tests use 0).

Analyses never import this module: the pipeline hands them a plain callable
(``on_progress(done, total)``) and the command owns the bar.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any

__all__ = ["Progress", "enabled"]

DEFAULT_DELAY = 2.0


def enabled(stream: IO[str] | None = None, json_output: bool = False) -> bool:
    """Whether a bar may be shown on ``stream`` (stderr by default)."""
    if json_output or os.environ.get("RPCTRACE_PROGRESS", "") == "0":
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _delay() -> float:
    try:
        return max(0.0, float(os.environ.get("RPCTRACE_PROGRESS_DELAY", DEFAULT_DELAY)))
    except ValueError:
        return DEFAULT_DELAY


class Progress:
    """One bar, shown lazily.  ``update(done, total)`` may be called as often as wanted (it
    redraws at most ten times a second); ``stage(text)`` names the current step; ``close()``
    (or leaving the ``with`` block) removes it.  When disabled every method does nothing."""

    def __init__(self, description: str, *, json_output: bool = False, stream: IO[str] | None = None,
                 force: bool | None = None) -> None:
        self.description = description
        self.on = enabled(stream, json_output) if force is None else force
        self._stream = sys.stderr if stream is None else stream
        self._started = time.monotonic()
        self._delay = _delay()
        self._last = 0.0
        self._bar: Any = None
        self._task: Any = None
        self._done = 0.0
        self._total: float | None = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, done: float, total: float | None = None) -> None:
        self.update(done, total)

    def stage(self, description: str) -> None:
        self.description = description
        if self._bar is not None:
            self._bar.update(self._task, description=description, refresh=True)

    def update(self, done: float, total: float | None = None) -> None:
        if not self.on:
            return
        self._done = done
        if total is not None:
            self._total = total
        now = time.monotonic()
        if self._bar is None:
            if now - self._started < self._delay:
                return
            self._show()
        elif now - self._last < 0.1:
            return
        self._last = now
        self._bar.update(self._task, completed=self._done, total=self._total, description=self.description,
                         refresh=True)

    def _show(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress as Bar, TaskProgressColumn, TextColumn, TimeElapsedColumn

        console = Console(file=self._stream, stderr=self._stream is sys.stderr)
        self._bar = Bar(TextColumn("rpctrace: {task.description}"), BarColumn(), TaskProgressColumn(),
                        TimeElapsedColumn(), console=console, transient=True, auto_refresh=False)
        self._bar.start()
        self._task = self._bar.add_task(self.description, total=self._total, completed=self._done)

    def close(self) -> None:
        if self._bar is not None:
            try:
                self._bar.refresh()
                self._bar.stop()
            finally:
                self._bar = None
