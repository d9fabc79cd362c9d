"""Read an .etl file into normalized :class:`~rpctrace.model.Event` records, in time order.

The work happens in three steps:

1. **Index.**  Walk the buffers in file order (each header says how far the next one is), check
   every size against the file, decompress compressed buffers, and note each buffer's first
   timestamp.  Damage found here stops the walk at the damaged buffer.
2. **Merge.**  Each buffer is one processor's events in non-decreasing time order, but buffers of
   different processors interleave in file order, so buffers are started in order of their first
   timestamp and merged in windows: once buffer *k* is decoded, every pending event earlier than
   buffer *k+1*'s first timestamp is emitted (one stable sort per buffer, ties in file order).
   A buffer is only read and decoded when the merge reaches it, so an uncompressed file is
   streamed: memory holds the buffers that overlap in time, not the file.  Decoding is
   :mod:`rpctrace.sources.etl.records` (with its optional C loop).
3. **Attribute.**  PERFINFO headers carry no thread or process id.  As TraceEvent does, the thread
   comes from the payload where the event has one (StackWalk, CSwitch, FileIo TTID,
   SampledProfile); the process is left ``None`` here and given by the trace layer
   (:mod:`rpctrace.trace`) from the thread table of Thread Start/DCStart events in time order.

Record header layouts: ../shared/reference/etl-container-and-thread-ids.md §5.2.
"""

from __future__ import annotations

import bisect
import os
import struct
from dataclasses import dataclass
from functools import partial
from operator import itemgetter
from typing import ClassVar, Iterator

from rpctrace.errors import InputError
from rpctrace.knowledge import providers as P
from rpctrace.model import Event
from rpctrace.sources.base import Reader, SourceStats
from rpctrace.sources.etl.container import (
    BUFFER_HEADER_SIZE,
    FLAG_BUFFER_LOST,
    FLAG_EVENTS_LOST,
    Buffer,
    Clock,
    ContainerError,
    drop_pages,
    fast_inflate,
    LogfileHeader,
    inflate_data,
    inflate_or_raise,
    parse_logfile_header,
    read_buffer,
    read_partial_buffer,
    sequence_number,
)
from rpctrace.sources.etl.layouts import SYSTEM_TRACE_HEADER, WMI_BUFFER_HEADER
from rpctrace.sources.etl.parallel import (
    PARALLEL_MIN_BUFFERS,
    PARALLEL_MIN_DECODE_BUFFERS,
    DecodePool,
    decode_job,
    inflate_data_job,
    parallel_map,
)
from rpctrace.sources.etl import records
from rpctrace.sources.etl.records import SYSTEM32, SYSTEM64, BufferDecoder, first_timestamp

_U32 = struct.Struct("<I")
#: buffer 0's State, where compressed-mode loggers name their compression algorithm
_STATE_AT = WMI_BUFFER_HEADER.offset("state")

LOGFILE_COMPRESSED_MODE = 0x04000000
#: the index walk releases the file pages it mapped every this many bytes (see _index)
_INDEX_DROP_EVERY = 16 << 20
#: LogFileMode bits (evntrace.h) under which BuffersWritten does not count the buffers a file
#: holds: CIRCULAR (buffers overwritten, BuffersWritten counts every write), APPEND (a session
#: added to an existing file), NEWFILE (one of a series of files), REAL_TIME (buffers delivered
#: to a consumer, as in a relogged real-time session), BUFFERING (an in-memory ring).  With
#: these, neither the header's count nor gaps in buffer sequence numbers say that anything is
#: missing.
_MODES_WITHOUT_COUNTS = 0x00000002 | 0x00000004 | 0x00000008 | 0x00000100 | 0x00000400


def buffers_counted(log_file_mode: int) -> bool:
    """Whether a file of this LogFileMode holds every buffer its header says was written."""
    return not log_file_mode & _MODES_WITHOUT_COUNTS


