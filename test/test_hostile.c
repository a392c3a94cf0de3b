/* test_hostile.c: hostile peers against a running node (in its own thread, real sockets, real OTP epmd):
 * silence, slow bytes, oversized frames and counts, garbage after a valid handshake, floods of atoms, a peer
 * that never reads, 500 connections at once. After each, a well-behaved C node still connects and gets an
 * echo, and the node's counters say what it refused. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <liburing.h>

#include "cnode.h"
#include "dist.h"
#include "testutil.h"

static uint16_t epmd_port;
static int epmd_pid;
static cn_node *victim;
static pthread_t victim_th;
static volatile int victim_ready;

static void on_start(cn_node *n, int status, void *ctx) {
  (void)n;
  (void)ctx;
  victim_ready = status ? -1 : 1;
}

static void echo(cn_proc *self, const cn_term *msg, void *state) {
  (void)state;
  const cn_term *from = cn_tuple_elem(msg, 2, 0);
  if (from && from->type == CN_PID) cn_send(cn_proc_node(self), self, from->v.pid, cn_tuple_elem(msg, 2, 1));
}

static void *run(void *arg) {
  cn_node_run(arg);
  return NULL;
}

static int setup(void **st) {
  (void)st;
  epmd_pid = test_epmd_start(&epmd_port);
  if (epmd_pid <= 0) return -1;
  cn_node_opts o = {.name = "victim@127.0.0.1",
                    .cookie = "secret",
                    .epmd_port = epmd_port,
                    .listen_addr = "127.0.0.1",
                    .handshake_timeout_ms = 500,
                    .log_level = CN_LOG_ERROR,
                    .busy_limit = 64 << 10,
                    .queue_limit = 1 << 20};
  if (cn_node_new(&victim, NULL, &o)) return -1;
  cn_pid pid;
  if (cn_spawn(victim, echo, NULL, NULL, &pid) || cn_register(victim, "echo", pid)) return -1;
  if (cn_node_start(victim, on_start, NULL)) return -1;
  pthread_create(&victim_th, NULL, run, victim);
  for (int i = 0; i < 500 && !victim_ready; i++) sleep_ms(10);
  return victim_ready == 1 ? 0 : -1;
}

static int teardown(void **st) {
  (void)st;
  cn_node_stop(victim);
  pthread_join(victim_th, NULL);
  cn_node_free(victim);
  test_epmd_stop(epmd_pid);
  return 0;
}

static cn_node_stats stats(void) {
  cn_node_stats s;
  cn_node_get_stats(victim, &s); /* counters are plain words: a racy read is fine for a test */
  return s;
}

/* ---- A raw peer ---------------------------------------------------------------------------------------------- */

static int raw_connect(void) {
  int fd = test_raw_connect(cn_node_port(victim));
  assert_true(fd >= 0);
  return fd;
}

/* The victim may close first: that is what several tests expect. */
static void send_all(int fd, const void *p, size_t n) { (void)test_send_all(fd, p, n); }

/* True when the victim closed fd within ms (reads and discards whatever comes first). */
static bool closed_within(int fd, int ms) {
  uint8_t buf[4096];
  for (int waited = 0; waited <= ms; waited += 20) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 20) > 0) {
      ssize_t r = recv(fd, buf, sizeof buf, 0);
      if (r == 0 || (r < 0 && errno == ECONNRESET)) return true;
    }
  }
  return false;
}

/* Completes a real handshake as name with cookie; returns the socket, or -1 when refused. */
static int handshake(const char *name, const char *cookie) {
  return test_hand_peer(cn_node_port(victim), name, cookie, 0);
}

/* A frame: 4-byte length, 131 68 0, then body bytes (control and payload without version bytes). */
static void send_frame(int fd, const uint8_t *body, size_t len) {
  uint8_t h[7] = {0, 0, 0, 0, 131, 68, 0};
  cn_set32(h, (uint32_t)(len + 3));
  send_all(fd, h, 7);
  send_all(fd, body, len);
}

/* ---- The check after each attack: a good C node still gets an echo --------------------------------------------- */

typedef struct good {
  cn_node *n;
  pthread_t th;
  volatile int ready, got;
} good;

static void good_start(cn_node *n, int status, void *ctx) {
  (void)n;
  ((good *)ctx)->ready = status ? -1 : 1;
}
static void good_collect(cn_proc *self, const cn_term *msg, void *state) {
  (void)self;
  if (cn_is_atom(msg, "still_here")) ((good *)state)->got++;
}

