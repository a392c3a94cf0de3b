/* cluster.c: a discovery instance: its options, the table of nodes its strategy wants connected, connects with a
 * back-off per node, reconnects of listed nodes that went down, and dropping nodes a DNS answer no longer lists.
 * The strategies' sockets are in gossip.c and dns.c; everything here runs on the node's loop. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cluster_int.h"

/* A heard or listed node: its state toward this instance. */
typedef struct cl_peer {
  struct cl_peer *next;
  const cn_atom *node;
  char why[96];      /* where it was heard or listed, for the log */
  unsigned failures; /* failed connects in a row */
  uint64_t retry_at; /* loop time before which no connect starts (back-off) */
  uint64_t since;    /* loop time the current connect started */
  bool connecting;
  bool listed; /* listed (hosts, the last DNS answer): kept connected; gossip peers reconnect when heard */
} cl_peer;

/* Heartbeats are unauthenticated without a secret: bound what strangers can make us hold. */
#define CL_MAX_PEERS 4096
/* A connect neither up nor failed after this long (its end went unreported) may start again. */
#define CL_CONNECT_STUCK_MS 60000

/* The instance of a node slot: the slot outlives an instance stopped early, so it holds a pointer. */
typedef struct cl_slot {
  cn_cluster *c;
} cl_slot;

const char *cn_cluster_strategy_name(cn_cluster_strategy s) {
  switch (s) {
  case CN_CLUSTER_GOSSIP: return "gossip";
  case CN_CLUSTER_HOSTS: return "hosts";
  case CN_CLUSTER_DNS: return "dns";
  case CN_CLUSTER_DNSSRV: return "dnssrv";
  default: return "?";
  }
}

