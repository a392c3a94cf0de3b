/* call.c: calls from C processes, as OTP makes them: gen_server calls (a monitor that is also an alias,
 * replies matched by reference), casts, rpc through rex, erpc through a spawn request; timers that run inside a
 * process (cn_proc_after); the gen_server behaviour for C servers; and blocking forms for other threads. */
#include <string.h>

#include "node_int.h"

/* ---- Calls in flight ------------------------------------------------------------------------------------ */

static void timer_closed(uv_handle_t *h) { cn_free(h); }

/* Takes c out of its process's list and frees it; the callback, if any, has run. */
static void pending_free(cn_pending *c) {
  for (cn_pending **x = &c->proc->calls; *x; x = &(*x)->next) {
    if (*x == c) {
      *x = c->next;
      break;
    }
  }
  if (c->timer) uv_close((uv_handle_t *)c->timer, timer_closed);
  cn_term_free(c->res_ref);
  cn_free(c);
}

/* Runs the callback of c (already freed: its fields are passed in). A timer of cn_proc_after gets 0 when it
 * fires (the timeout of a call), CN_ECLOSED when the process ends first. */
static void complete(cn_proc *p, cn_reply_fn cb, cn_after_fn after, void *ctx, int status, const cn_term *result) {
  if (p->dirty) { /* in the process's own context: on the pool, in turn with its messages */
    dirty_defer_cb(p, cb, after, ctx, after && status == CN_ETIMEDOUT ? 0 : status, result);
    return;
  }
  if (after) after(p, status == CN_ETIMEDOUT ? 0 : status, ctx);
  else cb(p, status, result, ctx);
}

/* Ends a call: the alias goes (a late reply is dropped), the monitor goes, then the callback runs. */
static void finish(cn_pending *c, int status, const cn_term *result) {
  cn_proc *p = c->proc;
  if (c->kind != CALL_AFTER) {
    cn_unalias(p, c->ref);
    link_demonitor_quiet(p, &c->ref);
  }
  cn_reply_fn cb = c->cb;
  cn_after_fn after = c->after;
  void *ctx = c->ctx;
  pending_free(c);
  complete(p, cb, after, ctx, status, result);
}

static void on_call_timeout(uv_timer_t *t) {
  cn_pending *c = t->data;
  finish(c, CN_ETIMEDOUT, NULL);
}

static cn_pending *pending_add(cn_proc *p, call_kind kind, cn_ref ref, unsigned timeout_ms, cn_reply_fn cb, void *ctx) {
  cn_pending *c = cn_calloc(1, sizeof *c);
  if (!c) return NULL;
  c->kind = kind;
  c->ref = ref;
  c->cb = cb;
  c->ctx = ctx;
  c->proc = p;
  if (timeout_ms || kind == CALL_AFTER) {
    c->timer = cn_malloc(sizeof *c->timer);
    if (!c->timer) {
      cn_free(c);
      return NULL;
    }
    uv_timer_init(p->node->loop, c->timer);
    c->timer->data = c;
    uv_timer_start(c->timer, on_call_timeout, timeout_ms, 0);
  }
  c->next = p->calls;
  p->calls = c;
  return c;
}

/* The calling process ends: each call still completes once, with CN_ECLOSED, so nothing waits forever. */
void call_drop_all(cn_proc *p) {
  while (p->calls) {
    cn_pending *c = p->calls;
    cn_reply_fn cb = c->cb;
    cn_after_fn after = c->after;
    void *ctx = c->ctx;
    pending_free(c);
    complete(p, cb, after, ctx, CN_ECLOSED, NULL);
  }
}

/* ---- Timers inside a process ------------------------------------------------------------------------------ */

/* A pending entry without alias or monitor: only its timer (or the process's end) completes it. */
int cn_proc_after(cn_proc *self, unsigned ms, cn_after_fn fn, void *ctx, uint64_t *timer) {
  if (!self || !fn) return CN_EINVAL;
  DIRTY_GUARD(self->node, int, cn_proc_after(self, ms, fn, ctx, timer));
  if (self->dead) return CN_ESTATE;
  cn_pending *c = pending_add(self, CALL_AFTER, (cn_ref){0}, ms, NULL, ctx);
  if (!c) return CN_ENOMEM;
  c->after = fn;
  c->id = ++self->node->timer_seq;
  if (timer) *timer = c->id;
  return 0;
}

