/* pubsub.c: Phoenix.PubSub's PG2 adapter on a C node, on cn_pg.h: the shard processes (registered under the
 * shard's group name, joined to that group of the pg scope Phoenix.PubSub, taking {forward_to_local, ...}), the
 * local subscriptions (Phoenix's duplicate-key Registry: topic -> pids) and the broadcast family of cn_pubsub.h.
 * docs/pubsub.md has the wire. Shard 0 also monitors subscribers and follows the scope to learn the pool size. */
#include <stdio.h>
#include <string.h>

#include "cn_pg.h"
#include "pg_int.h"
#include "pubsub_int.h"

/* uthash allocates through libcnode's hooks and reports a failed allocation (the element is then not added). */
static _Thread_local bool ps_oom;
#define uthash_malloc(sz) cn_malloc(sz)
#define uthash_free(ptr, sz) cn_free(ptr)
#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(elt) (ps_oom = true)
#include <uthash.h>

#define DEFAULT_DISPATCHER "Elixir.Phoenix.PubSub"

/* ---- Names and messages (pure) ----------------------------------------------------------------------------------- */

int ps_adapter_name(const char *pubsub, char *out, size_t cap) {
  const char *base = strncmp(pubsub, "Elixir.", 7) ? pubsub : pubsub + 7;
  int k = snprintf(out, cap, "Elixir.%s.Adapter", base);
  return !*base || k < 0 || (size_t)k >= cap || k > CN_ATOM_MAX_BYTES ? CN_ELIMIT : 0;
}

int ps_shard_name(const char *adapter, unsigned k, char *out, size_t cap) {
  int w = k ? snprintf(out, cap, "%s_%u", adapter, k + 1) : snprintf(out, cap, "%s", adapter);
  return w < 0 || (size_t)w >= cap || w > CN_ATOM_MAX_BYTES ? CN_ELIMIT : 0;
}

int ps_shard_index(const char *adapter, const char *group, size_t len) {
  size_t al = strlen(adapter);
  if (len < al || memcmp(group, adapter, al)) return -1;
  if (len == al) return 0;
  if (group[al] != '_' || len == al + 1 || len > al + 5 || group[al + 1] == '0') return -1;
  unsigned v = 0;
  for (size_t i = al + 1; i < len; i++) {
    if (group[i] < '0' || group[i] > '9') return -1;
    v = v * 10 + (unsigned)(group[i] - '0');
  }
  return v >= 2 && v <= PS_MAX_POOL ? (int)v - 1 : -1; /* "_1" is never a shard name: shard 0 is the adapter's */
}

int ps_forward_decode(const cn_term *msg, const cn_term **topic, const cn_term **message, const cn_term **dispatcher) {
  if (!cn_is_atom(cn_tuple_elem(msg, 4, 0), "forward_to_local")) return CN_EDECODE;
  *topic = cn_tuple_elem(msg, 4, 1);
  *message = cn_tuple_elem(msg, 4, 2);
  *dispatcher = cn_tuple_elem(msg, 4, 3);
  if ((*topic)->type != CN_BINARY || (*topic)->v.bin.bits != 8 || (*dispatcher)->type != CN_ATOM) return CN_EDECODE;
  return 0;
}

/* ---- State ------------------------------------------------------------------------------------------------------- */

typedef struct ps_topic {
  UT_hash_handle hh;
  char *name; /* owned; len bytes (a topic may hold any byte) */
  size_t len;
  pg_pids subs; /* one entry per subscription */
} ps_topic;

typedef struct ps_sub {
  UT_hash_handle hh;
  uint64_t key; /* id and serial: subscribers are local */
  cn_pid pid;
  size_t count;
  cn_ref mref;
  bool monitored;
} ps_sub;

