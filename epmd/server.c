/* server.c: an EPMD server on libuv that OTP nodes and tools cannot tell from OTP's epmd: registrations held
 * by their sockets, creations assigned as OTP assigns them, NAMES/DUMP/KILL/STOP guarded as OTP guards them.
 * The wire format is codec.c's; this file holds the name table and moves bytes. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base_addr.h"
#include "epmd.h"

/* OTP's epmd reads a request into a 3 * 255 * 4 byte buffer and closes a connection whose length field does
 * not leave room in it; the same bound keeps every connection's memory fixed here. */
#define SRV_INBUF 3060
#define SRV_MAX_BODY (SRV_INBUF - 3)
#define SRV_MAX_LISTEN 16
#define SRV_DEFAULT_TIMEOUT_MS 60000
#define SRV_DEFAULT_MAX_CONNS 4096
#define SRV_DEFAULT_MAX_UNREG 1000
#define SRV_DEBUG_MAX_UNREG 5 /* OTP keeps only 5 old names when debugging, to exercise the reuse path */

typedef struct srv_conn srv_conn;

/* A name, registered (on reg, with its connection) or remembered after unregistering (on the unreg FIFO) so
 * that the next registration of the same name gets a new creation. */
typedef struct srv_node {
  struct srv_node *next;
  srv_conn *conn; /* NULL once unregistered */
  int fd;         /* the registering socket, for DUMP */
  uint32_t cr_counter;
  epmd_node_info info;
} srv_node;

struct srv_conn {
  srv_conn *prev, *next; /* the server's open connections */
  epmd_srv *srv;
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t wreq;
  cn_buf out;
  srv_node *node; /* the name this connection registered */
  int handles;    /* handles not yet through their close callback */
  int fd;
  unsigned local : 1, keep : 1, closing : 1, writing : 1, close_after_write : 1, kill_after_write : 1;
  size_t got;
  uint8_t in[SRV_INBUF];
};

struct epmd_srv {
  uv_loop_t *loop;
  epmd_srv_opts o;
  char *addresses;
  uint16_t port;
  uv_tcp_t listeners[SRV_MAX_LISTEN];
  int nlisten;
  int listening;     /* listeners still open */
  uv_timer_t anchor; /* never started; closing it guarantees epmd_srv_close's callback comes from the loop */
  srv_conn *conns;
  size_t nconns;
  srv_node *reg;                /* newest first, as OTP lists them */
  srv_node *unreg, *unreg_tail; /* oldest first */
  size_t nreg, nunreg;
  uint64_t requests, dropped;
  int handles; /* every handle of the server not yet through its close callback */
  int closing, stopped;
  epmd_srv_close_cb close_cb;
  void *close_ctx;
};

