/* test_registry.c: the C Horde.Registry member (horde.h, registry.c). C nodes in threads with a real OTP epmd:
 * the CRDT key/value shapes against captured Lab.Registry traffic, register/lookup/unregister/death on one node,
 * and three nodes with members: :auto seeing each other's registrations, a concurrent conflict settled the same
 * way everywhere (the loser gets the name_conflict exit), process death and node loss; and the replay of every
 * {crdt_update, Diffs} the real Lab.Registry processes received in the captured scenarios. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
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

#define REG "Elixir.Lab.Registry"
#define SYNC_MS 100

/* The node's registry (kept in tnode.user). */
static cn_horde_registry *reg_of(tnode *t) { return t->user; }

/* A worker: exits with reason `die` on the message die; otherwise idle (no trap_exit: name_conflict kills it). */
static void worker(cn_proc *self, const cn_term *msg, void *state) {
  (void)state;
  if (cn_is_atom(msg, "die")) {
    cn_term *why = cn_mk_atomc(cn_proc_node(self), "die");
    cn_proc_exit(self, why);
    cn_term_free(why);
  }
}

/* The local table as a list of {Key, Member, Pid, Value} (cn_horde_foreach). */
typedef struct table_acc {
  cn_term **v;
  size_t n, cap;
} table_acc;

static bool table_add(const cn_term *key, cn_pid pid, const cn_term *value, const cn_term *member, void *ctx) {
  table_acc *a = ctx;
  if (a->n == a->cap) {
    a->cap = a->cap ? 2 * a->cap : 16;
    a->v = realloc(a->v, a->cap * sizeof *a->v);
  }
  a->v[a->n++] = cn_mk_tuple(4, cn_term_copy(key), cn_term_copy(member), cn_mk_pid(pid), cn_term_copy(value));
  return true;
}

static cn_term *table_list(tnode *t) {
  table_acc a = {0};
  cn_horde_foreach(t->user, table_add, &a);
  cn_term *l = cn_mk_listv(a.n, a.v, NULL);
  free(a.v);
  return l;
}

/* The test driver 'drv' runs the horde.h calls on the node's loop thread:
 * spawn -> Pid; {reg, K, V, Pid} -> ok | {error, {already_registered, Pid}} | {error, Code};
 * {unreg, K, Pid} -> ok; {lookup, K} -> [{Pid, V}] | []; count -> N; {alive, Pid} -> bool;
 * {die, Pid} -> ok; {connect, Node} -> ok; table -> [{Key, Member, Pid, Value}]; {crdt_delete, CrdtKey} -> ok
 * (a deletion as a peer's view of a partition makes it); {crdt_put, CrdtKey, V} -> ok (a write as a peer's). */
static cn_term *drv(cn_proc *self, const cn_term *req, const cn_term *from, void *state) {
  (void)from;
  tnode *t = state;
  cn_node *n = cn_proc_node(self);
  const cn_term *e = req->type == CN_TUPLE ? req->v.tuple.e : NULL;
  uint32_t ar = e ? req->v.tuple.arity : 0;
  cn_term *reply = NULL;
  if (cn_is_atom(req, "spawn")) {
    cn_pid p;
    reply = cn_spawn(n, worker, NULL, NULL, &p) ? cn_mk_atomc(n, "error") : cn_mk_pid(p);
  } else if (cn_is_atom(req, "count")) {
    reply = cn_mk_int((int64_t)cn_horde_count(reg_of(t)));
  } else if (ar == 4 && cn_is_atom(&e[0], "reg")) {
    cn_pid h;
    int rc = cn_horde_register(reg_of(t), e[3].v.pid, &e[1], &e[2], &h);
    if (rc == CN_EEXIST)
      reply =
          cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_tuple(2, cn_mk_atomc(n, "already_registered"), cn_mk_pid(h)));
    else reply = rc ? cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, cn_err_reason(rc))) : cn_mk_atomc(n, "ok");
  } else if (ar == 3 && cn_is_atom(&e[0], "unreg")) {
    reply = cn_horde_unregister(reg_of(t), e[2].v.pid, &e[1]) ? cn_mk_atomc(n, "error") : cn_mk_atomc(n, "ok");
  } else if (ar == 2 && cn_is_atom(&e[0], "lookup")) {
    cn_pid p;
    cn_term *v;
    reply = cn_horde_lookup(reg_of(t), &e[1], &p, &v) ? cn_mk_nil() : cn_mk_list(1, cn_mk_tuple(2, cn_mk_pid(p), v));
  } else if (ar == 2 && cn_is_atom(&e[0], "alive")) {
    reply = cn_mk_atomc(n, cn_is_process_alive(n, e[1].v.pid) ? "true" : "false");
  } else if (ar == 2 && cn_is_atom(&e[0], "die")) {
    cn_term *m = cn_mk_atomc(n, "die");
    cn_send(n, self, e[1].v.pid, m);
    cn_term_free(m);
    reply = cn_mk_atomc(n, "ok");
  } else if (cn_is_atom(req, "table")) {
    reply = table_list(t);
  } else if (ar == 3 && cn_is_atom(&e[0], "crdt_put")) {
    reply =
        cn_crdt_put(cn_horde_registry_crdt(reg_of(t)), &e[1], &e[2]) ? cn_mk_atomc(n, "error") : cn_mk_atomc(n, "ok");
  } else if (ar == 2 && cn_is_atom(&e[0], "crdt_delete")) {
    reply = cn_crdt_delete(cn_horde_registry_crdt(reg_of(t)), &e[1]) ? cn_mk_atomc(n, "error") : cn_mk_atomc(n, "ok");
  } else if (ar == 2 && cn_is_atom(&e[0], "connect")) {
    reply = cn_node_connect(n, e[1].v.atom) ? cn_mk_atomc(n, "error") : cn_mk_atomc(n, "ok");
  }
  return reply ? reply : cn_mk_atomc(n, "badreq");
}

