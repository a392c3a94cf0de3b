/* uring.c: the loop cn_node_run drives where Linux has io_uring. Plain TCP connections read through the ring: each
 * keeps one recv in flight into its read buffer, and one io_uring_enter a turn submits the next reads and waits for
 * the first completion: a read, libuv's own descriptors (its epoll set, polled through the ring) or its next
 * timer. libuv runs a turn only when one of its descriptors is ready, a timer is due or it has work queued; a
 * message that arrives is handled and answered without it. A round trip then costs the node an io_uring_enter and
 * a write, where libuv alone takes an epoll_wait, a read and a write (a system call costs ~1 us on the 2-vCPU
 * machines this project is measured on). Writes stay plain: a send through the ring measured 2 us a round trip
 * slower than write(2). TLS connections, a loop the program runs itself (uv_run), and a ring that cannot be set up
 * (no io_uring, a seccomp filter that refuses it, CNODE_IO_URING=0) keep libuv's reads. */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conn_int.h"

/* Under valgrind the ring stays off: it cannot see what the kernel writes into a recv's buffer after the call. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND() RUNNING_ON_VALGRIND
#endif
#endif
#ifndef UNDER_VALGRIND
#define UNDER_VALGRIND() 0
#endif

#define UR_ENTRIES 256
#define YIELD_BYTES 16384        /* see uring_run */
#define UR_BACKEND ((uint64_t)1) /* user_data of the poll of libuv's epoll descriptor */
#define UR_CANCEL ((uint64_t)2)  /* user_data of a cancellation (its own completion means nothing) */
#define UR_TIMEOUT ((uint64_t)3) /* user_data of the timeout that stands for libuv's next timer */
#define UR_UPDATE ((uint64_t)4)  /* user_data of a change of that timeout's expiry (completion ignored) */

struct cn_uring {
  struct io_uring ring;
  size_t inflight;      /* recvs and cancellations whose completions are still to come */
  bool backend_armed;   /* the poll of libuv's descriptor is in flight */
  bool yield;           /* sched_yield before waiting after a busy turn (CNODE_YIELD=0: never) */
  uint64_t msgs, bytes; /* the node's messages_in and bytes_in when the last wait ended */
  bool timeout_armed;   /* the timeout is in flight, expiring at deadline (the loop's time, ms) */
  uint64_t deadline;
  struct __kernel_timespec ts; /* the expiry the kernel reads as the next submission takes it */
};

bool uring_wanted(void) {
  const char *e = getenv("CNODE_IO_URING");
  return (!e || strcmp(e, "0") != 0) && !UNDER_VALGRIND();
}

