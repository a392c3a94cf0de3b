/* test_term.c: unit tests of term/'s values: atoms (also under threads), constructors, one block per decoded term
 * and the decoder's atom cache, pid and ref equality, printing. The ETF codec's own tests are in test_etf.c. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cn_term.h"
#include "term_int.h"
#include "testutil.h"
#include "tterm.h"

static void assert_prints(const cn_term *t, const char *want) {
  assert_non_null(t);
  char *s = cn_term_to_string(t);
  assert_non_null(s);
  if (strcmp(s, want) != 0) fprintf(stderr, "printed %s, want %s\n", s, want);
  assert_string_equal(s, want);
  cn_free(s);
}

/* Prints a term made for the purpose and frees it. */
static void P(cn_term *t, const char *want) {
  assert_prints(t, want);
  cn_term_free(t);
}

/* ---- one allocation per decoded term, and the decoder's atom cache (issue 7) ---- */

static void test_single_block(void **state) {
  (void)state;
  for (size_t i = 0; i < NVEC; i++) {
    uint8_t *b;
    size_t n = unhex(VEC[i].hex, &b);
    cn_term *t = NULL, *t2 = NULL;
    assert_int_equal(cn_term_from_binary(A, b, n, NULL, &t), 0); /* interns the atoms */
    cn_term_free(t);
    long live = atomic_load(&live_allocs), total = atomic_load(&total_allocs), frees = atomic_load(&total_frees);
    assert_int_equal(cn_term_from_binary(A, b, n, NULL, &t), 0);
    assert_int_equal(atomic_load(&total_allocs) - total, 1);
    assert_int_equal(atomic_load(&live_allocs) - live, 1);
    /* A copy owns its parts separately, equals the original and outlives it. */
    cn_term *c = cn_term_copy(t);
    assert_non_null(c);
    assert_true(cn_term_exact_eq(c, t));
    frees = atomic_load(&total_frees);
    cn_term_free(t);
    assert_int_equal(atomic_load(&total_frees) - frees, 1); /* one cn_free, no walk */
    assert_int_equal(cn_term_from_binary(A, b, n, NULL, &t2), 0);
    assert_true(cn_term_exact_eq(c, t2));
    cn_term *cc = cn_term_copy(c); /* a copy of a copy frees recursively as ever */
    assert_true(cn_term_exact_eq(cc, t2));
    cn_term_free(cc);
    cn_term_free(c);
    cn_term_free(t2);
    assert_int_equal(atomic_load(&live_allocs), live);

    /* Decoded roots handed to constructors: copied out of their block when they own parts. */
    cn_term *x = NULL, *y = NULL, *z = NULL;
    assert_int_equal(cn_term_from_binary(A, b, n, NULL, &x), 0);
    assert_int_equal(cn_term_from_binary(A, b, n, NULL, &y), 0);
    assert_int_equal(cn_term_from_binary(A, b, n, NULL, &z), 0);
    cn_term *ref = cn_term_copy(x);
    cn_term *tup = cn_mk_tuple(3, x, cn_mk_int(7), cn_mk_map(1, (cn_term *[]){cn_mk_int(1), y}));
    assert_non_null(tup);
    assert_true(cn_term_exact_eq(&tup->v.tuple.e[0], ref));
    assert_true(cn_term_exact_eq(&tup->v.tuple.e[2].v.map.kv[1], ref));
    cn_term *lst = cn_mk_listv(1, (cn_term *[]){cn_mk_int(0)}, z); /* a list tail is spliced */
    assert_non_null(lst);
    cn_term *want = cn_mk_listv(1, (cn_term *[]){cn_mk_int(0)}, cn_term_copy(ref));
    assert_true(cn_term_exact_eq(lst, want));
    cn_term *c2 = cn_term_copy(tup);
    assert_true(cn_term_exact_eq(c2, tup));
    cn_term_free(tup), cn_term_free(lst), cn_term_free(want), cn_term_free(c2), cn_term_free(ref);
    assert_int_equal(atomic_load(&live_allocs), live);

    /* ... and when memory runs out on the way, nothing leaks. */
    for (long k = 0; k < 12; k++) {
      assert_int_equal(cn_term_from_binary(A, b, n, NULL, &x), 0);
      assert_int_equal(cn_term_from_binary(A, b, n, NULL, &y), 0);
      assert_int_equal(cn_term_from_binary(A, b, n, NULL, &z), 0);
      arm_failure(k);
      cn_term *u = cn_mk_tuple(2, x, cn_mk_listv(1, (cn_term *[]){y}, z));
      disarm();
      cn_term_free(u);
      assert_int_equal(atomic_load(&live_allocs), live);
    }
    free(b);
  }
}

