/* workers.c: demo processes a user can try from iex, which the interop tests drive too: `echo` sends back
 * what it gets; `cnode_kv` is a C gen_server; cnode_ctl's built-in commands (send, nodes, otp_release, start_kv, stats,
 * global_*, crdt_*; ctl.c runs them); the entry points cnode_demo:echo/0 and cnode_demo:puppet/1 can be spawned
 * from BEAM. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cn_global.h"
#include "ctl.h"
#include "horde.h"
#include "workers.h"

/* echo: {From, Term} -> From ! Term; a gen_server call is answered with its request. A plain process rather than
 * a cn_gen_server: it shows the bare handler API, and cnode_demo:echo/0 spawns it through cn_register_entry,
 * which takes a handler. */
static void echo(cn_proc *self, const cn_term *msg, void *state) {
  (void)state;
  const cn_term *from = cn_tuple_elem(msg, 2, 0), *req;
  if (from && from->type == CN_PID) cn_send(cn_proc_node(self), self, from->v.pid, cn_tuple_elem(msg, 2, 1));
  else if (cn_gen_is_call(msg, &from, &req)) cn_gen_reply(self, from, req);
}

int workers_spawn_echo(cn_node *n, cn_pid *pid) { return cn_spawn(n, echo, NULL, NULL, pid); }

/* ---- cnode_kv: a gen_server ------------------------------------------------------------------------------ */

typedef struct kv_entry {
  struct kv_entry *next;
  cn_term *key;
  cn_term *val;
} kv_entry;

/* Keys are equal as a map's keys of the node's cluster are: under =:= of the release the node follows (0.0 and
 * -0.0 are two keys from OTP 27 on). */
static kv_entry **kv_find(cn_node *n, kv_entry **head, const cn_term *key) {
  int rel = cn_node_otp_release(n);
  for (; *head; head = &(*head)->next)
    if (cn_term_exact_eq_otp((*head)->key, key, rel)) return head;
  return head;
}

/* {put, K, V} -> ok; {get, K} -> {ok, V} | error; {exit, Reason}: stops without replying (the caller gets
 * Reason); noreply: never answers (the caller times out). A list is plenty for a demo. */
static cn_term *kv_call(cn_proc *self, const cn_term *req, const cn_term *from, void *state) {
  (void)from;
  cn_node *n = cn_proc_node(self);
  kv_entry **head = state;
  const cn_term *op = req && req->type == CN_TUPLE && req->v.tuple.arity ? &req->v.tuple.e[0] : req;
  uint32_t arity = req && req->type == CN_TUPLE ? req->v.tuple.arity : 0;
  if (cn_is_atom(op, "put") && arity == 3) {
    /* Every allocation before the table changes: out of memory answers {error, enomem} and keeps the old value. */
    kv_entry **e = kv_find(n, head, &req->v.tuple.e[1]);
    cn_term *val = cn_term_copy(&req->v.tuple.e[2]);
    kv_entry *fresh = *e || !val ? NULL : cn_calloc(1, sizeof *fresh);
    if (fresh && !(fresh->key = cn_term_copy(&req->v.tuple.e[1]))) {
      cn_free(fresh);
      fresh = NULL;
    }
    if (!val || (!*e && !fresh)) {
      cn_term_free(val);
      return cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, "enomem"));
    }
    if (fresh) *e = fresh;
    cn_term_free((*e)->val);
    (*e)->val = val;
    return cn_mk_atomc(n, "ok");
  }
  if (cn_is_atom(op, "get") && arity == 2) {
    kv_entry **e = kv_find(n, head, &req->v.tuple.e[1]);
    return *e ? cn_mk_tuple(2, cn_mk_atomc(n, "ok"), cn_term_copy((*e)->val)) : cn_mk_atomc(n, "error");
  }
  if (cn_is_atom(op, "exit") && arity == 2) {
    cn_proc_exit(self, &req->v.tuple.e[1]);
    return NULL;
  }
  if (cn_is_atom(req, "noreply")) return NULL;
  return cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, "badarg"));
}

