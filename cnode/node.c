/* node.c: a node's lifecycle (create, listen, register with EPMD, stop), its log, its scheduler (the run
 * queue drained from an idle handle) and the thread-safe entry points posted through uv_async_t. */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base_addr.h"
#include "node_int.h"

/* Messages one process handles before the next gets a turn, and per loop turn in all. */
#define PROC_SLICE 64
#define TURN_BUDGET 4096

_Thread_local bool node_hash_oom;

static void default_log(cn_node *n, cn_log_level level, const char *msg, void *ctx) {
  (void)n;
  (void)level;
  (void)ctx;
  fprintf(stderr, "cnode: %s\n", msg);
}

void cn_log(cn_node *n, cn_log_level level, const char *fmt, ...) {
  if (level < n->log_level) return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  /* A sink is only ever called with the node held, so it need not be thread-safe for dirty processes. */
  bool held = dirty_must_hold(n);
  if (held) dirty_hold(n);
  n->log(n, level, line, n->log_ctx);
  if (held) dirty_release(n);
}

static void on_idle(uv_idle_t *h);
static void on_prepare(uv_prepare_t *h);
static void on_async(uv_async_t *h);

/* A peer that closes while the node writes to it would end the whole process with SIGPIPE (libuv and OpenSSL
 * write with write(2)): the node ignores SIGPIPE unless the program has chosen a handler, and such writes fail
 * with EPIPE, which closes that connection only. */
static void ignore_sigpipe(void) {
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) || sa.sa_handler != SIG_DFL || (sa.sa_flags & SA_SIGINFO)) return;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_IGN;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGPIPE, &sa, NULL);
}

/* A numeric address for the listener (an IPv6 one may carry a %scope): either family under inet, as before
 * inet6 existed; IPv6 only under inet6, as OTP's inet6_tcp refuses an IPv4 interface. 0, or CN_EINVAL. */
static int listen_sockaddr(const char *addr, bool inet6, struct sockaddr_storage *ss) {
  return base_addr_parse(addr, 0, inet6 ? AF_INET6 : AF_UNSPEC, ss);
}

