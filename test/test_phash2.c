/* test_phash2.c: erlang:phash2/1,2 in C (term/phash2.c) against values taken from OTP 25: the 2,000 shared
 * vectors, the worked examples of horde-wire.md section 6, the tricky cases by name, depth and allocation. */
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

static uint32_t h32(const cn_term *t) { return cn_phash2_range(t, UINT64_C(1) << 32); }

/* Checks both results and frees t. */
static void expect(cn_term *t, uint32_t full, uint32_t p27, const char *what) {
  assert_non_null(t);
  if (h32(t) != full || cn_phash2(t) != p27)
    fprintf(stderr, "%s: got %u %u, want %u %u\n", what, h32(t), cn_phash2(t), full, p27);
  assert_int_equal(h32(t), full);
  assert_int_equal(cn_phash2(t), p27);
  cn_term_free(t);
}

/* Every line of phash2_vectors.txt: `<hex ETF> <phash2(T, 2^32)> <phash2(T)>`. */
static void test_vectors(void **state) {
  (void)state;
  char path[512];
  snprintf(path, sizeof path, "%s/phash2_vectors.txt", vectors_dir());
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char *line = NULL;
  size_t cap = 0, count = 0, ok = 0;
  while (getline(&line, &cap, f) > 0) {
    char *sp = strchr(line, ' ');
    if (!sp) continue;
    *sp = 0;
    const char *hex = line;
    unsigned long full, p27;
    if (sscanf(sp + 1, "%lu %lu", &full, &p27) != 2) continue;
    count++;
    cn_term *t = from_hex(hex);
    uint32_t r27, r32, r7;
    assert_int_equal(cn_phash2_checked(t, 0, &r27), 0);
    assert_int_equal(cn_phash2_checked(t, UINT64_C(1) << 32, &r32), 0);
    assert_int_equal(cn_phash2_checked(t, 7, &r7), 0);
    if (r32 == full && r27 == p27 && r7 == full % 7) ok++;
    else fprintf(stderr, "vector %zu: got %u %u, want %lu %lu\n", count, r32, r27, full, p27);
    cn_term_free(t);
  }
  free(line);
  fclose(f);
  assert_int_equal(count, 2000);
  assert_int_equal(ok, 2000);
}

static cn_term *big_pos(const char *hex_le) {
  uint8_t *b;
  long n = hex_decode(hex_le, &b);
  cn_term *t = cn_mk_big(0, b, (size_t)n);
  free(b);
  return t;
}

