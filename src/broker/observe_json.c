/*
 * observe_json.c - the console's JSON endpoints (docs/observability.md
 * lists their fields). Names chosen by clients go through obs_json_str.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/observe_internal.h"
#include "core/clock.h"
#include "core/version.h"

static void json_key(obs_buf *o, const char *k) { obs_buf_printf(o, "\"%s\":", k); }

static void json_ids(obs_buf *o, const md_ids *ids) {
    obs_buf_puts(o, "[");
    for (int32_t i = 0; i < ids->n; i++)
        obs_buf_printf(o, "%s%d", i ? "," : "", ids->ids[i]);
    obs_buf_puts(o, "]");
}

void observe_api_cluster(broker *b, obs_buf *o) {
    md_image *img = bmeta_image(b->meta);
    obs_counters c;
    obs_totals(b->metrics, &c, NULL);
    net_stats ns;
    net_server_stats(b->net, &ns);
    int64_t offline = 0, under = 0;
    for (int32_t i = 0; i < md_image_topic_count(img); i++) {
        const md_topic *t = md_image_topic_at(img, i);
        for (int32_t j = 0; j < t->n_partitions; j++) {
            if (t->partitions[j].leader < 0)
                offline++;
            else if (t->partitions[j].isr.n < t->partitions[j].replicas.n)
                under++;
        }
    }
    obs_buf_puts(o, "{");
    json_key(o, "cluster_id");
    const char *cid = bmeta_cluster_id(b->meta);
    obs_json_str(o, cid ? cid : "", cid ? strlen(cid) : 0);
    obs_buf_printf(o, ",\"node_id\":%d,\"controller_id\":%d,\"version\":", b->cfg->node_id,
                   (b->cfg->process_roles & CONFIG_ROLE_CONTROLLER) ? b->cfg->node_id : -1);
    obs_json_str(o, sluice_version(), strlen(sluice_version()));
    obs_buf_printf(o,
                   ",\"uptime_ms\":%lld,\"topics\":%d,\"partitions\":%lld,\"under_replicated\":%lld,"
                   "\"offline\":%lld,\"connections\":%llu,\"messages_in\":%llu,\"bytes_in\":%llu,"
                   "\"bytes_out\":%llu,\"metadata_offset\":%lld,\"brokers\":[",
                   (long long)((clock_mono_ns() - b->observe->start_mono_ns) / 1000000),
                   md_image_topic_count(img), (long long)md_image_partition_count(img), (long long)under,
                   (long long)offline, (unsigned long long)ns.open, (unsigned long long)c.messages_in,
                   (unsigned long long)c.bytes_in, (unsigned long long)c.bytes_out,
                   (long long)md_image_offset(img));
    for (int32_t i = 0; i < md_image_broker_count(img) && i < OBSERVE_LIST_MAX; i++) {
        const md_broker *br = md_image_broker_at(img, i);
        obs_buf_printf(o, "%s{\"id\":%d,\"fenced\":%s,\"rack\":", i ? "," : "", br->id,
                       br->fenced ? "true" : "false");
        if (br->rack)
            obs_json_str(o, br->rack, strlen(br->rack));
        else
            obs_buf_puts(o, "null");
        obs_buf_puts(o, ",\"endpoints\":[");
        for (int32_t e = 0; e < br->n_endpoints; e++) {
            obs_buf_printf(o, "%s{\"name\":", e ? "," : "");
            obs_json_str(o, br->endpoints[e].name, strlen(br->endpoints[e].name));
            obs_buf_puts(o, ",\"host\":");
            obs_json_str(o, br->endpoints[e].host, strlen(br->endpoints[e].host));
            obs_buf_printf(o, ",\"port\":%u}", br->endpoints[e].port);
        }
        obs_buf_puts(o, "]}");
    }
    obs_buf_puts(o, "]}");
    md_image_unref(img);
}

void observe_api_topics(broker *b, obs_buf *o) {
    pwalk w;
    observe_walk_parts(b, &w, INT32_MAX, NULL);
    obs_buf_puts(o, "[");
    int32_t nt = md_image_topic_count(w.img);
    int shown = 0;
    for (int32_t i = 0; i < nt && shown < OBSERVE_LIST_MAX; i++) {
        const md_topic *t = md_image_topic_at(w.img, i);
        int64_t size = 0, end = 0, start = 0;
        int under = 0, offline = 0;
        for (int32_t j = 0; j < t->n_partitions; j++) {
            if (t->partitions[j].leader < 0)
                offline++;
            else if (t->partitions[j].isr.n < t->partitions[j].replicas.n)
                under++;
        }
        /* w.v is sorted as observe_cmp_pinfo says: find this topic's run by
         * binary search. */
        pinfo key = {
            .topic = t->name, .index = -1, .internal = ctrl_internal_topic((kstr){t->name, t->name_len})};
        int lo = 0, hi = w.n;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (observe_cmp_pinfo(&w.v[mid], &key) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (int k = lo; k < w.n && strcmp(w.v[k].topic, t->name) == 0; k++) {
            size += w.v[k].size;
            end += w.v[k].hw;
            start += w.v[k].log_start;
        }
        obs_counters c = {0};
        obs_topic *ot = obs_topic_find(b->metrics, t->name, (size_t)t->name_len);
        if (ot)
            obs_topic_counters(ot, &c);
        obs_buf_puts(o, shown++ ? ",{\"name\":" : "{\"name\":");
        obs_json_str(o, t->name, (size_t)t->name_len);
        obs_buf_printf(o,
                       ",\"internal\":%s,\"partitions\":%d,\"replication_factor\":%d,\"size\":%lld,"
                       "\"records\":%lld,\"under_replicated\":%d,\"offline\":%d,\"messages_in\":%llu,"
                       "\"bytes_in\":%llu,\"bytes_out\":%llu}",
                       ctrl_internal_topic((kstr){t->name, t->name_len}) ? "true" : "false", t->n_partitions,
                       t->n_partitions ? t->partitions[0].replicas.n : 0, (long long)size,
                       (long long)(end - start), under, offline, (unsigned long long)c.messages_in,
                       (unsigned long long)c.bytes_in, (unsigned long long)c.bytes_out);
    }
    obs_buf_puts(o, "]");
    observe_walk_done(&w);
}

