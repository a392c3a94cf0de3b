/* main.c: the `cnode` program: a C node on its embedded defaults (cnode@127.0.0.1, the cookie erl would use)
 * hosting the demo workers, and the `cnode term` tools. Ctrl-C or SIGTERM stop it cleanly. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cn_global.h"
#include "base_addr.h"
#include "cluster_app.h"
#include "cnode.h"
#include "env.h"
#include "epmd.h"
#include "horde_app.h"
#include "ops.h"
#include "pubsub_app.h"
#include "resil_app.h"
#include "term_tool.h"
#include "compute.h"
#include "workers.h"

typedef struct app {
  cn_node *node;
  char cookie[CN_ATOM_MAX_BYTES + 2]; /* an atom's bytes, and one more to tell a longer one */
  int status;
  bool inet6;        /* --proto-dist inet6_tcp or inet6_tls */
  const char *proto; /* the --proto-dist value */
} app;

static void usage(FILE *f) {
  fprintf(f,
          "usage: cnode [--name N | --sname N] [--cookie C | --cookie-file F] [--epmd-port P]\n"
          "             [--listen-addr ADDR] [--listen PORT | --listen-min P --listen-max Q]\n"
          "             [--ticktime SECONDS] [--hidden] [--connect-all false] [--verbose]\n"
          "             [--proto-dist inet_tcp|inet_tls|inet6_tcp|inet6_tls] [--ssl-dist-optfile F]\n"
          "             [--tls-cert F] [--tls-key F] [--tls-ca F] [--tls-verify verify_peer|verify_none]\n"
          "             [--horde-registry NAME]... [--horde-supervisor NAME]... [--otp-release N]\n"
          "             [--pg] [--pubsub NAME]... [--dirty-threads N]\n"
          "             [--cluster gossip|hosts:A@H,...|dns:Q|dnssrv:Q] [--gossip-* ...] [--dns-* ...]\n"
          "             [--watch NAME=HOST:PORT]... [--watch-interval MS] [--alarm-node NODE]...\n"
          "             [--http-port P [--http-addr ADDR]] [--drain-delay S] [--shutdown-timeout S]\n"
          "       cnode term ...   (cnode term --help)\n"
          "       cnode --version | --help\n"
          "  Starts a C node (default cnode@127.0.0.1) hosting the demo processes echo, cnode_kv and cnode_ctl,\n"
          "  the sorted set gen_server sorted_set and the dirty gen_server cnode_burn ({burn, Ms}).\n"
          "  --dirty-threads N: threads of the dirty pool (default: the number of cores).\n"
          "  The cookie defaults to ~/.erlang.cookie, created as erl creates it when missing.\n"
          "  --listen-addr ADDR: the distribution port listens on this numeric IPv4/IPv6 address only (127.0.0.1,\n"
          "  ::1, ::), as erl -kernel inet_dist_use_interface; default 0.0.0.0, every IPv4 interface. An embedded\n"
          "  EPMD server listens there too (plus 127.0.0.1 and ::1) unless ERL_EPMD_ADDRESS says otherwise.\n"
          "  --listen PORT: that port only; --listen-min P --listen-max Q: the first free port of P..Q, as\n"
          "  inet_dist_listen_min/max; default: any free port.\n"
          "  --proto-dist inet6_tcp / inet6_tls: over IPv6, as erl -proto_dist inet6_tcp: listens on :: (default\n"
          "  name cnode@::1), registers with the EPMD on ::1 and reaches peers at their host's IPv6 address.\n"
          "  --proto-dist inet_tls: distribution over TLS, as erl -proto_dist inet_tls; options from the same\n"
          "  ssl_dist_optfile erl reads and/or the --tls-* flags (they override the file, for both sides;\n"
          "  --tls-verify verify_peer also makes accepted peers show a certificate).\n"
          "  --otp-release N: follow OTP N's term semantics (27 and later: 0.0 and -0.0 are two map keys) and\n"
          "  TLS defaults (no versions in the optfile: TLS 1.3 too from 29 on); default: learned from the first\n"
          "  BEAM peer (its erlang:system_info(otp_release)), 25 until then.\n"
          "  --horde-registry MyApp.Registry: joins that Horde.Registry (members: auto) and registers echo there\n"
          "  under {echo, NodeName}. --horde-supervisor MyApp.Sup: joins that Horde.DynamicSupervisor with the\n"
          "  demo C worker Elixir.CNode.Demo.Counter.\n"
          "  --pg: runs OTP's default pg scope (as erl -kernel start_pg true). --pubsub MyApp.PubSub: joins\n"
          "  that Phoenix.PubSub (PG2 adapter; pool size learned from the cluster), where a C subscriber of\n"
          "  \"cnode:echo\" broadcasts {echo, node(), Msg} on \"cnode:echo:reply\" for every Msg.\n"
          "  --watch db=HOST:PORT: a watchdog TCP-connects there every --watch-interval MS (1000); a failed check\n"
          "  sets the alarm {dependency_down, db}, 3 passing checks in a row clear it. --alarm-node NODE: alarms\n"
          "  (watchdogs', blown fuses', cnode_ctl's alarm_set) are mirrored into SASL's alarm_handler there.\n"
          "  --http-port P: /healthz, /readyz and /metrics (Prometheus) over HTTP on P (--http-addr, default\n"
          "  0.0.0.0). SIGTERM: /readyz turns 503, then after --drain-delay S (5) Horde children are handed over,\n"
          "  registrations, pg groups and global names dropped and the node stops, within --shutdown-timeout S (20).\n"
          "  Every flag --foo-bar can be given as CNODE_FOO_BAR (flags win; repeatable ones separated by spaces;\n"
          "  switches true/false); RELEASE_NODE, RELEASE_COOKIE and RELEASE_DISTRIBUTION are fallbacks.\n");
  fputs(cluster_app_usage, f);
}

