/* test_node.c: the runtime: local processes (spawn, names, send, exit, terminate) on a node that is not
 * started, then C nodes in their own threads finding each other through a real OTP epmd: messages by name
 * and pid, nodeup/nodedown, and a wrong cookie refused on both sides while the node keeps serving; last, where
 * a node listens (listen_addr, the listen port range). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cnode.h"
#include "node_int.h" /* otp_parse_release */
#include "testutil.h"
#include "tnode.h"

/* ---- Local processes ----------------------------------------------------------------------------------- */

typedef struct seen {
  int count;
  int terminated;
  char last[256];
} seen;

static void recorder(cn_proc *self, const cn_term *msg, void *state) {
  seen *s = state;
  s->count++;
  char *txt = cn_term_to_string(msg);
  snprintf(s->last, sizeof s->last, "%s", txt ? txt : "?");
  cn_free(txt);
  if (cn_is_atom(msg, "stop")) cn_proc_exit(self, msg);
}

static void recorder_end(cn_proc *self, const cn_term *reason, void *state) {
  (void)self;
  seen *s = state;
  s->terminated++;
  char *txt = cn_term_to_string(reason);
  snprintf(s->last, sizeof s->last, "exit:%s", txt ? txt : "?");
  cn_free(txt);
}

static void spin(cn_node *n) {
  for (int i = 0; i < 10; i++) uv_run(cn_node_loop(n), UV_RUN_NOWAIT);
}

static cn_node *local_node(void) {
  cn_node_opts o = {.name = "local@127.0.0.1", .cookie = "c", .log_level = CN_LOG_ERROR};
  cn_node *n = NULL;
  assert_int_equal(cn_node_new(&n, NULL, &o), 0);
  return n;
}

static int sigpipe_seen;
static void on_sigpipe(int sig) {
  (void)sig;
  sigpipe_seen++;
}

/* A peer that closes while the node writes must not end the process (a CI run of test_registry died silently
 * when a node stopped under a writing peer): cn_node_new ignores SIGPIPE unless the program has a handler of its
 * own, which it keeps. */
static void test_sigpipe(void **st) {
  (void)st;
  signal(SIGPIPE, SIG_DFL);
  cn_node_opts o = {.name = "sp@127.0.0.1", .cookie = "c"};
  cn_node *n;
  assert_int_equal(cn_node_new(&n, NULL, &o), 0);
  struct sigaction sa;
  assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
  assert_true(sa.sa_handler == SIG_IGN);
  raise(SIGPIPE); /* ignored: the test goes on */
  cn_node_free(n);
  signal(SIGPIPE, on_sigpipe);
  assert_int_equal(cn_node_new(&n, NULL, &o), 0);
  raise(SIGPIPE);
  assert_int_equal(sigpipe_seen, 1);
  cn_node_free(n);
  signal(SIGPIPE, SIG_IGN);
}

static void test_local_send_and_names(void **st) {
  (void)st;
  cn_node *n = local_node();
  seen s = {0};
  cn_proc_opts po = {.terminate = recorder_end};
  cn_pid pid;
  assert_int_equal(cn_spawn(n, recorder, &s, &po, &pid), 0);
  assert_int_equal(cn_register(n, "rec", pid), 0);
  assert_int_equal(cn_register(n, "rec", pid), CN_EEXIST);
  cn_pid found;
  assert_int_equal(cn_whereis(n, "rec", &found), 0);
  assert_int_equal(found.id, pid.id);
  cn_term *m = cn_mk_tuple(2, cn_mk_atomc(n, "hello"), cn_mk_int(42));
  assert_int_equal(cn_send(n, NULL, pid, m), 0);
  assert_int_equal(cn_send_name(n, NULL, "rec", NULL, m), 0);
  assert_int_equal(cn_send_name(n, NULL, "nobody", NULL, m), CN_ENOTFOUND);
  cn_term_free(m);
  spin(n);
  assert_int_equal(s.count, 2);
  assert_string_equal(s.last, "{hello,42}");
  cn_term *stop = cn_mk_atomc(n, "stop");
  cn_send(n, NULL, pid, stop);
  cn_term_free(stop);
  spin(n);
  assert_int_equal(s.terminated, 1);
  assert_string_equal(s.last, "exit:stop");
  assert_int_equal(cn_whereis(n, "rec", &found), CN_ENOTFOUND);
  /* A message to a dead pid is dropped, like Erlang's `!`. */
  cn_term *late = cn_mk_int(1);
  assert_int_equal(cn_send(n, NULL, pid, late), 0);
  cn_term_free(late);
  cn_node_free(n);
}

