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

/* The MapSet shape of the dot sets this CRDT stores and sends, which its Merkle hashes cover: Elixir <= 1.14 writes
 * #{map => ..., version => 2}, Elixir >= 1.15 #{map => ...} only, and a BEAM CRDT stores its own Elixir's shape
 * after every join. Either shape is read from any peer. AUTO (the default) follows the peers: V2 until a peer's
 * delta carries a dot set, then that delta's shape, and the other shape again once HC_SHAPE_SWITCH (3) deltas in
 * a row carry it (a cluster that moved to another Elixir); the entries held are rewritten in the shape followed.
 * V2 or PLAIN fix the shape (a mixed 1.14/1.15+ cluster: its BEAM nodes disagree too). */
enum { CN_CRDT_MAPSET_AUTO = 0, CN_CRDT_MAPSET_V2 = 1, CN_CRDT_MAPSET_PLAIN = 2 };

/* Options; zero fields take the defaults shown. */
typedef struct cn_crdt_opts {
  unsigned sync_interval_ms; /* 300 (Horde's default) */
  size_t max_sync_size;      /* 0: infinite (Horde's default; never truncate syncs to BEAM, pitfall 8) */
  int mapset_shape;          /* CN_CRDT_MAPSET_*; another value: CN_EINVAL from cn_crdt_start */
  int64_t node_id;           /* 0: random in 1..1e9 */
  cn_crdt_diffs_fn on_diffs;
  void *ctx;
  /* Ts source: monotonic nanoseconds on the BEAM scale. NULL: -2^59 + ns since the CRDT started. */
  int64_t (*clock_ns)(void *ctx);
  bool count_bytes; /* count the encoded size of every message sent (cn_crdt_stats.bytes_sent) */
  /* Called once when the process ends, just before the cn_crdt is freed (owners drop their pointer here); never
   * for a start that returned an error. */
  void (*on_stop)(cn_crdt *c, void *ctx);
} cn_crdt_opts;

/* Starts a CRDT process registered as "<name>.Crdt" (name is Horde's N: "reg" or "Elixir.MyApp.Reg").
 * opts may be NULL. *out is valid until the process ends (cn_crdt_stop or node stop). */
CN_EXPORT int cn_crdt_start(cn_node *n, const char *name, const cn_crdt_opts *opts, cn_crdt **out);
/* Ends the process (reason normal). */
CN_EXPORT void cn_crdt_stop(cn_crdt *c);
CN_EXPORT cn_pid cn_crdt_pid(const cn_crdt *c);

/* Neighbours: the peers' CRDT name tuples {'M.Crdt', Node} (borrowed, copied), as Horde's set_neighbours
 * message carries them; a sync to each starts at once. The process also takes {set_neighbours, List}. */
CN_EXPORT int cn_crdt_set_neighbours(cn_crdt *c, const cn_term *const *peers, size_t n);

/* Local writes (DeltaCrdt.put/delete); key and value borrowed. */
CN_EXPORT int cn_crdt_put(cn_crdt *c, const cn_term *key, const cn_term *value);
CN_EXPORT int cn_crdt_delete(cn_crdt *c, const cn_term *key);
/* The LWW value of key (borrowed until the next change), or NULL. */
CN_EXPORT const cn_term *cn_crdt_get(cn_crdt *c, const cn_term *key);
/* The whole LWW read as a new map term (caller frees), or NULL on OOM. */
CN_EXPORT cn_term *cn_crdt_read(cn_crdt *c);
/* The MapSet shape the CRDT stores and sends now: CN_CRDT_MAPSET_V2 or CN_CRDT_MAPSET_PLAIN (under AUTO, the one
 * followed so far). */
CN_EXPORT int cn_crdt_mapset_shape(const cn_crdt *c);
/* The Merkle root hash: true and out[4], false for the empty tree. */
CN_EXPORT bool cn_crdt_root(cn_crdt *c, uint8_t out[4]);
/* Sends {crdt_update, [{add, K, V} | {remove, K}]} to pid after every join (as Horde's on_diffs does). */
CN_EXPORT int cn_crdt_subscribe(cn_crdt *c, cn_pid pid);
/* Starts a sync round to every monitored neighbour now (what the timer does). */
CN_EXPORT void cn_crdt_sync_now(cn_crdt *c);

