/* handshake.c: the distribution handshake (OTP 23+ version 6, plus the old 'n' name/'c' complement path
 * of OTP 23/24) as a pure state machine for both roles, and the MD5 challenge digest. */
#include "dist.h"

#include <stdio.h>
#include <string.h>

enum {
  /* initiator */
  ST_I_STATUS = 1, /* sent name, waiting for 's' */
  ST_I_ALIVE,      /* got "alive", waiting for dist_hs_alive_reply */
  ST_I_CHALLENGE,  /* waiting for 'N' (or 'n' after our 'n') */
  ST_I_ACK,        /* sent 'r', waiting for 'a' */
  /* acceptor */
  ST_A_NAME,        /* waiting for 'N' or 'n' */
  ST_A_DECIDE,      /* reported NAME, waiting for dist_hs_accept_status */
  ST_A_ALIVE_REPLY, /* sent "alive", waiting for 's' true/false */
  ST_A_COMPLEMENT,  /* peer sent 'n': waiting for 'c' */
  ST_A_REPLY,       /* waiting for 'r' */
  ST_DONE,
  ST_FAILED
};

uint64_t dist_flags_expand(uint64_t flags) {
  if (flags & DFLAG_MANDATORY_25_DIGEST) flags |= DIST_FLAGS_MANDATORY_25;
  return flags;
}

void dist_digest(const char *cookie, uint32_t challenge, uint8_t out[16]) {
  char num[16];
  int n = snprintf(num, sizeof num, "%u", (unsigned)challenge);
  dist_md5 m;
  dist_md5_init(&m);
  dist_md5_update(&m, cookie, strlen(cookie));
  dist_md5_update(&m, num, (size_t)n);
  dist_md5_final(&m, out);
}

/* Records a terminal error; every later feed returns it. */
static int fail(dist_hs *hs, int err, const char *why) {
  hs->state = ST_FAILED;
  hs->err = err;
  hs->reason = why;
  return err;
}

/* Node names are "alive@host" with both parts non-empty, exactly one '@' and no NUL (we keep a C string). */
static bool name_ok(const uint8_t *p, size_t n) {
  size_t at = 0, ats = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] == 0) return false;
    if (p[i] == '@') ats++, at = i;
  }
  return ats == 1 && at > 0 && at + 1 < n;
}

/* Checks and stores the peer's name; returns 0 or the error already recorded. */
static int take_name(dist_hs *hs, const uint8_t *p, size_t n) {
  if (n > DIST_NAME_MAX) return fail(hs, CN_ELIMIT, "peer node name longer than 1020 bytes");
  if (!name_ok(p, n)) return fail(hs, CN_EPROTO, "peer node name is not alive@host");
  memcpy(hs->peer_name, p, n);
  hs->peer_name[n] = 0;
  return 0;
}

/* Queues a message length: 2 bytes (TCP's {packet, 2}) or 4 (inet_tls_dist's {packet, 4}). */
static int put_len(dist_hs *hs, size_t n) {
  return hs->hdr == 4 ? cn_buf_put32(&hs->out, (uint32_t)n) : cn_buf_put16(&hs->out, (uint16_t)n);
}

/* Checks the peer's flags against the required set; an acceptor says not_allowed first, as OTP does. */
static int check_flags(dist_hs *hs, uint64_t required) {
  if ((hs->peer_flags & required) == required) return 0;
  if (hs->role == DIST_HS_ACCEPTOR) {
    static const char st[] = "snot_allowed";
    if (put_len(hs, sizeof st - 1) || cn_buf_append(&hs->out, st, sizeof st - 1))
      return fail(hs, CN_ENOMEM, "out of memory");
  }
  return fail(hs, CN_EFLAGS, "peer lacks required distribution flags");
}

/* Queues one handshake message: length, tag, then the body. */
static int put_msg(dist_hs *hs, uint8_t tag, const void *body, size_t n) {
  if (put_len(hs, n + 1) || cn_buf_put8(&hs->out, tag) || cn_buf_append(&hs->out, body, n)) return CN_ENOMEM;
  return 0;
}

static int put_status(dist_hs *hs, const char *st) { return put_msg(hs, 's', st, strlen(st)); }

