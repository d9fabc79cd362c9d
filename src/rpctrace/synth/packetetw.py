"""Packets as ETW events: what ``netsh trace capture=yes`` and ``pktmon`` write into an .etl.

Why: Windows' own packet captures are .etl files holding the frames as events, often in the
same session as Microsoft-Windows-RPC, and no public such file holds remote RPC traffic.  The
layouts come from docs/packet-etl.md (the providers' manifest and Microsoft's NetMon parser for
PktMon), never from rpctrace's reader; tests read the written events back with dissect.etl.

* Microsoft-Windows-NDIS-PacketCapture (ndiscap) 1001 "Packet Fragment": MiniportIfIndex,
  LowerIfIndex, FragmentSize (u32 each), Fragment (FragmentSize bytes), GftFlowEntryId and
  GftOffloadInformation (u64 each, as current builds log them); keyword PacketStart|PacketEnd for
  a whole packet (a packet split over several events, as before Windows 8.1: PacketStart on the
  first, PacketEnd on the last), Ethernet802.3, and SendPath or ReceivePath.  1014 "attached to
  miniport interface ... with media type" (u32 each) is written at the start.
* Microsoft-Windows-PktMon 160: PktGroupId u64, PktNumber, AppearanceCount, DirTag, PacketType,
  ComponentId, EdgeId, FilterId (u16 each), DropReason, DropLocation (u32 each),
  OriginalPayloadSize, LoggedPayloadSize (u16 each), Payload; 20 (component: Id, Type u16, Name,
  Description UTF-16 strings) at the start.
"""

from __future__ import annotations

import struct

from rpctrace.synth.etlfile import EtlWriter, event_record
from rpctrace.synth.payloads import guid_le

__all__ = ["NDIS_PROVIDER", "PKTMON_PROVIDER", "NdisPackets", "PktmonPackets", "KW_PACKET_START", "KW_PACKET_END",
           "KW_SEND", "KW_RECEIVE", "KW_ETHERNET"]

NDIS_PROVIDER = "2ed6006e-4729-4609-b423-3ee7bcd678ef"  # Microsoft-Windows-NDIS-PacketCapture
PKTMON_PROVIDER = "4d4f80d9-c8bd-4d73-bb5b-19c90402c5ac"  # Microsoft-Windows-PktMon

KW_ETHERNET = 0x1
KW_PACKET_START = 0x40000000
KW_PACKET_END = 0x80000000
KW_SEND = 0x100000000
KW_RECEIVE = 0x200000000
LEVEL_INFORMATIONAL, LEVEL_VERBOSE = 4, 5
NDIS_MEDIUM_802_3 = 0

#: 1001 up to the fragment: MiniportIfIndex, LowerIfIndex, FragmentSize
NDIS_FRAGMENT_HEAD = struct.Struct("<III")
#: 1001 after the fragment: GftFlowEntryId, GftOffloadInformation
NDIS_FRAGMENT_TAIL = struct.Struct("<QQ")
#: 1014: MiniportIfIndex, LowerIfIndex, MediaType, ReferenceContext
NDIS_ATTACH = struct.Struct("<IIII")
#: 160/170 up to the payload (34 bytes): PktGroupId, PktNumber, AppearanceCount, DirTag, PacketType,
#: ComponentId, EdgeId, FilterId, DropReason, DropLocation, OriginalPayloadSize, LoggedPayloadSize
PKTMON_HEAD = struct.Struct("<QHHHHHHHIIHH")
assert PKTMON_HEAD.size == 34
PKTMON_ETHERNET = 1
PKTMON_RX, PKTMON_TX = 3, 4  # PKTMON_DIRECTION_TAG
PKTMON_COMPONENT_MINIPORT, PKTMON_COMPONENT_FILTER = 2, 3

#: the kernel context packet events are logged in (the System process; GUESS, rpctrace reads none of it)
SYSTEM_PID, SYSTEM_TID = 4, 8
_NULL_GUID = bytes(16)


def _ustr(text: str) -> bytes:
    return (text + "\0").encode("utf-16-le")


