/* pubsub_app.h: the cnode program's pg scopes and Phoenix.PubSub members: --pg (the default scope) and --pubsub NAME
 * (pubsub_app.c), with the demo echo subscriber on "cnode:echo" and cnode_ctl's pg_* and pubsub_* commands. */
#ifndef CNODE_PUBSUB_APP_H
#define CNODE_PUBSUB_APP_H

#include "cnode.h"

/* Remembers --pg (scope "pg") or --pubsub NAME ("MyApp.PubSub" or an atom); -1 on a bad name or too many. */
int pgapp_add_scope(const char *scope);
int pgapp_add_pubsub(const char *name);
/* Registers cnode_ctl's pg_* and pubsub_* commands, starts the remembered scopes and pubsubs, and in each pubsub the
 * echo subscriber of "cnode:echo"; called once the node is up. */
int pgapp_start(cn_node *n);

#endif
