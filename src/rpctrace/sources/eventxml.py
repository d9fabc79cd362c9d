"""Saved Windows events as XML: ``wevtutil qe /f:xml``, Event Viewer "Save as XML", tracerpt.

The three exports share the event schema (``<Event><System>...</System><EventData>``) and differ
only around it: wevtutil writes a bare sequence of ``<Event>`` elements (no root, often no XML
declaration), Event Viewer and tracerpt wrap them in ``<Events>``; encodings are UTF-8 or
UTF-16 (PowerShell redirection writes UTF-16 LE with a BOM).  All three are read the same way:
the text is decoded, its XML declaration dropped, and it is fed to expat inside a wrapper element
of our own, so a rootless sequence parses too.

Files come from compromised machines, so the parser refuses any DTD (no entity declarations, no
external entities, hence no entity expansion bombs), bounds the file size, the size of one
event and the nesting depth, and streams: only one event is held as a tree at a time.

Microsoft-Windows-RPC events (ids 1, 3, 5-9, 14-16) become the same kinds and field names as
the ETL reader gives them (the templates of :mod:`rpctrace.sources.etl.manifest`); every other
event is kept as ``raw`` with its EventData (or UserData) values as fields.  RPC events of a
version rpctrace has no template for stay ``raw`` with a ``note`` and are counted.  ``pid``,
``tid`` come from ``<Execution ProcessID ThreadID>``, ``cpu`` from its ``ProcessorID`` (tracerpt)
or None, ``ts`` from ``<TimeCreated SystemTime>`` parsed here at full 100 ns precision.
"""

from __future__ import annotations

import codecs
import datetime as _dt
import os
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterator
from xml.parsers import expat

from rpctrace.errors import InputError
from rpctrace.knowledge import providers as P
from rpctrace.model import Event
from rpctrace.sources.etl import manifest as M

#: limits (hostile files): whole file, one event (characters), nesting depth below <Event>
MAX_FILE_BYTES = 4 << 30
MAX_EVENT_CHARS = 16 << 20
MAX_DEPTH = 64
_CHUNK = 1 << 20

_WRAP_OPEN, _WRAP_CLOSE = "<rpctrace-events>", "</rpctrace-events>"
_FORBIDDEN = re.compile(r"<!(DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)")


class XmlRefused(ValueError):
    """The XML holds something rpctrace refuses to parse (a DTD, entities, too deep, too big)."""


# ---------------------------------------------------------------------------- sniffing / decoding


