/* test_awlww.c: delta_crdt's AWLWWMap in C: add/remove deltas, the join rules of §2.4 (add wins, removes seen
 * through the sender's version vector, overlapping and stale deltas), the LWW read and its tie rule, MapSet
 * shapes, and joins of captured BEAM deltas. */
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cnode.h"
#include "hc_int.h"
#include "testutil.h"

static cn_atoms *tab;
static hc_ctx hc;

static int setup(void **st) {
  (void)st;
  return cn_atoms_new(&tab, 0) || hc_ctx_init(&hc, tab, HC_MAPSET_V2) ? -1 : 0;
}
static int teardown(void **st) {
  (void)st;
  cn_atoms_free(tab);
  return 0;
}
static cn_term *A(const char *s) { return cn_mk_atom(cn_atoms_get(tab, s)); }

/* A replica: state plus node id, with add/remove applied as a CRDT process does. */
typedef struct rep {
  hc_awlww s;
  int64_t id;
} rep;

static void put(rep *r, const cn_term *k, int v, int64_t ts) {
  uint32_t kh = hc_key_hash(k);
  cn_term *val = cn_mk_int(v), *raw;
  assert_int_equal(hc_awlww_add(&hc, &r->s, r->id, k, kh, val, ts, &raw), 0);
  assert_int_equal(hc_awlww_set(&r->s, k, kh, raw), 0);
  cn_term_free(val);
}
static void rem(rep *r, const cn_term *k) {
  uint32_t kh = hc_key_hash(k);
  assert_int_equal(hc_awlww_remove(&r->s, k, kh), 0);
  assert_int_equal(hc_awlww_set(&r->s, k, kh, NULL), 0);
}
/* Sends key k from a to b the way a sync does: the vector `then` (a BEAM round's start: pitfall 19) with a's
 * current entries. */
static void ship_with(rep *a, rep *b, const cn_term *k, const hc_vv *then) {
  uint32_t kh = hc_key_hash(k);
  hc_kent *ea = hc_awlww_find(&a->s, k, kh), *eb = hc_awlww_find(&b->s, k, kh);
  hc_vv old;
  assert_int_equal(hc_vv_copy(&old, &b->s.vv), 0);
  assert_int_equal(hc_vv_union(&b->s.vv, then), 0);
  cn_term *r;
  assert_int_equal(hc_join_entries(&hc, eb ? eb->raw : NULL, ea ? ea->raw : NULL, &old, &b->s.gone, then, &r), 0);
  assert_int_equal(hc_awlww_set(&b->s, k, kh, r), 0);
  assert_int_equal(hc_awlww_settle(&b->s, true), 0);
  hc_vv_free(&old);
}
/* ... with a's current vector. */
static void ship(rep *a, rep *b, const cn_term *k) { ship_with(a, b, k, &a->s.vv); }
static const cn_term *get(rep *r, const cn_term *k) {
  hc_kent *e = hc_awlww_find(&r->s, k, hc_key_hash(k));
  return e ? hc_read_raw(e->raw) : NULL;
}
static int nentries(rep *r, const cn_term *k) {
  hc_kent *e = hc_awlww_find(&r->s, k, hc_key_hash(k));
  return e ? (int)e->raw->v.map.size : 0;
}

