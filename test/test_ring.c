/* test_ring.c: placement of Horde.DynamicSupervisor children (ring.c): the capability predicates, libring's ring
 * (cases checked against real Horde 0.10 / libring 1.7), the FILTERED rule against UNIFORM, no_alive_nodes and
 * statuses, point collisions and insertion order, failing allocations, and the owners real Horde chose in the
 * captured cluster of ../shared/vectors/horde/s1_three_nodes. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cnode.h"
#include "hc_int.h"
#include "horde.h"
#include "testutil.h"

#define SUP "Elixir.MyApp.Sup"

static cn_term *A(const char *a) { return tt_atom(a); }
static cn_term *name_of(const char *sup, const char *node) { return cn_mk_tuple(2, A(sup), A(node)); }

/* #{id => Id, start => {'Elixir.CNode.Demo.Counter', start_link, [I]}} (+ cnode => true when c). */
static cn_term *spec(int64_t id, int64_t i, bool c) {
  cn_term *kv[6] = {A("id"), cn_mk_int(id), A("start"),
                    cn_mk_tuple(3, A("Elixir.CNode.Demo.Counter"), A("start_link"), cn_mk_list(1, cn_mk_int(i)))};
  if (c) {
    kv[4] = A("cnode");
    kv[5] = A("true");
  }
  return cn_mk_map(c ? 3 : 2, kv);
}

/* A member list over names (each taken). */
typedef struct mlist {
  cn_term *names[64];
  cn_horde_member m[64];
  size_t n;
} mlist;

static void add_named(mlist *l, const char *sup, const char *node, cn_horde_status st) {
  l->names[l->n] = name_of(sup, node);
  l->m[l->n] = (cn_horde_member){l->names[l->n], st};
  l->n++;
}
static void add(mlist *l, const char *node, cn_horde_status st) { add_named(l, SUP, node, st); }
static void mfree(mlist *l) {
  for (size_t i = 0; i < l->n; i++) cn_term_free(l->names[i]);
  l->n = 0;
}

/* The chosen member's node name, or "no_alive_nodes". */
static const char *pick(const cn_term *sp, const mlist *l, int mode) {
  size_t k;
  int rc = cn_horde_choose(sp, l->m, l->n, mode, &k);
  if (rc == CN_ENOTFOUND) return "no_alive_nodes";
  assert_int_equal(rc, 0);
  return l->m[k].name->v.tuple.e[1].v.atom->name;
}

/* ---- Predicates -------------------------------------------------------------------------------------------------- */

static void test_predicates(void **st) {
  (void)st;
  cn_term *c = spec(1, 1, true), *e = spec(1, 1, false);
  assert_true(cn_horde_c_child(c));
  assert_false(cn_horde_c_child(e));
  cn_term *kv[] = {A("cnode"), cn_mk_binary("true", 4)};
  cn_term *notatom = cn_mk_map(1, kv), *kv2[] = {A("cnode"), A("false")}, *f = cn_mk_map(1, kv2);
  assert_false(cn_horde_c_child(notatom));
  assert_false(cn_horde_c_child(f));
  cn_term *a = A("true");
  assert_false(cn_horde_c_child(a));
  assert_false(cn_horde_c_child(NULL));
  cn_term *m1 = name_of(SUP, "cnode1@127.0.0.1"), *m2 = name_of(SUP, "cnodeX@h"), *m3 = name_of(SUP, "e1@127.0.0.1"),
          *m4 = name_of(SUP, "xcnode@h"), *m5 = cn_mk_tuple(2, A(SUP), cn_mk_binary("cnode1@h", 8)),
          *m6 = cn_mk_tuple(3, A(SUP), A("cnode1@h"), A("x"));
  assert_true(cn_horde_c_member(m1));
  assert_true(cn_horde_c_member(m2));
  assert_false(cn_horde_c_member(m3));
  assert_false(cn_horde_c_member(m4));
  assert_false(cn_horde_c_member(m5));
  assert_false(cn_horde_c_member(m6));
  assert_false(cn_horde_c_member(a));
  cn_term *ts[] = {c, e, notatom, f, a, m1, m2, m3, m4, m5, m6};
  for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) cn_term_free(ts[i]);
}

