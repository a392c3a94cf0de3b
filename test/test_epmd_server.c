/* test_epmd_server.c: epmd/server.c on a loop in its own thread, driven through raw loopback sockets. The
 * same byte sequences go to OTP's epmd (started by the test) and to the server, and the answers must match;
 * a few of OTP's answers are also kept here as literal vectors. Then garbage, timeouts, 10,000
 * register/unregister cycles and 1,000 concurrent clients, with the counting allocator showing no leak. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "epmd.h"
#include "testutil.h"

/* ---- the server in a thread ------------------------------------------------------------------------- */

typedef struct srv_thread {
  uv_loop_t loop;
  uv_async_t async;
  pthread_t th;
  epmd_srv *srv;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int want_stats, want_close, stats_ready, killed, closed;
  epmd_srv_stats st;
  uint16_t port;
} srv_thread;

static void on_srv_closed(void *ctx) {
  srv_thread *t = ctx;
  t->closed = 1;
}

static void on_async(uv_async_t *a) {
  srv_thread *t = a->data;
  pthread_mutex_lock(&t->mu);
  if (t->want_stats) {
    epmd_srv_get_stats(t->srv, &t->st);
    t->want_stats = 0;
    t->stats_ready = 1;
    pthread_cond_broadcast(&t->cv);
  }
  int close_now = t->want_close;
  pthread_mutex_unlock(&t->mu);
  if (close_now) {
    epmd_srv_close(t->srv, on_srv_closed, t);
    uv_close((uv_handle_t *)&t->async, NULL);
  }
}

static void on_kill(epmd_srv *s, void *ctx) {
  (void)s;
  srv_thread *t = ctx;
  pthread_mutex_lock(&t->mu);
  t->killed++;
  pthread_mutex_unlock(&t->mu);
}

static void *srv_main(void *arg) {
  srv_thread *t = arg;
  uv_run(&t->loop, UV_RUN_DEFAULT);
  return NULL;
}

/* Starts the server (opts may be NULL) on 127.0.0.1 (+ ::1) on a port the OS picks. */
static srv_thread *srv_up(const epmd_srv_opts *opts) {
  srv_thread *t = calloc(1, sizeof *t);
  assert_non_null(t);
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  assert_int_equal(uv_loop_init(&t->loop), 0);
  epmd_srv_opts o;
  memset(&o, 0, sizeof o);
  if (opts) o = *opts;
  if (!o.addresses) o.addresses = "127.0.0.1";
  o.on_kill = on_kill;
  o.ctx = t;
  assert_int_equal(epmd_srv_start(&t->loop, &o, &t->srv), 0);
  t->port = epmd_srv_port(t->srv);
  assert_true(t->port > 0);
  uv_async_init(&t->loop, &t->async, on_async);
  t->async.data = t;
  assert_int_equal(pthread_create(&t->th, NULL, srv_main, t), 0);
  return t;
}

static epmd_srv_stats srv_stats(srv_thread *t) {
  pthread_mutex_lock(&t->mu);
  t->want_stats = 1;
  t->stats_ready = 0;
  uv_async_send(&t->async);
  while (!t->stats_ready) pthread_cond_wait(&t->cv, &t->mu);
  epmd_srv_stats st = t->st;
  pthread_mutex_unlock(&t->mu);
  return st;
}

/* Closes the server, joins its thread and checks that the loop has no handle left. */
static void srv_down(srv_thread *t) {
  pthread_mutex_lock(&t->mu);
  t->want_close = 1;
  pthread_mutex_unlock(&t->mu);
  uv_async_send(&t->async);
  pthread_join(t->th, NULL);
  assert_int_equal(t->closed, 1);
  assert_int_equal(uv_loop_close(&t->loop), 0);
  pthread_mutex_destroy(&t->mu);
  pthread_cond_destroy(&t->cv);
  free(t);
}

/* ---- raw clients (plain malloc: the counting allocator belongs to the server thread) ----------------- */

typedef struct bytes {
  uint8_t b[8192];
  size_t len;
} bytes;

static void put16(bytes *x, unsigned v) {
  x->b[x->len++] = (uint8_t)(v >> 8);
  x->b[x->len++] = (uint8_t)v;
}
static void put8(bytes *x, unsigned v) { x->b[x->len++] = (uint8_t)v; }
static void putn(bytes *x, const void *p, size_t n) {
  memcpy(x->b + x->len, p, n);
  x->len += n;
}

