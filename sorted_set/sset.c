/* sset.c: the sorted set's data structure: a treap (a binary search tree kept balanced by random priorities) whose
 * nodes count their subtree, for O(log n) rank and access by rank, and an open-addressing hash table from member to
 * node, for O(1) score lookup. Pure: no node, no I/O. */
#include <string.h>

#include "cn_sorted_set.h"

typedef struct ss_node {
  struct ss_node *l, *r;
  uint32_t size; /* nodes in this subtree */
  uint32_t prio; /* heap order: a parent's is at least its children's */
  uint32_t hash; /* phash2 of the member */
  cn_term *score, *member;
} ss_node;

struct cn_sset {
  ss_node *root;
  ss_node **tab; /* linear probing, capacity a power of two, at most 3/4 full */
  size_t cap, count;
  int rel;
  uint64_t rng;
};

static uint32_t sz(const ss_node *t) { return t ? t->size : 0; }
static void fix(ss_node *t) { t->size = 1 + sz(t->l) + sz(t->r); }

static uint32_t next_prio(cn_sset *s) {
  s->rng ^= s->rng << 13;
  s->rng ^= s->rng >> 7;
  s->rng ^= s->rng << 17;
  return (uint32_t)(s->rng >> 16);
}

/* {Score, Member} in term order; members equal under == but not =:= (1 and 1.0) by the exact order, so that the
 * order is total over distinct members. */
static int key_cmp(int rel, const cn_term *sa, const cn_term *ma, const cn_term *sb, const cn_term *mb) {
  int c = cn_term_cmp_otp(sa, sb, rel);
  if (c || (c = cn_term_cmp_otp(ma, mb, rel))) return c;
  int r = 0;
  cn_term_compare_otp(ma, mb, true, rel, &r);
  return r;
}

static int node_cmp(const cn_sset *s, const ss_node *a, const ss_node *b) {
  return key_cmp(s->rel, a->score, a->member, b->score, b->member);
}

/* ---- The treap ------------------------------------------------------------------------------------------- */

/* Splits t into the nodes before k (*l) and the others (*r). */
static void split(const cn_sset *s, ss_node *t, const ss_node *k, ss_node **l, ss_node **r) {
  if (!t) {
    *l = *r = NULL;
  } else if (node_cmp(s, t, k) < 0) {
    split(s, t->r, k, &t->r, r);
    fix(t);
    *l = t;
  } else {
    split(s, t->l, k, l, &t->l);
    fix(t);
    *r = t;
  }
}

/* Joins l and r, every node of l before every node of r. */
static ss_node *merge(ss_node *l, ss_node *r) {
  if (!l || !r) return l ? l : r;
  if (l->prio >= r->prio) {
    l->r = merge(l->r, r);
    fix(l);
    return l;
  }
  r->l = merge(l, r->l);
  fix(r);
  return r;
}

static ss_node *insert(const cn_sset *s, ss_node *t, ss_node *x) {
  if (!t) return x;
  if (x->prio > t->prio) {
    split(s, t, x, &x->l, &x->r);
    fix(x);
    return x;
  }
  if (node_cmp(s, x, t) < 0) t->l = insert(s, t->l, x);
  else t->r = insert(s, t->r, x);
  fix(t);
  return t;
}

static ss_node *erase(const cn_sset *s, ss_node *t, const ss_node *x) {
  if (t == x) return merge(t->l, t->r);
  if (node_cmp(s, x, t) < 0) t->l = erase(s, t->l, x);
  else t->r = erase(s, t->r, x);
  fix(t);
  return t;
}

static size_t rank_of(const cn_sset *s, const ss_node *x) {
  size_t r = 0;
  for (const ss_node *t = s->root; t;) {
    int c = node_cmp(s, x, t);
    if (c == 0) return r + sz(t->l);
    if (c < 0) {
      t = t->l;
    } else {
      r += sz(t->l) + 1;
      t = t->r;
    }
  }
  return r; /* not reached for a node of the set */
}

/* ---- The member table ------------------------------------------------------------------------------------- */

static size_t slot_of(const cn_sset *s, const cn_term *member, uint32_t h) {
  size_t mask = s->cap - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask)
    if (!s->tab[i] || (s->tab[i]->hash == h && cn_term_exact_eq_otp(s->tab[i]->member, member, s->rel))) return i;
}

static ss_node *find(const cn_sset *s, const cn_term *member) {
  if (!s->cap) return NULL;
  return s->tab[slot_of(s, member, cn_phash2(member))];
}

static int tab_grow(cn_sset *s) {
  size_t cap = s->cap ? s->cap * 2 : 16;
  ss_node **old = s->tab, **tab = cn_calloc(cap, sizeof *tab);
  if (!tab) return CN_ENOMEM;
  size_t oldcap = s->cap;
  s->tab = tab;
  s->cap = cap;
  for (size_t i = 0; i < oldcap; i++)
    if (old[i]) s->tab[slot_of(s, old[i]->member, old[i]->hash)] = old[i];
  cn_free(old);
  return 0;
}

/* Removes slot i, moving later entries of its probe run back (no tombstones). */
static void tab_del(cn_sset *s, size_t i) {
  size_t mask = s->cap - 1;
  s->tab[i] = NULL;
  for (size_t j = (i + 1) & mask; s->tab[j]; j = (j + 1) & mask) {
    size_t home = s->tab[j]->hash & mask;
    /* The entry at j may fill the hole at i when its home is not in (i, j] (cyclically). */
    if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
      s->tab[i] = s->tab[j];
      s->tab[j] = NULL;
      i = j;
    }
  }
  s->count--;
}

/* ---- The API ----------------------------------------------------------------------------------------------- */

