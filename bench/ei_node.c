/* ei_node.c: the baseline of bench/dist.sh: a C node as a C programmer writes one today with erl_interface's
 * blocking API (ei_listen + ei_publish + ei_accept, ei_connect, ei_xreceive_msg, ei_send, ei_reg_send).
 *
 *   ei_node ALIVE HOST COOKIE [single]     e.g. ei_node e 127.0.0.1 secret single   (EPMD: $ERL_EPMD_PORT)
 *
 * `single` (the node bench/dist.sh measures against the BEAM driver, and the e2e sender): one thread serving only
 * the driver, the classic one-peer node; without it (the e2e receiver, which two peers reach) a thread per
 * accepted connection.
 *
 * It speaks the protocol of bench/cnode_bench.c (sink, echo, gs, ctl; see there), ctl's `send` and `ping`
 * commands included, so that two ei nodes can be measured against each other (bench/dist.sh's *_e2e rows) as
 * two cnode nodes are (*_c2c). The shape is the classic blocking server: the main thread accepts, and each
 * accepted connection gets a thread that reads it with ei_xreceive_msg (one `read` for the length, one or two
 * for the body: the same receive path as a one-peer node). A reply goes to the node of the pid it is for, over
 * the connection to that node (a node-name -> fd table of accepted and connected peers; one write lock per
 * connection, as several threads may answer over it), not back over the connection the request came in on.
 * A connection this node opens (ei_connect, once per node, kept) has no reader thread: only the command that
 * uses it reads it (`ping` waits for its echoes there), as blocking code does. Having no processes, `send` sends
 * from one loop, one ei_send / ei_reg_send per message, whatever the number of senders asked for. The node
 * exits when its first peer (the driver, which connects before asking anything) goes. Prints "ready PORT" on
 * stdout once published. */
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ei.h"

#define MAXPEERS 64

typedef struct peer {
  char node[MAXNODELEN + 1];
  int fd;                /* -1: gone */
  int reader;            /* an accepted connection, read by its own thread */
  pthread_mutex_t wlock; /* held around every send on fd */
} peer;

static ei_cnode ec;
static peer peers[MAXPEERS];
static int npeers;
static pthread_mutex_t peers_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_long sink_count;

static peer *peer_add(const char *node, int fd, int reader) {
  peer *p = NULL;
  pthread_mutex_lock(&peers_lock);
  for (int i = 0; i < npeers && !p; i++)
    if (peers[i].fd < 0) p = &peers[i]; /* reuse a slot whose connection went */
  if (!p && npeers < MAXPEERS) {
    p = &peers[npeers++];
    pthread_mutex_init(&p->wlock, NULL);
  }
  if (p) {
    snprintf(p->node, sizeof p->node, "%s", node);
    p->fd = fd;
    p->reader = reader;
  }
  pthread_mutex_unlock(&peers_lock);
  return p;
}

/* The connection to node: the one it opened to us or we opened to it, else a new one (ei_connect). */
static peer *peer_get(const char *node) {
  pthread_mutex_lock(&peers_lock);
  for (int i = 0; i < npeers; i++) {
    if (peers[i].fd >= 0 && strcmp(peers[i].node, node) == 0) {
      pthread_mutex_unlock(&peers_lock);
      return &peers[i];
    }
  }
  pthread_mutex_unlock(&peers_lock);
  int fd = ei_connect(&ec, (char *)node);
  if (fd < 0) {
    fprintf(stderr, "ei_node: ei_connect %s failed\n", node);
    return NULL;
  }
  peer *p = peer_add(node, fd, 0);
  if (!p) close(fd);
  return p;
}

static void send_pid(const erlang_pid *to, const char *buf, int len) {
  peer *p = peer_get(to->node);
  if (!p) return;
  pthread_mutex_lock(&p->wlock);
  ei_send(p->fd, (erlang_pid *)to, (char *)buf, len);
  pthread_mutex_unlock(&p->wlock);
}

static int send_name(peer *p, const char *name, const char *buf, int len) {
  pthread_mutex_lock(&p->wlock);
  int rc = ei_reg_send(&ec, p->fd, (char *)name, (char *)buf, len);
  pthread_mutex_unlock(&p->wlock);
  return rc;
}

