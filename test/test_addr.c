/* test_addr.c: base/addr.c, the numeric addresses of listen options, node names' hosts and EPMD's listen list:
 * IPv4, IPv6 with and without a %scope, text back and forth, and malformed text. */
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base_addr.h"
#include "cn_base.h"

static void roundtrip(const char *text, uint16_t port, int family, const char *ntop, const char *formatted) {
  struct sockaddr_storage ss;
  char buf[BASE_ADDR_TEXT_MAX];
  assert_int_equal(base_addr_parse(text, port, AF_UNSPEC, &ss), 0);
  assert_int_equal(ss.ss_family, family);
  assert_int_equal(base_addr_port((struct sockaddr *)&ss), port);
  assert_int_equal(base_addr_ntop((struct sockaddr *)&ss, buf, sizeof buf), strlen(ntop));
  assert_string_equal(buf, ntop);
  assert_int_equal(base_addr_format((struct sockaddr *)&ss, buf, sizeof buf), strlen(formatted));
  assert_string_equal(buf, formatted);
  /* What ntop wrote parses back to the same address. */
  struct sockaddr_storage back;
  assert_int_equal(base_addr_parse(ntop, port, AF_UNSPEC, &back), 0);
  assert_true(base_addr_equal((struct sockaddr *)&ss, (struct sockaddr *)&back));
  assert_int_equal(base_addr_len((struct sockaddr *)&ss),
                   family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
}

static void test_parse_format(void **st) {
  (void)st;
  roundtrip("127.0.0.1", 4369, AF_INET, "127.0.0.1", "127.0.0.1:4369");
  roundtrip("0.0.0.0", 0, AF_INET, "0.0.0.0", "0.0.0.0:0");
  roundtrip("::1", 4369, AF_INET6, "::1", "[::1]:4369");
  roundtrip("::", 65535, AF_INET6, "::", "[::]:65535");
  roundtrip("2001:DB8:0:0:0:0:0:1", 1, AF_INET6, "2001:db8::1", "[2001:db8::1]:1");
  roundtrip("::ffff:10.0.0.1", 9, AF_INET6, "::ffff:10.0.0.1", "[::ffff:10.0.0.1]:9");
  /* A scope by number: an index with no interface prints as the number again. */
  roundtrip("fe80::1%4000000", 7, AF_INET6, "fe80::1%4000000", "[fe80::1%4000000]:7");
  /* A scope by name: the loopback interface exists on every Linux host, and prints by name. */
  unsigned lo = if_nametoindex("lo");
  if (lo) {
    roundtrip("fe80::1%lo", 7, AF_INET6, "fe80::1%lo", "[fe80::1%lo]:7");
    struct sockaddr_storage a, b;
    char num[32];
    snprintf(num, sizeof num, "fe80::1%%%u", lo);
    assert_int_equal(base_addr_parse(num, 0, AF_UNSPEC, &a), 0);
    assert_int_equal(base_addr_parse("fe80::1%lo", 0, AF_UNSPEC, &b), 0);
    assert_true(base_addr_equal((struct sockaddr *)&a, (struct sockaddr *)&b));
  }
}

static void test_family_filter(void **st) {
  (void)st;
  struct sockaddr_storage ss;
  assert_int_equal(base_addr_parse("127.0.0.1", 0, AF_INET6, &ss), CN_EINVAL);
  assert_int_equal(ss.ss_family, 0); /* zeroed on failure */
  assert_int_equal(base_addr_parse("::1", 0, AF_INET, &ss), CN_EINVAL);
  assert_int_equal(base_addr_parse("::1", 0, AF_INET6, &ss), 0);
  assert_int_equal(base_addr_parse("10.1.2.3", 0, AF_INET, &ss), 0);
  assert_int_equal(base_addr_family("::1"), AF_INET6);
  assert_int_equal(base_addr_family("fe80::1%1"), AF_INET6);
  assert_int_equal(base_addr_family("127.0.0.1"), AF_INET);
  assert_int_equal(base_addr_family("localhost"), 0);
  assert_int_equal(base_addr_family("host.example.com"), 0);
  assert_int_equal(base_addr_family("ip6-localhost"), 0);
}

/* Malformed text is CN_EINVAL and leaves *out zeroed: brackets, ports, names, scopes on IPv4 or unknown
 * interfaces, empty scopes, overlong text, spaces. */
static void test_malformed(void **st) {
  (void)st;
  static const char *bad[] = {"",
                              "localhost",
                              "1.2.3",
                              "256.0.0.1",
                              "1.2.3.4 ",
                              " ::1",
                              "::g",
                              "[::1]",
                              "[::1]:4369",
                              "127.0.0.1:4369",
                              "127.0.0.1%lo",
                              "::1%",
                              "fe80::1%no-such-interface-x",
                              "fe80::1%99999999999999999999",
                              "fe80::1%0",
                              "1:2:3:4:5:6:7:8:9",
                              "::1::",
                              "0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0001",
                              "fe80::1%lo%lo"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    struct sockaddr_storage ss;
    memset(&ss, 0xa5, sizeof ss);
    assert_int_equal(base_addr_parse(bad[i], 1, AF_UNSPEC, &ss), CN_EINVAL);
    static const struct sockaddr_storage zero;
    assert_memory_equal(&ss, &zero, sizeof ss);
    assert_int_equal(base_addr_family(bad[i]), 0);
  }
  struct sockaddr_storage ss;
  assert_int_equal(base_addr_parse(NULL, 0, AF_UNSPEC, &ss), CN_EINVAL);
}

/* Buffers too small and families other than IP: 0 and "?", never an overrun. */
static void test_format_limits(void **st) {
  (void)st;
  struct sockaddr_storage ss;
  char buf[BASE_ADDR_TEXT_MAX];
  assert_int_equal(base_addr_parse("2001:db8:1:2:3:4:5:6", 65535, AF_UNSPEC, &ss), 0);
  size_t full = base_addr_format((struct sockaddr *)&ss, buf, sizeof buf);
  assert_string_equal(buf, "[2001:db8:1:2:3:4:5:6]:65535");
  for (size_t len = 1; len <= full; len++) {
    char small[BASE_ADDR_TEXT_MAX];
    memset(small, 'x', sizeof small);
    assert_int_equal(base_addr_format((struct sockaddr *)&ss, small, len), 0);
    assert_string_equal(small, len >= 2 ? "?" : "");
    assert_int_equal(small[len], 'x');
  }
  assert_int_equal(base_addr_ntop((struct sockaddr *)&ss, buf, 4), 0);
  struct sockaddr_storage other;
  memset(&other, 0, sizeof other);
  other.ss_family = AF_UNIX;
  assert_int_equal(base_addr_ntop((struct sockaddr *)&other, buf, sizeof buf), 0);
  assert_string_equal(buf, "?");
  assert_int_equal(base_addr_port((struct sockaddr *)&other), 0);
  assert_int_equal(base_addr_len((struct sockaddr *)&other), 0);
  assert_false(base_addr_equal((struct sockaddr *)&other, (struct sockaddr *)&other));
  base_addr_set_port(&other, 5); /* no-op, no crash */
  /* Different scopes are different addresses; ports are not compared. */
  struct sockaddr_storage a, b;
  base_addr_parse("fe80::1%1", 1, AF_UNSPEC, &a);
  base_addr_parse("fe80::1%2", 1, AF_UNSPEC, &b);
  assert_false(base_addr_equal((struct sockaddr *)&a, (struct sockaddr *)&b));
  base_addr_parse("fe80::1%1", 2, AF_UNSPEC, &b);
  assert_true(base_addr_equal((struct sockaddr *)&a, (struct sockaddr *)&b));
  base_addr_parse("127.0.0.1", 1, AF_UNSPEC, &b);
  assert_false(base_addr_equal((struct sockaddr *)&a, (struct sockaddr *)&b));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_format),
      cmocka_unit_test(test_family_filter),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_format_limits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
