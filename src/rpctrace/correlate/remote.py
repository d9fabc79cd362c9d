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
from typing import Iterable, NamedTuple

from rpctrace.correlate.alpc import with_evidence
from rpctrace.correlate.calls import Call, Correlation
from rpctrace.model import Event
from rpctrace.schema import WireRecord

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
TOLERANCE = 500  # 50 us
#: largest clock offset between a capture and a trace that is looked for (ticks)
MAX_OFFSET = 15 * 60 * 10_000_000
#: wire calls sampled to estimate the offset, and server candidates kept per sampled call
OFFSET_SAMPLE = 200
OFFSET_CANDIDATES = 4096
#: offsets (peaks of the sweep) tried with the full matching, and the wire calls it is tried on
PEAKS_TRIED = 12
#: times the offset is re-estimated from the pairs it joined
REFINE_ROUNDS = 4
OFFSET_BLOCK = 2000
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

    def as_dict(self) -> WireRecord:
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


def _wire_of(call: Call) -> Wire:
    """The capture's record of a wire call (:func:`wire_calls` gives every call one)."""
    wire = call.wire
    if wire is None:
        raise ValueError(f"call {call.id} was not seen on the wire (no Wire record): not a wire call")
    return wire


def wire_calls(events: Iterable[Event], first_id: int = 1) -> tuple[list[Call], dict[str, int]]:
    """Calls from a capture's ``net.*`` events (see the module docstring); also counts of what
    did not become a call (``orphan_responses``: answers whose request was not captured)."""
    calls: list[Call] = []
    open_calls: dict[tuple[str, int], Call] = {}
    counts = {"orphan_responses": 0, "binds_rejected": 0}
    call: Call | None
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
            wire = _wire_of(call)
            wire.response_frame = f.get("frame")
            if kind == "net.rpc_fault":
                call.status = f.get("status")
                wire.fault = True
                wire.fault_name = f.get("status_name")
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


class _WireSide(NamedTuple):
    """A wire call offered to the join, with what the join reads of it (its request's time is
    known: calls without one are not offered)."""

    call: Call
    wire: Wire
    start: int  # the request
    end: int | None  # the response, None when no answer was captured


class _ServerSide(NamedTuple):
    """A server-only call offered to the join (its server start is known: see _server_pool)."""

    call: Call
    start: int  # RPC event 6
    end: int | None  # RPC event 8, None when not seen


#: what a wire call and a server call must share to be joined: protocol, endpoint, opnum
_Key = tuple["int | None", "str | None", "int | None"]
#: key -> (server starts, sorted; the server calls, in the same order)
_Index = dict[_Key, tuple[list[int], list[_ServerSide]]]
#: (wire call, server call, ambiguous, candidates)
_Pair = tuple[_WireSide, _ServerSide, bool, int]


def _server_pool(calls: Iterable[Call]) -> list[_ServerSide]:
    return [_ServerSide(c, c.server_start, c.server_end) for c in calls
            if c.has_server and not c.has_client and c.message is None
            and c.wire is None and c.protocol in (PROTOCOL_TCP, PROTOCOL_NP)
            and c.server_start is not None]


def _key(c: Call) -> _Key:
    return (c.protocol, endpoint_key(c.protocol, c.endpoint), c.opnum)


