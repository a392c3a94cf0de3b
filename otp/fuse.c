/* fuse.c: the node's fuses (cn_fuse.h): a table by name in the node's slot, heals driven by cn_send_after to a small
 * keeper process, state-change callbacks, the {fuse_blown, Name} alarm, and the guard calls go through. */
#include <string.h>
#include <uthash.h>

#include "cn_alarm.h"
#include "fuse_int.h"

enum { MAX_MONITORS = 8 };

typedef struct fuse_tab fuse_tab;
typedef struct fuse {
  UT_hash_handle hh;
  char *name;
  fuse_sm sm;
  cn_call_guard guard;
  fuse_tab *tab;
  unsigned refs; /* the table's (until removed) and one per admitted call in flight */
  bool removed;
} fuse;

struct fuse_tab {
  cn_node *n;
  fuse *by_name;
  cn_pid keeper;
  struct {
    cn_fuse_fn fn;
    void *ctx;
  } mon[MAX_MONITORS];
  size_t nmon;
};

static const char fuse_key; /* the address names the slot */

static void fuse_unref(fuse *f) {
  if (--f->refs) return;
  fuse_sm_free(&f->sm);
  cn_free(f->name);
  cn_free(f);
}

static void tab_release(void *data) {
  fuse_tab *t = data;
  fuse *f, *tmp;
  HASH_ITER(hh, t->by_name, f, tmp) {
    HASH_DEL(t->by_name, f);
    f->refs = 1;
    fuse_unref(f);
  }
  cn_free(t);
}

static uint64_t now_ms(cn_node *n) { return uv_now(cn_node_loop(n)); }

/* The alarm of a blown fuse: {{fuse_blown, Name}, Name}. */
static void fuse_alarm(cn_node *n, const char *name, bool set) {
  cn_term *id = cn_mk_tuple(2, cn_mk_atomc(n, "fuse_blown"), cn_mk_atomc(n, name));
  cn_term *desc = cn_mk_atomc(n, name);
  int rc = !id || !desc ? CN_ENOMEM : set ? cn_alarm_set(n, id, desc) : cn_alarm_clear(n, id);
  if (rc && rc != CN_ENOTFOUND) cn_log(n, CN_LOG_WARN, "fuse %s: alarm: %s", name, cn_strerror(rc));
  cn_term_free(id);
  cn_term_free(desc);
}

static void notify(fuse_tab *t, const char *name, cn_fuse_event ev) {
  if (ev != CN_FUSE_REMOVED) fuse_alarm(t->n, name, ev == CN_FUSE_BLOWN);
  cn_log(t->n, CN_LOG_INFO, "fuse %s %s", name,
         ev == CN_FUSE_BLOWN    ? "blown"
         : ev == CN_FUSE_HEALED ? "healed"
                                : "removed");
  for (size_t i = 0; i < t->nmon; i++) t->mon[i].fn(t->n, name, ev, t->mon[i].ctx);
}

static void changed(fuse *f, fuse_change c) {
  if (c == FUSE_SAME) return;
  if (c == FUSE_TO_BLOWN) {
    uint64_t ms = f->sm.heal_at > now_ms(f->tab->n) ? f->sm.heal_at - now_ms(f->tab->n) : 0;
    cn_term *m = cn_mk_atomc(f->tab->n, "heal");
    int rc =
        m ? cn_send_after(f->tab->n, ms > UINT32_MAX ? UINT32_MAX : (unsigned)ms, f->tab->keeper, m, NULL) : CN_ENOMEM;
    if (rc) cn_log(f->tab->n, CN_LOG_ERROR, "fuse %s: cannot arm its heal: %s", f->name, cn_strerror(rc));
    cn_term_free(m);
  }
  notify(f->tab, f->name, c == FUSE_TO_BLOWN ? CN_FUSE_BLOWN : CN_FUSE_HEALED);
}

/* The keeper: each heal timer's message heals what is due and re-arms what the loop's clock fired early. */
static void keeper(cn_proc *self, const cn_term *msg, void *state) {
  (void)msg;
  fuse_tab *t = state;
  uint64_t now = now_ms(cn_proc_node(self));
  fuse *f, *tmp;
  HASH_ITER(hh, t->by_name, f, tmp) {
    fuse_change c = fuse_sm_tick(&f->sm, now);
    if (c != FUSE_SAME) changed(f, c);
    else if (f->sm.healing && f->sm.heal_at - now < 2) { /* due within the timer's slack: one more turn */
      cn_term *m = cn_mk_atomc(t->n, "heal");
      if (m) cn_send_after(t->n, 1, t->keeper, m, NULL);
      cn_term_free(m);
    }
  }
}

