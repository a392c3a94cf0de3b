/* test_etf.c: unit tests of term/'s ETF codec: bytes from a real OTP 25 node decoded and re-encoded, old formats,
 * the shared phash2 vectors, and hostile input under a guard page: truncated, malformed, deep, large, garbage, ENOMEM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ei.h>

#include "cn_term.h"
#include "testutil.h"
#include "tterm.h"

static cn_term *repeat_atom(const char *unit, int times) {
  char buf[1100] = {0};
  for (int i = 0; i < times; i++) strcat(buf, unit);
  return atom(buf);
}

/* The C twin of each vector; NULL for funs, which have no constructor. */
static cn_term *build(const char *n) {
#define IS(s) (strcmp(n, s) == 0)
  if (IS("int_0")) return cn_mk_int(0);
  if (IS("int_255")) return cn_mk_int(255);
  if (IS("int_256")) return cn_mk_int(256);
  if (IS("int_m1")) return cn_mk_int(-1);
  if (IS("int_max32")) return cn_mk_int(INT32_MAX);
  if (IS("int_min32")) return cn_mk_int(INT32_MIN);
  if (IS("int_2p31")) return cn_mk_int(2147483648LL);
  if (IS("int_m2p31m1")) return cn_mk_int(-2147483649LL);
  if (IS("int_max64")) return cn_mk_int(INT64_MAX);
  if (IS("int_min64")) return cn_mk_int(INT64_MIN);
  if (IS("big_2p63")) return big_bit(0, 63, 0);
  if (IS("big_m2p63m1")) return big_bit(1, 63, 1);
  if (IS("big_2p64")) return big_bit(0, 64, 0);
  if (IS("big_m2p64")) return big_bit(1, 64, 0);
  if (IS("big_2p100p7")) return big_bit(0, 100, 7);
  if (IS("big_m2p100")) return big_bit(1, 100, 0);
  if (IS("big_large")) return big_bit(0, 2048, 0);
  if (IS("big_large_neg")) return big_bit(1, 2100, 12345);
  if (IS("float_0")) return cn_mk_float(0.0);
  if (IS("float_m0")) return cn_mk_float(-0.0);
  if (IS("float_1_5")) return cn_mk_float(1.5);
  if (IS("float_0_1")) return cn_mk_float(0.1);
  if (IS("float_1e300")) return cn_mk_float(1.0e300);
  if (IS("float_m2_5em300")) return cn_mk_float(-2.5e-300);
  if (IS("atom_foo")) return atom("foo");
  if (IS("atom_empty")) return atom("");
  if (IS("atom_space")) return atom("hello world");
  if (IS("atom_elixir")) return atom("Elixir.Foo");
  if (IS("atom_latin1"))
    return atom("\xc3\xa9"
                "cole");
  if (IS("atom_smile")) return atom("\xF0\x9F\x98\x80x");
  if (IS("atom_255")) return repeat_atom("a", 255);
  if (IS("atom_255_utf8")) return repeat_atom("\xc3\xa9", 255);
  if (IS("atom_true")) return atom("true");
  if (IS("bin_empty")) return cn_mk_binary(NULL, 0);
  if (IS("bin_123")) return cn_mk_binary("\1\2\3", 3);
  if (IS("bin_abc")) return cn_mk_binary("abc", 3);
  if (IS("bits_1_2_3")) return cn_mk_bitstring("\x01\x5F", 2, 3); /* junk low bits are masked off */
  if (IS("bits_5_3")) return cn_mk_bitstring("\xA0", 1, 3);
  if (IS("bits_7")) return cn_mk_bitstring("\xFF\xFE", 2, 7);
  if (IS("nil")) return cn_mk_nil();
  if (IS("str_abc")) return cn_mk_string("abc");
  if (IS("improper")) return cn_mk_listv(2, (cn_term *[]){cn_mk_int(1), cn_mk_int(2)}, atom("foo"));
  if (IS("improper2")) return cn_mk_listv(1, (cn_term *[]){cn_mk_int(1)}, cn_mk_int(2));
  if (IS("list_1000")) return cn_mk_list(2, cn_mk_int(1000), cn_mk_int(2));
  if (IS("list_atoms")) return cn_mk_list(2, atom("a"), atom("b"));
  if (IS("list_nil")) return cn_mk_list(1, cn_mk_nil());
  if (IS("list_m1")) return cn_mk_list(1, cn_mk_int(-1));
  if (IS("tuple_0")) return cn_mk_tuple(0);
  if (IS("tuple_2")) return cn_mk_tuple(2, atom("a"), cn_mk_int(1));
  if (IS("tuple_300")) {
    cn_term *e[300];
    for (int i = 0; i < 300; i++) e[i] = cn_mk_int(i + 1);
    return cn_mk_tuplev(300, e);
  }
  if (IS("map_0")) return cn_mk_map(0, NULL);
  if (IS("map_2")) return cn_mk_map(2, (cn_term *[]){atom("a"), cn_mk_int(1), atom("b"), cn_mk_int(2)});
  if (IS("map_40")) { /* built in key order; the BEAM wrote hash order: equality ignores order */
    cn_term *kv[80];
    for (int i = 0; i < 40; i++) kv[2 * i] = cn_mk_int(i + 1), kv[2 * i + 1] = cn_mk_int(2 * (i + 1));
    return cn_mk_map(40, kv);
  }
  if (IS("map_nested"))
    return cn_mk_map(
        2, (cn_term *[]){atom("k"), cn_mk_map(1, (cn_term *[]){cn_mk_binary("x", 1), cn_mk_list(1, cn_mk_float(1.5))}),
                         cn_mk_tuple(1, atom("t")), cn_mk_nil()});
  if (IS("pid")) return cn_mk_pid(mkpid("a@127.0.0.1", 85, 0, 1234));
  if (IS("pid_big")) return cn_mk_pid(mkpid("node@host", 0x7fff, 8191, 0xffffffffu));
  if (IS("port")) return cn_mk_port((cn_port){cn_atoms_get(A, "a@127.0.0.1"), 5, 1234});
  if (IS("port_v4")) return cn_mk_port((cn_port){cn_atoms_get(A, "a@127.0.0.1"), 1ull << 40, 7});
  if (IS("ref3")) return cn_mk_ref((cn_ref){cn_atoms_get(A, "a@127.0.0.1"), 1234, 3, {1, 2, 3}});
  if (IS("ref5")) return cn_mk_ref((cn_ref){cn_atoms_get(A, "a@127.0.0.1"), 1234, 5, {1, 2, 3, 4, 5}});
  if (IS("mixed"))
    return cn_mk_tuple(4, atom("ok"), cn_mk_list(1, cn_mk_tuple(2, cn_mk_binary("k", 1), cn_mk_float(1.0))),
                       cn_mk_map(2, (cn_term *[]){atom("list"), cn_mk_string("x"), atom("neg"), cn_mk_int(-5)}),
                       cn_mk_listv(1, (cn_term *[]){cn_mk_int(1)}, cn_mk_binary("t", 1)));
  return NULL;
#undef IS
}

