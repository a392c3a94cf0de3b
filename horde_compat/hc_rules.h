/* hc_rules.h: the rules a Horde member follows after a healed partition, pure so the unit tests can hold them
 * (internal, never installed): what the registry writes again (registry.c), when a supervisor's local child yields. */
#ifndef HC_RULES_H
#define HC_RULES_H

#include <stdbool.h>

#include "cn_term.h"

/* A {member, M} removal seen: true when M is to be written again: membership is automatic, the CRDT lacks it now,
 * and M is this member or one on a connected node (a peer removed it while the link was down). */
bool hc_reg_member_back(bool autom, bool is_self, bool node_up, bool in_crdt);
/* A {key, K} removal seen for a local table entry: true when K is to be written again: this member did not delete
 * it itself (released), the entry is this member's, its process is alive here, and no other pid holds K now. */
bool hc_reg_key_back(bool released, bool own_member, bool local_alive, bool in_crdt);

/* True when a {process, Id} entry's value v (NULL: the entry was deleted) says this member (self_member) no longer
 * owns the child: deleted, or {Owner, Spec, Pid} of another member. A relinquished {nil, Spec} does not
 * (sup_recovery.c). */
bool sup_entry_disowns(const cn_term *v, const cn_term *self_member);

#endif
