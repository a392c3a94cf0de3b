/* conn.c: connections to other nodes on libuv: connect on demand through EPMD, accept, drive the pure
 * handshake, frame and decode traffic, ticks, simultaneous-connect resolution, and output batching (one
 * write per connection per loop turn). The transport is plain TCP or TLS (dist/tls.c over memory BIOs: the
 * TLS handshake first, then everything above runs on the decrypted stream, as inet_tls_dist does). Protocol
 * decisions live in dist/; this file only moves bytes. */
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "node_int.h"

/* Outgoing messages are fragmented only past 1 GiB (frames carry a 4-byte length). A message's fragments would
 * be written back to back from one buffer anyway, so smaller fragments buy no interleaving here; they cost a
 * memmove of the body, and a BEAM receiver a reassembly copy (an unfragmented binary stays a sub-binary of the
 * packet): 1 MiB binaries to a BEAM peer went from 0.88x to 1.42x of BEAM->BEAM throughput (quick bench, pinned). */
#define FRAG_SIZE ((size_t)1 << 30)
#define READ_CHUNK 65536

typedef enum { C_LOOKUP, C_CONNECTING, C_TLS, C_HANDSHAKE, C_UP, C_WAIT_PEER, C_CLOSING } conn_state;

typedef struct pend {
  struct pend *next;
  cn_buf body; /* control then payload, each without the version byte */
  size_t ctl_len;
} pend;

struct cn_conn {
  cn_node *n;
  const cn_atom *peer; /* NULL until an accepted peer says its name */
  bool initiator;
  bool in_hash;
  conn_state state;
  int refs; /* open handles and requests; freed at zero */
  uv_tcp_t tcp;
  bool tcp_open;
  uv_timer_t timer; /* setup timeout, then ticks */
  epmd_req *lookup;
  uv_getaddrinfo_t gai;
  bool gai_pending;
  uv_connect_t creq;
  uint16_t peer_port;
  int peer_version;
  dist_hs hs;
  bool hs_init;
  cn_buf in;
  cn_buf out;  /* accumulating (plaintext) */
  cn_buf wbuf; /* being written (ciphertext under TLS) */
  dist_tls *tls; /* NULL: plain TCP */
  cn_buf tin;    /* TLS: ciphertext just read */
  cn_buf tout;   /* TLS: records to send before the next encrypted output (handshake, alerts) */
  uv_write_t wreq;
  bool writing;
  bool dirty;
  cn_conn *dirty_next;
  dist_frags *frags;
  dist_tick tick;
  uint64_t peer_flags;
  pend *pend_head, **pend_tail;
  size_t pend_bytes;
  char addr[64]; /* the peer's address, for logs before its name is known */
  cn_proc *susp;  /* processes suspended until this connection's queue drains */
  cn_atom_cache *acache; /* atoms this peer sends, found without the table's lock (NULL: none) */
  bool dropping;  /* queue_limit reached: logged once until it drains */
  cn_conn *unnamed_next;
  UT_hash_handle hh; /* node->conns by peer atom pointer */
};

static void conn_close(cn_conn *c, const char *reason);
static void process_input(cn_conn *c);

static const char *who(cn_conn *c) {
  if (c->peer) return c->peer->name;
  return c->hs_init && c->hs.peer_name[0] ? c->hs.peer_name : c->addr;
}

static size_t queued(const cn_conn *c) { return c->out.len + c->wbuf.len + c->tout.len; }

/* Lets the processes suspended on c run again (its queue drained, or it closed). */
static void resume_all(cn_conn *c) {
  while (c->susp) {
    cn_proc *p = c->susp;
    c->susp = p->susp_next;
    p->suspended = false;
    p->susp_next = NULL;
    if (p->mq_head || p->exit_reason) node_schedule(c->n, p);
  }
}

void conn_forget_proc(cn_node *n, cn_proc *p) {
  for (cn_conn *c = n->conns; c; c = c->hh.next) {
    for (cn_proc **x = &c->susp; *x; x = &(*x)->susp_next) {
      if (*x == p) {
        *x = p->susp_next;
        break;
      }
    }
  }
  p->suspended = false;
  p->susp_next = NULL;
}

static void unref(cn_conn *c) {
  if (--c->refs > 0) return;
  cn_node *n = c->n;
  n->nconns--;
  for (cn_conn **d = &n->dirty; *d; d = &(*d)->dirty_next) {
    if (*d == c) {
      *d = c->dirty_next;
      break;
    }
  }
  if (c->hs_init) dist_hs_free(&c->hs);
  if (c->frags) dist_frags_free(c->frags);
  cn_atom_cache_free(c->acache);
  while (c->pend_head) {
    pend *p = c->pend_head;
    c->pend_head = p->next;
    cn_buf_free(&p->body);
    cn_free(p);
  }
  cn_buf_free(&c->in);
  cn_buf_free(&c->out);
  cn_buf_free(&c->wbuf);
  dist_tls_free(c->tls);
  cn_buf_free(&c->tin);
  cn_buf_free(&c->tout);
  cn_free(c);
}

static void on_handle_closed(uv_handle_t *h) { unref(h->data); }

static void on_timer(uv_timer_t *t);

static cn_conn *conn_new(cn_node *n, const cn_atom *peer, bool initiator) {
  cn_conn *c = cn_calloc(1, sizeof *c);
  if (!c) return NULL;
  c->n = n;
  c->peer = peer;
  c->initiator = initiator;
  c->pend_tail = &c->pend_head;
  uv_timer_init(n->loop, &c->timer);
  c->timer.data = c;
  c->acache = cn_atom_cache_new(0); /* NULL on out-of-memory: decoding then goes to the table */
  c->refs = 1;
  n->nconns++;
  uv_timer_start(&c->timer, on_timer, n->hs_timeout_ms, 0);
  return c;
}

