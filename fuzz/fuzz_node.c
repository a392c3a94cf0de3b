/* fuzz_node.c: the whole node, not a decoder. Each input gets a fresh node with the processes the cnode program
 * runs (echo, cnode_kv, cnode_ctl and the cnode_demo spawn entry points, a Horde registry and a Horde supervisor
 * member, global, net_kernel, rex) and a fake peer whose handshake has completed (conn_test_up: a connection with
 * no socket; the peer's flags and name, up to 255 multibyte characters, chosen by the input). The input is a little
 * program (a grammar) of up to MAX_OPS ops, each built with the project's own term builders and encoder:
 *  - a request to one of the node's services (SERVICES: gen_server calls, casts and plain messages shaped as each
 *    handler matches them: global's protocol, the Horde registry, supervisor and their CRDTs, cnode_ctl, puppets);
 *  - any control message (OPS) with pids of the node's processes, of the peer and of third nodes with extreme
 *    names, refs and pids the node sent, registered names, atoms of 255 1-, 2-, 3- or 4-byte characters;
 *  - an answer to something the node sent (its calls, spawn requests, monitors, links, unlinks);
 *  - raw bytes, time passing (timers), a send from the node to the peer.
 * Each message is framed pass-through, with a normal header, or cut in fragments, now and then damaged or
 * truncated, and fed through the bytes path (process_input, handle_frame). The loop runs between ops; what the
 * node writes to the peer must parse back as frames and is mined for refs, pids and terms later ops send back. At
 * the end the peer disconnects (nodedown), the node must still answer an echo round trip, and it is stopped and
 * freed, so a leak shows on the input that made it and a crash reproduces from its input alone (unless it is in
 * static state of the program's code, as finding 1 in test_fuzz_regress.c was). FUZZ_NODE_LOG=1 prints the
 * node's log and each message sent (FUZZ_NODE_HEX=1 with the frame's bytes). */
#include <string.h>

#include "cn_global.h"
#include "fuzz.h"
#include "horde.h"
#include "horde_app.h"
#include "node_int.h"
#include "workers.h"

#define FZ_REG "FuzzReg"
#define FZ_SUP "FuzzSup"
#define MAX_OPS 48
#define MAX_DEPTH 6
#define MAX_NODES 160 /* term nodes per message */
#define RING 64

/* Atoms the handlers match on, and names they serve (first element of tuples, requests, keys). */
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
#define NDICT (sizeof DICT / sizeof DICT[0])

/* Control messages: operation, then what each slot holds. */
enum { F_FROM = 1, F_TO, F_NAME, F_REF, F_REASON, F_TOKEN, F_SID, F_UID, F_MFA, F_OPTS, F_GL, F_PROC, F_FLAGS, F_RESULT,
       F_UNUSED, F_WATCHED };
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

/* Peer flags an input may turn on, one bit each, on top of what OTP 25 makes mandatory. */
static const uint64_t FLAG_BITS[] = {DFLAG_FRAGMENTS, DFLAG_SPAWN,      DFLAG_ALIAS,     DFLAG_DIST_MONITOR_NAME,
                                     DFLAG_V4_NC,     DFLAG_UNLINK_ID,  DFLAG_PUBLISHED, DFLAG_EXIT_PAYLOAD};

typedef struct fz {
  fuzz_in in;
  cn_node *n;
  cn_atoms *tab; /* the peer's own atoms: the node must intern what it decodes itself */
  const cn_atom *me, *peer, *third[3];
  const cn_atom *npeer; /* the peer's name in the node's table: its connection's key */
  cn_pid probe;
  bool ponged;
  uint64_t flags;
  cn_buf out;            /* what the node wrote to the peer, not parsed yet */
  cn_term *seen[RING];   /* messages and subterms the node sent (owned) */
  cn_ref refs[RING];     /* refs the node sent (monitor refs, call tags, aliases, spawn ids, global tags) */
  cn_pid pids[RING];     /* pids the node sent (its processes, spawned ones) */
  size_t nseen, nrefs, npids, seen_next, ref_next, pid_next;
  cn_pid spawned[8]; /* processes SPAWN_REQUESTs started (SPAWN_REPLY results) */
  size_t nspawned, spawned_next;
  size_t nodes; /* term nodes left for the message being built */
  uint32_t peer_creation;
} fz;

static bool logging(void) {
  static int on = -1;
  if (on < 0) on = getenv("FUZZ_NODE_LOG") != NULL;
  return on;
}

static uint16_t u16(fz *z) { return (uint16_t)(fuzz_u8(&z->in) << 8 | fuzz_u8(&z->in)); }
static uint8_t u8(fz *z) { return fuzz_u8(&z->in); }

/* ---- Atoms, pids, refs ------------------------------------------------------------------------------------- */

static const cn_atom *dict_atom(fz *z) { return cn_atoms_get(z->tab, DICT[u8(z) % NDICT]); }

