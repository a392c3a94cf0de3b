/* conn_int.h: one distribution connection, shared by conn.c (the table, lifecycle, nodeup/nodedown, queries, test
 * hooks), conn_io.c (the read and write paths, framing, the send queue) and conn_setup.c (accept, connect, the
 * handshake). Never installed. */
#ifndef CNODE_CONN_INT_H
#define CNODE_CONN_INT_H

#include "node_int.h"

typedef enum { C_LOOKUP, C_CONNECTING, C_TLS, C_HANDSHAKE, C_UP, C_WAIT_PEER, C_CLOSING } conn_state;

typedef struct pend {
  struct pend *next;
  cn_buf body; /* control then payload, each without the version byte */
  size_t ctl_len;
} pend;

/* What only an initiator's setup needs (about 400 bytes): allocated by conn_connect, freed once the connection
 * is up (or goes), so an established connection, and every accepted one, carries none of it. */
typedef struct conn_dial {
  epmd_req *lookup;
  uv_getaddrinfo_t gai;
  bool gai_pending;
  uv_connect_t creq;
  struct sockaddr_storage peer_sa; /* the peer's address, resolved before the EPMD lookup there */
  uint16_t peer_port;
} conn_dial;

/* A large binary of an outgoing message, written from its own bytes (plain TCP): its len bytes go before out's byte
 * at `at`. The connection holds a reference to k until the write is done. */
typedef struct conn_seg {
  size_t at;
  cn_chunk *k;
  const uint8_t *p;
  size_t len;
} conn_seg;
typedef struct conn_segs {
  conn_seg *s;
  size_t n, cap;
  size_t bytes; /* the sum of their lengths (counted as queued) */
} conn_segs;

struct cn_conn {
  cn_node *n;
  const cn_atom *peer; /* NULL until an accepted peer says its name */
  bool initiator;
  bool in_hash;
  conn_state state;
  int refs; /* open handles and requests; freed at zero */
  uv_tcp_t tcp;
  bool tcp_open;
  uv_timer_t timer; /* setup timeout, then ticks */
  conn_dial *dial;  /* initiator, until the connection is up: resolving, the EPMD lookup, connecting */
  int peer_version;
  dist_hs *hs;         /* during the handshake only (NULL before and after) */
  cn_buf in;           /* read (plaintext under TLS), not yet parsed: a view of in_chunk's bytes */
  cn_chunk *in_chunk;  /* the read chunk, shared by large binaries decoded from it */
  cn_chunk_pool spare; /* earlier read chunks, reused once their binaries are freed */
  bool held;           /* a message dispatched from the current input holds a chunk */
  bool read_big;       /* a read filled its buffer: read READ_CHUNK at a time (until idle again) */
  bool ur;             /* read through cn_node_run's ring (uring.c) */
  bool ur_reading;     /* a recv of the ring is in flight into in's free room (it holds a reference) */
  bool ur_cancelled;   /* and its cancellation was asked for */
  size_t ur_len;       /* the room that recv was given */
  uint64_t idle_mark;  /* msgs_in at the last tick timer: unchanged at the next, the buffers go back */
  cn_buf out;          /* accumulating (plaintext) */
  conn_segs oseg;      /* out's large binaries, left out of it (plain TCP) */
  cn_buf wbuf;         /* being written (ciphertext under TLS) */
  conn_segs wseg;      /* wbuf's large binaries, being written with it */
  dist_tls *tls;       /* NULL: plain TCP */
  cn_buf tin;          /* TLS: ciphertext just read */
  cn_buf tout;         /* TLS: records to send before the next encrypted output (handshake, alerts) */
  uv_write_t wreq;
  bool writing;
  bool dirty;
  cn_conn *dirty_next;
  dist_frags *frags;
  dist_tick tick;
  uint64_t peer_flags; /* a socketless test connection: set before conn_up; else taken from the handshake */
  pend *pend_head, **pend_tail;
  size_t pend_bytes;
  char addr[80];           /* the peer's address, for logs before its name is known */
  cn_proc *susp;           /* processes suspended until this connection's queue drains */
  const cn_atom *reg_name; /* the name the last REG_SEND from this peer went to (dist_ctl_fast) */
  cn_atom_cache *acache;   /* atoms this peer sends, found without the table's lock (NULL: none yet, made with the
                         * first message, or out of memory) */
  bool dropping;           /* queue_limit reached: logged once until it drains */
  cn_conn *unnamed_next;
  int fail; /* a cn_setup_fail + 1 set before conn_setup_failed; 0: by state */
  uint64_t bytes_in, bytes_out, msgs_in, msgs_out, busy; /* cn_conn_info's counters */
  UT_hash_handle hh;                                     /* node->conns by peer atom pointer */
};

