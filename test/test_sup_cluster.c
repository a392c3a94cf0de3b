/* test_sup_cluster.c: the C-only acceptance for Horde.DynamicSupervisor with the real programs. cnode-epmd
 * and three `cnode --horde-supervisor MyApp.Sup` processes (PATH=/nonexistent: no Erlang anywhere) share the
 * supervisor; this test's own node (hidden, not a member) starts 50 CNode.Demo.Counter children through cnode1,
 * checks the ring's placement on every member, kills cnode3 with SIGKILL (its children move, once each), stops
 * cnode2 with SIGTERM (its children are relinquished and restart on cnode1), and tries the restart types. cnode2
 * also serves HTTP: /readyz says 200 once its member has synced, 503 within 100 ms of SIGTERM, and it exits 0 after
 * its 1 s drain (the others drain 0 s, from CNODE_DRAIN_DELAY=0, which cnode2's flag overrides). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <libgen.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cnode.h"
#include "horde.h"
#include "testutil.h"
#include "tnode.h"
#include "tsup.h"

#define COOKIE "sup-cluster-cookie"
#define SUP TSUP_NAME
#define CTR "Elixir.CNode.Demo.Counter"

static char build_dir[1024], tmp_home[256];
static const char *const NODES[3] = {"cnode1@127.0.0.1", "cnode2@127.0.0.1", "cnode3@127.0.0.1"};
static pid_t kids[4];  /* cnode-epmd, cnode1..3: only these are ever signalled */
static uint16_t http2; /* cnode2's HTTP port */
static tnode D;        /* the driver */

/* ---- The programs --------------------------------------------------------------------------------------------- */

/* Runs a program of the build with its output in tmp_home/log, PATH=/nonexistent and HOME=tmp_home. */
static pid_t run(const char *prog, char *const args[], const char *log) {
  char path[1100], out[400], home[300];
  snprintf(path, sizeof path, "%s/%s", build_dir, prog);
  snprintf(out, sizeof out, "%s/%s", tmp_home, log);
  snprintf(home, sizeof home, "HOME=%s", tmp_home);
  char *argv[24] = {path};
  for (int i = 0; args[i] && i < 22; i++) argv[i + 1] = args[i];
  char *envp[] = {"PATH=/nonexistent", home, "CNODE_DRAIN_DELAY=0", NULL};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, path, &fa, NULL, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  assert_int_equal(rc, 0);
  return pid;
}

/* Signals one of our children and reaps it: its exit status, -1 when a signal ended it. */
static int end_kid(int k, int sig) {
  if (kids[k] <= 0) return 0;
  kill(kids[k], sig);
  int st = 0;
  waitpid(kids[k], &st, 0);
  kids[k] = 0;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* GET path on 127.0.0.1:port: the status code, or -1 when nothing answers. */
static int http_status(uint16_t port, const char *path, char *body, size_t cap) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  int s = socket(AF_INET, SOCK_STREAM, 0), status = -1;
  char req[200], buf[65536];
  int k = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
  size_t got = 0;
  if (s >= 0 && !connect(s, (struct sockaddr *)&a, sizeof a) && write(s, req, (size_t)k) == k) {
    ssize_t r;
    while (got < sizeof buf - 1 && (r = read(s, buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)r;
    buf[got] = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) status = -1;
  }
  if (s >= 0) close(s);
  const char *b = got ? strstr(buf, "\r\n\r\n") : NULL;
  if (body && cap) snprintf(body, cap, "%s", b ? b + 4 : "");
  return status;
}

static bool log_has(const char *log, const char *text) {
  char path[400], line[1024];
  snprintf(path, sizeof path, "%s/%s", tmp_home, log);
  FILE *f = fopen(path, "r");
  bool found = false;
  while (f && !found && fgets(line, sizeof line, f)) found = strstr(line, text) != NULL;
  if (f) fclose(f);
  return found;
}

static void show_log(const char *log) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "tail -n 30 '%s/%s'", tmp_home, log);
  print_message("---- %s\n", log);
  if (system(cmd)) print_message("(no log)\n");
}

