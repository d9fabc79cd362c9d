"""Packets inside ETW traces (netsh trace, pktmon) -> frames for the one decoder -> ``net.*`` events.

Windows' own packet captures are ``.etl`` files: ``netsh trace capture=yes`` records
Microsoft-Windows-NDIS-PacketCapture events (ndiscap.sys), ``pktmon start --capture`` records
Microsoft-Windows-PktMon events, and either can share a session (and a file) with
Microsoft-Windows-RPC.  The ETL reader decodes the events' payloads (templates in
:mod:`rpctrace.sources.etl.manifest`; layouts and sources in docs/packet-etl.md); this module
is the second container of :class:`~.decoder.FrameDecoder` (the first is pcap/pcapng):

* NDIS 1001 (and 1003, VMSwitch) events carry a fragment of a frame.  Keyword bits say where a
  packet starts and ends (PacketStart 0x40000000, PacketEnd 0x80000000; since Windows 8.1 every
  packet is one event with both), so fragments are joined per interface layer and processor
  until the end comes; a packet restarted before its end, an end or middle without its start, a
  packet larger than :data:`MAX_PACKET` or left open when the trace ends is damage (counted,
  one ``net.damage`` event, the fragments dropped).  The link type comes from the keyword
  (Native802.11 0x10000: IEEE 802.11; WirelessWAN 0x200: raw IP), else from the medium the
  capture driver reported when it attached to that interface layer (event 1014, NDIS_MEDIUM),
  else Ethernet, as etl2pcapng decides.
* PktMon 160 events carry one packet each (PacketType 1 Ethernet, 2 WiFi, 3 IP); 170 are drops
  (packets that went no further: not decoded as traffic, counted).  PktMon logs a packet at
  every component it passes: the copies are the same TCP segment, which the stream reassembly
  drops as retransmissions.
* LSOv2 send packets logged above the adapter carry an IPv4 total length of 0 (etl2pcapng notes
  this); such a frame gets its captured length so that the segment decodes.

Frames are numbered from 1 in trace order (``frame`` in the events); a frame's time is the
event's (the PacketEnd event's for a packet in several events), in the trace's own clock.

:class:`PacketTap` takes the events of a trace as they stream by (the pipeline feeds it every
batch) and keeps only the ``net.*`` events; :class:`EtlPacketReader` reads one ``.etl`` file
the same way on its own, with :class:`~.reader.NetReader`'s interface.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Callable, Iterable, Iterator

from rpctrace.knowledge import providers as P
from rpctrace.model import Event, ticks_to_iso
from rpctrace.sources.net.decoder import FrameDecoder, NetStats
from rpctrace.sources.net.link import ETHERNET, IEEE802_11, RAW
from rpctrace.sources.net.pcap import MAX_FRAME
from rpctrace.sources.net.tcp import Limits

__all__ = ["EtwFrames", "EtwPacketStats", "PacketTap", "EtlPacketReader", "PACKET_KINDS", "PACKET_PROVIDERS",
           "MAX_PACKET"]

# Microsoft-Windows-NDIS-PacketCapture keywords (its manifest)
KW_WIRELESS_WAN = 0x200
KW_TUNNEL = 0x8000
KW_NATIVE_802_11 = 0x10000
KW_VMSWITCH = 0x1000000
KW_PACKET_TRUNCATED = 0x2000000
KW_PACKET_START = 0x40000000
KW_PACKET_END = 0x80000000
KW_SEND = 0x100000000
KW_RECEIVE = 0x200000000

#: NDIS_MEDIUM (ntddndis.h) -> link type of the frames logged on such an interface
NDIS_MEDIUM_LINKTYPE = {0: ETHERNET, 9: RAW, 16: IEEE802_11, 19: RAW}  # 802_3, WirelessWan, Native802_11, IP
#: PKTMON_PACKET_TYPE (pktmonnpik.h) -> link type (3 is "IP" there, "MBB" in the NetMon parser: raw IP either way)
PKTMON_LINKTYPE = {1: ETHERNET, 2: IEEE802_11, 3: RAW}

#: largest packet joined from fragments (the pcap reader's largest frame)
MAX_PACKET = MAX_FRAME
#: packets being joined at once (interface layers x processors); the oldest is dropped beyond
MAX_PENDING = 256
#: interface layers whose medium is remembered
MAX_MEDIA = 4096

PACKET_PROVIDERS = frozenset({P.NDIS_PACKET_CAPTURE, P.PKTMON})
_FRAGMENTS = frozenset({"ndis.packet_fragment", "ndis.vmswitch_packet_fragment"})
_PKTMON = frozenset({"pktmon.packet", "pktmon.packet_drop"})
#: kinds of the packet providers' events (``raw``: one that did not decode)
PACKET_KINDS = _FRAGMENTS | _PKTMON | frozenset({"ndis.packet_metadata", "ndis.layer_attach", "ndis.layer_detach",
                                                  "pktmon.component"})
_GATE = PACKET_KINDS | {"raw"}
#: event ids that carry packets (a payload of theirs that does not decode loses a packet)
_PACKET_IDS = {P.NDIS_PACKET_CAPTURE: frozenset({1001, 1003}), P.PKTMON: frozenset({160, 170})}
_NAMES = {P.NDIS_PACKET_CAPTURE: "NDIS-PacketCapture", P.PKTMON: "PktMon"}
_KIND = itemgetter(8)


@dataclass
class EtwPacketStats:
    """What the packet events of a trace held."""

    provider_events: int = 0  # events of the two packet providers (packets, components, counters...)
    fragments: int = 0  # NDIS fragment events
    packets: int = 0  # frames handed to the decoder
    joined: int = 0  # of those, packets joined from several events
    pktmon_drops: int = 0  # PktMon 170: packets dropped by Windows (not traffic)
    not_decoded: int = 0  # packet events whose payload did not decode (or of an unknown version)
    unsupported_types: set[int] = field(default_factory=set)  # PktMon packet types rpctrace cannot follow

    def parts(self) -> list[str]:
        out = []
        if self.not_decoded:
            out.append(f"{self.not_decoded} packet events did not decode")
        if self.unsupported_types:
            out.append("PktMon packet types not followed: " + ", ".join(map(str, sorted(self.unsupported_types))))
        return out


def _lso_length(linktype: int, data: bytes) -> bytes:
    """An IPv4 total length of 0 (an LSOv2 send logged above the adapter) -> the captured length."""
    at = 0
    if linktype == ETHERNET:
        at = 14
        while at + 4 <= len(data) and data[at - 2:at] in (b"\x81\x00", b"\x88\xa8"):
            at += 4  # 802.1Q / 802.1ad tags
        if data[at - 2:at] != b"\x08\x00":
            return data
    elif linktype != RAW:
        return data
    if len(data) < at + 20 or data[at] >> 4 != 4 or data[at + 2:at + 4] != b"\x00\x00":
        return data
    total = min(len(data) - at, 0xFFFF)
    return data[:at + 2] + total.to_bytes(2, "big") + data[at + 4:]


class EtwFrames:
    """Packet events in trace order -> frames ``(number, ts, linktype, data)`` (module docstring).

    ``damage(number, ts, message)`` is called for what cannot become a frame; ``number`` is the
    number the next frame will have.
    """

    def __init__(self, damage: Callable[[int, int, str], None], stats: EtwPacketStats | None = None):
        self.stats = stats if stats is not None else EtwPacketStats()
        self.count = 0
        self._damage = damage
        self._pending: OrderedDict[tuple, tuple[list[bytes], int, int, int]] = OrderedDict()
        self._media: dict[tuple[int, int], int] = {}

    def event(self, ev: Event) -> tuple[int, int, int, bytes] | None:
        """The frame ``ev`` completes, or None."""
        kind = ev.kind
        st = self.stats
        st.provider_events += 1
        if kind in _FRAGMENTS:
            return self._fragment(ev)
        if kind in _PKTMON:
            return self._pktmon(ev)
        if kind == "ndis.layer_attach":
            f = ev.fields
            if len(self._media) < MAX_MEDIA:
                self._media[(f["miniport_if_index"], f["lower_if_index"])] = f["media_type"]
        elif kind == "raw" and ev.id in _PACKET_IDS.get(ev.provider, ()):
            st.not_decoded += 1
            why = ev.fields.get("error") or ev.fields.get("note") or "not decoded"
            self._damage(self.count + 1, ev.ts, f"{_NAMES[ev.provider]} event {ev.id} at {ticks_to_iso(ev.ts)} "
                                                f"(CPU {ev.cpu}): {why}")
        return None

    def _emit(self, ts: int, linktype: int, data: bytes) -> tuple[int, int, int, bytes]:
        self.count += 1
        self.stats.packets += 1
        return self.count, ts, linktype, _lso_length(linktype, data)

    def _linktype(self, keyword: int, layer: tuple[int, int]) -> int:
        if keyword & KW_NATIVE_802_11:
            return IEEE802_11
        if keyword & KW_WIRELESS_WAN:
            return RAW
        medium = self._media.get(layer)
        return NDIS_MEDIUM_LINKTYPE.get(medium, ETHERNET) if medium is not None else ETHERNET

    def _cut(self, key: tuple, why: str, ts: int) -> None:
        parts, size, _kw, _first = self._pending.pop(key)
        self._damage(self.count + 1, ts, f"NDIS packet on interface {key[0]}/{key[1]} (CPU {key[3]}) {why}: "
                                         f"{len(parts)} fragments, {size} bytes dropped")

    def _fragment(self, ev: Event) -> tuple[int, int, int, bytes] | None:
        f = ev.fields
        self.stats.fragments += 1
        kw = f.get("keyword", 0)
        layer = (f["miniport_if_index"], f["lower_if_index"])
        key = (*layer, f.get("source_port_id"), ev.cpu)  # GUESS: one packet's fragments come on one processor
        frag = f["fragment"]
        pending = self._pending
        if kw & KW_PACKET_START:
            if key in pending:
                self._cut(key, "restarted before its end", ev.ts)
            if kw & KW_PACKET_END:
                return self._emit(ev.ts, self._linktype(kw, layer), frag)
            if len(pending) >= MAX_PENDING:
                self._cut(next(iter(pending)), "left open too long", ev.ts)
            pending[key] = ([frag], len(frag), kw, ev.ts)
            return None
        got = pending.get(key)
        if got is None:
            where = "end" if kw & KW_PACKET_END else "middle"
            self._damage(self.count + 1, ev.ts, f"NDIS fragment at {ticks_to_iso(ev.ts)} on interface "
                                                f"{layer[0]}/{layer[1]} (CPU {ev.cpu}) is the {where} of a packet "
                                                f"whose start was not captured: {len(frag)} bytes dropped")
            return None
        parts, size, first_kw, first_ts = got
        size += len(frag)
        if size > MAX_PACKET:
            self._cut(key, f"grows past {MAX_PACKET} bytes", ev.ts)
            return None
        parts.append(frag)
        if not kw & KW_PACKET_END:
            pending[key] = (parts, size, first_kw, first_ts)
            return None
        del pending[key]
        self.stats.joined += 1
        return self._emit(ev.ts, self._linktype(first_kw | kw, layer), b"".join(parts))

    def _pktmon(self, ev: Event) -> tuple[int, int, int, bytes] | None:
        f = ev.fields
        if ev.kind == "pktmon.packet_drop":
            self.stats.pktmon_drops += 1
            return None
        linktype = PKTMON_LINKTYPE.get(f["packet_type"])
        if linktype is None:
            self.stats.unsupported_types.add(f["packet_type"])
            return None
        return self._emit(ev.ts, linktype, f["payload"])

    def finish(self, ts: int) -> None:
        """The trace ended: packets still open are damage."""
        for key in list(self._pending):
            self._cut(key, "never ended (the trace stops first)", ts)


class PacketTap:
    """The ``net.*`` events of the packets in a stream of ETL events (see the module docstring).

    ``feed(batch)`` for every batch of the trace, in order; ``finish()`` at the end returns every
    ``net.*`` event (kept: a trace's packets hold far fewer RPC messages than it holds events);
    ``found`` says whether the trace had packet events at all.
    """

    def __init__(self, path: str, limits: Limits = Limits()):
        self.path = path
        self.stats = NetStats()
        self.etw = EtwPacketStats()
        self.events: list[Event] = []
        self._decoder = FrameDecoder(limits, self.stats)
        self._frames = EtwFrames(self._damage, self.etw)
        self._last_ts = 0
        self._finished = False

    @property
    def found(self) -> bool:
        return self.etw.provider_events > 0

    def _damage(self, number: int, ts: int, message: str) -> None:
        self.events.extend(self._decoder.damage(number, ts, message))

    def feed(self, batch: list[Event]) -> None:
        """Take the packet events of one batch (batches without any cost one pass in C)."""
        if _GATE.isdisjoint(map(_KIND, batch)):
            return
        providers = PACKET_PROVIDERS
        to_frame = self._frames.event
        decode = self._decoder.frame
        out = self.events
        for ev in batch:
            if ev[4] in providers:
                frame = to_frame(ev)
                if frame is not None:
                    got = decode(*frame)
                    if got:
                        out.extend(got)
                self._last_ts = ev[0]

    def finish(self) -> list[Event]:
        """Every ``net.*`` event of the trace's packets, in trace order (again when called again)."""
        if not self._finished:
            self._finished = True
            self._frames.finish(self._last_ts)
            self.events.extend(self._decoder.finish())
        return self.events

    def summary(self) -> str | None:
        """One line about what was stepped over in the packets, or None."""
        parts = self.etw.parts()
        net = self.stats.summary(self.path)
        if net:
            parts.append(net[len(self.path) + 2:])
        return f"{self.path}: packets: " + "; ".join(parts) if parts else None

    def source_info(self) -> dict:
        """This trace's packets as an entry of ``Trace.sources``."""
        return {"path": self.path, "format": "etl packets", "frames": self.etw.packets,
                "provider_events": self.etw.provider_events, "summary": self.summary()}


class EtlPacketReader:
    """The ``net.*`` events of the packets in one ``.etl`` file, with :class:`~.reader.NetReader`'s
    interface (``events()``, ``stats``, ``close()``).  Damage to the ETL container ends reading as
    in :class:`~rpctrace.sources.etl.reader.EtlReader` (raised after the events read before it,
    unless ``keep_going``)."""

    def __init__(self, path: str | os.PathLike, keep_going: bool = False, limits: Limits = Limits()):
        from rpctrace.sources.etl.reader import EtlReader

        self.path = os.fspath(path)
        self.keep_going = keep_going
        self._reader = EtlReader(self.path, keep_going=keep_going)
        self._reader.want_stacks = False
        self.tap = PacketTap(self.path, limits)
        self.stats = self.tap.stats
        self.etw = self.tap.etw

    def events(self) -> Iterator[Event]:
        from rpctrace.errors import InputError

        tap = self.tap
        failure: InputError | None = None
        try:
            for batch in self._reader.batches(include_header=False):
                tap.feed(batch)
                if tap.events:
                    yield from tap.events
                    tap.events = []
        except InputError as exc:
            failure = exc
        yield from tap.finish()
        if failure is not None:
            self.stats.stopped = failure.one_line()
            if not self.keep_going:
                raise failure

    def summary(self) -> str | None:
        return self.tap.summary()

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> "EtlPacketReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def packet_events(events: Iterable[Event], path: str = "trace") -> tuple[list[Event], PacketTap]:
    """The ``net.*`` events of the packets among ``events`` (a whole, loaded trace) and the tap."""
    tap = PacketTap(path)
    batch: list[Event] = []
    for ev in events:
        batch.append(ev)
        if len(batch) >= 4096:
            tap.feed(batch)
            batch = []
    tap.feed(batch)
    return tap.finish(), tap