/* conn.c */
/* The peer's name, or what is known of it yet, for logs. */
const char *conn_who(cn_conn *c);
/* Frees the handshake state (done, or the connection goes). */
void conn_hs_done(cn_conn *c);
/* Frees an initiator's setup state (up, or the connection goes); no request of it may be pending. */
void conn_dial_done(cn_conn *c);
/* Lets the processes suspended on c run again (its queue drained, or it closed). */
void conn_resume_all(cn_conn *c);
/* Drops one reference (an open handle or a pending request); frees c at zero. */
void conn_unref(cn_conn *c);
/* A new connection with its setup timer running, or NULL (out of memory). */
cn_conn *conn_new(cn_node *n, const cn_atom *peer, bool initiator);
/* The named connection to peer, or NULL. */
cn_conn *conn_find(cn_node *n, const cn_atom *peer);
/* Registers c under c->peer; false when the table could not grow (out of memory). */
bool conn_hash_add(cn_conn *c);
/* Takes an accepted connection off the node's list of unnamed ones. */
void conn_unnamed_remove(cn_conn *c);
/* Moves messages queued on `from` (a losing or failed setup) to `to`. */
void conn_adopt_pending(cn_conn *to, cn_conn *from);
/* Closes c for reason (nodedown if it was up); the memory goes when its handles have closed. */
void conn_close(cn_conn *c, const char *reason);
/* Counts and logs a failed setup (fmt takes detail), closes c, and ends links and monitors toward the node. */
void conn_setup_failed(cn_conn *c, const char *fmt, const char *detail);
/* The handshake finished: register c, start ticks, nodeup, and send what was queued meanwhile. */
void conn_up(cn_conn *c);
/* The initiator was refused with nok: keep the queue for the peer's own connection. */
void conn_wait_for_peer(cn_conn *c);

/* conn_io.c */
/* Queues c for the next flush (one write per connection per loop turn). */
void conn_mark_dirty(cn_conn *c);
/* Best effort, for the last bytes before a close: writes b now if it can, and empties it. */
void conn_try_write(cn_conn *c, cn_buf *b);
/* Writes what is queued now, before a close that follows a final status. */
void conn_write_now(cn_conn *c);
/* Bytes queued to be written: the output buffers and the large binaries written from their own bytes. */
size_t conn_queued(const cn_conn *c);
/* Moves the queued output (out with its large binaries spliced in) to dst (NULL: drops it); 0 or CN_ENOMEM. */
int conn_out_take(cn_conn *c, cn_buf *dst);
/* Releases the large binaries held for output (on the connection's end). */
void conn_segs_free(cn_conn *c);
/* Frames control and payload bytes that were encoded while the peer was still connecting. */
int conn_frame_bytes(cn_conn *c, const uint8_t *body, size_t ctl_len, size_t len);
/* Makes room in c->in for want more bytes (and a NUL): 0 or CN_ENOMEM. */
int conn_in_reserve(cn_conn *c, size_t want);
/* Frees c's read buffers (c->in, its chunk and the spares). */
void conn_in_free(cn_conn *c);
/* An idle connection returns its buffers (those empty and not in use); they come back sized on demand. */
void conn_idle(cn_conn *c);
/* Starts reading from c's socket. */
void conn_start_io(cn_conn *c);
/* Read buffer room for the next read (small while the connection is idle), in c->in's free room. */
int conn_read_room(cn_conn *c, uv_buf_t *buf);
/* A read of nread bytes (or a UV_* error, UV_EOF) into the room conn_read_room gave, buflen bytes of it. */
void conn_read_done(cn_conn *c, ssize_t nread, size_t buflen);

/* Handshakes and dispatches everything complete in c->in. */
void conn_process_input(cn_conn *c);

/* conn_setup.c */
/* Starts the distribution handshake on c (once TLS is up, when the node runs TLS): 0 or a CN_E* code. */
int conn_hs_start(cn_conn *c);
/* Feeds the handshake from c->in at *off: 1 to go on, 0 for more bytes, -1 when c left the handshake state. */
int conn_handshake_step(cn_conn *c, size_t *off);

#endif
