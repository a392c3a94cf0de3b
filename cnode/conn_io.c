/* conn_io.c: a connection's read and write paths: reading (through TLS when it runs), frames decoded and
 * dispatched, framing of outgoing messages, the send queue with its busy and queue limits, and output batching
 * (one write per connection per loop turn). Protocol decisions live in dist/; this file only moves bytes. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "conn_int.h"

/* Outgoing messages are fragmented only past 1 GiB (frames carry a 4-byte length). A message's fragments would
 * be written back to back from one buffer anyway, so smaller fragments buy no interleaving here; they cost a
 * memmove of the body, and a BEAM receiver a reassembly copy (an unfragmented binary stays a sub-binary of the
 * packet): 1 MiB binaries to a BEAM peer went from 0.88x to 1.42x of BEAM->BEAM throughput (quick bench, pinned). */
#define FRAG_SIZE ((size_t)1 << 30)
#define READ_CHUNK 65536

/* Under plain TCP a binary of WRITEV_MIN bytes or more held in a chunk (built by cn_mk_binary, or received and
 * shared with its read chunk) is not copied into out: the write sends it from its own bytes, one writev of out's
 * pieces and the binaries between them. At most SEG_MAX binaries per write (2 * SEG_MAX + 1 iovecs, under
 * IOV_MAX); more are copied. WRITEV_MIN: below it the copy costs about what a segment does (its reference, its
 * iovec, a chunk held a loop turn longer), and cn_mk_binary puts binaries in chunks from the same size on. */
#define WRITEV_MIN CN_BINARY_CHUNK_MIN
#define SEG_MAX 64

size_t conn_queued(const cn_conn *c) { return c->out.len + c->wbuf.len + c->tout.len + c->oseg.bytes + c->wseg.bytes; }

/* ---- Large binaries written from their own bytes ---------------------------------------------------------- */

/* Drops g's segments from index from on (their references go). */
static void segs_cut(conn_segs *g, size_t from) {
  for (size_t i = from; i < g->n; i++) {
    g->bytes -= g->s[i].len;
    cn_chunk_release(g->s[i].k);
  }
  if (from < g->n) g->n = from;
}

/* An idle connection's empty segment array goes (it comes back with the next large binary). */
static void segs_trim(conn_segs *g) {
  if (g->n) return;
  cn_free(g->s);
  *g = (conn_segs){0};
}

void conn_segs_free(cn_conn *c) {
  segs_cut(&c->oseg, 0);
  segs_cut(&c->wseg, 0);
  cn_free(c->oseg.s);
  cn_free(c->wseg.s);
  c->oseg = c->wseg = (conn_segs){0};
}

/* The encoder's callback: a binary left out of c->out, kept alive by a reference until it is written. */
static int seg_add(void *ctx, size_t at, cn_chunk *k, const uint8_t *p, size_t len) {
  conn_segs *g = &((cn_conn *)ctx)->oseg;
  if (g->n == g->cap) {
    size_t cap = g->cap ? 2 * g->cap : 4;
    conn_seg *s = cn_realloc(g->s, cap * sizeof *s);
    if (!s) return CN_ENOMEM;
    g->s = s;
    g->cap = cap;
  }
  cn_chunk_retain(k);
  g->s[g->n++] = (conn_seg){at, k, p, len};
  g->bytes += len;
  return 0;
}

/* The pieces of buf with g's binaries spliced in, as at most 2 * SEG_MAX + 1 iovecs; returns their number. */
static unsigned iov_fill(const cn_buf *b, const conn_segs *g, uv_buf_t *v) {
  unsigned n = 0;
  size_t pos = 0;
  for (size_t i = 0; i < g->n; i++) {
    if (g->s[i].at > pos) v[n++] = uv_buf_init((char *)b->data + pos, (unsigned)(g->s[i].at - pos));
    v[n++] = uv_buf_init((char *)g->s[i].p, (unsigned)g->s[i].len);
    pos = g->s[i].at;
  }
  if (b->len > pos) v[n++] = uv_buf_init((char *)b->data + pos, (unsigned)(b->len - pos));
  return n;
}

