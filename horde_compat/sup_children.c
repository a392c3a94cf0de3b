/* sup_children.c: the Horde supervisor member's C children: child specs read as Horde.ProcessesSupervisor does,
 * starts through the registered entry points, stops, restarts within max_restarts, which_children/count_children. */
#include <stdio.h>
#include <sys/random.h>

#include "sup_int.h"

#define RETRY_MS 100 /* a restart whose start failed is tried again after this */

/* ---- Spec reading ------------------------------------------------------------------------------------------------ */

typedef struct cspec {
  const cn_term *mod, *fun, *args;
  int restart;
  int64_t shutdown_ms;
} cspec;

/* {What, T} (a new term, T copied), or NULL on OOM. */
cn_term *sup_reason(cn_horde_sup *s, const char *what, const cn_term *t) {
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
  *why = sup_reason(s, fault, part);
  return *why ? CN_EINVAL : CN_ENOMEM;
}

/* The spec with id => Id (a new map). */
cn_term *sup_with_id(cn_horde_sup *s, const cn_term *spec, const cn_term *id) {
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
  for (int i = 0; i < 17 && ++b[i] == 0; i++) {
  }
  size_t len = 17;
  while (len > 1 && !b[len - 1]) len--;
  return cn_mk_big(0, b, len);
}

/* ---- Local children ---------------------------------------------------------------------------------------------- */

child *sup_child_by_pid(cn_horde_sup *s, cn_pid pid) {
  for (size_t i = 0; i < s->nch; i++)
    if (cn_pid_eq(s->ch[i]->pid, pid)) return s->ch[i];
  return NULL;
}

child *sup_child_by_id(cn_horde_sup *s, const cn_term *id) {
  for (size_t i = 0; i < s->nch; i++)
    if (cn_term_exact_eq(s->ch[i]->id, id)) return s->ch[i];
  return NULL;
}

void sup_child_drop(cn_horde_sup *s, child *c) {
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
  if (rc) *reply = err1(s, why ? why : atom(s, cn_err_reason(rc)));
  else cn_term_free(why);
  return rc;
}

/* N links to pid in its own context: now (from a handler of N), or at its next wake-up. */
void sup_link_to(cn_horde_sup *s, cn_pid pid) {
  if (s->self) {
    cn_link(s->self, pid);
    return;
  }
  cn_pid *v = cn_realloc(s->links, (s->nlinks + 1) * sizeof *v);
  if (!v) return;
  s->links = v;
  v[s->nlinks++] = pid;
  sup_wake(s);
}

/* Writes {process, Id} => {{N, node()}, Spec, Pid}. */
static void write_running(cn_horde_sup *s, const child *c) {
  sup_put_keyed(s, "process", c->id,
                cn_mk_tuple(3, cn_term_copy(s->self_member), cn_term_copy(c->spec), cn_mk_pid(c->pid)));
}

/* Starts spec (already carrying its Id) here: the reply {ok, Pid} | {error, Reason} (a new term). */
cn_term *sup_start_local(cn_horde_sup *s, const cn_term *spec) {
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
  sup_link_to(s, c->pid);
  write_running(s, c);
  return cn_mk_tuple(2, atom(s, "ok"), cn_mk_pid(c->pid));
}

/* Starts spec under a new random Id (a start_child, a handoff, an adoption). */
cn_term *sup_start_new(cn_horde_sup *s, const cn_term *spec) {
  cn_term *id = random_id(), *sp = id ? sup_with_id(s, spec, id) : NULL;
  cn_term *reply = sp ? sup_start_local(s, sp) : err1(s, atom(s, "enomem"));
  cn_term_free(id);
  cn_term_free(sp);
  return reply;
}

void sup_log_reply(cn_horde_sup *s, const char *what, cn_term *reply) {
  if (reply && !cn_is_atom(cn_tuple_elem(reply, 2, 0), "ok")) sup_logt(s, CN_LOG_WARN, what, reply);
  cn_term_free(reply);
}

/* Stops a child: exit shutdown (kill after its shutdown time), or kill at once for brutal_kill. */
void sup_stop_child(cn_horde_sup *s, child *c, int state) {
  c->state = state;
  cn_term *why = atom(s, c->shutdown_ms == 0 ? "kill" : "shutdown");
  if (why) cn_exit(s->n, s->self, c->pid, why);
  cn_term_free(why);
  unsigned ms = c->shutdown_ms > 86400000 ? 86400000 : (unsigned)c->shutdown_ms; /* at most a day */
  if (c->shutdown_ms > 0) sup_send_later(s, ms, cn_mk_tuple(2, atom(s, "$hc_kill"), cn_mk_pid(c->pid)), &c->kill_timer);
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
void sup_restart(cn_horde_sup *s, child *c) {
  if (!may_restart(s, c)) {
    sup_logt(s, CN_LOG_WARN, "gave up restarting (max_restarts reached):", c->spec);
    sup_delete_keyed(s, "process", c->id);
    sup_child_drop(s, c);
    return;
  }
  cspec cs;
  cn_pid pid;
  cn_term *why, *reply = NULL;
  int rc = read_spec(s, c->spec, &cs, &why);
  if (!rc && !run_entry(s, &cs, &pid, &reply)) {
    c->pid = pid;
    c->state = C_RUNNING;
    sup_link_to(s, c->pid);
    write_running(s, c);
    return;
  }
  sup_log_reply(s, "restart failed:", rc ? err1(s, why ? why : atom(s, "enomem")) : reply);
  c->state = C_RESTARTING;
  sup_send_later(s, RETRY_MS, cn_mk_tuple(2, atom(s, "$hc_restart"), cn_term_copy(c->id)), NULL);
}

static bool shutdown_reason(const cn_term *r) {
  return cn_is_atom(r, "normal") || cn_is_atom(r, "shutdown") ||
         (hc_tuple_n(r, 2) && cn_is_atom(&r->v.tuple.e[0], "shutdown"));
}

/* A linked child ended (Horde.ProcessesSupervisor's maybe_restart_child). */
void sup_child_exit(cn_horde_sup *s, child *c, const cn_term *reason) {
  if (c->state == C_TERMINATING) {
    sup_child_drop(s, c);
  } else if (c->state == C_RELINQUISHING || (hc_tuple_n(reason, 2) && cn_is_atom(&reason->v.tuple.e[0], "shutdown") &&
                                             cn_is_atom(&reason->v.tuple.e[1], "process_redistribution"))) {
    sup_relinquish(s, c);
  } else if (c->restart == R_PERMANENT || (c->restart == R_TRANSIENT && !shutdown_reason(reason))) {
    sup_restart(s, c);
  } else {
    sup_delete_keyed(s, "process", c->id); /* disown_child_process */
    sup_child_drop(s, c);
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
