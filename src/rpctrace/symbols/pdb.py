"""PDB reading: identity and address -> function lookups, with Sentry's ``symbolic`` (MIT).

``symbolic`` (Rust) turns a PDB into a *symcache*: every function's address range, its name,
its line table and its inlined calls, built from the module symbols (private PDBs) or from the
public symbols (the stripped PDBs Microsoft's symbol server hands out).  A lookup gives the
innermost frame first: inlined functions, then the function that holds the address.

Hostile PDBs: the PDB comes from the network or from a compromised machine, and a native
parser's robustness is not assumed.  :func:`load_pdb` therefore builds the symcache in a child
process (``python -m rpctrace.symbols.pdbworker``) with an address-space limit and a time
limit; a crash, a hang or an error there is one :class:`~rpctrace.errors.InputError` naming the
PDB, and the frames stay ``module+offset``.  One child serves the whole run
(:class:`ReaderProcess`); the symcache comes back as bytes written by symbolic itself and is
only looked up in this process.  ``isolate=False`` builds it in this
process (the fuzz harness does that inside its own limited worker).
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass

from rpctrace.errors import InputError, printable

#: "Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0": the only PDB container rpctrace reads
MSF7_MAGIC = b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\x00\x00\x00"
MSF2_MAGIC = b"Microsoft C/C++ program database 2.00\r\n"
#: largest PDB accepted
MAX_PDB_BYTES = 4 << 30
#: most frames one lookup returns (inlined calls nest; a hostile PDB could nest without end)
MAX_INLINE_DEPTH = 64
#: longest function or file name kept from a PDB
MAX_NAME = 2048
DEFAULT_TIMEOUT = 120.0
#: address space of the worker: this much plus three times the PDB's size
WORKER_MEMORY = 1536 << 20


@dataclass(frozen=True)
class PdbIdentity:
    guid: str  # lower-case, dashed
    age: int
    arch: str  # symbolic's name: "x86", "x86_64", "arm64"...

    def matches(self, guid: str | None, age: int | None) -> bool:
        if guid is None:
            return True
        if guid.lower().strip("{}") != self.guid:
            return False
        return age is None or age == self.age


@dataclass(frozen=True)
class Location:
    """One frame of a lookup, innermost first: ``symbol`` as stored (mangled names of public
    symbols stay mangled here), ``start`` the function's RVA (``None`` for inlined frames),
    ``file``/``line`` where the PDB has them."""

    symbol: str
    start: int | None
    file: str | None
    line: int | None


class PdbSymbols:
    """A PDB ready for lookups (see :func:`load_pdb`)."""

    def __init__(self, path: str, identity: PdbIdentity, symcache_bytes: bytes):
        from symbolic.symcache import SymCache

        self.path = path
        self.identity = identity
        self._bytes = symcache_bytes  # the symcache looks into these bytes
        self._cache = SymCache.from_bytes(symcache_bytes)

    def lookup(self, rva: int) -> list[Location]:
        """Frames at ``rva`` (innermost first), ``[]`` when no function holds it."""
        if not 0 <= rva <= 0xFFFFFFFF:
            return []
        out: list[Location] = []
        for loc in self._cache.lookup(rva)[:MAX_INLINE_DEPTH]:
            start = loc.sym_addr if loc.sym_addr != 0xFFFFFFFF and loc.sym_addr <= rva else None
            name = (loc.symbol or "")[:MAX_NAME]
            path = (loc.full_path or None)
            out.append(Location(name, start, path[:MAX_NAME] if path else None, loc.line or None))
        return out


def check_header(path: str) -> int:
    """Size of the file after checking that it is an MSF 7.00 PDB (one line if not)."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(len(MSF7_MAGIC))
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    if size > MAX_PDB_BYTES:
        raise InputError(path, f"{size} bytes: larger than the {MAX_PDB_BYTES}-byte limit for a PDB")
    if len(head) >= 20 and MSF2_MAGIC.startswith(head):
        raise InputError(path, "a PDB 2.0 (pre-2000 format) file, which rpctrace does not read", offset=0)
    if head != MSF7_MAGIC:
        raise InputError(path, "not a PDB (no 'Microsoft C/C++ MSF 7.00' header)", offset=0)
    return size


