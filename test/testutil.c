/* testutil.c: guard-page inputs, hex parsing and the vectors folder for unit tests. */
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <cmocka.h>

#include "cn_base.h"
#include "cn_term.h"
#include "cnode.h"
#include "dist.h"

#include <arpa/inet.h>
#include <execinfo.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

uint8_t *guard_copy(const void *data, size_t len) {
  size_t ps = page_size();
  size_t pages = (len + ps - 1) / ps + 1;
  uint8_t *base = mmap(NULL, pages * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return NULL;
  mprotect(base + (pages - 1) * ps, ps, PROT_NONE);
  uint8_t *p = base + (pages - 1) * ps - len;
  if (len) memcpy(p, data, len);
  return p;
}

void guard_free(uint8_t *p, size_t len) {
  size_t ps = page_size();
  size_t pages = (len + ps - 1) / ps + 1;
  uint8_t *base = p + len - (pages - 1) * ps;
  munmap(base, pages * ps);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

long hex_decode(const char *hex, uint8_t **out) {
  size_t n = strlen(hex);
  if (n % 2) return -1;
  uint8_t *b = malloc(n / 2 + 1);
  if (!b) return -1;
  for (size_t i = 0; i < n / 2; i++) {
    int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      free(b);
      return -1;
    }
    b[i] = (uint8_t)(hi << 4 | lo);
  }
  *out = b;
  return (long)(n / 2);
}

const char *vectors_dir(void) {
  const char *d = getenv("CN_VECTORS_DIR");
  return d && *d ? d : "../shared/vectors";
}

uint16_t free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &al)) {
    if (fd >= 0) close(fd);
    return 0;
  }
  close(fd);
  return ntohs(a.sin_port);
}

int can_connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  if (fd >= 0) close(fd);
  return ok;
}

void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void test_epmd_stop(int pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
}

int test_epmd_start(uint16_t *port) {
  for (int attempt = 0; attempt < 5; attempt++) {
    uint16_t p = free_port();
    if (!p) continue;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", (unsigned)p);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
      /* If the test dies without its teardown (an ASan abort), epmd must not outlive it. */
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) _exit(127);
      int dn = open("/dev/null", O_RDWR);
      if (dn >= 0) {
        dup2(dn, 0);
        dup2(dn, 1);
        dup2(dn, 2);
      }
      unsetenv("ERL_EPMD_ADDRESS");
      execl("/usr/bin/epmd", "epmd", "-port", portstr, "-address", "127.0.0.1", (char *)NULL);
      _exit(127);
    }
    for (int i = 0; i < 250; i++) {
      if (can_connect(p)) {
        *port = p;
        return pid;
      }
      if (waitpid(pid, NULL, WNOHANG) == pid) { /* the port was taken meanwhile; try another */
        pid = -1;
        break;
      }
      sleep_ms(20);
    }
    if (pid > 0) test_epmd_stop(pid);
  }
  return -1;
}

int test_raw_connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* Whether the EPMD on 127.0.0.1:port lists the node name alive (a PORT_PLEASE2 request, blocking, 1 s at most). */
bool test_epmd_knows(uint16_t port, const char *alive) {
  size_t n = strlen(alive);
  int fd = test_raw_connect(port);
  if (fd < 0 || n > 255) {
    if (fd >= 0) close(fd);
    return false;
  }
  uint8_t req[3 + 255] = {(uint8_t)((n + 1) >> 8), (uint8_t)(n + 1), 122};
  memcpy(req + 3, alive, n);
  uint8_t resp[2] = {0, 1};
  struct pollfd p = {.fd = fd, .events = POLLIN};
  bool known = test_send_all(fd, req, n + 3) && poll(&p, 1, 1000) > 0 && recv(fd, resp, 2, MSG_WAITALL) == 2 &&
               resp[0] == 119 && resp[1] == 0;
  close(fd);
  return known;
}

bool test_send_all(int fd, const void *p, size_t n) {
  const uint8_t *b = p;
  while (n) {
    ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    b += w;
    n -= (size_t)w;
  }
  return true;
}

int test_hand_peer(uint16_t port, const char *name, const char *cookie, uint64_t flags) {
  int fd = test_raw_connect(port);
  if (fd < 0) return -1;
  dist_hs hs;
  dist_hs_cfg cfg = {.role = DIST_HS_INITIATOR,
                     .name = name,
                     .cookie = cookie,
                     .flags = flags ? flags : DIST_FLAGS_DEFAULT,
                     .creation = 7,
                     .challenge = 12345,
                     .peer_version = 6,
                     .required_flags = DIST_FLAGS_MANDATORY_25};
  if (dist_hs_init(&hs, &cfg)) {
    close(fd);
    return -1;
  }
  uint8_t buf[4096];
  int ev = DIST_HS_MORE;
  while (ev != DIST_HS_DONE) {
    if (!test_send_all(fd, hs.out.data, hs.out.len)) break;
    cn_buf_consume(&hs.out, hs.out.len);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 2000) <= 0) break;
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r <= 0) break;
    size_t used;
    ev = dist_hs_feed(&hs, buf, (size_t)r, &used);
    if (ev < 0) break;
    if (ev == DIST_HS_ALIVE) dist_hs_alive_reply(&hs, true);
  }
  dist_hs_free(&hs);
  if (ev != DIST_HS_DONE) {
    close(fd);
    return -1;
  }
  return fd;
}

