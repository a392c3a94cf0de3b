/* pure.c: discovery's protocol part, with no socket, clock or randomness: libcluster Gossip's heartbeat (its
 * encoding, and its AES-256-CBC framing with a secret), DNS answers turned into node names, host lists and the
 * back-off schedule. The wire format is described in docs/discovery.md. */
#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>

#include "cluster_int.h"

static const char HB_PREFIX[] = "heartbeat::";
#define HB_PREFIX_LEN (sizeof HB_PREFIX - 1)

/* ---- name lists ------------------------------------------------------------------------------------------- */

bool cl_names_has(const cl_names *l, const char *name) {
  for (size_t i = 0; i < l->n; i++)
    if (!strcmp(l->v[i], name)) return true;
  return false;
}

int cl_names_add(cl_names *l, const char *name, size_t len) {
  char *s = cn_strndup(name, len);
  if (!s) return CN_ENOMEM;
  if (cl_names_has(l, s)) {
    cn_free(s);
    return 0;
  }
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 8;
    char **v = cn_realloc(l->v, cap * sizeof *v);
    if (!v) {
      cn_free(s);
      return CN_ENOMEM;
    }
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = s;
  return 0;
}

void cl_names_free(cl_names *l) {
  for (size_t i = 0; i < l->n; i++) cn_free(l->v[i]);
  cn_free(l->v);
  memset(l, 0, sizeof *l);
}

/* A node name as net_kernel takes one: "alive@host", both parts non-empty, at most an atom long. */
static bool node_name_ok(const char *s, size_t len) {
  const char *at = memchr(s, '@', len);
  return at && at != s && at != s + len - 1 && len <= CN_ATOM_MAX_BYTES && !memchr(s, 0, len);
}

/* ---- heartbeats --------------------------------------------------------------------------------------------- */

void cl_key_from_secret(const char *secret, uint8_t key[CL_KEY_LEN]) {
  SHA256((const unsigned char *)secret, strlen(secret), key);
}

/* AES-256-CBC over whole blocks, without OpenSSL's padding (libcluster pads and unpads by itself, and its rules
 * are not OpenSSL's): len must be a multiple of 16. 0 or CN_EIO. */
static int aes_cbc(bool enc, const uint8_t *key, const uint8_t *iv, const uint8_t *in, size_t len, uint8_t *out) {
  EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
  int k1 = 0, k2 = 0;
  int ok = x && EVP_CipherInit_ex(x, EVP_aes_256_cbc(), NULL, key, iv, enc ? 1 : 0) &&
           EVP_CIPHER_CTX_set_padding(x, 0) && EVP_CipherUpdate(x, out, &k1, in, (int)len) &&
           EVP_CipherFinal_ex(x, out + k1, &k2) && (size_t)(k1 + k2) == len;
  EVP_CIPHER_CTX_free(x);
  return ok ? 0 : CN_EIO;
}

int cl_hb_encode(const char *name, const uint8_t *key, const uint8_t iv[CL_IV_LEN], cn_buf *out) {
  size_t nl = strlen(name);
  if (!node_name_ok(name, nl)) return CN_EINVAL;
  cn_atoms *tab = NULL;
  int rc = cn_atoms_new(&tab, 4);
  if (rc) return rc;
  cn_term *kv[2] = {cn_mk_atom(cn_atoms_intern(tab, "node", 4)), cn_mk_atom(cn_atoms_intern(tab, name, nl))};
  cn_term *map = cn_mk_map(1, kv); /* takes kv over, NULL ones included */
  cn_buf plain = {0};
  rc = !map ? CN_ENOMEM : cn_buf_append(&plain, HB_PREFIX, HB_PREFIX_LEN) ? CN_ENOMEM : cn_term_to_binary(map, &plain);
  cn_term_free(map);
  cn_atoms_free(tab);
  if (!rc && !key) rc = cn_buf_append(out, plain.data, plain.len);
  if (!rc && key) {
    /* PKCS #7: 1..16 bytes, each holding the count, so a whole block is added when the text fills its last. */
    uint8_t pad = (uint8_t)(16 - plain.len % 16);
    for (uint8_t i = 0; i < pad && !rc; i++) rc = cn_buf_put8(&plain, pad);
    size_t at = out->len;
    if (!rc) rc = cn_buf_append(out, iv, CL_IV_LEN);
    if (!rc) rc = cn_buf_reserve(out, plain.len);
    if (!rc && (rc = aes_cbc(true, key, iv, plain.data, plain.len, out->data + out->len))) out->len = at;
    if (!rc) out->len += plain.len;
  }
  cn_buf_free(&plain);
  return rc;
}

/* libcluster's pkcs7_unpad: the last byte says how many to drop, at most 16, and they must all hold it. Note that
 * 0 passes (nothing dropped), as libcluster lets it. false for an empty text. */
static bool unpad(const uint8_t *p, size_t *len) {
  if (!*len) return false;
  uint8_t k = p[*len - 1];
  if (k > 16 || k > *len) return false;
  for (size_t i = *len - k; i < *len; i++)
    if (p[i] != k) return false;
  *len -= k;
  return true;
}

/* "heartbeat::" then binary_to_term of a map holding an atom under node (other keys allowed, and bytes after the
 * term, as binary_to_term/1 ignores them). Atoms go to a table of the call's own, so hostile packets cannot fill
 * the node's. */
