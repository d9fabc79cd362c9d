"""What typing the correlator (mypy, tests/test_lint.py) showed was wrong, kept right."""

from __future__ import annotations

from rpctrace.correlate import correlate_events
from rpctrace.knowledge import providers as P
from rpctrace.model import Event

IFACE = "12345678-1234-abcd-ef00-0123456789ab"


def _rpc(ts: int, pid: int | None, tid: int | None, kind: str, opcode: int, **fields: object) -> Event:
    return Event(ts, pid, tid, 0, P.RPC, opcode, opcode, 0, kind, dict(fields))


def test_endpoints_hold_only_known_server_pids() -> None:
    # A server start whose process the trace does not know (pid None) names no server of the
    # endpoint: Correlation.endpoints maps endpoint names to pids, and None is not one (it was
    # added before; sorting such a set fails, as RPC endpoint-bind events already avoided).
    events = [
        _rpc(100, None, 7, "rpc.server_start", 6, interface_uuid=IFACE, procnum=1, endpoint="ep1", protocol=3),
        _rpc(200, None, 7, "rpc.server_stop", 8, status=0),
        _rpc(300, 40, 8, "rpc.server_start", 6, interface_uuid=IFACE, procnum=1, endpoint="ep2", protocol=3),
        _rpc(400, 40, 8, "rpc.server_stop", 8, status=0),
        _rpc(500, None, 9, "rpc.endpoint_bind", 16, endpoint="ep3"),
    ]
    result = correlate_events(events)
    assert result.endpoints == {"ep2": {40}}
    assert all(None not in pids for pids in result.endpoints.values())
    assert [c.endpoint for c in result.calls] == ["ep1", "ep2"]  # both calls are still made
