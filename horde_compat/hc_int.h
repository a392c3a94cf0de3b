/* hc_int.h: internals of horde_compat shared between its files (never installed): the Elixir struct shapes,
 * the Merkle map of merkle_map 0.2.x and the AW-LWW map of delta_crdt 0.6. Pure code: no I/O, no clock. */
#ifndef HC_INT_H
#define HC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cn_term.h"

/* ---- Atoms and Elixir structs (structs.c) ------------------------------------------------------------------ */

/* MapSet wire shapes: Elixir <= 1.14 writes `version => 2`, Elixir >= 1.15 has no version field. */
enum { HC_MAPSET_V2 = 0, HC_MAPSET_PLAIN = 1 };

/* The atoms horde_compat builds terms with, interned once in one table. */
typedef struct hc_ctx {
  cn_atoms *tab;
  int mapset_shape; /* HC_MAPSET_* */
  int otp_release;  /* whose =:= entry keys follow (cn_term_exact_eq_otp): the node's, refreshed by the CRDT */
  const cn_atom *a_struct, *a_map, *a_version, *a_mapset, *a_partial, *a_tree, *a_trees, *a_keys, *a_mtree, *a_mdiff,
      *a_diff_mod, *a_awlww, *a_dots, *a_value, *a_continuation, *a_originator, *a_from, *a_to, *a_nil, *a_diff,
      *a_get_diff, *a_ack_diff;
} hc_ctx;

/* Interns the atoms; 0 or CN_ENOMEM. */
int hc_ctx_init(hc_ctx *c, cn_atoms *tab, int mapset_shape);

/* A struct map #{'__struct__' => Mod, F1 => V1, ...}: takes the values (even on failure); NULL on OOM. */
cn_term *hc_mk_struct(const hc_ctx *c, const cn_atom *mod, size_t n, const cn_atom *const *fields, cn_term **vals);
/* The value of atom key k in map m (compared by text), or NULL. */
const cn_term *hc_map_get(const cn_term *m, const char *k);
/* The value of an arbitrary key in map m (exact match, =:= of OTP release rel: cn_term_exact_eq_otp), or NULL. */
const cn_term *hc_map_find(const cn_term *m, const cn_term *k, int rel);
/* True when t is a map whose '__struct__' is the atom mod. */
bool hc_is_struct(const cn_term *t, const char *mod);

/* A dot {NodeId, Counter}. */
typedef struct hc_dot {
  int64_t id, n;
} hc_dot;
/* A MapSet of dots in the context's shape (#{Dot => []} inside); NULL on OOM. */
cn_term *hc_mk_dotset(const hc_ctx *c, const hc_dot *d, size_t n);
/* Reads a MapSet of dots (either shape) into a new array (*out, free with cn_free; count *n).
 * CN_EDECODE when it is not a MapSet of {int, int} tuples. */
int hc_parse_dotset(const cn_term *set, hc_dot **out, size_t *n);
/* The shape of a MapSet struct (HC_MAPSET_V2 when it has a version key), or -1 when t is not one. */
int hc_mapset_shape(const cn_term *t);
/* The shape of the first dot set in a delta's value map (#{Key => #{{V, Ts} => MapSet}}), or -1 for none. */
int hc_entries_shape(const cn_term *value);
/* Raw entries #{{V, Ts} => MapSet} rebuilt with every dot set in c's shape: a new term in *out. CN_EDECODE when raw
 * is not a map of dot sets, CN_ENOMEM. */
int hc_reshape_entries(const hc_ctx *c, const cn_term *raw, cn_term **out);

/* Following the peers' MapSet shape (CN_CRDT_MAPSET_AUTO): the shape of the first delta that carries a dot set,
 * then the other one once HC_SHAPE_SWITCH deltas in a row carry it (one with the shape followed starts the count
 * again), so a cluster that moved to another Elixir is followed and a mixed one does not flap on every delta. */
