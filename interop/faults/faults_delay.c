/* faults_delay: the fault harness's packet delayer (interop/faults/). This kernel has no netem
 * (CONFIG_NET_SCH_NETEM is not set), so delay, jitter and reordering are made in user space: the harness sends a
 * namespace's packets to an NFQUEUE queue (iptables-nft -j NFQUEUE: nft's own `queue` needs CONFIG_NFT_QUEUE,
 * which is not set either) and this program holds each one for DELAY +- JITTER ms before accepting it.
 *
 *   faults_delay --queue N --delay MS [--jitter MS] [--fifo] [--seed S]
 *
 * Each packet's hold is DELAY plus a uniform draw in [-JITTER, +JITTER] (never below 0), so packets overtake
 * each other when the jitter exceeds their spacing, as netem's do; --fifo keeps the order (a packet is never
 * released before one that came earlier). Verdicts go out by packet id, in due order. Only metadata is copied
 * from the kernel (the payload is never touched) and GSO packets come whole. On SIGTERM/SIGINT every held packet
 * is accepted, the queue unbound, and one line of figures printed. Prints `faults_delay: queue N ready` once
 * bound, so the harness adds its rule only after that. */
#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

typedef struct {
  uint64_t due_us;
  uint64_t seq; /* arrival order: ties keep it */
  uint32_t id;
} held;

typedef struct {
  held *v;
  size_t n, cap;
} heap;

typedef struct {
  struct mnl_socket *nl;
  uint32_t queue;
  uint64_t delay_us, jitter_us, last_due, seq, rng;
  int fifo;
  heap h;
  uint64_t packets, max_held;
  int failed; /* an allocation failed: the packet was accepted at once */
} delayer;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t rng_next(uint64_t *s) { /* xorshift64* */
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 2685821657736338717ull;
}

static int before(const held *a, const held *b) {
  return a->due_us < b->due_us || (a->due_us == b->due_us && a->seq < b->seq);
}

static int heap_push(heap *h, held e) {
  if (h->n == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 1024;
    held *v = realloc(h->v, cap * sizeof *v);
    if (!v) return -1;
    h->v = v;
    h->cap = cap;
  }
  size_t i = h->n++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!before(&e, &h->v[p])) break;
    h->v[i] = h->v[p];
    i = p;
  }
  h->v[i] = e;
  return 0;
}

static held heap_pop(heap *h) {
  held top = h->v[0], last = h->v[--h->n];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    const held *mv = &last;
    if (l < h->n && before(&h->v[l], mv)) m = l, mv = &h->v[l];
    if (r < h->n && before(&h->v[r], mv)) m = r;
    if (m == i) break;
    h->v[i] = h->v[m];
    i = m;
  }
  if (h->n) h->v[i] = last;
  return top;
}

static int verdict(delayer *d, uint32_t id) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_VERDICT, d->queue);
  nfq_nlmsg_verdict_put(nlh, (int)id, NF_ACCEPT);
  if (mnl_socket_sendto(d->nl, nlh, nlh->nlmsg_len) < 0) {
    perror("faults_delay: verdict");
    return -1;
  }
  return 0;
}

static int on_packet(const struct nlmsghdr *nlh, void *data) {
  delayer *d = data;
  struct nlattr *attr[NFQA_MAX + 1] = {0};
  if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR]) return MNL_CB_OK;
  const struct nfqnl_msg_packet_hdr *ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
  uint32_t id = ntohl(ph->packet_id);
  int64_t hold = (int64_t)d->delay_us;
  if (d->jitter_us) hold += (int64_t)(rng_next(&d->rng) % (2 * d->jitter_us + 1)) - (int64_t)d->jitter_us;
  uint64_t due = now_us() + (uint64_t)(hold > 0 ? hold : 0);
  if (d->fifo && due < d->last_due) due = d->last_due;
  d->last_due = due;
  d->packets++;
  if (heap_push(&d->h, (held){due, d->seq++, id}) < 0) {
    d->failed = 1;
    return verdict(d, id) < 0 ? MNL_CB_ERROR : MNL_CB_OK;
  }
  if (d->h.n > d->max_held) d->max_held = d->h.n;
  return MNL_CB_OK;
}

