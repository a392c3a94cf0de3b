/* node_peer.c: fuzz_node's fake peer: control messages, answers to what the node sent, framing and feeding them,
 * and reading back (and checking) every frame the node writes to it. */
#include "fuzz_node.h"

/* Control messages: operation, then what each slot holds. */
enum {
  F_FROM = 1,
  F_TO,
  F_NAME,
  F_REF,
  F_REASON,
  F_TOKEN,
  F_SID,
  F_UID,
  F_MFA,
  F_OPTS,
  F_GL,
  F_PROC,
  F_FLAGS,
  F_RESULT,
  F_UNUSED,
  F_WATCHED
};
static const struct {
  uint8_t op;
  uint8_t payload;
  uint8_t f[6];
} OPS[] = {
    {DOP_LINK, 0, {F_FROM, F_TO}},
    {DOP_SEND, 1, {F_UNUSED, F_TO}},
    {DOP_EXIT, 0, {F_FROM, F_TO, F_REASON}},
    {DOP_UNLINK, 0, {F_FROM, F_TO}},
    {DOP_NODE_LINK, 0, {0}},
    {DOP_REG_SEND, 1, {F_FROM, F_UNUSED, F_NAME}},
    {DOP_GROUP_LEADER, 0, {F_FROM, F_TO}},
    {DOP_EXIT2, 0, {F_FROM, F_TO, F_REASON}},
    {DOP_SEND_TT, 1, {F_UNUSED, F_TO, F_TOKEN}},
    {DOP_EXIT_TT, 0, {F_FROM, F_TO, F_TOKEN, F_REASON}},
    {DOP_REG_SEND_TT, 1, {F_FROM, F_UNUSED, F_NAME, F_TOKEN}},
    {DOP_EXIT2_TT, 0, {F_FROM, F_TO, F_TOKEN, F_REASON}},
    {DOP_MONITOR_P, 0, {F_FROM, F_PROC, F_REF}},
    {DOP_DEMONITOR_P, 0, {F_FROM, F_PROC, F_REF}},
    {DOP_MONITOR_P_EXIT, 0, {F_WATCHED, F_TO, F_REF, F_REASON}},
    {DOP_SEND_SENDER, 1, {F_FROM, F_TO}},
    {DOP_SEND_SENDER_TT, 1, {F_FROM, F_TO, F_TOKEN}},
    {DOP_PAYLOAD_EXIT, 1, {F_FROM, F_TO}},
    {DOP_PAYLOAD_EXIT_TT, 1, {F_FROM, F_TO, F_TOKEN}},
    {DOP_PAYLOAD_EXIT2, 1, {F_FROM, F_TO}},
    {DOP_PAYLOAD_EXIT2_TT, 1, {F_FROM, F_TO, F_TOKEN}},
    {DOP_PAYLOAD_MONITOR_P_EXIT, 1, {F_WATCHED, F_TO, F_REF}},
    {DOP_SPAWN_REQUEST, 1, {F_SID, F_FROM, F_GL, F_MFA, F_OPTS}},
    {DOP_SPAWN_REQUEST_TT, 1, {F_SID, F_FROM, F_GL, F_MFA, F_OPTS, F_TOKEN}},
    {DOP_SPAWN_REPLY, 0, {F_SID, F_TO, F_FLAGS, F_RESULT}},
    {DOP_SPAWN_REPLY_TT, 0, {F_SID, F_TO, F_FLAGS, F_RESULT, F_TOKEN}},
    {DOP_ALIAS_SEND, 1, {F_FROM, F_REF}},
    {DOP_ALIAS_SEND_TT, 1, {F_FROM, F_REF, F_TOKEN}},
    {DOP_UNLINK_ID, 0, {F_UID, F_FROM, F_TO}},
    {DOP_UNLINK_ID_ACK, 0, {F_UID, F_FROM, F_TO}},
};
#define NOPS (sizeof OPS / sizeof OPS[0])

