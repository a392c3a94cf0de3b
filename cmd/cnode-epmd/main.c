/* main.c: the `cnode-epmd` program: epmd/'s server as a drop-in for OTP's `epmd` (same flags where they
 * apply, same environment, same client-mode output), so erl, the epmd tool and C nodes cannot tell them apart. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "epmd.h"

typedef struct app {
  uv_loop_t *loop;
  epmd_srv *srv;
  uv_signal_t sigint, sigterm;
  int daemon;
} app;

static void usage(void) {
  fprintf(stderr,
          "usage: cnode-epmd [-d|-debug] [-packet_timeout Seconds] [-port No] [-address List] [-daemon]\n"
          "                  [-relaxed_command_check]\n"
          "       cnode-epmd [-d|-debug] [-port No] [-names|-dump|-kill|-stop Name]\n"
          "       cnode-epmd -version\n\n"
          "An EPMD server compatible with OTP's epmd (see the Erlang epmd manual page).\n"
          "  -port No                 listen on No instead of $ERL_EPMD_PORT or %d\n"
          "  -address List            listen on these comma-separated IPv4/IPv6 addresses ($ERL_EPMD_ADDRESS)\n"
          "                           plus 127.0.0.1 and ::1; default: every address\n"
          "  -d, -debug               log to stderr (repeat for more)\n"
          "  -daemon                  detach (fork, setsid) and log to syslog\n"
          "  -relaxed_command_check   allow -kill with live names and -stop ($ERL_EPMD_RELAXED_COMMAND_CHECK)\n"
          "  -packet_timeout Seconds  close connections idle this long before a whole request (60)\n"
          "  -names | -dump           list the names a running epmd knows\n"
          "  -kill                    stop a running epmd (only with no live names unless it is relaxed)\n"
          "  -stop Name               unregister Name (only on a relaxed epmd)\n"
          "  -version, --version      print the version (of libcnode, which it is part of) and exit\n",
          EPMD_DEFAULT_PORT);
  exit(1);
}

/* OTP's epmd logs "epmd: <ctime>: msg" on stderr, or to syslog as a daemon. */
static void log_line(int level, const char *msg, void *ctx) {
  app *a = ctx;
  (void)level;
  if (a->daemon) {
    syslog(LOG_ERR, "epmd: %s", msg);
    return;
  }
  time_t now = time(NULL);
  char ts[64];
  snprintf(ts, sizeof ts, "%s", ctime(&now));
  ts[strcspn(ts, "\n")] = 0;
  fprintf(stderr, "epmd: %s: %s\r\n", ts, msg);
}

/* ---- client mode: one request to the local epmd (::1 first, then 127.0.0.1, as OTP's tool) ---------- */

static int connect_local(uint16_t port) {
  struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&a6, sizeof a6) == 0) return fd;
  if (fd >= 0) close(fd);
  struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&a4, sizeof a4) == 0) return fd;
  if (fd >= 0) close(fd);
  fprintf(stderr, "epmd: Cannot connect to local epmd\n");
  exit(1);
}

static void send_req(int fd, const cn_buf *b) {
  if (write(fd, b->data, b->len) != (ssize_t)b->len) {
    printf("epmd: Can't write to epmd\n");
    exit(1);
  }
}

/* Reads up to want bytes (until EOF when want is 0, into b). */
static ssize_t read_all(int fd, cn_buf *b, size_t want) {
  for (;;) {
    if (want && b->len >= want) return (ssize_t)b->len;
    uint8_t tmp[4096];
    size_t ask = want ? want - b->len : sizeof tmp;
    ssize_t k = read(fd, tmp, ask < sizeof tmp ? ask : sizeof tmp);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return -1;
    if (k == 0) return (ssize_t)b->len;
    if (cn_buf_append(b, tmp, (size_t)k)) return -1;
  }
}

