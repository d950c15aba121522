/*
 * mirror.c - `sluice mirror`: copies topics from a source cluster to a
 * target cluster the way MirrorMaker 2 does, with MM2's names and internal
 * topics (tools/mm2.h), so MM2 tooling understands the result.
 *
 * One process, one thread, one flow (source alias -> target alias).
 * librdkafka's delivery reports run in this thread too (from rd_kafka_poll
 * and rd_kafka_flush), so the cycle's slots need no locking. The
 * main loop runs *cycles*: poll up to MIRROR_CYCLE_RECORDS records (or
 * MIRROR_CYCLE_BYTES, or MIRROR_CYCLE_MS) from the source consumer, produce
 * each to the same partition number of the target topic, wait until the
 * target acknowledged every one (bounded flush), and only then commit the
 * source positions to the mirror's own consumer group on the source. So:
 *
 *   - a record whose position was committed has been acknowledged by the
 *     target (acks=all): SIGKILL at any moment loses nothing, and a restart
 *     resumes from the committed positions, copying again at most the last
 *     cycle (at-least-once; duplicates are possible, loss is not);
 *   - a failed or timed-out delivery ends the *session*: both clients are
 *     destroyed, the mirror backs off (MIRROR_BACKOFF_MIN_MS doubling to
 *     MIRROR_BACKOFF_MAX_MS) and starts again from the committed positions.
 *     A side that is down is handled the same way.
 *
 * Between cycles it refreshes the topic list (new matching topics and
 * partition increases are created on the target), syncs topic configs,
 * emits heartbeats, and translates the source's consumer group offsets into
 * checkpoints (and, with sync.group.offsets.enabled, commits them to the
 * target groups) using the per-partition offset map of tools/mm2.h.
 *
 * Every wait is bounded: polls by their timeouts, flushes by
 * flush.timeout.ms, admin calls and commits by --timeout-ms. SIGINT/SIGTERM
 * end the loop at the next cycle boundary; the cycle in progress is flushed
 * and committed first.
 *
 * With exactly.once.source.support=enabled (or auto, when the target allows
 * it) each cycle is one transaction on the target holding the copies and
 * the positions they reach (tools/mirror_eos.c): a restart resumes exactly
 * where the last committed transaction ended, and read_committed consumers
 * of the target see each record once. Internal records (heartbeats,
 * checkpoints, offset syncs) then go through a second, plain producer,
 * after the transaction they describe committed.
 */
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/mirror.h"

static const char mirror_help[] =
    "Usage: sluice mirror --source FILE --target FILE [options]\n"
    "       sluice mirror dump --bootstrap-server H:P --topic T [--command-config FILE]\n"
    "\n"
    "Copies topics from the source cluster to the target cluster as MirrorMaker 2 does: target\n"
    "topics named <source alias>.<topic> (or unchanged with --replication-policy identity), created\n"
    "with the source's partition count and topic configs; records copied with keys, values, headers\n"
    "and timestamps into the same partition number; MM2's internal topics mm2-offset-syncs.<target\n"
    "alias>.internal, <source alias>.checkpoints.internal and heartbeats; consumer group offsets\n"
    "translated for the target. Runs until SIGINT/SIGTERM. At-least-once by default: a record whose\n"
    "source position is committed was acknowledged by the target, so a kill loses nothing; a restart\n"
    "may copy the last cycle again. --exactly-once: each cycle's copies and positions commit in one\n"
    "transaction on the target, so read_committed consumers there see each record once, kills\n"
    "included. `dump` prints an internal topic's records decoded, one JSON per line.\n"
    "\n"
    "Options:\n"
    "  --source FILE              source cluster client settings (bootstrap.servers=..., librdkafka keys)\n"
    "  --target FILE              target cluster client settings\n"
    "  --source-alias A           source cluster alias (default: source)\n"
    "  --target-alias B           target cluster alias (default: target)\n"
    "  --topics R[,R...]          topics to mirror, names or regexes (default: .*)\n"
    "  --topics-exclude R[,R...]  topics not to mirror (default: .*[-.]internal,.*\\.replica,__.*)\n"
    "  --groups R[,R...]          consumer groups to checkpoint (default: .*)\n"
    "  --groups-exclude R[,R...]  (default: console-consumer-.*,connect-.*,__.*)\n"
    "  --replication-policy P     default (<alias>.<topic>) or identity\n"
    "  --exactly-once             same as --set exactly.once.source.support=enabled\n"
    "  --set KEY=VALUE            a MirrorMaker 2 setting (repeatable; see below)\n"
    "  --mirror-config FILE       MirrorMaker 2 settings, one KEY=VALUE per line\n"
    "  --status-interval-ms N     progress line on stderr every N ms when not a terminal (default 10000)\n"
    "  --timeout-ms N             bound on each admin call and commit (default 15000)\n"
    "  -h, --help                 this text\n"
    "\n"
    "Settings (--set, MirrorMaker 2 names and defaults):\n"
    "  refresh.topics.enabled=true            refresh.topics.interval.seconds=600\n"
    "  sync.topic.configs.enabled=true        sync.topic.configs.interval.seconds=600\n"
    "  emit.checkpoints.enabled=true          emit.checkpoints.interval.seconds=60\n"
    "  sync.group.offsets.enabled=false       sync.group.offsets.interval.seconds=60\n"
    "  emit.heartbeats.enabled=true           emit.heartbeats.interval.seconds=1\n"
    "  replication.policy.class=DefaultReplicationPolicy|IdentityReplicationPolicy\n"
    "  replication.policy.separator=.         replication.factor=-1 (broker default)\n"
    "  offset-syncs.topic.location=source|target   offset.lag.max=100\n"
    "  topics, topics.exclude, groups, groups.exclude (as the flags)\n"
    "  config.properties.exclude=R[,R...]     topic configs not synced (default: MM2's list)\n"
    "  mirror.group.id=G                      the mirror's own progress group on the source; with\n"
    "                                         exactly-once also on the target, and the transactional id\n"
    "                                         (default: sluice-mirror-<source alias>-<target alias>)\n"
    "  flush.timeout.ms=60000                 bound on waiting for the target's acknowledgements\n"
    "  exactly.once.source.support=disabled   enabled: transactions on the target (stop if refused);\n"
    "                                         auto: transactions if the target allows them\n"
    "  transaction.timeout.ms=max(60000, 2 x flush.timeout.ms)   for the target's transactions;\n"
    "                                         the transactional id is mirror.group.id\n"
    "\n"
    "Exit codes: 0 stopped by SIGINT/SIGTERM after a clean flush and commit; 1 exactly-once stopped:\n"
    "fenced by another mirror with the same mirror.group.id, or the target refuses transactions\n"
    "(with exactly.once.source.support=enabled); 2 bad flags or settings.\n"
    "A side that is down is retried with back-off, never an exit.\n"
    "\n"
    "Examples:\n"
    "  sluice mirror --source east.properties --target west.properties --source-alias east \\\n"
    "      --target-alias west --topics 'orders,payments.*' --set sync.group.offsets.enabled=true\n"
    "  sluice mirror dump --bootstrap-server west:9092 --topic east.checkpoints.internal\n";