static void test_exit_signals(void **st) {
  (void)st;
  cn_node *n = local_node();
  seen a = {0}, b = {0};
  cn_proc_opts trap = {.terminate = recorder_end, .trap_exit = true};
  cn_proc_opts plain = {.terminate = recorder_end};
  cn_pid pa, pb;
  assert_int_equal(cn_spawn(n, recorder, &a, &trap, &pa), 0);
  assert_int_equal(cn_spawn(n, recorder, &b, &plain, &pb), 0);
  assert_int_equal(cn_register(n, "a", pa), 0);
  cn_node_free(n); /* node stop ends every process with reason shutdown */
  assert_int_equal(a.terminated, 1);
  assert_int_equal(b.terminated, 1);
  assert_string_equal(b.last, "exit:shutdown");
}

/* ---- Nodes in threads -------------------------------------------------------------------------------------- */

static uint16_t epmd_port;

static void node_start(tnode *t, const char *name, const char *cookie) {
  cn_node_opts o = {.name = name,
                    .cookie = cookie,
                    .epmd_port = epmd_port,
                    .listen_addr = "127.0.0.1",
                    .net_ticktime_s = 4,
                    .log_level = CN_LOG_DEBUG};
  tnode_start(t, &o);
}

/* Makes node `via` send Msg to Dest from its fwd process: {Dest, {CollectorPid, Payload}}. */
static void send_via(tnode *via, const char *dest_name, const char *dest_node, cn_pid reply_to, int64_t payload) {
  cn_node *n = via->n;
  tnode_send_via(via, dest_name, dest_node,
                 cn_mk_tuple(2, cn_mk_pid(reply_to), cn_mk_tuple(2, cn_mk_atomc(n, "pong"), cn_mk_int(payload))));
}

/* What the public stats API says on b's own thread (cn_node_conns and cn_node_proc_stats are loop-thread calls),
 * taken by its `probe` process on any message; `done` is read by the test under no lock, as the counters are. */
static struct probe {
  volatile int done;
  size_t nconns;
  cn_conn_info a; /* the connection to a@127.0.0.1 */
  bool found;
  cn_node_stats stats;
  cn_proc_stats procs;
} probe;

static void probe_handler(cn_proc *self, const cn_term *msg, void *state) {
  (void)msg, (void)state;
  cn_node *n = cn_proc_node(self);
  cn_conn_info ci[8];
  probe.nconns = cn_node_conns(n, ci, 8);
  for (size_t i = 0; i < probe.nconns && i < 8; i++)
    if (ci[i].node && !strcmp(ci[i].node->name, "a@127.0.0.1")) probe.a = ci[i], probe.found = true;
  cn_node_get_stats(n, &probe.stats);
  cn_node_proc_stats(n, &probe.procs);
  __atomic_store_n(&probe.done, 1, __ATOMIC_RELEASE);
}

/* b's counters after a's messages and bad's refused cookie. */
static void check_probe(tnode *b) {
  cn_term *go = cn_mk_atomc(b->n, "go");
  assert_int_equal(cn_send_threadsafe(b->n, NULL, "probe", NULL, go), 0);
  for (int i = 0; i < 500 && !__atomic_load_n(&probe.done, __ATOMIC_ACQUIRE); i++) sleep_ms(10);
  assert_true(probe.done);
  assert_true(probe.found);
  assert_string_equal(probe.a.state, "up");
  assert_false(probe.a.initiator);
  assert_false(probe.a.hidden);
  assert_true(probe.a.bytes_in > 0 && probe.a.bytes_out > 0);
  assert_true(probe.a.messages_in >= 2 && probe.a.messages_out >= 2); /* two pings in, two pongs out */
  assert_true(probe.stats.bytes_in >= probe.a.bytes_in && probe.stats.messages_in >= probe.a.messages_in);
  assert_true(probe.stats.setup_failures[CN_SETUP_COOKIE] >= 1);
  assert_int_equal(probe.stats.setup_failures[CN_SETUP_TIMEOUT], 0);
  assert_true(probe.stats.connections_up >= 1);
  assert_true(probe.procs.processes >= 4 && probe.procs.registered >= 3);
  assert_string_equal(cn_setup_fail_name(CN_SETUP_COOKIE), "cookie");
  assert_string_equal(cn_setup_fail_name(CN_SETUP_FAIL_COUNT), "unknown");
}

