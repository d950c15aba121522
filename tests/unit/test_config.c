/*
 * test_config.c - the broker configuration: properties syntax (comments,
 * continuations, separators, whitespace, escapes, duplicates), overrides and
 * the environment, synonym precedence, every class of invalid value, unknown
 * key warnings, defaults with no file, listener parsing, topic config
 * validation and description, and that docs/configuration.md matches the
 * tables. Files are written into a mkdtemp() directory.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/config.h"
#include "core/log.h"
#include "storage/log.h"
#include "unit.h"

static char tmpdir[] = "/tmp/sluice-test-config-XXXXXX";
static int file_seq;
static char err[CONFIG_ERR_MAX];

/* Writes text to a fresh file in tmpdir and returns its path (static buffer). */
static const char *write_file(const char *text) {
    static char path[128];
    snprintf(path, sizeof path, "%s/server-%d.properties", tmpdir, ++file_seq);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        abort();
    fputs(text, f);
    fclose(f);
    return path;
}

/* Loads text (NULL: no file) plus overrides into c; returns config_load's result. */
static int load(broker_config *c, const char *text, int n_over, ...) {
    const char *over[16];
    va_list ap;
    va_start(ap, n_over);
    for (int i = 0; i < n_over && i < 16; i++)
        over[i] = va_arg(ap, const char *);
    va_end(ap);
    config_init(c);
    err[0] = '\0';
    return config_load(c, text ? write_file(text) : NULL, over, (size_t)n_over, err);
}

/* Expects text to be rejected with an error mentioning every needle. */
static int rejects(const char *text, const char *n1, const char *n2) {
    broker_config c;
    int rc = load(&c, text, 0);
    config_free(&c);
    if (rc == 0) {
        fprintf(stderr, "accepted but should not: %s\n", text);
        return 0;
    }
    if ((n1 && !strstr(err, n1)) || (n2 && !strstr(err, n2))) {
        fprintf(stderr, "error lacks '%s'/'%s': %s\n", n1 ? n1 : "", n2 ? n2 : "", err);
        return 0;
    }
    return 1;
}

static void test_defaults_without_file(void) {
    broker_config c;
    REQUIRE(load(&c, NULL, 0) == 0);
    CHECK_EQ_INT(c.n_listeners, 1);
    CHECK(strcmp(c.listeners[0].name, "PLAINTEXT") == 0);
    CHECK(strcmp(c.listeners[0].host, "localhost") == 0);
    CHECK_EQ_INT(c.listeners[0].port, 9092);
    CHECK_EQ_INT(c.listeners[0].protocol, CONFIG_PROTOCOL_PLAINTEXT);
    CHECK_EQ_INT(c.n_advertised, 1);
    CHECK(strcmp(c.advertised[0].host, "localhost") == 0);
    CHECK_EQ_INT(c.log_dirs.n, 1);
    CHECK(strcmp(c.log_dirs.items[0], "./data") == 0);
    CHECK_EQ_INT(c.node_id, 1);
    CHECK_EQ_INT(c.process_roles, CONFIG_ROLE_BROKER | CONFIG_ROLE_CONTROLLER);
    CHECK_EQ_INT(c.num_partitions, 1);
    CHECK_EQ_INT(c.default_replication_factor, 1);
    CHECK(c.auto_create_topics_enable);
    CHECK_EQ_INT(c.log_retention_ms, 168LL * 3600000);
    CHECK_EQ_INT(c.log_retention_bytes, -1);
    CHECK_EQ_INT(c.log_segment_bytes, 1073741824);
    CHECK_EQ_INT(c.log_roll_ms, 168LL * 3600000);
    CHECK_EQ_INT(c.log_roll_jitter_ms, 0);
    CHECK(c.log_flush_interval_messages == INT64_MAX);
    CHECK(c.log_flush_interval_ms == INT64_MAX);
    CHECK_EQ_INT(c.message_max_bytes, 1048588);
    CHECK_EQ_INT(c.socket_request_max_bytes, 104857600);
    CHECK(c.num_network_threads >= 1 && c.num_network_threads <= 3);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    CHECK_EQ_INT(c.num_network_threads, ncpu < 3 ? ncpu : 3);
    CHECK_EQ_INT(c.num_io_threads, 8);
    CHECK_EQ_INT(c.queued_max_requests, 500);
    CHECK_EQ_INT(c.log_index_interval_bytes, 4096);
    CHECK_EQ_INT(c.log_index_size_max_bytes, 10485760);
    CHECK_EQ_INT(c.max_connections, INT32_MAX);
    CHECK_EQ_INT(c.connections_max_idle_ms, 600000);
    CHECK_EQ_INT(c.offsets_topic_num_partitions, 50);
    CHECK_EQ_INT(c.offsets_retention_ms, 10080LL * 60000);
    CHECK_EQ_INT(c.group_initial_rebalance_delay_ms, 3000);
    CHECK_EQ_INT(c.group_min_session_timeout_ms, 6000);
    CHECK_EQ_INT(c.group_max_session_timeout_ms, 1800000);
    CHECK_EQ_INT(c.log_cleanup_policy, CONFIG_CLEANUP_DELETE);
    CHECK_EQ_INT(c.log_message_timestamp_type, CONFIG_TIMESTAMP_CREATE_TIME);
    CHECK_EQ_INT(c.compression_type, CONFIG_COMPRESSION_PRODUCER);
    CHECK_EQ_INT(c.min_insync_replicas, 1);
    CHECK(!c.unclean_leader_election_enable);
    CHECK(c.log_cleaner_min_cleanable_ratio == 0.5);
    CHECK_EQ_INT(c.log_level, LOG_LEVEL_INFO);
    CHECK(c.fetch_zero_copy);
    CHECK(c.broker_rack == NULL);
    CHECK(c.inter_broker_listener_name == NULL);
    CHECK_EQ_INT(config_warning_count(&c), 0);
    config_free(&c);

    /* config_init alone gives the same defaults. */
    config_init(&c);
    CHECK_EQ_INT(c.n_listeners, 1);
    CHECK_EQ_INT(c.log_retention_ms, 168LL * 3600000);
    config_free(&c);
    config_free(&c); /* twice is harmless */
}

