/* structs.c: the Elixir structs delta_crdt puts on the wire (MapSet, DeltaCrdt.AWLWWMap, ...): plain maps with a
 * '__struct__' key, MapSets in the shape of Elixir <= 1.14 or >= 1.15, and which of the two the peers send. */
#include <string.h>

#include "hc_int.h"

int hc_ctx_init(hc_ctx *c, cn_atoms *tab, int mapset_shape) {
  memset(c, 0, sizeof *c);
  c->tab = tab;
  c->mapset_shape = mapset_shape;
  struct {
    const cn_atom **p;
    const char *s;
  } a[] = {{&c->a_struct, "__struct__"},
           {&c->a_map, "map"},
           {&c->a_version, "version"},
           {&c->a_mapset, "Elixir.MapSet"},
           {&c->a_partial, "partial"},
           {&c->a_tree, "tree"},
           {&c->a_trees, "trees"},
           {&c->a_keys, "keys"},
           {&c->a_mtree, "Elixir.MerkleMap.MerkleTree"},
           {&c->a_mdiff, "Elixir.MerkleMap.MerkleTree.Diff"},
           {&c->a_diff_mod, "Elixir.DeltaCrdt.CausalCrdt.Diff"},
           {&c->a_awlww, "Elixir.DeltaCrdt.AWLWWMap"},
           {&c->a_dots, "dots"},
           {&c->a_value, "value"},
           {&c->a_continuation, "continuation"},
           {&c->a_originator, "originator"},
           {&c->a_from, "from"},
           {&c->a_to, "to"},
           {&c->a_nil, "nil"},
           {&c->a_diff, "diff"},
           {&c->a_get_diff, "get_diff"},
           {&c->a_ack_diff, "ack_diff"}};
  for (size_t i = 0; i < sizeof a / sizeof a[0]; i++)
    if (!(*a[i].p = cn_atoms_get(tab, a[i].s))) return CN_ENOMEM;
  return 0;
}

cn_term *hc_mk_struct(const hc_ctx *c, const cn_atom *mod, size_t n, const cn_atom *const *fields, cn_term **vals) {
  cn_term *kv[2 * 8];
  bool bad = n > 7;
  for (size_t i = 0; i < n; i++)
    if (!vals[i]) bad = true;
  if (bad) {
    for (size_t i = 0; i < n; i++) cn_term_free(vals[i]);
    return NULL;
  }
  kv[0] = cn_mk_atom(c->a_struct);
  kv[1] = cn_mk_atom(mod);
  for (size_t i = 0; i < n; i++) {
    kv[2 + 2 * i] = cn_mk_atom(fields[i]);
    kv[3 + 2 * i] = vals[i];
  }
  for (size_t i = 0; i < 2 * (n + 1); i++)
    if (!kv[i]) {
      for (size_t j = 0; j < 2 * (n + 1); j++) cn_term_free(kv[j]);
      return NULL;
    }
  return cn_mk_map(n + 1, kv);
}

const cn_term *hc_map_get(const cn_term *m, const char *k) {
  if (!m || m->type != CN_MAP) return NULL;
  for (uint32_t i = 0; i < m->v.map.size; i++) {
    const cn_term *key = &m->v.map.kv[2 * i];
    if (key->type == CN_ATOM && !strcmp(key->v.atom->name, k)) return &m->v.map.kv[2 * i + 1];
  }
  return NULL;
}

const cn_term *hc_map_find(const cn_term *m, const cn_term *k, int rel) {
  if (!m || m->type != CN_MAP) return NULL;
  for (uint32_t i = 0; i < m->v.map.size; i++)
    if (cn_term_exact_eq_otp(&m->v.map.kv[2 * i], k, rel)) return &m->v.map.kv[2 * i + 1];
  return NULL;
}

bool hc_is_struct(const cn_term *t, const char *mod) {
  const cn_term *s = hc_map_get(t, "__struct__");
  return s && s->type == CN_ATOM && !strcmp(s->v.atom->name, mod);
}

