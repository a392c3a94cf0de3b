/* test_crdt.c: the C CRDT process (horde.h). C nodes in threads with a real OTP epmd, each running 't.Crdt':
 * 3 and 5 nodes writing random keys concurrently (same keys on several nodes, deletes, re-adds), one node cut
 * off and reconnected midway; all converge to the same LWW read and Merkle root within a bounded time. And the
 * delta of a sync round, against a scripted peer: consistent with its version vector, and complete; and the MapSet
 * shape followed from the peers' deltas. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cnode.h"
#include "hc_int.h"
#include "horde.h"
#include "testutil.h"
#include "tnode.h"

#define SYNC_MS 100

/* A helper process that drops every connection of its node on {disconnect_all} (loop-thread only call). */
static void cutter(cn_proc *self, const cn_term *msg, void *state) {
  (void)state;
  if (!cn_is_atom(msg, "disconnect_all")) return;
  cn_node *n = cn_proc_node(self);
  const cn_atom *names[16];
  size_t k = cn_nodes(n, CN_NODES_ALL, names, 16);
  for (size_t i = 0; i < k && i < 16; i++) cn_node_disconnect(n, names[i]);
}

/* Node i with a CRDT "t" (t->user) and the cutter, running in its own thread. */
static void node_up(tnode *t, int i) {
  char name[64];
  snprintf(name, sizeof name, "crdt%d@127.0.0.1", i);
  cn_node_opts o = {
      .name = name, .cookie = "secret", .epmd_port = test_epmd_port, .listen_addr = "127.0.0.1", .net_ticktime_s = 4};
  tnode_new(t, &o);
  cn_crdt_opts co = {.sync_interval_ms = SYNC_MS, .count_bytes = true};
  cn_crdt *crdt;
  assert_int_equal(cn_crdt_start(t->n, "t", &co, &crdt), 0);
  t->user = crdt;
  tnode_spawn_named(t, "cutter", cutter, NULL);
  tnode_run_ready(t);
}

static cn_term *call(tnode *t, cn_term *req) {
  cn_term *srv = cn_mk_atomc(t->n, "t.Crdt"), *reply = NULL;
  int rc = cn_call_sync(t->n, srv, req, 5000, &reply);
  assert_int_equal(rc, 0);
  cn_term_free(srv);
  cn_term_free(req);
  return reply;
}

static void op(tnode *t, int key, int val) {
  cn_node *n = t->n;
  cn_term *k = cn_mk_tuple(2, cn_mk_atomc(n, "key"), cn_mk_int(key));
  cn_term *args = val < 0 ? cn_mk_list(1, k) : cn_mk_list(2, k, cn_mk_int(val));
  cn_term *r = call(
      t, cn_mk_tuple(2, cn_mk_atomc(n, "operation"), cn_mk_tuple(2, cn_mk_atomc(n, val < 0 ? "remove" : "add"), args)));
  assert_true(cn_is_atom(r, "ok"));
  cn_term_free(r);
}

/* Sets the neighbours of t to the CRDTs of the nodes in `on` (all but itself). */
static void neighbours(tnode *ts, int count, int self, const bool *on) {
  cn_node *n = ts[self].n;
  cn_term *v[8];
  size_t k = 0;
  for (int i = 0; i < count; i++)
    if (i != self && on[i]) v[k++] = cn_mk_tuple(2, cn_mk_atomc(n, "t.Crdt"), cn_mk_atomc(n, ts[i].name));
  cn_term *msg = cn_mk_tuple(2, cn_mk_atomc(n, "set_neighbours"), cn_mk_listv(k, v, NULL));
  assert_int_equal(cn_send_threadsafe(n, NULL, "t.Crdt", NULL, msg), 0);
}

/* Waits until every node reads the same map and has the same root; returns the ms it took, or -1. */
static long converge(tnode *ts, int count, long limit_ms, size_t *nkeys) {
  long t0 = now_ms();
  while (now_ms() - t0 < limit_ms) {
    cn_term *r0 = call(&ts[0], cn_mk_atomc(ts[0].n, "read")), *h0 = call(&ts[0], cn_mk_atomc(ts[0].n, "root_hash"));
    bool same = true;
    for (int i = 1; same && i < count; i++) {
      cn_term *r = call(&ts[i], cn_mk_atomc(ts[i].n, "read")), *h = call(&ts[i], cn_mk_atomc(ts[i].n, "root_hash"));
      same = cn_term_exact_eq(r, r0) && cn_term_exact_eq(h, h0);
      cn_term_free(r);
      cn_term_free(h);
    }
    *nkeys = r0->v.map.size;
    cn_term_free(r0);
    cn_term_free(h0);
    if (same) return now_ms() - t0;
    sleep_ms(20);
  }
  return -1;
}

