/* proc.c: C processes: pids, mailboxes, registered names, exits with OTP's signal rules, links and monitors
 * held per process, and sending to local or remote pids and names. */
#include <string.h>

#include "node_int.h"

/* Pid numbers stay within what every OTP release accepts: 15 bits of id and 13 of serial. */
#define PID_ID_MAX 0x7fffu
#define PID_SERIAL_MAX 0x1fffu

static uint32_t pid_key(cn_pid p) { return p.id | p.serial << 15; }

cn_proc *proc_lookup(cn_node *n, cn_pid pid) {
  if (pid.node != n->name || pid.id > PID_ID_MAX || pid.serial > PID_SERIAL_MAX) return NULL;
  if (pid.creation && n->creation && pid.creation != n->creation) return NULL;
  uint32_t key = pid_key(pid);
  cn_proc *p;
  HASH_FIND(hh, n->procs, &key, sizeof key, p);
  return p;
}

bool cn_is_process_alive(cn_node *n, cn_pid pid) {
  cn_proc *p = proc_lookup(n, pid);
  return p && !p->dead;
}

cn_proc *proc_by_name(cn_node *n, const cn_atom *name) {
  cn_name *e;
  HASH_FIND_PTR(n->names, &name, e);
  return e ? e->proc : NULL;
}

static int next_pid(cn_node *n, cn_pid *out) {
  for (uint32_t tries = 0; tries <= (PID_ID_MAX + 1u) * (PID_SERIAL_MAX + 1u); tries++) {
    cn_pid p = {.node = n->name, .id = n->next_id, .serial = n->serial, .creation = n->creation};
    if (++n->next_id > PID_ID_MAX) {
      n->next_id = 1;
      n->serial = (n->serial + 1) & PID_SERIAL_MAX;
    }
    uint32_t key = pid_key(p);
    cn_proc *x;
    HASH_FIND(hh, n->procs, &key, sizeof key, x);
    if (!x) {
      *out = p;
      return 0;
    }
  }
  return CN_ELIMIT;
}

int cn_spawn(cn_node *n, cn_handler_fn handler, void *state, const cn_proc_opts *opts, cn_pid *pid_out) {
  if (!handler) return CN_EINVAL;
  if (n->stopping) return CN_ESTATE;
  cn_proc *p = cn_calloc(1, sizeof *p);
  if (!p) return CN_ENOMEM;
  int rc = next_pid(n, &p->pid);
  if (rc) {
    cn_free(p);
    return rc;
  }
  p->node = n;
  p->key = pid_key(p->pid);
  p->handler = handler;
  p->state = state;
  if (opts) {
    p->terminate = opts->terminate;
    p->trap_exit = opts->trap_exit;
  }
  p->mq_tail = &p->mq_head;
  node_hash_oom = false;
  HASH_ADD(hh, n->procs, key, sizeof(uint32_t), p);
  if (node_hash_oom) {
    cn_free(p);
    return CN_ENOMEM;
  }
  if (pid_out) *pid_out = p->pid;
  return 0;
}

cn_pid cn_self(const cn_proc *p) { return p->pid; }

bool cn_trap_exit(cn_proc *self, bool on) {
  bool old = self->trap_exit;
  self->trap_exit = on;
  return old;
}
cn_node *cn_proc_node(cn_proc *p) { return p->node; }

int proc_deliver(cn_proc *p, cn_term *msg) {
  if (p->dead || !msg) {
    cn_term_free(msg);
    return msg ? 0 : CN_ENOMEM; /* a NULL message is one its builder could not make */
  }
  cn_msg *m = cn_malloc(sizeof *m);
  if (!m) {
    cn_term_free(msg);
    return CN_ENOMEM;
  }
  m->next = NULL;
  m->term = msg;
  *p->mq_tail = m;
  p->mq_tail = &m->next;
  p->mq_len++;
  node_schedule(p->node, p);
  return 0;
}

/* ---- Exits ------------------------------------------------------------------------------------------- */

/* Ends p now: names, links and monitors fire, then terminate runs. The struct stays until proc_free. */
static void proc_die(cn_proc *p, const cn_term *reason) {
  cn_node *n = p->node;
  if (p->dead) return;
  p->dead = true;
  HASH_DEL(n->procs, p);
  if (p->suspended) conn_forget_proc(n, p);
  if (p->reg_name) {
    cn_name *e;
    HASH_FIND_PTR(n->names, &p->reg_name, e);
    if (e) {
      HASH_DEL(n->names, e);
      cn_free(e);
    }
  }
  link_proc_died(p, reason);
  if (p->terminate) p->terminate(p, reason, p->state);
  while (p->mq_head) {
    cn_msg *m = p->mq_head;
    p->mq_head = m->next;
    cn_term_free(m->term);
    cn_free(m);
  }
  p->mq_tail = &p->mq_head;
  p->mq_len = 0;
}

