/* http.c: the cnode program's HTTP endpoint: libmicrohttpd (Debian's libmicrohttpd-dev) in its external-polling
 * epoll mode, driven from the node's libuv loop: one uv_poll on MHD's epoll descriptor and one uv_timer for its
 * timeouts, so requests are parsed by MHD and answered on the loop's thread with no thread of its own. */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base_addr.h"
#include "ops.h"

/* A probe or a scrape needs little: a request whose headers pass 16 KiB is refused (431 from MHD), a client that
 * stays silent for 10 s is dropped, and at most 64 clients are served at once. */
enum { MEMORY_LIMIT = 16384, CONN_LIMIT = 64, CONN_TIMEOUT_S = 10 };

struct http_srv {
  cn_node *n;
  struct MHD_Daemon *d;
  uv_poll_t poll;
  uv_timer_t timer;
  int open_handles;
  http_route_fn route;
  void *ctx;
  uint16_t port;
};

static void run(http_srv *h);

static void on_timer(uv_timer_t *t) { run(t->data); }

static void on_poll(uv_poll_t *p, int status, int events) {
  (void)status, (void)events;
  run(p->data);
}

static unsigned connections(const http_srv *h) {
  const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
  return i ? i->num_connections : 0;
}

/* Lets MHD do what is ready, then sets the timer to MHD's next deadline (0: more is ready now, e.g. a connection
 * left in its edge-triggered ready list). A turn that closed connections runs again: MHD takes its listen socket
 * out of its epoll set at the connection limit and puts it back only at the start of a turn, so without one more
 * turn the clients waiting in the backlog would wait for some unrelated event. */
static void run(http_srv *h) {
  for (int turn = 0; turn < 4; turn++) {
    unsigned before = connections(h);
    MHD_run(h->d);
    if (connections(h) >= before) break;
  }
  MHD_UNSIGNED_LONG_LONG ms;
  if (MHD_get_timeout(h->d, &ms) == MHD_YES) uv_timer_start(&h->timer, on_timer, ms > 60000 ? 60000 : ms, 0);
  else uv_timer_stop(&h->timer);
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *ctype, const void *body,
                              size_t len) {
  struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  enum MHD_Result rc = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **req_ctx) {
  (void)version, (void)upload, (void)upload_size, (void)req_ctx;
  http_srv *h = cls;
  static const char text[] = "text/plain; charset=utf-8";
  if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD)) {
    static const char m[] = "method not allowed: GET or HEAD\n";
    struct MHD_Response *r = MHD_create_response_from_buffer(sizeof m - 1, (void *)m, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, text);
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_METHOD_NOT_ALLOWED, r);
    MHD_destroy_response(r);
    return rc;
  }
  cn_buf body = {0};
  const char *ctype = text;
  int status = h->route(url, &body, &ctype, h->ctx);
  enum MHD_Result rc =
      status > 0 ? answer(c, (unsigned)status, ctype, body.data ? (void *)body.data : (void *)"", body.len) : MHD_NO;
  cn_buf_free(&body);
  return rc;
}

/* MHD's own lines (a refused request, a dropped connection) go to the node's log at debug level. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
  char line[512];
  vsnprintf(line, sizeof line, fmt, ap);
  line[strcspn(line, "\n")] = 0;
  cn_log(cls, CN_LOG_DEBUG, "http: %s", line);
}

int http_start(cn_node *n, const char *addr, uint16_t port, http_route_fn route, void *ctx, http_srv **out) {
  struct sockaddr_storage sa;
  if (base_addr_parse(addr ? addr : "0.0.0.0", port, AF_UNSPEC, &sa)) {
    cn_log(n, CN_LOG_ERROR, "http: %s is not a numeric address", addr);
    return CN_EINVAL;
  }
  http_srv *h = calloc(1, sizeof *h);
  if (!h) return CN_ENOMEM;
  h->n = n;
  h->route = route;
  h->ctx = ctx;
  unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
  h->d = MHD_start_daemon(flags, port, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, n,
                          MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                          (size_t)MEMORY_LIMIT, MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONN_LIMIT,
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT_S, MHD_OPTION_END);
  const union MHD_DaemonInfo *fd = h->d ? MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
  const union MHD_DaemonInfo *bp = h->d ? MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT) : NULL;
  if (!fd || !bp) {
    cn_log(n, CN_LOG_ERROR, "http: cannot listen on %s port %u (in use, or not an address of this host)",
           addr ? addr : "0.0.0.0", port);
    if (h->d) MHD_stop_daemon(h->d);
    free(h);
    return CN_EIO;
  }
  h->port = bp->port;
  uv_loop_t *loop = cn_node_loop(n);
  uv_timer_init(loop, &h->timer);
  h->timer.data = h;
  uv_unref((uv_handle_t *)&h->timer); /* the endpoint lives as long as the node: it keeps no loop alive */
  h->open_handles = 1;
  if (uv_poll_init(loop, &h->poll, fd->epoll_fd) == 0) {
    h->poll.data = h;
    h->open_handles++;
    uv_poll_start(&h->poll, UV_READABLE, on_poll);
    uv_unref((uv_handle_t *)&h->poll);
  }
  if (h->open_handles < 2) {
    http_close(h);
    return CN_EIO;
  }
  run(h);
  *out = h;
  return 0;
}

uint16_t http_port(const http_srv *h) { return h->port; }

static void on_closed(uv_handle_t *hd) {
  http_srv *h = hd->data;
  if (--h->open_handles == 0) free(h);
}

void http_close(http_srv *h) {
  if (!h) return;
  /* The poll handle leaves libuv's epoll before MHD closes the descriptor it watches. */
  if (h->open_handles == 2) uv_close((uv_handle_t *)&h->poll, on_closed);
  uv_close((uv_handle_t *)&h->timer, on_closed);
  MHD_stop_daemon(h->d);
  h->d = NULL;
}
