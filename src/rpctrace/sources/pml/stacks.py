"""The stacks of a Procmon log: whose modules name a stack's frames, and what the frames are.

Procmon records every operation's stack as addresses and every process's module list (in its
process table, after the events).  A frame is named ``module+0xoffset`` through its process's
modules, falling back to the kernel's (the System process's list); what a frame is (RPC
runtime, system layer, kernel, other) and the RPC-dispatch rule are
:mod:`rpctrace.knowledge.stackframes`'.  One exception to "the event's process": Procmon logs a
Process Start under the new process, but the stack is its creator's (:meth:`ProcessStacks.creator`).
"""

from __future__ import annotations

from typing import Any

from rpctrace.knowledge.stackframes import (
    KERNEL,
    OTHER,
    RPC,
    SYSTEM,
    ModuleMap,
    find_rpc_dispatch,
    module_display,
)
from rpctrace.model import Stack

__all__ = ["ModuleMap", "ProcessStacks", "module_display"]  # the map itself is knowledge.stackframes'

MAX_THREADS = 1 << 20  # thread ids remembered with their process (creators of Process Start)
MAX_CREATOR_CANDIDATES = 4096  # processes tried as the creator of one Process Start
MAX_CREATOR_FRAMES = 64  # user frames compared per candidate


def _is_kernel(process: Any) -> bool:
    return process.pid == 4 or process.process_name == "System"


class ProcessStacks:
    """Module maps per process of a log (procmon-parser's process objects, keyed by identity),
    the kernel's map, and which process each thread last logged an event in."""

    def __init__(self, processes: dict[int, Any], pointer_size: int) -> None:
        self.processes = processes
        self.pointer_size = pointer_size
        kernel_mods: list[tuple[int, int, str]] = []  # (base, size, path) of the kernel's modules
        for proc in processes.values():
            if _is_kernel(proc):
                kernel_mods.extend((m.base_address, m.size, m.path) for m in proc.modules)
        self.kernel = ModuleMap(kernel_mods, pointer_size, is_kernel=True)
        self._maps: dict[int, ModuleMap] = {}
        self._by_pid: dict[int, list[Any]] = {}  # pid -> its processes (pids are reused), for creators
        self._thread_owner: dict[int, Any] = {}  # tid -> the process it last logged an event in
        for proc in processes.values():
            if isinstance(proc.pid, int):
                self._by_pid.setdefault(proc.pid, []).append(proc)

    def module_map(self, process: Any) -> ModuleMap:
        """The map of ``process``'s modules (the kernel's own for the System process)."""
        key = id(process)
        mm = self._maps.get(key)
        if mm is None:
            if _is_kernel(process):
                mm = self.kernel
            else:
                mm = ModuleMap(((m.base_address, m.size, m.path) for m in process.modules), self.pointer_size,
                               kernel=self.kernel)
            self._maps[key] = mm
        return mm

    def saw_thread(self, tid: Any, process: Any) -> None:
        """Thread ``tid`` logged an event in ``process`` (bounded: a hostile log has any number)."""
        if isinstance(tid, int) and (tid in self._thread_owner or len(self._thread_owner) < MAX_THREADS):
            self._thread_owner[tid] = process

    def creator(self, tid: Any, parent_pid: Any, child: Any, when: int, stack: tuple[int, ...]) -> tuple[Any, Any]:
        """``(creator, helper)`` for ``child``'s Process Start: the process whose thread ``tid``
        logged it, and so whose address space the stack is; ``helper`` is another process whose
        module list names the system modules' frames the creator's list does not (their bases
        are the same in every process of a boot), or None.

        The creator is the process ``tid`` last logged an event in; else a process that holds a
        frame of a module of its own (not a system module: appinfo, rpcss, an .exe), the one
        holding the most frames; else the declared parent.  The parent id alone is not enough:
        a process created on another's behalf names that other one as its parent (UAC's Appinfo
        service creates elevated processes with the caller's Explorer as their parent, DCOM's
        launcher those of the activating client, and Procmon logs the Process Create there too).
        (None, None) when the log has none of them."""
        parents = [p for p in self._by_pid.get(parent_pid, ()) if p is not child] if isinstance(parent_pid, int) else []
        alive = [p for p in self.processes.values()
                 if p is not child and p.pid != 4 and p.process_name != "System"
                 and (not p.start_time or p.start_time <= when) and (not p.end_time or when <= p.end_time)]
        user = [a for a in stack if not self.kernel.holds(a)][:MAX_CREATOR_FRAMES]
        best, best_score, best_own = None, 0, False
        seen: set[int] = set()
        for proc in (parents + alive)[:MAX_CREATOR_CANDIDATES]:
            if id(proc) in seen:
                continue
            seen.add(id(proc))
            mm = self.module_map(proc)
            held = [mm.frame(a) for a in user if mm.holds(a)]
            own = any(f.klass == OTHER for f in held)
            if (own, len(held)) > (best_own, best_score):
                best, best_score, best_own = proc, len(held), own
        owner = self._thread_owner.get(tid) if isinstance(tid, int) else None
        if owner is None or owner is child:
            owner = best if best_own else (parents[0] if parents else best)
        return owner, (best if best is not owner else None)

    def resolve(self, pe: Any, process: Any, kind: str, fields: dict[str, Any]) -> Stack | tuple[int, ...] | None:
        """The stack of procmon-parser's event ``pe`` (logged in ``process``), split into its
        kernel and user parts, with ``frames`` (``module+0xoffset``) and, when the stack runs
        through RPC server dispatch, ``rpc_dispatch`` added to ``fields``; a Process Start's
        also names the creator (``creator_tid``, ``stack_pid``).  None when there is no stack."""
        stack = tuple(pe.stacktrace) if pe.stacktrace else None
        if not stack:
            return stack
        owner, helper = process, None
        if kind == "process.start":
            # Procmon logs Process Start under the new process, but the thread that logged it,
            # and so the stack, is the creator's: the frames are the creator's modules
            fields["creator_tid"] = pe.tid
            owner, helper = self.creator(pe.tid, fields.get("parent_pid"), process, pe.date_filetime, stack)
            fields["stack_pid"] = owner.pid if owner is not None else None
        if owner is None:
            # the creator is not in the log: its modules are unknown, so are the frames' names
            fields["frames"] = [f"0x{a:x}" for a in stack]  # the split is inferred from the addresses
            return stack
        mm = self.module_map(owner)
        frames = [mm.frame(a) for a in stack]
        if owner is not process and helper is not None:  # a Process Start: see creator()
            named = self.module_map(helper)
            frames = [named.frame(f.address) if f.module_path is None and named.holds(f.address)
                      and named.frame(f.address).klass in (SYSTEM, RPC) else f for f in frames]
        fields["frames"] = [f.text for f in frames]
        kernel = 0
        while kernel < len(frames) and frames[kernel].klass == KERNEL:
            kernel += 1
        dispatch = find_rpc_dispatch(frames)
        if dispatch is not None:
            fields["rpc_dispatch"] = dispatch
        return Stack(stack[:kernel], stack[kernel:])
