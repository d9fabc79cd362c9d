/*
 * Optional accelerator for rpctrace.sources.etl.records.BufferDecoder.decode.
 *
 * The record walk of one buffer, in C, for the records a busy server's trace is made of:
 * kernel events with a one-field payload (ALPC Send/Receive/WaitForReply/Unwait) and
 * Microsoft-Windows-RPC call start/stop events (ids 5-8, version 1, no extended items).
 * Every other record's payload is handed to the Python decoder methods, and the walk's
 * checks and messages are those of records.py, so the result is the same list of events
 * (tests/sources/test_etl_fast.py compares both on every sample and on damaged buffers).
 * If this module is not built, records.py does everything.
 *
 * Reads are bounded by the buffer's length before every access.
 */
#include "_fastrecords.h"

/* The record walk reads the version, size, opcode and group of a kernel header before it knows
 * which of the three forms it is, and the ids and timestamp of SYSTEM and COMPACT headers alike. */
_Static_assert(PERF_VERSION == SYS_VERSION && PERF_SIZE == SYS_SIZE && PERF_OPCODE == SYS_OPCODE &&
                   PERF_GROUP == SYS_GROUP && COMPACT_SIZE == SYS_SIZE && COMPACT_THREAD_ID == SYS_THREAD_ID &&
                   COMPACT_PROCESS_ID == SYS_PROCESS_ID && COMPACT_TIME_STAMP == SYS_TIME_STAMP,
               "the kernel record headers share their head");

PyObject *k_interface_uuid, *k_procnum, *k_protocol, *k_network_address, *k_endpoint, *k_options,
    *k_auth_level, *k_auth_service, *k_impersonation_level, *k_status, *k_activity_id, *k_is_server_port,
    *k_port_name, *k_initial_time, *k_index, *k_kcb, *k_key_name, *k_value_name, *k_event_ts, *k_stack_pid,
    *k_stack_tid, *k_frames, *k_message_id;
static PyObject *k_instruction_pointer, *k_sampled_tid, *k_data, *k_length, *k_related_activity_id, *k_task,
    *k_keyword, *k_level, *k_raw_records, *kind_raw;
static PyObject *kind_client_start, *kind_server_start, *kind_client_stop, *kind_server_stop;

int fr_ts(const clock_t_ *c, uint64_t raw, int64_t *out) {
    if (c->identity) {
        __int128 v = (__int128)raw + c->offset;
        if (v >= 0 && v <= (__int128)INT64_MAX) { *out = (int64_t)v; return 1; }
        return 0;
    }
    /* any overflow: 0, and the Python clock does the arithmetic with its big ints */
    __int128 diff, prod, v;
    if (__builtin_sub_overflow((__int128)raw, c->raw0, &diff) || __builtin_mul_overflow(diff, c->num, &prod))
        return 0;
    __int128 q = prod / c->den;
    if ((prod % c->den != 0) && ((prod < 0) != (c->den < 0))) q -= 1;
    if (__builtin_add_overflow(c->base, q, &v)) return 0;
    if (v >= 0 && v <= (__int128)INT64_MAX) { *out = (int64_t)v; return 1; }
    return 0;
}

static PyObject *ts_of(const clock_t_ *c, uint64_t raw) {
    int64_t v;
    if (fr_ts(c, raw, &v)) return PyLong_FromLongLong((long long)v);
    return NULL; /* caller falls back */
}

static PyObject *guid_text(const unsigned char *g) {
    char buf[37];
    static const char hex[] = "0123456789abcdef";
    /* bytes_le: Data1 (LE u32), Data2 (LE u16), Data3 (LE u16), then 8 bytes as they are */
    const int order[16] = {3, 2, 1, 0, -1, 5, 4, -1, 7, 6, -1, 8, 9, -1, 10, 11};
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (order[i] < 0) { buf[o++] = '-'; continue; }
        unsigned char b = g[order[i]];
        buf[o++] = hex[b >> 4];
        buf[o++] = hex[b & 15];
    }
    for (int i = 12; i < 16; i++) {
        unsigned char b = g[i];
        buf[o++] = hex[b >> 4];
        buf[o++] = hex[b & 15];
    }
    return PyUnicode_FromStringAndSize(buf, o);
}

/* utf16z of kernel.py: NUL-terminated UTF-16LE at pos (terminator at an even distance); an
 * unterminated string runs to end (an odd last byte dropped).  Sets *next. */
static PyObject *utf16z(const unsigned char *d, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t *next) {
    Py_ssize_t stop = pos;
    while (stop + 1 < end) {
        if (d[stop] == 0 && d[stop + 1] == 0) {
            int bo = -1;
            *next = stop + 2;
            return PyUnicode_DecodeUTF16((const char *)d + pos, stop - pos, "replace", &bo);
        }
        stop += 2;
    }
    Py_ssize_t cut = end - ((end - pos) & 1);
    int bo = -1;
    *next = end;
    return PyUnicode_DecodeUTF16((const char *)d + pos, cut - pos, "replace", &bo);
}

/* Strings that repeat across a trace (interface ids, endpoints, key and port names) are shared
 * through a bounded cache: a reconstruction keeps hundreds of thousands of calls that name the
 * same few.  Not PyUnicode_InternInPlace: on CPython 3.12.0-3.12.5 interned strings are immortal,
 * so a hostile file of distinct names would leak them. */
static PyObject *str_cache;

/* The object equal to ``obj`` already in ``cache`` (a new reference; ``obj`` is consumed), or
 * ``obj`` itself, added.  The cache is emptied when it reaches ``limit`` entries. */
static PyObject *shared(PyObject *cache, PyObject *obj, Py_ssize_t limit) {
    PyObject *hit = PyDict_GetItemWithError(cache, obj);
    if (hit) {
        Py_INCREF(hit);
        Py_DECREF(obj);
        return hit;
    }
    if (PyErr_Occurred()) { Py_DECREF(obj); return NULL; }
    if (PyDict_GET_SIZE(cache) >= limit) PyDict_Clear(cache);
    if (PyDict_SetItem(cache, obj, obj) < 0) { Py_DECREF(obj); return NULL; }
    return obj;
}

