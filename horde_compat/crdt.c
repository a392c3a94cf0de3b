/* crdt.c: the delta_crdt 0.6 CausalCrdt process in C: registered as 'N.Crdt', a sync timer, neighbours by
 * name tuple with monitors, the four sync messages of §2.6 in both directions, local writes and on_diffs. */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "hc_int.h"
#include "horde.h"

#define DEPTH 8
#define ROUNDS 32                       /* sync ticks remembered for their deltas (a round lasts a few messages) */
#define TS_BASE (-576460752303423488LL) /* -2^59: where BEAM's monotonic clock starts */

typedef struct nbr {
  cn_term *addr; /* {'M.Crdt', Node} */
  cn_ref mref;
  bool monitored;
  uint64_t round_ns; /* this node's round to it under way (0: none): uv_hrtime when it began or last came back */
  uint64_t gap_ns;   /* the longest wait for a hop or ack_diff of such a round so far */
} nbr;

struct cn_crdt {
  cn_node *n;
  cn_pid pid;
  char name[300];
  hc_ctx hc;
  hc_awlww st;
  hc_merkle mm;
  int64_t node_id;
  cn_crdt_opts o;
  uint64_t t0;
  nbr *nb;
  size_t nnb;
  cn_pid *subs;
  size_t nsubs;
  uint64_t timer; /* the pending cn_send_after of the next :sync (0: none) */
  cn_term *cont0;
  uint64_t cont0_epoch;
  struct {
    cn_term *dots; /* the version vector a sync tick's Diffs carry */
    uint64_t seq;  /* st.seq at that tick */
  } rounds[ROUNDS];
  unsigned next_round;
  /* Peers' first rounds waiting behind a marker ({'$crdt_round', Orig}, sent to itself), one slot per originator
   * while its marker is in the mailbox: see on_first_round. */
  struct held_round {
    cn_term *orig, *diff; /* diff: the newest first round from orig not answered yet (NULL: none) */
  } * held;
  size_t nheld;
  hc_shape_follow shape; /* the peers' MapSet shape, followed under CN_CRDT_MAPSET_AUTO */
  cn_crdt_stats stats;
};

static void bad_message(cn_crdt *c, int rc, const char *what, const cn_term *t);

/* ---- Sending ----------------------------------------------------------------------------------------------- */

static void send_msg(cn_crdt *c, cn_proc *self, const cn_term *dest, const cn_term *msg) {
  if (c->o.count_bytes) {
    cn_buf b = {0};
    if (!cn_term_encode(msg, &b)) c->stats.bytes_sent += b.len + 1;
    cn_buf_free(&b);
  }
  c->stats.msgs_sent++;
  int rc = cn_send_to(c->n, self, dest, msg);
  if (rc) cn_log(c->n, CN_LOG_DEBUG, "%s: send failed: %s", c->name, cn_strerror(rc));
}

static void send_to(cn_crdt *c, cn_proc *self, const cn_term *dest, cn_term *msg) {
  if (!msg) return;
  send_msg(c, self, dest, msg);
  cn_term_free(msg);
}

/* Sends a view built in a (view.c) and frees the arena; CN_ENOMEM when the view is incomplete. */
static int send_view(cn_crdt *c, cn_proc *self, const cn_term *dest, const cn_term *msg, hc_arena *a) {
  int rc = a->oom || !msg ? CN_ENOMEM : 0;
  if (!rc) send_msg(c, self, dest, msg);
  hc_arena_free(a);
  return rc;
}

/* {Tag, Diff}, {Tag, Diff, Keys} as a view: Diff's fields borrowed, Keys (NULL: none) as given. */
static cn_term *diff_view(cn_crdt *c, hc_arena *a, const cn_atom *tag, const cn_term *cont, const cn_term *dots,
                          const cn_term *orig, const cn_term *from, const cn_term *to, const cn_term *keys) {
  const cn_atom *f[] = {c->hc.a_continuation, c->hc.a_dots, c->hc.a_from, c->hc.a_originator, c->hc.a_to};
  cn_term *m = hc_arena_terms(a, 1), *t = m ? hc_v_tuple(a, m, keys ? 3 : 2) : NULL;
  cn_term *v = t ? hc_v_struct(&c->hc, a, &t[1], c->hc.a_diff_mod, 5, f) : NULL;
  if (!v) return NULL;
  hc_v_atom(&t[0], tag);
  hc_v_ref(&v[0], cont), hc_v_ref(&v[2], dots), hc_v_ref(&v[4], from), hc_v_ref(&v[6], orig), hc_v_ref(&v[8], to);
  if (keys) hc_v_ref(&t[2], keys);
  return m;
}

/* ---- Changes ----------------------------------------------------------------------------------------------- */

static bool is_nil(const cn_term *t) { return !t || cn_is_atom(t, "nil"); }

typedef struct change {
  const cn_term *key; /* borrowed from the message or caller */
  uint32_t kh;
  cn_term *old; /* old read value (copy) or NULL */
} change;

/* Someone reads the changes (an on_diffs callback or a subscriber): without one, no old values are copied. */
static bool listened(const cn_crdt *c) { return c->o.on_diffs || c->nsubs; }