/* count characters of 1, 2, 3 or 4 bytes (up to 1,020 bytes), maybe with an '@' part: the atoms a peer may use. */
static const cn_atom *extreme_atom(fz *z, bool node) {
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

static const cn_atom *node_atom(fz *z) {
  uint8_t k = u8(z) % 6;
  if (k == 0) return z->me;
  if (k <= 2) return z->peer;
  return z->third[k - 3];
}

/* The i-th process of the node (the process table changes as processes start and end). */
static bool local_pid(fz *z, size_t i, cn_pid *out) {
  size_t count = HASH_COUNT(z->n->procs);
  if (!count) return false;
  size_t k = i % count;
  cn_proc *p = z->n->procs;
  while (k--) p = p->hh.next;
  *out = p->pid;
  return true;
}

static cn_pid peer_pid(fz *z, const cn_atom *node) {
  cn_pid p = {.node = node, .id = u8(z) % 8, .serial = 0, .creation = z->peer_creation};
  if (u8(z) % 4 == 0) {
    p.id = (uint32_t)u16(z) << 16 | u16(z); /* V4_NC: ids over 15 bits, serial too */
    p.serial = u8(z);
    p.creation = (uint32_t)u16(z);
  }
  return p;
}

static cn_pid pick_pid(fz *z) {
  cn_pid p;
  switch (u8(z) % 8) {
  case 0:
  case 1:
  case 2:
    if (local_pid(z, u8(z), &p)) return p;
    break;
  case 3:
    if (z->npids) return z->pids[u8(z) % z->npids];
    break;
  case 4:
    return peer_pid(z, node_atom(z));
  case 5: { /* a node's pid that does not exist: an id past every process */
    p = z->probe;
    p.id += 1 + u8(z);
    return p;
  }
  case 6: /* the newest process: what the peer's last request started */
    if (local_pid(z, HASH_COUNT(z->n->procs) - 1, &p)) return p;
    break;
  default:
    break;
  }
  return peer_pid(z, z->peer);
}

static cn_ref pick_ref(fz *z) {
  uint8_t k = u8(z) % 4;
  if (k == 0 && z->nrefs) return z->refs[u8(z) % z->nrefs];
  cn_ref r = {.node = k == 1 ? z->me : k == 2 ? node_atom(z) : z->peer, .creation = z->peer_creation, .len = 3};
  if (r.node == z->me) r.creation = cn_node_creation(z->n);
  r.len = 1 + u8(z) % 5;
  for (uint32_t i = 0; i < r.len; i++) r.n[i] = u8(z);
  if (k == 0 && z->nrefs) r = z->refs[0];
  return r;
}

/* A registered name of the node, or another atom. */
static const cn_atom *pick_name(fz *z) {
  uint8_t k = u8(z);
  size_t count = HASH_COUNT(z->n->names);
  if (k % 8 < 6 && count) {
    cn_name *e = z->n->names;
    for (size_t i = (k / 8) % count; i--;) e = e->hh.next;
    return cn_atoms_get(z->tab, e->name->name);
  }
  return k % 8 == 6 ? dict_atom(z) : extreme_atom(z, false);
}

/* ---- Terms ----------------------------------------------------------------------------------------------- */

static cn_term *gen(fz *z, int depth);

static cn_term *gen_list(fz *z, int depth, size_t len, bool improper) {
  cn_term *e[8];
  if (len > 8) len = 8;
  for (size_t i = 0; i < len; i++) e[i] = gen(z, depth + 1);
  return cn_mk_listv(len, e, improper ? gen(z, depth + 1) : NULL);
}

static cn_term *gen_tuple(fz *z, int depth, size_t arity) {
  cn_term *e[8];
  if (arity > 8) arity = 8;
  for (size_t i = 0; i < arity; i++) e[i] = gen(z, depth + 1);
  return cn_mk_tuplev(arity, e);
}

/* {Pid, Tag}: a gen_server caller with a plain or an alias tag ([alias | Ref]). */
static cn_term *gen_from(fz *z) {
  cn_pid p = u8(z) % 4 ? peer_pid(z, z->peer) : pick_pid(z);
  cn_term *tag = cn_mk_ref(pick_ref(z));
  if (u8(z) % 3 == 0) tag = cn_mk_listv(1, (cn_term *[]){cn_mk_atom(cn_atoms_get(z->tab, "alias"))}, tag);
  return cn_mk_tuple(2, cn_mk_pid(p), tag);
}

static cn_term *gen_struct(fz *z, int depth, const char *name, const char *const *keys, size_t nkeys) {
  cn_term *kv[16];
  size_t k = 0;
  kv[k++] = cn_mk_atom(cn_atoms_get(z->tab, "__struct__"));
  kv[k++] = cn_mk_atom(cn_atoms_get(z->tab, name));
  for (size_t i = 0; i < nkeys && k < 16; i++) {
    if (u8(z) % 8 == 0) continue; /* a key missing */
    kv[k++] = cn_mk_atom(cn_atoms_get(z->tab, keys[i]));
    kv[k++] = gen(z, depth + 1);
  }
  return cn_mk_map(k / 2, kv);
}

/* How many values t holds, counting up to limit. */
static size_t term_size(const cn_term *t, size_t limit) {
  size_t n = 1;
  const cn_term *e = NULL;
  size_t k = 0;
  if (t->type == CN_TUPLE) e = t->v.tuple.e, k = t->v.tuple.arity;
  else if (t->type == CN_LIST) e = t->v.list.e, k = t->v.list.len;
  else if (t->type == CN_MAP) e = t->v.map.kv, k = 2 * (size_t)t->v.map.size;
  for (size_t i = 0; i < k && n < limit; i++) n += term_size(&e[i], limit - n);
  if (t->type == CN_LIST && t->v.list.tail && n < limit) n += term_size(t->v.list.tail, limit - n);
  return n;
}

/* A term the node sent, if it is not large: sent back inside new messages, big ones grew with every round trip
 * (10 KB to 317 KB frames within one input, 3 s of copying and CRDT syncs under ASan: a libFuzzer timeout). */
static cn_term *gen_seen(fz *z) {
  if (!z->nseen) return cn_mk_nil();
  const cn_term *t = z->seen[u8(z) % z->nseen];
  return term_size(t, 2049) <= 2048 ? cn_term_copy(t) : cn_mk_nil();
}

/* A version vector or dots value: a map of node ids to small counters. */
static cn_term *gen_vv(fz *z) {
  cn_term *kv[8];
  size_t n = u8(z) % 4;
  for (size_t i = 0; i < n; i++) {
    kv[2 * i] = cn_mk_int(u8(z));
    kv[2 * i + 1] = cn_mk_int(u8(z));
  }
  return cn_mk_map(n, kv);
}

static cn_term *gen_spec(fz *z) {
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
                                                 cn_mk_atom(dict_atom(z)), gen_list(z, depth, u8(z) % 3, false))
                                   : gen(z, depth + 1);
  }
  return cn_mk_map(k2 / 2, kv);
}

