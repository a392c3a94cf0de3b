/* test_handshake.c: the handshake state machine: initiator against acceptor in memory, every status, the
 * version 5 path, refusals, malformed and random input fed whole, byte by byte and split at every offset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dist.h"
#include "testutil.h"

/* ---- helpers ---- */

#define COOKIE "secretcookie"
#define REQ DIST_FLAGS_MANDATORY_25

static dist_hs_cfg icfg(void) {
  return (dist_hs_cfg){.role = DIST_HS_INITIATOR,
                       .name = "cnode@127.0.0.1",
                       .cookie = COOKIE,
                       .flags = DIST_FLAGS_DEFAULT,
                       .creation = 0x11223344,
                       .challenge = 0xdeadbeef,
                       .peer_version = 6,
                       .required_flags = REQ,
                       .peer_name = "erl@127.0.0.1"};
}
static dist_hs_cfg acfg(void) {
  return (dist_hs_cfg){.role = DIST_HS_ACCEPTOR,
                       .name = "erl@127.0.0.1",
                       .cookie = COOKIE,
                       .flags = DIST_FLAGS_DEFAULT & ~DFLAG_ALIAS,
                       .creation = 0x55667788,
                       .challenge = 12345,
                       .required_flags = REQ};
}

/* Feeds n bytes (ending at a guard page), answering NAME with status and ALIVE with keep. Returns the last
 * result (DIST_HS_MORE, DIST_HS_DONE or an error); *used gets the bytes consumed. */
static int drive(dist_hs *hs, const uint8_t *p, size_t n, const char *status, bool keep, size_t *used) {
  uint8_t *g = guard_copy(p, n);
  assert_non_null(g);
  size_t off = 0;
  int rc;
  for (;;) {
    size_t c = 999999;
    rc = dist_hs_feed(hs, g + off, n - off, &c);
    assert_true(c <= n - off);
    off += c;
    if (rc == DIST_HS_NAME) {
      assert_int_equal(dist_hs_accept_status(hs, status), 0);
    } else if (rc == DIST_HS_ALIVE) {
      assert_int_equal(dist_hs_alive_reply(hs, keep), 0);
    } else {
      break;
    }
  }
  if (rc == DIST_HS_MORE) assert_int_equal(off, n);
  guard_free(g, n);
  if (used) *used = off;
  return rc;
}

enum { WHOLE, BYTEWISE };

/* Moves what `from` has queued into `to`; tr (if set) records it. */
static void transfer(dist_hs *from, dist_hs *to, int mode, const char *status, bool keep, cn_buf *tr) {
  cn_buf b = {0};
  assert_int_equal(cn_buf_append(&b, from->out.data, from->out.len), 0);
  cn_buf_consume(&from->out, from->out.len);
  if (tr) assert_int_equal(cn_buf_append(tr, b.data, b.len), 0);
  if (dist_hs_result(to) == 0) {
    if (mode == WHOLE) {
      drive(to, b.data, b.len, status, keep, NULL);
    } else {
      for (size_t i = 0; i < b.len && dist_hs_result(to) == 0; i++) drive(to, b.data + i, 1, status, keep, NULL);
    }
  }
  cn_buf_free(&b);
}

/* Runs both sides until neither has anything to say. ti/ta record what each sent. */
static void run_pair(dist_hs *i, dist_hs *a, const char *status, bool keep, int mode, cn_buf *ti, cn_buf *ta) {
  for (int rounds = 0; rounds < 20 && (i->out.len || a->out.len); rounds++) {
    transfer(i, a, mode, status, keep, ti);
    transfer(a, i, mode, status, keep, ta);
  }
  assert_int_equal(i->out.len + a->out.len, 0);
}

static void pair(dist_hs_cfg ci, dist_hs_cfg ca, const char *status, bool keep, int mode, int *ri, int *ra) {
  dist_hs i, a;
  assert_int_equal(dist_hs_init(&i, &ci), 0);
  assert_int_equal(dist_hs_init(&a, &ca), 0);
  run_pair(&i, &a, status, keep, mode, NULL, NULL);
  *ri = dist_hs_result(&i);
  *ra = dist_hs_result(&a);
  dist_hs_free(&i);
  dist_hs_free(&a);
}

