/* resil_app.h: the cnode program's resilience parts (resil_app.c): --watch NAME=HOST:PORT, --watch-interval MS and
 * --alarm-node NODE, cnode_ctl's fuse_* and alarm* commands, and SIGTERM's step that clears the alarms. */
#ifndef CNODE_RESIL_APP_H
#define CNODE_RESIL_APP_H

#include "cnode.h"

/* Remembers --watch NAME=HOST:PORT or --alarm-node NODE: 0, or -1 on a bad value or too many. */
int resil_add_watch(const char *spec);
int resil_add_alarm_node(const char *node);
/* --watch-interval MS. */
void resil_set_interval(unsigned ms);
/* Registers the commands and the shutdown step, mirrors alarms to the alarm nodes and starts the watchdogs; called
 * once the node is up. */
int resil_start(cn_node *n);

#endif
