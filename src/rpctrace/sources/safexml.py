"""Event XML parsed safely: expat without DTDs, entities or external references, bounded.

Saved Windows events come as XML (wevtutil, Event Viewer, tracerpt exports; the evtx package's
rendering of each record) from machines that may be compromised, so this layer refuses any DTD
(no entity declarations, no external entities, hence no entity expansion bombs), bounds the size
of one event and the nesting depth, and streams: :class:`EventStream` keeps only the ``<Event>``
being built as a tree (:class:`Elem`) and hands finished ones over.  Text is fed inside a
wrapper element of our own (:data:`WRAP_OPEN`), so a rootless sequence of events parses too.

What an ``<Event>`` means is :mod:`rpctrace.sources.winevent`'s job; reading a file is the
readers' (:mod:`rpctrace.sources.eventxml`, :mod:`rpctrace.sources.evtx`).
"""

from __future__ import annotations

import codecs
import re
from xml.parsers import expat

__all__ = ["Elem", "EventStream", "XmlRefused", "encoding_of", "looks_like_event_xml", "parse_event_xml",
           "drop_declaration", "FORBIDDEN", "WRAP_OPEN", "WRAP_CLOSE", "MAX_EVENT_CHARS", "MAX_DEPTH"]


#: limits (hostile files): one event (characters), nesting depth below <Event>
MAX_EVENT_CHARS = 16 << 20
MAX_DEPTH = 64

#: the wrapper element the text is fed inside (so a rootless sequence of <Event> parses)
WRAP_OPEN, WRAP_CLOSE = "<rpctrace-events>", "</rpctrace-events>"
#: a DTD or any of its declarations: refused before expat sees it
FORBIDDEN = re.compile(r"<!(DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)")


class XmlRefused(ValueError):
    """The XML holds something rpctrace refuses to parse (a DTD, entities, too deep, too big)."""


# ---------------------------------------------------------------------------- sniffing / decoding


def encoding_of(head: bytes) -> tuple[str, int]:
    """(codec, BOM length) from the first bytes."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8", 3
    if head.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le", 2
    if head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be", 2
    if len(head) >= 2 and head[1] == 0 and head[0] != 0:
        return "utf-16-le", 0
    if len(head) >= 2 and head[0] == 0 and head[1] != 0:
        return "utf-16-be", 0
    return "utf-8", 0


def looks_like_event_xml(head: bytes) -> bool:
    """True when the bytes start (after a BOM and white space) with ``<`` and hold ``<Event``."""
    codec, bom = encoding_of(head)
    text = head[bom:].decode(codec, errors="ignore")
    stripped = text.lstrip()
    return stripped.startswith("<") and re.search(r"<(\w+:)?Event[\s>/]", stripped) is not None


# ---------------------------------------------------------------------------- the element tree


class Elem:
    """A minimal element: local tag name, attributes, children, text."""

    __slots__ = ("tag", "attrib", "children", "parts")

    def __init__(self, tag: str, attrib: dict):
        self.tag = tag
        self.attrib = attrib
        self.children: list[Elem] = []
        self.parts: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def child(self, tag: str) -> "Elem | None":
        for c in self.children:
            if c.tag == tag:
                return c
        return None

    def children_named(self, tag: str) -> list["Elem"]:
        return [c for c in self.children if c.tag == tag]


def _local(name: str) -> str:
    return name.rsplit(":", 1)[-1]


class EventStream:
    """Feed XML text, collect finished ``<Event>`` elements (expat, no DTD, bounded)."""

    def __init__(self, max_event_chars: int = MAX_EVENT_CHARS):
        p = expat.ParserCreate()
        p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        p.StartElementHandler = self._start
        p.EndElementHandler = self._end
        p.CharacterDataHandler = self._chars
        p.StartDoctypeDeclHandler = self._refuse_dtd
        p.EntityDeclHandler = self._refuse_entity
        p.UnparsedEntityDeclHandler = self._refuse_entity
        p.NotationDeclHandler = self._refuse_entity
        p.ExternalEntityRefHandler = self._refuse_external
        p.buffer_text = True
        self._p = p
        self._stack: list[Elem] = []
        self._chars_in_event = 0
        self._max = max_event_chars
        self.done: list[Elem] = []
        self.outside = 0  # elements seen outside any <Event> (besides the roots)

    def _refuse_dtd(self, *args) -> None:
        raise XmlRefused("the XML has a document type declaration (DTD); rpctrace refuses DTDs and entities")

    def _refuse_entity(self, *args) -> None:
        raise XmlRefused("the XML declares entities; rpctrace refuses DTDs and entities")

    def _refuse_external(self, *args):
        raise XmlRefused("the XML references an external entity; rpctrace refuses DTDs and entities")

    def _start(self, name: str, attrs: dict) -> None:
        tag = _local(name)
        stack = self._stack
        if stack:
            if len(stack) >= MAX_DEPTH:
                raise XmlRefused(f"elements nested deeper than {MAX_DEPTH} levels inside an <Event>")
            el = Elem(tag, {_local(k): v for k, v in attrs.items()})
            stack[-1].children.append(el)
            stack.append(el)
            self._chars_in_event += 64
        elif tag == "Event":
            self._chars_in_event = 0
            stack.append(Elem(tag, {_local(k): v for k, v in attrs.items()}))
        elif tag not in ("rpctrace-events", "Events"):
            self.outside += 1

    def _end(self, name: str) -> None:
        stack = self._stack
        if stack:
            el = stack.pop()
            if not stack:
                self.done.append(el)

    def _chars(self, data: str) -> None:
        stack = self._stack
        if stack:
            self._chars_in_event += len(data)
            if self._chars_in_event > self._max:
                raise XmlRefused(f"one <Event> holds more than {self._max} characters")
            stack[-1].parts.append(data)

    def feed(self, text: str, final: bool = False) -> None:
        self._p.Parse(text, final)

    @property
    def position(self) -> tuple[int, int]:
        return self._p.CurrentLineNumber, self._p.CurrentColumnNumber


def parse_event_xml(text: str) -> Elem:
    """Parse the XML of one event (what the evtx package renders per record)."""
    text = drop_declaration(text)
    if FORBIDDEN.search(text):
        raise XmlRefused("the XML has a document type declaration (DTD); rpctrace refuses DTDs and entities")
    stream = EventStream()
    stream.feed(WRAP_OPEN)
    stream.feed(text)
    stream.feed(WRAP_CLOSE, True)
    if len(stream.done) != 1:
        raise ValueError(f"expected one <Event>, found {len(stream.done)}")
    return stream.done[0]


def drop_declaration(text: str) -> str:
    """``text`` without a BOM, leading white space and its ``<?xml ...?>`` declaration."""
    text = text.lstrip("\ufeff \t\r\n")
    if text.startswith("<?xml"):
        end = text.find("?>")
        if end >= 0:
            return text[end + 2 :]
    return text