def build_symcache(path: str) -> tuple[dict, bytes]:
    """In this process: (identity and facts, symcache bytes).  Raises :class:`InputError`."""
    from symbolic.debuginfo import Archive
    from symbolic.exceptions import SymbolicError

    check_header(path)
    try:
        archive = Archive.open(path)
        objects = list(archive.iter_objects())
        if not objects:
            raise InputError(path, "the PDB holds no debug information object")
        obj = objects[0]
        debug_id = obj.debug_id
        arch = obj.arch
        features = sorted(obj.features)
        cache = obj.make_symcache()
        stream = cache.open_stream()
        data = stream.read()
    except InputError:
        raise
    except SymbolicError as exc:
        raise InputError(path, f"damaged PDB: {_first_line(exc)}") from None
    except (ValueError, OSError, RuntimeError) as exc:
        raise InputError(path, f"damaged PDB: {type(exc).__name__}: {_first_line(exc)}") from None
    meta = {"debug_id": debug_id, "arch": arch, "features": features}
    return meta, data


def parse_debug_id(path: str, debug_id: str, arch: str) -> PdbIdentity:
    """symbolic's ``GUID-AGE`` text (age in hex) -> :class:`PdbIdentity`."""
    text = (debug_id or "").lower()
    if len(text) < 36 or (len(text) > 36 and text[36] != "-"):
        raise InputError(path, f"unusable PDB identity {printable(debug_id, 80)!r}")
    try:
        age = int(text[37:], 16) if len(text) > 37 else 0
        import uuid

        guid = str(uuid.UUID(text[:36]))
    except ValueError:
        raise InputError(path, f"unusable PDB identity {printable(debug_id, 80)!r}") from None
    return PdbIdentity(guid, age, arch or "unknown")


def load_pdb(path: str | os.PathLike, *, isolate: bool = True, timeout: float = DEFAULT_TIMEOUT,
             memory: int | None = None) -> PdbSymbols:
    """Open a PDB for lookups (see the module docstring).  Raises :class:`InputError`."""
    path = os.fspath(path)
    size = check_header(path)
    if isolate:
        meta, data = reader_process().build(path, size, timeout, memory)
    else:
        meta, data = build_symcache(path)
    identity = parse_debug_id(path, meta.get("debug_id", ""), meta.get("arch", ""))
    try:
        return PdbSymbols(path, identity, data)
    except Exception as exc:  # symbolic's own error types: the symcache it wrote does not load
        raise InputError(path, f"damaged PDB (its symbol cache does not load: {_first_line(exc)})") from None


