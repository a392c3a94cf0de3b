/* gs_bound.c: the bound for gen_server:call against a C node (issue 23), not a cnode figure. An "ideal responder":
 * a blocking, single-threaded node that does what the workload needs and nothing else. It publishes NAME to EPMD,
 * accepts connections one after another, runs the handshake with the project's pure protocol code (dist/: the
 * same code and the same flags as cnode, DIST_FLAGS_DEFAULT, so the driver BEAM sends what it sends cnode:
 * MONITOR_P, REG_SEND, DEMONITOR_P per call), then loops: one read of all that is there, every complete frame
 * parsed in place (no term is built), ticks answered, MONITOR_P/DEMONITOR_P and unknown messages ignored, and for
 * each REG_SEND to `gs` of {'$gen_call', {Pid, Tag}, Req} the reply {Tag, Req} (bytes copied from the request) to
 * the alias (ALIAS_SEND when Tag is [alias|Ref], as OTP 25's gen:call makes it) or else to Pid (SEND_SENDER);
 * {From, Ref, os_pid} to `ctl` is answered as bench/cnode_bench.c does, for beam_bench's prof mode. The replies of
 * one read go out in one write. Whatever a C gen_server does beyond this, it pays on top; a driver BEAM calling
 * this node costs what the BEAM side of the workload costs at the least.
 *
 *   gs_bound NAME COOKIE [MODE]   MODE: comma-separated, default "read,batch"
 *     read   blocking read(2) on the socket            epoll  epoll_wait(2) then a non-blocking read(2), as libuv
 *     batch  one write(2) per read                      each   one write(2) per reply, at once
 *     turn   (with epoll) after a read, one epoll_wait(0) more before blocking, as libuv's turn with an idle handle
 *     yield  sched_yield(2) after a read's replies are written, before blocking again
 *     sbatch run as SCHED_BATCH (no wake-up preemption: a wake-up waits for the running task's slice or sleep)
 * On SIGTERM/SIGINT or EOF it prints reads, frames, calls and writes per call to stderr. EPMD: ERL_EPMD_PORT. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "dist.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_MIN (64 * 1024)
#define MAX_FRAME (64u << 20)

static volatile sig_atomic_t stop;
static char node_name[DIST_NAME_MAX + 1], cookie[256];
static uint32_t creation;
static bool use_epoll, write_each, extra_turn, do_yield;
static unsigned long long n_reads, n_frames, n_calls, n_writes, n_polls;

static void on_signal(int s) {
  (void)s;
  stop = 1;
}

/* ---- output ----------------------------------------------------------------------------------------------- */

typedef struct {
  uint8_t *p;
  size_t len, cap;
} obuf;

static int ob_room(obuf *b, size_t n) {
  if (b->len + n <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + n) cap *= 2;
  uint8_t *p = realloc(b->p, cap);
  if (!p) return -1;
  b->p = p;
  b->cap = cap;
  return 0;
}
static void ob_put(obuf *b, const void *p, size_t n) {
  memcpy(b->p + b->len, p, n);
  b->len += n;
}
static void ob_u8(obuf *b, uint8_t v) { b->p[b->len++] = v; }
static void ob_u32(obuf *b, uint32_t v) {
  uint32_t be = htonl(v);
  ob_put(b, &be, 4);
}

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) { /* non-blocking socket (epoll mode): wait for room */
      struct epoll_event ev;
      int ep = epoll_create1(0);
      ev.events = EPOLLOUT;
      ev.data.fd = fd;
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
      epoll_wait(ep, &ev, 1, -1);
      close(ep);
      continue;
    }
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  n_writes++;
  return 0;
}

/* ---- a minimal external term format walker ---------------------------------------------------------------- */

