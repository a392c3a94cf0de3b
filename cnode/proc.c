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
  HASH_ADD(hh, n->procs, key, sizeof(uint32_t), p);
  if (pid_out) *pid_out = p->pid;
  return 0;
}

cn_pid cn_self(const cn_proc *p) { return p->pid; }
cn_node *cn_proc_node(cn_proc *p) { return p->node; }

void proc_deliver(cn_proc *p, cn_term *msg) {
  if (p->dead || !msg) {
    cn_term_free(msg);
    return;
  }
  cn_msg *m = cn_malloc(sizeof *m);
  if (!m) {
    cn_term_free(msg);
    return;
  }
  m->next = NULL;
  m->term = msg;
  *p->mq_tail = m;
  p->mq_tail = &m->next;
  p->mq_len++;
  node_schedule(p->node, p);
}

/* ---- Exits ------------------------------------------------------------------------------------------- */

static bool links_remove(cn_link **l, cn_pid pid) {
  for (; *l; l = &(*l)->next) {
    if ((*l)->pid.node == pid.node && (*l)->pid.id == pid.id && (*l)->pid.serial == pid.serial) {
      cn_link *x = *l;
      *l = x->next;
      cn_free(x);
      return true;
    }
  }
  return false;
}

static bool pid_eq(cn_pid a, cn_pid b) { return a.node == b.node && a.id == b.id && a.serial == b.serial; }

static int links_add(cn_link **l, cn_pid pid) {
  for (cn_link *x = *l; x; x = x->next)
    if (pid_eq(x->pid, pid)) return 0;
  cn_link *x = cn_malloc(sizeof *x);
  if (!x) return CN_ENOMEM;
  x->pid = pid;
  x->next = *l;
  *l = x;
  return 0;
}

/* Sends an exit signal of a dying local process over the wire (link exit). */
static void send_remote_exit(cn_node *n, cn_pid from, cn_pid to, const cn_term *reason) {
  cn_term e[4];
  if (conn_peer_flags(n, to.node) & DFLAG_EXIT_PAYLOAD) {
    e[0] = tv_int(DOP_PAYLOAD_EXIT);
    e[1] = tv_pid(from);
    e[2] = tv_pid(to);
    cn_term ctl = tv_tuple(e, 3);
    conn_send(n, to.node, &ctl, reason);
  } else {
    e[0] = tv_int(DOP_EXIT);
    e[1] = tv_pid(from);
    e[2] = tv_pid(to);
    e[3] = *reason;
    cn_term ctl = tv_tuple(e, 4);
    conn_send(n, to.node, &ctl, NULL);
  }
}

/* The monitored object as OTP reports it: the pid, or {Name, Node} for a monitor by name. */
static void monitor_exit(cn_node *n, cn_proc *p, cn_mon_in *m, const cn_term *reason) {
  if (node_is_local(n, m->watcher.node)) {
    cn_proc *w = proc_lookup(n, m->watcher);
    if (!w) return;
    cn_term *obj = m->name ? cn_mk_tuple(2, cn_mk_atom(m->name), cn_mk_atom(n->name)) : cn_mk_pid(p->pid);
    cn_term *down = cn_mk_tuple(5, cn_mk_atomc(n, "DOWN"), cn_mk_ref(m->ref), cn_mk_atomc(n, "process"), obj,
                                cn_term_copy(reason));
    proc_deliver(w, down);
    return;
  }
  cn_term e[5];
  cn_term obj = m->name ? tv_atom(m->name) : tv_pid(p->pid);
  bool payload = conn_peer_flags(n, m->watcher.node) & DFLAG_EXIT_PAYLOAD;
  e[0] = tv_int(payload ? DOP_PAYLOAD_MONITOR_P_EXIT : DOP_MONITOR_P_EXIT);
  e[1] = obj;
  e[2] = tv_pid(m->watcher);
  e[3] = tv_ref(m->ref);
  if (payload) {
    cn_term ctl = tv_tuple(e, 4);
    conn_send(n, m->watcher.node, &ctl, reason);
  } else {
    e[4] = *reason;
    cn_term ctl = tv_tuple(e, 5);
    conn_send(n, m->watcher.node, &ctl, NULL);
  }
}

