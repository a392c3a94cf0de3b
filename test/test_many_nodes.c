/* test_many_nodes.c: a node with more connections than the fixed arrays its services once copied cn_nodes into
 * (256): 300 hidden peers handshaken by hand over dist.h's state machine, then one more, the owner of a Horde
 * supervisor entry. The node must see that owner as up (cn_node_is_up) and leave its child alone. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "cnode.h"
#include "dist.h"
#include "horde.h"
#include "testutil.h"
#include "tnode.h"
#include "tsup.h"

#define SUP TSUP_NAME
#define MOD "Elixir.MyApp.CCounter"
#define NPEERS 300
#define OWNER "cnode9@127.0.0.1"

/* ---- A peer handshaken by hand ---------------------------------------------------------------------------------- */

/* A hidden peer named name, connected to port with a completed handshake: its socket (kept open, never read). */
static int hidden_peer(uint16_t port, const char *name) {
  int fd = test_hand_peer(port, name, "secret", DIST_FLAGS_DEFAULT & ~DFLAG_PUBLISHED);
  assert_true(fd >= 0);
  return fd;
}

/* ---- The node: a supervisor member and a driver process ------------------------------------------------------- */

static cn_horde_sup *sup;

/* A child that only exists: a gen_server with no callbacks. */
static const cn_gen_server_ops nop_ops = {0};
static int nop_start(cn_node *n, const cn_atom *fun, const cn_term *args, void *ctx, cn_pid *pid, cn_term **error) {
  (void)fun, (void)args, (void)ctx, (void)error;
  return cn_gen_server_start(n, NULL, &nop_ops, NULL, pid);
}

/* drv: {is_up, Node} -> true | false (cn_node_is_up, any kind); connected -> how many nodes are up. It runs on
 * the node's loop, where the connection table may be read. */
static cn_term *drv(cn_proc *self, const cn_term *req, const cn_term *from, void *state) {
  (void)from, (void)state;
  cn_node *n = cn_proc_node(self);
  cn_term *reply = NULL;
  const cn_term *arg = cn_tuple_elem(req, 2, 1);
  if (arg && arg->type == CN_ATOM && cn_is_atom(cn_tuple_elem(req, 2, 0), "is_up"))
    reply = cn_mk_atomc(n, cn_node_is_up(n, arg->v.atom, CN_NODES_ALL) ? "true" : "false");
  else if (cn_is_atom(req, "connected")) reply = cn_mk_int((int64_t)cn_nodes(n, CN_NODES_ALL, NULL, 0));
  return reply ? reply : cn_mk_atomc(n, "badreq");
}

static const cn_gen_server_ops drv_ops = {.handle_call = drv};

static bool ups_at_least(tnode *t, const void *k) { return t->nodeups - t->nodedowns >= *(const int *)k; }

static cn_term *A(tnode *t, const char *a) { return cn_mk_atomc(t->n, a); }

static bool is_up(tnode *t, const char *node) {
  cn_term *r = tsup_call(t->n, "drv", NULL, cn_mk_tuple(2, A(t, "is_up"), A(t, node)));
  bool up = cn_is_atom(r, "true");
  assert_true(up || cn_is_atom(r, "false"));
  cn_term_free(r);
  return up;
}

/* A child entry owned by the connected node OWNER, which is not a supervisor member (no member_node_info says
 * it is alive): only the connection tells that its owner is up, so it must not be adopted (rule 5). With the
 * owner past the 256th connection, the supervisor's node_up (cn_nodes into names[256]) judged it down and took
 * the child over after orphan_ms. */
static void test_owner_past_256_connections(void **st) {
  (void)st;
  static tnode t;
  cn_node_opts o = {.name = "cnode1@127.0.0.1",
                    .cookie = "secret",
                    .epmd_port = test_epmd_port,
                    .listen_addr = "127.0.0.1",
                    .log_level = CN_LOG_WARN};
  tnode_new(&t, &o);
  cn_horde_sup_opts so = {.orphan_ms = 200, .crdt = {.sync_interval_ms = 50}};
  assert_int_equal(cn_horde_supervisor_start(t.n, SUP, &so, &sup), 0);
  assert_int_equal(cn_horde_entry(sup, MOD, nop_start, NULL), 0);
  assert_int_equal(cn_gen_server_start(t.n, "drv", &drv_ops, NULL, NULL), 0);
  tnode_run_ready(&t);

  long t0 = now_ms();
  static int fds[NPEERS + 1];
  for (int i = 0; i < NPEERS; i++) {
    char name[32];
    snprintf(name, sizeof name, "h%d@127.0.0.1", i);
    fds[i] = hidden_peer(cn_node_port(t.n), name);
  }
  fds[NPEERS] = hidden_peer(cn_node_port(t.n), OWNER); /* last: the table lists it past the first 256 */
  int all = NPEERS + 1;
  assert_true(tnode_wait(&t, ups_at_least, &all));
  print_message("  %d peers up in %ld ms\n", all, now_ms() - t0);
  cn_term *r = tsup_call(t.n, "drv", NULL, A(&t, "connected"));
  assert_int_equal(r->v.i, all);
  cn_term_free(r);

  /* The public call: every peer, the first and the last; not an unknown node, nor this node itself (as
   * lists:member(node(), nodes(connected)) is false). */
  assert_true(is_up(&t, OWNER));
  assert_true(is_up(&t, "h0@127.0.0.1"));
  assert_true(is_up(&t, "h299@127.0.0.1"));
  assert_false(is_up(&t, "h300@127.0.0.1"));
  assert_false(is_up(&t, "cnode1@127.0.0.1"));

  /* {{SUP, OWNER}, Spec, Pid} written as a peer would: the owner is connected, so the entry stays its own. */
  cn_pid fake = {cn_intern(t.n, OWNER), 77, 0, 7};
  cn_term *key = cn_mk_tuple(2, A(&t, "process"), cn_mk_int(901));
  cn_term *val = cn_mk_tuple(3, cn_mk_tuple(2, A(&t, SUP), A(&t, OWNER)), tsup_spec(t.n, MOD, 91, "permanent", true),
                             cn_mk_pid(fake));
  r = tsup_call(t.n, SUP ".Crdt", NULL,
                cn_mk_tuple(2, A(&t, "operation"), cn_mk_tuple(2, A(&t, "add"), cn_mk_list(2, key, val))));
  tsup_expect_atom(r, "ok");
  cn_term_free(r);
  sleep_ms(1000); /* five holds of orphan_ms: an adoption would have happened */
  tsup_view v;
  tsup_view_of((tsup_at){t.n, NULL}, &v);
  const tsup_ent *e = tsup_find(&v, 91);
  assert_non_null(e);
  print_message("  entry 91 owned by %s\n", e->owner);
  assert_string_equal(e->owner, OWNER);
  tsup_view_free(&v);
  assert_int_equal(tsup_count((tsup_at){t.n, NULL}), 0);

  for (int i = 0; i < all; i++) close(fds[i]);
  tnode_stop(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_owner_past_256_connections)};
  return cmocka_run_group_tests(tests, test_epmd_group_setup, test_epmd_group_teardown);
}