bool observe_api_topic(broker *b, const char *name, obs_buf *o) {
    pwalk w;
    observe_walk_parts(b, &w, OBSERVE_LIST_MAX, name);
    const md_topic *t = md_image_topic(w.img, kstr_c(name));
    if (t == NULL) {
        observe_walk_done(&w);
        return false;
    }
    obs_buf_puts(o, "{\"name\":");
    obs_json_str(o, t->name, (size_t)t->name_len);
    obs_buf_puts(o, ",\"configs\":{");
    const md_resource *res = md_image_resource(w.img, MD_RESOURCE_TOPIC, t->name);
    for (int32_t i = 0; res != NULL && i < res->n; i++) {
        if (i)
            obs_buf_puts(o, ",");
        obs_json_str(o, res->items[i].key, strlen(res->items[i].key));
        obs_buf_puts(o, ":");
        const char *v = res->items[i].value ? res->items[i].value : "";
        obs_json_str(o, v, strlen(v));
    }
    obs_buf_puts(o, "},\"partitions\":[");
    int k = 0;
    for (int32_t j = 0; j < t->n_partitions && j < OBSERVE_LIST_MAX; j++) {
        const md_partition *mp = &t->partitions[j];
        while (k < w.n && w.v[k].index < mp->id)
            k++;
        const pinfo *e = k < w.n && w.v[k].index == mp->id ? &w.v[k] : NULL;
        obs_buf_printf(o, "%s{\"partition\":%d,\"leader\":%d,\"leader_epoch\":%d,\"replicas\":", j ? "," : "",
                       mp->id, mp->leader, mp->leader_epoch);
        json_ids(o, &mp->replicas);
        obs_buf_puts(o, ",\"isr\":");
        json_ids(o, &mp->isr);
        if (e != NULL)
            obs_buf_printf(o,
                           ",\"local\":true,\"online\":%s,\"log_start\":%lld,\"high_watermark\":%lld,"
                           "\"log_end\":%lld,\"size\":%lld,\"segments\":%d}",
                           e->online ? "true" : "false", (long long)e->log_start, (long long)e->hw,
                           (long long)e->leo, (long long)e->size, e->segments);
        else
            obs_buf_puts(o, ",\"local\":false}");
    }
    obs_buf_puts(o, "]}");
    observe_walk_done(&w);
    return true;
}

