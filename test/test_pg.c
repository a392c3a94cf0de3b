/* test_pg.c: OTP's pg and Phoenix.PubSub on a C node. The pure parts: group tables with pg's multiplicity, the
 * decoding of pg's messages (valid, malformed, truncated at every byte, oversized), the PG2 adapter's names and
 * forward_to_local. Then one node with no peers, driven from this thread: joins, leaves, member exits, monitors,
 * leave_all and stop; PubSub subscriptions and the local part of every broadcast. All under an allocator that
 * checks nothing leaks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cn_pg.h"
#include "cn_pubsub.h"
#include "cnode.h"
#include "pg_int.h"
#include "pubsub_int.h"
#include "testutil.h"

static cn_atoms *tab;
static const cn_atom *nodeA;

static int atoms_setup(void **st) {
  (void)st;
  ta_setup(st);
  assert_int_equal(cn_atoms_new(&tab, 0), 0);
  nodeA = cn_atoms_get(tab, "a@h");
  return 0;
}

static int atoms_teardown(void **st) {
  cn_atoms_free(tab);
  return ta_teardown(st);
}

static cn_pid pid(uint32_t id) { return (cn_pid){nodeA, id, 0, 1}; }
static cn_term *at(const char *s) { return cn_mk_atom(cn_atoms_get(tab, s)); }
static cn_term *P(uint32_t id) { return cn_mk_pid(pid(id)); }

/* ---- Tables ---------------------------------------------------------------------------------------------------- */

static void test_table(void **st) {
  (void)st;
  pg_table t = {0};
  cn_term *g1 = cn_mk_int(1), *g1f = cn_mk_float(1.0), *tup = cn_mk_tuple(2, at("g"), cn_mk_binary("x", 1));
  pg_group *a = pg_table_get(&t, g1), *b = pg_table_get(&t, g1f);
  assert_non_null(a);
  assert_ptr_not_equal(a, b); /* 1 and 1.0 are two groups: =:= */
  assert_ptr_equal(pg_table_find(&t, g1), a);
  /* a pid joins twice and leaves once: one membership is left */
  assert_int_equal(pg_pids_add(&a->all, pid(1)), 0);
  assert_int_equal(pg_pids_add(&a->all, pid(1)), 0);
  assert_int_equal(pg_pids_add(&a->all, pid(2)), 0);
  assert_true(pg_pids_del(&a->all, pid(1)));
  assert_int_equal(a->all.n, 2);
  assert_true(pg_pids_has(&a->all, pid(1)));
  assert_false(pg_pids_del(&a->all, pid(9)));
  cn_term *l = pg_pids_term(&a->all);
  assert_int_equal(l->type, CN_LIST);
  assert_int_equal(l->v.list.len, 2);
  assert_int_equal(l->v.list.e[0].v.pid.id, 1); /* order kept, as lists:delete */
  cn_term_free(l);
  pg_table_drop_empty(&t, a); /* not empty: stays */
  assert_ptr_equal(pg_table_find(&t, g1), a);
  pg_table_drop_empty(&t, b);
  assert_null(pg_table_find(&t, g1f));
  /* many groups: the table grows and finds each */
  for (int i = 0; i < 2000; i++) {
    cn_term *g = cn_mk_tuple(2, cn_mk_int(i), at("k"));
    assert_non_null(pg_table_get(&t, g));
    cn_term_free(g);
  }
  assert_int_equal(t.count, 2001);
  cn_term *g = cn_mk_tuple(2, cn_mk_int(1234), at("k"));
  assert_non_null(pg_table_find(&t, g));
  assert_null(pg_table_find(&t, tup));
  cn_term_free(g);
  pg_table_free(&t);
  cn_term_free(g1);
  cn_term_free(g1f);
  cn_term_free(tup);
}

/* ---- Messages -------------------------------------------------------------------------------------------------- */