static void run_cluster(int count, int nops, bool cut) {
  tnode ts[8];
  for (int i = 0; i < count; i++) node_up(&ts[i], i);
  bool on[8];
  for (int i = 0; i < count; i++) on[i] = true;
  for (int i = 0; i < count; i++) neighbours(ts, count, i, on);
  srand(1234 + count);
  /* phase 1: concurrent random writes over a small key space (so keys collide across nodes) */
  for (int j = 0; j < nops; j++) {
    int i = rand() % count, key = rand() % 60;
    op(&ts[i], key, rand() % 5 == 0 ? -1 : rand() % 1000);
  }
  int x = count - 1;
  if (cut) {
    /* phase 2: node x is cut off: no neighbours either way and its connections dropped; both sides write */
    on[x] = false;
    for (int i = 0; i < x; i++) neighbours(ts, count, i, on);
    bool none[8] = {0};
    neighbours(ts, count, x, none);
    sleep_ms(50);
    cn_term *m = cn_mk_atomc(ts[x].n, "disconnect_all");
    assert_int_equal(cn_send_threadsafe(ts[x].n, NULL, "cutter", NULL, m), 0);
    for (int j = 0; j < nops / 2; j++) {
      int i = rand() % count, key = rand() % 60;
      op(&ts[i], key, rand() % 4 == 0 ? -1 : rand() % 1000);
    }
    /* the same keys on both sides of the cut, then deletes and re-adds */
    for (int key = 0; key < 10; key++) op(&ts[x], key, 5000 + key), op(&ts[0], key, 6000 + key);
    for (int key = 10; key < 15; key++) op(&ts[x], key, -1), op(&ts[1], key, 7000 + key);
    on[x] = true;
    for (int i = 0; i < count; i++) neighbours(ts, count, i, on);
  }
  size_t nkeys = 0;
  long ms = converge(ts, count, 15000, &nkeys);
  print_message("  %d nodes: converged in %ld ms (%ld sync intervals), %zu keys\n", count, ms, ms / SYNC_MS, nkeys);
  assert_true(ms >= 0);
  assert_true(ms / SYNC_MS <= 40);
  if (cut) {
    /* LWW across the cut: node x was written after node 0 for keys 0..9 only in call order, but Ts is each
     * node's own uptime clock: the winner is whichever entry has the larger Ts, the same on every node. */
    cn_term *r = call(&ts[0], cn_mk_atomc(ts[0].n, "read"));
    assert_true(r->v.map.size > 0);
    cn_term_free(r);
  }
  for (int i = 0; i < count; i++) tnode_stop(&ts[i]);
}

static void test_three_nodes(void **st) {
  (void)st;
  run_cluster(3, 300, true);
}
static void test_five_nodes(void **st) {
  (void)st;
  run_cluster(5, 500, true);
}

/* ---- The delta of a sync round ------------------------------------------------------------------------------- */

/* What the scripted peer 'p.Crdt' received (copies), under the tnode's lock. */
static cn_term *sniffed[16];
static int nsniffed;

static void sniffer(cn_proc *self, const cn_term *msg, void *state) {
  (void)self;
  tnode *t = state;
  pthread_mutex_lock(&t->mu);
  if (nsniffed < 16) sniffed[nsniffed++] = cn_term_copy(msg);
  pthread_cond_broadcast(&t->cv);
  pthread_mutex_unlock(&t->mu);
}

static bool sniffed_n(tnode *t, const void *n) {
  (void)t;
  return nsniffed >= *(const int *)n;
}

/* The message the peer got n-th (1-based), once it came: {diff, Diff} or {diff, Delta, Keys}. */
static const cn_term *sniffed_at(tnode *t, int n, uint32_t arity) {
  assert_true(tnode_wait(t, sniffed_n, &n));
  const cn_term *m = sniffed[n - 1];
  assert_true(m->type == CN_TUPLE && m->v.tuple.arity == arity && cn_is_atom(&m->v.tuple.e[0], "diff"));
  return m;
}

/* A node `name` running 't.Crdt' with its sync timer set to an hour (rounds start on :sync only), and with
 * `sniff` the scripted peer 'p.Crdt' (sniffer) beside it. */
