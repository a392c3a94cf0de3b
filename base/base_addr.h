/* base_addr.h: numeric IP addresses as node names, options and logs write them: IPv4, IPv6 with an optional
 * %scope, "[v6]:port" in logs. Pure (no I/O but the interface-name lookup of a scope); internal, never installed. */
#ifndef CN_BASE_ADDR_H
#define CN_BASE_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Room for any text below: "[" IPv6 "%" interface "]:65535" and the NUL. */
#define BASE_ADDR_TEXT_MAX 80

/* Parses a numeric address ("127.0.0.1", "::1", "fe80::1%eth0" or "fe80::1%2") with port into *out, zeroed
 * first. family: AF_UNSPEC takes either, AF_INET or AF_INET6 only that one. No brackets, no names, no spaces;
 * a scope only on IPv6, naming an interface of this host or a number. 0 or CN_EINVAL. */
int base_addr_parse(const char *text, uint16_t port, int family, struct sockaddr_storage *out);
/* AF_INET or AF_INET6 when host (a node name's host part) is a numeric address, else 0 (a host name). */
int base_addr_family(const char *host);
/* The address of sa without port ("::1", "fe80::1%eth0", "10.0.0.1"): base_addr_parse reads it back. Returns
 * its length, or 0 (buf is "?") for a family other than AF_INET/AF_INET6 or a buf too small. */
size_t base_addr_ntop(const struct sockaddr *sa, char *buf, size_t len);
/* Address and port as logs write them: "10.0.0.1:4369", "[::1]:4369". Same returns as base_addr_ntop. */
size_t base_addr_format(const struct sockaddr *sa, char *buf, size_t len);
/* The port of an AF_INET/AF_INET6 address; sets it. */
uint16_t base_addr_port(const struct sockaddr *sa);
void base_addr_set_port(struct sockaddr_storage *ss, uint16_t port);
/* Same family, address and (IPv6) scope; ports are not compared. */
bool base_addr_equal(const struct sockaddr *a, const struct sockaddr *b);
/* The length bind/connect take for ss's family (0 for another family). */
unsigned base_addr_len(const struct sockaddr *sa);

#endif
