/* fuse_int.h: the fuse's pure state machine (fuse_sm.c): melts in a window, blow, heal deadline, fault injection's
 * draw from a seeded generator. No clock inside: every call that needs the time takes now_ms. */
#ifndef CN_FUSE_INT_H
#define CN_FUSE_INT_H

#include "cn_fuse.h"

typedef struct fuse_sm {
  cn_fuse_opts o;
  uint64_t *melts; /* ring of the last melts' times, oldest first from head */
  size_t head, count, cap;
  bool blown;
  bool healing; /* a heal is due at heal_at (fuse's timer_ref) */
  uint64_t heal_at;
  uint64_t rng; /* splitmix64 state */
} fuse_sm;

/* What a step changed. */
typedef enum fuse_change { FUSE_SAME = 0, FUSE_TO_BLOWN, FUSE_TO_OK } fuse_change;

/* Checks o as fuse:install/2 does: 0 or CN_EINVAL. */
int fuse_opts_check(const cn_fuse_opts *o);
/* Sets up (or, installed again, resets) s with o and a seed: 0, CN_EINVAL, CN_ENOMEM (s unchanged then). */
int fuse_sm_init(fuse_sm *s, const cn_fuse_opts *o, uint64_t seed);
void fuse_sm_free(fuse_sm *s);
/* 0 or CN_EBLOWN (fault injection draws here). */
int fuse_sm_ask(fuse_sm *s);
/* A melt at now_ms: FUSE_TO_BLOWN when this one blew it (its heal is then due at heal_at). */
fuse_change fuse_sm_melt(fuse_sm *s, uint64_t now_ms);
/* Time passes: FUSE_TO_OK when the heal was due (melts forgotten). */
fuse_change fuse_sm_tick(fuse_sm *s, uint64_t now_ms);
/* fuse:reset/1: ok, no melts, no heal due. FUSE_TO_OK when it was blown. */
fuse_change fuse_sm_reset(fuse_sm *s);
/* A uniform double in [0, 1) from the generator (fault injection's draw). */
double fuse_sm_uniform(fuse_sm *s);

#endif