/* Extent [*start, *end) of the term at *idx (moves *idx past it). */
static int span(const char *buf, int *idx, int *start, int *end) {
  *start = *idx;
  if (ei_skip_term(buf, idx) < 0) return -1;
  *end = *idx;
  return 0;
}

/* Sends {Raw1, Raw2} (two already-encoded terms) to pid. */
static void send_pair(const erlang_pid *to, const char *a, int alen, const char *b, int blen) {
  ei_x_buff x;
  ei_x_new_with_version(&x);
  ei_x_encode_tuple_header(&x, 2);
  ei_x_append_buf(&x, a, alen);
  ei_x_append_buf(&x, b, blen);
  send_pid(to, x.buff, x.index);
  ei_x_free(&x);
}

/* A destination: a pid, or {Name, Node} (a registered name on Node). */
typedef struct dest {
  int named;
  erlang_pid pid;
  char name[MAXATOMLEN_UTF8];
  char node[MAXATOMLEN_UTF8];
} dest;

static int decode_dest(const char *buf, int *idx, dest *d) {
  int arity, i = *idx;
  d->named = 0;
  if (ei_decode_pid(buf, &i, &d->pid) == 0) {
    *idx = i;
    return 0;
  }
  i = *idx;
  if (ei_decode_tuple_header(buf, &i, &arity) < 0 || arity != 2 || ei_decode_atom(buf, &i, d->name) < 0 ||
      ei_decode_atom(buf, &i, d->node) < 0)
    return -1;
  d->named = 1;
  *idx = i;
  return 0;
}

static void on_sink(const char *buf, int idx) {
  int arity, ver;
  char atom[MAXATOMLEN_UTF8];
  if (ei_decode_version(buf, &idx, &ver) < 0) idx = 0;
  if (ei_decode_tuple_header(buf, &idx, &arity) < 0 || arity != 3 || ei_decode_atom(buf, &idx, atom) < 0) return;
  if (strcmp(atom, "seq") == 0) {
    long n;
    if (ei_decode_long(buf, &idx, &n) == 0 && ei_skip_term(buf, &idx) == 0)
      atomic_fetch_add_explicit(&sink_count, 1, memory_order_relaxed);
  } else if (strcmp(atom, "done") == 0) {
    erlang_pid from;
    int rs, re;
    if (ei_decode_pid(buf, &idx, &from) < 0 || span(buf, &idx, &rs, &re) < 0) return;
    char cnt[16];
    int ci = 0;
    ei_encode_long(cnt, &ci, atomic_load(&sink_count));
    send_pair(&from, buf + rs, re - rs, cnt, ci); /* to From's node, whichever connection the done came on */
  }
}

static void on_echo(const char *buf, int idx) {
  int arity, ver, ts, te;
  erlang_pid from;
  if (ei_decode_version(buf, &idx, &ver) < 0) idx = 0;
  if (ei_decode_tuple_header(buf, &idx, &arity) < 0 || arity != 2 || ei_decode_pid(buf, &idx, &from) < 0 ||
      span(buf, &idx, &ts, &te) < 0)
    return;
  ei_x_buff x;
  ei_x_new_with_version(&x);
  ei_x_append_buf(&x, buf + ts, te - ts);
  send_pid(&from, x.buff, x.index);
  ei_x_free(&x);
}

/* {'$gen_call', {Pid, Tag}, Request} -> Pid ! {Tag, Request} (gen_server:call also accepts the reply at its
 * pid, not only at the alias in Tag). */
static void on_gs(const char *buf, int idx) {
  int arity, ver, ts, te, rs, re;
  char atom[MAXATOMLEN_UTF8];
  erlang_pid from;
  if (ei_decode_version(buf, &idx, &ver) < 0) idx = 0;
  if (ei_decode_tuple_header(buf, &idx, &arity) < 0 || arity != 3 || ei_decode_atom(buf, &idx, atom) < 0 ||
      strcmp(atom, "$gen_call") != 0 || ei_decode_tuple_header(buf, &idx, &arity) < 0 || arity != 2 ||
      ei_decode_pid(buf, &idx, &from) < 0 || span(buf, &idx, &ts, &te) < 0 || span(buf, &idx, &rs, &re) < 0)
    return;
  send_pair(&from, buf + ts, te - ts, buf + rs, re - rs);
}

