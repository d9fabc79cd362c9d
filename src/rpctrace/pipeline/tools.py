"""The other jobs: interface names, the demo, and symbols."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from rpctrace.pipeline.explain import findings
from rpctrace.pipeline.read import load
from rpctrace.pipeline.symbols import symbolizer
from rpctrace.schema import Finding
from rpctrace.trace.model import Trace

if TYPE_CHECKING:
    from rpctrace.knowledge.interfaces import InterfaceInfo


def interface_names(uuid_text: str) -> tuple[str | None, InterfaceInfo | None]:
    """``(uuid, InterfaceInfo | None)`` for an interface UUID as typed (braces and case do not
    matter); ``uuid`` is None when the text is not a UUID."""
    from rpctrace.knowledge import interfaces

    uuid = interfaces.normalize_uuid(uuid_text)
    return uuid, (interfaces.info(uuid) if uuid is not None else None)


def search_names(text: str) -> list[Any]:
    """Interfaces and procedures whose name (or UUID, module, service, specification) holds ``text``."""
    from rpctrace.knowledge import interfaces

    return interfaces.search(text)


#: PDBs of the demo's audiosrv.dll and MMDevAPI.dll (see the README beside them)
DEMO_SYMBOLS = Path(__file__).resolve().parents[1] / "data" / "demo-symbols"


@dataclass
class DemoModel:
    """What ``rpctrace demo`` shows: the trace it wrote, what rpctrace found in it, and the files."""

    out_dir: str
    etl: str
    truth: str
    acl_args: str
    records: int
    calls: int
    servers: int
    findings: list[Finding]


def demo(out_dir: str, seed: int = 1) -> DemoModel:
    """Write the article's AudioSrv incident as a trace (with its ground truth), read it back and
    explain it with the key's ACL as the article describes it.

    The ACL is not in any trace: the article describes it, so the demo supplies that description
    as SDDL (what ``--sddl KEYPATH=SDDL`` takes), also written to a file that every command reads
    with ``@FILE`` (argparse's arguments from a file), so the suggested commands stay short."""
    import os

    from rpctrace import synth
    from rpctrace.correlate import correlate
    from rpctrace.explain import article
    from rpctrace.render.files import open_output

    os.makedirs(out_dir, exist_ok=True)
    etl = os.path.join(out_dir, "audiosrv-access-denied.etl")
    truth = os.path.join(out_dir, "audiosrv-access-denied.truth.json")
    acl_args = os.path.join(out_dir, "audiosrv-acl.args")
    summary = synth.synthesize("audiosrv-access-denied", etl, truth, seed=seed)
    sddl = [f"{article.AUDIO_RENDER_KEY_PATH}={article.AUDIO_RENDER_KEY_SDDL}",
            f"{article.AUDIO_RENDER_PARENT_PATH}={article.AUDIO_RENDER_PARENT_SDDL}"]
    with open_output(acl_args) as fh:
        fh.write("".join(f"--sddl\n{pair}\n" for pair in sddl))
    # the demo's modules have PDBs in the package: the failing stack is named as a debugger names it;
    # a copy beside the trace serves the suggested commands (--symbols symbols)
    import shutil

    symbols_dir = os.path.join(out_dir, "symbols")
    os.makedirs(symbols_dir, exist_ok=True)
    for pdb in DEMO_SYMBOLS.glob("*.pdb"):
        shutil.copyfile(pdb, os.path.join(symbols_dir, pdb.name))
    trace = load([etl], symbols=symbols_dir)
    result = correlate(trace)
    found = findings(trace, result, (), sddl)
    return DemoModel(out_dir, etl, truth, acl_args, summary["record_count"], len(result.calls),
                     len({c.server_pid for c in result.calls if c.server_pid}), found)


# ------------------------------------------------------------------ symbols


def resolve_offsets(offsets: Sequence[str], pdb: str | None = None, image: str | None = None,
                    symbols: str | None = None, image_path: Sequence[str] = (), timeout: float = 20.0) -> tuple[Any, list[str]]:
    """``(result, problems)``: module offsets resolved in a PDB, or through an image's debug
    directory (``rpctrace symbols resolve``)."""
    from rpctrace.symbols.lookup import parse_offset, resolve_in_image, resolve_in_pdb

    parsed = [parse_offset(o) for o in offsets]
    sym = symbolizer(symbols, image_path, timeout)
    if pdb:
        result = resolve_in_pdb(pdb, parsed, sym)
    elif image:
        result = resolve_in_image(image, parsed, sym)
    else:
        raise ValueError("give a PDB or an image")
    return result, list(sym.problems)


def fetch_symbols(files: Sequence[str], symbols: str | None, image_path: Sequence[str], timeout: float = 20.0,
                  include_all: bool = False, keep_going: bool = False) -> tuple[Trace, Any, list[str]]:
    """``(trace, report, problems)``: the PDBs a trace's stacks need, fetched into the cache."""
    from rpctrace.symbols.lookup import fetch_for_trace

    sym = symbolizer(symbols, image_path, timeout)
    trace = load(files, keep_going=keep_going)
    report = fetch_for_trace(trace, sym, include_all=include_all)
    return trace, report, list(sym.problems)