static void srv_log(epmd_srv *s, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void srv_log(epmd_srv *s, int level, const char *fmt, ...) {
  if (!s->o.log || level > s->o.debug) return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  s->o.log(level, line, s->o.ctx);
}

/* ---- the name table ---------------------------------------------------------------------------------- */

/* OTP's creations: a new slot starts from the clock, every reuse of a name counts up, and 0..3 are skipped
 * (they mean "no creation" and the old 2-bit range). */
static void bump_creation(srv_node *n) {
  if (++n->cr_counter < 4) n->cr_counter = 4;
}

/* What a client is told: 32 bits for highest version >= 6, else the old 1..3 range. */
static uint32_t creation_of(const srv_node *n) { return n->info.highest >= 6 ? n->cr_counter : n->cr_counter % 3 + 1; }

static srv_node *find_reg(epmd_srv *s, const char *name) {
  for (srv_node *n = s->reg; n; n = n->next)
    if (strcmp(n->info.name, name) == 0) return n;
  return NULL;
}

/* Moves n from reg to the tail of the unreg FIFO and cuts it from its connection. */
static void node_unreg(epmd_srv *s, srv_node *n) {
  for (srv_node **pp = &s->reg; *pp; pp = &(*pp)->next) {
    if (*pp != n) continue;
    *pp = n->next;
    break;
  }
  s->nreg--;
  srv_log(s, 1, "unregistering '%s:%u', port %u", n->info.name, (unsigned)creation_of(n), (unsigned)n->info.port);
  if (n->conn) n->conn->node = NULL;
  n->conn = NULL;
  n->next = NULL;
  if (s->unreg_tail) s->unreg_tail->next = n;
  else s->unreg = n;
  s->unreg_tail = n;
  s->nunreg++;
}

/* Registers info for c: NULL when the name is taken (or memory ran out). */
static srv_node *node_reg(epmd_srv *s, srv_conn *c, const epmd_node_info *info) {
  if (find_reg(s, info->name)) {
    srv_log(s, 0, "node name already occupied %s", info->name);
    return NULL;
  }
  srv_node *n = NULL, *prev = NULL;
  for (srv_node *u = s->unreg; u; prev = u, u = u->next) {
    if (strcmp(u->info.name, info->name) != 0) continue;
    srv_log(s, 1, "reusing slot with same name '%s'", u->info.name);
    n = u;
    break;
  }
  if (n) {
    if (prev) prev->next = n->next;
    else s->unreg = n->next;
    if (s->unreg_tail == n) s->unreg_tail = prev;
    s->nunreg--;
    bump_creation(n);
  } else {
    size_t keep = s->o.debug ? SRV_DEBUG_MAX_UNREG : s->o.max_unreg;
    if (s->nunreg > keep && s->unreg) {
      /* As OTP: the oldest remembered slot is taken over, counter and all. */
      n = s->unreg;
      s->unreg = n->next;
      if (!s->unreg) s->unreg_tail = NULL;
      s->nunreg--;
    } else {
      if (!(n = cn_calloc(1, sizeof *n))) {
        srv_log(s, 0, "out of memory registering %s", info->name);
        return NULL;
      }
      n->cr_counter = (uint32_t)time(NULL);
      bump_creation(n);
    }
  }
  n->info = *info;
  n->conn = c;
  n->fd = c->fd;
  n->next = s->reg;
  s->reg = n;
  s->nreg++;
  c->node = n;
  srv_log(s, 1, "registering '%s:%u', port %u", n->info.name, (unsigned)creation_of(n), (unsigned)n->info.port);
  srv_log(s, 1, "type %u proto %u highvsn %u lowvsn %u", n->info.node_type, n->info.protocol, n->info.highest,
          n->info.lowest);
  return n;
}

/* Number of UTF-8 characters in p[0..len), or -1 when it is not valid UTF-8 (overlong forms, surrogates and
 * code points past U+10FFFF included), as OTP's epmd checks names. */
static long utf8_chars(const uint8_t *p, size_t len) {
  long chars = 0;
  size_t i = 0;
  while (i < len) {
    uint8_t b = p[i];
    size_t k;
    uint32_t cp;
    if (b < 0x80) {
      k = 1;
      cp = b;
    } else if ((b & 0xE0) == 0xC0) {
      k = 2;
      cp = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
      k = 3;
      cp = b & 0x0F;
    } else if ((b & 0xF8) == 0xF0) {
      k = 4;
      cp = b & 0x07;
    } else {
      return -1;
    }
    if (len - i < k) return -1;
    for (size_t j = 1; j < k; j++) {
      if ((p[i + j] & 0xC0) != 0x80) return -1;
      cp = cp << 6 | (p[i + j] & 0x3F);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
    i += k;
    chars++;
  }
  return chars;
}

static int name_valid(const char *name) {
  long n = utf8_chars((const uint8_t *)name, strlen(name));
  return n >= 1 && n <= 255;
}

/* ---- connections ------------------------------------------------------------------------------------- */

static int peer_is_local(uv_tcp_t *t);

static void maybe_finish(epmd_srv *s) {
  if (!s->closing || s->handles > 0) return;
  while (s->reg) {
    srv_node *n = s->reg;
    s->reg = n->next;
    cn_free(n);
  }
  while (s->unreg) {
    srv_node *n = s->unreg;
    s->unreg = n->next;
    cn_free(n);
  }
  epmd_srv_close_cb cb = s->close_cb;
  void *ctx = s->close_ctx;
  cn_free(s->addresses);
  cn_free(s);
  if (cb) cb(ctx);
}

static void on_srv_handle_closed(uv_handle_t *h) {
  epmd_srv *s = h->data;
  s->handles--;
  maybe_finish(s);
}

static void on_conn_handle_closed(uv_handle_t *h) {
  srv_conn *c = h->data;
  epmd_srv *s = c->srv;
  if (--c->handles > 0) return;
  cn_buf_free(&c->out);
  cn_free(c);
  s->handles--;
  maybe_finish(s);
}

static void conn_close(srv_conn *c) {
  if (c->closing) return;
  c->closing = 1;
  epmd_srv *s = c->srv;
  if (c->node) node_unreg(s, c->node);
  if (c->prev) c->prev->next = c->next;
  else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->nconns--;
  srv_log(s, 2, "closing connection on file descriptor %d", c->fd);
  uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

/* Closes a connection for bad input, a timeout or the limit. */
static void conn_drop(srv_conn *c) {
  c->srv->dropped++;
  conn_close(c);
}

/* Stops serving: listeners and connections close; the handle lives on until epmd_srv_close. */
static void srv_stop(epmd_srv *s) {
  if (s->stopped) return;
  s->stopped = 1;
  for (int i = 0; i < s->nlisten; i++) uv_close((uv_handle_t *)&s->listeners[i], on_srv_handle_closed);
  s->listening = 0;
  while (s->conns) conn_close(s->conns);
}

static void on_written(uv_write_t *w, int status) {
  srv_conn *c = w->data;
  c->writing = 0;
  if (c->closing) return;
  epmd_srv *s = c->srv;
  cn_buf_consume(&c->out, c->out.len);
  if (status < 0) {
    srv_log(s, 1, "error in write: %s", uv_strerror(status));
    conn_close(c); /* an ALIVE2 reply that did not go out unregisters the name, as OTP */
    return;
  }
  if (c->kill_after_write) {
    srv_log(s, 1, "epmd killed");
    conn_close(c);
    srv_stop(s);
    if (s->o.on_kill) s->o.on_kill(s, s->o.ctx);
    return;
  }
  if (c->close_after_write) conn_close(c);
}

/* Writes c->out; close_after: the connection closes once it is written. */
static void conn_reply(srv_conn *c, int close_after) {
  c->close_after_write = close_after ? 1 : 0;
  if (c->out.len == 0) {
    if (close_after) conn_close(c);
    return;
  }
  /* Most replies fit the socket buffer: written at once, the connection closes in this loop turn. */
  uv_buf_t now = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
  int k = uv_try_write((uv_stream_t *)&c->tcp, &now, 1);
  if (k > 0) cn_buf_consume(&c->out, (size_t)k);
  if (c->out.len == 0) {
    c->writing = 1;
    c->wreq.data = c;
    on_written(&c->wreq, 0);
    return;
  }
  uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
  c->wreq.data = c;
  int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written);
  if (rc < 0) {
    srv_log(c->srv, 1, "error in write: %s", uv_strerror(rc));
    conn_close(c);
    return;
  }
  c->writing = 1;
}

static void reply_text(srv_conn *c, const char *txt) {
  if (cn_buf_append(&c->out, txt, strlen(txt))) conn_close(c);
}

static void handle_request(srv_conn *c, const epmd_request *rq) {
  epmd_srv *s = c->srv;
  s->requests++;
  /* Only ALIVE2, DUMP, KILL and STOP are for local peers; lookups do not pay for the address checks. */
  if (rq->type != EPMD_REQ_PORT_PLEASE2 && rq->type != EPMD_REQ_NAMES) c->local = peer_is_local(&c->tcp) ? 1 : 0;
  uv_timer_stop(&c->timer);
  if (rq->type != EPMD_REQ_ALIVE2) uv_read_stop((uv_stream_t *)&c->tcp);
  int rc = 0;
  switch (rq->type) {
  case EPMD_REQ_ALIVE2: {
    srv_log(s, 1, "** got ALIVE2_REQ");
    if (!c->local) {
      srv_log(s, 0, "ALIVE2_REQ from non local address");
      conn_close(c);
      return;
    }
    srv_node *n = NULL;
    if (!name_valid(rq->node.name)) srv_log(s, 0, "invalid node name encoding");
    else n = node_reg(s, c, &rq->node);
    uint32_t cr = n ? creation_of(n) : 99;
    if (rq->node.highest >= 6) rc = epmd_enc_alive2_x_resp(&c->out, n ? 0 : 1, cr);
    else rc = epmd_enc_alive2_resp(&c->out, n ? 0 : 1, (uint16_t)cr);
    /* OTP keeps the socket open after an ALIVE2 reply, refused or not: the client closes it. */
    c->keep = 1;
    if (rc) break;
    conn_reply(c, 0);
    return;
  }
  case EPMD_REQ_PORT_PLEASE2: {
    srv_log(s, 1, "** got PORT2_REQ");
    if (!name_valid(rq->name)) {
      srv_log(s, 0, "invalid node name in PORT2_REQ");
      conn_drop(c);
      return;
    }
    srv_node *n = find_reg(s, rq->name);
    rc = epmd_enc_port2_resp(&c->out, n ? &n->info : NULL);
    srv_log(s, 1, "** sent PORT2_RESP (%s) for \"%s\"", n ? "ok" : "error", rq->name);
    break;
  }
  case EPMD_REQ_NAMES:
    srv_log(s, 1, "** got NAMES_REQ");
    rc = epmd_enc_names_hdr(&c->out, s->port);
    for (srv_node *n = s->reg; n && !rc; n = n->next) rc = epmd_enc_names_entry(&c->out, n->info.name, n->info.port);
    break;
  case EPMD_REQ_DUMP:
    srv_log(s, 1, "** got DUMP_REQ");
    if (!c->local) {
      srv_log(s, 0, "DUMP_REQ from non local address");
      conn_close(c);
      return;
    }
    rc = epmd_enc_names_hdr(&c->out, s->port);
    for (srv_node *n = s->reg; n && !rc; n = n->next)
      rc = epmd_enc_dump_entry(&c->out, 1, n->info.name, n->info.port, n->fd);
    for (srv_node *n = s->unreg; n && !rc; n = n->next)
      rc = epmd_enc_dump_entry(&c->out, 0, n->info.name, n->info.port, n->fd);
    break;
  case EPMD_REQ_KILL:
    if (!c->local) {
      srv_log(s, 0, "KILL_REQ from non local address");
      conn_close(c);
      return;
    }
    srv_log(s, 1, "** got KILL_REQ");
    if (!s->o.relaxed_command_check && s->reg) {
      srv_log(s, 0, "Disallowed KILL_REQ, live nodes");
      reply_text(c, "NO");
      break;
    }
    reply_text(c, "OK");
    c->kill_after_write = 1;
    break;
  case EPMD_REQ_STOP: {
    srv_log(s, 1, "** got STOP_REQ");
    if (!c->local) {
      srv_log(s, 0, "STOP_REQ from non local address");
      conn_close(c);
      return;
    }
    if (!s->o.relaxed_command_check) {
      srv_log(s, 0, "Disallowed STOP_REQ, no relaxed_command_check");
      conn_close(c);
      return;
    }
    srv_node *n = find_reg(s, rq->name);
    /* OTP answers an unknown name with "NOEXIST" and then, as for a known one, "STOPPED". */
    if (!n) {
      reply_text(c, "NOEXIST");
    } else {
      srv_conn *owner = n->conn;
      node_unreg(s, n);
      if (owner) conn_close(owner);
      srv_log(s, 1, "epmd connection stopped");
    }
    if (!c->closing) reply_text(c, "STOPPED");
    break;
  }
  }
  if (c->closing) return;
  if (rc) {
    srv_log(s, 0, "cannot encode the reply: %s", cn_strerror(rc));
    conn_close(c);
    return;
  }
  conn_reply(c, !c->keep);
}

static const char *dec_reason(ssize_t rc) {
  switch (rc) {
  case CN_ELIMIT: return "request too large for its fields";
  case CN_EUNSUPPORTED: return "got garbage (unknown request)";
  default: return "malformed request";
  }
}

/* OTP's epmd reads some requests more loosely than the codec: NAMES/DUMP/KILL ignore any body, PORT2 drops
 * one trailing NUL (old clients sent it) and ALIVE2 ignores bytes after its extra field. The packet (whole,
 * len bytes) is trimmed in place to what the codec accepts; returns the new length. */
static size_t otp_leniency(uint8_t *p, size_t len) {
  size_t body = len - 2;
  switch (p[2]) {
  case EPMD_REQ_NAMES:
  case EPMD_REQ_DUMP:
  case EPMD_REQ_KILL: body = 1; break;
  case EPMD_REQ_PORT_PLEASE2:
    if (body > 1 && p[len - 1] == 0) body--;
    break;
  case EPMD_REQ_ALIVE2:
    if (body >= 13) {
      size_t nlen = cn_get16(p + 2 + 9);
      if (13 + nlen <= body) {
        size_t elen = cn_get16(p + 2 + 11 + nlen);
        if (13 + nlen + elen <= body) body = 13 + nlen + elen;
      }
    }
    break;
  default: break;
  }
  p[0] = (uint8_t)(body >> 8);
  p[1] = (uint8_t)body;
  return body + 2;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  srv_conn *c = h->data;
  if (c->keep) /* a registration socket: anything read is only looked at for its size */
    *buf = uv_buf_init((char *)c->in, sizeof c->in);
  else *buf = uv_buf_init((char *)c->in + c->got, (unsigned)(sizeof c->in - c->got));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  srv_conn *c = st->data;
  epmd_srv *s = c->srv;
  if (c->closing || nread == 0) return;
  if (c->keep) {
    /* The registration ends with its socket; more bytes on it are a protocol error, as for OTP. */
    if (nread > 0) {
      srv_log(s, 1, "got more than expected on ALIVE socket %d (%zd)", c->fd, nread);
      conn_drop(c);
    } else {
      if (nread != UV_EOF) srv_log(s, 1, "error on ALIVE socket %d (%s)", c->fd, uv_strerror((int)nread));
      conn_close(c);
    }
    return;
  }
  if (nread < 0) {
    if (nread == UV_EOF) srv_log(s, 0, "got partial packet only on file descriptor %d (%zu)", c->fd, c->got);
    else srv_log(s, 0, "error in read: %s", uv_strerror((int)nread));
    conn_drop(c);
    return;
  }
  c->got += (size_t)nread;
  if (s->o.packet_timeout_ms) uv_timer_again(&c->timer);
  if (c->got < 2) return;
  size_t want = (size_t)cn_get16(c->in) + 2;
  if (want < 3 || want >= SRV_INBUF) {
    srv_log(s, 0, "invalid packet size (%zu)", want - 2);
    conn_drop(c);
    return;
  }
  if (c->got > want) {
    srv_log(s, 0, "got %zu bytes in packet, expected %zu", c->got - 2, want - 2);
    conn_drop(c);
    return;
  }
  if (c->got < want) return;
  epmd_request rq;
  size_t len = otp_leniency(c->in, c->got);
  ssize_t n = epmd_dec_request(c->in, len, SRV_MAX_BODY, &rq);
  if (n <= 0) {
    srv_log(s, 0, "%s (tag %u, %zu bytes)", dec_reason(n), c->in[2], want - 2);
    conn_drop(c);
    return;
  }
  handle_request(c, &rq);
}

static void on_timeout(uv_timer_t *t) {
  srv_conn *c = t->data;
  srv_log(c->srv, 1, "closing because timed out on receive");
  conn_drop(c);
}

/* OTP's rule: 127.0.0.0/8, ::1, or the peer has the address the connection arrived on. */
static int peer_is_local(uv_tcp_t *t) {
  struct sockaddr_storage peer, self;
  int pl = sizeof peer, sl = sizeof self;
  if (uv_tcp_getpeername(t, (struct sockaddr *)&peer, &pl)) return 0;
  if (peer.ss_family == AF_INET) {
    const struct sockaddr_in *p4 = (const struct sockaddr_in *)&peer;
    if ((ntohl(p4->sin_addr.s_addr) & 0xFF000000u) == 0x7F000000u) return 1;
    if (uv_tcp_getsockname(t, (struct sockaddr *)&self, &sl) || self.ss_family != AF_INET) return 0;
    return p4->sin_addr.s_addr == ((const struct sockaddr_in *)&self)->sin_addr.s_addr;
  }
  if (peer.ss_family == AF_INET6) {
    const struct sockaddr_in6 *p6 = (const struct sockaddr_in6 *)&peer;
    if (IN6_IS_ADDR_LOOPBACK(&p6->sin6_addr)) return 1;
    if (uv_tcp_getsockname(t, (struct sockaddr *)&self, &sl) || self.ss_family != AF_INET6) return 0;
    return IN6_ARE_ADDR_EQUAL(&p6->sin6_addr, &((const struct sockaddr_in6 *)&self)->sin6_addr);
  }
  return 0;
}

static void on_connection(uv_stream_t *server, int status) {
  epmd_srv *s = server->data;
  if (status < 0) {
    srv_log(s, 0, "error in accept: %s", uv_strerror(status));
    return;
  }
  srv_conn *c = cn_calloc(1, sizeof *c);
  if (!c) {
    /* libuv holds the accepted socket until uv_accept; without memory for a handle it stays queued and the
     * next accept after memory returns takes it. */
    srv_log(s, 0, "out of memory accepting a connection");
    return;
  }
  c->srv = s;
  uv_tcp_init(s->loop, &c->tcp);
  uv_timer_init(s->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles = 2;
  s->handles++;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->nconns++;
  if (s->o.unref) {
    uv_unref((uv_handle_t *)&c->tcp);
    uv_unref((uv_handle_t *)&c->timer);
  }
  int rc = uv_accept(server, (uv_stream_t *)&c->tcp);
  if (rc < 0) {
    srv_log(s, 0, "error in accept: %s", uv_strerror(rc));
    conn_close(c);
    return;
  }
  uv_os_fd_t fd = -1;
  uv_fileno((uv_handle_t *)&c->tcp, &fd);
  c->fd = (int)fd;
  if (s->nconns > s->o.max_conns) {
    srv_log(s, 0, "failed opening connection on file descriptor %d (limit %u)", c->fd, s->o.max_conns);
    conn_drop(c);
    return;
  }
  srv_log(s, 2, "connection on file descriptor %d", c->fd);
  if ((rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) < 0) {
    srv_log(s, 0, "cannot read: %s", uv_strerror(rc));
    conn_drop(c);
    return;
  }
  if (s->o.packet_timeout_ms) uv_timer_start(&c->timer, on_timeout, s->o.packet_timeout_ms, s->o.packet_timeout_ms);
}

/* ---- listening --------------------------------------------------------------------------------------- */

typedef struct listen_spec {
  struct sockaddr_storage addr;
  int nonfatal; /* a loopback OTP adds on its own: skipped when it cannot be bound */
} listen_spec;

static int add_spec(listen_spec *specs, int *n, const char *text, int nonfatal) {
  listen_spec sp;
  memset(&sp, 0, sizeof sp);
  sp.nonfatal = nonfatal;
  /* IPv4, or IPv6 with an optional %scope (a link-local address needs one: fe80::1%eth0). */
  if (base_addr_parse(text, 0, AF_UNSPEC, &sp.addr)) return CN_EINVAL;
  /* The loopbacks are always there; listing them again is not a second socket. */
  for (int i = 0; i < *n; i++)
    if (base_addr_equal((const struct sockaddr *)&specs[i].addr, (const struct sockaddr *)&sp.addr)) return 0;
  if (*n >= SRV_MAX_LISTEN) return CN_ELIMIT;
  specs[(*n)++] = sp;
  return 0;
}

/* One listening socket, plain syscalls: >= 0 fd, or -errno. */
static int open_listener(const struct sockaddr_storage *a) {
  int fd = socket(a->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (a->ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, (const struct sockaddr *)a, base_addr_len((const struct sockaddr *)a)) < 0 ||
      listen(fd, SOMAXCONN) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

static uint16_t bound_port(int fd) {
  struct sockaddr_storage a;
  memset(&a, 0, sizeof a);
  socklen_t len = sizeof a;
  if (getsockname(fd, (struct sockaddr *)&a, &len)) return 0;
  return base_addr_port((const struct sockaddr *)&a);
}

static int build_specs(const char *addresses, listen_spec *specs, int *n) {
  *n = 0;
  if (!addresses || addresses[strspn(addresses, " ,")] == 0) {
    add_spec(specs, n, "0.0.0.0", 0);
    add_spec(specs, n, "::", 1);
    return 0;
  }
  add_spec(specs, n, "127.0.0.1", 0);
  add_spec(specs, n, "::1", 1);
  char tmp[1024];
  if (strlen(addresses) >= sizeof tmp) return CN_EINVAL;
  strcpy(tmp, addresses);
  char *save = NULL;
  for (char *tok = strtok_r(tmp, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
    int rc = add_spec(specs, n, tok, 0);
    if (rc) return rc;
  }
  return 0;
}

int epmd_srv_start(uv_loop_t *loop, const epmd_srv_opts *opts, epmd_srv **out) {
  if (!loop || !opts || !out) return CN_EINVAL;
  listen_spec specs[SRV_MAX_LISTEN];
  int nspec, rc;
  if ((rc = build_specs(opts->addresses, specs, &nspec))) return rc;
  int fds[SRV_MAX_LISTEN];
  int nfd = 0;
  uint16_t port = opts->port;
  for (int i = 0; i < nspec; i++) {
    base_addr_set_port(&specs[i].addr, port);
    int fd = open_listener(&specs[i].addr);
    if (fd < 0 && fd != -EADDRINUSE && (specs[i].nonfatal || fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL))
      continue; /* no IPv6 on this host, or an address this host does not have that OTP would skip too */
    if (fd < 0) {
      for (int j = 0; j < nfd; j++) close(fds[j]);
      return fd == -EADDRINUSE ? CN_EEXIST : CN_EIO;
    }
    if (!port) port = bound_port(fd); /* the OS's pick serves every address */
    fds[nfd++] = fd;
  }
  epmd_srv *s = nfd ? cn_calloc(1, sizeof *s) : NULL;
  char *addr = s && opts->addresses ? cn_strndup(opts->addresses, strlen(opts->addresses)) : NULL;
  if (!s || (opts->addresses && !addr)) {
    for (int j = 0; j < nfd; j++) close(fds[j]);
    cn_free(s);
    return nfd ? CN_ENOMEM : CN_EIO;
  }
  s->loop = loop;
  s->o = *opts;
  s->o.addresses = s->addresses = addr;
  if (!s->o.packet_timeout_ms) s->o.packet_timeout_ms = SRV_DEFAULT_TIMEOUT_MS;
  if (!s->o.max_conns) s->o.max_conns = SRV_DEFAULT_MAX_CONNS;
  if (!s->o.max_unreg) s->o.max_unreg = SRV_DEFAULT_MAX_UNREG;
  s->port = port;
  uv_timer_init(loop, &s->anchor);
  s->anchor.data = s;
  uv_unref((uv_handle_t *)&s->anchor);
  s->handles = 1;
  for (int i = 0; i < nfd; i++) {
    uv_tcp_t *l = &s->listeners[s->nlisten];
    uv_tcp_init(loop, l);
    l->data = s;
    s->handles++;
    s->nlisten++;
    if (opts->unref) uv_unref((uv_handle_t *)l);
    int opened = (rc = uv_tcp_open(l, fds[i])) == 0;
    if (!opened || (rc = uv_listen((uv_stream_t *)l, SOMAXCONN, on_connection)) < 0) {
      for (int j = opened ? i + 1 : i; j < nfd; j++) close(fds[j]); /* an opened fd closes with its handle */
      srv_log(s, 0, "cannot listen: %s", uv_strerror(rc));
      /* The handles made so far close on the loop; the memory goes with the last of them. */
      s->closing = 1;
      srv_stop(s);
      uv_close((uv_handle_t *)&s->anchor, on_srv_handle_closed);
      return CN_EIO;
    }
  }
  s->listening = s->nlisten;
  srv_log(s, 2, "listening on port %u (%d sockets)", (unsigned)port, s->nlisten);
  *out = s;
  return 0;
}

uint16_t epmd_srv_port(const epmd_srv *s) { return s ? s->port : 0; }

void epmd_srv_get_stats(const epmd_srv *s, epmd_srv_stats *out) {
  memset(out, 0, sizeof *out);
  if (!s) return;
  out->registered = s->nreg;
  out->remembered = s->nunreg;
  out->connections = s->nconns;
  out->listeners = (size_t)s->listening;
  out->requests = s->requests;
  out->dropped = s->dropped;
}

void epmd_srv_close(epmd_srv *s, epmd_srv_close_cb cb, void *ctx) {
  if (!s || s->closing) return;
  s->closing = 1;
  s->close_cb = cb;
  s->close_ctx = ctx;
  srv_stop(s);
  uv_close((uv_handle_t *)&s->anchor, on_srv_handle_closed);
}