static cn_conn *find(cn_node *n, const cn_atom *peer) {
  cn_conn *c;
  HASH_FIND_PTR(n->conns, &peer, c);
  return c;
}

/* False when the table could not grow (out of memory): the connection is then not registered. */
static bool hash_add(cn_conn *c) {
  node_hash_oom = false;
  HASH_ADD_PTR(c->n->conns, peer, c);
  c->in_hash = !node_hash_oom;
  return c->in_hash;
}

static void unnamed_remove(cn_conn *c) {
  for (cn_conn **u = &c->n->unnamed; *u; u = &(*u)->unnamed_next) {
    if (*u == c) {
      *u = c->unnamed_next;
      return;
    }
  }
}

/* ---- Output ------------------------------------------------------------------------------------------ */

static void mark_dirty(cn_conn *c) {
  if (c->dirty) return;
  c->dirty = true;
  c->dirty_next = c->n->dirty;
  c->n->dirty = c;
}

static void on_written(uv_write_t *req, int status) {
  cn_conn *c = req->data;
  c->writing = false;
  c->wbuf.len = 0;
  if (status < 0) {
    if (status != UV_ECANCELED && c->state != C_CLOSING) conn_close(c, uv_strerror(status));
  } else if (c->state != C_CLOSING) {
    if (c->out.len || c->tout.len) mark_dirty(c);
    if (queued(c) <= c->n->busy_limit) {
      c->dropping = false;
      resume_all(c);
    }
  }
  unref(c);
}

/* TLS: what is to be written now, encrypted, into wbuf (empty while no write is in flight). */
static int tls_fill(cn_conn *c) {
  cn_buf t = c->wbuf;
  c->wbuf = c->tout;
  c->tout = t;
  c->tout.len = 0;
  if (!c->out.len || !dist_tls_is_up(c->tls)) return 0;
  int rc = dist_tls_write(c->tls, c->out.data, c->out.len, &c->wbuf);
  c->out.len = 0;
  return rc;
}

static void flush(cn_conn *c) {
  if (c->writing || !c->tcp_open || c->state == C_CLOSING) return;
  if (c->tls) {
    if (tls_fill(c)) {
      conn_close(c, dist_tls_reason(c->tls));
      return;
    }
    if (!c->wbuf.len) return;
  } else {
    if (!c->out.len) return;
    cn_buf t = c->wbuf;
    c->wbuf = c->out;
    c->out = t;
    c->out.len = 0;
  }
  /* uv_write, not uv_try_write: the write stays in flight until the next loop turn and output queued meanwhile
   * goes out in one later write. Written at once, every flush is its own write (tried: cnode->cnode 4 KiB and
   * 64 KiB throughput halved). */
  uv_buf_t b = uv_buf_init((char *)c->wbuf.data, (unsigned)c->wbuf.len);
  c->wreq.data = c;
  int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written);
  if (rc) {
    conn_close(c, uv_strerror(rc));
    return;
  }
  c->writing = true;
  c->refs++;
  if (c->state == C_UP) dist_tick_sent(&c->tick);
}

void conn_flush_all(cn_node *n) {
  while (n->dirty) {
    cn_conn *c = n->dirty;
    n->dirty = c->dirty_next;
    c->dirty = false;
    flush(c);
  }
}

/* Framing for an up connection: with FRAGMENTS agreed, OTP expects the normal header (131,68) (fragments past
 * FRAG_SIZE); otherwise pass-through frames (112, then each term with its version byte). */
static bool frag_mode(const cn_conn *c) { return c->peer_flags & DFLAG_FRAGMENTS; }

static size_t frame_open(cn_conn *c) {
  if (frag_mode(c)) return dist_msg_begin(&c->out);
  size_t start = c->out.len;
  if (cn_buf_put32(&c->out, 0) || cn_buf_put8(&c->out, 112)) {
    c->out.len = start;
    return SIZE_MAX;
  }
  return start;
}

static int frame_term(cn_conn *c, const cn_term *t) {
  return frag_mode(c) ? cn_term_encode(t, &c->out) : cn_term_to_binary(t, &c->out);
}

static int frame_raw(cn_conn *c, const uint8_t *p, size_t n) {
  if (!frag_mode(c) && cn_buf_put8(&c->out, 131)) return CN_ENOMEM;
  return cn_buf_append(&c->out, p, n);
}

/* Ends the frame opened at start, or drops it when rc reports a failure while filling it. */
static int frame_close(cn_conn *c, size_t start, int rc) {
  if (!rc) {
    if (frag_mode(c))
      rc = dist_msg_end(&c->out, start, ++c->n->frag_seq, FRAG_SIZE);
    else
      cn_set32(c->out.data + start, (uint32_t)(c->out.len - start - 4));
  }
  if (rc) {
    c->out.len = start;
    return rc;
  }
  mark_dirty(c);
  return 0;
}

static int frame_terms(cn_conn *c, const cn_term *ctl, const cn_term *payload) {
  size_t start = frame_open(c);
  if (start == SIZE_MAX) return CN_ENOMEM;
  int rc = frame_term(c, ctl);
  if (!rc && payload) rc = frame_term(c, payload);
  return frame_close(c, start, rc);
}

/* Frames control and payload bytes that were encoded while the peer was still connecting. */
static int frame_bytes(cn_conn *c, const uint8_t *body, size_t ctl_len, size_t len) {
  size_t start = frame_open(c);
  if (start == SIZE_MAX) return CN_ENOMEM;
  int rc = frame_raw(c, body, ctl_len);
  if (!rc && len > ctl_len) rc = frame_raw(c, body + ctl_len, len - ctl_len);
  return frame_close(c, start, rc);
}

