/* examples/fused_worker: a C worker that calls an Elixir service through a fuse, with a watchdog on a TCP dependency
 * and its alarms in the app node's SASL alarm_handler. Every second it calls GenServer.call(MyApp.Prices, :latest)
 * on APP_NODE through the fuse "prices" ({standard, 2, 10000}, {reset, 5000}); three failed calls within 10 s blow it,
 * and the calls then fail at once (CN_EBLOWN) until it heals. Usage: fused_worker COOKIE APP_NODE DB_PORT (e.g.
 * fused_worker secret app@127.0.0.1 5432); in iex on the app node (started with :sasl): :alarm_handler.get_alarms()
 * shows {{:dependency_down, :db}, _} while nothing listens on DB_PORT and {{:fuse_blown, :prices}, :prices} while
 * the fuse is blown. */
#include <stdio.h>
#include <stdlib.h>

#include <cnode/cn_alarm.h>
#include <cnode/cn_fuse.h>
#include <cnode/cn_global.h>
#include <cnode/cn_watchdog.h>
#include <cnode/cnode.h>

static void got_price(cn_proc *self, int status, const cn_term *reply, void *ctx) {
  (void)self;
  (void)ctx;
  (void)reply;
  if (status) printf("fused_worker: price: %s\n", cn_strerror(status)); /* CN_EBLOWN while the fuse is blown */
  else printf("fused_worker: got a price\n");
}

/* The worker: each tick (a message it sends itself every second) asks for the latest price. */
static void worker(cn_proc *self, const cn_term *msg, void *app_node) {
  cn_node *n = cn_proc_node(self);
  if (!cn_is_atom(msg, "tick")) return;
  cn_send_after(n, 1000, cn_self(self), msg, NULL);
  cn_term *server = cn_mk_tuple(2, cn_mk_atomc(n, "Elixir.MyApp.Prices"), cn_mk_atomc(n, app_node));
  cn_term *req = cn_mk_atomc(n, "latest");
  int rc =
      server && req ? cn_call_guarded(self, cn_fuse_guard(n, "prices"), server, req, 500, got_price, NULL) : CN_ENOMEM;
  if (rc) printf("fused_worker: not called: %s\n", cn_strerror(rc));
  cn_term_free(server);
  cn_term_free(req);
}

typedef struct args {
  const char *app_node;
  uint16_t db_port;
} args;

static void started(cn_node *n, int status, void *ctx) {
  args *a = ctx;
  cn_fuse_opts fo = {.kind = CN_FUSE_STANDARD, .max_melts = 2, .window_ms = 10000, .reset_ms = 5000};
  cn_watch_opts wo = {.name = "db", .host = "127.0.0.1", .port = a->db_port, .interval_ms = 1000};
  cn_pid pid;
  cn_term *tick = cn_mk_atomc(n, "tick");
  int rc = status;
  if (!rc) rc = cn_alarm_mirror(n, cn_intern(n, a->app_node)); /* alarms go to its alarm_handler */
  if (!rc) rc = cn_fuse_install(n, "prices", &fo);
  if (!rc) rc = cn_watch_start(n, &wo, NULL);
  if (!rc) rc = cn_spawn(n, worker, (void *)a->app_node, NULL, &pid);
  if (!rc) rc = tick ? cn_send(n, NULL, pid, tick) : CN_ENOMEM;
  cn_term_free(tick);
  if (rc) {
    fprintf(stderr, "fused_worker: %s\n", cn_strerror(rc));
    cn_node_stop(n);
  }
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: fused_worker COOKIE APP_NODE DB_PORT\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0); /* a line at a time, also into a pipe */
  args a = {argv[2], (uint16_t)atoi(argv[3])};
  cn_node_opts o = {.name = "fused_worker@127.0.0.1", .cookie = argv[1]};
  cn_node *n = NULL;
  int rc = cn_node_new(&n, NULL, &o);
  if (!rc) rc = cn_global_start(n);
  if (!rc && !(rc = cn_node_start(n, started, &a))) cn_node_run(n);
  if (rc) fprintf(stderr, "fused_worker: %s\n", cn_strerror(rc));
  cn_node_free(n);
  return rc ? 1 : 0;
}
