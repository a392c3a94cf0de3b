/* registry.c: a Horde.Registry member in C (spec horde-wire.md §1.3, §4): the CRDT 'N.Crdt' (crdt.c) plus the
 * registry process N, playing Horde.RegistryImpl's part: membership keys and neighbours, {key, Key} writes,
 * links to registered processes, conflict exits and clean-up, from the CRDT's {crdt_update, Diffs}. */
#include <stdlib.h>
#include <string.h>

#include "hc_int.h"
#include "horde.h"
#include "hc_rules.h"

/* One registration of the local table (what Horde keeps in its keys ETS table), from the CRDT's diffs. */
typedef struct rent {
  struct rent *next;
  uint32_t h;
  cn_term *key;    /* the user key */
  cn_term *member; /* {N, Node} of the registering member */
  cn_pid pid;
  cn_term *value;
  bool released; /* this member deleted the key itself (unregister, its process ended): not re-asserted */
} rent;

struct cn_horde_registry {
  cn_node *n;
  cn_crdt *crdt; /* NULL once the CRDT ended */
  cn_pid crdt_pid;
  cn_pid pid;
  bool alive; /* the registry process has not ended */
  int refs;   /* the registry process and the CRDT process */
  bool autom; /* members: :auto */
  bool monitoring;
  char name[256];
  const cn_atom *a_name;
  void (*on_stop)(cn_horde_registry *r, void *ctx);
  void *stop_ctx;
  cn_term *self_member; /* {N, node()} */
  cn_term **members;    /* the member set, from {member, M} diffs */
  size_t nmembers;
  rent **b;
  size_t nb, count;
};

/* ---- Small helpers ----------------------------------------------------------------------------------------- */

static cn_term *mk_keyed(cn_node *n, const char *tag, const cn_term *k) {
  return cn_mk_tuple(2, cn_mk_atomc(n, tag), cn_term_copy(k));
}

static bool is_pid(const cn_term *t) { return t && t->type == CN_PID; }
static bool tuple_n(const cn_term *t, uint32_t n) { return t && t->type == CN_TUPLE && t->v.tuple.arity == n; }
static bool proper_list(const cn_term *t) { return t->type == CN_NIL || (t->type == CN_LIST && !t->v.list.tail); }

static void unref(cn_horde_registry *r) {
  if (--r->refs > 0) return;
  for (size_t i = 0; i < r->nb; i++)
    for (rent *e = r->b[i], *nx; e; e = nx) {
      nx = e->next;
      cn_term_free(e->key);
      cn_term_free(e->member);
      cn_term_free(e->value);
      cn_free(e);
    }
  cn_free(r->b);
  for (size_t i = 0; i < r->nmembers; i++) cn_term_free(r->members[i]);
  cn_free(r->members);
  cn_term_free(r->self_member);
  cn_free(r);
}

/* ---- The local table --------------------------------------------------------------------------------------- */

static rent **tab_slot(cn_horde_registry *r, const cn_term *key, uint32_t h) {
  if (!r->nb) return NULL;
  rent **pp = &r->b[h % r->nb];
  int rel = cn_node_otp_release(r->n); /* Horde's keys are map keys of the cluster's release */
  while (*pp && !((*pp)->h == h && cn_term_exact_eq_otp((*pp)->key, key, rel))) pp = &(*pp)->next;
  return pp;
}

static int tab_grow(cn_horde_registry *r) {
  if (r->count < r->nb) return 0;
  size_t nb = r->nb ? r->nb * 2 : 64;
  rent **b = cn_calloc(nb, sizeof *b);
  if (!b) return CN_ENOMEM;
  for (size_t i = 0; i < r->nb; i++)
    for (rent *e = r->b[i], *nx; e; e = nx) {
      nx = e->next;
      e->next = b[e->h % nb];
      b[e->h % nb] = e;
    }
  cn_free(r->b);
  r->b = b;
  r->nb = nb;
  return 0;
}

