/*
 * The streamed correlation engine of the optional C module (rpctrace/correlate/fast.py drives it).
 *
 * What `rpctrace calls`, `tree` and `report` do with one ETL file, in one pass and in C for the
 * records a busy server's trace is made of:
 *
 *   decode   the record loop of _fastrecords.c hands over ALPC Send/Receive/WaitForReply/Unwait/
 *            WaitForNewMessage, RPC call start/stop (ids 5-8) and registry operations as compact C
 *            records; every other record is decoded by the Python decoders into an Event, as
 *            today;
 *   merge    buffers are merged in time order exactly as EtlReader.batches does (windows cut at
 *            the next buffer's first timestamp, stable, ties in file order), so every batch has
 *            the events and the boundaries of the Python stream;
 *   assemble per batch, as TraceStream._assemble: process ids from the thread table, and the
 *            stream's own bookkeeping (tables, KCB names, stacks, FileIo status) by calling
 *            TraceStream._other for every event it would see (compact registry operations are
 *            made into Events only when kept or when their stack is wanted);
 *   correlate per batch, as Correlator.feed: the ALPC pairing state machine of correlate/alpc.py
 *            and the RPC joins of correlate/calls.py, line for line (the Python code is the
 *            reference; tests/correlate/test_fast_engine.py compares the two on every writer
 *            scenario, 32/64-bit, compressed, every operations mode, and damaged buffers).
 *
 * Calls and ALPC messages are C objects (CallBase, Message) with the attributes of
 * correlate.calls.Call and correlate.alpc.AlpcMessage: timestamps and ids as 64-bit integers, no
 * per-call dict or int objects, so a million calls take a third of the memory of the dataclasses.
 *
 * Values the engine cannot hold exactly (a timestamp or id outside 64 bits, an activity id that is
 * not a GUID's text: only hostile files have them) raise EngineUnsupported, and the caller reads
 * the file again with the Python code.
 */
#include "_fastrecords.h"
#include <structmember.h>

#define NONE_TS INT64_MIN /* a timestamp that is None */
#define NONE_ID (-1)      /* a process or thread id that is None */

static PyObject *EngineUnsupported;
static PyObject *protocols_dict; /* correlate.calls.PROTOCOLS, for CallBase.protocol_name */
static PyObject *empty_tuple;

/* evidence phrases (correlate/alpc.py and correlate/calls.py) */
static PyObject *ev_alpc_reply, *ev_alpc_reply_other, *ev_alpc_send, *ev_reply_receive_lost, *ev_client_receive,
    *ev_reply_send_lost, *ev_client_receive_other, *ev_alpc_receive, *ev_datagram, *ev_rpc5_send, *ev_parent,
    *ev_activity57, *ev_rejected, *ev_receive_rpc6, *ev_activity68;
/* unpaired kinds */
static PyObject *lost_never_received, *lost_reply_without_send, *lost_receive_without_send;
static PyObject *s_file_create, *s_get, *s_empty, *s_raise_source, *s_eeinfo_source, *s_blame, *ev_rpc_control,
    *s_rpc_control;

static PyObject *unsupported(const char *what) {
    PyErr_Format(EngineUnsupported, "the C engine cannot hold %s", what);
    return NULL;
}

/* ------------------------------------------------------------------ hash map
 * Open addressing, linear probing, backward-shift deletion.  Keys are three 64-bit integers
 * (an id; a (pid, tid) pair; a pid and an activity GUID), values a pointer or an integer. */

typedef struct {
    int64_t a, b, c;
    intptr_t v;
    unsigned char used;
} HSlot;

typedef struct {
    HSlot *s;
    size_t mask, n;
    int owned; /* values are owned references to Python objects */
} HMap;

static inline size_t hhash(int64_t a, int64_t b, int64_t c) {
    uint64_t x = (uint64_t)a * 0x9E3779B97F4A7C15ull;
    x ^= ((uint64_t)b + 0x632BE59BD9B4E019ull) * 0xBF58476D1CE4E5B9ull;
    x ^= ((uint64_t)c + 0x2545F4914F6CDD1Dull) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    x *= 0xD6E8FEB86659FD93ull;
    x ^= x >> 32;
    return (size_t)x;
}

static int hm_init(HMap *m, int owned) {
    m->mask = 63;
    m->n = 0;
    m->owned = owned;
    m->s = PyMem_Calloc(64, sizeof(HSlot));
    if (!m->s) { PyErr_NoMemory(); return -1; }
    return 0;
}

static void hm_free(HMap *m) {
    if (!m->s) return;
    if (m->owned)
        for (size_t i = 0; i <= m->mask; i++)
            if (m->s[i].used) Py_XDECREF((PyObject *)m->s[i].v);
    PyMem_Free(m->s);
    m->s = NULL;
}

static HSlot *hm_find(HMap *m, int64_t a, int64_t b, int64_t c) {
    size_t i = hhash(a, b, c) & m->mask;
    for (;;) {
        HSlot *s = &m->s[i];
        if (!s->used) return NULL;
        if (s->a == a && s->b == b && s->c == c) return s;
        i = (i + 1) & m->mask;
    }
}

static int hm_grow(HMap *m) {
    size_t cap = (m->mask + 1) * 2;
    HSlot *old = m->s, *ns = PyMem_Calloc(cap, sizeof(HSlot));
    if (!ns) { PyErr_NoMemory(); return -1; }
    size_t oldcap = m->mask + 1;
    m->s = ns;
    m->mask = cap - 1;
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].used) continue;
        size_t j = hhash(old[i].a, old[i].b, old[i].c) & m->mask;
        while (ns[j].used) j = (j + 1) & m->mask;
        ns[j] = old[i];
    }
    PyMem_Free(old);
    return 0;
}

/* The slot of the key, made (used, v = 0) if it was not there; NULL on memory error. */
static HSlot *hm_slot(HMap *m, int64_t a, int64_t b, int64_t c, int *existed) {
    if ((m->n + 1) * 2 > m->mask + 1 && hm_grow(m) < 0) return NULL;
    size_t i = hhash(a, b, c) & m->mask;
    for (;;) {
        HSlot *s = &m->s[i];
        if (!s->used) {
            s->used = 1;
            s->a = a;
            s->b = b;
            s->c = c;
            s->v = 0;
            m->n++;
            *existed = 0;
            return s;
        }
        if (s->a == a && s->b == b && s->c == c) { *existed = 1; return s; }
        i = (i + 1) & m->mask;
    }
}

/* Remove a slot found by hm_find (its value is not released). */
static void hm_remove(HMap *m, HSlot *slot) {
    size_t i = (size_t)(slot - m->s), j = i;
    for (;;) {
        j = (j + 1) & m->mask;
        if (!m->s[j].used) break;
        size_t k = hhash(m->s[j].a, m->s[j].b, m->s[j].c) & m->mask;
        /* move j back to i unless its home k lies cyclically in (i, j] */
        int stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            m->s[i] = m->s[j];
            i = j;
        }
    }
    m->s[i].used = 0;
    m->n--;
}

/* object-valued maps (owned values) */
static inline PyObject *hm_get(HMap *m, int64_t a, int64_t b, int64_t c) {
    HSlot *s = hm_find(m, a, b, c);
    return s ? (PyObject *)s->v : NULL;
}
static int hm_set(HMap *m, int64_t a, int64_t b, int64_t c, PyObject *v) {
    int existed;
    HSlot *s = hm_slot(m, a, b, c, &existed);
    if (!s) return -1;
    Py_INCREF(v);
    PyObject *old = existed ? (PyObject *)s->v : NULL;
    s->v = (intptr_t)v;
    Py_XDECREF(old);
    return 0;
}
/* pop: the value (a reference the caller owns) or NULL */
static PyObject *hm_pop(HMap *m, int64_t a, int64_t b, int64_t c) {
    HSlot *s = hm_find(m, a, b, c);
    if (!s) return NULL;
    PyObject *v = (PyObject *)s->v;
    hm_remove(m, s);
    return v;
}
static void hm_del(HMap *m, int64_t a, int64_t b, int64_t c) { Py_XDECREF(hm_pop(m, a, b, c)); }

/* integer-valued maps */
static int hm_seti(HMap *m, int64_t a, int64_t b, int64_t c, intptr_t v) {
    int existed;
    HSlot *s = hm_slot(m, a, b, c, &existed);
    if (!s) return -1;
    s->v = v;
    return 0;
}

/* ------------------------------------------------------------------ small helpers */

static PyObject *id_obj(int64_t v) {
    if (v == NONE_ID) Py_RETURN_NONE;
    if (v >= 0 && v < (int64_t)NO_ID) return fr_id((uint32_t)v);
    return PyLong_FromLongLong((long long)v);
}
static PyObject *ts_obj(int64_t v) {
    if (v == NONE_TS) Py_RETURN_NONE;
    return PyLong_FromLongLong((long long)v);
}

/* An id from a Python event: None -> NONE_ID; a non-negative int; anything else: unsupported. */
static int id_from(PyObject *o, int64_t *out) {
    if (o == Py_None) { *out = NONE_ID; return 0; }
    if (!PyLong_CheckExact(o)) { unsupported("an id that is not an int"); return -1; }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow || v < 0) { unsupported("an id outside 0..2**63"); return -1; }
    if (v == -1 && PyErr_Occurred()) return -1;
    *out = v;
    return 0;
}
static int ts_from(PyObject *o, int64_t *out) {
    if (!PyLong_CheckExact(o)) { unsupported("a timestamp that is not an int"); return -1; }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow || v == NONE_TS) { unsupported("a timestamp outside 64 bits"); return -1; }
    if (v == -1 && PyErr_Occurred()) return -1;
    *out = v;
    return 0;
}

/* knowledge.status.is_failure: ``type(status) is int and status & 0xC0000000 == 0xC0000000`` */
static int is_failure(PyObject *status) {
    if (!status || !PyLong_CheckExact(status)) return 0;
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(status, &overflow);
    if (!overflow) return (v & 0xC0000000LL) == 0xC0000000LL;
    PyErr_Clear();
    PyObject *mask = PyLong_FromUnsignedLong(0xC0000000UL);
    if (!mask) return -1;
    PyObject *and = PyNumber_And(status, mask);
    int r = and ? PyObject_RichCompareBool(and, mask, Py_EQ) : -1;
    Py_XDECREF(and);
    Py_DECREF(mask);
    return r;
}
static inline int u32_failure(uint32_t v) { return (v & 0xC0000000u) == 0xC0000000u; }

/* ``fields.get(key)``: a borrowed reference, or NULL for a missing key (error set only on failure) */
static PyObject *fget(PyObject *f, PyObject *key) {
    if (PyDict_CheckExact(f)) return PyDict_GetItemWithError(f, key);
    unsupported("event fields that are not a dict");
    return NULL;
}
/* ``fields[key]`` (KeyError when missing, as Python) */
static PyObject *fitem(PyObject *f, PyObject *key) {
    PyObject *v = fget(f, key);
    if (!v && !PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, key);
    return v;
}

/* GUID text (as guid_text writes it) back to its 16 bytes; 0 if it is not that form */
static int guid_parse(PyObject *text, unsigned char out[16]) {
    if (!PyUnicode_Check(text) || PyUnicode_GET_LENGTH(text) != 36 || PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND)
        return 0;
    const unsigned char *s = PyUnicode_1BYTE_DATA(text);
    static const int order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (o == 8 || o == 13 || o == 18 || o == 23) {
            if (s[o] != '-') return 0;
            o++;
        }
        int hi, lo;
        unsigned char c1 = s[o], c2 = s[o + 1];
        hi = c1 >= '0' && c1 <= '9' ? c1 - '0' : c1 >= 'a' && c1 <= 'f' ? c1 - 'a' + 10 : -1;
        lo = c2 >= '0' && c2 <= '9' ? c2 - '0' : c2 >= 'a' && c2 <= 'f' ? c2 - 'a' + 10 : -1;
        if (hi < 0 || lo < 0) return 0;
        out[order[i]] = (unsigned char)(hi << 4 | lo);
        o += 2;
    }
    return 1;
}

/* ------------------------------------------------------------------ Message (AlpcMessage) */

struct CallObject;

typedef struct {
    PyObject_HEAD
    int64_t message_id;
    int64_t client_pid, client_tid, server_pid, server_tid, reply_tid, client_receive_tid;
    int64_t send_ts, receive_ts, reply_ts, client_receive_ts;
    PyObject *unwait_status; /* NULL: None */
    PyObject *port_name;     /* NULL: None */
    PyObject *evidence;      /* a tuple */
    struct CallObject *call; /* borrowed: the call whose message this is clears it when it goes */
    char waited, dropped;
} MsgObject;

static PyTypeObject MsgType;

static MsgObject *msg_new(int64_t x, int64_t pid, int64_t tid, int64_t ts) {
    MsgObject *m = PyObject_New(MsgObject, &MsgType);
    if (!m) return NULL;
    m->message_id = x;
    m->client_pid = pid;
    m->client_tid = tid;
    m->send_ts = ts;
    m->server_pid = m->server_tid = m->reply_tid = m->client_receive_tid = NONE_ID;
    m->receive_ts = m->reply_ts = m->client_receive_ts = NONE_TS;
    m->unwait_status = NULL;
    m->port_name = NULL;
    Py_INCREF(empty_tuple);
    m->evidence = empty_tuple;
    m->call = NULL;
    m->waited = m->dropped = 0;
    return m;
}

static void msg_dealloc(MsgObject *m) {
    Py_XDECREF(m->unwait_status);
    Py_XDECREF(m->port_name);
    Py_XDECREF(m->evidence);
    PyObject_Free(m);
}

#define MSG_ID_GET(name) \
    static PyObject *msg_get_##name(MsgObject *m, void *c) { return id_obj(m->name); }
#define MSG_TS_GET(name) \
    static PyObject *msg_get_##name(MsgObject *m, void *c) { return ts_obj(m->name); }
MSG_ID_GET(client_pid)
MSG_ID_GET(client_tid)
MSG_ID_GET(server_pid)
MSG_ID_GET(server_tid)
MSG_ID_GET(reply_tid)
MSG_ID_GET(client_receive_tid)
MSG_TS_GET(send_ts)
MSG_TS_GET(receive_ts)
MSG_TS_GET(reply_ts)
MSG_TS_GET(client_receive_ts)
static PyObject *msg_get_message_id(MsgObject *m, void *c) { return PyLong_FromLongLong(m->message_id); }
static PyObject *obj_or_none(PyObject *o) {
    if (!o) Py_RETURN_NONE;
    Py_INCREF(o);
    return o;
}
static PyObject *msg_get_unwait_status(MsgObject *m, void *c) { return obj_or_none(m->unwait_status); }
static PyObject *msg_get_port_name(MsgObject *m, void *c) { return obj_or_none(m->port_name); }
static PyObject *msg_get_evidence(MsgObject *m, void *c) { return obj_or_none(m->evidence); }
static PyObject *msg_get_call(MsgObject *m, void *c) { return obj_or_none((PyObject *)m->call); }
static PyObject *msg_get_waited(MsgObject *m, void *c) { return PyBool_FromLong(m->waited); }
static PyObject *msg_get_dropped(MsgObject *m, void *c) { return PyBool_FromLong(m->dropped); }
static PyObject *msg_get_datagram(MsgObject *m, void *c) { return PyBool_FromLong(!m->waited && m->reply_ts == NONE_TS); }
static PyObject *msg_get_complete(MsgObject *m, void *c) {
    return PyBool_FromLong(m->server_tid != NONE_ID && (m->reply_ts != NONE_TS || !m->waited));
}

static PyGetSetDef msg_getset[] = {
    {"message_id", (getter)msg_get_message_id, NULL, NULL, NULL},
    {"client_pid", (getter)msg_get_client_pid, NULL, NULL, NULL},
    {"client_tid", (getter)msg_get_client_tid, NULL, NULL, NULL},
    {"send_ts", (getter)msg_get_send_ts, NULL, NULL, NULL},
    {"server_pid", (getter)msg_get_server_pid, NULL, NULL, NULL},
    {"server_tid", (getter)msg_get_server_tid, NULL, NULL, NULL},
    {"receive_ts", (getter)msg_get_receive_ts, NULL, NULL, NULL},
    {"reply_ts", (getter)msg_get_reply_ts, NULL, NULL, NULL},
    {"reply_tid", (getter)msg_get_reply_tid, NULL, NULL, NULL},
    {"client_receive_ts", (getter)msg_get_client_receive_ts, NULL, NULL, NULL},
    {"client_receive_tid", (getter)msg_get_client_receive_tid, NULL, NULL, NULL},
    {"unwait_status", (getter)msg_get_unwait_status, NULL, NULL, NULL},
    {"waited", (getter)msg_get_waited, NULL, NULL, NULL},
    {"port_name", (getter)msg_get_port_name, NULL, NULL, NULL},
    {"evidence", (getter)msg_get_evidence, NULL, NULL, NULL},
    {"dropped", (getter)msg_get_dropped, NULL, NULL, NULL},
    {"call", (getter)msg_get_call, NULL, NULL, NULL},
    {"datagram", (getter)msg_get_datagram, NULL, NULL, NULL},
    {"complete", (getter)msg_get_complete, NULL, NULL, NULL},
    {NULL},
};

static PyTypeObject MsgType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "rpctrace.sources.etl._fastrecords.Message",
    .tp_basicsize = sizeof(MsgObject),
    .tp_dealloc = (destructor)msg_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An ALPC message paired by the C engine (the attributes of correlate.alpc.AlpcMessage).",
    .tp_getset = msg_getset,
};

/* ------------------------------------------------------------------ Call */

/* What few calls keep: the activity ids of a call in flight (cleared when its stop event matches
 * them), the procedure's result, a capture's wire facts.  Allocated when set, freed when empty,
 * so a million finished calls do not carry 70 empty bytes each. */
