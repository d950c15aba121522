/*
 * main_sluiced.c - the broker daemon.
 *
 *   sluiced [server.properties] [--override key=value]...
 *           [--daemon [--pid-file F] [--log-file F]] [--check-config] [--version]
 *
 * With no file it runs a single-node broker with the built-in defaults
 * (localhost:9092, data in ./data). SIGTERM or SIGINT shuts down cleanly; a
 * second signal exits at once.
 *
 * Readiness: once the broker serves (listeners bound, logs recovered, threads
 * running) it tells whoever started it. Under systemd (Type=notify) that is
 * "READY=1" on $NOTIFY_SOCKET (core/sdnotify.h), and "STOPPING=1" when a
 * signal starts the shutdown. With --daemon the process forks; the parent
 * waits until the child serves and then exits 0 (1 if the child failed to
 * start), so `kafka-server-start.sh -daemon` returns with a broker that
 * answers. The child writes its pid to --pid-file once serving and removes the
 * file on exit; a pid file naming a live sluiced refuses a second start.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/config.h"
#include "core/log.h"
#include "core/sdnotify.h"
#include "core/version.h"

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
                 "               [--daemon [--pid-file FILE] [--log-file FILE]] [--check-config]\n"
                 "               [--version]\n"
                 "\n"
                 "Starts a Sluice broker. Keys are Kafka's server.properties names; see\n"
                 "docs/configuration.md. Without a file, a single-node broker listens on\n"
                 "localhost:9092 and keeps its data in ./data.\n"
                 "\n"
                 "  --daemon         run in the background; return once the broker serves\n"
                 "  --pid-file FILE  write the broker's pid here while it runs\n"
                 "  --log-file FILE  with --daemon, append the log here (default /dev/null)\n"
                 "  --check-config   check the configuration, print what it serves, and exit\n"
                 "  --version        print the version and exit\n"
                 "\n"
                 "examples:\n"
                 "  sluiced\n"
                 "  sluiced config/server.properties\n"
                 "  sluiced --override listeners=PLAINTEXT://127.0.0.1:19092 --override log.dirs=/tmp/s1\n");
}

/* The pid in a pid file if it names a running sluiced, else 0. A stale file
 * (no such process, or a pid reused by another program) counts as none. */
static pid_t live_pid_in(const char *pid_file) {
    FILE *f = fopen(pid_file, "r");
    if (f == NULL)
        return 0;
    long pid = 0;
    int ok = fscanf(f, "%ld", &pid);
    fclose(f);
    if (ok != 1 || pid <= 0 || kill((pid_t)pid, 0) != 0)
        return 0;
    char proc[64], comm[32] = "";
    snprintf(proc, sizeof proc, "/proc/%ld/comm", pid);
    FILE *c = fopen(proc, "r");
    if (c == NULL)
        return 0;
    if (fgets(comm, sizeof comm, c) == NULL)
        comm[0] = '\0';
    fclose(c);
    return strncmp(comm, "sluiced", 7) == 0 ? (pid_t)pid : 0;
}

static int write_pid_file(const char *pid_file) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", pid_file) >= (int)sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    int bad = fprintf(f, "%ld\n", (long)getpid()) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, pid_file) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Removes the pid file only if it still names this process. */
static void remove_pid_file(const char *pid_file) {
    if (pid_file != NULL && live_pid_in(pid_file) == getpid())
        unlink(pid_file);
}

/* --daemon: forks. The parent waits on a pipe until the child reports that
 * it serves (a byte) or dies (end of file), and exits accordingly; only the
 * child returns, with *ready_fd to write to. */
static int daemonize(const char *log_file, int *ready_fd) {
    int logfd = open(log_file ? log_file : "/dev/null", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (logfd < 0) {
        fprintf(stderr, "sluiced: cannot open log file '%s': %s\n", log_file, strerror(errno));
        return -1;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        perror("sluiced: pipe");
        close(logfd);
        return -1;
    }
    fflush(NULL);
    pid_t child = fork();
    if (child < 0) {
        perror("sluiced: fork");
        return -1;
    }
    if (child > 0) {
        close(p[1]);
        close(logfd);
        char c;
        ssize_t n;
        while ((n = read(p[0], &c, 1)) < 0 && errno == EINTR)
            ;
        if (n == 1) {
            printf("sluiced: started, pid %ld%s%s\n", (long)child, log_file ? ", log " : "",
                   log_file ? log_file : "");
            exit(0);
        }
        int st = 0;
        waitpid(child, &st, 0);
        fprintf(stderr, "sluiced: the broker failed to start (exit %d)%s%s\n",
                WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), log_file ? "; see " : "",
                log_file ? log_file : "");
        exit(1);
    }
    close(p[0]);
    setsid();
    int nullfd = open("/dev/null", O_RDONLY);
    if (nullfd >= 0) {
        dup2(nullfd, STDIN_FILENO);
        close(nullfd);
    }
    dup2(logfd, STDOUT_FILENO);
    dup2(logfd, STDERR_FILENO);
    close(logfd);
    *ready_fd = p[1];
    return 0;
}