/* on_diffs: the read changes of the keys whose raw entries changed. */
static void notify(cn_crdt *c, change *ch, size_t n) {
  if (!n || !listened(c)) return;
  cn_crdt_diff *d = cn_calloc(n + 1, sizeof *d);
  cn_term **items = cn_calloc(n + 1, sizeof *items);
  size_t k = 0;
  for (size_t i = 0; d && items && i < n; i++) {
    hc_kent *e = hc_awlww_find(&c->st, ch[i].key, ch[i].kh);
    const cn_term *nv = e ? hc_read_raw(e->raw) : NULL;
    if (is_nil(ch[i].old) && is_nil(nv)) continue;
    if (!is_nil(ch[i].old) && !is_nil(nv) && cn_term_exact_eq_otp(ch[i].old, nv, c->hc.otp_release)) continue;
    d[k].key = ch[i].key;
    d[k].value = is_nil(nv) ? NULL : nv;
    if (!c->nsubs) { /* the callback's only: it reads the borrowed terms */
      k++;
      continue;
    }
    items[k] = is_nil(nv) ? cn_mk_tuple(2, cn_mk_atomc(c->n, "remove"), cn_term_copy(ch[i].key))
                          : cn_mk_tuple(3, cn_mk_atomc(c->n, "add"), cn_term_copy(ch[i].key), cn_term_copy(nv));
    k++;
  }
  if (d && items) {
    if (c->o.on_diffs) c->o.on_diffs(c, d, k, c->o.ctx);
    if (c->nsubs) {
      cn_term *msg = cn_mk_tuple(2, cn_mk_atomc(c->n, "crdt_update"), cn_mk_listv(k, items, NULL));
      for (size_t i = 0; msg && i < c->nsubs; i++) cn_send(c->n, NULL, c->subs[i], msg);
      cn_term_free(msg);
      k = 0;
    }
  }
  for (size_t i = 0; items && i < k; i++) cn_term_free(items[i]);
  cn_free(items);
  cn_free(d);
}

/* Stores new raw entries for key (raw taken; NULL deletes) in the state; the Merkle map points at the state's key
 * and entries (borrows), so it forgets a deleted key before the state frees it. */
static int store(cn_crdt *c, const cn_term *key, uint32_t kh, cn_term *raw) {
  if (!raw) {
    hc_merkle_delete(&c->mm, key, kh);
    return hc_awlww_set(&c->st, key, kh, NULL);
  }
  int rc = hc_awlww_set(&c->st, key, kh, raw);
  hc_kent *e = rc ? NULL : hc_awlww_find(&c->st, key, kh);
  if (e && (rc = hc_merkle_put(&c->mm, e->key, kh, e->raw))) /* only a new key can fail: out of both */
    hc_awlww_set(&c->st, key, kh, NULL);
  return rc;
}

static int64_t now_ts(cn_crdt *c) {
  if (c->o.clock_ns) return c->o.clock_ns(c->o.ctx);
  return TS_BASE + (int64_t)(uv_hrtime() - c->t0);
}

/* Keys and entry keys are equal as under =:= of the release the node follows now (learned after the CRDT may have
 * started): refreshed at every entry point that looks keys up. */
static void follow_release(cn_crdt *c) {
  int rel = cn_node_otp_release(c->n);
  c->hc.otp_release = c->st.otp_release = c->mm.otp_release = rel;
}

int cn_crdt_put(cn_crdt *c, const cn_term *key, const cn_term *value) {
  follow_release(c);
  uint32_t kh = hc_key_hash(key);
  hc_kent *e = hc_awlww_find(&c->st, key, kh);
  change ch = {key, kh, e && listened(c) ? cn_term_copy(hc_read_raw(e->raw)) : NULL};
  cn_term *raw;
  int rc = hc_awlww_add(&c->hc, &c->st, c->node_id, key, kh, value, now_ts(c), &raw);
  if (!rc) rc = store(c, key, kh, raw);
  if (!rc) notify(c, &ch, 1);
  cn_term_free(ch.old);
  return rc;
}

int cn_crdt_delete(cn_crdt *c, const cn_term *key) {
  follow_release(c);
  uint32_t kh = hc_key_hash(key);
  hc_kent *e = hc_awlww_find(&c->st, key, kh);
  int rc = hc_awlww_remove(&c->st, key, kh);
  if (rc || !e) return rc;
  change ch = {key, kh, cn_term_copy(hc_read_raw(e->raw))};
  rc = store(c, key, kh, NULL);
  if (!rc) notify(c, &ch, 1);
  cn_term_free(ch.old);
  return rc;
}

/* A delta's value map indexed by key hash, so a delta of many keys joins in n log n. */
typedef struct dix {
  uint32_t kh;
  uint32_t i;
} dix;
static int dix_cmp(const void *a, const void *b) {
  uint32_t x = ((const dix *)a)->kh, y = ((const dix *)b)->kh;
  return x < y ? -1 : x > y;
}

static const cn_term *dix_find(const cn_term *map, const dix *ix, size_t n, const cn_term *key, uint32_t kh, int rel) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (ix[mid].kh < kh) lo = mid + 1;
    else hi = mid;
  }
  for (; lo < n && ix[lo].kh == kh; lo++)
    if (cn_term_exact_eq_otp(&map->v.map.kv[2 * ix[lo].i], key, rel)) return &map->v.map.kv[2 * ix[lo].i + 1];
  return NULL;
}