static const cn_gen_server_ops drv_ops = {.handle_call = drv};

/* A node with the registry REG (t->user) and the driver process, running in its own thread; mesh: whether
 * global connects it to its peers' peers (no: as -connect_all false). */
static void node_up_mesh(tnode *t, const char *name, bool mesh) {
  cn_node_opts o = {.name = name,
                    .cookie = "secret",
                    .epmd_port = test_epmd_port,
                    .listen_addr = "127.0.0.1",
                    .net_ticktime_s = 4,
                    .no_connect_all = !mesh};
  tnode_new(t, &o);
  cn_horde_registry_opts ro = {.crdt = {.sync_interval_ms = SYNC_MS}};
  cn_horde_registry *reg;
  assert_int_equal(cn_horde_registry_start(t->n, REG, &ro, &reg), 0);
  t->user = reg;
  assert_int_equal(cn_gen_server_start(t->n, "drv", &drv_ops, t, NULL), 0);
  tnode_run_ready(t);
}
static void node_up(tnode *t, const char *name) { node_up_mesh(t, name, true); }

static cn_term *call_to(tnode *t, const char *srv_name, cn_term *req) {
  cn_term *srv = cn_mk_atomc(t->n, srv_name), *reply = NULL;
  int rc = cn_call_sync(t->n, srv, req, 5000, &reply);
  assert_int_equal(rc, 0);
  cn_term_free(srv);
  cn_term_free(req);
  return reply;
}
static cn_term *drv_call(tnode *t, cn_term *req) { return call_to(t, "drv", req); }

static cn_pid spawn_worker(tnode *t) {
  cn_term *r = drv_call(t, cn_mk_atomc(t->n, "spawn"));
  assert_int_equal(r->type, CN_PID);
  cn_pid p = r->v.pid;
  cn_term_free(r);
  return p;
}

/* cn_horde_register through the driver; returns the reply (caller frees). */
static cn_term *reg(tnode *t, cn_term *key, cn_term *val, cn_pid p) {
  return drv_call(t, cn_mk_tuple(4, cn_mk_atomc(t->n, "reg"), key, val, cn_mk_pid(p)));
}

/* Registers key (an atom) => v for p through the driver and asserts ok. */
static void reg_ok(tnode *t, const char *key, int64_t v, cn_pid p) {
  cn_term *r = reg(t, cn_mk_atomc(t->n, key), cn_mk_int(v), p);
  assert_true(cn_is_atom(r, "ok"));
  cn_term_free(r);
}

/* Connects t's node to node through the driver. */
static void connect_to(tnode *t, const char *node) {
  cn_term_free(drv_call(t, cn_mk_tuple(2, cn_mk_atomc(t->n, "connect"), cn_mk_atomc(t->n, node))));
}

/* The pid a lookup finds (true), or false. */
static bool lookup(tnode *t, cn_term *key, cn_pid *p, cn_term **val) {
  cn_term *r = drv_call(t, cn_mk_tuple(2, cn_mk_atomc(t->n, "lookup"), key));
  bool found = r->type == CN_LIST;
  if (found) {
    const cn_term *e = &r->v.list.e[0];
    if (p) *p = e->v.tuple.e[0].v.pid;
    if (val) *val = cn_term_copy(&e->v.tuple.e[1]);
  }
  cn_term_free(r);
  return found;
}

static int64_t count(tnode *t) {
  cn_term *r = drv_call(t, cn_mk_atomc(t->n, "count"));
  int64_t c = r->v.i;
  cn_term_free(r);
  return c;
}

static bool alive(tnode *t, cn_pid p) {
  cn_term *r = drv_call(t, cn_mk_tuple(2, cn_mk_atomc(t->n, "alive"), cn_mk_pid(p)));
  bool a = cn_is_atom(r, "true");
  cn_term_free(r);
  return a;
}

/* Pids from different nodes' atom tables: node names compared by text. */
static bool pid_eq(cn_pid a, cn_pid b) {
  return !strcmp(a.node->name, b.node->name) && a.id == b.id && a.serial == b.serial;
}

static int strcmp_ptr(const char *const *a, const char *const *b) { return strcmp(*a, *b); }

/* ---- Shapes against the capture ------------------------------------------------------------------------------ */

static cn_term *load_vec(cn_node *n, const char *file) {
  char path[1100];
  snprintf(path, sizeof path, "%s/horde/%s", vectors_dir(), file);
  return tt_load_etf(cn_node_atoms(n), path);
}