_Atomic long ta_live, ta_fail_after = -1;

/* One armed fault for one thread (ta_fault_arm): a countdown of that thread's allocations. */
static struct {
  _Atomic bool on, fired;
  _Atomic long skip;
  pthread_t th;
  void *bt[24]; /* where it fired */
  int nbt;
} fault;

void ta_fault_print_trace(void) {
  if (fault.fired) backtrace_symbols_fd(fault.bt, fault.nbt, 2);
}

void ta_fault_arm(pthread_t th, long skip) {
  ta_install();
  fault.on = false;
  fault.th = th;
  fault.skip = skip;
  fault.fired = false;
  fault.on = true;
}

void ta_fault_disarm(void) { fault.on = false; }

bool ta_fault_fired(void) { return fault.fired; }

static bool ta_take(void) {
  if (fault.on && pthread_equal(pthread_self(), fault.th) && atomic_fetch_sub(&fault.skip, 1) == 0) {
    fault.on = false;
    fault.nbt = backtrace(fault.bt, 24);
    fault.fired = true;
    return false;
  }
  if (ta_fail_after < 0) return true;
  if (ta_fail_after == 0) return false;
  ta_fail_after--;
  return true;
}
static void *ta_malloc(size_t n) {
  void *p = ta_take() ? malloc(n) : NULL;
  if (p) ta_live++;
  return p;
}
static void *ta_realloc(void *p, size_t n) {
  void *q = ta_take() ? realloc(p, n) : NULL;
  if (q && !p) ta_live++;
  return q;
}
static void *ta_calloc(size_t c, size_t n) {
  void *p = ta_take() ? calloc(c, n) : NULL;
  if (p) ta_live++;
  return p;
}
static void ta_free(void *p) {
  if (p) ta_live--;
  free(p);
}

void ta_install(void) { cn_replace_allocator(ta_malloc, ta_realloc, ta_calloc, ta_free); }

int ta_setup(void **state) {
  (void)state;
  ta_live = 0;
  ta_fail_after = -1;
  return 0;
}

int ta_teardown(void **state) {
  (void)state;
  assert_int_equal(ta_live, 0);
  return 0;
}

cn_atoms *tt_atoms;

int tt_setup(void **state) {
  ta_setup(state);
  return cn_atoms_new(&tt_atoms, 0);
}

int tt_teardown(void **state) {
  cn_atoms_free(tt_atoms);
  tt_atoms = NULL;
  return ta_teardown(state);
}

cn_term *tt_atom(const char *name) { return cn_mk_atom(cn_atoms_get(tt_atoms, name)); }

cn_term *tt_from_hex(const char *hex) {
  uint8_t *b;
  long n = hex_decode(hex, &b);
  assert_true(n > 0);
  uint8_t *g = guard_copy(b, (size_t)n);
  free(b);
  cn_term *t = NULL;
  assert_int_equal(cn_term_from_binary(tt_atoms, g, (size_t)n, NULL, &t), 0);
  guard_free(g, (size_t)n);
  return t;
}

uint16_t test_epmd_port;
static int group_epmd_pid = -1;

int test_epmd_group_setup(void **state) {
  (void)state;
  group_epmd_pid = test_epmd_start(&test_epmd_port);
  return group_epmd_pid > 0 ? 0 : -1;
}

int test_epmd_group_teardown(void **state) {
  (void)state;
  test_epmd_stop(group_epmd_pid);
  group_epmd_pid = -1;
  return 0;
}

cn_term *tt_load_etf(cn_atoms *tab, const char *path) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  long n = ftell(f);
  assert_true(n > 0);
  rewind(f);
  uint8_t *b = malloc((size_t)n);
  assert_non_null(b);
  assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  cn_term *t = NULL;
  assert_int_equal(cn_term_from_binary(tab, b, (size_t)n, NULL, &t), 0);
  free(b);
  return t;
}

static void quiet_started(cn_node *n, int status, void *ctx) {
  (void)n;
  *(int *)ctx = status ? status : 1;
}

int test_node_quiet(cn_node **out, const char *name) {
  cn_node_opts o = {.name = name,
                    .cookie = "c",
                    .log_level = CN_LOG_ERROR,
                    .no_epmd = true,
                    .epmd_port = 1,
                    .listen_addr = "127.0.0.1"};
  int started = 0;
  if (cn_node_new(out, NULL, &o) || cn_node_start(*out, quiet_started, &started)) return -1;
  while (!started) uv_run(cn_node_loop(*out), UV_RUN_ONCE);
  return started == 1 ? 0 : -1;
}

void test_spin(cn_node *n) {
  for (int i = 0; i < 20; i++) uv_run(cn_node_loop(n), UV_RUN_NOWAIT);
}

void test_node_drop(cn_node **n) {
  cn_node_free(*n);
  *n = NULL;
}
