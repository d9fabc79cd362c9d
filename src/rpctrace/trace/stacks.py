"""Put StackWalk stacks together and attach them to the events they belong to.

A StackWalk record names its event by the event's own timestamp (``event_ts``) and thread.  It is
logged after that event, on the same processor, so the match is (timestamp, thread), and for
events logged without a thread id (PERFINFO headers) (timestamp, processor), as TraceEvent's
TraceLog does.  An event's stack comes in up to two parts, each logged on its own:

* **Kernel part and user part.**  The kernel walks the kernel-mode stack when the event happens
  and the user-mode stack later, when the thread is about to return to user mode (a *deferred*
  user stack: the walk must not touch pageable user memory at the event's IRQL).  The user part
  is then logged once, naming the first event of that stay in the kernel, and it belongs to
  every event the thread logged a kernel part for since it entered the kernel
  (TraceLog's ``EmitStackOnExitFromKernel``).  Processes 0 and 4 never return to user mode.
* **Whole stacks and cached stacks.**  A part is either given whole (opcode 32 Stack: frames,
  innermost first; a walk that ends in user mode holds both parts, one that starts in user mode
  is a user part only) or as a reference to the stack cache (opcodes 37 StackKeyKernel and
  38 StackKeyUser: a key).  A key's frames are written when the kernel evicts it from the cache
  (35 KeyDelete) or when the trace ends (36 KeyRundown), that is *after* the references to it, and
  the key is then reused for another stack.  So a reference is resolved by the first definition
  of its key that follows it.  Kernel and user stacks have separate key spaces (the same key can
  be live in both at once), and a definition is told apart by its outermost frame.  KeyCreate
  (34) is never logged by Windows (stack caching logs a definition only after its last use) and
  is not used.

Frames are kept innermost first, the kernel part then the user part, as a debugger prints them;
a user part may hold kernel frames between user frames (user-mode callbacks) and keeps them.
:class:`StackAssembler` does this one record at a time, for the whole-trace path
(:func:`attach_stacks`) and for the streamed one (:mod:`rpctrace.trace.stream`), which asks it to
keep only the events it wants.
"""

from __future__ import annotations

from typing import Callable

from rpctrace.model import KERNEL_START, Event, Stack

#: opcodes of the StackWalk provider (def2fe46-7bd6-4b80-bd94-f57fe20d0ce3)
OP_STACK, OP_KEY_CREATE, OP_KEY_DELETE, OP_KEY_RUNDOWN, OP_KEY_KERNEL, OP_KEY_USER = 32, 34, 35, 36, 37, 38
#: processes that never run in user mode (Idle, System): their kernel parts complete a stack
_KERNEL_ONLY_PIDS = frozenset({0, 4})


class _Parts:
    """The two parts of one event's stack: a frame list, a pending key (int), or None."""

    __slots__ = ("kernel", "user", "pid")

    def __init__(self, pid: int | None) -> None:
        self.kernel: list[int] | int | None = None
        self.user: list[int] | int | None = None
        self.pid = pid

    def stack(self) -> Stack | None:
        kernel = self.kernel if isinstance(self.kernel, list) else ()
        user = self.user if isinstance(self.user, list) else ()
        if not kernel and not user:
            return None
        return Stack(kernel, user)


