"""The C engine (rpctrace.correlate.fast, sources/etl/_fastcalls.c) gives the calls of the Python
code, which stays the reference: on every writer scenario (64-bit, and 32-bit with compressed
buffers), in every operations mode, on the real samples, on damaged files (strict and keep-going),
and through the listing's record builder and table line (_fastrender.c)."""

from __future__ import annotations

import dataclasses
import gc
import io
import random
import shutil
import struct

import pytest

from conftest import ETL_SAMPLES
from rpctrace.correlate import fast
from rpctrace.pipeline import correlate_files
from rpctrace.correlate.alpc import AlpcMessage
from rpctrace.correlate.calls import Call
from rpctrace.correlate.records import RecordMaker
from rpctrace.knowledge.interfaces import lookup
from rpctrace.knowledge.status import ntstatus_name
from rpctrace.model import ticks_to_iso
from rpctrace.render import calls as render_calls
from rpctrace.sources.base import Reader
from rpctrace.sources.etl import records
from rpctrace.synth import SCENARIOS, synthesize

pytestmark = pytest.mark.skipif(not fast.available(), reason="the C engine was not built (no compiler)")

CALL_FIELDS = [f.name for f in dataclasses.fields(Call) if f.name not in ("message", "parent", "children", "operations")]
CALL_PROPERTIES = ["mode", "completion_tid", "alpc_message_id", "protocol_name", "expected_only", "alpc_only"]
MESSAGE_FIELDS = [f.name for f in dataclasses.fields(AlpcMessage) if f.name != "call"] + ["datagram", "complete"]


def _call_state(call) -> dict:
    """Every attribute of a call (and of its message), with links as call ids."""
    state = {name: getattr(call, name) for name in CALL_FIELDS + CALL_PROPERTIES}
    state["failures"] = [tuple(op) for op in call.failures]
    state["blamed"] = [tuple(op) for op in call.blamed]
    state["operations"] = [tuple(op) for op in call.operations]
    state["parent"] = call.parent.id if call.parent is not None else None
    state["children"] = [c.id for c in call.children]
    state["subtree"] = [c.id for c in call.subtree()]
    msg = call.message
    if msg is not None:
        state["message"] = {name: getattr(msg, name) for name in MESSAGE_FIELDS}
        state["message"]["call"] = msg.call.id if msg.call is not None else None
    return state


def _result(path, **kw) -> dict:
    trace, result = correlate_files([path], **kw)
    maker = RecordMaker(trace, names=lookup, status_name=ntstatus_name)
    return {
        "calls": [_call_state(c) for c in result.calls],
        "records": [maker(c) for c in result.calls],
        "alpc": [_call_state(c) for c in result.alpc],
        "alpc_records": [maker(c) for c in result.alpc],
        "rpc_seen": result.rpc_seen,
        "kinds": list(trace.kinds.items()),
        "formats": trace.formats,
        "unpaired": result.unpaired,
        "ports": result.ports,
        "endpoints": result.endpoints,
        "outside": [tuple(e) for e in result.outside],
        "outside_dropped": result.outside_dropped,
        "trace": (trace.records, trace.time_range, trace.sources, sorted(trace.processes), trace.events,
                  str(trace.error) if trace.error else None),
        "types": {type(c).__name__ for c in result.calls},
    }


def _both(monkeypatch, path, **kw):
    """(C engine, pure Python) results of correlate_files."""
    with monkeypatch.context() as m:
        m.setattr(records, "PURE", False)
        engine = _result(path, **kw)
    with monkeypatch.context() as m:
        m.setattr(records, "PURE", True)  # the Python record loop and the Python stream
        m.setenv("RPCTRACE_SERIAL", "1")
        reference = _result(path, **kw)
    return engine, reference


def _assert_same(engine, reference, expect_calls=True):
    assert reference["types"] <= {"Call"}
    if expect_calls:
        assert engine["types"] == {"FastCall"}
    for key in reference:
        if key != "types":
            assert engine[key] == reference[key], key


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("x86", [False, True], ids=["64bit", "32bit-compressed"])
@pytest.mark.parametrize("operations", ["failed", "all", "report"])
def test_writer_traces(tmp_path, monkeypatch, scenario, x86, operations):
    path = str(tmp_path / "t.etl")
    synthesize(scenario, path, None, seed=21, clients=16, calls=300, pointer_size=4 if x86 else 8, compress=x86)
    engine, reference = _both(monkeypatch, path, operations=operations, keep_all_for=40)
    assert reference["calls"]
    _assert_same(engine, reference)


