/* cn_global.h: OTP's `global` on a C node (cluster-wide names and locks), a service on the public API of
 * cnode.h: include <cnode/cn_global.h> and call cn_global_start on a visible node. */
#ifndef CN_GLOBAL_H
#define CN_GLOBAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cnode.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Starts global_name_server (with its locker and registrar) on n: a visible node takes part in OTP's global
 * after this. BEAM peers' global:sync/0 waits for every visible node, so a visible node should call it. Call it
 * once, after cn_node_new and before cn_node_start (peers that connected before the call are not met), on the
 * loop's thread. CN_ESTATE on a hidden node, CN_EEXIST when already started; on another error the node is left
 * without global and should be freed. */
CN_EXPORT int cn_global_start(cn_node *n);

/* After cn_global_start a visible node runs global_name_server as a full member of OTP's `global` (protocol
 * version 8): it takes part in the connection exchange, so BEAM peers mesh with it (unless the node was made
 * with no_connect_all) and global:sync/0, set_lock/1 and trans/2 on them complete; it keeps the cluster's table
 * of global names and answers lock requests. On a node without global (hidden, or cn_global_start not called)
 * these calls return CN_ESTATE. Names are terms (borrowed, copied). Name clashes found when partitions join are
 * resolved as OTP's default resolver global:random_exit_name/3 does (the pid on the node with the smaller name
 * keeps it, the other is killed): a resolve fun passed by BEAM code cannot run in C. A lock id is
 * {ResourceId, LockRequesterId}; nodes == NULL means [node() | nodes()], as set_lock/1; retries < 0 means
 * infinity (with OTP's random back-off between tries). */

/* The result of a global request, run once from self's context: 0 done; CN_EEXIST the name was taken (or pid
 * has a global name); CN_EBUSY the lock is held by another requester (retries used up: trans aborted);
 * CN_EEXIT global_name_server ended; CN_ECLOSED self ended first. */
typedef void (*cn_global_fn)(cn_proc *self, int status, void *ctx);
/* Runs in self's context while a cn_global_trans lock is held; the lock is released when it returns. */
typedef void (*cn_global_trans_fn)(cn_proc *self, void *ctx);

/* global:register_name(Name, Pid): registered on every known node under global's own lock. */
CN_EXPORT int cn_global_register_name(cn_proc *self, const cn_term *name, cn_pid pid, cn_global_fn cb, void *ctx);
/* global:unregister_name(Name) on every known node (0 also when it was not registered). */
CN_EXPORT int cn_global_unregister_name(cn_proc *self, const cn_term *name, cn_global_fn cb, void *ctx);
/* global:whereis_name(Name) from this node's table: 0 and *out, or CN_ENOTFOUND. */
CN_EXPORT int cn_global_whereis_name(cn_node *n, const cn_term *name, cn_pid *out);
/* global:send(Name, Msg): msg (borrowed) to the pid registered as name; CN_ENOTFOUND when there is none. */
CN_EXPORT int cn_global_send(cn_node *n, cn_proc *from, const cn_term *name, const cn_term *msg);
/* global:set_lock(Id, Nodes, Retries): the lock is held by self until cn_global_del_lock or self ends. */
CN_EXPORT int cn_global_set_lock(cn_proc *self, const cn_term *id, const cn_atom *const *nodes, size_t count,
                                 int retries, cn_global_fn cb, void *ctx);
/* global:del_lock(Id, Nodes). */
CN_EXPORT int cn_global_del_lock(cn_proc *self, const cn_term *id, const cn_atom *const *nodes, size_t count,
                                 cn_global_fn cb, void *ctx);
/* global:trans(Id, Fun, Nodes, Retries): set_lock, fn(self, ctx), del_lock, then cb (CN_EBUSY: fn never ran). */
CN_EXPORT int cn_global_trans(cn_proc *self, const cn_term *id, const cn_atom *const *nodes, size_t count, int retries,
                              cn_global_trans_fn fn, cn_global_fn cb, void *ctx);
/* global:sync(): cb once this node is synced with every visible node it is connected to (or they went down). */
CN_EXPORT int cn_global_sync(cn_proc *self, cn_global_fn cb, void *ctx);
/* How many names the node's table of global names holds now (every node's; 0 on a node without global). */
CN_EXPORT size_t cn_global_name_count(cn_node *n);
/* The names registered for this node's processes, as a new list term (caller frees; [] on a node without global;
 * NULL on OOM): what a node leaving the cluster unregisters (cn_global_unregister_name) so peers drop them at once. */
CN_EXPORT cn_term *cn_global_local_names(cn_node *n);
/* Blocking forms for threads other than the node's loop thread: the status the callback would get (CN_ESTATE
 * on a node without global). */
CN_EXPORT int cn_global_register_name_sync(cn_node *n, const cn_term *name, cn_pid pid);
CN_EXPORT int cn_global_unregister_name_sync(cn_node *n, const cn_term *name);
/* *out's node atom belongs to n's table (atoms never move, so it stays valid). */
CN_EXPORT int cn_global_whereis_name_sync(cn_node *n, const cn_term *name, cn_pid *out);

#ifdef __cplusplus
}
#endif
#endif