static int dec_hex(cn_atoms *tab, const char *hex, const cn_decode_opts *o, cn_term **out) {
  uint8_t *b;
  size_t n = unhex(hex, &b);
  int r = cn_term_from_binary(tab, b, n, o, out);
  free(b);
  return r;
}

/* {seq, 'é' (UTF-8), 'Ã©' (latin-1 bytes C3 A9), seq (latin-1), <0.40.0> of bench@h, 'ÿ' (latin-1)} */
#define CACHE_HEX                                                                                                      \
  "836806770373657177 02C3A9 640002C3A9 6400037365 71 58770762656E6368406800000028000000000000000364 0001FF"

static void check_cache_term(cn_atoms *tab, const cn_term *t) {
  assert_int_equal(t->type, CN_TUPLE);
  const cn_term *e = t->v.tuple.e;
  assert_ptr_equal(e[0].v.atom, cn_atoms_find(tab, "seq", 3));
  assert_ptr_equal(e[3].v.atom, e[0].v.atom);
  assert_ptr_equal(e[1].v.atom, cn_atoms_find(tab, "\xC3\xA9", 2));
  assert_ptr_equal(e[2].v.atom, cn_atoms_find(tab, "\xC3\x83\xC2\xA9", 4)); /* not confused with 'é' */
  assert_ptr_equal(e[4].v.pid.node, cn_atoms_find(tab, "bench@h", 7));
  assert_ptr_equal(e[5].v.atom, cn_atoms_find(tab, "\xC3\xBF", 2));
}

static char *unspace(const char *s) {
  char *d = malloc(strlen(s) + 1), *q = d;
  for (; *s; s++)
    if (*s != ' ') *q++ = *s;
  *q = 0;
  return d;
}

static void test_atom_cache(void **state) {
  (void)state;
  cn_atom_cache *c0 = cn_atom_cache_new(0);
  assert_non_null(c0);
  cn_atom_cache_free(c0);
  cn_atom_cache_free(NULL);
  char *hex = unspace(CACHE_HEX);
  size_t sizes[] = {0, 1, 2, 1000000};
  for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
    cn_atom_cache *c = cn_atom_cache_new(sizes[si]);
    assert_non_null(c);
    cn_decode_opts o = {.cache = c};
    for (int round = 0; round < 3; round++) { /* misses, then hits (or evictions in the small caches) */
      cn_term *t = NULL, *u = NULL;
      long total = atomic_load(&total_allocs);
      assert_int_equal(dec_hex(A, hex, &o, &t), 0);
      if (round) assert_int_equal(atomic_load(&total_allocs) - total, 1); /* the block; no atom was created */
      check_cache_term(A, t);
      assert_int_equal(dec_hex(A, hex, NULL, &u), 0); /* with a cache equals without */
      assert_true(cn_term_exact_eq(t, u));
      cn_term_free(t), cn_term_free(u);
    }
    /* Another table: the cache empties itself and hands out that table's atoms. */
    cn_atoms *t2;
    assert_int_equal(cn_atoms_new(&t2, 0), 0);
    cn_term *t = NULL;
    assert_int_equal(dec_hex(t2, hex, &o, &t), 0);
    check_cache_term(t2, t);
    assert_ptr_not_equal(t->v.tuple.e[0].v.atom, cn_atoms_find(A, "seq", 3));
    cn_term_free(t);
    assert_int_equal(dec_hex(A, hex, &o, &t), 0);
    check_cache_term(A, t);
    cn_term_free(t);
    cn_atoms_free(t2);

    /* Misses respect atom_limit: no new atom, *out NULL, *off unchanged, nothing leaked; hits still work. */
    o.atom_limit = cn_atoms_count(A);
    long live = atomic_load(&live_allocs);
    size_t count = cn_atoms_count(A);
    uint8_t *b;
    char lim_hex[64]; /* {seq, not_yet_N, new}: not_yet_N is new for each cache size */
    snprintf(lim_hex, sizeof lim_hex, "6803770373657177096E6F745F7965745F%02X77036E6577", 0x31 + (unsigned)si);
    size_t n = unhex(lim_hex, &b);
    for (int round = 0; round < 2; round++) {
      size_t off = 0;
      t = (cn_term *)1;
      assert_int_equal(cn_term_decode(A, b, n, &off, &o, &t), CN_ELIMIT);
      assert_null(t);
      assert_int_equal(off, 0);
      assert_int_equal(cn_atoms_count(A), count);
      assert_int_equal(atomic_load(&live_allocs), live);
    }
    assert_int_equal(dec_hex(A, hex, &o, &t), 0); /* known atoms under the limit */
    check_cache_term(A, t);
    cn_term_free(t);
    o.atom_limit = 0;
    size_t off = 0;
    assert_int_equal(cn_term_decode(A, b, n, &off, &o, &t), 0);
    assert_int_equal(off, n);
    char nm[10];
    snprintf(nm, sizeof nm, "not_yet_%c", (char)('1' + si));
    assert_ptr_equal(t->v.tuple.e[1].v.atom, cn_atoms_find(A, nm, 9));
    assert_ptr_equal(t->v.tuple.e[2].v.atom, cn_atoms_find(A, "new", 3));
    cn_term_free(t);
    /* Invalid UTF-8 is still refused on a miss. */
    assert_int_equal(dec_hex(A,
                             "83770"
                             "2C328",
                             &o, &t),
                     CN_EDECODE);
    assert_null(t);
    free(b);
    cn_atom_cache_free(c);
  }
  free(hex);
}