static cn_term *gen(fz *z, int depth) {
  if (depth >= MAX_DEPTH || !z->nodes || !fuzz_left(&z->in)) return u8(z) & 1 ? cn_mk_nil() : cn_mk_int(u8(z));
  z->nodes--;
  uint8_t k = u8(z);
  switch (k % 32) {
  case 0:
    return cn_mk_int((int8_t)u8(z));
  case 1:
    return cn_mk_int((int32_t)((uint32_t)u16(z) << 16 | u16(z)));
  case 2: {
    uint8_t mag[20];
    size_t n = u8(z) % 21;
    for (size_t i = 0; i < n; i++) mag[i] = u8(z);
    return cn_mk_big(u8(z) & 1, mag, n);
  }
  case 3:
  case 4:
  case 5:
    return cn_mk_atom(dict_atom(z));
  case 6:
    return cn_mk_atom(extreme_atom(z, u8(z) & 1));
  case 7:
    return cn_mk_atom(node_atom(z));
  case 8:
  case 9:
    return cn_mk_pid(pick_pid(z));
  case 10:
    return cn_mk_ref(pick_ref(z));
  case 11:
  case 12:
    return gen_tuple(z, depth, u8(z) % 6);
  case 13:
    return gen_list(z, depth, u8(z) % 5, u8(z) % 8 == 0);
  case 14: {
    cn_term *kv[8];
    size_t n = u8(z) % 4;
    for (size_t i = 0; i < 2 * n; i++) kv[i] = gen(z, depth + 1);
    return cn_mk_map(n, kv);
  }
  case 15: {
    size_t got;
    const uint8_t *p = fuzz_take(&z->in, u8(z) % 16, &got);
    return cn_mk_binary(p, got);
  }
  case 16:
    return cn_mk_nil();
  case 17: {
    union {
      uint64_t u;
      double d;
    } v = {.u = (uint64_t)u16(z) << 48 | (uint64_t)u16(z) << 16};
    return cn_mk_float(v.d == v.d ? v.d : 0.5); /* NaN is no Erlang float */
  }
  case 18:
  case 19:
    return gen_seen(z);
  case 20:
  case 21: { /* {Tag, ...}: the shape nearly every handler matches on first */
    size_t arity = 1 + u8(z) % 5;
    cn_term *e[6];
    e[0] = cn_mk_atom(dict_atom(z));
    for (size_t i = 1; i < arity; i++) e[i] = gen(z, depth + 1);
    return cn_mk_tuplev(arity, e);
  }
  case 22: /* {'$gen_call', {Pid, Tag}, Req} */
    return cn_mk_tuple(3, cn_mk_atom(cn_atoms_get(z->tab, "$gen_call")), gen_from(z), gen(z, depth + 1));
  case 23: {
    static const char *const DIFF[] = {"continuation", "dots", "originator", "from", "to"};
    static const char *const CONT[] = {"trees", "keys"};
    static const char *const TREE[] = {"tree"};
    static const char *const DELTA[] = {"dots", "value"};
    static const char *const MEMBER[] = {"name", "status"};
    switch (u8(z) % 6) {
    case 0: return gen_struct(z, depth, "Elixir.DeltaCrdt.CausalCrdt.Diff", DIFF, 5);
    case 1: return gen_struct(z, depth, "Elixir.MerkleMap.MerkleTree.Diff", CONT, 2);
    case 2: return gen_struct(z, depth, "Elixir.MerkleMap.MerkleTree", TREE, 1);
    case 3: return gen_struct(z, depth, "Elixir.DeltaCrdt.AWLWWMap", DELTA, 2);
    case 4: return gen_struct(z, depth, "Elixir.Horde.DynamicSupervisor.Member", MEMBER, 2);
    default: return gen_vv(z);
    }
  }
  case 24: { /* {Name, Node}: member, CRDT address, call target */
    return cn_mk_tuple(2, cn_mk_atom(u8(z) & 1 ? pick_name(z) : dict_atom(z)), cn_mk_atom(node_atom(z)));
  }
  case 25:
    return cn_mk_port((cn_port){.node = node_atom(z), .id = u8(z), .creation = z->peer_creation});
  case 26: {
    char s[16];
    size_t n = u8(z) % 15;
    for (size_t i = 0; i < n; i++) s[i] = (char)(1 + u8(z) % 255);
    s[n] = 0;
    return cn_mk_string(s);
  }
  case 28: { /* {From, Ref, Cmd}: cnode_ctl's commands */
    static const char *const CTL[] = {
        "send", "nodes", "start_kv", "stats", "global_whereis", "global_send", "global_register", "global_unregister",
        "global_sync", "global_set_lock", "global_del_lock", "global_trans", "crdt_start", "crdt_set_neighbours",
        "crdt_put", "crdt_delete", "crdt_read", "crdt_root", "crdt_stats", "horde_register", "horde_unregister",
        "horde_lookup", "horde_members", "horde_sup_start_child", "horde_sup_which_children", "horde_sup_count"};
    size_t arity = 1 + u8(z) % 4;
    cn_term *e[5];
    e[0] = cn_mk_atom(cn_atoms_get(z->tab, CTL[u8(z) % (sizeof CTL / sizeof CTL[0])]));
    for (size_t i = 1; i < arity; i++) e[i] = u8(z) % 3 ? cn_mk_atom(cn_atoms_get(z->tab, u8(z) & 1 ? FZ_REG : FZ_SUP)) : gen(z, depth + 1);
    cn_term *cmd = arity == 1 && u8(z) & 1 ? e[0] : cn_mk_tuplev(arity, e);
    return cn_mk_tuple(3, cn_mk_pid(peer_pid(z, z->peer)), cn_mk_ref(pick_ref(z)), cmd);
  }
  case 29: /* {'$gen_cast', Req} */
    return cn_mk_tuple(2, cn_mk_atom(cn_atoms_get(z->tab, "$gen_cast")), gen(z, depth + 1));
  case 30: /* a child spec as Horde's start_child carries it */
    return gen_spec(z);
  default: /* {'$puppet', Cmd}: what the demo puppet a SPAWN_REQUEST starts obeys */
    return cn_mk_tuple(2, cn_mk_atom(cn_atoms_get(z->tab, "$puppet")), gen_tuple(z, depth, 1 + u8(z) % 5));
  }
}

/* ---- Requests the node's services answer, as templates --------------------------------------------------- */

