"""Static facts the synthetic machine is built from: modules, services, RPC interfaces, clients.

Why a catalog: the scenarios should look like a real Windows 10 1803 box (the article's
machine), so the images, command lines, service groups, accounts and interfaces are real ones.
Interface UUIDs, procedure names and opnums come from RPCMon's database
(shared/samples/rpc-databases/RPC_UUID_Map_Windows10_1909_18363.1977.rpcdb.json, Apache-2.0);
the service SIDs are computed (payloads.service_sid), the LOCAL SERVICE / SYSTEM accounts are
the well-known SIDs.  Symbol RVAs are made up but fixed, so a stack's frames always resolve to
the same module+offset; sizes are plausible.
"""

from __future__ import annotations

import zlib

SYSTEM_SID = "S-1-5-18"
LOCAL_SERVICE_SID = "S-1-5-19"
NETWORK_SERVICE_SID = "S-1-5-20"

VOLUME = "\\Device\\HarddiskVolume2"
SYSTEM32 = VOLUME + "\\Windows\\System32\\"
KERNEL_DIR = "\\SystemRoot\\system32\\"

#: module name -> (size on x64, size on x86, {symbol: RVA})
DLLS: dict[str, tuple[int, int, dict[str, int]]] = {
    "ntdll.dll": (0x1F0000, 0x19A000, {
        "NtOpenKeyEx": 0x9D3D0, "NtQueryValueKey": 0x9C390, "NtSetValueKey": 0x9C9F0, "NtCreateKey": 0x9C7B0,
        "NtAlpcSendWaitReceivePort": 0x9D6F0, "NtWaitForWorkViaWorkerFactory": 0x9D0F0,
        "TppWorkerThread": 0x2F460, "TppAlpcpExecuteCallback": 0x61D20, "RtlUserThreadStart": 0x6CEC0,
    }),
    "KERNEL32.DLL": (0xB2000, 0xF0000, {"BaseThreadInitThunk": 0x17BD0}),
    "KERNELBASE.dll": (0x2A3000, 0x1E2000, {
        "RegOpenKeyExW": 0x4A8B0, "RegQueryValueExW": 0x3EE90, "RegSetValueExW": 0x5B2F0, "RegCreateKeyExW": 0x4C1A0,
    }),
    "RPCRT4.dll": (0x121000, 0xBF000, {
        "Invoke": 0x6E3F0, "NdrStubCall3": 0x4D2C0, "NdrServerCallAll": 0x10AE0, "DispatchToStubInCNoAvrf": 0x5F1A0,
        "RPC_INTERFACE::DispatchToStubWorker": 0x2BB10, "RPC_INTERFACE::DispatchToStub": 0x2B8C0,
        "LRPC_SCALL::DispatchRequest": 0x2C7B0, "LRPC_SCALL::HandleRequest": 0x2E560,
        "LRPC_ADDRESS::HandleRequest": 0x2F390, "LRPC_ADDRESS::ProcessIO": 0x2E9D0, "LrpcIoComplete": 0x2D8F0,
        "NdrClientCall3": 0x4A830, "LRPC_BASE_CCALL::SendReceive": 0x3B4C0,
    }),
    "ucrtbase.dll": (0xFA000, 0x120000, {}),
    "msvcrt.dll": (0x9E000, 0xBE000, {}),
    "sechost.dll": (0xA2000, 0x79000, {}),
    "combase.dll": (0x324000, 0x25D000, {}),
    "advapi32.dll": (0xA3000, 0x7A000, {}),
    "user32.dll": (0x197000, 0x166000, {}),
    "SHELL32.dll": (0x14E0000, 0x1440000, {"Control_RunDLLW": 0x1B6230}),
    "mmsys.cpl": (0xA9000, 0x8C000, {"CEndpoint::MakeDefault": 0x3A2C0}),
    "AUDIOSES.DLL": (0x1A0000, 0x160000, {
        "CPolicyConfigClient::SetDefaultEndpointForPolicy": 0x8E1A0, "PolicyConfigHelper::SetDefaultEndpoint": 0x8F0B4,
    }),
    "audiosrv.dll": (0xD9000, 0xB0000, {"PolicyConfigSetDefaultEndpoint": 0x12D10, "PolicyConfigGetDeviceFormat": 0x14A80}),
    "MMDevAPI.dll": (0x7A000, 0x68000, {
        "CSubEndpointDevice::SetRegValue": 0x2A5C0, "CSubEndpointDevice::GetRegValue": 0x1B3E0,
    }),
    "AudioEndpointBuilder.dll": (0x8C000, 0x70000, {}),
    "dnsrslvr.dll": (0x4B000, 0x3D000, {}),
    "schedsvc.dll": (0x10E000, 0xD8000, {}),
    "usermgr.dll": (0xA6000, 0x86000, {}),
    "lsm.dll": (0x8D000, 0x70000, {}),
    "nsisvc.dll": (0x12000, 0xE000, {}),
    "umpo.dll": (0x34000, 0x2A000, {}),
    "appinfo.dll": (0x5D000, 0x4A000, {}),
    "dhcpcore.dll": (0x5A000, 0x48000, {}),
}

