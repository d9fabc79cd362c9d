"""The architecture's one direction of flow, checked on the code: no module imports from a stage
above its own, and packages do not import each other in a cycle (docs/architecture.md).

Every ``import`` and ``from ... import`` is counted, also those inside functions (a lazy import is
still a dependency).  ``synth`` writes traces and must never import a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "rpctrace"

#: the stages, lowest first; a module may import from its own stage and the ones below
LEVELS: dict[str, int] = {
    "errors": 0, "model": 0, "progress": 0, "schema": 0,
    "knowledge": 1, "security": 1,
    "sources": 2, "symbols": 2,
    "trace": 3,
    "correlate": 4,
    "explain": 5,
    "render": 6,
    "record": 6,  # the capture recipe: writes a profile with render.recipe
    "synth": 6,  # writes traces from documented layouts; a test below keeps it away from readers
    "tables": 6,  # tables of many traces: schema, inputs, rows, store, run, query (the pipeline gives the extractor)
    "pipeline": 7,
    "commands": 8,
    "cli": 9, "__main__": 9, "__init__": 9,
}


def _package(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    mod_parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if mod_parts[-1] == "__init__":
        mod_parts = mod_parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod_parts[: len(mod_parts) - node.level + (1 if path.name == "__init__.py" else 0)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name == "rpctrace":  # `from rpctrace import pipeline` imports the package rpctrace.pipeline
                out += [(node.lineno, f"rpctrace.{a.name}") for a in node.names]
                continue
            out.append((node.lineno, name))
    return [(line, name) for line, name in out if name == "rpctrace" or name.startswith("rpctrace.")]


def _edges():
    for path in sorted(SRC.rglob("*.py")):
        here = _package(path)
        for line, name in _imports(path):
            parts = name.split(".")
            if len(parts) < 2:
                continue  # `import rpctrace` (the version)
            yield path, line, here, parts[1]


def test_every_package_has_a_stage():
    packages = {_package(p) for p in SRC.rglob("*.py")}
    assert packages <= set(LEVELS), f"add to LEVELS (and docs/architecture.md): {sorted(packages - set(LEVELS))}"


def test_no_upward_imports():
    bad = [f"{path.relative_to(SRC.parent)}:{line} ({here}, stage {LEVELS[here]}) imports rpctrace.{there} "
           f"(stage {LEVELS[there]})"
           for path, line, here, there in _edges() if there in LEVELS and LEVELS[there] > LEVELS[here]]
    assert not bad, "\n".join(bad)


def test_no_cycles_between_packages():
    graph: dict[str, set[str]] = {}
    for _, _, here, there in _edges():
        if here != there:
            graph.setdefault(here, set()).add(there)
    seen: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if seen.get(nxt) == 1:
                raise AssertionError("cycle between packages: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in seen:
                visit(nxt)
        stack.pop()
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node)


def test_synth_never_imports_a_reader():
    bad = [f"{path.relative_to(SRC.parent)}:{line}" for path, line, here, there in _edges()
           if here == "synth" and there in ("sources", "trace", "correlate")]
    assert not bad, bad


#: what a command may use: it parses arguments, calls the pipeline and hands the result to a renderer
COMMAND_MAY_IMPORT = {"commands", "pipeline", "render", "errors", "progress", "synth", "record"}


def test_commands_hold_no_analysis():
    bad = [f"{path.relative_to(SRC.parent)}:{line} imports rpctrace.{there}"
           for path, line, here, there in _edges() if here == "commands" and there not in COMMAND_MAY_IMPORT]
    assert not bad, "commands call the pipeline and a renderer, nothing else:\n" + "\n".join(bad)
    long = {p.name: n for p in (SRC / "commands").glob("*.py")
            if p.name not in ("__init__.py", "options.py")
            and (n := len(p.read_text(encoding="utf-8").splitlines())) >= 100}
    assert not long, f"command modules stay well under 100 lines: {long}"


def test_architecture_doc_gives_every_package_its_stage():
    """docs/architecture.md's table names every package of src/rpctrace at the stage LEVELS gives
    it (the doc is read by newcomers first: it must stay true to the code)."""
    import re

    doc = (SRC.parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| (.+?) \|", doc, re.M)
    stage_of: dict[str, int] = {}
    for stage, names in rows:
        for name in re.findall(r"`rpctrace\.(\w+)", names):
            stage_of.setdefault(name, int(stage))
    packages = {_package(p) for p in SRC.rglob("*.py")} - {"__init__", "__main__"}
    missing = sorted(p for p in packages if p not in stage_of)
    assert not missing, f"docs/architecture.md does not name: {missing}"
    wrong = sorted(f"{p}: doc {stage_of[p]}, LEVELS {LEVELS[p]}" for p in packages if stage_of[p] != LEVELS[p])
    assert not wrong, wrong