static cn_term *member_map(cn_term *name, const char *status) {
  cn_term *kv[] = {A("__struct__"), A("Elixir.Horde.DynamicSupervisor.Member"), A("name"), name, A("status"),
                   A(status)};
  return cn_mk_map(3, kv);
}

static void test_member_parse(void **st) {
  (void)st;
  const char *sts[] = {"alive", "dead", "shutting_down", "uninitialized", "bogus"};
  cn_horde_status want[] = {CN_HORDE_ALIVE, CN_HORDE_DEAD, CN_HORDE_SHUTTING_DOWN, CN_HORDE_UNINITIALIZED,
                            CN_HORDE_UNINITIALIZED};
  for (int i = 0; i < 5; i++) {
    cn_term *m = member_map(name_of(SUP, "cnode1@h"), sts[i]);
    cn_horde_member out;
    assert_int_equal(cn_horde_member_parse(m, &out), 0);
    assert_int_equal(out.status, want[i]);
    assert_true(cn_horde_c_member(out.name));
    cn_term_free(m);
  }
  cn_term *kv[] = {A("status"), A("alive")};
  cn_term *noname = cn_mk_map(1, kv), *notmap = A("alive");
  cn_horde_member out;
  assert_int_equal(cn_horde_member_parse(noname, &out), CN_EDECODE);
  assert_int_equal(cn_horde_member_parse(notmap, &out), CN_EDECODE);
  cn_term_free(noname);
  cn_term_free(notmap);
}

/* ---- The ring ---------------------------------------------------------------------------------------------------- */

/* Values from real Horde 0.10 (UniformDistribution over libring 1.7, OTP 25) for the specs of spec(I, I, true). */
static void test_hand_checked(void **st) {
  (void)st;
  static const struct {
    uint32_t h;
    const char *all3, *without1;
  } want[] = {{4227338801u, "cnode2", "cnode2"}, {4209528628u, "cnode2", "cnode2"}, {1085678081u, "cnode2", "cnode2"},
              {2268407074u, "cnode2", "cnode2"}, {437534970u, "cnode3", "cnode3"},  {741251873u, "cnode1", "cnode3"},
              {1491434951u, "cnode2", "cnode2"}, {1667243372u, "cnode3", "cnode3"}};
  mlist l = {0};
  add(&l, "cnode1@127.0.0.1", CN_HORDE_ALIVE);
  add(&l, "cnode2@127.0.0.1", CN_HORDE_ALIVE);
  add(&l, "cnode3@127.0.0.1", CN_HORDE_ALIVE);
  /* one point: phash2({{'Elixir.MyApp.Sup', 'cnode1@127.0.0.1'}, 1}, 4294967295) */
  cn_term *pt = cn_mk_tuple(2, cn_term_copy(l.names[0]), cn_mk_int(1));
  assert_int_equal(cn_phash2_range(pt, 4294967295u), 2558696693u);
  cn_term_free(pt);
  for (int i = 0; i < 8; i++) {
    cn_term *sp = spec(i + 1, i + 1, true);
    uint32_t h;
    assert_int_equal(hc_spec_key(sp, &h), 0);
    assert_int_equal(h, want[i].h);
    char node[64];
    snprintf(node, sizeof node, "%s@127.0.0.1", want[i].all3);
    assert_string_equal(pick(sp, &l, CN_HORDE_UNIFORM), node);
    assert_string_equal(pick(sp, &l, CN_HORDE_FILTERED), node);
    l.m[0].status = CN_HORDE_DEAD;
    snprintf(node, sizeof node, "%s@127.0.0.1", want[i].without1);
    assert_string_equal(pick(sp, &l, CN_HORDE_UNIFORM), node);
    l.m[0].status = CN_HORDE_ALIVE;
    /* the id is not hashed */
    cn_term *sp2 = spec(987654321, i + 1, true);
    assert_string_equal(pick(sp2, &l, CN_HORDE_UNIFORM), pick(sp, &l, CN_HORDE_UNIFORM));
    cn_term_free(sp);
    cn_term_free(sp2);
  }
  mfree(&l);
}

