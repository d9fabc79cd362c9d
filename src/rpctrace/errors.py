"""Errors rpctrace reports to people.

Every problem with an input file becomes an :class:`InputError` that names the file and the byte
offset (or record) where reading stopped.  The CLI prints it as one line and exits with status 2;
nothing else in rpctrace prints tracebacks for bad input.
"""

from __future__ import annotations

#: longest message rpctrace prints for one error: hostile files can make any string huge
MAX_MESSAGE = 400


def printable(text: str, limit: int = MAX_MESSAGE) -> str:
    """One short line: control characters shown as escapes, long text cut with a count."""
    text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(text))
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters)"
    return text


class RpctraceError(Exception):
    """Base class for errors meant for the user, not for a traceback."""


class InputError(RpctraceError):
    """A file could not be read (truncated, corrupt, hostile or of an unknown format)."""

    def __init__(self, path: str, message: str, offset: int | None = None, record: int | None = None):
        self.path = str(path)
        self.message = message
        self.offset = offset
        self.record = record
        super().__init__(self.one_line())

    def __reduce__(self):  # pickled whole (errors cross process boundaries in `rpctrace index`)
        return (type(self), (self.path, self.message, self.offset, self.record))

    def one_line(self) -> str:
        where = []
        if self.offset is not None:
            where.append(f"byte offset {self.offset} (0x{self.offset:x})")
        if self.record is not None:
            where.append(f"record {self.record}")
        at = f" at {', '.join(where)}" if where else ""
        return f"{printable(self.path, 200)}{at}: {printable(self.message)}"


class OutputError(RpctraceError):
    """An output file could not be written; the message names that path, never an input."""

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot write {printable(self.path, 200)}: {printable(reason)}")

    def __reduce__(self):  # pickled whole (errors cross process boundaries in `rpctrace index`)
        return (type(self), (self.path, self.reason))
