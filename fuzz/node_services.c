/* node_services.c: fuzz_node's requests to the node's services: a table of each service's registered name and the
 * requests it answers, as templates in Erlang-like text whose holes the input fills. */
#include "fuzz_node.h"

/* ---- Requests the node's services answer, as templates --------------------------------------------------- */

/* A template is a term in Erlang-like text: atoms (a-z, or '...'), integers, {..}, [..], and holes: $T any term,
 * $P pid, $R ref, $N node atom, $A atom from the dictionary, $I small integer, $S child spec, $M member list,
 * $U the topic "t", $Q the peer's pid, $O the peer's node name, $G global's session tag, $K CRDT key, $D CRDT diff (a Diff map the node sent when there is one), $X term the node sent, $F gen_server
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
                       cn_mk_atom(fz_node_atom(z)));
  return cn_mk_listv(n, e, NULL);
}

static cn_term *crdt_key(fz *z) {
  static const char *const K[] = {"member", "key", "member_node_info", "process", "registry"};
  const char *k = K[u8(z) % 5];
  cn_term *v = k[0] == 'm'
                   ? cn_mk_tuple(2, cn_mk_atom(cn_atoms_get(z->tab, u8(z) & 1 ? "Elixir." FZ_REG : "Elixir." FZ_SUP)),
                                 cn_mk_atom(fz_node_atom(z)))
                   : fz_gen(z, 3);
  return cn_mk_tuple(2, cn_mk_atom(cn_atoms_get(z->tab, k)), v);
}

/* A term the node sent that is a map with a Diff struct, else any term it sent. */
static cn_term *seen_diff(fz *z) {
  for (size_t i = 0, start = u8(z); i < z->nseen; i++) {
    const cn_term *t = z->seen[(start + i) % z->nseen];
    if (t->type == CN_MAP && fz_term_size(t, 2049) <= 2048) return cn_term_copy(t);
  }
  return fz_gen(z, 2);
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
  return fz_gen_seen(z);
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
    case 'P': return cn_mk_pid(fz_pick_pid(z));
    case 'Q': return cn_mk_pid(fz_peer_pid(z, z->peer));
    case 'O': return cn_mk_atom(z->peer);
    case 'G': return global_tag(z);
    case 'R': return cn_mk_ref(fz_pick_ref(z));
    case 'N': return cn_mk_atom(fz_node_atom(z));
    case 'A': return cn_mk_atom(fz_dict_atom(z));
    case 'I': return cn_mk_int(u8(z) % 8);
    case 'S': z->nodes += 40; return fz_gen_spec(z);
    case 'M': return members_list(z);
    case 'K': return crdt_key(z);
    case 'D': return seen_diff(z);
    case 'X': return fz_gen_seen(z);
    case 'F': return fz_gen_from(z);
    case 'V': return fz_gen_vv(z);
    case 'W': {
      static const char *const MEMBER[] = {"name", "status"};
      return fz_gen_struct(z, 1, "Elixir.Horde.DynamicSupervisor.Member", MEMBER, 2);
    }
    case 'U': return cn_mk_binary("t", 1); /* the topic echo is subscribed to */
    case 'B': {
      size_t got;
      const uint8_t *b = fuzz_take(&z->in, u8(z) % 8, &got);
      return cn_mk_binary(b, got);
    }
    default: return fz_gen(z, 2);
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
/* clang-format off */
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
    /* added after the first 12 (see fz_gen_service_msg) */
    {"pg",
     {"i{discover,$Q}", "i{discover,$Q,$T}", "i{join,$Q,$T,$Q}", "i{join,$Q,$T,[$Q,$Q]}", "i{join,$Q,$T,$P}",
      "i{leave,$Q,$Q,[$T]}", "i{leave,$Q,[$Q,$P],[$T,$T]}", "i{sync,$Q,[{$T,[$Q]},{$T,[]}]}", "i{sync,$Q,$T}",
      "i{'DOWN',$R,process,$Q,$T}", "i{nodeup,$N}", "i{nodedown,$N}", "i{nodedown,$O,[]}", "c$T", "i$T"}},
    {"Phoenix.PubSub",
     {"i{discover,$Q}", "i{join,$Q,'Elixir." FZ_PUBSUB ".Adapter',[$Q]}",
      "i{join,$Q,'Elixir." FZ_PUBSUB ".Adapter_2',$Q}", "i{leave,$Q,$Q,['Elixir." FZ_PUBSUB ".Adapter']}",
      "i{sync,$Q,[{'Elixir." FZ_PUBSUB ".Adapter',[$Q]}]}", "i$T"}},
    {"Elixir." FZ_PUBSUB ".Adapter",
     {"i{forward_to_local,$U,$T,'Elixir.Phoenix.PubSub'}", "i{forward_to_local,$B,$T,$A}",
      "i{forward_to_local,$U,$T,$T}", "i$T"}},
    {"Elixir." FZ_PUBSUB ".Adapter_2", {"i{forward_to_local,$U,$T,'Elixir.Phoenix.PubSub'}", "i$T"}},
};
/* clang-format on */
#define NSERVICES (sizeof SERVICES / sizeof SERVICES[0])
#define NSERVICES_V1 12

/* A message for a service: a call ({'$gen_call', From, Req}), a cast or a plain message from a template. */
cn_term *fz_gen_service_msg(fz *z, const cn_atom **to) {
  /* Bytes 0..251 pick one of the first 12 services as they always did (b % 12), so the committed seeds and the
   * regression inputs of test_fuzz_regress.c keep their meaning; 252..255 pick the ones added since (pg, PubSub). */
  size_t b = u8(z), nreq = 0;
  size_t si = b < 256 - 256 % NSERVICES_V1
                  ? b % NSERVICES_V1
                  : NSERVICES_V1 + (b - (256 - 256 % NSERVICES_V1)) % (NSERVICES - NSERVICES_V1);
  while (nreq < 32 && SERVICES[si].req[nreq]) nreq++;
  const char *t = SERVICES[si].req[u8(z) % nreq];
  *to = cn_atoms_get(z->tab, SERVICES[si].name);
  char kind = *t++;
  cn_term *req = tpl(z, &t);
  if (kind == 'c') return cn_mk_tuple(3, cn_mk_atom(cn_atoms_get(z->tab, "$gen_call")), fz_gen_from(z), req);
  if (kind == 'k') return cn_mk_tuple(2, cn_mk_atom(cn_atoms_get(z->tab, "$gen_cast")), req);
  return req;
}