class _Packets:
    """Common part: one provider's events into an :class:`EtlWriter`."""

    provider = ""

    def __init__(self, writer: EtlWriter, cpus: int):
        self.w = writer
        self.types = writer.types
        self.cpus = max(1, cpus)
        self.le = guid_le(self.provider)
        self.events = 0

    def _add(self, cpu: int, ts: int, event_id: int, level: int, keyword: int, payload: bytes) -> None:
        rec = event_record(self.types, self.le, event_id, 0, 0, level, 0, 0, keyword, SYSTEM_TID, SYSTEM_PID, ts,
                           _NULL_GUID, payload)
        self.w.add(cpu, ts, rec)
        self.events += 1


class NdisPackets(_Packets):
    """netsh trace capture=yes: NDIS-PacketCapture events on one Ethernet interface.

    ``fragment``: frames longer than this many bytes are logged in several events (as Windows
    before 8.1 did); None logs every frame in one event (Windows 8.1 and later).
    """

    provider = NDIS_PROVIDER

    def __init__(self, writer: EtlWriter, cpus: int, if_index: int = 12, fragment: int | None = None):
        super().__init__(writer, cpus)
        if fragment is not None and fragment < 1:
            raise ValueError("fragment must be at least 1 byte")
        self.if_index = if_index
        self.fragment = fragment

    def attach(self, ts: int) -> None:
        """The capture driver attached to the interface (event 1014: media type 802.3)."""
        self._add(0, ts, 1014, LEVEL_VERBOSE, 0, NDIS_ATTACH.pack(self.if_index, self.if_index,
                                                                  NDIS_MEDIUM_802_3, 1))

    def frame(self, ts: int, data: bytes, send: bool) -> None:
        """One Ethernet frame at QPC ``ts``: one event, or several with the fragment bits."""
        cpu = 1 % self.cpus if send else 0
        direction = (KW_SEND if send else KW_RECEIVE) | KW_ETHERNET
        size = self.fragment or len(data) or 1
        parts = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
        for n, part in enumerate(parts):
            kw = direction | (KW_PACKET_START if n == 0 else 0) | (KW_PACKET_END if n == len(parts) - 1 else 0)
            payload = NDIS_FRAGMENT_HEAD.pack(self.if_index, self.if_index, len(part)) + part \
                + NDIS_FRAGMENT_TAIL.pack(0, 0)
            self._add(cpu, ts, 1001, LEVEL_INFORMATIONAL, kw, payload)


class PktmonPackets(_Packets):
    """pktmon start --capture: PktMon 160 events, each packet logged at ``appearances`` components
    (the network adapter first for received packets, last for sent ones), as pktmon does."""

    provider = PKTMON_PROVIDER

    def __init__(self, writer: EtlWriter, cpus: int, appearances: int = 2):
        super().__init__(writer, cpus)
        if appearances < 1:
            raise ValueError("appearances must be at least 1")
        self.appearances = appearances
        self.group = 0

    def components(self, ts: int) -> None:
        """The components packets are logged at (event 20)."""
        names = [("Ethernet", "Microsoft Hyper-V Network Adapter"),
                 ("WFP Native MAC Layer LightWeight Filter", "Filter")]
        for cid in range(1, self.appearances + 1):
            name, desc = names[min(cid - 1, len(names) - 1)]
            kind = PKTMON_COMPONENT_MINIPORT if cid == 1 else PKTMON_COMPONENT_FILTER
            self._add(0, ts, 20, LEVEL_INFORMATIONAL, 0x2, struct.pack("<HH", cid, kind) + _ustr(name) + _ustr(desc))

    def frame(self, ts: int, data: bytes, send: bool) -> None:
        """One Ethernet frame at QPC ``ts``, once per component it passes (one tick apart)."""
        self.group += 1
        cpu = 1 % self.cpus if send else 0
        order = range(self.appearances, 0, -1) if send else range(1, self.appearances + 1)
        for n, component in enumerate(order):
            head = PKTMON_HEAD.pack(self.group, 1, n + 1, PKTMON_TX if send else PKTMON_RX, PKTMON_ETHERNET,
                                    component, 1, 0, 0, 0, len(data), len(data))
            self._add(cpu, ts + n, 160, LEVEL_INFORMATIONAL, 0x10, head + data)
