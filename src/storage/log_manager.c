/*
 * log_manager.c - log.dirs roots and the partition directories in them.
 * See log_manager.h.
 */
#include "storage/log_manager.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/log.h"

#define PATH_BUF 4400
/* a directory path plus a name in it */
#define PATH_JOIN       (PATH_BUF + LOGMGR_NAME_MAX + 64)
#define META_PROPERTIES "meta.properties"
#define CREATING_PREFIX ".creating-"
#define STRAY_UNKNOWN   "unknown"
#define STRAY_ATTEMPTS  1000
#define STRAYS_LOGGED   20
#define SMALL_FILE_MAX  4096

struct logmgr {
    storage_ctx *sc;
    const sl_vfs *v;
    int n_roots;
    char *roots[LOGMGR_ROOTS_MAX];
    bool was_clean[LOGMGR_ROOTS_MAX];
    bool fresh;
    char cluster_id[32];
    int32_t node_id;
    int64_t fd_limit;          /* RLIMIT_NOFILE at start, -1 for none */
    int64_t fd_partitions_max; /* partitions the open-file limit leaves room for */
    pthread_mutex_t mu;        /* the stray list */
    /* Partition directories per root, counted once (at the first pick
     * with several roots) and kept up to date by creations and deletions,
     * so placing a partition never lists a root. */
    bool counted;
    int64_t root_parts[LOGMGR_ROOTS_MAX];
    lm_stray *strays;
    int n_strays, cap_strays, strays_total;
};

static void seterr(char *err, size_t errn, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errn, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errn, fmt, ap);
    va_end(ap);
}

/* ---- small file helpers (through the vfs) --------------------------------------- */

/* Reads a small file whole into buf (NUL-terminated). Its length, or -errno. */
static int read_small(const sl_vfs *v, const char *path, char *buf, size_t cap) {
    int fd = v->open(v->ctx, path, SL_O_RDONLY, 0);
    if (fd < 0)
        return fd;
    ssize_t got = 0, k = 0;
    while ((size_t)got < cap - 1 && (k = v->pread(v->ctx, fd, buf + got, cap - 1 - (size_t)got, got)) > 0)
        got += k;
    v->close(v->ctx, fd);
    if (k < 0 && got == 0)
        return (int)k;
    buf[got] = '\0';
    return (int)got;
}

