/* test_dirty.c: the dirty pool (cnode/dirty.c): dirty processes run one message at a time and in order on pool
 * threads while the loop keeps serving; their calls, timers, links, monitors and terminate; jobs; exits and node
 * stop during a handler. One node, no network; run under ASan and TSan too (make tsan). */
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
#include "testutil.h"

/* Computes (no sleeping: a dirty handler holds its CPU) for ms milliseconds. */
static void spin_ms(long ms) {
  long end = now_ms() + ms;
  volatile unsigned x = 1;
  while (now_ms() < end)
    for (int i = 0; i < 1000; i++) x = x * 1103515245u + 12345u;
}

typedef struct fix {
  cn_node *n;
  pthread_t th;
} fix;

static _Thread_local bool on_loop_thread;

static void *run(void *arg) {
  fix *f = arg;
  on_loop_thread = true;
  cn_node_run(f->n);
  return NULL;
}

static fix *fix_new(unsigned threads) {
  fix *f = calloc(1, sizeof *f);
  cn_node_opts o = {
      .name = "dirty@127.0.0.1", .cookie = "c", .no_epmd = true, .hidden = true, .dirty_threads = threads};
  assert_int_equal(cn_node_new(&f->n, NULL, &o), 0);
  return f;
}

static void fix_run(fix *f) { assert_int_equal(pthread_create(&f->th, NULL, run, f), 0); }

static void fix_free(fix *f) {
  cn_node_stop(f->n);
  pthread_join(f->th, NULL);
  cn_node_free(f->n);
  free(f);
}

/* ---- A dirty counter gen_server: order, one at a time, replies from the pool ------------------------------ */

typedef struct counter {
  int next;     /* the next sequence number expected */
  int bad;      /* out of order */
  int inside;   /* handlers running now (must stay 0 or 1) */
  int overlap;  /* times two ran at once */
  bool on_loop; /* a callback ran on the loop thread */
  int terminated;
} counter;

static cn_term *counter_call(cn_proc *self, const cn_term *req, const cn_term *from, void *state) {
  (void)from;
  counter *c = state;
  if (on_loop_thread) c->on_loop = true;
  if (cn_is_atom(req, "get")) return cn_mk_tuple(3, cn_mk_int(c->next), cn_mk_int(c->bad), cn_mk_int(c->overlap));
  const cn_term *ms = cn_tuple_elem(req, 2, 1);
  if (ms && ms->type == CN_INT) {
    spin_ms(ms->v.i);
    return cn_mk_tuple(2, cn_mk_atomc(cn_proc_node(self), "burned"), cn_mk_int(ms->v.i));
  }
  return cn_mk_atomc(cn_proc_node(self), "badarg");
}

static void counter_info(cn_proc *self, const cn_term *msg, void *state) {
  (void)self;
  counter *c = state;
  if (__atomic_add_fetch(&c->inside, 1, __ATOMIC_SEQ_CST) != 1) c->overlap++;
  if (on_loop_thread) c->on_loop = true;
  const cn_term *seq = cn_tuple_elem(msg, 2, 1);
  if (seq && seq->type == CN_INT) {
    if (seq->v.i != c->next) c->bad++;
    c->next = (int)seq->v.i + 1;
  }
  if (c->next % 97 == 0) spin_ms(1);
  __atomic_sub_fetch(&c->inside, 1, __ATOMIC_SEQ_CST);
}

static void counter_term(cn_proc *self, const cn_term *reason, void *state) {
  (void)self;
  (void)reason;
  counter *c = state;
  if (on_loop_thread) c->on_loop = true;
  c->terminated++;
}

static const cn_gen_server_ops counter_ops = {
    .handle_call = counter_call, .handle_info = counter_info, .terminate = counter_term, .dirty = true};

static cn_term *call_sync(fix *f, const char *name, cn_term *req, unsigned timeout_ms) {
  cn_term *server = cn_mk_atomc(f->n, name), *reply = NULL;
  int rc = cn_call_sync(f->n, server, req, timeout_ms, &reply);
  cn_term_free(server);
  cn_term_free(req);
  assert_int_equal(rc, 0);
  return reply;
}