/* Every default in both tables passes its own validation, and a topic with no
 * overrides describes exactly the topic table's defaults. */
static int check_topic_default(void *ctx, const config_entry *e) {
    (void)ctx;
    if (strcmp(e->value, e->dflt) != 0 || e->source != CONFIG_SOURCE_DEFAULT_CONFIG) {
        fprintf(stderr, "topic default mismatch: %s = %s, table says %s\n", e->name, e->value, e->dflt);
        unit_cur_failed = 1;
    }
    return 0;
}

static void test_table_consistency(void) {
    size_t nb, nt;
    char why[256];
    const config_def *b = config_broker_defs(&nb), *t = config_topic_defs(&nt);
    CHECK(nb > 60 && nb <= CONFIG_KEYS_MAX);
    for (size_t i = 0; i < nb; i++) {
        CHECK(b[i].doc != NULL && strlen(b[i].doc) > 10);
        if (b[i].dflt != NULL && config_validate_value(&b[i], b[i].dflt, why, sizeof why) != 0) {
            fprintf(stderr, "default of %s invalid: %s\n", b[i].name, why);
            unit_cur_failed = 1;
        }
        CHECK((b[i].dflt != NULL) || (b[i].flags & CONFIG_F_NULLABLE));
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(b[i].name, b[j].name) != 0);
    }
    for (size_t i = 0; i < nt; i++) {
        CHECK(t[i].dflt != NULL && config_validate_value(&t[i], t[i].dflt, why, sizeof why) == 0);
        CHECK(config_topic_broker_synonym(&t[i]) != NULL);
    }
    broker_config c;
    REQUIRE(load(&c, NULL, 0) == 0);
    config_describe_topic(&c, NULL, NULL, 0, check_topic_default, NULL);
    config_free(&c);
}

static void test_file_syntax(void) {
    broker_config c;
    const char *text = "# a comment\n"
                       "! another comment\n"
                       "   # indented comment\n"
                       "\n"
                       "   \t\n"
                       "num.partitions = 4\n"
                       "default.replication.factor:1\n"
                       "log.retention.bytes 12345\n"
                       "  broker.rack   =   rack-a   \n"
                       "log.dirs=/a,\\\n"
                       "         /b , \\\n"
                       "   /c\n"
                       "message.max.bytes=100\r\n"
                       "message.max.bytes=2000\r\n"
                       "log.cleanup.policy = compact , delete\n"
                       "controller.quorum.voters=1@h\\:9093\n"
                       "inter.broker.listener.name=PLAINTEXT";
    REQUIRE(load(&c, text, 0) == 0);
    CHECK_EQ_INT(c.num_partitions, 4);
    CHECK_EQ_INT(c.default_replication_factor, 1);
    CHECK_EQ_INT(c.log_retention_bytes, 12345);
    CHECK(c.broker_rack && strcmp(c.broker_rack, "rack-a") == 0);
    REQUIRE(c.log_dirs.n == 3);
    CHECK(strcmp(c.log_dirs.items[0], "/a") == 0);
    CHECK(strcmp(c.log_dirs.items[1], "/b") == 0);
    CHECK(strcmp(c.log_dirs.items[2], "/c") == 0);
    CHECK_EQ_INT(c.message_max_bytes, 2000); /* duplicate key: last wins */
    CHECK_EQ_INT(c.log_cleanup_policy, CONFIG_CLEANUP_DELETE | CONFIG_CLEANUP_COMPACT);
    REQUIRE(c.controller_quorum_voters.n == 1);
    CHECK(strcmp(c.controller_quorum_voters.items[0], "1@h:9093") == 0);
    CHECK(strcmp(c.inter_broker_listener_name, "PLAINTEXT") == 0);
    CHECK_EQ_INT(config_warning_count(&c), 0);
    config_free(&c);
}

struct pairs {
    int n;
    char k[8][64], v[8][64];
    int line[8];
};

static int collect(void *ctx, const char *key, const char *value, int line) {
    struct pairs *p = ctx;
    if (p->n == 8)
        return 7;
    snprintf(p->k[p->n], 64, "%s", key);
    snprintf(p->v[p->n], 64, "%s", value);
    p->line[p->n++] = line;
    return 0;
}

static void test_props_parser(void) {
    struct pairs p = {0};
    const char *text = "a=1\n"
                       "# comment ending in backslash \\\n"
                       "b = two words  \n"
                       "c\\=d=e\\\\\n"          /* escaped '=' in key; even backslashes: no continuation */
                       "f=\\u0041\\u00e9\\t|\n" /* unicode escapes and tab */
                       "g=x\\\n"
                       "\n"  /* a continuation onto a blank line ends the value */
                       "h\n" /* key with empty value */
                       "i:\n"
                       "  j  \t  k  ";
    REQUIRE(config_props_parse(text, strlen(text), collect, &p, err) == 0);
    REQUIRE(p.n == 8);
    CHECK(strcmp(p.k[0], "a") == 0 && strcmp(p.v[0], "1") == 0 && p.line[0] == 1);
    CHECK(strcmp(p.k[1], "b") == 0 && strcmp(p.v[1], "two words") == 0 && p.line[1] == 3);
    CHECK(strcmp(p.k[2], "c=d") == 0 && strcmp(p.v[2], "e\\") == 0);
    CHECK(strcmp(p.k[3], "f") == 0 && strcmp(p.v[3], "A\xc3\xa9\t|") == 0);
    CHECK(strcmp(p.k[4], "g") == 0 && strcmp(p.v[4], "x") == 0 && p.line[4] == 6);
    CHECK(strcmp(p.k[5], "h") == 0 && strcmp(p.v[5], "") == 0 && p.line[5] == 8);
    CHECK(strcmp(p.k[6], "i") == 0 && strcmp(p.v[6], "") == 0);
    CHECK(strcmp(p.k[7], "j") == 0 && strcmp(p.v[7], "k") == 0 && p.line[7] == 10);

    /* The callback's value stops the parse and is returned. */
    memset(&p, 0, sizeof p);
    p.n = 8;
    CHECK_EQ_INT(config_props_parse("x=1\n", 4, collect, &p, err), 7);

    /* Never reads past len: the text below is not NUL-terminated at 3. */
    memset(&p, 0, sizeof p);
    CHECK(config_props_parse("k=vXXXX", 3, collect, &p, err) == 0);
    CHECK(p.n == 1 && strcmp(p.v[0], "v") == 0);

    /* Malformed \u and over-long lines are errors. */
    CHECK(config_props_parse("k=\\u12G4\n", 9, collect, &p, err) == -1);
    CHECK(strstr(err, "line 1") != NULL);
    static char huge[CONFIG_LINE_MAX + 1000];
    memset(huge, 'a', sizeof huge);
    memcpy(huge, "k=", 2);
    CHECK(config_props_parse(huge, sizeof huge, collect, &p, err) == -1);
    CHECK(strstr(err, "longer than") != NULL);
    /* A continuation can not dodge the limit either. */
    for (size_t i = 100; i < sizeof huge; i += 100)
        memcpy(huge + i - 2, "\\\n", 2);
    CHECK(config_props_parse(huge, sizeof huge, collect, &p, err) == -1);
}

