/* crdt_bench.c: two C nodes on one loop, each running a delta_crdt peer; one holds N keys, the other none.
 * Prints the time and bytes on the wire until their Merkle roots are equal, then the CPU of an idle sync round
 * (roots equal: a root compare and an ack). Usage: crdt_bench EPMD_PORT N */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cnode.h"
#include "horde.h"

static double cpu_s(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return r.ru_utime.tv_sec + r.ru_stime.tv_sec + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

static int ready;
static void on_start(cn_node *n, int status, void *ctx) {
  (void)n;
  (void)ctx;
  ready += status ? -100 : 1;
}

static bool same_root(cn_crdt *a, cn_crdt *b) {
  uint8_t ra[4], rb[4];
  return cn_crdt_root(a, ra) && cn_crdt_root(b, rb) && memcmp(ra, rb, 4) == 0;
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  uint16_t eport = (uint16_t)atoi(argv[1]);
  long nkeys = atol(argv[2]);
  uv_loop_t loop;
  uv_loop_init(&loop);
  cn_node *na, *nb;
  cn_node_opts oa = {.name = "benchA@127.0.0.1",
                     .cookie = "bench",
                     .epmd_port = eport,
                     .listen_addr = "127.0.0.1",
                     .log_level = CN_LOG_WARN};
  cn_node_opts ob = oa;
  ob.name = "benchB@127.0.0.1";
  if (cn_node_new(&na, &loop, &oa) || cn_node_new(&nb, &loop, &ob) || cn_node_start(na, on_start, NULL) ||
      cn_node_start(nb, on_start, NULL))
    return 1;
  while (ready < 2 && ready >= 0) uv_run(&loop, UV_RUN_ONCE);
  if (ready < 0) return 1;
  cn_crdt_opts co = {.sync_interval_ms = (unsigned)(getenv("CRDT_INTERVAL") ? atoi(getenv("CRDT_INTERVAL")) : 300),
                     .count_bytes = true};
  cn_crdt *a, *b;
  if (cn_crdt_start(na, "bench", &co, &a) || cn_crdt_start(nb, "bench", &co, &b)) return 1;
  for (long i = 0; i < nkeys; i++) {
    cn_term *k = cn_mk_tuple(2, cn_mk_atomc(na, "key"), cn_mk_int(i));
    cn_term *v = cn_mk_tuple(2, cn_mk_atomc(na, "val"), cn_mk_binary("0123456789abcdef", 16));
    cn_crdt_put(a, k, v);
    cn_term_free(k);
    cn_term_free(v);
  }
  cn_term *pa = cn_mk_tuple(2, cn_mk_atomc(na, "bench.Crdt"), cn_mk_atomc(na, "benchB@127.0.0.1"));
  cn_term *pb = cn_mk_tuple(2, cn_mk_atomc(nb, "bench.Crdt"), cn_mk_atomc(nb, "benchA@127.0.0.1"));
  uint64_t t0 = uv_hrtime();
  double c0 = cpu_s();
  cn_crdt_set_neighbours(a, (const cn_term *const *)&pa, 1);
  cn_crdt_set_neighbours(b, (const cn_term *const *)&pb, 1);
  while (!same_root(a, b)) uv_run(&loop, UV_RUN_ONCE);
  double ms = (uv_hrtime() - t0) / 1e6, cpu = cpu_s() - c0;
  cn_crdt_stats sa, sb;
  cn_crdt_get_stats(a, &sa);
  cn_crdt_get_stats(b, &sb);
  printf("bench=crdt_converge_%ld impl=cnode value=%.1f unit=ms\n", nkeys, ms);
  printf("bench=crdt_converge_cpu_%ld impl=cnode value=%.3f unit=cpu_s\n", nkeys, cpu);
  printf("bench=crdt_bytes_%ld impl=cnode value=%llu unit=bytes\n", nkeys,
         (unsigned long long)(sa.bytes_sent + sb.bytes_sent));
  printf("bench=crdt_msgs_%ld impl=cnode value=%llu unit=messages\n", nkeys,
         (unsigned long long)(sa.msgs_sent + sb.msgs_sent));
  /* Idle: roots are equal; let messages still in flight settle, then every 50 ms each side starts a round. */
  uint64_t settle = uv_hrtime() + 1500000000ull;
  while (uv_hrtime() < settle) uv_run(&loop, UV_RUN_ONCE);
  cn_crdt_get_stats(a, &sa);
  cn_crdt_get_stats(b, &sb);
  uint64_t rounds0 = sa.syncs_started + sb.syncs_started, keys0 = sa.keys_sent + sb.keys_sent;
  double ci = cpu_s();
  uint64_t until = uv_hrtime() + 4000000000ull;
  while (uv_hrtime() < until) uv_run(&loop, UV_RUN_ONCE);
  cn_crdt_get_stats(a, &sa);
  cn_crdt_get_stats(b, &sb);
  uint64_t rounds = sa.syncs_started + sb.syncs_started - rounds0;
  printf("bench=crdt_idle_round_cpu_%ld impl=cnode value=%.1f unit=us_per_round rounds=%llu keys_sent=%llu\n", nkeys,
         rounds ? (cpu_s() - ci) * 1e6 / (double)rounds : 0.0, (unsigned long long)rounds,
         (unsigned long long)(sa.keys_sent + sb.keys_sent - keys0));
  cn_term_free(pa);
  cn_term_free(pb);
  cn_node_stop(na);
  cn_node_stop(nb);
  cn_node_free(na);
  cn_node_free(nb);
  uv_loop_close(&loop);
  return 0;
}