static void test_filtered_vs_uniform(void **st) {
  (void)st;
  mlist l = {0};
  add(&l, "e1@127.0.0.1", CN_HORDE_ALIVE);
  add(&l, "cnode1@127.0.0.1", CN_HORDE_ALIVE);
  add(&l, "e2@127.0.0.1", CN_HORDE_ALIVE);
  add(&l, "cnode2@127.0.0.1", CN_HORDE_ALIVE);
  int misplaced = 0;
  for (int i = 0; i < 200; i++) {
    bool c = i % 2;
    cn_term *sp = spec(i, i, c);
    const char *f = pick(sp, &l, CN_HORDE_FILTERED), *u = pick(sp, &l, CN_HORDE_UNIFORM);
    assert_int_equal(!strncmp(f, "cnode", 5), c); /* the filter puts each kind on its own members */
    misplaced += !strncmp(u, "cnode", 5) != c;
    /* uniform over the eligible members alone gives the filtered choice */
    mlist e = {0};
    for (size_t k = 0; k < l.n; k++)
      if (cn_horde_c_member(l.names[k]) == c) add(&e, l.names[k]->v.tuple.e[1].v.atom->name, CN_HORDE_ALIVE);
    assert_string_equal(pick(sp, &e, CN_HORDE_UNIFORM), f);
    mfree(&e);
    cn_term_free(sp);
  }
  print_message("  plain UniformDistribution misplaces %d of 200\n", misplaced);
  assert_true(misplaced > 50 && misplaced < 150);
  mfree(&l);
}

static void test_no_alive_nodes(void **st) {
  (void)st;
  mlist l = {0};
  cn_term *c = spec(1, 1, true), *e = spec(1, 1, false);
  assert_string_equal(pick(c, &l, CN_HORDE_FILTERED), "no_alive_nodes"); /* no members at all */
  add(&l, "e1@127.0.0.1", CN_HORDE_ALIVE);
  add(&l, "cnode1@127.0.0.1", CN_HORDE_DEAD);
  add(&l, "cnode2@127.0.0.1", CN_HORDE_SHUTTING_DOWN);
  add(&l, "cnode3@127.0.0.1", CN_HORDE_UNINITIALIZED);
  assert_string_equal(pick(c, &l, CN_HORDE_FILTERED), "no_alive_nodes"); /* a C child never goes to BEAM */
  assert_string_equal(pick(c, &l, CN_HORDE_UNIFORM), "e1@127.0.0.1");
  assert_string_equal(pick(e, &l, CN_HORDE_FILTERED), "e1@127.0.0.1");
  l.m[0].status = CN_HORDE_DEAD;
  assert_string_equal(pick(e, &l, CN_HORDE_FILTERED), "no_alive_nodes"); /* an Elixir child never goes to C */
  assert_string_equal(pick(e, &l, CN_HORDE_UNIFORM), "no_alive_nodes");
  /* only alive members count: each status alone */
  for (int s = 0; s < 4; s++) {
    mlist o = {0};
    add(&o, "cnode1@127.0.0.1", (cn_horde_status)s);
    assert_string_equal(pick(c, &o, CN_HORDE_FILTERED), s == CN_HORDE_ALIVE ? "cnode1@127.0.0.1" : "no_alive_nodes");
    mfree(&o);
  }
  cn_term_free(c);
  cn_term_free(e);
  mfree(&l);
}

