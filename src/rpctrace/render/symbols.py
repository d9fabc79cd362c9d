"""Print what ``rpctrace symbols`` found: resolved offsets and a trace's PDBs."""

from __future__ import annotations

import json
from typing import IO

from rpctrace.errors import printable


def _safe(text: object) -> str:
    return printable(str(text), 1000)


def resolve_text(result: dict, out: IO[str]) -> None:
    """One block per offset: ``module+0xoffset`` then the frames innermost first (inlined
    functions marked ``(inline)``), each with ``[file @ line]`` where the PDB has it."""
    head = result.get("pdb") or result.get("image")
    if result.get("problem"):
        out.write(f"# no symbols: {_safe(result['problem'])}\n")
    elif head:
        ident = result.get("identity") or {}
        out.write(f"# {_safe(head)}" + (f" (GUID {ident['guid']}, age {ident['age']})" if ident else "") + "\n")
    for r in result["results"]:
        where = f"{_safe(r['module'])}+0x{r['offset']:x}"
        frames = r.get("frames") or []
        if not frames:
            out.write(f"{where}  {_safe(r.get('reason') or 'no function holds this offset')}\n")
            continue
        pad = " " * len(where)
        for i, f in enumerate(frames):
            text = f"{_safe(f['module'])}!{_safe(f['function'])}"
            if f.get("displacement") is not None:
                text += f"+0x{f['displacement']:x}"
            if f.get("inline"):
                text += " (inline)"
            if f.get("file") and f.get("line"):
                text += f" [{_safe(f['file'])} @ {f['line']}]"
            out.write(f"{where if i == 0 else pad}  {text}\n")
        if r.get("from_publics"):
            out.write(f"{pad}  (from public symbols: the nearest one below the offset)\n")


def resolve_json(result: dict, out: IO[str]) -> None:
    json.dump(result, out, indent=2, ensure_ascii=False)
    out.write("\n")


def fetch_text(report: dict, out: IO[str]) -> None:
    """The images a trace needs, with where each PDB is or what was looked for."""
    images = report["images"]
    found = [i for i in images if i["pdb"]]
    missing = [i for i in images if not i["pdb"]]
    for i in found:
        out.write(f"found    {_safe(i['module']):<24} {_safe(i['pdb'])}  ({_safe(i['via'])})\n")
    for i in missing:
        ident = f"{i['pdb_name']} {i['guid']} age {i['age']}" if i.get("guid") else "no PDB identity"
        out.write(f"missing  {_safe(i['module']):<24} {_safe(ident)}: {_safe(i['problem'] or 'not found')}\n")
    down = report.get("downloaded", [])
    out.write(f"{len(images)} image(s): {len(found)} PDB(s) found ({len(down)} downloaded), "
              f"{len(missing)} missing\n")


def fetch_json(report: dict, out: IO[str]) -> None:
    json.dump(report, out, indent=2, ensure_ascii=False)
    out.write("\n")