/* syncs_started counts rounds begun (one per neighbour per sync tick); keys is the map's size now; synced turns
 * true once a neighbour's sync message was handled, or a sync tick found no neighbour to sync with (a readiness
 * probe waits for it). */
typedef struct cn_crdt_stats {
  uint64_t syncs_started, msgs_sent, msgs_received, bytes_sent, keys_sent, joins, bad_messages;
  /* rounds_skipped: a peer's first rounds left unanswered because a newer one from the same originator was queued
   * behind them (this process was behind; crdt.c on_first_round) */
  uint64_t rounds_skipped;
  size_t keys;
  /* dots_withheld: dots this node's writes and removes took from a peer's entries that it kept out of its version
   * vector (delta_crdt would have claimed the peer's earlier writes with them, unreceived: the key loss of
   * docs/crdt.md); dots_pending: those still out, until a received vector covers them. */
  uint64_t dots_withheld;
  size_t dots_pending;
  bool synced;
} cn_crdt_stats;
CN_EXPORT void cn_crdt_get_stats(cn_crdt *c, cn_crdt_stats *out);
/* The same counters as the map #{Name => N} (plus mapset => v2 | plain) the CRDT's stats call answers; a new term,
 * or NULL without memory. */
CN_EXPORT cn_term *cn_crdt_stats_term(cn_crdt *c);

/* The process also serves gen_server calls from any node: read -> map; {read, Keys} -> map;
 * {operation, {add, [K, V]}} | {operation, {remove, [K]}} -> ok;
 * {bulk_operation, [{add, [K, V]} | {remove, [K]}]} -> ok (Horde's merge/drop: one write per element, in order);
 * root_hash -> <<Hash:4/binary>> | <<>>; stats -> map (with mapset => v2 | plain). */

/* ---- Horde.Registry (registry.c) ----------------------------------------------------------------------------- */

/* A Horde.Registry member (keys: :unique): the CRDT process 'N.Crdt' and the registry process N (its
 * Horde.RegistryImpl), sharing the CRDT keys of spec §4.1 with BEAM members: {member, {N, Node}} => 1 and
 * {key, Key} => {{N, Node}, Pid, Value}. */
typedef struct cn_horde_registry cn_horde_registry;

typedef struct cn_horde_registry_opts {
  /* Explicit members: node names ("a@host"); each becomes {N, Node} (this node is always added). NULL with
   * nmembers 0: members: :auto (every visible node, re-set on every nodeup/nodedown, §1.3). */
  const char *const *members;
  size_t nmembers;
  cn_crdt_opts crdt; /* sync interval, MapSet shape, clock... (on_diffs, ctx and on_stop are the registry's) */
  /* Called once when the registry process ends (the cn_horde_registry must not be used after it returns); not
   * when cn_horde_registry_start fails. */
  void (*on_stop)(cn_horde_registry *r, void *ctx);
  void *ctx;
} cn_horde_registry_opts;

/* Starts 'N.Crdt' then N (name: the registry atom's text, "Elixir.MyApp.Registry"). opts may be NULL
 * (members: :auto). *out stays valid until the registry process ends (cn_horde_registry_stop, the CRDT's death,
 * or node stop); the two processes end together (one_for_all). */
CN_EXPORT int cn_horde_registry_start(cn_node *n, const char *name, const cn_horde_registry_opts *opts,
                                      cn_horde_registry **out);
/* Ends both processes (reason shutdown). */
CN_EXPORT void cn_horde_registry_stop(cn_horde_registry *r);
CN_EXPORT cn_pid cn_horde_registry_pid(const cn_horde_registry *r);
CN_EXPORT cn_crdt *cn_horde_registry_crdt(cn_horde_registry *r);