static int read_heartbeat(const uint8_t *p, size_t len, char *name, size_t cap) {
  if (len < HB_PREFIX_LEN || memcmp(p, HB_PREFIX, HB_PREFIX_LEN)) return CN_EDECODE;
  p += HB_PREFIX_LEN;
  len -= HB_PREFIX_LEN;
  if (len < 1 || p[0] != 131) return CN_EDECODE;
  cn_atoms *tab = NULL;
  int rc = cn_atoms_new(&tab, 64);
  if (rc) return rc;
  cn_term *t = NULL;
  size_t off = 1;
  cn_decode_opts dopts = {.max_depth = 64};
  rc = cn_term_decode(tab, p, len, &off, &dopts, &t);
  if (rc == CN_ENOMEM || rc == CN_ELIMIT) rc = rc == CN_ENOMEM ? CN_ENOMEM : CN_EDECODE;
  else if (rc) rc = rc == CN_ETRUNC ? CN_ETRUNC : CN_EDECODE;
  const cn_atom *node = NULL;
  for (uint32_t i = 0; !rc && t->type == CN_MAP && i < t->v.map.size; i++) {
    const cn_term *k = &t->v.map.kv[2 * i], *v = &t->v.map.kv[2 * i + 1];
    if (cn_is_atom(k, "node") && v->type == CN_ATOM) node = v->v.atom;
  }
  if (!rc && !node) rc = CN_EDECODE;
  if (!rc && !node_name_ok(node->name, node->len)) rc = CN_EDECODE;
  if (!rc && node->len >= cap) rc = CN_ELIMIT;
  if (!rc) memcpy(name, node->name, node->len + 1);
  cn_term_free(t);
  cn_atoms_free(tab);
  return rc;
}

int cl_hb_decode(const uint8_t *pkt, size_t len, const uint8_t *key, char *name, size_t cap) {
  if (len > CL_HB_MAX) return CN_ELIMIT;
  if (!key) return read_heartbeat(pkt, len, name, cap);
  /* libcluster: <<iv::16 bytes, ciphertext>>; crypto_one_time raises on a partial block (caught: ignored). */
  if (len < CL_IV_LEN || (len - CL_IV_LEN) % 16) return CN_EAUTH;
  size_t cl = len - CL_IV_LEN;
  uint8_t *plain = cn_malloc(cl ? cl : 1);
  if (!plain) return CN_ENOMEM;
  int rc = aes_cbc(false, key, pkt, pkt + CL_IV_LEN, cl, plain);
  if (!rc && !unpad(plain, &cl)) rc = CN_EAUTH;
  if (!rc) rc = read_heartbeat(plain, cl, name, cap);
  cn_free(plain);
  return rc;
}

/* ---- DNS answers -------------------------------------------------------------------------------------------- */

static int add_node(cl_names *out, const char *basename, const char *host, const char *self) {
  char name[CN_ATOM_MAX_BYTES + 2];
  int k = snprintf(name, sizeof name, "%s@%s", basename, host);
  if (k < 0 || (size_t)k >= sizeof name || !node_name_ok(name, (size_t)k)) return 0; /* no node name: skipped */
  if (self && !strcmp(name, self)) return 0;
  return cl_names_add(out, name, (size_t)k);
}

int cl_dns_names(int type, const uint8_t *answer, size_t len, const char *basename, const char *self, cl_names *out) {
  if (len > 65535) return CN_EDECODE;
  size_t before = out->n;
  int rc = 0;
  if (type == CL_DNS_SRV) {
    struct ares_srv_reply *srv = NULL;
    int st = ares_parse_srv_reply(answer, (int)len, &srv);
    if (st == ARES_ENODATA) return CN_ENOTFOUND;
    if (st != ARES_SUCCESS) return CN_EDECODE;
    for (struct ares_srv_reply *r = srv; r && !rc; r = r->next) {
      size_t hl = strlen(r->host);
      while (hl && r->host[hl - 1] == '.') r->host[--hl] = 0;
      if (hl) rc = add_node(out, basename, r->host, self);
    }
    ares_free_data(srv);
  } else if (type == CL_DNS_A || type == CL_DNS_AAAA) {
    struct hostent *h = NULL;
    int st = type == CL_DNS_A ? ares_parse_a_reply(answer, (int)len, &h, NULL, NULL)
                              : ares_parse_aaaa_reply(answer, (int)len, &h, NULL, NULL);
    if (st == ARES_ENODATA) return CN_ENOTFOUND;
    if (st != ARES_SUCCESS || !h) return CN_EDECODE;
    int af = type == CL_DNS_A ? AF_INET : AF_INET6;
    for (char **a = h->h_addr_list; a && *a && !rc; a++) {
      char ip[INET6_ADDRSTRLEN];
      if (h->h_addrtype == af && inet_ntop(af, *a, ip, sizeof ip)) rc = add_node(out, basename, ip, self);
    }
    ares_free_hostent(h);
  } else {
    return CN_EINVAL;
  }
  if (rc) {
    while (out->n > before) cn_free(out->v[--out->n]);
    return rc;
  }
  return 0;
}

/* ---- host lists and back-off -------------------------------------------------------------------------------- */

int cl_hosts_parse(const char *csv, const char *self, cl_names *out, const char **bad) {
  const char *p = csv;
  while (*p) {
    p += strspn(p, " ,");
    size_t k = strcspn(p, ",");
    size_t e = k;
    while (e && p[e - 1] == ' ') e--;
    if (e) {
      if (!node_name_ok(p, e) || memchr(p, ' ', e)) {
        if (bad) *bad = p;
        return CN_EINVAL;
      }
      if (!self || strlen(self) != e || memcmp(self, p, e)) {
        int rc = cl_names_add(out, p, e);
        if (rc) return rc;
      }
    }
    p += k;
  }
  return 0;
}

unsigned cl_backoff_ms(unsigned failures, unsigned min_ms, unsigned max_ms) {
  unsigned ms = min_ms;
  for (unsigned i = 1; i < failures && ms < max_ms; i++) ms = ms > max_ms / 2 ? max_ms : ms * 2;
  return ms < max_ms ? ms : max_ms;
}
