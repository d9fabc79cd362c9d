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


def _targets() -> tuple[str, ...]:
    return _fuzz_module().TARGETS


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="the fuzz pool needs POSIX rlimits")
@pytest.mark.parametrize("target", _targets())
def test_fuzz_every_reader_briefly(tmp_path, target):
    fuzz = _fuzz_module()
    try:
        seeds = fuzz.SEED_LOADERS[target]()
    except fuzz.MissingSamples as exc:
        pytest.skip(f"fuzz seeds for {target} are missing: {exc}")
    began = time.monotonic()
    pids: list[int] = []
    with fuzz.Pool(workers=2, timeout=fuzz.DEFAULT_TIMEOUT, memory_mb=fuzz.DEFAULT_MEMORY_MB) as pool:
        pids += [slot.proc.pid for slot in pool.slots]
        result = fuzz.fuzz_target(target, pool, count=None, seconds=SECONDS_PER_TARGET, seed=SEED,
                                  out=tmp_path, seeds=seeds)
        pids += [slot.proc.pid for slot in pool.slots]
    took = time.monotonic() - began
    table = fuzz.format_table([result])
    print(f"\n{table}\n({took:.1f} s, seed {SEED})")

    # nothing left behind: the workers (and any replaced after a hang) are gone and reaped
    assert not multiprocessing.active_children()
    assert not [pid for pid in set(pids) if _alive(pid)]

    assert not result.failures, f"fuzzing found failures (seed {SEED}):\n{table}\n{result.signatures}\nsaved " \
                                f"inputs (replay with python benchmarks/fuzz.py --target {target} --replay FILE):\n" \
                                + "\n".join(result.saved)
    assert result.inputs >= MIN_INPUTS, f"too few inputs ran: {result.inputs}\n{table}"
