/* cnode.h: the public API of libcnode. A C program creates a node, spawns C processes on it and runs its
 * loop; Erlang and Elixir nodes see it as one more visible node of their cluster.
 *
 * Threads: one thread owns a node (the one running its loop). Every function here must be called on that
 * thread, except those marked "thread-safe", and except from the node's dirty threads: a dirty process's handler,
 * callbacks and terminate, and a dirty job (see "Dirty processes and jobs") may call every function here: the sends
 * (cn_send, cn_send_name, cn_send_to, cn_send_opts, cn_send_alias, cn_gen_reply, cn_cast) are queued to the loop in
 * order and return at once, every other call borrows the node from its loop for its own length (cn_node_lock says
 * how); and the blocking forms cn_call_sync / cn_rpc_sync.
 *
 * Nodes are named by atoms everywhere (const cn_atom *): atoms of the node's own table, from cn_intern (which
 * is thread-safe), cn_node_name, cn_nodes or a term the node made or decoded. Callback types end in _fn. */
#ifndef CNODE_H
#define CNODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cn_base.h"
#include "cn_term.h"
#include "cn_tls.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cn_node cn_node;
typedef struct cn_proc cn_proc;

/* Zero is CN_LOG_INFO, so zeroed options log at the default level. */
typedef enum cn_log_level { CN_LOG_DEBUG = -1, CN_LOG_INFO = 0, CN_LOG_WARN = 1, CN_LOG_ERROR = 2 } cn_log_level;
/* A log sink: msg is one line without newline, borrowed for the call. */
typedef void (*cn_log_fn)(cn_node *n, cn_log_level level, const char *msg, void *ctx);

/* The distribution's address family, as OTP's -proto_dist inet_tcp (inet_tls) and inet6_tcp (inet6_tls). */
typedef enum cn_family { CN_INET = 0, CN_INET6 = 1 } cn_family;

/* Node options. Zero-initialise, then set what you need; zero fields take the defaults shown. */
typedef struct cn_node_opts {
  const char *name;         /* full node name "alive@host" (required) */
  const char *cookie;       /* required */
  const char *epmd_host;    /* where the node registers: "127.0.0.1", "::1" with CN_INET6 (as OTP's erl_epmd) */
  uint16_t epmd_port;       /* $ERL_EPMD_PORT or 4369 */
  const char *listen_addr;  /* the distribution port's address, as OTP's -kernel inet_dist_use_interface: a numeric
                               IPv4 or IPv6 address ("127.0.0.1", "::1": this host only; "::": IPv4 and IPv6).
                               NULL: "0.0.0.0", every IPv4 interface; "::" with CN_INET6. Anything else (a host
                               name, an IPv4 address with CN_INET6): CN_EINVAL from cn_node_new */
  uint16_t listen_port;     /* 0: any free port. Else the port, or the first of listen_port..listen_port_max */
  uint16_t listen_port_max; /* 0: listen_port alone. Else the last port of the range (OTP's inet_dist_listen_min and
                               inet_dist_listen_max): cn_node_start tries each port in order and keeps the first
                               free one, or fails with CN_EEXIST and a log line naming the range when all are taken.
                               Set without listen_port, or below it: CN_EINVAL from cn_node_new */
  uint32_t net_ticktime_s;  /* 60, as OTP's net_ticktime */
  uint32_t handshake_timeout_ms; /* 7000, as OTP */
  bool hidden;                   /* announce as hidden instead of visible */
  bool no_connect_all;           /* as OTP's -connect_all false: the node does not connect transitively to its peers'
                               peers (services read it through cn_node_connect_all) */
  bool no_epmd;                  /* do not register with EPMD (peers must know the port) */
  size_t max_atoms;              /* atom table limit: 1048576 (OTP's default); messages from peers may create atoms
                               only up to 15/16 of it, the rest is kept for node names and local use */
  size_t max_message_size;       /* largest frame or reassembled message accepted: 256 MiB */
  size_t max_connections;        /* connections at once, set up or being set up: 1024; more are closed at accept */
  size_t busy_limit;             /* bytes queued to one peer above which sending processes are suspended until it
                               drains (OTP's busy dist port, +zdbbl): 1 MiB */
  size_t queue_limit;            /* bytes queued to one peer above which messages are dropped (CN_EBUSY): 64 MiB */
  cn_log_fn log;                 /* NULL: lines go to stderr prefixed "cnode: " */
  void *log_ctx;
  cn_log_level log_level; /* lowest level passed to the sink: CN_LOG_INFO */
  cn_family family;       /* CN_INET: peers are reached at their host's IPv4 address (an IPv6 one when it has
                               none, or when the name's host is an IPv6 literal). CN_INET6, as -proto_dist inet6_tcp:
                               IPv6 only, at the EPMD and the port of the host's IPv6 address (a@::1, or a name
                               with an AAAA record); listen_addr and epmd_host default to "::" and "::1" */
  const cn_tls_opts *tls; /* NULL: plain TCP (inet_tcp_dist). Else every connection is TLS as OTP's inet_tls_dist
                               (-proto_dist inet_tls): read by cn_node_new (files loaded then), borrowed for the call */
  int otp_release;        /* the OTP release whose term semantics the node follows (-0.0 vs 0.0 from 27 on; see
                             cn_term_cmp_otp), CN_OTP_RELEASE_MIN..MAX (cn_term.h). 0: learned from the first BEAM peer that
                             answers erlang:system_info(otp_release) after its nodeup; OTP 25's until then.
                             Out of range: CN_EINVAL from cn_node_new */
  unsigned dirty_threads; /* threads of the dirty pool, started at the first dirty process or job: 0 is the number of
                             cores online */
} cn_node_opts;

