/* examples/pubsub_worker: a C worker on an Elixir app's Phoenix.PubSub. It subscribes to "jobs" and answers each
 * integer N broadcast there with {:result, N, N * N, node} broadcast on "results". Usage: pubsub_worker COOKIE
 * APP_NODE (e.g. pubsub_worker secret app@127.0.0.1, where app runs {Phoenix.PubSub, name: MyApp.PubSub}); then in
 * iex on any app node:
 *   Phoenix.PubSub.subscribe(MyApp.PubSub, "results")
 *   Phoenix.PubSub.broadcast(MyApp.PubSub, "jobs", 7)
 *   flush()  #=> {:result, 7, 49, :"cnode_worker@127.0.0.1"} */
#include <stdio.h>

#include <cnode/cn_global.h>
#include <cnode/cn_pubsub.h>
#include <cnode/cnode.h>

#define PUBSUB "Elixir.MyApp.PubSub"

/* Every message of "jobs" arrives here as the Elixir subscribers get it: the broadcast's message itself. */
static void worker(cn_proc *self, const cn_term *msg, void *state) {
  (void)state;
  cn_node *n = cn_proc_node(self);
  if (msg->type != CN_INT) return; /* not a job */
  cn_term *res = cn_mk_tuple(4, cn_mk_atomc(n, "result"), cn_mk_int(msg->v.i), cn_mk_int(msg->v.i * msg->v.i),
                             cn_mk_atom(cn_node_name(n)));
  int rc = res ? cn_pubsub_broadcast(n, PUBSUB, "results", res) : CN_ENOMEM;
  if (rc) fprintf(stderr, "pubsub_worker: broadcast: %s\n", cn_strerror(rc));
  cn_term_free(res);
}

static void started(cn_node *n, int status, void *app_node) {
  cn_pid pid;
  int rc = status;
  /* pool size 0: the node runs as many shards as the app's nodes do, learned once it meets them */
  if (!rc) rc = cn_pubsub_start(n, PUBSUB, 0);
  if (!rc) rc = cn_spawn(n, worker, NULL, NULL, &pid);
  if (!rc) rc = cn_pubsub_subscribe(n, PUBSUB, "jobs", pid);
  if (!rc) rc = cn_node_connect(n, cn_intern(n, app_node)); /* pg meets the app's scope on nodeup */
  if (rc) {
    fprintf(stderr, "pubsub_worker: %s\n", cn_strerror(rc));
    cn_node_stop(n);
  }
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: pubsub_worker COOKIE APP_NODE\n");
    return 2;
  }
  cn_node_opts o = {.name = "cnode_worker@127.0.0.1", .cookie = argv[1]};
  cn_node *n = NULL;
  int rc = cn_node_new(&n, NULL, &o);
  if (!rc) rc = cn_global_start(n); /* a visible member of a BEAM cluster takes part in global */
  if (!rc && !(rc = cn_node_start(n, started, argv[2]))) cn_node_run(n);
  if (rc) fprintf(stderr, "pubsub_worker: %s\n", cn_strerror(rc));
  cn_node_free(n);
  return rc ? 1 : 0;
}
