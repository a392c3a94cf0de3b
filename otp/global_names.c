/* global_names.c: global_name_server's name and lock tables (OTP's global_names, global_names_ext, global_locks and
 * global_pid_names): insert and delete under the monitor of the holder, the ops of a connection exchange, and the
 * lock rows; every change runs in the server's context (g->self). */
#include <string.h>

#include "global_int.h"

const cn_term *gl_list_elems(const cn_term *t, uint32_t *len) {
  *len = 0;
  if (t && t->type == CN_NIL) return t;
  if (!t || t->type != CN_LIST || t->v.list.tail) return NULL;
  *len = t->v.list.len;
  return t->v.list.e;
}

int gl_atom_cmp(const cn_atom *a, const cn_atom *b) { return a == b ? 0 : strcmp(a->name, b->name); }

/* ---- Names ----------------------------------------------------------------------------------------------- */

gl_name **gl_name_slot(gl_state *g, const cn_term *name) {
  gl_name **x = &g->names;
  while (*x && !cn_term_exact_eq((*x)->name, name)) x = &(*x)->next;
  return x;
}

bool gl_pid_has_name(gl_state *g, cn_pid pid) {
  for (gl_name *e = g->names; e; e = e->next)
    if (gl_pid_eq(g->n, e->pid, pid)) return true;
  return false;
}

bool gl_where(gl_state *g, const cn_term *name, cn_pid *out) {
  gl_name *e = *gl_name_slot(g, name);
  if (!e) return false;
  if (e->pid.node == cn_node_name(g->n) && !cn_is_process_alive(g->n, e->pid)) return false;
  *out = e->pid;
  return true;
}

static void name_remove(gl_state *g, gl_name **slot) {
  gl_name *e = *slot;
  cn_proc *self = g->self;
  if (self) cn_demonitor(self, e->mref);
  *slot = e->next;
  cn_term_free(e->name);
  cn_term_free(e->method);
  cn_free(e);
}

void gl_name_delete(gl_state *g, const cn_term *name) {
  gl_name **slot = gl_name_slot(g, name);
  if (*slot) name_remove(g, slot);
}

/* lock_still_set/3: a registration counts only while the lock that allowed it is still held. from is the
 * registering pid, or the connecting node (then extra is [{vsn, V}, {lock, LockId}]). */
static bool lock_still_set(gl_state *g, const cn_term *from, const cn_term *extra) {
  cn_term gid = cn_tv_atom(cn_intern(g->n, "global"));
  gl_lock *l = gl_lock_find(g, &gid);
  if (!l) return !g->global_lock_down;
  if (gl_is_pid(from)) {
    for (gl_holder *h = l->holders; h; h = h->next)
      if (gl_pid_eq(g->n, h->pid, from->v.pid)) return true;
    return false;
  }
  uint32_t k;
  const cn_term *e = gl_list_elems(extra, &k);
  for (uint32_t i = 0; e && i < k; i++) {
    const cn_term *tag = gl_el(&e[i], 2, 0), *lock = gl_el(&e[i], 2, 1);
    if (tag && cn_is_atom(tag, "lock")) {
      const cn_term *rid = gl_el(lock, 2, 0), *req = gl_el(lock, 2, 1);
      if (!rid || !cn_is_atom(rid, "global")) return true; /* no lock id to compare: OTP would crash */
      return cn_term_exact_eq(l->req, req);
    }
  }
  return true;
}

void gl_name_insert(gl_state *g, const cn_term *name, cn_pid pid, const cn_term *method, const cn_atom *reg_node,
                    const cn_term *from, const cn_term *extra) {
  cn_proc *self = g->self;
  if (!self) return;
  gl_name_delete(g, name);
  gl_name *e = cn_calloc(1, sizeof *e);
  cn_term pidt = cn_tv_pid(pid);
  if (!e || !(e->name = cn_term_copy(name)) || !(e->method = cn_term_copy(method)) ||
      cn_monitor(self, &pidt, &e->mref)) {
    if (e) {
      cn_term_free(e->name);
      cn_term_free(e->method);
    }
    cn_free(e);
    cn_log(g->n, CN_LOG_WARN, "global: cannot insert a name (out of memory)");
    return;
  }
  e->pid = pid;
  e->reg_node = reg_node;
  e->next = g->names;
  g->names = e;
  if (!lock_still_set(g, from, extra)) gl_name_delete(g, name);
}

