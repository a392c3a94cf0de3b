/* cnode.h: the public API of libcnode. A C program creates a node, spawns C processes on it and runs its
 * loop; Erlang and Elixir nodes see it as one more visible node of their cluster.
 *
 * Threads: one thread owns a node (the one running its loop). Every function here must be called on that
 * thread, except those marked "thread-safe". */
#ifndef CNODE_H
#define CNODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cn_base.h"
#include "cn_term.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cn_node cn_node;
typedef struct cn_proc cn_proc;

/* Zero is CN_LOG_INFO, so zeroed options log at the default level. */
typedef enum cn_log_level { CN_LOG_DEBUG = -1, CN_LOG_INFO = 0, CN_LOG_WARN = 1, CN_LOG_ERROR = 2 } cn_log_level;
/* A log sink: msg is one line without newline, borrowed for the call. */
typedef void (*cn_log_fn)(cn_node *n, cn_log_level level, const char *msg, void *ctx);

/* Node options. Zero-initialise, then set what you need; zero fields take the defaults shown. */
typedef struct cn_node_opts {
  const char *name;         /* full node name "alive@host" (required) */
  const char *cookie;       /* required */
  const char *epmd_host;    /* "127.0.0.1" */
  uint16_t epmd_port;       /* $ERL_EPMD_PORT or 4369 */
  const char *listen_addr;  /* "0.0.0.0" */
  uint16_t listen_port;     /* 0: any free port */
  uint32_t net_ticktime_s;  /* 60, as OTP's net_ticktime */
  uint32_t handshake_timeout_ms; /* 7000, as OTP */
  bool hidden;              /* announce as hidden instead of visible */
  bool no_epmd;             /* do not register with EPMD (peers must know the port) */
  size_t max_atoms;         /* atom table limit: 1048576 (OTP's default) */
  size_t max_message_size;  /* largest frame or reassembled message accepted: 256 MiB */
  cn_log_fn log;            /* NULL: lines go to stderr prefixed "cnode: " */
  void *log_ctx;
  cn_log_level log_level;   /* lowest level passed to the sink: CN_LOG_INFO */
} cn_node_opts;

/* Creates a node on loop (NULL: the node creates and owns its own loop). Nothing is opened yet.
 * *out is freed with cn_node_free. */
int cn_node_new(cn_node **out, uv_loop_t *loop, const cn_node_opts *opts);
/* Called once when the node is ready (listening and registered with EPMD, creation known) or failed. */
typedef void (*cn_start_cb)(cn_node *n, int status, void *ctx);
/* Listens and registers with EPMD. If this returns 0, cb runs exactly once, later, from the loop. */
int cn_node_start(cn_node *n, cn_start_cb cb, void *ctx);
/* Runs the node's loop until cn_node_stop; returns 0 or a CN_E* code. */
int cn_node_run(cn_node *n);
/* Asks the node to stop: connections and the EPMD registration are closed, processes are ended with reason
 * shutdown, and cn_node_run returns. Thread-safe and async-signal-unsafe; call it from any thread. */
void cn_node_stop(cn_node *n);
/* Frees a stopped (or never started) node and, when it owns it, its loop. */
void cn_node_free(cn_node *n);

/* The node's name atom, creation (from EPMD), listen port, atom table and loop. */
const cn_atom *cn_node_name(const cn_node *n);
uint32_t cn_node_creation(const cn_node *n);
uint16_t cn_node_port(const cn_node *n);
cn_atoms *cn_node_atoms(cn_node *n);
uv_loop_t *cn_node_loop(cn_node *n);
/* Interns an atom in the node's table (NULL on error): thread-safe. */
const cn_atom *cn_intern(cn_node *n, const char *name);
/* A new atom term, or NULL: thread-safe. */
cn_term *cn_mk_atomc(cn_node *n, const char *name);

