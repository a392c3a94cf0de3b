/* horde_app.h: the cnode program's Horde members: --horde-registry NAME (horde_reg.c) and --horde-supervisor
 * NAME (horde_sup.c); they register cnode_ctl's horde_* commands into its table (ctl.h). Names are given as Elixir
 * writes them ("MyApp.Registry") or as atoms ("reg"); horde_atom_name() turns them into the atom Horde uses. */
#ifndef CNODE_HORDE_APP_H
#define CNODE_HORDE_APP_H

#include <stdbool.h>
#include <stddef.h>

#include "cnode.h"

/* "MyApp.Registry" -> "Elixir.MyApp.Registry" (a name starting with a capital letter and no "Elixir." prefix is an
 * Elixir module); anything else unchanged. Writes at most cap bytes; -1 when it does not fit. */
int horde_atom_name(const char *name, char *out, size_t cap);

/* Remembers a --horde-registry NAME (before the node starts); -1 on a bad or too long name. */
int hreg_add(const char *name);
/* Registers cnode_ctl's horde_register / horde_unregister / horde_lookup / horde_members commands (with no
 * registry they answer {error, no_such_registry}), starts every remembered registry (members: auto) and registers
 * the demo echo process in each under {echo, NodeName}; called once the node is up. */
int hreg_start(cn_node *n);

/* Remembers a --horde-supervisor NAME; -1 on a bad name. */
int hsup_add(const char *name);
/* Registers cnode_ctl's horde_sup_* commands (with no supervisor they answer {error, no_such_supervisor}) and
 * starts every remembered supervisor with the demo entry points; called once the node is up. */
int hsup_start(cn_node *n);
/* Graceful stop (SIGTERM): every supervisor hands its children over; done(ctx) runs once all have finished
 * (at once when there is none). */
void hsup_shutdown(cn_node *n, void (*done)(void *ctx), void *ctx);

/* The i-th registry / supervisor given on the command line: false past the last one, else true, its atom's text
 * and the member (NULL while not running: not started yet, or ended). horde_ops.c reads them for /metrics, /readyz
 * and SIGTERM. */
typedef struct cn_horde_registry cn_horde_registry;
typedef struct cn_horde_sup cn_horde_sup;
bool hreg_at(size_t i, const char **name, cn_horde_registry **out);
bool hsup_at(size_t i, const char **name, cn_horde_sup **out);
/* Registers the Horde members' metrics source, readiness check and shutdown steps (ops.h). */
int horde_ops_init(void);

#endif
