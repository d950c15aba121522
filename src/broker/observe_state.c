/*
 * observe_state.c - copies what the pages show out of the broker: the
 * partitions (under each one's lock, a few numbers each), the groups and
 * their committed offsets (under each shard's lock), and the process
 * figures from /proc/self. See observe_internal.h.
 */
#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/observe_internal.h"
#include "broker/groups.h"
#include "broker/partitions.h"
#include "core/clock.h"

static bool walk_part(void *ctx, rpart *p) {
    pwalk *w = ctx;
    if (atomic_load(&p->removed))
        return true;
    if (w->only_topic != NULL && strcmp(p->topic, w->only_topic) != 0)
        return true;
    if (w->n == w->max) {
        w->dropped++;
        return true;
    }
    if (w->n == w->cap) {
        int ncap = w->cap ? w->cap * 2 : 256;
        pinfo *nv = realloc(w->v, (size_t)ncap * sizeof *nv);
        if (nv == NULL) {
            w->dropped++;
            return true;
        }
        w->v = nv;
        w->cap = ncap;
    }
    const md_topic *t = md_image_topic_by_id(w->img, p->topic_id);
    if (t == NULL)
        return true; /* not in this image: gone, or newer than it */
    pinfo *e = &w->v[w->n++];
    memset(e, 0, sizeof *e);
    e->topic = t->name;
    e->index = p->index;
    e->internal = p->internal;
    e->mp = md_topic_partition(t, p->index);
    rpart_lock(p);
    const replica_state *st = replica_get_state(p->r);
    e->role = st->role;
    e->hw = st->hw;
    e->leo = st->leo;
    e->log_start = st->log_start;
    plog *l = atomic_load(&p->log);
    e->online = l != NULL && !plog_is_offline(l);
    if (l != NULL) {
        e->size = plog_size_bytes(l);
        e->segments = plog_segment_count(l);
    }
    rpart_unlock(p);
    e->waiters = atomic_load(&p->waiters);
    return true;
}

