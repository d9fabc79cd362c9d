"""StackWalk records as Windows logs them with stack caching on, and deferred user stacks.

Why this module: real traces (PerfView's "stack compression", WPR's ``StackCaching``) give an
event's stack as references to a cache of stacks rather than as frames, and the user-mode half
of a stack often arrives long after its event.  A reader that gets either wrong shows the wrong
frames, so the writer must be able to produce both, the way Windows does:

* **References and definitions.**  The kernel keeps recently walked stacks in a cache; an event
  is followed by a StackKeyKernel (37) and/or StackKeyUser (38) record holding the key (the cache
  entry's address) of its kernel and user part.  A key's frames are logged only when the entry
  is evicted to make room for another stack (KeyDelete, 35) or when the trace ends (KeyRundown,
  36): after every reference to it.  An evicted entry's slot, and so its key, is then reused for
  another stack.  KeyCreate (34) is never logged.  (Facts: TraceEvent's TraceLog, which resolves a
  reference at the next definition of its key; Zhentar's notes on stack caching (Windows 10 1809).)
* **Two caches.**  Kernel and user parts are cached apart, and the same key can be live in both at
  once (TraceLog keeps two tables for that reason).  The writer gives both caches the same slot
  addresses, so that happens.
* **Deferred user stacks.**  The kernel part is walked when the event happens, the user part
  when the thread returns to user mode; the user part is then logged once, naming the first
  event of that stay in the kernel, and belongs to every event of the stay.

Records: PERFINFO header (no thread id), group 0x18, version 2.  References: EventTimeStamp
(raw clock), StackProcess, StackThread, StackKey (pointer); definitions: StackKey then the
frames (pointers).  Layouts: reference §1 table and etw-and-alpc-facts.md (StackWalk).

The cache is run over references in time order at drain time (``EtlWriter`` calls
:meth:`StackCache.flush` before it drains), since scenarios add records out of time order within
a drain window and an eviction must follow every earlier reference of the evicted key.
"""

from __future__ import annotations

import heapq
import struct
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Sequence

from rpctrace.synth import payloads as P

if TYPE_CHECKING:  # pragma: no cover
    from rpctrace.synth.emit import Trace

OP_KEY_DELETE, OP_KEY_RUNDOWN, OP_KEY_KERNEL, OP_KEY_USER = 35, 36, 37, 38
KERNEL, USER = "kernel", "user"
#: cache entry addresses: kernel pool, 64-byte entries (any stable, plausible values will do)
KEY_BASE = {8: 0xFFFFA88F3C510000, 4: 0x8E510000}
KEY_STRIDE = 0x40


class _Space:
    """One of the two caches: frames -> slot, least recently used first."""

    __slots__ = ("entries", "free", "last_use", "frames_of")

    def __init__(self, slots: int) -> None:
        self.entries: OrderedDict[tuple[int, ...], int] = OrderedDict()
        self.free = list(range(slots - 1, -1, -1))
        self.last_use: dict[int, int] = {}
        self.frames_of: dict[int, tuple[int, ...]] = {}


