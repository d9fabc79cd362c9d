"""The normalized event record every source produces.

Every reader (ETL, Procmon, EVTX, ...) turns what it reads into :class:`Event` records so that
correlation and explanation never need to know where an event came from.  Records are
``NamedTuple``s: immutable, typed, compact (no per-instance ``__dict__``) and cheap to build,
which matters when a trace holds ten million of them.

Conventions (shared by every source and by the trace writer's ground truth):

* ``ts`` is an integer count of 100 ns ticks since 1601-01-01 UTC (a Windows FILETIME), so
  values from different sources compare without floating point.
* ``pid``/``tid``/``cpu`` are ``None`` when the source cannot know them.  A reader never invents
  an id: an event with no thread in its header and none in its payload keeps ``tid=None``.
* ``provider`` is the provider GUID as lowercase text without braces.
* ``id`` is the manifest event id (0 for classic/kernel events, which are identified by opcode).
* ``kind`` is a short dotted name (see :data:`KINDS`); events a reader does not understand are
  kept with kind ``raw`` and their payload bytes in ``fields["data"]``, never dropped.
* ``stack`` is the tuple of return addresses (innermost first) of the stack walk that belongs
  to this event, or ``None``.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Mapping, NamedTuple

#: Kinds a consumer may rely on.  Readers may add more specific ones; unknown events are ``raw``.
KINDS: frozenset[str] = frozenset(
    {
        "trace.header",
        "alpc.send",
        "alpc.receive",
        "alpc.wait_reply",
        "alpc.wait_new",
        "alpc.unwait",
        "alpc.other",
        "rpc.client_start",
        "rpc.client_stop",
        "rpc.server_start",
        "rpc.server_stop",
        "rpc.eeinfo",
        "rpc.error",
        "rpc.interface_register",
        "rpc.interface_unregister",
        "rpc.endpoint_bind",
        "rpc.raise",
        "registry.create",
        "registry.open",
        "registry.delete",
        "registry.query",
        "registry.set_value",
        "registry.delete_value",
        "registry.query_value",
        "registry.enum_key",
        "registry.enum_value",
        "registry.query_multiple_value",
        "registry.set_information",
        "registry.flush",
        "registry.close",
        "registry.set_security",
        "registry.query_security",
        "registry.kcb_create",
        "registry.kcb_delete",
        "registry.kcb_rundown",
        "registry.other",
        "process.start",
        "process.end",
        "process.rundown",
        "process.other",
        "thread.start",
        "thread.end",
        "thread.rundown",
        "thread.cswitch",
        "thread.other",
        "image.load",
        "image.unload",
        "image.rundown",
        "image.id",
        "image.dbgid",
        "file.create",
        "file.op",
        "stack",
        "stack_key",
        "sample",
        "raw",
    }
)


class Event(NamedTuple):
    """One normalized event.  See the module docstring for the conventions."""

    ts: int
    pid: int | None
    tid: int | None
    cpu: int | None
    provider: str
    id: int
    opcode: int
    version: int
    kind: str
    fields: Mapping[str, Any]
    stack: tuple[int, ...] | None = None


_EPOCH_1601 = _dt.datetime(1601, 1, 1, tzinfo=_dt.timezone.utc)
_MAX_TICKS = (_dt.datetime(9999, 12, 31, tzinfo=_dt.timezone.utc) - _EPOCH_1601) // _dt.timedelta(
    microseconds=1
) * 10
_TICKS_PER_SECOND = 10_000_000

#: whole second since 1601 -> ``"YYYY-MM-DDTHH:MM:SS."``.  Listings format several timestamps per
#: call and consecutive calls share their second, so ``datetime`` + ``strftime`` (the slow part)
#: runs once per second of trace instead of once per timestamp.
_second_texts: dict[int, str] = {}
#: a trace spanning more seconds than this only refills the cache; the bound keeps a long
#: session's memory flat
_SECOND_TEXTS_MAX = 1 << 16


def _second_text(second: int) -> str:
    """Date and time of day of a whole second since 1601 (a cache miss of :func:`ticks_to_iso`)."""
    text = (_EPOCH_1601 + _dt.timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%S.")
    if len(_second_texts) >= _SECOND_TEXTS_MAX:
        _second_texts.clear()
    _second_texts[second] = text
    return text


def ticks_to_iso(ticks: int) -> str:
    """Format 100 ns FILETIME ticks as ISO 8601 UTC with 7 fractional digits.

    The seven digits are the ticks within the second, written by hand (``datetime`` only
    carries microseconds); the date and time of day come from a per-second cache, so this is
    cheap enough to call for every timestamp of a million-call listing.  Values outside what
    ``datetime`` can show (hostile files can hold any 64-bit clock) are clamped rather than
    raising, so one odd record never stops a listing.
    """
    if ticks < 0:
        ticks = 0
    elif ticks > _MAX_TICKS:
        ticks = _MAX_TICKS
    second, fraction = divmod(ticks, _TICKS_PER_SECOND)
    text = _second_texts.get(second)
    if text is None:
        text = _second_text(second)
    return "%s%07dZ" % (text, fraction)  # %-formatting: measurably faster than an f-string here


def iso_to_ticks(text: str) -> int:
    """Parse what :func:`ticks_to_iso` writes (and plain ISO 8601 UTC) back into ticks."""
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1]
    frac = ""
    if "." in text:
        text, frac = text.split(".", 1)
    base = _dt.datetime.fromisoformat(text).replace(tzinfo=_dt.timezone.utc)
    frac = (frac + "0000000")[:7]
    return (base - _EPOCH_1601) // _dt.timedelta(microseconds=1) * 10 + int(frac)


def target_of(ev: Event) -> str | None:
    """The object an operation acted on: the registry key (HKLM form once paths are resolved) or
    the file; the KCB's relative name when nothing better is known.  The one definition every
    record and view uses (a registry *value* operation's value is :func:`target_text`'s)."""
    f = ev.fields
    return f.get("path") or f.get("open_path") or f.get("key_name")


def target_text(ev: Event) -> str:
    """What to show as an operation's target: :func:`target_of`, and for a registry value
    operation the value too (``HKLM\\...\\eventlog\\Application\\Type``, not just the key)."""
    target = target_of(ev) or ""
    value = ev.fields.get("value_name")
    if value and ev.kind.startswith("registry.") and "value" in ev.kind:
        return f"{target}\\{value}" if target else str(value)
    return str(target)