int conn_out_take(cn_conn *c, cn_buf *dst) {
  int rc = 0;
  if (dst) {
    uv_buf_t v[2 * SEG_MAX + 1];
    unsigned n = iov_fill(&c->out, &c->oseg, v);
    for (unsigned i = 0; i < n && !rc; i++) rc = cn_buf_append(dst, v[i].base, v[i].len);
  }
  c->out.len = 0;
  segs_cut(&c->oseg, 0);
  return rc;
}

/* ---- Output ------------------------------------------------------------------------------------------ */

void conn_mark_dirty(cn_conn *c) {
  if (c->dirty) return;
  c->dirty = true;
  c->dirty_next = c->n->dirty;
  c->n->dirty = c;
}

/* The write of wbuf and wseg's binaries is done: counted, wbuf emptied, the binaries' references dropped (a sender
 * may have freed its term long ago); the suspended senders resume once the queue drained. */
static void written(cn_conn *c) {
  c->bytes_out += c->wbuf.len + c->wseg.bytes;
  c->n->stats.bytes_out += c->wbuf.len + c->wseg.bytes;
  c->wbuf.len = 0;
  segs_cut(&c->wseg, 0);
  if (c->state != C_CLOSING && conn_queued(c) <= c->n->busy_limit) {
    c->dropping = false;
    conn_resume_all(c);
  }
}

static void on_written(uv_write_t *req, int status) {
  cn_conn *c = req->data;
  c->writing = false;
  if (status < 0) {
    c->wbuf.len = 0;
    segs_cut(&c->wseg, 0);
    if (status != UV_ECANCELED && c->state != C_CLOSING) conn_close(c, uv_strerror(status));
  } else {
    written(c);
    if (c->state != C_CLOSING && (c->out.len || c->tout.len)) conn_mark_dirty(c);
  }
  conn_unref(c);
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

/* As uv_try_write (the bytes written, or UV_EAGAIN or another UV_* error), through send or sendmsg on the socket:
 * on a socket they skip the file layer write and writev go through (a few hundred nanoseconds a call on the
 * 2-vCPU machines, measured as the share of write's samples in the file layer). Called only with no uv_write in
 * flight, so nothing queued in libuv is overtaken. */
static ssize_t sock_send(cn_conn *c, uv_buf_t *v, unsigned nv) {
  uv_os_fd_t fd;
  if (uv_fileno((const uv_handle_t *)&c->tcp, &fd)) return uv_try_write((uv_stream_t *)&c->tcp, v, nv);
  ssize_t r;
  if (nv == 1) {
    r = send(fd, v[0].base, v[0].len, MSG_DONTWAIT | MSG_NOSIGNAL);
  } else {
    /* uv_buf_t is laid out as struct iovec on Unix (libuv says so). */
    struct msghdr m = {.msg_iov = (struct iovec *)v, .msg_iovlen = nv};
    r = sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
  }
  if (r >= 0) return r;
  return errno == EAGAIN || errno == EWOULDBLOCK ? UV_EAGAIN : -errno;
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
    conn_segs g = c->wseg; /* empty: the last write's references went in written() */
    c->wseg = c->oseg;
    c->oseg = g;
  }
  if (c->state == C_UP) dist_tick_sent(&c->tick);
  /* One writev: wbuf's pieces and the large binaries between them. Written at once when the socket takes it all:
   * uv_write would write as much now, but report it in the next loop turn (one more turn, an epoll_wait(0) and an
   * epoll_ctl to disarm the writability watcher per flush). */
  uv_buf_t v[2 * SEG_MAX + 1];
  unsigned nv =
      c->tls ? (v[0] = uv_buf_init((char *)c->wbuf.data, (unsigned)c->wbuf.len), 1) : iov_fill(&c->wbuf, &c->wseg, v);
  ssize_t rc = sock_send(c, v, nv);
  if (rc < 0 && rc != UV_EAGAIN) {
    conn_close(c, uv_strerror((int)rc));
    return;
  }
  size_t done = rc > 0 ? (size_t)rc : 0;
  unsigned i = 0;
  for (; i < nv && done >= v[i].len; i++) done -= v[i].len;
  if (i == nv) {
    written(c);
    return;
  }
  /* The rest goes with uv_write (libuv copies the array) and stays in flight until the socket took it: output
   * queued meanwhile goes out in one later write. */
  v[i].base += done;
  v[i].len -= done;
  c->wreq.data = c;
  rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, v + i, nv - i, on_written);
  if (rc) {
    conn_close(c, uv_strerror((int)rc));
    return;
  }
  c->writing = true;
  c->refs++;
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

