"""The ETL container: buffers, their headers, and the logfile header record.

An .etl file is a sequence of buffers.  Each starts with a 0x48-byte WMI_BUFFER_HEADER; buffer 0
holds the logfile header record (TRACE_LOGFILE_HEADER behind a SYSTEM header, group 0 opcode 0).
Every other buffer holds the records one processor logged, in non-decreasing time order within the
buffer; across buffers in file order time goes back and forth, so the reader merges them.

Buffers with BufferFlag 0x40 (COMPRESSED, written by Windows 8+ loggers in compressed mode) store
the records as one plain-LZ77 Xpress stream after the header: BufferSize is then the on-disk size
(the stride to the next buffer) and Offset (0x30) is the size the buffer had before compression.

Layouts: :mod:`rpctrace.sources.etl.layouts` (WMI_BUFFER_HEADER, TRACE_LOGFILE_HEADER), from
../shared/reference/etl-container-and-thread-ids.md §5 (offsets checked against the real samples).
Every length read from the file is bounded before use: a hostile file can claim any size, and a
reader must fail with a named offset rather than allocate or loop on its say-so.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from rpctrace.sources.etl.layouts import (
    TIME_ZONE_INFORMATION_SIZE,
    TRACE_LOGFILE_CLOCK,
    TRACE_LOGFILE_HEADER,
    WMI_BUFFER_HEADER,
)
from rpctrace.sources.etl.xpress import XpressError, decompress

if TYPE_CHECKING:
    from typing_extensions import Buffer as ReadableBuffer  # collections.abc.Buffer from Python 3.12

BUFFER_HEADER_SIZE = WMI_BUFFER_HEADER.size  # 0x48

FLAG_FLUSH_MARKER = 0x01
FLAG_EVENTS_LOST = 0x02
FLAG_BUFFER_LOST = 0x04
FLAG_PROC_INDEX = 0x20
FLAG_COMPRESSED = 0x40

BUFFER_TYPE_HEADER = 4

#: Real loggers use 4 KiB .. 16 MiB buffers; anything past this is damage, not a buffer.
MAX_BUFFER_SIZE = 64 * 1024 * 1024


@dataclass(slots=True)
class Buffer:
    """One buffer's header facts and its record bytes (decompressed if it was compressed)."""

    index: int
    offset: int  # file offset of the buffer header
    size: int  # on-disk size (stride to the next buffer)
    cpu: int
    flags: int
    type: int
    #: the record area: the bytes that followed the header, up to the filled offset (a view of the
    #: file when read with ``copy=False``)
    data: bytes | memoryview
    data_offset: int  # file offset of data[0] (for compressed buffers: of the compressed stream)
    compressed: bool = False
    inflated_size: int = 0  # compressed buffers: size of the records once decompressed


@dataclass(slots=True)
class LogfileHeader:
    """The facts of TRACE_LOGFILE_HEADER rpctrace uses (and prints as the `trace.header` record)."""

    pointer_size: int
    buffer_size: int
    version: int
    os_build: int
    cpus: int
    end_time: int
    timer_resolution: int
    max_file_size: int
    log_file_mode: int
    buffers_written: int
    events_lost: int
    cpu_mhz: int
    boot_time: int
    perf_freq: int
    start_time: int
    clock_type: int
    buffers_lost: int
    logger_name: str
    logfile_name: str
    raw_ts: int  # the header record's own timestamp: the clock's zero point for conversion
    tid: int
    pid: int
    extra: dict = field(default_factory=dict)

    def fields(self) -> dict:
        return {
            "buffer_size": self.buffer_size,
            "version": self.version,
            "os_build": self.os_build,
            "cpus": self.cpus,
            "end_time": self.end_time,
            "timer_resolution": self.timer_resolution,
            "max_file_size": self.max_file_size,
            "log_file_mode": self.log_file_mode,
            "buffers_written": self.buffers_written,
            "pointer_size": self.pointer_size,
            "events_lost": self.events_lost,
            "cpu_mhz": self.cpu_mhz,
            "boot_time": self.boot_time,
            "perf_freq": self.perf_freq,
            "start_time": self.start_time,
            "clock_type": self.clock_type,
            "buffers_lost": self.buffers_lost,
            "logger_name": self.logger_name,
            "logfile_name": self.logfile_name,
        }


