/* ctl.c: cnode_ctl, a gen_server that runs the cnode program's commands from a table the program's parts register
 * into; one dispatcher serves both the {From, Ref, Cmd} messages (handle_info) and gen_server calls (handle_call). */
#include <string.h>

#include "ctl.h"

enum { MAX_CMDS = 32 };

/* The program's commands. The table belongs to the program, not to a node: every node the program (or fuzz_node)
 * starts runs the same commands, and registering again replaces an entry in place. */
static struct ctl_entry {
  const char *name; /* "nodes", or a prefix "global_*" */
  size_t len;       /* of the name without its '*' */
  bool prefix;
  ctl_cmd_fn fn;
  void *ctx;
} cmds[MAX_CMDS];
static size_t ncmds;

int ctl_register_cmd(const char *name, ctl_cmd_fn fn, void *ctx) {
  size_t len = name ? strlen(name) : 0;
  if (!len || !fn) return CN_EINVAL;
  bool prefix = name[len - 1] == '*';
  struct ctl_entry *e = NULL;
  for (size_t i = 0; i < ncmds && !e; i++)
    if (!strcmp(cmds[i].name, name)) e = &cmds[i];
  if (!e) {
    if (ncmds == MAX_CMDS) return CN_ENOMEM;
    e = &cmds[ncmds++];
  }
  *e = (struct ctl_entry){.name = name, .len = prefix ? len - 1 : len, .prefix = prefix, .fn = fn, .ctx = ctx};
  return 0;
}

/* The entry for op: its own, else the longest prefix entry it starts with; NULL when none. */
static const struct ctl_entry *lookup(const char *op) {
  const struct ctl_entry *best = NULL;
  for (size_t i = 0; i < ncmds; i++) {
    const struct ctl_entry *e = &cmds[i];
    if (!e->prefix && !strcmp(e->name, op)) return e;
    if (e->prefix && !strncmp(e->name, op, e->len) && (!best || e->len > best->len)) best = e;
  }
  return best;
}

cn_term *ctl_unknown(cn_node *n) { return cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, "unknown_command")); }

/* Runs cmd for caller: its answer, or NULL when it comes later (see ctl_cmd_fn). */
static cn_term *dispatch(cn_proc *self, const cn_term *cmd, const ctl_caller *caller) {
  const cn_term *head = cmd->type == CN_TUPLE && cmd->v.tuple.arity ? &cmd->v.tuple.e[0] : cmd;
  const struct ctl_entry *e = head->type == CN_ATOM ? lookup(head->v.atom->name) : NULL;
  return e ? e->fn(self, head->v.atom->name, cmd, caller, e->ctx) : ctl_unknown(cn_proc_node(self));
}

void ctl_answer(cn_proc *self, const ctl_caller *caller, cn_term *answer) {
  if (!answer) return;
  if (caller->from) {
    cn_gen_reply(self, caller->from, answer);
    cn_term_free(answer);
    return;
  }
  cn_term *reply = cn_mk_tuple(2, cn_term_copy(caller->ref), answer);
  if (reply) cn_send(cn_proc_node(self), self, caller->pid, reply);
  cn_term_free(reply);
}

cn_term *ctl_caller_from(const ctl_caller *caller) {
  return caller->from ? cn_term_copy(caller->from) : cn_mk_tuple(2, cn_mk_pid(caller->pid), cn_term_copy(caller->ref));
}

ctl_caller *ctl_caller_dup(const ctl_caller *caller) {
  ctl_caller *c = cn_calloc(1, sizeof *c);
  if (!c) return NULL;
  c->pid = caller->pid;
  if ((caller->from && !(c->from = cn_term_copy(caller->from))) ||
      (caller->ref && !(c->ref = cn_term_copy(caller->ref)))) {
    ctl_caller_free(c);
    return NULL;
  }
  return c;
}

void ctl_caller_free(ctl_caller *caller) {
  if (!caller) return;
  /* a copy made by ctl_caller_dup owns its terms; they are const only to the commands that read them */
  cn_term_free((cn_term *)caller->from);
  cn_term_free((cn_term *)caller->ref);
  cn_free(caller);
}

/* GenServer.call({:cnode_ctl, node}, Cmd): answered with what {From, Ref, Cmd} gets as {Ref, Answer}. */
static cn_term *ctl_call(cn_proc *self, const cn_term *request, const cn_term *from, void *state) {
  (void)state;
  ctl_caller caller = {.from = from};
  return dispatch(self, request, &caller);
}

/* {From, Ref, Cmd} with From a pid: From ! {Ref, Answer}. Anything else is dropped, as before cnode_ctl was a
 * gen_server (and a cast is dropped too: a command's answer has nowhere to go). */
static void ctl_info(cn_proc *self, const cn_term *msg, void *state) {
  (void)state;
  const cn_term *from = cn_tuple_elem(msg, 3, 0), *ref = cn_tuple_elem(msg, 3, 1), *cmd = cn_tuple_elem(msg, 3, 2);
  if (!from || from->type != CN_PID) return;
  ctl_caller caller = {.pid = from->v.pid, .ref = ref};
  ctl_answer(self, &caller, dispatch(self, cmd, &caller));
}

static const cn_gen_server_ops ctl_ops = {.handle_call = ctl_call, .handle_info = ctl_info};

int ctl_start(cn_node *n) { return cn_gen_server_start(n, "cnode_ctl", &ctl_ops, NULL, NULL); }