static void test_malformed(void **st) {
  (void)st;
  mlist l = {0};
  add(&l, "cnode1@127.0.0.1", CN_HORDE_ALIVE);
  size_t k = 99;
  cn_term *notmap = cn_mk_tuple(2, A("id"), A("start")), *empty = cn_mk_map(0, NULL);
  assert_int_equal(cn_horde_choose(notmap, l.m, l.n, CN_HORDE_FILTERED, &k), CN_EINVAL);
  assert_int_equal(cn_horde_choose(NULL, l.m, l.n, CN_HORDE_FILTERED, &k), CN_EINVAL);
  assert_int_equal(k, 99);
  /* any map is hashed as given, even #{} */
  assert_int_equal(cn_horde_choose(empty, l.m, l.n, CN_HORDE_UNIFORM, &k), 0);
  assert_int_equal(k, 0);
  /* a member without a name is skipped, as one that is not alive */
  l.m[0].name = NULL;
  assert_int_equal(cn_horde_choose(empty, l.m, l.n, CN_HORDE_UNIFORM, &k), CN_ENOTFOUND);
  cn_term_free(notmap);
  cn_term_free(empty);
  mfree(&l);
}

/* The same members in any order give the same ring; equal names count once. */
static void test_order(void **st) {
  (void)st;
  mlist a = {0}, b = {0};
  const char *nodes[] = {"cnode1@127.0.0.1", "cnode2@127.0.0.1", "cnode3@127.0.0.1", "cnode10@127.0.0.1"};
  for (int i = 0; i < 4; i++) add(&a, nodes[i], CN_HORDE_ALIVE);
  for (int i = 3; i >= 0; i--) add(&b, nodes[i], CN_HORDE_ALIVE);
  add(&b, nodes[1], CN_HORDE_ALIVE);
  for (int i = 0; i < 100; i++) {
    cn_term *sp = spec(i, i, true);
    assert_string_equal(pick(sp, &a, CN_HORDE_FILTERED), pick(sp, &b, CN_HORDE_FILTERED));
    cn_term_free(sp);
  }
  hc_ring r;
  assert_int_equal(hc_ring_build(&r, (const cn_term *const *)a.names, a.n), 0);
  assert_int_equal(r.n, 4 * 128); /* no collision among these */
  for (size_t i = 1; i < r.n; i++) assert_true(r.pt[i - 1] < r.pt[i]);
  assert_int_equal(hc_ring_owner(&r, r.pt[5]), r.who[5]); /* a point belongs to its own member */
  assert_int_equal(hc_ring_owner(&r, r.pt[5] + 1), r.who[6]);
  assert_int_equal(hc_ring_owner(&r, r.pt[r.n - 1] + 1), r.who[0]); /* wraps around */
  assert_int_equal(hc_ring_owner(&r, 0), r.who[0]);
  hc_ring_free(&r);
  assert_int_equal(hc_ring_build(&r, NULL, 0), 0);
  assert_int_equal(hc_ring_owner(&r, 7), -1);
  mfree(&a);
  mfree(&b);
}

typedef struct pt {
  uint32_t v;
  int who;
} pt;
static int pt_cmp(const void *a, const void *b) {
  const pt *x = a, *y = b;
  return x->v < y->v ? -1 : x->v > y->v;
}

