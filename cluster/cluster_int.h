/* cluster_int.h: what cluster/'s files share. pure.c is the protocol part (heartbeats and their encryption, DNS
 * answers turned into node names, host lists, the back-off schedule): no socket, no clock, no randomness. The
 * libuv glue: cluster.c (the instance, the wanted-node table, connects and back-off), gossip.c (the UDP socket),
 * dns.c (c-ares on the loop). */
#ifndef CLUSTER_INT_H
#define CLUSTER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "cn_cluster.h"

/* ---- pure.c ----------------------------------------------------------------------------------------------- */

/* The largest UDP payload there is (IPv4: 65,535 - 8 - 20); a longer heartbeat cannot arrive whole. */
#define CL_HB_MAX 65507
#define CL_KEY_LEN 32
#define CL_IV_LEN 16

/* A list of node names (each a NUL-terminated string of its own allocation). */
typedef struct cl_names {
  char **v;
  size_t n, cap;
} cl_names;
/* Appends a copy of name[0..len) unless the list holds it already: 0 or CN_ENOMEM. */
int cl_names_add(cl_names *l, const char *name, size_t len);
bool cl_names_has(const cl_names *l, const char *name);
void cl_names_free(cl_names *l);

/* The AES-256 key of a libcluster secret: SHA-256 of its bytes. */
void cl_key_from_secret(const char *secret, uint8_t key[CL_KEY_LEN]);

/* Appends the heartbeat of node name to out: "heartbeat::" and term_to_binary(%{node: name}); with a key (NULL:
 * clear), as libcluster encrypts it: iv, then AES-256-CBC of the PKCS #7-padded heartbeat. 0, CN_EINVAL (not an
 * atom's text), CN_ENOMEM or CN_EIO (OpenSSL failed). */
int cl_hb_encode(const char *name, const uint8_t *key, const uint8_t iv[CL_IV_LEN], cn_buf *out);

/* Reads one received packet as libcluster's Gossip does, with the key it was configured with (NULL: clear).
 * On 0 the sender's node name is in name (cap bytes; "alive@host", checked to have both parts). Errors:
 * CN_EDECODE (not a heartbeat: no prefix, not a map with an atom under node, not a node name), CN_EAUTH (with a
 * key: not a multiple of the block size, or bad padding after decryption: another secret, or none),
 * CN_ELIMIT (longer than CL_HB_MAX, or a name that does not fit cap), CN_ENOMEM. */
int cl_hb_decode(const uint8_t *pkt, size_t len, const uint8_t *key, char *name, size_t cap);

/* The DNS record types cl_dns_names reads (the values of the wire). */
enum { CL_DNS_A = 1, CL_DNS_AAAA = 28, CL_DNS_SRV = 33 };
/* Adds the node names of one DNS answer (the message c-ares received) to out: basename@address for A and AAAA
 * records (as inet_parse:ntoa writes them), basename@target for SRV records (target without its final dot), each
 * once, never self. 0, CN_EDECODE (not a well-formed answer of that type; out unchanged), CN_ENOTFOUND (a
 * well-formed answer without records of the type), CN_ENOMEM. */
int cl_dns_names(int type, const uint8_t *answer, size_t len, const char *basename, const char *self, cl_names *out);

/* Adds the names of a comma-separated host list ("a@h1, b@h2") to out, skipping blanks and self: 0, CN_EINVAL
 * with *bad at the first entry that is no node name (not "alive@host", or longer than an atom), CN_ENOMEM. */
int cl_hosts_parse(const char *csv, const char *self, cl_names *out, const char **bad);

/* The wait before the next connect to a node that failed `failures` times in a row (1, 2, ...): min_ms, doubled
 * each time, at most max_ms. */
unsigned cl_backoff_ms(unsigned failures, unsigned min_ms, unsigned max_ms);

/* ---- the glue ------------------------------------------------------------------------------------------------- */

typedef struct cl_gossip cl_gossip;
typedef struct cl_dns cl_dns;

struct cn_cluster {
  cn_node *n;
  cn_cluster_opts o; /* strings point into the instance's own copies */
  char *strs;        /* those copies, one allocation */
  struct cl_peer *peers;
  cn_cluster_stats stats;
  uv_timer_t timer; /* retries (back-off) and the hosts strategy's reconnects */
  int open;         /* parts with handles still open: the timer, the gossip socket, the resolver */
  bool stopping;
  bool attached;
  cl_gossip *gossip;
  cl_dns *dns;
  uint8_t key[CL_KEY_LEN];
};

/* Why a node is wanted, for the log. */
typedef enum cl_source { CL_SRC_HOSTS, CL_SRC_GOSSIP, CL_SRC_DNS } cl_source;
/* The strategy wants node connected (heard, listed, resolved); detail says from where (logged). Connects at once
 * unless it is up, connecting, or waiting out a back-off. */
void cl_want(cn_cluster *c, const char *node, const char *detail);
/* A DNS poll's full answer: every name in names is wanted, every earlier one missing now is dropped (and
 * disconnected, as libcluster does). */
void cl_want_only(cn_cluster *c, const cl_names *names, const char *detail);
/* One part of the instance (c->open counts them) has closed all its handles: the instance is freed after the
 * last. */
void cl_closed(cn_cluster *c);

int cl_gossip_start(cn_cluster *c);
void cl_gossip_close(cn_cluster *c);
int cl_dns_start(cn_cluster *c);
void cl_dns_close(cn_cluster *c);

#endif