static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The offset after the term at off, or 0 when it is malformed, truncated or of a kind this walker skips not. */
static size_t skip(const uint8_t *b, size_t len, size_t off, int depth) {
#define NEED(n)                                                                                                        \
  do {                                                                                                                 \
    if (len - off < (size_t)(n)) return 0;                                                                             \
  } while (0)
  if (depth > 64 || off >= len) return 0;
  uint8_t tag = b[off++];
  size_t n;
  switch (tag) {
  case 97: NEED(1); return off + 1;
  case 98: NEED(4); return off + 4;
  case 70: NEED(8); return off + 8;
  case 106: return off;
  case 115:
  case 119:
    NEED(1);
    n = b[off];
    NEED(1 + n);
    return off + 1 + n;
  case 100:
  case 118:
  case 107:
    NEED(2);
    n = get16(b + off);
    NEED(2 + n);
    return off + 2 + n;
  case 109:
    NEED(4);
    n = get32(b + off);
    NEED(4 + n);
    return off + 4 + n;
  case 77:
    NEED(5);
    n = get32(b + off);
    NEED(5 + n);
    return off + 5 + n;
  case 110:
    NEED(2);
    n = b[off];
    NEED(2 + n);
    return off + 2 + n;
  case 111:
    NEED(5);
    n = get32(b + off);
    NEED(5 + n);
    return off + 5 + n;
  case 88: /* NEW_PID: node, id, serial, creation */
  case 103:
    if (!(off = skip(b, len, off, depth + 1))) return 0;
    NEED(tag == 88 ? 12 : 9);
    return off + (tag == 88 ? 12 : 9);
  case 90: /* NEWER_REFERENCE: len, node, creation, ids */
  case 114: {
    NEED(2);
    size_t ids = get16(b + off);
    if (!(off = skip(b, len, off + 2, depth + 1))) return 0;
    n = (tag == 90 ? 4 : 1) + 4 * ids;
    NEED(n);
    return off + n;
  }
  case 104:
  case 105:
  case 108:
  case 116:
    NEED(tag == 104 ? 1 : 4);
    n = tag == 104 ? b[off] : get32(b + off);
    off += tag == 104 ? 1 : 4;
    if (tag == 116) n *= 2;
    if (tag == 108) n++; /* the tail */
    while (n--)
      if (!(off = skip(b, len, off, depth + 1))) return 0;
    return off;
  default: return 0;
  }
#undef NEED
}

/* True when the term at off is the atom name. */
static bool atom_is(const uint8_t *b, size_t len, size_t off, const char *name) {
  size_t n = strlen(name);
  if (off + 2 > len) return false;
  if (b[off] == 119 || b[off] == 115) return b[off + 1] == n && off + 2 + n <= len && !memcmp(b + off + 2, name, n);
  if ((b[off] == 118 || b[off] == 100) && off + 3 <= len)
    return get16(b + off + 1) == n && off + 3 + n <= len && !memcmp(b + off + 3, name, n);
  return false;
}

/* ---- the node ---------------------------------------------------------------------------------------------- */

typedef struct {
  int fd;
  uint64_t flags;
  uint8_t self[300]; /* our pid, encoded (NEW_PID_EXT) */
  size_t self_len;
  obuf out;
} peer;

/* Starts a frame in out: length placeholder and, with FRAGMENTS agreed, the normal header (131,68,0; no 131 per
 * term), else the pass-through byte (112; 131 before each term). Returns the frame's offset. */
static size_t frame_begin(peer *c) {
  size_t at = c->out.len;
  ob_u32(&c->out, 0);
  if (c->flags & DFLAG_FRAGMENTS) {
    ob_u8(&c->out, 131), ob_u8(&c->out, 68), ob_u8(&c->out, 0);
  } else {
    ob_u8(&c->out, 112), ob_u8(&c->out, 131);
  }
  return at;
}
static void term_sep(peer *c) {
  if (!(c->flags & DFLAG_FRAGMENTS)) ob_u8(&c->out, 131);
}
static void frame_end(peer *c, size_t at) {
  uint32_t be = htonl((uint32_t)(c->out.len - at - 4));
  memcpy(c->out.p + at, &be, 4);
}

/* {SEND_SENDER, Self, To} (or {SEND, '', To} without SEND_SENDER), to: a pid's bytes. */
static void ctl_send(peer *c, const uint8_t *to, size_t tolen) {
  if (c->flags & DFLAG_SEND_SENDER) {
    ob_put(&c->out, (uint8_t[]){104, 3, 97, 22}, 4);
    ob_put(&c->out, c->self, c->self_len);
  } else {
    ob_put(&c->out, (uint8_t[]){104, 3, 97, 2, 119, 0}, 6);
  }
  ob_put(&c->out, to, tolen);
}

