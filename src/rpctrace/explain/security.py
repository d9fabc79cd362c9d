"""Security descriptors: the self-relative binary form (as stored in registry hives and ETW
payloads) and SDDL, both ways.

Layouts (MS-DTYP 2.4.6 SECURITY_DESCRIPTOR, 2.4.5 ACL, 2.4.4 ACEs, 2.4.2 SID; winnt.h):

* header (20 bytes): Revision u8 (1), Sbz1 u8 (the resource-manager control byte when
  SE_RM_CONTROL_VALID), Control u16, then u32 offsets of Owner, Group, Sacl, Dacl (0 = absent),
  each relative to the start of the descriptor;
* ACL: AclRevision u8 (2, 3 or 4), Sbz1 u8, AclSize u16, AceCount u16, Sbz2 u16, then the ACEs;
* ACE: AceType u8, AceFlags u8, AceSize u16, then by type: mask u32 + SID (+ application data
  for callback, resource-attribute and access-filter ACEs), or for object ACEs mask u32, Flags
  u32, ObjectType GUID (Flags & 1), InheritedObjectType GUID (Flags & 2), SID (+ application data
  for callback object ACEs);
* SID: Revision u8 (1), SubAuthorityCount u8 (<= 15), IdentifierAuthority 6 bytes big-endian,
  SubAuthority u32 LE each.

Every offset, length and count read from the bytes is checked against the buffer before use;
damage raises :class:`SecurityDescriptorError` with the byte offset (character offset for SDDL).

SDDL (MS-DTYP 2.5.1): ``O:owner G:group D:flags(ace)(ace)... S:flags(ace)...`` with ACE strings
``(type;flags;rights;object_guid;inherit_object_guid;sid[;condition])``.  Rights are written as
Windows writes them: one composite alias when the mask equals one (KA KR KW FA FR...), else the
single-bit aliases when they cover every bit (GA GR GW GX CC DC LC SW RP WP DT LO CR SD RC WD WO), else
hex.  Approximations: conditional expressions and resource attributes are kept as SDDL text
(from SDDL) or as bytes (from binary) and are not translated between the two forms; the
compound ACE type (4) and unknown types are kept as raw bytes without an SDDL form.
"""

from __future__ import annotations

import re
import struct
import uuid
from dataclasses import dataclass, field, replace

from rpctrace.errors import RpctraceError
from rpctrace.knowledge import access as _access
from rpctrace.knowledge import sids as _sids

__all__ = [
    "ACE_TYPES",
    "SE_DACL_AUTO_INHERITED",
    "SE_DACL_PRESENT",
    "SE_DACL_PROTECTED",
    "SE_SELF_RELATIVE",
    "Ace",
    "Acl",
    "SecurityDescriptor",
    "SecurityDescriptorError",
    "parse_binary",
    "parse_sddl",
    "sid_from_bytes",
    "sid_to_bytes",
    "to_binary",
    "to_sddl",
]

# Control flags (winnt.h SECURITY_DESCRIPTOR_CONTROL)
SE_OWNER_DEFAULTED = 0x0001
SE_GROUP_DEFAULTED = 0x0002
SE_DACL_PRESENT = 0x0004
SE_DACL_DEFAULTED = 0x0008
SE_SACL_PRESENT = 0x0010
SE_SACL_DEFAULTED = 0x0020
SE_DACL_UNTRUSTED = 0x0040
SE_SERVER_SECURITY = 0x0080
SE_DACL_AUTO_INHERIT_REQ = 0x0100
SE_SACL_AUTO_INHERIT_REQ = 0x0200
SE_DACL_AUTO_INHERITED = 0x0400
SE_SACL_AUTO_INHERITED = 0x0800
SE_DACL_PROTECTED = 0x1000
SE_SACL_PROTECTED = 0x2000
SE_RM_CONTROL_VALID = 0x4000
SE_SELF_RELATIVE = 0x8000

CONTROL_NAMES = {
    SE_OWNER_DEFAULTED: "SE_OWNER_DEFAULTED",
    SE_GROUP_DEFAULTED: "SE_GROUP_DEFAULTED",
    SE_DACL_PRESENT: "SE_DACL_PRESENT",
    SE_DACL_DEFAULTED: "SE_DACL_DEFAULTED",
    SE_SACL_PRESENT: "SE_SACL_PRESENT",
    SE_SACL_DEFAULTED: "SE_SACL_DEFAULTED",
    SE_DACL_UNTRUSTED: "SE_DACL_UNTRUSTED",
    SE_SERVER_SECURITY: "SE_SERVER_SECURITY",
    SE_DACL_AUTO_INHERIT_REQ: "SE_DACL_AUTO_INHERIT_REQ",
    SE_SACL_AUTO_INHERIT_REQ: "SE_SACL_AUTO_INHERIT_REQ",
    SE_DACL_AUTO_INHERITED: "SE_DACL_AUTO_INHERITED",
    SE_SACL_AUTO_INHERITED: "SE_SACL_AUTO_INHERITED",
    SE_DACL_PROTECTED: "SE_DACL_PROTECTED",
    SE_SACL_PROTECTED: "SE_SACL_PROTECTED",
    SE_RM_CONTROL_VALID: "SE_RM_CONTROL_VALID",
    SE_SELF_RELATIVE: "SE_SELF_RELATIVE",
}

