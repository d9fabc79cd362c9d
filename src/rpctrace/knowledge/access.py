"""Access masks: rights by object type, composite names, generic mappings.

Values are the public winnt.h / ntlpcapi.h constants (../shared/reference/etw-and-alpc-facts.md
§7 lists the registry and standard ones); composites are derived from their definitions.  The
generic mappings of the key and file types are the documented ones (KEY_READ etc., FILE_GENERIC_*);
those of the process and ALPC port types are the values the kernel's object types report
(``dt nt!_OBJECT_TYPE`` / ``!object`` output quoted in public write-ups) and are marked as such.

``decode(0x20106, "key") == ["KEY_WRITE", "KEY_WOW64_64KEY"]``: composites are preferred to
their bits, unknown bits stay as one hex remainder.  No I/O at import.
"""

from __future__ import annotations

import re

__all__ = [
    "COMPOSITES",
    "GENERIC",
    "GENERIC_MAPPING",
    "KEY_WOW64_MASK",
    "OBJECT_TYPES",
    "RIGHTS",
    "STANDARD",
    "decode",
    "format",
    "map_generic",
    "parse",
    "specific_names",
]

# Standard rights (winnt.h)
DELETE = 0x00010000
READ_CONTROL = 0x00020000
WRITE_DAC = 0x00040000
WRITE_OWNER = 0x00080000
SYNCHRONIZE = 0x00100000
STANDARD_RIGHTS_REQUIRED = 0x000F0000
STANDARD_RIGHTS_READ = READ_CONTROL
STANDARD_RIGHTS_WRITE = READ_CONTROL
STANDARD_RIGHTS_EXECUTE = READ_CONTROL
STANDARD_RIGHTS_ALL = 0x001F0000
ACCESS_SYSTEM_SECURITY = 0x01000000
MAXIMUM_ALLOWED = 0x02000000
GENERIC_ALL = 0x10000000
GENERIC_EXECUTE = 0x20000000
GENERIC_WRITE = 0x40000000
GENERIC_READ = 0x80000000

STANDARD: dict[str, int] = {
    "DELETE": DELETE,
    "READ_CONTROL": READ_CONTROL,
    "WRITE_DAC": WRITE_DAC,
    "WRITE_OWNER": WRITE_OWNER,
    "SYNCHRONIZE": SYNCHRONIZE,
    "ACCESS_SYSTEM_SECURITY": ACCESS_SYSTEM_SECURITY,
    "MAXIMUM_ALLOWED": MAXIMUM_ALLOWED,
}
GENERIC: dict[str, int] = {
    "GENERIC_ALL": GENERIC_ALL,
    "GENERIC_EXECUTE": GENERIC_EXECUTE,
    "GENERIC_WRITE": GENERIC_WRITE,
    "GENERIC_READ": GENERIC_READ,
}
# Accepted by parse(), never produced by decode() (the bits read better one by one).
_STANDARD_COMPOSITES: dict[str, int] = {
    "STANDARD_RIGHTS_REQUIRED": STANDARD_RIGHTS_REQUIRED,
    "STANDARD_RIGHTS_READ": STANDARD_RIGHTS_READ,
    "STANDARD_RIGHTS_WRITE": STANDARD_RIGHTS_WRITE,
    "STANDARD_RIGHTS_EXECUTE": STANDARD_RIGHTS_EXECUTE,
    "STANDARD_RIGHTS_ALL": STANDARD_RIGHTS_ALL,
}

# Registry keys (winnt.h)
KEY_QUERY_VALUE = 0x0001
KEY_SET_VALUE = 0x0002
KEY_CREATE_SUB_KEY = 0x0004
KEY_ENUMERATE_SUB_KEYS = 0x0008
KEY_NOTIFY = 0x0010
KEY_CREATE_LINK = 0x0020
KEY_WOW64_64KEY = 0x0100
KEY_WOW64_32KEY = 0x0200
KEY_WOW64_RES = 0x0300
#: the registry-view bits of a key open: they select a view and are not checked against a DACL
KEY_WOW64_MASK = KEY_WOW64_RES
KEY_READ = (STANDARD_RIGHTS_READ | KEY_QUERY_VALUE | KEY_ENUMERATE_SUB_KEYS | KEY_NOTIFY) & ~SYNCHRONIZE
KEY_WRITE = (STANDARD_RIGHTS_WRITE | KEY_SET_VALUE | KEY_CREATE_SUB_KEY) & ~SYNCHRONIZE
KEY_EXECUTE = KEY_READ & ~SYNCHRONIZE
KEY_ALL_ACCESS = (
    STANDARD_RIGHTS_ALL | KEY_QUERY_VALUE | KEY_SET_VALUE | KEY_CREATE_SUB_KEY | KEY_ENUMERATE_SUB_KEYS
    | KEY_NOTIFY | KEY_CREATE_LINK
) & ~SYNCHRONIZE