int cn_proc_cancel_after(cn_proc *self, uint64_t timer) {
  if (self) DIRTY_GUARD(self->node, int, cn_proc_cancel_after(self, timer));
  for (cn_pending *c = self ? self->calls : NULL; c; c = c->next)
    if (c->kind == CALL_AFTER && c->id == timer) {
      pending_free(c);
      return 0;
    }
  return CN_ENOTFOUND;
}

static bool is_ref(const cn_term *t, const cn_ref *r) { return t && t->type == CN_REF && node_ref_eq(&t->v.ref, r); }

/* [alias | Ref] or a bare Ref: the tags a reply may carry. */
static bool tag_matches(const cn_term *tag, const cn_ref *r) {
  if (is_ref(tag, r)) return true;
  return tag->type == CN_LIST && tag->v.list.len == 1 && is_ref(tag->v.list.tail, r) &&
         cn_is_atom(&tag->v.list.e[0], "alias");
}

/* erpc's result in the DOWN reason: {Res, return, V} is the value; the rest becomes what erpc raises. */
static void finish_erpc(cn_pending *c, const cn_term *reason) {
  cn_node *n = c->proc->node;
  const cn_term *e = reason->type == CN_TUPLE ? reason->v.tuple.e : NULL;
  uint32_t ar = reason->type == CN_TUPLE ? reason->v.tuple.arity : 0;
  if (ar >= 3 && cn_term_exact_eq(&e[0], c->res_ref) && e[1].type == CN_ATOM) {
    if (ar == 3 && cn_is_atom(&e[1], "return")) {
      finish(c, 0, &e[2]);
      return;
    }
    cn_term *r = ar == 4 ? cn_mk_tuple(3, cn_term_copy(&e[1]), cn_term_copy(&e[2]), cn_term_copy(&e[3]))
                         : cn_mk_tuple(2, cn_term_copy(&e[1]), cn_term_copy(&e[2]));
    finish(c, CN_EEXIT, r);
    cn_term_free(r);
    return;
  }
  cn_term *r =
      cn_is_atom(reason, "noconnection")
          ? cn_mk_tuple(2, cn_mk_atomc(n, "error"),
                        cn_mk_tuple(2, cn_mk_atomc(n, "erpc"), cn_mk_atomc(n, "noconnection")))
          : cn_mk_tuple(2, cn_mk_atomc(n, "exit"), cn_mk_tuple(2, cn_mk_atomc(n, "signal"), cn_term_copy(reason)));
  finish(c, CN_EEXIT, r);
  cn_term_free(r);
}

bool call_intercept(cn_proc *p, const cn_term *msg) {
  if (msg->type != CN_TUPLE) return false;
  const cn_term *e = msg->v.tuple.e;
  bool down = msg->v.tuple.arity == 5 && cn_is_atom(&e[0], "DOWN") && e[1].type == CN_REF;
  bool reply = msg->v.tuple.arity == 2;
  if (!down && !reply) return false;
  for (cn_pending *c = p->calls; c; c = c->next) {
    if (c->kind == CALL_AFTER) continue;
    if (down && is_ref(&e[1], &c->ref)) {
      if (c->kind == CALL_ERPC) finish_erpc(c, &e[4]);
      else finish(c, CN_EEXIT, &e[4]);
      return true;
    }
    if (reply && c->kind == CALL_GEN && tag_matches(&e[0], &c->ref)) {
      finish(c, 0, &e[1]);
      return true;
    }
  }
  return false;
}

void call_spawn_reply(cn_node *n, const cn_term *to, cn_ref ref, const cn_term *result) {
  cn_proc *p = to->type == CN_PID ? proc_lookup(n, to->v.pid) : NULL;
  if (!p || result->type != CN_ATOM) return; /* success: the DOWN brings the result */
  for (cn_pending *c = p->calls; c; c = c->next) {
    if (c->kind == CALL_ERPC && node_ref_eq(&c->ref, &ref)) {
      cn_term *r =
          cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_tuple(2, cn_mk_atomc(n, "erpc"), cn_term_copy(result)));
      finish(c, CN_EEXIT, r);
      cn_term_free(r);
      return;
    }
  }
}

