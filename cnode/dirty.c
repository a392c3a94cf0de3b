/* dirty.c: the dirty pool. Threads that run what dirty processes compute (their handlers, call and timer
 * callbacks, terminate) and dirty jobs, so the loop keeps serving ticks, handshakes and other processes; and the
 * lending by which such a thread borrows the node from its loop for the length of one API call. */
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include "node_int.h"

_Thread_local cn_node *dirty_tls_node;
_Thread_local unsigned dirty_tls_held;

typedef enum { DI_MSG, DI_CB, DI_TERM, DI_JOB } dirty_kind;

struct dirty_item {
  struct dirty_item *next;
  dirty_kind kind;
  cn_proc *p;     /* DI_JOB: NULL */
  cn_term *term;  /* DI_MSG: the message; DI_CB: the result; DI_TERM: the reason; DI_JOB: the result */
  cn_reply_fn cb; /* DI_CB */
  cn_after_fn after;
  void *ctx; /* DI_CB, DI_JOB: its argument */
  int status;
  cn_job_fn job; /* DI_JOB: the function, the pid it answers and its reference */
  cn_pid owner;
  cn_ref ref;
};

/* A send a pool thread queued for the loop (the thread goes on at once). */
typedef struct dirty_op {
  struct dirty_op *next;
  bool reply;    /* cn_gen_reply(from, dest = From, msg = Reply), else cn_send_opts(from, dest, msg, opts) */
  bool has_from; /* sent by a process (found again by pid on the loop), else by the node */
  cn_pid from;
  cn_term *dest, *msg;
  unsigned opts;
} dirty_op;

typedef struct dirty_pool {
  cn_node *n;
  pthread_t *threads;
  unsigned nthreads;
  pthread_mutex_t mu;
  pthread_cond_t work_cv; /* pool threads wait here for items */
  pthread_cond_t lend_cv; /* the lending handshake */
  dirty_item *q_head, **q_tail;
  dirty_item *done_head, **done_tail;
  dirty_op *ops_head, **ops_tail; /* in the order the threads queued them */
  size_t outstanding;             /* items handed to the pool and not yet finished by the loop */
  unsigned lend_waiting;
  bool lend_offered, lend_back;
  bool quit;
  uv_async_t async;
  bool closing;
} dirty_pool;

/* ---- Lending the node -------------------------------------------------------------------------------------- */

/* A pool thread asks; the loop, in on_async, offers the node to one waiter at a time and waits until it comes back.
 * Between the two the loop thread is parked inside a callback: the borrower is the only thread in the node. */
void dirty_hold(const cn_node *n) {
  dirty_pool *d = n->pool;
  pthread_mutex_lock(&d->mu);
  d->lend_waiting++;
  uv_async_send(&d->async);
  while (!d->lend_offered) pthread_cond_wait(&d->lend_cv, &d->mu);
  d->lend_offered = false;
  d->lend_waiting--;
  pthread_mutex_unlock(&d->mu);
  dirty_tls_held = 1;
}

void dirty_release(const cn_node *n) {
  dirty_pool *d = n->pool;
  dirty_tls_held = 0;
  pthread_mutex_lock(&d->mu);
  d->lend_back = true;
  pthread_cond_broadcast(&d->lend_cv);
  pthread_mutex_unlock(&d->mu);
}

void cn_node_lock(cn_node *n) {
  if (dirty_tls_node != n) return;
  if (!dirty_tls_held) dirty_hold(n);
  else dirty_tls_held++;
}

void cn_node_unlock(cn_node *n) {
  if (dirty_tls_node != n || !dirty_tls_held) return;
  if (dirty_tls_held == 1) dirty_release(n);
  else dirty_tls_held--;
}

/* ---- Sends, queued ------------------------------------------------------------------------------------------ */

/* The sends of a pool thread do not wait for the loop: they are queued, in order, and made by the loop before it
 * looks at anything that thread did later (a borrowed call, the end of its handler). */
int dirty_post_send(cn_node *n, cn_proc *from, const cn_term *dest, const cn_term *msg, unsigned opts, bool reply) {
  dirty_pool *d = n->pool;
  dirty_op *op = cn_calloc(1, sizeof *op);
  if (!op || !(op->dest = cn_term_copy(dest)) || !(op->msg = cn_term_copy(msg))) {
    if (op) cn_term_free(op->dest);
    cn_free(op);
    return CN_ENOMEM;
  }
  op->reply = reply;
  op->opts = opts;
  if (from) {
    op->has_from = true;
    op->from = from->pid;
  }
  pthread_mutex_lock(&d->mu);
  *d->ops_tail = op;
  d->ops_tail = &op->next;
  uv_async_send(&d->async);
  pthread_mutex_unlock(&d->mu);
  return 0;
}

