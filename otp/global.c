/* global.c: global_name_server's part of OTP's `global` (kernel's global.erl, protocol version 8): the
 * connection exchange with every visible peer (init_connect, lock_set via the locker, exchange, resolved,
 * new_nodes, in_sync), remove_connection, sync, and the server's calls, casts and messages. The name and lock
 * tables are in global_names.c, the process and its start in global_server.c, the locker and the registrar on
 * global_lock.c. Everything here runs in the server's context (self, also g->self). */
#include <string.h>

#include "global_int.h"

#define SERVER_NAME GL_SERVER_NAME

_Thread_local bool gl_hash_oom;

static cn_term *A(gl_state *g, const char *s) { return cn_mk_atomc(g->n, s); }
static const cn_atom *me(gl_state *g) { return cn_node_name(g->n); }

uint32_t gl_uniform(gl_state *g, uint32_t max) {
  /* xorshift64: the random choices of global (which peer to lock first, back-off) need no strength. */
  uint64_t x = g->rand;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  g->rand = x;
  return max ? (uint32_t)(x % max) + 1 : 0;
}

/* Tags compare as terms; NULL is the atom undefined (what get/1 returns for a missing key). */
static bool tag_eq(const cn_term *a, const cn_term *b) {
  if (!a || !b) return (!a || cn_is_atom(a, "undefined")) && (!b || cn_is_atom(b, "undefined"));
  return cn_term_exact_eq(a, b);
}
static cn_term *tag_term(gl_state *g, const cn_term *t) { return t ? cn_term_copy(t) : A(g, "undefined"); }
static void set_term(cn_term **slot, const cn_term *v) {
  cn_term_free(*slot);
  *slot = v ? cn_term_copy(v) : NULL;
}

/* ---- Sending to other global_name_servers ----------------------------------------------------------------- */

void gl_cast(gl_state *g, cn_proc *from, const cn_atom *node, cn_term *msg) {
  cn_term *dest = cn_mk_tuple(2, A(g, SERVER_NAME), cn_mk_atom(node));
  if (dest && msg) cn_cast(g->n, from, dest, msg);
  cn_term_free(dest);
  cn_term_free(msg);
}

/* OTP's gns_volatile_send: a plain message, and only over a connection that is up (noconnect). */
static void volatile_send(gl_state *g, const cn_atom *node, cn_term *msg) {
  if (msg && cn_node_is_up(g->n, node, CN_NODES_ALL)) cn_send_name(g->n, g->self, SERVER_NAME, node, msg);
  cn_term_free(msg);
}

static void to_locker(gl_state *g, cn_term *msg) {
  if (msg) cn_send(g->n, g->self, g->locker, msg);
  cn_term_free(msg);
}

/* ---- Peers (the known map and the per-node process dictionary) ---------------------------------------------- */

static gl_peer *peer_find(gl_state *g, const cn_atom *node) {
  gl_peer *p;
  HASH_FIND_PTR(g->peers, &node, p);
  return p;
}

static gl_peer *peer_get(gl_state *g, const cn_atom *node) {
  gl_peer *p = peer_find(g, node);
  if (p) return p;
  p = cn_calloc(1, sizeof *p);
  if (!p) return NULL;
  p->node = node;
  gl_hash_oom = false;
  HASH_ADD_PTR(g->peers, node, p);
  if (gl_hash_oom) {
    cn_free(p);
    return NULL;
  }
  return p;
}

static void reset_node_state(gl_peer *p) {
  p->wait_lock = WL_NONE;
  set_term(&p->wait_names, NULL);
  set_term(&p->save_ops, NULL);
  set_term(&p->save_resolved, NULL);
  set_term(&p->pre_connect, NULL);
  p->prot_vsn = 0;
  set_term(&p->tag_my, NULL);
  set_term(&p->tag_his, NULL);
  set_term(&p->lock_id, NULL);
}

static void peer_free(gl_peer *p) {
  reset_node_state(p);
  cn_term_free(p->resolver_tag);
  cn_free(p);
}

static int node_vsn(gl_state *g, const cn_atom *node) {
  if (node == me(g)) return GL_VSN;
  gl_peer *p = peer_find(g, node);
  if (p && p->known) return p->vsn;
  if (p && p->pending) return p->pending_vsn;
  return 0;
}

