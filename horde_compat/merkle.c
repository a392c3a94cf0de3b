/* merkle.c: merkle_map 0.2.x's tree in C: canonical placement by phash2(Key, 2^32), lazy hashes, subtree
 * extraction with {partial, Loc} cuts, comparison with a received subtree and the partial-diff continuation. */
#include <string.h>

#include "hc_int.h"

enum { MN_INNER = 1, MN_LEAF = 2 };
#define MAX_LOC_BITS 56

/* One key of a leaf and its raw value: owned by the tree, or the caller's (hc_merkle.borrows). */
typedef struct mpair {
  cn_term *key, *raw;
} mpair;

/* 32 bytes: a leaf holds its key and value by pointer (no #{Key => Raw} term per leaf); the contents map is built
 * on the stack to hash it and only copied into a term for the wire. */
struct hc_mnode {
  uint8_t kind;
  uint8_t hashed;
  uint8_t hash[4];
  uint32_t kh; /* leaf: the key hash */
  uint32_t np; /* leaf: pairs (more than one only when 32-bit key hashes collide) */
  union {
    struct {
      hc_mnode *l, *r; /* inner */
    };
    mpair one;   /* leaf, np == 1 */
    mpair *many; /* leaf, np > 1 */
  };
};

uint32_t hc_key_hash(const cn_term *key) { return cn_phash2_range(key, 1ULL << 32); }

static void put4(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}
static int bit_of(uint32_t kh, unsigned depth) { return (int)((kh >> (31 - depth)) & 1); }

static mpair *pairs(hc_mnode *x) { return x->np == 1 ? &x->one : x->many; }
static const mpair *cpairs(const hc_mnode *x) { return x->np == 1 ? &x->one : x->many; }

void hc_merkle_init(hc_merkle *m) { memset(m, 0, sizeof *m); }

static void pair_free(const hc_merkle *m, mpair p) {
  if (m->borrows) return;
  cn_term_free(p.key);
  cn_term_free(p.raw);
}

static void node_free(const hc_merkle *m, hc_mnode *x) {
  while (x) {
    if (x->kind == MN_LEAF) {
      mpair *p = pairs(x);
      for (uint32_t i = 0; i < x->np; i++) pair_free(m, p[i]);
      if (x->np > 1) cn_free(x->many);
      cn_free(x);
      return;
    }
    node_free(m, x->l);
    hc_mnode *r = x->r;
    cn_free(x);
    x = r;
  }
}

void hc_merkle_free(hc_merkle *m) {
  node_free(m, m->root);
  m->root = NULL;
  m->count = 0;
}

static long pair_index(const hc_mnode *x, const cn_term *key, int rel) {
  const mpair *p = cpairs(x);
  for (uint32_t i = 0; i < x->np; i++)
    if (cn_term_exact_eq_otp(p[i].key, key, rel)) return i;
  return -1;
}

/* Leaf x without pair i (its terms freed by the caller); x keeps np >= 1. */
static void pair_drop(hc_mnode *x, long i) {
  mpair *p = x->many;
  memmove(&p[i], &p[i + 1], (x->np - (size_t)i - 1) * sizeof *p);
  if (--x->np == 1) {
    mpair last = p[0];
    cn_free(p);
    x->one = last;
  }
}

/* Appends a pair to leaf x; false on OOM. */
static bool pair_add(hc_mnode *x, mpair np) {
  mpair *p = x->np == 1 ? cn_malloc(2 * sizeof *p) : cn_realloc(x->many, (x->np + 1) * sizeof *p);
  if (!p) return false;
  if (x->np == 1) p[0] = x->one;
  p[x->np++] = np;
  x->many = p;
  return true;
}

/* The pair to store: the caller's key and raw when the tree borrows, else a copy of key and raw (taken). */
static int mk_pair(const hc_merkle *m, const cn_term *key, cn_term *raw, mpair *out) {
  out->raw = raw;
  out->key = m->borrows ? (cn_term *)key : cn_term_copy(key);
  if (out->key) return 0;
  cn_term_free(raw);
  return CN_ENOMEM;
}