/* ---- tests ---- */

/* Vectors from OTP 25.2.3: binary:encode_hex(erlang:md5([Cookie, integer_to_list(Challenge)])). */
static void test_digest_vectors(void **state) {
  (void)state;
  static const struct {
    const char *cookie;
    uint32_t ch;
    const char *hex;
  } v[] = {
      {"secretcookie", 3735928559u, "4D9757CD7AE773AAF1A08D00FF981318"},
      {"ABCDEFGHIJKLMNOPQRST", 0, "F324DB54EC32DB2D7961943F10BF4C88"},
      {"c", 1234567, "FC56268C639EA0D22A6C3DDF65EC06F0"},
  };
  for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
    uint8_t d[16], *want;
    assert_int_equal(hex_decode(v[k].hex, &want), 16);
    dist_digest(v[k].cookie, v[k].ch, d);
    assert_memory_equal(d, want, 16);
    free(want);
  }
}

/* RFC 1321's test suite, plus lengths around the padding boundary and data fed in pieces, against digests
 * from OpenSSL's md5. */
static void test_md5_vectors(void **state) {
  (void)state;
  static const struct {
    const char *in;
    const char *hex;
  } v[] = {
      {"", "D41D8CD98F00B204E9800998ECF8427E"},
      {"a", "0CC175B9C0F1B6A831C399E269772661"},
      {"abc", "900150983CD24FB0D6963F7D28E17F72"},
      {"message digest", "F96B697D7CB7938D525A2F31AAF161D0"},
      {"abcdefghijklmnopqrstuvwxyz", "C3FCD3D76192E4007DFB496CCA67E13B"},
      {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "D174AB98D277D9F5A5611C2C9F419D9F"},
      {"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
       "57EDF4A22BE3C955AC49DA2E2107B67A"},
  };
  for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
    uint8_t d[16], *want;
    assert_int_equal(hex_decode(v[k].hex, &want), 16);
    size_t len = strlen(v[k].in);
    for (size_t piece = 1; piece <= 65; piece += 7) { /* fed piece bytes at a time */
      dist_md5 m;
      dist_md5_init(&m);
      for (size_t off = 0; off < len; off += piece)
        dist_md5_update(&m, v[k].in + off, len - off < piece ? len - off : piece);
      dist_md5_final(&m, d);
      assert_memory_equal(d, want, 16);
    }
    free(want);
  }
  /* 55, 56, 63, 64, 65 and 200 bytes of 'x': one or two padding blocks, several blocks. */
  static const struct {
    size_t n;
    const char *hex;
  } w[] = {{55, "04364420E25C512FD958A70738AA8F72"}, {56, "668A72D5BA17F08E62DABCAFAD6DB14B"},
           {63, "7DC2CA208106A2F703567BDFF99D8981"}, {64, "C1BB4F81D892B2D57947682AEB252456"},
           {65, "1BC932052302D074BDEC39795FE00CF6"}, {200, "30A83621CE5422FBDFDD539777458C78"}};
  char xs[200];
  memset(xs, 'x', sizeof xs);
  for (size_t k = 0; k < sizeof w / sizeof w[0]; k++) {
    uint8_t d[16], *want;
    assert_int_equal(hex_decode(w[k].hex, &want), 16);
    dist_md5 m;
    dist_md5_init(&m);
    dist_md5_update(&m, xs, w[k].n);
    dist_md5_final(&m, d);
    assert_memory_equal(d, want, 16);
    free(want);
  }
}

static void test_flag_values(void **state) {
  (void)state;
  assert_int_equal(DIST_FLAGS_MANDATORY_25, 0x1070F94); /* 17239956, as OTP's MANDATORY_DFLAGS_25 */
  assert_int_equal(DFLAG_MANDATORY_25_DIGEST, 0x4000000);
  assert_int_equal(DFLAG_SPAWN, 0x100000000ULL);
  assert_int_equal(DFLAG_ALIAS, 0x800000000ULL);
  assert_int_equal(DIST_FLAGS_DEFAULT & (DFLAG_ATOM_CACHE | DFLAG_DIST_HDR_ATOM_CACHE | DFLAG_NAME_ME), 0);
  assert_int_equal(DIST_FLAGS_DEFAULT, 0x2D07DF4FBDULL);
  assert_int_equal(DFLAG_ALTACT_SIG, 0x2000000000ULL); /* erts dist.h: 0x20 << 32 */
  assert_int_equal(dist_flags_expand(DFLAG_MANDATORY_25_DIGEST) & REQ, REQ);
  assert_int_equal(dist_flags_expand(DFLAG_PUBLISHED), DFLAG_PUBLISHED);
}

