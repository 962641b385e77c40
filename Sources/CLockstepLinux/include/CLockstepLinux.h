// CLockstepLinux — Linux calls the Glibc module does not export to Swift
// (they need _GNU_SOURCE or live in headers outside its module map).
// Every name carries the `lslinux_` prefix.
#ifndef CLOCKSTEP_LINUX_H
#define CLOCKSTEP_LINUX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// eventfd(2) with EFD_CLOEXEC | EFD_NONBLOCK.
int lslinux_eventfd(void);
/// getrandom(2).
ssize_t lslinux_getrandom(void *buffer, size_t length);
/// Waits until `fd` is readable or `nanoseconds` pass (ppoll(2)).
/// Returns 1 when readable, 0 on timeout, -1 with errno on error.
int lslinux_wait_readable(int fd, uint64_t nanoseconds);

/// Waits until `first` or `second` is readable or `nanoseconds` pass.
/// Returns a mask: 1 first readable, 2 second readable; 0 on timeout; -1
/// with errno on error.
int lslinux_wait_either(int first, int second, uint64_t nanoseconds);

/// epoll(7): create, control and wait. Events use the EPOLL* bits below;
/// the 64-bit data word is the caller's token.
int lslinux_epoll_create(void);
int lslinux_epoll_add(int epoll, int fd, uint32_t events, uint64_t token);
int lslinux_epoll_modify(int epoll, int fd, uint32_t events, uint64_t token);
int lslinux_epoll_remove(int epoll, int fd);
/// Waits up to `timeout_ms` (-1: forever); fills tokens[i] and events[i].
int lslinux_epoll_wait(int epoll, uint64_t *tokens, uint32_t *events, int capacity, int timeout_ms);

extern const uint32_t lslinux_EPOLLIN;
extern const uint32_t lslinux_EPOLLOUT;
extern const uint32_t lslinux_EPOLLERR;
extern const uint32_t lslinux_EPOLLHUP;
extern const uint32_t lslinux_EPOLLRDHUP;

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC; writes the peer as
/// "ip:port" into `peer` (NUL-terminated).
int lslinux_accept(int listener, char *peer, size_t peer_capacity);
/// A non-blocking TCP listener on host:port (numeric IPv4/IPv6 or a name),
/// SO_REUSEADDR set. Returns the fd, or -1 with errno; on a resolution
/// failure returns -2 and writes the reason into `error`.
int lslinux_listen_tcp(const char *host, const char *port, int backlog, char *error, size_t error_capacity);
/// The port a bound socket listens on (for port 0 listeners).
int lslinux_local_port(int fd);
/// Sets TCP_NODELAY.
int lslinux_set_nodelay(int fd);

/// A non-blocking UDP socket bound to host:port (numeric IPv4/IPv6 or a
/// name; port "0" picks one). Returns the fd, or -1 with errno; on a
/// resolution failure returns -2 and writes the reason into `error`.
int lslinux_udp_bind(const char *host, const char *port, char *error, size_t error_capacity);
/// Resolves host:port for sending from the UDP socket `fd` (same address
/// family) into `address` (`capacity` >= 128 bytes), its length into
/// `length`. Returns 0, or -2 with the reason in `error`.
int lslinux_udp_resolve(int fd, const char *host, const char *port, void *address, size_t capacity,
                        uint32_t *length, char *error, size_t error_capacity);
/// sendto(2) one datagram to an address from lslinux_udp_resolve
/// (MSG_DONTWAIT). Returns the bytes sent, or -1 with errno.
ssize_t lslinux_udp_sendto(int fd, const void *bytes, size_t count, const void *address, uint32_t length);
/// recv(2) of one datagram without blocking (MSG_DONTWAIT). Returns its
/// length (truncated to `capacity`), or -1 with errno (EAGAIN: none).
ssize_t lslinux_udp_recv(int fd, void *buffer, size_t capacity);

/// Names the calling thread (pthread_setname_np; 15 characters kept).
void lslinux_set_thread_name(const char *name);

#endif
