/* shutdown.c: the cnode program's readiness, its signals and SIGTERM's graceful shutdown (what Kubernetes expects
 * of a pod): /readyz turns 503 at once, the drain delay lets load balancers stop routing, then the registered steps
 * run phase by phase (Horde hand-over, Horde registrations, pg groups, global names), then the connections close and
 * the program exits 0, all within the shutdown timeout; a second SIGTERM or a SIGINT stops at once. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cn_global.h"
#include "ops.h"

enum { MAX_STEPS = 16, MAX_HOLDS = 16, MAX_CHECKS = 8 };

static struct {
  cn_node *n;
  ops_opts o;
  uv_signal_t sigint, sigterm;
  bool signals_open;
  uv_timer_t drain, limit;
  bool timers_open;
  http_srv *http;
  bool started, stopping, stopped;
  int status;
  uint64_t t0; /* SIGTERM's arrival, ms on the loop's clock */
  struct {
    ops_phase phase;
    const char *what;
    ops_step_fn fn;
    void *ctx;
  } steps[MAX_STEPS];
  size_t nsteps, next_step;
  const char *holds[MAX_HOLDS];
  struct {
    ops_ready_fn fn;
    void *ctx;
  } checks[MAX_CHECKS];
  size_t nchecks;
} S;

/* ---- Readiness ---------------------------------------------------------------------------------------------- */

void ops_ready_hold(const char *what) {
  for (size_t i = 0; i < MAX_HOLDS; i++)
    if (!S.holds[i]) {
      S.holds[i] = what;
      return;
    }
}

void ops_ready_release(const char *what) {
  for (size_t i = 0; i < MAX_HOLDS; i++)
    if (S.holds[i] && !strcmp(S.holds[i], what)) S.holds[i] = NULL;
}

void ops_started(void) { S.started = true; }

int ops_ready_check(ops_ready_fn fn, void *ctx) {
  if (S.nchecks == MAX_CHECKS) return CN_ELIMIT;
  S.checks[S.nchecks].fn = fn;
  S.checks[S.nchecks].ctx = ctx;
  S.nchecks++;
  return 0;
}

/* True when ready; else *why says what is missing. */
static bool ready(const char **why) {
  if (S.stopping) return *why = "shutting down", false;
  if (!S.started) return *why = "starting", false;
  for (size_t i = 0; i < MAX_HOLDS; i++)
    if (S.holds[i]) return *why = S.holds[i], false;
  for (size_t i = 0; i < S.nchecks; i++)
    if (!S.checks[i].fn(S.n, why, S.checks[i].ctx)) return false;
  return true;
}

static int route(const char *path, cn_buf *body, const char **ctype, void *ctx) {
  (void)ctx;
  if (!strcmp(path, "/healthz")) return cn_buf_printf(body, "ok\n") ? 500 : 200;
  if (!strcmp(path, "/readyz")) {
    const char *why = NULL;
    bool ok = ready(&why);
    if (ok ? cn_buf_printf(body, "ready\n") : cn_buf_printf(body, "not ready: %s\n", why)) return 500;
    return ok ? 200 : 503;
  }
  if (!strcmp(path, "/metrics")) {
    *ctype = "text/plain; version=0.0.4; charset=utf-8";
    return metrics_write(S.n, body) ? 500 : 200;
  }
  return cn_buf_printf(body, "not found: /healthz, /readyz or /metrics\n") ? 500 : 404;
}

/* ---- Shutdown ----------------------------------------------------------------------------------------------- */

int ops_add_step(ops_phase phase, const char *what, ops_step_fn fn, void *ctx) {
  if (S.nsteps == MAX_STEPS || phase >= OPS_PHASES) return CN_ELIMIT;
  size_t i = S.nsteps++;
  while (i > 0 && S.steps[i - 1].phase > phase) { /* stable insertion by phase */
    S.steps[i] = S.steps[i - 1];
    i--;
  }
  S.steps[i].phase = phase;
  S.steps[i].what = what;
  S.steps[i].fn = fn;
  S.steps[i].ctx = ctx;
  return 0;
}

/* One line per step, with the time since SIGTERM. */
static void say(const char *fmt, const char *what) {
  uint64_t ms = uv_now(cn_node_loop(S.n)) - S.t0;
  char line[300];
  snprintf(line, sizeof line, fmt, what);
  printf("cnode: shutdown +%llu.%03llu s: %s\n", (unsigned long long)(ms / 1000), (unsigned long long)(ms % 1000),
         line);
}

static void close_signals(void) {
  if (!S.signals_open) return;
  S.signals_open = false;
  uv_close((uv_handle_t *)&S.sigint, NULL);
  uv_close((uv_handle_t *)&S.sigterm, NULL);
}

static void close_timers(void) {
  if (!S.timers_open) return;
  S.timers_open = false;
  uv_close((uv_handle_t *)&S.drain, NULL);
  uv_close((uv_handle_t *)&S.limit, NULL);
}

/* The end of every path: the node closes its connections and cn_node_run returns. */
static void stop_now(const char *why) {
  if (S.stopped) return;
  S.stopped = true;
  if (S.t0) say("%s", why);
  close_signals();
  close_timers();
  cn_node_stop(S.n);
}

static void next_step(void);

static void on_next(uv_timer_t *t) {
  (void)t;
  next_step();
}

