"""KernelTraceControl ImageID / DbgID_RSDS events (image.id, image.dbgid).

Oracles: the real merged trace net.4.5.2.x64.etl (PerfView, MIT) holds thousands of them; the
trace writer emits them from the documented layout (rpctrace.synth.imageid) and dissect.etl reads
their classic headers independently (tests/synth/test_synth.py)."""

from __future__ import annotations

import collections
import os
import struct
import subprocess
import sys

from rpctrace.sources.etl import imageid
from rpctrace.sources.etl.reader import EtlReader


def _identities(path):
    out = collections.defaultdict(list)
    for ev in EtlReader(path).events():
        if ev.provider == imageid.IMAGE_ID_GUID:
            out[ev.kind].append(ev)
    return out


def test_real_merged_trace(samples):
    got = _identities(samples["net.4.5.2.x64.etl"])
    assert len(got["image.id"]) == 3590 and len(got["image.dbgid"]) == 3534
    assert collections.Counter(e.opcode for e in got["raw"]) == {0x40: 705, 0x25: 44, 0x20: 12}  # not decoded
    # the 64-bit ntdll of the recording machine, as the events give it
    ntdll = [e.fields for e in got["image.dbgid"] if e.fields["pdb_guid"] == "6048fdb6-2dcd-41c1-8835-594844ce7143"]
    assert ntdll and ntdll[0] == {"image_base": 8769520992256, "process_id": 4,
                                  "pdb_guid": "6048fdb6-2dcd-41c1-8835-594844ce7143", "pdb_age": 2,
                                  "pdb_name": "ntdll.pdb"}
    kernel = next(e for e in got["image.id"] if e.fields["original_file_name"] == "ntkrnlmp.exe")
    assert (kernel.pid, kernel.fields["process_id"], kernel.fields["time_date_stamp"]) == (0, 0, 1343269963)
    assert all(e.version == 2 and e.id == 0 for e in got["image.id"] + got["image.dbgid"])
    names = collections.Counter(e.fields["pdb_name"] for e in got["image.dbgid"])
    assert names["ntdll.pdb"] and names["wntdll.pdb"] and names["ntkrnlmp.pdb"]
    # every DbgID follows an image id for the same base
    bases = {(e.pid, e.fields["image_base"]) for e in got["image.id"]}
    assert sum((e.pid, e.fields["image_base"]) in bases for e in got["image.dbgid"]) >= 0.99 * len(got["image.dbgid"])


def test_pure_python_and_c_loop_agree(samples):
    """The C record loop hands classic records to the same Python decoder."""
    code = ("import sys; from rpctrace.sources.etl.reader import EtlReader; "
            "print(sum(hash((e.kind, tuple(sorted(e.fields.items())) if e.kind.startswith('image.') else 0)) & 0xFFFF "
            "for e in EtlReader(sys.argv[1]).events() if e.provider.startswith('b3e675d7')))")
    runs = []
    for pure in ("", "1"):
        env = dict(os.environ, RPCTRACE_PURE=pure, PYTHONHASHSEED="0")
        runs.append(subprocess.run([sys.executable, "-c", code, str(samples["net.4.5.2.x64.etl"])], env=env,
                                   capture_output=True, text=True, check=True).stdout)
    assert runs[0] == runs[1]


def test_layouts_and_short_payloads():
    guid = "ec83d8df-5559-46e0-b630-133ebd979266"
    import uuid

    for ptr, p in ((8, "Q"), (4, "I")):
        body = struct.pack(f"<{p}{p}II", 0x10000, 0x2000, 7, 0x5A000001) + "a.dll\0".encode("utf-16-le")
        assert imageid.decode(0, body, 0, len(body), ptr) == ("image.id", {
            "image_base": 0x10000, "image_size": 0x2000, "process_id": 7, "time_date_stamp": 0x5A000001,
            "original_file_name": "a.dll"})
        dbg = struct.pack(f"<{p}I", 0x10000, 7) + uuid.UUID(guid).bytes_le + struct.pack("<I", 3) + b"a.pdb\0"
        assert imageid.decode(0x24, dbg, 0, len(dbg), ptr)[1] == {
            "image_base": 0x10000, "process_id": 7, "pdb_guid": guid, "pdb_age": 3, "pdb_name": "a.pdb"}
        assert imageid.decode(0x24, dbg, 0, ptr + 23, ptr) is None  # too short: stays raw
        assert imageid.decode(0, body, 0, 2 * ptr + 7, ptr) is None
        unterminated = dbg[:-1] + b"x" * 10000
        assert len(imageid.decode(0x24, unterminated, 0, len(unterminated), ptr)[1]["pdb_name"]) == imageid.MAX_NAME_CHARS
    assert imageid.decode(0x40, b"\0" * 64, 0, 64, 8) is None


def test_writer_identities_round_trip(tmp_path):
    from rpctrace.synth import catalog, synthesize

    for ptr in (8, 4):
        path = tmp_path / f"t{ptr}.etl"
        synthesize("audiosrv-access-denied", path, None, seed=5, calls=1, clients=1, pointer_size=ptr)
        got = _identities(path)
        assert len(got["image.id"]) == len(got["image.dbgid"]) > 100 and not got["raw"]
        audiosrv = [e for e in got["image.dbgid"] if e.fields["pdb_name"] == "audiosrv.pdb"]
        guid, age, name = catalog.PDB_IDENTITIES[("audiosrv.dll", ptr)]
        assert audiosrv and all((e.fields["pdb_guid"], e.fields["pdb_age"]) == (guid, age) for e in audiosrv)
        assert all(e.tid is None and e.pid == e.fields["process_id"] for e in got["image.dbgid"])
