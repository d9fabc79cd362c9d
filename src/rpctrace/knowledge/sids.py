"""Security identifiers: well-known SIDs and account names, SDDL aliases, NT SERVICE SIDs, and the
principal set a service process's token holds.

Sources:

* well-known SIDs and their account names: Microsoft's "Well-known SIDs" table
  (learn.microsoft.com/windows/win32/secauthz/well-known-sids) and MS-DTYP 2.4.2.4;
* the two-letter SDDL aliases: "SID Strings" (learn.microsoft.com/windows/win32/secauthz/sid-strings)
  and MS-DTYP 2.5.1.1; aliases relative to a domain or machine SID (DA, DU, LA, ...) are listed in
  :data:`DOMAIN_RELATIVE_ALIASES` but cannot be resolved offline;
* service SIDs: MS-LSAT 3.1.1.1.2 (uppercase the name, UTF-16LE, SHA-1, the digest as five
  little-endian ULONGs under S-1-5-80); the test vectors are in
  ../shared/reference/etw-and-alpc-facts.md §6.

No I/O at import.
"""

from __future__ import annotations

import hashlib
import re
import struct

__all__ = [
    "DOMAIN_RELATIVE_ALIASES",
    "KNOWN_SERVICES",
    "SDDL_ALIASES",
    "WELL_KNOWN",
    "alias_of",
    "is_sid",
    "name_of",
    "normalize_sid",
    "principal_notes",
    "principals_for_service",
    "register_service",
    "resolve",
    "service_sid",
]