/* The peer's entry in n's connection list (racy reads of plain words, fine for a test); false when absent. */
static bool conn_of(cn_node *n, const char *peer, cn_conn_info *out) {
  cn_conn_info v[16];
  size_t k = cn_node_conns(n, v, 16);
  for (size_t i = 0; i < k && i < 16; i++) {
    if (v[i].node && !strcmp(v[i].node->name, peer)) {
      *out = v[i];
      return true;
    }
  }
  return false;
}

/* A well-behaved node named name, running in its own thread, with a collecting process *me. */
static void good_up(good *g, const char *name, cn_pid *me) {
  cn_node_opts o = {
      .name = name, .cookie = "secret", .epmd_port = epmd_port, .listen_addr = "127.0.0.1", .log_level = CN_LOG_ERROR};
  assert_int_equal(cn_node_new(&g->n, NULL, &o), 0);
  assert_int_equal(cn_spawn(g->n, good_collect, g, NULL, me), 0);
  assert_int_equal(cn_node_start(g->n, good_start, g), 0);
  pthread_create(&g->th, NULL, run, g->n);
  for (int i = 0; i < 500 && !g->ready; i++) sleep_ms(10);
  assert_int_equal(g->ready, 1);
}

static void good_down(good *g) {
  cn_node_stop(g->n);
  pthread_join(g->th, NULL);
  cn_node_free(g->n);
}

static void assert_still_serving(void) {
  static int round;
  char name[64];
  snprintf(name, sizeof name, "good%d@127.0.0.1", round++);
  good g = {0};
  cn_pid me;
  good_up(&g, name, &me);
  cn_term *msg = cn_mk_tuple(2, cn_mk_pid(me), cn_mk_atomc(g.n, "still_here"));
  assert_int_equal(cn_send_threadsafe(g.n, NULL, "echo", cn_intern(g.n, "victim@127.0.0.1"), msg), 0);
  for (int i = 0; i < 500 && !g.got; i++) sleep_ms(10);
  assert_int_equal(g.got, 1);
  good_down(&g);
}

/* ---- Attacks --------------------------------------------------------------------------------------------------- */

static void test_silent_and_slow_peers(void **st) {
  (void)st;
  uint64_t before = stats().handshake_timeouts;
  int silent = raw_connect();
  int slow = raw_connect();
  /* One byte every 100 ms of a 64-byte send_name that never completes. */
  static const uint8_t slow_bytes[] = {0, 64, 'N', 0, 0, 0, 0, 0, 0, 0};
  for (size_t i = 0; i < sizeof slow_bytes; i++) {
    send_all(slow, &slow_bytes[i], 1);
    sleep_ms(100);
  }
  assert_true(closed_within(silent, 2000));
  assert_true(closed_within(slow, 2000));
  close(silent);
  close(slow);
  assert_true(stats().handshake_timeouts >= before + 2);
  assert_still_serving();
}

static void test_wrong_cookie(void **st) {
  (void)st;
  uint64_t before = stats().handshake_failures;
  assert_int_equal(handshake("intruder@127.0.0.1", "not-the-cookie"), -1);
  assert_true(stats().handshake_failures > before);
  assert_still_serving();
}

static void test_oversized_frame_and_counts(void **st) {
  (void)st;
  cn_node_stats s0 = stats();
  int fd = handshake("big@127.0.0.1", "secret");
  assert_true(fd >= 0);
  uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff}; /* a frame of 2^32-1 bytes */
  send_all(fd, huge, 4);
  assert_true(closed_within(fd, 2000));
  close(fd);
  assert_true(stats().oversized_messages > s0.oversized_messages);
  /* A control tuple claiming 2^32-1 elements, with none behind it. */
  fd = handshake("arity@127.0.0.1", "secret");
  assert_true(fd >= 0);
  uint8_t arity[] = {105, 0xff, 0xff, 0xff, 0xff};
  send_frame(fd, arity, sizeof arity);
  assert_true(closed_within(fd, 2000));
  close(fd);
  /* Garbage after a valid handshake. */
  fd = handshake("garbage@127.0.0.1", "secret");
  assert_true(fd >= 0);
  uint8_t junk[64];
  RAND_bytes(junk, sizeof junk);
  junk[0] = 0, junk[1] = 0, junk[2] = 0, junk[3] = 60;
  send_all(fd, junk, sizeof junk);
  assert_true(closed_within(fd, 2000));
  close(fd);
  assert_true(stats().protocol_errors >= s0.protocol_errors + 2);
  assert_still_serving();
}