static void test_c_to_c(void **st) {
  (void)st;
  int epmd = test_epmd_start(&epmd_port);
  assert_true(epmd > 0);
  tnode a, b, bad;
  node_start(&a, "a@127.0.0.1", "secret");
  cn_node_opts bo = {.name = "b@127.0.0.1",
                     .cookie = "secret",
                     .epmd_port = epmd_port,
                     .listen_addr = "127.0.0.1",
                     .net_ticktime_s = 4,
                     .log_level = CN_LOG_DEBUG};
  tnode_new(&b, &bo);
  tnode_spawn_named(&b, "probe", probe_handler, NULL);
  tnode_run(&b);
  node_start(&bad, "bad@127.0.0.1", "wrong");
  assert_true(tnode_wait(&a, tnode_is_ready, NULL) && a.ready == 1);
  assert_true(tnode_wait(&b, tnode_is_ready, NULL) && b.ready == 1);
  assert_true(tnode_wait(&bad, tnode_is_ready, NULL) && bad.ready == 1);
  assert_true(tnode_log_has(&a, "ready: port") || tnode_wait(&a, tnode_log_has, "ready: port"));

  /* a connects to b on demand; b's echo answers a's collector by pid. */
  send_via(&a, "echo", "b@127.0.0.1", a.collector, 1);
  int one = 1;
  assert_true(tnode_wait(&a, tnode_has_msgs, &one));
  assert_string_equal(a.last, "{pong,1}");
  assert_true(tnode_wait(&b, tnode_log_has, "nodeup a@127.0.0.1"));
  assert_int_equal(a.nodeups, 1);

  /* A wrong cookie is refused on both sides, with the reason in the log. */
  send_via(&bad, "echo", "b@127.0.0.1", bad.collector, 2);
  assert_true(tnode_wait(&bad, tnode_log_has, "cookie"));
  assert_true(tnode_wait(&b, tnode_log_has, "cookie"));
  assert_int_equal(bad.msgs, 0);

  /* b keeps serving a. */
  send_via(&a, "echo", "b@127.0.0.1", a.collector, 3);
  int two = 2;
  assert_true(tnode_wait(&a, tnode_has_msgs, &two));
  assert_string_equal(a.last, "{pong,3}");
  check_probe(&b);

  /* b stops: a sees nodedown. */
  tnode_stop(&b);
  assert_true(tnode_wait(&a, tnode_has_nodedown, NULL));
  tnode_stop(&bad);
  tnode_stop(&a);
  test_epmd_stop(epmd);
}

/* Node names of 255 characters (the atom limit) in 1-, 2- and 4-byte UTF-8, up to 990 bytes: registered with OTP's
 * epmd, looked up, carried through the handshake both ways, and echoed back by pid. */
static void long_name(char *out, size_t cap, int width) {
  static const char *ch[] = {"", "a", "\xc3\xa9", "", "\xf0\x9f\x98\x80"}; /* a, é, 😀 */
  const char *host = "@127.0.0.1";
  size_t k = 0, chars = 255 - strlen(host);
  for (size_t i = 0; i < chars; i++, k += (size_t)width) memcpy(out + k, ch[width], (size_t)width);
  assert_true(k + strlen(host) < cap);
  strcpy(out + k, host);
}

static void test_long_node_names(void **st) {
  (void)st;
  int epmd = test_epmd_start(&epmd_port);
  assert_true(epmd > 0);
  tnode b;
  node_start(&b, "b@127.0.0.1", "secret");
  assert_true(tnode_wait(&b, tnode_is_ready, NULL) && b.ready == 1);
  for (int w = 1; w <= 4; w *= 2) {
    static char name[CN_ATOM_MAX_BYTES + 1];
    long_name(name, sizeof name, w);
    tnode a;
    node_start(&a, name, "secret");
    assert_true(tnode_wait(&a, tnode_is_ready, NULL) && a.ready == 1);
    /* b connects to a (a lookup of a's long alive part), a's echo answers b's collector; then a to b. */
    int want = b.msgs + 1;
    send_via(&b, "echo", name, b.collector, w);
    assert_true(tnode_wait(&b, tnode_has_msgs, &want));
    int one = 1;
    tnode_send_via(&b, "fwd", name,
                   cn_mk_tuple(2, cn_mk_tuple(2, cn_mk_atomc(b.n, "echo"), cn_mk_atomc(b.n, "b@127.0.0.1")),
                               cn_mk_tuple(2, cn_mk_pid(a.collector), cn_mk_int(w))));
    assert_true(tnode_wait(&a, tnode_has_msgs, &one));
    tnode_stop(&a);
    assert_true(tnode_wait(&b, tnode_log_has, "nodedown"));
  }
  tnode_stop(&b);
  test_epmd_stop(epmd);
}