static void test_order_and_replies(void **state) {
  (void)state;
  fix *f = fix_new(4);
  counter c = {0};
  cn_pid pid;
  assert_int_equal(cn_gen_server_start(f->n, "counter", &counter_ops, &c, &pid), 0);
  fix_run(f);
  for (int i = 0; i < 3000; i++)
    assert_int_equal(cn_send_threadsafe(f->n, &pid, NULL, NULL, cn_mk_tuple(2, cn_mk_atomc(f->n, "seq"), cn_mk_int(i))),
                     0);
  cn_term *r = call_sync(f, "counter", cn_mk_atomc(f->n, "get"), 10000);
  char *s = cn_term_to_string(r);
  assert_string_equal(s, "{3000,0,0}");
  cn_free(s);
  cn_term_free(r);
  fix_free(f);
  assert_int_equal(c.terminated, 1);
  assert_false(c.on_loop);
}

/* ---- The loop keeps serving while a dirty handler computes ------------------------------------------------- */

static cn_term *plain_call(cn_proc *self, const cn_term *req, const cn_term *from, void *state) {
  (void)self;
  (void)from;
  (void)state;
  return cn_term_copy(req);
}
static const cn_gen_server_ops plain_ops = {.handle_call = plain_call};

typedef struct burn_arg {
  fix *f;
  cn_term *reply;
} burn_arg;

static void *burn_thread(void *arg) {
  burn_arg *b = arg;
  b->reply = call_sync(b->f, "counter", cn_mk_tuple(2, cn_mk_atomc(b->f->n, "burn"), cn_mk_int(600)), 10000);
  return NULL;
}

static void test_loop_not_stalled(void **state) {
  (void)state;
  fix *f = fix_new(2);
  counter c = {0};
  assert_int_equal(cn_gen_server_start(f->n, "counter", &counter_ops, &c, NULL), 0);
  assert_int_equal(cn_gen_server_start(f->n, "plain", &plain_ops, NULL, NULL), 0);
  fix_run(f);
  burn_arg b = {.f = f};
  pthread_t th;
  long t0 = now_ms();
  assert_int_equal(pthread_create(&th, NULL, burn_thread, &b), 0);
  spin_ms(50);
  long worst = 0;
  int calls = 0;
  while (now_ms() - t0 < 450) {
    long s = now_ms();
    cn_term *r = call_sync(f, "plain", cn_mk_int(calls), 5000);
    assert_true(r && r->type == CN_INT && r->v.i == calls);
    cn_term_free(r);
    if (now_ms() - s > worst) worst = now_ms() - s;
    calls++;
  }
  pthread_join(th, NULL);
  char *s = cn_term_to_string(b.reply);
  assert_string_equal(s, "{burned,600}");
  cn_free(s);
  cn_term_free(b.reply);
  assert_true(now_ms() - t0 >= 600);
  printf("  %d calls to a plain server during a 600 ms dirty burn, slowest %ld ms\n", calls, worst);
  assert_true(calls > 10);
  assert_true(worst < 200);
  fix_free(f);
}

/* ---- A dirty process calls, sets timers, links and monitors ------------------------------------------------ */

typedef struct actor {
  fix *f;
  int step;
  bool on_loop;
  char got[512]; /* what it saw, in order */
  int terminated;
} actor;

static void note(actor *a, const char *what) {
  if (on_loop_thread) a->on_loop = true;
  size_t l = strlen(a->got);
  snprintf(a->got + l, sizeof a->got - l, "%s;", what);
}

static void actor_reply(cn_proc *self, int status, const cn_term *reply, void *ctx) {
  (void)self;
  actor *a = ctx;
  char *s = reply ? cn_term_to_string(reply) : NULL;
  char buf[128];
  snprintf(buf, sizeof buf, "reply %d %s", status, s ? s : "-");
  cn_free(s);
  note(a, buf);
}

static void noop(cn_proc *self, const cn_term *msg, void *state) {
  (void)self;
  (void)msg;
  (void)state;
}

static void actor_after(cn_proc *self, int status, void *ctx) {
  actor *a = ctx;
  note(a, status ? "after closed" : "after");
  /* A plain process that ends at once: the monitor's DOWN comes back to this dirty process. */
  cn_pid q;
  cn_term *t = NULL;
  cn_ref mref;
  if (!status && cn_spawn(cn_proc_node(self), noop, NULL, NULL, &q) == 0) {
    t = cn_mk_pid(q);
    cn_monitor(self, t, &mref);
    cn_term *reason = cn_mk_atomc(cn_proc_node(self), "bye");
    cn_exit(cn_proc_node(self), self, q, reason);
    cn_term_free(reason);
  }
  cn_term_free(t);
}