static fuse_tab *tab_get(cn_node *n, bool create) {
  fuse_tab *t = n ? cn_node_attached(n, &fuse_key) : NULL;
  if (t || !create || !n) return t;
  if (!(t = cn_calloc(1, sizeof *t))) return NULL;
  t->n = n;
  if (cn_spawn(n, keeper, t, NULL, &t->keeper) || cn_node_attach(n, &fuse_key, t, tab_release)) {
    cn_free(t); /* a keeper already spawned only ever gets messages from this table's timers: none */
    return NULL;
  }
  return t;
}

static fuse *lookup(cn_node *n, const char *name) {
  fuse_tab *t = tab_get(n, false);
  fuse *f = NULL;
  if (t && name) HASH_FIND_STR(t->by_name, name, f);
  return f;
}

/* ---- The guard ---------------------------------------------------------------------------------------------------- */

/* A dirty process's guarded call runs these on its pool thread: cn_node_lock borrows the node for them there (on
 * the loop thread it does nothing). */
static int guard_admit(void *ctx) {
  fuse *f = ctx;
  cn_node *n = f->tab->n;
  cn_node_lock(n);
  int rc = f->removed ? CN_ENOTFOUND : fuse_sm_ask(&f->sm);
  if (!rc) f->refs++;
  cn_node_unlock(n);
  return rc;
}

static void guard_done(int status, const cn_term *reply, void *ctx) {
  fuse *f = ctx;
  cn_node *n = f->tab->n;
  cn_node_lock(n);
  if (!f->removed && cn_fuse_call_failed(status, reply)) changed(f, fuse_sm_melt(&f->sm, now_ms(n)));
  fuse_unref(f);
  cn_node_unlock(n);
}

static bool says_failed(const cn_term *r) {
  return cn_is_atom(r, "timeout") || cn_is_atom(r, "noconnection") || cn_is_atom(r, "nodedown") ||
         cn_is_atom(r, "noproc");
}

bool cn_fuse_call_failed(int status, const cn_term *reply) {
  if (status == CN_ETIMEDOUT) return true;
  if (!reply || (status != CN_EEXIT && status != 0)) return false;
  const cn_term *w = NULL;
  if (status == CN_EEXIT) {
    if (says_failed(reply)) return true;
    w = cn_tuple_elem(reply, 2, 0); /* {noproc, {gen_server, call, ...}}; erpc's {error, {erpc, Why}}, {exit, ...} */
    if (w && says_failed(w)) return true;
    const cn_term *inner = cn_tuple_elem(reply, 2, 1);
    w = inner ? cn_tuple_elem(inner, 2, 1) : NULL; /* {error, {erpc, noconnection}}, {exit, {signal, noproc}} */
    return w && says_failed(w);
  }
  if (!cn_is_atom(cn_tuple_elem(reply, 2, 0), "badrpc")) return false; /* rpc's values */
  w = cn_tuple_elem(reply, 2, 1);
  if (says_failed(w)) return true;
  return cn_is_atom(cn_tuple_elem(w, 2, 0), "EXIT") && says_failed(cn_tuple_elem(w, 2, 1));
}

const cn_call_guard *cn_fuse_guard(cn_node *n, const char *name) {
  fuse *f = lookup(n, name);
  return f ? &f->guard : NULL;
}

/* ---- The API ----------------------------------------------------------------------------------------------------- */

static bool get_uint(const cn_term *t, uint64_t max, uint64_t *out) {
  if (!t || t->type != CN_INT || t->v.i < 0 || (uint64_t)t->v.i > max) return false;
  *out = (uint64_t)t->v.i;
  return true;
}

