"""The ETL container: buffers, record headers and the logfile header, written from the documented layout.

Why this module exists: no public .etl file holds kernel ALPC, Microsoft-Windows-RPC or registry
events, so rpctrace writes its own.  Everything here follows
``shared/reference/etl-container-and-thread-ids.md`` (§5, "what a writer must do so other parsers
read its files"); it never looks at rpctrace's reader, so reader and writer check each other.

What a written file looks like (§5.5 checklist):

* Buffer 0 (``BufferType`` 4 HEADER, ``BufferFlag`` 0x01) holds only the logfile header record:
  a SYSTEM header, group 0 / opcode 0, version 2, then TRACE_LOGFILE_HEADER and the two names.
  It is written last (the header carries ``BuffersWritten`` and ``EndTime``) into space reserved
  at offset 0.
* Buffers 1..N all have the same ``BufferSize`` (unless compressed, see below), BufferType 0,
  ``ProcessorIndex`` = the CPU whose events they hold, flag 0x20 (PROC_INDEX), 0x21 on the last
  buffer of each CPU.  ``SavedOffset`` = ``CurrentOffset`` = ``Offset`` = 0x48 + the sum of the
  8-byte aligned record sizes; the rest is 0xFF.
* Records are 8-byte aligned (the padding is zeros and is not counted in the record's Size).
* Every record timestamp is raw QPC with ``PerfFreq`` 10,000,000 and ``ReservedFlags`` 1, so one
  QPC tick is one 100 ns FILETIME tick; ``StartTime`` is the FILETIME of the logfile header
  record's own timestamp.

Per-CPU buffering: events are handed to :class:`EtlWriter` with the CPU they ran on, kept in a
per-CPU pending list, sorted by time when drained (timestamps never decrease inside a buffer,
nor across one CPU's buffers) and flushed to the file when a CPU's buffer is full, so file order
is *not* time order - as in real files, where a consumer must merge buffers by timestamp.

32-bit loggers: the same header structures with the 32-bit type codes (SYSTEM32 0x01,
COMPACT32 0x03, PERFINFO32 0x10, EVENT_HEADER32 0x12); none of them contains a pointer, so their
layout is the 64-bit one.  **GUESS** (dissect.etl parses both with one structure each).  Only the
payload's pointer fields and the logfile header's two name pointers change size.

Compression (``compress=True``, off by default) - **GUESS** layout, chosen to match what
dissect.etl decodes: the record bytes of a buffer (without the 0xFF fill) are compressed with
plain LZ77 Xpress (``rpctrace.synth.xpress``); the buffer on disk is the 0x48-byte header and
exactly the compressed stream, nothing after it (dissect hands everything up to ``BufferSize``
to its decompressor, and trailing fill bytes make it fail); ``BufferSize`` = 0x48 + the
compressed length (the stride to the next buffer, so buffers are not 8-aligned in the file),
``SavedOffset``/``CurrentOffset``/``Offset`` = 0x48 + the *uncompressed* record bytes,
``BufferFlag`` |= 0x40; the logfile header's LogFileMode gets EVENT_TRACE_COMPRESSED_MODE
(0x04000000).  Buffer 0 is never compressed.
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from operator import itemgetter
from pathlib import Path
from typing import Any, Callable, Sequence

# --------------------------------------------------------------------------- constants

PERF_FREQ = 10_000_000  # QPC frequency written to the header; 1 tick = 100 ns
CLOCK_QPC = 1  # ReservedFlags: the session clock is QueryPerformanceCounter

# Header types (byte 2 of the marker); byte 3 is 0xC0 for all of them.
HDR_SYSTEM32, HDR_SYSTEM64 = 0x01, 0x02
HDR_COMPACT32, HDR_COMPACT64 = 0x03, 0x04
HDR_PERFINFO32, HDR_PERFINFO64 = 0x10, 0x11
HDR_EVENT32, HDR_EVENT64 = 0x12, 0x13
#: EVENT_TRACE_HEADER ("full" classic header) of 32-bit and 64-bit writers (TRACE_HEADER_TYPE_
#: FULL_HEADER32/64); what a classic provider, or a relogger, writes for an event with a GUID
HDR_FULL32, HDR_FULL64 = 0x0A, 0x14
MARKER_FLAGS = 0xC0

BUFFER_HEADER_SIZE = 0x48
BUFFER_TYPE_GENERIC = 0
BUFFER_TYPE_HEADER = 4
BUFFER_FLAG_FLUSH_MARKER = 0x01
BUFFER_FLAG_EVENTS_LOST = 0x02
BUFFER_FLAG_BUFFER_LOST = 0x04
BUFFER_FLAG_PROC_INDEX = 0x20
BUFFER_FLAG_COMPRESSED = 0x40
BUFFER_STATE_FLUSH = 3

EVENT_HEADER_FLAG_EXTENDED_INFO = 0x0001
EXT_RELATED_ACTIVITYID = 1
EXT_STACK_TRACE32 = 5
EXT_STACK_TRACE64 = 6

EVENT_TRACE_FILE_MODE_SEQUENTIAL = 0x00000001
EVENT_TRACE_COMPRESSED_MODE = 0x04000000

# --------------------------------------------------------------------------- binary layouts
# Format strings (without byte order) are exported so that hot paths elsewhere can fuse a record
# header and a fixed payload into one precompiled struct; the layouts live only here.

#: WMI_BUFFER_HEADER, 0x48 bytes: BufferSize, SavedOffset, CurrentOffset, ReferenceCount,
#: TimeStamp, SequenceNumber, ClockType/Frequency, ProcessorIndex, LoggerId, State, Offset,
#: BufferFlag, BufferType, 16 unused bytes.
BUFFER_HEADER = struct.Struct("<IIIiqqQHHIIHH16x")
assert BUFFER_HEADER.size == BUFFER_HEADER_SIZE

#: SYSTEM_TRACE_HEADER (0x20): Version, type, 0xC0, Size, Opcode, Group, TID, PID, TimeStamp,
#: KernelTime, UserTime.
SYSTEM_HEADER_FMT = "HBBHBBIIQII"
#: COMPACT header (0x18): the SYSTEM header without Kernel/UserTime.
COMPACT_HEADER_FMT = "HBBHBBIIQ"
#: PERFINFO_TRACE_HEADER (0x10): no thread or process id.
PERFINFO_HEADER_FMT = "HBBHBBQ"
#: EVENT_HEADER as stored in a file (0x50): Size, type, 0xC0, Flags, EventProperty, TID, PID,
#: TimeStamp, ProviderId (bytes_le), Id, Version, Channel, Level, Opcode, Task, Keyword,
#: ProcessorTime (Kernel/User u32 pair as one u64), ActivityId (bytes_le).
EVENT_HEADER_FMT = "HBBHHIIQ16sHBBBBHQQ16s"

#: EVENT_TRACE_HEADER (0x30): Size, HeaderType, 0xC0, Class.Type (opcode), Class.Level,
#: Class.Version, ThreadId, ProcessId, TimeStamp, Guid (bytes_le), KernelTime, UserTime.
CLASSIC_HEADER_FMT = "HBBBBHIIQ16sII"

SYSTEM_HEADER = struct.Struct("<" + SYSTEM_HEADER_FMT)
CLASSIC_HEADER = struct.Struct("<" + CLASSIC_HEADER_FMT)
assert CLASSIC_HEADER.size == 0x30
COMPACT_HEADER = struct.Struct("<" + COMPACT_HEADER_FMT)
PERFINFO_HEADER = struct.Struct("<" + PERFINFO_HEADER_FMT)
EVENT_HEADER = struct.Struct("<" + EVENT_HEADER_FMT)
assert (SYSTEM_HEADER.size, COMPACT_HEADER.size, PERFINFO_HEADER.size, EVENT_HEADER.size) == (
    0x20,
    0x18,
    0x10,
    0x50,
)

#: EVENT_HEADER_EXTENDED_DATA_ITEM header: ItemSize, ExtType, Linkage, DataSize.
EXT_ITEM_HEADER = struct.Struct("<HHHH")

_ZEROS = bytes(8)


def pad8(data: bytes) -> bytes:
    """Append zeros up to the next multiple of 8: every record starts 8-byte aligned."""
    r = len(data) & 7
    return data + _ZEROS[: 8 - r] if r else data


class HeaderTypes:
    """The header type codes for one pointer size (32-bit loggers use their own codes)."""

    __slots__ = ("pointer_size", "system", "compact", "perfinfo", "event")

    def __init__(self, pointer_size: int):
        if pointer_size not in (4, 8):
            raise ValueError(f"pointer size must be 4 or 8, not {pointer_size}")
        self.pointer_size = pointer_size
        wide = pointer_size == 8
        self.system = HDR_SYSTEM64 if wide else HDR_SYSTEM32
        self.compact = HDR_COMPACT64 if wide else HDR_COMPACT32
        self.perfinfo = HDR_PERFINFO64 if wide else HDR_PERFINFO32
        self.event = HDR_EVENT64 if wide else HDR_EVENT32


# --------------------------------------------------------------------------- record builders
# General (not hot-path) builders.  Each returns the record padded to 8 bytes.


def system_record(
    types: HeaderTypes,
    group: int,
    opcode: int,
    version: int,
    tid: int,
    pid: int,
    ts: int,
    payload: bytes,
    kernel_time: int = 0,
    user_time: int = 0,
) -> bytes:
    """A SYSTEM_TRACE_HEADER record (kernel events that carry their thread and process)."""
    size = 0x20 + len(payload)
    head = SYSTEM_HEADER.pack(
        version, types.system, MARKER_FLAGS, size, opcode, group, tid, pid, ts, kernel_time, user_time
    )
    return pad8(head + payload)


def compact_record(
    types: HeaderTypes, group: int, opcode: int, version: int, tid: int, pid: int, ts: int, payload: bytes
) -> bytes:
    """A COMPACT header record (a SYSTEM header without the CPU times)."""
    size = 0x18 + len(payload)
    head = COMPACT_HEADER.pack(version, types.compact, MARKER_FLAGS, size, opcode, group, tid, pid, ts)
    return pad8(head + payload)


def perfinfo_record(types: HeaderTypes, group: int, opcode: int, version: int, ts: int, payload: bytes) -> bytes:
    """A PERFINFO_TRACE_HEADER record: no thread or process id (rundown, StackWalk)."""
    size = 0x10 + len(payload)
    head = PERFINFO_HEADER.pack(version, types.perfinfo, MARKER_FLAGS, size, opcode, group, ts)
    return pad8(head + payload)


def classic_record(
    header_type: int, guid_le: bytes, opcode: int, level: int, version: int, tid: int, pid: int, ts: int,
    payload: bytes, kernel_time: int = 0, user_time: int = 0,
) -> bytes:
    """A classic EVENT_TRACE_HEADER record (``HDR_FULL32``/``HDR_FULL64``): an event named by
    its provider GUID, opcode and version, as TraceEvent-era providers log them (and as Windows
    7-era traces hold Process, Thread and Image events under the kernel GUIDs).  The header does
    not say the payload's pointer size; that is the writer's, whatever the logger's is."""
    size = 0x30 + len(payload)
    head = CLASSIC_HEADER.pack(size, header_type, MARKER_FLAGS, opcode, level, version, tid, pid, ts, guid_le,
                               kernel_time, user_time)
    return pad8(head + payload)


