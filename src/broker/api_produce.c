/*
 * api_produce.c - Produce (key 0): append record batches to partition logs.
 *
 * Each partition's records are checked against what the request version
 * allows (exactly one magic-2 batch from v3 on; no zstd before v7) and
 * appended by the storage layer, which validates the batch (CRC, sizes
 * against the topic's max.message.bytes, timestamps) and assigns offsets in
 * place in the request's own buffer: the bytes are written to the segment as
 * they arrived. Every partition gets its own error code; one bad partition
 * does not fail the others.
 *
 * Old clients (v0-2) send legacy message sets (magic 0 or 1, legacy.h). The
 * log holds only magic-2 batches, so such a set is validated and converted
 * here, in the request's arena, before the append: every entry must pass its
 * CRC (CORRUPT_MESSAGE otherwise), no entry (a message, or a compressed
 * wrapper as a whole) may exceed max.message.bytes (MESSAGE_TOO_LARGE), and
 * inner messages of a wrapper must be well formed (INVALID_RECORD). Each
 * compressed wrapper becomes one batch with the wrapper's codec; runs of
 * uncompressed messages become uncompressed batches, split so that none
 * exceeds max.message.bytes. Timestamps carry over (-1 for magic 0). As with
 * Kafka, below v3 the magic is not tied to the request version: magic-2
 * batches on v0-2 take the normal path, and a v0 request may carry magic 1.
 * A compressed wrapper may decompress a thousandfold, so that work is
 * charged to the broker-wide conversion budget (fetch.h) it shares with Fetch
 * down-conversion; while the budget is used up (or past the request's work
 * deadline) wrappers are refused with REQUEST_TIMED_OUT, which producers
 * retry, and throttle_time_ms says when to.
 *
 * acks: 0 sends no response (but closes the connection if any partition
 * failed, so the producer notices, as Kafka does); 1 answers once the batch
 * is in the leader's log; -1 (all) once the high watermark covers it, i.e.
 * every ISR member has it: with an ISR of one (a single node) at once,
 * otherwise the request waits in the purgatory (fetch_wait, woken when the
 * HW moves) until then or timeout_ms (REQUEST_TIMED_OUT), and a partition
 * whose ISR is below min.insync.replicas (topic or broker) is refused before
 * the append with NOT_ENOUGH_REPLICAS, or answered
 * NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank below it while the
 * records waited; one whose leadership moved away meanwhile gets
 * NOT_LEADER_OR_FOLLOWER (the producer retries at the new leader). Other values get
 * INVALID_REQUIRED_ACKS. Produce never creates topics. Transactions do not exist yet, so no partition is ever
 * in one: a transactional batch (with a producer id) gets INVALID_TXN_STATE, as Kafka answers for a partition
 * not added to the transaction; storage refuses one without a producer id (INVALID_RECORD).
 *
 * Idempotent batches (a producer id, not transactional) are held to the
 * producer rules by the replica (replica.h, storage/producer_state.h): a
 * retry of one of the producer's last five batches is answered with its
 * original offsets and appends nothing; sequence gaps, fenced epochs and
 * unknown producers get their Kafka errors (UNKNOWN_PRODUCER_ID is
 * OUT_OF_ORDER_SEQUENCE_NUMBER below v5, which predates it).
 *
 * Storage decodes every record (see plog_append); from v8 on a refusal
 * carries its reason in error_message and, when one record is at fault, in
 * record_errors (that record's index in the batch), and each refusal of the
 * bytes is logged with the topic, partition and reason.
 *
 * The append goes through the partition's replica machine (replica.h),
 * which checks leadership and moves the high watermark; its `changed`
 * action wakes the long-polling fetches of that partition (fetch.h), so
 * this file never does.
 */
#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "broker/apis.h"
#include "broker/authz.h"
#include "broker/txns.h"
#include "core/clock.h"
#include "broker/broker.h"
#include "broker/fetch.h"
#include "controller/controller.h"
#include "core/log.h"
#include "obs/metrics.h"
#include "proto/batch.h"
#include "proto/legacy.h"