static void op_free(dirty_op *op) {
  cn_term_free(op->dest);
  cn_term_free(op->msg);
  cn_free(op);
}

/* On the loop: makes the queued sends (taken, in order). A process that has ended meanwhile sends nothing. */
static void run_ops(cn_node *n, dirty_op *op) {
  while (op) {
    dirty_op *next = op->next;
    cn_proc *p = op->has_from ? proc_lookup(n, op->from) : NULL;
    if (!n->stopping && (p || !op->has_from)) {
      if (op->reply) cn_gen_reply(p, op->dest, op->msg);
      else cn_send_opts(n, p, op->dest, op->msg, op->opts);
    }
    op_free(op);
    op = next;
  }
}

/* Takes the queued sends (called with d->mu held). */
static dirty_op *take_ops(dirty_pool *d) {
  dirty_op *op = d->ops_head;
  d->ops_head = NULL;
  d->ops_tail = &d->ops_head;
  return op;
}

/* ---- Pool threads --------------------------------------------------------------------------------------- */

static void run_item(cn_node *n, dirty_item *it) {
  cn_proc *p = it->p;
  switch (it->kind) {
  case DI_MSG: p->handler(p, it->term, p->state); break;
  case DI_CB:
    if (it->after) it->after(p, it->status, it->ctx);
    else it->cb(p, it->status, it->term, it->ctx);
    break;
  case DI_TERM: p->terminate(p, it->term, p->state); break;
  case DI_JOB:
    cn_term_free(it->term);
    it->term = it->job(n, it->ctx);
    break;
  }
}

static void *pool_main(void *arg) {
  dirty_pool *d = arg;
  dirty_tls_node = d->n;
  /* Marked CPU-bound (Linux's SCHED_BATCH): the loop thread, waking for a tick or a message, is not kept waiting
   * behind a computation sharing its CPU. */
  struct sched_param sp = {0};
  pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
  pthread_mutex_lock(&d->mu);
  for (;;) {
    while (!d->q_head && !d->quit) pthread_cond_wait(&d->work_cv, &d->mu);
    if (!d->q_head) break;
    dirty_item *it = d->q_head;
    if (!(d->q_head = it->next)) d->q_tail = &d->q_head;
    pthread_mutex_unlock(&d->mu);
    run_item(d->n, it);
    if (dirty_tls_held) { /* a cn_node_lock without its unlock: given back, or the loop would wait forever */
      dirty_tls_held = 0;
      dirty_release(d->n);
    }
    pthread_mutex_lock(&d->mu);
    it->next = NULL;
    *d->done_tail = it;
    d->done_tail = &it->next;
    uv_async_send(&d->async);
  }
  pthread_mutex_unlock(&d->mu);
  return NULL;
}

/* Hands it to the pool (on the loop thread, or with the node held). */
static void submit(dirty_pool *d, dirty_item *it) {
  if (it->p) it->p->dirty_busy = true;
  if (d->outstanding++ == 0) uv_ref((uv_handle_t *)&d->async);
  it->next = NULL;
  pthread_mutex_lock(&d->mu);
  *d->q_tail = it;
  d->q_tail = &it->next;
  pthread_cond_signal(&d->work_cv);
  pthread_mutex_unlock(&d->mu);
}

static void item_free(dirty_item *it) {
  cn_term_free(it->term);
  cn_free(it);
}

/* ---- The loop's side -------------------------------------------------------------------------------------- */

static void finish_job(cn_node *n, dirty_item *it) {
  cn_proc *p = n->stopping ? NULL : proc_lookup(n, it->owner);
  if (p && !p->dead) {
    cn_term *msg = cn_mk_tuple(2, cn_mk_ref(it->ref), it->term ? it->term : cn_mk_atomc(n, "error"));
    it->term = NULL;
    if (proc_deliver(p, msg)) cn_log(n, CN_LOG_WARN, "dirty job result dropped: %s", cn_strerror(CN_ENOMEM));
  }
  item_free(it);
}

static void on_close(uv_handle_t *h) { (void)h; }

