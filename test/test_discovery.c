/* test_discovery.c: unit tests of discovery's pure part (cluster/pure.c): libcluster Gossip heartbeats against
 * bytes OTP made (term_to_binary, and crypto's AES-256-CBC with libcluster's key, IV and padding), malformed,
 * truncated and oversized heartbeats, the wrong secret; DNS answers (A, AAAA, SRV) built by hand, bad and cut
 * ones; host lists; the back-off schedule. Inputs are read behind a guard page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "cluster_int.h"
#include <stdio.h>
#include "testutil.h"

/* From OTP 25 (erl, not this code): "heartbeat::" ++ term_to_binary(#{node => 'a@10.0.0.1'}), and the same
 * encrypted as libcluster does with secret "somepassword" and the IV 1..16. */
static const char PLAIN[] = "6865617274626561743a3a8374000000016400046e6f646564000a614031302e302e302e31";
static const char ENC[] =
    "0102030405060708090a0b0c0d0e0f1062564e9b80b4230eb631eef96c6b044aa2e4dbe28313b8a4e803b7578f6dac"
    "f4657e17f243d144af0d7c39a787f21eb7";
/* The same with UTF-8 atoms (term_to_binary(..., [{minor_version, 2}]), OTP 26's default and this encoder's). */
static const char PLAIN_UTF8[] = "6865617274626561743a3a83740000000177046e6f6465770a614031302e302e302e31";
static const char ENC_UTF8[] =
    "0102030405060708090a0b0c0d0e0f1062564e9b80b4230eb631eef96c6b044af5bd5b316328c554195079225d2d1"
    "7ffc3f0770c0ae3151901889678d7dad5d1";
/* #{node => 'x@h', extra => [1,2,3]}: other keys are allowed, as libcluster matches %{node: n}. */
static const char EXTRA[] = "6865617274626561743a3a83740000000264000565787472616b00030102036400046e6f6465640003784068";
/* #{node => 'ü@h'} with UTF-8 atoms (OTP 26's default). */
static const char UTF8[] = "6865617274626561743a3a83740000000177046e6f64657704c3bc4068";

static int decode_hex(const char *hex, const uint8_t *key, char *name, size_t cap) {
  uint8_t *b = NULL;
  long n = hex_decode(hex, &b);
  assert_true(n >= 0);
  uint8_t *g = guard_copy(b, (size_t)n);
  int rc = cl_hb_decode(g, (size_t)n, key, name, cap);
  guard_free(g, (size_t)n);
  free(b);
  return rc;
}

static int decode_bytes(const uint8_t *p, size_t n, const uint8_t *key, char *name, size_t cap) {
  uint8_t *g = guard_copy(p, n);
  int rc = cl_hb_decode(g, n, key, name, cap);
  guard_free(g, n);
  return rc;
}

static void key_of(const char *secret, uint8_t key[CL_KEY_LEN]) { cl_key_from_secret(secret, key); }

static void test_hb_decode_otp(void **state) {
  (void)state;
  char name[CN_ATOM_MAX_BYTES + 1];
  uint8_t key[CL_KEY_LEN];
  key_of("somepassword", key);
  assert_int_equal(decode_hex(PLAIN, NULL, name, sizeof name), 0);
  assert_string_equal(name, "a@10.0.0.1");
  assert_int_equal(decode_hex(ENC, key, name, sizeof name), 0);
  assert_string_equal(name, "a@10.0.0.1");
  assert_int_equal(decode_hex(EXTRA, NULL, name, sizeof name), 0);
  assert_string_equal(name, "x@h");
  assert_int_equal(decode_hex(UTF8, NULL, name, sizeof name), 0);
  assert_string_equal(name, "\xc3\xbc@h");
}

/* Our bytes are OTP's: the clear heartbeat decodes there the same (the term may use UTF-8 atoms), and with the
 * same IV the encrypted one is OTP's ciphertext of our own clear bytes; both read back. */
