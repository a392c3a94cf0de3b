/* client.c: the async EPMD client on libuv: registration (ALIVE2, socket kept open), PORT_PLEASE2 and NAMES.
 * Thin glue: it resolves, connects, moves bytes and runs a timer; the wire format is codec.c's job. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "epmd.h"

#define NAMES_MAX (1u << 20) /* epmd's NAMES text is a line per node; 1 MiB is far beyond any real host */
#define RESP_MAX (16 + EPMD_MAX_NAME + EPMD_MAX_EXTRA) /* the largest PORT2_RESP: tag, result, fields, name, extra */

enum kind { K_REG, K_PORT, K_NAMES };

/* One connection to epmd. It owns a timer, at most one TCP handle at a time (a new one per address tried)
 * and at most one getaddrinfo request; refs counts those still open so the memory is freed only after the
 * last close callback. */
typedef struct conn {
  uv_loop_t *loop;
  enum kind kind;
  uv_timer_t timer;
  uv_tcp_t tcp;
  uv_getaddrinfo_t gai;
  uv_connect_t creq;
  uv_write_t wreq;
  int refs;
  unsigned tcp_open : 1, timer_open : 1, gai_pending : 1;
  unsigned have_numeric : 1, numeric_tried : 1, retry : 1;
  unsigned done : 1;       /* the result is decided and the handles are closing */
  unsigned silent : 1;     /* no final callback (reg_close, or a call that returned an error) */
  unsigned in_final : 1;   /* inside the final callback: close/cancel are no-ops */
  unsigned registered : 1; /* K_REG: the success callback ran */
  int status;
  uint16_t port;
  struct sockaddr_storage numeric;
  struct addrinfo *ai, *ai_next;
  cn_buf out, in;
  epmd_node_info info;
  uint32_t names_port;
  void *ctx;
  union {
    epmd_reg_cb reg;
    epmd_port_cb port;
    epmd_names_cb names;
  } cb;
} conn;

/* The public handles are the connection itself; the casts go through the first member. */
struct epmd_reg {
  conn c;
};
struct epmd_req {
  conn c;
};

static void connect_next(conn *c);

uint16_t epmd_default_port(void) {
  const char *s = getenv("ERL_EPMD_PORT");
  if (s && *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*end == 0 && v > 0 && v <= 65535) return (uint16_t)v;
  }
  return EPMD_DEFAULT_PORT;
}

static void final(conn *c) {
  if (!c->silent) {
    c->in_final = 1;
    switch (c->kind) {
    case K_REG: c->cb.reg((epmd_reg *)c, c->status, 0, c->ctx); break;
    case K_PORT: c->cb.port(c->status, c->status == 0 ? &c->info : NULL, c->ctx); break;
    case K_NAMES:
      if (c->status == 0) c->cb.names(0, c->names_port, (const char *)c->in.data + 4, c->in.len - 4, c->ctx);
      else c->cb.names(c->status, 0, NULL, 0, c->ctx);
      break;
    }
  }
  if (c->ai) uv_freeaddrinfo(c->ai);
  cn_buf_free(&c->out);
  cn_buf_free(&c->in);
  cn_free(c);
}

/* The final callback runs only once nothing of ours is left in the loop. */
static void unref(conn *c) {
  if (--c->refs == 0 && c->done) final(c);
}

static void on_close(uv_handle_t *h) {
  conn *c = h->data;
  if (h == (uv_handle_t *)&c->tcp && c->retry && !c->done) {
    c->retry = 0;
    c->refs--;
    connect_next(c);
    return;
  }
  unref(c);
}

/* Decides the result once; later events (cancel, timeout, EOF while closing) are ignored. */
static void finish(conn *c, int status) {
  if (c->done) return;
  c->done = 1;
  c->status = status;
  if (c->timer_open) {
    c->timer_open = 0;
    uv_close((uv_handle_t *)&c->timer, on_close);
  }
  if (c->tcp_open) {
    c->tcp_open = 0;
    uv_close((uv_handle_t *)&c->tcp, on_close);
  }
  /* A lookup already running on the thread pool cannot be cancelled; its callback then drops the result. */
  if (c->gai_pending) uv_cancel((uv_req_t *)&c->gai);
}

static void on_timer(uv_timer_t *t) { finish(t->data, CN_ETIMEDOUT); }

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn *c = h->data;
  (void)suggested;
  /* Reads land straight in c->in; a failed reserve gives libuv an empty buffer, which it reports as
   * UV_ENOBUFS. */
  if (cn_buf_reserve(&c->in, 4096)) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init((char *)c->in.data + c->in.len, (unsigned)(c->in.cap - c->in.len - 1));
}

