/* spawn.c: SPAWN_REQUEST from a peer (spawn/4, spawn_link, spawn_monitor, spawn_opt, erpc, rpc on OTP 23+):
 * entry points registered by C code start C processes; erpc calls of functions registered by C code
 * (cn_register_function) and of a few BIFs (Process.alive?/1, erlang:is_process_alive/1, node/0, nodes/0) are
 * answered as a BEAM node would; anything else starts a process
 * that exits at once with undef, as a BEAM node without the code would, so the caller never hangs. */
#include <string.h>

#include "node_int.h"

/* Interns module and function (atoms live as long as the node, so nothing to undo on a later failure). */
static int intern_mf(cn_node *n, const char *module, const char *function, const cn_atom **mod, const cn_atom **fun) {
  int rc = node_intern(n, module, mod);
  return rc ? rc : node_intern(n, function, fun);
}

int cn_register_entry(cn_node *n, const char *module, const char *function, cn_entry_fn fn, void *ctx) {
  if (!module || !function || !fn) return CN_EINVAL;
  DIRTY_GUARD(n, int, cn_register_entry(n, module, function, fn, ctx));
  const cn_atom *mod, *fun;
  int rc = intern_mf(n, module, function, &mod, &fun);
  if (rc) return rc;
  cn_entry *e = cn_calloc(1, sizeof *e);
  if (!e) return CN_ENOMEM;
  *e = (cn_entry){.mod = mod, .fun = fun, .fn = fn, .ctx = ctx, .next = n->entries};
  n->entries = e;
  return 0;
}

int cn_register_function(cn_node *n, const char *module, const char *function, uint32_t arity, cn_function_fn fn,
                         void *ctx) {
  if (!n || !module || !function || !fn || arity > 255) return CN_EINVAL;
  DIRTY_GUARD(n, int, cn_register_function(n, module, function, arity, fn, ctx));
  const cn_atom *mod, *fun;
  int rc = intern_mf(n, module, function, &mod, &fun);
  if (rc) return rc;
  for (cn_function *o = n->functions; o; o = o->next)
    if (o->mod == mod && o->fun == fun && o->arity == arity) return CN_EEXIST;
  cn_function *f = cn_calloc(1, sizeof *f);
  if (!f) return CN_ENOMEM;
  *f = (cn_function){.mod = mod, .fun = fun, .arity = arity, .fn = fn, .ctx = ctx, .next = n->functions};
  n->functions = f;
  return 0;
}

void spawn_free_entries(cn_node *n) {
  while (n->entries) {
    cn_entry *e = n->entries;
    n->entries = e->next;
    cn_free(e);
  }
  while (n->functions) {
    cn_function *f = n->functions;
    n->functions = f->next;
    cn_free(f);
  }
}

static cn_entry *find_entry(cn_node *n, const cn_atom *mod, const cn_atom *fun) {
  for (cn_entry *e = n->entries; e; e = e->next)
    if (e->mod == mod && e->fun == fun) return e;
  return NULL;
}

/* A process that ends before its first message: what a spawn of missing code becomes. */
static void doomed(cn_proc *self, const cn_term *msg, void *state) {
  (void)self;
  (void)msg;
  (void)state;
}

/* The exit reason a BEAM node gives a spawn of code it does not have. erpc's execute_call/4 reports it in
 * its own result shape, so rpc:call and erpc:call return what they return for an undefined function. */
static cn_term *undef_reason(cn_node *n, const cn_term *mfa, const cn_term *args) {
  const cn_term *e = mfa->v.tuple.e;
  if (cn_is_atom(&e[0], "erpc") && cn_is_atom(&e[1], "execute_call") && args && args->type == CN_LIST &&
      args->v.list.len == 4 && !args->v.list.tail) {
    const cn_term *a = args->v.list.e;
    cn_term *frame = cn_mk_tuple(4, cn_term_copy(&a[1]), cn_term_copy(&a[2]), cn_term_copy(&a[3]), cn_mk_nil());
    return cn_mk_tuple(4, cn_term_copy(&a[0]), cn_mk_atomc(n, "error"), cn_mk_atomc(n, "undef"), cn_mk_list(1, frame));
  }
  cn_term *frame =
      cn_mk_tuple(4, cn_term_copy(&e[0]), cn_term_copy(&e[1]), args ? cn_term_copy(args) : cn_mk_nil(), cn_mk_nil());
  return cn_mk_tuple(2, cn_mk_atomc(n, "undef"), cn_mk_list(1, frame));
}