static void test_add_remove_join(void **st) {
  (void)st;
  rep a = {.id = 11}, b = {.id = 22};
  cn_term *k = A("k");
  put(&a, k, 1, -100);
  assert_int_equal(hc_vv_get(&a.s.vv, 11), 1);
  ship(&a, &b, k);
  assert_int_equal(get(&b, k)->v.i, 1);
  /* concurrent writes: both entries survive (add wins), the larger Ts is read everywhere */
  put(&a, k, 2, -50);
  put(&b, k, 3, -60);
  ship(&a, &b, k);
  ship(&b, &a, k);
  assert_int_equal(nentries(&a, k), 2);
  assert_int_equal(nentries(&b, k), 2);
  assert_int_equal(get(&a, k)->v.i, 2);
  assert_int_equal(get(&b, k)->v.i, 2);
  /* a removes: the remove travels as a's version vector covering the dots */
  rem(&a, k);
  assert_null(get(&a, k));
  ship(&a, &b, k);
  assert_null(get(&b, k));
  assert_null(hc_awlww_find(&b.s, k, hc_key_hash(k)));
  /* a stale delta (b's view from before) does not bring it back */
  ship(&b, &a, k);
  assert_null(get(&a, k));
  /* re-add after remove */
  put(&b, k, 4, -10);
  ship(&b, &a, k);
  assert_int_equal(get(&a, k)->v.i, 4);
  /* remove concurrent with an add: the add wins */
  rem(&a, k);
  put(&b, k, 5, -5);
  ship(&a, &b, k);
  ship(&b, &a, k);
  assert_int_equal(get(&a, k)->v.i, 5);
  assert_int_equal(get(&b, k)->v.i, 5);
  cn_term_free(k);
  hc_awlww_free(&a.s);
  hc_awlww_free(&b.s);
}

/* Ties on Ts: the smallest entry key in term order wins (Enum.max_by over a small map). */
/* Entries ahead of the vector they came with (pitfall 19), then a local write of one of those keys. a (node 11)
 * writes k1, k2 (dots 1, 2), b has them; a's round starts (vector 11:2), a writes k3 (dot 3) and k2 (dot 4), and
 * b gets k2 at dot 4 with vector 11:2. b's write of k2 takes dot 4 out of k2: delta_crdt puts it in b's vector,
 * which then covers dot 3 (k3, never received), and the next join drops k3. Here dot 4 stays out (gone) until a
 * vector covers it, and a gone dot is not taken back from a peer. When b holds dot 3 too (k3 came early as well),
 * nothing is withheld: b's vector covers 3 and 4, as delta_crdt's. */
static void test_write_after_early_entries(void **st) {
  (void)st;
  cn_term *k1 = A("k1"), *k2 = A("k2"), *k3 = A("k3");
  for (int held = 0; held < 2; held++) {
    rep a = {.id = 11}, b = {.id = 22};
    put(&a, k1, 1, -100);
    put(&a, k2, 2, -99);
    ship(&a, &b, k1);
    ship(&a, &b, k2);
    hc_vv then;
    assert_int_equal(hc_vv_copy(&then, &a.s.vv), 0);
    put(&a, k3, 3, -98);
    put(&a, k2, 4, -97);
    if (held) ship_with(&a, &b, k3, &then);
    ship_with(&a, &b, k2, &then);
    assert_int_equal(get(&b, k2)->v.i, 4);
    put(&b, k2, 5, -200); /* b's clock is behind a's: a resurrected dot 4 would win the read */
    assert_int_equal(hc_vv_get(&b.s.vv, 11), held ? 4 : 2);
    assert_int_equal(b.s.gone.n, held ? 0 : 1);
    assert_int_equal(b.s.withheld, held ? 0 : 1);
    /* a's next round: k3 arrives, its vector covers dot 4, and a's k2 at dot 4 stays removed */
    ship(&a, &b, k3);
    assert_non_null(get(&b, k3));
    assert_int_equal(get(&b, k3)->v.i, 3);
    assert_int_equal(b.s.gone.n, 0);
    ship(&a, &b, k2);
    assert_int_equal(get(&b, k2)->v.i, 5);
    assert_int_equal(nentries(&b, k2), 1);
    /* and a takes b's write of k2 over its own */
    ship(&b, &a, k2);
    assert_int_equal(get(&a, k2)->v.i, 5);
    assert_int_equal(nentries(&a, k2), 1);
    hc_vv_free(&then);
    hc_awlww_free(&a.s);
    hc_awlww_free(&b.s);
  }
  cn_term_free(k1);
  cn_term_free(k2);
  cn_term_free(k3);
}

