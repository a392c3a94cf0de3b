/* members.c: Horde membership on the CRDT, shared by the registry and the dynamic supervisor (spec §1.3): the
 * {member, M} keys that set_members writes (members: :auto or explicit) and the neighbour list sent to the CRDT. */
#include <stdio.h>
#include <string.h>

#include "hc_int.h"
#include "horde.h"

bool hc_is_member(const cn_term *m) {
  return hc_tuple_n(m, 2) && m->v.tuple.e[0].type == CN_ATOM && m->v.tuple.e[1].type == CN_ATOM;
}

cn_term *hc_mk_keyed(cn_node *n, const char *tag, const cn_term *k) {
  return cn_mk_tuple(2, cn_mk_atomc(n, tag), cn_term_copy(k));
}

cn_term *hc_member_proc(cn_node *n, const cn_term *member, const char *suffix) {
  char nm[CN_ATOM_MAX_BYTES + 32]; /* never truncates: an atom's bytes and a short suffix */
  int k = snprintf(nm, sizeof nm, "%s%s", member->v.tuple.e[0].v.atom->name, suffix);
  if (k < 0 || (size_t)k >= sizeof nm) return NULL;
  cn_term *a = cn_mk_atomc(n, nm); /* NULL past 255 characters */
  return a ? cn_mk_tuple(2, a, cn_term_copy(&member->v.tuple.e[1])) : NULL;
}

cn_term *hc_list_copy(cn_term *const *v, size_t n) {
  cn_term **c = cn_calloc(n + 1, sizeof *c);
  if (!c) return NULL;
  for (size_t i = 0; i < n; i++) c[i] = cn_term_copy(v[i]);
  cn_term *l = cn_mk_listv(n, c, NULL); /* takes the copies; a NULL among them fails it */
  cn_free(c);
  return l;
}

void hc_push_neighbours(cn_node *n, cn_crdt *c, cn_term *const *ms, size_t count, const cn_term *self) {
  if (!c) return;
  cn_term **v = cn_calloc(count + 1, sizeof *v);
  if (!v) return;
  size_t k = 0;
  for (size_t i = 0; i < count; i++) {
    const cn_term *m = ms[i];
    if (cn_term_exact_eq(m, self) || !hc_is_member(m)) continue;
    if ((v[k] = hc_member_proc(n, m, ".Crdt"))) k++;
  }
  cn_crdt_set_neighbours(c, (const cn_term *const *)v, k);
  for (size_t i = 0; i < k; i++) cn_term_free(v[i]);
  cn_free(v);
}

/* Normalises one member: atom A -> {A, node()}; {Name, Node} as is; anything else NULL. */
static cn_term *norm_member(cn_node *n, const cn_term *m) {
  if (m->type == CN_ATOM) return cn_mk_tuple(2, cn_term_copy(m), cn_mk_atom(cn_node_name(n)));
  return hc_is_member(m) ? cn_term_copy(m) : NULL;
}

static bool in_list(cn_term *const *v, size_t k, const cn_term *t) {
  for (size_t j = 0; j < k; j++)
    if (v[j] && cn_term_exact_eq(v[j], t)) return true;
  return false;
}

static int delete_keyed(cn_node *n, cn_crdt *c, const char *tag, const cn_term *m) {
  cn_term *k = hc_mk_keyed(n, tag, m);
  int rc = k ? cn_crdt_delete(c, k) : CN_ENOMEM;
  cn_term_free(k);
  return rc;
}

/* The {member, M} keys a walk found unwanted (copies: they are deleted after the walk). */
typedef struct unwanted {
  cn_term *const *want;
  size_t k;
  cn_term **del;
  size_t n;
  bool oom;
} unwanted;

static bool find_unwanted(const cn_term *ck, const cn_term *v, void *ctx) {
  (void)v;
  unwanted *u = ctx;
  if (!hc_tuple_n(ck, 2) || !cn_is_atom(&ck->v.tuple.e[0], "member") || in_list(u->want, u->k, &ck->v.tuple.e[1]))
    return true;
  cn_term **d = cn_realloc(u->del, (u->n + 1) * sizeof *d);
  if (d) u->del = d;
  if (!d || !(d[u->n] = cn_term_copy(ck))) {
    u->oom = true;
    return false;
  }
  u->n++;
  return true;
}

/* Removes the {member, M} keys of the CRDT (the truth; a local list may lag by a crdt_update) not in want. */
static int drop_unwanted(cn_node *n, cn_crdt *c, cn_term *const *want, size_t k, bool with_info) {
  unwanted u = {want, k, NULL, 0, false};
  hc_crdt_each(c, find_unwanted, &u);
  int rc = u.oom ? CN_ENOMEM : 0;
  for (size_t i = 0; !rc && i < u.n; i++) {
    rc = cn_crdt_delete(c, u.del[i]);
    if (!rc && with_info) rc = delete_keyed(n, c, "member_node_info", &u.del[i]->v.tuple.e[1]);
  }
  for (size_t i = 0; i < u.n; i++) cn_term_free(u.del[i]);
  cn_free(u.del);
  return rc;
}

