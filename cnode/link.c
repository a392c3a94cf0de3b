/* link.c: links (the new link protocol: active flag and unlink id per link), monitors held both ways,
 * process aliases, and what a dying process or a lost node does to all of them. */
#include <string.h>

#include "node_int.h"

bool node_pid_eq(cn_pid a, cn_pid b) { return a.node == b.node && a.id == b.id && a.serial == b.serial; }

/* The first word differs between our own refs, so it decides most comparisons (demonitor scans). */
bool node_ref_eq(const cn_ref *a, const cn_ref *b) {
  if (a->n[0] != b->n[0] || a->len != b->len || a->node != b->node) return false;
  for (uint32_t i = 1; i < a->len && i < CN_REF_MAX_WORDS; i++)
    if (a->n[i] != b->n[i]) return false;
  return true;
}

static cn_term atom_t(cn_node *n, const char *name) { return tv_atom(cn_intern(n, name)); }

/* ---- Link records ------------------------------------------------------------------------------------ */

static link_rec **link_slot(link_rec **l, cn_pid pid) {
  for (; *l; l = &(*l)->next)
    if (node_pid_eq((*l)->pid, pid)) return l;
  return l;
}

static void link_del(link_rec **l, cn_pid pid) {
  link_rec **s = link_slot(l, pid);
  if (*s) {
    link_rec *x = *s;
    *s = x->next;
    cn_free(x);
  }
}

/* Sending LINK: the link exists and is active, whatever unlink was outstanding. */
int link_add(link_rec **l, cn_pid pid) {
  link_rec **s = link_slot(l, pid);
  if (*s) {
    (*s)->active = true;
    (*s)->unlink_id = 0;
    return 0;
  }
  link_rec *x = cn_calloc(1, sizeof *x);
  if (!x) return CN_ENOMEM;
  x->pid = pid;
  x->active = true;
  *s = x;
  return 0;
}

static int send_ctl3(cn_node *n, const cn_atom *peer, int op, cn_term a, cn_term b) {
  cn_term e[3] = {tv_int(op), a, b};
  cn_term ctl = tv_tuple(e, 3);
  return conn_send(n, peer, &ctl, NULL);
}

/* A link exit of a dying local process, over the wire. */
static void send_remote_exit(cn_node *n, cn_pid from, cn_pid to, const cn_term *reason) {
  cn_term e[4] = {tv_int(DOP_EXIT), tv_pid(from), tv_pid(to), *reason};
  if (conn_peer_flags(n, to.node) & DFLAG_EXIT_PAYLOAD) {
    e[0] = tv_int(DOP_PAYLOAD_EXIT);
    cn_term ctl = tv_tuple(e, 3);
    conn_send(n, to.node, &ctl, reason);
  } else {
    cn_term ctl = tv_tuple(e, 4);
    conn_send(n, to.node, &ctl, NULL);
  }
}

int cn_link(cn_proc *self, cn_pid pid) {
  cn_node *n = self->node;
  DIRTY_GUARD(n, int, cn_link(self, pid));
  if (!pid.node) return CN_EINVAL;
  if (node_pid_eq(pid, self->pid)) return 0;
  if (node_is_local(n, pid.node)) {
    cn_proc *q = proc_lookup(n, pid);
    if (!q || q->dead) {
      cn_term noproc = atom_t(n, "noproc");
      proc_exit_signal(self, pid, &noproc, true);
      return 0;
    }
    int rc = link_add(&self->links, pid);
    if (!rc && (rc = link_add(&q->links, self->pid))) link_del(&self->links, pid);
    return rc;
  }
  int rc = link_add(&self->links, pid);
  if (rc) return rc;
  return send_ctl3(n, pid.node, DOP_LINK, tv_pid(self->pid), tv_pid(pid));
}

