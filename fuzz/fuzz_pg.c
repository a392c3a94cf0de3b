/* fuzz_pg.c: OTP pg's messages as a peer scope sends them (otp/pg_table.c): a term off the wire is read as
 * pg_msg_decode reads the scope's mail (also inside a '$gen_cast'), its pid lists and sync entries decoded, and
 * what a join, leave or sync carries applied to a group table, whose counts must then add up. */
#include <string.h>

#include "fuzz.h"
#include "pg_int.h"

/* Applies a decoded message to t as the scope would (remote members only), checking the table stays whole. */
static void apply(pg_table *t, const pg_msg *m) {
  pg_pids ps;
  uint32_t k = 0;
  const cn_term *e = m->groups ? pg_list(m->groups, &k) : NULL;
  if (m->kind == PGM_JOIN && !pg_pids_decode(m->pids, &ps)) {
    pg_group *g = pg_table_get(t, m->group);
    size_t before = g ? g->all.n : 0;
    for (size_t i = 0; g && i < ps.n; i++) FUZZ_CHECK(pg_pids_add(&g->all, ps.p[i]) == 0);
    FUZZ_CHECK(!g || g->all.n == before + ps.n);
    FUZZ_CHECK(!g || pg_table_find(t, m->group) == g);
    pg_pids_free(&ps);
  } else if (m->kind == PGM_LEAVE && !pg_pids_decode(m->pids, &ps)) {
    FUZZ_CHECK(e != NULL);
    for (uint32_t i = 0; i < k; i++) {
      pg_group *g = pg_table_find(t, &e[i]);
      for (size_t j = 0; g && j < ps.n; j++) pg_pids_del(&g->all, ps.p[j]);
      pg_table_drop_empty(t, g);
    }
    pg_pids_free(&ps);
  } else if (m->kind == PGM_SYNC) {
    FUZZ_CHECK(e != NULL);
    for (uint32_t i = 0; i < k; i++) {
      const cn_term *name;
      if (pg_sync_entry(&e[i], &name, &ps)) continue;
      FUZZ_CHECK(ps.n <= PG_MAX_PIDS);
      cn_term *l = pg_pids_term(&ps);
      FUZZ_CHECK(l != NULL && (ps.n ? l->type == CN_LIST && l->v.list.len == ps.n : l->type == CN_NIL));
      cn_term_free(l);
      pg_pids_free(&ps);
    }
  }
}

static void count_group(pg_group *g, void *ctx) {
  FUZZ_CHECK(g->name != NULL && g->hash == cn_phash2(g->name));
  (*(size_t *)ctx)++;
}

int fuzz_pg_one(const uint8_t *data, size_t size) {
  cn_atoms *tab;
  if (cn_atoms_new(&tab, 0)) return 0;
  pg_table t = {0};
  size_t off = 0;
  cn_decode_opts opts = {.max_depth = 64};
  /* terms one after another, as a connection brings them, each a message to the scope */
  for (int n = 0; n < 32 && off < size; n++) {
    cn_term *msg = NULL;
    if (cn_term_decode(tab, data, size, &off, &opts, &msg)) break;
    const cn_term *inner = cn_is_atom(cn_tuple_elem(msg, 2, 0), "$gen_cast") ? cn_tuple_elem(msg, 2, 1) : msg;
    pg_msg m;
    int rc = pg_msg_decode(inner, &m);
    FUZZ_CHECK(rc == 0 || rc == CN_EDECODE);
    if (!rc) apply(&t, &m);
    cn_term_free(msg);
  }
  size_t groups = 0;
  pg_table_each(&t, count_group, &groups);
  FUZZ_CHECK(groups == t.count);
  pg_table_free(&t);
  cn_atoms_free(tab);
  return 0;
}

FUZZ_ENTRY(fuzz_pg_one)
