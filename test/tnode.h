/* tnode.h: a C node running its loop in its own thread, for tests: what it logs, what its collector process
 * receives and its node events are recorded under a mutex, and tnode_wait waits (10 s at most) for a predicate. */
#ifndef TNODE_H
#define TNODE_H

#include <pthread.h>
#include <stdbool.h>

#include "cn_global.h"
#include "cnode.h"

typedef struct tnode {
  cn_node *n;
  char name[64];      /* the node's name */
  uint16_t epmd_port; /* the EPMD it registers with (0: none) */
  void *user;         /* the test's own object for this node (a CRDT, a registry...) */
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int ready; /* 1 started, -1 failed */
  char log[16384];
  int msgs;       /* messages the collector got */
  char last[512]; /* the last of them, printed (a binary as "binary <size>") */
  int nodeups, nodedowns;
  cn_pid collector;
  cn_pid rec; /* a process that ignores messages and records how it ended: */
  int rec_ended;
  char rec_reason[64]; /* its exit reason, printed */
} tnode;

/* Creates the node from o (its log sink is set to record into t->log), starts global on a visible node, registers `echo` ({From, T} -> From ! T)
 * and `fwd` ({Dest, Msg} -> Dest ! Msg), spawns the collector and the recorder, and subscribes to node events.
 * More processes may be added before tnode_run. */
void tnode_new(tnode *t, const cn_node_opts *o);
/* Starts the node and runs its loop in a new thread. */
void tnode_run(tnode *t);
/* Spawns a process running handler(state) and registers it as name (before tnode_run). */
void tnode_spawn_named(tnode *t, const char *name, cn_handler_fn handler, void *state);
/* tnode_run, then waits until the node is up (fails the test otherwise). */
void tnode_run_ready(tnode *t);
/* tnode_new then tnode_run. */
void tnode_start(tnode *t, const cn_node_opts *o);
/* Stops the node, joins its thread and frees it. */
void tnode_stop(tnode *t);
/* Waits until pred(t, arg) holds under t's lock, 10 s at most; returns whether it holds. */
bool tnode_wait(tnode *t, bool (*pred)(tnode *, const void *), const void *arg);
/* The same, ms at most. */
bool tnode_wait_ms(tnode *t, bool (*pred)(tnode *, const void *), const void *arg, long ms);
bool tnode_is_ready(tnode *t, const void *unused);
bool tnode_has_msgs(tnode *t, const void *count); /* const int * */
bool tnode_log_has(tnode *t, const void *text);
bool tnode_last_has(tnode *t, const void *text);
bool tnode_has_nodedown(tnode *t, const void *unused);
bool tnode_rec_ended(tnode *t, const void *unused);
/* Makes `via` send msg (taken) to {dest_name, dest_node} from its fwd process (thread-safe). */
void tnode_send_via(tnode *via, const char *dest_name, const char *dest_node, cn_term *msg);

#endif