static void kv_terminate(cn_proc *self, const cn_term *reason, void *state) {
  (void)self;
  (void)reason;
  kv_entry **head = state;
  while (*head) {
    kv_entry *e = *head;
    *head = e->next;
    cn_term_free(e->key);
    cn_term_free(e->val);
    cn_free(e);
  }
  cn_free(head);
}

static const cn_gen_server_ops kv_ops = {.handle_call = kv_call, .terminate = kv_terminate};

static int kv_start(cn_node *n, const char *name, cn_pid *pid) {
  kv_entry **head = cn_calloc(1, sizeof *head);
  if (!head) return CN_ENOMEM;
  int rc = cn_gen_server_start(n, name, &kv_ops, head, pid);
  if (rc) cn_free(head);
  return rc;
}

/* ---- puppet: a C process remote-controlled by its owner -------------------------------------------------- */

/* {'$puppet', Cmd} runs Cmd; every other message is forwarded to the owner as {puppet, Self, Msg}, so a test
 * sees the 'EXIT' and 'DOWN' messages the C process gets. Results come back the same way. */
typedef struct puppet {
  cn_pid owner;
} puppet;

static void tell(cn_proc *self, puppet *pp, cn_term *what) {
  cn_node *n = cn_proc_node(self);
  cn_term *msg = cn_mk_tuple(3, cn_mk_atomc(n, "puppet"), cn_mk_pid(cn_self(self)), what);
  if (msg) cn_send(n, self, pp->owner, msg);
  cn_term_free(msg);
}

static const char *status_name(int status) {
  switch (status) {
  case 0: return "ok";
  case CN_EEXIT: return "exit";
  case CN_ETIMEDOUT: return "timeout";
  default: return "closed";
  }
}

/* Call results: {puppet, Self, {result, ok | exit | timeout, Reply}}. ctx is the puppet's own state. */
static void puppet_result(cn_proc *self, int status, const cn_term *reply, void *ctx) {
  cn_node *n = cn_proc_node(self);
  if (status == CN_ECLOSED) return; /* the puppet itself is ending */
  tell(self, ctx,
       cn_mk_tuple(3, cn_mk_atomc(n, "result"), cn_mk_atomc(n, status_name(status)),
                   reply ? cn_term_copy(reply) : cn_mk_atomc(n, "undefined")));
}

static const char *atom_text(const cn_term *t) { return t && t->type == CN_ATOM ? t->v.atom->name : NULL; }

/* An option list of alias/1 ([priority, reply]) or send/3 and exit/3 ([priority]) as CN_ALIAS_* or CN_SEND_*
 * bits; unknown options give CN_EINVAL's bit pattern (all ones), which the callee refuses. */
static unsigned puppet_opts(const cn_term *l, bool alias) {
  unsigned o = 0;
  for (uint32_t i = 0; l && l->type == CN_LIST && i < l->v.list.len; i++) {
    const cn_term *x = &l->v.list.e[i];
    if (cn_is_atom(x, "priority")) o |= alias ? (unsigned)CN_ALIAS_PRIORITY : (unsigned)CN_SEND_PRIORITY;
    else if (alias && cn_is_atom(x, "reply")) o |= CN_ALIAS_REPLY;
    else return ~0u;
  }
  return o;
}