static void single_up_shape(tnode *t, const char *name, bool sniff, int shape) {
  cn_node_opts o = {.name = name, .cookie = "secret", .epmd_port = test_epmd_port, .listen_addr = "127.0.0.1"};
  tnode_new(t, &o);
  cn_crdt_opts co = {.sync_interval_ms = 3600 * 1000, .mapset_shape = shape};
  cn_crdt *crdt;
  assert_int_equal(cn_crdt_start(t->n, "t", &co, &crdt), 0);
  if (sniff) tnode_spawn_named(t, "p.Crdt", sniffer, t);
  tnode_run_ready(t);
}

static void single_up(tnode *t, const char *name, bool sniff) { single_up_shape(t, name, sniff, CN_CRDT_MAPSET_AUTO); }

/* The peer's answer to the round of Diff d: {get_diff, D', Keys} with from and to swapped (as B sends it). */
static cn_term *get_diff(cn_node *n, const cn_term *d, cn_term *keys) {
  size_t k = d->v.map.size;
  cn_term **kv = cn_calloc(2 * k + 1, sizeof *kv);
  assert_non_null(kv);
  for (size_t i = 0; i < k; i++) {
    const cn_term *key = &d->v.map.kv[2 * i];
    const char *other = cn_is_atom(key, "from") ? "to" : cn_is_atom(key, "to") ? "from" : NULL;
    kv[2 * i] = cn_term_copy(key);
    kv[2 * i + 1] = cn_term_copy(other ? hc_map_get(d, other) : &d->v.map.kv[2 * i + 1]);
  }
  cn_term *swapped = cn_mk_map(k, kv);
  cn_free(kv);
  return cn_mk_tuple(3, cn_mk_atomc(n, "get_diff"), swapped, keys);
}

static cn_term *key_of(cn_node *n, int key) { return cn_mk_tuple(2, cn_mk_atomc(n, "key"), cn_mk_int(key)); }

/* Every dot of every entry of the delta is covered by its own version vector. */
static void delta_consistent(const cn_term *delta) {
  hc_vv vv;
  assert_int_equal(hc_vv_parse(hc_map_get(delta, "dots"), &vv), 0);
  const cn_term *val = hc_map_get(delta, "value");
  for (uint32_t i = 0; i < val->v.map.size; i++) {
    const cn_term *entries = &val->v.map.kv[2 * i + 1];
    for (uint32_t j = 0; j < entries->v.map.size; j++) {
      hc_dot *d;
      size_t nd;
      assert_int_equal(hc_parse_dotset(&entries->v.map.kv[2 * j + 1], &d, &nd), 0);
      for (size_t x = 0; x < nd; x++) assert_true(d[x].n <= hc_vv_get(&vv, d[x].id));
      cn_free(d);
    }
  }
  hc_vv_free(&vv);
}

/* Key k's value in a delta, or -1 when the delta has no entry for it. */
static int64_t delta_val(const cn_term *delta, cn_node *n, int key) {
  cn_term *k = key_of(n, key);
  const cn_term *raw = hc_map_find(hc_map_get(delta, "value"), k, 0);
  cn_term_free(k);
  const cn_term *v = raw ? hc_read_raw(raw) : NULL;
  return v ? v->v.i : -1;
}

static bool has_key(const cn_term *keys, cn_node *n, int key) {
  cn_term *k = key_of(n, key);
  bool found = false;
  for (uint32_t i = 0; keys->type == CN_LIST && i < keys->v.list.len; i++)
    found |= cn_term_exact_eq(&keys->v.list.e[i], k);
  cn_term_free(k);
  return found;
}

/* A round starts (its Diff carries the version vector of that moment); then key 1 is written again here and a
 * peer's concurrent write of key 3 (another node's dot) is merged; then the peer asks for key 2 only. The delta
 * carries the current version vector and, besides key 2, keys 1 and 3, changed since the round began: every
 * dot it carries is covered by its vector (pitfall 19), and the vector covers no dot it leaves out (a receiver
 * would count key 3's write as seen without having it). The next round, with nothing changed, sends what is
 * asked only. */
