/* node_gen.c: fuzz_node's term generator: atoms, pids and refs a peer may use (extreme names, the node's processes,
 * what the node sent) and terms of every type, shaped as the node's handlers match them. */
#include "fuzz_node.h"

#define MAX_DEPTH 6

/* Atoms the handlers match on, and names they serve (first element of tuples, requests, keys). */
/* clang-format off */
static const char *const DICT[] = {
    "$gen_call", "$gen_cast", "$puppet", "ok", "error", "true", "false", "undefined", "nil", "infinity", "normal",
    "kill", "shutdown", "noproc", "noconnection", "killed", "EXIT", "DOWN", "alias", "link", "unlink", "monitor",
    "demonitor", "exit", "exit_signal", "trap_exit", "send", "send_big", "call", "cast", "rpc", "erpc", "unalias",
    "ping", "put", "get", "noreply", "is_auth", "features_request", "io_request", "put_chars", "get_line",
    "echo", "cnode_kv", "cnode_ctl", "net_kernel", "rex", "global_name_server", "global", "cnode_demo", "puppet",
    "execute_call", "erlang", "nodes", "node", "is_process_alive", "Elixir.Process", "alive?", "spawn", "reply",
    "yes", "success_only", "error_only", "nodes", "start_kv", "stats",
    /* global */
    "init_connect", "init_connect_ack", "lock_is_set", "exchange", "resolved", "new_nodes", "in_sync",
    "cancel_connect", "remove_connection", "prepare_shutdown", "whereis", "lost_connection", "register",
    "register_ext", "unregister", "set_lock", "del_lock", "get_known", "get_synced", "get_protocol_version",
    "get_names_ext", "sync", "lock_set", "his_the_locker", "cancel", "no_fun", "add_to_known",
    "remove_from_known", "insert", "delete", "global_whereis", "global_send", "global_register",
    "global_unregister", "global_sync", "global_set_lock", "global_del_lock", "global_trans", "default",
    "node_type", "$cn_whereis", "$cn_registrar", "nodeup", "nodedown", "$cn_tick", "$cn_new_nodes",
    /* delta_crdt, merkle_map, Horde */
    "diff", "get_diff", "ack_diff", "set_neighbours", "operation", "bulk_operation", "add", "remove", "read",
    "root_hash", "__struct__", "Elixir.DeltaCrdt.CausalCrdt.Diff", "Elixir.MerkleMap.MerkleTree.Diff",
    "Elixir.MerkleMap.MerkleTree", "Elixir.DeltaCrdt.AWLWWMap", "Elixir.Horde.DynamicSupervisor.Member",
    "continuation", "dots", "originator", "from", "to", "trees", "keys", "tree", "value", "member",
    "member_node_info", "key", "registry", "process", "name", "status", "alive", "dead", "shutting_down",
    "members", "count", "set_members", "update_value", "lookup", "crdt_update", "proxy_operation",
    "start_child", "terminate_child", "which_children", "count_children", "wait_for_quorum", "get_telemetry",
    "horde_shutting_down", "id", "start", "restart", "permanent", "transient", "temporary", "type", "worker",
    "supervisor", "modules", "brutal_kill", "process_redistribution", "name_conflict", "cnode",
    "Elixir.CNode.Demo.Counter", "Elixir.FuzzReg", "Elixir.FuzzReg.Crdt", "Elixir.FuzzSup",
    "Elixir.FuzzSup.Crdt", "Elixir.FuzzSup.ProcessesSupervisor", "FuzzReg", "FuzzSup", "crdt_start",
    "crdt_set_neighbours", "crdt_put", "crdt_delete", "crdt_read", "crdt_root", "crdt_stats", "sync_interval",
    "max_sync_size", "horde_register", "horde_unregister", "horde_lookup", "horde_members",
    "horde_sup_start_child", "horde_sup_which_children", "horde_sup_count", "$hc_link", "$hc_stop", "$hc_kill",
};
/* clang-format on */
#define NDICT (sizeof DICT / sizeof DICT[0])