/* A template is a term in Erlang-like text: atoms (a-z, or '...'), integers, {..}, [..], and holes: $T any term,
 * $P pid, $R ref, $N node atom, $A atom from the dictionary, $I small integer, $S child spec, $M member list,
 * $Q the peer's pid, $O the peer's node name, $G global's session tag, $K CRDT key, $D CRDT diff (a Diff map the node sent when there is one), $X term the node sent, $F gen_server
 * From ({Pid, Tag}), $B binary, $V version vector, $W a Horde supervisor Member struct. */
static cn_term *tpl(fz *z, const char **s);

static cn_term *tpl_seq(fz *z, const char **s, char close, cn_term **e, size_t *n) {
  *n = 0;
  while (**s && **s != close) {
    if (**s == ',') {
      (*s)++;
      continue;
    }
    cn_term *t = tpl(z, s);
    if (*n < 8) e[(*n)++] = t;
    else cn_term_free(t);
  }
  if (**s) (*s)++;
  return NULL;
}

static cn_term *members_list(fz *z) {
  cn_term *e[4];
  size_t n = u8(z) % 4;
  for (size_t i = 0; i < n; i++)
    e[i] = cn_mk_tuple(2, cn_mk_atom(cn_atoms_get(z->tab, u8(z) & 1 ? "Elixir." FZ_REG : "Elixir." FZ_SUP)),
                       cn_mk_atom(node_atom(z)));
  return cn_mk_listv(n, e, NULL);
}

static cn_term *crdt_key(fz *z) {
  static const char *const K[] = {"member", "key", "member_node_info", "process", "registry"};
  const char *k = K[u8(z) % 5];
  cn_term *v = k[0] == 'm' ? cn_mk_tuple(2, cn_mk_atom(cn_atoms_get(z->tab, u8(z) & 1 ? "Elixir." FZ_REG : "Elixir." FZ_SUP)),
                                         cn_mk_atom(node_atom(z)))
                           : gen(z, 3);
  return cn_mk_tuple(2, cn_mk_atom(cn_atoms_get(z->tab, k)), v);
}

/* A term the node sent that is a map with a Diff struct, else any term it sent. */
static cn_term *seen_diff(fz *z) {
  for (size_t i = 0, start = u8(z); i < z->nseen; i++) {
    const cn_term *t = z->seen[(start + i) % z->nseen];
    if (t->type == CN_MAP && term_size(t, 2049) <= 2048) return cn_term_copy(t);
  }
  return gen(z, 2);
}

/* The session tag of global's last init_connect to the peer ({init_connect, {Vsn, Tag}, Node, Msg}): what its
 * lock_is_set, exchange, resolved and cancel_connect must carry back. */
static cn_term *global_tag(fz *z) {
  for (size_t k = 0; k < z->nseen; k++) { /* newest first */
    const cn_term *t = z->seen[(z->seen_next + RING - 1 - k) % RING];
    const cn_term *v = cn_tuple_elem(t, 4, 1);
    if (v && cn_is_atom(cn_tuple_elem(t, 4, 0), "init_connect") && v->type == CN_TUPLE && v->v.tuple.arity >= 2)
      return cn_term_copy(&v->v.tuple.e[1]);
  }
  return gen_seen(z);
}

static cn_term *tpl(fz *z, const char **s) {
  const char *p = *s;
  if (*p == '{' || *p == '[') {
    char close = *p == '{' ? '}' : ']';
    cn_term *e[8];
    size_t n;
    *s = p + 1;
    tpl_seq(z, s, close, e, &n);
    return close == '}' ? cn_mk_tuplev(n, e) : cn_mk_listv(n, e, NULL);
  }
  if (*p == '$') {
    *s = p + 2;
    switch (p[1]) {
    case 'P': return cn_mk_pid(pick_pid(z));
    case 'Q': return cn_mk_pid(peer_pid(z, z->peer));
    case 'O': return cn_mk_atom(z->peer);
    case 'G': return global_tag(z);
    case 'R': return cn_mk_ref(pick_ref(z));
    case 'N': return cn_mk_atom(node_atom(z));
    case 'A': return cn_mk_atom(dict_atom(z));
    case 'I': return cn_mk_int(u8(z) % 8);
    case 'S': z->nodes += 40; return gen_spec(z);
    case 'M': return members_list(z);
    case 'K': return crdt_key(z);
    case 'D': return seen_diff(z);
    case 'X': return gen_seen(z);
    case 'F': return gen_from(z);
    case 'V': return gen_vv(z);
    case 'W': {
      static const char *const MEMBER[] = {"name", "status"};
      return gen_struct(z, 1, "Elixir.Horde.DynamicSupervisor.Member", MEMBER, 2);
    }
    case 'B': {
      size_t got;
      const uint8_t *b = fuzz_take(&z->in, u8(z) % 8, &got);
      return cn_mk_binary(b, got);
    }
    default: return gen(z, 2);
    }
  }
  if ((*p >= '0' && *p <= '9') || *p == '-') {
    char *end;
    long v = strtol(p, &end, 10);
    *s = end;
    return cn_mk_int(v);
  }
  char name[64];
  size_t k = 0;
  if (*p == '\'') {
    for (p++; *p && *p != '\'' && k < 63; p++) name[k++] = *p;
    if (*p) p++;
  } else {
    for (; *p && *p != ',' && *p != '}' && *p != ']' && k < 63; p++) name[k++] = *p;
  }
  *s = p;
  return cn_mk_atom(cn_atoms_intern(z->tab, name, k));
}

