/* test_tls.c: the TLS transport (dist/tls.c) in memory, both roles, with certificates made by the `openssl`
 * command in a temporary folder: TLS 1.2 and 1.3, the default versions per OTP release followed, data both ways,
 * close_notify, and each refusal with its reason (wrong CA, expired, no client certificate, version mismatch, hostname, plaintext, garbage); the
 * ssl_dist_optfile parser (dist/optfile.c) on good, bad, truncated and oversized text; then two C nodes over
 * TLS in threads through a real OTP epmd, and a plain node refused by a TLS node; plaintext read into the caller's
 * windows across records, large binaries received over TLS pointing into the read chunk (zero copy), and idle sessions
 * returning their buffers (dist_tls_idle) and going on after. */
#include <malloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cnode.h"
#include "testutil.h"
#include "tnode.h"
#include "tls.h"

static char dir[256];

/* ---- Certificates -------------------------------------------------------------------------------------- */

static int make_certs(void **st) {
  (void)st;
  snprintf(dir, sizeof dir, "%s/cnode-tls-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(dir)) return -1;
  char cmd[4096];
  snprintf(
      cmd, sizeof cmd,
      "set -e; cd '%s'\n"
      "ca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key -out $1.pem "
      "-subj /CN=$1 -days 30; }\n"
      "csr() { openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key -out $1.csr "
      "-subj /CN=$1; printf 'subjectAltName=DNS:127.0.0.1,DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n"
      "extendedKeyUsage=serverAuth,clientAuth\\n' > $1.ext; }\n"
      "leaf() { csr $1; openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key -CAcreateserial -days $3 "
      "-extfile $1.ext -out $1.pem; }\n"
      /* OpenSSL 3.5+ refuses `x509 -days -1`; `openssl ca` takes explicit dates in every 3.x: valid from two
              days ago until yesterday. */
      "expired() { csr $1; mkdir -p $1.ca; : > $1.ca/index; echo 01 > $1.ca/serial; "
      "printf '[ca]\\ndefault_ca=d\\n[d]\\ndatabase=%%s/index\\nserial=%%s/serial\\nnew_certs_dir=%%s\\n"
      "default_md=sha256\\npolicy=p\\nunique_subject=no\\n[p]\\ncommonName=supplied\\n' $1.ca $1.ca $1.ca "
      "> $1.ca/conf; openssl ca -batch -notext -config $1.ca/conf -cert $2.pem -keyfile $2.key -in $1.csr "
      "-extfile $1.ext -startdate $(date -u -d '-2 days' +%%Y%%m%%d%%H%%M%%SZ) "
      "-enddate $(date -u -d '-1 day' +%%Y%%m%%d%%H%%M%%SZ) -out $1.pem; }\n"
      "ca ca1; ca ca2; leaf node ca1 30; leaf other ca2 30; expired expired ca1\n"
      /* Hosts that are IP addresses: named as OTP 27+ checks them (IP:), as OTP 25 does (DNS:), or not at all. */
      "san() { csr $1; sed -i \"s/^subjectAltName=.*/subjectAltName=$2/\" $1.ext; openssl x509 -req -in $1.csr "
      "-CA ca1.pem -CAkey ca1.key -CAcreateserial -days 30 -extfile $1.ext -out $1.pem; }\n"
      "san ip6 IP:::1; san dns6 DNS:::1; san ip4 IP:127.0.0.1\n",
      dir);
  char full[4300];
  snprintf(full, sizeof full, "sh -c \"$(cat <<'EOS'\n%s\nEOS\n)\" >/dev/null 2>&1", cmd);
  return system(full) == 0 ? 0 : -1;
}

static int remove_certs(void **st) {
  (void)st;
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static char *path(const char *name) {
  static char buf[8][400];
  static int k;
  char *b = buf[k++ % 8];
  snprintf(b, 400, "%.255s/%.63s", dir, name);
  return b;
}

/* Options of one side: cert NULL for none. */
static void side(cn_tls_side *s, const char *cert, const char *ca, cn_tls_verify v, bool fail, unsigned versions) {
  memset(s, 0, sizeof *s);
  char f[64];
  if (cert) {
    snprintf(f, sizeof f, "%s.pem", cert);
    cn_tls_set(&s->certfile, path(f));
    snprintf(f, sizeof f, "%s.key", cert);
    cn_tls_set(&s->keyfile, path(f));
  }
  if (ca) cn_tls_set(&s->cacertfile, path(ca));
  s->verify = v;
  s->fail_if_no_peer_cert = fail;
  s->versions = versions;
}

static void side_free(cn_tls_side *s) {
  cn_tls_opts o = {.server = *s};
  cn_tls_opts_clear(&o);
}

/* ---- In-memory handshakes -------------------------------------------------------------------------------- */

typedef struct pair {
  dist_tls_ctx *sctx, *cctx;
  dist_tls *s, *c;
  cn_buf s_plain, c_plain;
  int s_rc, c_rc;
} pair;

/* srel, crel: the OTP release each side's node follows (its default versions). */
static void pair_new_rel(pair *p, cn_tls_side *srv, cn_tls_side *cli, const char *host, int srel, int crel) {
  memset(p, 0, sizeof *p);
  char err[512];
  assert_int_equal(dist_tls_ctx_new(&p->sctx, srv, true, err, sizeof err), 0);
  assert_int_equal(dist_tls_ctx_new(&p->cctx, cli, false, err, sizeof err), 0);
  assert_int_equal(dist_tls_new(&p->s, p->sctx, NULL, srel), 0);
  assert_int_equal(dist_tls_new(&p->c, p->cctx, host, crel), 0);
}

static void pair_new(pair *p, cn_tls_side *srv, cn_tls_side *cli, const char *host) {
  pair_new_rel(p, srv, cli, host, CN_OTP_RELEASE_DEFAULT, CN_OTP_RELEASE_DEFAULT);
}

static void pair_free(pair *p) {
  dist_tls_free(p->s);
  dist_tls_free(p->c);
  dist_tls_ctx_free(p->sctx);
  dist_tls_ctx_free(p->cctx);
  cn_buf_free(&p->s_plain);
  cn_buf_free(&p->c_plain);
}

/* Moves bytes between the two ends until nothing moves; ciphertext is fed in 7-byte pieces every other round to
 * exercise partial records. Returns when both are up or either failed. */
static void pump(pair *p, cn_buf *c2s, cn_buf *s2c) {
  for (int round = 0; round < 200; round++) {
    bool moved = false;
    if (c2s->len && p->s_rc >= 0) {
      size_t k = round % 2 ? (c2s->len < 7 ? c2s->len : 7) : c2s->len;
      cn_buf b = {0};
      cn_buf_append(&b, c2s->data, k);
      cn_buf_consume(c2s, k);
      p->s_rc = dist_tls_feed(p->s, b.data, b.len, &p->s_plain, s2c);
      cn_buf_free(&b);
      moved = true;
    }
    if (s2c->len && p->c_rc >= 0) {
      size_t k = round % 2 ? (s2c->len < 7 ? s2c->len : 7) : s2c->len;
      cn_buf b = {0};
      cn_buf_append(&b, s2c->data, k);
      cn_buf_consume(s2c, k);
      p->c_rc = dist_tls_feed(p->c, b.data, b.len, &p->c_plain, c2s);
      cn_buf_free(&b);
      moved = true;
    }
    if (!moved) break;
  }
}

/* A full handshake between nodes following OTP releases srel and crel; the pair for more checks (caller frees). */
static void handshake_rel(pair *p, cn_tls_side *srv, cn_tls_side *cli, const char *host, int srel, int crel) {
  pair_new_rel(p, srv, cli, host, srel, crel);
  cn_buf c2s = {0}, s2c = {0};
  assert_int_equal(dist_tls_start(p->c, &c2s), 0);
  assert_true(c2s.len > 0);
  pump(p, &c2s, &s2c);
  cn_buf_free(&c2s);
  cn_buf_free(&s2c);
}

static void handshake(pair *p, cn_tls_side *srv, cn_tls_side *cli, const char *host) {
  handshake_rel(p, srv, cli, host, CN_OTP_RELEASE_DEFAULT, CN_OTP_RELEASE_DEFAULT);
}

static void test_roles_and_data(void **st) {
  (void)st;
  unsigned versions[] = {0, CN_TLS_V13, CN_TLS_V12 | CN_TLS_V13};
  const char *want[] = {"TLSv1.2", "TLSv1.3", "TLSv1.3"};
  for (int v = 0; v < 3; v++) {
    cn_tls_side srv, cli;
    side(&srv, "node", "ca1.pem", CN_TLS_VERIFY_PEER, true, versions[v]);
    side(&cli, "node", "ca1.pem", CN_TLS_VERIFY_UNSET, false, versions[v]); /* unset + CA = verify_peer */
    pair p;
    handshake(&p, &srv, &cli, "127.0.0.1");
    assert_true(dist_tls_is_up(p.s));
    assert_true(dist_tls_is_up(p.c));
    char d[300];
    dist_tls_describe(p.s, d, sizeof d);
    assert_non_null(strstr(d, want[v]));
    assert_non_null(strstr(d, "CN=node (verified)"));
    /* 1 MiB both ways, in one write each. */
    size_t len = (size_t)1 << 20;
    uint8_t *big = malloc(len);
    for (size_t i = 0; i < len; i++) big[i] = (uint8_t)(i * 7);
    cn_buf c2s = {0}, s2c = {0};
    assert_int_equal(dist_tls_write(p.c, big, len, &c2s), 0);
    assert_int_equal(dist_tls_write(p.s, big, len, &s2c), 0);
    pump(&p, &c2s, &s2c);
    assert_int_equal(p.s_plain.len, len);
    assert_int_equal(p.c_plain.len, len);
    assert_memory_equal(p.s_plain.data, big, len);
    assert_memory_equal(p.c_plain.data, big, len);
    free(big);
    /* close_notify: the other end sees CLOSED. */
    dist_tls_close(p.c, &c2s);
    assert_true(c2s.len > 0);
    assert_int_equal(dist_tls_feed(p.s, c2s.data, c2s.len, &p.s_plain, &s2c), DIST_TLS_CLOSED);
    cn_buf_free(&c2s);
    cn_buf_free(&s2c);
    pair_free(&p);
    side_free(&srv);
    side_free(&cli);
  }
}

/* Plaintext read into the caller's windows (dist_tls_push / dist_tls_readable / dist_tls_read, as conn_io.c reads
 * into its chunk): ciphertext pushed in uneven pieces that cut records anywhere, read into windows of uneven sizes
 * from 1 byte to more than a record, arrives whole and in order; readable bounds what whole records give. */
static void test_read_into_windows(void **st) {
  (void)st;
  unsigned versions[] = {CN_TLS_V12, CN_TLS_V13};
  for (int v = 0; v < 2; v++) {
    cn_tls_side srv, cli;
    side(&srv, "node", "ca1.pem", CN_TLS_VERIFY_PEER, true, versions[v]);
    side(&cli, "node", "ca1.pem", CN_TLS_VERIFY_PEER, false, versions[v]);
    pair p;
    pair_new(&p, &srv, &cli, "127.0.0.1");
    uint8_t w[40000];
    size_t got;
    cn_buf c2s = {0}, s2c = {0};
    assert_int_equal(dist_tls_read(p.s, w, sizeof w, &got, &s2c), CN_ESTATE); /* not up yet */
    assert_int_equal(got, 0);
    assert_int_equal(dist_tls_start(p.c, &c2s), 0);
    pump(&p, &c2s, &s2c);
    assert_true(dist_tls_is_up(p.s) && dist_tls_is_up(p.c));
    assert_int_equal(dist_tls_read(p.s, w, 0, &got, &s2c), CN_EINVAL);
    /* 300,000 bytes in writes of uneven sizes: records of many lengths. */
    size_t len = 300000;
    uint8_t *src = malloc(len), *dst = malloc(len);
    for (size_t i = 0; i < len; i++) src[i] = (uint8_t)(i * 131 + i / 251);
    /* First 5000 bytes, whole records pushed at once: readable covers what the reads then give. */
    size_t first = 5000, n = 0;
    assert_int_equal(dist_tls_write(p.c, src, first, &c2s), 0);
    assert_int_equal(dist_tls_push(p.s, c2s.data, c2s.len, &s2c), DIST_TLS_UP);
    c2s.len = 0;
    assert_true(dist_tls_readable(p.s) >= first);
    for (int r; (r = dist_tls_read(p.s, dst + n, 777, &got, &s2c)) == DIST_TLS_UP && got;) n += got;
    assert_int_equal(n, first);
    assert_memory_equal(dst, src, first);
    assert_int_equal(dist_tls_readable(p.s), 0);
    for (size_t at = first, k = 1; at < len; at += k, k = k * 3 + 17) {
      if (k > len - at) k = len - at;
      assert_int_equal(dist_tls_write(p.c, src + at, k, &c2s), 0);
    }
    /* The rest pushed in pieces of 1 byte to 20000 cut anywhere, read into windows of 1 byte to 40000. */
    static const size_t pieces[] = {1, 4, 5, 700, 16389, 3, 20000, 9, 1024};
    static const size_t windows[] = {1, 13, 16384, 2, 40000, 511, 16385, 100};
    size_t wrote = 0, pi = 0, wi = 0;
    while (wrote < c2s.len) {
      size_t k = pieces[pi++ % 9];
      if (k > c2s.len - wrote) k = c2s.len - wrote;
      assert_int_equal(dist_tls_push(p.s, c2s.data + wrote, k, &s2c), DIST_TLS_UP);
      wrote += k;
      for (;;) {
        size_t room = windows[wi++ % 8];
        if (room > len - n) room = len - n;
        if (!room) break;
        assert_int_equal(dist_tls_read(p.s, dst + n, room, &got, &s2c), DIST_TLS_UP);
        if (!got) break;
        assert_true(got <= room);
        n += got;
      }
    }
    assert_int_equal(n, len);
    assert_memory_equal(dst, src, len);
    free(src);
    free(dst);
    /* close_notify through a read: CLOSED. */
    c2s.len = 0;
    dist_tls_close(p.c, &c2s);
    assert_int_equal(dist_tls_push(p.s, c2s.data, c2s.len, &s2c), DIST_TLS_UP);
    assert_int_equal(dist_tls_read(p.s, w, sizeof w, &got, &s2c), DIST_TLS_CLOSED);
    cn_buf_free(&c2s);
    cn_buf_free(&s2c);
    pair_free(&p);
    side_free(&srv);
    side_free(&cli);
  }
}

/* Bytes in use on the heap (glibc), for the per-session figures below. */
static size_t heap_used(void) { return mallinfo2().uordblks; }

/* Sends len bytes c -> s and s -> c (whole), checking they arrive intact through dist_tls_push/read. */
static void exchange(pair *p, size_t len) {
  uint8_t *src = malloc(len), *dst = malloc(len);
  for (size_t i = 0; i < len; i++) src[i] = (uint8_t)(i * 13 + len);
  dist_tls *ends[2][2] = {{p->c, p->s}, {p->s, p->c}};
  for (int d = 0; d < 2; d++) {
    cn_buf wire = {0}, back = {0};
    assert_int_equal(dist_tls_write(ends[d][0], src, len, &wire), 0);
    assert_int_equal(dist_tls_push(ends[d][1], wire.data, wire.len, &back), DIST_TLS_UP);
    size_t n = 0, got;
    while (n < len && dist_tls_read(ends[d][1], dst + n, len - n, &got, &back) == DIST_TLS_UP && got) n += got;
    assert_int_equal(n, len);
    assert_memory_equal(dst, src, len);
    cn_buf_free(&wire);
    cn_buf_free(&back);
  }
  free(src);
  free(dst);
}

/* dist_tls_idle returns the record buffers and the memory BIOs' storage of an idle session (measured: heap bytes
 * per session after 64 KiB each way, before and after), keeps them while a record is half received, and the
 * session goes on after it: records cut anywhere, pushed around idle calls, arrive whole. */
static void test_idle_release(void **st) {
  (void)st;
  unsigned versions[] = {CN_TLS_V12, CN_TLS_V13};
  enum { N = 20 };
  for (int v = 0; v < 2; v++) {
    cn_tls_side srv, cli;
    side(&srv, "node", "ca1.pem", CN_TLS_VERIFY_PEER, true, versions[v]);
    side(&cli, "node", "ca1.pem", CN_TLS_VERIFY_PEER, false, versions[v]);
    static pair p[N];
    for (int i = 0; i < N; i++) {
      handshake(&p[i], &srv, &cli, "127.0.0.1");
      assert_true(dist_tls_is_up(p[i].s) && dist_tls_is_up(p[i].c));
    }
    size_t h0 = heap_used();
    for (int i = 0; i < N; i++) exchange(&p[i], 65536);
    size_t h1 = heap_used();
    for (int i = 0; i < N; i++) {
      dist_tls_idle(p[i].s);
      dist_tls_idle(p[i].c);
    }
    size_t h2 = heap_used();
    print_message("tls idle (%s): +%zu bytes per session after 64 KiB each way, %zu returned by dist_tls_idle\n",
                  v ? "TLS 1.3" : "TLS 1.2", (h1 - h0) / (2 * N), (h1 - h2) / (2 * N));
    if (h1 > h0) assert_true(h2 < h1); /* mallinfo2 counts nothing under ASan's allocator */
    /* Resumed after idle, twice, with records of every size. */
    for (int i = 0; i < N; i++) {
      exchange(&p[i], 100);
      dist_tls_idle(p[i].s);
      dist_tls_idle(p[i].c);
      exchange(&p[i], 70000);
      dist_tls_idle(p[i].s);
    }
    /* A record half received when idle comes: it stays buffered, the rest completes it. */
    size_t len = 40000;
    uint8_t *src = malloc(len), *dst = malloc(len);
    for (size_t i = 0; i < len; i++) src[i] = (uint8_t)(i * 31 + i / 7);
    cn_buf wire = {0}, back = {0};
    assert_int_equal(dist_tls_write(p[0].c, src, len, &wire), 0);
    size_t n = 0, got, at = 0;
    static const size_t pieces[] = {3, 9000, 1, 17000, 5, 16390};
    for (int k = 0; at < wire.len; k++) {
      size_t m = pieces[k % 6] < wire.len - at ? pieces[k % 6] : wire.len - at;
      assert_int_equal(dist_tls_push(p[0].s, wire.data + at, m, &back), DIST_TLS_UP);
      at += m;
      dist_tls_idle(p[0].s); /* ciphertext pending in the BIO: kept */
      while (dist_tls_read(p[0].s, dst + n, len - n, &got, &back) == DIST_TLS_UP && got) n += got;
      dist_tls_idle(p[0].s); /* part of a record in OpenSSL's buffer: kept */
    }
    assert_int_equal(n, len);
    assert_memory_equal(dst, src, len);
    free(src);
    free(dst);
    cn_buf_free(&wire);
    cn_buf_free(&back);
    for (int i = 0; i < N; i++) pair_free(&p[i]);
    side_free(&srv);
    side_free(&cli);
  }
}

/* A handshake that must fail: the reasons on each side contain these texts (NULL: not checked). */
static void refused_rel(cn_tls_side *srv, cn_tls_side *cli, const char *host, int srel, int crel,
                        const char *srv_reason, const char *cli_reason) {
  pair p;
  handshake_rel(&p, srv, cli, host, srel, crel);
  assert_true(p.s_rc < 0 || p.c_rc < 0);
  if (srv_reason) {
    if (!strstr(dist_tls_reason(p.s), srv_reason)) fail_msg("server reason: %s", dist_tls_reason(p.s));
  }
  if (cli_reason) {
    /* Under TLS 1.3 the client finishes first and learns of its refusal from the next record. */
    if (p.c_rc >= 0) {
      cn_buf c2s = {0}, s2c = {0};
      p.c_rc = dist_tls_feed(p.c, NULL, 0, &p.c_plain, &c2s);
      cn_buf_free(&c2s);
      cn_buf_free(&s2c);
    }
    if (!strstr(dist_tls_reason(p.c), cli_reason)) fail_msg("client reason: %s", dist_tls_reason(p.c));
  }
  pair_free(&p);
  side_free(srv);
  side_free(cli);
}

static void refused(cn_tls_side *srv, cn_tls_side *cli, const char *host, const char *srv_reason,
                    const char *cli_reason) {
  refused_rel(srv, cli, host, CN_OTP_RELEASE_DEFAULT, CN_OTP_RELEASE_DEFAULT, srv_reason, cli_reason);
}

/* With no versions in the options, each session takes the defaults of inet_tls_dist of the release its node
 * follows: TLS 1.2 only up to OTP 28, 1.2 and 1.3 from 29 on; versions in the options win over any release. */
static void test_versions_follow_release(void **st) {
  (void)st;
  const unsigned both = CN_TLS_V12 | CN_TLS_V13;
  assert_int_equal(dist_tls_versions(0, 0), CN_TLS_V12); /* not known yet */
  assert_int_equal(dist_tls_versions(0, 25), CN_TLS_V12);
  assert_int_equal(dist_tls_versions(0, 28), CN_TLS_V12);
  assert_int_equal(dist_tls_versions(0, DIST_TLS13_DEFAULT_OTP), both);
  assert_int_equal(dist_tls_versions(0, CN_OTP_RELEASE_MAX), both);
  assert_int_equal(dist_tls_versions(CN_TLS_V12, 29), CN_TLS_V12);
  assert_int_equal(dist_tls_versions(CN_TLS_V13, 25), CN_TLS_V13);
  assert_int_equal(dist_tls_versions(both, 25), both);
  assert_int_equal(dist_tls_versions(4, 29), both); /* unknown bits alone count as none given */
  /* Sessions: {server options, client options, server's release, client's release, version agreed or NULL}. */
  static const struct {
    unsigned sv, cv;
    int srel, crel;
    const char *want;
  } c[] = {
      {0, 0, 29, 29, "TLSv1.3"},          {0, 0, 25, 29, "TLSv1.2"},
      {0, 0, 29, 27, "TLSv1.2"},          {0, CN_TLS_V13, 29, 25, "TLSv1.3"},
      {CN_TLS_V13, 0, 25, 29, "TLSv1.3"}, {0, CN_TLS_V13, 28, 29, NULL},
      {CN_TLS_V13, 0, 29, 28, NULL},      {CN_TLS_V12, CN_TLS_V13, 29, 29, NULL},
  };
  for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
    cn_tls_side srv, cli;
    side(&srv, "node", "ca1.pem", CN_TLS_VERIFY_PEER, true, c[i].sv);
    side(&cli, "node", "ca1.pem", CN_TLS_VERIFY_PEER, false, c[i].cv);
    if (!c[i].want) {
      refused_rel(&srv, &cli, "127.0.0.1", c[i].srel, c[i].crel, "protocol version mismatch",
                  "protocol version mismatch");
      continue;
    }
    pair p;
    handshake_rel(&p, &srv, &cli, "127.0.0.1", c[i].srel, c[i].crel);
    if (!dist_tls_is_up(p.s) || !dist_tls_is_up(p.c))
      fail_msg("case %zu: %s / %s", i, dist_tls_reason(p.s), dist_tls_reason(p.c));
    char d[300];
    dist_tls_describe(p.c, d, sizeof d);
    if (!strstr(d, c[i].want)) fail_msg("case %zu: %s, want %s", i, d, c[i].want);
    pair_free(&p);
    side_free(&srv);
    side_free(&cli);
  }
  /* The reason names what this side accepted. */
  cn_tls_side srv, cli;
  side(&srv, "node", "ca1.pem", CN_TLS_VERIFY_PEER, true, 0);
  side(&cli, "node", "ca1.pem", CN_TLS_VERIFY_PEER, false, CN_TLS_V13);
  refused_rel(&srv, &cli, "127.0.0.1", 27, 29, "(TLS 1.2 only)", NULL);
}

static void test_refusals(void **st) {
  (void)st;
  cn_tls_side srv, cli;
  side(&srv, "node", "ca1.pem", CN_TLS_VERIFY_PEER, true, 0);
  side(&cli, "other", "ca1.pem", CN_TLS_VERIFY_PEER, false, 0);
  refused(&srv, &cli, "127.0.0.1", "unknown CA: the client's certificate /CN=other",
          "refused our certificate: unknown CA");
  side(&srv, "node", "ca1.pem", CN_TLS_VERIFY_PEER, true, 0);
  side(&cli, "expired", "ca1.pem", CN_TLS_VERIFY_PEER, false, 0);
  refused(&srv, &cli, "127.0.0.1", "expired certificate: the client's certificate /CN=expired", "certificate_expired");
  side(&srv, "node", "ca1.pem", CN_TLS_VERIFY_PEER, true, 0);
  side(&cli, NULL, "ca1.pem", CN_TLS_VERIFY_PEER, false, 0);
  refused(&srv, &cli, "127.0.0.1", "no client certificate", "handshake_failure");
  side(&srv, "node", "ca1.pem", CN_TLS_VERIFY_PEER, true, CN_TLS_V13);
  side(&cli, NULL, "ca1.pem", CN_TLS_VERIFY_PEER, false, CN_TLS_V13);
  refused(&srv, &cli, "127.0.0.1", "no client certificate", "no client certificate: the server requires one");
  side(&srv, "node", "ca1.pem", CN_TLS_VERIFY_PEER, true, CN_TLS_V12);
  side(&cli, "node", "ca1.pem", CN_TLS_VERIFY_PEER, false, CN_TLS_V13);
  refused(&srv, &cli, "127.0.0.1", "protocol version mismatch", "protocol version mismatch");
  /* The client checks the server's name (the peer node's host) under verify_peer, as OTP does. */
  side(&srv, "node", "ca1.pem", CN_TLS_VERIFY_PEER, true, 0);
  side(&cli, "node", "ca1.pem", CN_TLS_VERIFY_PEER, false, 0);
  refused(&srv, &cli, "elsewhere.example", NULL, "hostname mismatch");
  /* A host that is an IP address matches an IP: name (OTP 27+) or a DNS: name of the same text (OTP 25). */
  static const char *ip_ok[][2] = {{"ip6", "::1"}, {"dns6", "::1"}, {"ip4", "127.0.0.1"}, {"node", "127.0.0.1"}};
  for (size_t i = 0; i < sizeof ip_ok / sizeof *ip_ok; i++) {
    side(&srv, ip_ok[i][0], "ca1.pem", CN_TLS_VERIFY_PEER, true, 0);
    side(&cli, "node", "ca1.pem", CN_TLS_VERIFY_PEER, false, 0);
    pair q;
    handshake(&q, &srv, &cli, ip_ok[i][1]);
    assert_true(dist_tls_is_up(q.c) && dist_tls_is_up(q.s));
    pair_free(&q);
    side_free(&srv);
    side_free(&cli);
  }
  side(&srv, "node", "ca1.pem", CN_TLS_VERIFY_PEER, true, 0);
  side(&cli, "node", "ca1.pem", CN_TLS_VERIFY_PEER, false, 0);
  refused(&srv, &cli, "::1", NULL, "has no subjectAltName IP:::1 or DNS:::1");
  side(&srv, "ip6", "ca1.pem", CN_TLS_VERIFY_PEER, true, 0);
  side(&cli, "node", "ca1.pem", CN_TLS_VERIFY_PEER, false, 0);
  refused(&srv, &cli, "::2", NULL, "hostname mismatch");
  /* The server's certificate from another CA. */
  side(&srv, "other", "ca1.pem", CN_TLS_VERIFY_PEER, true, 0);
  side(&cli, "node", "ca1.pem", CN_TLS_VERIFY_PEER, false, 0);
  refused(&srv, &cli, "127.0.0.1", NULL, "unknown CA: the server's certificate /CN=other");
  /* server_name_indication disable: no hostname check; verify_none: nothing checked, and said so. */
  side(&srv, "node", "ca1.pem", CN_TLS_VERIFY_PEER, true, 0);
  side(&cli, "node", "ca1.pem", CN_TLS_VERIFY_PEER, false, 0);
  cli.sni_disable = true;
  pair p;
  handshake(&p, &srv, &cli, "elsewhere.example");
  assert_true(dist_tls_is_up(p.c) && dist_tls_is_up(p.s));
  pair_free(&p);
  side_free(&cli);
  side(&cli, "other", NULL, CN_TLS_VERIFY_NONE, false, 0);
  side_free(&srv);
  side(&srv, "node", NULL, CN_TLS_VERIFY_NONE, false, 0);
  handshake(&p, &srv, &cli, "127.0.0.1");
  assert_true(dist_tls_is_up(p.c) && dist_tls_is_up(p.s));
  char d[300];
  dist_tls_describe(p.c, d, sizeof d);
  assert_non_null(strstr(d, "not verified"));
  pair_free(&p);
  side_free(&srv);
  side_free(&cli);
}

static void test_plaintext_and_garbage(void **st) {
  (void)st;
  cn_tls_side srv, cli;
  side(&srv, "node", "ca1.pem", CN_TLS_VERIFY_PEER, true, 0);
  side(&cli, "node", "ca1.pem", CN_TLS_VERIFY_PEER, false, 0);
  pair p;
  pair_new(&p, &srv, &cli, "127.0.0.1");
  /* A plain node's send_name: 2-byte length, 'N', flags... */
  static const uint8_t name[] = {0, 0x20, 'N', 0, 0, 0, 0x0d, 0x07, 0xdf, 0x7f, 0xbd};
  uint8_t *g = guard_copy(name, sizeof name);
  cn_buf out = {0};
  assert_true(dist_tls_feed(p.s, g, sizeof name, &p.s_plain, &out) < 0);
  assert_non_null(strstr(dist_tls_reason(p.s), "plaintext peer on a TLS port"));
  guard_free(g, sizeof name);
  /* Sticky: more bytes change nothing. */
  assert_true(dist_tls_feed(p.s, name, sizeof name, &p.s_plain, &out) < 0);
  /* Garbage that looks like a record: an error, never a crash, whole or byte by byte. */
  srand(7);
  for (int k = 0; k < 50; k++) {
    uint8_t junk[300];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)rand();
    junk[0] = 22, junk[1] = 3, junk[2] = (uint8_t)(k % 4);
    dist_tls *t;
    assert_int_equal(dist_tls_new(&t, p.sctx, NULL, 25), 0);
    int rc = 0;
    for (size_t i = 0; i < sizeof junk && rc >= 0; i += (size_t)(k % 2 ? 1 : 300)) {
      size_t n = k % 2 ? 1 : sizeof junk;
      rc = dist_tls_feed(t, junk + i, n, &p.s_plain, &out);
    }
    assert_int_not_equal(rc, DIST_TLS_UP);
    dist_tls_free(t);
  }
  /* Writing before the handshake is refused. */
  assert_int_equal(dist_tls_write(p.c, name, sizeof name, &out), CN_ESTATE);
  cn_buf_free(&out);
  pair_free(&p);
  side_free(&srv);
  side_free(&cli);
}

