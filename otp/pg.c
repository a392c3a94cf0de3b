/* pg.c: OTP's pg scopes on a C node (kernel's pg.erl): the scope process (a gen_server registered under the
 * scope's name that speaks pg's wire: discover, sync, join, leave, monitors of the remote scope processes, local
 * member exits) and the C API of cn_pg.h. The tables and the message decoding are pure, in pg_table.c.
 *
 * The C API runs on the loop's thread outside the scope process, so it changes the tables at once (pg's own
 * join/leave are calls into the scope: the result is the same) and asks the scope process, by a message, for
 * what only a process can do: monitor a new member or a C monitor's owner, drop such a monitor. */
#include <string.h>

#include "pg_int.h"

/* A local member: the groups it joined, one entry per join (pg's #state.local). */
typedef struct pg_local {
  struct pg_local *next;
  cn_pid pid;
  cn_ref mref;
  bool monitored;
  cn_term **groups; /* owned copies */
  size_t n, cap;
} pg_local;

/* A remote scope process found by discover or sync, with what it told us (pg's #state.remote). */
typedef struct pg_peer {
  struct pg_peer *next;
  cn_pid scope;
  cn_ref mref;
  pg_table groups; /* only .all is used */
} pg_peer;

/* A monitor of the scope (group NULL) or of a group, by a process (pg's scope_monitors / monitored_groups). */
typedef struct pg_mon {
  struct pg_mon *next;
  cn_ref ref; /* what notifications carry */
  cn_pid pid;
  cn_term *group; /* owned; NULL: the whole scope */
  cn_ref down;    /* the scope process's monitor of pid, once set */
  bool has_down;
} pg_mon;

typedef struct pg_scope {
  struct pg_scope *next;
  cn_node *n;
  const cn_atom *name;
  cn_pid pid;
  pg_table groups;
  pg_local *local;
  pg_peer *peers;
  pg_mon *mons;
} pg_scope;

/* The node's slot: its running scopes. */
typedef struct pg_node {
  pg_scope *scopes;
} pg_node;

static const char pg_key; /* the address names the slot (cn_node_attach) */

static cn_term *A(pg_scope *s, const char *t) { return cn_mk_atomc(s->n, t); }
static cn_pid live(pg_scope *s, cn_pid p) { return pg_live_pid(cn_node_name(s->n), cn_node_creation(s->n), p); }
static bool is_local(pg_scope *s, cn_pid p) { return p.node == cn_node_name(s->n); }
static bool pid_eq(pg_scope *s, cn_pid a, cn_pid b) { return cn_pid_eq(live(s, a), live(s, b)); }
static bool ref_eq(pg_scope *s, cn_ref a, cn_ref b) {
  if (a.node == cn_node_name(s->n) && !a.creation) a.creation = cn_node_creation(s->n);
  if (b.node == cn_node_name(s->n) && !b.creation) b.creation = cn_node_creation(s->n);
  return cn_ref_eq(&a, &b);
}

static pg_scope *scope_find(cn_node *n, const char *name) {
  pg_node *pn = n && name ? cn_node_attached(n, &pg_key) : NULL;
  for (pg_scope *s = pn ? pn->scopes : NULL; s; s = s->next)
    if (!strcmp(s->name->name, name)) return s;
  return NULL;
}

/* ---- Sending -------------------------------------------------------------------------------------------------- */

/* pg's broadcast/2: msg (taken) to every known remote scope process. */
static void to_peers(pg_scope *s, cn_term *msg) {
  for (pg_peer *p = s->peers; msg && p; p = p->next) cn_send(s->n, NULL, p->scope, msg);
  cn_term_free(msg);
}

static void to_self(pg_scope *s, cn_term *msg) {
  if (msg) cn_send(s->n, NULL, s->pid, msg);
  cn_term_free(msg);
}

