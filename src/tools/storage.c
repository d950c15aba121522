/*
 * storage.c - `sluice storage` (as kafka-storage.sh): `format` writes
 * meta.properties (cluster id, node id) into every log directory of a
 * node's configuration, so the nodes of one cluster share a cluster id
 * before they first start; `random-uuid` prints a new cluster id.
 *
 * A single node needs neither: sluiced formats an empty log directory
 * itself with a new cluster id. A quorum member started on an unformatted
 * directory would do the same and then be refused by the others
 * (INCONSISTENT_CLUSTER_ID), which is why clusters format first.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/config.h"
#include "tools/cli.h"

#define OVERRIDES_MAX 64

static const char storage_help[] =
    "Usage: sluice storage format --config server.properties --cluster-id ID [--override k=v]...\n"
    "                             [--ignore-formatted]\n"
    "       sluice storage random-uuid\n"
    "\n"
    "format writes meta.properties (cluster.id, node.id) into every directory of log.dirs, so\n"
    "the nodes of a cluster share one cluster id before they first start (as kafka-storage.sh\n"
    "format). A directory that is already formatted is an error unless --ignore-formatted\n"
    "(and then only when it names the same cluster and node). random-uuid prints a new id.\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE         the node's server.properties\n"
    "  -t, --cluster-id ID       22 characters of A-Z a-z 0-9 - _ (sluice storage random-uuid)\n"
    "      --override k=v        a config key, as for sluiced\n"
    "  -g, --ignore-formatted    leave directories formatted for this cluster and node alone\n"
    "\n"
    "Exit codes: 0 ok; 1 a directory is formatted for another cluster or node, or cannot be\n"
    "written; 2 bad flags or configuration.\n"
    "\n"
    "Examples:\n"
    "  ID=$(sluice storage random-uuid)\n"
    "  sluice storage format --config node1.properties --cluster-id $ID\n";

static bool valid_id(const char *id) {
    if (strlen(id) != 22)
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_'))
            return false;
    return true;
}

static int random_uuid(void) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t raw[22];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, raw, sizeof raw) != (ssize_t)sizeof raw) {
        fprintf(stderr, "sluice storage: cannot read /dev/urandom\n");
        if (fd >= 0)
            close(fd);
        return CLI_EFAIL;
    }
    close(fd);
    char id[23];
    for (int i = 0; i < 22; i++)
        id[i] = alphabet[raw[i] & 63];
    id[22] = '\0';
    printf("%s\n", id);
    return CLI_OK;
}

static int mkdirs(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return -errno;
            *p = '/';
        }
    return mkdir(buf, 0755) == 0 || errno == EEXIST ? 0 : -errno;
}

/* 1 with the file's cluster and node, 0 when absent, -1 unreadable. */
static int read_meta(const char *path, char *cid, size_t cidn, int *node) {
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return errno == ENOENT ? 0 : -1;
    char line[512];
    cid[0] = '\0';
    *node = -1;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, "cluster.id=", 11) == 0)
            snprintf(cid, cidn, "%.*s", (int)(cidn - 1), line + 11);
        else if (strncmp(line, "node.id=", 8) == 0)
            *node = atoi(line + 8);
    }
    fclose(f);
    return 1;
}

static int write_meta(const char *dir, const char *path, const char *cid, int node) {
    char tmp[4300], body[256];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int n = snprintf(body, sizeof body,
                     "# Written by sluice storage format; identifies this log directory.\nversion=1\n"
                     "cluster.id=%s\nnode.id=%d\n",
                     cid, node);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = write(fd, body, (size_t)n) == n && fsync(fd) == 0 ? 0 : -EIO;
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    int dfd = rc == 0 ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return rc;
}

static int format(int argc, char **argv) {
    const char *config = NULL, *cid = NULL;
    const char *overrides[OVERRIDES_MAX];
    size_t n_over = 0;
    bool ignore = false;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},   {"cluster-id", required_argument, NULL, 't'},
        {"override", required_argument, NULL, 'o'}, {"ignore-formatted", no_argument, NULL, 'g'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:t:gh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            config = optarg;
            break;
        case 't':
            cid = optarg;
            break;
        case 'o':
            if (n_over == OVERRIDES_MAX) {
                fprintf(stderr, "sluice storage format: at most %d --override\n", OVERRIDES_MAX);
                return CLI_EUSAGE;
            }
            overrides[n_over++] = optarg;
            break;
        case 'g':
            ignore = true;
            break;
        case 'h':
            fputs(storage_help, stdout);
            return CLI_OK;
        default:
            fputs(storage_help, stderr);
            return CLI_EUSAGE;
        }
    }
    if (cid == NULL || (config == NULL && n_over == 0)) {
        fprintf(stderr, "sluice storage format: --cluster-id and --config (or --override) are required\n");
        return CLI_EUSAGE;
    }
    if (!valid_id(cid)) {
        fprintf(stderr,
                "sluice storage format: '%s' is not a cluster id (22 characters of A-Z a-z 0-9 - _; "
                "sluice storage random-uuid makes one)\n",
                cid);
        return CLI_EUSAGE;
    }
    broker_config c;
    char err[CONFIG_ERR_MAX];
    config_init(&c);
    if (config_load(&c, config, overrides, n_over, err) != 0) {
        fprintf(stderr, "sluice storage format: %s\n", err);
        config_free(&c);
        return CLI_EUSAGE;
    }
    int rc = CLI_OK;
    for (int i = 0; i < c.log_dirs.n && rc == CLI_OK; i++) {
        const char *dir = c.log_dirs.items[i];
        char path[4200], have[64];
        int node;
        snprintf(path, sizeof path, "%s/meta.properties", dir);
        int e = mkdirs(dir);
        if (e != 0) {
            fprintf(stderr, "sluice storage format: cannot create %s: %s\n", dir, strerror(-e));
            rc = CLI_EFAIL;
            break;
        }
        int r = read_meta(path, have, sizeof have, &node);
        if (r < 0) {
            fprintf(stderr, "sluice storage format: cannot read %s\n", path);
            rc = CLI_EFAIL;
        } else if (r == 1) {
            bool same = strcmp(have, cid) == 0 && node == c.node_id;
            if (ignore && same) {
                printf("%s is already formatted for cluster %s, node %d\n", dir, cid, node);
            } else {
                fprintf(stderr, "sluice storage format: %s is already formatted (cluster %s, node %d)%s\n",
                        dir, have, node, same ? "; use --ignore-formatted to accept it" : "");
                rc = CLI_EFAIL;
            }
        } else if ((e = write_meta(dir, path, cid, c.node_id)) != 0) {
            fprintf(stderr, "sluice storage format: cannot write %s: %s\n", path, strerror(-e));
            rc = CLI_EFAIL;
        } else {
            printf("formatted %s for cluster %s, node %d\n", dir, cid, c.node_id);
        }
    }
    config_free(&c);
    return rc;
}

int cmd_storage(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "format") == 0)
        return format(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "random-uuid") == 0)
        return random_uuid();
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(storage_help, stdout);
        return CLI_OK;
    }
    fputs(storage_help, stderr);
    return CLI_EUSAGE;
}
