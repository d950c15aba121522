/*
 * sdnotify.c - the NOTIFY_SOCKET datagram protocol. See sdnotify.h.
 */
#include "core/sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int sdnotify_send(const char *state) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || path[0] == '\0')
        return 0;
    size_t plen = strlen(path);
    size_t slen = strlen(state);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    /* Only absolute paths and abstract names are valid addresses. */
    if ((path[0] != '/' && path[0] != '@') || plen >= sizeof sa.sun_path || slen == 0 ||
        slen > SDNOTIFY_MAX) {
        errno = EINVAL;
        return -1;
    }
    memcpy(sa.sun_path, path, plen);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract: the length below, not a NUL, ends the name */
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '/' ? 1 : 0));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    ssize_t n = sendto(fd, state, slen, MSG_NOSIGNAL, (struct sockaddr *)&sa, alen);
    int saved = errno;
    close(fd);
    if (n != (ssize_t)slen) {
        errno = n < 0 ? saved : EMSGSIZE;
        return -1;
    }
    return 1;
}
