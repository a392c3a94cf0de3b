/* control.c: shape checks for distribution control messages (erl_dist_protocol, "Protocol between
 * connected nodes"). A peer's bad shape is a protocol error for that connection only. */
#include "control.h"

#include <string.h>

/* One row per operation: its arity and what stands at each position after the op code. */
enum fld {
  F_NONE,
  F_FROM,
  F_TO,
  F_NAME,
  F_REF,
  F_REASON,
  F_ID,
  F_TOKEN,
  F_MFA,
  F_OPTS,
  F_GL,
  F_FLAGS,
  F_RESULT,
  F_UNUSED
};
typedef struct {
  int op;
  const char *name;
  uint8_t arity; /* exact, or the least when open */
  bool payload;
  bool open; /* later elements are allowed (ALTACT_SIG_SEND: "might be extended in the future") */
  uint8_t f[6];
} op_row;

static const op_row ops[] = {
    {DOP_LINK, "LINK", 3, false, false, {F_FROM, F_TO}},
    {DOP_SEND, "SEND", 3, true, false, {F_UNUSED, F_TO}},
    {DOP_EXIT, "EXIT", 4, false, false, {F_FROM, F_TO, F_REASON}},
    {DOP_UNLINK, "UNLINK", 3, false, false, {F_FROM, F_TO}},
    {DOP_NODE_LINK, "NODE_LINK", 1, false, false, {F_NONE}},
    {DOP_REG_SEND, "REG_SEND", 4, true, false, {F_FROM, F_UNUSED, F_NAME}},
    {DOP_GROUP_LEADER, "GROUP_LEADER", 3, false, false, {F_FROM, F_TO}},
    {DOP_EXIT2, "EXIT2", 4, false, false, {F_FROM, F_TO, F_REASON}},
    {DOP_SEND_TT, "SEND_TT", 4, true, false, {F_UNUSED, F_TO, F_TOKEN}},
    {DOP_EXIT_TT, "EXIT_TT", 5, false, false, {F_FROM, F_TO, F_TOKEN, F_REASON}},
    {DOP_REG_SEND_TT, "REG_SEND_TT", 5, true, false, {F_FROM, F_UNUSED, F_NAME, F_TOKEN}},
    {DOP_EXIT2_TT, "EXIT2_TT", 5, false, false, {F_FROM, F_TO, F_TOKEN, F_REASON}},
    {DOP_MONITOR_P, "MONITOR_P", 4, false, false, {F_FROM, F_TO, F_REF}},
    {DOP_DEMONITOR_P, "DEMONITOR_P", 4, false, false, {F_FROM, F_TO, F_REF}},
    {DOP_MONITOR_P_EXIT, "MONITOR_P_EXIT", 5, false, false, {F_FROM, F_TO, F_REF, F_REASON}},
    {DOP_SEND_SENDER, "SEND_SENDER", 3, true, false, {F_FROM, F_TO}},
    {DOP_SEND_SENDER_TT, "SEND_SENDER_TT", 4, true, false, {F_FROM, F_TO, F_TOKEN}},
    {DOP_PAYLOAD_EXIT, "PAYLOAD_EXIT", 3, true, false, {F_FROM, F_TO}},
    {DOP_PAYLOAD_EXIT_TT, "PAYLOAD_EXIT_TT", 4, true, false, {F_FROM, F_TO, F_TOKEN}},
    {DOP_PAYLOAD_EXIT2, "PAYLOAD_EXIT2", 3, true, false, {F_FROM, F_TO}},
    {DOP_PAYLOAD_EXIT2_TT, "PAYLOAD_EXIT2_TT", 4, true, false, {F_FROM, F_TO, F_TOKEN}},
    {DOP_PAYLOAD_MONITOR_P_EXIT, "PAYLOAD_MONITOR_P_EXIT", 4, true, false, {F_FROM, F_TO, F_REF}},
    {DOP_SPAWN_REQUEST, "SPAWN_REQUEST", 6, true, false, {F_ID, F_FROM, F_GL, F_MFA, F_OPTS}},
    {DOP_SPAWN_REQUEST_TT, "SPAWN_REQUEST_TT", 7, true, false, {F_ID, F_FROM, F_GL, F_MFA, F_OPTS, F_TOKEN}},
    {DOP_SPAWN_REPLY, "SPAWN_REPLY", 5, false, false, {F_ID, F_TO, F_FLAGS, F_RESULT}},
    {DOP_SPAWN_REPLY_TT, "SPAWN_REPLY_TT", 6, false, false, {F_ID, F_TO, F_FLAGS, F_RESULT, F_TOKEN}},
    {DOP_ALIAS_SEND, "ALIAS_SEND", 3, true, false, {F_FROM, F_REF}},
    {DOP_ALIAS_SEND_TT, "ALIAS_SEND_TT", 4, true, false, {F_FROM, F_REF, F_TOKEN}},
    {DOP_UNLINK_ID, "UNLINK_ID", 4, false, false, {F_ID, F_FROM, F_TO}},
    {DOP_UNLINK_ID_ACK, "UNLINK_ID_ACK", 4, false, false, {F_ID, F_FROM, F_TO}},
    {DOP_ALTACT_SIG_SEND, "ALTACT_SIG_SEND", 4, true, true, {F_FLAGS, F_FROM, F_TO, F_TOKEN}},
};

