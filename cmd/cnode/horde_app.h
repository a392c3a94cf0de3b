/* horde_app.h: the cnode program's Horde members: --horde-registry NAME (horde_reg.c) and --horde-supervisor
 * NAME (horde_sup.c), and the horde_* commands of cnode_ctl. Names are given as Elixir writes them
 * ("MyApp.Registry") or as atoms ("reg"); horde_atom_name() turns them into the atom Horde uses. */
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
/* Starts every remembered registry (members: auto) and registers the demo echo process in each under
 * {echo, NodeName}; called once the node is up. */
int hreg_start(cn_node *n);
/* cnode_ctl's horde_register / horde_unregister / horde_lookup / horde_members commands, sent by From with Ref:
 * *handled tells whether op was one of them; returns the answer (a new term), or NULL when the command answers
 * From with {Ref, Answer} itself later (or could not: out of memory). */
cn_term *hreg_ctl(cn_proc *self, cn_pid from, const cn_term *ref, const char *op, const cn_term *cmd, bool *handled);

/* Remembers a --horde-supervisor NAME; -1 on a bad name. */
int hsup_add(const char *name);
/* Starts every remembered supervisor with the demo entry points; called once the node is up. */
int hsup_start(cn_node *n);
/* Graceful stop (SIGTERM): every supervisor hands its children over; done(ctx) runs once all have finished
 * (at once when there is none). */
void hsup_shutdown(cn_node *n, void (*done)(void *ctx), void *ctx);
/* cnode_ctl's horde_sup_* commands, as hreg_ctl. */
cn_term *hsup_ctl(cn_proc *self, cn_pid from, const cn_term *ref, const char *op, const cn_term *cmd, bool *handled);

#endif
