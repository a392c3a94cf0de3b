/* watchdog_int.h: the watchdog's pure rule (watchdog.c): down after one failed check, up again after clear_after
 * passing checks in a row (a failure in between starts the count again). */
#ifndef CN_WATCHDOG_INT_H
#define CN_WATCHDOG_INT_H

#include "cn_watchdog.h"

typedef struct watch_rule {
  bool down;
  unsigned passes, clear_after;
} watch_rule;
typedef enum watch_change { WATCH_SAME = 0, WATCH_SET, WATCH_CLEAR } watch_change;

/* One check's result: WATCH_SET when it sets the alarm, WATCH_CLEAR when it clears it. */
watch_change watch_rule_feed(watch_rule *r, bool ok);

#endif
