/* cluster_app.c: the cnode program's discovery flags: --cluster gossip | hosts:a@h1,b@h2 | dns:QUERY |
 * dnssrv:QUERY, with --gossip-* and --dns-* beside it, checked when read (exit 2 with one line) and started once
 * the node is up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_app.h"
#include "cn_cluster.h"

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

static int bad(const char *flag, const char *arg, const char *expected) {
  fprintf(stderr, "cnode: --%s %s: expected %s\n", flag, arg ? arg : "", expected);
  return -1;
}

static int number(const char *flag, const char *arg, long min, long max, long *out) {
  char *end;
  long v = strtol(arg, &end, 10);
  if (!*arg || *end || v < min || v > max) {
    char e[80];
    snprintf(e, sizeof e, "a number from %ld to %ld", min, max);
    return bad(flag, arg, e);
  }
  *out = v;
  return 0;
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

int cluster_app_flag(int opt, const char *arg) {
  long v;
  switch (opt) {
  case CLUSTER_OPT_CLUSTER: return cluster_spec(arg);
  case CLUSTER_OPT_GOSSIP_SECRET:
    gossip_flag = "gossip-secret";
    if (!*arg) return bad(gossip_flag, arg, "a non-empty secret");
    opts.secret = arg;
    return 0;
  case CLUSTER_OPT_GOSSIP_PORT:
    gossip_flag = "gossip-port";
    if (number(gossip_flag, arg, 1, 65535, &v)) return -1;
    opts.gossip_port = (uint16_t)v;
    return 0;
  case CLUSTER_OPT_GOSSIP_MADDR:
    gossip_flag = "gossip-multicast-addr";
    opts.multicast_addr = arg;
    return 0;
  case CLUSTER_OPT_GOSSIP_IFADDR:
    gossip_flag = "gossip-if-addr";
    opts.if_addr = arg;
    return 0;
  case CLUSTER_OPT_GOSSIP_MIF:
    gossip_flag = "gossip-multicast-if";
    opts.multicast_if = arg;
    return 0;
  case CLUSTER_OPT_GOSSIP_BCAST:
    gossip_flag = "gossip-broadcast-only";
    opts.broadcast_only = true;
    return 0;
  case CLUSTER_OPT_DNS_BASENAME:
    dns_flag = "dns-basename";
    if (!*arg || strchr(arg, '@')) return bad(dns_flag, arg, "the node names' part before '@'");
    opts.basename = arg;
    return 0;
  case CLUSTER_OPT_DNS_POLL_MS:
    dns_flag = "dns-poll-ms";
    if (number(dns_flag, arg, 100, 86400000, &v)) return -1;
    opts.poll_ms = (unsigned)v;
    return 0;
  case CLUSTER_OPT_DNS_SERVER:
    dns_flag = "dns-server";
    if (!*arg) return bad(dns_flag, arg, "IP[:PORT],...");
    opts.dns_servers = arg;
    return 0;
  default: return -1;
  }
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

int cluster_app_start(cn_node *n) {
  if (!given) return 0;
  int rc = cn_cluster_start(n, &opts, NULL);
  if (rc) cn_log(n, CN_LOG_ERROR, "cannot start discovery (--cluster): %s", cn_strerror(rc));
  return rc;
}