/* ---- gen_server calls, casts, rpc ------------------------------------------------------------------------ */

int cn_call(cn_proc *self, const cn_term *server, const cn_term *request, unsigned timeout_ms, cn_reply_fn cb,
            void *ctx) {
  cn_node *n = self->node;
  if (!server || !request || !cb) return CN_EINVAL;
  DIRTY_GUARD(n, int, cn_call(self, server, request, timeout_ms, cb, ctx));
  cn_ref ref;
  int rc = cn_alias(self, &ref);
  if (rc) return rc;
  cn_pending *c = pending_add(self, CALL_GEN, ref, timeout_ms, cb, ctx);
  if (!c) {
    cn_unalias(self, ref);
    return CN_ENOMEM;
  }
  /* The monitor shares the alias's reference, as erlang:monitor(process, S, [{alias, demonitor}]) does. A
   * target that does not exist answers with a DOWN noproc, which completes the call. */
  if ((rc = link_monitor(self, server, ref))) {
    cn_unalias(self, ref);
    pending_free(c);
    return rc;
  }
  cn_term alias = tv_atom(cn_intern(n, "alias")), refv = tv_ref(ref);
  cn_term tag = {.type = CN_LIST};
  tag.v.list.len = 1;
  tag.v.list.e = &alias;
  tag.v.list.tail = &refv;
  cn_term from_e[2] = {tv_pid(self->pid), tag};
  cn_term msg_e[3] = {tv_atom(cn_intern(n, "$gen_call")), tv_tuple(from_e, 2), *request};
  cn_term msg = tv_tuple(msg_e, 3);
  rc = cn_send_to(n, self, server, &msg);
  if (rc == CN_ENOTFOUND) return 0; /* the DOWN noproc completes the call */
  if (rc) {                         /* nothing was sent (no memory): undo, so cb never runs, as the contract says */
    cn_unalias(self, ref);
    link_demonitor_quiet(self, &ref);
    pending_free(c);
  }
  return rc;
}

int cn_cast(cn_node *n, cn_proc *from, const cn_term *server, const cn_term *request) {
  if (!server || !request) return CN_EINVAL;
  DIRTY_GUARD(n, int, cn_cast(n, from, server, request));
  cn_term e[2] = {tv_atom(cn_intern(n, "$gen_cast")), *request};
  cn_term msg = tv_tuple(e, 2);
  int rc = cn_send_to(n, from, server, &msg);
  return rc == CN_ENOTFOUND ? 0 : rc; /* a cast never fails, as in OTP */
}

/* rpc:call never raises: a lost node, a dead rex or a timeout become {badrpc, Reason} as OTP returns them. */
typedef struct rpc_ctx {
  cn_reply_fn cb;
  void *ctx;
} rpc_ctx;

static void rpc_done(cn_proc *self, int status, const cn_term *reply, void *arg) {
  rpc_ctx r = *(rpc_ctx *)arg;
  cn_free(arg);
  cn_node *n = self->node;
  if (status == 0 || status == CN_ECLOSED) {
    r.cb(self, status, reply, r.ctx);
    return;
  }
  cn_term *why = status == CN_ETIMEDOUT              ? cn_mk_atomc(n, "timeout")
                 : cn_is_atom(reply, "noconnection") ? cn_mk_atomc(n, "nodedown")
                                                     : cn_mk_tuple(2, cn_mk_atomc(n, "EXIT"), cn_term_copy(reply));
  cn_term *bad = cn_mk_tuple(2, cn_mk_atomc(n, "badrpc"), why);
  r.cb(self, bad ? 0 : CN_ENOMEM, bad, r.ctx);
  cn_term_free(bad);
}