/* Encodes t into out; under plain TCP (copy false) its large binaries are left out, as segments to write. */
static int frame_term(cn_conn *c, const cn_term *t, bool copy) {
  cn_encode_ext x = {WRITEV_MIN, SEG_MAX - c->oseg.n, seg_add, c};
  bool ext = !copy && !c->tls && c->oseg.n < SEG_MAX;
  return cn_term_encode_ext(t, &c->out, frag_mode(c) ? 0 : 1, ext ? &x : NULL);
}

static int frame_raw(cn_conn *c, const uint8_t *p, size_t n) {
  if (!frag_mode(c) && cn_buf_put8(&c->out, 131)) return CN_ENOMEM;
  return cn_buf_append(&c->out, p, n);
}

/* Ends the frame opened at start, or drops it when rc reports a failure while filling it. ext: the bytes of its
 * binaries left out of out (segments from index seg0 on), which its length counts. */
static int frame_close(cn_conn *c, size_t start, size_t seg0, size_t ext, int rc) {
  if (!rc) {
    size_t len = c->out.len - start - 4 + ext;
    if (ext && len > UINT32_MAX) rc = CN_ELIMIT;
    else if (frag_mode(c) && !ext) rc = dist_msg_end(&c->out, start, ++c->n->frag_seq, FRAG_SIZE);
    else cn_set32(c->out.data + start, (uint32_t)len); /* unfragmented (the caller made sure with ext) */
  }
  if (rc) {
    c->out.len = start;
    segs_cut(&c->oseg, seg0);
    return rc;
  }
  conn_mark_dirty(c);
  return 0;
}

static int frame_terms(cn_conn *c, const cn_term *ctl, const cn_term *payload) {
  size_t start = frame_open(c);
  if (start == SIZE_MAX) return CN_ENOMEM;
  size_t seg0 = c->oseg.n, ext0 = c->oseg.bytes;
  int rc = frame_term(c, ctl, false);
  if (!rc && payload) rc = frame_term(c, payload, false);
  size_t ext = c->oseg.bytes - ext0;
  if (!rc && ext && frag_mode(c) && c->out.len - start - 4 + ext > FRAG_SIZE) {
    /* Fragments are cut from one buffer: a message this large (past 1 GiB) is copied after all. */
    c->out.len = start + 7; /* back to after the normal header (length, 131, 68, 0) */
    segs_cut(&c->oseg, seg0);
    ext = 0;
    rc = frame_term(c, ctl, true);
    if (!rc && payload) rc = frame_term(c, payload, true);
  }
  return frame_close(c, start, seg0, ext, rc);
}

/* Frames control and payload bytes that were encoded while the peer was still connecting. */
int conn_frame_bytes(cn_conn *c, const uint8_t *body, size_t ctl_len, size_t len) {
  size_t start = frame_open(c);
  if (start == SIZE_MAX) return CN_ENOMEM;
  int rc = frame_raw(c, body, ctl_len);
  if (!rc && len > ctl_len) rc = frame_raw(c, body + ctl_len, len - ctl_len);
  return frame_close(c, start, c->oseg.n, 0, rc);
}

