/* supervisor.c: a Horde.DynamicSupervisor member in C (spec horde-wire.md §5, horde-supervisor.md "C node side"):
 * the process N playing DynamicSupervisorImpl's part (its messages, start_child, terminate_child and the other
 * requests, proxy_operation, gathered which_children/count_children), 'N.ProcessesSupervisor' and the public API.
 * The CRDT 'N.Crdt' is crdt.c; the mirror and placement, the children, and shutdown/recovery are the sup_*.c parts. */
#include <stdio.h>
#include <string.h>

#include "sup_int.h"

#define TICK_MS 250 /* own-status check and orphan scan */
#define TTL_INF (-1)

void sup_logt(cn_horde_sup *s, cn_log_level level, const char *what, const cn_term *t) {
  char *txt = t ? cn_term_to_string(t) : NULL;
  cn_log(s->n, level, "%s: %s %.300s", s->name, what, txt ? txt : "");
  cn_free(txt);
}

/* Wakes N up to act on what was asked of it outside its handler (want_stop, sd.on, links). Requests go through
 * these fields rather than messages, so that no peer can make N stop or link by sending it something. */
void sup_wake(cn_horde_sup *s) {
  cn_term *m = s->alive ? cn_mk_atomc(s->n, "$hc_wake") : NULL;
  if (m) cn_send(s->n, NULL, s->pid, m);
  cn_term_free(m);
}

void sup_send_later(cn_horde_sup *s, unsigned ms, cn_term *m, uint64_t *timer) {
  if (m && s->alive) cn_send_after(s->n, ms, s->pid, m, timer);
  cn_term_free(m);
}

/* ---- Requests to N (direct calls and proxy_operation) ------------------------------------------------------------ */

static cn_term *ttl_expired(cn_horde_sup *s, const cn_term *req) {
  char txt[CN_ATOM_MAX_BYTES + 80]; /* the tag is an atom: the text is never cut */
  const cn_term *tag = req->type == CN_TUPLE && req->v.tuple.arity ? &req->v.tuple.e[0] : req;
  snprintf(txt, sizeof txt, "a proxied %s message was discard because its TTL expired",
           tag->type == CN_ATOM ? tag->v.atom->name : "?");
  return cn_mk_tuple(3, atom(s, "error"), atom(s, "proxy_operation_ttl_expired"), bin(txt));
}

/* Horde's proxy_to_node: ttl is what is left for this hop (TTL_INF: infinity). NULL when sent on. */
static cn_term *proxy(cn_horde_sup *s, const cn_term *owner, const cn_term *req, const cn_term *from, int64_t ttl) {
  if (ttl == 0) return ttl_expired(s, req);
  member *m = sup_mem_find(s, owner);
  if (!m || sup_mem_status(m) != CN_HORDE_ALIVE)
    return err1(s, cn_mk_tuple(2, atom(s, "node_dead_or_shutting_down"),
                               bin("the node responsible for this process is shutting down or dead, try again soon")));
  cn_term *msg = ttl == TTL_INF ? cn_mk_tuple(3, atom(s, "proxy_operation"), cn_term_copy(req), cn_term_copy(from))
                                : cn_mk_tuple(4, atom(s, "proxy_operation"), cn_term_copy(req), cn_term_copy(from),
                                              cn_mk_int(ttl));
  int rc = msg ? cn_send_to(s->n, s->self, owner, msg) : CN_ENOMEM;
  cn_term_free(msg);
  return rc ? err1(s, atom(s, cn_err_reason(rc))) : NULL;
}

/* {start_child, Spec} (§5.3): never starts a child without cnode => true here. */
static cn_term *start_child(cn_horde_sup *s, const cn_term *req, const cn_term *from, int64_t ttl) {
  const cn_term *spec = &req->v.tuple.e[1], *owner;
  if (s->shutting_down) return err1(s, cn_mk_tuple(2, atom(s, "shutting_down"), bin("this node is shutting down.")));
  int rc = sup_choose(s, spec, &owner);
  if (rc == CN_ENOTFOUND) return err1(s, atom(s, "no_alive_nodes"));
  if (rc == CN_EINVAL) return err1(s, sup_reason(s, "invalid_child_spec", spec));
  if (rc) return err1(s, atom(s, cn_err_reason(rc)));
  if (!sup_is_self(s, owner) && ttl != 0) return proxy(s, owner, req, from, ttl);
  if (!cn_horde_c_child(spec)) return ttl == 0 ? ttl_expired(s, req) : err1(s, atom(s, "not_a_c_child"));
  return sup_start_new(s, spec);
}

