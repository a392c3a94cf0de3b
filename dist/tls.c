/* tls.c: the TLS transport as inet_tls_dist speaks it, on OpenSSL 3 through BIOs in memory (ciphertext read where
 * the caller has it, written to a memory BIO): contexts built from
 * ssl_dist_optfile options, sessions fed ciphertext and plaintext, and a plain-words reason for each refusal. */
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tls.h"

#define WRITE_CHUNK ((size_t)256 << 10) /* plaintext per SSL_write, so the memory BIO stays small */
/* Traffic that is more than ticks: a push of more ciphertext than two tick records (a tick is 4 bytes of plaintext, 26
 * to 33 bytes as a record), a write of more than a tick. The setup runs lean (its records are few); from the
 * BUSY_OPS-th such push or write since the session went idle (a few are last replies: the handshake's challenge ack is
 * written just after the connection idles as it comes up, a C peer asks rex for the OTP release) a session keeps its record buffers between records until dist_tls_idle, instead of returning them
 * after each (SSL_MODE_RELEASE_BUFFERS): measured, the malloc and free of ~17 KiB per record cost 3% of a
 * ping-pong's instructions. */
#define TICKS_PUSH 66
#define TICKS_WRITE 4
#define BUSY_OPS 8

struct dist_tls_ctx {
  SSL_CTX *ssl;
  bool server;
  bool verify;
  bool sni_disable;
  char *sni;
  char *password;
  unsigned versions; /* as configured: 0 follows the release given to each session (dist_tls_versions) */
};

struct dist_tls {
  dist_tls_ctx *ctx;
  SSL *ssl;
  BIO *rb, *wb;       /* owned by ssl: rb reads src (src_read), wb is a memory BIO */
  const uint8_t *src; /* ciphertext pushed and not yet taken by OpenSSL: the caller's (borrowed) or hold's */
  size_t src_len;
  cn_buf hold; /* what a read left of a push when the next push came, and that push */
  bool up, got_bytes;
  bool lean;     /* SSL_MODE_RELEASE_BUFFERS on: record buffers returned after each record (until more than ticks) */
  unsigned busy; /* pushes and writes of more than ticks since the session went lean */
  bool idled;    /* dist_tls_idle was called: the setup is over (lean throughout it) */
  int err;       /* sticky failure */
  int verr;      /* first certificate verification error we found, X509_V_ERR_* */
  char vsubject[160]; /* the peer's own certificate */
  char vfailed[160];  /* the certificate the error is about, when another one of the chain */
  char vdate[48];
  unsigned versions; /* the versions this session accepts: CN_TLS_V12 | CN_TLS_V13 */
  char *host;        /* the name checked in the server's certificate, NULL for none (a host part may be 1 KiB) */
  bool host_ip;      /* host is an IP address: checked by verify_cb, see ip_host_ok */
  char reason[512];
};

static void set_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b) {
  if (!err || !errlen) return;
  snprintf(err, errlen, fmt, a, b ? b : "");
}

/* The text of the innermost OpenSSL error (cleared afterwards), for configuration errors. */
static const char *ossl_text(char *buf, size_t len) {
  unsigned long e = ERR_peek_last_error();
  if (!e) snprintf(buf, len, "unknown error");
  else ERR_error_string_n(e, buf, len);
  ERR_clear_error();
  return buf;
}

