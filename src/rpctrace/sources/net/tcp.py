"""TCP stream reassembly: segments in capture order -> each direction's bytes in stream order.

Why by hand: dpkt decodes one segment at a time and has no reassembly.  What real captures do,
and what this handles:

* out-of-order segments wait (keyed by their unwrapped sequence number) until the hole before
  them is filled;
* retransmissions and overlapping segments: bytes already delivered are trimmed off (the first
  copy seen wins, as most reassemblers do);
* 32-bit sequence wrap: sequence numbers are unwrapped relative to the next expected byte;
* a connection captured after its handshake starts at its first data segment;
* lost segments: when a direction's waiting bytes pass :attr:`Limits.stream_buffer`, or all
  directions' pass :attr:`Limits.total_buffer`, or the connection ends, the hole is declared a
  gap: the application layer is told (it resynchronizes at the next message boundary) and
  delivery resumes after it;
* port reuse: a SYN with a new initial sequence number on a known 4-tuple starts a new
  connection.

Memory is bounded: at most :attr:`Limits.connections` connections (the least recently active one
is closed first), at most ``stream_buffer`` bytes waiting per direction, ``total_buffer`` in
all.  Connections that turn out not to carry DCE/RPC or SMB stop being buffered at once.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Limits", "TcpReassembler", "Connection"]

_M = 0xFFFFFFFF
_HALF = 1 << 31
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10


@dataclass(frozen=True)
class Limits:
    """Bounds of the reassembler (defaults suit a capture of a busy server)."""

    connections: int = 65536
    stream_buffer: int = 4 * 1024 * 1024
    total_buffer: int = 256 * 1024 * 1024
    #: a segment this far past the next expected byte is a jump (broken stream), not a hole
    max_jump: int = 1 << 30
    #: data segments examined before a connection is declared "not RPC"
    sniff_segments: int = 8


class _Flow:
    __slots__ = ("next", "pending", "pending_bytes", "fin")

    def __init__(self) -> None:
        self.next: int | None = None  # unwrapped sequence number of the next byte to deliver
        self.pending: dict[int, tuple[bytes, int, int]] = {}  # position -> (bytes, frame, ts)
        self.pending_bytes = 0
        self.fin = False


class Connection:
    """One TCP connection: endpoints as seen first (side 0 sent the first segment), both flows,
    and the application-layer parser (``app``), or ``False`` once it is known not to be RPC."""

    __slots__ = ("id", "addresses", "ports", "flows", "app", "sniffed", "isn")

    def __init__(self, cid: str, addresses: tuple[str, str], ports: tuple[int, int]):
        self.id = cid
        self.addresses = addresses
        self.ports = ports
        self.flows = (_Flow(), _Flow())
        self.app: Any = None
        self.sniffed = 0
        self.isn: list[int | None] = [None, None]


#: ``factory(connection, side, first data) -> app or None``; an app has ``data(side, bytes,
#: frame, ts)``, ``gap(side)`` and ``finish()``
AppFactory = Callable[[Connection, int, bytes], Any]


class TcpReassembler:
    """Feeds the application parsers of every connection; see the module docstring."""

    def __init__(self, factory: AppFactory, limits: Limits = Limits(), damage: Callable[[int, str], None] | None = None):
        self.factory = factory
        self.limits = limits
        self.damage = damage
        self.conns: OrderedDict[tuple, Connection] = OrderedDict()
        self.total_pending = 0
        self.count = 0
        self.gaps = 0
        self.retransmitted = 0
        self.evicted = 0

    def _new(self, key: tuple, src: str, sport: int, dst: str, dport: int) -> Connection:
        conns = self.conns
        if len(conns) >= self.limits.connections:
            _k, old = conns.popitem(last=False)
            self.evicted += 1
            self._close(old)
        self.count += 1
        conn = conns[key] = Connection(f"tcp{self.count}:{src}:{sport}-{dst}:{dport}", (src, dst), (sport, dport))
        return conn

    def segment(self, src: str, sport: int, dst: str, dport: int, seq: int, flags: int, payload: bytes,
                frame: int, ts: int) -> None:
        """One TCP segment, in capture order."""
        if (src, sport) <= (dst, dport):
            key = (src, sport, dst, dport)
        else:
            key = (dst, dport, src, sport)
        conns = self.conns
        conn = conns.get(key)
        if conn is not None:
            conns.move_to_end(key)
            side = 0 if (src, sport) == (conn.addresses[0], conn.ports[0]) else 1
            if flags & SYN and conn.isn[side] is not None and conn.isn[side] != seq:
                # a new connection on the same 4-tuple (port reuse)
                del conns[key]
                self._close(conn)
                conn = None
        if conn is None:
            if not payload and not flags & SYN:
                return  # a bare ACK/FIN/RST of a connection never seen: nothing to follow
            conn = self._new(key, src, sport, dst, dport)
            side = 0
        if conn.app is False:
            if flags & (FIN | RST):
                self._drop(key, conn)
            return
        flow = conn.flows[side]
        if flags & SYN:
            conn.isn[side] = seq
            if flow.next is None:
                flow.next = seq + 1
            seq += 1
        if payload:
            self._data(conn, side, flow, seq, payload, frame, ts)
        if flags & RST:
            self._drop(key, conn, frame)
        elif flags & FIN:
            flow.fin = True
            if conn.flows[1 - side].fin:
                self._drop(key, conn, frame)

    def _data(self, conn: Connection, side: int, flow: _Flow, seq: int, payload: bytes, frame: int, ts: int) -> None:
        if flow.next is None:
            flow.next = seq
        base = flow.next
        delta = (seq - base) & _M
        if delta >= _HALF:
            delta -= 1 << 32
        pos = base + delta
        if delta < 0:
            if -delta >= len(payload):
                self.retransmitted += 1
                return
            payload = payload[-delta:]
            pos = base
            self.retransmitted += 1
        limits = self.limits
        if pos == base:
            self._deliver(conn, side, payload, frame, ts)
            flow.next = base + len(payload)
            if flow.pending:
                self._drain(conn, side, flow, frame, ts)
            return
        if delta > limits.max_jump:
            if self.damage is not None:
                self.damage(frame, f"{conn.id}: sequence number jumps {delta} bytes ahead; a gap is assumed")
            self._gap(conn, side, flow)
            flow.next = pos
            self._deliver(conn, side, payload, frame, ts)
            flow.next = pos + len(payload)
            return
        old = flow.pending.get(pos)
        if old is not None and len(old[0]) >= len(payload):
            self.retransmitted += 1
            return
        flow.pending[pos] = (payload, frame, ts)
        grow = len(payload) - (len(old[0]) if old is not None else 0)
        flow.pending_bytes += grow
        self.total_pending += grow
        if flow.pending_bytes > limits.stream_buffer or self.total_pending > limits.total_buffer:
            if self.damage is not None:
                self.damage(frame, f"{conn.id}: more than {min(limits.stream_buffer, limits.total_buffer)} bytes wait "
                                   "behind a missing segment; the missing bytes are skipped")
            while flow.pending and (flow.pending_bytes > limits.stream_buffer
                                    or self.total_pending > limits.total_buffer):
                self._skip_hole(conn, side, flow, None, None)

    def _drain(self, conn: Connection, side: int, flow: _Flow, frame: int | None, ts: int | None) -> None:
        """Deliver the waiting segments that now follow on; they count as arrived with the
        segment that filled the hole (``frame``, ``ts``), or at their own time (None)."""
        pending = flow.pending
        while pending:
            nxt = flow.next
            if nxt is None:  # not so: segments wait only behind a known next byte (_data set it)
                return
            first = min(pending)
            if first > nxt:
                return
            data, own_frame, own_ts = pending.pop(first)
            flow.pending_bytes -= len(data)
            self.total_pending -= len(data)
            end = first + len(data)
            if end <= nxt:
                self.retransmitted += 1
                continue
            self._deliver(conn, side, data[nxt - first:], own_frame if frame is None else frame,
                          own_ts if ts is None else ts)
            flow.next = end

    def _skip_hole(self, conn: Connection, side: int, flow: _Flow, frame: int | None, ts: int | None) -> None:
        """Declare the hole before the first waiting segment lost and deliver from there."""
        if not flow.pending:
            return
        self.gaps += 1
        self._gap(conn, side, flow)
        flow.next = min(flow.pending)
        self._drain(conn, side, flow, frame, ts)

    def _gap(self, conn: Connection, side: int, flow: _Flow) -> None:
        app = conn.app
        if app:
            app.gap(side)

    def _deliver(self, conn: Connection, side: int, data: bytes, frame: int, ts: int) -> None:
        app = conn.app
        if app is None:
            conn.sniffed += 1
            app = self.factory(conn, side, data)
            if app is None:
                if conn.sniffed >= self.limits.sniff_segments:
                    conn.app = False
                    self._release(conn)
                return
            conn.app = app
        elif app is False:
            return
        app.data(side, data, frame, ts)

    def _release(self, conn: Connection) -> None:
        for flow in conn.flows:
            self.total_pending -= flow.pending_bytes
            flow.pending.clear()
            flow.pending_bytes = 0

    def _close(self, conn: Connection, frame: int = 0) -> None:
        """End of a connection: deliver what waits behind holes, then finish the parser."""
        for side, flow in enumerate(conn.flows):
            while flow.pending and conn.app is not False:
                self._skip_hole(conn, side, flow, None, None)
        self._release(conn)
        app = conn.app
        if app:
            app.finish()
        conn.app = False

    def _drop(self, key: tuple, conn: Connection, frame: int = 0) -> None:
        if self.conns.get(key) is conn:
            del self.conns[key]
        self._close(conn, frame)

    def finish(self) -> None:
        """The capture ended: close every connection still open."""
        while self.conns:
            _k, conn = self.conns.popitem(last=False)
            self._close(conn)