static void tab_remove(cn_horde_registry *r, const cn_term *key) {
  rent **pp = tab_slot(r, key, hc_key_hash(key));
  if (!pp || !*pp) return;
  rent *e = *pp;
  *pp = e->next;
  cn_term_free(e->key);
  cn_term_free(e->member);
  cn_term_free(e->value);
  cn_free(e);
  r->count--;
}

/* ---- Membership ---------------------------------------------------------------------------------------------- */

static bool member_known(cn_horde_registry *r, const cn_term *m) {
  for (size_t i = 0; i < r->nmembers; i++)
    if (cn_term_exact_eq(r->members[i], m)) return true;
  return false;
}

/* Every member but this one, as its CRDT name tuple {'Name.Crdt', Node}, sent to the CRDT (§1.3). */
static void push_neighbours(cn_horde_registry *r) {
  hc_push_neighbours(r->n, r->crdt, r->members, r->nmembers, r->self_member);
}

/* The members currently in the CRDT (the truth; the local list may lag behind by a crdt_update). */
static bool crdt_has_member(cn_horde_registry *r, const cn_term *m) {
  if (!r->crdt) return false;
  cn_term *k = mk_keyed(r->n, "member", m);
  const cn_term *v = k ? cn_crdt_get(r->crdt, k) : NULL;
  cn_term_free(k);
  return v != NULL;
}

int cn_horde_set_members(cn_horde_registry *r, const cn_term *const *ms, size_t n) {
  return hc_set_members(r->n, r->crdt, r->self_member, ms, n, false);
}

/* members: :auto (hc_auto_members: visible nodes join; a node that went down leaves). */
static void auto_members(cn_horde_registry *r, const cn_atom *down) {
  int rc = hc_auto_members(r->n, r->crdt, r->self_member, false, down);
  if (rc) cn_log(r->n, CN_LOG_WARN, "%s: set_members failed: %s", r->name, cn_strerror(rc));
}

static void on_nodes(cn_node *n, const cn_atom *node, bool up, const char *reason, void *ctx) {
  (void)n, (void)reason;
  cn_horde_registry *r = ctx;
  if (r->alive && r->crdt) auto_members(r, up ? NULL : node);
}

cn_term *cn_horde_members(cn_horde_registry *r) { return hc_list_copy(r->members, r->nmembers); }

/* ---- Registrations ----------------------------------------------------------------------------------------- */

/* {key, Key} => {M, Pid, V} of the CRDT read, or NULL. */
static const cn_term *crdt_entry(cn_horde_registry *r, const cn_term *key) {
  if (!r->crdt) return NULL;
  cn_term *k = mk_keyed(r->n, "key", key);
  const cn_term *v = k ? cn_crdt_get(r->crdt, k) : NULL;
  cn_term_free(k);
  return tuple_n(v, 3) && is_pid(&v->v.tuple.e[1]) ? v : NULL;
}

static bool pid_alive(cn_horde_registry *r, cn_pid p) {
  if (p.node == cn_node_name(r->n)) return cn_is_process_alive(r->n, p);
  return cn_node_is_up(r->n, p.node, CN_NODES_VISIBLE);
}

int cn_horde_lookup(cn_horde_registry *r, const cn_term *key, cn_pid *pid, cn_term **value) {
  if (value) *value = NULL;
  const cn_term *v = crdt_entry(r, key);
  if (!v || !crdt_has_member(r, &v->v.tuple.e[0])) return CN_ENOTFOUND;
  cn_pid p = v->v.tuple.e[1].v.pid;
  if (!pid_alive(r, p)) return CN_ENOTFOUND;
  if (pid) *pid = p;
  if (value && !(*value = cn_term_copy(&v->v.tuple.e[2]))) return CN_ENOMEM;
  return 0;
}

static int put_key(cn_horde_registry *r, cn_pid pid, const cn_term *key, const cn_term *value) {
  cn_term *k = mk_keyed(r->n, "key", key);
  cn_term *v = cn_mk_tuple(3, cn_term_copy(r->self_member), cn_mk_pid(pid), cn_term_copy(value));
  int rc = k && v ? cn_crdt_put(r->crdt, k, v) : CN_ENOMEM;
  cn_term_free(k);
  cn_term_free(v);
  return rc;
}

