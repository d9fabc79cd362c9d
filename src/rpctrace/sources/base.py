"""What every reader shares: opening and closing its file, the counts of what a read found, and
the abilities a source may have besides ``events()``, declared once with what a source without
them does.

A reader (:class:`Reader`) is opened on one file, gives its events in time order with
``events()`` (or in lists, ``batches()``), and is closed; ``with`` closes it too.  What a read
found besides events (records kept raw, payloads that did not decode, losses the logger
reported, damage stepped over) is in ``stats``, and :meth:`Reader.source_info` is the reader's
entry in ``Trace.sources``.  The abilities callers used to probe for:

* :meth:`Reader.batches`: lists of consecutive events (a reader that merges buffers gives its
  merge windows; every other reader gives its events in chunks);
* :meth:`Reader.want_stacks`: a consumer that shows no stacks says so before reading, and a
  reader whose stack records cost something to decode passes over them;
* :meth:`Reader.process_table`: processes and modules a format lists outside its events
  (a Procmon log's process table), None where the events say everything;
* :meth:`Reader.progress`: how far a read is, for progress bars, when the reader can tell.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

from rpctrace.errors import InputError
from rpctrace.model import Event

__all__ = ["Reader", "SourceStats", "chunks"]

#: events per list when a reader without merge windows gives its events in lists
CHUNK = 4096


@dataclass
class SourceStats:
    """What a read found besides events.  Each format adds its own counts and says, in
    :attr:`SUMMARY`, which of them its :meth:`summary` gives and in which order."""

    records: int = 0  # events given
    raw_records: int = 0  # events kept as their bytes (no decoder, or a payload that did not decode)
    unknown_versions: int = 0  # events of a known kind in a version rpctrace has no layout for
    payload_errors: int = 0  # payloads that did not match their layout
    events_lost: int = 0  # the logger's own count of events it lost (0 where a format records none)
    buffers_lost: int = 0  # the logger's own count of buffers it lost (0 where a format records none)
    damage: list[InputError] = field(default_factory=list)  # damage stepped over (``keep_going``)

    #: the keys of :meth:`summary`, in order (attribute names of this object)
    SUMMARY: ClassVar[tuple[str, ...]] = ("records", "raw_records", "unknown_versions", "payload_errors",
                                          "events_lost", "buffers_lost", "damage")

    def summary(self) -> dict[str, Any]:
        """The counts as plain values (for ``Trace.sources``, JSON): damage as one line each, a
        set of names as how many there are."""
        out: dict[str, Any] = {}
        for key in self.SUMMARY:
            value = getattr(self, key)
            if key == "damage":
                value = [d.one_line() for d in value]
            elif isinstance(value, (set, frozenset)):
                value = len(value)
            out[key] = value
        return out


class Reader:
    """Base of every reader: one file, its events, its stats (see the module docstring).

    Subclasses call :meth:`_open` (or open what they read themselves), implement
    :meth:`events`, and override the abilities they have.  ``keep_going=False``: the first
    damage raises :class:`InputError` after the events read before it; ``keep_going=True``:
    damage is counted in ``stats.damage`` and reading goes on where it can.
    """

    #: what :meth:`summary`-style counts the reader keeps (a subclass sets its own)
    stats: Any

    def __init__(self, path: str | os.PathLike[str], keep_going: bool = False) -> None:
        self.path = os.fspath(path)
        self.keep_going = keep_going
        #: (done, total) while reading, for progress bars; total 0 while the reader cannot tell
        self.position: tuple[int, int] = (0, 0)
        #: False once a consumer said it shows no stacks (:meth:`want_stacks`)
        self.decode_stacks = True
        self.size = 0
        self._file: Any = None
        self._view: Any = None

    # ------------------------------------------------------------------ lifecycle

    def _open(self, empty: str | None = None, mapped: bool = True) -> None:
        """Open the file (``self._file``, ``self.size``) and, with ``mapped``, map it read-only
        (``self._view``: an mmap, or the file's bytes where it cannot be mapped; ``b""`` for an
        empty file).  ``empty``: the message an empty file is refused with (None: accepted)."""
        try:
            self._file = open(self.path, "rb")
            self.size = os.fstat(self._file.fileno()).st_size
        except OSError as exc:
            self.close()
            raise InputError(self.path, f"cannot open: {exc.strerror or exc}") from None
        if self.size == 0 and empty is not None:
            self.close()
            raise InputError(self.path, empty, offset=0)
        if not mapped:
            return
        if self.size == 0:
            self._view = b""
            return
        try:
            self._view = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # a file that cannot be mapped (a special file): read it
            self._view = self._file.read()

    def close(self) -> None:
        """Release the file (again: nothing happens).  Readers that hold more extend this."""
        view, self._view = self._view, None
        if isinstance(view, mmap.mmap):
            try:
                view.close()
            except BufferError:  # a memoryview of it is still alive; the GC releases the map
                pass
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _closed(self) -> InputError:
        return InputError(self.path, "reader is closed")

    def _mapped(self) -> Any:
        """The file's bytes as :meth:`_open` mapped them (:class:`InputError` once closed)."""
        if self._view is None:
            raise self._closed()
        return self._view

    # ------------------------------------------------------------------ events

    def events(self) -> Iterator[Event]:
        """Every event of the file, in time order (ties: file order)."""
        raise NotImplementedError

    def batches(self) -> Iterator[list[Event]]:
        """The events of :meth:`events` in lists of consecutive events (consumers that loop over
        millions of events iterate lists rather than resuming a generator per event)."""
        return chunks(self.events())

    # ------------------------------------------------------------------ abilities

    def want_stacks(self, wanted: bool) -> None:
        """Say whether the consumer shows stacks (before reading).  A reader whose stack records
        cost something to decode passes over them when not; the others keep theirs."""
        self.decode_stacks = wanted

    def process_table(self) -> list[dict[str, Any]] | None:
        """Processes (with their modules) the format lists outside its events, or None when its
        events are all there is (see :func:`rpctrace.trace.merge.add_process_table`)."""
        return None

    def progress(self) -> tuple[int, int] | None:
        """``(done, total)`` while reading, when the reader can tell how far it is, else None."""
        done, total = self.position
        return (done, total) if total else None

    def source_info(self) -> dict[str, Any]:
        """This file as an entry of ``Trace.sources``: its path and what the read found."""
        return {"path": self.path, **self.stats.summary()}


def chunks(events: Iterator[Event], size: int = CHUNK) -> Iterator[list[Event]]:
    """``events`` in lists of ``size`` (the last one shorter).  Damage that ends ``events``
    (InputError) is raised after the list of the events read before it."""
    batch: list[Event] = []
    try:
        for ev in events:
            batch.append(ev)
            if len(batch) >= size:
                yield batch
                batch = []
    except InputError:
        if batch:
            yield batch
        raise
    if batch:
        yield batch
