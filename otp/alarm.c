/* alarm.c: the node's alarms (cn_alarm.h) and their mirror into SASL's alarm_handler on named BEAM nodes: a process
 * per node (unregistered) sends each node's queue of set_alarm/clear_alarm rpc calls one at a time, re-sends every
 * alarm after a nodeup, and retries the connection of a mirror node that went away. */
#include <string.h>

#include "cn_alarm.h"

enum { RPC_TIMEOUT_MS = 5000, RETRY_FIRST_MS = 1000, RETRY_MAX_MS = 30000, HOLD_FIRST_MS = 250, HOLD_MAX_MS = 5000 };

typedef struct alarm_ent {
  struct alarm_ent *next;
  cn_term *id, *desc;
} alarm_ent;

typedef struct terms {
  cn_term **v;
  size_t n, cap;
} terms;

typedef struct mirror {
  struct mirror *next;
  const cn_atom *node;
  bool up;                /* nodeup seen (by the process) and not yet a nodedown */
  bool busy;              /* an rpc in flight */
  unsigned gen, sent_gen; /* nodedowns seen; gen when the call in flight was sent */
  bool waiting;           /* alarm_handler was not there (SASL starting): the call is tried again later */
  unsigned hold_ms;       /* how long it waits then; 0 after a call that went through */
  terms q;                /* {Fun, Args} calls to make, in order */
  terms cleared;          /* ids cleared while the node was away: cleared there after its nodeup */
} mirror;

typedef struct alarm_tab {
  cn_node *n;
  alarm_ent *alarms; /* newest first */
  mirror *mirrors;
  cn_pid proc;
  bool proc_up, retry_armed;
  unsigned retry_ms;
  void (*done)(void *ctx); /* cn_alarm_clear_all's, until every queue has drained */
  void *done_ctx;
} alarm_tab;

static const char alarm_key;

static int push(terms *t, cn_term *x) {
  if (!x) return CN_ENOMEM;
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 8;
    cn_term **v = cn_realloc(t->v, cap * sizeof *v);
    if (!v) {
      cn_term_free(x);
      return CN_ENOMEM;
    }
    t->v = v;
    t->cap = cap;
  }
  t->v[t->n++] = x;
  return 0;
}

static void terms_clear(terms *t) {
  for (size_t i = 0; i < t->n; i++) cn_term_free(t->v[i]);
  t->n = 0;
}

static void tab_release(void *data) {
  alarm_tab *t = data;
  for (alarm_ent *a = t->alarms, *next; a; a = next) {
    next = a->next;
    cn_term_free(a->id);
    cn_term_free(a->desc);
    cn_free(a);
  }
  for (mirror *m = t->mirrors, *next; m; m = next) {
    next = m->next;
    terms_clear(&m->q);
    terms_clear(&m->cleared);
    cn_free(m->q.v);
    cn_free(m->cleared.v);
    cn_free(m);
  }
  cn_free(t);
}

static void poke(alarm_tab *t, const char *what, unsigned after_ms) {
  cn_term *m = cn_mk_atomc(t->n, what);
  if (m) (void)(after_ms ? cn_send_after(t->n, after_ms, t->proc, m, NULL) : cn_send(t->n, NULL, t->proc, m));
  cn_term_free(m);
}

/* ---- The mirror's calls ------------------------------------------------------------------------------------------ */

/* {set_alarm, [{Id, Desc}]} or {clear_alarm, [Id]}: the call to make on a mirror node. */
static cn_term *call_of(cn_node *n, const cn_term *id, const cn_term *desc) {
  cn_term *arg = desc ? cn_mk_tuple(2, cn_term_copy(id), cn_term_copy(desc)) : cn_term_copy(id);
  return cn_mk_tuple(2, cn_mk_atomc(n, desc ? "set_alarm" : "clear_alarm"), cn_mk_list(1, arg));
}