/* The registry process links to pid in its own context: {'$hc_link', Pid}. */
static int ask_link(cn_horde_registry *r, cn_pid pid) {
  cn_term *m = cn_mk_tuple(2, cn_mk_atomc(r->n, "$hc_link"), cn_mk_pid(pid));
  int rc = m ? cn_send(r->n, NULL, r->pid, m) : CN_ENOMEM;
  cn_term_free(m);
  return rc;
}

/* The register call of §4.2 (no lookup first: that is register/3's part). */
static int do_register(cn_horde_registry *r, cn_pid pid, const cn_term *key, const cn_term *value) {
  if (!r->crdt || !r->alive) return CN_ESTATE;
  int rc = put_key(r, pid, key, value);
  if (!rc) rc = ask_link(r, pid);
  return rc;
}

int cn_horde_register(cn_horde_registry *r, cn_pid pid, const cn_term *key, const cn_term *value, cn_pid *holder) {
  cn_pid h;
  if (!cn_horde_lookup(r, key, &h, NULL)) {
    if (holder) *holder = h;
    return CN_EEXIST;
  }
  return do_register(r, pid, key, value);
}

int cn_horde_unregister(cn_horde_registry *r, cn_pid pid, const cn_term *key) {
  const cn_term *v = crdt_entry(r, key);
  if (!v || !cn_pid_eq(v->v.tuple.e[1].v.pid, pid)) return 0;
  rent **pp = tab_slot(r, key, hc_key_hash(key));
  if (pp && *pp) (*pp)->released = true;
  cn_term *k = mk_keyed(r->n, "key", key);
  int rc = k ? cn_crdt_delete(r->crdt, k) : CN_ENOMEM;
  cn_term_free(k);
  return rc;
}

int cn_horde_update_value(cn_horde_registry *r, cn_pid pid, const cn_term *key, const cn_term *value) {
  const cn_term *v = crdt_entry(r, key);
  if (!v || !cn_pid_eq(v->v.tuple.e[1].v.pid, pid)) return CN_ENOTFOUND;
  return put_key(r, pid, key, value);
}

size_t cn_horde_count(cn_horde_registry *r) { return r->count; }

void cn_horde_foreach(cn_horde_registry *r, cn_horde_each_fn fn, void *ctx) {
  for (size_t i = 0; i < r->nb; i++)
    for (rent *e = r->b[i]; e; e = e->next)
      if (!fn(e->key, e->pid, e->value, e->member, ctx)) return;
}

/* True when the CRDT's current value of {key, K} still names pid. The local table can lag the CRDT: when a
 * registration lost a conflict (and its process is being killed for it), the CRDT may already hold the winner,
 * and deleting the key then would remove the winner's registration everywhere. */
static bool crdt_holds(cn_horde_registry *r, const cn_term *key, const cn_pid *pid) {
  cn_term *k = mk_keyed(r->n, "key", key);
  const cn_term *v = k ? cn_crdt_get(r->crdt, k) : NULL;
  bool holds = v && tuple_n(v, 3) && is_pid(&v->v.tuple.e[1]) && cn_pid_eq(v->v.tuple.e[1].v.pid, *pid);
  cn_term_free(k);
  return holds;
}

/* Removes from the CRDT every key of the local table that pid holds (its process ended). A removed member's keys
 * are not deleted here (Horde does): after a healed partition each side's deletions of the other's keys would
 * reach the other and remove live registrations; lookups ignore keys of non-members instead. */
