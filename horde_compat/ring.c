/* ring.c: where a Horde.DynamicSupervisor child goes (spec horde-wire.md §5.2, horde-supervisor.md "C node side"
 * 1-2): the capability predicates, libring's hash ring bit for bit, and the two choices built on them
 * (CNode.Horde.Distribution's filtered one, plain UniformDistribution). Pure: no process, no clock. */
#include <string.h>

#include "hc_int.h"
#include "horde.h"

#define POINTS 128               /* libring's default weight: points per member */
#define RING_RANGE 4294967295ULL /* libring's @hash_range, 2^32 - 1 */

/* ---- Predicates ------------------------------------------------------------------------------------------ */

bool cn_horde_c_child(const cn_term *spec) {
  const cn_term *v = hc_map_get(spec, "cnode");
  return v && cn_is_atom(v, "true");
}

bool cn_horde_c_member(const cn_term *name) {
  const cn_term *node = cn_tuple_elem(name, 2, 1);
  return node && node->type == CN_ATOM && !strncmp(node->v.atom->name, "cnode", 5);
}

int cn_horde_member_parse(const cn_term *m, cn_horde_member *out) {
  const cn_term *name = hc_map_get(m, "name"), *st = hc_map_get(m, "status");
  if (!name) return CN_EDECODE;
  out->name = name;
  out->status = cn_is_atom(st, "alive")           ? CN_HORDE_ALIVE
                : cn_is_atom(st, "shutting_down") ? CN_HORDE_SHUTTING_DOWN
                : cn_is_atom(st, "dead")          ? CN_HORDE_DEAD
                                                  : CN_HORDE_UNINITIALIZED;
  return 0;
}

/* ---- The ring -------------------------------------------------------------------------------------------- */

void hc_ring_free(hc_ring *r) {
  cn_free(r->pt);
  cn_free(r->who);
  memset(r, 0, sizeof *r);
}

/* One candidate point: its value and the order libring inserts it in (member rank, then I). */
typedef struct rpoint {
  uint32_t v, order, who;
} rpoint;

static int rpoint_cmp(const void *a, const void *b, void *ctx, int *result) {
  (void)ctx;
  const rpoint *x = a, *y = b;
  *result = x->v != y->v ? (x->v < y->v ? -1 : 1) : (x->order < y->order ? -1 : x->order > y->order);
  return 0;
}

static int name_cmp(const void *a, const void *b, void *ctx, int *result) {
  const cn_term *const *names = ctx;
  return cn_term_compare_checked(names[*(const uint32_t *)a], names[*(const uint32_t *)b], false, result);
}

/* phash2({Name, I}, 2^32 - 1) on a borrowed view of the tuple (nothing is copied). */
static int point_of(const cn_term *name, uint32_t i, uint32_t *out) {
  cn_term el[2];
  el[0] = *name;
  memset(&el[1], 0, sizeof el[1]);
  el[1].type = CN_INT;
  el[1].v.i = i;
  cn_term tup;
  memset(&tup, 0, sizeof tup);
  tup.type = CN_TUPLE;
  tup.v.tuple.arity = 2;
  tup.v.tuple.e = el;
  return cn_phash2_checked(&tup, RING_RANGE, out);
}

/* The members' indices in ascending term order, equal names once (a map keyed by name holds each once). */
static int sorted_unique(const cn_term *const *names, size_t n, uint32_t *idx, size_t *count) {
  uint32_t *tmp = cn_malloc((n + 1) * sizeof *tmp);
  if (!tmp) return CN_ENOMEM;
  for (size_t i = 0; i < n; i++) idx[i] = (uint32_t)i;
  int rc = cn_stable_sort(idx, n, sizeof *idx, tmp, name_cmp, (void *)names);
  cn_free(tmp);
  size_t k = 0;
  for (size_t i = 0; !rc && i < n; i++)
    if (!k || !cn_term_exact_eq(names[idx[k - 1]], names[idx[i]])) idx[k++] = idx[i];
  *count = k;
  return rc;
}

/* Every point of every member, sorted by value then insertion order. */
static int all_points(const cn_term *const *names, const uint32_t *idx, size_t m, rpoint *pts) {
  for (size_t r = 0; r < m; r++)
    for (uint32_t i = 1; i <= POINTS; i++) {
      rpoint *p = &pts[r * POINTS + i - 1];
      p->order = (uint32_t)(r * POINTS + i);
      p->who = idx[r];
      int rc = point_of(names[idx[r]], i, &p->v);
      if (rc) return rc;
    }
  rpoint *tmp = cn_malloc(m * POINTS * sizeof *tmp + 1);
  if (!tmp) return CN_ENOMEM;
  int rc = cn_stable_sort(pts, m * POINTS, sizeof *pts, tmp, rpoint_cmp, NULL);
  cn_free(tmp);
  return rc;
}