int cn_unlink(cn_proc *self, cn_pid pid) {
  cn_node *n = self->node;
  DIRTY_GUARD(n, int, cn_unlink(self, pid));
  link_rec **s = link_slot(&self->links, pid);
  if (!*s || !(*s)->active) return 0;
  if (node_is_local(n, pid.node)) {
    link_del(&self->links, pid);
    cn_proc *q = proc_lookup(n, pid);
    if (q) link_del(&q->links, self->pid);
    return 0;
  }
  if (conn_peer_flags(n, pid.node) & DFLAG_UNLINK_ID) {
    /* Inactive until the ack: an exit of the old link still on its way is then ignored. */
    (*s)->active = false;
    (*s)->unlink_id = ++n->unlink_counter;
    cn_term e[4] = {tv_int(DOP_UNLINK_ID), tv_int((int64_t)(*s)->unlink_id), tv_pid(self->pid), tv_pid(pid)};
    cn_term ctl = tv_tuple(e, 4);
    return conn_send(n, pid.node, &ctl, NULL);
  }
  link_del(&self->links, pid);
  return send_ctl3(n, pid.node, DOP_UNLINK, tv_pid(self->pid), tv_pid(pid));
}

void link_recv_link(cn_node *n, cn_pid local, cn_pid remote) {
  cn_proc *p = proc_lookup(n, local);
  if (!p || p->dead) {
    /* Linking to a dead process gives the linker an exit with reason noproc. */
    cn_term e[4] = {tv_int(DOP_EXIT), tv_pid(local), tv_pid(remote), atom_t(n, "noproc")};
    cn_term ctl = tv_tuple(e, 4);
    conn_send(n, remote.node, &ctl, NULL);
    return;
  }
  /* An existing record stays as it is: an inactive one means our UNLINK_ID is still to reach the peer. */
  if (!*link_slot(&p->links, remote)) link_add(&p->links, remote);
}

void link_recv_unlink(cn_node *n, cn_pid local, cn_pid remote, const cn_term *id) {
  cn_proc *p = proc_lookup(n, local);
  if (p) {
    link_rec **s = link_slot(&p->links, remote);
    if (*s && ((*s)->active || !id)) link_del(&p->links, remote);
  }
  if (id) {
    /* The ack goes out before anything else we send to that process: this call sends it at once. */
    cn_term e[4] = {tv_int(DOP_UNLINK_ID_ACK), *id, tv_pid(local), tv_pid(remote)};
    cn_term ctl = tv_tuple(e, 4);
    conn_send(n, remote.node, &ctl, NULL);
  }
}

void link_recv_unlink_ack(cn_node *n, cn_pid local, cn_pid remote, uint64_t id) {
  cn_proc *p = proc_lookup(n, local);
  if (!p) return;
  link_rec **s = link_slot(&p->links, remote);
  if (*s && !(*s)->active && (*s)->unlink_id == id) link_del(&p->links, remote);
}

void link_recv_exit(cn_node *n, cn_pid local, cn_pid remote, const cn_term *reason) {
  cn_proc *p = proc_lookup(n, local);
  if (!p) return;
  link_rec **s = link_slot(&p->links, remote);
  if (!*s) return;
  bool active = (*s)->active;
  link_del(&p->links, remote);
  if (active) proc_exit_signal(p, remote, reason, true);
}

/* ---- Monitors ------------------------------------------------------------------------------------------ */

static mon_key key_of(const cn_ref *r) {
  mon_key k;
  memset(&k, 0, sizeof k); /* padding too: the key is hashed as bytes */
  k.node = r->node;
  for (uint32_t i = 0; i < r->len && i < 3; i++) k.n[i] = r->n[i];
  return k;
}

