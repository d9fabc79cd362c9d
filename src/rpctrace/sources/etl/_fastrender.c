/*
 * Listing a million calls: the record of a call (correlate/records.py RecordMaker.__call__) and
 * its table line (render/calls.py _table_row), for the calls of the C engine, in C.
 *
 * Both are the Python functions' work line for line; every lookup that is not a cache hit
 * (images, services, interface names, status names) goes to the Python objects themselves, and
 * the table line is made by Python's own %-formatting with render/calls.py's format string, so
 * the text is the same.  tests/correlate/test_fast_engine.py compares both with the Python code.
 */
#include "_fastrecords.h"

/* The C engine's call layout (defined in _fastcalls.c). */
PyObject *fc_call_fields(PyObject *call, int64_t *ints, PyObject **objs);
int fc_is_call(PyObject *o);

static PyObject *s_id, *s_client, *s_server, *s_interface, *s_opnum, *s_procedure, *s_endpoint, *s_protocol,
    *s_mode, *s_completion_tid, *s_alpc_message_id, *s_start, *s_end, *s_server_start, *s_server_end,
    *s_duration_us, *s_status, *s_auth_level, *s_auth_service, *s_confidence, *s_evidence, *s_ambiguous,
    *s_parent, *s_children, *s_failures, *s_pid, *s_tid, *s_image, *s_service, *s_uuid, *s_name, *s_kind,
    *s_path, *s_status_name, *s_ts, *s_open_path, *s_key_name, *s_fields_status, *s_dash, *s_qmark, *s_zero,
    *s_async, *s_ellipsis, *s_empty, *s_us, *s_ms, *s_sec, *s_result, *s_result_source, *s_address;

/* ------------------------------------------------------------------ ticks_to_iso */

static int64_t max_ticks = 0; /* model._MAX_TICKS, set by make_record_core */

