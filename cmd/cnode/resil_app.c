/* resil_app.c: the resilience parts of the cnode program: watchdogs from --watch (TCP checks every --watch-interval),
 * alarms mirrored to every --alarm-node, cnode_ctl's fuse_* / alarm_set / alarm_clear / alarms commands (fuse_call:
 * a gen_server call through a fuse), and SIGTERM's step that clears every alarm there. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cn_alarm.h"
#include "cn_fuse.h"
#include "cn_watchdog.h"
#include "ctl.h"
#include "ops.h"
#include "resil_app.h"

enum { MAX_WATCH = 16, NAME_CAP = 256 };
static struct {
  char name[NAME_CAP], host[NAME_CAP];
  uint16_t port;
} watches[MAX_WATCH];
static char alarm_nodes[MAX_WATCH][NAME_CAP];
static size_t nwatches, nalarm_nodes;
static unsigned interval_ms = 1000;

int resil_add_watch(const char *spec) {
  const char *eq = strchr(spec, '='), *colon = strrchr(spec, ':');
  if (nwatches == MAX_WATCH || !eq || eq == spec || !colon || colon < eq || (size_t)(eq - spec) >= NAME_CAP) return -1;
  const char *host = eq + 1;
  size_t hlen = (size_t)(colon - host);
  if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') { /* [::1]:5432 */
    host++;
    hlen -= 2;
  }
  char *end;
  unsigned long port = strtoul(colon + 1, &end, 10);
  if (!hlen || hlen >= NAME_CAP || *end || colon[1] == 0 || port == 0 || port > 65535) return -1;
  memcpy(watches[nwatches].name, spec, (size_t)(eq - spec));
  watches[nwatches].name[eq - spec] = 0;
  memcpy(watches[nwatches].host, host, hlen);
  watches[nwatches].host[hlen] = 0;
  watches[nwatches++].port = (uint16_t)port;
  return 0;
}

int resil_add_alarm_node(const char *node) {
  if (nalarm_nodes == MAX_WATCH || !strchr(node, '@') || strlen(node) >= NAME_CAP) return -1;
  strcpy(alarm_nodes[nalarm_nodes++], node);
  return 0;
}

void resil_set_interval(unsigned ms) { interval_ms = ms; }

/* ---- Commands ----------------------------------------------------------------------------------------------------- */

static cn_term *atom(cn_node *n, const char *a) { return cn_mk_atomc(n, a); }
static cn_term *err(cn_node *n, int rc) { return cn_mk_tuple(2, atom(n, "error"), atom(n, cn_err_reason(rc))); }
static cn_term *ok_or(cn_node *n, int rc) { return rc ? err(n, rc) : atom(n, "ok"); }

/* {fuse_call, Fuse, Server, Request, TimeoutMs}: {ok, Reply}, {error, blown} at once, or {error, {exit, Reason}}. */
static void fuse_call_done(cn_proc *self, int status, const cn_term *reply, void *ctx) {
  ctl_caller *c = ctx;
  cn_node *n = cn_proc_node(self);
  cn_term *a = !status ? cn_mk_tuple(2, atom(n, "ok"), cn_term_copy(reply))
               : status == CN_EEXIT && reply
                   ? cn_mk_tuple(2, atom(n, "error"), cn_mk_tuple(2, atom(n, "exit"), cn_term_copy(reply)))
                   : err(n, status);
  ctl_answer(self, c, a);
  ctl_caller_free(c);
}

static cn_term *fuse_call(cn_proc *self, const cn_term *cmd, const ctl_caller *caller) {
  cn_node *n = cn_proc_node(self);
  const cn_term *name = cn_tuple_elem(cmd, 5, 1), *tmo = cn_tuple_elem(cmd, 5, 4);
  if (!name || name->type != CN_ATOM || tmo->type != CN_INT || tmo->v.i < 0 || tmo->v.i > UINT32_MAX)
    return ctl_unknown(n);
  const cn_call_guard *g = cn_fuse_guard(n, name->v.atom->name);
  if (!g) return err(n, CN_ENOTFOUND);
  ctl_caller *c = ctl_caller_dup(caller);
  if (!c) return NULL;
  int rc = cn_call_guarded(self, g, cn_tuple_elem(cmd, 5, 2), cn_tuple_elem(cmd, 5, 3), (unsigned)tmo->v.i,
                           fuse_call_done, c);
  if (!rc) return NULL;
  ctl_caller_free(c);
  return err(n, rc);
}

