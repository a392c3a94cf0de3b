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
  DIRTY_GUARD(n, bool, cn_is_process_alive(n, pid));
  cn_proc *p = proc_lookup(n, pid);
  return p && !p->dead;
}

cn_proc *proc_by_name(cn_node *n, const cn_atom *name) {
  cn_name *e = n->name_last; /* a stream of REG_SENDs names one process: one hash lookup */
  if (e && e->name == name) return e->proc;
  HASH_FIND_PTR(n->names, &name, e);
  if (e) n->name_last = e;
  return e ? e->proc : NULL;
}

/* Takes e out of the names (the caller frees it). */
static void name_del(cn_node *n, cn_name *e) {
  HASH_DEL(n->names, e);
  if (n->name_last == e) n->name_last = NULL;
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
  DIRTY_GUARD(n, int, cn_spawn(n, handler, state, opts, pid_out));
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
  p->mq_tail = p->mq_prio_tail = &p->mq_head;
  if (opts && opts->dirty && (rc = dirty_proc_init(p))) {
    cn_free(p);
    return rc;
  }
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
  DIRTY_GUARD(self->node, bool, cn_trap_exit(self, on));
  bool old = self->trap_exit;
  self->trap_exit = on;
  return old;
}
cn_node *cn_proc_node(cn_proc *p) { return p->node; }

/* A message's queue entry: a spare one when there is (a steady stream allocates none), else a new one. The spares
 * are the loop thread's, as the queues are. */
#define MSG_SPARE_MAX 64
static cn_msg *msg_new(cn_node *n) {
  cn_msg *m = n->msg_spare;
  if (!m) return cn_malloc(sizeof *m);
  n->msg_spare = m->next;
  n->msg_nspare--;
  return m;
}

static void msg_done(cn_node *n, cn_msg *m) {
  if (n->msg_nspare >= MSG_SPARE_MAX) {
    cn_free(m);
    return;
  }
  m->next = n->msg_spare;
  n->msg_spare = m;
  n->msg_nspare++;
}

void proc_msg_spares_free(cn_node *n) {
  while (n->msg_spare) {
    cn_msg *m = n->msg_spare;
    n->msg_spare = m->next;
    cn_free(m);
  }
  n->msg_nspare = 0;
}

int proc_deliver_prio(cn_proc *p, cn_term *msg, bool prio) {
  if (p->dead || !msg) {
    cn_term_free(msg);
    return msg ? 0 : CN_ENOMEM; /* a NULL message is one its builder could not make */
  }
  cn_msg *m = msg_new(p->node);
  if (!m) {
    cn_term_free(msg);
    return CN_ENOMEM;
  }
  m->term = msg;
  /* A priority message overtakes the ordinary ones but not earlier priority ones (EEP 76's figure 2). */
  cn_msg ***at = prio ? &p->mq_prio_tail : &p->mq_tail;
  m->next = **at;
  **at = m;
  if (!m->next) p->mq_tail = &m->next;
  if (prio) p->mq_prio_tail = &m->next;
  p->mq_len++;
  node_schedule(p->node, p);
  return 0;
}

/* ---- Exits ------------------------------------------------------------------------------------------- */

/* The struct stays until proc_free (a dirty process's until its terminate has run on the pool). */
void proc_die(cn_proc *p, const cn_term *reason) {
  cn_node *n = p->node;
  if (p->dead) return;
  p->dead = true;
  HASH_DEL(n->procs, p);
  if (p->suspended) conn_forget_proc(n, p);
  if (p->reg_name) {
    cn_name *e;
    HASH_FIND_PTR(n->names, &p->reg_name, e);
    if (e) {
      name_del(n, e);
      cn_free(e);
    }
  }
  link_proc_died(p, reason);
  if (p->terminate && p->dirty) dirty_defer_terminate(p, reason);
  else if (p->terminate) p->terminate(p, reason, p->state);
  while (p->mq_head) {
    cn_msg *m = p->mq_head;
    p->mq_head = m->next;
    cn_term_free(m->term);
    cn_free(m);
  }
  p->mq_tail = p->mq_prio_tail = &p->mq_head;
  p->mq_len = 0;
}

