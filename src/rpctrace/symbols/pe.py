"""PE image headers: what identifies a build and its PDB (with ``pefile``).

From a DLL/EXE/SYS this reads the machine, whether it is PE32 or PE32+, the header's
TimeDateStamp, SizeOfImage and CheckSum (the binary index of a symbol store and the match
against a trace's image events), the sections, and the CodeView ``RSDS`` records of the debug
directory (PDB GUID, age and file name: the PDB's index in a symbol store).

Files come from compromised machines: the file size, the number of debug directory entries and
the PDB name length are bounded before pefile looks at them, and any failure of pefile on a
damaged file becomes one :class:`~rpctrace.errors.InputError` naming the file (and the byte
offset where it is known).
"""

from __future__ import annotations

import os
import struct
import uuid
from dataclasses import dataclass, field

from rpctrace.errors import InputError

#: largest image accepted (the largest Windows binaries are a few hundred MiB)
MAX_IMAGE_BYTES = 1 << 30
#: most debug directory entries (real images have 1 to 6)
MAX_DEBUG_ENTRIES = 64
#: longest PDB path in a CodeView record (MAX_PATH is 260; a few tools write longer ones)
MAX_PDB_NAME = 1024
IMAGE_DEBUG_TYPE_CODEVIEW = 2
_DEBUG_ENTRY = struct.Struct("<IIHHIIII")  # Characteristics .. PointerToRawData
_RSDS = struct.Struct("<4s16sI")

MACHINES = {0x14C: "x86", 0x8664: "x86_64", 0xAA64: "arm64", 0x1C4: "arm", 0x200: "ia64"}


@dataclass(frozen=True)
class CodeView:
    """One RSDS record: the PDB the image was linked with."""

    guid: str  # lower-case, dashed
    age: int
    pdb_name: str  # as recorded (often a full build path)


@dataclass(frozen=True)
class Section:
    name: str
    rva: int
    size: int
    characteristics: int

    @property
    def executable(self) -> bool:
        return bool(self.characteristics & 0x20000000) or bool(self.characteristics & 0x20)


@dataclass
class PeInfo:
    path: str
    machine: int
    pe32plus: bool
    timestamp: int
    size_of_image: int
    checksum: int
    image_base: int
    sections: list[Section] = field(default_factory=list)
    codeview: list[CodeView] = field(default_factory=list)

    @property
    def arch(self) -> str:
        return MACHINES.get(self.machine, f"0x{self.machine:x}")

    @property
    def pdb(self) -> CodeView | None:
        """The image's PDB (the last RSDS record, as debuggers take it)."""
        return self.codeview[-1] if self.codeview else None

    def section_of(self, rva: int) -> Section | None:
        for s in self.sections:
            if s.rva <= rva < s.rva + s.size:
                return s
        return None


