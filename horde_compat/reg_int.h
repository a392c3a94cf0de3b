/* reg_int.h: the registry member's re-assertion rules (registry.c), pure so the unit tests can hold them: what a
 * member writes again when a peer's view of a partition removed it or its live keys (internal, never installed). */
#ifndef HC_REG_INT_H
#define HC_REG_INT_H

#include <stdbool.h>

/* A {member, M} removal seen: true when M is to be written again: membership is automatic, the CRDT lacks it now,
 * and M is this member or one on a connected node (a peer removed it while the link was down). */
bool hc_reg_member_back(bool autom, bool is_self, bool node_up, bool in_crdt);
/* A {key, K} removal seen for a local table entry: true when K is to be written again: this member did not delete
 * it itself (released), the entry is this member's, its process is alive here, and no other pid holds K now. */
bool hc_reg_key_back(bool released, bool own_member, bool local_alive, bool in_crdt);

#endif
