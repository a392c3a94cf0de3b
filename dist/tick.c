/* tick.c: the net_ticktime policy of a connection: when to send a tick and when the peer counts as gone.
 * Pure: the caller reports traffic and calls dist_tick_fire from a timer every ticktime/4. */
#include "dist.h"

/* OTP's tick intensity: the ticker fires this many times per net_ticktime (kernel's default). */
#define TICK_INTENSITY 4

void dist_tick_init(dist_tick *t, uint32_t ticktime_ms, uint64_t now_ms) {
  *t = (dist_tick){0};
  t->interval_ms = ticktime_ms / TICK_INTENSITY;
  if (t->interval_ms == 0) t->interval_ms = 1; /* a zero timer period would spin the loop */
  t->last_fire_ms = now_ms;
}

void dist_tick_recv(dist_tick *t) { t->recv = true; }

void dist_tick_sent(dist_tick *t) { t->sent++; }

dist_tick_action dist_tick_fire(dist_tick *t, uint64_t now_ms) {
  /* A stray early call (a timer restarted by mistake) must not count as a silent interval: that would
   * time the peer out sooner than net_ticktime promises. */
  if (now_ms < t->last_fire_ms || now_ms - t->last_fire_ms < t->interval_ms / 2) return DIST_TICK_NONE;
  t->last_fire_ms = now_ms;
  if (t->recv) {
    t->recv = false;
    t->silent = 0;
  } else if (++t->silent >= TICK_INTENSITY) {
    /* OTP's send_tick: nothing read during the last TickIntensity firings means "not responding". */
    return DIST_TICK_TIMEOUT;
  }
  if (t->sent == t->sent_seen) {
    /* Nothing written since the last fire: tick. Expect the tick's own dist_tick_sent, so it does not hide
     * the next idle interval (OTP adds one to its write count for the same reason). */
    t->sent_seen = t->sent + 1;
    return DIST_TICK_SEND;
  }
  t->sent_seen = t->sent;
  return DIST_TICK_NONE;
}

uint32_t dist_tick_interval_ms(const dist_tick *t) { return t->interval_ms; }
