/* test_sorted_set.c: the sorted set (sorted_set/) against a reference model on 100,000 random operations, the
 * order across releases, and its gen_server's requests and hostile input. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cn_sorted_set.h"

static cn_atoms *A;

static int setup(void **state) {
  (void)state;
  return cn_atoms_new(&A, 100000);
}

static int teardown(void **state) {
  (void)state;
  cn_atoms_free(A);
  return 0;
}

static cn_term *atomt(const char *name) { return cn_mk_atom(cn_atoms_get(A, name)); }

/* ---- The reference model: an array kept sorted by a plain scan ------------------------------------------- */

typedef struct entry {
  cn_term *score, *member;
} entry;

typedef struct model {
  entry *e;
  size_t n, cap;
  int rel;
} model;

/* {Score, Member} in term order, members that are == but not =:= by the exact order: the documented order. */
static int m_cmp(const model *m, const cn_term *sa, const cn_term *ma, const cn_term *sb, const cn_term *mb) {
  int c = cn_term_cmp_otp(sa, sb, m->rel);
  if (c) return c;
  if ((c = cn_term_cmp_otp(ma, mb, m->rel))) return c;
  cn_term_compare_otp(ma, mb, true, m->rel, &c);
  return c;
}

static long m_find(const model *m, const cn_term *member) {
  for (size_t i = 0; i < m->n; i++)
    if (cn_term_exact_eq_otp(m->e[i].member, member, m->rel)) return (long)i;
  return -1;
}

static void m_remove(model *m, const cn_term *member) {
  long i = m_find(m, member);
  if (i < 0) return;
  cn_term_free(m->e[i].score);
  cn_term_free(m->e[i].member);
  memmove(&m->e[i], &m->e[i + 1], (m->n - (size_t)i - 1) * sizeof *m->e);
  m->n--;
}

static void m_add(model *m, const cn_term *score, const cn_term *member) {
  m_remove(m, member);
  if (m->n == m->cap) {
    m->cap = m->cap ? m->cap * 2 : 64;
    m->e = realloc(m->e, m->cap * sizeof *m->e);
  }
  size_t at = 0;
  while (at < m->n && m_cmp(m, m->e[at].score, m->e[at].member, score, member) < 0) at++;
  memmove(&m->e[at + 1], &m->e[at], (m->n - at) * sizeof *m->e);
  m->e[at] = (entry){cn_term_copy(score), cn_term_copy(member)};
  m->n++;
}

static void m_free(model *m) {
  for (size_t i = 0; i < m->n; i++) {
    cn_term_free(m->e[i].score);
    cn_term_free(m->e[i].member);
  }
  free(m->e);
}

/* ---- Random terms: a pool with ties under ==, -0.0 and 0.0, nesting ---------------------------------------- */

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static cn_term *rand_term(int depth) {
  char buf[32];
  switch (rnd() % (depth > 1 ? 7 : 9)) {
  case 0: return cn_mk_int((int64_t)(rnd() % 40) - 20);
  case 1: return cn_mk_float((double)((int64_t)(rnd() % 40) - 20)); /* equal to an integer under == */
  case 2: return cn_mk_float(rnd() % 2 ? 0.0 : -0.0);
  case 3: snprintf(buf, sizeof buf, "a%u", (unsigned)(rnd() % 30)); return atomt(buf);
  case 4: snprintf(buf, sizeof buf, "b%u", (unsigned)(rnd() % 30)); return cn_mk_binary(buf, strlen(buf));
  case 5: return cn_mk_nil();
  case 6: return cn_mk_float((double)(rnd() % 1000) / 7.0);
  case 7: return cn_mk_tuple(2, rand_term(depth + 1), rand_term(depth + 1));
  default: {
    cn_term *kv[4] = {rand_term(depth + 1), rand_term(depth + 1), rand_term(depth + 1), rand_term(depth + 1)};
    if (cn_term_exact_eq(kv[0], kv[2])) { /* one key, as a map holds it */
      cn_term_free(kv[2]);
      cn_term_free(kv[3]);
      return cn_mk_map(1, kv);
    }
    return cn_mk_map(2, kv);
  }
  }
}

/* ---- Checks ------------------------------------------------------------------------------------------------ */

