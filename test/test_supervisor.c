/* test_supervisor.c: the C Horde.DynamicSupervisor member (horde.h, supervisor.c) on C nodes in threads with a
 * real OTP epmd. Three nodes cnode1..3 share Elixir.MyApp.Sup: 50 C children placed by the ring the same way on
 * every node, terminate_child direct and proxied, a node's loss moving its children without duplicates; restarts
 * per restart type; calls as a BEAM caller makes them (alias tags, proxy_operation with and without a TTL,
 * which_children/count_children on 'N.ProcessesSupervisor'); Elixir children refused; recovery rules 5-7; a
 * graceful shutdown handing children over through relinquished entries. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cnode.h"
#include "horde.h"
#include "hc_rules.h"
#include "testutil.h"
#include "tnode.h"
#include "tsup.h"

#define SUP TSUP_NAME
#define MOD "Elixir.MyApp.CCounter"
#define SYNC_MS 100

/* A node with the supervisor (tnode.user points here). */
typedef struct snode {
  tnode t;
  cn_horde_sup *sup;
  int shutdown_done;
} snode;

/* ---- The C worker MyApp.CCounter: a gen_server holding N --------------------------------------------------------- */

/* get -> N; {add, K} -> N + K; {die, Reason} (a plain message): exits with Reason. */
static cn_term *ctr_call(cn_proc *self, const cn_term *req, const cn_term *from, void *state) {
  (void)from;
  int64_t *v = state;
  const cn_term *k = cn_tuple_elem(req, 2, 1);
  if (k && k->type == CN_INT && cn_is_atom(cn_tuple_elem(req, 2, 0), "add")) *v += k->v.i;
  return cn_is_atom(req, "get") || k ? cn_mk_int(*v) : cn_mk_atomc(cn_proc_node(self), "badarg");
}
static void ctr_info(cn_proc *self, const cn_term *msg, void *state) {
  (void)state;
  if (cn_is_atom(cn_tuple_elem(msg, 2, 0), "die")) cn_proc_exit(self, cn_tuple_elem(msg, 2, 1));
}
static void ctr_end(cn_proc *self, const cn_term *reason, void *state) {
  (void)self, (void)reason;
  cn_free(state);
}
static const cn_gen_server_ops ctr_ops = {.handle_call = ctr_call, .handle_info = ctr_info, .terminate = ctr_end};

/* start_link([N]): the entry point of MOD. N < 0: refused with CN_ELIMIT and no reason term (the member answers
 * with the status's reason). */
static int ctr_start(cn_node *n, const cn_atom *fun, const cn_term *args, void *ctx, cn_pid *pid, cn_term **error) {
  (void)ctx;
  const cn_term *a = args->type == CN_LIST && args->v.list.len == 1 ? &args->v.list.e[0] : NULL;
  if (strcmp(fun->name, "start_link") || !a || a->type != CN_INT) {
    *error = cn_mk_atomc(n, "badarg");
    return CN_EINVAL;
  }
  if (a->v.i < 0) return CN_ELIMIT;
  int64_t *v = cn_malloc(sizeof *v);
  if (!v) return CN_ENOMEM;
  *v = a->v.i;
  int rc = cn_gen_server_start(n, NULL, &ctr_ops, v, pid);
  if (rc) cn_free(v);
  return rc;
}

/* ---- Nodes and calls --------------------------------------------------------------------------------------------- */

static void on_done(cn_horde_sup *s, void *ctx) {
  (void)s;
  snode *x = ctx;
  pthread_mutex_lock(&x->t.mu);
  x->shutdown_done++;
  pthread_cond_broadcast(&x->t.cv);
  pthread_mutex_unlock(&x->t.mu);
}

/* drv: {connect, Node} -> ok; shutdown -> ok (cn_horde_supervisor_shutdown); count -> local children. */
static cn_term *drv(cn_proc *self, const cn_term *req, const cn_term *from, void *state) {
  (void)from;
  snode *x = state;
  cn_node *n = cn_proc_node(self);
  cn_term *reply = NULL;
  const cn_term *arg = cn_tuple_elem(req, 2, 1);
  if (arg && cn_is_atom(cn_tuple_elem(req, 2, 0), "connect"))
    reply = cn_mk_atomc(n, cn_node_connect(n, arg->v.atom) ? "error" : "ok");
  else if (cn_is_atom(req, "shutdown"))
    reply = cn_mk_atomc(n, cn_horde_supervisor_shutdown(x->sup, on_done, x) ? "error" : "ok");
  else if (cn_is_atom(req, "count")) reply = cn_mk_int((int64_t)cn_horde_supervisor_count(x->sup));
  return reply ? reply : cn_mk_atomc(n, "badreq");
}

static const cn_gen_server_ops drv_ops = {.handle_call = drv};

static void node_up(snode *x, const char *name, const char *const *members, size_t nmembers) {
  cn_node_opts o = {
      .name = name, .cookie = "secret", .epmd_port = test_epmd_port, .listen_addr = "127.0.0.1", .net_ticktime_s = 4};
  memset(x, 0, sizeof *x);
  tnode_new(&x->t, &o);
  x->t.user = x;
  cn_horde_sup_opts so = {
      .members = members, .nmembers = nmembers, .max_restarts = 5, .crdt = {.sync_interval_ms = SYNC_MS}};
  assert_int_equal(cn_horde_supervisor_start(x->t.n, SUP, &so, &x->sup), 0);
  assert_int_equal(cn_horde_entry(x->sup, MOD, ctr_start, NULL), 0);
  assert_int_equal(cn_horde_entry(x->sup, MOD, ctr_start, NULL), CN_EEXIST);
  assert_int_equal(cn_gen_server_start(x->t.n, "drv", &drv_ops, x, NULL), 0);
  tnode_run_ready(&x->t);
}

