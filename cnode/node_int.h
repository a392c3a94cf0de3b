/* node_int.h: the runtime's private structures, shared by node.c (lifecycle, scheduling), proc.c
 * (processes, names, signals), conn.c, conn_io.c and conn_setup.c (connections) and builtin.c (net_kernel, rex).
 * Never installed. */
#ifndef CNODE_NODE_INT_H
#define CNODE_NODE_INT_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "cnode.h"

/* uthash allocates through libcnode's hooks like everything else, and reports a failed allocation instead of
 * exiting: the element is then not added and node_hash_oom is set, which every add site checks. */
extern _Thread_local bool node_hash_oom;
#define uthash_malloc(sz) cn_malloc(sz)
#define uthash_free(ptr, sz) cn_free(ptr)
#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(elt) (node_hash_oom = true)
/* The tables' keys are short (pointers, pids, references): a multiply-xorshift hash of 8-byte words costs a third
 * of uthash's default (Jenkins) on them, and every message to a name or a connection, and every monitor, looks one
 * up. */
static inline unsigned node_hash_bytes(const void *key, size_t len) {
  const unsigned char *s = key;
  uint64_t h = 0x9E3779B97F4A7C15ull ^ len, w;
  for (; len >= 8; s += 8, len -= 8) {
    memcpy(&w, s, 8);
    h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
  }
  if (len) {
    w = 0;
    memcpy(&w, s, len);
    h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
  }
  h *= 0x94D049BB133111EBull;
  return (unsigned)(h ^ h >> 32);
}
#define HASH_FUNCTION(keyptr, keylen, hashv) ((hashv) = node_hash_bytes((keyptr), (size_t)(keylen)))
#include <uthash.h>

#include "control.h"
#include "dist.h"
#include "epmd.h"
#include "tls.h"

typedef struct cn_conn cn_conn;
typedef struct cn_uring cn_uring;

/* One queued message. */
typedef struct cn_msg {
  struct cn_msg *next;
  cn_term *term; /* owned */
} cn_msg;

/* A link as the new link protocol keeps it: active, or inactive while our UNLINK_ID awaits its ack. */
typedef struct link_rec {
  struct link_rec *next;
  cn_pid pid;
  bool active;
  uint64_t unlink_id;
} link_rec;

/* A monitor this process holds on another (for DOWN delivery and demonitor). */
typedef struct cn_mon_out {
  struct cn_mon_out *next;
  cn_ref ref;
  cn_pid pid;          /* the monitored pid, when monitored by pid */
  const cn_atom *name; /* the monitored name, when monitored by name */
  const cn_atom *node; /* the target's node */
} cn_mon_out;

/* An alias of a process (node->aliases by key, and the owner's own list). */
typedef struct cn_alias_ent {
  uint64_t key;
  cn_ref ref;
  unsigned opts; /* CN_ALIAS_* */
  cn_proc *proc;
  struct cn_alias_ent *next_of_proc;
  UT_hash_handle hh;
} cn_alias_ent;

/* A call in flight from a process: gen_server call, rpc or erpc. */
typedef enum { CALL_GEN, CALL_ERPC, CALL_AFTER } call_kind;
typedef struct cn_pending {
  struct cn_pending *next;
  call_kind kind;
  cn_ref ref;       /* monitor and alias reference (erpc: the spawn request id) */
  cn_term *res_ref; /* erpc: the result tag passed to execute_call */
  cn_reply_fn cb;   /* CALL_AFTER: after instead */
  cn_after_fn after;
  uint64_t id; /* CALL_AFTER: the id cn_proc_cancel_after takes */
  void *ctx;
  cn_proc *proc;
  uv_timer_t *timer;
} cn_pending;

/* A spawnable entry point. */
typedef struct cn_entry {
  struct cn_entry *next;
  const cn_atom *mod, *fun;
  cn_entry_fn fn;
  void *ctx;
} cn_entry;

/* A function rpc and erpc calls reach (cn_register_function, and the BIFs of spawn.c). */
typedef struct cn_function {
  struct cn_function *next;
  const cn_atom *mod, *fun;
  uint32_t arity;
  cn_function_fn fn;
  void *ctx;
} cn_function;

/* The monitor's reference as a hash key (refs have at most 3 words that matter here; missing ones are 0). */
typedef struct mon_key {
  const cn_atom *node;
  uint32_t n[3];
} mon_key;

