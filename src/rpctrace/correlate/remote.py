"""Remote calls: DCE/RPC seen on the wire -> calls, joined with what the server's trace saw.

Two steps, each a function the pipeline calls:

1. :func:`wire_calls` pairs the ``net.rpc_request`` events of a capture with their
   ``net.rpc_response`` / ``net.rpc_fault`` by association (TCP connection or named pipe) and
   call id, and makes each request a :class:`~rpctrace.correlate.calls.Call` in the same model as
   every other call: protocol 1 (TCP) or 2 (NP), endpoint = the server port (TCP) or
   ``\\PIPE\\name`` (NP), interface and opnum, start (request) and end (response), status (the
   fault status; 0 for a normal response; None when no answer was captured), auth level and
   service, and a :class:`Wire` record with the client's and server's address and port, the
   pipe, the call id and the frames.  A request without an answer is still a call (no end, no
   duration; its evidence says so).

2. :func:`join_server` matches wire calls to the server-side calls the correlator made from the
   server's Microsoft-Windows-RPC events (RPC 6/8 with protocol TCP or NP: server-only calls,
   since the client is on another machine): same protocol, same endpoint (port, or pipe name
   with Windows' pipe aliases), same opnum, same interface (when the wire knows it; otherwise the
   server's names it), and the server's start/stop inside the request/response window once the
   clock offset between the capture and the trace is applied.  The offset is estimated from the
   data (the offset that puts the most server calls inside their wire windows), the assignment is
   one-to-one (closest start first).  A joined call gains the server process, thread, times,
   status, operations (failures) and children (calls the server thread made meanwhile) and the
   server-only call is folded into it.  Calls that find no partner keep a lower confidence and
   their evidence says why.

:func:`correlate_remote` does both on a :class:`~rpctrace.correlate.calls.Correlation`.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Iterable

from rpctrace.correlate.alpc import with_evidence
from rpctrace.correlate.calls import Call, Correlation
from rpctrace.model import Event

__all__ = ["Wire", "JoinReport", "wire_calls", "join_server", "correlate_remote", "endpoint_key",
           "CONFIDENCE_JOINED", "CONFIDENCE_JOINED_AMBIGUOUS", "CONFIDENCE_WIRE_ONLY"]

PROTOCOL_TCP, PROTOCOL_NP = 1, 2
#: a wire call joined to exactly one server call that fits
CONFIDENCE_JOINED = 0.9
#: joined, but other server calls also fitted its window (the closest start was taken)
CONFIDENCE_JOINED_AMBIGUOUS = 0.7
#: seen on the wire only: both ends' addresses are certain, the server process is not known
CONFIDENCE_WIRE_ONLY = 0.4
#: server work must lie inside the wire window, give or take this much (100 ns ticks): capture
#: clock resolution (pcap: 1 us) and the stack's time between the wire and the RPC runtime
TOLERANCE = 2_000  # 200 us
#: largest clock offset between a capture and a trace that is looked for (ticks)
MAX_OFFSET = 15 * 60 * 10_000_000
#: wire calls sampled to estimate the offset, and server candidates kept per sampled call
OFFSET_SAMPLE = 2000
OFFSET_CANDIDATES = 64
#: a call without an answer may have its server work this long after its request (ticks)
OPEN_WINDOW = 30 * 10_000_000

#: pipes that are other names of one server endpoint (NPFS aliases on Windows: lsass serves
#: lsarpc, samr, netlogon, ... on \PIPE\lsass; the service controller's svcctl is \PIPE\ntsvcs)
PIPE_ALIASES = {"lsarpc": "lsass", "samr": "lsass", "netlogon": "lsass", "protected_storage": "lsass",
                "svcctl": "ntsvcs", "eventlog": "eventlog", "srvsvc": "srvsvc", "wkssvc": "wkssvc"}


@dataclass(slots=True)
class Wire:
    """What the network capture says about a call (``Call.wire``)."""

    transport: str  # "TCP" or "NP"
    client_address: str | None
    client_port: int | None
    server_address: str | None
    server_port: int | None
    pipe: str | None
    call_id: int
    connection: str
    request_frame: int | None
    response_frame: int | None = None
    interface_source: str | None = None  # "bind", "alter_context", "epm", "server trace" or None
    auth_type: int | None = None
    fault: bool = False
    fault_name: str | None = None
    join: str | None = None  # how (or why not) it was joined with the server's trace
    offset_us: float | None = None  # the clock offset the join used (trace - capture)

    def as_dict(self) -> dict:
        return {"transport": self.transport, "client_address": self.client_address, "client_port": self.client_port,
                "server_address": self.server_address, "server_port": self.server_port, "pipe": self.pipe,
                "call_id": self.call_id, "connection": self.connection, "request_frame": self.request_frame,
                "response_frame": self.response_frame, "interface_source": self.interface_source,
                "auth_type": self.auth_type, "fault": self.fault, "fault_name": self.fault_name, "join": self.join,
                "offset_us": self.offset_us}


def endpoint_key(protocol: int | None, endpoint: str | None) -> str | None:
    """The comparable form of an endpoint: a TCP port's digits, or a pipe's base name with the
    NPFS aliases resolved (``\\PIPE\\lsarpc`` and ``\\pipe\\lsass`` are one endpoint)."""
    if endpoint is None:
        return None
    text = str(endpoint).strip()
    if protocol == PROTOCOL_TCP:
        return (text.lstrip("0") or "0") if text.isdigit() else text
    name = text.replace("/", "\\").lower().rstrip("\0")
    for prefix in ("\\\\", "\\"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    if "\\pipe\\" in "\\" + name:
        name = ("\\" + name).split("\\pipe\\", 1)[1]
    name = name.lstrip("\\")
    return PIPE_ALIASES.get(name, name)


def _protocol(transport: str) -> int:
    return PROTOCOL_TCP if transport == "TCP" else PROTOCOL_NP


def wire_calls(events: Iterable[Event], first_id: int = 1) -> tuple[list[Call], dict[str, int]]:
    """Calls from a capture's ``net.*`` events (see the module docstring); also counts of what
    did not become a call (``orphan_responses``: answers whose request was not captured)."""
    calls: list[Call] = []
    open_calls: dict[tuple[str, int], Call] = {}
    counts = {"orphan_responses": 0, "binds_rejected": 0}
    for ev in events:
        kind = ev.kind
        if kind == "net.rpc_request":
            f = ev.fields
            proto = _protocol(f["transport"])
            call = Call(first_id + len(calls))
            call.protocol = proto
            call.interface = f.get("interface_uuid")
            call.opnum = f.get("opnum")
            pipe = f.get("pipe")
            call.endpoint = (f"\\PIPE\\{pipe}" if pipe else None) if proto == PROTOCOL_NP else str(f["server_port"])
            call.auth_level = f.get("auth_level")
            call.auth_service = f.get("auth_type")
            call.start = ev.ts
            call.has_client = False
            call.wire = Wire(f["transport"], f.get("client_address"), f.get("client_port"), f.get("server_address"),
                             f.get("server_port"), pipe, f["call_id"], f["connection"], f.get("first_frame"),
                             interface_source=f.get("interface_source"), auth_type=f.get("auth_type"))
            ev_text = "wire: request" + ("" if f.get("first_fragment_seen", True) else " (first fragment not captured)")
            call.evidence = with_evidence(call.evidence, ev_text)
            if call.interface is None:
                call.evidence = with_evidence(call.evidence, "wire: interface unknown (bind not captured, no "
                                                             "endpoint-mapper answer for the port)")
            key = (f["connection"], f["call_id"])
            old = open_calls.pop(key, None)
            if old is not None and old.end is None:
                old.evidence = with_evidence(old.evidence, "wire: no response captured (call id reused)")
            open_calls[key] = call
            calls.append(call)
        elif kind == "net.rpc_response" or kind == "net.rpc_fault":
            f = ev.fields
            call = open_calls.pop((f["connection"], f["call_id"]), None)
            if call is None:
                counts["orphan_responses"] += 1
                continue
            call.end = ev.ts
            call.wire.response_frame = f.get("frame")
            if kind == "net.rpc_fault":
                call.status = f.get("status")
                call.wire.fault = True
                call.wire.fault_name = f.get("status_name")
                call.evidence = with_evidence(call.evidence, "wire: fault")
            else:
                call.status = 0
                call.evidence = with_evidence(call.evidence, "wire: response")
        elif kind == "net.rpc_bind_nak":
            counts["binds_rejected"] += 1
    for call in open_calls.values():
        if call.end is None:
            call.evidence = with_evidence(call.evidence, "wire: no response captured")
    for call in calls:
        call.confidence = CONFIDENCE_WIRE_ONLY
    return calls, counts


@dataclass
class JoinReport:
    """What :func:`join_server` did."""

    offset: int | None  # ticks: trace time = capture time + offset (None: could not be estimated)
    joined: int
    ambiguous: int
    unmatched: int
    server_calls: int  # server-only TCP/NP calls offered to the join

    @property
    def offset_us(self) -> float | None:
        return self.offset / 10 if self.offset is not None else None


def _server_pool(calls: Iterable[Call]) -> list[Call]:
    return [c for c in calls if c.has_server and not c.has_client and c.message is None
            and getattr(c, "wire", None) is None and c.protocol in (PROTOCOL_TCP, PROTOCOL_NP)
            and c.server_start is not None]


def _key(c: Call) -> tuple:
    return (c.protocol, endpoint_key(c.protocol, c.endpoint), c.opnum)


def _estimate_offset(wires: list[Call], index: dict[tuple, tuple[list[int], list[Call]]]) -> int | None:
    """The offset that puts the most server calls inside their wire windows (sweep over the
    intervals of offsets each candidate pair allows)."""
    step = max(1, len(wires) // OFFSET_SAMPLE)
    edges: list[tuple[int, int]] = []
    for w in wires[::step]:
        got = index.get(_key(w))
        if not got:
            continue
        starts, pool = got
        lo = bisect.bisect_left(starts, w.start - MAX_OFFSET)
        hi = bisect.bisect_right(starts, w.start + MAX_OFFSET)
        cands = pool[lo:hi]
        if len(cands) > OFFSET_CANDIDATES:
            # the candidates nearest in raw time: with offsets far larger than the spacing of
            # calls this sample says little, and the sweep still finds the common offset
            mid = bisect.bisect_left(starts, w.start, lo, hi) - lo
            half = OFFSET_CANDIDATES // 2
            cands = cands[max(0, mid - half):mid + half]
        for s in cands:
            if w.interface and s.interface and w.interface != s.interface:
                continue
            a = s.server_start - w.start  # offset at most this (server starts after the request)
            end = s.server_end if s.server_end is not None else s.server_start
            b = end - w.end if w.end is not None else a - OPEN_WINDOW  # at least this
            if b > a + 2 * TOLERANCE:
                continue  # the server call is longer than the round trip: cannot be this one
            edges.append((min(a, b) - TOLERANCE, 1))
            edges.append((a + TOLERANCE, -1))
    if not edges:
        return None
    edges.sort(key=lambda e: (e[0], -e[1]))
    best = depth = 0
    best_lo = best_hi = None
    for i, (x, d) in enumerate(edges):
        depth += d
        if d > 0 and depth > best:
            best = depth
            best_lo = x
            best_hi = edges[i + 1][0] if i + 1 < len(edges) else x
    if best_lo is None:
        return None
    return (best_lo + best_hi) // 2


def join_server(wires: list[Call], server_calls: list[Call], offset: int | None = None,
                tolerance: int = TOLERANCE) -> tuple[set[int], JoinReport]:
    """Join wire calls with server-only calls (see the module docstring).  Returns the ids
    (``id()``) of the server calls folded into wire calls, and a report.  ``offset`` (ticks,
    trace minus capture) skips the estimate when the clocks' difference is known."""
    pool = _server_pool(server_calls)
    index: dict[tuple, tuple[list[int], list[Call]]] = {}
    for s in sorted(pool, key=lambda c: c.server_start):
        starts, lst = index.setdefault(_key(s), ([], []))
        starts.append(s.server_start)
        lst.append(s)
    wires = [w for w in wires if w.start is not None]
    if not pool:
        for w in wires:
            w.wire.join = "no server call over TCP or named pipes in the server trace"
            w.evidence = with_evidence(w.evidence, "join: no server-side RPC events to join")
        return set(), JoinReport(None, 0, 0, len(wires), 0)
    if offset is None:
        offset = _estimate_offset(sorted(wires, key=lambda c: c.start), index)
    if offset is None:
        for w in wires:
            w.wire.join = "no server call fits any wire call: clock offset not found"
            w.evidence = with_evidence(w.evidence, "join: no server call with the same protocol, endpoint and opnum")
        return set(), JoinReport(None, 0, 0, len(wires), len(pool))
    edges: list[tuple[int, int, Call, Call]] = []
    fits: dict[int, int] = {}
    for w in wires:
        got = index.get(_key(w))
        if not got:
            continue
        starts, lst = got
        lo_t = w.start + offset - tolerance
        hi_t = (w.end + offset + tolerance) if w.end is not None else w.start + offset + OPEN_WINDOW
        lo = bisect.bisect_left(starts, lo_t)
        hi = bisect.bisect_right(starts, hi_t)
        n = 0
        for s in lst[lo:hi]:
            if w.interface and s.interface and w.interface != s.interface:
                continue
            if w.end is not None and s.server_end is not None and s.server_end > w.end + offset + tolerance:
                continue
            n += 1
            edges.append((abs(s.server_start - (w.start + offset)), id(w), w, s))
        if n:
            fits[id(w)] = n
    edges.sort(key=lambda e: (e[0], e[1]))
    taken_w: set[int] = set()
    taken_s: set[int] = set()
    joined = ambiguous = 0
    off_us = offset / 10
    for _cost, wid, w, s in edges:
        if wid in taken_w or id(s) in taken_s:
            continue
        taken_w.add(wid)
        taken_s.add(id(s))
        _absorb(w, s)
        many = fits.get(wid, 1) > 1
        w.wire.offset_us = off_us
        w.wire.join = "joined" if not many else f"joined: {fits[wid]} server calls fit, the closest start taken"
        w.evidence = with_evidence(w.evidence, "wire↔rpc6: protocol+endpoint+opnum+interface+time"
                                   + (" (ambiguous)" if many else ""))
        w.confidence = CONFIDENCE_JOINED_AMBIGUOUS if many else CONFIDENCE_JOINED
        w.ambiguous = many
        joined += 1
        ambiguous += many
    unmatched = 0
    for w in wires:
        if id(w) in taken_w:
            continue
        unmatched += 1
        if id(w) in fits:
            why = "every server call that fits was joined to another wire call"
        elif _key(w) in index:
            why = f"no server call with this endpoint and opnum inside the window (clock offset {off_us:+.0f} us)"
        else:
            why = "no server call with this protocol, endpoint and opnum in the server trace"
        w.wire.join = why
        w.wire.offset_us = off_us
        w.evidence = with_evidence(w.evidence, "join: " + why)
    return taken_s, JoinReport(offset, joined, ambiguous, unmatched, len(pool))


