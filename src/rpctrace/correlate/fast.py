"""The C path of :func:`rpctrace.correlate.correlate_files` for one ETL file.

What the Python stream does (:class:`~rpctrace.sources.etl.reader.EtlReader` batches ->
:class:`~rpctrace.trace.stream.TraceStream` assembly -> :class:`~rpctrace.correlate.calls.Correlator`),
the engine of the optional C module does in one pass for the records a busy server's trace is made
of (ALPC, RPC call start/stop, registry operations): no Python object per event, calls as compact C
objects.  Everything else keeps going through the Python code: the reader's index and its damage
accounting (here), the Python decoders for every other record, ``TraceStream._other`` for every
event the stream would look at, the RPC-only fallback, the stream's ``finish``/``complete``.

The Python path stays the reference and the fallback: without the C module, with
``RPCTRACE_PURE=1``, for other formats, or when the engine meets a value it cannot hold exactly (a
hostile file's 64-bit-overflowing clock), :func:`correlate_file` returns None and the caller runs
the Python path.  tests/correlate/test_fast_engine.py checks that both give the same calls.

Why C and not two processes: profiled on a 10-million-event busy-server trace, decoding was ~30 %
of the time and the correlator's per-event Python ~45 %; splitting the trace by time across the
two cores would at best halve both (on a machine whose other core is free) and needs an overlap
window whose stitching is not exact for calls longer than the window, while one C pass removes
the per-event Python work altogether and keeps the results identical (docs/performance.md).
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any, Callable, cast

from rpctrace.correlate.calls import (
    _CREATES_WAITING,
    PROTOCOLS,
    SEND_WINDOW,
    Call,
    Correlation,
    _endpoint_from_port,
    _fallback_rpc_only,
)
from rpctrace.correlate.alpc import PENDING_WINDOW
from rpctrace.knowledge.failures import event_class
from rpctrace.model import Event, Stack

if TYPE_CHECKING:
    from rpctrace.trace.model import Trace
    from rpctrace.trace.stream import TraceStream



def _native() -> Any:
    try:
        return importlib.import_module("rpctrace.sources.etl._fastrecords")
    except ImportError:  # pragma: no cover - depends on the build
        return None


_fastrecords: Any = _native()

_Engine: Any = getattr(_fastrecords, "Engine", None)
#: RPCTRACE_ENGINE=0 keeps the Python stream even where the engine was built (benchmarks, tests)
ENABLED = _Engine is not None and os.environ.get("RPCTRACE_ENGINE", "1") != "0"


#: the class of the engine's calls (None where the C module was not built)
FastCall: Any = None

if _Engine is not None:
    _fastrecords.set_protocols(PROTOCOLS)
    _fastrecords.set_call_properties(vars(Call)["failures"].fget, vars(Call)["blamed"].fget)

    class _FastCall(_fastrecords.CallBase):  # type: ignore[misc]
        """A call the C engine rebuilt: :class:`~rpctrace.correlate.calls.Call`'s attributes on
        a compact object (timestamps and ids stored as 64-bit integers)."""

        __slots__ = ()

    _FastCall.__name__ = _FastCall.__qualname__ = "FastCall"
    # Call's own properties and methods (failures, blamed, expected_only, subtree, ...) are shared
    # as they are: the C base defines the fields and the properties a listing reads per call.
    for _name, _value in vars(Call).items():
        if _name.startswith("__") or hasattr(_fastrecords.CallBase, _name):
            continue
        if isinstance(_value, property) or callable(_value):
            setattr(_FastCall, _name, _value)
    del _name, _value
    FastCall = _FastCall


def available() -> bool:
    """Whether :func:`correlate_file` can run here (C module built, not disabled)."""
    from rpctrace.sources.etl import records

    return ENABLED and getattr(records, "_fastrecords", None) is not None and not records.PURE


def correlate_file(path: str | os.PathLike[str], keep_going: bool = False, operations: str = "all",
                   on_progress: Callable[[float, float], None] | None = None, keep_all_for: int = 0,
                   stacks: bool | None = None, tap: Any = None) -> tuple[Trace, Correlation] | None:
    """``(trace, correlation)`` of one ETL file through the C engine, or None when the engine
    cannot take this file (not built, disabled, not an ETL trace, values it cannot hold): the
    caller then runs the Python path, which gives the same result.  ``stacks`` reads stack walks
    (default: unless ``operations="failed"``); ``tap.feed(events)`` is given every batch's Python
    events (the packet providers' among them: pipeline.read's packet tap)."""
    if not available():
        return None
    from rpctrace.sources.etl.reader import EtlReader
    from rpctrace.trace.stream import open_stream

    stream = open_stream(path, keep_going=keep_going, stacks=operations != "failed" if stacks is None else stacks)
    try:
        reader = stream.reader
        if not isinstance(reader, EtlReader) or stream.want_stack is not None:
            return None  # (a caller's own choice of stacks asks about every event: the Python stream does it)
        try:
            return _run(stream, reader, operations, keep_all_for, on_progress, tap)
        except _fastrecords.EngineUnsupported:
            return None
    finally:
        stream.close()


def _clock_fits(clock: Any) -> bool:
    """Whether the C record loop takes this clock: every constant within 64 bits and a divisor
    (the C loop reads them all, whichever form the clock has; a hostile header can hold any)."""
    values = [clock.identity_offset or 0, clock.base, clock.raw0, clock.num, clock.den]
    return all(type(v) is int and -(1 << 63) <= v < (1 << 63) for v in values) and clock.den != 0


def _engine(stream: TraceStream, operations: str, keep_all_for: int, tap: Any = None) -> Any:
    from rpctrace.correlate.calls import MAX_OUTSIDE

    return _Engine(
        call_type=FastCall, event_type=Event, operations=operations, keep_all_for=keep_all_for,
        stacks=stream.stacks, other=stream._other, want=stream._want, event_class=event_class, unpaired={}, ports={},
        endpoints={},
        outside=[], constants=(SEND_WINDOW, PENDING_WINDOW, MAX_OUTSIDE, _CREATES_WAITING),
        tap=tap.feed if tap is not None else None,
    )


def _run(stream: TraceStream, reader: Any, operations: str, keep_all_for: int,
         on_progress: Callable[[float, float], None] | None, tap: Any = None) -> tuple[Trace, Correlation] | None:
    from rpctrace.errors import InputError
    from rpctrace.sources.etl import records
    from rpctrace.sources.etl.container import drop_pages
    from rpctrace.sources.etl.parallel import decode_job
    from rpctrace.trace.gcpause import gc_paused

    if not _clock_fits(reader.clock):
        return None
    engine = _engine(stream, operations, keep_all_for, tap)
    decoder = records.BufferDecoder(reader.pointer_size, reader.clock, reader.header.raw_ts,
                                    skip_stacks=not reader.want_stacks)
    sink = _Sink(engine, decoder)
    stats = reader.stats
    with gc_paused():
        # EtlReader.batches, with the engine doing the merge and everything after it
        stats.records += 1
        engine.feed([reader.header_event()])
        slots = reader._index()
        slots.sort(key=lambda s: (s.first_raw, s.index))
        index_damage = reader._index_damage = reader._deferred
        nslots = len(slots)
        for k in range(nslots):
            slot = slots[k]
            result = decode_job(reader._view, reader.size, sink, reader._job(slot), drop_pages=drop_pages)
            reader._take(slot, result)
            reader.position = (k + 1, nslots)
            strict_stop = reader._deferred is not index_damage and not reader.keep_going
            engine.commit()
            if strict_stop or k + 1 >= nslots:
                break
            stats.records += engine.emit(slots[k + 1].first_raw)
            if on_progress is not None:
                on_progress(k + 1, nslots)
        stats.records += engine.emit(None)
        if reader._deferred is not None:
            # what EtlReader.batches raises at the end: the damage, with what was read before it
            err = reader._deferred
            stream.error = InputError(err.path, f"{err.message} ({stats.records} events read)", offset=err.offset,
                                      record=err.record)
        return _finish(engine, stream)


def correlate_stream(stream: TraceStream, operations: str = "all", keep_all_for: int = 0) -> tuple[Trace, Correlation]:
    """``(trace, correlation)`` of a :class:`~rpctrace.trace.stream.TraceStream` of any reader
    with ``batches()``: its events are Python events, and the engine assembles and correlates
    them as the Python stream and correlator do (tests use it on event lists of every shape)."""
    from rpctrace.errors import InputError
    from rpctrace.trace.gcpause import gc_paused

    engine = _engine(stream, operations, keep_all_for)
    with gc_paused():
        try:
            for batch in stream.reader.batches():
                engine.feed(batch)
        except InputError as exc:
            stream.error = exc
        return _finish(engine, stream)


def _finish(engine: Any, stream: TraceStream) -> tuple[Trace, Correlation]:
    """Correlator.finish and the stream's end, for the engine's calls."""
    stream.records = engine.records
    stream._first_ts, stream._last_ts = engine.first_ts, engine.last_ts
    unpaired, ports, endpoints, outside = engine.containers
    calls = engine.finish_prepare(stream.pid_of)
    for pid, names in ports.items():
        for name in names:
            endpoints.setdefault(_endpoint_from_port(name), set()).add(pid)
    if engine.needs_fallback():
        _fallback_rpc_only(calls)
    calls, alpc = engine.finish_score()
    outside.sort(key=lambda e: e.ts)
    result = Correlation(calls, unpaired, ports, endpoints, outside, engine.outside_dropped, alpc, engine.rpc_seen)
    trace = stream.finish()
    for call in calls:
        if call.operations:
            stream.complete(call.operations)
    if outside:
        stream.complete(outside)
    trace.records = stream.records
    trace.kinds = engine.kinds
    return trace, result


class _Sink:
    """What :func:`~rpctrace.sources.etl.parallel.decode_job` calls as the decoder: the engine
    takes the buffer's records; the reader gets the damage and counts as from a decoder."""

    __slots__ = ("engine", "decoder")

    def __init__(self, engine: Any, decoder: Any) -> None:
        self.engine = engine
        self.decoder = decoder

    def decode(self, data: Any, cpu: int, skip: int = 0) -> tuple[list[Any], list[Any], list[Any], Any]:
        d = self.decoder
        counts = _counts()
        clock = d.clock
        ident = clock.identity_offset
        from rpctrace.knowledge import providers as P
        from rpctrace.sources.etl.records import _RPC_GUID_LE, PYTHON_PROVIDERS

        ctx = (Event, d.ptr, (ident is not None, ident or 0, clock.base, clock.raw0, clock.num, clock.den),
               d._kernel, d._kernel_entry, d._kernel_event, d._event_header_event, d._classic_event,
               d._opaque_event, counts, P.RPC, _RPC_GUID_LE, clock, d.skip_stacks, PYTHON_PROVIDERS,
               Stack.split)
        try:
            damage = self.engine.decode(data, cpu, skip, ctx)
        except (OverflowError, ValueError) as exc:  # the context the C loop refuses: Python reads the file
            raise _fastrecords.EngineUnsupported(str(exc)) from None
        return [], [], damage, counts


