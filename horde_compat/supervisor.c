/* supervisor.c: a Horde.DynamicSupervisor member in C (spec horde-wire.md §5, horde-supervisor.md "C node side"):
 * the CRDT 'N.Crdt' (crdt.c), the process N playing DynamicSupervisorImpl's part (membership and member_node_info,
 * placement, start_child and proxy_operation, handoff and the recovery rules, the C children and their restarts,
 * graceful shutdown) and 'N.ProcessesSupervisor' (which_children, count_children). */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "hc_int.h"
#include "horde.h"

#define TICK_MS 250  /* own-status check and orphan scan */
#define POLL_MS 100  /* shutdown: how often peers' CRDTs are read */
#define RETRY_MS 100 /* a restart whose start failed is tried again after this */
#define MEMBER_MOD "Elixir.Horde.DynamicSupervisor.Member"
#define TTL_INF (-1)

enum { R_PERMANENT, R_TRANSIENT, R_TEMPORARY };
/* A local child's state: running; being stopped for terminate_child (key already deleted); being stopped for a
 * graceful shutdown (relinquished when it ends); waiting for a restart retry. */
enum { C_RUNNING, C_TERMINATING, C_RELINQUISHING, C_RESTARTING };

typedef struct child {
  cn_term *id;   /* the random ChildId */
  cn_term *spec; /* the spec as stored: id => ChildId */
  cn_pid pid;
  int restart, state;
  int64_t shutdown_ms; /* -1: infinity; 0: brutal_kill */
  uint64_t kill_timer;
  uint64_t *starts; /* times of the restarts inside the intensity window (ms) */
  size_t nstarts;
} child;

/* One name of the member mirror: {member, M} and {member_node_info, M} as the crdt_update diffs give them. */
typedef struct member {
  cn_term *name;
  bool is_member, has_info, monitored;
  cn_horde_status status;
  cn_ref mref;
} member;

typedef struct entry {
  const cn_atom *mod;
  cn_horde_start_fn fn;
  void *ctx;
} entry;

/* A C child that looked orphaned in a scan, and since when (rules 5-7). */
typedef struct cand {
  cn_term *id;
  uint64_t since;
  bool seen;
} cand;

/* The ring of the members eligible for one kind of child: 0 C-capable, 1 the others. */
typedef struct pring {
  bool valid;
  hc_ring r;
  const cn_term **names; /* borrowed from the member mirror */
} pring;

/* Graceful shutdown: children first, then polls of the peers' CRDTs until they show it. */
typedef struct sdown {
  bool on, begun, waiting, over; /* asked for; children being stopped; peers being polled; finished */
  cn_horde_done_fn done;
  void *ctx;
  cn_term **keys; /* the keys peers must show: own member_node_info, then the relinquished children */
  size_t nkeys;
  uint64_t deadline;
  int asked, answered, seen; /* the current poll round */
} sdown;

struct cn_horde_sup {
  cn_node *n;
  cn_crdt *crdt; /* NULL once the CRDT ended */
  cn_pid crdt_pid, pid, psup_pid;
  cn_proc *self; /* the process N while it runs a handler, else NULL */
  bool alive, monitoring, shutting_down, want_stop;
  bool dirty;    /* the CRDT or the connected nodes changed since the last orphan scan */
  cn_pid *links; /* processes N is to link to at its next wake-up (asked outside its handler) */
  size_t nlinks;
  int refs; /* the CRDT, N and 'N.ProcessesSupervisor' */
  char name[256];
  cn_term *self_member; /* {N, node()} */
  cn_horde_sup_opts o;
  member *mem;
  size_t nmem;
  pring ring[2];
  child **ch;
  size_t nch;
  entry *ent;
  size_t nent;
  cand *cand;
  size_t ncand;
  sdown sd;
  uint64_t tick;
};

static uint64_t now_ms(void) { return uv_hrtime() / 1000000; }
static cn_term *atom(cn_horde_sup *s, const char *a) { return cn_mk_atomc(s->n, a); }
static cn_term *err1(cn_horde_sup *s, cn_term *why) { return cn_mk_tuple(2, atom(s, "error"), why); }
static cn_term *bin(const char *txt) { return cn_mk_binary(txt, strlen(txt)); }

static void logt(cn_horde_sup *s, cn_log_level level, const char *what, const cn_term *t) {
  char *txt = t ? cn_term_to_string(t) : NULL;
  cn_log(s->n, level, "%s: %s %.300s", s->name, what, txt ? txt : "");
  cn_free(txt);
}

/* Wakes N up to act on what was asked of it outside its handler (want_stop, sd.on, links). Requests go through
 * these fields rather than messages, so that no peer can make N stop or link by sending it something. */
static void wake(cn_horde_sup *s) {
  cn_term *m = s->alive ? cn_mk_atomc(s->n, "$hc_wake") : NULL;
  if (m) cn_send(s->n, NULL, s->pid, m);
  cn_term_free(m);
}

static void send_later(cn_horde_sup *s, unsigned ms, cn_term *m, uint64_t *timer) {
  if (m && s->alive) cn_send_after(s->n, ms, s->pid, m, timer);
  cn_term_free(m);
}

/* ---- The member mirror and placement ----------------------------------------------------------------------------- */

static void ring_reset(pring *p) {
  if (p->valid) hc_ring_free(&p->r);
  cn_free(p->names);
  p->names = NULL;
  p->valid = false;
}

/* The member mirror changed: both rings are rebuilt on their next use. */
static void rings_dirty(cn_horde_sup *s) {
  ring_reset(&s->ring[0]);
  ring_reset(&s->ring[1]);
}

static member *mem_find(cn_horde_sup *s, const cn_term *name) {
  for (size_t i = 0; i < s->nmem; i++)
    if (cn_term_eq(s->mem[i].name, name)) return &s->mem[i];
  return NULL;
}

static member *mem_get(cn_horde_sup *s, const cn_term *name) {
  member *m = mem_find(s, name);
  if (m || !hc_is_member(name)) return m;
  cn_term *copy = cn_term_copy(name);
  member *v = copy ? cn_realloc(s->mem, (s->nmem + 1) * sizeof *v) : NULL;
  if (!v) {
    cn_term_free(copy);
    return NULL;
  }
  s->mem = v;
  size_t at = 0; /* kept in term order, as Horde's member map iterates */
  while (at < s->nmem && cn_term_cmp(v[at].name, name) < 0) at++;
  memmove(&v[at + 1], &v[at], (s->nmem - at) * sizeof *v);
  memset(&v[at], 0, sizeof *v);
  v[at].name = copy;
  s->nmem++;
  rings_dirty(s);
  return &v[at];
}

/* A member's status as Horde's members(state) gives it to the strategy. */
static cn_horde_status mem_status(const member *m) {
  return m->is_member && m->has_info ? m->status : CN_HORDE_UNINITIALIZED;
}

static int ring_get(cn_horde_sup *s, int kind, pring **out) {
  pring *p = &s->ring[kind];
  if (!p->valid) {
    ring_reset(p);
    if (!(p->names = cn_calloc(s->nmem + 1, sizeof *p->names))) return CN_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < s->nmem; i++)
      if (mem_status(&s->mem[i]) == CN_HORDE_ALIVE && cn_horde_c_member(s->mem[i].name) == (kind == 0))
        p->names[k++] = s->mem[i].name;
    int rc = hc_ring_build(&p->r, p->names, k);
    if (rc) {
      ring_reset(p);
      return rc;
    }
    p->valid = true;
  }
  *out = p;
  return 0;
}

/* The member the FILTERED rule picks for spec (borrowed from the mirror): 0, CN_ENOTFOUND (no_alive_nodes),
 * CN_EINVAL (spec is not a map) or CN_ENOMEM. */
static int choose(cn_horde_sup *s, const cn_term *spec, const cn_term **owner) {
  uint32_t h;
  pring *p;
  int rc = hc_spec_key(spec, &h);
  if (!rc) rc = ring_get(s, cn_horde_c_child(spec) ? 0 : 1, &p);
  if (rc) return rc;
  long i = hc_ring_owner(&p->r, h);
  if (i < 0) return CN_ENOTFOUND;
  *owner = p->names[i];
  return 0;
}

static bool is_self(cn_horde_sup *s, const cn_term *name) { return cn_term_eq(name, s->self_member); }

