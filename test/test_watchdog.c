/* test_watchdog.c: the watchdog's rule, the seed's state machine: one failed check sets the alarm, three passing
 * checks in a row clear it, a failure in between starts the count again; another clear_after; bad options. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "cn_watchdog.h"
#include "watchdog_int.h"

static void test_three_passes(void **st) {
  (void)st;
  watch_rule r = {.clear_after = 3};
  assert_int_equal(watch_rule_feed(&r, true), WATCH_SAME); /* up and passing: nothing */
  assert_int_equal(watch_rule_feed(&r, false), WATCH_SET);
  assert_true(r.down);
  assert_int_equal(watch_rule_feed(&r, false), WATCH_SAME); /* still down: set once */
  assert_int_equal(watch_rule_feed(&r, true), WATCH_SAME);
  assert_int_equal(watch_rule_feed(&r, true), WATCH_SAME);
  assert_int_equal(watch_rule_feed(&r, false), WATCH_SAME); /* two passes, then a failure: count again */
  assert_int_equal(watch_rule_feed(&r, true), WATCH_SAME);
  assert_int_equal(watch_rule_feed(&r, true), WATCH_SAME);
  assert_true(r.down);
  assert_int_equal(watch_rule_feed(&r, true), WATCH_CLEAR);
  assert_false(r.down);
  assert_int_equal(watch_rule_feed(&r, true), WATCH_SAME);
  assert_int_equal(watch_rule_feed(&r, false), WATCH_SET); /* and down again at once */
}

static void test_other_counts(void **st) {
  (void)st;
  watch_rule r = {.clear_after = 1};
  assert_int_equal(watch_rule_feed(&r, false), WATCH_SET);
  assert_int_equal(watch_rule_feed(&r, true), WATCH_CLEAR);
  watch_rule z = {0}; /* 0 means the default, 3 */
  assert_int_equal(watch_rule_feed(&z, false), WATCH_SET);
  assert_int_equal(watch_rule_feed(&z, true), WATCH_SAME);
  assert_int_equal(watch_rule_feed(&z, true), WATCH_SAME);
  assert_int_equal(watch_rule_feed(&z, true), WATCH_CLEAR);
}

static void test_bad_options(void **st) {
  (void)st;
  cn_watch_opts none = {0}, noname = {.host = "127.0.0.1", .port = 1}, noport = {.name = "db", .host = "h"},
                nohost = {.name = "db", .port = 5};
  /* cn_watch_start checks its options before it looks at the node */
  assert_int_equal(cn_watch_start(NULL, &none, NULL), CN_EINVAL);
  assert_int_equal(cn_watch_start(NULL, &noname, NULL), CN_EINVAL);
  assert_int_equal(cn_watch_start(NULL, &noport, NULL), CN_EINVAL);
  assert_int_equal(cn_watch_start(NULL, &nohost, NULL), CN_EINVAL);
  assert_int_equal(cn_watch_start(NULL, NULL, NULL), CN_EINVAL);
  cn_watch_report(NULL, true);
  assert_false(cn_watch_down(NULL));
  cn_watch_stop(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_three_passes),
      cmocka_unit_test(test_other_counts),
      cmocka_unit_test(test_bad_options),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