int main(int argc, char **argv) {
    const char *path = NULL;
    const char *pid_file = NULL, *log_file = NULL;
    bool daemon_mode = false, check_only = false;
    const char *overrides[CONFIG_OVERRIDES_MAX];
    size_t n_over = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("sluiced %s\n", sluice_version());
            return 0;
        } else if (strcmp(argv[i], "--check-config") == 0) {
            check_only = true;
        } else if (strcmp(argv[i], "--daemon") == 0) {
            daemon_mode = true;
        } else if (strcmp(argv[i], "--pid-file") == 0 || strcmp(argv[i], "--log-file") == 0) {
            if (i + 1 >= argc || argv[i + 1][0] == '\0') {
                fprintf(stderr, "sluiced: %s needs a file name\n", argv[i]);
                return 2;
            }
            *(argv[i][2] == 'p' ? &pid_file : &log_file) = argv[i + 1];
            i++;
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

    if (log_file != NULL && !daemon_mode) {
        fprintf(stderr, "sluiced: --log-file goes with --daemon (otherwise the log is stderr)\n");
        return 2;
    }
    pid_t running = pid_file ? live_pid_in(pid_file) : 0;
    if (running != 0) {
        fprintf(stderr, "sluiced: already running as pid %ld (pid file %s)\n", (long)running, pid_file);
        return 1;
    }

    static broker_config cfg;
    char err[CONFIG_ERR_MAX];
    config_init(&cfg);
    if (config_load(&cfg, path, overrides, n_over, err) != 0) {
        fprintf(stderr, "sluiced: invalid configuration: %s\n", err);
        config_free(&cfg);
        return 2;
    }
    if (check_only) {
        /* What kafka-storage.sh format/info show: the node, where it listens
         * and keeps its data. Nothing is created or changed. */
        printf("configuration OK: node.id=%d\n", cfg.node_id);
        for (int i = 0; i < cfg.n_listeners; i++)
            printf("listener: %s://%s:%u\n", cfg.listeners[i].name, cfg.listeners[i].host,
                   cfg.listeners[i].port);
        for (int i = 0; i < cfg.log_dirs.n; i++)
            printf("log.dir: %s\n", cfg.log_dirs.items[i]);
        config_free(&cfg);
        return 0;
    }

    /* Each partition keeps its active segment open: allow as many files as
     * the hard limit permits. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    /* After the configuration is known good, so its errors reach the terminal. */
    int ready_fd = -1;
    if (daemon_mode && daemonize(log_file, &ready_fd) != 0) {
        config_free(&cfg);
        return 1;
    }
    LOG_INFO("main", "sluiced %s starting", sluice_version());

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
    /* Serving: tell the service manager, the waiting parent, the pid file. */
    if (pid_file != NULL && write_pid_file(pid_file) != 0)
        LOG_WARN("main", "cannot write pid file %s: %s", pid_file, strerror(errno));
    char status[128];
    snprintf(status, sizeof status, "READY=1\nSTATUS=serving on port %u\nMAINPID=%ld", broker_port(b),
             (long)getpid());
    if (sdnotify_send(status) < 0)
        LOG_WARN("main", "cannot notify the service manager at NOTIFY_SOCKET: %s", strerror(errno));
    if (ready_fd >= 0) {
        char r = 'R';
        ssize_t w = write(ready_fd, &r, 1);
        (void)w;
        close(ready_fd);
    }
    char c;
    while (read(g_pipe[0], &c, 1) < 0 && errno == EINTR)
        ;
    bool failed = broker_stopped_fatally();
    if (failed)
        LOG_ERROR("main", "stopping after a fatal error (see above); exit status 1");
    else
        LOG_INFO("main", "signal received, shutting down");
    sdnotify_send("STOPPING=1\nSTATUS=shutting down");
    broker_shutdown(b);
    broker_destroy(b);
    config_free(&cfg);
    remove_pid_file(pid_file);
    return failed ? 1 : 0;
}
