"""Registry hives: the raw security descriptor of a key, read offline.

regipy (MIT) opens the hive and walks its keys; the security descriptors are read here from the
key's ``sk`` cell, because regipy's own decoding (``get_security_key_info``) keeps only the
standard and generic bits of each ACE mask and drops the key-specific rights (KEY_QUERY_VALUE,
KEY_SET_VALUE, ...) that the access check needs.

Hive layout used here (the public "Windows registry file format specification", msuhanov):
a 4096-byte ``regf`` base block (``hive_bins_data_size`` u32 at 0x28), then hive bins (``hbin``,
sizes multiples of 4096); cell offsets are relative to the end of the base block; a cell starts
with its size as i32 (negative when allocated).  The ``sk`` cell: size i32, ``"sk"``, reserved u16,
flink u32, blink u32, reference count u32, descriptor size u32, then the self-relative
descriptor.  Every offset and size is checked against the hive bins before use.

Key paths: what a person types maps onto the hive file as follows (case-insensitive; ``HKLM``
may also be written ``HKEY_LOCAL_MACHINE``, ``HKLM:``, ``\\REGISTRY\\MACHINE`` or
``Computer\\HKEY_LOCAL_MACHINE``):

==================================  ==================  ====================================
typed path                          hive file           path inside the hive
==================================  ==================  ====================================
HKLM\\SOFTWARE\\X                     SOFTWARE            \\X
HKLM\\SYSTEM\\CurrentControlSet\\X     SYSTEM              \\ControlSet00N\\X (N = \\Select Current)
HKLM\\SYSTEM\\X                       SYSTEM              \\X
HKLM\\SAM, SECURITY, COMPONENTS ...  that hive           \\X
HKCC\\X                              SYSTEM              \\ControlSet00N\\Hardware Profiles\\Current\\X
HKCU\\Software\\Classes\\X             UsrClass.dat        \\X (given a UsrClass.dat hive)
HKCU\\X, HKU\\<SID>\\X                 NTUSER.DAT          \\X
HKU\\<SID>_Classes\\X                 UsrClass.dat        \\X
HKCR\\X                              SOFTWARE            \\Classes\\X (UsrClass.dat: \\X; HKCR merges both)
\\X or X (no root)                   the hive given      \\X
==================================  ==================  ====================================

The hive's kind comes from the file name in its base block, else from its root's subkeys; a path
that belongs to another kind of hive is an error naming both.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rpctrace.errors import InputError

if TYPE_CHECKING:
    from regipy.registry import NKRecord

__all__ = ["Hive", "HiveError", "iter_security", "iter_sk_cells", "key_security", "open_hive", "read_sk_cell"]

BASE_BLOCK = 4096
MAX_HIVE_SIZE = 2 << 30  # regf hives cannot grow past 2 GiB (cell offsets are 31-bit)
MAX_DEPTH = 512  # the registry's maximum key depth
NO_CELL = 0xFFFFFFFF


class HiveError(InputError):
    """A hive, key or cell that cannot be read.  ``key_path`` names the key when there is one;
    ``kind`` is "open", "path", "subkeys", "security" or "bins" (damage met scanning the bins)."""

    def __init__(self, path: str, message: str, offset: int | None = None, key_path: str | None = None,
                 kind: str = "security"):
        self.key_path = key_path
        self.kind = kind
        self.detail = message
        where = f"{_printable(key_path)}: " if key_path else ""
        super().__init__(path, where + message, offset=offset)


def _printable(text: str | None) -> str:
    if text is None:
        return ""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"
                   for ch in text)


def read_sk_cell(data: bytes, sk_offset: int, bins_end: int | None = None) -> bytes:
    """The security descriptor bytes of the ``sk`` cell at ``sk_offset`` (relative to the hive
    bins).  Raises ValueError(message, file_offset) on any inconsistency."""
    end = len(data) if bins_end is None else min(bins_end, len(data))
    if sk_offset == NO_CELL:
        raise ValueError("the key has no security cell (offset 0xFFFFFFFF)", None)
    pos = BASE_BLOCK + sk_offset
    if sk_offset % 8:
        raise ValueError(f"security cell offset 0x{sk_offset:x} is not 8-byte aligned", pos)
    if pos + 24 > end:
        raise ValueError(f"security cell offset 0x{sk_offset:x} is past the hive bins", pos)
    size = struct.unpack_from("<i", data, pos)[0]
    if size >= 0:
        raise ValueError(f"security cell at 0x{sk_offset:x} is free (cell size {size}), not allocated", pos)
    cell_len = -size
    if cell_len < 24 or pos + cell_len > end:
        raise ValueError(f"security cell at 0x{sk_offset:x} claims {cell_len} bytes, past the hive bins", pos)
    if data[pos + 4:pos + 6] != b"sk":
        raise ValueError(f"cell at 0x{sk_offset:x} is not a security (sk) cell: signature {data[pos + 4:pos + 6]!r}", pos + 4)
    sd_len = struct.unpack_from("<I", data, pos + 20)[0]
    if sd_len < 20 or 24 + sd_len > cell_len:
        raise ValueError(f"security cell at 0x{sk_offset:x} claims a {sd_len}-byte descriptor in a {cell_len}-byte cell",
                         pos + 20)
    return bytes(data[pos + 24:pos + 24 + sd_len])


@dataclass
class _Key:
    path: str  # typed form (HKLM\SYSTEM\...) or hive-relative (\...)
    nk: NKRecord


_ROOT_NAMES = {
    "HKEY_LOCAL_MACHINE": "HKLM", "HKLM": "HKLM", "\\REGISTRY\\MACHINE": "HKLM",
    "HKEY_CURRENT_USER": "HKCU", "HKCU": "HKCU",
    "HKEY_USERS": "HKU", "HKU": "HKU", "\\REGISTRY\\USER": "HKU",
    "HKEY_CLASSES_ROOT": "HKCR", "HKCR": "HKCR",
    "HKEY_CURRENT_CONFIG": "HKCC", "HKCC": "HKCC",
}
_MACHINE_HIVES = {"SOFTWARE": "software", "SYSTEM": "system", "SAM": "sam", "SECURITY": "security",
                  "COMPONENTS": "components", "BCD00000000": "bcd", "DRIVERS": "drivers", "ELAM": "elam",
                  "HARDWARE": "hardware", "SCHEMA": "schema"}
# where each kind of hive is mounted, for the paths iter_security yields
_MOUNT = {"software": "HKLM\\SOFTWARE", "system": "HKLM\\SYSTEM", "sam": "HKLM\\SAM", "security": "HKLM\\SECURITY",
          "components": "HKLM\\COMPONENTS", "bcd": "HKLM\\BCD00000000", "drivers": "HKLM\\DRIVERS",
          "elam": "HKLM\\ELAM", "ntuser": "HKCU", "usrclass": "HKCU\\Software\\Classes", "default": "HKU\\.DEFAULT"}


def _split_root(key_path: str) -> tuple[str | None, list[str]]:
    path = key_path.strip().replace("/", "\\")
    if path.upper().startswith("COMPUTER\\"):
        path = path[9:]
    upper = path.upper()
    for prefix in ("\\REGISTRY\\MACHINE", "\\REGISTRY\\USER"):
        if upper == prefix or upper.startswith(prefix + "\\"):
            return _ROOT_NAMES[prefix], [p for p in path[len(prefix):].split("\\") if p]
    head, _, rest = path.partition("\\")
    root = _ROOT_NAMES.get(head.rstrip(":").upper())
    if root:
        return root, [p for p in rest.split("\\") if p]
    return None, [p for p in path.split("\\") if p]


class Hive:
    """One hive file, opened with regipy; security descriptors read from its sk cells."""

    def __init__(self, path: str | os.PathLike):
        from construct import ConstructError
        from regipy.exceptions import RegipyException
        from regipy.registry import RegistryHive

        self.path = str(path)
        try:
            size = os.path.getsize(self.path)
        except OSError as exc:
            raise HiveError(self.path, f"cannot read: {exc.strerror or exc}", kind="open") from None
        if size > MAX_HIVE_SIZE:
            raise HiveError(self.path, f"{size} bytes is larger than a registry hive can be", kind="open")
        if size < BASE_BLOCK + 32:
            raise HiveError(self.path, f"{size} bytes is too small for a registry hive", kind="open")
        with open(self.path, "rb") as f:
            head = f.read(4)
        if head != b"regf":
            raise HiveError(self.path, f"not a registry hive (signature {head!r}, expected b'regf')", offset=0, kind="open")
        try:
            self._regipy = RegistryHive(self.path)
        except (RegipyException, ConstructError, ValueError, IndexError, struct.error, UnicodeError,
                StopIteration) as exc:  # StopIteration: regipy's next() on a root bin without cells
            detail = _short(exc) or ("the first hive bin holds no allocated cell" if isinstance(exc, StopIteration)
                                     else "no detail")
            raise HiveError(self.path, f"regipy cannot open the hive: {type(exc).__name__}: {detail}",
                            kind="open") from None
        self.data: bytes = self._regipy._stream.getvalue()
        declared = struct.unpack_from("<I", self.data, 0x28)[0]
        self.bins_end = min(len(self.data), BASE_BLOCK + declared) if declared else len(self.data)
        if self.bins_end <= BASE_BLOCK:
            self.bins_end = len(self.data)
        self.kind = self._detect_kind()
        self.logs_applied: list[str] = []
        self._errors = (RegipyException, ConstructError, ValueError, IndexError, KeyError, struct.error,
                        UnicodeError, OverflowError, AttributeError, TypeError, RecursionError)

    # -- what kind of hive -------------------------------------------------------------------
    def _detect_kind(self) -> str | None:
        name = (self._regipy.header.file_name or "").replace("\x00", "").strip().lower()
        base = name.rsplit("\\", 1)[-1]
        by_name = {"ntuser.dat": "ntuser", "usrclass.dat": "usrclass", "system": "system", "software": "software",
                   "sam": "sam", "security": "security", "components": "components", "default": "default",
                   "bcd": "bcd", "drivers": "drivers", "elam": "elam"}
        if base in by_name:
            return by_name[base]
        try:
            names = {sub.name.upper() for sub in self._regipy.root.iter_subkeys() or ()}
        except Exception:
            return None
        if "SELECT" in names and any(n.startswith("CONTROLSET") for n in names):
            return "system"
        if {"MICROSOFT", "CLASSES"} <= names:
            return "software"
        if names == {"SAM"}:
            return "sam"
        if "POLICY" in names:
            return "security"
        if "LOCAL SETTINGS" in names:
            return "usrclass"
        if {"SOFTWARE", "CONTROL PANEL"} & names:
            return "ntuser"
        return None

    # -- paths -------------------------------------------------------------------------------
    def current_control_set(self) -> int:
        try:
            select = self._regipy.root.get_subkey("Select", raise_on_missing=False)
            value = select.get_value("Current") if select is not None else None
            return int(value) if isinstance(value, int) and 0 < value < 1000 else 1
        except self._errors:
            return 1

    def hive_parts(self, key_path: str) -> list[str]:
        """The path inside this hive (list of names) for a typed key path (see the module table)."""
        root, parts = _split_root(key_path)
        upper = [p.upper() for p in parts]
        want: str | None = None
        if root == "HKLM":
            if not parts:
                raise HiveError(self.path, "HKLM itself is not in a hive file; name a hive (HKLM\\SOFTWARE...)",
                                key_path=key_path, kind="path")
            want = _MACHINE_HIVES.get(upper[0], upper[0].lower())
            parts = parts[1:]
            if want == "system" and parts and parts[0].upper() == "CURRENTCONTROLSET":
                parts = [f"ControlSet{self.current_control_set():03d}"] + parts[1:]
        elif root == "HKCC":
            want = "system"
            parts = [f"ControlSet{self.current_control_set():03d}", "Hardware Profiles", "Current"] + parts
        elif root == "HKCU":
            if self.kind == "usrclass" and upper[:2] == ["SOFTWARE", "CLASSES"]:
                want, parts = "usrclass", parts[2:]
            else:
                want = "ntuser"
        elif root == "HKU":
            if not parts:
                raise HiveError(self.path, "HKU itself is not in a hive file", key_path=key_path, kind="path")
            if upper[0].endswith("_CLASSES"):
                want = "usrclass"
            elif upper[0] == ".DEFAULT":
                want = "default" if self.kind == "default" else "ntuser"
            else:
                want = "ntuser"
            parts = parts[1:]
        elif root == "HKCR":
            if self.kind == "usrclass":
                want = "usrclass"
            else:
                want, parts = "software", ["Classes"] + parts
        if want is not None and self.kind is not None and want != self.kind:
            raise HiveError(self.path, f"this key is in the {want.upper()} hive, but the file is a {self.kind.upper()} hive",
                            key_path=key_path, kind="path")
        return parts

    def full_path(self, key_path: str) -> str:
        """The key's full path as the running system names it, whatever the typed form (hive-
        relative ``ControlSet001\\Services`` -> ``HKLM\\SYSTEM\\ControlSet001\\Services``).  A
        user's hive belongs under HKEY_USERS\\<their SID>, which the file does not record: the
        path holds the placeholder ``<user SID>``."""
        parts = self.hive_parts(key_path)
        tail = "\\".join(parts)
        mount = {"ntuser": "HKU\\<user SID>", "usrclass": "HKU\\<user SID>_Classes"}.get(self.kind or "")
        if mount is None:
            mount = _MOUNT.get(self.kind or "", "")
        return (mount + ("\\" + tail if tail else "")) if mount else "\\" + tail

    @property
    def sequences(self) -> tuple[int, int]:
        """The base block's two sequence numbers (equal when the hive was written cleanly)."""
        return struct.unpack_from("<II", self.data, 4)

    @property
    def dirty(self) -> bool:
        """Sequence numbers that differ: changes sit in the transaction logs (.LOG1/.LOG2), not
        yet written into the file itself."""
        first, second = self.sequences
        return first != second

    def display_path(self, parts: list[str]) -> str:
        mount = _MOUNT.get(self.kind or "", "")
        tail = "\\".join(parts)
        if mount:
            return mount + ("\\" + tail if tail else "")
        return "\\" + tail

    # -- keys --------------------------------------------------------------------------------
    def _find(self, key_path: str):
        parts = self.hive_parts(key_path)
        nk = self._regipy.root
        walked: list[str] = []
        for part in parts:
            try:
                sub = nk.get_subkey(part, raise_on_missing=False) if nk.subkey_count else None
            except self._errors as exc:
                where = self.display_path(walked)
                raise HiveError(self.path, f"the subkeys of {where} cannot be read: {type(exc).__name__}: {_short(exc)}",
                                key_path=key_path, kind="subkeys") from None
            if sub is None:
                raise HiveError(self.path, f"key not found (no subkey {part!r} under {self.display_path(walked)})",
                                key_path=key_path, kind="path")
            walked.append(sub.name)
            nk = sub
        return nk, walked

    def key_security(self, key_path: str) -> bytes:
        """The raw self-relative security descriptor of ``key_path``."""
        nk, _ = self._find(key_path)
        return self._security_of(nk, key_path)

    def _security_of(self, nk, key_path: str) -> bytes:
        offset = nk.header.security_key_offset
        try:
            return read_sk_cell(self.data, offset, self.bins_end)
        except ValueError as exc:
            message, at = exc.args
            raise HiveError(self.path, message, offset=at, key_path=key_path) from None

    def parent_path(self, key_path: str) -> str | None:
        """The typed path of the parent key inside the same hive, or None at the hive's root."""
        if not self.hive_parts(key_path):
            return None
        # drop the last component of what was typed (keeps the user's spelling of the root)
        stripped = key_path.rstrip("\\/ ")
        cut = max(stripped.rfind("\\"), stripped.rfind("/"))
        return stripped[:cut] if cut > 0 else "\\"  # a top-level key typed without a root: the hive's root

    def iter_keys(self) -> Iterator[tuple[str, NKRecord | HiveError]]:
        """(path, regipy NKRecord) for every key reachable from the root, depth first; a subkey
        list that cannot be read yields (path, HiveError) and the walk goes on with the rest."""
        visited: set[int] = set()
        limit = len(self.data) // 16
        count = 0
        stack: list[tuple[list[str], NKRecord, int]] = [([], self._regipy.root, 0)]
        while stack:
            parts, nk, depth = stack.pop()
            path = self.display_path(parts)
            yield path, nk
            count += 1
            if count > limit:
                yield path, HiveError(self.path, "more keys than the hive can hold: stopping (a loop?)",
                                      key_path=path, kind="subkeys")
                return
            if not nk.subkey_count:
                continue
            list_offset = nk.header.subkeys_list_offset
            if list_offset in visited:
                yield path, HiveError(self.path, f"subkey list 0x{list_offset:x} was already walked (a loop)",
                                      offset=BASE_BLOCK + list_offset, key_path=path, kind="subkeys")
                continue
            visited.add(list_offset)
            if depth >= MAX_DEPTH:
                yield path, HiveError(self.path, f"deeper than {MAX_DEPTH} keys", key_path=path, kind="subkeys")
                continue
            children = []
            try:
                # one by one: the subkeys read before a failure are kept
                for sub in nk.iter_subkeys() or ():
                    children.append(sub)
            except self._errors as exc:
                yield path, HiveError(self.path, f"subkeys cannot be read after {len(children)} of {nk.subkey_count}: "
                                      f"{type(exc).__name__}: {_short(exc)}", offset=BASE_BLOCK + list_offset,
                                      key_path=path, kind="subkeys")
            for sub in reversed(children):
                name = getattr(sub, "name", None)
                if name is None:
                    continue
                stack.append((parts + [name], sub, depth + 1))

    def iter_security(self) -> Iterator[tuple[str, bytes | HiveError]]:
        """(key path, descriptor bytes or HiveError) for every key; unreadable subkey lists yield
        their HiveError (kind "subkeys") too.  Keys sharing an sk cell share the bytes."""
        cache: dict[int, bytes | HiveError] = {}
        for path, item in self.iter_keys():
            if isinstance(item, HiveError):
                yield path, item
                continue
            offset = item.header.security_key_offset
            if offset not in cache:
                try:
                    cache[offset] = read_sk_cell(self.data, offset, self.bins_end)
                except ValueError as exc:
                    message, at = exc.args
                    cache[offset] = HiveError(self.path, message, offset=at, key_path=path)
            result = cache[offset]
            if isinstance(result, HiveError) and result.key_path != path:
                result = HiveError(self.path, result.detail, offset=result.offset, key_path=path)
            yield path, result

    # -- every sk cell -----------------------------------------------------------------------
    def scan_sk_offsets(self) -> tuple[list[int], list[HiveError]]:
        """Offsets of the allocated sk cells found by walking the hive bins, and the damage met
        (bins whose header is missing are skipped up to the next ``hbin`` on a 4096 boundary)."""
        data, end = self.data, self.bins_end
        found: list[int] = []
        damage: list[HiveError] = []
        pos = BASE_BLOCK
        while pos + 32 <= end:
            if data[pos:pos + 4] != b"hbin":
                nxt = data.find(b"hbin", pos + 1, end)
                while nxt != -1 and (nxt - BASE_BLOCK) % 4096:
                    nxt = data.find(b"hbin", nxt + 1, end)
                damage.append(HiveError(self.path, f"no hive bin header (skipped {((nxt if nxt != -1 else end) - pos)} bytes)",
                                        offset=pos, kind="bins"))
                if nxt == -1:
                    break
                pos = nxt
                continue
            size = struct.unpack_from("<I", data, pos + 8)[0]
            if size < 4096 or size % 4096 or pos + size > end:
                damage.append(HiveError(self.path, f"hive bin size {size} is invalid", offset=pos + 8, kind="bins"))
                size = 4096
            cell = pos + 32
            stop = pos + size
            while cell + 4 <= stop:
                cell_size = struct.unpack_from("<i", data, cell)[0]
                length = abs(cell_size)
                if length < 8 or length % 8 or cell + length > stop:
                    damage.append(HiveError(self.path, f"cell size {cell_size} is invalid; rest of the bin skipped",
                                            offset=cell, kind="bins"))
                    break
                if cell_size < 0 and data[cell + 4:cell + 6] == b"sk":
                    found.append(cell - BASE_BLOCK)
                cell += length
            pos += size
        return found, damage

    def iter_sk_cells(self) -> Iterator[tuple[int, bytes | HiveError]]:
        """(cell offset, descriptor bytes or HiveError) for every distinct sk cell: those found in
        the hive bins, those the keys point at, and those on the sk cells' flink/blink list."""
        scanned, _ = self.scan_sk_offsets()
        offsets: list[int] = list(dict.fromkeys(scanned))
        seen = set(offsets)
        for _, item in self.iter_keys():
            if isinstance(item, HiveError):
                continue
            off = item.header.security_key_offset
            if off not in seen:
                seen.add(off)
                offsets.append(off)
        for off in list(offsets):  # the doubly linked list of sk cells
            pos = BASE_BLOCK + off
            if off == NO_CELL or pos + 16 > self.bins_end or self.data[pos + 4:pos + 6] != b"sk":
                continue
            for link in struct.unpack_from("<II", self.data, pos + 8):
                if link not in seen:
                    seen.add(link)
                    offsets.append(link)
        for off in offsets:
            try:
                yield off, read_sk_cell(self.data, off, self.bins_end)
            except ValueError as exc:
                message, at = exc.args
                yield off, HiveError(self.path, message, offset=at)


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return _printable(text[:160] + ("..." if len(text) > 160 else ""))