int cn_sset_new(cn_sset **out, int rel) {
  *out = NULL;
  if (rel && (rel < CN_OTP_RELEASE_MIN || rel > CN_OTP_RELEASE_MAX)) return CN_EINVAL;
  cn_sset *s = cn_calloc(1, sizeof *s);
  if (!s) return CN_ENOMEM;
  s->rel = rel ? rel : CN_OTP_RELEASE_DEFAULT;
  s->rng = 0x9e3779b97f4a7c15ull ^ (uintptr_t)s;
  *out = s;
  return 0;
}

static void node_free(ss_node *x) {
  cn_term_free(x->score);
  cn_term_free(x->member);
  cn_free(x);
}

void cn_sset_free(cn_sset *s) {
  if (!s) return;
  for (size_t i = 0; i < s->cap; i++)
    if (s->tab[i]) node_free(s->tab[i]);
  cn_free(s->tab);
  cn_free(s);
}

int cn_sset_add(cn_sset *s, const cn_term *score, const cn_term *member) {
  if (!score || !member) return CN_EINVAL;
  uint32_t h = cn_phash2(member);
  if ((s->count + 1) * 4 > s->cap * 3 && tab_grow(s)) return CN_ENOMEM;
  size_t i = slot_of(s, member, h);
  ss_node *x = s->tab[i];
  cn_term *sc = cn_term_copy(score);
  if (!sc) return CN_ENOMEM;
  if (x) { /* a new score moves the member: out of the tree, then back in at its new place */
    s->root = erase(s, s->root, x);
    cn_term_free(x->score);
    x->score = sc;
    x->l = x->r = NULL;
    x->size = 1;
    s->root = insert(s, s->root, x);
    return 0;
  }
  if (!(x = cn_calloc(1, sizeof *x)) || !(x->member = cn_term_copy(member))) {
    cn_free(x);
    cn_term_free(sc);
    return CN_ENOMEM;
  }
  x->score = sc;
  x->hash = h;
  x->size = 1;
  x->prio = next_prio(s);
  s->tab[i] = x;
  s->count++;
  s->root = insert(s, s->root, x);
  return 0;
}

bool cn_sset_remove(cn_sset *s, const cn_term *member) {
  if (!s->cap || !member) return false;
  size_t i = slot_of(s, member, cn_phash2(member));
  ss_node *x = s->tab[i];
  if (!x) return false;
  s->root = erase(s, s->root, x);
  tab_del(s, i);
  node_free(x);
  return true;
}

const cn_term *cn_sset_score(const cn_sset *s, const cn_term *member) {
  ss_node *x = member ? find(s, member) : NULL;
  return x ? x->score : NULL;
}

int cn_sset_rank(const cn_sset *s, const cn_term *member, size_t *rank) {
  ss_node *x = member ? find(s, member) : NULL;
  if (!x) return CN_ENOTFOUND;
  *rank = rank_of(s, x);
  return 0;
}

size_t cn_sset_size(const cn_sset *s) { return s->count; }

int cn_sset_at(const cn_sset *s, size_t rank, const cn_term **score, const cn_term **member) {
  if (rank >= s->count) return CN_ENOTFOUND;
  const ss_node *t = s->root;
  for (;;) {
    size_t l = sz(t->l);
    if (rank == l) break;
    if (rank < l) {
      t = t->l;
    } else {
      rank -= l + 1;
      t = t->r;
    }
  }
  if (score) *score = t->score;
  if (member) *member = t->member;
  return 0;
}

/* In order over t, whose leftmost node has rank base: only the subtrees that hold ranks start..stop. */
static int walk(const ss_node *t, size_t base, size_t start, size_t stop, cn_sset_each_fn fn, void *ctx) {
  while (t) {
    size_t at = base + sz(t->l);
    int rc;
    if (start < at && (rc = walk(t->l, base, start, stop, fn, ctx))) return rc;
    if (at > stop) return 0;
    if (at >= start && (rc = fn(t->score, t->member, ctx))) return rc;
    base = at + 1;
    t = t->r;
  }
  return 0;
}

int cn_sset_range(const cn_sset *s, size_t start, size_t stop, cn_sset_each_fn fn, void *ctx) {
  if (!fn) return CN_EINVAL;
  if (start > stop || start >= s->count) return 0;
  return walk(s->root, 0, start, stop, fn, ctx);
}

int cn_sset_release(const cn_sset *s) { return s->rel; }

int cn_sset_set_release(cn_sset *s, int rel) {
  if (rel < CN_OTP_RELEASE_MIN || rel > CN_OTP_RELEASE_MAX) return CN_EINVAL;
  if (rel == s->rel) return 0;
  if (!s->count) {
    s->rel = rel;
    return 0;
  }
  /* Members that were one under the old =:= stay one (the set never holds two of them); the tree and the table are
   * rebuilt under the new order, which differs only for -0.0 and maps keyed by it. */
  ss_node **tab = cn_calloc(s->cap, sizeof *tab);
  if (!tab) return CN_ENOMEM;
  ss_node **old = s->tab;
  size_t cap = s->cap;
  s->tab = tab;
  s->rel = rel;
  s->root = NULL;
  for (size_t i = 0; i < cap; i++) {
    ss_node *x = old[i];
    if (!x) continue;
    x->l = x->r = NULL;
    x->size = 1;
    size_t j = slot_of(s, x->member, x->hash);
    if (s->tab[j]) { /* one member under the new =:= (a coarser release): the first one stays */
      node_free(x);
      s->count--;
      continue;
    }
    s->tab[j] = x;
    s->root = insert(s, s->root, x);
  }
  cn_free(old);
  return 0;
}
