/* workers.h: the demo processes the cnode program hosts: echo, cnode_kv (a gen_server) and cnode_ctl. */
#ifndef CNODE_WORKERS_H
#define CNODE_WORKERS_H

#include "cnode.h"

/* Spawns and registers echo, cnode_kv and cnode_ctl on n. */
int workers_start(cn_node *n);
/* Spawns a new (unregistered) echo process: {From, T} -> From ! T; gen_server calls answered with the request. */
int workers_spawn_echo(cn_node *n, cn_pid *pid);
/* cnode_ctl's answer to a command: to ! {Ref, Answer} (answer taken, may be NULL on OOM: nothing is sent). */
void workers_answer(cn_proc *self, cn_pid to, const cn_term *ref, cn_term *answer);

#endif
