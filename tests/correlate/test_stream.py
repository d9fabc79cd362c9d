"""Correlating a trace as a stream (what `rpctrace calls` and `tree` do) gives the calls of
correlating the whole loaded trace: same joins, same operations, process ids, registry paths, and
the stacks of failed operations; a listing keeps only the failed operations."""

from __future__ import annotations

import pytest

from rpctrace.correlate import call_record, correlate
from rpctrace.pipeline import correlate_files
from rpctrace.synth import synthesize
from rpctrace.trace import load


def _failed(op) -> bool:
    status = op.fields.get("status")
    return status is not None and (status & 0xC0000000) == 0xC0000000


def _records(trace, result, stacks=True):
    out = []
    for call in result.calls:
        record = call_record(call, trace)
        record["operations"] = [
            (op.kind, op.pid, op.tid, op.ts, op.fields.get("path"), op.stack if stacks and _failed(op) else None)
            for op in call.operations
        ]
        out.append(record)
    return out, sorted(result.unpaired.items())


@pytest.mark.parametrize("scenario", ["audiosrv-access-denied", "busy-server", "nested", "lost-events", "async"])
def test_stream_equals_whole_trace(tmp_path, scenario):
    path = str(tmp_path / "t.etl")
    synthesize(scenario, path, None, seed=21, clients=16, calls=600)
    whole = load([path])
    expected = _records(whole, correlate(whole))
    trace, result = correlate_files([path])
    assert trace.events == [] and trace.records == len(whole.events)
    got = _records(trace, result)
    assert got == expected
    assert any(op[5] for r in got[0] for op in r["operations"]), "failed operations carry their stacks"
    assert trace.processes.keys() == whole.processes.keys()


def test_listing_keeps_failed_operations_only(tmp_path):
    path = str(tmp_path / "t.etl")
    synthesize("audiosrv-access-denied", path, None, seed=2)
    _trace, every = correlate_files([path])
    _trace, failed = correlate_files([path], operations="failed")
    assert [c.id for c in every.calls] == [c.id for c in failed.calls]
    for a, b in zip(every.calls, failed.calls):
        assert list(b.operations) == [op._replace(stack=None) for op in a.operations if _failed(op)]
    assert any(c.operations for c in failed.calls)


def test_unknown_operations_mode():
    with pytest.raises(ValueError):
        correlate_files(["x.etl"], operations="some")
