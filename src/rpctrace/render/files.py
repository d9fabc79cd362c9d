"""Writing output files: checked before the work starts, written whole or not at all.

Every command that writes a file (``report``, ``export``, ``windbg``, ``synth``, ``record``,
``demo``) goes through here, so an unwritable path is reported the same way everywhere: one line
naming *that* path and why (``cannot write /nonexistent/x.html: no such directory``), exit status
2, and no temporary file left behind.  :func:`check_output` runs before a trace is read, so a
typo in ``-o`` does not cost a minute of reading first.
"""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from typing import IO, Iterator

from rpctrace.errors import OutputError

__all__ = ["check_output", "open_output", "reason"]


def reason(exc: OSError) -> str:
    """A short human reason for an OSError about an output path."""
    code = exc.errno
    if code == errno.ENOENT:
        return "no such directory"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if code == errno.EISDIR:
        return "it is a directory"
    if code == errno.ENOTDIR:
        return "a part of the path is not a directory"
    if code == errno.ENOSPC:
        return "no space left on the device"
    if code == errno.EROFS:
        return "read-only file system"
    return exc.strerror or str(exc)


def check_output(path: str | os.PathLike) -> str:
    """Fail early, with the path named, if ``path`` cannot be written; returns it as ``str``."""
    path = os.fspath(path)
    if not path:
        raise OutputError("''", "the output path is empty")
    if os.path.isdir(path):
        raise OutputError(path, "it is a directory")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise OutputError(path, "no such directory" if not os.path.exists(parent) else "a part of the path is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(path, "permission denied")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise OutputError(path, "permission denied")
    return path


@contextmanager
def open_output(path: str | os.PathLike, binary: bool = False, encoding: str = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path``, on any error it is
    removed and an OSError becomes an :class:`~rpctrace.errors.OutputError` naming ``path``."""
    path = check_output(path)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        try:
            fh = open(tmp, "wb") if binary else open(tmp, "w", encoding=encoding, newline="")
        except OSError as exc:
            raise OutputError(path, reason(exc)) from None
        try:
            with fh:
                yield fh
        except OSError as exc:
            raise OutputError(path, reason(exc)) from None
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise OutputError(path, reason(exc)) from None
    finally:
        if os.path.exists(tmp):
            try:
                os.unlink(tmp)
            except OSError:
                pass
