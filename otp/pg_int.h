/* pg_int.h: the parts of OTP's pg on a C node (never installed): pg_table.c, the pure part (group tables as pg's
 * ETS table keeps them, pid lists, and the decoding of pg's messages), and pg.c, the scope process and the C API.
 * Like every service, it uses the public API only. */
#ifndef OTP_PG_INT_H
#define OTP_PG_INT_H

#include "cn_pg.h"
#include "cnode.h"

/* A growable array of pids (duplicates allowed: a pid joins a group once per join). */
typedef struct pg_pids {
  cn_pid *p;
  size_t n, cap;
} pg_pids;

/* One group: every member (all) and the members on this node (local), as pg's ETS row {Group, All, Local}. */
typedef struct pg_group {
  struct pg_group *next; /* hash chain */
  uint32_t hash;         /* erlang:phash2(Group) */
  cn_term *name;         /* owned */
  pg_pids all, local;
} pg_group;

/* Groups by term (exact equality, =:=). */
typedef struct pg_table {
  pg_group **b;
  size_t nb, count;
} pg_table;

/* The most pids one message may carry and the most groups one sync may carry: far above what a real scope sends,
 * a bound on what a peer can make the node allocate. */
#define PG_MAX_PIDS (1u << 20)

/* A pid of this node made before it started carries creation 0: it means this node's creation. */
static inline cn_pid pg_live_pid(const cn_atom *me, uint32_t creation, cn_pid p) {
  if (p.node == me && !p.creation) p.creation = creation;
  return p;
}

/* pg_table.c ------------------------------------------------------------------------------------------------- */
int pg_pids_add(pg_pids *l, cn_pid p);
/* Removes the first occurrence of p (lists:delete/2); true when there was one. */
bool pg_pids_del(pg_pids *l, cn_pid p);
bool pg_pids_has(const pg_pids *l, cn_pid p);
void pg_pids_free(pg_pids *l);
/* The pids as a proper list term (new), or NULL. */
cn_term *pg_pids_term(const pg_pids *l);

pg_group *pg_table_find(const pg_table *t, const cn_term *name);
/* The group, created empty when absent (NULL: no memory). */
pg_group *pg_table_get(pg_table *t, const cn_term *name);
/* Removes and frees g when it has no member left. */
void pg_table_drop_empty(pg_table *t, pg_group *g);
void pg_table_free(pg_table *t);
/* Calls fn on every group (fn may not add or drop groups). */
void pg_table_each(const pg_table *t, void (*fn)(pg_group *g, void *ctx), void *ctx);

/* A pid or a proper list of pids, as pg's PidOrPids (at most PG_MAX_PIDS): 0 and *out filled (free with
 * pg_pids_free), CN_EDECODE for another shape, CN_ELIMIT, CN_ENOMEM. */
int pg_pids_decode(const cn_term *t, pg_pids *out);

/* What the scope process gets, as pg.erl's handle_info/handle_cast clauses read them. Subterms are borrowed
 * from the message. */
typedef enum {
  PGM_DISCOVER, /* {discover, Peer} or {discover, Peer, Vsn}: peer */
  PGM_JOIN,     /* {join, Peer, Group, PidOrPids}: peer, group, pids */
  PGM_LEAVE,    /* {leave, Peer, PidOrPids, Groups}: peer, pids, groups (a proper list) */
  PGM_SYNC,     /* (cast) {sync, Peer, [{Group, [Pid]}]}: peer, groups */
  PGM_DOWN,     /* {'DOWN', Ref, process, Pid, Reason}: ref, pid (a pid or, for a monitor by name, absent) */
  PGM_NODEUP,   /* {nodeup, Node} (net_kernel:monitor_nodes/1): node */
  PGM_NODEDOWN, /* {nodedown, Node}: node */
} pg_msg_kind;

typedef struct pg_msg {
  pg_msg_kind kind;
  cn_pid peer, pid;
  cn_ref ref;
  const cn_atom *node;
  const cn_term *group;  /* PGM_JOIN */
  const cn_term *pids;   /* PGM_JOIN, PGM_LEAVE: a pid or a list of pids (check with pg_pids_decode) */
  const cn_term *groups; /* PGM_LEAVE: [Group]; PGM_SYNC: [{Group, [Pid]}], both checked proper lists */
} pg_msg;

/* Reads one message: 0 and *out, or CN_EDECODE for anything pg would not accept (OTP's pg crashes with badarg on
 * those; the C scope logs and ignores them). Never reads past the term. */
int pg_msg_decode(const cn_term *msg, pg_msg *out);
/* The elements of a proper list (nil: *len 0, non-NULL result); NULL for another shape. */
const cn_term *pg_list(const cn_term *t, uint32_t *len);
/* Checks one element of a sync's group list: {Group, [Pid]} with pids decoded into *pids. */
int pg_sync_entry(const cn_term *e, const cn_term **group, pg_pids *pids);

#endif /* OTP_PG_INT_H */