static void actor_handle(cn_proc *self, const cn_term *msg, void *state) {
  actor *a = state;
  cn_node *n = cn_proc_node(self);
  if (cn_is_atom(msg, "go")) {
    note(a, "go");
    cn_term *server = cn_mk_atomc(n, "plain"), *req = cn_mk_atomc(n, "ping");
    assert_int_equal(cn_call(self, server, req, 5000, actor_reply, a), 0);
    cn_term_free(server);
    cn_term_free(req);
    assert_int_equal(cn_proc_after(self, 30, actor_after, a, NULL), 0);
    cn_term *tick = cn_mk_atomc(n, "tick");
    assert_int_equal(cn_send_after(n, 60, cn_self(self), tick, NULL), 0);
    cn_term_free(tick);
    spin_ms(100); /* the reply, the timer and the tick all arrive meanwhile, and wait their turn */
    note(a, "go done");
    return;
  }
  char *s = cn_term_to_string(msg);
  const char *what = cn_is_atom(msg, "tick") ? "tick" : (s && strncmp(s, "{'DOWN'", 7) == 0) ? "down" : s;
  note(a, what);
  cn_free(s);
  if (strcmp(what, "down") == 0) {
    cn_term *reason = cn_mk_atomc(n, "done");
    cn_proc_exit(self, reason);
    cn_term_free(reason);
  }
}

static void actor_term(cn_proc *self, const cn_term *reason, void *state) {
  (void)self;
  actor *a = state;
  char *s = cn_term_to_string(reason);
  char buf[64];
  snprintf(buf, sizeof buf, "terminate %s", s ? s : "?");
  cn_free(s);
  note(a, buf);
  __atomic_store_n(&a->terminated, 1, __ATOMIC_SEQ_CST);
}

static void test_dirty_uses_the_api(void **state) {
  (void)state;
  fix *f = fix_new(2);
  assert_int_equal(cn_gen_server_start(f->n, "plain", &plain_ops, NULL, NULL), 0);
  actor a = {.f = f};
  cn_proc_opts po = {.dirty = true, .terminate = actor_term};
  cn_pid pid;
  assert_int_equal(cn_spawn(f->n, actor_handle, &a, &po, &pid), 0);
  fix_run(f);
  assert_int_equal(cn_send_threadsafe(f->n, &pid, NULL, NULL, cn_mk_atomc(f->n, "go")), 0);
  long t0 = now_ms();
  while (!__atomic_load_n(&a.terminated, __ATOMIC_SEQ_CST) && now_ms() - t0 < 5000) spin_ms(5);
  fix_free(f);
  assert_string_equal(a.got, "go;go done;after;reply 0 ping;tick;down;terminate done;");
  assert_false(a.on_loop);
}

/* ---- Jobs --------------------------------------------------------------------------------------------------- */

typedef struct jobs {
  int results;
  long t_first, t_all;
  long t0;
  cn_ref refs[2];
  bool matched;
} jobs;

static cn_term *job_burn(cn_node *n, void *arg) {
  (void)n;
  spin_ms((long)(intptr_t)arg);
  return cn_mk_int((intptr_t)arg);
}

static void jobs_handle(cn_proc *self, const cn_term *msg, void *state) {
  jobs *j = state;
  if (cn_is_atom(msg, "go")) {
    j->t0 = now_ms();
    assert_int_equal(cn_dirty_job(self, job_burn, (void *)(intptr_t)300, &j->refs[0]), 0);
    assert_int_equal(cn_dirty_job(self, job_burn, (void *)(intptr_t)300, &j->refs[1]), 0);
    return;
  }
  const cn_term *ref = cn_tuple_elem(msg, 2, 0), *val = cn_tuple_elem(msg, 2, 1);
  if (ref && ref->type == CN_REF && val && val->type == CN_INT && val->v.i == 300) {
    cn_term r0 = cn_tv_ref(j->refs[0]), r1 = cn_tv_ref(j->refs[1]);
    if (cn_term_exact_eq(ref, &r0) || cn_term_exact_eq(ref, &r1)) j->matched = true;
    if (j->results == 1) j->t_all = now_ms() - j->t0;
    __atomic_add_fetch(&j->results, 1, __ATOMIC_SEQ_CST);
  }
}

static bool jobs_done(jobs *j) { return __atomic_load_n(&j->results, __ATOMIC_SEQ_CST) == 2; }

static void test_jobs_run_concurrently(void **state) {
  (void)state;
  fix *f = fix_new(2);
  jobs j = {0};
  cn_pid pid;
  assert_int_equal(cn_spawn(f->n, jobs_handle, &j, NULL, &pid), 0);
  assert_int_equal(cn_node_dirty_threads(f->n), 2);
  fix_run(f);
  assert_int_equal(cn_send_threadsafe(f->n, &pid, NULL, NULL, cn_mk_atomc(f->n, "go")), 0);
  long t0 = now_ms();
  while (!jobs_done(&j) && now_ms() - t0 < 5000) spin_ms(5);
  fix_free(f);
  assert_int_equal(j.results, 2);
  assert_true(j.matched);
  printf("  two 300 ms jobs on 2 threads took %ld ms\n", j.t_all);
  assert_true(j.t_all >= 300 && j.t_all < 580);
}