void proc_free(cn_proc *p) {
  cn_term_free(p->exit_reason);
  cn_free(p);
}

int cn_proc_exit(cn_proc *self, const cn_term *reason) {
  DIRTY_GUARD(self->node, int, cn_proc_exit(self, reason));
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
    if (p->mq_prio_tail == &m->next) p->mq_prio_tail = &p->mq_head; /* the last priority message left */
    p->mq_len--;
    if (!p->calls || !call_intercept(p, m->term)) p->handler(p, m->term, p->state);
    cn_term_free(m->term);
    msg_done(p->node, m);
    ran++;
  }
  if (p->exit_reason) proc_die(p, p->exit_reason);
  return ran;
}

void proc_exit_signal_prio(cn_proc *p, cn_pid from, const cn_term *reason, bool linked, bool prio) {
  cn_node *n = p->node;
  if (p->dead || p->exit_reason) return;
  bool is_kill = reason->type == CN_ATOM && strcmp(reason->v.atom->name, "kill") == 0;
  bool is_normal = reason->type == CN_ATOM && strcmp(reason->v.atom->name, "normal") == 0;
  if (is_kill && !linked) {
    /* exit(Pid, kill) cannot be trapped and ends the process with reason killed. */
    p->exit_reason = cn_mk_atomc(n, "killed");
  } else if (p->trap_exit) {
    proc_deliver_prio(p, cn_mk_tuple(3, cn_mk_atomc(n, "EXIT"), cn_mk_pid(from), cn_term_copy(reason)), prio);
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
    if (p->dirty) { /* ends once its handler has returned, its terminate on the pool */
      if (!p->exit_reason) p->exit_reason = cn_term_copy(&shutdown);
      if (!p->dirty_busy) dirty_pump(p);
      continue;
    }
    proc_die(p, &shutdown);
    if (!p->in_runq) proc_free(p);
  }
}

/* ---- Names ------------------------------------------------------------------------------------------- */

int cn_register(cn_node *n, const char *name, cn_pid pid) {
  DIRTY_GUARD(n, int, cn_register(n, name, pid));
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
  DIRTY_GUARD(n, int, cn_unregister(n, name));
  const cn_atom *a = cn_atoms_find(n->atoms, name, strlen(name));
  cn_name *e = NULL;
  if (a) HASH_FIND_PTR(n->names, &a, e);
  if (!e) return CN_ENOTFOUND;
  e->proc->reg_name = NULL;
  name_del(n, e);
  cn_free(e);
  return 0;
}

int cn_whereis(cn_node *n, const char *name, cn_pid *out) {
  DIRTY_GUARD(n, int, cn_whereis(n, name, out));
  const cn_atom *a = cn_atoms_find(n->atoms, name, strlen(name));
  cn_proc *p = a ? proc_by_name(n, a) : NULL;
  if (!p) return CN_ENOTFOUND;
  *out = p->pid;
  return 0;
}

int cn_exit_opts(cn_node *n, cn_proc *from, const cn_term *dest, const cn_term *reason, unsigned opts) {
  if (!dest || !reason || (opts & ~(unsigned)CN_SEND_PRIORITY)) return CN_EINVAL;
  DIRTY_GUARD(n, int, cn_exit_opts(n, from, dest, reason, opts));
  bool prio = opts & CN_SEND_PRIORITY;
  cn_pid f = from ? from->pid : n->sys_pid;
  const cn_atom *node;
  if (dest->type == CN_PID) node = dest->v.pid.node;
  else if (dest->type == CN_REF) node = dest->v.ref.node;
  else return CN_EINVAL;
  if (!node) return CN_EINVAL;
  if (!node_is_local(n, node))
    return proc_send_remote(n, from, node, dest, reason, DIST_ALTACT_EXIT | (prio ? DIST_ALTACT_PRIO : 0));
  if (dest->type == CN_REF) {
    link_alias_exit(n, &dest->v.ref, f, reason, prio);
    return 0;
  }
  cn_proc *p = proc_lookup(n, dest->v.pid);
  if (p) proc_exit_signal(p, f, reason, false);
  return 0;
}

