/* compute.c: cnode_burn, a dirty gen_server for demonstrations, tests and benchmarks: {burn, Ms} computes for Ms
 * milliseconds on its dirty thread and replies {burned, Ms}; {burn_job, Ms} hands the same work to a dirty job and
 * replies when the job's result comes back, so several run at once; {echo, T} replies T (the cost of a dirty call).
 * The node's loop keeps serving meanwhile. Also the program's sorted_set. */
#include <time.h>

#include "cn_sorted_set.h"
#include "compute.h"

#define MAX_MS 3600000

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Real work, not a sleep: a dirty handler holds its CPU like a NIF that computes, for at least ms (the clock read
 * in nanoseconds, so a burn never ends early by a truncated millisecond). */
static void burn(long ms) {
  int64_t end = mono_ns() + (int64_t)ms * 1000000;
  volatile uint64_t x = 88172645463325252ull;
  while (mono_ns() < end)
    for (int i = 0; i < 4096; i++) x ^= x << 13, x ^= x >> 7, x ^= x << 17;
}

static cn_term *burned(cn_node *n, int64_t ms) { return cn_mk_tuple(2, cn_mk_atomc(n, "burned"), cn_mk_int(ms)); }

static cn_term *job_burn(cn_node *n, void *arg) {
  burn((long)(intptr_t)arg);
  return burned(n, (intptr_t)arg);
}

/* A {burn_job, Ms} call waiting for its job: the caller's From, by the job's reference. */
typedef struct waiting {
  struct waiting *next;
  cn_ref ref;
  cn_term *from;
} waiting;

static cn_term *burn_call(cn_proc *self, const cn_term *req, const cn_term *from, void *state) {
  cn_node *n = cn_proc_node(self);
  const cn_term *tag = cn_tuple_elem(req, 2, 0), *arg = cn_tuple_elem(req, 2, 1);
  if (tag && cn_is_atom(tag, "echo")) return cn_term_copy(arg);
  if (!tag || (!cn_is_atom(tag, "burn") && !cn_is_atom(tag, "burn_job")) || arg->type != CN_INT || arg->v.i < 0 ||
      arg->v.i > MAX_MS)
    return cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, "badarg"));
  if (cn_is_atom(tag, "burn")) {
    burn((long)arg->v.i);
    return burned(n, arg->v.i);
  }
  waiting *w = cn_calloc(1, sizeof *w);
  int rc = !w || !(w->from = cn_term_copy(from)) ? CN_ENOMEM
                                                 : cn_dirty_job(self, job_burn, (void *)(intptr_t)arg->v.i, &w->ref);
  if (rc) {
    if (w) cn_term_free(w->from);
    cn_free(w);
    return cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, cn_err_reason(rc)));
  }
  waiting **head = state;
  w->next = *head;
  *head = w;
  return NULL; /* replied when the job's {Ref, Result} arrives */
}

static void burn_info(cn_proc *self, const cn_term *msg, void *state) {
  const cn_term *ref = cn_tuple_elem(msg, 2, 0);
  if (!ref || ref->type != CN_REF) return;
  for (waiting **w = state; *w; w = &(*w)->next) {
    cn_term mine = cn_tv_ref((*w)->ref);
    if (!cn_term_exact_eq(ref, &mine)) continue;
    waiting *x = *w;
    *w = x->next;
    cn_gen_reply(self, x->from, cn_tuple_elem(msg, 2, 1));
    cn_term_free(x->from);
    cn_free(x);
    return;
  }
}

static void burn_terminate(cn_proc *self, const cn_term *reason, void *state) {
  (void)self, (void)reason;
  waiting **head = state;
  while (*head) {
    waiting *x = *head;
    *head = x->next;
    cn_term_free(x->from);
    cn_free(x);
  }
  cn_free(head);
}

static const cn_gen_server_ops burn_ops = {
    .handle_call = burn_call, .handle_info = burn_info, .terminate = burn_terminate, .dirty = true};

int compute_start(cn_node *n) {
  waiting **head = cn_calloc(1, sizeof *head);
  if (!head) return CN_ENOMEM;
  int rc = cn_gen_server_start(n, "cnode_burn", &burn_ops, head, NULL);
  if (rc) cn_free(head);
  return rc ? rc : cn_sorted_set_start(n, "sorted_set", NULL);
}
