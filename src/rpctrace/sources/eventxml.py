"""Saved Windows events as XML: ``wevtutil qe /f:xml``, Event Viewer "Save as XML", tracerpt.

The three exports share the event schema (``<Event><System>...</System><EventData>``) and differ
only around it: wevtutil writes a bare sequence of ``<Event>`` elements (no root, often no XML
declaration), Event Viewer and tracerpt wrap them in ``<Events>``; encodings are UTF-8 or
UTF-16 (PowerShell redirection writes UTF-16 LE with a BOM).  All three are read the same way:
the text is decoded, its XML declaration dropped, and it is fed to the safe parser
(:mod:`rpctrace.sources.safexml`: no DTD, bounded, streamed, one event held as a tree at a
time) inside a wrapper element of our own, so a rootless sequence parses too.  Each finished
``<Event>`` is mapped by :func:`rpctrace.sources.winevent.event_from_element`.
"""

from __future__ import annotations

import codecs
import os
from typing import Iterator
from xml.parsers import expat

from rpctrace.errors import InputError
from rpctrace.model import Event
from rpctrace.sources.base import Reader
from rpctrace.sources.safexml import (
    FORBIDDEN,
    WRAP_CLOSE,
    WRAP_OPEN,
    EventStream,
    XmlRefused,
    drop_declaration,
    encoding_of,
)
from rpctrace.sources.winevent import XmlStats, event_from_element

#: limits (hostile files): the whole file, in bytes
MAX_FILE_BYTES = 4 << 30
_CHUNK = 1 << 20


class EventXmlReader(Reader):
    """Reads an XML export of Windows events (a :class:`~rpctrace.sources.base.Reader`).

    XML that is not well formed, or that rpctrace refuses (DTD, entities, limits), raises
    :class:`InputError` after the events parsed before it (strict) or ends the read with the
    damage counted (``keep_going``: the rest of a broken XML stream cannot be resynchronised).
    """

    def __init__(self, path: str | os.PathLike[str], keep_going: bool = False) -> None:
        super().__init__(path, keep_going)
        self.stats = XmlStats()
        self._open(empty="the file is empty", mapped=False)
        if self.size > MAX_FILE_BYTES:
            self.close()
            raise InputError(self.path, f"the XML export is larger than rpctrace's limit ({MAX_FILE_BYTES} bytes)", offset=0)

    def events(self) -> Iterator[Event]:
        if self._file is None:
            raise self._closed()
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
        codec, bom = encoding_of(head)
        fh.seek(bom)
        decoder = codecs.getincrementaldecoder(codec)(errors="strict")
        stream = EventStream()
        consumed = bom
        first = True
        tail = ""
        try:
            stream.feed(WRAP_OPEN)
            while True:
                chunk = fh.read(_CHUNK)
                final = not chunk
                text = decoder.decode(chunk, final)
                consumed += len(chunk)
                if first and text:
                    text = drop_declaration(text)
                    first = False
                if FORBIDDEN.search(tail + text):
                    raise XmlRefused("the XML has a document type declaration (DTD); rpctrace refuses DTDs and entities")
                tail = text[-16:]
                if final:
                    stream.feed(WRAP_CLOSE, True)
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