class ContainerError(Exception):
    """Damage in the container; ``offset`` is the file offset where it was found."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.message = message
        self.offset = offset


def read_buffer(view, offset: int, index: int, file_size: int, inflate: bool = True, copy: bool = True) -> Buffer:
    """Read the buffer whose header starts at ``offset`` of ``view`` (bytes or mmap).

    With ``inflate=False`` a compressed buffer comes back with its compressed stream in ``data``
    (and ``inflated_size`` set), so the caller can decompress many buffers in parallel with
    :func:`inflate_data`.  With ``copy=False`` an uncompressed buffer's ``data`` is a memoryview
    of ``view`` (the caller releases it): indexing a large file reads only what it looks at.
    """
    if offset + BUFFER_HEADER_SIZE > file_size:
        raise ContainerError(
            f"truncated buffer header ({file_size - offset} of {BUFFER_HEADER_SIZE} bytes)", offset
        )
    (size, saved, _current, _ref, _ts, _seq, _clock, proc, _logger, _state, filled, flags, btype) = (
        WMI_BUFFER_HEADER.unpack_from(view, offset)
    )
    if size < BUFFER_HEADER_SIZE or size > MAX_BUFFER_SIZE:
        raise ContainerError(f"buffer {index} has an impossible size {size}", offset)
    if flags & FLAG_PROC_INDEX:
        cpu = proc & 0x07FF
    else:
        cpu = proc & 0xFF  # pre-Windows 8: byte ProcessorNumber, byte Alignment
    compressed = bool(flags & FLAG_COMPRESSED)
    end = offset + size
    if end > file_size:
        raise ContainerError(
            f"buffer {index} is truncated: it claims {size} bytes, {file_size - offset} remain", offset
        )
    if compressed:
        # Offset holds the uncompressed fill; the stream fills the rest of the on-disk buffer.
        want = filled if BUFFER_HEADER_SIZE <= filled <= MAX_BUFFER_SIZE else saved
        if not BUFFER_HEADER_SIZE <= want <= MAX_BUFFER_SIZE:
            raise ContainerError(f"compressed buffer {index} has an impossible filled size {want}", offset)
        stream = bytes(view[offset + BUFFER_HEADER_SIZE : end])
        buf = Buffer(index, offset, size, cpu, flags, btype, stream, offset + BUFFER_HEADER_SIZE, True,
                     want - BUFFER_HEADER_SIZE)
        if inflate:
            buf.data = inflate_or_raise(buf)
        return buf
    else:
        # Offset (0x30) is where the records end; older or odd writers leave it 0 or junk, so
        # fall back to SavedOffset and finally to the whole buffer (the 0xFF fill ends the scan).
        if BUFFER_HEADER_SIZE <= filled <= size:
            stop = filled
        elif BUFFER_HEADER_SIZE <= saved <= size:
            stop = saved
        else:
            stop = size
        data: bytes | memoryview
        if copy:
            data = bytes(view[offset + BUFFER_HEADER_SIZE : offset + stop])
        else:
            data = memoryview(view)[offset + BUFFER_HEADER_SIZE : offset + stop]
    return Buffer(index, offset, size, cpu, flags, btype, data, offset + BUFFER_HEADER_SIZE, False)


def read_partial_buffer(view, offset: int, index: int, file_size: int) -> Buffer | None:
    """The records of an uncompressed buffer the file ends inside (a cut file), up to the end of
    the file: the complete records among them can still be read (the record loop stops at the one
    the cut runs through).  None when not even its header is whole or it is compressed (a cut
    compressed stream cannot be trusted)."""
    if offset + BUFFER_HEADER_SIZE > file_size:
        return None
    (size, saved, _current, _ref, _ts, _seq, _clock, proc, _logger, _state, filled, flags, btype) = (
        WMI_BUFFER_HEADER.unpack_from(view, offset)
    )
    if flags & FLAG_COMPRESSED or not BUFFER_HEADER_SIZE <= size <= MAX_BUFFER_SIZE:
        return None
    stop = filled if BUFFER_HEADER_SIZE <= filled <= size else saved if BUFFER_HEADER_SIZE <= saved <= size else size
    stop = min(offset + stop, file_size)
    cpu = proc & (0x07FF if flags & FLAG_PROC_INDEX else 0xFF)
    data = bytes(view[offset + BUFFER_HEADER_SIZE : stop])
    return Buffer(index, offset, file_size - offset, cpu, flags, btype, data, offset + BUFFER_HEADER_SIZE, False)


def sequence_number(view, offset: int) -> int:
    """The buffer's SequenceNumber (+0x18): the logger numbers the buffers it flushes, so a number
    missing between two buffers of the file is a buffer the logger lost."""
    return _I64.unpack_from(view, offset + _SEQUENCE_AT)[0]


_I64 = struct.Struct("<q")
_SEQUENCE_AT = WMI_BUFFER_HEADER.offset("sequence_number")


_fast_xpress: Callable[[ReadableBuffer, int], bytes | None] | None
try:  # the optional C decoder (setup.py); the Python one names the damage when it refuses a stream
    from rpctrace.sources.etl._fastrecords import xpress as _fast_xpress
except ImportError:  # pragma: no cover - depends on the build
    _fast_xpress = None
if os.environ.get("RPCTRACE_PURE"):
    _fast_xpress = None


def fast_inflate() -> bool:
    """Whether decompression runs in C (then a process pool does not pay for itself)."""
    return _fast_xpress is not None


def inflate_data(stream: bytes | memoryview, inflated_size: int) -> bytes | tuple[str, int]:
    """Decompress one buffer's stream; on damage return (message, stream offset) instead of
    raising, so the function can run in a worker process and report back plainly."""
    if _fast_xpress is not None:
        out = _fast_xpress(stream, inflated_size)
        if out is not None:
            return out
    try:
        return decompress(stream, inflated_size)[:inflated_size]
    except XpressError as exc:
        return (str(exc), exc.offset or 0)


def inflate_or_raise(buf: Buffer, result: bytes | tuple[str, int] | None = None) -> bytes:
    """The decompressed records of ``buf`` (``result`` from :func:`inflate_data` if already run)."""
    if result is None:
        result = inflate_data(buf.data, buf.inflated_size)
    if isinstance(result, tuple):
        message, at = result
        raise ContainerError(f"compressed buffer {buf.index} does not decompress: {message}", buf.data_offset + at)
    return result




def _utf16z(data: bytes, pos: int, end: int) -> tuple[str, int]:
    """Read a NUL-terminated UTF-16LE string from ``data[pos:end]``; return it and the next offset."""
    stop = pos
    while True:
        stop = data.find(b"\x00\x00", stop, end)
        if stop < 0:
            stop = end - ((end - pos) & 1)
            text = data[pos:stop].decode("utf-16-le", "replace")
            return text, end
        if (stop - pos) & 1:
            stop += 1
            continue
        return data[pos:stop].decode("utf-16-le", "replace"), stop + 2


def parse_logfile_header(payload: bytes, pointer_size: int, raw_ts: int, tid: int, pid: int) -> LogfileHeader:
    """Decode TRACE_LOGFILE_HEADER (the payload of record 1 of buffer 0).

    The structure holds two pointers (LoggerName, LogFileName) whose size follows the logger's
    pointer size, which shifts everything after them; the offsets are those of the reference
    (§5.3), checked on the real samples.
    """
    p = pointer_size
    tz = TRACE_LOGFILE_HEADER.size + 2 * p  # after LoggerName and LogFileName (pointers)
    need = tz + TIME_ZONE_INFORMATION_SIZE + 4 + TRACE_LOGFILE_CLOCK.size
    if len(payload) < need:
        raise ValueError(f"logfile header payload is {len(payload)} bytes, needs {need}")
    (buffer_size, version, os_build, cpus, end_time, timer_res, max_file, mode, written, _start_buffers,
     ptr_field, lost, mhz) = TRACE_LOGFILE_HEADER.unpack_from(payload, 0)
    after_tz = tz + TIME_ZONE_INFORMATION_SIZE
    after_tz += (-after_tz) % 8  # the LARGE_INTEGER BootTime is 8-aligned
    boot, freq, start, clock_type, buffers_lost = TRACE_LOGFILE_CLOCK.unpack_from(payload, after_tz)
    names_at = after_tz + TRACE_LOGFILE_CLOCK.size
    logger_name, nxt = _utf16z(payload, names_at, len(payload)) if names_at < len(payload) else ("", names_at)
    logfile_name, _ = _utf16z(payload, nxt, len(payload)) if nxt < len(payload) else ("", nxt)
    return LogfileHeader(
        pointer_size=ptr_field if ptr_field in (4, 8) else pointer_size,
        buffer_size=buffer_size,
        version=version,
        os_build=os_build,
        cpus=cpus,
        end_time=end_time,
        timer_resolution=timer_res,
        max_file_size=max_file,
        log_file_mode=mode,
        buffers_written=written,
        events_lost=lost,
        cpu_mhz=mhz,
        boot_time=boot,
        perf_freq=freq,
        start_time=start,
        clock_type=clock_type,
        buffers_lost=buffers_lost,
        logger_name=logger_name,
        logfile_name=logfile_name,
        raw_ts=raw_ts,
        tid=tid,
        pid=pid,
    )


class Clock:
    """Converts raw record timestamps to 100 ns UTC ticks, as ProcessTrace does.

    wall = StartTime + (raw - raw_header) * 10^7 / PerfFreq for QPC clocks (ReservedFlags 1),
    raw is already a FILETIME for the system-time clock (2), and CPU-cycle clocks (3) scale by
    10 / CpuSpeedInMHz.  Integer arithmetic keeps conversions exact and repeatable, which the
    stack matcher relies on (a stack names its event by raw timestamp).
    """

    __slots__ = ("base", "raw0", "num", "den", "identity_offset")

    def __init__(self, header: LogfileHeader):
        self.raw0 = header.raw_ts
        self.base = header.start_time
        if header.clock_type == 2:
            self.num, self.den = 1, 1
            self.raw0, self.base = 0, 0
        elif header.clock_type == 3 and header.cpu_mhz:
            self.num, self.den = 10, header.cpu_mhz
        elif header.perf_freq:
            self.num, self.den = 10_000_000, header.perf_freq
        else:
            self.num, self.den = 1, 1
        self.identity_offset = self.base - self.raw0 if self.num == self.den else None

    def __call__(self, raw: int) -> int:
        if self.identity_offset is not None:
            return raw + self.identity_offset
        return self.base + (raw - self.raw0) * self.num // self.den


_PAGE = mmap.PAGESIZE


def drop_pages(view, start: int, length: int) -> None:
    """Unmap pages of the trace this process has read (they stay in the OS page cache).

    Mapped file pages count in the process's resident size; without this, reading a 1 GB trace
    would show 1 GB more in its peak memory than it holds.  No-op where madvise is missing.
    """
    if view is None or not hasattr(view, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return
    lo = start - start % _PAGE
    hi = min(len(view), start + length)
    if hi > lo:
        try:
            view.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
        except (OSError, ValueError):
            pass
