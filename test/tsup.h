/* tsup.h: test helpers for the Horde.DynamicSupervisor member (test_supervisor, test_sup_cluster): child specs,
 * calls, and each member's CRDT read as a view of its {process, _} entries and members, checked against the ring. */
#ifndef TSUP_H
#define TSUP_H

#include <stdbool.h>
#include <stdint.h>

#include "cnode.h"
#include "horde.h"

#define TSUP_NAME "Elixir.MyApp.Sup"
#define TSUP_MAXP 128

/* Where a member is read from: a node that makes the calls, and the member's node (NULL: that same node). */
typedef struct tsup_at {
  cn_node *via;
  const char *node;
} tsup_at;

typedef struct tsup_ent {
  cn_term *id;
  char owner[64]; /* the owner's node; "" for a relinquished {nil, Spec} */
  cn_pid pid;
  int64_t i; /* the spec's start argument */
} tsup_ent;

typedef struct tsup_view {
  tsup_ent p[TSUP_MAXP];
  int n;
  cn_term *names[8];
  cn_horde_member m[8]; /* the members ({member, M} present) with their status */
  int nm;
} tsup_view;

/* #{id => I, start => {Mod, start_link, [I]}, restart => Restart} (+ cnode => true when c). */
cn_term *tsup_spec(cn_node *n, const char *mod, int64_t i, const char *restart, bool c);
/* A gen_server call from via to {name, node} (node NULL: via's own name); req taken; asserts it is answered. */
cn_term *tsup_call(cn_node *via, const char *name, const char *node, cn_term *req);
/* {ok, Pid} (asserted; reply freed). */
cn_pid tsup_started(cn_term *reply);
void tsup_expect_atom(const cn_term *t, const char *a);
/* Pids of different nodes' atom tables, compared by node text. */
bool tsup_pid_eq(cn_pid a, cn_pid b);
/* A pid term for n (the node atom re-interned in n's table). */
cn_term *tsup_pid(cn_node *n, cn_pid p);
/* get on a child through via: its N, or -1 when the call fails. */
int64_t tsup_get(cn_node *via, cn_pid p);

void tsup_view_of(tsup_at at, tsup_view *v);
void tsup_view_free(tsup_view *v);
const tsup_ent *tsup_find(const tsup_view *v, int64_t i);
int tsup_alive(const tsup_view *v);
/* The node the view's members give the C child tsup_spec(n, mod, i, restart, true), or "none". */
const char *tsup_owner(cn_node *n, const tsup_view *v, const char *mod, int64_t i, const char *restart);
/* Every member's CRDT holds want entries, each start argument once, each owned by the member that member's own
 * view chooses, and all hold the same (Id, owner, pid). */
bool tsup_agree(const tsup_at *at, int k, int want, const char *mod, const char *restart, bool verbose);
/* Waits for tsup_agree (fails after limit_ms, showing the views); returns the milliseconds it took. */
long tsup_wait_agree(const tsup_at *at, int k, int want, const char *mod, const char *restart, long limit_ms);
/* Waits until every member's view shows `alive` alive members. */
void tsup_wait_alive(const tsup_at *at, int k, int alive, long limit_ms);
/* which_children of each member's 'N.ProcessesSupervisor' (nodes[0..k), called from via) lists exactly the entries
 * nodes[0]'s CRDT gives that member, as [{Id, Pid, worker, [Mod]}]; returns how many there are in all. */
int tsup_which(cn_node *via, const char *const *nodes, int k, const char *mod);
/* count_children of the member's 'N.ProcessesSupervisor' (shape asserted): its number of children. */
int64_t tsup_count(tsup_at at);

#endif