void proc_free(cn_proc *p) {
  cn_term_free(p->exit_reason);
  cn_free(p);
}

int cn_proc_exit(cn_proc *self, const cn_term *reason) {
  if (self->exit_reason) return 0;
  self->exit_reason = reason ? cn_term_copy(reason) : cn_mk_atomc(self->node, "normal");
  if (!self->exit_reason) return CN_ENOMEM;
  node_schedule(self->node, self);
  return 0;
}

size_t proc_run(cn_proc *p, size_t budget) {
  size_t ran = 0;
  while (ran < budget && !p->exit_reason && !p->suspended && p->mq_head) {
    cn_msg *m = p->mq_head;
    p->mq_head = m->next;
    if (!p->mq_head) p->mq_tail = &p->mq_head;
    p->mq_len--;
    if (!p->calls || !call_intercept(p, m->term)) p->handler(p, m->term, p->state);
    cn_term_free(m->term);
    cn_free(m);
    ran++;
  }
  if (p->exit_reason) proc_die(p, p->exit_reason);
  return ran;
}

void proc_exit_signal(cn_proc *p, cn_pid from, const cn_term *reason, bool linked) {
  cn_node *n = p->node;
  if (p->dead || p->exit_reason) return;
  bool is_kill = reason->type == CN_ATOM && strcmp(reason->v.atom->name, "kill") == 0;
  bool is_normal = reason->type == CN_ATOM && strcmp(reason->v.atom->name, "normal") == 0;
  if (is_kill && !linked) {
    /* exit(Pid, kill) cannot be trapped and ends the process with reason killed. */
    p->exit_reason = cn_mk_atomc(n, "killed");
  } else if (p->trap_exit) {
    proc_deliver(p, cn_mk_tuple(3, cn_mk_atomc(n, "EXIT"), cn_mk_pid(from), cn_term_copy(reason)));
    return;
  } else if (is_normal && !node_pid_eq(from, p->pid)) {
    return;
  } else {
    p->exit_reason = cn_term_copy(reason);
  }
  if (!p->exit_reason) return;
  if (p->suspended) conn_forget_proc(n, p); /* a suspended process still dies at once */
  node_schedule(n, p);
}

void proc_kill_all(cn_node *n) {
  cn_term shutdown = tv_atom(cn_intern(n, "shutdown"));
  cn_proc *p, *tmp;
  HASH_ITER(hh, n->procs, p, tmp) {
    proc_die(p, &shutdown);
    if (!p->in_runq) proc_free(p);
  }
}

/* ---- Names ------------------------------------------------------------------------------------------- */

int cn_register(cn_node *n, const char *name, cn_pid pid) {
  const cn_atom *a;
  int rc = node_intern(n, name, &a);
  if (rc) return rc;
  cn_proc *p = proc_lookup(n, pid);
  if (!p || p->dead) return CN_ENOPROC;
  if (p->reg_name || proc_by_name(n, a)) return CN_EEXIST;
  cn_name *e = cn_malloc(sizeof *e);
  if (!e) return CN_ENOMEM;
  e->name = a;
  e->proc = p;
  node_hash_oom = false;
  HASH_ADD_PTR(n->names, name, e);
  if (node_hash_oom) {
    cn_free(e);
    return CN_ENOMEM;
  }
  p->reg_name = a;
  return 0;
}

int cn_unregister(cn_node *n, const char *name) {
  const cn_atom *a = cn_atoms_find(n->atoms, name, strlen(name));
  cn_name *e = NULL;
  if (a) HASH_FIND_PTR(n->names, &a, e);
  if (!e) return CN_ENOTFOUND;
  e->proc->reg_name = NULL;
  HASH_DEL(n->names, e);
  cn_free(e);
  return 0;
}

int cn_whereis(cn_node *n, const char *name, cn_pid *out) {
  const cn_atom *a = cn_atoms_find(n->atoms, name, strlen(name));
  cn_proc *p = a ? proc_by_name(n, a) : NULL;
  if (!p) return CN_ENOTFOUND;
  *out = p->pid;
  return 0;
}

int cn_exit(cn_node *n, cn_proc *from, cn_pid to, const cn_term *reason) {
  if (!reason || !to.node) return CN_EINVAL;
  cn_pid f = from ? from->pid : n->sys_pid;
  if (node_is_local(n, to.node)) {
    cn_proc *p = proc_lookup(n, to);
    if (p) proc_exit_signal(p, f, reason, false);
    return 0;
  }
  cn_term e[4] = {tv_int(DOP_EXIT2), tv_pid(f), tv_pid(to), *reason};
  if (conn_peer_flags(n, to.node) & DFLAG_EXIT_PAYLOAD) {
    e[0] = tv_int(DOP_PAYLOAD_EXIT2);
    cn_term ctl = tv_tuple(e, 3);
    return conn_send(n, to.node, &ctl, reason);
  }
  cn_term ctl = tv_tuple(e, 4);
  return conn_send(n, to.node, &ctl, NULL);
}