/* Join(State, Delta, Keys) (§2.4), then the Merkle map and on_diffs. */
static int apply_delta(cn_crdt *c, const cn_term *dvv_t, const cn_term *dval, const cn_term *keys) {
  hc_vv dvv, old;
  int rc = hc_vv_parse(dvv_t, &dvv);
  if (rc) return rc;
  size_t nk = keys->type == CN_LIST ? keys->v.list.len : 0, nd = dval->v.map.size;
  dix *ix = cn_malloc((nd + 1) * sizeof *ix);
  change *ch = cn_calloc(nk + 1, sizeof *ch);
  if (!ix || !ch || (rc = hc_vv_copy(&old, &c->st.vv))) {
    cn_free(ix);
    cn_free(ch);
    hc_vv_free(&dvv);
    return rc ? rc : CN_ENOMEM;
  }
  for (size_t i = 0; i < nd; i++) ix[i] = (dix){hc_key_hash(&dval->v.map.kv[2 * i]), (uint32_t)i};
  qsort(ix, nd, sizeof *ix, dix_cmp);
  rc = hc_vv_union(&c->st.vv, &dvv);
  size_t nch = 0;
  for (size_t i = 0; !rc && i < nk; i++) {
    const cn_term *key = &keys->v.list.e[i];
    uint32_t kh = hc_key_hash(key);
    hc_kent *e = hc_awlww_find(&c->st, key, kh);
    const cn_term *e1 = e ? e->raw : NULL, *e2 = dix_find(dval, ix, nd, key, kh, c->hc.otp_release);
    cn_term *r;
    if ((rc = hc_join_entries(&c->hc, e1, e2, &old, &c->st.gone, &dvv, &r))) break;
    if ((!e1 && !r) || (e1 && r && cn_term_exact_eq(e1, r))) {
      cn_term_free(r);
      continue;
    }
    ch[nch] = (change){key, kh, e1 && listened(c) ? cn_term_copy(hc_read_raw(e1)) : NULL};
    nch++;
    rc = store(c, key, kh, r);
  }
  c->stats.joins++;
  /* the received vector may cover dots this node kept out of its own (gone), or new entries fill a gap below them */
  if (!rc && c->st.gone.n) rc = hc_awlww_settle(&c->st, nch > 0);
  if (nch) notify(c, ch, nch);
  for (size_t i = 0; i < nch; i++) cn_term_free(ch[i].old);
  cn_free(ch);
  cn_free(ix);
  hc_vv_free(&old);
  hc_vv_free(&dvv);
  return rc;
}

/* Appends key and its entry e (NULL: none here) to ks/es once (marks of generation gen). */
static void add_key(const cn_term **ks, hc_kent **es, size_t *n, hc_kent *e, const cn_term *key, uint32_t gen) {
  if (e) {
    if (e->mark == gen) return;
    e->mark = gen;
  }
  es[*n] = e;
  ks[(*n)++] = key;
}

/* The delta of a sync round for Keys: {diff, #AWLWWMap{dots => Now, value => maps:with(Keys', Values)}, Keys'}, as a
 * view in a (the entries are not copied: they are encoded from where they are held) written to out.
 * delta_crdt sends the version vector of the round's start (pitfall 19) with the current values, and either way
 * of being inconsistent loses writes: an entry beyond the receiver's vector is folded into it at the receiver's
 * next write of that key (its earlier writes from this node not yet received then count as seen), and a key
 * left out while the old vector covers its entries makes the receiver count them as seen without having them.
 * So this node sends its current vector with the current values of Keys plus every key whose entries changed
 * since the round began (the change order says which: a received key list is from Merkle trees compared during
 * the round, and a key unchanged since then was equal on both sides, so the receiver has its entries). When
 * Dots is not one of the last rounds' vectors, every key with a dot beyond Dots goes instead. False without
 * memory. */
static bool mk_delta(cn_crdt *c, hc_arena *a, const cn_term *dots, const cn_term *keys, cn_term *out) {
  size_t nk = keys->type == CN_LIST ? keys->v.list.len : 0, nkept = 0, nv = 0;
  /* rounds with equal vectors: the earliest is the safe one */
  const uint64_t *since = NULL;
  for (unsigned i = 0; i < ROUNDS; i++)
    if (c->rounds[i].dots && cn_term_exact_eq(c->rounds[i].dots, dots) && (!since || c->rounds[i].seq < *since))
      since = &c->rounds[i].seq;
  hc_vv then = {0};
  bool scan = !since && hc_vv_parse(dots, &then) == 0;
  size_t extra = 0;
  if (since)
    for (hc_kent *e = c->st.recent; e && e->seq > *since; e = e->older) extra++;
  else if (scan) extra = c->st.count;
  const cn_term **kept = cn_malloc((nk + extra + 1) * sizeof *kept);
  hc_kent **ents = cn_malloc((nk + extra + 1) * sizeof *ents);
  uint32_t gen = ++c->st.gen;
  for (size_t i = 0; kept && ents && i < nk; i++) {
    const cn_term *key = &keys->v.list.e[i];
    add_key(kept, ents, &nkept, hc_awlww_find(&c->st, key, hc_key_hash(key)), key, gen);
  }
  if (since && kept && ents)
    for (hc_kent *e = c->st.recent; e && e->seq > *since; e = e->older) add_key(kept, ents, &nkept, e, e->key, gen);
  for (size_t b = 0; kept && ents && scan && b < c->st.nb; b++)
    for (hc_kent *e = c->st.b[b]; e; e = e->next)
      if (hc_raw_beyond(e->raw, &then)) add_key(kept, ents, &nkept, e, e->key, gen);
  hc_vv_free(&then);
  for (size_t i = 0; i < nkept; i++) nv += ents[i] != NULL; /* deleted here: Keys' names it, the value has none */
  const cn_atom *f[] = {c->hc.a_dots, c->hc.a_value};
  cn_term *t = kept && ents ? hc_v_tuple(a, out, 3) : NULL, *v = NULL, *kv = NULL, *kl = NULL;
  bool ok = t && (v = hc_v_struct(&c->hc, a, &t[1], c->hc.a_awlww, 2, f)) && !hc_v_vv(a, &v[0], &c->st.vv) &&
            (kv = hc_v_map(a, &v[2], nv)) && (kl = hc_v_list(a, &t[2], nkept));
  for (size_t i = 0, k = 0; ok && i < nkept; i++) {
    hc_v_ref(&kl[i], kept[i]);
    if (ents[i]) hc_v_ref(&kv[2 * k], ents[i]->key), hc_v_ref(&kv[2 * k + 1], ents[i]->raw), k++;
  }
  if (ok) {
    hc_v_atom(&t[0], c->hc.a_diff);
    c->stats.keys_sent += nv;
  }
  cn_free(kept);
  cn_free(ents);
  return ok;
}

