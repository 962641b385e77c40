/*
 * netload.c — a load generator for echo servers (Lockstep's `bench.elf echo`).
 *
 * C connections to 127.0.0.1:PORT; each keeps P small messages (SIZE-byte
 * lines, default 32) outstanding, reading the echoes back and counting a
 * reply complete per SIZE bytes received. Single-threaded, non-blocking,
 * epoll. Runs for D seconds or until M replies, whichever comes first.
 * Then sends "shutdown\n" on one fresh connection so the guest exits, and
 * waits (bounded) for the server to close it.
 *
 * Usage: netload -p PORT [-c C] [-q P] [-d SECONDS] [-m MESSAGES] [-s SIZE]
 *                [-w CONNECT_WAIT_SECONDS] [-n | -S]
 *   -n  no shutdown at the end;  -S  only send the shutdown line (no load)
 * Prints: NETLOAD connections=C pipeline=P messages=M seconds=S msgs_per_sec=R
 *         NETLOAD_CPU user_s=U sys_s=S   (this process's own CPU time)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 1000
#define MAX_PIPELINE 4096
#define MAX_SIZE 4096

struct conn {
  int fd;
  uint64_t sent_bytes;  /* bytes of the periodic request stream written */
  uint64_t recv_bytes;  /* bytes of echo read */
  int want_out;         /* EPOLLOUT registered */
};

static struct conn conns[MAX_CONNECTIONS];
static uint8_t pattern[MAX_SIZE * 2];
static size_t msg_size = 32;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void fail(const char *what) {
  fprintf(stderr, "netload: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* Connects (blocking) to 127.0.0.1:port, retrying refusals until `until_ns`. */
static int connect_to(uint16_t port, uint64_t until_ns) {
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (;;) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket");
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return fd;
    }
    int err = errno;
    close(fd);
    if ((err != ECONNREFUSED && err != EAGAIN) || now_ns() >= until_ns) {
      errno = err;
      fail("connect 127.0.0.1");
    }
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
}

static void set_events(int ep, struct conn *c, int want_out) {
  if (c->want_out == want_out) return;
  struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) fail("epoll_ctl");
  c->want_out = want_out;
}

/* Writes until `target` messages are outstanding or the socket is full. */
static void fill(int ep, struct conn *c, uint64_t pipeline, uint64_t sent_limit_bytes) {
  uint64_t done = c->recv_bytes / msg_size;
  uint64_t target = (done + pipeline) * msg_size;
  if (target > sent_limit_bytes) target = sent_limit_bytes;
  while (c->sent_bytes < target) {
    size_t offset = c->sent_bytes % msg_size;
    size_t len = sizeof pattern - offset;
    if (len > target - c->sent_bytes) len = (size_t)(target - c->sent_bytes);
    ssize_t n = send(c->fd, pattern + offset, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        set_events(ep, c, 1);
        return;
      }
      if (errno == EINTR) continue;
      fail("send");
    }
    c->sent_bytes += (uint64_t)n;
  }
  set_events(ep, c, 0);
}

/* Sends "shutdown\n" on a fresh connection and waits (at most 10 s) for the
 * server to close it. */
static int shutdown_server(uint16_t port, double connect_wait) {
  static uint8_t sink[4096];
  int fd = connect_to(port, now_ns() + (uint64_t)(connect_wait * 1e9));
  static const char line[] = "shutdown\n";
  if (send(fd, line, sizeof line - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof line - 1)) fail("send shutdown");
  uint64_t until = now_ns() + 10000000000ull;
  for (;;) {
    uint64_t now = now_ns();
    if (now >= until) {
      fprintf(stderr, "netload: the server did not close after shutdown\n");
      close(fd);
      return 1;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, (int)((until - now) / 1000000) + 1);
    if (r < 0 && errno != EINTR) fail("poll");
    if (r <= 0) continue;
    ssize_t got = recv(fd, sink, sizeof sink, 0);
    if (got <= 0 && !(got < 0 && errno == EINTR)) break;
  }
  close(fd);
  return 0;
}

static void usage(void) {
  fprintf(stderr,
          "usage: netload -p PORT [-c CONNECTIONS] [-q PIPELINE] [-d SECONDS] [-m MESSAGES] [-s SIZE] "
          "[-w CONNECT_WAIT_SECONDS] [-n | -S]\n");
  exit(2);
}

