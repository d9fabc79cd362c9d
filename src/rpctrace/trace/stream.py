"""A trace read as a stream: events are assembled as they pass and need not be kept.

:func:`rpctrace.trace.load` keeps every event, which is what the timeline views need; an
analysis that keeps only a little of a large trace (``rpctrace calls`` keeps the calls and the
operations their servers did) reads it through a :class:`TraceStream` instead, and memory holds
what the analysis keeps, not the trace.  Ten million events as records would take gigabytes.

What :func:`rpctrace.trace.assemble` does over a list, the stream does per event:

* **Process ids** (PERFINFO headers carry none): the thread table of Thread Start/DCStart events
  seen so far.  A thread whose start the trace never saw gets its process from its End/DCEnd
  event, which comes later (rundown at the end), so such ids are filled in by :meth:`complete`
  and :meth:`pid_of` once the stream has ended.
* **Registry paths**: KCB names are defined by KCBCreate and KCBRundown events (rundown at the
  end of a trace), so paths are resolved for kept events by :meth:`complete`.
* **FileIo create status**: from the OperationEnd of the same IRP, as it comes.
* **Stacks**: StackWalk records follow their event (the user part and cached-stack definitions
  can come much later); :class:`~rpctrace.trace.stacks.StackAssembler` puts them together as in
  the whole-trace path, remembering stacks of failed operations only (the ones views show
  stacks for), and :meth:`complete` attaches them.
* **Process and image tables**: built as their events pass.
"""

from __future__ import annotations

import os
from typing import Callable, Iterator

from rpctrace.errors import InputError
from rpctrace.knowledge.status import is_failure
from rpctrace.model import Event
from rpctrace.sources.base import Reader
from rpctrace.trace.fileio import FileStatus
from rpctrace.trace.model import TableBuilder, Trace
from rpctrace.trace.registry_paths import KcbNames, resolve_registry_paths
from rpctrace.trace.stacks import StackAssembler
from rpctrace.trace.threads import ThreadTable

_new = tuple.__new__
#: the kinds most events of a busy trace have, which assembly has nothing to do for
_PASS = frozenset({"alpc.send", "alpc.receive", "alpc.wait_reply", "alpc.wait_new", "alpc.unwait",
                   "rpc.client_start", "rpc.client_stop", "rpc.server_start", "rpc.server_stop"})
#: how many recent failed operations wait for their stack walk (it follows within microseconds)
_RECENT_FAILURES = 4096


def _failed(fields: dict) -> bool:
    return is_failure(fields.get("status"))