/* {send, Dest, Count, Size, Senders}: Count x {seq, I, <<Size bytes>>} to Dest, then Senders x {done, From, Ref}. */
static void ctl_send(const erlang_pid *from, const char *ref, int reflen, const dest *d, long count, long size,
                     long nsend) {
  peer *p = peer_get(d->named ? d->node : d->pid.node);
  if (!p) return;
  char *payload = calloc(1, (size_t)size + 1);
  if (!payload) return;
  memset(payload, 'x', (size_t)size);
  ei_x_buff x;
  ei_x_new(&x);
  pthread_mutex_lock(&p->wlock); /* the connection is ours until the last done */
  for (long i = 0; i < count; i++) {
    x.index = 0;
    ei_x_encode_version(&x);
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_atom(&x, "seq");
    ei_x_encode_long(&x, i);
    ei_x_encode_binary(&x, payload, (int)size);
    int rc = d->named ? ei_reg_send(&ec, p->fd, (char *)d->name, x.buff, x.index)
                      : ei_send(p->fd, (erlang_pid *)&d->pid, x.buff, x.index);
    if (rc < 0) break;
  }
  /* {done, From, Ref} from each "sender", as the other implementations do */
  for (long k = 0; k < (nsend < 1 ? 1 : nsend); k++) {
    x.index = 0;
    ei_x_encode_version(&x);
    ei_x_encode_tuple_header(&x, 3);
    ei_x_encode_atom(&x, "done");
    ei_x_encode_pid(&x, from);
    ei_x_append_buf(&x, ref, reflen);
    if (d->named) ei_reg_send(&ec, p->fd, (char *)d->name, x.buff, x.index);
    else ei_send(p->fd, (erlang_pid *)&d->pid, x.buff, x.index);
  }
  pthread_mutex_unlock(&p->wlock);
  ei_x_free(&x);
  free(payload);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* {ping, {Name, Node}, Count}: Count round trips {Self, ping} -> Name on Node, each waiting for the echo on the
 * connection this node opened to Node; From ! {Ref, {P50ns, P99ns, P999ns, TotalNs}}. */
static void ctl_ping(const erlang_pid *from, const char *ref, int reflen, const dest *d, long count) {
  peer *p = d->named && count > 0 ? peer_get(d->node) : NULL;
  char res[64];
  int ri = 0;
  if (!p || p->reader) { /* a connection the peer opened is read by its own thread: not ours to wait on */
    ei_encode_atom(res, &ri, "error");
    send_pair(from, ref, reflen, res, ri);
    return;
  }
  uint64_t *samples = calloc((size_t)count, sizeof *samples);
  if (!samples) return;
  ei_x_buff ping, in;
  ei_x_new_with_version(&ping);
  ei_x_encode_tuple_header(&ping, 2);
  ei_x_encode_pid(&ping, ei_self(&ec));
  ei_x_encode_atom(&ping, "ping");
  ei_x_new(&in);
  long done = 0;
  uint64_t start = now_ns();
  while (done < count) {
    uint64_t t0 = now_ns();
    if (send_name(p, d->name, ping.buff, ping.index) < 0) break;
    erlang_msg msg;
    int rc;
    do {
      in.index = 0;
      rc = ei_xreceive_msg(p->fd, &msg, &in);
    } while (rc == ERL_TICK || (rc == ERL_MSG && msg.msgtype != ERL_SEND));
    if (rc == ERL_ERROR) break;
    samples[done++] = now_ns() - t0;
  }
  uint64_t total = now_ns() - start;
  if (done == count) {
    qsort(samples, (size_t)count, sizeof *samples, cmp_u64);
    size_t n = (size_t)count;
    ei_encode_tuple_header(res, &ri, 4);
    ei_encode_longlong(res, &ri, (long long)samples[n / 2]);
    ei_encode_longlong(res, &ri, (long long)samples[n * 99 / 100]);
    ei_encode_longlong(res, &ri, (long long)samples[n * 999 / 1000]);
    ei_encode_longlong(res, &ri, (long long)total);
  } else {
    ei_encode_atom(res, &ri, "error");
  }
  send_pair(from, ref, reflen, res, ri);
  ei_x_free(&ping);
  ei_x_free(&in);
  free(samples);
}

static void on_ctl(const char *buf, int idx) {
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
    send_pair(&from, buf + rs, re - rs, v, vi);
    return;
  }
  dest d;
  long count, size, nsend;
  if (ei_decode_tuple_header(buf, &idx, &arity) < 0 || ei_decode_atom(buf, &idx, atom) < 0) return;
  if (arity == 5 && strcmp(atom, "send") == 0 && decode_dest(buf, &idx, &d) == 0 &&
      ei_decode_long(buf, &idx, &count) == 0 && ei_decode_long(buf, &idx, &size) == 0 &&
      ei_decode_long(buf, &idx, &nsend) == 0)
    ctl_send(&from, buf + rs, re - rs, &d, count, size, nsend);
  else if (arity == 3 && strcmp(atom, "ping") == 0 && decode_dest(buf, &idx, &d) == 0 &&
           ei_decode_long(buf, &idx, &count) == 0)
    ctl_ping(&from, buf + rs, re - rs, &d, count);
}