static void log_line(cn_node *n, cn_log_level level, const char *msg, void *ctx) {
  (void)n;
  (void)ctx;
  static const char *tags[] = {"debug: ", "", "warning: ", "error: "};
  printf("cnode: %s%s\n", tags[level + 1], msg);
}

/* Reads the first line of a cookie file into out (cap bytes); 0, -1 (unreadable or empty), or -2 when the line does
 * not fit: a cookie is an atom (erl refuses a longer one), and a cut one would fail every handshake unexplained. */
static int read_cookie(const char *path, char *out, size_t cap) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t k = fread(out, 1, cap - 1, f);
  fclose(f);
  out[k] = 0;
  out[strcspn(out, "\r\n")] = 0;
  if (strlen(out) >= cap - 1) return -2;
  return out[0] ? 0 : -1;
}

/* As erl does when ~/.erlang.cookie is missing: 20 random capital letters, readable by the owner only. */
static int create_cookie(const char *path, char *out) {
  unsigned char r[20];
  if (RAND_bytes(r, sizeof r) != 1) return -1;
  for (int i = 0; i < 20; i++) out[i] = (char)('A' + r[i] % 26);
  out[20] = 0;
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0400);
  if (fd < 0) return -1;
  ssize_t w = write(fd, out, 20);
  close(fd);
  return w == 20 ? 0 : -1;
}

/* True when an EPMD answers on the port of the loopback the node registers on (::1 under inet6, as OTP's
 * erl_epmd). It is asked a NAMES request (not just connected to), so that a real epmd has a whole request to read
 * and logs nothing. */
static bool epmd_listening(uint16_t port, bool inet6) {
  struct sockaddr_storage a;
  base_addr_parse(inet6 ? "::1" : "127.0.0.1", port, AF_UNSPEC, &a);
  int s = socket(a.ss_family, SOCK_STREAM, 0);
  if (s < 0) return false;
  static const uint8_t names_req[3] = {0, 1, 110};
  uint8_t reply[4];
  bool ok = connect(s, (struct sockaddr *)&a, base_addr_len((struct sockaddr *)&a)) == 0 &&
            write(s, names_req, 3) == 3 && read(s, reply, sizeof reply) > 0;
  close(s);
  return ok;
}