# Files (winnt.h); the directory names of the same bits are accepted by parse().
FILE_READ_DATA = 0x0001
FILE_WRITE_DATA = 0x0002
FILE_APPEND_DATA = 0x0004
FILE_READ_EA = 0x0008
FILE_WRITE_EA = 0x0010
FILE_EXECUTE = 0x0020
FILE_DELETE_CHILD = 0x0040
FILE_READ_ATTRIBUTES = 0x0080
FILE_WRITE_ATTRIBUTES = 0x0100
FILE_ALL_ACCESS = STANDARD_RIGHTS_REQUIRED | SYNCHRONIZE | 0x1FF
FILE_GENERIC_READ = STANDARD_RIGHTS_READ | FILE_READ_DATA | FILE_READ_ATTRIBUTES | FILE_READ_EA | SYNCHRONIZE
FILE_GENERIC_WRITE = (STANDARD_RIGHTS_WRITE | FILE_WRITE_DATA | FILE_WRITE_ATTRIBUTES | FILE_WRITE_EA
                      | FILE_APPEND_DATA | SYNCHRONIZE)
FILE_GENERIC_EXECUTE = STANDARD_RIGHTS_EXECUTE | FILE_READ_ATTRIBUTES | FILE_EXECUTE | SYNCHRONIZE

# Processes (winnt.h, Vista+ PROCESS_ALL_ACCESS)
PROCESS_ALL_ACCESS = STANDARD_RIGHTS_REQUIRED | SYNCHRONIZE | 0xFFFF

# ALPC ports (phnt ntlpcapi.h)
PORT_CONNECT = 0x0001
PORT_ALL_ACCESS = STANDARD_RIGHTS_REQUIRED | SYNCHRONIZE | PORT_CONNECT

RIGHTS: dict[str, dict[str, int]] = {
    "key": {
        "KEY_QUERY_VALUE": KEY_QUERY_VALUE,
        "KEY_SET_VALUE": KEY_SET_VALUE,
        "KEY_CREATE_SUB_KEY": KEY_CREATE_SUB_KEY,
        "KEY_ENUMERATE_SUB_KEYS": KEY_ENUMERATE_SUB_KEYS,
        "KEY_NOTIFY": KEY_NOTIFY,
        "KEY_CREATE_LINK": KEY_CREATE_LINK,
        "KEY_WOW64_64KEY": KEY_WOW64_64KEY,
        "KEY_WOW64_32KEY": KEY_WOW64_32KEY,
    },
    "file": {
        "FILE_READ_DATA": FILE_READ_DATA,
        "FILE_WRITE_DATA": FILE_WRITE_DATA,
        "FILE_APPEND_DATA": FILE_APPEND_DATA,
        "FILE_READ_EA": FILE_READ_EA,
        "FILE_WRITE_EA": FILE_WRITE_EA,
        "FILE_EXECUTE": FILE_EXECUTE,
        "FILE_DELETE_CHILD": FILE_DELETE_CHILD,
        "FILE_READ_ATTRIBUTES": FILE_READ_ATTRIBUTES,
        "FILE_WRITE_ATTRIBUTES": FILE_WRITE_ATTRIBUTES,
    },
    "process": {
        "PROCESS_TERMINATE": 0x0001,
        "PROCESS_CREATE_THREAD": 0x0002,
        "PROCESS_SET_SESSIONID": 0x0004,
        "PROCESS_VM_OPERATION": 0x0008,
        "PROCESS_VM_READ": 0x0010,
        "PROCESS_VM_WRITE": 0x0020,
        "PROCESS_DUP_HANDLE": 0x0040,
        "PROCESS_CREATE_PROCESS": 0x0080,
        "PROCESS_SET_QUOTA": 0x0100,
        "PROCESS_SET_INFORMATION": 0x0200,
        "PROCESS_QUERY_INFORMATION": 0x0400,
        "PROCESS_SUSPEND_RESUME": 0x0800,
        "PROCESS_QUERY_LIMITED_INFORMATION": 0x1000,
        "PROCESS_SET_LIMITED_INFORMATION": 0x2000,
    },
    "alpc": {
        "PORT_CONNECT": PORT_CONNECT,
    },
    "generic": {},
}