int cn_fuse_parse(const cn_term *t, cn_fuse_opts *out) {
  const cn_term *strat = cn_tuple_elem(t, 2, 0), *reset = cn_tuple_elem(t, 2, 1);
  cn_fuse_opts o = {0};
  uint64_t mr;
  if (!cn_is_atom(cn_tuple_elem(reset, 2, 0), "reset") ||
      !get_uint(cn_tuple_elem(reset, 2, 1), UINT32_MAX, &o.reset_ms))
    return CN_EINVAL;
  if (cn_is_atom(cn_tuple_elem(strat, 3, 0), "standard")) {
    if (!get_uint(cn_tuple_elem(strat, 3, 1), CN_FUSE_MAX_MELTS, &mr) ||
        !get_uint(cn_tuple_elem(strat, 3, 2), UINT32_MAX, &o.window_ms))
      return CN_EINVAL;
  } else if (cn_is_atom(cn_tuple_elem(strat, 4, 0), "fault_injection")) {
    const cn_term *rate = cn_tuple_elem(strat, 4, 1);
    if (rate->type != CN_FLOAT || !get_uint(cn_tuple_elem(strat, 4, 2), CN_FUSE_MAX_MELTS, &mr) ||
        !get_uint(cn_tuple_elem(strat, 4, 3), UINT32_MAX, &o.window_ms))
      return CN_EINVAL;
    o.kind = CN_FUSE_FAULT_INJECTION;
    o.rate = rate->v.f;
  } else {
    return CN_EINVAL;
  }
  o.max_melts = (uint32_t)mr;
  if (fuse_opts_check(&o)) return CN_EINVAL;
  *out = o;
  return 0;
}

int cn_fuse_install(cn_node *n, const char *name, const cn_fuse_opts *o) {
  if (!name || !name[0] || fuse_opts_check(o)) return CN_EINVAL;
  fuse_tab *t = tab_get(n, true);
  if (!t) return CN_ENOMEM;
  fuse *f = lookup(n, name);
  uint64_t seed = uv_hrtime() ^ (uintptr_t)t;
  if (f) { /* installed again: reset under the new options, as fuse_server's install of a known name */
    bool was = f->sm.blown;
    int rc = fuse_sm_init(&f->sm, o, seed);
    if (!rc && was) notify(t, f->name, CN_FUSE_HEALED);
    return rc;
  }
  if (!(f = cn_calloc(1, sizeof *f)) || !(f->name = cn_malloc(strlen(name) + 1))) {
    cn_free(f);
    return CN_ENOMEM;
  }
  strcpy(f->name, name);
  int rc = fuse_sm_init(&f->sm, o, seed);
  if (rc) {
    cn_free(f->name);
    cn_free(f);
    return rc;
  }
  f->tab = t;
  f->refs = 1;
  f->guard = (cn_call_guard){.admit = guard_admit, .done = guard_done, .ctx = f};
  HASH_ADD_KEYPTR(hh, t->by_name, f->name, strlen(f->name), f);
  return 0;
}

int cn_fuse_ask(cn_node *n, const char *name) {
  fuse *f = lookup(n, name);
  return f ? fuse_sm_ask(&f->sm) : CN_ENOTFOUND;
}

int cn_fuse_melt(cn_node *n, const char *name) {
  fuse *f = lookup(n, name);
  if (!f) return CN_ENOTFOUND;
  changed(f, fuse_sm_melt(&f->sm, now_ms(n)));
  return 0;
}

int cn_fuse_reset(cn_node *n, const char *name) {
  fuse *f = lookup(n, name);
  if (!f) return CN_ENOTFOUND;
  changed(f, fuse_sm_reset(&f->sm));
  return 0;
}

int cn_fuse_remove(cn_node *n, const char *name) {
  fuse *f = lookup(n, name);
  if (!f) return CN_ENOTFOUND;
  HASH_DEL(f->tab->by_name, f);
  f->removed = true;
  if (f->sm.blown) fuse_alarm(n, f->name, false);
  notify(f->tab, f->name, CN_FUSE_REMOVED);
  fuse_unref(f);
  return 0;
}

int cn_fuse_monitor(cn_node *n, cn_fuse_fn fn, void *ctx) {
  fuse_tab *t = fn ? tab_get(n, true) : NULL;
  if (!fn) return CN_EINVAL;
  if (!t) return CN_ENOMEM;
  if (t->nmon == MAX_MONITORS) return CN_ELIMIT;
  t->mon[t->nmon].fn = fn;
  t->mon[t->nmon++].ctx = ctx;
  return 0;
}
