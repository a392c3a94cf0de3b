/* dns.c: the DNS strategies' resolver: c-ares on the node's loop (its sockets watched with uv_poll, its timeouts
 * with a uv_timer; nothing blocks), a poll every poll_ms, and each poll's whole answer handed to cl_want_only.
 * The answers are read by pure.c (cl_dns_names). */
#include <ares.h>
#include <stdio.h>
#include <string.h>

#include "cluster_int.h"

/* One socket c-ares asked us to watch. */
typedef struct cl_sock {
  struct cl_sock *next;
  cl_dns *d;
  uv_poll_t poll;
  ares_socket_t fd;
} cl_sock;

struct cl_dns {
  cn_cluster *c;
  ares_channel ch;
  bool ch_open;
  uv_timer_t poll_timer; /* the next poll */
  uv_timer_t ares_timer; /* c-ares' next timeout */
  cl_sock *socks;
  int handles; /* the two timers and the open polls; freed when the last has closed */
  /* The poll in flight: its queries still to answer, the names so far, whether one failed. */
  int pending;
  bool failed;
  bool failing; /* the last poll failed too (its warning was logged) */
  char failure[200];
  cl_names names;
  char basename[CN_ATOM_MAX_BYTES + 1];
};

static void handle_gone(cl_dns *d) {
  if (--d->handles) return;
  cn_cluster *c = d->c;
  cl_names_free(&d->names);
  cn_free(d);
  cl_closed(c);
}

static void on_timer_closed(uv_handle_t *h) { handle_gone(h->data); }

static void on_poll_closed(uv_handle_t *h) {
  cl_sock *s = h->data;
  cl_dns *d = s->d;
  cn_free(s);
  handle_gone(d);
}

static void on_ares_timeout(uv_timer_t *t);

/* Sets the timer to c-ares' next timeout (none: stopped). */
static void arm_timeout(cl_dns *d) {
  struct timeval tv, *t = d->ch_open ? ares_timeout(d->ch, NULL, &tv) : NULL;
  if (!t) {
    uv_timer_stop(&d->ares_timer);
    return;
  }
  uint64_t ms = (uint64_t)t->tv_sec * 1000 + (uint64_t)t->tv_usec / 1000;
  uv_timer_start(&d->ares_timer, on_ares_timeout, ms ? ms : 1, 0);
}

static void on_ares_timeout(uv_timer_t *t) {
  cl_dns *d = t->data;
  ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  arm_timeout(d);
}

static void on_poll(uv_poll_t *p, int status, int events) {
  cl_sock *s = p->data;
  cl_dns *d = s->d;
  /* An error on the socket: let c-ares read it and find out (it fails the query or retries). */
  if (status < 0) events = UV_READABLE | UV_WRITABLE;
  ares_process_fd(d->ch, (events & UV_READABLE) ? s->fd : ARES_SOCKET_BAD,
                  (events & UV_WRITABLE) ? s->fd : ARES_SOCKET_BAD);
  arm_timeout(d);
}

/* c-ares opens, changes or closes a socket: watch it as it says. */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable) {
  cl_dns *d = data;
  cl_sock **pp = &d->socks;
  while (*pp && (*pp)->fd != fd) pp = &(*pp)->next;
  cl_sock *s = *pp;
  if (!readable && !writable) {
    if (s) {
      *pp = s->next;
      uv_poll_stop(&s->poll);
      uv_close((uv_handle_t *)&s->poll, on_poll_closed);
    }
    return;
  }
  if (!s) {
    if (!(s = cn_calloc(1, sizeof *s)) || uv_poll_init_socket(cn_node_loop(d->c->n), &s->poll, fd)) {
      cn_free(s); /* c-ares then times the query out */
      cn_log(d->c->n, CN_LOG_WARN, "discovery: cannot watch a DNS socket");
      return;
    }
    s->d = d;
    s->fd = fd;
    s->poll.data = s;
    uv_unref((uv_handle_t *)&s->poll);
    s->next = d->socks;
    d->socks = s;
    d->handles++;
  }
  uv_poll_start(&s->poll, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), on_poll);
}

static const char *type_name(int type) { return type == CL_DNS_A ? "A" : type == CL_DNS_AAAA ? "AAAA" : "SRV"; }

/* Every query of the poll answered: hand the names over. When one failed, the names found are connected but none
 * is dropped (a resolver that fails for a moment must not cut the cluster); the failure is logged once per run of
 * failures. */
static void poll_done(cl_dns *d) {
  cn_cluster *c = d->c;
  const char *strategy = cn_cluster_strategy_name(c->o.strategy);
  char why[300];
  snprintf(why, sizeof why, "the %s records of %s", c->o.strategy == CN_CLUSTER_DNSSRV ? "SRV" : "A/AAAA", c->o.query);
  if (d->failed) {
    c->stats.dns_failures++;
    cn_log(c->n, d->failing ? CN_LOG_DEBUG : CN_LOG_WARN, "discovery (%s): %s; the nodes found before are kept%s",
           strategy, d->failure, d->failing ? "" : " (said once until it works again)");
    d->failing = true;
    for (size_t i = 0; i < d->names.n; i++) cl_want(c, d->names.v[i], why);
  } else {
    if (d->failing) cn_log(c->n, CN_LOG_INFO, "discovery (%s): %s answer again", strategy, c->o.query);
    d->failing = false;
    cn_log(c->n, CN_LOG_DEBUG, "discovery (%s): %s list %zu node(s)", strategy, why, d->names.n);
    cl_want_only(c, &d->names, why);
  }
  cl_names_free(&d->names);
}

