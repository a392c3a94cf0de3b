/* raw_pair.c: the loopback bound for the large-payload workloads (issue 7). No Erlang terms, no library: a
 * sender writes Count frames of a 4-byte length and Size bytes with one writev each, a receiver reads each frame
 * into one buffer and drops it, then answers a zero-length frame with one byte. What this moves per second is
 * what the kernel's loopback and two copies allow; any distribution implementation moving the same bytes in the
 * same frames does at least this work.
 *
 *   raw_pair recv            listens on 127.0.0.1, prints "port N", serves one connection
 *   raw_pair send PORT SIZE COUNT REPS
 *                            prints one "MB/s" figure per repetition, then "median M" */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static int full_read(int fd, void *p, size_t n) {
  for (size_t got = 0; got < n;) {
    ssize_t r = read(fd, (char *)p + got, n - got);
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

static int full_writev(int fd, struct iovec *iov, int n) {
  while (n > 0) {
    ssize_t w = writev(fd, iov, n);
    if (w < 0) return -1;
    while (n > 0 && (size_t)w >= iov->iov_len) {
      w -= (ssize_t)iov->iov_len;
      iov++, n--;
    }
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + w;
      iov->iov_len -= (size_t)w;
    }
  }
  return 0;
}

static int recv_main(void) {
  int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1) ||
      getsockname(ls, (struct sockaddr *)&a, &al)) {
    perror("raw_pair recv");
    return 1;
  }
  printf("port %d\n", ntohs(a.sin_port));
  fflush(stdout);
  int fd = accept(ls, NULL, NULL);
  if (fd < 0) return 1;
  size_t cap = 0;
  char *buf = NULL;
  for (;;) {
    uint32_t len;
    if (full_read(fd, &len, 4)) break;
    len = ntohl(len);
    if (len == 0) {
      if (write(fd, "k", 1) != 1) break;
      continue;
    }
    if (len > cap) {
      free(buf);
      if (!(buf = malloc(cap = len))) return 1;
    }
    if (full_read(fd, buf, len)) break;
  }
  free(buf);
  close(fd);
  close(ls);
  return 0;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int send_main(int port, size_t size, long count, int reps) {
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  struct sockaddr_in a = {
      .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) {
    perror("raw_pair send");
    return 1;
  }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  char *payload = malloc(size);
  double *mbs = calloc((size_t)reps, sizeof *mbs);
  if (!payload || !mbs) return 1;
  memset(payload, 0x5a, size);
  for (int r = 0; r < reps; r++) {
    double t0 = now_s();
    for (long i = 0; i < count; i++) {
      uint32_t len = htonl((uint32_t)size);
      struct iovec iov[2] = {{&len, 4}, {payload, size}};
      if (full_writev(fd, iov, 2)) return 1;
    }
    uint32_t zero = 0;
    char k;
    if (write(fd, &zero, 4) != 4 || full_read(fd, &k, 1)) return 1;
    mbs[r] = (double)size * (double)count / 1e6 / (now_s() - t0);
    printf("%.0f MB/s\n", mbs[r]);
  }
  qsort(mbs, (size_t)reps, sizeof *mbs, cmp_d);
  printf("median %.0f\n", mbs[reps / 2]);
  free(payload);
  free(mbs);
  close(fd);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "recv")) return recv_main();
  if (argc == 6 && !strcmp(argv[1], "send"))
    return send_main(atoi(argv[2]), (size_t)atol(argv[3]), atol(argv[4]), atoi(argv[5]));
  fprintf(stderr, "usage: raw_pair recv | raw_pair send PORT SIZE COUNT REPS\n");
  return 2;
}
