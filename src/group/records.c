/*
 * records.c - `__consumer_offsets` keys and values. See records.h.
 */
#include "group/records.h"

#include <assert.h>
#include <string.h>

/* Allocates n bytes from a and points a writer at them. */
static int writer_for(arena *a, size_t n, wire_writer *w, kbytes *out) {
    if (n > INT32_MAX)
        return -1;
    uint8_t *buf = arena_alloc(a, n ? n : 1);
    if (buf == NULL)
        return -1;
    wire_writer_init(w, buf, n);
    out->ptr = buf;
    out->len = (int32_t)n;
    return 0;
}

static int finish(wire_writer *w, kbytes *out) {
    assert(w->err != WIRE_OK || w->len == (size_t)out->len);
    return w->err == WIRE_OK ? 0 : -1;
}

int grec_encode_offset_key(arena *a, kstr group, kstr topic, int32_t partition, kbytes *out) {
    wire_writer w;
    size_t n = 2 + wire_string_size(group, false) + wire_string_size(topic, false) + 4;
    if (writer_for(a, n, &w, out) != 0)
        return -1;
    wire_write_i16(&w, GREC_KEY_OFFSET_V1);
    wire_write_string(&w, group, false, false);
    wire_write_string(&w, topic, false, false);
    wire_write_i32(&w, partition);
    return finish(&w, out);
}

int grec_encode_group_key(arena *a, kstr group, kbytes *out) {
    wire_writer w;
    if (writer_for(a, 2 + wire_string_size(group, false), &w, out) != 0)
        return -1;
    wire_write_i16(&w, GREC_KEY_GROUP);
    wire_write_string(&w, group, false, false);
    return finish(&w, out);
}

int grec_encode_offset_value(arena *a, const grec_offset *v, kbytes *out) {
    wire_writer w;
    kstr meta = v->metadata.len < 0 ? kstr_c("") : v->metadata;
    /* v1 carries an explicit expiry, v3 the leader epoch; Kafka picks the same way. */
    bool v1 = v->expire_ts >= 0;
    size_t n = 2 + 8 + (v1 ? 0 : 4) + wire_string_size(meta, false) + 8 + (v1 ? 8 : 0);
    if (writer_for(a, n, &w, out) != 0)
        return -1;
    wire_write_i16(&w, v1 ? 1 : 3);
    wire_write_i64(&w, v->offset);
    if (!v1)
        wire_write_i32(&w, v->leader_epoch);
    wire_write_string(&w, meta, false, false);
    wire_write_i64(&w, v->commit_ts);
    if (v1)
        wire_write_i64(&w, v->expire_ts);
    return finish(&w, out);
}

static kstr nn(kstr s) { return s.len < 0 ? kstr_c("") : s; }

int grec_encode_group_value(arena *a, const grec_group *v, kbytes *out) {
    wire_writer w;
    size_t n = 2 + wire_string_size(nn(v->protocol_type), false) + 4 + wire_string_size(v->protocol, false) +
               wire_string_size(v->leader, false) + 8 + 4;
    for (int32_t i = 0; i < v->n_members; i++) {
        const grec_member *m = &v->members[i];
        n += wire_string_size(m->member_id, false) + wire_string_size(m->instance_id, false) +
             wire_string_size(nn(m->client_id), false) + wire_string_size(nn(m->client_host), false) + 8 +
             wire_bytes_size(m->subscription.len < 0 ? (kbytes){NULL, 0} : m->subscription, false) +
             wire_bytes_size(m->assignment.len < 0 ? (kbytes){NULL, 0} : m->assignment, false);
    }
    if (writer_for(a, n, &w, out) != 0)
        return -1;
    wire_write_i16(&w, 3);
    wire_write_string(&w, nn(v->protocol_type), false, false);
    wire_write_i32(&w, v->generation);
    wire_write_string(&w, v->protocol, false, true);
    wire_write_string(&w, v->leader, false, true);
    wire_write_i64(&w, v->state_ts);
    wire_write_i32(&w, v->n_members);
    for (int32_t i = 0; i < v->n_members; i++) {
        const grec_member *m = &v->members[i];
        wire_write_string(&w, m->member_id, false, false);
        wire_write_string(&w, m->instance_id, false, true);
        wire_write_string(&w, nn(m->client_id), false, false);
        wire_write_string(&w, nn(m->client_host), false, false);
        wire_write_i32(&w, m->rebalance_timeout_ms);
        wire_write_i32(&w, m->session_timeout_ms);
        wire_write_bytes(&w, m->subscription.len < 0 ? (kbytes){NULL, 0} : m->subscription, false, false);
        wire_write_bytes(&w, m->assignment.len < 0 ? (kbytes){NULL, 0} : m->assignment, false, false);
    }
    return finish(&w, out);
}

