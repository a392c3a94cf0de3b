/* global_lock.c: global's lock side. The locker (OTP's the_locker: takes the partition-wide lock
 * {global, [LockerA, LockerB]} before two partitions exchange names), the registrar (register/unregister under
 * the {global, Registrar} lock on every known node), and the C API for locks and names, all as asynchronous
 * chains of gen_server calls made by the process they belong to. */
#include <string.h>
#include <unistd.h>

#include "global_int.h"

#define SERVER_NAME "global_name_server"

static cn_term *A(cn_node *n, const char *s) { return cn_mk_atomc(n, s); }
static bool is_pid_t(const cn_term *t) { return t && t->type == CN_PID; }
static const cn_term *el(const cn_term *t, uint32_t arity, uint32_t i) { return cn_tuple_elem(t, arity, i); }

static bool has_node(const cn_atom *const *v, size_t k, const cn_atom *a) {
  for (size_t i = 0; i < k; i++)
    if (v[i] == a) return true;
  return false;
}

/* lists:max/1 of node names (the "boss" locked first and released last). */
static const cn_atom *max_node(const cn_atom *const *v, size_t k) {
  const cn_atom *m = k ? v[0] : NULL;
  for (size_t i = 1; i < k; i++)
    if (gl_atom_cmp(v[i], m) > 0) m = v[i];
  return m;
}

static cn_term *node_list(const cn_atom *const *v, size_t k) {
  cn_term **e = cn_malloc((k ? k : 1) * sizeof *e);
  if (!e) return NULL;
  for (size_t i = 0; i < k; i++) e[i] = cn_mk_atom(v[i]);
  cn_term *l = cn_mk_listv(k, e, NULL);
  cn_free(e);
  return l;
}

/* ---- multi_call: {Request} to global_name_server on each node, as gen_server:multi_call/3 -------------------- */

typedef struct mc mc;
/* closed: the calling process ended; res[i]: 1 a `true` reply, 0 another reply, -1 a bad node. */
typedef void (*mc_done_fn)(cn_proc *self, mc *m, void *ctx);
typedef struct mc_slot {
  mc *m;
  size_t i;
} mc_slot;
struct mc {
  size_t count, left;
  const cn_atom **nodes;
  int8_t *res;
  mc_slot *slots;
  bool closed;
  mc_done_fn done;
  void *ctx;
};

static void mc_free(mc *m) {
  cn_free(m->nodes);
  cn_free(m->res);
  cn_free(m->slots);
  cn_free(m);
}

static void mc_step(cn_proc *self, mc *m) {
  if (--m->left) return;
  m->done(self, m, m->ctx);
  mc_free(m);
}

static void mc_reply(cn_proc *self, int status, const cn_term *reply, void *ctx) {
  mc_slot *s = ctx;
  mc *m = s->m;
  if (status == CN_ECLOSED) m->closed = true;
  m->res[s->i] = status ? -1 : cn_is_atom(reply, "true") ? 1 : 0;
  mc_step(self, m);
}

/* Calls every node (infinity: as OTP, a server that never answers holds the chain). done runs once, maybe
 * before this returns (when every call failed at once). Returns CN_ENOMEM only, and then done never runs. */
static int mc_start(cn_proc *self, const cn_atom *const *nodes, size_t k, const cn_term *req, mc_done_fn done,
                    void *ctx) {
  cn_node *n = cn_proc_node(self);
  mc *m = cn_calloc(1, sizeof *m);
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
    m->slots[i] = (mc_slot){m, i};
    cn_term e[2] = {tv_atom(cn_intern(n, SERVER_NAME)), tv_atom(nodes[i])};
    cn_term dest = tv_tuple(e, 2);
    if (cn_call(self, &dest, req, 0, mc_reply, &m->slots[i])) {
      m->res[i] = -1;
      m->left--;
    }
  }
  mc_step(self, m);
  return 0;
}

/* ---- set_lock / del_lock on a list of nodes, and sleeping ---------------------------------------------------- */

/* status: 0 set, CN_EBUSY refused (released again where it was set), CN_ECLOSED the caller ended, CN_ENOMEM. */
typedef void (*st_fn)(cn_proc *self, int status, void *ctx);

typedef struct sl_op {
  cn_term *id;
  bool del; /* a del_lock pass */
  st_fn done;
  void *ctx;
} sl_op;

static void sl_free(sl_op *o) {
  cn_term_free(o->id);
  cn_free(o);
}

static void sl_undone(cn_proc *self, mc *m, void *ctx) {
  sl_op *o = ctx;
  st_fn done = o->done;
  void *dctx = o->ctx;
  sl_free(o);
  done(self, m->closed ? CN_ECLOSED : CN_EBUSY, dctx);
}

/* check_replies/3: all true, or the nodes that said true are released again. */
static void sl_replied(cn_proc *self, mc *m, void *ctx) {
  sl_op *o = ctx;
  st_fn done = o->done;
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
    int rc = req ? mc_start(self, yes, k, req, sl_undone, o) : CN_ENOMEM;
    cn_term_free(req);
    cn_free(yes);
    if (!rc) return;
  }
  sl_free(o);
  done(self, st, dctx);
}

static void dl_replied(cn_proc *self, mc *m, void *ctx) {
  sl_op *o = ctx;
  st_fn done = o->done;
  void *dctx = o->ctx;
  sl_free(o);
  done(self, m->closed ? CN_ECLOSED : 0, dctx);
}