static void drop_keys(cn_horde_registry *r, cn_pid pid) {
  if (!r->crdt) return;
  size_t n = 0, cap = 0;
  cn_term **ks = NULL;
  for (size_t i = 0; i < r->nb; i++)
    for (rent *e = r->b[i]; e; e = e->next) {
      if (!cn_pid_eq(e->pid, pid) || !crdt_holds(r, e->key, &pid)) continue;
      e->released = true;
      if (n == cap) {
        size_t ncap = cap ? 2 * cap : 8;
        cn_term **nk = cn_realloc(ks, ncap * sizeof *nk);
        if (!nk) goto gathered; /* out of memory: the keys gathered so far go; cap stays the size of ks */
        ks = nk;
        cap = ncap;
      }
      ks[n++] = mk_keyed(r->n, "key", e->key);
    }
gathered:
  /* deleting sends crdt_update messages; the local table changes when they arrive */
  for (size_t i = 0; i < n; i++) {
    if (ks[i]) cn_crdt_delete(r->crdt, ks[i]);
    cn_term_free(ks[i]);
  }
  cn_free(ks);
}

/* ---- Diffs from the CRDT (Horde's process_diff) ----------------------------------------------------------- */

/* Sets the local table's entry of key (e, or a new one when NULL; h its hash) to v ({Member, Pid, Value}); the
 * entry, or NULL on OOM. */
static rent *tab_set(cn_horde_registry *r, const cn_term *key, const cn_term *v, rent *e, uint32_t h) {
  if (!e) {
    if (tab_grow(r)) return NULL;
    if (!(e = cn_calloc(1, sizeof *e))) return NULL;
    e->h = h;
    if (!(e->key = cn_term_copy(key))) {
      cn_free(e);
      return NULL;
    }
    e->next = r->b[h % r->nb];
    r->b[h % r->nb] = e;
    r->count++;
  }
  cn_term *m = cn_term_copy(&v->v.tuple.e[0]), *val = cn_term_copy(&v->v.tuple.e[2]);
  if (!m || !val) {
    cn_term_free(m);
    cn_term_free(val);
    return e;
  }
  cn_term_free(e->member);
  cn_term_free(e->value);
  e->member = m;
  e->value = val;
  e->pid = v->v.tuple.e[1].v.pid;
  e->released = false;
  return e;
}

static bool reg_value(const cn_term *v) { return tuple_n(v, 3) && is_pid(&v->v.tuple.e[1]); }

/* The CRDT holds key => v, a {Member, Pid, Value} of this member for a pid of this node that is not alive. */
static bool own_stale(cn_horde_registry *r, const cn_term *key, const cn_term *v) {
  cn_pid p = v->v.tuple.e[1].v.pid;
  return p.node == cn_node_name(r->n) && cn_term_exact_eq(&v->v.tuple.e[0], r->self_member) &&
         !cn_is_process_alive(r->n, p) && r->crdt && crdt_holds(r, key, &p);
}

static void on_key_add(cn_horde_registry *r, cn_proc *self, const cn_term *key, const cn_term *v) {
  if (!reg_value(v)) {
    cn_log(r->n, CN_LOG_WARN, "%s: ignored a {key, _} value that is not {Member, Pid, Value}", r->name);
    return;
  }
  cn_pid p2 = v->v.tuple.e[1].v.pid;
  if (own_stale(r, key, v)) {
    /* this member's key for a process it no longer runs (an earlier incarnation of this node, whose keys peers no
     * longer delete): it goes, as the process's death would have removed it */
    cn_term *k = mk_keyed(r->n, "key", key);
    if (k && r->crdt) cn_crdt_delete(r->crdt, k);
    cn_term_free(k);
    return;
  }
  uint32_t h = hc_key_hash(key);
  rent **pp = tab_slot(r, key, h);
  rent *e = pp ? *pp : NULL;
  if (e && !cn_pid_eq(e->pid, p2)) {
    /* the loser: removed here, and sent {name_conflict, {Key, V1}, N, P2} (§4.2) */
    cn_term *why =
        cn_mk_tuple(4, cn_mk_atomc(r->n, "name_conflict"), cn_mk_tuple(2, cn_term_copy(key), cn_term_copy(e->value)),
                    cn_mk_atom(r->a_name), cn_mk_pid(p2));
    if (why) cn_exit(r->n, self, e->pid, why);
    cn_term_free(why);
  }
  tab_set(r, key, v, e, h);
}