typedef struct {
    PyObject *wire, *result_status, *result_source;
    PyObject *client_activity, *server_activity; /* the text, when it came as text */
    unsigned char client_act[16], server_act[16];
    char has_client_act, has_server_act; /* an activity id is set (bytes, maybe text) */
} CallExtra;

typedef struct CallObject {
    PyObject_HEAD
    int64_t id;
    int64_t client_pid, client_tid, server_pid, server_tid, stop_tid;
    int64_t start, end, server_start, server_end;
    int64_t ops_not_kept, expected_not_kept;
    /* NULL: None */
    PyObject *interface, *opnum, *endpoint, *protocol, *auth_level, *auth_service, *impersonation_level;
    PyObject *status, *server_status;
    CallExtra *x;  /* NULL: none of its fields set */
    MsgObject *message;
    PyObject *evidence; /* a tuple (never NULL) */
    PyObject *parent;     /* NULL: None; a call (of the engine, or a Python Call a remote join made) */
    PyObject *children;   /* NULL: () */
    PyObject *operations; /* NULL: () */
    double confidence;
    char ambiguous, has_client, has_server, from_message, merged;
} CallObject;

static PyTypeObject CallType;

/* Calls are tracked by the cyclic collector only once they can be part of a cycle (a parent,
 * children, or a Python-level assignment of an object attribute): a listing's million calls hold
 * only strings, numbers and tuples of them, and scanning them at every collection would cost a
 * tenth of the run (CPython untracks atomic tuples and dicts the same way). */
static inline void track(CallObject *c) {
    if (!PyObject_GC_IsTracked((PyObject *)c)) PyObject_GC_Track((PyObject *)c);
}

static CallObject *call_alloc(PyTypeObject *type, int64_t id) {
    CallObject *c = (CallObject *)type->tp_alloc(type, 0);
    if (!c) return NULL;
    PyObject_GC_UnTrack((PyObject *)c);
    /* tp_alloc zeroes the object */
    c->id = id;
    c->client_pid = c->client_tid = c->server_pid = c->server_tid = c->stop_tid = NONE_ID;
    c->start = c->end = c->server_start = c->server_end = NONE_TS;
    Py_INCREF(empty_tuple);
    c->evidence = empty_tuple;
    return c;
}

static CallExtra *extra(CallObject *c) {
    if (!c->x) {
        c->x = PyMem_Calloc(1, sizeof(CallExtra));
        if (!c->x) PyErr_NoMemory();
    }
    return c->x;
}
/* free the side struct once nothing is set in it */
static void extra_check(CallObject *c) {
    CallExtra *x = c->x;
    if (x && !x->wire && !x->result_status && !x->result_source && !x->client_activity && !x->server_activity &&
        !x->has_client_act && !x->has_server_act) {
        c->x = NULL;
        PyMem_Free(x);
    }
}

static int call_traverse(CallObject *c, visitproc visit, void *arg) {
    Py_VISIT(c->interface);
    Py_VISIT(c->opnum);
    Py_VISIT(c->endpoint);
    Py_VISIT(c->protocol);
    Py_VISIT(c->auth_level);
    Py_VISIT(c->auth_service);
    Py_VISIT(c->impersonation_level);
    Py_VISIT(c->status);
    Py_VISIT(c->server_status);
    if (c->x) {
        Py_VISIT(c->x->wire);
        Py_VISIT(c->x->result_status);
        Py_VISIT(c->x->result_source);
        Py_VISIT(c->x->client_activity);
        Py_VISIT(c->x->server_activity);
    }
    Py_VISIT((PyObject *)c->message);
    Py_VISIT(c->evidence);
    Py_VISIT(c->parent);
    Py_VISIT(c->children);
    Py_VISIT(c->operations);
    return 0; /* a Python subclass's type is visited by its own traverse */
}

static int call_clear(CallObject *c) {
    Py_CLEAR(c->interface);
    Py_CLEAR(c->opnum);
    Py_CLEAR(c->endpoint);
    Py_CLEAR(c->protocol);
    Py_CLEAR(c->auth_level);
    Py_CLEAR(c->auth_service);
    Py_CLEAR(c->impersonation_level);
    Py_CLEAR(c->status);
    Py_CLEAR(c->server_status);
    if (c->x) {
        CallExtra *x = c->x;
        c->x = NULL;
        Py_CLEAR(x->wire);
        Py_CLEAR(x->result_status);
        Py_CLEAR(x->result_source);
        Py_CLEAR(x->client_activity);
        Py_CLEAR(x->server_activity);
        PyMem_Free(x);
    }
    if (c->message && c->message->call == c) c->message->call = NULL;
    Py_CLEAR(c->message);
    Py_CLEAR(c->evidence);
    Py_CLEAR(c->parent);
    Py_CLEAR(c->children);
    Py_CLEAR(c->operations);
    return 0;
}

static void call_dealloc(CallObject *c) {
    /* a Python subclass's instances come here through subtype_dealloc, which releases the type */
    PyObject_GC_UnTrack(c);
    Py_TRASHCAN_BEGIN(c, call_dealloc)
    call_clear(c);
    Py_TYPE(c)->tp_free((PyObject *)c);
    Py_TRASHCAN_END
}