/* Two nodes that send to each other at the same moment connect to each other at once: OTP's rule (the
 * greater name's connection wins, the other side answers nok / ok_simultaneous) must leave one connection and
 * deliver both messages, whatever the interleaving. Repeated over fresh pairs to meet several orders. */
static void test_simultaneous_connect(void **st) {
  (void)st;
  int epmd = test_epmd_start(&epmd_port);
  assert_true(epmd > 0);
  int simultaneous = 0;
  for (int round = 0; round < 8; round++) {
    char xn[32], yn[32];
    snprintf(xn, sizeof xn, "x%d@127.0.0.1", round);
    snprintf(yn, sizeof yn, "y%d@127.0.0.1", round);
    tnode x, y;
    node_start(&x, xn, "secret");
    node_start(&y, yn, "secret");
    assert_true(tnode_wait(&x, tnode_is_ready, NULL) && x.ready == 1);
    assert_true(tnode_wait(&y, tnode_is_ready, NULL) && y.ready == 1);
    send_via(&x, "echo", yn, x.collector, 10 + round);
    send_via(&y, "echo", xn, y.collector, 20 + round);
    int one = 1;
    assert_true(tnode_wait(&x, tnode_has_msgs, &one));
    assert_true(tnode_wait(&y, tnode_has_msgs, &one));
    /* Exactly one connection survives on each side. */
    sleep_ms(50);
    pthread_mutex_lock(&x.mu);
    int ups = x.nodeups, downs = x.nodedowns;
    pthread_mutex_unlock(&x.mu);
    assert_int_equal(ups - downs, 1);
    if (strstr(x.log, "simultaneous") || strstr(y.log, "simultaneous")) simultaneous++;
    tnode_stop(&x);
    tnode_stop(&y);
  }
  print_message("simultaneous connects resolved: %d of 8 rounds\n", simultaneous);
  test_epmd_stop(epmd);
}

/* ---- Signals between C nodes ---------------------------------------------------------------------------- */

/* A process on one node that links to or monitors a pid given in its first message and reports what it gets
 * to the node's collector. */
typedef struct watcher_arg {
  tnode *t;
  bool monitor;
} watcher_arg;

static void watcher(cn_proc *self, const cn_term *msg, void *state) {
  watcher_arg *w = state;
  const cn_term *cmd = cn_tuple_elem(msg, 2, 0), *pid = cn_tuple_elem(msg, 2, 1);
  if (cmd && cn_is_atom(cmd, "watch") && pid->type == CN_PID) {
    if (w->monitor) {
      cn_ref ref;
      cn_monitor(self, pid, &ref);
    } else {
      cn_link(self, pid->v.pid);
    }
    return;
  }
  cn_send(cn_proc_node(self), self, w->t->collector, msg);
}

static cn_term *kv_call(cn_proc *self, const cn_term *req, const cn_term *from, void *state) {
  (void)from;
  (void)state;
  if (cn_is_atom(req, "stop")) {
    cn_proc_exit(self, req);
    return NULL;
  }
  return cn_mk_tuple(2, cn_mk_atomc(cn_proc_node(self), "got"), cn_term_copy(req));
}
static const cn_gen_server_ops kv_ops = {.handle_call = kv_call};

