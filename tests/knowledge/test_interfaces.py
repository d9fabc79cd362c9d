"""Interface database: common system interfaces, published opnums, user databases."""

from __future__ import annotations

import json

import pytest

from rpctrace.errors import InputError
from rpctrace.knowledge import interfaces


@pytest.fixture(autouse=True)
def no_user_databases(monkeypatch, tmp_path_factory):
    """Keep the machine's own interface databases ($RPCTRACE_RPCDB, ~/.config) out of the test.
    (A fixture here rather than in a conftest.py: tests/ imports the top-level conftest by name.)"""
    monkeypatch.delenv(interfaces.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-empty")))
    monkeypatch.delenv("APPDATA", raising=False)
    interfaces.reset_user_databases()
    yield
    interfaces.reset_user_databases()

EPMAPPER = "e1af8308-5d1f-11c9-91a4-08002b14a0fa"
EVENTLOG = "82273fdc-e32a-18c3-3f78-827929dc23ea"
SVCCTL = "367abb81-9844-35f1-ad32-98f038001003"
LSARPC = "12345778-1234-abcd-ef00-0123456789ab"
SAMR = "12345778-1234-abcd-ef00-0123456789ac"
NETLOGON = "12345678-1234-abcd-ef00-01234567cffb"
AUDIO = "35464382-ad29-4881-9392-b43e55b8f7ac"

# (uuid, name, module, {opnum: procedure}); the opnums are the ones Microsoft's protocol
# documents publish ([MS-RPCE] ept_*, [MS-EVEN], [MS-SCMR], [MS-LSAD]/[MS-LSAT], [MS-SAMR],
# [MS-NRPC]) and the article's PolicyConfigSetDefaultEndpoint = 71.
COMMON = [
    (EPMAPPER, "epmapper", "RpcEpMap.dll", {2: "ept_lookup", 3: "ept_map", 4: "ept_lookup_handle_free"}),
    (EVENTLOG, "eventlog", "wevtsvc.dll", {0: "ElfrClearELFW", 7: "ElfrOpenELW", 10: "ElfrReadELW",
                                           11: "ElfrReportEventW"}),
    (SVCCTL, "svcctl", "services.exe", {0: "RCloseServiceHandle", 1: "RControlService", 12: "RCreateServiceW",
                                        15: "ROpenSCManagerW", 16: "ROpenServiceW", 19: "RStartServiceW"}),
    (LSARPC, "lsarpc", "lsasrv.dll", {0: "LsarClose", 14: "LsarLookupNames", 15: "LsarLookupSids",
                                      44: "LsarOpenPolicy2", 57: "LsarLookupSids2"}),
    (SAMR, "samr", "samsrv.dll", {0: "SamrConnect", 1: "SamrCloseHandle", 7: "SamrOpenDomain",
                                  17: "SamrLookupNamesInDomain", 34: "SamrOpenUser", 64: "SamrConnect5"}),
    (NETLOGON, "netlogon", "netlogon.dll", {4: "NetrServerReqChallenge", 26: "NetrServerAuthenticate3",
                                            39: "NetrLogonSamLogonEx"}),
    (AUDIO, "AudioServer/PolicyConfig", "audiosrv.dll", {71: "PolicyConfigSetDefaultEndpoint"}),
]


@pytest.mark.parametrize("uuid,name,module,procs", COMMON, ids=[c[1] for c in COMMON])
def test_common_interfaces(uuid, name, module, procs):
    entry = interfaces.info(uuid)
    assert entry is not None
    assert (entry.name, entry.module) == (name, module)
    assert entry.build and entry.source
    for opnum, proc in procs.items():
        assert interfaces.lookup(uuid, opnum) == (name, proc)


def test_audio_policyconfig_incident():
    entry = interfaces.info("{35464382-AD29-4881-9392-B43E55B8F7AC}")  # braces and case don't matter
    assert entry.service == "Audiosrv"
    assert entry.build == "Windows 10 1909 18363.1977"
    assert entry.source == "rpcmon-win10-1909"
    assert entry.procedure(71) == "PolicyConfigSetDefaultEndpoint"
    assert len(entry.procedures) == 167


def test_services_from_rpcmon():
    assert interfaces.info(EVENTLOG).service == "EventLog"
    assert interfaces.info(NETLOGON).service == "Netlogon"
    assert interfaces.info(EPMAPPER).service == "RpcEptMapper"


def test_procedures_record_their_source_and_build():
    svcctl = interfaces.info(SVCCTL)
    spec_build = "[MS-SCMR] 35.0 Major 8/11/2025"
    assert (svcctl.source, svcctl.build) == ("spec:MS-SCMR", spec_build)
    # a name the specification gives
    assert svcctl.procedure_source(15) == "spec:MS-SCMR" and svcctl.procedure_build(15) == spec_build
    # an opnum the specification leaves as a placeholder (Opnum10NotUsedOnWire): named by the binaries
    assert svcctl.procedure_source(10) == "rpcmon-win10-1909"
    assert svcctl.procedure_build(10) == "Windows 10 1909 18363.1977"
    # past the end of the 1909 list: Windows Server 2022
    assert 66 in svcctl.procedures and svcctl.procedure_build(66) == "Windows Server 2022"
    assert svcctl.procedure_source(100000) is None


def test_unknown_and_partial_lookups():
    assert interfaces.lookup("00000000-1111-2222-3333-444444444444", 1) == (None, None)
    assert interfaces.lookup("not a uuid", 1) == (None, None)
    assert interfaces.lookup(None, None) == (None, None)
    assert interfaces.lookup(SVCCTL, None) == ("svcctl", None)
    assert interfaces.lookup(SVCCTL, 100000) == ("svcctl", None)
    assert interfaces.count() > 800


def test_names_callable_for_call_record():
    from rpctrace.correlate import call_record  # noqa: F401  (the contract: names(uuid, opnum) -> pair)
    names = interfaces.lookup
    assert names(AUDIO, 71) == ("AudioServer/PolicyConfig", "PolicyConfigSetDefaultEndpoint")


NEW_UUID = "11111111-2222-3333-4444-555555555555"


def _rpcmon_file(path):
    path.write_text(json.dumps({
        NEW_UUID: {"Module": "contoso.dll", "ModulePath": "C:\\x\\contoso.dll", "InterfaceId": NEW_UUID,
                   "ProceduresCount": 2, "Procedures": ["ContosoOpen", "ContosoClose"],
                   "Service": "ContosoSvc", "IsServiceRunning": True},
        SVCCTL: {"Module": "services.exe", "InterfaceId": SVCCTL, "Procedures": ["RMyClose", "RMyControl"],
                 "Service": None},
    }), encoding="utf-8")
    return path


def _generated_file(path):
    path.write_text(json.dumps({
        "format": "rpctrace-rpcdb", "version": 1,
        "interfaces": {
            AUDIO.upper(): {"name": "MyAudio", "build": "Windows 11 23H2", "procedures": {"71": "MySetDefault"}},
            NEW_UUID: {"name": "contoso-explicit", "module": "contoso2.dll", "procedures": ["A", "B", "C"]},
        },
    }), encoding="utf-8")
    return path


def test_user_database_via_env_var(tmp_path, monkeypatch):
    f = _rpcmon_file(tmp_path / "RPC_UUID_Map_Windows11_22H2_22621.1.rpcdb.json")
    monkeypatch.setenv(interfaces.ENV_VAR, str(f))
    interfaces.reset_user_databases()
    added = interfaces.info(NEW_UUID)
    assert added.module == "contoso.dll" and added.service == "ContosoSvc"
    assert added.build == "Windows11 22H2 22621.1"
    assert interfaces.lookup(NEW_UUID, 1) == (None, "ContosoClose")
    # overriding a packaged interface: procedures replaced, the packaged name kept
    assert interfaces.lookup(SVCCTL, 0) == ("svcctl", "RMyClose")
    assert interfaces.lookup(SVCCTL, 15) == ("svcctl", None)
    assert interfaces.info(SVCCTL).source.startswith("user:")


def test_user_database_folder_in_env_var(tmp_path, monkeypatch):
    folder = tmp_path / "dbs"
    folder.mkdir()
    _rpcmon_file(folder / "a.json")
    monkeypatch.setenv(interfaces.ENV_VAR, str(folder))
    interfaces.reset_user_databases()
    assert interfaces.lookup(NEW_UUID, 0) == (None, "ContosoOpen")


def test_user_database_default_config_location(tmp_path, monkeypatch):
    cfg = tmp_path / "cfg"
    (cfg / "rpctrace" / "rpcdb").mkdir(parents=True)
    _rpcmon_file(cfg / "rpctrace" / "rpcdb" / "mine.json")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(cfg))
    interfaces.reset_user_databases()
    assert interfaces.default_user_paths() == [cfg / "rpctrace" / "rpcdb"]
    assert interfaces.lookup(NEW_UUID, 0) == (None, "ContosoOpen")