/* Acceptor: our challenge is always the new 'N' form, also to an 'n' peer (which then sends 'c'). */
static int put_challenge(dist_hs *hs) {
  size_t nl = strlen(hs->my_name);
  uint8_t b[8 + 4 + 4 + 2];
  cn_set32(b, (uint32_t)(hs->my_flags >> 32));
  cn_set32(b + 4, (uint32_t)hs->my_flags);
  cn_set32(b + 8, hs->my_challenge);
  cn_set32(b + 12, hs->my_creation);
  b[16] = (uint8_t)(nl >> 8), b[17] = (uint8_t)nl;
  if (put_len(hs, 1 + sizeof b + nl) || cn_buf_put8(&hs->out, 'N') || cn_buf_append(&hs->out, b, sizeof b) ||
      cn_buf_append(&hs->out, hs->my_name, nl))
    return CN_ENOMEM;
  return 0;
}

int dist_hs_init(dist_hs *hs, const dist_hs_cfg *cfg) {
  memset(hs, 0, sizeof *hs);
  if (!cfg || !cfg->name || !cfg->cookie) return CN_EINVAL;
  size_t nl = strlen(cfg->name);
  if (nl > DIST_NAME_MAX || !name_ok((const uint8_t *)cfg->name, nl)) return CN_EINVAL;
  if (cfg->role == DIST_HS_INITIATOR) {
    if (cfg->peer_version != 5 && cfg->peer_version != 6) return CN_EINVAL;
    if (cfg->peer_name && strlen(cfg->peer_name) > DIST_NAME_MAX) return CN_EINVAL;
  } else if (cfg->role != DIST_HS_ACCEPTOR) {
    return CN_EINVAL;
  }
  hs->cookie = cn_strndup(cfg->cookie, strlen(cfg->cookie));
  if (!hs->cookie) return CN_ENOMEM;
  hs->role = cfg->role;
  hs->hdr = cfg->len4 ? 4 : 2;
  hs->my_flags = cfg->flags;
  hs->required = cfg->required_flags;
  hs->my_creation = cfg->creation;
  hs->my_challenge = cfg->challenge;
  memcpy(hs->my_name, cfg->name, nl + 1);
  if (cfg->role == DIST_HS_ACCEPTOR) {
    hs->state = ST_A_NAME;
    return 0;
  }
  if (cfg->peer_name) strcpy(hs->expect, cfg->peer_name);
  hs->state = ST_I_STATUS;
  int rc;
  if (cfg->peer_version == 6) {
    uint8_t b[8 + 4 + 2];
    cn_set32(b, (uint32_t)(cfg->flags >> 32));
    cn_set32(b + 4, (uint32_t)cfg->flags);
    cn_set32(b + 8, cfg->creation);
    b[12] = (uint8_t)(nl >> 8), b[13] = (uint8_t)nl;
    rc = put_len(hs, 1 + sizeof b + nl) || cn_buf_put8(&hs->out, 'N') || cn_buf_append(&hs->out, b, sizeof b) ||
         cn_buf_append(&hs->out, cfg->name, nl);
  } else {
    /* Old name: version 5 and only the low 32 flags; HANDSHAKE_23 in them tells an OTP 23+ peer to answer
     * with 'N', after which we send the high flags and our creation in 'c'. */
    uint8_t b[2 + 4];
    b[0] = 0, b[1] = 5;
    cn_set32(b + 2, (uint32_t)cfg->flags);
    hs->old_name = true;
    rc = put_len(hs, 1 + sizeof b + nl) || cn_buf_put8(&hs->out, 'n') || cn_buf_append(&hs->out, b, sizeof b) ||
         cn_buf_append(&hs->out, cfg->name, nl);
  }
  if (rc) {
    dist_hs_free(hs);
    return CN_ENOMEM;
  }
  return 0;
}

static bool text_is(const uint8_t *p, size_t n, const char *s) { return strlen(s) == n && !memcmp(p, s, n); }

