"""`rpctrace acl`: would these principals get this access to a registry key, which ACE decides,
and what change would grant it.

    rpctrace acl (--hive PATH KEYPATH | --sddl SDDL) --principal NAME|SID... [--access MASK|NAMES]
                 [--format text|json]

``--principal`` takes SIDs, SDDL aliases (BA, LS...), well-known names (LOCAL SERVICE, Everyone)
and ``NT SERVICE\\<name>``; list every SID of the token that matters (the service SID, the account,
its groups): only those are matched.  ``--access`` defaults to MAXIMUM_ALLOWED, which reports
what the principals get without asking for anything (and so proposes no fix); give the access the
failing call asked for (``0x20106``, ``KEY_WRITE|KEY_WOW64_64KEY``, ``write``) to get the verdict
and the fix.  With ``--hive`` the parent key's descriptor comes from the same hive, so a fix can
be "re-enable inheritance"; with ``--sddl`` give ``--parent-sddl`` for the same (an extension).
"""

from __future__ import annotations

import json
import sys

from rpctrace.commands import EXIT_OK
from rpctrace.errors import RpctraceError


def _safe(text: object) -> str:
    """Escape what came from a file (key names can hold control characters)."""
    s = str(text)
    return "".join(ch if ch.isprintable() or ch == " " else (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
                   for ch in s)


def _load(args):
    from rpctrace.explain.security import (
        SecurityDescriptorError,
        parse_binary,
        parse_sddl,
    )

    if args.hive:
        from rpctrace.sources.hive import open_hive

        hive_path, key_path = args.hive
        hive = open_hive(hive_path)
        raw = hive.key_security(key_path)
        try:
            sd = parse_binary(raw)
        except SecurityDescriptorError as exc:
            raise RpctraceError(f"{hive_path}: {key_path}: {exc}") from None
        parent = None
        parent_path = hive.parent_path(key_path)
        parent_error = None
        if parent_path:
            try:
                parent = parse_binary(hive.key_security(parent_path))
            except RpctraceError as exc:  # a damaged parent only costs the inheritance fix
                parent_error = str(exc)
        source = {"hive": hive_path, "key": key_path, "parent": parent_path, "hive_kind": hive.kind}
        if parent_error:
            source["parent_error"] = parent_error
        return sd, parent, key_path, source
    try:
        sd = parse_sddl(args.sddl)
    except SecurityDescriptorError as exc:
        raise RpctraceError(f"--sddl: {exc}") from None
    parent = None
    if args.parent_sddl:
        try:
            parent = parse_sddl(args.parent_sddl)
        except SecurityDescriptorError as exc:
            raise RpctraceError(f"--parent-sddl: {exc}") from None
    return sd, parent, args.key, {"sddl": args.sddl, "key": args.key}


def cmd_acl(args) -> int:
    from rpctrace.explain.access_check import evaluate, resolve_principals, suggest_fix
    from rpctrace.explain.security import SecurityDescriptorError, to_sddl
    from rpctrace.knowledge import access, sids

    try:
        principals = resolve_principals(args.principal)
    except ValueError as exc:
        raise RpctraceError(f"--principal: {exc}") from None
    try:
        desired = access.parse(args.access, "key")
    except ValueError as exc:
        raise RpctraceError(f"--access: {exc}") from None
    sd, parent, key_path, source = _load(args)
    verdict = evaluate(sd, principals, desired, "key")
    fix = suggest_fix(sd, parent, principals, desired, key_path, "key") if not verdict.allowed else None

    def sddl_of(d):
        if d is None:
            return None
        try:
            return to_sddl(d, "key")
        except SecurityDescriptorError as exc:
            return f"(no SDDL form: {exc.message})"

    out = sys.stdout
    if args.format == "json":
        doc = {
            "source": source,
            "sddl": sddl_of(sd),
            "parent_sddl": sddl_of(parent),
            "descriptor": sd.to_dict("key"),
            "access": verdict.to_dict(),
            "fix": fix.to_dict() if fix else None,
        }
        json.dump(doc, out, indent=2, ensure_ascii=True)
        out.write("\n")
        return EXIT_OK

    w = out.write
    if "hive" in source:
        w(f"key         {_safe(source['key'])}   (hive {_safe(source['hive'])}, {source['hive_kind'] or 'unknown kind'})\n")
    else:
        w(f"key         {_safe(source['key']) if source.get('key') else '(from --sddl)'}\n")
    w(f"sddl        {_safe(sddl_of(sd))}\n")
    if parent is not None:
        w(f"parent      {_safe(sddl_of(parent))}\n")
    elif source.get("parent_error"):
        w(f"parent      unreadable: {_safe(source['parent_error'])}\n")
    owner = sids.name_of(sd.owner) or sd.owner or "(none)"
    w(f"owner       {_safe(owner)}\n")
    if sd.dacl is None:
        dacl = "NULL (grants everything)" if sd.dacl_present else "absent (grants everything)"
    else:
        dacl = (("protected (inheritance off)" if sd.dacl_protected else "inherits from the parent")
                + f", {len(sd.dacl.aces)} ACE(s)")
    w(f"DACL        {dacl}\n")
    w("principals  " + ", ".join(_safe(f"{sids.name_of(p)} ({p})" if sids.name_of(p) else p) for p in principals) + "\n")
    w(f"access      0x{desired:x} = {access.format(desired, 'key')}")
    if verdict.requested != desired:
        w(f"; checked: {access.format(verdict.requested, 'key') if verdict.requested else 'maximum allowed'}")
    w("\n")
    w(f"verdict     {_safe(verdict.verdict)}\n")
    if verdict.aces:
        w("ACEs that apply:\n")
        for a in verdict.aces:
            mark = "*" if a in verdict.deciding else " "
            w(f"  {mark} #{a.index} {a.type:<5} {_safe(a.name or a.sid):<40} {access.format(a.mask, 'key'):<20} "
              f"{'inherited' if a.inherited else 'explicit':<9} {_safe(a.effect)}\n")
    for note in verdict.notes:
        w(f"note        {_safe(note)}\n")
    if fix is not None:
        w(f"fix         {_safe(fix.text)}\n")
        if fix.sddl_after:
            w(f"sddl after  {_safe(fix.sddl_after)}\n")
        w(f"after       {_safe(fix.effective.verdict)}\n")
        w("PowerShell (run elevated):\n")
        for line in fix.powershell.splitlines():
            w(f"  {_safe(line)}\n")
    elif not verdict.allowed:
        w("fix         none found that a DACL change can make\n")
    return EXIT_OK


def register(sub) -> None:
    p = sub.add_parser(
        "acl",
        help="check a registry key's ACL for a principal set and propose the fix",
        description="Evaluate a registry key's DACL (from a hive file or SDDL) for a set of principals and an "
                    "access mask, name the deciding ACEs, and propose the smallest fix with a PowerShell snippet.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--hive", nargs=2, metavar=("PATH", "KEYPATH"),
                     help="a hive file (SOFTWARE, SYSTEM, NTUSER.DAT...) and a key path (HKLM\\SOFTWARE\\...)")
    src.add_argument("--sddl", metavar="SDDL", help="the key's security descriptor as SDDL")
    p.add_argument("--parent-sddl", metavar="SDDL", help="with --sddl: the parent key's SDDL (for the inheritance fix)")
    p.add_argument("--key", metavar="KEYPATH", help="with --sddl: the key's path, for the PowerShell snippet")
    p.add_argument("--principal", action="extend", nargs="+", required=True, metavar="NAME|SID",
                   help="SIDs or names in the token (repeat or list several): NT SERVICE\\Audiosrv, 'LOCAL SERVICE', "
                        "S-1-5-19, BA, Everyone...")
    p.add_argument("--access", default="MAXIMUM_ALLOWED", metavar="MASK|NAMES",
                   help="the desired access: 0x20106, KEY_WRITE|KEY_WOW64_64KEY, read, write "
                        "(default MAXIMUM_ALLOWED: report what the principals get)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_run)


def _run(args) -> int:
    if args.hive is not None and (args.parent_sddl or args.key):
        raise RpctraceError("--parent-sddl and --key go with --sddl; with --hive they come from the hive")
    return cmd_acl(args)


__all__ = ["cmd_acl", "register"]