int cn_node_new(cn_node **out, uv_loop_t *loop, const cn_node_opts *o) {
  *out = NULL;
  if (!o || !o->name || !o->cookie) return CN_EINVAL;
  struct sockaddr_storage ss;
  /* Caught here rather than at start, so a program can report a bad option before it opens anything. */
  if (o->family != CN_INET && o->family != CN_INET6) return CN_EINVAL;
  bool inet6 = o->family == CN_INET6;
  if (o->listen_addr && listen_sockaddr(o->listen_addr, inet6, &ss)) return CN_EINVAL;
  if (o->listen_port_max && (!o->listen_port || o->listen_port_max < o->listen_port)) return CN_EINVAL;
  if (o->otp_release && (o->otp_release < CN_OTP_RELEASE_MIN || o->otp_release > CN_OTP_RELEASE_MAX)) return CN_EINVAL;
  ignore_sigpipe();
  const char *at = strchr(o->name, '@');
  /* An atom's bytes here; its 255 characters are checked when it is interned below. */
  if (!at || at == o->name || !at[1] || strlen(o->name) > CN_ATOM_MAX_BYTES) return CN_EINVAL;
  cn_node *n = cn_calloc(1, sizeof *n);
  if (!n) return CN_ENOMEM;
  int rc = CN_ENOMEM;
  size_t max_atoms = o->max_atoms ? o->max_atoms : 1048576;
  if (cn_atoms_new(&n->atoms, max_atoms)) goto fail;
  /* Messages from peers may not fill the last 1/16 of the table (64 Ki atoms by default): that room is kept for
   * node names and the node's own atoms, so a flood of atoms cannot lock out new peers. */
  n->net_atom_limit = max_atoms - max_atoms / 16;
  int name_rc = node_intern(n, o->name, &n->name);
  n->host = cn_strndup(at + 1, strlen(at + 1));
  n->cookie = cn_strndup(o->cookie, strlen(o->cookie));
  n->inet6 = inet6;
  const char *eh = o->epmd_host ? o->epmd_host : inet6 ? "::1" : "127.0.0.1";
  n->epmd_host = cn_strndup(eh, strlen(eh));
  const char *la = o->listen_addr ? o->listen_addr : inet6 ? "::" : "0.0.0.0";
  n->listen_addr = cn_strndup(la, strlen(la));
  if (!n->name || !n->host || !n->cookie || !n->epmd_host || !n->listen_addr) {
    rc = n->name ? CN_ENOMEM : name_rc;
    goto fail;
  }
  if (!(n->empty = cn_atoms_get(n->atoms, ""))) goto fail; /* only memory can fail it: rc is CN_ENOMEM */
  n->epmd_port = o->epmd_port ? o->epmd_port : epmd_default_port();
  n->listen_port = o->listen_port;
  n->listen_port_max = o->listen_port_max;
  n->ticktime_ms = (o->net_ticktime_s ? o->net_ticktime_s : 60) * 1000u;
  n->hs_timeout_ms = o->handshake_timeout_ms ? o->handshake_timeout_ms : 7000;
  n->hidden = o->hidden;
  n->connect_all = !o->no_connect_all;
  n->no_epmd = o->no_epmd;
  n->max_msg = o->max_message_size ? o->max_message_size : (size_t)256 << 20;
  n->max_conns = o->max_connections ? o->max_connections : 1024;
  n->busy_limit = o->busy_limit ? o->busy_limit : (size_t)1 << 20;
  n->queue_limit = o->queue_limit ? o->queue_limit : (size_t)64 << 20;
  n->log = o->log ? o->log : default_log;
  n->log_ctx = o->log_ctx;
  n->log_level = o->log_level;
  n->otp_release = o->otp_release;
  n->dirty_threads = o->dirty_threads;
  if (o->tls && (rc = conn_tls_init(n, o->tls))) goto fail;
#ifndef EXP_FLAGS_OFF
#define EXP_FLAGS_OFF 0
#endif
  n->flags = DIST_FLAGS_DEFAULT & ~(uint64_t)(n->hidden ? DFLAG_PUBLISHED : 0) & ~(uint64_t)(EXP_FLAGS_OFF);
  n->next_id = 1;
  n->runq_tail = NULL;
  n->ts_tail = &n->ts_head;
  if (loop) {
    n->loop = loop;
  } else {
    if (uv_loop_init(&n->own_loop)) goto fail;
    n->loop = &n->own_loop;
    n->owns_loop = true;
  }
  pthread_mutex_init(&n->ts_lock, NULL);
  uv_idle_init(n->loop, &n->idle);
  uv_prepare_init(n->loop, &n->prepare);
  uv_async_init(n->loop, &n->async, on_async);
  n->idle.data = n->prepare.data = n->async.data = n;
  uv_prepare_start(&n->prepare, on_prepare);
  uv_unref((uv_handle_t *)&n->prepare);
  if ((rc = builtin_start(n))) {
    cn_node_free(n);
    return rc;
  }
  *out = n;
  return 0;
fail:
  conn_tls_free(n);
  if (n->atoms) cn_atoms_free(n->atoms);
  cn_free(n->host);
  cn_free(n->cookie);
  cn_free(n->epmd_host);
  cn_free(n->listen_addr);
  cn_free(n);
  return rc;
}

const cn_atom *cn_node_name(const cn_node *n) { return n->name; }
uint32_t cn_node_creation(const cn_node *n) { return n->creation; }
uint16_t cn_node_port(const cn_node *n) { return n->port; }
cn_atoms *cn_node_atoms(cn_node *n) { return n->atoms; }
uv_loop_t *cn_node_loop(cn_node *n) { return n->loop; }
const cn_atom *cn_intern(cn_node *n, const char *name) { return cn_atoms_get(n->atoms, name); }
cn_term *cn_mk_atomc(cn_node *n, const char *name) { return cn_mk_atom(cn_intern(n, name)); }
bool node_is_local(const cn_node *n, const cn_atom *node) { return node == n->name; }

int node_intern(cn_node *n, const char *name, const cn_atom **out) {
  int rc = cn_atoms_intern_status(n->atoms, name, name ? strlen(name) : 0, out);
  return rc == CN_ENOMEM || !rc ? rc : CN_EINVAL;
}

