/* fuzz_handshake.c: the handshake state machine (dist_hs_*) in either role, fed a peer's bytes in chunks.
 * Input: one config byte, then chunks of [length byte][bytes]; when the machine reports NAME or ALIVE, the
 * next input byte picks our answer. Cookie and challenge are fixed, so seeds can carry the right digests. */
#include <stdbool.h>
#include <string.h>

#include "dist.h"
#include "fuzz.h"

#define COOKIE "fuzzcookie"
#define OUR_CHALLENGE 0x11223344u
#define OUR_NAME "cnode@127.0.0.1"
#define PEER_NAME "a@127.0.0.1"

/* Index 5 is not a status: accept_status must refuse it and leave the machine waiting. */
static const char *const statuses[] = {"ok", "ok_simultaneous", "nok", "not_allowed", "alive", "bogus"};

/* A peer name we recorded must be what take_name accepted: alive@host, NUL-terminated in the array. */
static void check_peer_name(const dist_hs *hs) {
  size_t n = strnlen(hs->peer_name, sizeof hs->peer_name);
  FUZZ_CHECK(n > 0 && n <= DIST_NAME_MAX);
  const char *at = memchr(hs->peer_name, '@', n);
  FUZZ_CHECK(at && at > hs->peer_name && at + 1 < hs->peer_name + n &&
             !memchr(at + 1, '@', n - (size_t)(at + 1 - hs->peer_name)));
}

/* Answers an event with the next input byte; returns false when the handshake ended. */
static bool answer(dist_hs *hs, int ev, fuzz_in *in) {
  uint8_t c = fuzz_u8(in);
  if (ev == DIST_HS_NAME) {
    FUZZ_CHECK(hs->role == DIST_HS_ACCEPTOR);
    check_peer_name(hs);
    if (c & 0x80) FUZZ_CHECK(dist_hs_alive_reply(hs, true) == CN_ESTATE); /* the other role's call */
    FUZZ_CHECK(dist_hs_accept_status(hs, NULL) == CN_EINVAL);
    const char *st = statuses[(c & 0x7f) % (sizeof statuses / sizeof statuses[0])];
    int rc = dist_hs_accept_status(hs, st);
    if (!strcmp(st, "bogus")) {
      FUZZ_CHECK(rc == CN_EINVAL && dist_hs_result(hs) == 0);
      return answer(hs, ev, in); /* still our turn; an empty input answers "ok" */
    }
    FUZZ_CHECK(rc == 0 || rc == CN_ENOMEM);
    FUZZ_CHECK(dist_hs_accept_status(hs, "ok") == CN_ESTATE);
  } else {
    FUZZ_CHECK(ev == DIST_HS_ALIVE && hs->role == DIST_HS_INITIATOR);
    if (c & 0x80) FUZZ_CHECK(dist_hs_accept_status(hs, "ok") == CN_ESTATE);
    int rc = dist_hs_alive_reply(hs, c & 1);
    FUZZ_CHECK(rc == 0 || rc == CN_ENOMEM);
    FUZZ_CHECK(dist_hs_alive_reply(hs, true) == CN_ESTATE);
  }
  return dist_hs_result(hs) == 0;
}

/* Our output must be whole handshake messages: 2-byte length, then that many bytes. Sends some of it. */
static void drain(dist_hs *hs, uint8_t how) {
  size_t off = 0;
  while (off + 2 <= hs->out.len) {
    size_t n = cn_get16(hs->out.data + off);
    FUZZ_CHECK(n >= 1 && n <= hs->out.len - off - 2);
    off += 2 + n;
  }
  FUZZ_CHECK(off == hs->out.len);
  /* Usually everything, sometimes a part, as a slow socket would. */
  size_t send = how & 1 ? hs->out.len / 2 : hs->out.len;
  cn_buf_consume(&hs->out, send);
  if (send < off) cn_buf_consume(&hs->out, hs->out.len); /* the next check needs whole messages again */
}