#: composites per object type, preferred by decode() in this order
COMPOSITES: dict[str, dict[str, int]] = {
    "key": {
        "KEY_ALL_ACCESS": KEY_ALL_ACCESS,
        "KEY_READ": KEY_READ,
        "KEY_WRITE": KEY_WRITE,
        "KEY_EXECUTE": KEY_EXECUTE,  # == KEY_READ; decode() names it KEY_READ
        "KEY_WOW64_RES": KEY_WOW64_RES,
    },
    "file": {
        "FILE_ALL_ACCESS": FILE_ALL_ACCESS,
        "FILE_GENERIC_READ": FILE_GENERIC_READ,
        "FILE_GENERIC_WRITE": FILE_GENERIC_WRITE,
        "FILE_GENERIC_EXECUTE": FILE_GENERIC_EXECUTE,
    },
    "process": {"PROCESS_ALL_ACCESS": PROCESS_ALL_ACCESS},
    "alpc": {"PORT_ALL_ACCESS": PORT_ALL_ACCESS},
    "generic": {},
}

#: GENERIC_READ, GENERIC_WRITE, GENERIC_EXECUTE, GENERIC_ALL -> specific rights, per type
GENERIC_MAPPING: dict[str, tuple[int, int, int, int]] = {
    "key": (KEY_READ, KEY_WRITE, KEY_EXECUTE, KEY_ALL_ACCESS),
    "file": (FILE_GENERIC_READ, FILE_GENERIC_WRITE, FILE_GENERIC_EXECUTE, FILE_ALL_ACCESS),
    # The kernel's Process type (from !object / dt nt!_OBJECT_TYPE output, not a header): read
    # 0x20410, write 0x20BEA, execute 0x121001, all 0x1FFFFF.
    "process": (0x00020410, 0x00020BEA, 0x00121001, PROCESS_ALL_ACCESS),
    # The kernel's ALPC Port type (same kind of source): read 0x20001, write 0x10001, execute 0,
    # all 0x1F0001.
    "alpc": (0x00020001, 0x00010001, 0x00000000, PORT_ALL_ACCESS),
    # No object type: generic bits stay generic.
    "generic": (GENERIC_READ, GENERIC_WRITE, GENERIC_EXECUTE, GENERIC_ALL),
}

_ALIASES = {"registry": "key", "port": "alpc", "alpc port": "alpc", "alpc_port": "alpc", "directory": "file",
            "standard": "generic", None: "generic", "": "generic"}
OBJECT_TYPES = tuple(RIGHTS)