/* A change for every mirror: queued where the node is up, remembered (clears) where it is not. */
static void mirror_all(alarm_tab *t, const cn_term *id, const cn_term *desc) {
  bool queued = false;
  for (mirror *m = t->mirrors; m; m = m->next) {
    int rc = m->up ? push(&m->q, call_of(t->n, id, desc)) : desc ? 0 : push(&m->cleared, cn_term_copy(id));
    queued |= m->up;
    if (rc) cn_log(t->n, CN_LOG_WARN, "alarm mirror %s: %s", m->node->name, cn_strerror(rc));
  }
  if (queued) poke(t, "kick", 0);
}

/* After a nodeup: the clears it missed, then every alarm (a clear first, so a node that kept it holds one). */
static void resync(alarm_tab *t, mirror *m) {
  terms_clear(&m->q);
  for (size_t i = 0; i < m->cleared.n; i++) push(&m->q, call_of(t->n, m->cleared.v[i], NULL));
  terms_clear(&m->cleared);
  size_t k = 0;
  for (alarm_ent *a = t->alarms; a; a = a->next) k++;
  for (size_t j = k; j > 0; j--) { /* oldest first, as they were set */
    alarm_ent *a = t->alarms;
    for (size_t i = 1; i < j; i++) a = a->next;
    push(&m->q, call_of(t->n, a->id, NULL));
    push(&m->q, call_of(t->n, a->id, a->desc));
  }
}

static void check_done(alarm_tab *t) {
  if (!t->done) return;
  for (mirror *m = t->mirrors; m; m = m->next)
    if (m->up && (m->busy || m->q.n)) return;
  void (*done)(void *) = t->done;
  t->done = NULL;
  done(t->done_ctx);
}

static void pump(cn_proc *self, alarm_tab *t, mirror *m);

static void rpc_done(cn_proc *self, int status, const cn_term *reply, void *ctx) {
  mirror *m = ctx;
  alarm_tab *t = cn_node_attached(cn_proc_node(self), &alarm_key);
  m->busy = false;
  if (status == CN_ECLOSED) return;
  cn_term *call = m->q.n ? m->q.v[0] : NULL;
  bool bad = status || cn_is_atom(cn_tuple_elem(reply, 2, 0), "badrpc");
  /* {badrpc, {'EXIT', _}}: no alarm_handler there (yet: a node that just came up connects before its SASL starts) */
  if (bad && !status && m->up && m->gen == m->sent_gen && !t->done &&
      cn_is_atom(cn_tuple_elem(cn_tuple_elem(reply, 2, 1), 2, 0), "EXIT")) {
    if (!m->hold_ms)
      cn_log(t->n, CN_LOG_WARN, "alarm mirror %s: no alarm_handler there (is SASL started?): trying again",
             m->node->name);
    m->hold_ms = !m->hold_ms ? HOLD_FIRST_MS : m->hold_ms * 2 > HOLD_MAX_MS ? HOLD_MAX_MS : m->hold_ms * 2;
    m->waiting = true;
    poke(t, "unhold", m->hold_ms);
    return;
  }
  if (!bad) m->hold_ms = 0;
  if (bad) {
    cn_buf b = {0};
    if (reply) cn_term_print(reply, &b);
    if (status) cn_log(t->n, CN_LOG_WARN, "alarm mirror %s: %s", m->node->name, cn_strerror(status));
    else cn_log(t->n, CN_LOG_WARN, "alarm mirror %s: %.*s", m->node->name, (int)b.len, (const char *)b.data);
    cn_buf_free(&b);
  }
  if (call && m->gen == m->sent_gen) { /* else a nodedown emptied the queue since (its clears kept in cleared) */
    cn_term_free(call);
    memmove(m->q.v, m->q.v + 1, --m->q.n * sizeof *m->q.v);
  }
  pump(self, t, m);
  check_done(t);
}

static void pump(cn_proc *self, alarm_tab *t, mirror *m) {
  if (!m->up || m->busy || m->waiting || !m->q.n) return;
  const cn_term *call = m->q.v[0];
  int rc = cn_rpc(self, m->node, "alarm_handler", cn_tuple_elem(call, 2, 0)->v.atom->name, cn_tuple_elem(call, 2, 1),
                  RPC_TIMEOUT_MS, rpc_done, m);
  if (!rc) {
    m->busy = true;
    m->sent_gen = m->gen;
    return;
  }
  cn_log(t->n, CN_LOG_WARN, "alarm mirror %s: %s", m->node->name, cn_strerror(rc));
  cn_term_free(m->q.v[0]);
  memmove(m->q.v, m->q.v + 1, --m->q.n * sizeof *m->q.v);
  poke(t, "kick", 0);
}