const cn_atom **gl_known_nodes(gl_state *g, size_t *count) {
  size_t k = 0;
  for (gl_peer *p = g->peers; p; p = p->hh.next) k += p->known;
  const cn_atom **out = cn_malloc((k ? k : 1) * sizeof *out);
  *count = 0;
  if (!out) return NULL;
  for (gl_peer *p = g->peers; p; p = p->hh.next)
    if (p->known) out[(*count)++] = p->node;
  return out;
}

/* mk_known_list: atoms for peers before version 7, {Node, Vsn} from 7 on. */
static cn_term *known_list(gl_state *g, int vsn) {
  size_t k;
  const cn_atom **nodes = gl_known_nodes(g, &k);
  if (!nodes) return NULL;
  cn_term **e = cn_malloc((k ? k : 1) * sizeof *e);
  if (!e) {
    cn_free(nodes);
    return NULL;
  }
  for (size_t i = 0; i < k; i++)
    e[i] =
        vsn < 7 ? cn_mk_atom(nodes[i]) : cn_mk_tuple(2, cn_mk_atom(nodes[i]), cn_mk_int(peer_find(g, nodes[i])->vsn));
  cn_term *l = cn_mk_listv(k, e, NULL);
  cn_free(e);
  cn_free(nodes);
  return l;
}

/* A node of a known list: Node or {Node, Vsn}. */
static const cn_atom *known_elem(const cn_term *t, int *vsn) {
  *vsn = 0;
  if (gl_is_atom(t)) return t->v.atom;
  const cn_term *n = gl_el(t, 2, 0), *v = gl_el(t, 2, 1);
  if (!gl_is_atom(n) || v->type != CN_INT) return NULL;
  *vsn = (int)v->v.i;
  return n->v.atom;
}

/* ---- Syncers ({sync, Nodes} calls) -------------------------------------------------------------------------- */

static void syncers_drop(gl_state *g, cn_proc *self, const cn_atom *node) {
  for (gl_syncer **x = &g->syncers; *x;) {
    gl_syncer *s = *x;
    for (size_t i = 0; i < s->count; i++)
      if (s->nodes[i] == node) s->nodes[i--] = s->nodes[--s->count];
    if (s->count) {
      x = &s->next;
      continue;
    }
    *x = s->next;
    cn_term ok = cn_tv_atom(cn_intern(g->n, "ok"));
    if (self) cn_gen_reply(self, s->from, &ok);
    cn_term_free(s->from);
    cn_free(s->nodes);
    cn_free(s);
  }
}

static void handle_sync(gl_state *g, cn_proc *self, const cn_term *nodes, const cn_term *from) {
  uint32_t k;
  const cn_term *e = gl_list_elems(nodes, &k);
  gl_syncer *s = cn_calloc(1, sizeof *s);
  if (!s || !(s->nodes = cn_malloc((k ? k : 1) * sizeof *s->nodes)) || !(s->from = cn_term_copy(from))) {
    if (s) cn_free(s->nodes);
    cn_free(s);
    return;
  }
  for (uint32_t i = 0; e && i < k; i++) {
    if (!gl_is_atom(&e[i]) || e[i].v.atom == me(g)) continue;
    gl_peer *p = peer_find(g, e[i].v.atom);
    /* Not connected: OTP's syncer gets a nodedown for it at once. */
    if ((p && p->synced) || !cn_node_is_up(g->n, e[i].v.atom, CN_NODES_ALL)) continue;
    s->nodes[s->count++] = e[i].v.atom;
  }
  s->next = g->syncers;
  g->syncers = s;
  syncers_drop(g, self, NULL);
}

/* ---- The connection exchange ------------------------------------------------------------------------------ */

static void send_cancel_connect_message(gl_state *g, const cn_atom *node, const cn_term *his_tag) {
  volatile_send(g, node, cn_mk_tuple(3, A(g, "cancel_connect"), cn_mk_atom(me(g)), tag_term(g, his_tag)));
}

/* cancel_locker/4: tells the locker to drop the session (running fun first: the new_nodes casts of a
 * finished exchange); tells the peer when a connect was pending; forgets our session when the tag is its. */
static void cancel_locker(gl_state *g, gl_peer *p, const cn_term *tag, cn_term *fun) {
  to_locker(g, cn_mk_tuple(4, A(g, "cancel"), cn_mk_atom(p->node), tag_term(g, tag), fun ? fun : A(g, "no_fun")));
  if (p->pending && p->pending_vsn >= GL_VSN && tag_eq(p->tag_my, tag))
    send_cancel_connect_message(g, p->node, p->tag_his);
  if (p->resolver && tag_eq(p->resolver_tag, tag)) {
    p->resolver = false;
    set_term(&p->resolver_tag, NULL);
  }
}