static void puppet_cmd(cn_proc *self, puppet *pp, const cn_term *cmd) {
  cn_node *n = cn_proc_node(self);
  const char *op = atom_text(cmd->type == CN_TUPLE && cmd->v.tuple.arity ? &cmd->v.tuple.e[0] : cmd);
  const cn_term *a = cmd->type == CN_TUPLE && cmd->v.tuple.arity > 1 ? &cmd->v.tuple.e[1] : NULL;
  const cn_term *b = cmd->type == CN_TUPLE && cmd->v.tuple.arity > 2 ? &cmd->v.tuple.e[2] : NULL;
  const cn_term *c = cmd->type == CN_TUPLE && cmd->v.tuple.arity > 3 ? &cmd->v.tuple.e[3] : NULL;
  const cn_term *d = cmd->type == CN_TUPLE && cmd->v.tuple.arity > 4 ? &cmd->v.tuple.e[4] : NULL;
  int rc = 0;
  if (!op) return;
  if (!strcmp(op, "link") && a && a->type == CN_PID) {
    rc = cn_link(self, a->v.pid);
  } else if (!strcmp(op, "unlink") && a && a->type == CN_PID) {
    rc = cn_unlink(self, a->v.pid);
  } else if (!strcmp(op, "monitor") && a) {
    cn_ref ref;
    if (!(rc = cn_monitor(self, a, &ref))) tell(self, pp, cn_mk_tuple(2, cn_mk_atomc(n, "monitor"), cn_mk_ref(ref)));
  } else if (!strcmp(op, "demonitor") && a && a->type == CN_REF) {
    rc = cn_demonitor(self, a->v.ref);
  } else if (!strcmp(op, "exit") && a) {
    rc = cn_proc_exit(self, a);
  } else if (!strcmp(op, "exit_signal") && a && a->type == CN_PID && b && !c) {
    rc = cn_exit(n, self, a->v.pid, b);
  } else if (!strcmp(op, "exit_signal") && a && b && c) { /* {exit_signal, PidOrAlias, Reason, Opts}: exit/3 */
    rc = cn_exit_opts(n, self, a, b, puppet_opts(c, false));
  } else if (!strcmp(op, "trap_exit") && a) {
    cn_trap_exit(self, cn_is_atom(a, "true"));
  } else if (!strcmp(op, "send") && a && b) { /* {send, Dest, Msg[, Opts]}: Opts as erlang:send/3's */
    rc = c ? cn_send_opts(n, self, a, b, puppet_opts(c, false)) : cn_send_to(n, self, a, b);
  } else if (!strcmp(op, "send_big") && a && b && b->type == CN_INT && b->v.i >= 0) {
    /* A binary made in C, byte i = i mod 251, so the receiver can check every byte. */
    size_t len = (size_t)b->v.i;
    uint8_t *buf = cn_malloc(len);
    if (!buf) return;
    for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)(i % 251);
    cn_term *bin = cn_mk_binary(buf, len);
    cn_free(buf);
    if (bin) rc = cn_send_to(n, self, a, bin);
    cn_term_free(bin);
  } else if (!strcmp(op, "call") && a && b && c && c->type == CN_INT) {
    rc = cn_call(self, a, b, (unsigned)c->v.i, puppet_result, pp);
  } else if (!strcmp(op, "cast") && a && b) {
    rc = cn_cast(n, self, a, b);
  } else if ((!strcmp(op, "rpc") || !strcmp(op, "erpc")) && atom_text(a) && atom_text(b) && atom_text(c) && d) {
    rc = (!strcmp(op, "rpc") ? cn_rpc : cn_erpc)(self, a->v.atom, atom_text(b), atom_text(c), d, 10000, puppet_result,
                                                 pp);
  } else if (!strcmp(op, "alias")) { /* alias or {alias, Opts}, Opts as alias/1's */
    cn_ref ref;
    if (!(rc = cn_alias_opts(self, a ? puppet_opts(a, true) : 0, &ref)))
      tell(self, pp, cn_mk_tuple(2, cn_mk_atomc(n, "alias"), cn_mk_ref(ref)));
  } else if (!strcmp(op, "sleep") && a && a->type == CN_INT && a->v.i >= 0 && a->v.i <= 5000) {
    /* Test only: blocks the whole node for a while, so that what peers send meanwhile queues up at once. */
    struct timespec ts = {(time_t)(a->v.i / 1000), (long)(a->v.i % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  } else if (!strcmp(op, "unalias") && a && a->type == CN_REF) {
    rc = cn_unalias(self, a->v.ref);
  } else if (!strcmp(op, "ping")) {
    tell(self, pp, cn_mk_atomc(n, "pong"));
  } else {
    rc = CN_EINVAL;
  }
  if (rc) tell(self, pp, cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, cn_err_reason(rc))));
}

