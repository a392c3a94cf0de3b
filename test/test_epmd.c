/* test_epmd.c: unit tests of the pure EPMD codec (epmd/codec.c): byte-exact encodings against the spec layout,
 * decoding fed whole, byte by byte and split at every offset behind a guard page, and bad/random input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "epmd.h"
#include "testutil.h"

/* A decoder under test, adapted to one shape: out is the decoder's result struct. */
typedef ssize_t (*dec_fn)(const uint8_t *buf, size_t len, void *out);

typedef struct {
  uint8_t result;
  uint32_t creation;
} alive_out;
typedef struct {
  uint8_t result;
  epmd_node_info info;
} port_out;

static ssize_t dec_alive(const uint8_t *b, size_t n, void *o) {
  alive_out *a = o;
  return epmd_dec_alive2_resp(b, n, &a->result, &a->creation);
}
static ssize_t dec_port(const uint8_t *b, size_t n, void *o) {
  port_out *p = o;
  return epmd_dec_port2_resp(b, n, &p->result, &p->info);
}
static ssize_t dec_req(const uint8_t *b, size_t n, void *o) { return epmd_dec_request(b, n, 4096, o); }
static ssize_t dec_names(const uint8_t *b, size_t n, void *o) { return epmd_dec_names_hdr(b, n, o); }

static ssize_t dec_guarded(dec_fn f, const uint8_t *b, size_t n, void *out) {
  uint8_t *g = guard_copy(b, n);
  assert_non_null(g);
  ssize_t r = f(g, n, out);
  guard_free(g, n);
  return r;
}

/* Feeds msg whole, byte by byte (every prefix is "need more") and split at every offset (the first part says
 * need more, then the whole is decoded again as a stream reader would), plus with trailing bytes (the decoder
 * must consume exactly the message). Each decode writes into a fresh out, compared with the whole decode. */
static void feed_all_ways(dec_fn f, const uint8_t *msg, size_t n, void *out, size_t out_size) {
  uint8_t *ref = calloc(1, out_size), *tmp = calloc(1, out_size);
  assert_non_null(ref);
  assert_non_null(tmp);
  assert_int_equal(dec_guarded(f, msg, n, ref), (ssize_t)n);
  for (size_t i = 0; i < n; i++) assert_int_equal(dec_guarded(f, msg, i, tmp), 0);
  for (size_t k = 1; k < n; k++) {
    memset(tmp, 0, out_size);
    assert_int_equal(dec_guarded(f, msg, k, tmp), 0);
    assert_int_equal(dec_guarded(f, msg, n, tmp), (ssize_t)n);
    assert_memory_equal(ref, tmp, out_size);
  }
  uint8_t *longer = malloc(n + 7);
  assert_non_null(longer);
  memcpy(longer, msg, n);
  memset(longer + n, 0x77, 7);
  memset(tmp, 0, out_size);
  assert_int_equal(dec_guarded(f, longer, n + 7, tmp), (ssize_t)n);
  assert_memory_equal(ref, tmp, out_size);
  free(longer);
  memcpy(out, ref, out_size);
  free(ref);
  free(tmp);
}

static epmd_node_info sample_info(const char *name, const char *extra) {
  epmd_node_info i;
  memset(&i, 0, sizeof i);
  i.port = 0x1234;
  i.node_type = EPMD_NODE_NORMAL;
  i.protocol = 0;
  i.highest = 6;
  i.lowest = 5;
  strcpy(i.name, name);
  i.extra_len = (uint16_t)strlen(extra);
  memcpy(i.extra, extra, i.extra_len);
  return i;
}

static void assert_buf(const cn_buf *b, const uint8_t *exp, size_t n) {
  assert_int_equal(b->len, n);
  assert_memory_equal(b->data, exp, n);
}