# SID -> account name as LookupAccountSid spells it (domain\name where Windows shows a domain).
WELL_KNOWN: dict[str, str] = {
    "S-1-0-0": "NULL SID",
    "S-1-1-0": "Everyone",
    "S-1-2-0": "LOCAL",
    "S-1-2-1": "CONSOLE LOGON",
    "S-1-3-0": "CREATOR OWNER",
    "S-1-3-1": "CREATOR GROUP",
    "S-1-3-2": "CREATOR OWNER SERVER",
    "S-1-3-3": "CREATOR GROUP SERVER",
    "S-1-3-4": "OWNER RIGHTS",
    "S-1-5-1": "NT AUTHORITY\\DIALUP",
    "S-1-5-2": "NT AUTHORITY\\NETWORK",
    "S-1-5-3": "NT AUTHORITY\\BATCH",
    "S-1-5-4": "NT AUTHORITY\\INTERACTIVE",
    "S-1-5-6": "NT AUTHORITY\\SERVICE",
    "S-1-5-7": "NT AUTHORITY\\ANONYMOUS LOGON",
    "S-1-5-8": "NT AUTHORITY\\PROXY",
    "S-1-5-9": "NT AUTHORITY\\ENTERPRISE DOMAIN CONTROLLERS",
    "S-1-5-10": "NT AUTHORITY\\SELF",
    "S-1-5-11": "NT AUTHORITY\\Authenticated Users",
    "S-1-5-12": "NT AUTHORITY\\RESTRICTED",
    "S-1-5-13": "NT AUTHORITY\\TERMINAL SERVER USER",
    "S-1-5-14": "NT AUTHORITY\\REMOTE INTERACTIVE LOGON",
    "S-1-5-15": "NT AUTHORITY\\This Organization",
    "S-1-5-17": "NT AUTHORITY\\IUSR",
    "S-1-5-18": "NT AUTHORITY\\SYSTEM",
    "S-1-5-19": "NT AUTHORITY\\LOCAL SERVICE",
    "S-1-5-20": "NT AUTHORITY\\NETWORK SERVICE",
    "S-1-5-33": "NT AUTHORITY\\WRITE RESTRICTED",
    "S-1-5-64-10": "NT AUTHORITY\\NTLM Authentication",
    "S-1-5-64-14": "NT AUTHORITY\\SChannel Authentication",
    "S-1-5-64-21": "NT AUTHORITY\\Digest Authentication",
    "S-1-5-113": "NT AUTHORITY\\Local account",
    "S-1-5-114": "NT AUTHORITY\\Local account and member of Administrators group",
    "S-1-5-32-544": "BUILTIN\\Administrators",
    "S-1-5-32-545": "BUILTIN\\Users",
    "S-1-5-32-546": "BUILTIN\\Guests",
    "S-1-5-32-547": "BUILTIN\\Power Users",
    "S-1-5-32-548": "BUILTIN\\Account Operators",
    "S-1-5-32-549": "BUILTIN\\Server Operators",
    "S-1-5-32-550": "BUILTIN\\Print Operators",
    "S-1-5-32-551": "BUILTIN\\Backup Operators",
    "S-1-5-32-552": "BUILTIN\\Replicator",
    "S-1-5-32-554": "BUILTIN\\Pre-Windows 2000 Compatible Access",
    "S-1-5-32-555": "BUILTIN\\Remote Desktop Users",
    "S-1-5-32-556": "BUILTIN\\Network Configuration Operators",
    "S-1-5-32-558": "BUILTIN\\Performance Monitor Users",
    "S-1-5-32-559": "BUILTIN\\Performance Log Users",
    "S-1-5-32-568": "BUILTIN\\IIS_IUSRS",
    "S-1-5-32-569": "BUILTIN\\Cryptographic Operators",
    "S-1-5-32-573": "BUILTIN\\Event Log Readers",
    "S-1-5-32-574": "BUILTIN\\Certificate Service DCOM Access",
    "S-1-5-32-575": "BUILTIN\\RDS Remote Access Servers",
    "S-1-5-32-576": "BUILTIN\\RDS Endpoint Servers",
    "S-1-5-32-577": "BUILTIN\\RDS Management Servers",
    "S-1-5-32-578": "BUILTIN\\Hyper-V Administrators",
    "S-1-5-32-579": "BUILTIN\\Access Control Assistance Operators",
    "S-1-5-32-580": "BUILTIN\\Remote Management Users",
    "S-1-5-80-0": "NT SERVICE\\ALL SERVICES",
    "S-1-5-84-0-0-0-0-0": "NT AUTHORITY\\USER MODE DRIVERS",
    "S-1-5-90-0": "Window Manager\\Window Manager Group",
    "S-1-15-2-1": "APPLICATION PACKAGE AUTHORITY\\ALL APPLICATION PACKAGES",
    "S-1-15-2-2": "APPLICATION PACKAGE AUTHORITY\\ALL RESTRICTED APPLICATION PACKAGES",
    "S-1-16-0": "Mandatory Label\\Untrusted Mandatory Level",
    "S-1-16-4096": "Mandatory Label\\Low Mandatory Level",
    "S-1-16-8192": "Mandatory Label\\Medium Mandatory Level",
    "S-1-16-8448": "Mandatory Label\\Medium Plus Mandatory Level",
    "S-1-16-12288": "Mandatory Label\\High Mandatory Level",
    "S-1-16-16384": "Mandatory Label\\System Mandatory Level",
    "S-1-16-20480": "Mandatory Label\\Protected Process Mandatory Level",
    "S-1-18-1": "Authentication authority asserted identity",
    "S-1-18-2": "Service asserted identity",
    # NT SERVICE\TrustedInstaller is a service SID (see service_sid), listed so that name_of
    # works without hashing at import.
    "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464": "NT SERVICE\\TrustedInstaller",
}