static PyObject *interned(PyObject *text) {
    if (!text || PyUnicode_GET_LENGTH(text) > 128) return text;
    return shared(str_cache, text, 4096);
}

static PyObject *make_event(PyTypeObject *type, PyObject *items[11]) {
    PyObject *ev = type->tp_alloc(type, 11);
    if (!ev) {
        for (int i = 0; i < 11; i++) Py_XDECREF(items[i]);
        return NULL;
    }
    for (int i = 0; i < 11; i++) PyTuple_SET_ITEM(ev, i, items[i]);
    return ev;
}

/* Process and thread ids repeat on every event of a thread: one int object per id value
 * (bounded), so the calls a reconstruction keeps share them instead of holding copies. */
static PyObject *id_cache;

static inline PyObject *id_or_none(uint32_t v) {
    if (v == NO_ID) Py_RETURN_NONE;
    PyObject *id = PyLong_FromUnsignedLong(v);
    if (!id || v < 256) return id; /* small ints are shared by Python already */
    return shared(id_cache, id, 65536);
}

PyObject *fr_guid_text(const unsigned char *g) { return guid_text(g); }
PyObject *fr_utf16z(const unsigned char *d, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t *next) {
    return utf16z(d, pos, end, next);
}
PyObject *fr_interned(PyObject *text) { return interned(text); }
PyObject *fr_id(uint32_t v) { return id_or_none(v); }

/* RPC call start/stop (ids 5-8, version 1).  Returns a new fields dict, or NULL with no error
 * set when the payload needs the Python decoder (short payload), or NULL with an error. */
static PyObject *rpc_fields(int eid, const unsigned char *d, Py_ssize_t off, Py_ssize_t end, PyObject *activity) {
    PyObject *f = PyDict_New();
    if (!f) return NULL;
    PyObject *v;
#define PUT(k, expr) do { v = (expr); if (!v || PyDict_SetItem(f, k, v) < 0) { Py_XDECREF(v); goto fail; } Py_DECREF(v); } while (0)
    if (eid == 5 || eid == 6) {
        if (off + SIZEOF_RPC_START > end) goto slow;
        PUT(k_interface_uuid, interned(guid_text(d + off + RPC_START_INTERFACE_UUID)));
        PUT(k_procnum, PyLong_FromUnsignedLong(rd32(d + off + RPC_START_PROCNUM)));
        PUT(k_protocol, PyLong_FromUnsignedLong(rd32(d + off + RPC_START_PROTOCOL)));
        off += SIZEOF_RPC_START;
        PyObject *keys[3] = {k_network_address, k_endpoint, k_options};
        for (int i = 0; i < 3; i++) {
            if (off >= end) goto slow;
            Py_ssize_t next;
            PUT(keys[i], interned(utf16z(d, off, end, &next)));
            off = next;
        }
        if (off + SIZEOF_RPC_START_TAIL > end) goto slow;
        PUT(k_auth_level, PyLong_FromUnsignedLong(rd32(d + off + RPC_START_TAIL_AUTH_LEVEL)));
        PUT(k_auth_service, PyLong_FromUnsignedLong(rd32(d + off + RPC_START_TAIL_AUTH_SERVICE)));
        PUT(k_impersonation_level, PyLong_FromUnsignedLong(rd32(d + off + RPC_START_TAIL_IMPERSONATION_LEVEL)));
    } else {
        if (off + SIZEOF_RPC_STOP > end) goto slow;
        PUT(k_status, PyLong_FromUnsignedLong(rd32(d + off + RPC_STOP_STATUS)));
    }
    if (activity) {
        if (PyDict_SetItem(f, k_activity_id, activity) < 0) goto fail;
    }
    return f;
#undef PUT
slow: /* NULL without an error: the Python decoder takes the record */
fail: /* NULL with the error set */
    Py_DECREF(f);
    return NULL;
}

/* Kernel payloads of kernel.py done here (entry[3] says which): 1 ALPC WaitForNewMessage,
 * 2 Registry (version >= 2), 3 StackWalk Stack.  Returns a new fields dict and sets pid and tid
 * (new ints when the payload names them, else left alone), or NULL without an
 * error when the Python decoder must do it (short payload, old version). */
