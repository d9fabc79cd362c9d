"""Symbols for a whole trace: stack frame addresses -> ``module!function+0xdisp``.

:class:`TraceSymbols` is what renderers and analyses use: it joins the trace's image table
(:class:`rpctrace.trace.Trace`: which image holds an address in a process) with the build
identities of :class:`~rpctrace.symbols.identity.TraceImages` and asks the
:class:`~rpctrace.symbols.symbolizer.Symbolizer`.  Every answer is either a :class:`Symbol`
read from a PDB or ``None`` (:meth:`TraceSymbols.text` then gives the trace layer's
``module+0xoffset``, or the bare address when no image holds it).
"""

from __future__ import annotations

from rpctrace.symbols.identity import TraceImages
from rpctrace.symbols.symbolizer import ImageRef, Symbol, Symbolizer


class TraceSymbols:
    """Resolves addresses of one assembled trace (see the module docstring)."""

    def __init__(self, trace, symbolizer: Symbolizer, images: TraceImages | None = None):
        self.trace = trace
        self.symbolizer = symbolizer
        if images is None:
            images = TraceImages().add_all(trace.events)
        self._refs = images.images()

    def image_ref(self, pid: int | None, address: int) -> ImageRef | None:
        """The image holding ``address`` in ``pid`` (kernel images under pid 0) with what the
        trace says of its build."""
        info = self.trace.image_for(pid, address)
        if info is None:
            return None
        for owner in (pid, 0):
            ref = self._refs.get((owner, info.base))
            if ref is not None and ref.size == info.size:
                return ref
        return ImageRef(info.file_name, info.base, info.size)

    def symbol(self, pid: int | None, address: int) -> Symbol | None:
        ref = self.image_ref(pid, address)
        if ref is None:
            return None
        return self.symbolizer.resolve(ref, address - ref.base)

    def text(self, pid: int | None, address: int) -> str:
        """``module!function+0xdisp`` when a PDB names it, else ``module+0xoffset``/address."""
        sym = self.symbol(pid, address)
        return sym.text() if sym is not None else self.trace.module_offset(pid, address)

    def needed(self, include_all: bool = False) -> list[ImageRef]:
        """The images the trace's stacks run through (every loaded image with ``include_all``),
        each build once, in the order first met."""
        if include_all:
            seen: dict[tuple, ImageRef] = {}
            for ref in self._refs.values():
                seen.setdefault(ref.cache_key(), ref)
            return list(seen.values())
        out: dict[tuple, ImageRef] = {}
        looked: set[tuple] = set()
        for ev in self.trace.events:
            frames = ev.stack
            if not frames:
                continue
            for addr in frames:
                key = (ev.pid, addr >> 12)  # images start on page boundaries: one image per page
                if key in looked:
                    continue
                looked.add(key)
                found = self.image_ref(ev.pid, addr)
                if found is not None:
                    out.setdefault(found.cache_key(), found)
        return list(out.values())
