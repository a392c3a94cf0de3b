/* ops.h: the cnode program's operations parts: the HTTP endpoint (http.c: libmicrohttpd driven from the node's
 * loop), the Prometheus text of /metrics (metrics.c), and readiness, SIGTERM's graceful shutdown and the signals
 * (shutdown.c). Other program parts plug in here: a metrics source, a readiness hold, a shutdown step. */
#ifndef CNODE_OPS_H
#define CNODE_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cnode.h"

/* ---- http.c: an HTTP/1.1 server on a libuv loop (GET and HEAD only) ------------------------------------------- */

typedef struct http_srv http_srv;
/* A request: fills body (text) and *ctype (static), returns the status code. Runs on the loop's thread. */
typedef int (*http_route_fn)(const char *path, cn_buf *body, const char **ctype, void *ctx);
/* Listens on addr (numeric IPv4/IPv6; NULL: every IPv4 address) and port (0: any free one); log may be NULL.
 * 0 and *out, or a CN_E* code (CN_EIO: cannot listen there) after a line on log. */
int http_start(cn_node *n, const char *addr, uint16_t port, http_route_fn route, void *ctx, http_srv **out);
/* The port it listens on. */
uint16_t http_port(const http_srv *h);
/* Stops listening and closes every connection; h is freed once its handles have closed (the loop must turn). */
void http_close(http_srv *h);

/* ---- metrics.c: /metrics in Prometheus' text format (version 0.0.4) ----------------------------------------- */

typedef struct metrics_out metrics_out;
/* A family header (# HELP, # TYPE: "counter" or "gauge"); then its samples. name without the cnode_ prefix. */
void metrics_family(metrics_out *m, const char *name, const char *type, const char *help);
/* One sample of the last family: labels is NULL or pairs of name and value (escaped here), ended by NULL. */
void metrics_sample(metrics_out *m, const char *name, double value, const char *const *labels);
/* A source of samples, asked on every scrape, in the order of registration (Horde, pg, discovery...). */
typedef void (*metrics_source_fn)(cn_node *n, metrics_out *m, void *ctx);
int metrics_add_source(metrics_source_fn fn, void *ctx);
/* The whole text: the node's own families, then every source's. 0, or CN_ENOMEM. */
int metrics_write(cn_node *n, cn_buf *out);

/* ---- shutdown.c: readiness, signals, graceful shutdown ------------------------------------------------------- */

typedef struct ops_opts {
  const char *http_addr;  /* NULL: 0.0.0.0 */
  uint16_t http_port;     /* 0: no HTTP endpoint */
  unsigned drain_delay_s; /* SIGTERM: how long /readyz says 503 before anything stops */
  unsigned shutdown_s;    /* the steps after the drain must finish within this, else the node stops at once */
} ops_opts;
/* Sets up SIGINT and SIGTERM and, with a port, the HTTP endpoint on n's loop. 0 or a CN_E* code. */
int ops_start(cn_node *n, const ops_opts *o);
/* The node failed to start: closes what ops_start opened, so the loop can end. */
void ops_abort(void);
/* Closes the HTTP endpoint once the node has stopped (then turn the loop once more). */
void ops_close(void);
/* The program's exit status as shutdown.c sees it: 1 when the shutdown timed out, else 0. */
int ops_status(void);

/* Readiness: /readyz answers 200 once the node has started, no hold is left and every Horde member has synced once
 * (metrics' sources are asked: ops_ready_check), until SIGTERM. A part that must finish something first (discovery:
 * its first connections) holds readiness under a name and releases it when done. */
void ops_ready_hold(const char *what);
void ops_ready_release(const char *what);
void ops_started(void);
/* A readiness condition asked on every /readyz: true when met, else false and *why (static text). */
typedef bool (*ops_ready_fn)(cn_node *n, const char **why, void *ctx);
int ops_ready_check(ops_ready_fn fn, void *ctx);

/* A step of the graceful shutdown: it runs once, then calls done(done_ctx) exactly once (at once or later, from
 * the loop). Steps run in their phase's order, phases in this order, each logged with its time. */
typedef enum ops_phase {
  OPS_HANDOVER = 0, /* Horde.DynamicSupervisor members relinquish their children */
  OPS_REGISTRY,     /* Horde.Registry registrations of local processes are dropped */
  OPS_GROUPS,       /* pg groups are left (pg registers its step here) */
  OPS_NAMES,        /* global names of local processes are released (shutdown.c's own step) */
  OPS_ALARMS,       /* alarms are cleared here and on the alarm nodes (resil_app.c) */
  OPS_PHASES
} ops_phase;
typedef void (*ops_step_fn)(cn_node *n, void (*done)(void *done_ctx), void *done_ctx, void *ctx);
int ops_add_step(ops_phase phase, const char *what, ops_step_fn fn, void *ctx);

#endif
