#!/usr/bin/env python3
"""Regenerate rpctrace's packaged knowledge (src/rpctrace/knowledge/data/) from its sources.

Two outputs, both plain JSON, one entry per line so that a regeneration diffs readably:

``interfaces.json``
    RPC interface UUID -> name, module, service, Windows build, source, procedures {opnum: name},
    merged from the public interface databases in ``../shared/samples/rpc-databases`` (CyberArk
    RPCMon, Akamai rpc_toolkit; both Apache-2.0, attribution in NOTICE).
``codes.json.gz``
    NTSTATUS, Win32 (ERROR_*, RPC_S_*, RPC_X_*, EPT_S_*, WSA*, ...) and HRESULT names with short
    meanings, plus an NTSTATUS -> Win32 table, parsed from header text and message tables saved in
    ``tools/cache`` (see ``tools/cache/README.md`` for where each file comes from and its license).

Usage (from the repository root)::

    python tools/build_knowledge.py                      # = build: both files, from saved inputs
    python tools/build_knowledge.py build --samples DIR  # another rpc-databases folder
    python tools/build_knowledge.py build --out DIR      # write somewhere else (tests do this)
    python tools/build_knowledge.py build --only interfaces
    python tools/build_knowledge.py fetch                # re-download the code sources into tools/cache

``build`` reads only local files and is deterministic: running it twice, or on another machine,
gives byte-identical output.  ``fetch`` is the only step that needs the network (Debian's
archive through ``apt-get download`` and PyPI through ``pip download``); its results are the
files ``build`` reads.

Precedence for interfaces (first wins), stated once here and recorded in the output:

1. procedures, module and build come from the first *server-role* source that names at least
   one procedure, in this order: RPCMon Windows 10 1909 (a client build, like the machines the
   incidents come from, and the only source with service names), Akamai's PE scrape of a Windows
   client, Akamai Server 2022, Akamai Server 2012, Akamai's hand-named list.  Client-role entries
   (a DLL that only *calls* the interface) are never used for names or modules.
2. opnums past the end of that list are filled from the first later source whose list is longer
   (recorded as ``supplement`` with its own source and build), e.g. svcctl's last two opnums.
3. ``service`` comes from RPCMon whatever source gave the procedures.
4. ``name`` comes from the small curated table below (protocol names from the published [MS-*]
   documents, for interfaces whose data has no name or an unusual one), else from Akamai's
   hand-named list; otherwise it stays null.
"""

from __future__ import annotations

import argparse
import ast
import csv
import gzip
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SAMPLES = ROOT.parent / "shared" / "samples" / "rpc-databases"
DEFAULT_CACHE = ROOT / "tools" / "cache"
DEFAULT_OUT = ROOT / "src" / "rpctrace" / "knowledge" / "data"

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# --------------------------------------------------------------------------------------------
# Interface sources
# --------------------------------------------------------------------------------------------

AKAMAI = "akamai/akamai-security-research @a8ed272"
INTERFACE_SOURCES: dict[str, dict] = {
    "rpcmon-win10-1909": {
        "file": "RPC_UUID_Map_Windows10_1909_18363.1977.rpcdb.json",
        "title": "CyberArk RPCMon RPC UUID map",
        "origin": "cyberark/RPCMon @55086b4: DB/RPC_UUID_Map_Windows10_1909_18363.1977.rpcdb.json",
        "license": "Apache-2.0",
        "build": "Windows 10 1909 18363.1977",
    },
    "akamai-pe-scrape": {
        "file": "rpc_interfaces.json",
        "title": "Akamai rpc_toolkit PE RPC scraper output",
        "origin": f"{AKAMAI}: rpc_toolkit/pe_rpc_if_scraper/rpc_interfaces.json",
        "license": "Apache-2.0",
        "build": "Windows client (build not stated by the source)",
    },
    "akamai-server2022": {
        "file": "server22_raw_output.json",
        "title": "Akamai rpc_toolkit interface inventory, Windows Server 2022",
        "origin": f"{AKAMAI}: rpc_toolkit/rpc_interface_lists/server22_raw_output.json",
        "license": "Apache-2.0",
        "build": "Windows Server 2022",
    },
    "akamai-server2012": {
        "file": "server12_raw_output.json",
        "title": "Akamai rpc_toolkit interface inventory, Windows Server 2012",
        "origin": f"{AKAMAI}: rpc_toolkit/rpc_interface_lists/server12_raw_output.json",
        "license": "Apache-2.0",
        "build": "Windows Server 2012",
    },
    "akamai-server2022-registrations": {
        "file": "server22_rpc_servers_scrape.csv",
        "title": "Akamai rpc_toolkit RpcServerRegisterIf call sites, Windows Server 2022",
        "origin": f"{AKAMAI}: rpc_toolkit/rpc_interface_lists/server22_rpc_servers_scrape.csv",
        "license": "Apache-2.0",
        "build": "Windows Server 2022",
    },
    "akamai-known": {
        "file": "known_rpc_interfaces.py",
        "title": "Akamai rpc_toolkit hand-named interfaces (rpc_visibility)",
        "origin": f"{AKAMAI}: rpc_toolkit/rpc_visibility/etw_tracker/known_rpc_interfaces.py",
        "license": "Apache-2.0",
        "build": None,
    },
    "rpctrace-curated": {
        "file": None,
        "title": "rpctrace: protocol names from Microsoft's published [MS-*] documents",
        "origin": "tools/build_knowledge.py CURATED_NAMES",
        "license": "MIT",
        "build": None,
    },
}