/* notify_group/5: {Ref, join | leave, Group, Pids} to the scope's monitors and to the group's. */
static void notify(pg_scope *s, const char *action, const cn_term *group, const pg_pids *pids) {
  for (pg_mon **x = &s->mons; *x;) {
    pg_mon *m = *x;
    if (m->group && !cn_term_exact_eq(m->group, group)) {
      x = &m->next;
      continue;
    }
    if (is_local(s, m->pid) && !cn_is_process_alive(s->n, m->pid)) { /* a C owner gone before its DOWN came */
      *x = m->next;
      cn_term_free(m->group);
      cn_free(m);
      continue;
    }
    cn_term *msg = cn_mk_tuple(4, cn_mk_ref(m->ref), A(s, action), cn_term_copy(group), pg_pids_term(pids));
    if (msg) cn_send(s->n, NULL, m->pid, msg);
    cn_term_free(msg);
    x = &m->next;
  }
}

/* ---- Local members -------------------------------------------------------------------------------------------- */

static pg_local *local_find(pg_scope *s, cn_pid pid) {
  for (pg_local *l = s->local; l; l = l->next)
    if (pid_eq(s, l->pid, pid)) return l;
  return NULL;
}

static void local_free(pg_local *l) {
  for (size_t i = 0; i < l->n; i++) cn_term_free(l->groups[i]);
  cn_free(l->groups);
  cn_free(l);
}

static void local_unlink(pg_scope *s, pg_local *l, bool demonitor) {
  for (pg_local **x = &s->local; *x; x = &(*x)->next)
    if (*x == l) {
      *x = l->next;
      break;
    }
  if (demonitor && l->monitored) to_self(s, cn_mk_tuple(3, A(s, "$cn_pg"), A(s, "unwatch"), cn_mk_ref(l->mref)));
  local_free(l);
}

/* join_local/3 for one pid: a new member is monitored (by the scope process, through a message). */
static int local_add(pg_scope *s, cn_pid pid, const cn_term *group) {
  pg_local *l = local_find(s, pid);
  if (!l) {
    if (!(l = cn_calloc(1, sizeof *l))) return CN_ENOMEM;
    l->pid = pid;
    l->next = s->local;
    s->local = l;
    to_self(s, cn_mk_tuple(3, A(s, "$cn_pg"), A(s, "watch"), cn_mk_pid(pid)));
  }
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 4;
    cn_term **g = cn_realloc(l->groups, cap * sizeof *g);
    if (!g) return CN_ENOMEM;
    l->groups = g;
    l->cap = cap;
  }
  if (!(l->groups[l->n] = cn_term_copy(group))) return CN_ENOMEM;
  l->n++;
  return 0;
}

/* leave_local/3 for one pid: true when pid had joined group (one join is undone). */
static bool local_del(pg_scope *s, cn_pid pid, const cn_term *group) {
  pg_local *l = local_find(s, pid);
  for (size_t i = 0; l && i < l->n; i++)
    if (cn_term_exact_eq(l->groups[i], group)) {
      cn_term_free(l->groups[i]);
      l->groups[i] = l->groups[--l->n];
      if (!l->n) local_unlink(s, l, true);
      return true;
    }
  return false;
}

/* A pid or a list of pids as pg sends it: the single pid when there is one. */
static cn_term *pids_wire(const pg_pids *p, bool single) { return single ? cn_mk_pid(p->p[0]) : pg_pids_term(p); }

static int join_local(pg_scope *s, const cn_term *group, const pg_pids *pids, bool single) {
  for (size_t i = 0; i < pids->n; i++) {
    if (!is_local(s, pids->p[i])) return CN_EINVAL;
    if (!cn_is_process_alive(s->n, pids->p[i])) return CN_ENOPROC;
  }
  pg_group *g = pg_table_get(&s->groups, group);
  if (!g) return CN_ENOMEM;
  for (size_t i = 0; i < pids->n; i++) {
    cn_pid p = live(s, pids->p[i]);
    int rc = local_add(s, p, group);
    if (!rc && (rc = pg_pids_add(&g->all, p)) == 0 && (rc = pg_pids_add(&g->local, p)) != 0) pg_pids_del(&g->all, p);
    if (rc) {
      local_del(s, p, group);
      pg_table_drop_empty(&s->groups, g);
      return rc;
    }
  }
  notify(s, "join", group, pids);
  to_peers(s, cn_mk_tuple(4, A(s, "join"), cn_mk_pid(s->pid), cn_term_copy(group), pids_wire(pids, single)));
  return 0;
}