@dataclass
class ReadStats(SourceStats):
    """What a read found besides events: losses reported by the logger and damage found."""

    buffers: int = 0
    compressed_buffers: int = 0
    buffers_flagged_events_lost: int = 0
    buffers_flagged_lost: int = 0
    buffers_written: int = 0  # the header's BuffersWritten (the logfile header buffer included)
    buffers_missing: int = 0  # written but not in the file (the file ends early)
    buffers_lost_in_sequence: int = 0  # sequence numbers missing between the buffers present

    SUMMARY: ClassVar[tuple[str, ...]] = (
        "buffers", "compressed_buffers", "records", "raw_records", "unknown_versions", "payload_errors",
        "events_lost", "buffers_lost", "buffers_flagged_events_lost", "buffers_flagged_lost", "buffers_written",
        "buffers_missing", "buffers_lost_in_sequence", "damage")


@dataclass(slots=True)
class _Slot:
    """A buffer waiting to be (or being) merged."""

    first_raw: int
    index: int
    offset: int
    cpu: int
    buffer: Buffer | None  # kept only for compressed buffers (decompressed once, at index time)
    data_offset: int = 0  # file offset of the record bytes (of the compressed stream if compressed)
    compressed: bool = False
    partial: bool = False  # the buffer the file ends inside: its complete records only


