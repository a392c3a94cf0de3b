/* tterm.h: the fixtures test_term.c and test_etf.c share (tterm.c is linked into those two binaries only, so the
 * short names below stay theirs): a counting, failable allocator, one atom table per test, OTP 25's vectors. */
#ifndef TTERM_H
#define TTERM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cn_term.h"

/* The counting, failable allocator: main installs it with cn_replace_allocator(t_malloc, t_realloc, t_calloc,
 * t_free). arm_failure(n) fails the allocation with index n counted from that call; disarm fails none again. */
extern atomic_long live_allocs;  /* blocks allocated and not yet freed */
extern atomic_long total_allocs; /* successful allocations so far */
extern atomic_long total_frees;  /* cn_free calls on a block so far */
void *t_malloc(size_t n);
void *t_calloc(size_t c, size_t n);
void *t_realloc(void *old, size_t n);
void t_free(void *p);
void arm_failure(long n);
void disarm(void);

/* One atom table per test, A: setup makes it and teardown frees it (cmocka fixtures). */
extern cn_atoms *A;
int setup(void **state);
int teardown(void **state);
/* An atom term, the atom interned in A. */
cn_term *atom(const char *s);
/* Parses hex into a new buffer (freed with free) and returns its length; fails the test if it is not hex. */
size_t unhex(const char *hex, uint8_t **out);
/* Decodes a whole binary_to_term input (atoms in A) placed right before a PROT_NONE page. */
int from_bin_guarded(const uint8_t *b, size_t n, const cn_decode_opts *o, cn_term **out);
/* Fails the test unless b holds exactly the n bytes at exp, printing the first 64 of each when not. */
void assert_bytes(const cn_buf *b, const uint8_t *exp, size_t n);

/* term_to_binary(T, [{minor_version, 2}]) from OTP 25.2.3, hex, by name; NVEC of them. */
typedef struct {
  const char *name, *hex;
} vec;
extern const vec VEC[];
extern const size_t NVEC;
/* +-(2^bit + low), as cn_mk_big makes it. */
cn_term *big_bit(int neg, size_t bit, uint32_t low);
/* The pid with these fields, its node interned in A. */
cn_pid mkpid(const char *node, uint32_t id, uint32_t ser, uint32_t cre);

#endif
