/* watchdog.c: cn_watchdog.h: a process per watchdog ticking every interval (cn_send_after to itself), the TCP check
 * as a non-blocking uv_getaddrinfo + uv_tcp_connect on the node's loop, the user's check, the 3-pass rule, and the
 * {dependency_down, Name} alarm. */
#include <stdio.h>
#include <string.h>

#include "cn_alarm.h"
#include "watchdog_int.h"

watch_change watch_rule_feed(watch_rule *r, bool ok) {
  unsigned need = r->clear_after ? r->clear_after : 3;
  if (!ok) {
    r->passes = 0;
    if (r->down) return WATCH_SAME;
    r->down = true;
    return WATCH_SET;
  }
  if (!r->down || ++r->passes < need) return WATCH_SAME;
  r->down = false;
  r->passes = 0;
  return WATCH_CLEAR;
}

typedef struct tcp_check tcp_check;
struct cn_watch {
  cn_node *n;
  cn_pid pid;
  char *name, *host;
  uint16_t port;
  cn_watch_check_fn check;
  void *ctx;
  unsigned interval_ms;
  watch_rule rule;
  bool waiting;   /* a check has not reported yet */
  tcp_check *tcp; /* the TCP check in flight */
};

struct tcp_check {
  cn_watch *w; /* NULL once abandoned: its callbacks then only close and free */
  uv_getaddrinfo_t gai;
  uv_tcp_t sock;
  uv_connect_t req;
  bool resolving, open, closing; /* closing: its close callback frees it */
};

static cn_term *alarm_id(cn_watch *w) {
  return cn_mk_tuple(2, cn_mk_atomc(w->n, "dependency_down"), cn_mk_atomc(w->n, w->name));
}

static void alarm_change(cn_watch *w, watch_change c) {
  if (c == WATCH_SAME) return;
  cn_node *n = w->n;
  cn_term *id = alarm_id(w);
  char text[300];
  if (w->check) snprintf(text, sizeof text, "%s: check failed", w->name);
  else snprintf(text, sizeof text, "%s: no TCP connection to %s:%u", w->name, w->host, w->port);
  cn_term *desc = cn_mk_binary(text, strlen(text));
  int rc = !id || !desc ? CN_ENOMEM : c == WATCH_SET ? cn_alarm_set(n, id, desc) : cn_alarm_clear(n, id);
  cn_log(n, rc ? CN_LOG_WARN : CN_LOG_INFO, "watchdog %s: dependency %s%s%s", w->name, c == WATCH_SET ? "down" : "back",
         rc ? ", alarm: " : "", rc ? cn_strerror(rc) : "");
  cn_term_free(id);
  cn_term_free(desc);
}

void cn_watch_report(cn_watch *w, bool ok) {
  if (!w || !w->waiting) return;
  w->waiting = false;
  alarm_change(w, watch_rule_feed(&w->rule, ok));
}

bool cn_watch_down(const cn_watch *w) { return w && w->rule.down; }

/* ---- The TCP check ------------------------------------------------------------------------------------------------ */

static void tcp_closed(uv_handle_t *h) { cn_free(h->data); }

/* The check is over (ok or not): report it unless abandoned, then close and free. */
static void tcp_end(tcp_check *c, bool ok) {
  if (c->w) {
    c->w->tcp = NULL;
    cn_watch_report(c->w, ok);
    c->w = NULL;
  }
  if (c->open) {
    c->open = false;
    c->closing = true;
    uv_close((uv_handle_t *)&c->sock, tcp_closed);
  } else if (!c->resolving && !c->closing) {
    cn_free(c);
  }
}

static void on_connect(uv_connect_t *req, int status) {
  tcp_check *c = req->data;
  tcp_end(c, status == 0);
}

static void on_resolved(uv_getaddrinfo_t *gai, int status, struct addrinfo *res) {
  tcp_check *c = gai->data;
  c->resolving = false;
  int rc = status;
  if (!rc && c->w) {
    rc = uv_tcp_init(cn_node_loop(c->w->n), &c->sock);
    if (!rc) {
      c->open = true;
      c->sock.data = c;
      c->req.data = c;
      rc = uv_tcp_connect(&c->req, &c->sock, res->ai_addr, on_connect);
    }
  }
  uv_freeaddrinfo(res);
  if (rc || !c->w) tcp_end(c, false);
}

