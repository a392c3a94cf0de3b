/* fuzz_node.c: the whole node, not a decoder. Each input gets a fresh node with the processes the cnode program
 * runs (echo, cnode_kv, cnode_ctl and the cnode_demo spawn entry points, a Horde registry and a Horde supervisor
 * member, global, net_kernel, rex, pg's default scope and a Phoenix.PubSub of two shards) and a fake peer whose handshake has completed (conn_test_up: a connection with
 * no socket; the peer's flags and name, up to 255 multibyte characters, chosen by the input). The input is a little
 * program (a grammar) of up to MAX_OPS ops, each built with the project's own term builders and encoder:
 *  - a request to one of the node's services (SERVICES: gen_server calls, casts and plain messages shaped as each
 *    handler matches them: global's protocol, the Horde registry, supervisor and their CRDTs, pg's scopes and the PubSub
 *    shards, cnode_ctl, puppets);
 *  - any control message (OPS) with pids of the node's processes, of the peer and of third nodes with extreme
 *    names, refs and pids the node sent, registered names, atoms of 255 1-, 2-, 3- or 4-byte characters;
 *  - an answer to something the node sent (its calls, spawn requests, monitors, links, unlinks);
 *  - raw bytes, time passing (timers), a send from the node to the peer.
 * Each message is framed pass-through, with a normal header, or cut in fragments, now and then damaged or
 * truncated, and fed through the bytes path (process_input, handle_frame). The loop runs between ops; what the
 * node writes to the peer must parse back as frames and is mined for refs, pids and terms later ops send back. At
 * the end the peer disconnects (nodedown), the node must still answer an echo round trip, and it is stopped and
 * freed, so a leak shows on the input that made it and a crash reproduces from its input alone (unless it is in
 * static state of the program's code, as finding 1 in test_fuzz_regress.c was). FUZZ_NODE_LOG=1 prints the
 * node's log and each message sent (FUZZ_NODE_HEX=1 with the frame's bytes). */
#include "cn_global.h"
#include "cn_pg.h"
#include "cn_pubsub.h"
#include "fuzz_node.h"
#include "horde.h"
#include "horde_app.h"
#include "workers.h"

#define MAX_OPS 48

/* Peer flags an input may turn on, one bit each, on top of what OTP 25 makes mandatory. */
static const uint64_t FLAG_BITS[] = {DFLAG_FRAGMENTS, DFLAG_SPAWN,     DFLAG_ALIAS,     DFLAG_DIST_MONITOR_NAME,
                                     DFLAG_V4_NC,     DFLAG_UNLINK_ID, DFLAG_PUBLISHED, DFLAG_EXIT_PAYLOAD};

bool fz_logging(void) {
  static int on = -1;
  if (on < 0) on = getenv("FUZZ_NODE_LOG") != NULL;
  return on;
}

/* ---- The node ------------------------------------------------------------------------------------------------ */

/* Log lines are formatted (they print peer-given names) and dropped; FUZZ_NODE_LOG=1 prints them. */
static void quiet(cn_node *n, cn_log_level level, const char *msg, void *ctx) {
  (void)n, (void)level, (void)ctx;
  FUZZ_CHECK(msg != NULL && strlen(msg) < (1u << 20));
  if (fz_logging()) fprintf(stderr, "node: %s\n", msg);
}

static void probe(cn_proc *self, const cn_term *msg, void *state) {
  (void)self;
  fz *z = state;
  if (cn_is_atom(msg, "fz_pong")) z->ponged = true;
}

static void on_started(cn_node *n, int status, void *ctx) {
  (void)n;
  *(int *)ctx = status ? status : 1;
}

static int node_up(fz *z) {
  cn_node_opts o;
  memset(&o, 0, sizeof o);
  o.name = "cnode_fz@127.0.0.1"; /* a Horde supervisor member runs only on a node named cnode* */
  o.cookie = "fuzz";
  o.epmd_port = 1; /* nothing listens there: a connection to a third node fails at once */
  o.no_epmd = true;
  o.listen_addr = "127.0.0.1";
  o.max_message_size = (size_t)1 << 20;
  o.log = quiet;
  o.log_level = CN_LOG_DEBUG; /* log lines print peer-given names: format them all */
  int rc, started = 0;
  if ((rc = cn_node_new(&z->n, NULL, &o)) || (rc = cn_global_start(z->n))) return rc;
  if ((rc = workers_start(z->n)) || (rc = cn_node_start(z->n, on_started, &started))) return rc;
  while (!started) uv_run(z->n->loop, UV_RUN_ONCE);
  if (started != 1) return started;
  if ((rc = hreg_start(z->n)) || (rc = hsup_start(z->n)) || (rc = cn_spawn(z->n, probe, z, NULL, &z->probe))) return rc;
  /* pg's default scope and a Phoenix.PubSub of two shards (their scope Phoenix.PubSub), echo subscribed to "t" */
  cn_pid echo;
  if ((rc = cn_pg_start(z->n, "pg")) || (rc = cn_pubsub_start(z->n, FZ_PUBSUB, 2)) ||
      (rc = cn_whereis(z->n, "echo", &echo)) || (rc = cn_pubsub_subscribe(z->n, FZ_PUBSUB, "t", echo)))
    return rc;
  z->me = cn_atoms_get(z->tab, cn_node_name(z->n)->name);
  uv_run(z->n->loop, UV_RUN_NOWAIT);
  return 0;
}

