"""The Windows DACL walk, offline: would these principals get this access, which ACE decides, and
what change would grant it.

:func:`evaluate` follows SeAccessCheck's documented order ("How DACLs Control Access to an
Object", learn.microsoft.com/windows/win32/secauthz):

* a NULL DACL (or none) grants everything; an empty DACL grants nothing;
* the owner gets READ_CONTROL | WRITE_DAC before the walk, unless the DACL has an OWNER RIGHTS
  (S-1-3-4) ACE, which then applies to the owner instead;
* ACEs are walked in order; INHERIT_ONLY ACEs are skipped; an ACE applies when its SID is one of
  the principals; an access-denied ACE that covers a requested right not yet granted denies the
  request at once; access-allowed ACEs add their rights; the walk stops when every requested
  right is granted; whatever is left at the end is denied;
* with MAXIMUM_ALLOWED every ACE is walked: a deny takes away the rights not granted before it,
  an allow adds the rights not denied before it; the request succeeds when something is granted
  and every other requested right is.

Generic rights in ACEs and in the request are mapped with the object type's generic mapping
(Windows maps ACEs when a descriptor is assigned, so stored effective ACEs rarely hold generic
rights; mapping here gives the same answer for descriptors typed as SDDL).  For keys the
KEY_WOW64_64KEY / KEY_WOW64_32KEY bits select a registry view and are not checked against the
DACL.

Approximations (each named in the verdict's notes when it matters): privileges are not modelled
(ACCESS_SYSTEM_SECURITY is reported missing; SeBackup/SeRestore/SeTakeOwnership are ignored);
conditional (callback) ACEs are not evaluated: allow-callback ACEs are not counted and
deny-callback ACEs are, as Windows does for a condition it cannot evaluate; object ACEs with an
object type GUID are skipped (no object type list); mandatory integrity labels and the second
check of write-restricted tokens are not modelled.

:func:`suggest_fix` proposes the smallest change that grants the request: re-enable inheritance
when the DACL is protected and the parent's inheritable ACEs would grant it (the AudioSrv fix),
else remove the explicit deny ACE that blocks it, else add one allow ACE for the service SID
(or the first principal); each fix carries the SDDL after the change and a PowerShell snippet.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from rpctrace.explain.security import (
    CONTAINER_INHERIT_ACE,
    INHERIT_ONLY_ACE,
    INHERITED_ACE,
    NO_PROPAGATE_INHERIT_ACE,
    OBJECT_INHERIT_ACE,
    SE_DACL_AUTO_INHERITED,
    SE_DACL_PROTECTED,
    Ace,
    SecurityDescriptor,
    SecurityDescriptorError,
    ace_to_sddl,
    to_sddl,
    with_aces,
)
from rpctrace.knowledge import access, sids
from rpctrace.knowledge.registry import user_path

__all__ = [
    "AccessVerdict",
    "AceReport",
    "Fix",
    "enable_inheritance",
    "evaluate",
    "inherited_aces",
    "powershell_path",
    "ps_quote",
    "resolve_principals",
    "suggest_fix",
]

OWNER_RIGHTS = "S-1-3-4"
CREATOR_OWNER = "S-1-3-0"
CREATOR_GROUP = "S-1-3-1"
_GENERIC_BITS = access.GENERIC_ALL | access.GENERIC_EXECUTE | access.GENERIC_WRITE | access.GENERIC_READ
_OBJECT_ACE_TYPES = frozenset({0x05, 0x06, 0x0B, 0x0C})


@dataclass
class AceReport:
    """An ACE that applied to the principals, and what it did to the request."""

    index: int
    type: str  # "allow" | "deny"
    type_name: str  # ACCESS_ALLOWED, ACCESS_DENIED_CALLBACK, ...
    sid: str
    name: str | None
    mask: int
    mask_names: list[str]
    inherited: bool
    flags: list[str]
    granted: int = 0  # requested rights this ACE granted
    denied: int = 0  # requested rights this ACE denied
    effect: str = ""
    sddl: str | None = None

    @property
    def who(self) -> str:
        return f"{self.name} ({self.sid})" if self.name else self.sid

    def describe(self, object_type: str = "key") -> str:
        origin = "inherited" if self.inherited else "explicit"
        return f"#{self.index} {self.type} {self.name or self.sid} {access.format(self.mask, object_type)} ({origin})"

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "type": self.type,
            "type_name": self.type_name,
            "sid": self.sid,
            "name": self.name,
            "mask": self.mask,
            "mask_names": self.mask_names,
            "inherited": self.inherited,
            "explicit": not self.inherited,
            "flags": self.flags,
            "granted": self.granted,
            "denied": self.denied,
            "effect": self.effect,
            "sddl": self.sddl,
        }


@dataclass
class AccessVerdict:
    allowed: bool
    desired: int  # as asked (may hold KEY_WOW64_*, GENERIC_*, MAXIMUM_ALLOWED)
    requested: int  # what the DACL is checked for (view bits dropped, generic mapped)
    granted: int
    missing: int
    object_type: str
    principals: list[str]
    aces: list[AceReport]  # ACEs that applied, in walk order
    denied_by: AceReport | None
    dacl_state: str  # "present" | "empty" | "null" | "absent"
    dacl_protected: bool
    owner_granted: int = 0
    maximum_allowed: bool = False
    notes: list[str] = field(default_factory=list)
    verdict: str = ""
    short: str = ""

    @property
    def missing_names(self) -> list[str]:
        return access.decode(self.missing, self.object_type) if self.missing else []

    @property
    def deciding(self) -> list[AceReport]:
        """The ACEs that decided: the blocking deny, else those that granted something, else
        every ACE that applied (they were not enough)."""
        if self.denied_by is not None:
            return [self.denied_by]
        granting = [a for a in self.aces if a.granted]
        return granting if granting else list(self.aces)

    def to_dict(self) -> dict:
        fmt = lambda m: access.format(m, self.object_type)
        return {
            "allowed": self.allowed,
            "verdict": self.verdict,
            "short": self.short,
            "desired": self.desired,
            "desired_names": access.decode(self.desired, self.object_type),
            "requested": self.requested,
            "requested_text": fmt(self.requested),
            "granted": self.granted,
            "granted_text": fmt(self.granted),
            "missing": self.missing,
            "missing_names": self.missing_names,
            "object_type": self.object_type,
            "principals": [{"sid": s, "name": sids.name_of(s)} for s in self.principals],
            "dacl_state": self.dacl_state,
            "dacl_protected": self.dacl_protected,
            "owner_granted": self.owner_granted,
            "maximum_allowed": self.maximum_allowed,
            "aces": [a.to_dict() for a in self.aces],
            "deciding": [a.index for a in self.deciding],
            "denied_by": self.denied_by.index if self.denied_by else None,
            "notes": list(self.notes),
        }


def resolve_principals(principals: list[str]) -> list[str]:
    """SIDs for what was given (SIDs, aliases or names, see sids.resolve), in order, no repeats."""
    out: list[str] = []
    for p in principals:
        sid = sids.resolve(p)[0]
        if sid not in out:
            out.append(sid)
    return out


def _ace_sddl(ace: Ace, object_type: str) -> str | None:
    try:
        return ace_to_sddl(ace, object_type)
    except SecurityDescriptorError:
        return None


def _report(index: int, ace: Ace, object_type: str) -> AceReport:
    kind = "allow" if ace.is_allow else ("deny" if ace.is_deny else ace.type_name.lower())
    return AceReport(
        index=index, type=kind, type_name=ace.type_name, sid=ace.sid or "", name=sids.name_of(ace.sid),
        mask=ace.mask, mask_names=access.decode(ace.mask, object_type), inherited=ace.inherited,
        flags=ace.flag_names(), sddl=_ace_sddl(ace, object_type),
    )


def evaluate(sd: SecurityDescriptor, principals: list[str], desired: int, object_type: str = "key",
             owner_rights: bool = True) -> AccessVerdict:
    """Would a token holding ``principals`` (SIDs or names) get ``desired`` on an object with
    ``sd``?  ``owner_rights`` grants the owner its implicit READ_CONTROL | WRITE_DAC."""
    pset = resolve_principals(principals)
    members = set(pset)
    notes: list[str] = []
    fmt = lambda m: access.format(m, object_type)
    desired &= 0xFFFFFFFF
    requested = desired
    if object_type == "key" and requested & access.KEY_WOW64_MASK:
        view = requested & access.KEY_WOW64_MASK
        notes.append(f"{fmt(view)} selects the registry view; it is not an access right and is not checked")
        requested &= ~access.KEY_WOW64_MASK
    maximum = bool(requested & access.MAXIMUM_ALLOWED)
    requested &= ~access.MAXIMUM_ALLOWED
    requested = access.map_generic(requested, object_type)
    needs_privilege = requested & access.ACCESS_SYSTEM_SECURITY
    if needs_privilege:
        notes.append("ACCESS_SYSTEM_SECURITY needs SeSecurityPrivilege (privileges are not modelled); a DACL cannot grant it")
    dacl_rights = requested & ~access.ACCESS_SYSTEM_SECURITY
    everything = access.GENERIC_MAPPING.get(object_type, access.GENERIC_MAPPING["generic"])[3] | access.STANDARD_RIGHTS_ALL

    def finish(granted: int, aces: list[AceReport], denied_by: AceReport | None, state: str,
               owner_granted: int = 0) -> AccessVerdict:
        missing = requested & ~granted
        allowed = missing == 0 and (granted != 0 if maximum else True)
        v = AccessVerdict(
            allowed=allowed, desired=desired, requested=requested, granted=granted, missing=missing,
            object_type=object_type, principals=pset, aces=aces, denied_by=denied_by, dacl_state=state,
            dacl_protected=sd.dacl_protected, owner_granted=owner_granted, maximum_allowed=maximum, notes=notes,
        )
        v.verdict, v.short = _verdict_text(v)
        return v

    if sd.dacl is None:
        state = "null" if sd.dacl_present else "absent"
        notes.append("a NULL DACL grants every access to everyone" if state == "null"
                     else "the descriptor has no DACL, which grants every access to everyone")
        return finish(dacl_rights | (everything if maximum else 0), [], None, state)

    aces = sd.dacl.aces
    state = "present" if aces else "empty"
    owner_rights_ace = any(a.sid == OWNER_RIGHTS and not a.inherit_only for a in aces)
    is_owner = sd.owner is not None and sd.owner in members
    granted = 0
    owner_granted = 0
    if owner_rights and is_owner and not owner_rights_ace:
        owner_granted = access.READ_CONTROL | access.WRITE_DAC
        granted = owner_granted & (dacl_rights if not maximum else owner_granted)
        notes.append(f"{sids.name_of(sd.owner) or sd.owner} owns the object: READ_CONTROL | WRITE_DAC are implied")
    denied = 0
    reports: list[AceReport] = []
    denied_by: AceReport | None = None
    skipped_io = 0
    for index, ace in enumerate(aces):
        if not maximum and dacl_rights & ~granted == 0:
            break
        if ace.inherit_only:
            skipped_io += 1
            continue
        if ace.sid is None:
            continue
        applies = ace.sid in members or (ace.sid == OWNER_RIGHTS and is_owner)
        if not applies:
            continue
        if not (ace.is_allow or ace.is_deny):
            continue
        rep = _report(index, ace, object_type)
        reports.append(rep)
        if ace.type in _OBJECT_ACE_TYPES and ace.object_type:
            rep.effect = "object ACE for one object type: not applied without an object type list"
            notes.append(f"ACE #{index} is an object ACE for {ace.object_type}; skipped")
            continue
        if ace.is_callback and ace.is_allow:
            rep.effect = "conditional allow: condition not evaluated, not counted"
            notes.append(f"ACE #{index} is a conditional allow ACE; its condition is not evaluated and it is not counted")
            continue
        mask = access.map_generic(ace.mask, object_type)
        if ace.is_deny:
            if maximum:
                hit = mask & ~granted & ~denied
                denied |= hit
                rep.denied = hit
                if hit & requested and denied_by is None:
                    denied_by = rep
                rep.effect = f"denies {fmt(hit)}" if hit else "denies nothing not already granted"
                continue
            hit = mask & dacl_rights & ~granted
            if hit:
                rep.denied = hit
                rep.effect = f"denies {fmt(hit)}"
                denied_by = rep
                break
            rep.effect = "denies nothing the request still needs"
            continue
        # allow
        if maximum:
            new = mask & ~denied & ~granted
            granted |= new
            rep.granted = new
            rep.effect = f"grants {fmt(new)}" if new else "grants nothing new"
            continue
        new = mask & dacl_rights & ~granted
        granted |= new
        rep.granted = new
        rep.effect = f"grants {fmt(new)}" if new else "grants nothing the request still needs"
        if dacl_rights & ~granted == 0:
            break
    if skipped_io:
        notes.append(f"{skipped_io} inherit-only ACE(s) skipped (they apply to child objects only)")
    return finish(granted, reports, denied_by, state, owner_granted)


def _verdict_text(v: AccessVerdict) -> tuple[str, str]:
    fmt = lambda m: access.format(m, v.object_type)
    protected = " The DACL is protected (inheritance is off)." if v.dacl_protected else ""
    if v.dacl_state in ("null", "absent"):
        what = "a NULL DACL" if v.dacl_state == "null" else "no DACL"
        return f"GRANTED: {what} grants every access.", f"is granted everything ({what})"
    if v.allowed:
        if v.maximum_allowed and not v.requested:
            text = f"GRANTED (maximum allowed): {fmt(v.granted)}."
            short = f"gets at most {fmt(v.granted)}"
        else:
            by = ", ".join(a.describe(v.object_type) for a in v.deciding)
            text = f"GRANTED: {fmt(v.requested)}" + (f" by {by}." if by else ".")
            short = f"is granted {fmt(v.requested)}"
        return text + protected, short
    if v.denied_by is not None:
        d = v.denied_by
        text = (f"DENIED by ACE {d.describe(v.object_type)}, which denies {fmt(d.denied)}"
                f" before any ACE grants it.")
        short = f"is denied {fmt(d.denied & v.requested or d.denied)} by an explicit deny ACE" if not d.inherited else \
            f"is denied {fmt(d.denied & v.requested or d.denied)} by an inherited deny ACE"
        return text + protected, short
    if v.dacl_state == "empty":
        return ("DENIED: the DACL is empty, so no one is granted anything." + protected,
                "is granted nothing (the DACL is empty)")
    need = fmt(v.requested) if v.requested else "anything"
    if v.maximum_allowed and not v.requested:
        return "DENIED: no ACE grants these principals anything." + protected, "is granted nothing"
    applied = [a for a in v.aces if a.type in ("allow", "deny")]
    if applied:
        got = fmt(v.granted) if v.granted else "nothing it needs"
        listing = "; ".join(a.describe(v.object_type) for a in applied)
        text = (f"DENIED: {fmt(v.missing)} not granted. The ACEs that apply to these principals grant only "
                f"{_union_text(applied, v.object_type)} ({listing}), so of {need} they get {got}.")
    else:
        text = f"DENIED: no ACE applies to these principals, so {fmt(v.missing)} is not granted."
    granted_part = _union_text(applied, v.object_type) if applied else "nothing"
    short = f"is granted only {granted_part}, not {fmt(v.missing)},"
    return text + protected, short


def _union_text(reports: list[AceReport], object_type: str) -> str:
    mask = 0
    for r in reports:
        if r.type == "allow" and not r.effect.startswith(("conditional", "object ACE")):
            mask |= access.map_generic(r.mask, object_type)
    return access.format(mask, object_type) if mask else "nothing"


# ---------------------------------------------------------------------------------------------
# inheritance


def inherited_aces(parent: SecurityDescriptor, owner: str | None = None, group: str | None = None,
                   object_type: str = "key", container: bool = True) -> list[Ace]:
    """The ACEs a child (a container such as a subkey, or a leaf) inherits from ``parent``'s DACL,
    following the ACE inheritance rules: CONTAINER_INHERIT ACEs reach containers (still
    inheritable unless NO_PROPAGATE), OBJECT_INHERIT ACEs reach leaves and pass through containers
    as inherit-only; an ACE for CREATOR OWNER/GROUP or with generic rights splits into an
    effective copy (the child's owner/group, rights mapped) and an inherit-only copy."""
    if parent.dacl is None:
        return []
    out: list[Ace] = []
    for ace in parent.dacl.aces:
        if not (ace.is_allow or ace.is_deny or ace.sid):
            continue
        audit_bits = ace.flags & 0xE0
        inherit_bits = ace.flags & (OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE)
        applies = ace.container_inherit if container else ace.object_inherit
        propagate = not ace.no_propagate
        if applies:
            creator = ace.sid in (CREATOR_OWNER, CREATOR_GROUP)
            generic = bool(ace.mask & _GENERIC_BITS)
            keep_inheriting = propagate and container
            if creator or generic:
                sid = (owner if ace.sid == CREATOR_OWNER else group) if creator else ace.sid
                if sid:
                    out.append(replace(ace, flags=INHERITED_ACE | audit_bits, sid=sid,
                                       mask=access.map_generic(ace.mask, object_type), offset=None, size=None))
                if keep_inheriting:
                    out.append(replace(ace, flags=inherit_bits | INHERIT_ONLY_ACE | INHERITED_ACE | audit_bits,
                                       offset=None, size=None))
            else:
                flags = (inherit_bits if keep_inheriting else 0) | INHERITED_ACE | audit_bits
                out.append(replace(ace, flags=flags, offset=None, size=None))
        elif container and ace.object_inherit and propagate:
            out.append(replace(ace, flags=inherit_bits | INHERIT_ONLY_ACE | INHERITED_ACE | audit_bits,
                               offset=None, size=None))
    return out


def enable_inheritance(sd: SecurityDescriptor, parent: SecurityDescriptor, object_type: str = "key") -> SecurityDescriptor:
    """``sd`` after SetAccessRuleProtection($false, ...): the explicit ACEs stay, first; the ACEs
    inherited from ``parent`` follow; SE_DACL_PROTECTED is cleared, SE_DACL_AUTO_INHERITED set."""
    explicit = [a for a in (sd.dacl.aces if sd.dacl is not None else []) if not a.inherited]
    inherited = inherited_aces(parent, sd.owner, sd.group, object_type, container=True)
    control = (sd.control & ~SE_DACL_PROTECTED) | SE_DACL_AUTO_INHERITED
    return with_aces(sd, explicit + inherited, control)


# ---------------------------------------------------------------------------------------------
# fixes


@dataclass
class Fix:
    kind: str  # "enable-inheritance" | "remove-deny" | "add-ace"
    text: str
    short: str
    sddl_before: str | None
    sddl_after: str | None
    sd_after: SecurityDescriptor
    powershell: str
    effective: AccessVerdict
    ace: Ace | None = None
    removed: list[Ace] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "text": self.text,
            "short": self.short,
            "sddl_before": self.sddl_before,
            "sddl_after": self.sddl_after,
            "powershell": self.powershell,
            "ace": _ace_sddl(self.ace, self.effective.object_type) if self.ace else None,
            "removed": [_ace_sddl(a, self.effective.object_type) for a in self.removed],
            "after": self.effective.to_dict(),
        }


