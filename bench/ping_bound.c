/* ping_bound.c: the bound for the ping-pong figure (issue 23). Not a cnode figure: a minimal echo node the BEAM driver
 * pings exactly as it pings bench/ei_node.c and bench/cnode_bench.c (beam_bench's ping: {Self, ping} to `echo`,
 * which answers Self ! ping), with only the way it waits for the next message changed between variants. The
 * handshake is erl_interface's (ei_listen, ei_publish, ei_accept); after it, every variant runs the same frame
 * parsing (4-byte length, 'p', control, message: no atom cache, as ei negotiates none), the same decode (ei_decode_*)
 * and the same reply (one writev of a header and the echoed term), so that what differs is the wake-up:
 *
 *   block   blocking socket: read the 4-byte length, read the body, writev (ei_node's syscalls: read, read, writev)
 *   block1  blocking socket: one read into a 64 KiB buffer, writev (read, writev)
 *   epoll   non-blocking socket, one fd in an epoll set: epoll_wait, one read into a 64 KiB buffer, writev
 *           (libuv's syscalls, and cnode's: epoll_wait, read, write)
 *   uv      the same through libuv and nothing else: uv_tcp_open on the fd, uv_read_start, uv_try_write the reply
 *
 *   ping_bound ALIVE HOST COOKIE VARIANT      (EPMD: $ERL_EPMD_PORT); prints "ready PORT" once published
 *
 * Registered names: echo ({From, T} -> From ! T) and ctl ({From, Ref, os_pid} -> From ! {Ref, OsPid}, which
 * beam_bench's prof mode asks first). Serves one peer (the driver) and exits when it goes. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include "ei.h"

#define BUFSZ 65536

static char inbuf[BUFSZ];
static size_t inlen;
static uv_tcp_t tcp; /* the uv variant */
static int use_uv;

/* Sends Msg (an encoded term without its version byte, mlen bytes) to pid: one writev of header + message. */
static int reply(int fd, const erlang_pid *to, const char *msg, int mlen) {
  char hdr[512];
  int i = 4;
  hdr[i++] = 'p';
  ei_encode_version(hdr, &i);
  ei_encode_tuple_header(hdr, &i, 3);
  ei_encode_long(hdr, &i, 2); /* SEND */
  ei_encode_atom(hdr, &i, "");
  ei_encode_pid(hdr, &i, to);
  ei_encode_version(hdr, &i);
  uint32_t len = htonl((uint32_t)(i - 4 + mlen));
  memcpy(hdr, &len, 4);
  if (use_uv) {
    uv_buf_t b[2] = {uv_buf_init(hdr, (unsigned)i), uv_buf_init((char *)msg, (unsigned)mlen)};
    return uv_try_write((uv_stream_t *)&tcp, b, 2) == i + mlen ? 0 : -1;
  }
  struct iovec v[2] = {{hdr, (size_t)i}, {(void *)msg, (size_t)mlen}};
  return writev(fd, v, 2) == i + mlen ? 0 : -1;
}

/* One frame body (after the length): REG_SEND to echo or ctl; anything else is dropped. */
static int on_frame(int fd, const char *b, int n) {
  int i = 1, ver, arity, ts, te;
  long op;
  char to[MAXATOMLEN_UTF8];
  erlang_pid from, sender;
  if (n < 1 || b[0] != 'p') return 0;
  if (ei_decode_version(b, &i, &ver) < 0 || ei_decode_tuple_header(b, &i, &arity) < 0 || arity != 4 ||
      ei_decode_long(b, &i, &op) < 0 || op != 6 || ei_decode_pid(b, &i, &sender) < 0 || ei_skip_term(b, &i) < 0 ||
      ei_decode_atom(b, &i, to) < 0 || ei_decode_version(b, &i, &ver) < 0 || ei_decode_tuple_header(b, &i, &arity) < 0)
    return 0;
  if (arity == 2 && strcmp(to, "echo") == 0) {
    if (ei_decode_pid(b, &i, &from) < 0) return 0;
    ts = i;
    if (ei_skip_term(b, &i) < 0) return 0;
    te = i;
    return reply(fd, &from, b + ts, te - ts);
  }
  if (arity == 3 && strcmp(to, "ctl") == 0) {
    char m[256];
    int mi = 0;
    if (ei_decode_pid(b, &i, &from) < 0) return 0;
    ts = i;
    if (ei_skip_term(b, &i) < 0) return 0;
    te = i;
    if (te - ts > 200) return 0;
    ei_encode_tuple_header(m, &mi, 2);
    memcpy(m + mi, b + ts, (size_t)(te - ts));
    mi += te - ts;
    ei_encode_long(m, &mi, (long)getpid());
    return reply(fd, &from, m, mi);
  }
  return 0;
}

