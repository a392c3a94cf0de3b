/* global_int.h: state shared by global.c (the global_name_server: name and lock tables, the connection
 * exchange) and global_lock.c (its locker, its registrar, lock requests from C). Never installed. */
#ifndef CNODE_GLOBAL_INT_H
#define CNODE_GLOBAL_INT_H

#include "node_int.h"

/* global's protocol version (OTP 25: 8). */
#define GL_VSN 8

/* A process holding a lock, with global_name_server's monitor on it. */
typedef struct gl_holder {
  struct gl_holder *next;
  cn_pid pid;
  cn_ref mref;
} gl_holder;

/* One row of OTP's global_locks: {ResourceId, LockRequesterId, [{Pid, Ref}]}. */
typedef struct gl_lock {
  struct gl_lock *next;
  cn_term *rid, *req; /* owned */
  gl_holder *holders;
} gl_lock;

/* One row of global_names (and of global_names_ext when reg_node is set). */
typedef struct gl_name {
  struct gl_name *next;
  cn_term *name;   /* owned */
  cn_pid pid;
  cn_term *method; /* owned: the resolve fun, carried intact */
  cn_ref mref;
  const cn_atom *reg_node; /* register_ext: the node that registered it for an external pid */
} gl_name;

/* What OTP keeps per peer in its known map and process dictionary. */
typedef enum { WL_NONE, WL_LOCK_IS_SET, WL_EXCHANGE } gl_wait_lock;
typedef struct gl_peer {
  const cn_atom *node;
  bool known;        /* Node => Vsn */
  int vsn;
  bool pending;      /* {pending, Node} => Vsn */
  int pending_vsn;
  bool removing;     /* {removing, Node} */
  bool synced;
  bool resolver;     /* a connect session of ours is open (OTP's resolvers entry) */
  cn_term *resolver_tag;
  cn_term *tag_my, *tag_his; /* sync_tag_my / sync_tag_his; NULL is undefined */
  int prot_vsn;
  gl_wait_lock wait_lock;
  cn_term *wait_names;   /* the exchange that came before lock_is_set */
  cn_term *save_ops;     /* our resolved ops, waiting for the peer's resolved */
  cn_term *save_resolved; /* {HisKnown, NamesExt, HisResolved}: the peer's resolved came first */
  cn_term *pre_connect;  /* {Vsn, InitMsg, HisTag}: init_connect before our nodeup */
  cn_term *lock_id;
  UT_hash_handle hh;
} gl_peer;

/* A {sync, Nodes} call waiting for those nodes to be synced (or down). */
typedef struct gl_syncer {
  struct gl_syncer *next;
  cn_term *from;
  const cn_atom **nodes;
  size_t count;
} gl_syncer;

typedef struct gl_locker gl_locker;
typedef struct gl_registrar gl_registrar;

/* Everything the three processes share; freed when the last of them ends. */
typedef struct gl_state {
  cn_node *n;
  int refs;
  cn_pid server, locker, registrar;
  bool connect_all;
  bool global_lock_down;
  int64_t tag_counter;
  uint64_t rand;
  gl_lock *locks;
  gl_name *names;
  gl_peer *peers;
  gl_syncer *syncers;
  gl_locker *lk;
  gl_registrar *reg;
} gl_state;

/* global.c */
/* Starts global_name_server, its locker and its registrar (builtin_start, for visible nodes). */
int global_start(cn_node *n);
/* The state of the node's global_name_server, or NULL (hidden node, or global has ended). */
gl_state *gl_of(cn_node *n);
void gl_unref(gl_state *g);
/* Atom order (Erlang compares atoms by their text). */
int gl_atom_cmp(const cn_atom *a, const cn_atom *b);
/* The lock row of a resource, or NULL. */
gl_lock *gl_lock_find(gl_state *g, const cn_term *rid);
/* OTP's can_set_lock/1: false when another requester holds the resource. */
bool gl_can_set_lock(gl_state *g, const cn_term *id);
/* Nodes known to global (visible and synced or being added), as a new array (caller frees); *count set. */
const cn_atom **gl_known_nodes(gl_state *g, size_t *count);
/* where/1: the pid registered as name, if alive (local pids are checked). */
bool gl_where(gl_state *g, const cn_term *name, cn_pid *out);
bool gl_pid_has_name(gl_state *g, cn_pid pid);
/* A uniform random number in 1..max. */
uint32_t gl_uniform(gl_state *g, uint32_t max);
/* Casts {'$gen_cast', msg} to global_name_server on node (connecting on demand); msg is taken. */
void gl_cast(gl_state *g, cn_proc *from, const cn_atom *node, cn_term *msg);

/* global_lock.c */
int gl_locker_start(gl_state *g);
int gl_registrar_start(gl_state *g);
/* Queues a {register, ...} / {unregister, ...} request from a C caller (from: its gen_server From). */
void gl_registrar_request(gl_state *g, const cn_term *from, const cn_term *op);

#endif
