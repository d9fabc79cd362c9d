"""Questions across an index: DuckDB in this process, the tables as views, a few named queries.

:func:`connect` opens an in-memory DuckDB database with one view per table (``calls``,
``failures``, ``processes``, ``traces``) over the committed Parquet files of an index (those a
manifest lists: a file set a killed run left half-written is not seen), with the ``host`` and
``day`` partition columns.  :data:`NAMED` holds the built-in questions, parameterised (a name
given on the command line is a bound parameter, never pasted into SQL).  :func:`resolve_call`
turns ``TRACE:ID`` into the input file and call number, for ``report`` and ``explain``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

from rpctrace.errors import RpctraceError, printable
from rpctrace.tables.schema import TABLES

__all__ = ["connect", "NAMED", "NamedQuery", "run", "resolve_call", "indexed_trace", "like_pattern"]

_DUCK_TYPES = {"string": "VARCHAR", "int64": "BIGINT", "int32": "INTEGER", "float64": "DOUBLE", "bool": "BOOLEAN",
               "timestamp": "TIMESTAMPTZ", "list<string>": "VARCHAR[]"}


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect(on: str):
    """A DuckDB connection with the index ``on``'s tables as views."""
    try:
        import duckdb
    except ImportError:
        raise RpctraceError("rpctrace query needs DuckDB: pip install 'rpctrace[index]'") from None
    from rpctrace.tables.store import MANIFESTS, committed_files

    if not os.path.isdir(os.path.join(on, MANIFESTS)):
        raise RpctraceError(f"--on {printable(on, 200)}: not an index (no {MANIFESTS} folder; write one with "
                            "`rpctrace index INPUT... -o DIR`)")
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    for name, files in committed_files(on).items():
        if files:
            listing = ", ".join(_literal(f) for f in files)
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{listing}], hive_partitioning = true, "
                        "hive_types = {'host': VARCHAR, 'day': VARCHAR})")
        else:  # an index with no trace yet: the table exists, empty, with its columns
            cols = ", ".join(f"CAST(NULL AS {_DUCK_TYPES[c.type]}) AS \"{c.name}\"" for c in TABLES[name].columns)
            con.execute(f"CREATE VIEW {name} AS SELECT {cols}, CAST(NULL AS VARCHAR) AS host, "
                        "CAST(NULL AS VARCHAR) AS day WHERE false")
    return con


@dataclass(frozen=True)
class NamedQuery:
    option: str  # the command-line option
    metavar: str | None  # the parameter's name, or None
    help: str
    sql: str  # with ? for the parameter
    param: Callable[[str], str] | None = None  # what the parameter becomes before it is bound


def like_pattern(glob: str) -> str:
    """A path with ``*`` wildcards as a LIKE pattern (escape character ``^``): ``%`` and ``_``
    match themselves, backslashes stay backslashes."""
    return "".join("%" if ch == "*" else "^" + ch if ch in "%_^" else ch for ch in glob)


NAMED: tuple[NamedQuery, ...] = (
    NamedQuery("--failed-by-service", None, "failed calls per server service: how many, on how many hosts and traces", """
        SELECT coalesce(server_service, server_image) AS service, count(*) AS failed_calls,
               count(DISTINCT host) AS hosts, count(DISTINCT trace_id) AS traces,
               min("start") AS first, max("start") AS last
        FROM calls WHERE failed GROUP BY 1 ORDER BY failed_calls DESC, service"""),
    NamedQuery("--procedure", "NAME", "which hosts and clients called this procedure (e.g. EfsRpcOpenFileRaw), on "
                                      "which server, how often and how many failed", """
        SELECT host, client_image, server_image, server_service, interface_name, procedure,
               count(*) AS calls, count(*) FILTER (WHERE failed) AS failed, min("start") AS first, max("start") AS last
        FROM calls WHERE lower(procedure) = lower(?)
        GROUP BY ALL ORDER BY calls DESC, host"""),
    NamedQuery("--denied-key", "PATH", "which services (or processes) were denied this registry key or file "
                                       "(* matches any characters, any case), on which hosts", """
        SELECT f.host, coalesce(c.server_service, p.service, c.server_image, p.image) AS service, f.path,
               f.kind, f.status_name, count(*) AS denied, count(DISTINCT f.trace_id) AS traces,
               min(f.ts) AS first, max(f.ts) AS last
        FROM failures f
        LEFT JOIN calls c ON c.trace_id = f.trace_id AND c.call_id = f.call_id
        LEFT JOIN processes p ON p.trace_id = f.trace_id AND p.pid = f.pid
        WHERE (f.status IN (3221225506, 2147942405) OR f.status_name = 'STATUS_ACCESS_DENIED')
          AND f.path ILIKE ? ESCAPE '^'
        GROUP BY ALL ORDER BY denied DESC, f.host""", like_pattern),
    NamedQuery("--findings", None, "every failure `rpctrace explain` blames, with its host, trace and call", """
        SELECT f.host, f.day, t.path, f.trace_id || ':' || coalesce(CAST(f.finding_call_id AS VARCHAR), '-') AS call,
               f.kind, f.path AS target, f.status_name, f.identity_service, f.identity_user, f.finding_summary
        FROM failures f JOIN traces t USING (trace_id) WHERE f.finding ORDER BY f.ts"""),
    NamedQuery("--lacking", None, "traces that lack something the answers need, or lost events, with what", """
        SELECT host, day, path, member, events, calls, events_lost, buffers_lost, error, lacks
        FROM traces WHERE len(lacks) > 0 ORDER BY host, day, path"""),
    NamedQuery("--hosts", None, "per host: traces, days, calls, failed calls and the time span", """
        SELECT host, count(*) AS traces, count(DISTINCT day) AS days, sum(calls) AS calls,
               sum(failed_calls) AS failed_calls, min("start") AS first, max("end") AS last
        FROM traces GROUP BY host ORDER BY host"""),
)


