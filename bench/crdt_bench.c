/* crdt_bench.c: the Horde path at scale, as a user's program on the installed API (<cnode/...>, no allocator
 * tuning). Three C nodes on one loop, each running a delta_crdt peer ('bench.Crdt'): A holds N keys, B syncs
 * them from A, then C joins as a new member (neighbours of all three set at once). Prints, as `bench=...` lines:
 *   crdt_mem_per_key_N    heap bytes per key held by one CRDT (mallinfo2 around A's N writes)
 *   crdt_join_N           ms until the new member's Merkle root equals A's
 *   crdt_join_cpu_N       CPU seconds of the process (all three nodes) meanwhile
 *   crdt_join_bytes_N     bytes the three nodes wrote to their distribution sockets meanwhile (cn_node_stats)
 *   crdt_join_msgs_N      distribution messages they sent meanwhile
 *   crdt_idle_round_N     CPU per idle round (roots equal: one node's tree top to one neighbour, compared, acked)
 * Usage: crdt_bench EPMD_PORT N; CRDT_INTERVAL (ms, default 300) sets the sync interval, CRDT_IDLE_MS (4000) the
 * idle window. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cnode/cnode.h>
#include <cnode/horde.h>

enum { NN = 3 };

static double cpu_s(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return r.ru_utime.tv_sec + r.ru_stime.tv_sec + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

static size_t heap_bytes(void) {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

static double ms_since(uint64_t t0) { return (uv_hrtime() - t0) / 1e6; }

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

static cn_node *nd[NN];

/* The sum of the three CRDTs' counters; bytes and messages are the nodes' distribution traffic. */
static cn_crdt_stats total(cn_crdt **c) {
  cn_crdt_stats t = {0}, s;
  for (int i = 0; i < NN; i++) {
    cn_node_stats ns;
    cn_node_get_stats(nd[i], &ns);
    cn_crdt_get_stats(c[i], &s);
    t.syncs_started += s.syncs_started, t.keys_sent += s.keys_sent;
    t.msgs_sent += ns.messages_out, t.bytes_sent += ns.bytes_out;
  }
  return t;
}

/* True when the node has its two peers up. */
static bool up(cn_node *n) {
  cn_conn_info ci[8];
  size_t k = cn_node_conns(n, ci, 8), u = 0;
  for (size_t i = 0; i < k && i < 8; i++) u += !strcmp(ci[i].state, "up");
  return u >= NN - 1;
}

static void on_deadline(uv_timer_t *t) { *(bool *)t->data = true; }

/* Runs the loop for ms, sleeping in it between events (no polling of our own to count in the CPU figures). */
static void run_for(uv_loop_t *loop, double ms) {
  bool done = false;
  uv_timer_t t;
  uv_timer_init(loop, &t);
  t.data = &done;
  uv_timer_start(&t, on_deadline, (uint64_t)ms, 0);
  while (!done) uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
}

/* Runs until `quiet` ms pass with no key sent, under 1 MB/s written and under 5% of a CPU used (rounds begun
 * before the roots met are done: their hops carry trees even when they end with no key, and what is queued is still
 * decoded and compared), at most max_ms. Idle rounds cost well under 1% of a CPU at 1M keys; the bound was 25%,
 * which a process held to ~20% of a CPU by other load passed while still decoding a leftover hop. */
static void settle(uv_loop_t *loop, cn_crdt **c, double quiet, double max_ms) {
  uint64_t t0 = uv_hrtime(), tk = t0;
  cn_crdt_stats w = total(c);
  double cpu0 = cpu_s();
  while (ms_since(t0) < max_ms) {
    run_for(loop, 100);
    cn_crdt_stats s = total(c);
    double busy = (cpu_s() - cpu0) * 1000.0 / (ms_since(tk) + 1); /* messages already queued are still joined */
    if (s.keys_sent != w.keys_sent || (double)(s.bytes_sent - w.bytes_sent) > ms_since(tk) * 1000.0 + 65536 ||
        (ms_since(tk) >= 1000 && busy > 0.05))
      w = s, tk = uv_hrtime(), cpu0 = cpu_s();
    else if (ms_since(tk) >= quiet) return;
  }
}