@pytest.mark.parametrize("name", ETL_SAMPLES)
def test_real_samples(samples, monkeypatch, name):
    """Traces with no RPC at all: every event goes through the engine's generic path (stacks,
    FileIo creates and their status, thread and image rundown, raw events)."""
    engine, reference = _both(monkeypatch, str(samples[name]), operations="all")
    _assert_same(engine, reference, expect_calls=False)


def _damaged(src, dst, rng, flips):
    """A copy of ``src`` with bytes changed inside its buffers' records (not their headers, so
    the damage is found while decoding), and sometimes a buffer's fill offset."""
    shutil.copyfile(src, dst)
    data = bytearray(open(dst, "rb").read())
    size = struct.unpack_from("<I", data, 0)[0]
    nbuf = len(data) // size
    for _ in range(flips):
        buf = rng.randrange(1, nbuf)
        base = buf * size
        if rng.random() < 0.15:
            struct.pack_into("<I", data, base + 4, rng.randrange(0x48, size + 64))  # SavedOffset
            continue
        at = base + 0x48 + rng.randrange(size - 0x48)
        if rng.random() < 0.4:  # a record header's marker or size (records are 8-byte aligned)
            at -= at % 8
            struct.pack_into("<I", data, at + rng.choice([0, 4]),
                             rng.choice([0xFFFFFFFF, 0, 0xC0130000 | rng.randrange(0x10000),
                                         0xC0110000 | rng.randrange(0x10000), rng.randrange(1 << 32)]))
        elif rng.random() < 0.4:
            data[at : at + 2] = rng.choice([b"\xff\xff", b"\x00\x00", b"\x01\x00", b"\x50\x00", b"\x13\xc0"])
        else:
            data[at] = rng.randrange(256)
    open(dst, "wb").write(bytes(data))


@pytest.mark.parametrize("scenario", ["lost-events", "busy-server", "nested"])
def test_damaged_files(tmp_path, monkeypatch, scenario):
    """Damage found while decoding: the same calls, counts and one-line errors, strict (what was
    read before the damage) and with --keep-going (damage skipped and counted)."""
    src = str(tmp_path / "t.etl")
    synthesize(scenario, src, None, seed=5, clients=8, calls=250)
    rng = random.Random(scenario)
    damaged = 0
    for n in range(8):
        dst = str(tmp_path / f"d{n}.etl")
        _damaged(src, dst, rng, flips=rng.randint(1, 12))
        for keep_going in (False, True):
            try:
                engine, reference = _both(monkeypatch, dst, operations="all", keep_going=keep_going)
            except Exception as exc:  # both paths must fail the same way (an InputError before any event)
                with monkeypatch.context() as m:
                    m.setattr(records, "PURE", True)
                    with pytest.raises(type(exc)) as other:
                        correlate_files([dst], operations="all", keep_going=keep_going)
                assert str(other.value) == str(exc)
                continue
            _assert_same(engine, reference, expect_calls=False)
            damaged += bool(reference["trace"][5] or reference["trace"][2][0]["damage"])
    assert damaged >= 2, "the damage should stop or be skipped in some of these files"


def test_listing_text_is_the_same(tmp_path, monkeypatch):
    """`rpctrace calls` output (table, json, jsonl) from the engine's calls through the C record
    builder and table line equals the pure-Python output."""
    from rpctrace.render.calls import write_json, write_jsonl, write_table

    path = str(tmp_path / "t.etl")
    synthesize("busy-server", path, None, seed=8, clients=12, calls=400)
    texts = {}
    for pure in (False, True):
        with monkeypatch.context() as m:
            m.setattr(records, "PURE", pure)
            trace, result = correlate_files([path], operations="failed")
            maker = RecordMaker(trace, names=lookup, status_name=ntstatus_name)
            assert (maker._core is None) == pure
            for name, writer in (("table", write_table), ("json", write_json), ("jsonl", write_jsonl)):
                out = io.StringIO()
                writer(map(maker, result.calls), out)
                texts[pure, name] = out.getvalue()
    for name in ("table", "json", "jsonl"):
        assert texts[False, name] == texts[True, name], name
    assert texts[False, "table"].count("\n") > 400