typedef struct pid_owner {
  cn_pid pid;
  cn_term *owner;
} pid_owner;

static bool find_owner(cn_horde_sup *s, const cn_term *key, const cn_term *id, const cn_term *v, void *ctx) {
  (void)s, (void)key, (void)id;
  pid_owner *po = ctx;
  if (hc_tuple_n(v, 3) && hc_is_pid(&v->v.tuple.e[2]) && cn_pid_eq(v->v.tuple.e[2].v.pid, po->pid))
    po->owner = cn_term_copy(&v->v.tuple.e[0]);
  return !po->owner;
}

/* The owner recorded for pid in the CRDT (a new term), or NULL. */
static cn_term *owner_of(cn_horde_sup *s, cn_pid pid) {
  pid_owner po = {pid, NULL};
  sup_each_process(s, find_owner, &po);
  return po.owner;
}

/* {terminate_child, Pid}: the owner stops it and removes the key; another member's child is proxied to it. */
static cn_term *terminate_child(cn_horde_sup *s, const cn_term *req, const cn_term *from, int64_t ttl) {
  const cn_term *p = &req->v.tuple.e[1];
  child *c = hc_is_pid(p) ? sup_child_by_pid(s, p->v.pid) : NULL;
  if (c && c->state == C_RUNNING) {
    sup_delete_keyed(s, "process", c->id);
    sup_stop_child(s, c, C_TERMINATING);
    return atom(s, "ok");
  }
  cn_term *owner = hc_is_pid(p) && !c ? owner_of(s, p->v.pid) : NULL, *reply = NULL;
  if (owner && !sup_is_self(s, owner) && hc_is_member(owner)) reply = proxy(s, owner, req, from, ttl);
  else reply = err1(s, atom(s, "not_found"));
  cn_term_free(owner);
  return reply;
}

static cn_term *members_list(cn_horde_sup *s) {
  cn_term **v = cn_calloc(s->nmem + 1, sizeof *v);
  if (!v) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < s->nmem; i++)
    if (s->mem[i].is_member) v[k++] = s->mem[i].name;
  cn_term *l = hc_list_copy(v, k);
  cn_free(v);
  return l;
}

static cn_term *set_members(cn_horde_sup *s, const cn_term *list) {
  if (!hc_proper_list(list)) return err1(s, atom(s, "badarg"));
  size_t k = list->type == CN_LIST ? list->v.list.len : 0;
  const cn_term **v = cn_calloc(k + 1, sizeof *v);
  if (!v) return err1(s, atom(s, "enomem"));
  for (size_t i = 0; i < k; i++) v[i] = &list->v.list.e[i];
  int rc = hc_set_members(s->n, s->crdt, s->self_member, v, k, true);
  cn_free(v);
  return rc ? err1(s, atom(s, cn_err_reason(rc))) : atom(s, "ok");
}

static bool count_one(cn_horde_sup *s, const cn_term *key, const cn_term *id, const cn_term *v, void *ctx) {
  (void)s, (void)key, (void)id, (void)v;
  ++*(int64_t *)ctx;
  return true;
}

static cn_term *telemetry(cn_horde_sup *s) {
  int64_t all = 0;
  sup_each_process(s, count_one, &all);
  cn_term *kv[] = {atom(s, "global_supervised_process_count"), cn_mk_int(all),
                   atom(s, "local_supervised_process_count"), cn_mk_int((int64_t)s->nch)};
  return cn_mk_map(2, kv);
}

/* which_children or count_children on N: Horde asks every member's 'Name.ProcessesSupervisor' and answers with the
 * whole (ids as undefined; counts summed into a map); a member that fails to answer counts as none. */