static bytes alive_req(const char *name, unsigned port, unsigned highest) {
  bytes x = {.len = 0};
  size_t n = strlen(name);
  put16(&x, (unsigned)(13 + n));
  put8(&x, 120);
  put16(&x, port);
  put8(&x, 77);
  put8(&x, 0);
  put16(&x, highest);
  put16(&x, 5);
  put16(&x, (unsigned)n);
  putn(&x, name, n);
  put16(&x, 0);
  return x;
}

static bytes name_req(unsigned tag, const char *name) {
  bytes x = {.len = 0};
  size_t n = strlen(name);
  put16(&x, (unsigned)(1 + n));
  put8(&x, tag);
  putn(&x, name, n);
  return x;
}

static bytes raw(const void *p, size_t n) {
  bytes x = {.len = 0};
  putn(&x, p, n);
  return x;
}

static int cl_connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

/* Reads until EOF or until nothing came for wait_ms (then *open is set). */
static bytes cl_read(int fd, int wait_ms, int *open) {
  bytes r = {.len = 0};
  *open = 0;
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int k = poll(&p, 1, wait_ms);
    if (k == 0) {
      *open = 1;
      return r;
    }
    ssize_t n = read(fd, r.b + r.len, sizeof r.b - r.len);
    if (n <= 0) return r;
    r.len += (size_t)n;
  }
}

/* One request on a new connection; returns the reply, *open when the server kept the connection. */
static bytes cl_req(uint16_t port, const bytes *req, int *open) {
  int fd = cl_connect(port);
  assert_int_equal(write(fd, req->b, req->len), (ssize_t)req->len);
  bytes r = cl_read(fd, 300, open);
  close(fd);
  return r;
}

/* An ALIVE2 whose socket is kept: returns the fd, the reply in *r. */
static int cl_alive(uint16_t port, const char *name, unsigned highest, bytes *r) {
  int fd = cl_connect(port);
  bytes q = alive_req(name, 5555, highest);
  assert_int_equal(write(fd, q.b, q.len), (ssize_t)q.len);
  int open;
  *r = cl_read(fd, 150, &open);
  assert_true(open);
  return fd;
}

static bytes names_of(uint16_t port) {
  bytes q = raw("\0\1n", 3);
  int open;
  return cl_req(port, &q, &open);
}

static int names_has(uint16_t port, const char *name) {
  bytes r = names_of(port);
  char line[300];
  snprintf(line, sizeof line, "name %s at port", name);
  r.b[r.len < sizeof r.b ? r.len : sizeof r.b - 1] = 0;
  return r.len >= 4 && strstr((const char *)r.b + 4, line) != NULL;
}

static void wait_gone(uint16_t port, const char *name) {
  for (int i = 0; i < 100 && names_has(port, name); i++) sleep_ms(5);
  assert_false(names_has(port, name));
}

/* ---- the same script against OTP's epmd and cnode-epmd ----------------------------------------------- */

/* One step's outcome, normalised: creations that depend on the clock become C<delta from the name's first
 * registration>, the NAMES/DUMP port header P, DUMP's fd numbers F; "|open" when the server kept the socket. */
typedef struct transcript {
  char lines[40][600];
  int n;
} transcript;

static void tr_add(transcript *t, const char *what, const bytes *r, int open) {
  char *o = t->lines[t->n++];
  size_t k = (size_t)snprintf(o, 600, "%s: ", what);
  for (size_t i = 0; i < r->len && k < 560; i++) {
    uint8_t c = r->b[i];
    k += (size_t)snprintf(o + k, 600 - k, c >= 32 && c < 127 && c != '\\' ? "%c" : "\\x%02x", c);
  }
  if (open) snprintf(o + k, 600 - k, "|open");
}

static uint32_t first_cr;