#: kernel module name -> (size on x64, size on x86, {symbol: RVA}, file name as recorded)
KERNEL_MODULES: list[tuple[str, int, int, dict[str, int], str]] = [
    ("ntoskrnl.exe", 0xAB6000, 0x6F2000, {
        "KiSystemServiceCopyEnd": 0x1D2D80, "NtOpenKeyEx": 0x5A4E10, "CmOpenKey": 0x5A3F20,
        "NtQueryValueKey": 0x59E9B0, "CmQueryValueKey": 0x59F1C0, "NtSetValueKey": 0x5B0A40,
        "CmSetValueKey": 0x5B1C70, "NtCreateKey": 0x5A6D10, "CmCreateKey": 0x5A7E80,
    }, KERNEL_DIR + "ntoskrnl.exe"),
    ("hal.dll", 0x9A000, 0x72000, {}, KERNEL_DIR + "hal.dll"),
    ("CI.dll", 0xD8000, 0xA4000, {}, KERNEL_DIR + "CI.dll"),
    ("Ntfs.sys", 0x2B2000, 0x1F6000, {}, KERNEL_DIR + "drivers\\Ntfs.sys"),
    ("tcpip.sys", 0x2D8000, 0x228000, {}, KERNEL_DIR + "drivers\\tcpip.sys"),
]

COMMON_DLLS = ["ntdll.dll", "KERNEL32.DLL", "KERNELBASE.dll", "ucrtbase.dll", "msvcrt.dll", "sechost.dll",
               "RPCRT4.dll", "combase.dll", "advapi32.dll"]

#: RPC call path on a server worker thread, innermost first (after the procedure itself).
SERVER_DISPATCH = [
    ("RPCRT4.dll", "Invoke"),
    ("RPCRT4.dll", "NdrStubCall3"),
    ("RPCRT4.dll", "NdrServerCallAll"),
    ("RPCRT4.dll", "DispatchToStubInCNoAvrf"),
    ("RPCRT4.dll", "RPC_INTERFACE::DispatchToStubWorker"),
    ("RPCRT4.dll", "RPC_INTERFACE::DispatchToStub"),
    ("RPCRT4.dll", "LRPC_SCALL::DispatchRequest"),
    ("RPCRT4.dll", "LRPC_SCALL::HandleRequest"),
    ("RPCRT4.dll", "LRPC_ADDRESS::HandleRequest"),
    ("RPCRT4.dll", "LRPC_ADDRESS::ProcessIO"),
    ("RPCRT4.dll", "LrpcIoComplete"),
    ("ntdll.dll", "TppAlpcpExecuteCallback"),
    ("ntdll.dll", "TppWorkerThread"),
    ("KERNEL32.DLL", "BaseThreadInitThunk"),
    ("ntdll.dll", "RtlUserThreadStart"),
]