static void test_ctx_errors(void **st) {
  (void)st;
  char err[512];
  dist_tls_ctx *c = NULL;
  cn_tls_side s;
  side(&s, NULL, NULL, CN_TLS_VERIFY_UNSET, false, 0);
  assert_int_equal(dist_tls_ctx_new(&c, &s, true, err, sizeof err), CN_EINVAL); /* a server needs a certfile */
  assert_non_null(strstr(err, "certfile"));
  side_free(&s);
  side(&s, "node", NULL, CN_TLS_VERIFY_PEER, false, 0);
  assert_int_equal(dist_tls_ctx_new(&c, &s, false, err, sizeof err), CN_EINVAL);
  assert_non_null(strstr(err, "cacertfile"));
  side_free(&s);
  side(&s, "node", "ca1.pem", CN_TLS_VERIFY_NONE, true, 0);
  assert_int_equal(dist_tls_ctx_new(&c, &s, true, err, sizeof err), CN_EINVAL);
  assert_non_null(strstr(err, "fail_if_no_peer_cert"));
  side_free(&s);
  side(&s, "node", "ca1.pem", CN_TLS_VERIFY_PEER, false, 0);
  cn_tls_set(&s.keyfile, path("other.key"));
  assert_int_equal(dist_tls_ctx_new(&c, &s, true, err, sizeof err), CN_EINVAL);
  assert_non_null(strstr(err, "keyfile"));
  cn_tls_set(&s.keyfile, path("node.key"));
  cn_tls_set(&s.ciphers, "NO-SUCH-CIPHER");
  assert_int_equal(dist_tls_ctx_new(&c, &s, true, err, sizeof err), CN_EINVAL);
  cn_tls_set(&s.ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256:TLS_AES_128_GCM_SHA256");
  assert_int_equal(dist_tls_ctx_new(&c, &s, true, err, sizeof err), 0);
  dist_tls_ctx_free(c);
  cn_tls_set(&s.certfile, path("missing.pem"));
  assert_int_equal(dist_tls_ctx_new(&c, &s, true, err, sizeof err), CN_EINVAL);
  assert_non_null(strstr(err, "missing.pem"));
  side_free(&s);
}

/* ---- The optfile parser ------------------------------------------------------------------------------------- */

static const char good_optfile[] =
    "%% an ssl_dist_optfile, as erl -ssl_dist_optfile reads it\n"
    "[{server,\n"
    "  [{certfile, \"/etc/ssl/node.pem\"}, {keyfile, <<\"/etc/ssl/node.key\">>},\n"
    "   {cacertfile, \"/etc/ssl/\" \"ca.pem\"}, % adjacent strings join\n"
    "   {verify, verify_peer}, {fail_if_no_peer_cert, true}, {depth, 3},\n"
    "   {versions, ['tlsv1.2', 'tlsv1.3']}, {secure_renegotiate, true},\n"
    "   {ciphers, [\"ECDHE-ECDSA-AES256-GCM-SHA384\", \"TLS_AES_256_GCM_SHA384\"]}]},\n"
    " {client,\n"
    "  [{certfile, \"/etc/ssl/n\\x6fde.pem\"}, {cacertfile, \"/etc/ssl/ca.pem\"}, {verify, verify_none},\n"
    "   {password, \"s3cr\\\"t\"}, {server_name_indication, \"node.example\"}, {depth, 16#0a},\n"
    "   {versions, ['tlsv1.1', 'tlsv1.2']}, {reuse_sessions, false}]}].\n"
    "%% trailing comment\n";

static void test_optfile_good(void **st) {
  (void)st;
  cn_tls_opts o;
  char err[256], warn[256];
  int rc = cn_tls_opts_parse(good_optfile, strlen(good_optfile), &o, err, sizeof err, warn, sizeof warn);
  if (rc) fail_msg("%s", err);
  assert_string_equal(o.server.certfile, "/etc/ssl/node.pem");
  assert_string_equal(o.server.keyfile, "/etc/ssl/node.key");
  assert_string_equal(o.server.cacertfile, "/etc/ssl/ca.pem");
  assert_int_equal(o.server.verify, CN_TLS_VERIFY_PEER);
  assert_true(o.server.fail_if_no_peer_cert);
  assert_true(o.server.has_depth);
  assert_int_equal(o.server.depth, 3);
  assert_int_equal(o.server.versions, CN_TLS_V12 | CN_TLS_V13);
  assert_string_equal(o.server.ciphers, "ECDHE-ECDSA-AES256-GCM-SHA384:TLS_AES_256_GCM_SHA384");
  assert_string_equal(o.client.certfile, "/etc/ssl/node.pem");
  assert_null(o.client.keyfile);
  assert_int_equal(o.client.verify, CN_TLS_VERIFY_NONE);
  assert_string_equal(o.client.password, "s3cr\"t");
  assert_string_equal(o.client.sni, "node.example");
  assert_int_equal(o.client.depth, 10);
  assert_int_equal(o.client.versions, CN_TLS_V12);
  assert_non_null(strstr(warn, "server:secure_renegotiate"));
  assert_non_null(strstr(warn, "client:tlsv1.1"));
  assert_non_null(strstr(warn, "client:reuse_sessions"));
  cn_tls_opts_clear(&o);
  /* disable, and the empty file list. */
  const char *t2 = "[{client, [{server_name_indication, disable}]}, {server, []}].";
  assert_int_equal(cn_tls_opts_parse(t2, strlen(t2), &o, NULL, 0, NULL, 0), 0);
  assert_true(o.client.sni_disable);
  assert_null(o.client.sni);
  cn_tls_opts_clear(&o);
  assert_int_equal(cn_tls_opts_parse("[].", 3, &o, NULL, 0, NULL, 0), 0);
}

static void test_optfile_bad(void **st) {
  (void)st;
  static const struct {
    const char *text;
    const char *why;
  } bad[] = {
      {"", "end of text"},
      {"[{server, []}]", "expected '.'"},
      {"[{server, []}]. extra.", "after the closing"},
      {"[{server, [{certfile, File}]}].", "variables"},
      {"[{server, [{certfile, \"a}]}].", "unterminated"},
      {"[{server, [{certfile, 'a}]}].", "unterminated"},
      {"[{server, [a | b]}].", "improper"},
      {"[{server, [{verify_fun, {fun inet_tls_dist:verify_client/3, []}}]}].", "unsupported"},
      {"[{client, [{customize_hostname_check, [{match_fun, public_key:pkix_verify_hostname_match_fun(https)}]}]}].",
       "function calls"},
      {"[{server, [{depth, 1.5}]}].", "floats"},
      {"[{server, [{depth, 1000}]}].", "depth"},
      {"[{server, [{verify, maybe}]}].", "verify_peer or verify_none"},
      {"[{server, [{fail_if_no_peer_cert, yes}]}].", "true or false"},
      {"[{server, [{versions, ['tlsv1.1']}]}].", "neither"},
      {"[{server, [{certfile, 42}]}].", "expected a string"},
      {"[{server, [{ciphers, [#{cipher => aes}]}]}].", "maps"},
      {"{server, []}.", "must hold a list"},
      {"[server].", "expected {server"},
      {"[{server, [{certfile, \"\\x{1F600}\"}]}].", "escape"},
      {"[{server [] }].", "expected ','"},
      {"[{server, [{depth, 99999999999999999999}]}].", "too large"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cn_tls_opts o;
    char err[256];
    size_t len = strlen(bad[i].text);
    uint8_t *g = guard_copy(bad[i].text, len);
    int rc = cn_tls_opts_parse((const char *)g, len, &o, err, sizeof err, NULL, 0);
    guard_free(g, len);
    if (rc == 0) fail_msg("accepted: %s", bad[i].text);
    if (!strstr(err, bad[i].why)) fail_msg("%s: reason \"%s\" lacks \"%s\"", bad[i].text, err, bad[i].why);
  }
}

/* Every prefix of a good file is refused (it lacks the '.'), read right up to a guard page; nothing leaks. */
static void test_optfile_truncated_and_limits(void **st) {
  (void)st;
  size_t len = strlen(good_optfile);
  long before = ta_live;
  for (size_t k = 0; k < len; k++) {
    if (k + 1 == len) break; /* the whole text minus its final newline is still good */
    uint8_t *g = guard_copy(good_optfile, k);
    cn_tls_opts o;
    int rc = cn_tls_opts_parse((const char *)g, k, &o, NULL, 0, NULL, 0);
    guard_free(g, k);
    /* Prefixes ending after the '.' (inside the trailing comment) are complete files. */
    if (k < (size_t)(strstr(good_optfile, "].\n") - good_optfile) + 2) assert_true(rc < 0);
    cn_tls_opts_clear(&o);
  }
  assert_int_equal(ta_live, before);
  /* Deep nesting, too many terms, too long a text or a string: refused with CN_ELIMIT. */
  char deep[200];
  size_t d = 0;
  for (int i = 0; i < 40; i++) deep[d++] = '[';
  for (int i = 0; i < 40; i++) deep[d++] = ']';
  deep[d++] = '.';
  cn_tls_opts o;
  assert_int_equal(cn_tls_opts_parse(deep, d, &o, NULL, 0, NULL, 0), CN_ELIMIT);
  size_t big = (size_t)1 << 20;
  char *t = malloc(big * 2 + 16);
  size_t n = 0;
  t[n++] = '[';
  for (int i = 0; i < 70000; i++) {
    if (i) t[n++] = ',';
    t[n++] = '1';
  }
  t[n++] = ']';
  t[n++] = '.';
  assert_int_equal(cn_tls_opts_parse(t, n, &o, NULL, 0, NULL, 0), CN_ELIMIT);
  memset(t, ' ', big + 1);
  assert_int_equal(cn_tls_opts_parse(t, big + 1, &o, NULL, 0, NULL, 0), CN_ELIMIT);
  n = 0;
  t[n++] = '"';
  for (int i = 0; i < 5000; i++) t[n++] = 'a';
  t[n++] = '"';
  t[n++] = '.';
  assert_int_equal(cn_tls_opts_parse(t, n, &o, NULL, 0, NULL, 0), CN_ELIMIT);
  free(t);
  /* Allocation failures at every step: an error, never a leak or a crash. */
  for (long f = 0; f < 200; f++) {
    ta_fail_after = f;
    int rc = cn_tls_opts_parse(good_optfile, len, &o, NULL, 0, NULL, 0);
    ta_fail_after = -1;
    if (rc == 0) cn_tls_opts_clear(&o);
    assert_int_equal(ta_live, before);
    if (rc == 0) break;
  }
  /* The loader: a missing file. */
  char err[256];
  assert_int_equal(cn_tls_opts_load(path("nope.conf"), &o, err, sizeof err, NULL, 0), CN_EIO);
  assert_non_null(strstr(err, "nope.conf"));
}

/* ---- Two C nodes over TLS, in threads ------------------------------------------------------------------------ */

static uint16_t epmd_port;

static void tnode_start_tls(tnode *t, const char *name, const cn_tls_opts *tls) {
  cn_node_opts o = {.name = name,
                    .cookie = "secret",
                    .epmd_port = epmd_port,
                    .listen_addr = "127.0.0.1",
                    .log_level = CN_LOG_DEBUG,
                    .tls = tls,
                    .handshake_timeout_ms = 2000};
  tnode_start(t, &o);
}

/* Makes `via` send {Collector, Payload} to {echo, dest_node}; Payload is taken. */
static void echo_via(tnode *via, const char *dest_node, cn_term *payload) {
  cn_node *n = via->n;
  cn_term *dest = cn_mk_tuple(2, cn_mk_atomc(n, "echo"), cn_mk_atomc(n, dest_node));
  cn_term *msg = cn_mk_tuple(2, cn_mk_pid(via->collector), payload);
  assert_int_equal(cn_send_threadsafe(n, NULL, "fwd", NULL, cn_mk_tuple(2, dest, msg)), 0);
}

static void tls_opts(cn_tls_opts *o, const char *cert) {
  side(&o->server, cert, "ca1.pem", CN_TLS_VERIFY_PEER, true, CN_TLS_V12 | CN_TLS_V13);
  side(&o->client, cert, "ca1.pem", CN_TLS_VERIFY_PEER, false, CN_TLS_V12 | CN_TLS_V13);
}

static void test_c_to_c_over_tls(void **st) {
  (void)st;
  int epmd = test_epmd_start(&epmd_port);
  assert_true(epmd > 0);
  cn_tls_opts good, rogue;
  tls_opts(&good, "node");
  tls_opts(&rogue, "other");
  tnode a, b, r, plain;
  tnode_start_tls(&a, "a@127.0.0.1", &good);
  tnode_start_tls(&b, "b@127.0.0.1", &good);
  tnode_start_tls(&r, "rogue@127.0.0.1", &rogue);
  tnode_start_tls(&plain, "plain@127.0.0.1", NULL);
  assert_true(tnode_wait(&a, tnode_is_ready, NULL) && a.ready == 1);
  assert_true(tnode_wait(&b, tnode_is_ready, NULL) && b.ready == 1);
  assert_true(tnode_wait(&r, tnode_is_ready, NULL) && r.ready == 1);
  assert_true(tnode_wait(&plain, tnode_is_ready, NULL) && plain.ready == 1);

  /* a -> b over TLS 1.3, mutual authentication; then 4 MiB, fragmented, both ways. */
  echo_via(&a, "b@127.0.0.1", cn_mk_atomc(a.n, "hello"));
  int one = 1;
  assert_true(tnode_wait(&a, tnode_has_msgs, &one));
  assert_string_equal(a.last, "hello");
  assert_true(tnode_wait(&b, tnode_log_has, "TLSv1.3"));
  assert_true(tnode_log_has(&b, "CN=node (verified)"));
  size_t len = (size_t)4 << 20;
  uint8_t *big = malloc(len);
  for (size_t i = 0; i < len; i++) big[i] = (uint8_t)i;
  echo_via(&a, "b@127.0.0.1", cn_mk_binary(big, len));
  echo_via(&b, "a@127.0.0.1", cn_mk_binary(big, len));
  free(big);
  int two = 2;
  assert_true(tnode_wait(&a, tnode_has_msgs, &two));
  assert_true(tnode_wait(&b, tnode_has_msgs, &one));
  assert_string_equal(a.last, "binary 4194304");
  assert_string_equal(b.last, "binary 4194304");

  /* The rogue (CA 2) is refused both ways, with reasons; the plain node too; a and b keep serving. */
  echo_via(&r, "a@127.0.0.1", cn_mk_int(1));
  assert_true(tnode_wait(&a, tnode_log_has, "unknown CA: the client's certificate /CN=other"));
  assert_true(tnode_wait(&r, tnode_log_has, "the server refused our certificate: unknown CA"));
  echo_via(&a, "rogue@127.0.0.1", cn_mk_int(2));
  assert_true(tnode_wait(&a, tnode_log_has, "unknown CA: the server's certificate /CN=other"));
  echo_via(&plain, "b@127.0.0.1", cn_mk_int(3));
  assert_true(tnode_wait(&b, tnode_log_has, "plaintext peer on a TLS port"));
  echo_via(&a, "plain@127.0.0.1", cn_mk_int(4));
  assert_true(tnode_wait(&plain, tnode_log_has, "the peer speaks TLS"));
  assert_true(tnode_wait(&a, tnode_log_has, "plaintext node?"));
  echo_via(&b, "a@127.0.0.1", cn_mk_atomc(b.n, "still"));
  assert_true(tnode_wait(&b, tnode_has_msgs, &two));
  assert_string_equal(b.last, "still");

  tnode_stop(&plain);
  tnode_stop(&r);
  tnode_stop(&b);
  tnode_stop(&a);
  cn_tls_opts_clear(&good);
  cn_tls_opts_clear(&rogue);
  test_epmd_stop(epmd);
}

/* ---- Zero-copy binaries over TLS ------------------------------------------------------------------------------ */

/* Byte i of a test binary of n bytes. */
static uint8_t pat(size_t i, size_t n) { return (uint8_t)(i * 7 + n + i / 4099); }

/* b's `keep` process. {From, Bin}: Bin must hold its bytes as sent, and point into a read chunk when it has 512
 * bytes or more (bin.chunk, its data inside that chunk past the frame's header; a copy would own its chunk from
 * its first byte, or have none) or be copied when smaller; from 64 KiB on the message is kept (cn_term_retain:
 * the same term, no copy). {From, check}: the kept messages must still hold their bytes (the reads since went
 * elsewhere); they are freed. Each answer to From: ok, or the first fault seen. */
typedef struct keep_state {
  cn_term *kept[64];
  int nkept;
  char fault[160];
} keep_state;

static void keep_check(keep_state *k, const cn_term *b) {
  size_t n = b->v.bin.size;
  for (size_t i = 0; i < n && !k->fault[0]; i++)
    if (b->v.bin.data[i] != pat(i, n)) snprintf(k->fault, sizeof k->fault, "byte %zu of %zu differs", i, n);
}

static void keep_handle(cn_proc *self, const cn_term *msg, void *state) {
  keep_state *k = state;
  cn_node *n = cn_proc_node(self);
  const cn_term *from = cn_tuple_elem(msg, 2, 0), *x = cn_tuple_elem(msg, 2, 1);
  if (!from || from->type != CN_PID || !x) return;
  if (x->type == CN_BINARY) {
    size_t size = x->v.bin.size;
    cn_chunk *ch = x->v.bin.chunk;
    const uint8_t *d = x->v.bin.data, *base = ch ? cn_chunk_data(ch) : NULL;
    if (k->fault[0]) {
    } else if (size >= 512 && !(ch && d > base && d + size <= base + cn_chunk_cap(ch))) {
      snprintf(k->fault, sizeof k->fault, "a binary of %zu bytes does not point into the read chunk", size);
    } else if (size < 512 && ch) {
      snprintf(k->fault, sizeof k->fault, "a binary of %zu bytes is shared", size);
    } else {
      keep_check(k, x);
    }
    if (size >= 65536 && k->nkept < 64) {
      cn_term *t = cn_term_retain(msg);
      if (t != msg && !k->fault[0]) snprintf(k->fault, sizeof k->fault, "cn_term_retain copied");
      k->kept[k->nkept++] = t;
    }
  } else {
    for (int i = 0; i < k->nkept; i++) {
      keep_check(k, cn_tuple_elem(k->kept[i], 2, 1));
      cn_term_free(k->kept[i]);
    }
    k->nkept = 0;
  }
  cn_term *answer = cn_mk_atomc(n, k->fault[0] ? k->fault : "ok");
  cn_send(n, self, from->v.pid, answer);
  cn_term_free(answer);
}

/* Binaries of 100 bytes to 3 MiB from a to b over TLS 1.3, sent back to back (so frames straddle TLS records and
 * socket reads, several to a record or a read, or one over hundreds): each arrives whole and, from 512 bytes on,
 * points into the chunk its plaintext was decrypted into, as under plain TCP; kept ones stay intact. */
static void test_zero_copy_over_tls(void **st) {
  (void)st;
  int epmd = test_epmd_start(&epmd_port);
  assert_true(epmd > 0);
  cn_tls_opts good;
  tls_opts(&good, "node");
  tnode a, b;
  tnode_start_tls(&a, "a@127.0.0.1", &good);
  cn_node_opts o = {.name = "b@127.0.0.1",
                    .cookie = "secret",
                    .epmd_port = epmd_port,
                    .listen_addr = "127.0.0.1",
                    .log_level = CN_LOG_DEBUG,
                    .tls = &good,
                    .handshake_timeout_ms = 2000};
  keep_state ks = {0};
  tnode_new(&b, &o);
  tnode_spawn_named(&b, "keep", keep_handle, &ks);
  tnode_run(&b);
  assert_true(tnode_wait(&a, tnode_is_ready, NULL) && a.ready == 1);
  assert_true(tnode_wait(&b, tnode_is_ready, NULL) && b.ready == 1);

  static const size_t sizes[] = {
      100, 511, 512, 600, 4096, 16379, 20000, 65536, 65539, (size_t)1 << 20, 777, ((size_t)1 << 20) + 7, 3 << 20, 513};
  size_t ns = sizeof sizes / sizeof sizes[0];
  uint8_t *buf = malloc((size_t)3 << 20);
  int sent = 0;
  for (int round = 0; round < 3; round++) {
    for (size_t i = 0; i < ns; i++) {
      size_t sz = sizes[(i + (size_t)round * 5) % ns];
      for (size_t j = 0; j < sz; j++) buf[j] = pat(j, sz);
      tnode_send_via(&a, "keep", "b@127.0.0.1", cn_mk_tuple(2, cn_mk_pid(a.collector), cn_mk_binary(buf, sz)));
      sent++;
    }
  }
  free(buf);
  assert_true(tnode_wait(&a, tnode_has_msgs, &sent));
  assert_string_equal(a.last, "ok");
  assert_true(tnode_log_has(&b, "TLSv1.3"));
  tnode_send_via(&a, "keep", "b@127.0.0.1", cn_mk_tuple(2, cn_mk_pid(a.collector), cn_mk_atomc(a.n, "check")));
  sent++;
  assert_true(tnode_wait(&a, tnode_has_msgs, &sent));
  assert_string_equal(a.last, "ok");

  tnode_stop(&b);
  tnode_stop(&a);
  cn_tls_opts_clear(&good);
  test_epmd_stop(epmd);
}

int main(void) {
  ta_install();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roles_and_data),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_versions_follow_release),
      cmocka_unit_test(test_plaintext_and_garbage),
      cmocka_unit_test(test_ctx_errors),
      cmocka_unit_test(test_optfile_good),
      cmocka_unit_test(test_optfile_bad),
      cmocka_unit_test(test_optfile_truncated_and_limits),
      cmocka_unit_test(test_c_to_c_over_tls),
      cmocka_unit_test(test_read_into_windows),
      cmocka_unit_test(test_idle_release),
      cmocka_unit_test(test_zero_copy_over_tls),
  };
  return cmocka_run_group_tests_name("tls", tests, make_certs, remove_certs);
}
