/* test_fuse.c: the fuse's pure state machine with an injected clock (fuse's window edges, blow on the melt past
 * MaxMelts, heal after the reset time, reset, install again), fault injection's rate under a seeded generator, the
 * options fuse refuses, cn_fuse_parse on good and bad terms, and which call outcomes melt. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cn_alarm.h"
#include "cn_fuse.h"
#include "fuse_int.h"
#include "tnode.h"

static cn_fuse_opts standard(uint32_t mr, uint64_t window, uint64_t reset) {
  return (cn_fuse_opts){.kind = CN_FUSE_STANDARD, .max_melts = mr, .window_ms = window, .reset_ms = reset};
}

/* The case: {standard, 2, 10000}, {reset, 1000}: blows on the third melt, heals a second later. */
static void test_third_melt_blows(void **st) {
  (void)st;
  fuse_sm s = {0};
  cn_fuse_opts o = standard(2, 10000, 1000);
  assert_int_equal(fuse_sm_init(&s, &o, 1), 0);
  assert_int_equal(fuse_sm_ask(&s), 0);
  assert_int_equal(fuse_sm_melt(&s, 100), FUSE_SAME);
  assert_int_equal(fuse_sm_melt(&s, 200), FUSE_SAME);
  assert_int_equal(fuse_sm_ask(&s), 0);
  assert_int_equal(fuse_sm_melt(&s, 300), FUSE_TO_BLOWN);
  assert_int_equal(fuse_sm_ask(&s), CN_EBLOWN);
  assert_int_equal(s.heal_at, 1300);
  /* more melts while blown change nothing, and do not move the heal (fuse's install_timer) */
  assert_int_equal(fuse_sm_melt(&s, 900), FUSE_SAME);
  assert_int_equal(s.heal_at, 1300);
  assert_int_equal(fuse_sm_tick(&s, 1299), FUSE_SAME);
  assert_int_equal(fuse_sm_ask(&s), CN_EBLOWN);
  assert_int_equal(fuse_sm_tick(&s, 1300), FUSE_TO_OK);
  assert_int_equal(fuse_sm_ask(&s), 0);
  assert_int_equal(fuse_sm_tick(&s, 5000), FUSE_SAME);
  /* the melts were forgotten: two more do not blow it */
  assert_int_equal(fuse_sm_melt(&s, 1400), FUSE_SAME);
  assert_int_equal(fuse_sm_melt(&s, 1500), FUSE_SAME);
  assert_int_equal(fuse_sm_melt(&s, 1600), FUSE_TO_BLOWN);
  fuse_sm_free(&s);
}

/* A melt counts while Now - Time < Window: exactly Window old, it is gone. */
static void test_window_edges(void **st) {
  (void)st;
  fuse_sm s = {0};
  cn_fuse_opts o = standard(1, 1000, 50);
  assert_int_equal(fuse_sm_init(&s, &o, 1), 0);
  assert_int_equal(fuse_sm_melt(&s, 0), FUSE_SAME);
  assert_int_equal(fuse_sm_melt(&s, 1000), FUSE_SAME);     /* the first is 1000 old: out */
  assert_int_equal(fuse_sm_melt(&s, 1999), FUSE_TO_BLOWN); /* the second is 999 old: in */
  fuse_sm_reset(&s);
  assert_int_equal(fuse_sm_melt(&s, 5000), FUSE_SAME);
  assert_int_equal(fuse_sm_melt(&s, 3000), FUSE_TO_BLOWN); /* a clock that went back: age 0, in */
  fuse_sm_free(&s);
  /* a window of 0 never blows (every melt is already out), as fuse's in_period */
  o = standard(0, 0, 10);
  assert_int_equal(fuse_sm_init(&s, &o, 1), 0);
  for (int i = 0; i < 100; i++) assert_int_equal(fuse_sm_melt(&s, 7), FUSE_SAME);
  fuse_sm_free(&s);
  /* MaxMelts 0: the first melt blows it; reset 0 heals at the next tick */
  o = standard(0, 10, 0);
  assert_int_equal(fuse_sm_init(&s, &o, 1), 0);
  assert_int_equal(fuse_sm_melt(&s, 7), FUSE_TO_BLOWN);
  assert_int_equal(fuse_sm_tick(&s, 7), FUSE_TO_OK);
  fuse_sm_free(&s);
}

