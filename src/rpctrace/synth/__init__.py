"""Synthetic ETW traces (.etl) with ground truth, for tests and demos.

Why rpctrace writes its own traces: no public .etl file holds kernel ALPC, Microsoft-Windows-RPC
or registry events, so the reader, the correlator and the explainer are tested on files written
here, from the documented layouts in ``shared/reference`` - never by calling rpctrace's reader,
which this package must not import.

Modules:

* :mod:`~rpctrace.synth.etlfile` - the container (buffers, record headers, logfile header);
* :mod:`~rpctrace.synth.payloads` - event payload encoders (also Process/Thread/Image in every MOF
  version, for classic-header traces);
* :mod:`~rpctrace.synth.stackcache` - stacks as stack-cache references and definitions, deferred
  user parts;
* :mod:`~rpctrace.synth.emit` - which header each event kind uses, and the normalized events;
* :mod:`~rpctrace.synth.catalog` - the modules, services and interfaces of the simulated machine;
* :mod:`~rpctrace.synth.world` - the simulated machine: processes, threads, modules and their
  addresses, stack frames, registry keys, services;
* :mod:`~rpctrace.synth.simulate` - the simulator: LRPC calls, ALPC exchanges, server work,
  rundowns, process start and exit;
* :mod:`~rpctrace.synth.run` - one scenario run: its plan and the background traffic;
* :mod:`~rpctrace.synth.stories` - the storylines (the AudioSrv incident, the nested chain, a
  short-lived process);
* :mod:`~rpctrace.synth.scenarios` - the registry of the five scenarios and the builder of one;
* :mod:`~rpctrace.synth.truth` - the ground-truth JSON;
* :mod:`~rpctrace.synth.xpress` - the buffer compressor (optional ``compress=True``).
"""

from __future__ import annotations

import time
from pathlib import Path

from rpctrace.synth.scenarios import SCENARIOS

__all__ = ["SCENARIOS", "synthesize"]


def synthesize(
    scenario: str,
    out: str | Path,
    truth: str | Path | None = None,
    *,
    seed: int = 1,
    clients: int | None = None,
    calls: int | None = None,
    events: int | None = None,
    pointer_size: int = 8,
    compress: bool = False,
    on_progress=None,
    stack_cache: int = 0,
) -> dict:
    """Write the trace of ``scenario`` to ``out`` (and its ground truth to ``truth``).

    ``clients`` is the number of background client processes, ``calls`` the number of background
    calls, ``events`` a target record count (it overrides ``calls``; for busy-server the file then
    holds exactly that many records, the logfile header included; for lost-events it counts the
    records before buffers are lost).  ``stack_cache`` > 0 logs stacks as Windows does with stack
    caching on, with that many entries per cache (references, definitions after them, keys
    reused; deferred user parts): :mod:`rpctrace.synth.stackcache`.  The same arguments always
    give the same bytes.  ``on_progress(records, expected)`` is called as buffers are written (for a
    progress bar).

    Returns a summary: scenario, path, record_count, calls (calls made), buffers, events_lost and
    buffers_lost (as the logfile header says them), records_lost (every record lost either way),
    bytes, seconds (wall time of the whole run) and truth (path or None).
    """
    from rpctrace.synth import scenarios, truth as truth_mod

    if pointer_size not in (4, 8):
        raise ValueError("pointer_size must be 4 or 8")
    started = time.perf_counter()
    track = truth is not None
    run, writer, header, keep = scenarios.generate(
        scenario, out, seed=seed, clients=clients, calls=calls, events=events, pointer_size=pointer_size,
        compress=compress, track=track, keep_limit=truth_mod.EVENTS_LIMIT, on_progress=on_progress,
        stack_cache=stack_cache,
    )
    if truth is not None:
        data = truth_mod.build(run, writer, header, scenario=scenario, seed=seed, keep=keep)
        truth_mod.write(truth, data)
    return {
        "scenario": scenario,
        "path": str(out),
        "record_count": writer.record_count,
        "calls": run.sim.next_call - 1,
        "buffers": writer.buffers_written + 1,
        "events_lost": writer.events_discarded,
        "buffers_lost": writer.buffers_dropped,
        "records_lost": writer.records_dropped,
        "bytes": Path(out).stat().st_size,
        "seconds": round(time.perf_counter() - started, 3),
        "truth": str(truth) if truth is not None else None,
    }