static void test_hb_encode(void **state) {
  (void)state;
  uint8_t key[CL_KEY_LEN], iv[CL_IV_LEN];
  for (int i = 0; i < CL_IV_LEN; i++) iv[i] = (uint8_t)(i + 1);
  key_of("somepassword", key);
  cn_buf clear = {0}, enc = {0};
  assert_int_equal(cl_hb_encode("a@10.0.0.1", NULL, iv, &clear), 0);
  assert_int_equal(cl_hb_encode("a@10.0.0.1", key, iv, &enc), 0);
  /* The encoder writes atoms as OTP 26+ does (or as OTP 25 does): either way, both byte streams are OTP's. */
  uint8_t *otp = NULL, *oe = NULL;
  long n = hex_decode(clear.data[17] == 119 ? PLAIN_UTF8 : PLAIN, &otp);
  long ne = hex_decode(clear.data[17] == 119 ? ENC_UTF8 : ENC, &oe);
  assert_int_equal((size_t)n, clear.len);
  assert_memory_equal(otp, clear.data, clear.len);
  assert_int_equal((size_t)ne, enc.len);
  assert_memory_equal(oe, enc.data, enc.len);
  free(otp);
  free(oe);
  assert_int_equal(enc.len % 16, 0);
  assert_memory_equal(enc.data, iv, CL_IV_LEN);
  char name[64];
  assert_int_equal(decode_bytes(clear.data, clear.len, NULL, name, sizeof name), 0);
  assert_string_equal(name, "a@10.0.0.1");
  assert_int_equal(decode_bytes(enc.data, enc.len, key, name, sizeof name), 0);
  assert_string_equal(name, "a@10.0.0.1");
  /* Not node names: refused before anything is sent. */
  assert_int_equal(cl_hb_encode("nohost", NULL, iv, &clear), CN_EINVAL);
  assert_int_equal(cl_hb_encode("@h", NULL, iv, &clear), CN_EINVAL);
  cn_buf_free(&clear);
  cn_buf_free(&enc);
}

static void test_hb_wrong_secret(void **state) {
  (void)state;
  char name[64];
  uint8_t key[CL_KEY_LEN], other[CL_KEY_LEN];
  key_of("somepassword", key);
  key_of("another", other);
  assert_int_not_equal(decode_hex(ENC, other, name, sizeof name), 0);
  /* A clear heartbeat where a secret is set, and an encrypted one where none is: both ignored. */
  assert_int_equal(decode_hex(PLAIN, key, name, sizeof name), CN_EAUTH);
  assert_int_equal(decode_hex(ENC, NULL, name, sizeof name), CN_EDECODE);
  /* Just the IV, or the IV and a partial block. */
  uint8_t b[40] = {0};
  assert_int_equal(decode_bytes(b, 16, key, name, sizeof name), CN_EAUTH);
  assert_int_equal(decode_bytes(b, 15, key, name, sizeof name), CN_EAUTH);
  assert_int_equal(decode_bytes(b, 33, key, name, sizeof name), CN_EAUTH);
}

/* Whole blocks encrypted with no padding added, as a sender could. */
static void raw_encrypt(const uint8_t *key, const uint8_t *iv, cn_buf *text, cn_buf *out) {
  EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
  int k1 = 0, k2 = 0;
  assert_int_equal(cn_buf_append(out, iv, CL_IV_LEN), 0);
  assert_int_equal(cn_buf_reserve(out, text->len + 16), 0);
  assert_true(EVP_EncryptInit_ex(x, EVP_aes_256_cbc(), NULL, key, iv) && EVP_CIPHER_CTX_set_padding(x, 0) &&
              EVP_EncryptUpdate(x, out->data + out->len, &k1, text->data, (int)text->len) &&
              EVP_EncryptFinal_ex(x, out->data + out->len + k1, &k2));
  out->len += (size_t)(k1 + k2);
  EVP_CIPHER_CTX_free(x);
}