static PyObject *kernel_fields(long code, PyObject *entry, const unsigned char *d, Py_ssize_t pos, Py_ssize_t end,
                               unsigned version, int ptr, const clock_t_ *clock, PyObject **pid, PyObject **tid) {
    PyObject *f = PyDict_New(), *v;
    if (!f) return NULL;
#define PUT(k, expr) do { v = (expr); if (!v || PyDict_SetItem(f, k, v) < 0) { Py_XDECREF(v); goto fail; } Py_DECREF(v); } while (0)
    if (code == 1) {
        if (pos + SIZEOF_ALPC_WAIT_NEW > end) goto slow;
        PUT(k_is_server_port, PyBool_FromLong(rd32(d + pos + ALPC_WAIT_NEW_IS_SERVER_PORT) != 0));
        Py_ssize_t q = pos + SIZEOF_ALPC_WAIT_NEW, stop = q;
        while (stop < end && d[stop] != 0) stop++;
        PUT(k_port_name, interned(PyUnicode_DecodeLatin1((const char *)d + q, stop - q, NULL)));
    } else if (code == 2) {
        /* the head, then KeyHandle (the KCB, a pointer), then KeyName */
        if (version < 2 || pos + SIZEOF_REG + ptr > end) goto slow;
        PUT(k_initial_time, PyLong_FromLongLong((long long)rd64(d + pos + REG_INITIAL_TIME)));
        PUT(k_status, PyLong_FromUnsignedLong(rd32(d + pos + REG_STATUS)));
        PUT(k_index, PyLong_FromUnsignedLong(rd32(d + pos + REG_INDEX)));
        PUT(k_kcb, PyLong_FromUnsignedLongLong(ptr == 8 ? rd64(d + pos + SIZEOF_REG) : rd32(d + pos + SIZEOF_REG)));
        Py_ssize_t next;
        PyObject *name = interned(utf16z(d, pos + SIZEOF_REG + ptr, end, &next));
        if (!name) goto fail;
        if (PyDict_SetItem(f, k_key_name, name) < 0) { Py_DECREF(name); goto fail; }
        int value_op = PyObject_IsTrue(PyTuple_GET_ITEM(entry, 5));
        if (value_op < 0 || (value_op && PyDict_SetItem(f, k_value_name, name) < 0)) {
            Py_DECREF(name); goto fail;
        }
        Py_DECREF(name);
    } else if (code == 3) {
        if (pos + SIZEOF_STACK > end) goto slow;
        PyObject *ts = ts_of(clock, rd64(d + pos + STACK_EVENT_TIME_STAMP));
        if (!ts) goto slow;
        PUT(k_event_ts, ts);
        uint32_t sp = rd32(d + pos + STACK_STACK_PROCESS), st = rd32(d + pos + STACK_STACK_THREAD);
        PyObject *spid = sp == NO_ID ? PyLong_FromUnsignedLong(NO_ID) : id_or_none(sp);
        PyObject *stid = st == NO_ID ? PyLong_FromUnsignedLong(NO_ID) : id_or_none(st);
        if (!spid || !stid || PyDict_SetItem(f, k_stack_pid, spid) < 0 || PyDict_SetItem(f, k_stack_tid, stid) < 0) {
            Py_XDECREF(spid); Py_XDECREF(stid); goto fail;
        }
        Py_ssize_t count = (end - pos - SIZEOF_STACK) / ptr;
        PyObject *frames = PyList_New(count);
        if (!frames) { Py_DECREF(spid); Py_DECREF(stid); goto fail; }
        for (Py_ssize_t i = 0; i < count; i++) {
            const unsigned char *q = d + pos + SIZEOF_STACK + i * ptr;
            PyObject *a = PyLong_FromUnsignedLongLong(ptr == 8 ? rd64(q) : rd32(q));
            if (!a) { Py_DECREF(frames); Py_DECREF(spid); Py_DECREF(stid); goto fail; }
            PyList_SET_ITEM(frames, i, a);
        }
        if (PyDict_SetItem(f, k_frames, frames) < 0) { Py_DECREF(frames); Py_DECREF(spid); Py_DECREF(stid); goto fail; }
        Py_DECREF(frames);
        Py_DECREF(*pid); *pid = spid;
        Py_DECREF(*tid); *tid = stid;
    } else if (code == 4) {
        /* PerfInfo SampledProfile (kernel.perf_info): InstructionPointer (a pointer: no fixed
         * layout, the logger's pointer size places what follows), ThreadId; the thread is the
         * sampled one, the process unknown */
        if (pos + ptr + 4 > end) goto slow;
        uint32_t sampled = rd32(d + pos + ptr);
        PUT(k_instruction_pointer, PyLong_FromUnsignedLongLong(ptr == 8 ? rd64(d + pos) : rd32(d + pos)));
        PUT(k_sampled_tid, PyLong_FromUnsignedLong(sampled));
        PyObject *stid = sampled == NO_ID ? PyLong_FromUnsignedLong(NO_ID) : id_or_none(sampled);
        if (!stid) goto fail;
        Py_INCREF(Py_None);
        Py_SETREF(*pid, Py_None);
        Py_SETREF(*tid, stid);
    } else {
        goto slow;
    }
    return f;
#undef PUT
slow: /* NULL without an error: the Python decoder takes the record */
fail: /* NULL with the error set */
    Py_DECREF(f);
    return NULL;
}

/* An EVENT_HEADER record of a provider without a manifest (records._event_header_event): kept
 * raw, with its task, keyword, level, activity ids and the stack of its extended items.  Returns
 * 1 with *ev and *raw_out set, 0 when the Python decoder must take it (clock beyond 64 bits, a
 * provider with a manifest), -1 on error.  Damage in the extended items goes to ``damage`` as the
 * Python decoder writes it. */
