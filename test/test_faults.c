/* test_faults.c: failures inside the node where nobody sees them unless the node says so. An allocation made to
 * fail at every step of a connection setup and of the first message (one step a run, on the node's own thread),
 * a tick that cannot be queued, and a random generator that fails: each time the setup completes and the message arrives,
 * or the caller is told, or the connection ends at once with a reason. Never silence until a timeout, never a
 * lost message on a connection that stays up, never a spin. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>

#include <cmocka.h>

#include "cnode.h"
#include "dist.h"
#include "node_int.h"
#include "testutil.h"
#include "tnode.h"

/* The setup timeout is long, the wait for an outcome short: a setup left hanging by a lost step shows as "no
 * outcome" rather than as a timeout that happens to look like an answer. */
#define HS_TIMEOUT_MS 6000
#define OUTCOME_MS 2500

static cn_node_opts opts(const char *name) {
  return (cn_node_opts){.name = name,
                        .cookie = "faults",
                        .epmd_port = test_epmd_port,
                        .listen_addr = "127.0.0.1",
                        .handshake_timeout_ms = HS_TIMEOUT_MS,
                        .log_level = getenv("FAULT_RUN") ? CN_LOG_DEBUG : CN_LOG_INFO};
}

/* tnode_new, with the collector registered as `collector` (the runs send to it by name). */
static void node_new(tnode *t, const cn_node_opts *o) {
  tnode_new(t, o);
  assert_int_equal(cn_register(t->n, "collector", t->collector), 0);
}

static void clear_log(tnode *t) {
  pthread_mutex_lock(&t->mu);
  t->log[0] = 0;
  pthread_mutex_unlock(&t->mu);
}

static int counter(tnode *t, const int *field) {
  pthread_mutex_lock(&t->mu);
  int v = *field;
  pthread_mutex_unlock(&t->mu);
  return v;
}

/* ---- The sender: arms the fault on its own thread, then sends, and records what cn_send_to said --------------- */

static _Atomic long arm_skip = -1;
static _Atomic int send_rc, sends;

/* {Dest, Msg}: Dest ! Msg, with the fault armed from here on. */
static void sender(cn_proc *self, const cn_term *msg, void *state) {
  (void)state;
  if (arm_skip >= 0) ta_fault_arm(pthread_self(), arm_skip);
  send_rc = cn_send_to(cn_proc_node(self), self, cn_tuple_elem(msg, 2, 0), cn_tuple_elem(msg, 2, 1));
  sends++;
}

typedef struct {
  int nodedowns; /* the victim's count before the run */
  const char *peer;
} outcome_arg;

/* The victim said the connection failed: a failed setup is logged with the peer's name, an up one goes down. */
static bool victim_failed(tnode *t, const void *arg) {
  const outcome_arg *o = arg;
  char what[96];
  snprintf(what, sizeof what, "handshake with %s failed", o->peer);
  return t->nodedowns > o->nodedowns || strstr(t->log, what);
}

static bool peer_failed(tnode *t, const void *arg) {
  (void)arg;
  return t->nodedowns > 0 || strstr(t->log, "failed");
}

typedef struct {
  tnode *victim, *peer;
  int victim_msgs, peer_msgs;
  outcome_arg va;
} run_state;

/* One of the good outcomes, or none yet. */
static const char *outcome(run_state *r, bool outgoing) {
  if (outgoing && sends && send_rc) return "send refused";
  if (outgoing && counter(r->peer, &r->peer->msgs) > r->peer_msgs) return "delivered";
  if (!outgoing && counter(r->victim, &r->victim->msgs) > r->victim_msgs) return "delivered";
  pthread_mutex_lock(&r->victim->mu);
  bool vf = victim_failed(r->victim, &r->va);
  pthread_mutex_unlock(&r->victim->mu);
  if (vf) return "victim says failed";
  pthread_mutex_lock(&r->peer->mu);
  bool pf = peer_failed(r->peer, NULL);
  pthread_mutex_unlock(&r->peer->mu);
  return pf ? "peer says failed" : NULL;
}

static const char *await_outcome(run_state *r, bool outgoing) {
  long until = now_ms() + OUTCOME_MS;
  const char *o;
  while (!(o = outcome(r, outgoing)) && now_ms() < until) sleep_ms(5);
  return o;
}

/* Run `skip` of a sweep: a fresh peer, the fault armed `skip` allocations into the victim's work, one message.
 * Returns whether the fault fired (false: the whole exchange needs fewer allocations). */