/* Functions a BEAM peer calls on every node through erpc (Horde's lookup checks a registered pid with
 * erpc:call(Node, 'Elixir.Process', 'alive?', [Pid]); a mesh builder asks erlang:nodes/0), as cn_function_fns:
 * NULL with *bad set is badarg, as the BIF would raise. */

static cn_term *bi_alive(cn_node *n, const cn_term *argv, uint32_t argc, bool *bad, void *ctx) {
  (void)argc, (void)ctx;
  if (argv[0].type != CN_PID || argv[0].v.pid.node != cn_node_name(n)) {
    *bad = true;
    return NULL;
  }
  return cn_mk_atomc(n, cn_is_process_alive(n, argv[0].v.pid) ? "true" : "false");
}

static cn_term *bi_node(cn_node *n, const cn_term *argv, uint32_t argc, bool *bad, void *ctx) {
  (void)argv, (void)argc, (void)bad, (void)ctx;
  return cn_mk_atom(cn_node_name(n));
}

static cn_term *bi_nodes(cn_node *n, const cn_term *argv, uint32_t argc, bool *bad, void *ctx) {
  (void)argv, (void)argc, (void)bad, (void)ctx;
  enum { MAX = 1024 };
  const cn_atom **names = cn_malloc(MAX * sizeof *names);
  cn_term **elems = cn_malloc(MAX * sizeof *elems);
  cn_term *list = NULL;
  if (names && elems) {
    size_t k = cn_nodes(n, CN_NODES_VISIBLE, names, MAX);
    if (k > MAX) k = MAX;
    for (size_t i = 0; i < k; i++) elems[i] = cn_mk_atom(names[i]);
    list = cn_mk_listv(k, elems, NULL);
  }
  cn_free(names);
  cn_free(elems);
  return list;
}

static const struct {
  const char *mod, *fun;
  uint32_t arity;
  cn_function_fn fn;
} builtins[] = {
    {"Elixir.Process", "alive?", 1, bi_alive},
    {"erlang", "is_process_alive", 1, bi_alive},
    {"erlang", "node", 0, bi_node},
    {"erlang", "nodes", 0, bi_nodes},
};

cn_term *spawn_apply(cn_node *n, const cn_term *m, const cn_term *f, const cn_term *argl, int *status) {
  *status = CN_ENOTFOUND;
  if (m->type != CN_ATOM || f->type != CN_ATOM) return NULL;
  if (argl->type != CN_NIL && (argl->type != CN_LIST || argl->v.list.tail)) return NULL;
  uint32_t arity = argl->type == CN_LIST ? argl->v.list.len : 0;
  const cn_term *argv = arity ? argl->v.list.e : NULL;
  cn_function_fn fn = NULL;
  void *ctx = NULL;
  for (cn_function *r = n->functions; r && !fn; r = r->next)
    if (r->mod == m->v.atom && r->fun == f->v.atom && r->arity == arity) {
      fn = r->fn;
      ctx = r->ctx;
    }
  for (size_t i = 0; !fn && i < sizeof builtins / sizeof builtins[0]; i++)
    if (cn_is_atom(m, builtins[i].mod) && cn_is_atom(f, builtins[i].fun) && arity == builtins[i].arity)
      fn = builtins[i].fn;
  if (!fn) return NULL;
  bool bad = false;
  cn_term *v = fn(n, argv, arity, &bad, ctx);
  if (!v) *status = bad ? CN_EINVAL : CN_ENOTFOUND;
  else *status = 0;
  /* cppcheck takes fn for a function that may return the address of bad: it returns a new term */
  // cppcheck-suppress returnDanglingLifetime
  return v;
}

/* erpc:execute_call(Res, M, F, A) of a function spawn_apply answers: the exit reason erpc reads, {Res, return, V} or
 * {Res, error, badarg, Stack}; NULL when M:F/arity is none of them (or on OOM, which then reads as undef). */