static void test_round_delta_consistent(void **st) {
  (void)st;
  tnode t;
  single_up(&t, "crdtd@127.0.0.1", true);
  cn_node *n = t.n;
  hc_ctx hc;
  assert_int_equal(hc_ctx_init(&hc, cn_node_atoms(n), HC_MAPSET_V2), 0);
  op(&t, 1, 100);
  op(&t, 2, 200);
  op(&t, 3, 300);
  /* set_neighbours starts round 1 at once */
  cn_term *nb = cn_mk_list(1, cn_mk_tuple(2, cn_mk_atomc(n, "p.Crdt"), cn_mk_atomc(n, t.name)));
  assert_int_equal(cn_send_threadsafe(n, NULL, "t.Crdt", NULL, cn_mk_tuple(2, cn_mk_atomc(n, "set_neighbours"), nb)),
                   0);
  const cn_term *d1 = &sniffed_at(&t, 1, 2)->v.tuple.e[1];
  op(&t, 1, 101);
  /* node 777's write of key 3, concurrent with ours and older: our read stays 300 */
  hc_dot pd = {777, 1};
  cn_term *ent =
      cn_mk_map(1, (cn_term *[]){cn_mk_tuple(2, cn_mk_int(333), cn_mk_int(INT64_MIN / 2)), hc_mk_dotset(&hc, &pd, 1)});
  const cn_atom *f[] = {hc.a_dots, hc.a_value};
  cn_term *v[] = {cn_mk_map(1, (cn_term *[]){cn_mk_int(777), cn_mk_int(1)}),
                  cn_mk_map(1, (cn_term *[]){key_of(n, 3), ent})};
  cn_term *pdelta =
      cn_mk_tuple(3, cn_mk_atomc(n, "diff"), hc_mk_struct(&hc, hc.a_awlww, 2, f, v), cn_mk_list(1, key_of(n, 3)));
  assert_int_equal(cn_send_threadsafe(n, NULL, "t.Crdt", NULL, pdelta), 0);
  cn_term *req = get_diff(n, d1, cn_mk_list(1, key_of(n, 2)));
  assert_int_equal(cn_send_threadsafe(n, NULL, "t.Crdt", NULL, req), 0);
  const cn_term *m = sniffed_at(&t, 2, 3), *delta = &m->v.tuple.e[1], *keys = &m->v.tuple.e[2];
  delta_consistent(delta);
  assert_true(keys->type == CN_LIST && keys->v.list.len == 3);
  for (int k = 1; k <= 3; k++) assert_true(has_key(keys, n, k));
  assert_int_equal(delta_val(delta, n, 1), 101);
  assert_int_equal(delta_val(delta, n, 2), 200);
  assert_int_equal(delta_val(delta, n, 3), 300);
  cn_term *k3 = key_of(n, 3);
  assert_int_equal(hc_map_find(hc_map_get(delta, "value"), k3, 0)->v.map.size, 2); /* both writes of key 3 */
  cn_term_free(k3);
  hc_vv vv;
  assert_int_equal(hc_vv_parse(hc_map_get(delta, "dots"), &vv), 0);
  assert_int_equal(hc_vv_get(&vv, 777), 1);
  hc_vv_free(&vv);
  /* round 2 (a sync tick), nothing written since: only what is asked */
  assert_int_equal(cn_send_threadsafe(n, NULL, "t.Crdt", NULL, cn_mk_atomc(n, "sync")), 0);
  const cn_term *d2 = &sniffed_at(&t, 3, 2)->v.tuple.e[1];
  assert_int_equal(cn_send_threadsafe(n, NULL, "t.Crdt", NULL, get_diff(n, d2, cn_mk_list(1, key_of(n, 2)))), 0);
  m = sniffed_at(&t, 4, 3);
  delta_consistent(&m->v.tuple.e[1]);
  keys = &m->v.tuple.e[2];
  assert_true(keys->type == CN_LIST && keys->v.list.len == 1 && has_key(keys, n, 2));
  /* a Diff whose vector is no tick of ours: every key with a dot beyond it (here: all) */
  size_t dk = d2->v.map.size;
  cn_term **kv = cn_calloc(2 * dk + 1, sizeof *kv);
  assert_non_null(kv);
  for (size_t i = 0; i < dk; i++) {
    const cn_term *key = &d2->v.map.kv[2 * i];
    kv[2 * i] = cn_term_copy(key);
    kv[2 * i + 1] = cn_is_atom(key, "dots") ? cn_mk_map(0, NULL) : cn_term_copy(&d2->v.map.kv[2 * i + 1]);
  }
  cn_term *d3 = cn_mk_map(dk, kv);
  cn_free(kv);
  cn_term *forged = get_diff(n, d3, cn_mk_nil());
  cn_term_free(d3);
  assert_int_equal(cn_send_threadsafe(n, NULL, "t.Crdt", NULL, forged), 0);
  m = sniffed_at(&t, 5, 3);
  delta_consistent(&m->v.tuple.e[1]);
  assert_int_equal(m->v.tuple.e[2].v.list.len, 3);
  tnode_stop(&t);
  for (int i = 0; i < nsniffed; i++) cn_term_free(sniffed[i]);
  nsniffed = 0;
}

/* {diff, #AWLWWMap{dots => #{777 => Vv}, value => #{{key, K} => #{{V, Ts} => {777, Dot}}}}, Keys}: a delta of node
 * 777 for the keys ks (count n), key ks[i] carrying value vs[i] at dot ds[i] (ds[i] 0: no entry, deleted there). */
