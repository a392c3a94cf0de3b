/* fuzz_term.c: the external term format decoder (cn_term_from_binary, cn_term_decode) on bytes a peer sends.
 * Every term it accepts must re-encode, decode again to an equal term, encode to the same bytes, print, copy
 * and hash alike. */
#include <string.h>

#include "cn_term.h"
#include "fuzz.h"

/* Checks what a decoded term promises; t is borrowed. */
static void check_term(cn_atoms *tab, const cn_term *t) {
  cn_buf b1 = {0}, b2 = {0};
  /* A term that came off the wire must go back on it. */
  FUZZ_CHECK(cn_term_to_binary(t, &b1) == 0);
  cn_term *t2 = NULL;
  FUZZ_CHECK(cn_term_from_binary(tab, b1.data, b1.len, NULL, &t2) == 0);
  FUZZ_CHECK(cn_term_exact_eq(t, t2));
  FUZZ_CHECK(cn_term_exact_eq(t2, t));
  /* Our encoding is canonical (term_to_binary's), so a second trip gives the same bytes. */
  FUZZ_CHECK(cn_term_to_binary(t2, &b2) == 0);
  FUZZ_CHECK(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0);
  FUZZ_CHECK(cn_term_cmp(t, t2) == 0);
  FUZZ_CHECK(cn_phash2(t) == cn_phash2(t2));

  char *s = cn_term_to_string(t);
  FUZZ_CHECK(s != NULL);
  cn_free(s);

  cn_term *c = cn_term_copy(t);
  FUZZ_CHECK(c != NULL);
  FUZZ_CHECK(cn_term_exact_eq(c, t));
  cn_term_free(c);

  cn_term_free(t2);
  cn_buf_free(&b1);
  cn_buf_free(&b2);
}

int fuzz_term_one(const uint8_t *data, size_t size) {
  cn_atoms *tab;
  if (cn_atoms_new(&tab, 0)) return 0;
  cn_term *t = (cn_term *)data; /* not NULL, so the decoder must be the one to clear it */

  /* binary_to_term: 131, one term, nothing after it. */
  int rc = cn_term_from_binary(tab, data, size, NULL, &t);
  if (rc == 0) {
    FUZZ_CHECK(t != NULL);
    check_term(tab, t);
    cn_term_free(t);
  } else {
    FUZZ_CHECK(rc < 0 && t == NULL);
  }

  /* The distribution path: terms one after another (control, payload), no version byte, under limits that
   * the input picks so CN_ELIMIT is reached too. */
  if (size > 0) {
    cn_decode_opts opts = {.max_depth = 1 + data[0] % 64, .max_size = data[0] & 0x80 ? 0 : 64u * data[0]};
    size_t off = 1;
    for (int n = 0; n < 64 && off < size; n++) {
      size_t before = off;
      t = (cn_term *)data;
      rc = cn_term_decode(tab, data, size, &off, &opts, &t);
      if (rc) {
        FUZZ_CHECK(rc < 0 && t == NULL && off == before);
        break;
      }
      FUZZ_CHECK(t != NULL && off > before && off <= size);
      FUZZ_CHECK(!opts.max_size || off - before <= opts.max_size);
      check_term(tab, t);
      cn_term_free(t);
    }
  }
  /* The one-pass decoding (a cache holding the atoms; cn_term_decode_into's memory) answers as the two passes do:
   * the same error or an equal term, ending at the same byte. The first round fills the cache. */
  cn_atom_cache *ac = size > 0 ? cn_atom_cache_new(0) : NULL;
  if (ac) {
    cn_decode_opts o1 = {.max_depth = 1 + data[0] % 64, .max_size = data[0] & 0x80 ? 0 : 64u * data[0]};
    cn_decode_opts o2 = o1;
    o2.cache = ac;
    cn_term mem[8];
    for (int round = 0; round < 2; round++) {
      size_t off1 = 1, off2 = 1;
      for (int n = 0; n < 16 && off1 < size; n++) {
        cn_term *t1 = NULL, *t2 = NULL;
        int r1 = cn_term_decode(tab, data, size, &off1, &o1, &t1);
        int r2 = n & 1 ? cn_term_decode_into(tab, data, size, &off2, &o2, mem, sizeof mem, &t2)
                       : cn_term_decode(tab, data, size, &off2, &o2, &t2);
        FUZZ_CHECK(r1 == r2 && off1 == off2);
        if (!r1) FUZZ_CHECK(cn_term_exact_eq(t1, t2));
        cn_term_free(t1);
        if (t2 != mem) cn_term_free(t2);
        if (r1) break;
      }
    }
    cn_atom_cache_free(ac);
  }
  cn_atoms_free(tab);
  return 0;
}

FUZZ_ENTRY(fuzz_term_one)
