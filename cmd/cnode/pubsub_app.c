/* pubsub_app.c: --pg and --pubsub NAME for the cnode program, the demo echo subscriber (every message on
 * "cnode:echo" comes back as {echo, node(), Msg} on "cnode:echo:reply") and cnode_ctl's pg_* / pubsub_* commands,
 * whose C processes are echo processes (pg_join) and recorders (pubsub_subscribe: they keep what they get). */
#include <string.h>

#include "cn_pg.h"
#include "cn_pubsub.h"
#include "ctl.h"
#include "horde_app.h"
#include "ops.h"
#include "pubsub_app.h"
#include "workers.h"

enum { MAX_NAMES = 16 };
static char scopes[MAX_NAMES][256], pubsubs[MAX_NAMES][256];
static size_t nscopes, npubsubs;

int pgapp_add_scope(const char *scope) {
  if (!scope[0] || nscopes == MAX_NAMES || strlen(scope) >= sizeof scopes[0]) return -1;
  strcpy(scopes[nscopes++], scope);
  return 0;
}

int pgapp_add_pubsub(const char *name) {
  if (!name[0] || npubsubs == MAX_NAMES || horde_atom_name(name, pubsubs[npubsubs], 200)) return -1;
  npubsubs++;
  return 0;
}

static bool scope_known(const char *scope) {
  for (size_t i = 0; i < nscopes; i++)
    if (!strcmp(scopes[i], scope)) return true;
  return false;
}

/* ---- The echo subscriber ------------------------------------------------------------------------------------------ */

static void echo_sub(cn_proc *self, const cn_term *msg, void *state) {
  cn_node *n = cn_proc_node(self);
  cn_term *reply = cn_mk_tuple(3, cn_mk_atomc(n, "echo"), cn_mk_atom(cn_node_name(n)), cn_term_copy(msg));
  int rc = reply ? cn_pubsub_broadcast(n, state, "cnode:echo:reply", reply) : CN_ENOMEM;
  if (rc) cn_log(n, CN_LOG_WARN, "pubsub echo: cannot broadcast: %s", cn_strerror(rc));
  cn_term_free(reply);
}

/* ---- Recorders: C subscribers that keep every message -------------------------------------------------------------- */

static cn_term *err(cn_node *n, const char *why) {
  return cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, why));
}
static cn_term *err_rc(cn_node *n, int rc) { return err(n, cn_err_reason(rc)); }

typedef struct recorder {
  struct recorder *next;
  cn_pid pid;
  cn_term **msgs;
  size_t n, cap;
} recorder;
static recorder *recorders;

static void rec_msg(cn_proc *self, const cn_term *msg, void *state) {
  recorder *r = state;
  cn_term *mon = NULL;
  const cn_term *scope = cn_tuple_elem(msg, 3, 1), *group = cn_tuple_elem(msg, 3, 2);
  if (cn_is_atom(cn_tuple_elem(msg, 3, 0), "$pg_monitor") && scope->type == CN_ATOM) {
    /* pg_monitor's request: monitor the scope (group '$scope') or the group; kept as {monitoring, Ref, Now} */
    cn_ref ref;
    cn_term *now = NULL;
    cn_node *n = cn_proc_node(self);
    int rc = cn_pg_monitor(self, scope->v.atom->name, cn_is_atom(group, "$scope") ? NULL : group, &ref, &now);
    msg = mon = rc ? err_rc(n, rc) : cn_mk_tuple(3, cn_mk_atomc(n, "monitoring"), cn_mk_ref(ref), now);
    if (!mon) return;
  }
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 8;
    cn_term **m = cn_realloc(r->msgs, cap * sizeof *m);
    if (!m) return;
    r->msgs = m;
    r->cap = cap;
  }
  if ((r->msgs[r->n] = cn_term_copy(msg))) r->n++;
  cn_term_free(mon);
}

static void rec_end(cn_proc *self, const cn_term *reason, void *state) {
  (void)self;
  (void)reason;
  recorder *r = state;
  for (recorder **x = &recorders; *x; x = &(*x)->next)
    if (*x == r) {
      *x = r->next;
      break;
    }
  for (size_t i = 0; i < r->n; i++) cn_term_free(r->msgs[i]);
  cn_free(r->msgs);
  cn_free(r);
}

static int rec_spawn(cn_node *n, cn_pid *pid) {
  recorder *r = cn_calloc(1, sizeof *r);
  cn_proc_opts o = {.terminate = rec_end};
  if (!r) return CN_ENOMEM;
  int rc = cn_spawn(n, rec_msg, r, &o, &r->pid);
  if (rc) {
    cn_free(r);
    return rc;
  }
  r->next = recorders;
  recorders = r;
  *pid = r->pid;
  return 0;
}

/* ---- cnode_ctl commands --------------------------------------------------------------------------------------------- */

