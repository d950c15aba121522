/*
 * log_manager.h - the directories of a broker's log.dirs roots and the
 * partition logs in them.
 *
 * What it owns, per root: meta.properties (cluster id and node id: a root
 * that belongs to another cluster or node stops the start), the
 * clean-shutdown marker (storage's plog_dir_begin / plog_dir_mark_clean),
 * and every directory in it. A partition lives in <root>/<topic>-<partition>/
 * with partition.metadata naming its topic id. Directories are:
 *   - created for a partition the metadata says this broker holds: made
 *     under a hidden ".creating-<id>-<partition>" name with the owner file
 *     written and fsynced, then renamed into place, so a crash never leaves
 *     a partition directory without its owner (leftover hidden ones, which
 *     never held data, are removed at start);
 *   - kept when they belong to a partition the metadata explains;
 *   - removed only for a topic id the metadata records as deleted, or a
 *     creation the metadata says never completed (the caller's removable()
 *     says which), and when the topic is deleted while running;
 *   - set aside otherwise: renamed <topic>-<p>.<id|unknown>[.n]-stray with
 *     nothing inside touched, logged as an error, listed for DescribeLogDirs
 *     and `sluice log-dirs`. Storage never deletes data because the metadata
 *     disagrees with it.
 * Names: a partition directory ends in "-<digits>", a set-aside one in
 * "-stray", so neither is mistaken for the other, whatever the topic is
 * called; names are at most 255 bytes (a long topic name is shortened in
 * the set-aside name; partition.metadata inside still says whose it was).
 *
 * Open files: every partition keeps its active segment open, so partitions
 * are counted against RLIMIT_NOFILE less a reserve (client connections,
 * the idle-segment cache, a fixed reserve for listeners, epoll, the
 * metadata log and files opened briefly): logmgr_check_budget().
 *
 * Every file operation goes through the storage context's vfs.
 * Thread-safety: the stray list is guarded inside; everything else is
 * called by one owner at a time (start-up, or the broker's metadata apply
 * path, which is serialised).
 */
#ifndef SLUICE_STORAGE_LOG_MANAGER_H
#define SLUICE_STORAGE_LOG_MANAGER_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/wire.h"
#include "storage/log.h"
#include "storage/storage.h"

#define LOGMGR_ROOTS_MAX    32
#define LOGMGR_OWNER_FILE   "partition.metadata"
#define LOGMGR_NAME_MAX     255
#define LOGMGR_STRAY_SUFFIX "-stray"
#define LOGMGR_STRAYS_MAX   10000 /* listed; more are counted */
#define LOGMGR_FD_RESERVE   256
#define LOGMGR_FD_CACHE_MAX 1024

typedef struct logmgr logmgr;

typedef struct lm_stray {
    int root;          /* index into the roots */
    char name[256];    /* the directory's (new) name under that root */
    bool owner_known;  /* partition.metadata named an id */
    kuuid owner;       /* that id */
    int32_t partition; /* the partition index its name says, -1 if none */
    int64_t bytes;     /* of its files when it was found */
} lm_stray;

/* Opens the roots (each must exist): reads or writes meta.properties,
 * takes the clean-shutdown markers, sizes the descriptor budget from
 * RLIMIT_NOFILE (and the storage context's idle-descriptor cache with it).
 * random fills a new cluster id. NULL with err filled on failure. */
logmgr *logmgr_open(storage_ctx *sc, const char *const *roots, int n_roots, int32_t node_id,
                    int32_t max_connections, void (*random)(void *ctx, void *buf, size_t n), void *random_ctx,
                    char *err, size_t errn);
/* Marks each root clean unless unclean[root] (a log there did not close
 * cleanly) or opened is false (the start never completed), then frees.
 * Returns how many roots were not marked clean. */
int logmgr_close(logmgr *m, const bool *unclean, bool opened);

storage_ctx *logmgr_storage(const logmgr *m);
const char *logmgr_cluster_id(const logmgr *m);
int logmgr_root_count(const logmgr *m);
const char *logmgr_root(const logmgr *m, int i);
bool logmgr_root_was_clean(const logmgr *m, int i);
/* True when no root held meta.properties before (a new broker). */
bool logmgr_fresh(const logmgr *m);

/* ---- start-up ------------------------------------------------------------------- */

/* What the metadata says about a directory named as partition `index` of
 * topic `name` whose owner file names `owner` (owner_known false: no or an
 * unreadable owner file). */
typedef enum lm_verdict {
    LM_KEEP = 0,   /* the partition's own: leave it for logmgr_open_partition */
    LM_REMOVE = 1, /* a deleted topic's, or an unfinished creation's */
    LM_ASIDE = 2,  /* unexplained: set it aside */
} lm_verdict;
typedef lm_verdict (*lm_judge_fn)(void *ctx, kstr name, int32_t index, bool owner_known, kuuid owner);

/* Partition directories under the roots (for the "metadata lost" check),
 * but those skip(name) names (the metadata logs); example gets one path. */
int logmgr_count_partition_dirs(logmgr *m, char *example, size_t examplen, bool (*skip)(const char *name));
/* Settles every directory of every root: hidden creation leftovers are
 * removed; set-aside ones listed (and logged at every start); partition
 * directories judged. skip(name) names directories to leave alone (the
 * metadata logs). Logs what it does. */
void logmgr_settle(logmgr *m, lm_judge_fn judge, void *ctx, bool (*skip)(const char *name));

/* ---- partitions ------------------------------------------------------------------- */

/* Opens (creating if needed) the log of partition index of topic (name,
 * id): the root that holds <name>-<index> already, or the root with the
 * fewest partitions. A directory there that is not the partition's own is
 * set aside first. sync: make a created directory durable at once (else
 * the caller calls logmgr_sync_roots once for many). Returns STORAGE_OK
 * with *out and *root, or a storage error (logged). */
int logmgr_open_partition(logmgr *m, const char *name, int32_t index, kuuid id, const plog_config *pc,
                          bool sync, plog **out, int *root);
/* Removes dir and the files in it (no subdirectories): 0 or -errno. */
int logmgr_remove_flat_dir(const sl_vfs *v, const char *dir);
/* fsyncs every root (new entries durable). 0 or a storage error. */
int logmgr_sync_roots(logmgr *m);
/* Deletes a partition's log and directory (the topic was deleted). */
int logmgr_delete_partition(logmgr *m, plog *l);

/* Whether `adding` more partitions fit what the open-file limit leaves room
 * for beside `have`: 0, or -1 with msg (the broker answers
 * POLICY_VIOLATION). */
int logmgr_check_budget(const logmgr *m, int64_t have, int64_t adding, char *msg, size_t msgn);
int64_t logmgr_partition_budget(const logmgr *m);

/* Copies up to max set-aside directories into out; returns how many and
 * sets *total to how many there are. */
int logmgr_strays(logmgr *m, lm_stray *out, int max, int *total);

/* ---- names (also for tools and tests) ---------------------------------------------- */

/* Splits "<topic>-<partition>" into its parts; false for any other name. */
bool logmgr_parse_partition(const char *dname, kstr *topic, int32_t *index);
/* Whether dname is a set-aside name; what its name says of it. */
bool logmgr_parse_stray(const char *dname, kuuid *owner, bool *known, int32_t *index);
/* Reads dir/partition.metadata: 1 (id set), 0 absent, -1 unreadable. */
int logmgr_read_owner(const sl_vfs *v, const char *dir, kuuid *id);
void logmgr_uuid_hex(kuuid id, char out[33]);

#endif