/* Lines of the embedded EPMD server: problems always, the rest with --verbose (see epmd_srv_log_fn). */
static void epmd_log(int level, const char *msg, void *ctx) {
  (void)ctx;
  printf("cnode: %sepmd: %s\n", level ? "debug: " : "", msg);
}

/* True for 0.0.0.0 and :: (every address). */
static bool wildcard_addr(const char *addr) {
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, addr, &a4) == 1) return a4.s_addr == htonl(INADDR_ANY);
  return inet_pton(AF_INET6, addr, &a6) == 1 && IN6_IS_ADDR_UNSPECIFIED(&a6);
}

/* No EPMD yet: serve one from this node's own loop (epmd/'s server), so a host needs no Erlang install. It
 * honours ERL_EPMD_ADDRESS and ERL_EPMD_RELAXED_COMMAND_CHECK as OTP's epmd does, and lives as long as this
 * process (its handles do not keep the loop alive; main closes it after the node stops). Without
 * ERL_EPMD_ADDRESS it listens on the node's --listen-addr (and loopback, which the server always adds): a node
 * kept off the network must not leave EPMD on every interface. */
static epmd_srv *start_epmd(uv_loop_t *loop, uint16_t port, bool verbose, const char *listen_addr) {
  epmd_srv_opts eo;
  memset(&eo, 0, sizeof eo);
  eo.port = port;
  const char *env = getenv("ERL_EPMD_ADDRESS");
  eo.addresses = env ? env : listen_addr && !wildcard_addr(listen_addr) ? listen_addr : NULL;
  eo.relaxed_command_check = getenv("ERL_EPMD_RELAXED_COMMAND_CHECK") != NULL;
  eo.unref = 1;
  eo.debug = verbose ? 1 : 0;
  eo.log = epmd_log;
  epmd_srv *s = NULL;
  int rc = epmd_srv_start(loop, &eo, &s);
  if (rc) {
    fprintf(stderr, "cnode: cannot start the embedded EPMD server on port %u: %s\n", port, cn_strerror(rc));
    return NULL;
  }
  bool all = !eo.addresses || !eo.addresses[strspn(eo.addresses, " ,")]; /* blank: every address, as epmd */
  printf("cnode: started embedded EPMD server on port %u, listening on %s%s%s\n", port,
         all ? "every address" : eo.addresses, all ? "" : " and loopback",
         env   ? " (ERL_EPMD_ADDRESS)"
         : all ? ""
               : " (--listen-addr)");
  return s;
}

/* Builds the TLS options from --ssl-dist-optfile (OTP's file, read as erl reads it) and the --tls-* flags, which
 * override it on both sides. Returns 1 (inet_tls, t filled in), 0 (inet_tcp), or prints why and returns -1. */
static int tls_options(const char *proto, const char *optfile, const char *cert, const char *key, const char *ca,
                       const char *verify, cn_tls_opts *t) {
  bool any = optfile || cert || key || ca || verify;
  bool v6 = !strncmp(proto, "inet6_", 6);
  const char *kind = proto + (v6 ? 6 : 5);
  if ((strncmp(proto, "inet_", 5) && !v6) || (strcmp(kind, "tcp") && strcmp(kind, "tls"))) {
    env_bad("proto-dist", proto, "inet_tcp, inet_tls, inet6_tcp or inet6_tls");
    return -1;
  }
  if (!strcmp(kind, "tcp")) {
    if (!any) return 0;
    fprintf(stderr, "cnode: TLS options given without --proto-dist %s (as erl needs -proto_dist %s)\n",
            v6 ? "inet6_tls" : "inet_tls", v6 ? "inet6_tls" : "inet_tls");
    return -1;
  }
  char err[512], warn[512];
  if (optfile) {
    int rc = cn_tls_opts_load(optfile, t, err, sizeof err, warn, sizeof warn);
    if (rc) {
      fprintf(stderr, "cnode: %s: %s\n", env_where("ssl-dist-optfile", optfile), err[0] ? err : cn_strerror(rc));
      return -1;
    }
    if (warn[0]) printf("cnode: %s: options not used by cnode: %s\n", optfile, warn);
  }
  cn_tls_verify v = CN_TLS_VERIFY_UNSET;
  if (verify) {
    if (!strcmp(verify, "verify_peer")) {
      v = CN_TLS_VERIFY_PEER;
    } else if (!strcmp(verify, "verify_none")) {
      v = CN_TLS_VERIFY_NONE;
    } else {
      env_bad("tls-verify", verify, "verify_peer or verify_none");
      cn_tls_opts_clear(t);
      return -1;
    }
  }
  cn_tls_side *sides[2] = {&t->server, &t->client};
  for (int i = 0; i < 2; i++) {
    cn_tls_side *s = sides[i];
    if ((cert && cn_tls_set(&s->certfile, cert)) || (key && cn_tls_set(&s->keyfile, key)) ||
        (ca && cn_tls_set(&s->cacertfile, ca))) {
      cn_tls_opts_clear(t);
      return -1;
    }
    if (verify) s->verify = v;
  }
  if (verify) t->server.fail_if_no_peer_cert = v == CN_TLS_VERIFY_PEER;
  if (!t->server.certfile) {
    fprintf(stderr, "cnode: --proto-dist %s needs a certificate: --ssl-dist-optfile F or --tls-cert F\n", proto);
    cn_tls_opts_clear(t);
    return -1;
  }
  return 1;
}

