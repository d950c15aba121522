/*
 * sdnotify.h - tell a service manager (systemd, Type=notify) how the daemon
 * is doing, without linking libsystemd.
 *
 * The protocol is systemd's documented one (sd_notify(3)): if the environment
 * variable NOTIFY_SOCKET names an AF_UNIX socket (a path, or "@name" for the
 * abstract namespace), send it one datagram of newline-separated KEY=VALUE
 * assignments such as "READY=1" or "STOPPING=1". Without NOTIFY_SOCKET every
 * call is a no-op, so the daemon behaves the same under any supervisor.
 *
 * Stateless and thread-safe: each call opens, sends and closes its own socket.
 */
#ifndef SLUICE_CORE_SDNOTIFY_H
#define SLUICE_CORE_SDNOTIFY_H

/* Longest state string sent (the datagram). */
#define SDNOTIFY_MAX 512

/* Sends state (e.g. "READY=1\nSTATUS=serving on port 9092") to
 * $NOTIFY_SOCKET. Returns 1 if sent, 0 if NOTIFY_SOCKET is unset, -1 (with
 * errno) if it is set but the message could not be delivered (bad address,
 * no listener, state too long). */
int sdnotify_send(const char *state);

#endif