/* civil date of days since 1970-01-01 (H. Hinnant's algorithm: proleptic Gregorian) */
static void civil(int64_t z, int *y, int *m, int *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

/* model.ticks_to_iso for 64-bit ticks; the date and time of day are kept for the last second
 * seen (consecutive calls share it) */
static int64_t iso_second = -1;
static char iso_head[64]; /* "YYYY-MM-DDTHH:MM:SS." of iso_second */

static PyObject *iso(int64_t ticks) {
    if (ticks < 0) ticks = 0;
    else if (ticks > max_ticks) ticks = max_ticks;
    int64_t second = ticks / 10000000, fraction = ticks % 10000000;
    if (second != iso_second) {
        int64_t days = second / 86400, sod = second % 86400;
        int y, m, d;
        civil(days - 134774, &y, &m, &d); /* 1601-01-01 is 134774 days before 1970-01-01 */
        snprintf(iso_head, sizeof iso_head, "%04d-%02d-%02dT%02d:%02d:%02d.", y, m, d, (int)(sod / 3600),
                 (int)(sod / 60 % 60), (int)(sod % 60));
        iso_second = second;
    }
    PyObject *r = PyUnicode_New(28, 127);
    if (!r) return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(r);
    memcpy(out, iso_head, 20);
    for (int i = 26; i >= 20; i--) {
        out[i] = (Py_UCS1)('0' + fraction % 10);
        fraction /= 10;
    }
    out[27] = 'Z';
    return r;
}

static PyObject *ticks_to_iso_py; /* model.ticks_to_iso, for ticks beyond 64 bits */

static PyObject *iso_obj(PyObject *ts) {
    if (PyLong_CheckExact(ts)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(ts, &overflow);
        if (!overflow && !(v == -1 && PyErr_Occurred())) return iso(v);
        PyErr_Clear();
    }
    return PyObject_CallFunctionObjArgs(ticks_to_iso_py, ts, NULL);
}

/* ------------------------------------------------------------------ RecordCore */

typedef struct {
    PyObject_HEAD
    PyObject *maker;      /* the RecordMaker: image(), service(), _status_text() on a miss */
    PyObject *names;      /* names lookup or None */
    PyObject *images, *services, *procedures, *status_names; /* the maker's caches */
    PyObject *failing;    /* calls.FAILING */
    int named_status;
} RecordCore;

static int core_traverse(RecordCore *c, visitproc visit, void *arg) {
    Py_VISIT(c->maker);
    Py_VISIT(c->names);
    Py_VISIT(c->images);
    Py_VISIT(c->services);
    Py_VISIT(c->procedures);
    Py_VISIT(c->status_names);
    Py_VISIT(c->failing);
    return 0;
}
static int core_clear(RecordCore *c) {
    Py_CLEAR(c->maker);
    Py_CLEAR(c->names);
    Py_CLEAR(c->images);
    Py_CLEAR(c->services);
    Py_CLEAR(c->procedures);
    Py_CLEAR(c->status_names);
    Py_CLEAR(c->failing);
    return 0;
}
static void core_dealloc(RecordCore *c) {
    PyObject_GC_UnTrack(c);
    core_clear(c);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

/* cache[key], else method(*args) (which fills the cache); a new reference */
static PyObject *cached(PyObject *cache, PyObject *key, PyObject *maker, const char *method, PyObject *a, PyObject *b) {
    PyObject *hit = PyDict_GetItemWithError(cache, key);
    if (hit) { Py_INCREF(hit); return hit; }
    if (PyErr_Occurred()) return NULL;
    return b ? PyObject_CallMethod(maker, method, "OO", a, b) : PyObject_CallMethod(maker, method, "O", a);
}

static PyObject *id_or_none64(int64_t v) {
    if (v < 0) Py_RETURN_NONE;
    if (v < (int64_t)NO_ID) return fr_id((uint32_t)v);
    return PyLong_FromLongLong(v);
}

/* Records are copies of template dicts with every key in RecordMaker's order (a copy of a dict is
 * one memcpy; a dict filled key by key grows and rehashes twice), values then set in place. */
static PyObject *t_record, *t_client, *t_server, *t_interface, *t_failure;

static PyObject *make_template(PyObject **keys, int n) {
    PyObject *d = PyDict_New();
    for (int i = 0; d && i < n; i++)
        if (PyDict_SetItem(d, keys[i], Py_None) < 0) Py_CLEAR(d);
    return d;
}

static int make_templates(void) {
    if (t_record) return 0;
    PyObject *rk[] = {s_id, s_client, s_server, s_interface, s_opnum, s_procedure, s_endpoint, s_protocol, s_mode,
                      s_completion_tid, s_alpc_message_id, s_start, s_end, s_server_start, s_server_end,
                      s_duration_us, s_status, s_result, s_result_source, s_auth_level, s_auth_service,
                      s_confidence, s_evidence, s_ambiguous, s_parent, s_children, s_failures};
    PyObject *ck[] = {s_pid, s_tid, s_image};
    PyObject *sk[] = {s_pid, s_tid, s_image, s_service};
    PyObject *ik[] = {s_uuid, s_name};
    PyObject *fk[] = {s_kind, s_path, s_status, s_status_name, s_pid, s_tid, s_ts};
    t_record = make_template(rk, (int)(sizeof rk / sizeof rk[0]));
    t_client = make_template(ck, 3);
    t_server = make_template(sk, 4);
    t_interface = make_template(ik, 2);
    t_failure = make_template(fk, 7);
    return t_record && t_client && t_server && t_interface && t_failure ? 0 : -1;
}

/* RecordMaker.failure(op) */
static PyObject *failure_record(RecordCore *core, PyObject *op) {
    PyObject *f = PyTuple_GET_ITEM(op, 9);
    if (!PyDict_CheckExact(f)) return PyObject_CallMethod(core->maker, "failure", "O", op);
    PyObject *status = PyDict_GetItemWithError(f, s_fields_status);
    if (!status && PyErr_Occurred()) return NULL;
    PyObject *path = NULL;
    PyObject *keys[3] = {s_path, s_open_path, s_key_name};
    for (int i = 0; i < 3; i++) { /* f.get("path") or f.get("open_path") or f.get("key_name") */
        path = PyDict_GetItemWithError(f, keys[i]);
        if (!path && PyErr_Occurred()) return NULL;
        if (i == 2) break;
        int t = path ? PyObject_IsTrue(path) : 0;
        if (t < 0) return NULL;
        if (t) break;
    }
    PyObject *name;
    if (core->named_status && status && status != Py_None) {
        name = cached(core->status_names, status, core->maker, "_status_text", status, NULL);
        if (!name) return NULL;
    } else {
        name = Py_None;
        Py_INCREF(name);
    }
    PyObject *ts = iso_obj(PyTuple_GET_ITEM(op, 0));
    PyObject *r = ts ? PyDict_Copy(t_failure) : NULL;
    if (!r || PyDict_SetItem(r, s_kind, PyTuple_GET_ITEM(op, 8)) < 0 ||
        PyDict_SetItem(r, s_path, path ? path : Py_None) < 0 ||
        PyDict_SetItem(r, s_status, status ? status : Py_None) < 0 || PyDict_SetItem(r, s_status_name, name) < 0 ||
        PyDict_SetItem(r, s_pid, PyTuple_GET_ITEM(op, 1)) < 0 || PyDict_SetItem(r, s_tid, PyTuple_GET_ITEM(op, 2)) < 0 ||
        PyDict_SetItem(r, s_ts, ts) < 0) {
        Py_XDECREF(r);
        r = NULL;
    }
    Py_DECREF(name);
    Py_XDECREF(ts);
    return r;
}

/* is_failure (knowledge.status) */
static int failed_status(PyObject *status) {
    if (!status || !PyLong_CheckExact(status)) return 0;
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(status, &overflow);
    if (!overflow) return (v & 0xC0000000LL) == 0xC0000000LL;
    PyErr_Clear();
    PyObject *mask = PyLong_FromUnsignedLong(0xC0000000UL);
    PyObject *and = mask ? PyNumber_And(status, mask) : NULL;
    int r = and ? PyObject_RichCompareBool(and, mask, Py_EQ) : -1;
    Py_XDECREF(and);
    Py_XDECREF(mask);
    return r;
}

/* Call.failures (as records) */
static PyObject *failure_records(RecordCore *core, PyObject *ops) {
    if (ops && ops != Py_None && !PyList_Check(ops)) Py_RETURN_NOTIMPLEMENTED;
    PyObject *out = PyList_New(0);
    if (!out || !ops || ops == Py_None) return out;
    Py_ssize_t n = PyList_GET_SIZE(ops);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *op = PyList_GET_ITEM(ops, i);
        if (!PyTuple_Check(op) || PyTuple_GET_SIZE(op) < 11) { Py_DECREF(out); PyErr_SetString(PyExc_TypeError, "an operation is not an Event"); return NULL; }
        PyObject *kind = PyTuple_GET_ITEM(op, 8);
        if (!PyUnicode_Check(kind)) { Py_DECREF(out); Py_RETURN_NOTIMPLEMENTED; }
        int m = 0; /* kind.startswith(FAILING) */
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(core->failing) && !m; j++) {
            Py_ssize_t t = PyUnicode_Tailmatch(kind, PyTuple_GET_ITEM(core->failing, j), 0, PY_SSIZE_T_MAX, -1);
            if (t < 0) { Py_DECREF(out); return NULL; }
            m = (int)t;
        }
        if (!m) continue;
        PyObject *f = PyTuple_GET_ITEM(op, 9);
        PyObject *st = PyDict_CheckExact(f) ? PyDict_GetItemWithError(f, s_fields_status) : NULL;
        if (PyErr_Occurred()) { Py_DECREF(out); return NULL; }
        if (!PyDict_CheckExact(f)) { Py_DECREF(out); Py_RETURN_NOTIMPLEMENTED; }
        int failed = failed_status(st);
        if (failed < 0) { Py_DECREF(out); return NULL; }
        if (!failed) continue;
        PyObject *rec = failure_record(core, op);
        if (!rec || PyList_Append(out, rec) < 0) { Py_XDECREF(rec); Py_DECREF(out); return NULL; }
        Py_DECREF(rec);
    }
    return out;
}

/* the layout of the call fields fc_call_fields gives */
enum { I_ID, I_CPID, I_CTID, I_SPID, I_STID, I_START, I_END, I_SSTART, I_SEND, I_NINTS };
enum { O_INTERFACE, O_OPNUM, O_ENDPOINT, O_STATUS, O_SSTATUS, O_AUTH_LEVEL, O_AUTH_SERVICE, O_CONFIDENCE,
       O_EVIDENCE, O_AMBIGUOUS, O_PARENT_ID, O_CHILDREN, O_OPERATIONS, O_PROTOCOL_NAME, O_MODE, O_COMPLETION,
       O_MESSAGE_ID, O_RESULT, O_RESULT_SOURCE, O_WIRE, O_NOBJS };