/* Many melts with a large MaxMelts: the ring grows to MaxMelts + 1 and counts right across its wrap. */
static void test_many_melts(void **st) {
  (void)st;
  fuse_sm s = {0};
  cn_fuse_opts o = standard(100, 1000, 10);
  assert_int_equal(fuse_sm_init(&s, &o, 1), 0);
  /* one melt every 20 ms: 50 in any window, never more than 100 */
  for (uint64_t t = 0; t < 100000; t += 20) assert_int_equal(fuse_sm_melt(&s, t), FUSE_SAME);
  assert_true(s.cap <= 101);
  /* then 100 at once: 150 in the window, blown by the 51st of them */
  int blown_at = -1;
  for (int i = 0; i < 100 && blown_at < 0; i++)
    if (fuse_sm_melt(&s, 100000) == FUSE_TO_BLOWN) blown_at = i;
  assert_int_equal(blown_at, 51);
  fuse_sm_free(&s);
}

static void test_reset_and_reinstall(void **st) {
  (void)st;
  fuse_sm s = {0};
  cn_fuse_opts o = standard(0, 1000, 500);
  assert_int_equal(fuse_sm_init(&s, &o, 1), 0);
  assert_int_equal(fuse_sm_reset(&s), FUSE_SAME);
  assert_int_equal(fuse_sm_melt(&s, 10), FUSE_TO_BLOWN);
  assert_int_equal(fuse_sm_reset(&s), FUSE_TO_OK);
  assert_int_equal(fuse_sm_tick(&s, 10000), FUSE_SAME); /* the heal was cancelled */
  assert_int_equal(fuse_sm_melt(&s, 20), FUSE_TO_BLOWN);
  o = standard(5, 1000, 500);
  assert_int_equal(fuse_sm_init(&s, &o, 1), 0); /* installed again: ok, no melts */
  assert_int_equal(fuse_sm_ask(&s), 0);
  for (int i = 0; i < 5; i++) assert_int_equal(fuse_sm_melt(&s, 30), FUSE_SAME);
  assert_int_equal(fuse_sm_melt(&s, 30), FUSE_TO_BLOWN);
  fuse_sm_free(&s);
}

/* fault_injection: ask says blown with probability Rate while ok; the same seed gives the same answers. */
static void test_fault_injection_rate(void **st) {
  (void)st;
  cn_fuse_opts o = {.kind = CN_FUSE_FAULT_INJECTION, .rate = 0.25, .max_melts = 3, .window_ms = 100, .reset_ms = 10};
  fuse_sm a = {0}, b = {0};
  assert_int_equal(fuse_sm_init(&a, &o, 42), 0);
  assert_int_equal(fuse_sm_init(&b, &o, 42), 0);
  int blown = 0, n = 100000;
  for (int i = 0; i < n; i++) {
    int r = fuse_sm_ask(&a);
    assert_int_equal(r, fuse_sm_ask(&b));
    blown += r == CN_EBLOWN;
  }
  assert_true(fabs((double)blown / n - 0.25) < 0.01);
  /* melts work as the standard strategy's; blown by melts it is always blown */
  for (int i = 0; i < 3; i++) assert_int_equal(fuse_sm_melt(&a, 5), FUSE_SAME);
  assert_int_equal(fuse_sm_melt(&a, 5), FUSE_TO_BLOWN);
  for (int i = 0; i < 100; i++) assert_int_equal(fuse_sm_ask(&a), CN_EBLOWN);
  fuse_sm_free(&a);
  fuse_sm_free(&b);
  /* rate 1.0: always blown; the generator stays in [0, 1) */
  o.rate = 1.0;
  assert_int_equal(fuse_sm_init(&a, &o, 7), 0);
  for (int i = 0; i < 1000; i++) assert_int_equal(fuse_sm_ask(&a), CN_EBLOWN);
  for (int i = 0; i < 100000; i++) {
    double u = fuse_sm_uniform(&a);
    assert_true(u >= 0.0 && u < 1.0);
  }
  fuse_sm_free(&a);
}