def _counts() -> Any:
    from rpctrace.sources.etl.records import DecodeCounts

    return DecodeCounts()


def record_core(maker: Any) -> Callable[[Any], Any] | None:
    """The C builder of :class:`~rpctrace.correlate.records.RecordMaker`'s records for the calls
    of the engine (it answers NotImplemented for any other call), or None where it was not built.
    It reads the maker's caches and calls its lookups on a miss, so both give the same records."""
    if _fastrecords is None or not hasattr(_fastrecords, "record_core") or _pure():
        return None
    from rpctrace.correlate.calls import FAILING
    from rpctrace.model import _MAX_TICKS, ticks_to_iso

    return cast(Callable[[Any], Any], _fastrecords.record_core(maker, FAILING, _MAX_TICKS, ticks_to_iso))


def table_row(row_format: str, row_any: Callable[[Any], str]) -> Callable[[Any], str] | None:
    """The C version of :func:`rpctrace.render.calls._table_row` (same text: it fills the same
    %-format), or None where it was not built."""
    if _fastrecords is None or not hasattr(_fastrecords, "table_row") or _pure():
        return None
    _fastrecords.set_table_format(row_format, row_any)
    return cast(Callable[[Any], str], _fastrecords.table_row)


def _pure() -> bool:
    from rpctrace.sources.etl import records

    return records.PURE