/* Each service: its registered name and what it answers: c: a gen_server call, k: a cast, i: a plain message. */
static const struct {
  const char *name;
  const char *const req[32];
} SERVICES[] = {
    {"global_name_server",
     {"c{register,$T,$P,$T}", "c{register,$A,$P,{global,random_exit_name,[]}}", "c{unregister,$T}",
      "c{register_ext,$T,$P,$T,$N}", "c{set_lock,{$T,$P}}", "c{set_lock,{global,$P}}", "c{del_lock,{$T,$P}}",
      "cget_known", "cget_synced", "cget_protocol_version", "cget_names_ext", "c{sync,[$N]}", "c{$A,$T}",
      "k{init_connect,{$I,$R},$N,$T}", "k{init_connect,{6,$R},$O,{locker,no_longer_a_pid,[],$Q}}",
      "i{lock_is_set,$O,$G,$T}", "i{exchange,$O,[{$A,$P,{global,random_exit_name,[]}}],[],$G}",
      "i{resolved,$O,[{$A,$P}],[$N],[],[],$G}", "i{new_nodes,$O,$T,[{insert,{$A,$P,$T}}],[$N],$T}",
      "i{in_sync,$O,true}", "i{cancel_connect,$O,$G}", "i{init_connect_ack,$O,$G,$X}", "i{prepare_shutdown,$P,$R}",
      "i{whereis,$T,$F}", "i{$A,$O,$T}", "k{lock_set,$Q,true,$T}", "k{lock_set,$Q,false,$T,$G}"}},
    {"Elixir." FZ_REG,
     {"cmembers", "ccount", "c{set_members,$M}", "c{register,$T,$T,$P}", "c{unregister,$T,$P}",
      "c{update_value,$T,$P,$T}", "c{lookup,$T}", "i{crdt_update,[{add,$K,$T}]}", "i{crdt_update,[{remove,$K}]}",
      "i{crdt_update,[{add,{key,$T},{{'Elixir.FuzzReg',$N},$P,$T}},{add,{member,{'Elixir.FuzzReg',$N}},1}]}",
      "i{'EXIT',$P,$T}", "i{'$hc_link',$P}", "i$A"}},
    {"Elixir." FZ_SUP,
     {"c{start_child,$S}", "c{terminate_child,$P}", "c{set_members,$M}", "cmembers", "cwhich_children",
      "ccount_children", "cwait_for_quorum", "cget_telemetry", "chorde_shutting_down",
      "i{proxy_operation,{start_child,$S},$F}", "i{proxy_operation,{start_child,$S},$F,$I}",
      "i{proxy_operation,{terminate_child,$P},$F,$I}", "i{proxy_operation,$T,$F}",
      "i{crdt_update,[{add,{member_node_info,{'Elixir.FuzzSup',$N}},$W}]}",
      "i{crdt_update,[{add,{process,$I},{{'Elixir.FuzzSup',$N},$S,$P}}]}",
      "i{crdt_update,[{add,{process,$I},{nil,$S}}]}", "i{crdt_update,[{add,{member,{'Elixir.FuzzSup',$N}},1}]}",
      "i{crdt_update,[{remove,$K}]}", "i{'DOWN',$R,process,$T,$T}", "i{'EXIT',$P,$T}", "i$A"}},
    {"Elixir." FZ_SUP ".ProcessesSupervisor", {"cwhich_children", "ccount_children", "c$A"}},
    {"Elixir." FZ_REG ".Crdt",
     {"cread", "croot_hash", "cstats", "c{read,[$K]}", "c{operation,{add,[$K,$T]}}", "c{operation,{remove,[$K]}}",
      "c{bulk_operation,[{add,[$K,$T]},{remove,[$K]}]}", "isync", "i{diff,$D}", "i{diff,$D,[$K]}",
      "i{get_diff,$D,[$K]}", "i{ack_diff,$T}", "i{set_neighbours,[{'Elixir.FuzzReg.Crdt',$N}]}",
      "i{'DOWN',$R,process,$T,$T}"}},
    {"Elixir." FZ_SUP ".Crdt",
     {"cread", "c{operation,{add,[$K,$T]}}", "isync", "i{diff,$D}", "i{diff,$D,[$K]}", "i{get_diff,$D,[$K]}",
      "i{set_neighbours,[{'Elixir.FuzzSup.Crdt',$N}]}"}},
    {"cnode_kv", {"c{put,$T,$T}", "c{get,$T}", "c{exit,$T}", "cnoreply", "c$T"}},
    {"echo", {"i{$P,$T}", "c$T"}},
    {"net_kernel", {"c{is_auth,$N}", "c$T"}},
    {"rex", {"i{$P,features_request}", "c{call,$A,$A,[$T],$P}", "c{call,erlang,node,[],user}"}},
    {"cnode_ctl",
     {"i{$Q,$R,{global_whereis,$T}}", "i{$Q,$R,{global_send,$T,$T}}", "i{$Q,$R,{global_register,$A,$P}}",
      "i{$Q,$R,{global_unregister,$A}}", "i{$Q,$R,{global_sync}}", "i{$Q,$R,{global_set_lock,{$A,$Q},[$N],$I}}",
      "i{$Q,$R,{global_set_lock,{$A,$Q},default,-1}}", "i{$Q,$R,{global_del_lock,{$A,$Q},default}}",
      "i{$Q,$R,{global_trans,{$A,$Q},[$N],$I}}", "i{$Q,$R,{send,$P,$T}}", "i{$Q,$R,{send,{$A,$N},$T}}",
      "i{$Q,$R,nodes}", "i{$Q,$R,{start_kv,$A}}", "i{$Q,$R,stats}", "i{$Q,$R,{crdt_start,fz1,[{sync_interval,$I}]}}",
      "i{$Q,$R,{crdt_start,$A,[]}}", "i{$Q,$R,{crdt_put,fz1,$T,$T}}", "i{$Q,$R,{crdt_delete,fz1,$T}}",
      "i{$Q,$R,{crdt_read,fz1}}", "i{$Q,$R,{crdt_set_neighbours,fz1,[{fz1,$N}]}}", "i{$Q,$R,{crdt_root,fz1}}",
      "i{$Q,$R,{crdt_stats,fz1}}", "i{$Q,$R,{horde_register,'" FZ_REG "',$T,$T}}",
      "i{$Q,$R,{horde_unregister,'" FZ_REG "',$T}}", "i{$Q,$R,{horde_lookup,'" FZ_REG "',$T}}",
      "i{$Q,$R,{horde_members,'" FZ_REG "'}}", "i{$Q,$R,{horde_sup_start_child,'" FZ_SUP "',$S}}",
      "i{$Q,$R,{horde_sup_which_children,'" FZ_SUP "'}}", "i{$Q,$R,{horde_sup_count,'" FZ_SUP "'}}",
      "i{$Q,$R,{$A,$T}}"}},
    /* not a name: a process a SPAWN_REQUEST of cnode_demo:puppet/1 started (or any pid the node sent) */
    {"*puppet",
     {"i{'$puppet',{link,$P}}", "i{'$puppet',{unlink,$P}}", "i{'$puppet',{monitor,$P}}",
      "i{'$puppet',{monitor,$A}}", "i{'$puppet',{monitor,{$A,$N}}}", "i{'$puppet',{demonitor,$R}}",
      "i{'$puppet',{exit,$T}}", "i{'$puppet',{exit_signal,$P,$T}}", "i{'$puppet',{trap_exit,true}}",
      "i{'$puppet',{trap_exit,false}}", "i{'$puppet',{send,$P,$T}}", "i{'$puppet',{send,{$A,$N},$T}}",
      "i{'$puppet',{send,$R,$T}}", "i{'$puppet',{send_big,$P,$I}}", "i{'$puppet',{call,$P,$T,$I}}",
      "i{'$puppet',{call,{$A,$N},$T,1000}}", "i{'$puppet',{call,$A,$T,$I}}", "i{'$puppet',{cast,$P,$T}}",
      "i{'$puppet',{rpc,$N,$A,$A,[$T]}}", "i{'$puppet',{erpc,$N,$A,$A,[$T]}}", "i{'$puppet',alias}",
      "i{'$puppet',{unalias,$R}}", "i{'$puppet',ping}", "i{'$puppet',{$A,$T}}", "i$T"}},
};
#define NSERVICES (sizeof SERVICES / sizeof SERVICES[0])

