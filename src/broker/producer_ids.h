/*
 * producer_ids.h - the producer ids this broker hands out to
 * InitProducerId: blocks of CTRL_PRODUCER_ID_BLOCK ids, each recorded in
 * the metadata log (a ProducerIdsRecord) before any id of it is used, so no
 * id is handed out twice, across restarts and controllers. On a single node
 * and on the active controller the block comes from this node's
 * controller; on another quorum member from the active controller over
 * AllocateProducerIds (key 67) on its controller listener.
 *
 * Thread-safe: one mutex; a caller that finds the block used up fetches the
 * next one while holding it (bounded by quorum.request.timeout.ms), so
 * concurrent callers never fetch two blocks for one need.
 */
#ifndef SLUICE_BROKER_PRODUCER_IDS_H
#define SLUICE_BROKER_PRODUCER_IDS_H

#include <stdint.h>

struct broker;
typedef struct producer_ids producer_ids;

producer_ids *producer_ids_create(void);
void producer_ids_destroy(producer_ids *p);

/* A new producer id into *id: 0, or a Kafka error (logged) when no block
 * could be had (COORDINATOR_NOT_AVAILABLE, which clients retry; or the
 * controller's answer). */
int16_t producer_ids_next(struct broker *b, int64_t *id);

#endif