static bool is_ip(const char *s) {
  unsigned char b[16];
  return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

/* A server whose node name's host is an IP address: OTP 27 and later look for that address in the certificate's
 * iPAddress names, OTP 25 and 26 for the same text among its dNSName names (so certificates for OTP clusters
 * carry both, IP:::1 and DNS:::1). Either one is accepted here, so the node works with certificates made for
 * any of those releases. */
static bool ip_host_ok(X509 *leaf, const char *host) {
  return X509_check_ip_asc(leaf, host, 0) == 1 ||
         X509_check_host(leaf, host, 0, X509_CHECK_FLAG_NO_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, NULL) == 1;
}

static int verify_cb(int ok, X509_STORE_CTX *x) {
  SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
  dist_tls *t = ssl ? SSL_get_app_data(ssl) : NULL;
  if (ok && t && t->host_ip && X509_STORE_CTX_get_error_depth(x) == 0) {
    X509 *leaf = X509_STORE_CTX_get0_cert(x);
    if (leaf && ip_host_ok(leaf, t->host)) return ok;
    X509_STORE_CTX_set_error(x, X509_V_ERR_IP_ADDRESS_MISMATCH);
    ok = 0;
  }
  if (ok) return ok;
  if (t && !t->verr) {
    t->verr = X509_STORE_CTX_get_error(x);
    X509 *c = X509_STORE_CTX_get_current_cert(x);
    X509 *leaf = X509_STORE_CTX_get0_cert(x);
    if (leaf) X509_NAME_oneline(X509_get_subject_name(leaf), t->vsubject, sizeof t->vsubject);
    if (c && c != leaf) X509_NAME_oneline(X509_get_subject_name(c), t->vfailed, sizeof t->vfailed);
    if (c) {
      BIO *m = BIO_new(BIO_s_mem());
      if (m) {
        const ASN1_TIME *at = t->verr == X509_V_ERR_CERT_NOT_YET_VALID ? X509_get0_notBefore(c) : X509_get0_notAfter(c);
        if (ASN1_TIME_print(m, at) > 0) {
          int n = BIO_read(m, t->vdate, sizeof t->vdate - 1);
          t->vdate[n > 0 ? n : 0] = 0;
        }
        BIO_free(m);
      }
    }
  }
  return 0; /* the failure stands; what it was is kept above for the log */
}

static int pass_cb(char *buf, int size, int rw, void *u) {
  (void)rw;
  const char *p = u;
  if (!p) return 0;
  int n = (int)strlen(p);
  if (n > size) n = size;
  memcpy(buf, p, (size_t)n);
  return n;
}

/* Routes OpenSSL cipher names: TLS_* are TLS 1.3 suites, the rest TLS 1.2 cipher-list entries. */
static int set_ciphers(SSL_CTX *ctx, const char *list, char *err, size_t errlen) {
  size_t n = strlen(list);
  char *v12 = cn_calloc(1, n + 1), *v13 = cn_calloc(1, n + 1), *tmp = cn_strndup(list, n);
  int rc = CN_ENOMEM;
  if (!v12 || !v13 || !tmp) goto out;
  char *save = NULL;
  for (char *tok = strtok_r(tmp, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
    char *dst = !strncmp(tok, "TLS_", 4) ? v13 : v12;
    if (*dst) strcat(dst, ":");
    strcat(dst, tok);
  }
  char eb[256];
  rc = CN_EINVAL;
  if (*v12 && SSL_CTX_set_cipher_list(ctx, v12) != 1) {
    set_err(err, errlen, "ciphers: none of \"%s\" is known to OpenSSL (%s)", v12, ossl_text(eb, sizeof eb));
    goto out;
  }
  if (*v13 && SSL_CTX_set_ciphersuites(ctx, v13) != 1) {
    set_err(err, errlen, "ciphers: bad TLS 1.3 suites \"%s\" (%s)", v13, ossl_text(eb, sizeof eb));
    goto out;
  }
  rc = 0;
out:
  cn_free(v12);
  cn_free(v13);
  cn_free(tmp);
  return rc;
}

void dist_tls_ctx_free(dist_tls_ctx *c) {
  if (!c) return;
  SSL_CTX_free(c->ssl);
  cn_free(c->sni);
  if (c->password) {
    volatile char *p = c->password;
    while (*p) *p++ = 0;
    cn_free(c->password);
  }
  cn_free(c);
}

bool dist_tls_ctx_verifies(const dist_tls_ctx *c) { return c->verify; }

int dist_tls_ctx_new(dist_tls_ctx **out, const cn_tls_side *o, bool server, char *err, size_t errlen) {
  *out = NULL;
  const char *side = server ? "server" : "client";
  char eb[256];
  if (o->verify == CN_TLS_VERIFY_PEER && !o->cacertfile) {
    set_err(err, errlen, "%s: verify_peer needs a cacertfile%s", side, NULL);
    return CN_EINVAL;
  }
  if (server && !o->certfile) {
    set_err(err, errlen, "%s: a certfile is required to accept TLS connections%s", side, NULL);
    return CN_EINVAL;
  }
  if (o->keyfile && !o->certfile) {
    set_err(err, errlen, "%s: keyfile given without a certfile%s", side, NULL);
    return CN_EINVAL;
  }
  dist_tls_ctx *c = cn_calloc(1, sizeof *c);
  if (!c) return CN_ENOMEM;
  c->server = server;
  c->verify = o->verify == CN_TLS_VERIFY_PEER || (o->verify == CN_TLS_VERIFY_UNSET && o->cacertfile);
  if (server && o->fail_if_no_peer_cert && !c->verify) {
    /* OTP refuses this combination too ({options, incompatible, ...}). */
    set_err(err, errlen, "%s: fail_if_no_peer_cert needs verify_peer%s", side, NULL);
    dist_tls_ctx_free(c);
    return CN_EINVAL;
  }
  c->sni_disable = o->sni_disable;
  c->versions = o->versions;
  if ((o->sni && !(c->sni = cn_strndup(o->sni, strlen(o->sni)))) ||
      (o->password && !(c->password = cn_strndup(o->password, strlen(o->password)))) ||
      !(c->ssl = SSL_CTX_new(TLS_method()))) {
    dist_tls_ctx_free(c);
    return CN_ENOMEM;
  }
  SSL_CTX *x = c->ssl;
  int rc = CN_EINVAL;
  /* The versions are set per session (dist_tls_new): the default follows the release the node follows then. */
  SSL_CTX_set_options(x, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  if (server) {
    /* Distribution connections are long-lived: no session tickets or cache (OTP's default is the same). */
    SSL_CTX_set_num_tickets(x, 0);
    SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_OFF);
  }
  if (c->password) {
    SSL_CTX_set_default_passwd_cb(x, pass_cb);
    SSL_CTX_set_default_passwd_cb_userdata(x, c->password);
  }
  if (o->certfile) {
    if (SSL_CTX_use_certificate_chain_file(x, o->certfile) != 1) {
      set_err(err, errlen, "cannot use certfile %s: %s", o->certfile, ossl_text(eb, sizeof eb));
      goto fail;
    }
    const char *key = o->keyfile ? o->keyfile : o->certfile;
    if (SSL_CTX_use_PrivateKey_file(x, key, SSL_FILETYPE_PEM) != 1) {
      set_err(err, errlen, "cannot use keyfile %s: %s", key, ossl_text(eb, sizeof eb));
      goto fail;
    }
    if (SSL_CTX_check_private_key(x) != 1) {
      set_err(err, errlen, "keyfile %s does not match certfile %s", key, o->certfile);
      ERR_clear_error();
      goto fail;
    }
  }
  if (o->cacertfile && SSL_CTX_load_verify_locations(x, o->cacertfile, NULL) != 1) {
    set_err(err, errlen, "cannot use cacertfile %s: %s", o->cacertfile, ossl_text(eb, sizeof eb));
    goto fail;
  }
  int mode = SSL_VERIFY_NONE;
  if (c->verify) mode = SSL_VERIFY_PEER | (server && o->fail_if_no_peer_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
  SSL_CTX_set_verify(x, mode, verify_cb);
  SSL_CTX_set_verify_depth(x, o->has_depth ? o->depth : 10); /* OTP's default depth */
  if (o->ciphers && *o->ciphers && (rc = set_ciphers(x, o->ciphers, err, errlen))) goto fail;
  *out = c;
  return 0;
fail:
  dist_tls_ctx_free(c);
  return rc ? rc : CN_EINVAL;
}

/* ---- The read BIO ------------------------------------------------------------------------------------------- */

/* OpenSSL reads the ciphertext where dist_tls_push's caller has it (t->src) instead of from a copy in a memory BIO
 * (a copy, and the BIO zeroing its growth: measured ~20% of a 64 KiB TLS receive). Empty: "retry later". */
static int src_read(BIO *b, char *out, size_t len, size_t *got) {
  dist_tls *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (!t->src_len) {
    BIO_set_retry_read(b);
    *got = 0;
    return 0;
  }
  size_t n = len < t->src_len ? len : t->src_len;
  memcpy(out, t->src, n);
  t->src += n;
  t->src_len -= n;
  *got = n;
  return 1;
}

static long src_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)num;
  (void)ptr;
  dist_tls *t = BIO_get_data(b);
  switch (cmd) {
  case BIO_CTRL_PENDING: return t ? (long)(t->src_len > LONG_MAX ? LONG_MAX : t->src_len) : 0;
  case BIO_CTRL_FLUSH: return 1;
  default: return 0;
  }
}

static int src_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static BIO_METHOD *src_method;
static CRYPTO_ONCE src_once = CRYPTO_ONCE_STATIC_INIT;
static void src_method_init(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "cnode ciphertext source");
  if (m && BIO_meth_set_read_ex(m, src_read) && BIO_meth_set_ctrl(m, src_ctrl) && BIO_meth_set_create(m, src_create))
    src_method = m; /* kept for the life of the process */
  else BIO_meth_free(m);
}