/* A member left: its entries leave the local table (count, foreach), not the CRDT (see drop_keys). */
static void tab_drop_member(cn_horde_registry *r, const cn_term *m) {
  for (size_t i = 0; i < r->nb; i++)
    for (rent **pp = &r->b[i]; *pp;) {
      rent *e = *pp;
      if (!e->member || !cn_term_exact_eq(e->member, m)) {
        pp = &e->next;
        continue;
      }
      *pp = e->next;
      cn_term_free(e->key);
      cn_term_free(e->member);
      cn_term_free(e->value);
      cn_free(e);
      r->count--;
    }
}

/* A member (re)joined: the CRDT's keys it holds (kept there while it was away) come back into the local table. */
typedef struct restore {
  cn_horde_registry *r;
  const cn_term *m;
} restore;

static bool restore_one(const cn_term *k, const cn_term *v, void *ctx) {
  restore *x = ctx;
  if (!tuple_n(k, 2) || !cn_is_atom(&k->v.tuple.e[0], "key") || !reg_value(v) ||
      !cn_term_exact_eq(&v->v.tuple.e[0], x->m) || own_stale(x->r, &k->v.tuple.e[1], v))
    return true;
  const cn_term *key = &k->v.tuple.e[1];
  uint32_t h = hc_key_hash(key);
  rent **pp = tab_slot(x->r, key, h);
  if (!pp || !*pp) tab_set(x->r, key, v, NULL, h);
  return true;
}

/* Writes {member, M} => 1 again: a member removed by a peer's view of a partition while it is here and connected. */
static void reassert_member(cn_horde_registry *r, const cn_term *m) {
  cn_term *k = mk_keyed(r->n, "member", m), *one = cn_mk_int(1);
  int rc = k && one ? cn_crdt_put(r->crdt, k, one) : CN_ENOMEM;
  cn_term_free(k);
  cn_term_free(one);
  if (rc) cn_log(r->n, CN_LOG_WARN, "%s: could not re-add a member: %s", r->name, cn_strerror(rc));
}

bool hc_reg_member_back(bool autom, bool is_self, bool node_up, bool in_crdt) {
  return autom && !in_crdt && (is_self || node_up);
}

bool hc_reg_key_back(bool released, bool own_member, bool local_alive, bool in_crdt) {
  return !released && own_member && local_alive && !in_crdt;
}

/* {remove, {key, K}}: a key of a live local process that this member did not delete itself (a peer's deletion of
 * this member's keys during a partition, merged at the heal) is written again, unless another pid holds it now. */
static void on_key_remove(cn_horde_registry *r, const cn_term *key) {
  rent **pp = tab_slot(r, key, hc_key_hash(key));
  rent *e = pp ? *pp : NULL;
  if (e && r->crdt && r->alive &&
      hc_reg_key_back(e->released, cn_term_exact_eq(e->member, r->self_member),
                      e->pid.node == cn_node_name(r->n) && cn_is_process_alive(r->n, e->pid),
                      crdt_entry(r, key) != NULL)) {
    cn_log(r->n, CN_LOG_INFO, "%s: re-registered a live process's key a peer removed", r->name);
    if (!put_key(r, e->pid, key, e->value)) return; /* its add diff follows; the table keeps the entry */
  }
  tab_remove(r, key);
}

static void on_member(cn_horde_registry *r, const cn_term *m, bool add) {
  if (!add && r->crdt &&
      hc_reg_member_back(r->autom, cn_term_exact_eq(m, r->self_member),
                         hc_is_member(m) && cn_node_is_up(r->n, m->v.tuple.e[1].v.atom, CN_NODES_VISIBLE),
                         crdt_has_member(r, m))) {
    reassert_member(r, m); /* its add diff follows; the member stays in the list */
    return;
  }
  if (add) {
    if (member_known(r, m)) return;
    cn_term **nm = cn_realloc(r->members, (r->nmembers + 1) * sizeof *nm);
    if (!nm) return;
    r->members = nm;
    if (!(nm[r->nmembers] = cn_term_copy(m))) return;
    r->nmembers++;
    restore x = {r, m};
    if (r->crdt) hc_crdt_each(r->crdt, restore_one, &x);
  } else {
    for (size_t i = 0; i < r->nmembers; i++)
      if (cn_term_exact_eq(r->members[i], m)) {
        cn_term_free(r->members[i]);
        r->members[i] = r->members[--r->nmembers];
        break;
      }
    tab_drop_member(r, m);
  }
  push_neighbours(r);
}