class StackAssembler:
    """Builds event stacks from StackWalk records handed in time order (see the module docstring).

    ``wanted(key)`` says whether the stack of the event ``(event_ts, tid)`` is worth keeping (the
    stream keeps stacks of failed operations only); ``None`` keeps every one.  ``by_cpu`` keys
    are ``(event_ts, cpu)`` for events logged without a thread id.
    """

    def __init__(self, pointer_size: int | None = None,
                 wanted: Callable[[tuple, tuple], bool] | None = None) -> None:
        self.kernel_start = KERNEL_START.get(pointer_size or 0)
        self.wanted = wanted
        self.parts: dict[tuple[int, int], _Parts] = {}  # (event_ts, tid) -> parts
        self.by_cpu: dict[tuple[int, int | None], tuple[tuple[int, int], int | None]] = {}
        self._kernel_refs: dict[int, list[_Parts]] = {}  # key -> events waiting for its definition
        self._user_refs: dict[int, list[_Parts]] = {}
        self._in_kernel: dict[int, list[_Parts]] = {}  # tid -> events whose user part is to come

    # ------------------------------------------------------------------ records

    def set_pointer_size(self, pointer_size: int) -> None:
        """The trace's pointer size (from its logfile header), which says where kernel space starts."""
        if pointer_size in KERNEL_START:
            self.kernel_start = KERNEL_START[pointer_size]

    def _is_kernel(self, address: int, frames) -> bool:
        start = self.kernel_start
        if start is None:  # no header: 64-bit when any frame of the record needs it
            start = KERNEL_START[8] if any(a > 0xFFFFFFFF for a in frames) else KERNEL_START[4]
        return address >= start

    def add(self, ev: Event) -> None:
        """One ``stack`` or ``stack_key`` event (anything else is ignored)."""
        if ev.kind == "stack":
            self._reference(ev)
        elif ev.kind == "stack_key" and ev.opcode in (OP_KEY_DELETE, OP_KEY_RUNDOWN):
            self._definition(ev.fields["key"], ev.fields["frames"])

    def _entry(self, ev: Event) -> _Parts:
        """The parts of the stack of the event ``ev`` (a stack record) belongs to, made at its first record."""
        f = ev.fields
        key = (f["event_ts"], f["stack_tid"])
        parts = self.parts.get(key)
        if parts is None:
            parts = self.parts[key] = _Parts(f.get("stack_pid"))
            self.by_cpu.setdefault((f["event_ts"], ev.cpu), (key, f.get("stack_pid")))
        return parts

    def _want(self, ev: Event) -> bool:
        if self.wanted is None:
            return True
        f = ev.fields
        return self.wanted((f["event_ts"], f["stack_tid"]), (f["event_ts"], ev.cpu))

    def _reference(self, ev: Event) -> None:
        f = ev.fields
        tid = f["stack_tid"]
        frames = f.get("frames")
        if frames is None:  # 37 / 38: a reference to the stack cache
            if f.get("part") == "kernel":
                if self._want(ev):
                    self._kernel_part(self._entry(ev), tid, f["key"])
            else:
                self._user_part(ev, tid, f["key"])
            return
        if not frames:
            return
        if self._is_kernel(frames[-1], frames):  # ends in the kernel: a kernel part only
            if self._want(ev):
                self._kernel_part(self._entry(ev), tid, list(frames))
        elif not self._is_kernel(frames[0], frames):  # starts in user mode: a user part only
            self._user_part(ev, tid, list(frames))
        else:  # kernel frames then user frames: both parts in one walk
            if not self._want(ev):
                return
            n = 1
            while n < len(frames) and self._is_kernel(frames[n], frames):
                n += 1
            parts = self._entry(ev)
            if parts.kernel is None:
                parts.kernel = list(frames[:n])
            if parts.user is None:
                parts.user = list(frames[n:])

    def _kernel_part(self, parts: _Parts, tid: int, part: list[int] | int) -> None:
        if parts.kernel is not None:
            return  # a second kernel part for one event (TraceLog warns and keeps the first)
        parts.kernel = part
        if isinstance(part, int):
            self._kernel_refs.setdefault(part, []).append(parts)
        if parts.user is None and parts.pid not in _KERNEL_ONLY_PIDS:
            self._in_kernel.setdefault(tid, []).append(parts)

    def _user_part(self, ev: Event, tid: int, part: list[int] | int) -> None:
        """A user part: it belongs to its own event and to every event of the thread still
        waiting in the kernel for one (the thread is now returning to user mode)."""
        targets = self._in_kernel.pop(tid, [])
        if self._want(ev):
            own = self._entry(ev)
            if own not in targets:
                targets.append(own)
        for parts in targets:
            if parts.user is not None:
                continue
            parts.user = part
            if isinstance(part, int):
                self._user_refs.setdefault(part, []).append(parts)

    def _definition(self, key: int, frames: list[int]) -> None:
        """KeyDelete / KeyRundown: the frames of ``key`` for every reference made so far."""
        if not frames:
            return
        if self._is_kernel(frames[-1], frames):
            waiting = self._kernel_refs.pop(key, None)
            for parts in waiting or ():
                if parts.kernel == key:
                    parts.kernel = list(frames)
        else:
            waiting = self._user_refs.pop(key, None)
            for parts in waiting or ():
                if parts.user == key:
                    parts.user = list(frames)

    # ------------------------------------------------------------------ results

    def stack_of(self, ts: int, tid: int | None, cpu: int | None) -> tuple[Stack | None, tuple | None]:
        """The stack of the event at ``ts`` on ``tid`` (or, for an event without a thread id, on
        ``cpu``), and for the latter the ``(tid, pid)`` the stack records say it ran on."""
        if tid is not None:
            parts = self.parts.get((ts, tid))
            return (parts.stack() if parts is not None else None), None
        alt = self.by_cpu.get((ts, cpu))
        if alt is None:
            return None, None
        key, pid = alt
        parts = self.parts.get(key)
        return (parts.stack() if parts is not None else None), (key[1], pid)

    @property
    def unresolved(self) -> int:
        """References whose key no later definition gave (the trace ended without a rundown)."""
        return sum(map(len, self._kernel_refs.values())) + sum(map(len, self._user_refs.values()))


def _pointer_size(events: list[Event]) -> int | None:
    for ev in events[:64]:
        if ev.kind == "trace.header":
            return ev.fields.get("pointer_size")
    return None


def attach_stacks(events: list[Event]) -> list[Event]:
    """Return ``events`` with ``stack`` set on every event a stack belongs to."""
    asm = StackAssembler(_pointer_size(events))
    any_stack = False
    for ev in events:
        kind = ev.kind
        if kind == "stack" or kind == "stack_key":
            asm.add(ev)
            any_stack = True
        elif kind == "trace.header" and ev.fields.get("pointer_size"):
            asm.set_pointer_size(ev.fields["pointer_size"])
    if not any_stack:
        return events
    out: list[Event] = []
    add = out.append
    parts_of = asm.parts.get
    for ev in events:
        tid = ev.tid
        if tid is not None:  # the common case, inline (this loop sees every event of the trace)
            parts = parts_of((ev.ts, tid))
            if parts is not None and ev.stack is None and ev.kind not in ("stack", "stack_key"):
                stack = parts.stack()
                if stack is not None:
                    ev = ev._replace(stack=stack)
        elif ev.stack is None and ev.kind not in ("stack", "stack_key"):
            stack, ids = asm.stack_of(ev.ts, None, ev.cpu)
            if ids is not None:
                # an event logged without ids: the stack records know its true thread and process
                ev = ev._replace(tid=ids[0], pid=ev.pid if ev.pid is not None else ids[1])
            if stack is not None:
                ev = ev._replace(stack=stack)
        add(ev)
    return out