static cn_term *peer_delta(cn_node *n, const hc_ctx *hc, int64_t vv, int n_, const int *ks, const int *vs,
                           const int64_t *ds) {
  cn_term *kv[16], *keys[8];
  int k = 0;
  for (int i = 0; i < n_; i++) {
    keys[i] = key_of(n, ks[i]);
    if (!ds[i]) continue;
    hc_dot d = {777, ds[i]};
    kv[2 * k] = key_of(n, ks[i]);
    kv[2 * k + 1] = cn_mk_map(
        1, (cn_term *[]){cn_mk_tuple(2, cn_mk_int(vs[i]), cn_mk_int(INT64_MIN / 2 + ds[i])), hc_mk_dotset(hc, &d, 1)});
    k++;
  }
  const cn_atom *f[] = {hc->a_dots, hc->a_value};
  cn_term *v[] = {cn_mk_map(1, (cn_term *[]){cn_mk_int(777), cn_mk_int(vv)}), cn_mk_map(k, kv)};
  return cn_mk_tuple(3, cn_mk_atomc(n, "diff"), hc_mk_struct(hc, hc->a_awlww, 2, f, v), cn_mk_listv(n_, keys, NULL));
}

/* Key k's value in the CRDT's read, or -1 when it has none. */
static int64_t read_val(tnode *t, int key) {
  cn_term *r = call(t, cn_mk_atomc(t->n, "read")), *k = key_of(t->n, key);
  const cn_term *v = hc_map_find(r, k, 0);
  int64_t x = v && v->type == CN_INT ? v->v.i : -1;
  cn_term_free(k);
  cn_term_free(r);
  return x;
}

/* A BEAM peer's delta carries its vector from the start of the round with the current values (pitfall 19), so a
 * key written there after the round began arrives with a dot beyond the vector that comes with it. Node 777 holds
 * keys 1 and 2 (dots 1, 2); its round starts (vector 2); it writes key 1 (dot 3) and key 2 (dot 4), and its delta
 * for key 2 only (key 1's subtree was compared before the write) has vector 2 and key 2 at dot 4. Then this node
 * writes key 2, and node 777's next round (vector 4) brings key 1 at dot 3: this node never saw dot 3 and nobody
 * removed key 1, so key 1 must read 11. delta_crdt folds dot 4 into its vector at the write of key 2 (§2.3), counts
 * dot 3 as seen, and the join drops key 1 (the keys crdt_suite changes_both_sides lost under load). This node keeps
 * dot 4 out of its vector (dots_withheld, dots_pending) until node 777's vector covers it; node 777 still holding
 * key 2 at dot 4 (the vector this node sent did not cover it) does not bring it back. docs/crdt.md. */
static int64_t stat_of(tnode *t, const char *name) {
  cn_term *r = call(t, cn_mk_atomc(t->n, "stats"));
  const cn_term *v = hc_map_get(r, name);
  int64_t x = v && v->type == CN_INT ? v->v.i : -1;
  cn_term_free(r);
  return x;
}

static void test_write_after_early_delta(void **st) {
  (void)st;
  tnode t;
  single_up(&t, "crdte@127.0.0.1", false);
  cn_node *n = t.n;
  hc_ctx hc;
  assert_int_equal(hc_ctx_init(&hc, cn_node_atoms(n), HC_MAPSET_V2), 0);
  int ks[] = {1, 2};
  cn_term *m = peer_delta(n, &hc, 2, 2, ks, (int[]){10, 20}, (int64_t[]){1, 2});
  assert_int_equal(cn_send_threadsafe(n, NULL, "t.Crdt", NULL, m), 0);
  assert_int_equal(read_val(&t, 1), 10);
  m = peer_delta(n, &hc, 2, 1, (int[]){2}, (int[]){21}, (int64_t[]){4});
  assert_int_equal(cn_send_threadsafe(n, NULL, "t.Crdt", NULL, m), 0);
  op(&t, 2, 99);
  assert_int_equal(read_val(&t, 2), 99);
  assert_int_equal(stat_of(&t, "dots_withheld"), 1);
  assert_int_equal(stat_of(&t, "dots_pending"), 1);
  m = peer_delta(n, &hc, 4, 2, ks, (int[]){11, 21}, (int64_t[]){3, 4});
  assert_int_equal(cn_send_threadsafe(n, NULL, "t.Crdt", NULL, m), 0);
  assert_int_equal(read_val(&t, 1), 11);
  assert_int_equal(read_val(&t, 2), 99);
  assert_int_equal(stat_of(&t, "dots_pending"), 0);
  tnode_stop(&t);
}