class StackCache:
    """The stack cache of one trace (see the module docstring).

    ``slots`` is the number of entries per cache: few slots means many evictions and much key
    reuse.  References are queued by :meth:`reference` and written by :meth:`flush`.
    """

    def __init__(self, trace: "Trace", slots: int = 64) -> None:
        if slots < 1:
            raise ValueError("a stack cache needs at least one slot")
        self.trace = trace
        self.ptr = trace.ptr
        self.key_base = KEY_BASE[self.ptr]
        self.spaces = {KERNEL: _Space(slots), USER: _Space(slots)}
        self._queue: list[tuple[int, int, int, str, int, int, int, tuple[int, ...], Any]] = []
        self._seq = 0
        self._head = struct.Struct("<QII" + ("Q" if self.ptr == 8 else "I"))
        self.references = 0
        self.definitions = 0
        self.evictions = 0
        self.last_ts = 0

    def key(self, slot: int) -> int:
        return self.key_base + slot * KEY_STRIDE

    def reference(self, cpu: int, ts: int, part: str, pid: int, tid: int, event_ts: int,
                  frames: Sequence[int], call: Any = None, owner: dict | None = None,
                  truth_stack: list[int] | None = None) -> None:
        """Queue the StackKeyKernel/StackKeyUser record of one part, logged at ``ts`` on ``cpu``."""
        self._seq += 1
        heapq.heappush(self._queue, (ts, self._seq, cpu, part, pid, tid, event_ts, tuple(frames),
                                     (call, owner, truth_stack)))

    def flush(self, frontier: int | None) -> None:
        """Run the cache over the queued references up to ``frontier`` (all when ``None``), in
        time order, and hand their records (and the definitions evictions log) to the writer."""
        q = self._queue
        while q and (frontier is None or q[0][0] <= frontier):
            ts, _seq, cpu, part, pid, tid, event_ts, frames, extra = heapq.heappop(q)
            key = self._slot(part, frames, ts, cpu)
            self._write_reference(cpu, ts, part, pid, tid, event_ts, key, extra)

    def _slot(self, part: str, frames: tuple[int, ...], ts: int, cpu: int) -> int:
        space = self.spaces[part]
        slot = space.entries.get(frames)
        if slot is not None:
            space.entries.move_to_end(frames)
        else:
            if not space.free:
                self._evict(space, ts, cpu)
            slot = space.free.pop()
            space.entries[frames] = slot
            space.frames_of[slot] = frames
        space.last_use[slot] = ts
        return self.key(slot)

    def _evict(self, space: _Space, ts: int, cpu: int) -> None:
        """Evict the least recently used entry last used before ``ts`` (so its definition follows
        all of its references) and log its KeyDelete."""
        victim = None
        for frames, slot in space.entries.items():
            if space.last_use[slot] < ts:
                victim = (frames, slot)
                break
        if victim is None:  # every entry was used at this very tick: make room instead
            space.free.append(len(space.frames_of))
            return
        frames, slot = victim
        del space.entries[frames]
        space.free.append(slot)
        self.evictions += 1
        self._write_definition(cpu, ts, OP_KEY_DELETE, self.key(slot), frames)

    def rundown(self, ts: int, cpu: int = 0) -> None:
        """KeyRundown for every entry still cached (the end of the trace)."""
        for space in self.spaces.values():
            for frames, slot in list(space.entries.items()):
                self._write_definition(cpu, ts, OP_KEY_RUNDOWN, self.key(slot), frames)
            space.entries.clear()

    # ------------------------------------------------------------------ records

    def _write_reference(self, cpu, ts, part, pid, tid, event_ts, key, extra) -> None:
        tr = self.trace
        opcode = OP_KEY_KERNEL if part == KERNEL else OP_KEY_USER
        payload = self._head.pack(event_ts, pid, tid, key)
        rec = tr._pirec(P.GROUP_STACKWALK, opcode, P.VER_STACKWALK, ts, payload)
        self.references += 1
        self.last_ts = max(self.last_ts, ts)
        call, owner, truth_stack = extra
        if tr.track:
            ev = None
            if tr.keep:
                fields = {"event_ts": tr.clock.filetime(event_ts), "stack_pid": pid, "stack_tid": tid,
                          "key": key, "part": part}
                ev = tr._event(ts, pid, tid, cpu, P.STACKWALK_GUID, 0, opcode, P.VER_STACKWALK, "stack", fields)
                if owner is not None:
                    ev["_owner"] = owner
                    ev["_stack"] = truth_stack
            tr.add(cpu, ts, rec, (call, "stack", ev))
        else:
            tr.add(cpu, ts, rec)

    def _write_definition(self, cpu, ts, opcode, key, frames) -> None:
        tr = self.trace
        payload = struct.pack(f"<{len(frames) + 1}{tr.enc.ptr}", key, *frames)
        rec = tr._pirec(P.GROUP_STACKWALK, opcode, P.VER_STACKWALK, ts, payload)
        self.definitions += 1
        self.last_ts = max(self.last_ts, ts)
        if tr.track:
            ev = None
            if tr.keep:
                ev = tr._event(ts, None, None, cpu, P.STACKWALK_GUID, 0, opcode, P.VER_STACKWALK, "stack_key",
                               {"key": key, "frames": list(frames)})
            tr.add(cpu, ts, rec, (None, "stack_key", ev))
        else:
            tr.add(cpu, ts, rec)
