"""Payload decoders for manifest-based providers rpctrace reads: Microsoft-Windows-RPC,
Microsoft-Windows-Kernel-Registry, and the packet providers Microsoft-Windows-NDIS-PacketCapture
and Microsoft-Windows-PktMon.

Templates are declared once here as (field name, type) lists taken from the providers' manifests
(../shared/samples/rpc-databases/Microsoft-Windows-RPC.xml for RPC; the Kernel-Registry fields are
in ../shared/reference/etw-and-alpc-facts.md §3b).  A small interpreter walks them; it is faster
and safer than a general TDH implementation, and every read is bounded by the payload's end.

A decoder returns ``(kind, fields)``.  Events of a known provider with an id or version we have no
template for raise :class:`UnknownEvent` so the reader keeps them as ``raw`` and counts them.
"""

from __future__ import annotations

import struct
from typing import Any

from rpctrace.knowledge import providers as P
from rpctrace.sources.etl.kernel import PayloadError, utf16z


class UnknownEvent(ValueError):
    """An event of a known provider whose id/version has no template here."""


# field types
USTR, GUID, U8, U16, U32, U64, PTR, SYSTEMTIME, BINARY, U64_ARRAY = range(10)

_SIZES = {U8: 1, U16: 2, U32: 4, U64: 8, GUID: 16, SYSTEMTIME: 16}
_FMT = {U8: "<B", U16: "<H", U32: "<I", U64: "<Q"}
_STRUCTS = {t: struct.Struct(f) for t, f in _FMT.items()}

_RPC_CALL_START = [
    ("interface_uuid", GUID),
    ("procnum", U32),
    ("protocol", U32),
    ("network_address", USTR),
    ("endpoint", USTR),
    ("options", USTR),
    ("auth_level", U32),
    ("auth_service", U32),
    ("impersonation_level", U32),
]
_STATUS = [("status", U32)]

#: (provider, event id) -> (kind, version, template).  Count/length fields name an earlier field.
TEMPLATES: dict[tuple[str, int], tuple[str, int, list]] = {
    (P.RPC, 1): (
        "rpc.eeinfo",
        1,
        [
            ("image_name", USTR),
            ("computer_name", USTR),
            ("process_id", U32),
            ("timestamp", SYSTEMTIME),
            ("component", U32),
            ("status", U32),
            ("detection_location", U16),
            ("flags", U16),
            ("param_count", U16),
            ("params", (U64_ARRAY, "param_count")),
        ],
    ),
    (P.RPC, 3): (
        "rpc.error",
        1,
        [("image_name", USTR), ("detection_location", U16), ("status", U32), ("data1", U32), ("data2", U32)],
    ),
    (P.RPC, 5): ("rpc.client_start", 1, _RPC_CALL_START),
    (P.RPC, 6): ("rpc.server_start", 1, _RPC_CALL_START),
    (P.RPC, 7): ("rpc.client_stop", 1, _STATUS),
    (P.RPC, 8): ("rpc.server_stop", 1, _STATUS),
    (P.RPC, 9): ("rpc.raise", 1, _STATUS),
    (P.RPC, 14): (
        "rpc.interface_register",
        1,
        [
            ("interface_uuid", GUID),
            ("type_mgr_uuid", GUID),
            ("flags", U32),
            ("max_calls", U32),
            ("sd_size", U32),
            ("sd", (BINARY, "sd_size")),
        ],
    ),
    (P.RPC, 15): (
        "rpc.interface_unregister",
        1,
        [("interface_uuid", GUID), ("type_mgr_uuid", GUID), ("flags", U32), ("max_calls", U32)],
    ),
    (P.RPC, 16): (
        "rpc.endpoint_bind",
        1,
        [
            ("protocol", USTR),
            ("endpoint", USTR),
            ("network_address", USTR),
            ("pending_queue_size", U32),
            ("endpoint_flags", U32),
            ("nic_flags", U32),
        ],
    ),
    (P.KERNEL_REGISTRY, 1): (
        "registry.create",
        0,
        [
            ("base_object", PTR),
            ("key_object", PTR),
            ("status", U32),
            ("disposition", U32),
            ("base_name", USTR),
            ("relative_name", USTR),
        ],
    ),
    (P.KERNEL_REGISTRY, 5): (
        "registry.set_value",
        0,
        [
            ("key_object", PTR),
            ("status", U32),
            ("type", U32),
            ("data_size", U32),
            ("key_name", USTR),
            ("value_name", USTR),
            ("captured_size", U16),
            ("captured_data", (BINARY, "captured_size")),
        ],
    ),
}
TEMPLATES[(P.KERNEL_REGISTRY, 2)] = ("registry.open", 0, TEMPLATES[(P.KERNEL_REGISTRY, 1)][2])