/* A BIO reading t->src, or NULL. */
static BIO *src_bio(dist_tls *t) {
  if (!CRYPTO_THREAD_run_once(&src_once, src_method_init) || !src_method) return NULL;
  BIO *b = BIO_new(src_method);
  if (b) BIO_set_data(b, t);
  return b;
}

/* ---- Sessions ------------------------------------------------------------------------------------------ */

unsigned dist_tls_versions(unsigned configured, int otp_release) {
  unsigned known = configured & (CN_TLS_V12 | CN_TLS_V13);
  if (known) return known;
  return CN_TLS_V12 | (otp_release >= DIST_TLS13_DEFAULT_OTP ? CN_TLS_V13 : 0);
}

int dist_tls_new(dist_tls **out, dist_tls_ctx *ctx, const char *peer_host, int otp_release) {
  *out = NULL;
  dist_tls *t = cn_calloc(1, sizeof *t);
  if (!t) return CN_ENOMEM;
  t->ctx = ctx;
  t->versions = dist_tls_versions(ctx->versions, otp_release);
  t->ssl = SSL_new(ctx->ssl);
  t->rb = src_bio(t);
  t->wb = BIO_new(BIO_s_mem());
  if (!t->ssl || !t->rb || !t->wb ||
      SSL_set_min_proto_version(t->ssl, t->versions & CN_TLS_V12 ? TLS1_2_VERSION : TLS1_3_VERSION) != 1 ||
      SSL_set_max_proto_version(t->ssl, t->versions & CN_TLS_V13 ? TLS1_3_VERSION : TLS1_2_VERSION) != 1) {
    BIO_free(t->rb);
    BIO_free(t->wb);
    SSL_free(t->ssl);
    cn_free(t);
    ERR_clear_error();
    return CN_ENOMEM;
  }
  SSL_set_bio(t->ssl, t->rb, t->wb);
  SSL_set_mode(t->ssl, SSL_MODE_RELEASE_BUFFERS);
  t->lean = true;
  SSL_set_app_data(t->ssl, t);
  if (ctx->server) {
    SSL_set_accept_state(t->ssl);
  } else {
    SSL_set_connect_state(t->ssl);
    /* inet_tls_dist connects with {server_name_indication, Host} (the peer node's host part) before the
     * optfile's options, so the optfile may replace or disable it; under verify_peer OTP's ssl then checks
     * that name in the server's certificate (DNS names compared exactly, no wildcards). */
    const char *name = ctx->sni_disable ? NULL : ctx->sni ? ctx->sni : peer_host;
    if (name && *name) {
      bool ip = is_ip(name);
      /* RFC 6066: no IP literals in SNI. A name SNI cannot carry (over 255 bytes) goes without it; the check
       * below still applies, so a long name never turns verification off. */
      if (!ip) SSL_set_tlsext_host_name(t->ssl, name);
      if (ctx->verify) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
        X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_WILDCARDS);
        t->host_ip = ip;
        if (!(t->host = cn_strndup(name, strlen(name))) || (!ip && X509_VERIFY_PARAM_set1_host(vp, name, 0) != 1)) {
          dist_tls_free(t);
          ERR_clear_error();
          return CN_ENOMEM;
        }
      }
    }
  }
  ERR_clear_error();
  *out = t;
  return 0;
}