static cn_term *info_value(cn_horde_sup *s, const cn_term *name, const char *status) {
  cn_term *kv[] = {atom(s, "__struct__"), atom(s, MEMBER_MOD), atom(s, "name"),
                   cn_term_copy(name),    atom(s, "status"),   atom(s, status)};
  return cn_mk_map(3, kv);
}

static int put_keyed(cn_horde_sup *s, const char *tag, const cn_term *k, cn_term *v) {
  cn_term *key = hc_mk_keyed(s->n, tag, k);
  int rc = key && v && s->crdt ? cn_crdt_put(s->crdt, key, v) : CN_ENOMEM;
  cn_term_free(key);
  cn_term_free(v);
  return rc;
}

static int delete_keyed(cn_horde_sup *s, const char *tag, const cn_term *k) {
  cn_term *key = hc_mk_keyed(s->n, tag, k);
  int rc = key && s->crdt ? cn_crdt_delete(s->crdt, key) : CN_ENOMEM;
  cn_term_free(key);
  return rc;
}

/* set_own_node_status: writes this member's info when the mirror (or, with check, the CRDT) shows it otherwise. */
static void own_status(cn_horde_sup *s, bool check_crdt) {
  cn_horde_status want = s->shutting_down ? CN_HORDE_SHUTTING_DOWN : CN_HORDE_ALIVE;
  member *m = mem_get(s, s->self_member);
  bool ok = m && m->has_info && m->status == want;
  if (ok && check_crdt && s->crdt) {
    cn_term *key = hc_mk_keyed(s->n, "member_node_info", s->self_member);
    cn_horde_member cur;
    const cn_term *v = key ? cn_crdt_get(s->crdt, key) : NULL;
    ok = v && !cn_horde_member_parse(v, &cur) && cur.status == want && cn_term_eq(cur.name, s->self_member);
    cn_term_free(key);
  }
  if (ok || !m) return;
  const char *st = want == CN_HORDE_ALIVE ? "alive" : "shutting_down";
  if (!put_keyed(s, "member_node_info", s->self_member, info_value(s, s->self_member, st))) {
    m->has_info = true;
    m->status = want;
    rings_dirty(s);
  }
}

/* Monitors the process N of every alive member not monitored yet (Horde's monitor_supervisors). */
static void monitor_members(cn_horde_sup *s) {
  if (!s->self) return;
  for (size_t i = 0; i < s->nmem; i++) {
    member *m = &s->mem[i];
    if (m->monitored || mem_status(m) != CN_HORDE_ALIVE || is_self(s, m->name)) continue;
    m->monitored = cn_monitor(s->self, m->name, &m->mref) == 0;
  }
}

static void push_neighbours(cn_horde_sup *s) {
  cn_term **v = cn_calloc(s->nmem + 1, sizeof *v);
  if (!v) return;
  size_t k = 0;
  for (size_t i = 0; i < s->nmem; i++)
    if (s->mem[i].is_member) v[k++] = s->mem[i].name;
  hc_push_neighbours(s->n, s->crdt, v, k, s->self_member);
  cn_free(v);
}

/* ---- Spec reading ------------------------------------------------------------------------------------------------ */

typedef struct cspec {
  const cn_term *mod, *fun, *args;
  int restart;
  int64_t shutdown_ms;
} cspec;

/* {What, T} (a new term, T copied), or NULL on OOM. */
static cn_term *reason(cn_horde_sup *s, const char *what, const cn_term *t) {
  return cn_mk_tuple(2, atom(s, what), cn_term_copy(t));
}

/* Reads a child spec as Horde.ProcessesSupervisor validates it. 0 when it is valid (cs filled in); CN_EINVAL with
 * the reason {Fault, Part} (a new term) in *why; CN_ENOMEM, *why NULL, when memory ran out building the reason.
 * Only 0 fills cs. */
static int read_spec(cn_horde_sup *s, const cn_term *spec, cspec *cs, cn_term **why) {
  const cn_term *st = hc_map_get(spec, "start"), *r = hc_map_get(spec, "restart"), *sd = hc_map_get(spec, "shutdown"),
                *ty = hc_map_get(spec, "type"), *part;
  const char *fault;
  *why = NULL;
  cspec c;
  if (!hc_map_get(spec, "id") || !st) {
    fault = "invalid_child_spec", part = spec;
    goto invalid;
  }
  c.mod = cn_tuple_elem(st, 3, 0);
  c.fun = cn_tuple_elem(st, 3, 1);
  c.args = cn_tuple_elem(st, 3, 2);
  if (!c.mod || c.mod->type != CN_ATOM || c.fun->type != CN_ATOM || !hc_proper_list(c.args)) {
    fault = "invalid_mfa", part = st;
    goto invalid;
  }
  c.restart = !r || cn_is_atom(r, "permanent") ? R_PERMANENT
              : cn_is_atom(r, "transient")     ? R_TRANSIENT
              : cn_is_atom(r, "temporary")     ? R_TEMPORARY
                                               : -1;
  if (c.restart < 0) {
    fault = "invalid_restart_type", part = r;
    goto invalid;
  }
  bool sup = ty && cn_is_atom(ty, "supervisor");
  if (ty && !sup && !cn_is_atom(ty, "worker")) {
    fault = "invalid_child_type", part = ty;
    goto invalid;
  }
  c.shutdown_ms = !sd                                  ? (sup ? -1 : 5000)
                  : cn_is_atom(sd, "infinity")         ? -1
                  : cn_is_atom(sd, "brutal_kill")      ? 0
                  : sd->type == CN_INT && sd->v.i >= 0 ? sd->v.i
                                                       : -2;
  if (c.shutdown_ms < -1) {
    fault = "invalid_shutdown", part = sd;
    goto invalid;
  }
  *cs = c;
  return 0;
invalid:
  *why = reason(s, fault, part);
  return *why ? CN_EINVAL : CN_ENOMEM;
}

/* The spec with id => Id (a new map). */
static cn_term *with_id(cn_horde_sup *s, const cn_term *spec, const cn_term *id) {
  size_t n = spec->v.map.size, k = 0;
  cn_term **kv = cn_calloc(2 * n + 3, sizeof *kv);
  if (!kv) return NULL;
  for (size_t i = 0; i < n; i++) {
    if (cn_is_atom(&spec->v.map.kv[2 * i], "id")) continue;
    kv[k++] = cn_term_copy(&spec->v.map.kv[2 * i]);
    kv[k++] = cn_term_copy(&spec->v.map.kv[2 * i + 1]);
  }
  kv[k++] = atom(s, "id");
  kv[k++] = cn_term_copy(id);
  cn_term *m = cn_mk_map(k / 2, kv); /* takes the pairs; a NULL among them fails it */
  cn_free(kv);
  return m;
}

/* rand:uniform(1 bsl 128): uniform in 1..2^128, a bignum. */
static cn_term *random_id(void) {
  uint8_t b[17] = {0};
  if (getrandom(b, 16, 0) != 16) {
    uint64_t x = uv_hrtime() * 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < 16; i++, x = x * 6364136223846793005ULL + 1442695040888963407ULL) b[i] = (uint8_t)(x >> 56);
  }
  for (int i = 0; i < 17 && ++b[i] == 0; i++) {}
  size_t len = 17;
  while (len > 1 && !b[len - 1]) len--;
  return cn_mk_big(0, b, len);
}

/* ---- Local children ---------------------------------------------------------------------------------------------- */

static child *child_by_pid(cn_horde_sup *s, cn_pid pid) {
  for (size_t i = 0; i < s->nch; i++)
    if (hc_pid_eq(s->ch[i]->pid, pid)) return s->ch[i];
  return NULL;
}

static child *child_by_id(cn_horde_sup *s, const cn_term *id) {
  for (size_t i = 0; i < s->nch; i++)
    if (cn_term_eq(s->ch[i]->id, id)) return s->ch[i];
  return NULL;
}

static void child_drop(cn_horde_sup *s, child *c) {
  for (size_t i = 0; i < s->nch; i++)
    if (s->ch[i] == c) {
      s->ch[i] = s->ch[--s->nch];
      break;
    }
  if (c->kill_timer) cn_cancel_timer(s->n, c->kill_timer);
  cn_term_free(c->id);
  cn_term_free(c->spec);
  cn_free(c->starts);
  cn_free(c);
}

static const entry *entry_of(cn_horde_sup *s, const cn_term *mod) {
  for (size_t i = 0; i < s->nent; i++)
    if (s->ent[i].mod == mod->v.atom || !strcmp(s->ent[i].mod->name, mod->v.atom->name)) return &s->ent[i];
  return NULL;
}

