"""Decode the records of one ETL buffer into events.

This is the hot loop of reading a trace (every record of every buffer passes through it), kept
apart from the reader so that it can run in another process: a :class:`BufferDecoder` needs only
the logger's pointer size and clock, and :meth:`BufferDecoder.decode` takes the record bytes of
one buffer and returns plain lists (raw timestamps, events, damage), never raising on bad bytes.

Speed notes (profiled on busy-server traces, where ~70 % of records are kernel ALPC events):
kernel decoders are looked up once per (group, opcode), provider GUIDs and the GUID/string
fields that repeat (interface ids) come from bounded caches, manifest templates are compiled
into a few struct reads (:mod:`rpctrace.sources.etl.manifest`), and events are built with
``tuple.__new__`` rather than the NamedTuple's Python-level constructor.

Record header layouts: :mod:`rpctrace.sources.etl.layouts` (from
../shared/reference/etl-container-and-thread-ids.md §5.2).
"""

from __future__ import annotations

import os
import struct
import uuid
from types import ModuleType
from typing import Any

from rpctrace.knowledge import providers as P
from rpctrace.model import Event, Stack
from rpctrace.sources.etl import imageid, kernel, manifest
from rpctrace.sources.etl.layouts import (
    COMPACT_TRACE_HEADER,
    EVENT_HEADER,
    EVENT_HEADER_EXTENDED_DATA_ITEM,
    EVENT_INSTANCE_GUID_HEADER,
    EXT_STACK_TRACE,
    EVENT_TRACE_HEADER,
    PERFINFO_TRACE_HEADER,
    SYSTEM_TRACE_HEADER,
)

# header types (byte 2 of the marker when byte 3 is 0xC0)
SYSTEM32, SYSTEM64, COMPACT32, COMPACT64 = 0x01, 0x02, 0x03, 0x04
FULL32, INSTANCE32, TIMED, ERROR, WNODE, MESSAGE = 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F
PERFINFO32, PERFINFO64, EVENT32, EVENT64, FULL64, INSTANCE64 = 0x10, 0x11, 0x12, 0x13, 0x14, 0x15

_KERNEL_TYPES = frozenset({PERFINFO64, PERFINFO32, SYSTEM64, SYSTEM32, COMPACT64, COMPACT32})
_CLASSIC_TYPES = frozenset({FULL32, FULL64, INSTANCE32, INSTANCE64})
_OPAQUE_TYPES = frozenset({TIMED, ERROR, WNODE})

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_EXT_SIZE = EVENT_HEADER_EXTENDED_DATA_ITEM.size
_EXT_STACK_SIZE = EXT_STACK_TRACE.size  # MatchId before the frames
#: where EVENT_HEADER and EVENT_TRACE_HEADER (and the instance header) keep the timestamp
_TIME_STAMP_AT = EVENT_HEADER.offset("time_stamp")
assert _TIME_STAMP_AT == EVENT_TRACE_HEADER.offset("time_stamp") == EVENT_INSTANCE_GUID_HEADER.offset("time_stamp")

NO_ID = 0xFFFFFFFF
_ZERO_GUID = bytes(16)

EXT_RELATED_ACTIVITYID = 0x0001
EXT_STACK_TRACE32 = 0x0005
EXT_STACK_TRACE64 = 0x0006

_fastrecords: ModuleType | None
try:  # the optional C record loop (setup.py); without it everything below runs in Python
    from rpctrace.sources.etl import _fastrecords
except ImportError:  # pragma: no cover - depends on the build
    _fastrecords = None

_RPC_GUID_LE = uuid.UUID(P.RPC).bytes_le
#: providers whose EVENT_HEADER records the C loop leaves to :meth:`BufferDecoder._event_header_event`
#: (a manifest, or fields of their own); it keeps the others raw itself, as that method does
PYTHON_PROVIDERS = manifest.PROVIDERS | manifest.WITH_KEYWORD
_new = tuple.__new__
#: RPCTRACE_PURE=1 decodes in Python even where the C loop was built (tests compare both)
PURE = bool(os.environ.get("RPCTRACE_PURE"))
#: provider GUIDs seen in headers (a trace has a handful); bounded against hostile files
_GUID_CACHE_MAX = 4096


class DecodeCounts:
    """Per-buffer counters the reader adds into its :class:`ReadStats`."""

    __slots__ = ("raw_records", "payload_errors", "unknown_versions")

    def __init__(self) -> None:
        self.raw_records = 0
        self.payload_errors = 0
        self.unknown_versions = 0

    def as_tuple(self) -> tuple[int, int, int]:
        return self.raw_records, self.payload_errors, self.unknown_versions


