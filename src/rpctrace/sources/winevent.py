"""One Windows event, as the ``<Event>`` schema renders it, -> one :class:`~rpctrace.model.Event`.

Shared by the two readers of rendered events (XML exports, :mod:`rpctrace.sources.eventxml`;
.evtx logs, :mod:`rpctrace.sources.evtx`).  Microsoft-Windows-RPC events (ids 1, 3, 5-9, 14-16)
become the same kinds and field names as the ETL reader gives them (the templates of
:mod:`rpctrace.sources.etl.manifest`); every other event is kept as ``raw`` with its EventData
(or UserData) values as fields.  RPC events of a version rpctrace has no template for stay ``raw``
with a ``note`` and are counted.  ``pid``, ``tid`` come from ``<Execution ProcessID ThreadID>``,
``cpu`` from its ``ProcessorID`` (tracerpt) or None, ``ts`` from ``<TimeCreated SystemTime>``
parsed here at full 100 ns precision.
"""

from __future__ import annotations

import datetime as _dt
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rpctrace.knowledge import providers as P
from rpctrace.model import Event
from rpctrace.sources.base import SourceStats
from rpctrace.sources.etl import manifest as M
from rpctrace.sources.safexml import Elem

__all__ = ["XmlStats", "event_from_element", "parse_system_time", "norm_guid", "RPC_DATA_NAMES"]


_TS = re.compile(r"\s*(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?\s*(Z|[+-]\d{2}:?\d{2})?\s*$")
_EPOCH_ORDINAL = _dt.date(1601, 1, 1).toordinal()


def parse_system_time(text: str) -> int:
    """``2020-07-31T07:27:31.7947753Z`` -> 100 ns FILETIME ticks (digits past the 7th are dropped)."""
    m = _TS.match(text or "")
    if not m:
        raise ValueError(f"not a time: {text!r}")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac = (m.group(7) or "")[:7].ljust(7, "0")
    days = _dt.date(y, mo, d).toordinal() - _EPOCH_ORDINAL
    if not (0 <= h < 24 and 0 <= mi < 60 and 0 <= s < 61):
        raise ValueError(f"not a time: {text!r}")
    ticks = ((days * 86400 + h * 3600 + mi * 60 + s) * 10_000_000) + int(frac)
    tz = m.group(8)
    if tz and tz != "Z":
        sign = -1 if tz[0] == "-" else 1
        hh, mm = int(tz[1:3]), int(tz[-2:])
        ticks -= sign * (hh * 3600 + mm * 60) * 10_000_000
    return ticks


def norm_guid(text: str | None) -> str | None:
    """``{6AD52B32-...}`` -> ``6ad52b32-...`` (None when it is not a GUID)."""
    if not text:
        return None
    try:
        return str(uuid.UUID(text.strip().strip("{}")))
    except ValueError:
        return None


_ZERO_GUID = "00000000-0000-0000-0000-000000000000"

#: value maps of the RPC manifest, for exports that render a mapped value by its name
_VALUE_MAPS = {
    "protocol": {"tcp": 1, "named pipes": 2, "lrpc": 3, "rpc/http": 4},
    "auth_service": {"negotiate": 9, "ntlm": 10, "schannel": 14, "kerberos": 16, "kernel": 20},
    "impersonation_level": {"default": 0, "anonymous": 1, "identify": 2, "impersonate": 3, "delegate": 4},
}


def _int(text: str, name: str) -> int:
    t = text.strip()
    try:
        if t.lower().startswith(("0x", "-0x")):
            v = int(t, 16)
        else:
            v = int(t, 10)
    except ValueError:
        mapped = _VALUE_MAPS.get(name, {}).get(t.lower())
        if mapped is None:
            raise ValueError(f"{name}: {text!r} is not a number") from None
        return mapped
    return v & 0xFFFFFFFFFFFFFFFF if v < 0 else v