/* Initiator: the acceptor's status. */
static int on_status(dist_hs *hs, const uint8_t *m, size_t n) {
  if (m[0] != 's') return fail(hs, CN_EPROTO, "expected a status message");
  const uint8_t *s = m + 1;
  n--;
  if (text_is(s, n, "ok") || text_is(s, n, "ok_simultaneous")) {
    hs->state = ST_I_CHALLENGE;
    return DIST_HS_MORE;
  }
  if (text_is(s, n, "alive")) {
    hs->state = ST_I_ALIVE;
    return DIST_HS_ALIVE;
  }
  /* nok: the peer's own attempt towards us wins the simultaneous connect; OTP waits to be killed. */
  if (text_is(s, n, "nok")) {
    hs->got_nok = true;
    return fail(hs, CN_EREFUSED, "peer answered status nok (simultaneous connect)");
  }
  if (text_is(s, n, "not_allowed")) return fail(hs, CN_EREFUSED, "peer answered status not_allowed");
  if (n >= 6 && !memcmp(s, "named:", 6)) return fail(hs, CN_EPROTO, "peer sent named: but we never asked");
  return fail(hs, CN_EPROTO, "peer sent an unknown status");
}

/* Initiator: the acceptor's challenge, then our reply (and the complement after our old 'n'). */
static int on_challenge(dist_hs *hs, const uint8_t *m, size_t n) {
  uint32_t ch;
  const uint8_t *name;
  size_t nl;
  bool new_form = m[0] == 'N';
  if (new_form) {
    if (n < 19) return fail(hs, CN_EPROTO, "truncated challenge");
    hs->peer_flags = cn_get64(m + 1);
    ch = cn_get32(m + 9);
    hs->peer_creation = cn_get32(m + 13);
    nl = cn_get16(m + 17);
    if (nl > n - 19) return fail(hs, CN_EPROTO, "challenge name overruns the message");
    name = m + 19; /* bytes after the name are ignored, as the spec asks */
  } else if (m[0] == 'n' && hs->old_name) {
    /* An old challenge: only pre-OTP-23 nodes send it; required_flags normally refuses them below. */
    if (n < 11) return fail(hs, CN_EPROTO, "truncated challenge");
    hs->peer_flags = cn_get32(m + 3);
    ch = cn_get32(m + 7);
    name = m + 11;
    nl = n - 11;
  } else {
    return fail(hs, CN_EPROTO, "expected a challenge message");
  }
  int rc = take_name(hs, name, nl);
  if (rc) return rc;
  if (hs->expect[0] && strcmp(hs->expect, hs->peer_name))
    return fail(hs, CN_EPROTO, "peer's name is not the node we dialled");
  hs->peer_flags = dist_flags_expand(hs->peer_flags);
  if ((rc = check_flags(hs, hs->required))) return rc;
  hs->flags = hs->my_flags & hs->peer_flags;
  if (hs->old_name && new_form) {
    uint8_t c[8];
    cn_set32(c, (uint32_t)(hs->my_flags >> 32));
    cn_set32(c + 4, hs->my_creation);
    if (put_msg(hs, 'c', c, sizeof c)) return fail(hs, CN_ENOMEM, "out of memory");
  }
  uint8_t r[4 + 16];
  cn_set32(r, hs->my_challenge);
  dist_digest(hs->cookie, ch, r + 4);
  if (put_msg(hs, 'r', r, sizeof r)) return fail(hs, CN_ENOMEM, "out of memory");
  hs->state = ST_I_ACK;
  return DIST_HS_MORE;
}

/* Initiator: the acceptor proves it knows the cookie too. */
static int on_ack(dist_hs *hs, const uint8_t *m, size_t n) {
  if (m[0] != 'a' || n != 17) return fail(hs, CN_EPROTO, "expected a challenge_ack message");
  uint8_t want[16];
  dist_digest(hs->cookie, hs->my_challenge, want);
  if (cn_memeq_ct(want, m + 1, 16))
    return fail(hs, CN_EAUTH, "peer sent wrong digest in challenge_ack: cookie mismatch");
  hs->state = ST_DONE;
  return DIST_HS_DONE;
}

