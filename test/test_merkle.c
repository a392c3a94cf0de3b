/* test_merkle.c: merkle_map's tree in C: the spec's hash examples, canonical shape under any insert/delete
 * order, subtrees equal to the ones real BEAM nodes sent (captured vectors), comparison and continuation
 * rounds between two trees finding every differing key. */
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
  if (cn_atoms_new(&tab, 0) || hc_ctx_init(&hc, tab, HC_MAPSET_V2)) return -1;
  return 0;
}
static int teardown(void **st) {
  (void)st;
  cn_atoms_free(tab);
  return 0;
}

static cn_term *A(const char *s) { return cn_mk_atom(cn_atoms_get(tab, s)); }

static void test_spec_hashes(void **st) {
  (void)st;
  cn_term *k = cn_mk_tuple(2, A("member"), cn_mk_tuple(2, A("reg"), A("a@vm")));
  uint32_t h = hc_key_hash(k);
  assert_int_equal(h, (110u << 24) | (64u << 16) | (147u << 8) | 152u);
  cn_term_free(k);
  uint8_t l[4] = {239, 125, 233, 218}, r[4] = {228, 23, 225, 6};
  cn_term *t = cn_mk_tuple(2, cn_mk_binary(l, 4), cn_mk_binary(r, 4));
  assert_int_equal(hc_key_hash(t), (27u << 24) | (207u << 16) | (118u << 8) | 175u);
  cn_term_free(t);
}

static cn_term *ikey(int i) { return cn_mk_tuple(2, A("key"), cn_mk_int(i)); }

static void put_i(hc_merkle *m, int i, int v) {
  cn_term *k = ikey(i);
  assert_int_equal(hc_merkle_put(m, k, hc_key_hash(k), cn_mk_int(v)), 0);
  cn_term_free(k);
}
static void del_i(hc_merkle *m, int i) {
  cn_term *k = ikey(i);
  hc_merkle_delete(m, k, hc_key_hash(k));
  cn_term_free(k);
}

static cn_term *full(hc_merkle *m) {
  hc_merkle_update_hashes(m);
  return hc_merkle_subtree(&hc, m, (hc_loc){0, 0}, 40);
}

/* The shape depends only on the key set: insert in two orders, delete half in another order. */
static void test_canonical(void **st) {
  (void)st;
  enum { N = 600 };
  hc_merkle a, b, c;
  hc_merkle_init(&a), hc_merkle_init(&b), hc_merkle_init(&c);
  srand(7);
  int perm[N];
  for (int i = 0; i < N; i++) perm[i] = i;
  for (int i = N - 1; i > 0; i--) {
    int j = rand() % (i + 1), t = perm[i];
    perm[i] = perm[j], perm[j] = t;
  }
  for (int i = 0; i < N; i++) put_i(&a, i, i);
  for (int i = 0; i < N; i++) put_i(&b, perm[i], perm[i]);
  for (int i = 0; i < N; i += 2) put_i(&c, i, i);
  /* b: delete the odd keys in random order */
  for (int i = 0; i < N; i++)
    if (perm[i] % 2) del_i(&b, perm[i]);
  for (int i = 1; i < N; i += 2) del_i(&a, i);
  assert_int_equal(a.count, N / 2);
  cn_term *ta = full(&a), *tb = full(&b), *tc = full(&c);
  assert_true(cn_term_exact_eq(ta, tb));
  assert_true(cn_term_exact_eq(ta, tc));
  uint8_t ra[4], rc[4];
  assert_true(hc_merkle_root(&a, ra) && hc_merkle_root(&c, rc));
  assert_memory_equal(ra, rc, 4);
  cn_term_free(ta), cn_term_free(tb), cn_term_free(tc);
  for (int i = 0; i < N; i++) del_i(&a, i);
  assert_null(a.root);
  assert_int_equal(a.count, 0);
  hc_merkle_free(&a), hc_merkle_free(&b), hc_merkle_free(&c);
}

