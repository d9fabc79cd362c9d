/*
 * Shared between the two files of the optional C module rpctrace.sources.etl._fastrecords:
 *
 *   _fastrecords.c  the record loop of one buffer (events as Python objects) and LZ77;
 *   _fastcalls.c    the streamed correlation engine: the same record loop hands it the records a
 *                   busy server's trace is made of as compact C records (no Python object per
 *                   event), it merges buffers in time order, assembles and correlates them, and
 *                   builds compact call objects (see rpctrace/correlate/fast.py).
 *
 * Every read is bounded by the buffer's length before it happens.  Structure offsets and sizes are
 * the macros of _layouts.h (<PREFIX>_<FIELD>, SIZEOF_<PREFIX>), never numbers written here; a field
 * that follows a pointer-sized one (SampledProfile's ThreadId, a KCB's key name) is placed by adding
 * the logger's pointer size, as the Python decoders do.
 */
#ifndef RPCTRACE_FASTRECORDS_H
#define RPCTRACE_FASTRECORDS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* offsets and sizes of the ETL headers and payloads read here, generated from the Python layout
 * tables (rpctrace/sources/etl/layouts.py) by tools/gen_c_layouts.py */
#include "_layouts.h"

#define NO_ID 0xFFFFFFFFu

static inline uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

/* The clock of records.Clock: identity offset, or base + (raw - raw0) * num // den (floor). */
typedef struct {
    int identity;
    long long offset;
    __int128 base, raw0, num, den;
} clock_t_;

/* The timestamp of raw clock value ``raw`` into *out; 0 when it is outside 0..INT64_MAX or the
 * arithmetic overflows (the Python clock then does it with its big integers). */
int fr_ts(const clock_t_ *c, uint64_t raw, int64_t *out);
/* GUID bytes (bytes_le order) as lowercase text with dashes. */
PyObject *fr_guid_text(const unsigned char *g);
/* NUL-terminated UTF-16LE at pos (see kernel.utf16z); sets *next past the terminator. */
PyObject *fr_utf16z(const unsigned char *d, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t *next);
/* The shared string equal to ``text`` (consumed), from the module's bounded cache. */
PyObject *fr_interned(PyObject *text);
/* A process or thread id as a shared int object, None for NO_ID. */
PyObject *fr_id(uint32_t v);

/* Field name strings (interned at module initialisation). */
extern PyObject *k_interface_uuid, *k_procnum, *k_protocol, *k_network_address, *k_endpoint, *k_options,
    *k_auth_level, *k_auth_service, *k_impersonation_level, *k_status, *k_activity_id, *k_is_server_port,
    *k_port_name, *k_initial_time, *k_index, *k_kcb, *k_key_name, *k_value_name, *k_event_ts, *k_stack_pid,
    *k_stack_tid, *k_frames, *k_message_id;

/* ------------------------------------------------------------------ the engine as a sink
 *
 * The record loop (fr_walk) calls these when it decodes into an engine instead of into lists.
 * eng_add_kernel and eng_add_rpc return 1 when they took the record as a compact C record, 0 when
 * the loop must build the Python event as usual (then handed over with eng_add_event), -1 on
 * error. */
typedef struct Engine Engine;
int eng_add_event(Engine *e, PyObject *raw, PyObject *ev); /* both borrowed */
/* the kernel decoding entry of group/opcode (a new reference), from the engine's table, else
 * the decoder's cache dict, else kernel_entry(group, opcode) */
PyObject *eng_entry(Engine *e, PyObject *kcache, PyObject *kernel_entry, unsigned group, unsigned opcode);
int eng_add_kernel(Engine *e, uint64_t raw, int64_t ts, uint32_t pid, uint32_t tid, int cpu, PyObject *entry,
                   unsigned group, unsigned opcode, unsigned version, const unsigned char *d, Py_ssize_t pos,
                   Py_ssize_t end, int ptr);
int eng_add_rpc(Engine *e, uint64_t raw, int64_t ts, const unsigned char *d, Py_ssize_t pos, Py_ssize_t size, int cpu);

/* The record loop of _fastrecords.decode: with ``sink`` NULL it returns (raws, events, damage);
 * with an engine it returns the damage list and the records go to the engine. */
PyObject *fr_walk(PyObject *args, Engine *sink);

/* module initialisation of _fastcalls.c: adds its types and exception to the module */
int fastcalls_init(PyObject *module);
/* module initialisation of _fastrender.c (called by fastcalls_init) */
int fastrender_init(PyObject *module);

#endif