static void got_bytes(conn *c) {
  ssize_t n;
  uint8_t result = 0;
  switch (c->kind) {
  case K_REG: {
    if (c->registered) {
      c->in.len = 0; /* epmd says nothing after the response; stray bytes are dropped */
      return;
    }
    uint32_t creation = 0;
    n = epmd_dec_alive2_resp(c->in.data, c->in.len, &result, &creation);
    if (n == 0) return;
    if (n < 0) {
      finish(c, (int)n);
      return;
    }
    if (result != 0) {
      /* epmd's only refusal of a well-formed ALIVE2 is a name already registered. */
      finish(c, CN_EEXIST);
      return;
    }
    c->registered = 1;
    c->in.len = 0;
    uv_timer_stop(&c->timer);
    c->cb.reg((epmd_reg *)c, 0, creation, c->ctx);
    return;
  }
  case K_PORT:
    n = epmd_dec_port2_resp(c->in.data, c->in.len, &result, &c->info);
    if (n == 0) {
      if (c->in.len > RESP_MAX) finish(c, CN_ELIMIT);
      return;
    }
    finish(c, n < 0 ? (int)n : result != 0 ? CN_ENOTFOUND : 0);
    return;
  case K_NAMES:
    if (c->in.len > 4 + (size_t)NAMES_MAX) finish(c, CN_ELIMIT);
    return;
  }
}

static void on_eof(conn *c) {
  if (c->kind == K_NAMES) {
    if (epmd_dec_names_hdr(c->in.data, c->in.len, &c->names_port) == 0) {
      finish(c, c->in.len ? CN_EPROTO : CN_ECLOSED);
      return;
    }
    /* Keep a NUL after the text for callers that print it. */
    if (cn_buf_reserve(&c->in, 1)) {
      finish(c, CN_ENOMEM);
      return;
    }
    c->in.data[c->in.len] = 0;
    finish(c, 0);
    return;
  }
  finish(c, CN_ECLOSED);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn *c = s->data;
  (void)buf;
  if (c->done) return;
  if (nread > 0) {
    c->in.len += (size_t)nread;
    got_bytes(c);
  } else if (nread == UV_EOF) {
    on_eof(c);
  } else if (nread == UV_ENOBUFS) {
    finish(c, CN_ENOMEM);
  } else if (nread < 0) {
    /* A registration that was working and is lost reports CN_ECLOSED, whatever the socket error. */
    finish(c, c->registered ? CN_ECLOSED : CN_EIO);
  }
}

static void on_write(uv_write_t *w, int status) {
  conn *c = w->data;
  if (status < 0 && !c->done) finish(c, c->registered ? CN_ECLOSED : CN_EIO);
}