static PyObject *ts_or_none(int64_t v) {
    if (v == INT64_MIN) Py_RETURN_NONE;
    return iso(v);
}

/* RecordMaker.__call__ for a call of the C engine (NotImplemented for another object) */
static PyObject *core_call(RecordCore *core, PyObject *args, PyObject *kw) {
    PyObject *call;
    if (!PyArg_ParseTuple(args, "O", &call)) return NULL;
    if (!fc_is_call(call)) Py_RETURN_NOTIMPLEMENTED;
    int64_t v[I_NINTS];
    PyObject *o[O_NOBJS];
    if (!fc_call_fields(call, v, o)) return NULL; /* o: new references */
    if (o[O_WIRE] != Py_None) { /* a call seen in a network capture: RecordMaker adds its wire */
        for (int i = 0; i < O_NOBJS; i++) Py_DECREF(o[i]);
        Py_RETURN_NOTIMPLEMENTED;
    }
    PyObject *rec = NULL, *iname = NULL, *proc = NULL, *cimage = NULL, *simage = NULL, *service = NULL;
    PyObject *cpid = NULL, *spid = NULL, *key = NULL, *tmp = NULL;
    PyObject *interface = o[O_INTERFACE], *opnum = o[O_OPNUM];
    int has_iface = PyObject_IsTrue(interface);
    if (has_iface < 0) goto done;
    if (core->names != Py_None && has_iface) {
        key = PyTuple_Pack(2, interface, opnum);
        if (!key) goto done;
        PyObject *hit = PyDict_GetItemWithError(core->procedures, key);
        if (hit) Py_INCREF(hit);
        else {
            if (PyErr_Occurred()) goto done;
            /* found = names(interface, opnum); (found[0], found[1]) */
            PyObject *got = PyObject_CallFunctionObjArgs(core->names, interface, opnum, NULL);
            PyObject *a = got ? PySequence_GetItem(got, 0) : NULL, *b = a ? PySequence_GetItem(got, 1) : NULL;
            hit = b ? PyTuple_Pack(2, a, b) : NULL;
            Py_XDECREF(got);
            Py_XDECREF(a);
            Py_XDECREF(b);
            if (!hit) goto done;
            if (PyDict_SetItem(core->procedures, key, hit) < 0) { Py_DECREF(hit); goto done; }
        }
        if (!PyTuple_Check(hit) || PyTuple_GET_SIZE(hit) != 2) { /* a cache filled elsewhere */
            PyObject *t = PySequence_Tuple(hit);
            Py_DECREF(hit);
            if (!t) goto done;
            if (PyTuple_GET_SIZE(t) != 2) {
                Py_DECREF(t);
                PyErr_SetString(PyExc_ValueError, "the names cache holds something else than (name, procedure)");
                goto done;
            }
            hit = t;
        }
        iname = PyTuple_GET_ITEM(hit, 0);
        proc = PyTuple_GET_ITEM(hit, 1);
        Py_INCREF(iname);
        Py_INCREF(proc);
        Py_DECREF(hit);
        Py_CLEAR(key);
    } else {
        iname = Py_None;
        proc = Py_None;
        Py_INCREF(iname);
        Py_INCREF(proc);
    }
    if (proc == Py_None) {
        /* no database names the procedure: with symbols, RecordMaker derives it from the server's
         * stack (correlate.procedure): that call's record is Python's to make */
        PyObject *trace = PyObject_GetAttrString(core->maker, "_trace");
        PyObject *symbols = trace && trace != Py_None ? PyObject_GetAttrString(trace, "symbols") : NULL;
        if (!symbols && PyErr_Occurred()) PyErr_Clear(); /* no such attribute: no symbols */
        Py_XDECREF(trace);
        if (symbols && symbols != Py_None) {
            Py_DECREF(symbols);
            for (int i = 0; i < O_NOBJS; i++) Py_XDECREF(o[i]);
            Py_XDECREF(iname);
            Py_XDECREF(proc);
            Py_RETURN_NOTIMPLEMENTED;
        }
        Py_XDECREF(symbols);
    }
    cpid = id_or_none64(v[I_CPID]);
    spid = id_or_none64(v[I_SPID]);
    if (!cpid || !spid) goto done;
    if (!(cimage = cached(core->images, cpid, core->maker, "image", cpid, NULL))) goto done;
    if (!(simage = cached(core->images, spid, core->maker, "image", spid, NULL))) goto done;
    if (!(key = PyTuple_Pack(2, spid, interface))) goto done;
    if (!(service = cached(core->services, key, core->maker, "service", spid, interface))) goto done;
    Py_CLEAR(key);

    rec = PyDict_Copy(t_record);
    if (!rec) goto done;
#define SET(k, expr) do { tmp = (expr); if (!tmp || PyDict_SetItem(rec, k, tmp) < 0) goto fail; Py_CLEAR(tmp); } while (0)
#define SETB(k, obj) do { if (PyDict_SetItem(rec, k, obj) < 0) goto fail; } while (0)
    SET(s_id, PyLong_FromLongLong(v[I_ID]));
    {
        PyObject *side = PyDict_Copy(t_client);
        if (!side) goto fail;
        PyObject *tid = id_or_none64(v[I_CTID]);
        if (!tid || PyDict_SetItem(side, s_pid, cpid) < 0 || PyDict_SetItem(side, s_tid, tid) < 0 ||
            PyDict_SetItem(side, s_image, cimage) < 0 || PyDict_SetItem(rec, s_client, side) < 0) {
            Py_XDECREF(tid);
            Py_DECREF(side);
            goto fail;
        }
        Py_DECREF(tid);
        Py_DECREF(side);
        side = PyDict_Copy(t_server);
        if (!side) goto fail;
        tid = id_or_none64(v[I_STID]);
        if (!tid || PyDict_SetItem(side, s_pid, spid) < 0 || PyDict_SetItem(side, s_tid, tid) < 0 ||
            PyDict_SetItem(side, s_image, simage) < 0 || PyDict_SetItem(side, s_service, service) < 0 ||
            PyDict_SetItem(rec, s_server, side) < 0) {
            Py_XDECREF(tid);
            Py_DECREF(side);
            goto fail;
        }
        Py_DECREF(tid);
        Py_DECREF(side);
        side = PyDict_Copy(t_interface);
        if (!side) goto fail;
        if (PyDict_SetItem(side, s_uuid, interface) < 0 || PyDict_SetItem(side, s_name, iname) < 0 ||
            PyDict_SetItem(rec, s_interface, side) < 0) {
            Py_DECREF(side);
            goto fail;
        }
        Py_DECREF(side);
    }
    SETB(s_opnum, opnum);
    SETB(s_procedure, proc);
    SETB(s_endpoint, o[O_ENDPOINT]);
    SETB(s_protocol, o[O_PROTOCOL_NAME]);
    SETB(s_mode, o[O_MODE]);
    SETB(s_completion_tid, o[O_COMPLETION]);
    SETB(s_alpc_message_id, o[O_MESSAGE_ID]);
    SET(s_start, ts_or_none(v[I_START]));
    SET(s_end, ts_or_none(v[I_END]));
    SET(s_server_start, ts_or_none(v[I_SSTART]));
    SET(s_server_end, ts_or_none(v[I_SEND]));
    if (v[I_END] != INT64_MIN && v[I_START] != INT64_MIN) {
        __int128 diff = (__int128)v[I_END] - (__int128)v[I_START];
        if (diff > -((__int128)1 << 53) && diff < ((__int128)1 << 53)) {
            SET(s_duration_us, PyFloat_FromDouble((double)(int64_t)diff / 10.0));
        } else { /* (end - start) / 10 with Python's correctly rounded int division */
            PyObject *a = PyLong_FromLongLong(v[I_END]), *b = PyLong_FromLongLong(v[I_START]);
            PyObject *dd = a && b ? PyNumber_Subtract(a, b) : NULL, *ten = PyLong_FromLong(10);
            tmp = dd && ten ? PyNumber_TrueDivide(dd, ten) : NULL;
            Py_XDECREF(a);
            Py_XDECREF(b);
            Py_XDECREF(dd);
            Py_XDECREF(ten);
            if (!tmp || PyDict_SetItem(rec, s_duration_us, tmp) < 0) goto fail;
            Py_CLEAR(tmp);
        }
    } else {
        SETB(s_duration_us, Py_None);
    }
    SETB(s_status, o[O_STATUS] != Py_None ? o[O_STATUS] : o[O_SSTATUS]);
    SETB(s_result, o[O_RESULT]);
    SETB(s_result_source, o[O_RESULT_SOURCE]);
    SETB(s_auth_level, o[O_AUTH_LEVEL]);
    SETB(s_auth_service, o[O_AUTH_SERVICE]);
    SETB(s_confidence, o[O_CONFIDENCE]);
    SETB(s_evidence, o[O_EVIDENCE]);
    SETB(s_ambiguous, o[O_AMBIGUOUS]);
    SETB(s_parent, o[O_PARENT_ID]);
    {
        PyObject *children = o[O_CHILDREN];
        int t = PyObject_IsTrue(children);
        if (t < 0) goto fail;
        PyObject *ids = PyList_New(0);
        if (!ids) goto fail;
        if (t) {
            PyObject *it = PyObject_GetIter(children), *child;
            if (!it) { Py_DECREF(ids); goto fail; }
            while ((child = PyIter_Next(it))) {
                PyObject *cid = PyObject_GetAttr(child, s_id);
                Py_DECREF(child);
                if (!cid || PyList_Append(ids, cid) < 0) { Py_XDECREF(cid); Py_DECREF(it); Py_DECREF(ids); goto fail; }
                Py_DECREF(cid);
            }
            Py_DECREF(it);
            if (PyErr_Occurred()) { Py_DECREF(ids); goto fail; }
        }
        tmp = ids;
        if (PyDict_SetItem(rec, s_children, tmp) < 0) goto fail;
        Py_CLEAR(tmp);
    }
    tmp = failure_records(core, o[O_OPERATIONS]);
    if (tmp == Py_NotImplemented) { /* operations of another shape: the Python property decides */
        Py_CLEAR(tmp);
        PyObject *fails = PyObject_GetAttrString(call, "failures");
        if (!fails) goto fail;
        tmp = PyList_New(0);
        PyObject *it = tmp ? PyObject_GetIter(fails) : NULL, *op;
        Py_DECREF(fails);
        if (!it) goto fail;
        while ((op = PyIter_Next(it))) {
            PyObject *r = PyObject_CallMethod(core->maker, "failure", "O", op);
            Py_DECREF(op);
            if (!r || PyList_Append(tmp, r) < 0) { Py_XDECREF(r); Py_DECREF(it); goto fail; }
            Py_DECREF(r);
        }
        Py_DECREF(it);
        if (PyErr_Occurred()) goto fail;
    }
    if (!tmp || PyDict_SetItem(rec, s_failures, tmp) < 0) goto fail;
    Py_CLEAR(tmp);
#undef SET
#undef SETB
    goto done;
fail:
    Py_XDECREF(tmp);
    Py_CLEAR(rec);
done:
    for (int i = 0; i < O_NOBJS; i++) Py_XDECREF(o[i]);
    Py_XDECREF(iname);
    Py_XDECREF(proc);
    Py_XDECREF(cimage);
    Py_XDECREF(simage);
    Py_XDECREF(service);
    Py_XDECREF(cpid);
    Py_XDECREF(spid);
    Py_XDECREF(key);
    return rec;
}

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "rpctrace.sources.etl._fastrecords.RecordCore",
    .tp_basicsize = sizeof(RecordCore),
    .tp_dealloc = (destructor)core_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "RecordMaker.__call__ for calls of the C engine (NotImplemented for others).",
    .tp_traverse = (traverseproc)core_traverse,
    .tp_clear = (inquiry)core_clear,
    .tp_call = (ternaryfunc)core_call,
};

