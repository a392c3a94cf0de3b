/* cluster_app.h: the cnode program's discovery flags (--cluster and the --gossip-* / --dns-* flags), read into
 * cn_cluster_opts and started once the node is up (cluster/'s cn_cluster_start). */
#ifndef CNODE_CLUSTER_APP_H
#define CNODE_CLUSTER_APP_H

#include <getopt.h>

#include "cnode.h"

/* getopt_long values of the flags (above every character). */
enum {
  CLUSTER_OPT_CLUSTER = 0x200,
  CLUSTER_OPT_GOSSIP_SECRET,
  CLUSTER_OPT_GOSSIP_PORT,
  CLUSTER_OPT_GOSSIP_MADDR,
  CLUSTER_OPT_GOSSIP_IFADDR,
  CLUSTER_OPT_GOSSIP_MIF,
  CLUSTER_OPT_GOSSIP_BCAST,
  CLUSTER_OPT_DNS_BASENAME,
  CLUSTER_OPT_DNS_POLL_MS,
  CLUSTER_OPT_DNS_SERVER,
  CLUSTER_OPT_LAST = CLUSTER_OPT_DNS_SERVER
};

/* The rows of main's option table. */
#define CLUSTER_APP_OPTIONS                                                                                            \
  {"cluster", required_argument, 0, CLUSTER_OPT_CLUSTER},                                                              \
      {"gossip-secret", required_argument, 0, CLUSTER_OPT_GOSSIP_SECRET},                                              \
      {"gossip-port", required_argument, 0, CLUSTER_OPT_GOSSIP_PORT},                                                  \
      {"gossip-multicast-addr", required_argument, 0, CLUSTER_OPT_GOSSIP_MADDR},                                       \
      {"gossip-if-addr", required_argument, 0, CLUSTER_OPT_GOSSIP_IFADDR},                                             \
      {"gossip-multicast-if", required_argument, 0, CLUSTER_OPT_GOSSIP_MIF},                                           \
      {"gossip-broadcast-only", no_argument, 0, CLUSTER_OPT_GOSSIP_BCAST},                                             \
      {"dns-basename", required_argument, 0, CLUSTER_OPT_DNS_BASENAME},                                                \
      {"dns-poll-ms", required_argument, 0, CLUSTER_OPT_DNS_POLL_MS}, {                                                \
    "dns-server", required_argument, 0, CLUSTER_OPT_DNS_SERVER                                                         \
  }

/* The usage lines of these flags. */
extern const char cluster_app_usage[];

/* Takes one flag (opt one of CLUSTER_OPT_*, arg its value or NULL); on a bad value prints one line naming the flag,
 * the value and the expected form to stderr and returns -1. */
int cluster_app_flag(int opt, const char *arg);
/* After all flags: -1 (with the line printed) when they do not fit together (a --gossip-* flag without
 * --cluster gossip, ...). */
int cluster_app_check(void);
/* Starts discovery on the started node when --cluster was given: 0 or a CN_E* code (logged). */
int cluster_app_start(cn_node *n);

#endif
