/* dispatch.c: what the node does with each control message a peer sends: deliver messages (to pids, names
 * and aliases, priority ones included), apply links, exits and monitors to C processes, serve spawn requests,
 * and complete calls. */
#include <string.h>

#include "node_int.h"

static cn_proc *local_proc(cn_node *n, const cn_term *pid) {
  return pid && pid->type == CN_PID ? proc_lookup(n, pid->v.pid) : NULL;
}

static uint64_t id_value(const cn_term *id) {
  if (id->type == CN_INT) return (uint64_t)id->v.i;
  uint64_t v = 0; /* UNLINK_ID ids run up to 2^64 - 1: a bignum of at most 8 bytes */
  for (uint32_t i = id->v.big.n; i-- > 0;) v = v << 8 | id->v.big.mag[i];
  return v;
}

/* ALTACT_SIG_SEND (OTP 28): a message or, with EXIT, an exit signal whose reason is the payload, to a pid, a
 * registered name or an alias; PRIO counts only at a priority alias (erts_proc_sig_send_dist_altact_msg). */
static int dispatch_altact(cn_node *n, const cn_atom *peer, const dist_ctl *ctl, cn_term *payload) {
  bool prio = ctl->altact & DIST_ALTACT_PRIO;
  cn_proc *p = NULL;
  if (!payload) return 0;
  if (ctl->ref && !(ctl->altact & DIST_ALTACT_EXIT)) return link_alias_deliver(n, &ctl->ref->v.ref, payload, prio);
  if (ctl->ref) link_alias_exit(n, &ctl->ref->v.ref, ctl->from->v.pid, payload, prio);
  else if (ctl->name && !(p = proc_by_name(n, ctl->name->v.atom)))
    cn_log(n, CN_LOG_DEBUG, "%s sent to unregistered name %s", peer->name, ctl->name->v.atom->name);
  else if (!ctl->name) p = local_proc(n, ctl->to);
  if (p && !(ctl->altact & DIST_ALTACT_EXIT)) return proc_deliver(p, payload);
  if (p) proc_exit_signal(p, ctl->from->v.pid, payload, false);
  cn_term_free(payload);
  return 0;
}

int dispatch_ctl(cn_node *n, cn_conn *c, const cn_atom *peer, const dist_ctl *ctl, cn_term *payload) {
  (void)c;
  cn_proc *p = NULL;
  const cn_term *reason = ctl->reason ? ctl->reason : payload;
  switch (ctl->op) {
  case DOP_SEND:
  case DOP_SEND_TT:
  case DOP_SEND_SENDER:
  case DOP_SEND_SENDER_TT: p = local_proc(n, ctl->to); break;
  case DOP_REG_SEND:
  case DOP_REG_SEND_TT:
    p = proc_by_name(n, ctl->name->v.atom);
    if (!p) cn_log(n, CN_LOG_DEBUG, "%s sent to unregistered name %s", peer->name, ctl->name->v.atom->name);
    break;
  case DOP_ALIAS_SEND:
  case DOP_ALIAS_SEND_TT: return payload ? link_alias_deliver(n, &ctl->ref->v.ref, payload, false) : 0;
  case DOP_ALTACT_SIG_SEND: return dispatch_altact(n, peer, ctl, payload);
  case DOP_LINK: link_recv_link(n, ctl->to->v.pid, ctl->from->v.pid); break;
  case DOP_UNLINK: link_recv_unlink(n, ctl->to->v.pid, ctl->from->v.pid, NULL); break;
  case DOP_UNLINK_ID: link_recv_unlink(n, ctl->to->v.pid, ctl->from->v.pid, ctl->id); break;
  case DOP_UNLINK_ID_ACK: link_recv_unlink_ack(n, ctl->to->v.pid, ctl->from->v.pid, id_value(ctl->id)); break;
  case DOP_EXIT:
  case DOP_EXIT_TT:
  case DOP_PAYLOAD_EXIT:
  case DOP_PAYLOAD_EXIT_TT:
    if (reason) link_recv_exit(n, ctl->to->v.pid, ctl->from->v.pid, reason);
    break;
  case DOP_EXIT2:
  case DOP_EXIT2_TT:
  case DOP_PAYLOAD_EXIT2:
  case DOP_PAYLOAD_EXIT2_TT:
    if (reason && (p = local_proc(n, ctl->to))) proc_exit_signal(p, ctl->from->v.pid, reason, false);
    p = NULL;
    break;
  case DOP_MONITOR_P: link_recv_monitor(n, ctl->to, ctl->from->v.pid, ctl->ref->v.ref); break;
  case DOP_DEMONITOR_P: link_recv_demonitor(n, ctl->to, ctl->ref->v.ref); break;
  case DOP_MONITOR_P_EXIT:
  case DOP_PAYLOAD_MONITOR_P_EXIT:
    if (reason) link_recv_down(n, ctl->to->v.pid, ctl->from, peer, ctl->ref->v.ref, reason);
    break;
  case DOP_SPAWN_REQUEST:
  case DOP_SPAWN_REQUEST_TT: spawn_request(n, peer, ctl, payload); break;
  case DOP_SPAWN_REPLY:
  case DOP_SPAWN_REPLY_TT:
    if (ctl->id->type == CN_REF) call_spawn_reply(n, ctl->to, ctl->id->v.ref, ctl->result);
    break;
  default:
    /* GROUP_LEADER and NODE_LINK: nothing here uses them. */
    break;
  }
  /* A message that cannot be queued for lack of memory ends the connection (CN_ENOMEM): a gap in the stream would
   * break the order promise, as a lost message does on the BEAM only with the connection. */
  if (p && payload) return proc_deliver(p, payload);
  cn_term_free(payload);
  return 0;
}