/* Pids are read in place, not through ei: the same fields ei_decode_pid gives (PID_EXT keeps 2 bits of
 * Creation). */
static void test_pid_fields(void **state) {
  (void)state;
  cn_term *t = NULL;
  assert_int_equal(dec_hex(A, "835877016112345678FFFFFFFE87654321", NULL, &t), 0);
  assert_int_equal(t->type, CN_PID);
  assert_string_equal(t->v.pid.node->name, "a");
  assert_int_equal(t->v.pid.id, 0x12345678u);
  assert_int_equal(t->v.pid.serial, 0xFFFFFFFEu);
  assert_int_equal(t->v.pid.creation, 0x87654321u);
  cn_term_free(t);
  assert_int_equal(dec_hex(A, "8367640001E9FFFFFFFF0000000107", NULL, &t), 0);
  assert_int_equal(t->type, CN_PID);
  assert_string_equal(t->v.pid.node->name, "\xC3\xA9");
  assert_int_equal(t->v.pid.id, 0xFFFFFFFFu);
  assert_int_equal(t->v.pid.serial, 1);
  assert_int_equal(t->v.pid.creation, 3);
  cn_term_free(t);
}

/* cn_pid_eq / cn_ref_eq are =:=: every field counts, creation included. */
static void test_id_eq(void **state) {
  (void)state;
  const cn_atom *a = cn_atoms_get(A, "a@h"), *b = cn_atoms_get(A, "b@h");
  cn_pid p = {a, 1, 2, 3}, q = p;
  assert_true(cn_pid_eq(p, q));
  q.creation = 4;
  assert_false(cn_pid_eq(p, q));
  q = p, q.serial = 0;
  assert_false(cn_pid_eq(p, q));
  q = p, q.node = b;
  assert_false(cn_pid_eq(p, q));
  cn_ref r = {.node = a, .creation = 3, .len = 3, .n = {1, 2, 3}}, s = r;
  assert_true(cn_ref_eq(&r, &s));
  s.n[2] = 9;
  assert_false(cn_ref_eq(&r, &s));
  s = r, s.creation = 4;
  assert_false(cn_ref_eq(&r, &s));
  s = r, s.len = 2;
  assert_false(cn_ref_eq(&r, &s));
  s = r, s.node = b;
  assert_false(cn_ref_eq(&r, &s));
  s = r, s.n[4] = 7; /* words past len do not count */
  assert_true(cn_ref_eq(&r, &s));
}

/* A cache starts with 16 slots and grows (to the size asked for, no further) while a peer's atoms miss often; one
 * fed one atom over and over stays small. Decoding through it equals decoding without. */
