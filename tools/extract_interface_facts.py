#!/usr/bin/env python3
"""Extract RPC interface facts (UUID, version, interface name, opnum -> method name) from public
sources into the tab-separated tables of ``tools/data/`` that ``tools/build_knowledge.py`` reads.

The sources themselves are not committed: only the facts taken from them (names and numbers),
one row each, with the source's origin and licence in the table's header.  This script is run by
hand when a source is updated; the build never needs it nor the network.

Subcommands (each takes the git directory of a snapshot of the source's repository)::

    python tools/extract_interface_facts.py specs GIT_DIR [--commit C]   # -> tools/data/ms-specs.tsv
    python tools/extract_interface_facts.py zeek GIT_DIR [--commit C]    # -> tools/data/zeek-dce-rpc.tsv
    python tools/extract_interface_facts.py ps-names GIT_DIR [--commit C] # -> tools/data/wmirpc-traceparse.tsv

``specs``
    Microsoft's Open Specifications publish each RPC protocol's full IDL in an appendix ("Appendix
    A: Full IDL"); the IDL declares every interface with its UUID and version, and its methods in
    opnum order.  oiweiwei/go-msrpc (MIT) keeps those appendices as ``idl/*.idl`` files and lists
    each specification's revision in its README.  This reads the interface blocks only (attribute
    list with ``uuid(...)``, ``interface NAME [: BASE] { ... }``) and numbers the method
    declarations; object (DCOM) interfaces continue their base interface's numbering.
``zeek``
    Zeek's ``scripts/base/protocols/dce-rpc/consts.zeek`` (BSD-3-Clause): the
    ``uuid_endpoint_map`` (UUID -> name) and ``operations`` ([UUID, opnum] -> name) tables.
``ps-names``
    The ``$htGUID`` table (UUID -> interface name) of gbragante/WMI-Scripts'
    ``WMI-TraceParse/WMIRPC-TraceParse.ps1`` (Gianni Bragante, Microsoft support; no licence
    stated, so only the UUID -> name facts are taken).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tools" / "data"

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _git(git_dir: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(git_dir), *args], check=True, capture_output=True,
                          text=True, encoding="utf-8", errors="replace").stdout


def _head(git_dir: Path, commit: str | None) -> tuple[str, str]:
    out = _git(git_dir, "log", "-1", "--format=%H %cs", commit or "HEAD").split()
    return out[0], out[1]


def _clean(value: str) -> str:
    """A fact as a TSV cell: no tabs or line breaks."""
    return " ".join(value.split())


# --------------------------------------------------------------------------------------------
# IDL (the specifications' appendices)
# --------------------------------------------------------------------------------------------

COMMENT_RE = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)
PREPROC_RE = re.compile(r"^[ \t]*#[^\n]*", re.MULTILINE)
IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def strip_idl(text: str) -> str:
    """IDL text without comments, preprocessor lines and cpp_quote(...) lines."""
    text = COMMENT_RE.sub(" ", text)
    text = PREPROC_RE.sub(" ", text)
    return re.sub(r"cpp_quote\s*\((?:[^()\"]|\"[^\"]*\")*\)", " ", text)


def _matching(text: str, start: int, open_c: str, close_c: str) -> int:
    """Index just past the bracket that closes the one at ``start``."""
    depth = 0
    i = start
    while i < len(text):
        c = text[i]
        if c == '"':
            i = text.index('"', i + 1)
        elif c == open_c:
            depth += 1
        elif c == close_c:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError(f"unbalanced {open_c}{close_c}")


def _statements(body: str) -> list[str]:
    """Top-level statements of an interface body (split on ';' outside braces/parentheses)."""
    out, depth, start = [], 0, 0
    for i, c in enumerate(body):
        if c in "{([":
            depth += 1
        elif c in "})]":
            depth -= 1
        elif c == ";" and depth == 0:
            out.append(body[start:i].strip())
            start = i + 1
    tail = body[start:].strip()
    if tail:
        out.append(tail)
    return out


def _strip_attributes(stmt: str) -> str:
    stmt = stmt.strip()
    while stmt.startswith("["):
        stmt = stmt[_matching(stmt, 0, "[", "]"):].strip()
    return stmt


NOT_METHODS = ("typedef", "const", "import", "struct", "union", "enum", "interface", "cpp_quote",
               "midl_pragma", "importlib", "coclass")


def _method_name(stmt: str) -> str | None:
    s = _strip_attributes(stmt)
    if not s or s.split()[0] in NOT_METHODS or "(" not in s:
        return None
    head = s[: s.index("(")].strip()
    idents = IDENT_RE.findall(head)
    if len(idents) < 2:  # a return type and a name at least
        return None
    return idents[-1]


INTERFACE_RE = re.compile(r"\binterface\s+([A-Za-z_][A-Za-z0-9_]*)\s*(?::\s*([A-Za-z_][A-Za-z0-9_]*))?\s*\{")


def parse_idl(text: str) -> list[dict]:
    """Interfaces defined (with a body) in one IDL file, in file order:
    {"name", "base", "uuid", "version", "object", "methods": [names in declaration order]}."""
    text = strip_idl(text)
    out = []
    for m in INTERFACE_RE.finditer(text):
        name, base = m.group(1), m.group(2)
        # the attribute lists right before the keyword: every balanced [...] directly before it
        before = text[: m.start()].rstrip()
        attrs = ""
        while before.endswith("]"):
            depth, j = 0, len(before) - 1
            while j >= 0:
                if before[j] == "]":
                    depth += 1
                elif before[j] == "[":
                    depth -= 1
                    if depth == 0:
                        break
                j -= 1
            attrs = before[j:] + attrs
            before = before[:j].rstrip()
        um = re.search(r"\buuid\s*\(\s*\"?([0-9A-Fa-f-]{36})\"?\s*\)", attrs)
        vm = re.search(r"\bversion\s*\(\s*([0-9]+(?:\.[0-9]+)?)\s*\)", attrs)
        body_start = m.end() - 1
        body = text[body_start + 1: _matching(text, body_start, "{", "}") - 1]
        methods = [n for n in (_method_name(s) for s in _statements(body)) if n]
        out.append({
            "name": name, "base": base, "uuid": um.group(1).lower() if um else None,
            "version": vm.group(1) if vm else None, "object": bool(re.search(r"\bobject\b", attrs)),
            "methods": methods,
        })
    return out


#: idl file (relative to idl/) -> specification, where go-msrpc's README table does not say
RPCE = "Remote Procedure Call Protocol Extensions"
SPEC_FALLBACK = {
    "epm.idl": ("MS-RPCE", RPCE),   # the endpoint mapper of C706 Appendix O, as [MS-RPCE] uses it
    "mgmt.idl": ("MS-RPCE", RPCE),  # the management interface of C706 Appendix Q, likewise
    "conv.idl": ("MS-RPCE", RPCE),  # C706's conv callbacks (connectionless), likewise
    "gkdi.idl": ("MS-GKDI", "Group Key Distribution Protocol"),
    "dcom/tsrap.idl": ("MS-TSRAP", "Telnet Server Remote Administration Protocol"),
    "fsrvp.idl": ("MS-FSRVP", "File Server Remote VSS Protocol"),
}
#: files that are no Microsoft specification (go-msrpc's own additions)
NOT_SPECS = {"mimicom.idl", "oaidl.idl", "dcom/urlmon.idl", "ocidl.idl", "wtypes.idl", "wtypesbase.idl", "dcetypes.idl",
             "sch.idl",       # a second copy of [MS-TSCH]'s ITaskSchedulerService (tsch.idl has it)
             "oxnspi.idl",    # [MS-OXNSPI] declares the same interface as [MS-NSPI] (nspi.idl)
             "adts/claims.idl", "dnsp/record.idl", "dcom/objref.idl", "rpce.idl"}  # types only


def _readme_specs(readme: str) -> dict[str, tuple[str, str, str]]:
    """go-msrpc README tables: package path (e.g. 'dcom/wmi') -> (spec, title, revision)."""
    out = {}
    row = re.compile(r"^\|\s*\[(M[SC]-[A-Z0-9-]+)\]\([^)]*\)[^|]*\|\s*([^|]*?)\s*\|\s*\[msrpc/([a-z0-9/]+)\]"
                     r"\([^)]*\)\s*\|\s*([^|]*?)\s*\|", re.MULTILINE)
    for m in row.finditer(readme):
        spec, title, pkg, rev = m.groups()
        if spec.endswith(("-BINXML", "-SECCHANNEL", "-EPM")) or spec == "MS-OXNSPI":
            continue
        out.setdefault(pkg, (spec, title, rev))
    return out


def extract_specs(git_dir: Path, commit: str | None, log=print) -> list[str]:
    sha, date = _head(git_dir, commit)
    readme = _git(git_dir, "show", f"{sha}:README.md")
    specs = _readme_specs(readme)
    files = [p for p in _git(git_dir, "ls-tree", "-r", "--name-only", sha, "idl/").split()
             if p.endswith(".idl")]
    parsed: dict[str, tuple[str, dict]] = {}  # interface name -> (file, interface)
    per_file: dict[str, list[dict]] = {}
    for path in sorted(files):
        rel = path[len("idl/"):]
        ifs = parse_idl(_git(git_dir, "show", f"{sha}:{path}"))
        per_file[rel] = ifs
        for i in ifs:
            parsed.setdefault(i["name"], (rel, i))

    def full_methods(i: dict, rel: str, seen=()) -> list[str]:
        """The interface's own methods after its base interface's (looked up by name)."""
        if i["base"] and i["base"] not in seen:
            if i["base"] not in parsed:
                raise SystemExit(f"{rel}: base interface {i['base']} of {i['name']} is not defined")
            base_rel, base = parsed[i["base"]]
            return full_methods(base, base_rel, seen + (i["name"],)) + i["methods"]
        return list(i["methods"])

    rows = []
    for rel, ifs in sorted(per_file.items()):
        if rel in NOT_SPECS:
            continue
        pkg = rel[: -len(".idl")]
        spec, title, rev = specs.get(pkg) or (*SPEC_FALLBACK.get(rel, (None, "")), "")
        if spec is None:
            log(f"{rel}: no specification known, skipped")
            continue
        for i in ifs:
            if not i["uuid"]:
                continue
            version = i["version"] or "0.0"  # MIDL's default when the IDL states none
            methods = full_methods(i, rel)
            if not methods:
                rows.append([spec, rev, i["name"], i["uuid"], version, "-", "", rel])
            for opnum, method in enumerate(methods):
                rows.append([spec, rev, i["name"], i["uuid"], version, str(opnum), method, rel])
    header = [
        "# Interface tables of Microsoft's Open Specifications: for each interface its specification,",
        "# the specification's revision, interface name, UUID, version, and every opnum with its method",
        "# name, as the specification's full IDL (its 'Appendix A: Full IDL' section) declares them.",
        "# Object (DCOM) interfaces number their methods after their base interface's (IUnknown: 0-2).",
        f"# Extracted by tools/extract_interface_facts.py from oiweiwei/go-msrpc @{sha[:12]} ({date}),",
        "# idl/*.idl (the specifications' IDL appendices; go-msrpc is MIT-licensed; Microsoft permits",
        "# distributing the IDLs of its Open Specifications).  Revisions as go-msrpc's README lists them.",
        "# Facts only.  Columns: spec, revision, interface, uuid, version, opnum ('-': no methods),",
        "# method, idl file.",
        "spec\trevision\tinterface\tuuid\tversion\topnum\tmethod\tidl",
    ]
    log(f"specs: {len({r[3] for r in rows})} interfaces, {sum(1 for r in rows if r[5] != '-')} methods")
    index = {}
    for r in rows:
        title = next((t for s, t, _ in specs.values() if s == r[0]),
                     next((t for s, t in SPEC_FALLBACK.values() if s == r[0]), ""))
        index.setdefault(r[0], [r[0], title, r[1]])
    index_lines = [
        "# The specifications ms-specs.tsv cites: name, title and revision (as go-msrpc's README lists",
        f"# them, @{sha[:12]}).  Each is published at learn.microsoft.com/openspecs/ under its name.",
        "spec\ttitle\trevision",
    ] + ["\t".join(_clean(c) for c in index[k]) for k in sorted(index)]
    (DATA / "ms-specs-index.tsv").write_text("\n".join(index_lines) + "\n", encoding="utf-8")
    return header + ["\t".join(_clean(c) for c in r) for r in rows]


# --------------------------------------------------------------------------------------------
# Zeek
# --------------------------------------------------------------------------------------------

def _zeek_table(text: str, name: str) -> str:
    m = re.search(r"\bconst\s+" + re.escape(name) + r"\s*:[^=]*=\s*\{", text)
    if not m:
        raise SystemExit(f"consts.zeek: no table {name}")
    start = m.end() - 1
    return text[start + 1: _matching(text, start, "{", "}") - 1]


def extract_zeek(git_dir: Path, commit: str | None, log=print) -> list[str]:
    sha, date = _head(git_dir, commit)
    path = "scripts/base/protocols/dce-rpc/consts.zeek"
    text = COMMENT_RE.sub("", re.sub(r"#[^\n]*", "", _git(git_dir, "show", f"{sha}:{path}")))
    rows = []
    for m in re.finditer(r"\[\s*\"([^\"]+)\"\s*\]\s*=\s*\"([^\"]*)\"", _zeek_table(text, "uuid_endpoint_map")):
        u, name = m.group(1).lower(), m.group(2)
        if UUID_RE.match(u):
            rows.append([u, "-", name])
    for m in re.finditer(r"\[\s*\"([^\"]+)\"\s*,\s*(0x[0-9a-fA-F]+|\d+)\s*\]\s*=\s*\"([^\"]*)\"",
                         _zeek_table(text, "operations")):
        u, op, name = m.group(1).lower(), int(m.group(2), 0), m.group(3)
        if UUID_RE.match(u):
            rows.append([u, str(op), name])
    header = [
        "# Zeek's DCE-RPC constants: interface UUID -> endpoint/interface name (opnum '-') and",
        "# [UUID, opnum] -> operation name, as Zeek spells them.",
        f"# Extracted by tools/extract_interface_facts.py from zeek/zeek @{sha[:12]} ({date}),",
        f"# {path}; Zeek is BSD-3-Clause licensed (Copyright (c) 1995-now, The Regents of the",
        "# University of California through LBNL and ICSI).  Facts only.  Columns: uuid, opnum, name.",
        "uuid\topnum\tname",
    ]
    log(f"zeek: {sum(1 for r in rows if r[1] == '-')} names, {sum(1 for r in rows if r[1] != '-')} operations")
    return header + ["\t".join(_clean(c) for c in r) for r in rows]


# --------------------------------------------------------------------------------------------
# WMIRPC-TraceParse.ps1
# --------------------------------------------------------------------------------------------

def extract_ps_names(git_dir: Path, commit: str | None, log=print) -> list[str]:
    sha, date = _head(git_dir, commit)
    path = "WMI-TraceParse/WMIRPC-TraceParse.ps1"
    text = _git(git_dir, "show", f"{sha}:{path}")
    m = re.search(r"\$htGUID\s*=\s*@\{(.*?)\n\s*\}", text, re.DOTALL)
    if not m:
        raise SystemExit(f"{path}: no $htGUID table")
    rows = {}
    for e in re.finditer(r"\"\{([0-9a-fA-F-]{36})\}\"\s*=\s*\"([^\"]*)\"", m.group(1)):
        u, name = e.group(1).lower(), e.group(2).strip()
        # '--'/'??' mean unknown; file names (x.dll) are modules, not interface names
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            continue
        rows.setdefault(u, name)
    header = [
        "# Interface names from the $htGUID table of WMIRPC-TraceParse.ps1 (Gianni Bragante, Microsoft",
        "# support engineer), which names the interfaces of Microsoft-Windows-RPC events in WMI traces.",
        f"# Extracted by tools/extract_interface_facts.py from gbragante/WMI-Scripts @{sha[:12]} ({date}),",
        f"# {path}.  The repository states no licence: only the UUID -> name facts are taken",
        "# ('--', '??' and module file names skipped).  Columns: uuid, name.",
        "uuid\tname",
    ]
    log(f"ps-names: {len(rows)} names")
    return header + [f"{u}\t{_clean(n)}" for u, n in sorted(rows.items())]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", choices=["specs", "zeek", "ps-names"])
    ap.add_argument("git_dir", type=Path, help="git directory of a snapshot of the source repository")
    ap.add_argument("--commit", help="commit to read (default: HEAD)")
    ap.add_argument("--out", type=Path, help="output file (default: tools/data/<name>.tsv)")
    args = ap.parse_args(argv)
    def log(*a) -> None:
        print(*a, file=sys.stderr)

    fn, default = {
        "specs": (extract_specs, "ms-specs.tsv"),
        "zeek": (extract_zeek, "zeek-dce-rpc.tsv"),
        "ps-names": (extract_ps_names, "wmirpc-traceparse.tsv"),
    }[args.source]
    lines = fn(args.git_dir, args.commit, log=log)
    out = args.out or DATA / default
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