static void puppet_handle(cn_proc *self, const cn_term *msg, void *state) {
  puppet *pp = state;
  const cn_term *tag = cn_tuple_elem(msg, 2, 0);
  if (tag && cn_is_atom(tag, "$puppet")) {
    puppet_cmd(self, pp, cn_tuple_elem(msg, 2, 1));
    return;
  }
  tell(self, pp, cn_term_copy(msg));
}

static void puppet_end(cn_proc *self, const cn_term *reason, void *state) {
  (void)self;
  (void)reason;
  cn_free(state);
}

/* cnode_demo:puppet(Owner): args [Owner]. */
static int puppet_entry(cn_node *n, const cn_term *args, cn_handler_fn *handler, void **state, cn_proc_opts *opts,
                        void *ctx) {
  (void)n;
  (void)ctx;
  if (!args || args->type != CN_LIST || args->v.list.len != 1 || args->v.list.e[0].type != CN_PID) return -1;
  puppet *pp = cn_malloc(sizeof *pp);
  if (!pp) return -1;
  pp->owner = args->v.list.e[0].v.pid;
  *handler = puppet_handle;
  *state = pp;
  opts->terminate = puppet_end;
  return 0;
}

/* cnode_demo:echo(): an echo process. */
static int echo_entry(cn_node *n, const cn_term *args, cn_handler_fn *handler, void **state, cn_proc_opts *opts,
                      void *ctx) {
  (void)n;
  (void)opts;
  (void)ctx;
  if (args && args->type != CN_NIL) return -1;
  *handler = echo;
  *state = NULL;
  return 0;
}

/* ---- cnode_ctl ----------------------------------------------------------------------------------------------- */

/* A global request of cnode_ctl in flight: the answer goes to its caller once global has one. */
typedef struct ctl_pending {
  ctl_caller *caller;
  const char *ok;   /* the answer for status 0 */
  const char *fail; /* the answer for CN_EEXIST / CN_EBUSY */
} ctl_pending;

static void ctl_global_done(cn_proc *self, int status, void *ctx) {
  ctl_pending *c = ctx;
  cn_node *n = cn_proc_node(self);
  if (status != CN_ECLOSED)
    ctl_answer(self, c->caller,
               !status ? cn_mk_atomc(n, c->ok)
               : (status == CN_EEXIST || status == CN_EBUSY)
                   ? cn_mk_atomc(n, c->fail)
                   : cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, cn_err_reason(status))));
  ctl_caller_free(c->caller);
  cn_free(c);
}

/* While a global_trans lock is held: tells a {From, Ref, Cmd} caller {Ref, in_trans}. A gen_server call gets one
 * reply, so it gets only the outcome (done | aborted). */
static void ctl_in_trans(cn_proc *self, void *ctx) {
  ctl_pending *c = ctx;
  if (!c->caller->from) ctl_answer(self, c->caller, cn_mk_atomc(cn_proc_node(self), "in_trans"));
}

/* Nodes as a list of atoms, or `default` (NULL: [node() | nodes()]); *bad on another shape. */
static const cn_atom **ctl_nodes(const cn_term *t, size_t *count, bool *bad) {
  *count = 0;
  *bad = false;
  if (cn_is_atom(t, "default")) return NULL;
  if (t && t->type == CN_NIL) return cn_malloc(sizeof(const cn_atom *));
  if (!t || t->type != CN_LIST) {
    *bad = true;
    return NULL;
  }
  const cn_atom **v = cn_malloc(t->v.list.len * sizeof *v);
  for (uint32_t i = 0; v && i < t->v.list.len; i++) {
    if (t->v.list.e[i].type != CN_ATOM) {
      cn_free(v);
      *bad = true;
      return NULL;
    }
    v[(*count)++] = t->v.list.e[i].v.atom;
  }
  return v;
}

