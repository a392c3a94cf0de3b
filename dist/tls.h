/* tls.h: internal header of the TLS transport: an OpenSSL session over BIOs in memory. Ciphertext in
 * gives plaintext out and plaintext in gives ciphertext out; no sockets, no clock, no blocking calls. The
 * libuv glue (cnode/conn_io.c, cnode/conn_setup.c) moves the bytes. */
#ifndef DIST_TLS_H
#define DIST_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cn_base.h"
#include "cn_tls.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dist_tls_ctx dist_tls_ctx; /* certificates, CAs and policy of one side (an SSL_CTX) */
typedef struct dist_tls dist_tls;         /* one connection */

/* Builds the context of one side from its options, reading the certificate, key and CA files now. server:
 * the side that accepts. Returns 0, or CN_EINVAL (unreadable file, key not matching the certificate, bad
 * cipher list, no certificate on a server) / CN_ENOMEM with a one-line reason in err. Free with
 * dist_tls_ctx_free. */
int dist_tls_ctx_new(dist_tls_ctx **out, const cn_tls_side *opts, bool server, char *err, size_t errlen);
void dist_tls_ctx_free(dist_tls_ctx *c);
/* True when this side checks the peer's certificate (verify_peer, or unset with a CA file). */
bool dist_tls_ctx_verifies(const dist_tls_ctx *c);

/* The first OTP release whose inet_tls_dist accepts and offers TLS 1.3 when the optfile names no versions
 * (OTP 25 to 28 add {versions, ['tlsv1.2']}; measured: 25.2 and 27.3 refuse a TLS 1.3 peer, 29.1 takes it). */
#define DIST_TLS13_DEFAULT_OTP 29

/* The TLS versions of a session (CN_TLS_V12 | CN_TLS_V13): those configured (the optfile's versions) when any,
 * else what inet_tls_dist of otp_release uses by default: TLS 1.2, and 1.3 too from DIST_TLS13_DEFAULT_OTP on.
 * Pure. */
unsigned dist_tls_versions(unsigned configured, int otp_release);

/* A new connection on ctx (which must outlive it). peer_host (client only; borrowed for the call): the host
 * part of the peer's node name, sent as SNI and checked against the server's certificate under
 * verify_peer, as inet_tls_dist does; server_name_indication in the options overrides or disables it.
 * otp_release: the release the node follows now, whose defaults apply when the options name no versions
 * (dist_tls_versions; a listener cannot know the connecting peer's release before the handshake).
 * A client queues its ClientHello at the first dist_tls_push or dist_tls_start. Returns 0 or CN_ENOMEM. */
int dist_tls_new(dist_tls **out, dist_tls_ctx *ctx, const char *peer_host, int otp_release);
void dist_tls_free(dist_tls *t);

typedef enum { DIST_TLS_HANDSHAKING = 0, DIST_TLS_UP = 1, DIST_TLS_CLOSED = 2 } dist_tls_state;

/* Client: appends the ClientHello to out. Returns 0 or a CN_E* (reason in dist_tls_reason). */
int dist_tls_start(dist_tls *t, cn_buf *out);
/* Feeds ciphertext from the peer and runs the handshake on it. in is borrowed, not copied: OpenSSL reads it where it
 * is, so it must stay as it is until dist_tls_read has given got 0 (all of it taken) or failed; a push before that
 * copies what is left of the last one first. (dist_tls_feed reads all at once.) Records to send
 * back (handshake, alerts) are appended to out. The plaintext is taken with dist_tls_read. Returns a
 * dist_tls_state (HANDSHAKING, or UP once the handshake is complete) or, sticky, CN_EAUTH (a certificate was
 * refused, by us or by the peer's alert) / CN_EPROTO (anything else: version mismatch, plaintext peer, bad
 * record) / CN_ENOMEM, with the reason in dist_tls_reason. An alert for the peer may be in out even then: send it
 * before closing. */
int dist_tls_push(dist_tls *t, const uint8_t *in, size_t len, cn_buf *out);
/* About how many plaintext bytes dist_tls_read can give from what was pushed, for sizing the caller's window: the
 * ciphertext not yet decrypted plus the undelivered rest of a decrypted record (a record that arrived in parts may
 * give more: OpenSSL holds its earlier parts out of this count). */
size_t dist_tls_readable(const dist_tls *t);
/* Decrypts into the caller's window dst (room bytes, at least 1; what does not fit stays for the next call): *got
 * bytes. Returns DIST_TLS_UP (*got 0: all that was pushed is read), DIST_TLS_CLOSED after the peer's close_notify,
 * CN_ESTATE before the handshake is complete, CN_EINVAL for no room, or a sticky failure as dist_tls_push. Records OpenSSL answers with (a key
 * update) are appended to out. */
int dist_tls_read(dist_tls *t, uint8_t *dst, size_t room, size_t *got, cn_buf *out);
/* dist_tls_push, then every plaintext byte dist_tls_read gives appended to plain. Returns as dist_tls_push, or
 * CLOSED after the peer's close_notify. */
int dist_tls_feed(dist_tls *t, const uint8_t *in, size_t len, cn_buf *plain, cn_buf *out);
/* Encrypts len bytes of plaintext (borrowed) into out. Only once UP. Returns 0 or a CN_E*. */
int dist_tls_write(dist_tls *t, const uint8_t *p, size_t len, cn_buf *out);
/* Returns the session's buffers while it is idle: OpenSSL's record buffers (SSL_free_buffers; taken again at the
 * next record) and the memory BIOs' storage (which only grows: they are replaced by empty ones). Does nothing
 * while ciphertext or plaintext is pending, or before the handshake is complete. */
void dist_tls_idle(dist_tls *t);
/* Appends our close_notify to out (nothing if the handshake never completed). */
void dist_tls_close(dist_tls *t, cn_buf *out);
bool dist_tls_is_up(const dist_tls *t);
/* The reason of the last failure: a static or per-connection text, never NULL. */
const char *dist_tls_reason(const dist_tls *t);
/* One line on an established session for the log: version, cipher and the peer certificate's subject. */
void dist_tls_describe(const dist_tls *t, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
