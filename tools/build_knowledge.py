#!/usr/bin/env python3
"""Regenerate rpctrace's packaged knowledge (src/rpctrace/knowledge/data/) from its sources.

Two outputs, both JSON with one entry per line (so that a regeneration diffs readably), gzipped
with a fixed timestamp (so that the bytes are reproducible):

``interfaces.json.gz``
    RPC interface UUID -> name, version, specification, module, service, build, procedures
    {opnum: name}, and which source gave each of them.  Sources (details in NOTICE):

    * Microsoft's Open Specifications: every interface of their IDL appendices, with its
      methods in opnum order (``tools/data/ms-specs.tsv``, ``ms-specs-index.tsv``);
    * the public interface databases scraped from Windows binaries in
      ``../shared/samples/rpc-databases`` (CyberArk RPCMon, Akamai rpc_toolkit; Apache-2.0);
    * Zeek's DCE-RPC constants (``tools/data/zeek-dce-rpc.tsv``, BSD-3-Clause), the interface
      names of Microsoft support's WMIRPC-TraceParse.ps1 (``tools/data/wmirpc-traceparse.tsv``),
      single names from other public work (``tools/data/named-interfaces.tsv``), and Akamai's
      hand-named list.

    ``tools/extract_interface_facts.py`` made the ``tools/data`` tables from snapshots of those
    repositories; this build reads only the tables and the samples, never the network.
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

Precedence for interfaces, stated once here and recorded in the output (``precedence``):

1. **Procedures**: the specification's method name for every opnum it names (placeholders such
   as ``Opnum3NotUsedOnWire`` or ``Reserved2`` name nothing); then, for the opnums still unnamed
   (placeholders, opnums past the specification's end, interfaces no specification has), the
   names scraped from Windows binaries: the first *server-role* source naming procedures, in the
   order RPCMon Windows 10 1909 (a client build like the machines incidents come from), Akamai's
   PE scrape of a Windows client, Akamai Server 2022, Akamai Server 2012; opnums past the end of
   its list come from the first later source of the *same module* whose list is longer.  When the
   binary sources name different modules for one UUID (a client DLL registering a callback under
   the server's UUID, e.g. sspicli.dll for sspirpc), the module naming the most procedures is the
   server.  Last come Zeek's operation names and Akamai's hand-named list.  Client-role entries
   (a DLL that only *calls* the interface) never give names or modules.  ``procedure_sources``
   says which source named which opnums.
2. **Interface name**: a short curated table (``CURATED_NAMES``: the name every RPC tool uses
   where the specification's IDL name differs, e.g. netlogon for the IDL's ``logon``), then the
   specification's IDL name, then Zeek, then the single names of ``named-interfaces.tsv``, then
   WMIRPC-TraceParse.ps1, then Akamai's hand-named list.  Names keep the case their source gives
   (Akamai's list is lower-case; it comes last).  ``name_source`` says which source named it.
   An interface whose procedures are named but whom no source names gets a *derived* name (the
   common prefix of its procedure names, else its module), marked ``name_source:
   rpctrace-derived``, so that every named procedure has a named interface.  The names other
   sources give (case-insensitively different) are kept as ``aliases``.
3. ``service`` comes from RPCMon; ``module`` from the source that gave the binary procedure
   names, else the first binary source that lists the interface.
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
DEFAULT_DATA = ROOT / "tools" / "data"
DEFAULT_OUT = ROOT / "src" / "rpctrace" / "knowledge" / "data"

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# --------------------------------------------------------------------------------------------
# Interface sources
# --------------------------------------------------------------------------------------------

AKAMAI = "akamai/akamai-security-research @a8ed272"
SPEC_SECTION = "Appendix A: Full IDL"
INTERFACE_SOURCES: dict[str, dict] = {
    "rpcmon-win10-1909": {
        "file": "RPC_UUID_Map_Windows10_1909_18363.1977.rpcdb.json",
        "kind": "binaries",
        "title": "CyberArk RPCMon RPC UUID map",
        "origin": "cyberark/RPCMon @55086b4: DB/RPC_UUID_Map_Windows10_1909_18363.1977.rpcdb.json",
        "license": "Apache-2.0",
        "build": "Windows 10 1909 18363.1977",
    },
    "akamai-pe-scrape": {
        "file": "rpc_interfaces.json",
        "kind": "binaries",
        "title": "Akamai rpc_toolkit PE RPC scraper output",
        "origin": f"{AKAMAI}: rpc_toolkit/pe_rpc_if_scraper/rpc_interfaces.json",
        "license": "Apache-2.0",
        "build": "Windows client (build not stated by the source)",
    },
    "akamai-server2022": {
        "file": "server22_raw_output.json",
        "kind": "binaries",
        "title": "Akamai rpc_toolkit interface inventory, Windows Server 2022",
        "origin": f"{AKAMAI}: rpc_toolkit/rpc_interface_lists/server22_raw_output.json",
        "license": "Apache-2.0",
        "build": "Windows Server 2022",
    },
    "akamai-server2012": {
        "file": "server12_raw_output.json",
        "kind": "binaries",
        "title": "Akamai rpc_toolkit interface inventory, Windows Server 2012",
        "origin": f"{AKAMAI}: rpc_toolkit/rpc_interface_lists/server12_raw_output.json",
        "license": "Apache-2.0",
        "build": "Windows Server 2012",
    },
    "akamai-server2022-registrations": {
        "file": "server22_rpc_servers_scrape.csv",
        "kind": "binaries",
        "title": "Akamai rpc_toolkit RpcServerRegisterIf call sites, Windows Server 2022",
        "origin": f"{AKAMAI}: rpc_toolkit/rpc_interface_lists/server22_rpc_servers_scrape.csv",
        "license": "Apache-2.0",
        "build": "Windows Server 2022",
    },
    "zeek": {
        "data": "zeek-dce-rpc.tsv",
        "kind": "other",
        "title": "Zeek DCE-RPC constants (uuid_endpoint_map, operations)",
        "origin": "zeek/zeek @a13de64fbbdb: scripts/base/protocols/dce-rpc/consts.zeek, via tools/data/zeek-dce-rpc.tsv",
        "license": "BSD-3-Clause",
        "build": None,
    },
    "named-interfaces": {
        "data": "named-interfaces.tsv",
        "kind": "other",
        "title": "Single interface names from public work (each row names its origin and licence)",
        "origin": "tools/data/named-interfaces.tsv",
        "license": "per row (MIT)",
        "build": None,
    },
    "wmirpc-traceparse": {
        "data": "wmirpc-traceparse.tsv",
        "kind": "other",
        "title": "Interface names of WMIRPC-TraceParse.ps1 (Gianni Bragante, Microsoft support)",
        "origin": "gbragante/WMI-Scripts @a8cede07dc56: WMI-TraceParse/WMIRPC-TraceParse.ps1 ($htGUID), "
                  "via tools/data/wmirpc-traceparse.tsv",
        "license": "none stated; UUID -> name facts only",
        "build": None,
    },
    "akamai-known": {
        "file": "known_rpc_interfaces.py",
        "kind": "other",
        "title": "Akamai rpc_toolkit hand-named interfaces (rpc_visibility)",
        "origin": f"{AKAMAI}: rpc_toolkit/rpc_visibility/etw_tracker/known_rpc_interfaces.py",
        "license": "Apache-2.0",
        "build": None,
    },
    "rpctrace-curated": {
        "kind": "curated",
        "title": "rpctrace: the names every RPC tool uses where the specification's IDL name differs",
        "origin": "tools/build_knowledge.py CURATED_NAMES",
        "license": "MIT",
        "build": None,
    },
    "rpctrace-derived": {
        "kind": "derived",
        "title": "rpctrace: no source names the interface; named after its procedures' common prefix, "
                 "else its module",
        "origin": "tools/build_knowledge.py derived_name()",
        "license": "MIT",
        "build": None,
    },
}
#: binary sources, in the order they give procedures/module/build (server-role entries only)
BINARY_PRECEDENCE = ["rpcmon-win10-1909", "akamai-pe-scrape", "akamai-server2022", "akamai-server2012"]
#: after the specifications and the binaries
OTHER_PROCEDURE_PRECEDENCE = ["zeek", "akamai-known"]
#: after the curated names and the specifications
OTHER_NAME_PRECEDENCE = ["zeek", "named-interfaces", "wmirpc-traceparse", "akamai-known"]

#: uuid -> (name, basis).  Only where the specification's IDL name is not the one tools and
#: people use (or there is no specification).
CURATED_NAMES: dict[str, tuple[str, str]] = {
    "e1af8308-5d1f-11c9-91a4-08002b14a0fa": (
        "epmapper", "[MS-RPCE]/C706 endpoint mapper: the IDL says 'epm'; the endpoint and every tool say epmapper"),
    "12345678-1234-abcd-ef00-01234567cffb": (
        "netlogon", "[MS-NRPC]: the IDL says 'logon'; the pipe, the service and every tool say netlogon"),
    "35464382-ad29-4881-9392-b43e55b8f7ac": (
        "AudioServer/PolicyConfig",
        "no published name; named after its procedures (AudioServer*, PolicyConfig*) in audiosrv.dll",
    ),
}

#: names that stand for "no method here": the specifications' placeholders for opnums not used
#: on the wire, and the scrapers' "OpnumN" for procedures without a symbol
PLACEHOLDER_RE = re.compile(r"^(Opnum\w*|Reserved\d*|Reserved_Opnum\d+|Lsar_LSA_(TM|DP)_\d+)$")


def is_placeholder(name: str) -> bool:
    return bool(PLACEHOLDER_RE.match(name))


def _norm_uuid(value: str) -> str | None:
    u = value.strip().strip("{}").lower()
    return u if UUID_RE.match(u) else None


def _clean_names(names) -> dict[int, str]:
    out: dict[int, str] = {}
    for opnum, name in enumerate(names or []):
        if isinstance(name, str):
            name = name.strip()
            if name and not is_placeholder(name):
                out[opnum] = name
    return out


def _read_tsv(path: Path) -> list[dict[str, str]]:
    """Rows of a tools/data table: '#' lines are its header comment, then a column line."""
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    columns = lines[0].split("\t")
    out = []
    for n, line in enumerate(lines[1:], 2):
        cells = line.split("\t")
        if len(cells) != len(columns):
            raise SystemExit(f"{path}: data line {n}: {len(cells)} cells, expected {len(columns)}")
        out.append(dict(zip(columns, cells)))
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




def read_spec_tables(data: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """``(by_uuid, specs)``: per UUID the merged specification entry, and the cited
    specifications (name -> title, revision).  A UUID several specifications declare (lsarpc in
    [MS-LSAD] and [MS-LSAT]; clusapi2 and clusapi3 of [MS-CMRP]) takes its name and version from
    the declaration with the highest version, then the most named methods; the other declarations
    fill the opnums it leaves unnamed."""
    specs = {r["spec"]: {"title": r["title"], "revision": r["revision"]} for r in _read_tsv(data / "ms-specs-index.tsv")}
    groups: dict[str, dict[tuple[str, str, str], dict[int, str]]] = {}
    for r in _read_tsv(data / "ms-specs.tsv"):
        u = _norm_uuid(r["uuid"])
        if u is None or r["spec"] not in specs:
            raise SystemExit(f"ms-specs.tsv: bad row {r}")
        methods = groups.setdefault(u, {}).setdefault((r["spec"], r["interface"], r["version"]), {})
        if r["opnum"] != "-":
            methods[int(r["opnum"])] = r["method"]

    def version_key(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.split(".") if p.isdigit())

    out = {}
    for u, decls in groups.items():
        order = sorted(decls, key=lambda k: (version_key(k[2]), sum(not is_placeholder(n) for n in decls[k].values()),
                                              [-ord(c) for c in k[0]]), reverse=True)
        spec, idl_name, version = order[0]
        procedures: dict[int, tuple[str, str]] = {}
        length = 0
        for key in order:
            if key != order[0] and key[0] == spec and key[2] == version:
                continue  # another interface of the same version under the same UUID (MS-FAX's faxobs): no fill
            length = max(length, max(decls[key], default=-1) + 1)
            for opnum, name in decls[key].items():
                if not is_placeholder(name) and opnum not in procedures:
                    procedures[opnum] = (name, f"spec:{key[0]}")
        names = sorted({k[0] for k in order}, key=lambda s: (s != spec, s))
        out[u] = {"name": idl_name, "version": version, "specs": names, "procedures": procedures,
                  "length": length, "source": f"spec:{spec}", "section": SPEC_SECTION}
    for r in _read_tsv(data / "ms-specs-extra.tsv"):
        u, same = _norm_uuid(r["uuid"]), _norm_uuid(r["same_as"])
        if u is None or same not in out or r["spec"] not in specs:
            raise SystemExit(f"ms-specs-extra.tsv: bad row {r}")
        out[u] = {**out[same], "version": r["version"], "section": r["section"], "specs": [r["spec"]]}
    return out, specs


def read_zeek(data: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in _read_tsv(data / "zeek-dce-rpc.tsv"):
        u = _norm_uuid(r["uuid"])
        if u is None:
            continue
        e = out.setdefault(u, {"name": None, "procedures": {}, "count": 0})
        if r["opnum"] == "-":
            e["name"] = e["name"] or r["name"].strip() or None
        else:
            op = int(r["opnum"])
            if r["name"].strip() and not is_placeholder(r["name"].strip()):
                e["procedures"].setdefault(op, r["name"].strip())
            e["count"] = max(e["count"], op + 1)
    return out


def read_names(path: Path) -> dict[str, dict]:
    """uuid -> {"name", and the row's other cells}: the first row of a UUID counts."""
    out: dict[str, dict] = {}
    for r in _read_tsv(path):
        u = _norm_uuid(r["uuid"])
        if u and r["name"].strip():
            out.setdefault(u, {**r, "name": r["name"].strip()})
    return out


WORD_START = re.compile(r"[A-Z_]")


def derived_name(procedures: dict[int, str], module: str | None) -> str | None:
    """A stand-in name for an interface no source names: the common prefix of its procedure
    names, cut at a word start and followed by ``*`` (``PlaiSrv*`` for PlaiSrvControl,
    PlaiSrvQuerySession, ...), else its module's file name."""
    names = list(procedures.values())
    if len(names) >= 2:
        prefix = names[0]
        for n in names[1:]:
            i = 0
            while i < min(len(prefix), len(n)) and prefix[i] == n[i]:
                i += 1
            prefix = prefix[:i]
        rest = [n[len(prefix):len(prefix) + 1] for n in names]
        if any(c and not WORD_START.match(c) for c in rest):  # the prefix ends inside a word
            starts = [m.start() for m in WORD_START.finditer(prefix) if m.start() > 0]
            prefix = prefix[: starts[-1]] if starts else ""
        prefix = prefix.rstrip("_")
        if len(prefix) >= 3:
            return prefix + "*"
    return module


def _ranges(opnums: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2,5,7-8'."""
    out, start, prev = [], None, None
    for n in sorted(opnums):
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            out.append(f"{start}-{prev}" if prev != start else str(start))
            start = prev = n
    if start is not None:
        out.append(f"{start}-{prev}" if prev != start else str(start))
    return ",".join(out)


def _binary_procedures(raw: dict[str, dict[str, dict]], u: str):
    """``(primary source, record, {opnum: (name, source)})`` from the binary scrapes (see the
    precedence in the module docstring), or ``(None, None, {})``."""
    candidates = [(sid, raw[sid][u]) for sid in BINARY_PRECEDENCE if u in raw[sid] and raw[sid][u]["procedures"]]
    if not candidates:
        return None, None, {}
    modules: dict[str, int] = {}
    for _sid, rec in candidates:
        key = (rec.get("module") or "").lower()
        modules[key] = max(modules.get(key, 0), len(rec["procedures"]))
    if len(modules) > 1:  # the module naming the most procedures serves it; precedence breaks ties
        best = max(modules.values())
        server = next((rec.get("module") or "").lower() for sid, rec in candidates
                      if modules[(rec.get("module") or "").lower()] == best)
        candidates = [(sid, rec) for sid, rec in candidates if (rec.get("module") or "").lower() == server]
    primary, rec = candidates[0]
    procs = {op: (name, primary) for op, name in rec["procedures"].items()}
    length = rec["count"]
    for sid, other in candidates[1:]:
        if other["count"] > length and any(k >= length for k in other["procedures"]):
            for k, name in other["procedures"].items():
                if k >= length:
                    procs[k] = (name, sid)
            break
    return primary, rec, procs


def build_interfaces(samples: Path, data: Path = DEFAULT_DATA) -> dict:
    raw: dict[str, dict[str, dict]] = {
        "rpcmon-win10-1909": _read_rpcmon(samples / INTERFACE_SOURCES["rpcmon-win10-1909"]["file"]),
        "akamai-pe-scrape": _read_akamai_scrape(samples / INTERFACE_SOURCES["akamai-pe-scrape"]["file"]),
        "akamai-server2022": _read_akamai_scrape(samples / INTERFACE_SOURCES["akamai-server2022"]["file"]),
        "akamai-server2012": _read_akamai_scrape(samples / INTERFACE_SOURCES["akamai-server2012"]["file"]),
        "akamai-server2022-registrations": _read_registrations(
            samples / INTERFACE_SOURCES["akamai-server2022-registrations"]["file"]),
        "akamai-known": _read_known(samples / INTERFACE_SOURCES["akamai-known"]["file"]),
        "zeek": read_zeek(data),
        "named-interfaces": read_names(data / "named-interfaces.tsv"),
        "wmirpc-traceparse": read_names(data / "wmirpc-traceparse.tsv"),
    }
    spec_entries, specs = read_spec_tables(data)
    sources = {sid: {k: v for k, v in meta.items() if k not in ("file", "data")}
               for sid, meta in INTERFACE_SOURCES.items()}
    for name, meta in sorted(specs.items()):
        sources[f"spec:{name}"] = {
            "kind": "specification",
            "title": f"[{name}]: {meta['title']}" if meta["title"] else f"[{name}]",
            "origin": f"Microsoft Open Specifications, [{name}] revision {meta['revision'] or '(not stated)'}, "
                      f"section '{SPEC_SECTION}' (interface tables via tools/data/ms-specs.tsv, transcribed from "
                      "the IDL files of oiweiwei/go-msrpc @b27043306f25, MIT)",
            "license": "Microsoft Open Specifications (facts: UUIDs, versions, interface and method names)",
            "build": f"[{name}] {meta['revision']}".strip() if meta["revision"] else f"[{name}]",
        }
    sources["rpctrace-curated"]["names"] = {u: {"name": n, "basis": b} for u, (n, b) in sorted(CURATED_NAMES.items())}

    all_uuids = sorted(set().union(*[set(d) for d in raw.values()]) | set(spec_entries) | set(CURATED_NAMES))
    interfaces = {}
    for u in all_uuids:
        spec = spec_entries.get(u)
        procs: dict[int, tuple[str, str]] = dict(spec["procedures"]) if spec else {}
        primary, rec, binary = _binary_procedures(raw, u)
        for op, named in binary.items():
            procs.setdefault(op, named)
        for sid in OTHER_PROCEDURE_PRECEDENCE:
            other = raw[sid].get(u)
            if other and not procs:
                procs = {op: (name, sid) for op, name in other["procedures"].items()}
        module = rec.get("module") if rec else None
        module_source = primary
        if module is None:
            for sid in BINARY_PRECEDENCE + ["akamai-server2022-registrations"]:
                r = raw[sid].get(u)
                if r and r.get("module"):
                    module, module_source = r["module"], sid
                    break
        # the source of most names, for 'source'/'build'
        counts: dict[str, int] = {}
        for _, sid in procs.values():
            counts[sid] = counts.get(sid, 0) + 1
        main = (spec["source"] if spec and spec["source"] in counts else
                primary if primary in counts else max(counts, key=counts.get) if counts else None)
        entry: dict = {"name": None, "name_source": None}
        if u in CURATED_NAMES:
            entry["name"], entry["name_source"] = CURATED_NAMES[u][0], "rpctrace-curated"
            entry["name_note"] = CURATED_NAMES[u][1]
        elif spec:
            entry["name"], entry["name_source"] = spec["name"], spec["source"]
            entry["name_note"] = f"section '{spec['section']}'"
        else:
            for sid in OTHER_NAME_PRECEDENCE:
                other = raw[sid].get(u)
                if other and other.get("name"):
                    entry["name"], entry["name_source"] = other["name"], sid
                    if sid == "named-interfaces":
                        entry["name_note"] = f"{other['origin']} ({other['license']})"
                    break
        # the other names sources give it (ISystemActivator for [MS-DCOM]'s IRemoteSCMActivator)
        others = ([spec["name"]] if spec else []) + \
            [raw[sid][u]["name"] for sid in OTHER_NAME_PRECEDENCE if raw[sid].get(u) and raw[sid][u].get("name")]
        aliases = [n for n in dict.fromkeys(n.strip() for n in others)
                   if n and n != entry["name"] and n.lower() != (entry["name"] or "").lower()]
        if aliases:
            entry["aliases"] = aliases
        if entry["name"] is None and procs:
            entry["name"] = derived_name({op: n for op, (n, _) in procs.items()}, module)
            entry["name_source"] = "rpctrace-derived" if entry["name"] else None
        if spec:
            entry["idl_name"] = spec["name"]
            entry["version"] = spec["version"]
            entry["specs"] = spec["specs"]
        entry["module"] = module
        rpcmon = raw["rpcmon-win10-1909"].get(u)
        entry["service"] = rpcmon.get("service") if rpcmon and rpcmon.get("service") else None
        entry["source"] = main or module_source or entry["name_source"]
        entry["build"] = sources[entry["source"]]["build"] if entry["source"] else None
        entry["seen_in"] = ([f"spec:{s}" for s in spec["specs"]] if spec else []) + \
            [sid for sid in INTERFACE_SOURCES if sid in raw and u in raw[sid]]
        entry["procedures"] = {str(k): procs[k][0] for k in sorted(procs)}
        by_source: dict[str, list[int]] = {}
        for op, (_, sid) in procs.items():
            by_source.setdefault(sid, []).append(op)
        entry["procedure_sources"] = {sid: _ranges(ops) for sid, ops in
                                      sorted(by_source.items(), key=lambda kv: min(kv[1]))}
        interfaces[u] = entry
    return {
        "format": "rpctrace-rpcdb",
        "version": 2,
        "generated_by": "tools/build_knowledge.py",
        "precedence": {
            "procedures": ["spec:*"] + BINARY_PRECEDENCE + OTHER_PROCEDURE_PRECEDENCE,
            "roles": "binary sources: server-role entries only; the module naming the most procedures serves",
            "placeholders": PLACEHOLDER_RE.pattern,
            "name": ["rpctrace-curated", "spec:*"] + OTHER_NAME_PRECEDENCE + ["rpctrace-derived"],
            "service": "rpcmon-win10-1909",
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


def build(samples: Path, cache: Path, out: Path, only: str | None = None, log=print,
          data: Path = DEFAULT_DATA) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if only in (None, "interfaces"):
        doc = build_interfaces(samples, data)
        path = out / "interfaces.json.gz"
        # ~2 MB as text, so packaged compressed; mtime=0 keeps the bytes reproducible
        path.write_bytes(gzip.compress(dumps(doc).encode("utf-8"), 9, mtime=0))
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
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the interface fact tables (tools/data)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON files")
    ap.add_argument("--only", choices=["interfaces", "codes"], help="build one file only")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    log = (lambda *a, **k: None) if args.quiet else (lambda *a, **k: print(*a, file=sys.stderr, **k))
    if args.command == "fetch":
        fetch(args.cache, log=log)
        return 0
    build(args.samples, args.cache, args.out, args.only, log=log, data=args.data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