int link_add_mon_in(cn_proc *p, cn_pid watcher, cn_ref ref, const cn_atom *name) {
  cn_mon_in *m = cn_calloc(1, sizeof *m);
  if (!m) return CN_ENOMEM;
  m->watcher = watcher;
  m->ref = ref;
  m->name = name;
  m->proc = p;
  m->key = key_of(&ref);
  node_hash_oom = false;
  HASH_ADD(hh, p->node->mons_in, key, sizeof m->key, m);
  if (node_hash_oom) {
    cn_free(m);
    return CN_ENOMEM;
  }
  m->next = p->mons_in;
  if (m->next) m->next->pprev = &m->next;
  m->pprev = &p->mons_in;
  p->mons_in = m;
  return 0;
}

/* ASSUME(c) tells clang's static analyzer an invariant it cannot derive, and is nothing in a real build. Here: an
 * entry still held by its process is in the node's hash, so that hash is not empty (the analyzer follows a first
 * HASH_DEL that empties the hash with a second one on the same, now NULL, head). */
#ifdef __clang_analyzer__
#define ASSUME(c) ((c) ? (void)0 : __builtin_unreachable())
#else
#define ASSUME(c) ((void)0)
#endif

/* Takes m out of its process's list and the node's index. The caller frees it. */
static void mon_in_unlink(cn_node *n, cn_mon_in *m) {
  ASSUME(n->mons_in);
  *m->pprev = m->next;
  if (m->next) m->next->pprev = m->pprev;
  HASH_DEL(n->mons_in, m);
}

int link_add_mon_out(cn_proc *p, cn_ref ref, cn_pid pid, const cn_atom *name, const cn_atom *node) {
  cn_mon_out *m = cn_calloc(1, sizeof *m);
  if (!m) return CN_ENOMEM;
  m->ref = ref;
  m->pid = pid;
  m->name = name;
  m->node = node;
  m->next = p->mons_out;
  p->mons_out = m;
  return 0;
}

static cn_mon_out *mon_out_take(cn_proc *p, const cn_ref *ref) {
  for (cn_mon_out **m = &p->mons_out; *m; m = &(*m)->next) {
    if (node_ref_eq(&(*m)->ref, ref)) {
      cn_mon_out *x = *m;
      *m = x->next;
      return x;
    }
  }
  return NULL;
}

static void mon_in_drop(cn_proc *p, const cn_ref *ref) {
  mon_key k = key_of(ref);
  cn_mon_in *m;
  HASH_FIND(hh, p->node->mons_in, &k, sizeof k, m);
  if (!m || m->proc != p || !node_ref_eq(&m->ref, ref)) {
    /* A peer may reuse a reference on another process: fall back to this process's own list. */
    for (m = p->mons_in; m && !node_ref_eq(&m->ref, ref); m = m->next) {
    }
  }
  if (!m) return;
  mon_in_unlink(p->node, m);
  cn_free(m);
}

/* {'DOWN', Ref, process, Obj, Reason}; Obj is the pid, or {Name, Node} for a monitor by name. */
static void deliver_down(cn_proc *w, cn_ref ref, cn_pid pid, const cn_atom *name, const cn_atom *node,
                         const cn_term *reason) {
  cn_node *n = w->node;
  /* A monitor whose target pid is not known yet (a spawn request in flight) reports the node instead. */
  cn_term *obj = name       ? cn_mk_tuple(2, cn_mk_atom(name), cn_mk_atom(node))
                 : pid.node ? cn_mk_pid(pid)
                            : cn_mk_atom(node);
  proc_deliver(
      w, cn_mk_tuple(5, cn_mk_atomc(n, "DOWN"), cn_mk_ref(ref), cn_mk_atomc(n, "process"), obj, cn_term_copy(reason)));
}

/* Sets up a monitor with a given reference (cn_monitor, calls). A target that does not exist gives an
 * immediate DOWN with noproc. */
