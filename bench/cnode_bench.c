/* cnode_bench.c: the cnode side of bench/dist.sh, written against cnode.h only (as a user would).
 *
 *   cnode_bench NAME COOKIE        e.g. cnode_bench c1@127.0.0.1 secret   (EPMD: $ERL_EPMD_PORT)
 *   CNODE_BENCH_TLS=dist.conf cnode_bench ...   over TLS, as `erl -proto_dist inet_tls -ssl_dist_optfile dist.conf`
 *
 * Registered processes (the same protocol bench/beam_bench.erl's target node and bench/ei_node.c speak):
 *   sink  {seq, N, Bin} counted; {done, From, Ref} -> From ! {Ref, Count} (Count: all seq messages so far)
 *   echo  {From, Term} -> From ! Term
 *   gs    C gen_server (cn_gen_server_start): a call's reply is its request
 *   ctl   {From, Ref, os_pid}                           -> From ! {Ref, OsPid}
 *         {From, Ref, {send, Dest, Count, Size, Senders}} -> Senders processes send Count messages in all,
 *               {seq, I, <<Size bytes>>}, to Dest (pid or {Name, Node}); then each sends {done, From, Ref}
 *               to Dest, whose sink answers From
 *         {From, Ref, {ping, Dest, Count}}               -> Count round trips {Self, ping} to the echo Dest;
 *               From ! {Ref, {P50ns, P99ns, P999ns, TotalNs}}
 * Prints "ready" on stdout once the node is listening and registered. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cn_global.h"
#include "cnode.h"

#define BATCH 256 /* messages a sender sends per handler run before it yields to the loop */

static cn_node *node;
static const cn_atom *a_seq, *a_done, *a_go, *a_ping, *a_send, *a_os_pid;
static uint64_t sink_count;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool is_atom(const cn_term *t, const cn_atom *a) { return t && t->type == CN_ATOM && t->v.atom == a; }

static void reply2(cn_proc *self, const cn_term *to, const cn_term *ref, cn_term *value) {
  cn_term *m = cn_mk_tuple(2, cn_term_copy(ref), value);
  if (m) cn_send_to(node, self, to, m);
  cn_term_free(m);
}

/* ---- sink, echo, gs ---------------------------------------------------------------------------------- */

static void sink(cn_proc *self, const cn_term *msg, void *state) {
  (void)state;
  if (msg->type != CN_TUPLE || msg->v.tuple.arity != 3) return;
  const cn_term *e = msg->v.tuple.e;
  if (is_atom(&e[0], a_seq)) {
    sink_count++;
  } else if (is_atom(&e[0], a_done)) {
    reply2(self, &e[1], &e[2], cn_mk_int((int64_t)sink_count));
  }
}

static void echo(cn_proc *self, const cn_term *msg, void *state) {
  (void)state;
  const cn_term *from = cn_tuple_elem(msg, 2, 0);
  if (from) cn_send_to(node, self, from, cn_tuple_elem(msg, 2, 1));
}

static cn_term *gs_call(cn_proc *self, const cn_term *request, const cn_term *from, void *state) {
  (void)self, (void)from, (void)state;
  return cn_term_copy(request);
}

/* ---- senders ------------------------------------------------------------------------------------------ */

typedef struct sender {
  cn_term *dest, *from, *ref;
  cn_term *msg; /* {seq, I, Bin}, built once: only I changes between sends */
  int64_t next, left;
  cn_pid self;
} sender;

static void sender_free(sender *s) {
  cn_term_free(s->dest);
  cn_term_free(s->from);
  cn_term_free(s->ref);
  cn_term_free(s->msg);
  free(s);
}

static void sender_terminate(cn_proc *self, const cn_term *reason, void *state) {
  (void)self, (void)reason;
  sender_free(state);
}