/* record_core(maker, failing, max_ticks, ticks_to_iso) */
static PyObject *make_record_core(PyObject *self, PyObject *args) {
    PyObject *maker, *failing, *iso_fn;
    long long mt;
    if (!PyArg_ParseTuple(args, "OO!LO", &maker, &PyTuple_Type, &failing, &mt, &iso_fn)) return NULL;
    if (mt <= 0) {
        PyErr_SetString(PyExc_ValueError, "max_ticks must be positive");
        return NULL;
    }
    max_ticks = mt;
    if (make_templates() < 0) return NULL;
    Py_INCREF(iso_fn);
    Py_XSETREF(ticks_to_iso_py, iso_fn);
    RecordCore *c = PyObject_GC_New(RecordCore, &CoreType);
    if (!c) return NULL;
    c->maker = c->names = c->images = c->services = c->procedures = c->status_names = c->failing = NULL;
    Py_INCREF(maker);
    c->maker = maker;
    Py_INCREF(failing);
    c->failing = failing;
    c->names = PyObject_GetAttrString(maker, "_names");
    c->images = PyObject_GetAttrString(maker, "_images");
    c->services = PyObject_GetAttrString(maker, "_services");
    c->procedures = PyObject_GetAttrString(maker, "_procedures");
    c->status_names = PyObject_GetAttrString(maker, "_status_names");
    PyObject *named = PyObject_GetAttrString(maker, "_named_status");
    c->named_status = named ? PyObject_IsTrue(named) : -1;
    Py_XDECREF(named);
    PyObject_GC_Track(c);
    if (!c->names || !c->images || !c->services || !c->procedures || !c->status_names || c->named_status < 0) {
        Py_DECREF(c);
        return NULL;
    }
    if (!PyDict_CheckExact(c->images) || !PyDict_CheckExact(c->services) || !PyDict_CheckExact(c->procedures) ||
        !PyDict_CheckExact(c->status_names)) {
        Py_DECREF(c);
        PyErr_SetString(PyExc_TypeError, "the maker's caches must be dicts");
        return NULL;
    }
    return (PyObject *)c;
}

