/* dist.h: internal header of the pure distribution-protocol pieces: flags, the handshake state machine,
 * framing, message headers, fragments and the tick policy. No sockets, clocks or libuv here. */
#ifndef DIST_H
#define DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cn_base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Distribution flags, as in OTP 25's kernel/include/dist.hrl and erts dist.h. */
#define DFLAG_PUBLISHED ((uint64_t)0x1)
#define DFLAG_ATOM_CACHE ((uint64_t)0x2)
#define DFLAG_EXTENDED_REFERENCES ((uint64_t)0x4)
#define DFLAG_DIST_MONITOR ((uint64_t)0x8)
#define DFLAG_FUN_TAGS ((uint64_t)0x10)
#define DFLAG_DIST_MONITOR_NAME ((uint64_t)0x20)
#define DFLAG_HIDDEN_ATOM_CACHE ((uint64_t)0x40)
#define DFLAG_NEW_FUN_TAGS ((uint64_t)0x80)
#define DFLAG_EXTENDED_PIDS_PORTS ((uint64_t)0x100)
#define DFLAG_EXPORT_PTR_TAG ((uint64_t)0x200)
#define DFLAG_BIT_BINARIES ((uint64_t)0x400)
#define DFLAG_NEW_FLOATS ((uint64_t)0x800)
#define DFLAG_UNICODE_IO ((uint64_t)0x1000)
#define DFLAG_DIST_HDR_ATOM_CACHE ((uint64_t)0x2000)
#define DFLAG_SMALL_ATOM_TAGS ((uint64_t)0x4000)
#define DFLAG_UTF8_ATOMS ((uint64_t)0x10000)
#define DFLAG_MAP_TAG ((uint64_t)0x20000)
#define DFLAG_BIG_CREATION ((uint64_t)0x40000)
#define DFLAG_SEND_SENDER ((uint64_t)0x80000)
#define DFLAG_BIG_SEQTRACE_LABELS ((uint64_t)0x100000)
#define DFLAG_EXIT_PAYLOAD ((uint64_t)0x400000)
#define DFLAG_FRAGMENTS ((uint64_t)0x800000)
#define DFLAG_HANDSHAKE_23 ((uint64_t)0x1000000)
#define DFLAG_UNLINK_ID ((uint64_t)0x2000000)
/* The erts-13.1.5 protocol page says (1 bsl 36); OTP 25's dist.hrl, erts dist.h and the wire say 1 bsl 26. */
#define DFLAG_MANDATORY_25_DIGEST ((uint64_t)0x4000000)
#define DFLAG_RESERVED ((uint64_t)0xf8000000)
#define DFLAG_SPAWN ((uint64_t)1 << 32)
#define DFLAG_NAME_ME ((uint64_t)1 << 33)
#define DFLAG_V4_NC ((uint64_t)1 << 34)
#define DFLAG_ALIAS ((uint64_t)1 << 35)
/* OTP 28: ALTACT_SIG_SEND (op 37) for alias sends, priority messages and exits to aliases. */
#define DFLAG_ALTACT_SIG ((uint64_t)1 << 37)
/* OTP 29: native records in the external format; not announced (term/ has no such type). */
#define DFLAG_NATIVE_RECORDS ((uint64_t)1 << 38)

/* What an OTP 25 node refuses to connect without; MANDATORY_25_DIGEST stands for all of these. OTP 26 to 29 add
 * V4_NC and UNLINK_ID (their DFLAGS_MANDATORY), which DIST_FLAGS_DEFAULT announces too. */
#define DIST_FLAGS_MANDATORY_25                                                                                        \
  (DFLAG_EXTENDED_REFERENCES | DFLAG_FUN_TAGS | DFLAG_EXTENDED_PIDS_PORTS | DFLAG_NEW_FUN_TAGS |                       \
   DFLAG_EXPORT_PTR_TAG | DFLAG_BIT_BINARIES | DFLAG_NEW_FLOATS | DFLAG_UTF8_ATOMS | DFLAG_MAP_TAG |                   \
   DFLAG_BIG_CREATION | DFLAG_HANDSHAKE_23)

/* What cnode announces as a visible node. No atom cache (we never offer it, so headers carry 0 refs), no
 * NAME_ME (our name is static), no UNICODE_IO (we are no I/O server). */
