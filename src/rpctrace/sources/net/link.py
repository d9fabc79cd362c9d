"""Link, network and transport layers through dpkt: a frame -> the TCP segment it carries.

Link types ([pcap-linktype]): Ethernet (1, with 802.1Q/802.1ad VLAN tags, which dpkt's Ethernet
strips), Linux cooked capture v1 (113) and v2 (276), raw IP (101, and 12/14 as some systems
number it, 228 IPv4, 229 IPv6), BSD loopback (0, 108), IEEE 802.11 (105: data frames, their
LLC/SNAP header through dpkt; what Windows' native 802.11 packet capture logs).  IPv4 and IPv6 (dpkt follows IPv6
extension headers).  Fragmented IP is not reassembled (RPC over TCP rarely fragments at the IP
layer): such frames are counted and skipped.
"""

from __future__ import annotations

import socket
from typing import NamedTuple

import dpkt
import dpkt.ethernet
import dpkt.ieee80211
import dpkt.ip
import dpkt.ip6
import dpkt.llc
import dpkt.loopback
import dpkt.sll
import dpkt.sll2
import dpkt.tcp

__all__ = ["Segment", "NotTcp", "segment_of", "SUPPORTED_LINKTYPES"]

ETHERNET, SLL, SLL2, RAW, RAW_BSD12, RAW_BSD14, IPV4, IPV6, NULL, LOOP = 1, 113, 276, 101, 12, 14, 228, 229, 0, 108
IEEE802_11 = 105
SUPPORTED_LINKTYPES = frozenset({ETHERNET, SLL, SLL2, RAW, RAW_BSD12, RAW_BSD14, IPV4, IPV6, NULL, LOOP, IEEE802_11})
_WIFI_DATA = 2  # 802.11 frame type "data"


class Segment(NamedTuple):
    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    flags: int
    payload: bytes


class NotTcp(Exception):
    """The frame carries no TCP segment that can be followed; ``args[0]`` says why (None: a
    frame of another protocol, nothing to report)."""


_addr_cache: dict[bytes, str] = {}


def _addr(raw: bytes) -> str:
    text = _addr_cache.get(raw)
    if text is None:
        text = socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)
        if len(_addr_cache) > 65536:
            _addr_cache.clear()
        _addr_cache[raw] = text
    return text


def _network(linktype: int, data: bytes):
    if linktype == ETHERNET:
        return dpkt.ethernet.Ethernet(data).data
    if linktype == SLL:
        return dpkt.sll.SLL(data).data
    if linktype == SLL2:
        return dpkt.sll2.SLL2(data).data
    if linktype in (RAW, RAW_BSD12, RAW_BSD14, IPV4, IPV6):
        if not data:
            raise NotTcp("empty frame")
        version = data[0] >> 4
        if version == 4:
            return dpkt.ip.IP(data)
        if version == 6:
            return dpkt.ip6.IP6(data)
        raise NotTcp(f"raw frame of IP version {version}")
    if linktype in (NULL, LOOP):
        return dpkt.loopback.Loopback(data).data
    if linktype == IEEE802_11:
        wifi = dpkt.ieee80211.IEEE80211(data)
        if wifi.type != _WIFI_DATA or not isinstance(wifi.data, bytes):
            raise NotTcp(None)  # management and control frames carry no IP
        return dpkt.llc.LLC(wifi.data).data
    raise NotTcp(f"link type {linktype} is not supported")


def segment_of(linktype: int, data: bytes) -> Segment:
    """The TCP segment of a frame, or :class:`NotTcp`."""
    try:
        ip = _network(linktype, data)
    except (dpkt.UnpackError, IndexError, ValueError) as exc:  # dpkt.NeedData is an UnpackError
        raise NotTcp(f"link/IP header not decodable ({type(exc).__name__}: {exc})") from None
    if isinstance(ip, dpkt.ip.IP):
        if ip.p != 6:
            raise NotTcp(None)
        if ip.mf or ip.offset:  # more fragments, or a fragment offset
            raise NotTcp("fragmented IPv4 packet (not reassembled)")
    elif isinstance(ip, dpkt.ip6.IP6):
        if ip.p != 6:
            raise NotTcp(None)
    else:
        raise NotTcp(None)
    tcp = ip.data
    if not isinstance(tcp, dpkt.tcp.TCP):
        raise NotTcp("TCP header not decodable")
    return Segment(_addr(ip.src), tcp.sport, _addr(ip.dst), tcp.dport, tcp.seq, tcp.flags, bytes(tcp.data))