void observe_api_groups(broker *b, obs_buf *o) {
    gwalk w;
    observe_walk_groups(b, &w, OBSERVE_OFFSETS_MAX);
    obs_buf_puts(o, "[");
    for (int i = 0; i < w.n && !o->full; i++) {
        ginfo *g = &w.g[i];
        obs_buf_puts(o, i ? ",{\"group\":" : "{\"group\":");
        obs_json_str(o, g->group, strlen(g->group));
        obs_buf_puts(o, ",\"state\":");
        obs_json_str(o, g->state, strlen(g->state));
        obs_buf_puts(o, ",\"protocol_type\":");
        if (g->protocol_type)
            obs_json_str(o, g->protocol_type, strlen(g->protocol_type));
        else
            obs_buf_puts(o, "null");
        obs_buf_puts(o, ",\"protocol\":");
        if (g->protocol)
            obs_json_str(o, g->protocol, strlen(g->protocol));
        else
            obs_buf_puts(o, "null");
        obs_buf_printf(o, ",\"generation\":%d,\"members\":%d,\"lag\":%lld,\"offsets\":[", g->generation,
                       g->members, (long long)g->lag);
        for (int k = 0; k < g->n_off; k++) {
            goff *x = &w.o[g->first_off + k];
            obs_buf_puts(o, k ? ",{\"topic\":" : "{\"topic\":");
            obs_json_str(o, x->topic ? x->topic : "", x->topic ? strlen(x->topic) : 0);
            obs_buf_printf(o, ",\"partition\":%d,\"committed\":%lld,\"end\":%lld,\"lag\":", x->partition,
                           (long long)x->offset, (long long)x->end);
            if (x->end < 0)
                obs_buf_puts(o, "null}");
            else
                obs_buf_printf(o, "%lld}",
                               (long long)(x->offset >= 0 && x->end > x->offset ? x->end - x->offset : 0));
        }
        obs_buf_puts(o, "]}");
    }
    obs_buf_puts(o, "]");
    observe_walk_groups_done(&w);
}

void observe_api_history(broker *b, obs_buf *o) {
    struct observe *ob = b->observe;
    obs_buf_printf(o, "{\"interval_ms\":%d,\"samples\":[", OBSERVE_SAMPLE_MS);
    pthread_mutex_lock(&ob->mu);
    for (int i = 0; i < ob->ring_len; i++) {
        const sample *s = &ob->ring[(ob->ring_head + i) % OBSERVE_RING];
        obs_buf_printf(o, "%s[%lld,%llu,%llu,%llu]", i ? "," : "", (long long)s->t_ms,
                       (unsigned long long)s->messages_in, (unsigned long long)s->bytes_in,
                       (unsigned long long)s->bytes_out);
    }
    pthread_mutex_unlock(&ob->mu);
    /* The current values, so a chart has a point now. */
    obs_counters c;
    obs_totals(b->metrics, &c, NULL);
    obs_buf_printf(o, "],\"now\":[%lld,%llu,%llu,%llu]}", (long long)clock_wall_ms(),
                   (unsigned long long)c.messages_in, (unsigned long long)c.bytes_in,
                   (unsigned long long)c.bytes_out);
}
