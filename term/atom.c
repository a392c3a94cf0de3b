/* atom.c: the interned atom table (cn_atoms) and the strict UTF-8 checks atoms need.
 * Entries are allocated one by one and never move or die before the table; the index is open addressing. */
#include <pthread.h>
#include <string.h>

#include "term_int.h"

struct cn_atoms {
  pthread_mutex_t mu;
  const cn_atom **slots; /* open addressing, linear probing; NULL is empty (atoms are never removed) */
  size_t cap;            /* power of two */
  size_t count;
  size_t max_atoms; /* 0: no limit */
  uint64_t refused;
};

long term_utf8_count(const uint8_t *s, size_t len) {
  long chars = 0;
  size_t i = 0;
  while (i < len) {
    uint8_t c = s[i];
    size_t n;
    uint32_t cp, min;
    if (c < 0x80) {
      i++;
      chars++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      n = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      n = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return -1;
    }
    if (n > len - i) return -1;
    for (size_t k = 1; k < n; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return -1;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    /* Overlong forms, surrogates and values past Unicode are not text the BEAM would accept. */
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
    i += n;
    chars++;
  }
  return chars;
}

uint32_t term_utf8_next(const uint8_t *s, size_t len, size_t *i) {
  uint8_t c = s[*i];
  size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
  uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1Fu) : n == 3 ? (c & 0x0Fu) : (c & 0x07u);
  if (n > len - *i) n = len - *i; /* defensive: text was validated */
  for (size_t k = 1; k < n; k++) cp = (cp << 6) | (s[*i + k] & 0x3Fu);
  *i += n;
  return cp;
}

/* FNV-1a: atoms are short, so a simple byte hash is as fast as anything here. */
static uint32_t atom_hash(const char *s, size_t len) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
  return h;
}

int cn_atoms_new(cn_atoms **out, size_t max_atoms) {
  if (!out) return CN_EINVAL;
  *out = NULL;
  cn_atoms *t = cn_calloc(1, sizeof *t);
  if (!t) return CN_ENOMEM;
  t->cap = 256;
  t->slots = cn_calloc(t->cap, sizeof *t->slots);
  if (!t->slots || pthread_mutex_init(&t->mu, NULL) != 0) {
    cn_free(t->slots);
    cn_free(t);
    return CN_ENOMEM;
  }
  t->max_atoms = max_atoms;
  *out = t;
  return 0;
}

void cn_atoms_free(cn_atoms *tab) {
  if (!tab) return;
  for (size_t i = 0; i < tab->cap; i++) cn_free((void *)tab->slots[i]);
  cn_free(tab->slots);
  pthread_mutex_destroy(&tab->mu);
  cn_free(tab);
}

/* Returns the slot holding the atom or the empty slot where it belongs; called with the mutex held. */
static size_t find_slot(const cn_atoms *tab, const char *s, size_t len, uint32_t h) {
  size_t mask = tab->cap - 1, i = h & mask;
  for (;;) {
    const cn_atom *a = tab->slots[i];
    if (!a || (a->hash == h && a->len == len && memcmp(a->name, s, len) == 0)) return i;
    i = (i + 1) & mask;
  }
}

/* Doubles the index at half load; the atoms themselves stay where they are. */
static int grow(cn_atoms *tab) {
  size_t ncap = tab->cap * 2;
  const cn_atom **ns = cn_calloc(ncap, sizeof *ns);
  if (!ns) return CN_ENOMEM;
  for (size_t i = 0; i < tab->cap; i++) {
    const cn_atom *a = tab->slots[i];
    if (!a) continue;
    size_t j = a->hash & (ncap - 1);
    while (ns[j]) j = (j + 1) & (ncap - 1);
    ns[j] = a;
  }
  cn_free(tab->slots);
  tab->slots = ns;
  tab->cap = ncap;
  return 0;
}

const cn_atom *term_atoms_intern(cn_atoms *tab, const char *utf8, size_t len, size_t limit, int *err) {
  int dummy;
  if (!err) err = &dummy;
  if (!tab || (!utf8 && len)) {
    *err = CN_EINVAL;
    return NULL;
  }
  if (!utf8) utf8 = ""; /* (NULL, 0): the lookup's memcmp must not get NULL, even for 0 bytes */
  if (len > TERM_ATOM_MAX_BYTES) {
    *err = CN_EDECODE;
    return NULL;
  }
  long chars = term_utf8_count((const uint8_t *)utf8, len);
  if (chars < 0 || chars > TERM_ATOM_MAX_CHARS) {
    *err = CN_EDECODE;
    return NULL;
  }
  uint32_t h = atom_hash(utf8, len);
  const cn_atom *res = NULL;
  pthread_mutex_lock(&tab->mu);
  size_t i = find_slot(tab, utf8, len, h);
  if (tab->slots[i]) {
    res = tab->slots[i];
    *err = 0;
  } else if ((tab->max_atoms && tab->count >= tab->max_atoms) || (limit && tab->count >= limit)) {
    tab->refused++;
    *err = CN_ELIMIT;
  } else if ((tab->count + 1) * 2 > tab->cap && grow(tab) != 0) {
    *err = CN_ENOMEM;
  } else {
    cn_atom *a = cn_malloc(sizeof *a + len + 1);
    if (!a) {
      *err = CN_ENOMEM;
    } else {
      a->len = (uint32_t)len;
      a->hash = h;
      if (len) memcpy(a->name, utf8, len);
      a->name[len] = 0;
      tab->slots[find_slot(tab, utf8, len, h)] = a; /* the index may have grown: probe again */
      tab->count++;
      res = a;
      *err = 0;
    }
  }
  pthread_mutex_unlock(&tab->mu);
  return res;
}

