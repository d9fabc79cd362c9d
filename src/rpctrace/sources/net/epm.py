"""The endpoint mapper's ``ept_map`` answer: which port (or pipe) an interface listens on.

A client that calls an interface on a dynamic TCP port first asks the endpoint mapper (port 135,
interface e1af8308-5d1f-11c9-91a4-08002b14a0fa, opnum 3 ``ept_map``); the answer holds protocol
towers ([MS-RPCE] 2.2.1.2, C706 appendix L): floor 1 the interface UUID and version, floor 2
the transfer syntax, floor 3 the RPC protocol, floor 4 the port (TCP, big-endian u16) or pipe
name, floor 5 the host address.  rpctrace keeps (server address, port) -> interface, so a
connection captured after its bind (no bind, so no context -> interface table) still names its
interface.

The answer's NDR (32-bit transfer syntax) layout::

    entry_handle  context handle: 20 bytes
    num_towers    u32
    towers        conformant varying array of pointers: max_count u32, offset u32,
                  actual_count u32, actual_count referent ids (u32), then for each
                  non-null one a twr_t: tower_length u32, max_count u32, octets, align 4
    status        u32

Every count is bounded by the bytes present; anything that does not fit raises ValueError.
"""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

from rpctrace.sources.layout import Layout

__all__ = ["MapEntry", "parse_map_response", "parse_tower"]

_U32 = {True: Layout("u32", "<", (("value", "I"),)), False: Layout("u32", ">", (("value", "I"),))}
FLOOR_COUNT = Layout("tower", "<", (("floor_count", "H"),))
FLOOR_LENGTH = Layout("floor_side", "<", (("length", "H"),))
FLOOR1_LHS = Layout("floor1_lhs", "<", (("protocol", "B"), ("uuid", "16s"), ("version", "H")))
FLOOR1_RHS = Layout("floor1_rhs", "<", (("version_minor", "H"),))
TCP_PORT = Layout("tcp_port", ">", (("port", "H"),))

PROTO_UUID = 0x0D
PROTO_TCP = 0x07
PROTO_NP = 0x0F
PROTO_NETBIOS = 0x11
PROTO_IP = 0x09
PROTO_NCALRPC = 0x10
MAX_FLOORS = 16
MAX_TOWERS = 64
CONTEXT_HANDLE_SIZE = 20


class MapEntry(NamedTuple):
    uuid: str
    major: int
    minor: int
    protocol: str | None  # "TCP", "NP", "LRPC" or None
    port: int | None
    pipe: str | None
    address: str | None


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1")


def parse_tower(octets: bytes) -> MapEntry | None:
    """The interface and endpoint of one tower octet string (None: no UUID floor)."""
    import uuid as _uuid

    if len(octets) < 2:
        raise ValueError("tower shorter than its floor count")
    (n,) = FLOOR_COUNT.unpack_from(octets, 0)
    if n > MAX_FLOORS:
        raise ValueError(f"tower claims {n} floors")
    at = 2
    iface = None
    major = minor = 0
    proto = port = pipe = addr = None
    for i in range(n):
        if at + 2 > len(octets):
            raise ValueError(f"floor {i + 1} runs past the tower")
        (lhs_len,) = FLOOR_LENGTH.unpack_from(octets, at)
        lhs = octets[at + 2:at + 2 + lhs_len]
        at += 2 + lhs_len
        if at + 2 > len(octets) or len(lhs) != lhs_len or not lhs:
            raise ValueError(f"floor {i + 1} runs past the tower")
        (rhs_len,) = FLOOR_LENGTH.unpack_from(octets, at)
        rhs = octets[at + 2:at + 2 + rhs_len]
        at += 2 + rhs_len
        if len(rhs) != rhs_len:
            raise ValueError(f"floor {i + 1} runs past the tower")
        pid = lhs[0]
        if i == 0 and pid == PROTO_UUID and lhs_len >= FLOOR1_LHS.size:
            _p, raw, major = FLOOR1_LHS.unpack_from(lhs, 0)
            iface = str(_uuid.UUID(bytes_le=raw))
            minor = FLOOR1_RHS.unpack_from(rhs, 0)[0] if rhs_len >= 2 else 0
        elif pid == PROTO_TCP and rhs_len >= 2:
            proto, port = "TCP", TCP_PORT.unpack_from(rhs, 0)[0]
        elif pid == PROTO_NP:
            proto, pipe = "NP", _text(rhs)
        elif pid == PROTO_NCALRPC:
            proto, pipe = "LRPC", _text(rhs)
        elif pid == PROTO_IP and rhs_len == 4:
            addr = socket.inet_ntop(socket.AF_INET, rhs)
        elif pid == PROTO_NETBIOS:
            addr = _text(rhs)
    if iface is None:
        return None
    return MapEntry(iface, major, minor, proto, port, pipe, addr)


def parse_map_response(stub: bytes, little: bool = True) -> list[MapEntry]:
    """The towers of an ``ept_map`` response stub (NDR, 32-bit); ValueError when malformed."""
    try:
        return _parse_map_response(stub, little)
    except struct.error as exc:
        raise ValueError(str(exc)) from None


def _parse_map_response(stub: bytes, little: bool) -> list[MapEntry]:
    u32 = _U32[little].unpack_from
    size = len(stub)

    def word(at: int) -> int:
        if at + 4 > size:
            raise ValueError(f"answer ends at byte {size}, inside a field at {at}")
        return u32(stub, at)[0]

    at = CONTEXT_HANDLE_SIZE
    num = word(at)
    max_count, _offset, actual = word(at + 4), word(at + 8), word(at + 12)
    at += 16
    if actual > max_count or actual > MAX_TOWERS or num > max_count:
        raise ValueError(f"tower array claims {actual} of {max_count} towers")
    refs = [word(at + 4 * i) for i in range(actual)]
    at += 4 * actual
    entries = []
    for ref in refs:
        if not ref:
            continue
        length = word(at)
        conformance = word(at + 4)
        at += 8
        if conformance != length or at + length > size:
            raise ValueError(f"tower of {length} bytes does not fit in the answer")
        entry = parse_tower(stub[at:at + length])
        at += length
        at += (-at) & 3
        if entry is not None:
            entries.append(entry)
    return entries