# .NET RegistryRights / FileSystemRights names, accepted by parse() (PowerShell users type them).
_DOTNET: dict[str, dict[str, int]] = {
    "key": {
        "QUERYVALUES": KEY_QUERY_VALUE, "SETVALUE": KEY_SET_VALUE, "CREATESUBKEY": KEY_CREATE_SUB_KEY,
        "ENUMERATESUBKEYS": KEY_ENUMERATE_SUB_KEYS, "NOTIFY": KEY_NOTIFY, "CREATELINK": KEY_CREATE_LINK,
        "READKEY": KEY_READ, "WRITEKEY": KEY_WRITE, "EXECUTEKEY": KEY_EXECUTE, "FULLCONTROL": KEY_ALL_ACCESS,
        "DELETE": DELETE, "READPERMISSIONS": READ_CONTROL, "CHANGEPERMISSIONS": WRITE_DAC,
        "TAKEOWNERSHIP": WRITE_OWNER,
    },
    "file": {
        "READDATA": FILE_READ_DATA, "LISTDIRECTORY": FILE_READ_DATA, "WRITEDATA": FILE_WRITE_DATA,
        "CREATEFILES": FILE_WRITE_DATA, "APPENDDATA": FILE_APPEND_DATA, "CREATEDIRECTORIES": FILE_APPEND_DATA,
        "READEXTENDEDATTRIBUTES": FILE_READ_EA, "WRITEEXTENDEDATTRIBUTES": FILE_WRITE_EA,
        "EXECUTEFILE": FILE_EXECUTE, "TRAVERSE": FILE_EXECUTE, "DELETESUBDIRECTORIESANDFILES": FILE_DELETE_CHILD,
        "READATTRIBUTES": FILE_READ_ATTRIBUTES, "WRITEATTRIBUTES": FILE_WRITE_ATTRIBUTES,
        "READ": FILE_GENERIC_READ & ~SYNCHRONIZE, "WRITE": FILE_GENERIC_WRITE & ~SYNCHRONIZE & ~READ_CONTROL,
        "READANDEXECUTE": (FILE_GENERIC_READ | FILE_GENERIC_EXECUTE) & ~SYNCHRONIZE,
        "MODIFY": 0x000301BF, "FULLCONTROL": FILE_ALL_ACCESS, "DELETE": DELETE,
        "READPERMISSIONS": READ_CONTROL, "CHANGEPERMISSIONS": WRITE_DAC, "TAKEOWNERSHIP": WRITE_OWNER,
        "SYNCHRONIZE": SYNCHRONIZE,
    },
}
_FILE_DIRECTORY_NAMES = {
    "FILE_LIST_DIRECTORY": FILE_READ_DATA,
    "FILE_ADD_FILE": FILE_WRITE_DATA,
    "FILE_ADD_SUBDIRECTORY": FILE_APPEND_DATA,
    "FILE_TRAVERSE": FILE_EXECUTE,
    "FILE_GENERIC_ALL": FILE_ALL_ACCESS,
}


def _type(object_type: str | None) -> str:
    key = object_type.lower().strip() if isinstance(object_type, str) else object_type
    key = _ALIASES.get(key, key)
    if key not in RIGHTS:
        raise ValueError(f"unknown object type {object_type!r} (known: {', '.join(OBJECT_TYPES)})")
    return key


def map_generic(mask: int, object_type: str = "key") -> int:
    """Replace GENERIC_* bits by the type's specific rights (the kernel's RtlMapGenericMask)."""
    read, write, execute, all_ = GENERIC_MAPPING[_type(object_type)]
    out = mask & ~(GENERIC_READ | GENERIC_WRITE | GENERIC_EXECUTE | GENERIC_ALL)
    if mask & GENERIC_READ:
        out |= read
    if mask & GENERIC_WRITE:
        out |= write
    if mask & GENERIC_EXECUTE:
        out |= execute
    if mask & GENERIC_ALL:
        out |= all_
    return out


def _bit_names(object_type: str) -> list[tuple[str, int]]:
    names = list(RIGHTS[object_type].items()) + list(STANDARD.items()) + list(GENERIC.items())
    return sorted(names, key=lambda item: item[1])


def decode(mask: int, object_type: str = "key") -> list[str]:
    """Names for ``mask``, composites first: ``decode(0x20106) == ["KEY_WRITE", "KEY_WOW64_64KEY"]``.

    A composite is used when all its bits are in the mask and it names bits no earlier name
    covered (KEY_READ and KEY_WRITE share READ_CONTROL: ``0x2001F`` is ``KEY_READ | KEY_WRITE``);
    composites with the value of an earlier one (KEY_EXECUTE == KEY_READ) are skipped.  The
    remaining bits are named one by one, and bits with no name become one ``0x...`` item.
    """
    mask &= 0xFFFFFFFF
    kind = _type(object_type)
    names: list[str] = []
    covered = 0
    seen_values: set[int] = set()
    for name, value in COMPOSITES[kind].items():
        if value in seen_values:
            continue
        seen_values.add(value)
        if value and mask & value == value and value & ~covered:
            names.append(name)
            covered |= value
    rest = mask & ~covered
    for name, value in _bit_names(kind):
        if rest & value == value and value:
            names.append(name)
            rest &= ~value
    if rest:
        names.append(f"0x{rest:x}")
    return names


