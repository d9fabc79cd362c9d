"""Readers: one per file format, each producing :class:`rpctrace.model.Event` records.

``open_source`` picks the reader from the file's first bytes, not its name: users rename files.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Protocol

from rpctrace.errors import InputError
from rpctrace.model import Event


class SourceStats(Protocol):
    """What a reader counted while reading (``reader.stats``)."""

    def summary(self) -> dict[str, Any]:
        """The counts as the trace's source info holds them (``trace.sources[i]``)."""
        ...


class Source(Protocol):
    path: str

    @property
    def stats(self) -> SourceStats: ...

    def events(self) -> Iterator[Event]: ...

    def close(self) -> None: ...


def losses(info: dict) -> tuple[int, int]:
    """``(events lost, buffers lost)`` of one source's summary, as a person should be told them:
    the logger's own counts (the ETL header's EventsLost and BuffersLost), and for buffers the
    larger of that and the buffers missing between those the file holds (sequence numbers), so
    a header that undercounts does not hide a gap.  Buffers missing at the end of a cut file are
    damage, reported as such."""
    return (info.get("events_lost") or 0,
            max(info.get("buffers_lost") or 0, info.get("buffers_lost_in_sequence") or 0))


def sniff_bytes(head: bytes) -> str | None:
    """The format whose signature starts ``head`` (a file's first 4096 bytes): 'etl', 'pml',
    'evtx', 'eventxml', 'pcap' (pcap and pcapng), or None."""
    if head[:4] == b"PML_":
        return "pml"
    if head[:8] == b"ElfFile\0":
        return "evtx"
    from rpctrace.sources.net.pcap import is_capture

    if is_capture(head):
        return "pcap"
    if len(head) >= 0x4C and head[0x4B] == 0xC0 and head[0x4A] in (0x01, 0x02):
        return "etl"
    from rpctrace.sources.eventxml import looks_like_event_xml

    if looks_like_event_xml(head):
        return "eventxml"
    return None


#: what sniff says of a file in no format rpctrace reads
UNKNOWN_FORMAT = ("unknown file format (rpctrace reads .etl traces, Process Monitor .pml logs, .evtx event logs, "
                  "event XML exports and pcap/pcapng network captures)")


def sniff(path: str) -> str:
    """Name the format of ``path`` from its first bytes (see :func:`sniff_bytes`), or raise InputError."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise InputError(path, f"cannot open: {exc.strerror or exc}") from None
    if not head:
        raise InputError(path, "the file is empty", offset=0)
    fmt = sniff_bytes(head)
    if fmt is None:
        raise InputError(path, UNKNOWN_FORMAT, offset=0)
    return fmt


def open_source(path: str | os.PathLike, keep_going: bool = False) -> Source:
    path = os.fspath(path)
    fmt = sniff(path)
    if fmt == "etl":
        from rpctrace.sources.etl.reader import EtlReader

        return EtlReader(path, keep_going=keep_going)
    if fmt == "pml":
        from rpctrace.sources.pml import PmlReader

        return PmlReader(path, keep_going=keep_going)
    if fmt == "evtx":
        from rpctrace.sources.evtx import EvtxReader

        return EvtxReader(path, keep_going=keep_going)
    if fmt == "pcap":
        from rpctrace.sources.net import NetReader

        return NetReader(path, keep_going=keep_going)
    if fmt == "eventxml":
        from rpctrace.sources.eventxml import EventXmlReader

        return EventXmlReader(path, keep_going=keep_going)
    raise InputError(path, f"no reader for {fmt}")  # pragma: no cover - sniff only names known formats
