"""JSON text of call records: the same characters the ``json`` module writes, faster.

``rpctrace calls --format json|jsonl`` writes a record per call, hundreds of thousands of them.
``json.dumps`` costs ~11 us a record and its ``indent=`` encoder (pure Python before 3.14) ~29 us,
more than everything else the command does per call; this module takes ~7 us for either.  A call record always has the same keys in
the same order (:mod:`rpctrace.correlate.records`), so its text is a fixed skeleton with the
values filled in; this module writes that skeleton directly and leaves only the values to
encode.

The output is exactly what ``json`` gives, for any record: the skeleton is used only where a
dict has exactly the expected keys in the expected order, and any value of a type the fast
path does not expect (or any record of another shape) is encoded by ``json`` itself.
:func:`record_line` is ``json.dumps(record, ensure_ascii=False)``; :func:`record_block` is the
text of ``record`` as an element of a list written by ``json.dump(list, indent=2,
ensure_ascii=False)``.
"""

from __future__ import annotations

import json
from functools import partial
from json.encoder import encode_basestring as _string  # the C encoder when available
from math import isfinite as _finite
from typing import Any, Callable

__all__ = ["CALL_KEYS", "CLIENT_KEYS", "FAILURE_KEYS", "INTERFACE_KEYS", "SERVER_KEYS", "record_block", "record_line"]

#: the keys of a call record (and of its parts), in order: the skeleton below is written for them
CALL_KEYS = (
    "id", "client", "server", "interface", "opnum", "procedure", "endpoint", "protocol", "mode", "completion_tid",
    "alpc_message_id",
    "start", "end", "server_start", "server_end", "duration_us", "status", "result", "result_source", "auth_level",
    "auth_service",
    "confidence", "evidence", "ambiguous", "parent", "children", "failures",
)  # fmt: skip
CLIENT_KEYS = ("pid", "tid", "image")
SERVER_KEYS = ("pid", "tid", "image", "service")
INTERFACE_KEYS = ("uuid", "name")
FAILURE_KEYS = ("kind", "path", "status", "status_name", "pid", "tid", "ts")

_INDENT = "  "  # json.dump(..., indent=2)


def _value_text(value: Any, newline: str | None) -> str:
    """``json``'s text of any value; ``newline`` is what a line break inside it is followed by
    in indented output (``None``: compact output).

    An indented container nested at level L is written exactly as on its own with every line
    break followed by L more indents, so ``json.dumps`` of the value alone gives its text.
    """
    if value is None:
        return "null"
    kind = type(value)
    if kind is str:
        return _string(value)
    if kind is int:
        return int.__repr__(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is float and _finite(value):
        return float.__repr__(value)
    if newline is None:
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, indent=2, ensure_ascii=False).replace("\n", newline)


class _Layout:
    """The separators of one output style, and the fallback encoder of each nesting level."""

    __slots__ = ("indent", "open", "sep", "close", "open2", "sep2", "close2", "open3", "sep3", "close3", "value2", "value3", "value4")

    def __init__(self, indent: bool):
        def level(n: int) -> str:
            return "\n" + _INDENT * n if indent else ""

        def fallback(n: int) -> Callable[[Any], str]:
            return partial(_value_text, newline="\n" + _INDENT * n if indent else None)

        self.indent = indent
        comma = "," if indent else ", "
        # the record is an element of the top-level list (level 1); its items are at level 2
        self.open, self.sep, self.close = "{" + level(2), comma + level(2), level(1) + "}"
        # dicts and lists that are values of the record: items at level 3
        self.open2, self.sep2, self.close2 = level(3), comma + level(3), level(2)
        # dicts inside those lists (failures): items at level 4
        self.open3, self.sep3, self.close3 = level(4), comma + level(4), level(3)
        self.value2, self.value3, self.value4 = fallback(2), fallback(3), fallback(4)


_COMPACT = _Layout(indent=False)
_INDENTED = _Layout(indent=True)