#define HC_SHAPE_SWITCH 3
typedef struct hc_shape_follow {
  int shape;      /* HC_MAPSET_* followed now (HC_MAPSET_V2 before any peer showed one) */
  bool settled;   /* a peer's delta has shown a shape */
  unsigned other; /* deltas in a row with the other shape since the last with this one */
} hc_shape_follow;
/* A peer's delta showed shape `seen` (-1: it held no dot set). True when f->shape changed to it. Pure. */
bool hc_shape_seen(hc_shape_follow *f, int seen);

/* ---- Views (view.c): terms to send once, their arrays in an arena, their leaves borrowing held terms --------- */

typedef struct hc_chunk hc_chunk;
typedef struct hc_arena {
  hc_chunk *head;
  bool oom; /* an allocation failed: a view built in it is incomplete */
} hc_arena;
/* Frees every view built in a (zero-initialised arena: nothing). */
void hc_arena_free(hc_arena *a);
/* n zeroed terms, or NULL (a->oom) without memory. */
cn_term *hc_arena_terms(hc_arena *a, size_t n);
/* out = a view of t (borrowed: t lives and stays unchanged while the view is used). */
void hc_v_ref(cn_term *out, const cn_term *t);
void hc_v_atom(cn_term *out, const cn_atom *at);
void hc_v_int(cn_term *out, int64_t v);
/* out = a tuple / proper list / map of n zeroed elements (pairs for a map), to be filled through the pointer
 * returned (NULL without memory; a list of 0 is [] and returns out). */
cn_term *hc_v_tuple(hc_arena *a, cn_term *out, size_t n);
cn_term *hc_v_list(hc_arena *a, cn_term *out, size_t n);
cn_term *hc_v_map(hc_arena *a, cn_term *out, size_t n);
/* out = a bitstring of n bytes copied from p, bits used in the last byte; false without memory. */
bool hc_v_bits(hc_arena *a, cn_term *out, const void *p, size_t n, uint8_t bits);
/* out = struct mod with fields; returns the value slots (value i at [2 * i]), NULL without memory. */
cn_term *hc_v_struct(const hc_ctx *c, hc_arena *a, cn_term *out, const cn_atom *mod, size_t n,
                     const cn_atom *const *fields);

/* ---- Merkle map (merkle.c) ------------------------------------------------------------------------------------ */

typedef struct hc_mnode hc_mnode;

/* merkle_map's tree: key -> raw value, placed by the bits of phash2(Key, 2^32), hashes computed lazily. */
typedef struct hc_merkle {
  hc_mnode *root;
  size_t count;    /* keys */
  uint64_t epoch;  /* bumped on every change, so callers can cache terms built from the tree */
  int otp_release; /* keys are equal under this release's =:= (0: OTP 25); the owner keeps it current */
  /* false (hc_merkle_init): the tree owns copies of its keys and the raw values put. true (set before the first
   * put): leaves point at the caller's key and raw terms, which the caller keeps alive and unchanged until it puts
   * that key again or deletes it (the CRDT: its hc_awlww entries, so a key's terms are held once). */
  bool borrows;
} hc_merkle;

/* A location in the tree: the first nbits bits of `bits` (most significant of bit 63 first). */
typedef struct hc_loc {
  uint64_t bits;
  uint32_t nbits;
} hc_loc;

void hc_merkle_init(hc_merkle *m);
void hc_merkle_free(hc_merkle *m);
/* phash2(Key, 2^32): the key's place in the tree. */
uint32_t hc_key_hash(const cn_term *key);
/* Puts key (copied) => raw (taken, even on failure); kh = hc_key_hash(key). 0 or CN_ENOMEM. With m->borrows, both
 * stay the caller's (see hc_merkle). */