/* A monitor held on a process: in its owner's list, and in node->mons_in by reference, so that demonitor
 * (once per gen_server call) does not scan the list. */
typedef struct cn_mon_in {
  struct cn_mon_in *next, **pprev;
  cn_pid watcher;
  cn_ref ref;
  const cn_atom *name; /* monitored by registered name (reported as the name), or NULL */
  struct cn_proc *proc;
  mon_key key;
  UT_hash_handle hh;
} cn_mon_in;

struct cn_proc {
  cn_node *node;
  cn_pid pid;
  uint32_t key; /* id and serial combined: the procs table key */
  cn_handler_fn handler;
  cn_terminate_fn terminate;
  void *state;
  bool trap_exit;
  bool in_runq;
  bool dead;      /* exited; freed once it leaves the run queue */
  bool suspended; /* waiting for a busy connection to drain: not run meanwhile */
  struct cn_proc *susp_next;
  cn_term *exit_reason; /* set by cn_proc_exit or a killing signal; applied after the handler */
  cn_msg *mq_head, **mq_tail;
  cn_msg **mq_prio_tail; /* where the next priority message goes: after the last one queued (EEP 76) */
  size_t mq_len;
  const cn_atom *reg_name;
  link_rec *links;
  cn_mon_in *mons_in;
  cn_mon_out *mons_out;
  cn_alias_ent *aliases;
  cn_pending *calls;
  struct cn_proc *run_next;
  bool dirty;                /* handlers run on the dirty pool (dirty.c) */
  bool dirty_busy;           /* an item of this process is on the pool now */
  struct dirty_item *d_head; /* callbacks and terminate waiting to run on the pool, in order */
  struct dirty_item **d_tail;
  UT_hash_handle hh; /* node->procs by pid.id */
};

typedef struct cn_name {
  const cn_atom *name;
  cn_proc *proc;
  UT_hash_handle hh; /* by atom pointer */
} cn_name;

/* A message posted from another thread. */
typedef struct cn_ts_msg {
  struct cn_ts_msg *next;
  void (*job)(cn_node *n, void *arg); /* a job to run on the loop instead of a message */
  void *arg;
  bool has_pid;
  cn_pid to;
  char *name;
  const cn_atom *node;
  cn_term *msg;
} cn_ts_msg;

/* A pending cn_send_after. */
typedef struct cn_timer {
  uv_timer_t h;
  cn_node *n;
  uint64_t id;
  cn_pid to;
  cn_term *msg;
  struct cn_timer *next, **prev;
} cn_timer;

/* A subscriber to node events (fn) or to failed setups (failed_fn); the other one is NULL. */
typedef struct cn_node_sub {
  struct cn_node_sub *next;
  cn_nodes_fn fn;
  cn_setup_failed_fn failed_fn;
  void *ctx;
} cn_node_sub;

/* A slot of cn_node_attach. */
typedef struct cn_node_slot {
  struct cn_node_slot *next;
  const void *key;
  void *data;
  cn_free_fn release;
} cn_node_slot;

struct cn_node {
  uv_loop_t *loop;
  uv_loop_t own_loop;
  bool owns_loop;
  cn_atoms *atoms;
  const cn_atom *name;
  const cn_atom *empty; /* '', the unused element of SEND and REG_SEND: interned once, not per message */
  char *host;           /* the part after '@' */
  char *cookie;
  char *epmd_host;
  char *listen_addr;
  bool inet6; /* cn_node_opts.family is CN_INET6 */
  uint16_t epmd_port;
  uint16_t listen_port;
  uint16_t listen_port_max; /* last port of the range from listen_port; 0: listen_port alone */
  uint32_t ticktime_ms;
  uint32_t hs_timeout_ms;
  bool hidden;
  bool connect_all;
  bool no_epmd;
  size_t max_msg;
  size_t max_conns;
  size_t net_atom_limit; /* atoms that messages from peers may fill the table up to */
  size_t busy_limit;
  size_t queue_limit;
  size_t nconns; /* connections alive (any state) */
  cn_node_stats stats;
  cn_log_fn log;
  void *log_ctx;
  cn_log_level log_level;
  dist_tls_ctx *tls_srv, *tls_cli; /* both NULL: plain TCP */

  uint32_t creation;
  uint16_t port;
  uint64_t flags; /* what we announce */
  uv_tcp_t listener;
  bool listening;
  uv_tcp_t refuse;     /* the one spare handle that accepts and closes a connection we cannot serve (no memory) */
  bool refuse_busy;    /* it is closing */
  bool refuse_waiting; /* a connection waits to be refused: libuv polls the listener again once it is accepted */
  epmd_reg *reg;
  cn_start_fn start_cb;
  void *start_ctx;