/* The table of horde-wire.md section 6, built with the constructors (no decoder involved). */
static void test_spec_examples(void **state) {
  (void)state;
  expect(cn_mk_int(0), 3175731469u, 88723725u, "0");
  expect(cn_mk_int(1), 539485162u, 2614250u, "1");
  expect(cn_mk_int(-1), 1117813597u, 44071773u, "-1");
  expect(cn_mk_int(255), 715823293u, 44734653u, "255");
  expect(cn_mk_int(134217727), 4273352567u, 112602999u, "2^27-1");
  expect(cn_mk_int(134217728), 2562491755u, 12354923u, "2^27");
  expect(cn_mk_int(-134217729), 1418916782u, 76739502u, "-2^27-1");
  expect(cn_mk_int(4294967296), 2108323275u, 95057355u, "2^32");
  expect(big_pos("000000000000000001"), 2519041713u, 103122609u, "2^64");
  expect(cn_mk_int(-576460752000000000), 1512936557u, 36541549u, "-576460752000000000");
  expect(cn_mk_float(1.0), 3029937084u, 77147068u, "1.0");
  expect(cn_mk_float(0.0), 423528920u, 20875736u, "0.0");
  expect(cn_mk_float(-0.0), 423528920u, 20875736u, "-0.0 hashes as 0.0");
  /* Maps with both zeros, as OTP 27+ sends them (term_to_binary there). Measured with erlang:phash2/1,2 on OTP
   * 27.3 (Debian 13) and 29.1 (Debian sid), which agree: phash2 is the same in every release, -0.0 hashing as 0.0,
   * so a map with both keys hashes as if they were equal keys, whatever their values. */
  expect(from_hex("837400000002468000000000000000770162460000000000000000770161"), 3721541669u, 97663013u,
         "#{-0.0 => b, 0.0 => a}");
  expect(from_hex("837400000002468000000000000000770161460000000000000000770162"), 3721541669u, 97663013u,
         "#{-0.0 => a, 0.0 => b}");
  expect(from_hex("836802468000000000000000460000000000000000"), 3573090733u, 83429805u, "{-0.0, 0.0}");
  expect(from_hex("837400000001770161468000000000000000"), 1038238399u, 98714303u, "#{a => -0.0}");
  expect(from_hex("836C00000001740000000361016103468000000000000000610146000000000000000061026A"), 3918794264u,
         26480152u, "[#{1 => 3, -0.0 => 1, 0.0 => 2}]");
  expect(atom("a"), 97u, 97u, "a");
  expect(atom(""), 0u, 0u, "''");
  expect(atom("Elixir.MapSet"), 252226004u, 118008276u, "Elixir.MapSet");
  expect(atom("reg.Crdt"), 195211060u, 60993332u, "reg.Crdt");
  expect(cn_mk_binary("", 0), 147926629u, 13708901u, "<<>>");
  expect(cn_mk_binary("abc", 3), 1306188027u, 98228475u, "<<\"abc\">>");
  expect(cn_mk_binary("hello world!", 12), 965223795u, 25699699u, "<<\"hello world!\">>");
  uint8_t five3 = 5 << 5;
  expect(cn_mk_bitstring(&five3, 1, 3), 3354768668u, 133543196u, "<<5:3>>");
  expect(cn_mk_nil(), 3468870702u, 113427502u, "[]");
  expect(cn_mk_string("abc"), 519996486u, 117343302u, "\"abc\"");
  expect(cn_mk_list(2, atom("a"), atom("b")), 3632954310u, 9075654u, "[a,b]");
  cn_term *one = cn_mk_int(1);
  expect(cn_mk_listv(1, &one, cn_mk_int(2)), 3844221178u, 86124794u, "[1|2]");
  expect(cn_mk_list(1, cn_mk_int(256)), 1684221134u, 73608398u, "[256]");
  expect(cn_mk_tuple(0), 221703996u, 87486268u, "{}");
  expect(cn_mk_tuple(1, cn_mk_nil()), 1775079505u, 30249041u, "{[]}");
  expect(cn_mk_tuple(2, atom("a"), cn_mk_int(1)), 4098956996u, 72425156u, "{a,1}");
  expect(cn_mk_tuple(2, atom("member"), cn_mk_tuple(2, atom("reg"), atom("a@vm"))), 1849725848u, 104895384u,
         "{member,{reg,'a@vm'}}");
  expect(cn_mk_tuple(2, cn_mk_tuple(2, atom("dsup"), atom("a@vm")), cn_mk_int(1)), 924242821u, 118936453u,
         "{{dsup,'a@vm'},1}");
  expect(cn_mk_map(0, NULL), 844985373u, 39679005u, "#{}");
  cn_term *kv[2] = {atom("a"), cn_mk_int(1)};
  expect(cn_mk_map(1, kv), 1401795262u, 59617982u, "#{a => 1}");
  cn_pid pid = {cn_atoms_get(A, "x@y"), 117, 3, 9};
  expect(cn_mk_pid(pid), 3193574584u, 106566840u, "pid with ID 117");
  cn_ref ref = {cn_atoms_get(A, "x@y"), 1, 3, {7, 99, 12345}};
  expect(cn_mk_ref(ref), 464301042u, 61647858u, "ref with first word 7");

  /* Merkle checks from a live trace: hash({member,{reg,'a@vm'}}) and a root from its two children. */
  cn_term *m = cn_mk_tuple(2, atom("member"), cn_mk_tuple(2, atom("reg"), atom("a@vm")));
  assert_int_equal(h32(m), (110u << 24) | (64u << 16) | (147u << 8) | 152u);
  cn_term_free(m);
  const uint8_t l[4] = {239, 125, 233, 218}, r[4] = {228, 23, 225, 6};
  cn_term *root = cn_mk_tuple(2, cn_mk_binary(l, 4), cn_mk_binary(r, 4));
  assert_int_equal(h32(root), (27u << 24) | (207u << 16) | (118u << 8) | 175u);
  cn_term_free(root);
}