cn_ref node_make_ref(cn_node *n) {
  cn_ref r = {.node = n->name, .creation = n->creation, .len = 3};
  uint64_t c = ++n->ref_counter;
  r.n[0] = (uint32_t)(c & 0x3ffff);
  r.n[1] = (uint32_t)(c >> 18);
  r.n[2] = (uint32_t)(c >> 50) ^ (uint32_t)(uintptr_t)n;
  return r;
}

cn_ref cn_make_ref(cn_node *n) {
  DIRTY_GUARD(n, cn_ref, cn_make_ref(n));
  return node_make_ref(n);
}

void cn_node_get_stats(cn_node *n, cn_node_stats *out) {
  DIRTY_GUARD_VOID(n, cn_node_get_stats(n, out));
  *out = n->stats;
  out->atoms_refused = cn_atoms_refused(n->atoms);
}

void cn_node_proc_stats(cn_node *n, cn_proc_stats *out) {
  memset(out, 0, sizeof *out);
  for (cn_proc *p = n->procs; p; p = p->hh.next) {
    if (p->dead) continue;
    out->processes++;
    out->messages += p->mq_len;
    if (p->mq_len > out->max_mailbox) out->max_mailbox = p->mq_len;
  }
  out->registered = HASH_COUNT(n->names);
}

/* ---- Scheduling --------------------------------------------------------------------------------------- */

void node_schedule(cn_node *n, cn_proc *p) {
  if (p->in_runq || p->suspended || p->dirty_busy) return;
  p->in_runq = true;
  p->run_next = NULL;
  if (n->runq_tail) n->runq_tail->run_next = p;
  else n->runq_head = p;
  n->runq_tail = p;
  if (!uv_is_active((uv_handle_t *)&n->idle)) uv_idle_start(&n->idle, on_idle);
}

void node_run(cn_node *n, size_t budget) {
  while (n->runq_head && budget) {
    cn_proc *p = n->runq_head;
    n->runq_head = p->run_next;
    if (!n->runq_head) n->runq_tail = NULL;
    p->in_runq = false;
    if (p->dirty) { /* its handler runs on the pool: this hands it the next message, or ends the process */
      dirty_pump(p);
      budget--;
      continue;
    }
    size_t ran = proc_run(p, budget < PROC_SLICE ? budget : PROC_SLICE);
    budget -= ran < budget ? ran : budget;
    if (p->dead) {
      if (!p->in_runq) proc_free(p);
    } else if (p->mq_head || p->exit_reason) {
      node_schedule(n, p);
    }
  }
}

void node_turn(cn_node *n) {
  node_run(n, TURN_BUDGET);
  if (!n->runq_head && uv_is_active((uv_handle_t *)&n->idle)) uv_idle_stop(&n->idle);
  conn_flush_all(n);
}

static void on_idle(uv_idle_t *h) { node_turn(h->data); }

static void on_prepare(uv_prepare_t *h) { conn_flush_all(h->data); }

/* ---- Timers ---------------------------------------------------------------------------------------------- */

static void timer_closed(uv_handle_t *h) {
  cn_timer *t = h->data;
  cn_term_free(t->msg);
  cn_free(t);
}

static void timer_remove(cn_timer *t) {
  *t->prev = t->next;
  if (t->next) t->next->prev = t->prev;
  uv_close((uv_handle_t *)&t->h, timer_closed);
}

static void on_timer_fire(uv_timer_t *h) {
  cn_timer *t = h->data;
  cn_send(t->n, NULL, t->to, t->msg);
  timer_remove(t);
}

int cn_send_after(cn_node *n, unsigned ms, cn_pid to, const cn_term *msg, uint64_t *timer) {
  if (!msg || !to.node) return CN_EINVAL;
  DIRTY_GUARD(n, int, cn_send_after(n, ms, to, msg, timer));
  if (n->stopping) return CN_ESTATE;
  cn_timer *t = cn_calloc(1, sizeof *t);
  if (!t || !(t->msg = cn_term_copy(msg))) {
    cn_free(t);
    return CN_ENOMEM;
  }
  t->id = ++n->timer_seq;
  t->n = n;
  t->to = to;
  uv_timer_init(n->loop, &t->h);
  t->h.data = t;
  t->next = n->timers;
  if (t->next) t->next->prev = &t->next;
  t->prev = &n->timers;
  n->timers = t;
  uv_timer_start(&t->h, on_timer_fire, ms, 0);
  if (timer) *timer = t->id;
  return 0;
}