/* ------------------------------------------------------------------ the table line */

static PyObject *row_format, *row_any; /* render.calls._ROW and _table_row_any */

/* _ROW parsed: literal text and conversions "%[-][W]s" and "%[W].Pf", in order.  A format of
 * another shape leaves nparts 0 and the line is made by PyUnicode_Format. */
typedef struct {
    PyObject *lit;  /* literal text before the conversion (a str, maybe empty) */
    int width, left, prec; /* prec >= 0: a float conversion */
} RowPart;
#define MAX_PARTS 16
static RowPart parts[MAX_PARTS];
static int nparts;      /* conversions */
static PyObject *tail;  /* literal text after the last conversion */

static void parse_row_format(void) {
    for (int i = 0; i < nparts; i++) Py_CLEAR(parts[i].lit);
    Py_CLEAR(tail);
    nparts = 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(row_format), start = 0, i = 0;
    while (i < n) {
        Py_UCS4 ch = PyUnicode_READ_CHAR(row_format, i);
        if (ch != '%') { i++; continue; }
        if (nparts == MAX_PARTS) goto bad;
        RowPart *p = &parts[nparts];
        p->lit = PyUnicode_Substring(row_format, start, i);
        if (!p->lit) goto bad;
        nparts++;
        i++;
        p->left = 0;
        p->width = 0;
        p->prec = -1;
        if (i < n && PyUnicode_READ_CHAR(row_format, i) == '-') { p->left = 1; i++; }
        while (i < n && PyUnicode_READ_CHAR(row_format, i) >= '0' && PyUnicode_READ_CHAR(row_format, i) <= '9' && p->width < 1000)
            p->width = p->width * 10 + (int)(PyUnicode_READ_CHAR(row_format, i++) - '0');
        if (i < n && PyUnicode_READ_CHAR(row_format, i) == '.') {
            i++;
            p->prec = 0;
            while (i < n && PyUnicode_READ_CHAR(row_format, i) >= '0' && PyUnicode_READ_CHAR(row_format, i) <= '9' && p->prec < 100)
                p->prec = p->prec * 10 + (int)(PyUnicode_READ_CHAR(row_format, i++) - '0');
            if (i >= n || PyUnicode_READ_CHAR(row_format, i) != 'f' || p->left) goto bad;
        } else if (i >= n || PyUnicode_READ_CHAR(row_format, i) != 's') {
            goto bad;
        }
        i++;
        start = i;
    }
    tail = PyUnicode_Substring(row_format, start, n);
    if (tail && nparts == 11) return;
bad:
    PyErr_Clear();
    for (int k = 0; k < nparts; k++) Py_CLEAR(parts[k].lit);
    Py_CLEAR(tail);
    nparts = 0;
}

/* the line: parts filled with items (all str, except a float for float conversions) */
static PyObject *build_row(PyObject **items) {
    PyObject *texts[11];
    Py_ssize_t len = 0;
    Py_UCS4 maxchar = 127;
    for (int i = 0; i < 11; i++) {
        if (parts[i].prec >= 0) {
            char *d = PyOS_double_to_string(PyFloat_AsDouble(items[i]), 'f', parts[i].prec, 0, NULL);
            texts[i] = d ? PyUnicode_FromString(d) : NULL;
            PyMem_Free(d);
        } else if (PyUnicode_CheckExact(items[i])) {
            texts[i] = items[i];
            Py_INCREF(texts[i]);
        } else {
            texts[i] = PyObject_Str(items[i]); /* what %s does */
        }
        if (!texts[i]) {
            for (int j = 0; j < i; j++) Py_DECREF(texts[j]);
            return NULL;
        }
        Py_ssize_t w = PyUnicode_GET_LENGTH(texts[i]);
        len += PyUnicode_GET_LENGTH(parts[i].lit) + (w < parts[i].width ? parts[i].width : w);
        Py_UCS4 m = PyUnicode_MAX_CHAR_VALUE(texts[i]);
        if (m > maxchar) maxchar = m;
        m = PyUnicode_MAX_CHAR_VALUE(parts[i].lit);
        if (m > maxchar) maxchar = m;
    }
    len += PyUnicode_GET_LENGTH(tail);
    if (PyUnicode_MAX_CHAR_VALUE(tail) > maxchar) maxchar = PyUnicode_MAX_CHAR_VALUE(tail);
    PyObject *out = PyUnicode_New(len, maxchar);
    Py_ssize_t at = 0;
    for (int i = 0; out && i < 11; i++) {
        Py_ssize_t l = PyUnicode_GET_LENGTH(parts[i].lit), w = PyUnicode_GET_LENGTH(texts[i]);
        if (l && PyUnicode_CopyCharacters(out, at, parts[i].lit, 0, l) < 0) { Py_CLEAR(out); break; }
        at += l;
        Py_ssize_t pad = w < parts[i].width ? parts[i].width - w : 0;
        if (pad && !parts[i].left) {
            if (PyUnicode_Fill(out, at, pad, ' ') < 0) { Py_CLEAR(out); break; }
            at += pad;
        }
        if (w && PyUnicode_CopyCharacters(out, at, texts[i], 0, w) < 0) { Py_CLEAR(out); break; }
        at += w;
        if (pad && parts[i].left) {
            if (PyUnicode_Fill(out, at, pad, ' ') < 0) { Py_CLEAR(out); break; }
            at += pad;
        }
    }
    if (out && PyUnicode_GET_LENGTH(tail) && PyUnicode_CopyCharacters(out, at, tail, 0, PyUnicode_GET_LENGTH(tail)) < 0)
        Py_CLEAR(out);
    for (int i = 0; i < 11; i++) Py_DECREF(texts[i]);
    return out;
}

