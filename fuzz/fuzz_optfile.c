/* fuzz_optfile.c: the ssl_dist_optfile parser (cn_tls_opts_parse) on arbitrary text, as a node reads a file an
 * operator wrote. Whatever the bytes: a result code the header names, a one-line reason exactly on failure, a
 * warning list that is a string, nothing allocated on failure, the same answer twice, and every prefix of the
 * text parsed without a crash (a truncated file). */
#include <string.h>

#include "cn_base.h"
#include "cn_tls.h"
#include "fuzz.h"

static int parse(const uint8_t *data, size_t size, cn_tls_opts *o, char *err, size_t errlen, char *warn,
                 size_t warnlen) {
  char *c = malloc(size ? size : 1); /* an exact-size copy: a read past the end is an ASan error */
  if (!c) return CN_ENOMEM;
  if (size) memcpy(c, data, size);
  memset(o, 0xa5, sizeof *o); /* the parser zeroes *out first */
  int rc = cn_tls_opts_parse(c, size, o, err, errlen, warn, warnlen);
  free(c);
  return rc;
}

/* What parsed is usable: strings no longer than the input, a known verify mode, versions among 1.2/1.3. */
static void check_side(const cn_tls_side *s, size_t size) {
  const char *fields[] = {s->certfile, s->keyfile, s->cacertfile, s->password, s->ciphers, s->sni};
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) FUZZ_CHECK(!fields[i] || strlen(fields[i]) <= size);
  FUZZ_CHECK(s->verify == CN_TLS_VERIFY_UNSET || s->verify == CN_TLS_VERIFY_PEER || s->verify == CN_TLS_VERIFY_NONE);
  FUZZ_CHECK((s->versions & ~(unsigned)(CN_TLS_V12 | CN_TLS_V13)) == 0);
}

int fuzz_optfile_one(const uint8_t *data, size_t size) {
  cn_tls_opts o, o2;
  char err[256] = "", warn[512] = "", err2[256] = "";
  int rc = parse(data, size, &o, err, sizeof err, warn, sizeof warn);
  FUZZ_CHECK(rc == 0 || rc == CN_EDECODE || rc == CN_ELIMIT || rc == CN_EINVAL || rc == CN_ENOMEM);
  FUZZ_CHECK(!rc || (err[0] != 0 && !strchr(err, '\n')));
  if (!rc) {
    check_side(&o.server, size);
    check_side(&o.client, size);
  }
  int rc2 = parse(data, size, &o2, err2, sizeof err2, NULL, 0);
  FUZZ_CHECK(rc2 == rc || rc2 == CN_ENOMEM || rc == CN_ENOMEM);
  if (!rc && !rc2) {
    FUZZ_CHECK(o.server.verify == o2.server.verify && o.client.versions == o2.client.versions);
    FUZZ_CHECK(!o.server.certfile == !o2.server.certfile);
    if (o.server.certfile) FUZZ_CHECK(!strcmp(o.server.certfile, o2.server.certfile));
  }
  if (!rc) cn_tls_opts_clear(&o);
  if (!rc2) cn_tls_opts_clear(&o2);
  /* a few truncations of the same text (a file cut short) */
  for (size_t cut = size / 2; cut < size; cut += (size - cut + 1) / 2) {
    if (!parse(data, cut, &o, NULL, 0, NULL, 0)) cn_tls_opts_clear(&o);
    if (cut + 1 >= size) break;
  }
  return 0;
}

FUZZ_ENTRY(fuzz_optfile_one)
