"""svchost command lines -> services."""

from __future__ import annotations

import pytest

from rpctrace.knowledge import interfaces, services


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

AUDIO = "35464382-ad29-4881-9392-b43e55b8f7ac"
SVCHOST = r"C:\Windows\System32\svchost.exe"


@pytest.mark.parametrize("command_line,expected", [
    (r"C:\Windows\system32\svchost.exe -k netsvcs -p -s Schedule", ["Schedule"]),
    (r'"C:\Windows\System32\svchost.exe" -k LocalServiceNetworkRestricted -p -s Audiosrv', ["Audiosrv"]),
    (r"C:\WINDOWS\SYSTEM32\SVCHOST.EXE -K RPCSS -P -S RpcEptMapper", ["RpcEptMapper"]),
    (r"C:\Windows\system32\svchost.exe /k netsvcs /s gpsvc", ["gpsvc"]),
    (r"svchost.exe -k LocalServiceNetworkRestricted -p", []),
    (r"C:\Windows\system32\svchost.exe -k DcomLaunch -p", []),
    (r'"C:\Program Files\x\svchost.exe" -s Fake', ["Fake"]),  # quoted path with spaces
    (r"C:\Windows\System32\lsass.exe -s NotASvchost", []),
    (r"C:\Windows\system32\svchost.exe -k netsvcs -s", []),  # -s without a value
    ("", []),
    (None, []),
])
def test_services_of(command_line, expected):
    assert services.services_of(command_line) == expected


def test_parse_svchost_fields():
    parsed = services.parse_svchost(r'"C:\Windows\System32\svchost.exe" -k LocalServiceNetworkRestricted -p')
    assert parsed == services.SvchostCommand("LocalServiceNetworkRestricted", None, True)
    assert services.svchost_group(r"C:\Windows\system32\svchost.exe /K netsvcs") == "netsvcs"
    assert services.parse_svchost(r"C:\Windows\explorer.exe") is None


def test_split_command_line_rules():
    split = services.split_command_line
    assert split(r'"C:\Program Files\a.exe" -k "Two Words"') == [r"C:\Program Files\a.exe", "-k", "Two Words"]
    assert split(r'a\\"b c"') == [r"a\b c"]
    assert split(r'a\"b') == ['a"b']
    assert split(r"a\\b  c") == [r"a\\b", "c"]
    assert split('""') == [""]


def test_service_for_prefers_dash_s():
    cmd = r"C:\Windows\system32\svchost.exe -k LocalServiceNetworkRestricted -p -s Audiosrv"
    assert services.service_for(SVCHOST, cmd, None) == "Audiosrv"
    assert services.service_for(SVCHOST, r"C:\Windows\system32\svchost.exe -k netsvcs -s Winmgmt", AUDIO) == "Winmgmt"


def test_service_for_uses_the_interface_without_dash_s():
    cmd = r"C:\Windows\system32\svchost.exe -k LocalServiceNetworkRestricted -p"
    assert services.service_for(SVCHOST, cmd, AUDIO) == "Audiosrv"
    assert services.service_for(r"\Device\HarddiskVolume3\Windows\System32\svchost.exe", None, AUDIO) == "Audiosrv"
    assert services.service_for(None, cmd, AUDIO.upper()) == "Audiosrv"  # image unknown: the command line says svchost
    assert services.service_for(SVCHOST, cmd, None) is None
    assert services.service_for(SVCHOST, cmd, "00000000-1111-2222-3333-444444444444") is None


def test_service_for_non_svchost_is_none():
    # netlogon.dll's interface has service Netlogon in the database, but lsass is no svchost
    assert services.service_for(r"C:\Windows\System32\lsass.exe", r"C:\Windows\system32\lsass.exe",
                                "12345678-1234-abcd-ef00-01234567cffb") is None
    assert services.service_for(None, None, AUDIO) is None