static void check_good(int mode, int version) {
  dist_hs_cfg ci = icfg(), ca = acfg();
  ci.peer_version = version;
  dist_hs i, a;
  assert_int_equal(dist_hs_init(&i, &ci), 0);
  assert_int_equal(i.out.data[2], version == 6 ? 'N' : 'n');
  assert_int_equal(dist_hs_init(&a, &ca), 0);
  cn_buf ti = {0}, ta = {0};
  run_pair(&i, &a, "ok", true, mode, &ti, &ta);
  assert_int_equal(dist_hs_result(&i), DIST_HS_DONE);
  assert_int_equal(dist_hs_result(&a), DIST_HS_DONE);
  assert_string_equal(i.peer_name, "erl@127.0.0.1");
  assert_string_equal(a.peer_name, "cnode@127.0.0.1");
  assert_int_equal(i.peer_flags, ca.flags);
  assert_int_equal(a.peer_flags, ci.flags); /* with 'n', the high flags came in 'c' */
  assert_int_equal(i.peer_creation, ca.creation);
  assert_int_equal(a.peer_creation, ci.creation);
  assert_int_equal(i.flags, ci.flags & ca.flags);
  assert_int_equal(a.flags, i.flags);
  assert_null(i.reason);
  /* Version 5: name 'n' (2+1+2+4+15), then 'c' (2+9) before 'r' (2+21). */
  size_t expect = version == 6 ? 2 + 15 + 15 + 23 : 2 + 7 + 15 + 11 + 23;
  assert_int_equal(ti.len, expect);
  if (version == 5) assert_int_equal(ti.data[2 + 7 + 15 + 2], 'c');
  cn_buf_free(&ti);
  cn_buf_free(&ta);
  dist_hs_free(&i);
  dist_hs_free(&a);
}

static void test_good_whole(void **state) {
  (void)state;
  check_good(WHOLE, 6);
  check_good(WHOLE, 5);
}

static void test_good_bytewise(void **state) {
  (void)state;
  check_good(BYTEWISE, 6);
  check_good(BYTEWISE, 5);
}

static void test_wrong_cookie(void **state) {
  (void)state;
  dist_hs_cfg ci = icfg(), ca = acfg();
  ca.cookie = "othercookie";
  dist_hs i, a;
  assert_int_equal(dist_hs_init(&i, &ci), 0);
  assert_int_equal(dist_hs_init(&a, &ca), 0);
  run_pair(&i, &a, "ok", true, WHOLE, NULL, NULL);
  /* The acceptor checks first and sends nothing more: the initiator is left waiting (its timer ends it). */
  assert_int_equal(dist_hs_result(&a), CN_EAUTH);
  assert_non_null(strstr(a.reason, "cookie mismatch"));
  assert_int_equal(dist_hs_result(&i), 0);
  size_t c;
  assert_int_equal(dist_hs_feed(&a, (const uint8_t *)"x", 1, &c), CN_EAUTH); /* sticky */
  assert_int_equal(c, 0);
  dist_hs_free(&i);
  dist_hs_free(&a);
}

/* Runs a good exchange and returns the transcripts of both directions. */
static void transcripts(dist_hs_cfg ci, dist_hs_cfg ca, const char *status, bool keep, cn_buf *ti, cn_buf *ta) {
  dist_hs i, a;
  assert_int_equal(dist_hs_init(&i, &ci), 0);
  assert_int_equal(dist_hs_init(&a, &ca), 0);
  run_pair(&i, &a, status, keep, WHOLE, ti, ta);
  dist_hs_free(&i);
  dist_hs_free(&a);
}

