/* workers.c: demo workers a user can try from iex: `echo` sends back what it gets, `cnode_kv` is a key-value
 * gen_server, and `cnode_ctl` makes the C node send on request (used by the interop tests to connect out). */
#include "workers.h"

/* echo: {From, Term} -> From ! Term. */
static void echo(cn_proc *self, const cn_term *msg, void *state) {
  (void)state;
  const cn_term *from = cn_tuple_elem(msg, 2, 0);
  if (from && from->type == CN_PID) cn_send(cn_proc_node(self), self, from->v.pid, cn_tuple_elem(msg, 2, 1));
}

/* cnode_kv: {put, K, V} -> ok; {get, K} -> {ok, V} | error. A list is plenty for a demo. */
typedef struct kv_entry {
  struct kv_entry *next;
  cn_term *key;
  cn_term *val;
} kv_entry;

static kv_entry **kv_find(kv_entry **head, const cn_term *key) {
  for (; *head; head = &(*head)->next)
    if (cn_term_eq((*head)->key, key)) return head;
  return head;
}

static void kv(cn_proc *self, const cn_term *msg, void *state) {
  cn_node *n = cn_proc_node(self);
  kv_entry **head = state;
  const cn_term *from, *req;
  if (!cn_gen_is_call(msg, &from, &req)) return;
  cn_term *reply = NULL;
  const cn_term *op = req && req->type == CN_TUPLE && req->v.tuple.arity ? &req->v.tuple.e[0] : NULL;
  if (cn_is_atom(op, "put") && req->v.tuple.arity == 3) {
    kv_entry **e = kv_find(head, &req->v.tuple.e[1]);
    if (!*e && (*e = cn_calloc(1, sizeof **e))) (*e)->key = cn_term_copy(&req->v.tuple.e[1]);
    if (*e) {
      cn_term_free((*e)->val);
      (*e)->val = cn_term_copy(&req->v.tuple.e[2]);
    }
    reply = cn_mk_atomc(n, "ok");
  } else if (cn_is_atom(op, "get") && req->v.tuple.arity == 2) {
    kv_entry **e = kv_find(head, &req->v.tuple.e[1]);
    reply = *e ? cn_mk_tuple(2, cn_mk_atomc(n, "ok"), cn_term_copy((*e)->val)) : cn_mk_atomc(n, "error");
  } else {
    reply = cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, "badarg"));
  }
  if (reply) cn_gen_reply(self, from, reply);
  cn_term_free(reply);
}

static void kv_terminate(cn_proc *self, const cn_term *reason, void *state) {
  (void)self;
  (void)reason;
  kv_entry **head = state;
  while (*head) {
    kv_entry *e = *head;
    *head = e->next;
    cn_term_free(e->key);
    cn_term_free(e->val);
    cn_free(e);
  }
  cn_free(head);
}

/* cnode_ctl: {From, Ref, {send, Dest, Msg}} -> the node sends Msg to Dest, then From ! {Ref, ok};
 * {From, Ref, nodes} -> From ! {Ref, [Node]}. */
static void ctl(cn_proc *self, const cn_term *msg, void *state) {
  (void)state;
  cn_node *n = cn_proc_node(self);
  const cn_term *from = cn_tuple_elem(msg, 3, 0), *ref = cn_tuple_elem(msg, 3, 1), *cmd = cn_tuple_elem(msg, 3, 2);
  if (!from || from->type != CN_PID) return;
  cn_term *answer = NULL;
  if (cn_tuple_elem(cmd, 3, 0) && cn_is_atom(cn_tuple_elem(cmd, 3, 0), "send")) {
    int rc = cn_send_to(n, self, cn_tuple_elem(cmd, 3, 1), cn_tuple_elem(cmd, 3, 2));
    answer = rc ? cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, cn_err_name(rc))) : cn_mk_atomc(n, "ok");
  } else if (cn_is_atom(cmd, "nodes")) {
    const cn_atom *names[256];
    size_t k = cn_node_connected(n, names, 256);
    cn_term *elems[256];
    for (size_t i = 0; i < k && i < 256; i++) elems[i] = cn_mk_atom(names[i]);
    answer = cn_mk_listv(k < 256 ? k : 256, elems, NULL);
  } else {
    answer = cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, "unknown_command"));
  }
  cn_term *reply = cn_mk_tuple(2, cn_term_copy(ref), answer);
  if (reply) cn_send(n, self, from->v.pid, reply);
  cn_term_free(reply);
}

int workers_start(cn_node *n) {
  cn_pid pid;
  int rc;
  if ((rc = cn_spawn(n, echo, NULL, NULL, &pid)) || (rc = cn_register(n, "echo", pid))) return rc;
  kv_entry **head = cn_calloc(1, sizeof *head);
  if (!head) return CN_ENOMEM;
  cn_proc_opts kv_opts = {.terminate = kv_terminate};
  if ((rc = cn_spawn(n, kv, head, &kv_opts, &pid))) {
    cn_free(head);
    return rc;
  }
  if ((rc = cn_register(n, "cnode_kv", pid))) return rc;
  if ((rc = cn_spawn(n, ctl, NULL, NULL, &pid)) || (rc = cn_register(n, "cnode_ctl", pid))) return rc;
  return 0;
}