typedef struct reader_arg {
  peer *p;
  int first;
} reader_arg;

/* One accepted connection: receive, dispatch by registered name, until it goes. */
static void *reader(void *arg) {
  reader_arg a = *(reader_arg *)arg;
  free(arg);
  int fd = a.p->fd;
  ei_x_buff x;
  ei_x_new(&x);
  for (;;) {
    erlang_msg msg;
    x.index = 0;
    int rc = ei_xreceive_msg(fd, &msg, &x);
    if (rc == ERL_TICK) continue;
    if (rc == ERL_ERROR) break;
    if (msg.msgtype != ERL_REG_SEND) continue;
    if (strcmp(msg.toname, "sink") == 0) on_sink(x.buff, 0);
    else if (strcmp(msg.toname, "echo") == 0) on_echo(x.buff, 0);
    else if (strcmp(msg.toname, "gs") == 0) on_gs(x.buff, 0);
    else if (strcmp(msg.toname, "ctl") == 0) on_ctl(x.buff, 0);
  }
  ei_x_free(&x);
  if (a.first) exit(0); /* the driver went */
  pthread_mutex_lock(&peers_lock);
  a.p->fd = -1;
  pthread_mutex_unlock(&peers_lock);
  pthread_mutex_lock(&a.p->wlock); /* no send in progress on fd */
  close(fd);
  pthread_mutex_unlock(&a.p->wlock);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: ei_node ALIVE HOST COOKIE [single]\n");
    return 2;
  }
  /* single: one thread serving only the first peer (the driver), as the classic blocking ei node; a second
   * thread alone makes every socket call dearer (the kernel then counts file references: ~8% per message). */
  bool single = argc > 4 && strcmp(argv[4], "single") == 0;
  char full[512];
  snprintf(full, sizeof full, "%s@%s", argv[1], argv[2]);
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
  for (int first = 1;; first = 0) {
    ErlConnect conn;
    int fd = ei_accept(&ec, lfd, &conn);
    if (fd < 0) {
      fprintf(stderr, "ei_node: accept failed\n");
      if (first) return 1;
      continue;
    }
    reader_arg *a = malloc(sizeof *a);
    pthread_t t;
    if (!a || !(a->p = peer_add(conn.nodename, fd, 1))) {
      free(a);
      close(fd);
      continue;
    }
    a->first = first;
    if (single) reader(a); /* serves the driver in this thread until it goes, then exits */
    if (pthread_create(&t, NULL, reader, a) != 0) {
      fprintf(stderr, "ei_node: pthread_create failed\n");
      return 1;
    }
    pthread_detach(t);
  }
}
