"""The symbolizer: module + offset -> ``module!function+0xdisplacement`` from the right PDB.

One :class:`Symbolizer` serves a whole run.  Given an image as the trace saw it
(:class:`ImageRef`: file name, base, size, timestamp, and the PDB identity when the trace holds
KernelTraceControl DbgID_RSDS events) and an offset in it, it finds the PDB of that exact build
and looks the offset up:

1. **The PDB identity** (GUID, age, PDB name) comes from the trace when it has it; else from a
   binary given with ``--image-path`` (matched to the loaded image by file name, SizeOfImage and
   TimeDateStamp; its debug directory names the PDB); else from the binary found in the symbol
   path's stores and servers by its binary index (TimeDateStamp + SizeOfImage).
2. **The PDB** is looked for in each entry of the symbol path in turn (plain directories,
   stores, servers: :mod:`rpctrace.symbols.path`), then beside the binary.  A PDB found in a
   plain directory or beside a binary is used only when its own GUID and age match.
3. **The lookup** (:mod:`rpctrace.symbols.pdb`) gives the function holding the offset and the
   functions inlined there; names are printed as debuggers print them
   (:mod:`rpctrace.symbols.names`).

Nothing is guessed: an image whose PDB cannot be found, or a PDB that does not read, gives
``None`` and the caller keeps ``module+offset``; :attr:`Symbolizer.problems` holds one line per
file that could not be read and per server that could not be reached, and :meth:`status` says
for each image what was found where, or what was looked for and where.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from rpctrace.errors import InputError, printable
from rpctrace.symbols import names as N
from rpctrace.symbols.download import Downloader, DownloadError, ServerUnreachable
from rpctrace.symbols.path import Entry, SymbolPath
from rpctrace.symbols.pdb import DEFAULT_TIMEOUT, PdbSymbols, load_pdb
from rpctrace.symbols.pe import PeInfo, read_pe
from rpctrace.symbols.store import LocalStore, StoreError, StoreKey, binary_key, file_name, flat_candidates, pdb_key

#: most images and PDBs remembered in one run (a trace names a few hundred modules)
MAX_IMAGES = 8192
MAX_PDBS = 512
MAX_PROBLEMS = 200
#: most files looked at in one --image-path directory
MAX_IMAGE_DIR_FILES = 200_000
#: module names debuggers print under another name
MODULE_ALIASES = {"ntoskrnl": "nt", "ntkrnlmp": "nt", "ntkrnlpa": "nt", "ntkrpamp": "nt"}
_MODULE_EXTENSIONS = (".dll", ".exe", ".sys", ".drv", ".cpl", ".ocx", ".efi", ".mui", ".scr", ".acm", ".ax", ".tsp")


def module_name(path_or_name: str) -> str:
    """The module name a debugger prints: the file name without its extension (``nt`` for the
    kernel)."""
    name = path_or_name.replace("/", "\\").rsplit("\\", 1)[-1]
    low = name.lower()
    for ext in _MODULE_EXTENSIONS:
        if low.endswith(ext):
            name = name[: -len(ext)]
            break
    return MODULE_ALIASES.get(name.lower(), name)


@dataclass(frozen=True)
class ImageRef:
    """A loaded image as a trace records it.  Only ``name`` is required; every other field
    narrows the match (``None``/0 = not known)."""

    name: str
    base: int = 0
    size: int = 0
    timestamp: int | None = None
    checksum: int | None = None
    pdb_guid: str | None = None
    pdb_age: int | None = None
    pdb_name: str | None = None

    @property
    def file_name(self) -> str:
        return self.name.replace("/", "\\").rsplit("\\", 1)[-1]

    @property
    def module(self) -> str:
        return module_name(self.name)

    @property
    def has_pdb_identity(self) -> bool:
        return self.pdb_identity is not None

    @property
    def pdb_identity(self) -> tuple[str, int, str] | None:
        """``(guid, age, PDB name)`` when the trace gives all three, else None."""
        if self.pdb_guid and self.pdb_name and self.pdb_age is not None:
            return self.pdb_guid, self.pdb_age, self.pdb_name
        return None

    def cache_key(self) -> tuple:
        return (self.file_name.lower(), self.size, self.timestamp, (self.pdb_guid or "").lower(), self.pdb_age,
                (self.pdb_name or "").lower())


@dataclass(frozen=True)
class Frame:
    """One frame as a debugger lists it.  ``displacement`` is ``None`` for an inlined frame."""

    module: str
    function: str
    displacement: int | None
    file: str | None = None
    line: int | None = None
    inline: bool = False

    def text(self, source: bool = True) -> str:
        out = f"{self.module}!{self.function}"
        if self.displacement is not None:
            out += f"+0x{self.displacement:x}"
        if self.inline:
            out += " (inline)"
        if source and self.file and self.line:
            out += f" [{self.file} @ {self.line}]"
        return out

    def as_dict(self) -> dict:
        return {"module": self.module, "function": self.function, "displacement": self.displacement,
                "file": self.file, "line": self.line, "inline": self.inline}


@dataclass(frozen=True)
class Symbol:
    """What an offset resolved to.  ``frames`` are innermost first: the functions inlined at
    the offset, then the function that holds it (``frames[-1]``).  ``from_publics`` is set when
    the name came from a public symbol (a stripped PDB): the function's extent is then not
    known, only that it is the nearest public symbol below the offset."""

    frames: tuple[Frame, ...]
    pdb: str
    from_publics: bool = False

    @property
    def function(self) -> str:
        return self.frames[-1].function

    @property
    def displacement(self) -> int:
        return self.frames[-1].displacement or 0

    @property
    def module(self) -> str:
        return self.frames[-1].module

    @property
    def inlined(self) -> tuple[Frame, ...]:
        return self.frames[:-1]

    def text(self) -> str:
        """``module!function+0xdisp``: the outer function, as a stack line shows it."""
        return self.frames[-1].text(source=False)

    def lines(self) -> list[str]:
        """Every frame, innermost first, with its source position (as a debugger's ``k``)."""
        return [f.text() for f in self.frames]

    def as_dict(self) -> dict:
        return {"symbol": self.text(), "module": self.module, "function": self.function,
                "displacement": self.displacement, "file": self.frames[-1].file, "line": self.frames[-1].line,
                "inlined": [f.as_dict() for f in self.inlined], "from_publics": self.from_publics, "pdb": self.pdb}


@dataclass
class Located:
    """Where an image's PDB was found (``pdb``), how its identity was known, or what was
    looked for and where (``tried``) and why it could not be used (``problem``)."""

    image: ImageRef
    pdb: str | None = None
    via: str | None = None
    guid: str | None = None
    age: int | None = None
    pdb_name: str | None = None
    identity_from: str | None = None  # "trace", "image-path <file>", "binary <store file>"
    binary: str | None = None
    tried: list[str] = field(default_factory=list)
    problem: str | None = None

    @property
    def found(self) -> bool:
        return self.pdb is not None

    def as_dict(self) -> dict:
        return {"image": self.image.name, "module": self.image.module, "pdb": self.pdb, "via": self.via,
                "pdb_name": self.pdb_name, "guid": self.guid, "age": self.age, "identity_from": self.identity_from,
                "binary": self.binary, "tried": list(self.tried), "problem": self.problem}


def symbol_from_locations(pdb: PdbSymbols, module: str, offset: int) -> Symbol | None:
    """Look ``offset`` (an RVA) up in ``pdb`` and name the frames for module ``module``."""
    locations = pdb.lookup(offset)
    if not locations:
        return None
    outer = locations[-1]
    if outer.start is None or outer.start > offset:
        return None
    arch = pdb.identity.arch
    from_publics = outer.file is None and outer.line is None
    frames: list[Frame] = []
    for loc in locations[:-1]:
        frames.append(Frame(module, N.display_name(loc.symbol, arch, False), None, loc.file, loc.line, inline=True))
    frames.append(Frame(module, N.display_name(outer.symbol, arch, from_publics), offset - outer.start, outer.file,
                        outer.line))
    return Symbol(tuple(frames), pdb.path, from_publics)


class Symbolizer:
    """Finds PDBs and resolves offsets (see the module docstring)."""

    def __init__(self, symbol_path: SymbolPath | None = None, image_paths: Sequence[str] = (), *,
                 downloader: Downloader | None = None, isolate: bool = True, timeout: float = DEFAULT_TIMEOUT):
        self.symbol_path = symbol_path
        self.image_paths = [os.fspath(p) for p in image_paths]
        self.isolate = isolate
        self.timeout = timeout
        self._downloader = downloader
        self.problems: list[str] = []
        self._located: dict[tuple, Located] = {}
        self._pdbs: OrderedDict[str, PdbSymbols | InputError] = OrderedDict()
        self._pes: dict[str, PeInfo | InputError] = {}
        self._image_index: dict[str, list[str]] | None = None

    # ------------------------------------------------------------------ public API

    def resolve(self, image: ImageRef, offset: int) -> Symbol | None:
        """``image`` + module-relative ``offset`` -> :class:`Symbol`, or ``None`` (the caller
        keeps ``module+offset``)."""
        if offset < 0 or (image.size and offset >= image.size):
            return None
        pdb = self.symbols_for(image)
        if pdb is None:
            return None
        return symbol_from_locations(pdb, image.module, offset)

    def resolve_address(self, image: ImageRef, address: int) -> Symbol | None:
        return self.resolve(image, address - image.base)

    def symbols_for(self, image: ImageRef) -> PdbSymbols | None:
        loc = self.locate(image)
        if loc.pdb is None:
            return None
        got = self._pdbs.get(loc.pdb)
        return got if isinstance(got, PdbSymbols) else None

    def open_pdb(self, path: str) -> PdbSymbols:
        """Open (once per run) the PDB at ``path``; raises :class:`InputError`."""
        got = self._pdbs.get(path)
        if got is None:
            try:
                got = load_pdb(path, isolate=self.isolate, timeout=self.timeout)
            except InputError as exc:
                got = exc
            self._pdbs[path] = got
            while len(self._pdbs) > MAX_PDBS:
                self._pdbs.popitem(last=False)
        if isinstance(got, InputError):
            raise got
        return got

    def locate(self, image: ImageRef) -> Located:
        """Find ``image``'s PDB (once per run per build; see the module docstring)."""
        key = image.cache_key()
        found = self._located.get(key)
        if found is not None:
            return found
        found = self._locate(image)
        if len(self._located) < MAX_IMAGES:
            self._located[key] = found
        return found

    def status(self) -> list[Located]:
        """What :meth:`locate` found for every image asked about, in the order asked."""
        return list(self._located.values())

    # ------------------------------------------------------------------ finding the identity

    def _locate(self, image: ImageRef) -> Located:
        loc = Located(image)
        try:
            file_name(image.name)
        except StoreError as exc:
            loc.problem = str(exc)
            return loc
        near: list[str] = []
        identity = image.pdb_identity
        if identity is not None:
            guid, age, pdb_name = identity[0].lower().strip("{}"), identity[1], identity[2]
            loc.identity_from = "trace"
        else:
            pe, where = self._find_binary(image, loc)
            if pe is None:
                if loc.problem is None:
                    loc.problem = self._no_identity_reason(image)
                return loc
            cv = pe.pdb
            loc.binary = pe.path
            if cv is None:
                loc.problem = f"{pe.path}: the image names no PDB (no CodeView RSDS record)"
                return loc
            guid, age, pdb_name = cv.guid, cv.age, cv.pdb_name
            loc.identity_from = where
            near.append(os.path.dirname(pe.path))
        loc.guid, loc.age, loc.pdb_name = guid, age, pdb_name
        try:
            key = pdb_key(pdb_name, guid, age)
        except (StoreError, ValueError) as exc:
            loc.problem = f"unusable PDB identity: {exc}"
            return loc
        self._find_pdb(loc, key, near + self.image_paths)
        return loc

    def _no_identity_reason(self, image: ImageRef) -> str:
        if not image.timestamp or not image.size:
            return "the trace gives no PDB identity and no timestamp and size to find the binary by"
        return "the trace gives no PDB identity and the binary was not found"

    def _find_binary(self, image: ImageRef, loc: Located) -> tuple[PeInfo | None, str]:
        """The image's binary: from --image-path (name, size, timestamp must match), else from
        the symbol path by its binary index."""
        for path in self._image_candidates(image.file_name):
            pe = self._read_pe(path)
            if pe is None:
                continue
            if image.size and pe.size_of_image != image.size:
                loc.tried.append(f"{path}: SizeOfImage 0x{pe.size_of_image:x}, the trace has 0x{image.size:x}")
                continue
            if image.timestamp and pe.timestamp != image.timestamp:
                loc.tried.append(f"{path}: TimeDateStamp 0x{pe.timestamp:08x}, the trace has 0x{image.timestamp:08x}")
                continue
            return pe, f"image-path {path}"
        if self.symbol_path is None or not image.timestamp or not image.size:
            return None, ""
        try:
            key = binary_key(image.file_name, image.timestamp, image.size)
        except StoreError as exc:
            loc.problem = str(exc)
            return None, ""
        found, _via = self._search(key, loc, verify=lambda p: self._binary_matches(p, image))
        if found is None:
            return None, ""
        pe = self._read_pe(found)
        return pe, f"binary {found}"

    def _binary_matches(self, path: str, image: ImageRef) -> bool:
        pe = self._read_pe(path)
        return pe is not None and pe.size_of_image == image.size and pe.timestamp == image.timestamp

    def _image_candidates(self, name: str) -> list[str]:
        if not self.image_paths:
            return []
        if self._image_index is None:
            index: dict[str, list[str]] = {}
            count = 0
            for folder in self.image_paths:
                if os.path.isfile(folder):
                    index.setdefault(os.path.basename(folder).lower(), []).append(folder)
                    continue
                try:
                    with os.scandir(folder) as it:
                        for entry in it:
                            count += 1
                            if count > MAX_IMAGE_DIR_FILES:
                                break
                            if entry.is_file():
                                index.setdefault(entry.name.lower(), []).append(entry.path)
                except OSError as exc:
                    self._problem(f"{folder}: cannot list the image directory: {exc.strerror or exc}")
            self._image_index = index
        return self._image_index.get(name.lower(), [])

    def _read_pe(self, path: str) -> PeInfo | None:
        got = self._pes.get(path)
        if got is None:
            try:
                got = read_pe(path)
            except InputError as exc:
                got = exc
                self._problem(str(exc))
            if len(self._pes) < MAX_IMAGES:
                self._pes[path] = got
        return got if isinstance(got, PeInfo) else None

    # ------------------------------------------------------------------ finding the PDB

    def _find_pdb(self, loc: Located, key: StoreKey, near: Iterable[str]) -> None:
        def verify(path: str) -> bool:
            try:
                pdb = self.open_pdb(path)
            except InputError as exc:
                self._problem(str(exc))
                loc.tried.append(f"{path}: unreadable")
                return False
            if not pdb.identity.matches(loc.guid, loc.age):
                loc.tried.append(f"{path}: another build (GUID {pdb.identity.guid}, age {pdb.identity.age})")
                return False
            return True

        path, via = self._search(key, loc, verify) if self.symbol_path is not None else (None, None)
        if path is None:
            for folder in dict.fromkeys(near):
                if not folder or not os.path.isdir(folder):
                    continue
                for candidate in flat_candidates(folder, key.name):
                    if verify(candidate):
                        path, via = candidate, f"directory {folder}"
                        break
                if path is not None:
                    break
                loc.tried.append(f"directory {folder}")
        if path is None:
            if loc.problem is None:
                places = list(dict.fromkeys(t for t in loc.tried if ": " not in t))
                where = ", ".join(places[:4]) + (f" and {len(places) - 4} more" if len(places) > 4 else "")
                loc.problem = f"{key} not found" + (f" (looked in {where})" if where else " (no symbol path)")
            return
        loc.pdb, loc.via = path, via

    def _search(self, key: StoreKey, loc: Located, verify) -> tuple[str | None, str | None]:
        """Each symbol path entry in turn; the first file that ``verify`` accepts."""
        assert self.symbol_path is not None
        for entry in self.symbol_path.entries:
            path, via = self._search_entry(entry, key, loc, verify)
            if path is not None:
                return path, via
        return None, None

    def _search_entry(self, entry: Entry, key: StoreKey, loc: Located, verify) -> tuple[str | None, str | None]:
        stores: list[LocalStore] = []
        for location in entry.locations:
            found: str | None = None
            candidate: str | None
            if location.kind == "flat":
                for candidate in flat_candidates(location.where, key.name):
                    if verify(candidate):
                        found = candidate
                        break
                if found is None:
                    # a plain directory that is a store (a downstream store or cache given without
                    # srv*, as people often do): DbgHelp searches it as one too
                    candidate = LocalStore(location.where).find(key) if os.path.isdir(location.where) else None
                    if candidate is not None and verify(candidate):
                        found = candidate
                loc.tried.append(f"directory {location.where}")
            elif location.kind == "store":
                store = LocalStore(location.where)
                candidate = store.find(key)
                if candidate is not None and verify(candidate):
                    found = candidate
                loc.tried.append(f"store {location.where}")
                if found is None:
                    stores.append(store)
                    continue
            else:  # server
                loc.tried.append(f"server {location.where}")
                if not stores:
                    continue
                try:
                    candidate = self.downloader.fetch(location.where, key, stores[-1])
                except ServerUnreachable as exc:
                    self._problem(str(exc))
                    continue
                except (DownloadError, OSError) as exc:
                    self._problem(printable(str(exc), 300))
                    continue
                if candidate is not None and verify(candidate):
                    found = candidate
                    stores = stores[:-1]
            if found is not None:
                for store in stores:  # the downstream stores keep a copy
                    try:
                        store.put_file(key, found)
                    except OSError as exc:
                        self._problem(f"{store.root}: cannot keep a copy of {key}: {exc.strerror or exc}")
                return found, f"{location.kind} {location.where}"
        return None, None

    @property
    def downloader(self) -> Downloader:
        if self._downloader is None:
            self._downloader = Downloader()
        return self._downloader

    def _problem(self, line: str) -> None:
        if line not in self.problems and len(self.problems) < MAX_PROBLEMS:
            self.problems.append(line)


__all__ = ["ImageRef", "Frame", "Symbol", "Located", "Symbolizer", "module_name", "symbol_from_locations"]