/* merkle_map's put_leaf: a leaf stays as shallow as it can; a clash with another leaf pushes both down. A key put
 * again keeps its place among its leaf's pairs. */
static int put_leaf(hc_merkle *m, hc_mnode **slot, unsigned depth, uint32_t kh, const cn_term *key, cn_term *raw,
                    size_t *added) {
  hc_mnode *x = *slot;
  if (!x) {
    hc_mnode *leaf = cn_calloc(1, sizeof *leaf);
    if (!leaf) {
      if (!m->borrows) cn_term_free(raw);
      return CN_ENOMEM;
    }
    int rc = mk_pair(m, key, raw, &leaf->one);
    if (rc) {
      cn_free(leaf);
      return rc;
    }
    leaf->kind = MN_LEAF, leaf->kh = kh, leaf->np = 1;
    *slot = leaf;
    (*added)++;
    return 0;
  }
  x->hashed = 0;
  if (x->kind == MN_INNER) return put_leaf(m, bit_of(kh, depth) ? &x->r : &x->l, depth + 1, kh, key, raw, added);
  if (x->kh == kh) {
    long i = pair_index(x, key, m->otp_release);
    if (i >= 0) { /* the key's new value, in place: no allocation, so a borrowing tree never fails here */
      mpair *p = &pairs(x)[i];
      if (!m->borrows) cn_term_free(p->raw);
      p->raw = raw;
      if (m->borrows) p->key = (cn_term *)key;
      return 0;
    }
    mpair np;
    int rc = mk_pair(m, key, raw, &np);
    if (rc) return rc;
    if (!pair_add(x, np)) {
      pair_free(m, np);
      return CN_ENOMEM;
    }
    (*added)++;
    return 0;
  }
  hc_mnode *in = cn_calloc(1, sizeof *in);
  if (!in) {
    if (!m->borrows) cn_term_free(raw);
    return CN_ENOMEM;
  }
  in->kind = MN_INNER;
  if (bit_of(x->kh, depth)) in->r = x;
  else in->l = x;
  *slot = in;
  return put_leaf(m, slot, depth, kh, key, raw, added);
}

int hc_merkle_put(hc_merkle *m, const cn_term *key, uint32_t kh, cn_term *raw) {
  size_t added = 0;
  m->epoch++;
  int rc = put_leaf(m, &m->root, 0, kh, key, raw, &added);
  m->count += added;
  return rc;
}

static hc_mnode *del(hc_merkle *m, hc_mnode *x, unsigned depth, uint32_t kh, const cn_term *key, size_t *removed) {
  if (!x) return NULL;
  if (x->kind == MN_LEAF) {
    long i = pair_index(x, key, m->otp_release);
    if (i < 0) return x;
    (*removed)++;
    if (x->np == 1) {
      node_free(m, x);
      return NULL;
    }
    pair_free(m, x->many[i]);
    pair_drop(x, i);
    x->hashed = 0;
    return x;
  }
  x->hashed = 0;
  if (bit_of(kh, depth)) x->r = del(m, x->r, depth + 1, kh, key, removed);
  else x->l = del(m, x->l, depth + 1, kh, key, removed);
  hc_mnode *l = x->l, *r = x->r, *keep = l ? l : r; /* an only child, or none */
  if (l && r) return x;
  if (keep && keep->kind != MN_LEAF) return x;
  cn_free(x);
  return keep;
}

void hc_merkle_delete(hc_merkle *m, const cn_term *key, uint32_t kh) {
  size_t removed = 0;
  m->epoch++;
  m->root = del(m, m->root, 0, kh, key, &removed);
  m->count -= removed;
}

