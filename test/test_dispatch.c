/* test_dispatch.c: cnode/dispatch.c and the sending side of OTP 28's signals, through a socketless peer
 * connection (conn_test_up/feed/output): ALTACT_SIG_SEND to pids, names and aliases, as messages and exits, with
 * and without priority; priority aliases and EEP 76's queue order; what the node sends to a peer with ALTACT_SIG
 * and to one without it; malformed ALTACT costs the connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "node_int.h"
#include "testutil.h"

#define PEER_FLAGS (DIST_FLAGS_DEFAULT)

static cn_node *N;
static const cn_atom *peer;
static cn_pid remote; /* a process of the peer */

/* A process that records its messages, in order, as text. */
typedef struct rec {
  int n;
  char first[128], last[128];
  int prio_at; /* index of the first message that is the atom `prio` (-1: none) */
  char end[128];
} rec;

static void rec_handle(cn_proc *self, const cn_term *msg, void *state) {
  (void)self;
  rec *r = state;
  char *t = cn_term_to_string(msg);
  if (r->n == 0) snprintf(r->first, sizeof r->first, "%s", t ? t : "?");
  snprintf(r->last, sizeof r->last, "%s", t ? t : "?");
  if (r->prio_at < 0 && t && strstr(t, "prio")) r->prio_at = r->n;
  r->n++;
  cn_free(t);
}

static void rec_end(cn_proc *self, const cn_term *reason, void *state) {
  (void)self;
  rec *r = state;
  char *t = cn_term_to_string(reason);
  snprintf(r->end, sizeof r->end, "%s", t ? t : "?");
  cn_free(t);
}

static cn_proc *spawn_rec(rec *r, bool trap) {
  memset(r, 0, sizeof *r);
  r->prio_at = -1;
  cn_proc_opts o = {.terminate = rec_end, .trap_exit = trap};
  cn_pid pid;
  assert_int_equal(cn_spawn(N, rec_handle, r, &o, &pid), 0);
  return proc_lookup(N, pid);
}

static int up(uint64_t flags) {
  if (test_node_quiet(&N, "disp@127.0.0.1")) return -1;
  peer = cn_intern(N, "peer@127.0.0.1");
  remote = (cn_pid){.node = peer, .id = 90, .serial = 0, .creation = 5};
  return conn_test_up(N, peer, flags) == 0 ? 0 : -1;
}
static int setup(void **st) {
  (void)st;
  return up(PEER_FLAGS);
}
static int setup_old(void **st) {
  (void)st;
  return up(PEER_FLAGS & ~DFLAG_ALTACT_SIG);
}
static int teardown(void **st) {
  (void)st;
  test_node_drop(&N);
  return 0;
}

/* Feeds ctl and payload (borrowed; payload may be NULL) as one normal-header frame from the peer. */
static int feed(const cn_term *ctl, const cn_term *payload) {
  cn_buf b = {0};
  size_t start = dist_msg_begin(&b);
  assert_int_not_equal(start, SIZE_MAX);
  assert_int_equal(cn_term_encode(ctl, &b), 0);
  if (payload) assert_int_equal(cn_term_encode(payload, &b), 0);
  assert_int_equal(dist_msg_end(&b, start, 0, 0), 0);
  int rc = conn_test_feed(N, peer, b.data, b.len);
  cn_buf_free(&b);
  return rc;
}

static int feed_altact(unsigned flags, const cn_term *to, const cn_term *payload) {
  cn_term e[5], ctl = dist_altact_ctl(e, flags, remote, to, NULL);
  return feed(&ctl, payload);
}

static cn_term A(const char *s) { return cn_tv_atom(cn_intern(N, s)); }