#define DIST_FLAGS_DEFAULT                                                                                             \
  (DFLAG_PUBLISHED | DIST_FLAGS_MANDATORY_25 | DFLAG_MANDATORY_25_DIGEST | DFLAG_DIST_MONITOR |                        \
   DFLAG_DIST_MONITOR_NAME | DFLAG_SMALL_ATOM_TAGS | DFLAG_SEND_SENDER | DFLAG_BIG_SEQTRACE_LABELS |                   \
   DFLAG_EXIT_PAYLOAD | DFLAG_FRAGMENTS | DFLAG_UNLINK_ID | DFLAG_SPAWN | DFLAG_V4_NC | DFLAG_ALIAS |                  \
   DFLAG_ALTACT_SIG)

/* Returns flags with MANDATORY_25_DIGEST expanded into the set it stands for (as OTP does on receipt). */
uint64_t dist_flags_expand(uint64_t flags);

/* ---- Handshake ---------------------------------------------------------------------------------------- */

#define DIST_NAME_MAX (255 * 4) /* longest node name in bytes: an atom, 255 characters of up to 4 UTF-8 bytes */
#define DIST_HS_MAX_MSG 2048    /* largest handshake message we take: a name and 21 bytes of fields */

typedef enum { DIST_HS_INITIATOR, DIST_HS_ACCEPTOR } dist_hs_role;
typedef enum { DIST_HS_MORE = 0, DIST_HS_NAME = 1, DIST_HS_ALIVE = 2, DIST_HS_DONE = 3 } dist_hs_event;

typedef struct dist_hs_cfg {
  dist_hs_role role;
  const char *name;        /* our full node name, e.g. "cnode@127.0.0.1"; borrowed during init only */
  const char *cookie;      /* borrowed during init only (copied) */
  uint64_t flags;          /* our flags */
  uint32_t creation;       /* our creation */
  uint32_t challenge;      /* our challenge, drawn by the caller from RAND_bytes */
  int peer_version;        /* initiator: 6 sends 'N', 5 sends the old 'n' (then 'c' after an 'N' challenge) */
  uint64_t required_flags; /* the peer must have all of these (after MANDATORY_25_DIGEST expansion) */
  const char *peer_name;   /* initiator: the node we expect, or NULL; borrowed during init only */
  bool len4;               /* 4-byte message lengths, as inet_tls_dist's {packet, 4} (TCP: 2 bytes) */
} dist_hs_cfg;

typedef struct dist_hs {
  /* public, read by the caller */
  cn_buf out;                        /* bytes to send; the caller sends and cn_buf_consume()s them */
  char peer_name[DIST_NAME_MAX + 1]; /* set from the peer's name (acceptor) or challenge (initiator) */
  uint64_t peer_flags;               /* the peer's flags, MANDATORY_25_DIGEST expanded */
  uint64_t flags;                    /* negotiated: our flags & peer_flags (valid at DONE) */
  uint32_t peer_creation;            /* 0 when the peer never told (old 'n' challenge) */
  const char *reason;                /* static text on the last error or refusal, or NULL */
  /* private */
  int state, err;
  dist_hs_role role;
  uint8_t hdr;   /* bytes of a message length: 2, or 4 over TLS */
  bool got_nok;  /* initiator: the peer answered nok */
  bool old_name; /* initiator: we sent 'n'; acceptor: the peer sent 'n' */
  uint64_t my_flags, required;
  uint32_t my_creation, my_challenge;
  char my_name[DIST_NAME_MAX + 1];
  char expect[DIST_NAME_MAX + 1]; /* initiator: expected peer name, "" for any */
  char *cookie;                   /* our copy; wiped and freed by dist_hs_free */
  size_t inlen;                   /* bytes of the message being received, length prefix included */
  uint8_t in[4 + DIST_HS_MAX_MSG];
} dist_hs;

/* Starts a handshake; an initiator queues send_name in hs->out. Copies what it needs from cfg. Returns 0,
 * CN_EINVAL (bad name, version or role) or CN_ENOMEM; on error nothing needs freeing. */
