/* conn.c: the connection table and each connection's lifecycle: creating, registering, closing (nodedown),
 * the setup timeout and ticks, going up (nodeup, the queued messages sent), queries and the socketless test
 * hooks. The read and write paths are in conn_io.c, accepting, connecting and the handshake in conn_setup.c. */
#include <stdio.h>
#include <string.h>

#include "conn_int.h"

const char *conn_who(cn_conn *c) {
  if (c->peer) return c->peer->name;
  return c->hs && c->hs->peer_name[0] ? c->hs->peer_name : c->addr;
}

/* Lets the processes suspended on c run again (its queue drained, or it closed). */
void conn_resume_all(cn_conn *c) {
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

void conn_unref(cn_conn *c) {
  if (--c->refs > 0) return;
  cn_node *n = c->n;
  n->nconns--;
  for (cn_conn **d = &n->dirty; *d; d = &(*d)->dirty_next) {
    if (*d == c) {
      *d = c->dirty_next;
      break;
    }
  }
  conn_hs_done(c);
  conn_dial_done(c);
  if (c->frags) dist_frags_free(c->frags);
  cn_atom_cache_free(c->acache);
  while (c->pend_head) {
    pend *p = c->pend_head;
    c->pend_head = p->next;
    cn_buf_free(&p->body);
    cn_free(p);
  }
  conn_in_free(c);
  conn_segs_free(c);
  cn_buf_free(&c->out);
  cn_buf_free(&c->wbuf);
  dist_tls_free(c->tls);
  cn_buf_free(&c->tin);
  cn_buf_free(&c->tout);
  cn_free(c);
}

void conn_hs_done(cn_conn *c) {
  if (!c->hs) return;
  dist_hs_free(c->hs);
  cn_free(c->hs);
  c->hs = NULL;
}

void conn_dial_done(cn_conn *c) {
  cn_free(c->dial);
  c->dial = NULL;
}

static void on_handle_closed(uv_handle_t *h) { conn_unref(h->data); }

static void on_timer(uv_timer_t *t);

cn_conn *conn_new(cn_node *n, const cn_atom *peer, bool initiator) {
  cn_conn *c = cn_calloc(1, sizeof *c);
  if (!c) return NULL;
  c->n = n;
  c->peer = peer;
  c->initiator = initiator;
  c->pend_tail = &c->pend_head;
  uv_timer_init(n->loop, &c->timer);
  c->timer.data = c;
  c->refs = 1;
  n->nconns++;
  uv_timer_start(&c->timer, on_timer, n->hs_timeout_ms, 0);
  return c;
}

cn_conn *conn_find(cn_node *n, const cn_atom *peer) {
  cn_conn *c = n->conn_last; /* a send looks its peer up a few times (flags, then the queue): one hash lookup */
  if (c && c->peer == peer) return c;
  HASH_FIND_PTR(n->conns, &peer, c);
  if (c) n->conn_last = c;
  return c;
}

/* False when the table could not grow (out of memory): the connection is then not registered. */
bool conn_hash_add(cn_conn *c) {
  node_hash_oom = false;
  HASH_ADD_PTR(c->n->conns, peer, c);
  c->in_hash = !node_hash_oom;
  return c->in_hash;
}

void conn_unnamed_remove(cn_conn *c) {
  for (cn_conn **u = &c->n->unnamed; *u; u = &(*u)->unnamed_next) {
    if (*u == c) {
      *u = c->unnamed_next;
      return;
    }
  }
}

/* Moves messages queued on `from` (a losing or failed setup) to `to`. */
void conn_adopt_pending(cn_conn *to, cn_conn *from) {
  if (!from->pend_head) return;
  *to->pend_tail = from->pend_head;
  to->pend_tail = from->pend_tail;
  to->pend_bytes += from->pend_bytes;
  from->pend_head = NULL;
  from->pend_tail = &from->pend_head;
  from->pend_bytes = 0;
}

/* ---- Closing ----------------------------------------------------------------------------------------- */

static void drop_socket(cn_conn *c) {
  if (c->tls && c->tcp_open && !c->writing) {
    dist_tls_close(c->tls, &c->tout); /* close_notify, as ssl:close sends */
    conn_try_write(c, &c->tout);
  }
  if (c->tcp_open) {
    c->tcp_open = false;
    uring_cancel(c); /* a recv of the ring holds the socket and c (its completion drops c) */
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
  }
}

void conn_close(cn_conn *c, const char *reason) {
  if (c->state == C_CLOSING) return;
  cn_node *n = c->n;
  bool was_up = c->state == C_UP;
  c->state = C_CLOSING;
  if (c->in_hash) {
    HASH_DEL(n->conns, c);
    c->in_hash = false;
    if (n->conn_last == c) n->conn_last = NULL;
  } else if (!c->initiator) {
    conn_unnamed_remove(c);
  }
  conn_resume_all(c);
  if (was_up) node_notify(n, c->peer, false, reason);
  if (c->dial && c->dial->lookup) epmd_req_cancel(c->dial->lookup);
  if (c->dial && c->dial->gai_pending) uv_cancel((uv_req_t *)&c->dial->gai);
  drop_socket(c);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

/* The cause of a failed setup: what the caller set in c->fail, else the state it failed in. */
static int fail_kind(const cn_conn *c) {
  if (c->fail) return c->fail - 1;
  switch (c->state) {
  case C_LOOKUP: return CN_SETUP_LOOKUP;
  case C_CONNECTING: return CN_SETUP_CONNECT;
  case C_TLS: return CN_SETUP_TLS;
  default: return CN_SETUP_PROTOCOL;
  }
}

void conn_setup_failed(cn_conn *c, const char *fmt, const char *detail) {
  c->n->stats.handshake_failures++;
  c->n->stats.setup_failures[fail_kind(c)]++;
  char msg[512];
  snprintf(msg, sizeof msg, fmt, detail);
  cn_log(c->n, CN_LOG_WARN, "handshake with %s failed: %s", conn_who(c), msg);
  bool named = c->initiator || c->in_hash; /* the node's connection setup, ours or the peer's */
  conn_close(c, msg);
  /* Links and monitors made toward a node we could not reach end with noconnection, as in OTP. */
  if (named) node_setup_failed(c->n, c->peer, msg);
}

void conn_close_all(cn_node *n) {
  cn_conn *c, *tmp;
  HASH_ITER(hh, n->conns, c, tmp) conn_close(c, "node stopping");
  while (n->unnamed) conn_close(n->unnamed, "node stopping");
}

int conn_disconnect(cn_node *n, const cn_atom *peer) {
  cn_conn *c = conn_find(n, peer);
  if (!c) return CN_ENOCONN;
  cn_log(n, CN_LOG_DEBUG, "disconnecting %s", peer->name);
  bool up = c->state == C_UP;
  conn_close(c, "disconnected");
  if (!up) node_setup_failed(n, peer, "disconnected");
  return 0;
}

/* ---- Timers: setup timeout, then ticks --------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t) {
  cn_conn *c = t->data;
  if (c->state == C_UP) {
    if (c->msgs_in == c->idle_mark) conn_idle(c); /* no message (ticks only) for a tick interval */
    c->idle_mark = c->msgs_in;
    switch (dist_tick_fire(&c->tick, uv_now(c->n->loop))) {
    case DIST_TICK_SEND:
      /* Without its tick the peer would count this node dead a net_ticktime later; fail now and say why. */
      if (cn_buf_put32(&c->out, 0)) {
        conn_close(c, "out of memory (tick)");
        break;
      }
      conn_mark_dirty(c);
      break;
    case DIST_TICK_TIMEOUT:
      c->n->stats.tick_timeouts++;
      conn_close(c, "net_tick_timeout");
      break;
    default: break;
    }
  } else if (c->state == C_WAIT_PEER) {
    cn_log(c->n, CN_LOG_WARN, "connection to %s not established: the peer's own attempt never came", conn_who(c));
    conn_close(c, "setup timeout");
    node_setup_failed(c->n, c->peer, "the peer's own connection never came (simultaneous connect)");
  } else if (c->state != C_CLOSING) {
    c->n->stats.handshake_timeouts++;
    c->n->stats.handshake_failures--; /* counted as a timeout, not a refusal */
    c->fail = CN_SETUP_TIMEOUT + 1;
    conn_setup_failed(c, "%s",
                      c->state == C_TLS ? "TLS handshake timed out (no TLS answer: is the peer a plaintext node?)"
                                        : "setup timed out");
  }
}

