/*
 * log_cleaner.h - the broker's cleaner threads (log.cleaner.threads): they
 * compact the logs of cleanup.policy=compact topics with storage/cleaner.h.
 *
 * Each thread repeats: look at every local partition whose topic has the
 * compact policy and whose log is online, pick the due one with the highest
 * dirty ratio that no other thread is cleaning, run one pass on it; when
 * none is due, sleep log.cleaner.backoff.ms (woken early by a stop). The
 * chosen partition is referenced for the pass, so deleting its topic waits
 * for the pass to end. The threads share one byte budget per second
 * (log.cleaner.io.max.bytes.per.second) and split
 * log.cleaner.dedupe.buffer.size between them.
 *
 * Lifecycle: cleaners_start() after the partitions exist; cleaners_stop()
 * before they close (it abandons passes in progress and joins). With
 * log.cleaner.enable=false or no threads nothing starts.
 */
#ifndef SLUICE_BROKER_LOG_CLEANER_H
#define SLUICE_BROKER_LOG_CLEANER_H

#include "broker/config.h"
#include "broker/partitions.h"

#define CLEANERS_MAX 16 /* threads at most, whatever log.cleaner.threads says */

typedef struct cleaners cleaners;

struct sl_env;
/* NULL when disabled (not an error) or on failure (logged). */
cleaners *cleaners_start(const broker_config *bc, parts *ps, const struct sl_env *env);
void cleaners_stop(cleaners *cs);

#endif