typedef struct gather {
  cn_horde_sup *s;
  cn_term *from;
  bool count;
  int pending;
  cn_term **items; /* which_children: the entries so far */
  size_t n;
  int64_t sums[4]; /* count_children: specs, active, supervisors, workers */
} gather;

static const char *const COUNT_KEYS[4] = {"specs", "active", "supervisors", "workers"};

static void gather_add(gather *g, const cn_term *reply) {
  for (uint32_t i = 0; hc_proper_list(reply) && reply->type == CN_LIST && i < reply->v.list.len; i++) {
    const cn_term *e = &reply->v.list.e[i];
    for (int k = 0; g->count && k < 4; k++)
      if (cn_is_atom(cn_tuple_elem(e, 2, 0), COUNT_KEYS[k]) && e->v.tuple.e[1].type == CN_INT)
        g->sums[k] += e->v.tuple.e[1].v.i;
    cn_term **v = !g->count && hc_tuple_n(e, 4) ? cn_realloc(g->items, (g->n + 1) * sizeof *v) : NULL;
    if (!v) continue;
    g->items = v;
    v[g->n] = cn_mk_tuple(4, atom(g->s, "undefined"), cn_term_copy(&e->v.tuple.e[1]), cn_term_copy(&e->v.tuple.e[2]),
                          cn_term_copy(&e->v.tuple.e[3]));
    if (v[g->n]) g->n++;
  }
}

static cn_term *gather_reply(gather *g) {
  if (!g->count) {
    cn_term *l = cn_mk_listv(g->n, g->items, NULL);
    g->n = 0;
    return l;
  }
  static const int in_key_order[4] = {1, 0, 2, 3}; /* active, specs, supervisors, workers */
  cn_term *kv[8];
  for (int i = 0; i < 4; i++) {
    kv[2 * i] = atom(g->s, COUNT_KEYS[in_key_order[i]]);
    kv[2 * i + 1] = cn_mk_int(g->sums[in_key_order[i]]);
  }
  return cn_mk_map(4, kv);
}

static void gather_free(gather *g) {
  for (size_t i = 0; i < g->n; i++) cn_term_free(g->items[i]);
  cn_free(g->items);
  cn_term_free(g->from);
  cn_free(g);
}

static void gather_done(cn_proc *self, int status, const cn_term *reply, void *ctx) {
  gather *g = ctx;
  if (status == 0 && reply) gather_add(g, reply); /* gather_start's own final call brings none */
  if (--g->pending > 0) return;
  if (status != CN_ECLOSED) {
    cn_term *r = gather_reply(g);
    if (r) cn_gen_reply(self, g->from, r);
    cn_term_free(r);
  }
  gather_free(g);
}

/* Asks every member; NULL (the reply comes when all answered) or an error reply. */
static cn_term *gather_start(cn_horde_sup *s, const cn_term *from, bool count) {
  gather *g = s->self ? cn_calloc(1, sizeof *g) : NULL;
  if (!g || !(g->from = cn_term_copy(from))) {
    cn_free(g);
    return err1(s, atom(s, s->self ? "enomem" : "badarg"));
  }
  g->s = s;
  g->count = count;
  g->pending = 1; /* held while asking, so no answer can finish it early */
  cn_term *req = atom(s, count ? "count_children" : "which_children");
  for (size_t i = 0; req && i < s->nmem; i++) {
    const cn_term *m = s->mem[i].name;
    if (!s->mem[i].is_member) continue;
    cn_term *dest = hc_member_proc(s->n, m, ".ProcessesSupervisor");
    if (dest && !cn_call(s->self, dest, req, 5000, gather_done, g)) g->pending++;
    cn_term_free(dest);
  }
  cn_term_free(req);
  gather_done(s->self, 0, NULL, g);
  return NULL;
}

