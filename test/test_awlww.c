/* test_awlww.c: delta_crdt's AWLWWMap in C: add/remove deltas, the join rules of §2.4 (add wins, removes seen
 * through the sender's version vector, overlapping and stale deltas), the LWW read and its tie rule, MapSet
 * shapes (as Elixir 1.14 and 1.18 write them, which one a delta carries, rewriting entries, following the peers),
 * and joins of captured BEAM deltas. */
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Captured vector s1_three_nodes/0027 (Horde 0.10 on Elixir 1.14: MapSets with version => 2), and the same delta
 * written by Elixir 1.18.3 on OTP 27.3 (Debian 13): each MapSet made again with MapSet.new(Enum.to_list(S)) and
 * the whole term_to_binary'd there (interop/crdt_suite's plain shape is checked against the running Elixir). */
#define V0027 "s1_three_nodes/0027_Lab.Registry.Crdt@n1_diff_delta.etf"
static const char *const ex118_0027 =
    "8368037704646966667400000003770576616c75657400000002680277066d656d62657268027713456c697869722e4c61622e52"
    "65676973747279770c6e31403132372e302e302e317400000001680261016e0801bc6723c9ffffff07740000000277036d617074"
    "00000001680262226168b361026a770a5f5f7374727563745f5f770d456c697869722e4d6170536574680277066d656d62657268"
    "027713456c697869722e4c61622e5265676973747279770c6e32403132372e302e302e317400000001680261016e0801fac1c5dd"
    "ffffff07740000000277036d61707400000001680262226168b361016a770a5f5f7374727563745f5f770d456c697869722e4d61"
    "705365747704646f7473740000000162226168b36102770a5f5f7374727563745f5f7719456c697869722e44656c746143726474"
    "2e41574c57574d61706c00000002680277066d656d62657268027713456c697869722e4c61622e5265676973747279770c6e3240"
    "3132372e302e302e31680277066d656d62657268027713456c697869722e4c61622e5265676973747279770c6e31403132372e30"
    "2e302e316a";

static cn_term *vector_msg(const char *file) {
  char path[512];
  snprintf(path, sizeof path, "%s/horde/%s", vectors_dir(), file);
  static uint8_t buf[1 << 16];
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  size_t len = fread(buf, 1, sizeof buf, f);
  fclose(f);
  cn_term *msg;
  assert_int_equal(cn_term_from_binary(tab, buf, len, NULL, &msg), 0);
  return msg;
}

static cn_term *hex_msg(const char *hex) {
  uint8_t *b;
  long len = hex_decode(hex, &b);
  assert_true(len > 0);
  cn_term *msg;
  assert_int_equal(cn_term_from_binary(tab, b, (size_t)len, NULL, &msg), 0);
  free(b);
  return msg;
}

/* The shape of a MapSet, and of the first dot set of a delta, in what Elixir 1.14 and 1.18 send; anything else
 * shows none. */
static void test_mapset_shape_detect(void **st) {
  (void)st;
  cn_term *m14 = vector_msg(V0027), *m18 = hex_msg(ex118_0027);
  const cn_term *v14 = hc_map_get(&m14->v.tuple.e[1], "value"), *v18 = hc_map_get(&m18->v.tuple.e[1], "value");
  assert_int_equal(hc_entries_shape(v14), HC_MAPSET_V2);
  assert_int_equal(hc_entries_shape(v18), HC_MAPSET_PLAIN);
  const cn_term *e18 = &v18->v.map.kv[1];
  assert_int_equal(hc_mapset_shape(&e18->v.map.kv[1]), HC_MAPSET_PLAIN);
  assert_int_equal(hc_mapset_shape(e18), -1); /* entries, not a MapSet */
  assert_int_equal(hc_mapset_shape(v18), -1);
  assert_int_equal(hc_entries_shape(e18), -1); /* one level too deep: {V, Ts} => MapSet, no MapSet below */
  assert_int_equal(hc_entries_shape(NULL), -1);
  cn_term *empty = cn_mk_map(0, NULL), *i = cn_mk_int(1);
  assert_int_equal(hc_entries_shape(empty), -1);
  assert_int_equal(hc_entries_shape(i), -1);
  /* a MapSet whose map is not a map, and one without a map: none */
  cn_term *bad = cn_mk_map(2, (cn_term *[]){A("__struct__"), A("Elixir.MapSet"), A("map"), cn_mk_int(3)});
  cn_term *nomap = cn_mk_map(2, (cn_term *[]){A("__struct__"), A("Elixir.MapSet"), A("version"), cn_mk_int(2)});
  assert_int_equal(hc_mapset_shape(bad), -1);
  assert_int_equal(hc_mapset_shape(nomap), -1);
  cn_term_free(bad);
  cn_term_free(nomap);
  cn_term_free(empty);
  cn_term_free(i);
  cn_term_free(m14);
  cn_term_free(m18);
}