/* getters and setters */
#define CALL_ID(name)                                                                          \
    static PyObject *call_get_##name(CallObject *c, void *x) { return id_obj(c->name); }      \
    static int call_set_##name(CallObject *c, PyObject *v, void *x) {                         \
        if (!v) { PyErr_SetString(PyExc_AttributeError, "cannot delete " #name); return -1; } \
        int64_t r;                                                                             \
        if (v == Py_None) { c->name = NONE_ID; return 0; }                                     \
        if (!PyLong_Check(v)) { PyErr_SetString(PyExc_TypeError, #name " must be an int or None"); return -1; } \
        r = PyLong_AsLongLong(v);                                                              \
        if (r == -1 && PyErr_Occurred()) return -1;                                            \
        if (r < 0) { PyErr_SetString(PyExc_ValueError, #name " must not be negative"); return -1; } \
        c->name = r;                                                                           \
        return 0;                                                                              \
    }
#define CALL_TS(name)                                                                          \
    static PyObject *call_get_##name(CallObject *c, void *x) { return ts_obj(c->name); }      \
    static int call_set_##name(CallObject *c, PyObject *v, void *x) {                         \
        if (!v) { PyErr_SetString(PyExc_AttributeError, "cannot delete " #name); return -1; } \
        if (v == Py_None) { c->name = NONE_TS; return 0; }                                     \
        if (!PyLong_Check(v)) { PyErr_SetString(PyExc_TypeError, #name " must be an int or None"); return -1; } \
        long long r = PyLong_AsLongLong(v);                                                    \
        if (r == -1 && PyErr_Occurred()) return -1;                                            \
        if (r == NONE_TS) { PyErr_SetString(PyExc_OverflowError, #name " out of range"); return -1; } \
        c->name = r;                                                                           \
        return 0;                                                                              \
    }
#define CALL_INT(name)                                                                         \
    static PyObject *call_get_##name(CallObject *c, void *x) { return PyLong_FromLongLong(c->name); } \
    static int call_set_##name(CallObject *c, PyObject *v, void *x) {                         \
        if (!v) { PyErr_SetString(PyExc_AttributeError, "cannot delete " #name); return -1; } \
        long long r = PyLong_AsLongLong(v);                                                    \
        if (r == -1 && PyErr_Occurred()) return -1;                                            \
        c->name = r;                                                                           \
        return 0;                                                                              \
    }
#define CALL_OBJ(name)                                                                         \
    static PyObject *call_get_##name(CallObject *c, void *x) { return obj_or_none(c->name); } \
    static int call_set_##name(CallObject *c, PyObject *v, void *x) {                         \
        if (!v) { PyErr_SetString(PyExc_AttributeError, "cannot delete " #name); return -1; } \
        if (v == Py_None) v = NULL;                                                            \
        Py_XINCREF(v);                                                                         \
        Py_XSETREF(c->name, v);                                                                \
        track(c);                                                                              \
        return 0;                                                                              \
    }
#define CALL_BOOL(name)                                                                        \
    static PyObject *call_get_##name(CallObject *c, void *x) { return PyBool_FromLong(c->name); } \
    static int call_set_##name(CallObject *c, PyObject *v, void *x) {                         \
        if (!v) { PyErr_SetString(PyExc_AttributeError, "cannot delete " #name); return -1; } \
        int r = PyObject_IsTrue(v);                                                            \
        if (r < 0) return -1;                                                                  \
        c->name = (char)r;                                                                     \
        return 0;                                                                              \
    }
/* children and operations: a list, or () when none was added */
#define CALL_SEQ(name)                                                                         \
    static PyObject *call_get_##name(CallObject *c, void *x) {                                \
        PyObject *v = c->name ? c->name : empty_tuple;                                        \
        Py_INCREF(v);                                                                          \
        return v;                                                                              \
    }                                                                                          \
    static int call_set_##name(CallObject *c, PyObject *v, void *x) {                         \
        if (!v) { PyErr_SetString(PyExc_AttributeError, "cannot delete " #name); return -1; } \
        if (v == empty_tuple) v = NULL;                                                        \
        Py_XINCREF(v);                                                                         \
        Py_XSETREF(c->name, v);                                                                \
        track(c);                                                                              \
        return 0;                                                                              \
    }
CALL_INT(id)
CALL_ID(client_pid)
CALL_ID(client_tid)
CALL_ID(server_pid)
CALL_ID(server_tid)
CALL_ID(stop_tid)
CALL_TS(start)
CALL_TS(end)
CALL_TS(server_start)
CALL_TS(server_end)
CALL_INT(ops_not_kept)
CALL_INT(expected_not_kept)
CALL_OBJ(interface)
CALL_OBJ(opnum)
CALL_OBJ(endpoint)
CALL_OBJ(protocol)
CALL_OBJ(auth_level)
CALL_OBJ(auth_service)
CALL_OBJ(impersonation_level)
CALL_OBJ(status)
CALL_OBJ(server_status)
#define CALL_XOBJ(name)                                                                        \
    static PyObject *call_get_##name(CallObject *c, void *x) { return obj_or_none(c->x ? c->x->name : NULL); } \
    static int call_set_##name(CallObject *c, PyObject *v, void *x) {                         \
        if (!v) { PyErr_SetString(PyExc_AttributeError, "cannot delete " #name); return -1; } \
        if (v == Py_None) v = NULL;                                                            \
        if (!v && !c->x) return 0;                                                             \
        if (!extra(c)) return -1;                                                              \
        Py_XINCREF(v);                                                                         \
        Py_XSETREF(c->x->name, v);                                                             \
        extra_check(c);                                                                        \
        track(c);                                                                              \
        return 0;                                                                              \
    }
CALL_XOBJ(wire)
CALL_XOBJ(result_status)
CALL_XOBJ(result_source)
CALL_BOOL(ambiguous)
CALL_BOOL(has_client)
CALL_BOOL(has_server)
CALL_BOOL(from_message)
CALL_BOOL(merged)
CALL_SEQ(children)
CALL_SEQ(operations)

static PyObject *call_get_evidence(CallObject *c, void *x) { return obj_or_none(c->evidence); }
static int call_set_evidence(CallObject *c, PyObject *v, void *x) {
    if (!v) { PyErr_SetString(PyExc_AttributeError, "cannot delete evidence"); return -1; }
    Py_INCREF(v);
    Py_XSETREF(c->evidence, v);
    track(c);
    return 0;
}
static PyObject *call_get_confidence(CallObject *c, void *x) { return PyFloat_FromDouble(c->confidence); }
static int call_set_confidence(CallObject *c, PyObject *v, void *x) {
    if (!v) { PyErr_SetString(PyExc_AttributeError, "cannot delete confidence"); return -1; }
    double d = PyFloat_AsDouble(v);
    if (d == -1.0 && PyErr_Occurred()) return -1;
    c->confidence = d;
    return 0;
}
static PyObject *call_get_message(CallObject *c, void *x) { return obj_or_none((PyObject *)c->message); }
static int call_set_message(CallObject *c, PyObject *v, void *x) {
    if (!v) { PyErr_SetString(PyExc_AttributeError, "cannot delete message"); return -1; }
    if (v != Py_None && !PyObject_TypeCheck(v, &MsgType)) {
        PyErr_SetString(PyExc_TypeError, "message must be a Message of the C engine or None");
        return -1;
    }
    if (v == Py_None) v = NULL;
    Py_XINCREF(v);
    Py_XSETREF(c->message, (MsgObject *)v);
    track(c);
    return 0;
}
static PyObject *call_get_parent(CallObject *c, void *x) { return obj_or_none(c->parent); }
static int call_set_parent(CallObject *c, PyObject *v, void *x) {
    if (!v) { PyErr_SetString(PyExc_AttributeError, "cannot delete parent"); return -1; }
    if (v == Py_None) v = NULL;
    Py_XINCREF(v);
    Py_XSETREF(c->parent, v);
    track(c);
    return 0;
}
static PyObject *activity(PyObject *text, int has, const unsigned char *bin) {
    if (!has) Py_RETURN_NONE;
    if (text) { Py_INCREF(text); return text; }
    return fr_guid_text(bin);
}
static PyObject *call_get_client_activity(CallObject *c, void *x) {
    if (!c->x) Py_RETURN_NONE;
    return activity(c->x->client_activity, c->x->has_client_act, c->x->client_act);
}
static PyObject *call_get_server_activity(CallObject *c, void *x) {
    if (!c->x) Py_RETURN_NONE;
    return activity(c->x->server_activity, c->x->has_server_act, c->x->server_act);
}
static int set_activity(PyObject *v, PyObject **text, char *has, unsigned char *bin) {
    if (!v) { PyErr_SetString(PyExc_AttributeError, "cannot delete an activity id"); return -1; }
    if (v == Py_None) {
        Py_CLEAR(*text);
        *has = 0;
        return 0;
    }
    if (!guid_parse(v, bin)) {
        PyErr_SetString(PyExc_ValueError, "an activity id is a GUID's text or None");
        return -1;
    }
    Py_INCREF(v);
    Py_XSETREF(*text, v);
    *has = 1;
    return 0; /* a str: no cycle */
}
static int call_set_client_activity(CallObject *c, PyObject *v, void *x) {
    if (v == Py_None && !c->x) return 0;
    if (!extra(c)) return -1;
    int r = set_activity(v, &c->x->client_activity, &c->x->has_client_act, c->x->client_act);
    extra_check(c);
    return r;
}
static int call_set_server_activity(CallObject *c, PyObject *v, void *x) {
    if (v == Py_None && !c->x) return 0;
    if (!extra(c)) return -1;
    int r = set_activity(v, &c->x->server_activity, &c->x->has_server_act, c->x->server_act);
    extra_check(c);
    return r;
}

/* the properties of correlate.calls.Call that a listing reads for every call */
static PyObject *s_sync, *s_async, *s_datagram, *s_lrpc, *s_alpc;

/* Call.alpc_only: an ALPC message exchange no RPC event belongs to */
static inline int alpc_only(CallObject *c) {
    return c->message && !c->has_client && !c->has_server && !(c->x && c->x->wire);
}
static PyObject *call_get_alpc_only(CallObject *c, void *x) { return PyBool_FromLong(alpc_only(c)); }
static PyObject *call_get_mode(CallObject *c, void *x) {
    MsgObject *m = c->message;
    PyObject *r;
    if (!m) r = c->stop_tid != NONE_ID ? s_async : Py_None;
    else if (m->waited) r = s_sync;
    else if (m->reply_ts == NONE_TS && m->client_receive_ts == NONE_TS) r = c->stop_tid != NONE_ID ? s_async : s_datagram;
    else r = s_async;
    Py_INCREF(r);
    return r;
}
static PyObject *call_get_completion_tid(CallObject *c, void *x) {
    MsgObject *m = c->message;
    if (m && m->client_receive_tid != NONE_ID && !m->waited) return id_obj(m->client_receive_tid);
    return id_obj(c->stop_tid);
}
static PyObject *call_get_alpc_message_id(CallObject *c, void *x) {
    if (!c->message) Py_RETURN_NONE;
    return PyLong_FromLongLong(c->message->message_id);
}
/* Call.failures and Call.blamed: [] for a call without operations (most calls of a report), else
 * the Python properties themselves (set_call_properties) */
static PyObject *failures_fget, *blamed_fget;
static PyObject *ops_property(CallObject *c, PyObject *fget) {
    if (!c->operations || (PyList_Check(c->operations) && PyList_GET_SIZE(c->operations) == 0) || !fget)
        return fget || !c->operations ? PyList_New(0) : (PyErr_SetString(PyExc_RuntimeError, "no property"), NULL);
    return PyObject_CallFunctionObjArgs(fget, (PyObject *)c, NULL);
}
static PyObject *call_get_failures(CallObject *c, void *x) { return ops_property(c, failures_fget); }
static PyObject *call_get_blamed(CallObject *c, void *x) { return ops_property(c, blamed_fget); }

static PyObject *call_get_protocol_name(CallObject *c, void *x) {
    if (alpc_only(c)) { Py_INCREF(s_alpc); return s_alpc; }
    if (!c->protocol) {
        if (c->message) { Py_INCREF(s_lrpc); return s_lrpc; }
        Py_RETURN_NONE;
    }
    PyObject *text = PyObject_Str(c->protocol); /* PROTOCOLS.get(protocol, str(protocol)) */
    if (!text || !protocols_dict) return text;
    PyObject *hit = PyDict_GetItemWithError(protocols_dict, c->protocol);
    if (hit) {
        Py_INCREF(hit);
        Py_DECREF(text);
        return hit;
    }
    if (PyErr_Occurred()) { Py_DECREF(text); return NULL; }
    return text;
}

#define GS(name) {#name, (getter)call_get_##name, (setter)call_set_##name, NULL, NULL}
#define GR(name) {#name, (getter)call_get_##name, NULL, NULL, NULL}
static PyGetSetDef call_getset[] = {
    GS(id), GS(client_pid), GS(client_tid), GS(server_pid), GS(server_tid), GS(interface), GS(opnum),
    GS(endpoint), GS(protocol), GS(auth_level), GS(auth_service), GS(impersonation_level), GS(start), GS(end),
    GS(server_start), GS(server_end), GS(status), GS(server_status), GS(client_activity), GS(server_activity),
    GS(message), GS(confidence), GS(evidence), GS(ambiguous), GS(parent), GS(children), GS(operations),
    GS(has_client), GS(has_server), GS(from_message), GS(merged), GS(stop_tid), GS(ops_not_kept),
    GS(expected_not_kept), GS(wire), GS(result_status), GS(result_source), GR(mode), GR(completion_tid),
    GR(alpc_message_id), GR(protocol_name), GR(alpc_only), GR(failures), GR(blamed),
    {NULL},
};

static PyTypeObject CallType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "rpctrace.sources.etl._fastrecords.CallBase",
    .tp_basicsize = sizeof(CallObject),
    .tp_dealloc = (destructor)call_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A call rebuilt by the C engine (the attributes of correlate.calls.Call).",
    .tp_traverse = (traverseproc)call_traverse,
    .tp_clear = (inquiry)call_clear,
    .tp_getset = call_getset,
};

/* for _fastrender.c: whether o is a call of the engine, and its fields as a record reads them */
int fc_is_call(PyObject *o) { return PyObject_TypeCheck(o, &CallType); }

PyObject *fc_call_fields(PyObject *o, int64_t *v, PyObject **objs) {
    CallObject *c = (CallObject *)o;
    v[0] = c->id;
    v[1] = c->client_pid;
    v[2] = c->client_tid;
    v[3] = c->server_pid;
    v[4] = c->server_tid;
    v[5] = c->start;
    v[6] = c->end;
    v[7] = c->server_start;
    v[8] = c->server_end;
    PyObject *src[9] = {c->interface, c->opnum, c->endpoint, c->status, c->server_status, c->auth_level,
                        c->auth_service, NULL, c->evidence};
    for (int i = 0; i < 9; i++) {
        if (i == 7) continue;
        objs[i] = src[i] ? src[i] : Py_None;
        Py_INCREF(objs[i]);
    }
    objs[7] = PyFloat_FromDouble(c->confidence);
    objs[9] = PyBool_FromLong(c->ambiguous);
    if (!c->parent) {
        objs[10] = Py_None; /* parent.id if parent else None */
        Py_INCREF(Py_None);
    } else if (PyObject_TypeCheck(c->parent, &CallType)) {
        objs[10] = PyLong_FromLongLong(((CallObject *)c->parent)->id);
    } else {
        int t = PyObject_IsTrue(c->parent);
        objs[10] = t < 0 ? NULL : t ? PyObject_GetAttrString(c->parent, "id") : (Py_INCREF(Py_None), Py_None);
    }
    objs[11] = c->children ? c->children : empty_tuple;
    Py_INCREF(objs[11]);
    objs[12] = c->operations ? c->operations : Py_None;
    Py_INCREF(objs[12]);
    objs[13] = call_get_protocol_name(c, NULL);
    objs[14] = call_get_mode(c, NULL);
    objs[15] = call_get_completion_tid(c, NULL);
    objs[16] = call_get_alpc_message_id(c, NULL);
    objs[17] = obj_or_none(c->x ? c->x->result_status : NULL);
    objs[18] = obj_or_none(c->x ? c->x->result_source : NULL);
    objs[19] = obj_or_none(c->x ? c->x->wire : NULL);
    for (int i = 0; i < 20; i++)
        if (!objs[i]) {
            for (int j = 0; j < 20; j++) Py_XDECREF(objs[j]);
            return NULL;
        }
    return o;
}

/* ------------------------------------------------------------------ records */

enum {
    K_OTHER = 0,
    K_SEND, K_RECEIVE, K_WAIT_REPLY, K_UNWAIT, K_WAIT_NEW, /* the ALPC kinds the stream passes */
    K_ALPC_OTHER,
    K_CSTART, K_SSTART, K_CSTOP, K_SSTOP, /* the RPC kinds the stream passes */
    K_RPC_BIND, K_RPC_RAISE, K_RPC_EEINFO, K_RPC_OTHER,
    K_OP, K_FILE_CREATE, K_REG, /* operations: any registry./file. event; K_REG a compact one */
    K_THREAD_START, K_THREAD_RUNDOWN, K_STACK, K_STACK_KEY,
};
#define K_PASSES(k) (((k) >= K_SEND && (k) <= K_WAIT_NEW) || ((k) >= K_CSTART && (k) <= K_SSTOP))
#define K_ALPC(k) ((k) >= K_SEND && (k) <= K_ALPC_OTHER)
#define K_RPC(k) ((k) >= K_CSTART && (k) <= K_RPC_OTHER)
#define K_OPERATION(k) ((k) >= K_OP && (k) <= K_REG)

#define F_ACT 1        /* an activity id (act) */
#define F_SERVER 2     /* wait_new: is_server_port */
#define F_VALUE 4      /* registry: a value operation (value_name) */

typedef struct {
    uint64_t raw;
    int64_t ts, pid, tid;
    PyObject *ev;      /* a Python event (K_OTHER...), or the event made from a compact record */
    PyObject *o1, *o2; /* owned: port name | key name, kernel entry | interface, endpoint */
    uint64_t q;        /* registry: kcb */
    int64_t i;         /* registry: initial time */
    uint32_t v1, v2, v3, v4, v5; /* message id / status | status, index | procnum, protocol, auth level,
                                    auth service, impersonation level | status */
    int32_t cpu;
    unsigned char act[16];
    unsigned char kind, opcode, version, flags;
    unsigned char stream; /* a Python event TraceStream._other looks at */
} Rec;

static void rec_release(Rec *r) {
    Py_CLEAR(r->ev);
    Py_CLEAR(r->o1);
    Py_CLEAR(r->o2);
}

typedef struct {
    Rec *r;
    size_t n, cap;
} RecVec;

static Rec *rv_push(RecVec *v) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4096;
        Rec *r = PyMem_Realloc(v->r, cap * sizeof(Rec));
        if (!r) { PyErr_NoMemory(); return NULL; }
        v->r = r;
        v->cap = cap;
    }
    Rec *r = &v->r[v->n++];
    memset(r, 0, sizeof(Rec));
    r->pid = r->tid = NONE_ID;
    return r;
}
static void rv_clear(RecVec *v) {
    for (size_t i = 0; i < v->n; i++) rec_release(&v->r[i]);
    v->n = 0;
}
static void rv_free(RecVec *v) {
    rv_clear(v);
    PyMem_Free(v->r);
    v->r = NULL;
    v->cap = 0;
}

/* ------------------------------------------------------------------ the engine */

struct Engine {
    PyObject_HEAD
    /* configuration */
    PyTypeObject *call_type;
    PyTypeObject *event_type;
    int failed_only, report, stacks;
    int64_t trim_after;
    int64_t send_window, pending_window, max_outside;
    PyObject *other_cb, *want_cb, *event_class;
    PyObject *tap; /* None, or what takes every batch's Python events (pipeline's packet tap) */
    int rpc_seen;
    /* events by kind, in order of first appearance (trace.kinds): kind objects and counts, found
     * by the kind object's address */
    PyObject **kind_objs;
    int64_t *kind_counts;
    size_t nkinds, capkinds;
    HMap kind_index;
    PyObject *unpaired, *ports, *endpoints, *outside, *calls; /* shared with the glue */
    int64_t outside_dropped;
    PyObject **creates; /* ring of file creates outside calls waiting for their status */
    size_t creates_cap, creates_head, creates_n;
    /* decoding and merging */
    RecVec in, pend, tmp;
    size_t pstart; /* pend.r[pstart:] are pending */
    PyObject *kinds;     /* kind text -> K_* */
    PyObject **entries;  /* kernel entries by (group << 8) | opcode */
    unsigned char *plans; /* what eng_add_kernel does with each entry's records (P_*), 0: not yet known */
    unsigned char *plan_kinds; /* the K_* of a P_SIMPLE entry */
    struct TextEnt *texts; /* decoded strings by their bytes */
    /* the stream */
    int64_t records, first_ts, last_ts;
    int have_ts;
    HMap live;   /* tid -> pid (NONE_ID: None) */
    /* ALPC pairing */
    HMap pending, awaiting, replied; /* message id -> message */
    HMap p_serving, waiting;         /* tid -> message */
    HMap port_of;                    /* tid -> port name */
    HMap last_op;                    /* tid -> K_* of its last ALPC event */
    HMap in_client_call;             /* tids between RPC events 5 and 7 */
    HMap port_pids;                  /* pids that serve a port (the keys of ports) */
    /* RPC joins */
    HMap open_client, last_client, serving; /* (pid, tid) -> call */
    HMap taken;                             /* (pid, tid) -> message */
    HMap client_by_act, server_by_act;      /* (pid, activity) -> call */
    /* caches */
    HMap evcache;     /* (current tuple, phrase) -> (current, current + (phrase,)) */
    PyObject *port_endpoints; /* port name -> endpoint name */
    PyObject *shared; /* evidence tuple -> the one shared tuple (calls._shared) */
};

static PyTypeObject EngineType;

#define ACT_KEY(act) ((int64_t)rd64(act)), ((int64_t)rd64((act) + 8))

/* calls._new_call / alpc.with_evidence / lost */

static CallObject *new_call(Engine *e) {
    CallObject *c = call_alloc(e->call_type, (int64_t)PyList_GET_SIZE(e->calls) + 1);
    if (!c) return NULL;
    if (PyList_Append(e->calls, (PyObject *)c) < 0) { Py_DECREF(c); return NULL; }
    Py_DECREF(c); /* the list holds it */
    return c;
}

/* ``current + (text,)``, shared (alpc.with_evidence); a new reference */
static PyObject *with_evidence(Engine *e, PyObject *current, PyObject *text) {
    HSlot *s = hm_find(&e->evcache, (int64_t)(intptr_t)current, (int64_t)(intptr_t)text, 0);
    if (s) {
        PyObject *pair = (PyObject *)s->v;
        if (PyTuple_GET_ITEM(pair, 0) == current) {
            PyObject *got = PyTuple_GET_ITEM(pair, 1);
            Py_INCREF(got);
            return got;
        }
    }
    Py_ssize_t n = PyTuple_GET_SIZE(current);
    PyObject *got = PyTuple_New(n + 1);
    if (!got) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(current, i);
        Py_INCREF(item);
        PyTuple_SET_ITEM(got, i, item);
    }
    Py_INCREF(text);
    PyTuple_SET_ITEM(got, n, text);
    if (e->evcache.n >= 65536) {
        hm_free(&e->evcache);
        if (hm_init(&e->evcache, 1) < 0) { Py_DECREF(got); return NULL; }
    }
    PyObject *pair = PyTuple_Pack(2, current, got);
    if (!pair || hm_set(&e->evcache, (int64_t)(intptr_t)current, (int64_t)(intptr_t)text, 0, pair) < 0) {
        Py_XDECREF(pair);
        Py_DECREF(got);
        return NULL;
    }
    Py_DECREF(pair);
    return got;
}
static int add_evidence(Engine *e, PyObject **slot, PyObject *text) {
    PyObject *got = with_evidence(e, *slot, text);
    if (!got) return -1;
    Py_SETREF(*slot, got);
    return 0;
}

static int lost(Engine *e, PyObject *what) {
    PyObject *n = PyDict_GetItemWithError(e->unpaired, what);
    if (!n && PyErr_Occurred()) return -1;
    long v = n ? PyLong_AsLong(n) : 0;
    if (v == -1 && PyErr_Occurred()) return -1;
    PyObject *m = PyLong_FromLong(v + 1);
    if (!m) return -1;
    int r = PyDict_SetItem(e->unpaired, what, m);
    Py_DECREF(m);
    return r;
}

/* ------------------------------------------------------------------ events of a batch
 *
 * A "view" of one event for the correlation: a compact record's values, or a Python event's. */

typedef struct {
    Rec *r;
    int kind;
    PyObject *f; /* a Python event's fields */
} View;

/* Values that repeat among kept operations (statuses, KCB addresses) as shared int objects: a
 * direct-mapped cache, bounded. */
#define INT_CACHE 4096
static PyObject *int_cache[INT_CACHE];
static uint64_t int_keys[INT_CACHE];

static PyObject *shared_int(uint64_t v) {
    if (v < 256) return PyLong_FromUnsignedLongLong(v);
    size_t at = (size_t)((v * 0x9E3779B97F4A7C15ull) >> 52) & (INT_CACHE - 1);
    if (int_cache[at] && int_keys[at] == v) {
        Py_INCREF(int_cache[at]);
        return int_cache[at];
    }
    PyObject *o = PyLong_FromUnsignedLongLong(v);
    if (!o) return NULL;
    Py_INCREF(o);
    Py_XSETREF(int_cache[at], o);
    int_keys[at] = v;
    return o;
}

/* the Event of a compact registry record (made once; a borrowed reference) */
static PyObject *reg_event(Engine *e, Rec *r) {
    if (r->ev) return r->ev;
    PyObject *entry = r->o2;
    PyObject *f = PyDict_New(), *v;
    if (!f) return NULL;
#define PUT(k, expr) do { v = (expr); if (!v || PyDict_SetItem(f, k, v) < 0) { Py_XDECREF(v); Py_DECREF(f); return NULL; } Py_DECREF(v); } while (0)
    PUT(k_initial_time, PyLong_FromLongLong((long long)r->i));
    PUT(k_status, shared_int(r->v1));
    PUT(k_index, shared_int(r->v2));
    PUT(k_kcb, shared_int(r->q));
    if (PyDict_SetItem(f, k_key_name, r->o1) < 0) { Py_DECREF(f); return NULL; }
    if ((r->flags & F_VALUE) && PyDict_SetItem(f, k_value_name, r->o1) < 0) { Py_DECREF(f); return NULL; }
#undef PUT
    PyObject *ev = e->event_type->tp_alloc(e->event_type, 11);
    if (!ev) { Py_DECREF(f); return NULL; }
    PyObject *items[11] = {
        PyLong_FromLongLong((long long)r->ts), id_obj(r->pid), id_obj(r->tid), PyLong_FromLong(r->cpu),
        PyTuple_GET_ITEM(entry, 0), PyLong_FromLong(0), PyLong_FromUnsignedLong(r->opcode),
        PyLong_FromUnsignedLong(r->version), PyTuple_GET_ITEM(entry, 4), f, Py_None,
    };
    Py_INCREF(items[4]);
    Py_INCREF(items[8]);
    Py_INCREF(Py_None);
    int bad = 0;
    for (int i = 0; i < 11; i++) {
        if (!items[i]) bad = 1;
        PyTuple_SET_ITEM(ev, i, items[i]);
    }
    if (bad) { Py_DECREF(ev); return NULL; }
    r->ev = ev;
    return ev;
}

/* a view's status for is_failure (compact: the u32; Python: fields.get("status")) */
static int view_failed(View *w) {
    if (w->kind == K_REG) return u32_failure(w->r->v1);
    PyObject *st = fget(w->f, k_status);
    if (!st && PyErr_Occurred()) return -1;
    return is_failure(st);
}

/* the op's event, for keeping (borrowed) */
static PyObject *view_event(Engine *e, View *w) {
    return w->kind == K_REG ? reg_event(e, w->r) : w->r->ev;
}

/* ------------------------------------------------------------------ ALPC pairing (alpc.py) */

static int end_service(Engine *e, int64_t tid) {
    MsgObject *msg = (MsgObject *)hm_pop(&e->p_serving, tid, 0, 0);
    if (!msg) return 0;
    int r = 0;
    if (msg->reply_ts == NONE_TS && (MsgObject *)hm_get(&e->awaiting, msg->message_id, 0, 0) == msg) {
        if (!msg->waited) {
            hm_del(&e->awaiting, msg->message_id, 0, 0); /* a datagram: no reply will come */
            r = add_evidence(e, &msg->evidence, ev_datagram);
        }
    }
    Py_DECREF(msg);
    return r;
}

/* _send: the message (a new reference) or NULL with an error */
static MsgObject *p_send(Engine *e, int64_t x, int64_t pid, int64_t tid, int64_t ts) {
    MsgObject *msg = (MsgObject *)hm_get(&e->p_serving, tid, 0, 0);
    if (msg && msg->message_id == x) {
        /* the server thread answers the message it took */
        msg->reply_ts = ts;
        msg->reply_tid = tid;
        if (add_evidence(e, &msg->evidence, ev_alpc_reply) < 0) return NULL;
        Py_INCREF(msg);
        hm_del(&e->p_serving, tid, 0, 0);
        if ((MsgObject *)hm_get(&e->awaiting, x, 0, 0) == msg) hm_del(&e->awaiting, x, 0, 0);
        if (hm_set(&e->replied, x, 0, 0, (PyObject *)msg) < 0) { Py_DECREF(msg); return NULL; }
        return msg;
    }
    msg = (MsgObject *)hm_get(&e->awaiting, x, 0, 0);
    if (msg && msg->server_pid == pid && pid != NONE_ID) {
        /* answered by another thread of the server process (a completion thread) */
        msg->reply_ts = ts;
        msg->reply_tid = tid;
        if (add_evidence(e, &msg->evidence, ev_alpc_reply_other) < 0) return NULL;
        Py_INCREF(msg);
        hm_del(&e->awaiting, x, 0, 0);
        if ((MsgObject *)hm_get(&e->p_serving, msg->server_tid, 0, 0) == msg) hm_del(&e->p_serving, msg->server_tid, 0, 0);
        if (hm_set(&e->replied, x, 0, 0, (PyObject *)msg) < 0) { Py_DECREF(msg); return NULL; }
        return msg;
    }
    if (hm_get(&e->pending, x, 0, 0) && lost(e, lost_never_received) < 0) return NULL;
    msg = msg_new(x, pid, tid, ts);
    if (!msg) return NULL;
    if (add_evidence(e, &msg->evidence, ev_alpc_send) < 0 || hm_set(&e->pending, x, 0, 0, (PyObject *)msg) < 0 ||
        hm_set(&e->waiting, tid, 0, 0, (PyObject *)msg) < 0) {
        Py_DECREF(msg);
        return NULL;
    }
    return msg;
}

/* _receive: *out the message (a new reference) or NULL; -1 on error */
static int p_receive(Engine *e, int64_t x, int64_t pid, int64_t tid, int64_t ts, int previous, MsgObject **out) {
    *out = NULL;
    MsgObject *msg = (MsgObject *)hm_get(&e->waiting, tid, 0, 0);
    if (msg && msg->message_id == x && msg->client_tid == tid &&
        (msg->reply_ts != NONE_TS || msg->server_tid != NONE_ID || msg->waited)) {
        /* the client takes the reply to its request */
        Py_INCREF(msg);
        if (msg->reply_ts == NONE_TS) {
            MsgObject *bogus = (MsgObject *)hm_get(&e->pending, x, 0, 0);
            if (bogus && bogus != msg && bogus->client_pid != pid) {
                /* the server's Receive(X) was lost, so its reply looked like a request: the reply
                 * still names the server thread */
                Py_INCREF(bogus);
                hm_del(&e->pending, x, 0, 0);
                bogus->dropped = 1;
                msg->server_pid = bogus->client_pid;
                msg->server_tid = bogus->client_tid;
                msg->reply_ts = bogus->send_ts;
                msg->reply_tid = bogus->client_tid;
                int bad = add_evidence(e, &msg->evidence, ev_reply_receive_lost) < 0;
                if (!bad && (MsgObject *)hm_get(&e->waiting, bogus->client_tid, 0, 0) == bogus)
                    hm_del(&e->waiting, bogus->client_tid, 0, 0);
                Py_DECREF(bogus);
                if (bad) { Py_DECREF(msg); return -1; }
            } else if (lost(e, lost_reply_without_send) < 0) {
                Py_DECREF(msg);
                return -1;
            }
            if ((MsgObject *)hm_get(&e->pending, x, 0, 0) == msg) hm_del(&e->pending, x, 0, 0);
        }
        msg->client_receive_ts = ts;
        msg->client_receive_tid = tid;
        if (add_evidence(e, &msg->evidence, ev_client_receive) < 0) { Py_DECREF(msg); return -1; }
        hm_del(&e->waiting, tid, 0, 0);
        hm_del(&e->replied, x, 0, 0);
        *out = msg;
        return 0;
    }
    if (previous == K_WAIT_REPLY || previous == K_UNWAIT ||
        (hm_find(&e->in_client_call, tid, 0, 0) && previous != K_WAIT_NEW)) {
        /* A thread waiting for a reply takes one, but its own request was not seen (lost): the
         * pending "request" X from another process is really the server's reply, which still
         * names the server thread.  Never treat this thread as a server taking a request. */
        MsgObject *bogus = (MsgObject *)hm_get(&e->pending, x, 0, 0);
        if (bogus && bogus->client_pid != pid && !hm_get(&e->replied, x, 0, 0)) {
            msg = (MsgObject *)hm_pop(&e->pending, x, 0, 0); /* owned now */
            if ((MsgObject *)hm_get(&e->waiting, msg->client_tid, 0, 0) == msg) hm_del(&e->waiting, msg->client_tid, 0, 0);
            msg->server_pid = msg->client_pid;
            msg->server_tid = msg->client_tid;
            msg->reply_ts = msg->send_ts;
            msg->reply_tid = msg->client_tid;
            msg->client_pid = pid;
            msg->client_tid = tid;
            msg->send_ts = NONE_TS;
            msg->waited = 1;
            PyObject *first = PyTuple_Pack(1, ev_reply_send_lost);
            PyObject *got = first ? with_evidence(e, first, ev_client_receive) : NULL;
            Py_XDECREF(first);
            if (!got) { Py_DECREF(msg); return -1; }
            Py_SETREF(msg->evidence, got);
            msg->client_receive_ts = ts;
            msg->client_receive_tid = tid;
            *out = msg;
            return 0;
        }
        if (!hm_get(&e->replied, x, 0, 0)) return lost(e, lost_reply_without_send);
    }
    msg = (MsgObject *)hm_get(&e->replied, x, 0, 0);
    if (msg && msg->client_pid == pid) {
        /* a completion thread of the client process takes the reply (asynchronous call) */
        Py_INCREF(msg);
        msg->client_receive_ts = ts;
        msg->client_receive_tid = tid;
        if (add_evidence(e, &msg->evidence, ev_client_receive_other) < 0) { Py_DECREF(msg); return -1; }
        hm_del(&e->replied, x, 0, 0);
        if ((MsgObject *)hm_get(&e->waiting, msg->client_tid, 0, 0) == msg) hm_del(&e->waiting, msg->client_tid, 0, 0);
        *out = msg;
        return 0;
    }
    msg = (MsgObject *)hm_get(&e->pending, x, 0, 0);
    /* Plausibility: once the trace has shown server ports, only a thread of a process serving a
     * port, or one that was just waiting for new messages, takes requests. */
    int server_like = previous == K_WAIT_NEW || e->port_pids.n == 0 || hm_find(&e->port_pids, pid, 0, 0);
    if (msg && server_like && msg->send_ts != NONE_TS &&
        (__int128)ts - (__int128)msg->send_ts <= (__int128)e->pending_window && msg->client_tid != tid) {
        if (end_service(e, tid) < 0) return -1;
        Py_INCREF(msg);
        hm_del(&e->pending, x, 0, 0);
        msg->server_pid = pid;
        msg->server_tid = tid;
        msg->receive_ts = ts;
        PyObject *port = hm_get(&e->port_of, tid, 0, 0);
        Py_XINCREF(port);
        Py_XSETREF(msg->port_name, port);
        if (add_evidence(e, &msg->evidence, ev_alpc_receive) < 0 || hm_set(&e->p_serving, tid, 0, 0, (PyObject *)msg) < 0 ||
            hm_set(&e->awaiting, x, 0, 0, (PyObject *)msg) < 0) {
            Py_DECREF(msg);
            return -1;
        }
        *out = msg;
        return 0;
    }
    return lost(e, lost_receive_without_send);
}

/* ------------------------------------------------------------------ RPC joins (calls.py) */

static PyObject *endpoint_from_port(Engine *e, PyObject *port) {
    /* port.rsplit("\\", 1)[-1], None for no port (a new reference) */
    if (!port || PyUnicode_GET_LENGTH(port) == 0) Py_RETURN_NONE;
    PyObject *hit = PyDict_GetItemWithError(e->port_endpoints, port);
    if (hit) { Py_INCREF(hit); return hit; }
    if (PyErr_Occurred()) return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(port);
    Py_ssize_t at = PyUnicode_FindChar(port, '\\', 0, n, -1);
    if (at == -2) return NULL;
    PyObject *name = at < 0 ? (Py_INCREF(port), port) : PyUnicode_Substring(port, at + 1, n);
    if (!name) return NULL;
    if (PyDict_GET_SIZE(e->port_endpoints) >= 4096) PyDict_Clear(e->port_endpoints);
    if (PyDict_SetItem(e->port_endpoints, port, name) < 0) { Py_DECREF(name); return NULL; }
    return name;
}

static CallObject *call_for_message(Engine *e, MsgObject *msg) {
    CallObject *c = msg->call;
    if (c) return c;
    c = new_call(e);
    if (!c) return NULL;
    Py_INCREF(msg);
    Py_XSETREF(c->message, msg);
    msg->call = c;
    c->from_message = 1;
    c->client_pid = msg->client_pid;
    c->client_tid = msg->client_tid;
    c->start = msg->send_ts != NONE_TS ? msg->send_ts : msg->client_receive_ts;
    Py_XSETREF(c->protocol, PyLong_FromLong(3));
    PyObject *ep = endpoint_from_port(e, msg->port_name);
    if (!ep) return NULL;
    if (ep == Py_None) {
        Py_DECREF(ep);
        ep = NULL;
    }
    Py_XSETREF(c->endpoint, ep);
    return c;
}

static int settle(Engine *e, CallObject *c);

static int keep_outside(Engine *e, PyObject *ev) {
    PyObject *f = PyTuple_GET_ITEM(ev, 9);
    PyObject *st = fget(f, k_status);
    if (!st && PyErr_Occurred()) return -1;
    int failed = is_failure(st);
    if (failed < 0) return -1;
    if (failed) {
        if (PyList_GET_SIZE(e->outside) < e->max_outside) return PyList_Append(e->outside, ev);
        e->outside_dropped++;
    }
    return 0;
}

/* _outside: a registry or file operation no call is being served for */
static int outside_op(Engine *e, View *w) {
    if (w->kind == K_FILE_CREATE) {
        PyObject *st = fget(w->f, k_status);
        if (!st && PyErr_Occurred()) return -1;
        if (!st || st == Py_None) {
            PyObject *ev = w->r->ev;
            if (e->creates_n == e->creates_cap) {
                PyObject *oldest = e->creates[e->creates_head];
                if (keep_outside(e, oldest) < 0) return -1;
                Py_DECREF(oldest);
                Py_INCREF(ev);
                e->creates[e->creates_head] = ev;
                e->creates_head = (e->creates_head + 1) % e->creates_cap;
            } else {
                Py_INCREF(ev);
                e->creates[(e->creates_head + e->creates_n) % e->creates_cap] = ev;
                e->creates_n++;
            }
            return 0;
        }
    }
    int failed = view_failed(w);
    if (failed < 0) return -1;
    if (failed) {
        if (PyList_GET_SIZE(e->outside) < e->max_outside) {
            PyObject *ev = view_event(e, w);
            return ev ? PyList_Append(e->outside, ev) : -1;
        }
        e->outside_dropped++;
    }
    return 0;
}

static int operation(Engine *e, View *w) {
    CallObject *c = w->r->tid != NONE_ID ? (CallObject *)hm_get(&e->serving, w->r->pid, w->r->tid, 0) : NULL;
    if (!c) return outside_op(e, w);
    if (e->failed_only && w->kind != K_FILE_CREATE) {
        int failed = view_failed(w);
        if (failed <= 0) return failed;
    }
    PyObject *ev = view_event(e, w);
    if (!ev) return -1;
    if (c->operations) return PyList_Append(c->operations, ev);
    c->operations = PyList_New(1);
    if (!c->operations) return -1;
    Py_INCREF(ev);
    PyList_SET_ITEM(c->operations, 0, ev);
    return 0;
}

/* the RPC fields of a start event, as _fill_rpc reads them (new references; NULL = None) */
typedef struct {
    PyObject *interface, *procnum, *endpoint, *protocol, *auth_level, *auth_service, *impersonation_level;
    int has_protocol;
} RpcFields;

static void rpc_fields_clear(RpcFields *r) {
    Py_CLEAR(r->interface);
    Py_CLEAR(r->procnum);
    Py_CLEAR(r->endpoint);
    Py_CLEAR(r->protocol);
    Py_CLEAR(r->auth_level);
    Py_CLEAR(r->auth_service);
    Py_CLEAR(r->impersonation_level);
}

static int rpc_fields_of(View *w, RpcFields *out) {
    memset(out, 0, sizeof(*out));
    if (!w->f) {
        Rec *r = w->r;
        out->interface = r->o1;
        Py_XINCREF(out->interface);
        out->endpoint = r->o2;
        Py_XINCREF(out->endpoint);
        out->procnum = PyLong_FromUnsignedLong(r->v1);
        out->protocol = PyLong_FromUnsignedLong(r->v2);
        out->auth_level = PyLong_FromUnsignedLong(r->v3);
        out->auth_service = PyLong_FromUnsignedLong(r->v4);
        out->impersonation_level = PyLong_FromUnsignedLong(r->v5);
        out->has_protocol = 1;
        if (!out->procnum || !out->protocol || !out->auth_level || !out->auth_service || !out->impersonation_level) {
            rpc_fields_clear(out);
            return -1;
        }
        return 0;
    }
    PyObject **slots[7] = {&out->interface, &out->procnum, &out->endpoint, &out->protocol, &out->auth_level,
                           &out->auth_service, &out->impersonation_level};
    PyObject *keys[7] = {k_interface_uuid, k_procnum, k_endpoint, k_protocol, k_auth_level, k_auth_service,
                         k_impersonation_level};
    for (int i = 0; i < 7; i++) {
        PyObject *v = fget(w->f, keys[i]);
        if (!v && PyErr_Occurred()) { rpc_fields_clear(out); return -1; }
        if (i == 3) out->has_protocol = v != NULL;
        if (v == Py_None) v = NULL; /* None is stored as NULL */
        Py_XINCREF(v);
        *slots[i] = v;
    }
    return 0;
}

static void fill_rpc(CallObject *c, RpcFields *r) {
    Py_XINCREF(r->interface);
    Py_XSETREF(c->interface, r->interface);
    Py_XINCREF(r->procnum);
    Py_XSETREF(c->opnum, r->procnum);
    /* f.get("endpoint") or call.endpoint */
    if (r->endpoint && PyObject_IsTrue(r->endpoint) == 1) {
        Py_INCREF(r->endpoint);
        Py_XSETREF(c->endpoint, r->endpoint);
    }
    if (r->has_protocol) { /* f.get("protocol", call.protocol) */
        Py_XINCREF(r->protocol);
        Py_XSETREF(c->protocol, r->protocol);
    }
    Py_XINCREF(r->auth_level);
    Py_XSETREF(c->auth_level, r->auth_level);
    Py_XINCREF(r->auth_service);
    Py_XSETREF(c->auth_service, r->auth_service);
    Py_XINCREF(r->impersonation_level);
    Py_XSETREF(c->impersonation_level, r->impersonation_level);
}

/* the event's activity id: 0 none (missing or falsy), 1 set (bin, and *text when it came as text) */
static int view_activity(View *w, unsigned char bin[16], PyObject **text) {
    *text = NULL;
    if (!w->f) {
        if (!(w->r->flags & F_ACT)) return 0;
        memcpy(bin, w->r->act, 16);
        return 1;
    }
    PyObject *a = fget(w->f, k_activity_id);
    if (!a) return PyErr_Occurred() ? -1 : 0;
    int truth = PyObject_IsTrue(a);
    if (truth <= 0) return truth;
    if (!guid_parse(a, bin)) { unsupported("an activity id that is not a GUID's text"); return -1; }
    *text = a;
    return 1;
}

static int set_call_activity(char *has, unsigned char *dst, PyObject **text_slot, unsigned char *bin, PyObject *text) {
    *has = 1;
    memcpy(dst, bin, 16);
    Py_XINCREF(text);
    Py_XSETREF(*text_slot, text);
    return 0;
}

static int set_status(PyObject **slot, View *w) {
    PyObject *st;
    if (!w->f) {
        st = PyLong_FromUnsignedLong(w->r->v1);
        if (!st) return -1;
    } else {
        st = fget(w->f, k_status);
        if (!st && PyErr_Occurred()) return -1;
        if (st == Py_None) st = NULL;
        Py_XINCREF(st);
    }
    Py_XSETREF(*slot, st);
    return 0;
}

static int add_endpoint_pid(Engine *e, PyObject *endpoint, int64_t pid) {
    PyObject *set = PyDict_GetItemWithError(e->endpoints, endpoint);
    if (!set) {
        if (PyErr_Occurred()) return -1;
        set = PySet_New(NULL);
        if (!set || PyDict_SetItem(e->endpoints, endpoint, set) < 0) { Py_XDECREF(set); return -1; }
        Py_DECREF(set);
    }
    PyObject *p = id_obj(pid);
    if (!p) return -1;
    int r = PySet_Add(set, p);
    Py_DECREF(p);
    return r;
}

static int rpc_event(Engine *e, View *w) {
    Rec *r = w->r;
    int64_t pid = r->pid, tid = r->tid, ts = r->ts;
    int kind = w->kind;
    e->rpc_seen = 1;
    if (kind == K_CSTART) {
        RpcFields rf;
        if (rpc_fields_of(w, &rf) < 0) return -1;
        CallObject *c = new_call(e);
        if (!c) { rpc_fields_clear(&rf); return -1; }
        fill_rpc(c, &rf);
        rpc_fields_clear(&rf);
        c->client_pid = pid;
        c->client_tid = tid;
        c->start = ts;
        c->has_client = 1;
        unsigned char bin[16];
        PyObject *text;
        int has = view_activity(w, bin, &text);
        if (has < 0) return -1;
        if (has) {
            if (!extra(c)) return -1;
            set_call_activity(&c->x->has_client_act, c->x->client_act, &c->x->client_activity, bin, text);
            if (hm_set(&e->client_by_act, pid, ACT_KEY(bin), (PyObject *)c) < 0) return -1;
        }
        CallObject *parent = (CallObject *)hm_get(&e->serving, pid, tid, 0);
        if (parent) {
            Py_INCREF(parent);
            Py_XSETREF(c->parent, (PyObject *)parent);
            track(c);
            track(parent);
            if (!parent->children) {
                parent->children = PyList_New(0);
                if (!parent->children) return -1;
            }
            if (PyList_Append(parent->children, (PyObject *)c) < 0) return -1;
            if (add_evidence(e, &c->evidence, ev_parent) < 0) return -1;
        }
        if (hm_set(&e->open_client, pid, tid, 0, (PyObject *)c) < 0 || hm_set(&e->last_client, pid, tid, 0, (PyObject *)c) < 0)
            return -1;
        return 0;
    }
    if (kind == K_CSTOP) {
        unsigned char bin[16];
        PyObject *text;
        int has = view_activity(w, bin, &text);
        if (has < 0) return -1;
        CallObject *c = has ? (CallObject *)hm_pop(&e->client_by_act, pid, ACT_KEY(bin)) : NULL; /* owned */
        if (!c) {
            c = (CallObject *)hm_get(&e->last_client, pid, tid, 0);
            if (c && c->end != NONE_TS) c = NULL;
            Py_XINCREF(c);
        } else {
            if (add_evidence(e, &c->evidence, ev_activity57) < 0) { Py_DECREF(c); return -1; }
            if (c->x) { /* matched: the id has done its job */
                c->x->has_client_act = 0;
                Py_CLEAR(c->x->client_activity);
                extra_check(c);
            }
        }
        if (!c) return 0;
        c->end = ts;
        int bad = set_status(&c->status, w) < 0;
        if (!bad && tid != NONE_ID && tid != c->client_tid) c->stop_tid = tid; /* completed on another thread */
        if (!bad && (CallObject *)hm_get(&e->open_client, c->client_pid, c->client_tid, 0) == c)
            hm_del(&e->open_client, c->client_pid, c->client_tid, 0);
        Py_DECREF(c);
        return bad ? -1 : 0;
    }
    if (kind == K_SSTART) {
        RpcFields rf;
        if (rpc_fields_of(w, &rf) < 0) return -1;
        MsgObject *msg = (MsgObject *)hm_pop(&e->taken, pid, tid, 0); /* owned */
        if (msg && msg->call && msg->call->has_client) {
            CallObject *cc = msg->call;
            int same_if = 0, same_op = 0;
            PyObject *a = cc->interface ? cc->interface : Py_None, *b = rf.interface ? rf.interface : Py_None;
            same_if = PyObject_RichCompareBool(a, b, Py_EQ);
            if (same_if == 1) {
                a = cc->opnum ? cc->opnum : Py_None;
                b = rf.procnum ? rf.procnum : Py_None;
                same_op = PyObject_RichCompareBool(a, b, Py_EQ);
            }
            if (same_if < 0 || same_op < 0) { Py_DECREF(msg); rpc_fields_clear(&rf); return -1; }
            if (!(same_if && same_op)) {
                /* The server runs a different procedure than the client asked for: the message
                 * pairing is wrong (lost events).  Keep the two sides apart. */
                if (add_evidence(e, &cc->evidence, ev_rejected) < 0) { Py_DECREF(msg); rpc_fields_clear(&rf); return -1; }
                cc->server_pid = cc->server_tid = NONE_ID;
                msg->call = NULL;
                MsgObject *old = cc->message;
                cc->message = NULL;
                if ((CallObject *)hm_get(&e->serving, pid, tid, 0) == cc) hm_del(&e->serving, pid, tid, 0);
                Py_XDECREF(old);
                Py_DECREF(msg);
                msg = NULL;
            }
        }
        CallObject *c;
        if (msg) {
            c = call_for_message(e, msg);
            Py_DECREF(msg);
            if (!c || add_evidence(e, &c->evidence, ev_receive_rpc6) < 0) { rpc_fields_clear(&rf); return -1; }
        } else {
            c = new_call(e);
            if (!c) { rpc_fields_clear(&rf); return -1; }
            c->server_pid = pid;
            c->server_tid = tid;
        }
        if (!c->has_client || !c->interface) fill_rpc(c, &rf);
        rpc_fields_clear(&rf);
        c->server_start = ts;
        c->has_server = 1;
        unsigned char bin[16];
        PyObject *text;
        int has = view_activity(w, bin, &text);
        if (has < 0) return -1;
        if (has) {
            if (!extra(c)) return -1;
            set_call_activity(&c->x->has_server_act, c->x->server_act, &c->x->server_activity, bin, text);
            if (hm_set(&e->server_by_act, pid, ACT_KEY(bin), (PyObject *)c) < 0) return -1;
        } else if (c->x) {
            c->x->has_server_act = 0;
            Py_CLEAR(c->x->server_activity);
            extra_check(c);
        }
        if (hm_set(&e->serving, pid, tid, 0, (PyObject *)c) < 0) return -1;
        if (c->endpoint && pid != NONE_ID) { /* a server start of an unknown process names no server pid */
            int t = PyObject_IsTrue(c->endpoint);
            if (t < 0 || (t && add_endpoint_pid(e, c->endpoint, pid) < 0)) return -1;
        }
        return 0;
    }
    if (kind == K_SSTOP) {
        unsigned char bin[16];
        PyObject *text;
        int has = view_activity(w, bin, &text);
        if (has < 0) return -1;
        CallObject *c = has ? (CallObject *)hm_pop(&e->server_by_act, pid, ACT_KEY(bin)) : NULL; /* owned */
        if (!c) {
            c = (CallObject *)hm_get(&e->serving, pid, tid, 0);
            Py_XINCREF(c);
        } else {
            if (add_evidence(e, &c->evidence, ev_activity68) < 0) { Py_DECREF(c); return -1; }
            if (c->x) {
                c->x->has_server_act = 0;
                Py_CLEAR(c->x->server_activity);
                extra_check(c);
            }
        }
        if (!c) return 0;
        c->server_end = ts;
        int bad = set_status(&c->server_status, w) < 0;
        if (!bad && !c->message && (CallObject *)hm_get(&e->serving, pid, tid, 0) == c) {
            hm_del(&e->serving, pid, tid, 0); /* without ALPC the server's work ends with event 8 */
            if (e->report && settle(e, c) < 0) bad = 1;
        }
        Py_DECREF(c);
        return bad ? -1 : 0;
    }
    if (kind == K_RPC_RAISE || kind == K_RPC_EEINFO) {
        /* the procedure raised (event 9) or error information was recorded (event 1) on a thread
         * of an open call: that is the call's result as the trace has it */
        PyObject *st = fget(w->f, k_status);
        if (!st) return PyErr_Occurred() ? -1 : 0;
        int t = PyObject_IsTrue(st);
        if (t <= 0) return t;
        CallObject *c = (CallObject *)hm_get(&e->serving, pid, tid, 0);
        if (!c) c = (CallObject *)hm_get(&e->open_client, pid, tid, 0);
        if (!c) c = (CallObject *)hm_get(&e->last_client, pid, tid, 0);
        if (c && !(c->x && c->x->result_status) && (c->end == NONE_TS || c->end >= ts)) {
            if (!extra(c)) return -1;
            Py_INCREF(st); /* truthy: not None */
            Py_XSETREF(c->x->result_status, st);
            PyObject *src = kind == K_RPC_RAISE ? s_raise_source : s_eeinfo_source;
            Py_INCREF(src);
            Py_XSETREF(c->x->result_source, src);
        }
        return 0;
    }
    if (kind == K_RPC_BIND && pid != NONE_ID) {
        PyObject *ep = fget(w->f, k_endpoint);
        if (!ep) return PyErr_Occurred() ? -1 : 0;
        int t = PyObject_IsTrue(ep);
        if (t <= 0) return t;
        return add_endpoint_pid(e, ep, pid);
    }
    return 0;
}

/* Correlator._alpc, after the pairing gave the event's message */
static int alpc_join(Engine *e, View *w, MsgObject *msg) {
    Rec *r = w->r;
    if (w->kind == K_SEND) {
        if (msg->send_ts == r->ts && msg->client_tid == r->tid && !(msg->reply_ts == r->ts && msg->reply_tid == r->tid)) {
            CallObject *c = (CallObject *)hm_pop(&e->open_client, r->pid, r->tid, 0); /* owned */
            if (c && !msg->call && (__int128)r->ts - (__int128)c->start <= (__int128)e->send_window) {
                Py_INCREF(msg);
                Py_XSETREF(c->message, msg);
                msg->call = c;
                if (add_evidence(e, &c->evidence, ev_rpc5_send) < 0) { Py_DECREF(c); return -1; }
            }
            Py_XDECREF(c);
        } else if (msg->reply_ts == r->ts && msg->reply_tid == r->tid) {
            CallObject *c = msg->call;
            if (c && (CallObject *)hm_get(&e->serving, r->pid, r->tid, 0) == c) {
                Py_INCREF(c);
                hm_del(&e->serving, r->pid, r->tid, 0);
                int bad = e->report && settle(e, c) < 0;
                Py_DECREF(c);
                if (bad) return -1;
            }
        }
    } else if (w->kind == K_RECEIVE && msg->server_tid == r->tid && msg->receive_ts == r->ts) {
        CallObject *c = call_for_message(e, msg);
        if (!c) return -1;
        c->server_pid = r->pid;
        c->server_tid = r->tid;
        if (hm_set(&e->serving, r->pid, r->tid, 0, (PyObject *)c) < 0 ||
            hm_set(&e->taken, r->pid, r->tid, 0, (PyObject *)msg) < 0)
            return -1;
    }
    return 0;
}

static int view_msgid(View *w, int64_t *x) {
    if (!w->f) { *x = w->r->v1; return 0; }
    PyObject *v = fitem(w->f, k_message_id);
    if (!v) return -1;
    if (!PyLong_CheckExact(v)) { unsupported("a message id that is not an int"); return -1; }
    int overflow;
    long long r = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow) { unsupported("a message id outside 64 bits"); return -1; }
    if (r == -1 && PyErr_Occurred()) return -1;
    *x = r;
    return 0;
}

/* AlpcPairing.alpc + the Correlator's use of its result */
static int alpc_event(Engine *e, View *w) {
    Rec *r = w->r;
    int kind = w->kind;
    int64_t tid = r->tid, pid = r->pid, ts = r->ts;
    MsgObject *msg = NULL; /* a new reference */
    if (tid != NONE_ID) {
        HSlot *s = hm_find(&e->last_op, tid, 0, 0);
        int previous = s ? (int)s->v : K_OTHER;
        if (hm_seti(&e->last_op, tid, 0, 0, kind) < 0) return -1;
        if (kind == K_SEND) {
            int64_t x;
            if (view_msgid(w, &x) < 0) return -1;
            msg = p_send(e, x, pid, tid, ts);
            if (!msg) return -1;
        } else if (kind == K_RECEIVE) {
            int64_t x;
            if (view_msgid(w, &x) < 0) return -1;
            if (p_receive(e, x, pid, tid, ts, previous, &msg) < 0) return -1;
        } else if (kind == K_WAIT_REPLY) {
            int64_t x;
            if (view_msgid(w, &x) < 0) return -1;
            MsgObject *m = (MsgObject *)hm_get(&e->waiting, tid, 0, 0);
            if (m && m->message_id == x) m->waited = 1;
        } else if (kind == K_WAIT_NEW) {
            if (end_service(e, tid) < 0) return -1;
            PyObject *name, *server;
            if (!w->f) {
                name = r->o1;
                server = (r->flags & F_SERVER) ? Py_True : Py_False;
            } else {
                name = fget(w->f, k_port_name);
                if (!name && PyErr_Occurred()) return -1;
                server = fget(w->f, k_is_server_port);
                if (!server && PyErr_Occurred()) return -1;
            }
            int named = name ? PyObject_IsTrue(name) : 0; /* f.get("port_name") or "" */
            if (named < 0) return -1;
            if (named) {
                if (!PyUnicode_Check(name)) { unsupported("a port name that is not text"); return -1; }
                if (hm_set(&e->port_of, tid, 0, 0, name) < 0) return -1;
                int is_server = server ? PyObject_IsTrue(server) : 0;
                if (is_server < 0) return -1;
                if (is_server && pid != NONE_ID) {
                    PyObject *p = id_obj(pid);
                    if (!p) return -1;
                    PyObject *set = PyDict_GetItemWithError(e->ports, p);
                    if (!set) {
                        if (PyErr_Occurred() || !(set = PySet_New(NULL)) || PyDict_SetItem(e->ports, p, set) < 0) {
                            Py_XDECREF(set);
                            Py_DECREF(p);
                            return -1;
                        }
                        Py_DECREF(set);
                    }
                    Py_DECREF(p);
                    if (PySet_Add(set, name) < 0 || hm_seti(&e->port_pids, pid, 0, 0, 1) < 0) return -1;
                }
            }
        } else if (kind == K_UNWAIT) {
            MsgObject *m = (MsgObject *)hm_get(&e->waiting, tid, 0, 0);
            if (m) {
                PyObject *st;
                if (!w->f) st = PyLong_FromUnsignedLong(r->v1);
                else {
                    st = fitem(w->f, k_status);
                    Py_XINCREF(st);
                }
                if (!st) return -1;
                if (st == Py_None) Py_CLEAR(st);
                Py_XSETREF(m->unwait_status, st);
            }
        }
    }
    /* the Correlator */
    int rc = 0;
    if (kind == K_WAIT_NEW) {
        CallObject *done = (CallObject *)hm_pop(&e->serving, pid, tid, 0); /* the thread is back waiting */
        if (done) {
            if (e->report) rc = settle(e, done);
            Py_DECREF(done);
        }
    } else if (msg && (kind == K_SEND || kind == K_RECEIVE)) {
        rc = alpc_join(e, w, msg);
    }
    Py_XDECREF(msg); /* a call or a table holds it now, or nothing does (as in Python) */
    return rc;
}

/* ------------------------------------------------------------------ settle ("report") */

/* ``event_class(op) == "blame"`` (knowledge.failures: only failures are "blame") */
static int op_blamed(Engine *e, PyObject *op, PyObject *status) {
    int failed = is_failure(status);
    if (failed <= 0) return failed;
    PyObject *r = PyObject_CallFunctionObjArgs(e->event_class, op, NULL);
    if (!r) return -1;
    int t = PyObject_RichCompareBool(r, s_blame, Py_EQ);
    Py_DECREF(r);
    return t;
}

static int settle(Engine *e, CallObject *c) {
    PyObject *ops = c->operations;
    if (!ops || PyList_GET_SIZE(ops) == 0 || c->id <= e->trim_after) return 0;
    Py_ssize_t n = PyList_GET_SIZE(ops);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *op = PyList_GET_ITEM(ops, i);
        PyObject *st = fget(PyTuple_GET_ITEM(op, 9), k_status);
        if (!st && PyErr_Occurred()) return -1;
        int blamed = op_blamed(e, op, st ? st : Py_None);
        if (blamed < 0) return -1;
        if (blamed) return 0;
        if (!st || st == Py_None) {
            int create = PyObject_RichCompareBool(PyTuple_GET_ITEM(op, 8), s_file_create, Py_EQ);
            if (create < 0) return -1;
            if (create) return 0;
        }
    }
    int64_t expected = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *st = fget(PyTuple_GET_ITEM(PyList_GET_ITEM(ops, i), 9), k_status);
        if (!st && PyErr_Occurred()) return -1;
        int failed = is_failure(st);
        if (failed < 0) return -1;
        expected += failed;
    }
    c->ops_not_kept += n;
    c->expected_not_kept += expected;
    Py_CLEAR(c->operations);
    return 0;
}

/* ------------------------------------------------------------------ one batch */

/* the event with process id ``pid`` (tuple.__new__(Event, (ev[0], pid) + ev[2:])) */
static PyObject *with_pid(Engine *e, PyObject *ev, int64_t pid) {
    Py_ssize_t n = PyTuple_GET_SIZE(ev);
    PyTypeObject *type = Py_TYPE(ev);
    PyObject *out = type->tp_alloc(type, n);
    if (!out) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = i == 1 ? id_obj(pid) : PyTuple_GET_ITEM(ev, i);
        if (!item) { Py_DECREF(out); return NULL; }
        if (i != 1) Py_INCREF(item);
        PyTuple_SET_ITEM(out, i, item);
    }
    return out;
}

/* TraceStream._assemble for one event (process id from the thread table, then _other) */
static int assemble(Engine *e, Rec *r) {
    if (r->pid == NONE_ID && r->tid != NONE_ID) {
        HSlot *s = hm_find(&e->live, r->tid, 0, 0);
        if (s && s->v != NONE_ID) {
            r->pid = (int64_t)s->v;
            if (r->ev) {
                PyObject *ev = with_pid(e, r->ev, r->pid);
                if (!ev) return -1;
                Py_SETREF(r->ev, ev);
            }
        }
    }
    int kind = r->kind;
    if (K_PASSES(kind)) return 0;
    if (kind == K_REG) {
        /* _other: a failed registry operation wants its stack */
        if (e->stacks && u32_failure(r->v1)) {
            PyObject *ev = reg_event(e, r);
            if (!ev) return -1;
            PyObject *res = PyObject_CallFunctionObjArgs(e->want_cb, ev, NULL);
            if (!res) return -1;
            Py_DECREF(res);
        }
        return 0;
    }
    PyObject *ev = r->ev;
    if (kind == K_STACK || kind == K_STACK_KEY) {
        if (!e->stacks) return 0; /* _other does nothing with them */
    } else if ((kind == K_THREAD_START || kind == K_THREAD_RUNDOWN) && r->tid != NONE_ID) {
        int start = kind == K_THREAD_START;
        if (!start) {
            long op = PyLong_AsLong(PyTuple_GET_ITEM(ev, 6));
            if (op == -1 && PyErr_Occurred()) return -1;
            start = op == 3; /* DC_START */
        }
        if (start && hm_seti(&e->live, r->tid, 0, 0, (intptr_t)r->pid) < 0) return -1;
    }
    if (!r->stream) return 0; /* _other does nothing with it */
    PyObject *res = PyObject_CallFunctionObjArgs(e->other_cb, ev, PyTuple_GET_ITEM(ev, 8), NULL);
    if (!res) return -1;
    Py_DECREF(res);
    return 0;
}

static int correlate(Engine *e, Rec *r) {
    View w = {r, r->kind, NULL};
    if (r->ev && r->kind != K_REG) w.f = PyTuple_GET_ITEM(r->ev, 9);
    int kind = r->kind;
    if (K_ALPC(kind)) {
        if (kind == K_RECEIVE || kind == K_SEND || kind == K_WAIT_REPLY || kind == K_UNWAIT || kind == K_WAIT_NEW ||
            kind == K_ALPC_OTHER)
            return alpc_event(e, &w);
        return 0;
    }
    if (K_RPC(kind)) {
        if (kind == K_CSTART && r->tid != NONE_ID) {
            if (hm_seti(&e->in_client_call, r->tid, 0, 0, 1) < 0) return -1;
        } else if (kind == K_CSTOP && r->tid != NONE_ID) {
            HSlot *s = hm_find(&e->in_client_call, r->tid, 0, 0);
            if (s) hm_remove(&e->in_client_call, s);
        }
        return rpc_event(e, &w);
    }
    if (K_OPERATION(kind)) return operation(e, &w);
    return 0;
}

static PyObject *hot_kinds[K_STACK_KEY + 1]; /* the kind text of compact records */

static int count_kind(Engine *e, Rec *r) {
    PyObject *kind = r->kind == K_REG ? PyTuple_GET_ITEM(r->o2, 4) : r->ev ? PyTuple_GET_ITEM(r->ev, 8) : hot_kinds[r->kind];
    HSlot *s = hm_find(&e->kind_index, (int64_t)(intptr_t)kind, 0, 0);
    if (s) {
        e->kind_counts[s->v]++;
        return 0;
    }
    if (e->kind_index.n >= 65536) { /* hostile: the Python dict below counts alike, only slower */
        hm_free(&e->kind_index);
        if (hm_init(&e->kind_index, 0) < 0) return -1;
    }
    if (e->nkinds == e->capkinds) {
        size_t cap = e->capkinds ? e->capkinds * 2 : 64;
        PyObject **objs = PyMem_Realloc(e->kind_objs, cap * sizeof(PyObject *));
        if (!objs) { PyErr_NoMemory(); return -1; }
        e->kind_objs = objs;
        int64_t *counts = PyMem_Realloc(e->kind_counts, cap * sizeof(int64_t));
        if (!counts) { PyErr_NoMemory(); return -1; }
        e->kind_counts = counts;
        e->capkinds = cap;
    }
    Py_INCREF(kind);
    e->kind_objs[e->nkinds] = kind;
    e->kind_counts[e->nkinds] = 1;
    if (hm_seti(&e->kind_index, (int64_t)(intptr_t)kind, 0, 0, (intptr_t)e->nkinds) < 0) return -1;
    e->nkinds++;
    return 0;
}

/* the batch's Python events to the tap (the compact records are ALPC, RPC and registry events,
 * which it does not take) */
static int feed_tap(Engine *e, Rec *recs, size_t n) {
    PyObject *list = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!recs[i].ev || recs[i].kind == K_REG) continue;
        if (!list && !(list = PyList_New(0))) return -1;
        if (PyList_Append(list, recs[i].ev) < 0) { Py_DECREF(list); return -1; }
    }
    if (!list) return 0;
    PyObject *r = PyObject_CallFunctionObjArgs(e->tap, list, NULL);
    Py_DECREF(list);
    if (!r) return -1;
    Py_DECREF(r);
    return 0;
}

static int process(Engine *e, Rec *recs, size_t n) {
    if (!n) return 0;
    for (size_t i = 0; i < n; i++)
        if (count_kind(e, &recs[i]) < 0) return -1;
    for (size_t i = 0; i < n; i++)
        if (assemble(e, &recs[i]) < 0) return -1;
    for (size_t i = 0; i < n; i++)
        if (correlate(e, &recs[i]) < 0) return -1;
    if (e->tap != Py_None && feed_tap(e, recs, n) < 0) return -1;
    e->records += (int64_t)n;
    if (!e->have_ts) {
        e->first_ts = recs[0].ts;
        e->have_ts = 1;
    }
    e->last_ts = recs[n - 1].ts;
    return 0;
}

/* ------------------------------------------------------------------ classification */

/* kinds TraceStream._other does something with (tests/correlate/test_fast_engine.py reads _other
 * and checks that every kind it tests is here): its call is skipped for the others */
#define K_STREAM 0x100
static const char *stream_prefixes[] = {"thread.", "registry.", "file.", "process.", "image.", NULL};
static const char *stream_kinds[] = {"stack", "stack_key", "trace.header", NULL};

/* K_* of a kind text, with K_STREAM when TraceStream._other looks at such events */
static int classify_full(Engine *e, PyObject *kind) {
    PyObject *hit = PyDict_GetItemWithError(e->kinds, kind);
    if (hit) return (int)PyLong_AsLong(hit);
    if (PyErr_Occurred()) return -1;
    if (!PyUnicode_Check(kind)) { unsupported("an event kind that is not text"); return -1; }
    static const struct { const char *text; int kind; } exact[] = {
        {"alpc.send", K_SEND}, {"alpc.receive", K_RECEIVE}, {"alpc.wait_reply", K_WAIT_REPLY},
        {"alpc.unwait", K_UNWAIT}, {"alpc.wait_new", K_WAIT_NEW}, {"rpc.client_start", K_CSTART},
        {"rpc.server_start", K_SSTART}, {"rpc.client_stop", K_CSTOP}, {"rpc.server_stop", K_SSTOP},
        {"rpc.endpoint_bind", K_RPC_BIND}, {"rpc.raise", K_RPC_RAISE}, {"rpc.eeinfo", K_RPC_EEINFO},
        {"file.create", K_FILE_CREATE}, {"thread.start", K_THREAD_START},
        {"thread.rundown", K_THREAD_RUNDOWN}, {"stack", K_STACK}, {"stack_key", K_STACK_KEY}, {NULL, 0},
    };
    int k = -1;
    for (int i = 0; exact[i].text; i++)
        if (PyUnicode_CompareWithASCIIString(kind, exact[i].text) == 0) { k = exact[i].kind; break; }
    if (k < 0) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(kind);
        static const struct { const char *prefix; int kind; } prefixes[] = {
            {"alpc.", K_ALPC_OTHER}, {"rpc.", K_RPC_OTHER}, {"registry.", K_OP}, {"file.", K_OP}, {NULL, 0},
        };
        k = K_OTHER;
        for (int i = 0; prefixes[i].prefix; i++) {
            PyObject *p = PyUnicode_FromString(prefixes[i].prefix);
            if (!p) return -1;
            Py_ssize_t m = PyUnicode_Tailmatch(kind, p, 0, n, -1);
            Py_DECREF(p);
            if (m < 0) return -1;
            if (m) { k = prefixes[i].kind; break; }
        }
    }
    int handled = 0;
    for (int i = 0; stream_kinds[i] && !handled; i++) handled = PyUnicode_CompareWithASCIIString(kind, stream_kinds[i]) == 0;
    for (int i = 0; stream_prefixes[i] && !handled; i++) {
        PyObject *p = PyUnicode_FromString(stream_prefixes[i]);
        if (!p) return -1;
        Py_ssize_t m = PyUnicode_Tailmatch(kind, p, 0, PyUnicode_GET_LENGTH(kind), -1);
        Py_DECREF(p);
        if (m < 0) return -1;
        handled = (int)m;
    }
    if (handled) k |= K_STREAM;
    if (PyDict_GET_SIZE(e->kinds) < 4096) {
        PyObject *v = PyLong_FromLong(k);
        if (!v || PyDict_SetItem(e->kinds, kind, v) < 0) { Py_XDECREF(v); return -1; }
        Py_DECREF(v);
    }
    return k;
}

static int classify(Engine *e, PyObject *kind) {
    int k = classify_full(e, kind);
    return k < 0 ? k : k & 0xFF;
}

/* ------------------------------------------------------------------ the sink of the record loop */

/* What the engine does with a kernel entry's records, decided once per entry */
enum { P_UNKNOWN = 0, P_PYTHON, P_SIMPLE, P_WAIT_NEW, P_REG, P_REG_VALUE };

/* Strings decoded from the same bytes again and again (port names, key names, interface ids,
 * endpoints): a direct-mapped cache by their bytes, so a busy trace's records cost a hash and a
 * memcmp instead of a decode and a dict lookup.  Bounded: TEXT_SLOTS entries of at most
 * TEXT_MAX bytes; longer strings are decoded each time. */
#define TEXT_SLOTS 1024
#define TEXT_MAX 256
struct TextEnt {
    uint64_t hash;
    uint32_t len;
    unsigned char how;
    PyObject *obj;
    unsigned char bytes[TEXT_MAX];
};
enum { T_LATIN1 = 1, T_UTF16, T_GUID };

static PyObject *decode_text(int how, const unsigned char *p, Py_ssize_t n) {
    if (how == T_LATIN1) return fr_interned(PyUnicode_DecodeLatin1((const char *)p, n, NULL));
    if (how == T_GUID) return fr_interned(fr_guid_text(p));
    int bo = -1;
    return fr_interned(PyUnicode_DecodeUTF16((const char *)p, n, "replace", &bo));
}

/* the string of bytes p[0:n] decoded as ``how`` says (a new reference) */
static PyObject *cached_text(Engine *e, int how, const unsigned char *p, Py_ssize_t n) {
    if (n > TEXT_MAX || !e->texts) return decode_text(how, p, n);
    uint64_t h = 1469598103934665603ull ^ (uint64_t)how;
    for (Py_ssize_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    struct TextEnt *t = &e->texts[(h ^ (h >> 29)) & (TEXT_SLOTS - 1)];
    if (t->obj && t->hash == h && t->how == how && t->len == (uint32_t)n && memcmp(t->bytes, p, (size_t)n) == 0) {
        Py_INCREF(t->obj);
        return t->obj;
    }
    PyObject *o = decode_text(how, p, n);
    if (!o) return NULL;
    Py_INCREF(o);
    Py_XSETREF(t->obj, o);
    t->hash = h;
    t->how = (unsigned char)how;
    t->len = (uint32_t)n;
    memcpy(t->bytes, p, (size_t)n);
    return o;
}

/* the character bytes of the NUL-terminated UTF-16LE string at pos, as fr_utf16z decodes them:
 * [pos, *stop); returns where the next field starts */
static Py_ssize_t utf16_span(const unsigned char *d, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t *stop) {
    Py_ssize_t at = pos;
    while (at + 1 < end) {
        if (d[at] == 0 && d[at + 1] == 0) {
            *stop = at;
            return at + 2;
        }
        at += 2;
    }
    *stop = end - ((end - pos) & 1);
    return end;
}

/* decide what to do with the records of a kernel entry (kernel._kernel_entry's tuple) */
static int plan_of(Engine *e, PyObject *entry, unsigned key) {
    PyObject *simple = PyTuple_GET_ITEM(entry, 2);
    long fast = PyLong_AsLong(PyTuple_GET_ITEM(entry, 3));
    if (fast == -1 && PyErr_Occurred()) return -1;
    int plan = P_PYTHON, kind = 0;
    if (simple != Py_None) {
        /* a one-field payload: ALPC Send/Receive/WaitForReply (message_id) and Unwait (status) */
        if (PyTuple_Check(simple) && PyTuple_GET_SIZE(simple) == 4) {
            Py_ssize_t width = PyLong_AsSsize_t(PyTuple_GET_ITEM(simple, 3));
            if (width == -1 && PyErr_Occurred()) return -1;
            kind = classify(e, PyTuple_GET_ITEM(simple, 0));
            if (kind < 0) return -1;
            int same = PyObject_RichCompareBool(PyTuple_GET_ITEM(simple, 2), kind == K_UNWAIT ? k_status : k_message_id, Py_EQ);
            if (same < 0) return -1;
            if (width == 4 && same && (kind == K_SEND || kind == K_RECEIVE || kind == K_WAIT_REPLY || kind == K_UNWAIT))
                plan = P_SIMPLE;
        }
    } else if (fast == 1) {
        plan = P_WAIT_NEW;
    } else if (fast == 2) {
        int k = classify(e, PyTuple_GET_ITEM(entry, 4));
        if (k < 0) return -1;
        PyObject *kt = PyTuple_GET_ITEM(entry, 4);
        Py_ssize_t m = 1;
        if (k == K_OP) { /* KCB definitions go to the stream's KCB table: as Python events */
            PyObject *kcb_prefix = PyUnicode_FromString("registry.kcb_");
            if (!kcb_prefix) return -1;
            m = PyUnicode_Tailmatch(kt, kcb_prefix, 0, PyUnicode_GET_LENGTH(kt), -1);
            Py_DECREF(kcb_prefix);
            if (m < 0) return -1;
        }
        if (!m) {
            int value_op = PyObject_IsTrue(PyTuple_GET_ITEM(entry, 5));
            if (value_op < 0) return -1;
            plan = value_op ? P_REG_VALUE : P_REG;
        }
    }
    e->plans[key] = (unsigned char)plan;
    e->plan_kinds[key] = (unsigned char)kind;
    return plan;
}

PyObject *eng_entry(Engine *e, PyObject *kcache, PyObject *kernel_entry, unsigned group, unsigned opcode) {
    unsigned key = ((group & 0xFF) << 8) | (opcode & 0xFF);
    PyObject *entry = e->entries[key];
    if (!entry) {
        PyObject *k = PyLong_FromLong((long)key);
        if (!k) return NULL;
        entry = PyDict_GetItemWithError(kcache, k);
        Py_DECREF(k);
        if (entry) Py_INCREF(entry);
        else if (PyErr_Occurred()) return NULL;
        else if (!(entry = PyObject_CallFunction(kernel_entry, "II", group, opcode))) return NULL;
        if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) < 6) {
            Py_DECREF(entry);
            PyErr_SetString(PyExc_ValueError, "kernel entry must be a 6-tuple");
            return NULL;
        }
        e->entries[key] = entry;
    }
    Py_INCREF(entry);
    return entry;
}

int eng_add_event(Engine *e, PyObject *raw, PyObject *ev) {
    if (!PyTuple_Check(ev) || PyTuple_GET_SIZE(ev) < 11) {
        unsupported("an event that is not an Event");
        return -1;
    }
    unsigned long long rv = PyLong_AsUnsignedLongLong(raw);
    if (rv == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        unsupported("a raw timestamp outside 64 bits");
        return -1;
    }
    int kind = classify_full(e, PyTuple_GET_ITEM(ev, 8));
    if (kind < 0) return -1;
    Rec *r = rv_push(&e->in);
    if (!r) return -1;
    r->raw = rv;
    r->kind = (unsigned char)(kind & 0xFF);
    r->stream = (kind & K_STREAM) != 0;
    Py_INCREF(ev);
    r->ev = ev;
    if (ts_from(PyTuple_GET_ITEM(ev, 0), &r->ts) < 0 || id_from(PyTuple_GET_ITEM(ev, 1), &r->pid) < 0 ||
        id_from(PyTuple_GET_ITEM(ev, 2), &r->tid) < 0)
        return -1;
    return 0;
}

int eng_add_kernel(Engine *e, uint64_t raw, int64_t ts, uint32_t pid, uint32_t tid, int cpu, PyObject *entry,
                   unsigned group, unsigned opcode, unsigned version, const unsigned char *d, Py_ssize_t pos,
                   Py_ssize_t end, int ptr) {
    unsigned key = ((group & 0xFF) << 8) | (opcode & 0xFF);
    int plan = e->plans[key];
    if (plan == P_UNKNOWN && (plan = plan_of(e, entry, key)) < 0) return -1;
    int kind = 0;
    uint32_t value = 0;
    PyObject *o1 = NULL, *o2 = NULL;
    unsigned char flags = 0;
    uint64_t q = 0;
    int64_t i64 = 0;
    uint32_t v2 = 0;
    if (plan == P_SIMPLE) {
        if (end - pos < 4) return 0;
        kind = e->plan_kinds[key];
        value = rd32(d + pos); /* the payload's first field: MessageID, or Status for unwait (the plan checked it) */
    } else if (plan == P_WAIT_NEW) { /* ALPC WaitForNewMessage */
        if (pos + SIZEOF_ALPC_WAIT_NEW > end) return 0;
        if (rd32(d + pos + ALPC_WAIT_NEW_IS_SERVER_PORT)) flags |= F_SERVER;
        Py_ssize_t q0 = pos + SIZEOF_ALPC_WAIT_NEW, stop = q0;
        while (stop < end && d[stop] != 0) stop++;
        o1 = cached_text(e, T_LATIN1, d + q0, stop - q0);
        if (!o1) return -1;
        kind = K_WAIT_NEW;
    } else if (plan == P_REG || plan == P_REG_VALUE) { /* Registry, version >= 2 */
        /* the head, then KeyHandle (the KCB, a pointer), then KeyName */
        Py_ssize_t name_at = pos + SIZEOF_REG + ptr;
        if (version < 2 || name_at > end) return 0;
        i64 = (int64_t)rd64(d + pos + REG_INITIAL_TIME);
        value = rd32(d + pos + REG_STATUS);
        v2 = rd32(d + pos + REG_INDEX);
        q = ptr == 8 ? rd64(d + pos + SIZEOF_REG) : rd32(d + pos + SIZEOF_REG);
        Py_ssize_t stop;
        utf16_span(d, name_at, end, &stop);
        o1 = cached_text(e, T_UTF16, d + name_at, stop - name_at);
        if (!o1) return -1;
        if (plan == P_REG_VALUE) flags |= F_VALUE;
        Py_INCREF(entry);
        o2 = entry;
        kind = K_REG;
    } else {
        return 0;
    }
    Rec *r = rv_push(&e->in);
    if (!r) { Py_XDECREF(o1); Py_XDECREF(o2); return -1; }
    r->raw = raw;
    r->ts = ts;
    r->pid = pid == NO_ID ? NONE_ID : (int64_t)pid;
    r->tid = tid == NO_ID ? NONE_ID : (int64_t)tid;
    r->cpu = cpu;
    r->kind = (unsigned char)kind;
    r->opcode = (unsigned char)opcode;
    r->version = (unsigned char)version;
    r->flags = flags;
    r->v1 = value;
    r->v2 = v2;
    r->q = q;
    r->i = i64;
    r->o1 = o1;
    r->o2 = o2;
    return 1;
}

/* where the NUL-terminated UTF-16LE string at pos ends (as fr_utf16z's *next) */
static Py_ssize_t utf16_next(const unsigned char *d, Py_ssize_t pos, Py_ssize_t end) {
    Py_ssize_t stop = pos;
    while (stop + 1 < end) {
        if (d[stop] == 0 && d[stop + 1] == 0) return stop + 2;
        stop += 2;
    }
    return end;
}

int eng_add_rpc(Engine *e, uint64_t raw, int64_t ts, const unsigned char *d, Py_ssize_t pos, Py_ssize_t size, int cpu) {
    unsigned eid = rd16(d + pos + EVH_ID);
    Py_ssize_t off = pos + SIZEOF_EVH, end = pos + size;
    uint32_t v1 = 0, v2 = 0, v3 = 0, v4 = 0, v5 = 0;
    PyObject *iface = NULL, *endpoint = NULL;
    if (eid == 5 || eid == 6) {
        if (off + SIZEOF_RPC_START > end) return 0;
        const unsigned char *guid = d + off + RPC_START_INTERFACE_UUID;
        v1 = rd32(d + off + RPC_START_PROCNUM);
        v2 = rd32(d + off + RPC_START_PROTOCOL);
        off += SIZEOF_RPC_START;
        Py_ssize_t ep_at = 0, ep_next = 0;
        for (int i = 0; i < 3; i++) {
            if (off >= end) return 0;
            Py_ssize_t next = utf16_next(d, off, end);
            if (i == 1) {
                ep_at = off;
                ep_next = next;
            }
            off = next;
        }
        if (off + SIZEOF_RPC_START_TAIL > end) return 0;
        v3 = rd32(d + off + RPC_START_TAIL_AUTH_LEVEL);
        v4 = rd32(d + off + RPC_START_TAIL_AUTH_SERVICE);
        v5 = rd32(d + off + RPC_START_TAIL_IMPERSONATION_LEVEL);
        iface = cached_text(e, T_GUID, guid, 16);
        if (!iface) return -1;
        (void)ep_next;
        Py_ssize_t stop;
        utf16_span(d, ep_at, end, &stop);
        endpoint = cached_text(e, T_UTF16, d + ep_at, stop - ep_at);
        if (!endpoint) { Py_DECREF(iface); return -1; }
    } else {
        if (off + SIZEOF_RPC_STOP > end) return 0;
        v1 = rd32(d + off + RPC_STOP_STATUS);
    }
    Rec *r = rv_push(&e->in);
    if (!r) { Py_XDECREF(iface); Py_XDECREF(endpoint); return -1; }
    static const unsigned char zero16[16] = {0};
    r->raw = raw;
    r->ts = ts;
    uint32_t tid = rd32(d + pos + EVH_THREAD_ID), pid = rd32(d + pos + EVH_PROCESS_ID);
    r->pid = pid == NO_ID ? NONE_ID : (int64_t)pid;
    r->tid = tid == NO_ID ? NONE_ID : (int64_t)tid;
    r->cpu = cpu;
    r->kind = eid == 5 ? K_CSTART : eid == 6 ? K_SSTART : eid == 7 ? K_CSTOP : K_SSTOP;
    if (memcmp(d + pos + EVH_ACTIVITY_ID, zero16, 16) != 0) {
        r->flags |= F_ACT;
        memcpy(r->act, d + pos + EVH_ACTIVITY_ID, 16);
    }
    r->v1 = v1;
    r->v2 = v2;
    r->v3 = v3;
    r->v4 = v4;
    r->v5 = v5;
    r->o1 = iface;
    r->o2 = endpoint;
    return 1;
}

/* ------------------------------------------------------------------ merge */

static int raw_less(const Rec *a, const Rec *b) { return a->raw < b->raw; }

/* stable sort of v by raw (merge sort through tmp) */
static int stable_sort(RecVec *v, RecVec *tmp) {
    size_t n = v->n;
    if (n < 2) return 0;
    if (tmp->cap < n) {
        Rec *t = PyMem_Realloc(tmp->r, n * sizeof(Rec));
        if (!t) { PyErr_NoMemory(); return -1; }
        tmp->r = t;
        tmp->cap = n;
    }
    Rec *a = v->r, *b = tmp->r;
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) b[k++] = raw_less(&a[j], &a[i]) ? a[j++] : a[i++];
            while (i < mid) b[k++] = a[i++];
            while (j < hi) b[k++] = a[j++];
        }
        Rec *t = a;
        a = b;
        b = t;
    }
    if (a != v->r) { /* the result is in tmp: swap the buffers */
        Rec *t = v->r;
        size_t cap = v->cap;
        v->r = tmp->r;
        v->cap = tmp->cap;
        tmp->r = t;
        tmp->cap = cap;
    }
    return 0;
}

