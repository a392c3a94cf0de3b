/* test_signals.c: OTP's process semantics in C on one node: links and exit signals (normal, kill, trap_exit),
 * monitors by pid and name, aliases, the gen_server behaviour with cn_call (reply, exit mid-call, timeout,
 * noproc) and cn_cast. Processes record what they receive as text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cnode.h"
#include "testutil.h"

typedef struct rec {
  int n;
  char log[2048]; /* every message, one per line */
  char end[256];  /* the exit reason */
} rec;

static void add(char *buf, size_t cap, const char *what) {
  size_t l = strlen(buf);
  snprintf(buf + l, cap - l, "%s\n", what);
}

static void rec_handle(cn_proc *self, const cn_term *msg, void *state) {
  (void)self;
  rec *r = state;
  char *t = cn_term_to_string(msg);
  r->n++;
  add(r->log, sizeof r->log, t ? t : "?");
  cn_free(t);
}

static void rec_end(cn_proc *self, const cn_term *reason, void *state) {
  (void)self;
  rec *r = state;
  char *t = cn_term_to_string(reason);
  snprintf(r->end, sizeof r->end, "%s", t ? t : "?");
  cn_free(t);
}

static cn_node *N;

static int setup(void **st) {
  (void)st;
  cn_node_opts o = {.name = "sig@127.0.0.1", .cookie = "c", .log_level = CN_LOG_ERROR};
  return cn_node_new(&N, NULL, &o);
}

static int teardown(void **st) {
  (void)st;
  test_node_drop(&N);
  return 0;
}

/* Runs the loop until pred() or ~2 s. */
static void run_until(bool (*pred)(void *), void *arg) {
  uv_loop_t *l = cn_node_loop(N);
  for (int i = 0; i < 400 && !(pred && pred(arg)); i++) {
    uv_run(l, UV_RUN_NOWAIT);
    if (!pred) break;
    sleep_ms(5);
  }
}

static cn_pid spawn_rec(rec *r, bool trap) {
  memset(r, 0, sizeof *r);
  cn_proc_opts o = {.terminate = rec_end, .trap_exit = trap};
  cn_pid pid;
  assert_int_equal(cn_spawn(N, rec_handle, r, &o, &pid), 0);
  return pid;
}

/* A process whose handler runs a test's action in its own context, so it can link, monitor and call. */
typedef void (*action_fn)(cn_proc *self, void *arg);
typedef struct actor {
  rec r;
  action_fn act;
  void *arg;
} actor;

static void actor_handle(cn_proc *self, const cn_term *msg, void *state) {
  actor *a = state;
  if (cn_is_atom(msg, "$act")) {
    a->act(self, a->arg);
    return;
  }
  rec_handle(self, msg, &a->r);
}

static void actor_end(cn_proc *self, const cn_term *reason, void *state) {
  rec_end(self, reason, &((actor *)state)->r);
}

static cn_pid spawn_actor(actor *a, bool trap) {
  memset(&a->r, 0, sizeof a->r);
  cn_proc_opts o = {.terminate = actor_end, .trap_exit = trap};
  cn_pid pid;
  assert_int_equal(cn_spawn(N, actor_handle, a, &o, &pid), 0);
  return pid;
}

static void act(cn_pid pid, action_fn fn, void *arg, actor *a) {
  a->act = fn;
  a->arg = arg;
  cn_term *m = cn_mk_atomc(N, "$act");
  cn_send(N, NULL, pid, m);
  cn_term_free(m);
  test_spin(N);
}

static cn_pid target;
static cn_ref mref;

static void do_link(cn_proc *self, void *arg) {
  (void)arg;
  assert_int_equal(cn_link(self, target), 0);
}
static void do_unlink(cn_proc *self, void *arg) {
  (void)arg;
  assert_int_equal(cn_unlink(self, target), 0);
}
static void do_exit(cn_proc *self, void *arg) { cn_proc_exit(self, arg); }

static cn_term *T(const char *atom) { return cn_mk_atomc(N, atom); }