int cn_exit(cn_node *n, cn_proc *from, cn_pid to, const cn_term *reason) {
  cn_term dest = tv_pid(to);
  return cn_exit_opts(n, from, &dest, reason, 0);
}

/* ---- Sending --------------------------------------------------------------------------------------------- */

static cn_pid sender(cn_node *n, cn_proc *from) { return from ? from->pid : n->sys_pid; }

/* The older control messages, for a peer without ALTACT_SIG or a signal that does not need it. */
static int send_classic(cn_node *n, cn_proc *from, const cn_atom *node, const cn_term *to, const cn_term *payload,
                        unsigned altact) {
  uint64_t flags = conn_peer_flags(n, node); /* 0 until connected: OTP too encodes for the least then */
  cn_term e[4] = {tv_int(DOP_SEND_SENDER), tv_pid(sender(n, from)), *to, tv_atom(n->empty)};
  cn_term ctl = tv_tuple(e, 3);
  if (altact & DIST_ALTACT_EXIT) {
    if (to->type != CN_PID) return 0; /* an exit to an alias needs ALTACT_SIG: dropped, as OTP does */
    if (flags & DFLAG_EXIT_PAYLOAD) {
      e[0] = tv_int(DOP_PAYLOAD_EXIT2);
      return conn_send(n, node, &ctl, payload);
    }
    e[0] = tv_int(DOP_EXIT2);
    e[3] = *payload;
    ctl = tv_tuple(e, 4);
    return conn_send(n, node, &ctl, NULL);
  }
  if (to->type == CN_REF) {
    if (flags && !(flags & DFLAG_ALIAS)) return 0; /* a peer without aliases has none of ours to send to */
    e[0] = tv_int(DOP_ALIAS_SEND);
    return conn_send(n, node, &ctl, payload);
  }
  if (to->type == CN_ATOM) {
    /* {REG_SEND, From, '', Name}: the unused element was once the cookie. */
    e[0] = tv_int(DOP_REG_SEND);
    e[2] = tv_atom(n->empty);
    e[3] = *to;
    ctl = tv_tuple(e, 4);
  } else if (!(flags & DFLAG_SEND_SENDER)) {
    e[0] = tv_int(DOP_SEND);
    e[1] = tv_atom(n->empty);
  }
  return conn_send_from(n, from, node, &ctl, payload);
}

int proc_send_remote(cn_node *n, cn_proc *from, const cn_atom *node, const cn_term *to, const cn_term *payload,
                     unsigned altact) {
  /* As erts' dsig_send_msg and send_exit2: ALTACT_SIG for an alias or a priority signal, when the peer has it. */
  if (!(to->type == CN_REF || (altact & DIST_ALTACT_PRIO)) || !(conn_peer_flags(n, node) & DFLAG_ALTACT_SIG))
    return send_classic(n, from, node, to, payload, altact);
  cn_term e[5];
  cn_term ctl = dist_altact_ctl(e, altact, sender(n, from), to, NULL);
  if (to->type == CN_REF || (altact & DIST_ALTACT_EXIT)) return conn_send(n, node, &ctl, payload);
  return conn_send_from(n, from, node, &ctl, payload);
}

static int send_pid(cn_node *n, cn_proc *from, cn_pid to, const cn_term *msg, unsigned altact) {
  if (!msg || !to.node) return CN_EINVAL;
  if (node_is_local(n, to.node)) {
    cn_proc *p = proc_lookup(n, to);
    if (!p || p->dead) return 0;
    cn_term *c = cn_term_copy(msg);
    return c ? proc_deliver(p, c) : CN_ENOMEM; /* priority counts only through a priority alias */
  }
  cn_term dest = tv_pid(to);
  return proc_send_remote(n, from, to.node, &dest, msg, altact);
}