static cn_term *A(snode *x, const char *a) { return cn_mk_atomc(x->t.n, a); }
static cn_term *call(snode *x, const char *name, const char *node, cn_term *req) {
  return tsup_call(x->t.n, name, node, req);
}
static cn_term *sup_call(snode *x, cn_term *req) { return call(x, SUP, NULL, req); }
static cn_term *spec(snode *x, int64_t i, const char *restart, bool c) { return tsup_spec(x->t.n, MOD, i, restart, c); }
static cn_term *start_child(snode *x, cn_term *sp) { return sup_call(x, cn_mk_tuple(2, A(x, "start_child"), sp)); }
static tsup_at at(snode *x) { return (tsup_at){x->t.n, NULL}; }
static int64_t child_get(snode *via, cn_pid p) { return tsup_get(via->t.n, p); }

/* Sends a child {die, Reason} (Reason taken). */
static void child_die(snode *via, cn_pid p, cn_term *reason) {
  p.node = cn_intern(via->t.n, p.node->name);
  assert_int_equal(cn_send_threadsafe(via->t.n, &p, NULL, NULL, cn_mk_tuple(2, A(via, "die"), reason)), 0);
}

/* Each node reading its own CRDT. */
static void ats(snode *xs, int k, tsup_at *out) {
  for (int i = 0; i < k; i++) out[i] = at(&xs[i]);
}
static long wait_agree(snode *xs, int k, int want, const char *restart) {
  tsup_at a[3];
  ats(xs, k, a);
  return tsup_wait_agree(a, k, want, MOD, restart, 8000);
}
static bool agree(snode *xs, int k, int want, const char *restart) {
  tsup_at a[3];
  ats(xs, k, a);
  return tsup_agree(a, k, want, MOD, restart, true);
}
static void wait_members(snode *xs, int k, int alive) {
  tsup_at a[3];
  ats(xs, k, a);
  tsup_wait_alive(a, k, alive, 8000);
}

static void mesh(snode *xs, int k) {
  for (int i = 0; i < k; i++)
    for (int j = i + 1; j < k; j++) {
      cn_term *r = call(&xs[i], "drv", NULL, cn_mk_tuple(2, A(&xs[i], "connect"), A(&xs[i], xs[j].t.name)));
      cn_term_free(r);
    }
  wait_members(xs, k, k);
}

static int64_t local_count(snode *x, const char *node) { return tsup_count((tsup_at){x->t.n, node}); }

static const char *const NODES[3] = {"cnode1@127.0.0.1", "cnode2@127.0.0.1", "cnode3@127.0.0.1"};

/* ---- Three nodes: placement, terminate_child, a node's loss
 * ----------------------------------------------------------- */

static void test_placement(void **st) {
  (void)st;
  static snode xs[3];
  for (int i = 0; i < 3; i++) node_up(&xs[i], NODES[i], NULL, 0);
  mesh(xs, 3);
  tsup_view v0;
  tsup_view_of(at(&xs[0]), &v0);
  cn_pid pids[51];
  long t0 = now_ms();
  for (int i = 1; i <= 50; i++) {
    snode *x = &xs[i % 3];
    pids[i] = tsup_started(start_child(x, spec(x, i, "permanent", true)));
    assert_string_equal(pids[i].node->name, tsup_owner(x->t.n, &v0, MOD, i, "permanent"));
  }
  long dt = now_ms() - t0;
  tsup_view_free(&v0);
  long settle = wait_agree(xs, 3, 50, "permanent");
  print_message("  50 start_child calls (round robin, most proxied) in %ld ms; every CRDT agrees %ld ms later\n", dt,
                settle);
  int64_t sum = 0;
  for (int j = 0; j < 3; j++) sum += local_count(&xs[0], NODES[j]);
  assert_int_equal(sum, 50);
  assert_int_equal(child_get(&xs[1], pids[7]), 7);
  cn_term *srv = tsup_pid(xs[1].t.n, pids[7]), *req = cn_mk_tuple(2, A(&xs[1], "add"), cn_mk_int(5)), *r = NULL;
  assert_int_equal(cn_call_sync(xs[1].t.n, srv, req, 2000, &r), 0);
  assert_int_equal(r->v.i, 12);
  cn_term_free(srv);
  cn_term_free(req);
  cn_term_free(r);
  assert_int_equal(tsup_which(xs[0].t.n, NODES, 3, MOD), 50);

  /* terminate_child: on the owner, and through another member (proxied to the owner) */
  for (int i = 1; i <= 2; i++) {
    int on = pids[i].node->name[5] - '1', via = i == 1 ? on : (on + 1) % 3;
    r = sup_call(&xs[via], cn_mk_tuple(2, A(&xs[via], "terminate_child"), tsup_pid(xs[via].t.n, pids[i])));
    tsup_expect_atom(r, "ok");
    cn_term_free(r);
    assert_int_equal(child_get(&xs[0], pids[i]), -1);
  }
  r = sup_call(&xs[0], cn_mk_tuple(2, A(&xs[0], "terminate_child"), tsup_pid(xs[0].t.n, pids[1])));
  assert_true(cn_is_atom(cn_tuple_elem(r, 2, 1), "not_found"));
  cn_term_free(r);
  wait_agree(xs, 3, 48, "permanent");

  /* cnode3 goes away: its children move to cnode1 and cnode2, once each */
  tsup_view v;
  tsup_view_of(at(&xs[0]), &v);
  int moved = 0;
  for (int e = 0; e < v.n; e++) moved += !strcmp(v.p[e].owner, NODES[2]);
  tsup_view_free(&v);
  long tk = now_ms();
  tnode_stop(&xs[2].t);
  wait_members(xs, 2, 2); /* both see cnode3 gone, then: */
  wait_agree(xs, 2, 48, "permanent");
  long took = now_ms() - tk;
  print_message("  cnode3 stopped: its %d children run on cnode1/cnode2 after %ld ms\n", moved, took);
  sleep_ms(1500); /* past the orphan rule's hold: still no duplicate */
  assert_true(agree(xs, 2, 48, "permanent"));
  assert_int_equal(local_count(&xs[0], NODES[0]) + local_count(&xs[0], NODES[1]), 48);
  for (int i = 3; i <= 50; i++) {
    tsup_view_of(at(&xs[0]), &v);
    const tsup_ent *p = tsup_find(&v, i);
    assert_non_null(p);
    assert_int_equal(child_get(&xs[0], p->pid), i);
    tsup_view_free(&v);
  }
  for (int i = 0; i < 2; i++) tnode_stop(&xs[i].t);
}

