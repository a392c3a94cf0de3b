/* fuzz_cluster.c: discovery's decoders of network bytes (cluster/pure.c): libcluster Gossip heartbeats, clear and
 * encrypted, and DNS answers. The first byte picks: 0 clear heartbeat, 1 encrypted (a fixed secret), 2 A, 3 AAAA,
 * 4 SRV answer (other values: the low 3 bits modulo 5). A heartbeat read gives a node name that encodes back to
 * a heartbeat reading the same name (clear and encrypted); an answer gives basename@host names, none twice. */
#include <string.h>

#include "cluster_int.h"
#include "fuzz.h"

static void check_heartbeat(const uint8_t *p, size_t n, const uint8_t *key) {
  char name[CN_ATOM_MAX_BYTES + 1], again[CN_ATOM_MAX_BYTES + 1];
  uint8_t *c = malloc(n ? n : 1); /* an exact-size copy: a read past n is an ASan error */
  if (!c) return;
  if (n) memcpy(c, p, n);
  int rc = cl_hb_decode(c, n, key, name, sizeof name);
  free(c);
  if (rc) {
    FUZZ_CHECK(rc == CN_EDECODE || rc == CN_ETRUNC || rc == CN_EAUTH || rc == CN_ELIMIT || rc == CN_ENOMEM);
    return;
  }
  FUZZ_CHECK(strchr(name, '@') && name[0] != '@' && strlen(name) < sizeof name);
  uint8_t iv[CL_IV_LEN] = {0};
  if (key) memcpy(iv, p, CL_IV_LEN); /* the input had at least an IV */
  cn_buf b = {0};
  FUZZ_CHECK(cl_hb_encode(name, key, iv, &b) == 0 || b.len == 0);
  if (b.len) {
    FUZZ_CHECK(cl_hb_decode(b.data, b.len, key, again, sizeof again) == 0);
    FUZZ_CHECK(!strcmp(name, again));
  }
  cn_buf_free(&b);
}

static void check_answer(int type, const uint8_t *p, size_t n) {
  cl_names l = {0};
  uint8_t *c = malloc(n ? n : 1);
  if (!c) return;
  if (n) memcpy(c, p, n);
  int rc = cl_dns_names(type, c, n, "base", "base@self", &l);
  free(c);
  if (!rc) {
    for (size_t i = 0; i < l.n; i++) {
      FUZZ_CHECK(!strncmp(l.v[i], "base@", 5) && l.v[i][5] && strcmp(l.v[i], "base@self"));
      for (size_t j = 0; j < i; j++) FUZZ_CHECK(strcmp(l.v[i], l.v[j]));
    }
  } else {
    FUZZ_CHECK(l.n == 0);
  }
  cl_names_free(&l);
}

int fuzz_cluster_one(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int which = (data[0] & 7) % 5;
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  uint8_t key[CL_KEY_LEN];
  switch (which) {
  case 0: check_heartbeat(p, n, NULL); break;
  case 1:
    cl_key_from_secret("somepassword", key);
    check_heartbeat(p, n, key);
    break;
  case 2: check_answer(CL_DNS_A, p, n); break;
  case 3: check_answer(CL_DNS_AAAA, p, n); break;
  default: check_answer(CL_DNS_SRV, p, n); break;
  }
  return 0;
}

FUZZ_ENTRY(fuzz_cluster_one)
