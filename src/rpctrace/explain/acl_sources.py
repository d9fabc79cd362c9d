"""Where a failing key's security descriptor comes from, and the ACL verdict on the failure.

ETW and Procmon record that an open failed, not the key's ACL: the person gives rpctrace the
descriptor, either as registry hives copied from the machine (``--hive SOFTWARE``) or as SDDL
(``--sddl KEYPATH=SDDL``, what ``Get-Acl`` prints as ``.Sddl``).  Given the key's descriptor and,
when known, its parent's, the verdict says which ACE decided and the fix says what change would
grant the request.

ETW does not record the desired access of a registry open.  When the source has none, the
verdict assumes the least the refused open must have asked for beyond what the principals hold:
KEY_WRITE when they already have KEY_READ (the open was refused, so it wanted more), else
KEY_READ; the finding says the desired access was assumed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rpctrace.errors import InputError
from rpctrace.security.check import evaluate
from rpctrace.security.fixes import suggest_fix
from rpctrace.security import SecurityDescriptor, SecurityDescriptorError, parse_binary, parse_sddl
from rpctrace.knowledge import access
from rpctrace.knowledge.registry import user_path

MAXIMUM_ALLOWED = 0x02000000


def _norm(path: str) -> str:
    return user_path(path.strip()).rstrip("\\").upper()


def parent_of(path: str) -> str | None:
    cut = path.rstrip("\\").rfind("\\")
    return path[:cut] if cut > 0 else None


#: ``KEYPATH=SDDL``: the key path ends at the ``=`` before the SDDL's first component (key names
#: may themselves hold ``=``; an SDDL string starts with ``O:``, ``G:``, ``D:`` or ``S:``)
_PAIR = re.compile(r"=(?=\s*[OGDS]:)")
_BARE = re.compile(r"^\s*[OGDS]:")


def split_sddl_pair(text: str) -> tuple[str | None, str]:
    """``KEYPATH=SDDL`` -> ``(KEYPATH, SDDL)``; a bare SDDL -> ``(None, SDDL)``."""
    if _BARE.match(text):
        return None, text.strip()
    m = _PAIR.search(text)
    if m is None:
        raise InputError("--sddl", f"expected KEYPATH=SDDL, got {text!r}")
    key, sddl = text[: m.start()].strip(), text[m.end():].strip()
    if not key or not sddl:
        raise InputError("--sddl", f"expected KEYPATH=SDDL, got {text!r}")
    return key, sddl


@dataclass
class Found:
    """A key's security descriptor and where it came from."""

    sd: SecurityDescriptor
    origin: str  # "sddl" or "hive PATH"
    sddl_text: str | None = None  # as the user typed it
    hive_path: str | None = None
    hive_kind: str | None = None
    full_path: str | None = None  # the key's path as the running system names it (from the hive)