/* Writes path durably (tmp + fsync + rename + fsync of the directory). */
static int write_small(const sl_vfs *v, const char *dir, const char *path, const char *text) {
    char tmp[PATH_JOIN + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = v->open(v->ctx, tmp, SL_O_RDWR | SL_O_CREAT | SL_O_TRUNC, 0644);
    if (fd < 0)
        return fd;
    int rc = sl_vfs_pwrite_full(v, fd, text, strlen(text), 0);
    if (rc == 0)
        rc = v->fsync(v->ctx, fd);
    v->close(v->ctx, fd);
    if (rc == 0)
        rc = v->rename(v->ctx, tmp, path);
    if (rc != 0) {
        v->unlink(v->ctx, tmp);
        return rc;
    }
    return v->fsync_dir(v->ctx, dir);
}

void logmgr_uuid_hex(kuuid id, char out[33]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = digits[id.b[i] >> 4];
        out[2 * i + 1] = digits[id.b[i] & 15];
    }
    out[32] = '\0';
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool parse_hex_id(const char *s, size_t n, kuuid *id) {
    if (n != 32)
        return false;
    for (int i = 0; i < 16; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        id->b[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

int logmgr_read_owner(const sl_vfs *v, const char *dir, kuuid *id) {
    char path[PATH_JOIN], text[SMALL_FILE_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, LOGMGR_OWNER_FILE);
    int n = read_small(v, path, text, sizeof text);
    if (n == -ENOENT)
        return 0;
    if (n < 0)
        return -1;
    int rc = -1;
    bool version_ok = false;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        size_t len = next ? (size_t)(next - line) : strlen(line);
        if (next)
            next++;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        if (len == strlen("version: 0") && strncmp(line, "version: 0", len) == 0)
            version_ok = true;
        else if (len > 10 && strncmp(line, "topic_id: ", 10) == 0)
            rc = parse_hex_id(line + 10, len - 10, id) ? 1 : -1;
    }
    return version_ok ? rc : -1;
}

static int write_owner(const sl_vfs *v, const char *dir, kuuid id) {
    char path[PATH_JOIN], hex[33], text[80];
    snprintf(path, sizeof path, "%s/%s", dir, LOGMGR_OWNER_FILE);
    logmgr_uuid_hex(id, hex);
    snprintf(text, sizeof text, "version: 0\ntopic_id: %s\n", hex);
    return write_small(v, dir, path, text);
}

/* ---- names -------------------------------------------------------------------------- */

bool logmgr_parse_partition(const char *dname, kstr *topic, int32_t *index) {
    const char *dash = strrchr(dname, '-');
    if (dash == NULL || dash == dname || dash[1] == '\0')
        return false;
    int64_t val = 0;
    for (const char *p = dash + 1; *p; p++) {
        if (*p < '0' || *p > '9' || val > INT32_MAX / 10)
            return false;
        val = val * 10 + (*p - '0');
    }
    if (val > INT32_MAX || (dash[1] == '0' && dash[2] != '\0'))
        return false;
    topic->ptr = dname;
    topic->len = (int32_t)(dash - dname);
    *index = (int32_t)val;
    return true;
}

bool logmgr_parse_stray(const char *dname, kuuid *owner, bool *known, int32_t *index) {
    size_t n = strlen(dname), k = sizeof LOGMGR_STRAY_SUFFIX - 1;
    if (n <= k || strcmp(dname + n - k, LOGMGR_STRAY_SUFFIX) != 0)
        return false;
    if (owner == NULL)
        return true;
    /* <partition dir>.<tag>[.<n>]-stray, tag = 32 hex digits or "unknown". */
    char base[LOGMGR_NAME_MAX + 1];
    snprintf(base, sizeof base, "%.*s", (int)(n - k), dname);
    char *dot = strrchr(base, '.');
    if (dot != NULL && dot[1] != '\0' && strspn(dot + 1, "0123456789") == strlen(dot + 1)) {
        char *prev = dot;
        *prev = '\0';
        dot = strrchr(base, '.');
        if (dot == NULL) {
            *prev = '.';
            dot = prev;
        }
    }
    *known = false;
    *index = -1;
    if (dot == NULL)
        return true;
    const char *tag = dot + 1;
    *known = parse_hex_id(tag, strlen(tag), owner);
    *dot = '\0';
    kstr t;
    if (!logmgr_parse_partition(base, &t, index))
        *index = -1;
    return true;
}

static bool parse_creating(const char *dname) {
    return strncmp(dname, CREATING_PREFIX, sizeof CREATING_PREFIX - 1) == 0;
}

/* ---- directory helpers ------------------------------------------------------------------ */

typedef struct names {
    char **v;
    bool *is_dir;
    int n, cap;
} names;

static int collect_name(void *ctx, const char *name, bool is_dir) {
    names *ns = ctx;
    if (ns->n == ns->cap) {
        int ncap = ns->cap ? ns->cap * 2 : 64;
        char **nv = realloc(ns->v, (size_t)ncap * sizeof *nv);
        bool *nd = realloc(ns->is_dir, (size_t)ncap * sizeof *nd);
        if (nv)
            ns->v = nv;
        if (nd)
            ns->is_dir = nd;
        if (!nv || !nd)
            return -ENOMEM;
        ns->cap = ncap;
    }
    char *c = strdup(name);
    if (c == NULL)
        return -ENOMEM;
    ns->v[ns->n] = c;
    ns->is_dir[ns->n++] = is_dir;
    return 0;
}

static void names_free(names *ns) {
    for (int i = 0; i < ns->n; i++)
        free(ns->v[i]);
    free(ns->v);
    free(ns->is_dir);
    memset(ns, 0, sizeof *ns);
}

/* Lists dir (so it may change while the names are handled). */
static names list_dir(const sl_vfs *v, const char *dir) {
    names ns = {0};
    v->list(v->ctx, dir, collect_name, &ns);
    return ns;
}

/* Removes a flat directory and its files. 0 (also when absent) or -errno. */
static int remove_dir(const sl_vfs *v, const char *dir) {
    names ns = list_dir(v, dir);
    char path[PATH_JOIN];
    for (int i = 0; i < ns.n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, ns.v[i]);
        v->unlink(v->ctx, path);
    }
    names_free(&ns);
    int rc = v->rmdir(v->ctx, dir);
    return rc == -ENOENT ? 0 : rc;
}

static int64_t dir_bytes(const sl_vfs *v, const char *dir) {
    names ns = list_dir(v, dir);
    int64_t total = 0;
    char path[PATH_JOIN];
    for (int i = 0; i < ns.n; i++) {
        sl_stat st;
        snprintf(path, sizeof path, "%s/%s", dir, ns.v[i]);
        if (!ns.is_dir[i] && ns.v[i][0] != '.' && v->stat(v->ctx, path, &st) == 0)
            total += st.size;
    }
    names_free(&ns);
    return total;
}

static bool exists_dir(const sl_vfs *v, const char *path) {
    sl_stat st;
    return v->stat(v->ctx, path, &st) == 0 && st.is_dir;
}

/* ---- set aside ------------------------------------------------------------------------------ */

static int set_aside(logmgr *m, int root, const char *dname, const kuuid *owner, char *out, size_t outn) {
    const sl_vfs *v = m->v;
    const char *r = m->roots[root];
    char tag[40], from[PATH_BUF], to[PATH_BUF];
    if (owner)
        logmgr_uuid_hex(*owner, tag);
    else
        snprintf(tag, sizeof tag, "%s", STRAY_UNKNOWN);
    kstr topic;
    int32_t index;
    char idx[16] = "";
    size_t keep = strlen(dname);
    if (logmgr_parse_partition(dname, &topic, &index)) {
        snprintf(idx, sizeof idx, "-%d", index);
        keep = (size_t)topic.len;
    }
    snprintf(from, sizeof from, "%s/%s", r, dname);
    for (int attempt = 0; attempt < STRAY_ATTEMPTS; attempt++) {
        char counter[8] = "";
        if (attempt > 0)
            snprintf(counter, sizeof counter, ".%d", attempt);
        size_t fixed = strlen(idx) + 1 + strlen(tag) + strlen(counter) + sizeof LOGMGR_STRAY_SUFFIX - 1;
        assert(fixed < LOGMGR_NAME_MAX);
        size_t room = LOGMGR_NAME_MAX - fixed;
        char name[LOGMGR_NAME_MAX + 1];
        snprintf(name, sizeof name, "%.*s%s.%s%s%s", (int)(keep < room ? keep : room), dname, idx, tag,
                 counter, LOGMGR_STRAY_SUFFIX);
        snprintf(to, sizeof to, "%s/%s", r, name);
        sl_stat st;
        if (v->stat(v->ctx, to, &st) == 0)
            continue;
        int rc = v->rename(v->ctx, from, to);
        if (rc != 0)
            return rc;
        snprintf(out, outn, "%s", name);
        return v->fsync_dir(v->ctx, r);
    }
    return -EEXIST;
}

static int64_t add_stray(logmgr *m, int root, const char *name, bool known, kuuid owner, int32_t index) {
    char path[PATH_BUF];
    snprintf(path, sizeof path, "%s/%s", m->roots[root], name);
    int64_t bytes = dir_bytes(m->v, path);
    pthread_mutex_lock(&m->mu);
    m->strays_total++;
    if (m->n_strays == m->cap_strays && m->cap_strays < LOGMGR_STRAYS_MAX) {
        int ncap = m->cap_strays ? m->cap_strays * 2 : 16;
        if (ncap > LOGMGR_STRAYS_MAX)
            ncap = LOGMGR_STRAYS_MAX;
        lm_stray *ns = realloc(m->strays, (size_t)ncap * sizeof *ns);
        if (ns) {
            m->strays = ns;
            m->cap_strays = ncap;
        }
    }
    if (m->n_strays < m->cap_strays) {
        lm_stray *st = &m->strays[m->n_strays++];
        memset(st, 0, sizeof *st);
        st->root = root;
        snprintf(st->name, sizeof st->name, "%s", name);
        st->owner_known = known;
        st->owner = owner;
        st->partition = index;
        st->bytes = bytes;
    }
    pthread_mutex_unlock(&m->mu);
    return bytes;
}

int logmgr_strays(logmgr *m, lm_stray *out, int max, int *total) {
    pthread_mutex_lock(&m->mu);
    int n = m->n_strays < max ? m->n_strays : max;
    if (n > 0)
        memcpy(out, m->strays, (size_t)n * sizeof *out);
    *total = m->strays_total;
    pthread_mutex_unlock(&m->mu);
    return n;
}

/* Removes or sets aside root/dname per verdict (not LM_KEEP). 0, or -1. */
static int settle_one(logmgr *m, int root, const char *dname, lm_verdict verdict, bool known, kuuid owner,
                      int32_t index, const char *why_aside) {
    const char *r = m->roots[root];
    char dir[PATH_BUF], hex[33] = "", aside[LOGMGR_NAME_MAX + 1];
    snprintf(dir, sizeof dir, "%s/%s", r, dname);
    if (known)
        logmgr_uuid_hex(owner, hex);
    if (verdict == LM_REMOVE) {
        LOG_INFO("logdirs", "removing %s (topic id %s): %s", dir, hex,
                 "its topic was deleted, or it is left over from a creation the broker did not finish");
        int rc = remove_dir(m->v, dir);
        if (rc != 0) {
            LOG_ERROR("logdirs", "cannot remove %s: %s", dir, strerror(-rc));
            return -1;
        }
        return 0;
    }
    int rc = set_aside(m, root, dname, known ? &owner : NULL, aside, sizeof aside);
    if (rc != 0) {
        LOG_ERROR("logdirs", "cannot set aside %s: %s; it is left as it is", dir, strerror(-rc));
        return -1;
    }
    LOG_ERROR("logdirs",
              "log directory %s %s%s, but %s; it is set aside as %s/%s with its data untouched "
              "(docs/operations.md says how to restore or remove it)",
              dir, known ? "holds topic id " : "has ", known ? hex : "no readable partition.metadata",
              why_aside, r, aside);
    add_stray(m, root, aside, known, owner, index);
    return 0;
}

/* ---- open / close ------------------------------------------------------------------------ */

/* Reads cluster.id from root/meta.properties or writes a new file (then
 * *fresh). 0, or -1 with err. */
static int meta_properties(logmgr *m, int root, bool *fresh, void (*random)(void *, void *, size_t),
                           void *rctx, char *err, size_t errn) {
    char path[PATH_BUF], text[SMALL_FILE_MAX];
    snprintf(path, sizeof path, "%s/%s", m->roots[root], META_PROPERTIES);
    int n = read_small(m->v, path, text, sizeof text);
    *fresh = n < 0;
    if (n >= 0) {
        int node = -1;
        char cid[32] = "";
        for (char *line = text, *next; line && *line; line = next) {
            next = strchr(line, '\n');
            if (next)
                *next++ = '\0';
            line[strcspn(line, "\r")] = '\0';
            if (strncmp(line, "cluster.id=", 11) == 0)
                snprintf(cid, sizeof cid, "%.*s", (int)sizeof cid - 1, line + 11);
            else if (strncmp(line, "node.id=", 8) == 0)
                node = atoi(line + 8);
        }
        if (node >= 0 && node != m->node_id) {
            seterr(err, errn, "%s says node.id=%d but this broker is node.id=%d; refusing to start", path,
                   node, m->node_id);
            return -1;
        }
        if (cid[0]) {
            if (m->cluster_id[0] && strcmp(m->cluster_id, cid) != 0) {
                seterr(err, errn, "%s belongs to cluster %s, another log dir to %s; refusing to start", path,
                       cid, m->cluster_id);
                return -1;
            }
            snprintf(m->cluster_id, sizeof m->cluster_id, "%s", cid);
            return 0;
        }
    }
    if (!m->cluster_id[0]) {
        static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        uint8_t raw[22];
        random(rctx, raw, sizeof raw);
        for (int i = 0; i < 22; i++)
            m->cluster_id[i] = alphabet[raw[i] & 63];
        m->cluster_id[22] = '\0';
    }
    char body[256];
    snprintf(body, sizeof body,
             "# Written by sluiced; identifies this log directory.\nversion=1\ncluster.id=%s\nnode.id=%d\n",
             m->cluster_id, m->node_id);
    int rc = write_small(m->v, m->roots[root], path, body);
    if (rc != 0) {
        seterr(err, errn, "cannot write %s: %s", path, strerror(-rc));
        return -1;
    }
    return 0;
}

static void size_fd_budget(logmgr *m, int32_t max_connections) {
    struct rlimit rl;
    m->fd_limit = -1;
    m->fd_partitions_max = INT64_MAX;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return;
    int64_t lim = (int64_t)rl.rlim_cur;
    int64_t cache = lim / 8 < LOGMGR_FD_CACHE_MAX ? lim / 8 : LOGMGR_FD_CACHE_MAX;
    int64_t clients = lim / 4 < max_connections ? lim / 4 : max_connections;
    storage_set_fd_limit(m->sc, (int)cache);
    m->fd_limit = lim;
    m->fd_partitions_max = lim - LOGMGR_FD_RESERVE - cache - clients;
    if (m->fd_partitions_max < 0)
        m->fd_partitions_max = 0;
}

logmgr *logmgr_open(storage_ctx *sc, const char *const *roots, int n_roots, int32_t node_id,
                    int32_t max_connections, void (*random)(void *ctx, void *buf, size_t n), void *random_ctx,
                    char *err, size_t errn) {
    if (n_roots <= 0 || n_roots > LOGMGR_ROOTS_MAX) {
        seterr(err, errn, "%d log directories; 1 to %d are allowed", n_roots, LOGMGR_ROOTS_MAX);
        return NULL;
    }
    logmgr *m = calloc(1, sizeof *m);
    if (m == NULL) {
        seterr(err, errn, "out of memory");
        return NULL;
    }
    m->sc = sc;
    m->v = storage_vfs(sc);
    m->node_id = node_id;
    pthread_mutex_init(&m->mu, NULL);
    m->fresh = true;
    for (int i = 0; i < n_roots; i++) {
        m->roots[i] = strdup(roots[i]);
        m->n_roots = i + 1;
        if (m->roots[i] == NULL) {
            seterr(err, errn, "out of memory");
            goto fail;
        }
        bool fresh;
        if (meta_properties(m, i, &fresh, random, random_ctx, err, errn) != 0)
            goto fail;
        m->fresh &= fresh;
        if (plog_dir_begin(sc, roots[i], &m->was_clean[i]) != 0) {
            seterr(err, errn, "cannot prepare log directory %s", roots[i]);
            goto fail;
        }
        if (fresh)
            m->was_clean[i] = true; /* nothing to recover in a new directory */
        if (!m->was_clean[i])
            LOG_INFO("logdirs", "log directory %s was not shut down cleanly; recovering its logs", roots[i]);
    }
    size_fd_budget(m, max_connections);
    return m;
fail:
    for (int i = 0; i < m->n_roots; i++)
        free(m->roots[i]);
    pthread_mutex_destroy(&m->mu);
    free(m);
    return NULL;
}

int logmgr_close(logmgr *m, const bool *unclean, bool opened) {
    if (m == NULL)
        return 0;
    int not_marked = m->n_roots;
    if (opened) {
        not_marked = 0;
        for (int r = 0; r < m->n_roots; r++) {
            if ((unclean && unclean[r]) || plog_dir_mark_clean(m->sc, m->roots[r]) != 0) {
                LOG_WARN("logdirs",
                         "log directory %s is not marked clean: its logs are recovered at the next start",
                         m->roots[r]);
                not_marked++;
            }
        }
    }
    for (int i = 0; i < m->n_roots; i++)
        free(m->roots[i]);
    free(m->strays);
    pthread_mutex_destroy(&m->mu);
    free(m);
    return not_marked;
}

storage_ctx *logmgr_storage(const logmgr *m) { return m->sc; }
const char *logmgr_cluster_id(const logmgr *m) { return m->cluster_id; }
int logmgr_root_count(const logmgr *m) { return m->n_roots; }
const char *logmgr_root(const logmgr *m, int i) { return i >= 0 && i < m->n_roots ? m->roots[i] : NULL; }
bool logmgr_root_was_clean(const logmgr *m, int i) { return i >= 0 && i < m->n_roots && m->was_clean[i]; }
bool logmgr_fresh(const logmgr *m) { return m->fresh; }

/* ---- start-up ----------------------------------------------------------------------------------- */

int logmgr_count_partition_dirs(logmgr *m, char *example, size_t examplen, bool (*skip)(const char *name)) {
    int count = 0;
    for (int r = 0; r < m->n_roots; r++) {
        names ns = list_dir(m->v, m->roots[r]);
        for (int i = 0; i < ns.n; i++) {
            kstr name;
            int32_t idx;
            if (ns.is_dir[i] && ns.v[i][0] != '.' && !(skip && skip(ns.v[i])) &&
                logmgr_parse_partition(ns.v[i], &name, &idx) && count++ == 0)
                snprintf(example, examplen, "%s/%s", m->roots[r], ns.v[i]);
        }
        names_free(&ns);
    }
    return count;
}

/* The root (index) holding directory dname, first root first; -1 if none. */
static int root_holding(logmgr *m, const char *dname) {
    char path[PATH_BUF];
    for (int r = 0; r < m->n_roots; r++) {
        snprintf(path, sizeof path, "%s/%s", m->roots[r], dname);
        if (exists_dir(m->v, path))
            return r;
    }
    return -1;
}

void logmgr_settle(logmgr *m, lm_judge_fn judge, void *ctx, bool (*skip)(const char *name)) {
    int strays_seen = 0;
    for (int r = 0; r < m->n_roots; r++) {
        const char *root = m->roots[r];
        names ns = list_dir(m->v, root);
        int creating = 0;
        for (int i = 0; i < ns.n; i++) {
            const char *dn = ns.v[i];
            char dir[PATH_BUF];
            snprintf(dir, sizeof dir, "%s/%s", root, dn);
            if (!ns.is_dir[i])
                continue;
            if (parse_creating(dn)) {
                if (remove_dir(m->v, dir) == 0)
                    creating++;
                continue;
            }
            if (dn[0] == '.')
                continue;
            if (skip && skip(dn)) {
                if (r != 0)
                    LOG_WARN(
                        "logdirs",
                        "%s is a metadata log, but only the first of log.dirs holds it (was the order of "
                        "log.dirs changed?); it is left alone",
                        dir);
                continue;
            }
            kuuid owner = {{0}};
            bool known = false;
            int32_t idx;
            if (logmgr_parse_stray(dn, &owner, &known, &idx)) {
                int64_t bytes = add_stray(m, r, dn, known, owner, idx);
                if (strays_seen++ < STRAYS_LOGGED)
                    LOG_WARN("logdirs",
                             "%s is a set-aside log directory (%" PRId64
                             " bytes), kept until an operator restores or removes it",
                             dir, bytes);
                continue;
            }
            kstr name;
            if (!logmgr_parse_partition(dn, &name, &idx)) {
                LOG_WARN("logdirs", "%s is not a partition directory; it is left alone", dir);
                continue;
            }
            int found = logmgr_read_owner(m->v, dir, &owner);
            known = found == 1;
            lm_verdict vd = judge(ctx, name, idx, known, owner);
            /* Only the first root holding a partition's name is its home. */
            if (vd == LM_KEEP && root_holding(m, dn) != r)
                vd = LM_ASIDE;
            if (vd == LM_KEEP)
                continue;
            settle_one(m, r, dn, vd, known, owner, idx,
                       vd == LM_ASIDE ? "no partition the metadata knows is it" : "");
        }
        if (creating > 0)
            LOG_INFO("logdirs", "removed %d partition directories of %s whose creation a stop interrupted",
                     creating, root);
        names_free(&ns);
    }
    if (strays_seen > STRAYS_LOGGED)
        LOG_WARN("logdirs",
                 "%d set-aside log directories in all (DescribeLogDirs and `sluice log-dirs` list them)",
                 strays_seen);
}

/* ---- partitions --------------------------------------------------------------------------------- */

/* The root with the fewest partition directories. */
static int pick_root(logmgr *m) {
    if (m->n_roots == 1)
        return 0;
    pthread_mutex_lock(&m->mu);
    if (!m->counted) {
        for (int r = 0; r < m->n_roots; r++) {
            names ns = list_dir(m->v, m->roots[r]);
            m->root_parts[r] = 0;
            for (int i = 0; i < ns.n; i++) {
                kstr name;
                int32_t idx;
                if (ns.is_dir[i] && ns.v[i][0] != '.' && logmgr_parse_partition(ns.v[i], &name, &idx))
                    m->root_parts[r]++;
            }
            names_free(&ns);
        }
        m->counted = true;
    }
    int pick = 0;
    for (int r = 1; r < m->n_roots; r++)
        if (m->root_parts[r] < m->root_parts[pick])
            pick = r;
    pthread_mutex_unlock(&m->mu);
    return pick;
}

/* The root index whose directory holds dir, or -1. */
static int root_of_dir(const logmgr *m, const char *dir) {
    for (int r = 0; r < m->n_roots; r++) {
        size_t n = strlen(m->roots[r]);
        if (strncmp(dir, m->roots[r], n) == 0 && dir[n] == '/' && strchr(dir + n + 1, '/') == NULL)
            return r;
    }
    return -1;
}

/* Creates root/dname with its owner file, through a hidden name. */
static int create_dir(logmgr *m, int root, const char *dname, int32_t index, kuuid owner) {
    const sl_vfs *v = m->v;
    char tmp[PATH_BUF], dir[PATH_BUF], hex[33];
    logmgr_uuid_hex(owner, hex);
    snprintf(tmp, sizeof tmp, "%s/%s%s-%d", m->roots[root], CREATING_PREFIX, hex, index);
    snprintf(dir, sizeof dir, "%s/%s", m->roots[root], dname);
    int rc = remove_dir(v, tmp);
    if (rc == 0)
        rc = v->mkdir(v->ctx, tmp, 0755);
    if (rc != 0)
        return rc;
    if ((rc = write_owner(v, tmp, owner)) != 0 || (rc = v->rename(v->ctx, tmp, dir)) != 0) {
        remove_dir(v, tmp);
        return rc;
    }
    return 0;
}

int logmgr_open_partition(logmgr *m, const char *name, int32_t index, kuuid id, const plog_config *pc,
                          bool sync, plog **out, int *root_out) {
    *out = NULL;
    const sl_vfs *v = m->v;
    char dname[LOGMGR_NAME_MAX + 1], dir[PATH_BUF];
    snprintf(dname, sizeof dname, "%s-%d", name, index);
    int root = root_holding(m, dname);
    bool exists = root >= 0;
    if (!exists)
        root = pick_root(m);
    snprintf(dir, sizeof dir, "%s/%s", m->roots[root], dname);
    kuuid owner;
    int found = exists ? logmgr_read_owner(v, dir, &owner) : 0;
    bool owned = found == 1 && memcmp(owner.b, id.b, 16) == 0;
    if (exists && !owned && found != 0) {
        /* Someone else's directory where this partition belongs: out of the way. */
        char want[33];
        logmgr_uuid_hex(id, want);
        char why[128];
        snprintf(why, sizeof why, "the partition there now is topic id %s's", want);
        if (settle_one(m, root, dname, LM_ASIDE, found == 1, owner, index, why) != 0)
            return STORAGE_KAFKA_STORAGE_ERROR;
        LOG_ERROR("logdirs", "topic %s (id %s) partition %d starts empty in a new directory", name, want,
                  index);
        exists = false;
    }
    if (!exists) {
        int rc = create_dir(m, root, dname, index, id);
        if (rc == 0 && sync)
            rc = v->fsync_dir(v->ctx, m->roots[root]);
        if (rc != 0) {
            LOG_ERROR("logdirs", "cannot create %s: %s", dir, strerror(-rc));
            return STORAGE_KAFKA_STORAGE_ERROR;
        }
        owned = true;
        pthread_mutex_lock(&m->mu);
        if (m->counted)
            m->root_parts[root]++;
        pthread_mutex_unlock(&m->mu);
    }
    int err = 0;
    plog *l = plog_open(m->sc, dir, pc, m->was_clean[root], &err);
    if (l && !owned && write_owner(v, dir, id) != 0) {
        /* An old directory without an owner file: adopted. */
        LOG_ERROR("logdirs", "cannot write %s/%s", dir, LOGMGR_OWNER_FILE);
        plog_close(l);
        l = NULL;
        err = STORAGE_KAFKA_STORAGE_ERROR;
    }
    if (l == NULL) {
        LOG_ERROR("logdirs", "cannot open log of partition %s-%d in %s: %s; it stays offline", name, index,
                  dir, storage_strerror(err));
        return err ? err : STORAGE_KAFKA_STORAGE_ERROR;
    }
    *out = l;
    *root_out = root;
    return STORAGE_OK;
}

int logmgr_remove_flat_dir(const sl_vfs *v, const char *dir) { return remove_dir(v, dir); }

int logmgr_sync_roots(logmgr *m) {
    for (int r = 0; r < m->n_roots; r++) {
        int rc = m->v->fsync_dir(m->v->ctx, m->roots[r]);
        if (rc != 0) {
            LOG_ERROR("logdirs", "cannot fsync %s: %s", m->roots[r], strerror(-rc));
            return STORAGE_KAFKA_STORAGE_ERROR;
        }
    }
    return STORAGE_OK;
}

int logmgr_delete_partition(logmgr *m, plog *l) {
    char meta[PATH_BUF];
    snprintf(meta, sizeof meta, "%s/%s", plog_dir(l), LOGMGR_OWNER_FILE);
    m->v->unlink(m->v->ctx, meta);
    int r = root_of_dir(m, plog_dir(l));
    pthread_mutex_lock(&m->mu);
    if (m->counted && r >= 0 && m->root_parts[r] > 0)
        m->root_parts[r]--;
    pthread_mutex_unlock(&m->mu);
    return plog_delete(l);
}

int logmgr_check_budget(const logmgr *m, int64_t have, int64_t adding, char *msg, size_t msgn) {
    if (have + adding <= m->fd_partitions_max)
        return 0;
    seterr(
        msg, msgn,
        "%" PRId64 " more partitions would not fit the broker's open-file limit: it holds %" PRId64
        ", and RLIMIT_NOFILE %" PRId64 " leaves room for %" PRId64
        " after the descriptors kept for clients and the broker itself (raise the limit: ulimit -n, systemd "
        "LimitNOFILE=)",
        adding, have, m->fd_limit, m->fd_partitions_max);
    return -1;
}

int64_t logmgr_partition_budget(const logmgr *m) { return m->fd_partitions_max; }
