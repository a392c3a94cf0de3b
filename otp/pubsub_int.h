/* pubsub_int.h: the pure part of Phoenix.PubSub on a C node (never installed): the names the PG2 adapter gives
 * its pg groups and shard processes, and the reading of {forward_to_local, Topic, Message, Dispatcher}. In
 * pubsub.c, beside the shard processes and the C API; test/test_pg.c drives these directly. */
#ifndef OTP_PUBSUB_INT_H
#define OTP_PUBSUB_INT_H

#include "cn_pubsub.h"

/* The most shards a pubsub runs (a peer that joins a group with a higher number is not followed). */
#define PS_MAX_POOL 1024

/* Module.concat(PubSub, "Adapter"): "Elixir.MyApp.PubSub" -> "Elixir.MyApp.PubSub.Adapter", "my_ps" ->
 * "Elixir.my_ps.Adapter". 0, or CN_ELIMIT when it does not fit in cap bytes (or in an atom). */
int ps_adapter_name(const char *pubsub, char *out, size_t cap);
/* The group (and registered name) of shard k (0-based): the adapter's name for shard 0, then "<adapter>_<k+1>". */
int ps_shard_name(const char *adapter, unsigned k, char *out, size_t cap);
/* Which shard a group name is (0-based), or -1 when it is not one of adapter's (or is above PS_MAX_POOL). */
int ps_shard_index(const char *adapter, const char *group, size_t group_len);
/* {forward_to_local, Topic, Message, Dispatcher}: 0 and the parts (borrowed), or CN_EDECODE (Topic must be a
 * binary and Dispatcher an atom, as Phoenix.PubSub's guards require). */
int ps_forward_decode(const cn_term *msg, const cn_term **topic, const cn_term **message, const cn_term **dispatcher);

#endif /* OTP_PUBSUB_INT_H */
