"""A call that only a network capture shows names its client and server by address:port in the
table and in the tree (there is no process or thread to name), the same in the C row maker and in
the Python definition of the row."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from rpctrace.cli import main
from rpctrace.render.calls import _row_maker, _table_row_any

NETLOGON = Path(__file__).resolve().parents[1] / "data" / "net" / "dce_rpc_netlogon.pcapng"


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def test_table_names_capture_sides_by_address():
    rc, out, err = _run("calls", str(NETLOGON))
    assert rc == 0
    row = out.splitlines()[1]
    assert "10.10.10.121:58774" in row and "10.10.10.100:49676" in row and "?(-:-)" not in row
    assert "netlogon!NetrLogonSamLogonWithFlags" in row
    assert "a network capture alone" in err  # what the capture cannot show is said


def test_c_and_python_rows_agree_for_capture_records():
    record = {"id": 7, "start": "2021-03-25T09:14:18.3776610Z", "duration_us": 758.0, "mode": None,
              "client": {"pid": None, "tid": None, "image": None, "address": "fe80::1", "port": 58774},
              "server": {"pid": None, "tid": None, "image": None, "service": None, "address": "10.0.0.2",
                         "port": None},
              "interface": {"uuid": None, "name": "netlogon"}, "opnum": 30, "procedure": None,
              "endpoint": "49676", "status": 0, "confidence": 0.4, "failures": []}
    row = _row_maker()(record)
    assert row == _table_row_any(record)
    assert "[fe80::1]:58774" in row and " 10.0.0.2 " in row


def test_tree_names_capture_sides_by_address():
    rc, out, _err = _run("tree", str(NETLOGON))
    assert rc == 0
    assert out.splitlines()[0].startswith("client 10.10.10.121 (from the capture")
    assert "-> server 10.10.10.100:49676 (from the capture)" in out
    assert "client not recorded" not in out and "thread ?" not in out