# ACE flags
OBJECT_INHERIT_ACE = 0x01
CONTAINER_INHERIT_ACE = 0x02
NO_PROPAGATE_INHERIT_ACE = 0x04
INHERIT_ONLY_ACE = 0x08
INHERITED_ACE = 0x10
CRITICAL_ACE_FLAG = 0x20
SUCCESSFUL_ACCESS_ACE_FLAG = 0x40  # TRUST_PROTECTED_FILTER_ACE_FLAG on access-filter ACEs
FAILED_ACCESS_ACE_FLAG = 0x80

ACE_FLAG_NAMES = {
    OBJECT_INHERIT_ACE: "OBJECT_INHERIT_ACE",
    CONTAINER_INHERIT_ACE: "CONTAINER_INHERIT_ACE",
    NO_PROPAGATE_INHERIT_ACE: "NO_PROPAGATE_INHERIT_ACE",
    INHERIT_ONLY_ACE: "INHERIT_ONLY_ACE",
    INHERITED_ACE: "INHERITED_ACE",
    CRITICAL_ACE_FLAG: "CRITICAL_ACE_FLAG",
    SUCCESSFUL_ACCESS_ACE_FLAG: "SUCCESSFUL_ACCESS_ACE_FLAG",
    FAILED_ACCESS_ACE_FLAG: "FAILED_ACCESS_ACE_FLAG",
}

# SDDL ACE flag strings, in the order Windows writes them
_SDDL_ACE_FLAGS = (
    ("OI", OBJECT_INHERIT_ACE),
    ("CI", CONTAINER_INHERIT_ACE),
    ("NP", NO_PROPAGATE_INHERIT_ACE),
    ("IO", INHERIT_ONLY_ACE),
    ("ID", INHERITED_ACE),
    ("CR", CRITICAL_ACE_FLAG),
    ("SA", SUCCESSFUL_ACCESS_ACE_FLAG),
    ("FA", FAILED_ACCESS_ACE_FLAG),
)
_SDDL_ACE_FLAG_PARSE = dict(_SDDL_ACE_FLAGS) | {"TP": SUCCESSFUL_ACCESS_ACE_FLAG}

# ACE types: value -> (name, SDDL string or None, layout)
# layouts: "basic" mask+SID, "callback" mask+SID+data, "object" mask+flags+guids+SID,
# "object_callback" the same + data, "compound" and "raw" kept as bytes.
ACE_TYPES: dict[int, tuple[str, str | None, str]] = {
    0x00: ("ACCESS_ALLOWED", "A", "basic"),
    0x01: ("ACCESS_DENIED", "D", "basic"),
    0x02: ("SYSTEM_AUDIT", "AU", "basic"),
    0x03: ("SYSTEM_ALARM", "AL", "basic"),
    0x04: ("ACCESS_ALLOWED_COMPOUND", None, "compound"),
    0x05: ("ACCESS_ALLOWED_OBJECT", "OA", "object"),
    0x06: ("ACCESS_DENIED_OBJECT", "OD", "object"),
    0x07: ("SYSTEM_AUDIT_OBJECT", "OU", "object"),
    0x08: ("SYSTEM_ALARM_OBJECT", "OL", "object"),
    0x09: ("ACCESS_ALLOWED_CALLBACK", "XA", "callback"),
    0x0A: ("ACCESS_DENIED_CALLBACK", "XD", "callback"),
    0x0B: ("ACCESS_ALLOWED_CALLBACK_OBJECT", "ZA", "object_callback"),
    0x0C: ("ACCESS_DENIED_CALLBACK_OBJECT", None, "object_callback"),
    0x0D: ("SYSTEM_AUDIT_CALLBACK", "XU", "callback"),
    0x0E: ("SYSTEM_ALARM_CALLBACK", None, "callback"),
    0x0F: ("SYSTEM_AUDIT_CALLBACK_OBJECT", None, "object_callback"),
    0x10: ("SYSTEM_ALARM_CALLBACK_OBJECT", None, "object_callback"),
    0x11: ("SYSTEM_MANDATORY_LABEL", "ML", "basic"),
    0x12: ("SYSTEM_RESOURCE_ATTRIBUTE", "RA", "callback"),
    0x13: ("SYSTEM_SCOPED_POLICY_ID", "SP", "basic"),
    0x14: ("SYSTEM_PROCESS_TRUST_LABEL", "TL", "basic"),
    0x15: ("SYSTEM_ACCESS_FILTER", "FL", "callback"),
}
_SDDL_TYPES = {sddl: value for value, (_, sddl, _) in ACE_TYPES.items() if sddl}
ALLOW_TYPES = frozenset({0x00, 0x05, 0x09, 0x0B})
DENY_TYPES = frozenset({0x01, 0x06, 0x0A, 0x0C})
ACE_OBJECT_TYPE_PRESENT = 0x1
ACE_INHERITED_OBJECT_TYPE_PRESENT = 0x2

MAX_SUB_AUTHORITIES = 15
HEADER_SIZE = 20
MAX_SDDL_LENGTH = 1 << 20


