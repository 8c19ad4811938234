// blobget: N concurrent HTTP/1.1 GETs of one URL path on a loopback server, one thread and one
// connection per client, bodies read into a buffer and dropped (as `curl -o /dev/null` would).
// PATH may be @FILE: one path per line, client i GETs line i modulo their count (the fleet figures:
// blobs of several repositories, spread over the replicas).
// Prints one JSON object: per-client status, bytes, time to the first response byte and to the first
// body byte, and the aggregate throughput over the wall time from the first connect to the last byte.
//
//   blobget HOST PORT PATH CLIENTS [TIMEOUT_SECONDS]
//
// A benchmark helper, not a general client: no chunked encoding, no redirects, no TLS. The bench
// driver compiles it with `cc -O2 -pthread` into its temp directory.
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
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "net.h"

enum { buffer_size = 256 * 1024, header_max = 64 * 1024 };

static const char* host;
static int port;
static int timeout_seconds = 600;

struct client {
  pthread_t thread;
  const char* path;
  int status;
  long long content_length;
  long long body_bytes;
  double start, first_byte, first_body_byte, end;
  char error[128];
};


static void* run(void* arg) {
  struct client* c = arg;
  c->status = 0;
  c->content_length = -1;
  c->start = now();
  int fd = dial_tcp(host, port, 0, timeout_seconds);
  if (fd < 0) {
    snprintf(c->error, sizeof c->error, "connect: %s", strerror(errno));
    return NULL;
  }
  char request[2048];
  int n = snprintf(request, sizeof request,
                   "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: ocigate-bench\r\nAccept: */*\r\n"
                   "Connection: close\r\n\r\n",
                   c->path, host, port);
  if (send(fd, request, (size_t)n, 0) != n) {
    snprintf(c->error, sizeof c->error, "send: %s", strerror(errno));
    close(fd);
    return NULL;
  }
  char* buffer = malloc(buffer_size);
  size_t have = 0;
  char* body_start = NULL;
  // Header: read until the blank line.
  while (!body_start) {
    ssize_t got = recv(fd, buffer + have, header_max - have, 0);
    if (got <= 0) {
      snprintf(c->error, sizeof c->error, "header: %s", got == 0 ? "closed" : strerror(errno));
      free(buffer);
      close(fd);
      return NULL;
    }
    if (have == 0) c->first_byte = now();
    have += (size_t)got;
    buffer[have] = '\0';
    char* end = strstr(buffer, "\r\n\r\n");
    if (end) body_start = end + 4;
    else if (have >= header_max - 1) {
      snprintf(c->error, sizeof c->error, "header too large");
      free(buffer);
      close(fd);
      return NULL;
    }
  }
  sscanf(buffer, "HTTP/1.%*d %d", &c->status);
  for (char* line = strstr(buffer, "\r\n"); line && line < body_start; line = strstr(line + 2, "\r\n")) {
    if (strncasecmp(line + 2, "Content-Length:", 15) == 0) c->content_length = atoll(line + 17);
  }
  long long body = (long long)(buffer + have - body_start);
  if (body > 0) c->first_body_byte = now();
  for (;;) {
    if (c->content_length >= 0 && body >= c->content_length) break;
    ssize_t got = recv(fd, buffer, buffer_size, 0);
    if (got < 0) {
      snprintf(c->error, sizeof c->error, "body: %s", strerror(errno));
      break;
    }
    if (got == 0) break;
    if (body == 0) c->first_body_byte = now();
    body += got;
  }
  c->end = now();
  c->body_bytes = body;
  if (!c->error[0] && c->content_length >= 0 && body != c->content_length) {
    snprintf(c->error, sizeof c->error, "short body: %lld of %lld", body, c->content_length);
  }
  free(buffer);
  close(fd);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: blobget HOST PORT PATH CLIENTS [TIMEOUT_SECONDS]\n");
    return 2;
  }
  host = argv[1];
  port = atoi(argv[2]);
  int clients = atoi(argv[4]);
  if (argc > 5) timeout_seconds = atoi(argv[5]);
  if (clients < 1 || clients > 1024) return 2;
  enum { max_paths = 1024 };
  static char* paths[max_paths];
  int path_count = 0;
  if (argv[3][0] == '@') {
    FILE* f = fopen(argv[3] + 1, "r");
    if (!f) {
      fprintf(stderr, "blobget: %s: %s\n", argv[3] + 1, strerror(errno));
      return 2;
    }
    char line[2048];
    while (path_count < max_paths && fgets(line, sizeof line, f)) {
      line[strcspn(line, "\r\n")] = 0;
      if (line[0]) paths[path_count++] = strdup(line);
    }
    fclose(f);
  } else {
    paths[path_count++] = argv[3];
  }
  if (path_count == 0) {
    fprintf(stderr, "blobget: no paths in %s\n", argv[3] + 1);
    return 2;
  }
  struct client* all = calloc((size_t)clients, sizeof *all);
  for (int i = 0; i < clients; ++i) all[i].path = paths[i % path_count];
  double t0 = now();
  for (int i = 0; i < clients; ++i) pthread_create(&all[i].thread, NULL, run, &all[i]);
  for (int i = 0; i < clients; ++i) pthread_join(all[i].thread, NULL);
  double first_start = all[0].start, last_end = 0;
  long long total = 0;
  int failed = 0;
  printf("{\"clients\":[");
  for (int i = 0; i < clients; ++i) {
    struct client* c = &all[i];
    if (c->start < first_start) first_start = c->start;
    if (c->end > last_end) last_end = c->end;
    total += c->body_bytes;
    if (c->error[0] || c->status != 200) failed++;
    printf("%s{\"status\":%d,\"bytes\":%lld,\"content_length\":%lld,\"ttfb\":%.6f,\"ttfbb\":%.6f,\"seconds\":%.6f,"
           "\"error\":\"%s\"}",
           i ? "," : "", c->status, c->body_bytes, c->content_length,
           c->first_byte > 0 ? c->first_byte - c->start : -1.0,
           c->first_body_byte > 0 ? c->first_body_byte - c->start : -1.0, c->end > 0 ? c->end - c->start : -1.0,
           c->error);
  }
  double wall = last_end > first_start ? last_end - first_start : now() - t0;
  printf("],\"failed\":%d,\"total_bytes\":%lld,\"wall_seconds\":%.6f,\"bytes_per_second\":%.1f}\n", failed, total, wall,
         wall > 0 ? (double)total / wall : 0.0);
  free(all);
  return failed ? 1 : 0;
}