int link_monitor(cn_proc *self, const cn_term *target, cn_ref ref) {
  cn_node *n = self->node;
  cn_pid pid = {0};
  const cn_atom *name = NULL, *node;
  if (target->type == CN_PID) {
    pid = target->v.pid;
    node = pid.node;
  } else if (target->type == CN_ATOM) {
    name = target->v.atom;
    node = n->name;
  } else {
    const cn_term *a = cn_tuple_elem(target, 2, 0), *b = cn_tuple_elem(target, 2, 1);
    if (!a || a->type != CN_ATOM || b->type != CN_ATOM) return CN_EINVAL;
    name = a->v.atom;
    node = b->v.atom;
  }
  if (node_is_local(n, node)) {
    cn_proc *q = name ? proc_by_name(n, name) : proc_lookup(n, pid);
    if (!q || q->dead) {
      cn_term noproc = atom_t(n, "noproc");
      deliver_down(self, ref, pid, name, node, &noproc);
      return 0;
    }
    int rc = link_add_mon_in(q, self->pid, ref, name);
    if (!rc && (rc = link_add_mon_out(self, ref, q->pid, name, node))) mon_in_drop(q, &ref);
    return rc;
  }
  int rc = link_add_mon_out(self, ref, pid, name, node);
  if (rc) return rc;
  cn_term e[4] = {tv_int(DOP_MONITOR_P), tv_pid(self->pid), name ? tv_atom(name) : tv_pid(pid), tv_ref(ref)};
  cn_term ctl = tv_tuple(e, 4);
  return conn_send(n, node, &ctl, NULL);
}

int cn_monitor(cn_proc *self, const cn_term *target, cn_ref *ref) {
  if (!target) return CN_EINVAL;
  DIRTY_GUARD(self->node, int, cn_monitor(self, target, ref));
  cn_ref r = node_make_ref(self->node);
  int rc = link_monitor(self, target, r);
  if (!rc && ref) *ref = r;
  return rc;
}

/* Drops a held monitor: the target forgets it too (DEMONITOR_P for a remote one). */
static void mon_out_release(cn_proc *self, cn_mon_out *m) {
  cn_node *n = self->node;
  if (node_is_local(n, m->node)) {
    cn_proc *q = proc_lookup(n, m->pid);
    if (q) mon_in_drop(q, &m->ref);
  } else {
    cn_term e[4] = {tv_int(DOP_DEMONITOR_P), tv_pid(self->pid), m->name ? tv_atom(m->name) : tv_pid(m->pid),
                    tv_ref(m->ref)};
    cn_term ctl = tv_tuple(e, 4);
    conn_send(n, m->node, &ctl, NULL);
  }
  cn_free(m);
}

int cn_demonitor(cn_proc *self, cn_ref ref) {
  DIRTY_GUARD(self->node, int, cn_demonitor(self, ref));
  cn_mon_out *m = mon_out_take(self, &ref);
  if (!m) return CN_ENOTFOUND;
  mon_out_release(self, m);
  return 0;
}

/* Releases a monitor if still held (calls that end). */
void link_demonitor_quiet(cn_proc *self, const cn_ref *ref) {
  cn_mon_out *m = mon_out_take(self, ref);
  if (m) mon_out_release(self, m);
}

int link_recv_monitor(cn_node *n, const cn_term *target, cn_pid watcher, cn_ref ref) {
  cn_proc *p = target->type == CN_PID ? proc_lookup(n, target->v.pid) : proc_by_name(n, target->v.atom);
  if (!p || p->dead) {
    cn_term e[5] = {tv_int(DOP_MONITOR_P_EXIT), *target, tv_pid(watcher), tv_ref(ref), atom_t(n, "noproc")};
    cn_term ctl = tv_tuple(e, 5);
    return conn_send(n, watcher.node, &ctl, NULL);
  }
  return link_add_mon_in(p, watcher, ref, target->type == CN_ATOM ? target->v.atom : NULL);
}

void link_recv_demonitor(cn_node *n, const cn_term *target, cn_ref ref) {
  cn_proc *p = target->type == CN_PID ? proc_lookup(n, target->v.pid) : proc_by_name(n, target->v.atom);
  if (p) mon_in_drop(p, &ref);
}