/* ---- Atoms, pids, refs ------------------------------------------------------------------------------------- */

const cn_atom *fz_dict_atom(fz *z) { return cn_atoms_get(z->tab, DICT[u8(z) % NDICT]); }

/* count characters of 1, 2, 3 or 4 bytes (up to 1,020 bytes), maybe with an '@' part: the atoms a peer may use. */
const cn_atom *fz_extreme_atom(fz *z, bool node) {
  static const char *const CH[] = {"a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
  const char *ch = CH[u8(z) % 4];
  size_t count = u8(z), w = strlen(ch);
  char buf[1100];
  size_t k = 0;
  for (size_t i = 0; i < count; i++, k += w) memcpy(buf + k, ch, w);
  if (node && count >= 2) { /* alive@host within 255 characters: host 127.0.0.1 fails fast (no EPMD there) */
    size_t cut = count > 245 ? 245 : count;
    k = cut * w;
    memcpy(buf + k, "@127.0.0.1", 10);
    k += 10;
  }
  const cn_atom *a = cn_atoms_intern(z->tab, buf, k);
  return a ? a : cn_atoms_get(z->tab, "fz_atom");
}

const cn_atom *fz_node_atom(fz *z) {
  uint8_t k = u8(z) % 6;
  if (k == 0) return z->me;
  if (k <= 2) return z->peer;
  return z->third[k - 3];
}

/* The i-th process of the node (the process table changes as processes start and end). */
bool fz_local_pid(fz *z, size_t i, cn_pid *out) {
  size_t count = HASH_COUNT(z->n->procs);
  if (!count) return false;
  size_t k = i % count;
  cn_proc *p = z->n->procs;
  while (k--) p = p->hh.next;
  *out = p->pid;
  return true;
}

cn_pid fz_peer_pid(fz *z, const cn_atom *node) {
  cn_pid p = {.node = node, .id = u8(z) % 8, .serial = 0, .creation = z->peer_creation};
  if (u8(z) % 4 == 0) {
    p.id = (uint32_t)u16(z) << 16 | u16(z); /* V4_NC: ids over 15 bits, serial too */
    p.serial = u8(z);
    p.creation = (uint32_t)u16(z);
  }
  return p;
}

cn_pid fz_pick_pid(fz *z) {
  cn_pid p;
  switch (u8(z) % 8) {
  case 0:
  case 1:
  case 2:
    if (fz_local_pid(z, u8(z), &p)) return p;
    break;
  case 3:
    if (z->npids) return z->pids[u8(z) % z->npids];
    break;
  case 4: return fz_peer_pid(z, fz_node_atom(z));
  case 5: { /* a node's pid that does not exist: an id past every process */
    p = z->probe;
    p.id += 1 + u8(z);
    return p;
  }
  case 6: /* the newest process: what the peer's last request started */
    if (fz_local_pid(z, HASH_COUNT(z->n->procs) - 1, &p)) return p;
    break;
  default: break;
  }
  return fz_peer_pid(z, z->peer);
}

cn_ref fz_pick_ref(fz *z) {
  uint8_t k = u8(z) % 4;
  if (k == 0 && z->nrefs) return z->refs[u8(z) % z->nrefs];
  cn_ref r = {.node = k == 1 ? z->me : k == 2 ? fz_node_atom(z) : z->peer, .creation = z->peer_creation, .len = 3};
  if (r.node == z->me) r.creation = cn_node_creation(z->n);
  r.len = 1 + u8(z) % 5;
  for (uint32_t i = 0; i < r.len; i++) r.n[i] = u8(z);
  if (k == 0 && z->nrefs) r = z->refs[0];
  return r;
}

/* A registered name of the node, or another atom. */
const cn_atom *fz_pick_name(fz *z) {
  uint8_t k = u8(z);
  size_t count = HASH_COUNT(z->n->names);
  if (k % 8 < 6 && count) {
    cn_name *e = z->n->names;
    for (size_t i = (k / 8) % count; i--;) e = e->hh.next;
    return cn_atoms_get(z->tab, e->name->name);
  }
  return k % 8 == 6 ? fz_dict_atom(z) : fz_extreme_atom(z, false);
}

/* ---- Terms ----------------------------------------------------------------------------------------------- */

static cn_term *gen_list(fz *z, int depth, size_t len, bool improper) {
  cn_term *e[8];
  if (len > 8) len = 8;
  for (size_t i = 0; i < len; i++) e[i] = fz_gen(z, depth + 1);
  return cn_mk_listv(len, e, improper ? fz_gen(z, depth + 1) : NULL);
}

static cn_term *gen_tuple(fz *z, int depth, size_t arity) {
  cn_term *e[8];
  if (arity > 8) arity = 8;
  for (size_t i = 0; i < arity; i++) e[i] = fz_gen(z, depth + 1);
  return cn_mk_tuplev(arity, e);
}

/* {Pid, Tag}: a gen_server caller with a plain or an alias tag ([alias | Ref]). */
cn_term *fz_gen_from(fz *z) {
  cn_pid p = u8(z) % 4 ? fz_peer_pid(z, z->peer) : fz_pick_pid(z);
  cn_term *tag = cn_mk_ref(fz_pick_ref(z));
  if (u8(z) % 3 == 0) tag = cn_mk_listv(1, (cn_term *[]){cn_mk_atom(cn_atoms_get(z->tab, "alias"))}, tag);
  return cn_mk_tuple(2, cn_mk_pid(p), tag);
}

cn_term *fz_gen_struct(fz *z, int depth, const char *name, const char *const *keys, size_t nkeys) {
  cn_term *kv[16];
  size_t k = 0;
  kv[k++] = cn_mk_atom(cn_atoms_get(z->tab, "__struct__"));
  kv[k++] = cn_mk_atom(cn_atoms_get(z->tab, name));
  for (size_t i = 0; i < nkeys && k < 16; i++) {
    if (u8(z) % 8 == 0) continue; /* a key missing */
    kv[k++] = cn_mk_atom(cn_atoms_get(z->tab, keys[i]));
    kv[k++] = fz_gen(z, depth + 1);
  }
  return cn_mk_map(k / 2, kv);
}

/* How many values t holds, counting up to limit. */
size_t fz_term_size(const cn_term *t, size_t limit) {
  size_t n = 1;
  const cn_term *e = NULL;
  size_t k = 0;
  if (t->type == CN_TUPLE) e = t->v.tuple.e, k = t->v.tuple.arity;
  else if (t->type == CN_LIST) e = t->v.list.e, k = t->v.list.len;
  else if (t->type == CN_MAP) e = t->v.map.kv, k = 2 * (size_t)t->v.map.size;
  for (size_t i = 0; i < k && n < limit; i++) n += fz_term_size(&e[i], limit - n);
  if (t->type == CN_LIST && t->v.list.tail && n < limit) n += fz_term_size(t->v.list.tail, limit - n);
  return n;
}

/* A term the node sent, if it is not large: sent back inside new messages, big ones grew with every round trip
 * (10 KB to 317 KB frames within one input, 3 s of copying and CRDT syncs under ASan: a libFuzzer timeout). */
cn_term *fz_gen_seen(fz *z) {
  if (!z->nseen) return cn_mk_nil();
  const cn_term *t = z->seen[u8(z) % z->nseen];
  return fz_term_size(t, 2049) <= 2048 ? cn_term_copy(t) : cn_mk_nil();
}

/* A version vector or dots value: a map of node ids to small counters. */
cn_term *fz_gen_vv(fz *z) {
  cn_term *kv[8];
  size_t n = u8(z) % 4;
  for (size_t i = 0; i < n; i++) {
    kv[2 * i] = cn_mk_int(u8(z));
    kv[2 * i + 1] = cn_mk_int(u8(z));
  }
  return cn_mk_map(n, kv);
}

cn_term *fz_gen_spec(fz *z) {
  int depth = 2;
  static const char *const SPEC[] = {"id", "start", "cnode", "restart", "shutdown", "type", "modules"};
  cn_term *kv[14];
  size_t k2 = 0;
  for (size_t i = 0; i < 7; i++) {
    if (i > 1 && u8(z) % 2) continue;
    if (i == 2) { /* cnode => true: a C child, which only members on C nodes run */
      kv[k2++] = cn_mk_atom(cn_atoms_get(z->tab, "cnode"));
      kv[k2++] = cn_mk_atom(cn_atoms_get(z->tab, u8(z) % 4 ? "true" : "false"));
      continue;
    }
    kv[k2++] = cn_mk_atom(cn_atoms_get(z->tab, SPEC[i]));
    kv[k2++] = i == 1 && u8(z) % 4 ? cn_mk_tuple(3, cn_mk_atom(cn_atoms_get(z->tab, "Elixir.CNode.Demo.Counter")),
                                                 cn_mk_atom(fz_dict_atom(z)), gen_list(z, depth, u8(z) % 3, false))
                                   : fz_gen(z, depth + 1);
  }
  return cn_mk_map(k2 / 2, kv);
}

cn_term *fz_gen(fz *z, int depth) {
  if (depth >= MAX_DEPTH || !z->nodes || !fuzz_left(&z->in)) return u8(z) & 1 ? cn_mk_nil() : cn_mk_int(u8(z));
  z->nodes--;
  uint8_t k = u8(z);
  switch (k % 32) {
  case 0: return cn_mk_int((int8_t)u8(z));
  case 1: return cn_mk_int((int32_t)((uint32_t)u16(z) << 16 | u16(z)));
  case 2: {
    uint8_t mag[20];
    size_t n = u8(z) % 21;
    for (size_t i = 0; i < n; i++) mag[i] = u8(z);
    return cn_mk_big(u8(z) & 1, mag, n);
  }
  case 3:
  case 4:
  case 5: return cn_mk_atom(fz_dict_atom(z));
  case 6: return cn_mk_atom(fz_extreme_atom(z, u8(z) & 1));
  case 7: return cn_mk_atom(fz_node_atom(z));
  case 8:
  case 9: return cn_mk_pid(fz_pick_pid(z));
  case 10: return cn_mk_ref(fz_pick_ref(z));
  case 11:
  case 12: return gen_tuple(z, depth, u8(z) % 6);
  case 13: return gen_list(z, depth, u8(z) % 5, u8(z) % 8 == 0);
  case 14: {
    cn_term *kv[8];
    size_t n = u8(z) % 4;
    for (size_t i = 0; i < 2 * n; i++) kv[i] = fz_gen(z, depth + 1);
    return cn_mk_map(n, kv);
  }
  case 15: {
    size_t got;
    const uint8_t *p = fuzz_take(&z->in, u8(z) % 16, &got);
    return cn_mk_binary(p, got);
  }
  case 16: return cn_mk_nil();
  case 17: {
    union {
      uint64_t u;
      double d;
    } v = {.u = (uint64_t)u16(z) << 48 | (uint64_t)u16(z) << 16};
    return cn_mk_float(v.d == v.d ? v.d : 0.5); /* NaN is no Erlang float */
  }
  case 18:
  case 19: return fz_gen_seen(z);
  case 20:
  case 21: { /* {Tag, ...}: the shape nearly every handler matches on first */
    size_t arity = 1 + u8(z) % 5;
    cn_term *e[6];
    e[0] = cn_mk_atom(fz_dict_atom(z));
    for (size_t i = 1; i < arity; i++) e[i] = fz_gen(z, depth + 1);
    return cn_mk_tuplev(arity, e);
  }
  case 22: /* {'$gen_call', {Pid, Tag}, Req} */
    return cn_mk_tuple(3, cn_mk_atom(cn_atoms_get(z->tab, "$gen_call")), fz_gen_from(z), fz_gen(z, depth + 1));
  case 23: {
    static const char *const DIFF[] = {"continuation", "dots", "originator", "from", "to"};
    static const char *const CONT[] = {"trees", "keys"};
    static const char *const TREE[] = {"tree"};
    static const char *const DELTA[] = {"dots", "value"};
    static const char *const MEMBER[] = {"name", "status"};
    switch (u8(z) % 6) {
    case 0: return fz_gen_struct(z, depth, "Elixir.DeltaCrdt.CausalCrdt.Diff", DIFF, 5);
    case 1: return fz_gen_struct(z, depth, "Elixir.MerkleMap.MerkleTree.Diff", CONT, 2);
    case 2: return fz_gen_struct(z, depth, "Elixir.MerkleMap.MerkleTree", TREE, 1);
    case 3: return fz_gen_struct(z, depth, "Elixir.DeltaCrdt.AWLWWMap", DELTA, 2);
    case 4: return fz_gen_struct(z, depth, "Elixir.Horde.DynamicSupervisor.Member", MEMBER, 2);
    default: return fz_gen_vv(z);
    }
  }
  case 24: { /* {Name, Node}: member, CRDT address, call target */
    return cn_mk_tuple(2, cn_mk_atom(u8(z) & 1 ? fz_pick_name(z) : fz_dict_atom(z)), cn_mk_atom(fz_node_atom(z)));
  }
  case 25: return cn_mk_port((cn_port){.node = fz_node_atom(z), .id = u8(z), .creation = z->peer_creation});
  case 26: {
    char s[16];
    size_t n = u8(z) % 15;
    for (size_t i = 0; i < n; i++) s[i] = (char)(1 + u8(z) % 255);
    s[n] = 0;
    return cn_mk_string(s);
  }
  case 28: { /* {From, Ref, Cmd}: cnode_ctl's commands */
    /* clang-format off */
    static const char *const CTL[] = {
        "send", "nodes", "start_kv", "stats", "global_whereis", "global_send", "global_register", "global_unregister",
        "global_sync", "global_set_lock", "global_del_lock", "global_trans", "crdt_start", "crdt_set_neighbours",
        "crdt_put", "crdt_delete", "crdt_read", "crdt_root", "crdt_stats", "horde_register", "horde_unregister",
        "horde_lookup", "horde_members", "horde_sup_start_child", "horde_sup_which_children", "horde_sup_count"};
    /* clang-format on */
    size_t arity = 1 + u8(z) % 4;
    cn_term *e[5];
    e[0] = cn_mk_atom(cn_atoms_get(z->tab, CTL[u8(z) % (sizeof CTL / sizeof CTL[0])]));
    for (size_t i = 1; i < arity; i++)
      e[i] = u8(z) % 3 ? cn_mk_atom(cn_atoms_get(z->tab, u8(z) & 1 ? FZ_REG : FZ_SUP)) : fz_gen(z, depth + 1);
    cn_term *cmd = arity == 1 && u8(z) & 1 ? e[0] : cn_mk_tuplev(arity, e);
    return cn_mk_tuple(3, cn_mk_pid(fz_peer_pid(z, z->peer)), cn_mk_ref(fz_pick_ref(z)), cmd);
  }
  case 29: /* {'$gen_cast', Req} */
    return cn_mk_tuple(2, cn_mk_atom(cn_atoms_get(z->tab, "$gen_cast")), fz_gen(z, depth + 1));
  case 30: /* a child spec as Horde's start_child carries it */ return fz_gen_spec(z);
  default: /* {'$puppet', Cmd}: what the demo puppet a SPAWN_REQUEST starts obeys */
    return cn_mk_tuple(2, cn_mk_atom(cn_atoms_get(z->tab, "$puppet")), gen_tuple(z, depth, 1 + u8(z) % 5));
  }
}
