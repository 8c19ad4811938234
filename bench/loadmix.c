// loadmix: the load figure of issue #7. Holds IDLE keep-alive connections open (each has made one
// request, then sits idle), and runs two phases of SECONDS each against the same server:
//   1. "alone":  FAST closed-loop clients (one thread and one keep-alive connection each) cycling
//      through the paths in PATHS_FILE (manifests and blobs);
//   2. "mixed":  the same FAST clients while SLOW clients read blobs at SLOW_KIB_S KiB/s each
//      (a small receive buffer, so the server really is held back by them).
// Then it checks every idle connection: still open (no EOF or reset) and still answering a request.
//
//   loadmix HOST PORT PATHS_FILE IDLE FAST SLOW SECONDS SLOW_KIB_S ["Header: value" ...]
//
// Prints one line "LOADMIX_JSON {...}": per phase the fast clients' requests, bytes, MB/s, errors
// and latency percentiles (manifests and blobs apart), the slow clients' bytes, and the idle
// connections' fate. Any non-2xx answer, cut response or socket error on a fast client is an error;
// slow clients are cut by us at the end of their phase, which is not an error. Responses must
// carry Content-Length (registries always send it).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "net.h"

enum { head_cap = 64 * 1024, body_cap = 256 * 1024 };

static const char* host;
static int port;
static char** paths;
static size_t path_count;
static char** blob_paths;
static size_t blob_count;
static char extra_headers[4096];
static double seconds;
static double slow_rate;  // bytes per second per slow client
static atomic_int stop_fast, stop_slow;

static int dial(int rcvbuf) { return dial_tcp(host, port, rcvbuf, 60); }

static int send_request(int fd, const char* path) {
  char req[8192];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n%s\r\n", path, host, port, extra_headers);
  for (int off = 0; off < n;) {
    ssize_t w = send(fd, req + off, (size_t)(n - off), MSG_NOSIGNAL);
    if (w <= 0) return -1;
    off += (int)w;
  }
  return 0;
}

// Reads one response head; returns the status (or -1) and sets the body length and the body
// bytes that came with the head.
static int read_head(int fd, char* buf, long long* length, size_t* extra) {
  size_t have = 0;
  for (;;) {
    ssize_t r = recv(fd, buf + have, head_cap - 1 - have, 0);
    if (r <= 0) return -1;
    have += (size_t)r;
    buf[have] = 0;
    char* end = strstr(buf, "\r\n\r\n");
    if (!end) {
      if (have >= head_cap - 1) return -1;
      continue;
    }
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) return -1;
    *length = -1;
    for (char* line = strstr(buf, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
      if (strncasecmp(line + 2, "Content-Length:", 15) == 0) *length = atoll(line + 17);
    }
    if (*length < 0) return -1;
    *extra = have - (size_t)(end + 4 - buf);
    return status;
  }
}

struct lat {
  uint32_t* v;
  size_t n, cap;
};

static void lat_add(struct lat* l, double seconds_taken) {
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 4096;
    l->v = realloc(l->v, l->cap * sizeof *l->v);
  }
  l->v[l->n++] = (uint32_t)(seconds_taken * 1e6);
}

struct client {
  pthread_t thread;
  int index;
  int slow;
  long long requests, bytes, errors, status_errors;
  struct lat manifests, blobs;
  char last_error[160];
};

// One GET on fd, body read and dropped. Slow clients read at slow_rate. Returns 0, or -1 (error),
// or 1 (a slow client stopped mid-body on purpose).
static int get(struct client* c, int fd, const char* path, char* head, char* body) {
  if (send_request(fd, path) != 0) {
    snprintf(c->last_error, sizeof c->last_error, "send: %s", strerror(errno));
    return -1;
  }
  long long length;
  size_t got;
  int status = read_head(fd, head, &length, &got);
  if (status < 0) {
    snprintf(c->last_error, sizeof c->last_error, "bad or cut response head: %s", errno ? strerror(errno) : "eof");
    return -1;
  }
  if (status < 200 || status > 299) {
    c->status_errors++;
    snprintf(c->last_error, sizeof c->last_error, "status %d for %s", status, path);
  }
  long long left = length - (long long)got;
  c->bytes += (long long)got;
  double started = now();
  long long read_slow = 0;
  while (left > 0) {
    if (c->slow && atomic_load(&stop_slow)) return 1;
    size_t want = left < body_cap ? (size_t)left : body_cap;
    if (c->slow && want > 16 * 1024) want = 16 * 1024;
    ssize_t r = recv(fd, body, want, 0);
    if (r <= 0) {
      snprintf(c->last_error, sizeof c->last_error, "body cut with %lld bytes left: %s", left, r ? strerror(errno) : "eof");
      return -1;
    }
    left -= r;
    c->bytes += r;
    if (c->slow) {
      read_slow += r;
      double due = started + (double)read_slow / slow_rate;
      double wait = due - now();
      if (wait > 0) {
        struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
        nanosleep(&ts, NULL);
      }
    }
  }
  return status >= 200 && status <= 299 ? 0 : -1;
}