/* The value map of a captured {diff, %AWLWWMap{value: V}, Keys}. */
static const cn_term *delta_values(const cn_term *msg) {
  assert_int_equal(msg->type, CN_TUPLE);
  const cn_term *m = &msg->v.tuple.e[1];
  for (uint32_t i = 0; i < m->v.map.size; i++)
    if (cn_is_atom(&m->v.map.kv[2 * i], "value")) return &m->v.map.kv[2 * i + 1];
  fail();
  return NULL;
}

static const cn_term *map_get(const cn_term *m, const cn_term *k) {
  for (uint32_t i = 0; i < m->v.map.size; i++)
    if (cn_term_exact_eq(&m->v.map.kv[2 * i], k)) return &m->v.map.kv[2 * i + 1];
  return NULL;
}

/* The LWW user value of captured raw entries #{{V, Ts} => Dots} holding one entry. */
static const cn_term *raw_value(const cn_term *raw) {
  assert_int_equal(raw->type, CN_MAP);
  assert_int_equal(raw->v.map.size, 1);
  return &raw->v.map.kv[0].v.tuple.e[0];
}

static void test_shapes(void **st) {
  (void)st;
  /* named as the capture's n1, so member tuples compare exactly */
  tnode t;
  node_up(&t, "n1@127.0.0.1");
  cn_node *n = t.n;
  cn_pid w = spawn_worker(&t);
  cn_term *r = reg(&t, cn_mk_binary("k1", 2), cn_mk_atomc(n, "v"), w);
  assert_true(cn_is_atom(r, "ok"));
  cn_term_free(r);
  cn_term *mine = call_to(&t, REG ".Crdt", cn_mk_atomc(n, "read"));

  /* {key, "k1"} => {{Lab.Registry, n1}, Pid, v}, as n1 wrote it in s1 (0219) */
  cn_term *vec = load_vec(n, "s1_three_nodes/0219_Lab.Registry.Crdt@n2_diff_delta.etf");
  cn_term *k = cn_mk_tuple(2, cn_mk_atomc(n, "key"), cn_mk_binary("k1", 2));
  const cn_term *theirs = raw_value(map_get(delta_values(vec), k));
  const cn_term *ours = map_get(mine, k);
  assert_non_null(ours);
  assert_int_equal(ours->type, CN_TUPLE);
  assert_int_equal(ours->v.tuple.arity, 3);
  assert_true(cn_term_exact_eq(&ours->v.tuple.e[0], &theirs->v.tuple.e[0]));
  assert_int_equal(ours->v.tuple.e[1].type, CN_PID);
  assert_int_equal(theirs->v.tuple.e[1].type, CN_PID);
  assert_true(pid_eq(ours->v.tuple.e[1].v.pid, w));
  assert_true(cn_term_exact_eq(&ours->v.tuple.e[2], &theirs->v.tuple.e[2]));
  cn_term_free(k);
  cn_term_free(vec);

  /* {member, {Lab.Registry, n1}} => 1, as in s1 (0027) */
  vec = load_vec(n, "s1_three_nodes/0027_Lab.Registry.Crdt@n1_diff_delta.etf");
  cn_term *mk =
      cn_mk_tuple(2, cn_mk_atomc(n, "member"), cn_mk_tuple(2, cn_mk_atomc(n, REG), cn_mk_atomc(n, "n1@127.0.0.1")));
  const cn_term *tm = map_get(delta_values(vec), mk);
  assert_non_null(tm);
  const cn_term *om = map_get(mine, mk);
  assert_non_null(om);
  assert_true(cn_term_exact_eq(om, raw_value(tm)));
  /* nothing else than the two keys */
  assert_int_equal(mine->v.map.size, 2);
  cn_term_free(mk);
  cn_term_free(vec);
  cn_term_free(mine);
  tnode_stop(&t);
}

/* ---- One node ------------------------------------------------------------------------------------------------ */

static void wait_gone(tnode *t, const char *key) {
  long t0 = now_ms();
  while (lookup(t, cn_mk_atomc(t->n, key), NULL, NULL)) {
    assert_true(now_ms() - t0 < 3000);
    sleep_ms(5);
  }
}