/* The global_* commands of cnode_ctl (Cmd a tuple or, for global_sync, the bare atom); returns the immediate
 * answer, or NULL when it comes later. */
static cn_term *ctl_global(cn_proc *self, const char *op, const cn_term *cmd, const ctl_caller *caller, void *ctx) {
  (void)ctx;
  cn_node *n = cn_proc_node(self);
  uint32_t ar = cmd->type == CN_TUPLE ? cmd->v.tuple.arity : 0;
  const cn_term *a = ar > 1 ? &cmd->v.tuple.e[1] : NULL, *b = ar > 2 ? &cmd->v.tuple.e[2] : NULL;
  const cn_term *c = ar > 3 ? &cmd->v.tuple.e[3] : NULL;
  if (!strcmp(op, "global_whereis") && a) {
    cn_pid pid;
    int rc = cn_global_whereis_name(n, a, &pid);
    return rc == CN_ENOTFOUND ? cn_mk_atomc(n, "undefined")
           : rc               ? cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, cn_err_reason(rc)))
                              : cn_mk_pid(pid);
  }
  if (!strcmp(op, "global_send") && a && b) {
    int rc = cn_global_send(n, self, a, b);
    return rc ? cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, cn_err_reason(rc))) : cn_mk_atomc(n, "ok");
  }
  ctl_pending *p = cn_calloc(1, sizeof *p);
  if (!p || !(p->caller = ctl_caller_dup(caller))) {
    cn_free(p);
    return cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, "enomem"));
  }
  int rc = CN_EINVAL;
  size_t k = 0;
  bool bad = false;
  const cn_atom **nodes = NULL;
  if (!strcmp(op, "global_register") && a && b && b->type == CN_PID) {
    p->ok = "yes", p->fail = "no";
    rc = cn_global_register_name(self, a, b->v.pid, ctl_global_done, p);
  } else if (!strcmp(op, "global_unregister") && a) {
    p->ok = "ok", p->fail = "ok";
    rc = cn_global_unregister_name(self, a, ctl_global_done, p);
  } else if (!strcmp(op, "global_sync")) {
    p->ok = "ok", p->fail = "error";
    rc = cn_global_sync(self, ctl_global_done, p);
  } else if (!strcmp(op, "global_set_lock") && a && b && c && c->type == CN_INT) {
    /* {global_set_lock, Id, Nodes | default, Retries | -1}: the lock is held by cnode_ctl. */
    p->ok = "true", p->fail = "false";
    nodes = ctl_nodes(b, &k, &bad);
    rc = bad ? CN_EINVAL : cn_global_set_lock(self, a, nodes, k, (int)c->v.i, ctl_global_done, p);
  } else if (!strcmp(op, "global_del_lock") && a && b) {
    p->ok = "true", p->fail = "true";
    nodes = ctl_nodes(b, &k, &bad);
    rc = bad ? CN_EINVAL : cn_global_del_lock(self, a, nodes, k, ctl_global_done, p);
  } else if (!strcmp(op, "global_trans") && a && b && c && c->type == CN_INT) {
    /* {global_trans, Id, Nodes | default, Retries}: {Ref, in_trans} while locked, then {Ref, done} | aborted. */
    p->ok = "done", p->fail = "aborted";
    nodes = ctl_nodes(b, &k, &bad);
    rc = bad ? CN_EINVAL : cn_global_trans(self, a, nodes, k, (int)c->v.i, ctl_in_trans, ctl_global_done, p);
  }
  cn_free(nodes);
  if (!rc) return NULL;
  ctl_caller_free(p->caller);
  cn_free(p);
  return cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, cn_err_reason(rc)));
}

/* ---- CRDT commands of cnode_ctl (horde_compat) ------------------------------------------------------------- */

/* The CRDTs cnode_ctl started, by Horde instance name N (the process is 'N.Crdt'). */
typedef struct ctl_crdt {
  char name[256];
  cn_crdt *c;
  struct ctl_crdt *next;
} ctl_crdt;
static ctl_crdt *ctl_crdts;