int cn_cancel_timer(cn_node *n, uint64_t timer) {
  DIRTY_GUARD(n, int, cn_cancel_timer(n, timer));
  for (cn_timer *t = n->timers; t; t = t->next) {
    if (t->id == timer) {
      timer_remove(t);
      return 0;
    }
  }
  return CN_ENOTFOUND;
}

/* ---- Node events -------------------------------------------------------------------------------------- */

static int subscribe(cn_node *n, cn_nodes_fn fn, cn_setup_failed_fn failed_fn, void *ctx) {
  DIRTY_GUARD(n, int, subscribe(n, fn, failed_fn, ctx));
  cn_node_sub *s = cn_malloc(sizeof *s);
  if (!s) return CN_ENOMEM;
  *s = (cn_node_sub){.next = n->subs, .fn = fn, .failed_fn = failed_fn, .ctx = ctx};
  n->subs = s;
  return 0;
}

static int unsubscribe(cn_node *n, cn_nodes_fn fn, cn_setup_failed_fn failed_fn, void *ctx) {
  DIRTY_GUARD(n, int, unsubscribe(n, fn, failed_fn, ctx));
  for (cn_node_sub **pp = &n->subs; *pp; pp = &(*pp)->next) {
    cn_node_sub *s = *pp;
    if (s->fn == fn && s->failed_fn == failed_fn && s->ctx == ctx) {
      *pp = s->next;
      cn_free(s);
      return 0;
    }
  }
  return CN_ENOTFOUND;
}

int cn_node_monitor_nodes(cn_node *n, cn_nodes_fn fn, void *ctx) {
  return fn ? subscribe(n, fn, NULL, ctx) : CN_EINVAL;
}
int cn_node_demonitor_nodes(cn_node *n, cn_nodes_fn fn, void *ctx) { return unsubscribe(n, fn, NULL, ctx); }
int cn_node_monitor_setups(cn_node *n, cn_setup_failed_fn fn, void *ctx) {
  return fn ? subscribe(n, NULL, fn, ctx) : CN_EINVAL;
}
int cn_node_demonitor_setups(cn_node *n, cn_setup_failed_fn fn, void *ctx) { return unsubscribe(n, NULL, fn, ctx); }

void node_setup_failed(cn_node *n, const cn_atom *peer, const char *reason) {
  link_nodedown(n, peer);
  for (cn_node_sub *s = n->subs, *next; s; s = next) {
    next = s->next;
    if (s->failed_fn) s->failed_fn(n, peer, reason, s->ctx);
  }
}

void node_notify(cn_node *n, const cn_atom *peer, bool up, const char *reason) {
  if (up) cn_log(n, CN_LOG_INFO, "nodeup %s", peer->name);
  if (up) otp_nodeup(n, peer);
  else cn_log(n, CN_LOG_INFO, "nodedown %s: %s", peer->name, reason);
  if (!up) link_nodedown(n, peer);
  for (cn_node_sub *s = n->subs, *next; s; s = next) {
    next = s->next;
    if (s->fn) s->fn(n, peer, up, reason, s->ctx);
  }
}

int cn_node_connect(cn_node *n, const cn_atom *node) {
  DIRTY_GUARD(n, int, cn_node_connect(n, node));
  if (!node || node_is_local(n, node)) return CN_EINVAL;
  return conn_connect(n, node);
}

int cn_node_disconnect(cn_node *n, const cn_atom *node) {
  DIRTY_GUARD(n, int, cn_node_disconnect(n, node));
  if (!node || node_is_local(n, node)) return CN_EINVAL;
  return conn_disconnect(n, node);
}

bool cn_node_connect_all(const cn_node *n) { return n->connect_all; }
bool cn_node_hidden(const cn_node *n) { return n->hidden; }
cn_family cn_node_family(const cn_node *n) { return n->inet6 ? CN_INET6 : CN_INET; }

/* ---- Slots of library parts ------------------------------------------------------------------------------ */