/* {error, {undef, [{M, F, Args, []}]}}, as apply/3 of a module this node does not have. */
static cn_term *undef(cn_horde_sup *s, const cspec *cs) {
  return err1(s, cn_mk_tuple(2, atom(s, "undef"),
                             cn_mk_list(1, cn_mk_tuple(4, cn_term_copy(cs->mod), cn_term_copy(cs->fun),
                                                       cn_term_copy(cs->args), cn_mk_nil()))));
}

/* Runs the entry point of cs's module: 0 and *pid, or the {error, _} reply (a new term) in *reply. */
static int run_entry(cn_horde_sup *s, const cspec *cs, cn_pid *pid, cn_term **reply) {
  const entry *e = entry_of(s, cs->mod);
  if (!e) {
    *reply = undef(s, cs);
    return CN_ENOTFOUND;
  }
  cn_term *why = NULL;
  int rc = e->fn(s->n, cs->fun->v.atom, cs->args, e->ctx, pid, &why);
  if (rc)
    *reply = err1(s, why ? why : atom(s, cn_err_reason(rc)));
  else
    cn_term_free(why);
  return rc;
}

/* N links to pid in its own context: now (from a handler of N), or at its next wake-up. */
static void link_to(cn_horde_sup *s, cn_pid pid) {
  if (s->self) {
    cn_link(s->self, pid);
    return;
  }
  cn_pid *v = cn_realloc(s->links, (s->nlinks + 1) * sizeof *v);
  if (!v) return;
  s->links = v;
  v[s->nlinks++] = pid;
  wake(s);
}

/* Writes {process, Id} => {{N, node()}, Spec, Pid}. */
static void write_running(cn_horde_sup *s, const child *c) {
  put_keyed(s, "process", c->id,
            cn_mk_tuple(3, cn_term_copy(s->self_member), cn_term_copy(c->spec), cn_mk_pid(c->pid)));
}

/* Starts spec (already carrying its Id) here: the reply {ok, Pid} | {error, Reason} (a new term). */
static cn_term *start_local(cn_horde_sup *s, const cn_term *spec) {
  cspec cs;
  cn_term *why, *reply = NULL;
  if (read_spec(s, spec, &cs, &why)) return err1(s, why ? why : atom(s, "enomem"));
  child *c = cn_calloc(1, sizeof *c);
  child **v = c ? cn_realloc(s->ch, (s->nch + 1) * sizeof *v) : NULL;
  if (!v || !(c->spec = cn_term_copy(spec)) || !(c->id = cn_term_copy(hc_map_get(spec, "id")))) {
    if (v) s->ch = v;
    if (c) cn_term_free(c->spec);
    cn_free(c);
    return err1(s, atom(s, "enomem"));
  }
  s->ch = v;
  if (run_entry(s, &cs, &c->pid, &reply)) {
    cn_term_free(c->spec);
    cn_term_free(c->id);
    cn_free(c);
    return reply;
  }
  c->restart = cs.restart;
  c->shutdown_ms = cs.shutdown_ms;
  s->ch[s->nch++] = c;
  link_to(s, c->pid);
  write_running(s, c);
  return cn_mk_tuple(2, atom(s, "ok"), cn_mk_pid(c->pid));
}

/* Starts spec under a new random Id (a start_child, a handoff, an adoption). */
static cn_term *start_new(cn_horde_sup *s, const cn_term *spec) {
  cn_term *id = random_id(), *sp = id ? with_id(s, spec, id) : NULL;
  cn_term *reply = sp ? start_local(s, sp) : err1(s, atom(s, "enomem"));
  cn_term_free(id);
  cn_term_free(sp);
  return reply;
}

static void log_reply(cn_horde_sup *s, const char *what, cn_term *reply) {
  if (reply && !cn_is_atom(cn_tuple_elem(reply, 2, 0), "ok")) logt(s, CN_LOG_WARN, what, reply);
  cn_term_free(reply);
}

/* Stops a child: exit shutdown (kill after its shutdown time), or kill at once for brutal_kill. */
static void stop_child(cn_horde_sup *s, child *c, int state) {
  c->state = state;
  cn_term *why = atom(s, c->shutdown_ms == 0 ? "kill" : "shutdown");
  if (why) cn_exit(s->n, s->self, c->pid, why);
  cn_term_free(why);
  unsigned ms = c->shutdown_ms > 86400000 ? 86400000 : (unsigned)c->shutdown_ms; /* at most a day */
  if (c->shutdown_ms > 0) send_later(s, ms, cn_mk_tuple(2, atom(s, "$hc_kill"), cn_mk_pid(c->pid)), &c->kill_timer);
}

/* Counts a restart against max_restarts in max_seconds; false when the child has used them up. */
static bool may_restart(cn_horde_sup *s, child *c) {
  uint64_t now = now_ms(), win = (uint64_t)s->o.max_seconds * 1000;
  size_t k = 0;
  for (size_t i = 0; i < c->nstarts; i++)
    if (c->starts[i] + win >= now) c->starts[k++] = c->starts[i];
  c->nstarts = k;
  if (k >= s->o.max_restarts) return false;
  uint64_t *v = cn_realloc(c->starts, (k + 1) * sizeof *v);
  if (!v) return false;
  c->starts = v;
  v[c->nstarts++] = now;
  return true;
}

/* Restarts a child under the same Id and rewrites {process, Id} with the new pid; a failed start is retried. */
static void restart(cn_horde_sup *s, child *c) {
  if (!may_restart(s, c)) {
    logt(s, CN_LOG_WARN, "gave up restarting (max_restarts reached):", c->spec);
    delete_keyed(s, "process", c->id);
    child_drop(s, c);
    return;
  }
  cspec cs;
  cn_pid pid;
  cn_term *why, *reply = NULL;
  int rc = read_spec(s, c->spec, &cs, &why);
  if (!rc && !run_entry(s, &cs, &pid, &reply)) {
    c->pid = pid;
    c->state = C_RUNNING;
    link_to(s, c->pid);
    write_running(s, c);
    return;
  }
  log_reply(s, "restart failed:", rc ? err1(s, why ? why : atom(s, "enomem")) : reply);
  c->state = C_RESTARTING;
  send_later(s, RETRY_MS, cn_mk_tuple(2, atom(s, "$hc_restart"), cn_term_copy(c->id)), NULL);
}

static bool shutdown_reason(const cn_term *r) {
  return cn_is_atom(r, "normal") || cn_is_atom(r, "shutdown") ||
         (hc_tuple_n(r, 2) && cn_is_atom(&r->v.tuple.e[0], "shutdown"));
}

static void relinquish(cn_horde_sup *s, child *c);

/* A linked child ended (Horde.ProcessesSupervisor's maybe_restart_child). */
static void child_exit(cn_horde_sup *s, child *c, const cn_term *reason) {
  if (c->state == C_TERMINATING) {
    child_drop(s, c);
  } else if (c->state == C_RELINQUISHING || (hc_tuple_n(reason, 2) && cn_is_atom(&reason->v.tuple.e[0], "shutdown") &&
                                             cn_is_atom(&reason->v.tuple.e[1], "process_redistribution"))) {
    relinquish(s, c);
  } else if (c->restart == R_PERMANENT || (c->restart == R_TRANSIENT && !shutdown_reason(reason))) {
    restart(s, c);
  } else {
    delete_keyed(s, "process", c->id); /* disown_child_process */
    child_drop(s, c);
  }
}

cn_term *cn_horde_which_children(cn_horde_sup *s) {
  cn_term **v = cn_calloc(s->nch + 1, sizeof *v);
  if (!v) return NULL;
  for (size_t i = 0; i < s->nch; i++) {
    const child *c = s->ch[i];
    const cn_term *ty = hc_map_get(c->spec, "type"), *mods = hc_map_get(c->spec, "modules");
    const cn_term *mod = cn_tuple_elem(hc_map_get(c->spec, "start"), 3, 0);
    v[i] = cn_mk_tuple(4, cn_term_copy(c->id), c->state == C_RESTARTING ? atom(s, "restarting") : cn_mk_pid(c->pid),
                       ty ? cn_term_copy(ty) : atom(s, "worker"),
                       mods ? cn_term_copy(mods) : cn_mk_list(1, cn_term_copy(mod)));
  }
  cn_term *l = cn_mk_listv(s->nch, v, NULL);
  cn_free(v);
  return l;
}

