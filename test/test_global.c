/* test_global.c: global on C nodes. On one node with no peers: names (register, clash, unregister, a dying
 * holder), locks and trans between local processes, sync; a hidden node without global (all with an allocator
 * that checks nothing leaks). Then C nodes in threads with a real OTP epmd: three nodes mesh through global and
 * see one name table; a name registered on both sides of a partition is resolved as random_exit_name. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cn_global.h"
#include "cnode.h"
#include "testutil.h"
#include "tnode.h"

/* ---- One node, driven from this thread ----------------------------------------------------------------- */

enum { J_REG, J_UNREG, J_SETLOCK, J_DELLOCK, J_TRANS, J_SYNC };

/* A process that runs one global request per {go} message and records the outcome. */
typedef struct job {
  int kind;
  const char *name; /* global name (an atom) */
  cn_pid pid;
  const char *res, *req;    /* lock id {res, req} */
  const char *const *nodes; /* set_lock's node list (NULL: [node() | nodes()]), nnodes long */
  size_t nnodes;
  int retries;
  int rc;       /* what the API call returned */
  int status;   /* what the callback got */
  int done;     /* callbacks */
  int in_trans; /* trans bodies run */
  int got;      /* other messages */
  int ended;
  char reason[64];
} job;

static void job_done(cn_proc *self, int status, void *ctx) {
  (void)self;
  job *j = ctx;
  j->status = status;
  j->done++;
}

static void job_trans(cn_proc *self, void *ctx) {
  (void)self;
  ((job *)ctx)->in_trans++;
}

static void job_handle(cn_proc *self, const cn_term *msg, void *state) {
  job *j = state;
  cn_node *n = cn_proc_node(self);
  if (cn_is_atom(msg, "stop")) {
    cn_proc_exit(self, NULL);
    return;
  }
  if (!cn_is_atom(msg, "go")) {
    j->got++;
    return;
  }
  cn_term *name = j->name ? cn_mk_atomc(n, j->name) : NULL;
  cn_term *id = j->res ? cn_mk_tuple(2, cn_mk_atomc(n, j->res), cn_mk_atomc(n, j->req)) : NULL;
  switch (j->kind) {
  case J_REG: j->rc = cn_global_register_name(self, name, j->pid, job_done, j); break;
  case J_UNREG: j->rc = cn_global_unregister_name(self, name, job_done, j); break;
  case J_SETLOCK: {
    const cn_atom *nodes[4];
    for (size_t i = 0; i < j->nnodes && i < 4; i++) nodes[i] = cn_intern(n, j->nodes[i]);
    j->rc = cn_global_set_lock(self, id, j->nodes ? nodes : NULL, j->nnodes, j->retries, job_done, j);
    break;
  }
  case J_DELLOCK: j->rc = cn_global_del_lock(self, id, NULL, 0, job_done, j); break;
  case J_TRANS: j->rc = cn_global_trans(self, id, NULL, 0, j->retries, job_trans, job_done, j); break;
  case J_SYNC: j->rc = cn_global_sync(self, job_done, j); break;
  }
  /* The callback never runs inside the call. */
  assert_int_equal(j->done, 0);
  cn_term_free(name);
  cn_term_free(id);
}

static void job_end(cn_proc *self, const cn_term *reason, void *state) {
  (void)self;
  job *j = state;
  j->ended++;
  char *txt = cn_term_to_string(reason);
  snprintf(j->reason, sizeof j->reason, "%s", txt ? txt : "?");
  cn_free(txt);
}

static cn_pid job_spawn(cn_node *n, job *j) {
  cn_pid pid;
  cn_proc_opts o = {.terminate = job_end};
  assert_int_equal(cn_spawn(n, job_handle, j, &o, &pid), 0);
  return pid;
}

static void spin_ms(cn_node *n, long ms) {
  for (long i = 0; i < ms; i++) {
    uv_run(cn_node_loop(n), UV_RUN_NOWAIT);
    sleep_ms(1);
  }
}

static void send_atom(cn_node *n, cn_pid to, const char *a) {
  cn_term *t = cn_mk_atomc(n, a);
  assert_int_equal(cn_send(n, NULL, to, t), 0);
  cn_term_free(t);
}

/* Starts j's request from process pid and runs the loop until its callback ran (or ms passed). */
static void run_job(cn_node *n, cn_pid pid, job *j, long ms) {
  j->done = 0;
  j->rc = -999;
  send_atom(n, pid, "go");
  for (long i = 0; i < ms && !j->done; i++) {
    uv_run(cn_node_loop(n), UV_RUN_NOWAIT);
    if (!j->done) sleep_ms(1);
  }
}

