/* control.h: distribution control messages as terms: operation codes, shape checks on what a peer sends,
 * and which operations carry a payload. Pure: no I/O. */
#ifndef DIST_CONTROL_H
#define DIST_CONTROL_H

#include <stdbool.h>

#include "cn_term.h"

enum dist_op {
  DOP_LINK = 1,
  DOP_SEND = 2,
  DOP_EXIT = 3,
  DOP_UNLINK = 4,
  DOP_NODE_LINK = 5,
  DOP_REG_SEND = 6,
  DOP_GROUP_LEADER = 7,
  DOP_EXIT2 = 8,
  DOP_SEND_TT = 12,
  DOP_EXIT_TT = 13,
  DOP_REG_SEND_TT = 16,
  DOP_EXIT2_TT = 18,
  DOP_MONITOR_P = 19,
  DOP_DEMONITOR_P = 20,
  DOP_MONITOR_P_EXIT = 21,
  DOP_SEND_SENDER = 22,
  DOP_SEND_SENDER_TT = 23,
  DOP_PAYLOAD_EXIT = 24,
  DOP_PAYLOAD_EXIT_TT = 25,
  DOP_PAYLOAD_EXIT2 = 26,
  DOP_PAYLOAD_EXIT2_TT = 27,
  DOP_PAYLOAD_MONITOR_P_EXIT = 28,
  DOP_SPAWN_REQUEST = 29,
  DOP_SPAWN_REQUEST_TT = 30,
  DOP_SPAWN_REPLY = 31,
  DOP_SPAWN_REPLY_TT = 32,
  DOP_ALIAS_SEND = 33,
  DOP_ALIAS_SEND_TT = 34,
  DOP_UNLINK_ID = 35,
  DOP_UNLINK_ID_ACK = 36,
};

/* A checked control message. Fields borrow from the control term; those the operation lacks are NULL. */
typedef struct dist_ctl {
  int op;
  const cn_term *from;   /* sender pid (or monitored process for MONITOR_P_EXIT: pid or atom) */
  const cn_term *to;     /* receiver pid, or pid/atom for MONITOR_P/DEMONITOR_P */
  const cn_term *name;   /* REG_SEND: receiver's registered name (atom) */
  const cn_term *ref;    /* monitor ref, or alias for ALIAS_SEND */
  const cn_term *reason; /* EXIT/EXIT2/MONITOR_P_EXIT reason in the control term (not PAYLOAD_*) */
  const cn_term *id;     /* spawn request id, unlink id */
  const cn_term *token;  /* trace token (*_TT) */
  const cn_term *mfa;    /* SPAWN_REQUEST {M, F, Arity} */
  const cn_term *opts;   /* SPAWN_REQUEST option list */
  const cn_term *gl;     /* SPAWN_REQUEST group leader */
  const cn_term *flags;  /* SPAWN_REPLY flags */
  const cn_term *result; /* SPAWN_REPLY result */
} dist_ctl;

/* Checks that ctl is a known control message of the right shape and fills out. Returns 0, CN_EPROTO for a
 * wrong shape, or CN_EUNSUPPORTED for an operation code this node does not know. */
int dist_ctl_parse(const cn_term *ctl, dist_ctl *out);
/* True when the operation is followed by a payload term. */
bool dist_op_has_payload(int op);
/* A short name of an operation, for logs ("SEND", "REG_SEND"...; "?" when unknown). */
const char *dist_op_name(int op);

#endif