/* Horde.Registry.register/3 for pid (local or remote): CN_EEXIST with *holder (may be NULL) when a lookup
 * finds the key; else writes {key, Key} and links the registry process to pid (its death removes its keys).
 * key and value borrowed. */
CN_EXPORT int cn_horde_register(cn_horde_registry *r, cn_pid pid, const cn_term *key, const cn_term *value,
                                cn_pid *holder);
/* Horde.Registry.unregister/2 on behalf of pid: removes key when pid holds it (0 also when it does not). */
CN_EXPORT int cn_horde_unregister(cn_horde_registry *r, cn_pid pid, const cn_term *key);
/* Horde.Registry.update_value/3 on behalf of pid: CN_ENOTFOUND when pid does not hold key. */
CN_EXPORT int cn_horde_update_value(cn_horde_registry *r, cn_pid pid, const cn_term *key, const cn_term *value);
/* Horde.Registry.lookup/2 from the CRDT read, without waiting: 0, *pid and *value (a new term, may be NULL not to
 * get it), or CN_ENOTFOUND. Found means: {key, Key} => {M, Pid, V}, {member, M} present, and Pid alive (a local
 * pid: a live process; a remote pid: its node is connected and visible). The round trip of §4.3 that asks a remote
 * pid's node is made by the registry process's {lookup, Key} call (below), which Horde's semantics need exactly. */
CN_EXPORT int cn_horde_lookup(cn_horde_registry *r, const cn_term *key, cn_pid *pid, cn_term **value);
/* Horde.Registry.count/1: keys in the registry's local table (every registration it has seen, any member). */
CN_EXPORT size_t cn_horde_count(cn_horde_registry *r);
/* Calls fn for every registration in the local table (borrowed terms); fn returning false stops. */
typedef bool (*cn_horde_each_fn)(const cn_term *key, cn_pid pid, const cn_term *value, const cn_term *member,
                                 void *ctx);
CN_EXPORT void cn_horde_foreach(cn_horde_registry *r, cn_horde_each_fn fn, void *ctx);
/* The member list [{Name, Node}] (a new term), as the `members` call returns it. */
CN_EXPORT cn_term *cn_horde_members(cn_horde_registry *r);
/* Horde.Cluster.set_members/2: members are atoms (Name on this node) or {Name, Node}; borrowed. */
CN_EXPORT int cn_horde_set_members(cn_horde_registry *r, const cn_term *const *members, size_t n);

/* The registry process N serves gen_server calls: members -> [{N, Node}]; {set_members, List} -> ok;
 * {register, Key, Value, Pid} -> {ok, RegistryPid}; {unregister, Key, Pid} -> ok;
 * {update_value, Key, Pid, Value} -> ok | {error, not_registered}; {lookup, Key} -> [{Pid, Value}] | [] (for a
 * remote pid after asking its node erlang:is_process_alive/1 by erpc, 5 s at most; no answer counts as dead);
 * count -> integer. It takes the CRDT's {crdt_update, Diffs} and reacts as Horde's RegistryImpl (§4.2, §4.4):
 * conflicts send the losing pid the exit {name_conflict, {Key, Value}, N, WinnerPid}; a member's removal drops
 * its keys. */

/* ---- Horde.DynamicSupervisor: placement (ring.c) ------------------------------------------------------------ */

/* A member's status, as Horde.DynamicSupervisor.Member carries it (uninitialized: no member_node_info yet). */
typedef enum cn_horde_status {
  CN_HORDE_UNINITIALIZED = 0,
  CN_HORDE_ALIVE = 1,
  CN_HORDE_SHUTTING_DOWN = 2,
  CN_HORDE_DEAD = 3
} cn_horde_status;

/* One member as choose_node/2 gets it: name {Name, Node} (borrowed) and status. */
typedef struct cn_horde_member {
  const cn_term *name;
  cn_horde_status status;
} cn_horde_member;

/* Placement rules: FILTERED is CNode.Horde.Distribution (C children on alive C-capable members, every other
 * child on alive other members, then UniformDistribution); UNIFORM is Horde.UniformDistribution alone. */
