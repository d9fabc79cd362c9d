"""The storylines: the narrated part of a scenario, the calls a test or a demo is about.

A story function gets the :class:`~rpctrace.synth.run.Run` and its place in the run (a fraction
of the background's duration).  Before the trace starts it prepares what the story needs
(processes, keys, the server procedures' work) - so processes that exist at trace start are in
the start rundown - and appends a ``(when, go)`` item that :meth:`Run.background
<rpctrace.synth.run.Run.background>` runs when the simulated time gets there.  ``go`` makes the
calls; the story's key call is kept in ``run.key_call`` for the truth.

Why apart from the background traffic: the traffic is noise drawn at random; a story is a fixed
sequence of processes, calls and failures (the article's AudioSrv incident, a nested call chain
denied at its leaf, a process that starts and exits inside the trace) whose shape the
explainer's tests assert.  Which scenario tells which stories is the registry's business
(:data:`rpctrace.synth.scenarios.STORIES`).
"""

from __future__ import annotations

from rpctrace.synth import catalog as C
from rpctrace.synth import payloads as P
from rpctrace.synth.emit import Thread
from rpctrace.synth.run import Run
from rpctrace.synth.simulate import Sim
from rpctrace.synth.world import MS, US, RegOp, Server

STATUS_ACCESS_DENIED = 0xC0000022
ERROR_ACCESS_DENIED = 5
E_ACCESSDENIED = 0x80070005


def audiosrv_access_denied(run: Run, t_story: float) -> None:
    """rundll32 (the Sound control panel) reads the device format twice, then "Set Default"
    calls PolicyConfigSetDefaultEndpoint, whose registry open for write is denied."""
    world = run.world
    sim = run.sim
    srv = world.services["Audiosrv"]
    render = C.AUDIO_RENDER
    device = render + "\\" + C.AUDIO_DEVICE
    props = device + "\\Properties"
    hklm = world.kcb("\\REGISTRY\\MACHINE")
    world.kcb(render)
    dev_kcb = world.kcb(device)
    props_kcb = world.kcb(props)
    world.kcb(render + "\\" + C.AUDIO_DEVICE_HDMI)
    read_format = RegOp(P.REG_QUERY_VALUE, "query_value", props_kcb, "{f19f064d-082c-4e27-bc73-6882a1bb8e4c},0",
                        props, index=2)
    read_state = RegOp(P.REG_QUERY_VALUE, "query_value", dev_kcb, "DeviceState", device, index=2)
    open_write = RegOp(P.REG_OPEN, "open", hklm, device[len("\\REGISTRY\\MACHINE\\"):], device)
    get_reg = [("MMDevAPI.dll", "CSubEndpointDevice::GetRegValue")]
    set_reg = [("MMDevAPI.dll", "CSubEndpointDevice::SetRegValue")]

    def read_work(sim: Sim, w: Thread, t: int, rec, cid, srv: Server, act):
        t = sim.reg(w, t, read_format, 0, rec, cid, sim.worker_frames(srv, C.AUDIO_IF, 61, "query_value", get_reg))
        return t + 40 * US + int(sim.rng.random() * 60 * US), 0, 0

    def set_default_work(sim: Sim, w: Thread, t: int, rec, cid, srv: Server, act):
        t = sim.reg(w, t, read_state, 0, rec, cid, sim.worker_frames(srv, C.AUDIO_IF, 71, "query_value", get_reg))
        t += 35 * US
        t = sim.reg(w, t, open_write, STATUS_ACCESS_DENIED, rec, cid,
                    sim.worker_frames(srv, C.AUDIO_IF, 71, "open", set_reg))
        # MMDevAPI maps the status to E_ACCESSDENIED; the RPC call itself completes normally.
        return t + 25 * US, 0, E_ACCESSDENIED

    image = "rundll32.exe"
    cmd = "C:\\WINDOWS\\system32\\rundll32.exe Shell32.dll,Control_RunDLL mmsys.cpl,,sounds"
    proc = world.new_process(image, C.SYSTEM32 + image, cmd, world.user_sid, ppid=world.explorer.pid,
                             session=world.session,
                             dlls=C.COMMON_DLLS + ["user32.dll", "SHELL32.dll", "mmsys.cpl", "AUDIOSES.DLL",
                                                   "MMDevAPI.dll"],
                             threads=2, in_trace=True)
    run.story_process = proc

    def go(t: int) -> None:
        parent = world.explorer.threads[0]
        t = max(t, parent.free_at)
        t = sim.spawn(parent, t, proc)
        ui = proc.threads[0]
        t += 30 * MS
        for _ in range(2):
            sim.call(ui, srv, C.AUDIO_IF, 61, t, work=read_work)
            t = ui.free_at + 4 * MS
        t += 900 * MS  # the user finds the HDMI device and clicks "Set Default"
        run.key_call = sim.call(ui, srv, C.AUDIO_IF, 71, t, work=set_default_work)

    run.story.append((t_story, go))