/* Stops the node at once because something failed: the program exits 1. */
static void fail_stop(app *a) {
  a->status = 1;
  ops_abort();
}

static void on_started(cn_node *n, int status, void *ctx) {
  app *a = ctx;
  if (status) {
    printf("cnode: cannot start: %s\n", cn_strerror(status));
    fail_stop(a);
    return;
  }
  const char *name = cn_node_name(n)->name;
  const char *host = strchr(name, '@') + 1;
  /* A host without a dot (or an IPv6 address's colon) is a short name: only -sname nodes can reach it. */
  char v6[64] = "";
  if (a->inet6) snprintf(v6, sizeof v6, " --erl \"-proto_dist %s\"", a->proto);
  if (strpbrk(host, ".:"))
    printf("cnode: to connect from Elixir: iex --name a@%s --cookie %s%s\n", host, a->cookie, v6);
  else printf("cnode: to connect from Elixir: iex --sname a --cookie %s%s\n", a->cookie, v6);
  printf("cnode:   then: Node.ping(:\"%s\")  and  GenServer.call({:cnode_kv, :\"%s\"}, {:put, 1, 2})\n", name, name);
  int rc = hreg_start(n);
  if (!rc) rc = hsup_start(n);
  if (rc) printf("cnode: cannot join Horde: %s\n", cn_strerror(rc));
  else if ((rc = pgapp_start(n))) printf("cnode: cannot start pg/pubsub: %s\n", cn_strerror(rc));
  else if ((rc = resil_start(n))) printf("cnode: cannot start watchdogs/alarms: %s\n", cn_strerror(rc));
  else rc = cluster_app_start(n); /* it says why */
  if (rc) fail_stop(a);
  else ops_started();
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "term") == 0) return term_tool_main(argc - 1, argv + 1);
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  static const struct option lopts[] = {{"name", required_argument, 0, 'n'},
                                        {"sname", required_argument, 0, 's'},
                                        {"cookie", required_argument, 0, 'c'},
                                        {"cookie-file", required_argument, 0, 'f'},
                                        {"epmd-port", required_argument, 0, 'p'},
                                        {"listen", required_argument, 0, 'l'},
                                        {"listen-min", required_argument, 0, 'l'},
                                        {"listen-max", required_argument, 0, 'x'},
                                        {"listen-addr", required_argument, 0, 'a'},
                                        {"ticktime", required_argument, 0, 't'},
                                        {"hidden", no_argument, 0, 'H'},
                                        {"verbose", no_argument, 0, 'v'},
                                        {"help", no_argument, 0, 'h'},
                                        {"version", no_argument, 0, 'W'},
                                        {"connect-all", required_argument, 0, 'G'},
                                        {"proto-dist", required_argument, 0, 'P'},
                                        {"ssl-dist-optfile", required_argument, 0, 'O'},
                                        {"tls-cert", required_argument, 0, 'C'},
                                        {"tls-key", required_argument, 0, 'K'},
                                        {"tls-ca", required_argument, 0, 'A'},
                                        {"tls-verify", required_argument, 0, 'V'},
                                        {"horde-registry", required_argument, 0, 'R'},
                                        {"horde-supervisor", required_argument, 0, 'S'},
                                        {"otp-release", required_argument, 0, 'o'},
                                        {"pg", no_argument, 0, 'g'},
                                        {"pubsub", required_argument, 0, 'B'},
                                        {"watch", required_argument, 0, 'w' + 256},
                                        {"watch-interval", required_argument, 0, 'i' + 256},
                                        {"alarm-node", required_argument, 0, 'n' + 256},
                                        {"http-port", required_argument, 0, 'h' + 256},
                                        {"http-addr", required_argument, 0, 'a' + 256},
                                        {"drain-delay", required_argument, 0, 'd' + 256},
                                        {"shutdown-timeout", required_argument, 0, 't' + 256},
                                        CLUSTER_APP_OPTIONS,
                                        {"dirty-threads", required_argument, 0, 'D'},
                                        {0, 0, 0, 0}};
  static const env_rules rules = {.skip = "help version",
                                  .repeatable = "horde-registry horde-supervisor pubsub watch alarm-node",
                                  .exclusive = "name|sname cookie|cookie-file listen|listen-min"};
  int rc = env_args(argc, argv, lopts, &rules, &argc, &argv);
  if (rc) return rc;
  ops_opts oo = {.drain_delay_s = 5, .shutdown_s = 20};
  unsigned long v;
  const char *proto = "inet_tcp", *optfile = NULL, *tls_cert = NULL, *tls_key = NULL, *tls_ca = NULL,
             *tls_verify = NULL;
  bool name_default = true;
  const char *name = "cnode@127.0.0.1", *sname = NULL, *cookie = NULL, *cookie_file = NULL;
  const char *listen_max_arg = NULL;
  cn_node_opts o;
  memset(&o, 0, sizeof o);
  o.log = log_line;
  o.log_level = CN_LOG_INFO;
  int c, li = 0;
  while ((c = getopt_long(argc, argv, "h", lopts, &li)) != -1) {
    const char *flag = lopts[li].name;
    switch (c) {
    case 'n':
      name = optarg;
      name_default = false;
      break;
    case 's': sname = optarg; break;
    case 'c': cookie = optarg; break;
    case 'f': cookie_file = optarg; break;
    case 'p':
      if (!env_uint(optarg, 1, 65535, &v)) return env_bad(flag, optarg, "a port (1-65535)");
      o.epmd_port = (uint16_t)v;
      break;
    case 'l':
    case 'x':
      if (!env_uint(optarg, 0, 65535, &v)) return env_bad(flag, optarg, "a port (0-65535)");
      *(c == 'l' ? &o.listen_port : &o.listen_port_max) = (uint16_t)v;
      if (c == 'x') listen_max_arg = optarg;
      break;
    case 'a': o.listen_addr = optarg; break;
    case 'o':
      if (!env_uint(optarg, CN_OTP_RELEASE_MIN, CN_OTP_RELEASE_MAX, &v))
        return env_bad(flag, optarg,
                       "an OTP release (" CN__XSTR(CN_OTP_RELEASE_MIN) "-" CN__XSTR(CN_OTP_RELEASE_MAX) ")");
      o.otp_release = (int)v;
      break;
    case 't':
      if (!env_uint(optarg, 1, 86400, &v)) return env_bad(flag, optarg, "whole seconds (1-86400), as net_ticktime");
      o.net_ticktime_s = (uint32_t)v;
      break;
    case 'D':
      if (!env_uint(optarg, 0, 1024, &v)) return env_bad(flag, optarg, "a thread count (0-1024; 0: one per core)");
      o.dirty_threads = (unsigned)v;
      break;
    case 'H': o.hidden = true; break;
    case 'G': /* as erl -connect_all false */
      if (strcmp(optarg, "false") && strcmp(optarg, "true")) return env_bad(flag, optarg, "true or false");
      o.no_connect_all = strcmp(optarg, "false") == 0;
      break;
    case 'h' + 256:
      if (!env_uint(optarg, 0, 65535, &v)) return env_bad(flag, optarg, "a port (1-65535; 0: no HTTP endpoint)");
      oo.http_port = (uint16_t)v;
      break;
    case 'a' + 256: oo.http_addr = optarg; break;
    case 'd' + 256:
    case 't' + 256:
      if (!env_uint(optarg, c == 'd' + 256 ? 0 : 1, 3600, &v))
        return env_bad(flag, optarg, c == 'd' + 256 ? "whole seconds (0-3600)" : "whole seconds (1-3600)");
      *(c == 'd' + 256 ? &oo.drain_delay_s : &oo.shutdown_s) = (unsigned)v;
      break;
    case 'v': o.log_level = CN_LOG_DEBUG; break;
    case 'P': proto = optarg; break;
    case 'O': optfile = optarg; break;
    case 'C': tls_cert = optarg; break;
    case 'K': tls_key = optarg; break;
    case 'A': tls_ca = optarg; break;
    case 'V': tls_verify = optarg; break;
    case 'R':
      if (hreg_add(optarg)) return env_bad(flag, optarg, "a registry name (at most 16 registries)");
      break;
    case 'S':
      if (hsup_add(optarg)) return env_bad(flag, optarg, "a supervisor name (at most 16 supervisors)");
      break;
    case 'g':
    case 'B':
      if (c == 'g' ? pgapp_add_scope("pg") : pgapp_add_pubsub(optarg))
        return env_bad(flag, c == 'g' ? "" : optarg, "a PubSub name (or too many)");
      break;
    case 'w' + 256:
      if (resil_add_watch(optarg)) return env_bad(flag, optarg, "NAME=HOST:PORT (at most 16 watches)");
      break;
    case 'n' + 256:
      if (resil_add_alarm_node(optarg)) return env_bad(flag, optarg, "a node name alive@host (at most 16)");
      break;
    case 'i' + 256:
      if (!env_uint(optarg, 1, 3600000, &v)) return env_bad(flag, optarg, "milliseconds (1-3600000)");
      resil_set_interval((unsigned)v);
      break;
    case CLUSTER_OPT_CLUSTER ... CLUSTER_OPT_LAST:
      if (cluster_app_flag(c, optarg)) return 2;
      break;
    case 'h': usage(stdout); return 0;
    case 'W': printf("cnode %s\n", cn_version()); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (cluster_app_check()) return 2;
  bool inet6 = !strncmp(proto, "inet6_", 6);
  if (inet6) o.family = CN_INET6;
  struct sockaddr_storage la; /* the library's own check (cn_node_new), said here in the flags' words */
  if (o.listen_addr && base_addr_parse(o.listen_addr, 0, inet6 ? AF_INET6 : AF_UNSPEC, &la)) {
    return env_bad("listen-addr", o.listen_addr,
                   inet6 ? "a numeric IPv6 address, the node runs inet6 (::1, ::)"
                         : "a numeric address (127.0.0.1, ::)");
  }
  if (oo.http_addr && base_addr_parse(oo.http_addr, 0, AF_UNSPEC, &la))
    return env_bad("http-addr", oo.http_addr, "a numeric IPv4 or IPv6 address (0.0.0.0, 127.0.0.1, ::)");
  if (!sname && (!strchr(name, '@') || name[0] == '@' || !strchr(name, '@')[1]))
    return env_bad("name", name, "a full node name alive@host");
  if (o.listen_port_max && (!o.listen_port || o.listen_port_max < o.listen_port)) {
    return env_bad("listen-max", listen_max_arg, "a port at or above --listen-min P (0 < P), which must be set too");
  }
  app a;
  memset(&a, 0, sizeof a);
  a.inet6 = inet6;
  a.proto = proto;
  if (inet6 && name_default) name = "cnode@::1";
  char fullname[CN_ATOM_MAX_BYTES + 1];
  if (sname) {
    char host[256];
    if (gethostname(host, sizeof host)) strcpy(host, "localhost");
    host[strcspn(host, ".")] = 0;
    int k = snprintf(fullname, sizeof fullname, strchr(sname, '@') ? "%s" : "%s@%s", sname, host);
    if (k < 0 || (size_t)k >= sizeof fullname) {
      fprintf(stderr, "cnode: node name %s@%s is longer than an atom may be\n", sname, host);
      return 2;
    }
    name = fullname;
  }
  if (cookie) {
    if (strlen(cookie) > CN_ATOM_MAX_BYTES)
      return env_bad("cookie", cookie, "at most " CN__XSTR(CN_ATOM_MAX_BYTES) " bytes (an atom)");
    snprintf(a.cookie, sizeof a.cookie, "%s", cookie);
  } else {
    char path[PATH_MAX];
    int rc = 0;
    if (!cookie_file) {
      const char *home = getenv("HOME");
      int k = snprintf(path, sizeof path, "%s/.erlang.cookie", home ? home : ".");
      if (k < 0 || (size_t)k >= sizeof path) {
        fprintf(stderr, "cnode: $HOME is too long for a path\n");
        return 1;
      }
      cookie_file = path;
      if ((rc = read_cookie(path, a.cookie, sizeof a.cookie)) == -1 && create_cookie(path, a.cookie)) {
        fprintf(stderr, "cnode: cannot read or create %s: %s\n", path, strerror(errno));
        return 1;
      }
    } else if ((rc = read_cookie(cookie_file, a.cookie, sizeof a.cookie)) == -1) {
      return env_bad("cookie-file", cookie_file, "a readable file holding the cookie");
    }
    if (rc == -2) {
      fprintf(stderr, "cnode: the cookie in %s is longer than an atom may be (%d bytes)\n", cookie_file,
              CN_ATOM_MAX_BYTES);
      return 1;
    }
  }
  o.name = name;
  o.cookie = a.cookie;
  cn_tls_opts tls;
  memset(&tls, 0, sizeof tls);
  int tls_on = tls_options(proto, optfile, tls_cert, tls_key, tls_ca, tls_verify, &tls);
  if (tls_on < 0) return 2;
  if (tls_on) o.tls = &tls;
  uint16_t eport = o.epmd_port;
  if (!eport) {
    const char *e = getenv("ERL_EPMD_PORT");
    unsigned long ev = 4369;
    if (e && *e && !env_uint(e, 1, 65535, &ev)) {
      fprintf(stderr, "cnode: ERL_EPMD_PORT=%.100s: expected a port (1-65535)\n", e);
      return 2;
    }
    o.epmd_port = eport = (uint16_t)ev;
  }
  rc = cn_node_new(&a.node, NULL, &o);
  /* A visible node takes part in OTP's global, as a BEAM node does: peers' global:sync/0 waits for it. */
  if (!rc && !o.hidden && (rc = cn_global_start(a.node))) cn_node_free(a.node);
  if (rc) {
    fprintf(stderr, "cnode: cannot create node %s: %s\n", name, cn_strerror(rc));
    cn_tls_opts_clear(&tls);
    return 1;
  }
  uv_loop_t *loop = cn_node_loop(a.node);
  epmd_srv *epmd = NULL;
  if (!epmd_listening(eport, inet6) && !(epmd = start_epmd(loop, eport, o.log_level == CN_LOG_DEBUG, o.listen_addr))) {
    cn_node_free(a.node);
    return 1;
  }
  if ((rc = ops_start(a.node, &oo)) || (rc = horde_ops_init()) || (rc = workers_start(a.node)) ||
      (rc = compute_start(a.node)) || (rc = cn_node_start(a.node, on_started, &a))) {
    fprintf(stderr, "cnode: cannot start: %s\n", cn_strerror(rc));
    fail_stop(&a);
  }
  cn_node_run(a.node);
  ops_close();
  if (epmd) epmd_srv_close(epmd, NULL, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  cn_node_free(a.node);
  cn_tls_opts_clear(&tls);
  printf("cnode: stopped\n");
  return a.status ? a.status : ops_status();
}