int observe_cmp_pinfo(const void *a, const void *b) {
    const pinfo *x = a, *y = b;
    if (x->internal != y->internal)
        return x->internal ? 1 : -1;
    int c = strcmp(x->topic, y->topic);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* The partitions this broker holds (at most max), sorted by topic and
 * index, internal topics last (so a series cap shows the users' topics
 * first); w->img is referenced (release with walk_done). */
void observe_walk_parts(broker *b, pwalk *w, int max, const char *only_topic) {
    memset(w, 0, sizeof *w);
    w->img = bmeta_image(b->meta);
    w->max = max;
    w->only_topic = only_topic;
    parts_each(bmeta_parts(b->meta), walk_part, w);
    if (w->n > 1)
        qsort(w->v, (size_t)w->n, sizeof *w->v, observe_cmp_pinfo);
}

void observe_walk_done(pwalk *w) {
    free(w->v);
    md_image_unref(w->img);
}

static char *dupn(const char *s) { return s ? strdup(s) : NULL; }

static bool walk_group(void *ctx, const gcoord_group *g) {
    gwalk *w = ctx;
    if (w->n == OBSERVE_LIST_MAX) {
        w->dropped++;
        return true;
    }
    if (w->n == w->cap) {
        int ncap = w->cap ? w->cap * 2 : 64;
        ginfo *ng = realloc(w->g, (size_t)ncap * sizeof *ng);
        if (ng == NULL) {
            w->failed = true;
            return false;
        }
        w->g = ng;
        w->cap = ncap;
    }
    ginfo *e = &w->g[w->n++];
    memset(e, 0, sizeof *e);
    e->group = dupn(g->id);
    e->state = gcoord_state_name(g->state);
    e->protocol_type = dupn(g->protocol_type);
    e->protocol = dupn(g->protocol);
    e->generation = g->generation;
    e->members = g->n_members;
    e->first_off = w->no;
    for (int32_t bkt = 0; bkt < g->n_obuckets; bkt++) {
        for (const gcoord_offset_entry *oe = g->obuckets[bkt]; oe != NULL; oe = oe->next) {
            if (w->no == w->maxo) {
                w->dropped++;
                continue;
            }
            if (w->no == w->capo) {
                int ncap = w->capo ? w->capo * 2 : 256;
                goff *no = realloc(w->o, (size_t)ncap * sizeof *no);
                if (no == NULL) {
                    w->dropped++;
                    continue;
                }
                w->o = no;
                w->capo = ncap;
            }
            goff *x = &w->o[w->no++];
            x->group = e->group;
            x->topic = dupn(oe->topic);
            x->partition = oe->partition;
            x->offset = oe->offset;
            x->end = -1;
        }
    }
    e->n_off = w->no - e->first_off;
    return true;
}

static int cmp_goff(const void *a, const void *b) {
    const goff *x = a, *y = b;
    int c = strcmp(x->topic ? x->topic : "", y->topic ? y->topic : "");
    return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

/* Every live group with its committed offsets (at most max_offsets in
 * all), each offset with its partition's end. */
void observe_walk_groups(broker *b, gwalk *w, int max_offsets) {
    memset(w, 0, sizeof *w);
    w->maxo = max_offsets;
    int32_t n = groups_shard_count(b);
    for (int32_t i = 0; i < n; i++) {
        groups_shard *s = groups_lock_index(b, i);
        if (s == NULL)
            continue;
        if (s->sm != NULL && gcoord_active(s->sm))
            gcoord_each_group(s->sm, walk_group, w);
        groups_unlock(s);
        if (w->failed)
            break;
    }
    /* The ends: one image, one partition lookup per offset. */
    md_image *img = bmeta_image(b->meta);
    parts *ps = bmeta_parts(b->meta);
    for (int gi = 0; gi < w->n; gi++) {
        ginfo *g = &w->g[gi];
        goff *o = w->o + g->first_off;
        if (g->n_off > 1)
            qsort(o, (size_t)g->n_off, sizeof *o, cmp_goff);
        for (int k = 0; k < g->n_off; k++) {
            if (o[k].topic == NULL)
                continue;
            const md_topic *t = md_image_topic(img, kstr_c(o[k].topic));
            rpart *p = t ? parts_get(ps, t->id, o[k].partition) : NULL;
            if (p == NULL)
                continue;
            rpart_lock(p);
            o[k].end = replica_get_state(p->r)->hw;
            rpart_unlock(p);
            rpart_release(p);
            if (o[k].offset >= 0 && o[k].end > o[k].offset)
                g->lag += o[k].end - o[k].offset;
        }
    }
    md_image_unref(img);
}

void observe_walk_groups_done(gwalk *w) {
    for (int i = 0; i < w->no; i++)
        free(w->o[i].topic);
    for (int i = 0; i < w->n; i++) {
        free(w->g[i].group);
        free(w->g[i].protocol_type);
        free(w->g[i].protocol);
    }
    free(w->o);
    free(w->g);
}

void observe_read_proc(procinfo *pi) {
    memset(pi, 0, sizeof *pi);
    pi->open_fds = pi->threads = -1;
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    char buf[2048];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f != NULL) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        /* Fields after the command name (which may hold spaces) start
         * after the last ')': state is field 3. */
        char *p = strrchr(buf, ')');
        unsigned long utime = 0, stime = 0, vsize = 0;
        long rss = 0, threads = 0;
        unsigned long long starttime = 0;
        if (p != NULL && sscanf(p + 2,
                                "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %ld %*d "
                                "%llu %lu %ld",
                                &utime, &stime, &threads, &starttime, &vsize, &rss) == 6) {
            pi->cpu_s = (double)(utime + stime) / (double)tick;
            pi->vsize = vsize;
            pi->rss = (uint64_t)rss * (uint64_t)page;
            pi->threads = threads;
            /* starttime is in ticks since boot. */
            FILE *u = fopen("/proc/uptime", "r");
            double up = 0;
            if (u != NULL) {
                if (fscanf(u, "%lf", &up) != 1)
                    up = 0;
                fclose(u);
            }
            double now = (double)clock_wall_ms() / 1000.0;
            if (up > 0)
                pi->start_s = now - up + (double)starttime / (double)tick;
        }
    }
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        int64_t n = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.')
                n++;
        closedir(d);
        pi->open_fds = n - 1; /* the directory's own descriptor */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        pi->max_fds = rl.rlim_cur == RLIM_INFINITY ? -1 : (int64_t)rl.rlim_cur;
}