/* The current address failed: close this TCP handle and try the next one from its close callback. */
static void attempt_failed(conn *c) {
  c->tcp_open = 0;
  c->retry = 1;
  uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_connect(uv_connect_t *req, int status) {
  conn *c = req->data;
  if (c->done) return;
  if (status < 0) {
    attempt_failed(c);
    return;
  }
  int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
  if (rc == 0) rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (rc < 0) finish(c, CN_EIO);
}

static void connect_next(conn *c) {
  const struct sockaddr *sa = NULL;
  if (c->have_numeric && !c->numeric_tried) {
    c->numeric_tried = 1;
    sa = (const struct sockaddr *)&c->numeric;
  } else {
    while (c->ai_next && !sa) {
      struct addrinfo *a = c->ai_next;
      c->ai_next = a->ai_next;
      if (a->ai_family == AF_INET || a->ai_family == AF_INET6) {
        /* getaddrinfo got no service, so the port is set here. */
        if (a->ai_family == AF_INET) ((struct sockaddr_in *)a->ai_addr)->sin_port = htons(c->port);
        else ((struct sockaddr_in6 *)a->ai_addr)->sin6_port = htons(c->port);
        sa = a->ai_addr;
      }
    }
  }
  if (!sa) {
    finish(c, CN_EIO);
    return;
  }
  if (uv_tcp_init(c->loop, &c->tcp) < 0) {
    finish(c, CN_EIO);
    return;
  }
  c->tcp.data = c;
  c->tcp_open = 1;
  c->refs++;
  c->creq.data = c;
  if (uv_tcp_connect(&c->creq, &c->tcp, sa, on_connect) < 0) attempt_failed(c);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  conn *c = req->data;
  c->gai_pending = 0;
  if (c->done || status < 0) {
    if (res) uv_freeaddrinfo(res);
    if (!c->done) finish(c, CN_EIO);
    unref(c);
    return;
  }
  c->ai = c->ai_next = res;
  c->refs--; /* cannot reach 0 here: the timer is open while not done */
  connect_next(c);
}

/* Allocates a connection with its request bytes already in c->out (moved from *req). Errors: CN_ENOMEM. */
static int conn_new(uv_loop_t *loop, enum kind kind, uint16_t port, unsigned timeout_ms, cn_buf *req, void *ctx,
                    conn **out) {
  conn *c = cn_calloc(1, sizeof *c);
  if (!c) return CN_ENOMEM;
  c->loop = loop;
  c->kind = kind;
  c->port = port;
  c->ctx = ctx;
  c->out = *req;
  *req = (cn_buf){0};
  c->wreq.data = c;
  c->gai.data = c;
  uv_timer_init(loop, &c->timer); /* cannot fail on Unix */
  c->timer.data = c;
  c->timer_open = 1;
  c->refs = 1;
  if (timeout_ms) uv_timer_start(&c->timer, on_timer, timeout_ms, 0);
  *out = c;
  return 0;
}

/* Starts resolve/connect. On a synchronous failure the connection is torn down silently and the error
 * returned, so the caller's callback never runs. */
static int conn_start(conn *c, const char *host) {
  if (!host) host = "127.0.0.1";
  if (uv_ip4_addr(host, c->port, (struct sockaddr_in *)&c->numeric) == 0 ||
      uv_ip6_addr(host, c->port, (struct sockaddr_in6 *)&c->numeric) == 0) {
    c->have_numeric = 1;
    connect_next(c);
    return 0;
  }
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (uv_getaddrinfo(c->loop, &c->gai, on_resolved, host, NULL, &hints) < 0) {
    c->silent = 1;
    finish(c, CN_EIO);
    return CN_EIO;
  }
  c->gai_pending = 1;
  c->refs++;
  return 0;
}

int epmd_register(uv_loop_t *loop, const char *host, uint16_t epmd_port, const epmd_node_info *info,
                  unsigned timeout_ms, epmd_reg_cb cb, void *ctx, epmd_reg **out) {
  if (!loop || !info || !cb || !epmd_port) return CN_EINVAL;
  cn_buf req = {0};
  int rc = epmd_enc_alive2_req(&req, info);
  if (rc) return rc;
  conn *c;
  if ((rc = conn_new(loop, K_REG, epmd_port, timeout_ms, &req, ctx, &c))) {
    cn_buf_free(&req);
    return rc;
  }
  c->cb.reg = cb;
  if ((rc = conn_start(c, host))) return rc;
  if (out) *out = (epmd_reg *)c;
  return 0;
}

void epmd_reg_close(epmd_reg *r) {
  if (!r) return;
  conn *c = &r->c;
  if (c->in_final) return;
  c->silent = 1;
  finish(c, CN_ECLOSED);
}

int epmd_port_please(uv_loop_t *loop, const char *host, uint16_t epmd_port, const char *name, unsigned timeout_ms,
                     epmd_port_cb cb, void *ctx, epmd_req **out) {
  if (!loop || !cb || !epmd_port) return CN_EINVAL;
  cn_buf req = {0};
  int rc = epmd_enc_port_please2_req(&req, name);
  if (rc) return rc;
  conn *c;
  if ((rc = conn_new(loop, K_PORT, epmd_port, timeout_ms, &req, ctx, &c))) {
    cn_buf_free(&req);
    return rc;
  }
  c->cb.port = cb;
  if ((rc = conn_start(c, host))) return rc;
  if (out) *out = (epmd_req *)c;
  return 0;
}

int epmd_names(uv_loop_t *loop, const char *host, uint16_t epmd_port, unsigned timeout_ms, epmd_names_cb cb, void *ctx,
               epmd_req **out) {
  if (!loop || !cb || !epmd_port) return CN_EINVAL;
  cn_buf req = {0};
  int rc = epmd_enc_names_req(&req);
  if (rc) return rc;
  conn *c;
  if ((rc = conn_new(loop, K_NAMES, epmd_port, timeout_ms, &req, ctx, &c))) {
    cn_buf_free(&req);
    return rc;
  }
  c->cb.names = cb;
  if ((rc = conn_start(c, host))) return rc;
  if (out) *out = (epmd_req *)c;
  return 0;
}

void epmd_req_cancel(epmd_req *r) {
  if (!r) return;
  conn *c = &r->c;
  if (c->in_final) return;
  finish(c, CN_ECLOSED);
}