static cn_term *ok_pid(cn_node *n, cn_pid p) { return cn_mk_tuple(2, cn_mk_atomc(n, "ok"), cn_mk_pid(p)); }
static cn_term *ok_or(cn_node *n, int rc) { return rc ? err_rc(n, rc) : cn_mk_atomc(n, "ok"); }

/* A binary topic as a C string (NULL when it is not a binary or holds a NUL). */
static char *topic_str(const cn_term *t) {
  if (!t || t->type != CN_BINARY || t->v.bin.bits != 8 || memchr(t->v.bin.data, 0, t->v.bin.size)) return NULL;
  return cn_strndup(t->v.bin.size ? (const char *)t->v.bin.data : "", t->v.bin.size);
}

static cn_term *pg_cmd(cn_proc *self, const char *op, const cn_term *cmd, const ctl_caller *caller, void *ctx) {
  (void)caller;
  (void)ctx;
  cn_node *n = cn_proc_node(self);
  uint32_t ar = cmd->type == CN_TUPLE ? cmd->v.tuple.arity : 0;
  const cn_term *e = ar ? cmd->v.tuple.e : NULL;
  if (ar < 3 || e[1].type != CN_ATOM) return ctl_unknown(n);
  const char *scope = e[1].v.atom->name;
  if (!strcmp(op, "pg_join") && ar == 3) {
    cn_pid pid;
    int rc = cn_pg_running(n, scope) ? 0 : cn_pg_start(n, scope);
    if (!rc && !scope_known(scope)) pgapp_add_scope(scope); /* for /metrics (a full table: not counted there) */
    if (!rc && !(rc = workers_spawn_echo(n, &pid)) && (rc = cn_pg_join(n, scope, &e[2], pid))) {
      cn_term kill = cn_tv_atom(cn_intern(n, "kill"));
      cn_exit(n, NULL, pid, &kill);
    }
    return rc ? err_rc(n, rc) : ok_pid(n, pid);
  }
  if (!strcmp(op, "pg_leave") && ar == 4 && e[3].type == CN_PID) {
    int rc = cn_pg_leave(n, scope, &e[2], e[3].v.pid);
    return rc == CN_ENOTFOUND ? cn_mk_atomc(n, "not_joined") : ok_or(n, rc);
  }
  if (!strcmp(op, "pg_monitor") && ar == 3) { /* {pg_monitor, Scope, Group | '$scope'}: a recorder that monitors */
    cn_pid pid;
    cn_term *req = cn_mk_tuple(3, cn_mk_atomc(n, "$pg_monitor"), cn_term_copy(&e[1]), cn_term_copy(&e[2]));
    int rc = req ? rec_spawn(n, &pid) : CN_ENOMEM;
    if (!rc) rc = cn_send(n, NULL, pid, req);
    cn_term_free(req);
    return rc ? err_rc(n, rc) : ok_pid(n, pid);
  }
  if (!strcmp(op, "pg_members") && ar == 3) {
    cn_term *m = cn_pg_members_term(n, scope, &e[2], false);
    return m ? m : cn_mk_nil(); /* a scope not running has no members, as pg:get_members says */
  }
  return ctl_unknown(n);
}

static recorder *rec_find(cn_pid pid) {
  for (recorder *r = recorders; r; r = r->next)
    if (cn_pid_eq(r->pid, pid)) return r;
  return NULL;
}

/* {pubsub_received, Pid}, then the commands on a pubsub: {pubsub_subscribe | pubsub_unsubscribe, PubSub, Topic[,
 * Pid]}, {pubsub_broadcast | pubsub_local_broadcast, PubSub, Topic, Msg}, {pubsub_broadcast_from, PubSub, Pid,
 * Topic, Msg}, {pubsub_direct_broadcast, PubSub, Node, Topic, Msg}. */