static void test_alive2_req(void **state) {
  (void)state;
  static const uint8_t exp[] = {0x00, 0x11, 120, 0x12, 0x34, 77, 0, 0, 6, 0, 5, 0, 2, 't', '1', 0, 2, 'a', 'b'};
  epmd_node_info in = sample_info("t1", "ab");
  cn_buf b = {0};
  assert_int_equal(epmd_enc_alive2_req(&b, &in), 0);
  assert_buf(&b, exp, sizeof exp);
  epmd_request rq;
  feed_all_ways(dec_req, b.data, b.len, &rq, sizeof rq);
  assert_int_equal(rq.type, EPMD_REQ_ALIVE2);
  assert_memory_equal(&rq.node, &in, sizeof in);
  cn_buf_free(&b);

  /* Without extra, and with the longest name and extra we accept. */
  static const uint8_t exp0[] = {0x00, 0x0f, 120, 0x12, 0x34, 77, 0, 0, 6, 0, 5, 0, 2, 't', '1', 0, 0};
  in = sample_info("t1", "");
  assert_int_equal(epmd_enc_alive2_req(&b, &in), 0);
  assert_buf(&b, exp0, sizeof exp0);
  cn_buf_free(&b);
  memset(in.name, 'n', EPMD_MAX_NAME);
  in.name[EPMD_MAX_NAME] = 0;
  in.extra_len = 256;
  memset(in.extra, 0xee, 256);
  assert_int_equal(epmd_enc_alive2_req(&b, &in), 0);
  assert_int_equal(b.len, 2 + 13 + EPMD_MAX_NAME + 256);
  feed_all_ways(dec_req, b.data, b.len, &rq, sizeof rq);
  assert_memory_equal(&rq.node, &in, sizeof in);
  cn_buf_free(&b);
}

static void test_alive2_resp(void **state) {
  (void)state;
  static const uint8_t x[] = {118, 0, 0x01, 0x02, 0x03, 0x04};
  static const uint8_t old[] = {121, 1, 0x00, 99};
  cn_buf b = {0};
  alive_out o;
  assert_int_equal(epmd_enc_alive2_x_resp(&b, 0, 0x01020304), 0);
  assert_buf(&b, x, sizeof x);
  feed_all_ways(dec_alive, b.data, b.len, &o, sizeof o);
  assert_int_equal(o.result, 0);
  assert_int_equal(o.creation, 0x01020304);
  cn_buf_free(&b);
  assert_int_equal(epmd_enc_alive2_resp(&b, 1, 99), 0);
  assert_buf(&b, old, sizeof old);
  feed_all_ways(dec_alive, b.data, b.len, &o, sizeof o);
  assert_int_equal(o.result, 1);
  assert_int_equal(o.creation, 99);
  cn_buf_free(&b);
  static const uint8_t bad[] = {119, 0, 0, 0, 0, 0};
  assert_int_equal(dec_guarded(dec_alive, bad, sizeof bad, &o), CN_EPROTO);
  assert_int_equal(dec_guarded(dec_alive, bad, 1, &o), CN_EPROTO); /* a wrong tag is known at once */
}

static void test_port_please2(void **state) {
  (void)state;
  static const uint8_t exp[] = {0x00, 0x03, 122, 't', '1'};
  cn_buf b = {0};
  assert_int_equal(epmd_enc_port_please2_req(&b, "t1"), 0);
  assert_buf(&b, exp, sizeof exp);
  epmd_request rq;
  feed_all_ways(dec_req, b.data, b.len, &rq, sizeof rq);
  assert_int_equal(rq.type, EPMD_REQ_PORT_PLEASE2);
  assert_string_equal(rq.name, "t1");
  cn_buf_free(&b);
}

