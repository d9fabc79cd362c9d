"""Call records: the memoizing RecordMaker gives, call after call, what the one-call API gives,
in the shape the JSON fast path of the writers expects."""

from __future__ import annotations

import pytest

from rpctrace.correlate import call_record, correlate, failure_record
from rpctrace.correlate.records import RecordMaker
from rpctrace.knowledge.interfaces import lookup
from rpctrace.knowledge.status import ntstatus_name
from rpctrace.render import recordjson
from rpctrace.synth import synthesize
from rpctrace.trace import load


@pytest.fixture(scope="module", params=["audiosrv-access-denied", "nested"])
def traced(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    etl = tmp / "t.etl"
    synthesize(request.param, etl, tmp / "t.json", seed=7)
    trace = load([etl])
    return trace, correlate(trace).calls


@pytest.mark.parametrize("names, status_name", [(lookup, ntstatus_name), (None, None), (lookup, None)])
def test_record_maker_equals_call_record(traced, names, status_name):
    trace, calls = traced
    maker = RecordMaker(trace, names=names, status_name=status_name)
    made = [maker(c) for c in calls]
    assert made == [call_record(c, trace, names=names, status_name=status_name) for c in calls]
    assert [maker(c) for c in calls] == made  # with every lookup cached


def test_records_are_fresh_objects(traced):
    trace, calls = traced
    maker = RecordMaker(trace, names=lookup, status_name=ntstatus_name)
    call = next(c for c in calls if c.failures)
    first, second = maker(call), maker(call)
    first["client"]["image"] = "changed"
    first["failures"][0]["stack"] = ["x"]  # what `rpctrace windbg` does to a record
    assert second == call_record(call, trace, names=lookup, status_name=ntstatus_name)


def test_failure_record(traced):
    trace, calls = traced
    ops = [op for c in calls for op in c.failures]
    assert ops
    for op in ops:
        plain, named = failure_record(op), failure_record(op, ntstatus_name)
        assert plain["status_name"] is None
        assert named["status_name"] == ntstatus_name(op.fields["status"])
        assert {**plain, "status_name": named["status_name"]} == named
        assert RecordMaker(trace, status_name=ntstatus_name).failure(op) == named


def test_record_shape_is_the_json_fast_path_shape(traced):
    """rpctrace.render.recordjson writes call records from a fixed skeleton; a record of another
    shape is still written right, by ``json``, but 3x slower.  Change both together."""
    trace, calls = traced
    maker = RecordMaker(trace, names=lookup, status_name=ntstatus_name)
    for record in map(maker, calls):
        assert tuple(record) == recordjson.CALL_KEYS
        assert tuple(record["client"]) == recordjson.CLIENT_KEYS
        assert tuple(record["server"]) == recordjson.SERVER_KEYS
        assert tuple(record["interface"]) == recordjson.INTERFACE_KEYS
        for failure in record["failures"]:
            assert tuple(failure) == recordjson.FAILURE_KEYS