/* Every vector: decode under the guard page, re-encode byte for byte, and agree with its C twin both ways. */
static void test_vectors(void **state) {
  (void)state;
  for (size_t i = 0; i < NVEC; i++) {
    uint8_t *b;
    size_t n = unhex(VEC[i].hex, &b);
    cn_term *t = NULL;
    int r = from_bin_guarded(b, n, NULL, &t);
    if (r) fprintf(stderr, "%s: %s\n", VEC[i].name, cn_err_name(r));
    assert_int_equal(r, 0);
    cn_buf out = {0};
    assert_int_equal(cn_term_to_binary(t, &out), 0);
    assert_bytes(&out, b, n);
    cn_buf_free(&out);

    cn_term *c = cn_term_copy(t);
    assert_true(cn_term_exact_eq(t, c));
    cn_term_free(c);

    cn_term *bt = build(VEC[i].name);
    if (bt) {
      if (!cn_term_exact_eq(bt, t)) fprintf(stderr, "built %s differs\n", VEC[i].name);
      assert_true(cn_term_exact_eq(bt, t));
      cn_term *back = NULL;
      assert_int_equal(cn_term_to_binary(bt, &out), 0);
      if (strcmp(VEC[i].name, "map_40") != 0) assert_bytes(&out, b, n); /* only map_40 is in another order */
      assert_int_equal(from_bin_guarded(out.data, out.len, NULL, &back), 0);
      assert_true(cn_term_exact_eq(bt, back));
      cn_term_free(back);
      cn_buf_free(&out);
      cn_term_free(bt);
    } else {
      assert_int_equal(t->type, CN_FUN);
    }
    /* cn_term_decode on the body alone: consumes exactly the term and leaves *off past it. */
    size_t off = 1;
    cn_term *t2 = NULL;
    assert_int_equal(cn_term_decode(A, b, n, &off, NULL, &t2), 0);
    assert_int_equal(off, n);
    assert_true(cn_term_exact_eq(t, t2));
    cn_term_free(t2);
    cn_term_free(t);
    free(b);
  }
}