static void test_decode_valid(void **st) {
  (void)st;
  pg_msg m;
  cn_term *t = cn_mk_tuple(2, at("discover"), P(7));
  assert_int_equal(pg_msg_decode(t, &m), 0);
  assert_int_equal(m.kind, PGM_DISCOVER);
  assert_int_equal(m.peer.id, 7);
  cn_term_free(t);
  t = cn_mk_tuple(3, at("discover"), P(7), cn_mk_int(1)); /* OTP 26+'s form with a protocol version */
  assert_int_equal(pg_msg_decode(t, &m), 0);
  assert_int_equal(m.kind, PGM_DISCOVER);
  cn_term_free(t);
  t = cn_mk_tuple(4, at("join"), P(7), at("g"), P(8));
  assert_int_equal(pg_msg_decode(t, &m), 0);
  assert_int_equal(m.kind, PGM_JOIN);
  pg_pids ps;
  assert_int_equal(pg_pids_decode(m.pids, &ps), 0);
  assert_int_equal(ps.n, 1);
  pg_pids_free(&ps);
  cn_term_free(t);
  t = cn_mk_tuple(4, at("leave"), P(7), cn_mk_list(2, P(8), P(8)), cn_mk_list(1, at("g")));
  assert_int_equal(pg_msg_decode(t, &m), 0);
  assert_int_equal(m.kind, PGM_LEAVE);
  assert_int_equal(pg_pids_decode(m.pids, &ps), 0);
  assert_int_equal(ps.n, 2);
  pg_pids_free(&ps);
  cn_term_free(t);
  t = cn_mk_tuple(3, at("sync"), P(7), cn_mk_list(1, cn_mk_tuple(2, at("g"), cn_mk_list(1, P(9)))));
  assert_int_equal(pg_msg_decode(t, &m), 0);
  assert_int_equal(m.kind, PGM_SYNC);
  const cn_term *g;
  assert_int_equal(pg_sync_entry(&m.groups->v.list.e[0], &g, &ps), 0);
  assert_true(cn_is_atom(g, "g"));
  pg_pids_free(&ps);
  cn_term_free(t);
  t = cn_mk_tuple(5, at("DOWN"), cn_mk_ref((cn_ref){nodeA, 1, 3, {1, 2, 3}}), at("process"), P(3), at("noconnection"));
  assert_int_equal(pg_msg_decode(t, &m), 0);
  assert_int_equal(m.kind, PGM_DOWN);
  assert_int_equal(m.pid.id, 3);
  cn_term_free(t);
  t = cn_mk_tuple(2, at("nodeup"), at("b@h"));
  assert_int_equal(pg_msg_decode(t, &m), 0);
  assert_int_equal(m.kind, PGM_NODEUP);
  cn_term_free(t);
}

static void test_decode_malformed(void **st) {
  (void)st;
  cn_term *bad[] = {
      at("discover"),
      cn_mk_tuple(0),
      cn_mk_tuple(1, cn_mk_int(1)),
      cn_mk_tuple(2, at("discover"), at("notapid")),
      cn_mk_tuple(4, at("discover"), P(1), cn_mk_int(1), cn_mk_int(2)),
      cn_mk_tuple(3, at("join"), P(1), at("g")),
      cn_mk_tuple(4, at("join"), at("x"), at("g"), P(1)),
      cn_mk_tuple(4, at("join"), P(1), at("g"), at("notpids")),
      cn_mk_listv(1, (cn_term *[]){P(1)}, P(2)), /* an improper list is not a message */
      cn_mk_tuple(4, at("leave"), P(1), P(2), at("g")),
      cn_mk_tuple(4, at("leave"), P(1), P(2), cn_mk_listv(1, (cn_term *[]){at("g")}, at("tail"))),
      cn_mk_tuple(3, at("sync"), P(1), at("x")),
      cn_mk_tuple(5, at("DOWN"), cn_mk_int(1), at("process"), P(1), at("r")),
      cn_mk_tuple(2, at("nodeup"), cn_mk_int(1)),
      cn_mk_tuple(4, at("other"), P(1), at("g"), P(1)),
  };
  pg_msg m;
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_non_null(bad[i]);
    assert_int_equal(pg_msg_decode(bad[i], &m), CN_EDECODE);
    cn_term_free(bad[i]);
  }
  /* pid lists: another element, an improper tail, a sync entry of another shape */
  pg_pids ps;
  cn_term *l = cn_mk_list(2, P(1), cn_mk_int(2));
  assert_int_equal(pg_pids_decode(l, &ps), CN_EDECODE);
  cn_term_free(l);
  l = cn_mk_listv(1, (cn_term *[]){P(1)}, P(2));
  assert_int_equal(pg_pids_decode(l, &ps), CN_EDECODE);
  cn_term_free(l);
  const cn_term *g;
  cn_term *e[] = {at("g"), cn_mk_tuple(2, at("g"), P(1)), cn_mk_tuple(3, at("g"), cn_mk_nil(), cn_mk_nil()),
                  cn_mk_tuple(2, at("g"), cn_mk_list(1, at("x")))};
  for (size_t i = 0; i < sizeof e / sizeof *e; i++) {
    assert_int_equal(pg_sync_entry(e[i], &g, &ps), CN_EDECODE);
    cn_term_free(e[i]);
  }
  assert_int_equal(pg_pids_decode(NULL, &ps), CN_EDECODE);
}

