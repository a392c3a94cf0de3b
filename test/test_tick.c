/* test_tick.c: the net_ticktime policy on timelines: ticks when idle, none while writing, timeout after
 * four silent intervals, none while receiving, early or backwards timer calls ignored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dist.h"

#define TT 60000u /* the OTP default net_ticktime, in ms */
#define IV (TT / 4)

/* Fires at the k-th interval after t0, reporting the tick as sent when one is asked for (as the glue does). */
static dist_tick_action fire_at(dist_tick *t, uint64_t t0, unsigned k) {
  dist_tick_action a = dist_tick_fire(t, t0 + (uint64_t)k * IV);
  if (a == DIST_TICK_SEND) dist_tick_sent(t);
  return a;
}

static void test_interval(void **state) {
  (void)state;
  dist_tick t;
  dist_tick_init(&t, TT, 0);
  assert_int_equal(dist_tick_interval_ms(&t), 15000);
  dist_tick_init(&t, 3, 0);
  assert_int_equal(dist_tick_interval_ms(&t), 1); /* never a zero-period timer */
}

static void test_idle_peer_alive(void **state) {
  (void)state;
  dist_tick t;
  const uint64_t t0 = 1000000;
  dist_tick_init(&t, TT, t0);
  /* Both sides idle: the peer's ticks arrive, we tick every interval and never time out. */
  for (unsigned k = 1; k <= 100; k++) {
    dist_tick_recv(&t);
    assert_int_equal(fire_at(&t, t0, k), DIST_TICK_SEND);
  }
}

static void test_timeout_after_four_silent(void **state) {
  (void)state;
  dist_tick t;
  dist_tick_init(&t, TT, 0);
  assert_int_equal(fire_at(&t, 0, 1), DIST_TICK_SEND);
  assert_int_equal(fire_at(&t, 0, 2), DIST_TICK_SEND);
  assert_int_equal(fire_at(&t, 0, 3), DIST_TICK_SEND);
  assert_int_equal(fire_at(&t, 0, 4), DIST_TICK_TIMEOUT);
  /* After data: three more silent intervals are fine, the fourth is not. */
  dist_tick_init(&t, TT, 0);
  dist_tick_recv(&t);
  assert_int_equal(fire_at(&t, 0, 1), DIST_TICK_SEND);
  for (unsigned k = 2; k <= 4; k++) assert_int_equal(fire_at(&t, 0, k), DIST_TICK_SEND);
  assert_int_equal(fire_at(&t, 0, 5), DIST_TICK_TIMEOUT);
  /* A receipt in the third silent interval resets the count. */
  dist_tick_init(&t, TT, 0);
  assert_int_equal(fire_at(&t, 0, 1), DIST_TICK_SEND);
  assert_int_equal(fire_at(&t, 0, 2), DIST_TICK_SEND);
  assert_int_equal(fire_at(&t, 0, 3), DIST_TICK_SEND);
  dist_tick_recv(&t);
  for (unsigned k = 4; k <= 7; k++) assert_int_equal(fire_at(&t, 0, k), DIST_TICK_SEND);
  assert_int_equal(fire_at(&t, 0, 8), DIST_TICK_TIMEOUT);
}

static void test_no_timeout_while_receiving(void **state) {
  (void)state;
  dist_tick t;
  dist_tick_init(&t, TT, 0);
  /* Received every third interval: never four in a row silent. */
  for (unsigned k = 1; k <= 200; k++) {
    if (k % 3 == 0) dist_tick_recv(&t);
    assert_int_not_equal(fire_at(&t, 0, k), DIST_TICK_TIMEOUT);
  }
}

static void test_no_tick_while_writing(void **state) {
  (void)state;
  dist_tick t;
  dist_tick_init(&t, TT, 0);
  for (unsigned k = 1; k <= 20; k++) {
    dist_tick_recv(&t);
    dist_tick_sent(&t);
    dist_tick_sent(&t);
    assert_int_equal(fire_at(&t, 0, k), DIST_TICK_NONE);
  }
  /* Writing stops: the next interval ticks. */
  dist_tick_recv(&t);
  assert_int_equal(fire_at(&t, 0, 21), DIST_TICK_SEND);
  /* One write after a tick still counts as traffic. */
  dist_tick_recv(&t);
  dist_tick_sent(&t);
  assert_int_equal(fire_at(&t, 0, 22), DIST_TICK_NONE);
}

static void test_tick_not_reported(void **state) {
  (void)state;
  /* A caller that does not report its ticks gets one every other interval: still within net_ticktime. */
  dist_tick t;
  dist_tick_init(&t, TT, 0);
  dist_tick_action seen[6];
  for (unsigned k = 1; k <= 6; k++) {
    dist_tick_recv(&t);
    seen[k - 1] = dist_tick_fire(&t, (uint64_t)k * IV);
  }
  assert_int_equal(seen[0], DIST_TICK_SEND);
  assert_int_equal(seen[1], DIST_TICK_NONE);
  assert_int_equal(seen[2], DIST_TICK_SEND);
  assert_int_equal(seen[3], DIST_TICK_NONE);
}

static void test_early_and_backwards_calls(void **state) {
  (void)state;
  dist_tick t;
  dist_tick_init(&t, TT, 5000);
  /* Calls within half an interval of the last one change nothing. */
  for (int i = 0; i < 10; i++) assert_int_equal(dist_tick_fire(&t, 5000 + (uint64_t)i * 100), DIST_TICK_NONE);
  assert_int_equal(dist_tick_fire(&t, 4000), DIST_TICK_NONE); /* clock behind the last fire */
  assert_int_equal(fire_at(&t, 5000, 1), DIST_TICK_SEND);
  for (int i = 0; i < 10; i++) assert_int_equal(dist_tick_fire(&t, 5000 + IV + 1), DIST_TICK_NONE);
  assert_int_equal(fire_at(&t, 5000, 2), DIST_TICK_SEND);
  assert_int_equal(fire_at(&t, 5000, 3), DIST_TICK_SEND);
  /* A late timer (jitter) still counts as one interval. */
  assert_int_equal(dist_tick_fire(&t, 5000 + 4 * IV + 3000), DIST_TICK_TIMEOUT);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_interval),
      cmocka_unit_test(test_idle_peer_alive),
      cmocka_unit_test(test_timeout_after_four_silent),
      cmocka_unit_test(test_no_timeout_while_receiving),
      cmocka_unit_test(test_no_tick_while_writing),
      cmocka_unit_test(test_tick_not_reported),
      cmocka_unit_test(test_early_and_backwards_calls),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