static void test_overrides(void) {
    broker_config c;
    REQUIRE(load(&c, "num.partitions=3\nlog.dirs=/x\n", 2, "num.partitions=5", " log.dirs = /y,/z ") == 0);
    CHECK_EQ_INT(c.num_partitions, 5);
    REQUIRE(c.log_dirs.n == 2);
    CHECK(strcmp(c.log_dirs.items[1], "/z") == 0);
    config_entry e;
    REQUIRE(config_broker_entry(&c, "num.partitions", &e) == 0);
    CHECK(strcmp(e.value, "5") == 0 && e.source == CONFIG_SOURCE_STATIC_BROKER_CONFIG);
    config_free(&c);

    /* Overrides without a file; a value may contain '='. */
    REQUIRE(load(&c, NULL, 1, "broker.rack=a=b") == 0);
    CHECK(strcmp(c.broker_rack, "a=b") == 0);
    config_free(&c);

    CHECK(load(&c, NULL, 1, "num.partitions") != 0);
    CHECK(strstr(err, "--override") && strstr(err, "key=value"));
    config_free(&c);
    CHECK(load(&c, NULL, 1, "=3") != 0);
    config_free(&c);
    CHECK(load(&c, NULL, 1, "num.partitions=zero") != 0);
    CHECK(strstr(err, "--override") && strstr(err, "num.partitions") && strstr(err, "'zero'"));
    config_free(&c);

    /* An unknown override is a warning, not an error (its log line is
     * checked in test_unknown_key_warning; here it goes to /dev/null). */
    int devnull = open("/dev/null", O_WRONLY);
    log_set_fd(devnull);
    int rc = load(&c, NULL, 1, "no.such.key=1");
    log_set_fd(-1);
    close(devnull);
    REQUIRE(rc == 0);
    CHECK_EQ_INT(config_warning_count(&c), 1);
    config_free(&c);
}

static void test_synonyms(void) {
    broker_config c;
    REQUIRE(load(&c, "log.retention.hours=1\n", 0) == 0);
    CHECK_EQ_INT(c.log_retention_ms, 3600000);
    config_free(&c);

    REQUIRE(load(&c, "log.retention.minutes=2\nlog.retention.hours=1\n", 0) == 0);
    CHECK_EQ_INT(c.log_retention_ms, 120000);
    config_free(&c);

    /* ms wins over hours even when hours comes later, from an override. */
    REQUIRE(load(&c, "log.retention.ms=5000\nlog.retention.minutes=9\n", 1, "log.retention.hours=3") == 0);
    CHECK_EQ_INT(c.log_retention_ms, 5000);
    config_free(&c);

    REQUIRE(load(&c, "log.retention.hours=-1\n", 0) == 0);
    CHECK_EQ_INT(c.log_retention_ms, -1);
    config_free(&c);
    REQUIRE(load(&c, "log.retention.ms=-1\n", 0) == 0);
    CHECK_EQ_INT(c.log_retention_ms, -1);
    config_free(&c);
    CHECK(rejects("log.retention.ms=0\n", "log.retention", "0 ms"));
    CHECK(rejects("log.retention.hours=0\n", "log.retention", NULL));

    REQUIRE(load(&c, "log.roll.hours=2\n", 0) == 0);
    CHECK_EQ_INT(c.log_roll_ms, 7200000);
    config_free(&c);
    REQUIRE(load(&c, "log.roll.hours=2\nlog.roll.ms=10\nlog.roll.jitter.hours=1\n", 0) == 0);
    CHECK_EQ_INT(c.log_roll_ms, 10);
    CHECK_EQ_INT(c.log_roll_jitter_ms, 3600000);
    config_free(&c);

    REQUIRE(load(&c, "log.flush.scheduler.interval.ms=2000\n", 0) == 0);
    CHECK_EQ_INT(c.log_flush_interval_ms, 2000);
    config_free(&c);
    REQUIRE(load(&c, "log.flush.scheduler.interval.ms=2000\nlog.flush.interval.ms=50\n", 0) == 0);
    CHECK_EQ_INT(c.log_flush_interval_ms, 50);
    config_free(&c);

    REQUIRE(load(&c, "broker.id=7\n", 0) == 0);
    CHECK_EQ_INT(c.node_id, 7);
    config_free(&c);
    REQUIRE(load(&c, "broker.id=7\nnode.id=7\n", 0) == 0);
    CHECK_EQ_INT(c.node_id, 7);
    config_free(&c);
    CHECK(rejects("broker.id=7\nnode.id=8\n", "node.id", "broker.id"));

    REQUIRE(load(&c, "log.dir=/one\n", 0) == 0);
    CHECK(c.log_dirs.n == 1 && strcmp(c.log_dirs.items[0], "/one") == 0);
    config_free(&c);
    REQUIRE(load(&c, "log.dir=/one\nlog.dirs=/two,/three\n", 0) == 0);
    CHECK(c.log_dirs.n == 2 && strcmp(c.log_dirs.items[0], "/two") == 0);
    config_free(&c);

    const config_def *syn[8];
    size_t n = config_synonyms("retention.ms", true, syn, 8);
    REQUIRE(n == 4);
    CHECK(strcmp(syn[0]->name, "retention.ms") == 0);
    CHECK(strcmp(syn[1]->name, "log.retention.ms") == 0);
    CHECK(strcmp(syn[2]->name, "log.retention.minutes") == 0);
    CHECK(strcmp(syn[3]->name, "log.retention.hours") == 0);
    n = config_synonyms("log.roll.hours", false, syn, 8);
    CHECK(n == 2 && strcmp(syn[0]->name, "log.roll.ms") == 0);
    CHECK_EQ_INT(config_synonyms("num.partitions", false, syn, 8), 1);
    CHECK_EQ_INT(config_synonyms("max.message.bytes", true, syn, 8), 2);
    CHECK(strcmp(syn[1]->name, "message.max.bytes") == 0);
    CHECK_EQ_INT(config_synonyms("nope", true, syn, 8), 0);
    CHECK_EQ_INT(config_synonyms("retention.ms", true, syn, 2), 2);
}

