// httpload: a closed-loop HTTP/1.1 load generator for the request-rate figures. CONNECTIONS keep-alive
// connections spread over THREADS epoll threads; each connection sends one request, waits for the whole
// response, and sends the next, cycling through the paths listed in PATHS_FILE (one per line). Every
// response's latency is recorded, so the percentiles are exact. It handles HEAD (no body follows a
// Content-Length), which wrk 4.1 does not: wrk waits for a HEAD response's body and stalls.
//
//   httpload HOST PORT PATHS_FILE METHOD SECONDS CONNECTIONS THREADS ["Header: value" ...]
//
// Prints one JSON line: requests, duration_us, bytes, errors by kind, requests still in flight at the
// deadline (not counted), p50/p90/p99/max/mean latency in microseconds. A response with a status outside 200-299 counts as a status error. Responses must carry
// Content-Length (registries always send it); chunked bodies are refused as read errors.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net.h"

enum { read_cap = 64 * 1024 };

static const char* host;
static int port;
static char** paths;
static size_t path_count;
static const char* method;
static double seconds;
static char extra_headers[4096];
static int head_only;

struct conn {
  int fd;
  char* buf;
  size_t have;
  size_t path_index;
  double sent_at;
  int busy;
  int closing;  // the last answer said Connection: close
};

struct worker {
  pthread_t thread;
  int nconns;
  size_t first_path;
  uint32_t* lat;
  size_t lat_n, lat_cap;
  long long bytes;
  long long connect_errors, read_errors, write_errors, status_errors, unfinished;
};

static int open_conn(void) { return dial_tcp(host, port, 0, 0); }

static int send_request(struct conn* c) {
  char req[8192];
  const char* path = paths[c->path_index % path_count];
  c->path_index++;
  int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: ocigate-bench\r\n%s\r\n", method,
                   path, host, port, extra_headers);
  size_t off = 0;
  while (off < (size_t)n) {
    ssize_t w = send(c->fd, req + off, (size_t)n - off, MSG_NOSIGNAL);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      return -1;
    }
    off += (size_t)w;
  }
  c->sent_at = now();
  c->busy = 1;
  c->have = 0;
  return 0;
}