/* A message that does not fit under queue_limit is dropped and counted, as the limit promises. */
static int drop_full(cn_conn *c) {
  c->n->stats.messages_dropped++;
  if (!c->dropping)
    cn_log(c->n, CN_LOG_WARN, "queue to %s over %zu bytes: dropping messages until it drains", conn_who(c),
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
  cn_conn *c = conn_find(n, peer);
  if (!c) {
    /* An unreachable node drops the message, as the BEAM does (links and monitors see noconnection); a node that
     * could not even start the attempt for lack of memory tells the sender. */
    int rc = conn_connect(n, peer);
    if (rc) return rc == CN_ENOMEM ? rc : 0;
    c = conn_find(n, peer);
    if (!c) return 0;
  }
  int rc;
  if (c->state != C_UP) {
    rc = queue_pending(c, ctl, payload);
  } else if (conn_queued(c) >= n->queue_limit) {
    return drop_full(c);
  } else {
    rc = frame_terms(c, ctl, payload);
  }
  if (!rc) {
    c->msgs_out++;
    n->stats.messages_out++;
  }
  if (c->state != C_UP) return rc;
  /* Over the busy limit the sender stops being scheduled until the queue drains, as OTP suspends a process
   * sending on a busy distribution port. Its current handler runs to its end. */
  if (!rc && sender && !sender->dead && !sender->suspended && conn_queued(c) > n->busy_limit) {
    sender->suspended = true;
    sender->susp_next = c->susp;
    c->susp = sender;
    c->busy++;
    n->stats.busy_suspensions++;
  }
  return rc;
}

/* Best effort, for the last bytes before a close: alerts, a final status, close_notify. */
void conn_try_write(cn_conn *c, cn_buf *b) {
  if (b->len && c->tcp_open) {
    uv_buf_t ub = uv_buf_init((char *)b->data, (unsigned)b->len);
    uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
  }
  b->len = 0;
}

/* Writes what is queued now, before a close that follows a final status. */
void conn_write_now(cn_conn *c) {
  if (c->tls) {
    if (!c->writing && !tls_fill(c)) conn_try_write(c, &c->wbuf);
    return;
  }
  if (!c->out.len || !c->tcp_open) return;
  uv_buf_t v[2 * SEG_MAX + 1];
  uv_try_write((uv_stream_t *)&c->tcp, v, iov_fill(&c->out, &c->oseg, v));
  conn_out_take(c, NULL);
}

/* ---- Reading ---------------------------------------------------------------------------------------------- */

/* ---- The read buffer ------------------------------------------------------------------------------------ */

/* Under plain TCP the bytes read land in a chunk (c->in views it) that decoded binaries of CN_SHARE_MIN bytes or
 * more point into instead of copying. While such a binary lives the chunk is shared and its bytes stay as they
 * are: the unparsed rest moves to another chunk, and the shared one waits among the spares until its binaries
 * are freed, to be read into again. So a steady stream cycles through a few chunks, with no allocation and no copy
 * of a message's size per message. Under TLS the same chunks take the plaintext: OpenSSL decrypts into c->in's
 * free room (dist_tls_read), sized as a read's. */
#define SHARE_MIN 512
#define IDLE_READ 1024
#define IDLE_KEEP 2048
#define READ_RUN_BUDGET 1024 /* messages run after a read whose chunk they hold */
static void in_view(cn_conn *c, cn_chunk *k) {
  c->in_chunk = k;
  c->in.data = cn_chunk_data(k);
  c->in.cap = cn_chunk_cap(k);
}

/* Room to ask for, at least want: the rest of a large frame whose header is in c->in, so that it lands in one
 * chunk reserved at once rather than grown piece by piece. */
static size_t in_want(const cn_conn *c, size_t want) {
  if (c->state == C_UP && c->in.len >= 4) {
    size_t flen = (size_t)cn_get32(c->in.data) + 4;
    if (flen > c->in.len && flen - c->in.len > want && flen <= c->n->max_msg + 4) want = flen - c->in.len;
  }
  return want;
}

/* Capacity for need bytes: doubling from cap for small growth, whole 4 KiB pages past 4 KiB. */
static size_t in_cap(size_t cap, size_t need) {
  size_t c = cap && cap <= SIZE_MAX / 2 && 2 * cap > need ? 2 * cap : need;
  return c <= 4096 || c > SIZE_MAX - 4095 ? c : (c + 4095) & ~(size_t)4095;
}

/* Moves c->in's bytes from off on into another chunk of at least need bytes; the current one becomes a spare. */
static int in_switch(cn_conn *c, size_t off, size_t need) {
  size_t rest = c->in.len - off;
  if (need < rest + 1) need = rest + 1;
  cn_chunk *k = cn_chunk_pool_take(&c->spare, need);
  if (!k && !(k = cn_chunk_new(in_cap(0, need)))) return CN_ENOMEM;
  if (rest) memcpy(cn_chunk_data(k), c->in.data + off, rest);
  cn_chunk_pool_put(&c->spare, c->in_chunk);
  in_view(c, k);
  c->in.len = rest;
  c->in.data[rest] = 0;
  return 0;
}

int conn_in_reserve(cn_conn *c, size_t want) {
  if (want > SIZE_MAX - c->in.len - 1) return CN_ENOMEM;
  size_t need = c->in.len + want + 1;
  cn_chunk *k = c->in_chunk;
  if (k && !cn_chunk_shared(k)) {
    if (need <= c->in.cap) return 0;
    cn_chunk *r = cn_chunk_resize(k, in_cap(c->in.cap, need));
    if (!r) return CN_ENOMEM;
    in_view(c, r);
    return 0;
  }
  return in_switch(c, 0, need);
}

/* Drops the first off bytes of c->in (parsed): in place, unless a decoded binary shares the chunk. */
static void in_consume(cn_conn *c, size_t off) {
  if (!c->in_chunk || !cn_chunk_shared(c->in_chunk)) {
    cn_buf_consume(&c->in, off);
    return;
  }
  size_t need = READ_CHUNK;
  if (c->state == C_UP && c->in.len - off >= 4) {
    size_t flen = (size_t)cn_get32(c->in.data + off) + 4;
    if (flen > need && flen <= c->n->max_msg + 4) need = flen;
  }
  if (in_switch(c, off, need + 1)) {
    cn_log(c->n, CN_LOG_WARN, "dropping connection to %s: out of memory for the read buffer", conn_who(c));
    conn_close(c, "out of memory");
  }
}

void conn_in_free(cn_conn *c) {
  if (c->in_chunk) {
    cn_chunk_release(c->in_chunk);
    c->in_chunk = NULL;
    c->in = (cn_buf){0};
  } else {
    cn_buf_free(&c->in);
  }
  cn_chunk_pool_clear(&c->spare);
}

void conn_idle(cn_conn *c) {
  /* A small read chunk stays: ticks keep arriving, and each would take memory again. */
  if (c->in.len == 0 && c->in_chunk && cn_chunk_cap(c->in_chunk) > IDLE_KEEP && !cn_chunk_shared(c->in_chunk)) {
    if (c->ur_reading) uring_cancel(c); /* the ring's recv reads into it: it goes when that recv ends (uring.c) */
    else conn_in_free(c);
  }
  cn_chunk_pool_clear(&c->spare);
  dist_frags_idle(c->frags);
  c->read_big = false;
  if (!c->out.len) cn_buf_free(&c->out);
  if (!c->writing && !c->wbuf.len) cn_buf_free(&c->wbuf);
  segs_trim(&c->oseg);
  if (!c->writing) segs_trim(&c->wseg);
  if (c->tls) {
    /* The ciphertext buffer (tin is empty between reads), the record buffers and OpenSSL's memory BIOs: an idle
     * TLS connection then holds about what a plain one does; the next read takes a small tin again. */
    cn_buf_free(&c->tin);
    if (!c->tout.len) cn_buf_free(&c->tout);
    if (c->state == C_UP) dist_tls_idle(c->tls);
  }
}

int conn_read_room(cn_conn *c, uv_buf_t *buf) {
  /* Small until a read fills its buffer: an idle connection holds little memory. */
  if (conn_in_reserve(c, in_want(c, c->read_big ? READ_CHUNK : IDLE_READ))) return CN_ENOMEM;
  buf->base = (char *)c->in.data + c->in.len;
  buf->len = c->in.cap - c->in.len - 1;
  return 0;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  cn_conn *c = h->data;
  /* Small until a read fills its buffer: an idle connection holds little memory. */
  size_t want = c->read_big ? READ_CHUNK : IDLE_READ;
  if (c->tls) {
    /* Ciphertext goes to tin, where OpenSSL reads it (dist_tls_push borrows it: tls_decrypt takes all before the
     * next read); plaintext lands in c->in. Small until a read fills
     * it, as a plain read; then 128 KiB (cn_buf_reserve's doubling of READ_CHUNK + 1): measured, a 64 KiB window
     * costs 3% more instructions on a stream of 64 KiB messages (more frames cut across reads). */
    if (cn_buf_reserve(&c->tin, want)) {
      buf->base = NULL;
      buf->len = 0;
      return;
    }
    buf->base = (char *)c->tin.data + c->tin.len;
    buf->len = c->tin.cap - c->tin.len - 1;
    return;
  }
  if (conn_read_room(c, buf)) {
    buf->base = NULL;
    buf->len = 0;
  }
}

/* The peer closed during setup: name the most likely cause for the log. */
static const char *closed_reason(cn_conn *c) {
  if (c->state == C_HANDSHAKE && c->initiator && c->hs && dist_hs_awaiting_ack(c->hs))
    return "peer closed the connection after our challenge reply: cookie mismatch (our digest was refused)";
  if (c->state == C_TLS)
    return "connection closed by peer during the TLS handshake, without a TLS alert (is the peer a plaintext node?)";
  return c->state == C_UP ? "connection closed" : "connection closed by peer during handshake";
}

/* TLS: the plaintext of what was pushed, decrypted into c->in's chunk (room for all of it, or for the rest of a
 * large frame, reserved before each record as on_alloc does before a read). */
static int tls_decrypt(cn_conn *c) {
  for (;;) {
    size_t got, want = in_want(c, dist_tls_readable(c->tls));
    if (conn_in_reserve(c, want ? want : 1)) return CN_ENOMEM;
    int r = dist_tls_read(c->tls, c->in.data + c->in.len, c->in.cap - c->in.len - 1, &got, &c->tout);
    c->in.len += got;
    if (r != DIST_TLS_UP || !got) return r;
  }
}

/* TLS: decrypts what was read into c->in; the distribution handshake starts once TLS is up. */
static void tls_input(cn_conn *c, size_t nread) {
  bool was_up = dist_tls_is_up(c->tls);
  int r = dist_tls_push(c->tls, c->tin.data, nread, &c->tout);
  c->tin.len = 0;
  if (r == DIST_TLS_UP) r = tls_decrypt(c);
  if (c->tout.len) conn_mark_dirty(c);
  if (r < 0) {
    const char *why = r == CN_ENOMEM ? "out of memory" : dist_tls_reason(c->tls);
    conn_try_write(c, &c->tout); /* our alert tells the peer why */
    if (c->state == C_UP) conn_close(c, why);
    else conn_setup_failed(c, "TLS: %s", why);
    return;
  }
  if (!was_up && dist_tls_is_up(c->tls)) {
    char d[300];
    dist_tls_describe(c->tls, d, sizeof d);
    cn_log(c->n, CN_LOG_DEBUG, "TLS with %s: %s", conn_who(c), d);
    if (conn_hs_start(c)) {
      conn_setup_failed(c, "%s", "out of memory");
      return;
    }
  }
  if (c->state == C_UP) dist_tick_recv(&c->tick);
  conn_process_input(c);
  if (r == DIST_TLS_CLOSED && c->state != C_CLOSING && c->state != C_WAIT_PEER) {
    if (c->state == C_UP) conn_close(c, "connection closed (TLS close_notify)");
    else conn_setup_failed(c, "%s", closed_reason(c));
  }
}

void conn_read_done(cn_conn *c, ssize_t nread, size_t buflen) {
  if (nread < 0) {
    /* UV_ENOBUFS: on_alloc had no memory for the read; the connection cannot go on. */
    if (c->state == C_UP) {
      conn_close(c, nread == UV_EOF ? "connection closed" : uv_strerror((int)nread));
    } else if (nread == UV_EOF && !c->initiator && c->state == C_HANDSHAKE && !(c->hs && c->hs->peer_name[0])) {
      /* Closed before saying its name: a peer that lost a simultaneous connect does exactly this. */
      cn_log(c->n, CN_LOG_DEBUG, "connection from %s closed before its handshake", conn_who(c));
      conn_close(c, "closed before the handshake");
    } else {
      /* A reset or a read error during the setup fails it as a close does: logged, and links and monitors made
       * toward the node meanwhile end with noconnection (they waited forever when it was a plain close). */
      c->fail = CN_SETUP_CLOSED + 1;
      conn_setup_failed(c, "%s", nread == UV_EOF ? closed_reason(c) : uv_strerror((int)nread));
    }
    return;
  }
  c->bytes_in += (size_t)nread;
  c->n->stats.bytes_in += (size_t)nread;
  if ((size_t)nread == buflen) c->read_big = true;
  if (c->tls) {
    tls_input(c, (size_t)nread);
    return;
  }
  c->in.len += (size_t)nread;
  if (c->state == C_UP) dist_tick_recv(&c->tick);
  conn_process_input(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  if (nread) conn_read_done(s->data, nread, buf->len);
}

void conn_start_io(cn_conn *c) {
  c->tcp.data = c;
  uv_tcp_nodelay(&c->tcp, 1);
  if (c->n->ur && !c->tls && !uring_read(c)) { /* cn_node_run's ring reads it */
    c->ur = true;
    return;
  }
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- Frames ---------------------------------------------------------------------------------------------- */

#define CTL_SLOTS 16 /* cn_term values of stack room for a control tuple */

/* Decodes and dispatches one message body; chunk: the chunk b lies in (its large binaries are shared), or NULL. */
static int handle_body(cn_conn *c, const uint8_t *b, size_t len, bool versioned, cn_chunk *chunk) {
  cn_node *n = c->n;
  c->msgs_in++;
  n->stats.messages_in++;
  if (!c->acache) c->acache = cn_atom_cache_new(0); /* NULL on out-of-memory: decoding then goes to the table */
  cn_decode_opts opts = {.max_size = n->max_msg,
                         .atom_limit = n->net_atom_limit,
                         .cache = c->acache,
                         .chunk = chunk,
                         .share_min = SHARE_MIN};
  size_t off = 0;
  cn_term *ctl = NULL, *pay = NULL;
  /* The control tuple lives only while the message is dispatched: built on the stack when it fits (a SEND's or a
   * REG_SEND's needs ~6 values), so a message costs one allocation for its payload, not two. */
  cn_term ctl_mem[CTL_SLOTS];
  int rc = 0;
  if (versioned && (len < 1 || b[off++] != 131)) return CN_EPROTO;
  dist_ctl dc;
  dist_fast fast;
  size_t k = dist_ctl_fast(b + off, len - off, c->peer, n->name, c->reg_name, &fast, &dc);
  if (k) { /* a SEND, SEND_SENDER or REG_SEND read from its bytes: no control term */
    off += k;
  } else {
    if ((rc = cn_term_decode_into(n->atoms, b, len, &off, &opts, ctl_mem, sizeof ctl_mem, &ctl))) return rc;
    rc = dist_ctl_parse(ctl, &dc);
    if (rc == CN_EUNSUPPORTED) {
      cn_log(n, CN_LOG_DEBUG, "ignoring unknown control message from %s", conn_who(c));
      if (ctl != ctl_mem) cn_term_free(ctl);
      return 0;
    }
    if (rc) goto out;
    if (dc.op == DOP_REG_SEND) c->reg_name = dc.name->v.atom; /* the next REG_SEND to it takes the fast path */
  }
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
  if (ctl && ctl != ctl_mem) cn_term_free(ctl);
  return rc;
}

static int handle_frame(cn_conn *c, const uint8_t *d, size_t len) {
  dist_msg_hdr h;
  int rc = dist_msg_hdr_parse(d, len, &h);
  if (rc) return rc;
  if (h.kind == DIST_MSG_PASS || h.kind == DIST_MSG_NORMAL)
    return handle_body(c, d + h.body_off, len - h.body_off, h.versioned, c->in_chunk);
  cn_chunk *done = NULL;
  size_t dlen = 0;
  rc = dist_frags_take(c->frags, &h, d + h.body_off, len - h.body_off, &done, &dlen);
  if (rc == 2) return handle_body(c, d + h.body_off, len - h.body_off, false, c->in_chunk);
  if (rc == 1) {
    rc = handle_body(c, cn_chunk_data(done), dlen, false, done);
    c->held |= cn_chunk_shared(done);
    dist_frags_recycle(c->frags, done);
  }
  return rc < 0 ? rc : 0;
}

void conn_process_input(cn_conn *c) {
  size_t off = 0;
  while (c->state == C_HANDSHAKE || c->state == C_UP) {
    if (c->state == C_HANDSHAKE) {
      int r = conn_handshake_step(c, &off);
      if (r <= 0) break;
      continue;
    }
    const uint8_t *d;
    size_t dlen;
    ssize_t r = dist_frame_parse(c->in.data + off, c->in.len - off, c->n->max_msg, &d, &dlen);
    if (r == 0) break;
    if (r < 0) {
      c->n->stats.oversized_messages++;
      cn_log(c->n, CN_LOG_WARN, "dropping connection to %s: frame over the %zu-byte limit", conn_who(c), c->n->max_msg);
      conn_close(c, "frame too large");
      break;
    }
    off += (size_t)r;
    if (dlen == 0) continue; /* a tick */
    int rc = handle_frame(c, d, dlen);
    if (rc == CN_ENOMEM) {
      cn_log(c->n, CN_LOG_WARN, "dropping connection to %s: out of memory for a message", conn_who(c));
      conn_close(c, "out of memory");
      break;
    }
    if (rc < 0) {
      if (rc == CN_ELIMIT) c->n->stats.oversized_messages++;
      else c->n->stats.protocol_errors++;
      cn_log(c->n, CN_LOG_WARN, "dropping connection to %s: bad message: %s", conn_who(c), cn_strerror(rc));
      conn_close(c, "protocol error");
      break;
    }
  }
  if (c->state == C_CLOSING || c->state == C_WAIT_PEER) return;
  if (c->tcp_open && (c->held || (c->in_chunk && cn_chunk_shared(c->in_chunk)))) {
    c->held = false;
    /* What arrived holds the chunk: its handlers run now, so the next read goes to the same memory (reads outrun
     * the idle turn; each would otherwise take fresh memory, and fresh pages cost a fault each). */
    node_run(c->n, READ_RUN_BUDGET);
    if (c->state == C_CLOSING || c->state == C_WAIT_PEER) return;
  }
  in_consume(c, off);
  if (c->state == C_UP && c->msgs_in == 0 && !c->in.len) conn_idle(c); /* just up: the handshake's buffers go */
}
