"""The self-relative binary form of security descriptors (as stored in registry hives and ETW
payloads), both ways, and binary SIDs.  Every offset, length and count read from the bytes is
checked against the buffer before use; damage raises SecurityDescriptorError with the byte
offset."""

from __future__ import annotations

import struct
import uuid

from rpctrace.knowledge import sids as _sids
from rpctrace.security.model import (
    ACE_INHERITED_OBJECT_TYPE_PRESENT,
    ACE_OBJECT_TYPE_PRESENT,
    ACE_TYPES,
    HEADER_SIZE,
    MAX_SUB_AUTHORITIES,
    SE_DACL_PRESENT,
    SE_RM_CONTROL_VALID,
    SE_SACL_PRESENT,
    SE_SELF_RELATIVE,
    Ace,
    Acl,
    SecurityDescriptor,
    SecurityDescriptorError,
)

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