/* The node still serves: echo answers a local round trip (unless the input ended echo, which a peer may do). */
static void check_serves(fz *z) {
  cn_pid echo;
  if (cn_whereis(z->n, "echo", &echo)) return;
  /* A fresh probe: the peer may have ended the first one (it is a process like any other). */
  FUZZ_CHECK(cn_spawn(z->n, probe, z, NULL, &z->probe) == 0);
  cn_term *m = cn_mk_tuple(2, cn_mk_pid(z->probe), cn_mk_atomc(z->n, "fz_pong"));
  FUZZ_CHECK(m && cn_send(z->n, NULL, echo, m) == 0);
  cn_term_free(m);
  for (int i = 0; i < 8 && !z->ponged; i++) uv_run(z->n->loop, UV_RUN_NOWAIT);
  if (!z->ponged) {
    cn_proc *e = proc_lookup(z->n, echo), *pr = proc_lookup(z->n, z->probe);
    fprintf(stderr, "echo %p: dead %d suspended %d in_runq %d mq %zu; probe %p: dead %d suspended %d mq %zu\n",
            (void *)e, e ? e->dead : -1, e ? e->suspended : -1, e ? e->in_runq : -1, e ? e->mq_len : 0, (void *)pr,
            pr ? pr->dead : -1, pr ? pr->suspended : -1, pr ? pr->mq_len : 0);
  }
  FUZZ_CHECK(z->ponged);
}

int fuzz_node_one(const uint8_t *data, size_t size) {
  static bool once;
  if (!once) {
    once = true;
    if (hreg_add(FZ_REG) || hsup_add(FZ_SUP)) abort();
  }
  fz z;
  memset(&z, 0, sizeof z);
  z.in = (fuzz_in){.p = data, .len = size};
  if (cn_atoms_new(&z.tab, 0)) return 0;
  int rc = node_up(&z);
  if (rc) {
    fprintf(stderr, "fuzz_node: cannot start the node: %s\n", cn_strerror(rc));
    abort();
  }
  /* The peer: its flags and name (alive parts up to 255 multibyte characters) come from the input. */
  uint8_t fl = u8(&z);
  z.flags = DIST_FLAGS_MANDATORY_25 | DFLAG_DIST_MONITOR | DFLAG_SMALL_ATOM_TAGS;
  for (size_t i = 0; i < sizeof FLAG_BITS / sizeof FLAG_BITS[0]; i++)
    if (!(fl >> i & 1)) z.flags |= FLAG_BITS[i]; /* all on for a zero byte: BEAM's set */
  uint8_t nm = u8(&z);
  const cn_atom *pa = nm % 4 ? cn_atoms_get(z.tab, "peer@127.0.0.1") : fz_extreme_atom(&z, true);
  if (!strchr(pa->name, '@')) pa = cn_atoms_get(z.tab, "peer@127.0.0.1");
  z.peer = pa;
  z.peer_creation = u8(&z) % 2 ? 0x12345678 : u8(&z);
  z.third[0] = cn_atoms_get(z.tab, "third@127.0.0.1");
  z.third[1] = fz_extreme_atom(&z, true);
  z.third[2] = fz_extreme_atom(&z, true);
  const cn_atom *npeer = z.npeer = cn_intern(z.n, pa->name);
  if (npeer && conn_test_up(z.n, npeer, z.flags) == 0) {
    fz_run(&z, 3);
    int reconnects = 0;
    for (int ops = 0; ops < MAX_OPS && fuzz_left(&z.in); ops++) {
      /* A bad frame made the node drop the peer: it connects again, as a BEAM peer would (nodeup again). */
      if (!conn_peer_flags(z.n, npeer) && (reconnects++ == 4 || conn_test_up(z.n, npeer, z.flags))) break;
      uint8_t op = u8(&z);
      switch (op % 16) {
      case 13: fz_send_raw(&z); break;
      case 6:
      case 7: fz_send_answer(&z); break;
      case 0:
      case 1:
      case 2:
      case 3:
      case 4:
      case 5: fz_send_service(&z); break;
      case 14: /* now and then time passes: call timeouts, retries, send_after timers come due */
        if (u8(&z) % 4 == 0) uv_sleep(1 + u8(&z) % 4);
        fz_run(&z, 1 + u8(&z) % 8);
        break;
      case 15: { /* the node sends to the peer on its own (cn_send from no process), amid the traffic */
        z.nodes = MAX_NODES;
        cn_term *m = fz_gen(&z, 1);
        cn_pid to = fz_peer_pid(&z, z.peer);
        to.node = npeer; /* the API routes by the node's own atom */
        if (m) cn_send(z.n, NULL, to, m);
        cn_term_free(m);
        break;
      }
      default: fz_send_ctl(&z); break;
      }
      fz_run(&z, 2);
    }
    cn_node_disconnect(z.n, npeer);
    fz_run(&z, 4);
  }
  check_serves(&z);
  cn_node_stop(z.n);
  cn_node_run(z.n);
  cn_node_free(z.n);
  cn_buf_free(&z.out);
  for (size_t i = 0; i < z.nseen; i++) cn_term_free(z.seen[i]);
  cn_atoms_free(z.tab);
  return 0;
}

FUZZ_ENTRY(fuzz_node_one)