/* One request as N handles it for from; NULL when the answer comes from elsewhere (proxied, gathered). */
static cn_term *request(cn_horde_sup *s, const cn_term *req, const cn_term *from, int64_t ttl) {
  const cn_term *op = req->type == CN_TUPLE && req->v.tuple.arity == 2 ? &req->v.tuple.e[0] : NULL;
  if (op && cn_is_atom(op, "start_child")) return start_child(s, req, from, ttl);
  if (op && cn_is_atom(op, "terminate_child")) return terminate_child(s, req, from, ttl);
  if (op && cn_is_atom(op, "set_members")) return set_members(s, &req->v.tuple.e[1]);
  if (cn_is_atom(req, "members")) return members_list(s);
  if (cn_is_atom(req, "which_children") || cn_is_atom(req, "count_children"))
    return gather_start(s, from, cn_is_atom(req, "count_children"));
  if (cn_is_atom(req, "wait_for_quorum")) return atom(s, "ok");
  if (cn_is_atom(req, "get_telemetry")) return telemetry(s);
  if (cn_is_atom(req, "horde_shutting_down")) {
    s->shutting_down = true;
    sup_own_status(s, false);
    return atom(s, "ok");
  }
  return err1(s, atom(s, "unknown_call"));
}

int cn_horde_start_child(cn_horde_sup *s, const cn_term *spec, const cn_term *from, cn_term **reply) {
  *reply = NULL;
  if (!s->alive) return CN_ESTATE;
  cn_term *req = cn_mk_tuple(2, atom(s, "start_child"), cn_term_copy(spec));
  if (!req) return CN_ENOMEM;
  int64_t ttl = s->o.proxy_message_ttl ? (int64_t)s->o.proxy_message_ttl : TTL_INF;
  *reply = start_child(s, req, from, ttl);
  cn_term_free(req);
  return 0;
}

/* {proxy_operation, Req, From[, Ttl]}: handled as if From had called, with the TTL one hop shorter. */
static void on_proxy(cn_horde_sup *s, const cn_term *msg) {
  const cn_term *req = &msg->v.tuple.e[1], *from = &msg->v.tuple.e[2];
  const cn_term *t = msg->v.tuple.arity == 4 ? &msg->v.tuple.e[3] : NULL;
  if (!hc_tuple_n(from, 2) || !hc_is_pid(&from->v.tuple.e[0])) {
    sup_logt(s, CN_LOG_WARN, "ignored a proxy_operation without a {Pid, Tag} caller:", msg);
    return;
  }
  int64_t ttl = !t || cn_is_atom(t, "infinity") ? TTL_INF : t->type == CN_INT && t->v.i > 0 ? t->v.i - 1 : 0;
  cn_term *reply = request(s, req, from, ttl);
  if (reply) cn_gen_reply(s->self, from, reply);
  cn_term_free(reply);
}

/* ---- The processes ----------------------------------------------------------------------------------------------- */

static void unref(cn_horde_sup *s) {
  if (--s->refs > 0) return;
  if (s->o.on_stop) s->o.on_stop(s, s->o.ctx);
  while (s->nch) sup_child_drop(s, s->ch[0]);
  cn_free(s->ch);
  for (size_t i = 0; i < s->nmem; i++) cn_term_free(s->mem[i].name);
  cn_free(s->mem);
  sup_rings_dirty(s);
  for (size_t i = 0; i < s->ncand; i++) cn_term_free(s->cand[i].id);
  cn_free(s->cand);
  for (size_t i = 0; i < s->sd.nkeys; i++) cn_term_free(s->sd.keys[i]);
  cn_free(s->sd.keys);
  cn_free(s->ent);
  cn_free(s->links);
  cn_term_free(s->self_member);
  cn_free(s);
}

/* 'DOWN' of a member's N: that member is written dead (Horde's mark_dead), then this one's own status checked. */
static void on_down(cn_horde_sup *s, const cn_term *ref) {
  for (size_t i = 0; i < s->nmem; i++) {
    member *m = &s->mem[i];
    if (!m->monitored || ref->type != CN_REF || !cn_ref_eq(&ref->v.ref, &m->mref)) continue;
    m->monitored = false;
    sup_put_keyed(s, "member_node_info", m->name, sup_info_value(s, m->name, "dead"));
    sup_own_status(s, false);
    return;
  }
}

