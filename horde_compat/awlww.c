/* awlww.c: delta_crdt 0.6's AWLWWMap: version vectors, entries #{{Value, Ts} => MapSet(Dots)} per key, the
 * local add/remove deltas, the join of §2.4 and the last-writer-wins read. Entries are kept as the raw terms
 * BEAM stores (the Merkle hashes cover them). */
#include <stdlib.h>
#include <string.h>

#include "hc_int.h"

/* ---- Version vectors --------------------------------------------------------------------------------------- */

void hc_vv_free(hc_vv *v) {
  cn_free(v->e);
  memset(v, 0, sizeof *v);
}

int64_t hc_vv_get(const hc_vv *v, int64_t id) {
  for (size_t i = 0; i < v->n; i++)
    if (v->e[i].id == id) return v->e[i].n;
  return 0;
}

int hc_vv_bump(hc_vv *v, int64_t id, int64_t n) {
  for (size_t i = 0; i < v->n; i++)
    if (v->e[i].id == id) {
      if (n > v->e[i].n) v->e[i].n = n;
      return 0;
    }
  if (v->n == v->cap) {
    size_t cap = v->cap ? 2 * v->cap : 4;
    hc_dot *e = cn_realloc(v->e, cap * sizeof *e);
    if (!e) return CN_ENOMEM;
    v->e = e, v->cap = cap;
  }
  v->e[v->n++] = (hc_dot){id, n};
  return 0;
}

int hc_vv_union(hc_vv *v, const hc_vv *o) {
  for (size_t i = 0; i < o->n; i++)
    if (hc_vv_bump(v, o->e[i].id, o->e[i].n)) return CN_ENOMEM;
  return 0;
}

int hc_vv_copy(hc_vv *dst, const hc_vv *src) {
  memset(dst, 0, sizeof *dst);
  return hc_vv_union(dst, src);
}

cn_term *hc_vv_term(const hc_vv *v) {
  cn_term **kv = cn_malloc((2 * v->n + 1) * sizeof *kv);
  if (!kv) return NULL;
  for (size_t i = 0; i < v->n; i++) {
    kv[2 * i] = cn_mk_int(v->e[i].id);
    kv[2 * i + 1] = cn_mk_int(v->e[i].n);
  }
  /* cn_mk_map takes the pairs even when it fails, and a NULL among them (a failed copy) makes it fail. */
  cn_term *m = cn_mk_map(v->n, kv);
  cn_free(kv);
  return m;
}

int hc_vv_parse(const cn_term *t, hc_vv *out) {
  memset(out, 0, sizeof *out);
  if (!t || t->type != CN_MAP) return CN_EDECODE;
  for (uint32_t i = 0; i < t->v.map.size; i++) {
    const cn_term *k = &t->v.map.kv[2 * i], *v = &t->v.map.kv[2 * i + 1];
    if (k->type != CN_INT || v->type != CN_INT) {
      hc_vv_free(out);
      return CN_EDECODE;
    }
    if (hc_vv_bump(out, k->v.i, v->v.i)) {
      hc_vv_free(out);
      return CN_ENOMEM;
    }
  }
  return 0;
}

static bool covered(const hc_vv *v, hc_dot d) { return d.n <= hc_vv_get(v, d.id); }

/* ---- The key table ---------------------------------------------------------------------------------------- */

void hc_awlww_init(hc_awlww *a) { memset(a, 0, sizeof *a); }

void hc_awlww_free(hc_awlww *a) {
  for (size_t i = 0; i < a->nb; i++)
    for (hc_kent *e = a->b[i], *nx; e; e = nx) {
      nx = e->next;
      cn_term_free(e->key);
      cn_term_free(e->raw);
      cn_free(e);
    }
  cn_free(a->b);
  hc_vv_free(&a->vv);
  cn_free(a->gone.e);
  memset(a, 0, sizeof *a);
}

hc_kent *hc_awlww_find(const hc_awlww *a, const cn_term *key, uint32_t kh) {
  if (!a->nb) return NULL;
  for (hc_kent *e = a->b[kh & (a->nb - 1)]; e; e = e->next)
    if (e->kh == kh && cn_term_exact_eq_otp(e->key, key, a->otp_release)) return e;
  return NULL;
}

