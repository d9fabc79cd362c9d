"""Helpers of the symbol tests: the built PE/PDB pairs, llvm-pdbutil's saved view of them, and a
symbol store served over HTTP on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

SYMBOLS = Path(__file__).parent / "data" / "symbols"
MANIFEST = json.loads((SYMBOLS / "manifest.json").read_text())


@dataclass
class Proc:
    name: str
    section: int
    offset: int
    size: int
    inlines: list[tuple[str, int]] = field(default_factory=list)  # (inlinee, first code offset)


@dataclass
class Dump:
    sections: dict[int, int]  # section number -> virtual address
    publics: list[tuple[str, int, int, bool]]  # name, section, offset, is a function
    procs: list[Proc]

    def rva(self, section: int, offset: int) -> int:
        return self.sections[section] + offset


_PUB = re.compile(r"S_PUB32 \[size = \d+\] `(.*)`\n\s+flags = (.*?), addr = (\d{4}):(\d+)")
_PROC = re.compile(r"S_[GL]PROC32 \[size = \d+\] `(.*)`\n\s+parent = \d+, end = \d+, addr = (\d{4}):(\d+), "
                   r"code size = (\d+)")
_SECTION = re.compile(r"SECTION HEADER #(\d+)\n\s+(\S*) name\n\s+([0-9A-Fa-f]+) virtual size\n\s+([0-9A-Fa-f]+) "
                      r"virtual address")
_INLINE = re.compile(r"S_INLINESITE \[size = \d+\]\n\s+inlinee = 0x[0-9A-Fa-f]+ \((.*?)\).*?\n((?:\s+[0-9A-F]+\s+.*\n)+)")


def parse_dump(text: str) -> Dump:
    """llvm-pdbutil ``dump --publics --symbols --section-headers`` output, the parts the tests use."""
    sections = {int(m.group(1)): int(m.group(4), 16) for m in _SECTION.finditer(text)}
    publics = [(m.group(1), int(m.group(3)), int(m.group(4)), "function" in m.group(2)) for m in _PUB.finditer(text)]
    procs: list[Proc] = []
    matches = list(_PROC.finditer(text))
    for i, m in enumerate(matches):
        proc = Proc(m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)))
        body = text[m.end(): matches[i + 1].start() if i + 1 < len(matches) else len(text)]
        for s in _INLINE.finditer(body):
            code = re.search(r"\bcode 0x([0-9A-Fa-f]+)", s.group(2))
            if code:
                proc.inlines.append((s.group(1), int(code.group(1), 16)))
        procs.append(proc)
    return Dump(sections, publics, procs)


def dump_of(pdb: Path) -> Dump:
    return parse_dump(pdb.with_suffix(".pdbutil.txt").read_text())


def built(arch: str | None = None) -> list[dict]:
    return [m for m in MANIFEST["modules"] if arch is None or m["arch"] == arch]


def make_store(root: Path, arch: str, *, binaries: bool = True, pdbs: bool = True) -> Path:
    """A symbol store of the built modules: ``name.pdb/GUIDAGE/name.pdb`` (and the binary index)."""
    from rpctrace.symbols.store import LocalStore, binary_key, pdb_key

    store = LocalStore(str(root))
    for m in built(arch):
        if pdbs:
            store.put_file(pdb_key(m["pdb_name"], m["guid"], m["age"]), str(SYMBOLS / m["pdb"]))
        if binaries:
            store.put_file(binary_key(m["module"], m["timestamp"], m["size_of_image"]), str(SYMBOLS / m["image"]))
    return root


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        if self.server.fail_first and self.server.failures < self.server.fail_first:  # type: ignore[attr-defined]
            self.server.failures += 1  # type: ignore[attr-defined]
            self.send_error(503, "busy")
            return
        super().do_GET()


class SymbolServer:
    """A symbol store served over HTTP on 127.0.0.1 (a thread; stops with :meth:`stop`)."""

    def __init__(self, root: Path, fail_first: int = 0):
        handler = functools.partial(_Handler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.requests = []  # type: ignore[attr-defined]
        self.httpd.fail_first = fail_first  # type: ignore[attr-defined]
        self.httpd.failures = 0  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def requests(self) -> list[str]:
        return self.httpd.requests  # type: ignore[attr-defined]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def free_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then closed)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
