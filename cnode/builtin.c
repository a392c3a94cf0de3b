/* builtin.c: the processes every node has: net_kernel (answers is_auth, so net_adm:ping gets pong) and rex
 * (answers old-style rpc calls and OTP's erpc feature discovery), both C gen_servers; the group leader lent to
 * remote calls; and a silent system process that sends on behalf of no process. */
#include <string.h>

#include "node_int.h"

/* net_kernel answers {is_auth, Node} (what net_adm:ping/1 calls; the handshake already proved the cookie) with
 * yes; other calls get no reply, casts and other messages are ignored. */
static cn_term *net_kernel_call(cn_proc *self, const cn_term *req, const cn_term *from, void *state) {
  (void)from, (void)state;
  if (!cn_is_atom(cn_tuple_elem(req, 2, 0), "is_auth")) return NULL;
  return cn_mk_atomc(cn_proc_node(self), "yes");
}

static const cn_gen_server_ops net_kernel_ops = {.handle_call = net_kernel_call};

/* rpc:call from an old-style caller ({call, M, F, A, GroupLeader}): a function C code registered, or a BIF the
 * node answers, gives its value; badarg and anything else (this node runs no Erlang code) give what a BEAM node
 * gives: {badrpc, {'EXIT', {undef | badarg, [{M, F, A, []}]}}}. A call of another shape gets no reply. */
static cn_term *rex_call(cn_proc *self, const cn_term *req, const cn_term *from, void *state) {
  (void)from, (void)state;
  cn_node *n = cn_proc_node(self);
  const cn_term *e = req && req->type == CN_TUPLE && req->v.tuple.arity == 5 ? req->v.tuple.e : NULL;
  if (!e || !cn_is_atom(&e[0], "call")) return NULL;
  int status;
  cn_term *v = spawn_apply(n, &e[1], &e[2], &e[3], &status);
  if (v) return v;
  cn_term *frame = cn_mk_tuple(4, cn_term_copy(&e[1]), cn_term_copy(&e[2]), cn_term_copy(&e[3]), cn_mk_nil());
  cn_term *why = cn_mk_tuple(2, cn_mk_atomc(n, status == CN_EINVAL ? "badarg" : "undef"), cn_mk_list(1, frame));
  return cn_mk_tuple(2, cn_mk_atomc(n, "badrpc"), cn_mk_tuple(2, cn_mk_atomc(n, "EXIT"), why));
}

/* {From, features_request}: OTP's erpc feature discovery; rex answers that it speaks erpc. */
static void rex_info(cn_proc *self, const cn_term *msg, void *state) {
  (void)state;
  cn_node *n = cn_proc_node(self);
  const cn_term *from = cn_tuple_elem(msg, 2, 0), *what = cn_tuple_elem(msg, 2, 1);
  if (!from || from->type != CN_PID || !cn_is_atom(what, "features_request")) return;
  cn_term erpc = tv_atom(cn_intern(n, "erpc"));
  cn_term *list = cn_mk_list(1, cn_term_copy(&erpc));
  cn_term *reply = cn_mk_tuple(3, cn_mk_atomc(n, "features_reply"), cn_mk_atom(n->name), list);
  if (reply) cn_send(n, self, from->v.pid, reply);
  cn_term_free(reply);
}

static const cn_gen_server_ops rex_ops = {.handle_call = rex_call, .handle_info = rex_info};

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
  int rc;
  if ((rc = cn_spawn(n, sys, NULL, NULL, &n->sys_pid))) return rc;
  if ((rc = cn_spawn(n, group_leader, NULL, NULL, &n->gl_pid))) return rc;
  if ((rc = cn_gen_server_start(n, "net_kernel", &net_kernel_ops, NULL, NULL))) return rc;
  if ((rc = cn_gen_server_start(n, "rex", &rex_ops, NULL, NULL))) return rc;
  return otp_start(n);
}
