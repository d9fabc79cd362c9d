"""What procedure a call ran: the interface database's name, else the server's own stack.

The interface databases (:mod:`rpctrace.knowledge.interfaces`, ``--rpcdb``) name the
procedures of interfaces someone documented or extracted.  Where they do not, the server's
stack still shows what ran: the RPC runtime (``RPCRT4``) unmarshals the request and calls the
server function from ``RPCRT4!Invoke`` (``NdrStubCall2/3``, ``NdrServerCall2``, ...), so the
first frame above the runtime's dispatch frames, on a stack taken on the server's thread while
it handled the call, *is* the procedure, exactly as the engineer of the seed article reads
``audiosrv!PolicyConfigSetDefaultEndpoint`` above ``RPCRT4!Invoke`` in WinDbg.  Its name needs
the module's PDB (:mod:`rpctrace.symbols`): without symbols, or when the PDB does not name the
frame, nothing is derived (an offset is not a procedure name).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rpctrace.knowledge import interfaces
from rpctrace.model import stack_parts

if TYPE_CHECKING:
    from rpctrace.correlate.calls import Call
    from rpctrace.trace.model import Trace

__all__ = ["RUNTIME_MODULES", "Procedure", "derived_procedure", "procedure_of", "server_function"]

#: the modules of the RPC runtime that dispatch a request to the server function (lower case,
#: without extension); ``rpcrt4`` on every Windows version since NT
RUNTIME_MODULES = frozenset({"rpcrt4"})

#: (interface name, procedure name, where the procedure name came from: ``"database"``,
#: ``"symbols"`` or None when nothing names it)
Procedure = tuple["str | None", "str | None", "str | None"]


def _module(trace: Trace, pid: int | None, address: int) -> str | None:
    img = trace.image_for(pid, address)
    return img.module.lower().rsplit(".", 1)[0] if img is not None and img.module else None


def server_function(trace: Trace, call: Call) -> Any:
    """The :class:`~rpctrace.symbols.Symbol` of the server function that handled ``call``: on
    the first user-mode stack taken in the server process during the call that runs through the
    RPC runtime, the frame the runtime's dispatch called.  None without symbols, without such a
    stack, or when no PDB names that frame."""
    if trace.symbols is None or call.server_pid is None:
        return None
    pid = call.server_pid
    for op in call.operations:
        if not op.stack or op.pid != pid:
            continue
        _, user = stack_parts(op.stack)
        # innermost first: walk from the thread's start inwards to the runtime's frames, through
        # them, and take the first frame past them
        i = len(user) - 1
        while i >= 0 and _module(trace, pid, user[i]) not in RUNTIME_MODULES:
            i -= 1
        if i < 0:
            continue  # this stack does not run through the RPC runtime (a thread of its own)
        while i >= 0 and _module(trace, pid, user[i]) in RUNTIME_MODULES:
            i -= 1
        if i < 0:
            continue  # taken inside the runtime itself
        # every stack of this call leads to the same server function: the first one decides
        return trace.symbol(pid, user[i])
    return None


def derived_procedure(trace: Trace, call: Call) -> str | None:
    """The server function's name (``PolicyConfigSetDefaultEndpoint``,
    ``CSubEndpointDevice::SetRegValue``) from symbols, or None (see :func:`server_function`)."""
    sym = server_function(trace, call)
    return sym.function if sym is not None else None


def procedure_of(trace: Trace, call: Call) -> Procedure:
    """(interface name, procedure, its source) of ``call``: the database's names, else a name
    derived from the server's stack with symbols (source ``"symbols"``)."""
    iname, proc = interfaces.lookup(call.interface, call.opnum) if call.interface else (None, None)
    if proc:
        return iname, proc, "database"
    derived = derived_procedure(trace, call) if call.interface or call.server_pid is not None else None
    if derived:
        return iname, derived, "symbols"
    return iname, None, None