void dist_tls_free(dist_tls *t) {
  if (!t) return;
  SSL_free(t->ssl); /* frees both BIOs */
  cn_buf_free(&t->hold);
  cn_free(t->host);
  cn_free(t);
}

bool dist_tls_is_up(const dist_tls *t) { return t->up; }

const char *dist_tls_reason(const dist_tls *t) { return t->reason[0] ? t->reason : "no error"; }

/* Moves what OpenSSL wrote into the memory BIO to out. */
static int drain(dist_tls *t, cn_buf *out) {
  size_t pend;
  while ((pend = BIO_ctrl_pending(t->wb)) > 0) {
    if (cn_buf_reserve(out, pend)) return CN_ENOMEM;
    int n = BIO_read(t->wb, out->data + out->len, (int)(pend > INT_MAX ? INT_MAX : pend));
    if (n <= 0) break;
    out->len += (size_t)n;
  }
  return 0;
}

static int fail(dist_tls *t, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(dist_tls *t, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->reason, sizeof t->reason, fmt, ap);
  va_end(ap);
  t->err = rc;
  ERR_clear_error();
  return rc;
}

static const char *versions_text(unsigned v) {
  return v == (CN_TLS_V12 | CN_TLS_V13) ? "TLS 1.2 and 1.3" : v & CN_TLS_V13 ? "TLS 1.3 only" : "TLS 1.2 only";
}

