"""Network traffic -> ``net.*`` events: remote RPC calls as seen on the wire.

One decoder, two containers.  :mod:`.decoder` (:class:`FrameDecoder`) takes numbered,
timestamped frames with their link type and does the rest: :mod:`.link` (Ethernet/SLL/raw/
loopback/802.11, IPv4/IPv6, TCP through dpkt), :mod:`.tcp` (stream reassembly), :mod:`.smb`
(SMB1/SMB2 named pipes), :mod:`.dcerpc` (connection-oriented DCE/RPC), :mod:`.epm`
(endpoint-mapper answers), all declared with :mod:`.layout` (named field tables).  The frames
come from a capture file (:mod:`.pcap`, read by :class:`NetReader`) or from the packet events
of an ETW trace (netsh trace, pktmon: :mod:`.etw`, :class:`EtlPacketReader` and the pipeline's
:class:`~.etw.PacketTap`).  :mod:`rpctrace.correlate.remote` turns the events into calls and
joins them with a server trace.
"""

from rpctrace.sources.net.decoder import NET_PROVIDER, FrameDecoder, NetStats
from rpctrace.sources.net.etw import EtlPacketReader, PacketTap
from rpctrace.sources.net.reader import NetReader

__all__ = ["NET_PROVIDER", "NetReader", "NetStats", "FrameDecoder", "EtlPacketReader", "PacketTap"]