/* A peer starts a round every tick without waiting (pitfall 18). First rounds from one originator that queue up
 * behind each other are not all answered: the newest waits behind a marker, an older waiting one is skipped. Every
 * round is either answered (here: equal trees, so an ack_diff to the originator) or counted in rounds_skipped,
 * and never both; how many queue up depends on the loop, so only that sum is fixed. */
static bool acks_n(tnode *t, const void *n) {
  (void)t;
  int k = 0;
  for (int i = 0; i < nsniffed; i++) k += cn_is_atom(cn_tuple_elem(sniffed[i], 2, 0), "ack_diff");
  return k >= *(const int *)n;
}

static void test_first_rounds_coalesce(void **st) {
  (void)st;
  tnode t;
  single_up(&t, "crdtr@127.0.0.1", true);
  cn_node *n = t.n;
  op(&t, 1, 100);
  cn_term *nb = cn_mk_list(1, cn_mk_tuple(2, cn_mk_atomc(n, "p.Crdt"), cn_mk_atomc(n, t.name)));
  assert_int_equal(cn_send_threadsafe(n, NULL, "t.Crdt", NULL, cn_mk_tuple(2, cn_mk_atomc(n, "set_neighbours"), nb)),
                   0);
  /* its own first round, turned into the peer's: originator and from 'p.Crdt', to 't.Crdt' */
  const cn_term *d1 = &sniffed_at(&t, 1, 2)->v.tuple.e[1];
  size_t k = d1->v.map.size;
  cn_term **kv = cn_calloc(2 * k + 1, sizeof *kv);
  assert_non_null(kv);
  for (size_t i = 0; i < k; i++) {
    const cn_term *key = &d1->v.map.kv[2 * i];
    bool peer = cn_is_atom(key, "originator") || cn_is_atom(key, "from"), me = cn_is_atom(key, "to");
    kv[2 * i] = cn_term_copy(key);
    kv[2 * i + 1] = peer ? cn_mk_tuple(2, cn_mk_atomc(n, "p.Crdt"), cn_mk_atomc(n, t.name))
                    : me ? cn_mk_tuple(2, cn_mk_atomc(n, "t.Crdt"), cn_mk_atomc(n, t.name))
                         : cn_term_copy(&d1->v.map.kv[2 * i + 1]);
  }
  cn_term *d = cn_mk_map(k, kv);
  cn_free(kv);
  enum { ROUNDS_SENT = 12 };
  for (int i = 0; i < ROUNDS_SENT; i++)
    assert_int_equal(
        cn_send_threadsafe(n, NULL, "t.Crdt", NULL, cn_mk_tuple(2, cn_mk_atomc(n, "diff"), cn_term_copy(d))), 0);
  cn_term_free(d);
  /* calls: the rounds, then the markers they left, are handled before the last answers */
  for (int i = 0; i < 3; i++) cn_term_free(call(&t, cn_mk_atomc(n, "root_hash")));
  int64_t skipped = stat_of(&t, "rounds_skipped");
  int answered = ROUNDS_SENT - (int)skipped;
  assert_true(skipped >= 0 && answered >= 1);
  assert_true(tnode_wait(&t, acks_n, &answered));
  sleep_ms(50);
  int acks = 0;
  pthread_mutex_lock(&t.mu);
  for (int i = 0; i < nsniffed; i++) acks += cn_is_atom(cn_tuple_elem(sniffed[i], 2, 0), "ack_diff");
  pthread_mutex_unlock(&t.mu);
  print_message("  %d first rounds queued: %d answered, %lld skipped\n", ROUNDS_SENT, acks, (long long)skipped);
  assert_int_equal(acks + skipped, ROUNDS_SENT);
  assert_int_equal(stat_of(&t, "bad_messages"), 0);
  tnode_stop(&t);
  for (int i = 0; i < nsniffed; i++) cn_term_free(sniffed[i]);
  nsniffed = 0;
}

/* A CRDT that cannot take its name is not started: cn_crdt_start returns CN_EEXIST and the process it made ends
 * without calling on_stop, which a caller has no use for after the error (a Horde member's start freed its state
 * on the error, then its crdt_stopped ran on it when the process ended). */
static int stops;
static void count_stop(cn_crdt *c, void *ctx) {
  (void)c, (void)ctx;
  stops++;
}

