"""`rpctrace index --cluster`: a local Dask cluster on 127.0.0.1 with two worker processes writes
exactly the tables of a local run."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("pyarrow", reason="rpctrace[index] (pyarrow) is not installed")
distributed = pytest.importorskip("distributed", reason="Dask distributed is not installed: pip install "
                                                        "'rpctrace[cluster]' (the test extras have it)")

from rpctrace import synth
from rpctrace.cli import main
from tables_helpers import read_index


def test_cluster_run_equals_local_run(tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i, scenario in enumerate(["audiosrv-access-denied", "busy-server", "nested", "lost-events", "async"]):
        synth.synthesize(scenario, inputs / f"{scenario}.etl", seed=10 + i, calls=10)
    (inputs / "cut.etl").write_bytes((inputs / "busy-server.etl").read_bytes()[:90_000])

    assert main(["index", str(inputs), "-o", str(tmp_path / "local"), "--jobs", "2", "--format", "json"]) == 2
    local = json.loads(capsys.readouterr().out)

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=40)
    try:
        assert len(cluster.workers) == 2
        code = main(["index", str(inputs), "-o", str(tmp_path / "cluster"), "--cluster", cluster.scheduler_address,
                     "--format", "json"])
        remote = json.loads(capsys.readouterr().out)
    finally:
        cluster.close()
    assert code == 2
    assert remote["where"] == cluster.scheduler_address
    for key in ("traces", "calls", "failures", "bad_inputs"):
        assert remote[key] == local[key], key
    assert local["traces"] == 6 and local["calls"] > 40
    assert read_index(tmp_path / "cluster") == read_index(tmp_path / "local")


def test_unreachable_scheduler_is_one_error(tmp_path):
    from rpctrace.errors import RpctraceError
    from rpctrace.tables.inputs import InputTask
    from rpctrace.tables.run import IndexOptions, run_cluster

    with pytest.raises(RpctraceError) as info:
        run_cluster("tcp://127.0.0.1:9", [InputTask("x.etl", "x.etl")], IndexOptions(str(tmp_path)), timeout=1)
    assert str(info.value).startswith("--cluster tcp://127.0.0.1:9: cannot reach the scheduler")
    assert "\n" not in str(info.value)