int hc_ring_build(hc_ring *r, const cn_term *const *names, size_t n) {
  memset(r, 0, sizeof *r);
  if (n == 0) return 0;
  if (n > UINT32_MAX / POINTS) return CN_ELIMIT;
  uint32_t *idx = cn_malloc(n * sizeof *idx);
  rpoint *pts = cn_malloc(n * POINTS * sizeof *pts);
  size_t m = 0;
  int rc = idx && pts ? sorted_unique(names, n, idx, &m) : CN_ENOMEM;
  if (!rc) rc = all_points(names, idx, m, pts);
  if (!rc && (!(r->pt = cn_malloc(m * POINTS * sizeof *r->pt)) || !(r->who = cn_malloc(m * POINTS * sizeof *r->who))))
    rc = CN_ENOMEM;
  /* gb_trees:insert raises key_exists on a taken point, and libring keeps the first owner */
  for (size_t i = 0; !rc && i < m * POINTS; i++) {
    if (r->n && r->pt[r->n - 1] == pts[i].v) continue;
    r->pt[r->n] = pts[i].v;
    r->who[r->n++] = pts[i].who;
  }
  cn_free(idx);
  cn_free(pts);
  if (rc) hc_ring_free(r);
  return rc;
}

long hc_ring_owner(const hc_ring *r, uint32_t h) {
  if (!r->n) return -1;
  size_t lo = 0, hi = r->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (r->pt[mid] < h) lo = mid + 1;
    else hi = mid;
  }
  return (long)r->who[lo == r->n ? 0 : lo]; /* the smallest point >= H, else wrap around */
}

int hc_spec_key(const cn_term *spec, uint32_t *out) {
  if (!spec || spec->type != CN_MAP) return CN_EINVAL;
  /* maps:remove(id, Spec) as a borrowed view: the same pairs without the atom key id */
  cn_term *kv = cn_malloc((2 * (size_t)spec->v.map.size + 1) * sizeof *kv);
  if (!kv) return CN_ENOMEM;
  uint32_t k = 0;
  for (uint32_t i = 0; i < spec->v.map.size; i++) {
    if (cn_is_atom(&spec->v.map.kv[2 * i], "id")) continue;
    kv[2 * k] = spec->v.map.kv[2 * i];
    kv[2 * k + 1] = spec->v.map.kv[2 * i + 1];
    k++;
  }
  cn_term view;
  memset(&view, 0, sizeof view);
  view.type = CN_MAP;
  view.v.map.size = k;
  view.v.map.kv = kv;
  uint32_t ident;
  int rc = cn_phash2_checked(&view, 0, &ident);
  cn_free(kv);
  if (rc) return rc;
  cn_term it;
  memset(&it, 0, sizeof it);
  it.type = CN_INT;
  it.v.i = ident;
  return cn_phash2_checked(&it, RING_RANGE, out);
}

/* ---- The choice ------------------------------------------------------------------------------------------ */

int cn_horde_choose(const cn_term *spec, const cn_horde_member *m, size_t n, int mode, size_t *chosen) {
  uint32_t h;
  int rc = hc_spec_key(spec, &h);
  if (rc) return rc;
  bool c = cn_horde_c_child(spec);
  const cn_term **names = cn_malloc((n + 1) * sizeof *names);
  size_t *orig = cn_malloc((n + 1) * sizeof *orig);
  size_t k = 0;
  for (size_t i = 0; names && orig && i < n; i++) {
    if (m[i].status != CN_HORDE_ALIVE || !m[i].name) continue;
    if (mode == CN_HORDE_FILTERED && cn_horde_c_member(m[i].name) != c) continue;
    names[k] = m[i].name;
    orig[k++] = i;
  }
  hc_ring r;
  rc = !names || !orig ? CN_ENOMEM : k == 0 ? CN_ENOTFOUND : hc_ring_build(&r, names, k);
  if (!rc) {
    *chosen = orig[hc_ring_owner(&r, h)];
    hc_ring_free(&r);
  }
  cn_free(names);
  cn_free(orig);
  return rc;
}