/* A step's done: the next one on the loop's next turn (a step may finish inside its own call). */
static void step_done(void *ctx) {
  size_t i = (size_t)(uintptr_t)ctx;
  if (S.stopped || i + 1 != S.next_step) return; /* late, after the timeout or a second signal */
  say("%s: done", S.steps[i].what);
  uv_timer_start(&S.drain, on_next, 0, 0);
}

static void next_step(void) {
  if (S.stopped) return;
  if (S.next_step == S.nsteps) {
    stop_now("closing connections and stopping");
    return;
  }
  size_t i = S.next_step++;
  say("%s", S.steps[i].what);
  S.steps[i].fn(S.n, step_done, (void *)(uintptr_t)i, S.steps[i].ctx);
}

static void on_limit(uv_timer_t *t) {
  (void)t;
  S.status = 1;
  char why[120];
  snprintf(why, sizeof why, "--shutdown-timeout (%u s) reached during \"%s\": stopping at once", S.o.shutdown_s,
           S.next_step ? S.steps[S.next_step - 1].what : "?");
  stop_now(why);
}

static void on_drained(uv_timer_t *t) {
  if (S.stopped) return;
  say("%s", "drain delay over: running the shutdown steps");
  (void)t;
  uv_timer_start(&S.limit, on_limit, (uint64_t)S.o.shutdown_s * 1000, 0);
  next_step();
}

static void on_signal(uv_signal_t *s, int signum) {
  (void)s;
  const char *name = signum == SIGINT ? "SIGINT" : "SIGTERM";
  if (signum == SIGINT || S.stopping || !S.started) {
    if (!S.t0) S.t0 = uv_now(cn_node_loop(S.n));
    printf("cnode: %s received, stopping at once\n", name);
    stop_now("stopping at once");
    return;
  }
  S.stopping = true; /* /readyz says 503 from here on */
  S.t0 = uv_now(cn_node_loop(S.n));
  printf("cnode: SIGTERM received, stopping gracefully (a second SIGTERM or SIGINT stops at once)\n");
  char what[120];
  snprintf(what, sizeof what, "not ready (/readyz 503); draining for %u s (--drain-delay)", S.o.drain_delay_s);
  say("%s", what);
  uv_timer_start(&S.drain, on_drained, (uint64_t)S.o.drain_delay_s * 1000, 0);
}

/* The global step: the names of local processes are unregistered one by one from a short-lived process. */
typedef struct releaser {
  void (*done)(void *);
  void *done_ctx;
  cn_term *names;
  uint32_t next;
} releaser;

static void release_next(cn_proc *self, int status, void *ctx) {
  releaser *r = ctx;
  const cn_term *l = r->names;
  while (status != CN_ECLOSED && l && l->type == CN_LIST && r->next < l->v.list.len) {
    const cn_term *name = &l->v.list.e[r->next++];
    if (!cn_global_unregister_name(self, name, release_next, r)) return;
  }
  r->done(r->done_ctx);
  cn_term_free(r->names);
  free(r);
  if (status != CN_ECLOSED) cn_proc_exit(self, NULL);
}

static void releaser_msg(cn_proc *self, const cn_term *msg, void *state) {
  (void)msg;
  release_next(self, 0, state);
}

static void global_step(cn_node *n, void (*done)(void *), void *done_ctx, void *ctx) {
  (void)ctx;
  releaser *r = calloc(1, sizeof *r);
  cn_pid pid;
  cn_term *go = cn_mk_atomc(n, "go");
  if (!r || !go || !(r->names = cn_global_local_names(n)) || cn_spawn(n, releaser_msg, r, NULL, &pid) ||
      cn_send(n, NULL, pid, go)) {
    if (r) cn_term_free(r->names);
    free(r);
    cn_term_free(go);
    done(done_ctx);
    return;
  }
  cn_term_free(go);
  r->done = done;
  r->done_ctx = done_ctx;
  size_t k = r->names->type == CN_LIST ? r->names->v.list.len : 0;
  if (k) cn_log(n, CN_LOG_INFO, "releasing %zu global name%s", k, k == 1 ? "" : "s");
}

int ops_start(cn_node *n, const ops_opts *o) {
  S.n = n;
  S.o = *o;
  uv_loop_t *loop = cn_node_loop(n);
  uv_signal_init(loop, &S.sigint);
  uv_signal_init(loop, &S.sigterm);
  uv_signal_start(&S.sigint, on_signal, SIGINT);
  uv_signal_start(&S.sigterm, on_signal, SIGTERM);
  S.signals_open = true;
  uv_timer_init(loop, &S.drain);
  uv_timer_init(loop, &S.limit);
  S.timers_open = true;
  /* None of these keeps the loop alive: cn_node_run returns once the node has stopped, whatever the path. */
  uv_unref((uv_handle_t *)&S.sigint);
  uv_unref((uv_handle_t *)&S.sigterm);
  uv_unref((uv_handle_t *)&S.drain);
  uv_unref((uv_handle_t *)&S.limit);
  int rc = ops_add_step(OPS_NAMES, "releasing global names", global_step, NULL);
  if (!rc && o->http_port) {
    rc = http_start(n, o->http_addr, o->http_port, route, NULL, &S.http);
    if (!rc)
      cn_log(n, CN_LOG_INFO, "http: /healthz, /readyz and /metrics on %s port %u",
             o->http_addr ? o->http_addr : "0.0.0.0", http_port(S.http));
  }
  return rc;
}

void ops_abort(void) {
  S.status = 1;
  stop_now("cannot start");
}

void ops_close(void) {
  close_signals();
  close_timers();
  http_close(S.http);
  S.http = NULL;
}

int ops_status(void) { return S.status; }