/* Old encodings a peer may still send, and what the BEAM re-encodes them as (pasted from OTP 25). */
static void test_old_formats(void **state) {
  (void)state;
  static const struct {
    const char *in, *out;
  } old[] = {
      {"8367640003614062000000550000000102", "83587703614062000000550000000100000002"},
      {"83666400036140620000000702", "835977036140620000000700000002"},
      {"837200027303614062010000000100000002", "835A00027703614062000000010000000100000002"},
      {"836573036140620000000901", "835A000177036140620000000100000009"},
      {"8363312E3530303030303030303030303030303030303030652B30300000000000", "83463FF8000000000000"},
      {"837302E961", "837703C3A961"},
      {"83640001FF", "837702C3BF"},
      {"836403666F6F", NULL}, /* bad: ATOM_EXT's length is two bytes, so this claims 870 latin-1 characters */
  };
  for (size_t i = 0; i < sizeof old / sizeof old[0]; i++) {
    uint8_t *in, *want;
    size_t n = unhex(old[i].in, &in);
    cn_term *t = NULL;
    int r = from_bin_guarded(in, n, NULL, &t);
    if (!old[i].out) {
      assert_int_equal(r, CN_EDECODE);
      assert_null(t);
      free(in);
      continue;
    }
    assert_int_equal(r, 0);
    size_t wn = unhex(old[i].out, &want);
    cn_buf out = {0};
    assert_int_equal(cn_term_to_binary(t, &out), 0);
    assert_bytes(&out, want, wn);
    cn_buf_free(&out);
    cn_term_free(t);
    free(in);
    free(want);
  }
}

/* 65535 bytes is the last STRING_EXT; 65536 must be a LIST_EXT of small integers, as the BEAM writes. */
static void test_string_boundary(void **state) {
  (void)state;
  for (size_t len = 65534; len <= 65537; len++) {
    cn_buf exp = {0};
    cn_buf_put8(&exp, 131);
    if (len <= 65535) {
      cn_buf_put8(&exp, 'k');
      cn_buf_put16(&exp, (uint16_t)len);
      for (size_t i = 0; i < len; i++) cn_buf_put8(&exp, (uint8_t)('a' + i % 26));
    } else {
      cn_buf_put8(&exp, 'l');
      cn_buf_put32(&exp, (uint32_t)len);
      for (size_t i = 0; i < len; i++) cn_buf_put8(&exp, 'a'), cn_buf_put8(&exp, (uint8_t)('a' + i % 26));
      cn_buf_put8(&exp, 'j');
    }
    char *s = malloc(len + 1);
    for (size_t i = 0; i < len; i++) s[i] = (char)('a' + i % 26);
    s[len] = 0;
    cn_term *t = cn_mk_string(s);
    free(s);
    assert_int_equal(t->v.list.len, len);
    cn_buf out = {0};
    assert_int_equal(cn_term_to_binary(t, &out), 0);
    assert_bytes(&out, exp.data, exp.len);
    cn_term *d = NULL;
    assert_int_equal(from_bin_guarded(exp.data, exp.len, NULL, &d), 0);
    assert_true(cn_term_exact_eq(t, d));
    cn_term_free(d);
    cn_term_free(t);
    cn_buf_free(&out);
    cn_buf_free(&exp);
  }
}

/* Does the term hold anything with an atom (whose encoding differs between OTP 25's term_to_binary and ours)?
 */
static bool has_atoms(const cn_term *t) {
  switch (t->type) {
  case CN_ATOM:
  case CN_PID:
  case CN_PORT:
  case CN_REF:
  case CN_FUN: return true;
  case CN_TUPLE:
    for (uint32_t i = 0; i < t->v.tuple.arity; i++)
      if (has_atoms(&t->v.tuple.e[i])) return true;
    return false;
  case CN_MAP:
    for (uint32_t i = 0; i < 2 * t->v.map.size; i++)
      if (has_atoms(&t->v.map.kv[i])) return true;
    return false;
  case CN_LIST:
    for (uint32_t i = 0; i < t->v.list.len; i++)
      if (has_atoms(&t->v.list.e[i])) return true;
    return t->v.list.tail && has_atoms(t->v.list.tail);
  default: return false;
  }
}

typedef struct {
  uint8_t **b;
  size_t *n;
  size_t count;
} lines;

static lines read_phash2(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/phash2_vectors.txt", vectors_dir());
  FILE *f = fopen(path, "r");
  if (!f) fprintf(stderr, "cannot open %s (run from the repo root)\n", path);
  assert_non_null(f);
  lines L = {calloc(4000, sizeof(uint8_t *)), calloc(4000, sizeof(size_t)), 0};
  static char line[400000];
  while (fgets(line, sizeof line, f) && L.count < 4000) {
    char *sp = strchr(line, ' ');
    assert_non_null(sp);
    *sp = 0;
    L.n[L.count] = unhex(line, &L.b[L.count]);
    L.count++;
  }
  fclose(f);
  return L;
}

static void free_lines(lines *L) {
  for (size_t i = 0; i < L->count; i++) free(L->b[i]);
  free(L->b);
  free(L->n);
}

/* The shared phash2 vectors: all decode whole; re-encoding and re-decoding gives an equal term; where no
 * atom is involved (OTP 25 writes latin-1 ATOM_EXT, we write UTF-8 atoms) the bytes are identical too. */
