/* tsup.c: the Horde.DynamicSupervisor test helpers of tsup.h. */
#include "tsup.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

static cn_term *A(cn_node *n, const char *a) { return cn_mk_atomc(n, a); }

cn_term *tsup_spec(cn_node *n, const char *mod, int64_t i, const char *restart, bool c) {
  cn_term *kv[8] = {A(n, "id"),      cn_mk_int(i),
                    A(n, "start"),   cn_mk_tuple(3, A(n, mod), A(n, "start_link"), cn_mk_list(1, cn_mk_int(i))),
                    A(n, "restart"), A(n, restart)};
  if (c) {
    kv[6] = A(n, "cnode");
    kv[7] = A(n, "true");
  }
  return cn_mk_map(c ? 4 : 3, kv);
}

cn_term *tsup_call(cn_node *via, const char *name, const char *node, cn_term *req) {
  cn_term *srv = node ? cn_mk_tuple(2, A(via, name), A(via, node)) : A(via, name), *reply = NULL;
  int rc = cn_call_sync(via, srv, req, 5000, &reply);
  if (rc) print_message("  call %s on %s failed: %s\n", name, node ? node : "here", cn_strerror(rc));
  assert_int_equal(rc, 0);
  cn_term_free(srv);
  cn_term_free(req);
  return reply;
}

void tsup_expect_atom(const cn_term *t, const char *a) {
  if (!cn_is_atom(t, a)) {
    char *txt = cn_term_to_string(t);
    print_message("  want %s, got %s\n", a, txt);
    cn_free(txt);
  }
  assert_true(cn_is_atom(t, a));
}

cn_pid tsup_started(cn_term *reply) {
  tsup_expect_atom(cn_tuple_elem(reply, 2, 0) ? cn_tuple_elem(reply, 2, 0) : reply, "ok");
  cn_pid p = cn_tuple_elem(reply, 2, 1)->v.pid;
  cn_term_free(reply);
  return p;
}

bool tsup_pid_eq(cn_pid a, cn_pid b) {
  return !strcmp(a.node->name, b.node->name) && a.id == b.id && a.serial == b.serial;
}

cn_term *tsup_pid(cn_node *n, cn_pid p) {
  p.node = cn_intern(n, p.node->name);
  return cn_mk_pid(p);
}

int64_t tsup_get(cn_node *via, cn_pid p) {
  cn_term *srv = tsup_pid(via, p), *reply = NULL, *req = A(via, "get");
  int rc = cn_call_sync(via, srv, req, 2000, &reply);
  int64_t v = !rc && reply->type == CN_INT ? reply->v.i : -1;
  cn_term_free(srv);
  cn_term_free(req);
  cn_term_free(reply);
  return v;
}

/* ---- Views ---------------------------------------------------------------------------------------------------- */

void tsup_view_free(tsup_view *v) {
  for (int i = 0; i < v->n; i++) cn_term_free(v->p[i].id);
  for (int i = 0; i < v->nm; i++) cn_term_free(v->names[i]);
  memset(v, 0, sizeof *v);
}

static const cn_term *map_at(const cn_term *m, const char *k) {
  for (uint32_t j = 0; m && m->type == CN_MAP && j < m->v.map.size; j++)
    if (cn_is_atom(&m->v.map.kv[2 * j], k)) return &m->v.map.kv[2 * j + 1];
  return NULL;
}

static void add_entry(tsup_view *v, const cn_term *k, const cn_term *val) {
  const cn_term *spec = cn_tuple_elem(val, 3, 1) ? cn_tuple_elem(val, 3, 1) : cn_tuple_elem(val, 2, 1);
  const cn_term *args = cn_tuple_elem(map_at(spec, "start"), 3, 2);
  if (v->n == TSUP_MAXP || !args || args->type != CN_LIST) return;
  tsup_ent *e = &v->p[v->n++];
  e->id = cn_term_copy(&k->v.tuple.e[1]);
  e->i = args->v.list.e[0].v.i;
  if (cn_tuple_elem(val, 3, 0)) {
    snprintf(e->owner, sizeof e->owner, "%s", cn_tuple_elem(val, 3, 0)->v.tuple.e[1].v.atom->name);
    e->pid = cn_tuple_elem(val, 3, 2)->v.pid;
  }
}