static int configure(delayer *d) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, d->queue);
  nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
  if (mnl_socket_sendto(d->nl, nlh, nlh->nlmsg_len) < 0) return -1;
  nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, d->queue);
  nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_META, 0);
  nfq_nlmsg_cfg_put_qmaxlen(nlh, 1u << 16);
  mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(NFQA_CFG_F_GSO));
  mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_GSO));
  if (mnl_socket_sendto(d->nl, nlh, nlh->nlmsg_len) < 0) return -1;
  /* Lost netlink messages would strand their packets in the kernel: a large buffer, and no ENOBUFS errors. */
  int size = 16 << 20, one = 1;
  setsockopt(mnl_socket_get_fd(d->nl), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
  setsockopt(mnl_socket_get_fd(d->nl), SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
  return 0;
}

static int release_due(delayer *d, uint64_t now) {
  while (d->h.n && d->h.v[0].due_us <= now)
    if (verdict(d, heap_pop(&d->h).id) < 0) return -1;
  return 0;
}

static int run(delayer *d) {
  char *buf = malloc(1u << 16);
  if (!buf) return -1;
  struct pollfd pfd = {.fd = mnl_socket_get_fd(d->nl), .events = POLLIN};
  int rc = 0;
  while (!stop_flag && rc == 0) {
    uint64_t now = now_us();
    int timeout = -1;
    if (d->h.n) timeout = d->h.v[0].due_us <= now ? 0 : (int)((d->h.v[0].due_us - now + 999) / 1000);
    int pr = poll(&pfd, 1, timeout);
    if (pr < 0 && errno != EINTR) rc = -1;
    while (rc == 0 && pr > 0) {
      ssize_t len = recv(pfd.fd, buf, 1u << 16, MSG_DONTWAIT);
      if (len < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ENOBUFS) rc = -1;
        break;
      }
      if (mnl_cb_run(buf, (size_t)len, 0, mnl_socket_get_portid(d->nl), on_packet, d) == MNL_CB_ERROR) rc = -1;
    }
    if (rc == 0) rc = release_due(d, now_us());
  }
  free(buf);
  return rc;
}

static int usage(void) {
  fprintf(stderr, "usage: faults_delay --queue N --delay MS [--jitter MS] [--fifo] [--seed S]\n");
  return 2;
}

int main(int argc, char **argv) {
  delayer d = {0};
  long delay = -1, jitter = 0, queue = -1;
  unsigned long long seed = (unsigned long long)now_us();
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--fifo")) d.fifo = 1;
    else if (v && !strcmp(a, "--queue")) queue = strtol(argv[++i], NULL, 10);
    else if (v && !strcmp(a, "--delay")) delay = strtol(argv[++i], NULL, 10);
    else if (v && !strcmp(a, "--jitter")) jitter = strtol(argv[++i], NULL, 10);
    else if (v && !strcmp(a, "--seed")) seed = strtoull(argv[++i], NULL, 10);
    else return usage();
  }
  if (queue < 0 || queue > 65535 || delay < 0 || jitter < 0 || jitter > delay + 1000000) return usage();
  d.queue = (uint32_t)queue;
  d.delay_us = (uint64_t)delay * 1000u;
  d.jitter_us = (uint64_t)jitter * 1000u;
  d.rng = seed ? seed : 1;
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  d.nl = mnl_socket_open(NETLINK_NETFILTER);
  if (!d.nl || mnl_socket_bind(d.nl, 0, MNL_SOCKET_AUTOPID) < 0 || configure(&d) < 0) {
    perror("faults_delay: cannot bind the queue");
    if (d.nl) mnl_socket_close(d.nl);
    return 1;
  }
  printf("faults_delay: queue %ld ready: delay %ld ms, jitter %ld ms%s\n", queue, delay, jitter,
         d.fifo ? ", in order" : "");
  fflush(stdout);
  int rc = run(&d);
  /* Stopping: nothing stays held (an unbound queue would drop them). */
  while (d.h.n && verdict(&d, heap_pop(&d.h).id) == 0) {
  }
  printf("faults_delay: queue %ld: %llu packets delayed, at most %llu held at once%s\n", queue,
         (unsigned long long)d.packets, (unsigned long long)d.max_held,
         d.failed ? " (out of memory once: a packet went undelayed)" : "");
  free(d.h.v);
  mnl_socket_close(d.nl);
  return rc < 0 ? 1 : 0;
}