def test_table_line_of_unusual_records():
    """The C table line equals _table_row for records of other shapes and values: long and wide
    texts (cut with an ellipsis), missing values, integer durations, odd status values."""
    row = render_calls._row_maker()
    assert row is not render_calls._table_row
    base = {
        "id": 7, "client": {"pid": 10, "tid": 11, "image": "client.exe"},
        "server": {"pid": 20, "tid": 21, "image": "svchost.exe", "service": "Audiosrv"},
        "interface": {"uuid": "12345678-1234-abcd-ef00-0123456789ab", "name": "AudioSrv"}, "opnum": 3,
        "procedure": "PolicyConfigSetDefaultEndpoint", "endpoint": "AudioClientRpc", "protocol": "LRPC",
        "mode": "sync", "completion_tid": None, "alpc_message_id": 5, "start": "2020-01-01T00:00:00.0000000Z",
        "end": None, "server_start": None, "server_end": None, "duration_us": 12.5, "status": 0,
        "auth_level": None, "auth_service": None, "confidence": 1.0, "evidence": (), "ambiguous": False,
        "parent": None, "children": [], "failures": [],
    }  # fmt: skip
    failure = {"kind": "registry.open", "path": "HKLM\\x", "status": 0xC0000022, "status_name": None, "pid": 20,
               "tid": 21, "ts": "2020-01-01T00:00:00.0000001Z"}
    variants = [
        {}, {"duration_us": None}, {"duration_us": 0.04}, {"duration_us": 9.95}, {"duration_us": 999.5},
        {"duration_us": 1234.5678}, {"duration_us": 99999.99}, {"duration_us": 3.2e6}, {"duration_us": 1e300},
        {"duration_us": float("nan")}, {"duration_us": -1.0}, {"duration_us": -0.0}, {"duration_us": 5},
        {"duration_us": float("inf")}, {"status": None}, {"status": 0x6BA}, {"status": -5}, {"status": True},
        {"mode": None}, {"mode": "async", "completion_tid": 99}, {"mode": "async"}, {"mode": "datagram"},
        {"mode": "x" * 30}, {"start": None}, {"start": ""}, {"endpoint": None}, {"endpoint": "é" * 40},
        {"client": {"pid": None, "tid": None, "image": None}}, {"client": {"image": "ünïcode😀" * 8, "pid": 1, "tid": 2}},
        {"interface": {"uuid": None, "name": None}, "opnum": None, "procedure": None},
        {"procedure": ""}, {"procedure": "P" * 80}, {"failures": [failure]},
        {"failures": [dict(failure, status_name="STATUS_ACCESS_DENIED", path=None), failure]},
        {"failures": [dict(failure, status=0)]}, {"failures": [{}]}, {"confidence": 0.333},
        {"id": "7"}, {"confidence": 1}, {"opnum": "3"}, {"interface": {"uuid": 5, "name": None}},
        {"client": {"pid": 1.5, "tid": "t", "image": 3}},
    ]  # fmt: skip
    for extra in variants:
        record = dict(base, **extra)
        try:
            expected = render_calls._table_row(record)
        except Exception as exc:  # the same error from both
            with pytest.raises(type(exc)):
                row(record)
            continue
        assert row(record) == expected, extra


def test_ticks_to_iso_matches_python():
    from rpctrace.model import _MAX_TICKS
    from rpctrace.sources.etl import _fastrecords

    fast.record_core(RecordMaker(None))  # sets the clamp
    rng = random.Random(2)
    values = [0, 1, -1, -(1 << 62), 9_999_999, 10_000_000, _MAX_TICKS, _MAX_TICKS + 1, (1 << 63) - 1,
              132_000_000_000_000_000, 116_444_736_000_000_000]  # fmt: skip
    values += [rng.randrange(0, _MAX_TICKS) for _ in range(2000)]
    values += [rng.randrange(131_000_000_000_000_000, 134_000_000_000_000_000) for _ in range(2000)]
    for v in values:
        assert _fastrecords.ticks_to_iso(v) == ticks_to_iso(v), v


