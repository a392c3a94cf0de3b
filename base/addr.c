/* addr.c: numeric IPv4/IPv6 addresses (with an IPv6 %scope) parsed from and written to text, for listen options,
 * node names whose host is an address, EPMD's listen list and log lines. */
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "base_addr.h"
#include "cn_base.h"

/* A scope after '%': an interface name of this host, or a decimal index (as getaddrinfo reads it). 0: none. */
static uint32_t parse_scope(const char *s) {
  if (!*s) return 0;
  if (strspn(s, "0123456789") == strlen(s)) {
    unsigned long v = 0;
    for (; *s; s++) {
      v = v * 10 + (unsigned long)(*s - '0');
      if (v > UINT32_MAX) return 0;
    }
    return (uint32_t)v;
  }
  return strlen(s) < IF_NAMESIZE ? if_nametoindex(s) : 0;
}

int base_addr_parse(const char *text, uint16_t port, int family, struct sockaddr_storage *out) {
  memset(out, 0, sizeof *out);
  if (!text) return CN_EINVAL;
  struct sockaddr_in *a4 = (struct sockaddr_in *)out;
  if (family != AF_INET6 && inet_pton(AF_INET, text, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    return 0;
  }
  if (family == AF_INET) return CN_EINVAL;
  char buf[INET6_ADDRSTRLEN];
  const char *pct = strchr(text, '%');
  size_t n = pct ? (size_t)(pct - text) : strlen(text);
  if (n >= sizeof buf) return CN_EINVAL;
  memcpy(buf, text, n);
  buf[n] = 0;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;
  if (inet_pton(AF_INET6, buf, &a6->sin6_addr) != 1) {
    memset(out, 0, sizeof *out);
    return CN_EINVAL;
  }
  if (pct && !(a6->sin6_scope_id = parse_scope(pct + 1))) {
    memset(out, 0, sizeof *out);
    return CN_EINVAL;
  }
  a6->sin6_family = AF_INET6;
  a6->sin6_port = htons(port);
  return 0;
}

int base_addr_family(const char *host) {
  struct sockaddr_storage ss;
  return base_addr_parse(host, 0, AF_UNSPEC, &ss) ? 0 : ss.ss_family;
}

static size_t put(char *buf, size_t len, int k) {
  if (k < 0 || (size_t)k >= len) {
    if (len) snprintf(buf, len, "?");
    return 0;
  }
  return (size_t)k;
}

size_t base_addr_ntop(const struct sockaddr *sa, char *buf, size_t len) {
  char a[INET6_ADDRSTRLEN], ifn[IF_NAMESIZE];
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, a, sizeof a);
    return put(buf, len, snprintf(buf, len, "%s", a));
  }
  if (sa->sa_family != AF_INET6) return put(buf, len, -1);
  const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)sa;
  inet_ntop(AF_INET6, &a6->sin6_addr, a, sizeof a);
  if (!a6->sin6_scope_id) return put(buf, len, snprintf(buf, len, "%s", a));
  /* The interface's name where it has one, as `ip` prints it; else the index, which parses back the same. */
  if (if_indextoname(a6->sin6_scope_id, ifn)) return put(buf, len, snprintf(buf, len, "%s%%%s", a, ifn));
  return put(buf, len, snprintf(buf, len, "%s%%%u", a, (unsigned)a6->sin6_scope_id));
}

size_t base_addr_format(const struct sockaddr *sa, char *buf, size_t len) {
  char a[BASE_ADDR_TEXT_MAX];
  if (!base_addr_ntop(sa, a, sizeof a)) return put(buf, len, -1);
  const char *fmt = sa->sa_family == AF_INET6 ? "[%s]:%u" : "%s:%u";
  return put(buf, len, snprintf(buf, len, fmt, a, base_addr_port(sa)));
}

uint16_t base_addr_port(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET) return ntohs(((const struct sockaddr_in *)sa)->sin_port);
  if (sa->sa_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
  return 0;
}

void base_addr_set_port(struct sockaddr_storage *ss, uint16_t port) {
  if (ss->ss_family == AF_INET) ((struct sockaddr_in *)ss)->sin_port = htons(port);
  else if (ss->ss_family == AF_INET6) ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

bool base_addr_equal(const struct sockaddr *a, const struct sockaddr *b) {
  if (a->sa_family != b->sa_family) return false;
  if (a->sa_family == AF_INET)
    return ((const struct sockaddr_in *)a)->sin_addr.s_addr == ((const struct sockaddr_in *)b)->sin_addr.s_addr;
  if (a->sa_family != AF_INET6) return false;
  const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a, *y = (const struct sockaddr_in6 *)b;
  return IN6_ARE_ADDR_EQUAL(&x->sin6_addr, &y->sin6_addr) && x->sin6_scope_id == y->sin6_scope_id;
}

unsigned base_addr_len(const struct sockaddr *sa) {
  return sa->sa_family == AF_INET6  ? sizeof(struct sockaddr_in6)
         : sa->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                    : 0;
}