/* ---- Exit signals and node stop during a handler ------------------------------------------------------------ */

typedef struct slow {
  long t_handled; /* when the handler returned */
  long t_term;    /* when terminate ran */
  char reason[64];
  int terms;
} slow;

static void slow_handle(cn_proc *self, const cn_term *msg, void *state) {
  (void)self;
  (void)msg;
  slow *s = state;
  spin_ms(200);
  s->t_handled = now_ms();
}

static void slow_term(cn_proc *self, const cn_term *reason, void *state) {
  (void)self;
  slow *s = state;
  char *txt = cn_term_to_string(reason);
  snprintf(s->reason, sizeof s->reason, "%s", txt ? txt : "?");
  cn_free(txt);
  s->t_term = now_ms();
  __atomic_add_fetch(&s->terms, 1, __ATOMIC_SEQ_CST);
}

/* {Pid, Reason}: sends the exit signal from the loop. */
static void killer(cn_proc *self, const cn_term *msg, void *state) {
  (void)state;
  const cn_term *pid = cn_tuple_elem(msg, 2, 0);
  if (pid && pid->type == CN_PID) cn_exit(cn_proc_node(self), self, pid->v.pid, cn_tuple_elem(msg, 2, 1));
}

static void test_kill_waits_for_handler(void **state) {
  (void)state;
  fix *f = fix_new(1);
  slow s1 = {0}, s2 = {0};
  cn_proc_opts po = {.dirty = true, .terminate = slow_term};
  cn_pid p1, p2, k;
  assert_int_equal(cn_spawn(f->n, slow_handle, &s1, &po, &p1), 0);
  assert_int_equal(cn_spawn(f->n, slow_handle, &s2, &po, &p2), 0);
  assert_int_equal(cn_spawn(f->n, killer, NULL, NULL, &k), 0);
  fix_run(f);
  assert_int_equal(cn_send_threadsafe(f->n, &p1, NULL, NULL, cn_mk_atomc(f->n, "x")), 0);
  assert_int_equal(cn_send_threadsafe(f->n, &p1, NULL, NULL, cn_mk_atomc(f->n, "never")), 0);
  spin_ms(50);
  assert_int_equal(cn_send_threadsafe(f->n, &k, NULL, NULL, cn_mk_tuple(2, cn_mk_pid(p1), cn_mk_atomc(f->n, "kill"))),
                   0);
  long t0 = now_ms();
  while (!__atomic_load_n(&s1.terms, __ATOMIC_SEQ_CST) && now_ms() - t0 < 5000) spin_ms(5);
  /* killed once its handler returned; the second message never ran */
  assert_int_equal(__atomic_load_n(&s1.terms, __ATOMIC_SEQ_CST), 1);
  /* now stop the node while p2 computes: cn_node_run returns once the handler has, terminate runs once */
  assert_int_equal(cn_send_threadsafe(f->n, &p2, NULL, NULL, cn_mk_atomc(f->n, "x")), 0);
  spin_ms(50);
  fix_free(f);
  assert_string_equal(s1.reason, "killed");
  assert_true(s1.t_term >= s1.t_handled && s1.t_handled > 0);
  assert_string_equal(s2.reason, "shutdown");
  assert_int_equal(s2.terms, 1);
  assert_true(s2.t_term >= s2.t_handled && s2.t_handled > 0);
}

/* ---- Many dirty processes, few threads: every one keeps its own order --------------------------------------- */

#define NPROC 40
#define NMSG 200

typedef struct seqp {
  int next, bad;
} seqp;

static void seq_handle(cn_proc *self, const cn_term *msg, void *state) {
  seqp *s = state;
  const cn_term *i = cn_tuple_elem(msg, 2, 1), *to = cn_tuple_elem(msg, 2, 0);
  if (i && i->type == CN_INT) {
    if (i->v.i != s->next) s->bad++;
    __atomic_store_n(&s->next, (int)i->v.i + 1, __ATOMIC_SEQ_CST);
  }
  /* pass it on to the next process, from the pool thread */
  if (to && to->type == CN_PID) {
    cn_term *m = cn_mk_tuple(2, cn_mk_atomc(cn_proc_node(self), "none"), cn_term_copy(i));
    cn_send(cn_proc_node(self), self, to->v.pid, m);
    cn_term_free(m);
  }
}