class SecurityDescriptorError(RpctraceError):
    """A security descriptor (binary or SDDL) that cannot be read; ``offset`` is where reading
    stopped: a byte offset into the binary form, or a character offset into the SDDL text."""

    def __init__(self, message: str, offset: int | None = None, *, unit: str = "byte"):
        self.message = message
        self.offset = offset
        self.unit = unit
        where = f" at {unit} {offset} (0x{offset:x})" if offset is not None and unit == "byte" else (
            f" at {unit} {offset}" if offset is not None else "")
        super().__init__(f"security descriptor{where}: {message}")


# ---------------------------------------------------------------------------------------------
# data model


@dataclass
class Ace:
    """One ACE.  ``sid`` is a string SID (None for compound/unknown types, kept as ``raw``)."""

    type: int
    flags: int
    mask: int
    sid: str | None
    object_flags: int = 0
    object_type: str | None = None
    inherited_object_type: str | None = None
    application_data: bytes | None = None  # callback / resource-attribute / filter data (binary)
    condition: str | None = None  # the same, as SDDL text (from parse_sddl)
    raw: bytes | None = None  # the body of a compound or unknown ACE type
    offset: int | None = field(default=None, compare=False)
    size: int | None = field(default=None, compare=False)

    @property
    def type_name(self) -> str:
        return ACE_TYPES.get(self.type, (f"ACE_TYPE_0x{self.type:02x}", None, "raw"))[0]

    @property
    def sddl_type(self) -> str | None:
        return ACE_TYPES.get(self.type, (None, None, None))[1]

    @property
    def layout(self) -> str:
        return ACE_TYPES.get(self.type, ("", None, "raw"))[2]

    @property
    def is_allow(self) -> bool:
        return self.type in ALLOW_TYPES

    @property
    def is_deny(self) -> bool:
        return self.type in DENY_TYPES

    @property
    def is_callback(self) -> bool:
        return self.layout in ("callback", "object_callback") and self.type not in (0x12, 0x15)

    @property
    def is_object(self) -> bool:
        return self.layout in ("object", "object_callback")

    @property
    def inherited(self) -> bool:
        return bool(self.flags & INHERITED_ACE)

    @property
    def inherit_only(self) -> bool:
        return bool(self.flags & INHERIT_ONLY_ACE)

    @property
    def container_inherit(self) -> bool:
        return bool(self.flags & CONTAINER_INHERIT_ACE)

    @property
    def object_inherit(self) -> bool:
        return bool(self.flags & OBJECT_INHERIT_ACE)

    @property
    def no_propagate(self) -> bool:
        return bool(self.flags & NO_PROPAGATE_INHERIT_ACE)

    def flag_names(self) -> list[str]:
        return [name for bit, name in ACE_FLAG_NAMES.items() if self.flags & bit]

    def to_dict(self, object_type: str = "key") -> dict:
        out: dict = {
            "type": self.type_name,
            "type_value": self.type,
            "flags": self.flag_names(),
            "flags_value": self.flags,
            "mask": self.mask,
            "mask_names": _access.decode(self.mask, object_type),
            "sid": self.sid,
            "name": _sids.name_of(self.sid),
            "inherited": self.inherited,
            "inherit_only": self.inherit_only,
        }
        if self.is_object:
            out["object_type"] = self.object_type
            out["inherited_object_type"] = self.inherited_object_type
        if self.application_data is not None:
            out["application_data"] = self.application_data.hex()
        if self.condition is not None:
            out["condition"] = self.condition
        if self.raw is not None:
            out["raw"] = self.raw.hex()
        return out


@dataclass
class Acl:
    aces: list[Ace] = field(default_factory=list)
    revision: int = field(default=2, compare=False)
    offset: int | None = field(default=None, compare=False)
    size: int | None = field(default=None, compare=False)

    def __iter__(self):
        return iter(self.aces)

    def __len__(self) -> int:
        return len(self.aces)


@dataclass
class SecurityDescriptor:
    """A security descriptor.  ``dacl is None`` with SE_DACL_PRESENT is a NULL DACL (everyone
    gets everything); without SE_DACL_PRESENT the descriptor has no DACL (the same effect)."""

    control: int = SE_SELF_RELATIVE
    owner: str | None = None
    group: str | None = None
    dacl: Acl | None = None
    sacl: Acl | None = None
    revision: int = 1
    rm_control: int | None = None

    @property
    def dacl_present(self) -> bool:
        return bool(self.control & SE_DACL_PRESENT) or self.dacl is not None

    @property
    def sacl_present(self) -> bool:
        return bool(self.control & SE_SACL_PRESENT) or self.sacl is not None

    @property
    def null_dacl(self) -> bool:
        return self.dacl is None

    @property
    def dacl_protected(self) -> bool:
        return bool(self.control & SE_DACL_PROTECTED)

    @property
    def dacl_auto_inherited(self) -> bool:
        return bool(self.control & SE_DACL_AUTO_INHERITED)

    def control_names(self) -> list[str]:
        return [name for bit, name in CONTROL_NAMES.items() if self.control & bit]

    def to_dict(self, object_type: str = "key") -> dict:
        def acl(a: Acl | None, present: bool):
            if a is None:
                return None if not present else "NULL"
            return [ace.to_dict(object_type) for ace in a.aces]

        return {
            "owner": self.owner,
            "owner_name": _sids.name_of(self.owner),
            "group": self.group,
            "group_name": _sids.name_of(self.group),
            "control": self.control,
            "control_names": self.control_names(),
            "dacl_protected": self.dacl_protected,
            "dacl": acl(self.dacl, self.dacl_present),
            "sacl": acl(self.sacl, self.sacl_present),
        }


