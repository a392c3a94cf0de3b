/* fuse_sm.c: the pure state machine of a fuse, as jlouis/fuse's fuse_server runs it: melts kept while younger than
 * the window, blown past max_melts of them, healed reset_ms later (or by reset), fault injection's random blown. */
#include <string.h>

#include "fuse_int.h"

int fuse_opts_check(const cn_fuse_opts *o) {
  if (!o || o->max_melts > CN_FUSE_MAX_MELTS) return CN_EINVAL;
  if (o->kind == CN_FUSE_STANDARD) return 0;
  /* fuse: is_float(Rate), 0.0 < Rate =< 1.0, MaxR > 0 (NaN fails both comparisons) */
  if (o->kind == CN_FUSE_FAULT_INJECTION && o->rate > 0.0 && o->rate <= 1.0 && o->max_melts > 0) return 0;
  return CN_EINVAL;
}

int fuse_sm_init(fuse_sm *s, const cn_fuse_opts *o, uint64_t seed) {
  if (fuse_opts_check(o)) return CN_EINVAL;
  size_t want = o->max_melts + 1u < 16 ? o->max_melts + 1u : 16;
  uint64_t *m = cn_malloc(want * sizeof *m);
  if (!m) return CN_ENOMEM;
  cn_free(s->melts);
  memset(s, 0, sizeof *s);
  s->o = *o;
  s->melts = m;
  s->cap = want;
  s->rng = seed;
  return 0;
}

void fuse_sm_free(fuse_sm *s) {
  cn_free(s->melts);
  s->melts = NULL;
}

double fuse_sm_uniform(fuse_sm *s) {
  uint64_t z = (s->rng += 0x9e3779b97f4a7c15u); /* splitmix64 */
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  z ^= z >> 31;
  return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

int fuse_sm_ask(fuse_sm *s) {
  if (s->blown) return CN_EBLOWN;
  if (s->o.kind == CN_FUSE_FAULT_INJECTION && fuse_sm_uniform(s) < s->o.rate) return CN_EBLOWN;
  return 0;
}

/* Room for one more melt: the ring grows (linearised) up to max_melts + 1, else the oldest goes. */
static void push(fuse_sm *s, uint64_t t) {
  if (!s->cap) return; /* no ring: a fuse_sm never set up (or freed) counts no melts */
  size_t limit = (size_t)s->o.max_melts + 1;
  if (s->count == s->cap && s->cap < limit) {
    size_t cap = s->cap * 2 < limit ? s->cap * 2 : limit;
    uint64_t *m = cn_malloc(cap * sizeof *m);
    if (m) {
      for (size_t i = 0; i < s->count; i++) m[i] = s->melts[(s->head + i) % s->cap];
      cn_free(s->melts);
      s->melts = m;
      s->cap = cap;
      s->head = 0;
    }
  }
  if (s->count == s->cap) { /* full (or no memory to grow: the count then stays below what fuse would see) */
    s->head = (s->head + 1) % s->cap;
    s->count--;
  }
  s->melts[(s->head + s->count) % s->cap] = t;
  s->count++;
}

fuse_change fuse_sm_melt(fuse_sm *s, uint64_t now) {
  push(s, now);
  /* fuse's in_period: a melt counts while Now - Time < Period (so with a window of 0 none does) */
  while (s->count) {
    uint64_t t = s->melts[s->head];
    uint64_t age = now >= t ? now - t : 0;
    if (age < s->o.window_ms) break;
    s->head = (s->head + 1) % s->cap;
    s->count--;
  }
  if (s->count <= s->o.max_melts) return FUSE_SAME;
  fuse_change c = s->blown ? FUSE_SAME : FUSE_TO_BLOWN;
  s->blown = true;
  if (!s->healing) { /* fuse's install_timer: the first blow sets the heal, later melts leave it */
    s->healing = true;
    s->heal_at = now + s->o.reset_ms;
  }
  return c;
}

fuse_change fuse_sm_reset(fuse_sm *s) {
  fuse_change c = s->blown ? FUSE_TO_OK : FUSE_SAME;
  s->blown = s->healing = false;
  s->head = s->count = 0;
  return c;
}

fuse_change fuse_sm_tick(fuse_sm *s, uint64_t now) {
  if (!s->healing || now < s->heal_at) return FUSE_SAME;
  return fuse_sm_reset(s);
}