void link_recv_down(cn_node *n, cn_pid watcher, const cn_term *obj, const cn_atom *peer, cn_ref ref,
                    const cn_term *reason) {
  cn_proc *w = proc_lookup(n, watcher);
  if (!w) return;
  cn_mon_out *m = mon_out_take(w, &ref);
  if (!m) return; /* demonitored meanwhile */
  cn_pid pid = obj->type == CN_PID ? obj->v.pid : m->pid;
  deliver_down(w, ref, pid, obj->type == CN_ATOM ? obj->v.atom : NULL, peer, reason);
  cn_free(m);
}

/* The monitored process ended: DOWN to local watchers, MONITOR_P_EXIT to remote ones. */
static void monitor_exit(cn_node *n, cn_proc *p, cn_mon_in *m, const cn_term *reason) {
  if (node_is_local(n, m->watcher.node)) {
    cn_proc *w = proc_lookup(n, m->watcher);
    cn_mon_out *o = w ? mon_out_take(w, &m->ref) : NULL;
    if (o) {
      deliver_down(w, m->ref, p->pid, m->name, n->name, reason);
      cn_free(o);
    }
    return;
  }
  bool payload = conn_peer_flags(n, m->watcher.node) & DFLAG_EXIT_PAYLOAD;
  cn_term e[5] = {tv_int(payload ? DOP_PAYLOAD_MONITOR_P_EXIT : DOP_MONITOR_P_EXIT),
                  m->name ? tv_atom(m->name) : tv_pid(p->pid), tv_pid(m->watcher), tv_ref(m->ref), *reason};
  cn_term ctl = tv_tuple(e, payload ? 4 : 5);
  conn_send(n, m->watcher.node, &ctl, payload ? reason : NULL);
}

/* ---- Aliases ------------------------------------------------------------------------------------------- */

/* Our references carry a counter in their first two words: a cheap unique key. */
static uint64_t alias_key(const cn_ref *r) { return (uint64_t)r->n[0] | (uint64_t)r->n[1] << 18; }

int cn_alias_opts(cn_proc *self, unsigned opts, cn_ref *ref) {
  if (opts & ~(unsigned)(CN_ALIAS_PRIORITY | CN_ALIAS_REPLY)) return CN_EINVAL;
  cn_node *n = self->node;
  DIRTY_GUARD(n, int, cn_alias_opts(self, opts, ref));
  cn_alias_ent *a = cn_calloc(1, sizeof *a);
  if (!a) return CN_ENOMEM;
  a->ref = node_make_ref(n);
  a->key = alias_key(&a->ref);
  a->opts = opts;
  a->proc = self;
  node_hash_oom = false;
  HASH_ADD(hh, n->aliases, key, sizeof a->key, a);
  if (node_hash_oom) {
    cn_free(a);
    return CN_ENOMEM;
  }
  a->next_of_proc = self->aliases;
  self->aliases = a;
  *ref = a->ref;
  return 0;
}

int cn_alias(cn_proc *self, cn_ref *ref) { return cn_alias_opts(self, 0, ref); }

static void alias_remove(cn_node *n, cn_proc *p, cn_alias_ent **slot) {
  cn_alias_ent *a = *slot;
  *slot = a->next_of_proc;
  ASSUME(n->aliases);
  HASH_DEL(n->aliases, a);
  cn_free(a);
  (void)p;
}

int cn_unalias(cn_proc *self, cn_ref ref) {
  DIRTY_GUARD(self->node, int, cn_unalias(self, ref));
  for (cn_alias_ent **a = &self->aliases; *a; a = &(*a)->next_of_proc) {
    if (node_ref_eq(&(*a)->ref, &ref)) {
      alias_remove(self->node, self, a);
      return 0;
    }
  }
  return CN_ENOTFOUND;
}

