/* fuzz.h: what the libFuzzer targets in fuzz/ share with test/test_fuzz_regress.c. Each target keeps its work
 * in one fuzz_<target>_one() so the cmocka replay of the seed corpus runs exactly what libFuzzer runs. */
#ifndef CN_FUZZ_H
#define CN_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* One input through one target. Returns 0 (libFuzzer's convention); a broken invariant aborts. */
int fuzz_term_one(const uint8_t *data, size_t size);
int fuzz_handshake_one(const uint8_t *data, size_t size);
int fuzz_frame_one(const uint8_t *data, size_t size);
int fuzz_control_one(const uint8_t *data, size_t size);
int fuzz_epmd_one(const uint8_t *data, size_t size);
int fuzz_optfile_one(const uint8_t *data, size_t size);
int fuzz_node_one(const uint8_t *data, size_t size);
int fuzz_pg_one(const uint8_t *data, size_t size);
int fuzz_cluster_one(const uint8_t *data, size_t size);
/* fuzz_handshake_one's run, returning where the handshake ended (dist_hs_result): lets the replay check that
 * the recorded handshakes reach DIST_HS_DONE. */
int fuzz_handshake_result(const uint8_t *data, size_t size);

/* A property the decoders promise. Bad input never trips it; a decoder bug does, and then libFuzzer saves
 * the input as a crash- artifact (abort() is how a target reports a finding, not how it treats input). */
#define FUZZ_CHECK(cond)                                                                                               \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond);                                \
      abort();                                                                                                         \
    }                                                                                                                  \
  } while (0)

/* The libFuzzer entry point, left out when the targets are linked into the cmocka replay. */
#ifdef CN_FUZZ_NO_ENTRY
#define FUZZ_ENTRY(fn)
#else
#define FUZZ_ENTRY(fn)                                                                                                 \
  int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);                                                        \
  int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fn(data, size); }
#endif

/* Reads an input as a little stream: bytes that steer the harness and bytes fed to a decoder. */
typedef struct fuzz_in {
  const uint8_t *p;
  size_t len, off;
} fuzz_in;

static inline size_t fuzz_left(const fuzz_in *in) { return in->len - in->off; }
/* Next byte, or 0 once the input is used up. */
static inline uint8_t fuzz_u8(fuzz_in *in) { return in->off < in->len ? in->p[in->off++] : 0; }
static inline uint32_t fuzz_u32(fuzz_in *in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v = v << 8 | fuzz_u8(in);
  return v;
}
/* Up to n next bytes (fewer at the end); *got says how many. */
static inline const uint8_t *fuzz_take(fuzz_in *in, size_t n, size_t *got) {
  const uint8_t *p = in->p + in->off;
  if (n > fuzz_left(in)) n = fuzz_left(in);
  in->off += n;
  *got = n;
  return p;
}

#endif
