/* epmd_load.c: a PORT_PLEASE2 load generator for bench/epmd.sh. It registers one name on the EPMD at
 * 127.0.0.1:PORT (kept for the run), then keeps CONC lookups in flight for SECONDS, each on its own
 * connection as real clients do (connect, request, read to EOF), and prints the completed lookups per second.
 * Plain C and poll(2): no libcnode, so both servers are measured with the same client.
 * usage: epmd_load PORT SECONDS CONC */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in addr;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int open_conn(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

typedef struct slot {
  int fd;
  int sent;
  size_t got;
} slot;

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: epmd_load PORT SECONDS CONC\n");
    return 2;
  }
  int port = atoi(argv[1]), conc = atoi(argv[3]);
  double secs = atof(argv[2]);
  if (port <= 0 || secs <= 0 || conc <= 0 || conc > 1024) return 2;
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  /* The name looked up: "benchnode" at port 4711, held by this socket. */
  static const char name[] = "benchnode";
  uint8_t alive[64];
  size_t nl = sizeof name - 1, k = 0;
  size_t body = 13 + nl;
  alive[k++] = (uint8_t)(body >> 8), alive[k++] = (uint8_t)body, alive[k++] = 120;
  alive[k++] = 4711 >> 8, alive[k++] = 4711 & 255, alive[k++] = 77, alive[k++] = 0;
  alive[k++] = 0, alive[k++] = 6, alive[k++] = 0, alive[k++] = 5, alive[k++] = 0, alive[k++] = (uint8_t)nl;
  memcpy(alive + k, name, nl), k += nl;
  alive[k++] = 0, alive[k++] = 0;
  int reg = socket(AF_INET, SOCK_STREAM, 0);
  uint8_t resp[8];
  if (reg < 0 || connect(reg, (struct sockaddr *)&addr, sizeof addr) || write(reg, alive, k) != (ssize_t)k ||
      read(reg, resp, sizeof resp) < 2 || resp[1] != 0) {
    fprintf(stderr, "epmd_load: cannot register on port %d\n", port);
    return 1;
  }
  uint8_t req[32];
  size_t rl = 0;
  req[rl++] = 0, req[rl++] = (uint8_t)(1 + nl), req[rl++] = 122;
  memcpy(req + rl, name, nl), rl += nl;
  size_t want = 2 + 10 + nl + 2; /* PORT2_RESP with the info and an empty extra */

  slot *s = calloc((size_t)conc, sizeof *s);
  struct pollfd *p = calloc((size_t)conc, sizeof *p);
  for (int i = 0; i < conc; i++) s[i].fd = open_conn();
  long done = 0, errors = 0;
  double t0 = now_s(), end = t0 + secs;
  while (now_s() < end) {
    for (int i = 0; i < conc; i++) {
      p[i].fd = s[i].fd;
      p[i].events = s[i].sent ? POLLIN : POLLOUT;
      p[i].revents = 0;
    }
    if (poll(p, (nfds_t)conc, 100) < 0) break;
    for (int i = 0; i < conc; i++) {
      if (!p[i].revents) continue;
      slot *c = &s[i];
      int restart = 0;
      if (!c->sent) {
        if (write(c->fd, req, rl) == (ssize_t)rl) c->sent = 1;
        else restart = 1, errors++;
      } else {
        uint8_t buf[512];
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n > 0) {
          if (c->got == 0 && buf[1] != 0) errors++;
          c->got += (size_t)n;
        } else if (n == 0) {
          if (c->got == want) done++;
          else errors++;
          restart = 1;
        } else if (errno != EAGAIN) {
          restart = 1, errors++;
        }
      }
      if (restart) {
        close(c->fd);
        c->fd = open_conn();
        c->sent = 0;
        c->got = 0;
      }
    }
  }
  double el = now_s() - t0;
  printf("%.0f %ld\n", done / el, errors);
  close(reg);
  return errors > done / 100 ? 1 : 0;
}