typedef struct cmp_ctx {
  const model *m;
  size_t i;
  int bad;
} cmp_ctx;

static int range_cmp(const cn_term *score, const cn_term *member, void *ctx) {
  cmp_ctx *c = ctx;
  if (c->i >= c->m->n || !cn_term_exact_eq(score, c->m->e[c->i].score) ||
      !cn_term_exact_eq(member, c->m->e[c->i].member))
    c->bad++;
  c->i++;
  return 0;
}

static void check_all(const cn_sset *s, const model *m) {
  assert_int_equal(cn_sset_size(s), m->n);
  cmp_ctx c = {m, 0, 0};
  assert_int_equal(cn_sset_range(s, 0, SIZE_MAX, range_cmp, &c), 0);
  assert_int_equal(c.bad, 0);
  assert_int_equal(c.i, m->n);
  for (size_t i = 0; i < m->n; i++) {
    size_t r;
    assert_int_equal(cn_sset_rank(s, m->e[i].member, &r), 0);
    assert_int_equal(r, i);
  }
}

#define POOL 5000

static void test_against_model(void **state) {
  (void)state;
  /* Members come from a pool, so they recur (re-adds, removes that hit) and the model stays small enough to scan. */
  static cn_term *pool[POOL];
  for (int i = 0; i < POOL; i++) pool[i] = rand_term(0);
  for (int rel = 25; rel <= 27; rel += 2) {
    cn_sset *s;
    model m = {.rel = rel};
    assert_int_equal(cn_sset_new(&s, rel), 0);
    long counts[6] = {0};
    for (int op = 0; op < 100000; op++) {
      unsigned k = (unsigned)(rnd() % 100);
      const cn_term *member = pool[rnd() % POOL];
      if (k < 40) {
        cn_term *score = rand_term(1);
        assert_int_equal(cn_sset_add(s, score, member), 0);
        m_add(&m, score, member);
        cn_term_free(score);
        counts[0]++;
      } else if (k < 60) {
        bool had = m_find(&m, member) >= 0;
        assert_int_equal(cn_sset_remove(s, member), had);
        m_remove(&m, member);
        counts[1]++;
      } else if (k < 75) {
        long i = m_find(&m, member);
        const cn_term *sc = cn_sset_score(s, member);
        if (i < 0) assert_null(sc);
        else assert_true(sc && cn_term_exact_eq(sc, m.e[i].score));
        counts[2]++;
      } else if (k < 90) {
        long i = m_find(&m, member);
        size_t r = 0;
        assert_int_equal(cn_sset_rank(s, member, &r), i < 0 ? CN_ENOTFOUND : 0);
        if (i >= 0) assert_int_equal(r, (size_t)i);
        counts[3]++;
      } else if (k < 98) {
        size_t start = m.n ? rnd() % (m.n + 2) : 0, stop = start + rnd() % 12;
        cmp_ctx c = {&m, start, 0};
        assert_int_equal(cn_sset_range(s, start, stop, range_cmp, &c), 0);
        size_t expect_end = stop + 1 < m.n ? stop + 1 : m.n;
        assert_int_equal(c.bad, 0);
        assert_int_equal(c.i, start < m.n ? expect_end : start);
        const cn_term *sc, *mem;
        if (start < m.n) {
          assert_int_equal(cn_sset_at(s, start, &sc, &mem), 0);
          assert_true(cn_term_exact_eq(mem, m.e[start].member));
        } else {
          assert_int_equal(cn_sset_at(s, start, &sc, &mem), CN_ENOTFOUND);
        }
        counts[4]++;
      } else {
        assert_int_equal(cn_sset_size(s), m.n);
        counts[5]++;
      }
      if (op % 10000 == 9999) check_all(s, &m);
    }
    check_all(s, &m);
    printf("  OTP %d: %ld add, %ld remove, %ld score, %ld rank, %ld range, %ld size; %zu members at the end\n", rel,
           counts[0], counts[1], counts[2], counts[3], counts[4], counts[5], m.n);
    assert_true(m.n > 300);
    m_free(&m);
    cn_sset_free(s);
  }
  for (int i = 0; i < POOL; i++) cn_term_free(pool[i]);
}

