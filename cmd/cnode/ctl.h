/* ctl.h: cnode_ctl, the cnode program's command process, and its command table. The parts of the program register
 * their commands (workers.c the built-in ones, horde_reg.c / horde_sup.c the horde_* ones); cnode_ctl runs them
 * for both ways of asking: `{From, Ref, Cmd}` (answered From ! {Ref, Answer}) and a gen_server call
 * (`gen_server:call({cnode_ctl, Node}, Cmd)`, `GenServer.call/2`), answered with the same Answer. */
#ifndef CNODE_CTL_H
#define CNODE_CTL_H

#include "cnode.h"

/* Who asked for a command, and so where its answer goes. Borrowed inside a command function; a command that
 * answers later keeps a ctl_caller_dup. */
typedef struct ctl_caller {
  const cn_term *from; /* a gen_server call: its From = {Pid, Tag}; NULL for the {From, Ref, Cmd} form */
  cn_pid pid;          /* the {From, Ref, Cmd} form: From and Ref */
  const cn_term *ref;
} ctl_caller;

/* A command: op is the command's name (the atom Cmd, or Cmd's first element when Cmd is a tuple), cmd the whole
 * command (borrowed). Returns the answer (a new term, taken by cnode_ctl), or NULL when the answer comes later
 * through ctl_answer (or could not be made: out of memory; the caller then gets nothing, as for any lost
 * message). A command that does not take cmd's shape answers ctl_unknown(n), as an unregistered one does. */
typedef cn_term *(*ctl_cmd_fn)(cn_proc *self, const char *op, const cn_term *cmd, const ctl_caller *caller, void *ctx);

/* Adds name to the command table, or replaces what it ran (so a part may register again, once per node it joins).
 * name (borrowed: a string literal) is the command's atom; "global_*" takes every op starting with "global_"
 * that has no entry of its own (the longest such prefix wins). CN_ENOMEM when the table is full. */
int ctl_register_cmd(const char *name, ctl_cmd_fn fn, void *ctx);
/* Starts cnode_ctl on n, registered under that name. */
int ctl_start(cn_node *n);

/* Sends a command's answer (taken; NULL sends nothing) to its caller: From ! {Ref, Answer}, or the gen_server
 * reply {Tag, Answer} to the call's From (through its alias on OTP 24+, as gen:reply/2 does). */
void ctl_answer(cn_proc *self, const ctl_caller *caller, cn_term *answer);
/* The caller as a gen_server From, {Pid, Tag} (a new term): {From, Ref} for the {From, Ref, Cmd} form, so a
 * request passed on to another process with it is answered as the command's answer would be. NULL: no memory. */
cn_term *ctl_caller_from(const ctl_caller *caller);
/* A copy of caller that outlives the command (NULL: no memory); freed with ctl_caller_free (NULL is fine). */
ctl_caller *ctl_caller_dup(const ctl_caller *caller);
void ctl_caller_free(ctl_caller *caller);
/* {error, unknown_command}: the answer to a command nobody registered, or to one in a shape its function does
 * not take. */
cn_term *ctl_unknown(cn_node *n);

#endif