/* A message that does not fit under queue_limit is dropped and counted, as the limit promises. */
static int drop_full(cn_conn *c) {
  c->n->stats.messages_dropped++;
  if (!c->dropping)
    cn_log(c->n, CN_LOG_WARN, "queue to %s over %zu bytes: dropping messages until it drains", who(c),
           c->n->queue_limit);
  c->dropping = true;
  return CN_EBUSY;
}

static int queue_pending(cn_conn *c, const cn_term *ctl, const cn_term *payload) {
  pend *p = cn_calloc(1, sizeof *p);
  if (!p) return CN_ENOMEM;
  int rc = cn_term_encode(ctl, &p->body);
  p->ctl_len = p->body.len;
  if (!rc && payload) rc = cn_term_encode(payload, &p->body);
  if (rc || c->pend_bytes + p->body.len > c->n->queue_limit) {
    size_t len = p->body.len;
    cn_buf_free(&p->body);
    cn_free(p);
    return rc ? rc : (len ? drop_full(c) : 0);
  }
  c->pend_bytes += p->body.len;
  *c->pend_tail = p;
  c->pend_tail = &p->next;
  return 0;
}

int conn_send_from(cn_node *n, cn_proc *sender, const cn_atom *peer, const cn_term *ctl, const cn_term *payload) {
  if (!peer || node_is_local(n, peer)) return CN_EINVAL;
  if (n->stopping) return 0;
  cn_conn *c = find(n, peer);
  if (!c) {
    /* An unreachable node drops the message, as the BEAM does (links and monitors see noconnection); a node that
     * could not even start the attempt for lack of memory tells the sender. */
    int rc = conn_connect(n, peer);
    if (rc) return rc == CN_ENOMEM ? rc : 0;
    c = find(n, peer);
    if (!c) return 0;
  }
  if (c->state != C_UP) return queue_pending(c, ctl, payload);
  if (queued(c) >= n->queue_limit) return drop_full(c);
  int rc = frame_terms(c, ctl, payload);
  /* Over the busy limit the sender stops being scheduled until the queue drains, as OTP suspends a process
   * sending on a busy distribution port. Its current handler runs to its end. */
  if (!rc && sender && !sender->dead && !sender->suspended && queued(c) > n->busy_limit) {
    sender->suspended = true;
    sender->susp_next = c->susp;
    c->susp = sender;
    n->stats.busy_suspensions++;
  }
  return rc;
}

/* Moves messages queued on `from` (a losing or failed setup) to `to`. */
static void adopt_pending(cn_conn *to, cn_conn *from) {
  if (!from->pend_head) return;
  *to->pend_tail = from->pend_head;
  to->pend_tail = from->pend_tail;
  to->pend_bytes += from->pend_bytes;
  from->pend_head = NULL;
  from->pend_tail = &from->pend_head;
  from->pend_bytes = 0;
}

/* ---- Closing ----------------------------------------------------------------------------------------- */

/* Best effort, for the last bytes before a close: alerts, a final status, close_notify. */
static void try_write(cn_conn *c, cn_buf *b) {
  if (b->len && c->tcp_open) {
    uv_buf_t ub = uv_buf_init((char *)b->data, (unsigned)b->len);
    uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
  }
  b->len = 0;
}

static void drop_socket(cn_conn *c) {
  if (c->tls && c->tcp_open && !c->writing) {
    dist_tls_close(c->tls, &c->tout); /* close_notify, as ssl:close sends */
    try_write(c, &c->tout);
  }
  if (c->tcp_open) {
    c->tcp_open = false;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
  }
}

static void conn_close(cn_conn *c, const char *reason) {
  if (c->state == C_CLOSING) return;
  cn_node *n = c->n;
  bool was_up = c->state == C_UP;
  c->state = C_CLOSING;
  if (c->in_hash) {
    HASH_DEL(n->conns, c);
    c->in_hash = false;
  } else if (!c->initiator) {
    unnamed_remove(c);
  }
  resume_all(c);
  if (was_up) node_notify(n, c->peer, false, reason);
  if (c->lookup) epmd_req_cancel(c->lookup);
  if (c->gai_pending) uv_cancel((uv_req_t *)&c->gai);
  drop_socket(c);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void setup_failed(cn_conn *c, const char *fmt, const char *detail) {
  c->n->stats.handshake_failures++;
  char msg[512];
  snprintf(msg, sizeof msg, fmt, detail);
  cn_log(c->n, CN_LOG_WARN, "handshake with %s failed: %s", who(c), msg);
  bool named = c->initiator || c->in_hash; /* the node's connection setup, ours or the peer's */
  conn_close(c, msg);
  /* Links and monitors made toward a node we could not reach end with noconnection, as in OTP. */
  if (named) link_nodedown(c->n, c->peer);
}

void conn_close_all(cn_node *n) {
  cn_conn *c, *tmp;
  HASH_ITER(hh, n->conns, c, tmp) conn_close(c, "node stopping");
  while (n->unnamed) conn_close(n->unnamed, "node stopping");
}

/* ---- Timers: setup timeout, then ticks --------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t) {
  cn_conn *c = t->data;
  if (c->state == C_UP) {
    switch (dist_tick_fire(&c->tick, uv_now(c->n->loop))) {
    case DIST_TICK_SEND:
      /* Without its tick the peer would count this node dead a net_ticktime later; fail now and say why. */
      if (cn_buf_put32(&c->out, 0)) {
        conn_close(c, "out of memory (tick)");
        break;
      }
      mark_dirty(c);
      break;
    case DIST_TICK_TIMEOUT:
      c->n->stats.tick_timeouts++;
      conn_close(c, "net_tick_timeout");
      break;
    default:
      break;
    }
  } else if (c->state == C_WAIT_PEER) {
    cn_log(c->n, CN_LOG_WARN, "connection to %s not established: the peer's own attempt never came", who(c));
    conn_close(c, "setup timeout");
    link_nodedown(c->n, c->peer);
  } else if (c->state != C_CLOSING) {
    c->n->stats.handshake_timeouts++;
    c->n->stats.handshake_failures--; /* counted as a timeout, not a refusal */
    setup_failed(c, "%s", c->state == C_TLS ? "TLS handshake timed out (no TLS answer: is the peer a plaintext node?)"
                                            : "setup timed out");
  }
}