def _safe_sddl(sd: SecurityDescriptor, object_type: str) -> str | None:
    try:
        return to_sddl(sd, object_type)
    except SecurityDescriptorError:
        return None


def ps_quote(text: str) -> str:
    """A PowerShell string literal for ``text``: single-quoted (no expansion), every kind of
    single quote doubled (PowerShell treats U+2018/2019/201A/201B as quotes too); control
    characters are joined in as ``[char]0x..`` so the snippet stays one line."""
    quotes = "'\u2018\u2019\u201a\u201b"
    pieces: list[str] = []
    current = ""
    for ch in text:
        if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or ch in "\u2028\u2029":
            if current:
                pieces.append("'" + current + "'")
                current = ""
            pieces.append(f"[char]0x{ord(ch):04x}")
        else:
            current += ch + ch if ch in quotes else ch
    if current or not pieces:
        pieces.append("'" + current + "'")
    return pieces[0] if len(pieces) == 1 else "(" + " + ".join(pieces) + ")"


_PS_ROOTS = (
    ("HKEY_LOCAL_MACHINE", "HKLM:"), ("HKLM", "HKLM:"),
    ("HKEY_CURRENT_USER", "HKCU:"), ("HKCU", "HKCU:"),
    ("HKEY_USERS", "Registry::HKEY_USERS"), ("HKU", "Registry::HKEY_USERS"),
    ("HKEY_CLASSES_ROOT", "Registry::HKEY_CLASSES_ROOT"), ("HKCR", "Registry::HKEY_CLASSES_ROOT"),
    ("HKEY_CURRENT_CONFIG", "Registry::HKEY_CURRENT_CONFIG"), ("HKCC", "Registry::HKEY_CURRENT_CONFIG"),
)