enum { CN_HORDE_FILTERED = 0, CN_HORDE_UNIFORM = 1 };

/* True when spec is a child-spec map whose cnode value is the atom true (CNode.Horde.c_child?/1). */
CN_EXPORT bool cn_horde_c_child(const cn_term *spec);
/* True when name is {_, Node} with an atom Node whose text starts with "cnode" (CNode.Horde.c_member?/1). */
CN_EXPORT bool cn_horde_c_member(const cn_term *name);
/* Reads a Horde.DynamicSupervisor.Member map: out->name borrows m's name field; a status other than alive,
 * shutting_down or dead reads as uninitialized. CN_EDECODE when m is not a map with a name. */
CN_EXPORT int cn_horde_member_parse(const cn_term *m, cn_horde_member *out);
/* choose_node(Spec, Members) bit for bit (spec horde-wire.md §5.2): the eligible members (alive; with FILTERED
 * also the right capability) on libring's ring, key phash2(phash2(maps:remove(id, Spec)), 2^32-1), members
 * inserted in ascending term order. 0 and *chosen (an index into m); CN_ENOTFOUND for {error, no_alive_nodes};
 * CN_EINVAL when spec is not a map; CN_ENOMEM. spec and m are borrowed. */
CN_EXPORT int cn_horde_choose(const cn_term *spec, const cn_horde_member *m, size_t n, int mode, size_t *chosen);

/* ---- Horde.DynamicSupervisor: the member (supervisor.c) ------------------------------------------------------- */

/* A Horde.DynamicSupervisor member that runs C children: the CRDT 'N.Crdt', the supervisor process N (Horde's
 * DynamicSupervisorImpl) and 'N.ProcessesSupervisor' (which_children, count_children), sharing the CRDT keys of
 * spec §5.1 with BEAM members and placing children with the FILTERED rule. It never starts a child whose spec
 * lacks cnode => true. Only a node whose name starts with "cnode" may run one. */
typedef struct cn_horde_sup cn_horde_sup;

/* Starts one C child for the start => {Module, Function, Args} of a child spec (Module is the one the entry was
 * registered for; function and args borrowed for the call). It runs on the node's loop, in whichever process
 * asked for the start; it spawns the child (cn_spawn, cn_gen_server_start...) and returns 0 with *pid, or a
 * CN_E* code, optionally with *error (a new term, taken by the supervisor) for the reply {error, Error} (else
 * {error, Reason} with the status's Erlang reason, cn_err_reason: {error, enomem}, {error, system_limit}...). The supervisor links to *pid itself and restarts it per the spec's restart type. */
typedef int (*cn_horde_start_fn)(cn_node *n, const cn_atom *function, const cn_term *args, void *ctx, cn_pid *pid,
                                 cn_term **error);

typedef struct cn_horde_sup_opts {
  /* Explicit members: node names ("cnode2@host"); each becomes {N, Node} (this node is always added). NULL with
   * nmembers 0: members: :auto (every visible node, re-set on every nodeup/nodedown, as registry members). */
  const char *const *members;
  size_t nmembers;
  unsigned proxy_message_ttl; /* hops a start_child may be proxied: 0 means infinity (Horde's default) */
  unsigned orphan_ms;         /* how long a C child must stay orphaned before adoption (rule 5): 1000 */
  unsigned max_restarts;      /* restarts of one child allowed within max_seconds before it is dropped: 3 */
  unsigned max_seconds;       /* 5 */
  unsigned shutdown_wait_ms;  /* how long a graceful shutdown waits for peers to see it: 2000 */
  cn_crdt_opts crdt;          /* sync interval, MapSet shape, clock... (on_diffs, ctx and on_stop are the member's) */
  /* Called once when the member's processes have all ended, just before the cn_horde_sup is freed. */
  void (*on_stop)(cn_horde_sup *s, void *ctx);
  void *ctx;
} cn_horde_sup_opts;

