"""What rpctrace knows of an interface (``rpctrace names``), as text or JSON.

The records are plain dicts built from :class:`rpctrace.knowledge.interfaces.InterfaceInfo`;
the text writers print them.  Every string that came from a user database goes through
:func:`rpctrace.errors.printable` (a database is a file a user was given, not trusted text).
"""

from __future__ import annotations

import json
from typing import IO, Any

from rpctrace.errors import printable
from rpctrace.knowledge.interfaces import InterfaceInfo, Match, source_info

#: how to add an interface rpctrace does not know (printed with every "not known")
RPCDB_HINT = (
    "Add it with your own database: rpctrace --rpcdb FILE names ... (or list FILE in $RPCTRACE_RPCDB, "
    "or put it in ~/.config/rpctrace/rpcdb/). FILE is JSON, either RPCMon's map "
    '{"<uuid>": {"Module": "x.dll", "Service": "Svc", "Procedures": ["Proc0", "Proc1"]}} '
    'or rpctrace\'s {"format": "rpctrace-rpcdb", "interfaces": {"<uuid>": {"name": "...", '
    '"module": "...", "procedures": {"0": "Proc0"}}}}.'
)


def _p(value: object) -> str:
    return printable(str(value), 300)


def _source(sid: str | None) -> dict:
    meta = source_info(sid) or {}
    out = {"id": sid}
    for k in ("title", "kind", "origin", "license", "build"):
        if meta.get(k):
            out[k] = meta[k]
    if sid and sid.startswith("user:"):
        out.update(kind="user", title=f"your database {sid[5:]}")
    return out


def _specs(info: InterfaceInfo) -> list[dict]:
    out = []
    for name in info.specs:
        meta = source_info(f"spec:{name}") or {}
        title = meta.get("title", f"[{name}]")
        out.append({"spec": name, "title": title.split(": ", 1)[1] if ": " in title else None,
                    "revision": (meta.get("build") or "").replace(f"[{name}]", "").strip() or None})
    return out


def interface_record(info: InterfaceInfo, opnum: int | None = None) -> dict:
    """Everything known of one interface; with ``opnum``, also that procedure."""
    procedures: list[dict[str, Any]] = [
        {"opnum": op, "name": info.procedures[op], "source": info.procedure_source(op),
         "build": info.procedure_build(op)}
        for op in sorted(info.procedures)
    ]
    used = [info.name_source, info.source, *(p["source"] for p in procedures)]
    rec = {
        "uuid": info.uuid,
        "known": True,
        "name": info.name,
        "name_source": info.name_source,
        "name_note": info.name_note,
        "idl_name": info.idl_name,
        "aliases": list(info.aliases),
        "version": info.version,
        "specifications": _specs(info),
        "module": info.module,
        "service": info.service,
        "procedures": procedures,
        "sources": [_source(s) for s in dict.fromkeys(s for s in used if s)],
        "seen_in": list(info.seen_in),
    }
    if opnum is not None:
        name = info.procedure(opnum)
        rec["opnum"] = opnum
        rec["procedure"] = None if name is None else {
            "opnum": opnum, "name": name, "source": info.procedure_source(opnum), "build": info.procedure_build(opnum)}
    return rec


def unknown_record(uuid: str, opnum: int | None = None) -> dict:
    rec = {"uuid": uuid, "known": False, "hint": RPCDB_HINT}
    if opnum is not None:
        rec["opnum"] = opnum
        rec["procedure"] = None
    return rec


def _ranges(opnums: list[int]) -> str:
    out: list[tuple[int, int]] = []  # (first, last) of each run
    for n in sorted(opnums):
        if out and out[-1][1] == n - 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in out)


def _headline(rec: dict) -> str:
    name = rec["name"] or "(no name known)"
    specs = ", ".join(s["spec"] for s in rec["specifications"])
    return f"{_p(name)} ({specs})" if specs else _p(name)


def _source_label(sid: str | None) -> str:
    if not sid:
        return ""
    return f"[{sid[5:]}]" if sid.startswith("spec:") else sid