/* ---- Sync ------------------------------------------------------------------------------------------------- */

static bool pid_is(const cn_term *t, cn_pid p) {
  return t->type == CN_PID && t->v.pid.id == p.id && t->v.pid.serial == p.serial &&
         !strcmp(t->v.pid.node->name, p.node->name);
}

/* How long a round to b may go without coming back (a hop of it, its get_diff or ack_diff) before the next tick
 * begins another anyway (an ack lost with a peer that restarted): 20 intervals, or 3 times the longest wait seen
 * for one of b's hops (a large first sync, where one hop is seconds of work). */
static uint64_t round_wait(const cn_crdt *c, const nbr *b) {
  uint64_t w = 20ull * c->o.sync_interval_ms * 1000000ull;
  return 3 * b->gap_ns > w ? 3 * b->gap_ns : w;
}

/* A message of this node's round to peer came back: a hop (done false) or its ack_diff (done true, the peer's or its
 * own when it finished the comparison), after which the next tick may begin another. */
static void round_back(cn_crdt *c, const cn_term *peer, bool done) {
  uint64_t now = uv_hrtime();
  for (size_t i = 0; i < c->nnb; i++) {
    nbr *b = &c->nb[i];
    if (!b->round_ns || !cn_term_exact_eq(b->addr, peer)) continue;
    if (now - b->round_ns > b->gap_ns) b->gap_ns = now - b->round_ns;
    b->round_ns = done ? 0 : now;
  }
}

/* A tick (§2.7 step 1) begins a round towards every monitored neighbour, as delta_crdt 0.6 does, except one whose
 * round from here has gone unacknowledged for 2 intervals or more: a slow round (a new member of a 100,000-key
 * registry), where delta_crdt begins one every tick regardless and each compares and sends the whole difference
 * again. Rounds that end within 2 intervals (every round of a registry of a few thousand keys) begin exactly as
 * delta_crdt's do; the messages are delta_crdt's in any case. */
static void do_sync(cn_crdt *c, cn_proc *self) {
  for (size_t i = 0; i < c->nnb; i++)
    if (!c->nb[i].monitored && !pid_is(c->nb[i].addr, c->pid))
      c->nb[i].monitored = cn_monitor(self, c->nb[i].addr, &c->nb[i].mref) == 0;
  hc_merkle_update_hashes(&c->mm);
  if (!c->cont0 || c->cont0_epoch != c->mm.epoch) {
    cn_term_free(c->cont0);
    c->cont0 = hc_merkle_cont0(&c->hc, &c->mm, DEPTH);
    c->cont0_epoch = c->mm.epoch;
  }
  if (!c->cont0) return;
  cn_term *dots = hc_vv_term(&c->st.vv);
  if (!dots) return;
  bool remote = false, started = false;
  cn_term me = {.type = CN_PID, .v.pid = c->pid};
  uint64_t now = uv_hrtime(), slow = 2ull * c->o.sync_interval_ms * 1000000ull;
  for (size_t i = 0; i < c->nnb; i++) {
    nbr *b = &c->nb[i];
    if (!b->monitored || pid_is(b->addr, c->pid)) continue;
    remote = true;
    if (b->round_ns && now - b->round_ns >= slow && now - b->round_ns < round_wait(c, b)) continue;
    if (!b->round_ns || now - b->round_ns >= slow) b->round_ns = now; /* else the oldest one under way counts */
    hc_arena a = {0};
    const cn_term *m = diff_view(c, &a, c->hc.a_diff, c->cont0, dots, &me, &me, b->addr, NULL);
    c->stats.syncs_started++;
    started = true;
    send_view(c, self, b->addr, m, &a);
  }
  if (started) { /* the vector its rounds carry stays in the ring, which owns it (a tick that began none would only
                    push older rounds' vectors out, and their deltas would scan every key) */
    unsigned r = c->next_round++ % ROUNDS;
    cn_term_free(c->rounds[r].dots);
    c->rounds[r].dots = dots;
    c->rounds[r].seq = c->st.seq;
  } else {
    cn_term_free(dots);
  }
  if (!remote) c->stats.synced = true; /* nobody to sync with: as synced as it can be */
}

/* The fields of a received Diff, from/to already swapped (reverse_diff). */
typedef struct rdiff {
  const cn_term *cont, *dots, *orig, *from, *to;
} rdiff;

static bool parse_diff(const cn_term *d, rdiff *r) {
  if (!hc_is_struct(d, "Elixir.DeltaCrdt.CausalCrdt.Diff")) return false;
  r->cont = hc_map_get(d, "continuation");
  r->dots = hc_map_get(d, "dots");
  r->orig = hc_map_get(d, "originator");
  r->from = hc_map_get(d, "to"); /* swapped */
  r->to = hc_map_get(d, "from");
  return r->cont && r->dots && r->orig && r->from && r->to;
}

static void ack(cn_crdt *c, cn_proc *self, const rdiff *r) {
  const cn_term *peer = cn_term_exact_eq(r->orig, r->from) ? r->to : cn_term_exact_eq(r->orig, r->to) ? r->from : NULL;
  if (peer) send_to(c, self, r->orig, cn_mk_tuple(2, cn_mk_atom(c->hc.a_ack_diff), cn_term_copy(peer)));
}

static bool proper_list(const cn_term *t) { return t->type == CN_NIL || (t->type == CN_LIST && !t->v.list.tail); }