#: order in which sources give procedures/module/build (server-role entries only)
PROCEDURE_PRECEDENCE = ["rpcmon-win10-1909", "akamai-pe-scrape", "akamai-server2022", "akamai-server2012", "akamai-known"]

#: uuid -> (name, basis).  Only where the data has no name or a non-standard one; everything else
#: takes Akamai's hand-named list.  Names are the ones Microsoft's protocol documents use.
CURATED_NAMES: dict[str, tuple[str, str]] = {
    "e1af8308-5d1f-11c9-91a4-08002b14a0fa": ("epmapper", "[MS-RPCE] endpoint mapper (ept_* procedures)"),
    "82273fdc-e32a-18c3-3f78-827929dc23ea": ("eventlog", "[MS-EVEN]"),
    "367abb81-9844-35f1-ad32-98f038001003": ("svcctl", "[MS-SCMR]"),
    "12345778-1234-abcd-ef00-0123456789ab": ("lsarpc", "[MS-LSAD]/[MS-LSAT]"),
    "12345778-1234-abcd-ef00-0123456789ac": ("samr", "[MS-SAMR]"),
    "12345678-1234-abcd-ef00-01234567cffb": ("netlogon", "[MS-NRPC] (Akamai's list says 'logon')"),
    "35464382-ad29-4881-9392-b43e55b8f7ac": (
        "AudioServer/PolicyConfig",
        "no published name; named after its procedures (AudioServer*, PolicyConfig*) in audiosrv.dll",
    ),
}

PLACEHOLDER_RE = re.compile(r"^Opnum\d+$")


def _norm_uuid(value: str) -> str | None:
    u = value.strip().strip("{}").lower()
    return u if UUID_RE.match(u) else None


def _clean_names(names) -> dict[int, str]:
    out: dict[int, str] = {}
    for opnum, name in enumerate(names or []):
        if isinstance(name, str):
            name = name.strip()
            if name and not PLACEHOLDER_RE.match(name):
                out[opnum] = name
    return out


def _read_rpcmon(path: Path) -> dict[str, dict]:
    data = json.loads(path.read_text(encoding="utf-8"))
    out = {}
    for key, v in data.items():
        u = _norm_uuid(v.get("InterfaceId") or key)
        if not u:
            continue
        out[u] = {
            "module": v.get("Module"),
            "service": v.get("Service"),
            "procedures": _clean_names(v.get("Procedures")),
            "count": len(v.get("Procedures") or []),
        }
    return out