static void on_async(uv_async_t *h) {
  dirty_pool *d = h->data;
  cn_node *n = d->n;
  pthread_mutex_lock(&d->mu);
  while (d->lend_waiting) {
    /* What a borrower queued before asking goes first. */
    dirty_op *ops = take_ops(d);
    if (ops) {
      pthread_mutex_unlock(&d->mu);
      run_ops(n, ops);
      pthread_mutex_lock(&d->mu);
      continue;
    }
    d->lend_offered = true;
    pthread_cond_broadcast(&d->lend_cv);
    while (!d->lend_back) pthread_cond_wait(&d->lend_cv, &d->mu);
    d->lend_back = false;
  }
  /* Both lists at once: every item that is done comes after the sends its thread queued before. */
  dirty_op *ops = take_ops(d);
  dirty_item *it = d->done_head;
  d->done_head = NULL;
  d->done_tail = &d->done_head;
  pthread_mutex_unlock(&d->mu);
  run_ops(n, ops);
  while (it) {
    dirty_item *next = it->next;
    d->outstanding--;
    if (it->kind == DI_JOB) {
      finish_job(n, it);
    } else {
      cn_proc *p = it->p;
      item_free(it);
      p->dirty_busy = false;
      if (n->stopping && !p->dead && !p->exit_reason) p->exit_reason = cn_mk_atomc(n, "shutdown");
      dirty_pump(p);
    }
    it = next;
  }
  if (!d->outstanding) {
    uv_unref((uv_handle_t *)&d->async);
    if (n->stopping && !d->closing) {
      d->closing = true;
      uv_close((uv_handle_t *)&d->async, on_close);
    }
  }
}

static unsigned default_threads(void) {
  long c = sysconf(_SC_NPROCESSORS_ONLN);
  return c < 1 ? 1 : c > 256 ? 256 : (unsigned)c;
}

static int pool_get(cn_node *n, dirty_pool **out) {
  if ((*out = n->pool)) return n->pool->nthreads ? 0 : CN_EIO;
  if (n->stopping) return CN_ESTATE;
  dirty_pool *d = cn_calloc(1, sizeof *d);
  unsigned want = n->dirty_threads ? n->dirty_threads : default_threads();
  if (!d || !(d->threads = cn_calloc(want, sizeof *d->threads))) {
    cn_free(d);
    return CN_ENOMEM;
  }
  d->n = n;
  d->q_tail = &d->q_head;
  d->done_tail = &d->done_head;
  d->ops_tail = &d->ops_head;
  pthread_mutex_init(&d->mu, NULL);
  pthread_cond_init(&d->work_cv, NULL);
  pthread_cond_init(&d->lend_cv, NULL);
  uv_async_init(n->loop, &d->async, on_async);
  d->async.data = d;
  uv_unref((uv_handle_t *)&d->async);
  n->pool = d;
  for (unsigned i = 0; i < want; i++) {
    if (pthread_create(&d->threads[i], NULL, pool_main, d)) break;
    d->nthreads++;
  }
  if (!d->nthreads) return CN_EIO; /* the pool stays, empty: dirty_free takes it down */
  if (d->nthreads < want) cn_log(n, CN_LOG_WARN, "dirty pool: %u of %u threads started", d->nthreads, want);
  *out = d;
  return 0;
}

int dirty_proc_init(cn_proc *p) {
  dirty_pool *d;
  int rc = pool_get(p->node, &d);
  if (rc) return rc;
  p->dirty = true;
  p->d_tail = &p->d_head;
  return 0;
}

static void defer(cn_proc *p, dirty_item *it) {
  it->p = p;
  it->next = NULL;
  *p->d_tail = it;
  p->d_tail = &it->next;
  if (!p->dirty_busy && !p->node->stopping) node_schedule(p->node, p);
}

void dirty_defer_cb(cn_proc *p, cn_reply_fn cb, cn_after_fn after, void *ctx, int status, const cn_term *result) {
  dirty_item *it = cn_calloc(1, sizeof *it);
  cn_term *copy = result ? cn_term_copy(result) : NULL;
  if (!it || (result && !copy)) {
    /* The callback must run exactly once: with no memory to carry the result, it gets CN_ENOMEM and NULL. */
    cn_term_free(copy);
    cn_free(it);
    it = NULL;
  }
  if (!it) {
    cn_log(p->node, CN_LOG_ERROR, "dirty process: no memory for a callback; it runs on the loop with CN_ENOMEM");
    if (after) after(p, CN_ENOMEM, ctx);
    else cb(p, CN_ENOMEM, NULL, ctx);
    return;
  }
  *it = (dirty_item){.kind = DI_CB, .term = copy, .cb = cb, .after = after, .ctx = ctx, .status = status};
  defer(p, it);
}

