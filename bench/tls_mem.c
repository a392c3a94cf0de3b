/* tls_mem.c: memory per idle TLS distribution connection on a target node (bench/conn_mem.c's figure over TLS).
 * Runs COUNT hidden C nodes on one loop, each connecting over TLS (the options of OPTFILE) to TARGET, waits until
 * all are up and the target has settled, and prints the growth of the target's resident set per connection;
 * with BYTES > 0 each node first sends a binary of BYTES to the target's `sink` (so the connection has carried
 * traffic, as a used one has, before it idles):
 *   tls_mem TARGET COOKIE COUNT TARGET_PID OPTFILE [BYTES [WAIT_S]]
 *     ->  "conns=N rss_delta_kib=K bytes_per_conn=B" */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "cnode.h"
#include "bench_rss.h"

static const char *target;
static int count, up, failed;
static size_t bytes;

static void on_nodes(cn_node *n, const cn_atom *node, bool is_up, const char *reason, void *ctx) {
  (void)node;
  (void)ctx;
  if (!is_up) {
    fprintf(stderr, "tls_mem: nodedown: %s\n", reason);
    return;
  }
  up++;
  if (bytes) {
    uint8_t *b = calloc(1, bytes);
    if (b) cn_send_threadsafe(n, NULL, "sink", cn_intern(n, target), cn_mk_binary(b, bytes));
    free(b);
  }
}

static void on_failed(cn_node *n, const cn_atom *node, const char *reason, void *ctx) {
  (void)n;
  (void)node;
  (void)ctx;
  failed++;
  fprintf(stderr, "tls_mem: setup failed: %s\n", reason);
}

static void on_started(cn_node *n, int status, void *ctx) {
  (void)ctx;
  if (status) {
    fprintf(stderr, "tls_mem: start: %s\n", cn_strerror(status));
    failed++;
    return;
  }
  cn_node_connect(n, cn_intern(n, target));
}

static void on_timer(uv_timer_t *t) {
  static int ticks;
  if (up + failed < count && ++ticks < 600) return;
  uv_timer_stop(t);
  uv_stop(t->loop);
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: tls_mem TARGET COOKIE COUNT TARGET_PID OPTFILE [BYTES [WAIT_S]]\n");
    return 2;
  }
  target = argv[1];
  count = atoi(argv[3]);
  bytes = argc > 6 ? (size_t)atol(argv[6]) : 0;
  int wait_s = argc > 7 ? atoi(argv[7]) : 1;
  cn_tls_opts tls = {0};
  char err[512];
  if (cn_tls_opts_load(argv[5], &tls, err, sizeof err, NULL, 0)) {
    fprintf(stderr, "tls_mem: %s\n", err);
    return 1;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  cn_node **nodes = calloc((size_t)count, sizeof *nodes);
  long before = vmrss_kib(argv[4]);
  for (int i = 0; i < count; i++) {
    char name[64];
    snprintf(name, sizeof name, "tm%d_%d@127.0.0.1", (int)getpid(), i);
    cn_node_opts o = {.name = name,
                      .cookie = argv[2],
                      .hidden = true,
                      .no_epmd = true,
                      .tls = &tls,
                      .listen_addr = "127.0.0.1",
                      .log_level = CN_LOG_WARN};
    if (cn_node_new(&nodes[i], &loop, &o) || cn_node_monitor_nodes(nodes[i], on_nodes, NULL) ||
        cn_node_monitor_setups(nodes[i], on_failed, NULL) || cn_node_start(nodes[i], on_started, NULL)) {
      fprintf(stderr, "tls_mem: node %d did not start\n", i);
      return 1;
    }
  }
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  uv_timer_start(&t, on_timer, 100, 100);
  uv_run(&loop, UV_RUN_DEFAULT);
  /* Let the target settle (the sent binaries taken and freed) with the connections up. */
  uv_timer_start(&t, on_timer, (uint64_t)wait_s * 1000, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  long after = vmrss_kib(argv[4]);
  printf("conns=%d rss_delta_kib=%ld bytes_per_conn=%.0f\n", up, after - before,
         up ? (double)(after - before) * 1024.0 / up : 0.0);
  fflush(stdout);
  if (getenv("TLS_MEM_HOLD")) sleep((unsigned)atoi(getenv("TLS_MEM_HOLD"))); /* for a profile of the target */
  _exit(up == count ? 0 : 1);                                                /* the nodes go with the process */
}