/* ---- Reading ---------------------------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  cn_conn *c = h->data;
  size_t want = READ_CHUNK;
  if (c->tls) {
    /* Ciphertext goes to tin and is fed to OpenSSL at once; plaintext lands in c->in. */
    if (cn_buf_reserve(&c->tin, want)) {
      buf->base = NULL;
      buf->len = 0;
      return;
    }
    buf->base = (char *)c->tin.data + c->tin.len;
    buf->len = c->tin.cap - c->tin.len - 1;
    return;
  }
  /* Reserve a whole large frame at once rather than growing it chunk by chunk. */
  if (c->state == C_UP && c->in.len >= 4) {
    size_t flen = (size_t)cn_get32(c->in.data) + 4;
    if (flen > c->in.len && flen - c->in.len > want && flen <= c->n->max_msg + 4) want = flen - c->in.len;
  }
  if (cn_buf_reserve(&c->in, want)) {
    buf->base = NULL;
    buf->len = 0;
    return;
  }
  buf->base = (char *)c->in.data + c->in.len;
  buf->len = c->in.cap - c->in.len - 1;
}

/* The peer closed during setup: name the most likely cause for the log. */
static const char *closed_reason(cn_conn *c) {
  if (c->state == C_HANDSHAKE && c->initiator && dist_hs_awaiting_ack(&c->hs))
    return "peer closed the connection after our challenge reply: cookie mismatch (our digest was refused)";
  if (c->state == C_TLS)
    return "connection closed by peer during the TLS handshake, without a TLS alert (is the peer a plaintext node?)";
  return c->state == C_UP ? "connection closed" : "connection closed by peer during handshake";
}

static int hs_start(cn_conn *c);

/* TLS: decrypts what was read into c->in; the distribution handshake starts once TLS is up. */
static void tls_input(cn_conn *c, size_t nread) {
  bool was_up = dist_tls_is_up(c->tls);
  int r = dist_tls_feed(c->tls, c->tin.data, nread, &c->in, &c->tout);
  c->tin.len = 0;
  if (c->tout.len) mark_dirty(c);
  if (r < 0) {
    try_write(c, &c->tout); /* our alert tells the peer why */
    if (c->state == C_UP)
      conn_close(c, dist_tls_reason(c->tls));
    else
      setup_failed(c, "TLS: %s", dist_tls_reason(c->tls));
    return;
  }
  if (!was_up && dist_tls_is_up(c->tls)) {
    char d[300];
    dist_tls_describe(c->tls, d, sizeof d);
    cn_log(c->n, CN_LOG_DEBUG, "TLS with %s: %s", who(c), d);
    if (hs_start(c)) {
      setup_failed(c, "%s", "out of memory");
      return;
    }
  }
  if (c->state == C_UP) dist_tick_recv(&c->tick);
  process_input(c);
  if (r == DIST_TLS_CLOSED && c->state != C_CLOSING && c->state != C_WAIT_PEER) {
    if (c->state == C_UP)
      conn_close(c, "connection closed (TLS close_notify)");
    else
      setup_failed(c, "%s", closed_reason(c));
  }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  cn_conn *c = s->data;
  if (nread == 0) return;
  if (nread < 0) {
    /* UV_ENOBUFS: on_alloc had no memory for the read; the connection cannot go on. */
    if (c->state == C_UP) {
      conn_close(c, nread == UV_EOF ? "connection closed" : uv_strerror((int)nread));
    } else if (nread == UV_EOF && !c->initiator && c->state == C_HANDSHAKE && !c->hs.peer_name[0]) {
      /* Closed before saying its name: a peer that lost a simultaneous connect does exactly this. */
      cn_log(c->n, CN_LOG_DEBUG, "connection from %s closed before its handshake", who(c));
      conn_close(c, "closed before the handshake");
    } else {
      /* A reset or a read error during the setup fails it as a close does: logged, and links and monitors made
       * toward the node meanwhile end with noconnection (they waited forever when it was a plain close). */
      setup_failed(c, "%s", nread == UV_EOF ? closed_reason(c) : uv_strerror((int)nread));
    }
    return;
  }
  if (c->tls) {
    tls_input(c, (size_t)nread);
    return;
  }
  c->in.len += (size_t)nread;
  if (c->state == C_UP) dist_tick_recv(&c->tick);
  process_input(c);
}