static int grow(hc_awlww *a) {
  size_t nb = a->nb ? 2 * a->nb : 64;
  hc_kent **b = cn_calloc(nb, sizeof *b);
  if (!b) return CN_ENOMEM;
  for (size_t i = 0; i < a->nb; i++)
    for (hc_kent *e = a->b[i], *nx; e; e = nx) {
      nx = e->next;
      e->next = b[e->kh & (nb - 1)];
      b[e->kh & (nb - 1)] = e;
    }
  cn_free(a->b);
  a->b = b, a->nb = nb;
  return 0;
}

static void unlink_recent(hc_awlww *a, hc_kent *e) {
  if (e->newer) e->newer->older = e->older;
  else if (a->recent == e) a->recent = e->older;
  if (e->older) e->older->newer = e->newer;
  e->newer = e->older = NULL;
}

/* e's entries changed: it becomes the most recent key. */
static void touch(hc_awlww *a, hc_kent *e) {
  unlink_recent(a, e);
  e->older = a->recent;
  if (a->recent) a->recent->newer = e;
  a->recent = e;
  e->seq = ++a->seq;
}

int hc_awlww_set(hc_awlww *a, const cn_term *key, uint32_t kh, cn_term *raw) {
  hc_kent *e = hc_awlww_find(a, key, kh);
  if (e && raw) {
    cn_term_free(e->raw);
    e->raw = raw;
    touch(a, e);
    return 0;
  }
  if (e) { /* delete */
    hc_kent **pp = &a->b[kh & (a->nb - 1)];
    while (*pp != e) pp = &(*pp)->next;
    *pp = e->next;
    unlink_recent(a, e);
    cn_term_free(e->key);
    cn_term_free(e->raw);
    cn_free(e);
    a->count--;
    return 0;
  }
  if (!raw) return 0;
  if (a->count >= a->nb && grow(a)) {
    cn_term_free(raw);
    return CN_ENOMEM;
  }
  e = cn_calloc(1, sizeof *e);
  if (!e || !(e->key = cn_term_copy(key))) {
    cn_free(e);
    cn_term_free(raw);
    return CN_ENOMEM;
  }
  e->kh = kh;
  e->raw = raw;
  e->next = a->b[kh & (a->nb - 1)];
  a->b[kh & (a->nb - 1)] = e;
  a->count++;
  touch(a, e);
  return 0;
}

/* ---- Entries ------------------------------------------------------------------------------------------------ */

const cn_term *hc_read_raw(const cn_term *raw) {
  if (!raw || raw->type != CN_MAP) return NULL;
  const cn_term *best = NULL;
  for (uint32_t i = 0; i < raw->v.map.size; i++) {
    const cn_term *ek = &raw->v.map.kv[2 * i];
    if (ek->type != CN_TUPLE || ek->v.tuple.arity != 2) continue;
    if (!best) {
      best = ek;
      continue;
    }
    /* Enum.max_by keeps the first maximum in map order: ascending term order of the entry keys. */
    int c = cn_term_cmp(&ek->v.tuple.e[1], &best->v.tuple.e[1]);
    if (c > 0 || (c == 0 && cn_term_cmp(ek, best) < 0)) best = ek;
  }
  return best ? &best->v.tuple.e[0] : NULL;
}

/* ---- Claimed dots ------------------------------------------------------------------------------------------- */

bool hc_dots_has(const hc_dots *s, hc_dot d) {
  for (size_t i = 0; s && i < s->n; i++)
    if (s->e[i].id == d.id && s->e[i].n == d.n) return true;
  return false;
}

static int dots_add(hc_dots *s, hc_dot d) {
  if (hc_dots_has(s, d)) return 0;
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 4;
    hc_dot *e = cn_realloc(s->e, cap * sizeof *e);
    if (!e) return CN_ENOMEM;
    s->e = e, s->cap = cap;
  }
  s->e[s->n++] = d;
  return 0;
}

/* Keeps the dots of s that vv does not cover. */
static void dots_drop_covered(hc_dots *s, const hc_vv *vv) {
  size_t k = 0;
  for (size_t i = 0; i < s->n; i++)
    if (!covered(vv, s->e[i])) s->e[k++] = s->e[i];
  s->n = k;
}

static int dot_cmp(const void *x, const void *y) {
  const hc_dot *a = x, *b = y;
  if (a->id != b->id) return a->id < b->id ? -1 : 1;
  return a->n < b->n ? -1 : a->n > b->n;
}

