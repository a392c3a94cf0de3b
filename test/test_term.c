/* test_term.c: unit tests of term/: atoms, constructors, the ETF codec against bytes from a real OTP 25
 * node, the shared phash2 vectors, hostile input under a guard page, allocation failures and printing. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ei.h>

#include "cn_term.h"
#include "testutil.h"

/* ---- counting, failable allocator: proves "no leak" and "no allocation before the checks" ---- */

static atomic_long live_allocs;  /* blocks allocated and not yet freed */
static atomic_long total_allocs; /* successful allocations so far */
static atomic_long total_frees;  /* cn_free calls on a block so far */
static atomic_long fail_at = -1; /* fail the allocation with this index (counted from arming), -1: never */
static atomic_long armed_count;

static bool should_fail(void) {
  if (atomic_load(&fail_at) < 0)
    return false;
  return atomic_fetch_add(&armed_count, 1) == atomic_load(&fail_at);
}
static void *t_malloc(size_t n) {
  if (should_fail())
    return NULL;
  void *p = malloc(n ? n : 1);
  if (p)
    atomic_fetch_add(&live_allocs, 1), atomic_fetch_add(&total_allocs, 1);
  return p;
}
static void *t_calloc(size_t c, size_t n) {
  if (should_fail())
    return NULL;
  void *p = calloc(c ? c : 1, n ? n : 1);
  if (p)
    atomic_fetch_add(&live_allocs, 1), atomic_fetch_add(&total_allocs, 1);
  return p;
}
static void *t_realloc(void *old, size_t n) {
  if (should_fail())
    return NULL;
  void *p = realloc(old, n ? n : 1);
  if (p && !old)
    atomic_fetch_add(&live_allocs, 1);
  if (p)
    atomic_fetch_add(&total_allocs, 1);
  return p;
}
static void t_free(void *p) {
  if (p)
    atomic_fetch_sub(&live_allocs, 1), atomic_fetch_add(&total_frees, 1);
  free(p);
}
static void arm_failure(long n) {
  atomic_store(&armed_count, 0);
  atomic_store(&fail_at, n);
}
static void disarm(void) { atomic_store(&fail_at, -1); }

/* ---- helpers ---- */

static cn_atoms *A; /* one table per test, made in setup */

static int setup(void **state) {
  (void)state;
  return cn_atoms_new(&A, 0);
}
static int teardown(void **state) {
  (void)state;
  cn_atoms_free(A);
  A = NULL;
  return 0;
}

static cn_term *atom(const char *s) { return cn_mk_atom(cn_atoms_get(A, s)); }

static size_t unhex(const char *hex, uint8_t **out) {
  long n = hex_decode(hex, out);
  assert_true(n >= 0);
  return (size_t)n;
}

/* Decodes a whole binary_to_term input placed right before a PROT_NONE page. */
static int from_bin_guarded(const uint8_t *b, size_t n, const cn_decode_opts *o, cn_term **out) {
  uint8_t *g = guard_copy(b, n);
  assert_non_null(g);
  int r = cn_term_from_binary(A, g, n, o, out);
  guard_free(g, n);
  return r;
}

static void assert_bytes(const cn_buf *b, const uint8_t *exp, size_t n) {
  if (b->len != n || memcmp(b->data, exp, n) != 0) {
    fprintf(stderr, "got %zu bytes:", b->len);
    for (size_t i = 0; i < b->len && i < 64; i++)
      fprintf(stderr, " %02X", b->data[i]);
    fprintf(stderr, "\nwant %zu bytes:", n);
    for (size_t i = 0; i < n && i < 64; i++)
      fprintf(stderr, " %02X", exp[i]);
    fprintf(stderr, "\n");
    fail();
  }
}

static void assert_prints(const cn_term *t, const char *want) {
  assert_non_null(t);
  char *s = cn_term_to_string(t);
  assert_non_null(s);
  if (strcmp(s, want) != 0)
    fprintf(stderr, "printed %s, want %s\n", s, want);
  assert_string_equal(s, want);
  cn_free(s);
}

/* Prints a term made for the purpose and frees it. */
static void P(cn_term *t, const char *want) {
  assert_prints(t, want);
  cn_term_free(t);
}

/* ---- vectors: term_to_binary(T, [{minor_version, 2}]) from OTP 25.2.3, generated once ---- */

