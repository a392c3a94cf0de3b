/* test_epmd_client.c: the libuv EPMD client (epmd/client.c) against a real OTP epmd this test starts on a free
 * loopback port, plus a scripted fake epmd for losses and timeouts. Every loop must close with no handles. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "epmd.h"
#include "testutil.h"

#define EPMD_BIN "/usr/bin/epmd"
#define LO "127.0.0.1"
#define TMO 3000

static pid_t epmd_pid = -1;
static uint16_t epmd_port;

/* A loopback listener that never accepts on its own: connects complete in the kernel backlog. */
static int listen_port(uint16_t *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (fd < 0) return -1;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 8) || getsockname(fd, (struct sockaddr *)&a, &al)) {
    close(fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

static void stop_epmd(void) {
  test_epmd_stop(epmd_pid);
  epmd_pid = -1;
}

static int start_epmd(void **state) {
  (void)state;
  epmd_pid = test_epmd_start(&epmd_port);
  return epmd_pid > 0 ? 0 : -1;
}

static int stop_epmd_group(void **state) {
  (void)state;
  stop_epmd();
  return 0;
}

/* Runs the loop until *flag is set, failing the test after 10 s (callbacks carry their own timeouts). */
static void run_until(uv_loop_t *loop, const int *flag) {
  uv_update_time(loop);
  uint64_t end = uv_now(loop) + 10000;
  while (!*flag) {
    uv_run(loop, UV_RUN_ONCE);
    uv_update_time(loop);
    assert_true(uv_now(loop) < end);
  }
}

/* Runs the loop to completion and checks that the client left nothing behind. */
static void finish_loop(uv_loop_t *loop) {
  assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(loop), 0);
}

static epmd_node_info node(const char *name, uint16_t port) {
  epmd_node_info i;
  memset(&i, 0, sizeof i);
  i.port = port;
  i.node_type = EPMD_NODE_NORMAL;
  i.highest = 6;
  i.lowest = 5;
  snprintf(i.name, sizeof i.name, "%s", name);
  return i;
}

/* ---- callback recorders ---- */

typedef struct {
  int calls;
  int status[4];
  uint32_t creation;
  int close_in_cb; /* call epmd_reg_close from inside a failure callback (must be a no-op) */
} reg_rec;

static void on_reg(epmd_reg *r, int status, uint32_t creation, void *ctx) {
  reg_rec *rr = ctx;
  if (rr->calls < 4) rr->status[rr->calls] = status;
  rr->calls++;
  if (status == 0) rr->creation = creation;
  if (status != 0 && rr->close_in_cb) epmd_reg_close(r);
}

typedef struct {
  int calls;
  int status;
  epmd_node_info info;
  epmd_req *self; /* cancelled from inside the callback (must be a no-op) */
} port_rec;

static void on_port(int status, const epmd_node_info *info, void *ctx) {
  port_rec *p = ctx;
  p->calls++;
  p->status = status;
  if (status == 0) {
    assert_non_null(info);
    p->info = *info;
  } else {
    assert_null(info);
  }
  if (p->self) epmd_req_cancel(p->self);
}

typedef struct {
  int calls;
  int status;
  uint32_t port;
  char text[4096];
} names_rec;

static void on_names(int status, uint32_t port, const char *text, size_t len, void *ctx) {
  names_rec *n = ctx;
  n->calls++;
  n->status = status;
  n->port = port;
  if (status == 0) {
    assert_non_null(text);
    assert_int_equal(text[len], 0);
    snprintf(n->text, sizeof n->text, "%.*s", (int)len, text);
  } else {
    assert_null(text);
  }
}

static port_rec lookup(uv_loop_t *loop, const char *host, uint16_t port, const char *name) {
  port_rec p;
  memset(&p, 0, sizeof p);
  assert_int_equal(epmd_port_please(loop, host, port, name, TMO, on_port, &p, NULL), 0);
  run_until(loop, &p.calls);
  return p;
}

/* ---- tests against the real epmd ---- */

static void test_register_lookup_names(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);

  epmd_node_info t1 = node("t1", 40001);
  reg_rec r1 = {0};
  epmd_reg *reg1 = NULL;
  assert_int_equal(epmd_register(&loop, LO, epmd_port, &t1, TMO, on_reg, &r1, &reg1), 0);
  assert_non_null(reg1);
  run_until(&loop, &r1.calls);
  assert_int_equal(r1.status[0], 0);
  assert_int_not_equal(r1.creation, 0);

  names_rec n;
  memset(&n, 0, sizeof n);
  assert_int_equal(epmd_names(&loop, LO, epmd_port, TMO, on_names, &n, NULL), 0);
  run_until(&loop, &n.calls);
  assert_int_equal(n.status, 0);
  assert_int_equal(n.port, epmd_port);
  assert_non_null(strstr(n.text, "name t1 at port 40001\n"));

  port_rec p = lookup(&loop, LO, epmd_port, "t1");
  assert_int_equal(p.status, 0);
  assert_int_equal(p.info.port, 40001);
  assert_int_equal(p.info.highest, 6);
  assert_int_equal(p.info.lowest, 5);
  assert_int_equal(p.info.node_type, EPMD_NODE_NORMAL);
  assert_int_equal(p.info.protocol, 0);
  assert_string_equal(p.info.name, "t1");

  /* A host name goes through uv_getaddrinfo; "localhost" may give ::1 first, where epmd does not listen. */
  p = lookup(&loop, "localhost", epmd_port, "t1");
  assert_int_equal(p.status, 0);
  assert_int_equal(p.info.port, 40001);

  p = lookup(&loop, LO, epmd_port, "nope");
  assert_int_equal(p.status, CN_ENOTFOUND);

  /* The same name twice: epmd refuses; the callback runs once and the handle is gone after it. */
  epmd_node_info t1b = node("t1", 40002);
  reg_rec r2 = {.close_in_cb = 1};
  assert_int_equal(epmd_register(&loop, LO, epmd_port, &t1b, TMO, on_reg, &r2, NULL), 0);
  run_until(&loop, &r2.calls);
  assert_int_equal(r2.status[0], CN_EEXIST);

  /* Unregister; epmd notices the closed socket on its own schedule, so poll briefly. */
  epmd_reg_close(reg1);
  for (int i = 0; i < 100; i++) {
    p = lookup(&loop, LO, epmd_port, "t1");
    if (p.status == CN_ENOTFOUND) break;
    sleep_ms(20);
  }
  assert_int_equal(p.status, CN_ENOTFOUND);

  reg_rec r3 = {0};
  epmd_reg *reg3 = NULL;
  assert_int_equal(epmd_register(&loop, LO, epmd_port, &t1, TMO, on_reg, &r3, &reg3), 0);
  run_until(&loop, &r3.calls);
  assert_int_equal(r3.status[0], 0);
  assert_int_not_equal(r3.creation, 0);
  assert_int_not_equal(r3.creation, r1.creation);
  epmd_reg_close(reg3);

  finish_loop(&loop);
  assert_int_equal(r1.calls, 1); /* no CN_ECLOSED after epmd_reg_close */
  assert_int_equal(r2.calls, 1);
  assert_int_equal(r3.calls, 1);
}