/* ---- Sending --------------------------------------------------------------------------------------------- */

static cn_pid sender(cn_node *n, cn_proc *from) { return from ? from->pid : n->sys_pid; }

int cn_send(cn_node *n, cn_proc *from, cn_pid to, const cn_term *msg) {
  if (!msg || !to.node) return CN_EINVAL;
  if (node_is_local(n, to.node)) {
    cn_proc *p = proc_lookup(n, to);
    if (!p || p->dead) return 0;
    cn_term *c = cn_term_copy(msg);
    return c ? proc_deliver(p, c) : CN_ENOMEM;
  }
  cn_term e[3];
  cn_term ctl;
  if (conn_peer_flags(n, to.node) & DFLAG_SEND_SENDER) {
    e[0] = tv_int(DOP_SEND_SENDER);
    e[1] = tv_pid(sender(n, from));
    e[2] = tv_pid(to);
  } else {
    /* The unused element was once the cookie; OTP sends the empty atom. */
    e[0] = tv_int(DOP_SEND);
    e[1] = tv_atom(n->empty);
    e[2] = tv_pid(to);
  }
  ctl = tv_tuple(e, 3);
  return conn_send_from(n, from, to.node, &ctl, msg);
}

static int send_name_atoms(cn_node *n, cn_proc *from, const cn_atom *name, const cn_atom *node, const cn_term *msg) {
  if (!name) return CN_EINVAL;
  if (!node || node_is_local(n, node)) {
    cn_proc *p = proc_by_name(n, name);
    if (!p) return CN_ENOTFOUND;
    return cn_send(n, from, p->pid, msg);
  }
  cn_term e[4] = {tv_int(DOP_REG_SEND), tv_pid(sender(n, from)), tv_atom(n->empty), tv_atom(name)};
  cn_term ctl = tv_tuple(e, 4);
  return conn_send_from(n, from, node, &ctl, msg);
}

int cn_send_name(cn_node *n, cn_proc *from, const char *name, const cn_atom *node, const cn_term *msg) {
  if (!name || !msg) return CN_EINVAL;
  return send_name_atoms(n, from, cn_intern(n, name), node, msg);
}

int cn_send_to(cn_node *n, cn_proc *from, const cn_term *dest, const cn_term *msg) {
  if (!dest || !msg) return CN_EINVAL;
  if (dest->type == CN_PID) return cn_send(n, from, dest->v.pid, msg);
  if (dest->type == CN_REF) return cn_send_alias(n, from, dest->v.ref, msg);
  if (dest->type == CN_ATOM) return send_name_atoms(n, from, dest->v.atom, NULL, msg);
  const cn_term *name = cn_tuple_elem(dest, 2, 0), *node = cn_tuple_elem(dest, 2, 1);
  if (name && node && name->type == CN_ATOM && node->type == CN_ATOM)
    return send_name_atoms(n, from, name->v.atom, node->v.atom, msg);
  return CN_EINVAL;
}

/* ---- gen_server glue -------------------------------------------------------------------------------------- */

bool cn_gen_is_call(const cn_term *msg, const cn_term **from, const cn_term **request) {
  const cn_term *tag = cn_tuple_elem(msg, 3, 0);
  if (!tag || !cn_is_atom(tag, "$gen_call")) return false;
  const cn_term *f = cn_tuple_elem(msg, 3, 1);
  if (!cn_tuple_elem(f, 2, 0) || cn_tuple_elem(f, 2, 0)->type != CN_PID) return false;
  *from = f;
  *request = cn_tuple_elem(msg, 3, 2);
  return true;
}

int cn_gen_reply(cn_proc *self, const cn_term *from, const cn_term *reply) {
  const cn_term *pid = cn_tuple_elem(from, 2, 0), *tag = cn_tuple_elem(from, 2, 1);
  if (!pid || pid->type != CN_PID || !reply) return CN_EINVAL;
  cn_term e[2] = {*tag, *reply};
  cn_term msg = tv_tuple(e, 2);
  /* OTP 24+ callers tag with [alias | Ref] and expect the reply through the alias, as gen:reply/2 sends it. */
  if (tag->type == CN_LIST && tag->v.list.len == 1 && tag->v.list.tail && tag->v.list.tail->type == CN_REF &&
      cn_is_atom(&tag->v.list.e[0], "alias"))
    return cn_send_alias(self->node, self, tag->v.list.tail->v.ref, &msg);
  return cn_send(self->node, self, pid->v.pid, &msg);
}
