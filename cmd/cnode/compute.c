/* compute.c: cnode_burn, a dirty gen_server: {burn, Ms} computes for Ms milliseconds on a dirty thread and replies
 * {burned, Ms}, while the node's loop keeps serving; and the program's sorted_set. */
#include <time.h>

#include "cn_sorted_set.h"
#include "compute.h"

static long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Real work, not a sleep: a dirty handler holds its CPU like a NIF that computes. */
static cn_term *burn_call(cn_proc *self, const cn_term *req, const cn_term *from, void *state) {
  (void)from, (void)state;
  cn_node *n = cn_proc_node(self);
  const cn_term *tag = cn_tuple_elem(req, 2, 0), *ms = cn_tuple_elem(req, 2, 1);
  if (!tag || !cn_is_atom(tag, "burn") || ms->type != CN_INT || ms->v.i < 0 || ms->v.i > 3600000)
    return cn_mk_tuple(2, cn_mk_atomc(n, "error"), cn_mk_atomc(n, "badarg"));
  long end = mono_ms() + (long)ms->v.i;
  volatile uint64_t x = 88172645463325252ull;
  while (mono_ms() < end)
    for (int i = 0; i < 4096; i++) x ^= x << 13, x ^= x >> 7, x ^= x << 17;
  return cn_mk_tuple(2, cn_mk_atomc(n, "burned"), cn_mk_int(ms->v.i));
}

static const cn_gen_server_ops burn_ops = {.handle_call = burn_call, .dirty = true};

int compute_start(cn_node *n) {
  int rc = cn_gen_server_start(n, "cnode_burn", &burn_ops, NULL, NULL);
  return rc ? rc : cn_sorted_set_start(n, "sorted_set", NULL);
}