static void test_bad_ack(void **state) {
  (void)state;
  cn_buf ti = {0}, ta = {0};
  transcripts(icfg(), acfg(), "ok", true, &ti, &ta);
  ta.data[ta.len - 1] ^= 1;
  dist_hs i;
  dist_hs_cfg ci = icfg();
  assert_int_equal(dist_hs_init(&i, &ci), 0);
  assert_int_equal(drive(&i, ta.data, ta.len, "ok", true, NULL), CN_EAUTH);
  assert_non_null(strstr(i.reason, "cookie mismatch"));
  dist_hs_free(&i);
  cn_buf_free(&ti);
  cn_buf_free(&ta);
}

static void test_statuses(void **state) {
  (void)state;
  static const struct {
    const char *st;
    bool keep;
    int ri, ra;
  } v[] = {
      {"ok", true, DIST_HS_DONE, DIST_HS_DONE},    {"ok_simultaneous", true, DIST_HS_DONE, DIST_HS_DONE},
      {"nok", true, CN_EREFUSED, CN_EREFUSED},     {"not_allowed", true, CN_EREFUSED, CN_EREFUSED},
      {"alive", true, DIST_HS_DONE, DIST_HS_DONE}, {"alive", false, CN_EREFUSED, CN_EREFUSED},
  };
  for (int version = 5; version <= 6; version++) {
    for (int mode = WHOLE; mode <= BYTEWISE; mode++) {
      for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
        dist_hs_cfg ci = icfg();
        ci.peer_version = version;
        int ri, ra;
        pair(ci, acfg(), v[k].st, v[k].keep, mode, &ri, &ra);
        assert_int_equal(ri, v[k].ri);
        assert_int_equal(ra, v[k].ra);
      }
    }
  }
}

static void test_alive_reason_and_state(void **state) {
  (void)state;
  dist_hs_cfg ci = icfg(), ca = acfg();
  dist_hs i, a;
  assert_int_equal(dist_hs_init(&i, &ci), 0);
  assert_int_equal(dist_hs_init(&a, &ca), 0);
  assert_int_equal(dist_hs_alive_reply(&i, true), CN_ESTATE);
  assert_int_equal(dist_hs_accept_status(&a, "ok"), CN_ESTATE);
  size_t c;
  assert_int_equal(dist_hs_feed(&a, i.out.data, i.out.len, &c), DIST_HS_NAME);
  assert_int_equal(c, i.out.len);
  assert_int_equal(dist_hs_feed(&a, i.out.data, i.out.len, &c), DIST_HS_MORE); /* caller's turn */
  assert_int_equal(c, 0);
  assert_int_equal(dist_hs_accept_status(&a, "maybe"), CN_EINVAL);
  assert_int_equal(dist_hs_accept_status(&a, "alive"), 0);
  assert_int_equal(dist_hs_feed(&i, a.out.data, a.out.len, &c), DIST_HS_ALIVE);
  assert_int_equal(dist_hs_alive_reply(&i, false), 0);
  assert_int_equal(dist_hs_feed(&i, (const uint8_t *)"", 0, &c), CN_EREFUSED);
  assert_non_null(i.reason);
  assert_memory_equal(i.out.data + i.out.len - 8, "\0\6sfalse", 8);
  dist_hs_free(&i);
  dist_hs_free(&a);
}

/* A hand-made old send_name: 'n', version 5, 32-bit flags, name. */
static size_t old_name(uint8_t *m, uint32_t flags, const char *name) {
  size_t nl = strlen(name);
  m[0] = 0, m[1] = (uint8_t)(7 + nl), m[2] = 'n', m[3] = 0, m[4] = 5;
  cn_set32(m + 5, flags);
  memcpy(m + 9, name, nl);
  return 9 + nl;
}

static void test_old_peer_refused(void **state) {
  (void)state;
  uint8_t m[64];
  size_t n = old_name(m, (uint32_t)(REQ & ~DFLAG_HANDSHAKE_23), "old@host");
  dist_hs a;
  dist_hs_cfg ca = acfg();
  assert_int_equal(dist_hs_init(&a, &ca), 0);
  assert_int_equal(drive(&a, m, n, "ok", true, NULL), CN_EFLAGS);
  assert_non_null(strstr(a.reason, "OTP 23"));
  dist_hs_free(&a);
  /* The same through a version 5 initiator configured without HANDSHAKE_23. */
  dist_hs_cfg ci = icfg();
  ci.peer_version = 5;
  ci.flags &= ~DFLAG_HANDSHAKE_23;
  int ri, ra;
  pair(ci, acfg(), "ok", true, WHOLE, &ri, &ra);
  assert_int_equal(ra, CN_EFLAGS);
  assert_int_equal(ri, 0);
}

