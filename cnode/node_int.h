/* node_int.h: the runtime's private structures, shared by node.c (lifecycle, scheduling), proc.c
 * (processes, names, signals), conn.c (connections) and builtin.c (net_kernel, rex). Never installed. */
#ifndef CNODE_NODE_INT_H
#define CNODE_NODE_INT_H

#include <pthread.h>

#include "cnode.h"

/* uthash allocates through libcnode's hooks like everything else. */
#define uthash_malloc(sz) cn_malloc(sz)
#define uthash_free(ptr, sz) cn_free(ptr)
#include <uthash.h>

#include "control.h"
#include "dist.h"
#include "epmd.h"

typedef struct cn_conn cn_conn;

/* One queued message. */
typedef struct cn_msg {
  struct cn_msg *next;
  cn_term *term; /* owned */
} cn_msg;

/* A link or an incoming monitor held by a process. */
typedef struct cn_link {
  struct cn_link *next;
  cn_pid pid;
} cn_link;

typedef struct cn_mon_in {
  struct cn_mon_in *next;
  cn_pid watcher;
  cn_ref ref;
  const cn_atom *name; /* monitored by registered name (reported as the name), or NULL */
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
  bool dead;             /* exited; freed once it leaves the run queue */
  cn_term *exit_reason;  /* set by cn_proc_exit or a killing signal; applied after the handler */
  cn_msg *mq_head, **mq_tail;
  size_t mq_len;
  const cn_atom *reg_name;
  cn_link *links;
  cn_mon_in *mons_in;
  struct cn_proc *run_next;
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
  bool has_pid;
  cn_pid to;
  char *name;
  char *node;
  cn_term *msg;
} cn_ts_msg;

typedef struct cn_node_sub {
  struct cn_node_sub *next;
  cn_nodes_fn fn;
  void *ctx;
} cn_node_sub;

struct cn_node {
  uv_loop_t *loop;
  uv_loop_t own_loop;
  bool owns_loop;
  cn_atoms *atoms;
  const cn_atom *name;
  char *host; /* the part after '@' */
  char *cookie;
  char *epmd_host;
  char *listen_addr;
  uint16_t epmd_port;
  uint16_t listen_port;
  uint32_t ticktime_ms;
  uint32_t hs_timeout_ms;
  bool hidden;
  bool no_epmd;
  size_t max_msg;
  cn_log_fn log;
  void *log_ctx;
  cn_log_level log_level;

  uint32_t creation;
  uint16_t port;
  uint64_t flags; /* what we announce */
  uv_tcp_t listener;
  bool listening;
  epmd_reg *reg;
  cn_start_cb start_cb;
  void *start_ctx;

  uint32_t next_id;
  uint32_t serial;
  cn_proc *procs;
  cn_name *names;
  cn_proc *runq_head, *runq_tail;
  uv_idle_t idle;  /* active while the run queue is not empty */
  uv_prepare_t prepare; /* flushes connection output before the loop blocks */
  cn_pid sys_pid;  /* sender of messages sent without a process */

  cn_conn *conns;   /* by peer name (named connections) */
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
};

/* node.c */
void node_schedule(cn_node *n, cn_proc *p);
void node_notify(cn_node *n, const cn_atom *peer, bool up, const char *reason);
/* A new reference of this node. */
cn_ref node_make_ref(cn_node *n);
bool node_is_local(const cn_node *n, const cn_atom *node);

/* proc.c */
cn_proc *proc_lookup(cn_node *n, cn_pid pid);
cn_proc *proc_by_name(cn_node *n, const cn_atom *name);
/* Takes msg (owned) into p's mailbox. */
void proc_deliver(cn_proc *p, cn_term *msg);
/* Runs up to budget messages of p; returns how many ran. */
size_t proc_run(cn_proc *p, size_t budget);
/* An exit signal from `from` with reason (borrowed) arriving at p (link exit when linked is true). */
void proc_exit_signal(cn_proc *p, cn_pid from, const cn_term *reason, bool linked);
/* Ends every process with reason shutdown (node stop). */
void proc_kill_all(cn_node *n);
/* Frees a dead process once it is out of the run queue. */
void proc_free(cn_proc *p);
/* Remote side effects of signals arriving by the wire. */
void proc_link_remote(cn_node *n, cn_pid local, cn_pid remote);
void proc_unlink_remote(cn_node *n, cn_pid local, cn_pid remote);
int proc_monitor_remote(cn_node *n, const cn_term *target, cn_pid watcher, cn_ref ref);
void proc_demonitor_remote(cn_node *n, const cn_term *target, cn_ref ref);
/* nodedown: links and monitors toward peer fire with noconnection. */
void proc_nodedown(cn_node *n, const cn_atom *peer);

/* conn.c */
/* Encodes ctl (+ payload, may be NULL) to peer, connecting on demand. Returns 0 also when the message is
 * dropped because the peer is unreachable, like Erlang's send. */
int conn_send(cn_node *n, const cn_atom *peer, const cn_term *ctl, const cn_term *payload);
/* Writes queued output of every dirty connection. */
void conn_flush_all(cn_node *n);
void conn_on_accept(uv_stream_t *server, int status);
int conn_connect(cn_node *n, const cn_atom *peer);
void conn_close_all(cn_node *n);
/* Peer flags of the named connection when it is up, else 0. */
uint64_t conn_peer_flags(cn_node *n, const cn_atom *peer);
/* The name of a connected peer, per cn_node_connected. */
size_t conn_list_up(cn_node *n, const cn_atom **out, size_t max);

/* builtin.c: net_kernel, rex, and the system process. */
int builtin_start(cn_node *n);
/* A control message a peer sent: acts on it. Returns 0 or CN_EPROTO (the connection is then dropped). */
int dispatch_ctl(cn_node *n, cn_conn *c, const cn_atom *peer, const dist_ctl *ctl, cn_term *payload);

/* Small term helpers over stack values (no allocation), for encoding control messages. */
static inline cn_term tv_int(int64_t i) {
  cn_term t = {.type = CN_INT};
  t.v.i = i;
  return t;
}
static inline cn_term tv_atom(const cn_atom *a) {
  cn_term t = {.type = CN_ATOM};
  t.v.atom = a;
  return t;
}
static inline cn_term tv_pid(cn_pid p) {
  cn_term t = {.type = CN_PID};
  t.v.pid = p;
  return t;
}
static inline cn_term tv_ref(cn_ref r) {
  cn_term t = {.type = CN_REF};
  t.v.ref = r;
  return t;
}
static inline cn_term tv_tuple(cn_term *e, uint32_t n) {
  cn_term t = {.type = CN_TUPLE};
  t.v.tuple.arity = n;
  t.v.tuple.e = e;
  return t;
}

#endif