static void test_invalid_values(void) {
    /* Not a number, fractional, trailing junk, hex, empty, too big for int32/int64. */
    CHECK(rejects("num.partitions=abc\n", "num.partitions", "'abc'"));
    CHECK(rejects("num.partitions=1.5\n", "num.partitions", "integer"));
    CHECK(rejects("num.partitions=12abc\n", "num.partitions", NULL));
    CHECK(rejects("num.partitions=0x10\n", "num.partitions", NULL));
    CHECK(rejects("num.partitions=\n", "num.partitions", NULL));
    CHECK(rejects("num.partitions=2147483648\n", "num.partitions", "from 1 to 2147483647"));
    CHECK(rejects("log.retention.bytes=9223372036854775808\n", "log.retention.bytes", NULL));
    /* Out of range. */
    CHECK(rejects("num.partitions=0\n", "num.partitions", "out of range: expected an integer from 1 to"));
    CHECK(rejects("message.max.bytes=-1\n", "message.max.bytes", "out of range"));
    CHECK(rejects("num.network.threads=1000\n", "num.network.threads", "from 1 to 256"));
    CHECK(rejects("log.segment.bytes=13\n", "log.segment.bytes", NULL));
    CHECK(rejects("compression.zstd.level=23\n", "compression.zstd.level", NULL));
    CHECK(rejects("compression.gzip.level=0\n", "compression.gzip.level", "1 to 9"));
    /* Booleans. */
    CHECK(rejects("auto.create.topics.enable=yes\n", "auto.create.topics.enable", "true or false"));
    /* Enums are case-sensitive except log.level. */
    CHECK(rejects("log.message.timestamp.type=createtime\n", "log.message.timestamp.type",
                  "CreateTime, LogAppendTime"));
    CHECK(rejects("compression.type=brotli\n", "compression.type", "zstd"));
    CHECK(rejects("log.level=loud\n", "log.level", "debug"));
    /* Lists. */
    CHECK(rejects("log.cleanup.policy=delete,shred\n", "log.cleanup.policy", "'shred'"));
    CHECK(rejects("log.cleanup.policy=\n", "log.cleanup.policy", NULL));
    CHECK(rejects("log.dirs=/a,,/b\n", "log.dirs", "empty"));
    CHECK(rejects("log.dirs=\n", "log.dirs", NULL));
    CHECK(rejects("process.roles=broker,voter\n", "process.roles", NULL));
    /* Doubles. */
    CHECK(rejects("log.cleaner.min.cleanable.ratio=1.5\n", "log.cleaner.min.cleanable.ratio", NULL));
    CHECK(rejects("log.cleaner.min.cleanable.ratio=nan\n", "log.cleaner.min.cleanable.ratio", NULL));
    CHECK(rejects("log.cleaner.min.cleanable.ratio=half\n", "log.cleaner.min.cleanable.ratio", NULL));
    /* Cross-key checks. */
    CHECK(rejects("group.min.session.timeout.ms=10\ngroup.max.session.timeout.ms=5\n", "group.min.session",
                  NULL));
    /* The error names the file and line. */
    CHECK(rejects("\n\nnum.io.threads=x\n", ".properties:3:", "num.io.threads"));
    /* A key with no name. */
    CHECK(rejects("=5\n", "missing key", NULL));

    broker_config c;
    REQUIRE(load(&c,
                 "log.level=DEBUG\nlog.cleaner.min.cleanable.ratio=0.25\nauto.create.topics.enable=FALSE\n",
                 0) == 0);
    CHECK_EQ_INT(c.log_level, LOG_LEVEL_DEBUG);
    CHECK(c.log_cleaner_min_cleanable_ratio == 0.25);
    CHECK(!c.auto_create_topics_enable);
    config_free(&c);
    log_set_level(LOG_LEVEL_INFO);
}

static void test_unknown_key_warning(void) {
    broker_config c;
    int fds[2];
    char buf[1024] = {0};
    REQUIRE(pipe(fds) == 0);
    log_set_fd(fds[1]);
    int rc = load(&c, "num.partitions=2\nzookeeper.connect=localhost:2181\n", 0);
    log_set_fd(-1);
    close(fds[1]);
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    REQUIRE(rc == 0);
    CHECK(n > 0);
    CHECK(strstr(buf, "WARN") && strstr(buf, "zookeeper.connect") && strstr(buf, ":2:"));
    CHECK_EQ_INT(config_warning_count(&c), 1);
    CHECK(strstr(config_last_warning(&c), "zookeeper.connect") != NULL);
    CHECK_EQ_INT(c.num_partitions, 2);
    config_free(&c);
}

