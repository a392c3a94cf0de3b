/* compute.h: the cnode program's computing processes: cnode_burn (a dirty gen_server for demonstrations and tests)
 * and sorted_set (the sorted set gen_server of sorted_set/cn_sorted_set.h). */
#ifndef CNODE_COMPUTE_H
#define CNODE_COMPUTE_H

#include "cnode.h"

/* Starts and registers cnode_burn and sorted_set on n. */
int compute_start(cn_node *n);

#endif
