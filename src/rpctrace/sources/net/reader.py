"""The network capture reader: pcap/pcapng -> normalized ``net.*`` events (docs/events.md).

Pipeline per frame: container (:mod:`.pcap`) -> link/IP/TCP (:mod:`.link`, dpkt) -> stream
reassembly (:mod:`.tcp`) -> per connection either DCE/RPC directly (ncacn_ip_tcp) or SMB1/SMB2
named pipes (:mod:`.smb`, ncacn_np) -> DCE/RPC associations (:mod:`.dcerpc`), which emit the
events.  Endpoint-mapper answers (:mod:`.epm`) are kept per capture, so a connection captured
after its bind still names its interface when an ``ept_map`` answer for its port was seen.

Damage has two levels.  Damage to the container (a truncated record, a hostile length) ends
reading: everything decoded before it is given out, then :class:`~rpctrace.errors.InputError`
names the file, the frame and the byte offset (with ``keep_going`` the reader stops there
without raising and counts it).  Damage inside the traffic (a frame that is not decodable, a
broken TCP stream, a DCE/RPC header that makes no sense, an SMB message that runs past its end)
is normal in real captures: it is counted, the first few are kept with their frame numbers in
:attr:`NetReader.stats`, one ``net.damage`` event is emitted for each, and decoding continues
at the next message boundary.

Events are emitted in capture order; each one's ``ts`` is the time of the frame that completed
it (a request's: the frame where its first fragment began).
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from typing import Any, Iterator, overload

from rpctrace.errors import InputError
from rpctrace.knowledge.providers import NET
from rpctrace.model import Event
from rpctrace.sources.net.dcerpc import Association, Endpoints, PduStream, looks_like_pdu
from rpctrace.sources.net.epm import MapEntry
from rpctrace.sources.net.link import SUPPORTED_LINKTYPES, NotTcp, segment_of
from rpctrace.sources.net.pcap import iter_frames
from rpctrace.sources.net.smb import SmbConnection, looks_like_smb
from rpctrace.sources.net.tcp import Connection, Limits, TcpReassembler

__all__ = ["NetReader", "NetStats", "NET_PROVIDER", "EVENT_IDS"]

#: the provider GUID of events decoded from network captures (not a Windows provider)
NET_PROVIDER = NET
EVENT_IDS = {"net.rpc_bind": 1, "net.rpc_bind_ack": 2, "net.rpc_bind_nak": 3, "net.rpc_request": 4,
             "net.rpc_response": 5, "net.rpc_fault": 6, "net.epm_map": 7, "net.pipe_open": 8, "net.damage": 9}
#: damage records kept with their text (the rest are only counted)
MAX_DAMAGE_KEPT = 20
#: endpoint-mapper answers remembered per capture
MAX_EPM_ENTRIES = 65536


@dataclass
class NetStats:
    """What reading a capture met: frame counts and the damage it stepped over."""

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
    path: str | None = None  # the capture counted (NetReader sets it)

    @overload
    def summary(self) -> dict[str, Any]: ...
    @overload
    def summary(self, path: str) -> str | None: ...
    def summary(self, path: str | None = None) -> dict[str, Any] | str | None:
        """With ``path``: one line about what was stepped over, or None when the capture was
        clean.  Without: the counts as a trace's source info holds them, like every reader's
        stats (``format``, ``frames``, and that line for :attr:`path` as ``summary``), which is
        what :func:`rpctrace.trace.load` records of each file it reads."""
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


class NetReader:
    """Reads one capture file; ``events()`` yields its ``net.*`` events (see module docstring)."""

    def __init__(self, path: str | os.PathLike, keep_going: bool = False, limits: Limits = Limits()):
        self.path = os.fspath(path)
        self.keep_going = keep_going
        self.limits = limits
        self.stats = NetStats(path=self.path)
        try:
            self._fh = open(self.path, "rb")
        except OSError as exc:
            raise InputError(self.path, f"cannot open: {exc.strerror or exc}") from None
        try:
            size = os.fstat(self._fh.fileno()).st_size
            self._data: Any = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        except (OSError, ValueError):
            self._data = self._fh.read()
        self._out: list[Event] = []
        self._epm: dict[tuple[str, str, Any], tuple[str, int, int]] = {}

    # -- plumbing ------------------------------------------------------------------------------
    def close(self) -> None:
        data = self._data
        self._data = b""
        if isinstance(data, mmap.mmap):
            data.close()
        self._fh.close()

    def __enter__(self) -> "NetReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _emit(self, kind: str, ts: int, frame: int, fields: dict[str, Any]) -> None:
        self._out.append(Event(ts, None, None, None, NET_PROVIDER, EVENT_IDS[kind], 0, 0, kind, fields))

    def _damage(self, frame: int, message: str) -> None:
        st = self.stats
        st.damage += 1
        text = f"frame {frame}: {message}"
        if len(st.damage_examples) < MAX_DAMAGE_KEPT:
            st.damage_examples.append(text)
        self._emit("net.damage", self._ts, frame, {"frame": frame, "message": message})

    def _epm_lookup(self, server: str, transport: str, key: Any):
        return self._epm.get((server, transport, key))

    def _epm_learn(self, server: str, entry: MapEntry) -> None:
        if len(self._epm) >= MAX_EPM_ENTRIES:
            self._epm.pop(next(iter(self._epm)))
        if entry.protocol == "TCP" and entry.port:
            self._epm[(server, "TCP", entry.port)] = (entry.uuid, entry.major, entry.minor)
        elif entry.protocol == "NP" and entry.pipe:
            from rpctrace.sources.net.smb import _pipe_name

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

    # -- reading ---------------------------------------------------------------------------------
    def events(self) -> Iterator[Event]:
        """Every event of the capture, in capture order."""
        st = self.stats
        out = self._out
        tcp = TcpReassembler(self._app, self.limits, self._damage)
        self._ts = 0
        failure: InputError | None = None
        segment = tcp.segment
        try:
            for frame in iter_frames(self.path, self._data):
                st.frames += 1
                self._ts = frame.ts
                lt = frame.linktype
                if lt not in SUPPORTED_LINKTYPES:
                    st.unsupported_linktypes.add(lt)
                    continue
                try:
                    seg = segment_of(lt, frame.data)
                except NotTcp as why:
                    if why.args[0] is None:
                        st.not_tcp += 1
                    else:
                        st.undecodable += 1
                    continue
                st.tcp_segments += 1
                segment(seg.src, seg.sport, seg.dst, seg.dport, seg.seq, seg.flags, seg.payload, frame.number, frame.ts)
                if out:
                    yield from out
                    out.clear()
        except InputError as exc:
            failure = exc
        tcp.finish()
        for name in ("gaps", "retransmitted", "evicted"):
            setattr(st, name, getattr(tcp, name))
        st.connections = tcp.count
        if out:
            yield from out
            out.clear()
        if failure is not None:
            st.stopped = failure.one_line()
            if not self.keep_going:
                raise failure