static cn_crdt *ctl_crdt_find(const char *name) {
  for (ctl_crdt *e = ctl_crdts; e; e = e->next)
    if (!strcmp(e->name, name)) return e->c;
  return NULL;
}

/* The CRDT process ended (a peer's exit signal, a crash, the node stopping): its entry goes with it, or the next
 * crdt_* command would use the freed cn_crdt. Matched by c: a start that failed never had an entry. */
static void ctl_crdt_stopped(cn_crdt *c, void *ctx) {
  (void)ctx;
  for (ctl_crdt **pp = &ctl_crdts; *pp; pp = &(*pp)->next) {
    if ((*pp)->c == c) {
      ctl_crdt *e = *pp;
      *pp = e->next;
      cn_free(e);
      return;
    }
  }
}

static cn_term *ctl_err(cn_node *n, const char *why) {
  return cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, why));
}

/* {crdt_start, N, Opts} | {crdt_set_neighbours, N, [{N2, Node}]} | {crdt_put, N, K, V} | {crdt_delete, N, K} |
 * {crdt_read, N} | {crdt_root, N} | {crdt_stats, N}; see README (Horde CRDT peer). */
static cn_term *ctl_crdt_cmd(cn_proc *self, const char *op, const cn_term *cmd, const ctl_caller *caller, void *ctx) {
  (void)caller, (void)ctx;
  cn_node *n = cn_proc_node(self);
  if (cmd->type != CN_TUPLE) return ctl_unknown(n);
  uint32_t ar = cmd->v.tuple.arity;
  const char *name = ar > 1 ? atom_text(&cmd->v.tuple.e[1]) : NULL;
  const cn_term *a = ar > 2 ? &cmd->v.tuple.e[2] : NULL, *b = ar > 3 ? &cmd->v.tuple.e[3] : NULL;
  if (!name) return ctl_err(n, "badarg");
  cn_crdt *c = ctl_crdt_find(name);
  if (!strcmp(op, "crdt_start") && ar == 3) {
    if (c) return ctl_err(n, "already_started");
    cn_crdt_opts o = {0};
    for (uint32_t i = 0; a->type == CN_LIST && i < a->v.list.len; i++) {
      const cn_term *k = cn_tuple_elem(&a->v.list.e[i], 2, 0), *v = cn_tuple_elem(&a->v.list.e[i], 2, 1);
      if (cn_is_atom(k, "sync_interval") && v->type == CN_INT && v->v.i > 0) o.sync_interval_ms = (unsigned)v->v.i;
      else if (cn_is_atom(k, "max_sync_size") && v->type == CN_INT && v->v.i > 0) o.max_sync_size = (size_t)v->v.i;
      else if (cn_is_atom(k, "max_sync_size") && cn_is_atom(v, "infinite")) o.max_sync_size = 0;
      else if (cn_is_atom(k, "mapset") && cn_is_atom(v, "plain")) o.mapset_shape = CN_CRDT_MAPSET_PLAIN;
      else if (cn_is_atom(k, "mapset") && cn_is_atom(v, "v2")) o.mapset_shape = CN_CRDT_MAPSET_V2;
      else if (cn_is_atom(k, "mapset") && cn_is_atom(v, "auto")) o.mapset_shape = CN_CRDT_MAPSET_AUTO;
      else if (cn_is_atom(k, "count_bytes") && cn_is_atom(v, "true")) o.count_bytes = true;
      else return ctl_err(n, "badarg");
    }
    ctl_crdt *e = cn_calloc(1, sizeof *e);
    if (!e) return ctl_err(n, "enomem");
    snprintf(e->name, sizeof e->name, "%s", name);
    o.on_stop = ctl_crdt_stopped;
    int rc = cn_crdt_start(n, name, &o, &e->c);
    if (rc) {
      cn_free(e);
      return ctl_err(n, cn_err_reason(rc));
    }
    e->next = ctl_crdts;
    ctl_crdts = e;
    return cn_mk_atomc(n, "ok");
  }
  if (!c) return ctl_err(n, "not_started");
  int rc = CN_EINVAL;
  if (!strcmp(op, "crdt_set_neighbours") && ar == 3 && (a->type == CN_LIST || a->type == CN_NIL)) {
    /* members {N2, Node} -> CRDT name tuples {'N2.Crdt', Node}, as Horde's Impl maps them */
    size_t k = a->type == CN_LIST ? a->v.list.len : 0;
    cn_term **v = cn_calloc(k + 1, sizeof *v);
    bool bad = !v;
    for (size_t i = 0; !bad && i < k; i++) {
      const char *n2 = atom_text(cn_tuple_elem(&a->v.list.e[i], 2, 0));
      const cn_term *node = cn_tuple_elem(&a->v.list.e[i], 2, 1);
      char full[CN_ATOM_MAX_BYTES + sizeof ".Crdt"]; /* N2 is an atom: never truncated */
      if (!n2 || !node || node->type != CN_ATOM) {
        bad = true;
        break;
      }
      snprintf(full, sizeof full, "%s.Crdt", n2);
      cn_term *dest = cn_mk_atomc(n, full); /* NULL past 255 characters */
      if (!dest) {
        bad = true;
        break;
      }
      if (!(v[i] = cn_mk_tuple(2, dest, cn_term_copy(node)))) bad = true;
    }
    if (!bad) rc = cn_crdt_set_neighbours(c, (const cn_term *const *)v, k);
    for (size_t i = 0; v && i < k; i++) cn_term_free(v[i]);
    cn_free(v);
  } else if (!strcmp(op, "crdt_put") && ar == 4) {
    rc = cn_crdt_put(c, a, b);
  } else if (!strcmp(op, "crdt_delete") && ar == 3) {
    rc = cn_crdt_delete(c, a);
  } else if (!strcmp(op, "crdt_read") && ar == 2) {
    cn_term *m = cn_crdt_read(c);
    return m ? m : ctl_err(n, "enomem");
  } else if (!strcmp(op, "crdt_root") && ar == 2) {
    uint8_t h[4];
    return cn_crdt_root(c, h) ? cn_mk_binary(h, 4) : cn_mk_binary("", 0);
  } else if (!strcmp(op, "crdt_stats") && ar == 2) {
    cn_term *m = cn_crdt_stats_term(c);
    return m ? m : ctl_err(n, "enomem");
  }
  return rc ? ctl_err(n, cn_err_reason(rc)) : cn_mk_atomc(n, "ok");
}