static int whereis(cn_node *n, const char *name, cn_pid *out) {
  cn_term *t = cn_mk_atomc(n, name);
  int rc = cn_global_whereis_name(n, t, out);
  cn_term_free(t);
  return rc;
}

static cn_node *local_node(bool hidden) {
  cn_node_opts o = {.name = "g1@127.0.0.1", .cookie = "c", .log_level = CN_LOG_ERROR, .hidden = hidden};
  cn_node *n = NULL;
  assert_int_equal(cn_node_new(&n, NULL, &o), 0);
  assert_int_equal(cn_global_start(n), hidden ? CN_ESTATE : 0);
  if (!hidden) assert_int_equal(cn_global_start(n), CN_EEXIST);
  return n;
}

static void test_local_names(void **st) {
  (void)st;
  cn_node *n = local_node(false);
  job a = {0}, b = {0};
  cn_pid pa = job_spawn(n, &a), pb = job_spawn(n, &b), found;
  assert_int_equal(whereis(n, "x", &found), CN_ENOTFOUND);

  a = (job){.kind = J_REG, .name = "x", .pid = pa};
  run_job(n, pa, &a, 2000);
  assert_int_equal(a.rc, 0);
  assert_int_equal(a.done, 1);
  assert_int_equal(a.status, 0);
  assert_int_equal(whereis(n, "x", &found), 0);
  assert_int_equal(found.id, pa.id);
  cn_term *x = cn_mk_atomc(n, "x"), *hello = cn_mk_atomc(n, "hello");
  assert_int_equal(cn_global_send(n, NULL, x, hello), 0);
  spin_ms(n, 5);
  assert_int_equal(a.got, 1);

  /* The name is taken; a pid with a name gets no second one. */
  b = (job){.kind = J_REG, .name = "x", .pid = pb};
  run_job(n, pb, &b, 2000);
  assert_int_equal(b.status, CN_EEXIST);
  b = (job){.kind = J_REG, .name = "y", .pid = pa};
  run_job(n, pb, &b, 2000);
  assert_int_equal(b.status, CN_EEXIST);

  b = (job){.kind = J_UNREG, .name = "x"};
  run_job(n, pb, &b, 2000);
  assert_int_equal(b.status, 0);
  assert_int_equal(whereis(n, "x", &found), CN_ENOTFOUND);
  assert_int_equal(cn_global_send(n, NULL, x, hello), CN_ENOTFOUND);

  /* A holder that ends loses its name. */
  b = (job){.kind = J_REG, .name = "x", .pid = pb};
  run_job(n, pb, &b, 2000);
  assert_int_equal(b.status, 0);
  send_atom(n, pb, "stop");
  spin_ms(n, 5);
  assert_int_equal(b.ended, 1);
  assert_int_equal(whereis(n, "x", &found), CN_ENOTFOUND);

  /* global:sync() with no peers answers at once. */
  job c = {.kind = J_SYNC};
  cn_pid pc = job_spawn(n, &c);
  run_job(n, pc, &c, 2000);
  assert_int_equal(c.status, 0);

  cn_term_free(x);
  cn_term_free(hello);
  cn_node_free(n);
  assert_int_equal(a.ended, 1);
}

static void test_local_locks(void **st) {
  (void)st;
  cn_node *n = local_node(false);
  job a = {0}, b = {0};
  cn_pid pa = job_spawn(n, &a), pb = job_spawn(n, &b);

  a = (job){.kind = J_SETLOCK, .res = "res", .req = "a", .retries = -1};
  run_job(n, pa, &a, 2000);
  assert_int_equal(a.status, 0);
  /* Same requester id: shared. Another requester: refused. */
  job a2 = {.kind = J_SETLOCK, .res = "res", .req = "a", .retries = 0};
  cn_pid pa2 = job_spawn(n, &a2);
  run_job(n, pa2, &a2, 2000);
  assert_int_equal(a2.status, 0);
  b = (job){.kind = J_SETLOCK, .res = "res", .req = "b", .retries = 0};
  run_job(n, pb, &b, 2000);
  assert_int_equal(b.status, CN_EBUSY);

  /* trans waits (random back-off) until both holders are gone: one deletes its lock, the other ends. */
  b = (job){.kind = J_TRANS, .res = "res", .req = "b", .retries = -1};
  run_job(n, pb, &b, 300);
  assert_int_equal(b.rc, 0);
  assert_int_equal(b.done, 0);
  assert_int_equal(b.in_trans, 0);
  a = (job){.kind = J_DELLOCK, .res = "res", .req = "a"};
  run_job(n, pa, &a, 2000);
  assert_int_equal(a.status, 0);
  send_atom(n, pa2, "stop");
  for (int i = 0; i < 3000 && !b.done; i++) spin_ms(n, 1);
  assert_int_equal(b.done, 1);
  assert_int_equal(b.status, 0);
  assert_int_equal(b.in_trans, 1);

  /* After trans the lock is free for anyone. */
  a = (job){.kind = J_SETLOCK, .res = "res", .req = "c", .retries = 0};
  run_job(n, pa, &a, 2000);
  assert_int_equal(a.status, 0);
  /* A holder that ends releases its lock. */
  send_atom(n, pa, "stop");
  spin_ms(n, 5);
  b = (job){.kind = J_SETLOCK, .res = "res", .req = "d", .retries = 0};
  run_job(n, pb, &b, 2000);
  assert_int_equal(b.status, 0);
  /* A malformed id is refused at once. */
  cn_node_free(n);
}

