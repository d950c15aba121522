/*
 * codec.h - the mapping between the Raft machine's messages (raft.h) and
 * Kafka's KRaft requests and responses (the generated structs of
 * proto/gen/kafka_msgs.h), so the quorum speaks the Kafka wire protocol:
 *
 *   RAFT_VOTE_*                  <-> Vote (52) v2 (PreVote, KIP-996)
 *   RAFT_BEGIN_QUORUM_EPOCH_*    <-> BeginQuorumEpoch (53) v1
 *   RAFT_END_QUORUM_EPOCH_*      <-> EndQuorumEpoch (54) v1
 *   RAFT_FETCH_*                 <-> Fetch (1) v17 of `__cluster_metadata`
 *                                    partition 0, by its fixed topic id
 *
 * Every KRaft request names one topic (`__cluster_metadata`) and one
 * partition (0); anything else is refused here (RAFT_CODEC_EOTHER), as is a
 * request without exactly one of each. Pure: no I/O, allocation only from
 * the caller's arena; a response's records point into the bytes the caller
 * decoded (or, encoding, at the raft_msg's).
 */
#ifndef SLUICE_RAFT_CODEC_H
#define SLUICE_RAFT_CODEC_H

#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"
#include "proto/gen/kafka_msgs.h"
#include "raft/raft.h"

#define RAFT_METADATA_TOPIC "__cluster_metadata"
#define RAFT_VOTE_VERSION   2
#define RAFT_QUORUM_VERSION 1 /* Begin/EndQuorumEpoch */
#define RAFT_FETCH_VERSION  17

enum {
    RAFT_CODEC_OK = 0,
    RAFT_CODEC_EOTHER = -1, /* not a request for the metadata partition, or malformed */
    RAFT_CODEC_ENOMEM = -2,
    RAFT_CODEC_ECLUSTER = -3, /* a cluster id that is not ours */
};

/* Kafka's fixed id of the metadata topic (0, 1). */
kuuid raft_metadata_topic_id(void);

/* The API key and version a raft message travels as. */
void raft_codec_api(raft_msg_kind kind, int16_t *api_key, int16_t *version);

/* Builds the Kafka request struct (api_key's request_struct_size, from a)
 * for a request message. cluster_id may be NULL. */
int raft_codec_request(const raft_msg *m, const char *cluster_id, arena *a, void **out);

/* Fills a Kafka response struct (already initialised, as the broker's
 * request path gives it) from a response message. */
int raft_codec_fill_response(const raft_msg *m, arena *a, void *resp);

/* A decoded Kafka request (api_key: Vote, BeginQuorumEpoch,
 * EndQuorumEpoch or Fetch) into a raft message; *from gets the sending
 * voter (candidate, leader or replica). cluster_id: ours, or NULL to accept
 * any. A Fetch of another topic is RAFT_CODEC_EOTHER (not for the quorum). */
int raft_codec_parse_request(int16_t api_key, const void *req, const char *cluster_id, raft_msg *out,
                             int32_t *from);

/* Whether a decoded Fetch request is for the metadata partition (so the
 * broker hands it to the quorum rather than to the partitions). */
bool raft_codec_is_metadata_fetch(const kafka_fetch_request *req);

/* A decoded Kafka response to a request of `kind` into a raft message
 * (correlation id not set: the caller's). A top-level error becomes the
 * message's error code. */
int raft_codec_parse_response(raft_msg_kind kind, const void *resp, raft_msg *out);

#endif