static void start_io(cn_conn *c) {
  c->tcp.data = c;
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- Handshake ------------------------------------------------------------------------------------------- */

/* Moves the handshake's output to the socket's queue; CN_ENOMEM leaves it where it was (the caller fails the
 * setup: a message lost here would leave both sides waiting for the setup timeout). */
static int hs_output(cn_conn *c) {
  if (!c->hs.out.len) return 0;
  if (cn_buf_append(&c->out, c->hs.out.data, c->hs.out.len)) return CN_ENOMEM;
  cn_buf_consume(&c->hs.out, c->hs.out.len);
  mark_dirty(c);
  return 0;
}

static int hs_start(cn_conn *c) {
  cn_node *n = c->n;
  dist_hs_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.role = c->initiator ? DIST_HS_INITIATOR : DIST_HS_ACCEPTOR;
  cfg.name = n->name->name;
  cfg.cookie = n->cookie;
  cfg.flags = n->flags;
  cfg.creation = n->creation;
  /* RAND_bytes fails (0 or -1) when OpenSSL's generator cannot be seeded: the setup fails then, never spins. */
  while (!cfg.challenge) {
    if (RAND_bytes((unsigned char *)&cfg.challenge, sizeof cfg.challenge) != 1) {
      cn_log(n, CN_LOG_ERROR, "no random bytes for a handshake challenge (RAND_bytes failed)");
      return CN_EIO;
    }
  }
  cfg.peer_version = c->peer_version ? c->peer_version : 6;
  cfg.required_flags = DIST_FLAGS_MANDATORY_25;
  cfg.peer_name = c->initiator ? c->peer->name : NULL;
  cfg.len4 = c->tls != NULL; /* inet_tls_dist runs the handshake with {packet, 4} */
  int rc = dist_hs_init(&c->hs, &cfg);
  if (rc) return rc;
  c->hs_init = true;
  c->state = C_HANDSHAKE;
  return hs_output(c);
}

/* Writes what is queued now, before a close that follows a final status. */
static void write_now(cn_conn *c) {
  if (c->tls) {
    if (!c->writing && !tls_fill(c)) try_write(c, &c->wbuf);
    return;
  }
  if (!c->out.len || !c->tcp_open) return;
  uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
  uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  c->out.len = 0;
}

/* Acceptor: the peer said its name. Decide as net_kernel does on simultaneous connects. */
static const char *on_peer_name(cn_conn *c) {
  cn_node *n = c->n;
  /* The peer is not authenticated yet: look its name up, never create an atom for it. A name with no atom
   * has no connection of ours either; the atom is made once the handshake has proved the cookie. */
  const cn_atom *peer = cn_atoms_find(n->atoms, c->hs.peer_name, strlen(c->hs.peer_name));
  if (peer == n->name) return "not_allowed";
  cn_conn *old = peer ? find(n, peer) : NULL;
  if (!old) {
    /* A known name: the setup is that node's connection from now on, as net_kernel registers it, so a send to it
     * meanwhile queues here instead of starting a second connection (which made this one the loser of a
     * simultaneous connect after the peer had already counted it up: a nodedown and nodeup there). */
    if (peer) {
      c->peer = peer;
      unnamed_remove(c);
      if (!hash_add(c)) return "not_allowed";
    }
    return "ok";
  }
  c->peer = peer;
  if (old->state == C_UP) return "alive"; /* the initiator decides; on true we replace `old` at the end */
  if (old->state != C_WAIT_PEER && strcmp(n->name->name, peer->name) > 0) return "nok"; /* ours wins */
  /* Theirs wins (or ours was already refused): carry our queued messages over to it. */
  adopt_pending(c, old);
  conn_close(old, "simultaneous connect");
  unnamed_remove(c);
  if (!hash_add(c)) return "not_allowed";
  return strcmp(n->name->name, peer->name) > 0 ? "ok" : "ok_simultaneous";
}

static void conn_up(cn_conn *c) {
  cn_node *n = c->n;
  if (!c->peer && !(c->peer = cn_atoms_get(n->atoms, c->hs.peer_name))) {
    conn_close(c, "atom table full");
    return;
  }
  if (!c->in_hash) {
    cn_conn *old = find(n, c->peer);
    if (old && old->state != C_UP) adopt_pending(c, old); /* a setup of ours that started meanwhile */
    if (old) conn_close(old, old->state == C_UP ? "replaced by a new connection from the peer" : "simultaneous connect");
    unnamed_remove(c);
    if (!hash_add(c)) {
      conn_close(c, "out of memory");
      return;
    }
  }
  c->peer_flags = c->hs.peer_flags;
  if (dist_frags_new(&c->frags, n->max_msg, 64)) {
    conn_close(c, "out of memory");
    return;
  }
  c->state = C_UP;
  dist_tick_init(&c->tick, n->ticktime_ms, uv_now(n->loop));
  uint32_t iv = dist_tick_interval_ms(&c->tick);
  uv_timer_start(&c->timer, on_timer, iv, iv);
  node_notify(n, c->peer, true, NULL);
  while (c->pend_head && c->state == C_UP) {
    pend *p = c->pend_head;
    int rc = frame_bytes(c, p->body.data, p->ctl_len, p->body.len);
    if (rc) {
      /* A message lost from the middle of the stream would break the order promise; as the BEAM does, the
       * connection goes down instead (the queue is freed with it; links and monitors see noconnection). */
      conn_close(c, "out of memory");
      return;
    }
    c->pend_head = p->next;
    cn_buf_free(&p->body);
    cn_free(p);
  }
  c->pend_tail = &c->pend_head;
  c->pend_bytes = 0;
}

/* The initiator was refused with nok: the peer's own connection to us is coming; keep the queue for it. */
static void wait_for_peer(cn_conn *c) {
  cn_log(c->n, CN_LOG_DEBUG, "simultaneous connect with %s: waiting for its connection", who(c));
  c->state = C_WAIT_PEER;
  drop_socket(c);
  uv_timer_start(&c->timer, on_timer, c->n->hs_timeout_ms, 0);
}

static int handshake_step(cn_conn *c, size_t *off) {
  size_t used = 0, start = *off;
  int ev = dist_hs_feed(&c->hs, c->in.data + *off, c->in.len - *off, &used);
  *off += used;
  if (hs_output(c)) ev = CN_ENOMEM;
  if (ev < 0) {
    if (ev == CN_EREFUSED && c->initiator && dist_hs_refused_nok(&c->hs)) {
      wait_for_peer(c);
      return -1;
    }
    write_now(c);
    /* A TLS record where a plain handshake message should be: name the real cause. */
    const uint8_t *m = c->in.data + start;
    bool tls_peer = !c->tls && c->in.len - start >= 2 && (m[0] == 21 || m[0] == 22) && m[1] == 3;
    setup_failed(c, "%s", tls_peer ? "the peer speaks TLS (a -proto_dist inet_tls node) and this node runs plain TCP"
                          : c->hs.reason ? c->hs.reason : cn_strerror(ev));
    return -1;
  }
  switch (ev) {
  case DIST_HS_NAME: {
    const char *st = on_peer_name(c);
    if (dist_hs_accept_status(&c->hs, st) || hs_output(c)) {
      setup_failed(c, "%s", "out of memory");
      return -1;
    }
    if (!strcmp(st, "nok") || !strcmp(st, "not_allowed")) {
      cn_log(c->n, strcmp(st, "nok") ? CN_LOG_WARN : CN_LOG_DEBUG, "refused connection from %s: %s", who(c),
             strcmp(st, "nok") ? "not allowed" : "simultaneous connect, keeping ours");
      write_now(c);
      conn_close(c, st);
      return -1;
    }
    return 1;
  }
  case DIST_HS_ALIVE:
    if (dist_hs_alive_reply(&c->hs, true) || hs_output(c)) {
      setup_failed(c, "%s", "out of memory");
      return -1;
    }
    return 1;
  case DIST_HS_DONE:
    conn_up(c);
    return c->state == C_UP ? 1 : -1;
  default:
    return 0; /* more bytes needed */
  }
}

/* ---- Frames ---------------------------------------------------------------------------------------------- */

static int handle_body(cn_conn *c, const uint8_t *b, size_t len, bool versioned) {
  cn_node *n = c->n;
  cn_decode_opts opts = {.max_size = n->max_msg, .atom_limit = n->net_atom_limit, .cache = c->acache};
  size_t off = 0;
  cn_term *ctl = NULL, *pay = NULL;
  int rc;
  if (versioned && (len < 1 || b[off++] != 131)) return CN_EPROTO;
  if ((rc = cn_term_decode(n->atoms, b, len, &off, &opts, &ctl))) return rc;
  dist_ctl dc;
  rc = dist_ctl_parse(ctl, &dc);
  if (rc == CN_EUNSUPPORTED) {
    cn_log(n, CN_LOG_DEBUG, "ignoring unknown control message from %s", who(c));
    cn_term_free(ctl);
    return 0;
  }
  if (rc) goto out;
  if (dist_op_has_payload(dc.op)) {
    if (versioned && (off >= len || b[off++] != 131)) {
      rc = CN_EPROTO;
      goto out;
    }
    if ((rc = cn_term_decode(n->atoms, b, len, &off, &opts, &pay))) goto out;
  }
  if (off != len) {
    rc = CN_EPROTO;
    goto out;
  }
  rc = dispatch_ctl(n, c, c->peer, &dc, pay);
  pay = NULL;
out:
  cn_term_free(pay);
  cn_term_free(ctl);
  return rc;
}

static int handle_frame(cn_conn *c, const uint8_t *d, size_t len) {
  dist_msg_hdr h;
  int rc = dist_msg_hdr_parse(d, len, &h);
  if (rc) return rc;
  if (h.kind == DIST_MSG_PASS || h.kind == DIST_MSG_NORMAL)
    return handle_body(c, d + h.body_off, len - h.body_off, h.versioned);
  cn_buf done = {0};
  rc = dist_frags_add(c->frags, &h, d + h.body_off, len - h.body_off, &done);
  if (rc == 1) {
    rc = handle_body(c, done.data, done.len, false);
    cn_buf_free(&done);
  }
  return rc < 0 ? rc : 0;
}

static void process_input(cn_conn *c) {
  size_t off = 0;
  while (c->state == C_HANDSHAKE || c->state == C_UP) {
    if (c->state == C_HANDSHAKE) {
      int r = handshake_step(c, &off);
      if (r <= 0) break;
      continue;
    }
    const uint8_t *d;
    size_t dlen;
    ssize_t r = dist_frame_parse(c->in.data + off, c->in.len - off, c->n->max_msg, &d, &dlen);
    if (r == 0) break;
    if (r < 0) {
      c->n->stats.oversized_messages++;
      cn_log(c->n, CN_LOG_WARN, "dropping connection to %s: frame over the %zu-byte limit", who(c), c->n->max_msg);
      conn_close(c, "frame too large");
      break;
    }
    off += (size_t)r;
    if (dlen == 0) continue; /* a tick */
    int rc = handle_frame(c, d, dlen);
    if (rc == CN_ENOMEM) {
      cn_log(c->n, CN_LOG_WARN, "dropping connection to %s: out of memory for a message", who(c));
      conn_close(c, "out of memory");
      break;
    }
    if (rc < 0) {
      if (rc == CN_ELIMIT)
        c->n->stats.oversized_messages++;
      else
        c->n->stats.protocol_errors++;
      cn_log(c->n, CN_LOG_WARN, "dropping connection to %s: bad message: %s", who(c), cn_strerror(rc));
      conn_close(c, "protocol error");
      break;
    }
  }
  if (c->state != C_CLOSING && c->state != C_WAIT_PEER) cn_buf_consume(&c->in, off);
}

/* ---- Transport: TLS contexts, and the first step of a new connection ------------------------------------ */

int conn_tls_init(cn_node *n, const cn_tls_opts *o) {
  char err[512] = "";
  int rc = dist_tls_ctx_new(&n->tls_srv, &o->server, true, err, sizeof err);
  if (!rc) rc = dist_tls_ctx_new(&n->tls_cli, &o->client, false, err, sizeof err);
  if (rc) {
    cn_log(n, CN_LOG_ERROR, "TLS distribution: %s", err[0] ? err : cn_strerror(rc));
    conn_tls_free(n);
    return rc;
  }
  cn_log(n, CN_LOG_INFO, "TLS distribution (inet_tls): accepting with %s%s, connecting with %s",
         dist_tls_ctx_verifies(n->tls_srv) ? "verify_peer" : "verify_none",
         o->server.fail_if_no_peer_cert ? " and fail_if_no_peer_cert" : "",
         dist_tls_ctx_verifies(n->tls_cli) ? "verify_peer" : "verify_none");
  if (!dist_tls_ctx_verifies(n->tls_cli))
    cn_log(n, CN_LOG_WARN, "TLS distribution: servers' certificates are not checked (verify_none): give a "
           "cacertfile to authenticate peers");
  return 0;
}

void conn_tls_free(cn_node *n) {
  dist_tls_ctx_free(n->tls_srv);
  dist_tls_ctx_free(n->tls_cli);
  n->tls_srv = n->tls_cli = NULL;
}

static const char *peer_host(const cn_atom *peer);

/* A connected or accepted socket: the TLS handshake first when the node runs TLS, else the distribution
 * handshake at once. */
static int begin_setup(cn_conn *c) {
  cn_node *n = c->n;
  if (!n->tls_srv) return hs_start(c);
  int rc = dist_tls_new(&c->tls, c->initiator ? n->tls_cli : n->tls_srv, c->initiator ? peer_host(c->peer) : NULL);
  if (rc) return rc;
  c->state = C_TLS;
  if (c->initiator) {
    rc = dist_tls_start(c->tls, &c->tout);
    if (c->tout.len) mark_dirty(c);
  }
  return rc;
}

/* ---- Accepting ----------------------------------------------------------------------------------------- */

static void refuse(cn_node *n, const char *why);

static void refuse_closed(uv_handle_t *h) {
  cn_node *n = h->data;
  n->refuse_busy = false;
  if (n->refuse_waiting && n->listening && !n->stopping) refuse(n, "a connection waited to be refused");
}

/* Accepts the connection libuv holds and closes it at once, with no allocation (out of memory is one reason).
 * A connection libuv accepted and nobody took stops it polling the listener: the node would never accept again.
 * While the spare handle is still closing, the connection waits and is refused when it is free. */
static void refuse(cn_node *n, const char *why) {
  if (n->refuse_busy) {
    n->refuse_waiting = true;
    return;
  }
  n->refuse_waiting = false;
  uv_tcp_init(n->loop, &n->refuse);
  n->refuse.data = n;
  if (!uv_accept((uv_stream_t *)&n->listener, (uv_stream_t *)&n->refuse)) {
    n->stats.connections_refused++;
    cn_log(n, CN_LOG_WARN, "connection refused: %s", why);
  }
  n->refuse_busy = true;
  uv_close((uv_handle_t *)&n->refuse, refuse_closed);
}

void conn_on_accept(uv_stream_t *server, int status) {
  cn_node *n = server->data;
  if (status < 0 || n->stopping) return;
  if (n->nconns >= n->max_conns) {
    /* Accept and close at once, so the backlog does not fill with sockets nobody will serve. */
    char why[96];
    snprintf(why, sizeof why, "%zu connections, the max_connections limit", n->nconns);
    refuse(n, why);
    return;
  }
  cn_conn *c = conn_new(n, NULL, false);
  if (!c) {
    refuse(n, "out of memory");
    return;
  }
  uv_tcp_init(n->loop, &c->tcp);
  c->tcp.data = c;
  c->tcp_open = true;
  c->refs++;
  c->unnamed_next = n->unnamed;
  n->unnamed = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp)) {
    conn_close(c, "accept failed");
    return;
  }
  struct sockaddr_storage ss;
  int len = sizeof ss;
  char ip[48] = "?";
  uint16_t port = 0;
  if (!uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len)) {
    if (ss.ss_family == AF_INET) {
      uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
      port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    } else {
      uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
      port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
  }
  snprintf(c->addr, sizeof c->addr, "%s:%u", ip, port);
  if (begin_setup(c)) {
    setup_failed(c, "%s", c->tls ? dist_tls_reason(c->tls) : "out of memory");
    return;
  }
  start_io(c);
}