class AclSources:
    """Security descriptors by key path, from SDDL given on the command line and from hives."""

    def __init__(self, hives: list[str] | None = None, sddl: dict[str, str] | None = None,
                 hive_logs: list[str] | None = None):
        self._sddl: dict[str, SecurityDescriptor] = {}
        self._text: dict[str, str] = {}
        for key, text in (sddl or {}).items():
            try:
                self._sddl[_norm(key)] = parse_sddl(text)
            except SecurityDescriptorError as exc:
                raise InputError(f"--sddl {key}", f"bad SDDL: {exc}") from None
            self._text[_norm(key)] = text
        self._hives = []
        #: what a person must know about the descriptors' sources (a dirty hive read as it is)
        self.warnings: list[str] = []
        import os

        logs_by_hive: dict[str, list[str]] = {}
        for log in hive_logs or []:
            stem = os.path.basename(log).rsplit(".", 1)[0].upper()
            logs_by_hive.setdefault(stem, []).append(log)
        for path in hives or []:
            from rpctrace.sources.hive import open_hive

            logs = logs_by_hive.pop(os.path.basename(path).upper(), None)
            hive = open_hive(path, logs)
            if hive.dirty and not hive.logs_applied:
                first, second = hive.sequences
                self.warnings.append(
                    f"{path}: the hive is dirty (sequence numbers {first} and {second} differ): changes in its "
                    f"transaction logs were not applied, so recent changes to keys may be missing; give them with "
                    f"--hive-log {os.path.basename(path)}.LOG1 --hive-log {os.path.basename(path)}.LOG2")
            self._hives.append(hive)
        for stem, logs in logs_by_hive.items():
            raise InputError(logs[0], f"no --hive file named {stem} for this transaction log (logs go with the hive "
                                      "of their name: SYSTEM.LOG1 with SYSTEM)")

    @classmethod
    def from_args(cls, hives: list[str], sddl_pairs: list[str], key: str | None = None,
                  hive_logs: list[str] | None = None) -> "AclSources":
        """From the ``--hive`` and ``--sddl KEYPATH=SDDL`` options; a bare ``--sddl SDDL`` is
        the descriptor of ``key`` (``rpctrace acl KEYPATH``), and an error where there is none."""
        sddl = {}
        for pair in sddl_pairs:
            name, text = split_sddl_pair(pair)
            if name is None:
                if key is None:
                    raise InputError("--sddl", f"expected KEYPATH=SDDL, got {pair!r}")
                name = key
            sddl[name] = text
        return cls(hives, sddl, hive_logs)

    @property
    def empty(self) -> bool:
        return not self._sddl and not self._hives

    def descriptor(self, key_path: str) -> tuple[SecurityDescriptor, str] | None:
        """The descriptor of ``key_path`` and where it came from, or None when rpctrace has none."""
        found = self.find(key_path)
        return (found.sd, found.origin) if found is not None else None

    def find(self, key_path: str) -> Found | None:
        """The descriptor of ``key_path`` with its origin, or None when rpctrace has none."""
        try:
            return self.require(key_path)
        except InputError:
            return None

    def require(self, key_path: str) -> Found:
        """The descriptor of ``key_path``; an InputError saying why when no source has it (the
        hive's own reason when one hive was given: wrong kind of hive, key not found, damage)."""
        norm = _norm(key_path)
        sd = self._sddl.get(norm)
        if sd is not None:
            return Found(sd, "sddl", sddl_text=self._text.get(norm))
        errors: list[InputError] = []
        for hive in self._hives:
            try:
                raw = hive.key_security(key_path)
            except InputError as exc:
                errors.append(exc)
                continue
            try:
                return Found(parse_binary(raw), f"hive {hive.path}", hive_path=hive.path, hive_kind=hive.kind,
                             full_path=hive.full_path(key_path))
            except SecurityDescriptorError as exc:
                errors.append(InputError(hive.path, f"{key_path}: {exc}"))
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise InputError(", ".join(e.path for e in errors), "; ".join(e.message for e in errors))
        raise InputError(key_path, "no security descriptor given for this key: pass --hive PATH or --sddl KEYPATH=SDDL")

    def parent_path(self, key_path: str) -> str | None:
        """The parent key's path (as the hive spells it when the key came from a hive)."""
        for hive in self._hives:
            try:
                hive.key_security(key_path)
            except InputError:
                continue
            return hive.parent_path(key_path)
        return parent_of(key_path)

    def verdict(self, failure: dict, principals: list[str]) -> dict | None:
        """ACL verdict and fix for a failing registry operation, or None without a descriptor."""
        if not failure.get("kind", "").startswith("registry.") or not failure.get("path"):
            return None
        path = failure["path"]
        found = self.descriptor(path)
        if found is None:
            return None
        sd, origin = found
        parent_path = parent_of(path)
        parent = self.descriptor(parent_path) if parent_path else None
        desired = failure.get("desired_access")
        assumed = desired is None
        held = evaluate(sd, principals, MAXIMUM_ALLOWED, "key")
        if desired is None:
            read = access.KEY_READ
            desired = access.KEY_WRITE if (held.granted & read) == read else read
        verdict = evaluate(sd, principals, desired, "key")
        fix = suggest_fix(sd, parent[0] if parent else None, principals, desired, path, "key")
        granted = held.granted
        if granted and (granted & ~access.KEY_READ) == 0:
            short = f"may only read ({access.format(granted, 'key')})"
        elif granted:
            short = f"is granted only {access.format(granted, 'key')} on"
        else:
            short = "is granted nothing on"
        acl = verdict.to_dict()
        acl.update(
            key=path,
            source=origin,
            sddl=self._text.get(_norm(path)) or _to_sddl(sd),
            parent_key=parent_path,
            parent_sddl=(self._text.get(_norm(parent_path)) or _to_sddl(parent[0])) if parent and parent_path else None,
            desired_assumed=assumed,
            held=granted,
            held_text=access.format(granted, "key"),
            short=short,
        )
        return {"acl": acl, "fix": fix.to_dict() if fix else None}


def _to_sddl(sd: SecurityDescriptor) -> str | None:
    from rpctrace.security import to_sddl

    try:
        return to_sddl(sd)
    except SecurityDescriptorError:
        return None