cn_term *gl_names_list(gl_state *g) {
  size_t k = 0;
  for (gl_name *e = g->names; e; e = e->next) k++;
  cn_term **v = cn_malloc((k ? k : 1) * sizeof *v);
  if (!v) return NULL;
  k = 0;
  for (gl_name *e = g->names; e; e = e->next)
    v[k++] = cn_mk_tuple(3, cn_term_copy(e->name), cn_mk_pid(e->pid), cn_term_copy(e->method));
  cn_term *l = cn_mk_listv(k, v, NULL);
  cn_free(v);
  return l;
}

cn_term *gl_names_ext_list(gl_state *g) {
  size_t k = 0;
  for (gl_name *e = g->names; e; e = e->next) k += e->reg_node != NULL;
  cn_term **v = cn_malloc((k ? k : 1) * sizeof *v);
  if (!v) return NULL;
  k = 0;
  for (gl_name *e = g->names; e; e = e->next)
    if (e->reg_node) v[k++] = cn_mk_tuple(3, cn_term_copy(e->name), cn_mk_pid(e->pid), cn_mk_atom(e->reg_node));
  cn_term *l = cn_mk_listv(k, v, NULL);
  cn_free(v);
  return l;
}

void gl_do_ops(gl_state *g, const cn_term *ops, const cn_term *conn_node, const cn_term *names_ext,
               const cn_term *extra) {
  uint32_t no, nx;
  const cn_term *o = gl_list_elems(ops, &no), *x = gl_list_elems(names_ext, &nx);
  if (!o) return;
  for (int pass = 0; pass < 3; pass++) {
    for (uint32_t i = 0; i < no; i++) {
      const cn_term *kind = gl_el(&o[i], 2, 0), *arg = gl_el(&o[i], 2, 1);
      if (!kind) continue;
      if (pass == 2) {
        if (cn_is_atom(kind, "delete")) gl_name_delete(g, arg);
        continue;
      }
      const cn_term *name = gl_el(arg, 3, 0), *pid = gl_el(arg, 3, 1), *method = gl_el(arg, 3, 2);
      if (!cn_is_atom(kind, "insert") || !name || !gl_is_pid(pid)) continue;
      const cn_atom *reg = NULL;
      bool xname = false;
      for (uint32_t j = 0; x && j < nx; j++) {
        const cn_term *xn = gl_el(&x[j], 3, 0), *xp = gl_el(&x[j], 3, 1), *xr = gl_el(&x[j], 3, 2);
        if (!xn || !cn_term_exact_eq(xn, name)) continue;
        if (pass == 0 && cn_term_exact_eq(xp, pid) && gl_is_atom(xr)) reg = xr->v.atom;
        /* A name inserted as external is not inserted again as an ordinary one. */
        for (uint32_t m = 0; m < no && !xname; m++) {
          const cn_term *oa = gl_el(&o[m], 2, 1);
          xname = cn_is_atom(gl_el(&o[m], 2, 0), "insert") && gl_el(oa, 3, 0) &&
                  cn_term_exact_eq(gl_el(oa, 3, 0), xn) && cn_term_exact_eq(gl_el(oa, 3, 1), xp);
        }
      }
      if (pass == 0 && reg) gl_name_insert(g, name, pid->v.pid, method, reg, conn_node, extra);
      if (pass == 1 && !xname) gl_name_insert(g, name, pid->v.pid, method, NULL, conn_node, extra);
    }
  }
}

/* ---- Locks ---------------------------------------------------------------------------------------------- */

gl_lock *gl_lock_find(gl_state *g, const cn_term *rid) {
  for (gl_lock *l = g->locks; l; l = l->next)
    if (cn_term_exact_eq(l->rid, rid)) return l;
  return NULL;
}