/* What SPAWN_REQUEST asks for: the spawn entry points and erpc builtins the node has, or anything. */
static void gen_spawn(fz *z, cn_term **mfa, cn_term **args) {
  cn_term *peer = cn_mk_pid(fz_peer_pid(z, z->peer));
  switch (u8(z) % 5) {
  case 0:
    *mfa = cn_mk_tuple(3, cn_mk_atom(cn_atoms_get(z->tab, "cnode_demo")), cn_mk_atom(cn_atoms_get(z->tab, "puppet")),
                       cn_mk_int(1));
    *args = cn_mk_list(1, peer);
    return;
  case 1:
    *mfa = cn_mk_tuple(3, cn_mk_atom(cn_atoms_get(z->tab, "cnode_demo")), cn_mk_atom(cn_atoms_get(z->tab, "echo")),
                       cn_mk_int(0));
    *args = cn_mk_nil();
    break;
  case 2: {
    static const char *const BI[][2] = {
        {"Elixir.Process", "alive?"}, {"erlang", "is_process_alive"}, {"erlang", "node"}, {"erlang", "nodes"}};
    uint8_t b = u8(z) % 4;
    *mfa = cn_mk_tuple(3, cn_mk_atom(cn_atoms_get(z->tab, "erpc")), cn_mk_atom(cn_atoms_get(z->tab, "execute_call")),
                       cn_mk_int(4));
    cn_term *argl = b < 2 ? cn_mk_list(1, cn_mk_pid(fz_pick_pid(z))) : cn_mk_nil();
    *args = cn_mk_list(4, cn_mk_ref(fz_pick_ref(z)), cn_mk_atom(cn_atoms_get(z->tab, BI[b][0])),
                       cn_mk_atom(cn_atoms_get(z->tab, BI[b][1])), argl);
    break;
  }
  default:
    *mfa = cn_mk_tuple(3, fz_gen(z, 1), fz_gen(z, 1), fz_gen(z, 1));
    *args = fz_gen(z, 1);
    break;
  }
  cn_term_free(peer);
}

static cn_term *gen_opts(fz *z) {
  static const char *const O[] = {"link", "monitor", "reply", "yes", "no", "error_only", "success_only"};
  cn_term *e[4];
  size_t n = u8(z) % 4;
  for (size_t i = 0; i < n; i++) {
    uint8_t k = u8(z) % 4;
    if (k == 0) e[i] = cn_mk_atom(cn_atoms_get(z->tab, "link"));
    else if (k == 1) e[i] = cn_mk_atom(cn_atoms_get(z->tab, "monitor"));
    else if (k == 2)
      e[i] =
          cn_mk_tuple(2, cn_mk_atom(cn_atoms_get(z->tab, "reply")), cn_mk_atom(cn_atoms_get(z->tab, O[3 + u8(z) % 4])));
    else e[i] = fz_gen(z, 2);
  }
  return cn_mk_listv(n, e, NULL);
}

/* The term for one slot of a control message: mostly the right type, now and then anything. */
static cn_term *gen_field(fz *z, uint8_t f, cn_term **mfa_args) {
  if (u8(z) % 32 == 0) return fz_gen(z, 2);
  switch (f) {
  case F_FROM: return cn_mk_pid(u8(z) % 4 ? fz_peer_pid(z, z->peer) : fz_pick_pid(z));
  case F_TO: return cn_mk_pid(fz_pick_pid(z));
  case F_NAME: return cn_mk_atom(fz_pick_name(z));
  case F_REF: return cn_mk_ref(fz_pick_ref(z));
  case F_REASON: return fz_gen(z, 1);
  case F_TOKEN: return fz_gen(z, 3);
  case F_SID: /* a spawn request id: a ref */ return cn_mk_ref(fz_pick_ref(z));
  case F_UID: { /* an unlink id: up to 2^64 - 1 (the node's own ids count from 1) */
    uint8_t k = u8(z) % 4;
    if (k < 2) return cn_mk_int(k ? u8(z) : (int64_t)z->n->unlink_counter);
    uint8_t mag[9];
    size_t n = u8(z) % 10;
    for (size_t i = 0; i < n; i++) mag[i] = u8(z);
    return cn_mk_big(0, mag, n);
  }
  case F_MFA: {
    cn_term *mfa;
    gen_spawn(z, &mfa, mfa_args);
    return mfa;
  }
  case F_OPTS: return gen_opts(z);
  case F_GL: return cn_mk_pid(u8(z) & 1 ? fz_peer_pid(z, z->peer) : fz_pick_pid(z));
  case F_PROC: return u8(z) & 1 ? cn_mk_pid(fz_pick_pid(z)) : cn_mk_atom(fz_pick_name(z));
  case F_WATCHED: return u8(z) & 1 ? cn_mk_pid(fz_peer_pid(z, z->peer)) : cn_mk_atom(fz_pick_name(z));
  case F_FLAGS: return cn_mk_int(u8(z) % 4);
  case F_RESULT: return u8(z) & 1 ? cn_mk_pid(fz_peer_pid(z, z->peer)) : fz_gen(z, 2);
  default: return cn_mk_atom(cn_atoms_get(z->tab, ""));
  }
}