/* ---- delivery reports ------------------------------------------------- */

/* One record of the cycle in flight; the producer's delivery report fills
 * down/err through the message opaque. */
static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    mirror *mm = opaque;
    mslot *sl = m->_private;
    if (sl == NULL) { /* an internal record: offset sync, checkpoint, heartbeat */
        if (m->err)
            mm->internal_errors++;
        return;
    }
    sl->err = m->err;
    sl->down = m->offset;
    sl->done = true;
}

/* ---- internal records ------------------------------------------------- */

void mirror_produce_internal(mirror *m, rd_kafka_t *rk, const char *topic, const uint8_t *k, size_t kl,
                             const uint8_t *v, size_t vl) {
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(k, kl), RD_KAFKA_V_VALUE((void *)v, vl), RD_KAFKA_V_OPAQUE(NULL), RD_KAFKA_V_END);
    if (e)
        m->internal_errors++;
}

static void emit_offset_sync(mirror *m, const mpart *p, int64_t up, int64_t down) {
    uint8_t k[MM2_NAME_MAX + 16], v[16];
    size_t kl = mm2_offset_sync_key(k, sizeof k, p->t->src, p->partition);
    size_t vl = mm2_offset_sync_value(v, sizeof v, up, down);
    if (kl && vl)
        mirror_produce_internal(m, m->sprod ? m->sprod : m->iprod, m->syncs_topic, k, kl, v, vl);
}

static void emit_heartbeat(mirror *m) {
    uint8_t k[2 * MM2_NAME_MAX + 8], v[16];
    size_t kl = mm2_heartbeat_key(k, sizeof k, m->s.source_alias, m->s.target_alias);
    size_t vl = mm2_heartbeat_value(v, sizeof v, cli_wall_ms());
    if (kl && vl)
        mirror_produce_internal(m, m->iprod, "heartbeats", k, kl, v, vl);
}

/* ---- the copy cycle --------------------------------------------------- */

static mpart *find_part(mirror *m, mtopic **cache, const char *topic, int32_t partition) {
    if (*cache == NULL || strcmp((*cache)->src, topic) != 0)
        *cache = mirror_find_topic(m, topic);
    if (*cache == NULL || partition < 0 || partition >= (*cache)->nparts)
        return NULL;
    return &(*cache)->parts[partition];
}

/* Commits the acknowledged positions that are ahead of the committed ones.
 * A failure is reported and retried at the next cycle (the records stay
 * acknowledged; a kill before the retry only copies them again). */
static void commit(mirror *m) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    for (int i = 0; i < m->ntopics; i++) {
        mtopic *t = &m->topics_v[i];
        for (int p = 0; p < t->nparts; p++) {
            assert(t->parts[p].committed <= t->parts[p].acked);
            if (t->parts[p].acked > t->parts[p].committed)
                rd_kafka_topic_partition_list_add(l, t->src, p)->offset = t->parts[p].acked;
        }
    }
    if (l->cnt == 0) {
        rd_kafka_topic_partition_list_destroy(l);
        return;
    }
    rd_kafka_resp_err_t e = rd_kafka_commit_queue(m->cons, l, m->cq, NULL, NULL);
    int64_t deadline = cli_now_us() + (int64_t)m->timeout_ms * 1000;
    while (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (cli_now_us() > deadline) {
            e = RD_KAFKA_RESP_ERR__TIMED_OUT;
            break;
        }
        rd_kafka_event_t *ev = rd_kafka_queue_poll(m->cq, 100);
        if (ev == NULL)
            continue;
        if (rd_kafka_event_type(ev) != RD_KAFKA_EVENT_OFFSET_COMMIT) {
            rd_kafka_event_destroy(ev);
            continue;
        }
        e = rd_kafka_event_error(ev);
        const rd_kafka_topic_partition_list_t *res = rd_kafka_event_topic_partition_list(ev);
        for (int i = 0; e == RD_KAFKA_RESP_ERR_NO_ERROR && res && i < res->cnt; i++) {
            mtopic *t = mirror_find_topic(m, res->elems[i].topic);
            if (res->elems[i].err)
                e = res->elems[i].err;
            else if (t && res->elems[i].partition < t->nparts)
                t->parts[res->elems[i].partition].committed = res->elems[i].offset;
        }
        rd_kafka_event_destroy(ev);
        break;
    }
    if (e)
        cli_err("mirror", "committing the mirror's progress failed (retried next cycle): %s",
                rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
}

