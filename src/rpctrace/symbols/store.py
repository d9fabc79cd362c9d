"""Symbol store layout: where a PDB or a binary lives in a store, and reading/writing a local one.

A symbol store keeps each file under its name and an index that identifies one build:

* a PDB under ``name.pdb/<GUID><AGE>/name.pdb``: the GUID as 32 upper-case hex digits in the
  order it is printed (``{12345678-9ABC-...}`` -> ``123456789ABC...``), then the age in hex
  without leading zeros;
* a binary (PE image) under ``name.dll/<TimeDateStamp><SizeOfImage>/name.dll``: the timestamp as
  8 hex digits, the image size in hex without leading zeros.

A store holding ``index2.txt`` at its root uses the two-tier layout (``na/name.pdb/...``: the
first two characters of the name first).  A folder holding ``file.ptr`` instead of the file
points elsewhere (``PATH:<path>``), as ``symstore /p`` writes.  Lookups in a local store accept
any letter case, as the Windows file systems stores live on do.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Iterator

#: longest file name accepted from a trace or a binary before it is used in a path
MAX_NAME = 255
#: most directory entries looked at when matching a name without regard to case
MAX_LIST = 100_000

_SAFE_NAME = re.compile(r"^[^\x00-\x1f/\\:*?\"<>|]+$")


class StoreError(Exception):
    """A name or an index that cannot stand in a store path."""


@dataclass(frozen=True)
class StoreKey:
    """A file's place in a store: ``name/index/name``."""

    name: str
    index: str

    def parts(self, two_tier: bool = False) -> tuple[str, ...]:
        if two_tier:
            return (self.name[:2].lower(), self.name, self.index, self.name)
        return (self.name, self.index, self.name)

    def url_path(self) -> str:
        from urllib.parse import quote

        return "/".join(quote(p, safe="") for p in self.parts())

    def __str__(self) -> str:
        return "/".join(self.parts())


def file_name(path_or_name: str) -> str:
    """The last component of a Windows or POSIX path (traces record ``C:\\...\\x.pdb`` or
    ``\\Device\\HarddiskVolume2\\...\\x.dll``), checked to be usable as a store name."""
    name = path_or_name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or len(name) > MAX_NAME or name in (".", "..") or not _SAFE_NAME.match(name):
        raise StoreError(f"{path_or_name[:MAX_NAME]!r} is not a usable file name")
    return name


def guid_text(guid: str | bytes | uuid.UUID) -> str:
    """A GUID as store indexes write it: 32 upper-case hex digits, printed order."""
    if isinstance(guid, bytes):
        guid = uuid.UUID(bytes_le=guid)
    elif isinstance(guid, str):
        guid = uuid.UUID(guid.strip("{}"))
    return guid.hex.upper()


def pdb_key(pdb_name: str, guid: str | bytes | uuid.UUID, age: int) -> StoreKey:
    if not 0 <= age <= 0xFFFFFFFF:
        raise StoreError(f"PDB age {age} out of range")
    return StoreKey(file_name(pdb_name), f"{guid_text(guid)}{age:X}")


def binary_key(image_name: str, timestamp: int, size: int) -> StoreKey:
    if not (0 <= timestamp <= 0xFFFFFFFF and 0 < size <= 0xFFFFFFFF):
        raise StoreError(f"image timestamp 0x{timestamp:x} / size 0x{size:x} out of range")
    return StoreKey(file_name(image_name), f"{timestamp:08X}{size:x}")


class LocalStore:
    """A directory laid out as a symbol store (it need not exist until something is put in it)."""

    def __init__(self, root: str):
        self.root = root

    @property
    def two_tier(self) -> bool:
        return os.path.isfile(os.path.join(self.root, "index2.txt"))

    def find(self, key: StoreKey) -> str | None:
        """Path of the stored file, or ``None``."""
        here = self.root
        for part in key.parts(self.two_tier)[:-1]:
            sub = _child(here, part, want_dir=True)
            if sub is None:
                return None
            here = sub
        found = _child(here, key.name, want_dir=False)
        if found is not None:
            return found
        ptr = _child(here, "file.ptr", want_dir=False)
        if ptr is not None:
            return _follow_ptr(ptr)
        return None

    def target(self, key: StoreKey) -> str:
        """Where :meth:`put` writes ``key`` (the canonical spelling)."""
        return os.path.join(self.root, *key.parts(self.two_tier))

    def put_file(self, key: StoreKey, source: str) -> str:
        """Copy ``source`` into the store (atomically: a temporary file renamed into place)."""
        with open(source, "rb") as fh:
            return self.put_stream(key, fh)

    def put_stream(self, key: StoreKey, stream) -> str:
        with self.writing(key) as (out, dest):
            while True:
                chunk = stream.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
        return dest

    @contextmanager
    def writing(self, key: StoreKey) -> Iterator[tuple[BinaryIO, str]]:
        """``(file, destination)`` to write ``key`` into: a temporary file beside the destination,
        renamed into place when the block ends, removed when it raises (a reader of the store
        never sees a partial file; a download cut short leaves nothing)."""
        dest = self.target(key)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".partial-", dir=os.path.dirname(dest))
        try:
            with os.fdopen(fd, "wb") as out:
                yield out, dest
            os.replace(tmp, dest)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise


def _child(folder: str, name: str, want_dir: bool) -> str | None:
    exact = os.path.join(folder, name)
    if os.path.isdir(exact) if want_dir else os.path.isfile(exact):
        return exact
    low = name.lower()
    try:
        with os.scandir(folder) as it:
            for n, entry in enumerate(it):
                if n >= MAX_LIST:
                    break
                if entry.name.lower() == low and (entry.is_dir() if want_dir else entry.is_file()):
                    return entry.path
    except OSError:
        return None
    return None


def _follow_ptr(ptr: str) -> str | None:
    """``file.ptr``: ``PATH:<where the file is>`` (or ``MSG:<why not>``)."""
    try:
        with open(ptr, "rb") as fh:
            text = fh.read(4096).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if text[:5].upper() == "PATH:":
        target = text[5:].strip()
        if target and os.path.isfile(target):
            return target
    return None


def flat_candidates(directory: str, name: str) -> list[str]:
    """Where a plain symbol-path directory may hold ``name`` (as DbgHelp looks)."""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    subs = [""]
    if ext:
        subs += [ext, os.path.join("symbols", ext)]
    subs += ["dll", "exe", "sys", os.path.join("symbols", "dll"), os.path.join("symbols", "exe")]
    out: list[str] = []
    for sub in dict.fromkeys(subs):
        folder = os.path.join(directory, sub) if sub else directory
        found = _child(folder, name, want_dir=False) if os.path.isdir(folder) else None
        if found is not None and found not in out:
            out.append(found)
    return out