static void test_cache_grows(void **state) {
  (void)state;
  cn_atom_cache *c = cn_atom_cache_new(0), *few = cn_atom_cache_new(0), *small = cn_atom_cache_new(64),
                *tiny = cn_atom_cache_new(2);
  assert_non_null(c);
  assert_non_null(few);
  assert_non_null(small);
  assert_non_null(tiny);
  assert_int_equal(term_atom_cache_slots(c), 16);
  assert_int_equal(term_atom_cache_slots(tiny), 2);
  cn_term *el[300];
  for (size_t i = 0; i < 300; i++) {
    char name[16];
    snprintf(name, sizeof name, "grow%zu", i);
    el[i] = cn_mk_atom(cn_atoms_get(A, name));
  }
  cn_term *three = cn_mk_list(3, cn_term_copy(el[0]), cn_term_copy(el[0]), cn_term_copy(el[0])); /* no collision */
  cn_term *many = cn_mk_listv(300, el, NULL);                                                    /* takes el's terms */
  assert_non_null(many);
  assert_non_null(three);
  cn_buf bm = {0}, b3 = {0};
  assert_int_equal(cn_term_to_binary(many, &bm), 0);
  assert_int_equal(cn_term_to_binary(three, &b3), 0);
  for (int round = 0; round < 20; round++) {
    cn_atom_cache *caches[] = {c, small, tiny};
    for (size_t k = 0; k < 3; k++) {
      cn_decode_opts o = {.cache = caches[k]};
      cn_term *t = NULL;
      assert_int_equal(cn_term_from_binary(A, bm.data, bm.len, &o, &t), 0);
      assert_true(cn_term_exact_eq(t, many));
      cn_term_free(t);
    }
    cn_decode_opts o = {.cache = few};
    cn_term *t = NULL;
    assert_int_equal(cn_term_from_binary(A, b3.data, b3.len, &o, &t), 0);
    assert_true(cn_term_exact_eq(t, three));
    cn_term_free(t);
  }
  assert_int_equal(term_atom_cache_slots(c), 256);
  assert_int_equal(term_atom_cache_slots(small), 64);
  assert_int_equal(term_atom_cache_slots(tiny), 2);
  assert_int_equal(term_atom_cache_slots(few), 16);
  cn_buf_free(&bm);
  cn_buf_free(&b3);
  cn_term_free(many);
  cn_term_free(three);
  cn_atom_cache_free(c);
  cn_atom_cache_free(few);
  cn_atom_cache_free(small);
  cn_atom_cache_free(tiny);
}

static void test_cache_equal(void **state) {
  (void)state;
  cn_atom_cache *tiny = cn_atom_cache_new(2), *big = cn_atom_cache_new(0);
  assert_non_null(tiny);
  assert_non_null(big);
  for (int round = 0; round < 2; round++) {
    for (size_t i = 0; i < NVEC; i++) {
      uint8_t *b;
      size_t n = unhex(VEC[i].hex, &b);
      cn_decode_opts ot = {.cache = tiny}, ob = {.cache = big};
      cn_term *t0 = NULL, *t1 = NULL, *t2 = NULL;
      assert_int_equal(cn_term_from_binary(A, b, n, NULL, &t0), 0);
      assert_int_equal(cn_term_from_binary(A, b, n, &ot, &t1), 0);
      assert_int_equal(cn_term_from_binary(A, b, n, &ob, &t2), 0);
      assert_true(cn_term_exact_eq(t0, t1));
      assert_true(cn_term_exact_eq(t0, t2));
      cn_buf e0 = {0}, e1 = {0}, e2 = {0};
      assert_int_equal(cn_term_to_binary(t0, &e0), 0);
      assert_int_equal(cn_term_to_binary(t1, &e1), 0);
      assert_int_equal(cn_term_to_binary(t2, &e2), 0);
      assert_bytes(&e1, e0.data, e0.len);
      assert_bytes(&e2, e0.data, e0.len);
      cn_buf_free(&e0), cn_buf_free(&e1), cn_buf_free(&e2);
      cn_term_free(t0), cn_term_free(t1), cn_term_free(t2);
      free(b);
    }
  }
  cn_atom_cache_free(tiny);
  cn_atom_cache_free(big);
}