static mirror *mirror_of(alarm_tab *t, const cn_term *node) {
  for (mirror *m = t->mirrors; m; m = m->next)
    if (node && node->type == CN_ATOM && node->v.atom == m->node) return m;
  return NULL;
}

static void proc_msg(cn_proc *self, const cn_term *msg, void *state) {
  alarm_tab *t = state;
  cn_node *n = t->n;
  const cn_term *ev = cn_tuple_elem(msg, 2, 0);
  mirror *m = mirror_of(t, cn_tuple_elem(msg, 2, 1));
  if (m && cn_is_atom(ev, "nodeup") && !m->up) {
    m->up = true;
    t->retry_ms = RETRY_FIRST_MS;
    resync(t, m);
  } else if (m && cn_is_atom(ev, "nodedown")) {
    m->up = false;
    m->waiting = false;
    m->gen++;
    for (size_t i = 0; i < m->q.n; i++) { /* clears not yet made there wait for its return */
      const cn_term *c = m->q.v[i];
      if (cn_is_atom(cn_tuple_elem(c, 2, 0), "clear_alarm"))
        push(&m->cleared, cn_term_copy(&cn_tuple_elem(c, 2, 1)->v.list.e[0]));
    }
    terms_clear(&m->q);
    if (!t->retry_armed) {
      t->retry_armed = true;
      poke(t, "retry", t->retry_ms);
    }
  } else if (cn_is_atom(msg, "unhold")) {
    for (mirror *x = t->mirrors; x; x = x->next) x->waiting = false;
  } else if (cn_is_atom(msg, "retry")) {
    t->retry_armed = false;
    bool away = false;
    for (mirror *x = t->mirrors; x; x = x->next) {
      if (x->up) continue;
      if (cn_node_is_up(n, x->node, CN_NODES_ALL)) { /* up, its nodeup not seen here */
        x->up = true;
        resync(t, x);
        continue;
      }
      away = true;
      cn_node_connect(n, x->node);
    }
    if (away) {
      t->retry_ms = t->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : t->retry_ms * 2;
      t->retry_armed = true;
      poke(t, "retry", t->retry_ms);
    }
  }
  for (mirror *x = t->mirrors; x; x = x->next) pump(self, t, x);
  check_done(t);
}

static void proc_end(cn_proc *self, const cn_term *reason, void *state) {
  (void)self;
  (void)reason;
  alarm_tab *t = state;
  t->proc_up = false;
  for (mirror *m = t->mirrors; m; m = m->next) m->busy = false;
}

static void on_nodes(cn_node *n, const cn_atom *node, bool up, const char *reason, void *ctx) {
  (void)reason;
  alarm_tab *t = ctx;
  cn_term *m = t->proc_up ? cn_mk_tuple(2, cn_mk_atomc(n, up ? "nodeup" : "nodedown"), cn_mk_atom(node)) : NULL;
  if (m) cn_send(n, NULL, t->proc, m);
  cn_term_free(m);
}

static alarm_tab *tab_get(cn_node *n, bool create) {
  alarm_tab *t = n ? cn_node_attached(n, &alarm_key) : NULL;
  if (t || !create || !n) return t;
  if (!(t = cn_calloc(1, sizeof *t))) return NULL;
  t->n = n;
  t->retry_ms = RETRY_FIRST_MS;
  if (cn_node_attach(n, &alarm_key, t, tab_release)) {
    cn_free(t);
    return NULL;
  }
  return t;
}

/* The mirror process, started with the first mirror node. */
static int proc_start(alarm_tab *t) {
  if (t->proc_up) return 0;
  cn_proc_opts o = {.terminate = proc_end};
  int rc = cn_spawn(t->n, proc_msg, t, &o, &t->proc);
  if (!rc && (rc = cn_node_monitor_nodes(t->n, on_nodes, t))) cn_exit(t->n, NULL, t->proc, NULL);
  t->proc_up = !rc;
  return rc;
}

