"""Print what ``rpctrace acl`` found (the dict :func:`rpctrace.pipeline.acl_check` returns)."""

from __future__ import annotations

from typing import IO

from rpctrace.knowledge import access, sids


def _safe(text: object) -> str:
    """Escape what came from a file (key names can hold control characters)."""
    s = str(text)
    return "".join(ch if ch.isprintable() or ch == " " else (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
                   for ch in s)


def write_text(doc: dict, out: IO[str]) -> None:
    w = out.write
    source, desc, verdict, fix = doc["source"], doc["descriptor"], doc["access"], doc["fix"]
    if "hive" in source:
        w(f"key         {_safe(source['key'])}   (hive {_safe(source['hive'])}, {source['hive_kind'] or 'unknown kind'})\n")
    else:
        w(f"key         {_safe(source['key']) if source.get('key') else '(from --sddl)'}\n")
    w(f"sddl        {_safe(doc['sddl'])}\n")
    if doc.get("parent_sddl"):
        w(f"parent      {_safe(doc['parent_sddl'])}\n")
    elif source.get("parent_error"):
        w(f"parent      unreadable: {_safe(source['parent_error'])}\n")
    owner = desc.get("owner_name") or desc.get("owner") or "(none)"
    w(f"owner       {_safe(owner)}\n")
    state = verdict["dacl_state"]
    if state in ("null", "absent"):
        dacl = "NULL (grants everything)" if state == "null" else "absent (grants everything)"
    else:
        count = len(desc["dacl"]) if isinstance(desc.get("dacl"), list) else 0
        dacl = (("protected (inheritance off)" if verdict["dacl_protected"] else "inherits from the parent")
                + f", {count} ACE(s)")
    w(f"DACL        {dacl}\n")
    if doc.get("token"):
        w("token       " + (doc["source"].get("as") or "the service's process") + " holds:\n")
        for t in doc["token"]:
            w(f"              {_safe(t['name'] or t['sid'])} ({t['sid']}): {_safe(t['why'])}\n")
    w("principals  " + ", ".join(_safe(f"{sids.name_of(p)} ({p})" if sids.name_of(p) else p)
                                 for p in doc["principals"]) + "\n")
    desired = verdict["desired"]
    w(f"access      0x{desired:x} = {access.format(desired, 'key')}")
    if verdict["requested"] != desired:
        w(f"; checked: {access.format(verdict['requested'], 'key') if verdict['requested'] else 'maximum allowed'}")
    w("\n")
    w(f"verdict     {_safe(verdict['verdict'])}\n")
    if verdict["aces"]:
        deciding = set(verdict["deciding"])
        w("ACEs that apply:\n")
        for a in verdict["aces"]:
            mark = "*" if a["index"] in deciding else " "
            w(f"  {mark} #{a['index']} {a['type']:<5} {_safe(a['name'] or a['sid']):<40} "
              f"{access.format(a['mask'], 'key'):<20} {'inherited' if a['inherited'] else 'explicit':<9} "
              f"{_safe(a['effect'])}\n")
    for note in verdict["notes"]:
        w(f"note        {_safe(note)}\n")
    if fix is not None:
        w(f"fix         {_safe(fix['text'])}\n")
        if fix.get("dangerous"):
            w(f"DANGER      {_safe(fix['danger'])}\n")
            if fix.get("alternative"):
                w(f"safer       {_safe(fix['alternative'])}\n")
        if fix.get("sddl_after"):
            w(f"sddl after  {_safe(fix['sddl_after'])}\n")
        w(f"after       {_safe(fix['after']['verdict'])}\n")
        w("PowerShell (run elevated):\n")
        for line in (fix.get("powershell") or "").splitlines():
            w(f"  {_safe(line)}\n")
    elif not verdict["allowed"]:
        w("fix         none found that a DACL change can make\n")