static void on_update(cn_horde_registry *r, cn_proc *self, const cn_term *diffs) {
  if (!proper_list(diffs)) return;
  size_t n = diffs->type == CN_LIST ? diffs->v.list.len : 0;
  for (size_t i = 0; i < n; i++) {
    const cn_term *d = &diffs->v.list.e[i];
    bool add = tuple_n(d, 3) && cn_is_atom(&d->v.tuple.e[0], "add");
    bool rem = tuple_n(d, 2) && cn_is_atom(&d->v.tuple.e[0], "remove");
    if (!add && !rem) continue;
    const cn_term *k = &d->v.tuple.e[1];
    if (!tuple_n(k, 2)) continue;
    const cn_term *kk = &k->v.tuple.e[1];
    if (cn_is_atom(&k->v.tuple.e[0], "key")) {
      if (add) on_key_add(r, self, kk, &d->v.tuple.e[2]);
      else on_key_remove(r, kk);
    } else if (cn_is_atom(&k->v.tuple.e[0], "member")) {
      on_member(r, kk, add);
    }
    /* {registry, MetaKey}: meta, not kept */
  }
}

/* ---- The registry process N --------------------------------------------------------------------------------- */

static cn_term *mk_ok_err(cn_node *n, int rc) {
  return rc ? cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, cn_err_reason(rc))) : cn_mk_atomc(n, "ok");
}

/* A lookup call waiting for the registered process's node to say whether it is alive (§4.3). */
typedef struct alive_wait {
  cn_term *from;
  cn_pid pid;
  cn_term *value;
} alive_wait;

static void alive_done(cn_proc *self, int status, const cn_term *reply, void *ctx) {
  alive_wait *w = ctx;
  if (status != CN_ECLOSED) {
    cn_term *ans = !status && cn_is_atom(reply, "true")
                       ? cn_mk_list(1, cn_mk_tuple(2, cn_mk_pid(w->pid), cn_term_copy(w->value)))
                       : cn_mk_nil();
    if (ans) cn_gen_reply(self, w->from, ans);
    cn_term_free(ans);
  }
  cn_term_free(w->from);
  cn_term_free(w->value);
  cn_free(w);
}

/* Horde's lookup asks the node of a remote pid erpc:call(Node, 'Elixir.Process', 'alive?', [Pid]); this asks
 * erlang:is_process_alive/1, the same answer on every node (BEAM with or without Elixir, C). Takes value; 0
 * when alive_done will answer from, else an error and the caller answers at once. */
static int ask_alive(cn_proc *self, const cn_term *from, cn_pid pid, cn_term *value) {
  alive_wait *w = cn_calloc(1, sizeof *w);
  cn_term *args = cn_mk_list(1, cn_mk_pid(pid));
  int rc = CN_ENOMEM;
  if (w && args && (w->from = cn_term_copy(from))) {
    w->pid = pid;
    w->value = value;
    rc = cn_erpc(self, pid.node, "erlang", "is_process_alive", args, 5000, alive_done, w);
    if (rc) w->value = NULL;
  }
  cn_term_free(args);
  if (rc && w) {
    cn_term_free(w->from);
    cn_free(w);
  }
  return rc;
}