static int generic_event(const unsigned char *d, Py_ssize_t pos, Py_ssize_t size, PyObject *cpu, long number,
                         PyObject *damage, PyObject *counts, PyObject *providers, PyObject *stack_split,
                         const clock_t_ *clock, PyTypeObject *evtype, PyObject **ev_out, PyObject **raw_out) {
    uint64_t raw = rd64(d + pos + EVH_TIME_STAMP);
    int64_t tsv;
    if (!providers || !stack_split || !fr_ts(clock, raw, &tsv)) return 0;
    PyObject *provider = interned(guid_text(d + pos + EVH_PROVIDER_ID));
    if (!provider) return -1;
    int known = PySet_Contains(providers, provider);
    if (known != 0) {
        Py_DECREF(provider);
        return known < 0 ? -1 : 0;
    }
    PyObject *related = NULL, *stack = NULL, *f = NULL, *v;
    Py_ssize_t end = pos + size, off = pos + SIZEOF_EVH;
    uint16_t flags = rd16(d + pos + EVH_FLAGS);
    if (flags & 1) { /* EXTENDED_INFO: items precede the user data */
        for (int i = 0; i < 64; i++) {
            if (off + SIZEOF_EXT > end) {
                PyObject *t = Py_BuildValue("(nls)", off, number, "extended data item overruns its record");
                if (!t || PyList_Append(damage, t) < 0) { Py_XDECREF(t); goto fail; }
                Py_DECREF(t);
                break;
            }
            unsigned item_size = rd16(d + off + EXT_ITEM_SIZE), ext_type = rd16(d + off + EXT_EXT_TYPE),
                     linkage = rd16(d + off + EXT_LINKAGE), data_size = rd16(d + off + EXT_DATA_SIZE);
            if (item_size < SIZEOF_EXT || data_size > item_size - SIZEOF_EXT || off + (Py_ssize_t)item_size > end) {
                PyObject *m = PyUnicode_FromFormat("bad extended data item (size %u, data %u)", item_size, data_size);
                PyObject *t = m ? Py_BuildValue("(nlN)", off, number, m) : NULL;
                if (!t || PyList_Append(damage, t) < 0) { Py_XDECREF(t); goto fail; }
                Py_DECREF(t);
                off = end;
                break;
            }
            Py_ssize_t body = off + SIZEOF_EXT;
            if (ext_type == 1 && data_size >= 16) { /* EVENT_HEADER_EXT_TYPE_RELATED_ACTIVITYID */
                PyObject *g = guid_text(d + body);
                if (!g) goto fail;
                Py_XSETREF(related, g);
            } else if ((ext_type == 6 || ext_type == 5) && data_size >= SIZEOF_EXT_STACK) { /* STACK_TRACE64 / 32 */
                int w = ext_type == 6 ? 8 : 4;
                Py_ssize_t count = (data_size - SIZEOF_EXT_STACK) / w;
                PyObject *frames = PyTuple_New(count);
                if (!frames) goto fail;
                for (Py_ssize_t k = 0; k < count; k++) { /* the frames follow the u64 MatchId */
                    const unsigned char *q = d + body + SIZEOF_EXT_STACK + k * w;
                    PyObject *a = PyLong_FromUnsignedLongLong(w == 8 ? rd64(q) : rd32(q));
                    if (!a) { Py_DECREF(frames); goto fail; }
                    PyTuple_SET_ITEM(frames, k, a);
                }
                /* model.Stack.split(frames, pointer size): the frames with their kernel/user split */
                PyObject *split = PyObject_CallFunction(stack_split, "Ni", frames, w);
                if (!split) goto fail;
                Py_XSETREF(stack, split);
            }
            off += item_size;
            if (!(linkage & 1)) break;
        }
    }
    f = PyDict_New();
    if (!f) goto fail;
#define PUT(k, expr) do { v = (expr); if (!v || PyDict_SetItem(f, k, v) < 0) { Py_XDECREF(v); goto fail; } Py_DECREF(v); } while (0)
    PUT(k_data, PyBytes_FromStringAndSize((const char *)d + off, end - off));
    PUT(k_length, PyLong_FromSsize_t(end - off));
    if (related && PyDict_SetItem(f, k_related_activity_id, related) < 0) goto fail;
    static const unsigned char zero16[16] = {0};
    if (memcmp(d + pos + EVH_ACTIVITY_ID, zero16, 16) != 0) PUT(k_activity_id, guid_text(d + pos + EVH_ACTIVITY_ID));
    PUT(k_task, PyLong_FromUnsignedLong(rd16(d + pos + EVH_TASK)));
    PUT(k_keyword, PyLong_FromUnsignedLongLong(rd64(d + pos + EVH_KEYWORD)));
    PUT(k_level, PyLong_FromUnsignedLong(d[pos + EVH_LEVEL]));
#undef PUT
    { /* counts.raw_records += 1 */
        PyObject *n = PyObject_GetAttr(counts, k_raw_records), *one = PyLong_FromLong(1);
        PyObject *m = n && one ? PyNumber_Add(n, one) : NULL;
        int bad = !m || PyObject_SetAttr(counts, k_raw_records, m) < 0;
        Py_XDECREF(n);
        Py_XDECREF(one);
        Py_XDECREF(m);
        if (bad) goto fail;
    }
    PyObject *items[11];
    items[0] = PyLong_FromLongLong((long long)tsv);
    items[1] = id_or_none(rd32(d + pos + EVH_PROCESS_ID));
    items[2] = id_or_none(rd32(d + pos + EVH_THREAD_ID));
    Py_INCREF(cpu);
    items[3] = cpu;
    items[4] = provider;
    provider = NULL;
    items[5] = PyLong_FromUnsignedLong(rd16(d + pos + EVH_ID));
    items[6] = PyLong_FromUnsignedLong(d[pos + EVH_OPCODE]);
    items[7] = PyLong_FromUnsignedLong(d[pos + EVH_VERSION]);
    Py_INCREF(kind_raw);
    items[8] = kind_raw;
    items[9] = f;
    f = NULL;
    int nonempty = stack ? PyObject_IsTrue(stack) : 0;
    if (nonempty < 0) goto fail;
    if (nonempty) { /* ``if stack``: an empty one is none */
        items[10] = stack;
        stack = NULL;
    } else {
        Py_INCREF(Py_None);
        items[10] = Py_None;
    }
    for (int i = 0; i < 11; i++)
        if (!items[i]) {
            for (int j = 0; j < 11; j++) Py_XDECREF(items[j]);
            goto fail;
        }
    *ev_out = make_event(evtype, items);
    if (!*ev_out) goto fail;
    *raw_out = PyLong_FromUnsignedLongLong(raw);
    if (!*raw_out) { Py_CLEAR(*ev_out); goto fail; }
    Py_XDECREF(related);
    Py_XDECREF(stack);
    return 1;
fail:
    Py_XDECREF(provider);
    Py_XDECREF(related);
    Py_XDECREF(stack);
    Py_XDECREF(f);
    return -1;
}

/*
 * decode(data, cpu, skip, ctx) -> (raws, events, damage)
 *
 * ctx: (Event type, pointer size, (identity, offset, base, raw0, num, den), kernel cache dict,
 *       kernel_entry(group, opcode), kernel_event(...), event_header_event(...),
 *       classic_event(...), opaque_event(...), counts, rpc provider text, rpc guid bytes, clock(raw),
 *       skip_stacks)
 */
