"""Run independent per-buffer work on every core.

Two kinds of work leave the main process: decompressing buffers (bytes in, bytes out) and
decoding buffers into events.  Decoded events come back as one ``marshal`` blob per buffer of
plain tuples, which this process turns into :class:`~rpctrace.model.Event` records with one C
call per event; that costs about a third of decoding them here, so the main process is left the
merge and whatever consumes the events (correlation), and decoding runs on the other core.

Pools use the ``fork`` start method where the platform has it (no re-import of the program, and
the worker opens the trace itself); elsewhere, or if a pool cannot be started (restricted
sandboxes) or breaks, the work runs in this process.
"""

from __future__ import annotations

import gc
import marshal
import mmap
import multiprocessing
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

from rpctrace.model import Event, Stack
from rpctrace.sources.etl.container import ContainerError, drop_pages, inflate_data, read_buffer

if TYPE_CHECKING:
    from rpctrace.sources.etl.records import BufferDecoder

#: below this many compressed buffers the pool's start-up costs more than it saves
PARALLEL_MIN_BUFFERS = 48
#: below this many buffers decoding stays in this process (a pool starts in ~50 ms)
PARALLEL_MIN_DECODE_BUFFERS = 64

_make_event = partial(tuple.__new__, Event)


def inflate_data_job(job: tuple[bytes | memoryview, int]) -> bytes | tuple[str, int]:
    return inflate_data(*job)


def _workers(workers: int | None) -> int:
    if os.environ.get("RPCTRACE_SERIAL"):
        return 1
    return workers or min(os.cpu_count() or 1, 8)


def parallel_map(fn: Callable, jobs: Sequence, workers: int | None = None) -> list | None:
    """``[fn(j) for j in jobs]`` across processes, or None when a pool is not worth or not able to run."""
    workers = _workers(workers)
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return None
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            return list(pool.map(fn, jobs, chunksize=max(1, len(jobs) // (workers * 4))))
    except (OSError, RuntimeError, PermissionError):
        return None


# ---------------------------------------------------------------- decoding buffers

_STATE: tuple[mmap.mmap, int, BufferDecoder] | None = None  # in a worker: (file view, file size, BufferDecoder)


def _init_decoder(path: str, size: int, decoder: BufferDecoder) -> None:
    global _STATE
    # A worker's objects live for one buffer and hold no cycles: the collector would only
    # rescan them (it costs a third of the decoding time when left on).
    gc.disable()
    with open(path, "rb") as f:
        view = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    _STATE = (view, size, decoder)


def decode_job(view, size: int, decoder, job: tuple, drop_pages: Callable | None = None) -> tuple:
    """Decode one buffer: ``job`` is (file offset, buffer index, cpu, record bytes or None, skip)."""
    offset, index, cpu, data, skip = job
    if data is None:
        try:
            buf = read_buffer(view, offset, index, size)
        except ContainerError as exc:  # indexed before, so it read once; the file changed?
            return [], [], [(0, 0, exc.message)], (0, 0, 0)
        data = buf.data
        if drop_pages is not None:
            drop_pages(view, offset, buf.size)
    raws, events, damage, counts = decoder.decode(data, cpu, skip)
    return raws, events, damage, counts.as_tuple()


def _decode_in_worker(job: tuple) -> bytes:
    if _STATE is None:  # the pool's initializer sets it
        raise RuntimeError("decoding worker started without _init_decoder")
    view, size, decoder = _STATE
    raws, events, damage, counts = decode_job(view, size, decoder, job, drop_pages)
    tuples = [tuple(ev) for ev in events]
    # marshal knows plain tuples only: a Stack travels as [kernel frame count, frames]
    stacked = [i for i, ev in enumerate(events) if ev[10] is not None]
    for i in stacked:
        stack = tuples[i][10]
        tuples[i] = tuples[i][:10] + ([getattr(stack, "kernel_frames", 0), tuple(stack)],)
    return marshal.dumps((raws, tuples, damage, counts, stacked))


class DecodePool:
    """Decodes buffers in worker processes, results in submission order."""

    def __init__(self, pool: ProcessPoolExecutor, workers: int, fallback: Callable[[tuple], tuple]):
        self._pool = pool
        self._window = 4 * workers
        self._fallback = fallback

    @classmethod
    def start(cls, path: str, size: int, decoder, workers: int | None,
              fallback: Callable[[tuple], tuple]) -> "DecodePool | None":
        workers = _workers(workers)
        if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
            return None
        try:
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                                       initializer=_init_decoder, initargs=(path, size, decoder))
        except (OSError, RuntimeError, PermissionError):
            return None
        return cls(pool, workers, fallback)

    def run(self, jobs: Iterable[tuple]) -> Iterator[tuple]:
        """``(raws, events, damage, counts)`` per job, in order; at most a window of jobs ahead.

        The window bounds memory: decoded buffers wait here only a few at a time, however far
        the consumer is behind.  If the pool cannot run or breaks, the rest is decoded here.
        """
        it = iter(jobs)
        pending: deque = deque()
        broken = False
        try:
            for job in it:
                pending.append((job, self._pool.submit(_decode_in_worker, job)))
                if len(pending) >= self._window:
                    break
        except (OSError, RuntimeError):
            broken = True
        while pending:
            job, fut = pending.popleft()
            if not broken:
                nxt = next(it, None)
                if nxt is not None:
                    try:
                        pending.append((nxt, self._pool.submit(_decode_in_worker, nxt)))
                    except (OSError, RuntimeError):
                        broken = True
                        pending.append((nxt, None))
            try:
                if fut is None:
                    raise RuntimeError("pool not running")
                raws, tuples, damage, counts, stacked = marshal.loads(fut.result())
            except (OSError, RuntimeError, EOFError, ValueError):  # BrokenProcessPool is a RuntimeError
                broken = True
                yield self._fallback(job)
                continue
            events = list(map(_make_event, tuples))
            for i in stacked:
                n, frames = events[i][10]
                events[i] = events[i]._replace(stack=Stack(frames[:n], frames[n:]))
            yield raws, events, damage, counts
        for job in it:
            yield self._fallback(job)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