static void test_phash2_vectors(void **state) {
  (void)state;
  lines L = read_phash2();
  assert_int_equal(L.count, 2000);
  size_t exact = 0, with_atoms = 0;
  for (size_t i = 0; i < L.count; i++) {
    cn_term *t = NULL, *t2 = NULL;
    int r = from_bin_guarded(L.b[i], L.n[i], NULL, &t);
    if (r) fprintf(stderr, "line %zu: %s\n", i + 1, cn_err_name(r));
    assert_int_equal(r, 0);
    /* ei, given a buffer known to be whole, agrees on where the term ends. */
    int idx = 0, ver;
    assert_int_equal(ei_decode_version((const char *)L.b[i], &idx, &ver), 0);
    assert_int_equal(ei_skip_term((const char *)L.b[i], &idx), 0);
    assert_int_equal((size_t)idx, L.n[i]);
    cn_buf out = {0};
    assert_int_equal(cn_term_to_binary(t, &out), 0);
    assert_int_equal(from_bin_guarded(out.data, out.len, NULL, &t2), 0);
    assert_true(cn_term_exact_eq(t, t2));
    if (has_atoms(t)) {
      with_atoms++;
    } else {
      assert_bytes(&out, L.b[i], L.n[i]);
      exact++;
    }
    /* Printing works on every shape. */
    char *s = cn_term_to_string(t);
    assert_non_null(s);
    cn_free(s);
    cn_buf_free(&out);
    cn_term_free(t);
    cn_term_free(t2);
  }
  fprintf(stderr, "phash2 vectors: %zu byte-exact, %zu with atoms compared as terms\n", exact, with_atoms);
  free_lines(&L);
}

/* Every proper prefix of a valid input is truncated input: CN_ETRUNC, nothing out, *off unchanged. */
static void check_prefixes(const uint8_t *b, size_t n) {
  uint8_t *g = guard_copy(b, n);
  for (size_t k = 0; k < n; k++) {
    /* Long inputs: every prefix near both ends plus a stride through the middle keeps this linear-ish. */
    if (n > 2048 && k > 512 && k < n - 512 && k % 97 != 0) continue;
    uint8_t *p = g + n - k;
    memmove(p, b, k);
    cn_term *t = (cn_term *)1;
    int r = cn_term_from_binary(A, p, k, NULL, &t);
    if (r != CN_ETRUNC) fprintf(stderr, "prefix %zu of %zu: %d\n", k, n, r);
    assert_int_equal(r, CN_ETRUNC);
    assert_null(t);
    if (k >= 1) {
      size_t off = 1;
      assert_int_equal(cn_term_decode(A, p, k, &off, NULL, &t), CN_ETRUNC);
      assert_int_equal(off, 1);
    }
  }
  guard_free(g, n);
}

static void test_truncated(void **state) {
  (void)state;
  long before = atomic_load(&live_allocs);
  for (size_t i = 0; i < NVEC; i++) {
    uint8_t *b;
    size_t n = unhex(VEC[i].hex, &b);
    check_prefixes(b, n);
    free(b);
  }
  lines L = read_phash2();
  for (size_t i = 0; i < L.count; i++) check_prefixes(L.b[i], L.n[i]);
  free_lines(&L);
  /* Failed decodes free everything (atoms interned on the way stay in the table by design). */
  assert_int_equal(atomic_load(&live_allocs) - before, (long)cn_atoms_count(A));
}

typedef struct {
  const char *hex;
  int err;
} bad;