# Two-letter SDDL aliases that stand for a fixed SID (MS "SID Strings").
SDDL_ALIASES: dict[str, str] = {
    "AA": "S-1-5-32-579",
    "AC": "S-1-15-2-1",
    "AN": "S-1-5-7",
    "AO": "S-1-5-32-548",
    "AS": "S-1-18-1",
    "AU": "S-1-5-11",
    "BA": "S-1-5-32-544",
    "BG": "S-1-5-32-546",
    "BO": "S-1-5-32-551",
    "BU": "S-1-5-32-545",
    "CD": "S-1-5-32-574",
    "CG": "S-1-3-1",
    "CO": "S-1-3-0",
    "CY": "S-1-5-32-569",
    "ED": "S-1-5-9",
    "ER": "S-1-5-32-573",
    "ES": "S-1-5-32-576",
    "HA": "S-1-5-32-578",
    "HI": "S-1-16-12288",
    "IS": "S-1-5-32-568",
    "IU": "S-1-5-4",
    "LS": "S-1-5-19",
    "LU": "S-1-5-32-559",
    "LW": "S-1-16-4096",
    "ME": "S-1-16-8192",
    "MP": "S-1-16-8448",
    "MS": "S-1-5-32-577",
    "MU": "S-1-5-32-558",
    "NO": "S-1-5-32-556",
    "NS": "S-1-5-20",
    "NU": "S-1-5-2",
    "OW": "S-1-3-4",
    "PO": "S-1-5-32-550",
    "PS": "S-1-5-10",
    "PU": "S-1-5-32-547",
    "RA": "S-1-5-32-575",
    "RC": "S-1-5-12",
    "RD": "S-1-5-32-555",
    "RE": "S-1-5-32-552",
    "RM": "S-1-5-32-580",
    "RU": "S-1-5-32-554",
    "SI": "S-1-16-16384",
    "SO": "S-1-5-32-549",
    "SS": "S-1-18-2",
    "SU": "S-1-5-6",
    "SY": "S-1-5-18",
    "UD": "S-1-5-84-0-0-0-0-0",
    "WD": "S-1-1-0",
    "WR": "S-1-5-33",
}

#: Aliases whose SID needs the machine's or domain's SID (Domain Admins, local Administrator...).
DOMAIN_RELATIVE_ALIASES: dict[str, str] = {
    "AP": "Protected Users (domain RID 525)",
    "CA": "Cert Publishers (domain RID 517)",
    "CN": "Cloneable Domain Controllers (domain RID 522)",
    "DA": "Domain Admins (domain RID 512)",
    "DC": "Domain Computers (domain RID 515)",
    "DD": "Domain Controllers (domain RID 516)",
    "DG": "Domain Guests (domain RID 514)",
    "DU": "Domain Users (domain RID 513)",
    "EA": "Enterprise Admins (root domain RID 519)",
    "EK": "Enterprise Key Admins (root domain RID 527)",
    "KA": "Key Admins (domain RID 526)",
    "LA": "local Administrator (machine RID 500)",
    "LG": "local Guest (machine RID 501)",
    "PA": "Group Policy Creator Owners (domain RID 520)",
    "RO": "Enterprise Read-only Domain Controllers (root domain RID 498)",
    "RS": "RAS and IAS Servers (domain RID 553)",
    "SA": "Schema Admins (root domain RID 518)",
}

_SID_TO_ALIAS: dict[str, str] = {sid: alias for alias, sid in SDDL_ALIASES.items()}

#: Service names whose SIDs name_of() can name (more are added by register_service and
#: principals_for_service).  Names are spelled as the services' registry keys spell them.
KNOWN_SERVICES: tuple[str, ...] = (
    "AudioEndpointBuilder", "Audiosrv", "BFE", "BITS", "CryptSvc", "DcomLaunch", "Dhcp", "Dnscache",
    "DPS", "EventLog", "EventSystem", "gpsvc", "LanmanServer", "LanmanWorkstation", "lmhosts",
    "MpsSvc", "MSSQLSERVER", "netprofm", "NlaSvc", "nsi", "PlugPlay", "Power", "ProfSvc",
    "RpcEptMapper", "RpcSs", "SamSs", "Schedule", "SENS", "SessionEnv", "SQLSERVERAGENT",
    "SysMain", "Themes", "TrustedInstaller", "UserManager", "W32Time", "WdiServiceHost",
    "WdiSystemHost", "WinDefend", "WinHttpAutoProxySvc", "Winmgmt", "wuauserv",
)