class ReaderProcess:
    """The child process that reads PDBs (``python -m rpctrace.symbols.pdbworker --serve``).

    One child serves a whole run: it is started when the first PDB is read, reads one PDB per
    request, and is started again after it dies (a native crash on a hostile PDB), after a
    request runs past its time limit (it is killed), or when a PDB needs a larger address space
    than the one it was started with.  Requests and answers are JSON lines on its stdin and
    stdout; the symcache travels through a file in a private temporary directory.
    """

    def __init__(self, command: list[str] | None = None) -> None:
        #: the child's command line (tests replace it with children that misbehave)
        self.command = command or [sys.executable, "-m", "rpctrace.symbols.pdbworker", "--serve"]
        self._proc: subprocess.Popen[bytes] | None = None
        self._answers: queue.Queue[bytes | None] | None = None
        self._memory = 0
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._errlog: str | None = None
        self._lock = threading.Lock()

    def build(self, path: str, size: int, timeout: float, memory: int | None) -> tuple[dict, bytes]:
        need = memory if memory is not None else WORKER_MEMORY + 3 * size
        with self._lock:
            if self._proc is None or self._proc.poll() is not None or need > self._memory or memory is not None:
                self._start(need)
            # (started with pipes: stdin and stdout are set)
            assert self._proc is not None and self._proc.stdin is not None
            assert self._answers is not None and self._tmp is not None
            out = os.path.join(self._tmp.name, "symcache")
            try:
                self._proc.stdin.write((json.dumps({"pdb": path, "out": out}) + "\n").encode("utf-8"))
                self._proc.stdin.flush()
            except OSError:
                pass  # it died: the answer queue says so
            try:
                line = self._answers.get(timeout=timeout)
            except queue.Empty:
                self._stop()
                raise InputError(path, f"reading the PDB took longer than {timeout:g} s; gave up") from None
            if line is None:  # end of its output: it died
                code = self._proc.wait()
                tail = self._error_tail()
                self._stop()
                if code < 0:
                    raise InputError(path, f"the PDB reader died on this file (signal {-code})")
                if "MemoryError" in tail or "memory allocation" in tail.lower():
                    raise InputError(path, f"the PDB reader ran out of its {self._memory >> 20} MiB of memory")
                raise InputError(path, f"the PDB reader failed: {printable(tail or f'exit status {code}', 200)}")
            try:
                answer = json.loads(line)
            except ValueError:
                self._stop()
                raise InputError(path, "the PDB reader's answer is unreadable") from None
            if answer.get("status") != "ok":
                raise InputError(path, printable(str(answer.get("message", "unreadable PDB")), 300))
            try:
                with open(out, "rb") as fh:
                    data = fh.read()
                os.unlink(out)
            except OSError as exc:
                raise InputError(path, f"the PDB reader's answer is unreadable ({exc})") from None
            return answer.get("meta", {}), data

    def _start(self, memory: int) -> None:
        self._stop()
        self._tmp = tempfile.TemporaryDirectory(prefix="rpctrace-pdb-")
        self._errlog = os.path.join(self._tmp.name, "stderr")
        env = dict(os.environ)
        src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        kwargs: dict = {}
        if os.name == "posix":
            kwargs["preexec_fn"] = _limits(memory)
        with open(self._errlog, "wb") as err:
            try:
                self._proc = subprocess.Popen(self.command,
                                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env,
                                              **kwargs)
            except OSError as exc:
                self._proc = None
                raise InputError("<pdb reader>", f"could not start the PDB reader: {exc.strerror or exc}") from None
        self._memory = memory
        self._answers = queue.Queue()
        threading.Thread(target=_pump, args=(self._proc.stdout, self._answers), daemon=True).start()

    def _error_tail(self) -> str:
        try:
            with open(self._errlog or "", "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 4096))
                lines = fh.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                if proc.stdin is not None:  # (started with pipes: set)
                    proc.stdin.close()
            except OSError:
                pass
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def close(self) -> None:
        with self._lock:
            self._stop()


def _pump(stream, answers: "queue.Queue[str | None]") -> None:  # pragma: no cover - thread
    try:
        for line in stream:
            answers.put(line.decode("utf-8", "replace"))
    except (OSError, ValueError):
        pass
    answers.put(None)


_READER: ReaderProcess | None = None


def reader_process() -> ReaderProcess:
    """The run's PDB reader process (closed when the interpreter exits)."""
    global _READER
    if _READER is None:
        _READER = ReaderProcess()
        atexit.register(_READER.close)
    return _READER


def _limits(memory: int):
    def apply() -> None:  # pragma: no cover - runs in the child
        import resource

        if sys.platform.startswith("linux"):  # die with the parent, even when it is killed
            try:
                import ctypes
                import signal

                ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
            except (OSError, AttributeError):
                pass
        try:
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        except (ValueError, OSError):
            pass
        try:
            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            limit = memory if hard == resource.RLIM_INFINITY else min(memory, hard)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ValueError, OSError):
            pass

    return apply


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return printable(str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__, 200)