static void test_missing_flags(void **state) {
  (void)state;
  int ri, ra;
  dist_hs_cfg ci = icfg(), ca = acfg();
  ci.flags &= ~(DFLAG_MAP_TAG | DFLAG_MANDATORY_25_DIGEST); /* the digest would stand for MAP_TAG */
  dist_hs i, a;
  assert_int_equal(dist_hs_init(&i, &ci), 0);
  assert_int_equal(dist_hs_init(&a, &ca), 0);
  assert_int_equal(drive(&a, i.out.data, i.out.len, "ok", true, NULL), CN_EFLAGS);
  assert_int_equal(a.out.len, 2 + 12); /* not_allowed is queued for the initiator, as OTP does */
  assert_memory_equal(a.out.data, "\0\14snot_allowed", 14);
  assert_int_equal(drive(&i, a.out.data, a.out.len, "ok", true, NULL), CN_EREFUSED);
  dist_hs_free(&i);
  dist_hs_free(&a);
  /* The acceptor lacking a flag the initiator requires. */
  ci = icfg(), ca = acfg();
  ca.flags &= ~(DFLAG_BIG_CREATION | DFLAG_MANDATORY_25_DIGEST);
  pair(ci, ca, "ok", true, WHOLE, &ri, &ra);
  assert_int_equal(ri, CN_EFLAGS);
  /* A required high flag after an old name is checked once 'c' brings it. */
  ci = icfg(), ca = acfg();
  ci.peer_version = 5;
  ci.flags &= ~DFLAG_SPAWN;
  ca.required_flags |= DFLAG_SPAWN;
  pair(ci, ca, "ok", true, WHOLE, &ri, &ra);
  assert_int_equal(ra, CN_EFLAGS);
  /* MANDATORY_25_DIGEST alone stands for the whole mandatory set. */
  ci = icfg(), ca = acfg();
  ci.flags = DFLAG_PUBLISHED | DFLAG_MANDATORY_25_DIGEST;
  pair(ci, ca, "ok", true, WHOLE, &ri, &ra);
  assert_int_equal(ri, DIST_HS_DONE);
  assert_int_equal(ra, DIST_HS_DONE);
}

/* A hand-made old challenge, as a pre-OTP-23 acceptor sends it. */
static void test_old_challenge(void **state) {
  (void)state;
  uint8_t m[64];
  static const char st[] = "\0\3sok";
  memcpy(m, st, 5);
  const char *name = "erl@127.0.0.1";
  size_t nl = strlen(name);
  m[5] = 0, m[6] = (uint8_t)(11 + nl), m[7] = 'n', m[8] = 0, m[9] = 5;
  cn_set32(m + 10, (uint32_t)(REQ & ~DFLAG_HANDSHAKE_23));
  cn_set32(m + 14, 777);
  memcpy(m + 18, name, nl);
  size_t n = 18 + nl;
  for (int strict = 0; strict <= 1; strict++) {
    dist_hs_cfg ci = icfg();
    ci.peer_version = 5;
    ci.required_flags = strict ? REQ : 0;
    dist_hs i;
    assert_int_equal(dist_hs_init(&i, &ci), 0);
    cn_buf_consume(&i.out, i.out.len);
    int rc = drive(&i, m, n, "ok", true, NULL);
    if (strict) {
      assert_int_equal(rc, CN_EFLAGS);
    } else {
      /* No complement after an old challenge: straight to 'r' with the digest of 777. */
      assert_int_equal(rc, DIST_HS_MORE);
      assert_int_equal(i.out.len, 23);
      assert_int_equal(i.out.data[2], 'r');
      uint8_t d[16];
      dist_digest(COOKIE, 777, d);
      assert_memory_equal(i.out.data + 7, d, 16);
      assert_int_equal(i.peer_creation, 0);
    }
    dist_hs_free(&i);
  }
}

