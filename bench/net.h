// Shared by the bench's C load clients (blobget.c, httpload.c, loadmix.c): a monotonic clock and
// a TCP connect to the loopback server under test. Header-only: bench.py compiles each client
// alone with `cc -O2 -pthread`, and the quoted include resolves next to the source.
#pragma once

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static inline double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

// A connected socket with TCP_NODELAY, or -1 (errno set). rcvbuf > 0 sets SO_RCVBUF (a slow
// reader); timeout_seconds > 0 sets the receive and send timeouts.
static inline int dial_tcp(const char* host, int port, int rcvbuf, int timeout_seconds) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (timeout_seconds > 0) {
    struct timeval tv = {.tv_sec = timeout_seconds, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, host, &addr.sin_addr);
  if (connect(fd, (struct sockaddr*)&addr, sizeof addr) != 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}
