/*
 * mirror_eos.c - exactly-once mode of `sluice mirror`
 * (exactly.once.source.support=enabled|auto).
 *
 * Each cycle of mirror.c becomes one transaction on the target: the copies
 * of the cycle and the source positions they reach are committed together.
 * The positions are the offsets of the mirror's group (mirror.group.id) *on
 * the target*, keyed by the target topic name and partition, holding the
 * next source offset to copy; they go into the transaction with
 * TxnOffsetCommit (rd_kafka_send_offsets_to_transaction), as Kafka's
 * consume-transform-produce loop does, except that the "input" offsets
 * belong to another cluster. So either the copies and the new positions are
 * both on the target, or neither is, and a read_committed consumer of the
 * target sees every source record once.
 *
 * The producer's transactional.id is the mirror group id, so it is stable
 * across restarts: a restarted mirror's init_transactions fences its
 * predecessor (whose open transaction is aborted), and only then reads the
 * positions back from the target. The source group is still committed after
 * each transaction, for lag monitoring and as the start of partitions the
 * target has no position for (a mirror switched from at-least-once); a
 * session starts from the greater of the two, since during exactly-once
 * running the source group never passes the target's.
 *
 * Error classes, as librdkafka reports them:
 *   - fatal (fenced: another mirror with the same id took over; or the
 *     target refuses transactions): m->fatal, the mirror stops;
 *   - abortable: the transaction is aborted, the consumer is rewound to the
 *     committed positions (assign_needed), the next cycle copies again;
 *   - anything else (timeouts, a side down, failed deliveries): the session
 *     ends and the next one's init_transactions settles the open
 *     transaction (fenced and aborted, or completed if its commit was
 *     already decided), then the positions are read again.
 */
#include <assert.h>
#include <string.h>
#include <unistd.h>

#include "tools/mirror.h"

static bool fenced_code(rd_kafka_resp_err_t c) {
    return c == RD_KAFKA_RESP_ERR__FENCED || c == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
           c == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
}

/* A fatal error: the producer is done for. Says why and stops the mirror. */
static void fatal(mirror *m, const rd_kafka_error_t *e, const char *what) {
    char why[512] = "";
    rd_kafka_resp_err_t c = rd_kafka_fatal_error(m->prod, why, sizeof why);
    if (c == RD_KAFKA_RESP_ERR_NO_ERROR && e) {
        c = rd_kafka_error_code(e);
        snprintf(why, sizeof why, "%s", rd_kafka_error_string(e));
    }
    if (fenced_code(c) || (e && fenced_code(rd_kafka_error_code(e))))
        cli_err("mirror",
                "%s: the target fenced transactional id '%s': another mirror with the same "
                "mirror.group.id took over (or this one's transaction outlived transaction.timeout.ms); "
                "stopping (%s)",
                what, m->s.mirror_group, why);
    else
        cli_err("mirror", "%s: fatal transactional error on the target; stopping (%s)", what, why);
    m->fatal = true;
}

void mirror_eos_check_fatal(mirror *m, const char *what) {
    char why[8];
    if (!m->fatal && m->prod && rd_kafka_fatal_error(m->prod, why, sizeof why) != RD_KAFKA_RESP_ERR_NO_ERROR)
        fatal(m, NULL, what);
}

int mirror_eos_init(mirror *m) {
    m->in_txn = false;
    /* Twice the call bound: the coordinator may first finish the
     * predecessor's transaction (CONCURRENT_TRANSACTIONS, retried). */
    rd_kafka_error_t *e = rd_kafka_init_transactions(m->prod, 2 * m->timeout_ms);
    if (e == NULL)
        return CLI_OK;
    int rc = CLI_EUNREACH;
    if (rd_kafka_error_is_fatal(e)) {
        char why[512];
        if (rd_kafka_fatal_error(m->prod, why, sizeof why) == RD_KAFKA_RESP_ERR_NO_ERROR)
            snprintf(why, sizeof why, "%s", rd_kafka_error_string(e));
        if (m->s.eos == MIRROR_EOS_ENABLED) {
            cli_err("mirror",
                    "exactly.once.source.support=enabled, but the target refuses transactions for "
                    "transactional id '%s' (%s); grant WRITE on that transactional id, or set "
                    "exactly.once.source.support=disabled (at-least-once) or auto; stopping",
                    m->s.mirror_group, why);
            m->fatal = true;
        } else {
            fprintf(stderr,
                    "sluice mirror: the target refuses transactions for transactional id '%s' (%s); "
                    "exactly.once.source.support=auto: copying at-least-once\n",
                    m->s.mirror_group, why);
            m->eos_refused = true;
        }
        rc = CLI_EFAIL;
    } else {
        cli_err("mirror", "init_transactions on the target: %s (retrying)", rd_kafka_error_string(e));
    }
    rd_kafka_error_destroy(e);
    return rc;
}

