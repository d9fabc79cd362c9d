"""Readers: one per file format, each producing :class:`rpctrace.model.Event` records.

``open_source`` picks the reader from the file's first bytes, not its name: users rename files.
"""

from __future__ import annotations

import os
from typing import Iterator, Protocol

from rpctrace.errors import InputError
from rpctrace.model import Event


class Source(Protocol):
    path: str

    def events(self) -> Iterator[Event]: ...

    def close(self) -> None: ...


def sniff(path: str) -> str:
    """Name the format of ``path`` from its first bytes ('etl', or raise InputError)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(0x60)
    except OSError as exc:
        raise InputError(path, f"cannot open: {exc.strerror or exc}") from None
    if not head:
        raise InputError(path, "the file is empty", offset=0)
    if len(head) >= 0x4C and head[0x4B] == 0xC0 and head[0x4A] in (0x01, 0x02):
        return "etl"
    raise InputError(path, "unknown file format (rpctrace reads .etl traces)", offset=0)


def open_source(path: str | os.PathLike, keep_going: bool = False) -> Source:
    path = os.fspath(path)
    fmt = sniff(path)
    if fmt == "etl":
        from rpctrace.sources.etl.reader import EtlReader

        return EtlReader(path, keep_going=keep_going)
    raise InputError(path, f"no reader for {fmt}")  # pragma: no cover - sniff only names known formats