#: registry API -> (kernel functions innermost first, ntdll stub, KERNELBASE API)
REGISTRY_APIS = {
    "open": (["CmOpenKey", "NtOpenKeyEx"], "NtOpenKeyEx", "RegOpenKeyExW"),
    "query_value": (["CmQueryValueKey", "NtQueryValueKey"], "NtQueryValueKey", "RegQueryValueExW"),
    "set_value": (["CmSetValueKey", "NtSetValueKey"], "NtSetValueKey", "RegSetValueExW"),
    "create": (["CmCreateKey", "NtCreateKey"], "NtCreateKey", "RegCreateKeyExW"),
}


class ServiceSpec:
    """One service hosted in its own svchost.exe: where it listens and what it serves."""

    __slots__ = ("name", "group", "split", "user_sid", "dll", "extra_dlls", "endpoint", "interfaces", "workers",
                 "values", "tag")

    def __init__(self, name, group, split, user_sid, dll, endpoint, interfaces, workers, values, extra_dlls=(),
                 tag=0):
        self.name = name
        self.group = group
        self.split = split
        self.user_sid = user_sid
        self.dll = dll
        self.extra_dlls = list(extra_dlls)
        self.endpoint = endpoint  # None: a dynamic "LRPC-<hex>" endpoint chosen per trace
        self.interfaces = interfaces  # {uuid: {opnum: procedure}}
        self.workers = workers
        self.values = values  # value names its workers read from ...\Services\<name>\Parameters
        self.tag = tag

    @property
    def command_line(self) -> str:
        cmd = f"C:\\WINDOWS\\system32\\svchost.exe -k {self.group} -p"
        return cmd + (f" -s {self.name}" if self.split else "")


AUDIO_IF = "35464382-ad29-4881-9392-b43e55b8f7ac"
AUDIO_NOTIFY_IF = "7c69ac10-fa12-4dbf-90d9-c7f1e40f5dc5"
DNS_IF = "45776b01-5956-4485-9f80-f428f7d60129"
SCHED_IF = "86d35949-83c9-4044-b424-db363231fd0c"
USERMGR_IF = "b18fbab6-56f8-4702-84e0-41053293a869"
LSM_IF = "11f25515-c879-400a-989e-b074d5f092fe"
LSM_SESSION_IF = "484809d6-4239-471b-b5bc-61df8c23ac48"
NSI_IF = "7ea70bcf-48af-4f6a-8968-6a440754d5fa"
POWER_IF = "6c9b7b96-45a8-4cca-9eb3-e21ccf8b5a89"
APPINFO_IF = "201ef99a-7fa0-444c-9399-19ba84f12a1a"
DHCP_IF = "3c4728c5-f0ab-448b-bda1-6ce01eb0a6d5"