/* Checks that depend on the request version (and on what this broker
 * supports), before storage sees the bytes. Returns 0 or a Kafka error code,
 * with *why set to a message for the client where one helps. */
static int16_t check_version_rules(int16_t ver, kbytes records, bool has_txn_id, const char **why) {
    *why = NULL;
    if (records.len <= 0)
        return ver >= 3 ? KAFKA_ERR_INVALID_RECORD : KAFKA_ERR_CORRUPT_MESSAGE;
    if (records.len > BATCH_OFF_MAGIC && records.ptr[BATCH_OFF_MAGIC] != BATCH_MAGIC) {
        /* v0-2 legacy sets never get here (see legacy_convert). */
        if ((int8_t)records.ptr[BATCH_OFF_MAGIC] > BATCH_MAGIC || (int8_t)records.ptr[BATCH_OFF_MAGIC] < 0)
            return KAFKA_ERR_CORRUPT_MESSAGE;
        return ver <= 2 ? KAFKA_ERR_CORRUPT_MESSAGE : KAFKA_ERR_INVALID_RECORD;
    }
    batch_cursor c;
    batch_cursor_init(&c, records.ptr, (size_t)records.len);
    int batches = 0, rc;
    const uint8_t *bp;
    size_t size;
    batch_header h;
    /* Bounded by the record bytes: each batch is at least 61 bytes. */
    while ((rc = batch_cursor_next(&c, &bp, &size, &h)) == BATCH_OK) {
        batches++;
        if (ver < 7 && batch_codec_of(&h) == BATCH_CODEC_ZSTD)
            return KAFKA_ERR_UNSUPPORTED_COMPRESSION_TYPE;
        if ((h.attributes & BATCH_ATTR_TRANSACTIONAL) && h.producer_id >= 0 && !has_txn_id) {
            *why = "a transactional batch in a produce request without a transactional id";
            return KAFKA_ERR_INVALID_TXN_STATE;
        }
    }
    /* Malformed bytes are left to storage, which names the exact problem. */
    if (rc == -1 && ver >= 3 && batches != 1)
        return KAFKA_ERR_INVALID_RECORD;
    return KAFKA_ERR_NONE;
}

/* Whether a v0-2 partition's records are a legacy message set. */
static bool is_legacy_set(int16_t ver, kbytes records) {
    if (ver > 2 || records.len <= 0)
        return false;
    int magic = legacy_peek_magic(records.ptr, (size_t)records.len);
    return magic == 0 || magic == 1;
}

static int16_t legacy_error(int e) {
    switch (e) {
    case BATCH_ERECORDS:
        return KAFKA_ERR_INVALID_RECORD;
    case BATCH_ENOMEM:
        return KAFKA_ERR_MESSAGE_TOO_LARGE;
    default: /* CRC, truncation, bad sizes or magic, unknown codec bits */
        return KAFKA_ERR_CORRUPT_MESSAGE;
    }
}

/* A piece of a legacy set that becomes one batch. */
typedef struct legacy_chunk {
    size_t pos, len;
    int codec;
    uint8_t *batch;
    size_t batch_len;
} legacy_chunk;

/* Producers whose conversions the budget refused: at most so many lines. */
static log_ratelimit conv_refused_rl = LOG_RATELIMIT_DEFAULT;

/* Converts a legacy message set into magic-2 batches in r's arena (see the
 * top of the file). Returns 0 with *out / *out_len set, or a Kafka error;
 * *throttle_ms is raised when the conversion budget refused the work. */