class EtlReader(Reader):
    """Reads one .etl file.  ``events()`` yields every record as an :class:`Event`, time ordered.

    With ``keep_going=False`` the first damage raises :class:`InputError` (after the events that
    were already yielded); with ``keep_going=True`` damage is counted in ``stats.damage`` and the
    reader goes on with what it can still read.  :attr:`position` is (buffers merged, buffers in
    the file) while :meth:`batches` runs; :meth:`want_stacks` (False) passes over StackWalk Stack
    records, neither decoded nor counted.
    """

    def __init__(self, path: str | os.PathLike[str], keep_going: bool = False) -> None:
        super().__init__(path, keep_going)
        self.stats = ReadStats()
        self._deferred: InputError | None = None
        self._index_damage: InputError | None = None
        self._open(empty="the file is empty, not an ETL trace")
        try:
            self.header = self._read_header()
        except InputError:
            self.close()
            raise
        if self.header.log_file_mode & LOGFILE_COMPRESSED_MODE:
            # Compressed-mode loggers name their algorithm in buffer 0's State (+0x2C): 3 is
            # plain LZ77 Xpress, the only one seen in real files; 2 (LZNT1) and 4 (Xpress
            # Huffman) are defined but rpctrace does not decode them (GUESS from ntwmi.h/snail).
            algorithm = _U32.unpack_from(self._mapped(), _STATE_AT)[0] & 0xFFFF
            if algorithm in (2, 4):
                name = "LZNT1" if algorithm == 2 else "Xpress Huffman"
                self.close()
                raise InputError(self.path, f"buffers are compressed with {name}, which rpctrace cannot decode",
                                 offset=_STATE_AT)
        self.pointer_size = self.header.pointer_size
        self.clock = Clock(self.header)
        self.stats.events_lost = self.header.events_lost
        self.stats.buffers_lost = self.header.buffers_lost
        self.stats.buffers_written = self.header.buffers_written

    # ------------------------------------------------------------------ header

    def _read_header(self) -> LogfileHeader:
        view = self._mapped()
        try:
            buf0 = read_buffer(view, 0, 0, self.size)
        except ContainerError as exc:
            raise InputError(self.path, f"not an ETL trace: {exc.message}", offset=exc.offset) from None
        data = bytes(buf0.data)  # bytes already (read with copy=True): the same object
        if len(data) < SYSTEM_TRACE_HEADER.size:
            raise InputError(self.path, "not an ETL trace: buffer 0 holds no logfile header", offset=BUFFER_HEADER_SIZE)
        marker = _U32.unpack_from(data, 0)[0]
        htype = (marker >> 16) & 0xFF
        if marker >> 24 != 0xC0 or htype not in (SYSTEM32, SYSTEM64):
            raise InputError(
                self.path, f"not an ETL trace: first record marker 0x{marker:08x} is not a logfile header",
                offset=BUFFER_HEADER_SIZE,
            )
        _ver, size, opcode, group, tid, pid, raw_ts, _kernel, _user = SYSTEM_TRACE_HEADER.unpack_from(data, 0)
        if group != 0 or opcode != 0:
            raise InputError(self.path, "not an ETL trace: first record is not the logfile header", offset=BUFFER_HEADER_SIZE)
        if size < SYSTEM_TRACE_HEADER.size or size > len(data):
            raise InputError(self.path, f"logfile header record has an impossible size {size}", offset=BUFFER_HEADER_SIZE)
        try:
            return parse_logfile_header(data[SYSTEM_TRACE_HEADER.size:size], 4 if htype == SYSTEM32 else 8, raw_ts, tid,
                                        pid)
        except (ValueError, struct.error) as exc:
            raise InputError(self.path, f"bad logfile header: {exc}",
                             offset=BUFFER_HEADER_SIZE + SYSTEM_TRACE_HEADER.size) from None

    def header_event(self) -> Event:
        """The logfile header as an event record (what ``rpctrace events`` prints first)."""
        h = self.header
        return Event(self.clock(h.raw_ts), h.pid, h.tid, 0, P.EVENT_TRACE, 0, 0, 2, "trace.header", h.fields())

    # ------------------------------------------------------------------ index

    def _index(self) -> list[_Slot]:
        view, size = self._mapped(), self.size
        slots: list[_Slot] = []
        offset = 0
        index = 0
        buffers: list[tuple[Buffer, int | None]] = []
        compressed: list[Buffer] = []
        dropped = 0
        counted = buffers_counted(self.header.log_file_mode)
        written = self.header.buffers_written
        sequence: list[int] = []
        partial = None
        while offset + BUFFER_HEADER_SIZE <= size:
            if _U32.unpack_from(view, offset)[0] == 0 and index > 0:
                # the preallocated tail of a file that was not filled - unless buffers follow it
                # (a zeroed header in the middle of a trace: damage, not the end)
                stride = buffers[-1][0].size if buffers else 0
                later = next((at for at in range(offset + stride, size - BUFFER_HEADER_SIZE + 1, stride or 1)
                              if stride and _U32.unpack_from(view, at)[0] == stride), None)
                if later is not None:
                    self._defer_damage(f"buffer {index} has a zeroed header, but buffers follow it (at offset "
                                       f"{later})", offset)
                break
            try:
                buf = read_buffer(view, offset, index, size, inflate=False, copy=False)
            except ContainerError as exc:
                # Found before any event is merged: in strict mode the events of the buffers
                # before the damage are still delivered, and the error is raised after them.
                # A file cut inside a buffer still gives that buffer's complete records.
                message = exc.message
                partial = read_partial_buffer(view, offset, index, size)
                if partial is not None and counted and written > index:
                    message += (f"; the file holds {index} whole buffers of the {written} its header says were "
                                f"written")
                self._defer_damage(message, exc.offset)
                break
            self.stats.buffers += 1
            sequence.append(sequence_number(view, offset))
            if buf.compressed:
                self.stats.compressed_buffers += 1
                compressed.append(buf)
            if buf.flags & FLAG_EVENTS_LOST:
                self.stats.buffers_flagged_events_lost += 1
            if buf.flags & FLAG_BUFFER_LOST:
                self.stats.buffers_flagged_lost += 1
            first = None
            if not buf.compressed:
                # Only the first timestamp is needed now (the records are read again when the
                # merge reaches the buffer): reading it touches a page, not the buffer.
                first = first_timestamp(buf.data, 1 if index == 0 else 0)
                if isinstance(buf.data, memoryview):  # it is: read with copy=False
                    buf.data.release()
                buf.data = b""
            buffers.append((buf, first))
            offset += buf.size
            index += 1
            if offset - dropped >= _INDEX_DROP_EVERY:
                # reading one header per buffer maps the whole file through readahead: release
                # the pages as the walk goes, or a 1 GB trace peaks at 1 GB more resident memory
                drop_pages(view, dropped, offset - dropped)
                dropped = offset
        drop_pages(view, 0, size)
        self._count_losses(counted, written, sequence, offset, damaged=partial is not None)
        if partial is not None:
            first = first_timestamp(partial.data, 1 if partial.index == 0 else 0)
            buffers.append((partial, first))
        damaged_at = self._inflate(compressed)
        for buf, first in buffers:
            if damaged_at is not None and buf.index >= damaged_at:
                break
            if buf.compressed:
                first = first_timestamp(buf.data, 1 if buf.index == 0 else 0)
            if first is not None:
                # uncompressed buffers are read again when merged, so only compressed data stays
                # (and the records of a buffer the file ends inside, which cannot be read again)
                cut = buf is partial
                slots.append(_Slot(first, buf.index, buf.offset, buf.cpu, buf if buf.compressed or cut else None,
                                   buf.data_offset, buf.compressed, cut))
        if 0 < size - offset < BUFFER_HEADER_SIZE and not self.stats.damage and self._deferred is None:
            self._defer_damage(f"{size - offset} trailing bytes are too few for a buffer", offset)
        return slots

    def _count_losses(self, counted: bool, written: int, sequence: list[int], end: int, damaged: bool) -> None:
        """Buffers the logger wrote that the file lacks: at its end (fewer buffers than the
        header's BuffersWritten: the file was cut, or copied while the logger ran) and between
        the buffers present (sequence numbers missing: buffers the logger lost).  Neither count
        means anything for the log file modes of :func:`buffers_counted`."""
        if not counted:
            return
        stats = self.stats
        present = len(sequence)
        if written > present:
            stats.buffers_missing = written - present
            if not damaged and self._deferred is None and not stats.damage:
                self._defer_damage(
                    f"the file ends after {present} of the {written} buffers its header says were written "
                    f"({written - present} missing: the file was cut, or copied while the logger ran)", end)
        if sequence:
            lo, hi = min(sequence), max(sequence)
            span = hi - lo + 1
            if 0 <= lo and span <= 4 * present + 1024:  # sane numbers (a hostile file can hold any)
                stats.buffers_lost_in_sequence = span - len(set(sequence))

    def _inflate(self, buffers: list[Buffer]) -> int | None:
        """Decompress compressed buffers, on both cores when there are enough to pay for it.

        Pure-Python LZ77 is the slowest step of reading a compressed trace, and buffers are
        independent, so a process pool nearly halves it on this project's 2-core machines.
        Returns the index of the first buffer that failed (strict mode stops there), or None.
        """
        if not buffers:
            return None
        jobs = [(b.data, b.inflated_size) for b in buffers]
        pool_pays = len(buffers) >= PARALLEL_MIN_BUFFERS and not fast_inflate()
        results = parallel_map(inflate_data_job, jobs) if pool_pays else None
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
        for batch in self.batches(include_header):
            yield from batch

    def batches(self, include_header: bool = True, workers: int | None = None) -> Iterator[list[Event]]:
        """The events of :meth:`events`, in lists of consecutive events.

        Consumers that loop over millions of events iterate lists rather than resuming a
        generator per event.  With more than one core and enough buffers, buffers are decoded
        in worker processes (:mod:`rpctrace.sources.etl.parallel`) while this process merges;
        ``workers=1`` (or ``RPCTRACE_SERIAL=1``) decodes here.

        The merge works in windows rather than event by event: buffers are started in order of
        their first timestamp, and once buffer *k* is decoded, every pending event earlier than
        buffer *k+1*'s first timestamp can be emitted (no later buffer holds anything earlier).
        Pending events are kept sorted by one C-level stable sort per window, so ties keep file
        order and processors' buffers that interleave finely cost no Python work per event.
        """
        if self._view is None:
            raise self._closed()
        stats = self.stats
        if include_header:
            stats.records += 1
            yield [self.header_event()]
        slots = self._index()
        slots.sort(key=lambda s: (s.first_raw, s.index))
        decoded = self._decoded_slots(slots, workers)
        # damage found while indexing ends the index: every buffer before it is still merged
        index_damage = self._index_damage = self._deferred
        praws: list[int] = []  # pending raw timestamps, sorted
        pevents: list[Event] = []  # pending events, same order
        try:
            nslots = len(slots)
            for k in range(nslots):
                raws, events = self._take(slots[k], next(decoded))
                self.position = (k + 1, nslots)
                strict_stop = self._deferred is not index_damage and not self.keep_going
                if events:
                    if raws != sorted(raws):  # a buffer out of time order (damage, odd writer)
                        raws, events = _sorted_by(raws, events)
                    if not praws:
                        praws, pevents = raws, events
                    elif raws[0] >= praws[-1]:
                        praws.extend(raws)
                        pevents.extend(events)
                    else:
                        praws, pevents = _sorted_by(praws + raws, pevents + events)
                if strict_stop or k + 1 >= nslots:
                    break
                cut = bisect.bisect_left(praws, slots[k + 1].first_raw)
                if cut:
                    batch = pevents[:cut] if cut < len(pevents) else pevents
                    stats.records += cut
                    yield batch
                    if cut < len(pevents):
                        del praws[:cut]
                        del pevents[:cut]
                    else:
                        praws, pevents = [], []
            if pevents:
                stats.records += len(pevents)
                yield pevents
        finally:
            decoded.close()
        if self._deferred is not None:
            err = self._deferred
            # what was read before the damage is said with it (one line: what is missing, what is not)
            raise InputError(err.path, f"{err.message} ({stats.records} events read)", offset=err.offset,
                             record=err.record)

    def _take(self, slot: "_Slot", result) -> tuple[list[int], list[Event]]:
        """Account for one decoded buffer (stats, damage) and return its (raws, events)."""
        raws, events, damage, counts = result
        stats = self.stats
        stats.raw_records += counts[0]
        stats.payload_errors += counts[1]
        stats.unknown_versions += counts[2]
        if slot.partial:
            damage = ()  # the record the file ends inside: the truncation is already reported
        for pos, number, message in damage:
            where = slot.data_offset + pos if not slot.compressed else slot.offset
            extra = f" (decompressed byte {pos})" if slot.compressed else ""
            err = InputError(self.path, f"buffer {slot.index}, record {number}: {message}{extra}", offset=where)
            if self.keep_going:
                stats.damage.append(err)
            elif self._deferred is None or self._deferred is self._index_damage:
                # Strict mode: what this buffer decoded before the damage is still delivered,
                # no later buffer is started, and the error is raised after the merge drains.
                self._deferred = err
                break
        return raws, events

    def _decoded_slots(self, slots: list["_Slot"], workers: int | None):
        """Decode results ``(raws, events, damage, counts)`` for ``slots``, in order."""
        decoder = BufferDecoder(self.pointer_size, self.clock, self.header.raw_ts, skip_stacks=not self.decode_stacks)
        here = partial(decode_job, self._view, self.size, decoder, drop_pages=drop_pages)
        jobs = (self._job(slot) for slot in slots)
        pool = None
        # Worker processes pay when decoding is in Python: sending events back costs about a
        # third of decoding them.  The C record loop decodes faster than events can be sent.
        python_decoding = records._fastrecords is None or records.PURE
        if len(slots) >= PARALLEL_MIN_DECODE_BUFFERS and (workers is None or workers > 1) and (
                python_decoding or workers is not None):
            pool = DecodePool.start(self.path, self.size, decoder, workers, here)
        if pool is None:
            for job in jobs:
                yield here(job)
            return
        try:
            yield from pool.run(jobs)
        finally:
            pool.close()

    @staticmethod
    def _job(slot: "_Slot") -> tuple:
        buf = slot.buffer
        slot.buffer = None  # let compressed data go once it is sent to be decoded
        return (slot.offset, slot.index, slot.cpu, buf.data if buf is not None else None, 1 if slot.index == 0 else 0)


def _sorted_by(raws: list[int], events: list[Event]) -> tuple[list[int], list[Event]]:
    """``raws`` and ``events`` reordered by raw timestamp, stable (ties keep their order)."""
    if len(raws) < 2:
        return list(raws), list(events)
    order = sorted(range(len(raws)), key=raws.__getitem__)
    pick = itemgetter(*order)
    return list(pick(raws)), list(pick(events))


def read_etl(path: str | os.PathLike, keep_going: bool = False) -> Iterator[Event]:
    """Convenience: every event of one file, time ordered (the reader closes at the end)."""
    with EtlReader(path, keep_going=keep_going) as reader:
        yield from reader.events()