/* small caches of the texts that repeat from line to line (who, what), keyed by their inputs */
static PyObject *who_cache, *what_cache;

static PyObject *cache_get(PyObject **cache, PyObject *key) {
    if (!*cache && !(*cache = PyDict_New())) return NULL;
    PyObject *hit = PyDict_GetItemWithError(*cache, key);
    Py_XINCREF(hit);
    return hit;
}
static int cache_put(PyObject *cache, PyObject *key, PyObject *value) {
    if (PyDict_GET_SIZE(cache) >= 65536) PyDict_Clear(cache);
    return PyDict_SetItem(cache, key, value);
}

/* fit(text, width) */
static PyObject *fit(PyObject *text, Py_ssize_t width) {
    if (PyUnicode_GET_LENGTH(text) <= width) { Py_INCREF(text); return text; }
    PyObject *head = PyUnicode_Substring(text, 0, width - 1);
    if (!head) return NULL;
    PyObject *r = PyUnicode_Concat(head, s_ellipsis);
    Py_DECREF(head);
    return r;
}

/* format(value, "") as an f-string does */
static PyObject *fmt(PyObject *v) { return PyObject_Format(v, s_empty); }

/* _who(side) */
static PyObject *who(PyObject *side) {
    if (!PyDict_Check(side)) return NULL;
    PyObject *image = PyDict_GetItemWithError(side, s_image);
    if (!image && PyErr_Occurred()) return NULL;
    int t = image ? PyObject_IsTrue(image) : 0;
    if (t < 0) return NULL;
    if (!t) image = s_qmark;
    PyObject *pid = PyDict_GetItemWithError(side, s_pid), *tid = pid || !PyErr_Occurred() ? PyDict_GetItemWithError(side, s_tid) : NULL;
    if (PyErr_Occurred()) return NULL;
    if (!pid || pid == Py_None) pid = s_dash;
    if (!tid || tid == Py_None) tid = s_dash;
    if (!t && pid == s_dash) {
        /* no process: a side only a capture names (address:port) is left to _who (NULL, no error) */
        PyObject *address = PyDict_GetItemWithError(side, s_address);
        if (!address && PyErr_Occurred()) return NULL;
        int named = address ? PyObject_IsTrue(address) : 0;
        if (named < 0) return NULL;
        if (named) return NULL;
    }
    /* the key holds the objects themselves: equal keys give the same text (only str and int
     * values, whose text is their value's, are cached) */
    int plain = PyUnicode_CheckExact(image) && (pid == s_dash || PyLong_CheckExact(pid)) && (tid == s_dash || PyLong_CheckExact(tid));
    PyObject *key = plain ? PyTuple_Pack(3, image, pid, tid) : NULL;
    if (plain && !key) return NULL;
    PyObject *r = key ? cache_get(&who_cache, key) : NULL;
    if (r || PyErr_Occurred()) { Py_XDECREF(key); return r; }
    PyObject *a = fmt(image), *b = fmt(pid), *c = fmt(tid);
    if (a && b && c) r = PyUnicode_FromFormat("%U(%U:%U)", a, b, c);
    Py_XDECREF(a);
    Py_XDECREF(b);
    Py_XDECREF(c);
    if (r && key && cache_put(who_cache, key, r) < 0) Py_CLEAR(r);
    Py_XDECREF(key);
    return r;
}

/* _status(value) */
static PyObject *status_text(PyObject *v) {
    if (v == Py_None) { Py_INCREF(s_dash); return s_dash; }
    int t = PyObject_IsTrue(v);
    if (t < 0) return NULL;
    if (!t) { Py_INCREF(s_zero); return s_zero; }
    PyObject *spec = PyUnicode_FromString("x");
    PyObject *h = spec ? PyObject_Format(v, spec) : NULL;
    Py_XDECREF(spec);
    if (!h) return NULL;
    PyObject *r = PyUnicode_FromFormat("0x%U", h);
    Py_DECREF(h);
    return r;
}

/* duration_text(us) for None or a float (the caller sends other types to Python) */
static PyObject *duration(PyObject *us) {
    if (us == Py_None) {
        Py_INCREF(s_dash);
        return s_dash;
    }
    double d = PyFloat_AS_DOUBLE(us);
    if (d != d || d < 0) { Py_INCREF(s_dash); return s_dash; }
    int prec;
    double value;
    PyObject *unit;
    if (d < 1000) { value = d; prec = d >= 10 ? 0 : 1; unit = s_us; }
    else if (d < 1000000) { value = d / 1000; prec = value >= 10 ? 1 : 2; unit = s_ms; }
    else { value = d / 1000000; prec = value >= 10 ? 1 : 2; unit = s_sec; }
    char *s = PyOS_double_to_string(value, 'f', prec, 0, NULL);
    if (!s) return NULL;
    PyObject *r = PyUnicode_FromFormat("%s%U", s, unit);
    PyMem_Free(s);
    return r;
}

static PyObject *get(PyObject *d, PyObject *k) {
    PyObject *v = PyDict_GetItemWithError(d, k);
    if (!v && !PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, k);
    return v;
}