/* More pids than one message may carry: refused before anything is kept. */
static void test_decode_huge(void **st) {
  (void)st;
  size_t k = PG_MAX_PIDS + 1;
  cn_term **e = cn_malloc(k * sizeof *e);
  assert_non_null(e);
  for (size_t i = 0; i < k; i++) e[i] = P((uint32_t)i);
  cn_term *l = cn_mk_listv(k, e, NULL);
  cn_free(e);
  assert_non_null(l);
  pg_pids ps;
  assert_int_equal(pg_pids_decode(l, &ps), CN_ELIMIT);
  assert_null(ps.p);
  cn_term_free(l);
  /* a list header claiming 2^32-1 elements in a few bytes: the term decoder refuses it */
  static const uint8_t claim[] = {131, 104, 4, 100, 0, 4, 'j', 'o', 'i', 'n', 108, 0xff, 0xff, 0xff, 0xff, 106};
  cn_term *t = NULL;
  assert_int_not_equal(cn_term_from_binary(tab, claim, sizeof claim, NULL, &t), 0);
  assert_null(t);
}

/* A real join and sync, truncated at every length: decoding fails cleanly (guard page after the bytes). */
static void test_decode_truncated(void **st) {
  (void)st;
  cn_term *msgs[] = {
      cn_mk_tuple(4, at("join"), P(7), cn_mk_tuple(2, at("g"), cn_mk_binary("topic", 5)), cn_mk_list(2, P(8), P(9))),
      cn_mk_tuple(2, at("$gen_cast"),
                  cn_mk_tuple(3, at("sync"), P(7), cn_mk_list(1, cn_mk_tuple(2, at("g"), cn_mk_list(1, P(9)))))),
  };
  for (size_t k = 0; k < sizeof msgs / sizeof *msgs; k++) {
    cn_buf b = {0};
    assert_int_equal(cn_term_to_binary(msgs[k], &b), 0);
    for (size_t len = 0; len <= b.len; len++) {
      uint8_t *g = guard_copy(b.data, len);
      cn_term *t = NULL;
      int rc = cn_term_from_binary(tab, g, len, NULL, &t);
      if (len < b.len) {
        assert_int_not_equal(rc, 0);
      } else {
        assert_int_equal(rc, 0);
        pg_msg m;
        const cn_term *inner = k ? cn_tuple_elem(t, 2, 1) : t;
        assert_int_equal(pg_msg_decode(inner, &m), 0);
        assert_int_equal(m.kind, k ? PGM_SYNC : PGM_JOIN);
      }
      cn_term_free(t);
      guard_free(g, len);
    }
    cn_buf_free(&b);
    cn_term_free(msgs[k]);
  }
}

/* ---- PubSub names and forward_to_local ------------------------------------------------------------------------ */