/* One REG_SEND's payload b[off..len) to name at b[noff]. */
static int reg_send(peer *c, const uint8_t *b, size_t len, size_t noff, size_t off, bool versioned) {
  if (versioned && (off >= len || b[off++] != 131)) return 0;
  bool gs = atom_is(b, len, noff, "gs");
  if (!gs && !atom_is(b, len, noff, "ctl")) return 0;
  if (off + 2 > len || b[off] != 104 || b[off + 1] != 3) return 0;
  off += 2;
  if (gs) {
    /* {'$gen_call', {Pid, Tag}, Req} */
    if (!atom_is(b, len, off, "$gen_call") || !(off = skip(b, len, off, 0))) return 0;
    if (off + 2 > len || b[off] != 104 || b[off + 1] != 2) return 0;
    size_t pid = off + 2, tag = skip(b, len, pid, 0), req = tag ? skip(b, len, tag, 0) : 0;
    if (!req || req >= len) return 0;
    /* [alias|Ref]: LIST_EXT of length 1, the atom alias, the reference as the tail */
    bool alias =
        len - tag > 5 && !memcmp(b + tag, (uint8_t[]){108, 0, 0, 0, 1}, 5) && atom_is(b, len, tag + 5, "alias");
    size_t ref = alias ? skip(b, len, tag + 5, 0) : 0;
    alias = alias && ref && (b[ref] == 90 || b[ref] == 114) && (c->flags & DFLAG_ALIAS);
    if (ob_room(&c->out, 64 + c->self_len + (req - pid) + (len - req))) return -1;
    size_t at = frame_begin(c);
    if (alias) {
      ob_put(&c->out, (uint8_t[]){104, 3, 97, 33}, 4);
      ob_put(&c->out, c->self, c->self_len);
      ob_put(&c->out, b + ref, req - ref);
    } else {
      ctl_send(c, b + pid, tag - pid);
    }
    term_sep(c);
    ob_put(&c->out, (uint8_t[]){104, 2}, 2);
    ob_put(&c->out, b + tag, len - tag); /* Tag, Req */
    frame_end(c, at);
    n_calls++;
  } else {
    /* {From, Ref, os_pid} */
    size_t ref = skip(b, len, off, 0), cmd = ref ? skip(b, len, ref, 0) : 0;
    if (!cmd || !atom_is(b, len, cmd, "os_pid")) return 0;
    if (ob_room(&c->out, 64 + c->self_len + (cmd - off))) return -1;
    size_t at = frame_begin(c);
    ctl_send(c, b + off, ref - off);
    term_sep(c);
    ob_put(&c->out, (uint8_t[]){104, 2}, 2);
    ob_put(&c->out, b + ref, cmd - ref);
    ob_u8(&c->out, 98);
    ob_u32(&c->out, (uint32_t)getpid());
    frame_end(c, at);
  }
  if (write_each && c->out.len) {
    if (write_all(c->fd, c->out.p, c->out.len)) return -1;
    c->out.len = 0;
  }
  return 0;
}

/* One non-empty frame: 0, or -1 to drop the connection. */
static int on_frame(peer *c, const uint8_t *d, size_t dlen) {
  dist_msg_hdr h;
  if (dist_msg_hdr_parse(d, dlen, &h)) return -1;
  if (h.kind != DIST_MSG_PASS && h.kind != DIST_MSG_NORMAL) return 0; /* fragments: never for this workload */
  const uint8_t *b = d + h.body_off;
  size_t len = dlen - h.body_off, off = 0;
  if (h.versioned && (len < 1 || b[off++] != 131)) return -1;
  /* the control tuple: {Op, ...} with Op a small integer */
  if (len - off < 4 || b[off] != 104 || b[off + 2] != 97) return 0;
  size_t arity = b[off + 1], end = skip(b, len, off, 0);
  if (!end) return -1;
  if (b[off + 3] != 6 || arity != 4) return 0; /* only REG_SEND {6, From, '', Name} */
  size_t noff = skip(b, len, off + 4, 0);      /* From */
  noff = noff ? skip(b, len, noff, 0) : 0;     /* Unused */
  if (!noff) return -1;
  return reg_send(c, b, len, noff, end, h.versioned);
}

