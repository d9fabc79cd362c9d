"""The capture recipe: what to enable on Windows so that rpctrace has what it reads.

rpctrace reads (docs/events.md): kernel Process/Thread/Image events (tables, rundown), kernel
Registry and FileIo events (what the server thread did), kernel ALPC events (which thread took the
message), StackWalk stacks on ALPC and registry events (who asked), Microsoft-Windows-RPC (client
and server call start/stop: interface, opnum, endpoint) and Microsoft-Windows-Kernel-Registry
(create/open/set-value with their status).  This module writes the same selection three ways:

* :func:`wprp_profile` - a Windows Performance Recorder profile (``wpr -start FILE!rpctrace``);
* :func:`xperf_commands` - the xperf equivalent (kernel session with stack walking + a user
  session, merged by ``xperf -stop ... -d``);
* :func:`logman_commands` - logman, built into every Windows (no stack walking: logman cannot
  enable it; the calls are still rebuilt, only the "who asked" stacks are missing).

Names, and where they were read (also listed in docs/capture.md):

* WPR ``SystemProvider`` keywords ``ProcessThread``, ``Loader``, ``Registry``, ``FileIO``,
  ``FileIOInit``, ``Alpc`` - the ``SystemKeywordEnumeration`` of WPRControlProfiles.xsd,
  learn.microsoft.com/windows-hardware/test/wpt/wprcontrolprofiles-schema, and
  "Keyword (in SystemProvider)", learn.microsoft.com/windows-hardware/test/wpt/keyword--in-systemprovider-.
* WPR ``Stack`` values ``AlpcSendMessage``, ``AlpcReceiveMessage``, ``AlpcWaitForReply``,
  ``AlpcWaitForNewMessage``, ``AlpcUnwait``, ``RegistryCreateKey``, ``RegistryOpenKey``,
  ``RegistrySetValue``, ``RegistryQueryValue`` ... - the "Stack" element page,
  learn.microsoft.com/windows-hardware/test/wpt/stack-wpa (Remarks: possible values).
* xperf kernel flags ``PROC_THREAD+LOADER+REGISTRY+FILE_IO+FILE_IO_INIT+ALPC`` and ``-stackwalk``
  names ``AlpcSendMessage`` ... ``RegOpenKey``, ``RegCreateKey``, ``RegSetValue`` ... - the
  stack walking flag list printed by ``xperf -help stackwalk`` (NT Kernel Logger provider) and the
  ``xperf -providers K`` flag names; xbootmgr uses the same (``-traceflags ...+file_io+file_io_init+registry
  -stackwalk ...+RegOpenKey+RegSetValue``).
* logman kernel flags as a hex mask of EVENT_TRACE_FLAG_* (evntrace.h): PROCESS 0x1, THREAD 0x2,
  IMAGE_LOAD 0x4, REGISTRY 0x20000, ALPC 0x100000, FILE_IO 0x2000000, FILE_IO_INIT 0x4000000.
* Provider GUIDs: Microsoft-Windows-RPC {6ad52b32-d609-4be9-ae07-ce8dae937e39},
  Microsoft-Windows-Kernel-Registry {70eb4f03-c1de-4f73-a051-33d13d5413bd}
  (shared/reference/etw-and-alpc-facts.md §2, §3b).

Everything here is a pure function of its arguments: the same inputs give the same text.
"""

from __future__ import annotations

import ntpath
from xml.sax.saxutils import escape, quoteattr

from rpctrace.knowledge.providers import KERNEL_REGISTRY, RPC

PROFILE_NAME = "rpctrace"
SYSTEM_COLLECTOR_ID = "SystemCollector_rpctrace"
EVENT_COLLECTOR_ID = "EventCollector_rpctrace"
SYSTEM_PROVIDER_ID = "SystemProvider_rpctrace"
USER_SESSION = "rpctrace"

#: WPR SystemProvider keywords (WPRControlProfiles.xsd SystemKeywordEnumeration)
WPR_KEYWORDS = ("ProcessThread", "Loader", "Registry", "FileIO", "FileIOInit", "Alpc")

#: WPR Stack values for the kernel ALPC events (types 33-37) rpctrace pairs
WPR_ALPC_STACKS = ("AlpcSendMessage", "AlpcReceiveMessage", "AlpcWaitForReply", "AlpcWaitForNewMessage", "AlpcUnwait")
#: WPR Stack values for the kernel Registry events rpctrace attributes to a call
WPR_REGISTRY_STACKS = (
    "RegistryCreateKey", "RegistryOpenKey", "RegistrySetValue", "RegistryDeleteKey", "RegistryDeleteValue",
    "RegistryQueryValue", "RegistryQueryKey", "RegistryEnumerateKey", "RegistryEnumerateValueKey",
    "RegistrySetInformation",
)

#: xperf kernel flags (xperf -providers K)
XPERF_KERNEL_FLAGS = ("PROC_THREAD", "LOADER", "REGISTRY", "FILE_IO", "FILE_IO_INIT", "ALPC")
#: xperf -stackwalk names (xperf -help stackwalk, NT Kernel Logger provider)
XPERF_ALPC_STACKS = ("AlpcSendMessage", "AlpcReceiveMessage", "AlpcWaitForReply", "AlpcWaitForNewMessage", "AlpcUnwait")
XPERF_REGISTRY_STACKS = (
    "RegCreateKey", "RegOpenKey", "RegSetValue", "RegDeleteKey", "RegDeleteValue", "RegQueryValue",
    "RegQueryKey", "RegEnumerateKey", "RegEnumerateValueKey", "RegSetInformation",
)

#: EVENT_TRACE_FLAG_* (evntrace.h) for the logman kernel session
KERNEL_FLAG_BITS = {
    "PROCESS": 0x00000001,
    "THREAD": 0x00000002,
    "IMAGE_LOAD": 0x00000004,
    "REGISTRY": 0x00020000,
    "ALPC": 0x00100000,
    "FILE_IO": 0x02000000,
    "FILE_IO_INIT": 0x04000000,
}
KERNEL_FLAGS = sum(KERNEL_FLAG_BITS.values())  # 0x06120007


class UserProvider:
    """One manifest provider of the user session: name, GUID, keywords, level."""

    def __init__(self, name: str, guid: str, keywords: int, level: int, why: str):
        self.name, self.guid, self.keywords, self.level, self.why = name, guid, keywords, level, why

    @property
    def keywords_hex(self) -> str:
        return f"0x{self.keywords:X}"


#: Microsoft-Windows-RPC: all keywords; level 5 (verbose) so that event 9 (RpcRaiseException,
#: verbose) is kept next to 5/6/7/8 (informational), 1 (EEInfo) and 14-16.
#: Microsoft-Windows-Kernel-Registry keywords (facts §3b): CreateKey 0x1000, OpenKey 0x2000,
#: DeleteKey 0x4000, SetValueKey 0x100, DeleteValueKey 0x200 - the operations that fail with
#: ACCESS DENIED when a key's ACL is wrong; queries come from the kernel Registry events already.
USER_PROVIDERS = (
    UserProvider("Microsoft-Windows-RPC", RPC, 0xFFFFFFFFFFFFFFFF, 5,
                 "RPC client/server call start and stop (5-8), EEInfo (1), RpcRaiseException (9), endpoints (16)"),
    UserProvider("Microsoft-Windows-Kernel-Registry", KERNEL_REGISTRY, 0x1000 | 0x2000 | 0x4000 | 0x100 | 0x200, 4,
                 "registry create/open/delete/set-value with their NTSTATUS"),
)


def _attr(value: str) -> str:
    return quoteattr(str(value))


def _comment(text: str) -> str:
    """An XML comment (``--`` may not occur inside one, nor a trailing ``-``)."""
    text = escape(str(text))
    while "--" in text:
        text = text.replace("--", "- -")
    return f"<!-- {text.rstrip('-')} -->"