static void test_start_name_taken(void **st) {
  (void)st;
  cn_node *n;
  cn_node_opts o = {.name = "crdtn@127.0.0.1", .cookie = "secret", .log_level = CN_LOG_ERROR};
  assert_int_equal(cn_node_new(&n, NULL, &o), 0);
  cn_crdt_opts co = {.on_stop = count_stop};
  cn_crdt *first, *second = NULL;
  assert_int_equal(cn_crdt_start(n, "t", &co, &first), 0);
  assert_int_equal(cn_crdt_start(n, "t", &co, &second), CN_EEXIST);
  assert_null(second);
  cn_crdt_opts bad = {.mapset_shape = CN_CRDT_MAPSET_PLAIN + 1};
  assert_int_equal(cn_crdt_start(n, "u", &bad, &second), CN_EINVAL); /* not a shape */
  bad.mapset_shape = -1;
  assert_int_equal(cn_crdt_start(n, "u", &bad, &second), CN_EINVAL);
  assert_null(second);
  for (int i = 0; i < 20; i++) uv_run(cn_node_loop(n), UV_RUN_NOWAIT);
  assert_int_equal(stops, 0);
  cn_node_free(n); /* the first one stops with the node */
  assert_int_equal(stops, 1);
}

/* The CRDT is a gen_server, but no cast is part of delta_crdt's protocol: a cast is dropped and counted as a bad
 * message, as every message without a clause is; a call it does not know gets {error, unknown_call}. */
static void test_cast_is_bad_message(void **st) {
  (void)st;
  cn_node *n;
  cn_node_opts o = {.name = "crdtc@127.0.0.1", .cookie = "secret", .log_level = CN_LOG_ERROR};
  assert_int_equal(cn_node_new(&n, NULL, &o), 0);
  cn_crdt *c;
  assert_int_equal(cn_crdt_start(n, "c", NULL, &c), 0);
  cn_term *srv = cn_mk_atomc(n, "c.Crdt"), *req = cn_mk_tuple(2, cn_mk_atomc(n, "operation"), cn_mk_nil());
  assert_int_equal(cn_cast(n, NULL, srv, req), 0);
  for (int i = 0; i < 20; i++) uv_run(cn_node_loop(n), UV_RUN_NOWAIT);
  cn_crdt_stats s;
  cn_crdt_get_stats(c, &s);
  assert_int_equal(s.bad_messages, 1);
  assert_int_equal(s.msgs_received, 2); /* the cast and the first :sync */
  assert_true(s.synced);                /* that sync found no neighbour to wait for */
  cn_term_free(srv);
  cn_term_free(req);
  cn_node_free(n);
}

/* True when every dot set of the delta's entries has shape `shape` (and there is at least one). */
static bool delta_shape_is(const cn_term *delta, int shape) {
  const cn_term *val = hc_map_get(delta, "value");
  size_t n = 0;
  for (uint32_t i = 0; i < val->v.map.size; i++) {
    const cn_term *entries = &val->v.map.kv[2 * i + 1];
    for (uint32_t j = 0; j < entries->v.map.size; j++, n++)
      if (hc_mapset_shape(&entries->v.map.kv[2 * j + 1]) != shape) return false;
  }
  return n > 0;
}

/* The MapSet shape the CRDT's stats call reports: "v2" or "plain". */
static bool stats_shape_is(tnode *t, const char *want) {
  cn_term *r = call(t, cn_mk_atomc(t->n, "stats"));
  bool ok = cn_is_atom(hc_map_get(r, "mapset"), want);
  cn_term_free(r);
  return ok;
}

/* The next round's delta for keys 1 and 2 (the n-th message the peer gets is the round's Diff). */
static const cn_term *round_delta(tnode *t, int n) {
  cn_node *nd = t->n;
  assert_int_equal(cn_send_threadsafe(nd, NULL, "t.Crdt", NULL, cn_mk_atomc(nd, "sync")), 0);
  const cn_term *d = &sniffed_at(t, n, 2)->v.tuple.e[1];
  cn_term *req = get_diff(nd, d, cn_mk_list(2, key_of(nd, 1), key_of(nd, 2)));
  assert_int_equal(cn_send_threadsafe(nd, NULL, "t.Crdt", NULL, req), 0);
  return &sniffed_at(t, n + 1, 3)->v.tuple.e[1];
}

/* Without a mapset option the CRDT follows the MapSet shape its peers' deltas carry: V2 (Elixir <= 1.14) before
 * any, then the first delta's shape (1.15+ here), and its own entries are rewritten in it; the other shape is
 * followed again only after HC_SHAPE_SWITCH deltas in a row carry it. A CRDT given a shape keeps it. */