/* ---- The API ----------------------------------------------------------------------------------------------------- */

static alarm_ent **find(alarm_tab *t, const cn_term *id) {
  for (alarm_ent **a = &t->alarms; *a; a = &(*a)->next)
    if (cn_term_exact_eq((*a)->id, id)) return a;
  return NULL;
}

int cn_alarm_set(cn_node *n, const cn_term *id, const cn_term *desc) {
  if (!id || !desc) return CN_EINVAL;
  alarm_tab *t = tab_get(n, true);
  if (!t) return CN_ENOMEM;
  alarm_ent **at = find(t, id);
  if (at && cn_term_exact_eq((*at)->desc, desc)) return 0;
  cn_term *d = cn_term_copy(desc);
  if (!d) return CN_ENOMEM;
  if (at) { /* another description: alarm_handler holds one entry per set_alarm, so clear there first */
    cn_term_free((*at)->desc);
    (*at)->desc = d;
    mirror_all(t, id, NULL);
    mirror_all(t, id, d);
    return 0;
  }
  alarm_ent *a = cn_calloc(1, sizeof *a);
  if (!a || !(a->id = cn_term_copy(id))) {
    cn_free(a);
    cn_term_free(d);
    return CN_ENOMEM;
  }
  a->desc = d;
  a->next = t->alarms;
  t->alarms = a;
  mirror_all(t, a->id, a->desc);
  return 0;
}

int cn_alarm_clear(cn_node *n, const cn_term *id) {
  alarm_tab *t = tab_get(n, false);
  alarm_ent **at = t && id ? find(t, id) : NULL;
  if (!at) return CN_ENOTFOUND;
  alarm_ent *a = *at;
  *at = a->next;
  mirror_all(t, a->id, NULL);
  cn_term_free(a->id);
  cn_term_free(a->desc);
  cn_free(a);
  return 0;
}

size_t cn_alarm_count(cn_node *n) {
  alarm_tab *t = tab_get(n, false);
  size_t k = 0;
  for (alarm_ent *a = t ? t->alarms : NULL; a; a = a->next) k++;
  return k;
}

cn_term *cn_alarm_list(cn_node *n) {
  alarm_tab *t = tab_get(n, false);
  size_t k = cn_alarm_count(n), i = 0;
  if (!k) return cn_mk_nil();
  cn_term **v = cn_calloc(k, sizeof *v);
  if (!v) return NULL;
  for (alarm_ent *a = t->alarms; a; a = a->next) v[i++] = cn_mk_tuple(2, cn_term_copy(a->id), cn_term_copy(a->desc));
  cn_term *l = cn_mk_listv(k, v, NULL);
  cn_free(v);
  return l;
}

int cn_alarm_mirror(cn_node *n, const cn_atom *node) {
  alarm_tab *t = node ? tab_get(n, true) : NULL;
  if (!node) return CN_EINVAL;
  if (!t) return CN_ENOMEM;
  for (mirror *m = t->mirrors; m; m = m->next)
    if (m->node == node) return CN_EEXIST;
  int rc = proc_start(t);
  if (rc) return rc;
  mirror *m = cn_calloc(1, sizeof *m);
  if (!m) return CN_ENOMEM;
  m->node = node;
  m->next = t->mirrors;
  t->mirrors = m;
  if (cn_node_is_up(n, node, CN_NODES_ALL)) on_nodes(n, node, true, NULL, t);
  else cn_node_connect(n, node);
  return 0;
}

int cn_alarm_clear_all(cn_node *n, void (*done)(void *ctx), void *ctx) {
  if (!done) return CN_EINVAL;
  alarm_tab *t = tab_get(n, true);
  if (!t) return CN_ENOMEM;
  while (t->alarms) cn_alarm_clear(n, t->alarms->id);
  t->done = done;
  t->done_ctx = ctx;
  if (t->proc_up) poke(t, "kick", 0);
  else { /* no mirror: nothing to wait for, done from the loop all the same */ t->done = NULL;
    done(ctx);
  }
  return 0;
}
