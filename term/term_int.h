/* term_int.h: internals shared by the files of term/ (atom table errors, UTF-8 helpers, term storage).
 * Private to libcnode: never installed, never included outside term/. */
#ifndef TERM_INT_H
#define TERM_INT_H

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "cn_term.h"

#define TERM_ATOM_MAX_BYTES CN_ATOM_MAX_BYTES
#define TERM_ATOM_MAX_CHARS CN_ATOM_MAX_CHARS

/* Interns like cn_atoms_intern but returns the reason directly in *err (CN_EDECODE: bad UTF-8 or too long,
 * CN_ELIMIT: table full, CN_ENOMEM), so concurrent callers do not race on the table's last error. */
/* Interns as cn_atoms_intern; limit > 0 refuses to create an atom once the table holds that many. */
const cn_atom *term_atoms_intern(cn_atoms *tab, const char *utf8, size_t len, size_t limit, int *err);

/* term_atoms_intern through a cache (NULL: straight to the table): a hit skips the UTF-8 check and the lock;
 * a miss interns (respecting limit) and fills the slot. */
const cn_atom *term_atoms_intern_cached(cn_atoms *tab, cn_atom_cache *c, const char *utf8, size_t len, size_t limit,
                                        int *err);

/* The decoder's per-connection atom cache (term/atom.c): direct-mapped, single-threaded. Its lookup is here,
 * inline, for the one-pass decoder (term/decode.c). */
typedef struct cache_ent {
  const cn_atom *a; /* NULL: empty */
  uint32_t h;
} cache_ent;

struct cn_atom_cache {
  cn_atoms *tab; /* the table its atoms belong to; NULL until first use */
  size_t mask;
  size_t max_mask; /* the size asked for, less one */
  size_t misses;   /* since the last growth */
  cache_ent *e;    /* first, or a larger array of its own */
  cache_ent first[];
};

/* A fast hash of short text: a few overlapping word loads and a multiply per word. */
static inline uint32_t cache_hash(const uint8_t *s, size_t n) {
  uint64_t h = (uint64_t)n * 0x9E3779B97F4A7C15ull, w;
  if (n >= 8) {
    size_t i = 0;
    for (; i + 8 < n; i += 8) {
      memcpy(&w, s + i, 8);
      h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
      h ^= h >> 31;
    }
    memcpy(&w, s + n - 8, 8);
  } else if (n >= 4) {
    uint32_t lo, hi;
    memcpy(&lo, s, 4);
    memcpy(&hi, s + n - 4, 4);
    w = (uint64_t)lo | (uint64_t)hi << 32;
  } else {
    w = n ? (uint64_t)s[0] | (uint64_t)s[n / 2] << 8 | (uint64_t)s[n - 1] << 16 : 0;
  }
  h = (h ^ w) * 0x94D049BB133111EBull;
  return (uint32_t)(h ^ (h >> 32));
}

/* memcmp(a, b, n) == 0 for the short names atoms mostly have, inline: word loads (overlapping at the end), no call. */
static inline int same_text(const uint8_t *a, const uint8_t *b, size_t n) {
  if (n >= 8) {
    uint64_t x, y;
    size_t i = 0;
    for (; i + 8 < n; i += 8) {
      memcpy(&x, a + i, 8);
      memcpy(&y, b + i, 8);
      if (x != y) return 0;
    }
    memcpy(&x, a + n - 8, 8);
    memcpy(&y, b + n - 8, 8);
    return x == y;
  }
  if (n >= 4) {
    uint32_t x0, y0, x1, y1;
    memcpy(&x0, a, 4);
    memcpy(&y0, b, 4);
    memcpy(&x1, a + n - 4, 4);
    memcpy(&y1, b + n - 4, 4);
    return x0 == y0 && x1 == y1;
  }
  for (size_t i = 0; i < n; i++)
    if (a[i] != b[i]) return 0;
  return 1;
}

/* The atom c holds for this text (a hit of term_atoms_intern_cached), or NULL: nothing is interned or counted. */
static inline const cn_atom *term_atom_cache_peek(const cn_atoms *tab, const cn_atom_cache *c, const char *utf8,
                                                  size_t len) {
  if (!c || c->tab != tab) return NULL;
  uint32_t h = cache_hash((const uint8_t *)utf8, len);
  const cache_ent *e = &c->e[h & c->mask];
  return e->a && e->h == h && e->a->len == len && same_text((const uint8_t *)e->a->name, (const uint8_t *)utf8, len)
             ? e->a
             : NULL;
}