SERVICES: dict[str, ServiceSpec] = {
    s.name: s
    for s in [
        ServiceSpec("Audiosrv", "LocalServiceNetworkRestricted", False, LOCAL_SERVICE_SID, "audiosrv.dll",
                    "AudioClientRpc",
                    {AUDIO_IF: {0: "AudioServerGetMixFormat", 38: "AudioSessionGetVolume",
                                61: "PolicyConfigGetDeviceFormat", 71: "PolicyConfigSetDefaultEndpoint",
                                103: "AudioVolumeGetMasterVolumeLevelScalar"},
                     AUDIO_NOTIFY_IF: {1: "s_mmeNotifyDeviceStateChanged", 4: "s_mmeNotifyDefaultDeviceChanged",
                                       8: "s_sndevtResolveSoundAlias"}},
                    2, ["ServiceDll", "ServiceDllUnloadOnStop"], ["MMDevAPI.dll", "AUDIOSES.DLL"], tag=0x2A),
        ServiceSpec("AudioEndpointBuilder", "LocalSystemNetworkRestricted", False, SYSTEM_SID,
                    "AudioEndpointBuilder.dll", None, {}, 2, ["ServiceDll"], ["MMDevAPI.dll"], tag=0x29),
        ServiceSpec("Dnscache", "NetworkService", False, NETWORK_SERVICE_SID, "dnsrslvr.dll", "DNSResolver",
                    {DNS_IF: {0: "R_ReadCache", 1: "R_ResolverGetConfig", 4: "R_ResolverQuery"}},
                    4, ["MaxCacheTtl", "EnableMulticast", "QueryIpMatching"], tag=0x1B),
        ServiceSpec("Schedule", "netsvcs", True, SYSTEM_SID, "schedsvc.dll", None,
                    {SCHED_IF: {0: "SchRpcHighestVersion", 1: "SchRpcRegisterTask", 2: "SchRpcRetrieveTask",
                                7: "SchRpcEnumTasks"}},
                    3, ["ServiceDll", "TasksFolder"], tag=0x12),
        ServiceSpec("UserManager", "netsvcs", True, SYSTEM_SID, "usermgr.dll", None,
                    {USERMGR_IF: {0: "svcQueryUserToken", 1: "svcGetConstrainedUserToken",
                                  2: "svcIsAllowedToActivateAsUser"}},
                    3, ["ServiceDll"], tag=0x31),
        ServiceSpec("LSM", "DcomLaunch", True, SYSTEM_SID, "lsm.dll", "LSMApi",
                    {LSM_IF: {0: "RpcGetUserToken", 6: "RpcGetReconnectId"},
                     LSM_SESSION_IF: {0: "RpcOpenSession", 5: "RpcGetUserName", 7: "RpcGetState"}},
                    3, ["ServiceDll", "fDenyTSConnections"], tag=0x08),
        ServiceSpec("nsi", "LocalService", True, LOCAL_SERVICE_SID, "nsisvc.dll", None,
                    {NSI_IF: {0: "RpcNsiGetParameter", 1: "RpcNsiGetAllParameters",
                              2: "RpcNsiEnumerateObjectsAllParameters"}},
                    2, ["ServiceDll"], tag=0x1E),
        ServiceSpec("Power", "DcomLaunch", True, SYSTEM_SID, "umpo.dll", "umpo",
                    {POWER_IF: {0: "UmpoRpcGetPowerConfiguration", 2: "UmpoRpcReadFromUserPowerKey",
                                3: "UmpoRpcReadACValue"}},
                    2, ["ServiceDll", "HibernateEnabled"], tag=0x07),
        ServiceSpec("Appinfo", "netsvcs", True, SYSTEM_SID, "appinfo.dll", None,
                    {APPINFO_IF: {0: "RAiLaunchAdminProcess", 1: "RAiProcessRunOnce"}},
                    2, ["ServiceDll"], tag=0x33),
        ServiceSpec("Dhcp", "LocalServiceNetworkRestricted", True, LOCAL_SERVICE_SID, "dhcpcore.dll", "dhcpcsvc",
                    {DHCP_IF: {0: "RpcSrvEnableDhcp", 2: "RpcSrvRenewLease"}},
                    2, ["ServiceDll"], tag=0x24),
    ]
}