static int on_diff(cn_crdt *c, cn_proc *self, const cn_term *d) {
  rdiff r;
  if (!parse_diff(d, &r)) return CN_EDECODE;
  if (pid_is(r.orig, c->pid)) round_back(c, r.to, false);
  hc_merkle_update_hashes(&c->mm);
  hc_arena a = {0};
  cn_term *cont, *keys, *m = NULL;
  int rc = hc_merkle_continue_view(&c->hc, &c->mm, r.cont, DEPTH, c->o.max_sync_size, &a, &cont, &keys);
  if (rc) {
    hc_arena_free(&a);
    return rc;
  }
  if (cont)
    return send_view(c, self, r.to, diff_view(c, &a, c->hc.a_diff, cont, r.dots, r.orig, r.from, r.to, NULL), &a);
  if (keys->type == CN_LIST) {
    if (cn_term_exact_eq(r.orig, r.to))
      m = diff_view(c, &a, c->hc.a_get_diff, r.cont, r.dots, r.orig, r.from, r.to, keys);
    else if ((m = hc_arena_terms(&a, 1)) && !mk_delta(c, &a, r.dots, keys, m)) m = NULL;
    rc = send_view(c, self, r.to, m, &a);
  }
  hc_arena_free(&a);
  ack(c, self, &r);
  return rc;
}

/* A Diff that starts a peer's round: continuation #{trees => [{<<>>, _}], keys => []}, originator not this one. */
static bool first_round(cn_crdt *c, const cn_term *d, const cn_term **orig) {
  rdiff r;
  if (!parse_diff(d, &r) || pid_is(r.orig, c->pid)) return false;
  const cn_term *trees = hc_map_get(r.cont, "trees"), *keys = hc_map_get(r.cont, "keys");
  if (!trees || trees->type != CN_LIST || trees->v.list.len != 1 || !keys || keys->type != CN_NIL) return false;
  const cn_term *loc = cn_tuple_elem(&trees->v.list.e[0], 2, 0);
  *orig = r.orig;
  return loc && loc->type == CN_BINARY && loc->v.bin.size == 0;
}

static void send_marker(cn_crdt *c, const cn_term *orig) {
  cn_term *m = cn_mk_tuple(2, cn_mk_atomc(c->n, "$crdt_round"), cn_term_copy(orig));
  if (m) cn_send(c->n, NULL, c->pid, m);
  cn_term_free(m);
}

/* A peer starts a round every tick without waiting for the last (pitfall 18): when this process needs longer for a
 * round than the peer's interval, its mailbox would grow without bound. So the first round from an originator is
 * answered at once and leaves a marker behind it in the mailbox; a first round from the same originator handled
 * before the marker was already queued with it (this process is behind), and waits in the originator's slot, where
 * a newer one replaces it (rounds_skipped). The marker answers the one waiting and leaves a new marker, or frees the
 * slot. A skipped round costs nothing: the originator does not wait for it, and the next one compares the newer
 * trees. Without a backlog every round is answered at once, in order. */
static int on_first_round(cn_crdt *c, cn_proc *self, const cn_term *d, const cn_term *orig) {
  struct held_round *h = NULL;
  for (size_t i = 0; i < c->nheld && !h; i++)
    if (cn_term_exact_eq(c->held[i].orig, orig)) h = &c->held[i];
  if (h) {
    cn_term *copy = cn_term_copy(d);
    if (!copy) return CN_ENOMEM;
    if (h->diff) c->stats.rounds_skipped++;
    cn_term_free(h->diff);
    h->diff = copy;
    return 0;
  }
  struct held_round *nh = cn_realloc(c->held, (c->nheld + 1) * sizeof *nh);
  if (nh) c->held = nh;
  if (nh && (nh[c->nheld].orig = cn_term_copy(orig))) {
    nh[c->nheld++].diff = NULL;
    send_marker(c, orig);
  }
  return on_diff(c, self, d);
}

static void on_marker(cn_crdt *c, cn_proc *self, const cn_term *orig) {
  for (size_t i = 0; i < c->nheld; i++) {
    if (!cn_term_exact_eq(c->held[i].orig, orig)) continue;
    cn_term *d = c->held[i].diff;
    if (d) {
      c->held[i].diff = NULL;
      send_marker(c, orig);
      int rc = on_diff(c, self, d);
      if (rc) bad_message(c, rc, "message", d);
      cn_term_free(d);
      return;
    }
    cn_term_free(c->held[i].orig);
    c->held[i] = c->held[--c->nheld];
    return;
  }
}

static int on_get_diff(cn_crdt *c, cn_proc *self, const cn_term *d, const cn_term *keys) {
  rdiff r;
  if (!parse_diff(d, &r) || !proper_list(keys)) return CN_EDECODE;
  round_back(c, r.to, false);
  hc_arena a = {0};
  cn_term *m = hc_arena_terms(&a, 1);
  int rc = send_view(c, self, r.to, m && mk_delta(c, &a, r.dots, keys, m) ? m : NULL, &a);
  ack(c, self, &r);
  return rc;
}

/* The shape changed: every entry held is rewritten in it, in place (the change order stays: the keys did not
 * change for the peers, whose own joins give their shape anyway), and the Merkle map takes the new entries. */
static void reshape_all(cn_crdt *c) {
  c->hc.mapset_shape = c->shape.shape;
  size_t done = 0, failed = 0;
  for (size_t b = 0; b < c->st.nb; b++)
    for (hc_kent *e = c->st.b[b]; e; e = e->next) {
      cn_term *raw;
      if (hc_reshape_entries(&c->hc, e->raw, &raw)) {
        failed++; /* left as it was: read in either shape, only its hash differs from the peers' */
        continue;
      }
      cn_term_free(e->raw);
      e->raw = raw;
      hc_merkle_put(&c->mm, e->key, e->kh, raw); /* a key it holds: in place, cannot fail */
      done++;
    }
  cn_log(c->n, failed ? CN_LOG_WARN : CN_LOG_INFO,
         "%s: following the peers' MapSet shape of Elixir %s; %zu entries rewritten%s", c->name,
         c->shape.shape == HC_MAPSET_PLAIN ? ">= 1.15" : "<= 1.14", done, failed ? " (some not: out of memory)" : "");
}