def powershell_path(key_path: str) -> str:
    """``HKLM\\SOFTWARE\\X`` -> ``HKLM:\\SOFTWARE\\X`` (also HKEY_LOCAL_MACHINE\\..., \\REGISTRY\\MACHINE\\...,
    HKCU; HKU/HKCR go through the ``Registry::`` provider path, which needs no drive)."""
    path = user_path(key_path.strip())
    if path.upper().startswith("COMPUTER\\"):
        path = path[9:]
    head, _, rest = path.partition("\\")
    head = head.removesuffix(":")
    for name, ps in _PS_ROOTS:
        if head.upper() == name:
            return ps + "\\" + rest
    if path.startswith("Registry::"):
        return path
    return path


def _ps_header(key_path: str | None) -> list[str]:
    if key_path:
        return [f"$path = {ps_quote(powershell_path(key_path))}"]
    return ["$path = 'HKLM:\\<key path>'   # the key this descriptor belongs to"]


_DOTNET_KEY_RIGHTS = {access.KEY_ALL_ACCESS: "FullControl", access.KEY_READ: "ReadKey", access.KEY_WRITE: "WriteKey"}


def _ps_rule(ace: Ace, allow: bool, object_type: str) -> list[str]:
    inheritance = [n for bit, n in ((CONTAINER_INHERIT_ACE, "ContainerInherit"), (OBJECT_INHERIT_ACE, "ObjectInherit"))
                   if ace.flags & bit] or ["None"]
    propagation = [n for bit, n in ((NO_PROPAGATE_INHERIT_ACE, "NoPropagateInherit"), (INHERIT_ONLY_ACE, "InheritOnly"))
                   if ace.flags & bit] or ["None"]
    cls, rights_type = (("RegistryAccessRule", "RegistryRights") if object_type == "key"
                        else ("FileSystemAccessRule", "FileSystemRights"))
    mask = ace.mask
    rights = (f"'{_DOTNET_KEY_RIGHTS[mask]}'" if object_type == "key" and mask in _DOTNET_KEY_RIGHTS else str(mask))
    return [
        f"$sid = New-Object System.Security.Principal.SecurityIdentifier({ps_quote(ace.sid or '')})",
        (f"$rule = New-Object System.Security.AccessControl.{cls}($sid, "
         f"[System.Security.AccessControl.{rights_type}]{rights}, "
         f"[System.Security.AccessControl.InheritanceFlags]'{', '.join(inheritance)}', "
         f"[System.Security.AccessControl.PropagationFlags]'{', '.join(propagation)}', "
         f"[System.Security.AccessControl.AccessControlType]'{'Allow' if allow else 'Deny'}')"
         f"   # {access.format(mask, object_type)}"),
    ]


