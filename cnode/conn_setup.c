/* conn_setup.c: how a connection gets up: TLS contexts, accepting (and refusing past the limits), connecting
 * through EPMD and DNS, the TLS handshake first when the node runs TLS, then driving the pure distribution
 * handshake, with net_kernel's simultaneous-connect resolution. */
#include <stdio.h>
#include <string.h>

#include "base_addr.h"
#include "conn_int.h"

/* ---- Handshake ------------------------------------------------------------------------------------------- */

/* Moves the handshake's output to the socket's queue; CN_ENOMEM leaves it where it was (the caller fails the
 * setup: a message lost here would leave both sides waiting for the setup timeout). */
static int hs_output(cn_conn *c) {
  if (!c->hs->out.len) return 0;
  if (cn_buf_append(&c->out, c->hs->out.data, c->hs->out.len)) return CN_ENOMEM;
  cn_buf_consume(&c->hs->out, c->hs->out.len);
  conn_mark_dirty(c);
  return 0;
}

int conn_hs_start(cn_conn *c) {
  cn_node *n = c->n;
  dist_hs_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.role = c->initiator ? DIST_HS_INITIATOR : DIST_HS_ACCEPTOR;
  cfg.name = n->name->name;
  cfg.cookie = n->cookie;
  cfg.flags = n->flags;
  cfg.creation = n->creation;
  /* The system's generator (node_random), not OpenSSL's: its first use costs about
   * 2 MiB of resident memory that plain TCP needs for nothing else. It fails only where the system has no
   * generator: the setup fails then, never spins. */
  while (!cfg.challenge) {
    int err = node_random(&cfg.challenge, sizeof cfg.challenge);
    if (err) {
      cn_log(n, CN_LOG_ERROR, "no random bytes for a handshake challenge: %s", uv_strerror(err));
      return CN_EIO;
    }
  }
  cfg.peer_version = c->peer_version ? c->peer_version : 6;
  cfg.required_flags = DIST_FLAGS_MANDATORY_25;
  cfg.peer_name = c->initiator ? c->peer->name : NULL;
  cfg.len4 = c->tls != NULL; /* inet_tls_dist runs the handshake with {packet, 4} */
  if (!c->hs && !(c->hs = cn_calloc(1, sizeof *c->hs))) return CN_ENOMEM;
  int rc = dist_hs_init(c->hs, &cfg);
  if (rc) return rc;
  c->state = C_HANDSHAKE;
  return hs_output(c);
}

/* Acceptor: the peer said its name. Decide as net_kernel does on simultaneous connects. */
static const char *on_peer_name(cn_conn *c) {
  cn_node *n = c->n;
  /* The peer is not authenticated yet: look its name up, never create an atom for it. A name with no atom
   * has no connection of ours either; the atom is made once the handshake has proved the cookie. */
  const cn_atom *peer = cn_atoms_find(n->atoms, c->hs->peer_name, strlen(c->hs->peer_name));
  if (peer == n->name) return "not_allowed";
  cn_conn *old = peer ? conn_find(n, peer) : NULL;
  if (!old) {
    /* A known name: the setup is that node's connection from now on, as net_kernel registers it, so a send to it
     * meanwhile queues here instead of starting a second connection (which made this one the loser of a
     * simultaneous connect after the peer had already counted it up: a nodedown and nodeup there). */
    if (peer) {
      c->peer = peer;
      conn_unnamed_remove(c);
      if (!conn_hash_add(c)) return "not_allowed";
    }
    return "ok";
  }
  c->peer = peer;
  if (old->state == C_UP) return "alive"; /* the initiator decides; on true we replace `old` at the end */
  if (old->state != C_WAIT_PEER && strcmp(n->name->name, peer->name) > 0) return "nok"; /* ours wins */
  /* Theirs wins (or ours was already refused): carry our queued messages over to it. */
  conn_adopt_pending(c, old);
  conn_close(old, "simultaneous connect");
  conn_unnamed_remove(c);
  if (!conn_hash_add(c)) return "not_allowed";
  return strcmp(n->name->name, peer->name) > 0 ? "ok" : "ok_simultaneous";
}

