/* sup_recovery.c: the Horde supervisor member's graceful shutdown (children relinquished, peers polled until they
 * show it), handoff and the orphan recovery rules over the CRDT's {process, Id} entries, and the CRDT's diffs. */
#include "sup_int.h"

#define POLL_MS 100 /* shutdown: how often peers' CRDTs are read */

/* ---- Shutdown, relinquished children ----------------------------------------------------------------------------- */

static void check_shutdown(cn_horde_sup *s);

/* Writes {process, Id} => {nil, Spec} for the ring's next choice (Horde's relinquish_child_process). */
void sup_relinquish(cn_horde_sup *s, child *c) {
  sup_put_keyed(s, "process", c->id, cn_mk_tuple(2, atom(s, "nil"), cn_term_copy(c->spec)));
  sup_logt(s, CN_LOG_INFO, "relinquished child", c->id);
  cn_term **v = s->sd.begun ? cn_realloc(s->sd.keys, (s->sd.nkeys + 1) * sizeof *v) : NULL;
  if (v) {
    s->sd.keys = v;
    if ((v[s->sd.nkeys] = hc_mk_keyed(s->n, "process", c->id))) s->sd.nkeys++;
  }
  sup_child_drop(s, c);
  check_shutdown(s);
}

void sup_finish_shutdown(cn_horde_sup *s, const char *how) {
  cn_horde_done_fn done = s->sd.done;
  s->sd.done = NULL;
  s->sd.waiting = false;
  s->sd.over = true;
  cn_log(s->n, CN_LOG_INFO, "%s: shutdown: %zu children relinquished, %s", s->name, s->sd.nkeys ? s->sd.nkeys - 1 : 0,
         how);
  if (done) done(s, s->sd.ctx);
}

/* True when a peer's {read, Keys} answer shows this member not alive and none of its children as its own. */
static bool peer_saw(cn_horde_sup *s, const cn_term *reply) {
  if (!reply || reply->type != CN_MAP) return false;
  cn_horde_member m;
  const cn_term *info = hc_map_find(reply, s->sd.keys[0], 0);
  if (info && (cn_horde_member_parse(info, &m) || m.status == CN_HORDE_ALIVE)) return false;
  for (size_t i = 1; i < s->sd.nkeys; i++) {
    const cn_term *v = hc_map_find(reply, s->sd.keys[i], 0);
    if (hc_tuple_n(v, 3) && sup_is_self(s, &v->v.tuple.e[0])) return false;
  }
  return true;
}

static void poll_done(cn_proc *self, int status, const cn_term *reply, void *ctx) {
  (void)self;
  cn_horde_sup *s = ctx;
  if (status == CN_ECLOSED || !s->sd.waiting) return;
  s->sd.answered++;
  s->sd.seen += status == 0 && peer_saw(s, reply);
  if (s->sd.answered < s->sd.asked) return;
  if (s->sd.seen == s->sd.asked) sup_finish_shutdown(s, "seen by every peer");
  else sup_send_later(s, POLL_MS, atom(s, "$hc_poll"), NULL);
}

/* This node, or a node connected to it (visible or hidden), however many there are. */
static bool node_up(cn_horde_sup *s, const cn_term *node) {
  return node->v.atom == cn_node_name(s->n) || cn_node_is_up(s->n, node->v.atom, CN_NODES_ALL);
}

/* One round: {read, Keys} to the CRDT of every connected peer member. */
void sup_poll_peers(cn_horde_sup *s) {
  if (!s->sd.waiting || !s->self || s->sd.answered < s->sd.asked) return; /* a round is still out */
  if (now_ms() >= s->sd.deadline) {
    sup_finish_shutdown(s, "peers not all seen in time");
    return;
  }
  cn_term *req = cn_mk_tuple(2, atom(s, "read"), hc_list_copy(s->sd.keys, s->sd.nkeys));
  s->sd.asked = s->sd.answered = s->sd.seen = 0;
  for (size_t i = 0; req && i < s->nmem; i++) {
    const cn_term *m = s->mem[i].name;
    if (!s->mem[i].is_member || sup_is_self(s, m) || !node_up(s, &m->v.tuple.e[1])) continue;
    cn_term *dest = hc_member_proc(s->n, m, ".Crdt");
    if (dest && !cn_call(s->self, dest, req, 1000, poll_done, s)) s->sd.asked++;
    cn_term_free(dest);
  }
  cn_term_free(req);
  if (!s->sd.asked) sup_finish_shutdown(s, "no peer to tell");
}