static void on_exit_signal(cn_horde_sup *s, cn_pid from, const cn_term *reason) {
  if (cn_pid_eq(from, s->crdt_pid) || cn_pid_eq(from, s->psup_pid)) {
    cn_proc_exit(s->self, reason); /* one_for_all */
    return;
  }
  child *c = sup_child_by_pid(s, from);
  if (c && c->state != C_RESTARTING) sup_child_exit(s, c, reason);
}

/* What the API asked for outside N's handler: links, a graceful shutdown, a stop. */
static void on_wake(cn_horde_sup *s) {
  for (size_t i = 0; i < s->nlinks; i++) cn_link(s->self, s->links[i]);
  s->nlinks = 0;
  if (s->sd.on && !s->sd.begun) sup_begin_shutdown(s);
  if (s->want_stop) {
    cn_term *why = atom(s, "shutdown");
    cn_proc_exit(s->self, why);
    cn_term_free(why);
  }
}

/* N's own messages: $hc_wake, and from its timers $hc_tick, $hc_poll, {$hc_kill, Pid}, {$hc_restart, Id}. Anyone
 * may send these; each only makes N do early what it would do anyway. */
static bool own_message(cn_horde_sup *s, const cn_term *msg) {
  const cn_term *tag = hc_tuple_n(msg, 2) ? &msg->v.tuple.e[0] : msg,
                *arg = hc_tuple_n(msg, 2) ? &msg->v.tuple.e[1] : NULL;
  child *c = hc_is_pid(arg) ? sup_child_by_pid(s, arg->v.pid) : arg ? sup_child_by_id(s, arg) : NULL;
  if (cn_is_atom(msg, "$hc_wake")) {
    on_wake(s);
  } else if (cn_is_atom(msg, "$hc_tick")) {
    sup_own_status(s, true);
    if (s->dirty || s->ncand) sup_scan_orphans(s);
    sup_send_later(s, TICK_MS, atom(s, "$hc_tick"), &s->tick);
  } else if (cn_is_atom(msg, "$hc_poll")) {
    sup_poll_peers(s);
  } else if (cn_is_atom(tag, "$hc_kill") && c && (c->state == C_TERMINATING || c->state == C_RELINQUISHING)) {
    c->kill_timer = 0;
    cn_term *why = atom(s, "kill");
    cn_exit(s->n, s->self, c->pid, why);
    cn_term_free(why);
  } else if (cn_is_atom(tag, "$hc_restart") && c && c->state == C_RESTARTING) {
    sup_restart(s, c);
  } else {
    return cn_is_atom(tag, "$hc_kill") || cn_is_atom(tag, "$hc_restart");
  }
  return true;
}

/* N is a gen_server; s->self is set while one of its callbacks runs (the sup_*.c parts act as N only then). */
static cn_term *handle_call(cn_proc *self, const cn_term *req, const cn_term *from, void *state) {
  cn_horde_sup *s = state;
  s->self = self;
  cn_term *reply = request(s, req, from, s->o.proxy_message_ttl ? (int64_t)s->o.proxy_message_ttl : TTL_INF);
  s->self = NULL;
  return reply;
}

static void handle_cast(cn_proc *self, const cn_term *req, void *state) {
  (void)self;
  sup_logt(state, CN_LOG_DEBUG, "ignored cast", req);
}

static void handle_info(cn_proc *self, const cn_term *msg, void *state) {
  cn_horde_sup *s = state;
  uint32_t ar = msg->type == CN_TUPLE ? msg->v.tuple.arity : 0;
  const cn_term *tag = ar ? &msg->v.tuple.e[0] : NULL;
  s->self = self;
  if ((ar == 3 || ar == 4) && cn_is_atom(tag, "proxy_operation")) {
    on_proxy(s, msg);
  } else if (ar == 2 && cn_is_atom(tag, "crdt_update")) {
    sup_on_update(s, &msg->v.tuple.e[1]);
  } else if (ar == 5 && cn_is_atom(tag, "DOWN")) {
    on_down(s, &msg->v.tuple.e[1]);
  } else if (ar == 3 && cn_is_atom(tag, "EXIT") && hc_is_pid(&msg->v.tuple.e[1])) {
    on_exit_signal(s, msg->v.tuple.e[1].v.pid, &msg->v.tuple.e[2]);
  } else if (!own_message(s, msg)) {
    sup_logt(s, CN_LOG_DEBUG, "ignored message", msg);
  }
  s->self = NULL;
}