def write_interface_text(rec: dict, out: IO[str]) -> None:
    if not rec["known"]:
        what = f"interface {rec['uuid']}" + (f" (opnum {rec['opnum']})" if "opnum" in rec else "")
        out.write(f"rpctrace does not know {what}.\n{rec['hint']}\n")
        return
    if "opnum" in rec:
        proc = rec["procedure"]
        if proc:
            out.write(f"{_headline(rec)} {_p(proc['name'])}\n")
            where = _source_label(proc["source"])
            out.write(f"  opnum {rec['opnum']}: {_p(proc['name'])}, named by {_p(where)}"
                      + (f" ({_p(proc['build'])})" if proc.get("build") and not where.startswith("[") else "")
                      + "\n")
        else:
            out.write(f"{_headline(rec)}: no name known for opnum {rec['opnum']}\n")
    else:
        out.write(f"{_headline(rec)}\n")
    out.write(f"  uuid:       {rec['uuid']}" + (f"  version {_p(rec['version'])}" if rec["version"] else "") + "\n")
    if rec["name"]:
        line = f"  name:       {_p(rec['name'])}, from {_p(_source_label(rec['name_source']))}"
        if rec.get("name_note"):
            line += f" ({_p(rec['name_note'])})"
        if rec["name_source"] == "rpctrace-derived":
            line += " (no source names it: a stand-in made from its procedures or module)"
        if rec["idl_name"] and rec["idl_name"] != rec["name"]:
            line += f"; the specification's IDL calls it {_p(rec['idl_name'])}"
        out.write(line + "\n")
        others = [a for a in rec.get("aliases", []) if a != rec["idl_name"]]
        if others:
            out.write(f"  also called: {', '.join(_p(a) for a in others)}\n")
    for s in rec["specifications"]:
        out.write(f"  specification: [{s['spec']}] {_p(s['title'] or '')}"
                  + (f", revision {_p(s['revision'])}" if s["revision"] else "") + "\n")
    out.write(f"  module:     {_p(rec['module']) if rec['module'] else '(not known)'}\n")
    out.write(f"  service:    {_p(rec['service']) if rec['service'] else '(not known)'}\n")
    procs = rec["procedures"]
    if "opnum" not in rec:
        if procs:
            out.write(f"  procedures: {len(procs)} named (opnums {_ranges([p['opnum'] for p in procs])})\n")
            width = max(len(_p(p["name"])) for p in procs)
            for p in procs:
                out.write(f"    {p['opnum']:>4}  {_p(p['name']):<{width}}  {_p(_source_label(p['source']))}\n")
        else:
            out.write("  procedures: none named\n")
    out.write("  sources:\n")
    for s in rec["sources"]:
        title = s.get("title") or s["id"]
        label = _source_label(s["id"])
        if title.startswith(label + ": "):  # "[MS-NRPC]: Netlogon ..." under the label "[MS-NRPC]"
            title = title[len(label) + 2:]
        parts = [_p(title)]
        if s.get("license"):
            parts.append(f"licence: {_p(s['license'])}")
        if s.get("build") and s.get("kind") != "specification":
            parts.append(f"build: {_p(s['build'])}")
        out.write(f"    {_p(_source_label(s['id']))}: " + "; ".join(parts) + "\n")
        if s.get("origin"):
            out.write(f"      {_p(s['origin'])}\n")


def search_records(matches: list[Match]) -> list[dict]:
    return [{
        "uuid": m.interface.uuid,
        "interface": m.interface.name,
        "specifications": list(m.interface.specs),
        "module": m.interface.module,
        "matched": m.field,
        "matched_text": m.value,
        "opnum": m.opnum,
        "procedure": m.procedure,
    } for m in matches]


def write_search_text(query: str, records: list[dict], total: int, out: IO[str]) -> None:
    if not records:
        out.write(f"No interface or procedure name matches {_p(query)!r}.\n{RPCDB_HINT}\n")
        return
    for r in records:
        specs = f" [{', '.join(r['specifications'])}]" if r["specifications"] else ""
        name = _p(r["interface"] or "(no name known)")
        if r["opnum"] is not None:
            out.write(f"{r['uuid']}  {name}{specs}  opnum {r['opnum']}: {_p(r['procedure'])}\n")
        else:
            extra = ""
            if r["matched"] in ("alias", "idl_name", "module", "service"):
                what = {"alias": "also called", "idl_name": "IDL name"}.get(r["matched"], r["matched"])
                extra = f"  ({what} {_p(r['matched_text'])})"
            out.write(f"{r['uuid']}  {name}{specs}{extra}\n")
    if total > len(records):
        out.write(f"... {total - len(records)} more matches (--limit 0 shows them all)\n")


def write_json(doc: dict, out: IO[str]) -> None:
    json.dump(doc, out, indent=2, ensure_ascii=False)
    out.write("\n")