static int on_delta(cn_crdt *c, const cn_term *delta, const cn_term *keys) {
  const cn_term *dots = hc_map_get(delta, "dots"), *val = hc_map_get(delta, "value");
  if (!hc_is_struct(delta, "Elixir.DeltaCrdt.AWLWWMap") || !dots || !val || val->type != CN_MAP || !proper_list(keys))
    return CN_EDECODE;
  if (c->o.mapset_shape == CN_CRDT_MAPSET_AUTO && hc_shape_seen(&c->shape, hc_entries_shape(val))) reshape_all(c);
  return apply_delta(c, dots, val, keys);
}

static int set_neighbours(cn_crdt *c, cn_proc *self, const cn_term *list) {
  if (!proper_list(list)) return CN_EDECODE;
  size_t n = list->type == CN_LIST ? list->v.list.len : 0;
  nbr *nb = cn_calloc(n + 1, sizeof *nb);
  if (!nb) return CN_ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const cn_term *a = &list->v.list.e[i];
    bool dup = false;
    for (size_t j = 0; j < k; j++) dup |= cn_term_exact_eq(nb[j].addr, a);
    if (dup) continue;
    /* keep the monitor of a neighbour that stays */
    for (size_t j = 0; j < c->nnb; j++)
      if (c->nb[j].addr && cn_term_exact_eq(c->nb[j].addr, a)) {
        nb[k] = c->nb[j];
        c->nb[j].addr = NULL;
        break;
      }
    if (!nb[k].addr && !(nb[k].addr = cn_term_copy(a))) break;
    k++;
  }
  for (size_t j = 0; j < c->nnb; j++)
    if (c->nb[j].addr) {
      if (c->nb[j].monitored) cn_demonitor(self, c->nb[j].mref);
      cn_term_free(c->nb[j].addr);
    }
  cn_free(c->nb);
  c->nb = nb;
  c->nnb = k;
  do_sync(c, self);
  return 0;
}

/* ---- The process ------------------------------------------------------------------------------------------ */

/* Sends the process a :sync now (init, sync_now); the :sync handler re-arms the timer. */
static void send_sync(cn_crdt *c) {
  cn_term *m = cn_mk_atomc(c->n, "sync");
  if (m) cn_send(c->n, NULL, c->pid, m);
  cn_term_free(m);
}

cn_term *cn_crdt_stats_term(cn_crdt *c) {
  cn_crdt_stats s;
  cn_crdt_get_stats(c, &s);
  const struct {
    const char *k;
    uint64_t v;
  } f[] = {{"syncs_started", s.syncs_started},
           {"msgs_sent", s.msgs_sent},
           {"msgs_received", s.msgs_received},
           {"bytes_sent", s.bytes_sent},
           {"keys_sent", s.keys_sent},
           {"bad_messages", s.bad_messages},
           {"keys", s.keys},
           {"dots_withheld", s.dots_withheld},
           {"dots_pending", s.dots_pending},
           {"rounds_skipped", s.rounds_skipped}};
  enum { NF = sizeof f / sizeof *f, NKV = 2 * NF + 2 };
  cn_term *kv[NKV];
  for (size_t i = 0; i < NF; i++) {
    kv[2 * i] = cn_mk_atomc(c->n, f[i].k);
    kv[2 * i + 1] = cn_mk_int((int64_t)f[i].v);
  }
  kv[2 * NF] = cn_mk_atomc(c->n, "mapset");
  kv[2 * NF + 1] = cn_mk_atomc(c->n, cn_crdt_mapset_shape(c) == CN_CRDT_MAPSET_PLAIN ? "plain" : "v2");
  return cn_mk_map(NF + 1, kv); /* NULL (and the rest freed) when one of them is */
}

static cn_term *root_term(cn_crdt *c) {
  uint8_t h[4];
  return cn_crdt_root(c, h) ? cn_mk_binary(h, 4) : cn_mk_binary("", 0);
}

/* {add, [K, V]} | {remove, [K]}: 0, CN_EINVAL for another shape, or the error of the write. */
static int apply_op(cn_crdt *c, const cn_term *op) {
  const cn_term *f = cn_tuple_elem(op, 2, 0), *args = cn_tuple_elem(op, 2, 1);
  if (!args || args->type != CN_LIST || args->v.list.tail) return CN_EINVAL;
  if (cn_is_atom(f, "add") && args->v.list.len == 2) return cn_crdt_put(c, &args->v.list.e[0], &args->v.list.e[1]);
  if (cn_is_atom(f, "remove") && args->v.list.len == 1) return cn_crdt_delete(c, &args->v.list.e[0]);
  return CN_EINVAL;
}