/* ---- Connecting --------------------------------------------------------------------------------------- */

static void on_connected(uv_connect_t *req, int status) {
  cn_conn *c = req->data;
  if (c->state != C_CLOSING) {
    if (status < 0)
      setup_failed(c, "connect: %s", uv_strerror(status));
    else if (begin_setup(c))
      setup_failed(c, "%s", c->tls ? dist_tls_reason(c->tls) : "out of memory");
    else
      start_io(c);
  }
  unref(c);
}

static void connect_addr(cn_conn *c, const struct sockaddr *sa) {
  uv_tcp_init(c->n->loop, &c->tcp);
  c->tcp.data = c;
  c->tcp_open = true;
  c->refs++;
  c->state = C_CONNECTING;
  c->creq.data = c;
  int rc = uv_tcp_connect(&c->creq, &c->tcp, sa, on_connected);
  if (rc) {
    setup_failed(c, "connect: %s", uv_strerror(rc));
    return;
  }
  c->refs++;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  cn_conn *c = req->data;
  c->gai_pending = false;
  if (c->state != C_CLOSING) {
    if (status < 0 || !res) {
      setup_failed(c, "cannot resolve host: %s", uv_strerror(status));
    } else {
      struct sockaddr_storage ss;
      memcpy(&ss, res->ai_addr, res->ai_addrlen);
      if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons(c->peer_port);
      else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(c->peer_port);
      connect_addr(c, (struct sockaddr *)&ss);
    }
  }
  if (res) uv_freeaddrinfo(res);
  unref(c);
}