int uring_open(cn_node *n) {
  cn_uring *u = cn_calloc(1, sizeof *u);
  if (!u) return CN_ENOMEM;
  /* Completions run when the loop waits for them (DEFER_TASKRUN, Linux 6.1), not by interrupting it; older kernels
   * refuse the flags and get the plain ring. */
  int rc = io_uring_queue_init(UR_ENTRIES, &u->ring, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
  if (rc == -EINVAL) rc = io_uring_queue_init(UR_ENTRIES, &u->ring, 0);
  if (rc < 0) {
    cn_log(n, CN_LOG_DEBUG, "io_uring unavailable (%s): connections read through libuv", strerror(-rc));
    cn_free(u);
    return CN_EIO;
  }
  const char *y = getenv("CNODE_YIELD");
  u->yield = !y || strcmp(y, "0") != 0;
  n->ur = u;
  return 0;
}

void uring_close(cn_node *n) {
  if (!n->ur) return;
  io_uring_queue_exit(&n->ur->ring);
  cn_free(n->ur);
  n->ur = NULL;
}

/* A free submission slot, submitting what is queued when the ring is full; NULL only when that fails. */
static struct io_uring_sqe *sqe_get(cn_uring *u) {
  struct io_uring_sqe *s = io_uring_get_sqe(&u->ring);
  if (!s && io_uring_submit(&u->ring) >= 0) s = io_uring_get_sqe(&u->ring);
  return s;
}

int uring_read(cn_conn *c) {
  cn_uring *u = c->n->ur;
  uv_os_fd_t fd;
  uv_buf_t b;
  if (uv_fileno((const uv_handle_t *)&c->tcp, &fd)) return CN_EIO;
  if (conn_read_room(c, &b)) return CN_ENOMEM;
  struct io_uring_sqe *s = sqe_get(u);
  if (!s) return CN_EIO;
  io_uring_prep_recv(s, fd, b.base, b.len, 0);
  /* After a read that did not fill its buffer the socket is most likely empty: wait for data straight away rather
   * than try a recv that fails first (one attempt less a message). */
  if (!c->read_big) s->ioprio |= IORING_RECVSEND_POLL_FIRST;
  io_uring_sqe_set_data64(s, (uint64_t)(uintptr_t)c);
  c->ur_len = b.len;
  c->ur_reading = true;
  c->refs++;
  u->inflight++;
  return 0;
}

void uring_cancel(cn_conn *c) {
  cn_uring *u = c->n->ur;
  if (!u || !c->ur_reading || c->ur_cancelled) return;
  struct io_uring_sqe *s = sqe_get(u);
  if (!s) return; /* the recv then ends when the socket's other side does */
  io_uring_prep_cancel64(s, (uint64_t)(uintptr_t)c, 0);
  io_uring_sqe_set_data64(s, UR_CANCEL);
  c->ur_cancelled = true;
  u->inflight++;
}

/* A recv of c's completed with res (bytes, 0 at the peer's end, or -errno): handled as a libuv read is, and the next
 * one queued. Cancelled on an open connection: conn_idle wanted its large read buffer back, and the next recv gets
 * a small one. */
static void read_done(cn_conn *c, int res) {
  c->ur_reading = false;
  c->ur_cancelled = false;
  if (c->tcp_open && c->state != C_CLOSING) {
    if (res == -ECANCELED) conn_idle(c);
    else conn_read_done(c, res > 0 ? (ssize_t)res : res == 0 ? UV_EOF : (ssize_t)res, c->ur_len);
    /* A recv that filled its room: more is waiting. Read it now, as libuv reads on until the socket is empty
     * (32 reads at most), so that what arrived while the loop was busy is all queued before a process runs: a
     * priority message behind 1,000 ordinary ones must overtake them. */
    uv_os_fd_t fd;
    for (int i = 0; res > 0 && (size_t)res == c->ur_len && i < 32 && c->tcp_open && c->state != C_CLOSING; i++) {
      uv_buf_t b;
      if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) || conn_read_room(c, &b)) break;
      ssize_t r = recv(fd, b.base, b.len, MSG_DONTWAIT);
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
      conn_read_done(c, r > 0 ? r : r == 0 ? UV_EOF : -errno, b.len);
      if (r <= 0 || (size_t)r < b.len) break;
    }
    if (c->tcp_open && c->state != C_CLOSING && uring_read(c)) conn_close(c, "out of memory");
  }
  conn_unref(c);
}

/* libuv's next timer, tmo ms from now (-1: none): the ring's timeout expires no later. It is one request that stays
 * in flight across waits and is moved only to an earlier expiry (a later one just wakes the loop early, once): a
 * wait with a timeout of its own arms and cancels a kernel timer on every call, ~150 ns of each round trip. */
