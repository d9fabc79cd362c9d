"""Choosing calls and making their records: the filters, the roots of a tree, the records of a
listing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from rpctrace.correlate.calls import Call, Correlation
from rpctrace.correlate.select import CallFilter
from rpctrace.schema import CallRecord
from rpctrace.trace.model import Trace

if TYPE_CHECKING:
    from rpctrace.correlate.records import RecordMaker


def select(result: Correlation, trace: Trace, flt: CallFilter | None, alpc: bool = False) -> Iterable[Call]:
    """The calls of ``result`` that pass ``flt`` (lazily); with ``alpc`` also the ALPC exchanges
    that belong to no RPC call.  With ``--failed`` the calls with a failure that deserves blame
    come first, then those whose failures are all expected results."""
    from itertools import chain

    pool = chain(result.calls, result.alpc) if alpc and result.alpc else result.calls
    if flt is None or not flt.active:
        return pool
    if not flt.failed:
        return flt.apply(pool, trace)
    chosen = list(flt.apply(pool, trace))
    blamed = [c for c in chosen if c.blamed or c.status]
    return blamed + [c for c in chosen if not (c.blamed or c.status)]


def tree_roots(result: Correlation, trace: Trace, flt: CallFilter | None = None, call_id: int | None = None) -> list[Call]:
    """Where a call tree starts: the call ``call_id``; else, without filters, every call no other
    call made; with filters, every call that passes and is not inside another call that passes
    (so each matching call is shown once, with what it led to)."""
    if call_id is not None:
        return [c for c in result.calls if c.id == call_id]
    if flt is None or not flt.active:
        return [c for c in result.calls if c.parent is None]
    match = flt.matcher(trace)
    chosen = [c for c in result.calls if match(c)]
    ids = {id(c) for c in chosen}
    roots = []
    for c in chosen:
        p, depth = c.parent, 0
        while p is not None and id(p) not in ids and depth < 64:
            p, depth = p.parent, depth + 1
        if p is None or id(p) not in ids:
            roots.append(c)
    return roots


def call_with_stacks(files: Sequence[str], call_id: int, keep_going: bool = False, symbols: str | None = None,
                     image_path: Sequence[str] = ()) -> tuple[dict[str, Any], Trace]:
    """``(record, trace)``: call ``call_id`` of ``files`` as ``rpctrace calls`` numbers it (a
    capture among the inputs too), each failure with its stack as every output names frames
    (``module!function+0xdisp`` with symbols, else ``module+0xoffset``), and with symbols the
    ``server_function`` its stack ran (what the WinDbg script breaks on)."""
    from rpctrace.correlate import call_record
    from rpctrace.correlate.procedure import server_function
    from rpctrace.errors import RpctraceError
    from rpctrace.knowledge.interfaces import lookup
    from rpctrace.knowledge.status import ntstatus_name
    from rpctrace.pipeline.read import calls as read_calls

    trace, result = read_calls(files, keep_going=keep_going, operations="all", stacks=True, symbols=symbols,
                               image_path=image_path)
    found = [c for c in result.calls if c.id == call_id]
    if not found:
        raise RpctraceError(f"no call {call_id} (calls are numbered 1..{len(result.calls)})")
    call = found[0]
    record: dict[str, Any] = dict(call_record(call, trace, names=lookup, status_name=ntstatus_name))
    for rec, op in zip(record["failures"], call.failures):
        if op.stack:
            rec["stack"] = [trace.symbolize(op.pid, addr) for addr in op.stack]
    sym = server_function(trace, call)
    if sym is not None:  # the function above the RPC runtime's dispatch, named by its PDB
        record["server_function"] = f"{sym.module}!{sym.function}"
    return record, trace


def record_maker(trace: Trace) -> RecordMaker:
    """The maker of call records (the ``calls --format json`` shape) for ``trace``, with names
    from the interface database and status names."""
    from rpctrace.correlate.records import RecordMaker
    from rpctrace.knowledge.interfaces import lookup
    from rpctrace.knowledge.status import ntstatus_name

    return RecordMaker(trace, names=lookup, status_name=ntstatus_name)


def call_records(trace: Trace, chosen: Iterable[Call]) -> Iterator[CallRecord]:
    """The records of ``chosen`` calls, one at a time (a listing can hold a million calls)."""
    return map(record_maker(trace), chosen)