def run(con, sql: str, params: list | None = None) -> tuple[list[str], list[tuple]]:
    """Column names and rows of ``sql``; a DuckDB error becomes one line."""
    import duckdb

    try:
        cur = con.execute(sql, params or [])
        if cur.description is None:
            return [], []
        return [d[0] for d in cur.description], cur.fetchall()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RpctraceError(f"query: {printable(first, 500)}") from None


def resolve_call(on: str, spec: str) -> tuple[dict, int]:
    """``TRACE:ID`` -> (the trace's row of the traces table, call id).  TRACE is a trace id (or a
    unique prefix of one, 6 digits or more), or the input's path or file name as indexed."""
    trace, sep, number = spec.rpartition(":")
    if not sep or not trace or not number.isdigit():
        raise RpctraceError(f"--call {printable(spec, 200)}: with --on, say TRACE:ID (a trace id, path or file name "
                            "from the traces table, a colon, and the call's number)")
    con = connect(on)
    cols, rows = run(con, "SELECT trace_id, path, member, compression FROM traces")
    records = [dict(zip(cols, r)) for r in rows]
    low = trace.lower()
    found = [r for r in records if r["trace_id"] == low]
    if not found and len(low) >= 6 and all(ch in "0123456789abcdef" for ch in low):
        found = [r for r in records if r["trace_id"].startswith(low)]
    if not found:
        whole = os.path.abspath(trace)
        found = [r for r in records if trace in (r["path"], _shown(r), os.path.basename(r["path"]), r["member"])
                 or whole in (r["path"], _shown(r))]
    if not found:
        raise RpctraceError(f"--call {printable(spec, 200)}: no trace {printable(trace, 200)} in the index "
                            f"{printable(on, 200)} (`rpctrace query --on {printable(on, 200)} \"SELECT trace_id, path "
                            "FROM traces\"` lists them)")
    if len({r["trace_id"] for r in found}) > 1:
        names = ", ".join(sorted({r["trace_id"] for r in found})[:5])
        raise RpctraceError(f"--call {printable(spec, 200)}: {printable(trace, 200)} names several traces ({names}); "
                            "give the trace id")
    return found[0], int(number)


def _shown(row: dict) -> str:
    return f"{row['path']}!{row['member']}" if row.get("member") else row["path"]


@contextmanager
def indexed_trace(on: str, spec: str) -> Iterator[tuple[str, int]]:
    """``(plain trace file, call id)`` for ``--on DIR --call TRACE:ID``: the input the traces
    table records, decompressed to a temporary file while in use when it was compressed, and
    checked to hold the very bytes that were indexed (a file changed since would give other
    call numbers)."""
    from rpctrace.errors import InputError
    from rpctrace.tables.rows import trace_id_of
    from rpctrace.tables.inputs import InputTask, materialize

    row, call_id = resolve_call(on, spec)
    shown = _shown(row)
    if not os.path.isfile(row["path"]):
        raise InputError(shown, "the indexed input is no longer there (the index keeps tables, not traces)")
    task = InputTask(row["path"], shown, row.get("compression"), row.get("member"))
    with materialize(task) as m:
        if trace_id_of(m.sha256) != row["trace_id"]:
            raise InputError(shown, f"changed since it was indexed (its content is now {trace_id_of(m.sha256)}, the "
                                    f"index has {row['trace_id']}): index it again")
        yield m.path, call_id