/* hash(T) = <<(phash2(T, 2^32)):32>> */
static void hash_term(const cn_term *t, uint8_t out[4]) { put4(out, cn_phash2_range(t, 1ULL << 32)); }

/* Sets t to the hash binary of x, or [] for an empty branch; t only borrows x's bytes. */
static void hash_ref(cn_term *t, hc_mnode *x) {
  memset(t, 0, sizeof *t);
  if (!x) {
    t->type = CN_NIL;
    return;
  }
  t->type = CN_BINARY;
  t->v.bin.size = 4;
  t->v.bin.bits = 8;
  t->v.bin.data = x->hash;
}

/* Sets map to the leaf's contents #{Key => Raw}, borrowing its terms into kv (2 * np values); nothing to free but
 * kv itself. */
static void contents_ref(const hc_mnode *x, cn_term *kv, cn_term *map) {
  const mpair *p = cpairs(x);
  for (uint32_t i = 0; i < x->np; i++) {
    kv[2 * i] = *p[i].key, kv[2 * i + 1] = *p[i].raw;
    kv[2 * i].block = kv[2 * i + 1].block = 0; /* views, never freed */
  }
  memset(map, 0, sizeof *map);
  map->type = CN_MAP;
  map->v.map.size = x->np;
  map->v.map.kv = kv;
}

static void update(hc_mnode *x) {
  if (!x || x->hashed) return;
  if (x->kind == MN_LEAF) {
    cn_term one[2], map, *kv = x->np == 1 ? one : cn_malloc(2 * x->np * sizeof *kv);
    if (!kv) return; /* left unhashed: hashed again at the next update */
    contents_ref(x, kv, &map);
    hash_term(&map, x->hash);
    if (kv != one) cn_free(kv);
  } else {
    update(x->l);
    update(x->r);
    /* hash({HashL, HashR}) over a tuple that borrows the children's hash bytes (no allocation). */
    cn_term el[2], tup;
    hash_ref(&el[0], x->l);
    hash_ref(&el[1], x->r);
    memset(&tup, 0, sizeof tup);
    tup.type = CN_TUPLE;
    tup.v.tuple.arity = 2;
    tup.v.tuple.e = el;
    hash_term(&tup, x->hash);
  }
  x->hashed = 1;
}

void hc_merkle_update_hashes(hc_merkle *m) { update(m->root); }

bool hc_merkle_root(const hc_merkle *m, uint8_t out[4]) {
  if (!m->root) return false;
  memcpy(out, m->root->hash, 4);
  return true;
}

/* ---- Locations ---------------------------------------------------------------------------------------------- */

static int loc_bit(hc_loc l, unsigned i) { return (int)((l.bits >> (63 - i)) & 1); }
static hc_loc loc_push(hc_loc l, int bit) {
  if (bit) l.bits |= 1ULL << (63 - l.nbits);
  l.nbits++;
  return l;
}

bool hc_loc_from_term(const cn_term *t, hc_loc *out) {
  if (!t || t->type != CN_BINARY) return false;
  size_t nbits = t->v.bin.size ? (t->v.bin.size - 1) * 8 + t->v.bin.bits : 0;
  if (nbits > MAX_LOC_BITS) return false;
  out->bits = 0;
  out->nbits = (uint32_t)nbits;
  for (size_t i = 0; i < t->v.bin.size; i++) out->bits |= (uint64_t)t->v.bin.data[i] << (56 - 8 * i);
  if (nbits < 64) out->bits &= nbits ? ~0ULL << (64 - nbits) : 0;
  return true;
}

/* ---- Subtrees ----------------------------------------------------------------------------------------------- */

static const hc_mnode *find_subtree(const hc_mnode *x, hc_loc loc) {
  for (unsigned i = 0; i < loc.nbits; i++) {
    if (!x || x->kind == MN_LEAF) return x;
    x = loc_bit(loc, i) ? x->r : x->l;
  }
  return x;
}

