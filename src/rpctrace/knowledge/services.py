"""Which Windows service a server process stands for, from its svchost command line.

``svchost.exe -k <Group> [-p] [-s <Service>]``: ``-k`` names a service *group* (the list of its
services is in the registry, ``HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Svchost``,
which a trace does not carry), ``-p`` turns on the group's process mitigation policy, and ``-s``
(Windows 10 1703 and later split most services into their own process) names the one service
the process hosts.  Options are case-insensitive and may start with ``/``; the program path may
be quoted.
"""

from __future__ import annotations

from dataclasses import dataclass

from rpctrace.knowledge import interfaces

__all__ = [
    "SvchostCommand",
    "is_svchost",
    "parse_svchost",
    "service_for",
    "services_of",
    "split_command_line",
    "svchost_group",
]


def split_command_line(command_line: str) -> list[str]:
    """Split as CommandLineToArgvW does: whitespace separates, double quotes group, ``2n``
    backslashes before a quote are ``n`` backslashes and the quote toggles grouping, ``2n+1``
    backslashes before a quote are ``n`` backslashes and a literal quote; other backslashes are
    kept."""
    args: list[str] = []
    cur: list[str] = []
    in_quotes = False
    have_arg = False
    i, n = 0, len(command_line)
    while i < n:
        c = command_line[i]
        if c == "\\":
            j = i
            while j < n and command_line[j] == "\\":
                j += 1
            count = j - i
            if j < n and command_line[j] == '"':
                cur.append("\\" * (count // 2))
                if count % 2:
                    cur.append('"')
                    i = j + 1
                else:
                    i = j
                have_arg = True
                continue
            cur.append("\\" * count)
            have_arg = True
            i = j
            continue
        if c == '"':
            if in_quotes and i + 1 < n and command_line[i + 1] == '"':
                cur.append('"')  # "" inside quotes: a literal quote
                i += 2
                continue
            in_quotes = not in_quotes
            have_arg = True
            i += 1
            continue
        if c in " \t\r\n" and not in_quotes:
            if have_arg:
                args.append("".join(cur))
                cur, have_arg = [], False
            i += 1
            continue
        cur.append(c)
        have_arg = True
        i += 1
    if have_arg:
        args.append("".join(cur))
    return args


def _basename(path: str | None) -> str:
    if not path:
        return ""
    return path.replace("/", "\\").rstrip("\\").rsplit("\\", 1)[-1].lower()


def _is_svchost_name(path: str | None) -> bool:
    return _basename(path) in ("svchost.exe", "svchost")


@dataclass(frozen=True)
class SvchostCommand:
    group: str | None
    service: str | None
    mitigations: bool  # -p


def parse_svchost(command_line: str | None) -> SvchostCommand | None:
    """The svchost options of ``command_line``; None when it is not an svchost command line."""
    if not command_line:
        return None
    args = split_command_line(command_line)
    if not args or not _is_svchost_name(args[0]):
        return None
    group = service = None
    mitigations = False
    i = 1
    while i < len(args):
        a = args[i]
        opt = a[1:].lower() if len(a) >= 2 and a[0] in "-/" else None
        if opt in ("k", "s") and i + 1 < len(args):
            if opt == "k":
                group = args[i + 1]
            else:
                service = args[i + 1]
            i += 2
            continue
        if opt == "p":
            mitigations = True
        i += 1
    return SvchostCommand(group, service, mitigations)


def services_of(command_line: str | None) -> list[str]:
    """The services a process's command line names: ``[Service]`` for ``svchost ... -s Service``,
    otherwise ``[]``.

    A bare ``svchost -k Group`` hosts *several* services of that group and the command line does
    not say which; use :func:`service_for` with the interface a call reached to pick the one.
    """
    parsed = parse_svchost(command_line)
    return [parsed.service] if parsed and parsed.service else []


def svchost_group(command_line: str | None) -> str | None:
    """``-k`` group of an svchost command line (``LocalServiceNetworkRestricted``), or None."""
    parsed = parse_svchost(command_line)
    return parsed.group if parsed else None


def is_svchost(image: str | None, command_line: str | None = None) -> bool:
    """Whether the process is an svchost (by image path, else by its command line's program)."""
    if image:
        return _is_svchost_name(image)
    return parse_svchost(command_line) is not None


def service_for(image: str | None, command_line: str | None, interface_uuid: str | None = None) -> str | None:
    """The service an RPC server process was acting as.

    1. ``-s Service`` on the command line: that service (the process hosts only it).
    2. Otherwise, for an svchost process: the service that owns ``interface_uuid`` in the
       interface database (e.g. ``svchost.exe -k LocalServiceNetworkRestricted -p`` serving
       35464382-ad29-4881-9392-b43e55b8f7ac -> ``Audiosrv``).  An svchost group hosts several
       services and ``-k`` does not say which one answered, so without ``-s`` the interface the
       call reached is the evidence; the answer is as good as the database entry (its build).
    3. Otherwise None: no service is claimed for processes that are not svchost (lsass.exe,
       services.exe, ...), even when the database lists a service for the interface.
    """
    named = services_of(command_line)
    if named:
        return named[0]
    if interface_uuid and is_svchost(image, command_line):
        entry = interfaces.info(interface_uuid)
        if entry is not None and entry.service:
            return entry.service
    return None
