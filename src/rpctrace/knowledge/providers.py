"""Provider GUIDs and names rpctrace knows by heart.

Kernel (NT Kernel Logger) events carry no GUID in their header: the header holds a *group*
(high byte of the HookId) and the consumer maps the group to the MOF class GUID.  The table is
the well-known one from the Windows SDK (evntrace.h / ntwmi.h group numbers, the GUIDs that
learn.microsoft.com lists per MOF class).  Hook 0x030A (Image load logged under the Process
group) is reported under the Image GUID, as consumers do.
"""

from __future__ import annotations

EVENT_TRACE = "68fdd900-4a3e-11d1-84f4-0000f80464e3"
DISK_IO = "3d6fa8d4-fe05-11d0-9dda-00c04fd7ba7c"
PAGE_FAULT = "3d6fa8d3-fe05-11d0-9dda-00c04fd7ba7c"
PROCESS = "3d6fa8d0-fe05-11d0-9dda-00c04fd7ba7c"
FILE_IO = "90cbdc39-4a3e-11d1-84f4-0000f80464e3"
THREAD = "3d6fa8d1-fe05-11d0-9dda-00c04fd7ba7c"
TCP_IP = "9a280ac0-c8e0-11d1-84e2-00c04fb998a2"
JOB = "3282fc76-feed-498e-8aa7-e70f459d430e"
UDP_IP = "bf3a50c5-a9c9-4988-a005-2df0b7c80f80"
REGISTRY = "ae53722e-c863-11d2-8659-00c04fa321a1"
DBG_PRINT = "13976d09-a327-438c-950b-7f03192815c7"
CONFIG = "01853a65-418f-4f36-aefc-dc0f1d2fd235"
SPARE1 = "99134383-5248-43fc-834b-529454e75df3"
WNF = "42695762-ea50-497a-9068-5cbbb35e0b95"
POOL = "0268a8b6-74fd-4302-9dd0-6e8f1795c0cf"
PERF_INFO = "ce1dbfb4-137e-4da6-87b0-3f59aa102cbc"
HEAP = "222962ab-6180-4b88-a825-346b75f2a24a"
OBJECT = "89497f50-effe-4440-8cf2-ce6b1cdcaca7"
POWER = "e43445e0-0903-48c3-b878-ff0fccebdd04"
MOD_BOUND = "a9152f00-3f58-4bee-92a1-70c7d079d5dd"
IMAGE = "2cb15d1d-5fc1-11d2-abe1-00a0c911f518"
DPC = "b2d14872-7c5b-463d-8419-ee9bf7d23e04"
CC = "7687a439-f752-45b8-b741-321aec0f8df9"
CRIT_SEC = "3ac66736-cc59-4cff-8115-8df50e39816b"
STACK_WALK = "def2fe46-7bd6-4b80-bd94-f57fe20d0ce3"
UMS = "9aec974b-5b8e-4118-9b92-3186d8002ce5"
ALPC = "45d8cccd-539f-4b72-a8b7-5c683142609a"
SPLIT_IO = "d837ca92-12b9-44a5-ad6a-3a65b3578aa8"
THREAD_POOL = "c861d0e2-a2c1-4d36-9f9c-970bab943a12"
HYPERVISOR = "7f2a405c-69b5-4bf9-a1f5-30e8f1afab5e"
HYPERVISOR_X = "2ce9a149-effe-42f0-a635-a1d39e26c8f2"
NULL = "00000000-0000-0000-0000-000000000000"

RPC = "6ad52b32-d609-4be9-ae07-ce8dae937e39"
#: not a Windows provider: the GUID rpctrace gives Process Monitor records (uuid5 of "rpctrace:procmon")
PROCMON = "e1826672-2ff3-58d4-bb35-7fe29b38a738"
#: not a Windows provider: the GUID rpctrace gives events decoded from network captures (uuid5,
#: URL namespace, of "rpctrace:net")
NET = "74ce6fec-483e-534b-9405-3f83ac23a6e4"
KERNEL_REGISTRY = "70eb4f03-c1de-4f73-a051-33d13d5413bd"
#: ndiscap.sys, the packets of `netsh trace capture=yes` (docs/packet-etl.md)
NDIS_PACKET_CAPTURE = "2ed6006e-4729-4609-b423-3ee7bcd678ef"
#: PktMon.sys, the packets of `pktmon start --capture` (docs/packet-etl.md)
PKTMON = "4d4f80d9-c8bd-4d73-bb5b-19c90402c5ac"

#: group number (high byte of a kernel HookId) -> MOF class GUID
KERNEL_GROUPS: dict[int, str] = {
    0x00: EVENT_TRACE,
    0x01: DISK_IO,
    0x02: PAGE_FAULT,
    0x03: PROCESS,
    0x04: FILE_IO,
    0x05: THREAD,
    0x06: TCP_IP,
    0x07: JOB,
    0x08: UDP_IP,
    0x09: REGISTRY,
    0x0A: DBG_PRINT,
    0x0B: CONFIG,
    0x0C: SPARE1,
    0x0D: WNF,
    0x0E: POOL,
    0x0F: PERF_INFO,
    0x10: HEAP,
    0x11: OBJECT,
    0x12: POWER,
    0x13: MOD_BOUND,
    0x14: IMAGE,
    0x15: DPC,
    0x16: CC,
    0x17: CRIT_SEC,
    0x18: STACK_WALK,
    0x19: UMS,
    0x1A: ALPC,
    0x1B: SPLIT_IO,
    0x1C: THREAD_POOL,
    0x1D: HYPERVISOR,
    0x1E: HYPERVISOR_X,
}

NAMES: dict[str, str] = {
    EVENT_TRACE: "EventTrace",
    DISK_IO: "DiskIo",
    PAGE_FAULT: "PageFault",
    PROCESS: "Process",
    FILE_IO: "FileIo",
    THREAD: "Thread",
    TCP_IP: "TcpIp",
    JOB: "Job",
    UDP_IP: "UdpIp",
    REGISTRY: "Registry",
    DBG_PRINT: "DbgPrint",
    CONFIG: "EventTraceConfig",
    WNF: "Wnf",
    POOL: "Pool",
    PERF_INFO: "PerfInfo",
    HEAP: "Heap",
    OBJECT: "Object",
    POWER: "Power",
    MOD_BOUND: "ModBound",
    IMAGE: "Image",
    DPC: "Dpc",
    CC: "Cc",
    CRIT_SEC: "CritSec",
    STACK_WALK: "StackWalk",
    UMS: "Ums",
    ALPC: "ALPC",
    SPLIT_IO: "SplitIo",
    THREAD_POOL: "ThreadPool",
    RPC: "Microsoft-Windows-RPC",
    KERNEL_REGISTRY: "Microsoft-Windows-Kernel-Registry",
    PROCMON: "Procmon",
    NDIS_PACKET_CAPTURE: "Microsoft-Windows-NDIS-PacketCapture",
    PKTMON: "Microsoft-Windows-PktMon",
}


def kernel_group_guid(group: int, opcode: int) -> str:
    """GUID a consumer reports for a kernel event of ``group``/``opcode``."""
    if group == 0x03 and opcode == 10:
        return IMAGE
    return KERNEL_GROUPS.get(group, NULL)