/* libcluster's unpadding lets a last byte of 0 through (nothing removed): a heartbeat whose whole blocks end in
 * a 0 (bytes after the term are ignored) is read, as libcluster reads it; a pad of 17, or of 3 over bytes that
 * are not 3, is refused; a flipped ciphertext byte never crashes. */
static void test_hb_padding_rules(void **state) {
  (void)state;
  uint8_t key[CL_KEY_LEN], iv[CL_IV_LEN] = {9};
  key_of("s", key);
  char name[64];
  for (int last = 0; last < 3; last++) {
    cn_buf clear = {0}, enc = {0};
    assert_int_equal(cl_hb_encode("a@h", NULL, iv, &clear), 0);
    while (clear.len % 16 != 15) assert_int_equal(cn_buf_put8(&clear, 1), 0);
    assert_int_equal(cn_buf_put8(&clear, last == 0 ? 0 : last == 1 ? 17 : 3), 0);
    raw_encrypt(key, iv, &clear, &enc);
    assert_int_equal(decode_bytes(enc.data, enc.len, key, name, sizeof name), last == 0 ? 0 : CN_EAUTH);
    cn_buf_free(&clear);
    cn_buf_free(&enc);
  }
  cn_buf enc = {0};
  assert_int_equal(cl_hb_encode("a@h", key, iv, &enc), 0);
  assert_int_equal(decode_bytes(enc.data, enc.len, key, name, sizeof name), 0);
  for (size_t i = CL_IV_LEN; i < enc.len; i++) {
    enc.data[i] ^= 0x55;
    decode_bytes(enc.data, enc.len, key, name, sizeof name);
    enc.data[i] ^= 0x55;
  }
  cn_buf_free(&enc);
}

static void test_hb_truncated(void **state) {
  (void)state;
  char name[64];
  uint8_t key[CL_KEY_LEN];
  key_of("somepassword", key);
  const char *hex[] = {PLAIN, ENC};
  for (int v = 0; v < 2; v++) {
    uint8_t *b = NULL;
    long n = hex_decode(hex[v], &b);
    for (long k = 0; k < n; k++) assert_int_not_equal(decode_bytes(b, (size_t)k, v ? key : NULL, name, sizeof name), 0);
    /* Bytes after the term are ignored (binary_to_term/1 does). */
    if (!v) {
      uint8_t *more = malloc((size_t)n + 3);
      memcpy(more, b, (size_t)n);
      memcpy(more + n, "xyz", 3);
      assert_int_equal(decode_bytes(more, (size_t)n + 3, NULL, name, sizeof name), 0);
      free(more);
    }
    free(b);
  }
}