static cn_term *builtin_reason(cn_node *n, const cn_term *mfa, const cn_term *args) {
  const cn_term *e = mfa->v.tuple.e;
  if (!cn_is_atom(&e[0], "erpc") || !cn_is_atom(&e[1], "execute_call") || !args || args->type != CN_LIST ||
      args->v.list.len != 4 || args->v.list.tail)
    return NULL;
  const cn_term *a = args->v.list.e;
  int status;
  cn_term *v = spawn_apply(n, &a[1], &a[2], &a[3], &status);
  if (status == CN_EINVAL) {
    cn_term *frame = cn_mk_tuple(4, cn_term_copy(&a[1]), cn_term_copy(&a[2]), cn_term_copy(&a[3]), cn_mk_nil());
    return cn_mk_tuple(4, cn_term_copy(&a[0]), cn_mk_atomc(n, "error"), cn_mk_atomc(n, "badarg"), cn_mk_list(1, frame));
  }
  return v ? cn_mk_tuple(3, cn_term_copy(&a[0]), cn_mk_atomc(n, "return"), v) : NULL;
}

int spawn_request(cn_node *n, const cn_atom *peer, const dist_ctl *ctl, const cn_term *args) {
  const cn_term *mfa = ctl->mfa;
  cn_pid parent = ctl->from->v.pid;
  if (mfa->type != CN_TUPLE || mfa->v.tuple.arity != 3 || mfa->v.tuple.e[0].type != CN_ATOM ||
      mfa->v.tuple.e[1].type != CN_ATOM)
    return CN_EPROTO;
  bool link = false, monitor = false, reply_ok = true, reply_err = true;
  for (const cn_term *o = ctl->opts; o && o->type == CN_LIST; o = o->v.list.tail) {
    for (uint32_t i = 0; i < o->v.list.len; i++) {
      const cn_term *opt = &o->v.list.e[i];
      const cn_term *k = cn_tuple_elem(opt, 2, 0), *v = cn_tuple_elem(opt, 2, 1);
      if (cn_is_atom(opt, "link")) link = true;
      if (cn_is_atom(opt, "monitor") || (k && cn_is_atom(k, "monitor"))) monitor = true;
      if (k && cn_is_atom(k, "reply")) {
        reply_ok = cn_is_atom(v, "yes") || cn_is_atom(v, "success_only");
        reply_err = cn_is_atom(v, "yes") || cn_is_atom(v, "error_only");
      }
    }
  }
  cn_entry *entry = find_entry(n, mfa->v.tuple.e[0].v.atom, mfa->v.tuple.e[1].v.atom);
  cn_handler_fn handler = doomed;
  void *state = NULL;
  cn_proc_opts popts = {0};
  cn_term *reason = NULL;
  bool builtin = !entry && (reason = builtin_reason(n, mfa, args)) != NULL;
  if (!entry && !builtin) reason = undef_reason(n, mfa, args);
  else if (entry && entry->fn(n, args, &handler, &state, &popts, entry->ctx)) reason = cn_mk_atomc(n, "badarg");
  cn_pid pid;
  int rc = cn_spawn(n, handler ? handler : doomed, reason ? NULL : state, &popts, &pid);
  cn_proc *p = rc ? NULL : proc_lookup(n, pid);
  int64_t flags = 0;
  if (p && link && !link_add(&p->links, parent)) flags |= 1;
  if (p && monitor && !link_add_mon_in(p, parent, ctl->id->v.ref, NULL)) flags |= 2;
  cn_term e[5] = {tv_int(DOP_SPAWN_REPLY), *ctl->id, *ctl->from, tv_int(flags),
                  p ? tv_pid(pid) : tv_atom(cn_intern(n, "system_limit"))};
  if (p ? reply_ok : reply_err) {
    cn_term ctlr = tv_tuple(e, 5);
    conn_send(n, peer, &ctlr, NULL);
  }
  /* The reply goes out first; the exit signals of a doomed process follow it on the same connection. */
  if (p && reason) cn_proc_exit(p, reason);
  if (reason && !builtin)
    cn_log(n, CN_LOG_DEBUG, "spawn of %s:%s from %s: %s", mfa->v.tuple.e[0].v.atom->name,
           mfa->v.tuple.e[1].v.atom->name, peer->name, entry ? "the entry point refused" : "no such entry point");
  cn_term_free(reason);
  return 0;
}
