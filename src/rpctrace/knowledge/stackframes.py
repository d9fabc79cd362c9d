"""Stack frames as RPC dispatch sees them, and the rule that finds the server's dispatch on a stack.

A frame is classed as the RPC runtime (rpcrt4), a system layer that is never an RPC server
routine (loader, API forwarders, CRT, WOW64), kernel, or other (application and service code).
The dispatch rule (:func:`find_rpc_dispatch`) reads a stack innermost first: the innermost rpcrt4
frame that calls an "other" frame names the server routine it dispatched to.  Procmon stacks
(rpctrace.sources.pml) and ETW StackWalk stacks (rpctrace.explain.dispatch) both use it.
"""

from __future__ import annotations

from dataclasses import dataclass

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
