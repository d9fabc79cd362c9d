"""What a key's DACL would hold with inheritance on: the parent's inheritable ACEs as Windows
propagates them (CREATOR OWNER and CREATOR GROUP replaced, inherit-only and no-propagate
honoured)."""

from __future__ import annotations

from dataclasses import replace

from rpctrace.knowledge import access
from rpctrace.security.check import (
    _GENERIC_BITS,
    CREATOR_GROUP,
    CREATOR_OWNER,
)
from rpctrace.security.model import (
    CONTAINER_INHERIT_ACE,
    INHERIT_ONLY_ACE,
    INHERITED_ACE,
    OBJECT_INHERIT_ACE,
    SE_DACL_AUTO_INHERITED,
    SE_DACL_PROTECTED,
    Ace,
    SecurityDescriptor,
    with_aces,
)

__all__ = [
    "enable_inheritance",
    "inherited_aces",
]

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


