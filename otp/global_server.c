/* global_server.c: the global_name_server process (a gen_server on the public API) and cn_global_start, which
 * starts it with its locker and registrar; the node's slot that finds global's state; node events delivered to
 * the server as messages; whereis and send by global name. */
#include <unistd.h>

#include "global_int.h"

/* The key of global's slot on a node (cn_node_attach): its address, not its value, names the slot. */
static const char gl_key;

void gl_unref(gl_state *g) {
  if (--g->refs > 0) return;
  gl_tables_free(g);
  gl_free_peers(g);
  cn_free(g);
}

static void server_end(cn_proc *self, const cn_term *reason, void *state) {
  (void)self;
  (void)reason;
  gl_unref(state);
}

static void slot_release(void *data) { gl_unref(data); }

static const cn_gen_server_ops server_ops = {
    .handle_call = gl_handle_call,
    .handle_cast = gl_handle_cast,
    .handle_info = gl_handle_info,
    .terminate = server_end,
};

/* Node events become messages to the server, as net_kernel:monitor_nodes(true, [{node_type, all}]) delivers
 * them: {nodeup, Node, [{node_type, visible | hidden}]} and {nodedown, Node, []} (the type of a node that is gone
 * cannot be asked any more; the server forgets only nodes it knows). They are ordered with the connection's
 * traffic: a nodeup is queued before anything the new connection brings, so an init_connect that comes first is
 * still handled after our own. The server is found by name, so nothing dangles once it has ended. */
static void on_nodes(cn_node *n, const cn_atom *node, bool up, const char *reason, void *ctx) {
  (void)reason;
  (void)ctx;
  cn_pid pid;
  if (cn_whereis(n, GL_SERVER_NAME, &pid)) return;
  const char *type = cn_node_is_up(n, node, CN_NODES_VISIBLE) ? "visible" : "hidden";
  cn_term *info = up ? cn_mk_list(1, cn_mk_tuple(2, cn_mk_atomc(n, "node_type"), cn_mk_atomc(n, type))) : cn_mk_nil();
  cn_term *msg = cn_mk_tuple(3, cn_mk_atomc(n, up ? "nodeup" : "nodedown"), cn_mk_atom(node), info);
  if (msg) cn_send(n, NULL, pid, msg);
  cn_term_free(msg);
}

gl_state *gl_of(cn_node *n) {
  gl_state *g = cn_node_attached(n, &gl_key);
  return g && cn_is_process_alive(n, g->server) ? g : NULL;
}

/* Ends the processes a failed start made (their terminates release the state). */
static void start_undo(gl_state *g) {
  cn_term kill = cn_tv_atom(cn_intern(g->n, "kill"));
  const cn_pid *pids[] = {&g->registrar, &g->locker, &g->server};
  for (size_t i = 0; i < sizeof pids / sizeof *pids; i++)
    if (pids[i]->node) cn_exit(g->n, NULL, *pids[i], &kill);
}

int cn_global_start(cn_node *n) {
  if (!n) return CN_EINVAL;
  if (cn_node_hidden(n)) return CN_ESTATE; /* a hidden node takes no part in global */
  if (cn_node_attached(n, &gl_key)) return CN_EEXIST;
  gl_state *g = cn_calloc(1, sizeof *g);
  if (!g) return CN_ENOMEM;
  g->n = n;
  g->connect_all = cn_node_connect_all(n);
  g->rand = uv_hrtime() ^ (uint64_t)(uintptr_t)g ^ ((uint64_t)getpid() << 32);
  if (!g->rand) g->rand = 88172645463325252ull;
  int rc = cn_gen_server_start(n, GL_SERVER_NAME, &server_ops, g, &g->server);
  if (rc) {
    cn_free(g);
    return rc;
  }
  g->refs = 1;
  if ((rc = gl_resolve_serve(n)) || (rc = gl_locker_start(g)) || (rc = gl_registrar_start(g))) {
    start_undo(g);
    return rc;
  }
  g->refs++; /* the slot's: the state outlives the processes until cn_node_free */
  if ((rc = cn_node_attach(n, &gl_key, g, slot_release))) {
    g->refs--;
    start_undo(g);
    return rc;
  }
  if ((rc = cn_node_monitor_nodes(n, on_nodes, NULL))) start_undo(g);
  return rc;
}

/* ---- C API: names ------------------------------------------------------------------------------------------ */

int cn_global_whereis_name(cn_node *n, const cn_term *name, cn_pid *out) {
  gl_state *g = gl_of(n);
  if (!name || !out) return CN_EINVAL;
  if (!g) return CN_ESTATE;
  return gl_where(g, name, out) ? 0 : CN_ENOTFOUND;
}

int cn_global_send(cn_node *n, cn_proc *from, const cn_term *name, const cn_term *msg) {
  cn_pid pid;
  if (!msg) return CN_EINVAL;
  int rc = cn_global_whereis_name(n, name, &pid);
  return rc ? rc : cn_send(n, from, pid, msg);
}