static int client_list(uint16_t port, epmd_req_type type) {
  int fd = connect_local(port);
  cn_buf b = {0};
  epmd_enc_simple_req(&b, type);
  send_req(fd, &b);
  b.len = 0;
  uint32_t eport;
  if (read_all(fd, &b, 4) < 4 || epmd_dec_names_hdr(b.data, b.len, &eport) != 4) {
    printf("epmd: no response from local epmd\n");
    return 1;
  }
  printf("epmd: up and running on port %u with data:\n", (unsigned)eport);
  b.len = 0;
  read_all(fd, &b, 0);
  fwrite(b.data, 1, b.len, stdout);
  cn_buf_free(&b);
  close(fd);
  return 0;
}

/* Sends the request in b to the local epmd and reads up to `want` bytes of answer into b; returns the count
 * read (negative on a read error). */
static ssize_t ask(uint16_t port, cn_buf *b, size_t want) {
  int fd = connect_local(port);
  send_req(fd, b);
  b->len = 0;
  ssize_t k = read_all(fd, b, want);
  close(fd);
  return k;
}

/* What OTP's epmd client prints when the answer is not one it expects. */
static void print_unexpected(ssize_t k, const cn_buf *b) {
  if (k < 0) printf("epmd: failed to read answer from local epmd\n");
  else printf("epmd: local epmd responded with <%.*s>\n", (int)k, k ? (const char *)b->data : "");
}

static int client_kill(uint16_t port) {
  cn_buf b = {0};
  epmd_enc_simple_req(&b, EPMD_REQ_KILL);
  ssize_t k = ask(port, &b, 2);
  int rc = 1;
  if (k == 2 && memcmp(b.data, "OK", 2) == 0) {
    printf("Killed\n");
    rc = 0;
  } else if (k == 2) {
    printf("Killing not allowed - living nodes in database.\n");
  } else {
    print_unexpected(k, &b);
  }
  cn_buf_free(&b);
  return rc;
}

static int client_stop(uint16_t port, const char *name) {
  cn_buf b = {0};
  if (epmd_enc_stop_req(&b, name)) {
    printf("epmd: Name too long!");
    return 1;
  }
  ssize_t k = ask(port, &b, 7);
  int rc = 1;
  if (k == 7) {
    printf("%.7s\n", (const char *)b.data);
    rc = 0;
  } else {
    print_unexpected(k, &b);
  }
  cn_buf_free(&b);
  return rc;
}

/* ---- server mode ------------------------------------------------------------------------------------- */

static void close_signals(app *a) {
  if (!uv_is_closing((uv_handle_t *)&a->sigint)) uv_close((uv_handle_t *)&a->sigint, NULL);
  if (!uv_is_closing((uv_handle_t *)&a->sigterm)) uv_close((uv_handle_t *)&a->sigterm, NULL);
}

static void on_signal(uv_signal_t *s, int signum) {
  (void)signum;
  app *a = s->data;
  close_signals(a);
  if (a->srv) epmd_srv_close(a->srv, NULL, NULL);
  a->srv = NULL;
}

static void on_kill(epmd_srv *s, void *ctx) {
  (void)s;
  app *a = ctx;
  close_signals(a);
  epmd_srv_close(a->srv, NULL, NULL);
  a->srv = NULL;
}

/* As OTP: fork twice around setsid so the daemon is no session leader, cwd /, stdio on /dev/null. */
static void daemonize(void) {
  pid_t pid = fork();
  if (pid < 0) exit(1);
  if (pid > 0) _exit(0);
  if (setsid() < 0) exit(1);
  signal(SIGHUP, SIG_IGN);
  if ((pid = fork()) < 0) exit(1);
  if (pid > 0) _exit(0);
  if (chdir("/")) { /* nothing to undo */
  }
  umask(0);
  int dn = open("/dev/null", O_RDWR);
  if (dn >= 0) {
    dup2(dn, 0);
    dup2(dn, 1);
    dup2(dn, 2);
    if (dn > 2) close(dn);
  }
  openlog("cnode-epmd", LOG_PID, LOG_DAEMON);
}

