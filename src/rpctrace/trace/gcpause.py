"""Pause Python's cyclic garbage collector while building large, long-lived structures.

Reading a trace allocates millions of small objects that all stay alive; each collection of the
oldest generation walks all of them, which makes the cost per event grow with the trace (1.44x
per event from 100k to 1M events in benchmarks/correlate.py, 1.13x with the collector paused).
Nothing built here forms reference cycles that need collecting before the pass ends.
"""

from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def gc_paused():
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
