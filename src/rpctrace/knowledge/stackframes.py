"""Stack frames as RPC dispatch sees them, and the rule that finds the server's dispatch on a stack.

A frame is classed as the RPC runtime (rpcrt4), a system layer that is never an RPC server
routine (loader, API forwarders, CRT, WOW64), kernel, or other (application and service code).
The dispatch rule (:func:`find_rpc_dispatch`) reads a stack innermost first: the innermost rpcrt4
frame that calls an "other" frame names the server routine it dispatched to.  Procmon stacks
(rpctrace.sources.pml) and ETW StackWalk stacks (rpctrace.explain.dispatch) both use it.

:class:`ModuleMap` is the one address -> module lookup: an address space's modules (falling back
to the kernel's), giving the module that holds an address and the :class:`Frame` it makes
(``module+0xoffset`` and its class).  The Procmon reader builds one per process from the log's
process table; the assembled trace (``Trace.image_for``, ``Trace.frame``) one per process from
its image table; explain reads ETW stacks through the trace's.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Iterable

#: user-mode layers that are never an RPC server routine (API forwarders, loader, CRT, WOW64)
SYSTEM_MODULES = frozenset({"ntdll.dll", "kernelbase.dll", "kernel32.dll", "advapi32.dll", "sechost.dll",
                            "msvcrt.dll", "ucrtbase.dll", "wow64.dll", "wow64win.dll", "wow64cpu.dll",
                            "wow64base.dll", "wow64con.dll"})
#: COM's channel: rpcrt4 calls it on both sides of a DCOM call
COM_MODULES = frozenset({"combase.dll", "ole32.dll"})
#: what may lie outward of a COM dispatch on an STA or MTA worker (message loop, thread start)
_COM_OUTWARD = SYSTEM_MODULES | COM_MODULES | {"user32.dll", "win32u.dll"}
RPC_MODULE = "rpcrt4.dll"
RPC, SYSTEM, KERNEL, OTHER = "rpc", "system", "kernel", "other"
#: modules tried below an address before giving up (modules do not overlap; stale entries might)
MAX_LOOKBACK = 64
#: cached frames per map (stacks repeat; a hostile trace has any number of addresses)
MAX_CACHED = 1 << 20


@dataclass(frozen=True, slots=True)
class Frame:
    address: int
    text: str  # module+0xoffset, or 0x... when no module holds the address
    module_path: str | None
    offset: int | None
    klass: str  # RPC / SYSTEM / KERNEL / OTHER

    @property
    def module_file(self) -> str:
        """The module's file name in lower case (``rpcrt4.dll``), or "" when unresolved."""
        return self.module_path.replace("/", "\\").rsplit("\\", 1)[-1].lower() if self.module_path else ""


def _com_infrastructure_outward(frames: list[Frame], start: int) -> bool:
    """True when the frames outward of ``start`` reach rpcrt4 or the thread's base through COM,
    message-loop and system frames only (a COM worker or STA thread, not an app's proxy call)."""
    for fr in frames[start:]:
        if fr.klass in (RPC, KERNEL, SYSTEM):
            if fr.klass == RPC:
                return True
            continue
        if fr.module_file in _COM_OUTWARD:
            continue
        return False
    return True


def find_rpc_dispatch(frames: list[Frame]) -> dict | None:
    """The RPC server dispatch on a stack (innermost frame first), or None.

    The innermost rpcrt4 frame that calls a non-system user-mode frame names that frame as the
    dispatch entry.  When the callee is COM's channel (combase/ole32), rpcrt4 may be a *client*
    proxy calling the channel, so such a transition only counts when what lies outward of the
    rpcrt4 frames is COM/RPC infrastructure (worker thread, STA message loop) rather than the
    application that made the call; otherwise the search goes on outward.
    """
    n = len(frames)
    for i in range(1, n):
        if frames[i].klass == RPC and frames[i - 1].klass == OTHER:
            entry = frames[i - 1]
            j = i
            while j < n and frames[j].klass == RPC:
                j += 1
            if entry.module_file in COM_MODULES and not _com_infrastructure_outward(frames, j):
                continue
            return {
                "entry": entry.text,
                "entry_module": entry.module_path,
                "entry_offset": entry.offset,
                "entry_index": i - 1,
                "symbol": None,  # PML stores no symbols
                "frames": [f.text for f in frames[i:j]],
                "rule": "rpcrt4 frame calling a non-system user-mode frame",
            }
    return None