static int16_t legacy_convert(breq *r, const char *topic, int64_t max_msg, kbytes records, uint8_t **out,
                              size_t *out_len, int32_t *throttle_ms) {
    const uint8_t *buf = records.ptr;
    size_t len = (size_t)records.len;
    /* Decompressed bytes allowed per wrapper, as storage allows per batch,
     * and never more than one request's conversion limit (so the broker-wide
     * budget, whose burst is at least that, can always cover it). */
    size_t max_uncompressed = (size_t)max_msg * 64;
    int64_t conv_limit = r->b->cfg ? r->b->cfg->conversion_max_bytes_per_request : 0;
    if (conv_limit > 0 && (uint64_t)conv_limit < max_uncompressed)
        max_uncompressed = (size_t)conv_limit;
    /* Every entry is at least 26 bytes, so this bounds the chunk count. */
    size_t cap = len / (LEGACY_LOG_OVERHEAD + LEGACY_MIN_MESSAGE_V0) + 1;
    legacy_chunk *chunks = breq_calloc(r, cap, sizeof *chunks);
    if (chunks == NULL)
        return KAFKA_ERR_MESSAGE_TOO_LARGE;
    size_t n = 0, pos = 0;
    bool run_open = false; /* chunks[n - 1] is a run of uncompressed messages */
    while (pos < len) {
        if (len - pos < LEGACY_LOG_OVERHEAD + LEGACY_MIN_MESSAGE_V0)
            return KAFKA_ERR_CORRUPT_MESSAGE;
        int32_t size = (int32_t)wire_be32(buf + pos + 8);
        if (size < LEGACY_MIN_MESSAGE_V0 || (size_t)size > len - pos - LEGACY_LOG_OVERHEAD)
            return KAFKA_ERR_CORRUPT_MESSAGE;
        size_t entry = (size_t)size + LEGACY_LOG_OVERHEAD;
        if ((int64_t)entry > max_msg)
            return KAFKA_ERR_MESSAGE_TOO_LARGE;
        int codec = buf[pos + LEGACY_LOG_OVERHEAD + 5] & LEGACY_ATTR_CODEC_MASK;
        if (codec == 0 && run_open && (int64_t)(chunks[n - 1].len + entry) <= max_msg - BATCH_HEADER_SIZE) {
            chunks[n - 1].len += entry;
        } else {
            assert(n < cap);
            chunks[n++] = (legacy_chunk){.pos = pos, .len = entry, .codec = codec};
            run_open = codec == 0;
        }
        pos += entry;
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        legacy_chunk *c = &chunks[i];
        /* A wrapper of a few KB may decompress to max_uncompressed (twice:
         * legacy_to_batch validates, then converts): it reserves that from
         * the broker-wide conversion budget before it starts, as Fetch
         * down-conversion does, and pays what it really did afterwards. */
        int64_t reserved = c->codec != 0 ? (int64_t)max_uncompressed : 0;
        if (reserved > 0 && (breq_should_stop(r) || !fetch_dconv_reserve(r->b, reserved))) {
            int64_t wait = fetch_dconv_wait_ms(r->b, reserved);
            if (wait < 1)
                wait = 1;
            if (wait > *throttle_ms)
                *throttle_ms = wait > INT32_MAX ? INT32_MAX : (int32_t)wait;
            LOG_INFO_LIMITED(
                &conv_refused_rl, "produce",
                "refused a compressed legacy message set to %s from %s: the conversion budget "
                "(sluice.conversion.max.bytes.per.second) is used up; answered REQUEST_TIMED_OUT",
                topic, r->net->peer);
            return KAFKA_ERR_REQUEST_TIMED_OUT;
        }
        size_t dec = 0;
        int e = legacy_to_batch(buf + c->pos, c->len, &r->mem, max_uncompressed, c->codec, false, &c->batch,
                                &c->batch_len, &dec);
        int64_t work = c->codec == 0 ? (int64_t)c->len
                       : dec > 0     ? 2 * (int64_t)dec
                                     : (int64_t)max_uncompressed;
        fetch_dconv_settle(r->b, reserved, work);
        if (e != BATCH_OK)
            return legacy_error(e);
        total += c->batch_len;
    }
    if (n == 1) {
        *out = chunks[0].batch;
        *out_len = chunks[0].batch_len;
        return KAFKA_ERR_NONE;
    }
    uint8_t *all = total ? breq_alloc(r, total) : NULL;
    if (all == NULL)
        return KAFKA_ERR_MESSAGE_TOO_LARGE;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(all + at, chunks[i].batch, chunks[i].batch_len);
        at += chunks[i].batch_len;
    }
    *out = all;
    *out_len = total;
    return KAFKA_ERR_NONE;
}