int cn_send(cn_node *n, cn_proc *from, cn_pid to, const cn_term *msg) {
  if (!msg || !to.node) return CN_EINVAL;
  cn_term dest = tv_pid(to);
  if (dirty_must_hold(n)) return dirty_post_send(n, from, &dest, msg, 0, false);
  return send_pid(n, from, to, msg, 0);
}

static int send_name_atoms(cn_node *n, cn_proc *from, const cn_atom *name, const cn_atom *node, const cn_term *msg,
                           unsigned altact) {
  if (!name) return CN_EINVAL;
  if (!node || node_is_local(n, node)) {
    cn_proc *p = proc_by_name(n, name);
    if (!p) return CN_ENOTFOUND;
    return cn_send(n, from, p->pid, msg);
  }
  cn_term dest = tv_atom(name);
  return proc_send_remote(n, from, node, &dest, msg, altact);
}

static int send_alias(cn_node *n, cn_proc *from, cn_ref alias, const cn_term *msg, unsigned altact) {
  if (!alias.node) return CN_EINVAL;
  if (!node_is_local(n, alias.node)) {
    cn_term dest = tv_ref(alias);
    return proc_send_remote(n, from, alias.node, &dest, msg, altact);
  }
  if (!link_alias_owner(n, &alias)) return 0;
  cn_term *c = cn_term_copy(msg);
  return c ? link_alias_deliver(n, &alias, c, altact & DIST_ALTACT_PRIO) : CN_ENOMEM;
}

int cn_send_name(cn_node *n, cn_proc *from, const char *name, const cn_atom *node, const cn_term *msg) {
  if (!name || !msg) return CN_EINVAL;
  if (dirty_must_hold(n)) {
    const cn_atom *a = cn_intern(n, name);
    if (!a) return CN_EINVAL;
    cn_term e[2] = {tv_atom(a), tv_atom(node ? node : n->name)};
    cn_term dest = tv_tuple(e, 2);
    return dirty_post_send(n, from, &dest, msg, 0, false);
  }
  return send_name_atoms(n, from, cn_intern(n, name), node, msg, 0);
}

int cn_send_opts(cn_node *n, cn_proc *from, const cn_term *dest, const cn_term *msg, unsigned opts) {
  if (!dest || !msg || (opts & ~(unsigned)CN_SEND_PRIORITY)) return CN_EINVAL;
  if (dirty_must_hold(n)) return dirty_post_send(n, from, dest, msg, opts, false);
  unsigned altact = opts & CN_SEND_PRIORITY ? DIST_ALTACT_PRIO : 0;
  if (dest->type == CN_PID) return send_pid(n, from, dest->v.pid, msg, altact);
  if (dest->type == CN_REF) return send_alias(n, from, dest->v.ref, msg, altact);
  if (dest->type == CN_ATOM) return send_name_atoms(n, from, dest->v.atom, NULL, msg, altact);
  const cn_term *name = cn_tuple_elem(dest, 2, 0), *node = cn_tuple_elem(dest, 2, 1);
  if (name && node && name->type == CN_ATOM && node->type == CN_ATOM)
    return send_name_atoms(n, from, name->v.atom, node->v.atom, msg, altact);
  return CN_EINVAL;
}

int cn_send_to(cn_node *n, cn_proc *from, const cn_term *dest, const cn_term *msg) {
  return cn_send_opts(n, from, dest, msg, 0);
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
  if (dirty_must_hold(self->node)) return dirty_post_send(self->node, self, from, reply, 0, true);
  cn_term e[2] = {*tag, *reply};
  cn_term msg = tv_tuple(e, 2);
  /* OTP 24+ callers tag with [alias | Ref] and expect the reply through the alias, as gen:reply/2 sends it. */
  if (tag->type == CN_LIST && tag->v.list.len == 1 && tag->v.list.tail && tag->v.list.tail->type == CN_REF &&
      cn_is_atom(&tag->v.list.e[0], "alias"))
    return cn_send_alias(self->node, self, tag->v.list.tail->v.ref, &msg);
  return cn_send(self->node, self, pid->v.pid, &msg);
}