/* One query's answer. type is carried in the query's argument (the callback has no other way to know it). */
typedef struct cl_query {
  cl_dns *d;
  int type;
} cl_query;

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen) {
  (void)timeouts;
  cl_query *q = arg;
  cl_dns *d = q->d;
  int type = q->type;
  cn_free(q);
  if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) return; /* closing: d may be going */
  const char *self = cn_node_name(d->c->n)->name;
  if (status == ARES_SUCCESS) {
    int rc = cl_dns_names(type, abuf, alen > 0 ? (size_t)alen : 0, d->basename, self, &d->names);
    if (rc && rc != CN_ENOTFOUND) {
      d->failed = true;
      snprintf(d->failure, sizeof d->failure, "the %s answer for %s is unreadable: %s", type_name(type), d->c->o.query,
               cn_strerror(rc));
    }
  } else if (status != ARES_ENODATA && status != ARES_ENOTFOUND) {
    /* NXDOMAIN and "no records of the type" are answers (no node); anything else is a failure. */
    d->failed = true;
    snprintf(d->failure, sizeof d->failure, "the %s lookup of %s failed: %s", type_name(type), d->c->o.query,
             ares_strerror(status));
  }
  if (--d->pending == 0) poll_done(d);
}

static void query(cl_dns *d, int type) {
  cl_query *q = cn_malloc(sizeof *q);
  if (!q) {
    d->failed = true;
    snprintf(d->failure, sizeof d->failure, "out of memory");
    return;
  }
  q->d = d;
  q->type = type;
  d->pending++;
  ares_search(d->ch, d->c->o.query, 1 /* C_IN */, type, on_answer, q);
}

static void on_poll_timer(uv_timer_t *t) {
  cl_dns *d = t->data;
  cn_cluster *c = d->c;
  if (d->pending) return; /* the last poll still runs (c-ares' own timeouts end it) */
  c->stats.dns_polls++;
  d->failed = false;
  d->pending = 1; /* held until every query is sent: an answer given at once must not end the poll early */
  if (c->o.strategy == CN_CLUSTER_DNSSRV) {
    query(d, CL_DNS_SRV);
  } else {
    /* As DNSPoll: A and AAAA; a node that runs inet6 reaches no IPv4 address, so AAAA alone. */
    if (cn_node_family(c->n) == CN_INET) query(d, CL_DNS_A);
    query(d, CL_DNS_AAAA);
  }
  if (--d->pending == 0) poll_done(d);
  arm_timeout(d);
}

int cl_dns_start(cn_cluster *c) {
  cl_dns *d = cn_calloc(1, sizeof *d);
  if (!d) return CN_ENOMEM;
  d->c = c;
  c->dns = d;
  const char *me = cn_node_name(c->n)->name;
  snprintf(d->basename, sizeof d->basename, "%.*s", (int)(c->o.basename ? strlen(c->o.basename) : strcspn(me, "@")),
           c->o.basename ? c->o.basename : me);
  struct ares_options ao;
  memset(&ao, 0, sizeof ao);
  ao.sock_state_cb = on_sock_state;
  ao.sock_state_cb_data = d;
  /* A poll should end before the next: a try waits a quarter of the interval (0.2 to 2 s; c-ares doubles it for
   * the second try). */
  unsigned per_try = c->o.poll_ms / 4;
  ao.timeout = (int)(per_try < 200 ? 200 : per_try > 2000 ? 2000 : per_try);
  ao.tries = 2;
  int st = ares_init_options(&d->ch, &ao, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
  if (st != ARES_SUCCESS) {
    cn_log(c->n, CN_LOG_ERROR, "discovery: cannot set up the resolver: %s", ares_strerror(st));
    return CN_EIO;
  }
  d->ch_open = true;
  if (c->o.dns_servers && (st = ares_set_servers_ports_csv(d->ch, c->o.dns_servers)) != ARES_SUCCESS) {
    cn_log(c->n, CN_LOG_ERROR, "discovery: DNS servers \"%s\": %s (expected ip[:port],...)", c->o.dns_servers,
           ares_strerror(st));
    return CN_EINVAL;
  }
  uv_loop_t *loop = cn_node_loop(c->n);
  uv_timer_init(loop, &d->poll_timer);
  uv_timer_init(loop, &d->ares_timer);
  d->poll_timer.data = d->ares_timer.data = d;
  uv_unref((uv_handle_t *)&d->poll_timer);
  uv_unref((uv_handle_t *)&d->ares_timer);
  d->handles = 2;
  c->open++;
  cn_log(c->n, CN_LOG_INFO, "discovery (%s): polling the %s records of %s every %u ms for %s@...%s%s",
         cn_cluster_strategy_name(c->o.strategy), c->o.strategy == CN_CLUSTER_DNSSRV ? "SRV" : "A/AAAA", c->o.query,
         c->o.poll_ms, d->basename, c->o.dns_servers ? ", asking " : "", c->o.dns_servers ? c->o.dns_servers : "");
  uv_timer_start(&d->poll_timer, on_poll_timer, 0, c->o.poll_ms);
  return 0;
}

void cl_dns_close(cn_cluster *c) {
  cl_dns *d = c->dns;
  if (!d) return;
  c->dns = NULL;
  /* ares_destroy ends the queries (ARES_EDESTRUCTION) and closes its sockets, which closes their polls. */
  if (d->ch_open) ares_destroy(d->ch);
  d->ch_open = false;
  if (!d->handles) {
    cl_names_free(&d->names);
    cn_free(d);
    return;
  }
  uv_close((uv_handle_t *)&d->poll_timer, on_timer_closed);
  uv_close((uv_handle_t *)&d->ares_timer, on_timer_closed);
}