cn_term *cn_horde_count_children(cn_horde_sup *s) {
  int64_t act = 0, sups = 0;
  for (size_t i = 0; i < s->nch; i++) {
    act += s->ch[i]->state != C_RESTARTING;
    sups += cn_is_atom(hc_map_get(s->ch[i]->spec, "type"), "supervisor");
  }
  int64_t nums[] = {(int64_t)s->nch, act, sups, (int64_t)s->nch - sups};
  const char *keys[] = {"specs", "active", "supervisors", "workers"};
  cn_term *v[4];
  for (int i = 0; i < 4; i++) v[i] = cn_mk_tuple(2, atom(s, keys[i]), cn_mk_int(nums[i]));
  return cn_mk_list(4, v[0], v[1], v[2], v[3]);
}

/* ---- Shutdown, relinquished children ----------------------------------------------------------------------------- */

static void check_shutdown(cn_horde_sup *s);

/* Writes {process, Id} => {nil, Spec} for the ring's next choice (Horde's relinquish_child_process). */
static void relinquish(cn_horde_sup *s, child *c) {
  put_keyed(s, "process", c->id, cn_mk_tuple(2, atom(s, "nil"), cn_term_copy(c->spec)));
  logt(s, CN_LOG_INFO, "relinquished child", c->id);
  cn_term **v = s->sd.begun ? cn_realloc(s->sd.keys, (s->sd.nkeys + 1) * sizeof *v) : NULL;
  if (v) {
    s->sd.keys = v;
    if ((v[s->sd.nkeys] = hc_mk_keyed(s->n, "process", c->id))) s->sd.nkeys++;
  }
  child_drop(s, c);
  check_shutdown(s);
}

static void finish_shutdown(cn_horde_sup *s, const char *how) {
  cn_horde_done_fn done = s->sd.done;
  s->sd.done = NULL;
  s->sd.waiting = false;
  s->sd.over = true;
  cn_log(s->n, CN_LOG_INFO, "%s: shutdown: %zu children relinquished, %s", s->name, s->sd.nkeys ? s->sd.nkeys - 1 : 0,
         how);
  if (done) done(s, s->sd.ctx);
}

/* True when a peer's {read, Keys} answer shows this member not alive and none of its children as its own. */
static bool peer_saw(cn_horde_sup *s, const cn_term *reply) {
  if (!reply || reply->type != CN_MAP) return false;
  cn_horde_member m;
  const cn_term *info = hc_map_find(reply, s->sd.keys[0]);
  if (info && (cn_horde_member_parse(info, &m) || m.status == CN_HORDE_ALIVE)) return false;
  for (size_t i = 1; i < s->sd.nkeys; i++) {
    const cn_term *v = hc_map_find(reply, s->sd.keys[i]);
    if (hc_tuple_n(v, 3) && is_self(s, &v->v.tuple.e[0])) return false;
  }
  return true;
}

static void poll_peers(cn_horde_sup *s);

static void poll_done(cn_proc *self, int status, const cn_term *reply, void *ctx) {
  (void)self;
  cn_horde_sup *s = ctx;
  if (status == CN_ECLOSED || !s->sd.waiting) return;
  s->sd.answered++;
  s->sd.seen += status == 0 && peer_saw(s, reply);
  if (s->sd.answered < s->sd.asked) return;
  if (s->sd.seen == s->sd.asked)
    finish_shutdown(s, "seen by every peer");
  else
    send_later(s, POLL_MS, atom(s, "$hc_poll"), NULL);
}

/* This node, or a node connected to it (visible or hidden), however many there are. */
static bool node_up(cn_horde_sup *s, const cn_term *node) {
  return node->v.atom == cn_node_name(s->n) || cn_node_is_up(s->n, node->v.atom, CN_NODES_ALL);
}

/* One round: {read, Keys} to the CRDT of every connected peer member. */
static void poll_peers(cn_horde_sup *s) {
  if (!s->sd.waiting || !s->self || s->sd.answered < s->sd.asked) return; /* a round is still out */
  if (now_ms() >= s->sd.deadline) {
    finish_shutdown(s, "peers not all seen in time");
    return;
  }
  cn_term *req = cn_mk_tuple(2, atom(s, "read"), hc_list_copy(s->sd.keys, s->sd.nkeys));
  s->sd.asked = s->sd.answered = s->sd.seen = 0;
  for (size_t i = 0; req && i < s->nmem; i++) {
    const cn_term *m = s->mem[i].name;
    if (!s->mem[i].is_member || is_self(s, m) || !node_up(s, &m->v.tuple.e[1])) continue;
    cn_term *dest = hc_member_proc(s->n, m, ".Crdt");
    if (dest && !cn_call(s->self, dest, req, 1000, poll_done, s)) s->sd.asked++;
    cn_term_free(dest);
  }
  cn_term_free(req);
  if (!s->sd.asked) finish_shutdown(s, "no peer to tell");
}

/* Once every child has been relinquished: one sync round, then polls until the peers show it. */
static void check_shutdown(cn_horde_sup *s) {
  if (!s->sd.begun || s->sd.waiting || s->sd.over || s->nch) return;
  s->sd.waiting = true;
  s->sd.deadline = now_ms() + s->o.shutdown_wait_ms;
  if (s->crdt) cn_crdt_sync_now(s->crdt);
  send_later(s, POLL_MS, atom(s, "$hc_poll"), NULL);
}

static void begin_shutdown(cn_horde_sup *s) {
  s->sd.begun = true;
  s->shutting_down = true;
  own_status(s, false);
  s->sd.keys = cn_calloc(1, sizeof *s->sd.keys);
  if (s->sd.keys && (s->sd.keys[0] = hc_mk_keyed(s->n, "member_node_info", s->self_member))) s->sd.nkeys = 1;
  if (!s->sd.nkeys) {
    finish_shutdown(s, "out of memory");
    return;
  }
  for (size_t i = s->nch; i-- > 0;) {
    child *c = s->ch[i];
    if (c->state == C_RESTARTING)
      relinquish(s, c);
    else if (c->state == C_RUNNING)
      stop_child(s, c, C_RELINQUISHING);
  }
  check_shutdown(s);
}

/* ---- Handoff and recovery (spec §5.4, horde-supervisor.md rules 4-7) --------------------------------------------- */

/* Called with a {process, Id} key, its Id and its value; false stops the walk. */
typedef bool (*proc_fn)(cn_horde_sup *s, const cn_term *key, const cn_term *id, const cn_term *v, void *ctx);

/* Runs fn on every {process, Id} => V of the CRDT's current read (a copy: fn may write). */
static void each_process(cn_horde_sup *s, proc_fn fn, void *ctx) {
  cn_term *all = s->crdt ? cn_crdt_read(s->crdt) : NULL;
  bool go = true;
  for (size_t i = 0; all && go && i < all->v.map.size; i++) {
    const cn_term *k = &all->v.map.kv[2 * i];
    if (hc_tuple_n(k, 2) && cn_is_atom(&k->v.tuple.e[0], "process"))
      go = fn(s, k, &k->v.tuple.e[1], &all->v.map.kv[2 * i + 1], ctx);
  }
  cn_term_free(all);
}

/* The spec of a C child's entry value ({Owner, Spec, Pid} or {nil, Spec}), else NULL. */
static const cn_term *c_spec(const cn_term *v) {
  const cn_term *spec = hc_tuple_n(v, 3) ? &v->v.tuple.e[1] : hc_tuple_n(v, 2) ? &v->v.tuple.e[1] : NULL;
  if (hc_tuple_n(v, 2) && !cn_is_atom(&v->v.tuple.e[0], "nil")) return NULL;
  return spec && cn_horde_c_child(spec) ? spec : NULL;
}

static bool chosen_here(cn_horde_sup *s, const cn_term *spec) {
  const cn_term *owner;
  return !s->shutting_down && !choose(s, spec, &owner) && is_self(s, owner);
}

/* The key still holds v (the read it was found in may be stale by now). */
static bool still(cn_horde_sup *s, const cn_term *key, const cn_term *v) {
  const cn_term *cur = s->crdt ? cn_crdt_get(s->crdt, key) : NULL;
  return cur && cn_term_eq(cur, v);
}

/* Deletes the entry and starts its spec here under a new Id (Horde's handoff; forgetting the old Id at once). */
static void take_over(cn_horde_sup *s, const cn_term *key, const cn_term *spec, const char *why) {
  delete_keyed(s, "process", &key->v.tuple.e[1]);
  cn_term *reply = start_new(s, spec);
  if (cn_is_atom(cn_tuple_elem(reply, 2, 0), "ok")) logt(s, CN_LOG_INFO, why, &key->v.tuple.e[1]);
  log_reply(s, "could not take over a child:", reply);
}