/* Builds an 'N' send_name with the given flags and name bytes. */
static size_t new_name(uint8_t *m, uint64_t flags, const char *name, size_t nl) {
  size_t len = 15 + nl;
  m[0] = (uint8_t)(len >> 8), m[1] = (uint8_t)len, m[2] = 'N';
  cn_set32(m + 3, (uint32_t)(flags >> 32));
  cn_set32(m + 7, (uint32_t)flags);
  cn_set32(m + 11, 1);
  m[15] = (uint8_t)(nl >> 8), m[16] = (uint8_t)nl;
  memcpy(m + 17, name, nl);
  return 17 + nl;
}

static int feed_acceptor(const uint8_t *m, size_t n) {
  dist_hs a;
  dist_hs_cfg ca = acfg();
  assert_int_equal(dist_hs_init(&a, &ca), 0);
  int rc = drive(&a, m, n, "ok", true, NULL);
  dist_hs_free(&a);
  return rc;
}

static void test_names(void **state) {
  (void)state;
  uint8_t m[DIST_NAME_MAX + 600];
  static const char *bad[] = {"noat", "@host", "alive@", "a@b@c", "", "@"};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
    assert_int_equal(feed_acceptor(m, new_name(m, DIST_FLAGS_DEFAULT, bad[k], strlen(bad[k]))), CN_EPROTO);
  assert_int_equal(feed_acceptor(m, new_name(m, DIST_FLAGS_DEFAULT, "a\0b@c", 5)), CN_EPROTO);
  char longname[DIST_NAME_MAX + 1]; /* an atom's bytes: 255 characters of up to 4 bytes */
  memset(longname, 'x', sizeof longname);
  longname[10] = '@';
  assert_int_equal(feed_acceptor(m, new_name(m, DIST_FLAGS_DEFAULT, longname, DIST_NAME_MAX + 1)), CN_ELIMIT);
  assert_int_equal(feed_acceptor(m, new_name(m, DIST_FLAGS_DEFAULT, longname, DIST_NAME_MAX)), DIST_HS_MORE);
  /* Extra bytes after the name are ignored, as the spec asks. */
  size_t n = new_name(m, DIST_FLAGS_DEFAULT, "a@b", 3);
  m[1] += 3, memcpy(m + n, "xyz", 3);
  assert_int_equal(feed_acceptor(m, n + 3), DIST_HS_MORE);
  /* NAME_ME asks for a dynamic name, which we do not hand out. */
  assert_int_equal(feed_acceptor(m, new_name(m, DIST_FLAGS_DEFAULT | DFLAG_NAME_ME, "host", 4)), CN_EUNSUPPORTED);
  /* The initiator checks the acceptor is the node it dialled. */
  dist_hs_cfg ci = icfg();
  ci.peer_name = "other@127.0.0.1";
  int ri, ra;
  pair(ci, acfg(), "ok", true, WHOLE, &ri, &ra);
  assert_int_equal(ri, CN_EPROTO);
  ci.peer_name = NULL;
  pair(ci, acfg(), "ok", true, WHOLE, &ri, &ra);
  assert_int_equal(ri, DIST_HS_DONE);
  /* Our own configuration. */
  dist_hs hs;
  ci = icfg();
  ci.name = "bad";
  assert_int_equal(dist_hs_init(&hs, &ci), CN_EINVAL);
  ci = icfg();
  ci.peer_version = 4;
  assert_int_equal(dist_hs_init(&hs, &ci), CN_EINVAL);
  dist_hs_free(&hs);
}

static int feed_initiator(const uint8_t *m, size_t n) {
  dist_hs i;
  dist_hs_cfg ci = icfg();
  assert_int_equal(dist_hs_init(&i, &ci), 0);
  int rc = drive(&i, m, n, "ok", true, NULL);
  dist_hs_free(&i);
  return rc;
}