/* ------------------------------------------------------------------ Python methods */

static void engine_clear_state(Engine *e);

static int engine_init(Engine *e, PyObject *args, PyObject *kw) {
    static char *names[] = {"call_type", "event_type", "operations", "keep_all_for", "stacks", "other", "want",
                            "event_class", "unpaired", "ports", "endpoints",
                            "outside", "constants", "tap", NULL};
    PyObject *call_type, *event_type, *other, *want, *blame, *unpaired, *ports, *endpoints,
        *outside, *tap = Py_None;
    const char *operations;
    long long keep_all_for, send_window, pending_window, max_outside, creates_waiting;
    int stacks;
    if (e->calls) {
        PyErr_SetString(PyExc_RuntimeError, "an engine is set up once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!O!sLpOOOO!O!O!O!(LLLL)|O", names, &PyType_Type, &call_type,
                                     &PyType_Type, &event_type, &operations, &keep_all_for, &stacks, &other, &want,
                                     &blame, &PyDict_Type,
                                     &unpaired, &PyDict_Type, &ports, &PyDict_Type, &endpoints, &PyList_Type, &outside,
                                     &send_window, &pending_window, &max_outside, &creates_waiting, &tap))
        return -1;
    if (!PyType_IsSubtype((PyTypeObject *)call_type, &CallType)) {
        PyErr_SetString(PyExc_TypeError, "call_type must derive from CallBase");
        return -1;
    }
    if (!PyType_IsSubtype((PyTypeObject *)event_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "event_type must be a tuple type");
        return -1;
    }
    if (strcmp(operations, "all") && strcmp(operations, "failed") && strcmp(operations, "report")) {
        PyErr_Format(PyExc_ValueError, "operations must be 'all', 'failed' or 'report', not '%s'", operations);
        return -1;
    }
    if (creates_waiting < 1 || creates_waiting > (1 << 24) || max_outside < 0) {
        PyErr_SetString(PyExc_ValueError, "bad constants");
        return -1;
    }
    e->failed_only = !strcmp(operations, "failed");
    e->report = !strcmp(operations, "report");
    e->trim_after = e->report ? keep_all_for : 0;
    e->stacks = stacks;
    e->send_window = send_window;
    e->pending_window = pending_window;
    e->max_outside = max_outside;
#define KEEP(field, obj) do { Py_INCREF(obj); e->field = (void *)(obj); } while (0)
    KEEP(call_type, call_type);
    KEEP(event_type, event_type);
    KEEP(other_cb, other);
    KEEP(want_cb, want);
    KEEP(event_class, blame);
    KEEP(tap, tap);
    KEEP(unpaired, unpaired);
    KEEP(ports, ports);
    KEEP(endpoints, endpoints);
    KEEP(outside, outside);
#undef KEEP
    e->creates_cap = (size_t)creates_waiting;
    e->creates = PyMem_Calloc(e->creates_cap, sizeof(PyObject *));
    e->entries = PyMem_Calloc(65536, sizeof(PyObject *));
    e->plans = PyMem_Calloc(65536, 1);
    e->plan_kinds = PyMem_Calloc(65536, 1);
    e->texts = PyMem_Calloc(TEXT_SLOTS, sizeof(struct TextEnt));
    e->calls = PyList_New(0);
    e->kinds = PyDict_New();
    e->port_endpoints = PyDict_New();
    e->shared = PyDict_New();
    if (!e->creates || !e->entries || !e->plans || !e->plan_kinds || !e->texts) { PyErr_NoMemory(); return -1; }
    if (!e->calls || !e->kinds || !e->port_endpoints || !e->shared) return -1;
    if (hm_init(&e->live, 0) < 0 || hm_init(&e->pending, 1) < 0 || hm_init(&e->awaiting, 1) < 0 ||
        hm_init(&e->replied, 1) < 0 || hm_init(&e->p_serving, 1) < 0 || hm_init(&e->waiting, 1) < 0 ||
        hm_init(&e->port_of, 1) < 0 || hm_init(&e->last_op, 0) < 0 || hm_init(&e->in_client_call, 0) < 0 ||
        hm_init(&e->port_pids, 0) < 0 || hm_init(&e->open_client, 1) < 0 || hm_init(&e->last_client, 1) < 0 ||
        hm_init(&e->serving, 1) < 0 || hm_init(&e->taken, 1) < 0 || hm_init(&e->client_by_act, 1) < 0 ||
        hm_init(&e->server_by_act, 1) < 0 || hm_init(&e->evcache, 1) < 0 || hm_init(&e->kind_index, 0) < 0)
        return -1;
    return 0;
}