/* What fuse:install/2 refuses (options_ok/1). */
static void test_bad_options(void **st) {
  (void)st;
  cn_fuse_opts fi = {.kind = CN_FUSE_FAULT_INJECTION, .rate = 0.5, .max_melts = 1, .window_ms = 1, .reset_ms = 1};
  assert_int_equal(fuse_opts_check(&fi), 0);
  cn_fuse_opts bad[] = {fi, fi, fi, fi, fi, standard(CN_FUSE_MAX_MELTS + 1, 1, 1)};
  bad[0].rate = 0.0;
  bad[1].rate = 1.5;
  bad[2].rate = NAN;
  bad[3].max_melts = 0; /* fault_injection needs MaxR > 0 */
  bad[4].kind = (cn_fuse_kind)9;
  fuse_sm s = {0};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(fuse_opts_check(&bad[i]), CN_EINVAL);
    assert_int_equal(fuse_sm_init(&s, &bad[i], 1), CN_EINVAL);
  }
  assert_int_equal(fuse_opts_check(NULL), CN_EINVAL);
  cn_fuse_opts zero = standard(0, 0, 0); /* standard allows zeros */
  assert_int_equal(fuse_opts_check(&zero), 0);
}

static cn_atoms *tab;
static cn_term *A(const char *s) { return cn_mk_atom(cn_atoms_get(tab, s)); }

static void test_parse(void **st) {
  (void)st;
  assert_int_equal(cn_atoms_new(&tab, 0), 0);
  cn_fuse_opts o;
  cn_term *t = cn_mk_tuple(2, cn_mk_tuple(3, A("standard"), cn_mk_int(2), cn_mk_int(10000)),
                           cn_mk_tuple(2, A("reset"), cn_mk_int(1000)));
  assert_int_equal(cn_fuse_parse(t, &o), 0);
  assert_int_equal(o.kind, CN_FUSE_STANDARD);
  assert_int_equal(o.max_melts, 2);
  assert_int_equal(o.window_ms, 10000);
  assert_int_equal(o.reset_ms, 1000);
  cn_term_free(t);
  t = cn_mk_tuple(2, cn_mk_tuple(4, A("fault_injection"), cn_mk_float(0.5), cn_mk_int(3), cn_mk_int(100)),
                  cn_mk_tuple(2, A("reset"), cn_mk_int(0)));
  assert_int_equal(cn_fuse_parse(t, &o), 0);
  assert_int_equal(o.kind, CN_FUSE_FAULT_INJECTION);
  assert_true(o.rate == 0.5);
  cn_term_free(t);
  cn_term *bad[] = {
      A("standard"),
      cn_mk_tuple(2, cn_mk_tuple(3, A("standard"), cn_mk_int(-1), cn_mk_int(1)),
                  cn_mk_tuple(2, A("reset"), cn_mk_int(1))),
      cn_mk_tuple(2, cn_mk_tuple(3, A("standard"), cn_mk_int(1), cn_mk_int(1)),
                  cn_mk_tuple(2, A("heal"), cn_mk_int(1))),
      cn_mk_tuple(2, cn_mk_tuple(3, A("standard"), cn_mk_int(1), cn_mk_float(1.0)),
                  cn_mk_tuple(2, A("reset"), cn_mk_int(1))),
      cn_mk_tuple(2, cn_mk_tuple(4, A("fault_injection"), cn_mk_int(1), cn_mk_int(1), cn_mk_int(1)),
                  cn_mk_tuple(2, A("reset"), cn_mk_int(1))), /* Rate must be a float, as fuse's is_float */
      cn_mk_tuple(2, cn_mk_tuple(4, A("fault_injection"), cn_mk_float(0.5), cn_mk_int(0), cn_mk_int(1)),
                  cn_mk_tuple(2, A("reset"), cn_mk_int(1))),
      cn_mk_tuple(2, cn_mk_tuple(3, A("standard"), cn_mk_int(1), cn_mk_int(1)),
                  cn_mk_tuple(2, A("reset"), cn_mk_int(-5))),
      cn_mk_tuple(1, cn_mk_tuple(3, A("standard"), cn_mk_int(1), cn_mk_int(1))),
      cn_mk_tuple(2, cn_mk_tuple(3, A("standard"), cn_mk_int(1), cn_mk_int(1)), cn_mk_nil()),
      cn_mk_tuple(2, cn_mk_tuple(3, A("standard"), cn_mk_int(1), cn_mk_int(1)),
                  cn_mk_tuple(2, A("reset"), cn_mk_int(1LL << 40))),
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(cn_fuse_parse(bad[i], &o), CN_EINVAL);
    cn_term_free(bad[i]);
  }
  assert_int_equal(cn_fuse_parse(NULL, &o), CN_EINVAL);
}

