/* examples/echo: the smallest useful C node. It registers `echo` ({From, Term} -> From ! Term) on
 * demo@127.0.0.1; try it from erl: {echo, 'demo@127.0.0.1'} ! {self(), hi}, flush(). Ctrl-C stops it. */
#include <stdio.h>

#include <cnode/cn_global.h>
#include <cnode/cnode.h>

static void echo(cn_proc *self, const cn_term *msg, void *state) {
  (void)state;
  const cn_term *from = cn_tuple_elem(msg, 2, 0);
  if (from && from->type == CN_PID) cn_send(cn_proc_node(self), self, from->v.pid, cn_tuple_elem(msg, 2, 1));
}

int main(int argc, char **argv) {
  cn_node_opts o = {.name = "demo@127.0.0.1", .cookie = argc > 1 ? argv[1] : "secret"};
  cn_node *n = NULL;
  cn_pid pid;
  int rc;
  if ((rc = cn_node_new(&n, NULL, &o)) || (rc = cn_global_start(n)) || (rc = cn_spawn(n, echo, NULL, NULL, &pid)) ||
      (rc = cn_register(n, "echo", pid)) || (rc = cn_node_start(n, NULL, NULL))) {
    fprintf(stderr, "echo: %s\n", cn_strerror(rc));
    cn_node_free(n);
    return 1;
  }
  cn_node_run(n); /* until cn_node_stop(n) is called from any thread */
  cn_node_free(n);
  return 0;
}
