/* dispatch.c: what the node does with each control message a peer sends: deliver messages, apply links,
 * exits and monitors to C processes, and answer what OTP callers wait for (noproc, spawn replies). */
#include <string.h>

#include "node_int.h"

static cn_proc *local_proc(cn_node *n, const cn_term *pid) {
  return pid && pid->type == CN_PID ? proc_lookup(n, pid->v.pid) : NULL;
}

/* A spawn request this node cannot serve gets an error reply, so the caller does not wait forever. */
static int refuse_spawn(cn_node *n, const cn_atom *peer, const dist_ctl *ctl) {
  cn_term e[5] = {tv_int(DOP_SPAWN_REPLY), *ctl->id, *ctl->from, tv_int(0), tv_atom(cn_intern(n, "notsup"))};
  cn_term reply = tv_tuple(e, 5);
  return conn_send(n, peer, &reply, NULL);
}

int dispatch_ctl(cn_node *n, cn_conn *c, const cn_atom *peer, const dist_ctl *ctl, cn_term *payload) {
  (void)c;
  cn_proc *p;
  const cn_term *reason = ctl->reason ? ctl->reason : payload;
  switch (ctl->op) {
  case DOP_SEND:
  case DOP_SEND_TT:
  case DOP_SEND_SENDER:
  case DOP_SEND_SENDER_TT:
    if ((p = local_proc(n, ctl->to))) {
      proc_deliver(p, payload);
      return 0;
    }
    break;
  case DOP_REG_SEND:
  case DOP_REG_SEND_TT:
    if ((p = proc_by_name(n, ctl->name->v.atom))) {
      proc_deliver(p, payload);
      return 0;
    }
    cn_log(n, CN_LOG_DEBUG, "%s sent to unregistered name %s", peer->name, ctl->name->v.atom->name);
    break;
  case DOP_LINK:
    proc_link_remote(n, ctl->to->v.pid, ctl->from->v.pid);
    break;
  case DOP_UNLINK:
    proc_unlink_remote(n, ctl->to->v.pid, ctl->from->v.pid);
    break;
  case DOP_UNLINK_ID: {
    proc_unlink_remote(n, ctl->to->v.pid, ctl->from->v.pid);
    cn_term e[4] = {tv_int(DOP_UNLINK_ID_ACK), *ctl->id, *ctl->to, *ctl->from};
    cn_term ack = tv_tuple(e, 4);
    conn_send(n, peer, &ack, NULL);
    break;
  }
  case DOP_EXIT:
  case DOP_EXIT_TT:
  case DOP_PAYLOAD_EXIT:
  case DOP_PAYLOAD_EXIT_TT:
    if (reason && (p = local_proc(n, ctl->to))) {
      proc_unlink_remote(n, p->pid, ctl->from->v.pid);
      proc_exit_signal(p, ctl->from->v.pid, reason, true);
    }
    break;
  case DOP_EXIT2:
  case DOP_EXIT2_TT:
  case DOP_PAYLOAD_EXIT2:
  case DOP_PAYLOAD_EXIT2_TT:
    if (reason && (p = local_proc(n, ctl->to))) proc_exit_signal(p, ctl->from->v.pid, reason, false);
    break;
  case DOP_MONITOR_P:
    proc_monitor_remote(n, ctl->to, ctl->from->v.pid, ctl->ref->v.ref);
    break;
  case DOP_DEMONITOR_P:
    proc_demonitor_remote(n, ctl->to, ctl->ref->v.ref);
    break;
  case DOP_MONITOR_P_EXIT:
  case DOP_PAYLOAD_MONITOR_P_EXIT:
    if (reason && (p = local_proc(n, ctl->to))) {
      cn_term *obj = ctl->from->type == CN_PID ? cn_mk_pid(ctl->from->v.pid)
                                               : cn_mk_tuple(2, cn_term_copy(ctl->from), cn_mk_atom(peer));
      proc_deliver(p, cn_mk_tuple(5, cn_mk_atomc(n, "DOWN"), cn_term_copy(ctl->ref), cn_mk_atomc(n, "process"),
                                  obj, cn_term_copy(reason)));
    }
    break;
  case DOP_SPAWN_REQUEST:
  case DOP_SPAWN_REQUEST_TT:
    refuse_spawn(n, peer, ctl);
    break;
  default:
    /* GROUP_LEADER, NODE_LINK, SPAWN_REPLY, ALIAS_SEND: nothing here uses them yet. */
    break;
  }
  cn_term_free(payload);
  return 0;
}