typedef struct {
  const char *name, *hex;
} vec;

static const vec VEC[] = {
    {"int_0", "836100"},
    {"int_255", "8361FF"},
    {"int_256", "836200000100"},
    {"int_m1", "8362FFFFFFFF"},
    {"int_max32", "83627FFFFFFF"},
    {"int_min32", "836280000000"},
    {"int_2p31", "836E040000000080"},
    {"int_m2p31m1", "836E040101000080"},
    {"int_max64", "836E0800FFFFFFFFFFFFFF7F"},
    {"int_min64", "836E08010000000000000080"},
    {"big_2p63", "836E08000000000000000080"},
    {"big_m2p63m1", "836E08010100000000000080"},
    {"big_2p64", "836E0900000000000000000001"},
    {"big_m2p64", "836E0901000000000000000001"},
    {"big_2p100p7", "836E0D0007000000000000000000000010"},
    {"big_m2p100", "836E0D0100000000000000000000000010"},
    {"big_large",
     "836F00000101000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
     "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
     "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
     "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
     "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
     "000000000000000000000000000000000000000000000001"},
    {"big_large_neg",
     "836F00000107013930000000000000000000000000000000000000000000000000000000000000000000000000000000"
     "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
     "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
     "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
     "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
     "000000000000000000000000000000000000000000000000000000000010"},
    {"float_0", "83460000000000000000"},
    {"float_m0", "83468000000000000000"},
    {"float_1_5", "83463FF8000000000000"},
    {"float_0_1", "83463FB999999999999A"},
    {"float_1e300", "83467E37E43C8800759C"},
    {"float_m2_5em300", "834681BAC9A7B3B7302F"},
    {"atom_foo", "837703666F6F"},
    {"atom_empty", "837700"},
    {"atom_space", "83770B68656C6C6F20776F726C64"},
    {"atom_elixir", "83770A456C697869722E466F6F"},
    {"atom_latin1", "837706C3A9636F6C65"},
    {"atom_smile", "837705F09F988078"},
    {"atom_255",
     "8377FF616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161"
     "616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161"
     "616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161"
     "616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161"
     "616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161"
     "616161616161616161616161616161616161"},
    {"atom_255_utf8",
     "837601FEC3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9"
     "C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9"
     "C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9"
     "C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9"
     "C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9"
     "C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9"
     "C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9"
     "C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9"
     "C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9"
     "C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9"
     "C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9C3A9"},
    {"atom_true", "83770474727565"},
    {"bin_empty", "836D00000000"},
    {"bin_123", "836D00000003010203"},
    {"bin_abc", "836D00000003616263"},
    {"bits_1_2_3", "834D00000002030140"},
    {"bits_5_3", "834D0000000103A0"},
    {"bits_7", "834D0000000207FFFE"},
    {"nil", "836A"},
    {"str_abc", "836B0003616263"},
    {"improper", "836C00000002610161027703666F6F"},
    {"improper2", "836C0000000161016102"},
    {"list_1000", "836C0000000262000003E861026A"},
    {"list_atoms", "836C000000027701617701626A"},
    {"list_nil", "836C000000016A6A"},
    {"list_m1", "836C0000000162FFFFFFFF6A"},
    {"tuple_0", "836800"},
    {"tuple_2", "8368027701616101"},
    {"tuple_300",
     "83690000012C610161026103610461056106610761086109610A610B610C610D610E610F611061116112611361146115"
     "6116611761186119611A611B611C611D611E611F6120612161226123612461256126612761286129612A612B612C612D"
     "612E612F6130613161326133613461356136613761386139613A613B613C613D613E613F614061416142614361446145"
     "6146614761486149614A614B614C614D614E614F6150615161526153615461556156615761586159615A615B615C615D"
     "615E615F6160616161626163616461656166616761686169616A616B616C616D616E616F617061716172617361746175"
     "6176617761786179617A617B617C617D617E617F6180618161826183618461856186618761886189618A618B618C618D"
     "618E618F6190619161926193619461956196619761986199619A619B619C619D619E619F61A061A161A261A361A461A5"
     "61A661A761A861A961AA61AB61AC61AD61AE61AF61B061B161B261B361B461B561B661B761B861B961BA61BB61BC61BD"
     "61BE61BF61C061C161C261C361C461C561C661C761C861C961CA61CB61CC61CD61CE61CF61D061D161D261D361D461D5"
     "61D661D761D861D961DA61DB61DC61DD61DE61DF61E061E161E261E361E461E561E661E761E861E961EA61EB61EC61ED"
     "61EE61EF61F061F161F261F361F461F561F661F761F861F961FA61FB61FC61FD61FE61FF620000010062000001016200"
     "0001026200000103620000010462000001056200000106620000010762000001086200000109620000010A620000010B"
     "620000010C620000010D620000010E620000010F62000001106200000111620000011262000001136200000114620000"
     "01156200000116620000011762000001186200000119620000011A620000011B620000011C620000011D620000011E62"
     "0000011F6200000120620000012162000001226200000123620000012462000001256200000126620000012762000001"
     "286200000129620000012A620000012B620000012C"},
    {"map_0", "837400000000"},
    {"map_2", "83740000000277016161017701626102"},
    {"map_40",
     "83740000002861216142610C61186117612E611D613A611E613C6127614E611A6134611F613E610B61166125614A6109"
     "6112612061406122614461196132611C61386106610C6126614C610D611A6128615061146128610F611E610E611C6102"
     "61046107610E610161026108611061036106611161226116612C6115612A610461086124614861186130610A61146123"
     "6146611B6136611361266105610A6112612461106120"},
    {"map_nested", "83740000000277016B74000000016D00000001786C00000001463FF80000000000006A68017701746A"},
    {"pid", "8358770B61403132372E302E302E310000005500000000000004D2"},
    {"pid_big", "835877096E6F646540686F737400007FFF00001FFFFFFFFFFF"},
    {"port", "8359770B61403132372E302E302E3100000005000004D2"},
    {"port_v4", "8378770B61403132372E302E302E31000001000000000000000007"},
    {"ref3", "835A0003770B61403132372E302E302E31000004D2000000010000000200000003"},
    {"ref5", "835A0005770B61403132372E302E302E31000004D20000000100000002000000030000000400000005"},
    {"fun_export", "837177056C6973747377036D61706102"},
    {"fun_local",
     "83700000004801936CBA010DE18F2EB6EA087BCA5B7F78000000000000000177047467656E610062049B65D058770D6E"
     "6F6E6F6465406E6F686F7374000000090000000000000000612A"},
    {"mixed",
     "83680477026F6B6C0000000168026D000000016B463FF00000000000006A740000000277046C6973746B00017877036E"
     "656762FFFFFFFB6C0000000161016D0000000174"},
};
#define NVEC (sizeof VEC / sizeof VEC[0])