static void cl_log(cn_cluster *c, cn_log_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cl_log(cn_cluster *c, cn_log_level level, const char *fmt, ...) {
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  cn_log(c->n, level, "discovery (%s): %s", cn_cluster_strategy_name(c->o.strategy), msg);
}

static cl_peer *find_peer(cn_cluster *c, const char *name) {
  for (cl_peer *p = c->peers; p; p = p->next)
    if (!strcmp(p->node->name, name)) return p;
  return NULL;
}

static bool is_up(cn_cluster *c, const cn_atom *node) {
  return cn_node_is_up(c->n, node, CN_NODES_VISIBLE | CN_NODES_HIDDEN);
}

static void connect_failed(cn_cluster *c, cl_peer *p, const char *reason) {
  p->connecting = false;
  p->failures++;
  c->stats.connect_failures++;
  unsigned wait = cl_backoff_ms(p->failures, c->o.backoff_min_ms, c->o.backoff_max_ms);
  p->retry_at = uv_now(cn_node_loop(c->n)) + wait;
  cl_log(c, CN_LOG_WARN, "cannot connect to %s (%s): %s; next try in %u ms (failure %u)", p->node->name, p->why, reason,
         wait, p->failures);
}

/* Starts a connect to p when it is down, idle and past its back-off. */
static void try_connect(cn_cluster *c, cl_peer *p) {
  uint64_t now = uv_now(cn_node_loop(c->n));
  if (c->stopping || is_up(c, p->node)) return;
  if (p->connecting && now - p->since < CL_CONNECT_STUCK_MS) return;
  if (now < p->retry_at) return;
  p->connecting = true;
  p->since = now;
  cl_log(c, CN_LOG_DEBUG, "connecting to %s (%s)", p->node->name, p->why);
  int rc = cn_node_connect(c->n, p->node);
  /* A setup that fails at once has already been reported (on_setup_failed); other refusals are said here, except
   * the node's own stopping (CN_ESTATE), which is no failure of the peer. */
  if (rc == CN_ESTATE) p->connecting = false;
  else if (rc && p->connecting) connect_failed(c, p, cn_strerror(rc));
}

void cl_want(cn_cluster *c, const char *node, const char *why) {
  if (c->stopping) return;
  cl_peer *p = find_peer(c, node);
  if (!p) {
    if (c->stats.known_nodes >= CL_MAX_PEERS) {
      cl_log(c, CN_LOG_WARN, "ignoring %s (%s): %d nodes known already", node, why, CL_MAX_PEERS);
      return;
    }
    const cn_atom *a = cn_intern(c->n, node);
    if (!a || !(p = cn_calloc(1, sizeof *p))) {
      cl_log(c, CN_LOG_WARN, "ignoring %s (%s): out of memory or atoms", node, why);
      return;
    }
    p->node = a;
    p->next = c->peers;
    c->peers = p;
    c->stats.known_nodes++;
  }
  snprintf(p->why, sizeof p->why, "%s", why);
  p->listed = c->o.strategy != CN_CLUSTER_GOSSIP;
  try_connect(c, p);
}

void cl_want_only(cn_cluster *c, const cl_names *names, const char *why) {
  for (cl_peer **pp = &c->peers; *pp;) {
    cl_peer *p = *pp;
    if (cl_names_has(names, p->node->name)) {
      pp = &p->next;
      continue;
    }
    /* Gone from the answer: libcluster disconnects such a node; so does this. */
    bool up = is_up(c, p->node);
    cl_log(c, CN_LOG_INFO, "%s is no longer in %s%s", p->node->name, why, up ? ": disconnecting" : "");
    if (up && !cn_node_disconnect(c->n, p->node)) c->stats.disconnects++;
    *pp = p->next;
    cn_free(p);
    c->stats.known_nodes--;
  }
  for (size_t i = 0; i < names->n; i++) cl_want(c, names->v[i], why);
}

static void on_nodes(cn_node *n, const cn_atom *node, bool up, const char *reason, void *ctx) {
  (void)n;
  cn_cluster *c = ctx;
  cl_peer *p = find_peer(c, node->name);
  if (!p) return;
  if (up) {
    if (p->connecting) {
      c->stats.connects++;
      cl_log(c, CN_LOG_INFO, "connected to %s (%s)", node->name, p->why);
    }
    p->connecting = false;
    p->failures = 0;
    p->retry_at = 0;
  } else if (p->listed) {
    cl_log(c, CN_LOG_INFO, "lost %s (%s): reconnecting", node->name, reason);
  }
}

static void on_setup_failed(cn_node *n, const cn_atom *node, const char *reason, void *ctx) {
  (void)n;
  cn_cluster *c = ctx;
  cl_peer *p = find_peer(c, node->name);
  if (p && p->connecting) connect_failed(c, p, reason);
}

/* Once a second: listed nodes that are down and past their back-off are connected again. */
static void on_tick(uv_timer_t *t) {
  cn_cluster *c = t->data;
  for (cl_peer *p = c->peers; p; p = p->next)
    if (p->listed) try_connect(c, p);
}

/* ---- lifecycle -------------------------------------------------------------------------------------------- */

static void free_cluster(cn_cluster *c) {
  while (c->peers) {
    cl_peer *p = c->peers;
    c->peers = p->next;
    cn_free(p);
  }
  cn_free(c->strs);
  cn_free(c);
}

void cl_closed(cn_cluster *c) {
  if (--c->open == 0 && c->stopping) free_cluster(c);
}

static void on_timer_closed(uv_handle_t *h) { cl_closed(h->data); }

/* Copies the option strings into one allocation, so the caller's may go. */
static int copy_strings(cn_cluster *c) {
  const char **f[] = {&c->o.multicast_addr, &c->o.if_addr, &c->o.multicast_if, &c->o.secret,
                      &c->o.hosts,          &c->o.query,   &c->o.basename,     &c->o.dns_servers};
  size_t total = 0;
  for (size_t i = 0; i < sizeof f / sizeof *f; i++) total += *f[i] ? strlen(*f[i]) + 1 : 0;
  if (!(c->strs = cn_malloc(total ? total : 1))) return CN_ENOMEM;
  char *w = c->strs;
  for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
    if (!*f[i]) continue;
    size_t k = strlen(*f[i]) + 1;
    memcpy(w, *f[i], k);
    *f[i] = w;
    w += k;
  }
  return 0;
}

static void release_slot(void *data) {
  cl_slot *s = data;
  if (s->c) cn_cluster_stop(s->c);
  cn_free(s);
}

