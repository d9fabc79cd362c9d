"""The registry hive samples (MIT, mkorman90/regipy test data), copied into tests/data/hives
(see tests/data/README.md) and unpacked once per test session.  A missing file skips the tests
that need it, naming the file."""

from __future__ import annotations

import lzma
from pathlib import Path

import pytest

HIVES = Path(__file__).resolve().parents[1] / "data" / "hives"

HIVE_NAMES = ("NTUSER.DAT", "SAM", "SECURITY", "SYSTEM", "SYSTEM_WIN_10_1709", "UsrClass.dat", "corrupted_system_hive")


def unpack(name: str, target: Path) -> Path:
    source = HIVES / f"{name}.xz"
    if not source.is_file():
        pytest.skip(f"hive sample {source} is missing (tests/data/hives holds the regipy test hives)")
    out = target / name
    if not out.exists():
        out.write_bytes(lzma.decompress(source.read_bytes()))
    return out


@pytest.fixture(scope="session")
def hive_files(tmp_path_factory) -> dict[str, Path]:
    """Every hive sample by name, unpacked (import this fixture into a test module to use it)."""
    target = tmp_path_factory.mktemp("hives")
    return {name: unpack(name, target) for name in HIVE_NAMES}