/* ---- The driver node -------------------------------------------------------------------------------------------- */

static cn_term *A(const char *a) { return cn_mk_atomc(D.n, a); }

/* A call that may fail while a node comes up: 0 and *reply, or the status. */
static int try_call(const char *name, const char *node, cn_term *req, cn_term **reply) {
  cn_term *srv = cn_mk_tuple(2, A(name), A(node));
  int rc = cn_call_sync(D.n, srv, req, 1000, reply);
  cn_term_free(srv);
  cn_term_free(req);
  return rc;
}

static void wait_up(const char *node) {
  long t0 = now_ms();
  cn_term *r = NULL;
  while (try_call(SUP, node, A("members"), &r)) {
    cn_term_free(r); /* the exit reason */
    r = NULL;
    if (now_ms() - t0 > 10000) {
      show_log("cnode1.log");
      fail();
    }
    sleep_ms(50);
  }
  cn_term_free(r);
}

/* cnode_ctl on `from` sends {hello} to echo on `to`: the two connect (and global meshes the rest). */
static void connect_pair(const char *from, const char *to) {
  cn_term *msg = cn_mk_tuple(2, cn_mk_pid(D.collector), A("hello"));
  cn_term *cmd = cn_mk_tuple(3, A("send"), cn_mk_tuple(2, A("echo"), A(to)), msg);
  tnode_send_via(&D, "cnode_ctl", from, cn_mk_tuple(3, cn_mk_pid(D.collector), cn_mk_int(1), cmd));
}

static tsup_at at(int k) { return (tsup_at){D.n, NODES[k]}; }
static void ats(const int *ks, int k, tsup_at *out) {
  for (int i = 0; i < k; i++) out[i] = at(ks[i]);
}

static long wait_agree(const int *ks, int k, int want, long limit) {
  tsup_at a[3];
  ats(ks, k, a);
  return tsup_wait_agree(a, k, want, CTR, "permanent", limit);
}

/* Every child of the view answers get with its start argument. */
static void all_answer(int k, int want) {
  tsup_view v;
  tsup_view_of(at(k), &v);
  assert_int_equal(v.n, want);
  for (int e = 0; e < v.n; e++) assert_int_equal(tsup_get(D.n, v.p[e].pid), v.p[e].i);
  tsup_view_free(&v);
}

static cn_term *start_child(const char *node, cn_term *spec) {
  return tsup_call(D.n, SUP, node, cn_mk_tuple(2, A("start_child"), spec));
}

/* ---- The scenario
 * ---------------------------------------------------------------------------------------------------- */