def open_hive(path: str | os.PathLike, logs: list[str] | None = None) -> Hive:
    """The hive at ``path``; with ``logs`` (its .LOG1/.LOG2 transaction logs) their changes are
    applied first (regipy's ``apply_transaction_logs``, into a temporary copy), as Windows does
    when it loads a hive that was not written cleanly."""
    if not logs:
        return Hive(path)
    import tempfile

    from regipy.recovery import apply_transaction_logs

    logs = sorted(logs)
    fd, restored = tempfile.mkstemp(prefix="rpctrace-hive-", suffix=".restored")
    os.close(fd)
    try:
        try:
            apply_transaction_logs(os.fspath(path), logs[0], logs[1] if len(logs) > 1 else None,
                                   restored_hive_path=restored)
        except Exception as exc:
            raise HiveError(os.fspath(path), f"its transaction logs cannot be applied ({', '.join(map(os.fspath, logs))}): "
                                             f"{type(exc).__name__}: {_short(exc)}", kind="open") from None
        hive = Hive(restored)
        hive.path = os.fspath(path)
        hive.logs_applied = list(map(os.fspath, logs))
        return hive
    finally:
        try:
            os.unlink(restored)
        except OSError:
            pass


def key_security(hive_path: str | os.PathLike, key_path: str) -> bytes:
    """The raw security descriptor bytes of ``key_path`` in the hive file (see the path table)."""
    return Hive(hive_path).key_security(key_path)


def iter_security(hive_path: str | os.PathLike) -> Iterator[tuple[str, bytes | HiveError]]:
    """(key path, descriptor bytes or HiveError) for every key of the hive."""
    return Hive(hive_path).iter_security()


def iter_sk_cells(hive_path: str | os.PathLike) -> Iterator[tuple[int, bytes | HiveError]]:
    """(sk cell offset, descriptor bytes or HiveError) for every distinct security cell."""
    return Hive(hive_path).iter_sk_cells()