static bool sweep_run(tnode *victim, long skip, bool outgoing, int *failures, int *fired_outcomes) {
  static tnode peer;
  char pname[64];
  snprintf(pname, sizeof pname, "p%ld_%d@127.0.0.1", skip, outgoing);
  cn_node_opts po = opts(pname);
  node_new(&peer, &po);
  tnode_run_ready(&peer);
  clear_log(victim);
  run_state r = {.victim = victim,
                 .peer = &peer,
                 .victim_msgs = counter(victim, &victim->msgs),
                 .peer_msgs = counter(&peer, &peer.msgs)};
  r.va = (outcome_arg){.nodedowns = counter(victim, &victim->nodedowns), .peer = pname};
  send_rc = 0;
  sends = 0;
  if (outgoing) {
    /* The victim's sender sends to the peer's collector: the victim connects, sets up, sends. */
    arm_skip = skip;
    cn_term *dest = cn_mk_tuple(2, cn_mk_atomc(victim->n, "collector"), cn_mk_atomc(victim->n, pname));
    tnode_send_via(victim, "sender", victim->name, cn_mk_tuple(2, dest, cn_mk_atomc(victim->n, "hello")));
  } else {
    /* The victim is idle (no connection, no timer that allocates): its next allocations are the accept. */
    arm_skip = -1;
    ta_fault_arm(victim->th, skip);
    tnode_send_via(&peer, "collector", victim->name, cn_mk_atomc(peer.n, "hello"));
  }
  const char *o = await_outcome(&r, outgoing);
  bool fired = ta_fault_fired();
  ta_fault_disarm();
  arm_skip = -1;
  if (!o) {
    (*failures)++;
    print_message("run %ld (%s): no outcome within %d ms (fault %s)\nvictim log:\n%s\npeer log:\n%s\n", skip,
                  outgoing ? "outgoing" : "incoming", OUTCOME_MS, fired ? "fired" : "not fired", victim->log, peer.log);
    ta_fault_print_trace();
  } else if (fired) {
    (*fired_outcomes)++;
  }
  tnode_stop(&peer);
  /* Every connection the victim counted up has gone down again before the next run arms a fault. */
  long until = now_ms() + 3000;
  while (counter(victim, &victim->nodedowns) < counter(victim, &victim->nodeups) && now_ms() < until) sleep_ms(5);
  sleep_ms(20);
  return fired;
}

static void sweep(bool outgoing) {
  static tnode victim;
  cn_node_opts vo = opts(outgoing ? "vout@127.0.0.1" : "vin@127.0.0.1");
  node_new(&victim, &vo);
  tnode_spawn_named(&victim, "sender", sender, NULL);
  tnode_run_ready(&victim);
  int failures = 0, fired = 0;
  /* FAULT_RUN=K runs only step K of the sweep (to look at one by hand, with the node's debug log). */
  const char *one = getenv("FAULT_RUN");
  long skip = one ? atol(one) : 0;
  for (; skip < 400 && sweep_run(&victim, skip, outgoing, &failures, &fired) && !one; skip++) {
  }
  if (one) {
    tnode_stop(&victim);
    return;
  }
  print_message("%s sweep: %ld runs with a failed allocation, %d of them ended one of the good ways, %d with no "
                "outcome\n",
                outgoing ? "outgoing" : "incoming", skip, fired, failures);
  tnode_stop(&victim);
  assert_true(skip > 5 && skip < 400); /* the sweep reached the end of the exchange's allocations */
  assert_int_equal(failures, 0);
}

/* The node connects out and sends its first message (queued until the connection is up): with any one allocation
 * failing, the message arrives, or cn_send_to says no, or the setup or connection ends at once with a reason. */
static void test_outgoing_setup_faults(void **state) {
  (void)state;
  sweep(true);
}

/* A peer connects in and sends: the same with the failure on the accepting node. */
static void test_incoming_setup_faults(void **state) {
  (void)state;
  sweep(false);
}

/* ---- The tick ------------------------------------------------------------------------------------------------- */

static bool fired_pred(tnode *t, const void *arg) {
  (void)t;
  (void)arg;
  return ta_fault_fired();
}

typedef struct {
  int fd;
  _Atomic bool stop;
} ticker;

/* The raw peer's side of the ticks, so the victim does not count it dead: 4 zero bytes every 200 ms. */
static void *tick_to_victim(void *arg) {
  ticker *t = arg;
  static const uint8_t zero[4];
  while (!t->stop && test_send_all(t->fd, zero, 4)) sleep_ms(200);
  return NULL;
}

/* A tick the node cannot queue closes the connection with a reason, at once, instead of going unsent (the peer
 * would count the node dead a net_ticktime later without knowing why). A tick allocates only when the output
 * queue is at its capacity: the victim writes one 8 MiB message to a peer that reads nothing, so the write stays in
 * flight and the ticks pile up 4 bytes at a time in the handshake's 64-byte buffer; the 16th must grow it. */