/* The slots c has now (it starts small and grows to the size asked for while lookups miss often); for tests. */
size_t term_atom_cache_slots(const cn_atom_cache *c);

/* Counts the characters of len bytes of strict UTF-8 (no overlongs, surrogates or code points above
 * U+10FFFF); -1 when invalid. */
long term_utf8_count(const uint8_t *s, size_t len);
/* Decodes the code point at s[*i] (validated text) and moves *i past it. */
uint32_t term_utf8_next(const uint8_t *s, size_t len, size_t *i);

/* Trims high zero bytes of a little-endian magnitude (*n shrinks) and, when the integer fits int64_t, stores
 * it in *v and returns true (cn_mk_big's normalisation, shared with the decoder). */
bool term_big_to_int(int negative, const uint8_t *mag_le, size_t *n, int64_t *v);

/* The header before a decoded root (cn_term_decode): one allocation holds it, the root and the whole tree. */
typedef struct term_blk {
  atomic_size_t refs; /* cn_term_retain adds one; cn_term_free drops one, the last frees the block */
  cn_chunk *chunk;    /* the input's chunk when a binary points into it (one reference), else NULL */
} term_blk;
#define CN_SHARE_MIN_DEFAULT 512

/* Frees what t owns (children, arrays, bytes) but not t itself; t becomes nil. */
void term_clear(cn_term *t);
/* Deep-copies src into *dst (storage owned by the caller); 0 or CN_ENOMEM (then *dst owns nothing). */
int term_copy_into(cn_term *dst, const cn_term *src);

/* ---- order.c and phash2.c ---- */

/* ---- fun.c: the fields of a fun, read from its raw external format ---- */

/* What identifies a fun on OTP 25 and what printing shows. A local fun is its module, Index, OldUniq and free
 * variables for order and phash2 (the MD5, arity, OldIndex and creator pid do not count); an export fun is
 * module, function and arity. Printing shows a local fun as #Fun<Module.OldIndex.OldUniq>. */
typedef struct term_fun_id {
  int is_export;
  const uint8_t *mod, *fun; /* atom text: UTF-8 when *_utf8, else latin-1 */
  size_t mod_len, fun_len;
  int mod_utf8, fun_utf8;
  uint32_t arity;     /* export: Arity; local: the arity byte */
  uint32_t index;     /* local: Index */
  uint32_t old_index; /* local: OldIndex, as 32 bits (an integer of the format: (int32_t) gives its value) */
  uint32_t old_uniq;  /* local: OldUniq, as 32 bits */
  uint32_t num_free;  /* local */
  size_t env_off;     /* local: offset of the first free variable in the raw bytes */
} term_fun_id;
/* Fills id from t (a CN_FUN); CN_EDECODE when the bytes are not a fun the decoder accepted. */
int term_fun_id_get(const cn_term *t, term_fun_id *id);
/* Decodes the free variables of a local fun into a new tuple (atoms interned in tab); the caller frees it. */
int term_fun_env(const cn_term *t, const term_fun_id *id, cn_atoms *tab, cn_term **env);
/* Compares two atom texts by code point, then length (erts_cmp_atoms); each is UTF-8 or latin-1. */
int term_text_cmp(const uint8_t *a, size_t an, int a_utf8, const uint8_t *b, size_t bn, int b_utf8);
/* The term semantics of an OTP release: TERM_SEM_25 (0, or any release before 27), TERM_SEM_27 (27 and later:
 * -0.0 and 0.0 are different terms in the exact order). */
enum { TERM_SEM_25 = 0, TERM_SEM_27 = 1 };
int term_sem(int otp_release);
/* Term order (exact = 0: as erlang:'<'/2, 0 only when ==) or exact order (exact = 1: integers before
 * floats, 0 only when =:=), with sem a TERM_SEM_*. *res gets <0, 0 or >0. 0, or CN_ENOMEM / CN_EDECODE (a
 * malformed fun). */
int term_compare(const cn_term *a, const cn_term *b, int exact, int sem, int *res);

/* Doubles a walker's stack of n frames of elem bytes whose first frames live in the inline array inl: moves it
 * to the heap on the first growth. Returns the frames (then *cap is doubled), or NULL with the stack unchanged. */
void *term_stack_grow(void *frames, void *inl, size_t n, size_t *cap, size_t elem);

#endif