/* Appends the dots of raw entries that vv does not cover and whose node has a dot in gone to s. */
static int held_beyond(const cn_term *raw, const hc_vv *vv, const hc_dots *gone, hc_dots *s) {
  for (uint32_t i = 0; raw && raw->type == CN_MAP && i < raw->v.map.size; i++) {
    hc_dot *d;
    size_t n;
    int rc = hc_parse_dotset(&raw->v.map.kv[2 * i + 1], &d, &n);
    if (rc) return rc;
    for (size_t j = 0; j < n && !rc; j++) {
      bool mine = false;
      for (size_t g = 0; g < gone->n && !mine; g++) mine = gone->e[g].id == d[j].id;
      if (mine && !covered(vv, d[j])) rc = dots_add(s, d[j]);
    }
    cn_free(d);
    if (rc) return rc;
  }
  return 0;
}

int hc_awlww_settle(hc_awlww *a, bool scan) {
  dots_drop_covered(&a->gone, &a->vv);
  if (!a->gone.n) return 0;
  /* what this node has of each gone dot's node beyond vv: the gone dots and the dots its entries hold (rare: only
   * after a claim was withheld, so a whole scan is fine) */
  hc_dots s = {0};
  int rc = 0;
  for (size_t i = 0; i < a->gone.n && !rc; i++) rc = dots_add(&s, a->gone.e[i]);
  for (size_t i = 0; scan && i < a->nb && !rc; i++)
    for (hc_kent *e = a->b[i]; e && !rc; e = e->next) rc = held_beyond(e->raw, &a->vv, &a->gone, &s);
  if (!rc && s.e) {
    qsort(s.e, s.n, sizeof *s.e, dot_cmp);
    for (size_t i = 0; i < s.n && !rc; i++) {
      int64_t have = hc_vv_get(&a->vv, s.e[i].id);
      if (s.e[i].n == have + 1) rc = hc_vv_bump(&a->vv, s.e[i].id, s.e[i].n);
    }
    dots_drop_covered(&a->gone, &a->vv);
  }
  cn_free(s.e);
  return rc;
}

/* The dots of raw entries (NULL: none) that a local add or remove removes: vv takes those it covers (§2.3 joins
 * the delta's dots R into it); the others go to gone, then the vector settles, and a dot still in gone counts as
 * withheld: there delta_crdt's vector would claim a dot this node has not received. */
static int claim(hc_awlww *a, const cn_term *raw) {
  hc_dots added = {0};
  int rc = 0;
  for (uint32_t i = 0; raw && i < raw->v.map.size && !rc; i++) {
    hc_dot *d;
    size_t n;
    if ((rc = hc_parse_dotset(&raw->v.map.kv[2 * i + 1], &d, &n))) break;
    for (size_t j = 0; j < n && !rc; j++)
      if (!covered(&a->vv, d[j]) && !hc_dots_has(&a->gone, d[j]) && !(rc = dots_add(&a->gone, d[j])))
        rc = dots_add(&added, d[j]);
    cn_free(d);
  }
  if (!rc && added.n) rc = hc_awlww_settle(a, true);
  for (size_t i = 0; !rc && i < added.n; i++) a->withheld += hc_dots_has(&a->gone, added.e[i]);
  cn_free(added.e);
  return rc;
}

bool hc_raw_beyond(const cn_term *raw, const hc_vv *then) {
  for (uint32_t i = 0; raw && raw->type == CN_MAP && i < raw->v.map.size; i++) {
    hc_dot *d;
    size_t n;
    if (hc_parse_dotset(&raw->v.map.kv[2 * i + 1], &d, &n)) return true;
    bool newer = false;
    for (size_t j = 0; j < n && !newer; j++) newer = !covered(then, d[j]);
    cn_free(d);
    if (newer) return true;
  }
  return false;
}

int hc_awlww_add(const hc_ctx *c, hc_awlww *a, int64_t node_id, const cn_term *key, uint32_t kh, const cn_term *value,
                 int64_t ts, cn_term **raw_out) {
  *raw_out = NULL;
  hc_kent *e = hc_awlww_find(a, key, kh);
  hc_dot d = {node_id, hc_vv_get(&a->vv, node_id) + 1};
  /* The delta's dots are R + {d}: every old entry is covered by them and goes; the new one stays. */
  int rc = claim(a, e ? e->raw : NULL);
  if (rc || (rc = hc_vv_bump(&a->vv, d.id, d.n))) return rc;
  cn_term *kv[2] = {cn_mk_tuple(2, cn_term_copy(value), cn_mk_int(ts)), hc_mk_dotset(c, &d, 1)};
  if (!kv[0] || !kv[1]) {
    cn_term_free(kv[0]);
    cn_term_free(kv[1]);
    return CN_ENOMEM;
  }
  *raw_out = cn_mk_map(1, kv);
  return *raw_out ? 0 : CN_ENOMEM;
}