static void engine_clear_state(Engine *e) {
    rv_free(&e->in);
    rv_free(&e->tmp);
    for (size_t i = e->pstart; i < e->pend.n; i++) rec_release(&e->pend.r[i]);
    e->pend.n = 0;
    rv_free(&e->pend);
    e->pstart = 0;
    HMap *maps[] = {&e->live, &e->pending, &e->awaiting, &e->replied, &e->p_serving, &e->waiting, &e->port_of,
                    &e->last_op, &e->in_client_call, &e->port_pids, &e->open_client, &e->last_client, &e->serving,
                    &e->taken, &e->client_by_act, &e->server_by_act, &e->evcache, &e->kind_index};
    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) hm_free(maps[i]);
    if (e->creates) {
        for (size_t i = 0; i < e->creates_n; i++) Py_XDECREF(e->creates[(e->creates_head + i) % e->creates_cap]);
        PyMem_Free(e->creates);
        e->creates = NULL;
        e->creates_n = 0;
    }
    for (size_t i = 0; i < e->nkinds; i++) Py_DECREF(e->kind_objs[i]);
    PyMem_Free(e->kind_objs);
    PyMem_Free(e->kind_counts);
    e->kind_objs = NULL;
    e->kind_counts = NULL;
    e->nkinds = e->capkinds = 0;
    if (e->texts) {
        for (size_t i = 0; i < TEXT_SLOTS; i++) Py_XDECREF(e->texts[i].obj);
        PyMem_Free(e->texts);
        e->texts = NULL;
    }
    PyMem_Free(e->plans);
    PyMem_Free(e->plan_kinds);
    e->plans = e->plan_kinds = NULL;
    if (e->entries) {
        for (size_t i = 0; i < 65536; i++) Py_XDECREF(e->entries[i]);
        PyMem_Free(e->entries);
        e->entries = NULL;
    }
}