def nested(run: Run, t_story: float) -> None:
    """mmc.exe -> Schedule (SchRpcRegisterTask) -> UserManager (svcQueryUserToken) -> LSM
    (RpcGetUserToken); LSM's worker is denied a registry key and raises ERROR_ACCESS_DENIED."""
    world = run.world
    sim = run.sim
    sched, umgr, lsm = world.services["Schedule"], world.services["UserManager"], world.services["LSM"]
    hklm = world.kcb("\\REGISTRY\\MACHINE")
    ts_key = "\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server\\UserTokenCache"
    world.kcb("\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server")
    denied = RegOp(P.REG_OPEN, "open", hklm, ts_key[len("\\REGISTRY\\MACHINE\\"):], ts_key)
    tasks = "\\REGISTRY\\MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Schedule\\TaskCache\\Tree"
    tasks_kcb = world.kcb(tasks)
    read_tree = RegOp(P.REG_QUERY_VALUE, "query_value", tasks_kcb, "SD", tasks, index=2)
    image = "mmc.exe"
    mmc = world.new_process(image, C.SYSTEM32 + image, '"C:\\WINDOWS\\system32\\mmc.exe" "C:\\WINDOWS\\system32\\taskschd.msc" /s',
                            world.user_sid, ppid=world.explorer.pid, session=world.session,
                            dlls=C.COMMON_DLLS + ["user32.dll"], threads=2)

    def leaf(sim: Sim, w: Thread, t: int, rec, cid, srv: Server, act):
        t = sim.reg(w, t, denied, STATUS_ACCESS_DENIED, rec, cid, sim.worker_frames(srv, C.LSM_IF, 0, "open"))
        return t + 20 * US, ERROR_ACCESS_DENIED, ERROR_ACCESS_DENIED  # RpcRaiseException(5)

    def middle(sim: Sim, w: Thread, t: int, rec, cid, srv: Server, act):
        t += 15 * US
        child = sim.call(w, lsm, C.LSM_IF, 0, t, work=leaf, parent=rec, related=act)
        t = w.free_at + 10 * US
        if rec is not None and child is not None:
            rec.failures.append(("rpc.client_stop", None, child.status, w.pid, w.tid, child.end, None))
        return t, 0, E_ACCESSDENIED

    def top(sim: Sim, w: Thread, t: int, rec, cid, srv: Server, act):
        t = sim.reg(w, t, read_tree, 0, rec, cid, sim.worker_frames(srv, C.SCHED_IF, 1, "query_value"))
        t += 30 * US
        sim.call(w, umgr, C.USERMGR_IF, 0, t, work=middle, parent=rec, related=act)
        return w.free_at + 40 * US, 0, E_ACCESSDENIED

    def go(t: int) -> None:
        th = mmc.threads[0]
        t = max(t, th.free_at)
        run.key_call = sim.call(th, sched, C.SCHED_IF, 1, t, work=top)

    run.story.append((t_story, go))


def short_lived(run: Run, t_story: float) -> None:
    """A process that starts and exits inside the trace (Process/Thread Start and End)."""
    world = run.world
    sim = run.sim
    client = next(c for c in C.CLIENTS if c[0] == "taskhostw.exe")
    proc = world.new_client_process(client, in_trace=True)
    world.clients.remove(proc)  # not a background caller: it may not exist yet

    def go(t: int) -> None:
        parent = world.explorer.threads[0]
        t = max(t, parent.free_at)
        t = sim.spawn(parent, t, proc)
        t += 2 * MS
        sim.exit_process(t, proc, 0)

    run.story.append((t_story, go))
