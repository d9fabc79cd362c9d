"""SDDL (MS-DTYP 2.5.1), both ways.  Rights are written as Windows writes them: one composite
alias when the mask equals one (KA KR KW FA FR...), else the single-bit aliases when they cover
every bit, else hex.  Conditional expressions and resource attributes are kept as SDDL text (from
SDDL) or as bytes (from binary) and are not translated between the two forms."""

from __future__ import annotations

import re

from rpctrace.knowledge import access as _access
from rpctrace.knowledge import sids as _sids
from rpctrace.security.model import (
    _SDDL_ACE_FLAG_PARSE,
    _SDDL_ACE_FLAGS,
    _SDDL_TYPES,
    ACE_INHERITED_OBJECT_TYPE_PRESENT,
    ACE_OBJECT_TYPE_PRESENT,
    ACE_TYPES,
    MAX_SDDL_LENGTH,
    SE_DACL_AUTO_INHERIT_REQ,
    SE_DACL_AUTO_INHERITED,
    SE_DACL_PRESENT,
    SE_DACL_PROTECTED,
    SE_SACL_AUTO_INHERIT_REQ,
    SE_SACL_AUTO_INHERITED,
    SE_SACL_PRESENT,
    SE_SACL_PROTECTED,
    SE_SELF_RELATIVE,
    SUCCESSFUL_ACCESS_ACE_FLAG,
    Ace,
    Acl,
    SecurityDescriptor,
    SecurityDescriptorError,
)

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