static const char *peer_host(const cn_atom *peer) { return strchr(peer->name, '@') + 1; }

static void on_lookup(int status, const epmd_node_info *info, void *ctx) {
  cn_conn *c = ctx;
  c->lookup = NULL;
  if (c->state != C_CLOSING) {
    if (status) {
      char d[300];
      snprintf(d, sizeof d, "EPMD on %s has no port for it (%s)", peer_host(c->peer), cn_strerror(status));
      setup_failed(c, "%s", d);
    } else {
      c->peer_port = info->port;
      c->peer_version = info->highest >= 6 ? 6 : 5;
      struct sockaddr_storage ss;
      const char *host = peer_host(c->peer);
      if (!uv_ip4_addr(host, c->peer_port, (struct sockaddr_in *)&ss) ||
          !uv_ip6_addr(host, c->peer_port, (struct sockaddr_in6 *)&ss)) {
        connect_addr(c, (struct sockaddr *)&ss);
      } else {
        struct addrinfo hints;
        memset(&hints, 0, sizeof hints);
        hints.ai_socktype = SOCK_STREAM;
        c->gai.data = c;
        if (uv_getaddrinfo(c->n->loop, &c->gai, on_resolved, host, NULL, &hints)) {
          setup_failed(c, "%s", "cannot resolve host");
        } else {
          c->gai_pending = true;
          c->refs++;
        }
      }
    }
  }
  unref(c);
}