static void test_constructors(void **state) {
  (void)state;
  long before = atomic_load(&live_allocs);
  /* A NULL child gives NULL and frees its siblings (the leak check above and ASan verify). */
  assert_null(cn_mk_tuple(3, cn_mk_int(1), NULL, cn_mk_string("abc")));
  assert_null(cn_mk_list(2, NULL, cn_mk_int(1)));
  assert_null(cn_mk_map(1, (cn_term *[]){cn_mk_int(1), NULL}));
  assert_null(cn_mk_listv(1, (cn_term *[]){NULL}, cn_mk_int(3)));
  assert_null(cn_mk_atom(NULL));
  assert_null(cn_mk_bitstring("a", 1, 0));
  assert_null(cn_mk_ref((cn_ref){cn_atoms_get(A, "n@h"), 0, 6, {0}}));
  assert_int_equal(atomic_load(&live_allocs), before + 1); /* the atom n@h */

  /* Bignums normalise: high zeros dropped, values that fit int64 become CN_INT. */
  cn_term *t = cn_mk_big(1, (const uint8_t *)"\x05\x00\x00", 3);
  assert_int_equal(t->type, CN_INT);
  assert_int_equal(t->v.i, -5);
  cn_term_free(t);
  t = cn_mk_big(1, (const uint8_t *)"\0\0\0\0\0\0\0\x80", 8);
  assert_int_equal(t->type, CN_INT);
  assert_true(t->v.i == INT64_MIN);
  cn_term_free(t);
  t = cn_mk_big(0, (const uint8_t *)"\0\0\0\0\0\0\0\0\1\0\0", 11);
  assert_int_equal(t->type, CN_BIG);
  assert_int_equal(t->v.big.n, 9);
  cn_term_free(t);
  t = cn_mk_big(1, NULL, 0);
  assert_int_equal(t->type, CN_INT);
  assert_int_equal(t->v.i, 0);
  cn_term_free(t);
  /* Non-canonical bignums on the wire normalise the same way. */
  uint8_t *b;
  size_t n = unhex("836E05010500000000", &b);
  assert_int_equal(from_bin_guarded(b, n, NULL, &t), 0);
  assert_int_equal(t->type, CN_INT);
  assert_int_equal(t->v.i, -5);
  cn_term_free(t), free(b);

  /* Accessors. */
  t = cn_mk_tuple(2, atom("ok"), cn_mk_int(7));
  assert_true(cn_is_atom(cn_tuple_elem(t, 2, 0), "ok"));
  assert_false(cn_is_atom(cn_tuple_elem(t, 2, 0), "o"));
  assert_int_equal(cn_tuple_elem(t, 2, 1)->v.i, 7);
  assert_null(cn_tuple_elem(t, 3, 0));
  assert_null(cn_tuple_elem(t, 2, 2));
  assert_false(cn_is_atom(t, "ok"));
  cn_term_free(t);

  /* Equality: 0.0 =:= -0.0 as on OTP 25/26, 1 =/= 1.0, maps equal in any order (small and large). */
  cn_term *z = cn_mk_float(0.0), *mz = cn_mk_float(-0.0), *one = cn_mk_int(1), *onef = cn_mk_float(1.0);
  assert_true(cn_term_exact_eq(z, mz));
  assert_false(cn_term_exact_eq(one, onef));
  cn_term_free(z), cn_term_free(mz), cn_term_free(one), cn_term_free(onef);
  for (int size = 3; size <= 500; size += 497) {
    cn_term **kv1 = malloc(4 * size * sizeof *kv1), **kv2 = kv1 + 2 * size;
    for (int i = 0; i < size; i++) {
      int j = (i * 7 + 3) % size; /* 7 is prime to 3 and 500: a permutation */
      kv1[2 * i] = cn_mk_tuple(2, cn_mk_int(i), cn_mk_string("k")), kv1[2 * i + 1] = cn_mk_int(i * 10);
      kv2[2 * j] = cn_mk_tuple(2, cn_mk_int(i), cn_mk_string("k")), kv2[2 * j + 1] = cn_mk_int(i * 10);
    }
    cn_term *m1 = cn_mk_map((size_t)size, kv1), *m2 = cn_mk_map((size_t)size, kv2);
    assert_true(cn_term_exact_eq(m1, m2));
    m2->v.map.kv[2 * (size - 1) + 1].v.i = -1; /* one value differs */
    assert_false(cn_term_exact_eq(m1, m2));
    cn_term_free(m1), cn_term_free(m2);
    free(kv1);
  }
  /* Atoms from two tables compare by text. */
  cn_atoms *other;
  cn_atoms_new(&other, 0);
  cn_term *a1 = atom("same"), *a2 = cn_mk_atom(cn_atoms_get(other, "same"));
  assert_true(cn_term_exact_eq(a1, a2));
  cn_term_free(a1), cn_term_free(a2);
  cn_atoms_free(other);
}

