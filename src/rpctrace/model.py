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
  to this event, or ``None``.  Sources that know which frames ran in kernel mode give a
  :class:`Stack` (a tuple that also says where its kernel part ends).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, NamedTuple

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


#: Where kernel space starts, by pointer size: 32-bit Windows puts the kernel at 0x80000000 and
#: up; 64-bit kernel addresses have the top bit set (canonical 0xFFFF8000_00000000 and up), so
#: every user address of a 64-bit process, WOW64 ones included, is below 0x80000000_00000000.
KERNEL_START = {4: 0x80000000, 8: 0x8000000000000000}


def kernel_start_for(addresses, pointer_size: int | None = None) -> int:
    """The kernel-space boundary to judge ``addresses`` by: from the pointer size when the source
    says it, else 64-bit when any address needs more than 32 bits."""
    if pointer_size in KERNEL_START:
        return KERNEL_START[pointer_size]
    return KERNEL_START[8] if any(a > 0xFFFFFFFF for a in addresses) else KERNEL_START[4]


class Stack(tuple):
    """A stack's return addresses, innermost first: the kernel-mode part, then the user-mode part.

    A plain tuple of frames (``ev.stack == (a, b)`` still holds) that also says how many of its
    first frames are the kernel part (``kernel_frames``).  The two parts of an ETW stack are
    logged separately (StackWalk key references, deferred user stacks), so the split is known
    exactly where a stack is put together; the user part may hold kernel frames between user
    frames (user-mode callbacks), which is why the split is kept rather than recomputed.
    """

    kernel_frames: int

    def __new__(cls, kernel=(), user=()):
        self = super().__new__(cls, (*kernel, *user))
        self.kernel_frames = len(kernel)
        return self

    def __reduce__(self):  # pickles (worker processes) with its split
        return (Stack, (tuple(self[: self.kernel_frames]), tuple(self[self.kernel_frames :])))

    @property
    def kernel(self) -> tuple[int, ...]:
        return tuple(self[: self.kernel_frames])

    @property
    def user(self) -> tuple[int, ...]:
        return tuple(self[self.kernel_frames :])

    @classmethod
    def split(cls, frames, pointer_size: int | None = None) -> "Stack":
        """A whole stack walk (kernel frames first, then user frames) split at its first user-mode
        frame, for sources that give both parts in one list."""
        if isinstance(frames, Stack):
            return frames
        frames = tuple(frames)
        start = kernel_start_for(frames, pointer_size)
        n = 0
        for a in frames:
            if a < start:
                break
            n += 1
        return cls(frames[:n], frames[n:])


def stack_parts(stack, pointer_size: int | None = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(kernel part, user part)`` of an event's stack (a :class:`Stack` or a plain tuple)."""
    s = Stack.split(stack, pointer_size)
    return s.kernel, s.user


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
    fields: dict[str, Any]
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