/* The first control message the node wrote to the peer since the last call, printed, with its payload. */
static void sent(char *ctl_out, size_t cap, char *pay_out, size_t pcap) {
  cn_buf out = {0};
  *ctl_out = *pay_out = 0;
  assert_int_equal(conn_test_output(N, peer, &out), 0);
  size_t off = 0;
  while (off < out.len && !*ctl_out) {
    const uint8_t *d;
    size_t dlen;
    ssize_t r = dist_frame_parse(out.data + off, out.len - off, (size_t)1 << 30, &d, &dlen);
    assert_true(r > 0);
    off += (size_t)r;
    if (!dlen) continue;
    dist_msg_hdr h;
    assert_int_equal(dist_msg_hdr_parse(d, dlen, &h), 0);
    size_t boff = h.body_off;
    cn_decode_opts o = {0};
    cn_term *ctl = NULL, *pay = NULL;
    assert_int_equal(cn_term_decode(N->atoms, d, dlen, &boff, &o, &ctl), 0);
    dist_ctl c;
    assert_int_equal(dist_ctl_parse(ctl, &c), 0);
    if (dist_op_has_payload(c.op)) assert_int_equal(cn_term_decode(N->atoms, d, dlen, &boff, &o, &pay), 0);
    char *a = cn_term_to_string(ctl), *p = pay ? cn_term_to_string(pay) : NULL;
    snprintf(ctl_out, cap, "%s", a);
    snprintf(pay_out, pcap, "%s", p ? p : "");
    cn_free(a);
    cn_free(p);
    cn_term_free(ctl);
    cn_term_free(pay);
  }
  cn_buf_free(&out);
}

/* ---- Incoming ---------------------------------------------------------------------------------------------- */

static void test_in_message_to_pid_name_alias(void **st) {
  (void)st;
  static rec r; /* static: the process outlives the test, to the teardown that ends it */
  cn_proc *p = spawn_rec(&r, false);
  assert_int_equal(cn_register(N, "named", p->pid), 0);
  cn_ref plain;
  assert_int_equal(cn_alias(p, &plain), 0);
  cn_term to_pid = cn_tv_pid(p->pid), to_name = A("named"), to_alias = cn_tv_ref(plain), m1 = A("m1"), m2 = A("m2"),
          m3 = A("m3"), nobody = A("nobody");
  assert_int_equal(feed_altact(0, &to_pid, &m1), 0);
  assert_int_equal(feed_altact(0, &to_name, &m2), 0);
  assert_int_equal(feed_altact(0, &to_alias, &m3), 0);
  assert_int_equal(feed_altact(DIST_ALTACT_PRIO, &nobody, &m1), 0); /* unregistered: dropped */
  test_spin(N);
  assert_int_equal(r.n, 3);
  assert_string_equal(r.first, "m1");
  assert_string_equal(r.last, "m3");
  /* The old ALIAS_SEND still arrives (OTP 28 and 29 send it to peers without ALTACT_SIG). */
  cn_term e[3] = {cn_tv_int(DOP_ALIAS_SEND), cn_tv_pid(remote), cn_tv_ref(plain)}, ctl = cn_tv_tuple(e, 3);
  assert_int_equal(feed(&ctl, &m2), 0);
  test_spin(N);
  assert_int_equal(r.n, 4);
  assert_int_equal(cn_unalias(p, plain), 0);
  assert_int_equal(feed_altact(0, &to_alias, &m1), 0); /* an inactive alias drops it */
  test_spin(N);
  assert_int_equal(r.n, 4);
  assert_int_equal(conn_peer_flags(N, peer), PEER_FLAGS); /* the connection lives on */
}

/* A priority message to a priority alias goes ahead of 1,000 queued ordinary ones; priority messages keep their
 * order among themselves; [priority] on a plain alias or a pid is an ordinary message (EEP 76). */