int hc_merkle_put(hc_merkle *m, const cn_term *key, uint32_t kh, cn_term *raw);
/* Removes key (no-op when absent). */
void hc_merkle_delete(hc_merkle *m, const cn_term *key, uint32_t kh);
/* Computes the hashes of every changed node (merkle_map's update_hashes). */
void hc_merkle_update_hashes(hc_merkle *m);
/* The root hash after hc_merkle_update_hashes: true and out[4], or false for the empty tree. */
bool hc_merkle_root(const hc_merkle *m, uint8_t out[4]);
/* subtree(Tree, Loc, Depth) as merkle_map builds it (hashes must be up to date); a new term or NULL on OOM. */
cn_term *hc_merkle_subtree(const hc_ctx *c, const hc_merkle *m, hc_loc loc, unsigned depth);
/* Reads a Loc bitstring term (at most 56 bits); false for another shape. */
bool hc_loc_from_term(const cn_term *t, hc_loc *out);

/* What a comparison found: keys (borrowed from the tree or the received term) and partial locations. */
typedef struct hc_mdiff {
  const cn_term **keys;
  size_t nkeys, capk;
  hc_loc *parts;
  size_t nparts, capp;
  int otp_release; /* set by hc_merkle_diff from the tree */
} hc_mdiff;
void hc_mdiff_free(hc_mdiff *d);
/* Compares subtree(own, loc, depth) with the received subtree term `remote` at level loc.nbits (§3.3),
 * appending to d. CN_EDECODE when remote is not a well-formed tree, CN_ENOMEM. */
int hc_merkle_diff(const hc_merkle *m, hc_loc loc, unsigned depth, const cn_term *remote, hc_mdiff *d);

/* One continuation step (§3.4) on a received MerkleMap.MerkleTree.Diff struct. On success *keys_out is a new
 * proper list term of CRDT keys, and *cont_out is NULL (done) or a new Diff struct to send on. max_items > 0
 * truncates as delta_crdt's max_sync_size (keys first, then trees); 0 is infinite. */
int hc_merkle_continue(const hc_ctx *c, const hc_merkle *m, const cn_term *cont, unsigned depth, size_t max_items,
                       cn_term **cont_out, cn_term **keys_out);
/* hc_merkle_continue building views in arena a (borrowing the tree's terms and cont's: both unchanged while the
 * views are used) instead of new terms: *cont_out NULL or a view, *keys_out a view. */
int hc_merkle_continue_view(const hc_ctx *c, const hc_merkle *m, const cn_term *cont, unsigned depth, size_t max_items,
                            hc_arena *a, cn_term **cont_out, cn_term **keys_out);
/* The first continuation of a sync: #{trees => [{<<>>, MT(subtree(Root, <<>>, depth))}], keys => []}. */
cn_term *hc_merkle_cont0(const hc_ctx *c, const hc_merkle *m, unsigned depth);

/* ---- AW-LWW map (awlww.c) ------------------------------------------------------------------------------------- */

/* A version vector: NodeId -> max counter. */
typedef struct hc_vv {
  hc_dot *e;
  size_t n, cap;
} hc_vv;
void hc_vv_free(hc_vv *v);
int64_t hc_vv_get(const hc_vv *v, int64_t id);
int hc_vv_bump(hc_vv *v, int64_t id, int64_t n); /* v[id] = max(v[id], n) */
int hc_vv_union(hc_vv *v, const hc_vv *o);
int hc_vv_copy(hc_vv *dst, const hc_vv *src);
/* #{NodeId => Max} */
cn_term *hc_vv_term(const hc_vv *v);
/* out = a view of #{NodeId => Max} (values copied into a); 0 or CN_ENOMEM. */
int hc_v_vv(hc_arena *a, cn_term *out, const hc_vv *v);
/* Reads #{Int => Int}; CN_EDECODE on another shape. */
int hc_vv_parse(const cn_term *t, hc_vv *out);

typedef struct hc_kent {
  struct hc_kent *next;
  struct hc_kent *newer, *older; /* the change order: hc_awlww.recent is the last key changed */
  uint64_t seq;                  /* hc_awlww.seq when the entries last changed */
  uint32_t kh;
  uint32_t mark;
  cn_term *key;
  cn_term *raw; /* Entries: #{{Value, Ts} => MapSet(Dots)} */
} hc_kent;

/* A set of dots (no order, no duplicates). */
typedef struct hc_dots {
  hc_dot *e;
  size_t n, cap;
} hc_dots;