/* Subtrees are built as views (view.c) of the tree: sent without copying the leaves' keys and values. */
static bool loc_view(hc_arena *a, cn_term *out, hc_loc loc) {
  uint8_t b[8];
  for (size_t i = 0; i < 8; i++) b[i] = (uint8_t)(loc.bits >> (56 - 8 * i));
  return hc_v_bits(a, out, b, (loc.nbits + 7) / 8, loc.nbits % 8 ? (uint8_t)(loc.nbits % 8) : 8);
}

static bool leaf_view(hc_arena *a, const hc_mnode *x, cn_term *out) {
  uint8_t kh[4];
  put4(kh, x->kh);
  cn_term *t = hc_v_tuple(a, out, 2), *in, *kv;
  if (!t || !hc_v_bits(a, &t[0], x->hash, 4, 8) || !(in = hc_v_tuple(a, &t[1], 2)) || !hc_v_bits(a, &in[0], kh, 4, 8) ||
      !(kv = hc_v_map(a, &in[1], x->np)))
    return false;
  const mpair *p = cpairs(x);
  for (uint32_t i = 0; i < x->np; i++) hc_v_ref(&kv[2 * i], p[i].key), hc_v_ref(&kv[2 * i + 1], p[i].raw);
  return true;
}

static bool subtree_view(const hc_ctx *c, hc_arena *a, const hc_mnode *x, hc_loc loc, unsigned depth, cn_term *out) {
  if (!x) {
    memset(out, 0, sizeof *out);
    out->type = CN_NIL;
    return true;
  }
  if (x->kind == MN_LEAF) return leaf_view(a, x, out);
  cn_term *t = hc_v_tuple(a, out, depth ? 3 : 2);
  if (!t) return false;
  if (depth == 0) {
    hc_v_atom(&t[0], c->a_partial);
    return loc_view(a, &t[1], loc);
  }
  return hc_v_bits(a, &t[0], x->hash, 4, 8) && subtree_view(c, a, x->l, loc_push(loc, 0), depth - 1, &t[1]) &&
         subtree_view(c, a, x->r, loc_push(loc, 1), depth - 1, &t[2]);
}

cn_term *hc_merkle_subtree(const hc_ctx *c, const hc_merkle *m, hc_loc loc, unsigned depth) {
  hc_arena a = {0};
  cn_term v;
  cn_term *r = subtree_view(c, &a, find_subtree(m->root, loc), loc, depth, &v) ? cn_term_copy(&v) : NULL;
  hc_arena_free(&a);
  return r;
}

/* ---- Comparison (§3.3) -------------------------------------------------------------------------------------- */

void hc_mdiff_free(hc_mdiff *d) {
  cn_free(d->keys);
  cn_free(d->parts);
  memset(d, 0, sizeof *d);
}

static int add_key(hc_mdiff *d, const cn_term *k) {
  if (d->nkeys == d->capk) {
    size_t cap = d->capk ? 2 * d->capk : 16;
    const cn_term **p = cn_realloc(d->keys, cap * sizeof *p);
    if (!p) return CN_ENOMEM;
    d->keys = p, d->capk = cap;
  }
  d->keys[d->nkeys++] = k;
  return 0;
}

static int add_part(hc_mdiff *d, hc_loc l) {
  if (d->nparts == d->capp) {
    size_t cap = d->capp ? 2 * d->capp : 16;
    hc_loc *p = cn_realloc(d->parts, cap * sizeof *p);
    if (!p) return CN_ENOMEM;
    d->parts = p, d->capp = cap;
  }
  d->parts[d->nparts++] = l;
  return 0;
}

static int add_leaf_keys(hc_mdiff *d, const hc_mnode *x) {
  const mpair *p = cpairs(x);
  for (uint32_t i = 0; i < x->np; i++)
    if (add_key(d, p[i].key)) return CN_ENOMEM;
  return 0;
}

