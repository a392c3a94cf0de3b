/* global_lock.c: global's lock primitives, as asynchronous chains of gen_server calls made by the process they
 * belong to: multi_call to global_name_server on a list of nodes, set_lock/del_lock there (the boss first, released
 * last), and sleeping inside a process. The locker, the registrar and the C API are built on them. */
#include <string.h>
#include <unistd.h>

#include "global_lock_int.h"

bool gl_has_node(const cn_atom *const *v, size_t k, const cn_atom *a) {
  for (size_t i = 0; i < k; i++)
    if (v[i] == a) return true;
  return false;
}

/* lists:max/1 of node names (the "boss" locked first and released last). */
const cn_atom *gl_max_node(const cn_atom *const *v, size_t k) {
  const cn_atom *m = k ? v[0] : NULL;
  for (size_t i = 1; i < k; i++)
    if (gl_atom_cmp(v[i], m) > 0) m = v[i];
  return m;
}

cn_term *gl_node_list(const cn_atom *const *v, size_t k) {
  cn_term **e = cn_malloc((k ? k : 1) * sizeof *e);
  if (!e) return NULL;
  for (size_t i = 0; i < k; i++) e[i] = cn_mk_atom(v[i]);
  cn_term *l = cn_mk_listv(k, e, NULL);
  cn_free(e);
  return l;
}

/* ---- multi_call: {Request} to global_name_server on each node, as gen_server:multi_call/3 -------------------- */

static void mc_free(gl_mc *m) {
  cn_free(m->nodes);
  cn_free(m->res);
  cn_free(m->slots);
  cn_free(m);
}

static void mc_step(cn_proc *self, gl_mc *m) {
  if (--m->left) return;
  m->done(self, m, m->ctx);
  mc_free(m);
}

static void mc_reply(cn_proc *self, int status, const cn_term *reply, void *ctx) {
  gl_mc_slot *s = ctx;
  gl_mc *m = s->m;
  if (status == CN_ECLOSED) m->closed = true;
  m->res[s->i] = status ? -1 : cn_is_atom(reply, "true") ? 1 : 0;
  mc_step(self, m);
}

/* Calls every node (infinity: as OTP, a server that never answers holds the chain). done runs once, maybe
 * before this returns (when every call failed at once). Returns CN_ENOMEM only, and then done never runs. */
int gl_mc_start(cn_proc *self, const cn_atom *const *nodes, size_t k, const cn_term *req, gl_mc_done_fn done,
                void *ctx) {
  cn_node *n = cn_proc_node(self);
  gl_mc *m = cn_calloc(1, sizeof *m);
  if (!m || !(m->nodes = cn_malloc((k ? k : 1) * sizeof *m->nodes)) || !(m->res = cn_calloc(k ? k : 1, 1)) ||
      !(m->slots = cn_calloc(k ? k : 1, sizeof *m->slots))) {
    if (m) mc_free(m);
    return CN_ENOMEM;
  }
  m->count = k;
  m->left = k + 1; /* +1 until every call is made */
  m->done = done;
  m->ctx = ctx;
  for (size_t i = 0; i < k; i++) {
    m->nodes[i] = nodes[i];
    m->slots[i] = (gl_mc_slot){m, i};
    cn_term e[2] = {cn_tv_atom(cn_intern(n, GL_SERVER_NAME)), cn_tv_atom(nodes[i])};
    cn_term dest = cn_tv_tuple(e, 2);
    if (cn_call(self, &dest, req, 0, mc_reply, &m->slots[i])) {
      m->res[i] = -1;
      m->left--;
    }
  }
  mc_step(self, m);
  return 0;
}

/* ---- set_lock / del_lock on a list of nodes, and sleeping ---------------------------------------------------- */

typedef struct sl_op {
  cn_term *id;
  bool del; /* a del_lock pass */
  gl_st_fn done;
  void *ctx;
} sl_op;

static void sl_free(sl_op *o) {
  cn_term_free(o->id);
  cn_free(o);
}

static void sl_undone(cn_proc *self, gl_mc *m, void *ctx) {
  sl_op *o = ctx;
  gl_st_fn done = o->done;
  void *dctx = o->ctx;
  sl_free(o);
  done(self, m->closed ? CN_ECLOSED : CN_EBUSY, dctx);
}

