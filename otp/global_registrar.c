/* global_registrar.c: global's registrar: register/unregister under the {global, Registrar} lock on every known
 * node (trans_all_known), one request at a time, for the C API's calls. */
#include <string.h>

#include "global_lock_int.h"

/* ---- The registrar: register/unregister under {global, Registrar} on all known nodes (trans_all_known) ---------- */

typedef struct reg_req {
  struct reg_req *next;
  cn_term *from; /* the caller's gen_server From */
  cn_term *op;   /* {register, Name, Pid} | {unregister, Name} */
} reg_req;

struct gl_registrar {
  gl_state *g;
  cn_node *n;
  reg_req *head, **tail;
  bool busy;
  int times;
  cn_term *id;
  const cn_atom **known, **nodes;
  size_t nknown, nnodes;
  const cn_atom *boss;
  cn_term *result;
  cn_term *method; /* fun global:random_exit_name/3 */
};

static void reg_next(gl_registrar *r, cn_proc *self);
static void reg_try(gl_registrar *r, cn_proc *self);

static void reg_clear(gl_registrar *r) {
  cn_free(r->known);
  cn_free(r->nodes);
  r->known = r->nodes = NULL;
  cn_term_free(r->result);
  r->result = NULL;
}

static void reg_replied(cn_proc *self, int status, void *ctx) {
  gl_registrar *r = ctx;
  if (status == CN_ECLOSED) return;
  reg_req *q = r->head;
  if (q) {
    r->head = q->next;
    if (!r->head) r->tail = &r->head;
    if (r->result) cn_gen_reply(self, q->from, r->result);
    cn_term_free(q->from);
    cn_term_free(q->op);
    cn_free(q);
  }
  reg_clear(r);
  r->busy = false;
  reg_next(r, self);
}

static void reg_op_done(cn_proc *self, gl_mc *m, void *ctx) {
  gl_registrar *r = ctx;
  if (m->closed) return;
  gl_delete_global_lock(self, r->id, r->nodes, r->nnodes, reg_replied, r);
}

/* The registrar's Fun(Nodes), run with the lock held on Nodes. */
static void reg_do(gl_registrar *r, cn_proc *self) {
  cn_node *n = r->n;
  const cn_term *q = r->head->op, *kind = gl_el(q, 3, 0) ? gl_el(q, 3, 0) : gl_el(q, 2, 0);
  cn_term *req = NULL;
  if (kind && cn_is_atom(kind, "register")) {
    const cn_term *name = gl_el(q, 3, 1), *pid = gl_el(q, 3, 2);
    cn_pid cur;
    if (gl_where(r->g, name, &cur) || gl_pid_has_name(r->g, pid->v.pid)) {
      if (!gl_where(r->g, name, &cur))
        cn_log(n, CN_LOG_ERROR, "global: <%s.%u.%u> registered under several names", pid->v.pid.node->name,
               pid->v.pid.id, pid->v.pid.serial);
      r->result = A(n, "no");
      gl_delete_global_lock(self, r->id, r->nodes, r->nnodes, reg_replied, r);
      return;
    }
    r->result = A(n, "yes");
    req = cn_mk_tuple(4, A(n, "register"), cn_term_copy(name), cn_term_copy(pid), cn_term_copy(r->method));
  } else {
    r->result = A(n, "ok");
    req = cn_mk_tuple(2, A(n, "unregister"), cn_term_copy(gl_el(q, 2, 1)));
  }
  if (!req || gl_mc_start(self, r->nodes, r->nnodes, req, reg_op_done, r)) {
    cn_term_free(r->result);
    r->result = A(n, "error");
    gl_delete_global_lock(self, r->id, r->nodes, r->nnodes, reg_replied, r);
  }
  cn_term_free(req);
}

static void reg_slept(cn_proc *self, int status, void *ctx) {
  gl_registrar *r = ctx;
  if (status == CN_ECLOSED) return;
  reg_try(r, self);
}

static void reg_retry(gl_registrar *r, cn_proc *self) {
  reg_clear(r);
  gl_sleep_ms_in(self, gl_random_sleep_ms(r->g, r->times++), reg_slept, r);
}

static void reg_boss_released(cn_proc *self, int status, void *ctx) {
  gl_registrar *r = ctx;
  if (status == CN_ECLOSED) return;
  reg_retry(r, self);
}