/* ---- Going up: nodeup, then what was queued during the setup ---------------------------------------------- */

void conn_up(cn_conn *c) {
  cn_node *n = c->n;
  if (!c->peer && (!c->hs || !(c->peer = cn_atoms_get(n->atoms, c->hs->peer_name)))) {
    conn_close(c, "atom table full");
    return;
  }
  if (!c->in_hash) {
    cn_conn *old = conn_find(n, c->peer);
    if (old && old->state != C_UP) conn_adopt_pending(c, old); /* a setup of ours that started meanwhile */
    if (old)
      conn_close(old, old->state == C_UP ? "replaced by a new connection from the peer" : "simultaneous connect");
    conn_unnamed_remove(c);
    if (!conn_hash_add(c)) {
      conn_close(c, "out of memory");
      return;
    }
  }
  if (c->hs) c->peer_flags = c->hs->peer_flags;
  conn_hs_done(c); /* an up connection keeps no handshake state, nor an initiator's setup state */
  conn_dial_done(c);
  if (dist_frags_new(&c->frags, n->max_msg, 64)) {
    conn_close(c, "out of memory");
    return;
  }
  c->state = C_UP;
  dist_tick_init(&c->tick, n->ticktime_ms, uv_now(n->loop));
  uint32_t iv = dist_tick_interval_ms(&c->tick);
  uv_timer_start(&c->timer, on_timer, iv, iv);
  n->stats.connections_up++;
  node_notify(n, c->peer, true, NULL);
  while (c->pend_head && c->state == C_UP) {
    pend *p = c->pend_head;
    int rc = conn_frame_bytes(c, p->body.data, p->ctl_len, p->body.len);
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
void conn_wait_for_peer(cn_conn *c) {
  cn_log(c->n, CN_LOG_DEBUG, "simultaneous connect with %s: waiting for its connection", conn_who(c));
  c->state = C_WAIT_PEER;
  drop_socket(c);
  uv_timer_start(&c->timer, on_timer, c->n->hs_timeout_ms, 0);
}

/* ---- Queries ---------------------------------------------------------------------------------------------- */

uint64_t conn_peer_flags(cn_node *n, const cn_atom *peer) {
  cn_conn *c = conn_find(n, peer);
  return c && c->state == C_UP ? c->peer_flags : 0;
}

bool cn_node_is_up(cn_node *n, const cn_atom *node, int which) {
  DIRTY_GUARD(n, bool, cn_node_is_up(n, node, which));
  cn_conn *c = node ? conn_find(n, node) : NULL;
  return c && c->state == C_UP && (which & (c->peer_flags & DFLAG_PUBLISHED ? CN_NODES_VISIBLE : CN_NODES_HIDDEN));
}

size_t cn_nodes(cn_node *n, int which, const cn_atom **out, size_t max) {
  DIRTY_GUARD(n, size_t, cn_nodes(n, which, out, max));
  size_t k = 0;
  for (cn_conn *c = n->conns; c; c = c->hh.next) {
    if (c->state != C_UP) continue;
    if (!(which & (c->peer_flags & DFLAG_PUBLISHED ? CN_NODES_VISIBLE : CN_NODES_HIDDEN))) continue;
    if (k < max) out[k] = c->peer;
    k++;
  }
  return k;
}

static const char *state_name(conn_state s) {
  static const char *const names[] = {"lookup", "connecting", "tls", "handshake", "up", "wait_peer", "closing"};
  return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "unknown";
}

static void conn_info(const cn_conn *c, cn_conn_info *o) {
  o->node = c->peer;
  o->state = state_name(c->state);
  o->initiator = c->initiator;
  o->hidden = c->state == C_UP && !(c->peer_flags & DFLAG_PUBLISHED);
  o->tls = c->tls != NULL;
  o->io_uring = c->ur;
  o->bytes_in = c->bytes_in;
  o->bytes_out = c->bytes_out;
  o->messages_in = c->msgs_in;
  o->messages_out = c->msgs_out;
  o->busy_suspensions = c->busy;
  o->queue_bytes = conn_queued(c) + c->pend_bytes;
}

size_t cn_node_conns(cn_node *n, cn_conn_info *out, size_t max) {
  size_t k = 0;
  for (cn_conn *c = n->conns; c; c = c->hh.next, k++)
    if (k < max) conn_info(c, &out[k]);
  for (cn_conn *c = n->unnamed; c; c = c->unnamed_next, k++)
    if (k < max) conn_info(c, &out[k]);
  return k;
}

const char *cn_setup_fail_name(int kind) {
  static const char *const names[CN_SETUP_FAIL_COUNT] = {"timeout", "lookup", "connect",  "tls",   "cookie",
                                                         "refused", "flags",  "protocol", "closed"};
  return kind >= 0 && kind < CN_SETUP_FAIL_COUNT ? names[kind] : "unknown";
}

/* ---- Test hooks: a connection without a socket (fuzz/fuzz_node.c) ----------------------------------------- */

int conn_test_up(cn_node *n, const cn_atom *peer, uint64_t peer_flags) {
  if (!peer || node_is_local(n, peer) || n->stopping || !strchr(peer->name, '@')) return CN_EINVAL;
  cn_conn *c = conn_new(n, peer, false);
  if (!c) return CN_ENOMEM;
  snprintf(c->addr, sizeof c->addr, "test");
  c->peer_flags = peer_flags; /* what conn_up takes from a finished handshake */
  conn_up(c);
  return c->state == C_UP ? 0 : CN_ENOMEM;
}

/* Only a socketless connection that is up: c->in then holds exactly what earlier feeds left unparsed. */
static cn_conn *test_conn(cn_node *n, const cn_atom *peer) {
  cn_conn *c = peer ? conn_find(n, peer) : NULL;
  return c && !c->tcp_open && c->state == C_UP ? c : NULL;
}

int conn_test_feed(cn_node *n, const cn_atom *peer, const uint8_t *p, size_t len) {
  cn_conn *c = test_conn(n, peer);
  if (!c) return CN_ENOCONN;
  if (conn_in_reserve(c, len)) return CN_ENOMEM;
  memcpy(c->in.data + c->in.len, p, len);
  c->in.len += len;
  dist_tick_recv(&c->tick);
  conn_process_input(c);
  return 0;
}

int conn_test_output(cn_node *n, const cn_atom *peer, cn_buf *out) {
  cn_conn *c = test_conn(n, peer);
  if (!c) return CN_ENOCONN;
  int rc = conn_out_take(c, out);
  /* As a finished write does (on_written): the queue drained, suspended senders run again. */
  c->dropping = false;
  conn_resume_all(c);
  return rc;
}