static void test_in_priority_order(void **st) {
  (void)st;
  static rec r;
  cn_proc *p = spawn_rec(&r, false);
  cn_ref prio_alias, plain;
  assert_int_equal(cn_alias_opts(p, CN_ALIAS_PRIORITY, &prio_alias), 0);
  assert_int_equal(cn_alias(p, &plain), 0);
  cn_term to_pid = cn_tv_pid(p->pid), to_prio = cn_tv_ref(prio_alias), to_plain = cn_tv_ref(plain);
  cn_term e[2];
  for (int i = 0; i < 1000; i++) {
    e[0] = A("ordinary");
    e[1] = cn_tv_int(i);
    cn_term m = cn_tv_tuple(e, 2);
    assert_int_equal(feed_altact(0, i % 2 ? &to_pid : &to_prio, &m), 0); /* no PRIO bit: ordinary */
  }
  cn_term nprio1 = A("not_prio_1"), nprio2 = A("not_prio_2"), p1 = A("prio_1"), p2 = A("prio_2");
  assert_int_equal(feed_altact(DIST_ALTACT_PRIO, &to_plain, &nprio1), 0);
  assert_int_equal(feed_altact(DIST_ALTACT_PRIO, &to_pid, &nprio2), 0);
  assert_int_equal(feed_altact(DIST_ALTACT_PRIO, &to_prio, &p1), 0);
  assert_int_equal(feed_altact(DIST_ALTACT_PRIO, &to_prio, &p2), 0);
  assert_int_equal(p->mq_len, 1004);
  test_spin(N);
  assert_int_equal(r.n, 1004);
  assert_int_equal(r.prio_at, 0);
  assert_string_equal(r.first, "prio_1");
  assert_string_equal(r.last, "not_prio_2");
  /* The queue is ordinary again once the priority messages are gone. */
  memset(&r, 0, sizeof r);
  r.prio_at = -1;
  cn_term x = A("x"), y = A("y");
  assert_int_equal(feed_altact(0, &to_pid, &x), 0);
  assert_int_equal(feed_altact(DIST_ALTACT_PRIO, &to_prio, &y), 0);
  test_spin(N);
  assert_string_equal(r.first, "y");
  assert_string_equal(r.last, "x");
}

static void test_in_reply_alias(void **st) {
  (void)st;
  static rec r;
  cn_proc *p = spawn_rec(&r, false);
  cn_ref ra;
  assert_int_equal(cn_alias_opts(p, CN_ALIAS_REPLY | CN_ALIAS_PRIORITY, &ra), 0);
  assert_int_equal(cn_alias_opts(p, 4, &ra), CN_EINVAL);
  assert_int_equal(cn_alias_opts(p, CN_ALIAS_REPLY, &ra), 0);
  cn_term to = cn_tv_ref(ra), m = A("reply");
  assert_int_equal(feed_altact(0, &to, &m), 0);
  assert_int_equal(feed_altact(0, &to, &m), 0); /* the alias went with the first */
  test_spin(N);
  assert_int_equal(r.n, 1);
  assert_int_equal(cn_unalias(p, ra), CN_ENOTFOUND);
}

/* EXIT: an exit signal as exit/2's, its reason the payload; priority 'EXIT' messages only through a priority
 * alias of a process that traps exits. */
static void test_in_exit(void **st) {
  (void)st;
  static rec r, t;
  cn_proc *p = spawn_rec(&r, false);
  cn_proc *q = spawn_rec(&t, true);
  cn_pid ppid = p->pid;
  cn_ref qa;
  assert_int_equal(cn_alias_opts(q, CN_ALIAS_PRIORITY, &qa), 0);
  assert_int_equal(cn_register(N, "trapper", q->pid), 0);
  cn_term to_p = cn_tv_pid(ppid), to_qa = cn_tv_ref(qa), to_name = A("trapper"), normal = A("normal"), boom = A("boom"),
          kill = A("kill"), m = A("queued");
  assert_int_equal(feed_altact(DIST_ALTACT_EXIT, &to_p, &normal), 0); /* normal from another: ignored */
  test_spin(N);
  assert_true(cn_is_process_alive(N, ppid));
  for (int i = 0; i < 10; i++) assert_int_equal(feed_altact(0, &to_name, &m), 0);
  assert_int_equal(feed_altact(DIST_ALTACT_EXIT | DIST_ALTACT_PRIO, &to_qa, &boom), 0);
  test_spin(N);
  assert_int_equal(t.n, 11);
  assert_true(strstr(t.first, "'EXIT'") && strstr(t.first, "boom"));
  assert_int_equal(feed_altact(DIST_ALTACT_EXIT, &to_name, &kill), 0); /* exit/2's kill: untrappable */
  test_spin(N);
  assert_string_equal(t.end, "killed");
  assert_int_equal(feed_altact(DIST_ALTACT_EXIT, &to_p, &boom), 0);
  test_spin(N);
  assert_false(cn_is_process_alive(N, ppid));
  assert_string_equal(r.end, "boom");
}