  uint32_t next_id;
  uint32_t serial;
  cn_proc *procs;
  cn_name *names;
  cn_name *name_last; /* proc_by_name's last answer, one of names (NULL once it leaves them) */
  cn_proc *runq_head, *runq_tail;
  uv_idle_t idle;       /* active while the run queue is not empty */
  uv_prepare_t prepare; /* flushes connection output before the loop blocks */
  cn_uring *ur;         /* cn_node_run's io_uring (uring.c), NULL without one */
  pthread_t ur_thread;  /* the thread that set it up: the only one that may submit to it */
  bool ur_tried;
  cn_pid sys_pid;   /* sender of messages sent without a process */
  cn_pid gl_pid;    /* group leader lent to remote calls: answers io requests */
  int otp_release;  /* the release whose term semantics the node follows (cn_node_otp_release) */
  bool otp_known;   /* set by cn_node_opts.otp_release, or learned from a peer */
  cn_pid otp_asker; /* asks new peers their release until one answers (node NULL: not learning) */
  cn_alias_ent *aliases;
  cn_mon_in *mons_in; /* every monitor held on a local process, by reference */
  cn_entry *entries;
  cn_function *functions;
  uint64_t unlink_counter;

  cn_conn *conns;     /* by peer name (named connections) */
  cn_conn *conn_last; /* conn_find's last answer, one of conns (NULL once it leaves them) */
  cn_msg *msg_spare;  /* queue entries proc_run is done with, for proc_deliver to take (at most MSG_SPARE_MAX) */
  size_t msg_nspare;
  cn_conn *unnamed; /* accepted connections before the peer said its name */
  cn_conn *dirty;   /* connections with output to flush */
  uint64_t frag_seq;
  uint64_t ref_counter;

  uv_async_t async;
  pthread_mutex_t ts_lock;
  cn_ts_msg *ts_head, **ts_tail;
  bool stop_requested;
  bool stopping;
  int run_status;

  cn_node_sub *subs;
  cn_node_slot *slots;
  cn_timer *timers;
  uint64_t timer_seq;
  unsigned dirty_threads;  /* pool size asked for (0: the number of cores) */
  struct dirty_pool *pool; /* the dirty pool, created at the first dirty process or job */
};

/* node.c */
void node_schedule(cn_node *n, cn_proc *p);
/* Runs processes of the run queue for up to budget messages (the loop's idle turn, and a read whose messages
 * hold its chunk: their handlers give it back before the next read). */
void node_run(cn_node *n, size_t budget);
/* One turn of the run queue (TURN_BUDGET messages) and the output it made flushed: the loop's idle turn. */
void node_turn(cn_node *n);

/* uring.c: cn_node_run's io_uring loop (Linux) */
/* False when CNODE_IO_URING=0 asks for libuv alone. */
bool uring_wanted(void);
/* Sets up n->ur (0), or leaves it NULL when io_uring cannot be had (CN_EIO, CN_ENOMEM). */
int uring_open(cn_node *n);
void uring_close(cn_node *n);
/* Runs loop until it has nothing left to do or uv_stop, c's reads through the ring; returns 0. */
int uring_run(cn_node *n, uv_loop_t *loop);
/* Queues c's next recv (submitted with the loop's next io_uring_enter); CN_ENOMEM, CN_EIO. */
int uring_read(cn_conn *c);
/* Asks for c's recv in flight to end (the socket is closing). */
void uring_cancel(cn_conn *c);
void node_notify(cn_node *n, const cn_atom *peer, bool up, const char *reason);
/* A new reference of this node. */
cn_ref node_make_ref(cn_node *n);
bool node_is_local(const cn_node *n, const cn_atom *node);
/* Interns name (NUL-terminated) in n's table: 0 and *out; CN_ENOMEM; else CN_EINVAL (NULL, bad or oversized name,
 * table full), *out NULL. */
int node_intern(cn_node *n, const char *name, const cn_atom **out);
/* Runs job(n, arg) on the node's loop thread; thread-safe. Jobs run even while the node stops. */
int node_post_job(cn_node *n, void (*job)(cn_node *n, void *arg), void *arg);

/* dirty.c: the dirty pool. A dirty process's handler, its call and timer callbacks and its terminate run on a
 * pool thread, one at a time and in order; everything else about it (mailbox, links, calls) stays on the loop. */
