/* global_api.c: global's C API (cn_global.h): locks on a list of nodes (set_lock/del_lock with retries), names
 * registered through the registrar, sync, and the blocking *_sync calls. */
#include <string.h>

#include "global_lock_int.h"

/* ---- C API ---------------------------------------------------------------------------------------------------- */

typedef struct api_op {
  cn_node *n;
  cn_global_fn cb;
  void *ctx;
  cn_term *id;
  const cn_atom **nodes;
  size_t count;
  int retries; /* < 0: infinity */
  int times;
  cn_global_trans_fn fn;
  void *fn_ctx;
  bool starting;  /* still inside the API call: a result now is delivered after a short hop */
  bool has_early; /* such a result came: early holds its status (any status, 0 and CN_EINVAL included) */
  int early;
} api_op;

static void api_free(api_op *o) {
  cn_term_free(o->id);
  cn_free(o->nodes);
  cn_free(o);
}

static void api_hop(cn_proc *self, int status, void *ctx) {
  api_op *o = ctx;
  int st = status == CN_ECLOSED ? CN_ECLOSED : o->early;
  cn_global_fn cb = o->cb;
  void *cctx = o->ctx;
  api_free(o);
  cb(self, st, cctx);
}

static void api_finish(cn_proc *self, api_op *o, int status) {
  if (o->starting) {
    /* delivered by api_started: the callback never runs inside the starting call */
    o->has_early = true;
    o->early = status;
    return;
  }
  cn_global_fn cb = o->cb;
  void *cctx = o->ctx;
  api_free(o);
  cb(self, status, cctx);
}

static api_op *api_new(cn_proc *self, const cn_term *id, const cn_atom *const *nodes, size_t count, cn_global_fn cb,
                       void *ctx, int *rc) {
  cn_node *n = cn_proc_node(self);
  *rc = 0;
  if (!cb || (id && !gl_el(id, 2, 0)) || (count && !nodes)) {
    *rc = CN_EINVAL;
    return NULL;
  }
  if (!gl_of(n)) {
    *rc = CN_ESTATE;
    return NULL;
  }
  api_op *o = cn_calloc(1, sizeof *o);
  size_t k = nodes ? count : cn_nodes(n, CN_NODES_VISIBLE, NULL, 0) + 1;
  if (!o || !(o->nodes = cn_malloc((k ? k : 1) * sizeof *o->nodes)) || (id && !(o->id = cn_term_copy(id)))) {
    if (o) api_free(o);
    *rc = CN_ENOMEM;
    return NULL;
  }
  if (nodes) {
    memcpy(o->nodes, nodes, k * sizeof *o->nodes);
    o->count = k;
  } else {
    /* [node() | nodes()], as set_lock/1 and trans/2 */
    o->nodes[0] = cn_node_name(n);
    o->count = 1 + cn_nodes(n, CN_NODES_VISIBLE, o->nodes + 1, k - 1);
    if (o->count > k) o->count = k;
  }
  o->n = n;
  o->cb = cb;
  o->ctx = ctx;
  return o;
}

static void api_try(cn_proc *self, api_op *o);

/* The chain was started: a result it reached at once goes out after a short hop through the loop. */
static void api_started(cn_proc *self, api_op *o) {
  o->starting = false;
  if (o->has_early) gl_sleep_ms_in(self, 1, api_hop, o);
}

static void api_released(cn_proc *self, int status, void *ctx) {
  api_finish(self, ctx, status == CN_ECLOSED ? CN_ECLOSED : 0);
}

static void api_slept(cn_proc *self, int status, void *ctx) {
  api_op *o = ctx;
  if (status) {
    api_finish(self, o, status);
    return;
  }
  api_try(self, o);
}