/* Shapes a BEAM never sends: the connection goes, the node lives on. */
static void test_in_malformed(void **st) {
  (void)st;
  cn_term m = A("m"), bad_to = A("not_a_pid");
  cn_term e[5] = {cn_tv_int(DOP_ALTACT_SIG_SEND), cn_tv_int(DIST_ALTACT_ALIAS), cn_tv_pid(remote), bad_to};
  cn_term ctl = cn_tv_tuple(e, 4);
  feed(&ctl, &m);
  test_spin(N);
  assert_int_equal(conn_peer_flags(N, peer), 0);
  assert_int_equal(conn_test_up(N, peer, PEER_FLAGS), 0);
  e[1] = cn_tv_int(DIST_ALTACT_TOKEN); /* the token its bit announces is missing */
  e[3] = cn_tv_pid(remote);
  feed(&ctl, &m);
  test_spin(N);
  assert_int_equal(conn_peer_flags(N, peer), 0);
}

/* ---- Outgoing ---------------------------------------------------------------------------------------------- */

static cn_ref remote_alias(void) { return (cn_ref){.node = peer, .creation = 5, .len = 3, .n = {7, 8, 9}}; }

/* Toward a peer with ALTACT_SIG: alias sends and priority signals by ALTACT_SIG_SEND, as erts does. */
static void test_out_altact(void **st) {
  (void)st;
  static rec r;
  cn_proc *p = spawn_rec(&r, false);
  char c[512], pay[256], want[512];
  cn_term ra = cn_tv_ref(remote_alias()), m = A("hi"), name = cn_tv_tuple((cn_term[]){A("srv"), cn_tv_atom(peer)}, 2),
          rp = cn_tv_pid(remote), reason = A("bye");
  char *ps = cn_term_to_string(&(cn_term){CN_PID, 0, {.pid = p->pid}}), *as = cn_term_to_string(&ra),
       *rps = cn_term_to_string(&rp);
  assert_int_equal(cn_send_alias(N, p, remote_alias(), &m), 0);
  sent(c, sizeof c, pay, sizeof pay);
  snprintf(want, sizeof want, "{37,4,%s,%s}", ps, as);
  assert_string_equal(c, want);
  assert_string_equal(pay, "hi");
  assert_int_equal(cn_send_opts(N, p, &ra, &m, CN_SEND_PRIORITY), 0);
  sent(c, sizeof c, pay, sizeof pay);
  snprintf(want, sizeof want, "{37,5,%s,%s}", ps, as);
  assert_string_equal(c, want);
  assert_int_equal(cn_send_opts(N, p, &name, &m, CN_SEND_PRIORITY), 0);
  sent(c, sizeof c, pay, sizeof pay);
  snprintf(want, sizeof want, "{37,9,%s,srv}", ps);
  assert_string_equal(c, want);
  assert_int_equal(cn_send_opts(N, p, &rp, &m, CN_SEND_PRIORITY), 0);
  sent(c, sizeof c, pay, sizeof pay);
  snprintf(want, sizeof want, "{37,1,%s,%s}", ps, rps);
  assert_string_equal(c, want);
  assert_int_equal(cn_send_opts(N, p, &name, &m, 0), 0); /* no priority: REG_SEND as before */
  sent(c, sizeof c, pay, sizeof pay);
  snprintf(want, sizeof want, "{6,%s,'',srv}", ps);
  assert_string_equal(c, want);
  assert_int_equal(cn_exit_opts(N, p, &ra, &reason, CN_SEND_PRIORITY), 0);
  sent(c, sizeof c, pay, sizeof pay);
  snprintf(want, sizeof want, "{37,21,%s,%s}", ps, as);
  assert_string_equal(c, want);
  assert_string_equal(pay, "bye");
  assert_int_equal(cn_exit_opts(N, p, &rp, &reason, CN_SEND_PRIORITY), 0);
  sent(c, sizeof c, pay, sizeof pay);
  snprintf(want, sizeof want, "{37,17,%s,%s}", ps, rps);
  assert_string_equal(c, want);
  assert_int_equal(cn_exit(N, p, remote, &reason), 0);
  sent(c, sizeof c, pay, sizeof pay);
  snprintf(want, sizeof want, "{26,%s,%s}", ps, rps);
  assert_string_equal(c, want);
  /* A gen_server reply to an alias-tagged call goes by ALTACT too. */
  cn_term tag_e = A("alias"), tag = {CN_LIST, 0, {0}};
  tag.v.list.len = 1;
  tag.v.list.e = &tag_e;
  tag.v.list.tail = &ra;
  cn_term from = cn_tv_tuple((cn_term[]){rp, tag}, 2);
  assert_int_equal(cn_gen_reply(p, &from, &m), 0);
  sent(c, sizeof c, pay, sizeof pay);
  snprintf(want, sizeof want, "{37,4,%s,%s}", ps, as);
  assert_string_equal(c, want);
  assert_int_equal(cn_send_opts(N, p, &m, &m, 2), CN_EINVAL);
  assert_int_equal(cn_exit_opts(N, p, &m, &reason, 0), CN_EINVAL);
  cn_free(ps);
  cn_free(as);
  cn_free(rps);
}