_service_names: dict[str, str] = {}  # service SID -> "NT SERVICE\<name>", filled lazily


def service_sid(name: str) -> str:
    """The SID of ``NT SERVICE\\<name>`` per MS-LSAT 3.1.1.1.2.

    >>> service_sid("TrustedInstaller")
    'S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464'
    """
    if name[:11].upper() == "NT SERVICE\\":
        name = name[11:]
    if not name:
        raise ValueError("a service name is empty")
    digest = hashlib.sha1(name.upper().encode("utf-16-le")).digest()
    return "S-1-5-80-" + "-".join(str(part) for part in struct.unpack("<5I", digest))


def register_service(name: str) -> str:
    """Remember a service name so that :func:`name_of` can name its SID; returns the SID."""
    sid = service_sid(name)
    _service_names[sid] = f"NT SERVICE\\{name}"
    return sid


def _service_table() -> dict[str, str]:
    if not _service_names or len(_service_names) < len(KNOWN_SERVICES):
        for name in KNOWN_SERVICES:
            sid = service_sid(name)
            _service_names.setdefault(sid, f"NT SERVICE\\{name}")
    return _service_names


_SID_RE = re.compile(r"^S-1-(0x[0-9A-Fa-f]{1,12}|\d{1,15})((?:-\d{1,10}){0,15})$", re.IGNORECASE)


def is_sid(text: str) -> bool:
    """True for a string SID ``S-1-<authority>(-<subauthority>){0,15}``, sub-authorities < 2**32."""
    m = _SID_RE.match(text.strip())
    if not m:
        return False
    auth = m.group(1)
    if (int(auth, 16) if auth.lower().startswith("0x") else int(auth)) >= 1 << 48:
        return False
    return all(int(part) < 1 << 32 for part in m.group(2).split("-")[1:])


def normalize_sid(text: str) -> str:
    """``s-1-5-0x12`` -> ``S-1-5-18`` form: upper-case S, authorities below 2**32 in decimal."""
    text = text.strip()
    if not is_sid(text):
        raise ValueError(f"not a SID: {text!r}")
    parts = text.split("-")
    auth = int(parts[2], 16) if parts[2].lower().startswith("0x") else int(parts[2])
    auth_text = str(auth) if auth < 1 << 32 else f"0x{auth:012X}"
    return "-".join(["S", "1", auth_text] + [str(int(p)) for p in parts[3:]])


def name_of(sid: str | None) -> str | None:
    """The account name of a SID when rpctrace knows it (well-known SIDs and known services)."""
    if not sid:
        return None
    try:
        sid = normalize_sid(sid)
    except ValueError:
        return None
    name = WELL_KNOWN.get(sid)
    if name:
        return name
    if sid.startswith("S-1-5-80-"):
        return _service_table().get(sid)
    return None


def alias_of(sid: str) -> str | None:
    """The two-letter SDDL alias of a SID, or None."""
    return _SID_TO_ALIAS.get(sid)


# Short names people type for well-known accounts (case-insensitive), in addition to the full
# "DOMAIN\name" and the bare "name" parts of WELL_KNOWN.
_EXTRA_NAMES: dict[str, str] = {
    "LOCALSERVICE": "S-1-5-19",
    "LOCAL SERVICE": "S-1-5-19",
    "NT AUTHORITY\\LOCALSERVICE": "S-1-5-19",
    "NETWORKSERVICE": "S-1-5-20",
    "NETWORK SERVICE": "S-1-5-20",
    "NT AUTHORITY\\NETWORKSERVICE": "S-1-5-20",
    "LOCALSYSTEM": "S-1-5-18",
    "LOCAL SYSTEM": "S-1-5-18",
    "SYSTEM": "S-1-5-18",
    "AUTHENTICATED USERS": "S-1-5-11",
    "ADMINISTRATORS": "S-1-5-32-544",
    "USERS": "S-1-5-32-545",
    "ALL APPLICATION PACKAGES": "S-1-15-2-1",
    "ALL RESTRICTED APPLICATION PACKAGES": "S-1-15-2-2",
    "ALL SERVICES": "S-1-5-80-0",
    "TRUSTEDINSTALLER": "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464",
}