/* Once every child has been relinquished: one sync round, then polls until the peers show it. */
static void check_shutdown(cn_horde_sup *s) {
  if (!s->sd.begun || s->sd.waiting || s->sd.over || s->nch) return;
  s->sd.waiting = true;
  s->sd.deadline = now_ms() + s->o.shutdown_wait_ms;
  if (s->crdt) cn_crdt_sync_now(s->crdt);
  sup_send_later(s, POLL_MS, atom(s, "$hc_poll"), NULL);
}

void sup_begin_shutdown(cn_horde_sup *s) {
  s->sd.begun = true;
  s->shutting_down = true;
  sup_own_status(s, false);
  s->sd.keys = cn_calloc(1, sizeof *s->sd.keys);
  if (s->sd.keys && (s->sd.keys[0] = hc_mk_keyed(s->n, "member_node_info", s->self_member))) s->sd.nkeys = 1;
  if (!s->sd.nkeys) {
    sup_finish_shutdown(s, "out of memory");
    return;
  }
  for (size_t i = s->nch; i-- > 0;) {
    child *c = s->ch[i];
    if (c->state == C_RESTARTING) sup_relinquish(s, c);
    else if (c->state == C_RUNNING) sup_stop_child(s, c, C_RELINQUISHING);
  }
  check_shutdown(s);
}

/* ---- Handoff and recovery (spec §5.4, horde-supervisor.md rules 4-7) --------------------------------------------- */

typedef struct walk {
  cn_horde_sup *s;
  sup_proc_fn fn;
  void *ctx;
} walk;

static bool walk_one(const cn_term *k, const cn_term *v, void *ctx) {
  walk *w = ctx;
  if (!hc_tuple_n(k, 2) || !cn_is_atom(&k->v.tuple.e[0], "process")) return true;
  return w->fn(w->s, k, &k->v.tuple.e[1], v, w->ctx);
}

void sup_each_process(cn_horde_sup *s, sup_proc_fn fn, void *ctx) {
  walk w = {s, fn, ctx};
  if (s->crdt) hc_crdt_each(s->crdt, walk_one, &w);
}

/* Entries a walk chose to act on, copied ({process, Id} key, value), for the writes that follow the walk. */
typedef struct todo {
  cn_term **kv;
  size_t n;
} todo;

/* Queues key and v (copied); on OOM the entry is skipped (the next scan finds it again). */
static void todo_add(todo *t, const cn_term *key, const cn_term *v) {
  cn_term **kv = cn_realloc(t->kv, (2 * t->n + 2) * sizeof *kv);
  if (!kv) return;
  t->kv = kv;
  kv[2 * t->n] = cn_term_copy(key);
  kv[2 * t->n + 1] = cn_term_copy(v);
  if (kv[2 * t->n] && kv[2 * t->n + 1]) {
    t->n++;
    return;
  }
  cn_term_free(kv[2 * t->n]);
  cn_term_free(kv[2 * t->n + 1]);
}

static void todo_free(todo *t) {
  for (size_t i = 0; i < 2 * t->n; i++) cn_term_free(t->kv[i]);
  cn_free(t->kv);
}

/* The spec of a C child's entry value ({Owner, Spec, Pid} or {nil, Spec}), else NULL. */
static const cn_term *c_spec(const cn_term *v) {
  const cn_term *spec = hc_tuple_n(v, 3) ? &v->v.tuple.e[1] : hc_tuple_n(v, 2) ? &v->v.tuple.e[1] : NULL;
  if (hc_tuple_n(v, 2) && !cn_is_atom(&v->v.tuple.e[0], "nil")) return NULL;
  return spec && cn_horde_c_child(spec) ? spec : NULL;
}

static bool chosen_here(cn_horde_sup *s, const cn_term *spec) {
  const cn_term *owner;
  return !s->shutting_down && !sup_choose(s, spec, &owner) && sup_is_self(s, owner);
}

/* The key still holds v (an earlier action after the same walk may have changed it). */
static bool still(cn_horde_sup *s, const cn_term *key, const cn_term *v) {
  const cn_term *cur = s->crdt ? cn_crdt_get(s->crdt, key) : NULL;
  return cur && cn_term_exact_eq(cur, v);
}

/* Deletes the entry and starts its spec here under a new Id (Horde's handoff; forgetting the old Id at once). */
static void take_over(cn_horde_sup *s, const cn_term *key, const cn_term *spec, const char *why) {
  sup_delete_keyed(s, "process", &key->v.tuple.e[1]);
  cn_term *reply = sup_start_new(s, spec);
  if (cn_is_atom(cn_tuple_elem(reply, 2, 0), "ok")) sup_logt(s, CN_LOG_INFO, why, &key->v.tuple.e[1]);
  sup_log_reply(s, "could not take over a child:", reply);
}

