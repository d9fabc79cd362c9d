"""dissect.etl as a test oracle (AGPL: used by tests only, never by rpctrace at run time).

``header_pass`` walks every record the way dissect.etl does (buffer by buffer, in file order,
headers only) and reports what the comparison tests need: the record count, the time range and
the count per (provider, "id"/"op", number).  For EVENT_HEADER records dissect prints the
provider GUID byte-swapped (it builds the UUID from big-endian bytes); the oracle reports both
the value dissect prints and the corrected one, so tests can name that defect.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import uuid

_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc)


def to_ticks(stamp: dt.datetime) -> int:
    return (stamp - _EPOCH) // dt.timedelta(microseconds=1) * 10


@functools.lru_cache(maxsize=16)
def header_pass(path: str, with_payload: bool = False) -> dict:
    from dissect.etl.etl import ETL
    from dissect.etl.headers.event import EventHeader
    from dissect.etl.headers.headers import EventInstanceGUIDHeader, EventTraceHeader

    counts: collections.Counter = collections.Counter()
    swapped: dict[str, str] = {}
    n = 0
    lo = hi = None
    with open(path, "rb") as fh:
        etl = ETL(fh)
        for record in etl:
            h = record.header
            n += 1
            if isinstance(h, EventHeader):
                raw = bytes(h.header.ProviderId)
                fixed = str(uuid.UUID(bytes_le=raw))
                swapped[fixed] = str(h.provider_id)
                key = (fixed, "id", h.header.Id)
            elif isinstance(h, (EventTraceHeader, EventInstanceGUIDHeader)):
                key = (str(h.provider_id), "op", h.header.Version & 0xFF)
            elif hasattr(h, "group"):
                key = (str(h.provider_id), "op", h.opcode)
            else:
                key = ("?", type(h).__name__, 0)
            counts[key] += 1
            try:
                t = to_ticks(h.timestamp)
            except Exception:  # headers dissect cannot time
                t = None
            if t is not None:
                lo = t if lo is None or t < lo else lo
                hi = t if hi is None or t > hi else hi
            if with_payload:
                try:
                    record.event.event_values()
                except Exception:
                    pass
    return {"count": n, "first": lo, "last": hi, "counts": counts, "swapped": swapped}


def kernel_payloads(path: str, group: int, opcodes: set[int], limit: int = 50) -> list[dict]:
    """dissect.etl's own decode of kernel events of ``group``/``opcodes`` in file order.

    ``Event.event_values()`` fails on dissect.etl 3.14 with dissect.cstruct 4 ("object has no
    attribute '_values'", the "fails to return field values" defect), so the fields are read off
    the parsed structure directly.
    """
    from dissect.etl.etl import ETL

    out = []
    with open(path, "rb") as fh:
        for record in ETL(fh):
            h = record.header
            if getattr(h, "group", None) != group or h.opcode not in opcodes:
                continue
            s = record.event._struct
            if s is None:
                continue
            values = {name: getattr(s, name, None) for name in type(s).fields}
            values["_opcode"] = h.opcode
            out.append(values)
            if len(out) >= limit:
                break
    return out
