/* workers.h: the demo processes the cnode program hosts: echo, cnode_kv (a gen_server) and cnode_ctl with its
 * built-in commands (ctl.h). */
#ifndef CNODE_WORKERS_H
#define CNODE_WORKERS_H

#include "cnode.h"

/* Spawns and registers echo, cnode_kv and cnode_ctl on n (registering cnode_ctl's built-in commands). */
int workers_start(cn_node *n);
/* Spawns a new (unregistered) echo process: {From, T} -> From ! T; gen_server calls answered with the request. */
int workers_spawn_echo(cn_node *n, cn_pid *pid);

#endif