static int engine_traverse(Engine *e, visitproc visit, void *arg) {
    Py_VISIT(e->call_type);
    Py_VISIT(e->event_type);
    Py_VISIT(e->other_cb);
    Py_VISIT(e->want_cb);
    Py_VISIT(e->event_class);
    Py_VISIT(e->tap);
    Py_VISIT(e->unpaired);
    Py_VISIT(e->ports);
    Py_VISIT(e->endpoints);
    Py_VISIT(e->outside);
    Py_VISIT(e->calls);
    return 0;
}

static int engine_clear(Engine *e) {
    engine_clear_state(e);
    Py_CLEAR(e->call_type);
    Py_CLEAR(e->event_type);
    Py_CLEAR(e->other_cb);
    Py_CLEAR(e->want_cb);
    Py_CLEAR(e->event_class);
    Py_CLEAR(e->tap);
    Py_CLEAR(e->unpaired);
    Py_CLEAR(e->ports);
    Py_CLEAR(e->endpoints);
    Py_CLEAR(e->outside);
    Py_CLEAR(e->calls);
    Py_CLEAR(e->kinds);
    Py_CLEAR(e->port_endpoints);
    Py_CLEAR(e->shared);
    return 0;
}

static void engine_dealloc(Engine *e) {
    PyObject_GC_UnTrack(e);
    engine_clear(e);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static int ready(Engine *e) {
    if (!e->calls || !e->creates) {
        PyErr_SetString(PyExc_RuntimeError, "the engine is not set up (or was finished)");
        return 0;
    }
    return 1;
}

/* decode(data, cpu, skip, ctx) -> damage: one buffer's records into the engine's incoming list */
static PyObject *engine_decode(Engine *e, PyObject *args) {
    if (!ready(e)) return NULL;
    rv_clear(&e->in);
    PyObject *damage = fr_walk(args, e);
    if (!damage) rv_clear(&e->in);
    return damage;
}

/* commit(): merge what decode gave into the pending events (as EtlReader.batches) */
static PyObject *engine_commit(Engine *e, PyObject *unused) {
    if (!ready(e)) return NULL;
    RecVec *in = &e->in;
    if (!in->n) Py_RETURN_NONE;
    int sorted = 1;
    for (size_t i = 1; i < in->n; i++)
        if (in->r[i].raw < in->r[i - 1].raw) { sorted = 0; break; }
    if (!sorted && stable_sort(in, &e->tmp) < 0) return NULL;
    RecVec *p = &e->pend;
    /* drop what was emitted once it is half the array (amortized: no copy of the window per buffer) */
    if (e->pstart && e->pstart * 2 >= p->n) {
        memmove(p->r, p->r + e->pstart, (p->n - e->pstart) * sizeof(Rec));
        p->n -= e->pstart;
        e->pstart = 0;
    }
    size_t k = p->n; /* pending events before k stay where they are */
    if (p->n > e->pstart && in->r[0].raw < p->r[p->n - 1].raw) {
        /* the buffer overlaps the pending events: those up to its first timestamp stay (a stable
         * merge puts pending events first on equal timestamps), the rest merge with it */
        size_t a = e->pstart, b = p->n;
        while (a < b) { /* the first pending event later than the buffer's first */
            size_t m = a + (b - a) / 2;
            if (p->r[m].raw <= in->r[0].raw) a = m + 1;
            else b = m;
        }
        k = a;
    }
    size_t tail = p->n - k, total = k + tail + in->n;
    if (p->cap < total) {
        size_t cap = p->cap ? p->cap : 4096;
        while (cap < total) cap *= 2;
        Rec *r = PyMem_Realloc(p->r, cap * sizeof(Rec));
        if (!r) return PyErr_NoMemory();
        p->r = r;
        p->cap = cap;
    }
    if (!tail) {
        memcpy(p->r + p->n, in->r, in->n * sizeof(Rec));
    } else {
        RecVec *t = &e->tmp;
        size_t m = tail + in->n;
        if (t->cap < m) {
            Rec *r = PyMem_Realloc(t->r, m * sizeof(Rec));
            if (!r) return PyErr_NoMemory();
            t->r = r;
            t->cap = m;
        }
        size_t i = k, j = 0, o = 0;
        while (i < p->n && j < in->n) t->r[o++] = raw_less(&in->r[j], &p->r[i]) ? in->r[j++] : p->r[i++];
        while (i < p->n) t->r[o++] = p->r[i++];
        while (j < in->n) t->r[o++] = in->r[j++];
        memcpy(p->r + k, t->r, m * sizeof(Rec));
    }
    p->n = total;
    in->n = 0; /* the records moved: nothing to release */
    Py_RETURN_NONE;
}

/* emit(cut): the pending events earlier than raw timestamp ``cut`` (all with None) as one batch;
 * returns how many */
static PyObject *engine_emit(Engine *e, PyObject *arg) {
    if (!ready(e)) return NULL;
    size_t lo = e->pstart, hi = e->pend.n;
    if (arg != Py_None) {
        unsigned long long cut = PyLong_AsUnsignedLongLong(arg);
        if (cut == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
        size_t a = lo, b = hi; /* bisect_left */
        while (a < b) {
            size_t m = a + (b - a) / 2;
            if (e->pend.r[m].raw < cut) a = m + 1;
            else b = m;
        }
        hi = a;
    }
    size_t n = hi - lo;
    int rc = process(e, e->pend.r + lo, n);
    for (size_t i = lo; i < hi; i++) rec_release(&e->pend.r[i]);
    e->pstart = hi;
    if (rc < 0) return NULL;
    return PyLong_FromSize_t(n);
}

/* feed(events): one batch of Python events (the logfile header) */
static PyObject *engine_feed(Engine *e, PyObject *events) {
    if (!ready(e)) return NULL;
    PyObject *seq = PySequence_Fast(events, "feed takes a list of events");
    if (!seq) return NULL;
    RecVec batch = {0};
    int rc = 0;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    /* decode into e->in, then move the records into a batch of their own */
    rv_clear(&e->in);
    PyObject *zero = PyLong_FromLong(0);
    for (Py_ssize_t i = 0; i < n && zero; i++)
        if (eng_add_event(e, zero, PySequence_Fast_GET_ITEM(seq, i)) < 0) { rc = -1; break; }
    Py_XDECREF(zero);
    if (!zero) rc = -1;
    batch = e->in;
    e->in.r = NULL;
    e->in.n = e->in.cap = 0;
    if (rc == 0) rc = process(e, batch.r, batch.n);
    rv_free(&batch);
    Py_DECREF(seq);
    if (rc < 0) return NULL;
    Py_RETURN_NONE;
}

/* finish_prepare(pid_of): Correlator.finish up to the RPC-only fallback; returns the calls list */
static PyObject *engine_finish_prepare(Engine *e, PyObject *pid_of) {
    if (!ready(e)) return NULL;
    /* pairing.finish(): requests the end of the trace left unanswered */
    for (size_t i = 0; i <= e->pending.mask; i++) {
        HSlot *s = &e->pending.s[i];
        if (s->used && ((MsgObject *)s->v)->waited && lost(e, lost_never_received) < 0) return NULL;
    }
    PyObject *calls = e->calls;
    Py_ssize_t n = PyList_GET_SIZE(calls);
    for (Py_ssize_t i = 0; i < n; i++) {
        CallObject *c = (CallObject *)PyList_GET_ITEM(calls, i);
        MsgObject *msg = c->message;
        if (!msg) continue;
        if (msg->dropped) {
            /* the message turned out to be a server's reply whose request was not seen */
            c->message = NULL;
            if (msg->call == c) msg->call = NULL;
            Py_DECREF(msg);
            Py_ssize_t m = PyTuple_GET_SIZE(c->evidence), k = 0;
            PyObject *kept = PyTuple_New(m);
            if (!kept) return NULL;
            for (Py_ssize_t j = 0; j < m; j++) {
                PyObject *item = PyTuple_GET_ITEM(c->evidence, j);
                int same = PyObject_RichCompareBool(item, ev_rpc5_send, Py_EQ);
                if (same < 0) { Py_DECREF(kept); return NULL; }
                if (!same) {
                    Py_INCREF(item);
                    PyTuple_SET_ITEM(kept, k++, item);
                }
            }
            if (k != m && _PyTuple_Resize(&kept, k) < 0) return NULL;
            Py_SETREF(c->evidence, kept);
        } else if (c->from_message) {
            c->client_pid = msg->client_pid;
            c->client_tid = msg->client_tid;
            c->start = msg->send_ts != NONE_TS ? msg->send_ts : msg->client_receive_ts;
        }
    }
    if (e->failed_only) {
        for (Py_ssize_t i = 0; i < n; i++) {
            CallObject *c = (CallObject *)PyList_GET_ITEM(calls, i);
            if (!c->operations || PyList_GET_SIZE(c->operations) == 0) continue;
            PyObject *kept = PyList_New(0);
            if (!kept) return NULL;
            Py_ssize_t m = PyList_GET_SIZE(c->operations);
            for (Py_ssize_t j = 0; j < m; j++) {
                PyObject *op = PyList_GET_ITEM(c->operations, j);
                PyObject *st = fget(PyTuple_GET_ITEM(op, 9), k_status);
                if (!st && PyErr_Occurred()) { Py_DECREF(kept); return NULL; }
                int failed = is_failure(st);
                if (failed < 0 || (failed && PyList_Append(kept, op) < 0)) { Py_DECREF(kept); return NULL; }
            }
            if (PyList_GET_SIZE(kept) == 0) Py_CLEAR(kept);
            Py_XSETREF(c->operations, kept);
        }
    }
    if (pid_of != Py_None) {
        for (Py_ssize_t i = 0; i < n; i++) {
            CallObject *c = (CallObject *)PyList_GET_ITEM(calls, i);
            for (int side = 0; side < 2; side++) {
                int64_t *pid = side ? &c->server_pid : &c->client_pid, tid = side ? c->server_tid : c->client_tid;
                if (*pid != NONE_ID || tid == NONE_ID) continue;
                int64_t when = side ? (c->server_start != NONE_TS ? c->server_start : c->start) : c->start;
                PyObject *t = id_obj(tid), *w = ts_obj(when);
                PyObject *got = t && w ? PyObject_CallFunctionObjArgs(pid_of, t, w, NULL) : NULL;
                Py_XDECREF(t);
                Py_XDECREF(w);
                if (!got) return NULL;
                int64_t v;
                int bad = id_from(got, &v);
                Py_DECREF(got);
                if (bad < 0) return NULL;
                *pid = v;
            }
        }
    }
    Py_INCREF(calls);
    return calls;
}

/* whether _fallback_rpc_only has anything to do (a server-only call without a message) */
static PyObject *engine_needs_fallback(Engine *e, PyObject *unused) {
    if (!ready(e)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(e->calls);
    for (Py_ssize_t i = 0; i < n; i++) {
        CallObject *c = (CallObject *)PyList_GET_ITEM(e->calls, i);
        if (c->has_server && !c->has_client && !c->message) Py_RETURN_TRUE;
    }
    Py_RETURN_FALSE;
}

/* calls._score */
static int score(Engine *e, CallObject *c) {
    MsgObject *m = c->message;
    double conf;
    if (m && c->has_client && c->has_server) {
        conf = (m->reply_ts != NONE_TS || (!m->waited && m->reply_ts == NONE_TS)) ? 1.0 : 0.9;
        int in = PySequence_Contains(m->evidence, ev_reply_receive_lost);
        if (in < 0) return -1;
        if (in) conf = 0.8;
    } else if (m && c->has_server) conf = 0.8;
    else if (m && c->has_client) conf = m->server_tid != NONE_ID ? 0.7 : 0.4;
    else if (m) conf = 0.6;
    else if (c->has_client && c->has_server) conf = 0.5;
    else conf = 0.2;
    if (c->ambiguous && conf > 0.3) conf = 0.3;
    c->confidence = conf;
    if (m) {
        PyObject *both = PySequence_Concat(m->evidence, c->evidence);
        if (!both) return -1;
        Py_SETREF(c->evidence, both);
    }
    PyObject *key = PyTuple_CheckExact(c->evidence) ? (Py_INCREF(c->evidence), c->evidence) : PySequence_Tuple(c->evidence);
    if (!key) return -1;
    PyObject *hit = PyDict_GetItemWithError(e->shared, key);
    if (hit) {
        Py_INCREF(hit);
        Py_DECREF(key);
    } else {
        if (PyErr_Occurred()) { Py_DECREF(key); return -1; }
        hit = key;
        if (PyDict_GET_SIZE(e->shared) < 65536 && PyDict_SetItem(e->shared, key, key) < 0) { Py_DECREF(key); return -1; }
    }
    Py_SETREF(c->evidence, hit);
    if (c->start == NONE_TS) c->start = c->server_start;
    if (c->end == NONE_TS) c->end = c->server_end != NONE_TS ? c->server_end : (m ? m->reply_ts : NONE_TS);
    return 0;
}

/* finish_score(): (calls, alpc): the calls that were not merged, scored and numbered; with RPC
 * events in the trace, the ALPC exchanges that belong to no call apart (numbered after).  File
 * creates still waiting for their status go to the failures outside calls.  (Correlator.finish) */
static PyObject *engine_finish_score(Engine *e, PyObject *unused) {
    if (!ready(e)) return NULL;
    PyObject *out = PyList_New(0), *alpc = PyList_New(0);
    if (!out || !alpc) goto fail;
    Py_ssize_t n = PyList_GET_SIZE(e->calls);
    for (Py_ssize_t i = 0; i < n; i++) {
        CallObject *c = (CallObject *)PyList_GET_ITEM(e->calls, i);
        if (!PyObject_TypeCheck((PyObject *)c, &CallType)) {
            PyErr_SetString(PyExc_TypeError, "the engine's calls list holds a foreign object");
            goto fail;
        }
        if (c->merged) continue;
        if (score(e, c) < 0) goto fail;
        int apart = e->rpc_seen && alpc_only(c) && !c->parent && !(c->children && PyObject_IsTrue(c->children) == 1);
        if (PyList_Append(apart ? alpc : out, (PyObject *)c) < 0) goto fail;
    }
    Py_ssize_t ncalls = PyList_GET_SIZE(out);
    for (Py_ssize_t i = 0; i < ncalls; i++) ((CallObject *)PyList_GET_ITEM(out, i))->id = i + 1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(alpc); i++) ((CallObject *)PyList_GET_ITEM(alpc, i))->id = ncalls + i + 1;
    if (!e->rpc_seen) {
        for (Py_ssize_t i = 0; i < ncalls; i++) {
            CallObject *c = (CallObject *)PyList_GET_ITEM(out, i);
            if (!alpc_only(c) || !c->message->port_name || PyUnicode_GET_LENGTH(c->message->port_name) == 0) continue;
            PyObject *upper = PyObject_CallMethod(c->message->port_name, "upper", NULL);
            if (!upper) goto fail;
            Py_ssize_t m = PyUnicode_Tailmatch(upper, s_rpc_control, 0, PY_SSIZE_T_MAX, -1);
            Py_DECREF(upper);
            if (m < 0 || (m && add_evidence(e, &c->evidence, ev_rpc_control) < 0)) goto fail;
        }
    }
    for (size_t i = 0; i < e->creates_n; i++) {
        PyObject *ev = e->creates[(e->creates_head + i) % e->creates_cap];
        if (keep_outside(e, ev) < 0) goto fail;
    }
    PyObject *both = PyTuple_Pack(2, out, alpc);
    Py_DECREF(out);
    Py_DECREF(alpc);
    return both;
fail:
    Py_XDECREF(out);
    Py_XDECREF(alpc);
    return NULL;
}

static PyObject *engine_get_records(Engine *e, void *x) { return PyLong_FromLongLong(e->records); }
static PyObject *engine_get_first_ts(Engine *e, void *x) {
    if (!e->have_ts) Py_RETURN_NONE;
    return PyLong_FromLongLong(e->first_ts);
}
static PyObject *engine_get_last_ts(Engine *e, void *x) {
    if (!e->have_ts) Py_RETURN_NONE;
    return PyLong_FromLongLong(e->last_ts);
}
static PyObject *engine_get_outside_dropped(Engine *e, void *x) { return PyLong_FromLongLong(e->outside_dropped); }
static PyObject *engine_get_rpc_seen(Engine *e, void *x) { return PyBool_FromLong(e->rpc_seen); }
static PyObject *engine_get_kinds(Engine *e, void *x) {
    PyObject *d = PyDict_New();
    for (size_t i = 0; d && i < e->nkinds; i++) {
        PyObject *was = PyDict_GetItemWithError(d, e->kind_objs[i]);
        long long n = e->kind_counts[i];
        if (was) n += PyLong_AsLongLong(was);
        PyObject *v = PyErr_Occurred() ? NULL : PyLong_FromLongLong(n);
        if (!v || PyDict_SetItem(d, e->kind_objs[i], v) < 0) Py_CLEAR(d);
        Py_XDECREF(v);
    }
    return d;
}
static PyObject *engine_get_calls(Engine *e, void *x) { return obj_or_none(e->calls); }
static PyObject *engine_get_pending(Engine *e, void *x) { return PyLong_FromSize_t(e->pend.n - e->pstart); }
static PyObject *engine_get_containers(Engine *e, void *x) {
    if (!e->unpaired) Py_RETURN_NONE;
    return PyTuple_Pack(4, e->unpaired, e->ports, e->endpoints, e->outside);
}

static PyGetSetDef engine_getset[] = {
    {"records", (getter)engine_get_records, NULL, "events processed", NULL},
    {"first_ts", (getter)engine_get_first_ts, NULL, NULL, NULL},
    {"last_ts", (getter)engine_get_last_ts, NULL, NULL, NULL},
    {"outside_dropped", (getter)engine_get_outside_dropped, NULL, NULL, NULL},
    {"rpc_seen", (getter)engine_get_rpc_seen, NULL, "whether the trace had RPC events", NULL},
    {"kinds", (getter)engine_get_kinds, NULL, "events by kind, in order of first appearance", NULL},
    {"calls", (getter)engine_get_calls, NULL, NULL, NULL},
    {"pending", (getter)engine_get_pending, NULL, "events decoded and not yet emitted", NULL},
    {"containers", (getter)engine_get_containers, NULL, "(unpaired, ports, endpoints, outside)", NULL},
    {NULL},
};

static PyMethodDef engine_methods[] = {
    {"decode", (PyCFunction)engine_decode, METH_VARARGS, "decode(data, cpu, skip, ctx) -> damage"},
    {"commit", (PyCFunction)engine_commit, METH_NOARGS, "merge the decoded buffer into the pending events"},
    {"emit", (PyCFunction)engine_emit, METH_O, "emit(cut or None) -> events processed as one batch"},
    {"feed", (PyCFunction)engine_feed, METH_O, "feed(events): one batch of Python events"},
    {"finish_prepare", (PyCFunction)engine_finish_prepare, METH_O, "finish_prepare(pid_of) -> calls"},
    {"needs_fallback", (PyCFunction)engine_needs_fallback, METH_NOARGS, NULL},
    {"finish_score", (PyCFunction)engine_finish_score, METH_NOARGS, "finish_score() -> calls kept, scored, numbered"},
    {NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "rpctrace.sources.etl._fastrecords.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_dealloc = (destructor)engine_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The streamed correlation engine (see rpctrace/correlate/fast.py).",
    .tp_traverse = (traverseproc)engine_traverse,
    .tp_clear = (inquiry)engine_clear,
    .tp_methods = engine_methods,
    .tp_getset = engine_getset,
    .tp_init = (initproc)engine_init,
    .tp_new = PyType_GenericNew,
};

static PyObject *set_protocols(PyObject *self, PyObject *d) {
    if (!PyDict_Check(d)) {
        PyErr_SetString(PyExc_TypeError, "protocols must be a dict");
        return NULL;
    }
    Py_INCREF(d);
    Py_XSETREF(protocols_dict, d);
    Py_RETURN_NONE;
}

static PyObject *set_call_properties(PyObject *self, PyObject *args) {
    PyObject *f, *b;
    if (!PyArg_ParseTuple(args, "OO", &f, &b)) return NULL;
    Py_INCREF(f);
    Py_XSETREF(failures_fget, f);
    Py_INCREF(b);
    Py_XSETREF(blamed_fget, b);
    Py_RETURN_NONE;
}

static PyMethodDef fc_methods[] = {
    {"set_protocols", set_protocols, METH_O, "the protocol names CallBase.protocol_name uses"},
    {"set_call_properties", set_call_properties, METH_VARARGS,
     "set_call_properties(Call.failures.fget, Call.blamed.fget): what CallBase calls for calls with operations"},
    {NULL},
};

int fastcalls_init(PyObject *m) {
    if (PyType_Ready(&MsgType) < 0 || PyType_Ready(&CallType) < 0 || PyType_Ready(&EngineType) < 0) return -1;
    empty_tuple = PyTuple_New(0);
    if (!empty_tuple) return -1;
    EngineUnsupported = PyErr_NewException("rpctrace.sources.etl._fastrecords.EngineUnsupported", NULL, NULL);
    if (!EngineUnsupported) return -1;
#define TEXT(var, s) if (!(var = PyUnicode_FromString(s))) return -1
    TEXT(ev_alpc_reply, "alpc.reply");
    TEXT(ev_alpc_reply_other, "alpc.reply(other thread)");
    TEXT(ev_alpc_send, "alpc.send");
    TEXT(ev_reply_receive_lost, "alpc.reply(receive lost)");
    TEXT(ev_client_receive, "alpc.client_receive");
    TEXT(ev_reply_send_lost, "alpc.reply(request send lost)");
    TEXT(ev_client_receive_other, "alpc.client_receive(other thread)");
    TEXT(ev_alpc_receive, "alpc.receive");
    TEXT(ev_datagram, "datagram");
    TEXT(ev_rpc5_send, "rpc5\xe2\x86\x92" "alpc.send(same thread)");
    TEXT(ev_parent, "made while serving parent");
    TEXT(ev_activity57, "activity(5\xe2\x86\x94" "7)");
    TEXT(ev_rejected, "server side rejected: interface/opnum differ");
    TEXT(ev_receive_rpc6, "alpc.receive\xe2\x86\x92rpc6(same thread)");
    TEXT(ev_activity68, "activity(6\xe2\x86\x94" "8)");
    TEXT(lost_never_received, "request never received");
    TEXT(lost_reply_without_send, "reply without its send");
    TEXT(lost_receive_without_send, "receive without a send");
    TEXT(s_file_create, "file.create");
    TEXT(s_get, "get");
    TEXT(s_empty, "");
    TEXT(s_sync, "sync");
    TEXT(s_async, "async");
    TEXT(s_datagram, "datagram");
    TEXT(s_lrpc, "LRPC");
    TEXT(s_alpc, "ALPC");
    TEXT(hot_kinds[K_SEND], "alpc.send");
    TEXT(hot_kinds[K_RECEIVE], "alpc.receive");
    TEXT(hot_kinds[K_WAIT_REPLY], "alpc.wait_reply");
    TEXT(hot_kinds[K_UNWAIT], "alpc.unwait");
    TEXT(hot_kinds[K_WAIT_NEW], "alpc.wait_new");
    TEXT(hot_kinds[K_CSTART], "rpc.client_start");
    TEXT(hot_kinds[K_SSTART], "rpc.server_start");
    TEXT(hot_kinds[K_CSTOP], "rpc.client_stop");
    TEXT(hot_kinds[K_SSTOP], "rpc.server_stop");
    TEXT(s_raise_source, "RpcRaiseException (RPC event 9)");
    TEXT(s_eeinfo_source, "extended error information (RPC event 1)");
    TEXT(s_blame, "blame");
    TEXT(ev_rpc_control, "port under \\RPC Control\\: an RPC endpoint's");
    TEXT(s_rpc_control, "\\RPC CONTROL\\");
#undef TEXT
    Py_INCREF(&MsgType);
    Py_INCREF(&CallType);
    Py_INCREF(&EngineType);
    if (PyModule_AddObject(m, "Message", (PyObject *)&MsgType) < 0 ||
        PyModule_AddObject(m, "CallBase", (PyObject *)&CallType) < 0 ||
        PyModule_AddObject(m, "Engine", (PyObject *)&EngineType) < 0)
        return -1;
    Py_INCREF(EngineUnsupported);
    if (PyModule_AddObject(m, "EngineUnsupported", EngineUnsupported) < 0) return -1;
    for (PyMethodDef *d = fc_methods; d->ml_name; d++) {
        PyObject *f = PyCFunction_New(d, NULL);
        if (!f || PyModule_AddObject(m, d->ml_name, f) < 0) { Py_XDECREF(f); return -1; }
    }
    return fastrender_init(m);
}