/* An ALIVE2 reply with its creation made relative (v6) or range-checked (v5). */
static void norm_alive(bytes *r, int first) {
  if (r->len == 6 && r->b[0] == 118 && r->b[1] == 0) {
    uint32_t cr = cn_get32(r->b + 2);
    if (first) {
      uint32_t now = (uint32_t)time(NULL);
      assert_true(cr >= now - 30 && cr <= now + 30); /* a new name's creation starts from the clock */
      first_cr = cr;
    }
    int len = snprintf((char *)r->b + 2, sizeof r->b - 2, "C%+d", (int)(cr - first_cr));
    r->len = 2 + (size_t)len;
  } else if (r->len == 4 && r->b[0] == 121 && r->b[1] == 0) {
    unsigned cr = cn_get16(r->b + 2);
    assert_true(cr >= 1 && cr <= 3);
    r->len = (size_t)(2 + snprintf((char *)r->b + 2, 8, "c"));
  }
}

/* NAMES/DUMP: the 4-byte port becomes "P", every "fd = N" becomes "fd = F". */
static void norm_list(bytes *r) {
  if (r->len < 4) return;
  bytes o = {.len = 0};
  putn(&o, "P", 1);
  for (size_t i = 4; i < r->len; i++) {
    if (i + 5 <= r->len && memcmp(r->b + i, "fd = ", 5) == 0) {
      putn(&o, "fd = F", 6);
      i += 5;
      while (i < r->len && r->b[i] >= '0' && r->b[i] <= '9') i++;
      i--;
      continue;
    }
    put8(&o, r->b[i]);
  }
  *r = o;
}

static void run_script(uint16_t port, int relaxed, transcript *t) {
  memset(t, 0, sizeof *t);
  bytes r, q;
  int open;
  int foo = cl_alive(port, "foo", 6, &r);
  norm_alive(&r, 1);
  tr_add(t, "alive foo", &r, 0);
  int dup = cl_alive(port, "foo", 6, &r);
  tr_add(t, "alive foo again (taken)", &r, 0);
  close(dup);
  int old = cl_alive(port, "old", 5, &r);
  norm_alive(&r, 0);
  tr_add(t, "alive old v5", &r, 0);
  q = name_req(122, "foo");
  r = cl_req(port, &q, &open);
  tr_add(t, "port_please foo", &r, open);
  q = name_req(122, "nobody");
  r = cl_req(port, &q, &open);
  tr_add(t, "port_please nobody", &r, open);
  q = raw("\0\5zfoo\0", 7);
  r = cl_req(port, &q, &open);
  tr_add(t, "port_please foo NUL-terminated", &r, open);
  r = names_of(port);
  norm_list(&r);
  tr_add(t, "names", &r, 0);
  q = raw("\0\3nxy", 5);
  r = cl_req(port, &q, &open);
  norm_list(&r);
  tr_add(t, "names with a body", &r, open);
  q = raw("\0\1d", 3);
  r = cl_req(port, &q, &open);
  norm_list(&r);
  tr_add(t, "dump", &r, open);
  if (!relaxed) { /* relaxed: this KILL would end OTP's epmd here; it comes last instead */
    q = raw("\0\1k", 3);
    r = cl_req(port, &q, &open);
    tr_add(t, "kill with live names", &r, open);
  }
  q = name_req(115, "nobody");
  r = cl_req(port, &q, &open);
  tr_add(t, "stop nobody", &r, open);
  q = name_req(115, "old");
  r = cl_req(port, &q, &open);
  tr_add(t, "stop old", &r, open);
  /* With relaxed checks the stop closed old's registration socket; else it is still open. */
  r = cl_read(old, 100, &open);
  tr_add(t, "old's socket after stop", &r, open);
  q = raw("\0\1d", 3);
  r = cl_req(port, &q, &open);
  norm_list(&r);
  tr_add(t, "dump after stop", &r, open);
  close(old);
  close(foo);
  wait_gone(port, "foo");
  wait_gone(port, "old");
  int foo2 = cl_alive(port, "foo", 6, &r);
  norm_alive(&r, 0);
  tr_add(t, "alive foo after unregister", &r, 0);
  static const uint8_t bad_utf8[] = {0, 16, 120, 0, 1, 77, 0, 0, 6, 0, 5, 0, 3, 'b', 'a', 0xff, 0, 0};
  q = raw(bad_utf8, sizeof bad_utf8);
  r = cl_req(port, &q, &open);
  tr_add(t, "alive invalid utf-8", &r, open);
  static const uint8_t trailing[] = {0, 18, 120, 0, 1, 77, 0, 0, 6, 0, 5, 0, 3, 'b', 'a', 'r', 0, 0, 'x', 'y'};
  int bar = cl_connect(port);
  assert_int_equal(write(bar, trailing, sizeof trailing), (ssize_t)sizeof trailing);
  r = cl_read(bar, 150, &open);
  norm_alive(&r, 0);
  r.len = r.len >= 2 ? 2 : r.len; /* bar is a new name: only the result counts */
  tr_add(t, "alive with trailing bytes", &r, open);
  close(bar);
  wait_gone(port, "bar");
  static const struct {
    const char *what;
    const char *b;
    size_t n;
  } garbage[] = {
      {"unknown tag", "\0\1\1", 3},
      {"length 0", "\0\0", 2},
      {"length 65535", "\xff\xff", 2},
      {"length 3058", "\x0b\xf2zfoo", 6},
      {"port_please empty name", "\0\1z", 3},
      {"more bytes than the length", "\0\4zfoox", 8},
      {"alive too short", "\0\5x\0\0\0\0", 7},
  };
  for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
    q = raw(garbage[i].b, garbage[i].n);
    r = cl_req(port, &q, &open);
    tr_add(t, garbage[i].what, &r, open);
  }
  if (!relaxed) {
    close(foo2);
    wait_gone(port, "foo");
  }
  q = raw("\0\1k", 3);
  r = cl_req(port, &q, &open);
  tr_add(t, relaxed ? "kill with live names" : "kill with no names", &r, open);
  if (relaxed) { /* killed: the registration socket is closed too */
    r = cl_read(foo2, 1000, &open);
    tr_add(t, "registration socket after kill", &r, open);
    close(foo2);
  }
}