def test_calls_have_every_attribute_of_call(tmp_path):
    """FastCall answers every field and property of Call (a field added to Call must be added to
    the C type too: this fails until it is), and its setters take what Python code assigns."""
    path = str(tmp_path / "t.etl")
    synthesize("nested", path, None, seed=3)
    _trace, result = correlate_files([path])
    call = result.calls[0]
    assert type(call).__name__ == "FastCall"
    for name in [f.name for f in dataclasses.fields(Call)] + [n for n, v in vars(Call).items() if isinstance(v, property)]:
        getattr(call, name)
    for name in [f.name for f in dataclasses.fields(AlpcMessage)] + ["datagram", "complete"]:
        getattr(call.message, name)
    call.endpoint = "x"
    call.children = list(call.children) + [result.calls[1]]
    result.calls[1].parent = call
    call.server_activity = None
    call.client_activity = "01234567-89ab-cdef-0123-456789abcdef"
    assert call.client_activity == "01234567-89ab-cdef-0123-456789abcdef"
    call.start = None
    assert call.start is None and call.endpoint == "x" and result.calls[1] in call.children
    with pytest.raises(AttributeError):
        call.not_a_field = 1
    with pytest.raises(ValueError):
        call.client_activity = "not a guid"


def test_call_cycles_are_collected(tmp_path):
    """Parent and child calls refer to each other: the collector frees them."""
    path = str(tmp_path / "t.etl")
    synthesize("nested", path, None, seed=3)
    _trace, result = correlate_files([path])
    assert any(c.parent is not None for c in result.calls)
    del _trace, result
    gc.collect()
    assert not [o for o in gc.get_objects() if type(o).__name__ == "FastCall"]


def test_values_the_engine_cannot_hold_fall_back_to_python(tmp_path, monkeypatch):
    """A value beyond 64 bits (only hostile files have them) stops the engine; correlate_files
    then reads the file with the Python code."""
    from rpctrace.model import Event
    from rpctrace.sources.etl import _fastrecords

    path = str(tmp_path / "t.etl")
    synthesize("audiosrv-access-denied", path, None, seed=2)
    engine = fast._Engine(
        call_type=fast.FastCall, event_type=Event, operations="all", keep_all_for=0, stacks=False,
        other=lambda ev, kind: None, want=lambda ev: None,
        event_class=lambda ev: "blame", unpaired={}, ports={}, endpoints={}, outside=[], constants=(1, 1, 1, 1),
    )  # fmt: skip
    huge = Event(1 << 70, 1, 2, 0, "p", 0, 0, 0, "raw", {}, None)
    with pytest.raises(_fastrecords.EngineUnsupported):
        engine.feed([huge])
    expected = _result(path)
    monkeypatch.setattr(fast, "_run", lambda *a: (_ for _ in ()).throw(_fastrecords.EngineUnsupported("x")))
    got = _result(path)
    assert got["types"] == {"Call"}
    assert got["records"] == expected["records"]


class _Events(Reader):
    """A reader of given event batches (what TraceStream reads)."""

    def __init__(self, batches):
        from rpctrace.sources.etl.reader import ReadStats

        super().__init__("events")
        self._batches = batches
        self.stats = ReadStats()

    def batches(self):
        yield from self._batches


def _copy(batches):
    from rpctrace.model import Event

    return [[Event(*e[:9], dict(e.fields), e.stack) for e in b] for b in batches]


def _python_stream(batches, operations, keep_all_for, stacks):
    """correlate_files' Python path (``pipeline.correlate_stream``), over given batches."""
    from rpctrace.correlate import Correlator
    from rpctrace.pipeline import correlate_stream
    from rpctrace.trace.stream import TraceStream

    stream = TraceStream(_Events(_copy(batches)), stacks=stacks)
    return correlate_stream(stream, Correlator(operations, keep_all_for))


def _engine_stream(batches, operations, keep_all_for, stacks):
    from rpctrace.trace.stream import TraceStream

    return fast.correlate_stream(TraceStream(_Events(_copy(batches)), stacks=stacks), operations, keep_all_for)


def _state(trace, result):
    maker = RecordMaker(trace, names=lookup, status_name=ntstatus_name)
    return ([_call_state(c) for c in result.calls], [maker(c) for c in result.calls], result.unpaired, result.ports,
            result.endpoints, [tuple(e) for e in result.outside], result.outside_dropped, trace.records,
            trace.time_range, [_call_state(c) for c in result.alpc], result.rpc_seen, list(trace.kinds.items()))