int hc_awlww_remove(hc_awlww *a, const cn_term *key, uint32_t kh) {
  hc_kent *e = hc_awlww_find(a, key, kh);
  return claim(a, e ? e->raw : NULL);
}

static bool has_dot(const hc_dot *s, size_t n, hc_dot d) {
  for (size_t i = 0; i < n; i++)
    if (s[i].id == d.id && s[i].n == d.n) return true;
  return false;
}

/* The joined dot set of one entry: (S1 ∩ S2) + (S1 not covered by v2) + (S2 not covered by v1 or g1). */
static size_t join_dots(const hc_dot *s1, size_t n1, const hc_dot *s2, size_t n2, const hc_vv *v1, const hc_dots *g1,
                        const hc_vv *v2, hc_dot *out) {
  size_t k = 0;
  for (size_t i = 0; i < n1; i++)
    if (!has_dot(out, k, s1[i]) && (has_dot(s2, n2, s1[i]) || !covered(v2, s1[i]))) out[k++] = s1[i];
  for (size_t i = 0; i < n2; i++)
    if (!has_dot(out, k, s2[i]) && !covered(v1, s2[i]) && !hc_dots_has(g1, s2[i])) out[k++] = s2[i];
  return k;
}

int hc_join_entries(const hc_ctx *c, const cn_term *e1, const cn_term *e2, const hc_vv *v1, const hc_dots *g1,
                    const hc_vv *v2, cn_term **out) {
  *out = NULL;
  if ((e1 && e1->type != CN_MAP) || (e2 && e2->type != CN_MAP)) return CN_EDECODE;
  size_t n1 = e1 ? e1->v.map.size : 0, n2 = e2 ? e2->v.map.size : 0, k = 0;
  cn_term **kv = cn_malloc((2 * (n1 + n2) + 1) * sizeof *kv);
  if (!kv) return CN_ENOMEM;
  int rc = 0;
  /* side 0: entries of e1 (with e2's set for the same entry key); side 1: entries only in e2 */
  for (int side = 0; side < 2 && !rc; side++) {
    const cn_term *src = side ? e2 : e1, *oth = side ? e1 : e2;
    for (uint32_t i = 0; src && i < src->v.map.size && !rc; i++) {
      const cn_term *ek = &src->v.map.kv[2 * i], *set = &src->v.map.kv[2 * i + 1];
      const cn_term *oset = hc_map_find(oth, ek, c->otp_release);
      if (side && oset) continue; /* done from e1's side */
      hc_dot *a = NULL, *b = NULL, *o = NULL;
      size_t na = 0, nb = 0;
      if ((rc = hc_parse_dotset(set, &a, &na)) || (oset && (rc = hc_parse_dotset(oset, &b, &nb)))) {
        cn_free(a);
        break;
      }
      o = cn_malloc((na + nb + 1) * sizeof *o);
      if (!o) rc = CN_ENOMEM;
      size_t no = 0;
      if (o) no = side ? join_dots(NULL, 0, a, na, v1, g1, v2, o) : join_dots(a, na, b, nb, v1, g1, v2, o);
      if (!rc && no) {
        kv[k] = cn_term_copy(ek);
        kv[k + 1] = hc_mk_dotset(c, o, no);
        if (!kv[k] || !kv[k + 1]) {
          cn_term_free(kv[k]);
          cn_term_free(kv[k + 1]);
          rc = CN_ENOMEM;
        } else {
          k += 2;
        }
      }
      cn_free(a);
      cn_free(b);
      cn_free(o);
    }
  }
  if (rc) {
    for (size_t i = 0; i < k; i++) cn_term_free(kv[i]);
  } else if (k) {
    *out = cn_mk_map(k / 2, kv);
    if (!*out) rc = CN_ENOMEM;
  }
  cn_free(kv);
  return rc;
}