const cn_atom *cn_atoms_intern(cn_atoms *tab, const char *utf8, size_t len) {
  return term_atoms_intern(tab, utf8, len, 0, NULL);
}

int cn_atoms_intern_status(cn_atoms *tab, const char *utf8, size_t len, const cn_atom **out) {
  int err = CN_EINVAL;
  const cn_atom *a = out ? term_atoms_intern(tab, utf8, len, 0, &err) : NULL;
  if (out) *out = a;
  return a ? 0 : err;
}

const cn_atom *cn_atoms_get(cn_atoms *tab, const char *utf8) {
  if (!utf8) return NULL;
  return cn_atoms_intern(tab, utf8, strlen(utf8));
}

const cn_atom *cn_atoms_find(cn_atoms *tab, const char *utf8, size_t len) {
  if (!tab || (!utf8 && len) || len > TERM_ATOM_MAX_BYTES) return NULL;
  uint32_t h = atom_hash(utf8, len);
  pthread_mutex_lock(&tab->mu);
  const cn_atom *a = tab->slots[find_slot(tab, utf8, len, h)];
  pthread_mutex_unlock(&tab->mu);
  return a;
}

size_t cn_atoms_count(cn_atoms *tab) {
  if (!tab) return 0;
  pthread_mutex_lock(&tab->mu);
  size_t n = tab->count;
  pthread_mutex_unlock(&tab->mu);
  return n;
}

uint64_t cn_atoms_refused(cn_atoms *tab) {
  if (!tab) return 0;
  pthread_mutex_lock(&tab->mu);
  uint64_t n = tab->refused;
  pthread_mutex_unlock(&tab->mu);
  return n;
}

/* ---- the decoder's per-connection cache: direct-mapped, single-threaded ---- */

/* A cache starts with CACHE_FIRST slots (inline) and grows, four times at a time up to its size, each time its
 * misses since the last growth reach CACHE_MISSES per slot (hits cost nothing more): a connection whose peer
 * sends few atoms (or none: ticks only) keeps a few hundred bytes, not 4 KiB. */
#define CACHE_FIRST 16
#define CACHE_MISSES 2

cn_atom_cache *cn_atom_cache_new(size_t slots) {
  if (slots == 0) slots = 256;
  if (slots > 65536) slots = 65536;
  size_t n = 1;
  while (n < slots) n <<= 1;
  size_t n0 = n < CACHE_FIRST ? n : CACHE_FIRST;
  cn_atom_cache *c = cn_calloc(1, sizeof *c + n0 * sizeof c->e[0]);
  if (!c) return NULL;
  c->mask = n0 - 1;
  c->max_mask = n - 1;
  c->e = c->first;
  return c;
}

void cn_atom_cache_free(cn_atom_cache *c) {
  if (c && c->e != c->first) cn_free(c->e);
  cn_free(c);
}

size_t term_atom_cache_slots(const cn_atom_cache *c) { return c->mask + 1; }

/* Four times the slots (at most the size asked for), the entries kept where they still map; out of memory: as
 * it was. Rare: kept out of line, so the lookup's fast path stays as short as before. */
static __attribute__((noinline)) void cache_grow(cn_atom_cache *c) {
  size_t n = (c->mask + 1) * 4;
  if (n > c->max_mask + 1) n = c->max_mask + 1;
  cache_ent *e = cn_calloc(n, sizeof *e);
  if (!e) return;
  for (size_t i = 0; i <= c->mask; i++)
    if (c->e[i].a) e[c->e[i].h & (n - 1)] = c->e[i];
  if (c->e != c->first) cn_free(c->e);
  c->e = e;
  c->mask = n - 1;
}

/* A lookup that missed: counts it (growing the cache in time), interns and fills the slot. Out of line, so the
 * hit path keeps few registers. */
static __attribute__((noinline)) const cn_atom *cache_miss(cn_atoms *tab, cn_atom_cache *c, uint32_t h,
                                                           const char *utf8, size_t len, size_t limit, int *err) {
  if (c->mask < c->max_mask && ++c->misses >= CACHE_MISSES * (c->mask + 1)) {
    cache_grow(c);
    c->misses = 0;
  }
  const cn_atom *a = term_atoms_intern(tab, utf8, len, limit, err);
  if (a) {
    cache_ent *e = &c->e[h & c->mask];
    e->a = a;
    e->h = h;
  }
  return a;
}

const cn_atom *term_atoms_intern_cached(cn_atoms *tab, cn_atom_cache *c, const char *utf8, size_t len, size_t limit,
                                        int *err) {
  if (!c || !tab) return term_atoms_intern(tab, utf8, len, limit, err);
  if (c->tab != tab) { /* first use, or another table: the entries mean nothing there */
    memset(c->e, 0, (c->mask + 1) * sizeof c->e[0]);
    c->tab = tab;
  }
  uint32_t h = cache_hash((const uint8_t *)utf8, len);
  cache_ent *e = &c->e[h & c->mask];
  /* The cached atom was interned from exactly this text, so its name is the key: no separate copy. */
  if (e->a && e->h == h && e->a->len == len && same_text((const uint8_t *)e->a->name, (const uint8_t *)utf8, len)) {
    *err = 0;
    return e->a;
  }
  return cache_miss(tab, c, h, utf8, len, limit, err);
}