/* Ends p now: names, links and monitors fire, then terminate runs. The struct stays until proc_free. */
static void proc_die(cn_proc *p, const cn_term *reason) {
  cn_node *n = p->node;
  if (p->dead) return;
  p->dead = true;
  HASH_DEL(n->procs, p);
  if (p->reg_name) {
    cn_name *e;
    HASH_FIND_PTR(n->names, &p->reg_name, e);
    if (e) {
      HASH_DEL(n->names, e);
      cn_free(e);
    }
  }
  while (p->links) {
    cn_link *l = p->links;
    p->links = l->next;
    if (node_is_local(n, l->pid.node)) {
      cn_proc *q = proc_lookup(n, l->pid);
      if (q && links_remove(&q->links, p->pid)) proc_exit_signal(q, p->pid, reason, true);
    } else {
      send_remote_exit(n, p->pid, l->pid, reason);
    }
    cn_free(l);
  }
  while (p->mons_in) {
    cn_mon_in *m = p->mons_in;
    p->mons_in = m->next;
    monitor_exit(n, p, m, reason);
    cn_free(m);
  }
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
  while (ran < budget && !p->exit_reason && p->mq_head) {
    cn_msg *m = p->mq_head;
    p->mq_head = m->next;
    if (!p->mq_head) p->mq_tail = &p->mq_head;
    p->mq_len--;
    p->handler(p, m->term, p->state);
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
  } else if (is_normal && !pid_eq(from, p->pid)) {
    return;
  } else {
    p->exit_reason = cn_term_copy(reason);
  }
  if (p->exit_reason) node_schedule(n, p);
}

void proc_kill_all(cn_node *n) {
  cn_term shutdown = tv_atom(cn_intern(n, "shutdown"));
  cn_proc *p, *tmp;
  HASH_ITER(hh, n->procs, p, tmp) {
    proc_die(p, &shutdown);
    if (!p->in_runq) proc_free(p);
  }
}

/* ---- Links and monitors that arrive over the wire ------------------------------------------------------- */

void proc_link_remote(cn_node *n, cn_pid local, cn_pid remote) {
  cn_proc *p = proc_lookup(n, local);
  if (!p) {
    /* Linking to a dead process gives the linker an exit with reason noproc. */
    cn_term e[4] = {tv_int(DOP_EXIT), tv_pid(local), tv_pid(remote), tv_atom(cn_intern(n, "noproc"))};
    cn_term ctl = tv_tuple(e, 4);
    conn_send(n, remote.node, &ctl, NULL);
    return;
  }
  links_add(&p->links, remote);
}

void proc_unlink_remote(cn_node *n, cn_pid local, cn_pid remote) {
  cn_proc *p = proc_lookup(n, local);
  if (p) links_remove(&p->links, remote);
}

int proc_monitor_remote(cn_node *n, const cn_term *target, cn_pid watcher, cn_ref ref) {
  cn_proc *p = target->type == CN_PID ? proc_lookup(n, target->v.pid) : proc_by_name(n, target->v.atom);
  if (!p || p->dead) {
    cn_term e[5] = {tv_int(DOP_MONITOR_P_EXIT), *target, tv_pid(watcher), tv_ref(ref),
                    tv_atom(cn_intern(n, "noproc"))};
    cn_term ctl = tv_tuple(e, 5);
    return conn_send(n, watcher.node, &ctl, NULL);
  }
  cn_mon_in *m = cn_malloc(sizeof *m);
  if (!m) return CN_ENOMEM;
  m->watcher = watcher;
  m->ref = ref;
  m->name = target->type == CN_ATOM ? target->v.atom : NULL;
  m->next = p->mons_in;
  p->mons_in = m;
  return 0;
}

static bool ref_eq(const cn_ref *a, const cn_ref *b) {
  return a->node == b->node && a->len == b->len && memcmp(a->n, b->n, a->len * sizeof a->n[0]) == 0;
}