def _read_akamai_scrape(path: Path) -> dict[str, dict]:
    """Server-role entries only; when several modules serve one uuid, the one naming the most
    procedures wins (ties: module name order)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    candidates: dict[str, list[tuple[int, str, dict]]] = {}
    for module, ifs in data.items():
        for key, v in ifs.items():
            u = _norm_uuid(key)
            if not u or not isinstance(v, dict) or v.get("role") != "server":
                continue
            procs = _clean_names(v.get("function_names"))
            candidates.setdefault(u, []).append(
                (len(procs), module, {"module": module, "procedures": procs, "count": len(v.get("function_names") or [])})
            )
    out = {}
    for u, items in candidates.items():
        items.sort(key=lambda t: (-t[0], t[1].lower()))
        out[u] = items[0][2]
    return out


def _read_registrations(path: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            u = _norm_uuid(row.get("interface_uuid") or "")
            if u and u not in out:
                out[u] = {"module": row.get("dll_name") or None, "procedures": {}, "count": 0}
    return out


def _read_known(path: Path) -> dict[str, dict]:
    """The ``known_interfaces = {...}`` literal, read with ast (never executed)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    literal = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "known_interfaces" for t in node.targets):
            literal = ast.literal_eval(node.value)
    if literal is None:
        raise SystemExit(f"{path}: no known_interfaces literal")
    out = {}
    for key, v in literal.items():
        u = _norm_uuid(key)
        if not u:
            continue
        name = (v.get("interface_name") or "").strip() or None
        out[u] = {"name": name, "module": None, "procedures": _clean_names(v.get("functions")),
                  "count": len(v.get("functions") or [])}
    return out


def build_interfaces(samples: Path) -> dict:
    raw: dict[str, dict[str, dict]] = {
        "rpcmon-win10-1909": _read_rpcmon(samples / INTERFACE_SOURCES["rpcmon-win10-1909"]["file"]),
        "akamai-pe-scrape": _read_akamai_scrape(samples / INTERFACE_SOURCES["akamai-pe-scrape"]["file"]),
        "akamai-server2022": _read_akamai_scrape(samples / INTERFACE_SOURCES["akamai-server2022"]["file"]),
        "akamai-server2012": _read_akamai_scrape(samples / INTERFACE_SOURCES["akamai-server2012"]["file"]),
        "akamai-server2022-registrations": _read_registrations(
            samples / INTERFACE_SOURCES["akamai-server2022-registrations"]["file"]),
        "akamai-known": _read_known(samples / INTERFACE_SOURCES["akamai-known"]["file"]),
    }
    all_uuids = sorted(set().union(*[set(d) for d in raw.values()]) | set(CURATED_NAMES))
    interfaces = {}
    for u in all_uuids:
        entry = {"name": None, "module": None, "service": None, "build": None, "source": None, "procedures": {}}
        primary = None
        for sid in PROCEDURE_PRECEDENCE:
            rec = raw[sid].get(u)
            if rec and rec["procedures"]:
                primary = sid
                break
        if primary:
            rec = raw[primary][u]
            entry["procedures"] = dict(rec["procedures"])
            entry["module"] = rec.get("module")
            entry["build"] = INTERFACE_SOURCES[primary]["build"]
            entry["source"] = primary
            length = rec["count"]
            for sid in PROCEDURE_PRECEDENCE[PROCEDURE_PRECEDENCE.index(primary) + 1:]:
                other = raw[sid].get(u)
                if other and other["count"] > length and any(k >= length for k in other["procedures"]):
                    for k, name in other["procedures"].items():
                        if k >= length:
                            entry["procedures"][k] = name
                    entry["supplement"] = {"source": sid, "build": INTERFACE_SOURCES[sid]["build"], "from_opnum": length}
                    break
        if entry["module"] is None:
            for sid in PROCEDURE_PRECEDENCE[:-1] + ["akamai-server2022-registrations"]:
                rec = raw[sid].get(u)
                if rec and rec.get("module"):
                    entry["module"] = rec["module"]
                    if entry["source"] is None:
                        entry["source"] = sid
                        entry["build"] = INTERFACE_SOURCES[sid]["build"]
                    break
        rpcmon = raw["rpcmon-win10-1909"].get(u)
        if rpcmon and rpcmon.get("service"):
            entry["service"] = rpcmon["service"]
        known = raw["akamai-known"].get(u)
        if u in CURATED_NAMES:
            entry["name"] = CURATED_NAMES[u][0]
            entry["name_source"] = "rpctrace-curated"
        elif known and known.get("name"):
            entry["name"] = known["name"]
            entry["name_source"] = "akamai-known"
        if entry["source"] is None:
            entry["source"] = entry.get("name_source")
        entry["seen_in"] = [sid for sid in INTERFACE_SOURCES if sid in raw and u in raw[sid]]
        entry["procedures"] = {str(k): entry["procedures"][k] for k in sorted(entry["procedures"])}
        interfaces[u] = entry
    sources = {sid: {k: v for k, v in meta.items() if k != "file"} for sid, meta in INTERFACE_SOURCES.items()}
    sources["rpctrace-curated"]["names"] = {u: {"name": n, "basis": b} for u, (n, b) in sorted(CURATED_NAMES.items())}
    return {
        "format": "rpctrace-rpcdb",
        "version": 1,
        "generated_by": "tools/build_knowledge.py",
        "precedence": {
            "procedures": PROCEDURE_PRECEDENCE,
            "roles": "server-role entries only",
            "service": "rpcmon-win10-1909",
            "name": ["rpctrace-curated", "akamai-known"],
        },
        "sources": sources,
        "interfaces": interfaces,
    }