/* Step 5 of §5.4: a C child whose owner is marked dead and that the ring now gives to this member; queued in ctx
 * (a todo) for take_over after the walk. */
static bool handoff_one(cn_horde_sup *s, const cn_term *key, const cn_term *id, const cn_term *v, void *ctx) {
  (void)id;
  const cn_term *spec = c_spec(v);
  member *m = spec && hc_tuple_n(v, 3) && !sup_is_self(s, &v->v.tuple.e[0]) ? sup_mem_find(s, &v->v.tuple.e[0]) : NULL;
  /* a member marked dead whose node is connected again (a healed partition) still runs its children: not taken */
  if (m && m->has_info && m->status == CN_HORDE_DEAD && !node_up(s, &m->name->v.tuple.e[1]) && chosen_here(s, spec))
    todo_add(ctx, key, v);
  return true;
}

/* Starts spec here keeping Id (a relinquished child, an own entry found not running). */
static void start_keeping(cn_horde_sup *s, const cn_term *id, const cn_term *spec, const char *what) {
  cn_term *sp = sup_with_id(s, spec, id);
  sup_log_reply(s, what, sp ? sup_start_local(s, sp) : NULL);
  cn_term_free(sp);
}

/* A relinquished C child ({nil, Spec}) that the ring gives to this member: started keeping its Id (rule 7). */
static void adopt_relinquished(cn_horde_sup *s, const cn_term *id, const cn_term *spec) {
  if (!sup_child_by_id(s, id) && chosen_here(s, spec))
    start_keeping(s, id, spec, "could not start a relinquished child:");
}

static cand *cand_get(cn_horde_sup *s, const cn_term *id) {
  for (size_t i = 0; i < s->ncand; i++)
    if (cn_term_exact_eq(s->cand[i].id, id)) return &s->cand[i];
  cand *v = cn_realloc(s->cand, (s->ncand + 1) * sizeof *v);
  if (!v) return NULL;
  s->cand = v;
  cand *c = &v[s->ncand];
  if (!(c->id = cn_term_copy(id))) return NULL;
  c->since = now_ms();
  s->ncand++;
  return c;
}

static bool synced(cn_horde_sup *s) {
  cn_crdt_stats st;
  cn_crdt_get_stats(s->crdt, &st);
  if (st.joins) return true;
  for (size_t i = 0; i < s->nmem; i++)
    if (s->mem[i].is_member && !sup_is_self(s, s->mem[i].name)) return false;
  return true;
}

/* Rules 5-7 for one entry: own-name entries not running here (after the first sync), C children whose owner is
 * neither an alive member nor connected, relinquished ones nobody took; queued in ctx (a todo) for scan_act once
 * they held orphan_ms. */
static bool scan_one(cn_horde_sup *s, const cn_term *key, const cn_term *id, const cn_term *v, void *ctx) {
  const cn_term *spec = c_spec(v), *owner = hc_tuple_n(v, 3) ? &v->v.tuple.e[0] : NULL;
  if (!spec || (owner && !hc_is_member(owner))) return true;
  bool mine = owner && sup_is_self(s, owner);
  member *m = owner && !mine ? sup_mem_find(s, owner) : NULL;
  if (mine ? sup_child_by_id(s, id) || !synced(s)
           : owner && ((m && sup_mem_status(m) == CN_HORDE_ALIVE) || node_up(s, &owner->v.tuple.e[1])))
    return true;
  cand *c = cand_get(s, id);
  if (!c) return true;
  c->seen = true;
  if (now_ms() - c->since < s->o.orphan_ms) return true;
  c->since = now_ms();
  todo_add(ctx, key, v);
  return true;
}

/* Acts on an entry scan_one queued, unless an earlier action changed it. */
static void scan_act(cn_horde_sup *s, const cn_term *key, const cn_term *v) {
  const cn_term *id = &key->v.tuple.e[1], *spec = c_spec(v), *owner = hc_tuple_n(v, 3) ? &v->v.tuple.e[0] : NULL;
  bool mine = owner && sup_is_self(s, owner);
  if (!still(s, key, v)) return;
  if (mine) {
    sup_logt(s, CN_LOG_INFO, "restarting an own entry found not running:", id);
    start_keeping(s, id, spec, "could not restart an own entry:");
  } else if (!owner) {
    adopt_relinquished(s, id, spec);
  } else if (chosen_here(s, spec)) {
    take_over(s, key, spec, "adopted an orphaned child:");
  }
}

