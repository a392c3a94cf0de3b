/* sup_members.c: the Horde supervisor member's mirror of the members ({member, M} and {member_node_info, M}), the
 * rings placement uses, this member's own status, the monitors of the other members' N, the CRDT's neighbours. */
#include "sup_int.h"

#define MEMBER_MOD "Elixir.Horde.DynamicSupervisor.Member"

/* ---- The member mirror and placement ----------------------------------------------------------------------------- */

static void ring_reset(pring *p) {
  if (p->valid) hc_ring_free(&p->r);
  cn_free(p->names);
  p->names = NULL;
  p->valid = false;
}

/* The member mirror changed: both rings are rebuilt on their next use. */
void sup_rings_dirty(cn_horde_sup *s) {
  ring_reset(&s->ring[0]);
  ring_reset(&s->ring[1]);
}

member *sup_mem_find(cn_horde_sup *s, const cn_term *name) {
  for (size_t i = 0; i < s->nmem; i++)
    if (cn_term_exact_eq(s->mem[i].name, name)) return &s->mem[i];
  return NULL;
}

member *sup_mem_get(cn_horde_sup *s, const cn_term *name) {
  member *m = sup_mem_find(s, name);
  if (m || !hc_is_member(name)) return m;
  cn_term *copy = cn_term_copy(name);
  member *v = copy ? cn_realloc(s->mem, (s->nmem + 1) * sizeof *v) : NULL;
  if (!v) {
    cn_term_free(copy);
    return NULL;
  }
  s->mem = v;
  size_t at = 0; /* kept in term order, as Horde's member map iterates */
  while (at < s->nmem && cn_term_cmp(v[at].name, name) < 0) at++;
  memmove(&v[at + 1], &v[at], (s->nmem - at) * sizeof *v);
  memset(&v[at], 0, sizeof *v);
  v[at].name = copy;
  s->nmem++;
  sup_rings_dirty(s);
  return &v[at];
}

/* A member's status as Horde's members(state) gives it to the strategy. */
cn_horde_status sup_mem_status(const member *m) {
  return m->is_member && m->has_info ? m->status : CN_HORDE_UNINITIALIZED;
}

static int ring_get(cn_horde_sup *s, int kind, pring **out) {
  pring *p = &s->ring[kind];
  if (!p->valid) {
    ring_reset(p);
    if (!(p->names = cn_calloc(s->nmem + 1, sizeof *p->names))) return CN_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < s->nmem; i++)
      if (sup_mem_status(&s->mem[i]) == CN_HORDE_ALIVE && cn_horde_c_member(s->mem[i].name) == (kind == 0))
        p->names[k++] = s->mem[i].name;
    int rc = hc_ring_build(&p->r, p->names, k);
    if (rc) {
      ring_reset(p);
      return rc;
    }
    p->valid = true;
  }
  *out = p;
  return 0;
}

/* The member the FILTERED rule picks for spec (borrowed from the mirror): 0, CN_ENOTFOUND (no_alive_nodes),
 * CN_EINVAL (spec is not a map) or CN_ENOMEM. */
int sup_choose(cn_horde_sup *s, const cn_term *spec, const cn_term **owner) {
  uint32_t h;
  pring *p;
  int rc = hc_spec_key(spec, &h);
  if (!rc) rc = ring_get(s, cn_horde_c_child(spec) ? 0 : 1, &p);
  if (rc) return rc;
  long i = hc_ring_owner(&p->r, h);
  if (i < 0) return CN_ENOTFOUND;
  *owner = p->names[i];
  return 0;
}

bool sup_is_self(cn_horde_sup *s, const cn_term *name) { return cn_term_exact_eq(name, s->self_member); }

cn_term *sup_info_value(cn_horde_sup *s, const cn_term *name, const char *status) {
  cn_term *kv[] = {atom(s, "__struct__"), atom(s, MEMBER_MOD), atom(s, "name"),
                   cn_term_copy(name),    atom(s, "status"),   atom(s, status)};
  return cn_mk_map(3, kv);
}

int sup_put_keyed(cn_horde_sup *s, const char *tag, const cn_term *k, cn_term *v) {
  cn_term *key = hc_mk_keyed(s->n, tag, k);
  int rc = key && v && s->crdt ? cn_crdt_put(s->crdt, key, v) : CN_ENOMEM;
  cn_term_free(key);
  cn_term_free(v);
  return rc;
}

int sup_delete_keyed(cn_horde_sup *s, const char *tag, const cn_term *k) {
  cn_term *key = hc_mk_keyed(s->n, tag, k);
  int rc = key && s->crdt ? cn_crdt_delete(s->crdt, key) : CN_ENOMEM;
  cn_term_free(key);
  return rc;
}

/* set_own_node_status: writes this member's info when the mirror (or, with check, the CRDT) shows it otherwise. */
void sup_own_status(cn_horde_sup *s, bool check_crdt) {
  cn_horde_status want = s->shutting_down ? CN_HORDE_SHUTTING_DOWN : CN_HORDE_ALIVE;
  member *m = sup_mem_get(s, s->self_member);
  bool ok = m && m->has_info && m->status == want;
  if (ok && check_crdt && s->crdt) {
    cn_term *key = hc_mk_keyed(s->n, "member_node_info", s->self_member);
    cn_horde_member cur;
    const cn_term *v = key ? cn_crdt_get(s->crdt, key) : NULL;
    ok = v && !cn_horde_member_parse(v, &cur) && cur.status == want && cn_term_exact_eq(cur.name, s->self_member);
    cn_term_free(key);
  }
  if (ok || !m) return;
  const char *st = want == CN_HORDE_ALIVE ? "alive" : "shutting_down";
  if (!sup_put_keyed(s, "member_node_info", s->self_member, sup_info_value(s, s->self_member, st))) {
    m->has_info = true;
    m->status = want;
    sup_rings_dirty(s);
  }
}

/* Monitors the process N of every alive member not monitored yet (Horde's monitor_supervisors). */
void sup_monitor_members(cn_horde_sup *s) {
  if (!s->self) return;
  for (size_t i = 0; i < s->nmem; i++) {
    member *m = &s->mem[i];
    if (m->monitored || sup_mem_status(m) != CN_HORDE_ALIVE || sup_is_self(s, m->name)) continue;
    m->monitored = cn_monitor(s->self, m->name, &m->mref) == 0;
  }
}

void sup_push_neighbours(cn_horde_sup *s) {
  cn_term **v = cn_calloc(s->nmem + 1, sizeof *v);
  if (!v) return;
  size_t k = 0;
  for (size_t i = 0; i < s->nmem; i++)
    if (s->mem[i].is_member) v[k++] = s->mem[i].name;
  hc_push_neighbours(s->n, s->crdt, v, k, s->self_member);
  cn_free(v);
}