/* leave_local_update_ets/5 and the leave broadcast; the local map has been updated. */
static void left_local(pg_scope *s, const cn_term *group, const pg_pids *pids, bool single) {
  pg_group *g = pg_table_find(&s->groups, group);
  if (!g) return;
  for (size_t i = 0; i < pids->n; i++) {
    pg_pids_del(&g->all, pids->p[i]);
    pg_pids_del(&g->local, pids->p[i]);
  }
  pg_table_drop_empty(&s->groups, g);
  notify(s, "leave", group, pids);
  to_peers(
      s, cn_mk_tuple(4, A(s, "leave"), cn_mk_pid(s->pid), pids_wire(pids, single), cn_mk_list(1, cn_term_copy(group))));
}

static int leave_local(pg_scope *s, const cn_term *group, const pg_pids *pids, bool single) {
  bool any = false;
  for (size_t i = 0; i < pids->n; i++) any |= local_del(s, pids->p[i], group);
  if (!any) return CN_ENOTFOUND; /* not_joined */
  left_local(s, group, pids, single);
  return 0;
}

/* A member that exited (or a leave_all): every group it joined, in one leave message per peer. */
static void member_gone(pg_scope *s, pg_local *l) {
  pg_pids one = {&l->pid, 1, 1};
  cn_term **el = cn_malloc((l->n ? l->n : 1) * sizeof *el);
  for (size_t i = 0; i < l->n; i++) {
    pg_group *g = pg_table_find(&s->groups, l->groups[i]);
    if (el) el[i] = cn_term_copy(l->groups[i]);
    if (!g) continue;
    pg_pids_del(&g->all, l->pid);
    pg_pids_del(&g->local, l->pid);
    notify(s, "leave", l->groups[i], &one);
    pg_table_drop_empty(&s->groups, g);
  }
  if (el) to_peers(s, cn_mk_tuple(4, A(s, "leave"), cn_mk_pid(s->pid), cn_mk_pid(l->pid), cn_mk_listv(l->n, el, NULL)));
  cn_free(el);
}

/* ---- Remote scopes ---------------------------------------------------------------------------------------------- */

static pg_peer *peer_find(pg_scope *s, cn_pid scope) {
  for (pg_peer *p = s->peers; p; p = p->next)
    if (cn_pid_eq(p->scope, scope)) return p;
  return NULL;
}

/* join_remote_update_ets/5: remote pids join group in the scope's table. */
static void join_remote_table(pg_scope *s, const cn_term *group, const pg_pids *pids) {
  pg_group *g = pg_table_get(&s->groups, group);
  for (size_t i = 0; g && i < pids->n; i++) pg_pids_add(&g->all, pids->p[i]);
  notify(s, "join", group, pids);
}

/* leave_remote_update_ets/5 for one group: pids leave it (one occurrence each). */
static void leave_remote(pg_scope *s, const cn_term *group, const pg_pids *pids) {
  pg_group *g = pg_table_find(&s->groups, group);
  if (!g) return;
  for (size_t i = 0; i < pids->n; i++) pg_pids_del(&g->all, pids->p[i]);
  pg_table_drop_empty(&s->groups, g);
  notify(s, "leave", group, pids);
}

static void peer_leave_each(pg_group *g, void *ctx) { leave_remote(ctx, g->name, &g->all); }

static void peer_drop(pg_scope *s, pg_peer *p) {
  for (pg_peer **x = &s->peers; *x; x = &(*x)->next)
    if (*x == p) {
      *x = p->next;
      break;
    }
  pg_table_each(&p->groups, peer_leave_each, s);
  pg_table_free(&p->groups);
  cn_free(p);
}

static pg_peer *peer_add(pg_scope *s, cn_proc *self, cn_pid scope) {
  pg_peer *p = cn_calloc(1, sizeof *p);
  cn_term t = cn_tv_pid(scope);
  if (!p || cn_monitor(self, &t, &p->mref)) {
    cn_free(p);
    return NULL;
  }
  p->scope = scope;
  p->next = s->peers;
  s->peers = p;
  return p;
}