static void test_one_node(void **st) {
  (void)st;
  tnode t;
  node_up(&t, "solo@127.0.0.1");
  cn_node *n = t.n;
  cn_pid a = spawn_worker(&t), b = spawn_worker(&t);
  cn_term *r = reg(&t, cn_mk_atomc(n, "ka"), cn_mk_int(1), a);
  assert_true(cn_is_atom(r, "ok"));
  cn_term_free(r);
  r = reg(&t, cn_mk_atomc(n, "kb"), cn_mk_int(2), a);
  assert_true(cn_is_atom(r, "ok"));
  cn_term_free(r);
  /* taken: already_registered with the holder */
  r = reg(&t, cn_mk_atomc(n, "ka"), cn_mk_int(3), b);
  assert_int_equal(r->type, CN_TUPLE);
  assert_true(pid_eq(r->v.tuple.e[1].v.tuple.e[1].v.pid, a));
  cn_term_free(r);
  cn_pid p;
  cn_term *v = NULL;
  assert_true(lookup(&t, cn_mk_atomc(n, "ka"), &p, &v));
  assert_true(pid_eq(p, a));
  assert_int_equal(v->v.i, 1);
  cn_term_free(v);
  assert_int_equal(count(&t), 2);
  /* unregister by a pid that does not hold it: nothing; by the holder: gone */
  cn_term_free(drv_call(&t, cn_mk_tuple(3, cn_mk_atomc(n, "unreg"), cn_mk_atomc(n, "ka"), cn_mk_pid(b))));
  assert_true(lookup(&t, cn_mk_atomc(n, "ka"), NULL, NULL));
  cn_term_free(drv_call(&t, cn_mk_tuple(3, cn_mk_atomc(n, "unreg"), cn_mk_atomc(n, "ka"), cn_mk_pid(a))));
  assert_false(lookup(&t, cn_mk_atomc(n, "ka"), NULL, NULL));
  r = reg(&t, cn_mk_atomc(n, "ka"), cn_mk_int(4), b);
  assert_true(cn_is_atom(r, "ok"));
  cn_term_free(r);
  /* the registry's own calls */
  cn_term *ms = call_to(&t, REG, cn_mk_atomc(n, "members"));
  assert_int_equal(ms->type, CN_LIST);
  assert_int_equal(ms->v.list.len, 1);
  cn_term_free(ms);
  /* a's death removes kb (and leaves ka, now b's) */
  cn_term_free(drv_call(&t, cn_mk_tuple(2, cn_mk_atomc(n, "die"), cn_mk_pid(a))));
  wait_gone(&t, "kb");
  assert_true(lookup(&t, cn_mk_atomc(n, "ka"), &p, NULL));
  assert_true(pid_eq(p, b));
  long t0 = now_ms();
  while (count(&t) != 1) {
    assert_true(now_ms() - t0 < 3000);
    sleep_ms(5);
  }
  cn_term_free(drv_call(&t, cn_mk_tuple(2, cn_mk_atomc(n, "die"), cn_mk_pid(b))));
  wait_gone(&t, "ka");
  tnode_stop(&t);
}

/* ---- Three nodes ----------------------------------------------------------------------------------------------- */

/* Waits until every node's lookup of key gives the same pid (want: that pid; NULL: any) or, with gone,
 * nothing; returns the pid. */
/* The nodes of the running test, for the logs printed when a wait fails. */
static tnode *diag;
static int diag_n;

static cn_pid wait_all(tnode *ts, int count, const char *key, const cn_pid *want, bool gone) {
  long t0 = now_ms();
  for (;;) {
    cn_pid first = {0}, p;
    bool ok = true;
    for (int i = 0; ok && i < count; i++) {
      bool f = lookup(&ts[i], cn_mk_atomc(ts[i].n, key), &p, NULL);
      if (gone) {
        ok = !f;
        continue;
      }
      ok = f && (i == 0 || pid_eq(p, first)) && (!want || pid_eq(p, *want));
      if (i == 0) first = p;
    }
    if (ok) {
      print_message("  %s: %s on every node after %ld ms\n", key, gone ? "gone" : "found", now_ms() - t0);
      return first;
    }
    if (now_ms() - t0 >= 40 * SYNC_MS) {
      for (int i = 0; i < count; i++) {
        cn_term *rd = call_to(&ts[i], REG ".Crdt", cn_mk_atomc(ts[i].n, "read"));
        char *s = cn_term_to_string(rd);
        print_message("  node %d read: %s\n", i, s);
        cn_free(s);
        cn_term_free(rd);
      }
      /* every node's log (a test may wait on fewer nodes than it runs) */
      for (int i = 0; i < (diag_n > count ? diag_n : count); i++) {
        tnode *t = diag_n > count ? &diag[i] : &ts[i];
        pthread_mutex_lock(&t->mu);
        print_message("  node %s log:\n%s", t->name, t->log);
        pthread_mutex_unlock(&t->mu);
      }
      fail();
    }
    sleep_ms(10);
  }
}