static void reg_all(cn_proc *self, int status, void *ctx) {
  gl_registrar *r = ctx;
  if (status == CN_ECLOSED) return;
  bool grown = false;
  if (!status) {
    size_t k;
    const cn_atom **now = gl_known_nodes(r->g, &k);
    for (size_t i = 0; now && i < k; i++) grown |= !gl_has_node(r->known, r->nknown, now[i]);
    cn_free(now);
    if (!grown) {
      reg_do(r, self);
      return;
    }
  }
  /* Not every known node could be locked, or new ones came: release the boss and try again later. */
  gl_lock_nodes(self, true, r->id, &r->boss, 1, reg_boss_released, r);
}

static void reg_boss(cn_proc *self, int status, void *ctx) {
  gl_registrar *r = ctx;
  if (status == CN_ECLOSED) return;
  if (status) {
    reg_retry(r, self);
    return;
  }
  gl_lock_nodes(self, false, r->id, r->nodes, r->nnodes, reg_all, r);
}

/* set_lock_known/2: the boss first, then [node() | Known]. */
static void reg_try(gl_registrar *r, cn_proc *self) {
  reg_clear(r);
  r->known = gl_known_nodes(r->g, &r->nknown);
  r->nodes = cn_malloc((r->nknown + 1) * sizeof *r->nodes);
  if (!r->known || !r->nodes) {
    reg_retry(r, self);
    return;
  }
  r->nodes[0] = cn_node_name(r->n);
  memcpy(r->nodes + 1, r->known, r->nknown * sizeof *r->nodes);
  r->nnodes = r->nknown + 1;
  r->boss = gl_max_node(r->nodes, r->nnodes);
  gl_lock_nodes(self, false, r->id, &r->boss, 1, reg_boss, r);
}

static void reg_next(gl_registrar *r, cn_proc *self) {
  if (r->busy || !r->head) return;
  r->busy = true;
  r->times = 0;
  /* {global, self()}; made here so the pid carries the node's creation, known only once it started. */
  cn_term_free(r->id);
  r->id = cn_mk_tuple(2, A(r->n, "global"), cn_mk_pid(cn_self(self)));
  reg_try(r, self);
}

void gl_registrar_request(gl_state *g, const cn_term *from, const cn_term *op) {
  gl_registrar *r = g->reg;
  const cn_term *kind = gl_el(op, 3, 0) ? gl_el(op, 3, 0) : gl_el(op, 2, 0);
  bool reg = kind && cn_is_atom(kind, "register") && gl_is_pid(gl_el(op, 3, 2));
  bool unreg = kind && cn_is_atom(kind, "unregister") && gl_el(op, 2, 1);
  if (!r || (!reg && !unreg)) return;
  reg_req *q = cn_calloc(1, sizeof *q);
  if (!q || !(q->from = cn_term_copy(from)) || !(q->op = cn_term_copy(op))) {
    if (q) cn_term_free(q->from);
    cn_free(q);
    return;
  }
  *r->tail = q;
  r->tail = &q->next;
  cn_term *kick = cn_mk_atomc(g->n, "$cn_next");
  if (kick) cn_send(g->n, NULL, g->registrar, kick);
  cn_term_free(kick);
}

static void registrar_handle(cn_proc *self, const cn_term *msg, void *state) {
  (void)msg;
  reg_next(state, self);
}

static void registrar_end(cn_proc *self, const cn_term *reason, void *state) {
  (void)self;
  (void)reason;
  gl_registrar *r = state;
  while (r->head) {
    reg_req *q = r->head;
    r->head = q->next;
    cn_term_free(q->from);
    cn_term_free(q->op);
    cn_free(q);
  }
  reg_clear(r);
  cn_term_free(r->id);
  cn_term_free(r->method);
  gl_state *g = r->g;
  g->reg = NULL;
  cn_free(r);
  gl_unref(g);
}

int gl_registrar_start(gl_state *g) {
  gl_registrar *r = cn_calloc(1, sizeof *r);
  if (!r) return CN_ENOMEM;
  r->g = g;
  r->n = g->n;
  r->tail = &r->head;
  /* The resolve method C registrations carry: fun global:random_exit_name/3, so a node resolving a clash applies
   * OTP's default (on this node too: global_resolve.c). */
  if (!(r->method = gl_method(g->n, "random_exit_name"))) {
    cn_free(r);
    return CN_ENOMEM;
  }
  int rc;
  if ((rc = cn_spawn(g->n, registrar_handle, r, &(cn_proc_opts){.terminate = registrar_end}, &g->registrar))) {
    cn_term_free(r->method);
    cn_free(r);
    return rc;
  }
  g->reg = r;
  g->refs++;
  return 0;
}