#: Client programs: image name, path, command line, runs as the interactive user?
CLIENTS: list[tuple[str, str, str]] = [
    ("explorer.exe", VOLUME + "\\Windows\\explorer.exe", "C:\\WINDOWS\\Explorer.EXE"),
    ("chrome.exe", VOLUME + "\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
     '"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe" --type=utility --utility-sub-type=network.mojom.NetworkService'),
    ("SearchApp.exe", VOLUME + "\\Windows\\SystemApps\\Microsoft.Windows.Search_cw5n1h2txyewy\\SearchApp.exe",
     '"C:\\Windows\\SystemApps\\Microsoft.Windows.Search_cw5n1h2txyewy\\SearchApp.exe" -ServerName:CortanaUI.AppX8z9r6jm96hw4bsbneegw0kyxx296wr9t.mca'),
    ("OneDrive.exe", VOLUME + "\\Users\\alice\\AppData\\Local\\Microsoft\\OneDrive\\OneDrive.exe",
     '"C:\\Users\\alice\\AppData\\Local\\Microsoft\\OneDrive\\OneDrive.exe" /background'),
    ("taskhostw.exe", SYSTEM32 + "taskhostw.exe", "taskhostw.exe {222A245B-E637-4AE9-A93F-A59CA119A75E}"),
    ("sihost.exe", SYSTEM32 + "sihost.exe", "sihost.exe"),
    ("ctfmon.exe", SYSTEM32 + "ctfmon.exe", '"ctfmon.exe"'),
    ("Teams.exe", VOLUME + "\\Users\\alice\\AppData\\Local\\Microsoft\\Teams\\current\\Teams.exe",
     '"C:\\Users\\alice\\AppData\\Local\\Microsoft\\Teams\\current\\Teams.exe" --system-initiated'),
    ("msedge.exe", VOLUME + "\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe",
     '"C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe" --type=utility'),
    ("Code.exe", VOLUME + "\\Users\\alice\\AppData\\Local\\Programs\\Microsoft VS Code\\Code.exe",
     '"C:\\Users\\alice\\AppData\\Local\\Programs\\Microsoft VS Code\\Code.exe"'),
    ("dllhost.exe", SYSTEM32 + "dllhost.exe", "C:\\WINDOWS\\system32\\DllHost.exe /Processid:{AB8902B4-09CA-4BB6-B78D-A8F59079A8D5}"),
    ("WmiPrvSE.exe", SYSTEM32 + "wbem\\WmiPrvSE.exe", "C:\\WINDOWS\\system32\\wbem\\wmiprvse.exe -secured -Embedding"),
    ("notepad.exe", SYSTEM32 + "notepad.exe", '"C:\\WINDOWS\\system32\\notepad.exe"'),
    ("MsMpEng.exe", VOLUME + "\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.1903.4\\MsMpEng.exe",
     '"C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.1903.4\\MsMpEng.exe"'),
]

#: Processes of the boot session present in every trace: image, path, command line, account.
BASE_PROCESSES: list[tuple[str, str, str, str]] = [
    ("smss.exe", "\\SystemRoot\\System32\\smss.exe", "\\SystemRoot\\System32\\smss.exe", SYSTEM_SID),
    ("csrss.exe", SYSTEM32 + "csrss.exe",
     "%SystemRoot%\\system32\\csrss.exe ObjectDirectory=\\Windows SharedSection=1024,20480,768 Windows=On SubSystemType=Windows ServerDll=basesrv,1 ServerDll=winsrv:UserServerDllInitialization,3 ServerDll=sxssrv,4 ProfileControl=Off MaxRequestThreads=16",
     SYSTEM_SID),
    ("wininit.exe", SYSTEM32 + "wininit.exe", "wininit.exe", SYSTEM_SID),
    ("services.exe", SYSTEM32 + "services.exe", "C:\\WINDOWS\\system32\\services.exe", SYSTEM_SID),
    ("lsass.exe", SYSTEM32 + "lsass.exe", "C:\\WINDOWS\\system32\\lsass.exe", SYSTEM_SID),
    ("winlogon.exe", SYSTEM32 + "winlogon.exe", "winlogon.exe", SYSTEM_SID),
    ("dwm.exe", SYSTEM32 + "dwm.exe", '"dwm.exe"', "S-1-5-90-0-1"),
]

CONTROLLER = ("xperf.exe",
              VOLUME + "\\Program Files (x86)\\Windows Kits\\10\\Windows Performance Toolkit\\xperf.exe",
              "xperf -on PROC_THREAD+LOADER+ALPC+REGISTRY -stackwalk RegistryOpen+RegistryCreate+RegistryQueryValue"
              "+RegistrySetValue -start rpc -on Microsoft-Windows-RPC")

AUDIO_RENDER = "\\REGISTRY\\MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\MMDevices\\Audio\\Render"
AUDIO_DEVICE = "{34bb9f66-ad6b-4d17-b74b-7aace4320530}"
AUDIO_DEVICE_HDMI = "{8a3f7c21-5b0e-4c6d-9e12-3f4a5b6c7d8e}"


