/* test_frame.c: 4-byte framing, message headers of every kind, fragment reassembly and its limits, and
 * outgoing framing with fragmentation parsed back and reassembled to the same bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dist.h"
#include "testutil.h"

/* xorshift64*: fixed seed, reproducible. */
static uint64_t rng = 0x2545F4914F6CDD1DULL;
static uint64_t rnd(void) {
  rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
  return rng * 2685821657736338717ULL;
}

/* ---- dist_frame_parse ---- */

static void test_frame_parse(void **state) {
  (void)state;
  static const uint8_t in[] = {0, 0, 0, 0,             /* tick */
                               0, 0, 0, 3, 131, 68, 0, /* empty normal header */
                               0, 0, 0, 2, 'a', 'b'};
  const size_t n = sizeof in;
  /* Every prefix: whole frames parse, a partial one asks for more, nothing reads past the end. */
  for (size_t k = 0; k <= n; k++) {
    uint8_t *g = guard_copy(in, k);
    size_t off = 0, frames = 0;
    for (;;) {
      const uint8_t *d = NULL;
      size_t dl = 99;
      ssize_t r = dist_frame_parse(g + off, k - off, 100, &d, &dl);
      assert_true(r >= 0);
      if (r == 0) break;
      if (frames == 0) assert_int_equal(dl, 0);
      if (frames == 1) assert_memory_equal(d, "\x83\x44\x00", 3);
      if (frames == 2) assert_memory_equal(d, "ab", dl);
      assert_ptr_equal(d, g + off + 4);
      off += (size_t)r, frames++;
    }
    size_t want = k < 4 ? 0 : k < 11 ? 1 : k < 17 ? 2 : 3;
    assert_int_equal(frames, want);
    guard_free(g, k);
  }
  const uint8_t *d;
  size_t dl;
  static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff};
  assert_int_equal(dist_frame_parse(huge, 4, 1 << 20, &d, &dl), CN_ELIMIT);
  static const uint8_t over[] = {0, 0, 0, 101};
  assert_int_equal(dist_frame_parse(over, 4, 100, &d, &dl), CN_ELIMIT);
  static const uint8_t at[] = {0, 0, 0, 100};
  assert_int_equal(dist_frame_parse(at, 4, 100, &d, &dl), 0); /* allowed, waiting for the body */
}

/* ---- dist_msg_hdr_parse ---- */

static int hdr(const uint8_t *p, size_t n, dist_msg_hdr *h) {
  uint8_t *g = guard_copy(p, n);
  int rc = dist_msg_hdr_parse(g, n, h);
  guard_free(g, n);
  return rc;
}

static void test_hdr_kinds(void **state) {
  (void)state;
  dist_msg_hdr h;
  static const uint8_t pass[] = {112, 131, 104, 0};
  assert_int_equal(hdr(pass, sizeof pass, &h), 0);
  assert_int_equal(h.kind, DIST_MSG_PASS);
  assert_int_equal(h.body_off, 1);
  assert_true(h.versioned);
  static const uint8_t normal[] = {131, 68, 0, 104, 0};
  assert_int_equal(hdr(normal, sizeof normal, &h), 0);
  assert_int_equal(h.kind, DIST_MSG_NORMAL);
  assert_int_equal(h.body_off, 3);
  assert_false(h.versioned);
  static const uint8_t frag[] = {131, 69, 0, 0, 2, 168, 0, 0, 5, 83, 0, 0, 0, 0, 0, 0, 0, 2, 0, 104};
  assert_int_equal(hdr(frag, sizeof frag, &h), 0);
  assert_int_equal(h.kind, DIST_MSG_FRAG_HDR);
  assert_int_equal(h.seq, 0x2a800000553ULL);
  assert_int_equal(h.frag_id, 2);
  assert_int_equal(h.body_off, 19);
  static const uint8_t cont[] = {131, 70, 0, 0, 2, 168, 0, 0, 5, 83, 0, 0, 0, 0, 0, 0, 0, 1, 7};
  assert_int_equal(hdr(cont, sizeof cont, &h), 0);
  assert_int_equal(h.kind, DIST_MSG_FRAG_CONT);
  assert_int_equal(h.seq, 0x2a800000553ULL);
  assert_int_equal(h.frag_id, 1);
  assert_int_equal(h.body_off, 18);
  /* Headers with nothing after them are fine: the body decoder judges the body. */
  assert_int_equal(hdr(frag, 19, &h), 0);
  assert_int_equal(hdr(cont, 18, &h), 0);
  assert_int_equal(hdr(normal, 3, &h), 0);
  assert_int_equal(hdr(pass, 1, &h), 0);
}