/* This binary is linked with -Wl,--wrap=cn_proc_after (Makefile): the next fail_sleeps of global's back-off timers
 * fail at once with fail_status, as a timer that cannot be set does. */
int __real_cn_proc_after(cn_proc *self, unsigned ms, cn_after_fn fn, void *ctx, uint64_t *timer);
static int fail_sleeps, fail_status;
int __wrap_cn_proc_after(cn_proc *self, unsigned ms, cn_after_fn fn, void *ctx, uint64_t *timer) {
  if (fail_sleeps > 0) {
    fail_sleeps--;
    return fail_status;
  }
  return __real_cn_proc_after(self, ms, fn, ctx, timer);
}

/* A chain that ends inside the API call is answered after a hop through the loop, whatever its status: here
 * set_lock is refused locally at once (the id is held by another requester, this node is in the list), and the
 * back-off sleep before the retry fails at once. CN_EINVAL (-1) was stored as "status + 1", i.e. as 0, "no
 * result": the callback never ran and the request leaked. */
static void test_early_result_any_status(void **st) {
  (void)st;
  cn_node *n = local_node(false);
  job a = {0}, b = {0};
  cn_pid pa = job_spawn(n, &a), pb = job_spawn(n, &b);
  a = (job){.kind = J_SETLOCK, .res = "res", .req = "a", .retries = 0};
  run_job(n, pa, &a, 2000);
  assert_int_equal(a.status, 0);
  static const char *const two[] = {"g1@127.0.0.1", "other@127.0.0.1"};
  const int statuses[] = {CN_EINVAL, CN_ENOMEM, CN_ESTATE};
  for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++) {
    b = (job){.kind = J_SETLOCK, .res = "res", .req = "b", .nodes = two, .nnodes = 2, .retries = 1};
    fail_sleeps = 1;
    fail_status = statuses[i];
    run_job(n, pb, &b, 2000);
    assert_int_equal(fail_sleeps, 0);
    assert_int_equal(b.rc, 0);
    spin_ms(n, 20); /* a second callback would come now */
    assert_int_equal(b.done, 1);
    assert_int_equal(b.status, statuses[i]);
  }
  cn_node_free(n);
}

static void test_hidden_has_no_global(void **st) {
  (void)st;
  cn_node *n = local_node(true);
  cn_pid found;
  assert_int_equal(whereis(n, "x", &found), CN_ESTATE);
  job a = {.kind = J_REG, .name = "x"};
  cn_pid pa = job_spawn(n, &a);
  a.pid = pa;
  send_atom(n, pa, "go");
  spin_ms(n, 5);
  assert_int_equal(a.rc, CN_ESTATE);
  assert_int_equal(a.done, 0);
  cn_node_free(n);
}

/* ---- Nodes in threads -------------------------------------------------------------------------------------- */

static uint16_t epmd_port;

static void node_start(tnode *t, const char *name) {
  cn_node_opts o = {
      .name = name, .cookie = "secret", .epmd_port = epmd_port, .listen_addr = "127.0.0.1", .net_ticktime_s = 4};
  tnode_start(t, &o);
}

static bool ups_at_least(tnode *t, const void *a) { return t->nodeups - t->nodedowns >= *(const int *)a; }

/* Makes `from` connect to `to` by sending to a name that does not exist there. */
static void connect_to(tnode *from, const char *to) {
  assert_int_equal(cn_send_threadsafe(from->n, NULL, "nobody", cn_intern(from->n, to), cn_mk_atomc(from->n, "hi")), 0);
}

static int whereis_sync(tnode *t, const char *name, cn_pid *out) {
  cn_term *nm = cn_mk_atomc(t->n, name);
  int rc = cn_global_whereis_name_sync(t->n, nm, out);
  cn_term_free(nm);
  return rc;
}

/* Polls whereis on t until it names a pid of node `node` (up to 5 s). */
static bool wait_name_on(tnode *t, const char *name, const char *node, uint32_t id) {
  for (int i = 0; i < 500; i++) {
    cn_pid p;
    if (whereis_sync(t, name, &p) == 0 && !strcmp(p.node->name, node) && p.id == id) return true;
    sleep_ms(10);
  }
  return false;
}