#: the text of a list of strings, per layout, by its items: calls repeat the same evidence
#: lists, and encoding one (usually with non-ASCII arrows) costs more than the rest of a record
_string_lists: dict[tuple[bool, tuple], str] = {}
_STRING_LISTS_MAX = 4096


def _strings(items: Any, layout: _Layout) -> str:
    """A list value of the record whose items are expected to be strings (``evidence``, which
    may be a tuple: ``json`` writes tuples as lists).

    The cache is keyed by the items, so a list equal to a cached one gets its text; items equal
    to strings are strings (or ``str`` subclasses, which ``json`` writes as their text).
    """
    kind = type(items)
    if kind is not list and kind is not tuple:
        return layout.value2(items)
    if not items:
        return "[]"
    key = (layout.indent, items if kind is tuple else tuple(items))
    try:
        return _string_lists[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable item: not a string
        return layout.value2(items)
    try:
        # encode_basestring raises TypeError for anything but a str: then json does it
        text = "[" + layout.open2 + layout.sep2.join(map(_string, items)) + layout.close2 + "]"
    except TypeError:
        return layout.value2(items)
    if len(_string_lists) >= _STRING_LISTS_MAX:
        _string_lists.clear()
    _string_lists[key] = text
    return text


def _ints(items: Any, layout: _Layout) -> str:
    """A list value of the record whose items are expected to be ints (``children``)."""
    if type(items) is not list:
        return layout.value2(items)
    if not items:
        return "[]"
    value = layout.value3
    return "[" + layout.open2 + layout.sep2.join([int.__repr__(v) if type(v) is int else value(v) for v in items]) + layout.close2 + "]"


def _failures(items: Any, layout: _Layout) -> str:
    """The ``failures`` list of the record (dicts of :data:`FAILURE_KEYS`)."""
    if type(items) is not list:
        return layout.value2(items)
    if not items:
        return "[]"
    o, s, c, v = layout.open3, layout.sep3, layout.close3, layout.value4
    texts = []
    for f in items:
        if type(f) is not dict or tuple(f) != FAILURE_KEYS:
            texts.append(layout.value3(f))
            continue
        kind, path, status, status_name, pid, tid, ts = f.values()
        texts.append(
            f'{{{o}"kind": {_string(kind) if type(kind) is str else v(kind)}'
            f'{s}"path": {_string(path) if type(path) is str else v(path)}'
            f'{s}"status": {status if type(status) is int else v(status)}'
            f'{s}"status_name": {_string(status_name) if type(status_name) is str else v(status_name)}'
            f'{s}"pid": {pid if type(pid) is int else v(pid)}'
            f'{s}"tid": {tid if type(tid) is int else v(tid)}'
            f'{s}"ts": {_string(ts) if type(ts) is str else v(ts)}{c}}}'
        )
    return "[" + layout.open2 + layout.sep2.join(texts) + layout.close2 + "]"


def _record_text(record: Any, layout: _Layout) -> str | None:
    """The record's text in ``layout``, or None when it is not a dict of :data:`CALL_KEYS`.

    Each value is written inline when it has the type a call record holds there (``str`` /
    ``int`` / ``None`` / ``float`` / ``bool``) and by :func:`_value_text` otherwise.  An ``int``
    is written by f-string formatting, which for an exact ``int`` is its ``repr`` (``bool`` is
    not an exact ``int``, so it takes the fallback).
    """
    if type(record) is not dict or tuple(record) != CALL_KEYS:
        return None
    (
        id_, client, server, interface, opnum, procedure, endpoint, protocol, mode, completion, message, start, end,
        server_start, server_end, duration, status, result, result_source, auth_level, auth_service, confidence, evidence,
        ambiguous, parent, children, failures,
    ) = record.values()  # fmt: skip
    o, s, c, v = layout.open2, layout.sep2, layout.close2, layout.value3
    if type(client) is dict and tuple(client) == CLIENT_KEYS:
        pid, tid, image = client.values()
        client = (
            f'{{{o}"pid": {pid if type(pid) is int else v(pid)}{s}"tid": {tid if type(tid) is int else v(tid)}'
            f'{s}"image": {_string(image) if type(image) is str else v(image)}{c}}}'
        )
    else:
        client = layout.value2(client)
    if type(server) is dict and tuple(server) == SERVER_KEYS:
        pid, tid, image, service = server.values()
        server = (
            f'{{{o}"pid": {pid if type(pid) is int else v(pid)}{s}"tid": {tid if type(tid) is int else v(tid)}'
            f'{s}"image": {_string(image) if type(image) is str else v(image)}'
            f'{s}"service": {_string(service) if type(service) is str else "null" if service is None else v(service)}{c}}}'
        )
    else:
        server = layout.value2(server)
    if type(interface) is dict and tuple(interface) == INTERFACE_KEYS:
        uuid, name = interface.values()
        interface = (
            f'{{{o}"uuid": {_string(uuid) if type(uuid) is str else v(uuid)}'
            f'{s}"name": {_string(name) if type(name) is str else "null" if name is None else v(name)}{c}}}'
        )
    else:
        interface = layout.value2(interface)
    s, v = layout.sep, layout.value2
    return (
        f'{layout.open}"id": {id_ if type(id_) is int else v(id_)}'
        f'{s}"client": {client}{s}"server": {server}{s}"interface": {interface}'
        f'{s}"opnum": {opnum if type(opnum) is int else v(opnum)}'
        f'{s}"procedure": {_string(procedure) if type(procedure) is str else v(procedure)}'
        f'{s}"endpoint": {_string(endpoint) if type(endpoint) is str else v(endpoint)}'
        f'{s}"protocol": {_string(protocol) if type(protocol) is str else v(protocol)}'
        f'{s}"mode": {_string(mode) if type(mode) is str else v(mode)}'
        f'{s}"completion_tid": {"null" if completion is None else completion if type(completion) is int else v(completion)}'
        f'{s}"alpc_message_id": {message if type(message) is int else v(message)}'
        f'{s}"start": {_string(start) if type(start) is str else v(start)}'
        f'{s}"end": {_string(end) if type(end) is str else v(end)}'
        f'{s}"server_start": {_string(server_start) if type(server_start) is str else v(server_start)}'
        f'{s}"server_end": {_string(server_end) if type(server_end) is str else v(server_end)}'
        f'{s}"duration_us": {float.__repr__(duration) if type(duration) is float and _finite(duration) else v(duration)}'
        f'{s}"status": {status if type(status) is int else v(status)}'
        f'{s}"result": {"null" if result is None else result if type(result) is int else v(result)}'
        f'{s}"result_source": {"null" if result_source is None else _string(result_source) if type(result_source) is str else v(result_source)}'
        f'{s}"auth_level": {auth_level if type(auth_level) is int else v(auth_level)}'
        f'{s}"auth_service": {auth_service if type(auth_service) is int else v(auth_service)}'
        f'{s}"confidence": {float.__repr__(confidence) if type(confidence) is float and _finite(confidence) else v(confidence)}'
        f'{s}"evidence": {_strings(evidence, layout)}'
        f'{s}"ambiguous": {"false" if ambiguous is False else v(ambiguous)}'
        f'{s}"parent": {"null" if parent is None else parent if type(parent) is int else v(parent)}'
        f'{s}"children": {"[]" if type(children) is list and not children else _ints(children, layout)}'
        f'{s}"failures": {"[]" if type(failures) is list and not failures else _failures(failures, layout)}{layout.close}'
    )


def record_line(record: Any) -> str:
    """``json.dumps(record, ensure_ascii=False)`` (one JSON Lines line, without its newline)."""
    text = _record_text(record, _COMPACT)
    return json.dumps(record, ensure_ascii=False) if text is None else text


def record_block(record: Any) -> str:
    """``record`` as an element of a list written with ``json.dump(..., indent=2,
    ensure_ascii=False)``: the element's text from its first character to its last, its inner
    lines indented for level 1."""
    text = _record_text(record, _INDENTED)
    if text is None:
        return json.dumps(record, indent=2, ensure_ascii=False).replace("\n", "\n" + _INDENT)
    return text