/* Collects the leaf contents of a received subtree into m; false when it has partial cuts. */
static bool collect(const cn_term *t, hc_merkle *m) {
  if (t->type == CN_NIL) return true;
  assert_int_equal(t->type, CN_TUPLE);
  if (t->v.tuple.arity == 3) return collect(&t->v.tuple.e[1], m) && collect(&t->v.tuple.e[2], m);
  if (t->v.tuple.e[0].type == CN_ATOM) return false; /* partial */
  const cn_term *c = &t->v.tuple.e[1].v.tuple.e[1];
  for (uint32_t i = 0; i < c->v.map.size; i++) {
    const cn_term *k = &c->v.map.kv[2 * i];
    assert_int_equal(hc_merkle_put(m, k, hc_key_hash(k), cn_term_copy(&c->v.map.kv[2 * i + 1])), 0);
  }
  return true;
}

static cn_term *load(const char *path) { return tt_load_etf(tab, path); }

/* Every captured {diff, Diff} and {get_diff, Diff, Keys}: the C tree built from the same contents gives the
 * same subtree term (hashes, shape, leaf contents) as merkle_map did. */
static void test_vectors_subtrees(void **st) {
  (void)st;
  char pat[512];
  snprintf(pat, sizeof pat, "%s/horde/*/*diff.etf", vectors_dir());
  glob_t g;
  assert_int_equal(glob(pat, 0, NULL, &g), 0);
  size_t checked = 0, skipped = 0;
  for (size_t i = 0; i < g.gl_pathc; i++) {
    cn_term *msg = load(g.gl_pathv[i]);
    const cn_term *d = &msg->v.tuple.e[1];
    if (!hc_is_struct(d, "Elixir.DeltaCrdt.CausalCrdt.Diff")) goto next;
    const cn_term *cont = hc_map_get(d, "continuation");
    const cn_term *trees = hc_map_get(cont, "trees");
    assert_non_null(trees);
    if (trees->type != CN_LIST || trees->v.list.len != 1) goto next;
    hc_loc loc;
    assert_true(hc_loc_from_term(&trees->v.list.e[0].v.tuple.e[0], &loc));
    const cn_term *tree = hc_map_get(&trees->v.list.e[0].v.tuple.e[1], "tree");
    hc_merkle m;
    hc_merkle_init(&m);
    if (loc.nbits == 0 && collect(tree, &m)) {
      hc_merkle_update_hashes(&m);
      cn_term *mine = hc_merkle_subtree(&hc, &m, loc, 8);
      if (!cn_term_exact_eq(mine, tree)) {
        char *a = cn_term_to_string(mine), *b = cn_term_to_string(tree);
        fprintf(stderr, "%s\n mine %.600s\n beam %.600s\n", g.gl_pathv[i], a, b);
        cn_free(a), cn_free(b);
      }
      assert_true(cn_term_exact_eq(mine, tree));
      /* and the comparison of equal trees finds nothing */
      hc_mdiff df = {0};
      assert_int_equal(hc_merkle_diff(&m, loc, 8, tree, &df), 0);
      assert_int_equal(df.nkeys + df.nparts, 0);
      hc_mdiff_free(&df);
      cn_term_free(mine);
      checked++;
    } else {
      skipped++;
    }
    hc_merkle_free(&m);
  next:
    cn_term_free(msg);
  }
  globfree(&g);
  print_message("  %zu captured subtrees equal, %zu skipped (partial)\n", checked, skipped);
  assert_true(checked > 100);
}

/* Runs continuation rounds between two trees as two CRDTs would; returns the keys found. */
static cn_term *sync_keys(hc_merkle *a, hc_merkle *b, int *rounds) {
  hc_merkle_update_hashes(a);
  hc_merkle_update_hashes(b);
  cn_term *cont = hc_merkle_cont0(&hc, a, 8);
  hc_merkle *side[2] = {b, a};
  for (int r = 0;; r++) {
    cn_term *next, *keys;
    assert_int_equal(hc_merkle_continue(&hc, side[r % 2], cont, 8, 0, &next, &keys), 0);
    cn_term_free(cont);
    if (!next) {
      *rounds = r + 1;
      return keys;
    }
    cont = next;
    assert_true(r < 6);
  }
}