static void test_three_nodes_mesh(void **st) {
  (void)st;
  int epmd = test_epmd_start(&epmd_port);
  assert_true(epmd > 0);
  tnode a, b, c;
  node_start(&a, "ma@127.0.0.1");
  node_start(&b, "mb@127.0.0.1");
  node_start(&c, "mc@127.0.0.1");
  assert_true(tnode_wait(&a, tnode_is_ready, NULL) && a.ready == 1);
  assert_true(tnode_wait(&b, tnode_is_ready, NULL) && b.ready == 1);
  assert_true(tnode_wait(&c, tnode_is_ready, NULL) && c.ready == 1);

  /* a knows b and c; global makes b and c connect to each other. */
  connect_to(&a, "mb@127.0.0.1");
  connect_to(&a, "mc@127.0.0.1");
  int two = 2;
  assert_true(tnode_wait(&a, ups_at_least, &two));
  assert_true(tnode_wait(&b, ups_at_least, &two));
  assert_true(tnode_wait(&c, ups_at_least, &two));

  /* A name registered on b is seen on a and c; unregistered, it is gone everywhere. */
  cn_term *svc = cn_mk_atomc(b.n, "svc");
  assert_int_equal(cn_global_register_name_sync(b.n, svc, b.rec), 0);
  assert_int_equal(cn_global_register_name_sync(b.n, svc, b.rec), CN_EEXIST);
  assert_true(wait_name_on(&a, "svc", "mb@127.0.0.1", b.rec.id));
  assert_true(wait_name_on(&c, "svc", "mb@127.0.0.1", b.rec.id));
  cn_term *svc_c = cn_mk_atomc(c.n, "svc");
  assert_int_equal(cn_global_unregister_name_sync(c.n, svc_c), 0);
  cn_pid p;
  assert_int_equal(whereis_sync(&a, "svc", &p), CN_ENOTFOUND);
  assert_int_equal(whereis_sync(&b, "svc", &p), CN_ENOTFOUND);
  cn_term_free(svc);
  cn_term_free(svc_c);

  /* c stops: a and b drop its names (and a, b stay connected). */
  cn_term *cname = cn_mk_atomc(c.n, "cname");
  assert_int_equal(cn_global_register_name_sync(c.n, cname, c.rec), 0);
  cn_term_free(cname);
  assert_true(wait_name_on(&a, "cname", "mc@127.0.0.1", c.rec.id));
  tnode_stop(&c);
  for (int i = 0; i < 500 && whereis_sync(&a, "cname", &p) == 0; i++) sleep_ms(10);
  assert_int_equal(whereis_sync(&a, "cname", &p), CN_ENOTFOUND);
  tnode_stop(&b);
  tnode_stop(&a);
  test_epmd_stop(epmd);
}

/* Two nodes that each registered `dup` before they met: the pid on the node with the smaller name keeps it,
 * the other is killed (random_exit_name). */
static void test_partition_name_clash(void **st) {
  (void)st;
  int epmd = test_epmd_start(&epmd_port);
  assert_true(epmd > 0);
  tnode x, y;
  node_start(&x, "px@127.0.0.1");
  node_start(&y, "py@127.0.0.1");
  assert_true(tnode_wait(&x, tnode_is_ready, NULL) && x.ready == 1);
  assert_true(tnode_wait(&y, tnode_is_ready, NULL) && y.ready == 1);
  cn_term *dx = cn_mk_atomc(x.n, "dup"), *dy = cn_mk_atomc(y.n, "dup");
  assert_int_equal(cn_global_register_name_sync(x.n, dx, x.rec), 0);
  assert_int_equal(cn_global_register_name_sync(y.n, dy, y.rec), 0);
  connect_to(&y, "px@127.0.0.1");
  assert_true(tnode_wait(&y, tnode_rec_ended, NULL));
  assert_string_equal(y.rec_reason, "killed");
  assert_true(wait_name_on(&y, "dup", "px@127.0.0.1", x.rec.id));
  assert_true(wait_name_on(&x, "dup", "px@127.0.0.1", x.rec.id));
  assert_int_equal(x.rec_ended, 0);
  cn_term_free(dx);
  cn_term_free(dy);
  tnode_stop(&y);
  tnode_stop(&x);
  test_epmd_stop(epmd);
}

int main(void) {
  ta_install();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_local_names, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_local_locks, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_early_result_any_status, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_hidden_has_no_global, ta_setup, ta_teardown),
      cmocka_unit_test(test_three_nodes_mesh),
      cmocka_unit_test(test_partition_name_clash),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