// Returns 1 when a whole response is in the buffer (status in *status), 0 when more is needed, -1 on garbage.
static int response_complete(struct conn* c, int* status, size_t* total) {
  c->buf[c->have] = '\0';
  char* end = strstr(c->buf, "\r\n\r\n");
  if (!end) return c->have >= read_cap - 1 ? -1 : 0;
  size_t head = (size_t)(end + 4 - c->buf);
  if (sscanf(c->buf, "HTTP/1.%*d %d", status) != 1) return -1;
  long long length = -1;
  for (char* line = strstr(c->buf, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
    if (strncasecmp(line + 2, "Content-Length:", 15) == 0) length = atoll(line + 17);
    if (strncasecmp(line + 2, "Transfer-Encoding:", 18) == 0) return -1;
    // A server that ends the connection after this answer (nginx after keepalive_requests): reconnect.
    if (strncasecmp(line + 2, "Connection:", 11) == 0 && strncasecmp(line + 13 + strspn(line + 13, " "), "close", 5) == 0)
      c->closing = 1;
  }
  if (head_only || *status == 204 || *status == 304) length = 0;
  if (length < 0) return -1;
  if (head + (size_t)length > read_cap - 1) return -1;  // bodies here are manifests and errors: small
  if (c->have < head + (size_t)length) return 0;
  *total = head + (size_t)length;
  return 1;
}

static void record(struct worker* w, double latency) {
  if (w->lat_n == w->lat_cap) {
    w->lat_cap = w->lat_cap ? w->lat_cap * 2 : 65536;
    w->lat = realloc(w->lat, w->lat_cap * sizeof *w->lat);
  }
  double us = latency * 1e6;
  w->lat[w->lat_n++] = us > 4e9 ? 4000000000u : (uint32_t)us;
}

static int reconnect(struct worker* w, int ep, struct conn* c) {
  if (c->fd >= 0) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
  }
  c->fd = open_conn();
  c->busy = 0;
  c->closing = 0;
  if (c->fd < 0) {
    w->connect_errors++;
    return -1;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
  if (send_request(c) != 0) {
    w->write_errors++;
    return -1;
  }
  return 0;
}

static void* run(void* arg) {
  struct worker* w = arg;
  int ep = epoll_create1(0);
  struct conn* conns = calloc((size_t)w->nconns, sizeof *conns);
  double deadline = now() + seconds;
  for (int i = 0; i < w->nconns; ++i) {
    conns[i].fd = -1;
    conns[i].buf = malloc(read_cap);
    conns[i].path_index = w->first_path + (size_t)i * 7;
    reconnect(w, ep, &conns[i]);
  }
  struct epoll_event events[256];
  while (now() < deadline) {
    int n = epoll_wait(ep, events, 256, 50);
    for (int i = 0; i < n; ++i) {
      struct conn* c = events[i].data.ptr;
      ssize_t got = recv(c->fd, c->buf + c->have, read_cap - 1 - c->have, 0);
      if (got <= 0) {
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (c->busy) w->read_errors++;
        reconnect(w, ep, c);
        continue;
      }
      c->have += (size_t)got;
      int status = 0;
      size_t total = 0;
      int done = response_complete(c, &status, &total);
      if (done < 0) {
        w->read_errors++;
        reconnect(w, ep, c);
        continue;
      }
      if (done == 0) continue;
      record(w, now() - c->sent_at);
      w->bytes += (long long)total;
      if (status < 200 || status > 299) w->status_errors++;
      if (now() >= deadline) {
        c->busy = 0;
        continue;
      }
      if (c->closing) {
        reconnect(w, ep, c);
        continue;
      }
      if (send_request(c) != 0) {
        w->write_errors++;
        reconnect(w, ep, c);
      }
    }
    // Connections that failed to reconnect retry here.
    for (int i = 0; i < w->nconns; ++i) {
      if (conns[i].fd < 0 && now() < deadline) reconnect(w, ep, &conns[i]);
    }
  }
  for (int i = 0; i < w->nconns; ++i) {
    if (conns[i].busy) w->unfinished++;  // in flight at the deadline: neither counted nor an error
    if (conns[i].fd >= 0) close(conns[i].fd);
    free(conns[i].buf);
  }
  free(conns);
  close(ep);
  return NULL;
}

static int cmp_u32(const void* a, const void* b) {
  uint32_t x = *(const uint32_t*)a, y = *(const uint32_t*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  if (argc < 8) {
    fprintf(stderr, "usage: httpload HOST PORT PATHS_FILE METHOD SECONDS CONNECTIONS THREADS [HEADER...]\n");
    return 2;
  }
  host = argv[1];
  port = atoi(argv[2]);
  method = argv[4];
  head_only = strcmp(method, "HEAD") == 0;
  seconds = atof(argv[5]);
  int connections = atoi(argv[6]);
  int threads = atoi(argv[7]);
  if (connections < 1 || threads < 1 || threads > connections) return 2;
  size_t off = 0;
  for (int i = 8; i < argc; ++i) {
    off += (size_t)snprintf(extra_headers + off, sizeof extra_headers - off, "%s\r\n", argv[i]);
    if (off >= sizeof extra_headers) return 2;
  }
  FILE* f = fopen(argv[3], "r");
  if (!f) {
    perror(argv[3]);
    return 2;
  }
  char line[4096];
  size_t cap = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = '\0';
    if (!line[0]) continue;
    if (path_count == cap) {
      cap = cap ? cap * 2 : 256;
      paths = realloc(paths, cap * sizeof *paths);
    }
    paths[path_count++] = strdup(line);
  }
  fclose(f);
  if (!path_count) return 2;

  struct worker* workers = calloc((size_t)threads, sizeof *workers);
  double start = now();
  for (int t = 0; t < threads; ++t) {
    workers[t].nconns = connections / threads + (t < connections % threads);
    workers[t].first_path = (size_t)t * path_count / (size_t)threads;
    pthread_create(&workers[t].thread, NULL, run, &workers[t]);
  }
  size_t total = 0;
  for (int t = 0; t < threads; ++t) {
    pthread_join(workers[t].thread, NULL);
    total += workers[t].lat_n;
  }
  double elapsed = now() - start;
  uint32_t* all = malloc((total ? total : 1) * sizeof *all);
  size_t k = 0;
  long long bytes = 0, ce = 0, re = 0, we = 0, se = 0, to = 0;
  double sum = 0;
  for (int t = 0; t < threads; ++t) {
    memcpy(all + k, workers[t].lat, workers[t].lat_n * sizeof *all);
    k += workers[t].lat_n;
    bytes += workers[t].bytes;
    ce += workers[t].connect_errors;
    re += workers[t].read_errors;
    we += workers[t].write_errors;
    se += workers[t].status_errors;
    to += workers[t].unfinished;
  }
  for (size_t i = 0; i < total; ++i) sum += all[i];
  qsort(all, total, sizeof *all, cmp_u32);
#define PCT(p) (total ? all[(size_t)((double)(total - 1) * (p) / 100.0 + 0.5)] : 0u)
  printf("BENCH_JSON {\"requests\":%zu,\"duration_us\":%.0f,\"bytes\":%lld,\"connect_errors\":%lld,"
         "\"read_errors\":%lld,\"write_errors\":%lld,\"status_errors\":%lld,\"unfinished\":%lld,\"p50_us\":%u,"
         "\"p90_us\":%u,\"p99_us\":%u,\"max_us\":%u,\"mean_us\":%.1f}\n",
         total, elapsed * 1e6, bytes, ce, re, we, se, to, PCT(50), PCT(90), PCT(99), total ? all[total - 1] : 0u,
         total ? sum / (double)total : 0.0);
  return 0;
}
