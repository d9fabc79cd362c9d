"""Network captures (pcap, pcapng) -> ``net.*`` events: remote RPC calls as seen on the wire.

Modules, bottom up: :mod:`.layout` (named field tables), :mod:`.pcap` (the container, dpkt's
structures), :mod:`.link` (Ethernet/SLL/raw/loopback, IPv4/IPv6, TCP through dpkt), :mod:`.tcp`
(stream reassembly), :mod:`.smb` (SMB1/SMB2 named pipes), :mod:`.dcerpc` (connection-oriented
DCE/RPC), :mod:`.epm` (endpoint-mapper answers), :mod:`.reader` (:class:`NetReader`).
:mod:`rpctrace.correlate.remote` turns the events into calls and joins them with a server trace.
"""

from rpctrace.sources.net.reader import NET_PROVIDER, NetReader, NetStats

__all__ = ["NET_PROVIDER", "NetReader", "NetStats"]