int cn_rpc(cn_proc *self, const cn_atom *node, const char *mod, const char *fun, const cn_term *args,
           unsigned timeout_ms, cn_reply_fn cb, void *ctx) {
  cn_node *n = self->node;
  if (!node || !mod || !fun || !args || !cb) return CN_EINVAL;
  DIRTY_GUARD(n, int, cn_rpc(self, node, mod, fun, args, timeout_ms, cb, ctx));
  rpc_ctx *r = cn_malloc(sizeof *r);
  if (!r) return CN_ENOMEM;
  r->cb = cb;
  r->ctx = ctx;
  cn_term rex_e[2] = {tv_atom(cn_intern(n, "rex")), tv_atom(node)};
  cn_term rex = tv_tuple(rex_e, 2);
  cn_term req_e[5] = {tv_atom(cn_intern(n, "call")), tv_atom(cn_intern(n, mod)), tv_atom(cn_intern(n, fun)), *args,
                      tv_pid(n->gl_pid)};
  cn_term req = tv_tuple(req_e, 5);
  int rc = cn_call(self, &rex, &req, timeout_ms, rpc_done, r);
  if (rc) cn_free(r);
  return rc;
}

int cn_erpc(cn_proc *self, const cn_atom *peer, const char *mod, const char *fun, const cn_term *args,
            unsigned timeout_ms, cn_reply_fn cb, void *ctx) {
  cn_node *n = self->node;
  if (!peer || node_is_local(n, peer) || !mod || !fun || !args || !cb) return CN_EINVAL;
  DIRTY_GUARD(n, int, cn_erpc(self, peer, mod, fun, args, timeout_ms, cb, ctx));
  cn_ref req = node_make_ref(n);
  cn_pending *c = pending_add(self, CALL_ERPC, req, timeout_ms, cb, ctx);
  if (!c || !(c->res_ref = cn_mk_ref(node_make_ref(n)))) {
    if (c) pending_free(c);
    return CN_ENOMEM;
  }
  cn_pid none = {0};
  int rc = link_add_mon_out(self, req, none, NULL, peer);
  if (rc) {
    pending_free(c);
    return rc;
  }
  /* erpc:call spawns erpc:execute_call(Res, M, F, A) with a monitor; the value comes back as the exit reason
   * in the DOWN message. ({reply, error_only} is a local option of spawn_request: it never goes on the wire,
   * and the success reply it would suppress is simply ignored here.) */
  cn_term opt_e[1] = {tv_atom(cn_intern(n, "monitor"))};
  cn_term opts = {.type = CN_LIST};
  opts.v.list.len = 1;
  opts.v.list.e = opt_e;
  cn_term mfa_e[3] = {tv_atom(cn_intern(n, "erpc")), tv_atom(cn_intern(n, "execute_call")), tv_int(4)};
  cn_term ctl_e[6] = {tv_int(DOP_SPAWN_REQUEST), tv_ref(req),        tv_pid(self->pid),
                      tv_pid(n->gl_pid),         tv_tuple(mfa_e, 3), opts};
  cn_term ctl = tv_tuple(ctl_e, 6);
  cn_term arg_e[4] = {*c->res_ref, tv_atom(cn_intern(n, mod)), tv_atom(cn_intern(n, fun)), *args};
  cn_term arglist = {.type = CN_LIST};
  arglist.v.list.len = 4;
  arglist.v.list.e = arg_e;
  return conn_send(n, peer, &ctl, &arglist);
}

/* ---- Guarded calls ---------------------------------------------------------------------------------------- */

typedef struct guarded {
  const cn_call_guard *g;
  cn_reply_fn cb;
  void *ctx;
} guarded;

static void guarded_done(cn_proc *self, int status, const cn_term *reply, void *arg) {
  guarded w = *(guarded *)arg;
  cn_free(arg);
  if (w.g->done) w.g->done(status, reply, w.g->ctx);
  w.cb(self, status, reply, w.ctx);
}

/* Admits the call and wraps cb: 0 and *w (for cb's ctx), or the status that fails the call now. */
static int guard_begin(const cn_call_guard *g, cn_reply_fn cb, void *ctx, guarded **w) {
  if (!cb) return CN_EINVAL;
  int rc = g->admit ? g->admit(g->ctx) : 0;
  if (rc) return rc;
  if (!(*w = cn_malloc(sizeof **w))) rc = CN_ENOMEM;
  else **w = (guarded){g, cb, ctx};
  if (rc && g->done) g->done(rc, NULL, g->ctx);
  return rc;
}

