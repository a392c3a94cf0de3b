/* cn_pg.h: OTP's `pg` process groups on a C node (kernel's pg.erl, OTP 23 to 29), a service on the public API of
 * cnode.h: include <cnode/cn_pg.h>, start a scope with cn_pg_start, then join C processes to groups. BEAM nodes
 * running the same scope see the C members in pg:get_members/2, and the C node sees theirs. */
#ifndef CN_PG_H
#define CN_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cnode.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The default scope's name, the one `-kernel start_pg true` starts. */
#define CN_PG_DEFAULT_SCOPE "pg"

/* Starts the scope process, registered under scope (an atom's text, as pg:start_link(Scope)): it discovers the
 * visible nodes that run the same scope (now and at each nodeup), exchanges members with them and follows their
 * joins and leaves. Call it on the loop's thread, before or after cn_node_start. CN_EEXIST when scope is already
 * running on n (or the name is registered), CN_EINVAL for a bad name. */
CN_EXPORT int cn_pg_start(cn_node *n, const char *scope);
/* Stops the scope cleanly: every local member leaves every group (the peers get the leave messages, as when the
 * members exit), monitors are told, then the scope process ends and its name is free again. For a graceful
 * shutdown; CN_ENOTFOUND when the scope is not running. */
CN_EXPORT int cn_pg_stop(cn_node *n, const char *scope);
/* Makes every local member leave every group of scope (NULL: of every scope running on n), keeping the scopes
 * running: what a draining node does before it stops. Returns how many memberships were left (>= 0). */
CN_EXPORT int cn_pg_leave_all(cn_node *n, const char *scope);
/* True when scope is running on n. */
CN_EXPORT bool cn_pg_running(cn_node *n, const char *scope);

/* pg:join(Scope, Group, Pid): pid must be a live process of this node; a pid may join a group several times and
 * then leaves it as many times. group is borrowed (copied). The member is removed on its exit. CN_ENOTFOUND: no
 * such scope; CN_EINVAL: pid of another node; CN_ENOPROC: pid not alive. */
CN_EXPORT int cn_pg_join(cn_node *n, const char *scope, const cn_term *group, cn_pid pid);
/* pg:leave(Scope, Group, Pid): one membership of pid leaves; CN_ENOTFOUND when pid is not in group (pg's
 * not_joined) or there is no such scope. */
CN_EXPORT int cn_pg_leave(cn_node *n, const char *scope, const cn_term *group, cn_pid pid);

/* pg:get_members(Scope, Group) (local false) and pg:get_local_members (local true): *out gets a new array of
 * *count pids (free with cn_free; NULL when *count is 0). A group nobody joined is empty. CN_ENOTFOUND: no
 * such scope. */
CN_EXPORT int cn_pg_members(cn_node *n, const char *scope, const cn_term *group, bool local, cn_pid **out,
                            size_t *count);
/* The members as the list term pg:get_members returns (a new term, or NULL: no such scope or no memory). */
CN_EXPORT cn_term *cn_pg_members_term(cn_node *n, const char *scope, const cn_term *group, bool local);
/* pg:which_groups(Scope) (local false) and pg:which_local_groups (local true): a new list term, or NULL. */
CN_EXPORT cn_term *cn_pg_which_groups(cn_node *n, const char *scope, bool local);

/* pg:monitor_scope(Scope) (group NULL) and pg:monitor(Scope, Group) for the C process self: from now on self
 * gets {Ref, join, Group, Pids} and {Ref, leave, Group, Pids} messages, exactly as pg sends them, for every
 * change in the scope (or in group). *ref gets Ref; *now (may be NULL) gets what pg's call returns besides it: a
 * map Group => Pids for a scope, the member list for a group (a new term). The monitor ends with
 * cn_pg_demonitor or when self ends. */
CN_EXPORT int cn_pg_monitor(cn_proc *self, const char *scope, const cn_term *group, cn_ref *ref, cn_term **now);
/* pg:demonitor(Scope, Ref): CN_ENOTFOUND when ref is not a monitor of that scope. Notifications already in
 * the caller's mailbox stay there. */
CN_EXPORT int cn_pg_demonitor(cn_node *n, const char *scope, cn_ref ref);

#ifdef __cplusplus
}
#endif
#endif