static void start_cluster(void) {
  uint16_t port = free_port();
  char ps[8];
  snprintf(ps, sizeof ps, "%u", port);
  char *eargs[] = {"-port", ps, "-address", "127.0.0.1", NULL};
  kids[0] = run("cnode-epmd", eargs, "epmd.log");
  for (int i = 0; i < 200 && !can_connect(port); i++) sleep_ms(10);
  assert_true(can_connect(port));
  for (int i = 0; i < 3; i++) {
    char log[32];
    snprintf(log, sizeof log, "cnode%d.log", i + 1);
    char hp[8];
    if (i == 1) http2 = free_port();
    snprintf(hp, sizeof hp, "%u", http2);
    char *args[] = {"--name",
                    (char *)NODES[i],
                    "--cookie",
                    COOKIE,
                    "--epmd-port",
                    ps,
                    "--listen",
                    "0",
                    "--horde-supervisor",
                    "MyApp.Sup",
                    "--http-port",
                    hp,
                    "--http-addr",
                    "127.0.0.1",
                    "--drain-delay",
                    "1",
                    NULL};
    if (i != 1) args[10] = NULL; /* cnode2 alone serves HTTP and drains */
    kids[i + 1] = run("cnode", args, log);
  }
  /* the driver: hidden and not named cnode*, so it is never a member */
  cn_node_opts o = {.name = "supdrv@127.0.0.1",
                    .cookie = COOKIE,
                    .epmd_port = port,
                    .listen_addr = "127.0.0.1",
                    .hidden = true,
                    .log_level = CN_LOG_WARN};
  tnode_start(&D, &o);
  assert_true(tnode_wait(&D, tnode_is_ready, NULL) && D.ready == 1);
  for (int i = 0; i < 3; i++) wait_up(NODES[i]);
  connect_pair(NODES[0], NODES[1]);
  connect_pair(NODES[0], NODES[2]);
  connect_pair(NODES[1], NODES[2]);
  tsup_at a[3] = {at(0), at(1), at(2)};
  tsup_wait_alive(a, 3, 3, 10000);
  long t0 = now_ms();
  while (http_status(http2, "/readyz", NULL, 0) != 200 && now_ms() - t0 < 10000) sleep_ms(20);
  print_message("  cnode2's /readyz: 200 %ld ms after its member was alive\n", now_ms() - t0);
  assert_int_equal(http_status(http2, "/readyz", NULL, 0), 200);
}

/* 50 children through cnode1, each on the member the ring gives it. */
static void place_50(void) {
  tsup_view v0;
  tsup_view_of(at(0), &v0);
  long t0 = now_ms();
  for (int i = 1; i <= 50; i++) {
    cn_pid p = tsup_started(start_child(NODES[0], tsup_spec(D.n, CTR, i, "permanent", true)));
    assert_string_equal(p.node->name, tsup_owner(D.n, &v0, CTR, i, "permanent"));
  }
  long dt = now_ms() - t0;
  tsup_view_free(&v0);
  const int ks[] = {0, 1, 2};
  long settle = wait_agree(ks, 3, 50, 10000);
  print_message("  50 start_child calls to cnode1 in %ld ms; all three CRDTs agree %ld ms later\n", dt, settle);
  assert_int_equal(tsup_which(D.n, NODES, 3, CTR), 50);
  all_answer(0, 50);
}

/* cnode_ctl's horde_sup_* commands on cnode2: start_child answered there or, for a child owned elsewhere, by the
 * owner ({Ref, Reply} either way); which_children and count; then the two children are terminated again. */
static void ctl_commands(void) {
  tsup_view v;
  tsup_view_of(at(1), &v);
  int64_t is[2] = {51, 51};
  while (strcmp(tsup_owner(D.n, &v, CTR, is[0], "permanent"), NODES[1])) is[0]++;
  while (!strcmp(tsup_owner(D.n, &v, CTR, is[1], "permanent"), NODES[1])) is[1]++;
  for (int k = 0; k < 2; k++) {
    cn_term *cmd =
        cn_mk_tuple(3, A("horde_sup_start_child"), A("MyApp.Sup"), tsup_spec(D.n, CTR, is[k], "permanent", true));
    tnode_send_via(&D, "cnode_ctl", NODES[1], cn_mk_tuple(3, cn_mk_pid(D.collector), cn_mk_int(700 + k), cmd));
    char want[96];
    snprintf(want, sizeof want, "{%d,{ok,#Pid<'%s'", 700 + k, tsup_owner(D.n, &v, CTR, is[k], "permanent"));
    if (!tnode_wait(&D, tnode_last_has, want)) print_message("  want %s, last %s\n", want, D.last);
    assert_true(tnode_wait(&D, tnode_last_has, want));
  }
  tsup_view_free(&v);
  tnode_send_via(
      &D, "cnode_ctl", NODES[1],
      cn_mk_tuple(3, cn_mk_pid(D.collector), cn_mk_int(702), cn_mk_tuple(2, A("horde_sup_count"), A("MyApp.Sup"))));
  assert_true(tnode_wait(&D, tnode_last_has, "{702,[{specs,"));
  tnode_send_via(
      &D, "cnode_ctl", NODES[1],
      cn_mk_tuple(3, cn_mk_pid(D.collector), cn_mk_int(703), cn_mk_tuple(2, A("horde_sup_which_children"), A("nope"))));
  assert_true(tnode_wait(&D, tnode_last_has, "{703,{error,no_such_supervisor}}"));
  const int ks[] = {0, 1, 2};
  wait_agree(ks, 3, 52, 10000);
  tsup_view_of(at(0), &v);
  for (int k = 0; k < 2; k++) {
    cn_term *r =
        tsup_call(D.n, SUP, NODES[2], cn_mk_tuple(2, A("terminate_child"), cn_mk_pid(tsup_find(&v, is[k])->pid)));
    tsup_expect_atom(r, "ok");
    cn_term_free(r);
  }
  tsup_view_free(&v);
  wait_agree(ks, 3, 50, 10000);
}

