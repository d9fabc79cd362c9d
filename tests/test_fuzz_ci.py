"""A CI-sized run of benchmarks/fuzz.py: every reader gets mutated real samples for a few seconds
(the trace readers, security descriptors and hives, and the PDB and PE readers of
``rpctrace.symbols``: the PDB target runs rpctrace's own PDB reader process).

The same seeds, mutations, worker pool (address space limited, a time limit per input) and
outcome classification as the run by hand (``python benchmarks/fuzz.py``, 100,000 inputs per
reader; see benchmarks/README.md), bounded by time instead of count: about 7.5 s per reader,
about 70 s in all.  Any crash, hang or memory blow-up fails the test and names the saved input
and how to replay it.  ``RPCTRACE_FUZZ_SEED`` picks other inputs (the default is fixed, so a
failure reproduces).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SECONDS_PER_TARGET = 7.5
MIN_INPUTS = 50
SEED = int(os.environ.get("RPCTRACE_FUZZ_SEED", "20240501"))


def _fuzz_module():
    # appended, not prepended: the module is imported by name in the spawned workers too
    if str(BENCHMARKS) not in sys.path:
        sys.path.append(str(BENCHMARKS))
    import fuzz

    return fuzz


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process took the id
        return False
    try:  # a zombie child that was not reaped yet still answers kill(pid, 0)
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="the fuzz pool needs POSIX rlimits")
def test_fuzz_every_reader_briefly(tmp_path):
    fuzz = _fuzz_module()
    try:
        seeds = {target: fuzz.SEED_LOADERS[target]() for target in fuzz.TARGETS}
    except fuzz.MissingSamples as exc:
        pytest.fail(f"fuzz seeds are missing: {exc}")
    results = []
    began = time.monotonic()
    pids: list[int] = []
    with fuzz.Pool(workers=2, timeout=fuzz.DEFAULT_TIMEOUT, memory_mb=fuzz.DEFAULT_MEMORY_MB) as pool:
        for target in fuzz.TARGETS:
            pids += [slot.proc.pid for slot in pool.slots]
            results.append(fuzz.fuzz_target(target, pool, count=None, seconds=SECONDS_PER_TARGET, seed=SEED,
                                            out=tmp_path, seeds=seeds[target]))
        pids += [slot.proc.pid for slot in pool.slots]
    took = time.monotonic() - began
    table = fuzz.format_table(results)
    print(f"\n{table}\n({took:.1f} s, seed {SEED})")

    # nothing left behind: the workers (and any replaced after a hang) are gone and reaped
    assert not multiprocessing.active_children()
    assert not [pid for pid in set(pids) if _alive(pid)]

    failed = {r.target: r.signatures for r in results if r.failures}
    saved = [path for r in results for path in r.saved]
    assert not failed, f"fuzzing found failures (seed {SEED}):\n{table}\n{failed}\nsaved inputs (replay with " \
                       f"python benchmarks/fuzz.py --target T --replay FILE):\n" + "\n".join(saved)
    few = {r.target: r.inputs for r in results if r.inputs < MIN_INPUTS}
    assert not few, f"too few inputs ran: {few}\n{table}"
