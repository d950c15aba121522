/*
 * topic_create.c - "produce to a topic that may not exist yet", as Kafka's
 * console producer and producer perf test do: they ask for the topic's
 * metadata with auto-creation allowed, and the broker creates it when its
 * auto.create.topics.enable says so. See kc_wait_topic_for_produce in
 * kclient.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/gen/kafka_msgs.h"
#include "tools/cli.h"
#include "tools/kclient.h"
#include "tools/kraw.h"

/* One Metadata request for topic with allow_auto_topic_creation (v4+).
 * Returns the topic's error code, or -1 if the broker could not be asked
 * (after a message). */
static int ask_with_creation(const kc_opts *o, const char *topic) {
    kraw c;
    if (kraw_open(&c, o) != CLI_OK)
        return -1;
    int16_t v = kraw_version(&c, KAFKA_API_METADATA, 12);
    int code = -1;
    uint8_t *body = NULL;
    if (v < 4) {
        cli_err(o->cmd, "the broker's Metadata is older than v4 and cannot create topics");
        goto out;
    }
    kafka_metadata_request req;
    kafka_metadata_request_init(&req);
    kafka_metadata_request_metadata_request_topic t;
    kafka_metadata_request_metadata_request_topic_init(&t);
    t.name = kstr_c(topic);
    req.topics = &t;
    req.topics_count = 1;
    req.allow_auto_topic_creation = true;
    size_t len = kafka_metadata_request_size(v, &req);
    body = malloc(len ? len : 1);
    if (body == NULL)
        goto out;
    wire_writer w;
    wire_writer_init(&w, body, len);
    if (kafka_metadata_request_encode(&w, v, &req) != WIRE_OK)
        goto out;
    wire_reader r;
    if (kraw_call(&c, o, KAFKA_API_METADATA, v, body, len, &r) != CLI_OK)
        goto out;
    kafka_metadata_response resp;
    if (kafka_metadata_response_decode(&r, v, &c.a, &resp) != WIRE_OK || resp.topics_count != 1) {
        cli_err(o->cmd, "malformed Metadata response");
        goto out;
    }
    code = resp.topics[0].error_code;
out:
    free(body);
    kraw_close(&c);
    return code;
}

const rd_kafka_metadata_topic_t *kc_wait_topic_for_produce(const kc_opts *o, rd_kafka_t *rk,
                                                           const char *topic,
                                                           const struct rd_kafka_metadata **md_out,
                                                           int *rc_out) {
    *md_out = NULL;
    const struct rd_kafka_metadata *md = kc_metadata(o, rk, rc_out);
    if (md == NULL)
        return NULL;
    const rd_kafka_metadata_topic_t *t = kc_find_topic(md, topic);
    if (t != NULL && t->err == 0) {
        *md_out = md;
        return t;
    }
    rd_kafka_metadata_destroy(md);
    int code = ask_with_creation(o, topic);
    if (code < 0) {
        *rc_out = CLI_EUNREACH;
        return NULL;
    }
    if (code == KAFKA_ERR_UNKNOWN_TOPIC_OR_PARTITION) {
        cli_err(o->cmd,
                "topic '%s' does not exist and the broker did not create it (is auto.create.topics.enable "
                "false? create it with 'sluice topics --create')",
                topic);
        *rc_out = CLI_ENOTFOUND;
        return NULL;
    }
    if (code != 0 && code != KAFKA_ERR_LEADER_NOT_AVAILABLE) {
        const char *name = kafka_error_name(code);
        cli_err(o->cmd, "the broker refused to create topic '%s': %s", topic, name ? name : "unknown error");
        *rc_out = kc_exit_for((rd_kafka_resp_err_t)code);
        return NULL;
    }
    /* Created (or being created): wait until librdkafka sees it. */
    return kc_wait_topic(o, rk, topic, md_out, rc_out);
}