/* Logs one printf-formatted line through the node's sink. */
void cn_log(cn_node *n, cn_log_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Node events: up is true for nodeup, false for nodedown (reason says why, borrowed). */
typedef void (*cn_nodes_fn)(cn_node *n, const cn_atom *node, bool up, const char *reason, void *ctx);
/* Subscribes fn to nodeup/nodedown of visible and hidden peers. */
int cn_node_monitor_nodes(cn_node *n, cn_nodes_fn fn, void *ctx);
/* Fills out with up to max connected node names; returns how many are connected. */
size_t cn_node_connected(cn_node *n, const cn_atom **out, size_t max);
/* Connects to node (through EPMD) if not connected; the result shows as a nodeup or a log line. */
int cn_node_connect(cn_node *n, const cn_atom *node);

/* ---- Processes --------------------------------------------------------------------------------------- */

/* A process handler: called with one message at a time. msg is borrowed until the handler returns; keep
 * a cn_term_copy if needed. Sends from a handler enqueue; they never call the receiver. */
typedef void (*cn_handler_fn)(cn_proc *self, const cn_term *msg, void *state);
/* Called once when the process ends (reason borrowed), to release state. */
typedef void (*cn_terminate_fn)(cn_proc *self, const cn_term *reason, void *state);

typedef struct cn_proc_opts {
  cn_terminate_fn terminate; /* NULL: nothing to release */
  bool trap_exit;            /* exit signals become {'EXIT', From, Reason} messages */
} cn_proc_opts;

/* Spawns a process running handler with state (borrowed by the node until terminate). opts may be NULL.
 * *pid_out (may be NULL) receives its pid. */
int cn_spawn(cn_node *n, cn_handler_fn handler, void *state, const cn_proc_opts *opts, cn_pid *pid_out);
/* The process's own pid, node and state. */
cn_pid cn_self(const cn_proc *p);
cn_node *cn_proc_node(cn_proc *p);
/* Ends the calling process after its handler returns, with reason (borrowed; copied). */
int cn_proc_exit(cn_proc *self, const cn_term *reason);

/* Registers name for a local pid: CN_EEXIST when the name is taken or the pid has a name, CN_ENOPROC when
 * the pid is not alive. */
int cn_register(cn_node *n, const char *name, cn_pid pid);
/* Removes a registered name: CN_ENOTFOUND when absent. */
int cn_unregister(cn_node *n, const char *name);
/* Looks up a registered name: 0 and *out, or CN_ENOTFOUND. */
int cn_whereis(cn_node *n, const char *name, cn_pid *out);

/* Sends msg (borrowed: encoded or copied before return) to pid, local or remote. from is the sending
 * process (NULL: the node's own system pid). A remote node is connected on demand through EPMD; like
 * Erlang's `!`, a message to a dead pid or unreachable node is dropped silently (0 is returned). */
int cn_send(cn_node *n, cn_proc *from, cn_pid to, const cn_term *msg);
/* Sends to a registered name on node (NULL or the node's own name: local); as cn_send. A local name that
 * is not registered gives CN_ENOTFOUND. */
int cn_send_name(cn_node *n, cn_proc *from, const char *name, const char *node, const cn_term *msg);
/* Sends to a pid term or a {Name, Node} / Name term, as Erlang's `!` accepts them. */
int cn_send_to(cn_node *n, cn_proc *from, const cn_term *dest, const cn_term *msg);
/* Thread-safe send from any thread: the node takes msg (freed by the node, even on error) and delivers it
 * from its loop. to is a pid, or name != NULL for a registered name on node (NULL: local). */
int cn_send_threadsafe(cn_node *n, const cn_pid *to, const char *name, const char *node, cn_term *msg);

/* ---- gen_server glue --------------------------------------------------------------------------------- */

/* If msg is a gen_server call {'$gen_call', From, Request}, sets *from and *request (borrowed from msg)
 * and returns true. */
bool cn_gen_is_call(const cn_term *msg, const cn_term **from, const cn_term **request);
/* Replies to a gen_server caller: sends {Tag, Reply} to the From = {Pid, Tag} of a call. */
int cn_gen_reply(cn_proc *self, const cn_term *from, const cn_term *reply);

#ifdef __cplusplus
}
#endif
#endif
