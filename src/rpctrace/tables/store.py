"""The index on disk: one file set per trace, written whole or not at all.

Layout (Hive-style partitions, read as is by DuckDB, Spark and pyarrow)::

    DIR/calls/host=H/day=YYYY-MM-DD/<trace_id>-v<SCHEMA_VERSION>.parquet
    DIR/failures/host=H/day=.../<trace_id>-v1.parquet
    DIR/processes/host=H/day=.../<trace_id>-v1.parquet
    DIR/traces/host=H/day=.../<trace_id>-v1.parquet
    DIR/_manifests/<trace_id>-v1.json      the file set's commit record, written last
    DIR/_schema.json                       the tables' columns, types and meaning

A trace's four files are written under temporary names (``.NAME.tmp-PID-RANDOM``, which no
``*.parquet`` pattern matches) and renamed; its manifest is written the same way after them.
So a run killed at any moment leaves either a committed file set, or files no manifest lists
(which :func:`committed_files` does not return and a re-run overwrites), never half a table.
A re-run of the same trace writes the same names: its rows replace the old ones, never add to
them.  Every trace has all four files, empty ones included, so every table exists.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from typing import Iterable

from rpctrace import __version__
from rpctrace.errors import OutputError
from rpctrace.render.files import reason
from rpctrace.tables.schema import SCHEMA_VERSION, TABLES, arrow_schema

__all__ = ["write_file_set", "read_manifest", "committed_files", "manifests", "prepare", "sweep_temporary",
           "MANIFESTS"]

MANIFESTS = "_manifests"
#: temporary files older than this are left from a run that died, and are removed
STALE_SECONDS = 300


def set_name(trace_id: str) -> str:
    return f"{trace_id}-v{SCHEMA_VERSION}"


def manifest_path(out: str, trace_id: str) -> str:
    return os.path.join(out, MANIFESTS, set_name(trace_id) + ".json")


def prepare(out: str) -> None:
    """Create the index directory (and its manifest folder and schema description)."""
    try:
        os.makedirs(os.path.join(out, MANIFESTS), exist_ok=True)
    except OSError as exc:
        raise OutputError(out, reason(exc)) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(out, "permission denied")
    schema = {
        "schema_version": SCHEMA_VERSION,
        "partitions": ["host", "day"],
        "tables": {name: {"doc": t.doc, "columns": [{"name": c.name, "type": c.type, "doc": c.doc,
                                                     "nullable": c.nullable} for c in t.columns]}
                   for name, t in TABLES.items()},
    }
    _write_atomic(os.path.join(out, "_schema.json"), json.dumps(schema, indent=1).encode())


def _tmp(final: str) -> str:
    d, name = os.path.split(final)
    return os.path.join(d, f".{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def _write_atomic(final: str, data: bytes) -> None:
    tmp = _tmp(final)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, final)
    except OSError as exc:
        _unlink(tmp)
        raise OutputError(final, reason(exc)) from None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def read_manifest(out: str, trace_id: str) -> dict | None:
    """The committed manifest of ``trace_id`` in this schema version, or None."""
    try:
        with open(manifest_path(out, trace_id), encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA_VERSION:
        return None
    files = doc.get("files")
    if not isinstance(files, dict) or set(files) != set(TABLES):
        return None
    if not all(os.path.isfile(os.path.join(out, rel)) for rel in files.values()):
        return None  # a file of the set went missing: the set is not whole
    return doc


@dataclass(frozen=True)
class Written:
    manifest: dict
    replaced: bool  # an earlier file set of this trace was replaced


def write_file_set(out: str, extracted, extra: dict | None = None) -> Written:
    """Write the tables of one trace (an :class:`~rpctrace.tables.rows.Extracted`) and commit
    them with its manifest; an earlier file set of the same trace is replaced."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = set_name(extracted.trace_id)
    old = read_manifest(out, extracted.trace_id)
    files: dict[str, str] = {}
    written: list[tuple[str, str]] = []
    try:
        for table_name, table in TABLES.items():
            rel = os.path.join(table_name, f"host={extracted.host}", f"day={extracted.day}", name + ".parquet")
            final = os.path.join(out, rel)
            os.makedirs(os.path.dirname(final), exist_ok=True)
            arrow = pa.Table.from_pydict(extracted.columns[table_name], schema=arrow_schema(table))
            tmp = _tmp(final)
            written.append((tmp, final))
            pq.write_table(arrow, tmp, compression="zstd")
            files[table_name] = rel
        for tmp, final in written:
            os.replace(tmp, final)
    except OSError as exc:
        for tmp, _final in written:
            _unlink(tmp)
        raise OutputError(out, reason(exc)) from None
    manifest = {
        "trace_id": extracted.trace_id, "schema_version": SCHEMA_VERSION, "rpctrace_version": __version__,
        "host": extracted.host, "day": extracted.day, "files": files, "rows": dict(extracted.counts),
        "error": extracted.error, "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **(extra or {}),
    }
    _write_atomic(manifest_path(out, extracted.trace_id), json.dumps(manifest, indent=1).encode())
    if old is not None:  # the trace moved partition (e.g. its host is now known): drop the old files
        for rel in old["files"].values():
            if rel not in files.values():
                _unlink(os.path.join(out, rel))
    return Written(manifest, old is not None)


def manifests(out: str) -> Iterable[dict]:
    """Every committed manifest of this schema version under ``out``."""
    folder = os.path.join(out, MANIFESTS)
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return
    suffix = f"-v{SCHEMA_VERSION}.json"
    for n in names:
        if n.endswith(suffix) and not n.startswith("."):
            doc = read_manifest(out, n[: -len(suffix)])
            if doc is not None:
                yield doc


def committed_files(out: str) -> dict[str, list[str]]:
    """The Parquet files of every committed file set, per table (absolute paths)."""
    files: dict[str, list[str]] = {name: [] for name in TABLES}
    for doc in manifests(out):
        for table, rel in doc["files"].items():
            files[table].append(os.path.join(os.path.abspath(out), rel))
    return files


def sweep_temporary(out: str, older_than: float = STALE_SECONDS) -> int:
    """Remove temporary files a killed run left (older than ``older_than`` seconds: a live
    writer's are seconds old); how many were removed."""
    removed = 0
    now = time.time()
    for root, _dirs, names in os.walk(out):
        for n in names:
            if n.startswith(".") and ".tmp-" in n:
                path = os.path.join(root, n)
                try:
                    if now - os.stat(path).st_mtime >= older_than:
                        os.unlink(path)
                        removed += 1
                except OSError:
                    pass
    return removed