/* The active alias entry of ref, or NULL. */
static cn_alias_ent *alias_find(cn_node *n, const cn_ref *ref) {
  if (ref->node != n->name || ref->len != 3) return NULL;
  uint64_t key = alias_key(ref);
  cn_alias_ent *a;
  HASH_FIND(hh, n->aliases, &key, sizeof key, a);
  return a && node_ref_eq(&a->ref, ref) && !a->proc->dead ? a : NULL;
}

cn_proc *link_alias_owner(cn_node *n, const cn_ref *ref) {
  cn_alias_ent *a = alias_find(n, ref);
  return a ? a->proc : NULL;
}

int link_alias_deliver(cn_node *n, const cn_ref *ref, cn_term *msg, bool prio) {
  cn_alias_ent *a = alias_find(n, ref);
  if (!a) {
    cn_term_free(msg);
    return 0;
  }
  cn_proc *p = a->proc;
  prio = prio && (a->opts & CN_ALIAS_PRIORITY);
  if (a->opts & CN_ALIAS_REPLY) cn_unalias(p, a->ref);
  return proc_deliver_prio(p, msg, prio);
}

void link_alias_exit(cn_node *n, const cn_ref *ref, cn_pid from, const cn_term *reason, bool prio) {
  cn_alias_ent *a = alias_find(n, ref);
  if (a) proc_exit_signal_prio(a->proc, from, reason, false, prio && (a->opts & CN_ALIAS_PRIORITY));
}

int cn_send_alias(cn_node *n, cn_proc *from, cn_ref alias, const cn_term *msg) {
  if (!msg || !alias.node) return CN_EINVAL;
  cn_term to = tv_ref(alias);
  return cn_send_opts(n, from, &to, msg, 0);
}

/* ---- Death and nodedown -------------------------------------------------------------------------------------- */

void link_proc_died(cn_proc *p, const cn_term *reason) {
  cn_node *n = p->node;
  while (p->links) {
    link_rec *l = p->links;
    p->links = l->next;
    if (l->active) {
      if (node_is_local(n, l->pid.node)) {
        cn_proc *q = proc_lookup(n, l->pid);
        if (q) {
          link_rec **s = link_slot(&q->links, p->pid);
          bool active = *s && (*s)->active;
          link_del(&q->links, p->pid);
          if (active) proc_exit_signal(q, p->pid, reason, true);
        }
      } else {
        send_remote_exit(n, p->pid, l->pid, reason);
      }
    }
    cn_free(l);
  }
  while (p->mons_in) {
    cn_mon_in *m = p->mons_in;
    mon_in_unlink(n, m);
    monitor_exit(n, p, m, reason);
    cn_free(m);
  }
  while (p->mons_out) {
    cn_mon_out *m = p->mons_out;
    p->mons_out = m->next;
    mon_out_release(p, m);
  }
  while (p->aliases) alias_remove(n, p, &p->aliases);
  call_drop_all(p);
}

void link_nodedown(cn_node *n, const cn_atom *peer) {
  cn_term reason = atom_t(n, "noconnection");
  cn_proc *p, *tmp;
  HASH_ITER(hh, n->procs, p, tmp) {
    for (cn_mon_in *m = p->mons_in, *next; m; m = next) {
      next = m->next;
      if (m->watcher.node == peer) {
        mon_in_unlink(n, m);
        cn_free(m);
      }
    }
    for (cn_mon_out **m = &p->mons_out; *m;) {
      if ((*m)->node == peer) {
        cn_mon_out *x = *m;
        *m = x->next;
        deliver_down(p, x->ref, x->pid, x->name, x->node, &reason);
        cn_free(x);
      } else {
        m = &(*m)->next;
      }
    }
    for (link_rec **l = &p->links; *l;) {
      if ((*l)->pid.node == peer) {
        link_rec *x = *l;
        *l = x->next;
        cn_pid from = x->pid;
        bool active = x->active;
        cn_free(x);
        if (active) proc_exit_signal(p, from, &reason, true);
      } else {
        l = &(*l)->next;
      }
    }
  }
}