static const op_row *find_op(int op) {
  /* The rows run in operation order from 1, so a row is usually where its code says; the scan is the fallback. */
  if (op >= 1 && (size_t)op <= sizeof ops / sizeof ops[0] && ops[op - 1].op == op) return &ops[op - 1];
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
    if (ops[i].op == op) return &ops[i];
  return NULL;
}

bool dist_op_has_payload(int op) {
  const op_row *r = find_op(op);
  return r && r->payload;
}

const char *dist_op_name(int op) {
  const op_row *r = find_op(op);
  return r ? r->name : "?";
}

static bool is_pid(const cn_term *t) { return t->type == CN_PID; }
static bool is_pid_or_atom(const cn_term *t) { return t->type == CN_PID || t->type == CN_ATOM; }

/* Flags: a non-negative integer; only its least significant byte is read (erts does the same for a bignum). */
static int altact_flags(const cn_term *t, unsigned *out) {
  if (t->type == CN_INT && t->v.i >= 0) *out = (unsigned)(t->v.i & 0xff);
  else if (t->type == CN_BIG && !t->v.big.sign) *out = t->v.big.n ? t->v.big.mag[0] : 0;
  else return CN_EPROTO;
  *out &= DIST_ALTACT_KNOWN;
  return 0;
}

/* Moves To where its flags put it, and keeps the token only when the TOKEN bit announces one. */
static int altact_check(dist_ctl *out) {
  if (altact_flags(out->flags, &out->altact) || !is_pid(out->from)) return CN_EPROTO;
  if (!(out->altact & DIST_ALTACT_TOKEN)) out->token = NULL;
  else if (!out->token) return CN_EPROTO;
  const cn_term *to = out->to;
  out->to = NULL;
  switch (out->altact & (DIST_ALTACT_ALIAS | DIST_ALTACT_NAME)) {
  case DIST_ALTACT_ALIAS: out->ref = to; return to->type == CN_REF ? 0 : CN_EPROTO;
  case DIST_ALTACT_NAME: out->name = to; return to->type == CN_ATOM ? 0 : CN_EPROTO;
  case 0: out->to = to; return is_pid(to) ? 0 : CN_EPROTO;
  default: return CN_EPROTO;
  }
}

cn_term dist_altact_ctl(cn_term e[5], unsigned flags, cn_pid from, const cn_term *to, const cn_term *token) {
  flags &= DIST_ALTACT_PRIO | DIST_ALTACT_EXIT;
  if (to->type == CN_REF) flags |= DIST_ALTACT_ALIAS;
  else if (to->type == CN_ATOM) flags |= DIST_ALTACT_NAME;
  if (token) flags |= DIST_ALTACT_TOKEN;
  e[0] = cn_tv_int(DOP_ALTACT_SIG_SEND);
  e[1] = cn_tv_int(flags);
  e[2] = cn_tv_pid(from);
  e[3] = *to;
  if (token) e[4] = *token;
  return cn_tv_tuple(e, token ? 5 : 4);
}

int dist_ctl_parse(const cn_term *ctl, dist_ctl *out) {
  memset(out, 0, sizeof *out);
  if (ctl->type != CN_TUPLE || ctl->v.tuple.arity < 1) return CN_EPROTO;
  const cn_term *e = ctl->v.tuple.e;
  if (e[0].type != CN_INT) return CN_EPROTO;
  const op_row *r = find_op((int)e[0].v.i);
  if (!r) return CN_EUNSUPPORTED;
  uint32_t arity = ctl->v.tuple.arity;
  if (r->open ? arity < r->arity : arity != r->arity) return CN_EPROTO;
  out->op = r->op;
  for (uint32_t i = 1; i < arity && i <= sizeof r->f; i++) {
    const cn_term *x = &e[i];
    switch (r->f[i - 1]) {
    case F_FROM: out->from = x; break;
    case F_TO: out->to = x; break;
    case F_NAME: out->name = x; break;
    case F_REF: out->ref = x; break;
    case F_REASON: out->reason = x; break;
    case F_ID: out->id = x; break;
    case F_TOKEN: out->token = x; break;
    case F_MFA: out->mfa = x; break;
    case F_OPTS: out->opts = x; break;
    case F_GL: out->gl = x; break;
    case F_FLAGS: out->flags = x; break;
    case F_RESULT: out->result = x; break;
    default: break;
    }
  }
  /* Shapes the runtime relies on; anything else a peer sends costs it the connection. */
  switch (out->op) {
  case DOP_MONITOR_P:
  case DOP_DEMONITOR_P:
    if (!is_pid(out->from) || !is_pid_or_atom(out->to) || out->ref->type != CN_REF) return CN_EPROTO;
    break;
  case DOP_MONITOR_P_EXIT:
  case DOP_PAYLOAD_MONITOR_P_EXIT:
    if (!is_pid_or_atom(out->from) || !is_pid(out->to) || out->ref->type != CN_REF) return CN_EPROTO;
    break;
  case DOP_REG_SEND:
  case DOP_REG_SEND_TT:
    if (!is_pid(out->from) || out->name->type != CN_ATOM) return CN_EPROTO;
    break;
  case DOP_SEND:
  case DOP_SEND_TT:
    if (!is_pid(out->to)) return CN_EPROTO;
    break;
  case DOP_SPAWN_REQUEST:
  case DOP_SPAWN_REQUEST_TT:
    if (!is_pid(out->from) || out->id->type != CN_REF) return CN_EPROTO;
    break;
  case DOP_ALIAS_SEND:
  case DOP_ALIAS_SEND_TT:
    if (!is_pid(out->from) || out->ref->type != CN_REF) return CN_EPROTO;
    break;
  case DOP_UNLINK_ID:
  case DOP_UNLINK_ID_ACK:
    if (!is_pid(out->from) || !is_pid(out->to) || (out->id->type != CN_INT && out->id->type != CN_BIG))
      return CN_EPROTO;
    break;
  case DOP_NODE_LINK: break;
  case DOP_SPAWN_REPLY:
  case DOP_SPAWN_REPLY_TT:
    if (!is_pid(out->to)) return CN_EPROTO;
    break;
  case DOP_ALTACT_SIG_SEND: return altact_check(out);
  default: /* links, exits, send_sender, group leader: pid to pid */
    if (!is_pid(out->from) || !is_pid(out->to)) return CN_EPROTO;
    break;
  }
  return 0;
}

