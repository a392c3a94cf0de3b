/* test_order.c: Erlang term order and equality in C (term/order.c): the type order, numbers across integer
 * and float, maps (size, key order, values; small and large), lists, bitstrings, identifiers, funs, =:= and
 * ==, deep terms and allocation failures, and -0.0 per OTP release. Expected results come from OTP 25 (and
 * 27/29 for the releases). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cn_term.h"
#include "testutil.h"

/* The per-test atom table and helpers come from testutil. */
#define A tt_atoms
#define setup tt_setup
#define teardown tt_teardown
#define atom tt_atom
#define from_hex tt_from_hex

static int sgn(int c) { return c < 0 ? -1 : c > 0; }

/* Checks a < b (want -1), a == b (0) or a > b (1) both ways round, and whether a =:= b; frees both. */
static void rel(cn_term *a, cn_term *b, int want, bool exact_eq, const char *what) {
  assert_non_null(a);
  assert_non_null(b);
  int c = sgn(cn_term_cmp(a, b)), d = sgn(cn_term_cmp(b, a));
  if (c != want || d != -want || cn_term_arith_eq(a, b) != (want == 0) || cn_term_exact_eq(a, b) != exact_eq)
    fprintf(stderr, "%s: cmp %d/%d want %d, == %d, =:= %d want %d\n", what, c, d, want, cn_term_arith_eq(a, b),
            cn_term_exact_eq(a, b), exact_eq);
  assert_int_equal(c, want);
  assert_int_equal(d, -want);
  assert_int_equal(cn_term_arith_eq(a, b), want == 0);
  assert_int_equal(cn_term_exact_eq(a, b), exact_eq);
  int e;
  assert_int_equal(cn_term_compare_checked(a, b, true, &e), 0);
  assert_int_equal(e == 0, exact_eq);
  cn_term_free(a);
  cn_term_free(b);
}

#define LT(a, b, what) rel(a, b, -1, false, what)
#define EQ(a, b, what) rel(a, b, 0, false, what)  /* == but not =:= */
#define SAME(a, b, what) rel(a, b, 0, true, what) /* =:= */

static cn_term *big(int neg, unsigned bit) { /* +/- 2^bit */
  uint8_t mag[140] = {0};
  mag[bit / 8] = (uint8_t)(1u << (bit % 8));
  return cn_mk_big(neg, mag, bit / 8 + 1);
}

static void test_numbers(void **state) {
  (void)state;
  /* The named cases: 1 < 1.0 is false, 1 == 1.0 is true, 1 =:= 1.0 is false. */
  EQ(cn_mk_int(1), cn_mk_float(1.0), "1 vs 1.0");
  SAME(cn_mk_float(0.0), cn_mk_float(-0.0), "0.0 =:= -0.0 on OTP 25");
  EQ(cn_mk_int(0), cn_mk_float(-0.0), "0 == -0.0");
  LT(cn_mk_int(1), cn_mk_float(1.5), "1 < 1.5");
  LT(cn_mk_float(0.5), cn_mk_int(1), "0.5 < 1");
  LT(cn_mk_int(-2), cn_mk_float(-1.5), "-2 < -1.5");
  /* Around 2^53, 2^63 and 2^64 no rounding of the integer may happen. */
  LT(cn_mk_float(9007199254740992.0), cn_mk_int(9007199254740993), "2^53 float < 2^53+1");
  EQ(cn_mk_float(9007199254740992.0), cn_mk_int(9007199254740992), "2^53");
  LT(cn_mk_int(INT64_MAX), cn_mk_float(9223372036854775808.0), "2^63-1 < 2^63 float");
  EQ(big(0, 63), cn_mk_float(9223372036854775808.0), "2^63 big == float");
  EQ(cn_mk_int(INT64_MIN), cn_mk_float(-9223372036854775808.0), "-2^63");
  EQ(big(0, 64), cn_mk_float(18446744073709551616.0), "2^64");
  LT(big(0, 64), cn_mk_float(18446744073709555712.0), "2^64 < next float");
  LT(cn_mk_float(1e300), big(0, 1000), "1e300 < 2^1000");
  LT(big(1, 1000), cn_mk_float(-1e300), "-2^1000 < -1e300");
  EQ(big(0, 1000), cn_mk_float(1.0715086071862673e301), "2^1000 == its float");
  LT(cn_mk_float(1.7976931348623157e308), big(0, 1024), "max float < 2^1024");
  LT(big(1, 200), cn_mk_int(INT64_MIN), "-2^200 < min int64");
  LT(cn_mk_int(INT64_MAX), big(0, 64), "max int64 < 2^64");
  LT(big(0, 64), big(0, 65), "2^64 < 2^65");
  LT(big(1, 65), big(1, 64), "-2^65 < -2^64");
  LT(cn_mk_float(5e-324), cn_mk_int(1), "denormal < 1");
  LT(cn_mk_int(0), cn_mk_float(5e-324), "0 < denormal");
}