int conn_connect(cn_node *n, const cn_atom *peer) {
  if (n->stopping) return CN_ESTATE;
  if (find(n, peer)) return 0;
  const char *at = strchr(peer->name, '@');
  if (!at || at == peer->name || !at[1]) return CN_EINVAL;
  cn_conn *c = conn_new(n, peer, true);
  if (!c) return CN_ENOMEM;
  if (!hash_add(c)) {
    conn_close(c, "out of memory");
    return CN_ENOMEM;
  }
  c->state = C_LOOKUP;
  char alive[CN_ATOM_MAX_BYTES + 1]; /* a node name is an atom: up to 255 characters, 1,020 bytes */
  size_t al = (size_t)(at - peer->name);
  memcpy(alive, peer->name, al);
  alive[al] = 0;
  int rc = epmd_port_please(n->loop, at + 1, n->epmd_port, alive, n->hs_timeout_ms, on_lookup, c, &c->lookup);
  if (rc) {
    setup_failed(c, "EPMD lookup: %s", cn_strerror(rc));
    return rc;
  }
  c->refs++;
  return 0;
}

int conn_disconnect(cn_node *n, const cn_atom *peer) {
  cn_conn *c = find(n, peer);
  if (!c) return CN_ENOCONN;
  cn_log(n, CN_LOG_DEBUG, "disconnecting %s", peer->name);
  bool up = c->state == C_UP;
  conn_close(c, "disconnected");
  if (!up) link_nodedown(n, peer);
  return 0;
}

/* ---- Queries ---------------------------------------------------------------------------------------------- */

uint64_t conn_peer_flags(cn_node *n, const cn_atom *peer) {
  cn_conn *c = find(n, peer);
  return c && c->state == C_UP ? c->peer_flags : 0;
}

bool cn_node_is_up(cn_node *n, const cn_atom *node, int which) {
  cn_conn *c = node ? find(n, node) : NULL;
  return c && c->state == C_UP && (which & (c->peer_flags & DFLAG_PUBLISHED ? CN_NODES_VISIBLE : CN_NODES_HIDDEN));
}

size_t cn_nodes(cn_node *n, int which, const cn_atom **out, size_t max) {
  size_t k = 0;
  for (cn_conn *c = n->conns; c; c = c->hh.next) {
    if (c->state != C_UP) continue;
    if (!(which & (c->peer_flags & DFLAG_PUBLISHED ? CN_NODES_VISIBLE : CN_NODES_HIDDEN))) continue;
    if (k < max) out[k] = c->peer;
    k++;
  }
  return k;
}

/* ---- Test hooks: a connection without a socket (fuzz/fuzz_node.c) ----------------------------------------- */

int conn_test_up(cn_node *n, const cn_atom *peer, uint64_t peer_flags) {
  if (!peer || node_is_local(n, peer) || n->stopping || !strchr(peer->name, '@')) return CN_EINVAL;
  cn_conn *c = conn_new(n, peer, false);
  if (!c) return CN_ENOMEM;
  snprintf(c->addr, sizeof c->addr, "test");
  c->hs.peer_flags = peer_flags; /* what conn_up takes from a finished handshake */
  conn_up(c);
  return c->state == C_UP ? 0 : CN_ENOMEM;
}

/* Only a socketless connection that is up: c->in then holds exactly what earlier feeds left unparsed. */
static cn_conn *test_conn(cn_node *n, const cn_atom *peer) {
  cn_conn *c = peer ? find(n, peer) : NULL;
  return c && !c->tcp_open && c->state == C_UP ? c : NULL;
}

int conn_test_feed(cn_node *n, const cn_atom *peer, const uint8_t *p, size_t len) {
  cn_conn *c = test_conn(n, peer);
  if (!c) return CN_ENOCONN;
  if (cn_buf_append(&c->in, p, len)) return CN_ENOMEM;
  dist_tick_recv(&c->tick);
  process_input(c);
  return 0;
}

int conn_test_output(cn_node *n, const cn_atom *peer, cn_buf *out) {
  cn_conn *c = test_conn(n, peer);
  if (!c) return CN_ENOCONN;
  int rc = out ? cn_buf_append(out, c->out.data, c->out.len) : 0;
  c->out.len = 0;
  /* As a finished write does (on_written): the queue drained, suspended senders run again. */
  c->dropping = false;
  resume_all(c);
  return rc;
}
