/* testutil.h: helpers shared by the cmocka unit tests. */
#ifndef TESTUTIL_H
#define TESTUTIL_H

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

#endif