/* Step 5 of §5.4: a C child whose owner is marked dead and that the ring now gives to this member. */
static bool handoff_one(cn_horde_sup *s, const cn_term *key, const cn_term *id, const cn_term *v, void *ctx) {
  (void)id, (void)ctx;
  const cn_term *spec = c_spec(v);
  member *m = spec && hc_tuple_n(v, 3) && !is_self(s, &v->v.tuple.e[0]) ? mem_find(s, &v->v.tuple.e[0]) : NULL;
  if (m && m->has_info && m->status == CN_HORDE_DEAD && chosen_here(s, spec))
    take_over(s, key, spec, "took over the child of a dead member:");
  return true;
}

/* Starts spec here keeping Id (a relinquished child, an own entry found not running). */
static void start_keeping(cn_horde_sup *s, const cn_term *id, const cn_term *spec, const char *what) {
  cn_term *sp = with_id(s, spec, id);
  log_reply(s, what, sp ? start_local(s, sp) : NULL);
  cn_term_free(sp);
}

/* A relinquished C child ({nil, Spec}) that the ring gives to this member: started keeping its Id (rule 7). */
static void adopt_relinquished(cn_horde_sup *s, const cn_term *id, const cn_term *spec) {
  if (!child_by_id(s, id) && chosen_here(s, spec)) start_keeping(s, id, spec, "could not start a relinquished child:");
}

static cand *cand_get(cn_horde_sup *s, const cn_term *id) {
  for (size_t i = 0; i < s->ncand; i++)
    if (cn_term_eq(s->cand[i].id, id)) return &s->cand[i];
  cand *v = cn_realloc(s->cand, (s->ncand + 1) * sizeof *v);
  if (!v) return NULL;
  s->cand = v;
  cand *c = &v[s->ncand];
  if (!(c->id = cn_term_copy(id))) return NULL;
  c->since = now_ms();
  s->ncand++;
  return c;
}

static bool synced(cn_horde_sup *s) {
  cn_crdt_stats st;
  cn_crdt_get_stats(s->crdt, &st);
  if (st.joins) return true;
  for (size_t i = 0; i < s->nmem; i++)
    if (s->mem[i].is_member && !is_self(s, s->mem[i].name)) return false;
  return true;
}

/* Rules 5-7 for one entry: own-name entries not running here (after the first sync), C children whose owner is
 * neither an alive member nor connected, relinquished ones nobody took; acted on once they held orphan_ms. */
static bool scan_one(cn_horde_sup *s, const cn_term *key, const cn_term *id, const cn_term *v, void *ctx) {
  (void)ctx;
  const cn_term *spec = c_spec(v), *owner = hc_tuple_n(v, 3) ? &v->v.tuple.e[0] : NULL;
  if (!spec || (owner && !hc_is_member(owner))) return true;
  bool mine = owner && is_self(s, owner);
  member *m = owner && !mine ? mem_find(s, owner) : NULL;
  if (mine ? child_by_id(s, id) || !synced(s)
           : owner && ((m && mem_status(m) == CN_HORDE_ALIVE) || node_up(s, &owner->v.tuple.e[1])))
    return true;
  cand *c = cand_get(s, id);
  if (!c) return true;
  c->seen = true;
  if (now_ms() - c->since < s->o.orphan_ms || !still(s, key, v)) return true;
  c->since = now_ms();
  if (mine) {
    logt(s, CN_LOG_INFO, "restarting an own entry found not running:", id);
    start_keeping(s, id, spec, "could not restart an own entry:");
  } else if (!owner) {
    adopt_relinquished(s, id, spec);
  } else if (chosen_here(s, spec)) {
    take_over(s, key, spec, "adopted an orphaned child:");
  }
  return true;
}

static void scan_orphans(cn_horde_sup *s) {
  s->dirty = false;
  if (s->shutting_down || !s->crdt) return;
  for (size_t i = 0; i < s->ncand; i++) s->cand[i].seen = false;
  each_process(s, scan_one, NULL);
  size_t k = 0;
  for (size_t i = 0; i < s->ncand; i++) {
    if (s->cand[i].seen)
      s->cand[k++] = s->cand[i];
    else
      cn_term_free(s->cand[i].id);
  }
  s->ncand = k;
}

/* ---- Diffs from the CRDT (Horde's crdt_update) ------------------------------------------------------------------- */

/* update_member: {member, M} (value 1 only, as Horde matches it) and {member_node_info, M}; true when it was one. */
static bool member_diff(cn_horde_sup *s, const cn_term *k, const cn_term *val, bool add) {
  bool memb = cn_is_atom(&k->v.tuple.e[0], "member"), info = cn_is_atom(&k->v.tuple.e[0], "member_node_info");
  if (!memb && !info) return false;
  member *m = add ? mem_get(s, &k->v.tuple.e[1]) : mem_find(s, &k->v.tuple.e[1]);
  cn_horde_member mi;
  if (!m) return true;
  if (memb && (!add || (val->type == CN_INT && val->v.i == 1))) m->is_member = add;
  if (info && !add) m->has_info = false;
  if (info && add && !cn_horde_member_parse(val, &mi)) {
    m->has_info = true;
    m->status = mi.status;
  }
  rings_dirty(s);
  return true;
}

/* Horde's reactions to a membership change (§5.4 steps 1-5; the quorum of UniformDistribution always holds). */
static void membership_changed(cn_horde_sup *s) {
  monitor_members(s);
  own_status(s, false);
  push_neighbours(s);
  each_process(s, handoff_one, NULL);
}

static void on_update(cn_horde_sup *s, const cn_term *diffs) {
  if (!hc_proper_list(diffs)) return;
  s->dirty = true;
  size_t n = diffs->type == CN_LIST ? diffs->v.list.len : 0;
  bool changed = false;
  for (int pass = 0; pass < 2; pass++) /* members first, then processes, as update_members/update_processes */
    for (size_t i = 0; i < n; i++) {
      const cn_term *d = &diffs->v.list.e[i];
      bool add = hc_tuple_n(d, 3) && cn_is_atom(&d->v.tuple.e[0], "add");
      const cn_term *k = add || (hc_tuple_n(d, 2) && cn_is_atom(&d->v.tuple.e[0], "remove")) ? &d->v.tuple.e[1] : NULL;
      if (!hc_tuple_n(k, 2)) continue;
      const cn_term *v = add ? &d->v.tuple.e[2] : NULL;
      if (pass == 0)
        changed |= member_diff(s, k, v, add);
      else if (add && cn_is_atom(&k->v.tuple.e[0], "process") && c_spec(v) && hc_tuple_n(v, 2))
        adopt_relinquished(s, &k->v.tuple.e[1], c_spec(v));
    }
  if (changed) membership_changed(s);
}

/* ---- Requests to N (direct calls and proxy_operation) ------------------------------------------------------------ */

static cn_term *ttl_expired(cn_horde_sup *s, const cn_term *req) {
  char txt[CN_ATOM_MAX_BYTES + 80]; /* the tag is an atom: the text is never cut */
  const cn_term *tag = req->type == CN_TUPLE && req->v.tuple.arity ? &req->v.tuple.e[0] : req;
  snprintf(txt, sizeof txt, "a proxied %s message was discard because its TTL expired",
           tag->type == CN_ATOM ? tag->v.atom->name : "?");
  return cn_mk_tuple(3, atom(s, "error"), atom(s, "proxy_operation_ttl_expired"), bin(txt));
}

/* Horde's proxy_to_node: ttl is what is left for this hop (TTL_INF: infinity). NULL when sent on. */
static cn_term *proxy(cn_horde_sup *s, const cn_term *owner, const cn_term *req, const cn_term *from, int64_t ttl) {
  if (ttl == 0) return ttl_expired(s, req);
  member *m = mem_find(s, owner);
  if (!m || mem_status(m) != CN_HORDE_ALIVE)
    return err1(s, cn_mk_tuple(2, atom(s, "node_dead_or_shutting_down"),
                               bin("the node responsible for this process is shutting down or dead, try again soon")));
  cn_term *msg = ttl == TTL_INF ? cn_mk_tuple(3, atom(s, "proxy_operation"), cn_term_copy(req), cn_term_copy(from))
                                : cn_mk_tuple(4, atom(s, "proxy_operation"), cn_term_copy(req), cn_term_copy(from),
                                              cn_mk_int(ttl));
  int rc = msg ? cn_send_to(s->n, s->self, owner, msg) : CN_ENOMEM;
  cn_term_free(msg);
  return rc ? err1(s, atom(s, cn_err_reason(rc))) : NULL;
}