static void handle_nodeup(gl_state *g, gl_peer *p) {
  if (p->known || p->resolver) return;
  /* An init_connect that came before our nodeup is handled again after our own. */
  if (p->pre_connect) {
    const cn_term *pc = p->pre_connect;
    cn_term *ic = cn_mk_tuple(4, A(g, "init_connect"),
                              cn_mk_tuple(2, cn_term_copy(&pc->v.tuple.e[0]), cn_term_copy(&pc->v.tuple.e[2])),
                              cn_mk_atom(p->node), cn_term_copy(&pc->v.tuple.e[1]));
    cn_term *cast = cn_mk_tuple(2, A(g, "$gen_cast"), ic);
    if (cast) cn_send(g->n, g->self, g->server, cast);
    cn_term_free(cast);
    set_term(&p->pre_connect, NULL);
  }
  cn_term *tag = cn_mk_int(++g->tag_counter);
  if (!tag) return;
  set_term(&p->tag_my, tag);
  cn_term *locker =
      cn_mk_tuple(4, A(g, "locker"), A(g, "no_longer_a_pid"), cn_mk_nil(), cn_mk_pid(gl_live_pid(g->n, g->locker)));
  gl_cast(g, g->self, p->node,
          cn_mk_tuple(4, A(g, "init_connect"), cn_mk_tuple(2, cn_mk_int(GL_VSN), cn_term_copy(tag)), cn_mk_atom(me(g)),
                      locker));
  p->resolver = true;
  cn_term_free(p->resolver_tag);
  p->resolver_tag = tag;
}

static void restart_connect(gl_state *g, gl_peer *p, const cn_term *my_tag) {
  cn_term *tag = my_tag ? cn_term_copy(my_tag) : NULL;
  cancel_locker(g, p, tag, NULL);
  reset_node_state(p);
  p->pending = false;
  if (tag && tag->type == CN_INT && g->connect_all) handle_nodeup(g, p);
  cn_term_free(tag);
}

static void init_connect(gl_state *g, int vsn, const cn_atom *node, const cn_term *init_msg, const cn_term *his_tag,
                         int his_vsn) {
  gl_peer *p = peer_get(g, node);
  if (!p) return;
  if (p->pending) {
    if (his_vsn < GL_VSN) {
      cn_log(g->n, CN_LOG_ERROR, "global: out of sync connection attempt from old version %d node %s; disconnecting",
             his_vsn, node->name);
      cn_node_disconnect(g->n, node);
      return;
    }
    /* A second connect from a node with a session already under way: cancel both and start over. */
    send_cancel_connect_message(g, node, his_tag);
    restart_connect(g, p, p->tag_my);
  }
  p->prot_vsn = vsn;
  set_term(&p->tag_his, his_tag);
  if (p->resolver) {
    const cn_term *his_locker = gl_el(init_msg, 4, 3);
    if (!gl_is_pid(his_locker)) return;
    to_locker(g, cn_mk_tuple(5, A(g, "his_the_locker"), cn_term_copy(his_locker),
                             cn_mk_tuple(2, cn_mk_int(vsn), cn_mk_nil()), cn_term_copy(his_tag),
                             cn_term_copy(p->resolver_tag)));
    if (his_vsn >= GL_VSN)
      volatile_send(g, node,
                    cn_mk_tuple(4, A(g, "init_connect_ack"), cn_mk_atom(me(g)), cn_term_copy(his_tag),
                                cn_term_copy(p->resolver_tag)));
    p->pending = true;
    p->pending_vsn = his_vsn;
  } else {
    cn_term_free(p->pre_connect);
    p->pre_connect = cn_mk_tuple(3, cn_mk_int(vsn), cn_term_copy(init_msg), cn_term_copy(his_tag));
  }
}

/* exchange_names/4: the peer's names against ours. The smaller node resolves clashes with the method of its own
 * holder's registration, as OTP's resolve_it/4 (global_resolve.c; a method this node cannot run gets OTP's default,
 * random_exit_name): the winner's registration goes to the side that lacks it, none (notify_all_name) deletes the
 * name on both. */