/* Toward a peer without it (OTP 25 to 27): the old messages; an exit to an alias is dropped, as OTP drops it. */
static void test_out_old_peer(void **st) {
  (void)st;
  static rec r;
  cn_proc *p = spawn_rec(&r, false);
  char c[512], pay[256], want[512];
  cn_term ra = cn_tv_ref(remote_alias()), m = A("hi"), rp = cn_tv_pid(remote), reason = A("bye");
  char *ps = cn_term_to_string(&(cn_term){CN_PID, 0, {.pid = p->pid}}), *as = cn_term_to_string(&ra),
       *rps = cn_term_to_string(&rp);
  assert_int_equal(cn_send_opts(N, p, &ra, &m, CN_SEND_PRIORITY), 0);
  sent(c, sizeof c, pay, sizeof pay);
  snprintf(want, sizeof want, "{33,%s,%s}", ps, as);
  assert_string_equal(c, want);
  assert_int_equal(cn_send_opts(N, p, &rp, &m, CN_SEND_PRIORITY), 0);
  sent(c, sizeof c, pay, sizeof pay);
  snprintf(want, sizeof want, "{22,%s,%s}", ps, rps);
  assert_string_equal(c, want);
  assert_int_equal(cn_exit_opts(N, p, &ra, &reason, 0), 0);
  sent(c, sizeof c, pay, sizeof pay);
  assert_string_equal(c, "");
  assert_int_equal(cn_exit_opts(N, p, &rp, &reason, CN_SEND_PRIORITY), 0);
  sent(c, sizeof c, pay, sizeof pay);
  snprintf(want, sizeof want, "{26,%s,%s}", ps, rps);
  assert_string_equal(c, want);
  cn_free(ps);
  cn_free(as);
  cn_free(rps);
}

/* Local priority sends and exits: the same queue rules without a wire. */
static void test_local_priority(void **st) {
  (void)st;
  static rec r;
  cn_proc *p = spawn_rec(&r, true);
  cn_ref pa;
  assert_int_equal(cn_alias_opts(p, CN_ALIAS_PRIORITY, &pa), 0);
  cn_term m = A("ordinary"), pm = A("prio_msg"), dest = cn_tv_ref(pa), reason = A("prio_exit");
  for (int i = 0; i < 1000; i++) assert_int_equal(cn_send(N, NULL, p->pid, &m), 0);
  assert_int_equal(cn_send_opts(N, NULL, &dest, &pm, CN_SEND_PRIORITY), 0);
  assert_int_equal(cn_exit_opts(N, NULL, &dest, &reason, CN_SEND_PRIORITY), 0);
  test_spin(N);
  assert_int_equal(r.n, 1002);
  assert_string_equal(r.first, "prio_msg");
  assert_string_equal(r.last, "ordinary");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_in_message_to_pid_name_alias, setup, teardown),
      cmocka_unit_test_setup_teardown(test_in_priority_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_in_reply_alias, setup, teardown),
      cmocka_unit_test_setup_teardown(test_in_exit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_in_malformed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_out_altact, setup, teardown),
      cmocka_unit_test_setup_teardown(test_out_old_peer, setup_old, teardown),
      cmocka_unit_test_setup_teardown(test_local_priority, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
