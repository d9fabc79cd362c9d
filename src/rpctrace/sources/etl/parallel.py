"""Run independent per-buffer work on every core.

Only decompression is farmed out: its input and output are plain bytes, cheap to send between
processes, while decoded events would cost more to send back than to decode.  Pools use the
``fork`` start method where the platform has it (no re-import of the program); elsewhere, or if
a pool cannot be started (restricted sandboxes), the work runs in this process.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Sequence

from rpctrace.sources.etl.container import inflate_data

#: below this many compressed buffers the pool's start-up costs more than it saves
PARALLEL_MIN_BUFFERS = 48


def inflate_data_job(job: tuple[bytes, int]):
    return inflate_data(*job)


def parallel_map(fn: Callable, jobs: Sequence, workers: int | None = None) -> list | None:
    """``[fn(j) for j in jobs]`` across processes, or None when a pool is not worth or not able to run."""
    workers = workers or min(os.cpu_count() or 1, 8)
    if workers < 2 or os.environ.get("RPCTRACE_SERIAL"):
        return None
    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            return list(pool.map(fn, jobs, chunksize=max(1, len(jobs) // (workers * 4))))
    except (OSError, RuntimeError, PermissionError):
        return None