static void* client_main(void* arg) {
  struct client* c = arg;
  char* head = malloc(head_cap);
  char* body = malloc(body_cap);
  int fd = dial(c->slow ? 16 * 1024 : 0);
  if (fd < 0) {
    c->errors++;
    snprintf(c->last_error, sizeof c->last_error, "connect: %s", strerror(errno));
    goto out;
  }
  size_t k = (size_t)c->index * 7;
  for (;;) {
    if (c->slow ? atomic_load(&stop_slow) : atomic_load(&stop_fast)) break;
    const char* path = c->slow ? blob_paths[k++ % blob_count] : paths[k++ % path_count];
    double t0 = now();
    int rc = get(c, fd, path, head, body);
    if (rc == 1) break;
    if (rc < 0) {
      c->errors++;
      close(fd);
      fd = dial(c->slow ? 16 * 1024 : 0);
      if (fd < 0) break;
      continue;
    }
    c->requests++;
    lat_add(strstr(path, "/manifests/") ? &c->manifests : &c->blobs, now() - t0);
  }
out:
  if (fd >= 0) close(fd);
  free(head);
  free(body);
  return NULL;
}

static int cmp_u32(const void* a, const void* b) {
  uint32_t x = *(const uint32_t*)a, y = *(const uint32_t*)b;
  return x < y ? -1 : x > y;
}

static void print_lat(const char* name, struct client* cs, int n, int want_slow) {
  size_t total = 0;
  for (int i = 0; i < n; ++i) {
    if (cs[i].slow != want_slow) continue;
    total += strcmp(name, "manifest") == 0 ? cs[i].manifests.n : cs[i].blobs.n;
  }
  uint32_t* all = malloc((total ? total : 1) * sizeof *all);
  size_t at = 0;
  for (int i = 0; i < n; ++i) {
    if (cs[i].slow != want_slow) continue;
    struct lat* l = strcmp(name, "manifest") == 0 ? &cs[i].manifests : &cs[i].blobs;
    memcpy(all + at, l->v, l->n * sizeof *all);
    at += l->n;
  }
  qsort(all, total, sizeof *all, cmp_u32);
#define PCT(p) (total ? all[(size_t)((p) * (double)(total - 1))] : 0)
  printf("\"%s\": {\"requests\": %zu, \"p50_us\": %u, \"p90_us\": %u, \"p99_us\": %u, \"max_us\": %u}", name, total,
         PCT(0.50), PCT(0.90), PCT(0.99), PCT(1.0));
#undef PCT
  free(all);
}

// Runs FAST fast clients (and SLOW slow ones) for `seconds`; prints the phase's JSON object.
static long long run_phase(const char* name, int fast, int slow, int first) {
  int n = fast + slow;
  struct client* cs = calloc((size_t)n, sizeof *cs);
  atomic_store(&stop_fast, 0);
  atomic_store(&stop_slow, 0);
  for (int i = 0; i < n; ++i) {
    cs[i].index = i;
    cs[i].slow = i >= fast;
  }
  // slow clients first, so they are mid-body when the fast ones start
  for (int i = fast; i < n; ++i) pthread_create(&cs[i].thread, NULL, client_main, &cs[i]);
  if (slow) sleep(1);
  double t0 = now();
  for (int i = 0; i < fast; ++i) pthread_create(&cs[i].thread, NULL, client_main, &cs[i]);
  struct timespec ts = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
  nanosleep(&ts, NULL);
  atomic_store(&stop_fast, 1);
  for (int i = 0; i < fast; ++i) pthread_join(cs[i].thread, NULL);
  double elapsed = now() - t0;
  atomic_store(&stop_slow, 1);
  for (int i = fast; i < n; ++i) pthread_join(cs[i].thread, NULL);
  long long req = 0, bytes = 0, errors = 0, status_errors = 0, slow_bytes = 0, slow_errors = 0, slow_req = 0;
  const char* last_error = "";
  for (int i = 0; i < n; ++i) {
    if (cs[i].slow) {
      slow_bytes += cs[i].bytes;
      slow_errors += cs[i].errors;
      slow_req += cs[i].requests;
    } else {
      req += cs[i].requests;
      bytes += cs[i].bytes;
      errors += cs[i].errors;
      status_errors += cs[i].status_errors;
    }
    if (cs[i].last_error[0]) last_error = cs[i].last_error;
  }
  printf("%s\"%s\": {\"fast_clients\": %d, \"slow_clients\": %d, \"seconds\": %.3f, \"requests\": %lld, "
         "\"bytes\": %lld, \"mb_s\": %.1f, \"rps\": %.1f, \"errors\": %lld, \"status_errors\": %lld, ",
         first ? "" : ", ", name, fast, slow, elapsed, req, bytes, bytes / elapsed / 1e6, req / elapsed, errors,
         status_errors);
  print_lat("manifest", cs, n, 0);
  printf(", ");
  print_lat("blob", cs, n, 0);
  printf(", \"slow_bytes\": %lld, \"slow_kib_s_each\": %.1f, \"slow_completed\": %lld, \"slow_errors\": %lld, "
         "\"last_error\": \"%s\"}",
         slow_bytes, slow ? slow_bytes / (elapsed + 1) / slow / 1024.0 : 0.0, slow_req, slow_errors, last_error);
  for (int i = 0; i < n; ++i) {
    free(cs[i].manifests.v);
    free(cs[i].blobs.v);
  }
  free(cs);
  return errors + slow_errors;
}