static void test_pubsub_wire(void **st) {
  (void)st;
  char a[CN_ATOM_MAX_BYTES + 1], s[CN_ATOM_MAX_BYTES + 1];
  assert_int_equal(ps_adapter_name("Elixir.MyApp.PubSub", a, sizeof a), 0);
  assert_string_equal(a, "Elixir.MyApp.PubSub.Adapter");
  assert_int_equal(ps_adapter_name("my_ps", s, sizeof s), 0);
  assert_string_equal(s, "Elixir.my_ps.Adapter");
  assert_int_equal(ps_adapter_name("Elixir.", s, sizeof s), CN_ELIMIT);
  assert_int_equal(ps_adapter_name("Elixir.MyApp.PubSub", s, 10), CN_ELIMIT);
  assert_int_equal(ps_shard_name(a, 0, s, sizeof s), 0);
  assert_string_equal(s, "Elixir.MyApp.PubSub.Adapter");
  assert_int_equal(ps_shard_name(a, 3, s, sizeof s), 0);
  assert_string_equal(s, "Elixir.MyApp.PubSub.Adapter_4");
  static const struct {
    const char *g;
    int k;
  } idx[] = {{"Elixir.MyApp.PubSub.Adapter", 0},         {"Elixir.MyApp.PubSub.Adapter_2", 1},
             {"Elixir.MyApp.PubSub.Adapter_1024", 1023}, {"Elixir.MyApp.PubSub.Adapter_1", -1},
             {"Elixir.MyApp.PubSub.Adapter_0", -1},      {"Elixir.MyApp.PubSub.Adapter_02", -1},
             {"Elixir.MyApp.PubSub.Adapter_1025", -1},   {"Elixir.MyApp.PubSub.Adapter_99999999999", -1},
             {"Elixir.MyApp.PubSub.Adapter_", -1},       {"Elixir.MyApp.PubSub.Adapter_2x", -1},
             {"Elixir.MyApp.PubSub.Adapte", -1},         {"Elixir.Other.PubSub.Adapter", -1},
             {"Elixir.MyApp.PubSub.AdapterX", -1}};
  for (size_t i = 0; i < sizeof idx / sizeof *idx; i++)
    assert_int_equal(ps_shard_index(a, idx[i].g, strlen(idx[i].g)), idx[i].k);

  const cn_term *topic, *msg, *disp;
  cn_term *f = cn_mk_tuple(4, at("forward_to_local"), cn_mk_binary("t", 1), cn_mk_int(5), at("Elixir.Phoenix.PubSub"));
  assert_int_equal(ps_forward_decode(f, &topic, &msg, &disp), 0);
  assert_int_equal(msg->v.i, 5);
  cn_term_free(f);
  cn_term *bad[] = {
      cn_mk_tuple(4, at("forward_to_local"), at("t"), cn_mk_int(5), at("D")),
      cn_mk_tuple(4, at("forward_to_local"), cn_mk_binary("t", 1), cn_mk_int(5), cn_mk_binary("D", 1)),
      cn_mk_tuple(4, at("forward_to_local"), cn_mk_bitstring("t", 1, 3), cn_mk_int(5), at("D")),
      cn_mk_tuple(3, at("forward_to_local"), cn_mk_binary("t", 1), cn_mk_int(5)),
      cn_mk_tuple(4, at("forward"), cn_mk_binary("t", 1), cn_mk_int(5), at("D")),
      cn_mk_int(1),
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(ps_forward_decode(bad[i], &topic, &msg, &disp), CN_EDECODE);
    cn_term_free(bad[i]);
  }
}

/* ---- One node ------------------------------------------------------------------------------------------------- */

/* A process that keeps its last messages printed; on {mon, Scope, Group | '$scope'} it monitors. */
typedef struct rec {
  int got;
  char last[256];
  cn_ref ref;
  cn_term *now;
} rec;

static void rec_handle(cn_proc *self, const cn_term *msg, void *state) {
  rec *r = state;
  const cn_term *g = cn_tuple_elem(msg, 3, 2);
  if (cn_is_atom(cn_tuple_elem(msg, 3, 0), "mon")) {
    assert_int_equal(cn_pg_monitor(self, "pg", cn_is_atom(g, "$scope") ? NULL : g, &r->ref, &r->now), 0);
    return;
  }
  char *s = cn_term_to_string(msg);
  snprintf(r->last, sizeof r->last, "%s", s ? s : "");
  cn_free(s);
  r->got++;
}

static void spin(cn_node *n) {
  for (int i = 0; i < 20; i++) uv_run(cn_node_loop(n), UV_RUN_NOWAIT);
}

static cn_pid spawn_rec(cn_node *n, rec *r) {
  cn_pid p;
  assert_int_equal(cn_spawn(n, rec_handle, r, NULL, &p), 0);
  return p;
}

static size_t nmembers(cn_node *n, const cn_term *g, bool local) {
  cn_pid *m;
  size_t k;
  assert_int_equal(cn_pg_members(n, "pg", g, local, &m, &k), 0);
  cn_free(m);
  return k;
}

static void kill_pid(cn_node *n, cn_pid p) {
  cn_term kill = cn_tv_atom(cn_intern(n, "kill"));
  assert_int_equal(cn_exit(n, NULL, p, &kill), 0);
}