typedef struct dirty_item dirty_item;
/* The node a pool thread works for (NULL on other threads), and whether it holds the node now. */
extern _Thread_local cn_node *dirty_tls_node;
extern _Thread_local unsigned dirty_tls_held;
/* True when the calling thread is a pool thread of n that does not hold n: a call on n must borrow it first. */
static inline bool dirty_must_hold(const cn_node *n) { return dirty_tls_node == n && !dirty_tls_held; }
/* Borrows the node from its loop (which waits meanwhile), and gives it back. */
void dirty_hold(const cn_node *n);
void dirty_release(const cn_node *n);
/* The public calls start with one of these: on a pool thread they rerun themselves with the node held. */
#define DIRTY_GUARD(n, T, call)                                                                                        \
  do {                                                                                                                 \
    if (dirty_must_hold(n)) {                                                                                          \
      dirty_hold(n);                                                                                                   \
      T r_ = call;                                                                                                     \
      dirty_release(n);                                                                                                \
      return r_;                                                                                                       \
    }                                                                                                                  \
  } while (0)
#define DIRTY_GUARD_VOID(n, call)                                                                                      \
  do {                                                                                                                 \
    if (dirty_must_hold(n)) {                                                                                          \
      dirty_hold(n);                                                                                                   \
      call;                                                                                                            \
      dirty_release(n);                                                                                                \
      return;                                                                                                          \
    }                                                                                                                  \
  } while (0)
/* A send from a pool thread that does not hold the node: queued for the loop, in order (dest and msg borrowed:
 * copied); reply: cn_gen_reply(from, dest, msg) instead of cn_send_opts. 0, or CN_ENOMEM. */
int dirty_post_send(cn_node *n, cn_proc *from, const cn_term *dest, const cn_term *msg, unsigned opts, bool reply);
/* Makes p dirty (creating the pool on first use): CN_ENOMEM, CN_EIO when no thread could start. */
int dirty_proc_init(cn_proc *p);
/* The scheduler's turn for a dirty process: hands its next callback or message to the pool, or ends it (and frees
 * it once nothing of it is left on the pool and it is out of the run queue). */
void dirty_pump(cn_proc *p);
/* A call or timer callback of dirty p, to run on the pool (result borrowed: copied). */
void dirty_defer_cb(cn_proc *p, cn_reply_fn cb, cn_after_fn after, void *ctx, int status, const cn_term *result);
/* p's terminate, to run on the pool after what is queued (reason borrowed: copied). */
void dirty_defer_terminate(cn_proc *p, const cn_term *reason);
/* The node stops: the pool's handle closes once nothing is left on it. cn_node_free then joins the threads. */
void dirty_node_stopping(cn_node *n);
void dirty_free(cn_node *n);

/* proc.c */
cn_proc *proc_lookup(cn_node *n, cn_pid pid);
cn_proc *proc_by_name(cn_node *n, const cn_atom *name);
/* Queues msg (taken) for p: at the end, or when prio after the priority messages already queued and ahead of the
 * ordinary ones (EEP 76). CN_ENOMEM when it was dropped for lack of memory; 0 also when p is dead. */
int proc_deliver_prio(cn_proc *p, cn_term *msg, bool prio);
/* Frees the spare queue entries (cn_node_free). */
void proc_msg_spares_free(cn_node *n);
static inline int proc_deliver(cn_proc *p, cn_term *msg) { return proc_deliver_prio(p, msg, false); }
/* Runs up to budget messages of p; returns how many ran. */
size_t proc_run(cn_proc *p, size_t budget);
/* An exit signal from `from` with reason (borrowed) arriving at p (link exit when linked is true); the 'EXIT'
 * message of a trapping process is a priority message when prio is true. */
void proc_exit_signal_prio(cn_proc *p, cn_pid from, const cn_term *reason, bool linked, bool prio);
static inline void proc_exit_signal(cn_proc *p, cn_pid from, const cn_term *reason, bool linked) {
  proc_exit_signal_prio(p, from, reason, linked, false);
}
/* Sends payload (borrowed) to `to` on the remote node: a message to a pid, a name (atom) or an alias (reference),
 * or with DIST_ALTACT_EXIT an exit signal to a pid or alias; DIST_ALTACT_PRIO as the priority option of
 * erlang:send/3 and exit/3. By ALTACT_SIG_SEND when the peer has it and the signal needs it (an alias, or
 * priority), else as an older peer takes it; an alias signal the peer cannot take is dropped, as OTP does. */
