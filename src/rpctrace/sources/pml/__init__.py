"""Process Monitor logs (.pml) -> normalized :class:`~rpctrace.model.Event` records.

Procmon records what ETW lacks for the incidents rpctrace explains: the desired access of every
registry and file open, the account of the process, and the whole stack of every operation.  The
records are decoded by procmon-parser (MIT); this module checks the file before handing it over
(hostile sizes, truncation, unknown versions), reads the few raw values procmon-parser only gives
as text (the desired-access masks), resolves stacks through each process's module list and
recognises RPC server dispatch on the stack.  By job:

* :mod:`.reader` (:class:`~.reader.PmlReader`): header and table checks, records -> events;
* :mod:`.format`: the file and record headers, event classes and operation codes;
* :mod:`.values`: Procmon's Result text, access names, well-known accounts, registry roots;
* :mod:`.stacks`: module maps per process, a Process Start's creator, frames and dispatch;
* :mod:`.partial`: what a log with missing or cut tables still gives.

Mapping (one :class:`Event` per Procmon event, so counts equal procmon-parser's):

* ``ts`` = the event's FILETIME (100 ns UTC, full precision), ``pid``/``tid`` as Procmon shows
  them (process events: ``tid=None`` as for ETL process events, thread events: the thread the
  event is about), ``cpu=None`` (PML does not record it), ``provider`` = :data:`~rpctrace.knowledge.providers.PROCMON`,
  ``id`` = the Procmon event class (1 process, 2 registry, 3 file system, 4 profiling,
  5 network, 6 IPC), ``opcode`` = the raw operation code, ``version`` = 0.
* ``kind``: ``registry.<op>`` as for ETL registry events, ``file.create`` (CreateFile,
  CreatePipe, CreateMailSlot) / ``file.op``, ``process.start``/``process.end``,
  ``thread.start``/``thread.end``, ``image.load``; everything else ``procmon.<operation>``
  (``procmon.process_create``, ``procmon.tcp_send``, ...).  Records procmon-parser cannot decode
  are ``raw`` with their bytes and a ``note``/``error``, never dropped.
* ``fields``: ``operation`` (Procmon's name, as in its CSV export), ``path`` (registry: the key
  in Procmon's ``HKLM\\...``/``HKU\\...``/``HKCU``/``HKCR`` form; value operations split it into
  the key ``path`` and ``value_name`` as ETL events do, Procmon's string stays in
  ``procmon_path``), ``nt_path`` (``\\REGISTRY\\...`` when the root says which: HKCU names the
  *Procmon user's* hive, whose SID the log does not hold, so it gets none), ``status`` (the raw
  NTSTATUS the log holds), ``status_name``, ``result`` (Procmon's text), ``desired_access``
  (int, read from the record) and ``desired_access_names``, ``user``, ``integrity``,
  ``process_name``, ``image_path``, ``command_line``, ``session``, ``category``, ``duration``
  (ticks), ``details`` (procmon-parser's Detail column as a dict), ``frames`` (the stack as
  ``module+0xoffset``) and, when the stack runs through RPC dispatch, ``rpc_dispatch``.

RPC dispatch rule (:func:`rpctrace.knowledge.stackframes.find_rpc_dispatch`): PML stores no symbol
names, so frames are told apart by module only.  A stack is "inside RPC server dispatch" when an rpcrt4.dll frame directly
calls (is the caller of) a frame of a module that is not rpcrt4, not a system layer (ntdll,
kernelbase, kernel32, the wow64 layer) and not kernel mode: that callee is the routine rpcrt4
invoked (NdrStubCall*/Invoke/Ndr64 call the manager routine), named as the dispatch ``entry``.
The innermost such transition is taken.  Limits: the entry may be a marshalling layer rather
than the manager routine (DCOM: combase stubs; rpcrt4 calling MIDL_user_allocate or a security
callback also matches, both run while serving a call); a client-side async completion callback
called by rpcrt4 matches too; frames Procmon could not resolve to a module count as "other".
"""