static void test_many_processes(void **state) {
  (void)state;
  fix *f = fix_new(3);
  static seqp s[2 * NPROC];
  memset(s, 0, sizeof s);
  cn_pid pids[2 * NPROC];
  cn_proc_opts po = {.dirty = true};
  for (int i = 0; i < 2 * NPROC; i++) assert_int_equal(cn_spawn(f->n, seq_handle, &s[i], &po, &pids[i]), 0);
  fix_run(f);
  for (int m = 0; m < NMSG; m++)
    for (int i = 0; i < NPROC; i++)
      cn_send_threadsafe(f->n, &pids[i], NULL, NULL, cn_mk_tuple(2, cn_mk_pid(pids[NPROC + i]), cn_mk_int(m)));
  long t0 = now_ms();
  bool all = false;
  while (!all && now_ms() - t0 < 20000) {
    spin_ms(20);
    all = true;
    for (int i = 0; i < 2 * NPROC; i++)
      if (__atomic_load_n(&s[i].next, __ATOMIC_SEQ_CST) != NMSG) all = false;
  }
  fix_free(f);
  for (int i = 0; i < 2 * NPROC; i++) {
    assert_int_equal(s[i].next, NMSG);
    assert_int_equal(s[i].bad, 0);
  }
}

/* ---- Sends from a pool thread keep their order with the thread's other calls -------------------------------- */

typedef struct order {
  int got, bad;   /* messages the collector got in order / out of order */
  bool exit_last; /* the link's 'EXIT' came after all 300 */
  int done;
} order;

static void collect(cn_proc *self, const cn_term *msg, void *state) {
  (void)self;
  order *o = state;
  const cn_term *i = cn_tuple_elem(msg, 2, 1);
  if (i && i->type == CN_INT) {
    if (i->v.i != o->got) o->bad++;
    o->got++;
  } else if (cn_tuple_elem(msg, 3, 0) && cn_is_atom(cn_tuple_elem(msg, 3, 0), "EXIT")) {
    o->exit_last = o->got == 300;
    __atomic_store_n(&o->done, 1, __ATOMIC_SEQ_CST);
  }
}

/* Links to the collector, sends it 300 messages with borrowed calls in between, then exits: the 'EXIT' comes last. */
static void sender(cn_proc *self, const cn_term *msg, void *state) {
  (void)state;
  cn_node *n = cn_proc_node(self);
  const cn_term *to = cn_tuple_elem(msg, 2, 1);
  assert_int_equal(cn_link(self, to->v.pid), 0);
  for (int i = 0; i < 300; i++) {
    cn_term *m = cn_mk_tuple(2, cn_mk_atomc(n, "seq"), cn_mk_int(i));
    assert_int_equal(i % 2 ? cn_send(n, self, to->v.pid, m) : cn_send_to(n, self, to, m), 0);
    cn_term_free(m);
    if (i % 50 == 0) assert_true(cn_is_process_alive(n, to->v.pid));
  }
  cn_term *reason = cn_mk_atomc(n, "finished");
  cn_proc_exit(self, reason);
  cn_term_free(reason);
}

static void test_send_order(void **state) {
  (void)state;
  fix *f = fix_new(2);
  order o = {0};
  cn_proc_opts co = {.trap_exit = true}, so = {.dirty = true};
  cn_pid c, s;
  assert_int_equal(cn_spawn(f->n, collect, &o, &co, &c), 0);
  assert_int_equal(cn_spawn(f->n, sender, NULL, &so, &s), 0);
  fix_run(f);
  assert_int_equal(cn_send_threadsafe(f->n, &s, NULL, NULL, cn_mk_tuple(2, cn_mk_atomc(f->n, "go"), cn_mk_pid(c))), 0);
  long t0 = now_ms();
  while (!__atomic_load_n(&o.done, __ATOMIC_SEQ_CST) && now_ms() - t0 < 5000) spin_ms(5);
  fix_free(f);
  assert_int_equal(o.got, 300);
  assert_int_equal(o.bad, 0);
  assert_true(o.exit_last);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_order_and_replies),
      cmocka_unit_test(test_loop_not_stalled),
      cmocka_unit_test(test_dirty_uses_the_api),
      cmocka_unit_test(test_jobs_run_concurrently),
      cmocka_unit_test(test_kill_waits_for_handler),
      cmocka_unit_test(test_many_processes),
      cmocka_unit_test(test_send_order),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