static int add_missing(cn_node *n, cn_crdt *c, cn_term *const *want, size_t k) {
  cn_term *one = cn_mk_int(1);
  int rc = one ? 0 : CN_ENOMEM;
  for (size_t j = 0; !rc && j < k; j++) {
    cn_term *ck = hc_mk_keyed(n, "member", want[j]);
    if (!ck) rc = CN_ENOMEM;
    else if (!cn_crdt_get(c, ck)) rc = cn_crdt_put(c, ck, one);
    cn_term_free(ck);
  }
  cn_term_free(one);
  return rc;
}

int hc_set_members(cn_node *n, cn_crdt *c, const cn_term *self, const cn_term *const *ms, size_t count,
                   bool with_info) {
  if (!c) return CN_ESTATE;
  cn_term **want = cn_calloc(count + 1, sizeof *want);
  if (!want) return CN_ENOMEM;
  size_t k = 0;
  int rc = (want[k++] = cn_term_copy(self)) ? 0 : CN_ENOMEM;
  for (size_t i = 0; !rc && i < count; i++) {
    cn_term *m = norm_member(n, ms[i]);
    if (m && !in_list(want, k, m)) want[k++] = m;
    else cn_term_free(m);
  }
  if (!rc) rc = drop_unwanted(n, c, want, k, with_info);
  if (!rc) rc = add_missing(n, c, want, k);
  for (size_t j = 0; j < k; j++) cn_term_free(want[j]);
  cn_free(want);
  return rc;
}

/* [{Name, X} || X <- nodes] with self's Name, skipping NULL nodes (*m of them made); NULL on OOM. */
static cn_term **node_members(const cn_term *self, const cn_atom *const *nodes, size_t count, size_t *m) {
  cn_term **v = cn_calloc(count + 1, sizeof *v);
  *m = 0;
  for (size_t i = 0; v && i < count; i++)
    if (nodes[i] && (v[*m] = cn_mk_tuple(2, cn_term_copy(&self->v.tuple.e[0]), cn_mk_atom(nodes[i])))) (*m)++;
  return v;
}

static void free_terms(cn_term **v, size_t m) {
  for (size_t i = 0; i < m; i++) cn_term_free(v[i]);
  cn_free(v);
}

/* hc_set_members over {Name, Node} for each node atom. */
static int set_nodes(cn_node *n, cn_crdt *c, const cn_term *self, const cn_atom *const *nodes, size_t count,
                     bool with_info) {
  size_t m;
  cn_term **v = node_members(self, nodes, count, &m);
  int rc = v ? hc_set_members(n, c, self, (const cn_term *const *)v, m, with_info) : CN_ENOMEM;
  free_terms(v, m);
  return rc;
}

int hc_auto_members(cn_node *n, cn_crdt *c, const cn_term *self, bool with_info, const cn_atom *down) {
  if (!c) return CN_ESTATE;
  /* Every visible node and this one: no fixed cap, a member past it would be left out. */
  size_t max = cn_nodes(n, CN_NODES_VISIBLE, NULL, 0);
  const cn_atom **names = cn_malloc((max + 1) * sizeof *names);
  if (!names) return CN_ENOMEM;
  size_t k = cn_nodes(n, CN_NODES_VISIBLE, names, max);
  if (k > max) k = max;
  names[k++] = cn_node_name(n);
  int rc = 0;
  if (down && !cn_node_is_up(n, down, CN_NODES_VISIBLE)) {
    cn_term *m = cn_mk_tuple(2, cn_term_copy(&self->v.tuple.e[0]), cn_mk_atom(down));
    rc = m ? delete_keyed(n, c, "member", m) : CN_ENOMEM;
    if (!rc && with_info) rc = delete_keyed(n, c, "member_node_info", m);
    cn_term_free(m);
  }
  size_t m;
  cn_term **v = rc ? NULL : node_members(self, names, k, &m);
  cn_free(names);
  if (!rc) rc = v ? add_missing(n, c, v, m) : CN_ENOMEM;
  if (v) free_terms(v, m);
  return rc;
}

int hc_named_members(cn_node *n, cn_crdt *c, const cn_term *self, const char *const *nodes, size_t count,
                     bool with_info) {
  const cn_atom **v = cn_calloc(count + 1, sizeof *v);
  if (!v) return CN_ENOMEM;
  for (size_t i = 0; i < count; i++) v[i] = cn_intern(n, nodes[i]);
  int rc = set_nodes(n, c, self, v, count, with_info);
  cn_free(v);
  return rc;
}