/* number < atom < reference < fun < port < pid < tuple < map < nil < list < bitstring; local < export funs. */
static void test_type_order(void **state) {
  (void)state;
  cn_pid pid = {cn_atoms_get(A, "a@h"), 1, 0, 1};
  cn_port port = {cn_atoms_get(A, "a@h"), 1, 1};
  cn_ref ref = {cn_atoms_get(A, "a@h"), 1, 3, {1, 2, 3}};
  for (int i = 0; i < 12; i++)
    for (int j = 0; j < 12; j++) {
      cn_term *t[2];
      for (int k = 0; k < 2; k++) {
        switch (k ? j : i) {
        case 0: t[k] = cn_mk_big(0, (const uint8_t *)"\0\0\0\0\0\0\0\0\0\1", 10); break;
        case 1: t[k] = atom("a"); break;
        case 2: t[k] = cn_mk_ref(ref); break;
        case 3:
          t[k] = from_hex("8370000000460100000000000000000000000000000000000000050000000064000570726F62656107610958"
                          "64000D6E6F6E6F6465406E6F686F7374000000090000000000000000");
          break;                                                                /* a local fun */
        case 4: t[k] = from_hex("83716400056C697374736400036D61706102"); break; /* fun lists:map/2 */
        case 5: t[k] = cn_mk_port(port); break;
        case 6: t[k] = cn_mk_pid(pid); break;
        case 7: t[k] = cn_mk_tuple(0); break;
        case 8: t[k] = cn_mk_map(0, NULL); break;
        case 9: t[k] = cn_mk_nil(); break;
        case 10: t[k] = cn_mk_list(1, cn_mk_int(0)); break;
        default: t[k] = cn_mk_binary("", 0); break;
        }
      }
      rel(t[0], t[1], i < j ? -1 : i > j, i == j, "type order");
    }
}