/* Our own verification refused the peer's certificate. */
static int fail_verify(dist_tls *t) {
  const char *who = t->ctx->server ? "the client's" : "the server's";
  char subj[400];
  snprintf(subj, sizeof subj, "%s%s%s%s", t->vsubject[0] ? t->vsubject : "?", t->vfailed[0] ? " (chain up to " : "",
           t->vfailed, t->vfailed[0] ? ")" : "");
  switch (t->verr) {
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
  case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
  case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
  case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
  case X509_V_ERR_CERT_UNTRUSTED:
    return fail(t, CN_EAUTH, "unknown CA: %s certificate %s is not signed by a CA in our cacertfile", who, subj);
  case X509_V_ERR_CERT_HAS_EXPIRED:
    return fail(t, CN_EAUTH, "expired certificate: %s certificate %s expired on %s", who, subj, t->vdate);
  case X509_V_ERR_CERT_NOT_YET_VALID:
    return fail(t, CN_EAUTH, "certificate not yet valid: %s certificate %s is valid from %s", who, subj, t->vdate);
  case X509_V_ERR_HOSTNAME_MISMATCH:
  case X509_V_ERR_IP_ADDRESS_MISMATCH:
    return fail(t, CN_EAUTH,
                "hostname mismatch: %s certificate %s has no subjectAltName %s%s%s%s (the peer's host, "
                "checked as OTP does; set server_name_indication to change or disable the check)",
                who, subj, t->host_ip ? "IP:" : "", t->host_ip ? t->host : "",
                t->host_ip ? " or DNS:" : "DNS:", t->host ? t->host : "?");
  case X509_V_ERR_CERT_CHAIN_TOO_LONG:
    return fail(t, CN_EAUTH, "certificate chain of %s is longer than the configured depth", subj);
  default:
    return fail(t, CN_EAUTH, "certificate refused: %s (%s certificate %s)", X509_verify_cert_error_string(t->verr), who,
                subj);
  }
}

