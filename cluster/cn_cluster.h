/* cn_cluster.h: cluster discovery, compatible with libcluster's strategies: a node finds its peers and connects to
 * them by itself (Gossip: UDP multicast heartbeats; Epmd: a static host list; DNSPoll / Kubernetes.DNS: A/AAAA
 * records; Kubernetes.DNSSRV: SRV records). Built on the public API of cnode.h only; runs on the node's loop.
 *
 * Every strategy logs each node it connects and why, each failed connect with its reason and the back-off before
 * the next try, and each node a DNS answer no longer lists (disconnected, as libcluster does). */
#ifndef CN_CLUSTER_H
#define CN_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "cnode.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cn_cluster cn_cluster;

typedef enum cn_cluster_strategy {
  CN_CLUSTER_GOSSIP = 1, /* Cluster.Strategy.Gossip */
  CN_CLUSTER_HOSTS,      /* Cluster.Strategy.Epmd: hosts */
  CN_CLUSTER_DNS,        /* Cluster.Strategy.DNSPoll / Kubernetes.DNS: query's A (and AAAA) records */
  CN_CLUSTER_DNSSRV      /* Cluster.Strategy.Kubernetes.DNSSRV: query's SRV records */
} cn_cluster_strategy;

/* Libcluster's Gossip defaults. */
#define CN_CLUSTER_GOSSIP_PORT 45892
#define CN_CLUSTER_GOSSIP_ADDR "233.252.1.32"
#define CN_CLUSTER_DNS_POLL_MS 5000

/* Options: zero-initialise, set strategy and what it needs; zero fields take the defaults shown. Strings are
 * borrowed for the call (cn_cluster_start copies them). */
typedef struct cn_cluster_opts {
  cn_cluster_strategy strategy;
  /* Gossip (libcluster's config names in brackets). */
  uint16_t gossip_port;       /* [port] 45892 */
  const char *multicast_addr; /* [multicast_addr] "233.252.1.32"; the broadcast address with broadcast_only; an
                                   IPv6 group (ff05::...) makes the heartbeats IPv6 (C nodes only: libcluster's
                                   Gossip is IPv4) */
  const char *if_addr;        /* [if_addr] the address the socket binds: "0.0.0.0" ("::" for an IPv6 group) */
  const char *multicast_if;   /* [multicast_if] the interface address multicast goes out of and joins on; NULL:
                                   the system's choice (joins on 0.0.0.0, as libcluster) */
  int multicast_ttl;          /* [multicast_ttl] 1 */
  bool broadcast_only;        /* [broadcast_only] no multicast: heartbeats go to multicast_addr as a broadcast */
  const char *secret;         /* [secret] NULL: clear heartbeats. Else AES-256-CBC, key SHA-256(secret), a random
                                   IV before each heartbeat, as libcluster; clear heartbeats are then ignored */
  unsigned heartbeat_max_ms;  /* a heartbeat every 1..this many ms, uniformly at random: 5000, as libcluster */
  /* Hosts: node names separated by commas ("a@h1,b@h2"); the node's own name is skipped. */
  const char *hosts;
  /* DNS and DNSSRV. */
  const char *query;       /* the name to ask ("my-svc.my-ns.svc.cluster.local") */
  const char *basename;    /* DNS: node names are basename@ip; DNSSRV: basename@target. Default: the node's
                                   own name before '@' */
  unsigned poll_ms;        /* 5000 */
  const char *dns_servers; /* NULL: the system's resolver (/etc/resolv.conf). Else "ip[:port],..." (c-ares'
                                   csv form, "[::1]:5353" for IPv6 with a port) */
  /* Back-off after a failed connect to one node: backoff_min_ms (1000), doubling up to backoff_max_ms (30000). */
  unsigned backoff_min_ms, backoff_max_ms;
} cn_cluster_opts;

/* Starts discovery on node n; call it once the node has started (from cn_node_start's callback): heartbeats and
 * connects go out at once, and a peer that hears us before we listen fails to connect. Several instances may run
 * on one node (libcluster's topologies). The node keeps each: it is stopped and freed with the node (its handles
 * do not keep the loop alive; with a loop of your own, run it once more after cn_node_free), or earlier by
 * cn_cluster_stop.
 * *out (may be NULL) is borrowed. CN_EINVAL on a bad option (a log line says which and why), CN_EIO when the
 * socket or resolver cannot be set up (a log line says why), CN_ENOMEM. On error nothing is left running. */
CN_EXPORT int cn_cluster_start(cn_node *n, const cn_cluster_opts *opts, cn_cluster **out);
/* Stops discovery: no more heartbeats, polls or connects (connections made stay). c is freed once its handles
 * have closed, on the node's loop. */
CN_EXPORT void cn_cluster_stop(cn_cluster *c);
/* The strategy's name as libcluster writes it ("gossip", "hosts", "dns", "dnssrv"). */
CN_EXPORT const char *cn_cluster_strategy_name(cn_cluster_strategy s);

/* Counters of one instance (for metrics). */
typedef struct cn_cluster_stats {
  uint64_t heartbeats_sent, heartbeats_heard, heartbeats_ignored; /* ignored: malformed, wrong secret, ourselves */
  uint64_t dns_polls, dns_failures;
  uint64_t connects, connect_failures, disconnects;
  uint64_t known_nodes; /* nodes the strategy wants connected now */
} cn_cluster_stats;
CN_EXPORT void cn_cluster_get_stats(const cn_cluster *c, cn_cluster_stats *out);

#ifdef __cplusplus
}
#endif
#endif
