"""One decoder for every frame source: link/IP/TCP -> SMB named pipes / DCE/RPC -> ``net.*`` events.

A frame source (a pcap/pcapng file, :mod:`.pcap`; packet events in an ETW trace, :mod:`.etw`)
hands :class:`FrameDecoder` numbered, timestamped frames with their link type; the decoder does
the rest the same way for both, so a capture and an ``.etl`` holding the same packets give the
same events:

frame -> link/IP/TCP (:mod:`.link`, dpkt) -> stream reassembly (:mod:`.tcp`) -> per connection
either DCE/RPC directly (ncacn_ip_tcp) or SMB1/SMB2 named pipes (:mod:`.smb`, ncacn_np) ->
DCE/RPC associations (:mod:`.dcerpc`), which emit the events.  Endpoint-mapper answers
(:mod:`.epm`) are kept per source, so a connection captured after its bind still names its
interface when an ``ept_map`` answer for its port was seen.

Damage inside the traffic (a frame that is not decodable, a broken TCP stream, a DCE/RPC header
that makes no sense, an SMB message that runs past its end) is normal in real captures: it is
counted, the first few are kept with their frame numbers in :attr:`FrameDecoder.stats`, one
``net.damage`` event is emitted for each, and decoding continues at the next message boundary.
A frame source reports its own damage (a packet event cut short) through :meth:`FrameDecoder.damage`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, overload

from rpctrace.errors import InputError
from rpctrace.knowledge.providers import NET
from rpctrace.model import Event
from rpctrace.sources.net.dcerpc import Association, Endpoints, PduStream, looks_like_pdu
from rpctrace.sources.net.epm import MapEntry
from rpctrace.sources.net.link import SUPPORTED_LINKTYPES, NotTcp, segment_of
from rpctrace.sources.net.smb import SmbConnection, _pipe_name, looks_like_smb
from rpctrace.sources.net.tcp import Connection, Limits, TcpReassembler

__all__ = ["FrameDecoder", "NetStats", "NET_PROVIDER", "EVENT_IDS", "MAX_DAMAGE_KEPT"]

#: the provider GUID of events decoded from network traffic (not a Windows provider)
NET_PROVIDER = NET
EVENT_IDS = {"net.rpc_bind": 1, "net.rpc_bind_ack": 2, "net.rpc_bind_nak": 3, "net.rpc_request": 4,
             "net.rpc_response": 5, "net.rpc_fault": 6, "net.epm_map": 7, "net.pipe_open": 8, "net.damage": 9}
#: damage records kept with their text (the rest are only counted)
MAX_DAMAGE_KEPT = 20
#: endpoint-mapper answers remembered per source
MAX_EPM_ENTRIES = 65536


@dataclass
class NetStats:
    """What decoding a source's frames met: frame counts and the damage it stepped over."""

    frames: int = 0
    tcp_segments: int = 0
    not_tcp: int = 0
    undecodable: int = 0
    unsupported_linktypes: set[int] = field(default_factory=set)
    connections: int = 0
    rpc_connections: int = 0
    smb_connections: int = 0
    gaps: int = 0
    retransmitted: int = 0
    evicted: int = 0
    smb_unreadable: int = 0
    damage: int = 0
    damage_examples: list[str] = field(default_factory=list)
    stopped: str | None = None
    path: str | None = None  # the capture file counted (NetReader sets it)

    @overload
    def summary(self) -> dict[str, Any]: ...
    @overload
    def summary(self, path: str) -> str | None: ...
    def summary(self, path: str | None = None) -> dict[str, Any] | str | None:
        """With ``path``: one line about what was stepped over, or None when the traffic was
        clean.  Without: a capture file's counts as a trace's source info holds them, like every
        reader's stats (``format`` "pcap", ``frames``, and that line for :attr:`path` as
        ``summary``): what :func:`rpctrace.trace.load` records of a capture it reads."""
        if path is None:
            return {"format": "pcap", "frames": self.frames, "summary": self._line(self.path or "capture")}
        return self._line(path)

    def _line(self, path: str) -> str | None:
        parts = []
        if self.undecodable:
            parts.append(f"{self.undecodable} frames not decodable")
        if self.unsupported_linktypes:
            parts.append("link types not supported: " + ", ".join(map(str, sorted(self.unsupported_linktypes))))
        if self.gaps:
            parts.append(f"{self.gaps} gaps in TCP streams")
        if self.smb_unreadable:
            parts.append(f"{self.smb_unreadable} encrypted or compressed SMB messages")
        if self.damage:
            parts.append(f"{self.damage} damaged messages skipped (first: {self.damage_examples[0]})")
        if self.stopped:
            parts.append(f"reading stopped: {self.stopped}")
        if not parts:
            return None
        return f"{path}: " + "; ".join(parts)

    def end(self, failure: InputError | None, keep_going: bool) -> None:
        """A frame source's reading is over: damage to its container (``failure``) is noted in
        :attr:`stopped` and raised, unless ``keep_going``."""
        if failure is not None:
            self.stopped = failure.one_line()
            if not keep_going:
                raise failure


