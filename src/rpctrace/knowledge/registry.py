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
