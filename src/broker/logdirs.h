/*
 * logdirs.h - the directories under each log.dirs root and who owns them.
 *
 * A partition lives in <root>/<topic>-<partition>/, which holds
 * partition.metadata naming its topic id (LOGDIRS_OWNER_FILE). This module
 * reads and writes that file, parses directory names, and carries out the
 * two things the registry (topics.c) may decide to do with a directory that
 * is not the live partition it names:
 *
 *   - set it aside: rename it to <topic>-<partition>.<id>-stray (the id in
 *     32 hex digits, or "unknown" when partition.metadata is missing or
 *     unreadable; ".<n>" before "-stray" when that name is taken). Nothing
 *     in it is touched. Used for every directory whose owner the metadata log
 *     does not explain (unknown id, an id that is not the topic's).
 *   - remove it: only for directories whose owner id the metadata log
 *     records as deleted, or as the target of a creation that never
 *     completed. Never on a disagreement.
 *
 * Names: a partition directory always ends in "-<digits>" and a set-aside
 * one in "-stray", so neither is mistaken for the other, whatever the topic
 * is called. Directory names are at most NAME_MAX (255) bytes: a long topic
 * name is shortened in the set-aside name (partition.metadata inside still
 * says whose it was).
 *
 * No locking: callers serialise (the registry's change mutex, or start-up).
 */
#ifndef SLUICE_BROKER_LOGDIRS_H
#define SLUICE_BROKER_LOGDIRS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"

#define LOGDIRS_OWNER_FILE "partition.metadata"
#define LOGDIRS_NAME_MAX   255

/* Reads the topic id of the partition directory dir: 1 (id set), 0 when
 * there is no partition.metadata, -1 when it is unreadable or malformed. */
int logdirs_read_owner(const char *dir, kuuid *id);
/* Writes dir/partition.metadata durably (tmp, fsync, rename). 0 or -1. */
int logdirs_write_owner(const char *dir, kuuid id);

/* Splits "<topic>-<partition>" (a directory name) into its parts. False for
 * any other name, set-aside names included. */
bool logdirs_parse_partition(const char *dname, kstr *topic, int32_t *index);
/* Whether dname is a set-aside directory's name; if so and owner/index are
 * not NULL, what its name says: the owner id (*known false for "unknown")
 * and the partition index (-1 when the name was shortened past it). */
bool logdirs_parse_stray(const char *dname, kuuid *owner, bool *known, int32_t *index);

/* Creates root/dname (a partition directory name) with its owner file
 * already in it: made as a hidden ".creating-<id>-<partition>" directory,
 * the owner written and fsynced, then renamed into place, so a crash never
 * leaves a partition directory without its owner. The rename is made
 * durable by logdirs_sync(root), which a caller creating many partitions
 * calls once for all of them. 0, or -1 with errno. */
int logdirs_create(const char *root, const char *dname, kuuid owner);
/* fsyncs the directory root (new entries in it become durable). 0 or -1. */
int logdirs_sync(const char *root);
/* Whether dname is such a hidden directory (left by a crash inside
 * logdirs_create: it never held a partition's data). */
bool logdirs_parse_creating(const char *dname);

/* Renames root/dname to its set-aside name (owner NULL = unknown), fsyncs
 * root, and writes the new name to out. 0, or -1 with errno set. */
int logdirs_set_aside(const char *root, const char *dname, const kuuid *owner, char *out, size_t outn);
/* Removes the directory and the plain files in it. 0 (also when absent) or -1. */
int logdirs_remove(const char *dir);
/* Bytes of the plain files in dir (a partition directory is flat). */
int64_t logdirs_bytes(const char *dir);

/* Lowercase hex of an id, NUL-terminated. */
void logdirs_uuid_hex(kuuid id, char out[33]);

#endif