class _TcpRpc:
    """ncacn_ip_tcp: both directions of a TCP connection are one association."""

    __slots__ = ("assoc", "streams")

    def __init__(self, conn: Connection, emit, damage, lookup, learn):
        ends = Endpoints("TCP", conn.addresses, conn.ports, conn.id)
        self.assoc = Association(ends, emit, lookup, learn, damage)
        self.streams = (PduStream(self.assoc, 0, conn.id), PduStream(self.assoc, 1, conn.id))

    def data(self, side: int, chunk: bytes, frame: int, ts: int) -> None:
        self.streams[side].data(chunk, frame, ts)

    def gap(self, side: int) -> None:
        self.streams[side].gap()

    def finish(self) -> None:
        self.assoc.finish()


class FrameDecoder:
    """Frames in, ``net.*`` events out (see the module docstring).

    ``frame(number, ts, linktype, data)`` decodes one frame and returns the events it completed
    (a list owned by the caller); ``finish()`` flushes what the streams still hold and returns
    the last events.  ``stats`` counts what was met.
    """

    def __init__(self, limits: Limits = Limits(), stats: NetStats | None = None):
        self.stats = stats if stats is not None else NetStats()
        self._out: list[Event] = []
        self._epm: dict[tuple[str, str, Any], tuple[str, int, int]] = {}
        self._ts = 0
        self._tcp = TcpReassembler(self._app, limits, self._damage)
        self._segment = self._tcp.segment

    # -- plumbing ------------------------------------------------------------------------------
    def _emit(self, kind: str, ts: int, frame: int, fields: dict[str, Any]) -> None:
        self._out.append(Event(ts, None, None, None, NET_PROVIDER, EVENT_IDS[kind], 0, 0, kind, fields))

    def _damage(self, frame: int, message: str) -> None:
        st = self.stats
        st.damage += 1
        if len(st.damage_examples) < MAX_DAMAGE_KEPT:
            st.damage_examples.append(f"frame {frame}: {message}")
        self._emit("net.damage", self._ts, frame, {"frame": frame, "message": message})

    def damage(self, frame: int, ts: int, message: str) -> list[Event]:
        """Damage the frame source found (before decoding): counted and emitted like the rest."""
        self._ts = ts
        self._damage(frame, message)
        return self._take()

    def _take(self) -> list[Event]:
        out = self._out
        if not out:
            return out
        self._out = []
        return out

    def _epm_lookup(self, server: str, transport: str, key: Any):
        return self._epm.get((server, transport, key))

    def _epm_learn(self, server: str, entry: MapEntry) -> None:
        if len(self._epm) >= MAX_EPM_ENTRIES:
            self._epm.pop(next(iter(self._epm)))
        if entry.protocol == "TCP" and entry.port:
            self._epm[(server, "TCP", entry.port)] = (entry.uuid, entry.major, entry.minor)
        elif entry.protocol == "NP" and entry.pipe:
            self._epm[(server, "NP", _pipe_name(entry.pipe))] = (entry.uuid, entry.major, entry.minor)

    def _app(self, conn: Connection, side: int, data: bytes):
        st = self.stats
        if looks_like_pdu(data):
            st.rpc_connections += 1
            return _TcpRpc(conn, self._emit, self._damage, self._epm_lookup, self._epm_learn)
        if looks_like_smb(data):
            st.smb_connections += 1
            return SmbConnection(conn.id, conn.addresses, conn.ports, self._emit, self._damage, self._epm_lookup,
                                 self._epm_learn)
        return None

    # -- decoding ----------------------------------------------------------------------------------
    def frame(self, number: int, ts: int, linktype: int, data: bytes) -> list[Event]:
        """Decode one frame; the events it completed (often none)."""
        st = self.stats
        st.frames += 1
        self._ts = ts
        if linktype not in SUPPORTED_LINKTYPES:
            st.unsupported_linktypes.add(linktype)
            return self._take()
        try:
            seg = segment_of(linktype, data)
        except NotTcp as why:
            if why.args[0] is None:
                st.not_tcp += 1
            else:
                st.undecodable += 1
            return self._take()
        st.tcp_segments += 1
        self._segment(seg.src, seg.sport, seg.dst, seg.dport, seg.seq, seg.flags, seg.payload, number, ts)
        return self._take()

    def finish(self) -> list[Event]:
        """End of the frames: what the streams still hold is decoded; the last events."""
        tcp = self._tcp
        tcp.finish()
        st = self.stats
        st.gaps, st.retransmitted, st.evicted = tcp.gaps, tcp.retransmitted, tcp.evicted
        st.connections = tcp.count
        return self._take()