/* Handles the complete frames in inbuf, keeps a partial one at its start. Returns -1 on a write failure or a
 * frame too large for the buffer. */
static int drain(int fd) {
  size_t off = 0;
  while (inlen - off >= 4) {
    uint32_t len;
    memcpy(&len, inbuf + off, 4);
    len = ntohl(len);
    if (len > BUFSZ - 4) return -1;
    if (inlen - off < 4 + (size_t)len) break;
    if (len == 0) { /* a tick: answered */
      static const char z[4];
      if (use_uv ? uv_try_write((uv_stream_t *)&tcp, &(uv_buf_t){.base = (char *)z, .len = 4}, 1) != 4
                 : write(fd, z, 4) != 4)
        return -1;
    } else if (on_frame(fd, inbuf + off + 4, (int)len) < 0) {
      return -1;
    }
    off += 4 + len;
  }
  memmove(inbuf, inbuf + off, inlen - off);
  inlen -= off;
  return 0;
}

static int full_read(int fd, void *p, size_t n) {
  for (size_t got = 0; got < n;) {
    ssize_t r = read(fd, (char *)p + got, n - got);
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

static int run_block(int fd) {
  for (;;) {
    uint32_t len;
    if (full_read(fd, &len, 4)) return 0;
    len = ntohl(len);
    if (len > BUFSZ) return 1;
    if (len == 0) {
      if (write(fd, &len, 4) != 4) return 0;
      continue;
    }
    if (full_read(fd, inbuf, len) || on_frame(fd, inbuf, (int)len) < 0) return 0;
  }
}

static int run_block1(int fd) {
  for (;;) {
    ssize_t r = read(fd, inbuf + inlen, BUFSZ - inlen);
    if (r <= 0) return 0;
    inlen += (size_t)r;
    if (drain(fd)) return 1;
  }
}

static int run_epoll(int fd) {
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
  if (ep < 0 || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) {
    perror("ping_bound: epoll");
    return 1;
  }
  for (;;) {
    struct epoll_event out[8];
    int n = epoll_wait(ep, out, 8, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return 1;
    if (n == 0) continue;
    ssize_t r = read(fd, inbuf + inlen, BUFSZ - inlen);
    if (r == 0 || (r < 0 && errno != EAGAIN)) return 0;
    if (r < 0) continue;
    inlen += (size_t)r;
    if (drain(fd)) return 1;
  }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)h, (void)hint;
  *b = uv_buf_init(inbuf + inlen, (unsigned)(BUFSZ - inlen));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  (void)b;
  if (n < 0 || (n > 0 && (inlen += (size_t)n, drain(-1)))) {
    uv_read_stop(s);
    uv_close((uv_handle_t *)s, NULL);
  }
}

static int run_uv(int fd) {
  uv_loop_t *loop = uv_default_loop();
  use_uv = 1;
  if (uv_tcp_init(loop, &tcp) || uv_tcp_open(&tcp, fd) || uv_read_start((uv_stream_t *)&tcp, on_alloc, on_read)) {
    fprintf(stderr, "ping_bound: libuv setup failed\n");
    return 1;
  }
  uv_run(loop, UV_RUN_DEFAULT);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: ping_bound ALIVE HOST COOKIE block|block1|epoll|uv\n");
    return 2;
  }
  int (*run)(int) = strcmp(argv[4], "block") == 0    ? run_block
                    : strcmp(argv[4], "block1") == 0 ? run_block1
                    : strcmp(argv[4], "epoll") == 0  ? run_epoll
                    : strcmp(argv[4], "uv") == 0     ? run_uv
                                                     : NULL;
  if (!run) {
    fprintf(stderr, "ping_bound: unknown variant %s\n", argv[4]);
    return 2;
  }
  ei_cnode ec;
  char full[512];
  snprintf(full, sizeof full, "%s@%s", argv[1], argv[2]);
  struct in_addr addr;
  addr.s_addr = htonl(INADDR_LOOPBACK);
  ei_init();
  if (ei_connect_xinit(&ec, argv[2], argv[1], full, &addr, argv[3], 0) < 0) {
    fprintf(stderr, "ping_bound: ei_connect_xinit failed\n");
    return 1;
  }
  int port = 0;
  int lfd = ei_listen(&ec, &port, 5);
  if (lfd < 0 || ei_publish(&ec, port) < 0) {
    fprintf(stderr, "ping_bound: listen/publish failed\n");
    return 1;
  }
  printf("ready %d\n", port);
  fflush(stdout);
  ErlConnect conn;
  int fd = ei_accept(&ec, lfd, &conn);
  if (fd < 0) {
    fprintf(stderr, "ping_bound: accept failed\n");
    return 1;
  }
  return run(fd);
}