/* The peer refused us with an alert. */
static int fail_alert(dist_tls *t, int alert) {
  const char *ours = t->ctx->server ? "the client" : "the server";
  switch (alert) {
  case SSL_AD_UNKNOWN_CA:
    return fail(t, CN_EAUTH,
                "%s refused our certificate: unknown CA (alert unknown_ca: our certificate is not "
                "signed by a CA in its cacertfile)",
                ours);
  case SSL_AD_CERTIFICATE_EXPIRED:
    return fail(t, CN_EAUTH, "%s refused our certificate: expired certificate (alert certificate_expired)", ours);
  case SSL_AD_CERTIFICATE_REQUIRED:
    return fail(t, CN_EAUTH, "no client certificate: %s requires one (alert certificate_required)", ours);
  case SSL_AD_BAD_CERTIFICATE:
  case SSL_AD_UNSUPPORTED_CERTIFICATE:
  case SSL_AD_CERTIFICATE_REVOKED:
  case SSL_AD_CERTIFICATE_UNKNOWN:
  case SSL_AD_ACCESS_DENIED:
    return fail(t, CN_EAUTH, "%s refused our certificate (alert %s)", ours, SSL_alert_desc_string_long(alert));
  case SSL_AD_PROTOCOL_VERSION:
    return fail(t, CN_EPROTO,
                "protocol version mismatch: %s accepts none of our versions (%s; alert "
                "protocol_version)",
                ours, versions_text(t->versions));
  case SSL_AD_HANDSHAKE_FAILURE:
    return fail(t, CN_EPROTO, "%s aborted the handshake (alert handshake_failure: %s)", ours,
                t->ctx->server ? "no cipher or version in common"
                               : "it requires a client certificate we did not send, or no cipher in common");
  default: return fail(t, CN_EPROTO, "TLS alert from %s: %s", ours, SSL_alert_desc_string_long(alert));
  }
}

/* Turns a failed SSL_* call into a reason. */
static int fail_ssl(dist_tls *t, int sslerr) {
  unsigned long e = 0, x;
  while ((x = ERR_get_error())) {
    if (!e) e = x; /* the first queued error is the root cause */
  }
  if (sslerr == SSL_ERROR_SYSCALL && !e) return fail(t, CN_EPROTO, "TLS stream ended unexpectedly");
  if (!e) return fail(t, CN_EPROTO, "TLS error %d", sslerr);
  int r = ERR_GET_REASON(e);
  if (t->verr && (r == SSL_R_CERTIFICATE_VERIFY_FAILED || SSL_get_verify_result(t->ssl) != X509_V_OK))
    return fail_verify(t);
  if (r >= SSL_AD_REASON_OFFSET && r < SSL_AD_REASON_OFFSET + 256) return fail_alert(t, r - SSL_AD_REASON_OFFSET);
  switch (r) {
  case SSL_R_UNSUPPORTED_PROTOCOL:
  case SSL_R_NO_PROTOCOLS_AVAILABLE:
  case SSL_R_WRONG_SSL_VERSION:
  case SSL_R_VERSION_TOO_LOW:
  case SSL_R_VERSION_TOO_HIGH:
    return fail(t, CN_EPROTO, "protocol version mismatch: the peer offers no version we accept (%s)",
                versions_text(t->versions));
  case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    return fail(t, CN_EAUTH, "no client certificate: the client sent none and fail_if_no_peer_cert is set");
  case SSL_R_WRONG_VERSION_NUMBER:
  case SSL_R_HTTP_REQUEST:
  case SSL_R_PACKET_LENGTH_TOO_LONG:
  case SSL_R_RECORD_LENGTH_MISMATCH:
    return fail(t, CN_EPROTO, "not TLS: the peer sent plaintext (a node without -proto_dist inet_tls?)");
  case SSL_R_NO_SHARED_CIPHER: return fail(t, CN_EPROTO, "no cipher in common with the peer");
  default: {
    char eb[256];
    ERR_error_string_n(e, eb, sizeof eb);
    return fail(t, CN_EPROTO, "TLS error: %s", eb);
  }
  }
}