static int serve(peer *c) {
  static uint8_t *in;
  static size_t cap;
  size_t have = 0;
  int ep = -1;
  if (use_epoll) {
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = c->fd};
    ep = epoll_create1(0);
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev)) return -1;
  }
  /* The handshake, acceptor side. */
  dist_hs hs;
  dist_hs_cfg cfg = {.role = DIST_HS_ACCEPTOR,
                     .flags = DIST_FLAGS_DEFAULT,
                     .required_flags = DIST_FLAGS_MANDATORY_25,
                     .peer_version = 6};
  cfg.name = node_name;
  cfg.cookie = cookie;
  cfg.creation = creation;
  while (!cfg.challenge)
    if (getrandom(&cfg.challenge, sizeof cfg.challenge, 0) != sizeof cfg.challenge) return -1;
  if (dist_hs_init(&hs, &cfg)) return -1;
  int rc = -1;
  bool up = false;
  while (!stop) {
    if (cap - have < READ_MIN) {
      uint8_t *p = realloc(in, cap = have + 4 * READ_MIN);
      if (!p) break;
      in = p;
    }
    if (use_epoll) {
      struct epoll_event ev;
      n_polls++;
      if (epoll_wait(ep, &ev, 1, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
    }
    ssize_t r = read(c->fd, in + have, cap - have);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r <= 0) {
      rc = 0;
      break;
    }
    n_reads++;
    have += (size_t)r;
    size_t off = 0;
    if (!up) {
      for (;;) {
        size_t used = 0;
        int ev = dist_hs_feed(&hs, in + off, have - off, &used);
        off += used;
        if (ev == DIST_HS_NAME && dist_hs_accept_status(&hs, "ok")) ev = -1;
        if (hs.out.len && write_all(c->fd, hs.out.data, hs.out.len)) ev = -1;
        hs.out.len = 0;
        if (ev < 0) {
          fprintf(stderr, "gs_bound: handshake: %s\n", hs.reason ? hs.reason : "failed");
          goto out;
        }
        if (ev == DIST_HS_DONE) {
          up = true;
          c->flags = hs.flags;
          break;
        }
        if (ev == DIST_HS_MORE) break;
      }
    }
    bool tick = false;
    while (up) {
      const uint8_t *d;
      size_t dlen;
      ssize_t f = dist_frame_parse(in + off, have - off, MAX_FRAME, &d, &dlen);
      if (f < 0) goto out;
      if (f == 0) break;
      off += (size_t)f;
      n_frames++;
      if (dlen == 0) tick = true;
      else if (on_frame(c, d, dlen)) goto out;
    }
    if (tick && !ob_room(&c->out, 4)) ob_u32(&c->out, 0);
    if (c->out.len) {
      if (write_all(c->fd, c->out.p, c->out.len)) goto out;
      c->out.len = 0;
    }
    memmove(in, in + off, have - off);
    have -= off;
    if (do_yield) sched_yield();
    if (extra_turn) { /* libuv's turn with an idle handle: epoll_wait(0) */
      struct epoll_event ev;
      n_polls++;
      epoll_wait(ep, &ev, 1, 0);
    }
  }
out:
  dist_hs_free(&hs);
  if (ep >= 0) close(ep);
  return rc;
}

/* ---- EPMD and main ----------------------------------------------------------------------------------------- */