static cn_term *handle_call(cn_proc *self, const cn_term *req, const cn_term *from, void *state) {
  cn_horde_registry *r = state;
  cn_node *n = r->n;
  uint32_t ar = req->type == CN_TUPLE ? req->v.tuple.arity : 0;
  const cn_term *e = ar ? req->v.tuple.e : NULL;
  if (cn_is_atom(req, "members")) return cn_horde_members(r);
  if (cn_is_atom(req, "count")) return cn_mk_int((int64_t)r->count);
  if (ar == 2 && cn_is_atom(&e[0], "set_members") && proper_list(&e[1])) {
    size_t k = e[1].type == CN_LIST ? e[1].v.list.len : 0;
    const cn_term **v = cn_calloc(k + 1, sizeof *v);
    if (!v) return mk_ok_err(n, CN_ENOMEM);
    for (size_t i = 0; i < k; i++) v[i] = &e[1].v.list.e[i];
    int rc = cn_horde_set_members(r, v, k);
    cn_free(v);
    return mk_ok_err(n, rc);
  }
  if (ar == 4 && cn_is_atom(&e[0], "register") && is_pid(&e[3])) {
    int rc = do_register(r, e[3].v.pid, &e[1], &e[2]);
    return rc ? mk_ok_err(n, rc) : cn_mk_tuple(2, cn_mk_atomc(n, "ok"), cn_mk_pid(cn_self(self)));
  }
  if (ar == 3 && cn_is_atom(&e[0], "unregister") && is_pid(&e[2]))
    return mk_ok_err(n, cn_horde_unregister(r, e[2].v.pid, &e[1]));
  if (ar == 4 && cn_is_atom(&e[0], "update_value") && is_pid(&e[2])) {
    int rc = cn_horde_update_value(r, e[2].v.pid, &e[1], &e[3]);
    return rc == CN_ENOTFOUND ? cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, "not_registered"))
                              : mk_ok_err(n, rc);
  }
  if (ar == 2 && cn_is_atom(&e[0], "lookup")) {
    cn_pid p;
    cn_term *v = NULL;
    if (cn_horde_lookup(r, &e[1], &p, &v)) return cn_mk_nil();
    if (p.node != cn_node_name(n)) {
      if (!ask_alive(self, from, p, v)) return NULL; /* alive_done answers */
      cn_term_free(v);                               /* no way to ask: as noconnection, not alive */
      return cn_mk_nil();
    }
    return cn_mk_list(1, cn_mk_tuple(2, cn_mk_pid(p), v));
  }
  return cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, "badarg"));
}

static void ignored(cn_horde_registry *r, const char *what, const cn_term *t) {
  char *txt = cn_term_to_string(t);
  cn_log(r->n, CN_LOG_DEBUG, "%s: ignored %s %.200s", r->name, what, txt ? txt : "?");
  cn_free(txt);
}

static void handle_cast(cn_proc *self, const cn_term *req, void *state) {
  (void)self;
  ignored(state, "cast", req);
}

static void handle_info(cn_proc *self, const cn_term *msg, void *state) {
  cn_horde_registry *r = state;
  uint32_t ar = msg->type == CN_TUPLE ? msg->v.tuple.arity : 0;
  const cn_term *e = ar ? msg->v.tuple.e : NULL;
  if (ar == 2 && cn_is_atom(&e[0], "crdt_update")) {
    on_update(r, self, &e[1]);
  } else if (ar == 2 && cn_is_atom(&e[0], "$hc_link") && is_pid(&e[1])) {
    cn_link(self, e[1].v.pid);
  } else if (ar == 3 && cn_is_atom(&e[0], "EXIT") && is_pid(&e[1])) {
    cn_pid p = e[1].v.pid;
    if (cn_pid_eq(p, r->crdt_pid)) {
      cn_proc_exit(self, &e[2]); /* one_for_all */
      return;
    }
    drop_keys(r, p); /* §4.4: a registered process died */
  } else if (cn_is_atom(msg, "$hc_stop")) {
    cn_term *why = cn_mk_atomc(r->n, "shutdown");
    cn_proc_exit(self, why);
    cn_term_free(why);
  } else {
    ignored(r, "message", msg);
  }
}

