"""docs/scale.md's column tables are what the schema declares (tools/table_docs.py writes them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_scale_doc_lists_the_schema():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "table_docs.py"), "--check"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr
