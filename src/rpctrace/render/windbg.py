"""WinDbg / livekd scripts that catch one RPC call live: the article's sequence, ready to paste.

The AudioSrv article (shared/reference/etw-and-alpc-facts.md §8) found the server side of a
failing LRPC call by hand: the client's process and ALPC port (``!process``, ``!handle``,
``!alpc /p``), the server's worker threads, then a conditional breakpoint after the worker's
``ntdll!NtAlpcSendWaitReceivePort`` returns that compares ``PORT_MESSAGE.ClientId`` in the receive
buffer with the client's process and thread ids, then ``k`` down to ``RPCRT4!Invoke`` and the
server procedure.  rpctrace knows all the ids from the trace, so it writes the sequence out.

Facts the script depends on (facts §5):

* ``PORT_MESSAGE`` layouts per architecture (:data:`LAYOUTS`); a WOW64 process talks ALPC with
  ``PORT_MESSAGE64``, which has the x64 offsets.
* ``NtAlpcSendWaitReceivePort(PortHandle, Flags, SendMessage, SendMessageAttributes,
  ReceiveMessage, BufferLength, ReceiveMessageAttributes, Timeout)``: ReceiveMessage is the 5th
  argument.  x64: at entry ``[rsp]`` is the return address, arguments 1-4 are in rcx, rdx, r8, r9
  and the 5th is at ``[rsp+0x28]`` (after the 32-byte home area); after the ``ret`` rsp is 8 higher
  and the caller's 5th-argument slot is ``[rsp+0x20]``.  x86 (stdcall): at entry the 5th argument
  is at ``[esp+0x14]``; the stub returns with ``ret 0x20``, so at the caller's next instruction it
  lies at ``[esp-0x10]``.
* The article reads ReceiveMessage from RDI: RDI is nonvolatile, and the caller (RPCRT4 on that
  build) happened to keep its copy of the pointer there.  That is the caller's choice, not the ABI:
  the script uses the argument slot and mentions RDI only as the article's shortcut.

WinDbg's MASM evaluator reads numbers in hex by default, so every number the script writes carries
its radix: ``0x2754`` or ``0n10068``.  Nothing from a trace is pasted into a command unless it is a
plain name; in comments it is stripped of semicolons (which end a ``$$`` comment), quotes and line
breaks.  Pure functions: no I/O, testable anywhere.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

ARCHES = ("x64", "x86", "wow64")


@dataclass(frozen=True)
class PortMessageLayout:
    arch: str
    #: PORT_MESSAGE.ClientId.UniqueProcess / UniqueThread offsets and the size of each field
    client_pid_offset: int
    client_tid_offset: int
    client_id_field_size: int
    message_id_offset: int  # PORT_MESSAGE.MessageId (ULONG, 4 bytes)
    sizeof: int
    #: MASM accessor that reads one ClientId field (dwo = 4 bytes, poi = pointer size, qwo = 8)
    read: str
    #: the stack pointer of the code the breakpoint stops in, and the accessor for a pointer on it
    sp: str
    ptr_read: str
    #: ReceiveMessage (5th argument) relative to sp at the function's entry ...
    entry_receive_offset: int
    #: ... and at the caller's next instruction, once the stub has returned
    return_receive_offset: int
    #: the register that holds the 1st argument (PortHandle) at entry, or a stack expression
    port_handle: str
    #: the return value register
    result: str
    dump: str  # display command for the header: dd (4-byte units) or dq (8-byte units)


LAYOUTS: dict[str, PortMessageLayout] = {
    # x86: CLIENT_ID is two 4-byte handles at +0x8, MessageId +0x10, header 0x18 bytes.
    "x86": PortMessageLayout("x86", 0x8, 0xC, 4, 0x10, 0x18, "dwo", "esp", "dwo", 0x14, -0x10,
                             "dwo(@esp+0x4)", "eax", "dd @$t0 L6"),
    # x64: two 8-byte handles at +0x8 and +0x10 (the union with a double aligns them), MessageId
    # +0x18, header 0x28 bytes.
    "x64": PortMessageLayout("x64", 0x8, 0x10, 8, 0x18, 0x28, "poi", "rsp", "poi", 0x28, 0x20,
                             "@rcx", "rax", "dq @$t0 L5"),
    # WOW64: PORT_MESSAGE64 (same offsets as x64), read on the 64-bit side; qwo reads 8 bytes
    # whatever the debugger's effective machine is.
    "wow64": PortMessageLayout("wow64", 0x8, 0x10, 8, 0x18, 0x28, "qwo", "rsp", "qwo", 0x28, 0x20,
                               "@rcx", "eax", "dq @$t0 L5"),
}

_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,100}\Z")
_FRAME = re.compile(r"[A-Za-z0-9_.\-]{1,100}\+0x[0-9a-fA-F]{1,16}\Z")
#: a frame a PDB named, ``module!function+0xdisp``; only names a debugger's ``bp`` takes as they
#: are (C identifiers, C++ scopes and destructors) become breakpoints: a PDB from a compromised
#: machine must not put a quote, semicolon or space into a command line
_SYMBOL_FRAME = re.compile(r"([A-Za-z0-9_.\-]{1,100})!([A-Za-z_][A-Za-z0-9_]{0,200}(?:::~?[A-Za-z_][A-Za-z0-9_]{0,200}){0,8})"
                           r"(?:\+0x[0-9a-fA-F]{1,16})?\Z")
#: modules whose frames are the system's plumbing, not who asked (the registry or file API)
_SYSTEM_MODULES = {"ntdll", "kernelbase", "kernel32", "advapi32", "win32u", "rpcrt4", "combase", "ucrtbase", "msvcrt"}
_KERNEL_MODULES = {"ntoskrnl", "ntkrnlmp", "ntkrnlpa", "ntkrpamp", "hal", "win32k", "win32kbase", "win32kfull"}


def layout(arch: str) -> PortMessageLayout:
    try:
        return LAYOUTS[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHES)}") from None


def hexn(n: int) -> str:
    """A number in WinDbg hex notation."""
    return f"0x{n:x}"


def decn(n: int) -> str:
    """A number in WinDbg decimal notation (the default radix is 16, so decimals need 0n)."""
    return f"0n{n}"


def both(n: int) -> str:
    return f"{decn(n)} ({hexn(n)})"


def _off(reg: str, offset: int) -> str:
    return f"@{reg}{'+' if offset >= 0 else '-'}{hexn(abs(offset))}"


def _clean(text) -> str:
    """Text made safe for a ``$$`` comment: no semicolons (they end the comment), quotes or
    control characters."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(text))
    return text.replace(";", ",").replace('"', "'")


def _data(value, limit: int = 300):
    """A string from the trace, shortened for a comment (None stays None)."""
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _name(value) -> str | None:
    """A name from the trace usable inside a command (process image, module), or None."""
    return value if isinstance(value, str) and _NAME.match(value) else None


class _Script:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def note(self, *texts: str) -> None:
        for text in texts:
            wrapped = textwrap.wrap(_clean(text), 108, break_long_words=False, break_on_hyphens=False) or [""]
            self.lines.extend("$$ " + w if i == 0 else "$$   " + w for i, w in enumerate(wrapped))

    def verbatim(self, text: str) -> None:
        """A command shown, not run: a ``*`` comment (ignores the whole line, semicolons too)."""
        self.lines.append("*   " + "".join(ch if ch.isprintable() else " " for ch in text))

    def cmd(self, text: str) -> None:
        self.lines.append(text)

    def blank(self) -> None:
        self.lines.append("")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _check_ids(pid, tid, side: str = "client") -> None:
    for what, value in ((f"{side} pid", pid), (f"{side} tid", tid)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
            raise ValueError(f"{what} must be a number from 0 to 0xffffffff, not {value!r}")


def _receive_breakpoint(lay: PortMessageLayout, pid: int, tid: int) -> str:
    """The conditional breakpoint: at entry save ReceiveMessage in $t0 and break at the return
    address; there re-read it from the caller's argument slot and compare ClientId."""
    entry = f"r $t0 = {lay.ptr_read}({_off(lay.sp, lay.entry_receive_offset)})"
    back = f"r $t0 = {lay.ptr_read}({_off(lay.sp, lay.return_receive_offset)})"
    cond = (f"({lay.read}(@$t0+{hexn(lay.client_pid_offset)}) == {hexn(pid)}) and "
            f"({lay.read}(@$t0+{hexn(lay.client_tid_offset)}) == {hexn(tid)})")
    hit = f".echo rpctrace: this worker took the request of client {decn(pid)}:{decn(tid)}"
    prefix = ".effmach amd64; " if lay.arch == "wow64" else ""
    inner = f'{prefix}{back}; .if ({cond}) {{{hit}; {lay.dump}; k}} .else {{gc}}'
    ret_addr = f"{lay.ptr_read}(@{lay.sp})"
    return (f'bp ntdll!NtAlpcSendWaitReceivePort "{prefix}{entry}; .if (@$t0 == 0) {{gc}} '
            f'.else {{bp {ret_addr} \\"{inner}\\"; gc}}"')


def _article_breakpoint(lay: PortMessageLayout, pid: int, tid: int) -> str:
    return (f'bp <return site> ".if (({lay.read}(@rdi+{hexn(lay.client_pid_offset)}) == {hexn(pid)}) and '
            f'({lay.read}(@rdi+{hexn(lay.client_tid_offset)}) == {hexn(tid)})) {{}} .else {{gc}}"')


def _build(arch: str, pid: int, tid: int, *, call_id=None, client_image=None, server_pid=None, server_tid=None,
           server_image=None, service=None, endpoint=None, interface=None, opnum=None, procedure=None,
           message_id=None, failures=(), incident: bool = False, server_function=None) -> str:
    lay = layout(arch)
    _check_ids(pid, tid)
    if server_pid is not None:
        _check_ids(server_pid, server_tid if server_tid is not None else 0, "server")
    s = _Script()
    what = f"RPC call {call_id}" if call_id is not None else "an RPC call"
    s.note(f"rpctrace: catch {what} live in WinDbg / livekd ({arch}).")
    s.note(f"client {client_image or 'process'} pid {both(pid)}, thread {both(tid)}")
    if server_pid is not None:
        srv = f"server {server_image or 'process'}{f' (service {service})' if service else ''} pid {both(server_pid)}"
        if server_tid is not None:
            srv += f", thread {both(server_tid)} served it in the trace"
        s.note(srv)
    if endpoint:
        s.note(f"endpoint {endpoint} (ncalrpc: the ALPC connection port \\RPC Control\\{endpoint})")
    if interface or opnum is not None:
        s.note(f"interface {interface or '?'} opnum {opnum if opnum is not None else '?'}"
               + (f" ({procedure})" if procedure else ""))
    if message_id is not None:
        s.note(f"ALPC MessageId {both(message_id)} in the trace (a new run gets new ids, the pid/tid stay while the processes live)")
    s.note("WinDbg reads numbers in hex by default: 0x... is hex, 0n... is decimal.")
    s.note(f"PORT_MESSAGE ({'PORT_MESSAGE64, ' if arch == 'wow64' else ''}{arch}): ClientId.UniqueProcess at "
           f"+{hexn(lay.client_pid_offset)} ({lay.client_id_field_size} bytes), ClientId.UniqueThread at "
           f"+{hexn(lay.client_tid_offset)} ({lay.client_id_field_size} bytes), MessageId at "
           f"+{hexn(lay.message_id_offset)} (4 bytes), header size {hexn(lay.sizeof)}.")
    s.note("Paste one step at a time. A line after EDIT needs a value printed by the step before it.")
    s.blank()

    # Part 1: the kernel view (livekd), as in the article.
    s.note("==== Part 1: the whole machine - livekd -k <path to windbg.exe> (or a kernel debugger), elevated ====")
    s.note("Step 1: find the client process. Shows PROCESS <EPROCESS address> ... Cid: <pid in hex> ... "
           f"Image: {client_image or '...'}.")
    image = _name(client_image)
    if image:
        s.cmd(f"!process 0 0 {image}")
    s.cmd(f"!process {hexn(pid)} 0")
    s.note("Step 2: keep the client's EPROCESS in $t1 and switch to the client. .process /r /p makes its user-mode "
           "memory readable (/p: through its page tables) and reloads its user symbols (/r).")
    s.note("EDIT: replace 0 with the PROCESS address from step 1.")
    s.cmd("r $t1 = 0")
    s.cmd(".process /r /p @$t1")
    s.note("Step 3: the client's ALPC port handles. Shows one entry per handle with the ALPC Port object address. "
           "(The article took the PortHandle argument of ntdll!NtAlpcSendWaitReceivePort on the client thread and "
           "ran !handle <PortHandle> 3 <EPROCESS>, see step 9b.)")
    s.cmd("!handle 0 3 @$t1 ALPC Port")
    s.note("Step 4: where the client's ports lead. Under 'Ports the process ... is connected to' each line reads "
           f"<client port> -> <connection port>('{endpoint or 'endpoint'}') <EPROCESS>('<server image>'): "
           "the server process.")
    s.cmd("!alpc /lpp @$t1")
    s.note("Step 5: one port in detail: its connection port"
           + (f" ({endpoint})" if endpoint else "") + ", owner process and queued messages.")
    s.note("EDIT: replace 0 with a port address from step 3 or 4.")
    s.cmd("r $t2 = 0")
    s.cmd("!alpc /p @$t2")
    s.note("Step 6: the connection port's connections: every client connected to it and the server that owns it.")
    s.note("EDIT: replace 0 with the connection port address from step 4 or 5.")
    s.cmd("r $t3 = 0")
    s.cmd("!alpc /lpc @$t3")
    s.note("Step 7: the server process and its threads with their stacks. RPC worker threads wait in "
           "ntdll!NtWaitForWorkViaWorkerFactory (the thread pool, IOCP) or in ntdll!NtAlpcSendWaitReceivePort. "
           "Cid <pid>.<tid> gives each thread id.")
    if server_pid is not None:
        simage = _name(server_image)
        if simage:
            s.cmd(f"!process 0 0 {simage}")
        s.cmd(f"!process {hexn(server_pid)} 6")
        if server_tid is not None:
            s.note(f"In the trace thread {both(server_tid)} took the request: look for Cid {server_pid:x}.{server_tid:x}.")
    else:
        s.note("EDIT: replace 0 with the server's EPROCESS from step 4.")
        s.cmd("r $t4 = 0")
        s.cmd("!process @$t4 6")
    s.blank()

    # Part 2: the user-mode debugger on the server: the conditional breakpoint.
    s.note("==== Part 2: a user-mode debugger attached to the server (livekd cannot set breakpoints) ====")
    attach = f"windbg -p {server_pid}" if server_pid is not None else "windbg -p <server pid in decimal>"
    if arch == "wow64":
        attach += " with the 64-bit windbg"
    s.note(f"Step 8: attach from an elevated prompt: {attach}. The service is frozen while the debugger holds it. "
           "Then list where every thread waits: worker threads show ntdll!TppWorkerThread with "
           "NtWaitForWorkViaWorkerFactory or NtAlpcSendWaitReceivePort on top.")
    s.cmd(".symfix+")
    s.cmd(".reload")
    s.cmd("~*k")
    if server_tid is not None:
        s.note(f"The worker of the trace, if it still exists: ~~[{hexn(server_tid)}]s switches to it, k shows its stack.")
    if arch == "wow64":
        s.note("WOW64: the 32-bit ntdll!NtAlpcSendWaitReceivePort goes through the wow64 thunks (wow64cpu, "
               "wow64!whNtAlpcSendWaitReceivePort) to the 64-bit ntdll!NtAlpcSendWaitReceivePort. Break on the "
               "64-bit one with the x64 rules: switch the view to 64-bit code (.effmach amd64, or !wow64exts.sw which "
               "toggles between the 32- and 64-bit views), where ntdll is the 64-bit ntdll and the 32-bit one is "
               "ntdll_<base>. The message has the PORT_MESSAGE64 layout, so the x64 offsets hold. qwo reads 8 bytes "
               "in either view.")
        s.cmd(".effmach amd64")
    s.note("Step 9: stop the worker that receives this client's request. ReceiveMessage, the 5th argument of "
           "ntdll!NtAlpcSendWaitReceivePort, is the buffer the request lands in. Its PORT_MESSAGE.ClientId names "
           "the sender's process and thread.")
    if lay.sp == "rsp":
        s.note(f"At entry (x64): [rsp] is the return address, rcx rdx r8 r9 hold arguments 1-4 and [rsp+0x28] "
               f"argument 5. The entry breakpoint saves it in $t0 and sets a breakpoint on the return address (the "
               f"caller's next instruction). There rsp is 8 higher, so the caller's 5th-argument slot is [rsp+0x20]: "
               f"the return breakpoint reads the pointer again from there, so another worker entering meanwhile "
               f"cannot mix up $t0. Then it compares ClientId with the client: {lay.read}(@$t0+"
               f"{hexn(lay.client_pid_offset)}) is the pid, {lay.read}(@$t0+{hexn(lay.client_tid_offset)}) the tid.")
    else:
        s.note("At entry (x86, stdcall): [esp] is the return address and [esp+0x4]..[esp+0x20] the 8 arguments, so "
               "argument 5 is [esp+0x14]. The entry breakpoint saves it in $t0 and sets a breakpoint on the return "
               "address. The stub returns with ret 0x20, so at the caller's next instruction esp is 0x24 higher and "
               "the argument the caller pushed lies at [esp-0x10]: the return breakpoint reads it again from there "
               "(nothing runs in between to overwrite it), so another worker entering meanwhile cannot mix up $t0. "
               f"ClientId fields are 4 bytes: dwo(@$t0+{hexn(lay.client_pid_offset)}) is the pid, "
               f"dwo(@$t0+{hexn(lay.client_tid_offset)}) the tid.")
    s.cmd(_receive_breakpoint(lay, pid, tid))
    s.note("bl lists the breakpoints. Each entry hit redefines the return-site breakpoint (same address), "
           "once it is listed you may bd the entry breakpoint to silence that.")
    if lay.sp == "rsp":
        s.note("The article's shortcut (x64): after the call returns, RDI still holds ReceiveMessage because the "
               "caller (RPCRT4 on that build) copied the pointer into RDI, a nonvolatile register, before the call. "
               "That is the caller's code generation, not the ABI, and can differ by build: check with ub at the "
               "return site that the 5th argument was stored from rdi, then the one-line form is:")
        s.verbatim(_article_breakpoint(lay, pid, tid))
    else:
        s.note("Alternative without reading below esp: break on the stub's own ret 0x20 (u ntdll!NtAlpcSendWaitReceivePort "
               "shows it), where argument 5 is still at [esp+0x14].")
    s.note(f"Step 9b (optional, the article's order): in a debugger on the client (windbg -p {pid}) stop its thread "
           f"at the call and read PortHandle, the 1st argument ({lay.port_handle} at entry), for !handle <PortHandle> 3 "
           "<EPROCESS> in livekd. The article enabled the server breakpoint only once the client reached "
           "RPCRT4!NdrClientCall3, so no other call of the client is caught.")
    s.verbatim(f"~~[{hexn(tid)}] bp RPCRT4!NdrClientCall3")
    s.verbatim(f"~~[{hexn(tid)}] bp ntdll!NtAlpcSendWaitReceivePort")
    s.verbatim(f"? {lay.port_handle}")
    s.note("Step 10: let the server run and make the client do the call again.")
    s.cmd("g")
    named = _symbol_name(server_function)
    s.note("Step 11: the hit. This worker thread now holds the client's request: the dump shows the PORT_MESSAGE "
           f"header (ClientId {hexn(pid)} {hexn(tid)}, MessageId at +{hexn(lay.message_id_offset)}), k the receive "
           "loop (RPCRT4!LRPC_ADDRESS::ProcessIO, ntdll!TppAlpcpExecuteCallback). Follow the request into the server "
           + (f"procedure with a one-shot breakpoint on {named} for this thread only." if named else
              "procedure with a one-shot breakpoint on RPCRT4!Invoke for this thread only."))
    if arch == "wow64":
        s.note("WOW64: the RPC runtime and the server procedure are 32-bit code. Switch the view back to it "
               "(.effmach x86, or !wow64exts.sw) so that k shows the 32-bit stack and eax the result.")
        s.cmd(".effmach x86")
    if named:
        s.note(f"The trace's symbols name the server function: {named}. Break on it on this thread, then k shows "
               "it under RPCRT4!Invoke (NdrStubCall3 / NdrServerCallAll, LRPC_SCALL::DispatchRequest). Symbols for "
               "the same build must load here (.sympath, .reload).")
        s.cmd(f"~. bp /1 {named}")
        s.cmd("g")
        s.cmd("k")
    else:
        s.cmd("~. bp /1 RPCRT4!Invoke")
        s.cmd("g")
        s.cmd("k")
        target = procedure or "the server procedure"
        s.note("Shows RPCRT4!Invoke under RPCRT4!NdrStubCall3 / NdrServerCallAll and LRPC_SCALL::DispatchRequest. Invoke "
               "calls the server procedure through a register (call r10 on x64): pc runs to the next call (repeat until "
               f"it is that one), t steps into it, k names it ({target}"
               + ("; the article: audiosrv!PolicyConfigSetDefaultEndpoint" if incident else "")
               + (f" in {server_image}" if server_image and not incident else "") + ").")
        s.cmd("pc")
        s.cmd("t")
        s.cmd("k")
    s.note(f"Step 12: the procedure's result: gu runs to its return, {lay.result} holds it"
           + (" (the article saw 0x80070005, E_ACCESSDENIED)." if incident else
              ": 0 is success; anything else is the error the client gets (an HRESULT such as 0x80070005 "
              "E_ACCESSDENIED, or a Win32 error code)."))
    s.cmd("gu")
    s.cmd(f"r {lay.result}")

    fails = [f for f in failures if isinstance(f, dict)]
    if fails:
        s.blank()
        s.note("Step 13: what failed on the server thread in the trace:")
        for f in fails[:5]:
            status = f.get("status")
            st = hexn(status) if isinstance(status, int) else "?"
            s.note(f"  {f.get('kind', '?')} {f.get('path') or ''} status {st} {f.get('status_name') or ''}")
        kinds = {str(f.get("kind", "")) for f in fails}
        if any(k.startswith("registry.") for k in kinds):
            s.note("Stop this worker on registry opens and creates and read each status: at a stop, gu then "
                   "r eax (0xc0000022 is STATUS_ACCESS_DENIED). k shows who asked"
                   + (" (the article: MMDevAPI!CSubEndpointDevice::SetRegValue)" if incident else "")
                   + ", !token the identity the thread used.")
            s.cmd("~. bp ntdll!NtOpenKeyEx")
            s.cmd("~. bp ntdll!NtCreateKey")
        if any(k.startswith("file.") for k in kinds):
            s.note("Files: stop this worker on file opens and read each status the same way.")
            s.cmd("~. bp ntdll!NtCreateFile")
            s.cmd("~. bp ntdll!NtOpenFile")
        frames = []
        for f in fails:
            for frame in f.get("stack") or ():
                if not isinstance(frame, str) or frame.split("+")[0].split("!")[0].lower() in _KERNEL_MODULES:
                    continue
                if _FRAME.match(frame) or _SYMBOL_FRAME.match(frame):
                    frames.append(frame)
            if frames:
                break
        offsets = [f for f in frames if _FRAME.match(f)]
        named_frames = [f for f in frames if _SYMBOL_FRAME.match(f)]
        if named_frames:
            s.note("The trace's user-mode stack of that operation, innermost first, named from its PDBs:")
            for frame in frames[:16]:
                s.note(f"  {frame}")
            asker = next((_symbol_name(f) for f in named_frames
                          if f.split("!")[0].lower().rsplit(".", 1)[0] not in _SYSTEM_MODULES), None)
            if asker:
                s.note(f"Who asked: {asker}. Break on it on this worker to stop before the failing call:")
                s.cmd(f"~. bp {asker}")
        if offsets:
            s.note("ln names the frames no PDB named, when this machine runs the same builds:" if named_frames else
                   "The trace's user-mode stack of that operation, innermost first: ln names each frame when this "
                   "machine runs the same builds.")
            for frame in offsets[:12]:
                s.cmd(f"ln {frame}")
    return s.text()


def _symbol_name(frame) -> str | None:
    """``module!function`` of a frame a PDB named (the displacement dropped), when it is a name a
    breakpoint takes as it is; else None."""
    if not isinstance(frame, str):
        return None
    m = _SYMBOL_FRAME.match(frame)
    return f"{m.group(1).rsplit('.', 1)[0] if m.group(1).lower().endswith(('.dll', '.exe', '.sys')) else m.group(1)}!{m.group(2)}" if m else None


#: the AudioSrv incident of the article: its remarks appear only in the script for that call
ARTICLE_PROCEDURE = "PolicyConfigSetDefaultEndpoint"
ARTICLE_INTERFACE = "35464382-ad29-4881-9392-b43e55b8f7ac"


def is_article_incident(call_record: dict) -> bool:
    """Whether ``call_record`` is the article's call (Audiosrv's PolicyConfigSetDefaultEndpoint)."""
    iface = call_record.get("interface")
    uuid = iface.get("uuid") if isinstance(iface, dict) else iface
    return call_record.get("procedure") == ARTICLE_PROCEDURE or (
        isinstance(uuid, str) and uuid.lower() == ARTICLE_INTERFACE and call_record.get("opnum") == 71)


def script_for_call(call_record: dict, arch: str) -> str:
    """The script for one reconstructed call (the ``call_record`` JSON shape of rpctrace.correlate).

    Uses the client's pid/tid, the server's pid/tid/image, the endpoint, interface, opnum, ALPC
    message id and, when present, the failures (with an optional ``stack`` list of
    ``module+0xoffset`` strings per failure)."""
    client = call_record.get("client") or {}
    server = call_record.get("server") or {}
    pid, tid = client.get("pid"), client.get("tid")
    if (pid is None or tid is None) and client.get("address"):
        # a call that came over the network: the article's breakpoint compares the ALPC message's
        # ClientId with a local client thread, and this client runs on another machine
        where = f"{client['address']}:{client.get('port')}" if client.get("port") is not None else str(client["address"])
        server_side = (f"; its server side is {server.get('image') or '?'} pid {server['pid']} thread {server.get('tid')} "
                       f"(`rpctrace tree --call {call_record.get('id')}` shows what it did)"
                       if server.get("pid") is not None else
                       "; the inputs show no server process either: give the server's ETW trace with the capture")
        raise ValueError(f"call {call_record.get('id')} came over the network from {where}: its client runs on "
                         f"another machine, so there is no client thread to break on here{server_side}")
    if pid is None or tid is None:
        raise ValueError(f"call {call_record.get('id')} has no client process and thread: nothing to break on")
    iface = call_record.get("interface")
    if isinstance(iface, dict):
        iface = iface.get("name") or iface.get("uuid")
    failures = []
    for f in call_record.get("failures") or ():
        if isinstance(f, dict):
            f = dict(f)
            f["kind"], f["path"], f["status_name"] = _data(f.get("kind")), _data(f.get("path")), _data(f.get("status_name"))
            failures.append(f)
    return _build(
        arch, pid, tid,
        call_id=call_record.get("id"),
        client_image=_data(client.get("image")),
        server_pid=server.get("pid"),
        server_tid=server.get("tid"),
        server_image=_data(server.get("image")),
        service=_data(server.get("service")),
        endpoint=_data(call_record.get("endpoint")),
        interface=_data(iface),
        opnum=call_record.get("opnum"),
        procedure=_data(call_record.get("procedure")),
        message_id=call_record.get("alpc_message_id"),
        failures=failures,
        incident=is_article_incident(call_record),
        server_function=call_record.get("server_function"),
    )


def arch_for(pointer_size: int | None, wow64: bool) -> str:
    """The architecture of the code the breakpoints stop in: a 4-byte trace is a 32-bit Windows
    (x86); on a 64-bit Windows a Wow64 process is wow64, others x64.  Without a header: x64."""
    if pointer_size == 4:
        return "x86"
    return "wow64" if wow64 else "x64"


def script_for_client(pid: int, tid: int, arch: str, endpoint: str | None = None) -> str:
    """The script from a client's process and thread id alone (no trace needed)."""
    return _build(arch, pid, tid, endpoint=_data(endpoint))