int grec_decode_key(kbytes in, grec_key *out) {
    if (in.len < 2)
        return -1;
    wire_reader r;
    wire_reader_init(&r, in.ptr, (size_t)in.len);
    memset(out, 0, sizeof *out);
    out->version = wire_read_i16(&r);
    out->group = wire_read_string(&r, false, false);
    switch (out->version) {
    case GREC_KEY_OFFSET_V0:
    case GREC_KEY_OFFSET_V1:
        out->topic = wire_read_string(&r, false, false);
        out->partition = wire_read_i32(&r);
        break;
    case GREC_KEY_GROUP:
        break;
    default:
        return -1;
    }
    return r.err == WIRE_OK && wire_remaining(&r) == 0 ? 0 : -1;
}

int grec_decode_offset_value(kbytes in, grec_offset *out) {
    if (in.len < 2)
        return -1;
    wire_reader r;
    wire_reader_init(&r, in.ptr, (size_t)in.len);
    int16_t ver = wire_read_i16(&r);
    *out = (grec_offset){.leader_epoch = -1, .expire_ts = -1};
    out->offset = wire_read_i64(&r);
    if (ver >= 3)
        out->leader_epoch = wire_read_i32(&r);
    out->metadata = wire_read_string(&r, false, false);
    out->commit_ts = wire_read_i64(&r);
    if (ver == 1)
        out->expire_ts = wire_read_i64(&r);
    /* Newer versions are flexible and may carry tagged fields after these. */
    if (ver < 0 || ver > 4)
        return -1;
    return r.err == WIRE_OK ? 0 : -1;
}

int grec_decode_group_value(kbytes in, arena *a, grec_group *out) {
    if (in.len < 2)
        return -1;
    wire_reader r;
    wire_reader_init(&r, in.ptr, (size_t)in.len);
    memset(out, 0, sizeof *out);
    int16_t ver = wire_read_i16(&r);
    if (ver < 0 || ver > 3)
        return -1;
    out->protocol_type = wire_read_string(&r, false, false);
    out->generation = wire_read_i32(&r);
    out->protocol = wire_read_string(&r, false, true);
    out->leader = wire_read_string(&r, false, true);
    out->state_ts = ver >= 2 ? wire_read_i64(&r) : -1;
    int32_t n = wire_read_array_len(&r, false, false);
    if (r.err != WIRE_OK || n < 0 || n > GREC_MEMBERS_MAX)
        return -1;
    if (n > 0) {
        out->members = arena_calloc(a, (size_t)n, sizeof *out->members);
        if (out->members == NULL)
            return -1;
    }
    out->n_members = n;
    for (int32_t i = 0; i < n && r.err == WIRE_OK; i++) {
        grec_member *m = &out->members[i];
        m->member_id = wire_read_string(&r, false, false);
        m->instance_id = ver >= 3 ? wire_read_string(&r, false, true) : KSTR_NULL;
        m->client_id = wire_read_string(&r, false, false);
        m->client_host = wire_read_string(&r, false, false);
        m->rebalance_timeout_ms = ver >= 1 ? wire_read_i32(&r) : -1;
        m->session_timeout_ms = wire_read_i32(&r);
        if (ver == 0)
            m->rebalance_timeout_ms = m->session_timeout_ms;
        m->subscription = wire_read_bytes(&r, false, false);
        m->assignment = wire_read_bytes(&r, false, false);
    }
    return r.err == WIRE_OK ? 0 : -1;
}
