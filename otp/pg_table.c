/* pg_table.c: the pure part of OTP's pg on a C node: group tables keyed by term (pg's ETS rows {Group, All,
 * Local}), pid lists with pg's multiplicity (one entry per join), and the decoding of pg's messages. No process,
 * socket or clock here; test/test_pg.c drives it directly. */
#include <string.h>
#include <sys/types.h>

#include "pg_int.h"

/* ---- Pid lists ---------------------------------------------------------------------------------------------- */

int pg_pids_add(pg_pids *l, cn_pid p) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 4;
    cn_pid *q = cn_realloc(l->p, cap * sizeof *q);
    if (!q) return CN_ENOMEM;
    l->p = q;
    l->cap = cap;
  }
  l->p[l->n++] = p;
  return 0;
}

static ssize_t pids_index(const pg_pids *l, cn_pid p) {
  for (size_t i = 0; i < l->n; i++)
    if (cn_pid_eq(l->p[i], p)) return (ssize_t)i;
  return -1;
}

bool pg_pids_del(pg_pids *l, cn_pid p) {
  ssize_t i = pids_index(l, p);
  if (i < 0) return false;
  memmove(&l->p[i], &l->p[i + 1], (l->n - (size_t)i - 1) * sizeof *l->p); /* keeps the order, as lists:delete */
  l->n--;
  return true;
}

bool pg_pids_has(const pg_pids *l, cn_pid p) { return pids_index(l, p) >= 0; }

void pg_pids_free(pg_pids *l) {
  cn_free(l->p);
  memset(l, 0, sizeof *l);
}

cn_term *pg_pids_term(const pg_pids *l) {
  if (!l->n) return cn_mk_nil();
  cn_term **e = cn_malloc(l->n * sizeof *e);
  if (!e) return NULL;
  for (size_t i = 0; i < l->n; i++) e[i] = cn_mk_pid(l->p[i]);
  cn_term *t = cn_mk_listv(l->n, e, NULL);
  cn_free(e);
  return t;
}

/* ---- Group table -------------------------------------------------------------------------------------------- */

pg_group *pg_table_find(const pg_table *t, const cn_term *name) {
  if (!t->nb) return NULL;
  uint32_t h = cn_phash2(name);
  for (pg_group *g = t->b[h & (t->nb - 1)]; g; g = g->next)
    if (g->hash == h && cn_term_exact_eq(g->name, name)) return g;
  return NULL;
}

static int table_grow(pg_table *t) {
  size_t nb = t->nb ? t->nb * 2 : 16;
  pg_group **b = cn_calloc(nb, sizeof *b);
  if (!b) return CN_ENOMEM;
  for (size_t i = 0; i < t->nb; i++)
    for (pg_group *g = t->b[i], *next; g; g = next) {
      next = g->next;
      g->next = b[g->hash & (nb - 1)];
      b[g->hash & (nb - 1)] = g;
    }
  cn_free(t->b);
  t->b = b;
  t->nb = nb;
  return 0;
}

pg_group *pg_table_get(pg_table *t, const cn_term *name) {
  pg_group *g = pg_table_find(t, name);
  if (g) return g;
  if (t->count >= t->nb && table_grow(t)) return NULL;
  if (!(g = cn_calloc(1, sizeof *g)) || !(g->name = cn_term_copy(name))) {
    cn_free(g);
    return NULL;
  }
  g->hash = cn_phash2(name);
  g->next = t->b[g->hash & (t->nb - 1)];
  t->b[g->hash & (t->nb - 1)] = g;
  t->count++;
  return g;
}

static void group_free(pg_group *g) {
  cn_term_free(g->name);
  pg_pids_free(&g->all);
  pg_pids_free(&g->local);
  cn_free(g);
}

void pg_table_drop_empty(pg_table *t, pg_group *g) {
  if (!g || g->all.n || g->local.n) return;
  for (pg_group **x = &t->b[g->hash & (t->nb - 1)]; *x; x = &(*x)->next)
    if (*x == g) {
      *x = g->next;
      t->count--;
      group_free(g);
      return;
    }
}

void pg_table_free(pg_table *t) {
  for (size_t i = 0; i < t->nb; i++)
    for (pg_group *g = t->b[i], *next; g; g = next) {
      next = g->next;
      group_free(g);
    }
  cn_free(t->b);
  memset(t, 0, sizeof *t);
}