/* ---- What the node sends --------------------------------------------------------------------------------- */

static void remember(fz *z, const cn_term *t, int depth) {
  if (!t || depth > 8) return;
  switch (t->type) {
  case CN_REF:
    z->refs[z->ref_next++ % RING] = t->v.ref;
    if (z->nrefs < RING) z->nrefs++;
    break;
  case CN_PID:
    z->pids[z->pid_next++ % RING] = t->v.pid;
    if (z->npids < RING) z->npids++;
    break;
  case CN_TUPLE:
  case CN_MAP: {
    /* messages and their parts, not every nested tuple, nor big ones (see fz_gen_seen) */
    cn_term *c = depth <= 2 && fz_term_size(t, 2049) <= 2048 ? cn_term_copy(t) : NULL;
    if (c) { /* round robin once full, so what an input means does not depend on how much came back */
      size_t i = z->seen_next++ % RING;
      if (i < z->nseen) cn_term_free(z->seen[i]);
      else z->nseen++;
      z->seen[i] = c;
    }
    size_t k = t->type == CN_TUPLE ? t->v.tuple.arity : 2 * (size_t)t->v.map.size;
    const cn_term *e = t->type == CN_TUPLE ? t->v.tuple.e : t->v.map.kv;
    for (size_t i = 0; i < k; i++) remember(z, &e[i], depth + 1);
    break;
  }
  case CN_LIST:
    for (uint32_t i = 0; i < t->v.list.len; i++) remember(z, &t->v.list.e[i], depth + 1);
    remember(z, t->v.list.tail, depth + 1);
    break;
  default: break;
  }
}

/* One decoded term of the node's output (after its version byte when versioned). */
static cn_term *out_term(fz *z, const uint8_t *b, size_t len, size_t *off, bool versioned) {
  if (versioned) {
    FUZZ_CHECK(*off < len && b[*off] == 131);
    (*off)++;
  }
  cn_decode_opts o = {0};
  cn_term *t = NULL;
  FUZZ_CHECK(cn_term_decode(z->tab, b, len, off, &o, &t) == 0);
  return t;
}

/* Everything the node wrote must be frames a peer can read: a control message of a known shape, its payload,
 * nothing after. The terms go to the pools later ops draw from. */
static void harvest(fz *z) {
  if (conn_test_output(z->n, z->npeer, &z->out)) return;
  size_t off = 0;
  while (off < z->out.len) {
    const uint8_t *d;
    size_t dlen;
    ssize_t r = dist_frame_parse(z->out.data + off, z->out.len - off, (size_t)1 << 31, &d, &dlen);
    FUZZ_CHECK(r >= 0);
    if (r == 0) break;
    off += (size_t)r;
    if (!dlen) continue;
    dist_msg_hdr h;
    FUZZ_CHECK(dist_msg_hdr_parse(d, dlen, &h) == 0);
    FUZZ_CHECK(h.kind == DIST_MSG_PASS || h.kind == DIST_MSG_NORMAL); /* the node fragments only past 1 GiB */
    FUZZ_CHECK((h.kind == DIST_MSG_NORMAL) == !!(z->flags & DFLAG_FRAGMENTS));
    const uint8_t *b = d + h.body_off;
    size_t blen = dlen - h.body_off, boff = 0;
    cn_term *ctl = out_term(z, b, blen, &boff, h.versioned), *pay = NULL;
    dist_ctl dc;
    FUZZ_CHECK(dist_ctl_parse(ctl, &dc) == 0);
    if (dist_op_has_payload(dc.op)) pay = out_term(z, b, blen, &boff, h.versioned);
    FUZZ_CHECK(boff == blen);
    if ((dc.op == DOP_SPAWN_REPLY || dc.op == DOP_SPAWN_REPLY_TT) && dc.result->type == CN_PID) {
      z->spawned[z->spawned_next++ % 8] = dc.result->v.pid;
      if (z->nspawned < 8) z->nspawned++;
    }
    remember(z, ctl, 0);
    remember(z, pay, 0);
    cn_term_free(ctl);
    cn_term_free(pay);
  }
  cn_buf_consume(&z->out, off);
}

