/* otp_release.c: which OTP release's term semantics (cn_term_*_otp) and TLS defaults (dist_tls_versions) the node
 * follows: the one set in cn_node_opts, or the one its first BEAM peer reports (erlang:system_info(otp_release)
 * through the peer's rex). */
#include "node_int.h"

/* How long to wait for a peer's answer; a peer that does not answer in time (or a C node, whose rex answers
 * undef) teaches nothing, and the next peer's nodeup asks again. */
#define ASK_TIMEOUT_MS 10000

int otp_parse_release(const cn_term *t) {
  if (!t || t->type != CN_LIST || t->v.list.tail || t->v.list.len == 0 || t->v.list.len > 4) return 0;
  int v = 0;
  for (uint32_t i = 0; i < t->v.list.len; i++) {
    const cn_term *c = &t->v.list.e[i];
    if (c->type != CN_INT || c->v.i < '0' || c->v.i > '9') return 0;
    v = v * 10 + (int)(c->v.i - '0');
  }
  return v >= CN_OTP_RELEASE_MIN && v <= CN_OTP_RELEASE_MAX ? v : 0;
}

/* ctx is the peer's atom (atoms live as long as the node's table). */
static void answered(cn_proc *self, int status, const cn_term *reply, void *ctx) {
  cn_node *n = cn_proc_node(self);
  const cn_atom *peer = ctx;
  int rel = status == 0 ? otp_parse_release(reply) : 0;
  if (rel && !n->otp_known) {
    n->otp_release = rel;
    n->otp_known = true;
    cn_log(n, CN_LOG_INFO, "following OTP %d's term semantics and TLS defaults, learned from %s", rel, peer->name);
  } else if (!rel && status != CN_ECLOSED) {
    cn_log(n, CN_LOG_DEBUG, "%s did not tell its OTP release", peer->name);
  }
}

/* The asking process: {ask, Node} from otp_nodeup -> one rpc to Node's rex. */
static void asker(cn_proc *self, const cn_term *msg, void *state) {
  (void)state;
  cn_node *n = cn_proc_node(self);
  const cn_term *node = cn_tuple_elem(msg, 2, 1);
  if (n->otp_known || !node || node->type != CN_ATOM || !cn_node_is_up(n, node->v.atom, CN_NODES_ALL)) return;
  cn_term arg = tv_atom(cn_intern(n, "otp_release"));
  cn_term args = {CN_LIST, 0, {0}};
  args.v.list.e = &arg;
  args.v.list.len = 1;
  if (arg.v.atom)
    cn_rpc(self, node->v.atom, "erlang", "system_info", &args, ASK_TIMEOUT_MS, answered, (void *)node->v.atom);
}

int otp_start(cn_node *n) {
  if (n->otp_release) {
    n->otp_known = true;
    return 0;
  }
  n->otp_release = CN_OTP_RELEASE_DEFAULT;
  return cn_spawn(n, asker, NULL, NULL, &n->otp_asker);
}

void otp_nodeup(cn_node *n, const cn_atom *peer) {
  if (n->otp_known || !n->otp_asker.node) return;
  cn_term e[2] = {tv_atom(cn_intern(n, "ask")), tv_atom(peer)};
  cn_term msg = tv_tuple(e, 2);
  if (e[0].v.atom) cn_send(n, NULL, n->otp_asker, &msg);
}

int cn_node_otp_release(const cn_node *n) {
  DIRTY_GUARD(n, int, cn_node_otp_release(n));
  return n->otp_release;
}
bool cn_node_otp_release_known(const cn_node *n) {
  DIRTY_GUARD(n, bool, cn_node_otp_release_known(n));
  return n->otp_known;
}
