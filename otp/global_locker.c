/* global_locker.c: global's locker (OTP's the_locker): takes the partition-wide lock {global, [LockerA, LockerB]}
 * before two partitions exchange names, with the lock primitives of global_lock.c. */
#include <string.h>
#include <unistd.h>

#include "global_lock_int.h"

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
  bool spont;           /* answering the peer's lock_set (true) or started by our timer */
  const cn_atom *snode; /* the peer */
  cn_pid slocker;       /* its locker */
  int svsn;
  cn_term *my_tag, *his_tag;
  cn_term *lock_id;
  const cn_atom **held; /* the nodes to unlock when the session ends (Known1 / Known2) */
  size_t nheld;
  const cn_atom *first; /* lock_nodes_safely: the boss locked first */
  const cn_atom **second;
  size_t nsecond;
};

static void lk_settle(gl_locker *lk, cn_proc *self);

static void known_add(gl_locker *lk, const cn_atom *a) {
  if (gl_has_node(lk->known, lk->nknown, a)) return;
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
    if ((*x)->node == node && cn_term_exact_eq((*x)->my_tag, tag)) {
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
  cn_term a = cn_tv_pid(cn_self(self)), b = cn_tv_pid(his);
  bool swap = cn_term_cmp(&a, &b) > 0;
  return cn_mk_tuple(2, A(lk->n, "global"),
                     cn_mk_list(2, cn_mk_pid(swap ? his : cn_self(self)), cn_mk_pid(swap ? cn_self(self) : his)));
}

static void send_lock_set(gl_locker *lk, cn_proc *self, bool set, cn_pid his_locker, int vsn, const cn_term *his_tag) {
  cn_node *n = lk->n;
  cn_term *known = gl_node_list(lk->known, lk->nknown);
  cn_term *me = cn_mk_pid(cn_self(self)), *b = A(n, set ? "true" : "false");
  cn_term *msg = vsn < GL_VSN
                     ? cn_mk_tuple(4, A(n, "lock_set"), me, b, known)
                     : cn_mk_tuple(5, A(n, "lock_set"), me, b, known, his_tag ? cn_term_copy(his_tag) : cn_mk_int(0));
  if (vsn < 6) {
    if (msg) cn_send(n, self, his_locker, msg);
    cn_term_free(msg);
  } else {
    gl_cast(lk->g, self, his_locker.node, msg);
  }
}

/* The {cancel, Node, Tag, Fun} fun: the new_nodes casts of a finished exchange, made before the lock goes. */
static void call_fun(gl_locker *lk, cn_proc *self, const cn_term *fun) {
  const cn_term *tag = gl_el(fun, 2, 0), *list = gl_el(fun, 2, 1);
  if (!tag || !cn_is_atom(tag, "$cn_new_nodes") || list->type != CN_LIST) return;
  for (uint32_t i = 0; i < list->v.list.len; i++) {
    const cn_term *node = gl_el(&list->v.list.e[i], 2, 0), *msg = gl_el(&list->v.list.e[i], 2, 1);
    if (node && node->type == CN_ATOM) gl_cast(lk->g, self, node->v.atom, cn_term_copy(msg));
  }
}

/* Absorbs queued add_to_known / remove_from_known messages (OTP's update_locker_known/1). */
static bool known_msg(gl_locker *lk, const cn_term *m) {
  const cn_term *op = gl_el(m, 2, 0), *arg = gl_el(m, 2, 1);
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
  gl_delete_global_lock(self, lk->lock_id, lk->held, lk->nheld, lk_unlocked, lk);
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
  if (with_peer && !gl_has_node(lk->known, lk->nknown, lk->snode)) lk->held[lk->nheld++] = lk->snode;
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
      gl_lock_nodes(self, true, lk->lock_id, so_far, lk->nsecond + 1, lns_fail_done, lk);
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
    gl_lock_nodes(self, true, lk->lock_id, &lk->first, 1, lns_fail_done, lk);
    return;
  }
  const cn_atom **third = cn_malloc((lk->nknown ? lk->nknown : 1) * sizeof *third);
  size_t k = 0;
  for (size_t i = 0; third && i < lk->nknown; i++)
    if (lk->known[i] != lk->first) third[k++] = lk->known[i];
  if (!third) {
    gl_lock_nodes(self, true, lk->lock_id, &lk->first, 1, lns_fail_done, lk);
    return;
  }
  gl_lock_nodes(self, false, lk->lock_id, third, k, lns_3, lk);
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
    gl_lock_nodes(self, true, lk->lock_id, &lk->first, 1, lns_fail_done, lk);
    return;
  }
  const cn_atom *me = cn_node_name(lk->n);
  if (me != lk->first) lk->second[lk->nsecond++] = me;
  if (!lk->spont && lk->snode != lk->first) lk->second[lk->nsecond++] = lk->snode;
  gl_lock_nodes(self, false, lk->lock_id, lk->second, lk->nsecond, lns_2, lk);
}

/* lock_nodes_safely/3: the boss first, then this node (and the peer when we started), then the known. */
static void lns_start(gl_locker *lk, cn_proc *self) {
  lk->mode = LK_BUSY;
  lk->first = the_boss(lk);
  if (lk->first != cn_node_name(lk->n) && !gl_can_set_lock(lk->g, lk->lock_id)) {
    lns_done(lk, self, false);
    return;
  }
  gl_lock_nodes(self, false, lk->lock_id, &lk->first, 1, lns_1, lk);
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
    if ((*x)->local == any_local && gl_has_node(lk->known, lk->nknown, (*x)->node)) {
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
  if (!op || !cn_is_atom(op, "lock_set") || m->v.tuple.arity > 5 || !gl_is_pid(&m->v.tuple.e[1])) return false;
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
  if (op && cn_is_atom(op, "his_the_locker") && m->v.tuple.arity == 5 && gl_is_pid(&m->v.tuple.e[1])) {
    const cn_term *v = gl_el(&m->v.tuple.e[2], 2, 0);
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
    if (tag && !cn_term_exact_eq(tag, h->my_tag)) return true;
    session_start(lk, self, h, pid->v.pid, true);
    return true;
  }
  if (op && cn_is_atom(op, "$cn_tick") && m->v.tuple.arity == 2) {
    const cn_term *gen = &m->v.tuple.e[1];
    if (gen->type != CN_INT || !lk->timer || gen->v.i != lk->timer->gen) return true;
    cn_term gid = cn_tv_atom(cn_intern(n, "global"));
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
    if (tag && !cn_term_exact_eq(tag, lk->my_tag)) return true; /* an old session's: consumed */
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
      cn_term_exact_eq(&m->v.tuple.e[2], lk->my_tag)) {
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
      !cn_term_exact_eq(&m->v.tuple.e[2], lk->my_tag))
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
  if (lk->mode == LK_IDLE) lk_arm(lk);
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
