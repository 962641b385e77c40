#define _GNU_SOURCE
#include "CLockstepLinux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int lslinux_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

ssize_t lslinux_getrandom(void *buffer, size_t length) { return getrandom(buffer, length, 0); }

int lslinux_wait_readable(int fd, uint64_t nanoseconds) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  struct timespec timeout = {.tv_sec = (time_t)(nanoseconds / 1000000000ull),
                             .tv_nsec = (long)(nanoseconds % 1000000000ull)};
  return ppoll(&p, 1, &timeout, NULL);
}

int lslinux_wait_either(int first, int second, uint64_t nanoseconds) {
  struct pollfd p[2] = {{.fd = first, .events = POLLIN}, {.fd = second, .events = POLLIN}};
  struct timespec timeout = {.tv_sec = (time_t)(nanoseconds / 1000000000ull),
                             .tv_nsec = (long)(nanoseconds % 1000000000ull)};
  int ready = ppoll(p, 2, &timeout, NULL);
  if (ready <= 0) return ready;
  return ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) ? 1 : 0) |
         ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) ? 2 : 0);
}

const uint32_t lslinux_EPOLLIN = EPOLLIN;
const uint32_t lslinux_EPOLLOUT = EPOLLOUT;
const uint32_t lslinux_EPOLLERR = EPOLLERR;
const uint32_t lslinux_EPOLLHUP = EPOLLHUP;
const uint32_t lslinux_EPOLLRDHUP = EPOLLRDHUP;

int lslinux_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

static int control(int epoll, int op, int fd, uint32_t events, uint64_t token) {
  struct epoll_event event = {.events = events, .data.u64 = token};
  return epoll_ctl(epoll, op, fd, &event);
}

int lslinux_epoll_add(int epoll, int fd, uint32_t events, uint64_t token) {
  return control(epoll, EPOLL_CTL_ADD, fd, events, token);
}

int lslinux_epoll_modify(int epoll, int fd, uint32_t events, uint64_t token) {
  return control(epoll, EPOLL_CTL_MOD, fd, events, token);
}

int lslinux_epoll_remove(int epoll, int fd) { return epoll_ctl(epoll, EPOLL_CTL_DEL, fd, NULL); }

int lslinux_epoll_wait(int epoll, uint64_t *tokens, uint32_t *events, int capacity, int timeout_ms) {
  struct epoll_event ready[256];
  if (capacity > 256) capacity = 256;
  int count = epoll_wait(epoll, ready, capacity, timeout_ms);
  for (int i = 0; i < count; i++) {
    tokens[i] = ready[i].data.u64;
    events[i] = ready[i].events;
  }
  return count;
}

static void format_peer(const struct sockaddr_storage *address, char *peer, size_t capacity) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (address->ss_family == AF_INET) {
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)address;
    inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    port = ntohs(v4->sin_port);
    snprintf(peer, capacity, "%s:%d", host, port);
  } else if (address->ss_family == AF_INET6) {
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)address;
    inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    port = ntohs(v6->sin6_port);
    snprintf(peer, capacity, "[%s]:%d", host, port);
  } else {
    snprintf(peer, capacity, "unknown");
  }
}

int lslinux_accept(int listener, char *peer, size_t peer_capacity) {
  struct sockaddr_storage address;
  socklen_t length = sizeof address;
  int fd = accept4(listener, (struct sockaddr *)&address, &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd >= 0 && peer && peer_capacity) format_peer(&address, peer, peer_capacity);
  return fd;
}

/* A socket of `type` bound to host:port (the first address that works);
 * for SOCK_STREAM also SO_REUSEADDR and listening with `backlog`. -1 with
 * errno on failure, -2 with `error` set when host:port does not resolve. */
static int bound_socket(const char *host, const char *port, int type, int backlog, char *error,
                        size_t error_capacity) {
  struct addrinfo hints, *results = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = type;
  hints.ai_flags = AI_PASSIVE;
  int status = getaddrinfo(host[0] ? host : NULL, port, &hints, &results);
  if (status != 0) {
    snprintf(error, error_capacity, "%s", gai_strerror(status));
    return -2;
  }
  int fd = -1, saved = 0;
  for (struct addrinfo *r = results; r; r = r->ai_next) {
    fd = socket(r->ai_family, r->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, r->ai_protocol);
    if (fd < 0) { saved = errno; continue; }
    if (type == SOCK_STREAM) {
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    }
    if (bind(fd, r->ai_addr, r->ai_addrlen) == 0 && (type != SOCK_STREAM || listen(fd, backlog) == 0)) break;
    saved = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(results);
  if (fd < 0) errno = saved;
  return fd;
}

int lslinux_listen_tcp(const char *host, const char *port, int backlog, char *error, size_t error_capacity) {
  return bound_socket(host, port, SOCK_STREAM, backlog, error, error_capacity);
}

int lslinux_local_port(int fd) {
  struct sockaddr_storage address;
  socklen_t length = sizeof address;
  if (getsockname(fd, (struct sockaddr *)&address, &length) != 0) return -1;
  if (address.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&address)->sin_port);
  if (address.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&address)->sin6_port);
  return -1;
}

int lslinux_set_nodelay(int fd) {
  int one = 1;
  return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void lslinux_set_thread_name(const char *name) { pthread_setname_np(pthread_self(), name); }

// MARK: UDP (heartbeats)

int lslinux_udp_bind(const char *host, const char *port, char *error, size_t error_capacity) {
  return bound_socket(host, port, SOCK_DGRAM, 0, error, error_capacity);
}

int lslinux_udp_resolve(int fd, const char *host, const char *port, void *address, size_t capacity,
                        uint32_t *length, char *error, size_t error_capacity) {
  struct sockaddr_storage local;
  socklen_t local_length = sizeof local;
  if (getsockname(fd, (struct sockaddr *)&local, &local_length) != 0) {
    snprintf(error, error_capacity, "getsockname: %s", strerror(errno));
    return -2;
  }
  struct addrinfo hints, *results = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = local.ss_family;
  hints.ai_socktype = SOCK_DGRAM;
  int status = getaddrinfo(host, port, &hints, &results);
  if (status != 0) {
    snprintf(error, error_capacity, "%s", gai_strerror(status));
    return -2;
  }
  if (!results || results->ai_addrlen > capacity) {
    if (results) freeaddrinfo(results);
    snprintf(error, error_capacity, "no usable address");
    return -2;
  }
  memcpy(address, results->ai_addr, results->ai_addrlen);
  *length = (uint32_t)results->ai_addrlen;
  freeaddrinfo(results);
  return 0;
}

ssize_t lslinux_udp_sendto(int fd, const void *bytes, size_t count, const void *address, uint32_t length) {
  return sendto(fd, bytes, count, MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)address, (socklen_t)length);
}

ssize_t lslinux_udp_recv(int fd, void *buffer, size_t capacity) { return recv(fd, buffer, capacity, MSG_DONTWAIT); }
