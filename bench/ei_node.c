/* ei_node.c: the baseline of bench/dist.sh: a C node as a C programmer writes one today with erl_interface's
 * blocking API (ei_listen + ei_publish + ei_accept, ei_xreceive_msg, ei_send), one thread, one peer.
 *
 *   ei_node ALIVE HOST COOKIE      e.g. ei_node e 127.0.0.1 secret   (EPMD: $ERL_EPMD_PORT)
 *
 * It speaks the protocol of bench/cnode_bench.c (sink, echo, gs, ctl; see there). Having no processes, its
 * `send` command sends from one loop whatever the number of senders asked for. It serves the first peer that
 * connects and exits when that peer goes. Prints "ready" on stdout once published. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ei.h"

static long sink_count;

/* Extent [*start, *end) of the term at *idx (moves *idx past it). */
static int span(const char *buf, int *idx, int *start, int *end) {
  *start = *idx;
  if (ei_skip_term(buf, idx) < 0) return -1;
  *end = *idx;
  return 0;
}

/* Sends {Raw1, Raw2} (two already-encoded terms) to pid. */
static void send_pair(int fd, erlang_pid *to, const char *a, int alen, const char *b, int blen) {
  ei_x_buff x;
  ei_x_new_with_version(&x);
  ei_x_encode_tuple_header(&x, 2);
  ei_x_append_buf(&x, a, alen);
  ei_x_append_buf(&x, b, blen);
  ei_send(fd, to, x.buff, x.index);
  ei_x_free(&x);
}

static void on_sink(int fd, const char *buf, int idx) {
  int arity, ver;
  char atom[MAXATOMLEN_UTF8];
  if (ei_decode_version(buf, &idx, &ver) < 0) idx = 0;
  if (ei_decode_tuple_header(buf, &idx, &arity) < 0 || arity != 3 || ei_decode_atom(buf, &idx, atom) < 0) return;
  if (strcmp(atom, "seq") == 0) {
    long n;
    if (ei_decode_long(buf, &idx, &n) == 0 && ei_skip_term(buf, &idx) == 0) sink_count++;
  } else if (strcmp(atom, "done") == 0) {
    erlang_pid from;
    int rs, re;
    if (ei_decode_pid(buf, &idx, &from) < 0 || span(buf, &idx, &rs, &re) < 0) return;
    char cnt[16];
    int ci = 0;
    ei_encode_long(cnt, &ci, sink_count);
    send_pair(fd, &from, buf + rs, re - rs, cnt, ci);
  }
}

static void on_echo(int fd, const char *buf, int idx) {
  int arity, ver, ts, te;
  erlang_pid from;
  if (ei_decode_version(buf, &idx, &ver) < 0) idx = 0;
  if (ei_decode_tuple_header(buf, &idx, &arity) < 0 || arity != 2 || ei_decode_pid(buf, &idx, &from) < 0 ||
      span(buf, &idx, &ts, &te) < 0)
    return;
  ei_x_buff x;
  ei_x_new_with_version(&x);
  ei_x_append_buf(&x, buf + ts, te - ts);
  ei_send(fd, &from, x.buff, x.index);
  ei_x_free(&x);
}

/* {'$gen_call', {Pid, Tag}, Request} -> Pid ! {Tag, Request} (gen_server:call also accepts the reply at its
 * pid, not only at the alias in Tag). */
static void on_gs(int fd, const char *buf, int idx) {
  int arity, ver, ts, te, rs, re;
  char atom[MAXATOMLEN_UTF8];
  erlang_pid from;
  if (ei_decode_version(buf, &idx, &ver) < 0) idx = 0;
  if (ei_decode_tuple_header(buf, &idx, &arity) < 0 || arity != 3 || ei_decode_atom(buf, &idx, atom) < 0 ||
      strcmp(atom, "$gen_call") != 0 || ei_decode_tuple_header(buf, &idx, &arity) < 0 || arity != 2 ||
      ei_decode_pid(buf, &idx, &from) < 0 || span(buf, &idx, &ts, &te) < 0 || span(buf, &idx, &rs, &re) < 0)
    return;
  send_pair(fd, &from, buf + ts, te - ts, buf + rs, re - rs);
}

