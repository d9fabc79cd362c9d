"""Fixes: the smallest change to a DACL that grants the request (re-enable inheritance, remove a
deny, add an ACE), the descriptor after it, and the PowerShell that makes the change."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rpctrace.knowledge import access, sids
from rpctrace.knowledge.registry import user_path
from rpctrace.security.check import (
    AccessVerdict,
    _ace_sddl,
    evaluate,
    resolve_principals,
)
from rpctrace.security.inherit import (
    enable_inheritance,
)
from rpctrace.security.model import (
    CONTAINER_INHERIT_ACE,
    INHERIT_ONLY_ACE,
    NO_PROPAGATE_INHERIT_ACE,
    OBJECT_INHERIT_ACE,
    Ace,
    SecurityDescriptor,
    SecurityDescriptorError,
    with_aces,
)
from rpctrace.security.sddl import (
    to_sddl,
)

__all__ = [
    "Fix",
    "powershell_path",
    "ps_quote",
    "suggest_fix",
]

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
    #: why the change opens a hole (write access for a broad group, or on a key that decides
    #: what runs as SYSTEM), or None; ``alternative`` is the safer change when there is one
    danger: str | None = None
    alternative: str | None = None

    @property
    def dangerous(self) -> bool:
        return self.danger is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "text": self.text,
            "dangerous": self.dangerous,
            "danger": self.danger,
            "alternative": self.alternative,
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


#: principals that stand for many accounts: write access for them is write access for everyone
#: in them (SIDs: MS-DTYP 2.4.2.4 well-known SIDs)
BROAD_PRINCIPALS = {
    "S-1-1-0": "Everyone", "S-1-5-32-545": "BUILTIN\\Users", "S-1-5-11": "Authenticated Users",
    "S-1-5-4": "INTERACTIVE", "S-1-5-32-546": "BUILTIN\\Guests", "S-1-5-7": "ANONYMOUS LOGON", "S-1-5-2": "NETWORK",
    "S-1-5-13": "TERMINAL SERVER USER", "S-1-5-14": "REMOTE INTERACTIVE LOGON", "S-1-15-2-1": "ALL APPLICATION PACKAGES",
    "S-1-15-2-2": "ALL RESTRICTED APPLICATION PACKAGES", "S-1-5-32-547": "BUILTIN\\Power Users",
    "S-1-5-33": "WRITE RESTRICTED", "S-1-5-6": "SERVICE", "S-1-5-19": "LOCAL SERVICE", "S-1-5-20": "NETWORK SERVICE",
}
#: keys whose contents decide what runs, as whom, or what is trusted: write access there is a way
#: to SYSTEM (a service's ImagePath, an IFEO debugger, a Run value, an LSA package...)
SENSITIVE_KEYS = (
    ("\\SERVICES", "service configuration (an ImagePath or a ServiceDll written here runs as the service's account, "
                    "often SYSTEM)"),
    ("\\CONTROL\\LSA", "LSA configuration (authentication and security packages load into lsass)"),
    ("HKLM\\SAM", "the account database"), ("HKLM\\SECURITY", "LSA secrets and policy"),
    ("\\WINLOGON", "Winlogon (its Shell, Userinit and notification values run at logon)"),
    ("\\IMAGE FILE EXECUTION OPTIONS", "Image File Execution Options (a Debugger value runs instead of any program)"),
    ("\\CURRENTVERSION\\RUN", "a Run key (what it names runs at every logon)"),
    ("\\CURRENTVERSION\\POLICIES", "policy (what it sets overrides users' and administrators' settings)"),
    ("\\SESSION MANAGER", "the session manager (KnownDLLs, boot execute, environment of every process)"),
    ("\\WINDOWS\\APPINIT_DLLS", "AppInit_DLLs (loaded into every process with user32)"),
)
_WRITE_BITS = (access.KEY_SET_VALUE | access.KEY_CREATE_SUB_KEY | access.KEY_CREATE_LINK | access.DELETE
               | access.WRITE_DAC | access.WRITE_OWNER | access.GENERIC_WRITE | access.GENERIC_ALL)


def _sensitive(key_path: str | None) -> str | None:
    if not key_path:
        return None
    upper = user_path(key_path).upper()
    for marker, why in SENSITIVE_KEYS:
        if marker in upper or upper.endswith(marker.rstrip("\\")):
            return why
    return None


def _broad_writers(sd: SecurityDescriptor, object_type: str) -> dict[str, int]:
    """The broad principals and the write, delete or ownership rights ``sd`` grants each."""
    out = {}
    for sid in BROAD_PRINCIPALS:
        granted = evaluate(sd, [sid], access.MAXIMUM_ALLOWED, object_type).granted & _WRITE_BITS
        if granted:
            out[sid] = granted
    return out


def assess(fix: "Fix", before: SecurityDescriptor, key_path: str | None, principals: list[str],
           object_type: str = "key") -> "Fix":
    """Flag ``fix`` as dangerous when it gives a broad principal write, delete, WRITE_DAC or
    WRITE_OWNER it did not have, or gives anyone write access on a security-sensitive key; name the
    safer alternative where one exists (a service's own SID instead of a group)."""
    def fmt(mask: int) -> str:
        return access.format(mask, object_type)
    new = {sid: m & ~_broad_writers(before, object_type).get(sid, 0)
           for sid, m in _broad_writers(fix.sd_after, object_type).items()}
    new = {sid: m for sid, m in new.items() if m}
    reasons = []
    if new:
        reasons.append("it gives " + ", ".join(f"{BROAD_PRINCIPALS[sid]} {fmt(m)}" for sid, m in new.items())
                       + ": every account in the group could then change the key")
    sensitive = _sensitive(key_path)
    grants_write = fix.ace is not None and fix.ace.mask & _WRITE_BITS
    if sensitive and (grants_write or new or fix.kind == "enable-inheritance" and _broad_writers(fix.sd_after, object_type)):
        reasons.append(f"the key is {sensitive}, and write access to it is a way to run code with more privilege")
    if reasons:
        fix.danger = "; ".join(reasons)
        service = next((p for p in principals if p.startswith("S-1-5-80-") and p != "S-1-5-80-0"), None)
        if fix.ace is not None and fix.ace.sid in BROAD_PRINCIPALS and service:
            fix.alternative = (f"grant {fmt(fix.ace.mask)} to the service's own SID {sids.name_of(service) or service} "
                               f"({service}) instead of {BROAD_PRINCIPALS[fix.ace.sid]}")
        elif fix.ace is not None and fix.ace.sid in BROAD_PRINCIPALS:
            fix.alternative = ("grant the right to the one account or service SID (NT SERVICE\\<name>) that needs it, "
                               f"not to {BROAD_PRINCIPALS[fix.ace.sid]}")
        elif sensitive:
            fix.alternative = "change what the service or program does instead of loosening this key's ACL"
        fix.text += f" WARNING, dangerous: {fix.danger}." + (f" Safer: {fix.alternative}." if fix.alternative else "")
    return fix


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
    ``(A;;<missing rights>;;;<sid>)`` for the service SID among the principals (else the first
    one).  Every fix is assessed (:func:`assess`): one that opens a hole says so.
    """
    pset = resolve_principals(principals)
    before = evaluate(sd, pset, desired, object_type)
    if before.allowed or not pset:
        return None
    if before.requested & access.ACCESS_SYSTEM_SECURITY:
        return None
    sddl_before = _safe_sddl(sd, object_type)
    where = key_path or "the key"
    def fmt(mask: int) -> str:
        return access.format(mask, object_type)
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
            return assess(Fix("enable-inheritance", text, "re-enable inheritance from the parent key", sddl_before,
                              _safe_sddl(after, object_type), after, "\n".join(ps), verdict), sd, key_path, pset,
                          object_type)

    current = sd
    removed: list[Ace] = []
    verdict = before
    ps_body: list[str] = []
    # 2. remove explicit deny ACEs that block the request
    while verdict.denied_by is not None and current.dacl is not None and len(removed) < 64:
        index = verdict.denied_by.index
        blocking = current.dacl.aces[index]
        if blocking.inherited:
            break
        removed.append(blocking)
        ps_body += _ps_rule(blocking, allow=False, object_type=object_type) + ["$acl.RemoveAccessRuleSpecific($rule)"]
        current = with_aces(current, [a for i, a in enumerate(current.dacl.aces) if i != index])
        verdict = evaluate(current, pset, desired, object_type)
    if removed and verdict.allowed:
        listing = ", ".join(_ace_sddl(a, object_type) or a.type_name for a in removed)
        text = f"Remove the explicit deny ACE(s) {listing} from {where}; the remaining ACEs grant {fmt(verdict.requested)}."
        return assess(Fix("remove-deny", text, f"remove the deny ACE {listing}", sddl_before,
                          _safe_sddl(current, object_type), current, "\n".join(ps_lines + ps_body + ps_tail), verdict,
                          removed=removed), sd, key_path, pset, object_type)

    # 3. add an allow ACE: the least that grants the request - the rights still missing, to the
    #    principal that ran (its service SID first), for this key only (subkeys keep theirs)
    rights = (verdict.missing or verdict.requested) & ~access.ACCESS_SYSTEM_SECURITY
    if not rights:
        return None
    grantee = _grantee(pset)
    flags = 0  # no inheritance unless needed: the request is for this key
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
    return assess(Fix("add-ace", text, f"add {ace_text}", sddl_before, _safe_sddl(after, object_type), after,
                      "\n".join(ps_lines + ps_body + ps_tail), verdict, ace=new_ace, removed=removed), sd, key_path,
                  pset, object_type)