static void test_listeners(void) {
    broker_config c;
    REQUIRE(load(&c,
                 "listeners=PLAINTEXT://:9092,internal://127.0.0.1:9093,V6://[::1]:9094,CONTROLLER://:9095\n"
                 "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,V6:PLAINTEXT,"
                 "CONTROLLER:PLAINTEXT\n"
                 "controller.listener.names=CONTROLLER\n",
                 0) == 0);
    REQUIRE(c.n_listeners == 4);
    CHECK(strcmp(c.listeners[0].host, "") == 0 && c.listeners[0].port == 9092);
    CHECK(strcmp(c.listeners[1].name, "INTERNAL") == 0 && strcmp(c.listeners[1].host, "127.0.0.1") == 0);
    CHECK(strcmp(c.listeners[2].host, "::1") == 0 && c.listeners[2].port == 9094);
    CHECK(c.listeners[3].controller && !c.listeners[0].controller);
    /* Advertised: the non-controller listeners, wildcard host replaced. */
    REQUIRE(c.n_advertised == 3);
    CHECK(c.advertised[0].host[0] != '\0');
    CHECK(strcmp(c.advertised[1].host, "127.0.0.1") == 0);
    config_free(&c);

    REQUIRE(load(&c,
                 "listeners=PLAINTEXT://0.0.0.0:0\nadvertised.listeners=PLAINTEXT://broker1.example:19092\n",
                 0) == 0);
    CHECK(c.listeners[0].port == 0);
    CHECK(strcmp(c.advertised[0].host, "broker1.example") == 0 && c.advertised[0].port == 19092);
    config_free(&c);

    CHECK(rejects("listeners=PLAINTEXT://localhost\n", "listeners", "port"));
    CHECK(rejects("listeners=PLAINTEXT://localhost:70000\n", "listeners", "65535"));
    CHECK(rejects("listeners=PLAINTEXT://localhost:-1\n", "listeners", NULL));
    CHECK(rejects("listeners=localhost:9092\n", "listeners", "NAME://host:port"));
    REQUIRE(load(&c,
                 "listeners=SASL_PLAINTEXT://localhost:9093\n"
                 "listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN\n"
                 "listener.name.sasl_plaintext.plain.sasl.jaas.config=M required user_a=\"b\";\n",
                 0) == 0);
    CHECK(c.listeners[0].protocol == CONFIG_PROTOCOL_SASL_PLAINTEXT);
    CHECK(strcmp(config_listener_value(&c, "SASL_PLAINTEXT", "sasl.enabled.mechanisms"), "PLAIN") == 0);
    CHECK(strcmp(config_listener_mech_value(&c, "SASL_PLAINTEXT", "PLAIN", "sasl.jaas.config"),
                 "M required user_a=\"b\";") == 0);
    CHECK(config_listener_mech_value(&c, "SASL_PLAINTEXT", "scram-sha-256", "sasl.jaas.config") == NULL);
    CHECK(config_warning_count(&c) == 0);
    config_free(&c);
    CHECK(rejects("listeners=SASL_SSL://localhost:9093\nsasl.enabled.mechanisms=GSSAPI\n", "GSSAPI", NULL));
    /* SSL listeners, with per-listener ssl.* keys; controllers stay PLAINTEXT. */
    REQUIRE(load(&c,
                 "listeners=SSL://localhost:9093\nssl.client.auth=requested\n"
                 "listener.name.ssl.ssl.client.auth=required\nlistener.name.other.ssl.key.password=x\n",
                 0) == 0);
    CHECK(c.listeners[0].protocol == CONFIG_PROTOCOL_SSL);
    CHECK(strcmp(config_listener_value(&c, "SSL", "ssl.client.auth"), "required") == 0);
    CHECK(strcmp(config_listener_value(&c, "OTHER", "ssl.client.auth"), "requested") == 0);
    CHECK(strcmp(config_listener_value(&c, "other", "ssl.key.password"), "x") == 0);
    CHECK(config_listener_value(&c, "SSL", "ssl.key.password") == NULL);
    CHECK(config_warning_count(&c) == 0);
    config_free(&c);
    CHECK(rejects("listeners=SSL://localhost:9093\nlistener.name.ssl.ssl.client.auth=maybe\n",
                  "listener.name.ssl.ssl.client.auth", "maybe"));
    CHECK(rejects("listeners=SSL://localhost:9093\nssl.enabled.protocols=TLSv1.2,SSLv3\n", "SSLv3", NULL));
    CHECK(rejects("listeners=SSL://localhost:9093\nssl.keystore.type=JKS\n", "ssl.keystore.type", NULL));
    CHECK(rejects("listeners=PLAINTEXT://a:1,CONTROLLER://a:2\ncontroller.listener.names=CONTROLLER\n"
                  "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SSL\n",
                  "controller", "PLAINTEXT"));
    CHECK(rejects("listeners=CLIENT://localhost:9093\n", "CLIENT", "listener.security.protocol.map"));
    CHECK(rejects("listeners=PLAINTEXT://a:1,PLAINTEXT://b:2\n", "twice", NULL));
    CHECK(rejects(
        "listeners=PLAINTEXT://a:1,X://b:1\nlistener.security.protocol.map=PLAINTEXT:PLAINTEXT,X:PLAINTEXT\n",
        "port 1", NULL));
    CHECK(rejects("listeners=\n", "listeners", "at least one"));
    CHECK(rejects("listeners=PLAINTEXT://::1:9092\n", "brackets", NULL));
    CHECK(rejects("listeners=PLAINTEXT://[::1:9092\n", "listeners", NULL));
    CHECK(rejects("listeners=PLAIN TEXT://h:1\n", "listeners", NULL));
    CHECK(rejects("advertised.listeners=PLAINTEXT://0.0.0.0:9092\n", "advertised.listeners", "wildcard"));
    CHECK(rejects("listener.security.protocol.map=PLAINTEXT:TLS\n", "listener.security.protocol.map", NULL));
    CHECK(rejects("listener.security.protocol.map=PLAINTEXT\n", "NAME:PROTOCOL", NULL));
    CHECK(rejects("inter.broker.listener.name=REPLICATION\n", "inter.broker.listener.name", NULL));
    CHECK(rejects("listeners=CONTROLLER://:9093\ncontroller.listener.names=CONTROLLER\n"
                  "listener.security.protocol.map=CONTROLLER:PLAINTEXT\n",
                  "controller listener", NULL));
    /* A controller-only node needs no client listener. */
    REQUIRE(
        load(&c,
             "process.roles=controller\nlisteners=CONTROLLER://:9093\ncontroller.listener.names=CONTROLLER\n"
             "listener.security.protocol.map=CONTROLLER:PLAINTEXT\n",
             0) == 0);
    CHECK_EQ_INT(c.n_advertised, 0);
    CHECK_EQ_INT(c.process_roles, CONFIG_ROLE_CONTROLLER);
    config_free(&c);

    config_listener l[2];
    int n;
    char why[256];
    CHECK(config_parse_listeners("A://h:1,B://h:2,C://h:3", NULL, l, 2, &n, why, sizeof why) == -1);
    CHECK(strstr(why, "more than 2") != NULL);
}