def read_pe(path: str | os.PathLike) -> PeInfo:
    """Read a PE image's identity (see the module docstring).  Raises :class:`InputError`."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_IMAGE_BYTES:
                raise InputError(path, f"{size} bytes: larger than the {MAX_IMAGE_BYTES}-byte limit for an image")
            data = fh.read()
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    return parse_pe(data, path)


def parse_pe(data: bytes, path: str = "<image>") -> PeInfo:
    """:func:`read_pe` on bytes already read."""
    import pefile

    if len(data) < 0x40 or data[:2] != b"MZ":
        raise InputError(path, "not a PE image (no MZ header)", offset=0)
    e_lfanew = struct.unpack_from("<I", data, 0x3C)[0]
    if e_lfanew + 0x18 > len(data) or data[e_lfanew:e_lfanew + 4] != b"PE\0\0":
        raise InputError(path, "not a PE image (no PE signature where e_lfanew points)", offset=0x3C)
    try:
        pe = pefile.PE(data=data, fast_load=True)
    except pefile.PEFormatError as exc:
        raise InputError(path, f"damaged PE headers: {exc.value if hasattr(exc, 'value') else exc}",
                         offset=e_lfanew) from None
    except (struct.error, IndexError, ValueError, TypeError, AttributeError, KeyError, OverflowError) as exc:
        raise InputError(path, f"damaged PE headers ({type(exc).__name__}: {exc})", offset=e_lfanew) from None
    try:
        oh = pe.OPTIONAL_HEADER
        fh = pe.FILE_HEADER
        info = PeInfo(path=path, machine=fh.Machine, pe32plus=oh.Magic == 0x20B, timestamp=fh.TimeDateStamp,
                      size_of_image=oh.SizeOfImage, checksum=oh.CheckSum, image_base=oh.ImageBase)
        table_end = e_lfanew + 24 + fh.SizeOfOptionalHeader + 40 * fh.NumberOfSections
        if table_end > len(data):
            raise InputError(path, f"cut short: the section table ends at byte {table_end}, the file has "
                                   f"{len(data)}", offset=len(data))
        for s in pe.sections[:96]:
            name = s.Name.split(b"\0", 1)[0].decode("ascii", "replace")
            info.sections.append(Section(name, s.VirtualAddress, max(s.Misc_VirtualSize, 0), s.Characteristics))
            if s.SizeOfRawData and s.PointerToRawData + s.SizeOfRawData > len(data):
                raise InputError(path, f"cut short: section {name!r} ends at byte "
                                       f"{s.PointerToRawData + s.SizeOfRawData}, the file has {len(data)}",
                                 offset=len(data))
        info.codeview = _codeview(pe, data, path)
    except InputError:
        raise
    except (pefile.PEFormatError, struct.error, IndexError, ValueError, TypeError, AttributeError, KeyError,
            OverflowError) as exc:
        raise InputError(path, f"damaged PE image ({type(exc).__name__}: {exc})") from None
    # no pe.close(): pefile was given bytes, not a file, and its close() runs a full gc.collect()
    return info


def _codeview(pe, data: bytes, path: str) -> list[CodeView]:
    """RSDS records of the debug directory, read with bounds checked here (pefile would walk a
    hostile directory size entry by entry)."""
    dirs = pe.OPTIONAL_HEADER.DATA_DIRECTORY
    if len(dirs) <= 6:
        return []
    rva, size = dirs[6].VirtualAddress, dirs[6].Size
    if not rva or not size:
        return []
    count = size // _DEBUG_ENTRY.size
    if count > MAX_DEBUG_ENTRIES:
        raise InputError(path, f"debug directory of {size} bytes ({count} entries, at most {MAX_DEBUG_ENTRIES})")
    import pefile

    try:
        offset = pe.get_offset_from_rva(rva)
    except pefile.PEFormatError:
        offset = None
    if offset is None or offset < 0 or offset + count * _DEBUG_ENTRY.size > len(data):
        raise InputError(path, f"debug directory at RVA 0x{rva:x} lies outside the file",
                         offset=offset if isinstance(offset, int) and 0 <= offset < len(data) else None)
    out: list[CodeView] = []
    for i in range(count):
        at = offset + i * _DEBUG_ENTRY.size
        _ch, _ts, _maj, _min, dtype, dsize, _addr, raw = _DEBUG_ENTRY.unpack_from(data, at)
        if dtype != IMAGE_DEBUG_TYPE_CODEVIEW:
            continue
        if dsize < _RSDS.size + 1 or raw + dsize > len(data) or raw >= len(data):
            raise InputError(path, f"CodeView record of {dsize} bytes at file offset 0x{raw:x} does not fit "
                                   f"in the file", offset=at)
        if data[raw:raw + 4] != b"RSDS":
            continue  # NB10 (PDB 2.0) and others: no GUID to look a PDB up by
        _sig, guid_le, age = _RSDS.unpack_from(data, raw)
        name_bytes = data[raw + _RSDS.size:raw + min(dsize, _RSDS.size + MAX_PDB_NAME)]
        name = name_bytes.split(b"\0", 1)[0].decode("utf-8", "replace")
        if not name:
            raise InputError(path, "CodeView record without a PDB name", offset=raw + _RSDS.size)
        out.append(CodeView(str(uuid.UUID(bytes_le=guid_le)), age, name))
    return out