/* ---- Restarts per restart type (one node) ------------------------------------------------------------------------ */

/* Waits until the entry with start argument i has a pid other than old (true) or is gone (false). */
static bool wait_new_pid(snode *x, int64_t i, cn_pid old, cn_term **id) {
  long t0 = now_ms();
  for (;;) {
    tsup_view v;
    tsup_view_of(at(x), &v);
    const tsup_ent *p = tsup_find(&v, i);
    bool changed = p && !tsup_pid_eq(p->pid, old), gone = !p;
    if (changed && id) *id = cn_term_copy(p->id);
    tsup_view_free(&v);
    if (changed || gone) return changed;
    assert_true(now_ms() - t0 < 5000);
    sleep_ms(10);
  }
}

static cn_pid pid_of(snode *x, int64_t i, cn_term **id) {
  tsup_view v;
  tsup_view_of(at(x), &v);
  const tsup_ent *p = tsup_find(&v, i);
  assert_non_null(p);
  cn_pid r = p->pid;
  if (id) *id = cn_term_copy(p->id);
  tsup_view_free(&v);
  return r;
}

/* Kills the child of start argument i with reason (taken); returns whether it came back (same Id, new pid). */
static bool kill_child(snode *x, int64_t i, cn_term *reason) {
  cn_term *id0 = NULL, *id1 = NULL;
  cn_pid p = pid_of(x, i, &id0);
  child_die(x, p, reason);
  bool back = wait_new_pid(x, i, p, &id1);
  if (back) {
    assert_true(cn_term_exact_eq(id0, id1)); /* {process, Id} rewritten with the new pid */
    assert_int_equal(child_get(x, pid_of(x, i, NULL)), i);
  }
  cn_term_free(id0);
  cn_term_free(id1);
  return back;
}

static void test_restarts(void **st) {
  (void)st;
  static snode x;
  node_up(&x, NODES[0], NULL, 0);
  const char *types[] = {"permanent", "transient", "temporary", "transient", "permanent", "transient", "permanent"};
  for (int i = 1; i <= 7; i++) tsup_started(start_child(&x, spec(&x, i, types[i - 1], true)));
  assert_true(kill_child(&x, 1, A(&x, "boom")));    /* permanent: any exit */
  assert_true(kill_child(&x, 2, A(&x, "boom")));    /* transient: an abnormal exit */
  assert_false(kill_child(&x, 3, A(&x, "boom")));   /* temporary: never, and the key goes */
  assert_false(kill_child(&x, 4, A(&x, "normal"))); /* transient: a normal exit removes it */
  assert_true(kill_child(&x, 5, A(&x, "normal")));  /* permanent: even a normal one */
  assert_false(kill_child(&x, 6, cn_mk_tuple(2, A(&x, "shutdown"), A(&x, "bye")))); /* transient, {shutdown, _} */
  /* max_restarts (5 here) within max_seconds: the sixth exit drops the child */
  for (int k = 0; k < 5; k++) assert_true(kill_child(&x, 7, A(&x, "boom")));
  assert_false(kill_child(&x, 7, A(&x, "boom")));
  assert_true(tnode_wait(&x.t, tnode_log_has, "gave up restarting"));
  assert_int_equal(local_count(&x, NULL), 3);
  tsup_view v;
  tsup_view_of(at(&x), &v);
  assert_int_equal(v.n, 3);
  tsup_view_free(&v);
  tnode_stop(&x.t);
}

/* ---- Calls as BEAM members make them ----------------------------------------------------------------------------- */

/* beam1: a visible node that does not run the supervisor but has a process named SUP that records what it gets
 * (in its collector) and answers proxied calls {error, beam_dummy}. */
