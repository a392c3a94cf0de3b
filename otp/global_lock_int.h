/* global_lock_int.h: what the parts of global's lock side share (internal, never installed): global_lock.c's lock
 * primitives (multi_call, set_lock/del_lock on a list of nodes, sleeping inside a process) and small term helpers,
 * used by the locker (global_locker.c), the registrar (global_registrar.c) and the C API (global_api.c). */
#ifndef OTP_GLOBAL_LOCK_INT_H
#define OTP_GLOBAL_LOCK_INT_H

#include "global_int.h"

static inline cn_term *A(cn_node *n, const char *s) { return cn_mk_atomc(n, s); }

/* ---- global_lock.c: lock primitives ------------------------------------------------------------------------- */

bool gl_has_node(const cn_atom *const *v, size_t k, const cn_atom *a);
/* lists:max/1 of node names (the "boss" locked first and released last). */
const cn_atom *gl_max_node(const cn_atom *const *v, size_t k);
/* A list of the node atoms (a new term), or NULL on OOM. */
cn_term *gl_node_list(const cn_atom *const *v, size_t k);

/* multi_call: {Request} to global_name_server on each node, as gen_server:multi_call/3. */
typedef struct gl_mc gl_mc;
/* closed: the calling process ended; res[i]: 1 a `true` reply, 0 another reply, -1 a bad node. */
typedef void (*gl_mc_done_fn)(cn_proc *self, gl_mc *m, void *ctx);
typedef struct gl_mc_slot {
  gl_mc *m;
  size_t i;
} gl_mc_slot;
struct gl_mc {
  size_t count, left;
  const cn_atom **nodes;
  int8_t *res;
  gl_mc_slot *slots;
  bool closed;
  gl_mc_done_fn done;
  void *ctx;
};
/* Calls every node (infinity: as OTP, a server that never answers holds the chain). done runs once, maybe
 * before this returns (when every call failed at once). Returns CN_ENOMEM only, and then done never runs. */
int gl_mc_start(cn_proc *self, const cn_atom *const *nodes, size_t k, const cn_term *req, gl_mc_done_fn done,
                void *ctx);

/* status: 0 set, CN_EBUSY refused (released again where it was set), CN_ECLOSED the caller ended, CN_ENOMEM. */
typedef void (*gl_st_fn)(cn_proc *self, int status, void *ctx);
/* set_lock(Id, Nodes, 0) (del false) or del_lock(Id, Nodes) (del true); done may run before this returns. */
void gl_lock_nodes(cn_proc *self, bool del, const cn_term *id, const cn_atom *const *nodes, size_t k, gl_st_fn done,
                   void *ctx);
/* OTP's delete_global_lock: del_lock on every node but the boss, then on the boss. */
void gl_delete_global_lock(cn_proc *self, const cn_term *id, const cn_atom *const *nodes, size_t k, gl_st_fn done,
                           void *ctx);
/* Sleeps ms inside self (cn_proc_after); done gets 0 after it, CN_ECLOSED when self ends first, or at once the
 * error of a timer that cannot be set. */
void gl_sleep_ms_in(cn_proc *self, unsigned ms, gl_st_fn done, void *ctx);
/* random_sleep/1: up to 1/4 s the first time, doubling up to 8 s. */
unsigned gl_random_sleep_ms(gl_state *g, int times);

#endif