typedef struct ps_pubsub {
  struct ps_pubsub *next;
  cn_node *n;
  char name[CN_ATOM_MAX_BYTES + 1], adapter[CN_ATOM_MAX_BYTES + 1];
  unsigned pool;
  cn_pid *shards; /* pool pids; shards[0] does the housekeeping */
  ps_topic *topics;
  ps_sub *subs;
  cn_ref scope_ref;
  bool scope_mon;
} ps_pubsub;

typedef struct ps_node {
  ps_pubsub *list;
} ps_node;

static const char ps_key;

static cn_term *A(ps_pubsub *p, const char *s) { return cn_mk_atomc(p->n, s); }

static ps_pubsub *ps_find(cn_node *n, const char *name) {
  ps_node *pn = n && name ? cn_node_attached(n, &ps_key) : NULL;
  for (ps_pubsub *p = pn ? pn->list : NULL; p; p = p->next)
    if (!strcmp(p->name, name)) return p;
  return NULL;
}

static void to_shard0(ps_pubsub *p, cn_term *msg) {
  if (msg) cn_send(p->n, NULL, p->shards[0], msg);
  cn_term_free(msg);
}

static ps_topic *topic_find(ps_pubsub *p, const char *t, size_t len) {
  ps_topic *x;
  HASH_FIND(hh, p->topics, t, len, x);
  return x;
}

static void topic_drop(ps_pubsub *p, ps_topic *t) {
  HASH_DEL(p->topics, t);
  pg_pids_free(&t->subs);
  cn_free(t->name);
  cn_free(t);
}

static uint64_t sub_key(cn_pid pid) { return (uint64_t)pid.id << 32 | pid.serial; }

static ps_sub *sub_find(ps_pubsub *p, cn_pid pid) {
  uint64_t k = sub_key(pid);
  ps_sub *s;
  HASH_FIND(hh, p->subs, &k, sizeof k, s);
  return s;
}

/* Removes every subscription of pid to t; returns how many there were. */
static size_t topic_remove(ps_pubsub *p, ps_topic *t, cn_pid pid) {
  size_t k = 0;
  while (pg_pids_del(&t->subs, pid)) k++;
  if (!t->subs.n) topic_drop(p, t);
  return k;
}

/* ---- Delivery ------------------------------------------------------------------------------------------------------ */

/* Phoenix.PubSub.dispatch/3 on this node: msg to every subscription of topic except from's. A C subscriber is
 * sent the message itself whatever the dispatcher (a custom dispatcher's code cannot run in C; see docs). */
static void dispatch(ps_pubsub *p, const char *topic, size_t len, const cn_term *msg, const cn_pid *from) {
  ps_topic *t = topic_find(p, topic, len);
  cn_pid me = {0};
  if (from) me = pg_live_pid(cn_node_name(p->n), cn_node_creation(p->n), *from);
  for (size_t i = 0; t && i < t->subs.n; i++)
    if (!from || !cn_pid_eq(t->subs.p[i], me)) cn_send(p->n, NULL, t->subs.p[i], msg);
}

static void sub_drop(ps_pubsub *p, ps_sub *s) {
  ps_topic *t, *tmp;
  HASH_ITER(hh, p->topics, t, tmp) topic_remove(p, t, s->pid);
  HASH_DEL(p->subs, s);
  cn_free(s);
}

static int grow(ps_pubsub *p, unsigned pool);

/* A group of the scope (from the monitor's snapshot or a join): a shard this node does not run yet is started. */
static void seen_group(ps_pubsub *p, const cn_term *g) {
  int k = g && g->type == CN_ATOM ? ps_shard_index(p->adapter, g->v.atom->name, g->v.atom->len) : -1;
  if (k >= 0 && (unsigned)k >= p->pool && grow(p, (unsigned)k + 1))
    cn_log(p->n, CN_LOG_WARN, "pubsub %s: cannot start shard %d", p->name, k + 1);
}