static void test_three_nodes(void **st) {
  (void)st;
  tnode ts[3];
  const char *names[3] = {"r0@127.0.0.1", "r1@127.0.0.1", "r2@127.0.0.1"};
  for (int i = 0; i < 3; i++) node_up(&ts[i], names[i]);
  /* full mesh (members: :auto follows nodeup) */
  for (int i = 0; i < 3; i++)
    for (int j = i + 1; j < 3; j++)
      cn_term_free(drv_call(&ts[i], cn_mk_tuple(2, cn_mk_atomc(ts[i].n, "connect"), cn_mk_atomc(ts[i].n, names[j]))));
  long t0 = now_ms();
  for (;;) {
    bool all = true;
    for (int i = 0; i < 3; i++) {
      cn_term *ms = call_to(&ts[i], REG, cn_mk_atomc(ts[i].n, "members"));
      all &= ms->type == CN_LIST && ms->v.list.len == 3;
      cn_term_free(ms);
    }
    if (all) break;
    assert_true(now_ms() - t0 < 40 * SYNC_MS);
    sleep_ms(10);
  }
  print_message("  members: 3 on every node after %ld ms\n", now_ms() - t0);

  /* each node registers one worker; every node finds all three */
  cn_pid w[3];
  char key[3][16];
  for (int i = 0; i < 3; i++) {
    w[i] = spawn_worker(&ts[i]);
    snprintf(key[i], sizeof key[i], "w%d", i);
    cn_term *r = reg(&ts[i], cn_mk_atomc(ts[i].n, key[i]), cn_mk_int(i), w[i]);
    assert_true(cn_is_atom(r, "ok"));
    cn_term_free(r);
  }
  for (int i = 0; i < 3; i++) wait_all(ts, 3, key[i], &w[i], false);
  /* the registry's lookup call asks the holder's node (§4.3: erpc of is_process_alive, answered by that C node) */
  cn_term *lk = call_to(&ts[1], REG, cn_mk_tuple(2, cn_mk_atomc(ts[1].n, "lookup"), cn_mk_atomc(ts[1].n, "w0")));
  assert_true(lk->type == CN_LIST && lk->v.list.len == 1);
  assert_true(pid_eq(lk->v.list.e[0].v.tuple.e[0].v.pid, w[0]));
  cn_term_free(lk);
  /* a name taken on another node: already_registered once synced */
  cn_pid x = spawn_worker(&ts[1]);
  cn_term *r = reg(&ts[1], cn_mk_atomc(ts[1].n, "w0"), cn_mk_int(9), x);
  assert_int_equal(r->type, CN_TUPLE);
  assert_true(pid_eq(r->v.tuple.e[1].v.tuple.e[1].v.pid, w[0]));
  cn_term_free(r);

  /* a conflict: the registry call (no lookup first, as the via path) on two nodes at once */
  cn_pid c0 = spawn_worker(&ts[0]), c2 = spawn_worker(&ts[2]);
  for (int i = 0; i < 3; i += 2) {
    cn_term *req = cn_mk_tuple(4, cn_mk_atomc(ts[i].n, "register"), cn_mk_atomc(ts[i].n, "dup"), cn_mk_int(i),
                               cn_mk_pid(i ? c2 : c0));
    cn_term *rr = call_to(&ts[i], REG, req);
    assert_int_equal(rr->type, CN_TUPLE);
    assert_true(cn_is_atom(&rr->v.tuple.e[0], "ok"));
    cn_term_free(rr);
  }
  cn_pid win = wait_all(ts, 3, "dup", NULL, false);
  bool w0 = pid_eq(win, c0);
  assert_true(w0 || pid_eq(win, c2));
  /* the loser got {name_conflict, ...} and died (no trap_exit); the winner lives */
  tnode *lt = w0 ? &ts[2] : &ts[0];
  cn_pid loser = w0 ? c2 : c0;
  t0 = now_ms();
  while (alive(lt, loser)) {
    assert_true(now_ms() - t0 < 40 * SYNC_MS);
    sleep_ms(10);
  }
  assert_true(alive(w0 ? &ts[0] : &ts[2], win));
  print_message("  conflict: winner on %s, loser dead\n", w0 ? "r0" : "r2");

  /* a registered process dies: its key goes everywhere */
  cn_term_free(drv_call(&ts[1], cn_mk_tuple(2, cn_mk_atomc(ts[1].n, "die"), cn_mk_pid(w[1]))));
  wait_all(ts, 3, "w1", NULL, true);

  /* node loss: r2 stops; the others drop member r2 (auto) and with it its keys */
  int64_t before = count(&ts[0]);
  tnode_stop(&ts[2]);
  wait_all(ts, 2, "w2", NULL, true);
  t0 = now_ms();
  while (count(&ts[0]) >= before || count(&ts[1]) != count(&ts[0])) {
    assert_true(now_ms() - t0 < 40 * SYNC_MS);
    sleep_ms(10);
  }
  cn_term *ms = call_to(&ts[0], REG, cn_mk_atomc(ts[0].n, "members"));
  assert_int_equal(ms->v.list.len, 2);
  cn_term_free(ms);
  wait_all(ts, 2, "w0", &w[0], false);
  for (int i = 0; i < 2; i++) tnode_stop(&ts[i]);
}

/* The re-assertion rules (reg_int.h), pure. */
static void test_reassert_rules(void **st) {
  (void)st;
  /* membership: automatic only, and only when the CRDT lacks it, for self or a member on a connected node */
  assert_true(hc_reg_member_back(true, true, false, false));
  assert_true(hc_reg_member_back(true, false, true, false));
  assert_false(hc_reg_member_back(true, false, false, false)); /* its node is down: it left */
  assert_false(hc_reg_member_back(true, true, true, true));    /* already back (a later add) */
  assert_false(hc_reg_member_back(false, true, true, false));  /* explicit members: set_members rules */
  /* keys: own, not released, process alive here, and nobody else holds the name now */
  assert_true(hc_reg_key_back(false, true, true, false));
  assert_false(hc_reg_key_back(true, true, true, false));   /* unregistered or its process ended */
  assert_false(hc_reg_key_back(false, false, true, false)); /* another member's key */
  assert_false(hc_reg_key_back(false, true, false, false)); /* the process is gone */
  assert_false(hc_reg_key_back(false, true, true, true));   /* another pid holds it: the conflict rule decides */
}

/* A peer deleting this member's live key and its membership (what Horde's removal of a member does on the other
 * side of a partition, merged at the heal): the member writes both again and the name resolves everywhere; its own
 * unregister is not undone. */