/* {member_node_info, M} => Info of a read whose {member, M} is present. */
static void add_member(cn_node *n, tsup_view *v, const cn_term *rd, const cn_term *k, const cn_term *val) {
  cn_term *mk = cn_mk_tuple(2, A(n, "member"), cn_term_copy(&k->v.tuple.e[1]));
  bool member = false;
  for (uint32_t j = 0; j < rd->v.map.size; j++) member |= cn_term_exact_eq(&rd->v.map.kv[2 * j], mk);
  cn_term_free(mk);
  if (!member || v->nm == 8) return;
  v->names[v->nm] = cn_term_copy(&k->v.tuple.e[1]);
  assert_int_equal(cn_horde_member_parse(val, &v->m[v->nm]), 0);
  v->m[v->nm].name = v->names[v->nm];
  v->nm++;
}

void tsup_view_of(tsup_at at, tsup_view *v) {
  memset(v, 0, sizeof *v);
  cn_term *rd = tsup_call(at.via, TSUP_NAME ".Crdt", at.node, A(at.via, "read"));
  assert_int_equal(rd->type, CN_MAP);
  for (uint32_t i = 0; i < rd->v.map.size; i++) {
    const cn_term *k = &rd->v.map.kv[2 * i], *val = &rd->v.map.kv[2 * i + 1], *tag = cn_tuple_elem(k, 2, 0);
    if (tag && cn_is_atom(tag, "process")) add_entry(v, k, val);
    if (tag && cn_is_atom(tag, "member_node_info")) add_member(at.via, v, rd, k, val);
  }
  cn_term_free(rd);
}

const tsup_ent *tsup_find(const tsup_view *v, int64_t i) {
  for (int k = 0; k < v->n; k++)
    if (v->p[k].i == i) return &v->p[k];
  return NULL;
}

int tsup_alive(const tsup_view *v) {
  int k = 0;
  for (int i = 0; i < v->nm; i++) k += v->m[i].status == CN_HORDE_ALIVE;
  return k;
}

const char *tsup_owner(cn_node *n, const tsup_view *v, const char *mod, int64_t i, const char *restart) {
  cn_term *sp = tsup_spec(n, mod, i, restart, true);
  size_t k;
  int rc = cn_horde_choose(sp, v->m, (size_t)v->nm, CN_HORDE_FILTERED, &k);
  cn_term_free(sp);
  return rc ? "none" : v->m[k].name->v.tuple.e[1].v.atom->name;
}

static void show(tsup_at at, const tsup_view *v) {
  print_message("  %s: %d entries, %d members (%d alive):", at.node ? at.node : cn_node_name(at.via)->name, v->n, v->nm,
                tsup_alive(v));
  for (int k = 0; k < v->n; k++) print_message(" %lld@%s", (long long)v->p[k].i, v->p[k].owner);
  print_message("\n");
  /* the membership keys of the read, for the diagnosis */
  cn_term *rd = tsup_call(at.via, TSUP_NAME ".Crdt", at.node, A(at.via, "read"));
  for (uint32_t i = 0; rd->type == CN_MAP && i < rd->v.map.size; i++) {
    const cn_term *tag = cn_tuple_elem(&rd->v.map.kv[2 * i], 2, 0);
    if (!tag || cn_is_atom(tag, "process")) continue;
    char *kt = cn_term_to_string(&rd->v.map.kv[2 * i]), *vt = cn_term_to_string(&rd->v.map.kv[2 * i + 1]);
    print_message("    %s => %.300s\n", kt, vt);
    cn_free(kt);
    cn_free(vt);
  }
  cn_term_free(rd);
}

/* One member's view against the first one's. */
static bool agrees(tsup_at at, const tsup_view *w, const tsup_view *v0, int want, const char *mod,
                   const char *restart) {
  bool ok = w->n == want;
  for (int e = 0; ok && e < w->n; e++) {
    const tsup_ent *p = &w->p[e], *q = tsup_find(v0, p->i);
    ok = tsup_find(w, p->i) == p && !strcmp(p->owner, tsup_owner(at.via, w, mod, p->i, restart)) && q &&
         cn_term_exact_eq(q->id, p->id) && tsup_pid_eq(q->pid, p->pid);
  }
  return ok;
}