static void test_node_pg(void **st) {
  (void)st;
  cn_node_opts o = {.name = "pg1@127.0.0.1", .cookie = "c", .log_level = CN_LOG_ERROR};
  cn_node *n = NULL;
  assert_int_equal(cn_node_new(&n, NULL, &o), 0);
  assert_int_equal(cn_pg_start(n, "pg"), 0);
  assert_int_equal(cn_pg_start(n, "pg"), CN_EEXIST);
  assert_true(cn_pg_running(n, "pg"));
  rec a = {0}, b = {0}, sm = {0}, gm = {0};
  cn_pid pa = spawn_rec(n, &a), pb = spawn_rec(n, &b), psm = spawn_rec(n, &sm), pgm = spawn_rec(n, &gm);
  cn_term *g = cn_mk_atomc(n, "g"), *h = cn_mk_tuple(2, cn_mk_atomc(n, "h"), cn_mk_int(1));
  cn_term *mon_s = cn_mk_tuple(3, cn_mk_atomc(n, "mon"), cn_mk_atomc(n, "pg"), cn_mk_atomc(n, "$scope"));
  cn_term *mon_g = cn_mk_tuple(3, cn_mk_atomc(n, "mon"), cn_mk_atomc(n, "pg"), cn_term_copy(g));
  assert_int_equal(cn_pg_join(n, "pg", g, pa), 0);
  cn_send(n, NULL, psm, mon_s);
  cn_send(n, NULL, pgm, mon_g);
  spin(n);
  assert_non_null(sm.now);
  assert_int_equal(sm.now->type, CN_MAP);
  assert_int_equal(sm.now->v.map.size, 1);
  assert_int_equal(gm.now->type, CN_LIST);
  /* joins, twice for one pid; errors */
  assert_int_equal(cn_pg_join(n, "pg", g, pb), 0);
  assert_int_equal(cn_pg_join(n, "pg", g, pb), 0);
  assert_int_equal(cn_pg_join(n, "pg", h, pb), 0);
  assert_int_equal(cn_pg_join(n, "nope", g, pb), CN_ENOTFOUND);
  assert_int_equal(cn_pg_join(n, "pg", g, (cn_pid){cn_intern(n, "x@y"), 1, 0, 1}), CN_EINVAL);
  assert_int_equal(nmembers(n, g, false), 3);
  assert_int_equal(nmembers(n, g, true), 3);
  cn_term *wg = cn_pg_which_groups(n, "pg", false);
  assert_int_equal(wg->v.list.len, 2);
  cn_term_free(wg);
  spin(n);
  assert_int_equal(sm.got, 3); /* the scope monitor: three joins */
  assert_int_equal(gm.got, 2); /* the group monitor: g's two */
  assert_non_null(strstr(gm.last, "join,g,"));
  /* leave one of pb's joins; pb is still in g once */
  assert_int_equal(cn_pg_leave(n, "pg", g, pb), 0);
  assert_int_equal(nmembers(n, g, false), 2);
  assert_int_equal(cn_pg_leave(n, "pg", g, pa), 0);
  assert_int_equal(cn_pg_leave(n, "pg", g, pa), CN_ENOTFOUND);
  /* pb exits: it leaves g and h, and the monitors hear of it */
  kill_pid(n, pb);
  spin(n);
  assert_int_equal(nmembers(n, g, false), 0);
  assert_int_equal(nmembers(n, h, false), 0);
  assert_non_null(strstr(sm.last, "leave,"));
  assert_int_equal(gm.got, 5);
  /* a monitor that ends is dropped; demonitor of an unknown ref */
  assert_int_equal(cn_pg_demonitor(n, "pg", sm.ref), 0);
  assert_int_equal(cn_pg_demonitor(n, "pg", sm.ref), CN_ENOTFOUND);
  kill_pid(n, pgm);
  spin(n);
  /* leave_all and stop */
  assert_int_equal(cn_pg_join(n, "pg", g, pa), 0);
  assert_int_equal(cn_pg_join(n, "pg", h, pa), 0);
  assert_int_equal(cn_pg_leave_all(n, NULL), 2);
  assert_int_equal(nmembers(n, g, false), 0);
  assert_int_equal(cn_pg_join(n, "pg", g, pa), 0);
  assert_int_equal(cn_pg_stop(n, "pg"), 0);
  assert_false(cn_pg_running(n, "pg"));
  spin(n);
  assert_int_equal(cn_pg_start(n, "pg"), 0); /* the name is free again */
  cn_term_free(g);
  cn_term_free(h);
  cn_term_free(mon_s);
  cn_term_free(mon_g);
  cn_node_free(n);
  cn_term_free(sm.now);
  cn_term_free(gm.now);
}