PyObject *fr_walk(PyObject *args, Engine *sink) {
    Py_buffer view;
    int cpu_i, skip;
    PyObject *ctx;
    if (!PyArg_ParseTuple(args, "y*iiO!", &view, &cpu_i, &skip, &PyTuple_Type, &ctx)) return NULL;
    PyObject *ret = NULL, *raws = NULL, *events = NULL, *damage = NULL, *cpu = NULL, *zero = NULL, *data_obj = NULL;
    PyObject *held = NULL; /* the kernel entry of the record being decoded (a new reference) */
    PyObject *sink_last_raw = NULL; /* with a sink: the last record's raw timestamp (a new reference) */
    PyTypeObject *evtype;
    int ptr;
    PyObject *clk, *kcache, *kernel_entry, *kernel_event, *evh_event, *classic_event, *opaque_event, *counts,
        *rpc_provider, *clock_call;
    Py_buffer rpc_guid;
    PyObject *rpc_guid_obj;
    int skip_stacks;
    PyObject *providers = NULL; /* providers with a manifest (their records go to the Python decoder) */
    PyObject *stack_split = NULL; /* model.Stack.split */
    if (!PyArg_ParseTuple(ctx, "O!iO!O!OOOOOOUOOp|O!O", &PyType_Type, &evtype, &ptr, &PyTuple_Type, &clk, &PyDict_Type,
                          &kcache, &kernel_entry, &kernel_event, &evh_event, &classic_event, &opaque_event, &counts,
                          &rpc_provider, &rpc_guid_obj, &clock_call, &skip_stacks, &PyFrozenSet_Type, &providers,
                          &stack_split)) {
        PyBuffer_Release(&view);
        return NULL;
    }
    if (PyObject_GetBuffer(rpc_guid_obj, &rpc_guid, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    if (rpc_guid.len != 16 || (ptr != 4 && ptr != 8)) {
        PyBuffer_Release(&rpc_guid);
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "rpc guid must be 16 bytes and the pointer size 4 or 8");
        return NULL;
    }
    clock_t_ clock;
    {
        int identity;
        long long offset;
        PyObject *base, *raw0, *num, *den;
        if (!PyArg_ParseTuple(clk, "iLOOOO", &identity, &offset, &base, &raw0, &num, &den)) goto done;
        clock.identity = identity;
        clock.offset = offset;
        clock.base = PyLong_AsLongLong(base);
        clock.raw0 = PyLong_AsLongLong(raw0);
        clock.num = PyLong_AsLongLong(num);
        clock.den = PyLong_AsLongLong(den);
        if (PyErr_Occurred()) goto done;
        if (clock.den == 0) {
            PyErr_SetString(PyExc_ValueError, "clock denominator 0");
            goto done;
        }
    }
    const unsigned char *d = view.buf;
    Py_ssize_t end = view.len;
    raws = PyList_New(0);
    events = PyList_New(0);
    damage = PyList_New(0);
    cpu = PyLong_FromLong(cpu_i);
    zero = PyLong_FromLong(0);
    data_obj = PyTuple_GET_ITEM(args, 0);
    if (!raws || !events || !damage || !cpu || !zero) goto done;
    PyObject *ptr_obj = PyTuple_GET_ITEM(ctx, 1);

    Py_ssize_t pos = 0;
    long number = 0;
    PyObject *last_raw = NULL; /* borrowed from raws (or sink_last_raw) */
    uint64_t sink_raw = 0; /* with a sink: the raw timestamp of the last compact record */
    int sink_raw_seen = 0;
#define DAMAGE(fmt, ...)                                                                       \
    do {                                                                                       \
        PyObject *m = PyUnicode_FromFormat(fmt, __VA_ARGS__);                                  \
        PyObject *t = m ? Py_BuildValue("(nlN)", pos, number, m) : NULL;                       \
        if (!t || PyList_Append(damage, t) < 0) { Py_XDECREF(t); goto done; }                  \
        Py_DECREF(t);                                                                          \
    } while (0)
#define ADD(raw_obj, ev_obj)                                                                   \
    do {                                                                                       \
        PyObject *r_ = (raw_obj), *e_ = (ev_obj);                                              \
        if (!r_ || !e_) { Py_XDECREF(r_); Py_XDECREF(e_); goto done; }                         \
        if (sink) {                                                                            \
            if (eng_add_event(sink, r_, e_) < 0) { Py_DECREF(r_); Py_DECREF(e_); goto done; }  \
            Py_XSETREF(sink_last_raw, r_); Py_DECREF(e_);                                      \
            last_raw = r_;                                                                     \
        } else {                                                                               \
            if (PyList_Append(raws, r_) < 0 || PyList_Append(events, e_) < 0) {                \
                Py_DECREF(r_); Py_DECREF(e_); goto done; }                                     \
            last_raw = r_; Py_DECREF(r_); Py_DECREF(e_);                                       \
        }                                                                                      \
    } while (0)

    while (pos + 4 <= end) {
        uint32_t marker = rd32(d + pos);
        if (marker == NO_ID) break;
        unsigned top = marker >> 24, htype = (marker >> 16) & 0xFF;
        Py_ssize_t size;
        if (top == 0xC0 && (htype == 0x11 || htype == 0x10 || htype == 0x02 || htype == 0x01 || htype == 0x04 ||
                            htype == 0x03)) {
            /* PERFINFO, COMPACT and SYSTEM headers share their head (checked below) */
            if (pos + SIZEOF_PERF > end) { DAMAGE("%s", "truncated record header"); break; }
            unsigned version, opcode, group;
            uint64_t raw;
            uint32_t tid = NO_ID, pid = NO_ID;
            int ids = 0;
            Py_ssize_t hsize;
            version = rd16(d + pos + SYS_VERSION);
            size = rd16(d + pos + SYS_SIZE);
            opcode = d[pos + SYS_OPCODE];
            group = d[pos + SYS_GROUP];
            if (htype >= 0x10) {
                raw = rd64(d + pos + PERF_TIME_STAMP);
                hsize = SIZEOF_PERF;
            } else {
                if (pos + SIZEOF_COMPACT > end) { DAMAGE("%s", "truncated record header"); break; }
                tid = rd32(d + pos + SYS_THREAD_ID);
                pid = rd32(d + pos + SYS_PROCESS_ID);
                raw = rd64(d + pos + SYS_TIME_STAMP);
                hsize = htype <= 0x02 ? SIZEOF_SYS : SIZEOF_COMPACT;
                ids = 1;
            }
            if (version & 0x8000) hsize += 8;
            if (version & 0x0700) hsize += 8 * ((version & 0x0700) >> 8);
            if (size < hsize || pos + size > end) {
                DAMAGE("record size %zd does not fit (header %zd, %zd left)", size, hsize, end - pos);
                break;
            }
            if (number >= skip) {
                if (sink) {
                    /* the engine takes the records it decodes itself (no Python objects) */
                    int64_t tsv;
                    PyObject *entry = eng_entry(sink, kcache, kernel_entry, group, opcode);
                    if (!entry) goto done;
                    if (PyTuple_GET_SIZE(entry) > 3 && PyLong_AsLong(PyTuple_GET_ITEM(entry, 3)) == 3 && skip_stacks) {
                        Py_DECREF(entry);
                        goto next_record;
                    }
                    int took = 0;
                    if (fr_ts(&clock, raw, &tsv))
                        took = eng_add_kernel(sink, raw, tsv, ids ? pid : NO_ID, ids ? tid : NO_ID, cpu_i, entry, group,
                                              opcode, version & 0xFF, d, pos + hsize, pos + size, ptr);
                    Py_DECREF(entry);
                    if (took < 0) goto done;
                    if (took) { last_raw = NULL; Py_CLEAR(sink_last_raw); sink_raw = raw; sink_raw_seen = 1; goto next_record; }
                }
                PyObject *raw_obj = PyLong_FromUnsignedLongLong(raw);
                PyObject *ts = ts_of(&clock, raw);
                if (!raw_obj) { Py_XDECREF(ts); goto done; }
                if (!ts && PyErr_Occurred()) { Py_DECREF(raw_obj); goto done; }
                /* ts NULL without an error: out of int64, the Python clock does the arithmetic */
                PyObject *key = PyLong_FromLong((long)((group << 8) | opcode));
                if (!key) { Py_DECREF(raw_obj); Py_XDECREF(ts); goto done; }
                PyObject *entry = PyDict_GetItemWithError(kcache, key);
                if (entry) {
                    Py_INCREF(entry); /* held while Python code may run below */
                } else {
                    if (PyErr_Occurred()) { Py_DECREF(key); Py_DECREF(raw_obj); Py_XDECREF(ts); goto done; }
                    entry = PyObject_CallFunction(kernel_entry, "II", group, opcode);
                    if (!entry) { Py_DECREF(key); Py_DECREF(raw_obj); Py_XDECREF(ts); goto done; }
                }
                Py_DECREF(key);
                held = entry;
                if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) < 6) {
                    Py_DECREF(raw_obj); Py_XDECREF(ts);
                    PyErr_SetString(PyExc_ValueError, "kernel entry must be a 6-tuple");
                    goto done;
                }
                PyObject *simple = PyTuple_GET_ITEM(entry, 2);
                long fast = PyTuple_GET_SIZE(entry) > 3 ? PyLong_AsLong(PyTuple_GET_ITEM(entry, 3)) : 0;
                PyObject *ev = NULL, *fields = NULL, *kind = NULL;
                if (fast == 3 && skip_stacks) { /* the consumer wants no stacks: not even built */
                    Py_DECREF(raw_obj);
                    Py_XDECREF(ts);
                    goto next_record;
                }
                PyObject *p = ids ? id_or_none(pid) : (Py_INCREF(Py_None), Py_None);
                PyObject *t = ids ? id_or_none(tid) : (Py_INCREF(Py_None), Py_None);
                if (!p || !t) { Py_XDECREF(p); Py_XDECREF(t); Py_DECREF(raw_obj); Py_XDECREF(ts); goto done; }
                if (ts && simple != Py_None && PyTuple_GET_SIZE(simple) == 4 &&
                    PyLong_AsSsize_t(PyTuple_GET_ITEM(simple, 3)) == 4 && size - hsize >= 4) {
                    fields = PyDict_New();
                    PyObject *val = PyLong_FromUnsignedLong(rd32(d + pos + hsize));
                    if (!fields || !val || PyDict_SetItem(fields, PyTuple_GET_ITEM(simple, 2), val) < 0) {
                        Py_XDECREF(fields); Py_XDECREF(val); Py_DECREF(raw_obj); Py_DECREF(ts); Py_DECREF(p); Py_DECREF(t);
                        goto done;
                    }
                    Py_DECREF(val);
                    kind = PyTuple_GET_ITEM(simple, 0);
                } else if (ts && fast > 0) {
                    fields = kernel_fields(fast, entry, d, pos + hsize, pos + size, version & 0xFF, ptr, &clock, &p, &t);
                    if (!fields && PyErr_Occurred()) { Py_DECREF(raw_obj); Py_DECREF(ts); Py_DECREF(p); Py_DECREF(t); goto done; }
                    kind = PyTuple_GET_ITEM(entry, 4);
                }
                if (fields) {
                    PyObject *items[11];
                    items[0] = ts;
                    items[1] = p;
                    items[2] = t;
                    Py_INCREF(cpu); items[3] = cpu;
                    items[4] = PyTuple_GET_ITEM(entry, 0); Py_INCREF(items[4]);
                    Py_INCREF(zero); items[5] = zero;
                    items[6] = PyLong_FromUnsignedLong(opcode);
                    items[7] = PyLong_FromUnsignedLong(version & 0xFF);
                    Py_INCREF(kind); items[8] = kind;
                    items[9] = fields;
                    Py_INCREF(Py_None); items[10] = Py_None;
                    if (!items[6] || !items[7]) {
                        for (int i = 0; i < 11; i++) Py_XDECREF(items[i]);
                        Py_DECREF(raw_obj); goto done;
                    }
                    ev = make_event(evtype, items);
                } else {
                    if (!ts) {
                        ts = PyObject_CallFunctionObjArgs(clock_call, raw_obj, NULL);
                        if (!ts) { Py_DECREF(raw_obj); Py_DECREF(p); Py_DECREF(t); goto done; }
                    }
                    ev = PyObject_CallFunction(kernel_event, "OnnOIINNNOOO", data_obj, pos + hsize, pos + size, entry,
                                               opcode, version & 0xFF, ts, p, t, cpu, ptr_obj, counts);
                }
                ADD(raw_obj, ev);
            }
        } else if (top == 0xC0 && (htype == 0x13 || htype == 0x12)) {
            size = marker & 0xFFFF;
            if (size < SIZEOF_EVH || pos + size > end) {
                DAMAGE("event record size %zd does not fit (%zd left)", size, end - pos);
                break;
            }
            if (number >= skip) {
                uint16_t flags = rd16(d + pos + EVH_FLAGS);
                uint16_t eid = rd16(d + pos + EVH_ID);
                unsigned evver = d[pos + EVH_VERSION];
                PyObject *ev = NULL, *raw_obj = NULL;
                if (!(flags & 1) && evver == 1 && eid >= 5 && eid <= 8 &&
                    memcmp(d + pos + EVH_PROVIDER_ID, rpc_guid.buf, 16) == 0) {
                    uint64_t raw = rd64(d + pos + EVH_TIME_STAMP);
                    if (sink) {
                        int64_t tsv;
                        int took = fr_ts(&clock, raw, &tsv) ? eng_add_rpc(sink, raw, tsv, d, pos, size, cpu_i) : 0;
                        if (took < 0) goto done;
                        if (took) { last_raw = NULL; Py_CLEAR(sink_last_raw); sink_raw = raw; sink_raw_seen = 1; goto next_record; }
                    }
                    PyObject *ts = ts_of(&clock, raw);
                    if (ts) {
                        static const unsigned char zero16[16] = {0};
                        PyObject *activity = NULL;
                        if (memcmp(d + pos + EVH_ACTIVITY_ID, zero16, 16) != 0) {
                            activity = guid_text(d + pos + EVH_ACTIVITY_ID);
                            if (!activity) { Py_DECREF(ts); goto done; }
                        }
                        PyObject *fields = rpc_fields(eid, d, pos + SIZEOF_EVH, pos + size, activity);
                        Py_XDECREF(activity);
                        if (fields) {
                            PyObject *items[11];
                            items[0] = ts;
                            items[1] = id_or_none(rd32(d + pos + EVH_PROCESS_ID));
                            items[2] = id_or_none(rd32(d + pos + EVH_THREAD_ID));
                            Py_INCREF(cpu); items[3] = cpu;
                            Py_INCREF(rpc_provider); items[4] = rpc_provider;
                            items[5] = PyLong_FromUnsignedLong(eid);
                            items[6] = PyLong_FromUnsignedLong(d[pos + EVH_OPCODE]);
                            items[7] = PyLong_FromUnsignedLong(evver);
                            items[8] = eid == 5 ? kind_client_start : eid == 6 ? kind_server_start
                                     : eid == 7 ? kind_client_stop : kind_server_stop;
                            Py_INCREF(items[8]);
                            items[9] = fields;
                            Py_INCREF(Py_None); items[10] = Py_None;
                            if (!items[1] || !items[2] || !items[5] || !items[6] || !items[7]) {
                                for (int i = 0; i < 11; i++) Py_XDECREF(items[i]);
                                goto done;
                            }
                            ev = make_event(evtype, items);
                            if (!ev) goto done;
                            raw_obj = PyLong_FromUnsignedLongLong(raw);
                        } else {
                            Py_DECREF(ts);
                            if (PyErr_Occurred()) goto done;
                        }
                    } else if (PyErr_Occurred()) {
                        goto done;
                    }
                }
                if (!ev) {
                    int got = generic_event(d, pos, size, cpu, number, damage, counts, providers, stack_split, &clock,
                                            evtype, &ev, &raw_obj);
                    if (got < 0) goto done;
                }
                if (!ev) {
                    PyObject *r = PyObject_CallFunction(evh_event, "OnnOOlOO", data_obj, pos, size, cpu, ptr_obj, number,
                                                        counts, damage);
                    if (!r) goto done;
                    ev = PyTuple_GetItem(r, 0);
                    raw_obj = PyTuple_GetItem(r, 1);
                    Py_XINCREF(ev);
                    Py_XINCREF(raw_obj);
                    Py_DECREF(r);
                }
                ADD(raw_obj, ev);
            }
        } else if (top == 0xC0 && (htype == 0x0A || htype == 0x14 || htype == 0x0B || htype == 0x15)) {
            size = marker & 0xFFFF;
            Py_ssize_t hsize = (htype == 0x0A || htype == 0x14) ? SIZEOF_FULL : SIZEOF_INSTANCE;
            if (size < hsize || pos + size > end) {
                DAMAGE("trace record size %zd does not fit (%zd left)", size, end - pos);
                break;
            }
            if (number >= skip) {
                PyObject *r = PyObject_CallFunction(classic_event, "OnnnOO", data_obj, pos, size, hsize, cpu, counts);
                if (!r) goto done;
                PyObject *raw_obj = PyTuple_GetItem(r, 0), *ev = PyTuple_GetItem(r, 1);
                Py_XINCREF(raw_obj);
                Py_XINCREF(ev);
                Py_DECREF(r);
                ADD(raw_obj, ev);
            }
        } else if ((top == 0xC0 && (htype == 0x0C || htype == 0x0D || htype == 0x0E)) || (top & 0xF0) == 0x90) {
            size = marker & 0xFFFF;
            if (size < 8 || pos + size > end) {
                DAMAGE("record size %zd does not fit (%zd left)", size, end - pos);
                break;
            }
            if (number >= skip) {
                PyObject *prev = last_raw ? last_raw : Py_None;
                PyObject *made = NULL;
                if (sink && !last_raw && sink_raw_seen) {
                    made = PyLong_FromUnsignedLongLong(sink_raw);
                    if (!made) goto done;
                    prev = made;
                }
                PyObject *r = PyObject_CallFunction(opaque_event, "OnnIOOO", data_obj, pos, size,
                                                    top == 0xC0 ? htype : 0x0F, cpu, prev, counts);
                Py_XDECREF(made);
                if (!r) goto done;
                PyObject *raw_obj = PyTuple_GetItem(r, 0), *ev = PyTuple_GetItem(r, 1);
                Py_XINCREF(raw_obj);
                Py_XINCREF(ev);
                Py_DECREF(r);
                ADD(raw_obj, ev);
            }
        } else {
            DAMAGE("unknown record marker 0x%08x", (unsigned int)marker);
            break;
        }
    next_record:
        Py_CLEAR(held);
        number += 1;
        pos += (size + 7) & ~(Py_ssize_t)7;
    }
    if (sink) {
        ret = damage;
        Py_INCREF(ret);
    } else {
        ret = PyTuple_Pack(3, raws, events, damage);
    }