static int parse_port(const char *s) {
  char *end;
  long v = strtol(s, &end, 10);
  return *s && *end == 0 && v > 0 && v <= 65535 ? (int)v : 0;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  app a;
  memset(&a, 0, sizeof a);
  epmd_srv_opts o;
  memset(&o, 0, sizeof o);
  o.port = epmd_default_port();
  o.addresses = getenv("ERL_EPMD_ADDRESS");
  o.relaxed_command_check = getenv("ERL_EPMD_RELAXED_COMMAND_CHECK") != NULL;
  o.log = log_line;
  o.on_kill = on_kill;
  o.ctx = &a;
  enum { SERVE, NAMES, DUMP, KILL, STOP } mode = SERVE;
  const char *stop_name = NULL;
  for (int i = 1; i < argc; i++) {
    const char *f = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(f, "-version") || !strcmp(f, "--version")) {
      printf("cnode-epmd %s\n", cn_version());
      return 0;
    } else if (!strcmp(f, "-d") || !strcmp(f, "-debug")) {
      o.debug++;
    } else if (!strcmp(f, "-port")) {
      if (!v || !(o.port = (uint16_t)parse_port(v))) usage();
      i++;
    } else if (!strcmp(f, "-address")) {
      if (!v) usage();
      o.addresses = v;
      i++;
    } else if (!strcmp(f, "-packet_timeout")) {
      if (!v || atoi(v) <= 0) usage();
      o.packet_timeout_ms = (unsigned)atoi(v) * 1000u;
      i++;
    } else if (!strcmp(f, "-daemon") || !strcmp(f, "-detached")) {
      a.daemon = 1;
    } else if (!strcmp(f, "-relaxed_command_check")) {
      o.relaxed_command_check = 1;
    } else if (!strcmp(f, "-names") || !strcmp(f, "-dump") || !strcmp(f, "-kill")) {
      if (i + 1 != argc) usage(); /* as OTP: the client command comes last */
      mode = f[1] == 'n' ? NAMES : f[1] == 'd' ? DUMP : KILL;
    } else if (!strcmp(f, "-stop")) {
      if (i + 2 != argc) usage();
      mode = STOP;
      stop_name = v;
      i++;
    } else {
      usage();
    }
  }
  switch (mode) {
  case NAMES: return client_list(o.port, EPMD_REQ_NAMES);
  case DUMP: return client_list(o.port, EPMD_REQ_DUMP);
  case KILL: return client_kill(o.port);
  case STOP: return client_stop(o.port, stop_name);
  case SERVE: break;
  }
  if (a.daemon) daemonize();
  a.loop = uv_default_loop();
  int rc = epmd_srv_start(a.loop, &o, &a.srv);
  if (rc == CN_EEXIST) {
    /* OTP's epmd exits 0 when one already runs: `epmd -daemon` is called by every erl that starts. */
    if (o.debug) log_line(1, "there is already a epmd running", &a);
    return 0;
  }
  if (rc) {
    char msg[128];
    snprintf(msg, sizeof msg, "cannot listen on port %u: %s", (unsigned)o.port, cn_strerror(rc));
    log_line(0, msg, &a);
    return 1;
  }
  if (o.debug) {
    char msg[64];
    snprintf(msg, sizeof msg, "epmd running - daemon = %d", a.daemon);
    log_line(1, msg, &a);
  }
  uv_signal_init(a.loop, &a.sigint);
  uv_signal_init(a.loop, &a.sigterm);
  a.sigint.data = a.sigterm.data = &a;
  uv_signal_start(&a.sigint, on_signal, SIGINT);
  uv_signal_start(&a.sigterm, on_signal, SIGTERM);
  uv_run(a.loop, UV_RUN_DEFAULT);
  uv_loop_close(a.loop);
  return 0;
}