void fz_run(fz *z, int turns) {
  for (int i = 0; i < turns; i++) {
    uv_run(z->n->loop, UV_RUN_NOWAIT);
    harvest(z);
  }
}

/* ---- Frames ------------------------------------------------------------------------------------------------ */

/* Feeds bytes in pieces of input-chosen sizes, so frames also arrive split across reads. */
static void feed(fz *z, const uint8_t *p, size_t len) {
  uint8_t split = u8(z);
  size_t step = split % 4 == 0 ? 1 + (size_t)split / 4 : len;
  for (size_t off = 0; off < len; off += step)
    if (conn_test_feed(z->n, z->npeer, p + off, len - off < step ? len - off : step)) return;
}

/* Frames ctl and payload (taken; either may be NULL after an out-of-memory) and feeds them: pass-through, normal
 * header, or normal header cut in fragments; now and then damaged or truncated. */
static void send_terms(fz *z, cn_term *ctl, cn_term *pay, bool has_payload) {
  if (!ctl || (has_payload && !pay)) goto out;
  if (fz_logging()) {
    char *a = cn_term_to_string(ctl), *b2 = pay ? cn_term_to_string(pay) : NULL;
    fprintf(stderr, "peer: %.200s %.200s\n", a ? a : "?", b2 ? b2 : "");
    cn_free(a);
    cn_free(b2);
  }
  cn_buf b = {0};
  uint8_t how = u8(z);
  int rc;
  if (how % 3 == 0) {
    rc = cn_buf_put32(&b, 0) || cn_buf_put8(&b, 112) || cn_term_to_binary(ctl, &b) ||
         (pay && cn_term_to_binary(pay, &b));
    if (!rc) cn_set32(b.data, (uint32_t)(b.len - 4));
  } else {
    size_t start = dist_msg_begin(&b);
    rc = start == SIZE_MAX || cn_term_encode(ctl, &b) || (pay && cn_term_encode(pay, &b));
    size_t frag = how % 3 == 2 ? 1 + u8(z) % 64 : 0;
    if (!rc) rc = dist_msg_end(&b, start, 1 + u8(z), frag);
  }
  if (!rc) {
    uint8_t dmg = u8(z);
    size_t len = b.len;
    if (dmg % 32 == 0 && len) b.data[u16(z) % len] ^= (uint8_t)(1 + u8(z)); /* a damaged byte */
    if (dmg % 32 == 1 && len) len = u16(z) % len;                           /* a truncated frame */
    if (fz_logging()) {
      fprintf(stderr, "frame: how %u, %zu of %zu bytes:", how % 3, len, b.len);
      for (size_t i = 0; i < len && getenv("FUZZ_NODE_HEX"); i++) fprintf(stderr, "%02x", b.data[i]);
      fprintf(stderr, "\n");
    }
    feed(z, b.data, len);
  }
  cn_buf_free(&b);
out:
  cn_term_free(ctl);
  cn_term_free(pay);
}

