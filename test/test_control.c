/* test_control.c: dist/control.c's control-message checks, with OTP 28's ALTACT_SIG_SEND in full: every flag
 * combination with and without a token, the builder read back (as terms and through the wire format), and what
 * erts refuses or ignores: short tuples, bad flags, unknown bits, a token the flags do not match. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "control.h"

static cn_atoms *tab;
static cn_pid from_pid, to_pid;
static cn_ref alias;
static cn_term name_t, token_t;

static int setup(void **st) {
  (void)st;
  if (cn_atoms_new(&tab, 0)) return -1;
  const cn_atom *peer = cn_atoms_get(tab, "peer@host"), *me = cn_atoms_get(tab, "me@host");
  from_pid = (cn_pid){.node = peer, .id = 77, .serial = 1, .creation = 9};
  to_pid = (cn_pid){.node = me, .id = 42, .serial = 0, .creation = 3};
  alias = (cn_ref){.node = me, .creation = 3, .len = 3, .n = {1, 2, 3}};
  name_t = cn_tv_atom(cn_atoms_get(tab, "server"));
  token_t = cn_tv_int(1234); /* erts never looks inside a token for this; any term will do */
  return 0;
}

static int teardown(void **st) {
  (void)st;
  cn_atoms_free(tab);
  return 0;
}

/* {37, Flags, From, To[, Token]} as a view in e. */
static cn_term altact(cn_term e[8], cn_term flags, cn_term from, cn_term to, const cn_term *token, uint32_t extra) {
  e[0] = cn_tv_int(DOP_ALTACT_SIG_SEND);
  e[1] = flags;
  e[2] = from;
  e[3] = to;
  uint32_t n = 4;
  if (token) e[n++] = *token;
  for (uint32_t i = 0; i < extra; i++) e[n++] = cn_tv_int(i);
  return cn_tv_tuple(e, n);
}

/* The To each addressing mode wants: alias a ref, name an atom, neither a pid. */
static cn_term good_to(unsigned flags) {
  if (flags & DIST_ALTACT_ALIAS) return cn_tv_ref(alias);
  if (flags & DIST_ALTACT_NAME) return name_t;
  return cn_tv_pid(to_pid);
}

static void test_table(void **st) {
  (void)st;
  assert_true(dist_op_has_payload(DOP_ALTACT_SIG_SEND));
  assert_string_equal(dist_op_name(DOP_ALTACT_SIG_SEND), "ALTACT_SIG_SEND");
  assert_int_equal(DOP_ALTACT_SIG_SEND, 37);
  /* erts dist.h ERTS_DOP_ALTACT_SIG_FLG_*. */
  assert_int_equal(DIST_ALTACT_PRIO, 1);
  assert_int_equal(DIST_ALTACT_TOKEN, 2);
  assert_int_equal(DIST_ALTACT_ALIAS, 4);
  assert_int_equal(DIST_ALTACT_NAME, 8);
  assert_int_equal(DIST_ALTACT_EXIT, 16);
  cn_term e[8], ctl = cn_tv_tuple(e, 1);
  e[0] = cn_tv_int(38); /* the next operation OTP may add */
  dist_ctl c;
  assert_int_equal(dist_ctl_parse(&ctl, &c), CN_EUNSUPPORTED);
}