static void on_ctl(int fd, const char *buf, int idx) {
  int arity, ver, rs, re;
  erlang_pid from;
  char atom[MAXATOMLEN_UTF8];
  if (ei_decode_version(buf, &idx, &ver) < 0) idx = 0;
  if (ei_decode_tuple_header(buf, &idx, &arity) < 0 || arity != 3 || ei_decode_pid(buf, &idx, &from) < 0 ||
      span(buf, &idx, &rs, &re) < 0)
    return;
  int cmd = idx;
  if (ei_decode_atom(buf, &cmd, atom) == 0 && strcmp(atom, "os_pid") == 0) {
    char v[16];
    int vi = 0;
    ei_encode_long(v, &vi, (long)getpid());
    send_pair(fd, &from, buf + rs, re - rs, v, vi);
    return;
  }
  erlang_pid dest;
  long count, size, nsend;
  if (ei_decode_tuple_header(buf, &idx, &arity) < 0 || arity != 5 || ei_decode_atom(buf, &idx, atom) < 0 ||
      strcmp(atom, "send") != 0 || ei_decode_pid(buf, &idx, &dest) < 0 || ei_decode_long(buf, &idx, &count) < 0 ||
      ei_decode_long(buf, &idx, &size) < 0 || ei_decode_long(buf, &idx, &nsend) < 0)
    return; /* only pid destinations: the driver's sink */
  char *payload = calloc(1, (size_t)size + 1);
  if (!payload) return;
  memset(payload, 'x', (size_t)size);
  ei_x_buff x;
  ei_x_new(&x);
  for (long i = 0; i < count; i++) {
    x.index = 0;
    ei_x_encode_version(&x);
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_atom(&x, "seq");
    ei_x_encode_long(&x, i);
    ei_x_encode_binary(&x, payload, (int)size);
    if (ei_send(fd, &dest, x.buff, x.index) < 0) break;
  }
  /* {done, From, Ref} from each "sender", as the other implementations do */
  for (long k = 0; k < (nsend < 1 ? 1 : nsend); k++) {
    x.index = 0;
    ei_x_encode_version(&x);
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_atom(&x, "done");
    ei_x_encode_pid(&x, &from);
    ei_x_append_buf(&x, buf + rs, re - rs);
    ei_send(fd, &dest, x.buff, x.index);
  }
  ei_x_free(&x);
  free(payload);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: ei_node ALIVE HOST COOKIE\n");
    return 2;
  }
  char full[512];
  snprintf(full, sizeof full, "%s@%s", argv[1], argv[2]);
  ei_cnode ec;
  struct in_addr addr;
  addr.s_addr = htonl(INADDR_LOOPBACK);
  ei_init();
  if (ei_connect_xinit(&ec, argv[2], argv[1], full, &addr, argv[3], 0) < 0) {
    fprintf(stderr, "ei_node: ei_connect_xinit failed\n");
    return 1;
  }
  int port = 0;
  int lfd = ei_listen(&ec, &port, 5);
  if (lfd < 0 || ei_publish(&ec, port) < 0) {
    fprintf(stderr, "ei_node: listen/publish failed\n");
    return 1;
  }
  printf("ready %d\n", port);
  fflush(stdout);
  ErlConnect conn;
  int fd = ei_accept(&ec, lfd, &conn);
  if (fd < 0) {
    fprintf(stderr, "ei_node: accept failed\n");
    return 1;
  }
  ei_x_buff x;
  ei_x_new(&x);
  for (;;) {
    erlang_msg msg;
    x.index = 0;
    int rc = ei_xreceive_msg(fd, &msg, &x);
    if (rc == ERL_TICK) continue;
    if (rc == ERL_ERROR) break;
    if (msg.msgtype != ERL_REG_SEND) continue;
    if (strcmp(msg.toname, "sink") == 0) on_sink(fd, x.buff, 0);
    else if (strcmp(msg.toname, "echo") == 0) on_echo(fd, x.buff, 0);
    else if (strcmp(msg.toname, "gs") == 0) on_gs(fd, x.buff, 0);
    else if (strcmp(msg.toname, "ctl") == 0) on_ctl(fd, x.buff, 0);
  }
  ei_x_free(&x);
  return 0;
}