/* Printing of each type, with io_lib's ~tp as the model (outputs checked against OTP 25.2.3). */
static void test_print(void **state) {
  (void)state;
  P(cn_mk_int(-42), "-42");
  P(big_bit(0, 64, 0), "18446744073709551616");
  P(big_bit(1, 100, 7), "-1267650600228229401496703205383");
  P(big_bit(0, 63, 0), "9223372036854775808");
  P(big_bit(0, 200, 0), "1606938044258990275541962092341162602522202993782792835301376");
  static const struct {
    double f;
    const char *s;
  } fl[] = {{1.0e20, "1.0e20"},
            {1.0e21, "1.0e21"},
            {123456789012345678.0, "1.2345678901234568e17"},
            {0.0001, "0.0001"},
            {0.00001, "1.0e-5"},
            {1.0e15, "1.0e15"},
            {0.1, "0.1"},
            {-0.0, "-0.0"},
            {0.0, "0.0"},
            {1.5e300, "1.5e300"},
            {5.0e-324, "5.0e-324"},
            {2.5, "2.5"},
            {100.0, "100.0"},
            {1.0e-10, "1.0e-10"},
            {12345.678, "12345.678"},
            {1000.0, "1.0e3"},
            {999.0, "999.0"},
            {123.0e3, "1.23e5"},
            {0.001, "0.001"},
            {1.0e100, "1.0e100"},
            {-1.5, "-1.5"},
            {2.0e-308, "2.0e-308"},
            {1.0, "1.0"},
            {10.0, "10.0"},
            {0.3, "0.3"},
            {1.0 / 3, "0.3333333333333333"}};
  for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++) P(cn_mk_float(fl[i].f), fl[i].s);

  P(atom("foo"), "foo");
  P(atom("hello world"), "'hello world'");
  P(atom("Elixir.Foo"), "'Elixir.Foo'");
  P(atom(""), "''");
  P(atom("true"), "true");
  P(atom("ab1_@Z"), "ab1_@Z");
  P(atom("and"), "'and'");
  P(atom("maybe"), "maybe");
  P(atom("a'b\\c\n\x01\x7f"), "'a\\'b\\\\c\\n\\001\\d'");
  P(atom("\xc3\xa9"
         "cole"),
    "\xc3\xa9"
    "cole");
  P(atom("\xc3\x9c"
         "ber"),
    "'\xc3\x9c"
    "ber'");
  P(atom("\xF0\x9F\x98\x80x"), "'\xF0\x9F\x98\x80x'");
  P(atom("a.b"), "'a.b'");

  P(cn_mk_string("abc"), "\"abc\"");
  P(cn_mk_string("a\"b\\c\t\x1b"), "\"a\\\"b\\\\c\\t\\e\"");
  P(cn_mk_string("\x7f"), "[127]");
  P(cn_mk_list(2, cn_mk_int(233), cn_mk_int('a')), "\"\xc3\xa9"
                                                   "a\"");
  P(cn_mk_list(3, cn_mk_int(1), cn_mk_int(2), cn_mk_int(3)), "[1,2,3]");
  P(cn_mk_listv(2, (cn_term *[]){cn_mk_int(1), cn_mk_int(2)}, atom("foo")), "[1,2|foo]");
  P(cn_mk_nil(), "[]");
  P(cn_mk_list(1, cn_mk_nil()), "[[]]");
  P(cn_mk_binary("abc", 3), "<<\"abc\">>");
  P(cn_mk_binary("a\nb", 3), "<<\"a\\nb\">>");
  P(cn_mk_binary("\1\2\3", 3), "<<1,2,3>>");
  P(cn_mk_binary("abc\0", 4), "<<97,98,99,0>>");
  P(cn_mk_binary(NULL, 0), "<<>>");
  P(cn_mk_binary("\xc8", 1), "<<\"\xc3\x88\">>");
  P(cn_mk_bitstring("\x01\x40", 2, 3), "<<1,2:3>>");
  P(cn_mk_bitstring("abc\x20", 4, 3), "<<97,98,99,1:3>>");
  P(cn_mk_bitstring("\x00", 1, 3), "<<0:3>>");
  P(cn_mk_tuple(0), "{}");
  P(cn_mk_tuple(2, atom("a"), cn_mk_tuple(1, cn_mk_nil())), "{a,{[]}}");
  P(cn_mk_map(0, NULL), "#{}");
  P(cn_mk_map(2, (cn_term *[]){atom("a"), cn_mk_int(2), atom("b"), cn_mk_int(1)}), "#{a => 2,b => 1}");
  P(cn_mk_pid(mkpid("a@127.0.0.1", 85, 0, 1234)), "#Pid<'a@127.0.0.1'.85.0.1234>");
  P(cn_mk_pid(mkpid("a@localhost", 1, 2, 3)), "#Pid<a@localhost.1.2.3>");
  P(cn_mk_port((cn_port){cn_atoms_get(A, "a@h"), 1ull << 40, 7}), "#Port<a@h.1099511627776.7>");
  P(cn_mk_ref((cn_ref){cn_atoms_get(A, "a@h"), 9, 3, {1, 2, 3}}), "#Ref<a@h.3.2.1.9>");
  for (size_t i = 0; i < NVEC; i++) {
    const char *want = strcmp(VEC[i].name, "fun_export") == 0  ? "fun lists:map/2"
                       : strcmp(VEC[i].name, "fun_local") == 0 ? "#Fun<tgen.0.77293008>"
                       : strcmp(VEC[i].name, "mixed") == 0
                           ? "{ok,[{<<\"k\">>,1.0}],#{list => \"x\",neg => -5},[1|<<\"t\">>]}"
                           : NULL;
    if (!want) continue;
    uint8_t *b;
    size_t n = unhex(VEC[i].hex, &b);
    cn_term *t = NULL;
    assert_int_equal(cn_term_from_binary(A, b, n, NULL, &t), 0);
    assert_prints(t, want);
    cn_term_free(t);
    free(b);
  }
}