int proc_send_remote(cn_node *n, cn_proc *from, const cn_atom *node, const cn_term *to, const cn_term *payload,
                     unsigned altact);
/* Ends p now: names, links and monitors fire, then terminate runs (a dirty process's on the pool). */
void proc_die(cn_proc *p, const cn_term *reason);
/* Ends every process with reason shutdown (node stop). */
void proc_kill_all(cn_node *n);
/* Frees a dead process once it is out of the run queue. */
void proc_free(cn_proc *p);
bool node_pid_eq(cn_pid a, cn_pid b);
bool node_ref_eq(const cn_ref *a, const cn_ref *b);

/* link.c: links, monitors and aliases; what signals arriving by the wire do to them. */
/* A LINK from remote to local. */
void link_recv_link(cn_node *n, cn_pid local, cn_pid remote);
/* An UNLINK_ID (id != 0) or old UNLINK (id 0) from remote; answers UNLINK_ID_ACK. */
void link_recv_unlink(cn_node *n, cn_pid local, cn_pid remote, const cn_term *id);
void link_recv_unlink_ack(cn_node *n, cn_pid local, cn_pid remote, uint64_t id);
/* A link exit from remote: reacts when the link is active, then forgets it. */
void link_recv_exit(cn_node *n, cn_pid local, cn_pid remote, const cn_term *reason);
/* A MONITOR_P / DEMONITOR_P from a remote watcher. */
int link_recv_monitor(cn_node *n, const cn_term *target, cn_pid watcher, cn_ref ref);
void link_recv_demonitor(cn_node *n, const cn_term *target, cn_ref ref);
/* A MONITOR_P_EXIT for a local watcher: delivers DOWN if the monitor is still held. */
void link_recv_down(cn_node *n, cn_pid watcher, const cn_term *obj, const cn_atom *peer, cn_ref ref,
                    const cn_term *reason);
/* Fires and frees everything a dying process holds: links, monitors both ways, aliases, calls. */
void link_proc_died(cn_proc *p, const cn_term *reason);
/* nodedown (or a failed connection setup): links and monitors toward peer fire with noconnection. */
void link_nodedown(cn_node *n, const cn_atom *peer);
/* A setup toward peer ended without nodeup: links and monitors made toward it end with noconnection, and the
 * cn_node_monitor_setups subscribers are told why. */
void node_setup_failed(cn_node *n, const cn_atom *peer, const char *reason);
/* The live process that owns an alias, or NULL. */
cn_proc *link_alias_owner(cn_node *n, const cn_ref *ref);
/* A message (taken) arriving at an alias: queued for its owner, as a priority message when prio is true and the
 * alias is a priority alias; a reply alias goes with it. Dropped when the alias is not active. */
int link_alias_deliver(cn_node *n, const cn_ref *ref, cn_term *msg, bool prio);
/* An exit signal (reason borrowed) arriving at an alias: to its owner as exit/2's, the 'EXIT' message priority
 * when prio is true and the alias is a priority alias. Ignored when the alias is not active. */
void link_alias_exit(cn_node *n, const cn_ref *ref, cn_pid from, const cn_term *reason, bool prio);
/* Adds a monitor of watcher (remote) on the local process p, reported with name when not NULL. */
int link_add_mon_in(cn_proc *p, cn_pid watcher, cn_ref ref, const cn_atom *name);
int link_add(link_rec **l, cn_pid pid);
int link_add_mon_out(cn_proc *p, cn_ref ref, cn_pid pid, const cn_atom *name, const cn_atom *node);
/* Monitors target with a given reference (an immediate DOWN noproc when it does not exist locally). */
int link_monitor(cn_proc *self, const cn_term *target, cn_ref ref);
/* Releases a monitor if it is still held, telling the target. */
void link_demonitor_quiet(cn_proc *self, const cn_ref *ref);

/* call.c: calls in flight. */
/* A message for p that completes one of its calls is consumed (true); others go to the handler. */
bool call_intercept(cn_proc *p, const cn_term *msg);
/* A SPAWN_REPLY for one of p's erpc calls. */
void call_spawn_reply(cn_node *n, const cn_term *to, cn_ref ref, const cn_term *result);
/* Ends the calls of a dying process: each callback runs once with CN_ECLOSED. */
void call_drop_all(cn_proc *p);