static void test_maps(void **state) {
  (void)state;
  cn_term *kv[6];
  /* Size first: #{z => 9} < #{a => 1, b => 2}. */
  kv[0] = atom("z"), kv[1] = cn_mk_int(9);
  cn_term *m1 = cn_mk_map(1, kv);
  kv[0] = atom("a"), kv[1] = cn_mk_int(1), kv[2] = atom("b"), kv[3] = cn_mk_int(2);
  LT(m1, cn_mk_map(2, kv), "size first");
  /* Keys in key order, where integers come before floats: #{2 => a} < #{1.0 => a}. */
  kv[0] = cn_mk_int(2), kv[1] = atom("a");
  m1 = cn_mk_map(1, kv);
  kv[0] = cn_mk_float(1.0), kv[1] = atom("a");
  LT(m1, cn_mk_map(1, kv), "#{2 => a} < #{1.0 => a}");
  /* #{1 => a} /= #{1.0 => a}, but #{a => 1} == #{a => 1.0}. */
  kv[0] = cn_mk_int(1), kv[1] = atom("a");
  m1 = cn_mk_map(1, kv);
  kv[0] = cn_mk_float(1.0), kv[1] = atom("a");
  LT(m1, cn_mk_map(1, kv), "#{1 => a} < #{1.0 => a}");
  kv[0] = atom("a"), kv[1] = cn_mk_int(1);
  m1 = cn_mk_map(1, kv);
  kv[0] = atom("a"), kv[1] = cn_mk_float(1.0);
  EQ(m1, cn_mk_map(1, kv), "#{a => 1} == #{a => 1.0}");
  /* Values decide in key order, not storage order: #{a => 2, b => 1} > #{b => 2, a => 1}. */
  kv[0] = atom("a"), kv[1] = cn_mk_int(2), kv[2] = atom("b"), kv[3] = cn_mk_int(1);
  m1 = cn_mk_map(2, kv);
  kv[0] = atom("b"), kv[1] = cn_mk_int(2), kv[2] = atom("a"), kv[3] = cn_mk_int(1);
  LT(cn_mk_map(2, kv), m1, "values in key order");
  /* The same pairs in any order are =:=. */
  kv[0] = atom("x"), kv[1] = cn_mk_int(1), kv[2] = cn_mk_int(5), kv[3] = cn_mk_nil(), kv[4] = cn_mk_float(2.0),
  kv[5] = atom("y");
  m1 = cn_mk_map(3, kv);
  kv[0] = cn_mk_float(2.0), kv[1] = atom("y"), kv[2] = atom("x"), kv[3] = cn_mk_int(1), kv[4] = cn_mk_int(5),
  kv[5] = cn_mk_nil();
  SAME(m1, cn_mk_map(3, kv), "order of pairs");
  /* Large maps (a BEAM HAMT above 32 keys): keys out of order, one differing value picked by key order. */
  for (int n = 33; n <= 100; n += 67) {
    cn_term **a = malloc(4 * (size_t)n * sizeof *a), **b = a + 2 * n;
    for (int i = 0; i < n; i++) {
      int j = (i * 7 + 3) % n; /* a permutation */
      a[2 * i] = cn_mk_int(i), a[2 * i + 1] = cn_mk_int(i);
      b[2 * j] = cn_mk_int(i), b[2 * j + 1] = cn_mk_int(i == 5 ? 100 : i == 20 ? -100 : i);
    }
    cn_term *ma = cn_mk_map((size_t)n, a), *mb = cn_mk_map((size_t)n, b);
    cn_term *mc = cn_term_copy(ma);
    LT(ma, mb, "large: key 5 decides before key 20"); /* #{5 => 5} part < #{5 => 100} */
    /* One key replaced: the smallest key in only one map decides. */
    cn_term *md = cn_term_copy(mc);
    for (int i = 0; i < n; i++)
      if (md->v.map.kv[2 * i].v.i == 7)
        md->v.map.kv[2 * i].v.i = 1000; /* keys {0..6, 8.., 1000} vs {0..}: 7 only in mc */
    LT(mc, md, "large: smallest differing key");
    free(a);
  }
  /* lists:sort([#{1.0 => a}, #{2 => a}, #{1 => b}, #{1 => a}]) on OTP 25. */
  cn_term *m[4];
  kv[0] = cn_mk_int(1), kv[1] = atom("a");
  m[0] = cn_mk_map(1, kv);
  kv[0] = cn_mk_int(1), kv[1] = atom("b");
  m[1] = cn_mk_map(1, kv);
  kv[0] = cn_mk_int(2), kv[1] = atom("a");
  m[2] = cn_mk_map(1, kv);
  kv[0] = cn_mk_float(1.0), kv[1] = atom("a");
  m[3] = cn_mk_map(1, kv);
  for (int i = 0; i < 3; i++) assert_true(cn_term_cmp(m[i], m[i + 1]) < 0);
  for (int i = 0; i < 4; i++) cn_term_free(m[i]);
}

static void test_lists_binaries(void **state) {
  (void)state;
  LT(cn_mk_list(2, cn_mk_int(1), cn_mk_int(2)), cn_mk_list(3, cn_mk_int(1), cn_mk_int(2), cn_mk_int(3)), "prefix");
  cn_term *one = cn_mk_int(1);
  LT(cn_mk_listv(1, &one, cn_mk_int(2)), cn_mk_list(2, cn_mk_int(1), cn_mk_int(2)), "[1|2] < [1,2]");
  one = cn_mk_int(1);
  LT(cn_mk_list(2, cn_mk_int(1), cn_mk_int(2)), cn_mk_listv(1, &one, cn_mk_binary("", 0)), "[1,2] < [1|<<>>]");
  LT(cn_mk_string("abc"), cn_mk_string("abd"), "strings");
  LT(cn_mk_nil(), cn_mk_string("\x01"), "[] < [1]");
  EQ(cn_mk_list(2, cn_mk_int(1), cn_mk_tuple(1, cn_mk_int(2))),
     cn_mk_list(2, cn_mk_float(1.0), cn_mk_tuple(1, cn_mk_float(2.0))), "[1,{2}] == [1.0,{2.0}]");
  /* Bitstrings compare bit by bit, then by length (values from OTP 25). */
  uint8_t b1 = 0x80, b0 = 0, one8 = 1;
  LT(cn_mk_binary(&one8, 1), cn_mk_bitstring(&b1, 1, 1), "<<1>> < <<1:1>>");
  LT(cn_mk_bitstring(&b0, 1, 1), cn_mk_binary(&b0, 1), "<<0:1>> < <<0>>");
  const uint8_t x[2] = {1, 0x40}, y[2] = {1, 2}, z[2] = {1, 0x80};
  LT(cn_mk_binary(y, 2), cn_mk_bitstring(x, 2, 3), "<<1,2>> < <<1,2:3>>");
  LT(cn_mk_bitstring(z, 2, 7), cn_mk_binary(z, 2), "<<1,64:7>> < <<1,128>>");
  uint8_t junk = 0xFF;
  SAME(cn_mk_bitstring(&b1, 1, 1), cn_mk_bitstring(&junk, 1, 1), "bits past the end do not count");
  LT(cn_mk_binary("ab", 2), cn_mk_binary("abc", 3), "binary prefix");
}