# Packets in ETW (docs/packet-etl.md): Microsoft-Windows-NDIS-PacketCapture (netsh trace
# capture=yes; templates from its manifest) and Microsoft-Windows-PktMon (pktmon; templates from
# Microsoft's NetMon parser for it).  Only the fields before the frame bytes are declared: what
# newer builds append after them (1001's GftFlowEntryId/GftOffloadInformation, 1003's OOB data)
# is not needed and its absence on older builds must not lose the frame.  rpctrace.sources.net.etw
# turns these events into frames.
_NDIS_LAYER = [("miniport_if_index", U32), ("lower_if_index", U32)]
TEMPLATES.update({
    (P.NDIS_PACKET_CAPTURE, 1001): (
        "ndis.packet_fragment", 0,
        [*_NDIS_LAYER, ("fragment_size", U32), ("fragment", (BINARY, "fragment_size"))],
    ),
    (P.NDIS_PACKET_CAPTURE, 1002): (
        "ndis.packet_metadata", 0,
        [*_NDIS_LAYER, ("metadata_size", U32), ("metadata", (BINARY, "metadata_size"))],
    ),
    (P.NDIS_PACKET_CAPTURE, 1003): (
        "ndis.vmswitch_packet_fragment", 0,
        [*_NDIS_LAYER, ("source_port_id", U32), ("source_port_name", USTR), ("source_nic_name", USTR),
         ("source_nic_type", USTR), ("destination_count", U32), ("destinations", (U64_ARRAY, "destination_count")),
         ("fragment_size", U32), ("fragment", (BINARY, "fragment_size"))],
    ),
    (P.NDIS_PACKET_CAPTURE, 1014): (
        "ndis.layer_attach", 0, [*_NDIS_LAYER, ("media_type", U32), ("reference_context", U32)],
    ),
    (P.NDIS_PACKET_CAPTURE, 1015): (
        "ndis.layer_detach", 0, [*_NDIS_LAYER, ("media_type", U32), ("reference_context", U32)],
    ),
    (P.PKTMON, 20): (
        "pktmon.component", 0, [("id", U16), ("type", U16), ("name", USTR), ("description", USTR)],
    ),
})
_PKTMON_PACKET = [
    ("pkt_group_id", U64), ("pkt_number", U16), ("appearance_count", U16), ("direction", U16),
    ("packet_type", U16), ("component_id", U16), ("edge_id", U16), ("filter_id", U16), ("drop_reason", U32),
    ("drop_location", U32), ("original_payload_size", U16), ("logged_payload_size", U16),
    ("payload", (BINARY, "logged_payload_size")),
]
TEMPLATES[(P.PKTMON, 160)] = ("pktmon.packet", 0, _PKTMON_PACKET)
TEMPLATES[(P.PKTMON, 170)] = ("pktmon.packet_drop", 0, _PKTMON_PACKET)
#: providers whose events keep the header's keyword as ``fields["keyword"]`` (NDIS packet events
#: say in it where a packet starts and ends, its medium and its direction)
WITH_KEYWORD = frozenset({P.NDIS_PACKET_CAPTURE})

PROVIDERS = frozenset(p for p, _ in TEMPLATES)

_GUID_HEAD = struct.Struct("<IHH")


def guid_le(raw: bytes) -> str:
    """A GUID stored in Windows (bytes_le) order, as lowercase text.

    Formatted by hand: ``uuid.UUID`` costs several times more per GUID on the hot path.
    Activity ids are unique per call, so only repeating GUIDs go through :func:`_cached_guid`.
    """
    a, b, c = _GUID_HEAD.unpack_from(raw)
    tail = bytes(raw[8:16]).hex()
    return f"{a:08x}-{b:04x}-{c:04x}-{tail[:4]}-{tail[4:]}"


_GUID_CACHE: dict[bytes, str] = {}
_CACHE_MAX = 4096  # hostile files can make every value distinct: caches are bounded