/* Traffic of len bytes at once, more than ticks when over max: the session keeps its record buffers from then on,
 * until dist_tls_idle returns them. */
static void busy(dist_tls *t, size_t len, size_t max) {
  if (t->lean && t->idled && len > max && ++t->busy >= BUSY_OPS) {
    SSL_clear_mode(t->ssl, SSL_MODE_RELEASE_BUFFERS);
    t->lean = false;
  }
}

int dist_tls_start(dist_tls *t, cn_buf *out) {
  if (t->err) return t->err;
  if (t->up) return 0;
  int r = SSL_do_handshake(t->ssl);
  if (drain(t, out)) return fail(t, CN_ENOMEM, "out of memory");
  if (r == 1) {
    t->up = true;
    return 0;
  }
  int e = SSL_get_error(t->ssl, r);
  return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : fail_ssl(t, e);
}

int dist_tls_push(dist_tls *t, const uint8_t *in, size_t len, cn_buf *out) {
  if (t->err) return t->err;
  if (!t->got_bytes && len) {
    t->got_bytes = true;
    /* Every TLS stream starts with a handshake record (22), or an alert (21) from a refusing server. A plain
     * distribution peer starts with a 2-byte length and 'N'/'n' (or a status 's' to our ClientHello). */
    if (in[0] != 22 && !(in[0] == 21 && !t->ctx->server)) {
      char hex[3 * 6 + 1] = "";
      for (size_t i = 0; i < len && i < 6; i++) snprintf(hex + 3 * i, 4, "%02x ", in[i]);
      return fail(t, CN_EPROTO,
                  "%s: the peer sent %sinstead of a TLS handshake (a node without -proto_dist "
                  "inet_tls?)",
                  t->ctx->server ? "plaintext peer on a TLS port" : "plaintext answer from the peer", hex);
    }
  }
  busy(t, len, TICKS_PUSH);
  if (t->src_len) {
    /* A read stopped before taking all of the last push (the caller's window was full): its rest and this push
     * go to hold, in order (the caller's earlier bytes may not stay). */
    if (t->src >= t->hold.data && t->src < t->hold.data + t->hold.len) {
      cn_buf_consume(&t->hold, (size_t)(t->src - t->hold.data));
    } else {
      t->hold.len = 0;
      if (cn_buf_append(&t->hold, t->src, t->src_len)) return fail(t, CN_ENOMEM, "out of memory");
    }
    if (cn_buf_append(&t->hold, in, len)) return fail(t, CN_ENOMEM, "out of memory");
    t->src = t->hold.data;
    t->src_len = t->hold.len;
  } else {
    t->src = in;
    t->src_len = len;
  }
  if (!t->up) {
    int r = SSL_do_handshake(t->ssl);
    if (drain(t, out)) return fail(t, CN_ENOMEM, "out of memory");
    if (r != 1) {
      int e = SSL_get_error(t->ssl, r);
      return e == SSL_ERROR_WANT_READ ? DIST_TLS_HANDSHAKING : fail_ssl(t, e);
    }
    t->up = true;
  }
  return DIST_TLS_UP;
}