/* Acceptor: the initiator's name, new 'N' or old 'n'. */
static int on_name(dist_hs *hs, const uint8_t *m, size_t n) {
  const uint8_t *name;
  size_t nl;
  if (m[0] == 'N') {
    if (n < 15) return fail(hs, CN_EPROTO, "truncated send_name");
    hs->peer_flags = cn_get64(m + 1);
    hs->peer_creation = cn_get32(m + 9);
    nl = cn_get16(m + 13);
    if (nl > n - 15) return fail(hs, CN_EPROTO, "send_name name overruns the message");
    name = m + 15;
    if (hs->peer_flags & DFLAG_NAME_ME)
      return fail(hs, CN_EUNSUPPORTED, "peer asks for a dynamic name (NAME_ME), which we do not assign");
  } else if (m[0] == 'n') {
    if (n < 7) return fail(hs, CN_EPROTO, "truncated send_name");
    hs->peer_flags = cn_get32(m + 3);
    name = m + 7;
    nl = n - 7;
    /* We only speak the version 6 challenge, which a pre-OTP-23 peer cannot read. */
    if (!(hs->peer_flags & DFLAG_HANDSHAKE_23))
      return fail(hs, CN_EFLAGS, "peer is older than OTP 23 (old send_name without HANDSHAKE_23)");
    hs->old_name = true;
  } else {
    return fail(hs, CN_EPROTO, "expected a send_name message");
  }
  int rc = take_name(hs, name, nl);
  if (rc) return rc;
  hs->peer_flags = dist_flags_expand(hs->peer_flags);
  /* After an old name only the low 32 flags are known; the rest is checked once 'c' brings them. */
  if ((rc = check_flags(hs, hs->old_name ? (hs->required & 0xffffffffu) : hs->required))) return rc;
  hs->state = ST_A_DECIDE;
  return DIST_HS_NAME;
}

/* Acceptor: after "alive", the initiator says whether to go on. */
static int on_alive_reply(dist_hs *hs, const uint8_t *m, size_t n) {
  if (m[0] == 's' && text_is(m + 1, n - 1, "true")) {
    if (put_challenge(hs)) return fail(hs, CN_ENOMEM, "out of memory");
    hs->state = hs->old_name ? ST_A_COMPLEMENT : ST_A_REPLY;
    return DIST_HS_MORE;
  }
  if (m[0] == 's' && text_is(m + 1, n - 1, "false"))
    return fail(hs, CN_EREFUSED, "peer answered false to status alive");
  return fail(hs, CN_EPROTO, "expected status true or false");
}

/* Acceptor: the complement an old-name initiator sends after our 'N' challenge. */
static int on_complement(dist_hs *hs, const uint8_t *m, size_t n) {
  if (m[0] != 'c' || n != 9) return fail(hs, CN_EPROTO, "expected a complement message");
  hs->peer_flags = dist_flags_expand(hs->peer_flags | (uint64_t)cn_get32(m + 1) << 32);
  hs->peer_creation = cn_get32(m + 5);
  int rc = check_flags(hs, hs->required);
  if (rc) return rc;
  hs->state = ST_A_REPLY;
  return DIST_HS_MORE;
}

/* Acceptor: the initiator's digest of our challenge, then our digest of its challenge. */
static int on_reply(dist_hs *hs, const uint8_t *m, size_t n) {
  if (m[0] != 'r' || n != 21) return fail(hs, CN_EPROTO, "expected a challenge_reply message");
  uint8_t want[16], a[16];
  dist_digest(hs->cookie, hs->my_challenge, want);
  dist_digest(hs->cookie, cn_get32(m + 1), a);
  if (cn_memeq_ct(want, m + 5, 16))
    return fail(hs, CN_EAUTH, "peer sent wrong digest in challenge_reply: cookie mismatch");
  if (put_msg(hs, 'a', a, sizeof a)) return fail(hs, CN_ENOMEM, "out of memory");
  hs->flags = hs->my_flags & hs->peer_flags;
  hs->state = ST_DONE;
  return DIST_HS_DONE;
}

/* Dispatches one complete message (m[0] is the tag, n >= 1). */
static int on_msg(dist_hs *hs, const uint8_t *m, size_t n) {
  switch (hs->state) {
  case ST_I_STATUS: return on_status(hs, m, n);
  case ST_I_CHALLENGE: return on_challenge(hs, m, n);
  case ST_I_ACK: return on_ack(hs, m, n);
  case ST_A_NAME: return on_name(hs, m, n);
  case ST_A_ALIVE_REPLY: return on_alive_reply(hs, m, n);
  case ST_A_COMPLEMENT: return on_complement(hs, m, n);
  case ST_A_REPLY: return on_reply(hs, m, n);
  default: return fail(hs, CN_ESTATE, "handshake message in an unexpected state");
  }
}

