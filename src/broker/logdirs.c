/*
 * logdirs.c - partition directories: owner files, names, setting aside and
 * removal. See logdirs.h.
 */
#include "broker/logdirs.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STRAY_SUFFIX   "-stray"
#define STRAY_UNKNOWN  "unknown"
#define STRAY_ATTEMPTS 100 /* ".<n>" suffixes tried when a set-aside name is taken */
#define OWNER_LINE_MAX 128
#define PATH_BUF       4400

void logdirs_uuid_hex(kuuid id, char out[33]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = digits[id.b[i] >> 4];
        out[2 * i + 1] = digits[id.b[i] & 15];
    }
    out[32] = '\0';
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Parses exactly 32 hex digits at s. */
static bool parse_hex_id(const char *s, size_t n, kuuid *id) {
    if (n != 32)
        return false;
    for (int i = 0; i < 16; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        id->b[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

int logdirs_read_owner(const char *dir, kuuid *id) {
    char path[PATH_BUF], line[OWNER_LINE_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, LOGDIRS_OWNER_FILE);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return errno == ENOENT ? 0 : -1;
    int rc = -1;
    bool version_ok = false;
    while (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n");
        if (n == strlen("version: 0") && strncmp(line, "version: 0", n) == 0)
            version_ok = true;
        else if (strncmp(line, "topic_id: ", 10) == 0)
            rc = parse_hex_id(line + 10, n - 10, id) ? 1 : -1;
    }
    fclose(f);
    return version_ok ? rc : -1;
}

static int fsync_path(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int logdirs_write_owner(const char *dir, kuuid id) {
    char path[PATH_BUF], tmp[PATH_BUF + 8], hex[33];
    snprintf(path, sizeof path, "%s/%s", dir, LOGDIRS_OWNER_FILE);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    logdirs_uuid_hex(id, hex);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "version: 0\ntopic_id: %s\n", hex);
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return fsync_path(dir);
}

bool logdirs_parse_partition(const char *dname, kstr *topic, int32_t *index) {
    const char *dash = strrchr(dname, '-');
    if (dash == NULL || dash == dname || dash[1] == '\0')
        return false;
    int64_t v = 0;
    for (const char *p = dash + 1; *p; p++) {
        if (*p < '0' || *p > '9' || v > INT32_MAX / 10)
            return false;
        v = v * 10 + (*p - '0');
    }
    if (v > INT32_MAX || (dash[1] == '0' && dash[2] != '\0'))
        return false;
    topic->ptr = dname;
    topic->len = (int32_t)(dash - dname);
    *index = (int32_t)v;
    return true;
}

bool logdirs_parse_stray(const char *dname, kuuid *owner, bool *known, int32_t *index) {
    size_t n = strlen(dname), k = sizeof STRAY_SUFFIX - 1;
    if (n <= k || strcmp(dname + n - k, STRAY_SUFFIX) != 0)
        return false;
    if (owner == NULL)
        return true;
    /* <partition dir>.<tag>[.<n>]-stray, tag = 32 hex digits or "unknown". */
    char base[LOGDIRS_NAME_MAX + 1];
    snprintf(base, sizeof base, "%.*s", (int)(n - k), dname);
    char *dot = strrchr(base, '.');
    if (dot != NULL && dot[1] != '\0' && strspn(dot + 1, "0123456789") == strlen(dot + 1)) {
        char *prev = dot;
        *prev = '\0';
        dot = strrchr(base, '.');
        if (dot == NULL) {
            *prev = '.';
            dot = prev;
        }
    }
    *known = false;
    *index = -1;
    if (dot == NULL)
        return true;
    const char *tag = dot + 1;
    *known = parse_hex_id(tag, strlen(tag), owner);
    *dot = '\0';
    kstr t;
    if (!logdirs_parse_partition(base, &t, index))
        *index = -1;
    return true;
}

#define CREATING_PREFIX ".creating-"

bool logdirs_parse_creating(const char *dname) {
    return strncmp(dname, CREATING_PREFIX, sizeof CREATING_PREFIX - 1) == 0;
}

int logdirs_create(const char *root, const char *dname, kuuid owner) {
    /* Named by id and partition, not by dname: it must fit NAME_MAX even
     * for the longest topic names. */
    char tmp[PATH_BUF], dir[PATH_BUF], hex[33];
    kstr topic;
    int32_t index = 0;
    logdirs_parse_partition(dname, &topic, &index);
    logdirs_uuid_hex(owner, hex);
    snprintf(tmp, sizeof tmp, "%s/%s%s-%d", root, CREATING_PREFIX, hex, index);
    snprintf(dir, sizeof dir, "%s/%s", root, dname);
    if (logdirs_remove(tmp) != 0 || mkdir(tmp, 0755) != 0)
        return -1;
    if (logdirs_write_owner(tmp, owner) != 0 || rename(tmp, dir) != 0) {
        int e = errno;
        logdirs_remove(tmp);
        errno = e;
        return -1;
    }
    return 0;
}

int logdirs_sync(const char *root) { return fsync_path(root); }

int logdirs_set_aside(const char *root, const char *dname, const kuuid *owner, char *out, size_t outn) {
    char tag[40], from[PATH_BUF], to[PATH_BUF];
    if (owner)
        logdirs_uuid_hex(*owner, tag);
    else
        snprintf(tag, sizeof tag, "%s", STRAY_UNKNOWN);
    /* Keep "-<partition>" whole and shorten the topic part to fit. */
    kstr topic;
    int32_t index;
    char idx[16] = "";
    size_t keep = strlen(dname);
    if (logdirs_parse_partition(dname, &topic, &index)) {
        snprintf(idx, sizeof idx, "-%d", index);
        keep = (size_t)topic.len;
    }
    snprintf(from, sizeof from, "%s/%s", root, dname);
    for (int attempt = 0; attempt < STRAY_ATTEMPTS; attempt++) {
        char counter[8] = "";
        if (attempt > 0)
            snprintf(counter, sizeof counter, ".%d", attempt);
        size_t fixed = strlen(idx) + 1 + strlen(tag) + strlen(counter) + sizeof STRAY_SUFFIX - 1;
        assert(fixed < LOGDIRS_NAME_MAX);
        size_t room = LOGDIRS_NAME_MAX - fixed;
        char name[LOGDIRS_NAME_MAX + 1];
        snprintf(name, sizeof name, "%.*s%s.%s%s%s", (int)(keep < room ? keep : room), dname, idx, tag,
                 counter, STRAY_SUFFIX);
        snprintf(to, sizeof to, "%s/%s", root, name);
        struct stat st;
        if (lstat(to, &st) == 0)
            continue;
        if (rename(from, to) != 0)
            return -1;
        snprintf(out, outn, "%s", name);
        return fsync_path(root);
    }
    errno = EEXIST;
    return -1;
}

int logdirs_remove(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL)
        return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    char path[PATH_BUF];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    return rmdir(dir);
}

int64_t logdirs_bytes(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int64_t total = 0;
    struct dirent *e;
    char path[PATH_BUF];
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (e->d_name[0] != '.' && lstat(path, &st) == 0 && S_ISREG(st.st_mode))
            total += (int64_t)st.st_size;
    }
    closedir(d);
    return total;
}