static cn_term *pubsub_cmd(cn_proc *self, const char *op, const cn_term *cmd, const ctl_caller *caller, void *ctx) {
  (void)caller;
  (void)ctx;
  cn_node *n = cn_proc_node(self);
  uint32_t ar = cmd->type == CN_TUPLE ? cmd->v.tuple.arity : 0;
  const cn_term *e = ar ? cmd->v.tuple.e : NULL;
  if (!strcmp(op, "pubsub_received") && ar == 2 && e[1].type == CN_PID) {
    recorder *r = rec_find(e[1].v.pid);
    if (!r) return err(n, "no_such_recorder");
    cn_term **c = cn_malloc((r->n ? r->n : 1) * sizeof *c);
    for (size_t i = 0; c && i < r->n; i++) c[i] = cn_term_copy(r->msgs[i]);
    cn_term *l = c ? cn_mk_listv(r->n, c, NULL) : NULL;
    cn_free(c);
    return l;
  }
  char ps[256];
  if (ar < 3 || e[1].type != CN_ATOM || horde_atom_name(e[1].v.atom->name, ps, sizeof ps)) return ctl_unknown(n);
  if (!cn_pubsub_pool_size(n, ps)) return err(n, "no_such_pubsub");
  bool from = !strcmp(op, "pubsub_broadcast_from"), direct = !strcmp(op, "pubsub_direct_broadcast");
  const cn_term *who = from || direct ? &e[2] : NULL;
  char *topic = topic_str(&e[who ? 3 : 2]);
  if (!topic) return err(n, "badarg");
  cn_term *res = NULL;
  int rc;
  if (!strcmp(op, "pubsub_subscribe") && ar == 3) {
    cn_pid pid;
    res = (rc = rec_spawn(n, &pid)) || (rc = cn_pubsub_subscribe(n, ps, topic, pid)) ? err_rc(n, rc) : ok_pid(n, pid);
  } else if (!strcmp(op, "pubsub_unsubscribe") && ar == 4 && e[3].type == CN_PID) {
    res = ok_or(n, cn_pubsub_unsubscribe(n, ps, topic, e[3].v.pid));
  } else if (!strcmp(op, "pubsub_broadcast") && ar == 4) {
    res = ok_or(n, cn_pubsub_broadcast(n, ps, topic, &e[3]));
  } else if (!strcmp(op, "pubsub_local_broadcast") && ar == 4) {
    res = ok_or(n, cn_pubsub_local_broadcast(n, ps, topic, &e[3]));
  } else if (from && ar == 5 && who->type == CN_PID) {
    res = ok_or(n, cn_pubsub_broadcast_from(n, who->v.pid, ps, topic, &e[4]));
  } else if (direct && ar == 5 && who->type == CN_ATOM) {
    res = ok_or(n, cn_pubsub_direct_broadcast(n, who->v.atom, ps, topic, &e[4]));
  } else {
    res = ctl_unknown(n);
  }
  cn_free(topic);
  return res;
}

/* ---- Operations: /metrics' pg members, and SIGTERM's leave of every group ------------------------------------------ */

static void pg_metrics(cn_node *n, metrics_out *m, void *ctx) {
  (void)ctx;
  metrics_family(m, "pg_members", "gauge", "Members of each pg group, on all nodes (pg:get_members/2)");
  for (size_t i = 0; i <= nscopes; i++) {
    const char *scope = i < nscopes ? scopes[i] : npubsubs ? CN_PUBSUB_SCOPE : NULL;
    if (!scope || (i == nscopes && scope_known(scope))) continue;
    cn_term *groups = cn_pg_which_groups(n, scope, false);
    uint32_t len = groups && groups->type == CN_LIST ? groups->v.list.len : 0; /* [] is CN_NIL */
    for (uint32_t k = 0; k < len; k++) {
      size_t count = 0;
      cn_pid *pids = NULL;
      if (cn_pg_members(n, scope, &groups->v.list.e[k], false, &pids, &count)) continue;
      cn_free(pids);
      char *name = cn_term_to_string(&groups->v.list.e[k]);
      const char *labels[] = {"scope", scope, "group", name ? name : "?", NULL};
      metrics_sample(m, "pg_members", (double)count, labels);
      cn_free(name);
    }
    cn_term_free(groups);
  }
}

static void pg_leave_step(cn_node *n, void (*done)(void *), void *done_ctx, void *ctx) {
  (void)ctx;
  int left = cn_pg_leave_all(n, NULL);
  cn_log(n, CN_LOG_INFO, "shutdown: %d pg memberships left", left);
  done(done_ctx);
}

int pgapp_start(cn_node *n) {
  int rc = ctl_register_cmd("pg_*", pg_cmd, NULL);
  if (!rc) rc = metrics_add_source(pg_metrics, NULL);
  if (!rc) rc = ops_add_step(OPS_GROUPS, "leaving pg groups", pg_leave_step, NULL);
  if (!rc) rc = ctl_register_cmd("pubsub_*", pubsub_cmd, NULL);
  for (size_t i = 0; !rc && i < nscopes; i++)
    if (!cn_pg_running(n, scopes[i]) && !(rc = cn_pg_start(n, scopes[i])))
      cn_log(n, CN_LOG_INFO, "pg scope %s started", scopes[i]);
  for (size_t i = 0; !rc && i < npubsubs; i++) {
    cn_pid echo;
    if ((rc = cn_pubsub_start(n, pubsubs[i], 0)) || (rc = cn_spawn(n, echo_sub, pubsubs[i], NULL, &echo)) ||
        (rc = cn_pubsub_subscribe(n, pubsubs[i], "cnode:echo", echo)))
      break;
    cn_log(n, CN_LOG_INFO, "joined Phoenix.PubSub %s; echo subscribed to \"cnode:echo\"", pubsubs[i]);
  }
  return rc;
}
