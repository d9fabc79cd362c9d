"""Read an .etl file into normalized :class:`~rpctrace.model.Event` records, in time order.

The work happens in three steps:

1. **Index.**  Walk the buffers in file order (each header says how far the next one is), check
   every size against the file, decompress compressed buffers, and note each buffer's first
   timestamp.  Damage found here stops the walk at the damaged buffer.
2. **Merge.**  Each buffer is one processor's events in non-decreasing time order, but buffers of
   different processors interleave in file order, so the buffers are k-way merged by timestamp.
   A buffer is only decoded when the merge reaches its first timestamp, so an uncompressed file is
   streamed: memory holds the buffers that overlap in time, not the file.
3. **Attribute.**  PERFINFO headers carry no thread or process id.  As TraceEvent does, the thread
   comes from the payload where the event has one (StackWalk, CSwitch, FileIo TTID,
   SampledProfile) and the process from the thread table built from Thread Start/DCStart events
   seen so far in time order.  An id that cannot be known stays ``None``.

Record header layouts: ../shared/reference/etl-container-and-thread-ids.md §5.2.
"""

from __future__ import annotations

import heapq
import mmap
import os
import struct
from dataclasses import dataclass, field
from typing import Iterator

from rpctrace.errors import InputError
from rpctrace.knowledge import providers as P
from rpctrace.model import Event
from rpctrace.sources.etl import kernel, manifest
from rpctrace.sources.etl.container import (
    BUFFER_HEADER_SIZE,
    FLAG_BUFFER_LOST,
    FLAG_EVENTS_LOST,
    Buffer,
    Clock,
    ContainerError,
    LogfileHeader,
    inflate_data,
    inflate_or_raise,
    parse_logfile_header,
    read_buffer,
)
from rpctrace.sources.etl.parallel import PARALLEL_MIN_BUFFERS, inflate_data_job, parallel_map

# header types (byte 2 of the marker when byte 3 is 0xC0)
SYSTEM32, SYSTEM64, COMPACT32, COMPACT64 = 0x01, 0x02, 0x03, 0x04
FULL32, INSTANCE32, TIMED, ERROR, WNODE, MESSAGE = 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F
PERFINFO32, PERFINFO64, EVENT32, EVENT64, FULL64, INSTANCE64 = 0x10, 0x11, 0x12, 0x13, 0x14, 0x15

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_SYS = struct.Struct("<HxxHBBIIQ")  # version, size, opcode, group, tid, pid, ts
_PERF = struct.Struct("<HxxHBBQ")  # version, size, opcode, group, ts
_EVH = struct.Struct("<HxxHHIIQ16sHBBBBHQQ16s")  # size, flags, property, tid, pid, ts, guid, id, ver, chan, lvl, op, task, kw, cpu, activity
_FULL = struct.Struct("<HxxBBHIIQ16s")  # size, type(opcode), level, version, tid, pid, ts, guid
_EXT = struct.Struct("<HHHH")

NO_ID = 0xFFFFFFFF
LOGFILE_COMPRESSED_MODE = 0x04000000
_ZERO_GUID = bytes(16)

EXT_RELATED_ACTIVITYID = 0x0001
EXT_STACK_TRACE32 = 0x0005
EXT_STACK_TRACE64 = 0x0006


@dataclass
class ReadStats:
    """What a read found besides events: losses reported by the logger and damage found."""

    buffers: int = 0
    compressed_buffers: int = 0
    records: int = 0
    raw_records: int = 0
    unknown_versions: int = 0
    payload_errors: int = 0
    events_lost: int = 0  # the logger's EventsLost (logfile header)
    buffers_lost: int = 0  # the logger's BuffersLost (logfile header)
    buffers_flagged_events_lost: int = 0
    buffers_flagged_lost: int = 0
    damage: list[InputError] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "buffers": self.buffers,
            "compressed_buffers": self.compressed_buffers,
            "records": self.records,
            "raw_records": self.raw_records,
            "unknown_versions": self.unknown_versions,
            "payload_errors": self.payload_errors,
            "events_lost": self.events_lost,
            "buffers_lost": self.buffers_lost,
            "buffers_flagged_events_lost": self.buffers_flagged_events_lost,
            "buffers_flagged_lost": self.buffers_flagged_lost,
            "damage": [d.one_line() for d in self.damage],
        }