# ---------------------------------------------------------------------------------------------
# binary form


def sid_from_bytes(data: bytes, offset: int, end: int | None = None) -> tuple[str, int]:
    """Read a SID at ``offset`` (not past ``end``); returns (string SID, its length in bytes)."""
    end = len(data) if end is None else min(end, len(data))
    if offset < 0 or offset + 8 > end:
        raise SecurityDescriptorError(f"SID header needs 8 bytes, {max(0, end - offset)} left", offset)
    revision, count = data[offset], data[offset + 1]
    if revision != 1:
        raise SecurityDescriptorError(f"SID revision {revision}, expected 1", offset)
    if count > MAX_SUB_AUTHORITIES:
        raise SecurityDescriptorError(f"SID has {count} sub-authorities, at most {MAX_SUB_AUTHORITIES}", offset + 1)
    length = 8 + 4 * count
    if offset + length > end:
        raise SecurityDescriptorError(f"SID of {count} sub-authorities needs {length} bytes, {end - offset} left", offset)
    authority = int.from_bytes(data[offset + 2:offset + 8], "big")
    subs = struct.unpack_from(f"<{count}I", data, offset + 8)
    auth_text = str(authority) if authority < 1 << 32 else f"0x{authority:012X}"
    return "-".join(["S", "1", auth_text] + [str(s) for s in subs]), length


def sid_to_bytes(sid: str) -> bytes:
    sid = _sids.normalize_sid(sid)
    parts = sid.split("-")
    auth = int(parts[2], 16) if parts[2].lower().startswith("0x") else int(parts[2])
    subs = [int(p) for p in parts[3:]]
    return bytes([1, len(subs)]) + auth.to_bytes(6, "big") + struct.pack(f"<{len(subs)}I", *subs)


def _guid(data: bytes, offset: int) -> str:
    return str(uuid.UUID(bytes_le=bytes(data[offset:offset + 16])))


def _parse_ace(data: bytes, pos: int, end: int) -> Ace:
    ace_type, flags, size = struct.unpack_from("<BBH", data, pos)
    body = pos + 4
    stop = pos + size
    layout = ACE_TYPES.get(ace_type, ("", None, "raw"))[2]
    if layout in ("raw", "compound"):
        mask = struct.unpack_from("<I", data, body)[0] if body + 4 <= stop else 0
        return Ace(ace_type, flags, mask, None, raw=bytes(data[body:stop]), offset=pos, size=size)
    if body + 4 > stop:
        raise SecurityDescriptorError(f"{ACE_TYPES[ace_type][0]} ACE of {size} bytes has no room for its mask", pos)
    mask = struct.unpack_from("<I", data, body)[0]
    cursor = body + 4
    object_flags = 0
    object_type = inherited_object_type = None
    if layout in ("object", "object_callback"):
        if cursor + 4 > stop:
            raise SecurityDescriptorError("object ACE has no room for its flags", cursor)
        object_flags = struct.unpack_from("<I", data, cursor)[0]
        cursor += 4
        if object_flags & ACE_OBJECT_TYPE_PRESENT:
            if cursor + 16 > stop:
                raise SecurityDescriptorError("object ACE has no room for its object type GUID", cursor)
            object_type = _guid(data, cursor)
            cursor += 16
        if object_flags & ACE_INHERITED_OBJECT_TYPE_PRESENT:
            if cursor + 16 > stop:
                raise SecurityDescriptorError("object ACE has no room for its inherited object type GUID", cursor)
            inherited_object_type = _guid(data, cursor)
            cursor += 16
    sid, sid_len = sid_from_bytes(data, cursor, stop)
    cursor += sid_len
    app = None
    if layout in ("callback", "object_callback"):
        app = bytes(data[cursor:stop])
    return Ace(ace_type, flags, mask, sid, object_flags, object_type, inherited_object_type,
               application_data=app, offset=pos, size=size)


def _parse_acl(data: bytes, offset: int, what: str, field_at: int) -> Acl:
    if offset < HEADER_SIZE or offset + 8 > len(data):
        raise SecurityDescriptorError(f"{what} offset {offset} is outside the {len(data)}-byte descriptor", field_at)
    revision, _sbz1, size, count, _sbz2 = struct.unpack_from("<BBHHH", data, offset)
    if revision not in (2, 3, 4):
        raise SecurityDescriptorError(f"{what} revision {revision}, expected 2, 3 or 4", offset)
    if size < 8:
        raise SecurityDescriptorError(f"{what} size {size} is smaller than its 8-byte header", offset + 2)
    end = offset + size
    if end > len(data):
        raise SecurityDescriptorError(f"{what} of {size} bytes runs past the {len(data)}-byte descriptor", offset + 2)
    if count > (size - 8) // 8:
        raise SecurityDescriptorError(f"{what} claims {count} ACEs, more than its {size} bytes can hold", offset + 4)
    aces: list[Ace] = []
    pos = offset + 8
    for index in range(count):
        if pos + 4 > end:
            raise SecurityDescriptorError(f"{what} ACE {index} header runs past the ACL's end", pos)
        ace_size = struct.unpack_from("<H", data, pos + 2)[0]
        if ace_size < 8:
            raise SecurityDescriptorError(f"{what} ACE {index} size {ace_size} is below the minimum of 8", pos + 2)
        if pos + ace_size > end:
            raise SecurityDescriptorError(f"{what} ACE {index} of {ace_size} bytes runs past the ACL's end", pos + 2)
        aces.append(_parse_ace(data, pos, end))
        pos += ace_size
    return Acl(aces, revision, offset, size)