static void test_hb_malformed(void **state) {
  (void)state;
  char name[64];
  /* Not a heartbeat, not a map, no node key, node not an atom, an atom that is no node name. */
  const char *bad[] = {
      "6865617274626561743b3a8374000000016400046e6f646564000a614031302e302e302e31", /* heartbeat;: */
      "6865617274626561743a3a836400036140",                                         /* an atom */
      "6865617274626561743a3a8374000000016400046e6f6465",                           /* key only */
      "6865617274626561743a3a8374000000016400046e6f64656b0003614068",               /* node => "a@h" */
      "6865617274626561743a3a8374000000016400046e6f7065640003614068",               /* nope => a@h */
      "6865617274626561743a3a8374000000016400046e6f646564000161",                   /* node => a */
      "6865617274626561743a3a8374000000016400046e6f64656400024068",                 /* node => '@h' */
      "6865617274626561743a3a8374000000016400046e6f64656400026140",                 /* node => 'a@' */
      "6865617274626561743a3a8274000000016400046e6f6465640003614068",               /* version 130 */
      "6865617274626561743a3a83740fffffff6400046e6f6465640003614068",               /* arity 2^28 */
      "6865617274626561743a3a",                                                     /* prefix only */
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_int_not_equal(decode_hex(bad[i], NULL, name, sizeof name), 0);
  /* A name that does not fit the caller's buffer. */
  assert_int_equal(decode_hex(PLAIN, NULL, name, 5), CN_ELIMIT);
  /* Oversized: more than a UDP datagram can carry. */
  size_t big = CL_HB_MAX + 1;
  uint8_t *b = calloc(1, big);
  memcpy(b, "heartbeat::", 11);
  assert_int_equal(decode_bytes(b, big, NULL, name, sizeof name), CN_ELIMIT);
  free(b);
  /* Random bytes after the prefix and random encrypted packets: an error or a name, never a crash. */
  srand(7);
  uint8_t key[CL_KEY_LEN];
  key_of("k", key);
  for (int r = 0; r < 3000; r++) {
    uint8_t p[96];
    size_t n = 11 + (size_t)(rand() % 80);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rand();
    memcpy(p, "heartbeat::\x83", r % 2 ? 12 : 11);
    decode_bytes(p, n, NULL, name, sizeof name);
    decode_bytes(p, n & ~(size_t)15, key, name, sizeof name);
  }
}

/* ---- DNS answers built by hand ------------------------------------------------------------------------ */

typedef struct {
  uint8_t b[1024];
  size_t n;
} msg;

static void put(msg *m, const void *p, size_t k) {
  memcpy(m->b + m->n, p, k);
  m->n += k;
}
static void put16(msg *m, unsigned v) {
  uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
  put(m, x, 2);
}
static void put_name(msg *m, const char *dotted) {
  while (*dotted) {
    size_t k = strcspn(dotted, ".");
    uint8_t l = (uint8_t)k;
    put(m, &l, 1);
    put(m, dotted, k);
    dotted += k + (dotted[k] == '.');
  }
  put(m, "", 1);
}
/* A response to QNAME/type with ancount answers to follow (each added by rr()). */
static void header(msg *m, const char *qname, int type, unsigned ancount, unsigned rcode) {
  m->n = 0;
  put16(m, 0x1234);
  put16(m, 0x8180 | rcode);
  put16(m, 1);
  put16(m, ancount);
  put16(m, 0);
  put16(m, 0);
  put_name(m, qname);
  put16(m, (unsigned)type);
  put16(m, 1);
}
static void rr(msg *m, int type, const void *rdata, size_t len) {
  put16(m, 0xc00c); /* the question's name */
  put16(m, (unsigned)type);
  put16(m, 1);
  put16(m, 0);
  put16(m, 30);
  put16(m, (unsigned)len);
  put(m, rdata, len);
}
static void srv_rr(msg *m, const char *target) {
  msg r = {.n = 0};
  put16(&r, 10);
  put16(&r, 50);
  put16(&r, 4369);
  put_name(&r, target);
  rr(m, CL_DNS_SRV, r.b, r.n);
}

static int names_of(int type, const msg *m, const char *self, cl_names *out) {
  uint8_t *g = guard_copy(m->b, m->n);
  int rc = cl_dns_names(type, g, m->n, "app", self, out);
  guard_free(g, m->n);
  return rc;
}

static void test_dns_a_aaaa(void **state) {
  (void)state;
  msg m;
  header(&m, "svc.test", CL_DNS_A, 3, 0);
  rr(&m, CL_DNS_A, "\x0a\x00\x00\x01", 4);
  rr(&m, CL_DNS_A, "\x0a\x00\x00\x02", 4);
  rr(&m, CL_DNS_A, "\x0a\x00\x00\x01", 4); /* twice: once in the list */
  cl_names l = {0};
  assert_int_equal(names_of(CL_DNS_A, &m, "app@10.0.0.2", &l), 0); /* never itself */
  assert_int_equal(l.n, 1);
  assert_string_equal(l.v[0], "app@10.0.0.1");
  header(&m, "svc.test", CL_DNS_AAAA, 1, 0);
  rr(&m, CL_DNS_AAAA, "\xfd\x00\0\0\0\0\0\0\0\0\0\0\0\0\0\x07", 16);
  assert_int_equal(names_of(CL_DNS_AAAA, &m, NULL, &l), 0);
  assert_int_equal(l.n, 2);
  assert_string_equal(l.v[1], "app@fd00::7");
  cl_names_free(&l);
  /* No records of the type (NOERROR, no answer; NXDOMAIN): no node, not an error of the answer. */
  header(&m, "svc.test", CL_DNS_A, 0, 0);
  assert_int_equal(names_of(CL_DNS_A, &m, NULL, &l), CN_ENOTFOUND);
  header(&m, "svc.test", CL_DNS_A, 0, 3);
  assert_int_equal(names_of(CL_DNS_A, &m, NULL, &l), CN_ENOTFOUND);
  assert_int_equal(l.n, 0);
}

static void test_dns_srv(void **state) {
  (void)state;
  msg m;
  header(&m, "_erl._tcp.svc.test", CL_DNS_SRV, 2, 0);
  srv_rr(&m, "pod-1.svc.test");
  srv_rr(&m, "pod-2.svc.test");
  cl_names l = {0};
  assert_int_equal(names_of(CL_DNS_SRV, &m, "app@pod-2.svc.test", &l), 0);
  assert_int_equal(l.n, 1);
  assert_string_equal(l.v[0], "app@pod-1.svc.test");
  cl_names_free(&l);
}

static void test_dns_bad(void **state) {
  (void)state;
  msg m;
  cl_names l = {0};
  header(&m, "svc.test", CL_DNS_A, 2, 0);
  rr(&m, CL_DNS_A, "\x0a\x00\x00\x01", 4);
  rr(&m, CL_DNS_A, "\x0a\x00\x00\x02", 4);
  /* Cut at every offset: an error or (cut between records, when the count is not checked) fewer names. */
  msg cut = m;
  for (size_t k = 0; k < m.n; k++) {
    cut.n = k;
    int rc = names_of(CL_DNS_A, &cut, NULL, &l);
    assert_true(rc == CN_EDECODE || rc == CN_ENOTFOUND || (rc == 0 && l.n <= 2));
    cl_names_free(&l);
  }
  /* An A record of 3 bytes; a compression pointer to itself; a wrong type asked for. */
  header(&m, "svc.test", CL_DNS_A, 1, 0);
  rr(&m, CL_DNS_A, "\x0a\x00\x00", 3);
  int rc3 = names_of(CL_DNS_A, &m, NULL, &l);
  assert_true(rc3 == CN_EDECODE || rc3 == CN_ENOTFOUND); /* c-ares skips it: no node either way */
  assert_int_equal(l.n, 0);
  header(&m, "svc.test", CL_DNS_A, 1, 0);
  put16(&m, 0xc000 | (unsigned)m.n);
  put16(&m, 1);
  assert_int_not_equal(names_of(CL_DNS_A, &m, NULL, &l), 0);
  header(&m, "svc.test", CL_DNS_SRV, 1, 0);
  srv_rr(&m, "pod-1.svc.test");
  assert_int_equal(names_of(CL_DNS_SRV, &m, NULL, &l), 0);
  cl_names_free(&l);
  assert_int_equal(cl_dns_names(99, m.b, m.n, "app", NULL, &l), CN_EINVAL);
  /* Random answers: no crash. */
  srand(11);
  for (int r = 0; r < 2000; r++) {
    msg x;
    header(&x, "svc.test", CL_DNS_A, (unsigned)(rand() % 4), 0);
    size_t add = (size_t)(rand() % 60);
    for (size_t i = 0; i < add; i++) x.b[x.n++] = (uint8_t)rand();
    names_of(r % 3 == 0 ? CL_DNS_SRV : r % 3 == 1 ? CL_DNS_A : CL_DNS_AAAA, &x, NULL, &l);
    cl_names_free(&l);
  }
}

static void test_hosts(void **state) {
  (void)state;
  cl_names l = {0};
  const char *bad = NULL;
  assert_int_equal(cl_hosts_parse(" a@h1, b@h2,,me@x, a@h1 ", "me@x", &l, &bad), 0);
  assert_int_equal(l.n, 2);
  assert_string_equal(l.v[0], "a@h1");
  assert_string_equal(l.v[1], "b@h2");
  cl_names_free(&l);
  assert_int_equal(cl_hosts_parse("a@h1,nohost", NULL, &l, &bad), CN_EINVAL);
  assert_string_equal(bad, "nohost");
  cl_names_free(&l);
  assert_int_equal(cl_hosts_parse("@h", NULL, &l, &bad), CN_EINVAL);
  assert_int_equal(cl_hosts_parse("a@", NULL, &l, &bad), CN_EINVAL);
  assert_int_equal(cl_hosts_parse("a b@h", NULL, &l, &bad), CN_EINVAL);
  cl_names_free(&l);
}

static void test_backoff(void **state) {
  (void)state;
  assert_int_equal(cl_backoff_ms(1, 1000, 30000), 1000);
  assert_int_equal(cl_backoff_ms(2, 1000, 30000), 2000);
  assert_int_equal(cl_backoff_ms(3, 1000, 30000), 4000);
  assert_int_equal(cl_backoff_ms(5, 1000, 30000), 16000);
  assert_int_equal(cl_backoff_ms(6, 1000, 30000), 30000);
  assert_int_equal(cl_backoff_ms(4000000000u, 1000, 30000), 30000);
  assert_int_equal(cl_backoff_ms(40, 3000000000u, 4000000000u), 4000000000u);
}

/* ---- instances on a loop: options refused, lifecycle, what failures count -------------------------------- */

static cn_node *loop_node(uint16_t epmd_port) {
  cn_node_opts o = {.name = "d@127.0.0.1", .cookie = "c", .log_level = CN_LOG_ERROR, .epmd_port = epmd_port};
  cn_node *n = NULL;
  assert_int_equal(cn_node_new(&n, NULL, &o), 0);
  return n;
}

static void on_stop_timer(uv_timer_t *t) { uv_stop(t->loop); }

/* Runs the node's loop for ms (the instance's handles do not hold it). */
static void run_for(cn_node *n, unsigned ms) {
  uv_timer_t t;
  uv_timer_init(cn_node_loop(n), &t);
  uv_timer_start(&t, on_stop_timer, ms, 0);
  uv_run(cn_node_loop(n), UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(cn_node_loop(n), UV_RUN_NOWAIT);
}

static void test_bad_options(void **state) {
  (void)state;
  cn_node *n = loop_node(0);
  cn_cluster *c = NULL;
  cn_cluster_opts bad[] = {
      {.strategy = 0},
      {.strategy = CN_CLUSTER_GOSSIP, .secret = ""},
      {.strategy = CN_CLUSTER_GOSSIP, .multicast_addr = "not.an.address"},
      {.strategy = CN_CLUSTER_GOSSIP, .multicast_addr = "233.252.1.32", .if_addr = "::"},
      {.strategy = CN_CLUSTER_GOSSIP, .multicast_if = "eth0"},
      {.strategy = CN_CLUSTER_GOSSIP, .multicast_ttl = 300},
      {.strategy = CN_CLUSTER_HOSTS},
      {.strategy = CN_CLUSTER_HOSTS, .hosts = "a@h,nohost"},
      {.strategy = CN_CLUSTER_DNS},
      {.strategy = CN_CLUSTER_DNS, .query = "q", .basename = "a@b"},
      {.strategy = CN_CLUSTER_DNSSRV, .query = "q", .dns_servers = "no-server"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(cn_cluster_start(n, &bad[i], &c), CN_EINVAL);
    run_for(n, 5); /* what was opened closes */
  }
  assert_string_equal(cn_cluster_strategy_name(CN_CLUSTER_DNSSRV), "dnssrv");
  cn_node_free(n);
}

/* A listed node with no EPMD behind it: failed connects counted, the back-off between them. */
static void test_hosts_backoff(void **state) {
  (void)state;
  cn_node *n = loop_node(free_port());
  cn_cluster *c = NULL;
  cn_cluster_opts o = {
      .strategy = CN_CLUSTER_HOSTS, .hosts = "x@127.0.0.1", .backoff_min_ms = 100, .backoff_max_ms = 400};
  assert_int_equal(cn_cluster_start(n, &o, &c), 0);
  run_for(n, 1600);
  cn_cluster_stats st;
  cn_cluster_get_stats(c, &st);
  /* Tries at 0, then on the 1 s tick: two or three, never one per tick of a loop spinning. */
  assert_true(st.connect_failures >= 2 && st.connect_failures <= 3);
  assert_int_equal(st.connects, 0);
  assert_int_equal(st.known_nodes, 1);
  cn_cluster_stop(c);
  run_for(n, 5);
  cn_node_free(n);
}

/* A resolver that answers nothing (a closed port): failed polls counted; stopped while a query is out, then the
 * node freed with another instance still running (the node stops it). */
static void test_dns_failures_and_stop(void **state) {
  (void)state;
  cn_node *n = loop_node(0);
  char server[32];
  snprintf(server, sizeof server, "127.0.0.1:%u", free_port());
  cn_cluster *c = NULL, *c2 = NULL;
  cn_cluster_opts o = {.strategy = CN_CLUSTER_DNS, .query = "svc.test", .poll_ms = 100, .dns_servers = server};
  assert_int_equal(cn_cluster_start(n, &o, &c), 0);
  o.strategy = CN_CLUSTER_DNSSRV;
  assert_int_equal(cn_cluster_start(n, &o, &c2), 0);
  run_for(n, 1500);
  cn_cluster_stats st;
  cn_cluster_get_stats(c, &st);
  assert_true(st.dns_polls >= 1);
  assert_true(st.dns_failures >= 1);
  cn_cluster_stop(c);
  run_for(n, 5);
  cn_node_free(n); /* c2 stopped and freed by the node */
}

/* Gossip on loopback, broadcast-only to its own port: heartbeats go out, our own come back and are ignored. */
static void test_gossip_loopback(void **state) {
  (void)state;
  cn_node *n = loop_node(0);
  cn_cluster *c = NULL;
  cn_cluster_opts o = {.strategy = CN_CLUSTER_GOSSIP,
                       .gossip_port = free_port(),
                       .if_addr = "127.0.0.1",
                       .multicast_addr = "127.0.0.1",
                       .broadcast_only = true,
                       .heartbeat_max_ms = 50,
                       .secret = "s"};
  assert_int_equal(cn_cluster_start(n, &o, &c), 0);
  run_for(n, 400);
  cn_cluster_stats st;
  cn_cluster_get_stats(c, &st);
  assert_true(st.heartbeats_sent >= 3);
  assert_int_equal(st.heartbeats_ignored, 0);
  assert_int_equal(st.known_nodes, 0);
  cn_node_free(n);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hb_decode_otp),   cmocka_unit_test(test_hb_encode),
      cmocka_unit_test(test_hb_wrong_secret), cmocka_unit_test(test_hb_padding_rules),
      cmocka_unit_test(test_hb_truncated),    cmocka_unit_test(test_hb_malformed),
      cmocka_unit_test(test_dns_a_aaaa),      cmocka_unit_test(test_dns_srv),
      cmocka_unit_test(test_dns_bad),         cmocka_unit_test(test_hosts),
      cmocka_unit_test(test_backoff),         cmocka_unit_test(test_bad_options),
      cmocka_unit_test(test_hosts_backoff),   cmocka_unit_test(test_dns_failures_and_stop),
      cmocka_unit_test(test_gossip_loopback),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
