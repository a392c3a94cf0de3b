/* cluster_app.c: the cnode program's discovery flags: --cluster gossip | hosts:a@h1,b@h2 | dns:QUERY |
 * dnssrv:QUERY, with --gossip-* and --dns-* beside it, checked when read (exit 2 with one line) and started once
 * the node is up. */
#include <stdio.h>
#include <string.h>

#include "cluster_app.h"
#include "cn_cluster.h"
#include "env.h"
#include "ops.h"

const char cluster_app_usage[] =
    "  --cluster gossip | hosts:a@h1,b@h2 | dns:QUERY | dnssrv:QUERY: find the cluster as libcluster's Gossip, Epmd,\n"
    "  DNSPoll/Kubernetes.DNS (A/AAAA records -> BASENAME@ip) or Kubernetes.DNSSRV (SRV -> BASENAME@target) do.\n"
    "  Gossip: --gossip-port P (45892), --gossip-multicast-addr A (233.252.1.32), --gossip-if-addr A (0.0.0.0),\n"
    "  --gossip-multicast-if A, --gossip-broadcast-only, --gossip-secret S (libcluster's secret).\n"
    "  DNS: --dns-basename B (default: this node's name before '@'), --dns-poll-ms N (5000),\n"
    "  --dns-server IP[:PORT],... (default: /etc/resolv.conf).\n";

static cn_cluster_opts opts;
static bool given;              /* --cluster */
static const char *gossip_flag; /* the first --gossip-* flag seen */
static const char *dns_flag;    /* the first --dns-* flag seen */

/* A bad value: one line naming the flag, or the CNODE_* variable it came from (env.c), and -1. */
static int bad(const char *flag, const char *arg, const char *expected) {
  env_bad(flag, arg, expected);
  return -1;
}

static int number(const char *flag, const char *arg, unsigned long min, unsigned long max, unsigned long *out) {
  if (env_uint(arg, min, max, out)) return 0;
  char e[80];
  snprintf(e, sizeof e, "a number from %lu to %lu", min, max);
  return bad(flag, arg, e);
}

static int cluster_spec(const char *arg) {
  if (!strcmp(arg, "gossip")) {
    opts.strategy = CN_CLUSTER_GOSSIP;
  } else if (!strncmp(arg, "hosts:", 6) && arg[6]) {
    opts.strategy = CN_CLUSTER_HOSTS;
    opts.hosts = arg + 6;
  } else if (!strncmp(arg, "dns:", 4) && arg[4]) {
    opts.strategy = CN_CLUSTER_DNS;
    opts.query = arg + 4;
  } else if (!strncmp(arg, "dnssrv:", 7) && arg[7]) {
    opts.strategy = CN_CLUSTER_DNSSRV;
    opts.query = arg + 7;
  } else {
    return bad("cluster", arg, "gossip, hosts:NAME@HOST,..., dns:QUERY or dnssrv:QUERY");
  }
  given = true;
  return 0;
}

/* The --gossip-* and --dns-* flags: where each value goes and what it must be. */
typedef enum { STR, NONEMPTY, BASENAME, BOOL, PORT, POLL_MS } kind;
typedef struct flag {
  int opt;
  const char *name;
  bool dns; /* a --dns-* flag, else a --gossip-* one */
  kind k;
  const char **str; /* STR, NONEMPTY, BASENAME */
} flag;

static const flag flags[] = {
    {CLUSTER_OPT_GOSSIP_SECRET, "gossip-secret", false, NONEMPTY, &opts.secret},
    {CLUSTER_OPT_GOSSIP_PORT, "gossip-port", false, PORT, NULL},
    {CLUSTER_OPT_GOSSIP_MADDR, "gossip-multicast-addr", false, STR, &opts.multicast_addr},
    {CLUSTER_OPT_GOSSIP_IFADDR, "gossip-if-addr", false, STR, &opts.if_addr},
    {CLUSTER_OPT_GOSSIP_MIF, "gossip-multicast-if", false, STR, &opts.multicast_if},
    {CLUSTER_OPT_GOSSIP_BCAST, "gossip-broadcast-only", false, BOOL, NULL},
    {CLUSTER_OPT_DNS_BASENAME, "dns-basename", true, BASENAME, &opts.basename},
    {CLUSTER_OPT_DNS_POLL_MS, "dns-poll-ms", true, POLL_MS, NULL},
    {CLUSTER_OPT_DNS_SERVER, "dns-server", true, NONEMPTY, &opts.dns_servers},
};

int cluster_app_flag(int opt, const char *arg) {
  if (opt == CLUSTER_OPT_CLUSTER) return cluster_spec(arg);
  const flag *f = flags;
  while (f < flags + sizeof flags / sizeof *flags && f->opt != opt) f++;
  if (f == flags + sizeof flags / sizeof *flags) return -1;
  *(f->dns ? &dns_flag : &gossip_flag) = f->name;
  unsigned long v;
  switch (f->k) {
  case NONEMPTY:
    if (!*arg) return bad(f->name, arg, "a value that is not empty");
    break;
  case BASENAME:
    if (!*arg || strchr(arg, '@')) return bad(f->name, arg, "the node names' part before '@'");
    break;
  case BOOL: opts.broadcast_only = true; return 0;
  case PORT:
    if (number(f->name, arg, 1, 65535, &v)) return -1;
    opts.gossip_port = (uint16_t)v;
    return 0;
  case POLL_MS:
    if (number(f->name, arg, 100, 86400000, &v)) return -1;
    opts.poll_ms = (unsigned)v;
    return 0;
  default: break;
  }
  *f->str = arg;
  return 0;
}

int cluster_app_check(void) {
  bool dns = opts.strategy == CN_CLUSTER_DNS || opts.strategy == CN_CLUSTER_DNSSRV;
  if (gossip_flag && opts.strategy != CN_CLUSTER_GOSSIP) {
    fprintf(stderr, "cnode: --%s needs --cluster gossip\n", gossip_flag);
    return -1;
  }
  if (dns_flag && !dns) {
    fprintf(stderr, "cnode: --%s needs --cluster dns:QUERY or dnssrv:QUERY\n", dns_flag);
    return -1;
  }
  return 0;
}

/* /readyz under --cluster: "connected as configured" is read as: the strategy knows no other node (the first node
 * of a cluster), or the node is connected to at least one visible node. */
static bool discovery_ready(cn_node *n, const char **why, void *ctx) {
  cn_cluster_stats st;
  cn_cluster_get_stats(ctx, &st);
  if (st.known_nodes == 0 || cn_nodes(n, CN_NODES_VISIBLE, NULL, 0) > 0) return true;
  *why = "discovery: no node connected yet";
  return false;
}

int cluster_app_start(cn_node *n) {
  if (!given) return 0;
  cn_cluster *c;
  int rc = cn_cluster_start(n, &opts, &c);
  if (!rc) rc = ops_ready_check(discovery_ready, c);
  if (rc) cn_log(n, CN_LOG_ERROR, "cannot start discovery (--cluster): %s", cn_strerror(rc));
  return rc;
}
