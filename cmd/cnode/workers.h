/* workers.h: the demo processes the cnode program hosts: echo, cnode_kv (a gen_server) and cnode_ctl. */
#ifndef CNODE_WORKERS_H
#define CNODE_WORKERS_H

#include "cnode.h"

/* Spawns and registers echo, cnode_kv and cnode_ctl on n. */
int workers_start(cn_node *n);

#endif