/* The local part of all_local_pids/1: [{Group, LocalPids}]. */
typedef struct {
  cn_term **e;
  size_t n;
} pg_acc;
static void local_entry(pg_group *g, void *ctx) {
  pg_acc *a = ctx;
  if (g->local.n && a->e) a->e[a->n++] = cn_mk_tuple(2, cn_term_copy(g->name), pg_pids_term(&g->local));
}

static void handle_discover(pg_scope *s, cn_proc *self, cn_pid peer) {
  pg_acc a = {cn_malloc((s->groups.count ? s->groups.count : 1) * sizeof(cn_term *)), 0};
  cn_term *groups = a.e ? (pg_table_each(&s->groups, local_entry, &a), cn_mk_listv(a.n, a.e, NULL)) : NULL;
  cn_free(a.e);
  cn_term *sync = cn_mk_tuple(3, A(s, "sync"), cn_mk_pid(s->pid), groups), to = cn_tv_pid(peer);
  if (sync) cn_cast(s->n, self, &to, sync);
  cn_term_free(sync);
  if (peer_find(s, peer) || !peer_add(s, self, peer)) return;
  cn_term *d = cn_mk_tuple(2, A(s, "discover"), cn_mk_pid(s->pid));
  if (d) cn_send(s->n, self, peer, d);
  cn_term_free(d);
}

static bool pids_same(const pg_pids *a, const pg_pids *b) {
  if (a->n != b->n) return false;
  for (size_t i = 0; i < a->n; i++)
    if (!cn_pid_eq(a->p[i], b->p[i])) return false;
  return true;
}

/* handle_sync/6: what the peer sends replaces what we knew of it. A group whose members changed is rewritten
 * without notifications, as pg does (Pids ++ AllOld -- OldPids). */
static void handle_sync(pg_scope *s, cn_proc *self, cn_pid peer, const cn_term *groups) {
  uint32_t k;
  const cn_term *e = pg_list(groups, &k);
  for (uint32_t i = 0; i < k; i++) { /* a malformed sync is ignored whole (pg would crash on it) */
    const cn_term *name;
    pg_pids pids;
    if (pg_sync_entry(&e[i], &name, &pids)) {
      cn_log(s->n, CN_LOG_WARN, "pg scope %s: malformed sync ignored", s->name->name);
      return;
    }
    pg_pids_free(&pids);
  }
  pg_peer *p = peer_find(s, peer);
  if (!p && !(p = peer_add(s, self, peer))) return;
  pg_table fresh = {0};
  for (uint32_t i = 0; i < k; i++) {
    const cn_term *name;
    pg_pids pids;
    if (pg_sync_entry(&e[i], &name, &pids)) continue;
    pg_group *old = pg_table_find(&p->groups, name), *now = pg_table_get(&fresh, name);
    if (now) {
      pg_pids_free(&now->all); /* maps:from_list: the last entry for a group wins */
      now->all = pids;
    }
    if (!old) {
      join_remote_table(s, name, &pids);
    } else if (!pids_same(&old->all, &pids)) {
      pg_group *g = pg_table_get(&s->groups, name);
      for (size_t j = 0; g && j < old->all.n; j++) pg_pids_del(&g->all, old->all.p[j]);
      for (size_t j = 0; g && j < pids.n; j++) pg_pids_add(&g->all, pids.p[j]);
      pg_table_drop_empty(&s->groups, g);
    }
    if (old) {
      pg_pids_free(&old->all); /* seen: what is left in p->groups afterwards is gone */
      pg_table_drop_empty(&p->groups, old);
    }
    if (!now) pg_pids_free(&pids);
  }
  pg_table_each(&p->groups, peer_leave_each, s);
  pg_table_free(&p->groups);
  p->groups = fresh;
}

/* ---- The scope process -------------------------------------------------------------------------------------------- */

static void handle_join(pg_scope *s, const pg_msg *m) {
  pg_peer *p = peer_find(s, m->peer);
  pg_pids pids;
  if (!p || pg_pids_decode(m->pids, &pids)) return; /* a join from outside the overlay network: ignored, as pg */
  join_remote_table(s, m->group, &pids);
  pg_group *pg = pg_table_get(&p->groups, m->group);
  for (size_t i = 0; pg && i < pids.n; i++) pg_pids_add(&pg->all, pids.p[i]);
  pg_pids_free(&pids);
}