def wprp_profile() -> str:
    """The WPR recording profile (.wprp XML) enabling everything rpctrace reads.

    Start it with ``wpr -start rpctrace.wprp!rpctrace -filemode`` and stop with
    ``wpr -stop OUT.etl``.  Element order follows the WPR rule (collectors, system provider, event
    providers, profiles).
    """
    out: list[str] = []
    w = out.append
    w('<?xml version="1.0" encoding="utf-8"?>')
    w("<!--")
    w("  rpctrace capture profile: kernel ALPC, process/thread, image, registry and file events,")
    w("  stacks on the ALPC and registry events, plus Microsoft-Windows-RPC and")
    w("  Microsoft-Windows-Kernel-Registry.  Written by `rpctrace record`.")
    w("  Start:  wpr -start rpctrace.wprp!rpctrace -filemode     (elevated prompt)")
    w("  Stop:   wpr -stop incident.etl")
    w("  Names from the WPR schema: SystemProvider Keyword values (WPRControlProfiles.xsd,")
    w("  learn.microsoft.com/windows-hardware/test/wpt/wprcontrolprofiles-schema) and Stack values")
    w("  (learn.microsoft.com/windows-hardware/test/wpt/stack-wpa).")
    w("-->")
    w('<WindowsPerformanceRecorder Version="1.0" Author="rpctrace" Comments="Windows local RPC (ALPC/LRPC) capture for rpctrace">')
    w("  <Profiles>")
    w(f"    <SystemCollector Id={_attr(SYSTEM_COLLECTOR_ID)} Name=\"NT Kernel Logger\">")
    w('      <BufferSize Value="1024"/>')
    w('      <Buffers Value="256"/>')
    w("    </SystemCollector>")
    w(f"    <EventCollector Id={_attr(EVENT_COLLECTOR_ID)} Name={_attr('rpctrace user events')}>")
    w('      <BufferSize Value="1024"/>')
    w('      <Buffers Value="64"/>')
    w("    </EventCollector>")
    w(f"    <SystemProvider Id={_attr(SYSTEM_PROVIDER_ID)}>")
    w("      <Keywords>")
    for kw in WPR_KEYWORDS:
        w(f"        <Keyword Value={_attr(kw)}/>")
    w("      </Keywords>")
    w("      <Stacks>")
    w("        " + _comment("ALPC: which code sent or took each message"))
    for st in WPR_ALPC_STACKS:
        w(f"        <Stack Value={_attr(st)}/>")
    w("        " + _comment("Registry: which code opened or wrote the key"))
    for st in WPR_REGISTRY_STACKS:
        w(f"        <Stack Value={_attr(st)}/>")
    w("      </Stacks>")
    w("    </SystemProvider>")
    for p in USER_PROVIDERS:
        w("    " + _comment(f"{p.name} {{{p.guid}}}: {p.why}"))
        w(f"    <EventProvider Id={_attr('EventProvider_' + p.name)} Name={_attr(p.guid)} Level={_attr(str(p.level))}>")
        w("      <Keywords>")
        w(f"        <Keyword Value={_attr(p.keywords_hex)}/>")
        w("      </Keywords>")
        w("    </EventProvider>")
    w(f"    <Profile Id={_attr(PROFILE_NAME + '.Verbose.File')} Name={_attr(PROFILE_NAME)}"
      f" Description={_attr('rpctrace: Windows local RPC calls and what their server threads did')}"
      ' LoggingMode="File" DetailLevel="Verbose">')
    w("      <Collectors>")
    w(f"        <SystemCollectorId Value={_attr(SYSTEM_COLLECTOR_ID)}>")
    w(f"          <SystemProviderId Value={_attr(SYSTEM_PROVIDER_ID)}/>")
    w("        </SystemCollectorId>")
    w(f"        <EventCollectorId Value={_attr(EVENT_COLLECTOR_ID)}>")
    w("          <EventProviders>")
    for p in USER_PROVIDERS:
        w(f"            <EventProviderId Value={_attr('EventProvider_' + p.name)}/>")
    w("          </EventProviders>")
    w("        </EventCollectorId>")
    w("      </Collectors>")
    w("    </Profile>")
    w("  </Profiles>")
    w("</WindowsPerformanceRecorder>")
    return "\n".join(out) + "\n"