/* spawn.c: SPAWN_REQUEST from a peer. */
int spawn_request(cn_node *n, const cn_atom *peer, const dist_ctl *ctl, const cn_term *args);
void spawn_free_entries(cn_node *n);
/* M:F(Args) of a registered function or an answered BIF (m, f atoms; argl a proper list or []): the value (a new
 * term), or NULL with *status CN_EINVAL (badarg) or CN_ENOTFOUND (undefined, or out of memory). */
cn_term *spawn_apply(cn_node *n, const cn_term *m, const cn_term *f, const cn_term *argl, int *status);

/* conn.c, conn_io.c, conn_setup.c (what they share with each other is in conn_int.h) */
/* Encodes ctl (+ payload, may be NULL) to peer, connecting on demand. Returns 0 also when the message is
 * dropped because the peer is unreachable, like Erlang's send; CN_EBUSY when the peer's queue is full. When
 * sender is a process and the queue is over the busy limit, the process is suspended until it drains. */
int conn_send_from(cn_node *n, cn_proc *sender, const cn_atom *peer, const cn_term *ctl, const cn_term *payload);
static inline int conn_send(cn_node *n, const cn_atom *peer, const cn_term *ctl, const cn_term *payload) {
  return conn_send_from(n, NULL, peer, ctl, payload);
}
/* A process that ends while suspended leaves the connection's wait list. */
void conn_forget_proc(cn_node *n, cn_proc *p);
/* Writes queued output of every dirty connection. */
void conn_flush_all(cn_node *n);
void conn_on_accept(uv_stream_t *server, int status);
int conn_connect(cn_node *n, const cn_atom *peer);
int conn_disconnect(cn_node *n, const cn_atom *peer);
void conn_close_all(cn_node *n);
/* Builds the node's TLS contexts from opts (logs the reason on error: CN_EINVAL); conn_tls_free releases them. */
int conn_tls_init(cn_node *n, const cn_tls_opts *opts);
void conn_tls_free(cn_node *n);
/* Peer flags of the named connection when it is up, else 0. */
uint64_t conn_peer_flags(cn_node *n, const cn_atom *peer);
/* Test hooks (fuzz/fuzz_node.c), unused by the runtime: conn_test_up makes a connection to peer with no socket,
 * up as if a handshake had agreed peer_flags (nodeup runs); conn_test_feed takes bytes as if read from it, on the
 * path read bytes take; conn_test_output moves what the node wrote to it into out (NULL: discards it). Both
 * return CN_ENOCONN once that connection is gone. cn_node_disconnect closes it. */
int conn_test_up(cn_node *n, const cn_atom *peer, uint64_t peer_flags);
int conn_test_feed(cn_node *n, const cn_atom *peer, const uint8_t *p, size_t len);
int conn_test_output(cn_node *n, const cn_atom *peer, cn_buf *out);

/* len random bytes from the system's generator (uv_random: getrandom and the like), for handshake challenges and
 * a no-EPMD node's creation: 0 or a libuv error. node_random_hook, when set, answers instead (test_faults.c makes
 * the generator fail with it). */
int node_random(void *buf, size_t len);
extern _Atomic(int (*)(void *buf, size_t len)) node_random_hook;

/* builtin.c: net_kernel, rex, and the system process. */
int builtin_start(cn_node *n);
/* otp_release.c: the release followed is n->otp_release when set (known at once); else 25 until the first BEAM peer
 * tells its own. otp_start starts the asking process; otp_nodeup asks a new peer while the release is unknown. */
int otp_start(cn_node *n);
/* The release in a peer's answer: a string of 1 to 4 decimal digits such as "27" (a list of small integers) within
 * CN_OTP_RELEASE_MIN..MAX; 0 for anything else ({badrpc, _} from a C peer, a malformed or hostile answer). */
int otp_parse_release(const cn_term *t);
void otp_nodeup(cn_node *n, const cn_atom *peer);
/* A control message a peer sent: acts on it. Returns 0 or CN_EPROTO (the connection is then dropped). */
int dispatch_ctl(cn_node *n, cn_conn *c, const cn_atom *peer, const dist_ctl *ctl, cn_term *payload);

/* The runtime's short names for cn_term.h's stack views, used to encode control messages. */
#define tv_int cn_tv_int
#define tv_atom cn_tv_atom
#define tv_pid cn_tv_pid
#define tv_ref cn_tv_ref
#define tv_tuple cn_tv_tuple

#endif