def symbol_rva(module: str, symbol: str, size: int) -> int:
    """RVA of ``symbol`` in ``module``: the catalog's value, else a stable made-up one."""
    known = DLLS.get(module, (0, 0, {}))[2].get(symbol)
    if known is None:
        for name, _s64, _s32, syms, _path in KERNEL_MODULES:
            if name == module:
                known = syms.get(symbol)
    if known is not None:
        return known
    return (0x1000 + zlib.crc32(f"{module}!{symbol}".encode()) % max(size - 0x2000, 0x1000)) & ~0xF


#: Return offsets seen in the article's stacks (shared/seed/article-excerpt.txt).
KNOWN_RETURN_OFFSETS = {
    ("ntoskrnl.exe", "KiSystemServiceCopyEnd"): 0x13,
    ("ntdll.dll", "TppWorkerThread"): 0x536,
    ("KERNEL32.DLL", "BaseThreadInitThunk"): 0x14,
    ("ntdll.dll", "RtlUserThreadStart"): 0x21,
    ("RPCRT4.dll", "Invoke"): 0x70,
    ("MMDevAPI.dll", "CSubEndpointDevice::SetRegValue"): 0x24D,  # MMDevAPI+0x2a80d, as in the issue
}


def call_site_offset(module: str, symbol: str) -> int:
    """Offset of the return address inside a function (stable per function)."""
    known = KNOWN_RETURN_OFFSETS.get((module, symbol))
    if known is not None:
        return known
    if symbol.startswith("Nt") and module == "ntdll.dll":
        return 0x14  # the syscall stub returns right after `syscall`
    return 0x20 + zlib.crc32(f"ret:{module}!{symbol}".encode()) % 0x380


def module_size(name: str, pointer_size: int) -> int:
    if name in DLLS:
        s64, s32, _ = DLLS[name]
        return s64 if pointer_size == 8 else s32
    base = 0x20000 + (zlib.crc32(name.lower().encode()) % 0x1E0) * 0x1000
    return base if pointer_size == 8 else base * 3 // 4 & ~0xFFF


#: PDB identity (GUID, age, PDB name) per (module, pointer size) of the modules whose PE/PDB
#: pairs tests/data/symbols holds: built by tools/build_symbol_testdata.py (clang + lld-link), which
#: prints this table; a test checks that it matches tests/data/symbols/manifest.json.
PDB_IDENTITIES: dict[tuple[str, int], tuple[str, int, str]] = {
    ("audiosrv.dll", 8): ("d2e7d935-fdb9-3bca-4c4c-44205044422e", 1, "audiosrv.pdb"),
    ("MMDevAPI.dll", 8): ("6f78c927-a92e-17e4-4c4c-44205044422e", 1, "MMDevAPI.pdb"),
    ("audiosrv.dll", 4): ("ad7da4cf-86cd-ee18-4c4c-44205044422e", 1, "audiosrv.pdb"),
    ("MMDevAPI.dll", 4): ("f1890df7-4469-31b0-4c4c-44205044422e", 1, "MMDevAPI.pdb"),
}
#: PDB names that are not the image's own name (the kernel's PDB is the multiprocessor build's)
PDB_NAMES = {"ntoskrnl.exe": "ntkrnlmp.pdb"}


def pdb_identity(module: str, pointer_size: int) -> tuple[str, int, str]:
    """(GUID, age, PDB name) the trace's DbgID_RSDS event gives ``module``: the built test
    module's for those tests/data/symbols holds, else a stable made-up one (no PDB exists)."""
    known = PDB_IDENTITIES.get((module, pointer_size))
    if known is not None:
        return known
    name = PDB_NAMES.get(module.lower()) or module.rsplit(".", 1)[0].lower() + ".pdb"  # as Windows' own
    digest = zlib.crc32(f"pdb:{module}:{pointer_size}".encode())
    guid = f"{digest:08x}-{digest >> 16 & 0xFFFF:04x}-4{digest & 0xFFF:03x}-8{digest >> 4 & 0xFFF:03x}-" \
           f"{zlib.crc32(module.lower().encode()):08x}{digest & 0xFFFF:04x}"
    return guid, 1, name