static void test_signals_between_nodes(void **st) {
  (void)st;
  int epmd = test_epmd_start(&epmd_port);
  assert_true(epmd > 0);
  tnode a, b;
  node_start(&a, "sa@127.0.0.1", "secret");
  node_start(&b, "sb@127.0.0.1", "secret");
  assert_true(tnode_wait(&a, tnode_is_ready, NULL) && a.ready == 1);
  assert_true(tnode_wait(&b, tnode_is_ready, NULL) && b.ready == 1);

  /* A blocking call from this (foreign) thread to a gen_server on b, through a. */
  cn_pid srv;
  assert_int_equal(cn_gen_server_start(b.n, "kv", &kv_ops, NULL, &srv), 0);
  cn_term *dest = cn_mk_tuple(2, cn_mk_atomc(a.n, "kv"), cn_mk_atomc(a.n, "sb@127.0.0.1"));
  cn_term *req = cn_mk_atomc(a.n, "hello"), *reply = NULL;
  assert_int_equal(cn_call_sync(a.n, dest, req, 5000, &reply), 0);
  char *txt = cn_term_to_string(reply);
  assert_string_equal(txt, "{got,hello}");
  cn_free(txt);
  cn_term_free(reply);
  /* rpc to a C node: its rex answers as a node without the code does. */
  cn_term *noargs = cn_mk_nil();
  assert_int_equal(cn_rpc_sync(a.n, cn_intern(a.n, "sb@127.0.0.1"), "m", "f", noargs, 5000, &reply), 0);
  txt = cn_term_to_string(reply);
  assert_string_equal(txt, "{badrpc,{'EXIT',{undef,[{m,f,[],[]}]}}}");
  cn_free(txt);
  cn_term_free(reply);
  cn_term_free(noargs);

  /* A trapping process on a links to the server on b; the server stops mid-call: the caller gets the
   * reason, the linked process gets the 'EXIT'. */
  watcher_arg wl = {&a, false};
  cn_proc_opts trap = {.trap_exit = true};
  cn_pid lw;
  assert_int_equal(cn_spawn(a.n, watcher, &wl, &trap, &lw), 0);
  /* Pids name their node by an atom of the node's own table: srv was made on b, so re-intern it for a. */
  cn_pid srv_a = srv;
  srv_a.node = cn_intern(a.n, srv.node->name);
  cn_term *watch = cn_mk_tuple(2, cn_mk_atomc(a.n, "watch"), cn_mk_pid(srv_a));
  assert_int_equal(cn_send_threadsafe(a.n, &lw, NULL, NULL, cn_term_copy(watch)), 0);
  sleep_ms(100);
  cn_term *stop = cn_mk_atomc(a.n, "stop");
  assert_int_equal(cn_call_sync(a.n, dest, stop, 5000, &reply), CN_EEXIT);
  txt = cn_term_to_string(reply);
  assert_string_equal(txt, "stop");
  cn_free(txt);
  cn_term_free(reply);
  assert_true(tnode_wait(&a, tnode_last_has, "{'EXIT',"));
  assert_non_null(strstr(a.last, ",stop}"));

  /* A monitor from a to a process on b: when b goes away, DOWN with noconnection. */
  watcher_arg wm = {&a, true};
  cn_pid mw, target;
  assert_int_equal(cn_spawn(a.n, watcher, &wm, NULL, &mw), 0);
  assert_int_equal(cn_whereis(b.n, "echo", &target), 0);
  target.node = cn_intern(a.n, target.node->name);
  cn_term *watch2 = cn_mk_tuple(2, cn_mk_atomc(a.n, "watch"), cn_mk_pid(target));
  assert_int_equal(cn_send_threadsafe(a.n, &mw, NULL, NULL, watch2), 0);
  sleep_ms(100);
  tnode_stop(&b);
  assert_true(tnode_wait(&a, tnode_last_has, "noconnection"));
  assert_non_null(strstr(a.last, "{'DOWN',"));
  cn_term_free(watch);
  cn_term_free(stop);
  cn_term_free(dest);
  cn_term_free(req);
  tnode_stop(&a);
  test_epmd_stop(epmd);
}

/* ---- Where the node listens ---------------------------------------------------------------------------- */

/* The node's log lines, kept for the checks. */
typedef struct loglines {
  char text[4096];
} loglines;

static void keep_log(cn_node *n, cn_log_level level, const char *msg, void *ctx) {
  (void)n;
  (void)level;
  loglines *l = ctx;
  size_t k = strlen(l->text);
  snprintf(l->text + k, sizeof l->text - k, "%s\n", msg);
}

/* The local addresses of the listening TCP sockets on port, as the kernel lists them for ss (/proc/net/tcp and
 * tcp6): e.g. "127.0.0.1", "::1", "0.0.0.0 ::"; "" when nothing listens there. */
static void listening_on(uint16_t port, char *out, size_t cap) {
  out[0] = 0;
  for (int v6 = 0; v6 < 2; v6++) {
    FILE *f = fopen(v6 ? "/proc/net/tcp6" : "/proc/net/tcp", "r");
    if (!f) continue;
    char line[512];
    while (fgets(line, sizeof line, f)) {
      char hex[40], ip[INET6_ADDRSTRLEN];
      unsigned lport, state;
      if (sscanf(line, " %*d: %32[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x", hex, &lport, &state) != 3) continue;
      if (lport != port || state != 0x0A) continue; /* 0A: TCP_LISTEN */
      /* The kernel prints each 32-bit word of the address as a host-order number. */
      uint32_t w[4] = {0};
      for (int i = 0; i < (v6 ? 4 : 1); i++) {
        char part[9];
        memcpy(part, hex + 8 * i, 8);
        part[8] = 0;
        w[i] = (uint32_t)strtoul(part, NULL, 16);
      }
      inet_ntop(v6 ? AF_INET6 : AF_INET, w, ip, sizeof ip);
      size_t k = strlen(out);
      snprintf(out + k, cap - k, "%s%s", k ? " " : "", ip);
    }
    fclose(f);
  }
}