void sup_scan_orphans(cn_horde_sup *s) {
  s->dirty = false;
  if (s->shutting_down || !s->crdt) return;
  for (size_t i = 0; i < s->ncand; i++) s->cand[i].seen = false;
  todo t = {NULL, 0};
  sup_each_process(s, scan_one, &t);
  for (size_t i = 0; i < t.n; i++) scan_act(s, t.kv[2 * i], t.kv[2 * i + 1]);
  todo_free(&t);
  size_t k = 0;
  for (size_t i = 0; i < s->ncand; i++) {
    if (s->cand[i].seen) s->cand[k++] = s->cand[i];
    else cn_term_free(s->cand[i].id);
  }
  s->ncand = k;
}

/* ---- Diffs from the CRDT (Horde's crdt_update) ------------------------------------------------------------------- */

/* update_member: {member, M} (value 1 only, as Horde matches it) and {member_node_info, M}; true when it was one. */
static bool member_diff(cn_horde_sup *s, const cn_term *k, const cn_term *val, bool add) {
  bool memb = cn_is_atom(&k->v.tuple.e[0], "member"), info = cn_is_atom(&k->v.tuple.e[0], "member_node_info");
  if (!memb && !info) return false;
  member *m = add ? sup_mem_get(s, &k->v.tuple.e[1]) : sup_mem_find(s, &k->v.tuple.e[1]);
  cn_horde_member mi;
  if (!m) return true;
  if (memb && (!add || (val->type == CN_INT && val->v.i == 1))) m->is_member = add;
  if (info && !add) m->has_info = false;
  if (info && add && !cn_horde_member_parse(val, &mi)) {
    m->has_info = true;
    m->status = mi.status;
  }
  sup_rings_dirty(s);
  return true;
}

/* Horde's reactions to a membership change (§5.4 steps 1-5; the quorum of UniformDistribution always holds). */
static void membership_changed(cn_horde_sup *s) {
  sup_monitor_members(s);
  sup_own_status(s, false);
  sup_push_neighbours(s);
  todo t = {NULL, 0};
  sup_each_process(s, handoff_one, &t);
  for (size_t i = 0; i < t.n; i++)
    take_over(s, t.kv[2 * i], c_spec(t.kv[2 * i + 1]), "took over the child of a dead member:");
  todo_free(&t);
}

bool sup_entry_disowns(const cn_term *v, const cn_term *self_member) {
  if (!v) return true; /* deleted by another member: a take-over (new Id elsewhere) or a terminate */
  return hc_tuple_n(v, 3) && hc_is_member(&v->v.tuple.e[0]) && !cn_term_exact_eq(&v->v.tuple.e[0], self_member);
}

/* A {process, Id} diff about a child running here: when the entry no longer names this member, another member owns
 * (or ended) the child, and the local copy stops (without touching the entry), so each child runs once. */
static void check_local(cn_horde_sup *s, const cn_term *id, const cn_term *v) {
  child *c = sup_child_by_id(s, id);
  if (!c || c->state != C_RUNNING || !sup_entry_disowns(v, s->self_member) || !s->self) return;
  /* the diff may be behind the CRDT (several in one batch): act on its current value */
  cn_term *key = hc_mk_keyed(s->n, "process", id);
  const cn_term *cur = key && s->crdt ? cn_crdt_get(s->crdt, key) : NULL;
  cn_term_free(key);
  if (!sup_entry_disowns(cur, s->self_member)) return;
  sup_logt(s, CN_LOG_INFO, "stopping a local child another member owns:", id);
  sup_stop_child(s, c, C_TERMINATING);
}

void sup_on_update(cn_horde_sup *s, const cn_term *diffs) {
  if (!hc_proper_list(diffs)) return;
  s->dirty = true;
  size_t n = diffs->type == CN_LIST ? diffs->v.list.len : 0;
  bool changed = false;
  for (int pass = 0; pass < 2; pass++) /* members first, then processes, as update_members/update_processes */
    for (size_t i = 0; i < n; i++) {
      const cn_term *d = &diffs->v.list.e[i];
      bool add = hc_tuple_n(d, 3) && cn_is_atom(&d->v.tuple.e[0], "add");
      const cn_term *k = add || (hc_tuple_n(d, 2) && cn_is_atom(&d->v.tuple.e[0], "remove")) ? &d->v.tuple.e[1] : NULL;
      if (!hc_tuple_n(k, 2)) continue;
      const cn_term *v = add ? &d->v.tuple.e[2] : NULL;
      if (pass == 0) {
        changed |= member_diff(s, k, v, add);
      } else if (cn_is_atom(&k->v.tuple.e[0], "process")) {
        check_local(s, &k->v.tuple.e[1], v);
        if (add && c_spec(v) && hc_tuple_n(v, 2)) adopt_relinquished(s, &k->v.tuple.e[1], c_spec(v));
      }
    }
  if (changed) membership_changed(s);
}