/* A KRaft-style combined-mode file as operators write them for Kafka 4.0
 * loads without a single warning. */
static void test_kafka_style_file(void) {
    broker_config c;
    const char *text = "############ Server basics ############\n"
                       "process.roles=broker,controller\n"
                       "node.id=1\n"
                       "controller.quorum.bootstrap.servers=localhost:9093\n"
                       "\n"
                       "############ Socket server ############\n"
                       "listeners=PLAINTEXT://:9092,CONTROLLER://:9093\n"
                       "inter.broker.listener.name=PLAINTEXT\n"
                       "advertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093\n"
                       "controller.listener.names=CONTROLLER\n"
                       "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,"
                       "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL\n"
                       "num.network.threads=3\n"
                       "num.io.threads=8\n"
                       "socket.send.buffer.bytes=102400\n"
                       "socket.receive.buffer.bytes=102400\n"
                       "socket.request.max.bytes=104857600\n"
                       "############ Log basics ############\n"
                       "log.dirs=/tmp/kraft-combined-logs\n"
                       "num.partitions=1\n"
                       "num.recovery.threads.per.data.dir=1\n"
                       "offsets.topic.replication.factor=1\n"
                       "share.coordinator.state.topic.replication.factor=1\n"
                       "share.coordinator.state.topic.min.isr=1\n"
                       "transaction.state.log.replication.factor=1\n"
                       "transaction.state.log.min.isr=1\n"
                       "#log.flush.interval.messages=10000\n"
                       "#log.flush.interval.ms=1000\n"
                       "log.retention.hours=168\n"
                       "#log.retention.bytes=1073741824\n"
                       "log.segment.bytes=1073741824\n"
                       "log.retention.check.interval.ms=300000\n";
    REQUIRE(load(&c, text, 0) == 0);
    CHECK_EQ_INT(config_warning_count(&c), 0);
    REQUIRE(c.n_listeners == 2 && c.n_advertised == 2);
    CHECK(!c.advertised[0].controller && c.advertised[1].controller);
    CHECK(c.listeners[1].controller);
    CHECK(strcmp(c.log_dirs.items[0], "/tmp/kraft-combined-logs") == 0);
    config_free(&c);
}

static void test_network_threads_cap(void) {
    broker_config c;
    REQUIRE(load(&c, "num.network.threads=3\n", 0) == 0);
    CHECK_EQ_INT(c.num_network_threads, 3); /* an explicit value is never capped */
    config_free(&c);
}

static void test_env_log_level(void) {
    broker_config c;
    setenv(LOG_ENV_LEVEL, "debug", 1);
    REQUIRE(load(&c, "log.level=warn\n", 0) == 0);
    CHECK_EQ_INT(c.log_level, LOG_LEVEL_DEBUG); /* environment beats the file */
    CHECK(log_get_level() == LOG_LEVEL_DEBUG);  /* and is applied */
    config_free(&c);
    REQUIRE(load(&c, "log.level=warn\n", 1, "log.level=error") == 0);
    CHECK_EQ_INT(c.log_level, LOG_LEVEL_ERROR); /* an override beats both */
    config_free(&c);
    setenv(LOG_ENV_LEVEL, "chatty", 1);
    CHECK(load(&c, NULL, 0) != 0);
    CHECK(strstr(err, "SLUICE_LOG_LEVEL") && strstr(err, "chatty"));
    config_free(&c);
    unsetenv(LOG_ENV_LEVEL);
    log_set_level(LOG_LEVEL_INFO);
}

static void test_file_errors(void) {
    broker_config c;
    char path[128];
    config_init(&c);
    snprintf(path, sizeof path, "%s/missing.properties", tmpdir);
    CHECK(config_load(&c, path, NULL, 0, err) != 0);
    CHECK(strstr(err, "missing.properties") != NULL);
    config_free(&c);
    config_init(&c);
    CHECK(config_load(&c, tmpdir, NULL, 0, err) != 0);
    CHECK(strstr(err, "regular file") != NULL);
    config_free(&c);
    CHECK(rejects("broker.rack=\\uZZZZ\n", "\\uXXXX", NULL));
}

static int count_entries(void *ctx, const config_entry *e) {
    int *n = ctx;
    (*n)++;
    if (strcmp(e->name, "num.partitions") == 0)
        CHECK(strcmp(e->value, "3") == 0 && e->source == CONFIG_SOURCE_STATIC_BROKER_CONFIG &&
              e->type == CONFIG_KTYPE_INT && e->read_only);
    if (strcmp(e->name, "num.io.threads") == 0)
        CHECK(strcmp(e->value, "8") == 0 && e->source == CONFIG_SOURCE_DEFAULT_CONFIG);
    if (strcmp(e->name, "log.retention.ms") == 0)
        CHECK(e->value == NULL && e->type == CONFIG_KTYPE_LONG);
    if (strcmp(e->name, "log.retention.hours") == 0)
        CHECK(strcmp(e->value, "168") == 0 && e->type == CONFIG_KTYPE_INT);
    if (strcmp(e->name, "offsets.topic.replication.factor") == 0)
        CHECK(e->type == CONFIG_KTYPE_SHORT);
    if (strcmp(e->name, "log.cleanup.policy") == 0)
        CHECK(e->type == CONFIG_KTYPE_LIST);
    return 0;
}

static int stop_after_one(void *ctx, const config_entry *e) {
    (void)e;
    (*(int *)ctx)++;
    return 1;
}

static void test_describe_broker(void) {
    broker_config c;
    size_t nb;
    int n = 0;
    config_broker_defs(&nb);
    REQUIRE(load(&c, "num.partitions=3\n", 0) == 0);
    config_describe_broker(&c, count_entries, &n);
    CHECK_EQ_INT(n, nb);
    n = 0;
    config_describe_broker(&c, stop_after_one, &n);
    CHECK_EQ_INT(n, 1);
    config_entry e;
    CHECK(config_broker_entry(&c, "no.such", &e) == -1);
    config_free(&c);
}