int fuzz_handshake_result(const uint8_t *data, size_t size) {
  fuzz_in in = {data, size, 0};
  uint8_t cfgb = fuzz_u8(&in);
  dist_hs_cfg cfg = {
      .role = cfgb & 1 ? DIST_HS_ACCEPTOR : DIST_HS_INITIATOR,
      .name = OUR_NAME,
      .cookie = COOKIE,
      .flags = DIST_FLAGS_DEFAULT,
      .creation = 0x5eed,
      .challenge = OUR_CHALLENGE,
      .peer_version = cfgb & 2 ? 5 : 6,
      .required_flags = cfgb & 4 ? 0 : DIST_FLAGS_MANDATORY_25,
      .peer_name = cfgb & 8 ? PEER_NAME : NULL,
  };
  dist_hs hs;
  int irc = dist_hs_init(&hs, &cfg);
  if (irc) return irc;
  FUZZ_CHECK(dist_hs_result(&hs) == 0);

  int rc = DIST_HS_MORE;
  for (unsigned step = 0; step < 4096 && rc >= 0 && rc != DIST_HS_DONE && fuzz_left(&in); step++) {
    drain(&hs, (uint8_t)(cfgb >> 4 >> (step & 3)));
    size_t n;
    const uint8_t *p = fuzz_take(&in, fuzz_u8(&in), &n);
    /* An exact-size copy, so reading past the chunk is an ASan error, not a read of the next chunk. */
    uint8_t *chunk = malloc(n ? n : 1);
    if (!chunk) break;
    memcpy(chunk, p, n);
    size_t off = 0;
    for (unsigned k = 0; k < 64; k++) {
      size_t used = 0;
      rc = dist_hs_feed(&hs, chunk + off, n - off, &used);
      FUZZ_CHECK(used <= n - off);
      off += used;
      if (rc < 0 || rc == DIST_HS_DONE) break;
      if (rc == DIST_HS_MORE) {
        /* Nothing awaits us, so a partial message was kept inside and everything was taken. */
        FUZZ_CHECK(off == n);
        break;
      }
      if (!answer(&hs, rc, &in)) {
        rc = dist_hs_result(&hs);
        break;
      }
      rc = DIST_HS_MORE;
    }
    free(chunk);
  }

  int res = dist_hs_result(&hs);
  if (rc == DIST_HS_DONE) {
    FUZZ_CHECK(res == DIST_HS_DONE);
    check_peer_name(&hs);
    FUZZ_CHECK(hs.flags == (DIST_FLAGS_DEFAULT & hs.peer_flags));
    if (cfg.required_flags) FUZZ_CHECK((hs.peer_flags & cfg.required_flags) == cfg.required_flags);
    if (cfg.peer_name && hs.role == DIST_HS_INITIATOR) FUZZ_CHECK(!strcmp(hs.peer_name, PEER_NAME));
    size_t used = 1;
    FUZZ_CHECK(dist_hs_feed(&hs, (const uint8_t *)"x", 1, &used) == CN_ESTATE && used == 0);
  } else if (rc < 0) {
    /* Errors are sticky and the machine takes nothing more. */
    FUZZ_CHECK(res == rc && hs.reason != NULL);
    size_t used = 1;
    FUZZ_CHECK(dist_hs_feed(&hs, (const uint8_t *)"x", 1, &used) == rc && used == 0);
    FUZZ_CHECK(!dist_hs_refused_nok(&hs) || (hs.role == DIST_HS_INITIATOR && rc == CN_EREFUSED));
  } else {
    FUZZ_CHECK(res == 0);
  }
  if (rc != CN_ENOMEM) drain(&hs, 0);
  dist_hs_free(&hs);
  FUZZ_CHECK(hs.cookie == NULL && hs.out.data == NULL);
  return res;
}

int fuzz_handshake_one(const uint8_t *data, size_t size) {
  (void)fuzz_handshake_result(data, size);
  return 0;
}

FUZZ_ENTRY(fuzz_handshake_one)
