/* conn_mem.c: memory per idle distribution connection on a target node. Opens COUNT connections to
 * HOST:PORT, each a full handshake by a distinct (hidden) ei node name, waits for the target to settle and
 * prints the growth of the target's resident set (/proc/TARGET_PID/status VmRSS) per connection:
 *   conn_mem HOST PORT COOKIE COUNT TARGET_PID  ->  "conns=N rss_delta_kib=K bytes_per_conn=B" */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ei.h"
#include "bench_rss.h"

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: conn_mem HOST PORT COOKIE COUNT TARGET_PID\n");
    return 2;
  }
  int port = atoi(argv[2]), count = atoi(argv[4]);
  struct in_addr addr;
  addr.s_addr = htonl(INADDR_LOOPBACK);
  ei_init();
  int *fds = calloc((size_t)count, sizeof *fds);
  if (!fds) return 1;
  usleep(300 * 1000);
  long before = vmrss_kib(argv[5]);
  int ok = 0;
  for (int i = 0; i < count; i++) {
    ei_cnode ec;
    char alive[64], full[128];
    snprintf(alive, sizeof alive, "idle%d_%d", (int)getpid(), i);
    snprintf(full, sizeof full, "%s@%s", alive, argv[1]);
    if (ei_connect_xinit(&ec, argv[1], alive, full, &addr, argv[3], 0) < 0) break;
    fds[i] = ei_xconnect_host_port(&ec, &addr, port);
    if (fds[i] < 0) {
      fprintf(stderr, "conn_mem: connection %d failed\n", i);
      break;
    }
    ok++;
  }
  usleep(1000 * 1000);
  long after = vmrss_kib(argv[5]);
  printf("conns=%d rss_delta_kib=%ld bytes_per_conn=%.0f\n", ok, after - before,
         ok ? (double)(after - before) * 1024.0 / ok : 0.0);
  for (int i = 0; i < ok; i++) close(fds[i]);
  return ok == count ? 0 : 1;
}