static cn_term *fuse_cmd(cn_proc *self, const char *op, const cn_term *cmd, const ctl_caller *caller, void *ctx) {
  (void)ctx;
  cn_node *n = cn_proc_node(self);
  if (!strcmp(op, "fuse_call")) return fuse_call(self, cmd, caller);
  bool install = !strcmp(op, "fuse_install");
  const cn_term *name = cn_tuple_elem(cmd, install ? 3 : 2, 1);
  if (!name || name->type != CN_ATOM) return ctl_unknown(n);
  const char *s = name->v.atom->name;
  if (install) {
    cn_fuse_opts o;
    int rc = cn_fuse_parse(cn_tuple_elem(cmd, 3, 2), &o);
    return ok_or(n, rc ? rc : cn_fuse_install(n, s, &o));
  }
  if (!strcmp(op, "fuse_ask")) {
    int rc = cn_fuse_ask(n, s);
    return rc == CN_EBLOWN ? atom(n, "blown") : ok_or(n, rc);
  }
  if (!strcmp(op, "fuse_melt")) {
    cn_fuse_melt(n, s); /* fuse:melt/1 always answers ok */
    return atom(n, "ok");
  }
  if (!strcmp(op, "fuse_reset")) return ok_or(n, cn_fuse_reset(n, s));
  if (!strcmp(op, "fuse_remove")) return ok_or(n, cn_fuse_remove(n, s));
  return ctl_unknown(n);
}

static cn_term *alarm_cmd(cn_proc *self, const char *op, const cn_term *cmd, const ctl_caller *caller, void *ctx) {
  (void)caller;
  (void)ctx;
  cn_node *n = cn_proc_node(self);
  if (!strcmp(op, "alarms") && cmd->type == CN_ATOM) return cn_alarm_list(n);
  if (!strcmp(op, "alarm_set") && cn_tuple_elem(cmd, 3, 0))
    return ok_or(n, cn_alarm_set(n, cn_tuple_elem(cmd, 3, 1), cn_tuple_elem(cmd, 3, 2)));
  if (!strcmp(op, "alarm_clear") && cn_tuple_elem(cmd, 2, 0)) {
    cn_alarm_clear(n, cn_tuple_elem(cmd, 2, 1)); /* alarm_handler:clear_alarm/1 answers ok for any id */
    return atom(n, "ok");
  }
  return ctl_unknown(n);
}

/* ---- Start and stop ---------------------------------------------------------------------------------------------- */

static void alarms_step(cn_node *n, void (*done)(void *), void *done_ctx, void *ctx) {
  (void)ctx;
  if (cn_alarm_clear_all(n, done, done_ctx)) done(done_ctx);
}

int resil_start(cn_node *n) {
  int rc = ctl_register_cmd("fuse_*", fuse_cmd, NULL);
  if (!rc) rc = ctl_register_cmd("alarm_*", alarm_cmd, NULL);
  if (!rc) rc = ctl_register_cmd("alarms", alarm_cmd, NULL);
  if (!rc) rc = ops_add_step(OPS_ALARMS, "clearing alarms", alarms_step, NULL);
  for (size_t i = 0; !rc && i < nalarm_nodes; i++) {
    const cn_atom *a = cn_intern(n, alarm_nodes[i]);
    rc = a ? cn_alarm_mirror(n, a) : CN_ENOMEM;
  }
  for (size_t i = 0; !rc && i < nwatches; i++) {
    cn_watch_opts o = {
        .name = watches[i].name, .host = watches[i].host, .port = watches[i].port, .interval_ms = interval_ms};
    rc = cn_watch_start(n, &o, NULL);
  }
  return rc;
}