static void neighbours(cn_node *n, cn_crdt *c, const char *const *peers, size_t np) {
  cn_term *t[NN];
  for (size_t i = 0; i < np; i++) t[i] = cn_mk_tuple(2, cn_mk_atomc(n, "bench.Crdt"), cn_mk_atomc(n, peers[i]));
  if (cn_crdt_set_neighbours(c, (const cn_term *const *)t, np)) fprintf(stderr, "set_neighbours failed\n");
  for (size_t i = 0; i < np; i++) cn_term_free(t[i]);
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  uint16_t eport = (uint16_t)atoi(argv[1]);
  long nkeys = atol(argv[2]);
  const char *names[NN] = {"benchA@127.0.0.1", "benchB@127.0.0.1", "benchC@127.0.0.1"};
  uv_loop_t loop;
  uv_loop_init(&loop);
  cn_crdt *c[NN];
  cn_crdt_opts co = {.sync_interval_ms = (unsigned)(getenv("CRDT_INTERVAL") ? atoi(getenv("CRDT_INTERVAL")) : 300)};
  for (int i = 0; i < NN; i++) {
    /* a full sync of 1M keys is one ~200 MB delta: over the defaults (64 MiB queued to a peer, 256 MiB a
     * message), which a registry that large has to raise; the handshake waits for a loop busy with a join */
    cn_node_opts o = {.name = names[i],
                      .cookie = "bench",
                      .epmd_port = eport,
                      .listen_addr = "127.0.0.1",
                      .log_level = CN_LOG_WARN,
                      .handshake_timeout_ms = 60000,
                      .queue_limit = (size_t)2 << 30,
                      .max_message_size = (size_t)1 << 30};
    if (cn_node_new(&nd[i], &loop, &o) || cn_node_start(nd[i], on_start, NULL)) return 1;
  }
  while (ready < NN && ready >= 0) uv_run(&loop, UV_RUN_ONCE);
  if (ready < 0) return 1;
  for (int i = 0; i < NN; i++)
    if (cn_crdt_start(nd[i], "bench", &co, &c[i])) return 1;
  /* connected before any work: one loop runs all three nodes, so a long join would stall a handshake */
  for (int i = 0; i < NN; i++) cn_node_connect(nd[i], cn_node_name(nd[(i + 1) % NN]));
  for (uint64_t t0 = uv_hrtime(); ms_since(t0) < 10000 && !(up(nd[0]) && up(nd[1]) && up(nd[2]));)
    uv_run(&loop, UV_RUN_ONCE);

  /* memory: A's N writes (keys and values as a Horde registry holds them: {key, K} => {{N, Node}, Pid, V}) */
  size_t h0 = heap_bytes();
  cn_term *member = cn_mk_tuple(2, cn_mk_atomc(nd[0], "bench"), cn_mk_atomc(nd[0], names[0]));
  for (long i = 0; i < nkeys; i++) {
    char kb[32];
    int kl = snprintf(kb, sizeof kb, "worker-%ld", i);
    cn_term *k = cn_mk_tuple(2, cn_mk_atomc(nd[0], "key"), cn_mk_binary(kb, (size_t)kl));
    cn_term *v =
        cn_mk_tuple(3, cn_term_copy(member),
                    cn_mk_pid((cn_pid){cn_node_name(nd[0]), (uint32_t)(1000 + i % 30000000), 0, 1}), cn_mk_nil());
    if (!k || !v || cn_crdt_put(c[0], k, v)) return 1;
    cn_term_free(k);
    cn_term_free(v);
  }
  cn_term_free(member);
  cn_crdt_root(c[0], (uint8_t[4]){0}); /* hashes computed, as the first sync does */
  double per_key = (double)(heap_bytes() - h0) / (double)(nkeys ? nkeys : 1);

  /* A and B: the registry on two nodes */
  uint64_t t0 = uv_hrtime();
  neighbours(nd[0], c[0], (const char *const[]){names[1]}, 1);
  neighbours(nd[1], c[1], (const char *const[]){names[0]}, 1);
  while (!same_root(c[0], c[1])) uv_run(&loop, UV_RUN_ONCE);
  double pair_ms = ms_since(t0), quiet = 3 * co.sync_interval_ms + 500;
  /* a hop of a round begun before the roots met can take a while at this size: quiet for a quarter of the sync */
  settle(&loop, c, pair_ms / 4 > quiet ? pair_ms / 4 : quiet, 300000);

  /* C joins: every node's neighbours are the other two */
  cn_crdt_stats s0 = total(c);
  double c0 = cpu_s();
  t0 = uv_hrtime();
  for (int i = 0; i < NN; i++) {
    const char *p[2] = {names[(i + 1) % NN], names[(i + 2) % NN]};
    neighbours(nd[i], c[i], p, 2);
  }
  while (!same_root(c[0], c[2])) uv_run(&loop, UV_RUN_ONCE);
  double join_ms = ms_since(t0), join_cpu = cpu_s() - c0;
  cn_crdt_stats s1 = total(c);

  /* idle: every tick each node starts a round to each neighbour; the roots are equal */
  settle(&loop, c, join_ms / 4 > quiet ? join_ms / 4 : quiet, 300000);
  cn_crdt_stats i0 = total(c);
  double idle_ms = getenv("CRDT_IDLE_MS") ? atof(getenv("CRDT_IDLE_MS")) : 4000;
  fprintf(stderr, "crdt_bench: idle rounds from now, %.0f ms\n", idle_ms); /* a profiler attaches here */
  double ci = cpu_s();
  run_for(&loop, idle_ms);
  cn_crdt_stats i1 = total(c);
  uint64_t rounds = i1.syncs_started - i0.syncs_started;

  printf("bench=crdt_mem_per_key_%ld impl=cnode value=%.0f unit=bytes\n", nkeys, per_key);
  printf("bench=crdt_pair_sync_%ld impl=cnode value=%.1f unit=ms\n", nkeys, pair_ms);
  printf("bench=crdt_join_%ld impl=cnode value=%.1f unit=ms\n", nkeys, join_ms);
  printf("bench=crdt_join_cpu_%ld impl=cnode value=%.3f unit=cpu_s\n", nkeys, join_cpu);
  printf("bench=crdt_join_bytes_%ld impl=cnode value=%llu unit=bytes\n", nkeys,
         (unsigned long long)(s1.bytes_sent - s0.bytes_sent));
  printf("bench=crdt_join_msgs_%ld impl=cnode value=%llu unit=messages\n", nkeys,
         (unsigned long long)(s1.msgs_sent - s0.msgs_sent));
  printf("bench=crdt_idle_round_%ld impl=cnode value=%.1f unit=us_cpu rounds=%llu keys_sent=%llu\n", nkeys,
         rounds ? (cpu_s() - ci) * 1e6 / (double)rounds : 0.0, (unsigned long long)rounds,
         (unsigned long long)(i1.keys_sent - i0.keys_sent));
  fflush(stdout);
  for (int i = 0; i < NN; i++) cn_node_stop(nd[i]);
  for (int i = 0; i < NN; i++) cn_node_free(nd[i]);
  uv_loop_close(&loop);
  return 0;
}