static void compare_with_otp(int relaxed) {
  if (relaxed) setenv("ERL_EPMD_RELAXED_COMMAND_CHECK", "1", 1);
  uint16_t otp_port;
  int otp = test_epmd_start(&otp_port);
  unsetenv("ERL_EPMD_RELAXED_COMMAND_CHECK");
  assert_true(otp > 0);
  transcript *want = calloc(1, sizeof *want), *got = calloc(1, sizeof *got);
  run_script(otp_port, relaxed, want);
  test_epmd_stop(otp);
  epmd_srv_opts o = {.relaxed_command_check = relaxed};
  srv_thread *t = srv_up(&o);
  run_script(t->port, relaxed, got);
  assert_int_equal(want->n, got->n);
  for (int i = 0; i < want->n; i++) {
    if (getenv("CN_TEST_VERBOSE")) print_message("%s\n", got->lines[i]);
    if (strcmp(want->lines[i], got->lines[i]))
      print_error("OTP's epmd:  %s\ncnode-epmd:  %s\n", want->lines[i], got->lines[i]);
    assert_string_equal(want->lines[i], got->lines[i]);
  }
  int killed = 0;
  for (int i = 0; i < 200 && !killed; i++) { /* the client may see "OK" before the server thread reports */
    pthread_mutex_lock(&t->mu);
    killed = t->killed;
    pthread_mutex_unlock(&t->mu);
    if (!killed) sleep_ms(5);
  }
  assert_int_equal(killed, 1); /* the last step's KILL was accepted */
  srv_down(t);
  free(want);
  free(got);
}

static void test_same_answers_as_otp(void **st) {
  (void)st;
  compare_with_otp(0);
}

static void test_same_answers_as_otp_relaxed(void **st) {
  (void)st;
  compare_with_otp(1);
}