static void test_identifiers(void **state) {
  (void)state;
  const cn_atom *a = cn_atoms_get(A, "a@h"), *b = cn_atoms_get(A, "b@h");
  /* Pids: serial, then number, then node (name, creation). */
  LT(cn_mk_pid((cn_pid){a, 2, 1, 1}), cn_mk_pid((cn_pid){a, 1, 2, 1}), "pid serial first");
  LT(cn_mk_pid((cn_pid){b, 1, 0, 1}), cn_mk_pid((cn_pid){a, 2, 0, 1}), "pid number before node");
  LT(cn_mk_pid((cn_pid){a, 1, 0, 1}), cn_mk_pid((cn_pid){a, 1, 0, 2}), "pid creation");
  LT(cn_mk_pid((cn_pid){a, 1, 0, 1}), cn_mk_pid((cn_pid){a, 0x80000000u, 0, 1}), "pid number unsigned");
  SAME(cn_mk_pid((cn_pid){a, 1, 0, 1}), cn_mk_pid((cn_pid){a, 1, 0, 1}), "pid");
  /* Ports: node first, then the 64-bit number, unsigned. */
  LT(cn_mk_port((cn_port){a, 2, 1}), cn_mk_port((cn_port){b, 1, 1}), "port node first");
  LT(cn_mk_port((cn_port){a, 0, 1}), cn_mk_port((cn_port){a, UINT64_C(0x8000000000000001), 1}), "port unsigned");
  /* Refs: node, then the words from the most significant; missing words are zero. */
  LT(cn_mk_ref((cn_ref){a, 1, 3, {9, 0, 1}}), cn_mk_ref((cn_ref){a, 1, 3, {1, 0, 2}}), "ref high word first");
  SAME(cn_mk_ref((cn_ref){a, 1, 3, {1, 2, 3}}), cn_mk_ref((cn_ref){a, 1, 5, {1, 2, 3, 0, 0}}), "ref lengths");
  LT(cn_mk_ref((cn_ref){a, 1, 3, {1, 2, 3}}), cn_mk_ref((cn_ref){a, 1, 4, {1, 2, 3, 1}}), "ref longer");
  LT(cn_mk_ref((cn_ref){a, 9, 3, {1, 2, 3}}), cn_mk_ref((cn_ref){b, 1, 3, {1, 2, 3}}), "ref node");
  /* Atoms by text, code point order: 'z' < 'é' < 'λ'; the same text from two tables is the same atom. */
  LT(atom("z"), atom("\xc3\xa9"), "z < é");
  LT(atom("\xc3\xa9"), atom("\xce\xbb"), "é < λ");
  LT(atom("ab"), atom("abc"), "prefix atom");
  cn_atoms *other;
  assert_int_equal(cn_atoms_new(&other, 0), 0);
  SAME(atom("same"), cn_mk_atom(cn_atoms_get(other, "same")), "atoms of two tables");
  cn_atoms_free(other);
}