int cn_node_attach(cn_node *n, const void *key, void *data, cn_free_fn release) {
  if (!n || !key) return CN_EINVAL;
  DIRTY_GUARD(n, int, cn_node_attach(n, key, data, release));
  if (cn_node_attached(n, key)) return CN_EEXIST;
  cn_node_slot *s = cn_malloc(sizeof *s);
  if (!s) return CN_ENOMEM;
  *s = (cn_node_slot){.next = n->slots, .key = key, .data = data, .release = release};
  n->slots = s;
  return 0;
}

void *cn_node_attached(cn_node *n, const void *key) {
  if (n) DIRTY_GUARD(n, void *, cn_node_attached(n, key));
  for (cn_node_slot *s = n ? n->slots : NULL; s; s = s->next)
    if (s->key == key) return s->data;
  return NULL;
}

/* ---- Start: listen, then register with EPMD ----------------------------------------------------------- */

static void started(cn_node *n, int status) {
  if (status == 0) {
    /* Pids made before the creation was known take it now. */
    for (cn_proc *p = n->procs; p; p = p->hh.next) p->pid.creation = n->creation;
    n->sys_pid.creation = n->creation;
    cn_log(n, CN_LOG_INFO, "node %s ready: port %u, creation %u", n->name->name, n->port, n->creation);
  }
  if (n->start_cb) n->start_cb(n, status, n->start_ctx);
}

static void on_registered(epmd_reg *r, int status, uint32_t creation, void *ctx) {
  (void)r;
  cn_node *n = ctx;
  if (n->creation) {
    /* Called again: the registration socket was lost. */
    cn_log(n, CN_LOG_WARN, "lost EPMD registration: %s", cn_strerror(status));
    n->reg = NULL;
    return;
  }
  if (status) {
    cn_log(n, CN_LOG_ERROR, "EPMD registration of %s on %s:%u failed: %s", n->name->name, n->epmd_host, n->epmd_port,
           cn_strerror(status));
    n->reg = NULL;
    started(n, status);
    return;
  }
  n->creation = creation;
  started(n, 0);
}

/* One listening socket on a's address and port, with plain syscalls: libuv reports a taken port only at
 * uv_listen, on a handle that must then be closed, and the range needs the answer at once. SO_REUSEADDR and a
 * dual-stack "::" as uv_tcp_bind sets them (and OTP's {reuseaddr, true}). Returns an fd, or -errno. */
