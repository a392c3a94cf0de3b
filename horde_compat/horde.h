/* horde.h: the public API of horde_compat. A delta_crdt 0.6 peer (DeltaCrdt.CausalCrdt holding an AWLWWMap,
 * synced by merkle_map 0.2 partial diffs) that BEAM CRDT processes of Horde 0.10 cannot tell from their own.
 * Every function here runs on the node's loop thread (from a handler or a start callback), like cnode.h. */
#ifndef CN_HORDE_H
#define CN_HORDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cnode.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cn_crdt cn_crdt;

/* One change of the LWW read after a join: add (value != NULL) or remove; both borrowed for the callback. */
typedef struct cn_crdt_diff {
  const cn_term *key;
  const cn_term *value; /* NULL for a remove */
} cn_crdt_diff;
/* delta_crdt's on_diffs: called once per join that changed raw entries, possibly with n == 0. */
typedef void (*cn_crdt_diffs_fn)(cn_crdt *c, const cn_crdt_diff *d, size_t n, void *ctx);

/* MapSet shape of the peers' Elixir: <= 1.14 (with version => 2, the default) or >= 1.15. */
enum { CN_CRDT_MAPSET_V2 = 0, CN_CRDT_MAPSET_PLAIN = 1 };

/* Options; zero fields take the defaults shown. */
typedef struct cn_crdt_opts {
  unsigned sync_interval_ms; /* 300 (Horde's default) */
  size_t max_sync_size;      /* 0: infinite (Horde's default; never truncate syncs to BEAM, pitfall 8) */
  int mapset_shape;          /* CN_CRDT_MAPSET_* */
  int64_t node_id;           /* 0: random in 1..1e9 */
  cn_crdt_diffs_fn on_diffs;
  void *ctx;
  /* Ts source: monotonic nanoseconds on the BEAM scale. NULL: -2^59 + ns since the CRDT started. */
  int64_t (*clock_ns)(void *ctx);
  bool count_bytes;          /* count the encoded size of every message sent (cn_crdt_stats.bytes_sent) */
} cn_crdt_opts;

/* Starts a CRDT process registered as "<name>.Crdt" (name is Horde's N: "reg" or "Elixir.MyApp.Reg").
 * opts may be NULL. *out is valid until the process ends (cn_crdt_stop or node stop). */
int cn_crdt_start(cn_node *n, const char *name, const cn_crdt_opts *opts, cn_crdt **out);
/* Ends the process (reason normal). */
void cn_crdt_stop(cn_crdt *c);
cn_pid cn_crdt_pid(const cn_crdt *c);

/* Neighbours: the peers' CRDT name tuples {'M.Crdt', Node} (borrowed, copied), as Horde's set_neighbours
 * message carries them; a sync to each starts at once. The process also takes {set_neighbours, List}. */
int cn_crdt_set_neighbours(cn_crdt *c, const cn_term *const *peers, size_t n);

/* Local writes (DeltaCrdt.put/delete); key and value borrowed. */
int cn_crdt_put(cn_crdt *c, const cn_term *key, const cn_term *value);
int cn_crdt_delete(cn_crdt *c, const cn_term *key);
/* The LWW value of key (borrowed until the next change), or NULL. */
const cn_term *cn_crdt_get(cn_crdt *c, const cn_term *key);
/* The whole LWW read as a new map term (caller frees), or NULL on OOM. */
cn_term *cn_crdt_read(cn_crdt *c);
/* The Merkle root hash: true and out[4], false for the empty tree. */
bool cn_crdt_root(cn_crdt *c, uint8_t out[4]);
/* Sends {crdt_update, [{add, K, V} | {remove, K}]} to pid after every join (as Horde's on_diffs does). */
int cn_crdt_subscribe(cn_crdt *c, cn_pid pid);
/* Starts a sync round to every monitored neighbour now (what the timer does). */
void cn_crdt_sync_now(cn_crdt *c);

typedef struct cn_crdt_stats {
  uint64_t syncs_started, msgs_sent, msgs_received, bytes_sent, keys_sent, joins, bad_messages;
  size_t keys;
} cn_crdt_stats;
void cn_crdt_get_stats(cn_crdt *c, cn_crdt_stats *out);

/* The process also serves gen_server calls from any node: read -> map; {read, Keys} -> map;
 * {operation, {add, [K, V]}} | {operation, {remove, [K]}} -> ok;
 * {bulk_operation, [{add, [K, V]} | {remove, [K]}]} -> ok (Horde's merge/drop: one write per element, in order);
 * root_hash -> <<Hash:4/binary>> | <<>>; stats -> map. */

#ifdef __cplusplus
}
#endif
#endif
