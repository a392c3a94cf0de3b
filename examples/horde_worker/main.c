/* examples/horde_worker: a C worker registered in the Horde.Registry of an existing Elixir app. Usage:
 * horde_worker COOKIE APP_NODE (e.g. horde_worker secret app@127.0.0.1, where app runs
 * {Horde.Registry, name: MyApp.Registry, keys: :unique, members: :auto}); then in iex on any app node:
 * GenServer.call({:via, Horde.Registry, {MyApp.Registry, :squarer}}, 7)  #=> 49 */
#include <stdio.h>

#include <cnode/cn_global.h>
#include <cnode/cnode.h>
#include <cnode/horde.h>

static cn_term *square(cn_proc *self, const cn_term *req, const cn_term *from, void *state) {
  (void)from, (void)state;
  return req->type == CN_INT ? cn_mk_int(req->v.i * req->v.i) : cn_mk_atomc(cn_proc_node(self), "badarg");
}
static const cn_gen_server_ops ops = {.handle_call = square};

static void started(cn_node *n, int status, void *app_node) {
  cn_horde_registry *reg;
  cn_pid pid;
  cn_term *key = cn_mk_atomc(n, "squarer"), *val = cn_mk_atomc(n, "nil");
  int rc = status ? status : cn_node_connect(n, cn_intern(n, app_node)); /* members: auto follows nodes() */
  if (!rc && !(rc = cn_horde_registry_start(n, "Elixir.MyApp.Registry", NULL, &reg)) &&
      !(rc = cn_gen_server_start(n, NULL, &ops, NULL, &pid)))
    rc = cn_horde_register(reg, pid, key, val, NULL); /* links pid: its death removes the name */
  if (rc) {
    fprintf(stderr, "horde_worker: %s\n", cn_strerror(rc));
    cn_node_stop(n);
  }
  cn_term_free(key);
  cn_term_free(val);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: horde_worker COOKIE APP_NODE\n");
    return 2;
  }
  cn_node_opts o = {.name = "cnode_worker@127.0.0.1", .cookie = argv[1]};
  cn_node *n = NULL;
  int rc = cn_node_new(&n, NULL, &o);
  if (!rc) rc = cn_global_start(n); /* a visible member of a BEAM cluster takes part in global */
  if (!rc && !(rc = cn_node_start(n, started, argv[2]))) cn_node_run(n);
  if (rc) fprintf(stderr, "horde_worker: %s\n", cn_strerror(rc));
  cn_node_free(n);
  return rc ? 1 : 0;
}
