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

from dataclasses import dataclass, field
from typing import Any

from rpctrace.knowledge import access, sids
from rpctrace.security.model import (
    Ace,
    SecurityDescriptor,
    SecurityDescriptorError,
)
from rpctrace.security.sddl import (
    ace_to_sddl,
)

__all__ = [
    "AccessVerdict",
    "AceReport",
    "evaluate",
    "resolve_principals",
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

    def to_dict(self) -> dict[str, Any]:
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

    def to_dict(self) -> dict[str, Any]:
        def fmt(mask: int) -> str:
            return access.format(mask, self.object_type)
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
    def fmt(mask: int) -> str:
        return access.format(mask, object_type)
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
    def fmt(mask: int) -> str:
        return access.format(mask, v.object_type)
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


