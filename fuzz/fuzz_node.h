/* fuzz_node.h: what the files of the fuzz_node target share: the harness's state for one input (fz) and the calls
 * between fuzz_node.c (the node, the op loop), node_gen.c (terms), node_services.c (service requests) and
 * node_peer.c (the peer's frames). Only fuzz_node.c is a target: the node_*.c files are linked into it. */
#ifndef CN_FUZZ_NODE_H
#define CN_FUZZ_NODE_H

#include <string.h>

#include "fuzz.h"
#include "node_int.h"

#define FZ_REG "FuzzReg"
#define FZ_SUP "FuzzSup"
#define FZ_PUBSUB "Fuzz.PubSub"
#define MAX_NODES 160 /* term nodes per message */
#define RING 64

/* One input's run: the input, the node, the peer's view of it and the pools later ops draw from. */
typedef struct fz {
  fuzz_in in;
  cn_node *n;
  cn_atoms *tab; /* the peer's own atoms: the node must intern what it decodes itself */
  const cn_atom *me, *peer, *third[3];
  const cn_atom *npeer; /* the peer's name in the node's table: its connection's key */
  cn_pid probe;
  bool ponged;
  uint64_t flags;
  cn_buf out;          /* what the node wrote to the peer, not parsed yet */
  cn_term *seen[RING]; /* messages and subterms the node sent (owned) */
  cn_ref refs[RING];   /* refs the node sent (monitor refs, call tags, aliases, spawn ids, global tags) */
  cn_pid pids[RING];   /* pids the node sent (its processes, spawned ones) */
  size_t nseen, nrefs, npids, seen_next, ref_next, pid_next;
  cn_pid spawned[8]; /* processes SPAWN_REQUESTs started (SPAWN_REPLY results) */
  size_t nspawned, spawned_next;
  size_t nodes; /* term nodes left for the message being built */
  uint32_t peer_creation;
} fz;

/* The input's next bytes (0 once it is used up). */
static inline uint16_t u16(fz *z) { return (uint16_t)(fuzz_u8(&z->in) << 8 | fuzz_u8(&z->in)); }
static inline uint8_t u8(fz *z) { return fuzz_u8(&z->in); }

/* FUZZ_NODE_LOG=1: print the node's log and each message the peer sends (fuzz_node.c). */
bool fz_logging(void);

/* node_gen.c: atoms, pids, refs and terms a peer may send, drawn from the input and from what the node sent. */
const cn_atom *fz_dict_atom(fz *z);
const cn_atom *fz_extreme_atom(fz *z, bool node);
const cn_atom *fz_node_atom(fz *z);
bool fz_local_pid(fz *z, size_t i, cn_pid *out);
cn_pid fz_peer_pid(fz *z, const cn_atom *node);
cn_pid fz_pick_pid(fz *z);
cn_ref fz_pick_ref(fz *z);
const cn_atom *fz_pick_name(fz *z);
/* The terms below are new (the caller owns them; NULL after an out-of-memory). */
cn_term *fz_gen(fz *z, int depth);
cn_term *fz_gen_from(fz *z);
cn_term *fz_gen_struct(fz *z, int depth, const char *name, const char *const *keys, size_t nkeys);
size_t fz_term_size(const cn_term *t, size_t limit);
cn_term *fz_gen_seen(fz *z);
cn_term *fz_gen_vv(fz *z);
cn_term *fz_gen_spec(fz *z);

/* node_services.c: a message for one of the node's services (new, the caller's); *to is the service's name. */
cn_term *fz_gen_service_msg(fz *z, const cn_atom **to);

/* node_peer.c: the peer's ops, and the loop turns that collect what the node wrote back. */
void fz_run(fz *z, int turns);
void fz_send_ctl(fz *z);
void fz_send_service(fz *z);
void fz_send_answer(fz *z);
void fz_send_raw(fz *z);

#endif