/* {start_child, Spec} (§5.3): never starts a child without cnode => true here. */
static cn_term *start_child(cn_horde_sup *s, const cn_term *req, const cn_term *from, int64_t ttl) {
  const cn_term *spec = &req->v.tuple.e[1], *owner;
  if (s->shutting_down) return err1(s, cn_mk_tuple(2, atom(s, "shutting_down"), bin("this node is shutting down.")));
  int rc = choose(s, spec, &owner);
  if (rc == CN_ENOTFOUND) return err1(s, atom(s, "no_alive_nodes"));
  if (rc == CN_EINVAL) return err1(s, reason(s, "invalid_child_spec", spec));
  if (rc) return err1(s, atom(s, cn_err_reason(rc)));
  if (!is_self(s, owner) && ttl != 0) return proxy(s, owner, req, from, ttl);
  if (!cn_horde_c_child(spec)) return ttl == 0 ? ttl_expired(s, req) : err1(s, atom(s, "not_a_c_child"));
  return start_new(s, spec);
}

typedef struct pid_owner {
  cn_pid pid;
  cn_term *owner;
} pid_owner;

static bool find_owner(cn_horde_sup *s, const cn_term *key, const cn_term *id, const cn_term *v, void *ctx) {
  (void)s, (void)key, (void)id;
  pid_owner *po = ctx;
  if (hc_tuple_n(v, 3) && hc_is_pid(&v->v.tuple.e[2]) && hc_pid_eq(v->v.tuple.e[2].v.pid, po->pid))
    po->owner = cn_term_copy(&v->v.tuple.e[0]);
  return !po->owner;
}

/* The owner recorded for pid in the CRDT (a new term), or NULL. */
static cn_term *owner_of(cn_horde_sup *s, cn_pid pid) {
  pid_owner po = {pid, NULL};
  each_process(s, find_owner, &po);
  return po.owner;
}

/* {terminate_child, Pid}: the owner stops it and removes the key; another member's child is proxied to it. */
static cn_term *terminate_child(cn_horde_sup *s, const cn_term *req, const cn_term *from, int64_t ttl) {
  const cn_term *p = &req->v.tuple.e[1];
  child *c = hc_is_pid(p) ? child_by_pid(s, p->v.pid) : NULL;
  if (c && c->state == C_RUNNING) {
    delete_keyed(s, "process", c->id);
    stop_child(s, c, C_TERMINATING);
    return atom(s, "ok");
  }
  cn_term *owner = hc_is_pid(p) && !c ? owner_of(s, p->v.pid) : NULL, *reply = NULL;
  if (owner && !is_self(s, owner) && hc_is_member(owner))
    reply = proxy(s, owner, req, from, ttl);
  else
    reply = err1(s, atom(s, "not_found"));
  cn_term_free(owner);
  return reply;
}

static cn_term *members_list(cn_horde_sup *s) {
  cn_term **v = cn_calloc(s->nmem + 1, sizeof *v);
  if (!v) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < s->nmem; i++)
    if (s->mem[i].is_member) v[k++] = s->mem[i].name;
  cn_term *l = hc_list_copy(v, k);
  cn_free(v);
  return l;
}

static cn_term *set_members(cn_horde_sup *s, const cn_term *list) {
  if (!hc_proper_list(list)) return err1(s, atom(s, "badarg"));
  size_t k = list->type == CN_LIST ? list->v.list.len : 0;
  const cn_term **v = cn_calloc(k + 1, sizeof *v);
  if (!v) return err1(s, atom(s, "enomem"));
  for (size_t i = 0; i < k; i++) v[i] = &list->v.list.e[i];
  int rc = hc_set_members(s->n, s->crdt, s->self_member, v, k, true);
  cn_free(v);
  return rc ? err1(s, atom(s, cn_err_reason(rc))) : atom(s, "ok");
}

static bool count_one(cn_horde_sup *s, const cn_term *key, const cn_term *id, const cn_term *v, void *ctx) {
  (void)s, (void)key, (void)id, (void)v;
  ++*(int64_t *)ctx;
  return true;
}

static cn_term *telemetry(cn_horde_sup *s) {
  int64_t all = 0;
  each_process(s, count_one, &all);
  cn_term *kv[] = {atom(s, "global_supervised_process_count"), cn_mk_int(all),
                   atom(s, "local_supervised_process_count"), cn_mk_int((int64_t)s->nch)};
  return cn_mk_map(2, kv);
}

/* which_children or count_children on N: Horde asks every member's 'Name.ProcessesSupervisor' and answers with the
 * whole (ids as undefined; counts summed into a map); a member that fails to answer counts as none. */
typedef struct gather {
  cn_horde_sup *s;
  cn_term *from;
  bool count;
  int pending;
  cn_term **items; /* which_children: the entries so far */
  size_t n;
  int64_t sums[4]; /* count_children: specs, active, supervisors, workers */
} gather;

static const char *const COUNT_KEYS[4] = {"specs", "active", "supervisors", "workers"};

static void gather_add(gather *g, const cn_term *reply) {
  for (uint32_t i = 0; hc_proper_list(reply) && reply->type == CN_LIST && i < reply->v.list.len; i++) {
    const cn_term *e = &reply->v.list.e[i];
    for (int k = 0; g->count && k < 4; k++)
      if (cn_is_atom(cn_tuple_elem(e, 2, 0), COUNT_KEYS[k]) && e->v.tuple.e[1].type == CN_INT)
        g->sums[k] += e->v.tuple.e[1].v.i;
    cn_term **v = !g->count && hc_tuple_n(e, 4) ? cn_realloc(g->items, (g->n + 1) * sizeof *v) : NULL;
    if (!v) continue;
    g->items = v;
    v[g->n] = cn_mk_tuple(4, atom(g->s, "undefined"), cn_term_copy(&e->v.tuple.e[1]), cn_term_copy(&e->v.tuple.e[2]),
                          cn_term_copy(&e->v.tuple.e[3]));
    if (v[g->n]) g->n++;
  }
}

static cn_term *gather_reply(gather *g) {
  if (!g->count) {
    cn_term *l = cn_mk_listv(g->n, g->items, NULL);
    g->n = 0;
    return l;
  }
  static const int in_key_order[4] = {1, 0, 2, 3}; /* active, specs, supervisors, workers */
  cn_term *kv[8];
  for (int i = 0; i < 4; i++) {
    kv[2 * i] = atom(g->s, COUNT_KEYS[in_key_order[i]]);
    kv[2 * i + 1] = cn_mk_int(g->sums[in_key_order[i]]);
  }
  return cn_mk_map(4, kv);
}

static void gather_free(gather *g) {
  for (size_t i = 0; i < g->n; i++) cn_term_free(g->items[i]);
  cn_free(g->items);
  cn_term_free(g->from);
  cn_free(g);
}

static void gather_done(cn_proc *self, int status, const cn_term *reply, void *ctx) {
  gather *g = ctx;
  if (status == 0 && reply) gather_add(g, reply); /* gather_start's own final call brings none */
  if (--g->pending > 0) return;
  if (status != CN_ECLOSED) {
    cn_term *r = gather_reply(g);
    if (r) cn_gen_reply(self, g->from, r);
    cn_term_free(r);
  }
  gather_free(g);
}

/* Asks every member; NULL (the reply comes when all answered) or an error reply. */
static cn_term *gather_start(cn_horde_sup *s, const cn_term *from, bool count) {
  gather *g = s->self ? cn_calloc(1, sizeof *g) : NULL;
  if (!g || !(g->from = cn_term_copy(from))) {
    cn_free(g);
    return err1(s, atom(s, s->self ? "enomem" : "badarg"));
  }
  g->s = s;
  g->count = count;
  g->pending = 1; /* held while asking, so no answer can finish it early */
  cn_term *req = atom(s, count ? "count_children" : "which_children");
  for (size_t i = 0; req && i < s->nmem; i++) {
    const cn_term *m = s->mem[i].name;
    if (!s->mem[i].is_member) continue;
    cn_term *dest = hc_member_proc(s->n, m, ".ProcessesSupervisor");
    if (dest && !cn_call(s->self, dest, req, 5000, gather_done, g)) g->pending++;
    cn_term_free(dest);
  }
  cn_term_free(req);
  gather_done(s->self, 0, NULL, g);
  return NULL;
}