int dist_hs_init(dist_hs *hs, const dist_hs_cfg *cfg);
/* Feeds received bytes (buf borrowed for the call). *consumed = bytes taken (a partial message is kept
 * inside, so the caller keeps only buf[*consumed..]). Returns a dist_hs_event or a CN_E*: CN_EAUTH wrong
 * digest, CN_EREFUSED refusal, CN_EFLAGS missing flags, CN_EPROTO bad message, CN_ELIMIT oversized message,
 * CN_EUNSUPPORTED NAME_ME peer, CN_ESTATE after DONE. Errors are sticky. While an event awaits the caller's
 * answer (dist_hs_accept_status, dist_hs_alive_reply), feed takes nothing and returns DIST_HS_MORE.
 * After DONE, buf[*consumed..] are distribution frames. An acceptor refusing on flags leaves a
 * not_allowed status in hs->out, which the caller may flush before closing. */
int dist_hs_feed(dist_hs *hs, const uint8_t *buf, size_t len, size_t *consumed);
/* Acceptor, after DIST_HS_NAME: "ok"/"ok_simultaneous" queue the status and our challenge; "nok"/
 * "not_allowed" queue the status and end the handshake (feed then returns CN_EREFUSED); "alive" queues it
 * and waits for the initiator's "true"/"false". Returns 0, CN_ESTATE (not awaiting a status), CN_EINVAL. */
int dist_hs_accept_status(dist_hs *hs, const char *status);
/* Initiator, after DIST_HS_ALIVE: keep sends "true" and continues; !keep sends "false" and ends the
 * handshake (feed then returns CN_EREFUSED). Returns 0, CN_ESTATE or CN_ENOMEM. */
int dist_hs_alive_reply(dist_hs *hs, bool keep);
/* Where the handshake stands: 0 in progress, DIST_HS_DONE, or the terminal CN_E* (CN_EREFUSED after a
 * refusal we sent or received). */
int dist_hs_result(const dist_hs *hs);
/* Releases hs->out and the cookie copy (wiped). Safe on a zeroed or failed-init hs. */
void dist_hs_free(dist_hs *hs);
/* Initiator: true while our challenge reply is sent and the peer's ack has not come. A peer that closes
 * then has refused our digest (OTP closes without a word on a cookie mismatch). */
bool dist_hs_awaiting_ack(const dist_hs *hs);
/* Initiator: true when the handshake ended because the peer answered nok (its own connection wins). */
bool dist_hs_refused_nok(const dist_hs *hs);
/* MD5(cookie ++ decimal(challenge)), as OTP's gen_digest. */
void dist_digest(const char *cookie, uint32_t challenge, uint8_t out[16]);

/* ---- MD5, RFC 1321 (md5.c) -------------------------------------------------------------------------- */

typedef struct dist_md5 {
  uint32_t h[4];
  uint64_t len; /* bytes so far */
  uint8_t buf[64];
} dist_md5;
/* Starts a digest. */
void dist_md5_init(dist_md5 *m);
/* Adds n bytes. */
void dist_md5_update(dist_md5 *m, const void *data, size_t n);
/* Writes the 16-byte digest; m must be initialised again before reuse. */
void dist_md5_final(dist_md5 *m, uint8_t out[16]);

/* ---- Framing and message headers (frame.c) ---------------------------------------------------------- */

/* Parses one 4-byte-length frame at buf: returns the bytes consumed (> 0), 0 when more bytes are needed,
 * CN_ELIMIT when the length exceeds max. *data and *dlen point into buf; dlen == 0 is a tick. */
ssize_t dist_frame_parse(const uint8_t *buf, size_t len, size_t max, const uint8_t **data, size_t *dlen);

typedef enum { DIST_MSG_PASS = 1, DIST_MSG_NORMAL = 2, DIST_MSG_FRAG_HDR = 3, DIST_MSG_FRAG_CONT = 4 } dist_msg_kind;
typedef struct dist_msg_hdr {
  dist_msg_kind kind;
  uint64_t seq;     /* fragments only */
  uint64_t frag_id; /* fragments only: counts down to 1, never 0 */
  size_t body_off;  /* where the body starts in data */
  bool versioned;   /* PASS: each body term carries its own 131 byte */
} dist_msg_hdr;

/* Parses a non-empty frame's header (112, 131 68, 131 69, 131 70). Returns 0, CN_EUNSUPPORTED when atom
 * cache refs are present (we never offer the cache), CN_EDECODE when malformed or truncated. */