def _name_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for sid, name in WELL_KNOWN.items():
        table.setdefault(name.upper(), sid)
    for sid, name in WELL_KNOWN.items():  # bare names only where they are not ambiguous
        if "\\" in name:
            table.setdefault(name.split("\\", 1)[1].upper(), sid)
    table.update(_EXTRA_NAMES)
    return table


_NAMES: dict[str, str] | None = None


def resolve(name_or_sid: str, *, service: bool = False) -> tuple[str, str | None]:
    """Resolve what a person typed to ``(sid, name)``.

    Accepts a string SID (``S-1-5-19``), an SDDL alias (``LS``, ``BA``; two upper-case letters),
    a well-known account (``LOCAL SERVICE``, ``NT AUTHORITY\\SYSTEM``, ``Everyone``,
    ``BUILTIN\\Users``, ``Users``), ``NT SERVICE\\<name>`` (a service SID, computed), and, with
    ``service=True`` (the hint that the name is a service), a bare service name such as
    ``Audiosrv``.  Raises ValueError for anything else, naming what was typed.
    """
    global _NAMES
    text = name_or_sid.strip()
    if not text:
        raise ValueError("an empty principal")
    if text[:2].upper() == "S-" and text[2:3].isdigit():
        sid = normalize_sid(text)
        return sid, name_of(sid)
    if len(text) == 2 and text.isupper() and text in SDDL_ALIASES:
        sid = SDDL_ALIASES[text]
        return sid, name_of(sid)
    if len(text) == 2 and text.isupper() and text in DOMAIN_RELATIVE_ALIASES:
        raise ValueError(f"SDDL alias {text} ({DOMAIN_RELATIVE_ALIASES[text]}) needs the domain's SID; give the SID")
    if text[:11].upper() == "NT SERVICE\\":
        svc = text[11:]
        if svc.upper() == "ALL SERVICES":
            return "S-1-5-80-0", WELL_KNOWN["S-1-5-80-0"]
        sid = register_service(svc)
        return sid, name_of(sid)
    if _NAMES is None:
        _NAMES = _name_table()
    known = _NAMES.get(text.upper())
    if known:
        return known, name_of(known)
    if service:
        if "\\" in text or "/" in text:
            raise ValueError(f"not a service name: {text!r}")
        sid = register_service(text)
        return sid, name_of(sid)
    raise ValueError(
        f"unknown account {text!r}: give a SID (S-1-5-...), an SDDL alias (BA, SY, LS...), a well-known "
        "name (LOCAL SERVICE, Everyone...) or NT SERVICE\\<service>"
    )


# Groups a service token holds, and why.  Each entry: (sid, reason, certain?)
_COMMON_GROUPS: tuple[tuple[str, str, bool], ...] = (
    ("S-1-1-0", "Everyone is in every non-anonymous token", True),
    ("S-1-5-11", "Authenticated Users: every non-anonymous logon, including the service accounts", True),
    ("S-1-5-15", "This Organization: shown by whoami /groups in service processes", False),
    ("S-1-2-0", "LOCAL: a local logon", False),
)


def _account_sid(account: str | None) -> str | None:
    if account is None or not str(account).strip():
        return None
    return resolve(str(account))[0]