/* Starts 'N.Crdt', N and 'N.ProcessesSupervisor' (name: the supervisor atom's text, "Elixir.MyApp.Sup"), writes
 * this node's member_node_info as alive and joins the members. opts may be NULL (members: :auto). CN_EINVAL (and
 * a log line) when this node's name does not start with "cnode". *out stays valid until the supervisor process
 * ends (cn_horde_supervisor_stop, the CRDT's death, or node stop); the three processes end together. */
CN_EXPORT int cn_horde_supervisor_start(cn_node *n, const char *name, const cn_horde_sup_opts *opts,
                                        cn_horde_sup **out);
/* Registers fn (with ctx, borrowed until the supervisor ends) as the C entry point of module ("Elixir.MyApp.Worker"):
 * child specs whose start names that module are started through it. CN_EEXIST when module has one already. */
CN_EXPORT int cn_horde_entry(cn_horde_sup *s, const char *module, cn_horde_start_fn fn, void *ctx);
/* Called once when a graceful shutdown has finished (the processes still run; stop them or the node next). */
typedef void (*cn_horde_done_fn)(cn_horde_sup *s, void *ctx);
/* Graceful stop (what SIGTERM does to a BEAM member): marks this member shutting_down, stops its children and
 * writes each as relinquished {nil, Spec} for the ring's next choice to start, then waits until every connected
 * peer's CRDT shows all that (or shutdown_wait_ms), and calls done(s, ctx) from the loop. CN_ESTATE when a
 * shutdown already runs or the supervisor ended; then done is never called. */
CN_EXPORT int cn_horde_supervisor_shutdown(cn_horde_sup *s, cn_horde_done_fn done, void *ctx);
/* Ends the three processes at once (reason shutdown); running children get the exit signal shutdown. */
CN_EXPORT void cn_horde_supervisor_stop(cn_horde_sup *s);
/* The supervisor process N, its CRDT (NULL once the CRDT ended), and how many children run on this node. */
CN_EXPORT cn_pid cn_horde_supervisor_pid(const cn_horde_sup *s);
CN_EXPORT cn_crdt *cn_horde_supervisor_crdt(cn_horde_sup *s);
CN_EXPORT size_t cn_horde_supervisor_count(const cn_horde_sup *s);
/* start_child on this member from C, as the call {start_child, Spec} would run it for the caller from = {Pid, Tag}
 * (borrowed): 0 and *reply (a new term) when answered here ({ok, Pid} | {error, Reason}); 0 and *reply NULL when
 * the request went on to the owning member as a proxy_operation (which replies to from itself). */
CN_EXPORT int cn_horde_start_child(cn_horde_sup *s, const cn_term *spec, const cn_term *from, cn_term **reply);
/* The local children as 'N.ProcessesSupervisor' answers which_children: [{Id, Pid, worker | supervisor, Modules}]
 * (a new term), and count_children: [{specs, N}, {active, N}, {supervisors, N}, {workers, N}]. */
CN_EXPORT cn_term *cn_horde_which_children(cn_horde_sup *s);
CN_EXPORT cn_term *cn_horde_count_children(cn_horde_sup *s);

/* The process N serves gen_server calls (direct, or as {proxy_operation, Req, From} and
 * {proxy_operation, Req, From, Ttl} messages): {start_child, Spec} -> {ok, Pid} | {error, no_alive_nodes} |
 * {error, {shutting_down, Text}} | {error, {node_dead_or_shutting_down, Text}} |
 * {error, proxy_operation_ttl_expired, Text} (an Elixir child whose TTL ran out here) | {error, Reason};
 * {terminate_child, Pid} -> ok | {error, not_found}; members -> [{N, Node}]; {set_members, List} -> ok;
 * wait_for_quorum -> ok; horde_shutting_down -> ok; get_telemetry -> map; which_children -> every member's
 * children as [{undefined, Pid, Type, Modules}]; count_children -> #{active, specs, supervisors, workers} summed over
 * the members. 'N.ProcessesSupervisor' serves which_children and count_children for this node's children. */

#ifdef __cplusplus
}
#endif
#endif