typedef struct hc_awlww {
  hc_vv vv;
  /* Dots this node removed (its write or remove of a key whose entries held them) although vv does not cover
   * them: entries a peer sent ahead of its vector (pitfall 19). delta_crdt folds them into vv, which then claims
   * the peer's earlier writes this node has not received, and the next join drops those (keys lost on both
   * sides). They stay out of vv (so out of every vector sent) until a received vector covers them, or until this
   * node holds every dot below them; a join still counts them as seen, so the removed entries stay removed. */
  hc_dots gone;
  uint64_t withheld; /* dots ever put in gone (a claim delta_crdt would have made) */
  hc_kent **b;
  size_t nb, count;
  uint32_t gen;
  hc_kent *recent; /* the key whose entries changed last; ->older leads back in time */
  uint64_t seq;    /* bumped whenever a key's entries are set (a deleted key leaves the order) */
  int otp_release; /* keys are equal under this release's =:= (0: OTP 25); the owner keeps it current */
} hc_awlww;

void hc_awlww_init(hc_awlww *a);
void hc_awlww_free(hc_awlww *a);
hc_kent *hc_awlww_find(const hc_awlww *a, const cn_term *key, uint32_t kh);
/* Replaces the raw entries of key (raw taken; NULL deletes the key). 0 or CN_ENOMEM. */
int hc_awlww_set(hc_awlww *a, const cn_term *key, uint32_t kh, cn_term *raw);
/* The LWW read of raw entries: the user value of the entry with the largest Ts (ties: the smallest entry key
 * in term order), borrowed; NULL when raw is NULL or malformed. */
const cn_term *hc_read_raw(const cn_term *raw);
/* The add of §2.3 on the state's entries for key: *raw_out gets the new entries (caller owns). The version
 * vector takes the new dot and the key's old dots, but an old dot it does not cover goes to gone instead. */
int hc_awlww_add(const hc_ctx *c, hc_awlww *a, int64_t node_id, const cn_term *key, uint32_t kh, const cn_term *value,
                 int64_t ts, cn_term **raw_out);
/* The remove of §2.3: the version vector takes the key's dots (those it does not cover go to gone); the new
 * entries are none. */
int hc_awlww_remove(hc_awlww *a, const cn_term *key, uint32_t kh);
/* After vv or the entries changed: drops the dots of gone that vv covers, then moves vv over every gone dot it
 * reaches without a gap through gone and (scan: a walk of every entry) the dots the entries hold. 0 or
 * CN_ENOMEM. */
int hc_awlww_settle(hc_awlww *a, bool scan);
/* True when dot d is in s. */
bool hc_dots_has(const hc_dots *s, hc_dot d);
/* True when raw entries hold a dot that `then` does not cover: a write this state saw after `then` (a sync round's
 * version vector) was taken. */
bool hc_raw_beyond(const cn_term *raw, const hc_vv *then);
/* Join of one key's entries (§2.4): e1 (state, may be NULL), e2 (delta, may be NULL), v1 the state's version
 * vector before the join, g1 the state's gone dots (counted as covered by v1; NULL: none), v2 the delta's.
 * *out gets the new entries or NULL when none remain. */
int hc_join_entries(const hc_ctx *c, const cn_term *e1, const cn_term *e2, const hc_vv *v1, const hc_dots *g1,
                    const hc_vv *v2, cn_term **out);

/* ---- Placement ring (ring.c) ---------------------------------------------------------------------------------- */

/* libring's ring over a set of member names: points ascending, each with its owner's index in the names given. */
typedef struct hc_ring {
  uint32_t *pt;
  uint32_t *who;
  size_t n;
} hc_ring;
/* Builds the ring of names (borrowed): 128 points phash2({Name, I}, 2^32-1) per name, names inserted in ascending
 * term order (equal names once), a point taken by an earlier name kept. 0, CN_ENOMEM or CN_ELIMIT; n == 0 gives
 * the empty ring. Free with hc_ring_free. */