class BufferDecoder:
    """Decodes buffers of one logger (fixed pointer size and clock)."""

    def __init__(self, pointer_size: int, clock, header_raw_ts: int, skip_stacks: bool = False):
        """``skip_stacks``: StackWalk Stack records are passed over, not decoded (for a consumer
        that shows no stacks; they are a tenth of a busy trace and its costliest records)."""
        self.skip_stacks = skip_stacks
        self.ptr = pointer_size
        self.clock = clock
        self.header_raw_ts = header_raw_ts
        self._kernel: dict[int, tuple] = {}
        self._guids: dict[bytes, str] = {}

    # ------------------------------------------------------------------ one buffer

    def decode(self, data: bytes, cpu: int, skip: int = 0):
        """``(raws, events, damage, counts)`` for one buffer's record bytes.

        ``raws`` are the records' raw timestamps (what the merge orders by), ``events`` the
        events in record order, ``damage`` a list of ``(position, record number, message)``
        (decoding stops at the first damage that leaves the record stream unreadable), and
        ``counts`` the :class:`DecodeCounts` of this buffer.

        The C record loop (:mod:`rpctrace.sources.etl._fastrecords`) is used when it was built
        and ``RPCTRACE_PURE`` is not set; it decodes ALPC and RPC call records itself and hands
        every other payload to the methods below, so both give the same events.
        """
        if _fastrecords is not None and not PURE:
            counts = DecodeCounts()
            clock = self.clock
            ident = clock.identity_offset
            ctx = (Event, self.ptr, (ident is not None, ident or 0, clock.base, clock.raw0, clock.num, clock.den),
                   self._kernel, self._kernel_entry, self._kernel_event, self._event_header_event,
                   self._classic_event, self._opaque_event, counts, P.RPC, _RPC_GUID_LE, clock, self.skip_stacks,
                   PYTHON_PROVIDERS, Stack.split)
            try:
                raws, events, damage = _fastrecords.decode(data, cpu, skip, ctx)
            except (OverflowError, ValueError):
                pass  # clock constants beyond 64 bits (a hostile header): the Python loop copes
            else:
                return raws, events, damage, counts
        return self.decode_python(data, cpu, skip)

    def decode_python(self, data: bytes, cpu: int, skip: int = 0):
        """:meth:`decode` in pure Python (the reference the C loop is tested against)."""
        counts = DecodeCounts()
        raws: list[int] = []
        events: list[Event] = []
        damage: list[tuple[int, int, str]] = []
        add_raw = raws.append
        add = events.append
        end = len(data)
        ptr = self.ptr
        clock = self.clock
        ident = clock.identity_offset
        base, raw0, num, den = clock.base, clock.raw0, clock.num, clock.den
        kcache = self._kernel
        skip_stacks = self.skip_stacks
        kernel_event = self._kernel_event
        header_event = self._event_header_event
        unpack_u32 = _U32.unpack_from
        unpack_perf = PERFINFO_TRACE_HEADER.unpack_from
        unpack_sys = COMPACT_TRACE_HEADER.unpack_from  # the head SYSTEM and COMPACT headers share
        # header sizes (where the payload starts), as locals in the loop
        perf_size, compact_size = PERFINFO_TRACE_HEADER.size, COMPACT_TRACE_HEADER.size
        sys_size, evh_size = SYSTEM_TRACE_HEADER.size, EVENT_HEADER.size
        full_size, instance_size = EVENT_TRACE_HEADER.size, EVENT_INSTANCE_GUID_HEADER.size
        pos = 0
        number = 0
        while pos + 4 <= end:
            marker = unpack_u32(data, pos)[0]
            if marker == NO_ID:
                break  # 0xFF fill: end of the records
            top = marker >> 24
            htype = (marker >> 16) & 0xFF
            if top == 0xC0 and htype in _KERNEL_TYPES:
                if pos + perf_size > end:
                    damage.append((pos, number, "truncated record header"))
                    break
                if htype >= PERFINFO32:
                    version, size, opcode, group, raw = unpack_perf(data, pos)
                    tid = pid = None
                    hsize = perf_size
                else:
                    if pos + compact_size > end:
                        damage.append((pos, number, "truncated record header"))
                        break
                    version, size, opcode, group, tid, pid, raw = unpack_sys(data, pos)
                    hsize = sys_size if htype <= SYSTEM64 else compact_size
                    if tid == NO_ID:
                        tid = None
                    if pid == NO_ID:
                        pid = None
                if version & 0x8000:
                    hsize += 8
                if version & 0x0700:
                    hsize += 8 * ((version & 0x0700) >> 8)
                if size < hsize or pos + size > end:
                    damage.append((pos, number, f"record size {size} does not fit (header {hsize}, {end - pos} left)"))
                    break
                if number >= skip:
                    ts = raw + ident if ident is not None else base + (raw - raw0) * num // den
                    entry = kcache.get((group << 8) | opcode)
                    if entry is None:
                        entry = self._kernel_entry(group, opcode)
                    if entry[3] == 3 and skip_stacks:
                        number += 1
                        pos += (size + 7) & ~7
                        continue
                    add_raw(raw)
                    simple = entry[2]
                    if simple is not None and size - hsize >= simple[3]:
                        add(_new(Event, (ts, pid, tid, cpu, entry[0], 0, opcode, version & 0xFF, simple[0],
                                         {simple[2]: simple[1].unpack_from(data, pos + hsize)[0]}, None)))
                    else:
                        add(kernel_event(data, pos + hsize, pos + size, entry, opcode, version & 0xFF, ts, pid, tid,
                                         cpu, ptr, counts))
            elif top == 0xC0 and (htype == EVENT64 or htype == EVENT32):
                size = marker & 0xFFFF
                if size < evh_size or pos + size > end:
                    damage.append((pos, number, f"event record size {size} does not fit ({end - pos} left)"))
                    break
                if number >= skip:
                    ev, raw = header_event(data, pos, size, cpu, ptr, number, counts, damage)
                    add_raw(raw)
                    add(ev)
            elif top == 0xC0 and htype in _CLASSIC_TYPES:
                size = marker & 0xFFFF
                hsize = full_size if htype in (FULL32, FULL64) else instance_size
                if size < hsize or pos + size > end:
                    damage.append((pos, number, f"trace record size {size} does not fit ({end - pos} left)"))
                    break
                if number >= skip:
                    raw, ev = self._classic_event(data, pos, size, hsize, cpu, counts)
                    add_raw(raw)
                    add(ev)
            elif (top == 0xC0 and htype in _OPAQUE_TYPES) or (top & 0xF0) == 0x90:
                size = marker & 0xFFFF
                if size < 8 or pos + size > end:
                    damage.append((pos, number, f"record size {size} does not fit ({end - pos} left)"))
                    break
                if number >= skip:
                    raw, ev = self._opaque_event(data, pos, size, htype if top == 0xC0 else MESSAGE, cpu,
                                                 raws[-1] if raws else None, counts)
                    add_raw(raw)
                    add(ev)
            else:
                damage.append((pos, number, f"unknown record marker 0x{marker:08x}"))
                break
            number += 1
            pos += (size + 7) & ~7
        return raws, events, damage, counts

    # ------------------------------------------------------------------ per header type

    def _kernel_entry(self, group: int, opcode: int) -> tuple:
        """What the record loops need to decode kernel events of group/opcode:
        (provider, decoder, simple layout + its size, C fast path code, kind, value op).

        The C loop decodes the layouts it knows by code (1 ALPC WaitForNewMessage, 2 Registry,
        3 StackWalk Stack, 4 PerfInfo SampledProfile: see kernel.py for each) and the Python loop
        calls ``decoder``.
        """
        provider = P.kernel_group_guid(group, opcode)
        layout = kernel.SIMPLE.get((provider, opcode))
        simple = (*layout, layout[1].size) if layout is not None else None
        fast, kind = 0, None
        if provider == P.ALPC and opcode == 36:
            fast, kind = 1, "alpc.wait_new"
        elif provider == P.REGISTRY and opcode in kernel.REGISTRY_KINDS:
            fast, kind = 2, kernel.REGISTRY_KINDS[opcode]
        elif provider == P.STACK_WALK and opcode == 32:
            fast, kind = 3, "stack"
        elif provider == P.PERF_INFO and opcode == 46:
            fast, kind = 4, "sample"
        entry = self._kernel[(group << 8) | opcode] = (provider, kernel.DECODERS.get(provider), simple, fast, kind,
                                                       opcode in kernel.REGISTRY_VALUE_OPS)
        return entry

    def _kernel_event(self, data, pos, end, entry, opcode, version, ts, pid, tid, cpu, ptr, counts) -> Event:
        provider, decoder = entry[0], entry[1]
        if decoder is None:
            return _raw_event(ts, pid, tid, cpu, provider, 0, opcode, version, data, pos, end, None, None, counts)
        try:
            kind, fields, ppid, ptid = decoder(data, pos, end, ptr, version, opcode)
        except kernel.NotDecoded:
            return _raw_event(ts, pid, tid, cpu, provider, 0, opcode, version, data, pos, end, None, None, counts)
        except (kernel.PayloadError, struct.error, IndexError, ValueError, KeyError) as exc:
            return _raw_event(ts, pid, tid, cpu, provider, 0, opcode, version, data, pos, end, str(exc), None, counts)
        if ppid != kernel.FROM_HEADER:
            pid = ppid
        if ptid != kernel.FROM_HEADER:
            tid = ptid
        if kind == "stack":
            fields["event_ts"] = self.clock(fields["event_ts"])
        return _new(Event, (ts, pid, tid, cpu, provider, 0, opcode, version, kind, fields, None))

    def _provider(self, raw_guid: bytes) -> str:
        name = self._guids.get(raw_guid)
        if name is None:
            if len(self._guids) >= _GUID_CACHE_MAX:
                self._guids.clear()
            name = self._guids[raw_guid] = manifest.guid_le(raw_guid)
        return name

    def _event_header_event(self, data: bytes, pos: int, size: int, cpu: int, ptr: int, number: int,
                            counts: DecodeCounts, damage: list[tuple[int, int, str]]) -> tuple[Event, int]:
        (_size, flags, _prop, tid, pid, raw, guid, eid, version, _chan, level, opcode, task, keyword, _cpu_time,
         activity) = EVENT_HEADER.unpack_from(data, pos)
        ts = self.clock(raw)
        provider = self._guids.get(guid) or self._provider(guid)
        if tid == NO_ID:
            tid = None
        if pid == NO_ID:
            pid = None
        end = pos + size
        off = pos + EVENT_HEADER.size
        extra: dict[str, Any] = {}
        stack: Stack | None = None
        if flags & 0x0001:  # EXTENDED_INFO: items precede the user data
            for _ in range(64):
                if off + _EXT_SIZE > end:
                    damage.append((off, number, "extended data item overruns its record"))
                    break
                item_size, ext_type, linkage, data_size = EVENT_HEADER_EXTENDED_DATA_ITEM.unpack_from(data, off)
                if item_size < _EXT_SIZE or data_size > item_size - _EXT_SIZE or off + item_size > end:
                    damage.append((off, number, f"bad extended data item (size {item_size}, data {data_size})"))
                    off = end
                    break
                body = off + _EXT_SIZE
                if ext_type == EXT_RELATED_ACTIVITYID and data_size >= 16:
                    extra["related_activity_id"] = manifest.guid_le(data[body : body + 16])
                elif ext_type == EXT_STACK_TRACE64 and data_size >= _EXT_STACK_SIZE:
                    count = (data_size - _EXT_STACK_SIZE) // 8
                    stack = Stack.split(struct.unpack_from(f"<{count}Q", data, body + _EXT_STACK_SIZE), 8)
                elif ext_type == EXT_STACK_TRACE32 and data_size >= _EXT_STACK_SIZE:
                    count = (data_size - _EXT_STACK_SIZE) // 4
                    stack = Stack.split(struct.unpack_from(f"<{count}I", data, body + _EXT_STACK_SIZE), 4)
                off += item_size
                if not linkage & 1:
                    break
        if activity != _ZERO_GUID:
            extra["activity_id"] = manifest.guid_le(activity)
        if provider in manifest.WITH_KEYWORD:
            extra["keyword"] = keyword
        if provider in manifest.PROVIDERS:
            try:
                kind, fields = manifest.decode(provider, eid, version, data, off, end, ptr)
            except manifest.UnknownEvent as exc:
                if "version" in str(exc):
                    counts.unknown_versions += 1
                ev = _raw_event(ts, pid, tid, cpu, provider, eid, opcode, version, data, off, end, None, extra, counts)
                ev.fields["note"] = str(exc)
                return (ev._replace(stack=stack) if stack else ev), raw
            except (kernel.PayloadError, struct.error, IndexError, ValueError) as exc:
                ev = _raw_event(ts, pid, tid, cpu, provider, eid, opcode, version, data, off, end, str(exc), extra, counts)
                return (ev._replace(stack=stack) if stack else ev), raw
            if extra:
                fields.update(extra)
            return _new(Event, (ts, pid, tid, cpu, provider, eid, opcode, version, kind, fields, stack)), raw
        extra["task"] = task
        extra["keyword"] = keyword
        extra["level"] = level
        ev = _raw_event(ts, pid, tid, cpu, provider, eid, opcode, version, data, off, end, None, extra, counts)
        return (ev._replace(stack=stack) if stack else ev), raw

    def _opaque_event(self, data, pos, size, htype, cpu, previous_raw, counts):
        """Records whose header rpctrace does not decode (WPP messages, timed, error, WNODE).

        These headers do not always carry a timestamp: the record keeps its place in time (the
        previous record's, ``previous_raw``) and its bytes, so nothing is dropped and counts
        stay right.
        """
        if previous_raw is None:
            raw, ts = 0, self.clock(self.header_raw_ts)
        else:
            raw, ts = previous_raw, self.clock(previous_raw)
        return raw, _raw_event(ts, None, None, cpu, P.NULL, 0, 0, 0, data, pos, pos + size, None,
                               {"header_type": htype}, counts)

    def _classic_event(self, data, pos, size, hsize, cpu, counts):
        """A classic (EVENT_TRACE_HEADER) record.  Process, Thread and Image events of the kernel
        provider GUIDs come this way in Windows 7-era traces and are decoded with their layout
        checked against the payload (:func:`kernel.classic_kernel`); anything else stays raw."""
        _size, opcode, level, version, tid, pid, raw, guid, _cpu_time = EVENT_TRACE_HEADER.unpack_from(data, pos)
        pid = None if pid == NO_ID else pid
        tid = None if tid == NO_ID else tid
        provider = self._provider(guid)
        ts = self.clock(raw)
        error = None
        if provider in kernel.CLASSIC and hsize == EVENT_TRACE_HEADER.size:
            try:
                kind, fields, ppid, ptid, width = kernel.classic_kernel(provider, data, pos + hsize, pos + size,
                                                                        self.ptr, version, opcode)
            except kernel.NotDecoded:
                pass
            except (kernel.PayloadError, struct.error, IndexError, ValueError, KeyError) as exc:
                error = str(exc)
            else:
                if ppid != kernel.FROM_HEADER:
                    pid = ppid
                if ptid != kernel.FROM_HEADER:
                    tid = ptid
                fields["pointer_size"] = width
                return raw, _new(Event, (ts, pid, tid, cpu, provider, 0, opcode, version, kind, fields, None))
        extra = {"level": level}
        if hsize == EVENT_INSTANCE_GUID_HEADER.size:
            iid, parent_iid, parent_guid = EVENT_INSTANCE_GUID_HEADER.unpack_from(data, pos)[-3:]
            extra.update(instance_id=iid, parent_instance_id=parent_iid, parent_guid=manifest.guid_le(parent_guid))
        if provider == imageid.IMAGE_ID_GUID:  # KernelTraceControl's image identities (imageid.py)
            decoded = imageid.decode(opcode, data, pos + hsize, pos + size, self.ptr)
            if decoded is not None:
                return raw, _new(Event, (ts, pid, tid, cpu, provider, 0, opcode, version, decoded[0], decoded[1], None))
        return raw, _raw_event(ts, pid, tid, cpu, provider, 0, opcode, version, data, pos + hsize, pos + size, error,
                               extra, counts)