/* The process is a gen_server; every message it gets counts in msgs_received. */
static cn_term *handle_call(cn_proc *self, const cn_term *req, const cn_term *from, void *state) {
  (void)self, (void)from;
  cn_crdt *c = state;
  follow_release(c);
  cn_node *n = c->n;
  c->stats.msgs_received++;
  if (cn_is_atom(req, "read")) return cn_crdt_read(c);
  if (cn_is_atom(req, "root_hash")) return root_term(c);
  if (cn_is_atom(req, "stats")) return cn_crdt_stats_term(c);
  const cn_term *keys = cn_tuple_elem(req, 2, 1);
  if (cn_is_atom(cn_tuple_elem(req, 2, 0), "read") && keys && proper_list(keys)) {
    size_t nk = keys->type == CN_LIST ? keys->v.list.len : 0, k = 0;
    cn_term **kv = cn_malloc((2 * nk + 1) * sizeof *kv);
    for (size_t i = 0; kv && i < nk; i++) {
      const cn_term *v = cn_crdt_get(c, &keys->v.list.e[i]);
      bool dup = false;
      for (size_t j = 0; j < k; j += 2) dup |= cn_term_exact_eq(kv[j], &keys->v.list.e[i]);
      if (!v || dup) continue;
      kv[k++] = cn_term_copy(&keys->v.list.e[i]);
      kv[k++] = cn_term_copy(v);
    }
    cn_term *m = kv ? cn_mk_map(k / 2, kv) : NULL;
    cn_free(kv);
    return m;
  }
  const cn_term *op = cn_tuple_elem(req, 2, 1);
  int rc = CN_EINVAL;
  if (cn_is_atom(cn_tuple_elem(req, 2, 0), "operation") && op) {
    rc = apply_op(c, op);
  } else if (cn_is_atom(cn_tuple_elem(req, 2, 0), "bulk_operation") && op && proper_list(op)) {
    /* DeltaCrdt.merge/drop as Horde sends them: one operation per element, in order (each its own Ts) */
    rc = 0;
    for (size_t i = 0; !rc && op->type == CN_LIST && i < op->v.list.len; i++) rc = apply_op(c, &op->v.list.e[i]);
  } else {
    return cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, "unknown_call"));
  }
  return rc ? cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, cn_err_reason(rc))) : cn_mk_atomc(n, "ok");
}

/* BEAM's CRDT would crash on a message it has no clause for; we log, count and live on. */
static void bad_message(cn_crdt *c, int rc, const char *what, const cn_term *t) {
  c->stats.bad_messages++;
  char *txt = cn_term_to_string(t);
  cn_log(c->n, CN_LOG_WARN, "%s: dropped %s %s: %.200s", c->name, cn_err_name(rc), what, txt ? txt : "?");
  cn_free(txt);
}

/* No cast is part of the sync protocol. */
static void handle_cast(cn_proc *self, const cn_term *req, void *state) {
  (void)self;
  cn_crdt *c = state;
  follow_release(c);
  c->stats.msgs_received++;
  bad_message(c, CN_EINVAL, "cast", req);
}

static void handle_info(cn_proc *self, const cn_term *msg, void *state) {
  cn_crdt *c = state;
  int rc = 0;
  follow_release(c);
  c->stats.msgs_received++;
  if (cn_is_atom(msg, "sync")) {
    do_sync(c, self);
    /* one timer at a time, however many :sync messages arrive (sync_now, replays) */
    if (c->timer) cn_cancel_timer(c->n, c->timer);
    c->timer = 0;
    cn_send_after(c->n, c->o.sync_interval_ms, c->pid, msg, &c->timer);
    return;
  }
  const cn_term *tag = msg->type == CN_TUPLE && msg->v.tuple.arity ? &msg->v.tuple.e[0] : NULL;
  uint32_t ar = tag ? msg->v.tuple.arity : 0;
  const cn_term *e1 = ar > 1 ? &msg->v.tuple.e[1] : NULL, *e2 = ar > 2 ? &msg->v.tuple.e[2] : NULL;
  const cn_term *orig;
  bool sync_msg = true;
  if (cn_is_atom(tag, "diff") && ar == 2 && first_round(c, e1, &orig)) {
    rc = on_first_round(c, self, e1, orig);
  } else if (cn_is_atom(tag, "diff") && ar == 2) {
    rc = on_diff(c, self, e1);
  } else if (cn_is_atom(tag, "diff") && ar == 3) {
    rc = on_delta(c, e1, e2);
  } else if (cn_is_atom(tag, "get_diff") && ar == 3) {
    rc = on_get_diff(c, self, e1, e2);
  } else if (cn_is_atom(tag, "ack_diff") && ar == 2) {
    round_back(c, e1, true);
  } else {
    sync_msg = false;
    if (cn_is_atom(tag, "$crdt_round") && ar == 2) {
      c->stats.msgs_received--; /* its own */
      on_marker(c, self, e1);
    } else if (cn_is_atom(tag, "set_neighbours") && ar == 2) {
      rc = set_neighbours(c, self, e1);
    } else if (cn_is_atom(tag, "DOWN") && ar == 5 && e1->type == CN_REF) {
      for (size_t i = 0; i < c->nnb; i++)
        if (c->nb[i].monitored && cn_ref_eq(&c->nb[i].mref, &e1->v.ref))
          c->nb[i].monitored = false, c->nb[i].round_ns = 0;
    } else if (!cn_is_atom(tag, "EXIT")) {
      rc = CN_EINVAL;
    }
  }
  if (sync_msg && !rc) c->stats.synced = true; /* a peer's round reached us: its state and ours have met */
  if (rc) bad_message(c, rc, "message", msg);
}

static void crdt_free(cn_crdt *c) {
  for (size_t i = 0; i < c->nnb; i++) cn_term_free(c->nb[i].addr);
  cn_free(c->nb);
  cn_free(c->subs);
  cn_term_free(c->cont0);
  for (unsigned i = 0; i < ROUNDS; i++) cn_term_free(c->rounds[i].dots);
  for (size_t i = 0; i < c->nheld; i++) {
    cn_term_free(c->held[i].orig);
    cn_term_free(c->held[i].diff);
  }
  cn_free(c->held);
  hc_merkle_free(&c->mm);
  hc_awlww_free(&c->st);
  cn_free(c);
}