# --------------------------------------------------------------------------------------------
# Status code sources
# --------------------------------------------------------------------------------------------

CODE_SOURCES = {
    "mingw-w64": {
        "title": "mingw-w64 10.0.0 headers include/ntstatus.h and include/winerror.h (names and values)",
        "origin": "Debian bookworm package mingw-w64-common 10.0.0-3: /usr/share/mingw-w64/include/",
        "license": "public domain (file headers: 'no copyright assigned and is placed in the Public Domain')",
        "files": ["mingw-w64-10.0.0/ntstatus.h.gz", "mingw-w64-10.0.0/winerror.h.gz"],
    },
    "ms-erref-impacket": {
        "title": "[MS-ERREF] messages as tabulated by Impacket 0.13.1 (nt_errors.py, system_errors.py, hresult_errors.py)",
        "origin": "PyPI impacket 0.13.1 (wheel), modules impacket/{nt,system,hresult}_errors.py",
        "license": "Apache Software License 1.1 (modified by Fortra); see tools/cache/impacket-0.13.1/LICENSE",
        "files": ["impacket-0.13.1/nt_errors.py.gz", "impacket-0.13.1/system_errors.py.gz",
                  "impacket-0.13.1/hresult_errors.py.gz"],
    },
    "wine-ntstatus-map": {
        "title": "NTSTATUS -> Win32 pairs of RtlNtStatusToDosError, transcribed (facts only) from Wine",
        "origin": "wine-mirror/wine @04f9f1b06690f0dbfdde85a0f16a40f166113666: dlls/ntdll/error.c",
        "license": "facts from an LGPL-2.1+ file; no text of it is kept",
        "files": ["ntstatus_to_win32.tsv"],
    },
}

DEFINE_RE = re.compile(r"^\s*#\s*define\s+([A-Za-z_][A-Za-z0-9_]*)\s+(.+?)\s*(?://.*|/\*.*)?$")
NUM_RE = re.compile(r"^(0[xX][0-9A-Fa-f]+|\d+)[uUlL]*$")
WRAPPERS = ("_HRESULT_TYPEDEF_", "__MSABI_LONG", "_NDIS_ERROR_TYPEDEF_", "__NDIS_ERROR_TYPEDEF__")
CASTS = re.compile(r"\(\s*(?:NTSTATUS|HRESULT|SCODE|DWORD|LONG|ULONG|long|unsigned\s+long|int)\s*\)")


def parse_defines(text: str) -> list[tuple[str, str]]:
    """Every object-like ``#define NAME value`` (function-like macros skipped), in file order."""
    out = []
    for line in text.splitlines():
        m = DEFINE_RE.match(line)
        if m:
            name, expr = m.groups()
            if expr.endswith("\\"):
                continue
            out.append((name, expr.strip()))
    return out


class _Unknown(Exception):
    pass