/* The cases that are easy to get wrong, by name. */
static void test_tricky(void **state) {
  (void)state;
  /* Remote vs local pid: only the number counts, not node, serial or creation. */
  cn_pid local = {cn_atoms_get(A, "cnode@127.0.0.1"), 117, 0, 1}, remote = {cn_atoms_get(A, "b@h"), 117, 5, 77};
  cn_term *pl = cn_mk_pid(local), *pr = cn_mk_pid(remote);
  assert_int_equal(h32(pl), h32(pr));
  assert_false(cn_term_exact_eq(pl, pr));
  cn_term_free(pl), cn_term_free(pr);
  /* Ports hash both halves of a 64-bit number (values from OTP 25 with V4_PORT_EXT). */
  cn_port p1 = {cn_atoms_get(A, "a@h"), UINT64_C(0x123456789), 1}, p2 = {cn_atoms_get(A, "a@h"), UINT64_MAX, 1};
  expect(cn_mk_port(p1), 2105033542u, 2105033542u & ((1u << 27) - 1), "port 0x123456789");
  expect(cn_mk_port(p2), 2167616941u, 2167616941u & ((1u << 27) - 1), "port 2^64-1");
  /* Bitstring tails: <<>> and <<0:1>> differ; the bits past the end never count. */
  uint8_t z = 0, junk = 0x7F;
  cn_term *e = cn_mk_binary("", 0), *b1 = cn_mk_bitstring(&z, 1, 1), *b2 = cn_mk_bitstring(&junk, 1, 1);
  assert_int_not_equal(h32(e), h32(b1));
  assert_int_equal(h32(b1), h32(b2));
  cn_term_free(e), cn_term_free(b1), cn_term_free(b2);
  /* A latin-1 atom hashes alike from ATOM_EXT, SMALL_ATOM_EXT (latin-1 bytes) and SMALL_ATOM_UTF8_EXT. */
  cn_term *l1 = from_hex("83640001E9"), *l2 = from_hex("837301E9"), *u1 = from_hex("837702C3A9");
  assert_int_equal(h32(l1), 233u);
  assert_int_equal(h32(l2), 233u);
  assert_int_equal(h32(u1), 233u);
  cn_term_free(l1), cn_term_free(l2), cn_term_free(u1);
  /* Maps: the order of pairs does not matter, small or large (100 keys, as a BEAM HAMT). */
  for (int n = 3; n <= 100; n += 97) {
    cn_term **kv1 = malloc(4 * (size_t)n * sizeof *kv1), **kv2 = kv1 + 2 * n;
    for (int i = 0; i < n; i++) {
      int j = (i * 7 + 3) % n; /* a permutation: 7 is prime to 3 and 100 */
      kv1[2 * i] = cn_mk_int(i + 1), kv1[2 * i + 1] = cn_mk_int(2 * (i + 1));
      kv2[2 * j] = cn_mk_int(i + 1), kv2[2 * j + 1] = cn_mk_int(2 * (i + 1));
    }
    cn_term *m1 = cn_mk_map((size_t)n, kv1), *m2 = cn_mk_map((size_t)n, kv2);
    assert_int_equal(h32(m1), h32(m2));
    if (n == 100) assert_int_equal(h32(m1), 2112705541u); /* maps:from_list([{I, 2 * I} || I <- lists:seq(1, 100)]) */
    cn_term_free(m1), cn_term_free(m2);
    free(kv1);
  }
  /* Funs: an erl_eval closure with free variables, export funs (values from OTP 25). */
  expect(from_hex("83700000011601065361AA461590D1BDF1EB62D1A6EB080000002A0000000164000865726C5F6576616C612A620032"
                  "9B0D5864000D6E6F6E6F6465406E6F686F7374000000090000000000000000680661096C000000016802640001586"
                  "12A6A6400046E6F6E656400046E6F6E6574000000006C000000016805640006636C6175736561096C00000001680364"
                  "00037661726109640001416A6A6C0000000168036400057475706C6561096C00000003680364000376617261096400"
                  "01416803640003766172610964000158680364000362696E61096C00000001680564000B62696E5F656C656D656E"
                  "7461096803640006737472696E6761096B0003656E7664000764656661756C7464000764656661756C746A6A6A6A"),
         2094120121u, 80854201u, "erl_eval fun with free variables");
  expect(from_hex("83716400056C697374736400036D61706102"), 840287883u, 34981515u, "fun lists:map/2");
  expect(from_hex("837164000665726C616E676400086D616B655F66756E6103"), 2266677689u, 119194041u,
         "fun erlang:make_fun/3");
  /* Ranges: 1 gives 0; 2^32 - 1 is libring's; 0 and 2^32 + 1 are not ranges. */
  cn_term *t = cn_mk_tuple(2, atom("a"), cn_mk_int(1));
  uint32_t v;
  assert_int_equal(cn_phash2_range(t, 1), 0);
  assert_int_equal(cn_phash2_range(t, 0xFFFFFFFFu), 4098956996u % 0xFFFFFFFFu);
  assert_int_equal(cn_phash2_checked(t, (UINT64_C(1) << 32) + 1, &v), CN_EINVAL);
  assert_int_equal(cn_phash2_range(t, 0), 0);
  assert_int_equal(cn_phash2_checked(NULL, 5, &v), CN_EINVAL);
  cn_term_free(t);
  /* Bignums beyond 2^64, both signs: 2^200 and -(2^200) (values from OTP 25). */
  uint8_t mag[26] = {0};
  mag[25] = 1;
  cn_term *bp = cn_mk_big(0, mag, 26), *bn = cn_mk_big(1, mag, 26);
  expect(bp, 2573322433u, 23185601u, "2^200");
  expect(bn, 2288753377u, 7052001u, "-(2^200)");
}