static void sender_run(cn_proc *self, const cn_term *msg, void *state) {
  (void)msg;
  sender *s = state;
  /* The library encodes the message in cn_send (its 64 KiB+ binary by reference, held until written), so reusing one
   * tuple is legitimate user code; a fresh cn_mk_binary per send would cost one copy, not two. */
  cn_term *seq = &s->msg->v.tuple.e[1];
  size_t size = s->msg->v.tuple.e[2].v.bin.size, bytes = 0;
  /* A run sends at most BATCH messages or ~1 MiB (the default busy limit), then yields: the node suspends a
   * sender over the busy limit only between runs, and drops (CN_EBUSY) over the queue limit. */
  for (int i = 0; i < BATCH && s->left > 0 && (i == 0 || bytes < ((size_t)1 << 20)); i++) {
    seq->v.i = s->next;
    if (cn_send_to(node, self, s->dest, s->msg) == CN_EBUSY) break; /* not sent: again next run */
    s->next++;
    s->left--;
    bytes += size;
  }
  if (s->left > 0) {
    cn_term *go = cn_mk_atom(a_go);
    cn_send(node, self, s->self, go); /* runs again after the loop had its turn (and any busy queue drained) */
    cn_term_free(go);
    return;
  }
  cn_term *done = cn_mk_tuple(3, cn_mk_atom(a_done), cn_term_copy(s->from), cn_term_copy(s->ref));
  if (done) cn_send_to(node, self, s->dest, done);
  cn_term_free(done);
  cn_proc_exit(self, NULL);
}

static void start_senders(cn_proc *self, const cn_term *from, const cn_term *ref, const cn_term *args) {
  const cn_term *dest = &args[1];
  if (args[2].type != CN_INT || args[3].type != CN_INT || args[4].type != CN_INT) return;
  int64_t count = args[2].v.i, size = args[3].v.i, nsend = args[4].v.i;
  if (nsend < 1) nsend = 1;
  void *payload = calloc(1, (size_t)size + 1);
  if (!payload) return;
  memset(payload, 'x', (size_t)size);
  for (int64_t k = 0; k < nsend; k++) {
    sender *s = calloc(1, sizeof *s);
    if (!s) break;
    s->dest = cn_term_copy(dest);
    s->from = cn_term_copy(from);
    s->ref = cn_term_copy(ref);
    s->msg = cn_mk_tuple(3, cn_mk_atom(a_seq), cn_mk_int(0), cn_mk_binary(payload, (size_t)size));
    s->left = count / nsend + (k < count % nsend ? 1 : 0);
    cn_proc_opts o = {.terminate = sender_terminate};
    if (!s->dest || !s->from || !s->ref || !s->msg || cn_spawn(node, sender_run, s, &o, &s->self)) {
      sender_free(s);
      break;
    }
    cn_term *go = cn_mk_atom(a_go);
    cn_send(node, self, s->self, go);
    cn_term_free(go);
  }
  free(payload);
}

/* ---- pinger -------------------------------------------------------------------------------------------- */

typedef struct pinger {
  cn_term *dest, *from, *ref, *ping;
  uint64_t *samples, t0, start;
  int64_t count, done;
} pinger;

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void pinger_terminate(cn_proc *self, const cn_term *reason, void *state) {
  (void)self, (void)reason;
  pinger *p = state;
  cn_term_free(p->dest);
  cn_term_free(p->from);
  cn_term_free(p->ref);
  cn_term_free(p->ping);
  free(p->samples);
  free(p);
}

static void pinger_run(cn_proc *self, const cn_term *msg, void *state) {
  pinger *p = state;
  uint64_t t = now_ns();
  if (is_atom(msg, a_ping)) p->samples[p->done++] = t - p->t0; /* an echo came back */
  else p->start = t;                                           /* the first 'go' */
  if (p->done < p->count) {
    p->t0 = now_ns();
    cn_send_to(node, self, p->dest, p->ping);
    return;
  }
  uint64_t total = t - p->start;
  qsort(p->samples, (size_t)p->count, sizeof *p->samples, cmp_u64);
  size_t n = (size_t)p->count;
  cn_term *res = cn_mk_tuple(4, cn_mk_int((int64_t)p->samples[n / 2]), cn_mk_int((int64_t)p->samples[n * 99 / 100]),
                             cn_mk_int((int64_t)p->samples[n * 999 / 1000]), cn_mk_int((int64_t)total));
  reply2(self, p->from, p->ref, res);
  cn_proc_exit(self, NULL);
}

