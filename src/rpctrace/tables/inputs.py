"""What ``rpctrace index`` reads: files, directories and compressed files, each traced to a path.

* A **file** named on the command line is a trace of any format rpctrace reads (sniffed from its
  bytes, not its name) or a compressed file holding one; anything else is a bad input, listed
  with its one-line error.
* A **directory** stands for every such file inside it, recursively (symbolic links to
  directories are not followed); files in no format rpctrace reads are skipped and counted.
* A **compressed file** (gzip, xz, bzip2: one trace; zip: every member that is a trace) is
  recognised by its signature and decompressed, when its turn comes, into a temporary file whose
  size is bounded (``max_unpacked``): a small hostile archive cannot fill the disk.  One level:
  an archive inside an archive is not opened.

The trace's identity is the SHA-256 of its decompressed bytes (:func:`materialize` computes it
while copying or reading), so the same trace indexed plain, gzipped or from a zip is one trace.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

from rpctrace.errors import InputError, printable
from rpctrace.sources import UNKNOWN_FORMAT, sniff_bytes

__all__ = ["InputTask", "BadInput", "Expanded", "expand", "materialize", "Materialized", "DEFAULT_MAX_UNPACKED"]

#: largest trace a compressed input may decompress to (a busy server's ten minutes is ~10 GB)
DEFAULT_MAX_UNPACKED = 32 << 30
#: members of one zip archive looked at (a hostile archive can list millions)
MAX_ZIP_MEMBERS = 100_000
#: bytes read at a time
CHUNK = 1 << 20
#: bytes of a trace's start that name its format
HEAD = 4096

_SIGNATURES = ((b"\x1f\x8b", "gzip"), (b"\xfd7zXZ\x00", "xz"), (b"BZh", "bzip2"), (b"PK\x03\x04", "zip"),
               (b"PK\x05\x06", "zip"))


@dataclass(frozen=True)
class InputTask:
    """One trace to index: a file, or a member of a zip archive."""

    path: str  # the file on disk
    display: str  # how it is named to people and in the traces table (ARCHIVE!MEMBER for members)
    compression: str | None = None  # gzip, xz, bzip2, zip
    member: str | None = None  # zip member name


@dataclass(frozen=True)
class BadInput:
    display: str
    error: str  # one line


@dataclass
class Expanded:
    tasks: list[InputTask]
    bad: list[BadInput]
    skipped: int  # files inside directories in no format rpctrace reads


def compression_of(head: bytes) -> str | None:
    """gzip, xz, bzip2 or zip from a file's first bytes, else None."""
    for magic, name in _SIGNATURES:
        if head.startswith(magic):
            return name
    return None


def _open_stream(kind: str, raw):
    """A reader of what the gzip/xz/bzip2 stream in ``raw`` holds (concatenated streams too)."""
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if kind == "xz":
        return lzma.LZMAFile(raw, mode="rb")
    return bz2.BZ2File(raw, mode="rb")


_STREAM_ERRORS = (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError)


def _inner_head(path: str, kind: str) -> bytes:
    """The first bytes of what a gzip/xz/bzip2 file holds (decompressing only what that needs)."""
    with open(path, "rb") as raw, _open_stream(kind, raw) as stream:
        return stream.read(HEAD)


def _zip_members(path: str, display: str) -> tuple[list[InputTask], int]:
    """The members of a zip archive that are traces, and how many others there were."""
    tasks: list[InputTask] = []
    other = 0
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                raise InputError(display, f"the archive lists {len(infos)} members (at most {MAX_ZIP_MEMBERS} are read)")
            for info in infos:
                if info.is_dir():
                    continue
                try:
                    with zf.open(info) as member:
                        head = member.read(HEAD)
                except (zipfile.BadZipFile, NotImplementedError, RuntimeError, *_STREAM_ERRORS) as exc:
                    raise InputError(f"{display}!{info.filename}", f"cannot read the archive member: {exc}",
                                     offset=info.header_offset) from None
                if sniff_bytes(head):
                    tasks.append(InputTask(path, f"{display}!{info.filename}", "zip", info.filename))
                else:
                    other += 1
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise InputError(display, f"not a readable zip archive: {exc}") from None
    return tasks, other


