/* builtin.c: the processes every node has: net_kernel (answers is_auth, so net_adm:ping gets pong), rex
 * (answers OTP's erpc feature discovery) and a silent system process that sends on behalf of no process. */
#include <string.h>

#include "node_int.h"

static void net_kernel(cn_proc *self, const cn_term *msg, void *state) {
  (void)state;
  const cn_term *from, *req;
  if (!cn_gen_is_call(msg, &from, &req)) return;
  /* {is_auth, Node} is what net_adm:ping/1 calls; the handshake already proved the cookie. */
  if (cn_tuple_elem(req, 2, 0) && cn_is_atom(cn_tuple_elem(req, 2, 0), "is_auth")) {
    cn_term yes = tv_atom(cn_intern(cn_proc_node(self), "yes"));
    cn_gen_reply(self, from, &yes);
  }
}

static void rex(cn_proc *self, const cn_term *msg, void *state) {
  (void)state;
  cn_node *n = cn_proc_node(self);
  const cn_term *cfrom, *req;
  if (cn_gen_is_call(msg, &cfrom, &req)) {
    /* rpc:call from an old-style caller: this node runs no Erlang code, so the answer is what a node without
     * the module gives: {badrpc, {'EXIT', {undef, [{M, F, A, []}]}}}. */
    const cn_term *e = req && req->type == CN_TUPLE && req->v.tuple.arity == 5 ? req->v.tuple.e : NULL;
    if (!e || !cn_is_atom(&e[0], "call")) return;
    cn_term *frame = cn_mk_tuple(4, cn_term_copy(&e[1]), cn_term_copy(&e[2]), cn_term_copy(&e[3]), cn_mk_nil());
    cn_term *undef = cn_mk_tuple(2, cn_mk_atomc(n, "undef"), cn_mk_list(1, frame));
    cn_term *bad = cn_mk_tuple(2, cn_mk_atomc(n, "badrpc"), cn_mk_tuple(2, cn_mk_atomc(n, "EXIT"), undef));
    if (bad) cn_gen_reply(self, cfrom, bad);
    cn_term_free(bad);
    return;
  }
  const cn_term *from = cn_tuple_elem(msg, 2, 0), *what = cn_tuple_elem(msg, 2, 1);
  if (!from || from->type != CN_PID || !cn_is_atom(what, "features_request")) return;
  cn_term erpc = tv_atom(cn_intern(n, "erpc"));
  cn_term *list = cn_mk_list(1, cn_term_copy(&erpc));
  cn_term *reply = cn_mk_tuple(3, cn_mk_atomc(n, "features_reply"), cn_mk_atom(n->name), list);
  if (reply) cn_send(n, self, from->v.pid, reply);
  cn_term_free(reply);
}

/* The group leader lent to remote calls: output requests are answered ok (and logged at debug level), so a
 * function that prints does not wait forever; input requests get {error, enotsup}. */
static void group_leader(cn_proc *self, const cn_term *msg, void *state) {
  (void)state;
  cn_node *n = cn_proc_node(self);
  const cn_term *tag = cn_tuple_elem(msg, 4, 0), *from = cn_tuple_elem(msg, 4, 1);
  if (!tag || !cn_is_atom(tag, "io_request") || from->type != CN_PID) return;
  const cn_term *req = cn_tuple_elem(msg, 4, 3);
  const cn_term *op = req && req->type == CN_TUPLE && req->v.tuple.arity ? &req->v.tuple.e[0] : req;
  bool output = op && cn_is_atom(op, "put_chars");
  cn_term *answer = output ? cn_mk_atomc(n, "ok") : cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, "enotsup"));
  cn_term *reply = cn_mk_tuple(3, cn_mk_atomc(n, "io_reply"), cn_term_copy(cn_tuple_elem(msg, 4, 2)), answer);
  if (reply) cn_send(n, self, from->v.pid, reply);
  cn_term_free(reply);
}

static void sys(cn_proc *self, const cn_term *msg, void *state) {
  (void)self;
  (void)msg;
  (void)state;
}

int builtin_start(cn_node *n) {
  cn_pid pid;
  int rc;
  if ((rc = cn_spawn(n, sys, NULL, NULL, &n->sys_pid))) return rc;
  if ((rc = cn_spawn(n, group_leader, NULL, NULL, &n->gl_pid))) return rc;
  if ((rc = cn_spawn(n, net_kernel, NULL, NULL, &pid)) || (rc = cn_register(n, "net_kernel", pid))) return rc;
  if ((rc = cn_spawn(n, rex, NULL, NULL, &pid)) || (rc = cn_register(n, "rex", pid))) return rc;
  return 0;
}