/* A set that learns the cluster's release: 0.0 and -0.0 become two members, and the order stays consistent. */
static void test_release_change(void **state) {
  (void)state;
  cn_sset *s;
  assert_int_equal(cn_sset_new(&s, 0), 0);
  assert_int_equal(cn_sset_release(s), CN_OTP_RELEASE_DEFAULT);
  cn_term *z = cn_mk_float(0.0), *nz = cn_mk_float(-0.0), *one = cn_mk_int(1), *onef = cn_mk_float(1.0);
  assert_int_equal(cn_sset_add(s, one, z), 0);
  assert_int_equal(cn_sset_add(s, one, nz), 0); /* OTP 25: the same member, its score replaced */
  assert_int_equal(cn_sset_size(s), 1);
  assert_int_equal(cn_sset_set_release(s, 27), 0);
  assert_int_equal(cn_sset_add(s, one, nz), 0); /* OTP 27: -0.0 =/= 0.0 (the member kept) */
  assert_int_equal(cn_sset_size(s), 2);
  assert_int_equal(cn_sset_add(s, one, one), 0);
  assert_int_equal(cn_sset_add(s, one, onef), 0);
  size_t r;
  const cn_term *m;
  assert_int_equal(cn_sset_rank(s, nz, &r), 0);
  assert_int_equal(r, 0); /* -0.0 first in the exact order */
  assert_int_equal(cn_sset_at(s, 2, NULL, &m), 0);
  assert_int_equal(m->type, CN_INT);               /* 1 before 1.0 */
  assert_int_equal(cn_sset_set_release(s, 25), 0); /* back to a coarser release: 0.0 and -0.0 are one again */
  assert_int_equal(cn_sset_size(s), 3);
  assert_int_equal(cn_sset_set_release(s, 5), CN_EINVAL);
  cn_term_free(z);
  cn_term_free(nz);
  cn_term_free(one);
  cn_term_free(onef);
  cn_sset_free(s);
}

/* Ascending, descending and equal scores, then everything removed: sizes and ranks stay right at every step. */
static void test_bulk_and_drain(void **state) {
  (void)state;
  cn_sset *s;
  assert_int_equal(cn_sset_new(&s, 27), 0);
  for (int i = 0; i < 20000; i++) {
    cn_term *sc = cn_mk_int(i % 3 ? i : 5), *mem = cn_mk_int(20000 - i);
    assert_int_equal(cn_sset_add(s, sc, mem), 0);
    cn_term_free(sc);
    cn_term_free(mem);
  }
  assert_int_equal(cn_sset_size(s), 20000);
  size_t prev = 0;
  const cn_term *psc = NULL, *pm = NULL;
  for (size_t i = 0; i < 20000; i++) {
    const cn_term *sc, *m;
    assert_int_equal(cn_sset_at(s, i, &sc, &m), 0);
    if (psc) assert_true(cn_term_cmp(psc, sc) < 0 || (cn_term_cmp(psc, sc) == 0 && cn_term_cmp(pm, m) < 0));
    psc = sc;
    pm = m;
    assert_int_equal(cn_sset_rank(s, m, &prev), 0);
    assert_int_equal(prev, i);
  }
  for (int i = 0; i < 20000; i++) {
    cn_term *mem = cn_mk_int(i + 1);
    assert_true(cn_sset_remove(s, mem));
    assert_false(cn_sset_remove(s, mem));
    cn_term_free(mem);
  }
  assert_int_equal(cn_sset_size(s), 0);
  cn_sset_free(s);
}

/* ---- The gen_server: every request, and requests of the wrong shape ------------------------------------------ */

static void *run_node(void *arg) {
  cn_node_run(arg);
  return NULL;
}

static char *ask(cn_node *n, cn_term *req) {
  cn_term *server = cn_mk_atomc(n, "ss"), *reply = NULL;
  int rc = cn_call_sync(n, server, req, 5000, &reply);
  cn_term_free(server);
  cn_term_free(req);
  assert_int_equal(rc, 0);
  char *s = cn_term_to_string(reply);
  cn_term_free(reply);
  return s;
}

#define ASK(n, req, expect)                                                                                            \
  do {                                                                                                                 \
    char *got_ = ask(n, req);                                                                                          \
    assert_string_equal(got_, expect);                                                                                 \
    cn_free(got_);                                                                                                     \
  } while (0)

