"""Shared fixtures: the real sample traces, unpacked once per test session.

tests/data holds copies of the MIT/Apache-2.0 samples (see tests/data/README.md); compressed
copies (.xz, .zip) are unpacked into a temporary folder so the repository stays small.
"""

from __future__ import annotations

import lzma
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

HERE = Path(__file__).parent
DATA = HERE / "data"
sys.path.insert(0, str(HERE))  # the dissect.etl oracle helper (tests/oracle.py)


def _unpack(target: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for item in sorted(DATA.iterdir()):
        if item.suffix == ".xz":
            out = target / item.stem
            out.write_bytes(lzma.decompress(item.read_bytes()))
            files[out.name] = out
        elif item.suffix == ".zip":
            with zipfile.ZipFile(item) as zf:
                for name in zf.namelist():
                    if name.lower().endswith(".etl"):
                        out = target / Path(name).name
                        with zf.open(name) as src, open(out, "wb") as dst:
                            shutil.copyfileobj(src, dst)
                        files[out.name] = out
        elif item.suffix == ".etl":
            files[item.name] = item
    return files


@pytest.fixture(scope="session")
def samples(tmp_path_factory) -> dict[str, Path]:
    """Every real ETL sample by file name (e.g. ``samples["net.4.5.2.x64.etl"]``)."""
    return _unpack(tmp_path_factory.mktemp("samples"))


ETL_SAMPLES = [
    "AMSITrace.etl",
    "ShutdownPerfDiagLogger.etl",
    "diaghub.etl",
    "diaghub.kernel.1.etl",
    "diaghub.user_injected.1.etl",
    "diaghub.user_paged.1.etl",
    "lxcore_kernel.etl",
    "net.4.5.2.x64.etl",
    "primitive-types.etl",
    "smallEtlFile.etl",
]
#: Windows 7 traces of Process and Image events with classic headers (google/syzygy sawbuck)
CLASSIC_SAMPLES = [f"image_data_{bits}_v{v}.etl" for bits in (32, 64) for v in (0, 1, 2)] + [
    "process_data_32_v1.etl", "process_data_32_v2.etl", "process_data_32_v3.etl",
    "process_data_64_v2.etl", "process_data_64_v3.etl"]
ETL_SAMPLES += CLASSIC_SAMPLES