bool tsup_agree(const tsup_at *at, int k, int want, const char *mod, const char *restart, bool verbose) {
  tsup_view v0, v;
  tsup_view_of(at[0], &v0);
  bool ok = agrees(at[0], &v0, &v0, want, mod, restart);
  if (!ok && verbose) show(at[0], &v0);
  for (int j = 1; ok && j < k; j++) {
    tsup_view_of(at[j], &v);
    ok = agrees(at[j], &v, &v0, want, mod, restart);
    if (!ok && verbose) show(at[j], &v);
    tsup_view_free(&v);
  }
  tsup_view_free(&v0);
  return ok;
}

long tsup_wait_agree(const tsup_at *at, int k, int want, const char *mod, const char *restart, long limit_ms) {
  long t0 = now_ms();
  while (!tsup_agree(at, k, want, mod, restart, false)) {
    if (now_ms() - t0 > limit_ms) {
      tsup_agree(at, k, want, mod, restart, true);
      fail();
    }
    sleep_ms(20);
  }
  return now_ms() - t0;
}

void tsup_wait_alive(const tsup_at *at, int k, int alive, long limit_ms) {
  long t0 = now_ms();
  for (int j = 0; j < k; j++) {
    tsup_view v;
    for (;;) {
      tsup_view_of(at[j], &v);
      bool ok = tsup_alive(&v) == alive;
      if (!ok && now_ms() - t0 > limit_ms) show(at[j], &v);
      tsup_view_free(&v);
      if (ok) break;
      assert_true(now_ms() - t0 <= limit_ms);
      sleep_ms(20);
    }
  }
}

int64_t tsup_count(tsup_at at) {
  cn_term *r = tsup_call(at.via, TSUP_NAME ".ProcessesSupervisor", at.node, A(at.via, "count_children"));
  assert_int_equal(r->type, CN_LIST);
  assert_int_equal(r->v.list.len, 4);
  const char *keys[] = {"specs", "active", "supervisors", "workers"};
  for (int i = 0; i < 4; i++) assert_true(cn_is_atom(&r->v.list.e[i].v.tuple.e[0], keys[i]));
  int64_t c = r->v.list.e[0].v.tuple.e[1].v.i;
  assert_int_equal(r->v.list.e[1].v.tuple.e[1].v.i, c); /* active */
  assert_int_equal(r->v.list.e[2].v.tuple.e[1].v.i, 0); /* supervisors */
  assert_int_equal(r->v.list.e[3].v.tuple.e[1].v.i, c); /* workers */
  cn_term_free(r);
  return c;
}

/* Asserts the which_children entry e is an entry of v owned by node. */
static void which_entry(const tsup_view *v, const cn_term *e, const char *node, const char *mod) {
  assert_non_null(cn_tuple_elem(e, 4, 0));
  assert_true(cn_is_atom(&e->v.tuple.e[2], "worker"));
  assert_true(cn_is_atom(&e->v.tuple.e[3].v.list.e[0], mod));
  bool found = false;
  for (int q = 0; q < v->n; q++)
    found |= cn_term_exact_eq(v->p[q].id, &e->v.tuple.e[0]) && tsup_pid_eq(v->p[q].pid, e->v.tuple.e[1].v.pid) &&
             !strcmp(v->p[q].owner, node);
  assert_true(found);
}

int tsup_which(cn_node *via, const char *const *nodes, int k, const char *mod) {
  tsup_view v;
  tsup_view_of((tsup_at){via, nodes[0]}, &v);
  int total = 0;
  for (int j = 0; j < k; j++) {
    cn_term *r = tsup_call(via, TSUP_NAME ".ProcessesSupervisor", nodes[j], A(via, "which_children"));
    assert_true(r->type == CN_LIST || r->type == CN_NIL);
    uint32_t n = r->type == CN_LIST ? r->v.list.len : 0;
    for (uint32_t i = 0; i < n; i++) which_entry(&v, &r->v.list.e[i], nodes[j], mod);
    total += (int)n;
    cn_term_free(r);
  }
  assert_int_equal(total, v.n);
  tsup_view_free(&v);
  return total;
}