bool gl_can_set_lock(gl_state *g, const cn_term *id) {
  const cn_term *rid = gl_el(id, 2, 0), *req = gl_el(id, 2, 1);
  if (!rid) return false;
  gl_lock *l = gl_lock_find(g, rid);
  return !l || cn_term_exact_eq(l->req, req);
}

static void lock_unlink(gl_state *g, gl_lock *l) {
  for (gl_lock **x = &g->locks; *x; x = &(*x)->next)
    if (*x == l) {
      *x = l->next;
      break;
    }
  while (l->holders) {
    gl_holder *h = l->holders;
    l->holders = h->next;
    cn_free(h);
  }
  cn_term_free(l->rid);
  cn_term_free(l->req);
  cn_free(l);
}

/* remove_lock/6: the last holder takes the row with it (and says whether global's own lock went down). */
static void remove_lock(gl_state *g, gl_lock *l, cn_pid pid, bool down) {
  cn_proc *self = g->self;
  if (l->holders && !l->holders->next && gl_pid_eq(g->n, l->holders->pid, pid)) {
    if (self) cn_demonitor(self, l->holders->mref);
    if (cn_is_atom(l->rid, "global")) g->global_lock_down = down;
    lock_unlink(g, l);
    return;
  }
  for (gl_holder **h = &l->holders; *h; h = &(*h)->next) {
    if (gl_pid_eq(g->n, (*h)->pid, pid)) {
      gl_holder *x = *h;
      if (self) cn_demonitor(self, x->mref);
      *h = x->next;
      cn_free(x);
      return;
    }
  }
}

bool gl_lock_set(gl_state *g, const cn_term *id, cn_pid pid) {
  cn_proc *self = g->self;
  const cn_term *rid = gl_el(id, 2, 0), *req = gl_el(id, 2, 1);
  if (!rid) return false;
  gl_lock *l = gl_lock_find(g, rid);
  if (l && !cn_term_exact_eq(l->req, req)) return false;
  if (l)
    for (gl_holder *h = l->holders; h; h = h->next)
      if (gl_pid_eq(g->n, h->pid, pid)) return true;
  gl_holder *h = cn_calloc(1, sizeof *h);
  cn_term pidt = cn_tv_pid(pid);
  if (!h || cn_monitor(self, &pidt, &h->mref)) {
    cn_free(h);
    return false;
  }
  h->pid = pid;
  if (!l) {
    l = cn_calloc(1, sizeof *l);
    if (!l || !(l->rid = cn_term_copy(rid)) || !(l->req = cn_term_copy(req))) {
      if (l) cn_term_free(l->rid);
      cn_free(l);
      cn_demonitor(self, h->mref);
      cn_free(h);
      return false;
    }
    l->next = g->locks;
    g->locks = l;
  }
  h->next = l->holders;
  l->holders = h;
  return true;
}

void gl_lock_del(gl_state *g, const cn_term *id, cn_pid pid) {
  const cn_term *rid = gl_el(id, 2, 0), *req = gl_el(id, 2, 1);
  gl_lock *l = rid ? gl_lock_find(g, rid) : NULL;
  if (l && cn_term_exact_eq(l->req, req)) remove_lock(g, l, pid, false);
}

void gl_down(gl_state *g, cn_ref ref) {
  for (gl_lock *l = g->locks, *next; l; l = next) {
    next = l->next;
    for (gl_holder *h = l->holders; h; h = h->next)
      if (gl_ref_eq(g->n, h->mref, ref)) {
        remove_lock(g, l, h->pid, true);
        break;
      }
  }
  for (gl_name **x = &g->names; *x; x = &(*x)->next)
    if (gl_ref_eq(g->n, (*x)->mref, ref)) {
      name_remove(g, x);
      break;
    }
}

void gl_tables_free(gl_state *g) {
  while (g->locks) lock_unlink(g, g->locks);
  while (g->names) {
    gl_name *e = g->names;
    g->names = e->next;
    cn_term_free(e->name);
    cn_term_free(e->method);
    cn_free(e);
  }
}
