"""Running the index: one task per trace, in this process, a local process pool, or a cluster.

:func:`index_one` is the whole work of one trace (decompress if needed, hash, skip it if its
file set is already committed, the extractor (:func:`rpctrace.pipeline.extract.extract`, given by
the pipeline), write the file set) and
never raises for a bad input: it returns an :class:`Outcome` naming the error, so one damaged
file never stops a run.  :func:`run_local` runs it on ``jobs`` processes; :func:`run_cluster`
sends one task per trace to a Dask distributed scheduler, whose workers write to the same
(shared) directory: the layout and the rows are the same either way.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from rpctrace.errors import InputError, OutputError, RpctraceError, printable
from rpctrace.tables.inputs import DEFAULT_MAX_UNPACKED, InputTask
from rpctrace.tables.rows import Extracted

__all__ = ["IndexOptions", "Outcome", "index", "index_one", "parse_size", "run_local", "run_cluster"]

OnProgress = Callable[[float, float], None]


@dataclass(frozen=True)
class IndexOptions:
    out: str  # the index directory (on a cluster: the shared path, as the workers see it)
    keep_going: bool = False
    force: bool = False  # index again traces whose file set is already committed
    max_unpacked: int = DEFAULT_MAX_UNPACKED
    tmpdir: str | None = None
    serial: bool = False  # one trace per process: the ETL reader starts no pool of its own
    #: one trace -> its rows (:func:`rpctrace.pipeline.extract.extract`): a module-level function,
    #: so that it pickles by name to worker processes and cluster workers
    extractor: Callable[..., Extracted] | None = None


@dataclass
class Outcome:
    """What became of one trace."""

    display: str
    status: str  # "indexed", "already" (its file set was committed before), "bad" (nothing indexed)
    trace_id: str | None = None
    calls: int = 0
    failures: int = 0
    error: str | None = None  # one line; with status "indexed", what was read before it is indexed
    host: str | None = None
    day: str | None = None
    seconds: float = 0.0
    replaced: bool = False

    @property
    def bad(self) -> bool:
        return self.error is not None


def index_one(task: InputTask, options: IndexOptions) -> Outcome:
    """Index one trace (see the module docstring); raises only OutputError (the index cannot be
    written: no other trace could be either)."""
    from rpctrace.tables import store
    from rpctrace.tables.rows import trace_id_of
    from rpctrace.tables.inputs import materialize

    if options.serial:
        os.environ["RPCTRACE_SERIAL"] = "1"
    started = time.perf_counter()
    try:
        with materialize(task, options.tmpdir, options.max_unpacked) as m:
            trace_id = trace_id_of(m.sha256)
            if not options.force:
                done = store.read_manifest(options.out, trace_id)
                if done is not None and done.get("rpctrace_version") == _version():
                    rows = done.get("rows") or {}
                    return Outcome(task.display, "already", trace_id, rows.get("calls", 0), rows.get("failures", 0),
                                   done.get("error"), done.get("host"), done.get("day"),
                                   time.perf_counter() - started)
            if options.extractor is None:
                raise RpctraceError("index: no extractor given (rpctrace.pipeline.index gives it)")
            ex = options.extractor(m.path, sha256=m.sha256, display=task.display, origin=task.path, member=task.member,
                         input_bytes=m.size,
                         compression=task.compression, keep_going=options.keep_going, damage=m.damage)
            written = store.write_file_set(options.out, ex, {"input": task.display, "sha256": m.sha256})
            return Outcome(task.display, "indexed", ex.trace_id, ex.calls, ex.failures, ex.error, ex.host, ex.day,
                           time.perf_counter() - started, written.replaced)
    except OutputError:
        raise
    except InputError as exc:
        return Outcome(task.display, "bad", error=exc.one_line(), seconds=time.perf_counter() - started)
    except (MemoryError, RecursionError, ValueError, OSError, KeyError, IndexError, TypeError,
            AttributeError, OverflowError, UnicodeError, EOFError, ArithmeticError) as exc:
        # a hostile file can break what no reader foresaw: that input is bad, the run goes on
        return Outcome(task.display, "bad", error=f"{printable(task.display, 200)}: {type(exc).__name__}: "
                                                  f"{printable(str(exc))}", seconds=time.perf_counter() - started)


def _version() -> str:
    from rpctrace import __version__

    return __version__


def _worker_init() -> None:
    os.environ["RPCTRACE_SERIAL"] = "1"  # parallel across traces, not inside one


def run_local(tasks: Sequence[InputTask], options: IndexOptions, jobs: int = 0,
              on_progress: OnProgress | None = None) -> list[Outcome]:
    """Index ``tasks`` on ``jobs`` processes (0: every core); outcomes in the order of ``tasks``."""
    jobs = jobs or os.cpu_count() or 1
    outcomes: list[Outcome | None] = [None] * len(tasks)
    total = len(tasks)
    if on_progress is not None:
        on_progress(0, total)
    if jobs <= 1 or total <= 1:
        for i, task in enumerate(tasks):
            outcomes[i] = index_one(task, options)
            if on_progress is not None:
                on_progress(i + 1, total)
        return outcomes  # type: ignore[return-value]
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    serial = replace(options, serial=True)
    with ProcessPoolExecutor(max_workers=min(jobs, total), mp_context=context, initializer=_worker_init) as pool:
        futures = {pool.submit(index_one, task, serial): i for i, task in enumerate(tasks)}
        done = 0
        try:
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    outcomes[i] = fut.result()
                except OutputError:
                    raise
                except Exception as exc:  # a worker that died (killed, out of memory)
                    outcomes[i] = Outcome(tasks[i].display, "bad", error=f"{printable(tasks[i].display, 200)}: the "
                                          f"worker process failed: {type(exc).__name__}: {printable(str(exc))}")
                done += 1
                if on_progress is not None:
                    on_progress(done, total)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return outcomes  # type: ignore[return-value]


def run_cluster(address: str, tasks: Sequence[InputTask], options: IndexOptions,
                on_progress: OnProgress | None = None, timeout: float = 30) -> list[Outcome]:
    """Index ``tasks`` on the Dask distributed cluster whose scheduler is at ``address``
    (``tcp://HOST:8786``): one task per trace; the workers must have rpctrace installed and see
    the inputs and ``options.out`` at the same paths as this machine (a shared file system)."""
    from rpctrace.errors import RpctraceError

    try:
        from distributed import Client, as_completed as dask_completed
    except ImportError:
        raise RpctraceError("--cluster needs Dask distributed: pip install 'rpctrace[cluster]'") from None
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise RpctraceError(f"--cluster {printable(address, 200)}: cannot reach the scheduler: {exc}") from None
    serial = replace(options, serial=True)
    outcomes: list[Outcome | None] = [None] * len(tasks)
    total = len(tasks)
    try:
        if on_progress is not None:
            on_progress(0, total)
        # pure=False: a re-run sends the work again rather than reusing a cached result
        futures = client.map(index_one, list(tasks), options=serial, pure=False)
        position = {f.key: i for i, f in enumerate(futures)}
        done = 0
        for fut in dask_completed(futures, loop=client.loop):
            i = position[fut.key]
            try:
                outcomes[i] = fut.result()
            except OutputError:
                raise
            except Exception as exc:  # a lost worker, a task the scheduler gave up on
                outcomes[i] = Outcome(tasks[i].display, "bad", error=f"{printable(tasks[i].display, 200)}: the cluster "
                                      f"task failed: {type(exc).__name__}: {printable(str(exc))}")
            done += 1
            if on_progress is not None:
                on_progress(done, total)
    finally:
        client.close()
    return outcomes  # type: ignore[return-value]


_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)i?b?\s*$", re.I)


def parse_size(text: str) -> int:
    """``123``, ``64M``, ``32G``, ``1TiB`` -> bytes."""
    m = _SIZE.match(text)
    if not m:
        raise RpctraceError(f"--max-unpacked: not a size: {printable(text, 40)} (say e.g. 64G)")
    return int(m.group(1)) << (10 * " kmgt".index(m.group(2).lower() or " "))


def index(inputs: Sequence[str], out: str, jobs: int = 0, cluster: str | None = None, keep_going: bool = False,
          force: bool = False, max_unpacked: int = DEFAULT_MAX_UNPACKED, on_progress: OnProgress | None = None,
          extractor: Callable[..., Extracted] | None = None) -> dict:
    """Index ``inputs`` into ``out`` (locally on ``jobs`` processes, or on the Dask scheduler at
    ``cluster``) and return the summary: inputs, traces (distinct contents), indexed now and
    already, calls, failures, skipped files, bad inputs with their one-line errors, seconds."""
    import importlib.util

    from rpctrace.tables import store
    from rpctrace.tables.inputs import expand

    if importlib.util.find_spec("pyarrow") is None:
        raise RpctraceError("rpctrace index needs pyarrow: pip install 'rpctrace[index]'")
    if jobs < 0:
        raise RpctraceError("--jobs: give a number of processes, 1 or more (0: every core)")
    options = IndexOptions(out=out, keep_going=keep_going, force=force, max_unpacked=max_unpacked, extractor=extractor)
    store.prepare(out)
    store.sweep_temporary(out)
    started = time.perf_counter()
    found = expand(inputs, exclude=[out])
    if cluster:
        outcomes = run_cluster(cluster, found.tasks, options, on_progress=on_progress)
    else:
        outcomes = run_local(found.tasks, options, jobs=jobs, on_progress=on_progress)
    seconds = time.perf_counter() - started
    traces = [o for o in outcomes if o.status != "bad"]
    unique = {o.trace_id: o for o in traces}  # the same content given twice is one trace
    bad = [(b.display, b.error) for b in found.bad] + [(o.display, o.error) for o in outcomes if o.bad]
    return {
        "index": out,
        "inputs": len(found.tasks) + len(found.bad),
        "traces": len(unique),
        "same_content": len(traces) - len(unique),
        "indexed_now": sum(o.status == "indexed" for o in outcomes),
        "already_indexed": sum(o.status == "already" for o in outcomes),
        "calls": sum(o.calls for o in unique.values()),
        "failures": sum(o.failures for o in unique.values()),
        "skipped_files": found.skipped,
        "bad_inputs": [{"input": d, "error": e} for d, e in bad],
        "seconds": round(seconds, 3),
        "where": cluster or f"{jobs or os.cpu_count() or 1} local process(es)",
    }
