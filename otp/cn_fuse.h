/* cn_fuse.h: circuit breakers with jlouis/fuse's semantics, per node. A fuse is installed under a name with a
 * strategy and a reset time; ask says ok or blown (no wire traffic, a table lookup); melts within the window blow
 * it; it heals reset_ms after blowing. Calls through cn_fuse_guard (cn_call_guarded, cn_rpc_guarded,
 * cn_erpc_guarded of cnode.h) fail at once with CN_EBLOWN while it is blown, and melt it when they fail (timeout,
 * noconnection, noproc). A blown fuse raises the alarm {{fuse_blown, Name}, Name} (cn_alarm.h) until it heals.
 * Everything here runs on the node's loop thread; a dirty process calls it between cn_node_lock and cn_node_unlock
 * (the guard's own checks in a dirty process's guarded calls take the node by themselves). */
#ifndef CN_FUSE_H
#define CN_FUSE_H

#include "cnode.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cn_fuse_kind {
  CN_FUSE_STANDARD = 0,    /* {standard, MaxMelts, Window_ms} */
  CN_FUSE_FAULT_INJECTION, /* {fault_injection, Rate, MaxMelts, Window_ms}: also answers blown at random (Rate) */
} cn_fuse_kind;

/* fuse's options {Strategy, {reset, Ms}}. It blows when more than max_melts melts fall within window_ms (a melt
 * older than window_ms counts no more; a window of 0 never blows, as fuse). */
typedef struct cn_fuse_opts {
  cn_fuse_kind kind;
  double rate;        /* fault_injection: 0 < rate <= 1, the chance that ask says blown while the fuse is ok */
  uint32_t max_melts; /* standard: 0 or more; fault_injection: 1 or more; at most CN_FUSE_MAX_MELTS */
  uint64_t window_ms; /* the window melts are counted in */
  uint64_t reset_ms;  /* how long after blowing it heals */
} cn_fuse_opts;
enum { CN_FUSE_MAX_MELTS = 1000000 };

/* Reads fuse's option term {{standard, MaxMelts, Window}, {reset, Ms}} or {{fault_injection, Rate, MaxMelts,
 * Window}, {reset, Ms}} (t borrowed): 0, or CN_EINVAL for any other shape or a value fuse:install/2 refuses. */
CN_EXPORT int cn_fuse_parse(const cn_term *t, cn_fuse_opts *out);

/* Installs name (copied) with o (copied): a new fuse is ok with no melts; installing an installed name again
 * resets it under the new options, as fuse does. CN_EINVAL for options fuse refuses, CN_ENOMEM. */
CN_EXPORT int cn_fuse_install(cn_node *n, const char *name, const cn_fuse_opts *o);
/* 0 when ok, CN_EBLOWN when blown (or, under fault_injection, by chance), CN_ENOTFOUND when not installed. */
CN_EXPORT int cn_fuse_ask(cn_node *n, const char *name);
/* Melts the fuse once (now): 0, or CN_ENOTFOUND. */
CN_EXPORT int cn_fuse_melt(cn_node *n, const char *name);
/* Heals the fuse now and forgets its melts: 0, or CN_ENOTFOUND. */
CN_EXPORT int cn_fuse_reset(cn_node *n, const char *name);
/* Removes the fuse (its alarm is cleared): 0, or CN_ENOTFOUND. Calls in flight through it finish unguarded. */
CN_EXPORT int cn_fuse_remove(cn_node *n, const char *name);

/* What a state-change callback is told. */
typedef enum cn_fuse_event { CN_FUSE_BLOWN = 1, CN_FUSE_HEALED, CN_FUSE_REMOVED } cn_fuse_event;
/* Called on every change of any fuse of the node (name borrowed for the call). */
typedef void (*cn_fuse_fn)(cn_node *n, const char *name, cn_fuse_event ev, void *ctx);
/* Adds a state-change callback (at most 8 per node): 0, CN_ELIMIT, CN_ENOMEM. */
CN_EXPORT int cn_fuse_monitor(cn_node *n, cn_fuse_fn fn, void *ctx);

/* The guard of name for cn_call_guarded / cn_rpc_guarded / cn_erpc_guarded (NULL when not installed): valid while
 * the fuse is installed; a call admitted through it may outlive a cn_fuse_remove. */
CN_EXPORT const cn_call_guard *cn_fuse_guard(cn_node *n, const char *name);
/* True when a call's outcome melts a fuse: a timeout, or an exit (or erpc error, or {badrpc, ...} value) that says
 * timeout, noconnection/nodedown or noproc. */
CN_EXPORT bool cn_fuse_call_failed(int status, const cn_term *reply);

#ifdef __cplusplus
}
#endif
#endif