void fz_send_ctl(fz *z) {
  uint8_t sel = u8(z);
  uint8_t oi = sel % NOPS;
  z->nodes = MAX_NODES;
  cn_term *e[8] = {cn_mk_int(OPS[oi].op)};
  cn_term *args = NULL;
  size_t arity = 1;
  for (size_t i = 0; i < 6 && OPS[oi].f[i]; i++) e[arity++] = gen_field(z, OPS[oi].f[i], &args);
  cn_term *ctl = cn_mk_tuplev(arity, e);
  cn_term *pay = NULL;
  if (OPS[oi].payload) pay = args ? args : fz_gen(z, 0);
  else cn_term_free(args);
  send_terms(z, ctl, pay, OPS[oi].payload);
}

/* A request to one of the node's services, by name (REG_SEND) or by pid (SEND, SEND_SENDER, ALIAS-less). */
void fz_send_service(fz *z) {
  z->nodes = MAX_NODES;
  const cn_atom *to;
  cn_term *pay = fz_gen_service_msg(z, &to);
  cn_term *from = cn_mk_pid(fz_peer_pid(z, z->peer)), *ctl;
  cn_pid pid;
  uint8_t how = u8(z) % 4;
  if (to->name[0] == '*' && !z->nspawned && u8(z) % 2) { /* no puppet yet: spawn one (cnode_demo:puppet(Peer)) */
    cn_term_free(pay);
    cn_term *ctl2 =
        cn_mk_tuple(6, cn_mk_int(DOP_SPAWN_REQUEST), cn_mk_ref(fz_pick_ref(z)), cn_term_copy(from), cn_term_copy(from),
                    cn_mk_tuple(3, cn_mk_atom(cn_atoms_get(z->tab, "cnode_demo")),
                                cn_mk_atom(cn_atoms_get(z->tab, "puppet")), cn_mk_int(1)),
                    gen_opts(z));
    send_terms(z, ctl2, cn_mk_list(1, from), true);
    return;
  }
  if (to->name[0] == '*') { /* a process by pid: one the peer spawned, else one the node named */
    how = how ? how : 1;
    if (z->nspawned) pid = z->spawned[u8(z) % z->nspawned];
    else if (z->npids) pid = z->pids[u8(z) % z->npids];
    else if (!fz_local_pid(z, u8(z), &pid)) pid = z->probe;
  }
  if (how && (to->name[0] == '*' || !cn_whereis(z->n, to->name, &pid))) {
    cn_term *pt = cn_mk_pid(pid);
    ctl = how == 1 ? cn_mk_tuple(3, cn_mk_int(DOP_SEND), cn_mk_atom(cn_atoms_get(z->tab, "")), pt)
                   : cn_mk_tuple(3, cn_mk_int(DOP_SEND_SENDER), from, pt);
    if (how == 1) cn_term_free(from);
  } else {
    ctl = cn_mk_tuple(4, cn_mk_int(DOP_REG_SEND), from, cn_mk_atom(cn_atoms_get(z->tab, "")), cn_mk_atom(to));
  }
  send_terms(z, ctl, pay, true);
}

/* Answers something the node sent, as a peer would: a reply to its gen_server call (to the pid, or to the alias
 * when the tag is [alias | Ref]), SPAWN_REPLY and the monitor exit for its spawn request (erpc), MONITOR_P_EXIT for
 * its monitor, an exit for its link, UNLINK_ID_ACK for its unlink. Found among the terms it sent. */