/* Funs (OTP 25): a local fun is module, Index, OldUniq and free variables; MD5, arity and pid do not count. */
static void test_funs(void **state) {
  (void)state;
  /* mk(Index, OldUniq, Pid node, Free) from probe.erl: Index 5 / OldIndex 7 / OldUniq 9, no free variables. */
  const char *base =
      "8370000000460100000000000000000000000000000000000000050000000064000570726F6265610761095864000D6E6F6E"
      "6F6465406E6F686F7374000000090000000000000000";
  /* The same with another MD5 and another creator pid: still =:=. */
  const char *other =
      "83700000003C01FF000000000000000000000000000000000000050000000064000570726F626561076109586400036140"
      "62000000010000000000000001";
  SAME(from_hex(base), from_hex(other), "fun identity ignores MD5 and pid");
  /* Index 6 > 5; OldUniq compares as a wrapped 32-bit difference. */
  const char *idx6 =
      "8370000000460100000000000000000000000000000000000000060000000064000570726F6265610761095864000D6E6F6E"
      "6F6465406E6F686F7374000000090000000000000000";
  LT(from_hex(base), from_hex(idx6), "fun index");
  /* Free variables compare like tuple elements: [a, 1] == [a, 1.0], not =:=. */
  const char *env1 =
      "8370000000420100000000000000000000000000000000000000050000000264000570726F626561076109586400036140"
      "62000000010000000000000001640001616101";
  const char *env1f =
      "8370000000490100000000000000000000000000000000000000050000000264000570726F62656107610958640003614"
      "06200000001000000000000000164000161463FF0000000000000";
  EQ(from_hex(env1), from_hex(env1f), "fun free variables ==");
  /* Export funs: module, function, arity; and every local fun is below every export fun. */
  LT(from_hex("83716400056C697374736400036D61706102"), from_hex("83716400056C697374736400036D61706103"),
     "export arity");
  LT(from_hex(base), from_hex("837164000161640001616100"), "local < export");
}

/* Wraps t in n levels of #{k => _}, [_] and {_} in turn. */
static cn_term *nest(cn_term *t, int n) {
  for (int i = 0; i < n; i++) {
    if (i % 3 == 0) {
      cn_term *kv[2] = {atom("k"), t};
      t = cn_mk_map(1, kv);
    } else {
      t = i % 3 == 1 ? cn_mk_list(1, t) : cn_mk_tuple(1, t);
    }
  }
  return t;
}

/* 100,000 nested levels and a 1,000,000-element list: heap, not stack. (cn_term_copy recurses, so the deep
 * twins are built, not copied.) */
static void test_deep(void **state) {
  (void)state;
  cn_term *a = nest(cn_mk_int(1), 100000), *a2 = nest(cn_mk_int(1), 100000);
  cn_term *b = nest(cn_mk_float(1.0), 100000), *c = nest(cn_mk_int(2), 100000);
  assert_non_null(a), assert_non_null(a2), assert_non_null(b), assert_non_null(c);
  assert_true(cn_term_arith_eq(a, b));
  assert_false(cn_term_exact_eq(a, b));
  assert_true(cn_term_exact_eq(a, a2));
  assert_true(cn_term_cmp(a, c) < 0);
  assert_true(cn_term_cmp(c, b) > 0);
  assert_true(cn_phash2(a) != cn_phash2(b));
  cn_term_free(a), cn_term_free(a2), cn_term_free(b), cn_term_free(c);
  cn_term **e = malloc(1000000 * sizeof *e), **f = malloc(1000000 * sizeof *f);
  for (int i = 0; i < 1000000; i++) e[i] = cn_mk_int(i), f[i] = i == 999999 ? cn_mk_float(1e9) : cn_mk_float(i);
  cn_term *l1 = cn_mk_listv(1000000, e, NULL), *l2 = cn_mk_listv(1000000, f, NULL);
  free(e), free(f);
  assert_true(cn_term_cmp(l1, l2) < 0);
  cn_term_free(l1), cn_term_free(l2);
}

/* The 2,000 vector terms: the order is antisymmetric, reflexive and agrees with =:= on copies. */
static void test_vector_terms(void **state) {
  (void)state;
  char path[512];
  snprintf(path, sizeof path, "%s/phash2_vectors.txt", vectors_dir());
  FILE *fp = fopen(path, "r");
  assert_non_null(fp);
  cn_term *t[2000];
  size_t n = 0;
  char *line = NULL;
  size_t cap = 0;
  while (n < 2000 && getline(&line, &cap, fp) > 0) {
    char *sp = strchr(line, ' ');
    if (!sp) continue;
    *sp = 0;
    t[n++] = from_hex(line);
  }
  free(line);
  fclose(fp);
  assert_int_equal(n, 2000);
  for (size_t i = 0; i < n; i++) {
    cn_term *c = cn_term_copy(t[i]);
    assert_true(cn_term_exact_eq(t[i], c));
    assert_int_equal(cn_term_cmp(t[i], c), 0);
    cn_term_free(c);
    for (size_t j = i + 1; j < n; j += 7) assert_int_equal(sgn(cn_term_cmp(t[i], t[j])), -sgn(cn_term_cmp(t[j], t[i])));
  }
  for (size_t i = 0; i < n; i++) cn_term_free(t[i]);
}