static void test_hdr_malformed(void **state) {
  (void)state;
  dist_msg_hdr h;
  static const uint8_t cache[] = {131, 68, 1, 0x08, 0x00, 0};
  assert_int_equal(hdr(cache, sizeof cache, &h), CN_EUNSUPPORTED);
  static const uint8_t fcache[] = {131, 69, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 3};
  assert_int_equal(hdr(fcache, sizeof fcache, &h), CN_EUNSUPPORTED);
  static const uint8_t fzero[] = {131, 69, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  assert_int_equal(hdr(fzero, sizeof fzero, &h), CN_EDECODE);
  static const uint8_t czero[] = {131, 70, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
  assert_int_equal(hdr(czero, sizeof czero, &h), CN_EDECODE);
  static const uint8_t other[] = {131, 71, 0};
  assert_int_equal(hdr(other, sizeof other, &h), CN_EDECODE);
  static const uint8_t junk[] = {7, 1, 2};
  assert_int_equal(hdr(junk, sizeof junk, &h), CN_EDECODE);
  assert_int_equal(hdr(junk, 0, &h), CN_EDECODE);
  /* Every truncation of each header. */
  static const uint8_t frag[] = {131, 69, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0};
  for (size_t k = 0; k < sizeof frag; k++) assert_int_equal(hdr(frag, k, &h), CN_EDECODE);
  static const uint8_t cont[] = {131, 70, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2};
  for (size_t k = 0; k < sizeof cont; k++) assert_int_equal(hdr(cont, k, &h), CN_EDECODE);
  static const uint8_t normal[] = {131, 68, 0};
  for (size_t k = 0; k < sizeof normal; k++) assert_int_equal(hdr(normal, k, &h), CN_EDECODE);
  /* Random bytes never crash and give a valid answer. */
  uint8_t buf[40];
  for (int it = 0; it < 20000; it++) {
    size_t n = rnd() % sizeof buf;
    for (size_t k = 0; k < n; k++) buf[k] = (uint8_t)rnd();
    if (n > 0 && (it & 1)) buf[0] = 131;
    if (n > 1 && (it & 2)) buf[1] = (uint8_t)(68 + rnd() % 3);
    int rc = hdr(buf, n, &h);
    assert_true(rc == 0 || rc == CN_EDECODE || rc == CN_EUNSUPPORTED);
    if (rc == 0) assert_true(h.body_off <= n);
  }
}

/* ---- reassembly ---- */

static dist_msg_hdr fh(dist_msg_kind kind, uint64_t seq, uint64_t id) {
  return (dist_msg_hdr){.kind = kind, .seq = seq, .frag_id = id};
}

static int add(dist_frags *f, dist_msg_kind kind, uint64_t seq, uint64_t id, const char *s, cn_buf *done) {
  dist_msg_hdr h = fh(kind, seq, id);
  size_t n = strlen(s);
  uint8_t *g = guard_copy(s, n);
  int rc = dist_frags_add(f, &h, g, n, done);
  guard_free(g, n);
  return rc;
}

static void expect_done(cn_buf *b, const char *s) {
  assert_int_equal(b->len, strlen(s));
  assert_memory_equal(b->data, s, b->len);
  cn_buf_free(b);
}

static void test_frags_in_order(void **state) {
  (void)state;
  dist_frags *f;
  cn_buf done = {0};
  assert_int_equal(dist_frags_new(&f, 1000, 4), 0);
  assert_int_equal(add(f, DIST_MSG_FRAG_HDR, 7, 3, "abc", &done), 0);
  assert_int_equal(add(f, DIST_MSG_FRAG_CONT, 7, 2, "def", &done), 0);
  assert_int_equal(dist_frags_open(f), 1);
  assert_int_equal(add(f, DIST_MSG_FRAG_CONT, 7, 1, "gh", &done), 1);
  expect_done(&done, "abcdefgh");
  assert_int_equal(dist_frags_open(f), 0);
  /* One fragment completes at once; the sequence id may be reused afterwards. */
  assert_int_equal(add(f, DIST_MSG_FRAG_HDR, 7, 1, "solo", &done), 1);
  expect_done(&done, "solo");
  assert_int_equal(add(f, DIST_MSG_FRAG_HDR, 7, 2, "", &done), 0); /* empty fragments are legal */
  assert_int_equal(add(f, DIST_MSG_FRAG_CONT, 7, 1, "x", &done), 1);
  expect_done(&done, "x");
  dist_frags_free(f);
}

static void test_frags_interleaved(void **state) {
  (void)state;
  dist_frags *f;
  cn_buf done = {0};
  assert_int_equal(dist_frags_new(&f, 1000, 8), 0);
  assert_int_equal(add(f, DIST_MSG_FRAG_HDR, 1, 3, "a1", &done), 0);
  assert_int_equal(add(f, DIST_MSG_FRAG_HDR, 2, 2, "b1", &done), 0);
  assert_int_equal(add(f, DIST_MSG_FRAG_HDR, 3, 1, "c1", &done), 1);
  expect_done(&done, "c1");
  assert_int_equal(add(f, DIST_MSG_FRAG_CONT, 1, 2, "a2", &done), 0);
  assert_int_equal(add(f, DIST_MSG_FRAG_CONT, 2, 1, "b2", &done), 1);
  expect_done(&done, "b1b2");
  assert_int_equal(add(f, DIST_MSG_FRAG_HDR, 4, 2, "d1", &done), 0);
  assert_int_equal(add(f, DIST_MSG_FRAG_CONT, 1, 1, "a3", &done), 1);
  expect_done(&done, "a1a2a3");
  assert_int_equal(add(f, DIST_MSG_FRAG_CONT, 4, 1, "d2", &done), 1);
  expect_done(&done, "d1d2");
  assert_int_equal(dist_frags_open(f), 0);
  dist_frags_free(f);
}

static void test_frags_errors(void **state) {
  (void)state;
  dist_frags *f;
  cn_buf done = {0};
  assert_int_equal(dist_frags_new(&f, 20, 2), 0);
  /* Continuation for a sequence never started. */
  assert_int_equal(add(f, DIST_MSG_FRAG_CONT, 9, 1, "x", &done), CN_EPROTO);
  /* Skipping a fragment id drops the sequence. */
  assert_int_equal(add(f, DIST_MSG_FRAG_HDR, 1, 3, "a", &done), 0);
  assert_int_equal(add(f, DIST_MSG_FRAG_CONT, 1, 1, "c", &done), CN_EPROTO);
  assert_int_equal(dist_frags_open(f), 0);
  assert_int_equal(add(f, DIST_MSG_FRAG_CONT, 1, 2, "b", &done), CN_EPROTO);
  /* Repeating an id is as wrong as skipping one. */
  assert_int_equal(add(f, DIST_MSG_FRAG_HDR, 1, 3, "a", &done), 0);
  assert_int_equal(add(f, DIST_MSG_FRAG_CONT, 1, 3, "a", &done), CN_EPROTO);
  /* A second start for an open sequence. */
  assert_int_equal(add(f, DIST_MSG_FRAG_HDR, 1, 3, "a", &done), 0);
  assert_int_equal(add(f, DIST_MSG_FRAG_HDR, 1, 2, "a", &done), CN_EPROTO);
  assert_int_equal(add(f, DIST_MSG_FRAG_HDR, 1, 1, "a", &done), CN_EPROTO);
  /* Too many open sequences. */
  assert_int_equal(add(f, DIST_MSG_FRAG_HDR, 2, 3, "b", &done), 0);
  assert_int_equal(add(f, DIST_MSG_FRAG_HDR, 3, 3, "c", &done), CN_ELIMIT);
  assert_int_equal(dist_frags_open(f), 2);
  /* Over the byte budget (20 bytes, 2 held): the offending sequence goes, the other stays. */
  assert_int_equal(add(f, DIST_MSG_FRAG_CONT, 2, 2, "0123456789abcdefghi", &done), CN_ELIMIT);
  assert_int_equal(dist_frags_open(f), 1);
  assert_int_equal(add(f, DIST_MSG_FRAG_HDR, 5, 1, "0123456789abcdefghi", &done), 1); /* 19 + 1 fits */
  cn_buf_free(&done);
  assert_int_equal(add(f, DIST_MSG_FRAG_HDR, 5, 1, "0123456789abcdefghij", &done), CN_ELIMIT);
  /* Kinds that are not fragments, and id 0. */
  assert_int_equal(add(f, DIST_MSG_NORMAL, 1, 1, "a", &done), CN_EINVAL);
  assert_int_equal(add(f, DIST_MSG_FRAG_HDR, 6, 0, "a", &done), CN_EINVAL);
  dist_frags_free(f); /* frees the sequence still open */
  assert_int_equal(dist_frags_new(&f, 20, 0), CN_EINVAL);
  dist_frags_free(NULL);
}

static void test_frags_enomem(void **state) {
  (void)state;
  dist_frags *f;
  cn_buf done = {0};
  ta_fail_after = 0;
  assert_int_equal(dist_frags_new(&f, 100, 2), CN_ENOMEM);
  assert_null(f);
  ta_fail_after = -1;
  assert_int_equal(dist_frags_new(&f, 100, 2), 0);
  ta_fail_after = 0;
  assert_int_equal(add(f, DIST_MSG_FRAG_HDR, 1, 2, "a", &done), CN_ENOMEM);
  assert_int_equal(add(f, DIST_MSG_FRAG_HDR, 1, 1, "a", &done), CN_ENOMEM);
  ta_fail_after = 1; /* the slot array succeeds, the body does not */
  assert_int_equal(add(f, DIST_MSG_FRAG_HDR, 1, 2, "a", &done), CN_ENOMEM);
  assert_int_equal(dist_frags_open(f), 0);
  ta_fail_after = -1;
  dist_frags_free(f);
}

/* ---- outgoing ---- */

/* Parses every frame of out, reassembles, and returns the message body (control+payload). */
static void parse_back(const cn_buf *out, cn_buf *body, size_t frag_size, size_t *frames) {
  dist_frags *f;
  assert_int_equal(dist_frags_new(&f, 1 << 20, 4), 0);
  uint8_t *g = guard_copy(out->data, out->len);
  size_t off = 0, got = 0;
  *frames = 0;
  while (off < out->len) {
    const uint8_t *d;
    size_t dl;
    ssize_t r = dist_frame_parse(g + off, out->len - off, 1 << 20, &d, &dl);
    assert_true(r > 0);
    off += (size_t)r, (*frames)++;
    dist_msg_hdr h;
    assert_int_equal(dist_msg_hdr_parse(d, dl, &h), 0);
    if (h.kind == DIST_MSG_NORMAL) {
      assert_int_equal(got, 0);
      assert_int_equal(cn_buf_append(body, d + h.body_off, dl - h.body_off), 0);
      got = 1;
      continue;
    }
    assert_true(frag_size > 0);
    assert_true(dl - h.body_off <= frag_size);
    assert_int_equal(h.seq, 0x0102030405060708ULL);
    cn_buf done = {0};
    int rc = dist_frags_add(f, &h, d + h.body_off, dl - h.body_off, &done);
    assert_true(rc == 0 || rc == 1);
    if (rc == 1) {
      assert_int_equal(got, 0);
      assert_int_equal(h.frag_id, 1);
      *body = done;
      got = 1;
    }
  }
  assert_int_equal(got, 1);
  assert_int_equal(off, out->len);
  guard_free(g, out->len);
  dist_frags_free(f);
}

static void test_outgoing(void **state) {
  (void)state;
  uint8_t msg[700];
  for (size_t k = 0; k < sizeof msg; k++) msg[k] = (uint8_t)rnd();
  for (size_t blen = 0; blen <= sizeof msg; blen += (blen < 80 ? 1 : 37)) {
    for (size_t fs = 0; fs <= 90; fs += (fs < 12 ? 1 : 13)) {
      cn_buf out = {0};
      cn_buf_append(&out, "prefix", 6); /* frames already queued stay untouched */
      size_t start = dist_msg_begin(&out);
      assert_int_equal(start, 6);
      cn_buf_append(&out, msg, blen);
      assert_int_equal(dist_msg_end(&out, start, 0x0102030405060708ULL, fs), 0);
      assert_memory_equal(out.data, "prefix", 6);
      assert_int_equal(out.data[out.len], 0);
      cn_buf tail = {0}, body = {0};
      cn_buf_append(&tail, out.data + 6, out.len - 6);
      size_t frames;
      parse_back(&tail, &body, fs, &frames);
      assert_int_equal(body.len, blen);
      if (blen) assert_memory_equal(body.data, msg, blen);
      size_t want = fs == 0 || blen <= fs ? 1 : (blen + fs - 1) / fs;
      assert_int_equal(frames, want);
      if (want == 1) assert_memory_equal(tail.data + 4, "\x83\x44\x00", 3);
      cn_buf_free(&body);
      cn_buf_free(&tail);
      cn_buf_free(&out);
    }
  }
}

/* The example layout of the spec: frame with 131,69 first, then 131,70, ids counting down. */
static void test_outgoing_layout(void **state) {
  (void)state;
  cn_buf out = {0};
  size_t start = dist_msg_begin(&out);
  cn_buf_append(&out, "ABCDEFGHIJ", 10);
  assert_int_equal(dist_msg_end(&out, start, 0x2a800000553ULL, 4), 0);
  static const uint8_t want[] = {0,  0, 0,   23,  131, 69,  0,   0, 2, 168, 0,   0,   5,   83, 0, 0,   0,   0,   0,  0,
                                 0,  3, 0,   'A', 'B', 'C', 'D', 0, 0, 0,   22,  131, 70,  0,  0, 2,   168, 0,   0,  5,
                                 83, 0, 0,   0,   0,   0,   0,   0, 2, 'E', 'F', 'G', 'H', 0,  0, 0,   20,  131, 70, 0,
                                 0,  2, 168, 0,   0,   5,   83,  0, 0, 0,   0,   0,   0,   0,  1, 'I', 'J'};
  assert_int_equal(out.len, sizeof want);
  assert_memory_equal(out.data, want, sizeof want);
  cn_buf_free(&out);
  /* Not fragmented: the length covers 131,68,0 and the body. */
  start = dist_msg_begin(&out);
  cn_buf_append(&out, "AB", 2);
  assert_int_equal(dist_msg_end(&out, start, 1, 0), 0);
  assert_memory_equal(out.data, "\0\0\0\5\x83\x44\0AB", 9);
  cn_buf_free(&out);
}

static void test_outgoing_errors(void **state) {
  (void)state;
  cn_buf out = {0};
  ta_fail_after = 0;
  assert_int_equal(dist_msg_begin(&out), SIZE_MAX);
  ta_fail_after = -1;
  assert_int_equal(dist_msg_end(&out, 0, 1, 0), CN_EINVAL); /* nothing begun */
  size_t start = dist_msg_begin(&out);
  uint8_t big[300] = {0};
  cn_buf_append(&out, big, sizeof big);
  ta_fail_after = 0; /* the growth fragmentation needs fails: the message is dropped */
  assert_int_equal(dist_msg_end(&out, start, 1, 10), CN_ENOMEM);
  ta_fail_after = -1;
  assert_int_equal(out.len, start);
  cn_buf_free(&out);
}

int main(void) {
  ta_install();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_frame_parse, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_hdr_kinds, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_hdr_malformed, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_frags_in_order, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_frags_interleaved, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_frags_errors, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_frags_enomem, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_outgoing, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_outgoing_layout, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_outgoing_errors, ta_setup, ta_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
