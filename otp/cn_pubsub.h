/* cn_pubsub.h: Phoenix.PubSub (2.x, its default PG2 adapter) on a C node, a service on cn_pg.h: C processes
 * subscribe to topics of an Elixir app's PubSub and broadcast on them, and get exactly what an Elixir subscriber
 * of the topic gets. docs/pubsub.md gives the wire this relies on. Include <cnode/cn_pubsub.h>. */
#ifndef CN_PUBSUB_H
#define CN_PUBSUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cnode.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The pg scope every Phoenix.PubSub 2.x runs its adapters in. */
#define CN_PUBSUB_SCOPE "Elixir.Phoenix.PubSub"

/* Joins the PubSub named pubsub (the atom's text: "Elixir.MyApp.PubSub" for MyApp.PubSub) as Phoenix.PubSub's
 * PG2 adapter does on a BEAM node: the pg scope Phoenix.PubSub is started when it is not running, and one shard
 * process per pool shard is registered under the shard's name and joined to its pg group. pool_size must be the
 * cluster's (0: 1); the node also runs every further shard it sees a peer join (a peer with a larger pool),
 * so a C node started with 0 follows the cluster. CN_EEXIST when already started on n. */
CN_EXPORT int cn_pubsub_start(cn_node *n, const char *pubsub, unsigned pool_size);
/* The shards the node runs now (0: pubsub not started). */
CN_EXPORT unsigned cn_pubsub_pool_size(cn_node *n, const char *pubsub);

/* Phoenix.PubSub.subscribe/2 for the local process pid: from now on each broadcast on topic (a binary; NUL ends
 * it here) is one message in pid's mailbox, the broadcast's message itself. Subscribing twice gives each message
 * twice, as in Phoenix. The subscription ends with pid. CN_ENOTFOUND: pubsub not started; CN_EINVAL: pid of
 * another node; CN_ENOPROC: not alive. */
CN_EXPORT int cn_pubsub_subscribe(cn_node *n, const char *pubsub, const char *topic, cn_pid pid);
/* Phoenix.PubSub.unsubscribe/2: every subscription of pid to topic ends (0 also when there was none). */
CN_EXPORT int cn_pubsub_unsubscribe(cn_node *n, const char *pubsub, const char *topic, cn_pid pid);

/* How a message is broadcast; zero-initialise. */
typedef struct cn_pubsub_bcast {
  const cn_pid *from;     /* broadcast_from: this pid's own subscription is skipped (NULL: none) */
  const cn_atom *node;    /* direct_broadcast to that node only (NULL: every node) */
  bool local;             /* local_broadcast: this node's subscribers only */
  const char *dispatcher; /* the dispatcher module's atom text (NULL: "Elixir.Phoenix.PubSub", the default) */
} cn_pubsub_bcast;

/* Phoenix.PubSub's broadcast family: msg (borrowed) on topic. Remote nodes get one {forward_to_local, Topic, Msg,
 * Dispatcher} per node through the pg group of one shard, as the PG2 adapter sends it, and their own dispatcher
 * delivers it; this node's C subscribers get msg (with any dispatcher: see docs/pubsub.md). CN_ENOTFOUND: pubsub
 * not started. */
CN_EXPORT int cn_pubsub_broadcast_opts(cn_node *n, const char *pubsub, const char *topic, const cn_term *msg,
                                       const cn_pubsub_bcast *how);
/* Phoenix.PubSub.broadcast/3, broadcast_from/4, local_broadcast/3 and direct_broadcast/4. */
CN_EXPORT int cn_pubsub_broadcast(cn_node *n, const char *pubsub, const char *topic, const cn_term *msg);
CN_EXPORT int cn_pubsub_broadcast_from(cn_node *n, cn_pid from, const char *pubsub, const char *topic,
                                       const cn_term *msg);
CN_EXPORT int cn_pubsub_local_broadcast(cn_node *n, const char *pubsub, const char *topic, const cn_term *msg);
CN_EXPORT int cn_pubsub_direct_broadcast(cn_node *n, const cn_atom *node, const char *pubsub, const char *topic,
                                         const cn_term *msg);

#ifdef __cplusplus
}
#endif
#endif