/* Creates a node on loop (NULL: the node creates and owns its own loop). Nothing is opened yet.
 * *out is freed with cn_node_free. SIGPIPE is set to ignored unless the program has its own handler: a peer that
 * closes while the node writes then ends that connection (EPIPE), not the process. */
CN_EXPORT int cn_node_new(cn_node **out, uv_loop_t *loop, const cn_node_opts *opts);
/* Called once when the node is ready (listening and registered with EPMD, creation known) or failed. */
typedef void (*cn_start_fn)(cn_node *n, int status, void *ctx);
/* Listens and registers with EPMD. If this returns 0, cb runs exactly once, later, from the loop. Errors before
 * that: CN_EEXIST when the listen port (every port of the range) is in use, CN_EIO when the address cannot be
 * listened on (not an address of this host, a privileged port), CN_ESTATE when already started. */
CN_EXPORT int cn_node_start(cn_node *n, cn_start_fn cb, void *ctx);
/* Runs the node's loop until cn_node_stop; returns 0 or a CN_E* code. */
CN_EXPORT int cn_node_run(cn_node *n);
/* Asks the node to stop: connections and the EPMD registration are closed, processes are ended with reason
 * shutdown, and cn_node_run returns. Thread-safe and async-signal-unsafe; call it from any thread. */
CN_EXPORT void cn_node_stop(cn_node *n);
/* Frees a stopped (or never started) node and, when it owns it, its loop. */
CN_EXPORT void cn_node_free(cn_node *n);

/* The node's name atom, creation (from EPMD), listen port, atom table and loop. */
CN_EXPORT const cn_atom *cn_node_name(const cn_node *n);
CN_EXPORT uint32_t cn_node_creation(const cn_node *n);
CN_EXPORT uint16_t cn_node_port(const cn_node *n);
CN_EXPORT cn_atoms *cn_node_atoms(cn_node *n);
CN_EXPORT uv_loop_t *cn_node_loop(cn_node *n);
/* Interns an atom in the node's table (NULL on error): thread-safe. */
CN_EXPORT const cn_atom *cn_intern(cn_node *n, const char *name);
/* A new atom term, or NULL: thread-safe. */
CN_EXPORT cn_term *cn_mk_atomc(cn_node *n, const char *name);