/* Two member names with a shared point: the one inserted first (smaller in term order) keeps it. */
static void test_collision(void **st) {
  (void)st;
  enum { N = 1500 };
  pt *all = malloc(N * 128 * sizeof *all);
  char node[64];
  for (int i = 0; i < N; i++) {
    snprintf(node, sizeof node, "n%d@h", i);
    cn_term *nm = name_of(SUP, node);
    for (int k = 1; k <= 128; k++) {
      cn_term *t = cn_mk_tuple(2, cn_term_copy(nm), cn_mk_int(k));
      all[i * 128 + k - 1] = (pt){cn_phash2_range(t, 4294967295u), i};
      cn_term_free(t);
    }
    cn_term_free(nm);
  }
  qsort(all, (size_t)N * 128, sizeof *all, pt_cmp);
  int x = -1, y = -1;
  uint32_t shared = 0;
  for (size_t i = 1; i < (size_t)N * 128 && x < 0; i++)
    if (all[i - 1].v == all[i].v && all[i - 1].who != all[i].who) {
      x = all[i - 1].who;
      y = all[i].who;
      shared = all[i].v;
    }
  free(all);
  if (x < 0) skip();
  print_message("  n%d and n%d share the point %u\n", x, y, shared);
  mlist l = {0};
  snprintf(node, sizeof node, "n%d@h", y);
  add(&l, node, CN_HORDE_ALIVE);
  snprintf(node, sizeof node, "n%d@h", x);
  add(&l, node, CN_HORDE_ALIVE);
  int first = cn_term_cmp(l.names[0], l.names[1]) < 0 ? 0 : 1;
  hc_ring r;
  assert_int_equal(hc_ring_build(&r, (const cn_term *const *)l.names, 2), 0);
  assert_int_equal(r.n, 255);
  assert_int_equal(hc_ring_owner(&r, shared), first);
  hc_ring_free(&r);
  mfree(&l);
}

/* Every allocation of a choice may fail: a status, never a crash or a leak. */
static void test_oom(void **st) {
  (void)st;
  mlist l = {0};
  add(&l, "cnode1@127.0.0.1", CN_HORDE_ALIVE);
  add(&l, "cnode2@127.0.0.1", CN_HORDE_ALIVE);
  cn_term *sp = spec(1, 1, true);
  int ok = 0;
  for (long f = 0; f < 40; f++) {
    ta_fail_after = f;
    size_t k;
    int rc = cn_horde_choose(sp, l.m, l.n, CN_HORDE_FILTERED, &k);
    ta_fail_after = -1;
    assert_true(rc == 0 || rc == CN_ENOMEM);
    ok += rc == 0;
  }
  assert_true(ok > 0);
  cn_term_free(sp);
  mfree(&l);
}

/* ---- Real Horde's placements ------------------------------------------------------------------------------------- */

/* The first data line's sequence number after the capture's kill -9 event, and the node killed. */
static long kill_seq(const char *dir, char *killed, size_t cap) {
  char path[600], line[4096];
  snprintf(path, sizeof path, "%s/INDEX.txt", dir);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  long seq = -1;
  bool after = false;
  while (seq < 0 && fgets(line, sizeof line, f)) {
    char *k = strstr(line, "kill -9 ");
    if (line[0] == '#' && k && strstr(line, " EVENT ")) {
      after = true;
      sscanf(k + 8, "%63s", killed);
      killed[cap - 1] = 0;
    } else if (after && line[0] >= '0' && line[0] <= '9') {
      seq = strtol(line, NULL, 10);
    }
  }
  fclose(f);
  return seq;
}

static cn_term *load(const char *path) { return tt_load_etf(tt_atoms, path); }

typedef struct seen {
  cn_term *ids[256];
  int n, checked;
} seen;