static void exchange_names(gl_state *g, cn_proc *self, const cn_term *names, const cn_atom *node, cn_term **ops,
                           cn_term **res) {
  uint32_t k;
  const cn_term *e = gl_list_elems(names, &k);
  cn_term **vo = cn_malloc((k ? k : 1) * sizeof *vo), **vr = cn_malloc((k ? k : 1) * sizeof *vr);
  size_t no = 0, nr = 0;
  for (uint32_t i = 0; e && vo && vr && i < k; i++) {
    const cn_term *name = gl_el(&e[i], 3, 0), *pid = gl_el(&e[i], 3, 1);
    if (!name || !gl_is_pid(pid)) continue;
    gl_name *mine = *gl_name_slot(g, name);
    if (mine && gl_pid_eq(g->n, mine->pid, pid->v.pid)) continue;
    if (mine && gl_atom_cmp(me(g), node) < 0) {
      cn_pid winner;
      if (!gl_resolve(g->n, self, mine->method, name, pid->v.pid, mine->pid, &winner)) {
        vo[no++] = cn_mk_tuple(2, A(g, "delete"), cn_term_copy(name));
        vr[nr++] = cn_mk_tuple(2, A(g, "delete"), cn_term_copy(name));
      } else if (gl_pid_eq(g->n, winner, pid->v.pid)) {
        vo[no++] = cn_mk_tuple(2, A(g, "insert"), cn_term_copy(&e[i]));
      } else {
        vr[nr++] =
            cn_mk_tuple(2, A(g, "insert"),
                        cn_mk_tuple(3, cn_term_copy(mine->name), cn_mk_pid(mine->pid), cn_term_copy(mine->method)));
      }
      continue;
    }
    if (mine) continue; /* the other node resolves it */
    vo[no++] = cn_mk_tuple(2, A(g, "insert"), cn_term_copy(&e[i]));
  }
  *ops = vo ? cn_mk_listv(no, vo, NULL) : NULL;
  *res = vr ? cn_mk_listv(nr, vr, NULL) : NULL;
  cn_free(vo);
  cn_free(vr);
}

static void cast_in_sync(gl_state *g, cn_proc *self, const cn_atom *node) {
  if (node != me(g)) gl_cast(g, self, node, cn_mk_tuple(3, A(g, "in_sync"), cn_mk_atom(me(g)), A(g, "true")));
}

/* add_to_known/2: returns the nodes that were not known yet, as a list term. */
static cn_term *add_to_known(gl_state *g, const cn_term *nodes) {
  uint32_t k;
  const cn_term *e = gl_list_elems(nodes, &k);
  cn_term **added = cn_malloc((k ? k : 1) * sizeof *added);
  size_t na = 0;
  for (uint32_t i = 0; e && added && i < k; i++) {
    int v;
    const cn_atom *node = known_elem(&e[i], &v);
    if (!node || node == me(g)) continue;
    gl_peer *p = peer_get(g, node);
    if (!p || p->known) continue;
    p->known = true;
    p->vsn = v;
    added[na++] = cn_mk_atom(node);
  }
  cn_term *l = added ? cn_mk_listv(na, added, NULL) : NULL;
  cn_free(added);
  return l;
}

/* resolved/5: both sides have exchanged; apply the ops, learn the peer's partition, and have the locker tell
 * our partition (new_nodes) before it releases the lock. */
