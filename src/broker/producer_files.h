/*
 * producer_files.h - a partition's producer-state snapshots on disk:
 * `<20-digit offset>.snapshot` files in the partition's directory, Kafka's
 * name and layout (storage/producer_state.h), each holding the producer
 * state of the log below that offset.
 *
 * Writes are atomic (a .tmp file, fsync, rename, directory fsync); the
 * newest two are kept, so a damaged newest one still leaves an older one to
 * start from. A snapshot that does not decode (crc, size, contents) is
 * logged, removed and skipped; one past the log end (the log was cut after
 * it was written) is removed. Files are read through the storage vfs and
 * never larger than PFILES_MAX_BYTES.
 *
 * Beside each snapshot of a partition that had transactions,
 * `<offset>.snapshot.aborted` holds the aborted transactions below that
 * offset (pstate_aborted_encode); it is written first, loaded with its
 * snapshot and removed with it. A snapshot without one (written before
 * transactions existed) loads with an empty list.
 */
#ifndef SLUICE_BROKER_PRODUCER_FILES_H
#define SLUICE_BROKER_PRODUCER_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "core/env.h"
#include "storage/producer_state.h"

#define PFILES_SUFFIX      ".snapshot"
#define PFILES_ABORTED_EXT ".aborted" /* <offset>.snapshot.aborted: the aborted transactions below it */
#define PFILES_KEEP        2
#define PFILES_MAX_BYTES   (64 << 20)

/* Loads the newest usable snapshot at or below log_end into s (what names
 * the partition in log lines). Returns its offset, or -1 with s empty when
 * there is none. */
int64_t pfiles_load(const sl_vfs *v, const char *dir, const char *what, int64_t log_end, pstate *s,
                    int64_t now);
/* Writes abuf (pstate_aborted_encode's; NULL: none) and buf (pstate_snapshot_encode's, taken under the
 * partition's serialisation; the write needs none) as dir/<offset>.snapshot and removes all but the newest
 * PFILES_KEEP. 0 or -errno (logged). */
int pfiles_write(const sl_vfs *v, const char *dir, const char *what, int64_t offset, const uint8_t *buf,
                 size_t len, const uint8_t *abuf, size_t alen);
/* Removes the snapshots with an offset above `above` (-1: every one). */
void pfiles_remove_above(const sl_vfs *v, const char *dir, int64_t above);

#endif