static void handle_leave(pg_scope *s, const pg_msg *m) {
  pg_peer *p = peer_find(s, m->peer);
  pg_pids pids;
  uint32_t k;
  const cn_term *g = pg_list(m->groups, &k);
  if (!p || pg_pids_decode(m->pids, &pids)) return;
  for (uint32_t i = 0; i < k; i++) {
    leave_remote(s, &g[i], &pids);
    pg_group *pg = pg_table_find(&p->groups, &g[i]);
    for (size_t j = 0; pg && j < pids.n; j++) pg_pids_del(&pg->all, pids.p[j]);
    if (pg) pg_table_drop_empty(&p->groups, pg);
  }
  pg_pids_free(&pids);
}

static void mon_free(pg_mon *m) {
  cn_term_free(m->group);
  cn_free(m);
}

static void handle_down(pg_scope *s, const pg_msg *m) {
  for (pg_local *l = s->local; l; l = l->next)
    if (l->monitored && ref_eq(s, l->mref, m->ref)) {
      member_gone(s, l);
      local_unlink(s, l, false);
      return;
    }
  for (pg_peer *p = s->peers; p; p = p->next)
    if (ref_eq(s, p->mref, m->ref)) { /* the peer's scope ended or its node went down */
      peer_drop(s, p);
      return;
    }
  for (pg_mon **x = &s->mons; *x; x = &(*x)->next)
    if ((*x)->has_down && ref_eq(s, (*x)->down, m->ref)) {
      pg_mon *mon = *x;
      *x = mon->next;
      mon_free(mon);
      return;
    }
}

/* The scope's own requests from the C API: {'$cn_pg', watch, Pid}, {'$cn_pg', watch_mon, Ref}, {'$cn_pg',
 * unwatch, MRef} and {'$cn_pg', stop}. */
static bool handle_own(pg_scope *s, cn_proc *self, const cn_term *msg) {
  const cn_term *e = msg->v.tuple.e;
  uint32_t ar = msg->v.tuple.arity;
  if (ar < 2 || !cn_is_atom(&e[0], "$cn_pg")) return false;
  if (ar == 3 && cn_is_atom(&e[1], "watch") && e[2].type == CN_PID) {
    pg_local *l = local_find(s, e[2].v.pid);
    if (l && !l->monitored) l->monitored = !cn_monitor(self, &e[2], &l->mref);
  } else if (ar == 3 && cn_is_atom(&e[1], "watch_mon") && e[2].type == CN_REF) {
    for (pg_mon *m = s->mons; m; m = m->next)
      if (!m->has_down && ref_eq(s, m->ref, e[2].v.ref)) {
        cn_term t = cn_tv_pid(m->pid);
        m->has_down = !cn_monitor(self, &t, &m->down);
      }
  } else if (ar == 3 && cn_is_atom(&e[1], "unwatch") && e[2].type == CN_REF) {
    cn_demonitor(self, e[2].v.ref);
  } else if (ar == 2 && cn_is_atom(&e[1], "stop")) {
    cn_term r = cn_tv_atom(cn_intern(s->n, "shutdown"));
    cn_proc_exit(self, &r);
  }
  return true;
}

static void scope_info(cn_proc *self, const cn_term *msg, void *state) {
  pg_scope *s = state;
  pg_msg m;
  if (msg->type == CN_TUPLE && handle_own(s, self, msg)) return;
  if (pg_msg_decode(msg, &m)) {
    cn_log(s->n, CN_LOG_DEBUG, "pg scope %s: unexpected message ignored", s->name->name);
    return;
  }
  switch (m.kind) {
  case PGM_DISCOVER: handle_discover(s, self, m.peer); break;
  case PGM_JOIN: handle_join(s, &m); break;
  case PGM_LEAVE: handle_leave(s, &m); break;
  case PGM_DOWN: handle_down(s, &m); break;
  default: break; /* nodeup comes through the node's callback; nodedown waits for the peer's DOWN, as pg */
  }
}

static void scope_cast(cn_proc *self, const cn_term *req, void *state) {
  pg_scope *s = state;
  pg_msg m;
  if (!pg_msg_decode(req, &m) && m.kind == PGM_SYNC) handle_sync(s, self, m.peer, m.groups);
}