static void resolved(gl_state *g, cn_proc *self, gl_peer *p, const cn_term *his_resolved, const cn_term *his_known,
                     const cn_term *names_ext) {
  cn_term *mine = p->save_ops;
  p->save_ops = NULL;
  uint32_t nm, nh, nk;
  const cn_term *em = gl_list_elems(mine, &nm), *eh = gl_list_elems(his_resolved, &nh);
  const cn_term *ek = gl_list_elems(his_known, &nk);
  if (!em) nm = 0;
  if (!eh) nh = 0;
  if (!ek) nk = 0;
  cn_term **ov = cn_malloc((nm + nh + 1) * sizeof *ov);
  cn_term **nv = cn_malloc((nk + 2) * sizeof *nv);
  if (!ov || !nv) {
    cn_free(ov);
    cn_free(nv);
    cn_term_free(mine);
    return;
  }
  for (uint32_t i = 0; i < nm; i++) ov[i] = cn_term_copy(&em[i]);
  for (uint32_t i = 0; i < nh; i++) ov[nm + i] = cn_term_copy(&eh[i]);
  cn_term *ops = cn_mk_listv(nm + nh, ov, NULL);
  cn_free(ov);
  cn_term_free(mine);
  /* make_node_vsn_list([Node | HisKnown]) */
  size_t nn = 0;
  nv[nn++] = cn_mk_tuple(2, cn_mk_atom(p->node), cn_mk_int(node_vsn(g, p->node)));
  for (uint32_t i = 0; i < nk; i++) {
    int v;
    const cn_atom *a = known_elem(&ek[i], &v);
    if (!a) continue;
    nv[nn++] = cn_mk_tuple(2, cn_mk_atom(a), cn_mk_int(v ? v : node_vsn(g, a)));
  }
  cn_term *new_nodes = cn_mk_listv(nn, nv, NULL);
  cn_free(nv);
  size_t nknown;
  const cn_atom **known = gl_known_nodes(g, &nknown); /* before the peer's partition is added */
  cn_term *extra = cn_mk_list(2, cn_mk_tuple(2, A(g, "vsn"), cn_mk_int(p->prot_vsn)),
                              cn_mk_tuple(2, A(g, "lock"), p->lock_id ? cn_term_copy(p->lock_id) : A(g, "undefined")));
  if (!ops || !new_nodes || !known || !extra) goto out;
  for (uint32_t i = 0; i < nk; i++) {
    int v;
    const cn_atom *a = known_elem(&ek[i], &v);
    if (a) cast_in_sync(g, self, a); /* sync_others */
  }
  cn_term me_t = cn_tv_atom(me(g));
  gl_do_ops(g, ops, &me_t, names_ext, extra);
  syncers_drop(g, self, p->node);
  for (uint32_t i = 0; i < nk; i++) {
    int v;
    const cn_atom *a = known_elem(&ek[i], &v);
    gl_peer *q = a && a != me(g) ? peer_find(g, a) : NULL;
    if (!q) continue;
    /* cancel_resolved_locker: a session with a node of the peer's partition is not needed any more. */
    q->pending = false;
    cancel_locker(g, q, q->tag_my, NULL);
    reset_node_state(q);
  }
  /* The new_nodes casts the locker makes before it deletes the lock: [{Node, Msg}] for our known nodes. */
  cn_term **fv = cn_malloc((nknown ? nknown : 1) * sizeof *fv);
  size_t nf = 0;
  for (size_t i = 0; fv && i < nknown; i++) {
    cn_term *msg = cn_mk_tuple(6, A(g, "new_nodes"), cn_mk_atom(me(g)), cn_term_copy(ops), cn_term_copy(names_ext),
                               cn_term_copy(new_nodes), cn_term_copy(extra));
    fv[nf++] = cn_mk_tuple(2, cn_mk_atom(known[i]), msg);
  }
  cn_term *fun = fv ? cn_mk_tuple(2, A(g, "$cn_new_nodes"), cn_mk_listv(nf, fv, NULL)) : NULL;
  cn_free(fv);
  p->pending = false;
  cn_term *tag = p->tag_my ? cn_term_copy(p->tag_my) : NULL;
  cancel_locker(g, p, tag, fun);
  cn_term_free(tag);
  reset_node_state(p);
  cn_term *added = add_to_known(g, new_nodes);
  if (added) to_locker(g, cn_mk_tuple(2, A(g, "add_to_known"), added));
  p->synced = true;
  cn_log(g->n, CN_LOG_DEBUG, "global: synced with %s", p->node->name);
out:
  cn_free(known);
  cn_term_free(extra);
  cn_term_free(ops);
  cn_term_free(new_nodes);
}

/* The resolver's work (done inline: the default resolution needs no remote call): our ops go back to the
 * peer as resolved, and they are applied once the peer's resolved is here too. */
static void exchange(gl_state *g, cn_proc *self, gl_peer *p, const cn_term *names) {
  if (p->wait_lock != WL_LOCK_IS_SET) {
    p->wait_lock = WL_EXCHANGE;
    set_term(&p->wait_names, names);
    return;
  }
  p->wait_lock = WL_NONE;
  if (!p->resolver) return;
  cn_term *ops = NULL, *res = NULL;
  exchange_names(g, self, names, p->node, &ops, &res);
  if (!ops || !res) {
    cn_term_free(ops);
    cn_term_free(res);
    return;
  }
  gl_cast(g, self, p->node,
          cn_mk_tuple(7, A(g, "resolved"), cn_mk_atom(me(g)), res, known_list(g, node_vsn(g, p->node)), A(g, "unused"),
                      gl_names_ext_list(g), tag_term(g, p->tag_his)));
  cn_term_free(p->save_ops);
  p->save_ops = ops;
  if (p->save_resolved) {
    cn_term *sr = p->save_resolved;
    p->save_resolved = NULL;
    resolved(g, self, p, &sr->v.tuple.e[2], &sr->v.tuple.e[0], &sr->v.tuple.e[1]);
    cn_term_free(sr);
  }
}