static void test_lww_tie(void **st) {
  (void)st;
  hc_dot d1 = {1, 1}, d2 = {2, 1};
  cn_term *kv[] = {cn_mk_tuple(2, A("zeta"), cn_mk_int(7)), hc_mk_dotset(&hc, &d1, 1),
                   cn_mk_tuple(2, A("alpha"), cn_mk_int(7)), hc_mk_dotset(&hc, &d2, 1)};
  cn_term *raw = cn_mk_map(2, kv);
  assert_true(cn_is_atom(hc_read_raw(raw), "alpha"));
  cn_term_free(raw);
}

/* Both MapSet shapes read back; the hash of the spec's example set matches. */
static void test_mapset_shapes(void **st) {
  (void)st;
  hc_dot d = {62301994, 1};
  cn_term *s = hc_mk_dotset(&hc, &d, 1);
  assert_int_equal(cn_phash2_range(s, 1ULL << 32), 2629387451u);
  hc_ctx h2 = hc;
  h2.mapset_shape = HC_MAPSET_PLAIN;
  cn_term *p = hc_mk_dotset(&h2, &d, 1);
  assert_int_equal(cn_phash2_range(p, 1ULL << 32), 3750184019u);
  hc_dot *o;
  size_t n;
  assert_int_equal(hc_parse_dotset(p, &o, &n), 0);
  assert_int_equal(n, 1);
  assert_true(o[0].id == d.id && o[0].n == 1);
  cn_free(o);
  cn_term_free(s);
  cn_term_free(p);
}

/* Every captured delta {diff, AWLWWMap, Keys} joins into an empty state, giving back its own values (a
 * receiver that has seen nothing keeps every entry the sender holds). */
static void test_vector_deltas(void **st) {
  (void)st;
  char pat[512];
  snprintf(pat, sizeof pat, "%s/horde/*/*diff_delta.etf", vectors_dir());
  glob_t g;
  assert_int_equal(glob(pat, 0, NULL, &g), 0);
  static uint8_t buf[1 << 20];
  size_t n = 0, beyond = 0;
  for (size_t i = 0; i < g.gl_pathc; i++) {
    FILE *f = fopen(g.gl_pathv[i], "rb");
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    cn_term *msg;
    assert_int_equal(cn_term_from_binary(tab, buf, len, NULL, &msg), 0);
    const cn_term *delta = &msg->v.tuple.e[1], *keys = &msg->v.tuple.e[2];
    assert_true(hc_is_struct(delta, "Elixir.DeltaCrdt.AWLWWMap"));
    hc_vv dvv, empty = {0};
    assert_int_equal(hc_vv_parse(hc_map_get(delta, "dots"), &dvv), 0);
    const cn_term *val = hc_map_get(delta, "value");
    for (uint32_t j = 0; keys->type == CN_LIST && j < keys->v.list.len; j++) {
      const cn_term *e2 = hc_map_find(val, &keys->v.list.e[j], 0);
      beyond += e2 && hc_raw_beyond(e2, &dvv);
      cn_term *r;
      assert_int_equal(hc_join_entries(&hc, NULL, e2, &empty, NULL, &dvv, &r), 0);
      if (e2) assert_true(cn_term_exact_eq(r, e2)); /* same entries, same MapSet shape (1.14) */
      else assert_null(r);
      /* joining the same delta again changes nothing */
      cn_term *r2;
      assert_int_equal(hc_join_entries(&hc, r, e2, &dvv, NULL, &dvv, &r2), 0);
      assert_true((!r && !r2) || cn_term_exact_eq(r, r2));
      cn_term_free(r);
      cn_term_free(r2);
      n++;
    }
    hc_vv_free(&dvv);
    cn_term_free(msg);
  }
  globfree(&g);
  print_message("  %zu captured delta keys joined, %zu with a dot beyond the delta's vector\n", n, beyond);
  assert_true(n > 50);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_add_remove_join), cmocka_unit_test(test_write_after_early_entries),
      cmocka_unit_test(test_lww_tie),         cmocka_unit_test(test_mapset_shapes),
      cmocka_unit_test(test_vector_deltas),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