/* Hand-made hostile inputs: huge counts, bad tags, bad lengths, bad values. */
static void test_malformed(void **state) {
  (void)state;
  static const bad cases[] = {
      {"", CN_ETRUNC},
      {"84", CN_EDECODE},                      /* wrong version */
      {"836100FF", CN_EDECODE},                /* trailing byte */
      {"836CFFFFFFFF6101", CN_ETRUNC},         /* list of 2^32-1 in 8 bytes */
      {"836CFFFFFFFF61016102616A", CN_ETRUNC}, /* list of 2^32-1 in 12 bytes */
      {"8369FFFFFFFF6101", CN_ETRUNC},         /* tuple of 2^32-1 */
      {"8374FFFFFFFF61016102", CN_ETRUNC},     /* map of 2^32-1 */
      {"83747FFFFFFF61016102", CN_ETRUNC},     /* map of 2^31-1 */
      {"836DFFFFFFFF00", CN_ETRUNC},           /* binary of 4 GiB */
      {"834DFFFFFFFF0300", CN_ETRUNC},         /* bitstring of 4 GiB */
      {"836BFFFF616263", CN_ETRUNC},           /* string of 65535 */
      {"836FFFFFFFFF0001", CN_ETRUNC},         /* bignum of 4 GiB */
      {"836EFF000102", CN_ETRUNC},             /* small big of 255 */
      {"8376FFFF6161", CN_EDECODE},            /* UTF-8 atom of 65535 bytes */
      {"83640100"
       "61",
       CN_EDECODE}, /* latin-1 atom of 256 chars */
      {"8352"
       "00",
       CN_EDECODE},                         /* ATOM_CACHE_REF: never offered */
      {"8375", CN_EDECODE},                 /* FUN_EXT (pre-R8) */
      {"8300", CN_EDECODE},                 /* unknown tag */
      {"835000000001789C", CN_EDECODE},     /* compressed: not supported */
      {"83467FF8000000000000", CN_EDECODE}, /* NaN */
      {"83467FF0000000000000", CN_EDECODE}, /* infinity */
      {"83636E6F742061206E756D62657200000000000000000000000000000000000000", CN_EDECODE}, /* FLOAT_EXT text */
      {"834D000000010061", CN_EDECODE},                 /* bitstring: 0 bits of a byte */
      {"834D000000010961", CN_EDECODE},                 /* bitstring: 9 bits */
      {"834D0000000003", CN_EDECODE},                   /* empty bitstring with bits */
      {"835A0000770161000000010000000100", CN_EDECODE}, /* ref of 0 words */
      {"835A0006770161000000010000000100", CN_EDECODE}, /* ref of 6 words */
      {"835861010000000000000000000000", CN_EDECODE},   /* pid whose node is not an atom */
      {"837702C0AF", CN_EDECODE},                       /* overlong UTF-8 */
      {"837703EDA080", CN_EDECODE},                     /* UTF-16 surrogate */
      {"837701FF", CN_EDECODE},                         /* not UTF-8 */
      {"837102616102616262000000FF", CN_EDECODE},       /* export arity as INTEGER_EXT */
      {"8371770161770162", CN_ETRUNC},                  /* export without arity */
      {"8370000000FF", CN_ETRUNC},                      /* fun claiming 255 bytes */
      {"83700000000100000000000000000000000000000000000000000000000000000000000000000000000000000000",
       CN_EDECODE}, /* fun Size too small */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t *b;
    size_t n = unhex(cases[i].hex, &b);
    long allocs = atomic_load(&total_allocs);
    cn_term *t = (cn_term *)1;
    int r = from_bin_guarded(b, n, NULL, &t);
    if (r != cases[i].err) fprintf(stderr, "case %zu (%s): %s\n", i, cases[i].hex, cn_err_name(r));
    assert_int_equal(r, cases[i].err);
    assert_null(t);
    /* Framing errors are found before anything is allocated: no gigabyte arrays for lying headers. */
    if (cases[i].err == CN_ETRUNC) assert_int_equal(atomic_load(&total_allocs), allocs);
    free(b);
  }
  /* A 256-character UTF-8 atom is not an atom; 255 is (the UTF-8 vector above). */
  cn_buf b = {0};
  cn_buf_put8(&b, 131), cn_buf_put8(&b, 'v'), cn_buf_put16(&b, 512);
  for (int i = 0; i < 256; i++) cn_buf_append(&b, "\xc3\xa9", 2);
  cn_term *t = NULL;
  assert_int_equal(from_bin_guarded(b.data, b.len, NULL, &t), CN_EDECODE);
  cn_buf_free(&b);
}

/* LIST_EXT cells chained through their tails decode to one canonical list, without recursion. */
static void test_list_canonical(void **state) {
  (void)state;
  uint8_t *b;
  cn_term *t = NULL;
  /* [1|[2|[3|foo]]] as three cells */
  size_t n = unhex("836C0000000161016C0000000161026C00000001610377"
                   "03666F6F",
                   &b);
  assert_int_equal(from_bin_guarded(b, n, NULL, &t), 0);
  assert_int_equal(t->type, CN_LIST);
  assert_int_equal(t->v.list.len, 3);
  assert_true(cn_is_atom(t->v.list.tail, "foo"));
  cn_term *w = cn_mk_listv(3, (cn_term *[]){cn_mk_int(1), cn_mk_int(2), cn_mk_int(3)}, atom("foo"));
  assert_true(cn_term_exact_eq(t, w));
  cn_buf out = {0};
  cn_term_to_binary(t, &out);
  uint8_t *canon;
  size_t cn = unhex("836C00000003610161026103770366"
                    "6F6F",
                    &canon);
  assert_bytes(&out, canon, cn);
  cn_buf_free(&out);
  cn_term_free(t), cn_term_free(w), free(b), free(canon);

  /* [1 | "ab"]: a string tail makes a proper list, which is then a STRING_EXT */
  n = unhex("836C00000001610"
            "16B00026162",
            &b);
  assert_int_equal(from_bin_guarded(b, n, NULL, &t), 0);
  assert_int_equal(t->v.list.len, 3);
  assert_null(t->v.list.tail);
  cn_term_to_binary(t, &out);
  cn = unhex("836B0003016162", &canon);
  assert_bytes(&out, canon, cn);
  cn_buf_free(&out);
  cn_term_free(t), free(b), free(canon);

  /* A LIST_EXT of no elements is its tail. */
  n = unhex("836C000000007703666F6F", &b);
  assert_int_equal(from_bin_guarded(b, n, NULL, &t), 0);
  assert_true(cn_is_atom(t, "foo"));
  cn_term_free(t), free(b);

  /* 200,000 chained one-element cells, nested far beyond max_depth: tails do not count as depth. */
  cn_buf big = {0};
  cn_buf_put8(&big, 131);
  for (int i = 0; i < 200000; i++) cn_buf_append(&big, "\x6C\x00\x00\x00\x01\x61\x07", 7);
  cn_buf_put8(&big, 'j');
  assert_int_equal(from_bin_guarded(big.data, big.len, NULL, &t), 0);
  assert_int_equal(t->v.list.len, 200000);
  assert_null(t->v.list.tail);
  cn_term_free(t);
  cn_buf_free(&big);

  /* cn_mk_listv splices a list tail too. */
  cn_term *inner = cn_mk_listv(2, (cn_term *[]){cn_mk_int(2), cn_mk_int(3)}, atom("x"));
  t = cn_mk_listv(1, (cn_term *[]){cn_mk_int(1)}, inner);
  assert_int_equal(t->v.list.len, 3);
  assert_true(cn_is_atom(t->v.list.tail, "x"));
  cn_term_free(t);
  t = cn_mk_listv(0, NULL, cn_mk_nil());
  assert_int_equal(t->type, CN_NIL);
  cn_term_free(t);
}

