"""ruff and mypy pass on the repository, with the configuration in pyproject.toml.

Both run as their own command lines from the repository root, so the suite (the README's test
command, which `.ci/run` runs) is where they are enforced: ``ruff check`` on the sources, tests,
tools and benchmarks; ``mypy`` on the package (``[tool.mypy]``: default checks everywhere,
strict on the pipeline, correlate and security packages and the record shapes in schema).
The ``test`` extra installs both; without one of them its test skips and says so.

mypy keeps its cache in the default ``.mypy_cache`` of the checkout: a warm run takes a few
seconds, a cold one about twenty.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: what ruff checks (the README's and CI's command)
RUFF_PATHS = ("src", "tests", "tools", "benchmarks")


def _run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (`pip install -e '.[test]'` installs it)")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)


def test_ruff_passes() -> None:
    proc = _run("ruff", "check", "--no-cache", *RUFF_PATHS)
    if proc.returncode != 0:
        pytest.fail(f"ruff check {' '.join(RUFF_PATHS)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}",
                    pytrace=False)


def test_mypy_passes() -> None:
    # no file arguments: `files` in pyproject's [tool.mypy] says what is checked
    proc = _run("mypy")
    if proc.returncode != 0:
        pytest.fail(f"mypy exited {proc.returncode}:\n{proc.stdout}{proc.stderr}", pytrace=False)