/* Checks each {process, Id} => {{Sup, Owner}, Spec, Pid} of a captured delta the first time Id shows up. */
static void check_delta(const cn_term *msg, bool after_kill, const char *killed, seen *sn) {
  const cn_term *m = cn_tuple_elem(msg, 3, 1), *vals = hc_map_get(m, "value");
  if (!cn_tuple_elem(msg, 3, 0) || !cn_is_atom(cn_tuple_elem(msg, 3, 0), "diff") || !vals) return;
  for (uint32_t i = 0; i < vals->v.map.size; i++) {
    const cn_term *k = &vals->v.map.kv[2 * i], *raw = &vals->v.map.kv[2 * i + 1];
    if (!hc_tuple_n(k, 2) || !cn_is_atom(&k->v.tuple.e[0], "process") || raw->type != CN_MAP) continue;
    bool known = false;
    for (int j = 0; j < sn->n; j++) known |= cn_term_exact_eq(sn->ids[j], &k->v.tuple.e[1]);
    if (known || sn->n == 256) continue;
    sn->ids[sn->n++] = cn_term_copy(&k->v.tuple.e[1]);
    for (uint32_t e = 0; e < raw->v.map.size; e++) {
      const cn_term *v = cn_tuple_elem(&raw->v.map.kv[2 * e], 2, 0);
      if (!hc_tuple_n(v, 3)) continue;
      const cn_term *owner = &v->v.tuple.e[0], *sup = &owner->v.tuple.e[0];
      mlist l = {0};
      const char *nodes[] = {"n1@127.0.0.1", "n2@127.0.0.1", "n3@127.0.0.1"};
      for (int x = 0; x < 3; x++)
        add_named(&l, sup->v.atom->name, nodes[x],
                  after_kill && !strcmp(nodes[x], killed) ? CN_HORDE_DEAD : CN_HORDE_ALIVE);
      size_t c;
      assert_int_equal(cn_horde_choose(&v->v.tuple.e[1], l.m, l.n, CN_HORDE_UNIFORM, &c), 0);
      if (!cn_term_exact_eq(l.names[c], owner)) {
        char *a = cn_term_to_string(v), *b = cn_term_to_string(l.names[c]);
        print_message("  mismatch (after kill %d): %s chose %s\n", after_kill, a, b);
        cn_free(a);
        cn_free(b);
      }
      assert_true(cn_term_exact_eq(l.names[c], owner));
      sn->checked++;
      mfree(&l);
    }
  }
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void test_real_placements(void **st) {
  (void)st;
  char dir[512], killed[64] = "";
  snprintf(dir, sizeof dir, "%s/horde/s1_three_nodes", vectors_dir());
  long ks = kill_seq(dir, killed, sizeof killed);
  assert_true(ks > 0);
  DIR *d = opendir(dir);
  assert_non_null(d);
  char *files[4096];
  size_t nf = 0;
  for (struct dirent *e; (e = readdir(d)) && nf < 4096;)
    if (strstr(e->d_name, "Sup.Crdt") && strstr(e->d_name, "_diff_delta.etf")) files[nf++] = strdup(e->d_name);
  closedir(d);
  qsort(files, nf, sizeof *files, by_name);
  seen sn = {0};
  for (size_t i = 0; i < nf; i++) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    cn_term *msg = load(path);
    check_delta(msg, strtol(files[i], NULL, 10) >= ks, killed, &sn);
    cn_term_free(msg);
    free(files[i]);
  }
  print_message("  %d placements by real Horde checked (%d children; %s killed before seq %ld)\n", sn.checked, sn.n,
                killed, ks);
  assert_true(sn.checked >= 6);
  for (int j = 0; j < sn.n; j++) cn_term_free(sn.ids[j]);
}

int main(void) {
  ta_install();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_predicates, tt_setup, tt_teardown),
      cmocka_unit_test_setup_teardown(test_member_parse, tt_setup, tt_teardown),
      cmocka_unit_test_setup_teardown(test_hand_checked, tt_setup, tt_teardown),
      cmocka_unit_test_setup_teardown(test_filtered_vs_uniform, tt_setup, tt_teardown),
      cmocka_unit_test_setup_teardown(test_no_alive_nodes, tt_setup, tt_teardown),
      cmocka_unit_test_setup_teardown(test_malformed, tt_setup, tt_teardown),
      cmocka_unit_test_setup_teardown(test_order, tt_setup, tt_teardown),
      cmocka_unit_test_setup_teardown(test_collision, tt_setup, tt_teardown),
      cmocka_unit_test_setup_teardown(test_oom, tt_setup, tt_teardown),
      cmocka_unit_test_setup_teardown(test_real_placements, tt_setup, tt_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