void dirty_defer_terminate(cn_proc *p, const cn_term *reason) {
  dirty_item *it = cn_calloc(1, sizeof *it);
  if (!it || !(it->term = cn_term_copy(reason))) {
    cn_free(it);
    cn_log(p->node, CN_LOG_ERROR, "dirty process: no memory to move terminate to the pool; it runs on the loop");
    p->terminate(p, reason, p->state);
    return;
  }
  it->kind = DI_TERM;
  defer(p, it);
}

void dirty_pump(cn_proc *p) {
  cn_node *n = p->node;
  dirty_pool *d = n->pool;
  while (!p->dirty_busy) {
    dirty_item *it = p->d_head;
    if (it) {
      if (!(p->d_head = it->next)) p->d_tail = &p->d_head;
      submit(d, it);
      return;
    }
    if (p->dead) {
      if (!p->in_runq) proc_free(p);
      return;
    }
    if (p->exit_reason) {
      proc_die(p, p->exit_reason);
      continue;
    }
    if (p->suspended || !p->mq_head) return;
    cn_msg *m = p->mq_head;
    p->mq_head = m->next;
    if (!p->mq_head) p->mq_tail = &p->mq_head;
    if (p->mq_prio_tail == &m->next) p->mq_prio_tail = &p->mq_head;
    p->mq_len--;
    if (p->calls && call_intercept(p, m->term)) { /* its callback is now queued in d_head */
      cn_term_free(m->term);
      cn_free(m);
      continue;
    }
    it = cn_calloc(1, sizeof *it);
    if (!it) {
      cn_log(n, CN_LOG_ERROR, "dirty process: message dropped: %s", cn_strerror(CN_ENOMEM));
      cn_term_free(m->term);
      cn_free(m);
      continue;
    }
    it->kind = DI_MSG;
    it->p = p;
    it->term = m->term;
    cn_free(m);
    submit(d, it);
  }
}

void dirty_node_stopping(cn_node *n) {
  dirty_pool *d = n->pool;
  if (d && !d->outstanding && !d->closing) {
    d->closing = true;
    uv_close((uv_handle_t *)&d->async, on_close);
  }
}

void dirty_free(cn_node *n) {
  dirty_pool *d = n->pool;
  if (!d) return;
  pthread_mutex_lock(&d->mu);
  d->quit = true;
  pthread_cond_broadcast(&d->work_cv);
  pthread_mutex_unlock(&d->mu);
  for (unsigned i = 0; i < d->nthreads; i++) pthread_join(d->threads[i], NULL);
  /* What was never run (the loop ended early): its processes are freed with the node. */
  for (dirty_item *it = d->q_head, *next; it; it = next) {
    next = it->next;
    item_free(it);
  }
  for (dirty_item *it = d->done_head, *next; it; it = next) {
    next = it->next;
    item_free(it);
  }
  for (dirty_op *op = d->ops_head, *next; op; op = next) {
    next = op->next;
    op_free(op);
  }
  pthread_mutex_destroy(&d->mu);
  pthread_cond_destroy(&d->work_cv);
  pthread_cond_destroy(&d->lend_cv);
  cn_free(d->threads);
  cn_free(d);
  n->pool = NULL;
}

/* ---- Jobs ----------------------------------------------------------------------------------------------------- */

int cn_dirty_job(cn_proc *self, cn_job_fn fn, void *arg, cn_ref *ref) {
  if (!self || !fn) return CN_EINVAL;
  cn_node *n = self->node;
  DIRTY_GUARD(n, int, cn_dirty_job(self, fn, arg, ref));
  if (self->dead || n->stopping) return CN_ESTATE;
  dirty_pool *d;
  int rc = pool_get(n, &d);
  if (rc) return rc;
  dirty_item *it = cn_calloc(1, sizeof *it);
  if (!it) return CN_ENOMEM;
  *it = (dirty_item){.kind = DI_JOB, .job = fn, .ctx = arg, .owner = self->pid, .ref = node_make_ref(n)};
  if (ref) *ref = it->ref;
  submit(d, it);
  return 0;
}

unsigned cn_node_dirty_threads(cn_node *n) {
  DIRTY_GUARD(n, unsigned, cn_node_dirty_threads(n));
  return n->pool ? n->pool->nthreads : n->dirty_threads ? n->dirty_threads : default_threads();
}
