"""Which calls a person asked for: the ``--client``, ``--server``, ``--interface`` and ``--failed``
filters of ``calls``, ``tree``, ``report`` and ``export``, with one meaning everywhere.

A process is named the way people name it: ``rundll32.exe``, ``rundll32`` or ``RUNDLL32`` (the
image, with or without ``.exe``, any case, a full path's last part), a service the process hosts
(``Audiosrv``: svchost's ``-s`` option, or the owner of the interface the process serves), a pid,
or ``pid:tid``.  An interface is named by its UUID (braces and case do not matter) or its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

if TYPE_CHECKING:
    from rpctrace.correlate.calls import Call
    from rpctrace.trace.model import Trace

__all__ = ["CallFilter", "image_key"]


def image_key(name: str | None) -> str:
    """What an image name is compared by: the last path part, lower case, without ``.exe``."""
    if not name:
        return ""
    base = name.replace("/", "\\").rsplit("\\", 1)[-1].strip().lower()
    return base[:-4] if base.endswith(".exe") else base


@dataclass(frozen=True)
class CallFilter:
    """The filters of one listing; all that are given must hold."""

    client: str | None = None
    server: str | None = None
    interface: str | None = None
    failed: bool = False

    @property
    def active(self) -> bool:
        return bool(self.client or self.server or self.interface or self.failed)

    def describe(self) -> str:
        """The filters as the command line gave them (for "showing N of M calls (...)")."""
        parts = [f"--{name} {value}" for name, value in
                 (("client", self.client), ("server", self.server), ("interface", self.interface)) if value]
        if self.failed:
            parts.append("--failed")
        return " ".join(parts)

    def matcher(self, trace: "Trace") -> Callable[["Call"], bool]:
        """A predicate over the calls of ``trace`` (lookups are cached for the trace's life)."""
        client = _ProcessMatch(self.client, trace, "client") if self.client else None
        server = _ProcessMatch(self.server, trace, "server") if self.server else None
        interface = _InterfaceMatch(self.interface) if self.interface else None
        failed = self.failed

        def match(c: "Call") -> bool:
            if client is not None and not client(c.client_pid, c.client_tid, None):
                return False
            if server is not None and not server(c.server_pid, c.server_tid, c.interface):
                return False
            if interface is not None and not interface(c.interface):
                return False
            if failed and not (c.failures or c.status or c.server_status):
                return False
            return True

        return match

    def apply(self, calls: Iterable["Call"], trace: "Trace") -> Iterator["Call"]:
        """The calls that pass, lazily (a listing streams)."""
        if not self.active:
            yield from calls
            return
        match = self.matcher(trace)
        for c in calls:
            if match(c):
                yield c


class _ProcessMatch:
    """``NAME|PID[:TID]`` against a call's side."""

    def __init__(self, spec: str, trace: "Trace", side: str) -> None:
        self.trace = trace
        self.side = side
        spec = spec.strip()
        head, sep, tail = spec.partition(":")
        self.pid: int | None = None
        self.tid: int | None = None
        self.name = ""
        if head.isdigit() and (not sep or tail.isdigit()):
            self.pid = int(head)
            self.tid = int(tail) if sep else None
        else:
            self.name = image_key(spec)
            self.service = spec.strip().lower()
        self._by_pid: dict[tuple[int, str | None], bool] = {}  # (pid, interface) -> matches

    def __call__(self, pid: int | None, tid: int | None, interface: str | None) -> bool:
        if pid is None:
            return False
        if self.pid is not None:
            return pid == self.pid and (self.tid is None or tid == self.tid)
        key = (pid, interface)
        hit = self._by_pid.get(key)
        if hit is None:
            hit = self._by_pid[key] = self._names_match(pid, interface)
        return hit

    def _names_match(self, pid: int, interface: str | None) -> bool:
        info = self.trace.process(pid)
        if info is None:
            return False
        if image_key(info.image) == self.name:
            return True
        from rpctrace.knowledge.services import service_for

        try:
            service = service_for(info.image, info.command_line, interface if self.side == "server" else None)
        except Exception:  # a hostile command line only means no service name
            return False
        if not service:
            return False
        return service.lower() == self.service


class _InterfaceMatch:
    """``UUID|NAME`` against a call's interface."""

    def __init__(self, spec: str) -> None:
        self.want = spec.strip().strip("{}").lower()
        self._seen: dict[str | None, bool] = {}

    def __call__(self, uuid: str | None) -> bool:
        hit = self._seen.get(uuid)
        if hit is None:
            hit = self._seen[uuid] = self._match(uuid)
        return hit

    def _match(self, uuid: str | None) -> bool:
        if not uuid:
            return False
        if uuid.lower() == self.want:
            return True
        from rpctrace.knowledge.interfaces import info

        known = info(uuid)
        return bool(known and known.name and known.name.lower() == self.want)
