/* examples/sorted_set: a leaderboard served to Elixir. `leaderboard` is the sorted set gen_server; `simulate` is a
 * dirty gen_server: it computes scores on a dirty thread (the node keeps answering meanwhile) and adds them to the
 * leaderboard with blocking calls, which a dirty thread may make. From iex --name a@127.0.0.1 --cookie secret:
 *   GenServer.call({:leaderboard, :"ranks@127.0.0.1"}, {:add, 42, "alice"})         #=> :ok
 *   GenServer.call({:simulate, :"ranks@127.0.0.1"}, {:players, 1000}, 60_000)       #=> {:added, 1000}
 *   GenServer.call({:leaderboard, :"ranks@127.0.0.1"}, {:range, 0, 2})              #=> the three lowest
 *   GenServer.call({:leaderboard, :"ranks@127.0.0.1"}, {:rank, "alice"})            #=> {:ok, rank} */
#include <stdio.h>

#include <cnode/cn_sorted_set.h>
#include <cnode/cnode.h>

/* A stand-in for real work (a model, a simulation): a score that costs about a millisecond. */
static int64_t play(uint64_t seed) {
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (int i = 0; i < 300000; i++) x ^= x << 13, x ^= x >> 7, x ^= x << 17;
  return (int64_t)(x % 100000);
}

static cn_term *simulate(cn_proc *self, const cn_term *req, const cn_term *from, void *state) {
  (void)from, (void)state;
  cn_node *n = cn_proc_node(self);
  const cn_term *count = cn_tuple_elem(req, 2, 1);
  if (!count || count->type != CN_INT || count->v.i < 0 || count->v.i > 1000000)
    return cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, "badarg"));
  cn_term *board = cn_mk_atomc(n, "leaderboard");
  int64_t added = 0;
  for (int64_t i = 0; i < count->v.i; i++) {
    char name[32];
    int len = snprintf(name, sizeof name, "player%lld", (long long)i);
    cn_term *add = cn_mk_tuple(3, cn_mk_atomc(n, "add"), cn_mk_int(play((uint64_t)i)), cn_mk_binary(name, (size_t)len));
    cn_term *reply = NULL;
    int rc = add ? cn_call_sync(n, board, add, 5000, &reply) : CN_ENOMEM;
    if (!rc && cn_is_atom(reply, "ok")) added++;
    cn_term_free(add);
    cn_term_free(reply);
  }
  cn_term_free(board);
  return cn_mk_tuple(2, cn_mk_atomc(n, "added"), cn_mk_int(added));
}

static const cn_gen_server_ops simulate_ops = {.handle_call = simulate, .dirty = true};

int main(int argc, char **argv) {
  cn_node_opts o = {.name = "ranks@127.0.0.1", .cookie = argc > 1 ? argv[1] : "secret"};
  cn_node *n = NULL;
  int rc;
  if ((rc = cn_node_new(&n, NULL, &o)) || (rc = cn_sorted_set_start(n, "leaderboard", NULL)) ||
      (rc = cn_gen_server_start(n, "simulate", &simulate_ops, NULL, NULL)) || (rc = cn_node_start(n, NULL, NULL))) {
    fprintf(stderr, "sorted_set: %s\n", cn_strerror(rc));
    cn_node_free(n);
    return 1;
  }
  cn_node_run(n); /* until cn_node_stop(n) is called from any thread */
  cn_node_free(n);
  return 0;
}