class TraceStream:
    """One source read as a stream of assembled events (see the module docstring)."""

    def __init__(self, reader: Reader, stacks: bool = True, want_stack: Callable[[Event], bool] | None = None) -> None:
        """``stacks=False``: no stacks are remembered (an analysis that shows none).
        ``want_stack``: which events' stacks to remember and attach (default: operations that
        failed, and file creates, whose status comes later)."""
        self.reader = reader
        self.stacks = stacks
        self.want_stack = want_stack
        if not stacks:
            reader.want_stacks(False)  # not even decoded
        self.path = reader.path
        self.error: InputError | None = None
        self.records = 0
        self._threads = ThreadTable()  # tid -> pid from Thread Start/DCStart so far, End/DCEnd times
        self._live = self._threads.live
        self._kcbs = KcbNames()
        self._want_stack: dict[tuple, None] = {}  # (ts, tid) of recent failed operations
        self._want_by_cpu: dict[tuple, None] = {}  # (ts, cpu) of recent failed operations without a thread
        self._stacks = StackAssembler(wanted=self._wanted)
        self._files = FileStatus()  # FileIo creates waiting for their OperationEnd
        self._tables = TableBuilder()
        self._done = False
        self._first_ts: int | None = None
        self._last_ts: int | None = None
        self._header: dict | None = None  # the fields of the first trace.header record (host, OS build)

    # ------------------------------------------------------------------ the stream

    def batches(self) -> Iterator[list[Event]]:
        """Lists of assembled events in time order.  Damage ends the stream in strict mode; the
        error is kept in :attr:`error` (what was read before it stays usable)."""
        try:
            for batch in self.reader.batches():
                yield self._assemble(batch)
        except InputError as exc:
            self.error = exc

    def _assemble(self, batch: list[Event]) -> list[Event]:
        live = self._live
        out = batch
        copied = False
        for i, ev in enumerate(batch):
            kind = ev.kind
            if ev.pid is None:
                tid = ev.tid
                if tid is not None:
                    pid = live.get(tid)
                    if pid is not None:
                        if not copied:
                            out = list(batch)
                            copied = True
                        ev = out[i] = _new(Event, (ev[0], pid) + ev[2:])
            if self.want_stack is not None and self.stacks and self.want_stack(ev):
                self._want(ev)
            if kind not in _PASS:
                self._other(ev, kind)
        self.records += len(batch)
        if batch:
            if self._first_ts is None:
                self._first_ts = batch[0].ts
            self._last_ts = batch[-1].ts
        return out

    def _other(self, ev: Event, kind: str) -> None:
        """Everything but ALPC and RPC events (rarer): tables, KCBs, stacks, file status."""
        if kind.startswith("thread."):
            self._threads.add(ev)
        elif kind.startswith("registry."):
            f = ev.fields
            if kind.startswith("registry.kcb_"):
                if f.get("kcb"):
                    self._kcbs.add(f["kcb"], ev.ts, f.get("key_name", ""))
            elif self.stacks and self.want_stack is None and _failed(f):
                self._want(ev)
        elif kind == "stack" or kind == "stack_key":
            if self.stacks:
                self._stacks.add(ev)
        elif kind == "trace.header":
            if ev.fields.get("pointer_size"):
                self._stacks.set_pointer_size(ev.fields["pointer_size"])
            if self._header is None:
                self._header = dict(ev.fields)
        elif kind == "file.create":
            self._files.add(ev)
            if self.stacks and self.want_stack is None:
                self._want(ev)  # its status comes later: keep the stack in case it fails
        elif kind == "file.op":
            self._files.add(ev)
        elif kind.startswith(("process.", "image.")):
            self._tables.add(ev)

    def _want(self, ev: Event) -> None:
        if ev.tid is not None:
            want = self._want_stack
            want[(ev.ts, ev.tid)] = None
            if len(want) > _RECENT_FAILURES:
                del want[next(iter(want))]
        else:
            want = self._want_by_cpu
            want[(ev.ts, ev.cpu)] = None
            if len(want) > _RECENT_FAILURES:
                del want[next(iter(want))]

    def _wanted(self, key: tuple, by_cpu: tuple) -> bool:
        """Whether the stack records of event ``key`` (or ``by_cpu``) are worth putting together:
        it is a recent wanted event, or one whose stack is already being put together (its user
        part can come long after the window of recent events has moved on)."""
        return key in self._want_stack or by_cpu in self._want_by_cpu or key in self._stacks.parts

    # ------------------------------------------------------------------ after the stream

    def pid_of(self, tid: int | None, ts: int | None) -> int | None:
        """The process of thread ``tid`` at ``ts``, from everything the stream saw."""
        if tid is None:
            return None
        if ts is not None:
            pid = self._threads.ended_as(tid, ts)
            if pid is not None:
                return pid
        return self._live.get(tid)

    def complete(self, events: list[Event]) -> None:
        """In place, for events an analysis kept: process ids, registry paths and stacks that
        could only be known once the stream ended."""
        for i, ev in enumerate(events):
            if ev.pid is None and ev.tid is not None:
                pid = self.pid_of(ev.tid, ev.ts)
                if pid is not None:
                    ev = events[i] = _new(Event, (ev[0], pid) + ev[2:])
            if self.stacks and ev.stack is None and (
                    _failed(ev.fields) if self.want_stack is None else self.want_stack(ev)):
                stack, ids = self._stacks.stack_of(ev.ts, ev.tid, ev.cpu)
                if ids is not None:  # logged without ids: the stack records know its thread
                    ev = events[i] = ev._replace(tid=ids[0], pid=ev.pid if ev.pid is not None else ids[1])
                if stack is not None:
                    events[i] = ev._replace(stack=stack)
        resolve_registry_paths(events, self._kcbs)

    def finish(self) -> Trace:
        """The trace's tables and source facts (its ``events`` list is empty: nothing was kept)."""
        reader = self.reader
        info = reader.source_info()
        if self._header is not None:
            info["header"] = self._header
        trace = Trace([], sources=[info])
        self._tables.finish(trace)
        table = reader.process_table()
        if table is not None:
            from rpctrace.trace.merge import add_process_table

            add_process_table(trace, table)
        trace.error = self.error
        if self._first_ts is not None and self._last_ts is not None:
            trace.time_range = (self._first_ts, self._last_ts)
        return trace

    def close(self) -> None:
        self.reader.close()


def open_stream(path: str | os.PathLike, keep_going: bool = False, stacks: bool = True) -> TraceStream:
    """A :class:`TraceStream` over one file of any supported format."""
    from rpctrace.sources import open_source

    return TraceStream(open_source(path, keep_going=keep_going), stacks=stacks)