static void test_reassert(void **st) {
  (void)st;
  tnode ts[2];
  const char *names[2] = {"q0@127.0.0.1", "q1@127.0.0.1"};
  for (int i = 0; i < 2; i++) node_up(&ts[i], names[i]);
  diag = ts, diag_n = 2;
  connect_to(&ts[0], names[1]);
  cn_pid w = spawn_worker(&ts[0]);
  reg_ok(&ts[0], "mine", 7, w);
  wait_all(ts, 2, "mine", &w, false);
  /* q1 deletes q0's membership and key, as a removed member's */
  cn_term *m0 = cn_mk_tuple(2, cn_mk_atomc(ts[1].n, REG), cn_mk_atomc(ts[1].n, names[0]));
  cn_term_free(drv_call(
      &ts[1], cn_mk_tuple(2, cn_mk_atomc(ts[1].n, "crdt_delete"), cn_mk_tuple(2, cn_mk_atomc(ts[1].n, "member"), m0))));
  cn_term_free(
      drv_call(&ts[1], cn_mk_tuple(2, cn_mk_atomc(ts[1].n, "crdt_delete"),
                                   cn_mk_tuple(2, cn_mk_atomc(ts[1].n, "key"), cn_mk_atomc(ts[1].n, "mine")))));
  long t0 = now_ms();
  for (bool both = false; !both;) {
    both = true;
    for (int i = 0; i < 2; i++) {
      cn_term *ms = call_to(&ts[i], REG, cn_mk_atomc(ts[i].n, "members"));
      both &= ms->type == CN_LIST && ms->v.list.len == 2;
      cn_term_free(ms);
    }
    both = both && lookup(&ts[1], cn_mk_atomc(ts[1].n, "mine"), NULL, NULL);
    assert_true(now_ms() - t0 < 40 * SYNC_MS);
    if (!both) sleep_ms(10);
  }
  wait_all(ts, 2, "mine", &w, false);
  assert_int_equal(count(&ts[1]), 1);
  print_message("  membership and key re-asserted after %ld ms\n", now_ms() - t0);
  /* a key naming this member and a process of its node that no longer runs (an earlier incarnation's, which peers
   * no longer delete): the member deletes it */
  cn_pid dead = spawn_worker(&ts[0]);
  cn_term_free(drv_call(&ts[0], cn_mk_tuple(2, cn_mk_atomc(ts[0].n, "die"), cn_mk_pid(dead))));
  while (alive(&ts[0], dead)) sleep_ms(5);
  cn_term *m0b = cn_mk_tuple(2, cn_mk_atomc(ts[1].n, REG), cn_mk_atomc(ts[1].n, names[0]));
  cn_term_free(drv_call(&ts[1], cn_mk_tuple(3, cn_mk_atomc(ts[1].n, "crdt_put"),
                                            cn_mk_tuple(2, cn_mk_atomc(ts[1].n, "key"), cn_mk_atomc(ts[1].n, "stale")),
                                            cn_mk_tuple(3, m0b, cn_mk_pid(dead), cn_mk_int(0)))));
  sleep_ms(3 * SYNC_MS);
  wait_all(ts, 2, "stale", NULL, true);
  t0 = now_ms();
  while (count(&ts[1]) != 1) {
    assert_true(now_ms() - t0 < 40 * SYNC_MS);
    sleep_ms(10);
  }
  cn_term *rd = call_to(&ts[0], REG ".Crdt", cn_mk_atomc(ts[0].n, "read"));
  char *txt = cn_term_to_string(rd);
  assert_null(strstr(txt, "stale"));
  cn_free(txt);
  cn_term_free(rd);
  /* its own unregister stays */
  cn_term_free(
      drv_call(&ts[0], cn_mk_tuple(3, cn_mk_atomc(ts[0].n, "unreg"), cn_mk_atomc(ts[0].n, "mine"), cn_mk_pid(w))));
  wait_all(ts, 2, "mine", NULL, true);
  sleep_ms(5 * SYNC_MS);
  wait_all(ts, 2, "mine", NULL, true);
  for (int i = 0; i < 2; i++) tnode_stop(&ts[i]);
}

/* A node joining by a partial mesh must not remove the members it has not met yet (and with them their keys):
 * j2 (no global mesh) meets j0 and learns j1's registration, then meets j3. Horde's NodeListener would set the
 * members to [j2, j0, j3] at that nodeup and delete j1's key everywhere (vectors/horde/races.txt). */
static void test_join_keeps_unmet_members(void **st) {
  (void)st;
  tnode ts[4];
  const char *names[4] = {"j0@127.0.0.1", "j1@127.0.0.1", "j2@127.0.0.1", "j3@127.0.0.1"};
  for (int i = 0; i < 4; i++) node_up_mesh(&ts[i], names[i], i < 2);
  diag = ts, diag_n = 4;
  connect_to(&ts[0], names[1]);
  cn_pid held = spawn_worker(&ts[1]);
  reg_ok(&ts[1], "held", 1, held);
  wait_all(ts, 2, "held", &held, false);
  connect_to(&ts[2], names[0]);
  long t0 = now_ms();
  while (count(&ts[2]) < 1) {
    assert_true(now_ms() - t0 < 40 * SYNC_MS);
    sleep_ms(10);
  }
  cn_term_free(drv_call(&ts[2], cn_mk_tuple(2, cn_mk_atomc(ts[2].n, "connect"), cn_mk_atomc(ts[2].n, names[3]))));
  sleep_ms(6 * SYNC_MS);
  wait_all(ts, 2, "held", &held, false);
  assert_true(count(&ts[2]) >= 1 && count(&ts[3]) >= 1);
  cn_term *ms = call_to(&ts[0], REG, cn_mk_atomc(ts[0].n, "members"));
  assert_int_equal(ms->v.list.len, 4);
  cn_term_free(ms);
  for (int i = 0; i < 4; i++) tnode_stop(&ts[i]);
  diag = NULL, diag_n = 0;
}