cn_term *hc_mk_dotset(const hc_ctx *c, const hc_dot *d, size_t n) {
  cn_term **kv = cn_malloc((2 * n + 1) * sizeof *kv);
  if (!kv) return NULL;
  for (size_t i = 0; i < n; i++) {
    kv[2 * i] = cn_mk_tuple(2, cn_mk_int(d[i].id), cn_mk_int(d[i].n));
    kv[2 * i + 1] = cn_mk_nil();
  }
  cn_term *set = NULL;
  for (size_t i = 0; i < 2 * n; i++)
    if (!kv[i]) {
      for (size_t j = 0; j < 2 * n; j++) cn_term_free(kv[j]);
      goto out;
    }
  set = cn_mk_map(n, kv);
out:
  cn_free(kv);
  if (!set) return NULL;
  if (c->mapset_shape == HC_MAPSET_PLAIN) {
    const cn_atom *f[] = {c->a_map};
    cn_term *v[] = {set};
    return hc_mk_struct(c, c->a_mapset, 1, f, v);
  }
  const cn_atom *f[] = {c->a_map, c->a_version};
  cn_term *v[] = {set, cn_mk_int(2)};
  return hc_mk_struct(c, c->a_mapset, 2, f, v);
}

static bool get_int(const cn_term *t, int64_t *out) {
  if (t->type != CN_INT) return false;
  *out = t->v.i;
  return true;
}

int hc_parse_dotset(const cn_term *set, hc_dot **out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (!hc_is_struct(set, "Elixir.MapSet")) return CN_EDECODE;
  const cn_term *m = hc_map_get(set, "map");
  if (!m || m->type != CN_MAP) return CN_EDECODE;
  if (!m->v.map.size) return 0;
  hc_dot *d = cn_malloc(m->v.map.size * sizeof *d);
  if (!d) return CN_ENOMEM;
  for (uint32_t i = 0; i < m->v.map.size; i++) {
    const cn_term *k = &m->v.map.kv[2 * i];
    if (k->type != CN_TUPLE || k->v.tuple.arity != 2 || !get_int(&k->v.tuple.e[0], &d[i].id) ||
        !get_int(&k->v.tuple.e[1], &d[i].n)) {
      cn_free(d);
      return CN_EDECODE;
    }
  }
  *out = d;
  *n = m->v.map.size;
  return 0;
}

int hc_mapset_shape(const cn_term *t) {
  if (!hc_is_struct(t, "Elixir.MapSet")) return -1;
  const cn_term *m = hc_map_get(t, "map");
  if (!m || m->type != CN_MAP) return -1;
  return hc_map_get(t, "version") ? HC_MAPSET_V2 : HC_MAPSET_PLAIN;
}

int hc_entries_shape(const cn_term *value) {
  if (!value || value->type != CN_MAP) return -1;
  for (uint32_t i = 0; i < value->v.map.size; i++) {
    const cn_term *entries = &value->v.map.kv[2 * i + 1];
    for (uint32_t j = 0; entries->type == CN_MAP && j < entries->v.map.size; j++) {
      int s = hc_mapset_shape(&entries->v.map.kv[2 * j + 1]);
      if (s >= 0) return s;
    }
  }
  return -1;
}

int hc_reshape_entries(const hc_ctx *c, const cn_term *raw, cn_term **out) {
  *out = NULL;
  if (!raw || raw->type != CN_MAP) return CN_EDECODE;
  size_t n = raw->v.map.size;
  cn_term **kv = cn_calloc(2 * n + 1, sizeof *kv);
  if (!kv) return CN_ENOMEM;
  int rc = 0;
  for (size_t i = 0; !rc && i < n; i++) {
    hc_dot *d;
    size_t nd;
    if ((rc = hc_parse_dotset(&raw->v.map.kv[2 * i + 1], &d, &nd))) break;
    kv[2 * i] = cn_term_copy(&raw->v.map.kv[2 * i]);
    kv[2 * i + 1] = hc_mk_dotset(c, d, nd);
    cn_free(d);
    if (!kv[2 * i] || !kv[2 * i + 1]) rc = CN_ENOMEM;
  }
  if (rc) {
    for (size_t i = 0; i < 2 * n; i++) cn_term_free(kv[i]);
  } else if (!(*out = cn_mk_map(n, kv))) {
    rc = CN_ENOMEM;
  }
  cn_free(kv);
  return rc;
}

bool hc_shape_seen(hc_shape_follow *f, int seen) {
  if (seen != HC_MAPSET_V2 && seen != HC_MAPSET_PLAIN) return false;
  if (seen == f->shape) {
    f->settled = true;
    f->other = 0;
    return false;
  }
  if (f->settled && ++f->other < HC_SHAPE_SWITCH) return false;
  f->shape = seen;
  f->settled = true;
  f->other = 0;
  return true;
}