/* Fills pr for a refused partition. why (may be NULL or empty) is the
 * specific reason; record >= 0 names the record of the batch at fault. */
static void set_error(breq *r, kafka_produce_response_partition_produce_response *pr, int64_t max_msg,
                      int16_t err, const char *why, int32_t record) {
    pr->error_code = err;
    pr->base_offset = -1;
    pr->log_append_time_ms = -1;
    pr->log_start_offset = -1;
    if (r->hdr.api_version < 8)
        return;
    size_t cap = PLOG_ERROR_MSG + 32;
    char *msg = breq_alloc(r, cap);
    if (msg == NULL)
        return;
    if (why != NULL && why[0] != 0) {
        snprintf(msg, cap, "%s: %s", kafka_error_name(err), why);
        pr->error_message = kstr_c(msg);
        if (record >= 0) {
            kafka_produce_response_batch_index_and_error_message *re = breq_calloc(r, 1, sizeof *re);
            if (re != NULL) {
                re->batch_index = record;
                re->batch_index_error_message = kstr_c(msg);
                pr->record_errors = re;
                pr->record_errors_count = 1;
            }
        }
        return;
    }
    if (err == KAFKA_ERR_MESSAGE_TOO_LARGE && max_msg > 0)
        snprintf(msg, cap, "a record batch is larger than the topic's max.message.bytes (%lld)",
                 (long long)max_msg);
    else if (err == KAFKA_ERR_INVALID_RECORD && r->hdr.api_version >= 3)
        snprintf(msg, cap,
                 "invalid record batch (produce v3+ takes exactly one magic-2 batch per partition)");
    else
        snprintf(msg, cap, "%s", kafka_error_name(err));
    pr->error_message = kstr_c(msg);
}

/* acks=all: a partition whose HW has not reached its records yet. */
typedef struct ack_wait {
    rpart *p;     /* referenced */
    int64_t need; /* the HW that covers the records */
    kafka_produce_response_partition_produce_response *pr;
    bool done;
} ack_wait;

typedef struct ack_state {
    ack_wait *w;
    int n;
} ack_state;

/* Whether w is decided (rpart_acked); *err gets the outcome. */
static bool ack_decided(ack_wait *w, int16_t *err) { return rpart_acked(w->p, w->need, err); }

static bool acks_ready(breq *r, void *arg) {
    (void)r;
    ack_state *as = arg;
    for (int i = 0; i < as->n; i++) {
        int16_t e;
        if (!as->w[i].done && !ack_decided(&as->w[i], &e))
            return false;
    }
    return true;
}

static void acks_finish(breq *r, void *arg, bool expired) {
    (void)expired;
    ack_state *as = arg;
    for (int i = 0; i < as->n; i++) {
        ack_wait *w = &as->w[i];
        int16_t e = KAFKA_ERR_NONE;
        ack_decided(w, &e);
        if (e != KAFKA_ERR_NONE) {
            w->pr->error_code = e;
            w->pr->base_offset = -1;
            LOG_DEBUG("produce", "acks=all for %s-%d from %s: %s", w->p->topic, w->p->index, r->net->peer,
                      kafka_error_name(e));
        }
        rpart_release(w->p);
        w->p = NULL;
    }
    breq_complete(r);
}