/* Closing a registration before epmd answered: the callback never runs, nothing leaks. */
static void test_reg_close_early(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  epmd_node_info t = node("early", 40003);
  reg_rec r = {0};
  epmd_reg *reg = NULL;
  assert_int_equal(epmd_register(&loop, LO, epmd_port, &t, TMO, on_reg, &r, &reg), 0);
  epmd_reg_close(reg);
  reg_rec r2 = {0};
  assert_int_equal(epmd_register(&loop, "localhost", epmd_port, &t, TMO, on_reg, &r2, &reg), 0);
  epmd_reg_close(reg); /* while resolving */
  finish_loop(&loop);
  assert_int_equal(r.calls, 0);
  assert_int_equal(r2.calls, 0);
}

static void test_cancel(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  port_rec a = {0}, b = {0};
  names_rec n;
  memset(&n, 0, sizeof n);
  epmd_req *ra = NULL, *rb = NULL, *rn = NULL;
  assert_int_equal(epmd_port_please(&loop, LO, epmd_port, "t1", TMO, on_port, &a, &ra), 0);
  assert_int_equal(epmd_port_please(&loop, "localhost", epmd_port, "t1", TMO, on_port, &b, &rb), 0);
  assert_int_equal(epmd_names(&loop, LO, epmd_port, TMO, on_names, &n, &rn), 0);
  epmd_req_cancel(ra);
  epmd_req_cancel(rb);
  epmd_req_cancel(rn);
  epmd_req_cancel(rn);                              /* twice: still one callback */
  assert_int_equal(a.calls + b.calls + n.calls, 0); /* callbacks never run from inside a call */
  finish_loop(&loop);
  assert_int_equal(a.calls, 1);
  assert_int_equal(a.status, CN_ECLOSED);
  assert_int_equal(b.calls, 1);
  assert_int_equal(b.status, CN_ECLOSED);
  assert_int_equal(n.calls, 1);
  assert_int_equal(n.status, CN_ECLOSED);

  /* Cancel from inside the callback is a no-op. */
  assert_int_equal(uv_loop_init(&loop), 0);
  port_rec c = {0};
  assert_int_equal(epmd_port_please(&loop, LO, epmd_port, "nope", TMO, on_port, &c, &c.self), 0);
  finish_loop(&loop);
  assert_int_equal(c.calls, 1);
  assert_int_equal(c.status, CN_ENOTFOUND);
}

