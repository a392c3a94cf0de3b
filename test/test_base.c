/* test_base.c: the base layer's shared pieces: status strings and the fallible stable sort. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cn_base.h"

typedef struct pair {
  int key, seq;
} pair;

static int by_key(const void *a, const void *b, void *ctx, int *result) {
  int *budget = ctx;
  if (budget && (*budget)-- == 0) return CN_ENOMEM;
  int x = ((const pair *)a)->key, y = ((const pair *)b)->key;
  *result = (x > y) - (x < y);
  return 0;
}

static void test_stable_sort(void **st) {
  (void)st;
  for (size_t n = 0; n <= 67; n++) {
    pair v[67], tmp[67];
    for (size_t i = 0; i < n; i++) v[i] = (pair){(int)((i * 7919) % 5), (int)i};
    assert_int_equal(cn_stable_sort(v, n, sizeof *v, tmp, by_key, NULL), 0);
    for (size_t i = 1; i < n; i++) {
      assert_true(v[i - 1].key <= v[i].key);
      if (v[i - 1].key == v[i].key) assert_true(v[i - 1].seq < v[i].seq); /* input order kept */
    }
  }
}

static void test_sort_failure(void **st) {
  (void)st;
  pair v[20], tmp[20];
  for (int i = 0; i < 20; i++) v[i] = (pair){20 - i, i};
  int budget = 5;
  assert_int_equal(cn_stable_sort(v, 20, sizeof *v, tmp, by_key, &budget), CN_ENOMEM);
}

static void test_strerror(void **st) {
  (void)st;
  assert_string_equal(cn_strerror(0), "success");
  assert_string_equal(cn_err_name(CN_EBUSY), "CN_EBUSY");
  assert_string_equal(cn_strerror(-12345), "unknown error");
}

/* Every status code has an Erlang reason, never its C name. */
static void test_err_reason(void **st) {
  (void)st;
  static const struct {
    int code;
    const char *reason;
  } want[] = {
      {CN_EINVAL, "badarg"},        {CN_ENOMEM, "enomem"},
      {CN_EDECODE, "badarg"},       {CN_ETRUNC, "badarg"},
      {CN_ELIMIT, "system_limit"},  {CN_EPROTO, "eproto"},
      {CN_EAUTH, "noconnection"},   {CN_EREFUSED, "econnrefused"},
      {CN_ENOPROC, "noproc"},       {CN_ENOCONN, "noconnection"},
      {CN_EEXIST, "eexist"},        {CN_ENOTFOUND, "not_found"},
      {CN_ETIMEDOUT, "timeout"},    {CN_EIO, "eio"},
      {CN_ECLOSED, "closed"},       {CN_ESTATE, "einval"},
      {CN_EUNSUPPORTED, "enotsup"}, {CN_EFLAGS, "noconnection"},
      {CN_EEXIT, "noproc"},         {CN_EBUSY, "ebusy"},
      {CN_EBLOWN, "blown"},
  };
  static const int codes[] = {
#define CN__ERR_CODE(name, val, msg) CN_##name,
      CN_ERRNO_MAP(CN__ERR_CODE)
#undef CN__ERR_CODE
  };
  assert_int_equal(sizeof codes / sizeof *codes, sizeof want / sizeof *want);
  for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
    const char *r = cn_err_reason(codes[i]);
    assert_non_null(r);
    assert_true(strncmp(r, "CN_", 3) != 0);
    assert_string_not_equal(r, "unknown");
    for (const char *p = r; *p; p++) assert_true((*p >= 'a' && *p <= 'z') || *p == '_'); /* a plain atom */
  }
  for (size_t i = 0; i < sizeof want / sizeof *want; i++)
    assert_string_equal(cn_err_reason(want[i].code), want[i].reason);
  assert_string_equal(cn_err_reason(0), "ok");
  assert_string_equal(cn_err_reason(-12345), "unknown");
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_stable_sort), cmocka_unit_test(test_sort_failure),
                                     cmocka_unit_test(test_strerror), cmocka_unit_test(test_err_reason)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