/* _table_row(r) */
static PyObject *table_row(PyObject *self, PyObject *r) {
    if (!PyDict_Check(r)) return PyObject_CallFunctionObjArgs(row_any, r, NULL);
    PyObject *id = get(r, s_id), *start = id ? get(r, s_start) : NULL, *endpoint = start ? get(r, s_endpoint) : NULL,
             *confidence = endpoint ? get(r, s_confidence) : NULL;
    if (!confidence) return NULL;
    int t;
    if ((t = PyObject_IsTrue(start)) < 0) return NULL;
    if (!t) start = s_dash;
    if ((t = PyObject_IsTrue(endpoint)) < 0) return NULL;
    if (!t) endpoint = s_dash;
    if (Py_TYPE(id) != &PyLong_Type || Py_TYPE(start) != &PyUnicode_Type || Py_TYPE(endpoint) != &PyUnicode_Type ||
        Py_TYPE(confidence) != &PyFloat_Type)
        return PyObject_CallFunctionObjArgs(row_any, r, NULL);
    PyObject *items[11] = {0}, *row = NULL;
    PyObject *client = get(r, s_client), *server = client ? get(r, s_server) : NULL;
    if (!server) return NULL;
    {
        PyObject *iface_d = get(r, s_interface), *dur = iface_d ? get(r, s_duration_us) : NULL;
        PyObject *fails = dur ? get(r, s_failures) : NULL;
        if (!fails) return NULL;
        if (!PyDict_Check(client) || !PyDict_Check(server) || !PyDict_Check(iface_d) ||
            (dur != Py_None && Py_TYPE(dur) != &PyFloat_Type) || !PyList_Check(fails) ||
            (PyList_GET_SIZE(fails) && !PyDict_Check(PyList_GET_ITEM(fails, 0))))
            return PyObject_CallFunctionObjArgs(row_any, r, NULL);
    }
    PyObject *wc = who(client), *ws = wc ? who(server) : NULL;
    if (!ws) {
        Py_XDECREF(wc);
        return PyErr_Occurred() ? NULL : PyObject_CallFunctionObjArgs(row_any, r, NULL);
    }
    /* _what(r) */
    PyObject *what = NULL;
    {
        PyObject *iface_d = get(r, s_interface);
        PyObject *name = iface_d ? get(iface_d, s_name) : NULL;
        PyObject *uuid = name ? get(iface_d, s_uuid) : NULL;
        PyObject *opnum = uuid ? get(r, s_opnum) : NULL;
        if (!opnum) goto out;
        PyObject *iface = name;
        if ((t = PyObject_IsTrue(iface)) < 0) goto out;
        if (!t) {
            iface = uuid;
            if ((t = PyObject_IsTrue(iface)) < 0) goto out;
            if (!t) iface = s_qmark;
        }
        PyObject *procedure = PyDict_GetItemWithError(r, s_procedure);
        if (!procedure && PyErr_Occurred()) goto out;
        int has_proc = procedure ? PyObject_IsTrue(procedure) : 0;
        if (has_proc < 0) goto out;
        PyObject *second = has_proc ? procedure : (opnum != Py_None ? opnum : s_qmark);
        int plain = PyUnicode_CheckExact(iface) && (PyUnicode_CheckExact(second) || PyLong_CheckExact(second));
        PyObject *key = plain ? PyTuple_Pack(3, iface, second, has_proc ? Py_True : Py_False) : NULL;
        if (plain && !key) goto out;
        what = key ? cache_get(&what_cache, key) : NULL;
        if (!what && !PyErr_Occurred()) {
            PyObject *a = fmt(iface), *b = fmt(second);
            if (a && b) what = PyUnicode_FromFormat(has_proc ? "%U!%U" : "%U/%U", a, b);
            Py_XDECREF(a);
            Py_XDECREF(b);
            if (what && key && cache_put(what_cache, key, what) < 0) Py_CLEAR(what);
        }
        Py_XDECREF(key);
        if (!what) goto out;
    }
    /* _mode(r) */
    PyObject *mode = NULL;
    {
        PyObject *m = PyDict_GetItemWithError(r, s_mode);
        if (!m && PyErr_Occurred()) goto out;
        if (!m || m == Py_None) {
            mode = s_dash;
            Py_INCREF(mode);
        } else {
            int is_async = PyObject_RichCompareBool(m, s_async, Py_EQ);
            if (is_async < 0) goto out;
            PyObject *ct = is_async ? PyDict_GetItemWithError(r, s_completion_tid) : NULL;
            if (PyErr_Occurred()) goto out;
            if (is_async && ct && ct != Py_None) {
                PyObject *a = fmt(ct);
                mode = a ? PyUnicode_FromFormat("async@%U", a) : NULL;
                Py_XDECREF(a);
            } else {
                mode = m;
                Py_INCREF(mode);
            }
            if (!mode) goto out;
            if (!PyUnicode_Check(mode)) { /* fit() of something else: Python's way */
                Py_DECREF(mode);
                mode = NULL;
                Py_XDECREF(what);
                Py_DECREF(wc);
                Py_DECREF(ws);
                return PyObject_CallFunctionObjArgs(row_any, r, NULL);
            }
        }
    }
    /* _first_failure(r) */
    PyObject *first = NULL;
    {
        PyObject *fails = get(r, s_failures);
        if (!fails) goto out_mode;
        Py_ssize_t n = PyObject_Length(fails);
        if (n < 0) goto out_mode;
        if (n == 0) {
            first = s_empty;
            Py_INCREF(first);
        } else {
            PyObject *f0 = PySequence_GetItem(fails, 0);
            if (!f0) goto out_mode;
            if (PyDict_GET_SIZE(f0) == 0) { /* ``if first`` of an empty dict */
                Py_DECREF(f0);
                first = s_empty;
                Py_INCREF(first);
                goto have_first;
            }
            PyObject *kind = PyObject_GetItem(f0, s_kind), *sname = kind ? PyObject_GetItem(f0, s_status_name) : NULL;
            PyObject *path = NULL, *st = NULL;
            if (sname) {
                t = PyObject_IsTrue(sname);
                if (t > 0) { st = sname; Py_INCREF(st); }
                else if (t == 0) {
                    PyObject *raw = PyObject_GetItem(f0, s_status);
                    st = raw ? status_text(raw) : NULL;
                    Py_XDECREF(raw);
                }
                path = st ? PyObject_GetItem(f0, s_path) : NULL;
            }
            if (path) {
                PyObject *a = fmt(kind), *b = fmt(st), *c = fmt(path);
                if (a && b && c) first = PyUnicode_FromFormat("%zd: %U %U %U", n, a, b, c);
                Py_XDECREF(a);
                Py_XDECREF(b);
                Py_XDECREF(c);
            }
            Py_XDECREF(kind);
            Py_XDECREF(sname);
            Py_XDECREF(st);
            Py_XDECREF(path);
            Py_DECREF(f0);
            if (!first) goto out_mode;
        }
    }
have_first:;
    PyObject *dur = get(r, s_duration_us);
    PyObject *status = dur ? get(r, s_status) : NULL;
    if (!status) goto out_first;
    Py_INCREF(id);
    items[0] = id;
    Py_INCREF(start);
    items[1] = start;
    items[2] = duration(dur);
    items[3] = fit(mode, 14);
    items[4] = fit(wc, 30);
    items[5] = fit(ws, 30);
    items[6] = fit(what, 60);
    items[7] = fit(endpoint, 18);
    items[8] = status_text(status);
    Py_INCREF(confidence);
    items[9] = confidence;
    Py_INCREF(first);
    items[10] = first;
    PyObject *tuple = PyTuple_New(11);
    if (tuple) {
        int bad = 0;
        for (int i = 0; i < 11; i++) {
            if (!items[i]) bad = 1;
            PyTuple_SET_ITEM(tuple, i, items[i]);
            items[i] = NULL;
        }
        if (!bad) row = nparts == 11 ? build_row(&PyTuple_GET_ITEM(tuple, 0)) : PyUnicode_Format(row_format, tuple);
        Py_DECREF(tuple);
    }
    for (int i = 0; i < 11; i++) Py_XDECREF(items[i]);
out_first:
    Py_XDECREF(first);
out_mode:
    Py_XDECREF(mode);
out:
    Py_XDECREF(what);
    Py_DECREF(wc);
    Py_DECREF(ws);
    return row;
}