def _transform(events, how, rng):
    out = []
    for ev in events:
        if how in ("no-alpc", "mixed") and ev.kind.startswith("alpc."):
            continue
        if how == "no-rpc" and ev.kind.startswith("rpc."):
            continue
        if how in ("lost", "mixed") and rng.random() < 0.04:
            continue
        if how == "no-activity" and "activity_id" in ev.fields:
            ev = ev._replace(fields={k: v for k, v in ev.fields.items() if k != "activity_id"})
        if how in ("no-ids", "mixed"):
            if rng.random() < 0.1:
                ev = ev._replace(pid=None)
            if rng.random() < 0.02:
                ev = ev._replace(tid=None)
        out.append(ev)
        if how in ("duplicates", "mixed") and rng.random() < 0.03:
            out.append(ev)
        if how in ("results", "mixed") and ev.kind in ("rpc.server_start", "rpc.client_start", "rpc.client_stop"):
            # the procedure's result as RPC events 9 and 1 give it, some after the call ended
            if rng.random() < 0.3:
                kind = rng.choice(["rpc.raise", "rpc.eeinfo"])
                status = rng.choice([0x6BA, 5, 0, 0xC0000022])
                out.append(ev._replace(ts=ev.ts + rng.choice([0, 1, 10]), id=9 if kind == "rpc.raise" else 1,
                                       kind=kind, fields={"status": status}))
    batches, at = [], 0
    while at < len(out):
        n = rng.randint(1, 400)
        batches.append(out[at : at + n])
        at += n
    return batches


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("how", ["as-is", "no-alpc", "no-rpc", "lost", "no-activity", "no-ids", "duplicates", "results",
                                 "mixed"])
def test_event_streams_of_every_shape(tmp_path, scenario, how):
    """The engine's correlator on Python events equals the Python stream and Correlator on event
    lists no writer trace has: RPC events only (the RPC-only fallback, ambiguous joins), ALPC only,
    lost and duplicated events, no activity ids, events without process or thread ids."""
    from rpctrace.trace import load

    path = str(tmp_path / "t.etl")
    synthesize(scenario, path, None, seed=13, clients=8, calls=150)
    events = load([path]).events
    rng = random.Random(f"{scenario}-{how}")
    batches = _transform(events, how, rng)
    for operations, stacks in (("failed", False), ("all", True), ("report", True)):
        expected = _state(*_python_stream(batches, operations, 30, stacks))
        got = _state(*_engine_stream(batches, operations, 30, stacks))
        assert got == expected, operations
    if how == "no-alpc" and scenario == "busy-server":
        assert any(c["ambiguous"] or "rpc-only" in " ".join(c["evidence"]) for c in expected[0])
    if how == "results":
        assert any(c["result_status"] is not None for c in expected[0])


def test_the_engine_hands_the_stream_every_kind_it_handles():
    """The engine calls TraceStream._other only for the kinds it looks at (most events of a
    sampled trace are not): every kind _other tests for, read from its code, must reach it."""
    import ast
    import inspect
    import textwrap

    from rpctrace.model import Event
    from rpctrace.trace.stream import TraceStream

    tree = ast.parse(textwrap.dedent(inspect.getsource(TraceStream._other)))
    kinds = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == "kind":
            kinds.update(c.value for c in node.comparators if isinstance(c, ast.Constant))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "startswith"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "kind"):
            for arg in node.args:
                values = arg.elts if isinstance(arg, ast.Tuple) else [arg]
                kinds.update(v.value + "x" for v in values if isinstance(v, ast.Constant))
    assert {"stack", "file.create", "thread.x", "registry.x"} <= kinds
    seen = []
    engine = fast._Engine(
        call_type=fast.FastCall, event_type=Event, operations="all", keep_all_for=0, stacks=True,
        other=lambda ev, kind: seen.append(kind), want=lambda ev: None,
        event_class=lambda ev: "ok", unpaired={}, ports={}, endpoints={}, outside=[], constants=(1, 1, 1, 1),
    )  # fmt: skip
    fields = {"event_ts": 5, "stack_tid": 1, "key": 1, "frames": [], "kcb": 0}
    engine.feed([Event(5, 2, 1, 0, "p", 0, 3, 0, kind, dict(fields), None) for kind in sorted(kinds)])
    assert sorted(seen) == sorted(kinds)
    seen.clear()
    engine.feed([Event(6, 2, 1, 0, "p", 0, 0, 0, kind, {}, None) for kind in ("raw", "sample", "alpc.other")])
    assert seen == []