/* The mirror group's committed offsets on the target; NULL if it did not
 * answer (a group with none answers an empty list). */
static rd_kafka_topic_partition_list_t *target_positions(mirror *m) {
    rd_kafka_AdminOptions_t *ao =
        kc_admin_options(&m->to, m->prod, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
    rd_kafka_error_t *se = rd_kafka_AdminOptions_set_require_stable_offsets(ao, 1);
    if (se)
        rd_kafka_error_destroy(se);
    rd_kafka_ListConsumerGroupOffsets_t *req = rd_kafka_ListConsumerGroupOffsets_new(m->s.mirror_group, NULL);
    rd_kafka_ListConsumerGroupOffsets(m->prod, &req, 1, ao, m->tq);
    rd_kafka_topic_partition_list_t *out = NULL;
    int rc;
    rd_kafka_event_t *ev = kc_wait(&m->to, m->tq, RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT, &rc);
    if (ev) {
        size_t n;
        const rd_kafka_group_result_t **gr = rd_kafka_ListConsumerGroupOffsets_result_groups(
            rd_kafka_event_ListConsumerGroupOffsets_result(ev), &n);
        const rd_kafka_error_t *ge = n == 1 ? rd_kafka_group_result_error(gr[0]) : NULL;
        if (n == 1 && ge == NULL)
            out = rd_kafka_group_result_partitions(gr[0])
                      ? rd_kafka_topic_partition_list_copy(rd_kafka_group_result_partitions(gr[0]))
                      : rd_kafka_topic_partition_list_new(0);
        else if (ge)
            cli_err("mirror", "reading the positions of group '%s' on the target: %s", m->s.mirror_group,
                    rd_kafka_error_string(ge));
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_ListConsumerGroupOffsets_destroy(req);
    rd_kafka_AdminOptions_destroy(ao);
    return out;
}

bool mirror_eos_load_positions(mirror *m) {
    rd_kafka_topic_partition_list_t *tp = target_positions(m);
    if (tp == NULL)
        return false;
    rd_kafka_topic_partition_list_t *sp = rd_kafka_topic_partition_list_new(64);
    for (int i = 0; i < m->ntopics; i++)
        for (int p = 0; p < m->topics_v[i].nparts; p++)
            rd_kafka_topic_partition_list_add(sp, m->topics_v[i].src, p);
    rd_kafka_resp_err_t e = sp->cnt ? rd_kafka_committed(m->cons, sp, m->timeout_ms) : 0;
    if (e) {
        cli_err("mirror", "reading the mirror group's positions on the source: %s", rd_kafka_err2str(e));
        rd_kafka_topic_partition_list_destroy(tp);
        rd_kafka_topic_partition_list_destroy(sp);
        return false;
    }
    int64_t from_target = 0, from_source = 0;
    for (int i = 0, k = 0; i < m->ntopics; i++) {
        mtopic *t = &m->topics_v[i];
        for (int p = 0; p < t->nparts; p++, k++) {
            const rd_kafka_topic_partition_t *x = rd_kafka_topic_partition_list_find(tp, t->dst, p);
            int64_t down = x && x->err == 0 && x->offset >= 0 ? x->offset : -1;
            int64_t up = sp->elems[k].err == 0 && sp->elems[k].offset >= 0 ? sp->elems[k].offset : -1;
            t->parts[p].acked = down > up ? down : up;
            t->parts[p].committed = up;
            from_target += down >= 0 && down >= up;
            from_source += up > down;
        }
    }
    rd_kafka_topic_partition_list_destroy(tp);
    rd_kafka_topic_partition_list_destroy(sp);
    fprintf(stderr,
            "sluice mirror: exactly-once: positions of %lld partitions from the target, %lld from the "
            "source group\n",
            (long long)from_target, (long long)from_source);
    m->assign_needed = true;
    return true;
}

bool mirror_eos_begin(mirror *m) {
    if (m->in_txn)
        return true;
    rd_kafka_error_t *e = rd_kafka_begin_transaction(m->prod);
    if (e == NULL) {
        m->in_txn = true;
        return true;
    }
    if (rd_kafka_error_is_fatal(e))
        fatal(m, e, "begin_transaction");
    else
        cli_err("mirror", "begin_transaction on the target: %s", rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    return false;
}

/* Waits (bounded) until every purged message's delivery report was served,
 * so none lands in a later cycle's slots. */
static void drain_reports(mirror *m) {
    for (int i = 0; i < 200 && rd_kafka_outq_len(m->prod) > 0; i++)
        rd_kafka_poll(m->prod, 50);
}

bool mirror_eos_abort(mirror *m, const char *why) {
    if (!m->in_txn)
        return true;
    rd_kafka_error_t *e = rd_kafka_abort_transaction(m->prod, m->timeout_ms);
    drain_reports(m);
    if (e) {
        if (rd_kafka_error_is_fatal(e))
            fatal(m, e, "abort_transaction");
        else
            cli_err("mirror", "aborting the transaction (%s) failed: %s", why, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return false;
    }
    m->in_txn = false;
    m->aborts++;
    m->assign_needed = true; /* rewind: acked still holds the committed positions */
    /* An error that persists (a refused group, say) would abort every
     * cycle: after the first retry, back off as a failed session does. */
    int64_t wait_ms = 0;
    if (m->abort_streak > 0) {
        int sh = m->abort_streak - 1 < 6 ? m->abort_streak - 1 : 6;
        wait_ms = (int64_t)MIRROR_BACKOFF_MIN_MS << sh;
        if (wait_ms > MIRROR_BACKOFF_MAX_MS)
            wait_ms = MIRROR_BACKOFF_MAX_MS;
    }
    m->abort_streak++;
    cli_err("mirror", "transaction aborted (%s); copying again from the committed positions in %lld ms", why,
            (long long)wait_ms);
    for (int64_t slept = 0; slept < wait_ms && !cli_stop; slept += 100)
        usleep(100000);
    return true;
}

static mirror_txn_result failed(mirror *m, rd_kafka_error_t *e, const char *what) {
    mirror_txn_result r = MIRROR_TXN_FAILED;
    if (rd_kafka_error_is_fatal(e)) {
        fatal(m, e, what);
    } else if (rd_kafka_error_txn_requires_abort(e)) {
        char why[600];
        snprintf(why, sizeof why, "%s: %s", what, rd_kafka_error_string(e));
        if (mirror_eos_abort(m, why))
            r = MIRROR_TXN_ABORTED;
    } else {
        cli_err("mirror", "%s: %s", what, rd_kafka_error_string(e));
    }
    rd_kafka_error_destroy(e);
    return r;
}

mirror_txn_result mirror_eos_commit(mirror *m, int n) {
    assert(m->in_txn);
    /* One offset per partition of the cycle: its last copy + 1 (slots are
     * in source order per partition). txn_next is scratch, 0 outside. */
    for (int i = 0; i < n; i++)
        m->slots[i].p->txn_next = m->slots[i].up + 1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    for (int i = 0; i < n; i++) {
        mpart *p = m->slots[i].p;
        if (p->txn_next > 0) {
            rd_kafka_topic_partition_list_add(l, p->t->dst, p->partition)->offset = p->txn_next;
            p->txn_next = 0;
        }
    }
    rd_kafka_error_t *e = rd_kafka_send_offsets_to_transaction(m->prod, l, m->cgmd, m->timeout_ms);
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return failed(m, e, "sending the positions to the transaction");
    for (int attempt = 0;; attempt++) {
        e = rd_kafka_commit_transaction(m->prod, m->timeout_ms);
        if (e == NULL)
            break;
        if (attempt < 3 && rd_kafka_error_is_retriable(e) && !cli_stop) {
            cli_err("mirror", "commit_transaction: %s (retrying)", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            continue;
        }
        return failed(m, e, "commit_transaction");
    }
    m->in_txn = false;
    m->txns++;
    m->abort_streak = 0;
    return MIRROR_TXN_COMMITTED;
}