/* ---- tests without epmd ---- */

static void test_nothing_listens(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  uint16_t port = free_port();
  assert_int_not_equal(port, 0);
  port_rec p = {0};
  names_rec n;
  memset(&n, 0, sizeof n);
  reg_rec r = {.close_in_cb = 1};
  epmd_node_info t = node("t1", 1);
  assert_int_equal(epmd_port_please(&loop, LO, port, "t1", TMO, on_port, &p, NULL), 0);
  assert_int_equal(epmd_names(&loop, "::1", port, TMO, on_names, &n, NULL), 0);
  assert_int_equal(epmd_register(&loop, "localhost", port, &t, TMO, on_reg, &r, NULL), 0);
  finish_loop(&loop);
  assert_int_equal(p.calls, 1);
  assert_int_equal(p.status, CN_EIO);
  assert_int_equal(n.calls, 1);
  assert_int_equal(n.status, CN_EIO);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status[0], CN_EIO);
}

static void test_bad_args(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  port_rec p = {0};
  epmd_node_info t = node("", 1);
  reg_rec r = {0};
  assert_int_equal(epmd_port_please(&loop, LO, 4369, "", TMO, on_port, &p, NULL), CN_EINVAL);
  assert_int_equal(epmd_port_please(&loop, LO, 4369, "x", TMO, NULL, &p, NULL), CN_EINVAL);
  assert_int_equal(epmd_port_please(&loop, LO, 0, "x", TMO, on_port, &p, NULL), CN_EINVAL);
  assert_int_equal(epmd_register(&loop, LO, 4369, &t, TMO, on_reg, &r, NULL), CN_EINVAL);
  assert_int_equal(epmd_names(&loop, LO, 4369, TMO, NULL, NULL, NULL), CN_EINVAL);
  finish_loop(&loop);
  assert_int_equal(p.calls + r.calls, 0);
}

/* A listener that accepts in the kernel but never answers: every kind times out, once. */
static void test_timeout(void **state) {
  (void)state;
  uint16_t port;
  int lfd = listen_port(&port);
  assert_true(lfd >= 0);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  port_rec p = {0};
  names_rec n;
  memset(&n, 0, sizeof n);
  reg_rec r = {0};
  epmd_node_info t = node("t1", 1);
  assert_int_equal(epmd_port_please(&loop, LO, port, "t1", 150, on_port, &p, NULL), 0);
  assert_int_equal(epmd_names(&loop, LO, port, 150, on_names, &n, NULL), 0);
  assert_int_equal(epmd_register(&loop, LO, port, &t, 150, on_reg, &r, NULL), 0);
  finish_loop(&loop);
  close(lfd);
  assert_int_equal(p.calls, 1);
  assert_int_equal(p.status, CN_ETIMEDOUT);
  assert_int_equal(n.calls, 1);
  assert_int_equal(n.status, CN_ETIMEDOUT);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status[0], CN_ETIMEDOUT);
}

/* Reads exactly n bytes from a non-blocking fd while the loop runs (the client writes from the loop). */
static void read_while_running(uv_loop_t *loop, int fd, uint8_t *buf, size_t n) {
  size_t got = 0;
  for (int i = 0; i < 1000 && got < n; i++) {
    uv_run(loop, UV_RUN_NOWAIT);
    ssize_t k = read(fd, buf + got, n - got);
    if (k > 0) got += (size_t)k;
    else sleep_ms(2);
  }
  assert_int_equal(got, n);
}

/* A scripted epmd: checks the request bytes, answers in two pieces, then drops the registration socket, which
 * the client reports once as CN_ECLOSED. */