def _estimate_offset(wires: list[_WireSide], index: _Index, tolerance: int = 500) -> int | None:
    """The clock offset (trace - capture) that joins the most wire calls.

    Each (wire call, server call of the same key) pair allows an interval of offsets: the
    server's work must lie between the request and the response.  A sweep over the intervals
    of a sample of wire calls gives the offsets most pairs agree on; on a busy pair many offsets
    are plausible for single calls, so the best few peaks are then tried with the one-to-one
    matching on a block of consecutive wire calls: the offset that joins the most wins.
    """
    if not wires:
        return None
    sample = wires[::max(1, len(wires) // OFFSET_SAMPLE)]
    edges: list[tuple[int, int]] = []
    for w in sample:
        got = index.get(_key(w.call))
        if not got:
            continue
        starts, pool = got
        lo = bisect.bisect_left(starts, w.start - MAX_OFFSET)
        hi = bisect.bisect_right(starts, w.start + MAX_OFFSET)
        step = max(1, (hi - lo) // OFFSET_CANDIDATES)
        for s in pool[lo:hi:step]:
            if w.call.interface and s.call.interface and w.call.interface != s.call.interface:
                continue
            a = s.start - w.start  # the offset is at most this (work starts after the request)
            end = s.end if s.end is not None else s.start
            b = end - w.end if w.end is not None else a - OPEN_WINDOW  # and at least this
            if b > a + 2 * tolerance:
                continue  # the server call is longer than the round trip: cannot be this one
            edges.append((min(a, b) - tolerance, 1))
            edges.append((a + tolerance, -1))
    if not edges:
        return None
    edges.sort(key=lambda e: (e[0], -e[1]))
    peaks: list[tuple[int, int]] = []  # (depth, offset)
    depth = 0
    for k, (x, d) in enumerate(edges):
        depth += d
        if d > 0 and (k + 1 == len(edges) or edges[k + 1][0] != x):
            nxt = edges[k + 1][0] if k + 1 < len(edges) else x
            peaks.append((depth, (x + nxt) // 2))
    peaks.sort(reverse=True)
    chosen: list[int] = []
    for _depth, off in peaks:
        if all(abs(off - c) > 10 * tolerance for c in chosen):
            chosen.append(off)
        if len(chosen) >= PEAKS_TRIED:
            break
    if len(chosen) == 1:
        return chosen[0]
    mid = len(wires) // 2
    block = wires[:OFFSET_BLOCK // 2] + wires[max(OFFSET_BLOCK // 2, mid - OFFSET_BLOCK // 4):mid + OFFSET_BLOCK // 4]
    best: tuple[tuple[int, int], int] | None = None
    for off in chosen:
        pairs, _fits = _match(block, index, off, tolerance)
        score = (len(pairs), -sum(max(0, w.start + off - s.start) for w, s, _m, _n in pairs))
        if best is None or score > best[0]:
            best = (score, off)
    return best[1] if best else None


def join_server(wires: list[Call], server_calls: list[Call], offset: int | None = None,
                tolerance: int = TOLERANCE) -> tuple[set[int], JoinReport]:
    """Join wire calls with server-only calls (see the module docstring).  Returns the ids
    (``id()``) of the server calls folded into wire calls, and a report.  ``offset`` (ticks,
    trace minus capture) skips the estimate (and its refinement) when the clocks' difference is
    known, as it is for packets recorded in the server's own trace (offset 0)."""
    pool = _server_pool(server_calls)
    index: _Index = {}
    for s in sorted(pool, key=lambda c: c.start):
        starts, lst = index.setdefault(_key(s.call), ([], []))
        starts.append(s.start)
        lst.append(s)
    offered = [_WireSide(w, _wire_of(w), w.start, w.end) for w in wires if w.start is not None]
    if not pool:
        for w in offered:
            w.wire.join = "no server call over TCP or named pipes in the server trace"
            w.call.evidence = with_evidence(w.call.evidence, "join: no server-side RPC events to join")
        return set(), JoinReport(None, 0, 0, len(offered), 0)
    known = offset is not None  # a known offset (one clock: packets in the trace itself) is not refined
    if offset is None:
        offset = _estimate_offset(sorted(offered, key=lambda c: c.start), index, tolerance)
    if offset is None:
        for w in offered:
            w.wire.join = "no server call fits any wire call: clock offset not found"
            w.call.evidence = with_evidence(w.call.evidence, "join: no server call with the same protocol, endpoint and opnum")
        return set(), JoinReport(None, 0, 0, len(offered), len(pool))
    pairs, fits = _match(offered, index, offset, tolerance)
    for _ in range(0 if known else REFINE_ROUNDS):
        refined = _refine(pairs)
        if refined is None or refined == offset:
            break
        offset = refined
        pairs, fits = _match(offered, index, offset, tolerance)
    taken_w: set[int] = set()
    taken_s: set[int] = set()
    joined = ambiguous = 0
    off_us = offset / 10
    for w, s, many, n in pairs:
        taken_w.add(id(w.call))
        taken_s.add(id(s.call))
        _absorb(w.call, s.call)
        w.wire.offset_us = off_us
        w.wire.join = "joined" if not many else f"joined: {n} server calls fit, taken in arrival order"
        w.call.evidence = with_evidence(w.call.evidence, "wire↔rpc6: protocol+endpoint+opnum+interface+time"
                                        + (" (ambiguous)" if many else ""))
        w.call.confidence = CONFIDENCE_JOINED_AMBIGUOUS if many else CONFIDENCE_JOINED
        w.call.ambiguous = many
        joined += 1
        ambiguous += many
    unmatched = 0
    for w in offered:
        if id(w.call) in taken_w:
            continue
        unmatched += 1
        if id(w.call) in fits:
            why = "every server call that fits was joined to another wire call"
        elif _key(w.call) in index:
            why = f"no server call with this endpoint and opnum inside the window (clock offset {off_us:+.0f} us)"
        else:
            why = "no server call with this protocol, endpoint and opnum in the server trace"
        w.wire.join = why
        w.wire.offset_us = off_us
        w.call.evidence = with_evidence(w.call.evidence, "join: " + why)
    return taken_s, JoinReport(offset, joined, ambiguous, unmatched, len(pool))


def _match(wires: list[_WireSide], index: _Index, offset: int, tolerance: int) -> tuple[list[_Pair], dict[int, int]]:
    """Pairs (wire call, server call, ambiguous, candidates) and the number of candidates per
    wire call (by ``id()`` of the wire call).  Candidates are server calls of the same key whose
    work lies inside the wire window (give or take ``tolerance``).  Wire calls are served in
    request order, each taking the fitting server call that started first: an RPC server
    dequeues requests in the order they arrive (the completion port of its endpoint), so when
    several calls of one procedure overlap, the first request is the first dispatched; work
    lying wholly inside the window is preferred over work that sticks out by less than the
    tolerance."""
    cands: list[tuple[int, int, _WireSide, list[tuple[int, int, _ServerSide]]]] = []
    for w in wires:
        got = index.get(_key(w.call))
        if not got:
            continue
        starts, lst = got
        lo_t = w.start + offset
        hi_t = (w.end + offset) if w.end is not None else w.start + offset + OPEN_WINDOW
        lo = bisect.bisect_left(starts, lo_t - tolerance)
        hi = bisect.bisect_right(starts, hi_t + tolerance)
        fit = []
        for s in lst[lo:hi]:
            if w.call.interface and s.call.interface and w.call.interface != s.call.interface:
                continue
            end = s.end if s.end is not None else s.start
            slack = max(0, lo_t - s.start, end - hi_t)
            if slack > tolerance:
                continue
            fit.append((slack, end, s))
        if fit:
            cands.append((w.start, hi_t, w, fit))
    cands.sort(key=lambda c: (c[0], c[1]))
    taken: set[int] = set()
    pairs: list[_Pair] = []
    fits: dict[int, int] = {}
    for _hi, _st, w, fit in cands:
        fits[id(w.call)] = len(fit)
        free = [f for f in fit if id(f[2]) not in taken]
        if not free:
            continue
        _slack, _end, s = min(free, key=lambda f: (f[0] > 0, f[2].start, f[0]))
        taken.add(id(s))
        pairs.append((w, s, sum(1 for f in fit if f[0] == 0) > 1, len(fit)))
    return pairs, fits


def _refine(pairs: list[_Pair]) -> int | None:
    """The offset the joined pairs agree on: each pair bounds it by (server end - response)
    below and (server start - request) above; the middle of the bounds most pairs respect."""
    lows = sorted(s.end - w.end for w, s, _m, _n in pairs if w.end is not None and s.end is not None)
    highs = sorted(s.start - w.start for w, s, _m, _n in pairs)
    if len(lows) < 3 or not highs:
        return None
    lo = lows[min(len(lows) - 1, int(len(lows) * 0.9))]
    hi = highs[int(len(highs) * 0.1)]
    if lo <= hi:
        return (lo + hi) // 2
    return (lows[len(lows) // 2] + highs[len(highs) // 2]) // 2  # pairs disagree: the middle of the medians


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
        _wire_of(w).interface_source = "server trace"
    if w.auth_level is None:
        w.auth_level = s.auth_level
    if w.auth_service is None:
        w.auth_service = s.auth_service
    w.impersonation_level = s.impersonation_level
    w.has_server = True
    s.merged = True


def correlate_remote(correlation: Correlation, *captures: Iterable[Event], offset: int | None = None
                     ) -> tuple[Correlation, JoinReport, dict[str, int]]:
    """The calls of ``correlation`` (from the server's trace; may be empty) with the calls of
    each capture's events added and joined; calls are renumbered in start order."""
    wires: list[Call] = []
    counts: dict[str, int] = {}
    for events in captures:
        got, more = wire_calls(events)
        wires += got
        for k, v in more.items():
            counts[k] = counts.get(k, 0) + v
    merged, report = join_server(wires, correlation.calls, offset)
    calls = [c for c in correlation.calls if id(c) not in merged] + wires
    calls.sort(key=lambda c: (c.start if c.start is not None else (c.server_start or 0)))
    for n, c in enumerate(calls, 1):
        c.id = n
    result = Correlation(calls, dict(correlation.unpaired), correlation.ports, correlation.endpoints)
    return result, report, counts
