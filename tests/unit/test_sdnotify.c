/*
 * test_sdnotify.c - the NOTIFY_SOCKET protocol (core/sdnotify.c) against a
 * datagram socket this test binds, at a path and in the abstract namespace:
 * the state arrives as one datagram, byte for byte; no NOTIFY_SOCKET is a
 * quiet no-op; a relative path, an over-long state or a socket nobody listens
 * on is an error, never a hang. Also checks the version string is set.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/sdnotify.h"
#include "core/version.h"
#include "unit.h"

/* Binds a datagram socket at name ("@x" = abstract) and returns it. */
static int listen_at(const char *name) {
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t n = strlen(name);
    memcpy(sa.sun_path, name, n);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    CHECK(bind(fd, (struct sockaddr *)&sa, len) == 0);
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void expect_datagram(int fd, const char *want) {
    char buf[SDNOTIFY_MAX + 16];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    CHECK_EQ_INT(n, (int64_t)strlen(want));
    CHECK(n > 0 && memcmp(buf, want, (size_t)n) == 0);
}

static void test_path_socket(void) {
    char dir[] = "/tmp/sdnotify-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/notify", dir);
    int fd = listen_at(path);
    setenv("NOTIFY_SOCKET", path, 1);
    CHECK_EQ_INT(sdnotify_send("READY=1\nSTATUS=serving on port 9092"), 1);
    expect_datagram(fd, "READY=1\nSTATUS=serving on port 9092");
    CHECK_EQ_INT(sdnotify_send("STOPPING=1"), 1);
    expect_datagram(fd, "STOPPING=1");
    close(fd);
    /* Nobody listens any more: an error, at once. */
    CHECK_EQ_INT(sdnotify_send("READY=1"), -1);
    unlink(path);
    rmdir(dir);
}

static void test_abstract_socket(void) {
    char name[64];
    snprintf(name, sizeof name, "@sluice-test-sdnotify-%ld", (long)getpid());
    int fd = listen_at(name);
    setenv("NOTIFY_SOCKET", name, 1);
    CHECK_EQ_INT(sdnotify_send("READY=1"), 1);
    expect_datagram(fd, "READY=1");
    close(fd);
}

static void test_unset_and_bad(void) {
    unsetenv("NOTIFY_SOCKET");
    CHECK_EQ_INT(sdnotify_send("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    CHECK_EQ_INT(sdnotify_send("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    errno = 0;
    CHECK_EQ_INT(sdnotify_send("READY=1"), -1);
    CHECK_EQ_INT(errno, EINVAL);
    setenv("NOTIFY_SOCKET", "@sluice-test-sdnotify-unused", 1);
    static char big[SDNOTIFY_MAX + 2];
    memset(big, 'x', sizeof big - 1);
    CHECK_EQ_INT(sdnotify_send(big), -1);
    CHECK_EQ_INT(sdnotify_send(""), -1);
    unsetenv("NOTIFY_SOCKET");
}

static void test_version(void) {
    const char *v = sluice_version();
    CHECK(v != NULL && v[0] >= '0' && v[0] <= '9');
    CHECK(strchr(v, '-') == NULL); /* a valid Debian upstream version */
}

int main(void) {
    UNIT_RUN(test_path_socket);
    UNIT_RUN(test_abstract_socket);
    UNIT_RUN(test_unset_and_bad);
    UNIT_RUN(test_version);
    return UNIT_END("test_sdnotify");
}