/* set_lock(Id, Nodes, 0) (del false) or del_lock(Id, Nodes) (del true); done may run before this returns. */
static void lock_nodes(cn_proc *self, bool del, const cn_term *id, const cn_atom *const *nodes, size_t k, st_fn done,
                       void *ctx) {
  cn_node *n = cn_proc_node(self);
  if (!k) {
    done(self, 0, ctx);
    return;
  }
  /* local_lock_check/2: no use asking the others when this node already refuses. */
  gl_state *g = gl_of(n);
  if (!del && k > 1 && g && has_node(nodes, k, cn_node_name(n)) && !gl_can_set_lock(g, id)) {
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
  int rc = mc_start(self, nodes, k, req, del ? dl_replied : sl_replied, o);
  cn_term_free(req);
  if (rc) {
    sl_free(o);
    done(self, rc, ctx);
  }
}

/* delete_global_lock/2: every node but the boss, then the boss. */
typedef struct dgl_op {
  cn_term *id;
  const cn_atom *boss;
  st_fn done;
  void *ctx;
} dgl_op;

static void dgl_boss(cn_proc *self, int status, void *ctx) {
  dgl_op *o = ctx;
  st_fn done = o->done;
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
  lock_nodes(self, true, o->id, &o->boss, 1, dgl_boss, o);
}

static void delete_global_lock(cn_proc *self, const cn_term *id, const cn_atom *const *nodes, size_t k, st_fn done,
                               void *ctx) {
  dgl_op *o = cn_calloc(1, sizeof *o);
  const cn_atom **rest = cn_malloc((k ? k : 1) * sizeof *rest);
  if (!o || !rest || !(o->id = cn_term_copy(id)) || !k) {
    cn_free(o);
    cn_free(rest);
    done(self, k ? CN_ENOMEM : 0, ctx);
    return;
  }
  o->boss = max_node(nodes, k);
  o->done = done;
  o->ctx = ctx;
  size_t r = 0;
  for (size_t i = 0; i < k; i++)
    if (nodes[i] != o->boss) rest[r++] = nodes[i];
  lock_nodes(self, true, id, rest, r, dgl_rest, o);
  cn_free(rest);
}

/* Sleeps ms in self's context: a call global_name_server never answers, with a timeout. */
typedef struct sleep_op {
  st_fn done;
  void *ctx;
} sleep_op;

static void slept(cn_proc *self, int status, const cn_term *reply, void *ctx) {
  (void)reply;
  sleep_op *o = ctx;
  st_fn done = o->done;
  void *dctx = o->ctx;
  cn_free(o);
  done(self, status == CN_ETIMEDOUT ? 0 : status == CN_ECLOSED ? CN_ECLOSED : CN_ESTATE, dctx);
}

static void sleep_ms_in(cn_proc *self, unsigned ms, st_fn done, void *ctx) {
  cn_node *n = cn_proc_node(self);
  sleep_op *o = cn_malloc(sizeof *o);
  cn_term server = tv_atom(cn_intern(n, SERVER_NAME)), req = tv_atom(cn_intern(n, "$cn_sleep"));
  if (!o) {
    done(self, CN_ENOMEM, ctx);
    return;
  }
  o->done = done;
  o->ctx = ctx;
  int rc = cn_call(self, &server, &req, ms ? ms : 1, slept, o);
  if (rc) {
    cn_free(o);
    done(self, rc, ctx);
  }
}

/* random_sleep/1: up to 1/4 s the first time, doubling up to 8 s. */
static unsigned random_sleep_ms(gl_state *g, int times) {
  uint32_t tmax = times > 5 ? 8000 : ((1u << times) * 1000) / 8;
  if (!g) return tmax / 2 + 1;
  return gl_uniform(g, tmax ? tmax : 1);
}

/* ---- The locker ----------------------------------------------------------------------------------------------- */

typedef enum { LK_IDLE, LK_BUSY, LK_WAIT_LOCKSET, LK_WAIT_CANCEL } lk_mode;

typedef struct lk_him {
  struct lk_him *next;
  const cn_atom *node;
  cn_pid locker;
  int vsn;
  cn_term *my_tag, *his_tag;
  bool local; /* on this host: OTP prefers such nodes */
} lk_him;

typedef struct lk_msg {
  struct lk_msg *next;
  cn_term *t;
} lk_msg;

typedef struct lk_timer {
  uv_timer_t t;
  cn_node *n;
  cn_pid pid;
  int64_t gen;
} lk_timer;

struct gl_locker {
  gl_state *g;
  cn_node *n;
  const cn_atom **known;
  size_t nknown, capknown;
  lk_him *hims;
  bool just_synced;
  lk_mode mode;
  lk_msg *deferred, **dtail;
  lk_timer *timer;
  bool settling;
  char host[256];
  /* The session being locked or held. */
  bool spont;              /* answering the peer's lock_set (true) or started by our timer */
  const cn_atom *snode;    /* the peer */
  cn_pid slocker;          /* its locker */
  int svsn;
  cn_term *my_tag, *his_tag;
  cn_term *lock_id;
  const cn_atom **held;    /* the nodes to unlock when the session ends (Known1 / Known2) */
  size_t nheld;
  const cn_atom *first;    /* lock_nodes_safely: the boss locked first */
  const cn_atom **second;
  size_t nsecond;
};

static void lk_settle(gl_locker *lk, cn_proc *self);

static void known_add(gl_locker *lk, const cn_atom *a) {
  if (has_node(lk->known, lk->nknown, a)) return;
  if (lk->nknown == lk->capknown) {
    size_t cap = lk->capknown ? 2 * lk->capknown : 8;
    const cn_atom **v = cn_realloc(lk->known, cap * sizeof *v);
    if (!v) return;
    lk->known = v;
    lk->capknown = cap;
  }
  lk->known[lk->nknown++] = a;
}

static void known_del(gl_locker *lk, const cn_atom *a) {
  for (size_t i = 0; i < lk->nknown; i++)
    if (lk->known[i] == a) {
      lk->known[i] = lk->known[--lk->nknown];
      return;
    }
}

static const cn_atom *the_boss(gl_locker *lk) {
  const cn_atom *b = cn_node_name(lk->n);
  for (size_t i = 0; i < lk->nknown; i++)
    if (gl_atom_cmp(lk->known[i], b) > 0) b = lk->known[i];
  return b;
}

static void him_free(lk_him *h) {
  cn_term_free(h->my_tag);
  cn_term_free(h->his_tag);
  cn_free(h);
}

static void remove_node(gl_locker *lk, const cn_atom *node, const cn_term *tag) {
  for (lk_him **x = &lk->hims; *x;) {
    if ((*x)->node == node && cn_term_eq((*x)->my_tag, tag)) {
      lk_him *h = *x;
      *x = h->next;
      him_free(h);
    } else {
      x = &(*x)->next;
    }
  }
}

static lk_him *find_node_tag(gl_locker *lk, const cn_atom *node) {
  for (int local = 1; local >= 0; local--)
    for (lk_him *h = lk->hims; h; h = h->next)
      if (h->node == node && h->local == local) return h;
  return NULL;
}

static void session_clear(gl_locker *lk) {
  cn_term_free(lk->my_tag);
  cn_term_free(lk->his_tag);
  cn_term_free(lk->lock_id);
  cn_free(lk->held);
  cn_free(lk->second);
  lk->my_tag = lk->his_tag = lk->lock_id = NULL;
  lk->held = lk->second = NULL;
  lk->nheld = lk->nsecond = 0;
}

/* {global, lists:sort([self(), HisLocker])}: both partitions must build the same requester id. */
static cn_term *locker_lock_id(gl_locker *lk, cn_proc *self, cn_pid his) {
  cn_term a = tv_pid(cn_self(self)), b = tv_pid(his);
  bool swap = cn_term_cmp(&a, &b) > 0;
  return cn_mk_tuple(2, A(lk->n, "global"), cn_mk_list(2, cn_mk_pid(swap ? his : cn_self(self)),
                                                       cn_mk_pid(swap ? cn_self(self) : his)));
}

static void send_lock_set(gl_locker *lk, cn_proc *self, bool set, cn_pid his_locker, int vsn, const cn_term *his_tag) {
  cn_node *n = lk->n;
  cn_term *known = node_list(lk->known, lk->nknown);
  cn_term *me = cn_mk_pid(cn_self(self)), *b = A(n, set ? "true" : "false");
  cn_term *msg = vsn < GL_VSN ? cn_mk_tuple(4, A(n, "lock_set"), me, b, known)
                              : cn_mk_tuple(5, A(n, "lock_set"), me, b, known,
                                            his_tag ? cn_term_copy(his_tag) : cn_mk_int(0));
  if (vsn < 6) {
    if (msg) cn_send(n, self, his_locker, msg);
    cn_term_free(msg);
  } else {
    gl_cast(lk->g, self, his_locker.node, msg);
  }
}

/* The {cancel, Node, Tag, Fun} fun: the new_nodes casts of a finished exchange, made before the lock goes. */
static void call_fun(gl_locker *lk, cn_proc *self, const cn_term *fun) {
  const cn_term *tag = el(fun, 2, 0), *list = el(fun, 2, 1);
  if (!tag || !cn_is_atom(tag, "$cn_new_nodes") || list->type != CN_LIST) return;
  for (uint32_t i = 0; i < list->v.list.len; i++) {
    const cn_term *node = el(&list->v.list.e[i], 2, 0), *msg = el(&list->v.list.e[i], 2, 1);
    if (node && node->type == CN_ATOM) gl_cast(lk->g, self, node->v.atom, cn_term_copy(msg));
  }
}

/* Absorbs queued add_to_known / remove_from_known messages (OTP's update_locker_known/1). */
static bool known_msg(gl_locker *lk, const cn_term *m) {
  const cn_term *op = el(m, 2, 0), *arg = el(m, 2, 1);
  if (op && cn_is_atom(op, "add_to_known")) {
    for (uint32_t i = 0; arg->type == CN_LIST && i < arg->v.list.len; i++)
      if (arg->v.list.e[i].type == CN_ATOM) known_add(lk, arg->v.list.e[i].v.atom);
    return true;
  }
  if (op && cn_is_atom(op, "remove_from_known")) {
    if (arg->type == CN_ATOM) known_del(lk, arg->v.atom);
    return true;
  }
  return false;
}

static void update_locker_known(gl_locker *lk) {
  for (lk_msg **x = &lk->deferred; *x;) {
    lk_msg *m = *x;
    if (known_msg(lk, m->t)) {
      *x = m->next;
      if (!*x) lk->dtail = x;
      cn_term_free(m->t);
      cn_free(m);
    } else {
      x = &m->next;
    }
  }
}

static void lk_unlocked(cn_proc *self, int status, void *ctx);

/* Ends the session by deleting its lock; the locker is idle again once that is done. */
static void lk_unlock(gl_locker *lk, cn_proc *self) {
  lk->mode = LK_BUSY;
  delete_global_lock(self, lk->lock_id, lk->held, lk->nheld, lk_unlocked, lk);
}

static void lk_unlocked(cn_proc *self, int status, void *ctx) {
  gl_locker *lk = ctx;
  if (status == CN_ECLOSED) return;
  session_clear(lk);
  lk->mode = LK_IDLE;
  lk_settle(lk, self);
}

/* The nodes to unlock at the end: [node() | Extra] ++ known (Known1 / Known2). */
static void set_held(gl_locker *lk, bool with_peer) {
  cn_free(lk->held);
  lk->held = cn_malloc((lk->nknown + 2) * sizeof *lk->held);
  lk->nheld = 0;
  if (!lk->held) return;
  lk->held[lk->nheld++] = cn_node_name(lk->n);
  if (with_peer && !has_node(lk->known, lk->nknown, lk->snode)) lk->held[lk->nheld++] = lk->snode;
  for (size_t i = 0; i < lk->nknown; i++) lk->held[lk->nheld++] = lk->known[i];
}

/* lock_nodes_safely/3 finished: the session goes on (waiting for the peer or for the cancel) or ends. */
static void lns_done(gl_locker *lk, cn_proc *self, bool ok) {
  if (lk->spont) {
    send_lock_set(lk, self, ok, lk->slocker, lk->svsn, lk->his_tag);
    if (!ok) {
      lk->just_synced = false;
      session_clear(lk);
      lk->mode = LK_IDLE;
      return;
    }
    set_held(lk, false);
    gl_cast(lk->g, self, cn_node_name(lk->n),
            cn_mk_tuple(4, A(lk->n, "lock_is_set"), cn_mk_atom(lk->snode), cn_term_copy(lk->my_tag),
                        cn_term_copy(lk->lock_id)));
    lk->mode = LK_WAIT_CANCEL;
    return;
  }
  if (!ok) {
    session_clear(lk);
    lk->mode = LK_IDLE;
    return;
  }
  set_held(lk, true);
  send_lock_set(lk, self, true, lk->slocker, lk->svsn, lk->his_tag);
  lk->mode = LK_WAIT_LOCKSET;
}

static void lns_fail_done(cn_proc *self, int status, void *ctx) {
  gl_locker *lk = ctx;
  if (status == CN_ECLOSED) return;
  lns_done(lk, self, false);
  lk_settle(lk, self);
}

static void lns_3(cn_proc *self, int status, void *ctx) {
  gl_locker *lk = ctx;
  if (status == CN_ECLOSED) return;
  if (status) {
    /* SoFar = First ++ Second */
    const cn_atom **so_far = cn_malloc((lk->nsecond + 1) * sizeof *so_far);
    if (so_far) {
      so_far[0] = lk->first;
      memcpy(so_far + 1, lk->second, lk->nsecond * sizeof *so_far);
      lock_nodes(self, true, lk->lock_id, so_far, lk->nsecond + 1, lns_fail_done, lk);
      cn_free(so_far);
      return;
    }
  }
  lns_done(lk, self, status == 0);
  lk_settle(lk, self);
}

static void lns_2(cn_proc *self, int status, void *ctx) {
  gl_locker *lk = ctx;
  if (status == CN_ECLOSED) return;
  if (status) {
    lock_nodes(self, true, lk->lock_id, &lk->first, 1, lns_fail_done, lk);
    return;
  }
  const cn_atom **third = cn_malloc((lk->nknown ? lk->nknown : 1) * sizeof *third);
  size_t k = 0;
  for (size_t i = 0; third && i < lk->nknown; i++)
    if (lk->known[i] != lk->first) third[k++] = lk->known[i];
  if (!third) {
    lock_nodes(self, true, lk->lock_id, &lk->first, 1, lns_fail_done, lk);
    return;
  }
  lock_nodes(self, false, lk->lock_id, third, k, lns_3, lk);
  cn_free(third);
}

static void lns_1(cn_proc *self, int status, void *ctx) {
  gl_locker *lk = ctx;
  if (status == CN_ECLOSED) return;
  if (status) {
    lns_done(lk, self, false);
    lk_settle(lk, self);
    return;
  }
  update_locker_known(lk);
  /* Second = [node() | Extra] -- First */
  cn_free(lk->second);
  lk->second = cn_malloc(2 * sizeof *lk->second);
  lk->nsecond = 0;
  if (!lk->second) {
    lock_nodes(self, true, lk->lock_id, &lk->first, 1, lns_fail_done, lk);
    return;
  }
  const cn_atom *me = cn_node_name(lk->n);
  if (me != lk->first) lk->second[lk->nsecond++] = me;
  if (!lk->spont && lk->snode != lk->first) lk->second[lk->nsecond++] = lk->snode;
  lock_nodes(self, false, lk->lock_id, lk->second, lk->nsecond, lns_2, lk);
}

/* lock_nodes_safely/3: the boss first, then this node (and the peer when we started), then the known. */
static void lns_start(gl_locker *lk, cn_proc *self) {
  lk->mode = LK_BUSY;
  lk->first = the_boss(lk);
  if (lk->first != cn_node_name(lk->n) && !gl_can_set_lock(lk->g, lk->lock_id)) {
    lns_done(lk, self, false);
    return;
  }
  lock_nodes(self, false, lk->lock_id, &lk->first, 1, lns_1, lk);
}

static bool session_start(gl_locker *lk, cn_proc *self, lk_him *h, cn_pid his_locker, bool spont) {
  session_clear(lk);
  lk->spont = spont;
  lk->snode = h->node;
  lk->slocker = his_locker;
  lk->svsn = h->vsn;
  lk->my_tag = cn_term_copy(h->my_tag);
  lk->his_tag = cn_term_copy(h->his_tag);
  lk->lock_id = locker_lock_id(lk, self, his_locker);
  if (!lk->my_tag || !lk->his_tag || !lk->lock_id) {
    session_clear(lk);
    return false;
  }
  lns_start(lk, self);
  return true;
}

static bool is_local_host(gl_locker *lk, const cn_atom *node) {
  const char *at = strchr(node->name, '@');
  return at && lk->host[0] && strcmp(at + 1, lk->host) == 0;
}

/* select_node/1: the timer went off with no global lock set here: lock with one waiting peer. */
static void select_node(gl_locker *lk, cn_proc *self) {
  bool any_local = false;
  for (lk_him *h = lk->hims; h; h = h->next) any_local |= h->local;
  /* exclude_known/2 also drops peers that became known meanwhile. */
  for (lk_him **x = &lk->hims; *x;) {
    if ((*x)->local == any_local && has_node(lk->known, lk->nknown, (*x)->node)) {
      lk_him *h = *x;
      *x = h->next;
      him_free(h);
    } else {
      x = &(*x)->next;
    }
  }
  size_t k = 0;
  for (lk_him *h = lk->hims; h; h = h->next) k += h->local == any_local;
  if (!k) return;
  uint32_t pick = gl_uniform(lk->g, (uint32_t)k);
  for (lk_him *h = lk->hims; h; h = h->next)
    if (h->local == any_local && --pick == 0) {
      session_start(lk, self, h, h->locker, false);
      return;
    }
}

static bool lock_set_shape(const cn_term *m, const cn_term **pid, bool *set, const cn_term **tag) {
  const cn_term *op = m && m->type == CN_TUPLE && m->v.tuple.arity >= 4 ? &m->v.tuple.e[0] : NULL;
  if (!op || !cn_is_atom(op, "lock_set") || m->v.tuple.arity > 5 || !is_pid_t(&m->v.tuple.e[1])) return false;
  *pid = &m->v.tuple.e[1];
  *set = cn_is_atom(&m->v.tuple.e[2], "true");
  *tag = m->v.tuple.arity == 5 ? &m->v.tuple.e[4] : NULL;
  return true;
}

/* The loop_the_locker messages; true when consumed. */
static bool lk_idle_msg(gl_locker *lk, cn_proc *self, const cn_term *m) {
  cn_node *n = lk->n;
  const cn_term *op = m && m->type == CN_TUPLE && m->v.tuple.arity ? &m->v.tuple.e[0] : NULL;
  const cn_term *pid, *tag;
  bool set;
  if (known_msg(lk, m)) return true;
  if (op && cn_is_atom(op, "his_the_locker") && m->v.tuple.arity == 5 && is_pid_t(&m->v.tuple.e[1])) {
    const cn_term *v = el(&m->v.tuple.e[2], 2, 0);
    lk_him *h = cn_calloc(1, sizeof *h);
    if (!h || !(h->my_tag = cn_term_copy(&m->v.tuple.e[4])) || !(h->his_tag = cn_term_copy(&m->v.tuple.e[3]))) {
      if (h) him_free(h);
      return true;
    }
    h->locker = m->v.tuple.e[1].v.pid;
    h->node = h->locker.node;
    h->vsn = v && v->type == CN_INT ? (int)v->v.i : GL_VSN;
    h->local = is_local_host(lk, h->node);
    h->next = lk->hims;
    lk->hims = h;
    return true;
  }
  if (op && cn_is_atom(op, "cancel") && m->v.tuple.arity == 4) {
    const cn_term *node = &m->v.tuple.e[1], *ctag = &m->v.tuple.e[2];
    /* A cancel with tag undefined may be an old nodedown's: it must not cancel a newer session. */
    if (node->type == CN_ATOM && !cn_is_atom(ctag, "undefined") && cn_is_atom(&m->v.tuple.e[3], "no_fun"))
      remove_node(lk, node->v.atom, ctag);
    return true;
  }
  if (lock_set_shape(m, &pid, &set, &tag)) {
    if (!set) return true;
    lk_him *h = find_node_tag(lk, pid->v.pid.node);
    if (!h) {
      send_lock_set(lk, self, false, pid->v.pid, 5, NULL);
      return true;
    }
    if (tag && !cn_term_eq(tag, h->my_tag)) return true;
    session_start(lk, self, h, pid->v.pid, true);
    return true;
  }
  if (op && cn_is_atom(op, "$cn_tick") && m->v.tuple.arity == 2) {
    const cn_term *gen = &m->v.tuple.e[1];
    if (gen->type != CN_INT || !lk->timer || gen->v.i != lk->timer->gen) return true;
    cn_term gid = tv_atom(cn_intern(n, "global"));
    if (!gl_lock_find(lk->g, &gid)) select_node(lk, self);
    return true;
  }
  return true; /* unexpected: dropped, as OTP logs and drops it */
}

/* lock_is_set/5: we hold our partition; waiting for the peer's lock_set (or a cancel). */
static bool lk_wait_lockset_msg(gl_locker *lk, cn_proc *self, const cn_term *m) {
  const cn_term *pid, *tag;
  bool set;
  if (lock_set_shape(m, &pid, &set, &tag)) {
    if (pid->v.pid.node != lk->snode) return false;
    if (tag && !cn_term_eq(tag, lk->my_tag)) return true; /* an old session's: consumed */
    if (set) {
      gl_cast(lk->g, self, cn_node_name(lk->n),
              cn_mk_tuple(4, A(lk->n, "lock_is_set"), cn_mk_atom(lk->snode), cn_term_copy(lk->my_tag),
                          cn_term_copy(lk->lock_id)));
      lk->mode = LK_WAIT_CANCEL;
    } else {
      lk_unlock(lk, self); /* rejected: the peer stays in the list for a later try */
    }
    return true;
  }
  const cn_term *op = m && m->type == CN_TUPLE && m->v.tuple.arity == 4 ? &m->v.tuple.e[0] : NULL;
  if (op && cn_is_atom(op, "cancel") && m->v.tuple.e[1].type == CN_ATOM && m->v.tuple.e[1].v.atom == lk->snode &&
      cn_term_eq(&m->v.tuple.e[2], lk->my_tag)) {
    call_fun(lk, self, &m->v.tuple.e[3]);
    remove_node(lk, lk->snode, lk->my_tag);
    lk_unlock(lk, self);
    return true;
  }
  return false;
}

/* wait_cancel_lock/6: the lock is held until global_name_server says the exchange is over. */
static bool lk_wait_cancel_msg(gl_locker *lk, cn_proc *self, const cn_term *m) {
  const cn_term *op = m && m->type == CN_TUPLE && m->v.tuple.arity == 4 ? &m->v.tuple.e[0] : NULL;
  if (!op || !cn_is_atom(op, "cancel") || m->v.tuple.e[1].type != CN_ATOM || m->v.tuple.e[1].v.atom != lk->snode ||
      !cn_term_eq(&m->v.tuple.e[2], lk->my_tag))
    return false;
  call_fun(lk, self, &m->v.tuple.e[3]);
  lk->just_synced = true;
  remove_node(lk, lk->snode, lk->my_tag);
  lk_unlock(lk, self);
  return true;
}

static bool lk_try(gl_locker *lk, cn_proc *self, const cn_term *m) {
  switch (lk->mode) {
  case LK_IDLE: return lk_idle_msg(lk, self, m);
  case LK_WAIT_LOCKSET: return lk_wait_lockset_msg(lk, self, m);
  case LK_WAIT_CANCEL: return lk_wait_cancel_msg(lk, self, m);
  default: return false;
  }
}

static void on_lk_timer(uv_timer_t *t) {
  lk_timer *lt = (lk_timer *)t;
  cn_term *msg = cn_mk_tuple(2, cn_mk_atomc(lt->n, "$cn_tick"), cn_mk_int(lt->gen));
  if (msg) cn_send(lt->n, NULL, lt->pid, msg);
  cn_term_free(msg);
}

/* The timeout of loop_the_locker/1: none without waiting peers, 0 right after a sync, 200 ms alone, else
 * 1 s + 100 ms per known node up to 3 s. */
static void lk_arm(gl_locker *lk) {
  if (!lk->timer) return;
  uv_timer_stop(&lk->timer->t);
  lk->timer->gen++;
  if (!lk->hims) return;
  uint64_t ms = lk->just_synced ? 0 : !lk->nknown ? 200 : 1000 + 100 * lk->nknown;
  if (ms > 3000) ms = 3000;
  lk->just_synced = false;
  uv_timer_start(&lk->timer->t, on_lk_timer, ms, 0);
}

/* Runs deferred messages the current state accepts (a selective receive), then arms the timer when idle. */
static void lk_settle(gl_locker *lk, cn_proc *self) {
  if (lk->settling) return;
  lk->settling = true;
  bool progress = true;
  while (progress && lk->mode != LK_BUSY) {
    progress = false;
    for (lk_msg **x = &lk->deferred; *x; x = &(*x)->next) {
      lk_msg *m = *x;
      *x = m->next;
      if (!*x) lk->dtail = x;
      if (lk_try(lk, self, m->t)) {
        cn_term_free(m->t);
        cn_free(m);
        progress = true;
        break;
      }
      /* not taken: put it back where it was */
      m->next = *x;
      *x = m;
      if (!m->next) lk->dtail = &m->next;
    }
  }
  if (lk->mode == LK_IDLE)
    lk_arm(lk);
  else if (lk->timer) {
    uv_timer_stop(&lk->timer->t);
    lk->timer->gen++;
  }
  lk->settling = false;
}

static void lk_defer(gl_locker *lk, const cn_term *m) {
  lk_msg *d = cn_malloc(sizeof *d);
  if (!d || !(d->t = cn_term_copy(m))) {
    cn_free(d);
    return;
  }
  d->next = NULL;
  *lk->dtail = d;
  lk->dtail = &d->next;
}

static void locker_handle(cn_proc *self, const cn_term *msg, void *state) {
  gl_locker *lk = state;
  /* A message the state does not take waits, as in a selective receive; older ones go first. */
  if (lk->deferred || lk->settling || !lk_try(lk, self, msg)) lk_defer(lk, msg);
  lk_settle(lk, self);
}

static void timer_closed(uv_handle_t *h) { cn_free(h); }

static void locker_end(cn_proc *self, const cn_term *reason, void *state) {
  (void)self;
  (void)reason;
  gl_locker *lk = state;
  if (lk->timer) uv_close((uv_handle_t *)&lk->timer->t, timer_closed);
  while (lk->hims) {
    lk_him *h = lk->hims;
    lk->hims = h->next;
    him_free(h);
  }
  while (lk->deferred) {
    lk_msg *m = lk->deferred;
    lk->deferred = m->next;
    cn_term_free(m->t);
    cn_free(m);
  }
  session_clear(lk);
  cn_free(lk->known);
  gl_state *g = lk->g;
  g->lk = NULL;
  cn_free(lk);
  gl_unref(g);
}

int gl_locker_start(gl_state *g) {
  gl_locker *lk = cn_calloc(1, sizeof *lk);
  if (!lk) return CN_ENOMEM;
  lk->g = g;
  lk->n = g->n;
  lk->dtail = &lk->deferred;
  if (gethostname(lk->host, sizeof lk->host - 1)) lk->host[0] = 0;
  lk->timer = cn_calloc(1, sizeof *lk->timer);
  if (!lk->timer) {
    cn_free(lk);
    return CN_ENOMEM;
  }
  int rc = cn_spawn(g->n, locker_handle, lk, &(cn_proc_opts){.terminate = locker_end}, &g->locker);
  if (rc) {
    cn_free(lk->timer);
    cn_free(lk);
    return rc;
  }
  uv_timer_init(cn_node_loop(g->n), &lk->timer->t);
  uv_unref((uv_handle_t *)&lk->timer->t);
  lk->timer->n = g->n;
  lk->timer->pid = g->locker;
  g->lk = lk;
  g->refs++;
  return 0;
}

/* ---- The registrar: register/unregister under {global, Registrar} on all known nodes (trans_all_known) ---------- */

typedef struct reg_req {
  struct reg_req *next;
  cn_term *from; /* the caller's gen_server From */
  cn_term *op;   /* {register, Name, Pid} | {unregister, Name} */
} reg_req;

struct gl_registrar {
  gl_state *g;
  cn_node *n;
  reg_req *head, **tail;
  bool busy;
  int times;
  cn_term *id;
  const cn_atom **known, **nodes;
  size_t nknown, nnodes;
  const cn_atom *boss;
  cn_term *result;
  cn_term *method; /* fun global:random_exit_name/3 */
};

static void reg_next(gl_registrar *r, cn_proc *self);
static void reg_try(gl_registrar *r, cn_proc *self);

static void reg_clear(gl_registrar *r) {
  cn_free(r->known);
  cn_free(r->nodes);
  r->known = r->nodes = NULL;
  cn_term_free(r->result);
  r->result = NULL;
}

static void reg_replied(cn_proc *self, int status, void *ctx) {
  gl_registrar *r = ctx;
  if (status == CN_ECLOSED) return;
  reg_req *q = r->head;
  if (q) {
    r->head = q->next;
    if (!r->head) r->tail = &r->head;
    if (r->result) cn_gen_reply(self, q->from, r->result);
    cn_term_free(q->from);
    cn_term_free(q->op);
    cn_free(q);
  }
  reg_clear(r);
  r->busy = false;
  reg_next(r, self);
}

static void reg_op_done(cn_proc *self, mc *m, void *ctx) {
  gl_registrar *r = ctx;
  if (m->closed) return;
  delete_global_lock(self, r->id, r->nodes, r->nnodes, reg_replied, r);
}

/* The registrar's Fun(Nodes), run with the lock held on Nodes. */
static void reg_do(gl_registrar *r, cn_proc *self) {
  cn_node *n = r->n;
  const cn_term *q = r->head->op, *kind = el(q, 3, 0) ? el(q, 3, 0) : el(q, 2, 0);
  cn_term *req = NULL;
  if (kind && cn_is_atom(kind, "register")) {
    const cn_term *name = el(q, 3, 1), *pid = el(q, 3, 2);
    cn_pid cur;
    if (gl_where(r->g, name, &cur) || gl_pid_has_name(r->g, pid->v.pid)) {
      if (!gl_where(r->g, name, &cur))
        cn_log(n, CN_LOG_ERROR, "global: <%s.%u.%u> registered under several names", pid->v.pid.node->name,
               pid->v.pid.id, pid->v.pid.serial);
      r->result = A(n, "no");
      delete_global_lock(self, r->id, r->nodes, r->nnodes, reg_replied, r);
      return;
    }
    r->result = A(n, "yes");
    req = cn_mk_tuple(4, A(n, "register"), cn_term_copy(name), cn_term_copy(pid), cn_term_copy(r->method));
  } else {
    r->result = A(n, "ok");
    req = cn_mk_tuple(2, A(n, "unregister"), cn_term_copy(el(q, 2, 1)));
  }
  if (!req || mc_start(self, r->nodes, r->nnodes, req, reg_op_done, r)) {
    cn_term_free(r->result);
    r->result = A(n, "error");
    delete_global_lock(self, r->id, r->nodes, r->nnodes, reg_replied, r);
  }
  cn_term_free(req);
}

static void reg_slept(cn_proc *self, int status, void *ctx) {
  gl_registrar *r = ctx;
  if (status == CN_ECLOSED) return;
  reg_try(r, self);
}

static void reg_retry(gl_registrar *r, cn_proc *self) {
  reg_clear(r);
  sleep_ms_in(self, random_sleep_ms(r->g, r->times++), reg_slept, r);
}

static void reg_boss_released(cn_proc *self, int status, void *ctx) {
  gl_registrar *r = ctx;
  if (status == CN_ECLOSED) return;
  reg_retry(r, self);
}

static void reg_all(cn_proc *self, int status, void *ctx) {
  gl_registrar *r = ctx;
  if (status == CN_ECLOSED) return;
  bool grown = false;
  if (!status) {
    size_t k;
    const cn_atom **now = gl_known_nodes(r->g, &k);
    for (size_t i = 0; now && i < k; i++) grown |= !has_node(r->known, r->nknown, now[i]);
    cn_free(now);
    if (!grown) {
      reg_do(r, self);
      return;
    }
  }
  /* Not every known node could be locked, or new ones came: release the boss and try again later. */
  lock_nodes(self, true, r->id, &r->boss, 1, reg_boss_released, r);
}

static void reg_boss(cn_proc *self, int status, void *ctx) {
  gl_registrar *r = ctx;
  if (status == CN_ECLOSED) return;
  if (status) {
    reg_retry(r, self);
    return;
  }
  lock_nodes(self, false, r->id, r->nodes, r->nnodes, reg_all, r);
}

/* set_lock_known/2: the boss first, then [node() | Known]. */
static void reg_try(gl_registrar *r, cn_proc *self) {
  reg_clear(r);
  r->known = gl_known_nodes(r->g, &r->nknown);
  r->nodes = cn_malloc((r->nknown + 1) * sizeof *r->nodes);
  if (!r->known || !r->nodes) {
    reg_retry(r, self);
    return;
  }
  r->nodes[0] = cn_node_name(r->n);
  memcpy(r->nodes + 1, r->known, r->nknown * sizeof *r->nodes);
  r->nnodes = r->nknown + 1;
  r->boss = max_node(r->nodes, r->nnodes);
  lock_nodes(self, false, r->id, &r->boss, 1, reg_boss, r);
}

static void reg_next(gl_registrar *r, cn_proc *self) {
  if (r->busy || !r->head) return;
  r->busy = true;
  r->times = 0;
  /* {global, self()}; made here so the pid carries the node's creation, known only once it started. */
  cn_term_free(r->id);
  r->id = cn_mk_tuple(2, A(r->n, "global"), cn_mk_pid(cn_self(self)));
  reg_try(r, self);
}

void gl_registrar_request(gl_state *g, const cn_term *from, const cn_term *op) {
  gl_registrar *r = g->reg;
  const cn_term *kind = el(op, 3, 0) ? el(op, 3, 0) : el(op, 2, 0);
  bool reg = kind && cn_is_atom(kind, "register") && is_pid_t(el(op, 3, 2));
  bool unreg = kind && cn_is_atom(kind, "unregister") && el(op, 2, 1);
  if (!r || (!reg && !unreg)) return;
  reg_req *q = cn_calloc(1, sizeof *q);
  if (!q || !(q->from = cn_term_copy(from)) || !(q->op = cn_term_copy(op))) {
    if (q) cn_term_free(q->from);
    cn_free(q);
    return;
  }
  *r->tail = q;
  r->tail = &q->next;
  cn_term *kick = cn_mk_atomc(g->n, "$cn_next");
  if (kick) cn_send(g->n, NULL, g->registrar, kick);
  cn_term_free(kick);
}

static void registrar_handle(cn_proc *self, const cn_term *msg, void *state) {
  (void)msg;
  reg_next(state, self);
}

static void registrar_end(cn_proc *self, const cn_term *reason, void *state) {
  (void)self;
  (void)reason;
  gl_registrar *r = state;
  while (r->head) {
    reg_req *q = r->head;
    r->head = q->next;
    cn_term_free(q->from);
    cn_term_free(q->op);
    cn_free(q);
  }
  reg_clear(r);
  cn_term_free(r->id);
  cn_term_free(r->method);
  gl_state *g = r->g;
  g->reg = NULL;
  cn_free(r);
  gl_unref(g);
}

int gl_registrar_start(gl_state *g) {
  gl_registrar *r = cn_calloc(1, sizeof *r);
  if (!r) return CN_ENOMEM;
  r->g = g;
  r->n = g->n;
  r->tail = &r->head;
  /* The resolve method C registrations carry: fun global:random_exit_name/3 (EXPORT_EXT), so a BEAM node
   * resolving a clash applies OTP's default. */
  static const uint8_t fun_ext[] = {131, 113, 119, 6,   'g', 'l', 'o', 'b', 'a', 'l', 119, 16,  'r', 'a', 'n',
                                    'd', 'o', 'm', '_', 'e', 'x', 'i', 't', '_', 'n', 'a', 'm', 'e', 97,  3};
  int rc = cn_term_from_binary(cn_node_atoms(g->n), fun_ext, sizeof fun_ext, NULL, &r->method);
  if (rc) {
    cn_free(r);
    return rc;
  }
  if ((rc = cn_spawn(g->n, registrar_handle, r, &(cn_proc_opts){.terminate = registrar_end}, &g->registrar))) {
    cn_term_free(r->method);
    cn_free(r);
    return rc;
  }
  g->reg = r;
  g->refs++;
  return 0;
}

/* ---- C API ---------------------------------------------------------------------------------------------------- */

typedef struct api_op {
  cn_node *n;
  cn_global_fn cb;
  void *ctx;
  cn_term *id;
  const cn_atom **nodes;
  size_t count;
  int retries; /* < 0: infinity */
  int times;
  cn_global_trans_fn fn;
  void *fn_ctx;
  bool starting;  /* still inside the API call: a result now is delivered after a short hop */
  bool has_early; /* such a result came: early holds its status (any status, 0 and CN_EINVAL included) */
  int early;
} api_op;

static void api_free(api_op *o) {
  cn_term_free(o->id);
  cn_free(o->nodes);
  cn_free(o);
}

static void api_hop(cn_proc *self, int status, void *ctx) {
  api_op *o = ctx;
  int st = status == CN_ECLOSED ? CN_ECLOSED : o->early;
  cn_global_fn cb = o->cb;
  void *cctx = o->ctx;
  api_free(o);
  cb(self, st, cctx);
}

static void api_finish(cn_proc *self, api_op *o, int status) {
  if (o->starting) {
    /* delivered by api_started: the callback never runs inside the starting call */
    o->has_early = true;
    o->early = status;
    return;
  }
  cn_global_fn cb = o->cb;
  void *cctx = o->ctx;
  api_free(o);
  cb(self, status, cctx);
}

static api_op *api_new(cn_proc *self, const cn_term *id, const cn_atom *const *nodes, size_t count, cn_global_fn cb,
                       void *ctx, int *rc) {
  cn_node *n = cn_proc_node(self);
  *rc = 0;
  if (!cb || (id && !el(id, 2, 0)) || (count && !nodes)) {
    *rc = CN_EINVAL;
    return NULL;
  }
  if (!gl_of(n)) {
    *rc = CN_ESTATE;
    return NULL;
  }
  api_op *o = cn_calloc(1, sizeof *o);
  size_t k = nodes ? count : cn_nodes(n, CN_NODES_VISIBLE, NULL, 0) + 1;
  if (!o || !(o->nodes = cn_malloc((k ? k : 1) * sizeof *o->nodes)) || (id && !(o->id = cn_term_copy(id)))) {
    if (o) api_free(o);
    *rc = CN_ENOMEM;
    return NULL;
  }
  if (nodes) {
    memcpy(o->nodes, nodes, k * sizeof *o->nodes);
    o->count = k;
  } else {
    /* [node() | nodes()], as set_lock/1 and trans/2 */
    o->nodes[0] = cn_node_name(n);
    o->count = 1 + cn_nodes(n, CN_NODES_VISIBLE, o->nodes + 1, k - 1);
    if (o->count > k) o->count = k;
  }
  o->n = n;
  o->cb = cb;
  o->ctx = ctx;
  return o;
}

static void api_try(cn_proc *self, api_op *o);

/* The chain was started: a result it reached at once goes out after a short hop through the loop. */
static void api_started(cn_proc *self, api_op *o) {
  o->starting = false;
  if (o->has_early) sleep_ms_in(self, 1, api_hop, o);
}

static void api_released(cn_proc *self, int status, void *ctx) {
  api_finish(self, ctx, status == CN_ECLOSED ? CN_ECLOSED : 0);
}

static void api_slept(cn_proc *self, int status, void *ctx) {
  api_op *o = ctx;
  if (status) {
    api_finish(self, o, status);
    return;
  }
  api_try(self, o);
}

static void api_locked(cn_proc *self, int status, void *ctx) {
  api_op *o = ctx;
  if (status == CN_ECLOSED || status == CN_ENOMEM) {
    api_finish(self, o, status);
    return;
  }
  if (status && status != CN_EBUSY) {
    api_finish(self, o, status);
    return;
  }
  if (!status) {
    if (!o->fn) {
      api_finish(self, o, 0);
      return;
    }
    o->fn(self, o->fn_ctx);
    lock_nodes(self, true, o->id, o->nodes, o->count, api_released, o);
    return;
  }
  if (o->retries == 0) {
    api_finish(self, o, CN_EBUSY);
    return;
  }
  if (o->retries > 0) o->retries--;
  sleep_ms_in(self, random_sleep_ms(gl_of(o->n), o->times++), api_slept, o);
}

static void api_try(cn_proc *self, api_op *o) { lock_nodes(self, false, o->id, o->nodes, o->count, api_locked, o); }

int cn_global_set_lock(cn_proc *self, const cn_term *id, const cn_atom *const *nodes, size_t count, int retries,
                       cn_global_fn cb, void *ctx) {
  int rc;
  api_op *o = self && id ? api_new(self, id, nodes, count, cb, ctx, &rc) : NULL;
  if (!o) return self && id ? rc : CN_EINVAL;
  o->retries = retries;
  o->times = 1;
  o->starting = true;
  api_try(self, o);
  api_started(self, o);
  return 0;
}

int cn_global_trans(cn_proc *self, const cn_term *id, const cn_atom *const *nodes, size_t count, int retries,
                    cn_global_trans_fn fn, cn_global_fn cb, void *ctx) {
  int rc;
  if (!fn) return CN_EINVAL;
  api_op *o = self && id ? api_new(self, id, nodes, count, cb, ctx, &rc) : NULL;
  if (!o) return self && id ? rc : CN_EINVAL;
  o->retries = retries;
  o->times = 1;
  o->fn = fn;
  o->fn_ctx = ctx;
  o->starting = true;
  api_try(self, o);
  api_started(self, o);
  return 0;
}

int cn_global_del_lock(cn_proc *self, const cn_term *id, const cn_atom *const *nodes, size_t count, cn_global_fn cb,
                       void *ctx) {
  int rc;
  api_op *o = self && id ? api_new(self, id, nodes, count, cb, ctx, &rc) : NULL;
  if (!o) return self && id ? rc : CN_EINVAL;
  o->starting = true;
  lock_nodes(self, true, o->id, o->nodes, o->count, api_released, o);
  api_started(self, o);
  return 0;
}

/* Name requests are calls to the local global_name_server, which hands them to the registrar. */
static void api_reply(cn_proc *self, int status, const cn_term *reply, void *ctx) {
  api_op *o = ctx;
  int st = status ? status : cn_is_atom(reply, "no") ? CN_EEXIST : cn_is_atom(reply, "error") ? CN_ENOMEM : 0;
  cn_global_fn cb = o->cb;
  void *cctx = o->ctx;
  api_free(o);
  cb(self, st, cctx);
}

static int api_call(cn_proc *self, cn_term *req, cn_global_fn cb, void *ctx) {
  int rc;
  api_op *o = req ? api_new(self, NULL, NULL, 0, cb, ctx, &rc) : NULL;
  if (!o) {
    cn_term_free(req);
    return req ? rc : CN_ENOMEM;
  }
  cn_term server = tv_atom(cn_intern(cn_proc_node(self), SERVER_NAME));
  rc = cn_call(self, &server, req, 0, api_reply, o);
  cn_term_free(req);
  if (rc) api_free(o);
  return rc;
}

int cn_global_register_name(cn_proc *self, const cn_term *name, cn_pid pid, cn_global_fn cb, void *ctx) {
  if (!self || !name || !pid.node) return CN_EINVAL;
  cn_node *n = cn_proc_node(self);
  cn_term *op = cn_mk_tuple(3, A(n, "register"), cn_term_copy(name), cn_mk_pid(pid));
  return api_call(self, cn_mk_tuple(2, A(n, "$cn_registrar"), op), cb, ctx);
}

int cn_global_unregister_name(cn_proc *self, const cn_term *name, cn_global_fn cb, void *ctx) {
  if (!self || !name) return CN_EINVAL;
  cn_node *n = cn_proc_node(self);
  return api_call(self, cn_mk_tuple(2, A(n, "$cn_registrar"), cn_mk_tuple(2, A(n, "unregister"), cn_term_copy(name))),
                  cb, ctx);
}

int cn_global_sync(cn_proc *self, cn_global_fn cb, void *ctx) {
  if (!self) return CN_EINVAL;
  cn_node *n = cn_proc_node(self);
  size_t k = cn_nodes(n, CN_NODES_VISIBLE, NULL, 0);
  const cn_atom **v = cn_malloc((k ? k : 1) * sizeof *v);
  if (!v) return CN_ENOMEM;
  k = cn_nodes(n, CN_NODES_VISIBLE, v, k);
  cn_term *req = cn_mk_tuple(2, A(n, "sync"), node_list(v, k));
  cn_free(v);
  return api_call(self, req, cb, ctx);
}

/* Blocking forms: a call from a short-lived process (cn_call_sync) to the local global_name_server. */
static int sync_name_call(cn_node *n, cn_term *req) {
  cn_term *server = cn_mk_atomc(n, SERVER_NAME), *reply = NULL;
  int rc = req && server ? cn_call_sync(n, server, req, 0, &reply) : CN_ENOMEM;
  if (rc == CN_EEXIT) rc = CN_ESTATE; /* no global_name_server: a hidden node */
  if (!rc && cn_is_atom(reply, "no")) rc = CN_EEXIST;
  cn_term_free(reply);
  cn_term_free(server);
  cn_term_free(req);
  return rc;
}

int cn_global_register_name_sync(cn_node *n, const cn_term *name, cn_pid pid) {
  if (!n || !name || !pid.node) return CN_EINVAL;
  return sync_name_call(
      n, cn_mk_tuple(2, A(n, "$cn_registrar"), cn_mk_tuple(3, A(n, "register"), cn_term_copy(name), cn_mk_pid(pid))));
}

int cn_global_unregister_name_sync(cn_node *n, const cn_term *name) {
  if (!n || !name) return CN_EINVAL;
  cn_term *op = cn_mk_tuple(2, A(n, "unregister"), cn_term_copy(name));
  return sync_name_call(n, cn_mk_tuple(2, A(n, "$cn_registrar"), op));
}

int cn_global_whereis_name_sync(cn_node *n, const cn_term *name, cn_pid *out) {
  if (!n || !name || !out) return CN_EINVAL;
  cn_term *server = cn_mk_atomc(n, SERVER_NAME), *reply = NULL;
  cn_term *req = cn_mk_tuple(2, A(n, "$cn_whereis"), cn_term_copy(name));
  int rc = req && server ? cn_call_sync(n, server, req, 0, &reply) : CN_ENOMEM;
  if (rc == CN_EEXIT) rc = CN_ESTATE;
  if (!rc && reply && reply->type == CN_PID)
    *out = reply->v.pid;
  else if (!rc)
    rc = CN_ENOTFOUND;
  cn_term_free(reply);
  cn_term_free(server);
  cn_term_free(req);
  return rc;
}