breq_status api_produce(breq *r) {
    kafka_produce_request *req = r->req;
    kafka_produce_response *resp = r->resp;
    int16_t ver = r->hdr.api_version;
    bool bad_acks = req->acks != 0 && req->acks != 1 && req->acks != -1;
    int64_t now = clock_wall_ms();
    int failed = 0;
    int32_t throttle_ms = 0; /* the conversion budget refused some work */
    md_image *img = NULL;

    int32_t nt = req->topic_data_count > 0 ? req->topic_data_count : 0;
    int32_t n_parts = 0;
    for (int32_t i = 0; i < nt; i++)
        n_parts += req->topic_data[i].partition_data_count > 0 ? req->topic_data[i].partition_data_count : 0;
    ack_state *acks = NULL;
    if (req->acks == -1 && n_parts > 0) {
        acks = breq_calloc(r, 1, sizeof *acks);
        if (acks == NULL || (acks->w = breq_calloc(r, (size_t)n_parts, sizeof *acks->w)) == NULL)
            return BREQ_CLOSE;
    }
    resp->responses = nt ? breq_calloc(r, (size_t)nt, sizeof *resp->responses) : NULL;
    if (nt && resp->responses == NULL)
        return BREQ_CLOSE;
    resp->responses_count = nt;

    /* A transactional producer needs WRITE on its transactional id. */
    bool txn_denied = req->transactional_id.len >= 0 &&
                      !bauthz_allow(r, ACL_OP_WRITE, ACL_RES_TRANSACTIONAL_ID, req->transactional_id);
    img = bmeta_image(r->b->meta);
    for (int32_t i = 0; i < nt; i++) {
        kafka_produce_request_topic_produce_data *td = &req->topic_data[i];
        kafka_produce_response_topic_produce_response *tr = &resp->responses[i];
        kafka_produce_response_topic_produce_response_init(tr);
        tr->name = td->name;
        int32_t np = td->partition_data_count > 0 ? td->partition_data_count : 0;
        tr->partition_responses = np ? breq_calloc(r, (size_t)np, sizeof *tr->partition_responses) : NULL;
        if (np && tr->partition_responses == NULL) {
            md_image_unref(img);
            return BREQ_CLOSE;
        }
        tr->partition_responses_count = np;

        int16_t terr = KAFKA_ERR_NONE;
        const md_topic *t = NULL;
        char msg[CTRL_MSG_MAX];
        if (bad_acks)
            terr = KAFKA_ERR_INVALID_REQUIRED_ACKS;
        else if (txn_denied)
            terr = KAFKA_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        else if (!bauthz_allow(r, ACL_OP_WRITE, ACL_RES_TOPIC, td->name))
            terr = KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED;
        else if (ctrl_validate_topic_name(td->name, msg, sizeof msg) != 0)
            terr = KAFKA_ERR_INVALID_TOPIC_EXCEPTION;
        else if ((t = md_image_topic(img, td->name)) == NULL)
            terr = KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        else if (ctrl_internal_topic(td->name))
            terr = KAFKA_ERR_INVALID_TOPIC_EXCEPTION; /* clients may not write internal topics */

        /* Metrics: one produce request per topic entry, as Kafka counts. */
        uint64_t m_msgs = 0, m_bytes = 0;
        bool m_failed = np == 0 && terr != KAFKA_ERR_NONE;
        for (int32_t j = 0; j < np; j++) {
            kafka_produce_request_partition_produce_data *pd = &td->partition_data[j];
            kafka_produce_response_partition_produce_response *pr = &tr->partition_responses[j];
            kafka_produce_response_partition_produce_response_init(pr);
            pr->index = pd->index;
            pr->record_errors_count = 0;
            int16_t err = terr;
            rpart *p = NULL;
            if (err == KAFKA_ERR_NONE)
                p = bmeta_partition(r->b->meta, t, pd->index, &err);
            uint8_t *data = (uint8_t *)pd->records.ptr;
            size_t data_len = pd->records.len > 0 ? (size_t)pd->records.len : 0;
            const char *why = NULL;
            replica_append_result ar;
            memset(&ar, 0, sizeof ar);
            ar.info.error_record = -1;
            if (err == KAFKA_ERR_NONE && is_legacy_set(ver, pd->records))
                err = legacy_convert(r, t->name, rpart_max_message_bytes(p), pd->records, &data, &data_len,
                                     &throttle_ms);
            else if (err == KAFKA_ERR_NONE)
                err = check_version_rules(ver, pd->records, req->transactional_id.len >= 0, &why);
            /* A transactional producer's batch: its partition must be in
             * the transaction (one flag check for everyone else). */
            if (err == KAFKA_ERR_NONE && req->transactional_id.len >= 0)
                err =
                    txns_verify_produce(r->b, req->transactional_id, pd->records, td->name, pd->index, &why);
            if (err == KAFKA_ERR_NONE) {
                rpart_lock(p);
                const replica_state *st = replica_get_state(p->r);
                if (req->acks == -1 && st->role == REPLICA_LEADER && st->n_isr < p->cfg.min_insync_replicas) {
                    /* Refused before the append, as Kafka does. */
                    err = KAFKA_ERR_NOT_ENOUGH_REPLICAS;
                    snprintf(ar.info.error_msg, sizeof ar.info.error_msg,
                             "the partition has %d in-sync replica(s); min.insync.replicas is %d", st->n_isr,
                             p->cfg.min_insync_replicas);
                } else {
                    err = replica_append(p->r, data, data_len, now, &ar);
                }
                rpart_unlock(p);
                why = ar.info.error_msg;
                /* UNKNOWN_PRODUCER_ID came with produce v5's log start
                 * offset; older producers know only the sequence error. */
                if (err == KAFKA_ERR_UNKNOWN_PRODUCER_ID && ver < 5)
                    err = KAFKA_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
                if (err == KAFKA_ERR_NONE && ar.duplicate)
                    LOG_DEBUG("produce",
                              "duplicate batch from %s answered with its original offset %lld topic=%s "
                              "partition=%d",
                              r->net->peer, (long long)ar.base_offset, t->name, pd->index);
            }
            if (err != KAFKA_ERR_NONE) {
                set_error(r, pr, p ? rpart_max_message_bytes(p) : -1, err, why, ar.info.error_record);
                rpart_release(p);
                failed++;
                m_failed = true;
                if (why != NULL && why[0] != 0)
                    LOG_INFO("produce", "refused records from %s: %s: %s topic=%.*s partition=%d",
                             r->net->peer, kafka_error_name(err), why, td->name.len > 0 ? td->name.len : 0,
                             td->name.len > 0 ? td->name.ptr : "", pd->index);
                else
                    LOG_DEBUG("produce", "rejected from %s: %s topic=%.*s partition=%d", r->net->peer,
                              kafka_error_name(err), td->name.len > 0 ? td->name.len : 0,
                              td->name.len > 0 ? td->name.ptr : "", pd->index);
                continue;
            }
            if (acks != NULL && ar.hw <= ar.last_offset)
                acks->w[acks->n++] = (ack_wait){p, ar.last_offset + 1, pr, false}; /* keeps the reference */
            else
                rpart_release(p);
            pr->error_code = KAFKA_ERR_NONE;
            pr->base_offset = ar.base_offset;
            pr->log_append_time_ms = ar.log_append_time;
            pr->log_start_offset = ar.log_start_offset;
            m_msgs += (uint64_t)ar.info.records;
            m_bytes += data_len;
        }
        obs_produced(r->b->metrics, t ? obs_topic_of(r->b->metrics, t->name, (size_t)t->name_len) : NULL,
                     m_msgs, m_bytes, m_failed);
    }
    md_image_unref(img);
    resp->throttle_time_ms = throttle_ms;
    if (req->acks == 0) {
        if (failed) {
            LOG_INFO("produce", "closing connection from %s: %d partition(s) failed in an acks=0 produce",
                     r->net->peer, failed);
            return BREQ_CLOSE;
        }
        return BREQ_NO_RESPONSE;
    }
    if (acks != NULL && acks->n > 0) {
        /* acks=all: answered once the ISR has the records (the HW covers
         * them), or at timeout_ms. */
        rpart **parts = breq_calloc(r, (size_t)acks->n, sizeof *parts);
        for (int i = 0; parts != NULL && i < acks->n; i++)
            parts[i] = acks->w[i].p;
        int64_t wait = req->timeout_ms > 0 ? req->timeout_ms : 0;
        breq_parked(r);
        if (parts != NULL && !acks_ready(r, acks) &&
            fetch_wait(r->b, r, parts, acks->n, fetch_now_ms() + wait, acks_ready, acks_finish, acks))
            return BREQ_ASYNC;
        acks_finish(r, acks, false);
        return BREQ_ASYNC; /* completed by acks_finish */
    }
    return BREQ_DONE;
}