static void on_nodes(cn_node *n, const cn_atom *node, bool up, const char *reason, void *ctx) {
  (void)reason;
  cn_horde_sup *s = ctx;
  s->dirty = true; /* orphans depend on the connected nodes */
  if (!s->alive || !s->crdt || s->o.nmembers) return;
  int rc = hc_auto_members(n, s->crdt, s->self_member, true, up ? NULL : node);
  if (rc) cn_log(n, CN_LOG_WARN, "%s: set_members failed: %s", s->name, cn_strerror(rc));
}

/* N ends (one_for_all): its children get shutdown, 'N.ProcessesSupervisor' and the CRDT end too. */
static void terminate(cn_proc *self, const cn_term *reason, void *state) {
  (void)reason;
  cn_horde_sup *s = state;
  s->self = self;
  s->alive = false;
  if (s->monitoring) cn_node_demonitor_nodes(s->n, on_nodes, s);
  s->monitoring = false;
  if (s->tick) cn_cancel_timer(s->n, s->tick);
  cn_term *why = atom(s, "shutdown"), *kill = atom(s, "kill");
  for (size_t i = 0; why && i < s->nch; i++) cn_exit(s->n, self, s->ch[i]->pid, why);
  if (kill && s->psup_pid.node) cn_exit(s->n, self, s->psup_pid, kill);
  cn_term_free(why);
  cn_term_free(kill);
  if (s->crdt) cn_crdt_stop(s->crdt);
  if (s->sd.done) sup_finish_shutdown(s, "the supervisor ended");
  s->self = NULL;
  unref(s);
}

static const cn_gen_server_ops n_ops = {.handle_call = handle_call,
                                        .handle_cast = handle_cast,
                                        .handle_info = handle_info,
                                        .terminate = terminate,
                                        .trap_exit = true};

/* 'N.ProcessesSupervisor': which_children and count_children from the local children; casts and other messages
 * are ignored. */
static cn_term *psup_call(cn_proc *self, const cn_term *req, const cn_term *from, void *state) {
  (void)self, (void)from;
  cn_horde_sup *s = state;
  return cn_is_atom(req, "which_children")   ? cn_horde_which_children(s)
         : cn_is_atom(req, "count_children") ? cn_horde_count_children(s)
                                             : err1(s, atom(s, "unknown_call"));
}

static void psup_terminate(cn_proc *self, const cn_term *reason, void *state) {
  (void)self, (void)reason;
  cn_horde_sup *s = state;
  s->psup_pid = (cn_pid){0};
  unref(s);
}

static const cn_gen_server_ops psup_ops = {.handle_call = psup_call, .terminate = psup_terminate};

static void crdt_stopped(cn_crdt *c, void *ctx) {
  (void)c;
  cn_horde_sup *s = ctx;
  s->crdt = NULL; /* N, linked to the CRDT, gets its 'EXIT' and ends too */
  unref(s);
}

/* Starts a process of the supervisor, registered as name; each that runs holds a reference. */
static int start_named(cn_horde_sup *s, const char *name, const cn_gen_server_ops *ops, cn_pid *pid) {
  int rc = cn_gen_server_start(s->n, name, ops, s, pid);
  if (!rc) s->refs++;
  return rc;
}

static void defaults(cn_horde_sup_opts *o) {
  if (!o->orphan_ms) o->orphan_ms = 1000;
  if (!o->max_restarts) o->max_restarts = 3;
  if (!o->max_seconds) o->max_seconds = 5;
  if (!o->shutdown_wait_ms) o->shutdown_wait_ms = 2000;
}

static int join(cn_horde_sup *s) {
  member *me = sup_mem_get(s, s->self_member);
  if (me) me->is_member = true; /* as Horde's set_members sets its own state at once */
  sup_own_status(s, false);
  int rc = cn_node_monitor_nodes(s->n, on_nodes, s);
  s->monitoring = rc == 0;
  if (rc) return rc;
  if (s->o.nmembers) return hc_named_members(s->n, s->crdt, s->self_member, s->o.members, s->o.nmembers, true);
  return hc_auto_members(s->n, s->crdt, s->self_member, true, NULL);
}