static int add_map_keys(hc_mdiff *d, const cn_term *map) {
  for (uint32_t i = 0; i < map->v.map.size; i++)
    if (add_key(d, &map->v.map.kv[2 * i])) return CN_ENOMEM;
  return 0;
}

/* The local side: a node at relative depth rel below the subtree's root; an inner node at the cut (rel ==
 * depth) is a {partial, Loc}. */
typedef struct lside {
  const hc_mnode *x;
  unsigned rel;
} lside;

enum { R_EMPTY, R_INNER, R_LEAF, R_PARTIAL, R_BAD };

static int rkind(const cn_term *t) {
  if (t->type == CN_NIL) return R_EMPTY;
  if (t->type != CN_TUPLE) return R_BAD;
  if (t->v.tuple.arity == 3) return R_INNER;
  if (t->v.tuple.arity != 2) return R_BAD;
  const cn_term *a = &t->v.tuple.e[0], *b = &t->v.tuple.e[1];
  if (a->type == CN_ATOM && !strcmp(a->v.atom->name, "partial")) return R_PARTIAL;
  if (b->type == CN_TUPLE && b->v.tuple.arity == 2 && b->v.tuple.e[0].type == CN_BINARY &&
      b->v.tuple.e[0].v.bin.size == 4 && b->v.tuple.e[0].v.bin.bits == 8 && b->v.tuple.e[1].type == CN_MAP)
    return R_LEAF;
  return R_BAD;
}

static bool hash_eq(const cn_term *h, const uint8_t mine[4]) {
  return h->type == CN_BINARY && h->v.bin.size == 4 && h->v.bin.bits == 8 && !memcmp(h->v.bin.data, mine, 4);
}

static int raw_local(lside l, unsigned depth, hc_loc path, hc_mdiff *d) {
  if (!l.x) return 0;
  if (l.x->kind == MN_LEAF) return add_leaf_keys(d, l.x);
  if (l.rel >= depth) return add_part(d, path);
  int rc = raw_local((lside){l.x->l, l.rel + 1}, depth, loc_push(path, 0), d);
  return rc ? rc : raw_local((lside){l.x->r, l.rel + 1}, depth, loc_push(path, 1), d);
}

static int raw_remote(const cn_term *t, hc_loc path, unsigned guard, hc_mdiff *d) {
  if (guard > MAX_LOC_BITS) return CN_EDECODE;
  switch (rkind(t)) {
  case R_EMPTY: return 0;
  case R_PARTIAL: return add_part(d, path);
  case R_LEAF: return add_map_keys(d, &t->v.tuple.e[1].v.tuple.e[1]);
  case R_INNER: {
    int rc = raw_remote(&t->v.tuple.e[1], loc_push(path, 0), guard + 1, d);
    return rc ? rc : raw_remote(&t->v.tuple.e[2], loc_push(path, 1), guard + 1, d);
  }
  default: return CN_EDECODE;
  }
}

static int leaf_leaf(const hc_mnode *x, const cn_term *m2, hc_mdiff *d) {
  const mpair *p = cpairs(x);
  for (uint32_t i = 0; i < x->np; i++) {
    const cn_term *v2 = hc_map_find(m2, p[i].key, d->otp_release);
    if (!v2 || !cn_term_arith_eq_otp(v2, p[i].raw, d->otp_release))
      if (add_key(d, p[i].key)) return CN_ENOMEM;
  }
  for (uint32_t i = 0; i < m2->v.map.size; i++)
    if (pair_index(x, &m2->v.map.kv[2 * i], d->otp_release) < 0)
      if (add_key(d, &m2->v.map.kv[2 * i])) return CN_ENOMEM;
  return 0;
}