/* A socket of the test's own listening on 127.0.0.1:port (0: any); returns the fd, *port set. */
static int occupy(uint16_t *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(*port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 1) ||
      getsockname(fd, (struct sockaddr *)&a, &al)) {
    if (fd >= 0) close(fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

static void count_start(cn_node *n, int status, void *ctx) {
  (void)n;
  (void)status;
  (*(int *)ctx)++;
}

/* A node with no EPMD (it only listens); cn_node_start's result, the node kept in *out (free it). */
static int listen_node(cn_node **out, const char *addr, uint16_t port, uint16_t port_max, loglines *l) {
  cn_node_opts o = {.name = "lis@127.0.0.1",
                    .cookie = "c",
                    .no_epmd = true,
                    .listen_addr = addr,
                    .listen_port = port,
                    .listen_port_max = port_max,
                    .log = keep_log,
                    .log_ctx = l,
                    .log_level = CN_LOG_DEBUG};
  memset(l, 0, sizeof *l);
  assert_int_equal(cn_node_new(out, NULL, &o), 0);
  static int started;
  return cn_node_start(*out, count_start, &started);
}

/* OTP's inet_dist_listen_min/max: the first free port of the range, in order; all taken: CN_EEXIST and a
 * log line naming the range. */
static void test_listen_port_range(void **st) {
  (void)st;
  /* P taken by the test, P+1 free (a moment ago). */
  uint16_t p = 0;
  int taken = -1;
  for (int i = 0; i < 50 && taken < 0; i++) {
    uint16_t q = 0;
    int fd = occupy(&q);
    if (fd < 0 || q == 65535) {
      if (fd >= 0) close(fd);
      continue;
    }
    uint16_t next = (uint16_t)(q + 1);
    int probe = occupy(&next);
    if (probe >= 0) {
      close(probe);
      taken = fd;
      p = q;
    } else {
      close(fd);
    }
  }
  assert_true(taken >= 0);
  cn_node *n;
  loglines l;
  assert_int_equal(listen_node(&n, "127.0.0.1", p, (uint16_t)(p + 1), &l), 0);
  assert_int_equal(cn_node_port(n), p + 1);
  char where[256];
  listening_on((uint16_t)(p + 1), where, sizeof where);
  assert_string_equal(where, "127.0.0.1");
  assert_true(can_connect((uint16_t)(p + 1)));
  cn_node_free(n);

  /* Every port of the range taken: the start fails, naming the range, and nothing is left listening. */
  uint16_t p1 = (uint16_t)(p + 1);
  int taken2 = occupy(&p1);
  assert_true(taken2 >= 0);
  assert_int_equal(listen_node(&n, "127.0.0.1", p, (uint16_t)(p + 1), &l), CN_EEXIST);
  char want[96];
  snprintf(want, sizeof want, "every port of the range %u-%u is in use", (unsigned)p, (unsigned)p + 1);
  assert_non_null(strstr(l.text, want));
  cn_node_free(n);
  /* One port, taken: the same error, naming the port. */
  assert_int_equal(listen_node(&n, "127.0.0.1", p, 0, &l), CN_EEXIST);
  snprintf(want, sizeof want, "cannot listen on 127.0.0.1:%u", (unsigned)p);
  assert_non_null(strstr(l.text, want));
  cn_node_free(n);
  close(taken);
  close(taken2);

  /* A port of the range freed again is used: ranges are tried afresh at each start. */
  assert_int_equal(listen_node(&n, "127.0.0.1", p, (uint16_t)(p + 1), &l), 0);
  assert_int_equal(cn_node_port(n), p);
  cn_node_free(n);
}

static bool has_ipv6_loopback(void) {
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
  if (fd >= 0) close(fd);
  return ok;
}

static bool can_connect6(uint16_t port) {
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  if (fd >= 0) close(fd);
  return ok;
}

/* listen_addr as OTP's inet_dist_use_interface: the listening socket is on that address only. */
static void test_listen_addr(void **st) {
  (void)st;
  cn_node *n;
  loglines l;
  char where[256];
  /* The default: every IPv4 interface, as before. */
  assert_int_equal(listen_node(&n, NULL, 0, 0, &l), 0);
  listening_on(cn_node_port(n), where, sizeof where);
  assert_string_equal(where, "0.0.0.0");
  cn_node_free(n);

  assert_int_equal(listen_node(&n, "127.0.0.1", 0, 0, &l), 0);
  listening_on(cn_node_port(n), where, sizeof where);
  assert_string_equal(where, "127.0.0.1");
  assert_true(can_connect(cn_node_port(n)));
  cn_node_free(n);

  if (!has_ipv6_loopback()) {
    print_message("no IPv6 loopback on this host (ip -6 addr show lo): ::1 and :: not checked\n");
    skip();
  }
  assert_int_equal(listen_node(&n, "::1", 0, 0, &l), 0);
  uint16_t port = cn_node_port(n);
  listening_on(port, where, sizeof where);
  assert_string_equal(where, "::1");
  assert_true(can_connect6(port));
  assert_false(can_connect(port)); /* not on 127.0.0.1 */
  cn_node_free(n);

  /* "::": one dual-stack socket, reachable over IPv4 and IPv6. */
  assert_int_equal(listen_node(&n, "::", 0, 0, &l), 0);
  port = cn_node_port(n);
  listening_on(port, where, sizeof where);
  assert_string_equal(where, "::");
  assert_true(can_connect6(port));
  assert_true(can_connect(port));
  cn_node_free(n);
}

/* CN_INET6, as -proto_dist inet6_tcp: "::" by default (dual-stack, as OTP's inet6_tcp_dist), an IPv6 listen_addr
 * only; a family that does not exist is CN_EINVAL. */
static void test_listen_inet6(void **st) {
  (void)st;
  cn_node_opts o = {.name = "v6@::1", .cookie = "c", .family = CN_INET6, .listen_addr = "127.0.0.1"};
  cn_node *n;
  assert_int_equal(cn_node_new(&n, NULL, &o), CN_EINVAL);
  o.listen_addr = "0.0.0.0";
  assert_int_equal(cn_node_new(&n, NULL, &o), CN_EINVAL);
  o.listen_addr = NULL;
  o.family = (cn_family)2;
  assert_int_equal(cn_node_new(&n, NULL, &o), CN_EINVAL);
  if (!has_ipv6_loopback()) {
    print_message("no IPv6 loopback on this host (ip -6 addr show lo): inet6 listening not checked\n");
    skip();
  }
  loglines l;
  memset(&l, 0, sizeof l);
  o = (cn_node_opts){
      .name = "v6@::1", .cookie = "c", .family = CN_INET6, .no_epmd = true, .log = keep_log, .log_ctx = &l};
  assert_int_equal(cn_node_new(&n, NULL, &o), 0);
  static int started;
  assert_int_equal(cn_node_start(n, count_start, &started), 0);
  char where[256];
  listening_on(cn_node_port(n), where, sizeof where);
  assert_string_equal(where, "::");
  assert_true(can_connect6(cn_node_port(n)));
  cn_node_free(n);
  o.listen_addr = "::1";
  assert_int_equal(cn_node_new(&n, NULL, &o), 0);
  assert_int_equal(cn_node_start(n, count_start, &started), 0);
  listening_on(cn_node_port(n), where, sizeof where);
  assert_string_equal(where, "::1");
  cn_node_free(n);
}

/* cn_node_opts.otp_release: a set release is known at once (no peer is asked); 0 follows OTP 25 until a peer
 * tells; outside CN_OTP_RELEASE_MIN..MAX is CN_EINVAL. */
static void test_otp_release_opts(void **st) {
  (void)st;
  static const struct {
    int set, rc, follows;
    bool known;
  } c[] = {{0, 0, 25, false},         {25, 0, 25, true},           {27, 0, 27, true},
           {29, 0, 29, true},         {17, 0, 17, true},           {999, 0, 999, true},
           {16, CN_EINVAL, 0, false}, {1000, CN_EINVAL, 0, false}, {-27, CN_EINVAL, 0, false}};
  for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
    cn_node_opts o = {.name = "rel@127.0.0.1", .cookie = "c", .otp_release = c[i].set};
    cn_node *n = NULL;
    assert_int_equal(cn_node_new(&n, NULL, &o), c[i].rc);
    if (c[i].rc) {
      assert_null(n);
      continue;
    }
    assert_int_equal(cn_node_otp_release(n), c[i].follows);
    assert_int_equal(cn_node_otp_release_known(n), c[i].known);
    cn_node_free(n);
  }
}

/* A peer's answer to erlang:system_info(otp_release) is peer input: only "17".."999" as a proper charlist counts. */
static void test_otp_release_answers(void **st) {
  (void)st;
  cn_atoms *tab;
  assert_int_equal(cn_atoms_new(&tab, 0), 0);
  static const struct {
    const char *hex; /* term_to_binary of the answer */
    int want;
  } c[] = {
      {"836B00023237", 27},                                      /* "27" */
      {"836B00023239", 29},                                      /* "29" */
      {"836B00023235", 25},                                      /* "25" */
      {"836B0003393939", 999},                                   /* "999" */
      {"836B00023136", 0},                                       /* "16": below the range */
      {"836B000431303030", 0},                                   /* "1000" */
      {"836B00053030303237", 0},                                 /* five digits */
      {"836A", 0},                                               /* "" */
      {"836B00023241", 0},                                       /* "2A" */
      {"836B00022D37", 0},                                       /* "-7" */
      {"836B0003323730", 270},                                   /* [$2, $7 | "0"] is "270" */
      {"836C000000026132613764000161", 0},                       /* [$2, $7 | a]: improper */
      {"836C00000002620010003261376A", 0},                       /* [1048626, $7] */
      {"836C00000002620000013261376A", 0},                       /* [$2 + 256, $7] */
      {"836D000000023237", 0},                                   /* <<"27">>: a binary, not a string */
      {"8364000232", 0},                                         /* a truncated atom: never decoded */
      {"83680264000662616472706368026400044558495464000178", 0}, /* {badrpc, {'EXIT', x}} */
      {"836100", 0},                                             /* 0 */
      {"83611B", 0},                                             /* 27 as an integer */
  };
  for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
    size_t n = strlen(c[i].hex) / 2;
    uint8_t buf[64];
    for (size_t k = 0; k < n; k++) sscanf(c[i].hex + 2 * k, "%2hhx", &buf[k]);
    cn_term *t = NULL;
    if (cn_term_from_binary(tab, buf, n, NULL, &t)) {
      assert_int_equal(c[i].want, 0); /* what does not decode never reaches the parser */
      continue;
    }
    if (otp_parse_release(t) != c[i].want) fprintf(stderr, "answer %s\n", c[i].hex);
    assert_int_equal(otp_parse_release(t), c[i].want);
    cn_term_free(t);
  }
  assert_int_equal(otp_parse_release(NULL), 0);
  cn_atoms_free(tab);
}