def ext_item(ext_type: int, data: bytes, more: bool) -> bytes:
    """One EVENT_HEADER extended data item; ``more`` sets the Linkage bit (another item follows)."""
    padded = pad8(data)
    return EXT_ITEM_HEADER.pack(8 + len(padded), ext_type, 1 if more else 0, len(data)) + padded


def ext_related_activity(guid_le: bytes) -> tuple[int, bytes]:
    """RELATED_ACTIVITYID item (type 1): the activity this one was started from."""
    return (EXT_RELATED_ACTIVITYID, guid_le)


def ext_stack_trace(match_id: int, frames: Sequence[int], pointer_size: int = 8) -> tuple[int, bytes]:
    """STACK_TRACE64 (type 6) or STACK_TRACE32 (type 5) item: MatchId then the return addresses."""
    if pointer_size == 8:
        return (EXT_STACK_TRACE64, struct.pack(f"<Q{len(frames)}Q", match_id, *frames))
    return (EXT_STACK_TRACE32, struct.pack(f"<Q{len(frames)}I", match_id, *frames))


def event_record(
    types: HeaderTypes,
    provider_le: bytes,
    event_id: int,
    version: int,
    channel: int,
    level: int,
    opcode: int,
    task: int,
    keyword: int,
    tid: int,
    pid: int,
    ts: int,
    activity_le: bytes,
    payload: bytes,
    ext: Sequence[tuple[int, bytes]] = (),
    processor_time: int = 0,
) -> bytes:
    """An EVENT_HEADER record (manifest providers such as Microsoft-Windows-RPC).

    ``provider_le`` and ``activity_le`` are GUIDs in Windows (``bytes_le``) order.  Extended data
    items, when given, sit between the 0x50-byte header and the user data; Flags gets
    EXTENDED_INFO.
    """
    items = b"".join(ext_item(t, d, i + 1 < len(ext)) for i, (t, d) in enumerate(ext))
    flags = EVENT_HEADER_FLAG_EXTENDED_INFO if ext else 0
    size = 0x50 + len(items) + len(payload)
    head = EVENT_HEADER.pack(
        size,
        types.event,
        MARKER_FLAGS,
        flags,
        0,
        tid,
        pid,
        ts,
        provider_le,
        event_id,
        version,
        channel,
        level,
        opcode,
        task,
        keyword,
        processor_time,
        activity_le,
    )
    return pad8(head + items + payload)


