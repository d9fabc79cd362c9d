"""Security descriptors (``rpctrace.security``): the self-relative binary form (as stored in registry hives and ETW
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


from rpctrace.security.binary import (
    parse_binary,
    sid_from_bytes,
    sid_to_bytes,
    to_binary,
)
from rpctrace.security.model import (
    ACE_TYPES,
    SE_DACL_AUTO_INHERITED,
    SE_DACL_PRESENT,
    SE_DACL_PROTECTED,
    SE_SELF_RELATIVE,
    Ace,
    Acl,
    SecurityDescriptor,
    SecurityDescriptorError,
    with_aces,
)
from rpctrace.security.sddl import ace_to_sddl, parse_sddl, to_sddl

__all__ = [
    "ace_to_sddl",
    "with_aces",
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
