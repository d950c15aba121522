/*
 * main_sluiced.c - the broker daemon.
 *
 *   sluiced [server.properties] [--override key=value]...
 *
 * With no file it runs a single-node broker with the built-in defaults
 * (localhost:9092, data in ./data). SIGTERM or SIGINT shuts down cleanly; a
 * second signal exits at once.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/config.h"
#include "core/log.h"

static volatile sig_atomic_t g_signals;
static int g_pipe[2] = {-1, -1};

static void on_signal(int sig) {
    (void)sig;
    if (++g_signals > 1) {
        static const char msg[] = "sluiced: second signal, exiting without clean shutdown\n";
        ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)n;
        _exit(1);
    }
    char c = 1;
    ssize_t n = write(g_pipe[1], &c, 1);
    (void)n;
}

static void usage(FILE *out) {
    fprintf(out, "usage: sluiced [server.properties] [--override key=value]...\n"
                 "\n"
                 "Starts a Sluice broker. Keys are Kafka's server.properties names; see\n"
                 "docs/configuration.md. Without a file, a single-node broker listens on\n"
                 "localhost:9092 and keeps its data in ./data.\n"
                 "\n"
                 "examples:\n"
                 "  sluiced\n"
                 "  sluiced config/server.properties\n"
                 "  sluiced --override listeners=PLAINTEXT://127.0.0.1:19092 --override log.dirs=/tmp/s1\n");
}

int main(int argc, char **argv) {
    const char *path = NULL;
    const char *overrides[CONFIG_OVERRIDES_MAX];
    size_t n_over = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--override") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sluiced: --override needs key=value\n");
                return 2;
            }
            if (n_over == CONFIG_OVERRIDES_MAX) {
                fprintf(stderr, "sluiced: too many --override flags (at most %d)\n", CONFIG_OVERRIDES_MAX);
                return 2;
            }
            overrides[n_over++] = argv[++i];
        } else if (strncmp(argv[i], "--override=", 11) == 0 && n_over < CONFIG_OVERRIDES_MAX) {
            overrides[n_over++] = argv[i] + 11;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "sluiced: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (path == NULL) {
            path = argv[i];
        } else {
            fprintf(stderr, "sluiced: more than one configuration file given ('%s', '%s')\n", path, argv[i]);
            return 2;
        }
    }

    static broker_config cfg;
    char err[CONFIG_ERR_MAX];
    config_init(&cfg);
    if (config_load(&cfg, path, overrides, n_over, err) != 0) {
        fprintf(stderr, "sluiced: invalid configuration: %s\n", err);
        config_free(&cfg);
        return 2;
    }

    /* Each partition keeps its active segment open: allow as many files as
     * the hard limit permits. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    if (pipe(g_pipe) != 0) {
        perror("sluiced: pipe");
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    broker *b = broker_create(&cfg);
    if (b == NULL || broker_start(b) != 0) {
        LOG_ERROR("main", "broker failed to start");
        broker_destroy(b);
        config_free(&cfg);
        return 1;
    }
    char c;
    while (read(g_pipe[0], &c, 1) < 0 && errno == EINTR)
        ;
    LOG_INFO("main", "signal received, shutting down");
    broker_shutdown(b);
    broker_destroy(b);
    config_free(&cfg);
    return 0;
}