void pg_table_each(const pg_table *t, void (*fn)(pg_group *g, void *ctx), void *ctx) {
  for (size_t i = 0; i < t->nb; i++)
    for (pg_group *g = t->b[i]; g; g = g->next) fn(g, ctx);
}

/* ---- Messages ----------------------------------------------------------------------------------------------- */

const cn_term *pg_list(const cn_term *t, uint32_t *len) {
  static const cn_term none = {CN_NIL, 0, {0}};
  if (t && t->type == CN_NIL) {
    *len = 0;
    return &none;
  }
  if (!t || t->type != CN_LIST || t->v.list.tail) return NULL;
  *len = t->v.list.len;
  return t->v.list.e;
}

int pg_pids_decode(const cn_term *t, pg_pids *out) {
  memset(out, 0, sizeof *out);
  if (t && t->type == CN_PID) return pg_pids_add(out, t->v.pid);
  uint32_t k;
  const cn_term *e = pg_list(t, &k);
  if (!e) return CN_EDECODE;
  if (k > PG_MAX_PIDS) return CN_ELIMIT;
  for (uint32_t i = 0; i < k; i++) {
    int rc = e[i].type != CN_PID ? CN_EDECODE : pg_pids_add(out, e[i].v.pid);
    if (rc) {
      pg_pids_free(out);
      return rc;
    }
  }
  return 0;
}

int pg_sync_entry(const cn_term *e, const cn_term **group, pg_pids *pids) {
  const cn_term *g = cn_tuple_elem(e, 2, 0), *l = cn_tuple_elem(e, 2, 1);
  if (!g || !l || l->type == CN_PID) return CN_EDECODE; /* the pids of a sync are always a list */
  *group = g;
  return pg_pids_decode(l, pids);
}

static bool is_pid(const cn_term *t, cn_pid *out) {
  if (!t || t->type != CN_PID) return false;
  *out = t->v.pid;
  return true;
}

static bool pids_shape(const cn_term *t) {
  uint32_t k;
  return (t && t->type == CN_PID) || pg_list(t, &k);
}

int pg_msg_decode(const cn_term *msg, pg_msg *out) {
  memset(out, 0, sizeof *out);
  if (!msg || msg->type != CN_TUPLE || !msg->v.tuple.arity || msg->v.tuple.e[0].type != CN_ATOM) return CN_EDECODE;
  uint32_t ar = msg->v.tuple.arity, k;
  const cn_term *e = msg->v.tuple.e;
  const char *tag = e[0].v.atom->name;
  if (!strcmp(tag, "discover") && (ar == 2 || ar == 3) && is_pid(&e[1], &out->peer)) {
    out->kind = PGM_DISCOVER; /* the 3-tuple carries a protocol version (OTP 26 accepts it, 28+ may send it) */
    return 0;
  }
  if (!strcmp(tag, "join") && ar == 4 && is_pid(&e[1], &out->peer) && pids_shape(&e[3])) {
    out->kind = PGM_JOIN;
    out->group = &e[2];
    out->pids = &e[3];
    return 0;
  }
  if (!strcmp(tag, "leave") && ar == 4 && is_pid(&e[1], &out->peer) && pids_shape(&e[2]) && pg_list(&e[3], &k)) {
    out->kind = PGM_LEAVE;
    out->pids = &e[2];
    out->groups = &e[3];
    return 0;
  }
  if (!strcmp(tag, "sync") && ar == 3 && is_pid(&e[1], &out->peer) && pg_list(&e[2], &k)) {
    out->kind = PGM_SYNC;
    out->groups = &e[2];
    return 0;
  }
  if (!strcmp(tag, "DOWN") && ar == 5 && e[1].type == CN_REF && cn_is_atom(&e[2], "process")) {
    out->kind = PGM_DOWN;
    out->ref = e[1].v.ref;
    is_pid(&e[3], &out->pid);
    return 0;
  }
  if ((!strcmp(tag, "nodeup") || !strcmp(tag, "nodedown")) && (ar == 2 || ar == 3) && e[1].type == CN_ATOM) {
    out->kind = tag[4] == 'u' ? PGM_NODEUP : PGM_NODEDOWN;
    out->node = e[1].v.atom;
    return 0;
  }
  return CN_EDECODE;
}
