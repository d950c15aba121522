/*
 * test_core_log.c - the logging module (core/log.c): line format, level filtering (including
 * that disabled lines do not evaluate their arguments), key=value context,
 * visible truncation, level names, the environment variable, and that lines
 * written by concurrent threads never interleave.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "unit.h"

static char out[1 << 16];

/* Runs with log output going to a pipe; returns what was written. */
static int cap_fd[2];
static void cap_begin(void) {
    if (pipe(cap_fd) != 0)
        abort();
    log_set_fd(cap_fd[1]);
}
static const char *cap_end(void) {
    log_set_fd(-1);
    close(cap_fd[1]);
    size_t n = 0;
    ssize_t r;
    while (n < sizeof out - 1 && (r = read(cap_fd[0], out + n, sizeof out - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(cap_fd[0]);
    return out;
}

/* True if s starts with a well-formed timestamp "YYYY-MM-DDTHH:MM:SS.mmmZ ". */
static int has_timestamp(const char *s) {
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ ";
    for (size_t i = 0; i < sizeof shape - 1; i++) {
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
            return 0;
    }
    return 1;
}

static void test_format(void) {
    log_set_level(LOG_LEVEL_INFO);
    cap_begin();
    LOG_INFO("net", "accepted connection from %s", "127.0.0.1:5000");
    const char *s = cap_end();
    CHECK(has_timestamp(s));
    CHECK(strcmp(s + 25, "INFO  [net] accepted connection from 127.0.0.1:5000\n") == 0);
}

static int evaluated;
static int side_effect(void) { return ++evaluated; }

static void test_levels(void) {
    log_set_level(LOG_LEVEL_WARN);
    evaluated = 0;
    cap_begin();
    LOG_INFO("x", "not shown %d", side_effect());
    LOG_DEBUG("x", "not shown %d", side_effect());
    LOG_WARN("x", "shown %d", 1);
    LOG_ERROR("x", "shown %d", 2);
    const char *s = cap_end();
    CHECK_EQ_INT(evaluated, 0);
    CHECK(strstr(s, "WARN  [x] shown 1\n") != NULL);
    CHECK(strstr(s, "ERROR [x] shown 2\n") != NULL);
    CHECK(strstr(s, "not shown") == NULL);
    log_set_level(LOG_LEVEL_TRACE);
    CHECK(log_enabled(LOG_LEVEL_TRACE));
    cap_begin();
    LOG_TRACE("x", "t");
    CHECK(strstr(cap_end(), "TRACE [x] t\n") != NULL);
    log_set_level(LOG_LEVEL_INFO);
}

static void test_kv(void) {
    char kv[LOG_KV_MAX];
    CHECK(strcmp(log_kv_tpo(kv, "orders", 3, 1200), "topic=orders partition=3 offset=1200") == 0);
    CHECK(strcmp(log_kv_tpo(kv, NULL, 3, -1), "partition=3") == 0);
    CHECK(strcmp(log_kv_tpo(kv, "t", -1, 5), "topic=t offset=5") == 0);
    char longtopic[400];
    memset(longtopic, 'a', sizeof longtopic - 1);
    longtopic[sizeof longtopic - 1] = '\0';
    CHECK(strlen(log_kv_tpo(kv, longtopic, 1, 2)) < LOG_KV_MAX);
    cap_begin();
    LOG_WARN_KV("storage", log_kv_tpo(kv, "orders", 3, 1200), "crc mismatch, truncating");
    const char *s = cap_end();
    CHECK(strstr(s, "WARN  [storage] crc mismatch, truncating topic=orders partition=3 offset=1200\n") !=
          NULL);
}

static void test_truncation(void) {
    static char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    uint64_t before = log_lines_truncated();
    cap_begin();
    LOG_ERROR("a-very-long-module-name-that-is-cut", "%s", big);
    const char *s = cap_end();
    CHECK_EQ_INT(strlen(s), LOG_LINE_MAX);
    CHECK(strcmp(s + LOG_LINE_MAX - 5, "x...\n") == 0);
    CHECK(strstr(s, "[a-very-long-modu] ") != NULL);
    CHECK_EQ_INT(log_lines_truncated(), before + 1);

    /* A message that fits but whose context does not is also marked. */
    char ctx[LOG_LINE_MAX];
    memset(ctx, 'k', sizeof ctx - 1);
    ctx[sizeof ctx - 1] = '\0';
    cap_begin();
    LOG_INFO_KV("m", ctx, "short");
    s = cap_end();
    CHECK_EQ_INT(strlen(s), LOG_LINE_MAX);
    CHECK(strcmp(s + LOG_LINE_MAX - 4, "...\n") == 0);
}

static void test_newlines_flattened(void) {
    cap_begin();
    LOG_INFO("m", "two\nlines\r");
    const char *s = cap_end();
    CHECK(strstr(s, "two lines \n") != NULL);
    CHECK(strchr(s, '\n') == s + strlen(s) - 1);
}

static void test_level_names(void) {
    log_level l;
    CHECK(log_level_parse("DEBUG", &l) == 0 && l == LOG_LEVEL_DEBUG);
    CHECK(log_level_parse("warning", &l) == 0 && l == LOG_LEVEL_WARN);
    CHECK(log_level_parse("trace", &l) == 0 && l == LOG_LEVEL_TRACE);
    CHECK(log_level_parse("bogus", &l) == -1);
    CHECK(log_level_parse(NULL, &l) == -1);
    CHECK(strcmp(log_level_name(LOG_LEVEL_ERROR), "error") == 0);
    CHECK(strcmp(log_level_name((log_level)42), "unknown") == 0);
}

static void test_env(void) {
    setenv(LOG_ENV_LEVEL, "Trace", 1);
    CHECK(log_init_from_env() == 0);
    CHECK(log_get_level() == LOG_LEVEL_TRACE);
    setenv(LOG_ENV_LEVEL, "loud", 1);
    cap_begin();
    CHECK(log_init_from_env() == -1);
    CHECK(strstr(cap_end(), "SLUICE_LOG_LEVEL='loud'") != NULL);
    CHECK(log_get_level() == LOG_LEVEL_TRACE);
    unsetenv(LOG_ENV_LEVEL);
    CHECK(log_init_from_env() == 0);
    log_set_level(LOG_LEVEL_INFO);
}

#define THREADS 4
#define LINES   300

static void *writer(void *arg) {
    long id = (long)arg;
    for (int i = 0; i < LINES; i++)
        LOG_INFO("t", "thread %ld line %d padding-padding-padding-padding-padding-padding-end", id, i);
    return NULL;
}

static void test_threads_do_not_interleave(void) {
    char dir[] = "/tmp/sluice-test-log-XXXXXX";
    char path[64];
    pthread_t th[THREADS];
    REQUIRE(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/out", dir);
    int fd = open(path, O_CREAT | O_WRONLY | O_APPEND | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    log_set_fd(fd);
    for (long i = 0; i < THREADS; i++)
        REQUIRE(pthread_create(&th[i], NULL, writer, (void *)i) == 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    log_set_fd(-1);
    close(fd);

    static char buf[1 << 18];
    fd = open(path, O_RDONLY);
    REQUIRE(fd >= 0);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    REQUIRE(n > 0);
    buf[n] = '\0';
    int lines = 0, good = 0;
    for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        lines++;
        size_t len = strlen(l);
        good +=
            has_timestamp(l) && len > 4 && strcmp(l + len - 4, "-end") == 0 && strstr(l, "INFO  [t] thread ");
    }
    CHECK_EQ_INT(lines, THREADS * LINES);
    CHECK_EQ_INT(good, THREADS * LINES);
    unlink(path);
    rmdir(dir);
}

/* One line per interval gets through; the next says how many were held back. */
static void test_limiter(void) {
    log_limiter lim = {0, 0};
    uint64_t held = 99;
    CHECK(log_limiter_allow(&lim, 200, &held));
    CHECK_EQ_INT(held, 0);
    for (int i = 0; i < 5; i++)
        CHECK(!log_limiter_allow(&lim, 200, &held));
    usleep(250 * 1000);
    CHECK(log_limiter_allow(&lim, 200, &held));
    CHECK_EQ_INT(held, 5);
    CHECK(!log_limiter_allow(&lim, 200, &held));
}

int main(void) {
    unsetenv(LOG_ENV_LEVEL);
    UNIT_RUN(test_format);
    UNIT_RUN(test_levels);
    UNIT_RUN(test_kv);
    UNIT_RUN(test_truncation);
    UNIT_RUN(test_newlines_flattened);
    UNIT_RUN(test_level_names);
    UNIT_RUN(test_env);
    UNIT_RUN(test_threads_do_not_interleave);
    UNIT_RUN(test_limiter);
    return UNIT_END("test_core_log");
}