static void housekeeping(ps_pubsub *p, cn_proc *self, const cn_term *msg) {
  const cn_term *e = msg->v.tuple.e;
  uint32_t ar = msg->v.tuple.arity;
  if (ar == 2 && cn_is_atom(&e[1], "init")) {
    cn_term *now = NULL;
    if (!cn_pg_monitor(self, CN_PUBSUB_SCOPE, NULL, &p->scope_ref, &now)) p->scope_mon = true;
    for (uint32_t i = 0; now && now->type == CN_MAP && i < now->v.map.size; i++) seen_group(p, &now->v.map.kv[2 * i]);
    cn_term_free(now);
  } else if (ar == 3 && cn_is_atom(&e[1], "watch") && e[2].type == CN_PID) {
    ps_sub *s = sub_find(p, e[2].v.pid);
    if (s && !s->monitored) s->monitored = !cn_monitor(self, &e[2], &s->mref);
  } else if (ar == 3 && cn_is_atom(&e[1], "unwatch") && e[2].type == CN_REF) {
    cn_demonitor(self, e[2].v.ref);
  }
}

/* A shard process: Phoenix.PubSub.PG2Worker's handle_info, plus shard 0's housekeeping. */
static void shard_handler(cn_proc *self, const cn_term *msg, void *state) {
  ps_pubsub *p = state;
  const cn_term *topic, *m, *d;
  if (!ps_forward_decode(msg, &topic, &m, &d)) {
    char *t = (char *)topic->v.bin.data;
    dispatch(p, t ? t : "", topic->v.bin.size, m, NULL); /* local_broadcast: from :none */
    return;
  }
  if (msg->type != CN_TUPLE || !msg->v.tuple.arity) return;
  const cn_term *e = msg->v.tuple.e;
  if (cn_is_atom(&e[0], "$cn_pubsub")) {
    housekeeping(p, self, msg);
  } else if (msg->v.tuple.arity == 4 && p->scope_mon && e[0].type == CN_REF && cn_ref_eq(&e[0].v.ref, &p->scope_ref) &&
             cn_is_atom(&e[1], "join")) {
    seen_group(p, &e[2]);
  } else if (msg->v.tuple.arity == 5 && cn_is_atom(&e[0], "DOWN") && e[1].type == CN_REF) {
    for (ps_sub *s = p->subs; s; s = s->hh.next)
      if (s->monitored && cn_ref_eq(&s->mref, &e[1].v.ref)) {
        sub_drop(p, s);
        break;
      }
  }
}

/* Starts shards p->pool .. pool-1: each registered under its group's name and joined to that group. */
static int grow(ps_pubsub *p, unsigned pool) {
  if (pool > PS_MAX_POOL) return CN_ELIMIT;
  cn_pid *s = cn_realloc(p->shards, pool * sizeof *s);
  if (!s) return CN_ENOMEM;
  p->shards = s;
  while (p->pool < pool) {
    char name[CN_ATOM_MAX_BYTES + 1];
    int rc = ps_shard_name(p->adapter, p->pool, name, sizeof name);
    cn_pid pid;
    if (rc || (rc = cn_spawn(p->n, shard_handler, p, NULL, &pid))) return rc;
    cn_term *g = A(p, name);
    if ((rc = cn_register(p->n, name, pid)) || (rc = g ? cn_pg_join(p->n, CN_PUBSUB_SCOPE, g, pid) : CN_ENOMEM)) {
      cn_term_free(g);
      cn_term kill = cn_tv_atom(cn_intern(p->n, "kill"));
      cn_exit(p->n, NULL, pid, &kill);
      return rc;
    }
    cn_term_free(g);
    p->shards[p->pool++] = pid;
  }
  return 0;
}

/* ---- C API --------------------------------------------------------------------------------------------------------- */

static void node_release(void *data) {
  ps_node *pn = data;
  while (pn->list) {
    ps_pubsub *p = pn->list;
    pn->list = p->next;
    ps_topic *t, *tt;
    HASH_ITER(hh, p->topics, t, tt) topic_drop(p, t);
    ps_sub *s, *st;
    HASH_ITER(hh, p->subs, s, st) {
      HASH_DEL(p->subs, s);
      cn_free(s);
    }
    cn_free(p->shards);
    cn_free(p);
  }
  cn_free(pn);
}