/* -0.0 and 0.0 per OTP release. The vectors were measured with term_to_binary/1, erlang:'<'/2, == and =:= on
 * OTP 25.2 (Debian 12), OTP 27.3 (Debian 13) and OTP 29.1 (Debian sid); 27 and 29 agree on every row. A and B
 * are the bytes OTP 27/29 send; lt25/eq25 are OTP 25's answers for the same values (-2: the pair cannot exist on
 * OTP 25, whose maps hold one of the two keys). cmp: -1 A < B, 0 A == B, 1 otherwise. */
static const struct zvec {
  const char *a, *b;
  int cmp25, same25, cmp27, same27;
} zvecs[] = {
    {"83460000000000000000", "83468000000000000000", 0, 1, 0, 0},                                 /* 0.0, -0.0 */
    {"836801460000000000000000", "836801468000000000000000", 0, 1, 0, 0},                         /* {0.0}, {-0.0} */
    {"836C000000014680000000000000006A", "836C000000014600000000000000006A", 0, 1, 0, 0},         /* [-0.0], [0.0] */
    {"837400000001460000000000000000770161", "837400000001468000000000000000770161", 0, 1, 1, 0}, /* #{0.0=>a} */
    {"837400000001770161460000000000000000", "837400000001770161468000000000000000", 0, 1, 0, 0}, /* #{a=>0.0} */
    {"837400000002468000000000000000770161460000000000000000770162", /* #{-0.0=>a, 0.0=>b} */
     "837400000002468000000000000000770162460000000000000000770161", -2, 0, -1, 0},
    {"836100", "83468000000000000000", 0, 0, 0, 0}, /* 0, -0.0 */
    {"83468000000000000000", "83468000000000000000", 0, 1, 0, 1},
    {"837400000002468000000000000000770161460000000000000000770162", "837400000001460000000000000000770161", -2, 0, 1,
     0},
    {"8374000000026101770162460000000000000000770161", "8374000000026101770162468000000000000000770161", 0, 1, 1, 0},
    {"8374000000014680000000000000006101", "83740000000161006101", 1, 0, 1, 0}, /* #{-0.0=>1}, #{0=>1} */
    {"8374000000014680000000000000006101", "837400000001463FF00000000000006101", -1, 0, -1, 0},    /* #{1.0=>1} */
    {"837400000001460000000000000000770178", "837400000001468000000000000000770179", -1, 0, 1, 0}, /* x, y */
};