static void dummy(cn_proc *self, const cn_term *msg, void *state) {
  tnode *t = state;
  cn_send(cn_proc_node(self), self, t->collector, msg);
  const cn_term *from = cn_tuple_elem(msg, 3, 2) ? cn_tuple_elem(msg, 3, 2) : cn_tuple_elem(msg, 4, 2);
  if (!from) return;
  cn_term *r = cn_mk_tuple(2, cn_mk_atomc(cn_proc_node(self), "error"), cn_mk_atomc(cn_proc_node(self), "beam_dummy"));
  cn_gen_reply(self, from, r);
  cn_term_free(r);
}

/* Sends {proxy_operation, Req, {Collector of `to`, Tag}[, Ttl]} from to's collector to {SUP, node}; the reply lands
 * in to's collector as {Tag, Reply}. */
static void proxy_op(snode *to, const char *node, cn_term *req, int tag, int ttl) {
  cn_node *n = to->t.n;
  cn_term *from = cn_mk_tuple(2, cn_mk_pid(to->t.collector), cn_mk_int(tag));
  cn_term *m = ttl < 0 ? cn_mk_tuple(3, A(to, "proxy_operation"), req, from)
                       : cn_mk_tuple(4, A(to, "proxy_operation"), req, from, cn_mk_int(ttl));
  assert_int_equal(cn_send_threadsafe(n, NULL, "fwd", NULL, cn_mk_tuple(2, cn_mk_tuple(2, A(to, SUP), A(to, node)), m)),
                   0);
}

static void expect_last(snode *x, const char *text) {
  if (!tnode_wait(&x->t, tnode_last_has, text)) print_message("  want %s, last %s\n", text, x->t.last);
  assert_true(tnode_wait(&x->t, tnode_last_has, text));
}

static cn_term *reply_of(cn_term *r, const char *want_first) {
  if (!cn_tuple_elem(r, 2, 0) || !cn_is_atom(cn_tuple_elem(r, 2, 0), want_first)) {
    char *txt = cn_term_to_string(r);
    print_message("  unexpected reply %s\n", txt);
    cn_free(txt);
    fail();
  }
  return r;
}