static void test_malformed(void **state) {
  (void)state;
  uint8_t big[2 + 2049];
  memset(big, 's', sizeof big);
  big[0] = 0x08, big[1] = 0x01; /* 2049 */
  assert_int_equal(feed_acceptor(big, 2), CN_ELIMIT);
  big[0] = 0x08, big[1] = 0x00; /* 2048 is allowed, and is garbage */
  assert_int_equal(feed_acceptor(big, 2 + 2048), CN_EPROTO);
  assert_int_equal(feed_acceptor((const uint8_t *)"\0\0", 2), CN_EPROTO);
  assert_int_equal(feed_acceptor((const uint8_t *)"\0\1X", 3), CN_EPROTO);
  assert_int_equal(feed_acceptor((const uint8_t *)"\0\12N123456789", 12), CN_EPROTO); /* truncated 'N' */
  assert_int_equal(feed_acceptor((const uint8_t *)"\0\6n\0\5abc", 8), CN_EPROTO);     /* truncated 'n' */
  /* An 'N' whose name length overruns the message. */
  uint8_t m[64];
  size_t n = new_name(m, DIST_FLAGS_DEFAULT, "a@b", 3);
  m[16] = 4;
  assert_int_equal(feed_acceptor(m, n), CN_EPROTO);
  /* Initiator: statuses it must refuse. */
  assert_int_equal(feed_initiator((const uint8_t *)"\0\5sokay", 7), CN_EPROTO);
  assert_int_equal(feed_initiator((const uint8_t *)"\0\7snamed:", 9), CN_EPROTO);
  assert_int_equal(feed_initiator((const uint8_t *)"\0\3aok", 5), CN_EPROTO);
  assert_int_equal(feed_initiator((const uint8_t *)"\0\3sok\0\4Nabc", 11), CN_EPROTO); /* short challenge */
  assert_int_equal(feed_initiator((const uint8_t *)"\0\3sok\0\4nabc", 11), CN_EPROTO); /* 'n' after our 'N' */
  /* Wrong lengths for the fixed-size messages. */
  cn_buf ti = {0}, ta = {0};
  transcripts(icfg(), acfg(), "ok", true, &ti, &ta);
  size_t last = ta.len - 19; /* the ack: 2 + 'a' + 16 */
  ta.data[last + 1] = 16;    /* one byte short */
  assert_int_equal(feed_initiator(ta.data, ta.len - 1), CN_EPROTO);
  size_t r = ti.len - 23; /* the reply: 2 + 'r' + 4 + 16 */
  ti.data[r + 1] = 22;
  cn_buf_put8(&ti, 0);
  assert_int_equal(feed_acceptor(ti.data, ti.len), CN_EPROTO);
  cn_buf_free(&ti);
  cn_buf_free(&ta);
}

static void test_after_done(void **state) {
  (void)state;
  cn_buf ti = {0}, ta = {0};
  transcripts(icfg(), acfg(), "ok", true, &ti, &ta);
  static const uint8_t frames[] = {0, 0, 0, 0, 0, 0, 0, 3, 131, 68, 0};
  size_t base = ta.len;
  cn_buf_append(&ta, frames, sizeof frames);
  dist_hs i;
  dist_hs_cfg ci = icfg();
  assert_int_equal(dist_hs_init(&i, &ci), 0);
  size_t used;
  assert_int_equal(drive(&i, ta.data, ta.len, "ok", true, &used), DIST_HS_DONE);
  assert_int_equal(used, base); /* the frames are left for the caller */
  size_t c;
  assert_int_equal(dist_hs_feed(&i, frames, sizeof frames, &c), CN_ESTATE);
  assert_int_equal(c, 0);
  dist_hs_free(&i);
  cn_buf_free(&ti);
  cn_buf_free(&ta);
}

/* Replays one side's transcript into a fresh peer, split in two at every offset, and checks the peer ends
 * DONE having sent exactly what it sent in the whole run. Also every prefix alone leaves it waiting. */