static int cmp(lside l, const cn_term *r, unsigned level, unsigned depth, hc_loc path, hc_mdiff *d) {
  if (level > 32 || path.nbits > MAX_LOC_BITS) return CN_EDECODE;
  int rk = rkind(r);
  if (rk == R_BAD) return CN_EDECODE;
  if (!l.x) return raw_remote(r, path, path.nbits, d);
  if (rk == R_EMPTY) return raw_local(l, depth, path, d);
  bool lpart = l.x->kind == MN_INNER && l.rel >= depth;
  bool linner = l.x->kind == MN_INNER && !lpart;
  if (linner && rk == R_INNER) {
    if (hash_eq(&r->v.tuple.e[0], l.x->hash)) return 0;
    int rc = cmp((lside){l.x->l, l.rel + 1}, &r->v.tuple.e[1], level + 1, depth, loc_push(path, 0), d);
    return rc ? rc : cmp((lside){l.x->r, l.rel + 1}, &r->v.tuple.e[2], level + 1, depth, loc_push(path, 1), d);
  }
  if (rk == R_PARTIAL || lpart) return add_part(d, path);
  if (l.x->kind == MN_LEAF && rk == R_LEAF) {
    if (hash_eq(&r->v.tuple.e[0], l.x->hash)) return 0;
    return leaf_leaf(l.x, &r->v.tuple.e[1].v.tuple.e[1], d);
  }
  if (level >= 32) return CN_EDECODE;
  if (linner) { /* against a received leaf: its key hash picks the side */
    const uint8_t *kb = r->v.tuple.e[1].v.tuple.e[0].v.bin.data;
    int dir = (kb[level / 8] >> (7 - level % 8)) & 1;
    lside same = {dir ? l.x->r : l.x->l, l.rel + 1}, other = {dir ? l.x->l : l.x->r, l.rel + 1};
    int rc = cmp(same, r, level + 1, depth, loc_push(path, dir), d);
    return rc ? rc : raw_local(other, depth, loc_push(path, !dir), d);
  }
  /* a local leaf against a received inner node */
  int dir = bit_of(l.x->kh, level);
  int rc = cmp(l, &r->v.tuple.e[dir ? 2 : 1], level + 1, depth, loc_push(path, dir), d);
  return rc ? rc : raw_remote(&r->v.tuple.e[dir ? 1 : 2], loc_push(path, !dir), path.nbits + 1, d);
}

int hc_merkle_diff(const hc_merkle *m, hc_loc loc, unsigned depth, const cn_term *remote, hc_mdiff *d) {
  d->otp_release = m->otp_release;
  lside l = {find_subtree(m->root, loc), 0};
  return cmp(l, remote, loc.nbits, depth, loc, d);
}

/* ---- Continuations (§3.4) ----------------------------------------------------------------------------------- */

static cn_term *mk_mtree(const hc_ctx *c, cn_term *tree) {
  const cn_atom *f[] = {c->a_tree};
  return hc_mk_struct(c, c->a_mtree, 1, f, &tree);
}

static cn_term *mk_cont(const hc_ctx *c, cn_term *trees, cn_term *keys) {
  const cn_atom *f[] = {c->a_keys, c->a_trees};
  cn_term *v[] = {keys, trees};
  return hc_mk_struct(c, c->a_mdiff, 2, f, v);
}

cn_term *hc_merkle_cont0(const hc_ctx *c, const hc_merkle *m, unsigned depth) {
  hc_loc root = {0, 0};
  cn_term *item = cn_mk_tuple(2, cn_mk_binary("", 0), mk_mtree(c, hc_merkle_subtree(c, m, root, depth)));
  return mk_cont(c, cn_mk_list(1, item), cn_mk_nil());
}

static size_t list_len(const cn_term *t) { return t->type == CN_LIST ? t->v.list.len : 0; }

