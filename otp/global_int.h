/* global_int.h: state shared by the parts of OTP's global on a C node (never installed): global_names.c (the
 * name and lock tables), global.c (the connection exchange), global_server.c (the global_name_server process and
 * its start), global_lock.c and the files on it (the locker, the registrar, lock requests from C). Like every
 * service, it uses the public API only (cnode.h, cn_term.h, cn_base.h). */
#ifndef OTP_GLOBAL_INT_H
#define OTP_GLOBAL_INT_H

#include "cn_global.h"
#include "cnode.h"

/* uthash allocates through libcnode's hooks, and reports a failed allocation instead of exiting: the element is
 * then not added and gl_hash_oom is set, which the add site checks. */
extern _Thread_local bool gl_hash_oom;
#define uthash_malloc(sz) cn_malloc(sz)
#define uthash_free(ptr, sz) cn_free(ptr)
#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(elt) (gl_hash_oom = true)
#include <uthash.h>

#define GL_SERVER_NAME "global_name_server"

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
  cn_term *name; /* owned */
  cn_pid pid;
  cn_term *method; /* owned: the resolve fun, carried intact */
  cn_ref mref;
  const cn_atom *reg_node; /* register_ext: the node that registered it for an external pid */
} gl_name;

/* What OTP keeps per peer in its known map and process dictionary. */
typedef enum { WL_NONE, WL_LOCK_IS_SET, WL_EXCHANGE } gl_wait_lock;
typedef struct gl_peer {
  const cn_atom *node;
  bool known; /* Node => Vsn */
  int vsn;
  bool pending; /* {pending, Node} => Vsn */
  int pending_vsn;
  bool removing; /* {removing, Node} */
  bool synced;
  bool resolver; /* a connect session of ours is open (OTP's resolvers entry) */
  cn_term *resolver_tag;
  cn_term *tag_my, *tag_his; /* sync_tag_my / sync_tag_his; NULL is undefined */
  int prot_vsn;
  gl_wait_lock wait_lock;
  cn_term *wait_names;    /* the exchange that came before lock_is_set */
  cn_term *save_ops;      /* our resolved ops, waiting for the peer's resolved */
  cn_term *save_resolved; /* {HisKnown, NamesExt, HisResolved}: the peer's resolved came first */
  cn_term *pre_connect;   /* {Vsn, InitMsg, HisTag}: init_connect before our nodeup */
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
  int refs;      /* the three processes and the node's slot (cn_node_attach) */
  cn_proc *self; /* global_name_server itself, set by each of its callbacks: used only from its context */
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

static inline bool gl_is_atom(const cn_term *t) { return t && t->type == CN_ATOM; }
static inline bool gl_is_pid(const cn_term *t) { return t && t->type == CN_PID; }
static inline const cn_term *gl_el(const cn_term *t, uint32_t arity, uint32_t i) { return cn_tuple_elem(t, arity, i); }
/* A pid of this node made before it started carries creation 0: it means this node's creation, as peers see it. */
static inline cn_pid gl_live_pid(cn_node *n, cn_pid p) {
  if (p.node == cn_node_name(n) && !p.creation) p.creation = cn_node_creation(n);
  return p;
}
/* Pid and ref equality with gl_live_pid's reading of creation 0 (our own pids from before the start). */
static inline bool gl_pid_eq(cn_node *n, cn_pid a, cn_pid b) { return cn_pid_eq(gl_live_pid(n, a), gl_live_pid(n, b)); }
static inline bool gl_ref_eq(cn_node *n, cn_ref a, cn_ref b) {
  if (a.node == cn_node_name(n) && !a.creation) a.creation = cn_node_creation(n);
  if (b.node == cn_node_name(n) && !b.creation) b.creation = cn_node_creation(n);
  return cn_ref_eq(&a, &b);
}

/* global_server.c */
/* The state of the node's global_name_server, or NULL (no global on the node, or it has ended). */
gl_state *gl_of(cn_node *n);
void gl_unref(gl_state *g);

/* global_names.c: the name and lock tables (all but gl_where and gl_can_set_lock run in the server). */
/* Elements of a proper list (or nil): *len and the array, or NULL for another shape. */
const cn_term *gl_list_elems(const cn_term *t, uint32_t *len);
/* where/1: the pid registered as name, if alive (local pids are checked). */
bool gl_where(gl_state *g, const cn_term *name, cn_pid *out);
bool gl_pid_has_name(gl_state *g, cn_pid pid);
/* The row of name in the table (a pointer to the link that holds it; *slot NULL when absent). */
gl_name **gl_name_slot(gl_state *g, const cn_term *name);
void gl_name_delete(gl_state *g, const cn_term *name);
/* ins_name / ins_name_ext: (re)binds name to pid under a monitor; from is the registering pid, or the connecting
 * node (then extra is [{vsn, V}, {lock, LockId}]): the name is dropped again when the lock that allowed it is gone. */
/* global_resolve.c: fun global:Fun/3 as a new term (NULL: no memory); a clash between p1 and p2 for name resolved
 * by method as OTP's resolve_it/4 does (true: *winner keeps the name; false: none does); the rpc function
 * global:resolve_it/4 registered on the node (0 also when it already is). */
cn_term *gl_method(cn_node *n, const char *fun);
bool gl_resolve(cn_node *n, cn_proc *self, const cn_term *method, const cn_term *name, cn_pid p1, cn_pid p2,
                cn_pid *winner);
int gl_resolve_serve(cn_node *n);
void gl_name_insert(gl_state *g, const cn_term *name, cn_pid pid, const cn_term *method, const cn_atom *reg_node,
                    const cn_term *from, const cn_term *extra);
/* [{Name, Pid, Method}] and [{Name, Pid, RegNode}] (names registered by register_name_external). */
cn_term *gl_names_list(gl_state *g);
cn_term *gl_names_ext_list(gl_state *g);
/* do_ops/5: inserts of external names first, then other inserts, then deletes, as OTP orders them. */
void gl_do_ops(gl_state *g, const cn_term *ops, const cn_term *conn_node, const cn_term *names_ext,
               const cn_term *extra);
/* The lock row of a resource, or NULL. */
gl_lock *gl_lock_find(gl_state *g, const cn_term *rid);
/* OTP's can_set_lock/1: false when another requester holds the resource. */
bool gl_can_set_lock(gl_state *g, const cn_term *id);
/* handle_set_lock/3 (true when set or already held by the same requester) and handle_del_lock/3. */
bool gl_lock_set(gl_state *g, const cn_term *id, cn_pid pid);
void gl_lock_del(gl_state *g, const cn_term *id, cn_pid pid);
/* Frees every name and lock row (no demonitor: gl_unref's teardown). */
void gl_tables_free(gl_state *g);
/* A monitored pid went away: its locks and names go (OTP's 'DOWN' handling). */
void gl_down(gl_state *g, cn_ref ref);
/* Atom order (Erlang compares atoms by their text). */
int gl_atom_cmp(const cn_atom *a, const cn_atom *b);

/* global.c: the connection exchange */
/* Nodes known to global (visible and synced or being added), as a new array (caller frees); *count set. */
const cn_atom **gl_known_nodes(gl_state *g, size_t *count);
/* A uniform random number in 1..max. */
uint32_t gl_uniform(gl_state *g, uint32_t max);
/* Casts {'$gen_cast', msg} to global_name_server on node (connecting on demand); msg is taken. */
void gl_cast(gl_state *g, cn_proc *from, const cn_atom *node, cn_term *msg);
/* The server's calls, casts and messages of the exchange: gen_server callbacks (state is the gl_state). */
cn_term *gl_handle_call(cn_proc *self, const cn_term *req, const cn_term *from, void *state);
void gl_handle_cast(cn_proc *self, const cn_term *req, void *state);
void gl_handle_info(cn_proc *self, const cn_term *msg, void *state);
/* Frees the peers and the waiting syncers (gl_unref's teardown). */
void gl_free_peers(gl_state *g);

/* global_lock.c */
int gl_locker_start(gl_state *g);
int gl_registrar_start(gl_state *g);
/* Queues a {register, ...} / {unregister, ...} request from a C caller (from: its gen_server From). */
void gl_registrar_request(gl_state *g, const cn_term *from, const cn_term *op);

#endif /* OTP_GLOBAL_INT_H */