def parse_binary(data: bytes) -> SecurityDescriptor:
    """Parse a self-relative security descriptor; raises SecurityDescriptorError, never anything
    else, on any damage."""
    try:
        return _parse_binary(bytes(data))
    except SecurityDescriptorError:
        raise
    except (struct.error, IndexError, ValueError, OverflowError) as exc:  # defensive: should not happen
        raise SecurityDescriptorError(f"unreadable ({type(exc).__name__}: {exc})") from None


def _parse_binary(data: bytes) -> SecurityDescriptor:
    if len(data) < HEADER_SIZE:
        raise SecurityDescriptorError(f"{len(data)} bytes, shorter than the 20-byte header", 0)
    revision, sbz1, control, o_owner, o_group, o_sacl, o_dacl = struct.unpack_from("<BBHIIII", data, 0)
    if revision != 1:
        raise SecurityDescriptorError(f"revision {revision}, expected 1", 0)
    if not control & SE_SELF_RELATIVE:
        raise SecurityDescriptorError("not self-relative (SE_SELF_RELATIVE is clear: the offsets would be pointers)", 2)

    def sid_at(off: int, what: str, field_at: int) -> str | None:
        if off == 0:
            return None
        if off < HEADER_SIZE or off >= len(data):
            raise SecurityDescriptorError(f"{what} offset {off} is outside the {len(data)}-byte descriptor", field_at)
        return sid_from_bytes(data, off)[0]

    owner = sid_at(o_owner, "owner", 4)
    group = sid_at(o_group, "group", 8)
    dacl = sacl = None
    if control & SE_DACL_PRESENT and o_dacl:
        dacl = _parse_acl(data, o_dacl, "DACL", 16)
    if control & SE_SACL_PRESENT and o_sacl:
        sacl = _parse_acl(data, o_sacl, "SACL", 12)
    return SecurityDescriptor(
        control=control, owner=owner, group=group, dacl=dacl, sacl=sacl, revision=revision,
        rm_control=sbz1 if control & SE_RM_CONTROL_VALID else None,
    )


def _ace_to_bytes(ace: Ace) -> bytes:
    layout = ace.layout
    if layout in ("raw", "compound"):
        body = ace.raw if ace.raw is not None else struct.pack("<I", ace.mask)
    else:
        if ace.sid is None:
            raise SecurityDescriptorError(f"{ace.type_name} ACE has no SID")
        if ace.condition is not None and ace.application_data is None:
            raise SecurityDescriptorError(
                f"{ace.type_name} ACE condition {ace.condition!r} is SDDL text; rpctrace does not compile it to binary")
        body = struct.pack("<I", ace.mask & 0xFFFFFFFF)
        if layout in ("object", "object_callback"):
            flags = (ACE_OBJECT_TYPE_PRESENT if ace.object_type else 0) | (
                ACE_INHERITED_OBJECT_TYPE_PRESENT if ace.inherited_object_type else 0)
            body += struct.pack("<I", flags)
            if ace.object_type:
                body += uuid.UUID(ace.object_type).bytes_le
            if ace.inherited_object_type:
                body += uuid.UUID(ace.inherited_object_type).bytes_le
        body += sid_to_bytes(ace.sid)
        if ace.application_data:
            body += ace.application_data
    body += b"\0" * (-len(body) % 4)
    size = 4 + len(body)
    if size > 0xFFFF:
        raise SecurityDescriptorError(f"ACE of {size} bytes does not fit a 16-bit size")
    return struct.pack("<BBH", ace.type, ace.flags & 0xFF, size) + body


def _acl_to_bytes(acl: Acl) -> bytes:
    body = b"".join(_ace_to_bytes(a) for a in acl.aces)
    revision = 4 if any(a.is_object for a in acl.aces) else max(2, acl.revision if acl.revision in (2, 3, 4) else 2)
    size = 8 + len(body)
    if size > 0xFFFF or len(acl.aces) > 0xFFFF:
        raise SecurityDescriptorError(f"ACL of {size} bytes / {len(acl.aces)} ACEs does not fit its 16-bit fields")
    return struct.pack("<BBHHH", revision, 0, size, len(acl.aces), 0) + body


def to_binary(sd: SecurityDescriptor) -> bytes:
    """The self-relative form, laid out as MakeSelfRelativeSD does: header, SACL, DACL, owner,
    group."""
    control = sd.control | SE_SELF_RELATIVE
    control = (control | SE_DACL_PRESENT) if sd.dacl_present else (control & ~SE_DACL_PRESENT)
    control = (control | SE_SACL_PRESENT) if sd.sacl_present else (control & ~SE_SACL_PRESENT)
    out = bytearray(HEADER_SIZE)
    o_sacl = o_dacl = o_owner = o_group = 0
    if sd.sacl is not None:
        o_sacl = len(out)
        out += _acl_to_bytes(sd.sacl)
    if sd.dacl is not None:
        o_dacl = len(out)
        out += _acl_to_bytes(sd.dacl)
    if sd.owner:
        o_owner = len(out)
        out += sid_to_bytes(sd.owner)
    if sd.group:
        o_group = len(out)
        out += sid_to_bytes(sd.group)
    rm = sd.rm_control if (sd.rm_control is not None and control & SE_RM_CONTROL_VALID) else 0
    struct.pack_into("<BBHIIII", out, 0, 1, rm & 0xFF, control & 0xFFFF, o_owner, o_group, o_sacl, o_dacl)
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# SDDL

