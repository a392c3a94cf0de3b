/* metrics.c: /metrics in Prometheus' text exposition format (0.0.4), every name prefixed cnode_: the node's own
 * counters and gauges from the public stats API (cn_node_get_stats, cn_node_conns, cn_node_proc_stats,
 * cn_global_name_count), then the samples of every registered source (Horde here; pg and discovery add theirs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cn_global.h"
#include "ops.h"

enum { MAX_SOURCES = 16 };

struct metrics_out {
  cn_buf *b;
  int rc;
};

static struct {
  metrics_source_fn fn;
  void *ctx;
} sources[MAX_SOURCES];
static size_t nsources;

int metrics_add_source(metrics_source_fn fn, void *ctx) {
  if (nsources == MAX_SOURCES) return CN_ELIMIT;
  sources[nsources].fn = fn;
  sources[nsources].ctx = ctx;
  nsources++;
  return 0;
}

static void put(metrics_out *m, const char *s, size_t len) {
  if (!m->rc) m->rc = cn_buf_append(m->b, s, len);
}

/* A label value as the format wants it: backslash, double quote and newline escaped. */
static void put_label_value(metrics_out *m, const char *v) {
  for (const char *p = v; *p; p++) {
    if (*p == '\\') put(m, "\\\\", 2);
    else if (*p == '"') put(m, "\\\"", 2);
    else if (*p == '\n') put(m, "\\n", 2);
    else put(m, p, 1);
  }
}

void metrics_family(metrics_out *m, const char *name, const char *type, const char *help) {
  if (!m->rc) m->rc = cn_buf_printf(m->b, "# HELP cnode_%s %s\n# TYPE cnode_%s %s\n", name, help, name, type);
}

void metrics_sample(metrics_out *m, const char *name, double value, const char *const *labels) {
  if (!m->rc) m->rc = cn_buf_printf(m->b, "cnode_%s", name);
  for (size_t i = 0; labels && labels[i] && labels[i + 1]; i += 2) {
    put(m, i ? "," : "{", 1);
    put(m, labels[i], strlen(labels[i]));
    put(m, "=\"", 2);
    put_label_value(m, labels[i + 1]);
    put(m, "\"", 1);
  }
  if (labels && labels[0]) put(m, "}", 1);
  if (!m->rc) m->rc = cn_buf_printf(m->b, " %.17g\n", value);
}

/* A family of one sample without labels. */
static void one(metrics_out *m, const char *name, const char *type, const char *help, double v) {
  metrics_family(m, name, type, help);
  metrics_sample(m, name, v, NULL);
}

static void connections(cn_node *n, metrics_out *m) {
  size_t k = cn_node_conns(n, NULL, 0);
  cn_conn_info *ci = calloc(k ? k : 1, sizeof *ci);
  if (!ci) {
    m->rc = CN_ENOMEM;
    return;
  }
  k = cn_node_conns(n, ci, k);
  static const char *const states[] = {"lookup", "connecting", "tls", "handshake", "up", "wait_peer", "closing"};
  metrics_family(m, "connections", "gauge", "Distribution connections by state.");
  for (size_t s = 0; s < sizeof states / sizeof states[0]; s++) {
    size_t c = 0;
    for (size_t i = 0; i < k; i++) c += !strcmp(ci[i].state, states[s]);
    const char *l[] = {"state", states[s], NULL};
    metrics_sample(m, "connections", (double)c, l);
  }
  /* Per peer: the connections that are up (a peer's name is known), whose queues and traffic matter. */
  static const struct {
    const char *name, *type, *help;
  } fam[] = {
      {"peer_queue_bytes", "gauge", "Bytes waiting to be written to the peer."},
      {"peer_bytes_in_total", "counter", "Bytes read from the peer's connection."},
      {"peer_bytes_out_total", "counter", "Bytes written to the peer's connection."},
      {"peer_messages_in_total", "counter", "Messages received from the peer."},
      {"peer_messages_out_total", "counter", "Messages sent to the peer."},
      {"peer_busy_total", "counter", "Senders suspended on the peer's busy queue."},
  };
  for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
    metrics_family(m, fam[f].name, fam[f].type, fam[f].help);
    for (size_t i = 0; i < k; i++) {
      if (!ci[i].node || strcmp(ci[i].state, "up")) continue;
      const double v[] = {(double)ci[i].queue_bytes, (double)ci[i].bytes_in,     (double)ci[i].bytes_out,
                          (double)ci[i].messages_in, (double)ci[i].messages_out, (double)ci[i].busy_suspensions};
      const char *l[] = {"peer", ci[i].node->name, "type", ci[i].hidden ? "hidden" : "visible", NULL};
      metrics_sample(m, fam[f].name, v[f], l);
    }
  }
  size_t q = 0;
  for (size_t i = 0; i < k; i++) q += ci[i].queue_bytes;
  one(m, "dist_queue_bytes", "gauge", "Bytes waiting to be written on all distribution connections.", (double)q);
  free(ci);
}