static void test_tick_fault(void **state) {
  (void)state;
  static tnode v;
  cn_node_opts vo = opts("vtick@127.0.0.1");
  vo.net_ticktime_s = 1; /* a tick every 250 ms */
  vo.otp_release = 25;   /* no rpc asking the peer's release: nothing but the 8 MiB and ticks in the queue */
  node_new(&v, &vo);
  tnode_run_ready(&v);
  int fd = test_hand_peer(cn_node_port(v.n), "rawtick@127.0.0.1", "faults", DIST_FLAGS_DEFAULT & ~DFLAG_PUBLISHED);
  assert_true(fd >= 0);
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  ticker tk = {.fd = fd};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, tick_to_victim, &tk), 0);

  static uint8_t big[8 << 20];
  cn_pid raw = {.node = cn_intern(v.n, "rawtick@127.0.0.1"), .id = 1, .serial = 0, .creation = 7};
  tnode_send_via(&v, "fwd", v.name, cn_mk_tuple(2, cn_mk_pid(raw), cn_mk_binary(big, sizeof big)));
  sleep_ms(500); /* the 8 MiB are framed and in flight */
  ta_fault_arm(v.th, 0);
  bool fired = tnode_wait_ms(&v, fired_pred, NULL, 8000);
  bool down = fired && tnode_wait_ms(&v, tnode_has_nodedown, NULL, 1000) && tnode_log_has(&v, "out of memory (tick)");
  ta_fault_disarm();
  tk.stop = true;
  pthread_join(th, NULL);
  close(fd);
  if (!down) {
    print_message("fault %s; victim log:\n%s\n", fired ? "fired" : "never fired", v.log);
    ta_fault_print_trace();
  }
  assert_true(fired);
  assert_true(down);
  tnode_stop(&v);
}

/* ---- The random generator failing ---------------------------------------------------------------------------- */

static int rand_fail(void *buf, size_t len) {
  memset(buf, 0, len); /* what a caller that ignores the result goes on with: zeros, forever */
  return UV_EIO;
}

static void start_cb(cn_node *n, int status, void *ctx) {
  (void)n;
  *(_Atomic int *)ctx = status ? status : 1;
}

typedef struct {
  cn_node *n;
  _Atomic int status;
  _Atomic bool returned;
} nstart;

static void *start_no_epmd(void *arg) {
  nstart *s = arg;
  if (cn_node_start(s->n, start_cb, (void *)&s->status)) s->status = -1000;
  s->returned = true;
  for (int i = 0; i < 100 && !s->status; i++) uv_run(cn_node_loop(s->n), UV_RUN_NOWAIT);
  return NULL;
}

/* A node without EPMD draws its creation from the system's generator (node_random), and every setup draws a
 * challenge: with the generator
 * failing, the start reports an error and a connection attempt fails at once; neither spins. */
static void test_rand_failure(void **state) {
  (void)state;
  static tnode v, p;
  cn_node_opts vo = opts("vrand@127.0.0.1"), po = opts("prand@127.0.0.1");
  node_new(&v, &vo);
  tnode_run_ready(&v);
  node_new(&p, &po);
  tnode_run_ready(&p);

  node_random_hook = rand_fail;
  tnode_send_via(&v, "collector", p.name, cn_mk_atomc(v.n, "hello"));
  bool said = tnode_wait_ms(&v, tnode_log_has, "no random bytes for a handshake challenge", OUTCOME_MS) &&
              tnode_wait_ms(&v, tnode_log_has, "handshake with prand@127.0.0.1 failed", OUTCOME_MS);

  cn_node_opts no = opts("vnoepmd@127.0.0.1");
  no.no_epmd = true;
  nstart s = {0};
  assert_int_equal(cn_node_new(&s.n, NULL, &no), 0);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, start_no_epmd, &s), 0);
  long until = now_ms() + OUTCOME_MS;
  while (!s.status && now_ms() < until) sleep_ms(5);
  int st = s.status;
  node_random_hook = NULL; /* the system's own again */
  if (!said) print_message("victim log:\n%s\n", v.log);
  assert_true(said);
  assert_int_equal(st, CN_EIO);
  pthread_join(th, NULL);
  cn_node_free(s.n);

  /* The node still connects once the generator works. */
  tnode_send_via(&v, "collector", p.name, cn_mk_atomc(v.n, "again"));
  int one = 1;
  assert_true(tnode_wait_ms(&p, tnode_has_msgs, &one, 3000));
  tnode_stop(&p);
  tnode_stop(&v);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_outgoing_setup_faults),
      cmocka_unit_test(test_incoming_setup_faults),
      cmocka_unit_test(test_tick_fault),
      cmocka_unit_test(test_rand_failure),
  };
  return cmocka_run_group_tests(tests, test_epmd_group_setup, test_epmd_group_teardown);
}