@pytest.mark.parametrize("field", ["raw0", "base", "den"])
def test_clock_constants_beyond_64_bits_fall_back_to_python(tmp_path, monkeypatch, field):
    """A hostile logfile header can give the clock constants no 64-bit integer holds (fuzzing found
    an identity clock with such a raw0): the engine leaves the file to the Python code."""
    from rpctrace.sources.etl import container

    path = str(tmp_path / "t.etl")
    synthesize("audiosrv-access-denied", path, None, seed=2)
    expected = _result(path)
    init = container.Clock.__init__

    def hostile(self, header):
        init(self, header)
        assert self.identity_offset is not None  # the writer's clock: these constants are not used
        setattr(self, field, 0 if field == "den" else getattr(self, field) + (1 << 64))

    monkeypatch.setattr(container.Clock, "__init__", hostile)
    got = _result(path)
    assert got["types"] == {"Call"}
    assert got["records"] == expected["records"]


def test_c_decoded_stacks_keep_their_split(samples):
    """Stacks the C record loop reads from extended data items are the Python decoder's: the same
    frames and the same type and kernel/user split (equal tuples alone would not show it)."""
    from rpctrace.sources.etl.container import read_buffer
    from rpctrace.sources.etl.reader import EtlReader

    with EtlReader(samples["net.4.5.2.x64.etl"]) as reader:
        decoder = records.BufferDecoder(reader.pointer_size, reader.clock, reader.header.raw_ts)
        compared = 0
        for slot in reader._index():
            buf = slot.buffer or read_buffer(reader._view, slot.offset, slot.index, reader.size)
            data, skip = bytes(buf.data), 1 if slot.index == 0 else 0
            fast_events = decoder.decode(data, slot.cpu, skip)[1]
            slow_events = decoder.decode_python(data, slot.cpu, skip)[1]
            for a, b in zip(fast_events, slow_events):
                if b.stack is not None:
                    assert type(a.stack) is type(b.stack)
                    assert getattr(a.stack, "kernel_frames", None) == getattr(b.stack, "kernel_frames", None)
                    compared += 1
    assert compared > 600


@pytest.mark.parametrize("source", ["ndis", "pktmon", "ndis-split", "real-pktmon"])
def test_packets_inside_a_trace(tmp_path, monkeypatch, source):
    """Packets recorded in the trace itself (netsh trace, pktmon) reach pipeline.read's packet tap
    through the engine as through the Python stream: the same remote calls, joins and sources."""
    from pathlib import Path

    from rpctrace.synth.remote import synthesize_remote

    if source == "real-pktmon":
        path = str(Path(__file__).resolve().parents[1] / "data" / "net" / "demikernel-PktMon.etl")
    else:
        path = str(tmp_path / "t.etl")
        synthesize_remote(None, path, calls=60, packets=source.split("-")[0],
                          **({"fragment": 300} if source == "ndis-split" else {}))
    engine, reference = _both(monkeypatch, path, operations="all")
    _assert_same(engine, reference, expect_calls=False)
    assert "etl packets" in reference["formats"]
    if source != "real-pktmon":
        assert any(r.get("wire") for r in reference["records"])


def test_procedures_named_from_symbols_are_left_to_python(tmp_path, monkeypatch):
    """With symbols, RecordMaker names a procedure no database names from the server's stack
    (correlate.procedure): the C builder leaves those records to it, so both give the same."""
    from rpctrace.correlate import procedure

    path = str(tmp_path / "t.etl")
    synthesize("busy-server", path, None, seed=4, clients=8, calls=200)
    trace, result = correlate_files([path], operations="failed")
    trace.symbols = object()  # symbols attached (what attach_symbols sets)
    monkeypatch.setattr(procedure, "derived_procedure", lambda trace, call: f"Derived{call.opnum}")
    fast_maker = RecordMaker(trace, names=lambda uuid, opnum: (None, None), status_name=ntstatus_name)
    slow_maker = RecordMaker(trace, names=lambda uuid, opnum: (None, None), status_name=ntstatus_name)
    slow_maker._core = None
    assert fast_maker._core is not None
    got = [fast_maker(c) for c in result.calls]
    assert got == [slow_maker(c) for c in result.calls]
    assert any(r.get("procedure_source") == "symbols" for r in got)