def principal_notes(service: str | None, account: str | None = None,
                    also_services: tuple[str, ...] | list[str] = ()) -> list[tuple[str, str, bool]]:
    """The principal set of :func:`principals_for_service` with a reason for each SID and whether
    the membership is certain (True) or inferred (False).

    Rules (a service started by the Service Control Manager; see principals_for_service):

    * the account SID (the token's user): SYSTEM S-1-5-18, LOCAL SERVICE S-1-5-19 or NETWORK
      SERVICE S-1-5-20 (certain, it is the process user);
    * the service SID ``NT SERVICE\\<name>`` (certain when the service's SID type is unrestricted
      or restricted, which is the default for in-box svchost services since Vista; otherwise the
      token has no service SID) and the SIDs of services sharing the process (``also_services``);
    * Everyone and Authenticated Users (certain for any non-anonymous token);
    * for LOCAL SERVICE and NETWORK SERVICE: SERVICE S-1-5-6 (the logon is a service logon) and
      BUILTIN\\Users S-1-5-32-545 (the account is a member of Users); both certain per whoami
      /groups of such processes;
    * for SYSTEM: BUILTIN\\Administrators S-1-5-32-544 (SYSTEM's token holds it, as the owner
      group), certain; SERVICE is not in the SYSTEM token (inferred from whoami /groups in SYSTEM
      services, which do not list it);
    * NT SERVICE\\ALL SERVICES S-1-5-80-0 (the well-known SIDs table: "a group that includes all
      service processes", membership controlled by the OS) - inferred;
    * This Organization S-1-5-15, LOCAL S-1-2-0, CONSOLE LOGON S-1-2-1 - inferred from whoami
      /groups listings of service processes; they rarely appear in registry DACLs.

    Not modelled: integrity level, write-restricted tokens (SERVICE_SID_TYPE_RESTRICTED adds a
    second, restricting-SID check), privileges (SeBackup/SeRestore/SeTakeOwnership), and groups
    added by a domain.
    """
    notes: list[tuple[str, str, bool]] = []
    seen: set[str] = set()

    def add(sid: str, why: str, certain: bool) -> None:
        if sid not in seen:
            seen.add(sid)
            notes.append((sid, why, certain))

    user = _account_sid(account)
    if service:
        add(register_service(service), f"service SID of NT SERVICE\\{service} (the token's service SID)", True)
    for other in also_services:
        add(register_service(other), f"service SID of NT SERVICE\\{other} (shares the process)", True)
    if user:
        add(user, f"the process user {name_of(user) or user}", True)
    for sid, why, certain in _COMMON_GROUPS[:2]:
        add(sid, why, certain)
    if user in ("S-1-5-19", "S-1-5-20"):
        add("S-1-5-6", "SERVICE: the service accounts log on with a service logon", True)
        add("S-1-5-32-545", "BUILTIN\\Users: LOCAL SERVICE and NETWORK SERVICE are members of Users", True)
    elif user == "S-1-5-18":
        add("S-1-5-32-544", "BUILTIN\\Administrators: held by the SYSTEM token", True)
    elif user is None:
        add("S-1-5-6", "SERVICE: inferred, the account is unknown but the SCM started the process", False)
        add("S-1-5-32-545", "BUILTIN\\Users: inferred for an unknown service account", False)
    else:
        add("S-1-5-6", "SERVICE: a service logon (inferred for a named account)", False)
    add("S-1-5-80-0", "NT SERVICE\\ALL SERVICES: every service process (inferred from the well-known SIDs table)", False)
    for sid, why, certain in _COMMON_GROUPS[2:]:
        add(sid, why, certain)
    add("S-1-2-1", "CONSOLE LOGON: shown by whoami /groups in service processes (inferred)", False)
    return notes


def principals_for_service(service: str | None, account: str | None = None,
                           also_services: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The SIDs a service process's token would hold, service SID first.

    ``service`` is the service name (``Audiosrv``); ``account`` the process user as a SID or
    name (``LOCAL SERVICE``, ``S-1-5-19``, ``LocalSystem``); None means unknown (then the user SID
    is left out and the account-dependent groups are inferred).  ``also_services`` are services
    sharing the process, whose service SIDs the token also holds.  See :func:`principal_notes` for
    each SID's reason and which memberships are inferences.

    >>> principals_for_service("Audiosrv", "LOCAL SERVICE")[:3]
    ['S-1-5-80-2676549577-1911656217-2625096541-4178041876-1366760775', 'S-1-5-19', 'S-1-1-0']
    """
    return [sid for sid, _, _ in principal_notes(service, account, also_services)]