static void test_port2_resp(void **state) {
  (void)state;
  static const uint8_t found[] = {119, 0, 0x12, 0x34, 77, 0, 0, 6, 0, 5, 0, 2, 't', '1', 0, 1, 'x'};
  static const uint8_t notfound[] = {119, 1};
  epmd_node_info in = sample_info("t1", "x");
  cn_buf b = {0};
  port_out o;
  assert_int_equal(epmd_enc_port2_resp(&b, &in), 0);
  assert_buf(&b, found, sizeof found);
  feed_all_ways(dec_port, b.data, b.len, &o, sizeof o);
  assert_int_equal(o.result, 0);
  assert_memory_equal(&o.info, &in, sizeof in);
  cn_buf_free(&b);
  assert_int_equal(epmd_enc_port2_resp(&b, NULL), 0);
  assert_buf(&b, notfound, sizeof notfound);
  memset(&o, 0, sizeof o);
  feed_all_ways(dec_port, b.data, b.len, &o, sizeof o);
  assert_int_equal(o.result, 1);
  cn_buf_free(&b);
}

static void test_simple_requests(void **state) {
  (void)state;
  static const struct {
    epmd_req_type t;
    uint8_t tag;
  } cases[] = {{EPMD_REQ_NAMES, 110}, {EPMD_REQ_DUMP, 100}, {EPMD_REQ_KILL, 107}};
  for (size_t i = 0; i < 3; i++) {
    cn_buf b = {0};
    uint8_t exp[] = {0, 1, cases[i].tag};
    assert_int_equal(cases[i].t == EPMD_REQ_NAMES ? epmd_enc_names_req(&b) : epmd_enc_simple_req(&b, cases[i].t), 0);
    assert_buf(&b, exp, 3);
    epmd_request rq;
    feed_all_ways(dec_req, b.data, b.len, &rq, sizeof rq);
    assert_int_equal(rq.type, cases[i].t);
    cn_buf_free(&b);
  }
  cn_buf b = {0};
  assert_int_equal(epmd_enc_simple_req(&b, EPMD_REQ_ALIVE2), CN_EINVAL);
  assert_int_equal(b.len, 0);

  static const uint8_t stop[] = {0x00, 0x04, 115, 'a', 'b', 'c'};
  assert_int_equal(epmd_enc_stop_req(&b, "abc"), 0);
  assert_buf(&b, stop, sizeof stop);
  epmd_request rq;
  feed_all_ways(dec_req, b.data, b.len, &rq, sizeof rq);
  assert_int_equal(rq.type, EPMD_REQ_STOP);
  assert_string_equal(rq.name, "abc");
  cn_buf_free(&b);
}

static void test_names_resp(void **state) {
  (void)state;
  cn_buf b = {0};
  assert_int_equal(epmd_enc_names_hdr(&b, 4369), 0);
  assert_int_equal(epmd_enc_names_entry(&b, "t1", 4660), 0);
  static const char exp[] = "\x00\x00\x11\x11name t1 at port 4660\n";
  assert_buf(&b, (const uint8_t *)exp, sizeof exp - 1);
  uint32_t port = 0;
  feed_all_ways(dec_names, b.data, 4, &port, sizeof port); /* the text runs to EOF */
  assert_int_equal(port, 4369);
  assert_int_equal(epmd_enc_names_entry(&b, "", 1), CN_EINVAL);
  cn_buf_free(&b);
}

static void test_encode_errors(void **state) {
  (void)state;
  cn_buf b = {0};
  epmd_node_info in = sample_info("", "");
  assert_int_equal(epmd_enc_alive2_req(&b, &in), CN_EINVAL);
  assert_int_equal(epmd_enc_port2_resp(&b, &in), CN_EINVAL);
  in = sample_info("ok", "");
  memset(in.name, 'x', sizeof in.name); /* no NUL within EPMD_MAX_NAME + 1 bytes: too long */
  assert_int_equal(epmd_enc_alive2_req(&b, &in), CN_EINVAL);
  in = sample_info("ok", "");
  in.extra_len = 257;
  assert_int_equal(epmd_enc_alive2_req(&b, &in), CN_EINVAL);
  assert_int_equal(epmd_enc_port2_resp(&b, &in), CN_EINVAL);
  char longname[EPMD_MAX_NAME + 2];
  memset(longname, 'y', EPMD_MAX_NAME + 1);
  longname[EPMD_MAX_NAME + 1] = 0;
  assert_int_equal(epmd_enc_port_please2_req(&b, longname), CN_EINVAL);
  assert_int_equal(epmd_enc_stop_req(&b, ""), CN_EINVAL);
  assert_int_equal(epmd_enc_port_please2_req(&b, NULL), CN_EINVAL);
  assert_int_equal(b.len, 0);
  assert_null(b.data);
}