def evaluate(expr: str, env: dict[str, int]) -> int:
    """Value of a header expression: numbers (hex/decimal, L/U suffixes), casts, the
    _HRESULT_TYPEDEF_/__MSABI_LONG wrappers, names already defined, + | << and
    HRESULT_FROM_WIN32/HRESULT_FROM_NT of those.  Anything else raises _Unknown."""
    s = CASTS.sub(" ", expr)
    for w in WRAPPERS:
        s = s.replace(w, " ")
    tokens = re.findall(r"0[xX][0-9A-Fa-f]+[uUlL]*|\d+[uUlL]*|[A-Za-z_][A-Za-z0-9_]*|<<|[()+|~-]", s)
    if "".join(tokens).replace(" ", "") != re.sub(r"\s+", "", s):
        raise _Unknown(expr)
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def atom() -> int:
        t = take() if peek() is not None else None
        if t is None:
            raise _Unknown(expr)
        if t == "(":
            v = orexpr()
            if take() != ")":
                raise _Unknown(expr)
            return v
        if t == "-":
            return -atom()
        if NUM_RE.match(t):
            return int(re.sub(r"[uUlL]+$", "", t), 0)
        if t in ("HRESULT_FROM_WIN32", "__HRESULT_FROM_WIN32", "HRESULT_FROM_NT") and peek() == "(":
            take()
            v = orexpr()
            if take() != ")":
                raise _Unknown(expr)
            if t == "HRESULT_FROM_NT":
                return (v | 0x10000000) & 0xFFFFFFFF
            return v if v <= 0 else ((v & 0xFFFF) | (7 << 16) | 0x80000000)
        if t in env:
            return env[t]
        raise _Unknown(expr)

    def shift() -> int:
        v = atom()
        while peek() in ("+", "<<"):
            op = take()
            r = atom()
            v = v + r if op == "+" else v << r
        return v

    def orexpr() -> int:
        v = shift()
        while peek() == "|":
            take()
            v |= shift()
        return v

    value = orexpr()
    if pos != len(tokens):
        raise _Unknown(expr)
    return value & 0xFFFFFFFF


NOT_CODES = re.compile(
    r"^(_|FACILITY_|FACILTIY_|STATUS_SEVERITY_|SEVERITY_|ERROR_SEVERITY_|APPLICATION_ERROR_MASK|"
    r"NOERROR$|WINAPI_FAMILY|HRESULT_|NTSTATUS_|.*_BASE$|.*BASEERR$|.*_MASK$|.*_LAST$|.*_FIRST$)"
)


def classify_header(defines: list[tuple[str, str]], header: str) -> list[tuple[str, str, int]]:
    """(kind, name, value) in file order; kind is 'ntstatus', 'win32' or 'hresult'."""
    env: dict[str, int] = {}
    kinds: dict[str, str] = {}
    out = []
    for name, expr in defines:
        try:
            value = evaluate(expr, env)
        except _Unknown:
            continue
        env[name] = value
        if NOT_CODES.match(name):
            continue
        if header == "ntstatus":
            if "NTSTATUS" not in expr:
                continue
            kind = "ntstatus"
        else:
            refs = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", CASTS.sub(" ", expr))
            if any(w in expr for w in ("_HRESULT_TYPEDEF_", "(HRESULT)", "(SCODE)", "HRESULT_FROM_")):
                kind = "hresult"
            elif len(refs) == 1 and refs[0] in kinds:
                kind = kinds[refs[0]]  # plain alias: DS_S_SUCCESS NO_ERROR
            elif value <= 0xFFFF:
                kind = "win32"
            else:
                continue
        kinds[name] = kind
        out.append((kind, name, value))
    return out


def read_message_table(text: str) -> list[tuple[int, str, str]]:
    """Impacket's ``ERROR_MESSAGES = {code: (NAME, message), ...}``, every pair (duplicate keys
    kept), read with ast (never executed)."""
    tree = ast.parse(text)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "ERROR_MESSAGES" for t in node.targets):
            out = []
            for k, v in zip(node.value.keys, node.value.values):
                code = ast.literal_eval(k)
                name, message = ast.literal_eval(v)
                out.append((code & 0xFFFFFFFF, name.strip(), message))
            return out
    raise SystemExit("no ERROR_MESSAGES table")


TITLE_RE = re.compile(r"^\s*\{([^}]*)\}\s*")
SENTENCE_RE = re.compile(r"^(.+?[.!?])(?=\s+[A-Z{(\"']|\s*$)", re.DOTALL)


def short_meaning(message: str | None) -> str | None:
    """First sentence, without the '{Title}' prefix (the title alone when nothing follows it)."""
    if not message:
        return None
    text = " ".join(message.split())
    title = None
    m = TITLE_RE.match(text)
    if m:
        title = m.group(1).strip()
        text = text[m.end():]
    if not text:
        return title or None
    m = SENTENCE_RE.match(text)
    first = m.group(1) if m else text
    return first.strip()