static int owned_by(int k, const char *node) {
  tsup_view v;
  tsup_view_of(at(k), &v);
  int c = 0;
  for (int e = 0; e < v.n; e++) c += !strcmp(v.p[e].owner, node);
  tsup_view_free(&v);
  return c;
}

/* kill -9 cnode3: its children move to cnode1/cnode2, once each. */
static void kill_cnode3(void) {
  int moved = owned_by(0, NODES[2]);
  long t0 = now_ms();
  end_kid(3, SIGKILL);
  const int ks[] = {0, 1};
  tsup_at a[2] = {at(0), at(1)};
  tsup_wait_alive(a, 2, 2, 10000); /* both see cnode3 gone, then: */
  wait_agree(ks, 2, 50, 10000);
  long took = now_ms() - t0;
  print_message("  kill -9 cnode3: its %d children run on cnode1/cnode2 %ld ms later\n", moved, took);
  sleep_ms(2000); /* past the orphan rule's hold: still once each */
  assert_true(tsup_agree(a, 2, 50, CTR, "permanent", true));
  assert_int_equal(tsup_which(D.n, NODES, 2, CTR), 50);
  all_answer(1, 50);
}

/* SIGTERM cnode2: it relinquishes its children and cnode1 restarts them. */
static void term_cnode2(void) {
  int moved = owned_by(0, NODES[1]);
  static char metrics[65536];
  assert_int_equal(http_status(http2, "/metrics", metrics, sizeof metrics), 200);
  char want[120];
  snprintf(want, sizeof want, "cnode_horde_supervisor_children{supervisor=\"%s\"} %d\n", SUP, moved);
  if (!strstr(metrics, want)) print_message("  want %s in:\n%s\n", want, metrics);
  assert_non_null(strstr(metrics, want));
  long t0 = now_ms();
  kill(kids[2], SIGTERM);
  int ready = 200;
  while ((ready = http_status(http2, "/readyz", NULL, 0)) == 200 && now_ms() - t0 < 1000) sleep_ms(2);
  long not_ready = now_ms() - t0;
  print_message("  SIGTERM cnode2: /readyz %d after %ld ms\n", ready, not_ready);
  assert_int_equal(ready, 503);
  assert_true(not_ready <= 100);
  int st = end_kid(2, 0);
  long stopped = now_ms() - t0;
  assert_true(stopped >= 1000); /* the drain delay came first */
  assert_true(log_has("cnode2.log", "shutdown +1.0"));
  if (st || !log_has("cnode2.log", "relinquished child")) show_log("cnode2.log");
  assert_int_equal(st, 0);
  assert_true(log_has("cnode2.log", "relinquished child"));
  assert_true(log_has("cnode2.log", "seen by every peer"));
  const int ks[] = {0};
  tsup_at a[1] = {at(0)};
  tsup_wait_alive(a, 1, 1, 10000);
  long took = wait_agree(ks, 1, 50, 10000);
  print_message("  SIGTERM cnode2: exited after %ld ms, its %d children relinquished and all 50 on cnode1 %ld ms "
                "after the signal\n",
                stopped, moved, took + stopped);
  assert_int_equal(tsup_which(D.n, NODES, 1, CTR), 50);
  all_answer(0, 50);
}