struct topic_expect {
    int seen;
};

static int check_topic_entries(void *ctx, const config_entry *e) {
    struct topic_expect *t = ctx;
    t->seen++;
    if (strcmp(e->name, "retention.ms") == 0)
        CHECK(strcmp(e->value, "86400000") == 0 && e->source == CONFIG_SOURCE_STATIC_BROKER_CONFIG);
    if (strcmp(e->name, "cleanup.policy") == 0)
        CHECK(strcmp(e->value, "compact") == 0 && e->source == CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG);
    if (strcmp(e->name, "segment.bytes") == 0)
        CHECK(strcmp(e->value, "1048576") == 0 && e->source == CONFIG_SOURCE_STATIC_BROKER_CONFIG);
    if (strcmp(e->name, "index.interval.bytes") == 0)
        CHECK(strcmp(e->value, "4096") == 0 && e->source == CONFIG_SOURCE_DEFAULT_CONFIG);
    if (strcmp(e->name, "max.message.bytes") == 0)
        CHECK(strcmp(e->value, "2000") == 0 && e->source == CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG);
    if (strcmp(e->name, "compression.type") == 0)
        CHECK(strcmp(e->value, "zstd") == 0 && e->source == CONFIG_SOURCE_STATIC_BROKER_CONFIG);
    if (strcmp(e->name, "min.cleanable.dirty.ratio") == 0)
        CHECK(strcmp(e->value, "0.5") == 0 && e->type == CONFIG_KTYPE_DOUBLE);
    return 0;
}

static void test_topic_config(void) {
    char msg[256];
    broker_config c;
    topic_config tc;
    size_t nt;
    config_topic_defs(&nt);

    CHECK_EQ_INT(topic_config_validate("retention.ms", "1000", msg, sizeof msg), 0);
    CHECK_EQ_INT(topic_config_validate("retention.ms", " -1 ", msg, sizeof msg), 0);
    CHECK_EQ_INT(topic_config_validate("cleanup.policy", "compact,delete", msg, sizeof msg), 0);
    CHECK_EQ_INT(topic_config_validate("retention.mss", "1", msg, sizeof msg), CONFIG_KAFKA_INVALID_CONFIG);
    CHECK(strstr(msg, "retention.mss") != NULL);
    CHECK_EQ_INT(topic_config_validate("retention.ms", NULL, msg, sizeof msg), 40);
    CHECK_EQ_INT(topic_config_validate("retention.ms", "soon", msg, sizeof msg), 40);
    CHECK(strstr(msg, "retention.ms") && strstr(msg, "soon"));
    CHECK_EQ_INT(topic_config_validate("retention.ms", "-2", msg, sizeof msg), 40);
    CHECK_EQ_INT(topic_config_validate("segment.bytes", "1", msg, sizeof msg), 40);
    CHECK_EQ_INT(topic_config_validate("segment.ms", "0", msg, sizeof msg), 40);
    CHECK_EQ_INT(topic_config_validate("compression.type", "brotli", msg, sizeof msg), 40);
    CHECK(strstr(msg, "uncompressed") != NULL);
    CHECK_EQ_INT(topic_config_validate("cleanup.policy", "", msg, sizeof msg), 40);
    CHECK_EQ_INT(topic_config_validate("min.cleanable.dirty.ratio", "2", msg, sizeof msg), 40);
    CHECK_EQ_INT(topic_config_validate("unclean.leader.election.enable", "maybe", msg, sizeof msg), 40);
    CHECK_EQ_INT(topic_config_validate("message.timestamp.type", "LogAppendTime", msg, sizeof msg), 0);
    CHECK_EQ_INT(topic_config_validate(NULL, "1", msg, sizeof msg), 40);
    /* A broker-only key is not a topic key. */
    CHECK_EQ_INT(topic_config_validate("log.retention.ms", "1", msg, sizeof msg), 40);

    REQUIRE(load(&c, "log.retention.hours=24\ncompression.type=zstd\nlog.segment.bytes=1048576\n", 0) == 0);
    topic_config_init(&tc, &c);
    CHECK_EQ_INT(tc.retention_ms, 86400000);
    CHECK_EQ_INT(tc.compression_type, CONFIG_COMPRESSION_ZSTD);
    CHECK_EQ_INT(tc.segment_bytes, 1048576);
    CHECK_EQ_INT(tc.segment_ms, 168LL * 3600000);
    CHECK(tc.flush_ms == INT64_MAX);
    CHECK(tc.min_cleanable_dirty_ratio == 0.5);

    const char *keys[] = {"cleanup.policy", "max.message.bytes", "segment.bytes", "retention.bytes"};
    const char *vals[] = {"compact", "2000", " 4096 ", "100"};
    REQUIRE(topic_config_build(&tc, &c, keys, vals, 4, msg, sizeof msg) == 0);
    CHECK_EQ_INT(tc.cleanup_policy, CONFIG_CLEANUP_COMPACT);
    CHECK_EQ_INT(tc.max_message_bytes, 2000);
    CHECK_EQ_INT(tc.segment_bytes, 4096);
    CHECK_EQ_INT(tc.retention_bytes, 100);
    CHECK_EQ_INT(tc.retention_ms, 86400000);

    const char *bad_keys[] = {"min.compaction.lag.ms", "max.compaction.lag.ms"};
    const char *bad_vals[] = {"100", "10"};
    CHECK_EQ_INT(topic_config_build(&tc, &c, bad_keys, bad_vals, 2, msg, sizeof msg), 40);
    CHECK(strstr(msg, "min.compaction.lag.ms") != NULL);
    const char *unk_keys[] = {"segment.bytes", "flavour"};
    const char *unk_vals[] = {"4096", "vanilla"};
    CHECK_EQ_INT(topic_config_build(&tc, &c, unk_keys, unk_vals, 2, msg, sizeof msg), 40);
    CHECK(strstr(msg, "flavour") != NULL);

    struct topic_expect t = {0};
    const char *dkeys[] = {"cleanup.policy", "max.message.bytes"};
    const char *dvals[] = {"compact", "2000"};
    config_describe_topic(&c, dkeys, dvals, 2, check_topic_entries, &t);
    CHECK_EQ_INT(t.seen, nt);
    config_free(&c);
}

