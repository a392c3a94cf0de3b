/* tnode.c: the threaded test node of tnode.h. */
#include "tnode.h"
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

static void tlog(cn_node *n, cn_log_level level, const char *msg, void *ctx) {
  (void)n;
  (void)level;
  tnode *t = ctx;
  pthread_mutex_lock(&t->mu);
  size_t l = strlen(t->log);
  snprintf(t->log + l, sizeof t->log - l, "%s\n", msg);
  pthread_cond_broadcast(&t->cv);
  pthread_mutex_unlock(&t->mu);
}

static void collector(cn_proc *self, const cn_term *msg, void *state) {
  (void)self;
  tnode *t = state;
  char buf[512];
  if (msg->type == CN_BINARY) {
    snprintf(buf, sizeof buf, "binary %zu", msg->v.bin.size);
  } else {
    char *txt = cn_term_to_string(msg);
    snprintf(buf, sizeof buf, "%s", txt ? txt : "?");
    cn_free(txt);
  }
  pthread_mutex_lock(&t->mu);
  t->msgs++;
  snprintf(t->last, sizeof t->last, "%s", buf);
  pthread_cond_broadcast(&t->cv);
  pthread_mutex_unlock(&t->mu);
}

static void rec_handle(cn_proc *self, const cn_term *msg, void *state) {
  (void)self;
  (void)msg;
  (void)state;
}

static void rec_end(cn_proc *self, const cn_term *reason, void *state) {
  (void)self;
  tnode *t = state;
  char *txt = cn_term_to_string(reason);
  pthread_mutex_lock(&t->mu);
  t->rec_ended++;
  snprintf(t->rec_reason, sizeof t->rec_reason, "%s", txt ? txt : "?");
  pthread_cond_broadcast(&t->cv);
  pthread_mutex_unlock(&t->mu);
  cn_free(txt);
}

static void echo(cn_proc *self, const cn_term *msg, void *state) {
  (void)state;
  const cn_term *from = cn_tuple_elem(msg, 2, 0);
  if (from && from->type == CN_PID) cn_send(cn_proc_node(self), self, from->v.pid, cn_tuple_elem(msg, 2, 1));
}

static void fwd(cn_proc *self, const cn_term *msg, void *state) {
  (void)state;
  cn_send_to(cn_proc_node(self), self, cn_tuple_elem(msg, 2, 0), cn_tuple_elem(msg, 2, 1));
}

static void on_nodes(cn_node *n, const cn_atom *node, bool up, const char *reason, void *ctx) {
  (void)n;
  (void)node;
  (void)reason;
  tnode *t = ctx;
  pthread_mutex_lock(&t->mu);
  if (up) t->nodeups++;
  else t->nodedowns++;
  pthread_cond_broadcast(&t->cv);
  pthread_mutex_unlock(&t->mu);
}

static void on_start(cn_node *n, int status, void *ctx) {
  (void)n;
  tnode *t = ctx;
  pthread_mutex_lock(&t->mu);
  t->ready = status ? -1 : 1;
  pthread_cond_broadcast(&t->cv);
  pthread_mutex_unlock(&t->mu);
}

static void *run_node(void *arg) {
  cn_node_run(((tnode *)arg)->n);
  return NULL;
}

void tnode_new(tnode *t, const cn_node_opts *o) {
  memset(t, 0, sizeof *t);
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  snprintf(t->name, sizeof t->name, "%s", o->name);
  t->epmd_port = o->no_epmd ? 0 : o->epmd_port;
  cn_node_opts opts = *o;
  opts.log = tlog;
  opts.log_ctx = t;
  assert_int_equal(cn_node_new(&t->n, NULL, &opts), 0);
  if (!opts.hidden) assert_int_equal(cn_global_start(t->n), 0); /* as the cnode program: a visible node runs global */
  cn_pid pid;
  assert_int_equal(cn_spawn(t->n, echo, NULL, NULL, &pid), 0);
  assert_int_equal(cn_register(t->n, "echo", pid), 0);
  assert_int_equal(cn_spawn(t->n, fwd, NULL, NULL, &pid), 0);
  assert_int_equal(cn_register(t->n, "fwd", pid), 0);
  assert_int_equal(cn_spawn(t->n, collector, t, NULL, &t->collector), 0);
  cn_proc_opts po = {.terminate = rec_end};
  assert_int_equal(cn_spawn(t->n, rec_handle, t, &po, &t->rec), 0);
  assert_int_equal(cn_node_monitor_nodes(t->n, on_nodes, t), 0);
}

void tnode_run(tnode *t) {
  assert_int_equal(cn_node_start(t->n, on_start, t), 0);
  assert_int_equal(pthread_create(&t->th, NULL, run_node, t), 0);
}

void tnode_spawn_named(tnode *t, const char *name, cn_handler_fn handler, void *state) {
  cn_pid p;
  assert_int_equal(cn_spawn(t->n, handler, state, NULL, &p), 0);
  assert_int_equal(cn_register(t->n, name, p), 0);
}

void tnode_run_ready(tnode *t) {
  tnode_run(t);
  assert_true(tnode_wait(t, tnode_is_ready, NULL) && t->ready == 1);
}

void tnode_start(tnode *t, const cn_node_opts *o) {
  tnode_new(t, o);
  tnode_run(t);
}

void tnode_stop(tnode *t) {
  cn_node_stop(t->n);
  pthread_join(t->th, NULL);
  cn_node_free(t->n);
  /* The EPMD forgets the name when it sees the registration's connection close; a node started next under the
     same name is refused until then. */
  char alive[64];
  snprintf(alive, sizeof alive, "%.*s", (int)strcspn(t->name, "@"), t->name);
  for (int i = 0; t->epmd_port && i < 100 && test_epmd_knows(t->epmd_port, alive); i++) sleep_ms(20);
  pthread_mutex_destroy(&t->mu);
  pthread_cond_destroy(&t->cv);
}

bool tnode_wait(tnode *t, bool (*pred)(tnode *, const void *), const void *arg) {
  return tnode_wait_ms(t, pred, arg, 10000);
}

bool tnode_wait_ms(tnode *t, bool (*pred)(tnode *, const void *), const void *arg, long ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
  pthread_mutex_lock(&t->mu);
  while (!pred(t, arg))
    if (pthread_cond_timedwait(&t->cv, &t->mu, &until)) break;
  bool ok = pred(t, arg);
  pthread_mutex_unlock(&t->mu);
  return ok;
}

bool tnode_is_ready(tnode *t, const void *unused) {
  (void)unused;
  return t->ready != 0;
}
bool tnode_has_msgs(tnode *t, const void *count) { return t->msgs >= *(const int *)count; }
bool tnode_log_has(tnode *t, const void *text) { return strstr(t->log, text) != NULL; }
bool tnode_last_has(tnode *t, const void *text) { return strstr(t->last, text) != NULL; }
bool tnode_rec_ended(tnode *t, const void *unused) {
  (void)unused;
  return t->rec_ended > 0;
}
bool tnode_has_nodedown(tnode *t, const void *unused) {
  (void)unused;
  return t->nodedowns > 0;
}

void tnode_send_via(tnode *via, const char *dest_name, const char *dest_node, cn_term *msg) {
  cn_node *n = via->n;
  cn_term *dest = cn_mk_tuple(2, cn_mk_atomc(n, dest_name), cn_mk_atomc(n, dest_node));
  assert_int_equal(cn_send_threadsafe(n, NULL, "fwd", NULL, cn_mk_tuple(2, dest, msg)), 0);
}