static void api_locked(cn_proc *self, int status, void *ctx) {
  api_op *o = ctx;
  if (status == CN_ECLOSED || status == CN_ENOMEM) {
    api_finish(self, o, status);
    return;
  }
  if (status && status != CN_EBUSY) {
    api_finish(self, o, status);
    return;
  }
  if (!status) {
    if (!o->fn) {
      api_finish(self, o, 0);
      return;
    }
    o->fn(self, o->fn_ctx);
    gl_lock_nodes(self, true, o->id, o->nodes, o->count, api_released, o);
    return;
  }
  if (o->retries == 0) {
    api_finish(self, o, CN_EBUSY);
    return;
  }
  if (o->retries > 0) o->retries--;
  gl_sleep_ms_in(self, gl_random_sleep_ms(gl_of(o->n), o->times++), api_slept, o);
}

static void api_try(cn_proc *self, api_op *o) { gl_lock_nodes(self, false, o->id, o->nodes, o->count, api_locked, o); }

int cn_global_set_lock(cn_proc *self, const cn_term *id, const cn_atom *const *nodes, size_t count, int retries,
                       cn_global_fn cb, void *ctx) {
  int rc;
  api_op *o = self && id ? api_new(self, id, nodes, count, cb, ctx, &rc) : NULL;
  if (!o) return self && id ? rc : CN_EINVAL;
  o->retries = retries;
  o->times = 1;
  o->starting = true;
  api_try(self, o);
  api_started(self, o);
  return 0;
}

int cn_global_trans(cn_proc *self, const cn_term *id, const cn_atom *const *nodes, size_t count, int retries,
                    cn_global_trans_fn fn, cn_global_fn cb, void *ctx) {
  int rc;
  if (!fn) return CN_EINVAL;
  api_op *o = self && id ? api_new(self, id, nodes, count, cb, ctx, &rc) : NULL;
  if (!o) return self && id ? rc : CN_EINVAL;
  o->retries = retries;
  o->times = 1;
  o->fn = fn;
  o->fn_ctx = ctx;
  o->starting = true;
  api_try(self, o);
  api_started(self, o);
  return 0;
}

int cn_global_del_lock(cn_proc *self, const cn_term *id, const cn_atom *const *nodes, size_t count, cn_global_fn cb,
                       void *ctx) {
  int rc;
  api_op *o = self && id ? api_new(self, id, nodes, count, cb, ctx, &rc) : NULL;
  if (!o) return self && id ? rc : CN_EINVAL;
  o->starting = true;
  gl_lock_nodes(self, true, o->id, o->nodes, o->count, api_released, o);
  api_started(self, o);
  return 0;
}

/* Name requests are calls to the local global_name_server, which hands them to the registrar. */
static void api_reply(cn_proc *self, int status, const cn_term *reply, void *ctx) {
  api_op *o = ctx;
  int st = status ? status : cn_is_atom(reply, "no") ? CN_EEXIST : cn_is_atom(reply, "error") ? CN_ENOMEM : 0;
  cn_global_fn cb = o->cb;
  void *cctx = o->ctx;
  api_free(o);
  cb(self, st, cctx);
}

static int api_call(cn_proc *self, cn_term *req, cn_global_fn cb, void *ctx) {
  int rc;
  api_op *o = req ? api_new(self, NULL, NULL, 0, cb, ctx, &rc) : NULL;
  if (!o) {
    cn_term_free(req);
    return req ? rc : CN_ENOMEM;
  }
  cn_term server = cn_tv_atom(cn_intern(cn_proc_node(self), GL_SERVER_NAME));
  rc = cn_call(self, &server, req, 0, api_reply, o);
  cn_term_free(req);
  if (rc) api_free(o);
  return rc;
}

int cn_global_register_name(cn_proc *self, const cn_term *name, cn_pid pid, cn_global_fn cb, void *ctx) {
  if (!self || !name || !pid.node) return CN_EINVAL;
  cn_node *n = cn_proc_node(self);
  cn_term *op = cn_mk_tuple(3, A(n, "register"), cn_term_copy(name), cn_mk_pid(pid));
  return api_call(self, cn_mk_tuple(2, A(n, "$cn_registrar"), op), cb, ctx);
}

