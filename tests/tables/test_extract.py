"""The per-trace extractor, the host a trace is filed under, and the coverage of a trace."""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import pytest

from rpctrace import synth
from rpctrace.pipeline.extract import extract
from rpctrace.tables.rows import host_of
from rpctrace.tables.schema import SCHEMA_VERSION, TABLES

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def audiosrv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("t") / "audiosrv.etl"
    synth.synthesize("audiosrv-access-denied", path, seed=1, calls=8)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_extract_is_a_function_of_the_file(audiosrv):
    a = extract(str(audiosrv), sha256=_sha(audiosrv))
    b = extract(str(audiosrv), sha256=_sha(audiosrv))
    assert a.columns == b.columns and a.trace_id == _sha(audiosrv)[:20]
    for name, table in TABLES.items():
        assert list(a.columns[name]) == table.names
    assert a.counts["traces"] == 1 and a.calls == len(a.columns["calls"]["call_id"]) > 8
    assert a.day == "2019-04-15" and a.host.startswith("unnamed-")
    row = {k: v[0] for k, v in a.columns["traces"].items()}
    assert row["schema_version"] == SCHEMA_VERSION and row["error"] is None
    assert row["findings"] == 1 and row["failures"] == len(a.columns["failures"]["kind"])
    # the one failure explain blames carries its finding and identity
    blamed = [i for i, f in enumerate(a.columns["failures"]["finding"]) if f]
    assert len(blamed) == 1
    fail = {k: v[blamed[0]] for k, v in a.columns["failures"].items()}
    assert fail["status_name"] == "STATUS_ACCESS_DENIED" and fail["identity_service"] == "Audiosrv"
    assert fail["finding_call_id"] == fail["call_id"] and "PolicyConfigSetDefaultEndpoint" in fail["finding_summary"]


def test_written_files_carry_the_schema(audiosrv, tmp_path):
    import pyarrow.parquet as pq

    from rpctrace.tables import store

    ex = extract(str(audiosrv), sha256=_sha(audiosrv))
    store.prepare(str(tmp_path))
    written = store.write_file_set(str(tmp_path), ex)
    for name, rel in written.manifest["files"].items():
        assert rel == f"{name}/host={ex.host}/day={ex.day}/{ex.trace_id}-v{SCHEMA_VERSION}.parquet"
        schema = pq.read_schema(tmp_path / rel)
        assert schema.names == TABLES[name].names
        assert schema.metadata[b"rpctrace.schema_version"] == str(SCHEMA_VERSION).encode()
        assert "host" not in schema.names and "day" not in schema.names  # partitions only
    described = json.loads((tmp_path / "_schema.json").read_text())
    assert described["schema_version"] == SCHEMA_VERSION and set(described["tables"]) == set(TABLES)


def test_host_from_the_procmon_header(tmp_path):
    from rpctrace.sources.pml.reader import PmlReader

    path = tmp_path / "reg.pml"
    path.write_bytes(zlib.decompress((DATA / "CompressedLogFileUTC64RegistryPML").read_bytes()))
    with PmlReader(path) as reader:
        info = reader.stats.summary()
    assert info["computer"] == "DESKTOP-6PCIALL"
    host, name, source = host_of([info])
    assert (host, name) == ("DESKTOP-6PCIALL", "DESKTOP-6PCIALL") and "Procmon" in source


def test_host_from_event_records(tmp_path):
    ns = "http://schemas.microsoft.com/win/2004/08/events/event"
    events = "".join(
        f'<Event xmlns="{ns}"><System><Provider Name="Microsoft-Windows-RPC" '
        'Guid="{6ad52b32-d609-4be9-ae07-ce8dae937e39}"/><EventID>9</EventID><Version>1</Version><Level>4</Level>'
        f'<Task>0</Task><Opcode>0</Opcode><TimeCreated SystemTime="2024-05-01T10:00:0{i}.0000000Z"/>'
        f'<EventRecordID>{i}</EventRecordID><Execution ProcessID="4" ThreadID="8"/>'
        f"<Computer>{name}</Computer></System><EventData><Data Name=\"Status\">5</Data></EventData></Event>"
        for i, name in enumerate(["wks-7.corp.example", "other"], 1))
    path = tmp_path / "rpc.xml"
    path.write_text(f"<Events>{events}</Events>")
    ex = extract(str(path), sha256=_sha(path))
    assert ex.host == "wks-7.corp.example" and ex.day == "2024-05-01"
    row = {k: v[0] for k, v in ex.columns["traces"].items()}
    assert row["computer_name"] == "wks-7.corp.example" and "first of 2 computers" in row["host_source"]
    assert row["format"] == "eventxml"


def test_host_values_are_safe_directory_names():
    host, name, _ = host_of([{"computer": "../../etc/pass wd\x00\u202e", "format": "evtx"}])
    assert "/" not in host and ".." not in host.split("_")[0] and host.isprintable() and len(host) <= 63
    assert "\\x00" in name  # the name as written, escaped
    assert host_of([{"computer": "."}])[0] == "_"


def test_etl_fallback_host_is_stable_and_said():
    header = {"boot_time": 132_000_000_000_000_000, "os_build": 17134, "cpus": 4, "cpu_mhz": 2592, "perf_freq": 10**7,
              "pointer_size": 8}
    first = host_of([{"header": header}])
    assert first == host_of([{"header": dict(header)}])
    assert first[0].startswith("unnamed-") and first[1] is None and first[2].startswith("fallback:")
    assert host_of([{"header": {**header, "boot_time": 1}}])[0] != first[0]
    assert host_of([{}])[0] == "unknown"


def _check(capsys, path) -> dict:
    from rpctrace.cli import main

    main(["check", str(path), "--format", "json"])
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("scenario", ["audiosrv-access-denied", "lost-events"])
def test_coverage_is_what_check_reports(tmp_path, capsys, scenario):
    path = tmp_path / f"{scenario}.etl"
    synth.synthesize(scenario, path, seed=2, calls=10)
    ex = extract(str(path), sha256=_sha(path))
    row = {k: v[0] for k, v in ex.columns["traces"].items()}
    checked = _check(capsys, path)
    events = checked["events"]
    assert row["missing"] == checked["missing"]
    assert all(line in row["lacks"] for line in checked["advice"])
    assert (row["events_lost"], row["buffers_lost"]) == (checked["lost_events"], checked["lost_buffers"])
    assert row["rpc_events"] == events.get("rpc.client_start", 0) + events.get("rpc.server_start", 0) > 0
    assert row["rpc_stop_events"] == events.get("rpc.client_stop", 0) + events.get("rpc.server_stop", 0)
    assert row["alpc_events"] == sum(n for k, n in events.items() if k.startswith("alpc.")) > 0
    assert row["image_loads"] == events.get("image.load", 0) + events.get("image.rundown", 0)
    assert row["calls"] == checked["calls"]
    if scenario == "lost-events":
        assert row["events_lost"] > 0 and any(line.startswith("the logger lost") for line in row["lacks"])
    else:
        assert row["stacks"] > 0 and row["registry_events"] > 0
