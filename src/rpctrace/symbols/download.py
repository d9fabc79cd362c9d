"""Downloads from HTTP(S) symbol servers into a local store.

Only :class:`Downloader` opens connections, and only to the servers a symbol path names
(:mod:`rpctrace.symbols.path`).  A request has a timeout, connection failures and server errors
(5xx) are retried a few times with a short back-off, ``404``/``410`` mean "not on this server"
(no retry), redirects are followed only to ``http``/``https``, and a response larger than the
size limit is refused.  A file is written to a temporary name beside its place in the store and
renamed into place when complete, so an interrupted download never leaves a partial file where
a lookup would take it.  A progress bar is drawn on stderr only when stderr is a terminal.

A server that cannot be reached is reported once, as one line (:class:`ServerUnreachable`), and
not asked again during the run: a trace needs dozens of files, and waiting a timeout for each
would make an offline run unusable.
"""

from __future__ import annotations

import socket
import sys
import time
import urllib.error
import urllib.request
from typing import Callable, TextIO

from rpctrace import __version__
from rpctrace.errors import RpctraceError, printable
from rpctrace.symbols.store import LocalStore, StoreKey

DEFAULT_TIMEOUT = 20.0
DEFAULT_RETRIES = 2
#: largest file accepted from a server (the biggest public PDBs are a few hundred MiB)
DEFAULT_MAX_BYTES = 2 << 30
USER_AGENT = f"rpctrace/{__version__} (symbol store client)"
_CHUNK = 1 << 16


class ServerUnreachable(RpctraceError):
    """A symbol server could not be reached (DNS, refused, timeout, TLS...): one line."""

    def __init__(self, server: str, reason: str):
        self.server = server
        self.reason = reason
        super().__init__(f"symbol server {printable(server, 200)} is unreachable ({printable(reason, 200)}); "
                         f"going on without it")


class DownloadError(RpctraceError):
    """A server answered but the file could not be taken (too large, cut short, HTTP error)."""


class _SafeRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not newurl.lower().startswith(("http://", "https://")):
            raise urllib.error.URLError(f"refused redirect to {newurl[:100]!r}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class Downloader:
    """Fetches store files from servers (see the module docstring)."""

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES,
                 max_bytes: int = DEFAULT_MAX_BYTES, progress: bool | None = None, stream: TextIO | None = None,
                 backoff: float = 0.5, sleep: Callable[[float], None] = time.sleep):
        self.timeout = timeout
        self.retries = retries
        self.max_bytes = max_bytes
        self.stream = stream if stream is not None else sys.stderr
        if progress is None:
            try:
                progress = self.stream.isatty()
            except (AttributeError, ValueError):
                progress = False
        self.progress = progress
        self.backoff = backoff
        self.sleep = sleep
        #: server URL -> the reason it was given up in this run
        self.unreachable: dict[str, str] = {}
        #: (server, key) -> HTTP status of files the server does not have (asked once per run)
        self.missing: dict[tuple[str, str], int] = {}
        self.downloaded: list[tuple[str, str, int]] = []  # (url, path, bytes)
        self._opener = urllib.request.build_opener(_SafeRedirect())

    def fetch(self, server: str, key: StoreKey, into: LocalStore) -> str | None:
        """Download ``key`` from ``server`` into the store ``into``; its path, or ``None`` when
        the server does not have it.  Raises :class:`ServerUnreachable` the first time a server
        fails to answer (``None`` after that, without trying again) and :class:`DownloadError`
        when the file cannot be taken."""
        if server in self.unreachable:
            return None
        if (server, str(key)) in self.missing:
            return None
        url = f"{server.rstrip('/')}/{key.url_path()}"
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(self.backoff * (2 ** (attempt - 1)))
            try:
                return self._get(url, key, into)
            except urllib.error.HTTPError as exc:
                if exc.code in (404, 410) or 400 <= exc.code < 500:
                    self.missing[(server, str(key))] = exc.code
                    return None
                last = exc  # 5xx: retried
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as exc:
                last = exc
            except OSError as exc:  # TLS and socket errors that are not URLError
                last = exc
        reason = _reason(last)
        if isinstance(last, urllib.error.HTTPError):
            self.missing[(server, str(key))] = last.code
            raise DownloadError(f"{printable(url, 300)}: the server answered HTTP {last.code} "
                                f"after {self.retries + 1} tries")
        self.unreachable[server] = reason
        raise ServerUnreachable(server, reason)

    def _get(self, url: str, key: StoreKey, into: LocalStore) -> str:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        with self._opener.open(request, timeout=self.timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > self.max_bytes:
                raise DownloadError(f"{printable(url, 300)}: {total} bytes, more than the limit of {self.max_bytes}")
            got = 0
            try:
                with into.writing(key) as (out, dest):
                    last_draw = 0.0
                    while True:
                        chunk = response.read(_CHUNK)
                        if not chunk:
                            break
                        got += len(chunk)
                        if got > self.max_bytes:
                            raise DownloadError(f"{printable(url, 300)}: more than the limit of {self.max_bytes} bytes")
                        out.write(chunk)
                        now = time.monotonic()
                        if self.progress and now - last_draw >= 0.1:
                            last_draw = now
                            self._draw(key.name, got, total)
                    if total is not None and got != total:
                        raise DownloadError(f"{printable(url, 300)}: cut short ({got} of {total} bytes)")
            finally:
                if self.progress:
                    self.stream.write("\r\x1b[K")
                    self.stream.flush()
        self.downloaded.append((url, dest, got))
        return dest

    def _draw(self, name: str, got: int, total: int | None) -> None:
        mib = got / (1 << 20)
        if total:
            done = got / total
            bar = "#" * int(done * 30)
            text = f"rpctrace: {printable(name, 60)} [{bar:<30}] {done * 100:3.0f}% {mib:.1f}/{total / (1 << 20):.1f} MiB"
        else:
            text = f"rpctrace: {printable(name, 60)} {mib:.1f} MiB"
        self.stream.write("\r" + text)
        self.stream.flush()


def _reason(exc: Exception | None) -> str:
    if exc is None:
        return "no answer"
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        inner = exc.reason  # what urllib wrapped: classed as if raised itself
        return _reason(inner) if isinstance(inner, OSError) else str(inner)
    if isinstance(exc, socket.gaierror):
        return f"name not resolved: {exc.strerror or exc}"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}"