#: Microsoft-Windows-RPC template data names (../shared/samples/rpc-databases/Microsoft-Windows-RPC.xml)
#: -> rpctrace field names (docs/events.md)
RPC_DATA_NAMES = {
    "ImageName": "image_name",
    "ImangeName": "image_name",  # sic, event 2's template
    "ComputerName": "computer_name",
    "ProcessID": "process_id",
    "TimeStamp": "timestamp",
    "GeneratingComponent": "component",
    "Status": "status",
    "DetectionLocation": "detection_location",
    "Flags": "flags",
    "NumberOfParameters": "param_count",
    "Params": "params",
    "InterfaceUuid": "interface_uuid",
    "ProcNum": "procnum",
    "Protocol": "protocol",
    "NetworkAddress": "network_address",
    "Endpoint": "endpoint",
    "Options": "options",
    "AuthenticationLevel": "auth_level",
    "AuthenticationService": "auth_service",
    "ImpersonationLevel": "impersonation_level",
    "TypeMgrUuid": "type_mgr_uuid",
    "MaxCalls": "max_calls",
    "SDSize": "sd_size",
    "SD": "sd",
    "PendingQueueSize": "pending_queue_size",
    "EndpointFlags": "endpoint_flags",
    "NicFlags": "nic_flags",
    "AdditionalData1": "data1",
    "AdditionalData2": "data2",
}

_PROVIDERS_BY_NAME = {name.lower(): guid for guid, name in P.NAMES.items()}
_PROVIDERS_BY_NAME.setdefault("microsoft-windows-rpc", P.RPC)


def _convert(name: str, ftype, values: list[str]) -> Any:
    if isinstance(ftype, tuple):
        ftype = ftype[0]
    if ftype == M.U64_ARRAY:
        items: list[str] = []
        for v in values:
            items.extend(x for x in re.split(r"[\s,;]+", v.strip()) if x)
        return [_int(x, name) for x in items]
    text = values[0] if values else ""
    if ftype == M.GUID:
        g = norm_guid(text)
        if g is None:
            raise ValueError(f"{name}: {text!r} is not a GUID")
        return g
    if ftype == M.USTR or ftype == M.SYSTEMTIME:
        return text
    if ftype == M.BINARY:
        t = re.sub(r"\s+", "", text)
        if t.lower().startswith("0x"):
            t = t[2:]
        try:
            return bytes.fromhex(t)
        except ValueError:
            raise ValueError(f"{name}: not hex data") from None
    return _int(text, name)


# ---------------------------------------------------------------------------- one event


@dataclass
class XmlStats(SourceStats):
    """What a read found besides events."""

    format: str = "eventxml"
    rpc_records: int = 0
    #: the computer the first record names (``<Computer>``), and how many different ones the
    #: records name (forwarded-event logs hold several machines), counted up to 64
    computer: str | None = None
    computers: set[str] = field(default_factory=set)

    SUMMARY: ClassVar[tuple[str, ...]] = (
        "format", "computer", "computers", "records", "raw_records", "rpc_records", "unknown_versions",
        "payload_errors", "events_lost", "buffers_lost", "damage")


def _opt_int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    if not text:
        return None
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        return None


def _data_items(elem: Elem | None) -> list[tuple[str | None, str]]:
    """(Name, text) of the values of <EventData> (or the leaves of <UserData>)."""
    if elem is None:
        return []
    out: list[tuple[str | None, str]] = []
    for c in elem.children:
        if c.tag in ("Data", "Binary", "ComplexData"):
            out.append((c.attrib.get("Name") if c.tag != "Binary" else "Binary", c.text))
    return out


def _user_data(elem: Elem | None) -> dict:
    if elem is None or not elem.children:
        return {}
    out: dict[str, Any] = {}

    def walk(e: Elem, depth: int) -> None:
        for c in e.children:
            if c.children and depth < 8:
                walk(c, depth + 1)
            else:
                key = c.tag
                if key in out:
                    i = 2
                    while f"{key}_{i}" in out:
                        i += 1
                    key = f"{key}_{i}"
                out[key] = c.text

    walk(elem.children[0], 0)
    return out