int dist_msg_hdr_parse(const uint8_t *data, size_t len, dist_msg_hdr *out);

typedef struct dist_frags dist_frags;
/* Creates a reassembler: open sequences hold at most max_total_bytes together, and at most max_sequences
 * are open at once. Returns 0 or CN_ENOMEM / CN_EINVAL; free with dist_frags_free. */
int dist_frags_new(dist_frags **out, size_t max_total_bytes, size_t max_sequences);
/* Adds one FRAG_HDR/FRAG_CONT body (borrowed). Returns 1 with the whole body (control+payload, no 131) in
 * *done (the caller owns it, cn_buf_free), 0 when more fragments are needed, or CN_EPROTO (unknown seq, bad
 * order, duplicate header), CN_ELIMIT (too many sequences, over max bytes), CN_EINVAL, CN_ENOMEM; an error
 * drops that sequence. */
int dist_frags_add(dist_frags *f, const dist_msg_hdr *h, const uint8_t *body, size_t blen, cn_buf *done);
/* As dist_frags_add without copies: 2 when the message is whole in this one fragment (body itself is it), 1 with
 * the whole body in the chunk *done (its first *done_len bytes; one reference, for the caller to give back with
 * dist_frags_recycle, or release), 0 when more fragments are needed, or an error as dist_frags_add. */
int dist_frags_take(dist_frags *f, const dist_msg_hdr *h, const uint8_t *body, size_t blen, cn_chunk **done,
                    size_t *done_len);
/* Takes back a finished body's chunk, for a later message once nothing decoded from it holds it. NULL is ignored. */
void dist_frags_recycle(dist_frags *f, cn_chunk *k);
/* Lets go of the kept chunk (an idle connection returns its memory). */
void dist_frags_idle(dist_frags *f);
/* Number of sequences in progress (for tests and stats). */
size_t dist_frags_open(const dist_frags *f);
/* Frees f and every sequence still open; NULL is fine. */
void dist_frags_free(dist_frags *f);

/* Appends a frame start (4-byte length placeholder + 131,68,0) to out; returns its offset, or SIZE_MAX on
 * ENOMEM. The caller then appends the control term and payload without their 131 bytes. */
size_t dist_msg_begin(cn_buf *out);
/* Finishes the frame begun at start: patches the length or, when frag_size > 0 and the body is larger,
 * rewrites out[start..] as 131,69 + 131,70 frames of at most frag_size body bytes each, sequence seq,
 * fragment ids counting down to 1. Returns 0, CN_ENOMEM or CN_ELIMIT (frame over 4 GiB); on error out is
 * cut back to start (the message is dropped). */
int dist_msg_end(cn_buf *out, size_t start, uint64_t seq, size_t frag_size);

/* ---- Ticks (tick.c) ------------------------------------------------------------------------------------ */

typedef struct dist_tick {
  uint32_t interval_ms; /* ticktime / 4 */
  uint64_t last_fire_ms;
  uint64_t sent, sent_seen; /* sends reported, and the count a fire expects if nothing else was sent */
  bool recv;                /* bytes arrived since the last fire */
  unsigned silent;          /* consecutive fires with nothing received */
} dist_tick;
typedef enum { DIST_TICK_NONE = 0, DIST_TICK_SEND = 1, DIST_TICK_TIMEOUT = 2 } dist_tick_action;

/* Starts the policy for a connection that just came up (net_ticktime in ms). */
void dist_tick_init(dist_tick *t, uint32_t ticktime_ms, uint64_t now_ms);
/* Reports received bytes (ticks included). */
void dist_tick_recv(dist_tick *t);
/* Reports one write, including the ticks fire asked for (those do not delay the next tick, as in OTP). */
void dist_tick_sent(dist_tick *t);
/* Called every dist_tick_interval_ms: SEND when nothing was written since the last fire, TIMEOUT after 4
 * fires in a row with nothing received. A call less than half an interval after the last one is ignored. */
dist_tick_action dist_tick_fire(dist_tick *t, uint64_t now_ms);
/* The period to call dist_tick_fire at: ticktime / 4, at least 1 ms. */
uint32_t dist_tick_interval_ms(const dist_tick *t);

#ifdef __cplusplus
}
#endif
#endif
