/* testutil.h: helpers shared by the cmocka unit tests. */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Copies len bytes so that they end right before a PROT_NONE page: a one-byte over-read crashes the test
 * (picohttpparser's trick). Free with guard_free. */
uint8_t *guard_copy(const void *data, size_t len);
void guard_free(uint8_t *p, size_t len);

/* Parses a hex string (upper or lower case, no separators) into a new buffer; returns its length or -1. */
long hex_decode(const char *hex, uint8_t **out);

/* The folder of the shared vectors: $CN_VECTORS_DIR or ../shared/vectors. */
const char *vectors_dir(void);

/* A loopback port that was free a moment ago (bind port 0, read it, close); 0 on failure. */
uint16_t free_port(void);
/* True when something accepts TCP connections on 127.0.0.1:port. */
int can_connect(uint16_t port);
void sleep_ms(long ms);
/* Milliseconds of a monotonic clock. */
long now_ms(void);
/* Starts OTP's /usr/bin/epmd in the foreground on a free loopback port (dies with the test); returns its pid
 * and sets *port, or -1. */
int test_epmd_start(uint16_t *port);
/* Stops the epmd started by test_epmd_start (SIGTERM + waitpid); ignores pid <= 0. */
void test_epmd_stop(int pid);
/* cmocka group setup/teardown that run one epmd for a whole test binary; its port is test_epmd_port. */
extern uint16_t test_epmd_port;
int test_epmd_group_setup(void **state);
int test_epmd_group_teardown(void **state);

/* Raw peers, played by hand, for hostile and fault tests. test_raw_connect: a TCP connection to 127.0.0.1:port
 * (TCP_NODELAY), -1 on failure. test_send_all: all n bytes, false when the other side closed first.
 * test_hand_peer: a connection that completed a real handshake (dist.h's state machine) as name with cookie and
 * flags (0: DIST_FLAGS_DEFAULT): its socket, or -1 when refused. */
int test_raw_connect(uint16_t port);
/* Whether the EPMD on 127.0.0.1:port lists the node name `alive` (PORT_PLEASE2; blocking, 1 s at most). */
bool test_epmd_knows(uint16_t port, const char *alive);
bool test_send_all(int fd, const void *p, size_t n);
int test_hand_peer(uint16_t port, const char *name, const char *cookie, uint64_t flags);

/* A started node on loopback with no EPMD, for tests that play its peers through the socketless test hooks
 * (conn_test_up/feed/output, node_int.h): 0 with *out, or -1. */
struct cn_node;
int test_node_quiet(struct cn_node **out, const char *name);
/* Runs n's loop 20 turns without waiting: what a test feeds is handled, what the node sends is framed. */
void test_spin(struct cn_node *n);
/* Frees *n (NULL is fine) and clears it: a fixture's teardown. */
void test_node_drop(struct cn_node **n);

/* A counting allocator for cn_replace_allocator: ta_live counts blocks alive; ta_fail_after > 0 lets that many
 * more allocations succeed, 0 fails all, < 0 (the default) fails none. ta_install puts it in place; ta_setup
 * and ta_teardown are cmocka fixtures that reset it and assert that a test freed everything. */
extern _Atomic long ta_live, ta_fail_after;
void ta_install(void);
/* A fault for one thread (a node's loop thread), leaving the others alone: after `skip` more allocations on thread
 * th the next one fails, once. Installs the counting allocator. ta_fault_fired says whether it has failed one. */
void ta_fault_arm(pthread_t th, long skip);
void ta_fault_disarm(void);
bool ta_fault_fired(void);
/* Prints where the fault fired (glibc's backtrace: resolve the +offsets with addr2line -e BINARY). */
void ta_fault_print_trace(void);
int ta_setup(void **state);
int ta_teardown(void **state);

/* Term tests: tt_setup/tt_teardown are cmocka fixtures that reset the counting allocator and give each test a
 * fresh atom table in tt_atoms; tt_atom makes an atom term in it; tt_from_hex decodes hex of term_to_binary
 * output (read behind a guard page), asserting success. */
struct cn_atoms;
struct cn_term;
extern struct cn_atoms *tt_atoms;
int tt_setup(void **state);
int tt_teardown(void **state);
struct cn_term *tt_atom(const char *name);
struct cn_term *tt_from_hex(const char *hex);
/* Decodes the whole file at path (a term_to_binary result) with atoms in tab; fails the test on error. */
struct cn_atoms;
struct cn_term *tt_load_etf(struct cn_atoms *tab, const char *path);

#endif