GENERIC_HRESULT = re.compile(r"^[SE]_[A-Z]")


def _gz_text(path: Path) -> str:
    return gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")


def build_codes(cache: Path, log=print) -> dict:
    tables: dict[str, dict[int, list[str]]] = {"ntstatus": {}, "win32": {}, "hresult": {}}
    name_value: dict[str, dict[str, int]] = {"ntstatus": {}, "win32": {}, "hresult": {}}
    for header in ("ntstatus", "winerror"):
        text = _gz_text(cache / f"mingw-w64-10.0.0/{header}.h.gz")
        for kind, name, value in classify_header(parse_defines(text), header):
            tables[kind].setdefault(value, [])
            if name not in tables[kind][value]:
                tables[kind][value].append(name)
            name_value[kind].setdefault(name, value)

    messages: dict[str, dict[int, list[tuple[str, str]]]] = {"ntstatus": {}, "win32": {}, "hresult": {}}
    for kind, fname in (("ntstatus", "nt_errors.py"), ("win32", "system_errors.py"), ("hresult", "hresult_errors.py")):
        for code, name, message in read_message_table(_gz_text(cache / f"impacket-0.13.1/{fname}.gz")):
            messages[kind].setdefault(code, []).append((name, message))

    conflicts = 0
    out: dict[str, dict[str, dict]] = {}
    for kind in ("ntstatus", "win32", "hresult"):
        entries: dict[int, dict] = {}
        values = sorted(set(tables[kind]) | set(messages[kind]))
        for value in values:
            names = list(tables[kind].get(value, []))
            msgs = messages[kind].get(value, [])
            for mname, _ in msgs:
                if mname in name_value[kind] and name_value[kind][mname] != value:
                    conflicts += 1
                    log(f"conflict: {mname} is 0x{name_value[kind][mname]:08x} in the header, 0x{value:08x} in [MS-ERREF]")
                    continue
                if mname not in names and re.match(r"^[A-Z][A-Z0-9_]*$", mname):
                    names.append(mname)
            if not names:
                continue
            erref_names = [m for m, _ in msgs]
            primary = min(names, key=lambda n: (
                0 if (kind == "hresult" and GENERIC_HRESULT.match(n)) else 1,
                0 if n in erref_names else 1,
                names.index(n),
            ))
            message = None
            for mname, msg in msgs:
                if mname == primary:
                    message = msg
            if message is None and msgs:
                message = msgs[0][1]
            entry = {"name": primary}
            meaning = short_meaning(message)
            if meaning:
                entry["meaning"] = meaning
            aliases = [n for n in names if n != primary]
            if aliases:
                entry["aliases"] = aliases
            entries[value] = entry
        if kind == "win32":
            out[kind] = {str(v): entries[v] for v in sorted(entries)}
        else:
            out[kind] = {f"0x{v:08x}": entries[v] for v in sorted(entries)}

    # NTSTATUS -> Win32
    nt_by_name = {n: v for v, e in ((int(k, 16), e) for k, e in out["ntstatus"].items())
                  for n in [e["name"], *e.get("aliases", [])]}
    w32_by_name = {n: int(k) for k, e in out["win32"].items() for n in [e["name"], *e.get("aliases", [])]}
    mapping: dict[int, tuple[int, str]] = {}
    unresolved = []
    for line in (cache / "ntstatus_to_win32.tsv").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        status_name, win32_name = line.split("\t")
        if status_name not in nt_by_name or win32_name not in w32_by_name:
            unresolved.append(line.replace("\t", " -> "))
            continue
        mapping.setdefault(nt_by_name[status_name], (w32_by_name[win32_name], "wine-ntstatus-map"))
    for name, value in sorted(nt_by_name.items()):
        for prefix, targets in (("RPC_NT_", ("RPC_S_", "RPC_X_")), ("EPT_NT_", ("EPT_S_",))):
            if name.startswith(prefix) and value not in mapping:
                for t in targets:
                    w = w32_by_name.get(t + name[len(prefix):])
                    if w is not None:
                        mapping[value] = (w, "by-name")
                        break
    for u in unresolved:
        log(f"ntstatus_to_win32.tsv: unresolved {u}")
    log(f"codes: ntstatus {len(out['ntstatus'])}, win32 {len(out['win32'])}, hresult {len(out['hresult'])}, "
        f"nt->win32 {len(mapping)}, conflicts {conflicts}, unresolved mappings {len(unresolved)}")
    return {
        "format": "rpctrace-codes",
        "version": 1,
        "generated_by": "tools/build_knowledge.py",
        "sources": {k: {kk: vv for kk, vv in v.items() if kk != "files"} for k, v in CODE_SOURCES.items()},
        "notes": {
            "names": "values and names from the headers; [MS-ERREF] adds names the headers lack and the meanings",
            "meaning": "first sentence of the [MS-ERREF] message, without its {Title}",
            "nt_to_win32": "[win32, source]; source 'by-name' means RPC_NT_X/EPT_NT_X -> RPC_S_X, RPC_X_X or EPT_S_X",
        },
        "ntstatus": out["ntstatus"],
        "win32": out["win32"],
        "hresult": out["hresult"],
        "nt_to_win32": {f"0x{k:08x}": [v, src] for k, (v, src) in sorted(mapping.items())},
    }


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