_RIGHT_COMPOSITES_KEY = (("KA", _access.KEY_ALL_ACCESS), ("KR", _access.KEY_READ), ("KW", _access.KEY_WRITE))
_RIGHT_COMPOSITES_FILE = (
    ("FA", _access.FILE_ALL_ACCESS), ("FR", _access.FILE_GENERIC_READ), ("FW", _access.FILE_GENERIC_WRITE),
    ("FX", _access.FILE_GENERIC_EXECUTE),
)
# Single-bit aliases in the order Windows writes them: generic rights first, then by ascending bit
# (Windows writes "CCDCLCSWRPWPDTLOCRSDRCWDWO" for 0xF01FF)
_RIGHT_BITS = (
    ("GA", _access.GENERIC_ALL), ("GR", _access.GENERIC_READ), ("GW", _access.GENERIC_WRITE),
    ("GX", _access.GENERIC_EXECUTE), ("CC", 0x1), ("DC", 0x2), ("LC", 0x4), ("SW", 0x8), ("RP", 0x10),
    ("WP", 0x20), ("DT", 0x40), ("LO", 0x80), ("CR", 0x100), ("SD", _access.DELETE), ("RC", _access.READ_CONTROL),
    ("WD", _access.WRITE_DAC), ("WO", _access.WRITE_OWNER),
)
_LABEL_BITS = (("NR", 0x2), ("NW", 0x1), ("NX", 0x4))
_RIGHT_PARSE = dict(_RIGHT_BITS) | dict(_RIGHT_COMPOSITES_FILE) | dict(_RIGHT_COMPOSITES_KEY) | {
    "KX": _access.KEY_EXECUTE}
_LABEL_PARSE = dict(_LABEL_BITS)


def _rights_to_sddl(mask: int, object_type: str = "key", label: bool = False) -> str:
    if mask == 0:
        return ""
    if label and mask & ~0x7 == 0:
        return "".join(name for name, bit in _LABEL_BITS if mask & bit)
    composites = _RIGHT_COMPOSITES_FILE + _RIGHT_COMPOSITES_KEY
    if object_type == "key":
        composites = _RIGHT_COMPOSITES_KEY + _RIGHT_COMPOSITES_FILE
    for name, value in composites:
        if mask == value:
            return name
    covered = 0
    names = []
    for name, bit in _RIGHT_BITS:
        if mask & bit:
            names.append(name)
            covered |= bit
    if covered == mask:
        return "".join(names)
    return f"0x{mask:x}"


def _sid_to_sddl(sid: str) -> str:
    return _sids.alias_of(sid) or sid


def _flags_to_sddl(flags: int, ace_type: int) -> str:
    out = []
    for name, bit in _SDDL_ACE_FLAGS:
        if flags & bit:
            out.append("TP" if bit == SUCCESSFUL_ACCESS_ACE_FLAG and ace_type == 0x15 else name)
    return "".join(out)


def _ace_to_sddl(ace: Ace, object_type: str) -> str:
    kind = ace.sddl_type
    if kind is None:
        raise SecurityDescriptorError(f"{ace.type_name} ACE has no SDDL form", ace.offset)
    if ace.sid is None:
        raise SecurityDescriptorError(f"{ace.type_name} ACE has no SID", ace.offset)
    fields = [
        kind,
        _flags_to_sddl(ace.flags, ace.type),
        _rights_to_sddl(ace.mask, object_type, label=ace.type == 0x11),
        ace.object_type or "" if ace.is_object else "",
        ace.inherited_object_type or "" if ace.is_object else "",
        _sid_to_sddl(ace.sid),
    ]
    if ace.condition is not None:
        fields.append(ace.condition)
    elif ace.application_data:
        raise SecurityDescriptorError(
            f"{ace.type_name} ACE carries {len(ace.application_data)} bytes of binary condition/attribute data; "
            "rpctrace does not render it as SDDL", ace.offset)
    return "(" + ";".join(fields) + ")"


def _acl_flags_to_sddl(sd: SecurityDescriptor, sacl: bool) -> str:
    protected, auto, req = ((SE_SACL_PROTECTED, SE_SACL_AUTO_INHERITED, SE_SACL_AUTO_INHERIT_REQ) if sacl
                            else (SE_DACL_PROTECTED, SE_DACL_AUTO_INHERITED, SE_DACL_AUTO_INHERIT_REQ))
    out = ""
    if sd.control & protected:
        out += "P"
    if sd.control & req:
        out += "AR"
    if sd.control & auto:
        out += "AI"
    return out


