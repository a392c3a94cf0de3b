/* horde_sup.c: --horde-supervisor NAME for the cnode program (a member of that Horde.DynamicSupervisor, members:
 * auto, running the demo C worker Elixir.CNode.Demo.Counter as an entry point), its graceful stop on SIGTERM, and
 * cnode_ctl's horde_sup_* commands (registered into ctl.h's table). */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "horde.h"
#include "horde_app.h"

enum { MAX_SUPS = 16 };
#define COUNTER "Elixir.CNode.Demo.Counter"

static struct sup_slot {
  char name[256];  /* the atom's text */
  cn_horde_sup *s; /* NULL until started and once ended */
} sups[MAX_SUPS];
static size_t nsups;

/* ---- CNode.Demo.Counter: a C gen_server holding an integer ------------------------------------------------------- */

/* get -> N; {add, K} -> N + K (kept); {stop, Reason} -> ok, then it exits with Reason (to try restart types). */
static cn_term *counter_call(cn_proc *self, const cn_term *req, const cn_term *from, void *state) {
  (void)from;
  cn_node *n = cn_proc_node(self);
  int64_t *v = state;
  const cn_term *op = cn_tuple_elem(req, 2, 0), *arg = cn_tuple_elem(req, 2, 1);
  if (cn_is_atom(req, "get")) return cn_mk_int(*v);
  if (op && cn_is_atom(op, "add") && arg->type == CN_INT) {
    *v += arg->v.i;
    return cn_mk_int(*v);
  }
  if (op && cn_is_atom(op, "stop")) {
    cn_proc_exit(self, arg);
    return cn_mk_atomc(n, "ok");
  }
  return cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, "badarg"));
}

static void counter_end(cn_proc *self, const cn_term *reason, void *state) {
  (void)self, (void)reason;
  cn_free(state);
}

static const cn_gen_server_ops counter_ops = {.handle_call = counter_call, .terminate = counter_end};

/* CNode.Demo.Counter.start_link([N]) with an integer N (start => {M, start_link, [[N]]}, as
 * CNode.Horde.c_child_spec(CNode.Demo.Counter, [[N]]) writes it); start_link(N) is taken too. */
static int counter_start(cn_node *n, const cn_atom *fun, const cn_term *args, void *ctx, cn_pid *pid, cn_term **error) {
  (void)ctx;
  const cn_term *a = args->type == CN_LIST && args->v.list.len == 1 ? &args->v.list.e[0] : NULL;
  if (a && a->type == CN_LIST && a->v.list.len == 1 && !a->v.list.tail) a = &a->v.list.e[0];
  if (strcmp(fun->name, "start_link") || !a || a->type != CN_INT) {
    *error = cn_mk_tuple(2, cn_mk_atomc(n, "badarg"), cn_term_copy(args));
    return CN_EINVAL;
  }
  int64_t *v = cn_malloc(sizeof *v);
  if (!v) return CN_ENOMEM;
  *v = a->v.i;
  int rc = cn_gen_server_start(n, NULL, &counter_ops, v, pid);
  if (rc) cn_free(v);
  return rc;
}

/* ---- Members ----------------------------------------------------------------------------------------------------- */

int hsup_add(const char *name) {
  if (!name[0] || nsups == MAX_SUPS || horde_atom_name(name, sups[nsups].name, 201)) return -1;
  nsups++;
  return 0;
}

bool hsup_at(size_t i, const char **name, cn_horde_sup **out) {
  if (i >= nsups) return false;
  *name = sups[i].name;
  *out = sups[i].s;
  return true;
}

static void sup_stopped(cn_horde_sup *s, void *ctx) {
  (void)s;
  ((struct sup_slot *)ctx)->s = NULL;
}

static cn_term *sup_cmd(cn_proc *self, const char *op, const cn_term *cmd, const ctl_caller *caller, void *ctx);

int hsup_start(cn_node *n) {
  int rc = ctl_register_cmd("horde_sup_*", sup_cmd, NULL);
  for (size_t i = 0; !rc && i < nsups; i++) {
    cn_horde_sup_opts o = {.on_stop = sup_stopped, .ctx = &sups[i]};
    if ((rc = cn_horde_supervisor_start(n, sups[i].name, &o, &sups[i].s))) break;
    if (!(rc = cn_horde_entry(sups[i].s, COUNTER, counter_start, NULL)))
      cn_log(n, CN_LOG_INFO, "joined Horde.DynamicSupervisor %s (members: auto); C entry point %s", sups[i].name,
             COUNTER);
  }
  return rc;
}

static struct {
  size_t pending;
  void (*done)(void *ctx);
  void *ctx;
} stopping;

static void one_done(cn_horde_sup *s, void *ctx) {
  (void)s, (void)ctx;
  if (stopping.pending && --stopping.pending == 0 && stopping.done) stopping.done(stopping.ctx);
}

void hsup_shutdown(cn_node *n, void (*done)(void *ctx), void *ctx) {
  (void)n;
  stopping.done = done;
  stopping.ctx = ctx;
  stopping.pending = 1; /* held while the shutdowns are asked for, so none can finish the whole early */
  for (size_t i = 0; i < nsups; i++)
    if (sups[i].s && !cn_horde_supervisor_shutdown(sups[i].s, one_done, NULL)) stopping.pending++;
  one_done(NULL, NULL);
}

/* ---- cnode_ctl -------------------------------------------------------------------------------------------------- */

static cn_horde_sup *find(const cn_term *name) {
  char full[256];
  if (!name || name->type != CN_ATOM || horde_atom_name(name->v.atom->name, full, sizeof full)) return NULL;
  for (size_t i = 0; i < nsups; i++)
    if (sups[i].s && !strcmp(sups[i].name, full)) return sups[i].s;
  return NULL;
}

/* {horde_sup_start_child, Sup, Spec} -> what the call {start_child, Spec} to Sup on this node answers: {ok, Pid} |
 * {error, Reason}; when another member owns the child, the request goes to it as Horde proxies it, with the
 * command's caller as From ({From, Ref} for that form), so the owner answers the caller itself;
 * {horde_sup_which_children, Sup} -> this node's [{Id, Pid, worker, [Module]}];
 * {horde_sup_count, Sup} -> this node's [{specs, N}, {active, N}, {supervisors, 0}, {workers, N}]. */
static cn_term *sup_cmd(cn_proc *self, const char *op, const cn_term *cmd, const ctl_caller *caller, void *ctx) {
  (void)ctx;
  cn_node *n = cn_proc_node(self);
  if (cmd->type != CN_TUPLE) return ctl_unknown(n);
  uint32_t ar = cmd->v.tuple.arity;
  cn_horde_sup *s = ar >= 2 ? find(&cmd->v.tuple.e[1]) : NULL;
  const char *why = !s ? "no_such_supervisor" : "badarg";
  if (s && !strcmp(op, "horde_sup_start_child") && ar == 3) {
    cn_term *from = ctl_caller_from(caller), *reply = NULL;
    int rc = from ? cn_horde_start_child(s, &cmd->v.tuple.e[2], from, &reply) : CN_ENOMEM;
    cn_term_free(from);
    if (!rc) return reply; /* NULL: the owning member answers */
    why = cn_err_reason(rc);
  } else if (s && !strcmp(op, "horde_sup_which_children") && ar == 2) {
    return cn_horde_which_children(s);
  } else if (s && !strcmp(op, "horde_sup_count") && ar == 2) {
    return cn_horde_count_children(s);
  }
  return cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, why));
}
