"""The assembled trace: ordered events plus the process, thread and image tables.

Built once from one or more sources (:func:`rpctrace.trace.load`).  Correlation and explanation
ask it "which process is pid 1234 and what is its command line", "which module holds this return
address in that process", "which process did thread 88 belong to at time t".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rpctrace.errors import InputError
from rpctrace.knowledge.stackframes import Frame, ModuleMap, module_display
from rpctrace.model import Event, stack_parts

WOW64_FLAG = 0x2  # Process event Flags (v4): 1 PackageFullName, 2 Wow64, 4 Protected (facts §4)


@dataclass
class ProcessInfo:
    pid: int
    image: str | None = None
    command_line: str | None = None
    parent_pid: int | None = None
    session_id: int | None = None
    user_sid: str | None = None
    start: int | None = None
    end: int | None = None
    wow64: bool = False  # a process event of it carried the Wow64 flag (a 32-bit process on 64-bit Windows)


@dataclass
class ImageInfo:
    base: int
    size: int
    file_name: str
    load: int | None = None
    unload: int | None = None

    @property
    def module(self) -> str:
        return module_display(self.file_name)


#: the image list of a process the image table does not name (one object: see Trace.module_map)
_NO_IMAGES: tuple[ImageInfo, ...] = ()


@dataclass
class Trace:
    events: list[Event]
    processes: dict[int, ProcessInfo] = field(default_factory=dict)
    images: dict[int, list[ImageInfo]] = field(default_factory=dict)  # pid -> images sorted by base
    sources: list[dict] = field(default_factory=list)
    error: "InputError | None" = None  # the damage that ended reading early (strict mode)
    records: int | None = None  # events read, when they were streamed rather than kept in ``events``
    time_range: tuple[int, int] | None = None  # first and last event time, when events were streamed
    kinds: dict[str, int] = field(default_factory=dict)  # events by kind, as read (coverage)
    #: the images' build identities (image events, KernelTraceControl ImageID/DbgID), for symbols
    image_identities: Any = None
    symbols: Any = None  # a rpctrace.symbols.TraceSymbols once a symbol source is attached
    formats: list[str] = field(default_factory=list)  # the inputs' formats ("etl", "pml", "pcap", ...)
    #: pid -> (the image lists it was built from, the process's and the kernel's, with their
    #: lengths, and the map): see :meth:`module_map`
    _module_maps: dict[int, tuple[Any, int, Any, int, ModuleMap]] = field(
        default_factory=dict, init=False, repr=False, compare=False)
    _pointer_size: int | None = field(default=None, init=False, repr=False, compare=False)  # see _map_pointer_size

    def pointer_size(self) -> int | None:
        """The recording machine's pointer size (4 or 8) from the trace header, when there is one
        (a streamed trace keeps no events: its source's header fields say it)."""
        for ev in self.events:
            if ev.kind == "trace.header":
                size = ev.fields.get("pointer_size")
                if size in (4, 8):
                    return size
        for info in self.sources:
            header = info.get("header")
            size = header.get("pointer_size") if isinstance(header, dict) else None
            if size in (4, 8):
                return size
        return None

    def is_wow64(self, pid: int | None) -> bool:
        """Whether the process events of ``pid`` carry the Wow64 flag (a 32-bit process on a 64-bit
        Windows; Process event Flags v4: 1 PackageFullName, 2 Wow64, 4 Protected)."""
        if pid is None:
            return False
        info = self.process(pid)
        if info is not None and info.wow64:  # the tables noted it (a streamed trace keeps no events)
            return True
        for ev in self.events:  # a trace whose tables were not built from its events
            if ev.pid == pid and ev.kind in ("process.start", "process.rundown"):
                flags = ev.fields.get("flags")
                if isinstance(flags, int) and flags & WOW64_FLAG:
                    return True
        return False

    def process(self, pid: int | None) -> ProcessInfo | None:
        return self.processes.get(pid) if pid is not None else None

    def module_map(self, pid: int | None) -> ModuleMap:
        """The address -> module map of process ``pid`` (kernel modules, filed under pid 0, as its
        fallback): the one lookup every stack frame goes through (:class:`ModuleMap`).  Built on
        first use and again when the image table changed."""
        owner = 0 if pid is None else pid
        # A process without images shares one empty tuple (a fresh ``[]`` per call would never
        # match the cached one: every frame of such a process would build a map again), and
        # the kernel's list is checked too (a process's map falls back to the kernel's).
        get = self.images.get
        images = get(owner) or _NO_IMAGES
        kernel_images = get(0) or _NO_IMAGES
        hit = self._module_maps.get(owner)
        if (hit is not None and hit[0] is images and hit[1] == len(images) and hit[2] is kernel_images
                and hit[3] == len(kernel_images)):
            return hit[4]
        size = self._map_pointer_size()
        kernel = None if owner == 0 else self.module_map(0)
        mm = ModuleMap(((i.base, i.size, i.file_name, i) for i in images), size, kernel=kernel, is_kernel=owner == 0)
        self._module_maps[owner] = (images, len(images), kernel_images, len(kernel_images), mm)
        return mm

    def _map_pointer_size(self) -> int:
        """The pointer size the module maps mask addresses with (8 when the trace does not say)."""
        if self._pointer_size is None:
            self._pointer_size = self.pointer_size() or 8
        return self._pointer_size

    def image_for(self, pid: int | None, address: int) -> ImageInfo | None:
        """The module that holds ``address`` in process ``pid`` (kernel modules are under pid 0)."""
        item: ImageInfo | None = self.module_map(pid).item(address)
        return item

    def frame(self, pid: int | None, address: int) -> Frame:
        """The frame ``address`` makes in process ``pid``: ``module+0xoffset`` and its class
        (kernel, RPC runtime, system layer, other), as the Procmon reader classes its frames."""
        return self.module_map(pid).frame(address)

    def stack_json(self, pid: int | None, stack) -> dict:
        """The JSON form of an event's stack, the same in every output: ``stack`` (every frame as
        ``module+0xoffset``, innermost first), ``stack_kernel`` and ``stack_user`` (its kernel-mode
        and user-mode parts, same form) and ``stack_addresses`` (the raw addresses, hex); with
        symbols attached, ``stack_symbols`` too: per frame, what its PDB says (function,
        displacement, file, line, inlined frames) or None where no PDB names it."""
        kernel, user = stack_parts(stack)
        sym = self.symbolize
        k = [sym(pid, a) for a in kernel]
        u = [sym(pid, a) for a in user]
        out: dict[str, Any] = {"stack": k + u, "stack_kernel": k, "stack_user": u, "stack_addresses": [f"0x{a:x}" for a in stack]}
        if self.symbols is not None:
            out["stack_symbols"] = self.stack_symbols(pid, stack)
        return out

    def stack_symbols(self, pid: int | None, stack) -> list[dict | None]:
        """Per frame of ``stack`` (innermost first, kernel then user as :meth:`stack_json` orders
        them), the symbol's JSON form, or None where no PDB names the address (or no symbols)."""
        kernel, user = stack_parts(stack)
        out: list[dict | None] = []
        for a in list(kernel) + list(user):
            s = self.symbol(pid, a)
            out.append(s.as_dict() if s is not None else None)
        return out

    def symbolize(self, pid: int | None, address: int) -> str:
        """How every output names a stack frame: ``module!function+0xdisp`` when a symbol source
        was attached (:attr:`symbols`, see :func:`rpctrace.pipeline.attach_symbols`) and a PDB
        names the address, else ``module+0xoffset``, else the bare address."""
        if self.symbols is not None:
            return self.symbols.text(pid, address)
        return self.module_offset(pid, address)

    def symbol(self, pid: int | None, address: int) -> Any:
        """The :class:`~rpctrace.symbols.Symbol` of an address, when symbols are attached and a
        PDB names it; else None."""
        return self.symbols.symbol(pid, address) if self.symbols is not None else None

    def module_offset(self, pid: int | None, address: int) -> str:
        """``module+0xoffset`` for an address, or the bare address when no module holds it."""
        return self.module_map(pid).frame(address).text


#: the image events that make the image table (image.id/image.dbgid add identities, not images)
_IMAGE_EVENTS = frozenset({"image.load", "image.unload", "image.rundown"})


class TableBuilder:
    """Builds the process and image tables from process and image events, one at a time."""

    def __init__(self) -> None:
        from rpctrace.symbols.identity import TraceImages

        self.processes: dict[int, ProcessInfo] = {}
        self._images: dict[int, dict[int, ImageInfo]] = {}
        self.identities = TraceImages()  # what each image's build is (for symbols)

    def add(self, ev: Event) -> None:
        kind = ev.kind
        if kind.startswith("process.") and ev.pid is not None and kind != "process.other":
            f = ev.fields
            info = self.processes.get(ev.pid)
            if info is None:
                info = self.processes[ev.pid] = ProcessInfo(ev.pid)
            info.image = f.get("image") or info.image
            info.command_line = f.get("command_line") or info.command_line
            info.parent_pid = f.get("parent_pid", info.parent_pid)
            info.session_id = f.get("session_id", info.session_id)
            info.user_sid = f.get("user_sid") or info.user_sid
            flags = f.get("flags")
            if kind in ("process.start", "process.rundown") and isinstance(flags, int) and flags & WOW64_FLAG:
                info.wow64 = True
            if kind == "process.start":
                info.start = ev.ts
            elif kind == "process.end":
                info.end = ev.ts
        elif kind.startswith("image."):
            self.identities.add(ev)
            if kind not in _IMAGE_EVENTS or ev.pid is None:
                return
            f = ev.fields
            per = self._images.setdefault(ev.pid, {})
            img = per.get(f["image_base"])
            if img is None:
                img = per[f["image_base"]] = ImageInfo(f["image_base"], f["image_size"], f.get("file_name", ""))
            if kind == "image.load":
                img.load = ev.ts
            elif kind == "image.unload":
                img.unload = ev.ts

    def finish(self, trace: Trace) -> None:
        trace.processes.update(self.processes)
        trace.images = {pid: sorted(per.values(), key=lambda i: i.base) for pid, per in self._images.items()}
        trace.image_identities = self.identities


def build_tables(trace: Trace) -> None:
    """Fill the process and image tables from process and image events."""
    builder = TableBuilder()
    for ev in trace.events:
        if ev.kind.startswith(("process.", "image.")):
            builder.add(ev)
    builder.finish(trace)
