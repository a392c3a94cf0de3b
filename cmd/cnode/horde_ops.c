/* horde_ops.c: the cnode program's Horde members in operations: their /metrics samples (registry keys, supervisor
 * children, CRDT sync rounds and keys), /readyz's wait for each member's first sync, and SIGTERM's two Horde steps
 * (the supervisors hand their children over; the registries drop the registrations of local processes). */
#include <stdlib.h>

#include "horde.h"
#include "horde_app.h"
#include "ops.h"

/* After the registrations are dropped, the CRDTs get this long to send the removals before connections close. */
enum { SETTLE_MS = 500 };

/* The CRDT of member i (registries first, then supervisors), with its member's name; false past the last one. */
static bool crdt_at(size_t i, const char **name, cn_crdt **c) {
  cn_horde_registry *r = NULL;
  cn_horde_sup *s = NULL;
  size_t k = 0;
  while (hreg_at(k, name, &r)) k++;
  if (i < k) {
    hreg_at(i, name, &r);
    *c = r ? cn_horde_registry_crdt(r) : NULL;
    return true;
  }
  if (!hsup_at(i - k, name, &s)) return false;
  *c = s ? cn_horde_supervisor_crdt(s) : NULL;
  return true;
}

static void horde_metrics(cn_node *n, metrics_out *m, void *ctx) {
  (void)n, (void)ctx;
  const char *name;
  cn_horde_registry *r;
  cn_horde_sup *s;
  cn_crdt *c;
  metrics_family(m, "horde_registry_keys", "gauge", "Keys in the Horde.Registry member's table (every member's).");
  for (size_t i = 0; hreg_at(i, &name, &r); i++) {
    const char *l[] = {"registry", name, NULL};
    if (r) metrics_sample(m, "horde_registry_keys", (double)cn_horde_count(r), l);
  }
  metrics_family(m, "horde_supervisor_children", "gauge", "Children the Horde.DynamicSupervisor member runs here.");
  for (size_t i = 0; hsup_at(i, &name, &s); i++) {
    const char *l[] = {"supervisor", name, NULL};
    if (s) metrics_sample(m, "horde_supervisor_children", (double)cn_horde_supervisor_count(s), l);
  }
  static const char *const fam[][3] = {
      {"crdt_sync_rounds_total", "counter", "Sync rounds the member's CRDT began (one per neighbour per tick)."},
      {"crdt_keys", "gauge", "Keys in the member's CRDT."},
      {"crdt_messages_in_total", "counter", "Messages the member's CRDT received."},
      {"crdt_messages_out_total", "counter", "Messages the member's CRDT sent."},
      {"crdt_synced", "gauge", "1 once the member's CRDT has synced with a neighbour (or found none)."}};
  for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
    metrics_family(m, fam[f][0], fam[f][1], fam[f][2]);
    for (size_t i = 0; crdt_at(i, &name, &c); i++) {
      if (!c) continue;
      cn_crdt_stats st;
      cn_crdt_get_stats(c, &st);
      const double v[] = {(double)st.syncs_started, (double)st.keys, (double)st.msgs_received, (double)st.msgs_sent,
                          st.synced ? 1 : 0};
      const char *l[] = {"member", name, NULL};
      metrics_sample(m, fam[f][0], v[f], l);
    }
  }
}

/* /readyz waits for every running member's first sync. */
static bool horde_synced(cn_node *n, const char **why, void *ctx) {
  (void)n, (void)ctx;
  const char *name;
  cn_crdt *c;
  for (size_t i = 0; crdt_at(i, &name, &c); i++) {
    cn_crdt_stats st;
    if (!c) continue;
    cn_crdt_get_stats(c, &st);
    if (!st.synced) return *why = "a Horde member has not synced yet", false;
  }
  return true;
}

static void handover_step(cn_node *n, void (*done)(void *), void *done_ctx, void *ctx) {
  (void)ctx;
  hsup_shutdown(n, done, done_ctx);
}

/* The registrations of local processes, collected before any is removed (removing changes the table). */
typedef struct local_regs {
  cn_node *n;
  size_t k, cap;
  cn_term **keys;
  cn_pid *pids;
} local_regs;

static bool collect(const cn_term *key, cn_pid pid, const cn_term *value, const cn_term *member, void *ctx) {
  (void)value, (void)member;
  local_regs *lr = ctx;
  if (pid.node != cn_node_name(lr->n)) return true;
  if (lr->k == lr->cap) {
    size_t cap = lr->cap ? 2 * lr->cap : 16;
    cn_term **keys = realloc(lr->keys, cap * sizeof *keys);
    if (keys) lr->keys = keys;
    cn_pid *pids = keys ? realloc(lr->pids, cap * sizeof *pids) : NULL;
    if (!pids) return false;
    lr->pids = pids;
    lr->cap = cap;
  }
  lr->keys[lr->k] = cn_term_copy(key);
  lr->pids[lr->k] = pid;
  if (lr->keys[lr->k]) lr->k++;
  return true;
}

static struct {
  uv_timer_t t;
  bool open;
  void (*done)(void *);
  void *done_ctx;
} settle;

static void on_settled(uv_timer_t *t) {
  (void)t;
  settle.done(settle.done_ctx);
}

static void registry_step(cn_node *n, void (*done)(void *), void *done_ctx, void *ctx) {
  (void)ctx;
  const char *name;
  cn_horde_registry *r;
  size_t dropped = 0;
  for (size_t i = 0; hreg_at(i, &name, &r); i++) {
    if (!r) continue;
    local_regs lr = {.n = n};
    cn_horde_foreach(r, collect, &lr);
    for (size_t j = 0; j < lr.k; j++) {
      dropped += cn_horde_unregister(r, lr.pids[j], lr.keys[j]) == 0;
      cn_term_free(lr.keys[j]);
    }
    free(lr.keys);
    free(lr.pids);
    if (cn_horde_registry_crdt(r)) cn_crdt_sync_now(cn_horde_registry_crdt(r));
  }
  cn_log(n, CN_LOG_INFO, "dropped %zu Horde registration%s of local processes", dropped, dropped == 1 ? "" : "s");
  if (!dropped || settle.open) {
    done(done_ctx);
    return;
  }
  settle.done = done;
  settle.done_ctx = done_ctx;
  uv_timer_init(cn_node_loop(n), &settle.t);
  uv_unref((uv_handle_t *)&settle.t);
  settle.open = true;
  uv_timer_start(&settle.t, on_settled, SETTLE_MS, 0);
}

int horde_ops_init(void) {
  int rc = metrics_add_source(horde_metrics, NULL);
  if (!rc) rc = ops_ready_check(horde_synced, NULL);
  if (!rc) rc = ops_add_step(OPS_HANDOVER, "handing Horde children over (relinquish)", handover_step, NULL);
  if (!rc) rc = ops_add_step(OPS_REGISTRY, "dropping Horde registrations", registry_step, NULL);
  return rc;
}