static int fail_alloc;
static void *t_malloc(size_t n) { return fail_alloc ? NULL : malloc(n); }
static void *t_realloc(void *p, size_t n) { return fail_alloc ? NULL : realloc(p, n); }
static void *t_calloc(size_t c, size_t n) { return fail_alloc ? NULL : calloc(c, n); }

/* On CN_ENOMEM an encoder leaves the buffer as it was: no half-written message. */
static void test_encode_nomem(void **state) {
  (void)state;
  assert_int_equal(cn_replace_allocator(t_malloc, t_realloc, t_calloc, free), 0);
  cn_buf b = {0};
  assert_int_equal(cn_buf_append(&b, "x", 1), 0);
  b.cap = b.len + 1; /* pretend the buffer is full so the next encode must grow it */
  epmd_node_info in = sample_info("t1", "");
  fail_alloc = 1;
  assert_int_equal(epmd_enc_alive2_req(&b, &in), CN_ENOMEM);
  assert_int_equal(epmd_enc_port_please2_req(&b, "t1"), CN_ENOMEM);
  assert_int_equal(epmd_enc_port2_resp(&b, &in), CN_ENOMEM);
  assert_int_equal(epmd_enc_alive2_x_resp(&b, 0, 1), CN_ENOMEM);
  assert_int_equal(epmd_enc_names_req(&b), CN_ENOMEM);
  fail_alloc = 0;
  assert_int_equal(b.len, 1);
  assert_int_equal(b.data[0], 'x');
  cn_buf_free(&b);
}