/* A SEND to a dead local pid carrying a list of `count` atoms a<start>.. a<start+count-1>. */
static void send_atoms(int fd, uint32_t start, uint32_t count) {
  cn_buf b = {0};
  /* control {2, '', Pid}: a pid of the victim that does not exist */
  uint8_t ctl[] = {104, 3,   97,  2,   119, 0,   88, 119, 16,   'v',  'i', 'c', 't', 'i', 'm', '@', '1', '2', '7',
                   '.', '0', '.', '0', '.', '1', 0,  0,   0x7f, 0xff, 0,   0,   0,   0,   0,   0,   0,   0};
  cn_buf_append(&b, ctl, sizeof ctl);
  cn_buf_put8(&b, 108);
  cn_buf_put32(&b, count);
  for (uint32_t i = 0; i < count; i++) {
    char name[16];
    int l = snprintf(name, sizeof name, "a%u", start + i);
    cn_buf_put8(&b, 119);
    cn_buf_put8(&b, (uint8_t)l);
    cn_buf_append(&b, name, (size_t)l);
  }
  cn_buf_put8(&b, 106);
  send_frame(fd, b.data, b.len);
  cn_buf_free(&b);
}

/* After a chunk, a REG_SEND to echo with {Pid, ack}: a reply frame means the chunk was decoded; EOF means
 * the victim refused it and dropped the connection. Returns true when acknowledged. */
static bool chunk_acked(int fd) {
  cn_atoms *tab;
  cn_atoms_new(&tab, 0);
  cn_pid me = {.node = cn_atoms_get(tab, "flood@127.0.0.1"), .id = 1, .creation = 7};
  cn_term *ctl = cn_mk_tuple(4, cn_mk_int(6), cn_mk_pid(me), cn_mk_atom(cn_atoms_get(tab, "")),
                             cn_mk_atom(cn_atoms_get(tab, "echo")));
  cn_term *msg = cn_mk_tuple(2, cn_mk_pid(me), cn_mk_atom(cn_atoms_get(tab, "ack")));
  cn_buf b = {0};
  cn_term_encode(ctl, &b);
  cn_term_encode(msg, &b);
  send_frame(fd, b.data, b.len);
  cn_buf_free(&b);
  cn_term_free(ctl);
  cn_term_free(msg);
  cn_atoms_free(tab);
  uint8_t buf[4096];
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 5000) <= 0) return false;
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r <= 0) return false;
    /* Ticks are 4 zero bytes; anything longer is the echo. */
    for (ssize_t i = 0; i < r; i++)
      if (buf[i]) return true;
  }
}

static void test_atom_flood(void **st) {
  (void)st;
  /* 10 million distinct atoms offered, 100,000 per message; the table stops at the peers' share of its limit
   * and each message that would go beyond costs its connection. */
  size_t base = cn_atoms_count(cn_node_atoms(victim));
  uint32_t offered = 0, accepted = 0, refused = 0;
  int fd = -1;
  while (offered < 10000000) {
    if (fd < 0) fd = handshake("flood@127.0.0.1", "secret");
    assert_true(fd >= 0);
    send_atoms(fd, offered, 100000);
    offered += 100000;
    if (chunk_acked(fd)) {
      accepted++;
    } else {
      refused++;
      close(fd);
      fd = -1;
    }
  }
  if (fd >= 0) close(fd);
  size_t count = cn_atoms_count(cn_node_atoms(victim));
  print_message("atoms: %zu before, %zu after 10,000,000 offered in 100 messages: %u decoded, %u refused\n", base,
                count, accepted, refused);
  assert_true(count <= 1048576 - 1048576 / 16); /* the peers' share of the table */
  assert_true(refused > 0 && accepted + refused == 100);
  assert_true(stats().atoms_refused > 0);
  assert_still_serving();
}

/* A peer that never reads: the victim's queue to it reaches the busy limit (the sender is suspended) and
 * then the queue limit (messages dropped), and memory stays bounded. */
typedef struct flood_arg {
  cn_pid to;
  int rounds;
} flood_arg;