/* The pid of start argument i on cnode1, once it differs from old (or {0} when the entry is gone). */
static cn_pid next_pid(int64_t i, cn_pid old) {
  long t0 = now_ms();
  for (;;) {
    tsup_view v;
    tsup_view_of(at(0), &v);
    const tsup_ent *e = tsup_find(&v, i);
    cn_pid p = e ? e->pid : (cn_pid){0};
    tsup_view_free(&v);
    if (!e || !tsup_pid_eq(p, old)) return p;
    assert_true(now_ms() - t0 < 5000);
    sleep_ms(20);
  }
}

/* The child exits with reason (its demo call {stop, Reason}). */
static void child_exits(cn_pid p, const char *reason) {
  cn_term *srv = tsup_pid(D.n, p), *req = cn_mk_tuple(2, A("stop"), A(reason)), *r = NULL;
  assert_int_equal(cn_call_sync(D.n, srv, req, 2000, &r), 0);
  tsup_expect_atom(r, "ok");
  cn_term_free(r);
  cn_term_free(srv);
  cn_term_free(req);
}

static void restart_types(void) {
  cn_pid perm = tsup_started(start_child(NODES[0], tsup_spec(D.n, CTR, 101, "permanent", true)));
  cn_pid trans = tsup_started(start_child(NODES[0], tsup_spec(D.n, CTR, 102, "transient", true)));
  cn_pid temp = tsup_started(start_child(NODES[0], tsup_spec(D.n, CTR, 103, "temporary", true)));
  child_exits(perm, "boom"); /* permanent: back under the same entry */
  cn_pid p2 = next_pid(101, perm);
  assert_non_null(p2.node);
  assert_int_equal(tsup_get(D.n, p2), 101);
  child_exits(trans, "normal"); /* transient, normal exit: removed */
  assert_null(next_pid(102, trans).node);
  child_exits(temp, "boom"); /* temporary: never restarted */
  assert_null(next_pid(103, temp).node);
  assert_int_equal(tsup_count(at(0)), 51);
  print_message("  restart types: permanent restarted, transient (normal exit) and temporary removed\n");
}

static void test_sup_cluster(void **st) {
  (void)st;
  snprintf(tmp_home, sizeof tmp_home, "/tmp/cnode-supcluster-XXXXXX");
  assert_non_null(mkdtemp(tmp_home));
  start_cluster();
  place_50();
  ctl_commands();
  kill_cnode3();
  term_cnode2();
  restart_types();
  tnode_stop(&D);
  int s1 = end_kid(1, SIGTERM);
  if (s1) show_log("cnode1.log");
  assert_int_equal(s1, 0);
  assert_int_equal(end_kid(0, SIGTERM), 0);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_home);
  if (system(cmd)) print_message("could not remove %s\n", tmp_home);
}

/* Whatever happens, the programs this test started end with it. */
static int teardown(void **st) {
  (void)st;
  for (int k = 3; k >= 0; k--) end_kid(k, SIGKILL);
  return 0;
}

int main(int argc, char **argv) {
  (void)argc;
  signal(SIGPIPE, SIG_IGN);
  char self[1024];
  snprintf(self, sizeof self, "%s", argv[0]);
  snprintf(build_dir, sizeof build_dir, "%s", dirname(dirname(self))); /* BUILD/test/test_sup_cluster -> BUILD */
  const struct CMUnitTest tests[] = {cmocka_unit_test_teardown(test_sup_cluster, teardown)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