static void test_link_exit_rules(void **st) {
  (void)st;
  static actor a, b, c; /* outlives the test: terminate callbacks run at teardown */
  static rec x;         /* outlives the test: terminate callbacks run at teardown */
  /* A trapping process linked to one that exits {shutdown, x} gets the 'EXIT' message. */
  cn_pid pa = spawn_actor(&a, true), pb = spawn_actor(&b, false);
  target = pb;
  act(pa, do_link, NULL, &a);
  cn_term *why = cn_mk_tuple(2, T("shutdown"), T("x"));
  act(pb, do_exit, why, &b);
  cn_term_free(why);
  test_spin(N);
  assert_string_equal(b.r.end, "{shutdown,x}");
  assert_non_null(strstr(a.r.log, "{'EXIT',"));
  assert_non_null(strstr(a.r.log, "{shutdown,x}}"));
  /* A non-trapping process dies with the same reason, and its own links fire on. */
  cn_pid pc = spawn_actor(&c, true);
  cn_pid px = spawn_rec(&x, false);
  target = px;
  act(pc, do_link, NULL, &c);
  cn_pid pd;
  static actor d; /* outlives the test: terminate callbacks run at teardown */
  pd = spawn_actor(&d, false);
  act(pd, do_link, NULL, &d);
  cn_term *boom = T("boom");
  act(pd, do_exit, boom, &d);
  test_spin(N);
  assert_string_equal(x.end, "boom");
  assert_non_null(strstr(c.r.log, "boom}"));
  /* normal does not kill a non-trapping process; a trapping one sees it. */
  static rec y, z; /* outlives the test: terminate callbacks run at teardown */
  cn_pid py = spawn_rec(&y, false), pz = spawn_rec(&z, true);
  cn_term *normal = T("normal");
  cn_exit(N, NULL, py, normal);
  cn_exit(N, NULL, pz, normal);
  test_spin(N);
  assert_string_equal(y.end, "");
  assert_non_null(strstr(z.log, "normal}"));
  /* kill cannot be trapped and becomes killed. */
  cn_term *kill = T("kill");
  cn_exit(N, NULL, pz, kill);
  test_spin(N);
  assert_string_equal(z.end, "killed");
  cn_term_free(boom);
  cn_term_free(normal);
  cn_term_free(kill);
}

static void test_unlink(void **st) {
  (void)st;
  static actor a, b; /* outlives the test: terminate callbacks run at teardown */
  cn_pid pa = spawn_actor(&a, false), pb = spawn_actor(&b, false);
  target = pb;
  act(pa, do_link, NULL, &a);
  act(pa, do_unlink, NULL, &a);
  cn_term *boom = T("boom");
  act(pb, do_exit, boom, &b);
  cn_term_free(boom);
  test_spin(N);
  assert_string_equal(b.r.end, "boom");
  assert_string_equal(a.r.end, ""); /* unlinked: still alive */
  /* Linking to a dead pid: noproc. */
  static actor c; /* outlives the test: terminate callbacks run at teardown */
  cn_pid pc = spawn_actor(&c, true);
  target = pb;
  act(pc, do_link, NULL, &c);
  test_spin(N);
  assert_non_null(strstr(c.r.log, "noproc}"));
}

static void do_monitor(cn_proc *self, void *arg) { assert_int_equal(cn_monitor(self, arg, &mref), 0); }
static void do_demonitor(cn_proc *self, void *arg) {
  (void)arg;
  assert_int_equal(cn_demonitor(self, mref), 0);
}

static void test_monitors(void **st) {
  (void)st;
  static actor w, v; /* outlives the test: terminate callbacks run at teardown */
  cn_pid pw = spawn_actor(&w, false), pv = spawn_actor(&v, false);
  cn_term *tv = cn_mk_pid(pv);
  act(pw, do_monitor, tv, &w);
  cn_term *bye = T("bye");
  act(pv, do_exit, bye, &v);
  test_spin(N);
  assert_non_null(strstr(w.r.log, "{'DOWN',"));
  assert_non_null(strstr(w.r.log, ",process,"));
  assert_non_null(strstr(w.r.log, "bye}"));
  /* By name: the object is {Name, Node}. */
  static actor u; /* outlives the test: terminate callbacks run at teardown */
  cn_pid pu = spawn_actor(&u, false);
  assert_int_equal(cn_register(N, "named", pu), 0);
  cn_term *byname = T("named");
  w.r.log[0] = 0;
  act(pw, do_monitor, byname, &w);
  act(pu, do_exit, bye, &u);
  test_spin(N);
  assert_non_null(strstr(w.r.log, "{named,'sig@127.0.0.1'},bye}"));
  /* A dead target: noproc at once. */
  w.r.log[0] = 0;
  act(pw, do_monitor, tv, &w);
  test_spin(N);
  assert_non_null(strstr(w.r.log, "noproc}"));
  /* demonitor: no DOWN. */
  static actor s; /* outlives the test: terminate callbacks run at teardown */
  cn_pid ps = spawn_actor(&s, false);
  cn_term *ts = cn_mk_pid(ps);
  w.r.log[0] = 0;
  act(pw, do_monitor, ts, &w);
  act(pw, do_demonitor, NULL, &w);
  act(ps, do_exit, bye, &s);
  test_spin(N);
  assert_string_equal(w.r.log, "");
  cn_term_free(tv);
  cn_term_free(ts);
  cn_term_free(byname);
  cn_term_free(bye);
}

