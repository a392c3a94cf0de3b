/* test_cluster.c: a C-only cluster. cnode-epmd and three `cnode` programs run with PATH=/nonexistent (no
 * erl, no epmd reachable), find each other through cnode-epmd, and this test, itself a libcnode node, makes
 * them send to each other (cnode_ctl -> echo on another node), links to and monitors their processes, and
 * kills one to see 'EXIT'/'DOWN', nodedown, and its name leave cnode-epmd at once. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cnode.h"
#include "testutil.h"

#define COOKIE "cluster-cookie"

static char build_dir[1024];
static char tmp_home[256];

/* ---- child processes --------------------------------------------------------------------------------- */

static pid_t spawn(char *const argv[], const char *log) {
  pid_t parent = getpid();
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    char home[300];
    snprintf(home, sizeof home, "HOME=%s", tmp_home);
    /* No Erlang on the way: neither erl nor epmd can be found or started by anything in the cluster. */
    char *const envp[] = {"PATH=/nonexistent", home, "CNODE_DRAIN_DELAY=0", NULL}; /* SIGTERM stops at once */
    execve(argv[0], argv, envp);
    _exit(127);
  }
  return pid;
}

/* Signals a child and returns its exit status (-1 when it died of a signal): under ASan a leak or an error
 * at exit shows as a non-zero status. */
