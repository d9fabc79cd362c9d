"""Types of the optional C module (``_fastrecords.c``, built by setup.py where a compiler is
available): the record loop and the decompressor that :mod:`rpctrace.sources.etl.records` and
``container`` call.  What else the module holds (the correlation engine's objects) is left
untyped: its callers take it as ``Any``."""

from typing import Any

from typing_extensions import Buffer

from rpctrace.model import Event

def decode(
    data: Buffer, cpu: int, skip: int, ctx: tuple[Any, ...], /
) -> tuple[list[int], list[Event], list[tuple[int, int, str]]]:
    """One buffer's records: ``(raw timestamps, events, damage)`` (see ``BufferDecoder.decode``)."""

def xpress(data: Buffer, max_out: int, /) -> bytes | None:
    """Plain LZ77 (Xpress) decompression: the bytes, or None where the Python decoder must say why."""

def __getattr__(name: str) -> Any: ...