static cn_ref aref;
static void do_alias(cn_proc *self, void *arg) {
  (void)arg;
  assert_int_equal(cn_alias(self, &aref), 0);
}
static void do_unalias(cn_proc *self, void *arg) {
  (void)arg;
  assert_int_equal(cn_unalias(self, aref), 0);
}

static void test_alias(void **st) {
  (void)st;
  static actor a; /* outlives the test: terminate callbacks run at teardown */
  cn_pid pa = spawn_actor(&a, false);
  act(pa, do_alias, NULL, &a);
  cn_term *m = T("via_alias");
  assert_int_equal(cn_send_alias(N, NULL, aref, m), 0);
  test_spin(N);
  assert_string_equal(a.r.log, "via_alias\n");
  act(pa, do_unalias, NULL, &a);
  assert_int_equal(cn_send_alias(N, NULL, aref, m), 0);
  test_spin(N);
  assert_string_equal(a.r.log, "via_alias\n");
  cn_term_free(m);
}

/* ---- gen_server and calls ---------------------------------------------------------------------------------- */

static int casts;
static cn_term *srv_call(cn_proc *self, const cn_term *req, const cn_term *from, void *state) {
  (void)from;
  (void)state;
  if (cn_is_atom(req, "ping")) return T("pong");
  if (cn_is_atom(req, "die")) cn_proc_exit(self, req);
  return NULL; /* anything else: no reply */
}
static void srv_cast(cn_proc *self, const cn_term *req, void *state) {
  (void)self;
  (void)req;
  (void)state;
  casts++;
}
static const cn_gen_server_ops srv_ops = {.handle_call = srv_call, .handle_cast = srv_cast};

typedef struct result {
  int done, status;
  char text[256];
} result;

static void on_reply(cn_proc *self, int status, const cn_term *reply, void *ctx) {
  (void)self;
  result *r = ctx;
  r->done++;
  r->status = status;
  char *t = reply ? cn_term_to_string(reply) : NULL;
  snprintf(r->text, sizeof r->text, "%s", t ? t : "NULL");
  cn_free(t);
}

static result res;
static cn_term *call_req;
static const char *call_server;
static unsigned call_timeout;
static void do_call(cn_proc *self, void *arg) {
  (void)arg;
  cn_term *srv = cn_mk_atomc(N, call_server);
  memset(&res, 0, sizeof res);
  assert_int_equal(cn_call(self, srv, call_req, call_timeout, on_reply, &res), 0);
  cn_term_free(srv);
}
static bool call_done(void *a) {
  (void)a;
  return res.done > 0;
}

static void call_as(cn_pid who, actor *a, const char *server, const char *req, unsigned timeout_ms) {
  call_server = server;
  call_req = T(req);
  call_timeout = timeout_ms;
  act(who, do_call, NULL, a);
  run_until(call_done, NULL);
  cn_term_free(call_req);
}

static void test_gen_server_calls(void **st) {
  (void)st;
  cn_pid srv;
  assert_int_equal(cn_gen_server_start(N, "srv", &srv_ops, NULL, &srv), 0);
  static actor c; /* outlives the test: terminate callbacks run at teardown */
  cn_pid pc = spawn_actor(&c, false);
  call_as(pc, &c, "srv", "ping", 1000);
  assert_int_equal(res.status, 0);
  assert_string_equal(res.text, "pong");
  call_as(pc, &c, "srv", "silence", 100);
  assert_int_equal(res.status, CN_ETIMEDOUT);
  call_as(pc, &c, "nobody", "ping", 1000);
  assert_int_equal(res.status, CN_EEXIT);
  assert_string_equal(res.text, "noproc");
  call_as(pc, &c, "srv", "die", 1000);
  assert_int_equal(res.status, CN_EEXIT);
  assert_string_equal(res.text, "die");
  assert_int_equal(res.done, 1);
  /* Replies and DOWNs of finished calls never reach the handler. */
  test_spin(N);
  assert_string_equal(c.r.log, "");
  cn_pid srv2;
  assert_int_equal(cn_gen_server_start(N, "srv2", &srv_ops, NULL, &srv2), 0);
  cn_term *name = T("srv2"), *req = T("hello");
  casts = 0;
  assert_int_equal(cn_cast(N, NULL, name, req), 0);
  test_spin(N);
  assert_int_equal(casts, 1);
  cn_term_free(name);
  cn_term_free(req);
}