static bool has_key(const cn_term *keys, int i) {
  cn_term *k = ikey(i);
  bool found = false;
  for (uint32_t j = 0; keys->type == CN_LIST && j < keys->v.list.len; j++)
    found |= cn_term_exact_eq(&keys->v.list.e[j], k);
  cn_term_free(k);
  return found;
}

static void test_partial_rounds(void **st) {
  (void)st;
  enum { N = 10000 };
  hc_merkle a, b;
  hc_merkle_init(&a), hc_merkle_init(&b);
  for (int i = 0; i < N; i++) put_i(&a, i, i), put_i(&b, i, i);
  int rounds;
  cn_term *keys = sync_keys(&a, &b, &rounds);
  assert_int_equal(keys->type, CN_NIL);
  assert_int_equal(rounds, 1);
  cn_term_free(keys);
  /* differences: a changed value, a key only in a, a key only in b */
  put_i(&a, 17, -1);
  put_i(&a, N + 1, 1);
  put_i(&b, N + 2, 2);
  del_i(&b, 4242);
  keys = sync_keys(&a, &b, &rounds);
  assert_true(has_key(keys, 17) && has_key(keys, N + 1) && has_key(keys, N + 2) && has_key(keys, 4242));
  assert_true(keys->v.list.len <= 8);
  assert_true(rounds >= 2 && rounds <= 5);
  cn_term_free(keys);
  /* truncation: keys first, then trees */
  hc_merkle_update_hashes(&a);
  cn_term *c0 = hc_merkle_cont0(&hc, &a, 8), *next, *k2;
  hc_merkle_update_hashes(&b);
  assert_int_equal(hc_merkle_continue(&hc, &b, c0, 8, 2, &next, &k2), 0);
  assert_non_null(next);
  const cn_term *tr = hc_map_get(next, "trees");
  assert_true(tr->type == CN_LIST && tr->v.list.len <= 2);
  cn_term_free(next);
  cn_term_free(c0);
  /* against an empty tree everything is reported */
  hc_merkle e;
  hc_merkle_init(&e);
  put_i(&e, 1, 1);
  del_i(&e, 1);
  keys = sync_keys(&e, &b, &rounds);
  assert_int_equal(keys->v.list.len, b.count);
  cn_term_free(keys);
  hc_merkle_free(&a), hc_merkle_free(&b), hc_merkle_free(&e);
}

/* Malformed received trees are refused, never crash. */
static void test_bad_trees(void **st) {
  (void)st;
  hc_merkle a;
  hc_merkle_init(&a);
  for (int i = 0; i < 50; i++) put_i(&a, i, i);
  hc_merkle_update_hashes(&a);
  cn_term *bad[] = {A("x"), cn_mk_tuple(2, cn_mk_int(1), cn_mk_int(2)),
                    cn_mk_tuple(3, cn_mk_nil(), A("y"), cn_mk_nil()), cn_mk_tuple(4, A("a"), A("b"), A("c"), A("d")),
                    cn_mk_tuple(2, cn_mk_binary("abcd", 4), cn_mk_tuple(2, cn_mk_binary("ab", 2), cn_mk_nil()))};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    hc_mdiff d = {0};
    assert_int_equal(hc_merkle_diff(&a, (hc_loc){0, 0}, 8, bad[i], &d), CN_EDECODE);
    hc_mdiff_free(&d);
    cn_term_free(bad[i]);
  }
  cn_term *next, *keys;
  cn_term *notcont = A("nope");
  assert_int_equal(hc_merkle_continue(&hc, &a, notcont, 8, 0, &next, &keys), CN_EDECODE);
  cn_term_free(notcont);
  hc_merkle_free(&a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spec_hashes),    cmocka_unit_test(test_canonical), cmocka_unit_test(test_vectors_subtrees),
      cmocka_unit_test(test_partial_rounds), cmocka_unit_test(test_bad_trees),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