static void test_atoms(void **state) {
  (void)state;
  cn_atoms *t;
  assert_int_equal(cn_atoms_new(&t, 5), 0);
  const cn_atom *a = cn_atoms_get(t, "abc");
  assert_non_null(a);
  assert_ptr_equal(a, cn_atoms_intern(t, "abcdef", 3));
  assert_ptr_equal(a, cn_atoms_find(t, "abc", 3));
  assert_null(cn_atoms_find(t, "abd", 3));
  assert_int_equal(a->len, 3);
  assert_string_equal(a->name, "abc");
  const cn_atom *got = NULL;
  assert_int_equal(cn_atoms_intern_status(t, "abc", 3, &got), 0);
  assert_ptr_equal(got, a);
  /* Embedded NUL is a legal character of an atom. */
  const cn_atom *nul = cn_atoms_intern(t, "a\0b", 3);
  assert_non_null(nul);
  assert_int_equal(nul->len, 3);
  assert_ptr_not_equal(nul, cn_atoms_get(t, "a"));
  /* Invalid UTF-8 and too many characters. */
  static const char *badutf[] = {"\xC0\xAF", "\xED\xA0\x80", "\xF5\x80\x80\x80",
                                 "\xE2\x82", "\x80",         "\xF4\x90\x80\x80"};
  for (size_t i = 0; i < sizeof badutf / sizeof *badutf; i++) {
    assert_null(cn_atoms_get(t, badutf[i]));
    assert_int_equal(cn_atoms_intern_status(t, badutf[i], strlen(badutf[i]), &got), CN_EDECODE);
    assert_null(got);
  }
  char long_a[300];
  memset(long_a, 'a', 256);
  assert_null(cn_atoms_intern(t, long_a, 256));
  assert_int_equal(cn_atoms_intern_status(t, long_a, 256, &got), CN_EDECODE);
  assert_non_null(cn_atoms_intern(t, long_a, 255));
  char utf[1100] = {0};
  for (int i = 0; i < 256; i++) strcat(utf, "\xE2\x82\xAC"); /* euro sign, 3 bytes */
  assert_null(cn_atoms_intern(t, utf, 256 * 3));
  assert_non_null(cn_atoms_intern(t, utf, 255 * 3)); /* 765 bytes, 255 characters */
  /* The table holds 5: abc, a\0b, a, 255 a, 255 euro. The sixth is refused and counted. */
  assert_int_equal(cn_atoms_count(t), 5);
  assert_int_equal(cn_atoms_intern_status(t, "sixth", 5, &got), CN_ELIMIT);
  assert_null(got);
  assert_int_equal(cn_atoms_intern_status(NULL, "x", 1, &got), CN_EINVAL);
  assert_null(cn_atoms_get(t, "seventh"));
  assert_int_equal(cn_atoms_refused(t), 2);
  assert_ptr_equal(cn_atoms_get(t, "abc"), a); /* existing atoms are still found when full */
  cn_atoms_free(t);

  /* A full table makes decoding fail with CN_ELIMIT. */
  assert_int_equal(cn_atoms_new(&t, 1), 0);
  cn_term *x = NULL;
  assert_int_equal(cn_term_from_binary(t, (const uint8_t *)"\x83\x68\x02\x77\x01\x61\x77\x01\x62", 9, NULL, &x),
                   CN_ELIMIT);
  assert_null(x);
  cn_atoms_free(t);

  /* Growth keeps entries in place. */
  assert_int_equal(cn_atoms_new(&t, 0), 0);
  const cn_atom *first = cn_atoms_get(t, "first");
  char nm[32];
  for (int i = 0; i < 10000; i++) {
    snprintf(nm, sizeof nm, "atom_%d", i);
    assert_non_null(cn_atoms_get(t, nm));
  }
  assert_ptr_equal(first, cn_atoms_get(t, "first"));
  assert_string_equal(first->name, "first");
  assert_int_equal(cn_atoms_count(t), 10001);
  cn_atoms_free(t);

  /* (NULL, 0) is the empty atom. Its lookup compared 0 bytes at NULL: memcmp's arguments must not be NULL even
   * then (UBSan: null pointer passed as argument 2, which is declared to never be null). */
  assert_int_equal(cn_atoms_new(&t, 0), 0);
  const cn_atom *empty = cn_atoms_intern(t, "", 0);
  assert_non_null(empty);
  assert_ptr_equal(empty, cn_atoms_intern(t, NULL, 0));
  assert_int_equal(empty->len, 0);
  cn_atoms_free(t);
}

