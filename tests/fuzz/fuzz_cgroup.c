/*
 * fuzz_cgroup.c - libFuzzer target for what the group coordinator reads
 * back from `__consumer_offsets` for consumer groups of the KIP-848
 * protocol (group/cgroup.h: the ConsumerGroup* keys and values, key
 * versions 3-8), which any client that can produce to the topic may
 * write. The input is a list of records, each [u16 key length][u16 value
 * length, 0xffff: tombstone][key][value]; a machine loads them, then serves
 * a heartbeat of a new member, a heartbeat of the member the log names
 * first, and a tick past every session. Nothing may crash or trip an
 * invariant, whatever the records hold.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "group/coordinator.h"

static gcoord *g_c;
static uint64_t g_id;

static uint64_t on_append(void *ctx, const gcoord_record *recs, int n, bool snapshot, int16_t *err) {
    (void)ctx;
    (void)recs;
    (void)n;
    (void)snapshot;
    (void)err;
    uint64_t id = ++g_id;
    gcoord_append_done(g_c, id, 0, 0);
    return id;
}

static void on_hb(void *ctx, void *token, const gcoord_cg_result *res) {
    (void)ctx;
    (void)token;
    (void)res;
}

static bool v_by_name(void *ctx, kstr name, cg_topic_info *out) {
    (void)ctx;
    if (!kstr_eq_c(name, "t"))
        return false;
    kuuid u;
    memset(&u, 0, sizeof u);
    u.b[15] = 1;
    *out = (cg_topic_info){kstr_c("t"), u, 3};
    return true;
}
static int32_t v_count(void *ctx) {
    (void)ctx;
    return 1;
}
static bool v_at(void *ctx, int32_t i, cg_topic_info *out) {
    (void)i;
    return v_by_name(ctx, kstr_c("t"), out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gcoord_config cfg;
    gcoord_config_default(&cfg);
    gcoord_sink sink = {.append = on_append, .cg_heartbeat_done = on_hb};
    gcoord *c = gcoord_create(&cfg, &sink);
    if (c == NULL)
        return 0;
    g_c = c;
    gcoord_load_begin(c, 1, 0);
    char first_group[64] = "g", first_member[64] = "m";
    bool named = false;
    size_t i = 0;
    while (i + 4 <= size) {
        size_t kl = (size_t)data[i] << 8 | data[i + 1];
        size_t vl = (size_t)data[i + 2] << 8 | data[i + 3];
        bool tomb = vl == 0xffff;
        i += 4;
        if (tomb)
            vl = 0;
        if (i + kl + vl > size)
            break;
        kbytes key = {data + i, (int32_t)kl};
        kbytes val = tomb ? KBYTES_NULL : (kbytes){data + i + kl, (int32_t)vl};
        int16_t ver;
        kstr gid, mid;
        if (!named && cg_decode_key(key, &ver, &gid, &mid) == 0 && gid.len > 0 && gid.len < 64 &&
            mid.len > 0 && mid.len < 64) {
            memcpy(first_group, gid.ptr, (size_t)gid.len);
            first_group[gid.len] = '\0';
            memcpy(first_member, mid.ptr, (size_t)mid.len);
            first_member[mid.len] = '\0';
            named = true;
        }
        gcoord_load_record(c, key, val);
        i += kl + vl;
    }
    gcoord_load_end(c, 0);
    cg_topics tv = {NULL, 1, v_by_name, v_count, v_at};
    kstr names[1] = {kstr_c("t")};
    asg_parts none = {NULL, 0};
    int token = 0;
    cg_heartbeat_req r = {.member_id = kstr_c("fuzz-new"),
                          .member_epoch = 0,
                          .instance_id = KSTR_NULL,
                          .rack_id = KSTR_NULL,
                          .rebalance_timeout_ms = 1000,
                          .sub_names = names,
                          .n_sub_names = 1,
                          .regex = KSTR_NULL,
                          .assignor = KSTR_NULL,
                          .owned = &none,
                          .client_id = kstr_c("f"),
                          .client_host = kstr_c("h"),
                          .version = 1,
                          .new_member_id = KSTR_NULL};
    gcoord_cg_heartbeat(c, kstr_c(first_group), &r, &tv, &token, 1);
    const gcoord_group *g = gcoord_find(c, kstr_c(first_group));
    const cg_member *m = g && g->cg ? cg_find_member(g->cg, kstr_c(first_member)) : NULL;
    if (m) {
        r.member_id = kstr_c(first_member);
        r.member_epoch = m->epoch;
        r.n_sub_names = -1;
        r.owned = &m->assigned;
        asg_parts copy;
        if (asg_parts_copy(&copy, &m->assigned) == 0) {
            r.owned = &copy;
            gcoord_cg_heartbeat(c, kstr_c(first_group), &r, &tv, &token, 2);
            asg_parts_free(&copy);
        }
    }
    gcoord_tick(c, 10LL * 1000 * 1000 * 1000);
    gcoord_shutdown(c, 15);
    gcoord_destroy(c);
    return 0;
}
