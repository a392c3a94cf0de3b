/* gossip.c: libcluster Gossip's UDP socket on the node's loop: bound and joined as libcluster's gen_udp is
 * (reuseaddr and reuseport, broadcast, multicast TTL, loop and membership, multicast_if), a heartbeat after a
 * random 1..5000 ms each time, and every heartbeat heard handed to cl_want. The bytes are pure.c's. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster_int.h"

struct cl_gossip {
  cn_cluster *c;
  uv_udp_t udp;
  uv_timer_t timer;
  struct sockaddr_storage dest; /* the multicast (or broadcast) address and port */
  int handles;                  /* initialised handles (0 or 2); freed when the last has closed */
  uint8_t buf[CL_HB_MAX + 1];   /* one more: a datagram that fills it is too long */
};

static void glog(cn_cluster *c, cn_log_level level, const char *what, const char *addr, int err) {
  cn_log(c->n, level, "discovery (gossip): %s %s: %s", what, addr ? addr : "", uv_strerror(err));
}

static unsigned random_below(unsigned max) {
  unsigned r = 0;
  if (RAND_bytes((unsigned char *)&r, sizeof r) != 1) r = (unsigned)rand();
  return r % max;
}

static void send_heartbeat(cl_gossip *g) {
  cn_cluster *c = g->c;
  uint8_t iv[CL_IV_LEN];
  cn_buf b = {0};
  int rc = c->o.secret && RAND_bytes(iv, sizeof iv) != 1 ? CN_EIO : 0;
  if (!rc) rc = cl_hb_encode(cn_node_name(c->n)->name, c->o.secret ? c->key : NULL, iv, &b);
  if (rc) {
    cn_log(c->n, CN_LOG_WARN, "discovery (gossip): cannot make a heartbeat: %s", cn_strerror(rc));
  } else {
    uv_buf_t ub = uv_buf_init((char *)b.data, (unsigned)b.len);
    int k = uv_udp_try_send(&g->udp, &ub, 1, (const struct sockaddr *)&g->dest);
    if (k < 0) glog(c, CN_LOG_DEBUG, "heartbeat not sent to", c->o.multicast_addr, k);
    else c->stats.heartbeats_sent++;
  }
  cn_buf_free(&b);
}

static void on_heartbeat_timer(uv_timer_t *t) {
  cl_gossip *g = t->data;
  send_heartbeat(g);
  uv_timer_start(&g->timer, on_heartbeat_timer, 1 + random_below(g->c->o.heartbeat_max_ms), 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  cl_gossip *g = h->data;
  *buf = uv_buf_init((char *)g->buf, sizeof g->buf);
}

static void on_recv(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from, unsigned flags) {
  cl_gossip *g = u->data;
  cn_cluster *c = g->c;
  if (nread <= 0 || !from || c->stopping) return;
  char ip[INET6_ADDRSTRLEN] = "?";
  if (from->sa_family == AF_INET) inet_ntop(AF_INET, &((const struct sockaddr_in *)from)->sin_addr, ip, sizeof ip);
  else if (from->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)from)->sin6_addr, ip, sizeof ip);
  char name[CN_ATOM_MAX_BYTES + 1];
  int rc = (flags & UV_UDP_PARTIAL) ? CN_ELIMIT
                                    : cl_hb_decode((const uint8_t *)buf->base, (size_t)nread,
                                                   c->o.secret ? c->key : NULL, name, sizeof name);
  if (!rc && !strcmp(name, cn_node_name(c->n)->name)) return; /* our own, looped back */
  if (rc) {
    c->stats.heartbeats_ignored++;
    cn_log(c->n, CN_LOG_DEBUG, "discovery (gossip): ignored %zd bytes from %s: %s", nread, ip,
           rc == CN_EAUTH ? "not encrypted with our secret" : cn_strerror(rc));
    return;
  }
  c->stats.heartbeats_heard++;
  char why[80];
  snprintf(why, sizeof why, "heartbeat from %s", ip);
  cl_want(c, name, why);
}

/* The socket as libcluster opens it: reuseaddr + reuseport (so several nodes of one host share the port),
 * broadcast, bound to if_addr:port. Returns the fd, or -errno. */
static int open_socket(const struct sockaddr_storage *bind_sa) {
  int fd = socket(bind_sa->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) ||
      (bind_sa->ss_family == AF_INET && setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one)) ||
      bind(fd, (const struct sockaddr *)bind_sa,
           bind_sa->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6))) {
    int e = -errno;
    close(fd);
    return e;
  }
  return fd;
}