static void test_calls(void **st) {
  (void)st;
  static snode xs[2];
  static tnode beam;
  const char *members[] = {NODES[0], NODES[1], "beam1@127.0.0.1"};
  for (int i = 0; i < 2; i++) node_up(&xs[i], NODES[i], members, 3);
  cn_node_opts o = {
      .name = "beam1@127.0.0.1", .cookie = "secret", .epmd_port = test_epmd_port, .listen_addr = "127.0.0.1"};
  tnode_new(&beam, &o);
  tnode_spawn_named(&beam, SUP, dummy, &beam);
  tnode_run_ready(&beam);
  wait_members(xs, 2, 2);
  snode *x = &xs[0];

  /* members, wait_for_quorum, get_telemetry */
  cn_term *r = sup_call(x, A(x, "members"));
  assert_int_equal(r->type, CN_LIST);
  assert_int_equal(r->v.list.len, 3);
  cn_term_free(r);
  r = sup_call(x, A(x, "wait_for_quorum"));
  tsup_expect_atom(r, "ok");
  cn_term_free(r);
  r = sup_call(x, A(x, "get_telemetry"));
  assert_int_equal(r->type, CN_MAP);
  cn_term_free(r);

  /* an Elixir child with no alive BEAM member: refused */
  cn_term_free(reply_of(start_child(x, spec(x, 1, "permanent", false)), "error"));
  r = start_child(x, spec(x, 1, "permanent", false));
  assert_true(cn_is_atom(cn_tuple_elem(r, 2, 1), "no_alive_nodes"));
  cn_term_free(r);
  /* malformed requests: an error reply, and the member lives on */
  r = start_child(x, A(x, "notamap"));
  assert_true(cn_is_atom(cn_tuple_elem(cn_tuple_elem(r, 2, 1), 2, 0), "invalid_child_spec"));
  cn_term_free(r);
  cn_term *kv[] = {A(x, "id"),    cn_mk_int(1),
                   A(x, "start"), cn_mk_tuple(3, A(x, "Elixir.Nope"), A(x, "start_link"), cn_mk_nil()),
                   A(x, "cnode"), A(x, "true")};
  r = start_child(x, cn_mk_map(3, kv)); /* a C child of a module without an entry point, as apply/3 fails */
  char *txt = cn_term_to_string(r);
  assert_string_equal(txt, "{error,{undef,[{'Elixir.Nope',start_link,[],[]}]}}");
  cn_free(txt);
  cn_term_free(r);
  cn_term *kv2[] = {A(x, "id"),    cn_mk_int(1),
                    A(x, "start"), cn_mk_tuple(3, A(x, MOD), A(x, "start_link"), A(x, "x")),
                    A(x, "cnode"), A(x, "true")};
  r = start_child(x, cn_mk_map(3, kv2));
  assert_true(cn_is_atom(cn_tuple_elem(r, 2, 0), "error"));
  cn_term_free(r);
  r = sup_call(x, cn_mk_tuple(2, A(x, "bogus"), A(x, "call")));
  assert_true(cn_is_atom(cn_tuple_elem(r, 2, 1), "unknown_call"));
  cn_term_free(r);
  proxy_op(x, NODES[0], A(x, "garbage"), 1, -1);
  assert_int_equal(
      cn_send_threadsafe(x->t.n, NULL, SUP, NULL, cn_mk_tuple(3, A(x, "proxy_operation"), A(x, "a"), A(x, "b"))), 0);
  r = sup_call(x, cn_mk_tuple(2, A(x, "terminate_child"), A(x, "notapid")));
  assert_true(cn_is_atom(cn_tuple_elem(r, 2, 1), "not_found"));
  cn_term_free(r);

  /* proxy_operation with a TTL: a C child owned by cnode2, sent to cnode1 */
  tsup_view v;
  tsup_view_of(at(x), &v);
  int i = 1;
  while (strcmp(tsup_owner(x->t.n, &v, MOD, i, "permanent"), NODES[1])) i++;
  tsup_view_free(&v);
  proxy_op(x, NODES[0], cn_mk_tuple(2, A(x, "start_child"), spec(x, i, "permanent", true)), 101, 1);
  expect_last(x, "{101,{ok,#Pid<'cnode1@127.0.0.1'"); /* TTL spent here: started here */
  proxy_op(x, NODES[0], cn_mk_tuple(2, A(x, "start_child"), spec(x, i, "permanent", true)), 102, 5);
  expect_last(x, "{102,{ok,#Pid<'cnode2@127.0.0.1'"); /* proxied on to the owner */
  proxy_op(x, NODES[0], cn_mk_tuple(2, A(x, "start_child"), spec(x, i, "permanent", true)), 103, -1);
  expect_last(x, "{103,{ok,#Pid<'cnode2@127.0.0.1'");

  /* beam1 becomes an alive member: Elixir children go to it, never start here */
  cn_term *key = cn_mk_tuple(2, A(x, "member_node_info"), cn_mk_tuple(2, A(x, SUP), A(x, "beam1@127.0.0.1")));
  cn_term *kvm[] = {A(x, "__struct__"), A(x, "Elixir.Horde.DynamicSupervisor.Member"),
                    A(x, "name"),       cn_mk_tuple(2, A(x, SUP), A(x, "beam1@127.0.0.1")),
                    A(x, "status"),     A(x, "alive")};
  r = call(x, SUP ".Crdt", NULL,
           cn_mk_tuple(2, A(x, "operation"), cn_mk_tuple(2, A(x, "add"), cn_mk_list(2, key, cn_mk_map(3, kvm)))));
  tsup_expect_atom(r, "ok");
  cn_term_free(r);
  wait_members(xs, 2, 3);
  r = start_child(x, spec(x, 1, "permanent", false)); /* proxied to beam1, which answers */
  assert_true(cn_is_atom(cn_tuple_elem(r, 2, 1), "beam_dummy"));
  cn_term_free(r);
  assert_true(tnode_wait(&beam, tnode_last_has, "{proxy_operation,{start_child,#{"));
  proxy_op(x, NODES[0], cn_mk_tuple(2, A(x, "start_child"), spec(x, 2, "permanent", false)), 104, 1);
  expect_last(x, "{104,{error,proxy_operation_ttl_expired,<<\"a proxied start_child message was discard because its "
                 "TTL expired\">>}}");
  proxy_op(x, NODES[0], cn_mk_tuple(2, A(x, "start_child"), spec(x, 3, "permanent", false)), 105, 3);
  assert_true(tnode_wait(&beam, tnode_last_has, ",2}")); /* forwarded with the TTL one less */
  assert_true(tnode_wait(&beam, tnode_last_has, "{proxy_operation,{start_child,#{"));
  assert_int_equal(local_count(x, NODES[0]) + local_count(x, NODES[1]), 3);
  /* which_children and count_children on N gather every member's (beam1 has no ProcessesSupervisor: none) */
  r = sup_call(x, A(x, "which_children"));
  assert_int_equal(r->type, CN_LIST);
  assert_int_equal(r->v.list.len, 3);
  assert_true(cn_is_atom(&r->v.list.e[0].v.tuple.e[0], "undefined"));
  cn_term_free(r);
  r = sup_call(x, A(x, "count_children"));
  char *ct = cn_term_to_string(r);
  assert_string_equal(ct, "#{active => 3,specs => 3,supervisors => 0,workers => 3}");
  cn_free(ct);
  cn_term_free(r);
  for (int k = 0; k < 2; k++) tnode_stop(&xs[k].t);
  tnode_stop(&beam);
}

/* ---- Recovery rules 5-7 (one node)
 * ------------------------------------------------------------------------------------ */

/* Writes {process, Id} => Value on x's CRDT (a peer's write, as far as the supervisor can tell). */
static void crdt_add(snode *x, cn_term *key, cn_term *value) {
  cn_term *r = call(x, SUP ".Crdt", NULL,
                    cn_mk_tuple(2, A(x, "operation"), cn_mk_tuple(2, A(x, "add"), cn_mk_list(2, key, value))));
  tsup_expect_atom(r, "ok");
  cn_term_free(r);
}
static void crdt_put(snode *x, int64_t id, cn_term *value) {
  crdt_add(x, cn_mk_tuple(2, A(x, "process"), cn_mk_int(id)), value);
}

/* Waits until the entry of start argument i is owned by this node and its child answers; returns its Id. */
static int64_t wait_running(snode *x, int64_t i) {
  long t0 = now_ms();
  for (;;) {
    tsup_view v;
    tsup_view_of(at(x), &v);
    const tsup_ent *p = tsup_find(&v, i);
    int64_t id =
        p && !strcmp(p->owner, x->t.name) && child_get(x, p->pid) == i ? p->id->type == CN_INT ? p->id->v.i : 0 : -1;
    tsup_view_free(&v);
    if (id >= 0) {
      print_message("  child %lld running after %ld ms\n", (long long)i, now_ms() - t0);
      return id;
    }
    assert_true(now_ms() - t0 < 5000);
    sleep_ms(20);
  }
}