/* Waits for every delivery report of the cycle, up to flush.timeout.ms. */
static bool flush_all(mirror *m) {
    rd_kafka_resp_err_t e = rd_kafka_flush(m->prod, (int)m->s.flush_timeout_ms);
    if (m->sprod)
        rd_kafka_flush(m->sprod, 1000);
    if (m->iprod != m->prod)
        rd_kafka_flush(m->iprod, 1000);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        return true;
    cli_err("mirror", "the target did not acknowledge %d records within %lld ms", rd_kafka_outq_len(m->prod),
            (long long)m->s.flush_timeout_ms);
    rd_kafka_purge(m->prod, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    /* Purged messages get their delivery reports (with an error) from poll;
     * wait for them so no slot is written after the cycle ends. */
    for (int i = 0; i < 100 && rd_kafka_outq_len(m->prod) > 0; i++)
        rd_kafka_poll(m->prod, 50);
    return false;
}

/* One cycle. CLI_OK, or CLI_EFAIL when the session must restart. */
static int cycle_copy(mirror *m) {
    int n = 0;
    int64_t bytes = 0, start = cli_now_us();
    mtopic *cache = NULL;
    int rc = CLI_OK;
    while (n < MIRROR_CYCLE_RECORDS && bytes < MIRROR_CYCLE_BYTES && !cli_stop) {
        /* Take what the consumer has prefetched; a cycle ends when that runs
         * dry (or at a cap), so copies are acknowledged and committed while
         * the consumer's fetcher keeps reading ahead. */
        if (n > 0 && cli_now_us() - start > MIRROR_CYCLE_MS * 1000)
            break;
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(m->cons, n > 0 ? 0 : MIRROR_CYCLE_MS);
        if (msg == NULL)
            break; /* idle (n == 0: let the periodic work run) or drained */
        if (msg->err) {
            if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && msg->err != RD_KAFKA_RESP_ERR__TRANSPORT &&
                msg->err != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
                cli_err("mirror", "source: %s", rd_kafka_message_errstr(msg));
            rd_kafka_message_destroy(msg);
            continue;
        }
        mpart *p = find_part(m, &cache, rd_kafka_topic_name(msg->rkt), msg->partition);
        if (p == NULL || msg->offset < p->acked) {
            rd_kafka_message_destroy(msg);
            continue;
        }
        if (m->eos && !mirror_eos_begin(m)) {
            rd_kafka_message_destroy(msg);
            rc = CLI_EFAIL;
            break;
        }
        mslot *sl = &m->slots[n];
        *sl = (mslot){.p = p, .up = msg->offset, .down = -1};
        rd_kafka_headers_t *h = NULL, *hc = NULL;
        if (rd_kafka_message_headers(msg, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h)
            hc = rd_kafka_headers_copy(h);
        rd_kafka_timestamp_type_t tt;
        int64_t ts = rd_kafka_message_timestamp(msg, &tt);
        rd_kafka_resp_err_t e;
        int64_t deadline = cli_now_us() + m->s.flush_timeout_ms * 1000;
        for (;;) {
            e = rd_kafka_producev(
                m->prod, RD_KAFKA_V_TOPIC(p->t->dst), RD_KAFKA_V_PARTITION(p->partition),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(msg->key, msg->key_len),
                RD_KAFKA_V_VALUE(msg->payload, msg->len), RD_KAFKA_V_TIMESTAMP(ts > 0 ? ts : 0),
                RD_KAFKA_V_HEADERS(hc), RD_KAFKA_V_OPAQUE(sl), RD_KAFKA_V_END);
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || cli_now_us() > deadline)
                break;
            rd_kafka_poll(m->prod, 50);
        }
        bytes += (int64_t)(msg->len + msg->key_len);
        if (e) {
            if (hc)
                rd_kafka_headers_destroy(hc); /* not consumed on failure */
            cli_err("mirror", "cannot produce to '%s' partition %d: %s", p->t->dst, p->partition,
                    rd_kafka_err2str(e));
            rd_kafka_message_destroy(msg);
            rc = CLI_EFAIL;
            break;
        }
        rd_kafka_message_destroy(msg);
        n++;
    }
    if (n == 0 && rc == CLI_OK)
        return CLI_OK;
    if (!flush_all(m))
        return CLI_EFAIL;
    for (int i = 0; i < n; i++) {
        if (!m->slots[i].done || m->slots[i].err) {
            mslot *sl = &m->slots[i];
            cli_err("mirror", "target did not take the copy of '%s' partition %d offset %lld: %s",
                    sl->p->t->src, sl->p->partition, (long long)sl->up,
                    sl->done ? rd_kafka_err2str(sl->err) : "no report");
            return CLI_EFAIL;
        }
    }
    if (rc != CLI_OK)
        return rc;
    if (m->eos) {
        mirror_txn_result r = mirror_eos_commit(m, n);
        if (r == MIRROR_TXN_ABORTED)
            return CLI_OK; /* rewound: the next cycle copies these again */
        if (r != MIRROR_TXN_COMMITTED)
            return CLI_EFAIL;
    }
    /* Copies acknowledged (and, exactly-once, committed): positions move. */
    for (int i = 0; i < n; i++) {
        mslot *sl = &m->slots[i];
        mpart *p = sl->p;
        assert(sl->up >= p->acked);
        bool new_run = mm2_runs_add(&p->runs, sl->up, sl->down);
        if (new_run || p->synced_up < 0 || sl->up - p->synced_up >= m->s.offset_lag_max) {
            emit_offset_sync(m, p, sl->up, sl->down);
            p->synced_up = sl->up;
        }
        p->acked = sl->up + 1;
    }
    m->copied += n;
    m->copied_bytes += bytes;
    commit(m);
    return CLI_OK;
}

static int cycle(mirror *m) {
    int rc = cycle_copy(m);
    /* A fenced transactional producer purges its queue: the cycle sees
     * failed deliveries first. Stop rather than restart and fence back. */
    if (rc != CLI_OK && m->eos)
        mirror_eos_check_fatal(m, "copying");
    return rc;
}

/* ---- status ----------------------------------------------------------- */

static void status(mirror *m, bool force) {
    int64_t now = cli_now_us();
    bool tty = cli_progress_enabled();
    int64_t every = tty ? 500000 : m->s.status_ms * 1000;
    if (!force && now - m->last_status_us < every)
        return;
    double secs = m->last_status_us ? (double)(now - m->last_status_us) / 1e6 : 0;
    int64_t lag = 0, maxlag = 0;
    int nparts = 0;
    const char *maxt = "-";
    int32_t maxp = -1;
    for (int i = 0; i < m->ntopics; i++) {
        mtopic *t = &m->topics_v[i];
        for (int p = 0; p < t->nparts; p++) {
            int64_t lo = -1, hi = -1;
            nparts++;
            if (m->cons == NULL ||
                rd_kafka_get_watermark_offsets(m->cons, t->src, p, &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
                hi < 0)
                continue;
            int64_t pos = t->parts[p].acked >= 0 ? t->parts[p].acked : (lo >= 0 ? lo : 0);
            int64_t l = hi > pos ? hi - pos : 0;
            lag += l;
            if (l > maxlag) {
                maxlag = l;
                maxt = t->src;
                maxp = p;
            }
        }
    }
    double rps = secs > 0 ? (double)(m->copied - m->last_copied) / secs : 0;
    double mbs = secs > 0 ? (double)(m->copied_bytes - m->last_bytes) / secs / 1e6 : 0;
    char line[512], worst[MM2_NAME_MAX + 64] = "";
    if (maxlag > 0)
        snprintf(worst, sizeof worst, " (max %lld on %s-%d)", (long long)maxlag, maxt, maxp);
    char txns[64] = "";
    if (m->eos)
        snprintf(txns, sizeof txns, ", %lld transactions, %lld aborted", (long long)m->txns,
                 (long long)m->aborts);
    snprintf(line, sizeof line,
             "%lld records copied, %.0f rec/s, %.2f MB/s, lag %lld%s, %d topics, %d partitions, "
             "%lld checkpoints, %lld restarts%s",
             (long long)m->copied, rps, mbs, (long long)lag, worst, m->ntopics, nparts,
             (long long)m->checkpoints, (long long)m->restarts, txns);
    if (tty)
        cli_progress(true, "%s", line);
    else
        fprintf(stderr, "sluice mirror: %s\n", line);
    m->last_status_us = now;
    m->last_copied = m->copied;
    m->last_bytes = m->copied_bytes;
}

/* ---- sessions --------------------------------------------------------- */

/* A client for one side; txn_id non-NULL makes the producer transactional. */
static rd_kafka_t *new_client(mirror *m, const kc_opts *o, const char *file, rd_kafka_type_t type,
                              const char *txn_id) {
    rd_kafka_conf_t *conf = kc_conf(o);
    if (conf == NULL)
        return NULL;
    char err[512], cid[2 * MIRROR_ALIAS_MAX + 32];
    snprintf(cid, sizeof cid, "sluice-mirror-%s-%s", m->s.source_alias, m->s.target_alias);
    const char *prod[][2] = {
        {"client.id", cid},
        {"acks", "all"},
        /* One request in flight per connection keeps each partition's copies
         * in source order even when a request is retried. */
        {"max.in.flight.requests.per.connection", "1"},
        {"linger.ms", "5"},
        {"batch.size", "1000000"},
        {"message.timeout.ms", "30000"},
        {"queue.buffering.max.messages", "1000000"},
        {"queue.buffering.max.kbytes", "262144"},
        {"message.max.bytes", "16777216"},
    };
    const char *cons[][2] = {
        {"client.id", cid},
        {"group.id", m->s.mirror_group},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},
        {"enable.partition.eof", "false"},
        {"fetch.max.bytes", "52428800"},
        /* librdkafka 2.0 stops fetching when its prefetch queue holds
         * queued.min.messages (default 100000, fewer than one cycle) and
         * looks again only about a second later, which would idle a mirror
         * catching up for most of the time. The prefetch stays bounded by
         * queued.max.messages.kbytes. */
        {"queued.min.messages", "2000000"},
        {"queued.max.messages.kbytes", "65536"},
        {"fetch.error.backoff.ms", "10"},
    };
    const char *(*tab)[2] = type == RD_KAFKA_PRODUCER ? prod : cons;
    size_t nt = type == RD_KAFKA_PRODUCER ? sizeof prod / sizeof prod[0] : sizeof cons / sizeof cons[0];
    for (size_t i = 0; i < nt; i++) {
        if (rd_kafka_conf_set(conf, tab[i][0], tab[i][1], err, sizeof err) != RD_KAFKA_CONF_OK) {
            cli_err("mirror", "%s=%s: %s", tab[i][0], tab[i][1], err);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    /* The user's file last, so its settings win (security, tuning) - except
     * the ones the guarantees rest on, set again below. */
    if (file && !kc_conf_apply_file(o, conf, file)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (type == RD_KAFKA_CONSUMER) {
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
        rd_kafka_conf_set(conf, "group.id", m->s.mirror_group, err, sizeof err);
    } else {
        rd_kafka_conf_set(conf, "acks", "all", err, sizeof err);
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        rd_kafka_conf_set_opaque(conf, m);
        if (txn_id) {
            char tmo[24];
            snprintf(tmo, sizeof tmo, "%lld", (long long)m->s.txn_timeout_ms);
            if (rd_kafka_conf_set(conf, "transactional.id", txn_id, err, sizeof err) != RD_KAFKA_CONF_OK ||
                rd_kafka_conf_set(conf, "transaction.timeout.ms", tmo, err, sizeof err) != RD_KAFKA_CONF_OK) {
                cli_err("mirror", "transactional producer: %s", err);
                rd_kafka_conf_destroy(conf);
                return NULL;
            }
        }
    }
    return kc_new(o, type, conf);
}

static void end_session(mirror *m) {
    rd_kafka_t *ps[3] = {m->prod, m->sprod, m->iprod != m->prod ? m->iprod : NULL};
    for (int i = 0; i < 3; i++) {
        if (ps[i] == NULL)
            continue;
        rd_kafka_purge(ps[i], RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(ps[i], 0);
    }
    rd_kafka_queue_t *qs[3] = {m->cq, m->sq, m->tq};
    for (int i = 0; i < 3; i++) {
        if (qs[i])
            rd_kafka_queue_destroy(qs[i]);
    }
    m->cq = m->sq = m->tq = NULL;
    if (m->cons)
        rd_kafka_destroy_flags(m->cons, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    if (m->prod)
        rd_kafka_destroy(m->prod);
    if (m->sprod)
        rd_kafka_destroy(m->sprod);
    if (m->iprod && m->iprod != m->prod)
        rd_kafka_destroy(m->iprod);
    m->cons = m->prod = m->sprod = m->iprod = NULL;
    m->in_txn = false; /* an open one is settled by the next init_transactions */
}

/* Reads the offset syncs earlier runs wrote (the whole topic, up to the high
 * watermark at the start, bounded by 2 x --timeout-ms) into the offset maps
 * of partitions that have none yet, so a restarted mirror can translate
 * group offsets it did not copy itself. Best effort: a sync topic that
 * cannot be read only means coarser (never unsafe) translations until new
 * records are copied. */
static void load_offset_syncs(mirror *m) {
    bool any_empty = false;
    for (int i = 0; i < m->ntopics && !any_empty; i++) {
        for (int p = 0; p < m->topics_v[i].nparts && !any_empty; p++)
            any_empty = m->topics_v[i].parts[p].runs.n == 0;
    }
    if (!any_empty)
        return;
    const kc_opts *o = m->s.syncs_on_target ? &m->to : &m->so;
    rd_kafka_t *rk =
        new_client(m, o, m->s.syncs_on_target ? m->s.target_file : m->s.source_file, RD_KAFKA_CONSUMER, NULL);
    if (rk == NULL)
        return;
    rd_kafka_poll_set_consumer(rk);
    int64_t lo = 0, hi = 0, loaded = 0;
    bool *fresh = NULL; /* partitions whose map this load fills, by flat index */
    if (rd_kafka_query_watermark_offsets(rk, m->syncs_topic, 0, &lo, &hi, m->timeout_ms) || hi <= lo)
        goto out;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, m->syncs_topic, 0)->offset = lo;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    int64_t deadline = cli_now_us() + 2LL * m->timeout_ms * 1000;
    /* Only partitions empty at the start are filled, so a sync never goes
     * into a map this process is already extending. */
    int total = 0;
    for (int i = 0; i < m->ntopics; i++)
        total += m->topics_v[i].nparts;
    fresh = calloc((size_t)total + 1, sizeof *fresh);
    for (int i = 0, k = 0; i < m->ntopics; i++) {
        for (int p = 0; p < m->topics_v[i].nparts; p++, k++)
            fresh[k] = m->topics_v[i].parts[p].runs.n == 0;
    }
    int64_t next = lo;
    while (next < hi && !cli_stop && cli_now_us() < deadline) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, 200);
        if (msg == NULL)
            continue;
        mm2_offset_sync os;
        if (msg->err == 0) {
            next = msg->offset + 1;
            if (mm2_offset_sync_decode(msg->key, msg->key_len, msg->payload, msg->len, &os) &&
                os.topic.len > 0 && os.topic.len <= MM2_NAME_MAX && os.upstream >= 0 && os.downstream >= 0) {
                char name[MM2_NAME_MAX + 1];
                memcpy(name, os.topic.ptr, (size_t)os.topic.len);
                name[os.topic.len] = '\0';
                mtopic *t = mirror_find_topic(m, name);
                if (t && os.partition >= 0 && os.partition < t->nparts) {
                    int k = 0;
                    for (mtopic *u = m->topics_v; u < t; u++)
                        k += u->nparts;
                    if (fresh[k + os.partition]) {
                        mm2_runs_add(&t->parts[os.partition].runs, os.upstream, os.downstream);
                        loaded++;
                    }
                }
            }
        }
        rd_kafka_message_destroy(msg);
    }
    fprintf(stderr, "sluice mirror: loaded %lld offset syncs from %s%s\n", (long long)loaded, m->syncs_topic,
            next < hi ? " (stopped early: timeout)" : "");
out:
    free(fresh);
    rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

/* Runs one session: connect, set up, copy until stopped or a side fails.
 * CLI_OK when stopped by a signal; otherwise the reason to retry. */
static int session(mirror *m) {
    int rc = kc_probe(&m->so);
    if (rc == CLI_OK)
        rc = kc_probe(&m->to);
    if (rc != CLI_OK)
        return rc;
    m->eos = m->s.eos == MIRROR_EOS_ENABLED || (m->s.eos == MIRROR_EOS_AUTO && !m->eos_refused);
    m->cons = new_client(m, &m->so, m->s.source_file, RD_KAFKA_CONSUMER, NULL);
    m->prod = m->cons ? new_client(m, &m->to, m->s.target_file, RD_KAFKA_PRODUCER,
                                   m->eos ? m->s.mirror_group : NULL)
                      : NULL;
    m->iprod = m->prod && m->eos ? new_client(m, &m->to, m->s.target_file, RD_KAFKA_PRODUCER, NULL) : m->prod;
    if (m->prod && !m->s.syncs_on_target)
        m->sprod = new_client(m, &m->so, m->s.source_file, RD_KAFKA_PRODUCER, NULL);
    if (m->cons == NULL || m->prod == NULL || m->iprod == NULL || (!m->s.syncs_on_target && m->sprod == NULL))
        return CLI_EUSAGE;
    rd_kafka_poll_set_consumer(m->cons);
    m->cq = rd_kafka_queue_new(m->cons);
    m->sq = rd_kafka_queue_new(m->cons);
    m->tq = rd_kafka_queue_new(m->prod);
    if (m->eos && (rc = mirror_eos_init(m)) != CLI_OK)
        return rc;
    int rf = (int)m->s.replication_factor;
    if (!mirror_ensure_internal(m->s.syncs_on_target ? m->prod : m->cons,
                                m->s.syncs_on_target ? m->tq : m->sq, m->s.syncs_on_target ? &m->to : &m->so,
                                m->syncs_topic, rf) ||
        (m->s.emit_checkpoints && !mirror_ensure_internal(m->prod, m->tq, &m->to, m->ckpt_topic, rf)) ||
        (m->s.emit_heartbeats && !mirror_ensure_internal(m->prod, m->tq, &m->to, "heartbeats", rf)))
        return CLI_EUNREACH;
    for (int i = 0; i < m->ntopics; i++)
        m->topics_v[i].ready = false; /* the target may have changed while we were away */
    if (!mirror_refresh_topics(m, true))
        return CLI_EUNREACH;
    load_offset_syncs(m);
    if (m->eos && !mirror_eos_load_positions(m))
        return CLI_EUNREACH;
    int64_t now = cli_now_us();
    m->next_refresh_us = now + m->s.refresh_topics_s * 1000000;
    m->next_configs_us = now + m->s.sync_configs_s * 1000000;
    m->next_ckpt_us = now + m->s.emit_checkpoints_s * 1000000;
    m->next_groups_us = now + m->s.sync_groups_s * 1000000;
    m->next_hb_us = now;
    while (!cli_stop) {
        if (m->assign_needed && !mirror_assign(m))
            return CLI_EFAIL;
        if ((rc = cycle(m)) != CLI_OK)
            return rc;
        now = cli_now_us();
        if (m->s.refresh_topics && now >= m->next_refresh_us) {
            mirror_refresh_topics(m, false);
            m->next_refresh_us = now + m->s.refresh_topics_s * 1000000;
        }
        if (m->s.sync_configs && now >= m->next_configs_us) {
            int *idx = calloc((size_t)m->ntopics + 1, sizeof *idx), n = 0;
            for (int i = 0; i < m->ntopics; i++) {
                if (m->topics_v[i].ready)
                    idx[n++] = i;
            }
            mirror_sync_configs(m, idx, n);
            free(idx);
            m->next_configs_us = now + m->s.sync_configs_s * 1000000;
        }
        if (m->s.emit_heartbeats && now >= m->next_hb_us) {
            emit_heartbeat(m);
            m->next_hb_us = now + m->s.heartbeats_s * 1000000;
        }
        bool ck = m->s.emit_checkpoints && now >= m->next_ckpt_us;
        bool gs = m->s.sync_groups && now >= m->next_groups_us;
        if (ck || gs) {
            mirror_groups_pass(m, ck, gs);
            if (ck)
                m->next_ckpt_us = now + m->s.emit_checkpoints_s * 1000000;
            if (gs)
                m->next_groups_us = now + m->s.sync_groups_s * 1000000;
        }
        rd_kafka_poll(m->prod, 0);
        if (m->iprod != m->prod)
            rd_kafka_poll(m->iprod, 0);
        status(m, false);
    }
    /* Stopped: internal records out (bounded), progress committed. The
     * last cycle's transaction (exactly-once) committed in the cycle. */
    rd_kafka_flush(m->prod, 5000);
    if (m->iprod != m->prod)
        rd_kafka_flush(m->iprod, 5000);
    commit(m);
    return CLI_OK;
}

/* Reads bootstrap.servers from a client properties file into buf. */
static bool file_bootstrap(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    char line[CLI_ARG_MAX];
    bool found = false;
    for (int n = 0; !found && n < 10000 && fgets(line, sizeof line, f); n++) {
        line[strcspn(line, "\r\n")] = '\0';
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, "bootstrap.servers", 17) != 0)
            continue;
        p += 17;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != '=')
            continue;
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        found = strlen(p) < cap && *p != '\0';
        if (found)
            strcpy(buf, p);
    }
    fclose(f);
    return found;
}

/* ---- entry ------------------------------------------------------------ */

int cmd_mirror(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "dump") == 0)
        return cmd_mirror_dump(argc - 1, argv + 1);
    enum {
        O_SOURCE = 1,
        O_TARGET,
        O_SALIAS,
        O_TALIAS,
        O_TOPICS,
        O_TOPICS_EX,
        O_GROUPS,
        O_GROUPS_EX,
        O_POLICY,
        O_SET,
        O_MCONF,
        O_STATUS,
        O_TIMEOUT,
        O_EOS,
    };
    static const struct option opts[] = {
        {"source", required_argument, NULL, O_SOURCE},
        {"target", required_argument, NULL, O_TARGET},
        {"source-alias", required_argument, NULL, O_SALIAS},
        {"target-alias", required_argument, NULL, O_TALIAS},
        {"topics", required_argument, NULL, O_TOPICS},
        {"topics-exclude", required_argument, NULL, O_TOPICS_EX},
        {"groups", required_argument, NULL, O_GROUPS},
        {"groups-exclude", required_argument, NULL, O_GROUPS_EX},
        {"replication-policy", required_argument, NULL, O_POLICY},
        {"set", required_argument, NULL, O_SET},
        {"mirror-config", required_argument, NULL, O_MCONF},
        {"status-interval-ms", required_argument, NULL, O_STATUS},
        {"timeout-ms", required_argument, NULL, O_TIMEOUT},
        {"exactly-once", no_argument, NULL, O_EOS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static mirror m;
    memset(&m, 0, sizeof m);
    mirror_settings_defaults(&m.s);
    m.timeout_ms = 15000;
    int ch, rc = CLI_OK;
    int64_t v;
    optind = 1;
    opterr = 0;
    while (rc == CLI_OK && (ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case O_SOURCE:
            m.s.source_file = optarg;
            break;
        case O_TARGET:
            m.s.target_file = optarg;
            break;
        case O_SALIAS:
            rc = mirror_apply_setting(&m.s, "source.cluster.alias", optarg);
            break;
        case O_TALIAS:
            rc = mirror_apply_setting(&m.s, "target.cluster.alias", optarg);
            break;
        case O_TOPICS:
            rc = mirror_apply_setting(&m.s, "topics", optarg);
            break;
        case O_TOPICS_EX:
            rc = mirror_apply_setting(&m.s, "topics.exclude", optarg);
            break;
        case O_GROUPS:
            rc = mirror_apply_setting(&m.s, "groups", optarg);
            break;
        case O_GROUPS_EX:
            rc = mirror_apply_setting(&m.s, "groups.exclude", optarg);
            break;
        case O_POLICY:
            rc = mirror_apply_setting(&m.s, "replication.policy.class", optarg);
            break;
        case O_SET:
            rc = mirror_apply_kv(&m.s, optarg);
            break;
        case O_MCONF:
            rc = mirror_apply_file(&m.s, optarg);
            break;
        case O_STATUS:
            if (!cli_parse_i64(optarg, 100, 3600000, &v))
                return cli_usage_err("mirror", "--status-interval-ms: expected 100..3600000, got '%s'",
                                     optarg);
            m.s.status_ms = v;
            break;
        case O_TIMEOUT:
            if (!cli_parse_i64(optarg, 100, 3600000, &v))
                return cli_usage_err("mirror", "--timeout-ms: expected 100..3600000, got '%s'", optarg);
            m.timeout_ms = (int)v;
            break;
        case O_EOS:
            rc = mirror_apply_setting(&m.s, "exactly.once.source.support", "enabled");
            break;
        case 'h':
            fputs(mirror_help, stdout);
            return CLI_OK;
        case ':':
            return cli_usage_err("mirror", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_err("mirror", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (rc != CLI_OK)
        return rc;
    if (optind < argc)
        return cli_usage_err("mirror", "unexpected argument '%s'", argv[optind]);
    if (m.s.source_file == NULL || m.s.target_file == NULL)
        return cli_usage_err("mirror", "--source and --target are required");
    if (m.s.source_alias[0] == '\0' || m.s.target_alias[0] == '\0' ||
        strcmp(m.s.source_alias, m.s.target_alias) == 0)
        return cli_usage_err("mirror", "the source and target aliases must be non-empty and differ");
    if (!m.s.policy.identity && m.s.policy.separator[0] == '\0')
        return cli_usage_err("mirror", "replication.policy.separator must not be empty");
    static char sboot[CLI_ARG_MAX], tboot[CLI_ARG_MAX];
    if (!file_bootstrap(m.s.source_file, sboot, sizeof sboot))
        return cli_usage_err("mirror", "--source %s: no bootstrap.servers (or the file cannot be read)",
                             m.s.source_file);
    if (!file_bootstrap(m.s.target_file, tboot, sizeof tboot))
        return cli_usage_err("mirror", "--target %s: no bootstrap.servers (or the file cannot be read)",
                             m.s.target_file);
    if (m.s.mirror_group[0] == '\0')
        snprintf(m.s.mirror_group, sizeof m.s.mirror_group, "sluice-mirror-%s-%s", m.s.source_alias,
                 m.s.target_alias);
    if (m.s.txn_timeout_ms == 0) {
        m.s.txn_timeout_ms = 2 * m.s.flush_timeout_ms > 60000 ? 2 * m.s.flush_timeout_ms : 60000;
        if (m.s.txn_timeout_ms > 900000) /* Kafka's transaction.max.timeout.ms default */
            m.s.txn_timeout_ms = 900000;
    }
    if (m.s.eos != MIRROR_EOS_DISABLED && m.s.txn_timeout_ms <= m.s.flush_timeout_ms)
        return cli_usage_err("mirror",
                             "transaction.timeout.ms (%lld) must exceed flush.timeout.ms (%lld): a "
                             "transaction that times out while the mirror waits fences the mirror",
                             (long long)m.s.txn_timeout_ms, (long long)m.s.flush_timeout_ms);
    snprintf(m.syncs_topic, sizeof m.syncs_topic, "mm2-offset-syncs.%s.internal", m.s.target_alias);
    snprintf(m.ckpt_topic, sizeof m.ckpt_topic, "%s.checkpoints.internal", m.s.source_alias);
    if ((rc = mirror_compile_patterns(&m.topics, "topics", m.s.topics)) != CLI_OK ||
        (rc = mirror_compile_patterns(&m.topics_ex, "topics.exclude", m.s.topics_exclude)) != CLI_OK ||
        (rc = mirror_compile_patterns(&m.groups, "groups", m.s.groups)) != CLI_OK ||
        (rc = mirror_compile_patterns(&m.groups_ex, "groups.exclude", m.s.groups_exclude)) != CLI_OK ||
        (rc = mirror_compile_patterns(&m.config_ex, "config.properties.exclude", m.s.config_exclude)) !=
            CLI_OK)
        goto out;
    m.so = (kc_opts){.cmd = "mirror", .bootstrap = sboot, .timeout_ms = m.timeout_ms};
    m.to = (kc_opts){.cmd = "mirror", .bootstrap = tboot, .timeout_ms = m.timeout_ms};
    m.topics_v = calloc(MIRROR_MAX_TOPICS, sizeof *m.topics_v);
    m.slots = calloc(MIRROR_CYCLE_RECORDS, sizeof *m.slots);
    m.cgmd = rd_kafka_consumer_group_metadata_new(m.s.mirror_group);
    static const char *const modes[] = {"at-least-once", "exactly-once", "exactly-once if the target allows"};
    fprintf(stderr, "sluice mirror: %s (%s) -> %s (%s), progress group '%s', %s\n", m.s.source_alias, sboot,
            m.s.target_alias, tboot, m.s.mirror_group, modes[m.s.eos]);
    cli_catch_signals();
    int64_t backoff = MIRROR_BACKOFF_MIN_MS;
    while (!cli_stop) {
        int64_t began = cli_now_us();
        rc = session(&m);
        bool fell_back = m.eos && m.eos_refused; /* auto: the next session copies at-least-once */
        end_session(&m);
        if (cli_stop || rc == CLI_EUSAGE || m.fatal)
            break;
        if (fell_back)
            continue;
        if (cli_now_us() - began > 60 * 1000000LL)
            backoff = MIRROR_BACKOFF_MIN_MS; /* it ran a while: a fresh failure */
        m.restarts++;
        cli_progress_done();
        fprintf(stderr, "sluice mirror: session ended (%s); retrying in %lld ms\n",
                rc == CLI_EUNREACH ? "a cluster is unreachable" : "a copy or commit failed",
                (long long)backoff);
        for (int64_t slept = 0; slept < backoff && !cli_stop; slept += 100)
            usleep(100000);
        backoff = backoff * 2 > MIRROR_BACKOFF_MAX_MS ? MIRROR_BACKOFF_MAX_MS : backoff * 2;
    }
    if (rc != CLI_EUSAGE) {
        status(&m, true);
        cli_progress_done();
        fprintf(stderr, "sluice mirror: stopped%s; %lld records copied, %lld restarts\n",
                m.fatal ? " (exactly-once could not go on)" : "", (long long)m.copied, (long long)m.restarts);
        rc = m.fatal ? CLI_EFAIL : CLI_OK;
    }
out:
    mirror_free_patterns(&m.topics);
    mirror_free_patterns(&m.topics_ex);
    mirror_free_patterns(&m.groups);
    mirror_free_patterns(&m.groups_ex);
    mirror_free_patterns(&m.config_ex);
    for (int i = 0; m.topics_v && i < m.ntopics; i++)
        free(m.topics_v[i].parts);
    free(m.topics_v);
    free(m.slots);
    if (m.cgmd)
        rd_kafka_consumer_group_metadata_destroy(m.cgmd);
    return rc;
}
