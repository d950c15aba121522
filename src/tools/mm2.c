/*
 * mm2.c - MirrorMaker 2 record layouts, replication policies and the offset
 * map. See mm2.h.
 */
#include "tools/mm2.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

static void put_str(wire_writer *w, const char *s) {
    size_t n = strlen(s);
    if (n > INT16_MAX) {
        w->err = WIRE_EINVAL;
        return;
    }
    wire_write_string(w, (kstr){s, (int32_t)n}, false, false);
}

static size_t done(const wire_writer *w) { return w->err ? 0 : w->len; }

size_t mm2_offset_sync_key(uint8_t *buf, size_t cap, const char *topic, int32_t partition) {
    wire_writer w;
    wire_writer_init(&w, buf, cap);
    put_str(&w, topic);
    wire_write_i32(&w, partition);
    return done(&w);
}

size_t mm2_offset_sync_value(uint8_t *buf, size_t cap, int64_t upstream, int64_t downstream) {
    wire_writer w;
    wire_writer_init(&w, buf, cap);
    wire_write_i64(&w, upstream);
    wire_write_i64(&w, downstream);
    return done(&w);
}

size_t mm2_checkpoint_key(uint8_t *buf, size_t cap, const char *group, const char *topic, int32_t partition) {
    wire_writer w;
    wire_writer_init(&w, buf, cap);
    put_str(&w, group);
    put_str(&w, topic);
    wire_write_i32(&w, partition);
    return done(&w);
}

size_t mm2_checkpoint_value(uint8_t *buf, size_t cap, int64_t upstream, int64_t downstream,
                            const char *metadata) {
    wire_writer w;
    wire_writer_init(&w, buf, cap);
    wire_write_i16(&w, MM2_VERSION);
    wire_write_i64(&w, upstream);
    wire_write_i64(&w, downstream);
    put_str(&w, metadata ? metadata : "");
    return done(&w);
}

size_t mm2_heartbeat_key(uint8_t *buf, size_t cap, const char *source_alias, const char *target_alias) {
    wire_writer w;
    wire_writer_init(&w, buf, cap);
    put_str(&w, source_alias);
    put_str(&w, target_alias);
    return done(&w);
}

size_t mm2_heartbeat_value(uint8_t *buf, size_t cap, int64_t timestamp_ms) {
    wire_writer w;
    wire_writer_init(&w, buf, cap);
    wire_write_i16(&w, MM2_VERSION);
    wire_write_i64(&w, timestamp_ms);
    return done(&w);
}

bool mm2_offset_sync_decode(const void *key, size_t klen, const void *val, size_t vlen,
                            mm2_offset_sync *out) {
    wire_reader k, v;
    wire_reader_init(&k, key, key ? klen : 0);
    wire_reader_init(&v, val, val ? vlen : 0);
    out->topic = wire_read_string(&k, false, false);
    out->partition = wire_read_i32(&k);
    out->upstream = wire_read_i64(&v);
    out->downstream = wire_read_i64(&v);
    return key && val && k.err == 0 && v.err == 0;
}

bool mm2_checkpoint_decode(const void *key, size_t klen, const void *val, size_t vlen, mm2_checkpoint *out) {
    wire_reader k, v;
    wire_reader_init(&k, key, key ? klen : 0);
    wire_reader_init(&v, val, val ? vlen : 0);
    out->group = wire_read_string(&k, false, false);
    out->topic = wire_read_string(&k, false, false);
    out->partition = wire_read_i32(&k);
    int16_t version = wire_read_i16(&v);
    out->upstream = wire_read_i64(&v);
    out->downstream = wire_read_i64(&v);
    out->metadata = wire_read_string(&v, false, false);
    return key && val && k.err == 0 && v.err == 0 && version == MM2_VERSION;
}

bool mm2_heartbeat_decode(const void *key, size_t klen, const void *val, size_t vlen, mm2_heartbeat *out) {
    wire_reader k, v;
    wire_reader_init(&k, key, key ? klen : 0);
    wire_reader_init(&v, val, val ? vlen : 0);
    out->source_alias = wire_read_string(&k, false, false);
    out->target_alias = wire_read_string(&k, false, false);
    int16_t version = wire_read_i16(&v);
    out->timestamp_ms = wire_read_i64(&v);
    return key && val && k.err == 0 && v.err == 0 && version == MM2_VERSION;
}