def _q(path: str) -> str:
    """A path quoted for cmd.exe (double quotes; a double quote cannot occur in a Windows path)."""
    path = str(path).replace('"', "")
    return f'"{path}"'


def _side_files(out_path: str) -> tuple[str, str]:
    """The kernel and user session files written next to ``out_path`` (``X.kernel.etl``, ``X.user.etl``)."""
    root, ext = ntpath.splitext(str(out_path))
    if ext.lower() != ".etl":
        root = str(out_path)
    return f"{root}.kernel.etl", f"{root}.user.etl"


def wpr_commands(profile_path: str, out_path: str) -> list[list[str]]:
    """The two wpr.exe invocations (argument vectors): start with the profile, stop into ``out_path``."""
    return [
        ["wpr", "-start", f"{profile_path}!{PROFILE_NAME}", "-filemode"],
        ["wpr", "-stop", str(out_path)],
    ]


def wpr_command_lines(profile_path: str, out_path: str) -> list[str]:
    start, stop = wpr_commands(profile_path, out_path)
    return [f"wpr -start {_q(start[2])} -filemode", f"wpr -stop {_q(stop[2])}"]


def xperf_commands(out_path: str) -> list[str]:
    """xperf: start the kernel logger (flags + stack walking) and a user session, then stop both
    and merge them into ``out_path`` (``-d`` merges and adds the image identity rundown)."""
    kernel, user = _side_files(out_path)
    stacks = "+".join(XPERF_ALPC_STACKS + XPERF_REGISTRY_STACKS)
    providers = "+".join(f"{p.name}:{p.keywords_hex}:{p.level}" for p in USER_PROVIDERS)
    return [
        (f"xperf -on {'+'.join(XPERF_KERNEL_FLAGS)} -stackwalk {stacks} "
         f"-BufferSize 1024 -MinBuffers 256 -MaxBuffers 1024 -f {_q(kernel)}"),
        f"xperf -start {USER_SESSION} -on {providers} -BufferSize 1024 -MinBuffers 64 -MaxBuffers 256 -f {_q(user)}",
        f"xperf -stop {USER_SESSION} -stop -d {_q(out_path)}",
    ]


def logman_commands(out_path: str) -> list[str]:
    """logman (in every Windows): the NT Kernel Logger with the kernel flags as a hex mask, a user
    session with the two providers, then stop both.  logman writes two files and cannot enable
    stack walking or merge; give rpctrace both files (``rpctrace calls K.etl U.etl``)."""
    kernel, user = _side_files(out_path)
    rpc, reg = USER_PROVIDERS
    return [
        (f'logman start "NT Kernel Logger" -p "Windows Kernel Trace" 0x{KERNEL_FLAGS:08X} '
         f"-ct perf -bs 1024 -nb 256 1024 -o {_q(kernel)} -ets"),
        (f"logman start {USER_SESSION} -p {{{rpc.guid}}} {rpc.keywords_hex} {rpc.level} "
         f"-ct perf -bs 1024 -nb 64 256 -o {_q(user)} -ets"),
        f"logman update {USER_SESSION} -p {{{reg.guid}}} {reg.keywords_hex} {reg.level} -ets",
        f"logman stop {USER_SESSION} -ets",
        'logman stop "NT Kernel Logger" -ets',
    ]


def logman_files(out_path: str) -> tuple[str, str]:
    """The two files the logman recipe writes (kernel, user)."""
    return _side_files(out_path)