/* A message for a service: a call ({'$gen_call', From, Req}), a cast or a plain message from a template. */
static cn_term *gen_service_msg(fz *z, const cn_atom **to) {
  size_t si = u8(z) % NSERVICES, nreq = 0;
  while (nreq < 32 && SERVICES[si].req[nreq]) nreq++;
  const char *t = SERVICES[si].req[u8(z) % nreq];
  *to = cn_atoms_get(z->tab, SERVICES[si].name);
  char kind = *t++;
  cn_term *req = tpl(z, &t);
  if (kind == 'c')
    return cn_mk_tuple(3, cn_mk_atom(cn_atoms_get(z->tab, "$gen_call")), gen_from(z), req);
  if (kind == 'k') return cn_mk_tuple(2, cn_mk_atom(cn_atoms_get(z->tab, "$gen_cast")), req);
  return req;
}

/* What SPAWN_REQUEST asks for: the spawn entry points and erpc builtins the node has, or anything. */
static void gen_spawn(fz *z, cn_term **mfa, cn_term **args) {
  cn_term *peer = cn_mk_pid(peer_pid(z, z->peer));
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
    static const char *const BI[][2] = {{"Elixir.Process", "alive?"}, {"erlang", "is_process_alive"},
                                        {"erlang", "node"},           {"erlang", "nodes"}};
    uint8_t b = u8(z) % 4;
    *mfa = cn_mk_tuple(3, cn_mk_atom(cn_atoms_get(z->tab, "erpc")), cn_mk_atom(cn_atoms_get(z->tab, "execute_call")),
                       cn_mk_int(4));
    cn_term *argl = b < 2 ? cn_mk_list(1, cn_mk_pid(pick_pid(z))) : cn_mk_nil();
    *args = cn_mk_list(4, cn_mk_ref(pick_ref(z)), cn_mk_atom(cn_atoms_get(z->tab, BI[b][0])),
                       cn_mk_atom(cn_atoms_get(z->tab, BI[b][1])), argl);
    break;
  }
  default:
    *mfa = cn_mk_tuple(3, gen(z, 1), gen(z, 1), gen(z, 1));
    *args = gen(z, 1);
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
    else if (k == 2) e[i] = cn_mk_tuple(2, cn_mk_atom(cn_atoms_get(z->tab, "reply")),
                                        cn_mk_atom(cn_atoms_get(z->tab, O[3 + u8(z) % 4])));
    else e[i] = gen(z, 2);
  }
  return cn_mk_listv(n, e, NULL);
}