/* One family of one unlabelled sample. */
typedef struct simple {
  const char *name, *type, *help;
  double v;
} simple;

static void node_stats(cn_node *n, metrics_out *m) {
  cn_node_stats s;
  cn_node_get_stats(n, &s);
  cn_proc_stats p;
  cn_node_proc_stats(n, &p);
  const simple fams[] = {
      {"connections_up_total", "counter", "Connections that came up (nodeups).", (double)s.connections_up},
      {"bytes_in_total", "counter", "Bytes read from distribution sockets.", (double)s.bytes_in},
      {"bytes_out_total", "counter", "Bytes written to distribution sockets.", (double)s.bytes_out},
      {"messages_in_total", "counter", "Distribution messages received (ticks excluded).", (double)s.messages_in},
      {"messages_out_total", "counter", "Distribution messages sent (ticks excluded).", (double)s.messages_out},
      {"dist_busy_total", "counter", "Times a sender was suspended on a busy connection.", (double)s.busy_suspensions},
      {"messages_dropped_total", "counter", "Messages dropped: a peer's queue was at its limit.",
       (double)s.messages_dropped},
      {"connections_refused_total", "counter", "Accepted sockets closed at once: max_connections reached.",
       (double)s.connections_refused},
      {"protocol_errors_total", "counter", "Connections dropped for a bad frame or message.",
       (double)s.protocol_errors},
      {"oversized_messages_total", "counter", "Frames or messages over max_message_size.",
       (double)s.oversized_messages},
      {"tick_timeouts_total", "counter", "Connections dropped by net_ticktime.", (double)s.tick_timeouts},
      {"atoms_refused_total", "counter", "Atoms not created: the table was full.", (double)s.atoms_refused},
      {"processes", "gauge", "Processes alive on the node.", (double)p.processes},
      {"registered_names", "gauge", "Locally registered names.", (double)p.registered},
      {"mailbox_messages", "gauge", "Messages queued in all mailboxes.", (double)p.messages},
      {"mailbox_max", "gauge", "The longest mailbox.", (double)p.max_mailbox},
      {"global_names", "gauge", "Names in the node's table of OTP global names.", (double)cn_global_name_count(n)}};
  for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++) one(m, fams[i].name, fams[i].type, fams[i].help, fams[i].v);
  metrics_family(m, "handshake_failures_total", "counter", "Failed connection setups by cause.");
  for (int i = 0; i < CN_SETUP_FAIL_COUNT; i++) {
    const char *l[] = {"reason", cn_setup_fail_name(i), NULL};
    metrics_sample(m, "handshake_failures_total", (double)s.setup_failures[i], l);
  }
}

int metrics_write(cn_node *n, cn_buf *out) {
  metrics_out m = {.b = out};
  metrics_family(&m, "info", "gauge", "The node: its name and cnode's version.");
  const char *l[] = {"node", cn_node_name(n)->name, "version", cn_version(), NULL};
  metrics_sample(&m, "info", 1, l);
  node_stats(n, &m);
  connections(n, &m);
  for (size_t i = 0; i < nsources && !m.rc; i++) sources[i].fn(n, &m, sources[i].ctx);
  return m.rc;
}
