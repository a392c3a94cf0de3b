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
  DOP_ALTACT_SIG_SEND = 37, /* OTP 28: {37, Flags, From, To} or {37, Flags, From, To, Token}, then the payload */
};

/* ALTACT_SIG_SEND flag bits (erts dist.h ERTS_DOP_ALTACT_SIG_FLG_*). Neither ALIAS nor NAME: To is a pid. */
enum dist_altact_flag {
  DIST_ALTACT_PRIO = 1,   /* a priority signal: counts only when To is an active priority alias */
  DIST_ALTACT_TOKEN = 2,  /* the control tuple carries a trace token as its fifth element */
  DIST_ALTACT_ALIAS = 4,  /* To is a process alias (a reference) */
  DIST_ALTACT_NAME = 8,   /* To is a registered name (an atom); an unregistered one drops the signal */
  DIST_ALTACT_EXIT = 16,  /* an exit signal (as exit/2) whose reason is the payload; else a message */
  DIST_ALTACT_KNOWN = 31, /* the bits above; a receiver ignores the others (OTP reserves them) */
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
  unsigned altact;       /* ALTACT_SIG_SEND: its flags' known bits (DIST_ALTACT_*) */
} dist_ctl;

/* Checks that ctl is a known control message of the right shape and fills out. Returns 0, CN_EPROTO for a
 * wrong shape, or CN_EUNSUPPORTED for an operation code this node does not know. ALTACT_SIG_SEND, as erts reads
 * it: at least 4 elements (later ones are for future use and ignored), Flags a non-negative integer of any size
 * whose unknown bits are ignored, From a pid, a Token as the fifth element when the TOKEN bit says so; To is put
 * in out->ref (ALIAS: a reference), out->name (NAME: an atom) or out->to (neither: a pid); ALIAS with NAME is
 * an error. */
int dist_ctl_parse(const cn_term *ctl, dist_ctl *out);
/* True when the operation is followed by a payload term. */
bool dist_op_has_payload(int op);

/* The control messages a node receives most, read straight from their bytes: SEND_SENDER {22, From, To}, SEND
 * {2, '', To} and REG_SEND {6, From, '', Name}, From a pid of peer, To a pid of self, Name the atom name (the name
 * the previous REG_SEND on the connection went to: a new one takes the full decode once). Anything else, or any
 * other encoding of these (another tag, a pid of a third node, a trace token), returns 0 and the caller decodes
 * the control term as always, so what is accepted or refused does not change. On success returns the control
 * term's length in bytes and fills *out: ctl's fields point into fast's terms (valid as long as fast). */
typedef struct dist_fast {
  cn_term from, to; /* to: the receiving pid, or REG_SEND's name */
} dist_fast;
size_t dist_ctl_fast(const uint8_t *b, size_t len, const cn_atom *peer, const cn_atom *self, const cn_atom *name,
                     dist_fast *fast, dist_ctl *out);
/* Builds ALTACT_SIG_SEND's control tuple in e (5 slots; the result borrows e, from, to and token): flags are
 * DIST_ALTACT_* without TOKEN, which is set when token is not NULL; ALIAS or NAME follow to's type (a reference
 * or an atom; otherwise to must be a pid). */
cn_term dist_altact_ctl(cn_term e[5], unsigned flags, cn_pid from, const cn_term *to, const cn_term *token);
/* A short name of an operation, for logs ("SEND", "REG_SEND"...; "?" when unknown). */
const char *dist_op_name(int op);

#endif
