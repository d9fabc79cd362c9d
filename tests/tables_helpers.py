"""Reading an index back for comparisons (tests of `rpctrace index`, the local-cluster test)."""

from __future__ import annotations

import os
from pathlib import Path


def read_index(out: str | os.PathLike) -> dict:
    """Per table: the committed files (relative paths) and every row, in a stable order, as the
    file sets the manifests list hold them (with host and day from the partition path)."""
    import pyarrow.parquet as pq

    from rpctrace.tables.store import committed_files

    out = Path(out)
    result = {}
    for table, files in committed_files(str(out)).items():
        rel = sorted(os.path.relpath(f, out) for f in files)
        rows = []
        for f in rel:
            parts = dict(p.split("=", 1) for p in Path(f).parts[1:3])
            for row in pq.read_table(out / f).to_pylist():
                rows.append(repr(sorted({**row, **parts}.items())))
        result[table] = {"files": rel, "rows": sorted(rows)}
    return result