# --------------------------------------------------------------------------- logfile header

#: TRACE_LOGFILE_HEADER up to the time zone, 64-bit: BufferSize, Version, ProviderVersion,
#: NumberOfProcessors, EndTime, TimerResolution, MaximumFileSize, LogFileMode, BuffersWritten,
#: StartBuffers, PointerSize, EventsLost, CpuSpeedInMHz, LoggerName ptr, LogFileName ptr.
_LFH_HEAD = {8: struct.Struct("<IIIIQIIIIIIIIQQ"), 4: struct.Struct("<IIIIQIIIIIIIIII")}
#: TIME_ZONE_INFORMATION (0xAC): Bias, StandardName[32], StandardDate, StandardBias,
#: DaylightName[32], DaylightDate, DaylightBias.
_TZ = struct.Struct("<i64s16si64s16si")
#: After the time zone: 4 pad bytes, BootTime, PerfFreq, StartTime, ReservedFlags, BuffersLost.
_LFH_TAIL = struct.Struct("<4xQQQII")
assert _LFH_HEAD[8].size == 0x48 and _LFH_HEAD[4].size == 0x40 and _TZ.size == 0xAC and _LFH_TAIL.size == 0x24

LOGFILE_VERSION = 0x0501000A  # bytes 0A 00 01 05: major 10, minor 0, sub 1, subminor 5 (as real files)
TIMER_RESOLUTION = 156250