/* ---- Replay of the captured registry notifications ------------------------------------------------------------
 * Every {crdt_update, Diffs} the real Lab.Registry process of one node received (local/INDEX.txt) is sent, in
 * order, to the C registry process of a C node with that node's name; its table must end as the fold of those
 * diffs (an add sets {Member, Pid, Value}, a remove deletes), and as the scenario's recorded outcome. */

typedef struct fold {
  cn_term *k[256], *v[256];
  size_t n;
} fold;

static void fold_apply(fold *f, const cn_term *diffs) {
  for (const cn_term *l = diffs; l->type == CN_LIST; l = l->v.list.tail) {
    for (uint32_t i = 0; i < l->v.list.len; i++) {
      const cn_term *d = &l->v.list.e[i];
      const cn_term *k = &d->v.tuple.e[1];
      if (!cn_is_atom(&k->v.tuple.e[0], "key")) continue;
      const cn_term *key = &k->v.tuple.e[1];
      size_t j = 0;
      while (j < f->n && !cn_term_exact_eq(f->k[j], key)) j++;
      if (cn_is_atom(&d->v.tuple.e[0], "add")) {
        if (j == f->n) {
          assert_true(f->n < 256);
          f->k[f->n++] = cn_term_copy(key);
        } else {
          cn_term_free(f->v[j]);
        }
        f->v[j] = cn_term_copy(&d->v.tuple.e[2]);
      } else if (j < f->n) {
        cn_term_free(f->k[j]);
        cn_term_free(f->v[j]);
        f->k[j] = f->k[--f->n];
        f->v[j] = f->v[f->n];
      }
    }
    if (!l->v.list.tail) break;
  }
}

/* Replays scenario/node, checks the C table against the fold and then with check(table); returns how many
 * notifications were fed. */
static int replay_node(const char *scenario, const char *node, void (*check)(const cn_term *tab)) {
  tnode t;
  node_up(&t, node);
  char path[512];
  snprintf(path, sizeof path, "%s/horde/%s/local/INDEX.txt", vectors_dir(), scenario);
  FILE *ix = fopen(path, "r");
  assert_non_null(ix);
  char line[8192];
  fold f = {.n = 0};
  int fed = 0;
  while (fgets(line, sizeof line, ix)) {
    if (line[0] == '#') continue;
    char *col[9] = {0}, *save = NULL;
    int nc = 0;
    for (char *tok = strtok_r(line, "\t", &save); tok && nc < 9; tok = strtok_r(NULL, "\t", &save)) col[nc++] = tok;
    if (nc < 8 || strcmp(col[4], node) || strcmp(col[5], "Lab.Registry") || strcmp(col[6], "crdt_update")) continue;
    char file[512];
    snprintf(file, sizeof file, "%s/local/%s", scenario, col[7]);
    cn_term *msg = load_vec(t.n, file);
    assert_true(msg->type == CN_TUPLE && msg->v.tuple.arity == 2 && cn_is_atom(&msg->v.tuple.e[0], "crdt_update"));
    fold_apply(&f, &msg->v.tuple.e[1]);
    assert_int_equal(cn_send_threadsafe(t.n, NULL, REG, NULL, msg), 0);
    fed++;
  }
  fclose(ix);
  assert_true(fed > 0);
  /* the driver's call is handled after the registry took every message sent before it: ask it through a
   * registry call first (same sender order), then read the table */
  cn_term *c = call_to(&t, REG, cn_mk_atomc(t.n, "count"));
  assert_int_equal(c->type, CN_INT);
  assert_int_equal((size_t)c->v.i, f.n);
  cn_term_free(c);
  cn_term *tab = drv_call(&t, cn_mk_atomc(t.n, "table"));
  size_t tn = tab->type == CN_LIST ? tab->v.list.len : 0;
  assert_int_equal(tn, f.n);
  for (size_t i = 0; i < tn; i++) {
    const cn_term *row = &tab->v.list.e[i];
    size_t j = 0;
    while (j < f.n && !cn_term_exact_eq(f.k[j], &row->v.tuple.e[0])) j++;
    assert_true(j < f.n);
    const cn_term *want = f.v[j]; /* {Member, Pid, Value} */
    assert_true(cn_term_exact_eq(&want->v.tuple.e[0], &row->v.tuple.e[1]));
    assert_true(cn_term_exact_eq(&want->v.tuple.e[1], &row->v.tuple.e[2]));
    assert_true(cn_term_exact_eq(&want->v.tuple.e[2], &row->v.tuple.e[3]));
  }
  for (size_t j = 0; j < f.n; j++) {
    cn_term_free(f.k[j]);
    cn_term_free(f.v[j]);
  }
  check(tab);
  cn_term_free(tab);
  tnode_stop(&t);
  return fed;
}