/* ALIVE2_REQ for alive on port; the connection stays open while we live. Returns its fd, or -1. */
static int epmd_publish(const char *alive, int port) {
  const char *ep = getenv("ERL_EPMD_PORT");
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)(ep ? atoi(ep) : 4369)),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) return -1;
  size_t n = strlen(alive);
  uint8_t m[600];
  size_t l = 0;
  m[l++] = 0, m[l++] = 0; /* length, below */
  m[l++] = 120;
  m[l++] = (uint8_t)(port >> 8), m[l++] = (uint8_t)port;
  m[l++] = 77, m[l++] = 0; /* normal node, TCP */
  m[l++] = 0, m[l++] = 6;  /* highest version */
  m[l++] = 0, m[l++] = 5;  /* lowest version */
  m[l++] = (uint8_t)(n >> 8), m[l++] = (uint8_t)n;
  memcpy(m + l, alive, n);
  l += n;
  m[l++] = 0, m[l++] = 0; /* no extra */
  m[0] = (uint8_t)((l - 2) >> 8), m[1] = (uint8_t)(l - 2);
  uint8_t r[6];
  size_t got = 0;
  if (write(fd, m, l) != (ssize_t)l) return -1;
  while (got < 4) {
    ssize_t k = read(fd, r + got, sizeof r - got);
    if (k <= 0) return -1;
    got += (size_t)k;
  }
  if (r[1] != 0) return -1;
  if (r[0] == 118) {
    while (got < 6) {
      ssize_t k = read(fd, r + got, sizeof r - got);
      if (k <= 0) return -1;
      got += (size_t)k;
    }
    creation = get32(r + 2);
  } else if (r[0] == 121) {
    creation = get16(r + 2);
  } else {
    return -1;
  }
  return fd;
}

int main(int argc, char **argv) {
  if (argc < 3 || strlen(argv[1]) > DIST_NAME_MAX || strlen(argv[2]) >= sizeof cookie || !strchr(argv[1], '@')) {
    fprintf(stderr, "usage: gs_bound NAME@HOST COOKIE [read|epoll[,turn]][,batch|each][,yield][,sbatch]\n");
    return 2;
  }
  const char *mode = argc > 3 ? argv[3] : "read,batch";
  use_epoll = strstr(mode, "epoll") != NULL;
  write_each = strstr(mode, "each") != NULL;
  extra_turn = use_epoll && strstr(mode, "turn") != NULL;
  do_yield = strstr(mode, "yield") != NULL;
  if (strstr(mode, "sbatch")) {
    struct sched_param sp = {0};
    if (sched_setscheduler(0, SCHED_BATCH, &sp)) perror("gs_bound: SCHED_BATCH");
  }
  strcpy(node_name, argv[1]);
  strcpy(cookie, argv[2]);
  struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: a blocking read returns EINTR */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 4) ||
      getsockname(ls, (struct sockaddr *)&a, &al)) {
    perror("gs_bound: listen");
    return 1;
  }
  char alive[DIST_NAME_MAX + 1];
  strcpy(alive, node_name);
  *strchr(alive, '@') = 0;
  int epmd = epmd_publish(alive, ntohs(a.sin_port));
  if (epmd < 0) {
    fprintf(stderr, "gs_bound: EPMD registration failed\n");
    return 1;
  }
  peer c = {0};
  /* our pid <N.1.0>: NEW_PID_EXT, node atom, id 1, serial 0, creation */
  size_t nl = strlen(node_name);
  c.self[0] = 88;
  c.self[1] = 118;
  c.self[2] = (uint8_t)(nl >> 8), c.self[3] = (uint8_t)nl;
  memcpy(c.self + 4, node_name, nl);
  uint8_t tail[12] = {0, 0, 0, 1, 0, 0, 0, 0};
  uint32_t cr = htonl(creation);
  memcpy(tail + 8, &cr, 4);
  memcpy(c.self + 4 + nl, tail, 12);
  c.self_len = 16 + nl;
  printf("gs_bound %s mode %s\n", node_name, mode);
  fflush(stdout);
  while (!stop) {
    int fd = accept(ls, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR) continue;
      break;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (use_epoll) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    c.fd = fd;
    c.flags = 0;
    serve(&c);
    close(fd);
  }
  double calls = n_calls ? (double)n_calls : 1;
  fprintf(stderr,
          "gs_bound: %llu calls, %llu frames, per call: %.3f reads, %.3f writes, %.3f epoll_waits, %.2f frames\n",
          n_calls, n_frames, (double)n_reads / calls, (double)n_writes / calls, (double)n_polls / calls,
          (double)n_frames / calls);
  free(c.out.p);
  close(epmd);
  close(ls);
  return 0;
}
