/* sup_int.h: what the parts of the Horde.DynamicSupervisor member share (internal, never installed): the member's
 * state (struct cn_horde_sup, its children and member mirror) and the sup_ functions the parts call in each other.
 * supervisor.c: the process N, its requests and the public API; sup_members.c: the member mirror and placement;
 * sup_children.c: child specs and the local children; sup_recovery.c: shutdown, handoff and orphan recovery, diffs. */
#ifndef HC_SUP_INT_H
#define HC_SUP_INT_H

#include <string.h>

#include "hc_int.h"
#include "hc_rules.h"
#include "horde.h"

enum { R_PERMANENT, R_TRANSIENT, R_TEMPORARY };
/* A local child's state: running; being stopped for terminate_child (key already deleted); being stopped for a
 * graceful shutdown (relinquished when it ends); waiting for a restart retry. */
enum { C_RUNNING, C_TERMINATING, C_RELINQUISHING, C_RESTARTING };

typedef struct child {
  cn_term *id;   /* the random ChildId */
  cn_term *spec; /* the spec as stored: id => ChildId */
  cn_pid pid;
  int restart, state;
  int64_t shutdown_ms; /* -1: infinity; 0: brutal_kill */
  uint64_t kill_timer;
  uint64_t *starts; /* times of the restarts inside the intensity window (ms) */
  size_t nstarts;
} child;

/* One name of the member mirror: {member, M} and {member_node_info, M} as the crdt_update diffs give them. */
typedef struct member {
  cn_term *name;
  bool is_member, has_info, monitored;
  cn_horde_status status;
  cn_ref mref;
} member;

typedef struct entry {
  const cn_atom *mod;
  cn_horde_start_fn fn;
  void *ctx;
} entry;

/* A C child that looked orphaned in a scan, and since when (rules 5-7). */
typedef struct cand {
  cn_term *id;
  uint64_t since;
  bool seen;
} cand;

/* The ring of the members eligible for one kind of child: 0 C-capable, 1 the others. */
typedef struct pring {
  bool valid;
  hc_ring r;
  const cn_term **names; /* borrowed from the member mirror */
} pring;

/* Graceful shutdown: children first, then polls of the peers' CRDTs until they show it. */
typedef struct sdown {
  bool on, begun, waiting, over; /* asked for; children being stopped; peers being polled; finished */
  cn_horde_done_fn done;
  void *ctx;
  cn_term **keys; /* the keys peers must show: own member_node_info, then the relinquished children */
  size_t nkeys;
  uint64_t deadline;
  int asked, answered, seen; /* the current poll round */
} sdown;

struct cn_horde_sup {
  cn_node *n;
  cn_crdt *crdt; /* NULL once the CRDT ended */
  cn_pid crdt_pid, pid, psup_pid;
  cn_proc *self; /* the process N while it runs a handler, else NULL */
  bool alive, monitoring, shutting_down, want_stop;
  bool dirty;    /* the CRDT or the connected nodes changed since the last orphan scan */
  cn_pid *links; /* processes N is to link to at its next wake-up (asked outside its handler) */
  size_t nlinks;
  int refs; /* the CRDT, N and 'N.ProcessesSupervisor' */
  char name[256];
  cn_term *self_member; /* {N, node()} */
  cn_horde_sup_opts o;
  member *mem;
  size_t nmem;
  pring ring[2];
  child **ch;
  size_t nch;
  entry *ent;
  size_t nent;
  cand *cand;
  size_t ncand;
  sdown sd;
  uint64_t tick;
};

static inline uint64_t now_ms(void) { return uv_hrtime() / 1000000; }
static inline cn_term *atom(cn_horde_sup *s, const char *a) { return cn_mk_atomc(s->n, a); }
static inline cn_term *err1(cn_horde_sup *s, cn_term *why) { return cn_mk_tuple(2, atom(s, "error"), why); }
static inline cn_term *bin(const char *txt) { return cn_mk_binary(txt, strlen(txt)); }

/* ---- supervisor.c ---------------------------------------------------------------------------------------------- */