/* 100,000 nested tuples and lists and a list of 1,000,000 integers: heap, not stack (values from OTP 25). */
static void test_deep(void **state) {
  (void)state;
  cn_term *t = cn_mk_nil(), *l = cn_mk_nil();
  for (int i = 0; i < 100000; i++) {
    t = cn_mk_tuple(1, t);
    l = cn_mk_list(1, l);
  }
  assert_non_null(t);
  assert_non_null(l);
  expect(t, 2783337598u, 98983038u, "100000 nested tuples");
  assert_int_equal(h32(l), 4276146740u);
  cn_term_free(l);
  cn_term **e = malloc(1000000 * sizeof *e);
  for (int i = 0; i < 1000000; i++) e[i] = cn_mk_int(i + 1);
  cn_term *seq = cn_mk_listv(1000000, e, NULL);
  free(e);
  assert_int_equal(h32(seq), 3141904962u);
  cn_term_free(seq);
}

/* Every allocation failing in turn: a status, never a wrong value or a leak. */
static void test_enomem(void **state) {
  (void)state;
  cn_term *t =
      from_hex("83700000011601065361AA461590D1BDF1EB62D1A6EB080000002A0000000164000865726C5F6576616C612A620032"
               "9B0D5864000D6E6F6E6F6465406E6F686F7374000000090000000000000000680661096C000000016802640001586"
               "12A6A6400046E6F6E656400046E6F6E6574000000006C000000016805640006636C6175736561096C00000001680364"
               "00037661726109640001416A6A6C0000000168036400057475706C6561096C00000003680364000376617261096400"
               "01416803640003766172610964000158680364000362696E61096C00000001680564000B62696E5F656C656D656E"
               "7461096803640006737472696E6761096B0003656E7664000764656661756C7464000764656661756C746A6A6A6A");
  cn_term *deep = cn_mk_nil();
  for (int i = 0; i < 200; i++) deep = cn_mk_tuple(2, cn_mk_list(1, deep), cn_term_copy(t));
  uint32_t want;
  assert_int_equal(cn_phash2_checked(deep, 0, &want), 0);
  long base = ta_live;
  int failures = 0;
  for (long k = 0;; k++) {
    ta_fail_after = k;
    uint32_t v = 12345;
    int r = cn_phash2_checked(deep, 0, &v);
    ta_fail_after = -1;
    assert_int_equal(ta_live, base);
    if (r == 0) {
      assert_int_equal(v, want);
      break;
    }
    assert_int_equal(r, CN_ENOMEM);
    failures++;
  }
  assert_true(failures > 0);
  cn_term_free(deep);
  cn_term_free(t);
}

int main(void) {
  ta_install();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_vectors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_spec_examples, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tricky, setup, teardown),
      cmocka_unit_test_setup_teardown(test_deep, setup, teardown),
      cmocka_unit_test_setup_teardown(test_enomem, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
