"""The rows of one trace, as the index's tables hold them: the trace's id (from its content),
its host and day partitions, time conversion, and :class:`Extracted` (the columns of every table
for one trace), which :func:`rpctrace.pipeline.extract.extract` fills and
:mod:`rpctrace.tables.store` writes.

Times are microseconds since 1970 UTC (Parquet's timestamp; the 100 ns digit of ETW's clock is
dropped).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, overload

from rpctrace.errors import InputError, printable
from rpctrace.tables.schema import TABLES

__all__ = ["Extracted", "FailureKey", "UNKNOWN_DAY", "append_row", "day_of", "empty_columns", "failure_key", "host_of", "int_or_none",
           "renamed_error", "trace_id_of", "us_of"]

#: hex digits of the SHA-256 that name a trace (80 bits: no collision in any fleet's traces)
TRACE_ID_DIGITS = 20
#: the day partition of a trace with no time (nothing could be read)
UNKNOWN_DAY = "unknown"
#: longest host partition value
MAX_HOST = 63

_EPOCH_1601_TO_1970_US = 11_644_473_600 * 1_000_000
_MAX_TICKS = (_dt.datetime(9999, 12, 31, tzinfo=_dt.timezone.utc)
              - _dt.datetime(1601, 1, 1, tzinfo=_dt.timezone.utc)) // _dt.timedelta(microseconds=1) * 10


def trace_id_of(sha256_hex: str) -> str:
    return sha256_hex[:TRACE_ID_DIGITS]


@overload
def us_of(ticks: int) -> int: ...
@overload
def us_of(ticks: None) -> None: ...
@overload
def us_of(ticks: int | None) -> int | None: ...
def us_of(ticks: int | None) -> int | None:
    """100 ns ticks since 1601 -> microseconds since 1970 (clamped like ``ticks_to_iso``)."""
    if ticks is None:
        return None
    ticks = min(max(ticks, 0), _MAX_TICKS)
    return ticks // 10 - _EPOCH_1601_TO_1970_US


def day_of(ticks: int | None) -> str:
    if ticks is None:
        return UNKNOWN_DAY
    us = us_of(ticks)
    return (_dt.datetime(1970, 1, 1) + _dt.timedelta(microseconds=us)).strftime("%Y-%m-%d")


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _partition_value(name: str) -> str:
    """A computer name as a directory name every reader takes as is: letters, digits, ``.``,
    ``_`` and ``-`` (anything else becomes ``_``), at most :data:`MAX_HOST` characters."""
    value = _UNSAFE.sub("_", name.strip())[:MAX_HOST].strip(".")
    return value or "_"


def host_of(infos: list[dict[str, Any]]) -> tuple[str, str | None, str]:
    """``(host partition value, computer name as written or None, where it came from)``.

    The computer name where the source has one (a Procmon log's header, an event log's
    records); an ETL file's logfile header names no computer, so its host is a stable fallback:
    ``unnamed-`` and a digest of what the header says of the machine and its boot (boot time,
    OS build, CPUs, clock), the same for every trace of one boot of one machine."""
    for info in infos:
        name = info.get("computer")
        if isinstance(name, str) and name.strip():
            fmt = info.get("format", "etl")
            where = "the Procmon log's header" if fmt == "pml" else "the event records' Computer"
            if info.get("computers", 1) > 1:
                where += f" (the first of {info['computers']} computers the records name)"
            return _partition_value(name), printable(name, 256), where
    for info in infos:
        header = info.get("header")
        if header:
            facts = [str(header.get(k)) for k in ("boot_time", "os_build", "cpus", "cpu_mhz", "perf_freq", "pointer_size")]
            digest = hashlib.sha256("\0".join(facts).encode()).hexdigest()[:12]
            return (f"unnamed-{digest}", None,
                    "fallback: the trace names no computer; unnamed- and a digest of the ETL header's boot time, OS "
                    "build, CPU count and clock (one boot of one machine)")
    return "unknown", None, "fallback: the trace names no computer and has no header"


@dataclass
class Extracted:
    """The rows of one trace, as columns per table (:data:`rpctrace.tables.schema.TABLES`)."""

    trace_id: str
    host: str
    day: str
    columns: dict[str, dict[str, list[Any]]]
    error: str | None = None  # the damage that ended reading (one line), if any
    counts: dict[str, int] = field(default_factory=dict)  # rows per table

    @property
    def calls(self) -> int:
        return self.counts.get("calls", 0)

    @property
    def failures(self) -> int:
        return self.counts.get("failures", 0)


def empty_columns() -> dict[str, dict[str, list[Any]]]:
    return {name: {c: [] for c in table.names} for name, table in TABLES.items()}


def append_row(cols: dict[str, list[Any]], row: dict[str, Any]) -> None:
    for name, values in cols.items():
        values.append(row.get(name))


#: a failed operation as a finding and a failure row both name it: (pid, tid, ISO time, kind)
FailureKey = tuple["int | None", "int | None", "str | None", "str | None"]


def failure_key(pid: int | None, tid: int | None, ts_iso: str | None, kind: str | None) -> FailureKey:
    return (pid, tid, ts_iso, kind)


def int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def renamed_error(exc: InputError, path: str, display: str) -> InputError:
    """The error named after the input as given (not the temporary copy it was read from)."""
    if exc.path == path and display != path:
        return InputError(display, exc.message, offset=exc.offset, record=exc.record)
    return exc