static void test_mapset_shape_followed(void **st) {
  (void)st;
  tnode t;
  single_up(&t, "crdtm@127.0.0.1", true);
  cn_node *n = t.n;
  hc_ctx v2, plain;
  assert_int_equal(hc_ctx_init(&v2, cn_node_atoms(n), HC_MAPSET_V2), 0);
  assert_int_equal(hc_ctx_init(&plain, cn_node_atoms(n), HC_MAPSET_PLAIN), 0);
  op(&t, 1, 100);
  cn_term *nb = cn_mk_list(1, cn_mk_tuple(2, cn_mk_atomc(n, "p.Crdt"), cn_mk_atomc(n, t.name)));
  assert_int_equal(cn_send_threadsafe(n, NULL, "t.Crdt", NULL, cn_mk_tuple(2, cn_mk_atomc(n, "set_neighbours"), nb)),
                   0);
  const cn_term *d1 = &sniffed_at(&t, 1, 2)->v.tuple.e[1];
  assert_int_equal(cn_send_threadsafe(n, NULL, "t.Crdt", NULL, get_diff(n, d1, cn_mk_list(1, key_of(n, 1)))), 0);
  assert_true(delta_shape_is(&sniffed_at(&t, 2, 3)->v.tuple.e[1], HC_MAPSET_V2));
  assert_true(stats_shape_is(&t, "v2"));
  /* node 777's delta in the shape of Elixir 1.15+: followed at once, key 1 rewritten */
  int k2[] = {2};
  cn_term *m = peer_delta(n, &plain, 1, 1, k2, (int[]){20}, (int64_t[]){1});
  assert_int_equal(cn_send_threadsafe(n, NULL, "t.Crdt", NULL, m), 0);
  assert_true(stats_shape_is(&t, "plain"));
  const cn_term *d = round_delta(&t, 3);
  assert_int_equal(hc_map_get(d, "value")->v.map.size, 2);
  assert_true(delta_shape_is(d, HC_MAPSET_PLAIN));
  assert_int_equal(read_val(&t, 1), 100);
  assert_int_equal(read_val(&t, 2), 20);
  /* V2 deltas: one short of the switch keeps plain (a plain one between starts the count again) */
  for (int i = 1; i < HC_SHAPE_SWITCH; i++) {
    m = peer_delta(n, &v2, 1 + i, 1, k2, (int[]){20 + i}, (int64_t[]){1 + i});
    assert_int_equal(cn_send_threadsafe(n, NULL, "t.Crdt", NULL, m), 0);
  }
  assert_true(stats_shape_is(&t, "plain"));
  m = peer_delta(n, &v2, 1 + HC_SHAPE_SWITCH, 1, k2, (int[]){20 + HC_SHAPE_SWITCH}, (int64_t[]){1 + HC_SHAPE_SWITCH});
  assert_int_equal(cn_send_threadsafe(n, NULL, "t.Crdt", NULL, m), 0);
  assert_true(stats_shape_is(&t, "v2"));
  d = round_delta(&t, 5);
  assert_true(delta_shape_is(d, HC_MAPSET_V2));
  assert_int_equal(read_val(&t, 2), 20 + HC_SHAPE_SWITCH);
  tnode_stop(&t);
  for (int i = 0; i < nsniffed; i++) cn_term_free(sniffed[i]);
  nsniffed = 0;
  /* mapset given: plain deltas change nothing */
  single_up_shape(&t, "crdtm2@127.0.0.1", false, CN_CRDT_MAPSET_V2);
  n = t.n;
  assert_int_equal(hc_ctx_init(&plain, cn_node_atoms(n), HC_MAPSET_PLAIN), 0); /* this node's atoms */
  for (int i = 1; i <= 2 * HC_SHAPE_SWITCH; i++) {
    m = peer_delta(n, &plain, i, 1, k2, (int[]){i}, (int64_t[]){i});
    assert_int_equal(cn_send_threadsafe(n, NULL, "t.Crdt", NULL, m), 0);
  }
  assert_int_equal(read_val(&t, 2), 2 * HC_SHAPE_SWITCH);
  assert_true(stats_shape_is(&t, "v2"));
  tnode_stop(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_start_name_taken),
      cmocka_unit_test(test_cast_is_bad_message),
      cmocka_unit_test(test_round_delta_consistent),
      cmocka_unit_test(test_write_after_early_delta),
      cmocka_unit_test(test_first_rounds_coalesce),
      cmocka_unit_test(test_mapset_shape_followed),
      cmocka_unit_test(test_three_nodes),
      cmocka_unit_test(test_five_nodes),
  };
  return cmocka_run_group_tests(tests, test_epmd_group_setup, test_epmd_group_teardown);
}