/* A bad address or range is CN_EINVAL from cn_node_new; an address this host does not have fails the start
 * with CN_EIO and a log line, and the node can still be freed. */
static void test_listen_invalid(void **st) {
  (void)st;
  static const char *bad[] = {"localhost", "", "1.2.3", "256.0.0.1", "::g", "127.0.0.1:4369", "[::1]"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    cn_node_opts o = {.name = "bad@127.0.0.1", .cookie = "c", .listen_addr = bad[i]};
    cn_node *n = (cn_node *)&o;
    assert_int_equal(cn_node_new(&n, NULL, &o), CN_EINVAL);
    assert_null(n);
  }
  cn_node_opts o = {.name = "bad@127.0.0.1", .cookie = "c", .listen_port_max = 5000};
  cn_node *n;
  assert_int_equal(cn_node_new(&n, NULL, &o), CN_EINVAL); /* a range needs its first port */
  o.listen_port = 5001;
  assert_int_equal(cn_node_new(&n, NULL, &o), CN_EINVAL); /* max below min */
  o.listen_port = 5000;
  assert_int_equal(cn_node_new(&n, NULL, &o), 0);
  cn_node_free(n);

  /* 192.0.2.1 (TEST-NET-1) is on no interface of a test machine. */
  loglines l;
  assert_int_equal(listen_node(&n, "192.0.2.1", 0, 0, &l), CN_EIO);
  assert_non_null(strstr(l.text, "cannot listen on 192.0.2.1:0"));
  cn_node_free(n);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sigpipe),
      cmocka_unit_test(test_otp_release_opts),
      cmocka_unit_test(test_otp_release_answers),
      cmocka_unit_test(test_local_send_and_names),
      cmocka_unit_test(test_exit_signals),
      cmocka_unit_test(test_c_to_c),
      cmocka_unit_test(test_long_node_names),
      cmocka_unit_test(test_simultaneous_connect),
      cmocka_unit_test(test_signals_between_nodes),
      cmocka_unit_test(test_listen_port_range),
      cmocka_unit_test(test_listen_addr),
      cmocka_unit_test(test_listen_inet6),
      cmocka_unit_test(test_listen_invalid),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