def _cached_guid(raw: bytes) -> str:
    text = _GUID_CACHE.get(raw)
    if text is None:
        if len(_GUID_CACHE) >= _CACHE_MAX:
            _GUID_CACHE.clear()
        text = _GUID_CACHE[raw] = guid_le(raw)
    return text


# Compiled templates: consecutive fixed-size fields become one struct read, so RPC call start
# (9 fields) is 6 steps.  Steps are (op, struct or None, names, size).
_OP_FIXED, _OP_GUID, _OP_USTR, _OP_ARRAY, _OP_BINARY, _OP_SYSTEMTIME = range(6)
_SYSTEMTIME = struct.Struct("<8H")


def _compile(template: list, ptr: int) -> tuple:
    steps: list[tuple] = []
    run: list[tuple[str, str]] = []

    def flush() -> None:
        if run:
            fmt = "<" + "".join(code for _, code in run)
            st = struct.Struct(fmt)
            steps.append((_OP_FIXED, st, tuple(name for name, _ in run), st.size))
            run.clear()

    codes = {U8: "B", U16: "H", U32: "I", U64: "Q", PTR: "Q" if ptr == 8 else "I"}
    for name, ftype in template:
        if isinstance(ftype, tuple):
            flush()
            kind, ref = ftype
            steps.append((_OP_ARRAY if kind == U64_ARRAY else _OP_BINARY, None, (name, ref), 0))
        elif ftype in codes:
            run.append((name, codes[ftype]))
        else:
            flush()
            op = {GUID: _OP_GUID, USTR: _OP_USTR, SYSTEMTIME: _OP_SYSTEMTIME}[ftype]
            steps.append((op, None, (name,), _SIZES.get(ftype, 0)))
    flush()
    return tuple(steps)


_PLANS: dict[tuple[str, int, int], tuple[str, int, tuple]] = {}


def _plan(provider: str, event_id: int, ptr: int):
    key = (provider, event_id, ptr)
    plan = _PLANS.get(key)
    if plan is None:
        entry = TEMPLATES.get((provider, event_id))
        if entry is None:
            return None
        kind, known_version, template = entry
        plan = _PLANS[key] = (kind, known_version, _compile(template, ptr))
    return plan


def decode(provider: str, event_id: int, version: int, data: bytes, pos: int, end: int, ptr: int):
    """Decode one manifest event payload ``data[pos:end]``."""
    plan = _PLANS.get((provider, event_id, ptr)) or _plan(provider, event_id, ptr)
    if plan is None:
        raise UnknownEvent(f"no template for event {event_id}")
    kind, known_version, steps = plan
    if version != known_version:
        raise UnknownEvent(f"event {event_id} version {version} (rpctrace knows version {known_version})")
    fields: dict[str, Any] = {}
    off = pos
    for op, st, names, size in steps:
        if op == _OP_FIXED:
            if off + size > end:
                raise PayloadError(f"{names[0]}: payload ends at +{end - pos}, fields need {size} bytes at +{off - pos}")
            if len(names) == 1:
                fields[names[0]] = st.unpack_from(data, off)[0]
            else:
                fields.update(zip(names, st.unpack_from(data, off)))
            off += size
        elif op == _OP_USTR:
            if off >= end:
                raise PayloadError(f"{names[0]}: payload ends before the string")
            fields[names[0]], off = utf16z(data, off, end)
        elif op == _OP_GUID:
            if off + 16 > end:
                raise PayloadError(f"{names[0]}: payload ends at +{end - pos}, field needs 16 bytes at +{off - pos}")
            fields[names[0]] = _cached_guid(data[off : off + 16])
            off += 16
        elif op == _OP_SYSTEMTIME:
            if off + 16 > end:
                raise PayloadError(f"{names[0]}: payload ends at +{end - pos}, field needs 16 bytes at +{off - pos}")
            y, mo, _dow, d, h, mi, s, ms = _SYSTEMTIME.unpack_from(data, off)
            fields[names[0]] = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}.{ms:03d}Z"
            off += 16
        else:
            name, ref = names
            count = int(fields.get(ref, 0))
            if op == _OP_ARRAY:
                if off + 8 * count > end:
                    raise PayloadError(f"{name}: {count} items overrun the payload")
                fields[name] = list(struct.unpack_from(f"<{count}Q", data, off))
                off += 8 * count
            else:
                if off + count > end:
                    raise PayloadError(f"{name}: {count} bytes overrun the payload")
                fields[name] = bytes(data[off : off + count])
                off += count
    return kind, fields