done:
    Py_XDECREF(held);
    Py_XDECREF(sink_last_raw);
    Py_XDECREF(raws);
    Py_XDECREF(events);
    Py_XDECREF(damage);
    Py_XDECREF(cpu);
    Py_XDECREF(zero);
    PyBuffer_Release(&rpc_guid);
    PyBuffer_Release(&view);
    return ret;
}

/*
 * xpress(stream, max_output) -> bytes or None
 *
 * Plain LZ77 (Xpress) decompression as rpctrace.sources.etl.xpress.decompress does it (see its
 * docstring for the format); None for any stream that function would refuse, so that the Python
 * decoder runs and names the damage.  Output is bounded by max_output, input reads by its length.
 */
static PyObject *xpress(PyObject *self, PyObject *args) {
    Py_buffer in;
    Py_ssize_t max_out;
    if (!PyArg_ParseTuple(args, "y*n", &in, &max_out)) return NULL;
    if (max_out < 0) { PyBuffer_Release(&in); Py_RETURN_NONE; }
    const unsigned char *src = in.buf;
    uint64_t size = (uint64_t)in.len, ip = 0, half = 0, olen = 0, cap = (uint64_t)max_out;
    /* grown as output comes (doubling, never past cap): a short stream costs little whatever
     * size its header claims */
    uint64_t room = cap < 65536 ? (cap ? cap : 1) : 65536;
    unsigned char *out = PyMem_Malloc(room);
    if (!out) { PyBuffer_Release(&in); return PyErr_NoMemory(); }
#define ROOM(n)                                                                              \
    do {                                                                                     \
        if (olen + (n) > room) {                                                             \
            uint64_t want = room;                                                            \
            while (want < olen + (n)) want *= 2;                                             \
            if (want > cap) want = cap;                                                      \
            unsigned char *grown = PyMem_Realloc(out, want);                                 \
            if (!grown) { PyMem_Free(out); PyBuffer_Release(&in); return PyErr_NoMemory(); } \
            out = grown;                                                                     \
            room = want;                                                                     \
        }                                                                                    \
    } while (0)
    for (;;) {
        if (ip + 4 > size) goto bad;
        uint32_t flags = rd32(src + ip);
        ip += 4;
        for (int bit = 31; bit >= 0; bit--) {
            if (!((flags >> bit) & 1u)) {
                if (ip >= size || olen >= cap) goto bad;
                ROOM(1);
                out[olen++] = src[ip++];
                continue;
            }
            uint64_t tok_at = ip;
            (void)tok_at;
            if (ip + 2 > size) {
                if (ip == size) goto finish;
                goto bad;
            }
            uint32_t tok = rd16(src + ip);
            ip += 2;
            uint64_t length = tok & 7;
            if (length == 7) {
                if (half) {
                    length = src[half] >> 4;
                    half = 0;
                } else {
                    if (ip >= size) goto bad;
                    length = src[ip] & 15;
                    half = ip;
                    ip += 1;
                }
                if (length == 15) {
                    if (ip >= size) goto bad;
                    length = src[ip];
                    ip += 1;
                    if (length == 255) {
                        if (ip + 2 > size) goto bad;
                        length = rd16(src + ip);
                        ip += 2;
                        if (length == 0) {
                            if (ip + 4 > size) goto bad;
                            length = rd32(src + ip);
                            ip += 4;
                        }
                        if (length < 22) goto bad;
                        length += 3;
                    } else {
                        length += 25;
                    }
                } else {
                    length += 10;
                }
            } else {
                length += 3;
            }
            uint64_t dist = (tok >> 3) + 1;
            if (dist > olen || olen + length > cap) goto bad;
            ROOM(length);
            unsigned char *dst = out + olen, *from = out + olen - dist;
            for (uint64_t i = 0; i < length; i++) dst[i] = from[i];
            olen += length;
        }
    }
#undef ROOM
finish:;
    PyObject *r = PyBytes_FromStringAndSize((const char *)out, (Py_ssize_t)olen);
    PyMem_Free(out);
    PyBuffer_Release(&in);
    return r;
bad:
    PyMem_Free(out);
    PyBuffer_Release(&in);
    Py_RETURN_NONE;
}