void fz_send_answer(fz *z) {
  if (!z->nseen) return;
  size_t start = u8(z);
  for (size_t i = 0; i < z->nseen; i++) {
    const cn_term *t = z->seen[(start + i) % z->nseen];
    if (t->type != CN_TUPLE || !t->v.tuple.arity) continue;
    const cn_term *e = t->v.tuple.e;
    uint32_t ar = t->v.tuple.arity;
    z->nodes = MAX_NODES;
    if (ar == 3 && cn_is_atom(&e[0], "$gen_call") && cn_tuple_elem(&e[1], 2, 0) &&
        cn_tuple_elem(&e[1], 2, 0)->type == CN_PID) { /* {'$gen_call', {Pid, Tag}, Req} */
      const cn_term *pid = cn_tuple_elem(&e[1], 2, 0), *tag = cn_tuple_elem(&e[1], 2, 1);
      cn_term *reply = cn_mk_tuple(2, cn_term_copy(tag), fz_gen(z, 1));
      const cn_term *alias = tag->type == CN_LIST && tag->v.list.tail ? tag->v.list.tail : NULL;
      if (alias && alias->type == CN_REF && u8(z) & 1)
        send_terms(z,
                   cn_mk_tuple(3, cn_mk_int(DOP_ALIAS_SEND), cn_mk_pid(fz_peer_pid(z, z->peer)), cn_term_copy(alias)),
                   reply, true);
      else
        send_terms(z, cn_mk_tuple(3, cn_mk_int(DOP_SEND), cn_mk_atom(cn_atoms_get(z->tab, "")), cn_term_copy(pid)),
                   reply, true);
      return;
    }
    if (e[0].type != CN_INT) continue;
    switch (e[0].v.i) {
    case DOP_SPAWN_REQUEST: /* {29, ReqId, From, GL, MFA, Opts} */
    case DOP_SPAWN_REQUEST_TT:
      if (ar < 6) break;
      if (u8(z) % 3) { /* the reply with a new pid, then (erpc) its monitor exit {Res, return, V} */
        cn_term *child = cn_mk_pid(fz_peer_pid(z, z->peer));
        send_terms(z,
                   cn_mk_tuple(5, cn_mk_int(DOP_SPAWN_REPLY), cn_term_copy(&e[1]), cn_term_copy(&e[2]),
                               cn_mk_int(u8(z) % 4), child),
                   NULL, false);
        cn_term *res = cn_mk_tuple(3, fz_gen(z, 2), cn_mk_atom(cn_atoms_get(z->tab, u8(z) & 1 ? "return" : "error")),
                                   fz_gen(z, 2));
        send_terms(z,
                   cn_mk_tuple(4, cn_mk_int(DOP_PAYLOAD_MONITOR_P_EXIT), cn_mk_pid(fz_peer_pid(z, z->peer)),
                               cn_term_copy(&e[2]), cn_term_copy(&e[1])),
                   res, true);
      } else { /* refused: {31, ReqId, From, Flags, Reason} */
        send_terms(z,
                   cn_mk_tuple(5, cn_mk_int(DOP_SPAWN_REPLY), cn_term_copy(&e[1]), cn_term_copy(&e[2]), cn_mk_int(0),
                               fz_gen(z, 2)),
                   NULL, false);
      }
      return;
    case DOP_MONITOR_P: /* {19, From, To, Ref} -> {21, To, From, Ref, Reason} */
      if (ar != 4) break;
      send_terms(z,
                 cn_mk_tuple(5, cn_mk_int(DOP_MONITOR_P_EXIT), cn_term_copy(&e[2]), cn_term_copy(&e[1]),
                             cn_term_copy(&e[3]), fz_gen(z, 1)),
                 NULL, false);
      return;
    case DOP_LINK: /* {1, From, To} -> {3, To, From, Reason} */
      if (ar != 3) break;
      send_terms(z, cn_mk_tuple(4, cn_mk_int(DOP_EXIT), cn_term_copy(&e[2]), cn_term_copy(&e[1]), fz_gen(z, 1)), NULL,
                 false);
      return;
    case DOP_UNLINK_ID: /* {35, Id, From, To} -> {36, Id, To, From} */
      if (ar != 4) break;
      send_terms(
          z,
          cn_mk_tuple(4, cn_mk_int(DOP_UNLINK_ID_ACK), cn_term_copy(&e[1]), cn_term_copy(&e[3]), cn_term_copy(&e[2])),
          NULL, false);
      return;
    default: break;
    }
  }
}

void fz_send_raw(fz *z) {
  size_t want = u8(z), got;
  const uint8_t *p = fuzz_take(&z->in, want, &got);
  if (fz_logging()) fprintf(stderr, "raw: %zu bytes\n", got);
  uint8_t hdr[4];
  cn_set32(hdr, (uint32_t)got);
  if (u8(z) & 1) conn_test_feed(z->n, z->npeer, hdr, 4); /* framed garbage, else the bytes as they are */
  conn_test_feed(z->n, z->npeer, p, got);
}