void cn_cluster_stop(cn_cluster *c) {
  if (!c || c->stopping) return;
  c->stopping = true;
  cn_node_demonitor_nodes(c->n, on_nodes, c);
  cn_node_demonitor_setups(c->n, on_setup_failed, c);
  cl_slot *s = cn_node_attached(c->n, c);
  if (s) s->c = NULL;
  cl_gossip_close(c);
  cl_dns_close(c);
  uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

static int check_opts(cn_cluster *c) {
  cn_cluster_opts *o = &c->o;
  if (!o->backoff_min_ms) o->backoff_min_ms = 1000;
  if (!o->backoff_max_ms) o->backoff_max_ms = 30000;
  if (o->backoff_max_ms < o->backoff_min_ms) o->backoff_max_ms = o->backoff_min_ms;
  if (!o->poll_ms) o->poll_ms = CN_CLUSTER_DNS_POLL_MS;
  if (!o->heartbeat_max_ms) o->heartbeat_max_ms = 5000;
  if (!o->gossip_port) o->gossip_port = CN_CLUSTER_GOSSIP_PORT;
  if (!o->multicast_ttl) o->multicast_ttl = 1;
  switch (o->strategy) {
  case CN_CLUSTER_GOSSIP:
    if (o->secret && !o->secret[0]) {
      cl_log(c, CN_LOG_ERROR, "the secret is empty");
      return CN_EINVAL;
    }
    if (o->multicast_ttl < 0 || o->multicast_ttl > 255) {
      cl_log(c, CN_LOG_ERROR, "multicast TTL %d is not 0-255", o->multicast_ttl);
      return CN_EINVAL;
    }
    return 0;
  case CN_CLUSTER_HOSTS: {
    cl_names l = {0};
    const char *bad = NULL;
    int rc = o->hosts ? cl_hosts_parse(o->hosts, cn_node_name(c->n)->name, &l, &bad) : CN_EINVAL;
    if (rc == CN_EINVAL) cl_log(c, CN_LOG_ERROR, "bad host list at \"%s\": expected name@host,...", bad ? bad : "");
    cl_names_free(&l);
    return rc;
  }
  case CN_CLUSTER_DNS:
  case CN_CLUSTER_DNSSRV:
    if (!o->query || !o->query[0]) {
      cl_log(c, CN_LOG_ERROR, "no DNS name to query");
      return CN_EINVAL;
    }
    if (o->basename && (!o->basename[0] || strchr(o->basename, '@'))) {
      cl_log(c, CN_LOG_ERROR, "basename \"%s\" is not a node name's first part", o->basename);
      return CN_EINVAL;
    }
    return 0;
  default: cn_log(c->n, CN_LOG_ERROR, "discovery: unknown strategy %d", (int)o->strategy); return CN_EINVAL;
  }
}

static int start_hosts(cn_cluster *c) {
  cl_names l = {0};
  int rc = cl_hosts_parse(c->o.hosts, cn_node_name(c->n)->name, &l, NULL);
  for (size_t i = 0; !rc && i < l.n; i++) cl_want(c, l.v[i], "listed in hosts");
  cl_names_free(&l);
  return rc;
}

int cn_cluster_start(cn_node *n, const cn_cluster_opts *opts, cn_cluster **out) {
  if (!n || !opts) return CN_EINVAL;
  cn_cluster *c = cn_calloc(1, sizeof *c);
  cl_slot *s = cn_calloc(1, sizeof *s);
  if (!c || !s) {
    cn_free(c);
    cn_free(s);
    return CN_ENOMEM;
  }
  c->n = n;
  c->o = *opts;
  int rc = copy_strings(c);
  if (!rc) rc = check_opts(c);
  if (!rc) rc = cn_node_attach(n, c, s, release_slot);
  if (rc) {
    cn_free(s);
    free_cluster(c);
    return rc;
  }
  s->c = c;
  uv_timer_init(cn_node_loop(n), &c->timer);
  c->timer.data = c;
  c->open = 1;
  uv_unref((uv_handle_t *)&c->timer);
  if (c->o.secret) cl_key_from_secret(c->o.secret, c->key);
  if ((rc = cn_node_monitor_nodes(n, on_nodes, c)) || (rc = cn_node_monitor_setups(n, on_setup_failed, c))) {
    cn_cluster_stop(c);
    return rc;
  }
  uv_timer_start(&c->timer, on_tick, 1000, 1000);
  switch (c->o.strategy) {
  case CN_CLUSTER_GOSSIP: rc = cl_gossip_start(c); break;
  case CN_CLUSTER_HOSTS: rc = start_hosts(c); break;
  default: rc = cl_dns_start(c); break;
  }
  if (rc) {
    cn_cluster_stop(c);
    return rc;
  }
  if (out) *out = c;
  return 0;
}

void cn_cluster_get_stats(const cn_cluster *c, cn_cluster_stats *out) { *out = c->stats; }
