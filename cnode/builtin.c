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
  const cn_term *from = cn_tuple_elem(msg, 2, 0), *what = cn_tuple_elem(msg, 2, 1);
  if (!from || from->type != CN_PID || !cn_is_atom(what, "features_request")) return;
  cn_term erpc = tv_atom(cn_intern(n, "erpc"));
  cn_term *list = cn_mk_list(1, cn_term_copy(&erpc));
  cn_term *reply = cn_mk_tuple(3, cn_mk_atomc(n, "features_reply"), cn_mk_atom(n->name), list);
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
  if ((rc = cn_spawn(n, net_kernel, NULL, NULL, &pid)) || (rc = cn_register(n, "net_kernel", pid))) return rc;
  if ((rc = cn_spawn(n, rex, NULL, NULL, &pid)) || (rc = cn_register(n, "rex", pid))) return rc;
  return 0;
}
