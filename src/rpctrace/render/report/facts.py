"""What the page says about calls: labels for processes and interfaces (the filters' keys),
statuses and operation targets.  Pure lookups over the trace's tables and the knowledge base."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from rpctrace.correlate.procedure import procedure_of
from rpctrace.knowledge import codes, interfaces
from rpctrace.model import target_text
from rpctrace.render.report.safe import defang

if TYPE_CHECKING:
    from rpctrace.correlate.calls import Call
    from rpctrace.schema import Finding
    from rpctrace.trace.model import Trace

def status_text(code, hint: str = "NTSTATUS") -> str:
    if code is None:
        return "?"
    if not isinstance(code, int):
        return defang(code, 80)
    if code == 0:
        # an RPC status of 0 says the call came back, not that the procedure succeeded
        return "0 (the call completed)" if hint == "RPC" else "0 (success)"
    name = codes.name(code, hint=hint)
    return f"0x{code & 0xFFFFFFFF:08X}" + (f" {name}" if name else "")


def op_target(op) -> str:
    return target_text(op)


class FailureMemo:
    """Which calls failed, worked out once per page (a page asks about each call many times)."""

    def __init__(self) -> None:
        self._blamed: dict[int, list] = {}
        self._failed: dict[int, bool] = {}

    def blamed(self, call) -> list:
        """The call's own failed operations that deserve blame."""
        got = self._blamed.get(id(call))
        if got is None:
            got = self._blamed[id(call)] = call.blamed if call.operations else []
        return got

    def failed(self, call) -> bool:
        """Whether the call or a call it led to failed with a blame-worthy operation."""
        got = self._failed.get(id(call))
        if got is None:
            self._failed[id(call)] = False  # a cycle (hostile input) counts as not failed
            got = bool(self.blamed(call)) or any(self.failed(c) for c in call.children)
            self._failed[id(call)] = got
        return got


class Names:
    """Labels for processes and interfaces, and the keys the filters use."""

    def __init__(self, trace: Trace, calls: Iterable[Call], findings: Iterable[Finding]) -> None:
        from rpctrace.knowledge.services import service_for

        self.trace = trace
        self.memo = FailureMemo()
        self._service_for = service_for
        self.iface_keys: dict[str | None, str] = {}
        self.pids: set[int] = set()
        self._served: dict[int, dict] = {}  # server pid -> the interfaces it served (name the services)
        for call in calls:
            self.iface(call.interface)
            self.pids.update(p for p in (call.client_pid, call.server_pid) if p is not None)
            if call.server_pid is not None and call.interface:
                self._served.setdefault(call.server_pid, {})[call.interface] = None
        for f in findings:
            self.iface((f.get("interface") or {}).get("uuid"))
            for side in (f.get("client"), f.get("server")):
                pid = (side or {}).get("pid")
                if isinstance(pid, int):
                    self.pids.add(pid)

    def iface(self, uuid: str | None) -> str:
        key = self.iface_keys.get(uuid)
        if key is None:
            key = self.iface_keys[uuid] = f"i{len(self.iface_keys)}"
        return key

    def iface_label(self, uuid: str | None) -> str:
        if uuid is None:
            return "(no interface: ALPC only)"
        name, _ = interfaces.lookup(uuid)
        return f"{name} ({uuid})" if name else str(uuid)

    def image(self, pid) -> str:
        info = self.trace.process(pid)
        if info and info.image:
            return info.image
        return "?" if pid is None else f"pid {pid}"

    def service(self, pid, interface=None) -> str | None:
        """The service a process hosts (svchost -s NAME, else the owner of an interface it serves)."""
        info = self.trace.process(pid)
        if not info:
            return None
        try:
            if interface is not None or pid not in self._served:
                return self._service_for(info.image, info.command_line, interface)
            found = [self._service_for(info.image, info.command_line, i) for i in self._served[pid]]
            return ", ".join(dict.fromkeys(x for x in found if x)) or None
        except Exception:  # a hostile command line must not stop the report
            return None

    def process_label(self, pid) -> str:
        svc = self.service(pid)
        return f"{self.image(pid)}" + (f" ({svc})" if svc else "") + ("" if pid is None else f" · pid {pid}")

    def command_line(self, pid) -> str | None:
        info = self.trace.process(pid)
        return info.command_line if info else None

    def what(self, call) -> tuple[str, str]:
        """(interface name or uuid, procedure or 'opnum N')."""
        iname, proc, source = procedure_of(self.trace, call)
        where = proc or (f"opnum {call.opnum}" if call.opnum is not None else "?")
        if source == "symbols":
            where += " (from symbols)"
        return iname or call.interface or (f"endpoint {call.endpoint}" if call.endpoint else "ALPC"), where


def pids_text(*pids) -> str:
    return " ".join(str(p) for p in dict.fromkeys(p for p in pids if isinstance(p, int)))


