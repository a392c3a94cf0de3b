/* cn_tls.h: TLS distribution options, shaped as OTP's ssl_dist_optfile ([{server, [...]}, {client, [...]}]).
 * Public: cnode.h includes it. The reader of the optfile text is pure (dist/optfile.c); no OpenSSL here. */
#ifndef CN_TLS_H
#define CN_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "cn_base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* verify: unset takes verify_peer when a CA file is given, else verify_none (see README "TLS distribution"). */
typedef enum { CN_TLS_VERIFY_UNSET = 0, CN_TLS_VERIFY_NONE = 1, CN_TLS_VERIFY_PEER = 2 } cn_tls_verify;
/* versions: a set of these; 0 takes what inet_tls_dist of the OTP release the node follows (cn_node_otp_release)
 * does when versions is not given: TLS 1.2 only up to OTP 28, TLS 1.2 and 1.3 from OTP 29 on. */
enum { CN_TLS_V12 = 1, CN_TLS_V13 = 2 };

/* The options of one side: server (connections we accept) or client (connections we make). Every string is
 * owned by the struct (cn_malloc'd) and freed by cn_tls_opts_clear; NULL means not given. */
typedef struct cn_tls_side {
  char *certfile;   /* PEM certificate (chain) */
  char *keyfile;    /* PEM private key; NULL: taken from certfile, as OTP does */
  char *cacertfile; /* PEM CA certificates trusted to sign the peer's certificate */
  char *password;   /* of an encrypted keyfile */
  char *ciphers;    /* OpenSSL names joined by ':' (TLS 1.2 names and TLS_* 1.3 suites); NULL: defaults */
  char *sni;        /* client: server_name_indication host; NULL: the peer node's host part (OTP's default) */
  bool sni_disable; /* client: server_name_indication disable: no SNI and no hostname check */
  cn_tls_verify verify;
  bool fail_if_no_peer_cert; /* server: refuse clients that send no certificate */
  bool has_depth;
  int depth;         /* certificate chain depth when has_depth (OTP's default: 10) */
  unsigned versions; /* CN_TLS_V12 | CN_TLS_V13 */
} cn_tls_side;

typedef struct cn_tls_opts {
  cn_tls_side server;
  cn_tls_side client;
} cn_tls_opts;

/* Parses the text of an ssl_dist_optfile (the same file `erl -ssl_dist_optfile F` reads) into *out, which
 * is zeroed first. Pure: no I/O; text need not be NUL-terminated; inputs over 1 MiB, nested deeper than 32 or
 * with more than 65536 terms are refused. Returns 0 or CN_EDECODE / CN_ELIMIT / CN_EINVAL / CN_ENOMEM with a
 * one-line reason in err (may be NULL); on error *out holds nothing to free. Options cnode does not use
 * (reuse_sessions, secure_renegotiate, ...) are skipped; their names are listed in warn (may be NULL). */
CN_EXPORT int cn_tls_opts_parse(const char *text, size_t len, cn_tls_opts *out, char *err, size_t errlen, char *warn,
                                size_t warnlen);
/* Reads the file at path and parses it as cn_tls_opts_parse does. */
CN_EXPORT int cn_tls_opts_load(const char *path, cn_tls_opts *out, char *err, size_t errlen, char *warn,
                               size_t warnlen);
/* Frees the strings of both sides and zeroes *o. */
CN_EXPORT void cn_tls_opts_clear(cn_tls_opts *o);
/* Replaces *field with a copy of value (NULL clears it); 0 or CN_ENOMEM. For building options in code. */
CN_EXPORT int cn_tls_set(char **field, const char *value);

#ifdef __cplusplus
}
#endif
#endif