static void handle_nodedown(gl_state *g, cn_proc *self, const cn_atom *node, bool remove_connection) {
  syncers_drop(g, self, node);
  gl_peer *p = peer_find(g, node);
  if (!p) return;
  cancel_locker(g, p, p->tag_my, NULL);
  to_locker(g, cn_mk_tuple(2, A(g, "remove_from_known"), cn_mk_atom(node)));
  reset_node_state(p);
  /* A session left open by a tag mismatch would keep the next nodeup from starting a new one. */
  p->resolver = false;
  set_term(&p->resolver_tag, NULL);
  /* We do not multicast lost_connection (nor act on it): see the README. */
  p->removing = remove_connection;
  p->pending = p->known = p->synced = false;
  if (!remove_connection) { /* nothing left to remember about the node */
    HASH_DEL(g->peers, p);
    peer_free(p);
  }
}

/* ---- The server's calls, casts and messages -------------------------------------------------------------------- */

cn_term *gl_handle_call(cn_proc *self, const cn_term *req, const cn_term *from, void *state) {
  gl_state *g = state;
  g->self = self;
  const cn_term *fpid = gl_el(from, 2, 0);
  const cn_term *op = req && req->type == CN_TUPLE && req->v.tuple.arity ? &req->v.tuple.e[0] : req;
  uint32_t ar = req && req->type == CN_TUPLE ? req->v.tuple.arity : 0;
  const cn_term *a1 = ar > 1 ? &req->v.tuple.e[1] : NULL, *a2 = ar > 2 ? &req->v.tuple.e[2] : NULL;
  const cn_term *a3 = ar > 3 ? &req->v.tuple.e[3] : NULL, *a4 = ar > 4 ? &req->v.tuple.e[4] : NULL;
  if (cn_is_atom(op, "register") && ar == 4 && gl_is_pid(a2)) {
    gl_name_insert(g, a1, a2->v.pid, a3, NULL, fpid, NULL);
    return A(g, "yes");
  }
  if (cn_is_atom(op, "unregister") && ar == 2) {
    gl_name_delete(g, a1);
    return A(g, "ok");
  }
  if (cn_is_atom(op, "register_ext") && ar == 5 && gl_is_pid(a2) && gl_is_atom(a4)) {
    gl_name_insert(g, a1, a2->v.pid, a3, a4->v.atom, fpid, NULL);
    return A(g, "yes");
  }
  if (cn_is_atom(op, "set_lock") && ar == 2) return A(g, gl_lock_set(g, a1, fpid->v.pid) ? "true" : "false");
  if (cn_is_atom(op, "del_lock") && ar == 2) {
    gl_lock_del(g, a1, fpid->v.pid);
    return A(g, "true");
  }
  if (cn_is_atom(op, "get_known")) return known_list(g, 0);
  if (cn_is_atom(op, "get_synced")) {
    cn_term *l = cn_mk_nil();
    for (gl_peer *p = g->peers; p && l; p = p->hh.next)
      if (p->synced) {
        cn_term *e[1] = {cn_mk_atom(p->node)};
        l = cn_mk_listv(1, e, l);
      }
    return l;
  }
  if (cn_is_atom(op, "get_protocol_version")) return cn_mk_int(GL_VSN);
  if (cn_is_atom(op, "get_names_ext")) return gl_names_ext_list(g);
  if (cn_is_atom(op, "sync") && ar == 2) {
    handle_sync(g, self, a1, from);
    return NULL;
  }
  if (cn_is_atom(op, "$cn_registrar") && ar == 2) {
    gl_registrar_request(g, from, a1);
    return NULL;
  }
  if (cn_is_atom(op, "$cn_whereis") && ar == 2) {
    cn_pid pid;
    return gl_where(g, a1, &pid) ? cn_mk_pid(pid) : A(g, "undefined");
  }
  if (cn_is_atom(op, "$cn_sleep")) return NULL; /* never answered: callers use it as a timer */
  char *txt = cn_term_to_string(req);
  cn_log(g->n, CN_LOG_DEBUG, "global: unexpected call %s", txt ? txt : "?");
  cn_free(txt);
  return NULL;
}