int hc_merkle_continue_view(const hc_ctx *c, const hc_merkle *m, const cn_term *cont, unsigned depth, size_t max_items,
                            hc_arena *a, cn_term **cont_out, cn_term **keys_out) {
  *cont_out = *keys_out = NULL;
  if (!hc_is_struct(cont, "Elixir.MerkleMap.MerkleTree.Diff")) return CN_EDECODE;
  const cn_term *trees = hc_map_get(cont, "trees"), *keys = hc_map_get(cont, "keys");
  if (!trees || !keys || (trees->type != CN_LIST && trees->type != CN_NIL) ||
      (keys->type != CN_LIST && keys->type != CN_NIL) || (trees->type == CN_LIST && trees->v.list.tail) ||
      (keys->type == CN_LIST && keys->v.list.tail))
    return CN_EDECODE;
  hc_mdiff d = {.otp_release = m->otp_release};
  int rc = 0;
  for (size_t i = 0; !rc && i < list_len(trees); i++) {
    const cn_term *it = &trees->v.list.e[i];
    hc_loc loc;
    const cn_term *mt = cn_tuple_elem(it, 2, 1);
    const cn_term *tree = hc_is_struct(mt, "Elixir.MerkleMap.MerkleTree") ? hc_map_get(mt, "tree") : NULL;
    if (!tree || !hc_loc_from_term(cn_tuple_elem(it, 2, 0), &loc)) {
      rc = CN_EDECODE;
      break;
    }
    rc = hc_merkle_diff(m, loc, depth, tree, &d);
  }
  /* Keys: the continuation's first, then the new ones (truncation keeps the first max_items). */
  size_t nold = list_len(keys), nk = nold + d.nkeys;
  size_t keep = max_items && nk > max_items ? max_items : nk;
  cn_term *klist = rc ? NULL : hc_arena_terms(a, 1), *ke = klist ? hc_v_list(a, klist, keep) : NULL;
  if (!rc && !ke) rc = CN_ENOMEM;
  size_t k = 0;
  for (; !rc && k < keep && k < nold; k++) hc_v_ref(&ke[k], &keys->v.list.e[k]);
  for (size_t j = 0; !rc && k < keep && j < d.nkeys; k++, j++) hc_v_ref(&ke[k], d.keys[j]);
  if (rc || !d.nparts) {
    hc_mdiff_free(&d);
    *keys_out = rc ? NULL : klist;
    return rc;
  }
  size_t nt = d.nparts;
  if (max_items) nt = keep >= max_items ? 0 : (nt < max_items - keep ? nt : max_items - keep);
  const cn_atom *f[] = {c->a_keys, c->a_trees}, *ft[] = {c->a_tree};
  cn_term *cv = hc_arena_terms(a, 1), *vals = cv ? hc_v_struct(c, a, cv, c->a_mdiff, 2, f) : NULL, *te = NULL;
  if (vals && (te = hc_v_list(a, &vals[2], nt))) vals[0] = *klist;
  for (size_t i = 0; te && i < nt; i++) {
    cn_term *it = hc_v_tuple(a, &te[i], 2), *mv;
    if (!it || !loc_view(a, &it[0], d.parts[i]) || !(mv = hc_v_struct(c, a, &it[1], c->a_mtree, 1, ft)) ||
        !subtree_view(c, a, find_subtree(m->root, d.parts[i]), d.parts[i], depth, &mv[0]))
      break;
  }
  hc_mdiff_free(&d);
  if (a->oom || !te) return CN_ENOMEM;
  *cont_out = cv;
  return 0;
}

int hc_merkle_continue(const hc_ctx *c, const hc_merkle *m, const cn_term *cont, unsigned depth, size_t max_items,
                       cn_term **cont_out, cn_term **keys_out) {
  hc_arena a = {0};
  cn_term *cv, *kv;
  int rc = hc_merkle_continue_view(c, m, cont, depth, max_items, &a, &cv, &kv);
  *cont_out = !rc && cv ? cn_term_copy(cv) : NULL;
  *keys_out = !rc && kv ? cn_term_copy(kv) : NULL;
  hc_arena_free(&a);
  if (!rc && (cv ? !*cont_out : !*keys_out)) rc = CN_ENOMEM;
  return rc;
}
