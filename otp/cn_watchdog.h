/* cn_watchdog.h: a watchdog over one dependency, as the seed's Jenga.Database.Watchdog: every interval it checks the
 * dependency (a TCP connect to host:port, non-blocking on the node's loop, or a check of the user's), sets the alarm
 * {{dependency_down, Name}, Desc} (cn_alarm.h) after a failed check and clears it after clear_after passing checks
 * in a row. A watchdog is a process of the node: it ends with the node or with cn_watch_stop. Loop thread only. */
#ifndef CN_WATCHDOG_H
#define CN_WATCHDOG_H

#include "cnode.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cn_watch cn_watch;
/* A user check: runs each interval; reports the result with cn_watch_report(w, ok), at once or later from the loop,
 * before the next interval's check (a check still unreported then counts as failed). */
typedef void (*cn_watch_check_fn)(cn_watch *w, void *ctx);

typedef struct cn_watch_opts {
  const char *name;        /* the dependency's name, the alarm's {dependency_down, Name} (an atom's text; copied) */
  const char *host;        /* the TCP check's host (a name or a numeric address; copied), when check is NULL */
  uint16_t port;           /* and port */
  cn_watch_check_fn check; /* NULL: the TCP check */
  void *ctx;               /* check's */
  unsigned interval_ms;    /* 0: 1000 */
  unsigned clear_after;    /* passing checks in a row that clear the alarm; 0: 3 */
} cn_watch_opts;

/* Starts a watchdog (its first check at once). *out (may be NULL) is valid until cn_watch_stop or the node's end.
 * CN_EINVAL (no name, no host/port and no check), CN_ENOMEM. */
CN_EXPORT int cn_watch_start(cn_node *n, const cn_watch_opts *o, cn_watch **out);
/* The user check's result; ignored when no check is waiting for one. */
CN_EXPORT void cn_watch_report(cn_watch *w, bool ok);
/* True while the alarm is set. */
CN_EXPORT bool cn_watch_down(const cn_watch *w);
/* Stops the watchdog (its alarm is cleared); w is freed. */
CN_EXPORT void cn_watch_stop(cn_watch *w);

#ifdef __cplusplus
}
#endif
#endif