int hc_ring_build(hc_ring *r, const cn_term *const *names, size_t n);
void hc_ring_free(hc_ring *r);
/* The owner of key h: the index of the smallest point >= h (wrapping around), or -1 on the empty ring. */
long hc_ring_owner(const hc_ring *r, uint32_t h);
/* A child spec's ring key: phash2(phash2(maps:remove(id, Spec)), 2^32-1). CN_EINVAL when spec is not a map. */
int hc_spec_key(const cn_term *spec, uint32_t *out);

/* ---- Membership glue shared by registry.c and supervisor.c (members.c: uses the node API) ---------------------- */

typedef struct cn_node cn_node;
typedef struct cn_crdt cn_crdt;

/* Walks the CRDT's live entries (those cn_crdt_read would copy, in the same order) without copying them: fn gets
 * each key and value borrowed, valid only during the call, and returns false to stop the walk. fn must not write
 * to this CRDT (cn_crdt_put/cn_crdt_delete may free the entry it holds or the next one); a caller that writes
 * copies what it acts on and writes after the walk. False when fn stopped it. */
typedef bool (*hc_crdt_each_fn)(const cn_term *key, const cn_term *value, void *ctx);
bool hc_crdt_each(cn_crdt *c, hc_crdt_each_fn fn, void *ctx);

static inline bool hc_tuple_n(const cn_term *t, uint32_t n) {
  return t && t->type == CN_TUPLE && t->v.tuple.arity == n;
}
static inline bool hc_is_pid(const cn_term *t) { return t && t->type == CN_PID; }
static inline bool hc_proper_list(const cn_term *t) {
  return t && (t->type == CN_NIL || (t->type == CN_LIST && !t->v.list.tail));
}
/* True for a member name {Name, Node} of two atoms. */
bool hc_is_member(const cn_term *m);
/* {Tag, K} (K copied); NULL on OOM. */
cn_term *hc_mk_keyed(cn_node *n, const char *tag, const cn_term *k);
/* The process name of member {Name, Node} Horde derives by Module.concat ('Name.Crdt' for suffix ".Crdt") as
 * {'Name<suffix>', Node}; NULL when the name would be longer than an atom may be (Elixir raises system_limit
 * there) or on OOM. Name comes from peers: up to 1,020 bytes. */
cn_term *hc_member_proc(cn_node *n, const cn_term *member, const char *suffix);
/* A proper list of copies of v[0..n) (a new term), or NULL on OOM. */
cn_term *hc_list_copy(cn_term *const *v, size_t n);
/* Sends the CRDT its neighbours: every member of ms but self, as {'Name.Crdt', Node} (§1.3). */
void hc_push_neighbours(cn_node *n, cn_crdt *c, cn_term *const *ms, size_t count, const cn_term *self);
/* Horde's set_members on the CRDT: atoms become {A, node()}, self is always in; {member, M} keys of members no
 * longer wanted are removed (and their {member_node_info, M} when with_info), new ones added as 1. */
int hc_set_members(cn_node *n, cn_crdt *c, const cn_term *self, const cn_term *const *ms, size_t count, bool with_info);
/* members: :auto, on start and on every nodeup / nodedown (down: the node that went, or NULL): adds {member,
 * {Name, X}} for X in [node() | nodes()] (visible nodes) and removes only the member of the node that went down
 * (with its member_node_info when with_info). Horde's NodeListener instead sets the list to [node() | nodes()],
 * which also removes members this node has not connected to yet; a joining node then deletes the registrations of
 * the nodes it meets last (the join race of vectors/horde/races.txt, seen in 18 of 19 joins of a C node in the
 * real-Horde lab). Adding only on nodeup keeps them; the BEAM members still remove what their own lists lack. */
int hc_auto_members(cn_node *n, cn_crdt *c, const cn_term *self, bool with_info, const cn_atom *down);
/* hc_set_members with explicit node names (each {Name, Node}). */
int hc_named_members(cn_node *n, cn_crdt *c, const cn_term *self, const char *const *nodes, size_t count,
                     bool with_info);

#endif