/* {send, Dest, Msg}: the node sends Msg to Dest (a pid, a name or {Name, Node}) -> ok. */
static cn_term *ctl_send(cn_proc *self, const char *op, const cn_term *cmd, const ctl_caller *caller, void *ctx) {
  (void)op, (void)caller, (void)ctx;
  cn_node *n = cn_proc_node(self);
  if (!cn_tuple_elem(cmd, 3, 0)) return ctl_unknown(n);
  int rc = cn_send_to(n, self, cn_tuple_elem(cmd, 3, 1), cn_tuple_elem(cmd, 3, 2));
  return rc ? cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, cn_err_reason(rc))) : cn_mk_atomc(n, "ok");
}

/* {start_kv, Name} -> {ok, Pid}: a new cnode_kv gen_server registered as Name. */
static cn_term *ctl_start_kv(cn_proc *self, const char *op, const cn_term *cmd, const ctl_caller *caller, void *ctx) {
  (void)op, (void)caller, (void)ctx;
  cn_node *n = cn_proc_node(self);
  const char *name = atom_text(cn_tuple_elem(cmd, 2, 1));
  if (!name) return ctl_unknown(n);
  cn_pid pid;
  int rc = kv_start(n, name, &pid);
  return rc ? cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, cn_err_reason(rc)))
            : cn_mk_tuple(2, cn_mk_atomc(n, "ok"), cn_mk_pid(pid));
}