static void terminate(cn_proc *self, const cn_term *reason, void *state) {
  (void)self;
  (void)reason;
  cn_crdt *c = state;
  if (c->o.on_stop) c->o.on_stop(c, c->o.ctx);
  if (c->timer) cn_cancel_timer(c->n, c->timer);
  crdt_free(c);
}

static const cn_gen_server_ops crdt_ops = {.handle_call = handle_call,
                                           .handle_cast = handle_cast,
                                           .handle_info = handle_info,
                                           .terminate = terminate,
                                           .trap_exit = true};

int cn_crdt_start(cn_node *n, const char *name, const cn_crdt_opts *opts, cn_crdt **out) {
  if (!name || strlen(name) > 250) return CN_EINVAL;
  if (opts && (opts->mapset_shape < CN_CRDT_MAPSET_AUTO || opts->mapset_shape > CN_CRDT_MAPSET_PLAIN)) return CN_EINVAL;
  cn_crdt *c = cn_calloc(1, sizeof *c);
  if (!c) return CN_ENOMEM;
  c->n = n;
  if (opts) c->o = *opts;
  if (!c->o.sync_interval_ms) c->o.sync_interval_ms = 300;
  snprintf(c->name, sizeof c->name, "%s.Crdt", name);
  c->t0 = uv_hrtime();
  c->node_id = c->o.node_id;
  if (!c->node_id) {
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r) r = (uint32_t)uv_hrtime();
    c->node_id = 1 + (int64_t)(r % 1000000000u);
  }
  c->shape.shape = c->o.mapset_shape == CN_CRDT_MAPSET_PLAIN ? HC_MAPSET_PLAIN : HC_MAPSET_V2;
  int rc = hc_ctx_init(&c->hc, cn_node_atoms(n), c->shape.shape);
  hc_awlww_init(&c->st);
  hc_merkle_init(&c->mm);
  c->mm.borrows = true;
  /* A failed start is not a stop: terminate and on_stop do not run (on_stop would reach a caller that already
   * took the error: the Horde members free their state on it), and c is still ours. */
  if (rc || (rc = cn_gen_server_start(n, c->name, &crdt_ops, c, &c->pid))) {
    crdt_free(c);
    return rc;
  }
  send_sync(c); /* init sends itself :sync */
  if (out) *out = c;
  return 0;
}

void cn_crdt_stop(cn_crdt *c) {
  cn_term *why = cn_mk_atomc(c->n, "kill");
  cn_exit(c->n, NULL, c->pid, why);
  cn_term_free(why);
}

cn_pid cn_crdt_pid(const cn_crdt *c) { return c->pid; }

int cn_crdt_set_neighbours(cn_crdt *c, const cn_term *const *peers, size_t n) {
  cn_term **v = cn_malloc((n + 1) * sizeof *v);
  if (!v) return CN_ENOMEM;
  for (size_t i = 0; i < n; i++) v[i] = cn_term_copy(peers[i]);
  cn_term *msg = cn_mk_tuple(2, cn_mk_atomc(c->n, "set_neighbours"), cn_mk_listv(n, v, NULL));
  cn_free(v);
  if (!msg) return CN_ENOMEM;
  int rc = cn_send(c->n, NULL, c->pid, msg);
  cn_term_free(msg);
  return rc;
}

const cn_term *cn_crdt_get(cn_crdt *c, const cn_term *key) {
  follow_release(c);
  hc_kent *e = hc_awlww_find(&c->st, key, hc_key_hash(key));
  return e ? hc_read_raw(e->raw) : NULL;
}

bool hc_crdt_each(cn_crdt *c, hc_crdt_each_fn fn, void *ctx) {
  for (size_t i = 0; i < c->st.nb; i++)
    for (hc_kent *e = c->st.b[i]; e; e = e->next) {
      const cn_term *v = hc_read_raw(e->raw);
      if (v && !fn(e->key, v, ctx)) return false;
    }
  return true;
}

cn_term *cn_crdt_read(cn_crdt *c) {
  cn_term **kv = cn_malloc((2 * c->st.count + 1) * sizeof *kv);
  if (!kv) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < c->st.nb; i++)
    for (hc_kent *e = c->st.b[i]; e; e = e->next) {
      const cn_term *v = hc_read_raw(e->raw);
      if (!v) continue;
      kv[k] = cn_term_copy(e->key);
      kv[k + 1] = cn_term_copy(v);
      k += 2;
    }
  /* cn_mk_map takes the pairs even when it fails, and a NULL among them (a failed copy) makes it fail. */
  cn_term *m = cn_mk_map(k / 2, kv);
  cn_free(kv);
  return m;
}

int cn_crdt_mapset_shape(const cn_crdt *c) {
  return c->hc.mapset_shape == HC_MAPSET_PLAIN ? CN_CRDT_MAPSET_PLAIN : CN_CRDT_MAPSET_V2;
}

bool cn_crdt_root(cn_crdt *c, uint8_t out[4]) {
  hc_merkle_update_hashes(&c->mm);
  return hc_merkle_root(&c->mm, out);
}

int cn_crdt_subscribe(cn_crdt *c, cn_pid pid) {
  cn_pid *s = cn_realloc(c->subs, (c->nsubs + 1) * sizeof *s);
  if (!s) return CN_ENOMEM;
  c->subs = s;
  c->subs[c->nsubs++] = pid;
  return 0;
}

void cn_crdt_sync_now(cn_crdt *c) { send_sync(c); }

void cn_crdt_get_stats(cn_crdt *c, cn_crdt_stats *out) {
  *out = c->stats;
  out->keys = c->st.count;
  out->dots_withheld = c->st.withheld;
  out->dots_pending = c->st.gone.n;
}