int cn_global_unregister_name(cn_proc *self, const cn_term *name, cn_global_fn cb, void *ctx) {
  if (!self || !name) return CN_EINVAL;
  cn_node *n = cn_proc_node(self);
  return api_call(self, cn_mk_tuple(2, A(n, "$cn_registrar"), cn_mk_tuple(2, A(n, "unregister"), cn_term_copy(name))),
                  cb, ctx);
}

int cn_global_sync(cn_proc *self, cn_global_fn cb, void *ctx) {
  if (!self) return CN_EINVAL;
  cn_node *n = cn_proc_node(self);
  size_t k = cn_nodes(n, CN_NODES_VISIBLE, NULL, 0);
  const cn_atom **v = cn_malloc((k ? k : 1) * sizeof *v);
  if (!v) return CN_ENOMEM;
  k = cn_nodes(n, CN_NODES_VISIBLE, v, k);
  cn_term *req = cn_mk_tuple(2, A(n, "sync"), gl_node_list(v, k));
  cn_free(v);
  return api_call(self, req, cb, ctx);
}

/* Blocking forms: a call from a short-lived process (cn_call_sync) to the local global_name_server. */
static int sync_name_call(cn_node *n, cn_term *req) {
  cn_term *server = cn_mk_atomc(n, GL_SERVER_NAME), *reply = NULL;
  int rc = req && server ? cn_call_sync(n, server, req, 0, &reply) : CN_ENOMEM;
  if (rc == CN_EEXIT) rc = CN_ESTATE; /* no global_name_server: a hidden node */
  if (!rc && cn_is_atom(reply, "no")) rc = CN_EEXIST;
  cn_term_free(reply);
  cn_term_free(server);
  cn_term_free(req);
  return rc;
}

int cn_global_register_name_sync(cn_node *n, const cn_term *name, cn_pid pid) {
  if (!n || !name || !pid.node) return CN_EINVAL;
  return sync_name_call(
      n, cn_mk_tuple(2, A(n, "$cn_registrar"), cn_mk_tuple(3, A(n, "register"), cn_term_copy(name), cn_mk_pid(pid))));
}

int cn_global_unregister_name_sync(cn_node *n, const cn_term *name) {
  if (!n || !name) return CN_EINVAL;
  cn_term *op = cn_mk_tuple(2, A(n, "unregister"), cn_term_copy(name));
  return sync_name_call(n, cn_mk_tuple(2, A(n, "$cn_registrar"), op));
}

int cn_global_whereis_name_sync(cn_node *n, const cn_term *name, cn_pid *out) {
  if (!n || !name || !out) return CN_EINVAL;
  cn_term *server = cn_mk_atomc(n, GL_SERVER_NAME), *reply = NULL;
  cn_term *req = cn_mk_tuple(2, A(n, "$cn_whereis"), cn_term_copy(name));
  int rc = req && server ? cn_call_sync(n, server, req, 0, &reply) : CN_ENOMEM;
  if (rc == CN_EEXIT) rc = CN_ESTATE;
  if (!rc && reply && reply->type == CN_PID) *out = reply->v.pid;
  else if (!rc) rc = CN_ENOTFOUND;
  cn_term_free(reply);
  cn_term_free(server);
  cn_term_free(req);
  return rc;
}

size_t cn_global_name_count(cn_node *n) {
  gl_state *g = n ? gl_of(n) : NULL;
  size_t k = 0;
  for (gl_name *e = g ? g->names : NULL; e; e = e->next) k++;
  return k;
}

cn_term *cn_global_local_names(cn_node *n) {
  gl_state *g = n ? gl_of(n) : NULL;
  size_t k = 0;
  for (gl_name *e = g ? g->names : NULL; e; e = e->next) k += e->pid.node == cn_node_name(n);
  cn_term **v = cn_malloc((k ? k : 1) * sizeof *v);
  if (!v) return NULL;
  k = 0;
  for (gl_name *e = g ? g->names : NULL; e; e = e->next)
    if (e->pid.node == cn_node_name(n)) v[k++] = cn_term_copy(e->name);
  cn_term *l = cn_mk_listv(k, v, NULL);
  cn_free(v);
  return l;
}