int conn_handshake_step(cn_conn *c, size_t *off) {
  size_t used = 0, start = *off;
  int ev = dist_hs_feed(c->hs, c->in.data + *off, c->in.len - *off, &used);
  *off += used;
  if (hs_output(c)) ev = CN_ENOMEM;
  if (ev < 0) {
    if (ev == CN_EREFUSED && c->initiator && dist_hs_refused_nok(c->hs)) {
      conn_wait_for_peer(c);
      return -1;
    }
    conn_write_now(c);
    /* A TLS record where a plain handshake message should be: name the real cause. */
    const uint8_t *m = c->in.data + start;
    bool tls_peer = !c->tls && c->in.len - start >= 2 && (m[0] == 21 || m[0] == 22) && m[1] == 3;
    c->fail = 1 + (tls_peer            ? CN_SETUP_PROTOCOL
                   : ev == CN_EAUTH    ? CN_SETUP_COOKIE
                   : ev == CN_EREFUSED ? CN_SETUP_REFUSED
                   : ev == CN_EFLAGS   ? CN_SETUP_FLAGS
                                       : CN_SETUP_PROTOCOL);
    conn_setup_failed(c, "%s",
                      tls_peer        ? "the peer speaks TLS (a -proto_dist inet_tls node) and this node runs plain TCP"
                      : c->hs->reason ? c->hs->reason
                                      : cn_strerror(ev));
    return -1;
  }
  switch (ev) {
  case DIST_HS_NAME: {
    const char *st = on_peer_name(c);
    if (dist_hs_accept_status(c->hs, st) || hs_output(c)) {
      conn_setup_failed(c, "%s", "out of memory");
      return -1;
    }
    if (!strcmp(st, "nok") || !strcmp(st, "not_allowed")) {
      cn_log(c->n, strcmp(st, "nok") ? CN_LOG_WARN : CN_LOG_DEBUG, "refused connection from %s: %s", conn_who(c),
             strcmp(st, "nok") ? "not allowed" : "simultaneous connect, keeping ours");
      conn_write_now(c);
      conn_close(c, st);
      return -1;
    }
    return 1;
  }
  case DIST_HS_ALIVE:
    if (dist_hs_alive_reply(c->hs, true) || hs_output(c)) {
      conn_setup_failed(c, "%s", "out of memory");
      return -1;
    }
    return 1;
  case DIST_HS_DONE: conn_up(c); return c->state == C_UP ? 1 : -1;
  default: return 0; /* more bytes needed */
  }
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
  cn_log(n, CN_LOG_INFO, "TLS distribution (%s): accepting with %s%s, connecting with %s",
         n->inet6 ? "inet6_tls" : "inet_tls", dist_tls_ctx_verifies(n->tls_srv) ? "verify_peer" : "verify_none",
         o->server.fail_if_no_peer_cert ? " and fail_if_no_peer_cert" : "",
         dist_tls_ctx_verifies(n->tls_cli) ? "verify_peer" : "verify_none");
  if (!o->server.versions || !o->client.versions)
    cn_log(n, CN_LOG_INFO,
           "TLS distribution: where the optfile names no versions, TLS 1.2 and, while the node follows OTP %d or "
           "later, 1.3 (inet_tls_dist's defaults; the node follows OTP %d%s)",
           DIST_TLS13_DEFAULT_OTP, n->otp_release ? n->otp_release : CN_OTP_RELEASE_DEFAULT,
           n->otp_release ? "" : " until its first BEAM peer tells its own");
  if (!dist_tls_ctx_verifies(n->tls_cli))
    cn_log(n, CN_LOG_WARN,
           "TLS distribution: servers' certificates are not checked (verify_none): give a "
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
  if (!n->tls_srv) return conn_hs_start(c);
  int rc = dist_tls_new(&c->tls, c->initiator ? n->tls_cli : n->tls_srv, c->initiator ? peer_host(c->peer) : NULL,
                        n->otp_release);
  if (rc) return rc;
  c->state = C_TLS;
  if (c->initiator) {
    rc = dist_tls_start(c->tls, &c->tout);
    if (c->tout.len) conn_mark_dirty(c);
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
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) ||
      !base_addr_format((struct sockaddr *)&ss, c->addr, sizeof c->addr))
    snprintf(c->addr, sizeof c->addr, "?");
  if (begin_setup(c)) {
    conn_setup_failed(c, "%s", c->tls ? dist_tls_reason(c->tls) : "out of memory");
    return;
  }
  conn_start_io(c);
}

/* ---- Connecting --------------------------------------------------------------------------------------- */

static void on_connected(uv_connect_t *req, int status) {
  cn_conn *c = req->data;
  if (c->state != C_CLOSING) {
    if (status < 0) conn_setup_failed(c, "connect: %s", uv_strerror(status));
    else if (begin_setup(c)) conn_setup_failed(c, "%s", c->tls ? dist_tls_reason(c->tls) : "out of memory");
    else conn_start_io(c);
  }
  conn_unref(c);
}

static void connect_addr(cn_conn *c, const struct sockaddr *sa) {
  uv_tcp_init(c->n->loop, &c->tcp);
  c->tcp.data = c;
  c->tcp_open = true;
  c->refs++;
  c->state = C_CONNECTING;
  c->dial->creq.data = c;
  int rc = uv_tcp_connect(&c->dial->creq, &c->tcp, sa, on_connected);
  if (rc) {
    conn_setup_failed(c, "connect: %s", uv_strerror(rc));
    return;
  }
  c->refs++;
}

static const char *peer_host(const cn_atom *peer) { return strchr(peer->name, '@') + 1; }