static void put16(uint8_t *p, unsigned v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void test_bad_requests(void **state) {
  (void)state;
  epmd_request rq;
  uint8_t m[EPMD_MAX_NAME + 600];
  /* Length over the limit is refused from the two length bytes alone. */
  put16(m, 1000);
  assert_int_equal(dec_guarded(dec_req, m, 2, &rq), 0); /* within 4096: waits for the body */
  assert_int_equal(epmd_dec_request(m, 2, 999, &rq), CN_ELIMIT);
  uint8_t *g = guard_copy(m, 2);
  assert_int_equal(epmd_dec_request(g, 2, 100, &rq), CN_ELIMIT);
  guard_free(g, 2);
  put16(m, 0xffff);
  assert_int_equal(dec_guarded(dec_req, m, 2, &rq), CN_ELIMIT);
  /* Empty body, unknown tag, NAMES with a body. */
  put16(m, 0);
  assert_int_equal(dec_guarded(dec_req, m, 2, &rq), CN_EDECODE);
  put16(m, 1);
  m[2] = 'a';
  assert_int_equal(dec_guarded(dec_req, m, 3, &rq), CN_EUNSUPPORTED);
  put16(m, 2);
  m[2] = 110;
  m[3] = 0;
  assert_int_equal(dec_guarded(dec_req, m, 4, &rq), CN_EDECODE);
  /* PORT_PLEASE2 / STOP: empty name, NUL inside, one byte over the longest name. */
  put16(m, 1);
  m[2] = 122;
  assert_int_equal(dec_guarded(dec_req, m, 3, &rq), CN_EDECODE);
  put16(m, 3);
  m[3] = 'a';
  m[4] = 0;
  assert_int_equal(dec_guarded(dec_req, m, 5, &rq), CN_EDECODE);
  put16(m, EPMD_MAX_NAME + 2);
  m[2] = 115;
  memset(m + 3, 'a', EPMD_MAX_NAME + 1);
  assert_int_equal(dec_guarded(dec_req, m, EPMD_MAX_NAME + 4, &rq), CN_ELIMIT);
  put16(m, EPMD_MAX_NAME + 1);
  assert_int_equal(dec_guarded(dec_req, m, EPMD_MAX_NAME + 3, &rq), EPMD_MAX_NAME + 3);
  assert_int_equal(strlen(rq.name), EPMD_MAX_NAME);

  /* ALIVE2: sizes that do not add up to the length, name too long, extra too long, NUL in the name. */
  epmd_node_info in = sample_info("t1", "ab");
  cn_buf b = {0};
  assert_int_equal(epmd_enc_alive2_req(&b, &in), 0);
  memcpy(m, b.data, b.len);
  size_t n = b.len;
  cn_buf_free(&b);
  put16(m, (unsigned)(n - 2 + 1)); /* one trailing byte inside the body */
  m[n] = 0;
  assert_int_equal(dec_guarded(dec_req, m, n + 1, &rq), CN_EDECODE);
  put16(m, (unsigned)(n - 2 - 1)); /* body one byte short of the extra it announces */
  assert_int_equal(dec_guarded(dec_req, m, n - 1, &rq), CN_EDECODE);
  put16(m, 5);
  assert_int_equal(dec_guarded(dec_req, m, 7, &rq), CN_EDECODE);
  put16(m, (unsigned)(n - 2));
  m[13] = 0;
  assert_int_equal(dec_guarded(dec_req, m, n, &rq), CN_EDECODE);
  m[13] = 't';
  put16(m + 11, 0);
  assert_int_equal(dec_guarded(dec_req, m, n, &rq), CN_EDECODE);
  put16(m + 11, EPMD_MAX_NAME + 1);
  assert_int_equal(dec_guarded(dec_req, m, n, &rq), CN_ELIMIT);
  put16(m + 11, 2);
  put16(m + 15, 257);
  assert_int_equal(dec_guarded(dec_req, m, n, &rq), CN_ELIMIT);
}

static void test_bad_port2_resp(void **state) {
  (void)state;
  port_out o;
  uint8_t m[32] = {119, 0, 0x12, 0x34, 77, 0, 0, 6, 0, 5, 0, 2, 't', '1', 0, 0};
  /* Bad fields are reported as soon as they are visible, without waiting for the rest. */
  put16(m + 10, EPMD_MAX_NAME + 1);
  assert_int_equal(dec_guarded(dec_port, m, 12, &o), CN_ELIMIT);
  put16(m + 10, 0);
  assert_int_equal(dec_guarded(dec_port, m, 12, &o), CN_EDECODE);
  put16(m + 10, 2);
  m[12] = 0;
  assert_int_equal(dec_guarded(dec_port, m, 14, &o), CN_EDECODE);
  m[12] = 't';
  put16(m + 14, 257);
  assert_int_equal(dec_guarded(dec_port, m, 16, &o), CN_ELIMIT);
  put16(m + 14, 256);
  assert_int_equal(dec_guarded(dec_port, m, 16, &o), 0); /* legal, and the 256 bytes are still missing */
  m[0] = 118;
  assert_int_equal(dec_guarded(dec_port, m, 1, &o), CN_EPROTO);
}

/* Any return must be "need more", a count within len, or one of the documented errors. */
static void check_ret(ssize_t r, size_t len) {
  if (r >= 0) {
    assert_true((size_t)r <= len);
    return;
  }
  assert_true(r == CN_EPROTO || r == CN_EDECODE || r == CN_ELIMIT || r == CN_EUNSUPPORTED);
}

static void fuzz_one(const uint8_t *m, size_t n) {
  uint8_t *g = guard_copy(m, n);
  assert_non_null(g);
  alive_out a;
  port_out p;
  epmd_request rq;
  uint32_t port;
  check_ret(epmd_dec_alive2_resp(g, n, &a.result, &a.creation), n);
  check_ret(epmd_dec_port2_resp(g, n, &p.result, &p.info), n);
  ssize_t r = epmd_dec_request(g, n, 600, &rq);
  check_ret(r, n);
  if (r > 0) {
    /* A request the decoder accepts re-encodes to the same bytes (for the kinds we encode). */
    cn_buf b = {0};
    int rc = 1;
    if (rq.type == EPMD_REQ_ALIVE2) rc = epmd_enc_alive2_req(&b, &rq.node);
    if (rq.type == EPMD_REQ_PORT_PLEASE2) rc = epmd_enc_port_please2_req(&b, rq.name);
    if (rq.type == EPMD_REQ_STOP) rc = epmd_enc_stop_req(&b, rq.name);
    if (rq.type == EPMD_REQ_NAMES || rq.type == EPMD_REQ_DUMP || rq.type == EPMD_REQ_KILL)
      rc = epmd_enc_simple_req(&b, rq.type);
    assert_int_equal(rc, 0);
    assert_int_equal(b.len, (size_t)r);
    assert_memory_equal(b.data, m, b.len);
    cn_buf_free(&b);
  }
  check_ret(epmd_dec_names_hdr(g, n, &port), n);
  guard_free(g, n);
}

/* Seeded random bytes and random mutations of valid messages (so the tags and lengths are often plausible). */
static void test_garbage(void **state) {
  (void)state;
  srand(12345);
  uint8_t m[600];
  for (int it = 0; it < 5000; it++) {
    size_t n = (size_t)rand() % 64;
    for (size_t i = 0; i < n; i++) m[i] = (uint8_t)rand();
    fuzz_one(m, n);
  }
  cn_buf seeds[5] = {{0}};
  epmd_node_info in = sample_info("t1", "ab");
  epmd_enc_alive2_req(&seeds[0], &in);
  epmd_enc_port_please2_req(&seeds[1], "node");
  epmd_enc_port2_resp(&seeds[2], &in);
  epmd_enc_alive2_x_resp(&seeds[3], 0, 7);
  epmd_enc_stop_req(&seeds[4], "x");
  for (int it = 0; it < 20000; it++) {
    cn_buf *s = &seeds[it % 5];
    memcpy(m, s->data, s->len);
    size_t n = s->len;
    int flips = 1 + rand() % 3;
    for (int f = 0; f < flips; f++) m[(size_t)rand() % n] = (uint8_t)rand();
    if (rand() % 4 == 0) n = (size_t)rand() % (n + 1);
    fuzz_one(m, n);
  }
  for (int i = 0; i < 5; i++) cn_buf_free(&seeds[i]);
}

static void test_default_port(void **state) {
  (void)state;
  unsetenv("ERL_EPMD_PORT");
  assert_int_equal(epmd_default_port(), 4369);
  setenv("ERL_EPMD_PORT", "4400", 1);
  assert_int_equal(epmd_default_port(), 4400);
  static const char *bad[] = {"", "0", "65536", "-1", "12x", "abc"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    setenv("ERL_EPMD_PORT", bad[i], 1);
    assert_int_equal(epmd_default_port(), 4369);
  }
  unsetenv("ERL_EPMD_PORT");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_alive2_req),      cmocka_unit_test(test_alive2_resp),
      cmocka_unit_test(test_port_please2),    cmocka_unit_test(test_port2_resp),
      cmocka_unit_test(test_simple_requests), cmocka_unit_test(test_names_resp),
      cmocka_unit_test(test_encode_errors),   cmocka_unit_test(test_encode_nomem),
      cmocka_unit_test(test_bad_requests),    cmocka_unit_test(test_bad_port2_resp),
      cmocka_unit_test(test_garbage),         cmocka_unit_test(test_default_port),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