int main(int argc, char **argv) {
  long port = 0, connections = 50, pipeline = 16, size = 32;
  double duration = 5.0, connect_wait = 15.0;
  uint64_t max_messages = 0; /* 0: no limit */
  int send_shutdown = 1, only_shutdown = 0;
  int opt;
  while ((opt = getopt(argc, argv, "p:c:q:d:m:s:w:nS")) != -1) {
    switch (opt) {
      case 'p': port = strtol(optarg, NULL, 10); break;
      case 'c': connections = strtol(optarg, NULL, 10); break;
      case 'q': pipeline = strtol(optarg, NULL, 10); break;
      case 'd': duration = strtod(optarg, NULL); break;
      case 'm': max_messages = strtoull(optarg, NULL, 10); break;
      case 's': size = strtol(optarg, NULL, 10); break;
      case 'w': connect_wait = strtod(optarg, NULL); break;
      case 'n': send_shutdown = 0; break;
      case 'S': only_shutdown = 1; break;
      default: usage();
    }
  }
  if (optind != argc || port < 1 || port > 65535 || connections < 1 || connections > MAX_CONNECTIONS ||
      pipeline < 1 || pipeline > MAX_PIPELINE || size < 2 || size > MAX_SIZE || !(duration > 0) ||
      duration > 3600 || !(connect_wait >= 0) || connect_wait > 600 || (only_shutdown && !send_shutdown))
    usage();
  msg_size = (size_t)size;
  signal(SIGPIPE, SIG_IGN);
  if (only_shutdown) return shutdown_server((uint16_t)port, connect_wait);

  /* The request line: "ping 000...\n"; never starts with "shutdown". */
  for (size_t i = 0; i < msg_size; i++) pattern[i] = (uint8_t)(i < 5 ? "ping "[i] : '0' + (i % 10));
  pattern[msg_size - 1] = '\n';
  for (size_t i = msg_size; i < sizeof pattern; i++) pattern[i] = pattern[i % msg_size];

  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) fail("epoll_create1");
  uint64_t connect_deadline = now_ns() + (uint64_t)(connect_wait * 1e9);
  for (long i = 0; i < connections; i++) {
    struct conn *c = &conns[i];
    c->fd = connect_to((uint16_t)port, connect_deadline);
    if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0) fail("fcntl");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) fail("epoll_ctl add");
  }

  /* A total message limit caps what is ever sent: no connection goes past
   * its share (rounded up), so the run ends after about M replies. */
  uint64_t sent_limit = UINT64_MAX;
  if (max_messages) sent_limit = ((max_messages + (uint64_t)connections - 1) / (uint64_t)connections) * msg_size;

  static uint8_t buf[1 << 16];
  struct epoll_event events[MAX_CONNECTIONS];
  uint64_t start = now_ns();
  uint64_t deadline = start + (uint64_t)(duration * 1e9);
  uint64_t replies = 0;
  for (long i = 0; i < connections; i++) fill(ep, &conns[i], (uint64_t)pipeline, sent_limit);
  for (;;) {
    uint64_t now = now_ns();
    if (now >= deadline || (max_messages && replies >= max_messages)) break;
    int timeout_ms = (int)((deadline - now) / 1000000) + 1;
    int n = epoll_wait(ep, events, MAX_CONNECTIONS, timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("epoll_wait");
    }
    for (int e = 0; e < n; e++) {
      struct conn *c = events[e].data.ptr;
      if (events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        for (;;) {
          ssize_t got = recv(c->fd, buf, sizeof buf, 0);
          if (got > 0) {
            uint64_t before = c->recv_bytes / msg_size;
            c->recv_bytes += (uint64_t)got;
            if (c->recv_bytes > c->sent_bytes) {
              fprintf(stderr, "netload: more bytes came back than were sent\n");
              return 1;
            }
            replies += c->recv_bytes / msg_size - before;
            continue;
          }
          if (got == 0) {
            fprintf(stderr, "netload: the server closed a connection\n");
            return 1;
          }
          if (errno == EAGAIN || errno == EWOULDBLOCK) break;
          if (errno == EINTR) continue;
          fail("recv");
        }
      }
      fill(ep, c, (uint64_t)pipeline, sent_limit);
    }
  }
  double seconds = (double)(now_ns() - start) / 1e9;
  printf("NETLOAD connections=%ld pipeline=%ld messages=%llu seconds=%.2f msgs_per_sec=%.0f\n", connections,
         pipeline, (unsigned long long)replies, seconds, (double)replies / seconds);
  fflush(stdout);
  for (long i = 0; i < connections; i++) close(conns[i].fd);
  close(ep);

  struct rusage usage_self;
  if (getrusage(RUSAGE_SELF, &usage_self) == 0)
    printf("NETLOAD_CPU user_s=%.2f sys_s=%.2f\n",
           (double)usage_self.ru_utime.tv_sec + (double)usage_self.ru_utime.tv_usec / 1e6,
           (double)usage_self.ru_stime.tv_sec + (double)usage_self.ru_stime.tv_usec / 1e6);
  fflush(stdout);
  return send_shutdown ? shutdown_server((uint16_t)port, 5.0) : 0;
}