static void test_otp_releases(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof zvecs / sizeof zvecs[0]; i++) {
    const struct zvec *v = &zvecs[i];
    cn_term *a = from_hex(v->a), *b = from_hex(v->b);
    static const int rels[] = {0, 25, 26, 27, 28, 29, 40};
    for (size_t k = 0; k < sizeof rels / sizeof rels[0]; k++) {
      int rel = rels[k], cmp = rel >= 27 ? v->cmp27 : v->cmp25, same = rel >= 27 ? v->same27 : v->same25;
      if (cmp == -2) continue;
      if (sgn(cn_term_cmp_otp(a, b, rel)) != cmp || cn_term_exact_eq_otp(a, b, rel) != same)
        fprintf(stderr, "row %zu release %d: cmp %d want %d, =:= %d want %d\n", i, rel, cn_term_cmp_otp(a, b, rel), cmp,
                cn_term_exact_eq_otp(a, b, rel), same);
      assert_int_equal(sgn(cn_term_cmp_otp(a, b, rel)), cmp);
      assert_int_equal(sgn(cn_term_cmp_otp(b, a, rel)), -cmp);
      assert_int_equal(cn_term_arith_eq_otp(a, b, rel), cmp == 0);
      assert_int_equal(cn_term_exact_eq_otp(a, b, rel), same);
      int r;
      assert_int_equal(cn_term_compare_otp(a, b, true, rel, &r), 0);
      assert_int_equal(r == 0, same);
      assert_int_equal(cn_term_compare_otp(a, b, false, rel, &r), 0);
      assert_int_equal(sgn(r), cmp);
      if (rel == 0) { /* the forms without a release are OTP 25's */
        assert_int_equal(sgn(cn_term_cmp(a, b)), cmp);
        assert_int_equal(cn_term_exact_eq(a, b), same);
      }
    }
    cn_term_free(a), cn_term_free(b);
  }
  /* The exact order: -0.0 first from OTP 27 (maps:to_list(#{0.0 => a, -0.0 => b}) lists -0.0 first), equal before. */
  cn_term *z = cn_mk_float(0.0), *mz = cn_mk_float(-0.0);
  int r;
  assert_int_equal(cn_term_compare_otp(mz, z, true, 27, &r), 0);
  assert_true(r < 0);
  assert_int_equal(cn_term_compare_otp(z, mz, true, 29, &r), 0);
  assert_true(r > 0);
  assert_int_equal(cn_term_compare_otp(z, mz, true, 25, &r), 0);
  assert_int_equal(r, 0);
  assert_int_equal(cn_term_compare_otp(NULL, z, true, 27, &r), CN_EINVAL);
  assert_int_equal(cn_term_compare_otp(z, mz, true, 27, NULL), CN_EINVAL);
  /* A map built with both keys, stored in the wrong order, is ordered -0.0 first on 27: the value of 0.0 decides
   * second. lists:sort([#{0.0 => 1}, #{-0.0 => 1}, #{0 => 1}, #{-0.0 => 0}]) is [#{0 => 1}, #{-0.0 => 0},
   * #{-0.0 => 1}, #{0.0 => 1}] on 25, 27 and 29. */
  cn_term *kv[4] = {cn_mk_float(0.0), atom("a"), cn_mk_float(-0.0), atom("b")};
  cn_term *m1 = cn_mk_map(2, kv);
  cn_term *kv2[4] = {cn_mk_float(-0.0), atom("b"), cn_mk_float(0.0), atom("a")};
  cn_term *m2 = cn_mk_map(2, kv2);
  assert_true(cn_term_exact_eq_otp(m1, m2, 27));
  cn_term *kv3[4] = {cn_mk_float(-0.0), atom("a"), cn_mk_float(0.0), atom("b")};
  cn_term *m3 = cn_mk_map(2, kv3);
  assert_true(cn_term_cmp_otp(m3, m1, 27) < 0); /* #{-0.0 => a, ...} < #{-0.0 => b, ...} */
  cn_term *kv4[2] = {cn_mk_float(0.0), cn_mk_int(1)}, *kv5[2] = {cn_mk_float(-0.0), cn_mk_int(1)};
  cn_term *kv6[2] = {cn_mk_int(0), cn_mk_int(1)}, *kv7[2] = {cn_mk_float(-0.0), cn_mk_int(0)};
  cn_term *s[4] = {cn_mk_map(1, kv6), cn_mk_map(1, kv7), cn_mk_map(1, kv5), cn_mk_map(1, kv4)};
  for (int i = 0; i < 3; i++) {
    assert_true(cn_term_cmp_otp(s[i], s[i + 1], 27) < 0);
    assert_true(cn_term_cmp_otp(s[i], s[i + 1], 25) <= 0);
  }
  assert_int_equal(cn_term_cmp_otp(s[2], s[3], 25), 0);
  for (int i = 0; i < 4; i++) cn_term_free(s[i]);
  cn_term_free(m1), cn_term_free(m2), cn_term_free(m3), cn_term_free(z), cn_term_free(mz);
}

/* Every allocation failing in turn: a status and no leak, then the right answer. */
static void test_enomem(void **state) {
  (void)state;
  cn_term *a = cn_mk_nil(), *b = cn_mk_nil();
  for (int i = 0; i < 100; i++) {
    cn_term *kv[6] = {atom("z"), a, cn_mk_int(3), cn_mk_int(i), atom("a"), cn_mk_float(i)};
    a = cn_mk_map(3, kv);
    cn_term *kv2[6] = {cn_mk_int(3), cn_mk_int(i), atom("a"), cn_mk_float(i), atom("z"), b};
    b = cn_mk_map(3, kv2);
  }
  long base = ta_live;
  int failures = 0;
  for (long k = 0;; k++) {
    ta_fail_after = k;
    int res = 99;
    int r = cn_term_compare_checked(a, b, true, &res);
    ta_fail_after = -1;
    assert_int_equal(ta_live, base);
    if (r == 0) {
      assert_int_equal(res, 0);
      break;
    }
    assert_int_equal(r, CN_ENOMEM);
    failures++;
  }
  assert_true(failures > 0);
  cn_term_free(a), cn_term_free(b);
}