static void test_recovery(void **st) {
  (void)st;
  static snode x;
  node_up(&x, NODES[0], NULL, 0);
  cn_pid fake = {cn_intern(x.t.n, "cnode9@127.0.0.1"), 77, 0, 1};
  /* rule 7: a relinquished entry, started at once keeping its Id */
  crdt_put(&x, 701, cn_mk_tuple(2, A(&x, "nil"), spec(&x, 71, "permanent", true)));
  assert_int_equal(wait_running(&x, 71), 701);
  /* rule 6: an entry naming this member that it does not run: restarted keeping its Id, after ~1 s */
  cn_pid mine = {cn_node_name(x.t.n), 9999, 0, 0};
  crdt_put(
      &x, 702,
      cn_mk_tuple(3, cn_mk_tuple(2, A(&x, SUP), A(&x, NODES[0])), spec(&x, 72, "permanent", true), cn_mk_pid(mine)));
  assert_int_equal(wait_running(&x, 72), 702);
  /* rule 5: the owner is neither a member nor connected: adopted under a new Id, after ~1 s */
  crdt_put(&x, 703,
           cn_mk_tuple(3, cn_mk_tuple(2, A(&x, SUP), A(&x, "cnode9@127.0.0.1")), spec(&x, 73, "permanent", true),
                       cn_mk_pid(fake)));
  assert_true(wait_running(&x, 73) != 703);
  /* an Elixir child's entry is never touched */
  crdt_put(&x, 704,
           cn_mk_tuple(3, cn_mk_tuple(2, A(&x, SUP), A(&x, "e9@127.0.0.1")), spec(&x, 74, "permanent", false),
                       cn_mk_pid(fake)));
  sleep_ms(1800);
  tsup_view v;
  tsup_view_of(at(&x), &v);
  assert_int_equal(v.n, 4);
  assert_string_equal(tsup_find(&v, 74)->owner, "e9@127.0.0.1");
  tsup_view_free(&v);
  assert_int_equal(local_count(&x, NULL), 3);
  tnode_stop(&x.t);
}

/* ---- Graceful shutdown: children handed over through relinquished entries
 * -------------------------------------------- */

static bool shut_down(tnode *t, const void *unused) {
  (void)unused;
  return ((snode *)t->user)->shutdown_done > 0;
}

static void test_shutdown(void **st) {
  (void)st;
  static snode xs[3];
  for (int i = 0; i < 3; i++) node_up(&xs[i], NODES[i], NULL, 0);
  mesh(xs, 3);
  for (int i = 1; i <= 30; i++) tsup_started(start_child(&xs[i % 3], spec(&xs[i % 3], i, "transient", true)));
  wait_agree(xs, 3, 30, "transient");
  tsup_view v;
  tsup_view_of(at(&xs[0]), &v);
  cn_term *ids[30];
  int k = 0;
  for (int e = 0; e < v.n; e++)
    if (!strcmp(v.p[e].owner, NODES[2])) ids[k++] = cn_term_copy(v.p[e].id);
  tsup_view_free(&v);
  long t0 = now_ms();
  cn_term *r = call(&xs[2], "drv", NULL, A(&xs[2], "shutdown"));
  tsup_expect_atom(r, "ok");
  cn_term_free(r);
  assert_true(tnode_wait(&xs[2].t, shut_down, NULL));
  long took = now_ms() - t0;
  assert_true(tnode_log_has(&xs[2].t, "relinquished child"));
  assert_true(tnode_log_has(&xs[2].t, "seen by every peer"));
  r = start_child(&xs[2], spec(&xs[2], 99, "transient", true));
  assert_true(cn_is_atom(cn_tuple_elem(cn_tuple_elem(r, 2, 1), 2, 0), "shutting_down"));
  cn_term_free(r);
  /* cnode3 is shutting_down: its children run on cnode1/cnode2 under their old Ids */
  wait_members(xs, 2, 2);
  long moved = wait_agree(xs, 2, 30, "transient");
  print_message("  shutdown of cnode3 (%d children) done in %ld ms; all running elsewhere %ld ms later\n", k, took,
                moved);
  tsup_view_of(at(&xs[0]), &v);
  for (int j = 0; j < k; j++) {
    bool kept = false;
    for (int e = 0; e < v.n; e++) kept |= cn_term_exact_eq(v.p[e].id, ids[j]);
    assert_true(kept);
    cn_term_free(ids[j]);
  }
  tsup_view_free(&v);
  assert_int_equal(local_count(&xs[0], NODES[2]), 0);
  tnode_stop(&xs[2].t);
  sleep_ms(1500);
  assert_true(agree(xs, 2, 30, "transient"));
  assert_int_equal(local_count(&xs[0], NODES[0]) + local_count(&xs[0], NODES[1]), 30);
  for (int i = 0; i < 2; i++) tnode_stop(&xs[i].t);
}

/* ---- Hostile peers ------------------------------------------------------------------------------------------------
 */

static void to_sup(snode *x, cn_term *msg) { assert_int_equal(cn_send_threadsafe(x->t.n, NULL, SUP, NULL, msg), 0); }

/* Malformed CRDT values (as a peer could write them) and malformed messages to N: ignored or answered with an
 * error; the member keeps working. */