static cn_term *scope_map(pg_scope *s);

static pg_mon *mon_add(pg_scope *s, cn_pid pid, const cn_term *group) {
  pg_mon *m = cn_calloc(1, sizeof *m);
  if (!m || (group && !(m->group = cn_term_copy(group)))) {
    cn_free(m);
    return NULL;
  }
  m->pid = pid;
  m->next = s->mons;
  s->mons = m;
  return m;
}

static bool mon_del(pg_scope *s, cn_ref ref, cn_ref *down, bool *has_down) {
  for (pg_mon **x = &s->mons; *x; x = &(*x)->next)
    if (ref_eq(s, (*x)->ref, ref)) {
      pg_mon *m = *x;
      *x = m->next;
      *down = m->down;
      *has_down = m->has_down;
      mon_free(m);
      return true;
    }
  return false;
}

static cn_term *members_of(pg_scope *s, const cn_term *group, bool local) {
  pg_group *g = pg_table_find(&s->groups, group);
  return g ? pg_pids_term(local ? &g->local : &g->all) : cn_mk_nil();
}

/* pg's calls, from processes on this node (C ones, or BEAM code calling gen_server:call({Scope, Node}, ...)). */
static cn_term *scope_call(cn_proc *self, const cn_term *req, const cn_term *from, void *state) {
  pg_scope *s = state;
  const cn_term *caller = cn_tuple_elem(from, 2, 0);
  uint32_t ar = req && req->type == CN_TUPLE ? req->v.tuple.arity : 0;
  const cn_term *op = ar ? &req->v.tuple.e[0] : req, *e = ar ? req->v.tuple.e : NULL;
  pg_pids pids;
  if ((cn_is_atom(op, "join_local") || cn_is_atom(op, "leave_local")) && ar == 3 && !pg_pids_decode(&e[2], &pids)) {
    bool single = e[2].type == CN_PID;
    int rc = !pids.n                      ? 0
             : op->v.atom->name[0] == 'j' ? join_local(s, &e[1], &pids, single)
                                          : leave_local(s, &e[1], &pids, single);
    pg_pids_free(&pids);
    if (rc == CN_ENOTFOUND) return A(s, "not_joined");
    return rc ? cn_mk_tuple(2, A(s, "error"), A(s, cn_err_reason(rc))) : A(s, "ok");
  }
  bool scope_mon = !ar && cn_is_atom(req, "monitor"), group_mon = ar == 2 && cn_is_atom(op, "monitor");
  if ((scope_mon || group_mon) && caller && caller->type == CN_PID) {
    const cn_term *group = group_mon ? &e[1] : NULL;
    pg_mon *m = mon_add(s, caller->v.pid, group);
    if (!m) return NULL;
    if (!cn_monitor(self, caller, &m->down)) m->has_down = true;
    m->ref = m->down;
    return cn_mk_tuple(2, cn_mk_ref(m->ref), group ? members_of(s, group, false) : scope_map(s));
  }
  if (ar == 2 && cn_is_atom(op, "demonitor") && e[1].type == CN_REF) {
    cn_ref down;
    bool has;
    if (!mon_del(s, e[1].v.ref, &down, &has)) return A(s, "false");
    if (has) cn_demonitor(self, down);
    return A(s, "ok");
  }
  cn_log(s->n, CN_LOG_DEBUG, "pg scope %s: unknown call ignored", s->name->name);
  return cn_mk_tuple(2, A(s, "error"), A(s, "badarg"));
}

static void scope_unlink(pg_scope *s) {
  pg_node *pn = cn_node_attached(s->n, &pg_key);
  for (pg_scope **x = pn ? &pn->scopes : NULL; x && *x; x = &(*x)->next)
    if (*x == s) {
      *x = s->next;
      return;
    }
}