def dumps(doc: dict) -> str:
    """JSON with one line per entry of each top-level mapping (stable and diff-friendly)."""
    parts = ["{"]
    items = list(doc.items())
    for i, (key, value) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if isinstance(value, dict) and value and all(isinstance(v, (dict, list)) for v in value.values()):
            parts.append(f" {json.dumps(key)}: {{")
            sub = list(value.items())
            for j, (k, v) in enumerate(sub):
                c = "," if j < len(sub) - 1 else ""
                parts.append(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False, separators=(', ', ': '))}{c}")
            parts.append(f" }}{comma}")
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}{comma}")
    parts.append("}")
    return "\n".join(parts) + "\n"


def build(samples: Path, cache: Path, out: Path, only: str | None = None, log=print) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if only in (None, "interfaces"):
        doc = build_interfaces(samples)
        path = out / "interfaces.json"
        path.write_text(dumps(doc), encoding="utf-8")
        n_proc = sum(len(e["procedures"]) for e in doc["interfaces"].values())
        log(f"interfaces: {len(doc['interfaces'])} interfaces, {n_proc} procedure names -> {path}")
        written.append(path)
    if only in (None, "codes"):
        doc = build_codes(cache, log=log)
        path = out / "codes.json.gz"
        # ~1 MB as text, so packaged compressed; mtime=0 keeps the bytes reproducible
        path.write_bytes(gzip.compress(dumps(doc).encode("utf-8"), 9, mtime=0))
        log(f"codes -> {path}")
        written.append(path)
    return written


def fetch(cache: Path, log=print) -> None:
    """Download the code sources again (needs apt-get and pip reaching their registries)."""
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        subprocess.run(["apt-get", "download", "mingw-w64-common=10.0.0-3"], cwd=t, check=True)
        deb = next(t.glob("mingw-w64-common_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(t / "x")], check=True)
        dest = cache / "mingw-w64-10.0.0"
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("ntstatus.h", "winerror.h"):
            data = (t / "x/usr/share/mingw-w64/include" / name).read_bytes()
            (dest / f"{name}.gz").write_bytes(gzip.compress(data, 9, mtime=0))
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(t), "impacket==0.13.1"],
                       check=True)
        wheel = next(t.glob("impacket-0.13.1-*.whl"))
        dest = cache / "impacket-0.13.1"
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as zf:
            for name in ("nt_errors.py", "system_errors.py", "hresult_errors.py"):
                (dest / f"{name}.gz").write_bytes(gzip.compress(zf.read(f"impacket/{name}"), 9, mtime=0))
            lic = [n for n in zf.namelist() if n.endswith("LICENSE")]
            if lic:
                (dest / "LICENSE").write_bytes(zf.read(lic[0]))
    log(f"fetched into {cache}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", nargs="?", default="build", choices=["build", "fetch"])
    ap.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES, help="the rpc-databases folder")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="saved header/message inputs")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON files")
    ap.add_argument("--only", choices=["interfaces", "codes"], help="build one file only")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    log = (lambda *a, **k: None) if args.quiet else (lambda *a, **k: print(*a, file=sys.stderr, **k))
    if args.command == "fetch":
        fetch(args.cache, log=log)
        return 0
    build(args.samples, args.cache, args.out, args.only, log=log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