/* Nesting limits: tuples, lists, maps and fun environments all count; the error is CN_ELIMIT. */
static void nest(cn_buf *b, int depth, const char *open, size_t open_len, const char *close, size_t close_len) {
  cn_buf_put8(b, 131);
  for (int i = 0; i < depth; i++) cn_buf_append(b, open, open_len);
  cn_buf_put8(b, 'j');
  for (int i = 0; i < depth; i++) cn_buf_append(b, close, close_len);
}

static void test_depth(void **state) {
  (void)state;
  struct {
    const char *open, *close;
    size_t ol, cl;
  } kinds[] = {
      {"\x68\x01", "", 2, 0},                     /* {{{...}}} */
      {"\x6C\x00\x00\x00\x01", "\x6A", 5, 1},     /* [[[...]]] */
      {"\x74\x00\x00\x00\x01\x61\x01", "", 7, 0}, /* #{1 => #{1 => ...}} */
  };
  for (size_t k = 0; k < 3; k++) {
    /* depth nested containers around [] : 1000 pass by default, 1001 do not */
    for (int depth = 999; depth <= 1001; depth++) {
      cn_buf b = {0};
      nest(&b, depth, kinds[k].open, kinds[k].ol, kinds[k].close, kinds[k].cl);
      cn_term *t = NULL;
      int r = from_bin_guarded(b.data, b.len, NULL, &t);
      assert_int_equal(r, depth <= 1000 ? 0 : CN_ELIMIT);
      if (t) {
        cn_buf out = {0};
        assert_int_equal(cn_term_to_binary(t, &out), 0);
        assert_bytes(&out, b.data, b.len);
        cn_buf_free(&out);
        cn_term_free(t);
      }
      cn_buf_free(&b);
    }
    cn_buf b = {0};
    nest(&b, 300000, kinds[k].open, kinds[k].ol, kinds[k].close, kinds[k].cl);
    cn_term *t = NULL;
    assert_int_equal(from_bin_guarded(b.data, b.len, NULL, &t), CN_ELIMIT);
    cn_decode_opts o = {.max_depth = 5};
    cn_buf_free(&b);
    nest(&b, 5, kinds[k].open, kinds[k].ol, kinds[k].close, kinds[k].cl);
    assert_int_equal(from_bin_guarded(b.data, b.len, &o, &t), 0);
    cn_term_free(t);
    cn_buf_free(&b);
    nest(&b, 6, kinds[k].open, kinds[k].ol, kinds[k].close, kinds[k].cl);
    assert_int_equal(from_bin_guarded(b.data, b.len, &o, &t), CN_ELIMIT);
    cn_buf_free(&b);
  }
}

static void test_max_size(void **state) {
  (void)state;
  uint8_t *b;
  size_t n = unhex("836D00000005"
                   "6162636465",
                   &b); /* term body: 10 bytes */
  cn_term *t = NULL;
  cn_decode_opts o = {.max_size = 10};
  assert_int_equal(from_bin_guarded(b, n, &o, &t), 0);
  cn_term_free(t);
  o.max_size = 9;
  assert_int_equal(from_bin_guarded(b, n, &o, &t), CN_ELIMIT);
  assert_null(t);
  o.max_size = 9; /* the limit also stops a lying header early */
  free(b);
  n = unhex("836CFFFFFFFF6101610261036104", &b);
  assert_int_equal(from_bin_guarded(b, n, &o, &t), CN_ELIMIT);
  free(b);
}