def logfile_header_payload(
    *,
    pointer_size: int,
    buffer_size: int,
    os_build: int,
    cpus: int,
    end_time: int,
    buffers_written: int,
    events_lost: int,
    cpu_mhz: int,
    boot_time: int,
    start_time: int,
    logger_name: str,
    logfile_name: str,
    log_file_mode: int = EVENT_TRACE_FILE_MODE_SEQUENTIAL,
    max_file_size: int = 0,
    buffers_lost: int = 0,
) -> bytes:
    """TRACE_LOGFILE_HEADER (0x118 bytes on 64-bit, 0x110 on 32-bit) plus the two UTF-16 names.

    ``EventsLost`` counts events the logger discarded (no free buffer to log them in),
    ``BuffersLost`` buffers it could not write to the file, as Windows counts them
    (learn.microsoft.com, Tracelog's "Events Lost" and "Log Buffers Lost").  etl-parser reads
    this header without the 4-byte pad after the time zone, so it takes BuffersLost as the first
    character of LoggerName (reference §5.3): a file with lost buffers gives it a wrong logger
    name, as real ones do.
    """
    head = _LFH_HEAD[pointer_size].pack(
        buffer_size,
        LOGFILE_VERSION,
        os_build,
        cpus,
        end_time,
        TIMER_RESOLUTION,
        max_file_size,
        log_file_mode,
        buffers_written,
        1,  # StartBuffers
        pointer_size,
        events_lost,
        cpu_mhz,
        0,  # LoggerName pointer: not a pointer on >= 6.1, unused by readers
        0,  # LogFileName pointer
    )
    utc = "Coordinated Universal Time".encode("utf-16-le")
    tz = _TZ.pack(0, utc, bytes(16), 0, utc, bytes(16), 0)
    tail = _LFH_TAIL.pack(boot_time, PERF_FREQ, start_time, CLOCK_QPC, buffers_lost)
    names = (logger_name + "\0" + logfile_name + "\0").encode("utf-16-le")
    return head + tz + tail + names