/* Every row that sets a storage setting accepts only what storage opens
 * (log.h's table of limits): a value the broker takes must never stop a
 * partition log from opening after a restart. */
static void test_rows_within_storage_limits(void) {
    int n = 0;
    const plog_limit *lim = plog_limits(&n);
    int checked = 0;
    for (int i = 0; i < n; i++) {
        const config_def *syn[8];
        size_t ns = config_synonyms(lim[i].key, true, syn, 8);
        for (size_t k = 0; k < ns; k++) {
            const config_def *d = syn[k];
            int64_t unit = d->type == CONFIG_DURATION ? d->unit_ms : 1;
            int64_t lo = d->min < 0 ? d->min : d->min * unit;
            if (lo < lim[i].min || (unit == 1 && d->max > lim[i].max))
                printf("row %s allows %lld..%lld, storage %s needs %lld..%lld\n", d->name, (long long)d->min,
                       (long long)d->max, lim[i].key, (long long)lim[i].min, (long long)lim[i].max);
            CHECK(lo >= lim[i].min);
            CHECK(unit != 1 || d->max <= lim[i].max);
            checked++;
        }
    }
    CHECK(checked >= 15);
    char msg[256];
    /* The values of the issue: accepted by the rows before, refused by storage. */
    CHECK_EQ_INT(topic_config_validate("max.message.bytes", "10", msg, sizeof msg), 40);
    CHECK(strstr(msg, "max.message.bytes") && strstr(msg, "61"));
    CHECK_EQ_INT(topic_config_validate("segment.bytes", "14", msg, sizeof msg), 40);
    CHECK_EQ_INT(topic_config_validate("segment.index.bytes", "4", msg, sizeof msg), 40);
    CHECK_EQ_INT(topic_config_validate("segment.bytes", "64", msg, sizeof msg), 0);
    CHECK(rejects("log.segment.bytes=14\n", "log.segment.bytes", "64"));
    CHECK(rejects("message.max.bytes=60\n", "message.max.bytes", NULL));
    CHECK(rejects("log.index.size.max.bytes=31\n", "log.index.size.max.bytes", NULL));
}

/* The topic rows (config/topic_keys.c) restate their broker synonym's rules
 * so each table reads on its own: where the two keys count in the same unit
 * they must accept exactly the same values, and where the broker key has a
 * default, have the same one. */
static void test_topic_rows_agree_with_synonyms(void) {
    size_t nt;
    const config_def *t = config_topic_defs(&nt);
    int compared = 0;
    for (size_t i = 0; i < nt; i++) {
        const config_def *b = config_topic_broker_synonym(&t[i]);
        REQUIRE(b != NULL);
        int64_t tu = t[i].type == CONFIG_DURATION ? t[i].unit_ms : 1;
        int64_t bu = b->type == CONFIG_DURATION ? b->unit_ms : 1;
        bool ints = (t[i].type == CONFIG_LONG || t[i].type == CONFIG_DURATION) &&
                    (b->type == CONFIG_LONG || b->type == CONFIG_DURATION);
        if (tu != bu || (t[i].type != b->type && !ints))
            continue;
        compared++;
        if (t[i].min != b->min || t[i].max != b->max || t[i].allowed != b->allowed ||
            t[i].check != b->check || (b->dflt != NULL && strcmp(t[i].dflt, b->dflt) != 0)) {
            fprintf(stderr, "topic key %s and broker key %s disagree\n", t[i].name, b->name);
            unit_cur_failed = 1;
        }
    }
    CHECK(compared >= 20);
}

static void test_docs_match_tables(void) {
    char *gen = NULL;
    size_t genlen = 0;
    FILE *m = open_memstream(&gen, &genlen);
    REQUIRE(m != NULL);
    CHECK(config_write_docs(m) == 0);
    fclose(m);

    FILE *f = fopen("docs/configuration.md", "r");
    if (f == NULL) {
        fprintf(stderr, "docs/configuration.md not found (run from the source root)\n");
        free(gen);
        REQUIRE(0);
    }
    static char disk[1 << 17];
    size_t n = fread(disk, 1, sizeof disk, f);
    fclose(f);
    if (n != genlen || memcmp(disk, gen, n) != 0) {
        fprintf(stderr, "docs/configuration.md is stale: regenerate with build/rel/config_docs > "
                        "docs/configuration.md\n");
        unit_cur_failed = 1;
    }
    CHECK(strstr(gen, "`log.retention.ms`") != NULL);
    CHECK(strstr(gen, "parsed and validated") != NULL);
    free(gen);
}

int main(void) {
    unsetenv(LOG_ENV_LEVEL);
    if (mkdtemp(tmpdir) == NULL)
        return 1;
    /* Warnings the tests provoke on purpose only clutter the output. */
    log_set_level(LOG_LEVEL_ERROR);
    UNIT_RUN(test_defaults_without_file);
    UNIT_RUN(test_table_consistency);
    UNIT_RUN(test_file_syntax);
    UNIT_RUN(test_props_parser);
    UNIT_RUN(test_overrides);
    UNIT_RUN(test_synonyms);
    UNIT_RUN(test_invalid_values);
    log_set_level(LOG_LEVEL_INFO);
    UNIT_RUN(test_unknown_key_warning);
    log_set_level(LOG_LEVEL_ERROR);
    UNIT_RUN(test_listeners);
    UNIT_RUN(test_kafka_style_file);
    UNIT_RUN(test_network_threads_cap);
    UNIT_RUN(test_env_log_level);
    UNIT_RUN(test_file_errors);
    UNIT_RUN(test_describe_broker);
    UNIT_RUN(test_topic_config);
    UNIT_RUN(test_rows_within_storage_limits);
    UNIT_RUN(test_topic_rows_agree_with_synonyms);
    UNIT_RUN(test_docs_match_tables);
    for (int i = 1; i <= file_seq; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/server-%d.properties", tmpdir, i);
        unlink(path);
    }
    rmdir(tmpdir);
    return UNIT_END("test_config");
}