static void scope_end(cn_proc *self, const cn_term *reason, void *state) {
  (void)self;
  (void)reason;
  pg_scope *s = state;
  scope_unlink(s);
  while (s->local) local_unlink(s, s->local, false);
  while (s->peers) {
    pg_peer *p = s->peers;
    s->peers = p->next;
    pg_table_free(&p->groups);
    cn_free(p);
  }
  while (s->mons) {
    pg_mon *m = s->mons;
    s->mons = m->next;
    mon_free(m);
  }
  pg_table_free(&s->groups);
  cn_free(s);
}

static const cn_gen_server_ops scope_ops = {
    .handle_call = scope_call,
    .handle_cast = scope_cast,
    .handle_info = scope_info,
    .terminate = scope_end,
};

/* ---- Start, node events ------------------------------------------------------------------------------------------ */

static void send_discover(pg_scope *s, const cn_atom *node) {
  cn_term *d = cn_mk_tuple(2, A(s, "discover"), cn_mk_pid(s->pid));
  if (d) cn_send_name(s->n, NULL, s->name->name, node, d);
  cn_term_free(d);
}

/* nodeup: discover whether the new visible node runs the scope (pg's handle_info({nodeup, Node}, ...)). */
static void on_nodes(cn_node *n, const cn_atom *node, bool up, const char *reason, void *ctx) {
  (void)reason;
  pg_node *pn = ctx;
  if (!up || !cn_node_is_up(n, node, CN_NODES_VISIBLE)) return;
  for (pg_scope *s = pn->scopes; s; s = s->next) send_discover(s, node);
}

static void node_release(void *data) { cn_free(data); }

static pg_node *node_slot(cn_node *n) {
  pg_node *pn = cn_node_attached(n, &pg_key);
  if (pn) return pn;
  if (!(pn = cn_calloc(1, sizeof *pn))) return NULL;
  if (cn_node_attach(n, &pg_key, pn, node_release)) {
    cn_free(pn);
    return NULL;
  }
  if (cn_node_monitor_nodes(n, on_nodes, pn)) return NULL; /* the slot stays; a later start tries again */
  return pn;
}

int cn_pg_start(cn_node *n, const char *scope) {
  if (!n || !scope || !scope[0]) return CN_EINVAL;
  const cn_atom *name = cn_intern(n, scope);
  if (!name) return CN_EINVAL;
  if (scope_find(n, scope)) return CN_EEXIST;
  pg_node *pn = node_slot(n);
  if (!pn) return CN_ENOMEM;
  pg_scope *s = cn_calloc(1, sizeof *s);
  if (!s) return CN_ENOMEM;
  s->n = n;
  s->name = name;
  int rc = cn_gen_server_start(n, scope, &scope_ops, s, &s->pid);
  if (rc) {
    cn_free(s);
    return rc;
  }
  s->next = pn->scopes;
  pn->scopes = s;
  const cn_atom *nodes[256];
  size_t k = cn_nodes(n, CN_NODES_VISIBLE, nodes, 256);
  const cn_atom **all = k > 256 ? cn_malloc(k * sizeof *all) : nodes;
  if (all) k = cn_nodes(n, CN_NODES_VISIBLE, all, k > 256 ? k : 256);
  for (size_t i = 0; all && i < k; i++) send_discover(s, all[i]);
  if (all != nodes) cn_free(all);
  return 0;
}

/* ---- C API ----------------------------------------------------------------------------------------------------------- */

bool cn_pg_running(cn_node *n, const char *scope) { return scope_find(n, scope) != NULL; }

static int leave_all(pg_scope *s) {
  int k = 0;
  while (s->local) {
    k += (int)s->local->n;
    member_gone(s, s->local);
    local_unlink(s, s->local, true);
  }
  return k;
}

int cn_pg_leave_all(cn_node *n, const char *scope) {
  if (scope) {
    pg_scope *s = scope_find(n, scope);
    return s ? leave_all(s) : 0;
  }
  pg_node *pn = n ? cn_node_attached(n, &pg_key) : NULL;
  int k = 0;
  for (pg_scope *s = pn ? pn->scopes : NULL; s; s = s->next) k += leave_all(s);
  return k;
}

int cn_pg_stop(cn_node *n, const char *scope) {
  pg_scope *s = scope_find(n, scope);
  if (!s) return CN_ENOTFOUND;
  leave_all(s);
  scope_unlink(s);
  to_self(s, cn_mk_tuple(2, A(s, "$cn_pg"), A(s, "stop")));
  return 0;
}