class Clock:
    """Maps the session's QPC clock to FILETIME: wall = StartTime + (qpc - qpc_at_header).

    With PerfFreq = 10 MHz the mapping is exact integer arithmetic, which is what lets the
    ground truth state timestamps to the tick.
    """

    __slots__ = ("start_filetime", "header_qpc")

    def __init__(self, start_filetime: int, header_qpc: int):
        self.start_filetime = start_filetime
        self.header_qpc = header_qpc

    def filetime(self, qpc: int) -> int:
        return self.start_filetime + (qpc - self.header_qpc) * 10_000_000 // PERF_FREQ

    @property
    def boot_time(self) -> int:
        """FILETIME at which the QPC clock read 0."""
        return self.start_filetime - self.header_qpc * 10_000_000 // PERF_FREQ


# --------------------------------------------------------------------------- the writer

_ts_key = itemgetter(0)


class EtlWriter:
    """Writes one .etl file from records handed in per CPU, in any order within a drain window.

    ``add(cpu, ts, record, tag)`` queues a record; ``drain(frontier)`` writes every queued record
    with ``ts <= frontier`` (the caller promises nothing earlier than ``frontier`` will be added
    later) into the CPU's current buffer, flushing full buffers to the file; ``close()`` flushes
    the rest and writes buffer 0.  Tags are opaque: when ``keep_tags`` the tags of written
    records are collected in file order (``written_tags``), and the tags of records in buffers
    that ``drop_buffer(cpu, sequence, first_ts)`` decides to lose are collected in
    ``dropped_tags`` (a CPU's last buffer is never lost).  ``discard_events(cpu, sequence,
    last_ts)``, asked after each buffer is flushed, says how many of the CPU's next records the
    logger discards for want of a free buffer (their tags go to ``dropped_tags`` too).

    Losses are written as Windows writes them: a lost buffer uses up its sequence number (a gap
    a reader sees), counts in the header's BuffersLost and flags the CPU's next buffer
    BUFFER_LOST (**GUESS**: the flag's use is not documented); discarded events count in
    EventsLost and flag the CPU's next buffer EVENTS_LOST.

    The hot path is ``add`` (one tuple append) and the loop in ``_fill`` (one ``len`` and one
    list append per record); buffers are assembled with one ``b"".join`` and written whole.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock,
        pointer_size: int = 8,
        cpus: int = 4,
        buffer_size: int = 0x10000,
        compress: bool = False,
        os_build: int = 17134,
        cpu_mhz: int = 2592,
        logger_name: str = "NT Kernel Logger",
        logfile_name: str = r"C:\Windows\Temp\rpctrace.etl",
        controller_pid: int = 0,
        controller_tid: int = 0,
        logger_id: int = 0xFFFF,
        keep_tags: bool = False,
        drop_buffer: Callable[[int, int, int], bool] | None = None,
        discard_events: Callable[[int, int, int], int] | None = None,
    ):
        if buffer_size % 8 or buffer_size < 0x400:
            raise ValueError("buffer size must be a multiple of 8 and at least 1 KiB")
        self.types = HeaderTypes(pointer_size)
        self.pointer_size = pointer_size
        self.clock = clock
        self.cpus = cpus
        self.buffer_size = buffer_size
        self.capacity = buffer_size - BUFFER_HEADER_SIZE
        self.os_build = os_build
        self.cpu_mhz = cpu_mhz
        self.logger_name = logger_name
        self.logfile_name = logfile_name
        self.controller_pid = controller_pid
        self.controller_tid = controller_tid
        self.logger_id = logger_id
        self.keep_tags = keep_tags
        self.drop_buffer = drop_buffer
        self.discard_events = discard_events
        self._compress: Callable[[bytes], bytes] | None = None
        if compress:
            try:
                from rpctrace.synth.xpress import compress as xpress_compress
            except ImportError as exc:  # pragma: no cover - the module ships with rpctrace
                raise RuntimeError("compress=True needs rpctrace.synth.xpress") from exc
            self._compress = xpress_compress

        self._fh = open(path, "wb")
        self._fh.write(b"\xff" * buffer_size)  # buffer 0, rewritten by close()
        self._fill_bytes = b"\xff" * buffer_size
        #: Per-CPU queues of (ts, record, tag).  The list objects never change, so a hot caller
        #: may append to ``pending[cpu]`` directly instead of calling :meth:`add`.
        self.pending: list[list[tuple[int, bytes, Any]]] = [[] for _ in range(cpus)]
        self._cur: list[list[bytes]] = [[] for _ in range(cpus)]
        self._cur_tags: list[list[Any]] = [[] for _ in range(cpus)]
        self._used = [0] * cpus
        self._last_ts = [0] * cpus
        self._lost_flag = [0] * cpus  # buffer flags the CPU's next buffer gets (losses before it)
        self._discard = [0] * cpus  # records of the CPU still to discard (no free buffer)
        self._seq = 1  # buffer 0 has sequence 0
        self.records_written = 0
        self.records_dropped = 0
        self.buffers_written = 0  # excluding buffer 0
        self.buffers_dropped = 0
        self.events_discarded = 0  # the header's EventsLost
        self.buffer_records_dropped = 0  # records inside lost buffers
        self.bytes_written = buffer_size
        self.written_tags: list[Any] = []
        self.dropped_tags: list[Any] = []
        self.buffer_starts: list[tuple[int, int]] = []  # (cpu, first ts) per written buffer, file order
        self.header_ts = clock.header_qpc
        self.end_qpc = clock.header_qpc
        self.closed = False
        #: called with the number of records written or lost after each :meth:`drain` (progress)
        self.on_drain: Callable[[int], None] | None = None
        #: called with the frontier before each drain, and before closing: writers of records
        #: that depend on time order across CPUs (the stack cache) add them there
        self.before_drain: list[Callable[[int | None], None]] = []
        self.before_close: list[Callable[[], None]] = []

    # -- queueing -------------------------------------------------------------------------
    def add(self, cpu: int, ts: int, record: bytes, tag: Any = None) -> None:
        """Queue one record (already padded to 8 bytes) that ran on ``cpu`` at QPC ``ts``."""
        self.pending[cpu].append((ts, record, tag))

    @property
    def added(self) -> int:
        """Records handed in so far (the logfile header excluded), written, lost or queued."""
        return (self.records_written + self.records_dropped + sum(map(len, self.pending))
                + sum(map(len, self._cur)))

    def drain(self, frontier: int | None = None) -> None:
        """Write every queued record with ``ts <= frontier`` (all of them when ``None``)."""
        for hook in self.before_drain:
            hook(frontier)
        for cpu in range(self.cpus):
            lst = self.pending[cpu]
            if not lst:
                continue
            lst.sort(key=_ts_key)  # stable: same-timestamp records keep their causal order
            if frontier is None:
                ready = lst[:]
                lst.clear()
            else:
                i = bisect_right(lst, frontier, key=_ts_key)
                if i == 0:
                    continue
                ready = lst[:i]
                del lst[:i]
            self._fill(cpu, ready)
        if self.on_drain is not None:
            self.on_drain(self.records_written + self.records_dropped)

    def _drop(self, cpu: int, ts: int, tag) -> None:
        """The logger had no free buffer for this record: it counts it as lost and drops it."""
        self._discard[cpu] -= 1
        self.events_discarded += 1
        self.records_dropped += 1
        self._lost_flag[cpu] |= BUFFER_FLAG_EVENTS_LOST
        self.dropped_tags.append(tag)
        self._last_ts[cpu] = ts

    def _fill(self, cpu: int, items: list[tuple[int, bytes, Any]]) -> None:
        cur = self._cur[cpu]
        tags = self._cur_tags[cpu]
        used = self._used[cpu]
        cap = self.capacity
        if self._last_ts[cpu] > items[0][0]:
            raise ValueError(f"CPU {cpu}: record at {items[0][0]} after {self._last_ts[cpu]} already written")
        discard = self._discard
        for ts, rec, tag in items:
            if discard[cpu]:  # no free buffer: the logger counts the event and drops it
                self._drop(cpu, ts, tag)
                continue
            n = len(rec)
            if used + n > cap:
                if n > cap:
                    raise ValueError(f"record of {n} bytes does not fit a {self.buffer_size}-byte buffer")
                self._used[cpu] = used
                self._flush(cpu, final=False)
                cur = self._cur[cpu]
                tags = self._cur_tags[cpu]
                used = 0
                if discard[cpu]:
                    self._drop(cpu, ts, tag)
                    continue
            cur.append(rec)
            tags.append(tag)
            used += n
            self._last_ts[cpu] = ts
        self._used[cpu] = used

    # -- buffers --------------------------------------------------------------------------
    def _flush(self, cpu: int, final: bool) -> None:
        """Write (or, for a lost buffer, skip) the CPU's current buffer and start a new one."""
        recs = self._cur[cpu]
        tags = self._cur_tags[cpu]
        seq = self._seq
        self._seq += 1
        self._cur[cpu] = []
        self._cur_tags[cpu] = []
        self._used[cpu] = 0
        if not final and self.drop_buffer is not None and self.drop_buffer(cpu, seq, _first_ts(recs[0])):
            # A lost buffer: the logger could not write it.  Its sequence number is used up
            # (a gap a reader can see) and the CPU's next buffer says EVENTS_LOST.
            self.buffers_dropped += 1
            self.records_dropped += len(recs)
            self.buffer_records_dropped += len(recs)
            self._lost_flag[cpu] |= BUFFER_FLAG_BUFFER_LOST
            self.dropped_tags.extend(tags)
            self._discard_after(cpu, seq)
            return
        data = b"".join(recs)
        flags = BUFFER_FLAG_PROC_INDEX | (BUFFER_FLAG_FLUSH_MARKER if final else 0)
        flags |= self._lost_flag[cpu]
        self._lost_flag[cpu] = 0
        filled = BUFFER_HEADER_SIZE + len(data)
        size = self.buffer_size
        if self._compress is not None:
            data = self._compress(data)
            flags |= BUFFER_FLAG_COMPRESSED
            size = BUFFER_HEADER_SIZE + len(data)  # no padding: the stream must end the buffer
        head = BUFFER_HEADER.pack(
            size,
            filled,
            filled,
            0,
            self._last_ts[cpu],
            seq,
            0,
            cpu,
            self.logger_id,
            BUFFER_STATE_FLUSH,
            filled,
            flags,
            BUFFER_TYPE_GENERIC,
        )
        self._fh.write(head + data + self._fill_bytes[: size - BUFFER_HEADER_SIZE - len(data)])
        self.bytes_written += size
        self.buffers_written += 1
        self.records_written += len(recs)
        self.buffer_starts.append((cpu, _first_ts(recs[0])))
        if self.keep_tags:
            self.written_tags.extend(tags)
        if not final:
            self._discard_after(cpu, seq)

    def _discard_after(self, cpu: int, seq: int) -> None:
        if self.discard_events is not None:
            self._discard[cpu] += max(0, self.discard_events(cpu, seq, self._last_ts[cpu]))

    # -- closing --------------------------------------------------------------------------
    def close(self, end_qpc: int) -> dict[str, Any]:
        """Flush everything, write buffer 0 with the logfile header, return the header's values."""
        for hook in self.before_close:
            hook()
        self.drain(None)
        for cpu in range(self.cpus):
            if self._cur[cpu]:
                self._flush(cpu, final=True)
        self.end_qpc = end_qpc
        end_time = self.clock.filetime(end_qpc)
        start_time = self.clock.start_filetime
        buffers_written = self.buffers_written + 1
        mode = EVENT_TRACE_FILE_MODE_SEQUENTIAL | (EVENT_TRACE_COMPRESSED_MODE if self._compress else 0)
        payload = logfile_header_payload(
            pointer_size=self.pointer_size,
            buffer_size=self.buffer_size,
            os_build=self.os_build,
            cpus=self.cpus,
            end_time=end_time,
            buffers_written=buffers_written,
            events_lost=self.events_discarded,
            buffers_lost=self.buffers_dropped,
            cpu_mhz=self.cpu_mhz,
            boot_time=self.clock.boot_time,
            start_time=start_time,
            logger_name=self.logger_name,
            logfile_name=self.logfile_name,
            log_file_mode=mode,
        )
        rec = system_record(
            self.types, 0, 0, 2, self.controller_tid, self.controller_pid, self.header_ts, payload
        )
        filled = BUFFER_HEADER_SIZE + len(rec)
        head = BUFFER_HEADER.pack(
            self.buffer_size,
            filled,
            filled,
            0,
            self.header_ts,
            0,
            0,
            0,
            self.logger_id,
            BUFFER_STATE_FLUSH,
            filled,
            BUFFER_FLAG_FLUSH_MARKER,
            BUFFER_TYPE_HEADER,
        )
        self._fh.seek(0)
        self._fh.write(head + rec + self._fill_bytes[: self.buffer_size - filled])
        self._fh.close()
        self.closed = True
        return {
            "buffer_size": self.buffer_size,
            "version": LOGFILE_VERSION,
            "os_build": self.os_build,
            "cpus": self.cpus,
            "end_time": end_time,
            "timer_resolution": TIMER_RESOLUTION,
            "max_file_size": 0,
            "log_file_mode": mode,
            "buffers_written": buffers_written,
            "pointer_size": self.pointer_size,
            "events_lost": self.events_discarded,
            "cpu_mhz": self.cpu_mhz,
            "boot_time": self.clock.boot_time,
            "perf_freq": PERF_FREQ,
            "start_time": start_time,
            "clock_type": CLOCK_QPC,
            "buffers_lost": self.buffers_dropped,
            "logger_name": self.logger_name,
            "logfile_name": self.logfile_name,
        }

    @property
    def last_ts(self) -> list[int]:
        """Per CPU, the timestamp of the last record written to a buffer."""
        return list(self._last_ts)

    @property
    def record_count(self) -> int:
        """Records in the file, the logfile header included: what a header pass counts."""
        return self.records_written + 1


_TS_AT = {HDR_SYSTEM64: 0x10, HDR_SYSTEM32: 0x10, HDR_COMPACT64: 0x10, HDR_COMPACT32: 0x10,
          HDR_PERFINFO64: 8, HDR_PERFINFO32: 8, HDR_EVENT64: 0x10, HDR_EVENT32: 0x10, HDR_FULL32: 0x10,
          HDR_FULL64: 0x10}  # classic FULL32/FULL64 headers (synth.imageid, kernel events)
_U64 = struct.Struct("<Q")


def _first_ts(rec: bytes) -> int:
    """Timestamp of a record (only used once per buffer, for the order statistics)."""
    return _U64.unpack_from(rec, _TS_AT[rec[2]])[0]