int cn_horde_supervisor_start(cn_node *n, const char *name, const cn_horde_sup_opts *opts, cn_horde_sup **out) {
  const char *me = cn_node_name(n)->name;
  if (!name || strlen(name) > 200) return CN_EINVAL;
  if (strncmp(me, "cnode", 5)) {
    cn_log(n, CN_LOG_ERROR,
           "%s: not started: this node's name %s does not start with \"cnode\", so Horde members "
           "would never place C children here",
           name, me);
    return CN_EINVAL;
  }
  cn_horde_sup *s = cn_calloc(1, sizeof *s);
  if (!s) return CN_ENOMEM;
  s->n = n;
  snprintf(s->name, sizeof s->name, "%s", name);
  if (opts) s->o = *opts;
  defaults(&s->o);
  s->refs = 1; /* until the CRDT runs */
  s->self_member = cn_mk_tuple(2, cn_mk_atomc(n, name), cn_mk_atom(cn_node_name(n)));
  cn_crdt_opts co = s->o.crdt;
  co.on_diffs = NULL;
  co.on_stop = crdt_stopped;
  co.ctx = s;
  int rc = s->self_member ? cn_crdt_start(n, name, &co, &s->crdt) : CN_ENOMEM;
  if (rc) {
    unref(s);
    return rc;
  }
  s->crdt_pid = cn_crdt_pid(s->crdt);
  char pname[300];
  snprintf(pname, sizeof pname, "%s.ProcessesSupervisor", name);
  s->alive = true;
  if ((rc = start_named(s, name, &n_ops, &s->pid))) { /* N never ran: crdt_stopped frees s */
    s->alive = false;
    cn_crdt_stop(s->crdt);
    return rc;
  }
  if ((rc = start_named(s, pname, &psup_ops, &s->psup_pid))) {
    cn_horde_supervisor_stop(s); /* N's terminate stops the CRDT */
    return rc;
  }
  cn_crdt_subscribe(s->crdt, s->pid);
  sup_link_to(s, s->crdt_pid); /* one_for_all: N ends with either */
  sup_link_to(s, s->psup_pid);
  if ((rc = join(s))) cn_log(n, CN_LOG_WARN, "%s: membership not set: %s", name, cn_strerror(rc));
  s->o.members = NULL; /* borrowed for the call only; nmembers > 0 still says "explicit" */
  sup_send_later(s, TICK_MS, atom(s, "$hc_tick"), &s->tick);
  if (out) *out = s;
  return 0;
}

int cn_horde_entry(cn_horde_sup *s, const char *module, cn_horde_start_fn fn, void *ctx) {
  const cn_atom *a = module && fn ? cn_intern(s->n, module) : NULL;
  if (!a) return CN_EINVAL;
  for (size_t i = 0; i < s->nent; i++)
    if (s->ent[i].mod == a) return CN_EEXIST;
  entry *v = cn_realloc(s->ent, (s->nent + 1) * sizeof *v);
  if (!v) return CN_ENOMEM;
  s->ent = v;
  v[s->nent++] = (entry){a, fn, ctx};
  return 0;
}

int cn_horde_supervisor_shutdown(cn_horde_sup *s, cn_horde_done_fn done, void *ctx) {
  if (!s->alive || s->sd.on) return CN_ESTATE;
  s->sd.on = true;
  s->sd.done = done;
  s->sd.ctx = ctx;
  sup_wake(s);
  return 0;
}

void cn_horde_supervisor_stop(cn_horde_sup *s) {
  s->want_stop = true;
  sup_wake(s);
}

cn_pid cn_horde_supervisor_pid(const cn_horde_sup *s) { return s->pid; }
cn_crdt *cn_horde_supervisor_crdt(cn_horde_sup *s) { return s->crdt; }
size_t cn_horde_supervisor_count(const cn_horde_sup *s) { return s->nch; }