def classify(path: str, display: str, named: bool) -> tuple[list[InputTask], int]:
    """The traces ``path`` holds and how many files in it are not traces.  A file ``named`` on
    the command line that holds none raises InputError; one found in a directory is skipped."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEAD)
    except OSError as exc:
        raise InputError(display, f"cannot open: {exc.strerror or exc}") from None
    if not head:
        if named:
            raise InputError(display, "the file is empty", offset=0)
        return [], 1
    kind = compression_of(head)
    if kind == "zip":
        tasks, other = _zip_members(path, display)
        if not tasks and named:
            raise InputError(display, "the archive holds no file in a format rpctrace reads")
        return tasks, other
    if kind is not None:
        try:
            inner = _inner_head(path, kind)
        except _STREAM_ERRORS as exc:
            raise InputError(display, f"damaged {kind} stream: {exc}", offset=0) from None
        if sniff_bytes(inner):
            return [InputTask(path, display, kind)], 0
        if named and inner[257:262] == b"ustar":
            raise InputError(display, f"a tar archive inside {kind}: unpack it first (rpctrace index reads .gz, .xz "
                                      "and .bz2 files that hold one trace, and .zip archives)")
        if named:
            raise InputError(display, f"the {kind} file holds no file in a format rpctrace reads: {UNKNOWN_FORMAT}")
        return [], 1
    if sniff_bytes(head):
        return [InputTask(path, display)], 0
    if named:
        raise InputError(display, UNKNOWN_FORMAT, offset=0)
    return [], 1


def expand(inputs: Sequence[str], exclude: Sequence[str] = ()) -> Expanded:
    """Every trace the inputs stand for, in a stable order (directories walked sorted), the
    inputs that are bad with their one-line errors, and the count of skipped files.
    Directories in ``exclude`` (the index being written) are not walked into."""
    out = Expanded([], [], 0)
    excluded = {os.path.realpath(d) for d in exclude}
    for given in inputs:
        if os.path.isdir(given):
            if os.path.realpath(given) in excluded:
                continue
            for root, dirs, files in os.walk(given):
                dirs[:] = sorted(d for d in dirs if os.path.realpath(os.path.join(root, d)) not in excluded)
                for name in sorted(files):
                    path = os.path.join(root, name)
                    if not os.path.isfile(path):  # sockets, fifos, dangling links
                        out.skipped += 1
                        continue
                    _add(out, path, named=False)
        elif not os.path.exists(given):
            out.bad.append(BadInput(given, f"{printable(given, 200)}: no such file or directory"))
        else:
            _add(out, given, named=True)
    return out


def _add(out: Expanded, path: str, named: bool) -> None:
    try:
        tasks, other = classify(path, path, named)
    except InputError as exc:
        out.bad.append(BadInput(exc.path, exc.one_line()))
        return
    out.tasks.extend(tasks)
    out.skipped += other


@dataclass
class Materialized:
    """A trace as a plain file on disk, with its identity."""

    path: str  # the plain trace (the input itself, or a temporary decompressed copy)
    sha256: str
    size: int
    damage: InputError | None = None  # the compressed stream broke here: ``path`` holds what came before


@contextmanager
def materialize(task: InputTask, tmpdir: str | None = None, max_unpacked: int = DEFAULT_MAX_UNPACKED
                ) -> Iterator[Materialized]:
    """The trace of ``task`` as a plain file (a temporary copy for compressed inputs, removed on
    exit) with the SHA-256 of its bytes.  A compressed stream that breaks leaves what came
    before it, with the damage named (file and offset in the compressed file); one that would
    decompress past ``max_unpacked`` bytes raises InputError."""
    if task.compression is None:
        hasher = hashlib.sha256()
        size = 0
        try:
            with open(task.path, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    hasher.update(chunk)
                    size += len(chunk)
        except OSError as exc:
            raise InputError(task.display, f"cannot read: {exc.strerror or exc}") from None
        yield Materialized(task.path, hasher.hexdigest(), size)
        return
    fd, tmp = tempfile.mkstemp(prefix="rpctrace-index-", suffix=".trace", dir=tmpdir)
    try:
        with os.fdopen(fd, "wb") as dst:
            digest, size, damage = _decompress(task, dst, max_unpacked)
        if damage is not None and size == 0:
            # nothing came out: name the trace by the damaged file itself (every empty stream
            # would otherwise be the same trace)
            digest = _file_digest(task.path, b"rpctrace: nothing decompressed from ")
        yield Materialized(tmp, digest, size, damage)
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _decompress(task: InputTask, dst, limit: int) -> tuple[str, int, InputError | None]:
    digest = hashlib.sha256()
    size = 0

    def put(data: bytes) -> None:
        nonlocal size
        size += len(data)
        if size > limit:
            raise InputError(task.display, f"decompresses to more than {limit:,} bytes (--max-unpacked)")
        digest.update(data)
        dst.write(data)

    if task.compression == "zip":
        try:
            with zipfile.ZipFile(task.path) as zf, zf.open(task.member) as src:  # type: ignore[arg-type]
                while chunk := src.read(CHUNK):
                    put(chunk)
        except InputError:
            raise
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, KeyError, *_STREAM_ERRORS) as exc:
            return digest.hexdigest(), size, InputError(task.display, f"damaged archive member after {size:,} "
                                                                      f"decompressed bytes: {exc}")
        return digest.hexdigest(), size, None
    # gzip, xz and bzip2 through the standard library's readers (bounded reads: a small bomb
    # never becomes one huge bytes object); damage is placed at the compressed file's position
    raw = open(task.path, "rb")
    try:
        with _open_stream(task.compression, raw) as stream:  # type: ignore[arg-type]
            while chunk := stream.read(CHUNK):
                put(chunk)
    except InputError:
        raise
    except EOFError:
        return digest.hexdigest(), size, InputError(
            task.display, f"truncated {task.compression} stream (the file ends inside it; {size:,} bytes "
                          "decompressed)", offset=_position(raw))
    except _STREAM_ERRORS as exc:
        return digest.hexdigest(), size, InputError(
            task.display, f"damaged {task.compression} stream after {size:,} decompressed bytes: {exc}",
            offset=_position(raw))
    finally:
        raw.close()
    return digest.hexdigest(), size, None


def _file_digest(path: str, prefix: bytes = b"") -> str:
    digest = hashlib.sha256(prefix)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _position(raw) -> int | None:
    try:
        return raw.tell()
    except (OSError, ValueError):
        return None
