/* horde_reg.c: --horde-registry NAME for the cnode program (a member of that Horde.Registry, members: auto, its
 * echo process registered under {echo, NodeName}) and cnode_ctl's horde_* commands (registered into ctl.h's table). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "horde.h"
#include "horde_app.h"
#include "workers.h"

enum { MAX_REGS = 16 };

static struct reg_slot {
  char name[256];       /* the atom's text */
  cn_horde_registry *r; /* NULL until started and once ended */
} regs[MAX_REGS];
static size_t nregs;

int horde_atom_name(const char *name, char *out, size_t cap) {
  bool module = isupper((unsigned char)name[0]) && strncmp(name, "Elixir.", 7) != 0;
  int k = snprintf(out, cap, "%s%s", module ? "Elixir." : "", name);
  return k > 0 && (size_t)k < cap ? 0 : -1;
}

int hreg_add(const char *name) {
  if (!name[0] || nregs == MAX_REGS || horde_atom_name(name, regs[nregs].name, 241)) return -1;
  nregs++;
  return 0;
}

bool hreg_at(size_t i, const char **name, cn_horde_registry **out) {
  if (i >= nregs) return false;
  *name = regs[i].name;
  *out = regs[i].r;
  return true;
}

static void reg_stopped(cn_horde_registry *r, void *ctx) {
  (void)r;
  ((struct reg_slot *)ctx)->r = NULL;
}

static cn_term *reg_cmd(cn_proc *self, const char *op, const cn_term *cmd, const ctl_caller *caller, void *ctx);

int hreg_start(cn_node *n) {
  int rc = 0;
  static const char *const ops[] = {"horde_register", "horde_unregister", "horde_lookup", "horde_members"};
  for (size_t i = 0; !rc && i < sizeof ops / sizeof ops[0]; i++) rc = ctl_register_cmd(ops[i], reg_cmd, NULL);
  cn_pid echo;
  if (!rc) rc = cn_whereis(n, "echo", &echo);
  for (size_t i = 0; !rc && i < nregs; i++) {
    cn_horde_registry_opts o = {.on_stop = reg_stopped, .ctx = &regs[i]};
    if ((rc = cn_horde_registry_start(n, regs[i].name, &o, &regs[i].r))) break;
    cn_term *key = cn_mk_tuple(2, cn_mk_atomc(n, "echo"), cn_mk_atom(cn_node_name(n)));
    cn_term *nil = cn_mk_atomc(n, "nil");
    rc = key && nil ? cn_horde_register(regs[i].r, echo, key, nil, NULL) : CN_ENOMEM;
    cn_term_free(key);
    cn_term_free(nil);
    if (!rc)
      cn_log(n, CN_LOG_INFO, "joined Horde.Registry %s (members: auto); echo registered as {echo, '%s'}", regs[i].name,
             cn_node_name(n)->name);
  }
  return rc;
}

/* The running registry named by an atom, given as Horde names it or as Elixir writes it ('MyApp.Registry'). */
static cn_horde_registry *find(const cn_term *name) {
  char full[256];
  if (!name || name->type != CN_ATOM || horde_atom_name(name->v.atom->name, full, sizeof full)) return NULL;
  for (size_t i = 0; i < nregs; i++)
    if (regs[i].r && !strcmp(regs[i].name, full)) return regs[i].r;
  return NULL;
}

static cn_term *error2(cn_node *n, const char *why) {
  return cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, why));
}

/* {horde_lookup, Reg, Key}: asks the registry process, which checks a remote holder with its node (§4.3). */
static void lookup_done(cn_proc *self, int status, const cn_term *reply, void *ctx) {
  ctl_caller *caller = ctx;
  if (status != CN_ECLOSED)
    ctl_answer(self, caller, status ? error2(cn_proc_node(self), cn_err_reason(status)) : cn_term_copy(reply));
  ctl_caller_free(caller);
}

static cn_term *ctl_lookup(cn_proc *self, cn_horde_registry *r, const ctl_caller *caller, const cn_term *key) {
  cn_node *n = cn_proc_node(self);
  ctl_caller *w = NULL;
  cn_term *server = cn_mk_pid(cn_horde_registry_pid(r));
  cn_term *req = cn_mk_tuple(2, cn_mk_atomc(n, "lookup"), cn_term_copy(key));
  int rc = CN_ENOMEM;
  if (server && req && (w = ctl_caller_dup(caller))) rc = cn_call(self, server, req, 10000, lookup_done, w);
  cn_term_free(server);
  cn_term_free(req);
  if (!rc) return NULL;
  ctl_caller_free(w);
  return error2(n, cn_err_reason(rc));
}

/* {horde_register, Reg, Key, Value}: a new echo process registered as Horde.Registry.register/3 would. */
static cn_term *ctl_register(cn_node *n, cn_horde_registry *r, const cn_term *key, const cn_term *value) {
  cn_pid pid, holder = {0};
  int rc = workers_spawn_echo(n, &pid);
  if (rc) return error2(n, cn_err_reason(rc));
  rc = cn_horde_register(r, pid, key, value, &holder);
  if (!rc) return cn_mk_tuple(2, cn_mk_atomc(n, "ok"), cn_mk_pid(pid));
  cn_term *why = cn_mk_atomc(n, "kill");
  cn_exit(n, NULL, pid, why);
  cn_term_free(why);
  if (rc == CN_EEXIST)
    return cn_mk_tuple(2, cn_mk_atomc(n, "error"),
                       cn_mk_tuple(2, cn_mk_atomc(n, "already_registered"), cn_mk_pid(holder)));
  return error2(n, cn_err_reason(rc));
}

/* cnode_ctl's {horde_register, Reg, Key, Value}, {horde_unregister, Reg, Key}, {horde_lookup, Reg, Key} (answered
 * once the registry process answered) and {horde_members, Reg}. */
static cn_term *reg_cmd(cn_proc *self, const char *op, const cn_term *cmd, const ctl_caller *caller, void *ctx) {
  (void)ctx;
  cn_node *n = cn_proc_node(self);
  if (cmd->type != CN_TUPLE) return ctl_unknown(n);
  uint32_t ar = cmd->v.tuple.arity;
  const cn_term *e = cmd->v.tuple.e;
  cn_horde_registry *r = ar >= 2 ? find(&e[1]) : NULL;
  if (!r) return error2(n, "no_such_registry");
  if (!strcmp(op, "horde_register") && ar == 4) return ctl_register(n, r, &e[2], &e[3]);
  if (!strcmp(op, "horde_lookup") && ar == 3) return ctl_lookup(self, r, caller, &e[2]);
  if (!strcmp(op, "horde_members") && ar == 2) return cn_horde_members(r);
  if (!strcmp(op, "horde_unregister") && ar == 3) {
    /* as Horde.Registry.unregister/2 called by the holder: only a local holder can */
    cn_pid holder;
    if (!cn_horde_lookup(r, &e[2], &holder, NULL) && holder.node == cn_node_name(n))
      cn_horde_unregister(r, holder, &e[2]);
    return cn_mk_atomc(n, "ok");
  }
  return error2(n, "badarg");
}