/* OTP 25.2's answers, recorded from /usr/bin/epmd, kept as literal vectors. */
static void test_recorded_vectors(void **st) {
  (void)st;
  epmd_srv_opts o = {.relaxed_command_check = 1};
  srv_thread *t = srv_up(&o);
  bytes r, q;
  int open;
  int foo = cl_alive(t->port, "foo", 6, &r);
  assert_int_equal(r.len, 6);
  assert_memory_equal(r.b, "\x76\x00", 2);
  int dup = cl_alive(t->port, "foo", 6, &r);
  assert_int_equal(r.len, 6);
  assert_memory_equal(r.b, "\x76\x01\x00\x00\x00\x63", 6); /* refused: result 1, creation 99 */
  close(dup);
  int dup5 = cl_alive(t->port, "foo", 5, &r);
  assert_int_equal(r.len, 4);
  assert_memory_equal(r.b, "\x79\x01\x00\x63", 4); /* the same for an old client */
  close(dup5);
  q = name_req(122, "foo");
  r = cl_req(t->port, &q, &open);
  static const uint8_t pp_foo[] = {0x77, 0x00, 0x15, 0xb3, 0x4d, 0x00, 0x00, 0x06, 0x00,
                                   0x05, 0x00, 0x03, 'f',  'o',  'o',  0x00, 0x00};
  assert_int_equal(r.len, sizeof pp_foo);
  assert_memory_equal(r.b, pp_foo, sizeof pp_foo);
  assert_false(open);
  q = name_req(122, "bar");
  r = cl_req(t->port, &q, &open);
  assert_int_equal(r.len, 2);
  assert_memory_equal(r.b, "\x77\x01", 2);
  r = names_of(t->port);
  assert_int_equal(r.len, 4 + strlen("name foo at port 5555\n"));
  assert_int_equal(cn_get32(r.b), t->port);
  assert_memory_equal(r.b + 4, "name foo at port 5555\n", r.len - 4);
  q = raw("\0\1d", 3);
  r = cl_req(t->port, &q, &open);
  char line[128];
  int ln = snprintf(line, sizeof line, "active name     <foo> at port 5555, fd = ");
  assert_true(r.len > 4 + (size_t)ln);
  assert_memory_equal(r.b + 4, line, (size_t)ln);
  assert_int_equal(r.b[r.len - 1], 0);
  assert_int_equal(r.b[r.len - 2], '\n');
  q = name_req(115, "nope");
  r = cl_req(t->port, &q, &open);
  assert_int_equal(r.len, 14);
  assert_memory_equal(r.b, "NOEXISTSTOPPED", 14);
  q = name_req(115, "foo");
  r = cl_req(t->port, &q, &open);
  assert_int_equal(r.len, 7);
  assert_memory_equal(r.b, "STOPPED", 7);
  r = cl_read(foo, 200, &open);
  assert_false(open); /* the registration socket was closed by the stop */
  close(foo);
  srv_down(t);
}

/* ---- registrations, garbage, timeouts ---------------------------------------------------------------- */

static void test_registration_follows_socket(void **st) {
  (void)st;
  srv_thread *t = srv_up(NULL);
  bytes r;
  int a = cl_alive(t->port, "a", 6, &r);
  assert_int_equal(r.b[1], 0);
  uint32_t cr = cn_get32(r.b + 2);
  assert_true(names_has(t->port, "a"));
  close(a);
  wait_gone(t->port, "a");
  /* Same name again: the remembered slot gives creation + 1. */
  a = cl_alive(t->port, "a", 6, &r);
  assert_int_equal(cn_get32(r.b + 2), cr + 1);
  /* More bytes on a registration socket unregister it, as OTP does. */
  assert_int_equal(write(a, "x", 1), 1);
  int open;
  cl_read(a, 500, &open);
  assert_false(open);
  close(a);
  assert_false(names_has(t->port, "a"));
  epmd_srv_stats s = srv_stats(t);
  assert_int_equal(s.registered, 0);
  assert_int_equal(s.remembered, 1);
  srv_down(t);
}

static void test_split_request_and_timeout(void **st) {
  (void)st;
  epmd_srv_opts o = {.packet_timeout_ms = 300};
  srv_thread *t = srv_up(&o);
  bytes r;
  int a = cl_alive(t->port, "split", 6, &r);
  /* A request written one byte at a time is still one request. */
  bytes q = name_req(122, "split");
  int fd = cl_connect(t->port);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  for (size_t i = 0; i < q.len; i++) {
    assert_int_equal(write(fd, q.b + i, 1), 1);
    sleep_ms(2);
  }
  int open;
  r = cl_read(fd, 1000, &open);
  close(fd);
  assert_false(open);
  assert_true(r.len > 2);
  assert_int_equal(r.b[1], 0);
  /* A partial request is closed after the packet timeout; the registration is not (it never times out). */
  fd = cl_connect(t->port);
  assert_int_equal(write(fd, "\0", 1), 1);
  r = cl_read(fd, 3000, &open);
  assert_false(open);
  assert_int_equal(r.len, 0);
  close(fd);
  sleep_ms(400);
  assert_true(names_has(t->port, "split"));
  close(a);
  epmd_srv_stats s = srv_stats(t);
  assert_true(s.dropped >= 1);
  srv_down(t);
}