int main(int argc, char** argv) {
  if (argc < 9) {
    fprintf(stderr, "usage: loadmix HOST PORT PATHS_FILE IDLE FAST SLOW SECONDS SLOW_KIB_S [HEADER...]\n");
    return 2;
  }
  host = argv[1];
  port = atoi(argv[2]);
  int idle = atoi(argv[4]), fast = atoi(argv[5]), slow = atoi(argv[6]);
  seconds = atof(argv[7]);
  slow_rate = atof(argv[8]) * 1024.0;
  size_t off = 0;
  for (int i = 9; i < argc && off < sizeof extra_headers - 256; ++i)
    off += (size_t)snprintf(extra_headers + off, sizeof extra_headers - off, "%s\r\n", argv[i]);

  // 1,000 idle + the active clients + a margin: raise the soft limit to the hard one.
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < (rlim_t)(idle + fast + slow + 64)) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  getrlimit(RLIMIT_NOFILE, &rl);

  FILE* f = fopen(argv[3], "r");
  if (!f) {
    perror(argv[3]);
    return 2;
  }
  char line[4096];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = 0;
    if (!line[0]) continue;
    paths = realloc(paths, (path_count + 1) * sizeof *paths);
    paths[path_count++] = strdup(line);
    if (strstr(line, "/blobs/")) {
      blob_paths = realloc(blob_paths, (blob_count + 1) * sizeof *blob_paths);
      blob_paths[blob_count++] = strdup(line);
    }
  }
  fclose(f);
  if (!path_count || (slow && !blob_count)) {
    fprintf(stderr, "loadmix: no paths (or no blob paths for the slow clients)\n");
    return 2;
  }

  // The idle connections: each makes one request (so it is a real keep-alive HTTP connection past
  // the server's header timeout), then sits idle.
  int* idle_fds = calloc((size_t)idle + 1, sizeof *idle_fds);
  char* head = malloc(head_cap);
  char* body = malloc(body_cap);
  int idle_open = 0, idle_open_errors = 0;
  double t_idle = now();
  for (int i = 0; i < idle; ++i) {
    idle_fds[i] = dial(0);
    long long length;
    size_t got;
    if (idle_fds[i] < 0 || send_request(idle_fds[i], "/v2/") != 0 || read_head(idle_fds[i], head, &length, &got) < 0) {
      idle_open_errors++;
      if (idle_fds[i] >= 0) close(idle_fds[i]);
      idle_fds[i] = -1;
      continue;
    }
    for (long long left = length - (long long)got; left > 0;) {
      ssize_t r = recv(idle_fds[i], body, left < body_cap ? (size_t)left : body_cap, 0);
      if (r <= 0) break;
      left -= r;
    }
    idle_open++;
  }
  t_idle = now() - t_idle;

  printf("LOADMIX_JSON {\"nofile_limit\": %llu, \"idle_requested\": %d, \"idle_opened\": %d, "
         "\"idle_open_errors\": %d, \"idle_open_s\": %.3f, \"phases\": {",
         (unsigned long long)rl.rlim_cur, idle, idle_open, idle_open_errors, t_idle);
  long long errors = run_phase("alone", fast, 0, 1);
  errors += run_phase("mixed", fast, slow, 0);

  // Did the idle connections survive both phases, and do they still answer?
  int alive = 0, answered = 0;
  for (int i = 0; i < idle; ++i) {
    if (idle_fds[i] < 0) continue;
    char c;
    ssize_t r = recv(idle_fds[i], &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (!(r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) continue;  // EOF, reset or junk
    alive++;
    long long length;
    size_t got;
    if (send_request(idle_fds[i], "/v2/") == 0 && read_head(idle_fds[i], head, &length, &got) >= 0) answered++;
    close(idle_fds[i]);
  }
  printf("}, \"idle_alive_after\": %d, \"idle_answered_after\": %d}\n", alive, answered);
  return errors || idle_open_errors || answered != idle ? 1 : 0;
}
