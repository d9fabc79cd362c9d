"""The call writers: streamed output is exactly what ``json`` (and the original table layout)
gives for the same records, for real records and for records of any shape and value types."""

from __future__ import annotations

import enum
import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpctrace.correlate import correlate
from rpctrace.correlate.records import RecordMaker
from rpctrace.knowledge.interfaces import lookup
from rpctrace.knowledge.status import ntstatus_name
from rpctrace.render import recordjson
from rpctrace.render.calls import _table_row, _table_row_any, write_json, write_jsonl, write_table
from rpctrace.render.recordjson import record_block, record_line
from rpctrace.synth import synthesize
from rpctrace.trace import load


def json_reference(records: list) -> str:
    """What `rpctrace calls --format json` wrote before it streamed."""
    out = io.StringIO()
    json.dump(records, out, indent=2, ensure_ascii=False)
    out.write("\n")
    return out.getvalue()


def written(writer, records) -> str:
    out = io.StringIO()
    writer(iter(records), out)  # an iterator: the writers must not need a list
    return out.getvalue()


@pytest.fixture(scope="module", params=["audiosrv-access-denied", "nested", "async"])
def records(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    etl = tmp / "t.etl"
    synthesize(request.param, etl, tmp / "t.json", seed=7)
    trace = load([etl])
    return list(map(RecordMaker(trace, names=lookup, status_name=ntstatus_name), correlate(trace).calls))


def test_json_is_json_dump_of_the_list(records):
    assert written(write_json, records) == json_reference(records)
    assert written(write_json, records[:1]) == json_reference(records[:1])
    assert written(write_json, []) == json_reference([]) == "[]\n"


def test_jsonl_is_json_dumps_per_record(records):
    assert written(write_jsonl, records) == "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    assert written(write_jsonl, []) == ""


def test_table_fast_rows_are_the_layout(records):
    text = written(write_table, records)
    lines = text.splitlines(keepends=True)
    assert len(lines) == len(records) + 1
    assert lines[1:] == [_table_row_any(r) for r in records]


@pytest.mark.parametrize("writer", [write_json, write_jsonl, write_table])
def test_writers_stream(records, writer):
    """Each record is written before the next one is asked for."""
    out = io.StringIO()
    sizes = []

    def produce():
        for r in records[:5]:
            sizes.append(len(out.getvalue()))
            yield r

    writer(produce(), out)
    assert len(sizes) == 5 and all(a < b for a, b in zip(sizes, sizes[1:]))


# -- any record: the fast paths fall back to json for what they do not expect ------------------


class Level(enum.IntEnum):
    HIGH = 6


class Name(str):
    pass


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-3, max_value=3),  # equal to bools and small floats
    st.floats(),  # nan and infinities too (json writes NaN/Infinity)
    st.sampled_from([0.0, -0.0, 1.0, 82.6, 1e16, 1e-7, Level.HIGH, Name("svchost.exe")]),
    st.text(),
    st.text(alphabet='"\\\x00\x1f\x7f\u2028→↔ aé'),  # escapes and non-ASCII
    st.sampled_from(["2019-04-15T09:45:55.9129175Z", "LRPC", "alpc.send", "rpc5→alpc.send(same thread)"]),
)
keys = st.one_of(st.text(max_size=4), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False))
anything = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(keys, inner, max_size=3),
    ),
    max_leaves=8,
)


@st.composite
def shaped(draw, names: tuple[str, ...], value=anything):
    """A dict with ``names`` in order, sometimes with one key missing, added or moved."""
    items = [(k, draw(value)) for k in names]
    change = draw(st.sampled_from(["none"] * 6 + ["drop", "add", "move"]))
    if change == "drop" and items:
        del items[draw(st.integers(0, len(items) - 1))]
    elif change == "add":
        items.insert(draw(st.integers(0, len(items))), ("extra", draw(value)))
    elif change == "move" and len(items) > 1:
        items.append(items.pop(draw(st.integers(0, len(items) - 2))))
    return dict(items)


def value_for(name: str):
    if name in ("client", "server", "interface"):
        sub = {"client": recordjson.CLIENT_KEYS, "server": recordjson.SERVER_KEYS, "interface": recordjson.INTERFACE_KEYS}[name]
        return st.one_of(shaped(sub), anything)
    if name == "failures":
        return st.one_of(st.lists(st.one_of(shaped(recordjson.FAILURE_KEYS), anything), max_size=3), anything)
    if name in ("evidence", "children"):
        strings = st.lists(st.text(max_size=30), max_size=8)
        return st.one_of(strings, strings.map(tuple), st.lists(scalars, max_size=4), st.lists(scalars, max_size=4).map(tuple), anything)
    return anything


@st.composite
def call_records(draw):
    base = {k: draw(value_for(k)) for k in recordjson.CALL_KEYS}
    return draw(st.one_of(st.just(base), shaped(tuple(base), st.just(None)).map(lambda d: {k: base.get(k) for k in d}), anything))


@settings(max_examples=400, deadline=None)
@given(call_records())
def test_record_text_is_json_text_for_any_record(record):
    assert record_line(record) == json.dumps(record, ensure_ascii=False)
    assert record_block(record) == json.dumps(record, indent=2, ensure_ascii=False).replace("\n", "\n  ")


@settings(max_examples=60, deadline=None)
@given(st.lists(call_records(), max_size=3))
def test_write_json_is_json_dump_for_any_records(records):
    assert written(write_json, records) == json_reference(records)


def outcome(fn, record):
    try:
        return fn(record)
    except Exception:
        return "raises"


@st.composite
def usual_or_odd(draw, usual):
    """Mostly (9 in 10) the type a record holds there, else anything."""
    return draw(scalars if draw(st.integers(0, 9)) == 0 else usual)


ints = usual_or_odd(st.one_of(st.none(), st.integers(min_value=-5, max_value=2**33)))
texts = usual_or_odd(st.one_of(st.none(), st.just(""), st.text(max_size=70), st.just("svchost.exe")))
TABLE_CELLS = {
    "id": usual_or_odd(st.integers(min_value=-5, max_value=10**6)),
    "start": texts, "endpoint": texts, "procedure": texts, "opnum": ints, "status": ints,
    "confidence": usual_or_odd(st.one_of(st.floats(), st.sampled_from([0.2, 0.5, 1.0, 1, True]))),
}  # fmt: skip


@st.composite
def table_records(draw):
    def side(names):
        return draw(usual_or_odd(st.fixed_dictionaries({k: texts if k in ("image", "service", "uuid", "name") else ints for k in names})))

    failure = st.fixed_dictionaries({"kind": texts, "path": texts, "status": ints, "status_name": texts, "pid": ints, "tid": ints, "ts": texts})
    record = {k: draw(TABLE_CELLS.get(k, scalars)) for k in recordjson.CALL_KEYS}
    record.update(client=side(recordjson.CLIENT_KEYS), server=side(recordjson.SERVER_KEYS), interface=side(recordjson.INTERFACE_KEYS),
                  failures=draw(usual_or_odd(st.lists(failure, max_size=2))))  # fmt: skip
    return record


@settings(max_examples=500, deadline=None)
@given(table_records())
def test_table_row_is_the_layout_for_any_cell_types(record):
    assert outcome(_table_row, record) == outcome(_table_row_any, record)