static void handle_cast(gl_state *g, cn_proc *self, const cn_term *req) {
  const cn_term *op = req && req->type == CN_TUPLE && req->v.tuple.arity ? &req->v.tuple.e[0] : NULL;
  uint32_t ar = op ? req->v.tuple.arity : 0;
  const cn_term *e = op ? req->v.tuple.e : NULL;
  if (!op || !gl_is_atom(op)) return;
  const char *o = op->v.atom->name;
  if (!strcmp(o, "init_connect") && ar == 4 && gl_is_atom(&e[2])) {
    /* {init_connect, {HisVsn, HisTag, ...}, Node, InitMsg} */
    const cn_term *v = &e[1];
    if (v->type != CN_TUPLE || v->v.tuple.arity < 2 || v->v.tuple.e[0].type != CN_INT) return;
    int his_vsn = (int)v->v.tuple.e[0].v.i;
    init_connect(g, his_vsn > GL_VSN ? GL_VSN : his_vsn, e[2].v.atom, &e[3], &v->v.tuple.e[1], his_vsn);
    return;
  }
  gl_peer *p = ar > 1 && gl_is_atom(&e[1]) ? peer_get(g, e[1].v.atom) : NULL;
  if (!p) return;
  if (!strcmp(o, "lock_is_set") && ar == 4) {
    if (!tag_eq(p->tag_my, &e[2])) {
      cancel_locker(g, p, &e[2], NULL);
      return;
    }
    gl_cast(
        g, self, p->node,
        cn_mk_tuple(5, A(g, "exchange"), cn_mk_atom(me(g)), gl_names_list(g), cn_mk_nil(), tag_term(g, p->tag_his)));
    set_term(&p->lock_id, &e[3]);
    if (p->wait_lock == WL_EXCHANGE) {
      cn_term *names = p->wait_names;
      p->wait_names = NULL;
      p->wait_lock = WL_LOCK_IS_SET;
      exchange(g, self, p, names);
      cn_term_free(names);
    } else {
      p->wait_lock = WL_LOCK_IS_SET;
    }
  } else if (!strcmp(o, "exchange") && ar == 5) {
    if (tag_eq(p->tag_my, &e[4])) exchange(g, self, p, &e[2]);
    else cancel_locker(g, p, &e[4], NULL);
  } else if (!strcmp(o, "resolved") && ar == 7) {
    if (!tag_eq(p->tag_my, &e[6])) {
      cancel_locker(g, p, &e[6], NULL);
    } else if (p->save_ops) {
      resolved(g, self, p, &e[2], &e[3], &e[5]);
    } else {
      cn_term_free(p->save_resolved);
      p->save_resolved = cn_mk_tuple(3, cn_term_copy(&e[3]), cn_term_copy(&e[5]), cn_term_copy(&e[2]));
    }
  } else if (!strcmp(o, "new_nodes") && ar == 6) {
    cn_term *added = add_to_known(g, &e[4]);
    uint32_t k;
    const cn_term *ae = gl_list_elems(added, &k);
    for (uint32_t i = 0; ae && i < k; i++) cast_in_sync(g, self, ae[i].v.atom);
    gl_do_ops(g, &e[2], &e[1], &e[3], &e[5]);
    if (added) to_locker(g, cn_mk_tuple(2, A(g, "add_to_known"), added));
  } else if (!strcmp(o, "in_sync") && ar == 3) {
    syncers_drop(g, self, p->node);
    p->synced = true;
    p->pending = false;
    cn_term *tag = p->tag_my ? cn_term_copy(p->tag_my) : NULL;
    cancel_locker(g, p, tag, NULL);
    cn_term_free(tag);
    reset_node_state(p);
  }
}

/* lock_set casts name the locker's pid, not a node: forwarded to our locker when the session tag is ours. */
static void handle_lock_set_cast(gl_state *g, const cn_term *req) {
  const cn_term *op = req && req->type == CN_TUPLE && req->v.tuple.arity ? &req->v.tuple.e[0] : NULL;
  if (!op || !cn_is_atom(op, "lock_set")) return;
  uint32_t ar = req->v.tuple.arity;
  const cn_term *pid = ar >= 4 ? &req->v.tuple.e[1] : NULL;
  if (!gl_is_pid(pid)) return;
  if (ar == 5) {
    gl_peer *p = peer_find(g, pid->v.pid.node);
    if (!p || !tag_eq(p->tag_my, &req->v.tuple.e[4])) return;
  } else if (ar != 4) {
    return;
  }
  to_locker(g, cn_term_copy(req));
}