/* Entries rewritten in the other shape are what that Elixir holds: the 1.14 capture's entries in the plain shape
 * equal 1.18's, and back; malformed entries are refused. */
static void test_reshape_entries(void **st) {
  (void)st;
  cn_term *m14 = vector_msg(V0027), *m18 = hex_msg(ex118_0027);
  const cn_term *v14 = hc_map_get(&m14->v.tuple.e[1], "value"), *v18 = hc_map_get(&m18->v.tuple.e[1], "value");
  hc_ctx plain = hc;
  plain.mapset_shape = HC_MAPSET_PLAIN;
  assert_int_equal(v14->v.map.size, 2);
  for (uint32_t i = 0; i < v14->v.map.size; i++) {
    const cn_term *e14 = &v14->v.map.kv[2 * i + 1], *e18 = hc_map_find(v18, &v14->v.map.kv[2 * i], 0);
    assert_non_null(e18);
    assert_false(cn_term_exact_eq(e14, e18));
    cn_term *r;
    assert_int_equal(hc_reshape_entries(&plain, e14, &r), 0);
    assert_true(cn_term_exact_eq(r, e18));
    assert_int_equal(cn_phash2_range(r, 1ULL << 32), cn_phash2_range(e18, 1ULL << 32)); /* Merkle hashes agree */
    cn_term_free(r);
    assert_int_equal(hc_reshape_entries(&hc, e18, &r), 0);
    assert_true(cn_term_exact_eq(r, e14));
    cn_term_free(r);
  }
  cn_term *r = (cn_term *)1;
  assert_int_equal(hc_reshape_entries(&hc, v14, &r), CN_EDECODE); /* a value map, not entries */
  assert_null(r);
  assert_int_equal(hc_reshape_entries(&hc, NULL, &r), CN_EDECODE);
  cn_term_free(m14);
  cn_term_free(m18);
}

/* The shape followed: the first delta's, then the other one after HC_SHAPE_SWITCH deltas in a row. */
static void test_shape_follow(void **st) {
  (void)st;
  hc_shape_follow f = {.shape = HC_MAPSET_V2};
  assert_false(hc_shape_seen(&f, -1)); /* no dot set: nothing learned */
  assert_false(f.settled);
  assert_true(hc_shape_seen(&f, HC_MAPSET_PLAIN)); /* the first delta settles it at once */
  assert_int_equal(f.shape, HC_MAPSET_PLAIN);
  /* a mixed cluster: one V2 delta between plain ones never switches */
  for (int i = 0; i < 20; i++) assert_false(hc_shape_seen(&f, i % 3 ? HC_MAPSET_PLAIN : HC_MAPSET_V2));
  assert_int_equal(f.shape, HC_MAPSET_PLAIN);
  for (int i = 1; i < HC_SHAPE_SWITCH; i++) assert_false(hc_shape_seen(&f, HC_MAPSET_V2));
  assert_false(hc_shape_seen(&f, -1)); /* a delta without dot sets does not break the run */
  assert_true(hc_shape_seen(&f, HC_MAPSET_V2));
  assert_int_equal(f.shape, HC_MAPSET_V2);
  assert_false(hc_shape_seen(&f, 7)); /* not a shape */
  hc_shape_follow g = {.shape = HC_MAPSET_V2};
  assert_false(hc_shape_seen(&g, HC_MAPSET_V2)); /* settled on the default: no change */
  assert_true(g.settled);
  assert_false(hc_shape_seen(&g, HC_MAPSET_PLAIN));
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
      cmocka_unit_test(test_add_remove_join),
      cmocka_unit_test(test_write_after_early_entries),
      cmocka_unit_test(test_lww_tie),
      cmocka_unit_test(test_mapset_shapes),
      cmocka_unit_test(test_mapset_shape_detect),
      cmocka_unit_test(test_reshape_entries),
      cmocka_unit_test(test_shape_follow),
      cmocka_unit_test(test_vector_deltas),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