static void test_registration_lost(void **state) {
  (void)state;
  uint16_t port;
  int lfd = listen_port(&port);
  assert_true(lfd >= 0);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  epmd_node_info t = node("lost", 40004);
  t.extra_len = 1;
  t.extra[0] = 'e';
  reg_rec r = {0};
  assert_int_equal(epmd_register(&loop, LO, port, &t, TMO, on_reg, &r, NULL), 0);
  int fd = accept(lfd, NULL, NULL); /* the loopback connect completed in the kernel already */
  assert_true(fd >= 0);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  static const uint8_t exp[] = {0, 18, 120, 0x9c, 0x44, 77, 0, 0, 6, 0, 5, 0, 4, 'l', 'o', 's', 't', 0, 1, 'e'};
  uint8_t got[sizeof exp];
  read_while_running(&loop, fd, got, sizeof got);
  assert_memory_equal(got, exp, sizeof exp);
  static const uint8_t resp[] = {118, 0, 0xde, 0xad, 0xbe, 0xef};
  assert_int_equal(write(fd, resp, 3), 3);
  for (int i = 0; i < 20; i++) uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(r.calls, 0);
  assert_int_equal(write(fd, resp + 3, 3), 3);
  run_until(&loop, &r.calls);
  assert_int_equal(r.status[0], 0);
  assert_int_equal(r.creation, 0xdeadbeef);
  close(fd);
  finish_loop(&loop);
  close(lfd);
  assert_int_equal(r.calls, 2);
  assert_int_equal(r.status[1], CN_ECLOSED);
}

/* A scripted peer that answers badly: a PORT_PLEASE2 answered with the wrong tag is CN_EPROTO; a NAMES reply
 * cut inside its 4-byte header is CN_EPROTO; a NAMES reply from a fake epmd is passed through verbatim. */
static void test_bad_peer(void **state) {
  (void)state;
  uint16_t port;
  int lfd = listen_port(&port);
  assert_true(lfd >= 0);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  uint8_t got[8];

  port_rec p = {0};
  assert_int_equal(epmd_port_please(&loop, LO, port, "ab", TMO, on_port, &p, NULL), 0);
  int fd = accept(lfd, NULL, NULL);
  assert_true(fd >= 0);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  read_while_running(&loop, fd, got, 5);
  assert_memory_equal(got,
                      "\x00\x03\x7a"
                      "ab",
                      5);
  assert_int_equal(write(fd, "\x76\x00", 2), 2);
  run_until(&loop, &p.calls);
  assert_int_equal(p.status, CN_EPROTO);
  close(fd);

  names_rec n;
  memset(&n, 0, sizeof n);
  assert_int_equal(epmd_names(&loop, LO, port, TMO, on_names, &n, NULL), 0);
  fd = accept(lfd, NULL, NULL);
  assert_true(fd >= 0);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  read_while_running(&loop, fd, got, 3);
  assert_memory_equal(got, "\x00\x01\x6e", 3);
  assert_int_equal(write(fd, "\x00\x00", 2), 2);
  close(fd);
  run_until(&loop, &n.calls);
  assert_int_equal(n.status, CN_EPROTO);

  memset(&n, 0, sizeof n);
  assert_int_equal(epmd_names(&loop, LO, port, TMO, on_names, &n, NULL), 0);
  fd = accept(lfd, NULL, NULL);
  assert_true(fd >= 0);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  read_while_running(&loop, fd, got, 3);
  static const char reply[] = "\x00\x00\x11\x11name a at port 1\nname b at port 2\n";
  assert_int_equal(write(fd, reply, sizeof reply - 1), (ssize_t)(sizeof reply - 1));
  close(fd);
  run_until(&loop, &n.calls);
  assert_int_equal(n.status, 0);
  assert_int_equal(n.port, 4369);
  assert_string_equal(n.text, "name a at port 1\nname b at port 2\n");

  finish_loop(&loop);
  close(lfd);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest with_epmd[] = {
      cmocka_unit_test(test_register_lookup_names),
      cmocka_unit_test(test_reg_close_early),
      cmocka_unit_test(test_cancel),
  };
  const struct CMUnitTest without[] = {
      cmocka_unit_test(test_nothing_listens),   cmocka_unit_test(test_bad_args), cmocka_unit_test(test_timeout),
      cmocka_unit_test(test_registration_lost), cmocka_unit_test(test_bad_peer),
  };
  int failed = cmocka_run_group_tests_name("epmd_client_real_epmd", with_epmd, start_epmd, stop_epmd_group);
  stop_epmd(); /* also when the group setup failed half-way */
  failed += cmocka_run_group_tests_name("epmd_client_fake_peer", without, NULL, NULL);
  return failed;
}