def _encoding(head: bytes) -> tuple[str, int]:
    """(codec, BOM length) from the first bytes."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8", 3
    if head.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le", 2
    if head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be", 2
    if len(head) >= 2 and head[1] == 0 and head[0] != 0:
        return "utf-16-le", 0
    if len(head) >= 2 and head[0] == 0 and head[1] != 0:
        return "utf-16-be", 0
    return "utf-8", 0


def looks_like_event_xml(head: bytes) -> bool:
    """True when the bytes start (after a BOM and white space) with ``<`` and hold ``<Event``."""
    codec, bom = _encoding(head)
    text = head[bom:].decode(codec, errors="ignore")
    stripped = text.lstrip()
    return stripped.startswith("<") and re.search(r"<(\w+:)?Event[\s>/]", stripped) is not None


# ---------------------------------------------------------------------------- the element tree


class Elem:
    """A minimal element: local tag name, attributes, children, text."""

    __slots__ = ("tag", "attrib", "children", "parts")

    def __init__(self, tag: str, attrib: dict):
        self.tag = tag
        self.attrib = attrib
        self.children: list[Elem] = []
        self.parts: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def child(self, tag: str) -> "Elem | None":
        for c in self.children:
            if c.tag == tag:
                return c
        return None

    def children_named(self, tag: str) -> list["Elem"]:
        return [c for c in self.children if c.tag == tag]


def _local(name: str) -> str:
    return name.rsplit(":", 1)[-1]


class EventStream:
    """Feed XML text, collect finished ``<Event>`` elements (expat, no DTD, bounded)."""

    def __init__(self, max_event_chars: int = MAX_EVENT_CHARS):
        p = expat.ParserCreate()
        p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        p.StartElementHandler = self._start
        p.EndElementHandler = self._end
        p.CharacterDataHandler = self._chars
        p.StartDoctypeDeclHandler = self._refuse_dtd
        p.EntityDeclHandler = self._refuse_entity
        p.UnparsedEntityDeclHandler = self._refuse_entity
        p.NotationDeclHandler = self._refuse_entity
        p.ExternalEntityRefHandler = self._refuse_external
        p.buffer_text = True
        self._p = p
        self._stack: list[Elem] = []
        self._chars_in_event = 0
        self._max = max_event_chars
        self.done: list[Elem] = []
        self.outside = 0  # elements seen outside any <Event> (besides the roots)

    def _refuse_dtd(self, *args) -> None:
        raise XmlRefused("the XML has a document type declaration (DTD); rpctrace refuses DTDs and entities")

    def _refuse_entity(self, *args) -> None:
        raise XmlRefused("the XML declares entities; rpctrace refuses DTDs and entities")

    def _refuse_external(self, *args):
        raise XmlRefused("the XML references an external entity; rpctrace refuses DTDs and entities")

    def _start(self, name: str, attrs: dict) -> None:
        tag = _local(name)
        stack = self._stack
        if stack:
            if len(stack) >= MAX_DEPTH:
                raise XmlRefused(f"elements nested deeper than {MAX_DEPTH} levels inside an <Event>")
            el = Elem(tag, {_local(k): v for k, v in attrs.items()})
            stack[-1].children.append(el)
            stack.append(el)
            self._chars_in_event += 64
        elif tag == "Event":
            self._chars_in_event = 0
            stack.append(Elem(tag, {_local(k): v for k, v in attrs.items()}))
        elif tag not in ("rpctrace-events", "Events"):
            self.outside += 1

    def _end(self, name: str) -> None:
        stack = self._stack
        if stack:
            el = stack.pop()
            if not stack:
                self.done.append(el)

    def _chars(self, data: str) -> None:
        stack = self._stack
        if stack:
            self._chars_in_event += len(data)
            if self._chars_in_event > self._max:
                raise XmlRefused(f"one <Event> holds more than {self._max} characters")
            stack[-1].parts.append(data)

    def feed(self, text: str, final: bool = False) -> None:
        self._p.Parse(text, final)

    @property
    def position(self) -> tuple[int, int]:
        return self._p.CurrentLineNumber, self._p.CurrentColumnNumber


def parse_event_xml(text: str) -> Elem:
    """Parse the XML of one event (what the evtx package renders per record)."""
    text = _drop_declaration(text)
    if _FORBIDDEN.search(text):
        raise XmlRefused("the XML has a document type declaration (DTD); rpctrace refuses DTDs and entities")
    stream = EventStream()
    stream.feed(_WRAP_OPEN)
    stream.feed(text)
    stream.feed(_WRAP_CLOSE, True)
    if len(stream.done) != 1:
        raise ValueError(f"expected one <Event>, found {len(stream.done)}")
    return stream.done[0]


def _drop_declaration(text: str) -> str:
    text = text.lstrip("\ufeff \t\r\n")
    if text.startswith("<?xml"):
        end = text.find("?>")
        if end >= 0:
            return text[end + 2 :]
    return text


# ---------------------------------------------------------------------------- values


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
class XmlStats:
    """What a read found besides events."""

    format: str = "eventxml"
    records: int = 0
    raw_records: int = 0
    rpc_records: int = 0
    unknown_versions: int = 0
    payload_errors: int = 0
    #: the computer the first record names (``<Computer>``), and how many different ones the
    #: records name (forwarded-event logs hold several machines), counted up to 64
    computer: str | None = None
    computers: set = field(default_factory=set)
    damage: list[InputError] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "format": self.format,
            "computer": self.computer,
            "computers": len(self.computers),
            "records": self.records,
            "raw_records": self.raw_records,
            "rpc_records": self.rpc_records,
            "unknown_versions": self.unknown_versions,
            "payload_errors": self.payload_errors,
            "events_lost": 0,
            "buffers_lost": 0,
            "damage": [d.one_line() for d in self.damage],
        }


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


# ---------------------------------------------------------------------------- the reader


class EventXmlReader:
    """Reads an XML export of Windows events.  Same interface as the other readers.

    XML that is not well formed, or that rpctrace refuses (DTD, entities, limits), raises
    :class:`InputError` after the events parsed before it (strict) or ends the read with the
    damage counted (``keep_going``: the rest of a broken XML stream cannot be resynchronised).
    """

    def __init__(self, path: str | os.PathLike, keep_going: bool = False):
        self.path = os.fspath(path)
        self.keep_going = keep_going
        self.stats = XmlStats()
        try:
            self._file: BinaryIO | None = open(self.path, "rb")
            self.size = os.fstat(self._file.fileno()).st_size
        except OSError as exc:
            raise InputError(self.path, f"cannot open: {exc.strerror or exc}") from None
        if self.size == 0:
            self.close()
            raise InputError(self.path, "the file is empty", offset=0)
        if self.size > MAX_FILE_BYTES:
            self.close()
            raise InputError(self.path, f"the XML export is larger than rpctrace's limit ({MAX_FILE_BYTES} bytes)", offset=0)

    def close(self) -> None:
        file = getattr(self, "_file", None)  # (not set when open() failed)
        if file is not None:
            file.close()
            self._file = None

    def __enter__(self) -> "EventXmlReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def events(self) -> Iterator[Event]:
        if self._file is None:
            raise InputError(self.path, "reader is closed")
        out: list[Event] = []
        error = self._parse(out)
        out.sort(key=lambda e: e.ts)
        self.stats.records += len(out)
        if error is not None and self.keep_going:
            self.stats.damage.append(error)
            error = None
        yield from out
        if error is not None:
            raise error

    def _parse(self, out: list[Event]) -> InputError | None:
        fh = self._file
        if fh is None:
            raise InputError(self.path, "reader is closed")
        fh.seek(0)
        head = fh.read(4)
        codec, bom = _encoding(head)
        fh.seek(bom)
        decoder = codecs.getincrementaldecoder(codec)(errors="strict")
        stream = EventStream()
        consumed = bom
        first = True
        tail = ""
        try:
            stream.feed(_WRAP_OPEN)
            while True:
                chunk = fh.read(_CHUNK)
                final = not chunk
                text = decoder.decode(chunk, final)
                consumed += len(chunk)
                if first and text:
                    text = _drop_declaration(text)
                    first = False
                if _FORBIDDEN.search(tail + text):
                    raise XmlRefused("the XML has a document type declaration (DTD); rpctrace refuses DTDs and entities")
                tail = text[-16:]
                if final:
                    stream.feed(_WRAP_CLOSE, True)
                else:
                    stream.feed(text)
                self._drain(stream, out)
                if final:
                    break
        except XmlRefused as exc:
            earlier = self._drain_after_error(stream, out)
            return InputError(self.path, str(earlier or exc), offset=consumed, record=len(out))
        except expat.ExpatError as exc:
            earlier = self._drain_after_error(stream, out)
            if earlier is not None:
                return InputError(self.path, str(earlier), offset=consumed, record=len(out))
            line, col = exc.lineno, exc.offset
            return InputError(self.path, f"not well-formed XML near line {line}, column {col}: "
                              f"{expat.ErrorString(exc.code)}", record=len(out))
        except UnicodeDecodeError as exc:
            return InputError(self.path, f"the text is not valid {codec}: {exc.reason}", offset=consumed, record=len(out))
        except RecursionError:  # pragma: no cover - depth is bounded above
            return InputError(self.path, "the XML nests too deeply", offset=consumed, record=len(out))
        if not out and stream.outside and not self.stats.damage:
            return InputError(self.path, "the XML holds no <Event> elements", offset=0)
        return None

    def _drain_after_error(self, stream: EventStream, out: list[Event]) -> XmlRefused | None:
        """Keep the events finished before a parse error; an unusable one among them (strict
        mode) is the earlier damage, returned to be reported instead of the parse error."""
        try:
            self._drain(stream, out)
        except XmlRefused as exc:
            return exc
        return None

    def _drain(self, stream: EventStream, out: list[Event]) -> None:
        for el in stream.done:
            try:
                out.append(event_from_element(el, self.stats, len(out)))
            except ValueError as exc:
                err = InputError(self.path, f"event {len(out)}: {exc}", record=len(out))
                if not self.keep_going:
                    stream.done.clear()
                    raise XmlRefused(str(exc)) from None
                self.stats.damage.append(err)
        stream.done.clear()