/* The table's user keys as printed text, sorted, joined by spaces. */
static void table_keys(const cn_term *tab, char *out, size_t cap) {
  size_t n = tab->type == CN_LIST ? tab->v.list.len : 0;
  char *keys[256];
  assert_true(n <= 256);
  for (size_t i = 0; i < n; i++) keys[i] = cn_term_to_string(&tab->v.list.e[i].v.tuple.e[0]);
  qsort(keys, n, sizeof *keys, (int (*)(const void *, const void *))strcmp_ptr);
  out[0] = 0;
  for (size_t i = 0; i < n; i++) {
    snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? " " : "", keys[i]);
    cn_free(keys[i]);
  }
}

/* s1: k1..k31 registered from the three nodes, then n3 killed: the survivors hold every key but n3's. */
static void check_s1(const cn_term *tab) {
  size_t n = tab->v.list.len;
  assert_true(n > 10 && n < 31);
  for (size_t j = 0; j < n; j++) {
    char *m = cn_term_to_string(&tab->v.list.e[j].v.tuple.e[1]);
    assert_null(strstr(m, "n3@"));
    cn_free(m);
  }
  char keys[8192];
  table_keys(tab, keys, sizeof keys);
  assert_non_null(strstr(keys, "\"k1\""));
}

/* s2: j3 joins {j1, j2}, which hold a1, a2 (b1 was lost by Horde before the capture): j3 learns a1 and a2 (j1 and
 * j2 registered them before the capture began: their tables are checked against the fold only). */
static void check_s2(const cn_term *tab) {
  char keys[8192];
  table_keys(tab, keys, sizeof keys);
  assert_string_equal(keys, "<<\"a1\">> <<\"a2\">>");
}

/* s3: the run where Horde lost b1 at the join: b1 is gone on every node, and the joining r3 learnt a1. */
static void check_s3(const cn_term *tab) {
  char keys[8192];
  table_keys(tab, keys, sizeof keys);
  assert_null(strstr(keys, "\"b1\""));
}
static void check_s3_joiner(const cn_term *tab) {
  check_s3(tab);
  char keys[8192];
  table_keys(tab, keys, sizeof keys);
  assert_non_null(strstr(keys, "\"a1\""));
}
static void check_fold_only(const cn_term *tab) { (void)tab; }

static void test_replay(void **st) {
  (void)st;
  static const struct {
    const char *scenario, *node;
    void (*check)(const cn_term *);
  } runs[] = {
      {"s1_three_nodes", "n1@127.0.0.1", check_s1},    {"s1_three_nodes", "n2@127.0.0.1", check_s1},
      {"s2_join", "j1@127.0.0.1", check_fold_only},    {"s2_join", "j2@127.0.0.1", check_fold_only},
      {"s2_join", "j3@127.0.0.1", check_s2},           {"s3_join_race_loss", "r1@127.0.0.1", check_s3},
      {"s3_join_race_loss", "r2@127.0.0.1", check_s3}, {"s3_join_race_loss", "r3@127.0.0.1", check_s3_joiner},
  };
  int total = 0;
  for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++)
    total += replay_node(runs[i].scenario, runs[i].node, runs[i].check);
  printf("replayed %d captured crdt_update notifications into the C registries of 8 nodes\n", total);
}

/* A registry whose name is taken is not started: CN_EEXIST, its CRDT ends with it, and on_stop does not run (the
 * caller has the error; cn_gen_server_start leaves the state with the starter). */
static int stops;
static void count_stop(cn_horde_registry *r, void *ctx) {
  (void)r, (void)ctx;
  stops++;
}

static void idle(cn_proc *self, const cn_term *msg, void *state) { (void)self, (void)msg, (void)state; }

static void test_start_name_taken(void **st) {
  (void)st;
  cn_node *n;
  cn_node_opts o = {.name = "regn@127.0.0.1", .cookie = "secret", .log_level = CN_LOG_ERROR};
  assert_int_equal(cn_node_new(&n, NULL, &o), 0);
  cn_pid squatter, crdt;
  assert_int_equal(cn_spawn(n, idle, NULL, NULL, &squatter), 0);
  assert_int_equal(cn_register(n, REG, squatter), 0);
  cn_horde_registry_opts ro = {.on_stop = count_stop};
  cn_horde_registry *r = NULL;
  assert_int_equal(cn_horde_registry_start(n, REG, &ro, &r), CN_EEXIST);
  assert_null(r);
  for (int i = 0; i < 20; i++) uv_run(cn_node_loop(n), UV_RUN_NOWAIT);
  assert_int_equal(cn_whereis(n, REG ".Crdt", &crdt), CN_ENOTFOUND);
  assert_int_equal(stops, 0);
  cn_node_free(n);
  assert_int_equal(stops, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shapes),
      cmocka_unit_test(test_start_name_taken),
      cmocka_unit_test(test_one_node),
      cmocka_unit_test(test_three_nodes),
      cmocka_unit_test(test_join_keeps_unmet_members),
      cmocka_unit_test(test_reassert_rules),
      cmocka_unit_test(test_reassert),
      cmocka_unit_test(test_replay),
  };
  return cmocka_run_group_tests(tests, test_epmd_group_setup, test_epmd_group_teardown);
}