/* One request as N handles it for from; NULL when the answer comes from elsewhere (proxied, gathered). */
static cn_term *request(cn_horde_sup *s, const cn_term *req, const cn_term *from, int64_t ttl) {
  const cn_term *op = req->type == CN_TUPLE && req->v.tuple.arity == 2 ? &req->v.tuple.e[0] : NULL;
  if (op && cn_is_atom(op, "start_child")) return start_child(s, req, from, ttl);
  if (op && cn_is_atom(op, "terminate_child")) return terminate_child(s, req, from, ttl);
  if (op && cn_is_atom(op, "set_members")) return set_members(s, &req->v.tuple.e[1]);
  if (cn_is_atom(req, "members")) return members_list(s);
  if (cn_is_atom(req, "which_children") || cn_is_atom(req, "count_children"))
    return gather_start(s, from, cn_is_atom(req, "count_children"));
  if (cn_is_atom(req, "wait_for_quorum")) return atom(s, "ok");
  if (cn_is_atom(req, "get_telemetry")) return telemetry(s);
  if (cn_is_atom(req, "horde_shutting_down")) {
    s->shutting_down = true;
    own_status(s, false);
    return atom(s, "ok");
  }
  return err1(s, atom(s, "unknown_call"));
}

int cn_horde_start_child(cn_horde_sup *s, const cn_term *spec, const cn_term *from, cn_term **reply) {
  *reply = NULL;
  if (!s->alive) return CN_ESTATE;
  cn_term *req = cn_mk_tuple(2, atom(s, "start_child"), cn_term_copy(spec));
  if (!req) return CN_ENOMEM;
  int64_t ttl = s->o.proxy_message_ttl ? (int64_t)s->o.proxy_message_ttl : TTL_INF;
  *reply = start_child(s, req, from, ttl);
  cn_term_free(req);
  return 0;
}

/* {proxy_operation, Req, From[, Ttl]}: handled as if From had called, with the TTL one hop shorter. */
static void on_proxy(cn_horde_sup *s, const cn_term *msg) {
  const cn_term *req = &msg->v.tuple.e[1], *from = &msg->v.tuple.e[2];
  const cn_term *t = msg->v.tuple.arity == 4 ? &msg->v.tuple.e[3] : NULL;
  if (!hc_tuple_n(from, 2) || !hc_is_pid(&from->v.tuple.e[0])) {
    logt(s, CN_LOG_WARN, "ignored a proxy_operation without a {Pid, Tag} caller:", msg);
    return;
  }
  int64_t ttl = !t || cn_is_atom(t, "infinity") ? TTL_INF : t->type == CN_INT && t->v.i > 0 ? t->v.i - 1 : 0;
  cn_term *reply = request(s, req, from, ttl);
  if (reply) cn_gen_reply(s->self, from, reply);
  cn_term_free(reply);
}

/* ---- The processes ----------------------------------------------------------------------------------------------- */

static void unref(cn_horde_sup *s) {
  if (--s->refs > 0) return;
  if (s->o.on_stop) s->o.on_stop(s, s->o.ctx);
  while (s->nch) child_drop(s, s->ch[0]);
  cn_free(s->ch);
  for (size_t i = 0; i < s->nmem; i++) cn_term_free(s->mem[i].name);
  cn_free(s->mem);
  rings_dirty(s);
  for (size_t i = 0; i < s->ncand; i++) cn_term_free(s->cand[i].id);
  cn_free(s->cand);
  for (size_t i = 0; i < s->sd.nkeys; i++) cn_term_free(s->sd.keys[i]);
  cn_free(s->sd.keys);
  cn_free(s->ent);
  cn_free(s->links);
  cn_term_free(s->self_member);
  cn_free(s);
}

static bool ref_eq(const cn_ref *a, const cn_ref *b) {
  return a->node == b->node && a->len == b->len && a->creation == b->creation && !memcmp(a->n, b->n, a->len * 4);
}

/* 'DOWN' of a member's N: that member is written dead (Horde's mark_dead), then this one's own status checked. */
static void on_down(cn_horde_sup *s, const cn_term *ref) {
  for (size_t i = 0; i < s->nmem; i++) {
    member *m = &s->mem[i];
    if (!m->monitored || ref->type != CN_REF || !ref_eq(&ref->v.ref, &m->mref)) continue;
    m->monitored = false;
    put_keyed(s, "member_node_info", m->name, info_value(s, m->name, "dead"));
    own_status(s, false);
    return;
  }
}

static void on_exit_signal(cn_horde_sup *s, cn_pid from, const cn_term *reason) {
  if (hc_pid_eq(from, s->crdt_pid) || hc_pid_eq(from, s->psup_pid)) {
    cn_proc_exit(s->self, reason); /* one_for_all */
    return;
  }
  child *c = child_by_pid(s, from);
  if (c && c->state != C_RESTARTING) child_exit(s, c, reason);
}

/* What the API asked for outside N's handler: links, a graceful shutdown, a stop. */
static void on_wake(cn_horde_sup *s) {
  for (size_t i = 0; i < s->nlinks; i++) cn_link(s->self, s->links[i]);
  s->nlinks = 0;
  if (s->sd.on && !s->sd.begun) begin_shutdown(s);
  if (s->want_stop) {
    cn_term *why = atom(s, "shutdown");
    cn_proc_exit(s->self, why);
    cn_term_free(why);
  }
}

/* N's own messages: $hc_wake, and from its timers $hc_tick, $hc_poll, {$hc_kill, Pid}, {$hc_restart, Id}. Anyone
 * may send these; each only makes N do early what it would do anyway. */
static bool own_message(cn_horde_sup *s, const cn_term *msg) {
  const cn_term *tag = hc_tuple_n(msg, 2) ? &msg->v.tuple.e[0] : msg,
                *arg = hc_tuple_n(msg, 2) ? &msg->v.tuple.e[1] : NULL;
  child *c = hc_is_pid(arg) ? child_by_pid(s, arg->v.pid) : arg ? child_by_id(s, arg) : NULL;
  if (cn_is_atom(msg, "$hc_wake")) {
    on_wake(s);
  } else if (cn_is_atom(msg, "$hc_tick")) {
    own_status(s, true);
    if (s->dirty || s->ncand) scan_orphans(s);
    send_later(s, TICK_MS, atom(s, "$hc_tick"), &s->tick);
  } else if (cn_is_atom(msg, "$hc_poll")) {
    poll_peers(s);
  } else if (cn_is_atom(tag, "$hc_kill") && c && (c->state == C_TERMINATING || c->state == C_RELINQUISHING)) {
    c->kill_timer = 0;
    cn_term *why = atom(s, "kill");
    cn_exit(s->n, s->self, c->pid, why);
    cn_term_free(why);
  } else if (cn_is_atom(tag, "$hc_restart") && c && c->state == C_RESTARTING) {
    restart(s, c);
  } else {
    return cn_is_atom(tag, "$hc_kill") || cn_is_atom(tag, "$hc_restart");
  }
  return true;
}

static void dispatch(cn_horde_sup *s, const cn_term *msg) {
  const cn_term *from, *req;
  uint32_t ar = msg->type == CN_TUPLE ? msg->v.tuple.arity : 0;
  const cn_term *tag = ar ? &msg->v.tuple.e[0] : NULL;
  if (cn_gen_is_call(msg, &from, &req)) {
    cn_term *reply = request(s, req, from, s->o.proxy_message_ttl ? (int64_t)s->o.proxy_message_ttl : TTL_INF);
    if (reply) cn_gen_reply(s->self, from, reply);
    cn_term_free(reply);
  } else if ((ar == 3 || ar == 4) && cn_is_atom(tag, "proxy_operation")) {
    on_proxy(s, msg);
  } else if (ar == 2 && cn_is_atom(tag, "crdt_update")) {
    on_update(s, &msg->v.tuple.e[1]);
  } else if (ar == 5 && cn_is_atom(tag, "DOWN")) {
    on_down(s, &msg->v.tuple.e[1]);
  } else if (ar == 3 && cn_is_atom(tag, "EXIT") && hc_is_pid(&msg->v.tuple.e[1])) {
    on_exit_signal(s, msg->v.tuple.e[1].v.pid, &msg->v.tuple.e[2]);
  } else if (!own_message(s, msg)) {
    char *txt = cn_term_to_string(msg);
    cn_log(s->n, CN_LOG_DEBUG, "%s: ignored message %.200s", s->name, txt ? txt : "?");
    cn_free(txt);
  }
}