static int stop_child(pid_t pid, int sig) {
  if (pid <= 0) return 0;
  kill(pid, sig);
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void show_log(const char *file) {
  char path[400], line[512];
  snprintf(path, sizeof path, "%s/%s", tmp_home, file);
  FILE *f = fopen(path, "r");
  if (!f) return;
  print_message("---- %s\n", file);
  while (fgets(line, sizeof line, f)) print_message("%s", line);
  fclose(f);
}

/* NAMES from cnode-epmd on port, as text after the 4-byte header ("" when nothing answers). */
static void names(uint16_t port, char *out, size_t cap) {
  out[0] = 0;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd < 0) return;
  if (connect(fd, (struct sockaddr *)&a, sizeof a) || write(fd, "\0\1n", 3) != 3) {
    close(fd);
    return;
  }
  char buf[4096];
  size_t len = 0;
  ssize_t k;
  while (len < sizeof buf - 1 && (k = read(fd, buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)k;
  close(fd);
  buf[len] = 0;
  snprintf(out, cap, "%s", len > 4 ? buf + 4 : "");
}

static int names_has(uint16_t port, const char *alive) {
  char txt[4096], line[64];
  names(port, txt, sizeof txt);
  snprintf(line, sizeof line, "name %s at port", alive);
  return strstr(txt, line) != NULL;
}

/* ---- the test's own node ----------------------------------------------------------------------------- */

typedef struct drv {
  cn_node *n;
  cn_pid pid;
  char msgs[64][512];
  int nmsgs;
  char downs[16][128];
  int ndowns;
  int started;
  cn_pid last_pid; /* from the last {Ref, {ok, Pid}} reply */
} drv;

static drv D;

/* The driver process: {do_link, Pid}, {do_monitor, Target}, {do_exit, Dest, Reason} (a gen_server call of
 * {exit, Reason}, which makes cnode_kv stop with Reason) are commands; everything else is recorded. */
static void driver(cn_proc *self, const cn_term *msg, void *state) {
  drv *d = state;
  cn_node *n = cn_proc_node(self);
  const cn_term *tag = msg->type == CN_TUPLE && msg->v.tuple.arity ? &msg->v.tuple.e[0] : NULL;
  if (tag && cn_is_atom(tag, "do_link")) {
    assert_int_equal(cn_link(self, msg->v.tuple.e[1].v.pid), 0);
    return;
  }
  if (tag && cn_is_atom(tag, "do_monitor")) {
    cn_ref ref;
    assert_int_equal(cn_monitor(self, &msg->v.tuple.e[1], &ref), 0);
    return;
  }
  if (tag && cn_is_atom(tag, "do_exit")) {
    cn_term *call =
        cn_mk_tuple(3, cn_mk_atomc(n, "$gen_call"), cn_mk_tuple(2, cn_mk_pid(cn_self(self)), cn_mk_ref(cn_make_ref(n))),
                    cn_mk_tuple(2, cn_mk_atomc(n, "exit"), cn_term_copy(&msg->v.tuple.e[2])));
    assert_int_equal(cn_send_to(n, self, &msg->v.tuple.e[1], call), 0);
    cn_term_free(call);
    return;
  }
  const cn_term *ok = cn_tuple_elem(msg, 2, 1);
  if (ok && cn_tuple_elem(ok, 2, 0) && cn_is_atom(cn_tuple_elem(ok, 2, 0), "ok") &&
      cn_tuple_elem(ok, 2, 1)->type == CN_PID)
    d->last_pid = cn_tuple_elem(ok, 2, 1)->v.pid;
  char *txt = cn_term_to_string(msg);
  if (d->nmsgs < 64) snprintf(d->msgs[d->nmsgs++], sizeof d->msgs[0], "%s", txt ? txt : "?");
  cn_free(txt);
}

static void on_nodes(cn_node *n, const cn_atom *node, bool up, const char *reason, void *ctx) {
  (void)n;
  (void)reason;
  drv *d = ctx;
  if (!up && d->ndowns < 16) snprintf(d->downs[d->ndowns++], sizeof d->downs[0], "%s", node->name);
}

static void on_started(cn_node *n, int status, void *ctx) {
  (void)n;
  drv *d = ctx;
  d->started = status ? -1 : 1;
}

static void spin_ms(long ms) {
  for (long i = 0; i < ms / 5; i++) {
    uv_run(cn_node_loop(D.n), UV_RUN_NOWAIT);
    sleep_ms(5);
  }
}

/* Runs the loop until a recorded message contains needle (10 s); returns its index or -1. */
static int wait_msg(const char *needle) {
  for (int i = 0; i < 2000; i++) {
    for (int k = 0; k < D.nmsgs; k++)
      if (strstr(D.msgs[k], needle)) return k;
    uv_run(cn_node_loop(D.n), UV_RUN_NOWAIT);
    sleep_ms(5);
  }
  for (int k = 0; k < D.nmsgs; k++) print_message("  got: %s\n", D.msgs[k]);
  return -1;
}

static cn_term *atom(const char *a) { return cn_mk_atomc(D.n, a); }

/* {cnode_ctl, Node} ! {Driver, Ref, Cmd}; takes cmd. */
static void ctl(const char *node, int ref, cn_term *cmd) {
  cn_term *msg = cn_mk_tuple(3, cn_mk_pid(D.pid), cn_mk_int(ref), cmd);
  assert_int_equal(cn_send_name(D.n, NULL, "cnode_ctl", cn_intern(D.n, node), msg), 0);
  cn_term_free(msg);
}

static void to_driver(cn_term *msg) {
  assert_int_equal(cn_send(D.n, NULL, D.pid, msg), 0);
  cn_term_free(msg);
}

static void test_c_only_cluster(void **st) {
  (void)st;
  /* Nothing Erlang is reachable from the children: their PATH is /nonexistent. */
  char epmd_bin[1100], cnode_bin[1100];
  snprintf(epmd_bin, sizeof epmd_bin, "%s/cnode-epmd", build_dir);
  snprintf(cnode_bin, sizeof cnode_bin, "%s/cnode", build_dir);
  assert_int_equal(access(epmd_bin, X_OK), 0);
  assert_int_equal(access(cnode_bin, X_OK), 0);
  snprintf(tmp_home, sizeof tmp_home, "/tmp/cnode-cluster-XXXXXX");
  assert_non_null(mkdtemp(tmp_home));

  uint16_t port = free_port();
  char ps[8], log[400];
  snprintf(ps, sizeof ps, "%u", port);
  snprintf(log, sizeof log, "%s/epmd.log", tmp_home);
  char *const eargv[] = {epmd_bin, "-port", ps, "-address", "127.0.0.1", NULL};
  pid_t epmd = spawn(eargv, log);
  for (int i = 0; i < 200 && !can_connect(port); i++) sleep_ms(10);
  assert_true(can_connect(port));

  static const char *const nodes[3] = {"a@127.0.0.1", "b@127.0.0.1", "c@127.0.0.1"};
  pid_t kids[3];
  for (int i = 0; i < 3; i++) {
    snprintf(log, sizeof log, "%s/%c.log", tmp_home, 'a' + i);
    char *const argv[] = {cnode_bin,     "--name", (char *)nodes[i], "--cookie", COOKIE,
                          "--epmd-port", ps,       "--listen",       "0",        NULL};
    kids[i] = spawn(argv, log);
  }
  for (int i = 0; i < 500 && !(names_has(port, "a") && names_has(port, "b") && names_has(port, "c")); i++) sleep_ms(10);
  char txt[4096];
  names(port, txt, sizeof txt);
  print_message("cnode-epmd knows:\n%s", txt);
  assert_true(names_has(port, "a") && names_has(port, "b") && names_has(port, "c"));

  /* The fourth node: this test. */
  memset(&D, 0, sizeof D);
  cn_node_opts o = {.name = "t@127.0.0.1",
                    .cookie = COOKIE,
                    .epmd_port = port,
                    .listen_addr = "127.0.0.1",
                    .log_level = CN_LOG_ERROR};
  assert_int_equal(cn_node_new(&D.n, NULL, &o), 0);
  cn_proc_opts po = {.trap_exit = true};
  assert_int_equal(cn_spawn(D.n, driver, &D, &po, &D.pid), 0);
  assert_int_equal(cn_node_monitor_nodes(D.n, on_nodes, &D), 0);
  assert_int_equal(cn_node_start(D.n, on_started, &D), 0);
  for (int i = 0; i < 1000 && !D.started; i++) spin_ms(5);
  assert_int_equal(D.started, 1);

  /* Every ordered pair: X's cnode_ctl sends to echo on Y, whose echo answers this node's driver. */
  int ref = 1;
  for (int x = 0; x < 3; x++)
    for (int y = 0; y < 3; y++) {
      if (x == y) continue;
      cn_term *dest = cn_mk_tuple(2, atom("echo"), atom(nodes[y]));
      cn_term *payload = cn_mk_tuple(3, atom("hop"), atom(nodes[x]), atom(nodes[y]));
      cn_term *m = cn_mk_tuple(2, cn_mk_pid(D.pid), payload);
      ctl(nodes[x], ref, cn_mk_tuple(3, atom("send"), dest, m));
      char want[128];
      snprintf(want, sizeof want, "{%d,ok}", ref);
      assert_true(wait_msg(want) >= 0);
      snprintf(want, sizeof want, "{hop,'%s','%s'}", nodes[x], nodes[y]);
      assert_true(wait_msg(want) >= 0);
      ref++;
    }
  /* a is connected to b and c (and to this node). */
  ctl(nodes[0], 100, atom("nodes"));
  int k = wait_msg("{100,[");
  assert_true(k >= 0);
  assert_non_null(strstr(D.msgs[k], "'b@127.0.0.1'"));
  assert_non_null(strstr(D.msgs[k], "'c@127.0.0.1'"));

  /* Link across nodes: a gen_server on a, linked from here, stops with boom: 'EXIT' arrives. */
  ctl(nodes[0], 200, cn_mk_tuple(2, atom("start_kv"), atom("k1")));
  assert_true(wait_msg("{200,{ok,") >= 0);
  cn_pid k1 = D.last_pid;
  assert_true(k1.id != 0 || k1.serial != 0);
  to_driver(cn_mk_tuple(2, atom("do_link"), cn_mk_pid(k1)));
  spin_ms(100);
  to_driver(cn_mk_tuple(3, atom("do_exit"), cn_mk_pid(k1), atom("boom")));
  assert_true(wait_msg("{'EXIT',#Pid<'a@127.0.0.1'") >= 0);
  assert_true(wait_msg(",boom}") >= 0);

  /* Monitor by name across nodes: {k2, b} stops with bang -> DOWN with bang. */
  ctl(nodes[1], 201, cn_mk_tuple(2, atom("start_kv"), atom("k2")));
  assert_true(wait_msg("{201,{ok,") >= 0);
  to_driver(cn_mk_tuple(2, atom("do_monitor"), cn_mk_tuple(2, atom("k2"), atom(nodes[1]))));
  spin_ms(100);
  to_driver(cn_mk_tuple(3, atom("do_exit"), cn_mk_tuple(2, atom("k2"), atom(nodes[1])), atom("bang")));
  assert_true(wait_msg("'DOWN'") >= 0);
  assert_true(wait_msg("bang}") >= 0);

  /* Monitor by name on c, then kill c: DOWN noconnection, nodedown, and its name leaves cnode-epmd at once. */
  to_driver(cn_mk_tuple(2, atom("do_monitor"), cn_mk_tuple(2, atom("cnode_kv"), atom(nodes[2]))));
  spin_ms(100);
  stop_child(kids[2], SIGKILL);
  kids[2] = -1;
  assert_false(names_has(port, "c") && (sleep_ms(50), names_has(port, "c")));
  assert_true(wait_msg("noconnection") >= 0);
  for (int i = 0; i < 400 && D.ndowns == 0; i++) spin_ms(5);
  assert_true(D.ndowns >= 1);
  assert_string_equal(D.downs[0], "c@127.0.0.1");
  assert_true(names_has(port, "a") && names_has(port, "b"));

  cn_node_stop(D.n);
  cn_node_run(D.n);
  cn_node_free(D.n);
  /* The survivors and cnode-epmd stop cleanly on SIGTERM (status 0: under ASan, no leak and no error). */
  for (int i = 0; i < 2; i++) {
    int st = stop_child(kids[i], SIGTERM);
    if (st) show_log(i ? "b.log" : "a.log");
    assert_int_equal(st, 0);
  }
  int est = stop_child(epmd, SIGTERM);
  if (est) show_log("epmd.log");
  assert_int_equal(est, 0);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_home);
  if (system(cmd)) print_message("could not remove %s\n", tmp_home);
}

int main(int argc, char **argv) {
  (void)argc;
  signal(SIGPIPE, SIG_IGN);
  /* BUILD/test/test_cluster -> BUILD */
  char self[1024];
  snprintf(self, sizeof self, "%s", argv[0]);
  snprintf(build_dir, sizeof build_dir, "%s", dirname(dirname(self)));
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_c_only_cluster)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
