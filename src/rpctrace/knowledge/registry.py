"""How registry paths are written: the kernel's NT names versus what people type."""

from __future__ import annotations

_ROOTS = (
    ("\\REGISTRY\\MACHINE", "HKLM"),
    ("\\REGISTRY\\USER", "HKU"),
)


def user_path(nt_path: str) -> str:
    """``\\REGISTRY\\MACHINE\\SOFTWARE\\X`` -> ``HKLM\\SOFTWARE\\X`` (other names unchanged).

    The comparison ignores case, as the registry does; the rest of the path keeps its case.
    """
    upper = nt_path.upper()
    for prefix, short in _ROOTS:
        if upper == prefix:
            return short
        if upper.startswith(prefix + "\\"):
            return short + nt_path[len(prefix):]
    return nt_path


def join(base: str, relative: str) -> str:
    """Join a base key name and a relative name as the kernel does for Create/Open."""
    if not base:
        return relative
    if not relative:
        return base
    return base.rstrip("\\") + "\\" + relative.lstrip("\\")


def is_absolute(name: str) -> bool:
    return name[:10].upper() == "\\REGISTRY\\" or name.upper() == "\\REGISTRY"


#: the hive file that holds a key, by the key's root (as `reg save` or a copy of the file gives it)
_HIVE_FILES = (
    ("HKLM\\SOFTWARE", "SOFTWARE"),
    ("HKLM\\SYSTEM", "SYSTEM"),
    ("HKLM\\SAM", "SAM"),
    ("HKLM\\SECURITY", "SECURITY"),
    ("HKCU", "NTUSER.DAT"),
    ("HKU", "NTUSER.DAT"),
    ("HKCR", "SOFTWARE"),
)


def hive_file(key_path: str) -> str | None:
    """The hive file a key lives in (``HKLM\\SYSTEM\\...`` -> ``SYSTEM``), or None for roots
    without a file of their own."""
    upper = user_path(key_path).upper().replace("/", "\\")
    for root, hive in _HIVE_FILES:
        if upper == root or upper.startswith(root + "\\"):
            return hive
    return None


def hive_option(key_path: str) -> str:
    """The ``--hive`` argument a person gives for ``key_path``'s descriptor (``--hive SYSTEM``)."""
    hive = hive_file(key_path)
    return f"--hive {hive}" if hive else "--hive <the hive file holding the key>"