/* A random term over a small alphabet (so that equal pairs are common): atoms of two tables, small and large
 * integers, floats, binaries and bitstrings, pids, tuples, proper and improper lists, maps in either key order. */
static cn_atoms *other_atoms;
static unsigned rnd_state = 12345;
static unsigned rnd(unsigned n) {
  rnd_state = rnd_state * 1103515245u + 12345u;
  return (rnd_state >> 16) % n;
}
static cn_term *rnd_term(unsigned depth) {
  static const char *names[] = {"a", "b", "key"};
  unsigned k = rnd(depth > 2 ? 8 : 12);
  cn_atoms *tab = rnd(2) ? A : other_atoms;
  switch (k) {
  case 0: return cn_mk_atom(cn_atoms_get(tab, names[rnd(3)]));
  case 1: return cn_mk_int((int64_t)rnd(3) - 1);
  case 2: return rnd(2) ? cn_mk_float((double)rnd(3) - 1) : cn_mk_float(-0.0);
  case 3: return cn_mk_binary("xyz", rnd(3));
  case 4: return cn_mk_bitstring((const uint8_t[]){0xf0 | rnd(2)}, 1, (uint8_t)(4 + rnd(2)));
  case 5: return cn_mk_pid((cn_pid){cn_atoms_get(tab, rnd(2) ? "n@h" : "m@h"), rnd(2), 0, 1 + rnd(2)});
  case 6: return cn_mk_nil();
  case 7: return rnd(2) ? cn_mk_int(INT64_MAX - rnd(2)) : big(rnd(2), 70);
  case 8:
  case 9: {
    cn_term *e[3];
    unsigned n = rnd(3);
    for (unsigned i = 0; i < n; i++) e[i] = rnd_term(depth + 1);
    if (k == 8) return cn_mk_tuplev(n, e);
    return n ? cn_mk_listv(n, e, rnd(4) ? NULL : cn_mk_binary("t", rnd(2))) : cn_mk_nil();
  }
  default: {
    cn_term *kv[4];
    unsigned n = rnd(3);
    kv[0] = cn_mk_atom(cn_atoms_get(tab, "a")), kv[1] = rnd_term(depth + 1);
    kv[2] = rnd(2) ? cn_mk_int(1) : cn_mk_float(1.0), kv[3] = rnd_term(depth + 1);
    if (n == 2 && rnd(2)) { /* the other key order */
      cn_term *t0 = kv[0], *t1 = kv[1];
      kv[0] = kv[2], kv[1] = kv[3], kv[2] = t0, kv[3] = t1;
    }
    for (unsigned i = 2 * n; i < 4; i++) cn_term_free(kv[i]);
    return cn_mk_map(n, kv);
  }
  }
}

/* =:= (with its shortcut for keys and entries) agrees with term order's exact mode on random pairs. */
static void test_exact_eq_random(void **state) {
  (void)state;
  assert_int_equal(cn_atoms_new(&other_atoms, 0), 0);
  unsigned same = 0;
  for (int i = 0; i < 200000; i++) {
    cn_term *a = rnd_term(0), *b = rnd_term(0);
    assert_non_null(a);
    assert_non_null(b);
    for (int rel = 25; rel <= 27; rel += 2) {
      int c;
      assert_int_equal(cn_term_compare_otp(a, b, true, rel, &c), 0);
      if (cn_term_exact_eq_otp(a, b, rel) != (c == 0)) {
        cn_buf pa = {0}, pb = {0};
        cn_term_print(a, &pa), cn_term_print(b, &pb);
        fprintf(stderr, "%.*s vs %.*s\n", (int)pa.len, (const char *)pa.data, (int)pb.len, (const char *)pb.data);
        fail_msg("exact_eq disagrees with compare (OTP %d)", rel);
      }
      same += c == 0;
    }
    cn_term_free(a);
    cn_term_free(b);
  }
  assert_true(same > 1000);
  cn_atoms_free(other_atoms);
}

int main(void) {
  ta_install();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_numbers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_type_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_maps, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lists_binaries, setup, teardown),
      cmocka_unit_test_setup_teardown(test_identifiers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_funs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_deep, setup, teardown),
      cmocka_unit_test_setup_teardown(test_vector_terms, setup, teardown),
      cmocka_unit_test_setup_teardown(test_enomem, setup, teardown),
      cmocka_unit_test_setup_teardown(test_otp_releases, setup, teardown),
      cmocka_unit_test_setup_teardown(test_exact_eq_random, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