/* The call returned rc: on an error its callback will not run, so done runs here. */
static int guard_end(guarded *w, int rc) {
  if (rc) {
    if (w->g->done) w->g->done(rc, NULL, w->g->ctx);
    cn_free(w);
  }
  return rc;
}

int cn_call_guarded(cn_proc *self, const cn_call_guard *g, const cn_term *server, const cn_term *request,
                    unsigned timeout_ms, cn_reply_fn cb, void *ctx) {
  guarded *w;
  int rc = g ? guard_begin(g, cb, ctx, &w) : 0;
  if (!g || rc) return rc ? rc : cn_call(self, server, request, timeout_ms, cb, ctx);
  return guard_end(w, cn_call(self, server, request, timeout_ms, guarded_done, w));
}

int cn_rpc_guarded(cn_proc *self, const cn_call_guard *g, const cn_atom *node, const char *mod, const char *fun,
                   const cn_term *args, unsigned timeout_ms, cn_reply_fn cb, void *ctx) {
  guarded *w;
  int rc = g ? guard_begin(g, cb, ctx, &w) : 0;
  if (!g || rc) return rc ? rc : cn_rpc(self, node, mod, fun, args, timeout_ms, cb, ctx);
  return guard_end(w, cn_rpc(self, node, mod, fun, args, timeout_ms, guarded_done, w));
}

int cn_erpc_guarded(cn_proc *self, const cn_call_guard *g, const cn_atom *node, const char *mod, const char *fun,
                    const cn_term *args, unsigned timeout_ms, cn_reply_fn cb, void *ctx) {
  guarded *w;
  int rc = g ? guard_begin(g, cb, ctx, &w) : 0;
  if (!g || rc) return rc ? rc : cn_erpc(self, node, mod, fun, args, timeout_ms, cb, ctx);
  return guard_end(w, cn_erpc(self, node, mod, fun, args, timeout_ms, guarded_done, w));
}

/* ---- The gen_server behaviour ---------------------------------------------------------------------------- */

typedef struct gen_state {
  const cn_gen_server_ops *ops;
  void *state;
} gen_state;

static void gen_handle(cn_proc *self, const cn_term *msg, void *arg) {
  gen_state *g = arg;
  const cn_term *from, *req;
  if (cn_gen_is_call(msg, &from, &req)) {
    if (!g->ops->handle_call) return;
    cn_term *reply = g->ops->handle_call(self, req, from, g->state);
    if (reply) cn_gen_reply(self, from, reply);
    cn_term_free(reply);
    return;
  }
  const cn_term *tag = cn_tuple_elem(msg, 2, 0);
  if (tag && cn_is_atom(tag, "$gen_cast")) {
    if (g->ops->handle_cast) g->ops->handle_cast(self, cn_tuple_elem(msg, 2, 1), g->state);
    return;
  }
  if (g->ops->handle_info) g->ops->handle_info(self, msg, g->state);
}

static void gen_terminate(cn_proc *self, const cn_term *reason, void *arg) {
  gen_state *g = arg;
  if (g->ops->terminate) g->ops->terminate(self, reason, g->state);
  cn_free(g);
}

int cn_gen_server_start(cn_node *n, const char *name, const cn_gen_server_ops *ops, void *state, cn_pid *pid_out) {
  if (!ops) return CN_EINVAL;
  DIRTY_GUARD(n, int, cn_gen_server_start(n, name, ops, state, pid_out));
  gen_state *g = cn_malloc(sizeof *g);
  if (!g) return CN_ENOMEM;
  g->ops = ops;
  g->state = state;
  cn_proc_opts o = {.terminate = gen_terminate, .trap_exit = ops->trap_exit, .dirty = ops->dirty};
  cn_pid pid;
  int rc = cn_spawn(n, gen_handle, g, &o, &pid);
  if (rc) {
    cn_free(g);
    return rc;
  }
  if (name && (rc = cn_register(n, name, pid))) {
    /* A failed start hands state back to the caller (who frees it): the process ends without the user's
     * terminate, or it would run on freed state (cnode_ctl's {start_kv, echo} did, found by fuzz_node). */
    static const cn_gen_server_ops none;
    g->ops = &none;
    g->state = NULL;
    cn_term reason = tv_atom(cn_intern(n, "normal"));
    cn_proc_exit(proc_lookup(n, pid), &reason);
    return rc;
  }
  if (pid_out) *pid_out = pid;
  return 0;
}