static int listen_fd(const struct sockaddr_storage *a) {
  int fd = socket(a->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int on = 1, off = 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (a->ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  if (bind(fd, (const struct sockaddr *)a, base_addr_len((const struct sockaddr *)a)) < 0 || listen(fd, 128) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

/* Opens the listener on listen_addr, trying each port of listen_port..listen_port_max in order and going on
 * only past a taken one, as OTP's inet_tcp_dist does with inet_dist_listen_min/max; sets n->port. */
static int start_listening(cn_node *n) {
  struct sockaddr_storage ss;
  if (listen_sockaddr(n->listen_addr, n->inet6, &ss)) return CN_EINVAL;
  const char *lb = ss.ss_family == AF_INET6 ? "[" : "", *rb = ss.ss_family == AF_INET6 ? "]" : "";
  unsigned first = n->listen_port, last = n->listen_port_max ? n->listen_port_max : n->listen_port;
  unsigned port = first;
  int fd;
  for (;;) {
    base_addr_set_port(&ss, (uint16_t)port);
    if ((fd = listen_fd(&ss)) != -EADDRINUSE || port == last) break;
    port++;
  }
  if (fd == -EADDRINUSE && first != last) {
    cn_log(n, CN_LOG_ERROR, "cannot listen on %s%s%s: every port of the range %u-%u is in use", lb, n->listen_addr, rb,
           first, last);
    return CN_EEXIST;
  }
  if (fd < 0) {
    cn_log(n, CN_LOG_ERROR, "cannot listen on %s%s%s:%u: %s", lb, n->listen_addr, rb, port, strerror(-fd));
    return fd == -EADDRINUSE ? CN_EEXIST : CN_EIO;
  }
  int rc;
  uv_tcp_init(n->loop, &n->listener);
  n->listener.data = n;
  if ((rc = uv_tcp_open(&n->listener, fd))) close(fd); /* not adopted: still ours; else it closes with the handle */
  if (rc || (rc = uv_listen((uv_stream_t *)&n->listener, 128, conn_on_accept))) {
    cn_log(n, CN_LOG_ERROR, "cannot listen on %s%s%s:%u: %s", lb, n->listen_addr, rb, port, uv_strerror(rc));
    uv_close((uv_handle_t *)&n->listener, NULL);
    return CN_EIO;
  }
  n->listening = true;
  int namelen = sizeof ss;
  uv_tcp_getsockname(&n->listener, (struct sockaddr *)&ss, &namelen);
  n->port = base_addr_port((struct sockaddr *)&ss);
  if (first != last) cn_log(n, CN_LOG_DEBUG, "listening on port %u of %u-%u", n->port, first, last);
  return 0;
}

_Atomic(int (*)(void *buf, size_t len)) node_random_hook;

int node_random(void *buf, size_t len) {
  int (*hook)(void *, size_t) = node_random_hook;
  return hook ? hook(buf, len) : uv_random(NULL, NULL, buf, len, 0, NULL);
}

int cn_node_start(cn_node *n, cn_start_fn cb, void *ctx) {
  int rc;
  if (n->listening) return CN_ESTATE;
  if ((rc = start_listening(n))) return rc;
  n->start_cb = cb;
  n->start_ctx = ctx;
  if (n->no_epmd) {
    uint32_t c = 0;
    int err = 0; /* never spin on a failing generator */
    while (!c && !(err = node_random(&c, sizeof c))) {
    }
    bool ok = !err;
    if (!ok) cn_log(n, CN_LOG_ERROR, "no random bytes for the node's creation: %s", uv_strerror(err));
    n->creation = c;
    started(n, ok ? 0 : CN_EIO);
    return 0;
  }
  epmd_node_info info;
  memset(&info, 0, sizeof info);
  info.port = n->port;
  info.node_type = n->hidden ? 72 : 77;
  info.protocol = 0;
  info.highest = 6;
  info.lowest = 5;
  size_t alive = (size_t)(strchr(n->name->name, '@') - n->name->name);
  memcpy(info.name, n->name->name, alive);
  info.name[alive] = 0;
  rc = epmd_register(n->loop, n->epmd_host, n->epmd_port, &info, 5000, on_registered, n, &n->reg);
  if (rc) {
    cn_log(n, CN_LOG_ERROR, "EPMD registration failed: %s", cn_strerror(rc));
    return rc;
  }
  return 0;
}

/* ---- Thread-safe calls --------------------------------------------------------------------------------- */

static void ts_post(cn_node *n, cn_ts_msg *m) {
  pthread_mutex_lock(&n->ts_lock);
  *n->ts_tail = m;
  n->ts_tail = &m->next;
  pthread_mutex_unlock(&n->ts_lock);
  uv_async_send(&n->async);
}

int cn_send_threadsafe(cn_node *n, const cn_pid *to, const char *name, const cn_atom *node, cn_term *msg) {
  if (!msg || (!to && !name)) {
    cn_term_free(msg);
    return CN_EINVAL;
  }
  cn_ts_msg *m = cn_calloc(1, sizeof *m);
  if (!m) {
    cn_term_free(msg);
    return CN_ENOMEM;
  }
  m->msg = msg;
  if (to) {
    m->has_pid = true;
    m->to = *to;
  }
  m->name = name ? cn_strndup(name, strlen(name)) : NULL;
  m->node = node;
  if (name && !m->name) {
    cn_free(m);
    cn_term_free(msg);
    return CN_ENOMEM;
  }
  ts_post(n, m);
  return 0;
}

int node_post_job(cn_node *n, void (*job)(cn_node *n, void *arg), void *arg) {
  cn_ts_msg *m = cn_calloc(1, sizeof *m);
  if (!m) return CN_ENOMEM;
  m->job = job;
  m->arg = arg;
  ts_post(n, m);
  return 0;
}

void cn_node_stop(cn_node *n) {
  pthread_mutex_lock(&n->ts_lock);
  n->stop_requested = true;
  pthread_mutex_unlock(&n->ts_lock);
  uv_async_send(&n->async);
}

static void shutdown_node(cn_node *n) {
  if (n->stopping) return;
  n->stopping = true;
  cn_log(n, CN_LOG_DEBUG, "stopping");
  proc_kill_all(n);
  dirty_node_stopping(n);
  conn_close_all(n);
  while (n->timers) timer_remove(n->timers);
  if (n->reg) {
    epmd_reg_close(n->reg);
    n->reg = NULL;
  }
  if (n->listening) uv_close((uv_handle_t *)&n->listener, NULL);
  n->listening = false;
  uv_close((uv_handle_t *)&n->idle, NULL);
  uv_close((uv_handle_t *)&n->prepare, NULL);
  uv_close((uv_handle_t *)&n->async, NULL);
}

static void on_async(uv_async_t *h) {
  cn_node *n = h->data;
  pthread_mutex_lock(&n->ts_lock);
  cn_ts_msg *m = n->ts_head;
  n->ts_head = NULL;
  n->ts_tail = &n->ts_head;
  bool stop = n->stop_requested;
  pthread_mutex_unlock(&n->ts_lock);
  while (m) {
    cn_ts_msg *next = m->next;
    if (m->job) {
      m->job(n, m->arg);
    } else if (!n->stopping) {
      if (m->has_pid) cn_send(n, NULL, m->to, m->msg);
      else cn_send_name(n, NULL, m->name, m->node, m->msg);
    }
    cn_term_free(m->msg);
    cn_free(m->name);
    cn_free(m);
    m = next;
  }
  if (stop) shutdown_node(n);
}

/* The loop until it has nothing left: through the ring when cn_node_run set one up. */
static void node_loop(cn_node *n) {
  if (n->ur && pthread_equal(n->ur_thread, pthread_self())) uring_run(n, n->loop);
  else uv_run(n->loop, UV_RUN_DEFAULT);
}

int cn_node_run(cn_node *n) {
  if (!n->ur_tried) {
    n->ur_tried = true;
    n->ur_thread = pthread_self();
    if (uring_wanted()) uring_open(n);
  }
  node_loop(n);
  return n->run_status;
}

static void close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

void cn_node_free(cn_node *n) {
  if (!n) return;
  if (!n->stopping) {
    shutdown_node(n);
    node_loop(n);
  }
  dirty_free(n);
  while (n->runq_head) {
    cn_proc *p = n->runq_head;
    n->runq_head = p->run_next;
    p->in_runq = false;
    if (p->dead) proc_free(p);
  }
  cn_proc *p, *tmp;
  HASH_ITER(hh, n->procs, p, tmp) {
    HASH_DEL(n->procs, p);
    p->dead = true;
    proc_free(p);
  }
  cn_name *nm, *ntmp;
  HASH_ITER(hh, n->names, nm, ntmp) {
    HASH_DEL(n->names, nm);
    cn_free(nm);
  }
  n->name_last = NULL;
  spawn_free_entries(n);
  conn_tls_free(n);
  while (n->subs) {
    cn_node_sub *s = n->subs;
    n->subs = s->next;
    cn_free(s);
  }
  while (n->slots) {
    cn_node_slot *s = n->slots;
    n->slots = s->next;
    if (s->release) s->release(s->data);
    cn_free(s);
  }
  cn_ts_msg *m = n->ts_head;
  while (m) {
    cn_ts_msg *next = m->next;
    if (m->job) m->job(n, m->arg); /* a stopped node refuses it, so a waiting thread is released */
    cn_term_free(m->msg);
    cn_free(m->name);
    cn_free(m);
    m = next;
  }
  if (n->owns_loop) {
    uv_walk(n->loop, close_walk, NULL);
    uv_run(n->loop, UV_RUN_DEFAULT);
    uv_loop_close(n->loop);
  }
  uring_close(n);
  proc_msg_spares_free(n);
  pthread_mutex_destroy(&n->ts_lock);
  cn_atoms_free(n->atoms);
  cn_free(n->host);
  cn_free(n->cookie);
  cn_free(n->epmd_host);
  cn_free(n->listen_addr);
  cn_free(n);
}