def _grantee(principals: list[str]) -> str:
    for sid in principals:
        if sid.startswith("S-1-5-80-") and sid != "S-1-5-80-0":
            return sid
    return principals[0]


def suggest_fix(sd: SecurityDescriptor, parent_sd: SecurityDescriptor | None, principals: list[str], desired: int,
                key_path: str | None = None, object_type: str = "key") -> Fix | None:
    """The change that grants ``desired`` to ``principals``, or None when it is already granted
    (or no DACL change can grant it, e.g. ACCESS_SYSTEM_SECURITY).

    Order of preference: re-enable inheritance (protected DACL whose parent's inheritable ACEs
    grant the request), remove explicit deny ACEs that block it, add one allow ACE
    ``(A;CI;<rights>;;;<sid>)`` for the service SID among the principals (else the first one).
    """
    pset = resolve_principals(principals)
    before = evaluate(sd, pset, desired, object_type)
    if before.allowed or not pset:
        return None
    if before.requested & access.ACCESS_SYSTEM_SECURITY:
        return None
    sddl_before = _safe_sddl(sd, object_type)
    where = key_path or "the key"
    fmt = lambda m: access.format(m, object_type)
    ps_lines = _ps_header(key_path) + ["$acl = Get-Acl -LiteralPath $path"]
    ps_tail = ["Set-Acl -LiteralPath $path -AclObject $acl"]

    # 1. re-enable inheritance
    if sd.dacl_protected and parent_sd is not None and before.denied_by is None:
        after = enable_inheritance(sd, parent_sd, object_type)
        verdict = evaluate(after, pset, desired, object_type)
        if verdict.allowed:
            by = ", ".join(a.describe(object_type) for a in verdict.deciding)
            text = (f"Re-enable inheritance on {where}: its DACL is protected (inheritance off), and the parent's "
                    f"inheritable ACEs then grant {fmt(verdict.requested)} ({by}). The explicit ACEs can be "
                    "removed afterwards; the inherited ones alone grant the request.")
            ps = ps_lines + ["$acl.SetAccessRuleProtection($false, $true)   # inherit from the parent key again"] + ps_tail
            return Fix("enable-inheritance", text, "re-enable inheritance from the parent key", sddl_before,
                       _safe_sddl(after, object_type), after, "\n".join(ps), verdict)

    current = sd
    removed: list[Ace] = []
    verdict = before
    ps_body: list[str] = []
    # 2. remove explicit deny ACEs that block the request
    while verdict.denied_by is not None and len(removed) < 64:
        blocking = current.dacl.aces[verdict.denied_by.index] if current.dacl is not None else None
        if blocking is None or blocking.inherited:
            break
        removed.append(blocking)
        ps_body += _ps_rule(blocking, allow=False, object_type=object_type) + ["$acl.RemoveAccessRuleSpecific($rule)"]
        current = with_aces(current, [a for i, a in enumerate(current.dacl.aces) if i != verdict.denied_by.index])
        verdict = evaluate(current, pset, desired, object_type)
    if removed and verdict.allowed:
        listing = ", ".join(_ace_sddl(a, object_type) or a.type_name for a in removed)
        text = f"Remove the explicit deny ACE(s) {listing} from {where}; the remaining ACEs grant {fmt(verdict.requested)}."
        return Fix("remove-deny", text, f"remove the deny ACE {listing}", sddl_before, _safe_sddl(current, object_type),
                   current, "\n".join(ps_lines + ps_body + ps_tail), verdict, removed=removed)

    # 3. add an allow ACE
    rights = verdict.requested & ~access.ACCESS_SYSTEM_SECURITY
    if not rights:
        return None
    grantee = _grantee(pset)
    flags = CONTAINER_INHERIT_ACE if object_type == "key" else 0
    new_ace = Ace(0x00, flags, rights, grantee)
    aces = list(current.dacl.aces) if current.dacl is not None else []
    position = next((i for i, a in enumerate(aces) if a.inherited), len(aces))
    after = with_aces(current, aces[:position] + [new_ace] + aces[position:])
    verdict = evaluate(after, pset, desired, object_type)
    if not verdict.allowed:
        return None
    ace_text = _ace_sddl(new_ace, object_type) or fmt(rights)
    who = sids.name_of(grantee) or grantee
    text = f"Add the ACE {ace_text} to {where}: allow {who} {fmt(rights)}"
    text += ", inherited by subkeys." if flags else "."
    if removed:
        text = ("Remove the explicit deny ACE(s) "
                + ", ".join(_ace_sddl(a, object_type) or a.type_name for a in removed) + " and " + text[0].lower() + text[1:])
    ps_body += _ps_rule(new_ace, allow=True, object_type=object_type) + ["$acl.AddAccessRule($rule)"]
    return Fix("add-ace", text, f"add {ace_text}", sddl_before, _safe_sddl(after, object_type), after,
               "\n".join(ps_lines + ps_body + ps_tail), verdict, ace=new_ace, removed=removed)