/* Which outcomes of cn_call, cn_rpc and cn_erpc melt a fuse. */
static void test_call_failed(void **st) {
  (void)st;
  assert_true(cn_fuse_call_failed(CN_ETIMEDOUT, NULL));
  assert_false(cn_fuse_call_failed(CN_ECLOSED, NULL));
  assert_false(cn_fuse_call_failed(CN_ENOMEM, NULL));
  struct {
    int status;
    cn_term *t;
    bool melts;
  } cases[] = {
      {CN_EEXIT, A("noproc"), true},
      {CN_EEXIT, A("noconnection"), true},
      {CN_EEXIT, A("normal"), false},
      {CN_EEXIT, cn_mk_tuple(2, A("noproc"), A("x")), true},
      {CN_EEXIT, cn_mk_tuple(2, A("error"), cn_mk_tuple(2, A("erpc"), A("noconnection"))), true},
      {CN_EEXIT, cn_mk_tuple(2, A("exit"), cn_mk_tuple(2, A("signal"), A("noproc"))), true},
      {CN_EEXIT, cn_mk_tuple(2, A("error"), cn_mk_tuple(2, A("badarg"), A("x"))), false},
      {0, cn_mk_tuple(2, A("badrpc"), A("nodedown")), true},
      {0, cn_mk_tuple(2, A("badrpc"), A("timeout")), true},
      {0, cn_mk_tuple(2, A("badrpc"), cn_mk_tuple(2, A("EXIT"), A("noproc"))), true},
      {0, cn_mk_tuple(2, A("badrpc"), cn_mk_tuple(2, A("EXIT"), A("badarg"))), false},
      {0, A("ok"), false},
      {0, A("timeout"), false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_int_equal(cn_fuse_call_failed(cases[i].status, cases[i].t), cases[i].melts);
    cn_term_free(cases[i].t);
  }
  cn_atoms_free(tab);
}

/* ---- On a node: a driver process runs the steps on the loop; the test thread waits for what it records ---------- */

typedef struct drive {
  tnode *t;
  int step;
  int call_rc[4], done_status[4];
  int events[8], nev;
  int alarms_when_blown, alarms_after_heal;
  double ask_ns; /* cn_fuse_ask's cost, on the loop */
} drive;

static void on_fuse(cn_node *n, const char *name, cn_fuse_event ev, void *ctx) {
  (void)n;
  drive *d = ctx;
  if (strcmp(name, "f") || d->nev == 8) return;
  d->events[d->nev++] = ev;
}

static void call_done(cn_proc *self, int status, const cn_term *reply, void *ctx) {
  (void)reply;
  drive *d = ctx;
  pthread_mutex_lock(&d->t->mu);
  d->done_status[d->step] = status;
  d->step++;
  pthread_mutex_unlock(&d->t->mu);
  cn_term *go = cn_mk_atomc(cn_proc_node(self), "go");
  cn_send(cn_proc_node(self), NULL, cn_self(self), go);
  cn_term_free(go);
}

/* Steps: 0 install {standard, 0, 10000} {reset, 150}, call nobody (noproc melts: blown); 1 call again (CN_EBLOWN at
 * once, the callback never runs); 2 once healed, a call that times out (melts: blown again); then remove. */
static void driver(cn_proc *self, const cn_term *msg, void *state) {
  drive *d = state;
  cn_node *n = cn_proc_node(self);
  if (!cn_is_atom(msg, "go")) return;
  cn_term *nobody = cn_mk_atomc(n, "nobody"), *req = cn_mk_atomc(n, "hi");
  pthread_mutex_lock(&d->t->mu);
  int step = d->step;
  pthread_mutex_unlock(&d->t->mu);
  if (step == 0) {
    cn_fuse_opts o = standard(0, 10000, 150);
    assert_int_equal(cn_fuse_install(n, "f", &o), 0);
    assert_int_equal(cn_fuse_monitor(n, on_fuse, d), 0);
    d->call_rc[0] = cn_call_guarded(self, cn_fuse_guard(n, "f"), nobody, req, 1000, call_done, d);
  } else if (step == 1) {
    d->alarms_when_blown = (int)cn_alarm_count(n);
    d->call_rc[1] = cn_call_guarded(self, cn_fuse_guard(n, "f"), nobody, req, 1000, call_done, d);
    pthread_mutex_lock(&d->t->mu);
    d->step = 2; /* no callback comes: move on by hand */
    pthread_mutex_unlock(&d->t->mu);
    cn_term *go = cn_mk_atomc(n, "go");
    cn_send(n, NULL, cn_self(self), go);
    cn_term_free(go);
  } else if (step == 2 && cn_fuse_ask(n, "f") == 0) {
    d->alarms_after_heal = (int)cn_alarm_count(n);
    cn_term *silent = cn_mk_atomc(n, "silent");
    d->call_rc[2] = cn_call_guarded(self, cn_fuse_guard(n, "f"), silent, req, 50, call_done, d);
    cn_term_free(silent);
  } else if (step == 3) {
    d->call_rc[3] = cn_fuse_ask(n, "f");
    uint64_t t0 = uv_hrtime();
    int blown = 0;
    for (int i = 0; i < 1000000; i++) blown += cn_fuse_ask(n, "f") == CN_EBLOWN;
    d->ask_ns = (double)(uv_hrtime() - t0) / 1e6;
    assert_int_equal(blown, 1000000);
    assert_int_equal(cn_fuse_remove(n, "f"), 0);
    assert_int_equal(cn_fuse_ask(n, "f"), CN_ENOTFOUND);
    assert_null(cn_fuse_guard(n, "f"));
    pthread_mutex_lock(&d->t->mu);
    d->step = 4;
    pthread_mutex_unlock(&d->t->mu);
  } else if (step == 2) { /* not healed yet: look again soon */
    cn_term *go = cn_mk_atomc(n, "go");
    cn_send_after(n, 20, cn_self(self), go, NULL);
    cn_term_free(go);
  }
  cn_term_free(nobody);
  cn_term_free(req);
}

static void silent(cn_proc *self, const cn_term *msg, void *state) {
  (void)self;
  (void)msg;
  (void)state;
}

static bool step_is(tnode *t, const void *want) { return ((drive *)t->user)->step >= *(const int *)want; }

static void kick(tnode *t) {
  assert_int_equal(cn_send_threadsafe(t->n, NULL, "driver", NULL, cn_mk_atomc(t->n, "go")), 0);
}

static void test_guarded_calls(void **st) {
  (void)st;
  static tnode t;
  drive d = {.t = &t};
  cn_node_opts o = {.name = "fuse@127.0.0.1", .cookie = "secret", .no_epmd = true, .listen_addr = "127.0.0.1"};
  tnode_new(&t, &o);
  t.user = &d;
  tnode_spawn_named(&t, "driver", driver, &d);
  tnode_spawn_named(&t, "silent", silent, NULL);
  tnode_run_ready(&t);
  kick(&t); /* the driver goes through every step by itself */
  int want = 4;
  assert_true(tnode_wait(&t, step_is, &want));
  tnode_stop(&t);
  assert_int_equal(d.call_rc[0], 0);
  assert_int_equal(d.done_status[0], CN_EEXIT); /* noproc */
  assert_int_equal(d.call_rc[1], CN_EBLOWN);
  assert_int_equal(d.alarms_when_blown, 1); /* {{fuse_blown, f}, f} */
  assert_int_equal(d.alarms_after_heal, 0);
  assert_int_equal(d.call_rc[2], 0);
  assert_int_equal(d.done_status[2], CN_ETIMEDOUT);
  assert_int_equal(d.call_rc[3], CN_EBLOWN);
  printf("cn_fuse_ask: %.0f ns per call\n", d.ask_ns);
  assert_true(d.ask_ns < 1000); /* sub-microsecond, as the issue asks (well under it: a hash lookup) */
  int want_ev[] = {CN_FUSE_BLOWN, CN_FUSE_HEALED, CN_FUSE_BLOWN, CN_FUSE_REMOVED};
  assert_int_equal(d.nev, 4);
  for (int i = 0; i < 4; i++) assert_int_equal(d.events[i], want_ev[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_third_melt_blows),
      cmocka_unit_test(test_window_edges),
      cmocka_unit_test(test_many_melts),
      cmocka_unit_test(test_reset_and_reinstall),
      cmocka_unit_test(test_fault_injection_rate),
      cmocka_unit_test(test_bad_options),
      cmocka_unit_test(test_parse),
      cmocka_unit_test(test_call_failed),
      cmocka_unit_test(test_guarded_calls),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