/* ---- replication policy ---------------------------------------------- */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

bool mm2_is_internal(const char *topic) {
    return ends_with(topic, ".internal") || ends_with(topic, "-internal") || strncmp(topic, "__", 2) == 0 ||
           topic[0] == '.';
}

bool mm2_is_heartbeats(const mm2_policy *p, const char *topic) {
    if (strcmp(topic, "heartbeats") == 0)
        return true;
    char suffix[sizeof p->separator + 16];
    snprintf(suffix, sizeof suffix, "%sheartbeats", p->separator);
    return ends_with(topic, suffix);
}

bool mm2_remote_topic(const mm2_policy *p, const char *source_alias, const char *topic, char *out,
                      size_t cap) {
    size_t cap_eff = cap < MM2_NAME_MAX + 1 ? cap : MM2_NAME_MAX + 1;
    int n;
    if (p->identity && !mm2_is_heartbeats(p, topic))
        n = snprintf(out, cap_eff, "%s", topic);
    else
        n = snprintf(out, cap_eff, "%s%s%s", source_alias, p->separator, topic);
    return n > 0 && (size_t)n < cap_eff;
}

bool mm2_topic_source(const mm2_policy *p, const char *topic, char *alias, size_t cap) {
    if (p->identity && !mm2_is_heartbeats(p, topic))
        return false;
    const char *sep = strstr(topic, p->separator);
    if (sep == NULL || sep == topic || p->separator[0] == '\0')
        return false;
    size_t n = (size_t)(sep - topic);
    if (n >= cap)
        return false;
    memcpy(alias, topic, n);
    alias[n] = '\0';
    return true;
}

bool mm2_is_cycle(const mm2_policy *p, const char *topic, const char *target_alias) {
    char alias[MM2_NAME_MAX + 1];
    size_t seplen = strlen(p->separator);
    /* Each hop strips one "<alias><sep>" prefix; a name has at most
     * MM2_NAME_MAX characters, so the loop is bounded by that. */
    for (int hop = 0; hop <= MM2_NAME_MAX && mm2_topic_source(p, topic, alias, sizeof alias); hop++) {
        if (strcmp(alias, target_alias) == 0)
            return true;
        topic += strlen(alias) + seplen;
    }
    return false;
}

/* ---- offset map ------------------------------------------------------- */

bool mm2_runs_add(mm2_runs *m, int64_t up, int64_t down) {
    assert(up >= 0 && down >= 0);
    if (m->n > 0) {
        mm2_run *last = &m->r[m->n - 1];
        if (up == last->up + last->len && down == last->down + last->len) {
            last->len++;
            return false;
        }
    }
    /* A restart re-copies from the committed position: runs starting at or
     * after it are superseded by the new one (which is as valid and later). */
    while (m->n > 0 && m->r[m->n - 1].up >= up)
        m->n--;
    if (m->n == MM2_RUNS_MAX) {
        /* Full: drop the run whose loss leaves the smallest hole, never the
         * newest; history stays covered, ever more coarsely (a coarser map
         * only means more records read again after a failover). */
        int best = 1;
        for (int i = 2; i < m->n - 1; i++) {
            if (m->r[i + 1].up - m->r[i - 1].up < m->r[best + 1].up - m->r[best - 1].up)
                best = i;
        }
        memmove(&m->r[best], &m->r[best + 1], sizeof m->r[0] * (size_t)(m->n - best - 1));
        m->n--;
    }
    assert(m->n == 0 || m->r[m->n - 1].up < up);
    m->r[m->n++] = (mm2_run){up, down, 1};
    return true;
}

int64_t mm2_runs_translate(const mm2_runs *m, int64_t U) {
    for (int i = m->n - 1; i >= 0; i--) {
        const mm2_run *r = &m->r[i];
        if (r->up > U)
            continue;
        if (U < r->up + r->len)
            return r->down + (U - r->up);
        return r->down + r->len;
    }
    return -1;
}