/* ---- Blocking forms for other threads -------------------------------------------------------------------- */

typedef struct sync_job {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  int status;
  cn_term *reply;
  bool rpc;
  cn_term *server;  /* call: the server; rpc: {Node, Mod, Fun} */
  cn_term *request; /* call: the request; rpc: the args */
  unsigned timeout_ms;
} sync_job;

static void sync_done(sync_job *j, int status, const cn_term *reply) {
  pthread_mutex_lock(&j->mu);
  j->status = status;
  j->reply = reply ? cn_term_copy(reply) : NULL;
  j->done = true;
  pthread_cond_signal(&j->cv);
  pthread_mutex_unlock(&j->mu);
}

static void sync_reply(cn_proc *self, int status, const cn_term *reply, void *ctx) {
  sync_done(ctx, status, reply);
  cn_proc_exit(self, NULL);
}

static void sync_idle(cn_proc *self, const cn_term *msg, void *state) {
  (void)self;
  (void)msg;
  (void)state;
}

/* Runs on the loop: a short-lived process makes the call for the waiting thread. */
static void sync_start(cn_node *n, void *arg) {
  sync_job *j = arg;
  cn_pid pid;
  int rc = cn_spawn(n, sync_idle, NULL, NULL, &pid);
  cn_proc *p = rc ? NULL : proc_lookup(n, pid);
  if (p) {
    if (j->rpc) {
      const cn_term *e = j->server->v.tuple.e;
      rc = cn_rpc(p, e[0].v.atom, e[1].v.atom->name, e[2].v.atom->name, j->request, j->timeout_ms, sync_reply, j);
    } else {
      rc = cn_call(p, j->server, j->request, j->timeout_ms, sync_reply, j);
    }
    if (rc) cn_proc_exit(p, NULL);
  }
  if (rc) sync_done(j, rc, NULL);
}

static int sync_run(cn_node *n, sync_job *j, cn_term **reply) {
  *reply = NULL;
  if (!j->server || !j->request) {
    cn_term_free(j->server);
    cn_term_free(j->request);
    return CN_ENOMEM;
  }
  if (dirty_tls_node == n && dirty_tls_held) { /* the loop waits for this thread: it could never answer */
    cn_term_free(j->server);
    cn_term_free(j->request);
    return CN_ESTATE;
  }
  pthread_mutex_init(&j->mu, NULL);
  pthread_cond_init(&j->cv, NULL);
  int rc = node_post_job(n, sync_start, j);
  if (!rc) {
    pthread_mutex_lock(&j->mu);
    while (!j->done) pthread_cond_wait(&j->cv, &j->mu);
    pthread_mutex_unlock(&j->mu);
    rc = j->status;
    *reply = j->reply;
  }
  pthread_mutex_destroy(&j->mu);
  pthread_cond_destroy(&j->cv);
  cn_term_free(j->server);
  cn_term_free(j->request);
  return rc;
}

int cn_call_sync(cn_node *n, const cn_term *server, const cn_term *request, unsigned timeout_ms, cn_term **reply) {
  if (!server || !request || !reply) return CN_EINVAL;
  sync_job j = {.server = cn_term_copy(server), .request = cn_term_copy(request), .timeout_ms = timeout_ms};
  return sync_run(n, &j, reply);
}

int cn_rpc_sync(cn_node *n, const cn_atom *node, const char *mod, const char *fun, const cn_term *args,
                unsigned timeout_ms, cn_term **reply) {
  if (!node || !mod || !fun || !args || !reply) return CN_EINVAL;
  sync_job j = {.rpc = true,
                .server = cn_mk_tuple(3, cn_mk_atom(node), cn_mk_atomc(n, mod), cn_mk_atomc(n, fun)),
                .request = cn_term_copy(args),
                .timeout_ms = timeout_ms};
  return sync_run(n, &j, reply);
}