@dataclass(slots=True)
class _Slot:
    """A buffer waiting to be (or being) merged."""

    first_raw: int
    index: int
    offset: int
    cpu: int
    buffer: Buffer | None  # kept only for compressed buffers (decompressed once, at index time)


class EtlReader:
    """Reads one .etl file.  ``events()`` yields every record as an :class:`Event`, time ordered.

    With ``keep_going=False`` the first damage raises :class:`InputError` (after the events that
    were already yielded); with ``keep_going=True`` damage is counted in ``stats.damage`` and the
    reader goes on with what it can still read.
    """

    def __init__(self, path: str | os.PathLike, keep_going: bool = False):
        self.path = os.fspath(path)
        self.keep_going = keep_going
        self.stats = ReadStats()
        self._deferred: InputError | None = None
        self._file = None
        self._view = None
        try:
            self._file = open(self.path, "rb")
            self.size = os.fstat(self._file.fileno()).st_size
        except OSError as exc:
            raise InputError(self.path, f"cannot open: {exc.strerror or exc}") from None
        if self.size == 0:
            self.close()
            raise InputError(self.path, "the file is empty, not an ETL trace", offset=0)
        self._view = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            self.header = self._read_header()
        except InputError:
            self.close()
            raise
        if self.header.log_file_mode & LOGFILE_COMPRESSED_MODE:
            # Compressed-mode loggers name their algorithm in buffer 0's State (+0x2C): 3 is
            # plain LZ77 Xpress, the only one seen in real files; 2 (LZNT1) and 4 (Xpress
            # Huffman) are defined but rpctrace does not decode them (GUESS from ntwmi.h/snail).
            algorithm = _U32.unpack_from(self._view, 0x2C)[0] & 0xFFFF
            if algorithm in (2, 4):
                name = "LZNT1" if algorithm == 2 else "Xpress Huffman"
                self.close()
                raise InputError(self.path, f"buffers are compressed with {name}, which rpctrace cannot decode", offset=0x2C)
        self.pointer_size = self.header.pointer_size
        self.clock = Clock(self.header)
        self.stats.events_lost = self.header.events_lost
        self.stats.buffers_lost = self.header.buffers_lost

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        if self._view is not None:
            try:
                self._view.close()
            except BufferError:  # a memoryview still alive; the GC will release it
                pass
            self._view = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "EtlReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ damage

    def _damage(self, message: str, offset: int) -> None:
        err = InputError(self.path, message, offset=offset)
        if not self.keep_going:
            raise err
        self.stats.damage.append(err)

    # ------------------------------------------------------------------ header

    def _read_header(self) -> LogfileHeader:
        view = self._view
        try:
            buf0 = read_buffer(view, 0, 0, self.size)
        except ContainerError as exc:
            raise InputError(self.path, f"not an ETL trace: {exc.message}", offset=exc.offset) from None
        data = buf0.data
        if len(data) < 0x20:
            raise InputError(self.path, "not an ETL trace: buffer 0 holds no logfile header", offset=BUFFER_HEADER_SIZE)
        marker = _U32.unpack_from(data, 0)[0]
        htype = (marker >> 16) & 0xFF
        if marker >> 24 != 0xC0 or htype not in (SYSTEM32, SYSTEM64):
            raise InputError(
                self.path, f"not an ETL trace: first record marker 0x{marker:08x} is not a logfile header",
                offset=BUFFER_HEADER_SIZE,
            )
        _ver, size, opcode, group, tid, pid, raw_ts = _SYS.unpack_from(data, 0)
        if group != 0 or opcode != 0:
            raise InputError(self.path, "not an ETL trace: first record is not the logfile header", offset=BUFFER_HEADER_SIZE)
        if size < 0x20 or size > len(data):
            raise InputError(self.path, f"logfile header record has an impossible size {size}", offset=BUFFER_HEADER_SIZE)
        try:
            return parse_logfile_header(data[0x20:size], 4 if htype == SYSTEM32 else 8, raw_ts, tid, pid)
        except (ValueError, struct.error) as exc:
            raise InputError(self.path, f"bad logfile header: {exc}", offset=BUFFER_HEADER_SIZE + 0x20) from None

    def header_event(self) -> Event:
        """The logfile header as an event record (what ``rpctrace events`` prints first)."""
        h = self.header
        return Event(self.clock(h.raw_ts), h.pid, h.tid, 0, P.EVENT_TRACE, 0, 0, 2, "trace.header", h.fields())

    # ------------------------------------------------------------------ index

    def _index(self) -> list[_Slot]:
        view, size = self._view, self.size
        slots: list[_Slot] = []
        offset = 0
        index = 0
        buffers: list[Buffer] = []
        compressed: list[Buffer] = []
        while offset + BUFFER_HEADER_SIZE <= size:
            if _U32.unpack_from(view, offset)[0] == 0 and index > 0:
                break  # preallocated tail of a file that was not filled
            try:
                buf = read_buffer(view, offset, index, size, inflate=False)
            except ContainerError as exc:
                # Found before any event is merged: in strict mode the events of the buffers
                # before the damage are still delivered, and the error is raised after them.
                self._defer_damage(exc.message, exc.offset)
                break
            self.stats.buffers += 1
            if buf.compressed:
                self.stats.compressed_buffers += 1
                compressed.append(buf)
            if buf.flags & FLAG_EVENTS_LOST:
                self.stats.buffers_flagged_events_lost += 1
            if buf.flags & FLAG_BUFFER_LOST:
                self.stats.buffers_flagged_lost += 1
            buffers.append(buf)
            offset += buf.size
            index += 1
        damaged_at = self._inflate(compressed)
        for buf in buffers:
            if damaged_at is not None and buf.index >= damaged_at:
                break
            first = _first_timestamp(buf.data, 1 if buf.index == 0 else 0)
            if first is not None:
                # uncompressed buffers are read again when merged, so only compressed data stays
                slots.append(_Slot(first, buf.index, buf.offset, buf.cpu, buf if buf.compressed else None))
        if 0 < size - offset < BUFFER_HEADER_SIZE and not self.stats.damage and self._deferred is None:
            self._defer_damage(f"{size - offset} trailing bytes are too few for a buffer", offset)
        return slots

    def _inflate(self, buffers: list[Buffer]) -> int | None:
        """Decompress compressed buffers, on both cores when there are enough to pay for it.

        Pure-Python LZ77 is the slowest step of reading a compressed trace, and buffers are
        independent, so a process pool nearly halves it on this project's 2-core machines.
        Returns the index of the first buffer that failed (strict mode stops there), or None.
        """
        if not buffers:
            return None
        jobs = [(b.data, b.inflated_size) for b in buffers]
        results = parallel_map(inflate_data_job, jobs) if len(buffers) >= PARALLEL_MIN_BUFFERS else None
        if results is None:
            results = [inflate_data(*job) for job in jobs]
        failed = None
        for buf, result in zip(buffers, results):
            try:
                buf.data = inflate_or_raise(buf, result)
            except ContainerError as exc:
                buf.data = b""
                if self.keep_going:
                    self.stats.damage.append(InputError(self.path, exc.message, offset=exc.offset))
                elif failed is None:
                    self._deferred = InputError(self.path, exc.message, offset=exc.offset)
                    failed = buf.index
        return failed

    def _defer_damage(self, message: str, offset: int) -> None:
        err = InputError(self.path, message, offset=offset)
        if self.keep_going:
            self.stats.damage.append(err)
        else:
            self._deferred = err

    # ------------------------------------------------------------------ events

    def events(self, include_header: bool = True) -> Iterator[Event]:
        """Every record of the file as an event, in time order (ties: file order)."""
        if self._view is None:
            raise InputError(self.path, "reader is closed")
        if include_header:
            self.stats.records += 1
            yield self.header_event()
        slots = self._index()
        slots.sort(key=lambda s: (s.first_raw, s.index))
        heap: list = []
        nxt = 0
        seq = 0
        while heap or nxt < len(slots):
            while nxt < len(slots) and (not heap or slots[nxt].first_raw <= heap[0][0]):
                slot = slots[nxt]
                nxt += 1
                records = self._decode_slot(slot)
                if records:
                    heapq.heappush(heap, (records[0][0], seq, 0, records))
                    seq += 1
            if not heap:
                continue
            raw, s, i, records = heap[0]
            limit = slots[nxt].first_raw if nxt < len(slots) else None
            second = min(heap[1][0], heap[2][0]) if len(heap) > 2 else (heap[1][0] if len(heap) > 1 else None)
            if second is not None and (limit is None or second < limit):
                limit = second
            n = len(records)
            # emit a run from this buffer while it is not later than any other candidate
            while True:
                self.stats.records += 1
                yield records[i][1]
                i += 1
                if i >= n:
                    heapq.heappop(heap)
                    break
                nraw = records[i][0]
                if limit is not None and nraw >= limit:
                    # another buffer may hold an earlier (or equally early) event: back to the heap
                    heapq.heapreplace(heap, (nraw, s, i, records))
                    break
        if self._deferred is not None:
            raise self._deferred

    def _decode_slot(self, slot: _Slot) -> list[tuple[int, Event]]:
        buf = slot.buffer
        if buf is None:
            try:
                buf = read_buffer(self._view, slot.offset, slot.index, self.size)
            except ContainerError as exc:  # pragma: no cover - indexed before, so it read once
                self._damage(exc.message, exc.offset)
                return []
        slot.buffer = None  # let compressed data go once decoded
        return self._decode_buffer(buf, skip=1 if slot.index == 0 else 0)

    def _decode_buffer(self, buf: Buffer, skip: int = 0) -> list[tuple[int, Event]]:
        """Decode the records of one buffer into (raw timestamp, event) pairs."""
        data = buf.data
        end = len(data)
        cpu = buf.cpu
        ptr = self.pointer_size
        clock = self.clock
        ident = clock.identity_offset
        out: list[tuple[int, Event]] = []
        append = out.append
        pos = 0
        number = 0
        decode_kernel = self._kernel_event
        decode_evh = self._event_header_event
        while pos + 4 <= end:
            marker = _U32.unpack_from(data, pos)[0]
            if marker == NO_ID:
                break  # 0xFF fill: end of the records
            top = marker >> 24
            htype = (marker >> 16) & 0xFF
            if top == 0xC0 and (htype == PERFINFO64 or htype == PERFINFO32 or htype == SYSTEM64
                                or htype == SYSTEM32 or htype == COMPACT64 or htype == COMPACT32):
                if pos + 0x10 > end:
                    self._record_damage(buf, pos, number, "truncated record header")
                    break
                if htype >= PERFINFO32:
                    version, size, opcode, group, raw = _PERF.unpack_from(data, pos)
                    tid = pid = None
                    hsize = 0x10
                else:
                    if pos + 0x18 > end:
                        self._record_damage(buf, pos, number, "truncated record header")
                        break
                    version, size, opcode, group, tid, pid, raw = _SYS.unpack_from(data, pos)
                    hsize = 0x20 if htype <= SYSTEM64 else 0x18
                    if tid == NO_ID:
                        tid = None
                    if pid == NO_ID:
                        pid = None
                if version & 0x8000:
                    hsize += 8
                if version & 0x0700:
                    hsize += 8 * ((version & 0x0700) >> 8)
                if size < hsize or pos + size > end:
                    self._record_damage(buf, pos, number, f"record size {size} does not fit (header {hsize}, {end - pos} left)")
                    break
                if number >= skip:
                    ts = raw + ident if ident is not None else clock(raw)
                    ev = decode_kernel(data, pos + hsize, pos + size, group, opcode, version & 0xFF, ts, pid, tid, cpu, ptr)
                    append((raw, ev))
            elif top == 0xC0 and (htype == EVENT64 or htype == EVENT32):
                size = marker & 0xFFFF
                if size < 0x50 or pos + size > end:
                    self._record_damage(buf, pos, number, f"event record size {size} does not fit ({end - pos} left)")
                    break
                if number >= skip:
                    ev, raw = decode_evh(data, pos, size, cpu, ptr, buf, number)
                    append((raw, ev))
            elif top == 0xC0 and htype in (FULL32, FULL64, INSTANCE32, INSTANCE64):
                size = marker & 0xFFFF
                hsize = 0x30 if htype in (FULL32, FULL64) else 0x48
                if size < hsize or pos + size > end:
                    self._record_damage(buf, pos, number, f"trace record size {size} does not fit ({end - pos} left)")
                    break
                if number >= skip:
                    append(self._classic_event(data, pos, size, hsize, cpu))
            elif (top == 0xC0 and htype in (TIMED, ERROR, WNODE)) or (top & 0xF0) == 0x90:
                size = marker & 0xFFFF
                if size < 8 or pos + size > end:
                    self._record_damage(buf, pos, number, f"record size {size} does not fit ({end - pos} left)")
                    break
                if number >= skip:
                    append(self._opaque_event(data, pos, size, htype if top == 0xC0 else MESSAGE, cpu, out))
            else:
                self._record_damage(buf, pos, number, f"unknown record marker 0x{marker:08x}")
                break
            number += 1
            pos += (size + 7) & ~7
        return out

    def _record_damage(self, buf: Buffer, pos: int, number: int, message: str) -> None:
        where = buf.data_offset + pos if not buf.compressed else buf.offset
        extra = f" (decompressed byte {pos})" if buf.compressed else ""
        self._damage(f"buffer {buf.index}, record {number}: {message}{extra}", where)

    # ------------------------------------------------------------------ per header type

    def _kernel_event(self, data, pos, end, group, opcode, version, ts, pid, tid, cpu, ptr) -> Event:
        provider = P.kernel_group_guid(group, opcode)
        decoder = kernel.DECODERS.get(provider)
        if decoder is not None:
            try:
                kind, fields, ppid, ptid = decoder(data, pos, end, ptr, version, opcode)
            except kernel.NotDecoded:
                return self._raw(ts, pid, tid, cpu, provider, 0, opcode, version, data, pos, end, None)
            except (kernel.PayloadError, struct.error, IndexError, ValueError, KeyError) as exc:
                return self._raw(ts, pid, tid, cpu, provider, 0, opcode, version, data, pos, end, str(exc))
            if ppid != kernel.FROM_HEADER:
                pid = ppid
            if ptid != kernel.FROM_HEADER:
                tid = ptid
            if kind == "stack":
                fields["event_ts"] = self.clock(fields["event_ts"])
            return Event(ts, pid, tid, cpu, provider, 0, opcode, version, kind, fields)
        return self._raw(ts, pid, tid, cpu, provider, 0, opcode, version, data, pos, end, None)

    def _raw(self, ts, pid, tid, cpu, provider, eid, opcode, version, data, pos, end, error, extra=None) -> Event:
        self.stats.raw_records += 1
        fields = {"data": bytes(data[pos:end]), "length": end - pos}
        if error:
            self.stats.payload_errors += 1
            fields["error"] = error
        if extra:
            fields.update(extra)
        return Event(ts, pid, tid, cpu, provider, eid, opcode, version, "raw", fields)

    def _event_header_event(self, data, pos, size, cpu, ptr, buf, number):
        (_size, flags, _prop, tid, pid, raw, guid, eid, version, _chan, level, opcode, task, keyword, _cpu_time,
         activity) = _EVH.unpack_from(data, pos)
        ts = self.clock(raw)
        provider = manifest.guid_le(guid)
        if tid == NO_ID:
            tid = None
        if pid == NO_ID:
            pid = None
        end = pos + size
        off = pos + 0x50
        extra: dict = {}
        stack = None
        if flags & 0x0001:  # EXTENDED_INFO: items precede the user data
            for _ in range(64):
                if off + 8 > end:
                    self._record_damage(buf, off, number, "extended data item overruns its record")
                    break
                item_size, ext_type, linkage, data_size = _EXT.unpack_from(data, off)
                if item_size < 8 or data_size > item_size - 8 or off + item_size > end:
                    self._record_damage(buf, off, number, f"bad extended data item (size {item_size}, data {data_size})")
                    off = end
                    break
                body = off + 8
                if ext_type == EXT_RELATED_ACTIVITYID and data_size >= 16:
                    extra["related_activity_id"] = manifest.guid_le(data[body : body + 16])
                elif ext_type == EXT_STACK_TRACE64 and data_size >= 8:
                    count = (data_size - 8) // 8
                    stack = struct.unpack_from(f"<{count}Q", data, body + 8)
                elif ext_type == EXT_STACK_TRACE32 and data_size >= 8:
                    count = (data_size - 8) // 4
                    stack = struct.unpack_from(f"<{count}I", data, body + 8)
                off += item_size
                if not linkage & 1:
                    break
        if activity != _ZERO_GUID:
            extra["activity_id"] = manifest.guid_le(activity)
        if provider in manifest.PROVIDERS:
            try:
                kind, fields = manifest.decode(provider, eid, version, data, off, end, ptr)
            except manifest.UnknownEvent as exc:
                if "version" in str(exc):
                    self.stats.unknown_versions += 1
                ev = self._raw(ts, pid, tid, cpu, provider, eid, opcode, version, data, off, end, None, extra)
                ev.fields["note"] = str(exc)
                return (ev._replace(stack=stack) if stack else ev), raw
            except (kernel.PayloadError, struct.error, IndexError, ValueError) as exc:
                ev = self._raw(ts, pid, tid, cpu, provider, eid, opcode, version, data, off, end, str(exc), extra)
                return (ev._replace(stack=stack) if stack else ev), raw
            fields.update(extra)
            return Event(ts, pid, tid, cpu, provider, eid, opcode, version, kind, fields, stack), raw
        extra["task"] = task
        extra["keyword"] = keyword
        extra["level"] = level
        ev = self._raw(ts, pid, tid, cpu, provider, eid, opcode, version, data, off, end, None, extra)
        return (ev._replace(stack=stack) if stack else ev), raw

    def _classic_event(self, data, pos, size, hsize, cpu):
        _size, opcode, level, version, tid, pid, raw, guid = _FULL.unpack_from(data, pos)
        extra = {"level": level}
        if hsize == 0x48:
            iid, parent_iid = struct.unpack_from("<II", data, pos + 0x30)
            extra.update(instance_id=iid, parent_instance_id=parent_iid,
                         parent_guid=manifest.guid_le(data[pos + 0x38 : pos + 0x48]))
        ts = self.clock(raw)
        return raw, self._raw(ts, None if pid == NO_ID else pid, None if tid == NO_ID else tid, cpu,
                              manifest.guid_le(guid), 0, opcode, version, data, pos + hsize, pos + size, None, extra)

    def _opaque_event(self, data, pos, size, htype, cpu, out):
        """Records whose header rpctrace does not decode (WPP messages, timed, error, WNODE).

        They keep their place in time (the previous record's timestamp: these headers do not
        always carry one) and their bytes, so nothing is dropped and counts stay right.
        """
        raw = out[-1][0] if out else 0
        ts = self.clock(raw) if out else self.clock(self.header.raw_ts)
        return raw, self._raw(ts, None, None, cpu, P.NULL, 0, 0, 0, data, pos, pos + size, None,
                              {"header_type": htype})