static void test_hostile(void **st) {
  (void)st;
  static snode x;
  node_up(&x, NODES[0], NULL, 0);
  cn_node *n = x.t.n;
  cn_pid fake = {cn_intern(n, "cnode9@127.0.0.1"), 5, 0, 1};
  cn_term *cspec_bad = cn_mk_map(1, (cn_term *[]){A(&x, "cnode"), A(&x, "true")});
  crdt_put(&x, 1, A(&x, "garbage"));
  crdt_put(&x, 2, cn_mk_tuple(2, A(&x, "nil"), A(&x, "notamap")));
  crdt_put(&x, 3, cn_mk_tuple(2, A(&x, "nil"), cn_term_copy(cspec_bad))); /* a C child spec without start */
  crdt_put(&x, 4,
           cn_mk_tuple(3, cn_mk_tuple(3, A(&x, "a"), A(&x, "b"), A(&x, "c")), cn_term_copy(cspec_bad), A(&x, "x")));
  crdt_put(&x, 5, cn_mk_tuple(3, cn_mk_tuple(2, A(&x, SUP), A(&x, "cnode9@127.0.0.1")), cspec_bad, cn_mk_pid(fake)));
  crdt_add(&x, cn_mk_tuple(2, A(&x, "member"), A(&x, "notatuple")), cn_mk_int(1));
  crdt_add(&x, cn_mk_tuple(2, A(&x, "member"), cn_mk_tuple(2, A(&x, SUP), A(&x, "cnode8@127.0.0.1"))), A(&x, "two"));
  crdt_add(&x, cn_mk_tuple(2, A(&x, "member_node_info"), cn_mk_tuple(2, A(&x, SUP), A(&x, "cnode8@127.0.0.1"))),
           cn_mk_int(3));
  crdt_add(&x, cn_mk_tuple(2, A(&x, "nonsense"), cn_mk_int(1)), cn_mk_int(1));
  to_sup(&x, cn_mk_tuple(4, A(&x, "proxy_operation"), cn_mk_tuple(2, A(&x, "start_child"), A(&x, "x")),
                         cn_mk_tuple(2, cn_mk_pid(x.t.collector), cn_mk_int(9)), cn_mk_int(-5)));
  to_sup(&x, cn_mk_tuple(2, A(&x, "crdt_update"), A(&x, "notalist")));
  to_sup(&x, cn_mk_tuple(2, A(&x, "crdt_update"),
                         cn_mk_list(3, cn_mk_tuple(2, A(&x, "add"), A(&x, "x")), cn_mk_tuple(1, A(&x, "remove")),
                                    cn_mk_tuple(3, A(&x, "add"), cn_mk_tuple(2, A(&x, "member_node_info"), A(&x, "m")),
                                                A(&x, "v")))));
  to_sup(&x, cn_mk_tuple(5, A(&x, "DOWN"), A(&x, "notaref"), A(&x, "process"), A(&x, "x"), A(&x, "y")));
  to_sup(&x, cn_mk_tuple(3, A(&x, "EXIT"), A(&x, "notapid"), A(&x, "x")));
  to_sup(&x, cn_mk_tuple(2, A(&x, "$hc_kill"), A(&x, "x")));
  to_sup(&x, cn_mk_tuple(2, A(&x, "$hc_restart"), cn_mk_pid(fake)));
  to_sup(&x, cn_mk_tuple(2, A(&x, "$hc_link"), cn_mk_pid(fake)));
  to_sup(&x, A(&x, "$hc_poll"));
  to_sup(&x, A(&x, "$hc_tick"));
  to_sup(&x, cn_mk_tuple(3, A(&x, "proxy_operation"), A(&x, "members"), A(&x, "notfrom")));
  assert_true(tnode_wait(&x.t, tnode_last_has, "{9,{error,{invalid_child_spec,x}}}"));
  cn_term *r = call(&x, SUP ".ProcessesSupervisor", NULL, cn_mk_tuple(2, A(&x, "start_child"), A(&x, "x")));
  assert_true(cn_is_atom(cn_tuple_elem(r, 2, 0), "error"));
  cn_term_free(r);
  sleep_ms(1500); /* the orphan scan has seen every entry by now */
  tsup_started(start_child(&x, spec(&x, 1, "permanent", true)));
  r = sup_call(&x, A(&x, "members"));
  assert_int_equal(r->type, CN_LIST);
  cn_term_free(r);
  assert_int_equal(local_count(&x, NULL), 1);
  tnode_stop(&x.t);
}

/* ---- Out of memory while reading a spec --------------------------------------------------------------------------- */

/* The allocator of this binary: malloc, except that while oom_size is set every allocation of exactly that many
 * bytes fails (and is counted). Thread-safe: the nodes allocate on their own threads. */
static _Atomic size_t oom_size;
static atomic_int oom_failed;
static bool oom_hit(size_t n) {
  if (!n || atomic_load(&oom_size) != n) return false;
  atomic_fetch_add(&oom_failed, 1);
  return true;
}
static void *oom_malloc(size_t n) { return oom_hit(n) ? NULL : malloc(n); }
static void *oom_realloc(void *p, size_t n) { return oom_hit(n) ? NULL : realloc(p, n); }
static void *oom_calloc(size_t c, size_t n) { return oom_hit(c * n) ? NULL : calloc(c, n); }

/* Memory runs out as start_child builds the reason for an invalid spec: the first allocation of the atom
 * invalid_restart_type fails. read_spec took that for a valid spec and started the child with a restart type
 * of -1 (and an uninitialised shutdown time), answering {ok, Pid}; now the caller gets an error and no child runs. */