size_t dist_tls_readable(const dist_tls *t) {
  int p = SSL_pending(t->ssl);
  return t->src_len + (size_t)(p > 0 ? p : 0);
}

int dist_tls_read(dist_tls *t, uint8_t *dst, size_t room, size_t *got, cn_buf *out) {
  *got = 0;
  if (t->err) return t->err;
  if (!t->up) return CN_ESTATE;
  if (!room) return CN_EINVAL;
  int n = SSL_read(t->ssl, dst, (int)(room > INT_MAX ? INT_MAX : room));
  if (n > 0) {
    *got = (size_t)n;
    return DIST_TLS_UP;
  }
  int e = SSL_get_error(t->ssl, n);
  if (drain(t, out)) return fail(t, CN_ENOMEM, "out of memory"); /* a reply to a key update, an alert */
  if (e == SSL_ERROR_WANT_READ) return DIST_TLS_UP;
  if (e == SSL_ERROR_ZERO_RETURN) return DIST_TLS_CLOSED;
  return fail_ssl(t, e);
}

int dist_tls_feed(dist_tls *t, const uint8_t *in, size_t len, cn_buf *plain, cn_buf *out) {
  int r = dist_tls_push(t, in, len, out);
  for (size_t got = 1; r == DIST_TLS_UP && got;) {
    if (cn_buf_reserve(plain, 32768)) return fail(t, CN_ENOMEM, "out of memory");
    r = dist_tls_read(t, plain->data + plain->len, plain->cap - plain->len - 1, &got, out);
    plain->len += got;
  }
  return r;
}

int dist_tls_write(dist_tls *t, const uint8_t *p, size_t len, cn_buf *out) {
  if (t->err) return t->err;
  if (!t->up) return CN_ESTATE;
  busy(t, len, TICKS_WRITE);
  while (len) {
    size_t k = len < WRITE_CHUNK ? len : WRITE_CHUNK;
    int n = SSL_write(t->ssl, p, (int)k);
    if (n <= 0) return fail_ssl(t, SSL_get_error(t->ssl, n));
    p += n;
    len -= (size_t)n;
    if (drain(t, out)) return fail(t, CN_ENOMEM, "out of memory");
  }
  return 0;
}

/* A new empty memory BIO in place of one whose storage has grown. */
static BIO *mem_bio(void) {
  BIO *b = BIO_new(BIO_s_mem());
  if (b) BIO_set_mem_eof_return(b, -1); /* empty means "more later", not end of stream */
  return b;
}

void dist_tls_idle(dist_tls *t) {
  if (!t->up || t->err || t->src_len || BIO_ctrl_pending(t->wb) || SSL_has_pending(t->ssl)) return;
  cn_buf_free(&t->hold);
  SSL_free_buffers(t->ssl); /* refuses (0) while a record is partly read or written: then they stay */
  SSL_set_mode(t->ssl, SSL_MODE_RELEASE_BUFFERS); /* until more than ticks again */
  t->lean = true;
  t->busy = 0;
  t->idled = true;
  BIO *wb = mem_bio();
  if (wb) {
    SSL_set0_wbio(t->ssl, wb); /* frees the old one */
    t->wb = wb;
  }
  ERR_clear_error();
}

void dist_tls_close(dist_tls *t, cn_buf *out) {
  if (!t->up || t->err) return;
  SSL_shutdown(t->ssl);
  drain(t, out);
  ERR_clear_error();
}

void dist_tls_describe(const dist_tls *t, char *buf, size_t len) {
  char subj[160] = "no certificate";
  X509 *c = SSL_get0_peer_certificate(t->ssl);
  if (c) X509_NAME_oneline(X509_get_subject_name(c), subj, sizeof subj);
  snprintf(buf, len, "%s %s, peer %s%s", SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl), subj,
           t->ctx->verify ? c ? " (verified)" : "" : " (not verified: verify_none)");
}