static void terminate(cn_proc *self, const cn_term *reason, void *state) {
  (void)self, (void)reason;
  cn_horde_registry *r = state;
  r->alive = false;
  if (r->on_stop) r->on_stop(r, r->stop_ctx);
  if (r->monitoring) cn_node_demonitor_nodes(r->n, on_nodes, r);
  r->monitoring = false;
  if (r->crdt) cn_crdt_stop(r->crdt);
  unref(r);
}

static const cn_gen_server_ops registry_ops = {.handle_call = handle_call,
                                               .handle_cast = handle_cast,
                                               .handle_info = handle_info,
                                               .terminate = terminate,
                                               .trap_exit = true};

static void crdt_stopped(cn_crdt *c, void *ctx) {
  (void)c;
  cn_horde_registry *r = ctx;
  r->crdt = NULL; /* the registry, linked to the CRDT, gets its 'EXIT' and ends too */
  unref(r);
}

int cn_horde_registry_start(cn_node *n, const char *name, const cn_horde_registry_opts *opts, cn_horde_registry **out) {
  if (!name || strlen(name) > 240) return CN_EINVAL;
  cn_horde_registry *r = cn_calloc(1, sizeof *r);
  if (!r) return CN_ENOMEM;
  r->n = n;
  snprintf(r->name, sizeof r->name, "%s", name);
  r->a_name = cn_intern(n, name);
  r->self_member = r->a_name ? cn_mk_tuple(2, cn_mk_atom(r->a_name), cn_mk_atom(cn_node_name(n))) : NULL;
  r->refs = 1; /* until the CRDT runs */
  if (opts) {
    r->on_stop = opts->on_stop;
    r->stop_ctx = opts->ctx;
  }
  if (!r->self_member) {
    unref(r);
    return CN_ENOMEM;
  }
  cn_crdt_opts co = {0};
  if (opts) co = opts->crdt;
  co.on_diffs = NULL;
  co.on_stop = crdt_stopped;
  co.ctx = r;
  int rc = cn_crdt_start(n, name, &co, &r->crdt);
  if (rc) {
    unref(r);
    return rc;
  }
  r->crdt_pid = cn_crdt_pid(r->crdt);
  r->refs = 2; /* the CRDT (crdt_stopped) and the registry process (terminate) */
  r->alive = true;
  if ((rc = cn_gen_server_start(n, name, &registry_ops, r, &r->pid))) {
    /* not started (the name is taken, or no memory): terminate and on_stop do not run */
    r->alive = false;
    r->refs--;
    cn_crdt_stop(r->crdt); /* crdt_stopped frees r */
    return rc;
  }
  cn_crdt_subscribe(r->crdt, r->pid);
  /* the CRDT is the registry's: its death ends the registry (and the registry's ends the CRDT) */
  cn_term *lk = cn_mk_tuple(2, cn_mk_atomc(n, "$hc_link"), cn_mk_pid(cn_crdt_pid(r->crdt)));
  if (lk) cn_send(n, NULL, r->pid, lk);
  cn_term_free(lk);
  if (opts && opts->nmembers) {
    r->autom = false;
    rc = hc_named_members(n, r->crdt, r->self_member, opts->members, opts->nmembers, false);
  } else {
    r->autom = true;
    if (!(rc = cn_node_monitor_nodes(n, on_nodes, r))) r->monitoring = true;
    auto_members(r, NULL);
  }
  if (rc) cn_log(n, CN_LOG_WARN, "%s: membership not set: %s", name, cn_strerror(rc));
  if (out) *out = r;
  return 0;
}

void cn_horde_registry_stop(cn_horde_registry *r) {
  if (!r->alive) return;
  cn_term *m = cn_mk_atomc(r->n, "$hc_stop");
  if (m) cn_send(r->n, NULL, r->pid, m);
  cn_term_free(m);
}

cn_pid cn_horde_registry_pid(const cn_horde_registry *r) { return r->pid; }
cn_crdt *cn_horde_registry_crdt(cn_horde_registry *r) { return r->crdt; }