int cn_pubsub_start(cn_node *n, const char *pubsub, unsigned pool_size) {
  if (!n || !pubsub || !pubsub[0] || pool_size > PS_MAX_POOL) return CN_EINVAL;
  if (ps_find(n, pubsub)) return CN_EEXIST;
  ps_node *pn = cn_node_attached(n, &ps_key);
  if (!pn) {
    if (!(pn = cn_calloc(1, sizeof *pn))) return CN_ENOMEM;
    if (cn_node_attach(n, &ps_key, pn, node_release)) {
      cn_free(pn);
      return CN_ENOMEM;
    }
  }
  int rc = cn_pg_running(n, CN_PUBSUB_SCOPE) ? 0 : cn_pg_start(n, CN_PUBSUB_SCOPE);
  if (rc) return rc;
  ps_pubsub *p = cn_calloc(1, sizeof *p);
  if (!p) return CN_ENOMEM;
  p->n = n;
  if (strlen(pubsub) > CN_ATOM_MAX_BYTES || ps_adapter_name(pubsub, p->adapter, sizeof p->adapter)) {
    cn_free(p);
    return CN_EINVAL;
  }
  strcpy(p->name, pubsub);
  p->next = pn->list; /* listed first, so the slot frees it whatever happens next */
  pn->list = p;
  if ((rc = grow(p, pool_size ? pool_size : 1))) return rc;
  to_shard0(p, cn_mk_tuple(2, A(p, "$cn_pubsub"), A(p, "init")));
  return 0;
}

unsigned cn_pubsub_pool_size(cn_node *n, const char *pubsub) {
  ps_pubsub *p = ps_find(n, pubsub);
  return p ? p->pool : 0;
}

int cn_pubsub_subscribe(cn_node *n, const char *pubsub, const char *topic, cn_pid pid) {
  ps_pubsub *p = ps_find(n, pubsub);
  if (!p) return CN_ENOTFOUND;
  if (!topic || pid.node != cn_node_name(n)) return CN_EINVAL;
  if (!cn_is_process_alive(n, pid)) return CN_ENOPROC;
  pid = pg_live_pid(cn_node_name(n), cn_node_creation(n), pid);
  size_t len = strlen(topic);
  ps_topic *t = topic_find(p, topic, len);
  ps_sub *s = sub_find(p, pid);
  if (!t) {
    if (!(t = cn_calloc(1, sizeof *t)) || !(t->name = cn_strndup(topic, len))) {
      cn_free(t);
      return CN_ENOMEM;
    }
    t->len = len;
    ps_oom = false;
    HASH_ADD_KEYPTR(hh, p->topics, t->name, t->len, t);
    if (ps_oom) {
      cn_free(t->name);
      cn_free(t);
      return CN_ENOMEM;
    }
  }
  if (!s) {
    if (!(s = cn_calloc(1, sizeof *s))) return CN_ENOMEM;
    s->pid = pid;
    s->key = sub_key(pid);
    ps_oom = false;
    HASH_ADD(hh, p->subs, key, sizeof s->key, s);
    if (ps_oom) {
      cn_free(s);
      return CN_ENOMEM;
    }
    to_shard0(p, cn_mk_tuple(3, A(p, "$cn_pubsub"), A(p, "watch"), cn_mk_pid(pid)));
  }
  int rc = pg_pids_add(&t->subs, pid);
  if (!rc) s->count++;
  return rc;
}