void gl_handle_cast(cn_proc *self, const cn_term *req, void *state) {
  gl_state *g = state;
  g->self = self;
  handle_lock_set_cast(g, req);
  handle_cast(g, self, req);
}

void gl_handle_info(cn_proc *self, const cn_term *msg, void *state) {
  gl_state *g = state;
  g->self = self;
  const cn_term *op = msg && msg->type == CN_TUPLE && msg->v.tuple.arity ? &msg->v.tuple.e[0] : NULL;
  if (!gl_is_atom(op)) return;
  const char *o = op->v.atom->name;
  uint32_t ar = msg->v.tuple.arity;
  const cn_term *e = msg->v.tuple.e;
  const cn_atom *node = ar > 1 && gl_is_atom(&e[1]) ? e[1].v.atom : NULL;
  if (!strcmp(o, "DOWN") && ar == 5 && e[1].type == CN_REF) {
    gl_down(g, e[1].v.ref);
  } else if (!strcmp(o, "nodeup") && ar == 3 && node) {
    /* {nodeup, Node, [{node_type, visible | hidden}]} from the node-event callback; hidden peers take no part */
    const cn_term *info = &e[2];
    const cn_term *type = info->type == CN_LIST && info->v.list.len ? gl_el(&info->v.list.e[0], 2, 1) : NULL;
    gl_peer *p = type && cn_is_atom(type, "visible") ? peer_get(g, node) : NULL;
    if (p && g->connect_all) handle_nodeup(g, p);
  } else if (!strcmp(o, "nodedown") && ar == 3 && node) {
    handle_nodedown(g, self, node, false);
  } else if (!strcmp(o, "remove_connection") && ar == 2 && node) {
    gl_peer *p = peer_find(g, node);
    if (!p || !(p->known || p->pending)) return;
    cn_log(g->n, CN_LOG_WARN, "'global' at node %s disconnected node %s in order to prevent overlapping partitions",
           me(g)->name, node->name);
    cn_node_disconnect(g->n, node);
    handle_nodedown(g, self, node, true);
  } else if (!strcmp(o, "cancel_connect") && ar == 3 && node) {
    gl_peer *p = peer_find(g, node);
    if (!p || !p->tag_my || !tag_eq(p->tag_my, &e[2])) return;
    cn_term *tag = cn_term_copy(&e[2]);
    cancel_locker(g, p, tag, NULL);
    reset_node_state(p);
    p->pending = false;
    restart_connect(g, p, tag);
    cn_term_free(tag);
  } else if (!strcmp(o, "init_connect_ack") && ar == 4 && node) {
    gl_peer *p = peer_get(g, node);
    if (!p || (tag_eq(p->tag_my, &e[2]) && tag_eq(p->tag_his, &e[3]))) return;
    /* The two sides disagree on which session is under way: cancel it and start again. */
    send_cancel_connect_message(g, node, &e[3]);
    cn_term *tag = p->tag_my ? cn_term_copy(p->tag_my) : NULL;
    restart_connect(g, p, tag);
    cn_term_free(tag);
  } else if (!strcmp(o, "prepare_shutdown") && ar == 3 && gl_is_pid(&e[1])) {
    g->connect_all = false;
    cn_term *r = cn_mk_tuple(2, cn_term_copy(&e[2]), A(g, "ok"));
    if (r) cn_send(g->n, self, e[1].v.pid, r);
    cn_term_free(r);
  } else if (!strcmp(o, "whereis") && ar == 3) {
    cn_pid pid;
    cn_term *r = gl_where(g, &e[1], &pid) ? cn_mk_pid(pid) : A(g, "undefined");
    if (r) cn_gen_reply(self, &e[2], r);
    cn_term_free(r);
  }
  /* lost_connection: ignored, as by a node without prevent_overlapping_partitions (see the README). */
}

void gl_free_peers(gl_state *g) {
  gl_peer *p, *tmp;
  HASH_ITER(hh, g->peers, p, tmp) {
    HASH_DEL(g->peers, p);
    peer_free(p);
  }
  while (g->syncers) {
    gl_syncer *s = g->syncers;
    g->syncers = s->next;
    cn_term_free(s->from);
    cn_free(s->nodes);
    cn_free(s);
  }
}