def to_sddl(sd: SecurityDescriptor, object_type: str = "key") -> str:
    """SDDL text as ConvertSecurityDescriptorToStringSecurityDescriptor writes it (all parts).

    ``object_type`` picks the composite aliases Windows would find first for ambiguous masks
    (KR before FR-style names for keys); the mask itself is always exact.  Raises
    SecurityDescriptorError for ACEs that have no SDDL form.
    """
    out = []
    if sd.owner:
        out.append("O:" + _sid_to_sddl(sd.owner))
    if sd.group:
        out.append("G:" + _sid_to_sddl(sd.group))
    if sd.dacl_present:
        flags = _acl_flags_to_sddl(sd, sacl=False)
        if sd.dacl is None:
            out.append("D:" + flags + "NO_ACCESS_CONTROL")
        else:
            out.append("D:" + flags + "".join(_ace_to_sddl(a, object_type) for a in sd.dacl.aces))
    if sd.sacl_present:
        flags = _acl_flags_to_sddl(sd, sacl=True)
        if sd.sacl is None:
            out.append("S:" + flags + "NO_ACCESS_CONTROL")
        else:
            out.append("S:" + flags + "".join(_ace_to_sddl(a, object_type) for a in sd.sacl.aces))
    return "".join(out)


def ace_to_sddl(ace: Ace, object_type: str = "key") -> str:
    """One ACE as an SDDL ACE string, e.g. ``(A;CI;KR;;;S-1-5-80-...)``."""
    return _ace_to_sddl(ace, object_type)


_SID_TEXT = re.compile(r"S-1-(?:0[xX][0-9A-Fa-f]+|\d+)(?:-\d+)*", re.IGNORECASE)
_GUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")