/* All 32 flag values, each with the token present and absent and with later elements (erts: "might be extended"). */
static void test_every_flag_combination(void **st) {
  (void)st;
  for (unsigned f = 0; f < 32; f++) {
    for (int with_token = 0; with_token < 2; with_token++) {
      for (uint32_t extra = 0; extra < 3; extra++) {
        cn_term e[8],
            ctl = altact(e, cn_tv_int(f), cn_tv_pid(from_pid), good_to(f), with_token ? &token_t : NULL, extra);
        dist_ctl c;
        int rc = dist_ctl_parse(&ctl, &c);
        bool both = (f & DIST_ALTACT_ALIAS) && (f & DIST_ALTACT_NAME);
        /* The TOKEN bit needs a fifth element; an extra element stands in for it, as erts reads tuple[5]. */
        bool token_missing = (f & DIST_ALTACT_TOKEN) && !with_token && extra == 0;
        if (both || token_missing) {
          assert_int_equal(rc, CN_EPROTO);
          continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(c.op, DOP_ALTACT_SIG_SEND);
        assert_int_equal(c.altact, f);
        assert_ptr_equal(c.from, &e[2]);
        assert_ptr_equal(c.flags, &e[1]);
        assert_ptr_equal(c.ref, f & DIST_ALTACT_ALIAS ? &e[3] : NULL);
        assert_ptr_equal(c.name, f & DIST_ALTACT_NAME ? &e[3] : NULL);
        assert_ptr_equal(c.to, f & (DIST_ALTACT_ALIAS | DIST_ALTACT_NAME) ? NULL : &e[3]);
        assert_ptr_equal(c.token, f & DIST_ALTACT_TOKEN ? &e[4] : NULL);
        assert_null(c.reason); /* an exit's reason is the payload */
      }
    }
  }
}

/* To of the wrong type for its flags, and From that is not a pid. */
static void test_wrong_types(void **st) {
  (void)st;
  cn_term tos[] = {cn_tv_ref(alias), name_t, cn_tv_pid(to_pid), cn_tv_int(5)};
  for (unsigned f = 0; f < 32; f++) {
    if ((f & DIST_ALTACT_ALIAS) && (f & DIST_ALTACT_NAME)) continue;
    for (size_t i = 0; i < sizeof tos / sizeof tos[0]; i++) {
      cn_term want = good_to(f);
      if (tos[i].type == want.type) continue;
      cn_term e[8], ctl = altact(e, cn_tv_int(f), cn_tv_pid(from_pid), tos[i], &token_t, 0);
      dist_ctl c;
      assert_int_equal(dist_ctl_parse(&ctl, &c), CN_EPROTO);
    }
    cn_term bad_from[] = {name_t, cn_tv_ref(alias), cn_tv_int(0)};
    for (size_t i = 0; i < 3; i++) {
      cn_term e[8], ctl = altact(e, cn_tv_int(f), bad_from[i], good_to(f), &token_t, 0);
      dist_ctl c;
      assert_int_equal(dist_ctl_parse(&ctl, &c), CN_EPROTO);
    }
  }
}

static void test_short_tuples(void **st) {
  (void)st;
  cn_term e[8];
  altact(e, cn_tv_int(0), cn_tv_pid(from_pid), cn_tv_pid(to_pid), NULL, 0);
  for (uint32_t n = 1; n < 4; n++) {
    cn_term ctl = cn_tv_tuple(e, n);
    dist_ctl c;
    assert_int_equal(dist_ctl_parse(&ctl, &c), CN_EPROTO);
  }
  cn_term not_tuple = cn_tv_int(DOP_ALTACT_SIG_SEND);
  dist_ctl c;
  assert_int_equal(dist_ctl_parse(&not_tuple, &c), CN_EPROTO);
}

/* Flags: any non-negative integer, bignums included; only the low byte's known bits count. */
static void test_flag_values(void **st) {
  (void)st;
  struct {
    cn_term flags;
    int rc;
    unsigned want;
  } cases[] = {
      {cn_tv_int(-1), CN_EPROTO, 0},
      {cn_tv_int(INT64_MIN), CN_EPROTO, 0},
      {cn_tv_int(0xe0), 0, 0},                                   /* unknown bits alone: a plain message to a pid */
      {cn_tv_int(0xe0 | DIST_ALTACT_PRIO), 0, DIST_ALTACT_PRIO}, /* unknown bits ignored */
      {cn_tv_int(((int64_t)1 << 40) | 0x100), 0, 0},             /* bits past the low byte ignored, as erts does */
      {cn_tv_int(INT64_MAX), CN_EPROTO, 0},                      /* low byte 0xff: ALIAS and NAME together */
      {cn_tv_atom(cn_atoms_get(tab, "prio")), CN_EPROTO, 0},
      {cn_tv_pid(from_pid), CN_EPROTO, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cn_term e[8], ctl = altact(e, cases[i].flags, cn_tv_pid(from_pid), cn_tv_pid(to_pid), NULL, 0);
    dist_ctl c;
    assert_int_equal(dist_ctl_parse(&ctl, &c), cases[i].rc);
    if (!cases[i].rc) assert_int_equal(c.altact, cases[i].want);
  }
  /* Bignums: 2^64 + 17 (PRIO | EXIT), a negative one, and 2^80 (low byte 0). */
  uint8_t mag[11] = {17, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0};
  cn_term big = {CN_BIG, 0, {0}};
  big.v.big.n = 9;
  big.v.big.mag = mag;
  cn_term e[8], ctl = altact(e, big, cn_tv_pid(from_pid), cn_tv_pid(to_pid), NULL, 0);
  dist_ctl c;
  assert_int_equal(dist_ctl_parse(&ctl, &c), 0);
  assert_int_equal(c.altact, DIST_ALTACT_PRIO | DIST_ALTACT_EXIT);
  e[1].v.big.sign = 1;
  assert_int_equal(dist_ctl_parse(&ctl, &c), CN_EPROTO);
  uint8_t mag80[11] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  e[1].v.big.sign = 0;
  e[1].v.big.n = 11;
  e[1].v.big.mag = mag80;
  assert_int_equal(dist_ctl_parse(&ctl, &c), 0);
  assert_int_equal(c.altact, 0);
}

/* A token with no TOKEN bit is not a token (erts ignores the element); the bit with no element is an error. */
static void test_token_mismatch(void **st) {
  (void)st;
  cn_term e[8], ctl = altact(e, cn_tv_int(DIST_ALTACT_ALIAS), cn_tv_pid(from_pid), cn_tv_ref(alias), &token_t, 0);
  dist_ctl c;
  assert_int_equal(dist_ctl_parse(&ctl, &c), 0);
  assert_null(c.token);
  ctl = altact(e, cn_tv_int(DIST_ALTACT_ALIAS | DIST_ALTACT_TOKEN), cn_tv_pid(from_pid), cn_tv_ref(alias), NULL, 0);
  assert_int_equal(dist_ctl_parse(&ctl, &c), CN_EPROTO);
}

/* The builder: flags follow To's type and the token; what it builds parses back, also through the wire format. */
static void test_builder(void **st) {
  (void)st;
  cn_term tos[] = {cn_tv_pid(to_pid), name_t, cn_tv_ref(alias)};
  for (size_t i = 0; i < 3; i++) {
    for (unsigned f = 0; f < 32; f++) {
      for (int with_token = 0; with_token < 2; with_token++) {
        cn_term e[5];
        cn_term ctl = dist_altact_ctl(e, f, from_pid, &tos[i], with_token ? &token_t : NULL);
        unsigned want = (f & (DIST_ALTACT_PRIO | DIST_ALTACT_EXIT)) | (i == 1 ? DIST_ALTACT_NAME : 0) |
                        (i == 2 ? DIST_ALTACT_ALIAS : 0) | (with_token ? DIST_ALTACT_TOKEN : 0);
        assert_int_equal(ctl.v.tuple.arity, with_token ? 5 : 4);
        assert_int_equal(e[1].v.i, want);
        cn_buf b = {0};
        assert_int_equal(cn_term_encode(&ctl, &b), 0);
        cn_decode_opts o = {0};
        size_t off = 0;
        cn_term *back = NULL;
        assert_int_equal(cn_term_decode(tab, b.data, b.len, &off, &o, &back), 0);
        assert_int_equal(off, b.len);
        dist_ctl c;
        assert_int_equal(dist_ctl_parse(back, &c), 0);
        assert_int_equal(c.altact, want);
        assert_true(cn_pid_eq(c.from->v.pid, from_pid));
        if (i == 0) assert_true(cn_pid_eq(c.to->v.pid, to_pid));
        if (i == 1) assert_ptr_equal(c.name->v.atom, name_t.v.atom);
        if (i == 2) assert_true(cn_ref_eq(&c.ref->v.ref, &alias));
        assert_true(with_token ? c.token && c.token->v.i == 1234 : !c.token);
        cn_term_free(back);
        cn_buf_free(&b);
      }
    }
  }
}

/* Every truncation of an encoded ALTACT control term fails to decode or parses as what it is: never a crash. */
static void test_truncated_wire(void **st) {
  (void)st;
  cn_term e[5], to = cn_tv_ref(alias);
  cn_term ctl = dist_altact_ctl(e, DIST_ALTACT_PRIO, from_pid, &to, &token_t);
  cn_buf b = {0};
  assert_int_equal(cn_term_encode(&ctl, &b), 0);
  for (size_t len = 0; len < b.len; len++) {
    cn_decode_opts o = {0};
    size_t off = 0;
    cn_term *back = NULL;
    assert_int_not_equal(cn_term_decode(tab, b.data, len, &off, &o, &back), 0);
    assert_null(back);
  }
  cn_buf_free(&b);
}

/* ---- dist_ctl_fast: the common messages from their bytes -------------------------------------------------------- */

/* ctl encoded, without a version byte, in a buffer of exactly its size (so ASan sees any read past it). */
static uint8_t *wire(const cn_term *ctl, size_t *len) {
  cn_buf b = {0};
  assert_int_equal(cn_term_encode(ctl, &b), 0);
  size_t skip = b.len && b.data[0] == 131;
  *len = b.len - skip;
  uint8_t *w = malloc(*len ? *len : 1);
  memcpy(w, b.data + skip, *len);
  cn_buf_free(&b);
  return w;
}

/* What the full path makes of w: 0 and *dc, or its error. */
static int full(const uint8_t *w, size_t len, cn_term **t, dist_ctl *dc) {
  cn_decode_opts o = {0};
  size_t off = 0;
  int rc = cn_term_decode(tab, w, len, &off, &o, t);
  if (!rc && off != len) rc = CN_EPROTO;
  return rc ? rc : dist_ctl_parse(*t, dc);
}

static bool same_pid(const cn_term *a, const cn_term *b) {
  return a && b && a->type == CN_PID && b->type == CN_PID && cn_term_cmp(a, b) == 0;
}

/* Whenever the fast path takes bytes, the full path reads the same message from them. */
static void assert_agrees(const uint8_t *w, size_t len, const cn_atom *name) {
  dist_fast f;
  dist_ctl fc, dc;
  size_t k = dist_ctl_fast(w, len, from_pid.node, to_pid.node, name, &f, &fc);
  if (!k) return;
  cn_term *t = NULL;
  assert_true(k <= len);
  assert_int_equal(full(w, k, &t, &dc), 0);
  assert_int_equal(fc.op, dc.op);
  if (dc.from) assert_true(same_pid(fc.from, dc.from));
  else assert_null(fc.from);
  if (dc.to) assert_true(same_pid(fc.to, dc.to));
  if (dc.name) assert_ptr_equal(fc.name->v.atom, dc.name->v.atom);
  cn_term_free(t);
}

static void test_fast_path(void **st) {
  (void)st;
  const cn_atom *empty = cn_atoms_get(tab, ""), *other = cn_atoms_get(tab, "other@host");
  /* the three shapes, and what each refuses */
  cn_pid third = {other, 1, 2, 3};
  cn_term send_sender[3] = {cn_tv_int(DOP_SEND_SENDER), cn_tv_pid(from_pid), cn_tv_pid(to_pid)};
  cn_term send[3] = {cn_tv_int(DOP_SEND), cn_tv_atom(empty), cn_tv_pid(to_pid)};
  cn_term reg[4] = {cn_tv_int(DOP_REG_SEND), cn_tv_pid(from_pid), cn_tv_atom(empty), name_t};
  cn_term t_ss = cn_tv_tuple(send_sender, 3), t_s = cn_tv_tuple(send, 3), t_r = cn_tv_tuple(reg, 4);
  const cn_term *all[] = {&t_ss, &t_s, &t_r};
  for (size_t i = 0; i < 3; i++) {
    size_t len;
    uint8_t *w = wire(all[i], &len);
    dist_fast f;
    dist_ctl fc;
    assert_int_equal(dist_ctl_fast(w, len, from_pid.node, to_pid.node, name_t.v.atom, &f, &fc), len);
    assert_agrees(w, len, name_t.v.atom);
    /* truncated anywhere: refused, never read past the end */
    for (size_t n = 0; n < len; n++) {
      uint8_t *s = malloc(n ? n : 1);
      memcpy(s, w, n);
      assert_int_equal(dist_ctl_fast(s, n, from_pid.node, to_pid.node, name_t.v.atom, &f, &fc), 0);
      free(s);
    }
    /* every byte changed to every value: taken only where the full path reads the same message */
    for (size_t at = 0; at < len; at++) {
      uint8_t keep = w[at];
      for (int v = 0; v < 256; v++) {
        w[at] = (uint8_t)v;
        assert_agrees(w, len, name_t.v.atom);
      }
      w[at] = keep;
    }
    free(w);
  }
  /* REG_SEND to a name other than the memo, or with no memo yet: the full path */
  size_t len;
  uint8_t *w = wire(&t_r, &len);
  dist_fast f;
  dist_ctl fc;
  assert_int_equal(dist_ctl_fast(w, len, from_pid.node, to_pid.node, NULL, &f, &fc), 0);
  assert_int_equal(dist_ctl_fast(w, len, from_pid.node, to_pid.node, other, &f, &fc), 0);
  free(w);
  /* a sender of a third node, a receiver that is not ours, a SEND whose unused element is not '', a token */
  send_sender[1] = cn_tv_pid(third);
  w = wire(&t_ss, &len);
  assert_int_equal(dist_ctl_fast(w, len, from_pid.node, to_pid.node, NULL, &f, &fc), 0);
  free(w);
  send_sender[1] = cn_tv_pid(from_pid);
  send_sender[2] = cn_tv_pid(third);
  w = wire(&t_ss, &len);
  assert_int_equal(dist_ctl_fast(w, len, from_pid.node, to_pid.node, NULL, &f, &fc), 0);
  free(w);
  send[1] = name_t;
  w = wire(&t_s, &len);
  assert_int_equal(dist_ctl_fast(w, len, from_pid.node, to_pid.node, NULL, &f, &fc), 0);
  free(w);
  cn_term tt[4] = {cn_tv_int(DOP_SEND_SENDER_TT), cn_tv_pid(from_pid), cn_tv_pid(to_pid), token_t};
  cn_term t_tt = cn_tv_tuple(tt, 4);
  w = wire(&t_tt, &len);
  assert_int_equal(dist_ctl_fast(w, len, from_pid.node, to_pid.node, NULL, &f, &fc), 0);
  free(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_table, setup, teardown),
      cmocka_unit_test_setup_teardown(test_every_flag_combination, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wrong_types, setup, teardown),
      cmocka_unit_test_setup_teardown(test_short_tuples, setup, teardown),
      cmocka_unit_test_setup_teardown(test_flag_values, setup, teardown),
      cmocka_unit_test_setup_teardown(test_token_mismatch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_builder, setup, teardown),
      cmocka_unit_test_setup_teardown(test_truncated_wire, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fast_path, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