int cn_pubsub_unsubscribe(cn_node *n, const char *pubsub, const char *topic, cn_pid pid) {
  ps_pubsub *p = ps_find(n, pubsub);
  if (!p) return CN_ENOTFOUND;
  if (!topic) return CN_EINVAL;
  pid = pg_live_pid(cn_node_name(n), cn_node_creation(n), pid);
  ps_topic *t = topic_find(p, topic, strlen(topic));
  ps_sub *s = sub_find(p, pid);
  size_t k = t ? topic_remove(p, t, pid) : 0;
  if (s && (s->count -= k < s->count ? k : s->count) == 0) {
    if (s->monitored) to_shard0(p, cn_mk_tuple(3, A(p, "$cn_pubsub"), A(p, "unwatch"), cn_mk_ref(s->mref)));
    HASH_DEL(p->subs, s);
    cn_free(s);
  }
  return 0;
}

int cn_pubsub_broadcast_opts(cn_node *n, const char *pubsub, const char *topic, const cn_term *msg,
                             const cn_pubsub_bcast *how) {
  static const cn_pubsub_bcast plain = {0};
  ps_pubsub *p = ps_find(n, pubsub);
  if (!p) return CN_ENOTFOUND;
  if (!topic || !msg) return CN_EINVAL;
  if (!how) how = &plain;
  size_t len = strlen(topic);
  if (how->local || (how->node && how->node == cn_node_name(n))) {
    dispatch(p, topic, len, msg, how->local ? how->from : NULL);
    return 0;
  }
  cn_term *bin = cn_mk_binary(topic, len);
  /* The PG2 adapter picks the shard by phash2(self(), pool); a C caller without a pid hashes the topic. */
  uint32_t k = 0;
  if (p->pool > 1 && bin) {
    cn_term f = how->from ? cn_tv_pid(*how->from) : *bin;
    k = cn_phash2_range(&f, p->pool);
  }
  char group[CN_ATOM_MAX_BYTES + 1];
  int rc = ps_shard_name(p->adapter, k, group, sizeof group);
  cn_term *fwd = cn_mk_tuple(4, A(p, "forward_to_local"), bin, cn_term_copy(msg),
                             A(p, how->dispatcher ? how->dispatcher : DEFAULT_DISPATCHER));
  if (!rc && !fwd) rc = CN_ENOMEM;
  if (!rc && how->node) {
    rc = cn_send_name(n, NULL, group, how->node, fwd);
  } else if (!rc) {
    cn_pid *m;
    size_t c;
    cn_term *g = A(p, group);
    rc = g ? cn_pg_members(n, CN_PUBSUB_SCOPE, g, false, &m, &c) : CN_ENOMEM;
    for (size_t i = 0; !rc && i < c; i++)
      if (m[i].node != cn_node_name(n)) cn_send(n, NULL, m[i], fwd);
    if (!rc) cn_free(m);
    cn_term_free(g);
    if (!rc) dispatch(p, topic, len, msg, how->from);
  }
  cn_term_free(fwd);
  return rc;
}

int cn_pubsub_broadcast(cn_node *n, const char *pubsub, const char *topic, const cn_term *msg) {
  return cn_pubsub_broadcast_opts(n, pubsub, topic, msg, NULL);
}

int cn_pubsub_broadcast_from(cn_node *n, cn_pid from, const char *pubsub, const char *topic, const cn_term *msg) {
  cn_pubsub_bcast how = {.from = &from};
  return cn_pubsub_broadcast_opts(n, pubsub, topic, msg, &how);
}

int cn_pubsub_local_broadcast(cn_node *n, const char *pubsub, const char *topic, const cn_term *msg) {
  cn_pubsub_bcast how = {.local = true};
  return cn_pubsub_broadcast_opts(n, pubsub, topic, msg, &how);
}

int cn_pubsub_direct_broadcast(cn_node *n, const cn_atom *node, const char *pubsub, const char *topic,
                               const cn_term *msg) {
  if (!node) return CN_EINVAL;
  cn_pubsub_bcast how = {.node = node};
  return cn_pubsub_broadcast_opts(n, pubsub, topic, msg, &how);
}