/* stats -> #{Counter => N}: the node's limit counters. */
static cn_term *ctl_stats(cn_proc *self, const char *op, const cn_term *cmd, const ctl_caller *caller, void *ctx) {
  (void)op, (void)caller, (void)ctx;
  cn_node *n = cn_proc_node(self);
  if (cmd->type != CN_ATOM) return ctl_unknown(n);
  cn_node_stats st;
  cn_node_get_stats(n, &st);
  const struct {
    const char *k;
    uint64_t v;
  } f[] = {{"handshake_timeouts", st.handshake_timeouts},
           {"handshake_failures", st.handshake_failures},
           {"connections_refused", st.connections_refused},
           {"protocol_errors", st.protocol_errors},
           {"oversized_messages", st.oversized_messages},
           {"atoms_refused", st.atoms_refused},
           {"busy_suspensions", st.busy_suspensions},
           {"messages_dropped", st.messages_dropped},
           {"tick_timeouts", st.tick_timeouts}};
  enum { NF = sizeof f / sizeof f[0] };
  cn_term *kv[2 * NF];
  for (size_t i = 0; i < NF; i++) {
    kv[2 * i] = cn_mk_atomc(n, f[i].k);
    kv[2 * i + 1] = cn_mk_int((int64_t)f[i].v);
  }
  return cn_mk_map(NF, kv);
}

/* otp_release -> {Release, known | default}: the OTP release whose term semantics the node follows, and whether it
 * is settled (set by --otp-release or learned from a peer) or still the default. */
static cn_term *ctl_otp_release(cn_proc *self, const char *op, const cn_term *cmd, const ctl_caller *caller,
                                void *ctx) {
  (void)op, (void)caller, (void)ctx;
  cn_node *n = cn_proc_node(self);
  if (cmd->type != CN_ATOM) return ctl_unknown(n);
  return cn_mk_tuple(2, cn_mk_int(cn_node_otp_release(n)),
                     cn_mk_atomc(n, cn_node_otp_release_known(n) ? "known" : "default"));
}

/* nodes -> [Node]: the connected nodes (hidden ones too), the first 256. */
static cn_term *ctl_nodes_cmd(cn_proc *self, const char *op, const cn_term *cmd, const ctl_caller *caller, void *ctx) {
  (void)op, (void)caller, (void)ctx;
  cn_node *n = cn_proc_node(self);
  if (cmd->type != CN_ATOM) return ctl_unknown(n);
  const cn_atom *names[256];
  size_t k = cn_nodes(n, CN_NODES_ALL, names, 256);
  cn_term *elems[256];
  for (size_t i = 0; i < k && i < 256; i++) elems[i] = cn_mk_atom(names[i]);
  return cn_mk_listv(k < 256 ? k : 256, elems, NULL);
}

int workers_start(cn_node *n) {
  cn_pid pid;
  int rc;
  if ((rc = cn_spawn(n, echo, NULL, NULL, &pid)) || (rc = cn_register(n, "echo", pid))) return rc;
  if ((rc = kv_start(n, "cnode_kv", NULL))) return rc;
  if ((rc = ctl_register_cmd("send", ctl_send, NULL)) || (rc = ctl_register_cmd("start_kv", ctl_start_kv, NULL)) ||
      (rc = ctl_register_cmd("stats", ctl_stats, NULL)) || (rc = ctl_register_cmd("nodes", ctl_nodes_cmd, NULL)) ||
      (rc = ctl_register_cmd("otp_release", ctl_otp_release, NULL)) ||
      (rc = ctl_register_cmd("global_*", ctl_global, NULL)) || (rc = ctl_register_cmd("crdt_*", ctl_crdt_cmd, NULL)) ||
      (rc = ctl_start(n)))
    return rc;
  if ((rc = cn_register_entry(n, "cnode_demo", "echo", echo_entry, NULL)) ||
      (rc = cn_register_entry(n, "cnode_demo", "puppet", puppet_entry, NULL)))
    return rc;
  return 0;
}