static void test_start_errors(void **st) {
  (void)st;
  uv_loop_t loop;
  uv_loop_init(&loop);
  epmd_srv *s = NULL;
  epmd_srv_opts o = {.addresses = "127.0.0.1"};
  assert_int_equal(epmd_srv_start(&loop, &o, &s), 0);
  epmd_srv_opts o2 = {.addresses = "127.0.0.1", .port = epmd_srv_port(s)};
  epmd_srv *s2 = NULL;
  assert_int_equal(epmd_srv_start(&loop, &o2, &s2), CN_EEXIST);
  epmd_srv_opts o3 = {.addresses = "127.0.0.1,not-an-address"};
  assert_int_equal(epmd_srv_start(&loop, &o3, &s2), CN_EINVAL);
  assert_null(s2);
  /* A scoped IPv6 address is an address (the interface must exist); a scope on IPv4 or an unknown interface is
   * not. An address this host lacks (fe80::1 on lo) is skipped, as OTP's epmd does, leaving the loopbacks. */
  epmd_srv_opts o4 = {.addresses = "127.0.0.1,fe80::1%lo"};
  assert_int_equal(epmd_srv_start(&loop, &o4, &s2), 0);
  epmd_srv_close(s2, NULL, NULL);
  s2 = NULL;
  static const char *bad[] = {"127.0.0.1%lo", "fe80::1%no-such-if0", "fe80::1%", "[::1]"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    epmd_srv_opts ob = {.addresses = bad[i]};
    assert_int_equal(epmd_srv_start(&loop, &ob, &s2), CN_EINVAL);
    assert_null(s2);
  }
  assert_int_equal(epmd_srv_start(NULL, &o, &s2), CN_EINVAL);
  epmd_srv_close(s, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* 127.0.0.1 given: ::1 is listened on too (when the host has IPv6), as OTP's epmd does. */
static void test_ipv6_loopback(void **st) {
  (void)st;
  srv_thread *t = srv_up(NULL);
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(t->port), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
    assert_int_equal(srv_stats(t).listeners, 2);
    bytes q = alive_req("six", 7000, 6);
    assert_int_equal(write(fd, q.b, q.len), (ssize_t)q.len);
    int open;
    bytes r = cl_read(fd, 200, &open);
    assert_true(open); /* ::1 is local: ALIVE2 allowed */
    assert_int_equal(r.len, 6);
    assert_int_equal(r.b[1], 0);
    assert_true(names_has(t->port, "six"));
  } else {
    print_message("no IPv6 loopback here; skipped\n");
  }
  if (fd >= 0) close(fd);
  srv_down(t);
}

/* ---- load: cycles and concurrency -------------------------------------------------------------------- */

static void test_10000_cycles(void **st) {
  (void)st;
  epmd_srv_opts o = {.max_unreg = 100};
  srv_thread *t = srv_up(&o);
  uint32_t cr0 = 0;
  for (int i = 0; i < 10000; i++) {
    /* Half the cycles reuse one name (creation + 1 each time), half use fresh names (the remembered list
     * stays bounded). */
    char name[32];
    if (i % 2) snprintf(name, sizeof name, "n%d", i);
    else snprintf(name, sizeof name, "same");
    int fd = cl_connect(t->port);
    bytes q = alive_req(name, 6000, 6);
    assert_int_equal(write(fd, q.b, q.len), (ssize_t)q.len);
    uint8_t r[6];
    size_t got = 0;
    while (got < 6) {
      ssize_t k = read(fd, r + got, 6 - got);
      assert_true(k > 0);
      got += (size_t)k;
    }
    assert_int_equal(r[1], 0);
    if (i == 0) cr0 = cn_get32(r + 2);
    if (i == 2 * 50) assert_int_equal(cn_get32(r + 2), cr0 + 50);
    close(fd);
    if (i % 1000 == 999) {
      for (int k = 0; k < 200 && srv_stats(t).registered; k++) sleep_ms(5);
      epmd_srv_stats s = srv_stats(t);
      assert_int_equal(s.registered, 0);
      assert_true(s.remembered <= 101);
    }
  }
  assert_false(names_has(t->port, "same"));
  assert_true(srv_stats(t).requests >= 10000);
  srv_down(t);
}

static void test_1000_concurrent(void **st) {
  (void)st;
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < 2600 && rl.rlim_max >= 2600) {
    rl.rlim_cur = rl.rlim_max < 8192 ? rl.rlim_max : 8192;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  srv_thread *t = srv_up(NULL);
  enum { N = 1000 };
  int *fds = malloc(N * sizeof *fds);
  /* 100 of them register (and stay), 900 open, then all send at once, then all read. */
  for (int i = 0; i < N; i++) fds[i] = cl_connect(t->port);
  for (int k = 0; k < 200 && srv_stats(t).connections < N; k++) sleep_ms(10);
  assert_int_equal(srv_stats(t).connections, N);
  for (int phase = 0; phase < 2; phase++) {
    int lo = phase ? 100 : 0, hi = phase ? N : 100;
    for (int i = lo; i < hi; i++) {
      char name[32];
      snprintf(name, sizeof name, "c%d", i);
      bytes q = i < 100 ? alive_req(name, (unsigned)(1000 + i), 6) : name_req(122, i % 2 ? "c1" : "missing");
      assert_int_equal(write(fds[i], q.b, q.len), (ssize_t)q.len);
    }
    for (int i = lo; i < hi; i++) {
      uint8_t r[64];
      ssize_t k = read(fds[i], r, sizeof r);
      assert_true(k >= 2);
      assert_int_equal(r[0], i < 100 ? 118 : 119);
      assert_int_equal(r[1], i < 100 || i % 2 ? 0 : 1);
    }
  }
  epmd_srv_stats s = srv_stats(t);
  assert_int_equal(s.registered, 100);
  bytes names = names_of(t->port);
  assert_true(names.len > 4 + 100 * 15);
  for (int i = 0; i < N; i++) close(fds[i]);
  for (int k = 0; k < 300 && srv_stats(t).connections; k++) sleep_ms(10);
  s = srv_stats(t);
  assert_int_equal(s.connections, 0);
  assert_int_equal(s.registered, 0);
  free(fds);
  srv_down(t);
}

/* Over max_conns the newest connection is closed at once; the server keeps answering. */
static void test_connection_limit(void **st) {
  (void)st;
  epmd_srv_opts o = {.max_conns = 10};
  srv_thread *t = srv_up(&o);
  int fds[10];
  for (int i = 0; i < 10; i++) fds[i] = cl_connect(t->port);
  for (int k = 0; k < 100 && srv_stats(t).connections < 10; k++) sleep_ms(5);
  int extra = cl_connect(t->port);
  int open;
  bytes r = cl_read(extra, 1000, &open);
  assert_false(open);
  assert_int_equal(r.len, 0);
  close(extra);
  for (int i = 0; i < 10; i++) close(fds[i]);
  for (int k = 0; k < 100 && srv_stats(t).connections; k++) sleep_ms(5);
  assert_true(names_of(t->port).len >= 4);
  srv_down(t);
}

static void test_dump_entry_codec(void **st) {
  (void)st;
  cn_buf b = {0};
  assert_int_equal(epmd_enc_dump_entry(&b, 1, "a", 1, 7), 0);
  assert_int_equal(epmd_enc_dump_entry(&b, 0, "b", 2, 8), 0);
  static const char want[] = "active name     <a> at port 1, fd = 7\n\0old/unused name <b>, port = 2, fd = 8 \n";
  assert_int_equal(b.len, sizeof want); /* the final NUL counts too */
  assert_memory_equal(b.data, want, sizeof want);
  assert_int_equal(epmd_enc_dump_entry(&b, 1, "", 1, 7), CN_EINVAL);
  cn_buf_free(&b);
}

int main(void) {
  ta_install();
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_dump_entry_codec, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_same_answers_as_otp, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_same_answers_as_otp_relaxed, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_recorded_vectors, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_registration_follows_socket, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_split_request_and_timeout, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_start_errors, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_ipv6_loopback, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_connection_limit, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_10000_cycles, ta_setup, ta_teardown),
      cmocka_unit_test_setup_teardown(test_1000_concurrent, ta_setup, ta_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