/* xorshift: a fixed seed makes every run see the same garbage. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static void try_garbage(const uint8_t *b, size_t n) {
  cn_term *t = NULL;
  int r = from_bin_guarded(b, n, NULL, &t);
  assert_true(r == 0 || r == CN_EDECODE || r == CN_ETRUNC || r == CN_ELIMIT);
  if (r == 0) { /* whatever decodes must re-encode and decode to the same term */
    cn_buf out = {0};
    cn_term *t2 = NULL;
    assert_int_equal(cn_term_to_binary(t, &out), 0);
    assert_int_equal(from_bin_guarded(out.data, out.len, NULL, &t2), 0);
    assert_true(cn_term_exact_eq(t, t2));
    char *s = cn_term_to_string(t);
    if (!s) {
      for (size_t i = 0; i < n; i++) fprintf(stderr, "%02X", b[i]);
      fprintf(stderr, ": decoded but does not print\n");
    }
    assert_non_null(s);
    cn_free(s);
    cn_term_free(t2);
    cn_buf_free(&out);
    cn_term_free(t);
  } else {
    assert_null(t);
  }
}

static void test_garbage(void **state) {
  (void)state;
  static const uint8_t tags[] = "abcFdsvwmMjklhitnoXgYxfZreqpRu";
  uint8_t b[96];
  long before = atomic_load(&live_allocs);
  for (int it = 0; it < 20000; it++) { /* random bytes, mostly after a real version byte and tag */
    size_t n = rnd() % sizeof b;
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)rnd();
    if (n > 0 && it % 4) b[0] = 131;
    for (size_t i = 1; i < n; i++)
      if (rnd() % 3 == 0) b[i] = tags[rnd() % (sizeof tags - 1)];
    /* Small counts give the walker a chance to get deep rather than fail at once. */
    for (size_t i = 1; i < n; i++)
      if (rnd() % 4 == 0) b[i] = (uint8_t)(rnd() % 4);
    try_garbage(b, n);
  }
  /* Mutations of the real vectors: flip, overwrite and cut at random places. */
  for (int it = 0; it < 6000; it++) {
    uint8_t *v;
    size_t n = unhex(VEC[rnd() % NVEC].hex, &v);
    int muts = 1 + (int)(rnd() % 3);
    for (int m = 0; m < muts && n >= 2; m++) {
      size_t at = 1 + rnd() % (n - 1);
      switch (rnd() % 3) {
      case 0: v[at] ^= (uint8_t)(1u << (rnd() % 8)); break;
      case 1: v[at] = (uint8_t)rnd(); break;
      default: n = at; break;
      }
    }
    try_garbage(v, n);
    free(v);
  }
  assert_int_equal(atomic_load(&live_allocs) - before, (long)cn_atoms_count(A));
}

/* Every allocation of decode, encode, copy and print may fail: the call reports CN_ENOMEM (or NULL) and
 * leaves nothing behind. */
static void test_enomem(void **state) {
  (void)state;
  for (size_t i = 0; i < NVEC; i++) {
    uint8_t *b;
    size_t n = unhex(VEC[i].hex, &b);
    for (long k = 0;; k++) {
      /* a fresh table each round so atom interning is exercised too */
      cn_atoms *tab;
      assert_int_equal(cn_atoms_new(&tab, 0), 0);
      long before = atomic_load(&live_allocs);
      cn_term *t = NULL;
      arm_failure(k);
      int r = cn_term_from_binary(tab, b, n, NULL, &t);
      disarm();
      if (r == 0) {
        cn_term_free(t);
        cn_atoms_free(tab);
        break;
      }
      assert_int_equal(r, CN_ENOMEM);
      assert_null(t);
      assert_int_equal(atomic_load(&live_allocs) - before, (long)cn_atoms_count(tab));
      cn_atoms_free(tab);
    }
    cn_term *t = NULL;
    assert_int_equal(cn_term_from_binary(A, b, n, NULL, &t), 0);
    for (long k = 0;; k++) {
      long before = atomic_load(&live_allocs);
      arm_failure(k);
      cn_term *c = cn_term_copy(t);
      cn_buf out = {0};
      int r1 = cn_term_to_binary(t, &out);
      char *s = cn_term_to_string(t);
      disarm();
      bool done = c && r1 == 0 && s;
      cn_term_free(c);
      cn_buf_free(&out);
      cn_free(s);
      assert_int_equal(atomic_load(&live_allocs), before);
      if (done) break;
    }
    cn_term_free(t);
    free(b);
  }
  /* Constructors: a failed allocation frees the children that were handed over. */
  cn_atoms_get(A, "t");
  for (long k = 0; k < 40; k++) {
    long before = atomic_load(&live_allocs);
    cn_term *a = cn_mk_int(1), *s = cn_mk_string("hello"), *bn = cn_mk_binary("xy", 2);
    cn_term *tail = atom("t");
    arm_failure(k);
    cn_term *t =
        cn_mk_tuple(3, cn_mk_list(2, a, s), cn_mk_listv(1, (cn_term *[]){bn}, tail),
                    cn_mk_map(1, (cn_term *[]){cn_mk_float(1.0), cn_mk_big(0, (const uint8_t *)"123456789", 9)}));
    disarm();
    cn_term_free(t);
    assert_int_equal(atomic_load(&live_allocs), before);
  }
}