static int parse_addr(const char *s, uint16_t port, struct sockaddr_storage *out) {
  memset(out, 0, sizeof *out);
  struct sockaddr_in *a4 = (struct sockaddr_in *)out;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;
  if (inet_pton(AF_INET, s, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    return 0;
  }
  if (inet_pton(AF_INET6, s, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    return 0;
  }
  return CN_EINVAL;
}

/* Multicast TTL, loop, membership and interface, as libcluster sets them (none with broadcast_only). */
static int set_multicast(cl_gossip *g) {
  cn_cluster_opts *o = &g->c->o;
  int rc;
  if ((rc = uv_udp_set_multicast_ttl(&g->udp, o->multicast_ttl)) || (rc = uv_udp_set_multicast_loop(&g->udp, 1))) {
    glog(g->c, CN_LOG_ERROR, "cannot set the multicast TTL/loop of", o->multicast_addr, rc);
    return rc;
  }
  if (o->multicast_if && (rc = uv_udp_set_multicast_interface(&g->udp, o->multicast_if))) {
    glog(g->c, CN_LOG_ERROR, "cannot send multicast out of", o->multicast_if, rc);
    return rc;
  }
  if ((rc = uv_udp_set_membership(&g->udp, o->multicast_addr, o->multicast_if, UV_JOIN_GROUP))) {
    glog(g->c, CN_LOG_ERROR, "cannot join the multicast group", o->multicast_addr, rc);
    return rc;
  }
  return 0;
}

int cl_gossip_start(cn_cluster *c) {
  cn_cluster_opts *o = &c->o;
  if (!o->multicast_addr) o->multicast_addr = CN_CLUSTER_GOSSIP_ADDR;
  struct sockaddr_storage bind_sa;
  cl_gossip *g = cn_calloc(1, sizeof *g);
  if (!g) return CN_ENOMEM;
  g->c = c;
  c->gossip = g;
  if (parse_addr(o->multicast_addr, o->gossip_port, &g->dest)) {
    cn_log(c->n, CN_LOG_ERROR, "discovery (gossip): multicast address %s is not a numeric address", o->multicast_addr);
    return CN_EINVAL;
  }
  bool v6 = g->dest.ss_family == AF_INET6;
  if (!o->if_addr) o->if_addr = v6 ? "::" : "0.0.0.0";
  if (parse_addr(o->if_addr, o->gossip_port, &bind_sa) || bind_sa.ss_family != g->dest.ss_family) {
    cn_log(c->n, CN_LOG_ERROR, "discovery (gossip): interface address %s is not a numeric %s address", o->if_addr,
           v6 ? "IPv6" : "IPv4");
    return CN_EINVAL;
  }
  struct sockaddr_storage ifa;
  if (o->multicast_if && (parse_addr(o->multicast_if, 0, &ifa) || ifa.ss_family != g->dest.ss_family)) {
    cn_log(c->n, CN_LOG_ERROR, "discovery (gossip): multicast interface %s is not a numeric %s address",
           o->multicast_if, v6 ? "IPv6" : "IPv4");
    return CN_EINVAL;
  }
  int fd = open_socket(&bind_sa);
  if (fd < 0) {
    char a[80];
    snprintf(a, sizeof a, "%s port %u", o->if_addr, o->gossip_port);
    glog(c, CN_LOG_ERROR, "cannot bind", a, fd);
    return CN_EIO;
  }
  uv_loop_t *loop = cn_node_loop(c->n);
  uv_udp_init(loop, &g->udp);
  uv_timer_init(loop, &g->timer);
  g->udp.data = g->timer.data = g;
  g->handles = 2;
  c->open++;
  uv_unref((uv_handle_t *)&g->udp);
  uv_unref((uv_handle_t *)&g->timer);
  int rc = uv_udp_open(&g->udp, fd);
  if (rc) {
    close(fd);
    glog(c, CN_LOG_ERROR, "cannot open the socket of", o->if_addr, rc);
    return CN_EIO;
  }
  if ((!o->broadcast_only && set_multicast(g)) || uv_udp_recv_start(&g->udp, on_alloc, on_recv)) return CN_EIO;
  cn_log(c->n, CN_LOG_INFO, "discovery (gossip): heartbeats %s %s port %u, listening on %s%s",
         o->broadcast_only ? "broadcast to" : "multicast to", o->multicast_addr, o->gossip_port, o->if_addr,
         o->secret ? ", encrypted with the secret" : "");
  uv_timer_start(&g->timer, on_heartbeat_timer, 0, 0); /* the first one at once, as libcluster */
  return 0;
}

static void on_closed(uv_handle_t *h) {
  cl_gossip *g = h->data;
  if (--g->handles) return;
  cn_cluster *c = g->c;
  cn_free(g);
  cl_closed(c);
}

void cl_gossip_close(cn_cluster *c) {
  cl_gossip *g = c->gossip;
  if (!g) return;
  c->gossip = NULL;
  if (!g->handles) { /* never opened: nothing to wait for */
    cn_free(g);
    return;
  }
  uv_close((uv_handle_t *)&g->udp, on_closed);
  uv_close((uv_handle_t *)&g->timer, on_closed);
}