/* A gen_server that cannot take its name is not started: the caller keeps (and frees) its state, and terminate
 * never runs on it. cnode_ctl's {start_kv, echo} freed the state, then the process's terminate freed it again
 * (heap-use-after-free in kv_terminate, found by fuzz_node). */
static int taken_ends;
static void taken_end(cn_proc *self, const cn_term *reason, void *state) {
  (void)self, (void)reason, (void)state;
  taken_ends++;
}
static const cn_gen_server_ops taken_ops = {.terminate = taken_end};

static void test_gen_server_name_taken(void **st) {
  (void)st;
  cn_pid srv, again;
  assert_int_equal(cn_gen_server_start(N, "srv", &taken_ops, NULL, &srv), 0);
  taken_ends = 0;
  assert_int_equal(cn_gen_server_start(N, "srv", &taken_ops, NULL, &again), CN_EEXIST);
  test_spin(N);
  assert_int_equal(taken_ends, 0);
  cn_pid where;
  assert_int_equal(cn_whereis(N, "srv", &where), 0);
  assert_true(where.id == srv.id && cn_is_process_alive(N, srv));
}

static bool got_two(void *a) { return ((rec *)a)->n >= 2; }

/* send_after delivers later; a cancelled timer never does. */
static void test_send_after(void **st) {
  (void)st;
  static rec r; /* outlives the test: terminate callbacks run at teardown */
  cn_pid pid = spawn_rec(&r, false);
  cn_term *a = T("later"), *b = T("never"), *c = T("last");
  uint64_t t1, t2;
  assert_int_equal(cn_send_after(N, 30, pid, a, &t1), 0);
  assert_int_equal(cn_send_after(N, 40, pid, b, &t2), 0);
  assert_int_equal(cn_send_after(N, 60, pid, c, NULL), 0);
  assert_int_equal(cn_cancel_timer(N, t2), 0);
  assert_int_equal(cn_cancel_timer(N, t2), CN_ENOTFOUND);
  test_spin(N);
  assert_int_equal(r.n, 0);
  run_until(got_two, &r);
  assert_string_equal(r.log, "later\nlast\n");
  assert_int_equal(cn_cancel_timer(N, t1), CN_ENOTFOUND);
  assert_int_equal(cn_send_after(N, 100000, pid, a, NULL), 0); /* still pending when the node is freed */
  cn_term_free(a);
  cn_term_free(b);
  cn_term_free(c);
}

/* Every allocation of node creation, spawn, register and alias fails in turn: each call reports CN_ENOMEM or
 * succeeds, and nothing leaks. */
static void test_alloc_failures(void **st) {
  (void)st;
  ta_install();
  for (long k = 0; k < 400; k++) {
    ta_setup(NULL);
    ta_fail_after = k;
    cn_node_opts o = {.name = "oom@127.0.0.1", .cookie = "c", .log_level = CN_LOG_ERROR};
    cn_node *n = NULL;
    int rc = cn_node_new(&n, NULL, &o);
    if (rc == 0) {
      rec r;
      memset(&r, 0, sizeof r);
      cn_pid pid;
      if (cn_spawn(n, rec_handle, &r, NULL, &pid) == 0) cn_register(n, "oom", pid);
      cn_node_free(n);
    } else {
      assert_int_equal(rc, CN_ENOMEM);
    }
    ta_fail_after = -1;
    assert_int_equal(ta_live, 0);
  }
  cn_replace_allocator(malloc, realloc, calloc, free);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_link_exit_rules, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unlink, setup, teardown),
      cmocka_unit_test_setup_teardown(test_monitors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_alias, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gen_server_calls, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gen_server_name_taken, setup, teardown),
      cmocka_unit_test_setup_teardown(test_send_after, setup, teardown),
      cmocka_unit_test(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