static cn_term *big_bit(int neg, size_t bit, uint32_t low) { /* +-(2^bit + low) */
  uint8_t m[300] = {0};
  m[bit / 8] = (uint8_t)(1u << (bit % 8));
  m[0] |= (uint8_t)low, m[1] |= (uint8_t)(low >> 8);
  return cn_mk_big(neg, m, bit / 8 + 1);
}

static cn_term *repeat_atom(const char *unit, int times) {
  char buf[1100] = {0};
  for (int i = 0; i < times; i++)
    strcat(buf, unit);
  return atom(buf);
}

static cn_pid mkpid(const char *node, uint32_t id, uint32_t ser, uint32_t cre) {
  return (cn_pid){cn_atoms_get(A, node), id, ser, cre};
}

/* The C twin of each vector; NULL for funs, which have no constructor. */
static cn_term *build(const char *n) {
#define IS(s) (strcmp(n, s) == 0)
  if (IS("int_0"))
    return cn_mk_int(0);
  if (IS("int_255"))
    return cn_mk_int(255);
  if (IS("int_256"))
    return cn_mk_int(256);
  if (IS("int_m1"))
    return cn_mk_int(-1);
  if (IS("int_max32"))
    return cn_mk_int(INT32_MAX);
  if (IS("int_min32"))
    return cn_mk_int(INT32_MIN);
  if (IS("int_2p31"))
    return cn_mk_int(2147483648LL);
  if (IS("int_m2p31m1"))
    return cn_mk_int(-2147483649LL);
  if (IS("int_max64"))
    return cn_mk_int(INT64_MAX);
  if (IS("int_min64"))
    return cn_mk_int(INT64_MIN);
  if (IS("big_2p63"))
    return big_bit(0, 63, 0);
  if (IS("big_m2p63m1"))
    return big_bit(1, 63, 1);
  if (IS("big_2p64"))
    return big_bit(0, 64, 0);
  if (IS("big_m2p64"))
    return big_bit(1, 64, 0);
  if (IS("big_2p100p7"))
    return big_bit(0, 100, 7);
  if (IS("big_m2p100"))
    return big_bit(1, 100, 0);
  if (IS("big_large"))
    return big_bit(0, 2048, 0);
  if (IS("big_large_neg"))
    return big_bit(1, 2100, 12345);
  if (IS("float_0"))
    return cn_mk_float(0.0);
  if (IS("float_m0"))
    return cn_mk_float(-0.0);
  if (IS("float_1_5"))
    return cn_mk_float(1.5);
  if (IS("float_0_1"))
    return cn_mk_float(0.1);
  if (IS("float_1e300"))
    return cn_mk_float(1.0e300);
  if (IS("float_m2_5em300"))
    return cn_mk_float(-2.5e-300);
  if (IS("atom_foo"))
    return atom("foo");
  if (IS("atom_empty"))
    return atom("");
  if (IS("atom_space"))
    return atom("hello world");
  if (IS("atom_elixir"))
    return atom("Elixir.Foo");
  if (IS("atom_latin1"))
    return atom("\xc3\xa9"
                "cole");
  if (IS("atom_smile"))
    return atom("\xF0\x9F\x98\x80x");
  if (IS("atom_255"))
    return repeat_atom("a", 255);
  if (IS("atom_255_utf8"))
    return repeat_atom("\xc3\xa9", 255);
  if (IS("atom_true"))
    return atom("true");
  if (IS("bin_empty"))
    return cn_mk_binary(NULL, 0);
  if (IS("bin_123"))
    return cn_mk_binary("\1\2\3", 3);
  if (IS("bin_abc"))
    return cn_mk_binary("abc", 3);
  if (IS("bits_1_2_3"))
    return cn_mk_bitstring("\x01\x5F", 2, 3); /* junk low bits are masked off */
  if (IS("bits_5_3"))
    return cn_mk_bitstring("\xA0", 1, 3);
  if (IS("bits_7"))
    return cn_mk_bitstring("\xFF\xFE", 2, 7);
  if (IS("nil"))
    return cn_mk_nil();
  if (IS("str_abc"))
    return cn_mk_string("abc");
  if (IS("improper"))
    return cn_mk_listv(2, (cn_term *[]){cn_mk_int(1), cn_mk_int(2)}, atom("foo"));
  if (IS("improper2"))
    return cn_mk_listv(1, (cn_term *[]){cn_mk_int(1)}, cn_mk_int(2));
  if (IS("list_1000"))
    return cn_mk_list(2, cn_mk_int(1000), cn_mk_int(2));
  if (IS("list_atoms"))
    return cn_mk_list(2, atom("a"), atom("b"));
  if (IS("list_nil"))
    return cn_mk_list(1, cn_mk_nil());
  if (IS("list_m1"))
    return cn_mk_list(1, cn_mk_int(-1));
  if (IS("tuple_0"))
    return cn_mk_tuple(0);
  if (IS("tuple_2"))
    return cn_mk_tuple(2, atom("a"), cn_mk_int(1));
  if (IS("tuple_300")) {
    cn_term *e[300];
    for (int i = 0; i < 300; i++)
      e[i] = cn_mk_int(i + 1);
    return cn_mk_tuplev(300, e);
  }
  if (IS("map_0"))
    return cn_mk_map(0, NULL);
  if (IS("map_2"))
    return cn_mk_map(2, (cn_term *[]){atom("a"), cn_mk_int(1), atom("b"), cn_mk_int(2)});
  if (IS("map_40")) { /* built in key order; the BEAM wrote hash order: equality ignores order */
    cn_term *kv[80];
    for (int i = 0; i < 40; i++)
      kv[2 * i] = cn_mk_int(i + 1), kv[2 * i + 1] = cn_mk_int(2 * (i + 1));
    return cn_mk_map(40, kv);
  }
  if (IS("map_nested"))
    return cn_mk_map(
        2, (cn_term *[]){atom("k"),
                         cn_mk_map(1, (cn_term *[]){cn_mk_binary("x", 1), cn_mk_list(1, cn_mk_float(1.5))}),
                         cn_mk_tuple(1, atom("t")), cn_mk_nil()});
  if (IS("pid"))
    return cn_mk_pid(mkpid("a@127.0.0.1", 85, 0, 1234));
  if (IS("pid_big"))
    return cn_mk_pid(mkpid("node@host", 0x7fff, 8191, 0xffffffffu));
  if (IS("port"))
    return cn_mk_port((cn_port){cn_atoms_get(A, "a@127.0.0.1"), 5, 1234});
  if (IS("port_v4"))
    return cn_mk_port((cn_port){cn_atoms_get(A, "a@127.0.0.1"), 1ull << 40, 7});
  if (IS("ref3"))
    return cn_mk_ref((cn_ref){cn_atoms_get(A, "a@127.0.0.1"), 1234, 3, {1, 2, 3}});
  if (IS("ref5"))
    return cn_mk_ref((cn_ref){cn_atoms_get(A, "a@127.0.0.1"), 1234, 5, {1, 2, 3, 4, 5}});
  if (IS("mixed"))
    return cn_mk_tuple(
        4, atom("ok"), cn_mk_list(1, cn_mk_tuple(2, cn_mk_binary("k", 1), cn_mk_float(1.0))),
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
    if (r)
      fprintf(stderr, "%s: %s\n", VEC[i].name, cn_err_name(r));
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
      if (!cn_term_exact_eq(bt, t))
        fprintf(stderr, "built %s differs\n", VEC[i].name);
      assert_true(cn_term_exact_eq(bt, t));
      cn_term *back = NULL;
      assert_int_equal(cn_term_to_binary(bt, &out), 0);
      if (strcmp(VEC[i].name, "map_40") != 0)
        assert_bytes(&out, b, n); /* only map_40 is in another order */
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
      for (size_t i = 0; i < len; i++)
        cn_buf_put8(&exp, (uint8_t)('a' + i % 26));
    } else {
      cn_buf_put8(&exp, 'l');
      cn_buf_put32(&exp, (uint32_t)len);
      for (size_t i = 0; i < len; i++)
        cn_buf_put8(&exp, 'a'), cn_buf_put8(&exp, (uint8_t)('a' + i % 26));
      cn_buf_put8(&exp, 'j');
    }
    char *s = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
      s[i] = (char)('a' + i % 26);
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
  case CN_FUN:
    return true;
  case CN_TUPLE:
    for (uint32_t i = 0; i < t->v.tuple.arity; i++)
      if (has_atoms(&t->v.tuple.e[i]))
        return true;
    return false;
  case CN_MAP:
    for (uint32_t i = 0; i < 2 * t->v.map.size; i++)
      if (has_atoms(&t->v.map.kv[i]))
        return true;
    return false;
  case CN_LIST:
    for (uint32_t i = 0; i < t->v.list.len; i++)
      if (has_atoms(&t->v.list.e[i]))
        return true;
    return t->v.list.tail && has_atoms(t->v.list.tail);
  default:
    return false;
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
  if (!f)
    fprintf(stderr, "cannot open %s (run from the repo root)\n", path);
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
  for (size_t i = 0; i < L->count; i++)
    free(L->b[i]);
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
    if (r)
      fprintf(stderr, "line %zu: %s\n", i + 1, cn_err_name(r));
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
    if (n > 2048 && k > 512 && k < n - 512 && k % 97 != 0)
      continue;
    uint8_t *p = g + n - k;
    memmove(p, b, k);
    cn_term *t = (cn_term *)1;
    int r = cn_term_from_binary(A, p, k, NULL, &t);
    if (r != CN_ETRUNC)
      fprintf(stderr, "prefix %zu of %zu: %d\n", k, n, r);
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
  for (size_t i = 0; i < L.count; i++)
    check_prefixes(L.b[i], L.n[i]);
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
    if (r != cases[i].err)
      fprintf(stderr, "case %zu (%s): %s\n", i, cases[i].hex, cn_err_name(r));
    assert_int_equal(r, cases[i].err);
    assert_null(t);
    /* Framing errors are found before anything is allocated: no gigabyte arrays for lying headers. */
    if (cases[i].err == CN_ETRUNC)
      assert_int_equal(atomic_load(&total_allocs), allocs);
    free(b);
  }
  /* A 256-character UTF-8 atom is not an atom; 255 is (the UTF-8 vector above). */
  cn_buf b = {0};
  cn_buf_put8(&b, 131), cn_buf_put8(&b, 'v'), cn_buf_put16(&b, 512);
  for (int i = 0; i < 256; i++)
    cn_buf_append(&b, "\xc3\xa9", 2);
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
  for (int i = 0; i < 200000; i++)
    cn_buf_append(&big, "\x6C\x00\x00\x00\x01\x61\x07", 7);
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
static void nest(cn_buf *b, int depth, const char *open, size_t open_len, const char *close,
                 size_t close_len) {
  cn_buf_put8(b, 131);
  for (int i = 0; i < depth; i++)
    cn_buf_append(b, open, open_len);
  cn_buf_put8(b, 'j');
  for (int i = 0; i < depth; i++)
    cn_buf_append(b, close, close_len);
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
      for (size_t i = 0; i < n; i++)
        fprintf(stderr, "%02X", b[i]);
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
    for (size_t i = 0; i < n; i++)
      b[i] = (uint8_t)rnd();
    if (n > 0 && it % 4)
      b[0] = 131;
    for (size_t i = 1; i < n; i++)
      if (rnd() % 3 == 0)
        b[i] = tags[rnd() % (sizeof tags - 1)];
    /* Small counts give the walker a chance to get deep rather than fail at once. */
    for (size_t i = 1; i < n; i++)
      if (rnd() % 4 == 0)
        b[i] = (uint8_t)(rnd() % 4);
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
      case 0:
        v[at] ^= (uint8_t)(1u << (rnd() % 8));
        break;
      case 1:
        v[at] = (uint8_t)rnd();
        break;
      default:
        n = at;
        break;
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
      if (done)
        break;
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
    cn_term *t = cn_mk_tuple(
        3, cn_mk_list(2, a, s), cn_mk_listv(1, (cn_term *[]){bn}, tail),
        cn_mk_map(1, (cn_term *[]){cn_mk_float(1.0), cn_mk_big(0, (const uint8_t *)"123456789", 9)}));
    disarm();
    cn_term_free(t);
    assert_int_equal(atomic_load(&live_allocs), before);
  }
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
#define CACHE_HEX                                                                                            \
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
    if (*s != ' ')
      *q++ = *s;
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
      if (round)
        assert_int_equal(atomic_load(&total_allocs) - total, 1); /* the block; no atom was created */
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
    assert_int_equal(dec_hex(A, "83770" "2C328", &o, &t), CN_EDECODE);
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
  for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++)
    P(cn_mk_float(fl[i].f), fl[i].s);

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
    if (!want)
      continue;
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
  for (int i = 0; i < 256; i++)
    strcat(utf, "\xE2\x82\xAC"); /* euro sign, 3 bytes */
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
  assert_int_equal(
      cn_term_from_binary(t, (const uint8_t *)"\x83\x68\x02\x77\x01\x61\x77\x01\x62", 9, NULL, &x),
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
      if (round == 0)
        a->got[k] = at;
      else if (a->got[k] != at)
        a->got[k] = NULL;
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
  for (int i = 0; i < 4; i++)
    pthread_join(th[i], NULL);
  for (int k = 0; k < 3000; k++) {
    assert_non_null(args[0].got[k]);
    for (int i = 1; i < 4; i++)
      assert_ptr_equal(args[0].got[k], args[i].got[k]);
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
      cmocka_unit_test_setup_teardown(test_vectors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_old_formats, setup, teardown),
      cmocka_unit_test_setup_teardown(test_string_boundary, setup, teardown),
      cmocka_unit_test_setup_teardown(test_list_canonical, setup, teardown),
      cmocka_unit_test_setup_teardown(test_phash2_vectors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
      cmocka_unit_test_setup_teardown(test_depth, setup, teardown),
      cmocka_unit_test_setup_teardown(test_max_size, setup, teardown),
      cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
      cmocka_unit_test_setup_teardown(test_enomem, setup, teardown),
      cmocka_unit_test_setup_teardown(test_single_block, setup, teardown),
      cmocka_unit_test_setup_teardown(test_atom_cache, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cache_equal, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pid_fields, setup, teardown),
      cmocka_unit_test_setup_teardown(test_id_eq, setup, teardown),
      cmocka_unit_test_setup_teardown(test_print, setup, teardown),
  };
  int fails = cmocka_run_group_tests(tests, NULL, NULL);
  return fails;
}