static void split_all(dist_hs_cfg ci, dist_hs_cfg ca, const char *status, bool keep) {
  cn_buf ti = {0}, ta = {0};
  transcripts(ci, ca, status, keep, &ti, &ta);
  for (int side = 0; side < 2; side++) {
    cn_buf *in = side ? &ti : &ta, *mine = side ? &ta : &ti;
    dist_hs_cfg cfg = side ? ca : ci;
    for (size_t k = 0; k <= in->len; k++) {
      dist_hs hs;
      assert_int_equal(dist_hs_init(&hs, &cfg), 0);
      int rc = drive(&hs, in->data, k, status, keep, NULL);
      if (k < in->len) {
        assert_int_equal(rc, DIST_HS_MORE);
        rc = drive(&hs, in->data + k, in->len - k, status, keep, NULL);
      }
      assert_int_equal(rc, DIST_HS_DONE);
      assert_int_equal(hs.out.len, mine->len);
      assert_memory_equal(hs.out.data, mine->data, mine->len);
      dist_hs_free(&hs);
    }
  }
  cn_buf_free(&ti);
  cn_buf_free(&ta);
}

static void test_split_every_offset(void **state) {
  (void)state;
  dist_hs_cfg ci = icfg();
  split_all(ci, acfg(), "ok", true);
  split_all(ci, acfg(), "alive", true);
  ci.peer_version = 5;
  split_all(ci, acfg(), "ok_simultaneous", true);
  split_all(ci, acfg(), "alive", true);
}

/* xorshift64*: a fixed seed makes failures reproducible. */
static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd(void) {
  rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
  return rng * 2685821657736338717ULL;
}

static void check_rc(int rc) { assert_true(rc == DIST_HS_MORE || rc == DIST_HS_DONE || (rc < 0 && rc >= CN_EFLAGS)); }

static void test_garbage(void **state) {
  (void)state;
  static const char *sts[] = {"ok", "ok_simultaneous", "nok", "not_allowed", "alive"};
  static const uint8_t tags[] = "sNnacr";
  uint8_t buf[600];
  for (int it = 0; it < 6000; it++) {
    size_t n = rnd() % sizeof buf;
    for (size_t k = 0; k < n; k++) buf[k] = (uint8_t)rnd();
    if (it & 1) {
      /* Plausible framing with random bodies reaches deeper into the parsers. */
      size_t off = 0;
      while (off + 3 <= n) {
        size_t ml = 1 + rnd() % 40;
        if (off + 2 + ml > n) ml = n - off - 2;
        buf[off] = 0, buf[off + 1] = (uint8_t)ml, buf[off + 2] = tags[rnd() % 6];
        off += 2 + ml;
      }
    }
    dist_hs_cfg cfg = (it & 2) ? acfg() : icfg();
    cfg.peer_version = (it & 4) ? 5 : 6;
    dist_hs hs;
    assert_int_equal(dist_hs_init(&hs, &cfg), 0);
    check_rc(drive(&hs, buf, n, sts[rnd() % 5], rnd() & 1, NULL));
    dist_hs_free(&hs);
  }
}

static void test_mutated_transcripts(void **state) {
  (void)state;
  dist_hs_cfg ci = icfg();
  for (int version = 5; version <= 6; version++) {
    ci.peer_version = version;
    cn_buf ti = {0}, ta = {0};
    transcripts(ci, acfg(), "alive", true, &ti, &ta);
    for (int it = 0; it < 3000; it++) {
      int side = it & 1;
      cn_buf *in = side ? &ti : &ta;
      uint8_t *m = malloc(in->len);
      memcpy(m, in->data, in->len);
      for (int f = 1 + (int)(rnd() % 3); f > 0; f--) m[rnd() % in->len] ^= (uint8_t)(1 + rnd() % 255);
      size_t n = rnd() % (in->len + 1);
      dist_hs_cfg cfg = side ? acfg() : ci;
      dist_hs hs;
      assert_int_equal(dist_hs_init(&hs, &cfg), 0);
      check_rc(drive(&hs, m, n, "alive", true, NULL));
      dist_hs_free(&hs);
      free(m);
    }
    cn_buf_free(&ti);
    cn_buf_free(&ta);
  }
}

int main(void) {
  ta_install();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_digest_vectors, ta_setup, ta_teardown),
      cmocka_unit_test(test_md5_vectors),
      cmocka_unit_test_setup_teardown(test_flag_values, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_good_whole, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_good_bytewise, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_wrong_cookie, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_bad_ack, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_statuses, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_alive_reason_and_state, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_old_peer_refused, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_missing_flags, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_old_challenge, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_names, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_malformed, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_after_done, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_split_every_offset, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_garbage, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_mutated_transcripts, ta_setup, ta_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