/* The term for one slot of a control message: mostly the right type, now and then anything. */
static cn_term *gen_field(fz *z, uint8_t f, cn_term **mfa_args) {
  if (u8(z) % 32 == 0) return gen(z, 2);
  switch (f) {
  case F_FROM: return cn_mk_pid(u8(z) % 4 ? peer_pid(z, z->peer) : pick_pid(z));
  case F_TO: return cn_mk_pid(pick_pid(z));
  case F_NAME: return cn_mk_atom(pick_name(z));
  case F_REF: return cn_mk_ref(pick_ref(z));
  case F_REASON: return gen(z, 1);
  case F_TOKEN: return gen(z, 3);
  case F_SID: /* a spawn request id: a ref */
    return cn_mk_ref(pick_ref(z));
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
  case F_GL: return cn_mk_pid(u8(z) & 1 ? peer_pid(z, z->peer) : pick_pid(z));
  case F_PROC: return u8(z) & 1 ? cn_mk_pid(pick_pid(z)) : cn_mk_atom(pick_name(z));
  case F_WATCHED: return u8(z) & 1 ? cn_mk_pid(peer_pid(z, z->peer)) : cn_mk_atom(pick_name(z));
  case F_FLAGS: return cn_mk_int(u8(z) % 4);
  case F_RESULT: return u8(z) & 1 ? cn_mk_pid(peer_pid(z, z->peer)) : gen(z, 2);
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
    /* messages and their parts, not every nested tuple, nor big ones (see gen_seen) */
    cn_term *c = depth <= 2 && term_size(t, 2049) <= 2048 ? cn_term_copy(t) : NULL;
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
  default:
    break;
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

static void run(fz *z, int turns) {
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
  if (logging()) {
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
    if (logging()) {
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

static void send_ctl(fz *z) {
  uint8_t sel = u8(z);
  uint8_t oi = sel % NOPS;
  z->nodes = MAX_NODES;
  cn_term *e[8] = {cn_mk_int(OPS[oi].op)};
  cn_term *args = NULL;
  size_t arity = 1;
  for (size_t i = 0; i < 6 && OPS[oi].f[i]; i++) e[arity++] = gen_field(z, OPS[oi].f[i], &args);
  cn_term *ctl = cn_mk_tuplev(arity, e);
  cn_term *pay = NULL;
  if (OPS[oi].payload) pay = args ? args : gen(z, 0);
  else cn_term_free(args);
  send_terms(z, ctl, pay, OPS[oi].payload);
}

/* A request to one of the node's services, by name (REG_SEND) or by pid (SEND, SEND_SENDER, ALIAS-less). */
static void send_service(fz *z) {
  z->nodes = MAX_NODES;
  const cn_atom *to;
  cn_term *pay = gen_service_msg(z, &to);
  cn_term *from = cn_mk_pid(peer_pid(z, z->peer)), *ctl;
  cn_pid pid;
  uint8_t how = u8(z) % 4;
  if (to->name[0] == '*' && !z->nspawned && u8(z) % 2) { /* no puppet yet: spawn one (cnode_demo:puppet(Peer)) */
    cn_term_free(pay);
    cn_term *ctl2 = cn_mk_tuple(6, cn_mk_int(DOP_SPAWN_REQUEST), cn_mk_ref(pick_ref(z)), cn_term_copy(from),
                                cn_term_copy(from), cn_mk_tuple(3, cn_mk_atom(cn_atoms_get(z->tab, "cnode_demo")),
                                                                cn_mk_atom(cn_atoms_get(z->tab, "puppet")), cn_mk_int(1)),
                                gen_opts(z));
    send_terms(z, ctl2, cn_mk_list(1, from), true);
    return;
  }
  if (to->name[0] == '*') { /* a process by pid: one the peer spawned, else one the node named */
    how = how ? how : 1;
    if (z->nspawned) pid = z->spawned[u8(z) % z->nspawned];
    else if (z->npids) pid = z->pids[u8(z) % z->npids];
    else if (!local_pid(z, u8(z), &pid)) pid = z->probe;
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
static void send_answer(fz *z) {
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
      cn_term *reply = cn_mk_tuple(2, cn_term_copy(tag), gen(z, 1));
      const cn_term *alias = tag->type == CN_LIST && tag->v.list.tail ? tag->v.list.tail : NULL;
      if (alias && alias->type == CN_REF && u8(z) & 1)
        send_terms(z, cn_mk_tuple(3, cn_mk_int(DOP_ALIAS_SEND), cn_mk_pid(peer_pid(z, z->peer)), cn_term_copy(alias)),
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
        cn_term *child = cn_mk_pid(peer_pid(z, z->peer));
        send_terms(z, cn_mk_tuple(5, cn_mk_int(DOP_SPAWN_REPLY), cn_term_copy(&e[1]), cn_term_copy(&e[2]),
                                  cn_mk_int(u8(z) % 4), child), NULL, false);
        cn_term *res = cn_mk_tuple(3, gen(z, 2), cn_mk_atom(cn_atoms_get(z->tab, u8(z) & 1 ? "return" : "error")),
                                   gen(z, 2));
        send_terms(z, cn_mk_tuple(4, cn_mk_int(DOP_PAYLOAD_MONITOR_P_EXIT), cn_mk_pid(peer_pid(z, z->peer)),
                                  cn_term_copy(&e[2]), cn_term_copy(&e[1])), res, true);
      } else { /* refused: {31, ReqId, From, Flags, Reason} */
        send_terms(z, cn_mk_tuple(5, cn_mk_int(DOP_SPAWN_REPLY), cn_term_copy(&e[1]), cn_term_copy(&e[2]),
                                  cn_mk_int(0), gen(z, 2)), NULL, false);
      }
      return;
    case DOP_MONITOR_P: /* {19, From, To, Ref} -> {21, To, From, Ref, Reason} */
      if (ar != 4) break;
      send_terms(z, cn_mk_tuple(5, cn_mk_int(DOP_MONITOR_P_EXIT), cn_term_copy(&e[2]), cn_term_copy(&e[1]),
                                cn_term_copy(&e[3]), gen(z, 1)), NULL, false);
      return;
    case DOP_LINK: /* {1, From, To} -> {3, To, From, Reason} */
      if (ar != 3) break;
      send_terms(z, cn_mk_tuple(4, cn_mk_int(DOP_EXIT), cn_term_copy(&e[2]), cn_term_copy(&e[1]), gen(z, 1)), NULL,
                 false);
      return;
    case DOP_UNLINK_ID: /* {35, Id, From, To} -> {36, Id, To, From} */
      if (ar != 4) break;
      send_terms(z, cn_mk_tuple(4, cn_mk_int(DOP_UNLINK_ID_ACK), cn_term_copy(&e[1]), cn_term_copy(&e[3]),
                                cn_term_copy(&e[2])), NULL, false);
      return;
    default:
      break;
    }
  }
}

static void send_raw(fz *z) {
  size_t want = u8(z), got;
  const uint8_t *p = fuzz_take(&z->in, want, &got);
  if (logging()) fprintf(stderr, "raw: %zu bytes\n", got);
  uint8_t hdr[4];
  cn_set32(hdr, (uint32_t)got);
  if (u8(z) & 1) conn_test_feed(z->n, z->npeer, hdr, 4); /* framed garbage, else the bytes as they are */
  conn_test_feed(z->n, z->npeer, p, got);
}

/* ---- The node ------------------------------------------------------------------------------------------------ */

/* Log lines are formatted (they print peer-given names) and dropped; FUZZ_NODE_LOG=1 prints them. */
static void quiet(cn_node *n, cn_log_level level, const char *msg, void *ctx) {
  (void)n, (void)level, (void)ctx;
  FUZZ_CHECK(msg != NULL && strlen(msg) < (1u << 20));
  if (logging()) fprintf(stderr, "node: %s\n", msg);
}

static void probe(cn_proc *self, const cn_term *msg, void *state) {
  (void)self;
  fz *z = state;
  if (cn_is_atom(msg, "fz_pong")) z->ponged = true;
}

static void on_started(cn_node *n, int status, void *ctx) {
  (void)n;
  *(int *)ctx = status ? status : 1;
}

static int node_up(fz *z) {
  cn_node_opts o;
  memset(&o, 0, sizeof o);
  o.name = "cnode_fz@127.0.0.1"; /* a Horde supervisor member runs only on a node named cnode* */
  o.cookie = "fuzz";
  o.epmd_port = 1; /* nothing listens there: a connection to a third node fails at once */
  o.no_epmd = true;
  o.listen_addr = "127.0.0.1";
  o.max_message_size = (size_t)1 << 20;
  o.log = quiet;
  o.log_level = CN_LOG_DEBUG; /* log lines print peer-given names: format them all */
  int rc, started = 0;
  if ((rc = cn_node_new(&z->n, NULL, &o)) || (rc = cn_global_start(z->n))) return rc;
  if ((rc = workers_start(z->n)) || (rc = cn_node_start(z->n, on_started, &started))) return rc;
  while (!started) uv_run(z->n->loop, UV_RUN_ONCE);
  if (started != 1) return started;
  if ((rc = hreg_start(z->n)) || (rc = hsup_start(z->n)) || (rc = cn_spawn(z->n, probe, z, NULL, &z->probe)))
    return rc;
  z->me = cn_atoms_get(z->tab, cn_node_name(z->n)->name);
  uv_run(z->n->loop, UV_RUN_NOWAIT);
  return 0;
}

/* The node still serves: echo answers a local round trip (unless the input ended echo, which a peer may do). */
static void check_serves(fz *z) {
  cn_pid echo;
  if (cn_whereis(z->n, "echo", &echo)) return;
  /* A fresh probe: the peer may have ended the first one (it is a process like any other). */
  FUZZ_CHECK(cn_spawn(z->n, probe, z, NULL, &z->probe) == 0);
  cn_term *m = cn_mk_tuple(2, cn_mk_pid(z->probe), cn_mk_atomc(z->n, "fz_pong"));
  FUZZ_CHECK(m && cn_send(z->n, NULL, echo, m) == 0);
  cn_term_free(m);
  for (int i = 0; i < 8 && !z->ponged; i++) uv_run(z->n->loop, UV_RUN_NOWAIT);
  if (!z->ponged) {
    cn_proc *e = proc_lookup(z->n, echo), *pr = proc_lookup(z->n, z->probe);
    fprintf(stderr, "echo %p: dead %d suspended %d in_runq %d mq %zu; probe %p: dead %d suspended %d mq %zu\n", (void *)e,
            e ? e->dead : -1, e ? e->suspended : -1, e ? e->in_runq : -1, e ? e->mq_len : 0, (void *)pr,
            pr ? pr->dead : -1, pr ? pr->suspended : -1, pr ? pr->mq_len : 0);
  }
  FUZZ_CHECK(z->ponged);
}

int fuzz_node_one(const uint8_t *data, size_t size) {
  static bool once;
  if (!once) {
    once = true;
    if (hreg_add(FZ_REG) || hsup_add(FZ_SUP)) abort();
  }
  fz z;
  memset(&z, 0, sizeof z);
  z.in = (fuzz_in){.p = data, .len = size};
  if (cn_atoms_new(&z.tab, 0)) return 0;
  int rc = node_up(&z);
  if (rc) {
    fprintf(stderr, "fuzz_node: cannot start the node: %s\n", cn_strerror(rc));
    abort();
  }
  /* The peer: its flags and name (alive parts up to 255 multibyte characters) come from the input. */
  uint8_t fl = u8(&z);
  z.flags = DIST_FLAGS_MANDATORY_25 | DFLAG_DIST_MONITOR | DFLAG_SMALL_ATOM_TAGS;
  for (size_t i = 0; i < sizeof FLAG_BITS / sizeof FLAG_BITS[0]; i++)
    if (!(fl >> i & 1)) z.flags |= FLAG_BITS[i]; /* all on for a zero byte: BEAM's set */
  uint8_t nm = u8(&z);
  const cn_atom *pa = nm % 4 ? cn_atoms_get(z.tab, "peer@127.0.0.1") : extreme_atom(&z, true);
  if (!strchr(pa->name, '@')) pa = cn_atoms_get(z.tab, "peer@127.0.0.1");
  z.peer = pa;
  z.peer_creation = u8(&z) % 2 ? 0x12345678 : u8(&z);
  z.third[0] = cn_atoms_get(z.tab, "third@127.0.0.1");
  z.third[1] = extreme_atom(&z, true);
  z.third[2] = extreme_atom(&z, true);
  const cn_atom *npeer = z.npeer = cn_intern(z.n, pa->name);
  if (npeer && conn_test_up(z.n, npeer, z.flags) == 0) {
    run(&z, 3);
    int reconnects = 0;
    for (int ops = 0; ops < MAX_OPS && fuzz_left(&z.in); ops++) {
      /* A bad frame made the node drop the peer: it connects again, as a BEAM peer would (nodeup again). */
      if (!conn_peer_flags(z.n, npeer) && (reconnects++ == 4 || conn_test_up(z.n, npeer, z.flags))) break;
      uint8_t op = u8(&z);
      switch (op % 16) {
      case 13:
        send_raw(&z);
        break;
      case 6:
      case 7:
        send_answer(&z);
        break;
      case 0:
      case 1:
      case 2:
      case 3:
      case 4:
      case 5:
        send_service(&z);
        break;
      case 14: /* now and then time passes: call timeouts, retries, send_after timers come due */
        if (u8(&z) % 4 == 0) uv_sleep(1 + u8(&z) % 4);
        run(&z, 1 + u8(&z) % 8);
        break;
      case 15: { /* the node sends to the peer on its own (cn_send from no process), amid the traffic */
        z.nodes = MAX_NODES;
        cn_term *m = gen(&z, 1);
        cn_pid to = peer_pid(&z, z.peer);
        to.node = npeer; /* the API routes by the node's own atom */
        if (m) cn_send(z.n, NULL, to, m);
        cn_term_free(m);
        break;
      }
      default:
        send_ctl(&z);
        break;
      }
      run(&z, 2);
    }
    cn_node_disconnect(z.n, npeer);
    run(&z, 4);
  }
  check_serves(&z);
  cn_node_stop(z.n);
  cn_node_run(z.n);
  cn_node_free(z.n);
  cn_buf_free(&z.out);
  for (size_t i = 0; i < z.nseen; i++) cn_term_free(z.seen[i]);
  cn_atoms_free(z.tab);
  return 0;
}

FUZZ_ENTRY(fuzz_node_one)