static int one_pid(cn_node *n, const char *scope, const cn_term *group, cn_pid pid, bool join) {
  pg_scope *s = scope_find(n, scope);
  if (!s) return CN_ENOTFOUND;
  if (!group) return CN_EINVAL;
  pg_pids one = {&pid, 1, 1};
  return join ? join_local(s, group, &one, true) : leave_local(s, group, &one, true);
}

int cn_pg_join(cn_node *n, const char *scope, const cn_term *group, cn_pid pid) {
  return one_pid(n, scope, group, pid, true);
}

int cn_pg_leave(cn_node *n, const char *scope, const cn_term *group, cn_pid pid) {
  return one_pid(n, scope, group, pid, false);
}

int cn_pg_members(cn_node *n, const char *scope, const cn_term *group, bool local, cn_pid **out, size_t *count) {
  pg_scope *s = scope_find(n, scope);
  if (!out || !count || !group) return CN_EINVAL;
  *out = NULL;
  *count = 0;
  if (!s) return CN_ENOTFOUND;
  pg_group *g = pg_table_find(&s->groups, group);
  const pg_pids *l = g ? (local ? &g->local : &g->all) : NULL;
  if (!l || !l->n) return 0;
  if (!(*out = cn_malloc(l->n * sizeof **out))) return CN_ENOMEM;
  memcpy(*out, l->p, l->n * sizeof **out);
  *count = l->n;
  return 0;
}

cn_term *cn_pg_members_term(cn_node *n, const char *scope, const cn_term *group, bool local) {
  pg_scope *s = scope_find(n, scope);
  return s && group ? members_of(s, group, local) : NULL;
}

typedef struct {
  cn_term **e;
  size_t n;
  bool local, map;
} pg_collect;
static void collect(pg_group *g, void *ctx) {
  pg_collect *c = ctx;
  if (c->local && !g->local.n) return;
  c->e[c->n++] = cn_term_copy(g->name);
  if (c->map) c->e[c->n++] = pg_pids_term(&g->all);
}

static cn_term *groups_term(pg_scope *s, bool local, bool map) {
  pg_collect c = {cn_malloc((s->groups.count ? s->groups.count : 1) * 2 * sizeof(cn_term *)), 0, local, map};
  if (!c.e) return NULL;
  pg_table_each(&s->groups, collect, &c);
  cn_term *t = map ? cn_mk_map(c.n / 2, c.e) : cn_mk_listv(c.n, c.e, NULL);
  cn_free(c.e);
  return t;
}

static cn_term *scope_map(pg_scope *s) { return groups_term(s, false, true); }

cn_term *cn_pg_which_groups(cn_node *n, const char *scope, bool local) {
  pg_scope *s = scope_find(n, scope);
  return s ? groups_term(s, local, false) : NULL;
}

int cn_pg_monitor(cn_proc *self, const char *scope, const cn_term *group, cn_ref *ref, cn_term **now) {
  if (!self || !ref) return CN_EINVAL;
  cn_node *n = cn_proc_node(self);
  pg_scope *s = scope_find(n, scope);
  if (!s) return CN_ENOTFOUND;
  cn_term *snap = NULL;
  if (now && !(snap = group ? members_of(s, group, false) : scope_map(s))) return CN_ENOMEM;
  pg_mon *m = mon_add(s, cn_self(self), group);
  if (!m) {
    cn_term_free(snap);
    return CN_ENOMEM;
  }
  m->ref = *ref = cn_make_ref(n);
  to_self(s, cn_mk_tuple(3, A(s, "$cn_pg"), A(s, "watch_mon"), cn_mk_ref(m->ref)));
  if (now) *now = snap;
  return 0;
}

int cn_pg_demonitor(cn_node *n, const char *scope, cn_ref ref) {
  pg_scope *s = scope_find(n, scope);
  cn_ref down;
  bool has;
  if (!s || !mon_del(s, ref, &down, &has)) return CN_ENOTFOUND;
  if (has) to_self(s, cn_mk_tuple(3, A(s, "$cn_pg"), A(s, "unwatch"), cn_mk_ref(down)));
  return 0;
}
