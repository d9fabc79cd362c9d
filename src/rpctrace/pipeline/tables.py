"""Tables for many traces, as the commands reach them: ``index``, ``query``, a call of an index.

The work is in :mod:`rpctrace.tables` (pyarrow, DuckDB and Dask are imported there, and only
when used); this module is the pipeline's face of it, so that commands import nothing else.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Sequence

from rpctrace.pipeline.read import OnProgress

if TYPE_CHECKING:
    from rpctrace.tables.query import NamedQuery

__all__ = ["index", "indexed_trace", "named_queries", "query"]


def index(inputs: Sequence[str], out: str, jobs: int = 0, cluster: str | None = None, keep_going: bool = False,
          force: bool = False, max_unpacked: str = "32G", on_progress: OnProgress | None = None) -> dict[str, Any]:
    """``rpctrace index``: every trace of ``inputs`` into the Parquet tables under ``out``; the
    summary (traces, calls, failures, the bad inputs with their one-line errors)."""
    from rpctrace.pipeline.extract import extract
    from rpctrace.tables.run import index as run_index
    from rpctrace.tables.run import parse_size

    return run_index(inputs, out, jobs=jobs, cluster=cluster, keep_going=keep_going, force=force,
                     max_unpacked=parse_size(max_unpacked), on_progress=on_progress, extractor=extract)


def named_queries() -> tuple[NamedQuery, ...]:
    """The built-in questions of ``rpctrace query`` (:data:`rpctrace.tables.query.NAMED`)."""
    from rpctrace.tables.query import NAMED

    return NAMED


def query(on: str, sql: str | None = None, named: str | None = None,
          value: str | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of ``sql``, or of the named query whose option is ``named`` (with
    its parameter ``value``), over the index ``on``."""
    from rpctrace.tables.query import NAMED, connect, run

    con = connect(on)
    if sql is not None:
        return run(con, sql)
    q = next(q for q in NAMED if q.option == named)
    params: list[Any] = [] if q.metavar is None else [q.param(value or "") if q.param else value]
    return run(con, q.sql, params)


def indexed_trace(on: str, spec: str) -> AbstractContextManager[tuple[str, int]]:
    """``(plain trace file, call id)`` for ``--on DIR --call TRACE:ID``, while in use
    (:func:`rpctrace.tables.query.indexed_trace`)."""
    from rpctrace.tables.query import indexed_trace as resolve

    return resolve(on, spec)