/* check_replies/3: all true, or the nodes that said true are released again. */
static void sl_replied(cn_proc *self, gl_mc *m, void *ctx) {
  sl_op *o = ctx;
  gl_st_fn done = o->done;
  void *dctx = o->ctx;
  size_t replies = 0, falses = 0;
  for (size_t i = 0; i < m->count; i++) {
    replies += m->res[i] >= 0;
    falses += m->res[i] == 0;
  }
  int st = m->closed ? CN_ECLOSED : falses ? CN_EBUSY : 0;
  if (st == CN_EBUSY && replies > 1) {
    const cn_atom **yes = cn_malloc(m->count * sizeof *yes);
    size_t k = 0;
    for (size_t i = 0; yes && i < m->count; i++)
      if (m->res[i] == 1) yes[k++] = m->nodes[i];
    cn_term *req = yes ? cn_mk_tuple(2, A(cn_proc_node(self), "del_lock"), cn_term_copy(o->id)) : NULL;
    int rc = req ? gl_mc_start(self, yes, k, req, sl_undone, o) : CN_ENOMEM;
    cn_term_free(req);
    cn_free(yes);
    if (!rc) return;
  }
  sl_free(o);
  done(self, st, dctx);
}

static void dl_replied(cn_proc *self, gl_mc *m, void *ctx) {
  sl_op *o = ctx;
  gl_st_fn done = o->done;
  void *dctx = o->ctx;
  sl_free(o);
  done(self, m->closed ? CN_ECLOSED : 0, dctx);
}

/* set_lock(Id, Nodes, 0) (del false) or del_lock(Id, Nodes) (del true); done may run before this returns. */
void gl_lock_nodes(cn_proc *self, bool del, const cn_term *id, const cn_atom *const *nodes, size_t k, gl_st_fn done,
                   void *ctx) {
  cn_node *n = cn_proc_node(self);
  if (!k) {
    done(self, 0, ctx);
    return;
  }
  /* local_lock_check/2: no use asking the others when this node already refuses. */
  gl_state *g = gl_of(n);
  if (!del && k > 1 && g && gl_has_node(nodes, k, cn_node_name(n)) && !gl_can_set_lock(g, id)) {
    done(self, CN_EBUSY, ctx);
    return;
  }
  sl_op *o = cn_calloc(1, sizeof *o);
  cn_term *req = cn_mk_tuple(2, A(n, del ? "del_lock" : "set_lock"), cn_term_copy(id));
  if (!o || !req || !(o->id = cn_term_copy(id))) {
    cn_free(o);
    cn_term_free(req);
    done(self, CN_ENOMEM, ctx);
    return;
  }
  o->del = del;
  o->done = done;
  o->ctx = ctx;
  int rc = gl_mc_start(self, nodes, k, req, del ? dl_replied : sl_replied, o);
  cn_term_free(req);
  if (rc) {
    sl_free(o);
    done(self, rc, ctx);
  }
}

/* gl_delete_global_lock/2: every node but the boss, then the boss. */
typedef struct dgl_op {
  cn_term *id;
  const cn_atom *boss;
  gl_st_fn done;
  void *ctx;
} dgl_op;

static void dgl_boss(cn_proc *self, int status, void *ctx) {
  dgl_op *o = ctx;
  gl_st_fn done = o->done;
  void *dctx = o->ctx;
  cn_term_free(o->id);
  cn_free(o);
  done(self, status, dctx);
}

static void dgl_rest(cn_proc *self, int status, void *ctx) {
  dgl_op *o = ctx;
  if (status == CN_ECLOSED) {
    dgl_boss(self, status, ctx);
    return;
  }
  gl_lock_nodes(self, true, o->id, &o->boss, 1, dgl_boss, o);
}

void gl_delete_global_lock(cn_proc *self, const cn_term *id, const cn_atom *const *nodes, size_t k, gl_st_fn done,
                           void *ctx) {
  dgl_op *o = cn_calloc(1, sizeof *o);
  const cn_atom **rest = cn_malloc((k ? k : 1) * sizeof *rest);
  if (!o || !rest || !(o->id = cn_term_copy(id)) || !k) {
    cn_free(o);
    cn_free(rest);
    done(self, k ? CN_ENOMEM : 0, ctx);
    return;
  }
  o->boss = gl_max_node(nodes, k);
  o->done = done;
  o->ctx = ctx;
  size_t r = 0;
  for (size_t i = 0; i < k; i++)
    if (nodes[i] != o->boss) rest[r++] = nodes[i];
  gl_lock_nodes(self, true, id, rest, r, dgl_rest, o);
  cn_free(rest);
}

/* Sleeps ms in self's context; a timer that cannot be set reports its error at once. */
void gl_sleep_ms_in(cn_proc *self, unsigned ms, gl_st_fn done, void *ctx) {
  int rc = cn_proc_after(self, ms, done, ctx, NULL);
  if (rc) done(self, rc, ctx);
}

/* random_sleep/1: up to 1/4 s the first time, doubling up to 8 s. */
unsigned gl_random_sleep_ms(gl_state *g, int times) {
  uint32_t tmax = times > 5 ? 8000 : ((1u << times) * 1000) / 8;
  if (!g) return tmax / 2 + 1;
  return gl_uniform(g, tmax ? tmax : 1);
}