static PyObject *decode(PyObject *self, PyObject *args) { return fr_walk(args, NULL); }

static PyMethodDef methods[] = {
    {"decode", decode, METH_VARARGS, "Decode one buffer's records: (raws, events, damage)."},
    {"xpress", xpress, METH_VARARGS, "Plain LZ77 decompression: bytes, or None where the Python decoder must say why."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastrecords", NULL, -1, methods};

PyMODINIT_FUNC PyInit__fastrecords(void) {
#define INTERN(var, text) if (!(var = PyUnicode_InternFromString(text))) return NULL
    INTERN(k_interface_uuid, "interface_uuid");
    INTERN(k_procnum, "procnum");
    INTERN(k_protocol, "protocol");
    INTERN(k_network_address, "network_address");
    INTERN(k_endpoint, "endpoint");
    INTERN(k_options, "options");
    INTERN(k_auth_level, "auth_level");
    INTERN(k_auth_service, "auth_service");
    INTERN(k_impersonation_level, "impersonation_level");
    INTERN(k_status, "status");
    INTERN(k_activity_id, "activity_id");
    INTERN(k_is_server_port, "is_server_port");
    INTERN(k_port_name, "port_name");
    INTERN(k_initial_time, "initial_time");
    INTERN(k_index, "index");
    INTERN(k_kcb, "kcb");
    INTERN(k_key_name, "key_name");
    INTERN(k_value_name, "value_name");
    INTERN(k_event_ts, "event_ts");
    INTERN(k_stack_pid, "stack_pid");
    INTERN(k_stack_tid, "stack_tid");
    INTERN(k_frames, "frames");
    INTERN(k_message_id, "message_id");
    INTERN(k_instruction_pointer, "instruction_pointer");
    INTERN(k_sampled_tid, "sampled_tid");
    INTERN(k_data, "data");
    INTERN(k_length, "length");
    INTERN(k_related_activity_id, "related_activity_id");
    INTERN(k_task, "task");
    INTERN(k_keyword, "keyword");
    INTERN(k_level, "level");
    INTERN(k_raw_records, "raw_records");
    INTERN(kind_raw, "raw");
    INTERN(kind_client_start, "rpc.client_start");
    INTERN(kind_server_start, "rpc.server_start");
    INTERN(kind_client_stop, "rpc.client_stop");
    INTERN(kind_server_stop, "rpc.server_stop");
#undef INTERN
    if (!(id_cache = PyDict_New())) return NULL;
    if (!(str_cache = PyDict_New())) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (fastcalls_init(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