def _raw_event(ts, pid, tid, cpu, provider, eid, opcode, version, data, pos, end, error, extra, counts) -> Event:
    """An event kept as its payload bytes (unknown layout, or a payload that did not decode)."""
    counts.raw_records += 1
    fields = {"data": bytes(data[pos:end]), "length": end - pos}
    if error:
        counts.payload_errors += 1
        fields["error"] = error
    if extra:
        fields.update(extra)
    return _new(Event, (ts, pid, tid, cpu, provider, eid, opcode, version, "raw", fields, None))


def first_timestamp(data: bytes | memoryview, skip: int) -> int | None:
    """Raw timestamp of the first record (after ``skip`` records) of a buffer, if it has one."""
    pos = 0
    end = len(data)
    number = 0
    while pos + COMPACT_TRACE_HEADER.size <= end:
        marker = _U32.unpack_from(data, pos)[0]
        if marker == NO_ID:
            return None
        top, htype = marker >> 24, (marker >> 16) & 0xFF
        if top == 0xC0 and htype in (PERFINFO32, PERFINFO64):
            _v, size, _o, _g, raw = PERFINFO_TRACE_HEADER.unpack_from(data, pos)
        elif top == 0xC0 and htype in (SYSTEM32, SYSTEM64, COMPACT32, COMPACT64):
            _v, size, _o, _g, _t, _p, raw = COMPACT_TRACE_HEADER.unpack_from(data, pos)
        elif top == 0xC0 and htype in (EVENT32, EVENT64, FULL32, FULL64, INSTANCE32, INSTANCE64):
            size, raw = marker & 0xFFFF, _U64.unpack_from(data, pos + _TIME_STAMP_AT)[0]
        else:
            return 0 if number >= skip else None
        if number >= skip:
            return raw
        if size == 0:
            return None
        pos += (size + 7) & ~7
        number += 1
    return None