/* The one-pass decoding of small terms (a cache holding their atoms) builds what the two passes build, and refuses
 * every prefix, every byte changed and every max_size/max_depth cut with the error the two passes give. */
static void fast_same(const uint8_t *b, size_t n, cn_atom_cache *ac) {
  if (n < 2 || b[0] != 131) return;
  cn_decode_opts slow = {0}, fast = {.cache = ac};
  cn_term *t1 = NULL, *t2 = NULL;
  size_t o1 = 1, o2 = 1;
  int r1 = cn_term_decode(A, b, n, &o1, &slow, &t1);
  int r2 = cn_term_decode(A, b, n, &o2, &fast, &t2); /* fills the cache */
  cn_term_free(t2);
  o2 = 1;
  r2 = cn_term_decode(A, b, n, &o2, &fast, &t2);
  assert_int_equal(r1, r2);
  assert_int_equal(o1, o2);
  if (!r1) assert_true(cn_term_exact_eq(t1, t2));
  cn_term_free(t1);
  cn_term_free(t2);
  uint8_t *g = malloc(n);
  for (size_t k = 1; k <= n && k < 300; k++) {
    for (int v = 0; v < 4; v++) { /* the prefix, one byte changed, max_size and max_depth cuts */
      size_t len = v == 0 ? k : n;
      memcpy(g, b, n);
      if (v == 1) g[k - 1] ^= (uint8_t)(k * 37 + 1);
      slow.max_size = fast.max_size = v == 2 ? k : 0;
      slow.max_depth = fast.max_depth = v == 3 ? k % 4 + 1 : 0;
      o1 = o2 = 1;
      t1 = t2 = NULL;
      r1 = cn_term_decode(A, g, len, &o1, &slow, &t1);
      r2 = cn_term_decode(A, g, len, &o2, &fast, &t2);
      if (r1 != r2) fprintf(stderr, "fast path: variant %d at %zu of %zu: %d vs %d\n", v, k, n, r1, r2);
      assert_int_equal(r1, r2);
      assert_int_equal(o1, o2);
      if (!r1) assert_true(cn_term_exact_eq(t1, t2));
      cn_term_free(t1);
      cn_term_free(t2);
    }
  }
  slow.max_size = fast.max_size = 0;
  slow.max_depth = fast.max_depth = 0;
  free(g);
}

static void test_fast_path(void **state) {
  (void)state;
  cn_atom_cache *ac = cn_atom_cache_new(0);
  assert_non_null(ac);
  for (size_t i = 0; i < NVEC; i++) {
    uint8_t *b;
    size_t n = unhex(VEC[i].hex, &b);
    fast_same(b, n, ac);
    free(b);
  }
  lines L = read_phash2();
  for (size_t i = 0; i < L.count; i++) fast_same(L.b[i], L.n[i], ac);
  free_lines(&L);
  /* A message's shapes: {6, Pid, '', echo}, {Pid, [alias | Ref]}, {seq, 1, <<64 bytes>>}, "abc", [1, 2 | x]. */
  const char *msgs[] = {
      "836804610658770d6e6f6e6f6465406e6f686f7374000000090000000000000000770077046563686f",
      "83680258770d6e6f6e6f6465406e6f686f73740000000900000000000000006c000000017705616c6961735a0003770d6e6f6e6f6465406e"
      "6f686f7374000000000003f186575000025e3c772a",
      "836803770373657161016d000000400707070707070707070707070707070707070707070707070707070707070707070707070707070707"
      "0707070707070707070707070707070707070707070707",
      "836b0003616263",
      "836c0000000261016102770178",
      "8368036102770058770d6e6f6e6f6465406e6f686f7374000000090000000000000000",
      "836c00000001680258770d6e6f6e6f6465406e6f686f7374000000090000000000000000770470696e676a",
      "8368067701616d000000006a680062fffffffb6200011170",
      "836c000000036c000000017701617701626a6c000000017701636a6a",
  };
  for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
    uint8_t *b;
    size_t n = unhex(msgs[i], &b);
    fast_same(b, n, ac);
    free(b);
  }
  cn_atom_cache_free(ac);
}

int main(void) {
  cn_replace_allocator(t_malloc, t_realloc, t_calloc, t_free);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_vectors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_old_formats, setup, teardown),
      cmocka_unit_test_setup_teardown(test_string_boundary, setup, teardown),
      cmocka_unit_test_setup_teardown(test_list_canonical, setup, teardown),
      cmocka_unit_test_setup_teardown(test_phash2_vectors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fast_path, setup, teardown),
      cmocka_unit_test_setup_teardown(test_depth, setup, teardown),
      cmocka_unit_test_setup_teardown(test_max_size, setup, teardown),
      cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
      cmocka_unit_test_setup_teardown(test_enomem, setup, teardown),
  };
  int fails = cmocka_run_group_tests(tests, NULL, NULL);
  return fails;
}
