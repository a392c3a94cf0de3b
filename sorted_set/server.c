/* server.c: the sorted set as a C gen_server (cn_sorted_set_start): the requests of cn_sorted_set.h on a cn_sset
 * that follows the node's OTP release. */
#include "cn_sorted_set.h"

static cn_term *atom(cn_proc *self, const char *name) { return cn_mk_atomc(cn_proc_node(self), name); }

static cn_term *error(cn_proc *self, int rc) {
  return cn_mk_tuple(2, atom(self, "error"), atom(self, rc == CN_ENOMEM ? "enomem" : "badarg"));
}

/* A rank from the wire: a non-negative integer (a bignum is past any set's end). */
static bool rank_arg(const cn_term *t, size_t *out) {
  if (t && t->type == CN_INT && t->v.i >= 0) {
    *out = (size_t)t->v.i;
    return true;
  }
  if (t && t->type == CN_BIG && !t->v.big.sign) {
    *out = SIZE_MAX;
    return true;
  }
  return false;
}

typedef struct range_acc {
  cn_term **e;
  size_t n;
} range_acc;

static int range_add(const cn_term *score, const cn_term *member, void *ctx) {
  range_acc *a = ctx;
  return (a->e[a->n++] = cn_mk_tuple(2, cn_term_copy(score), cn_term_copy(member))) ? 0 : CN_ENOMEM;
}

static cn_term *range(cn_proc *self, cn_sset *s, const cn_term *req) {
  size_t start, stop, size = cn_sset_size(s);
  if (!rank_arg(cn_tuple_elem(req, 3, 1), &start) || !rank_arg(cn_tuple_elem(req, 3, 2), &stop))
    return error(self, CN_EINVAL);
  if (start > stop || start >= size) return cn_mk_nil();
  if (stop >= size) stop = size - 1;
  range_acc a = {cn_calloc(stop - start + 1, sizeof(cn_term *)), 0};
  if (!a.e) return error(self, CN_ENOMEM);
  int rc = cn_sset_range(s, start, stop, range_add, &a);
  cn_term *list = rc ? NULL : cn_mk_listv(a.n, a.e, NULL);
  if (rc)
    for (size_t i = 0; i < a.n; i++) cn_term_free(a.e[i]);
  cn_free(a.e);
  return list ? list : error(self, CN_ENOMEM);
}

/* {add_many, [{Score, Member}]}: checked whole first, so a malformed list changes nothing. */
static cn_term *add_many(cn_proc *self, cn_sset *s, const cn_term *list) {
  if (!list || (list->type != CN_NIL && (list->type != CN_LIST || list->v.list.tail))) return error(self, CN_EINVAL);
  size_t n = list->type == CN_LIST ? list->v.list.len : 0;
  for (size_t i = 0; i < n; i++)
    if (!cn_tuple_elem(&list->v.list.e[i], 2, 0)) return error(self, CN_EINVAL);
  for (size_t i = 0; i < n; i++) {
    const cn_term *e = &list->v.list.e[i];
    int rc = cn_sset_add(s, cn_tuple_elem(e, 2, 0), cn_tuple_elem(e, 2, 1));
    if (rc) return error(self, rc);
  }
  return atom(self, "ok");
}

static cn_term *handle_call(cn_proc *self, const cn_term *req, const cn_term *from, void *state) {
  (void)from;
  cn_sset *s = state;
  int rc = cn_sset_set_release(s, cn_node_otp_release(cn_proc_node(self)));
  if (rc) return error(self, rc);
  if (cn_is_atom(req, "size")) return cn_mk_int((int64_t)cn_sset_size(s));
  const cn_term *tag = req && req->type == CN_TUPLE && req->v.tuple.arity ? &req->v.tuple.e[0] : NULL;
  const cn_term *a1 = cn_tuple_elem(req, 2, 1);
  if (tag && cn_is_atom(tag, "add") && cn_tuple_elem(req, 3, 0)) {
    rc = cn_sset_add(s, cn_tuple_elem(req, 3, 1), cn_tuple_elem(req, 3, 2));
    return rc ? error(self, rc) : atom(self, "ok");
  }
  if (tag && cn_is_atom(tag, "remove") && a1) {
    cn_sset_remove(s, a1);
    return atom(self, "ok");
  }
  if (tag && cn_is_atom(tag, "score") && a1) {
    const cn_term *sc = cn_sset_score(s, a1);
    return sc ? cn_mk_tuple(2, atom(self, "ok"), cn_term_copy(sc)) : atom(self, "error");
  }
  if (tag && cn_is_atom(tag, "rank") && a1) {
    size_t r;
    if (cn_sset_rank(s, a1, &r)) return atom(self, "error");
    return cn_mk_tuple(2, atom(self, "ok"), cn_mk_int((int64_t)r));
  }
  if (tag && cn_is_atom(tag, "range") && cn_tuple_elem(req, 3, 0)) return range(self, s, req);
  if (tag && cn_is_atom(tag, "add_many") && a1) return add_many(self, s, a1);
  return error(self, CN_EINVAL);
}

static void terminate(cn_proc *self, const cn_term *reason, void *state) {
  (void)self, (void)reason;
  cn_sset_free(state);
}

static const cn_gen_server_ops ops = {.handle_call = handle_call, .terminate = terminate};

int cn_sorted_set_start(cn_node *n, const char *name, cn_pid *pid_out) {
  cn_sset *s;
  int rc = cn_sset_new(&s, cn_node_otp_release(n));
  if (rc) return rc;
  if ((rc = cn_gen_server_start(n, name, &ops, s, pid_out))) cn_sset_free(s);
  return rc;
}