/* ---- The common messages, straight from their bytes ---------------------------------------------------------- */

enum { T_SMALL_INT = 97, T_SMALL_TUPLE = 104, T_NEW_PID = 88, T_ATOM_UTF8 = 118, T_SMALL_ATOM_UTF8 = 119 };

/* A UTF-8 atom of text a at b (n bytes left): its length in bytes, or 0. a NULL: the empty atom. */
static size_t atom_is(const uint8_t *b, size_t n, const cn_atom *a) {
  size_t want = a ? a->len : 0, hdr;
  if (n >= 2 && b[0] == T_SMALL_ATOM_UTF8 && b[1] == want) hdr = 2;
  else if (n >= 3 && b[0] == T_ATOM_UTF8 && cn_get16(b + 1) == want) hdr = 3;
  else return 0;
  if (want > n - hdr || (a && want && memcmp(b + hdr, a->name, want))) return 0;
  return hdr + want;
}

/* A NEW_PID_EXT of node at b (n bytes left) into *t: its length in bytes, or 0. */
static size_t pid_is(const uint8_t *b, size_t n, const cn_atom *node, cn_term *t) {
  if (n < 1 || b[0] != T_NEW_PID) return 0;
  size_t k = atom_is(b + 1, n - 1, node);
  if (!k || n - 1 - k < 12) return 0;
  const uint8_t *x = b + 1 + k;
  memset(t, 0, sizeof *t);
  t->type = CN_PID;
  t->v.pid = (cn_pid){node, cn_get32(x), cn_get32(x + 4), cn_get32(x + 8)};
  return 1 + k + 12;
}

size_t dist_ctl_fast(const uint8_t *b, size_t len, const cn_atom *peer, const cn_atom *self, const cn_atom *name,
                     dist_fast *fast, dist_ctl *out) {
  if (len < 4 || b[0] != T_SMALL_TUPLE || b[2] != T_SMALL_INT || !peer || !self) return 0;
  size_t p = 4, k;
  int op = b[3];
  if (op == DOP_SEND_SENDER && b[1] == 3) {
    if (!(k = pid_is(b + p, len - p, peer, &fast->from))) return 0;
    p += k;
    if (!(k = pid_is(b + p, len - p, self, &fast->to))) return 0;
  } else if (op == DOP_SEND && b[1] == 3) {
    if (!(k = atom_is(b + p, len - p, NULL))) return 0;
    p += k;
    if (!(k = pid_is(b + p, len - p, self, &fast->to))) return 0;
    memset(&fast->from, 0, sizeof fast->from); /* the empty atom: never read */
  } else if (op == DOP_REG_SEND && b[1] == 4 && name) {
    if (!(k = pid_is(b + p, len - p, peer, &fast->from))) return 0;
    p += k;
    if (!(k = atom_is(b + p, len - p, NULL))) return 0;
    p += k;
    if (!(k = atom_is(b + p, len - p, name))) return 0;
    memset(&fast->to, 0, sizeof fast->to);
    fast->to.type = CN_ATOM;
    fast->to.v.atom = name;
  } else {
    return 0;
  }
  memset(out, 0, sizeof *out);
  out->op = op;
  out->from = op == DOP_SEND ? NULL : &fast->from;
  if (op == DOP_REG_SEND) out->name = &fast->to;
  else out->to = &fast->to;
  return p + k;
}
