"""Security descriptors as data: the control flags, ACE types and flags, and the Ace, Acl and
SecurityDescriptor records that the binary (:mod:`.binary`) and SDDL (:mod:`.sddl`) codecs read
and write.  Layouts and sources: the package docstring."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterator

from rpctrace.errors import RpctraceError
from rpctrace.knowledge import access as _access
from rpctrace.knowledge import sids as _sids

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

    def to_dict(self, object_type: str = "key") -> dict[str, Any]:
        out: dict[str, Any] = {
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

    def __iter__(self) -> Iterator[Ace]:
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

    def to_dict(self, object_type: str = "key") -> dict[str, Any]:
        def acl(a: Acl | None, present: bool) -> list[dict[str, Any]] | str | None:
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
# helpers for the access check and the fixes


def with_aces(sd: SecurityDescriptor, aces: list[Ace], control: int | None = None) -> SecurityDescriptor:
    """A copy of ``sd`` with a new DACL (and control flags when given)."""
    return replace(sd, dacl=Acl(list(aces), 4 if any(a.is_object for a in aces) else 2),
                   control=(sd.control if control is None else control) | SE_DACL_PRESENT)