static void deadline_set(cn_uring *u, uv_loop_t *loop, int tmo) {
  if (tmo < 0) return; /* nothing to wake up for: an armed timeout may still expire, a wake-up for nothing */
  uint64_t dl_ms = uv_now(loop) + (uint64_t)tmo; /* the loop's clock: no clock read on the way to a wait */
  if (u->timeout_armed && u->deadline <= dl_ms) return;
  struct io_uring_sqe *s = sqe_get(u);
  if (!s) return;
  uint64_t dl = uv_hrtime() + (uint64_t)tmo * 1000000u;
  u->ts = (struct __kernel_timespec){.tv_sec = (long long)(dl / 1000000000u), .tv_nsec = (long long)(dl % 1000000000u)};
  if (u->timeout_armed) {
    io_uring_prep_timeout_update(s, &u->ts, UR_TIMEOUT, IORING_TIMEOUT_ABS);
    io_uring_sqe_set_data64(s, UR_UPDATE);
  } else {
    io_uring_prep_timeout(s, &u->ts, 0, IORING_TIMEOUT_ABS);
    io_uring_sqe_set_data64(s, UR_TIMEOUT);
    u->timeout_armed = true;
  }
  u->deadline = dl_ms;
}

/* Handles every completion there is; returns true when libuv's descriptor was ready or its timer due. */
static bool reap(cn_uring *u) {
  bool uv_ready = false;
  struct io_uring_cqe *q;
  while (io_uring_peek_cqe(&u->ring, &q) == 0) {
    uint64_t d = io_uring_cqe_get_data64(q);
    int res = q->res;
    io_uring_cqe_seen(&u->ring, q);
    if (d == UR_BACKEND || d == UR_TIMEOUT) {
      if (d == UR_BACKEND) u->backend_armed = false;
      else u->timeout_armed = false;
      uv_ready = true;
    } else if (d != UR_UPDATE) {
      u->inflight--;
      if (d != UR_CANCEL) read_done((cn_conn *)(uintptr_t)d, res);
    }
  }
  return uv_ready;
}

int uring_run(cn_node *n, uv_loop_t *loop) {
  cn_uring *u = n->ur;
  bool uv_due = true;
  for (;;) {
    if (loop->stop_flag) { /* uv_stop: return as uv_run does */
      loop->stop_flag = 0;
      break;
    }
    if (uv_due) {
      uv_run(loop, UV_RUN_NOWAIT);
      uv_due = false;
    }
    /* What the reads and libuv's callbacks made: processes run, output flushed before the wait. */
    node_turn(n);
    if (!uv_loop_alive(loop) && !u->inflight) break;
    int tmo = uv_backend_timeout(loop);
    if (!u->backend_armed) {
      struct io_uring_sqe *s = sqe_get(u);
      if (s) {
        io_uring_prep_poll_add(s, uv_backend_fd(loop), POLLIN);
        io_uring_sqe_set_data64(s, UR_BACKEND);
        u->backend_armed = true;
      }
    }
    if (tmo == 0 || !u->backend_armed) {
      io_uring_submit_and_get_events(&u->ring);
      uv_due = true;
    } else {
      /* After a turn that took in several small messages, the CPU goes to whoever else can run before this thread
       * sleeps, as a BEAM scheduler yields before it sleeps: a peer on this CPU that is still sending goes on, and
       * what it sends next is read in one turn rather than with a wake-up for each of its writes. Measured with
       * everything on one CPU: gen_server calls from 120 BEAM processes 1.55x the calls a second, a stream of 64-byte
       * messages 2x. Not after a single message (a round trip: the answer is out, the next message comes when it
       * comes, and the peer would pay a switch more), nor after YIELD_BYTES or more (a stream of large messages
       * fills the socket while this thread stands aside, and the sender waits on a busy port: 64 KiB messages
       * went 10% slower). */
      if (u->yield && n->stats.messages_in - u->msgs > 1 && n->stats.bytes_in - u->bytes < YIELD_BYTES) sched_yield();
      deadline_set(u, loop, tmo);
      io_uring_submit_and_wait(&u->ring, 1);
      u->msgs = n->stats.messages_in;
      u->bytes = n->stats.bytes_in;
    }
    uv_update_time(loop);
    if (reap(u)) uv_due = true;
  }
  return 0;
}