static PyMethodDef fr_methods[] = {
    {"record_core", make_record_core, METH_VARARGS, "record_core(maker, failing, max_ticks, ticks_to_iso)"},
    {"table_row", table_row, METH_O, "render.calls._table_row, in C"},
    {NULL},
};

/* set_table_format(_ROW, _table_row_any) */
static PyObject *set_table_format(PyObject *self, PyObject *args) {
    PyObject *f, *any;
    if (!PyArg_ParseTuple(args, "UO", &f, &any)) return NULL;
    Py_INCREF(f);
    Py_XSETREF(row_format, f);
    Py_INCREF(any);
    Py_XSETREF(row_any, any);
    parse_row_format();
    Py_RETURN_NONE;
}
static PyMethodDef fr_set[] = {
    {"set_table_format", set_table_format, METH_VARARGS, "set_table_format(_ROW, _table_row_any)"},
    {NULL},
};

/* iso(ticks): ticks_to_iso for 64-bit ticks (tests compare it with model.ticks_to_iso) */
static PyObject *iso_py(PyObject *self, PyObject *arg) {
    long long v = PyLong_AsLongLong(arg);
    if (v == -1 && PyErr_Occurred()) return NULL;
    if (max_ticks <= 0) {
        PyErr_SetString(PyExc_RuntimeError, "record_core() sets the clamp first");
        return NULL;
    }
    return iso(v);
}
static PyMethodDef fr_iso[] = {{"ticks_to_iso", iso_py, METH_O, "model.ticks_to_iso for 64-bit ticks"}, {NULL}};

int fastrender_init(PyObject *m) {
    if (PyType_Ready(&CoreType) < 0) return -1;
#define TEXT(var, s) if (!(var = PyUnicode_InternFromString(s))) return -1
    TEXT(s_id, "id");
    TEXT(s_client, "client");
    TEXT(s_server, "server");
    TEXT(s_interface, "interface");
    TEXT(s_opnum, "opnum");
    TEXT(s_procedure, "procedure");
    TEXT(s_endpoint, "endpoint");
    TEXT(s_protocol, "protocol");
    TEXT(s_mode, "mode");
    TEXT(s_completion_tid, "completion_tid");
    TEXT(s_alpc_message_id, "alpc_message_id");
    TEXT(s_start, "start");
    TEXT(s_end, "end");
    TEXT(s_server_start, "server_start");
    TEXT(s_server_end, "server_end");
    TEXT(s_duration_us, "duration_us");
    TEXT(s_status, "status");
    TEXT(s_result, "result");
    TEXT(s_result_source, "result_source");
    TEXT(s_auth_level, "auth_level");
    TEXT(s_auth_service, "auth_service");
    TEXT(s_confidence, "confidence");
    TEXT(s_evidence, "evidence");
    TEXT(s_ambiguous, "ambiguous");
    TEXT(s_parent, "parent");
    TEXT(s_children, "children");
    TEXT(s_failures, "failures");
    TEXT(s_pid, "pid");
    TEXT(s_tid, "tid");
    TEXT(s_image, "image");
    TEXT(s_address, "address");
    TEXT(s_service, "service");
    TEXT(s_uuid, "uuid");
    TEXT(s_name, "name");
    TEXT(s_kind, "kind");
    TEXT(s_path, "path");
    TEXT(s_status_name, "status_name");
    TEXT(s_ts, "ts");
    TEXT(s_open_path, "open_path");
    TEXT(s_key_name, "key_name");
    TEXT(s_fields_status, "status");
    TEXT(s_dash, "-");
    TEXT(s_qmark, "?");
    TEXT(s_zero, "0");
    TEXT(s_async, "async");
    TEXT(s_empty, "");
    TEXT(s_us, " \xc2\xb5s");
    TEXT(s_ms, " ms");
    TEXT(s_sec, " s");
    TEXT(s_ellipsis, "\xe2\x80\xa6");
#undef TEXT
    PyMethodDef *tables[] = {fr_methods, fr_set, fr_iso};
    for (int t = 0; t < 3; t++)
        for (PyMethodDef *d = tables[t]; d->ml_name; d++) {
            PyObject *f = PyCFunction_New(d, NULL);
            if (!f || PyModule_AddObject(m, d->ml_name, f) < 0) { Py_XDECREF(f); return -1; }
        }
    return 0;
}