static void start_pinger(cn_proc *self, const cn_term *from, const cn_term *ref, const cn_term *args) {
  if (args[2].type != CN_INT || args[2].v.i < 1) return;
  pinger *p = calloc(1, sizeof *p);
  if (!p) return;
  p->count = args[2].v.i;
  p->samples = calloc((size_t)p->count, sizeof *p->samples);
  p->dest = cn_term_copy(&args[1]);
  p->from = cn_term_copy(from);
  p->ref = cn_term_copy(ref);
  cn_pid pid;
  cn_proc_opts o = {.terminate = pinger_terminate};
  if (!p->samples || !p->dest || !p->from || !p->ref || cn_spawn(node, pinger_run, p, &o, &pid)) {
    pinger_terminate(NULL, NULL, p);
    return;
  }
  p->ping = cn_mk_tuple(2, cn_mk_pid(pid), cn_mk_atom(a_ping));
  cn_term *go = cn_mk_atom(a_go);
  cn_send(node, self, pid, go);
  cn_term_free(go);
}

/* ---- ctl ------------------------------------------------------------------------------------------------- */

static void ctl(cn_proc *self, const cn_term *msg, void *state) {
  (void)state;
  const cn_term *from = cn_tuple_elem(msg, 3, 0), *ref = cn_tuple_elem(msg, 3, 1), *cmd = cn_tuple_elem(msg, 3, 2);
  if (!from || !ref || !cmd) return;
  if (is_atom(cmd, a_os_pid)) {
    reply2(self, from, ref, cn_mk_int((int64_t)getpid()));
  } else if (cmd->type == CN_TUPLE && cmd->v.tuple.arity == 5 && is_atom(&cmd->v.tuple.e[0], a_send)) {
    start_senders(self, from, ref, cmd->v.tuple.e);
  } else if (cmd->type == CN_TUPLE && cmd->v.tuple.arity == 3 && is_atom(&cmd->v.tuple.e[0], a_ping)) {
    start_pinger(self, from, ref, cmd->v.tuple.e);
  }
}

static void on_started(cn_node *n, int status, void *ctx) {
  (void)ctx;
  if (status) {
    fprintf(stderr, "cnode_bench: start: %s\n", cn_strerror(status));
    cn_node_stop(n);
    return;
  }
  printf("ready %u\n", (unsigned)cn_node_port(n));
  fflush(stdout);
}

static const cn_gen_server_ops gs_ops = {.handle_call = gs_call};

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: cnode_bench NAME COOKIE\n");
    return 2;
  }
  cn_node_opts o = {.name = argv[1], .cookie = argv[2], .log_level = CN_LOG_WARN};
  cn_tls_opts tls = {0};
  const char *optfile = getenv("CNODE_BENCH_TLS");
  char err[512];
  if (optfile && cn_tls_opts_load(optfile, &tls, err, sizeof err, NULL, 0)) {
    fprintf(stderr, "cnode_bench: %s\n", err);
    return 1;
  }
  if (optfile) o.tls = &tls;
  int rc = cn_node_new(&node, NULL, &o);
  if (!rc) rc = cn_global_start(node); /* a visible node, as a BEAM node: in global */
  cn_pid pid;
  if (!rc) {
    a_seq = cn_intern(node, "seq");
    a_done = cn_intern(node, "done");
    a_go = cn_intern(node, "go");
    a_ping = cn_intern(node, "ping");
    a_send = cn_intern(node, "send");
    a_os_pid = cn_intern(node, "os_pid");
  }
  if (rc || (rc = cn_spawn(node, sink, NULL, NULL, &pid)) || (rc = cn_register(node, "sink", pid)) ||
      (rc = cn_spawn(node, echo, NULL, NULL, &pid)) || (rc = cn_register(node, "echo", pid)) ||
      (rc = cn_spawn(node, ctl, NULL, NULL, &pid)) || (rc = cn_register(node, "ctl", pid)) ||
      (rc = cn_gen_server_start(node, "gs", &gs_ops, NULL, NULL)) || (rc = cn_node_start(node, on_started, NULL))) {
    fprintf(stderr, "cnode_bench: %s\n", cn_strerror(rc));
    cn_node_free(node);
    cn_tls_opts_clear(&tls);
    return 1;
  }
  rc = cn_node_run(node);
  cn_node_free(node);
  cn_tls_opts_clear(&tls);
  return rc ? 1 : 0;
}