static void handle(cn_proc *self, const cn_term *msg, void *state) {
  cn_horde_sup *s = state;
  s->self = self;
  dispatch(s, msg);
  s->self = NULL;
}

static void on_nodes(cn_node *n, const cn_atom *node, bool up, const char *reason, void *ctx) {
  (void)reason;
  cn_horde_sup *s = ctx;
  s->dirty = true; /* orphans depend on the connected nodes */
  if (!s->alive || !s->crdt || s->o.nmembers) return;
  int rc = hc_auto_members(n, s->crdt, s->self_member, true, up ? NULL : node);
  if (rc) cn_log(n, CN_LOG_WARN, "%s: set_members failed: %s", s->name, cn_strerror(rc));
}

/* N ends (one_for_all): its children get shutdown, 'N.ProcessesSupervisor' and the CRDT end too. */
static void terminate(cn_proc *self, const cn_term *reason, void *state) {
  (void)reason;
  cn_horde_sup *s = state;
  s->self = self;
  s->alive = false;
  if (s->monitoring) cn_node_demonitor_nodes(s->n, on_nodes, s);
  s->monitoring = false;
  if (s->tick) cn_cancel_timer(s->n, s->tick);
  cn_term *why = atom(s, "shutdown"), *kill = atom(s, "kill");
  for (size_t i = 0; why && i < s->nch; i++) cn_exit(s->n, self, s->ch[i]->pid, why);
  if (kill && s->psup_pid.node) cn_exit(s->n, self, s->psup_pid, kill);
  cn_term_free(why);
  cn_term_free(kill);
  if (s->crdt) cn_crdt_stop(s->crdt);
  if (s->sd.done) finish_shutdown(s, "the supervisor ended");
  s->self = NULL;
  unref(s);
}

/* 'N.ProcessesSupervisor': which_children and count_children from the local children. */
static void psup_handle(cn_proc *self, const cn_term *msg, void *state) {
  cn_horde_sup *s = state;
  const cn_term *from, *req;
  if (!cn_gen_is_call(msg, &from, &req)) return;
  cn_term *reply = cn_is_atom(req, "which_children")   ? cn_horde_which_children(s)
                   : cn_is_atom(req, "count_children") ? cn_horde_count_children(s)
                                                       : err1(s, atom(s, "unknown_call"));
  if (reply) cn_gen_reply(self, from, reply);
  cn_term_free(reply);
}

static void psup_terminate(cn_proc *self, const cn_term *reason, void *state) {
  (void)self, (void)reason;
  cn_horde_sup *s = state;
  s->psup_pid = (cn_pid){0};
  unref(s);
}

static void crdt_stopped(cn_crdt *c, void *ctx) {
  (void)c;
  cn_horde_sup *s = ctx;
  s->crdt = NULL; /* N, linked to the CRDT, gets its 'EXIT' and ends too */
  unref(s);
}

/* Spawns and registers a process of the supervisor; each holds a reference. */
static int spawn_named(cn_horde_sup *s, const char *name, cn_handler_fn fn, const cn_proc_opts *po, cn_pid *pid) {
  int rc = cn_spawn(s->n, fn, s, po, pid);
  if (rc) return rc;
  s->refs++;
  if ((rc = cn_register(s->n, name, *pid))) {
    cn_term *why = cn_mk_atomc(s->n, "kill");
    cn_exit(s->n, NULL, *pid, why);
    cn_term_free(why);
  }
  return rc;
}

static void defaults(cn_horde_sup_opts *o) {
  if (!o->orphan_ms) o->orphan_ms = 1000;
  if (!o->max_restarts) o->max_restarts = 3;
  if (!o->max_seconds) o->max_seconds = 5;
  if (!o->shutdown_wait_ms) o->shutdown_wait_ms = 2000;
}

static int join(cn_horde_sup *s) {
  member *me = mem_get(s, s->self_member);
  if (me) me->is_member = true; /* as Horde's set_members sets its own state at once */
  own_status(s, false);
  int rc = cn_node_monitor_nodes(s->n, on_nodes, s);
  s->monitoring = rc == 0;
  if (rc) return rc;
  if (s->o.nmembers) return hc_named_members(s->n, s->crdt, s->self_member, s->o.members, s->o.nmembers, true);
  return hc_auto_members(s->n, s->crdt, s->self_member, true, NULL);
}

int cn_horde_supervisor_start(cn_node *n, const char *name, const cn_horde_sup_opts *opts, cn_horde_sup **out) {
  const char *me = cn_node_name(n)->name;
  if (!name || strlen(name) > 200) return CN_EINVAL;
  if (strncmp(me, "cnode", 5)) {
    cn_log(n, CN_LOG_ERROR,
           "%s: not started: this node's name %s does not start with \"cnode\", so Horde members "
           "would never place C children here",
           name, me);
    return CN_EINVAL;
  }
  cn_horde_sup *s = cn_calloc(1, sizeof *s);
  if (!s) return CN_ENOMEM;
  s->n = n;
  snprintf(s->name, sizeof s->name, "%s", name);
  if (opts) s->o = *opts;
  defaults(&s->o);
  s->refs = 1; /* until the CRDT runs */
  s->self_member = cn_mk_tuple(2, cn_mk_atomc(n, name), cn_mk_atom(cn_node_name(n)));
  cn_crdt_opts co = s->o.crdt;
  co.on_diffs = NULL;
  co.on_stop = crdt_stopped;
  co.ctx = s;
  int rc = s->self_member ? cn_crdt_start(n, name, &co, &s->crdt) : CN_ENOMEM;
  if (rc) {
    unref(s);
    return rc;
  }
  s->crdt_pid = cn_crdt_pid(s->crdt);
  char pname[300];
  snprintf(pname, sizeof pname, "%s.ProcessesSupervisor", name);
  cn_proc_opts po = {.terminate = terminate, .trap_exit = true}, pso = {.terminate = psup_terminate};
  s->alive = true;
  if ((rc = spawn_named(s, name, handle, &po, &s->pid))) {
    if (s->refs == 1) { /* N never ran; otherwise it was killed and its terminate stops the CRDT */
      s->alive = false;
      cn_crdt_stop(s->crdt);
    }
    return rc;
  }
  if ((rc = spawn_named(s, pname, psup_handle, &pso, &s->psup_pid))) {
    cn_horde_supervisor_stop(s); /* N's terminate stops the CRDT */
    return rc;
  }
  cn_crdt_subscribe(s->crdt, s->pid);
  link_to(s, s->crdt_pid); /* one_for_all: N ends with either */
  link_to(s, s->psup_pid);
  if ((rc = join(s))) cn_log(n, CN_LOG_WARN, "%s: membership not set: %s", name, cn_strerror(rc));
  s->o.members = NULL; /* borrowed for the call only; nmembers > 0 still says "explicit" */
  send_later(s, TICK_MS, atom(s, "$hc_tick"), &s->tick);
  if (out) *out = s;
  return 0;
}

int cn_horde_entry(cn_horde_sup *s, const char *module, cn_horde_start_fn fn, void *ctx) {
  const cn_atom *a = module && fn ? cn_intern(s->n, module) : NULL;
  if (!a) return CN_EINVAL;
  for (size_t i = 0; i < s->nent; i++)
    if (s->ent[i].mod == a) return CN_EEXIST;
  entry *v = cn_realloc(s->ent, (s->nent + 1) * sizeof *v);
  if (!v) return CN_ENOMEM;
  s->ent = v;
  v[s->nent++] = (entry){a, fn, ctx};
  return 0;
}

int cn_horde_supervisor_shutdown(cn_horde_sup *s, cn_horde_done_fn done, void *ctx) {
  if (!s->alive || s->sd.on) return CN_ESTATE;
  s->sd.on = true;
  s->sd.done = done;
  s->sd.ctx = ctx;
  wake(s);
  return 0;
}

void cn_horde_supervisor_stop(cn_horde_sup *s) {
  s->want_stop = true;
  wake(s);
}

cn_pid cn_horde_supervisor_pid(const cn_horde_sup *s) { return s->pid; }
cn_crdt *cn_horde_supervisor_crdt(cn_horde_sup *s) { return s->crdt; }
size_t cn_horde_supervisor_count(const cn_horde_sup *s) { return s->nch; }