static void test_spec_oom(void **st) {
  (void)st;
  static snode x;
  node_up(&x, NODES[0], NULL, 0);
  cn_term *sp = spec(&x, 1, "bogus", true), *sp2 = cn_term_copy(sp);
  atomic_store(&oom_failed, 0);
  atomic_store(&oom_size, sizeof(cn_atom) + strlen("invalid_restart_type") + 1); /* term/atom.c's one block */
  cn_term *r = start_child(&x, sp);
  atomic_store(&oom_size, 0);
  assert_int_equal(atomic_load(&oom_failed), 1);
  char *txt = cn_term_to_string(r);
  print_message("  start_child with no memory for the reason: %s\n", txt);
  assert_true(cn_is_atom(cn_tuple_elem(r, 2, 0), "error"));
  cn_free(txt);
  cn_term_free(r);
  assert_int_equal(local_count(&x, NULL), 0);
  r = start_child(&x, sp2); /* with memory, the reason */
  txt = cn_term_to_string(r);
  assert_string_equal(txt, "{error,{invalid_restart_type,bogus}}");
  cn_free(txt);
  cn_term_free(r);
  tsup_started(start_child(&x, spec(&x, 2, "permanent", true)));
  assert_int_equal(local_count(&x, NULL), 1);
  tnode_stop(&x.t);
}

/* A child's entry point that fails with a status and no reason term: the caller (a BEAM process, as far as the
 * member can tell) gets the reason OTP gives for it, not the C name ({error, 'CN_ELIMIT'} before). */
static void test_error_reason(void **st) {
  (void)st;
  static snode x;
  node_up(&x, NODES[0], NULL, 0);
  cn_term *r = start_child(&x, spec(&x, -1, "permanent", true));
  char *txt = cn_term_to_string(r);
  assert_string_equal(txt, "{error,system_limit}");
  cn_free(txt);
  cn_term_free(r);
  assert_int_equal(local_count(&x, NULL), 0);
  tnode_stop(&x.t);
}

/* A node whose name lacks the prefix refuses. */
static void test_refuses(void **st) {
  (void)st;
  static tnode t;
  cn_node_opts o = {
      .name = "plain@127.0.0.1", .cookie = "secret", .epmd_port = test_epmd_port, .listen_addr = "127.0.0.1"};
  tnode_new(&t, &o);
  cn_horde_sup *s = NULL;
  assert_int_equal(cn_horde_supervisor_start(t.n, SUP, NULL, &s), CN_EINVAL);
  assert_null(s);
  assert_true(tnode_log_has(&t, "does not start with \"cnode\""));
  tnode_run(&t);
  assert_true(tnode_wait(&t, tnode_is_ready, NULL));
  tnode_stop(&t);
}

/* The rule that stops a local copy after a heal (sup_entry_disowns), pure: the entry was deleted, or names another
 * member as the owner; a relinquished entry or this member's own does not disown the child. */
static void test_entry_disowns(void **st) {
  (void)st;
  cn_atoms *tab;
  assert_int_equal(cn_atoms_new(&tab, 0), 0);
  cn_term *self = cn_mk_tuple(2, cn_mk_atom(cn_atoms_get(tab, SUP)), cn_mk_atom(cn_atoms_get(tab, "cnode_a@h"))),
          *other = cn_mk_tuple(2, cn_mk_atom(cn_atoms_get(tab, SUP)), cn_mk_atom(cn_atoms_get(tab, "cnode_b@h")));
  cn_pid p = {.node = cn_atoms_get(tab, "cnode_b@h"), .id = 1};
  cn_term *spec = cn_mk_map(0, NULL), *nil = cn_mk_atom(cn_atoms_get(tab, "nil"));
  cn_term *mine = cn_mk_tuple(3, cn_term_copy(self), cn_term_copy(spec), cn_mk_pid(p)),
          *theirs = cn_mk_tuple(3, cn_term_copy(other), cn_term_copy(spec), cn_mk_pid(p)),
          *relinq = cn_mk_tuple(2, cn_term_copy(nil), cn_term_copy(spec)),
          *odd = cn_mk_tuple(3, cn_mk_int(1), cn_term_copy(spec), cn_mk_pid(p));
  assert_true(sup_entry_disowns(NULL, self));
  assert_true(sup_entry_disowns(theirs, self));
  assert_false(sup_entry_disowns(mine, self));
  assert_false(sup_entry_disowns(relinq, self));
  assert_false(sup_entry_disowns(odd, self)); /* not a member name: left to the scans */
  cn_term *all[] = {self, other, spec, nil, mine, theirs, relinq, odd};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) cn_term_free(all[i]);
  cn_atoms_free(tab);
}

int main(void) {
  cn_replace_allocator(oom_malloc, oom_realloc, oom_calloc, free);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_entry_disowns), cmocka_unit_test(test_refuses),  cmocka_unit_test(test_hostile),
      cmocka_unit_test(test_placement),     cmocka_unit_test(test_restarts), cmocka_unit_test(test_calls),
      cmocka_unit_test(test_recovery),      cmocka_unit_test(test_shutdown), cmocka_unit_test(test_spec_oom),
      cmocka_unit_test(test_error_reason),
  };
  return cmocka_run_group_tests(tests, test_epmd_group_setup, test_epmd_group_teardown);
}