void proc_demonitor_remote(cn_node *n, const cn_term *target, cn_ref ref) {
  cn_proc *p = target->type == CN_PID ? proc_lookup(n, target->v.pid) : proc_by_name(n, target->v.atom);
  if (!p) return;
  for (cn_mon_in **m = &p->mons_in; *m; m = &(*m)->next) {
    if (ref_eq(&(*m)->ref, &ref)) {
      cn_mon_in *x = *m;
      *m = x->next;
      cn_free(x);
      return;
    }
  }
}

void proc_nodedown(cn_node *n, const cn_atom *peer) {
  cn_term reason = tv_atom(cn_intern(n, "noconnection"));
  cn_proc *p, *tmp;
  HASH_ITER(hh, n->procs, p, tmp) {
    for (cn_mon_in **m = &p->mons_in; *m;) {
      if ((*m)->watcher.node == peer) {
        cn_mon_in *x = *m;
        *m = x->next;
        cn_free(x);
      } else {
        m = &(*m)->next;
      }
    }
    for (cn_link **l = &p->links; *l;) {
      if ((*l)->pid.node == peer) {
        cn_link *x = *l;
        *l = x->next;
        cn_pid from = x->pid;
        cn_free(x);
        proc_exit_signal(p, from, &reason, true);
      } else {
        l = &(*l)->next;
      }
    }
  }
}

/* ---- Names ------------------------------------------------------------------------------------------- */

int cn_register(cn_node *n, const char *name, cn_pid pid) {
  const cn_atom *a = cn_intern(n, name);
  if (!a) return CN_EINVAL;
  cn_proc *p = proc_lookup(n, pid);
  if (!p || p->dead) return CN_ENOPROC;
  if (p->reg_name || proc_by_name(n, a)) return CN_EEXIST;
  cn_name *e = cn_malloc(sizeof *e);
  if (!e) return CN_ENOMEM;
  e->name = a;
  e->proc = p;
  HASH_ADD_PTR(n->names, name, e);
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

/* ---- Sending --------------------------------------------------------------------------------------------- */

static cn_pid sender(cn_node *n, cn_proc *from) { return from ? from->pid : n->sys_pid; }

int cn_send(cn_node *n, cn_proc *from, cn_pid to, const cn_term *msg) {
  if (!msg || !to.node) return CN_EINVAL;
  if (node_is_local(n, to.node)) {
    cn_proc *p = proc_lookup(n, to);
    if (!p || p->dead) return 0;
    cn_term *c = cn_term_copy(msg);
    if (!c) return CN_ENOMEM;
    proc_deliver(p, c);
    return 0;
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
    e[1] = tv_atom(cn_intern(n, ""));
    e[2] = tv_pid(to);
  }
  ctl = tv_tuple(e, 3);
  return conn_send(n, to.node, &ctl, msg);
}

static int send_name_atoms(cn_node *n, cn_proc *from, const cn_atom *name, const cn_atom *node,
                           const cn_term *msg) {
  if (!name) return CN_EINVAL;
  if (!node || node_is_local(n, node)) {
    cn_proc *p = proc_by_name(n, name);
    if (!p) return CN_ENOTFOUND;
    return cn_send(n, from, p->pid, msg);
  }
  cn_term e[4] = {tv_int(DOP_REG_SEND), tv_pid(sender(n, from)), tv_atom(cn_intern(n, "")), tv_atom(name)};
  cn_term ctl = tv_tuple(e, 4);
  return conn_send(n, node, &ctl, msg);
}

int cn_send_name(cn_node *n, cn_proc *from, const char *name, const char *node, const cn_term *msg) {
  if (!name || !msg) return CN_EINVAL;
  return send_name_atoms(n, from, cn_intern(n, name), node ? cn_intern(n, node) : NULL, msg);
}

int cn_send_to(cn_node *n, cn_proc *from, const cn_term *dest, const cn_term *msg) {
  if (!dest || !msg) return CN_EINVAL;
  if (dest->type == CN_PID) return cn_send(n, from, dest->v.pid, msg);
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
  /* The caller waits for {Tag, Reply}; with OTP 24+ Tag is [alias | Ref] and a reply to the pid matches too. */
  cn_term e[2] = {*tag, *reply};
  cn_term msg = tv_tuple(e, 2);
  return cn_send(self->node, self, pid->v.pid, &msg);
}