typedef struct {
  cn_atoms *tab;
  int id;
  const cn_atom *got[3000];
} thr_arg;

static void *intern_thread(void *p) {
  thr_arg *a = p;
  char nm[32];
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 3000; i++) {
      int k = a->id % 2 ? 2999 - i : i; /* two threads go forwards, two backwards */
      snprintf(nm, sizeof nm, "shared_%d", k);
      const cn_atom *at = cn_atoms_get(a->tab, nm);
      if (round == 0) a->got[k] = at;
      else if (a->got[k] != at) a->got[k] = NULL;
      snprintf(nm, sizeof nm, "own_%d_%d", a->id, i);
      cn_atoms_get(a->tab, nm);
    }
  }
  return NULL;
}

static void test_atoms_threads(void **state) {
  (void)state;
  cn_atoms *t;
  assert_int_equal(cn_atoms_new(&t, 0), 0);
  pthread_t th[4];
  thr_arg *args = calloc(4, sizeof *args);
  for (int i = 0; i < 4; i++) {
    args[i].tab = t, args[i].id = i;
    assert_int_equal(pthread_create(&th[i], NULL, intern_thread, &args[i]), 0);
  }
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  for (int k = 0; k < 3000; k++) {
    assert_non_null(args[0].got[k]);
    for (int i = 1; i < 4; i++) assert_ptr_equal(args[0].got[k], args[i].got[k]);
  }
  assert_int_equal(cn_atoms_count(t), 3000 + 4 * 3000);
  free(args);
  cn_atoms_free(t);
}

int main(void) {
  cn_replace_allocator(t_malloc, t_realloc, t_calloc, t_free);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_atoms, setup, teardown),
      cmocka_unit_test_setup_teardown(test_atoms_threads, setup, teardown),
      cmocka_unit_test_setup_teardown(test_constructors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_single_block, setup, teardown),
      cmocka_unit_test_setup_teardown(test_atom_cache, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cache_equal, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cache_grows, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pid_fields, setup, teardown),
      cmocka_unit_test_setup_teardown(test_id_eq, setup, teardown),
      cmocka_unit_test_setup_teardown(test_print, setup, teardown),
  };
  int fails = cmocka_run_group_tests(tests, NULL, NULL);
  return fails;
}