static void tcp_start(cn_watch *w) {
  tcp_check *c = cn_calloc(1, sizeof *c);
  if (!c) {
    cn_watch_report(w, false);
    return;
  }
  c->w = w;
  c->gai.data = c;
  char port[8];
  snprintf(port, sizeof port, "%u", w->port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  w->tcp = c;
  c->resolving = true;
  if (uv_getaddrinfo(cn_node_loop(w->n), &c->gai, on_resolved, w->host, port, &hints)) {
    c->resolving = false;
    tcp_end(c, false);
  }
}

/* A check that outlived its interval (or its watchdog) is dropped: its callbacks then only clean up. */
static void tcp_abandon(cn_watch *w) {
  tcp_check *c = w->tcp;
  if (!c) return;
  w->tcp = NULL;
  c->w = NULL;
  if (c->open) {
    c->open = false;
    c->closing = true;
    uv_close((uv_handle_t *)&c->sock, tcp_closed); /* a connect under way ends with ECANCELED first */
  } else if (c->resolving) {
    uv_cancel((uv_req_t *)&c->gai);
  }
}

/* ---- The process ------------------------------------------------------------------------------------------------- */

static void watch_tick(cn_proc *self, const cn_term *msg, void *state) {
  cn_watch *w = state;
  if (!cn_is_atom(msg, "tick")) return;
  cn_term *t = cn_mk_atomc(w->n, "tick");
  if (t) cn_send_after(w->n, w->interval_ms, cn_self(self), t, NULL);
  cn_term_free(t);
  if (w->waiting) { /* the last check did not answer within its interval: failed */
    tcp_abandon(w);
    cn_watch_report(w, false);
  }
  w->waiting = true;
  if (w->check) w->check(w, w->ctx);
  else tcp_start(w);
}

static void watch_end(cn_proc *self, const cn_term *reason, void *state) {
  (void)self;
  (void)reason;
  cn_watch *w = state;
  tcp_abandon(w);
  if (w->rule.down) { /* quietly: a graceful stop may have cleared every alarm already */
    cn_term *id = alarm_id(w);
    if (id) cn_alarm_clear(w->n, id);
    cn_term_free(id);
  }
  cn_free(w->name);
  cn_free(w->host);
  cn_free(w);
}

static char *dup_str(const char *s) {
  char *d = s ? cn_malloc(strlen(s) + 1) : NULL;
  if (d) strcpy(d, s);
  return d;
}

int cn_watch_start(cn_node *n, const cn_watch_opts *o, cn_watch **out) {
  if (!n || !o || !o->name || !o->name[0] || (!o->check && (!o->host || !o->host[0] || !o->port))) return CN_EINVAL;
  cn_watch *w = cn_calloc(1, sizeof *w);
  if (!w || !(w->name = dup_str(o->name)) || (o->host && !(w->host = dup_str(o->host)))) {
    if (w) cn_free(w->name);
    cn_free(w);
    return CN_ENOMEM;
  }
  w->n = n;
  w->port = o->port;
  w->check = o->check;
  w->ctx = o->ctx;
  w->interval_ms = o->interval_ms ? o->interval_ms : 1000;
  w->rule.clear_after = o->clear_after ? o->clear_after : 3;
  cn_proc_opts po = {.terminate = watch_end};
  int rc = cn_spawn(n, watch_tick, w, &po, &w->pid);
  cn_term *t = rc ? NULL : cn_mk_atomc(n, "tick");
  if (!rc && (rc = t ? cn_send(n, NULL, w->pid, t) : CN_ENOMEM)) { /* the process owns w now: its end frees it */
    cn_term *r = cn_mk_atomc(n, "kill");
    cn_exit(n, NULL, w->pid, r);
    cn_term_free(r);
  } else if (rc) {
    cn_free(w->name);
    cn_free(w->host);
    cn_free(w);
  }
  cn_term_free(t);
  if (!rc && out) *out = w;
  return rc;
}

void cn_watch_stop(cn_watch *w) {
  if (!w) return;
  cn_term *r = cn_mk_atomc(w->n, "shutdown");
  cn_exit(w->n, NULL, w->pid, r);
  cn_term_free(r);
}