static void test_server(void **state) {
  (void)state;
  cn_node *n;
  cn_node_opts o = {.name = "ss@127.0.0.1", .cookie = "c", .no_epmd = true, .hidden = true, .otp_release = 27};
  assert_int_equal(cn_node_new(&n, NULL, &o), 0);
  assert_int_equal(cn_sorted_set_start(n, "ss", NULL), 0);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, run_node, n), 0);
  ASK(n, cn_mk_tuple(3, cn_mk_atomc(n, "add"), cn_mk_int(2), cn_mk_atomc(n, "b")), "ok");
  ASK(n, cn_mk_tuple(3, cn_mk_atomc(n, "add"), cn_mk_float(1.5), cn_mk_atomc(n, "a")), "ok");
  ASK(n,
      cn_mk_tuple(2, cn_mk_atomc(n, "add_many"),
                  cn_mk_list(2, cn_mk_tuple(2, cn_mk_int(3), cn_mk_atomc(n, "c")),
                             cn_mk_tuple(2, cn_mk_int(0), cn_mk_atomc(n, "z")))),
      "ok");
  ASK(n, cn_mk_atomc(n, "size"), "4");
  ASK(n, cn_mk_tuple(2, cn_mk_atomc(n, "rank"), cn_mk_atomc(n, "b")), "{ok,2}");
  ASK(n, cn_mk_tuple(2, cn_mk_atomc(n, "score"), cn_mk_atomc(n, "a")), "{ok,1.5}");
  ASK(n, cn_mk_tuple(3, cn_mk_atomc(n, "range"), cn_mk_int(1), cn_mk_int(2)), "[{1.5,a},{2,b}]");
  ASK(n, cn_mk_tuple(3, cn_mk_atomc(n, "range"), cn_mk_int(3), cn_mk_int(1)), "[]");
  uint8_t big[9] = {0, 0, 0, 0, 0, 0, 0, 0, 1};
  ASK(n, cn_mk_tuple(3, cn_mk_atomc(n, "range"), cn_mk_int(3), cn_mk_big(0, big, 9)), "[{3,c}]");
  ASK(n, cn_mk_tuple(2, cn_mk_atomc(n, "remove"), cn_mk_atomc(n, "nobody")), "ok");
  ASK(n, cn_mk_tuple(2, cn_mk_atomc(n, "rank"), cn_mk_atomc(n, "nobody")), "error");
  ASK(n, cn_mk_tuple(2, cn_mk_atomc(n, "score"), cn_mk_atomc(n, "nobody")), "error");
  /* wrong shapes: {error, badarg}, and nothing changed */
  const char *bad = "{error,badarg}";
  ASK(n, cn_mk_tuple(3, cn_mk_atomc(n, "range"), cn_mk_int(-1), cn_mk_int(2)), bad);
  ASK(n, cn_mk_tuple(3, cn_mk_atomc(n, "range"), cn_mk_atomc(n, "x"), cn_mk_int(2)), bad);
  ASK(n, cn_mk_tuple(2, cn_mk_atomc(n, "add"), cn_mk_int(1)), bad);
  ASK(n, cn_mk_tuple(2, cn_mk_atomc(n, "add_many"), cn_mk_int(1)), bad);
  ASK(n,
      cn_mk_tuple(2, cn_mk_atomc(n, "add_many"),
                  cn_mk_list(2, cn_mk_tuple(2, cn_mk_int(9), cn_mk_atomc(n, "y")), cn_mk_atomc(n, "notatuple"))),
      bad);
  cn_term *improper[1] = {cn_mk_tuple(2, cn_mk_int(9), cn_mk_atomc(n, "y"))};
  ASK(n, cn_mk_tuple(2, cn_mk_atomc(n, "add_many"), cn_mk_listv(1, improper, cn_mk_int(5))), bad);
  ASK(n, cn_mk_atomc(n, "sizes"), bad);
  ASK(n, cn_mk_tuple(0), bad);
  ASK(n, cn_mk_atomc(n, "size"), "4");
  cn_node_stop(n);
  pthread_join(th, NULL);
  cn_node_free(n);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_against_model),
      cmocka_unit_test(test_release_change),
      cmocka_unit_test(test_bulk_and_drain),
      cmocka_unit_test(test_server),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