/* Logs what and t (may be NULL) under the member's name. */
void sup_logt(cn_horde_sup *s, cn_log_level level, const char *what, const cn_term *t);
/* Wakes N up to act on what was asked of it outside its handler (want_stop, sd.on, links). */
void sup_wake(cn_horde_sup *s);
/* Sends m (taken) to N after ms, while N runs; *timer (may be NULL) gets the timer. */
void sup_send_later(cn_horde_sup *s, unsigned ms, cn_term *m, uint64_t *timer);

/* ---- sup_members.c: the member mirror and placement ---------------------------------------------------------- */

void sup_rings_dirty(cn_horde_sup *s);
member *sup_mem_find(cn_horde_sup *s, const cn_term *name);
/* The mirror's entry for name, added when missing; NULL on OOM or when name is not a member name. */
member *sup_mem_get(cn_horde_sup *s, const cn_term *name);
cn_horde_status sup_mem_status(const member *m);
int sup_choose(cn_horde_sup *s, const cn_term *spec, const cn_term **owner);
bool sup_is_self(cn_horde_sup *s, const cn_term *name);
/* A %Horde.DynamicSupervisor.Member{} for name with status (a new term). */
cn_term *sup_info_value(cn_horde_sup *s, const cn_term *name, const char *status);
/* Writes {tag, k} => v (v taken) to the CRDT. */
int sup_put_keyed(cn_horde_sup *s, const char *tag, const cn_term *k, cn_term *v);
int sup_delete_keyed(cn_horde_sup *s, const char *tag, const cn_term *k);
void sup_own_status(cn_horde_sup *s, bool check_crdt);
void sup_monitor_members(cn_horde_sup *s);
/* Sends the CRDT its neighbours: the CRDTs of the other members. */
void sup_push_neighbours(cn_horde_sup *s);

/* ---- sup_children.c: child specs and the local children ------------------------------------------------------ */

cn_term *sup_reason(cn_horde_sup *s, const char *what, const cn_term *t);
cn_term *sup_with_id(cn_horde_sup *s, const cn_term *spec, const cn_term *id);
child *sup_child_by_pid(cn_horde_sup *s, cn_pid pid);
child *sup_child_by_id(cn_horde_sup *s, const cn_term *id);
/* Forgets a local child and frees it. */
void sup_child_drop(cn_horde_sup *s, child *c);
void sup_link_to(cn_horde_sup *s, cn_pid pid);
cn_term *sup_start_local(cn_horde_sup *s, const cn_term *spec);
cn_term *sup_start_new(cn_horde_sup *s, const cn_term *spec);
/* Logs reply (taken) unless it is {ok, _}. */
void sup_log_reply(cn_horde_sup *s, const char *what, cn_term *reply);
void sup_stop_child(cn_horde_sup *s, child *c, int state);
void sup_restart(cn_horde_sup *s, child *c);
void sup_child_exit(cn_horde_sup *s, child *c, const cn_term *reason);

/* ---- sup_recovery.c: shutdown, handoff and orphan recovery, CRDT diffs --------------------------------------- */

void sup_relinquish(cn_horde_sup *s, child *c);
/* Ends a graceful shutdown: its done callback runs once. */
void sup_finish_shutdown(cn_horde_sup *s, const char *how);
void sup_poll_peers(cn_horde_sup *s);
/* Starts a graceful shutdown: every local child stopped and relinquished, then the peers polled. */
void sup_begin_shutdown(cn_horde_sup *s);
/* Called with a {process, Id} key, its Id and its value, all borrowed from the live CRDT: fn must not write to the
 * CRDT (a write may free what it was given); false stops the walk. */
typedef bool (*sup_proc_fn)(cn_horde_sup *s, const cn_term *key, const cn_term *id, const cn_term *v, void *ctx);
/* Runs fn on every {process, Id} => V of the CRDT, without copying it. */
void sup_each_process(cn_horde_sup *s, sup_proc_fn fn, void *ctx);
/* Rules 5-7 over every entry (the tick's orphan scan). */
void sup_scan_orphans(cn_horde_sup *s);
/* {crdt_update, Diffs}: the member mirror, then relinquished children (Horde's crdt_update). */
void sup_on_update(cn_horde_sup *s, const cn_term *diffs);

#endif