def format(mask: int | None, object_type: str = "key") -> str:
    """``format(0x20106) == "KEY_WRITE | KEY_WOW64_64KEY"``; 0 is ``"0"``, None is ``"?"``."""
    if mask is None:
        return "?"
    names = decode(mask, object_type)
    return " | ".join(names) if names else "0"


def specific_names(object_type: str = "key") -> dict[str, int]:
    """Every name parse() accepts for the type (upper case) -> value."""
    kind = _type(object_type)
    table: dict[str, int] = {}
    table.update(STANDARD)
    table.update(GENERIC)
    table.update(_STANDARD_COMPOSITES)
    table.update(RIGHTS[kind])
    table.update(COMPOSITES[kind])
    if kind == "file":
        table.update(_FILE_DIRECTORY_NAMES)
    table.update(_DOTNET.get(kind, {}))
    return table


# Words people type: read/write/execute/all map to the type's composite.
_WORDS = {"READ": 0, "WRITE": 1, "EXECUTE": 2, "EXEC": 2, "ALL": 3, "FULL": 3, "FULLCONTROL": 3}

# SDDL right aliases are accepted too ("KR", "KW", "KA", "GA"...).
_SDDL_RIGHTS = {
    "GA": GENERIC_ALL, "GR": GENERIC_READ, "GW": GENERIC_WRITE, "GX": GENERIC_EXECUTE,
    "RC": READ_CONTROL, "SD": DELETE, "WD": WRITE_DAC, "WO": WRITE_OWNER,
    "KA": KEY_ALL_ACCESS, "KR": KEY_READ, "KW": KEY_WRITE, "KX": KEY_EXECUTE,
    "FA": FILE_ALL_ACCESS, "FR": FILE_GENERIC_READ, "FW": FILE_GENERIC_WRITE, "FX": FILE_GENERIC_EXECUTE,
}

_NUMBER = re.compile(r"^(0x[0-9a-f]+|\d+)$", re.IGNORECASE)


def parse(text: str | int, object_type: str = "key") -> int:
    """An access mask from what a person typed.

    Accepts a number (``0x20106``, ``131078``), names joined by ``|``, ``,``, ``+`` or spaces
    (``KEY_WRITE|KEY_WOW64_64KEY``), names without the type prefix (``WRITE`` for KEY_WRITE is
    covered by the words below, ``SET_VALUE`` for KEY_SET_VALUE), the words ``read``, ``write``,
    ``execute``, ``all``/``full`` (the type's composite: KEY_READ, KEY_WRITE, ...), SDDL aliases
    (``KR``, ``KW``, ``GA``) and .NET RegistryRights names (``WriteKey``, ``FullControl``).
    Raises ValueError naming the part it does not know.
    """
    if isinstance(text, int):
        if not 0 <= text <= 0xFFFFFFFF:
            raise ValueError(f"access mask {text} is not a 32-bit value")
        return text
    kind = _type(object_type)
    parts = [p for p in re.split(r"[|,+\s]+", text.strip()) if p]
    if not parts:
        raise ValueError("an empty access mask")
    table = specific_names(kind)
    prefix = {"key": "KEY_", "file": "FILE_", "process": "PROCESS_", "alpc": "PORT_"}.get(kind, "")
    mask = 0
    for part in parts:
        upper = part.upper()
        if _NUMBER.match(part):
            value = int(part, 16) if upper.startswith("0X") else int(part)
            if value > 0xFFFFFFFF:
                raise ValueError(f"access mask {part} is not a 32-bit value")
            mask |= value
        elif upper in _WORDS:
            read, write, execute, all_ = GENERIC_MAPPING[kind]
            mask |= (read, write, execute, all_)[_WORDS[upper]]
        elif upper in table:
            mask |= table[upper]
        elif prefix and prefix + upper in table:
            mask |= table[prefix + upper]
        elif part in _SDDL_RIGHTS:
            mask |= _SDDL_RIGHTS[part]
        else:
            raise ValueError(f"unknown access right {part!r} for a {kind} (e.g. KEY_READ, 0x20019, read, write)")
    return mask