/* Logs one printf-formatted line through the node's sink. */
CN_EXPORT void cn_log(cn_node *n, cn_log_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Node events: up is true for nodeup, false for nodedown (reason says why, borrowed). */
typedef void (*cn_nodes_fn)(cn_node *n, const cn_atom *node, bool up, const char *reason, void *ctx);
/* Subscribes fn to nodeup/nodedown of visible and hidden peers. */
CN_EXPORT int cn_node_monitor_nodes(cn_node *n, cn_nodes_fn fn, void *ctx);
/* Removes the subscription of fn with ctx (the first one that matches): 0, or CN_ENOTFOUND. */
CN_EXPORT int cn_node_demonitor_nodes(cn_node *n, cn_nodes_fn fn, void *ctx);
/* Failed connection setups: node is the peer a setup was for (one this node started, or a peer's that named
 * itself) that ended without nodeup; reason is the logged cause ("connect: connection refused", "setup timed out",
 * ...), borrowed for the call. Discovery uses it to log why a connect failed and to back off. */
typedef void (*cn_setup_failed_fn)(cn_node *n, const cn_atom *node, const char *reason, void *ctx);
/* Subscribes fn to failed connection setups (as cn_node_monitor_nodes does to nodeup/nodedown). */
CN_EXPORT int cn_node_monitor_setups(cn_node *n, cn_setup_failed_fn fn, void *ctx);
/* Removes the subscription of fn with ctx (the first one that matches): 0, or CN_ENOTFOUND. */
CN_EXPORT int cn_node_demonitor_setups(cn_node *n, cn_setup_failed_fn fn, void *ctx);
/* Connects to node (through EPMD) if not connected; the result shows as a nodeup, or as a failed setup
 * (cn_node_monitor_setups) and a log line. */
CN_EXPORT int cn_node_connect(cn_node *n, const cn_atom *node);
/* Drops the connection to node, as erlang:disconnect_node/1 (nodedown follows with reason "disconnected");
 * CN_ENOCONN when there is none. */
CN_EXPORT int cn_node_disconnect(cn_node *n, const cn_atom *node);
/* True when the node was created with connect_all (the default), as OTP's connect_all: services on the node may
 * connect it transitively to its peers' peers. False with no_connect_all. */
CN_EXPORT bool cn_node_connect_all(const cn_node *n);
/* True when the node announces itself as hidden (cn_node_opts.hidden). */
CN_EXPORT bool cn_node_hidden(const cn_node *n);
/* The distribution's address family (cn_node_opts.family): discovery asks DNS for AAAA records only under
 * CN_INET6, as a node that runs inet6 reaches no IPv4 address. */
CN_EXPORT cn_family cn_node_family(const cn_node *n);
/* The OTP release whose term semantics the node follows now, to pass to cn_term_*_otp when comparing terms as the
 * cluster does: cn_node_opts.otp_release, else the release of the first BEAM peer that told it (learned once, kept
 * for the node's life), else CN_OTP_RELEASE_DEFAULT (25). */
CN_EXPORT int cn_node_otp_release(const cn_node *n);
/* True when the release is settled: set in cn_node_opts, or learned from a peer (false: still the default). */
CN_EXPORT bool cn_node_otp_release_known(const cn_node *n);

/* A per-node slot for a library part built on this API (a service that keeps state per node), found by key (the
 * address of a static of that part): data is borrowed by the node; release (may be NULL) runs once with it in
 * cn_node_free, after every process has ended. CN_EEXIST when key already has a slot, CN_ENOMEM. */
CN_EXPORT int cn_node_attach(cn_node *n, const void *key, void *data, cn_free_fn release);
/* The data attached under key, or NULL. */
CN_EXPORT void *cn_node_attached(cn_node *n, const void *key);

/* Why a connection's setup failed: the index of cn_node_stats.setup_failures (and /metrics' reason label). */
typedef enum cn_setup_fail {
  CN_SETUP_TIMEOUT = 0, /* no finished handshake within handshake_timeout_ms */
  CN_SETUP_LOOKUP,      /* the peer's host did not resolve, or its EPMD had no port for it */
  CN_SETUP_CONNECT,     /* the TCP connect failed (refused, unreachable) */
  CN_SETUP_TLS,         /* the TLS handshake failed (certificate, protocol) */
  CN_SETUP_COOKIE,      /* the challenge digest did not match: different cookies */
  CN_SETUP_REFUSED,     /* the peer refused with a status (not_allowed, nok as the losing side...) */
  CN_SETUP_FLAGS,       /* the peer lacks mandatory distribution flags */
  CN_SETUP_PROTOCOL,    /* a malformed handshake message, or out of memory during the setup */
  CN_SETUP_CLOSED,      /* the peer closed or reset the socket during the setup */
  CN_SETUP_FAIL_COUNT
} cn_setup_fail;
/* The cause's name in lower case ("timeout", "cookie", ...; "unknown" out of range): static text. */
CN_EXPORT const char *cn_setup_fail_name(int kind);

/* Counters of what the node refused or limited; each increment also logs its reason once per event. The traffic
 * counters cover the node's whole life (closed connections included): the monotonic counters of a metrics
 * endpoint. The struct may grow at its end in a later release (recompile). */
typedef struct cn_node_stats {
  uint64_t handshake_timeouts;                  /* connections that did not finish the handshake in time */
  uint64_t handshake_failures;                  /* refused handshakes: cookie, flags, malformed, refused status */
  uint64_t connections_refused;                 /* accepted sockets closed at once: max_connections reached */
  uint64_t protocol_errors;                     /* connections dropped for a bad frame or message */
  uint64_t oversized_messages;                  /* frames or reassembled messages over max_message_size */
  uint64_t atoms_refused;                       /* atoms not created because the table was full */
  uint64_t busy_suspensions;                    /* times a sending process was suspended on a busy connection */
  uint64_t messages_dropped;                    /* messages not queued: queue_limit reached */
  uint64_t tick_timeouts;                       /* connections dropped by net_ticktime */
  uint64_t setup_failures[CN_SETUP_FAIL_COUNT]; /* every failed connection setup by cause (timeouts included) */
  uint64_t connections_up;                      /* connections that came up (nodeups) */
  uint64_t bytes_in, bytes_out;       /* bytes read from and written to distribution sockets (TLS records: as sent) */
  uint64_t messages_in, messages_out; /* distribution messages received and sent (ticks are not messages) */
} cn_node_stats;
/* Copies the node's counters. */
CN_EXPORT void cn_node_get_stats(cn_node *n, cn_node_stats *out);

/* One connection as cn_node_conns lists it: a snapshot, with every pointer valid until the node's loop turns. */
typedef struct cn_conn_info {
  const cn_atom *node; /* the peer; NULL while an accepted peer has not said its name */
  const char *state;   /* static text: "lookup", "connecting", "tls", "handshake", "up", "wait_peer", "closing" */
  bool initiator;      /* this node connected (else it accepted) */
  bool hidden;         /* up and the peer announced itself hidden */
  bool tls;            /* the connection runs TLS */
  bool io_uring;       /* read through cn_node_run's io_uring (else libuv's reads) */
  uint64_t bytes_in, bytes_out, messages_in, messages_out; /* as cn_node_stats, this connection only */
  uint64_t busy_suspensions;                               /* senders suspended on this connection's queue */
  size_t queue_bytes; /* bytes waiting to go out: framed and in the write under way, plus what was queued before
                         the connection came up */
} cn_conn_info;
/* Fills out with up to max connections (named and accepted ones not yet named, any state); returns how many there
 * are (call with max 0 to size the array). */
CN_EXPORT size_t cn_node_conns(cn_node *n, cn_conn_info *out, size_t max);

/* The node's processes at one moment (cn_node_proc_stats). */
typedef struct cn_proc_stats {
  size_t processes;   /* alive processes, the built-in ones (net_kernel, rex...) included */
  size_t registered;  /* registered names */
  size_t messages;    /* messages queued in all mailboxes */
  size_t max_mailbox; /* the longest mailbox */
} cn_proc_stats;
/* Counts the node's processes and mailboxes: O(processes). */
CN_EXPORT void cn_node_proc_stats(cn_node *n, cn_proc_stats *out);

/* ---- Processes --------------------------------------------------------------------------------------- */

/* A process handler: called with one message at a time. msg is borrowed until the handler returns; keep
 * a cn_term_copy if needed. Sends from a handler enqueue; they never call the receiver. */
typedef void (*cn_handler_fn)(cn_proc *self, const cn_term *msg, void *state);
/* Called once when the process ends (reason borrowed), to release state. */
typedef void (*cn_terminate_fn)(cn_proc *self, const cn_term *reason, void *state);

typedef struct cn_proc_opts {
  cn_terminate_fn terminate; /* NULL: nothing to release */
  bool trap_exit;            /* exit signals become {'EXIT', From, Reason} messages */
  bool dirty;                /* a dirty process: handler, callbacks and terminate run on the dirty pool (below) */
} cn_proc_opts;

/* Spawns a process running handler with state (borrowed by the node until terminate). opts may be NULL.
 * *pid_out (may be NULL) receives its pid. */
CN_EXPORT int cn_spawn(cn_node *n, cn_handler_fn handler, void *state, const cn_proc_opts *opts, cn_pid *pid_out);
/* The process's own pid, node and state. */
CN_EXPORT cn_pid cn_self(const cn_proc *p);
CN_EXPORT cn_node *cn_proc_node(cn_proc *p);
/* True when pid is a process of this node that has not exited, as erlang:is_process_alive/1 (false for pids
 * of other nodes). */
CN_EXPORT bool cn_is_process_alive(cn_node *n, cn_pid pid);
/* Ends the calling process after its handler returns, with reason (borrowed; copied; NULL: normal). */
CN_EXPORT int cn_proc_exit(cn_proc *self, const cn_term *reason);

/* Registers name for a local pid: CN_EEXIST when the name is taken or the pid has a name, CN_ENOPROC when
 * the pid is not alive. */
CN_EXPORT int cn_register(cn_node *n, const char *name, cn_pid pid);
/* Removes a registered name: CN_ENOTFOUND when absent. */
CN_EXPORT int cn_unregister(cn_node *n, const char *name);
/* Looks up a registered name: 0 and *out, or CN_ENOTFOUND. */
CN_EXPORT int cn_whereis(cn_node *n, const char *name, cn_pid *out);

/* Sends msg (borrowed: encoded or copied before return) to pid, local or remote. from is the sending
 * process (NULL: the node's own system pid). A remote node is connected on demand through EPMD; like
 * Erlang's `!`, a message to a dead pid or unreachable node is dropped silently (0 is returned). */
CN_EXPORT int cn_send(cn_node *n, cn_proc *from, cn_pid to, const cn_term *msg);
/* Sends to a registered name on node (NULL or the node's own name: local); as cn_send. A local name that
 * is not registered gives CN_ENOTFOUND. */
CN_EXPORT int cn_send_name(cn_node *n, cn_proc *from, const char *name, const cn_atom *node, const cn_term *msg);
/* Sends to a pid term, an alias (reference), or a {Name, Node} / Name term, as Erlang's `!` accepts them. */
CN_EXPORT int cn_send_to(cn_node *n, cn_proc *from, const cn_term *dest, const cn_term *msg);
/* Options of cn_send_opts and cn_exit_opts, as the option lists of erlang:send/3 and exit/3 (OTP 28). */
enum {
  /* A priority signal (EEP 76): it counts only when dest is an active priority alias (CN_ALIAS_PRIORITY); the
   * message, or the 'EXIT' message of a process that traps exits, then goes ahead of the ordinary messages in
   * the owner's queue. Any other dest takes it as an ordinary signal. A peer without OTP 28's ALTACT_SIG gets an
   * ordinary one. */
  CN_SEND_PRIORITY = 1
};
/* cn_send_to with options (CN_SEND_*), as erlang:send(Dest, Msg, Opts): cn_send_to(...) is opts 0. */
CN_EXPORT int cn_send_opts(cn_node *n, cn_proc *from, const cn_term *dest, const cn_term *msg, unsigned opts);
/* Sends msg (borrowed; copied now) to pid after ms milliseconds, as erlang:send_after/3. *timer (may be NULL)
 * receives an id for cn_cancel_timer. Pending timers end with the node. */
CN_EXPORT int cn_send_after(cn_node *n, unsigned ms, cn_pid to, const cn_term *msg, uint64_t *timer);
/* Cancels a timer of cn_send_after that has not fired: 0, or CN_ENOTFOUND when it fired or never existed. */
CN_EXPORT int cn_cancel_timer(cn_node *n, uint64_t timer);
/* A timer that runs inside a process: status 0 when ms have passed; CN_ECLOSED when self ends first (so ctx can
 * always be released in fn). */
typedef void (*cn_after_fn)(cn_proc *self, int status, void *ctx);
/* Runs fn(self, status, ctx) from self's context after ms milliseconds (0: at the next turn of the loop), as a
 * receive ... after would; self's other messages keep going to its handler meanwhile. *timer (may be NULL)
 * receives an id for cn_proc_cancel_after. If this returns an error, fn never runs. */
CN_EXPORT int cn_proc_after(cn_proc *self, unsigned ms, cn_after_fn fn, void *ctx, uint64_t *timer);
/* Cancels a cn_proc_after of self that has not run: 0 (fn never runs; ctx is the caller's again), or
 * CN_ENOTFOUND. */
CN_EXPORT int cn_proc_cancel_after(cn_proc *self, uint64_t timer);
/* Thread-safe send from any thread: the node takes msg (freed by the node, even on error) and delivers it
 * from its loop. to is a pid, or name != NULL for a registered name on node (NULL: local). */
CN_EXPORT int cn_send_threadsafe(cn_node *n, const cn_pid *to, const char *name, const cn_atom *node, cn_term *msg);

/* Which connected nodes cn_nodes lists, as erlang:nodes/1: visible, hidden or both. */
enum { CN_NODES_VISIBLE = 1, CN_NODES_HIDDEN = 2, CN_NODES_ALL = 3 };
/* Fills out with up to max names of connected nodes of the given kinds; returns how many there are. */
CN_EXPORT size_t cn_nodes(cn_node *n, int which, const cn_atom **out, size_t max);
/* True when node is connected (its connection is up, as nodeup reported it) and of a kind in which: what
 * lists:member(Node, nodes(Which)) says, in O(1) from the connection table and for any number of connections.
 * False for the node itself, as node() is not in nodes(); a caller that counts itself as up checks that first. */
CN_EXPORT bool cn_node_is_up(cn_node *n, const cn_atom *node, int which);

/* ---- Links, monitors, exit signals, aliases ------------------------------------------------------------- */

/* Links the calling process to pid, local or remote, as erlang:link/1. Linking to a process that does not
 * exist gives the caller an exit signal with reason noproc (noconnection when its node cannot be reached). */
CN_EXPORT int cn_link(cn_proc *self, cn_pid pid);
/* Removes a link, as erlang:unlink/1; exit signals of the old link that are still on their way are ignored
 * (the UNLINK_ID protocol when the peer has it). Unlinking a pid that is not linked is not an error. */
CN_EXPORT int cn_unlink(cn_proc *self, cn_pid pid);
/* Monitors target: a pid, a registered name (atom, on this node) or {Name, Node}. *ref receives the monitor
 * reference. When the target ends, the caller gets {'DOWN', Ref, process, Obj, Reason} (Obj the pid, or
 * {Name, Node} for a monitor by name); Reason noproc when it did not exist, noconnection when its node went
 * away. Returns CN_EINVAL for a target of another shape. */
CN_EXPORT int cn_monitor(cn_proc *self, const cn_term *target, cn_ref *ref);
/* Removes a monitor; no DOWN message for it is queued afterwards. CN_ENOTFOUND when ref is not a monitor of
 * the caller. */
CN_EXPORT int cn_demonitor(cn_proc *self, cn_ref ref);
/* Sends an exit signal with reason (borrowed) to pid, as erlang:exit/2. from NULL: the node's system pid. */
CN_EXPORT int cn_exit(cn_node *n, cn_proc *from, cn_pid to, const cn_term *reason);
/* Sends an exit signal to dest, a pid or a process alias (reference), as erlang:exit(Dest, Reason, Opts) of OTP
 * 28 with CN_SEND_* options. An alias that is not active ignores it; a remote alias needs a peer with OTP 28's
 * ALTACT_SIG (else the signal is dropped, as OTP drops it). CN_EINVAL for another dest. */
CN_EXPORT int cn_exit_opts(cn_node *n, cn_proc *from, const cn_term *dest, const cn_term *reason, unsigned opts);
/* Sets whether exit signals become {'EXIT', From, Reason} messages; returns the previous setting. */
CN_EXPORT bool cn_trap_exit(cn_proc *self, bool on);
/* A new reference, unique on this node. */
CN_EXPORT cn_ref cn_make_ref(cn_node *n);
/* Creates an alias for the calling process, as erlang:alias/0: messages sent to the reference arrive in its
 * mailbox until cn_unalias or the process ends. */
CN_EXPORT int cn_alias(cn_proc *self, cn_ref *ref);
/* Options of cn_alias_opts, as erlang:alias/1's list (explicit_unalias is how every C alias behaves). */
enum {
  /* A priority alias (EEP 76, OTP 28): messages and exit signals sent to it with the priority option
   * (CN_SEND_PRIORITY here, [priority] on a BEAM node) go ahead of the process's ordinary messages, in the
   * order they arrive among themselves. Without that option the alias takes ordinary messages. */
  CN_ALIAS_PRIORITY = 1,
  /* The alias ends once a message sent through it has arrived, as alias([reply]). */
  CN_ALIAS_REPLY = 2
};
/* cn_alias with options (CN_ALIAS_*), as erlang:alias(Opts); cn_alias(...) is opts 0. CN_EINVAL for unknown bits. */
CN_EXPORT int cn_alias_opts(cn_proc *self, unsigned opts, cn_ref *ref);
/* Deactivates an alias of the caller; CN_ENOTFOUND when it is not one. */
CN_EXPORT int cn_unalias(cn_proc *self, cn_ref ref);
/* Sends msg (borrowed) to a process alias, local or remote (ALTACT_SIG_SEND when the peer has OTP 28's ALTACT_SIG,
 * else ALIAS_SEND); dropped when inactive. With priority: cn_send_opts on a reference view (cn_tv_ref). */
CN_EXPORT int cn_send_alias(cn_node *n, cn_proc *from, cn_ref alias, const cn_term *msg);

/* ---- gen_server -------------------------------------------------------------------------------------- */

/* If msg is a gen_server call {'$gen_call', From, Request}, sets *from and *request (borrowed from msg)
 * and returns true. */
CN_EXPORT bool cn_gen_is_call(const cn_term *msg, const cn_term **from, const cn_term **request);
/* Replies to a gen_server caller: sends {Tag, Reply} to the From = {Pid, Tag} of a call (to the alias when
 * Tag is [alias | Ref], as OTP 24+ replies). from and reply are borrowed. */
CN_EXPORT int cn_gen_reply(cn_proc *self, const cn_term *from, const cn_term *reply);

/* A gen_server written in C. Every callback is optional. handle_call returns the reply (taken by the
 * behaviour), or NULL to reply later with cn_gen_reply (keep a cn_term_copy of from). A callback stops the
 * server with cn_proc_exit(self, Reason); callers then get Reason as the exit of their call. */
typedef struct cn_gen_server_ops {
  cn_term *(*handle_call)(cn_proc *self, const cn_term *request, const cn_term *from, void *state);
  void (*handle_cast)(cn_proc *self, const cn_term *request, void *state);
  void (*handle_info)(cn_proc *self, const cn_term *msg, void *state);
  void (*terminate)(cn_proc *self, const cn_term *reason, void *state);
  bool trap_exit;
  bool dirty; /* a dirty gen_server: its callbacks run on the dirty pool, as a dirty process's (cn_proc_opts) */
} cn_gen_server_ops;
/* Starts a gen_server process with state (borrowed until terminate), registered as name when not NULL.
 * ops is borrowed and must outlive the process. */
CN_EXPORT int cn_gen_server_start(cn_node *n, const char *name, const cn_gen_server_ops *ops, void *state,
                                  cn_pid *pid_out);

/* The result of a call: status 0 and the reply; CN_EEXIT and the exit reason (noproc, noconnection, the
 * server's exit reason); CN_ETIMEDOUT and NULL; CN_ECLOSED and NULL when the calling process itself ended
 * first. reply is borrowed for the callback. */
typedef void (*cn_reply_fn)(cn_proc *self, int status, const cn_term *reply, void *ctx);
/* Calls a gen_server (pid, local name atom or {Name, Node}) as gen_server:call/3 does on OTP 24+: a monitor
 * that is also an alias, {'$gen_call', {Self, [alias | Ref]}, Request}, then waiting. cb runs exactly once,
 * from self's context; other messages keep going to the handler. timeout_ms 0 means infinity. A late reply
 * after a timeout is dropped (the alias is gone). */
CN_EXPORT int cn_call(cn_proc *self, const cn_term *server, const cn_term *request, unsigned timeout_ms, cn_reply_fn cb,
                      void *ctx);
/* Sends {'$gen_cast', Request} to server (pid, name or {Name, Node}), as gen_server:cast/2. */
CN_EXPORT int cn_cast(cn_node *n, cn_proc *from, const cn_term *server, const cn_term *request);
/* rpc:call(Node, Mod, Fun, Args): a call to rex on node with {call, Mod, Fun, Args, GroupLeader}. The result
 * always arrives as status 0 (CN_ECLOSED aside): the function's value, or {badrpc, Reason} as OTP returns it
 * ({badrpc, nodedown}, {badrpc, timeout}, {badrpc, {'EXIT', R}}). args: a proper list. */
CN_EXPORT int cn_rpc(cn_proc *self, const cn_atom *node, const char *mod, const char *fun, const cn_term *args,
                     unsigned timeout_ms, cn_reply_fn cb, void *ctx);
/* erpc:call(Node, Mod, Fun, Args): spawns erpc:execute_call on node. Status 0 with the value; CN_EEXIT with
 * {throw, V}, {exit, V}, {error, V, Stack} or {error, {erpc, Why}} as erpc would raise them. */
CN_EXPORT int cn_erpc(cn_proc *self, const cn_atom *node, const char *mod, const char *fun, const cn_term *args,
                      unsigned timeout_ms, cn_reply_fn cb, void *ctx);
/* A guard around one call (a circuit breaker is one: cn_fuse_guard in cn_fuse.h). admit runs first: a non-zero
 * status fails the call at once with it (nothing is sent, the callback never runs). Once admit returned 0, done runs
 * exactly once with the call's outcome, just before the callback (status and reply as the callback gets them; a
 * status the call itself returned, with reply NULL). The guard is borrowed until done has run. */
typedef struct cn_call_guard {
  int (*admit)(void *ctx);
  void (*done)(int status, const cn_term *reply, void *ctx);
  void *ctx;
} cn_call_guard;
/* cn_call, cn_rpc and cn_erpc behind a guard (NULL: the plain call). */
CN_EXPORT int cn_call_guarded(cn_proc *self, const cn_call_guard *g, const cn_term *server, const cn_term *request,
                              unsigned timeout_ms, cn_reply_fn cb, void *ctx);
CN_EXPORT int cn_rpc_guarded(cn_proc *self, const cn_call_guard *g, const cn_atom *node, const char *mod,
                             const char *fun, const cn_term *args, unsigned timeout_ms, cn_reply_fn cb, void *ctx);
CN_EXPORT int cn_erpc_guarded(cn_proc *self, const cn_call_guard *g, const cn_atom *node, const char *mod,
                              const char *fun, const cn_term *args, unsigned timeout_ms, cn_reply_fn cb, void *ctx);
/* Blocking forms for threads other than the node's loop thread (never call them from a handler). *reply gets
 * a new term (caller frees) or NULL; the return is the status the callback form would give. */
CN_EXPORT int cn_call_sync(cn_node *n, const cn_term *server, const cn_term *request, unsigned timeout_ms,
                           cn_term **reply);
CN_EXPORT int cn_rpc_sync(cn_node *n, const cn_atom *node, const char *mod, const char *fun, const cn_term *args,
                          unsigned timeout_ms, cn_term **reply);

/* ---- Spawning C processes from BEAM -------------------------------------------------------------------- */

/* An entry point BEAM code can spawn with spawn(Node, Module, Function, Args) (and spawn_link,
 * spawn_monitor, spawn_opt). It gets Args (borrowed) and fills the new process's handler, state and options;
 * a non-zero return makes the spawned process exit at once with reason badarg. */
typedef int (*cn_entry_fn)(cn_node *n, const cn_term *args, cn_handler_fn *handler, void **state, cn_proc_opts *opts,
                           void *ctx);
/* Registers module:function as an entry point (any arity). Spawns of anything else start a process that
 * exits with {undef, [{M, F, Args, []}]}, as on a BEAM node without that code; the caller never hangs. */
CN_EXPORT int cn_register_entry(cn_node *n, const char *module, const char *function, cn_entry_fn fn, void *ctx);

/* A function BEAM code can call on this node with rpc:call(Node, M, F, Args) or erpc:call (and so the rpc calls
 * OTP's own services make of every node, which a service on this node can answer). It gets the argc arguments (borrowed) and returns the
 * value as a new term. NULL with *badarg set raises badarg in the caller, as a BIF given a bad argument does; NULL
 * without it (out of memory) answers as an undefined function. It runs on the loop thread, so it must be quick. */
typedef cn_term *(*cn_function_fn)(cn_node *n, const cn_term *argv, uint32_t argc, bool *badarg, void *ctx);
/* Registers module:function/arity as a function (0, CN_EEXIST when that one is registered, CN_EINVAL, CN_ENOMEM).
 * Calls of anything not registered (nor one of the BIFs the node answers: erlang:node/0, nodes/0,
 * is_process_alive/1, 'Elixir.Process':'alive?'/1) answer undef, as a BEAM node without the code. */
CN_EXPORT int cn_register_function(cn_node *n, const char *module, const char *function, uint32_t arity,
                                   cn_function_fn fn, void *ctx);

/* ---- Dirty processes and jobs ------------------------------------------------------------------------------ */

/* A dirty process (cn_proc_opts.dirty, cn_gen_server_ops.dirty) is a process whose code may compute for as long as
 * it needs: its handler, its call, rpc and cn_proc_after callbacks, and its terminate run on a thread of the node's
 * dirty pool (cn_node_opts.dirty_threads), one at a time and in the order the process receives them, while the loop
 * keeps serving ticks, handshakes and every other process. It is a process like the others (pid, name, links,
 * monitors, calls) and may call every function of this header. What differs:
 * - an exit signal (kill included) and cn_node_stop end it only once its current handler has returned (a C thread
 *   cannot be stopped mid-computation), and cn_node_run returns only when the pool's running handlers have;
 * - its sends are queued to the loop, in order and ahead of anything it does afterwards, and return 0 at once: only
 *   argument and memory errors are reported (not CN_ENOTFOUND for an unregistered local name, nor CN_EBUSY);
 * - every other call into the node waits for the loop to lend it the node (tens of microseconds), and each message
 *   costs two hand-overs between threads, so a process that mostly passes messages is faster as a plain one;
 * - a timer's or a completed call's callback goes ahead of the messages still queued for it;
 * - its callbacks never run on the loop thread, so a dirty handler must not touch a plain process's state. */

/* Borrows n from its loop thread for the calling dirty thread, until cn_node_unlock: between the two every call on
 * the node and on the library parts built on it (services, Horde) is safe, as on the loop thread, and the loop
 * waits, so keep it short. The calls of this header do it by themselves; use it around several calls that must see
 * one state, or a library part's calls. Nests. On any other thread (the loop thread included) it does nothing. */
CN_EXPORT void cn_node_lock(cn_node *n);
CN_EXPORT void cn_node_unlock(cn_node *n);
/* A dirty job: runs on a pool thread, returns a term (taken by the node; NULL for none) for the process that
 * started it. It may call this header's functions as a dirty handler does (with no process of its own). */
typedef cn_term *(*cn_job_fn)(cn_node *n, void *arg);
/* Runs fn(n, arg) on the dirty pool; its result arrives in self's mailbox as {Ref, Result} (Result the atom error
 * when fn returned NULL), *ref (may be NULL) receiving Ref. Jobs run concurrently with each other, up to the pool's
 * size. A result for a process that has ended is dropped. arg is the caller's until fn has returned. CN_ESTATE when
 * self has ended or the node stops (cn_node_run returns once running jobs have), CN_EIO when no pool thread could
 * start. */
CN_EXPORT int cn_dirty_job(cn_proc *self, cn_job_fn fn, void *arg, cn_ref *ref);
/* The number of threads of the pool (what cn_node_opts.dirty_threads asked, or the cores online). */
CN_EXPORT unsigned cn_node_dirty_threads(cn_node *n);

#ifdef __cplusplus
}
#endif
#endif