int dist_hs_feed(dist_hs *hs, const uint8_t *buf, size_t len, size_t *consumed) {
  size_t off = 0;
  *consumed = 0;
  if (hs->state == ST_FAILED) return hs->err;
  if (hs->state == ST_DONE) return CN_ESTATE;
  if (hs->state == ST_A_DECIDE || hs->state == ST_I_ALIVE) return DIST_HS_MORE; /* caller's turn */
  for (;;) {
    /* Collect the length (2 or 4 bytes), then the message; a partial message stays in hs->in. */
    size_t hdr = hs->hdr;
    if (hs->inlen < hdr) {
      size_t take = hdr - hs->inlen < len - off ? hdr - hs->inlen : len - off;
      memcpy(hs->in + hs->inlen, buf + off, take);
      hs->inlen += take, off += take;
      if (hs->inlen < hdr) break;
      size_t mlen = hdr == 4 ? cn_get32(hs->in) : cn_get16(hs->in);
      if (mlen == 0) return *consumed = off, fail(hs, CN_EPROTO, "empty handshake message");
      if (mlen > DIST_HS_MAX_MSG) return *consumed = off, fail(hs, CN_ELIMIT, "handshake message over 2048 bytes");
    }
    size_t want = hdr + (size_t)(hdr == 4 ? cn_get32(hs->in) : cn_get16(hs->in));
    size_t take = want - hs->inlen < len - off ? want - hs->inlen : len - off;
    memcpy(hs->in + hs->inlen, buf + off, take);
    hs->inlen += take, off += take;
    if (hs->inlen < want) break;
    hs->inlen = 0;
    int rc = on_msg(hs, hs->in + hdr, want - hdr);
    /* Stop at any event: the caller must answer NAME/ALIVE first, and bytes after DONE are frames. */
    if (rc != DIST_HS_MORE) return *consumed = off, rc;
    if (off == len) break;
  }
  *consumed = off;
  return DIST_HS_MORE;
}

int dist_hs_accept_status(dist_hs *hs, const char *status) {
  if (hs->state != ST_A_DECIDE) return CN_ESTATE;
  if (!status) return CN_EINVAL;
  bool go = !strcmp(status, "ok") || !strcmp(status, "ok_simultaneous");
  bool stop = !strcmp(status, "nok") || !strcmp(status, "not_allowed");
  bool alive = !strcmp(status, "alive");
  if (!go && !stop && !alive) return CN_EINVAL;
  if (put_status(hs, status) || (go && put_challenge(hs))) return fail(hs, CN_ENOMEM, "out of memory");
  if (stop) {
    fail(hs, CN_EREFUSED,
         !strcmp(status, "nok") ? "we answered nok (simultaneous connect)" : "we answered not_allowed");
    return 0;
  }
  hs->state = alive ? ST_A_ALIVE_REPLY : hs->old_name ? ST_A_COMPLEMENT : ST_A_REPLY;
  return 0;
}

int dist_hs_alive_reply(dist_hs *hs, bool keep) {
  if (hs->state != ST_I_ALIVE) return CN_ESTATE;
  if (put_status(hs, keep ? "true" : "false")) return fail(hs, CN_ENOMEM, "out of memory");
  if (!keep) {
    fail(hs, CN_EREFUSED, "we answered false to status alive");
    return 0;
  }
  hs->state = ST_I_CHALLENGE;
  return 0;
}

int dist_hs_result(const dist_hs *hs) {
  if (hs->state == ST_DONE) return DIST_HS_DONE;
  if (hs->state == ST_FAILED) return hs->err;
  return 0;
}

void dist_hs_free(dist_hs *hs) {
  cn_buf_free(&hs->out);
  if (hs->cookie) {
    /* Wipe through a volatile pointer so the store is not optimised away. */
    volatile char *p = hs->cookie;
    while (*p) *p++ = 0;
    cn_free(hs->cookie);
    hs->cookie = NULL;
  }
}

bool dist_hs_awaiting_ack(const dist_hs *hs) { return hs->role == DIST_HS_INITIATOR && hs->state == ST_I_ACK; }

bool dist_hs_refused_nok(const dist_hs *hs) { return hs->role == DIST_HS_INITIATOR && hs->got_nok; }