static void flooder(cn_proc *self, const cn_term *msg, void *state) {
  (void)msg;
  flood_arg *f = state;
  static uint8_t chunk[4096];
  cn_term *bin = cn_mk_binary(chunk, sizeof chunk);
  for (int i = 0; i < 64; i++) cn_send(cn_proc_node(self), self, f->to, bin);
  cn_term_free(bin);
  if (--f->rounds > 0) {
    cn_term *again = cn_mk_atomc(cn_proc_node(self), "again");
    cn_send(cn_proc_node(self), self, cn_self(self), again);
    cn_term_free(again);
  }
}

static void test_peer_never_reads(void **st) {
  (void)st;
  int fd = handshake("sink@127.0.0.1", "secret");
  assert_true(fd >= 0);
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  cn_node_stats s0 = stats();
  /* static: the flooder lives on in the victim after this test returns. */
  static flood_arg f;
  f.to = (cn_pid){.node = cn_intern(victim, "sink@127.0.0.1"), .id = 1, .serial = 0, .creation = 7};
  f.rounds = 200;
  cn_pid fl;
  /* 200 rounds x 64 x 4 KiB = 50 MiB offered to a peer that reads nothing. */
  cn_term *go = cn_mk_atomc(victim, "go");
  assert_int_equal(cn_spawn(victim, flooder, &f, NULL, &fl), 0);
  assert_int_equal(cn_send_threadsafe(victim, &fl, NULL, NULL, go), 0);
  sleep_ms(1500);
  cn_node_stats s1 = stats();
  print_message("busy suspensions %llu, messages dropped %llu, rounds left %d\n",
                (unsigned long long)(s1.busy_suspensions - s0.busy_suspensions),
                (unsigned long long)(s1.messages_dropped - s0.messages_dropped), f.rounds);
  assert_true(s1.busy_suspensions > s0.busy_suspensions);
  /* Suspended, the flooder stops after few rounds: most of the 50 MiB is never even produced. */
  assert_true(f.rounds > 150);
  assert_still_serving();
  close(fd);
  sleep_ms(200);
}

/* cn_node_run reads plain TCP through io_uring where the kernel gives a ring; CNODE_IO_URING=0 keeps libuv's
 * reads; either way messages go both ways, and a connection that carried a large message then idles. */
static void test_reads_ring_or_libuv(void **st) {
  (void)st;
  struct io_uring probe;
  bool ring = io_uring_queue_init(4, &probe, 0) == 0;
  if (ring) io_uring_queue_exit(&probe);
  for (int mode = 0; mode < 2; mode++) {
    if (mode) setenv("CNODE_IO_URING", "0", 1);
    char name[64];
    snprintf(name, sizeof name, "ring%d@127.0.0.1", mode);
    good g = {0};
    cn_pid me;
    good_up(&g, name, &me);
    const cn_atom *v = cn_intern(g.n, "victim@127.0.0.1");
    /* a 1 MiB binary first (the read buffers grow), then the echoes */
    static uint8_t big[1 << 20];
    assert_int_equal(
        cn_send_threadsafe(g.n, NULL, "echo", v, cn_mk_tuple(2, cn_mk_pid(me), cn_mk_binary(big, sizeof big))), 0);
    for (int i = 0; i < 100; i++)
      assert_int_equal(
          cn_send_threadsafe(g.n, NULL, "echo", v, cn_mk_tuple(2, cn_mk_pid(me), cn_mk_atomc(g.n, "still_here"))), 0);
    for (int i = 0; i < 500 && g.got < 100; i++) sleep_ms(10);
    assert_int_equal(g.got, 100);
    cn_conn_info ci;
    assert_true(conn_of(g.n, "victim@127.0.0.1", &ci));
    assert_int_equal(ci.io_uring, ring && !mode);
    assert_true(conn_of(victim, name, &ci));
    assert_int_equal(ci.io_uring, ring); /* the victim's loop started with the ring allowed */
    good_down(&g);
    if (mode) unsetenv("CNODE_IO_URING");
  }
}

static void test_many_connections(void **st) {
  (void)st;
  int fds[500];
  for (int i = 0; i < 500; i++) fds[i] = raw_connect();
  assert_still_serving();
  for (int i = 0; i < 500; i++) close(fds[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_silent_and_slow_peers),      cmocka_unit_test(test_wrong_cookie),
      cmocka_unit_test(test_oversized_frame_and_counts), cmocka_unit_test(test_atom_flood),
      cmocka_unit_test(test_peer_never_reads),           cmocka_unit_test(test_many_connections),
      cmocka_unit_test(test_reads_ring_or_libuv),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