def event_from_element(el: Elem, stats: XmlStats, record: int | None = None) -> Event:
    """Turn one ``<Event>`` element into an :class:`Event` (RPC events decoded, others raw)."""
    system = el.child("System")
    if system is None:
        raise ValueError("<Event> has no <System>")
    prov = system.child("Provider")
    pattrib = prov.attrib if prov is not None else {}
    provider = norm_guid(pattrib.get("Guid")) or _PROVIDERS_BY_NAME.get((pattrib.get("Name") or "").lower()) or P.NULL

    def text_of(tag: str) -> str | None:
        c = system.child(tag)
        return c.text if c is not None else None

    eid = (_opt_int(text_of("EventID")) or 0) & 0xFFFF
    version = _opt_int(text_of("Version")) or 0
    opcode = _opt_int(text_of("Opcode")) or 0
    tc = system.child("TimeCreated")
    meta: dict[str, Any] = {}
    ts = 0
    stamp = tc.attrib.get("SystemTime") if tc is not None else None
    try:
        ts = parse_system_time(stamp) if stamp else 0
        if not stamp:
            meta["time_note"] = "no TimeCreated SystemTime"
    except ValueError as exc:
        meta["time_note"] = str(exc)
    ex = system.child("Execution")
    eattrib = ex.attrib if ex is not None else {}
    pid = _opt_int(eattrib.get("ProcessID"))
    tid = _opt_int(eattrib.get("ThreadID"))
    cpu = _opt_int(eattrib.get("ProcessorID"))
    corr = system.child("Correlation")
    extra: dict[str, Any] = {}
    if corr is not None:
        act = norm_guid(corr.attrib.get("ActivityID"))
        if act and act != _ZERO_GUID:
            extra["activity_id"] = act
        rel = norm_guid(corr.attrib.get("RelatedActivityID"))
        if rel and rel != _ZERO_GUID:
            extra["related_activity_id"] = rel
    rid = _opt_int(text_of("EventRecordID"))
    if rid is not None:
        meta["record_id"] = rid
    computer = text_of("Computer")
    if computer:
        meta["computer"] = computer
        if stats.computer is None:
            stats.computer = computer[:256]
        if len(stats.computers) < 64:
            stats.computers.add(computer[:256])
    items = _data_items(el.child("EventData"))

    entry = M.TEMPLATES.get((provider, eid)) if provider == P.RPC else None
    if entry is not None:
        kind, known_version, template = entry
        if version == known_version:
            try:
                fields = _rpc_fields(template, items)
            except ValueError as exc:
                stats.payload_errors += 1
                return _raw(ts, pid, tid, cpu, provider, eid, opcode, version, el, items, extra, meta, stats,
                            error=str(exc))
            fields.update(extra)
            fields.update(meta)
            stats.rpc_records += 1
            return Event(ts, pid, tid, cpu, provider, eid, opcode, version, kind, fields)
        stats.unknown_versions += 1
        return _raw(ts, pid, tid, cpu, provider, eid, opcode, version, el, items, extra, meta, stats,
                    note=f"event {eid} version {version} (rpctrace knows version {known_version})")
    return _raw(ts, pid, tid, cpu, provider, eid, opcode, version, el, items, extra, meta, stats,
                provider_name=pattrib.get("Name"), system=system)


def _rpc_fields(template, items) -> dict:
    types = {name: ftype for name, ftype in template}
    order = [name for name, _ in template]
    grouped: dict[str, list[str]] = {}
    unnamed = 0
    extras: dict[str, str] = {}
    for name, text in items:
        if name:
            fname = RPC_DATA_NAMES.get(name)
            if fname is None or fname not in types:
                extras[name] = text
                continue
        else:  # no Name attribute: the template's order
            if unnamed >= len(order):
                continue
            fname = order[unnamed]
            unnamed += 1
        grouped.setdefault(fname, []).append(text)
    fields: dict[str, Any] = {}
    for fname in order:
        if fname in grouped:
            fields[fname] = _convert(fname, types[fname], grouped[fname])
    fields.update(extras)
    return fields


def _raw(ts, pid, tid, cpu, provider, eid, opcode, version, el, items, extra, meta, stats, *, note=None,
         error=None, provider_name=None, system=None) -> Event:
    stats.raw_records += 1
    fields: dict[str, Any] = {}
    if provider_name:
        fields["provider_name"] = provider_name
    if system is not None:
        for tag, key in (("Channel", "channel"), ("Level", "level"), ("Task", "task"), ("Keywords", "keywords")):
            c = system.child(tag)
            if c is not None and c.text:
                fields[key] = c.text
        sec = system.child("Security")
        if sec is not None and sec.attrib.get("UserID"):
            fields["user_sid"] = sec.attrib["UserID"]
    i = 0
    for name, text in items:
        if not name:
            name = f"data_{i}"
            i += 1
        if name in fields:
            fields[name] = fields[name] if isinstance(fields[name], list) else [fields[name]]
            fields[name].append(text)
        else:
            fields[name] = text
    if not items:
        fields.update(_user_data(el.child("UserData")))
    fields.update(extra)
    fields.update(meta)
    if note:
        fields["note"] = note
    if error:
        fields["error"] = error
    return Event(ts, pid, tid, cpu, provider, eid, opcode, version, "raw", fields)