class _SddlParser:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def error(self, message: str, pos: int | None = None) -> SecurityDescriptorError:
        return SecurityDescriptorError(f"SDDL: {message}", self.pos if pos is None else pos, unit="character")

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def sid(self, text: str, at: int) -> str:
        text = text.strip()
        if text[:2].upper() == "S-":
            m = _SID_TEXT.fullmatch(text)
            if not m or not _sids.is_sid(text):
                raise self.error(f"bad SID {text!r}", at)
            return _sids.normalize_sid(text)
        alias = text.upper()
        if alias in _sids.SDDL_ALIASES:
            return _sids.SDDL_ALIASES[alias]
        if alias in _sids.DOMAIN_RELATIVE_ALIASES:
            raise self.error(f"SID alias {alias} ({_sids.DOMAIN_RELATIVE_ALIASES[alias]}) needs the domain's SID", at)
        raise self.error(f"unknown SID alias {text!r}", at)

    def owner_sid(self) -> str:
        start = self.pos
        if self.text[self.pos:self.pos + 2].upper() == "S-":
            m = _SID_TEXT.match(self.text, self.pos)
            if not m:
                raise self.error("bad SID", start)
            self.pos = m.end()
            return self.sid(m.group(0), start)
        token = self.text[self.pos:self.pos + 2]
        if len(token) < 2:
            raise self.error("a SID or a two-letter alias is missing", start)
        self.pos += 2
        return self.sid(token, start)

    def acl(self, sacl: bool) -> tuple[int, Acl | None]:
        protected, auto, req = ((SE_SACL_PROTECTED, SE_SACL_AUTO_INHERITED, SE_SACL_AUTO_INHERIT_REQ) if sacl
                                else (SE_DACL_PROTECTED, SE_DACL_AUTO_INHERITED, SE_DACL_AUTO_INHERIT_REQ))
        control = 0
        null = False
        while self.pos < len(self.text) and self.text[self.pos] != "(":
            rest = self.text[self.pos:]
            if rest.startswith("NO_ACCESS_CONTROL"):
                null = True
                self.pos += len("NO_ACCESS_CONTROL")
            elif rest.startswith("P"):
                control |= protected
                self.pos += 1
            elif rest.startswith("AI"):
                control |= auto
                self.pos += 2
            elif rest.startswith("AR"):
                control |= req
                self.pos += 2
            elif rest[0] in " \t\r\n":
                self.pos += 1
            else:
                break
        aces: list[Ace] = []
        while True:
            self.skip_ws()
            if self.pos < len(self.text) and self.text[self.pos] == "(":
                aces.append(self.ace())
                if len(aces) > 0xFFFF:
                    raise self.error("more than 65535 ACEs")
            else:
                break
        if null and aces:
            raise self.error("NO_ACCESS_CONTROL (a NULL ACL) cannot have ACEs")
        return control, (None if null else Acl(aces, 4 if any(a.is_object for a in aces) else 2))

    def ace(self) -> Ace:
        start = self.pos
        self.pos += 1  # "("
        fields: list[tuple[str, int]] = []
        for _ in range(6):
            field_start = self.pos
            while self.pos < len(self.text) and self.text[self.pos] not in ";)":
                if self.text[self.pos] == "(":
                    raise self.error("'(' inside an ACE field")
                self.pos += 1
            if self.pos >= len(self.text):
                raise self.error("ACE string is not closed by ')'", start)
            fields.append((self.text[field_start:self.pos], field_start))
            if self.text[self.pos] == ")":
                break
            if len(fields) < 6:
                self.pos += 1
        if len(fields) != 6:
            raise self.error(f"ACE string has {len(fields)} fields, expected 6 (type;flags;rights;guid;guid;sid)", start)
        condition = None
        if self.text[self.pos] == ";":
            self.pos += 1
            cond_start = self.pos
            depth = 0
            quoted = False
            while self.pos < len(self.text):
                ch = self.text[self.pos]
                if quoted:
                    if ch == '"':
                        quoted = False
                elif ch == '"':
                    quoted = True
                elif ch == "(":
                    depth += 1
                elif ch == ")":
                    if depth == 0:
                        break
                    depth -= 1
                self.pos += 1
            if self.pos >= len(self.text):
                raise self.error("ACE condition is not closed", cond_start)
            condition = self.text[cond_start:self.pos]
        if self.pos >= len(self.text) or self.text[self.pos] != ")":
            raise self.error("expected ')' at the end of the ACE")
        self.pos += 1
        (t, t_at), (f, f_at), (r, r_at), (g1, g1_at), (g2, g2_at), (s, s_at) = fields
        t = t.strip()
        if t not in _SDDL_TYPES:
            raise self.error(f"unknown ACE type {t!r}", t_at)
        ace_type = _SDDL_TYPES[t]
        flags = 0
        f = f.strip()
        if len(f) % 2:
            raise self.error(f"bad ACE flags {f!r}", f_at)
        for i in range(0, len(f), 2):
            token = f[i:i + 2]
            if token not in _SDDL_ACE_FLAG_PARSE:
                raise self.error(f"unknown ACE flag {token!r}", f_at + i)
            flags |= _SDDL_ACE_FLAG_PARSE[token]
        mask = self.rights(r.strip(), r_at, label=ace_type == 0x11)
        layout = ACE_TYPES[ace_type][2]
        guids = []
        for g, at in ((g1, g1_at), (g2, g2_at)):
            g = g.strip()
            if g and layout not in ("object", "object_callback"):
                raise self.error(f"{t} ACEs take no object GUID", at)
            if g and not _GUID.match(g):
                raise self.error(f"bad GUID {g!r}", at)
            guids.append(g.lower() or None)
        if not s.strip():
            raise self.error("ACE has no SID", s_at)
        sid = self.sid(s, s_at)
        if condition is not None and layout not in ("callback", "object_callback"):
            raise self.error(f"{t} ACEs take no condition", start)
        object_flags = (ACE_OBJECT_TYPE_PRESENT if guids[0] else 0) | (ACE_INHERITED_OBJECT_TYPE_PRESENT if guids[1] else 0)
        return Ace(ace_type, flags, mask, sid, object_flags, guids[0], guids[1], condition=condition, offset=start)

    def rights(self, text: str, at: int, label: bool) -> int:
        if not text:
            return 0
        if text[:2].lower() == "0x":
            try:
                value = int(text, 16)
            except ValueError:
                raise self.error(f"bad hex rights {text!r}", at) from None
        elif text.isascii() and text.isdigit():  # str.isdigit() also takes "²", which int() refuses
            value = int(text, 10)
        else:
            if len(text) % 2:
                raise self.error(f"bad rights {text!r}", at)
            value = 0
            for i in range(0, len(text), 2):
                token = text[i:i + 2]
                if label and token in _LABEL_PARSE:
                    value |= _LABEL_PARSE[token]
                elif token in _RIGHT_PARSE:
                    value |= _RIGHT_PARSE[token]
                else:
                    raise self.error(f"unknown right {token!r}", at + i)
        if value > 0xFFFFFFFF:
            raise self.error(f"rights {text!r} exceed 32 bits", at)
        return value

    def parse(self) -> SecurityDescriptor:
        sd = SecurityDescriptor(control=SE_SELF_RELATIVE)
        seen: set[str] = set()
        self.skip_ws()
        if self.pos >= len(self.text):
            raise self.error("empty SDDL string", 0)
        while True:
            self.skip_ws()
            if self.pos >= len(self.text):
                break
            tag = self.text[self.pos:self.pos + 2].upper()
            if tag not in ("O:", "G:", "D:", "S:"):
                raise self.error(f"expected O:, G:, D: or S:, found {self.text[self.pos:self.pos + 10]!r}")
            if tag in seen:
                raise self.error(f"{tag} appears twice")
            seen.add(tag)
            self.pos += 2
            self.skip_ws()
            if tag == "O:":
                sd.owner = self.owner_sid()
            elif tag == "G:":
                sd.group = self.owner_sid()
            elif tag == "D:":
                control, acl = self.acl(sacl=False)
                sd.control |= control | SE_DACL_PRESENT
                sd.dacl = acl
            else:
                control, acl = self.acl(sacl=True)
                sd.control |= control | SE_SACL_PRESENT
                sd.sacl = acl
        return sd


def parse_sddl(text: str) -> SecurityDescriptor:
    """Parse SDDL text; raises SecurityDescriptorError (offset = character index) on errors."""
    if not isinstance(text, str):
        raise SecurityDescriptorError("SDDL must be text")
    if len(text) > MAX_SDDL_LENGTH:
        raise SecurityDescriptorError(f"SDDL of {len(text)} characters is longer than {MAX_SDDL_LENGTH}")
    return _SddlParser(text).parse()


# ---------------------------------------------------------------------------------------------
# helpers for the access check and the fixes


def with_aces(sd: SecurityDescriptor, aces: list[Ace], control: int | None = None) -> SecurityDescriptor:
    """A copy of ``sd`` with a new DACL (and control flags when given)."""
    return replace(sd, dacl=Acl(list(aces), 4 if any(a.is_object for a in aces) else 2),
                   control=(sd.control if control is None else control) | SE_DACL_PRESENT)