def _absorb(w: Call, s: Call) -> None:
    """The wire call takes the server side of ``s``."""
    w.server_pid, w.server_tid = s.server_pid, s.server_tid
    w.server_start, w.server_end, w.server_status = s.server_start, s.server_end, s.server_status
    w.server_activity = s.server_activity
    w.operations = s.operations
    if s.children:
        w.children = list(w.children) + list(s.children)
        for child in s.children:
            child.parent = w
    if w.interface is None and s.interface is not None:
        w.interface = s.interface
        w.wire.interface_source = "server trace"
    if w.auth_level is None:
        w.auth_level = s.auth_level
    if w.auth_service is None:
        w.auth_service = s.auth_service
    w.impersonation_level = s.impersonation_level
    w.has_server = True
    s.merged = True


def correlate_remote(correlation: Correlation, net_events: Iterable[Event], offset: int | None = None
                     ) -> tuple[Correlation, JoinReport, dict[str, int]]:
    """The calls of ``correlation`` (from the server's trace; may be empty) with the capture's
    calls added and joined; calls are renumbered in start order."""
    wires, counts = wire_calls(net_events)
    merged, report = join_server(wires, correlation.calls, offset)
    calls = [c for c in correlation.calls if id(c) not in merged] + wires
    calls.sort(key=lambda c: (c.start if c.start is not None else (c.server_start or 0)))
    for n, c in enumerate(calls, 1):
        c.id = n
    result = Correlation(calls, dict(correlation.unpaired), correlation.ports, correlation.endpoints)
    return result, report, counts