def test_user_database_explicit_path_overrides_everything(tmp_path, monkeypatch):
    monkeypatch.setenv(interfaces.ENV_VAR, str(_rpcmon_file(tmp_path / "env.json")))
    interfaces.reset_user_databases()
    loaded = interfaces.load_user_databases([_generated_file(tmp_path / "explicit.json")])
    assert loaded == [tmp_path / "explicit.json"]
    assert interfaces.lookup(NEW_UUID, 2) == ("contoso-explicit", "C")  # explicit beats $RPCTRACE_RPCDB
    assert interfaces.info(NEW_UUID).service == "ContosoSvc"  # left out -> falls back to the layer below
    audio = interfaces.info(AUDIO)
    assert audio.name == "MyAudio" and audio.build == "Windows 11 23H2"
    assert audio.procedure(71) == "MySetDefault" and audio.procedure(0) is None
    assert audio.module == "audiosrv.dll" and audio.service == "Audiosrv"  # packaged values kept
    interfaces.reset_user_databases()
    monkeypatch.delenv(interfaces.ENV_VAR)
    assert interfaces.lookup(AUDIO, 71) == ("AudioServer/PolicyConfig", "PolicyConfigSetDefaultEndpoint")


def test_packaged_file_is_a_valid_user_database(tmp_path):
    import gzip
    from importlib import resources
    data = resources.files("rpctrace.knowledge").joinpath("data", "interfaces.json.gz").read_bytes()
    (tmp_path / "copy.json").write_bytes(gzip.decompress(data))
    interfaces.load_user_databases([tmp_path / "copy.json"])
    assert interfaces.lookup(SVCCTL, 15) == ("svcctl", "ROpenSCManagerW")
    loaded = interfaces.info(SVCCTL)
    assert loaded.specs == ("MS-SCMR",) and loaded.procedure_source(10) == "rpcmon-win10-1909"


@pytest.mark.parametrize("content,needle", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({"x": {"Foo": 1}}), "neither an RPCMon interface"),
    (json.dumps({"interfaces": {"nope": {}}}), "bad interface entry"),
    (json.dumps({"interfaces": {NEW_UUID: {"procedures": {"x": "A"}}}}), "is not a number"),
])
def test_bad_user_database(tmp_path, content, needle):
    f = tmp_path / "bad.json"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as exc:
        interfaces.load_user_databases([f])
    assert needle in str(exc.value) and str(f) in str(exc.value)


def test_missing_user_database(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        interfaces.load_user_databases([tmp_path / "absent.json"])