static void test_node_pubsub(void **st) {
  (void)st;
  cn_node_opts o = {.name = "ps1@127.0.0.1", .cookie = "c", .log_level = CN_LOG_ERROR};
  cn_node *n = NULL;
  const char *ps = "Elixir.T.PubSub";
  assert_int_equal(cn_node_new(&n, NULL, &o), 0);
  cn_term *m = cn_mk_atomc(n, "m");
  assert_int_equal(cn_pubsub_broadcast(n, ps, "t", m), CN_ENOTFOUND);
  assert_int_equal(cn_pubsub_start(n, ps, 2), 0);
  assert_int_equal(cn_pubsub_start(n, ps, 2), CN_EEXIST);
  assert_int_equal(cn_pubsub_pool_size(n, ps), 2);
  assert_true(cn_pg_running(n, CN_PUBSUB_SCOPE));
  cn_pid shard;
  assert_int_equal(cn_whereis(n, "Elixir.T.PubSub.Adapter_2", &shard), 0);
  rec a = {0}, b = {0};
  cn_pid pa = spawn_rec(n, &a), pb = spawn_rec(n, &b);
  assert_int_equal(cn_pubsub_subscribe(n, ps, "t", pa), 0);
  assert_int_equal(cn_pubsub_subscribe(n, ps, "t", pa), 0); /* twice: each message twice */
  assert_int_equal(cn_pubsub_subscribe(n, ps, "t", pb), 0);
  assert_int_equal(cn_pubsub_subscribe(n, ps, "u", pb), 0);
  assert_int_equal(cn_pubsub_broadcast(n, ps, "t", m), 0);
  spin(n);
  assert_int_equal(a.got, 2);
  assert_int_equal(b.got, 1);
  assert_string_equal(a.last, "m");
  assert_int_equal(cn_pubsub_broadcast_from(n, pa, ps, "t", m), 0);
  assert_int_equal(cn_pubsub_local_broadcast(n, ps, "u", m), 0);
  assert_int_equal(cn_pubsub_direct_broadcast(n, cn_node_name(n), ps, "t", m), 0); /* to itself: local */
  spin(n);
  assert_int_equal(a.got, 4);
  assert_int_equal(b.got, 4);
  /* forward_to_local from a peer, sent to a shard: delivered with no sender */
  cn_term *f = cn_mk_tuple(4, cn_mk_atomc(n, "forward_to_local"), cn_mk_binary("u", 1), cn_mk_int(1),
                           cn_mk_atomc(n, "Elixir.Some.Dispatcher"));
  assert_int_equal(cn_send(n, NULL, shard, f), 0);
  cn_term_free(f);
  spin(n);
  assert_int_equal(b.got, 5);
  assert_string_equal(b.last, "1");
  assert_int_equal(cn_pubsub_unsubscribe(n, ps, "t", pa), 0);
  assert_int_equal(cn_pubsub_broadcast(n, ps, "t", m), 0);
  spin(n);
  assert_int_equal(a.got, 4);
  /* a subscriber that ends is dropped */
  kill_pid(n, pb);
  spin(n);
  assert_int_equal(cn_pubsub_subscribe(n, ps, "t", pb), CN_ENOPROC);
  assert_int_equal(cn_pubsub_broadcast(n, ps, "u", m), 0);
  spin(n);
  cn_term_free(m);
  cn_node_free(n);
}

int main(void) {
  ta_install();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_table, atoms_setup, atoms_teardown),
      cmocka_unit_test_setup_teardown(test_decode_valid, atoms_setup, atoms_teardown),
      cmocka_unit_test_setup_teardown(test_decode_malformed, atoms_setup, atoms_teardown),
      cmocka_unit_test_setup_teardown(test_decode_huge, atoms_setup, atoms_teardown),
      cmocka_unit_test_setup_teardown(test_decode_truncated, atoms_setup, atoms_teardown),
      cmocka_unit_test_setup_teardown(test_pubsub_wire, atoms_setup, atoms_teardown),
      cmocka_unit_test_setup_teardown(test_node_pg, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_node_pubsub, ta_setup, ta_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