def module_display(path: str) -> str:
    """How rpctrace names a module in ``module+0xoffset``: the file name without .dll/.exe/.sys."""
    name = path.replace("/", "\\").rsplit("\\", 1)[-1]
    return name[:-4] if name.lower().endswith((".dll", ".exe", ".sys")) else name


def kernel_start(pointer_size: int) -> int:
    """Where kernel space starts: 0x80000000 on 32-bit Windows, 0xFFFF800000000000 on 64-bit."""
    return 0xFFFF800000000000 if pointer_size == 8 else 0x80000000


def frame_class(module_file: str, address: int, in_kernel: bool, pointer_size: int = 8) -> str:
    """The class of a frame in module ``module_file`` (lower-case file name, "" when no module
    holds it): kernel (a kernel module, or kernel space), the RPC runtime, a system layer, other."""
    if in_kernel or address >= kernel_start(pointer_size):
        return KERNEL
    if module_file == RPC_MODULE:
        return RPC
    if module_file in SYSTEM_MODULES:
        return SYSTEM
    return OTHER


class ModuleMap:
    """Address -> module for one address space, falling back to ``kernel`` (the kernel's map).

    ``modules`` are ``(base, size, path)`` or ``(base, size, path, item)``: ``item`` is what
    :meth:`item` returns for the module (the caller's own record of it, e.g. the trace's
    ImageInfo; None when not given).  ``pointer_size``
    (4 or 8) masks addresses and decides where kernel space starts for addresses no module holds.
    Frames are cached per address, up to :data:`MAX_CACHED`.
    """

    def __init__(self, modules: Iterable[tuple[Any, ...]], pointer_size: int = 8,
                 kernel: ModuleMap | None = None, is_kernel: bool = False) -> None:
        mods = sorted(((int(m[0]), int(m[1]), m[2] or "", m[3] if len(m) > 3 else None) for m in modules if m[1]),
                      key=lambda m: m[0])
        self._bases = [m[0] for m in mods]
        self._mods = mods
        self._kernel = kernel
        self._is_kernel = is_kernel
        self.pointer_size = pointer_size
        self._mask = (1 << (8 * pointer_size)) - 1
        self._cache: dict[int, Frame] = {}

    def _find(self, address: int) -> tuple[int, int, str, Any] | None:
        i = bisect.bisect_right(self._bases, address) - 1
        stop = max(-1, i - MAX_LOOKBACK)
        while i > stop:
            mod = self._mods[i]
            base, size = mod[0], mod[1]
            if base <= address < base + size:
                return mod
            if address - base > 1 << 32:  # no module is 4 GiB large
                break
            i -= 1
        return None

    def _lookup(self, address: int) -> tuple[tuple[int, int, str, Any] | None, bool]:
        """(the module holding ``address``, whether it is a kernel module)."""
        address &= self._mask
        found = self._find(address)
        if found is not None:
            return found, self._is_kernel
        if self._kernel is not None:
            found = self._kernel._find(address)
        return found, found is not None

    def holds(self, address: int) -> bool:
        """Whether one of this map's own modules (not the kernel's) holds ``address``."""
        return self._find(address & self._mask) is not None

    def item(self, address: int) -> Any:
        """The ``item`` of the module holding ``address`` (here or in the kernel's map), or None."""
        found, _ = self._lookup(address)
        return found[3] if found is not None else None

    def frame(self, address: int) -> Frame:
        """The frame ``address`` makes: ``module+0xoffset`` (or ``0x...``) and its class."""
        hit = self._cache.get(address)
        if hit is not None:
            return hit
        found, in_kernel = self._lookup(address)
        address &= self._mask
        if found is None:
            fr = Frame(address, f"0x{address:x}", None, None, frame_class("", address, False, self.pointer_size))
        else:
            base, _size, path, _item = found
            low = path.replace("/", "\\").rsplit("\\", 1)[-1].lower()
            fr = Frame(address, f"{module_display(path)}+0x{address - base:x}", path, address - base,
                       frame_class(low, address, in_kernel, self.pointer_size))
        if len(self._cache) < MAX_CACHED:
            self._cache[address] = fr
        return fr