def _first_timestamp(data: bytes, skip: int) -> int | None:
    """Raw timestamp of the first record (after ``skip`` records) of a buffer, if it has one."""
    pos = 0
    end = len(data)
    number = 0
    while pos + 0x18 <= end:
        marker = _U32.unpack_from(data, pos)[0]
        if marker == NO_ID:
            return None
        top, htype = marker >> 24, (marker >> 16) & 0xFF
        if top == 0xC0 and htype in (PERFINFO32, PERFINFO64):
            size, raw = _U16.unpack_from(data, pos + 4)[0], _U64.unpack_from(data, pos + 8)[0]
        elif top == 0xC0 and htype in (SYSTEM32, SYSTEM64, COMPACT32, COMPACT64):
            size, raw = _U16.unpack_from(data, pos + 4)[0], _U64.unpack_from(data, pos + 16)[0]
        elif top == 0xC0 and htype in (EVENT32, EVENT64, FULL32, FULL64, INSTANCE32, INSTANCE64):
            size, raw = marker & 0xFFFF, _U64.unpack_from(data, pos + 16)[0]
        else:
            return 0 if number >= skip else None
        if number >= skip:
            return raw
        if size == 0:
            return None
        pos += (size + 7) & ~7
        number += 1
    return None


def read_etl(path: str | os.PathLike, keep_going: bool = False) -> Iterator[Event]:
    """Convenience: every event of one file, time ordered (the reader closes at the end)."""
    with EtlReader(path, keep_going=keep_going) as reader:
        yield from reader.events()