static void on_lookup(int status, const epmd_node_info *info, void *ctx) {
  cn_conn *c = ctx;
  conn_dial *dl = c->dial;
  dl->lookup = NULL;
  if (c->state != C_CLOSING) {
    if (status) {
      char d[300], a[BASE_ADDR_TEXT_MAX];
      base_addr_ntop((const struct sockaddr *)&dl->peer_sa, a, sizeof a);
      snprintf(d, sizeof d, "EPMD on %s has no port for it (%s)", a, cn_strerror(status));
      conn_setup_failed(c, "%s", d);
    } else {
      dl->peer_port = info->port;
      c->peer_version = info->highest >= 6 ? 6 : 5;
      base_addr_set_port(&dl->peer_sa, dl->peer_port);
      connect_addr(c, (struct sockaddr *)&dl->peer_sa);
    }
  }
  conn_unref(c);
}

/* The peer's address is known (c->dial->peer_sa): its port comes from the EPMD at that very address, as OTP's
 * inet_tcp_dist resolves the host once (address_please) and asks erl_epmd there. 0, or a CN_E* code. */
static int lookup_port(cn_conn *c) {
  cn_node *n = c->n;
  char host[BASE_ADDR_TEXT_MAX];
  base_addr_ntop((const struct sockaddr *)&c->dial->peer_sa, host, sizeof host);
  char alive[CN_ATOM_MAX_BYTES + 1]; /* a node name is an atom: up to 255 characters, 1,020 bytes */
  size_t al = (size_t)(strchr(c->peer->name, '@') - c->peer->name);
  memcpy(alive, c->peer->name, al);
  alive[al] = 0;
  int rc = epmd_port_please(n->loop, host, n->epmd_port, alive, n->hs_timeout_ms, on_lookup, c, &c->dial->lookup);
  if (!rc) c->refs++;
  return rc;
}

/* The address to use of those the host resolved to: under inet the first IPv4 one (an IPv6 one when there is
 * none: a host with only AAAA records stays reachable), under inet6 the first IPv6 one, as OTP's
 * inet:getaddr(Host, inet6). NULL: none fits. */
static const struct addrinfo *pick_addr(const struct addrinfo *res, bool inet6) {
  const struct addrinfo *v6 = NULL;
  for (const struct addrinfo *a = res; a; a = a->ai_next) {
    if (a->ai_family == AF_INET && !inet6) return a;
    if (a->ai_family == AF_INET6 && !v6 && a->ai_addrlen <= sizeof(struct sockaddr_in6)) v6 = a;
  }
  return v6;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  cn_conn *c = req->data;
  c->dial->gai_pending = false;
  if (c->state != C_CLOSING) {
    const struct addrinfo *a = status < 0 ? NULL : pick_addr(res, c->n->inet6);
    int rc;
    if (!a) {
      char d[200];
      snprintf(d, sizeof d, "cannot resolve %s%s: %s", peer_host(c->peer), c->n->inet6 ? " to an IPv6 address" : "",
               status < 0 ? uv_strerror(status) : "no address of the family");
      conn_setup_failed(c, "%s", d);
    } else {
      memcpy(&c->dial->peer_sa, a->ai_addr, a->ai_addrlen);
      if ((rc = lookup_port(c))) conn_setup_failed(c, "EPMD lookup: %s", cn_strerror(rc));
    }
  }
  if (res) uv_freeaddrinfo(res);
  conn_unref(c);
}

int conn_connect(cn_node *n, const cn_atom *peer) {
  if (n->stopping) return CN_ESTATE;
  if (conn_find(n, peer)) return 0;
  const char *at = strchr(peer->name, '@');
  if (!at || at == peer->name || !at[1]) return CN_EINVAL;
  cn_conn *c = conn_new(n, peer, true);
  if (!c) return CN_ENOMEM;
  if (!(c->dial = cn_calloc(1, sizeof *c->dial)) || !conn_hash_add(c)) {
    conn_close(c, "out of memory");
    return CN_ENOMEM;
  }
  c->state = C_LOOKUP;
  const char *host = at + 1;
  int rc = 0;
  /* A host that is an address (a@::1, a@10.0.0.1) is used as it is; a name is resolved off the loop. */
  conn_dial *dl = c->dial;
  if (!base_addr_parse(host, 0, AF_UNSPEC, &dl->peer_sa)) {
    if (n->inet6 && dl->peer_sa.ss_family != AF_INET6) {
      conn_setup_failed(c, "%s", "its host is an IPv4 address and this node runs inet6 (IPv6 only, as inet6_tcp)");
      return CN_EINVAL;
    }
    if ((rc = lookup_port(c))) conn_setup_failed(c, "EPMD lookup: %s", cn_strerror(rc));
    return rc;
  }
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = n->inet6 ? AF_INET6 : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  dl->gai.data = c;
  if ((rc = uv_getaddrinfo(n->loop, &dl->gai, on_resolved, host, NULL, &hints))) {
    conn_setup_failed(c, "cannot resolve host: %s", uv_strerror(rc));
    return CN_EIO;
  }
  dl->gai_pending = true;
  c->refs++;
  return 0;
}
