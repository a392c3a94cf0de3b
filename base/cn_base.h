/* cn_base.h: what every layer of libcnode shares: status codes, allocator hooks and a growable byte buffer.
 * It has no I/O and no global state besides the allocator hooks. */
#ifndef CN_BASE_H
#define CN_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version: the one place it is written (the Makefile reads it for the .so name, cnode.pc and the
 * .deb). Pre-1.0: a minor release may still change the API; the changelog lists what. */
#define CN_VERSION_MAJOR 0
#define CN_VERSION_MINOR 5
#define CN_VERSION_PATCH 0
#define CN__STR(x) #x
#define CN__XSTR(x) CN__STR(x)
/* "MAJOR.MINOR.PATCH" of the headers compiled against; cn_version() gives the library's own. */
#define CN_VERSION CN__XSTR(CN_VERSION_MAJOR) "." CN__XSTR(CN_VERSION_MINOR) "." CN__XSTR(CN_VERSION_PATCH)

/* Marks a declaration as public API: libcnode is built with -fvisibility=hidden, so libcnode.so exports exactly
 * what carries this (and a version script keeps everything else, libei included, local). */
#if defined(__GNUC__) || defined(__clang__)
#define CN_EXPORT __attribute__((visibility("default")))
#else
#define CN_EXPORT
#endif

/* The version of the library linked at run time, "MAJOR.MINOR.PATCH" (static); compare it with CN_VERSION to
 * tell a program built against other headers. */
CN_EXPORT const char *cn_version(void);

/* Status codes: 0 is success, every error is negative. X(name, value, message). */
#define CN_ERRNO_MAP(X)                                                                                                \
  X(EINVAL, -1, "invalid argument")                                                                                    \
  X(ENOMEM, -2, "out of memory")                                                                                       \
  X(EDECODE, -3, "malformed input")                                                                                    \
  X(ETRUNC, -4, "truncated input")                                                                                     \
  X(ELIMIT, -5, "configured limit exceeded")                                                                           \
  X(EPROTO, -6, "protocol violation")                                                                                  \
  X(EAUTH, -7, "authentication failed (cookie mismatch)")                                                              \
  X(EREFUSED, -8, "refused by peer")                                                                                   \
  X(ENOPROC, -9, "no such process")                                                                                    \
  X(ENOCONN, -10, "not connected")                                                                                     \
  X(EEXIST, -11, "already exists")                                                                                     \
  X(ENOTFOUND, -12, "not found")                                                                                       \
  X(ETIMEDOUT, -13, "timed out")                                                                                       \
  X(EIO, -14, "I/O error")                                                                                             \
  X(ECLOSED, -15, "closed")                                                                                            \
  X(ESTATE, -16, "operation not valid in this state")                                                                  \
  X(EUNSUPPORTED, -17, "not supported")                                                                                \
  X(EFLAGS, -18, "peer lacks mandatory distribution flags")                                                            \
  X(EEXIT, -19, "the process exited")                                                                                  \
  X(EBUSY, -20, "queue full")                                                                                          \
  X(EBLOWN, -21, "circuit breaker blown")

enum cn_errno {
  CN_OK = 0,
#define CN__ERR_ENUM(name, val, msg) CN_##name = (val),
  CN_ERRNO_MAP(CN__ERR_ENUM)
#undef CN__ERR_ENUM
};

/* Returns a static message for a status code ("unknown error" for unknown codes). */
CN_EXPORT const char *cn_strerror(int err);
/* Returns the static name of a status code, e.g. "CN_EINVAL": for logs, not for peers. */
CN_EXPORT const char *cn_err_name(int err);
/* Returns the reason a BEAM caller gets for a status code, as the atom text OTP uses in the same situation
 * (static): the {error, Reason} a C process answers a BEAM process with, or an exit reason. OTP's own terms
 * where it has one (badarg, system_limit, timeout, noproc, noconnection, not_found, closed), else the POSIX
 * reason its file and socket calls give (enomem, eio, econnrefused, eexist, enotsup, eproto, ebusy; einval for an
 * operation the object's state does not allow, as gen_tcp:recv on an active socket). "ok" for 0, "unknown" for an
 * unknown code. Never a "CN_" name. */
CN_EXPORT const char *cn_err_reason(int err);

/* Allocator hooks: every allocation of libcnode goes through these, so tests can count and fail them. */
typedef void *(*cn_malloc_fn)(size_t size);
typedef void *(*cn_realloc_fn)(void *ptr, size_t size);
typedef void *(*cn_calloc_fn)(size_t count, size_t size);
typedef void (*cn_free_fn)(void *ptr);
/* Replaces the allocator; call before anything else of libcnode allocates. Returns CN_EINVAL on a NULL fn. */
CN_EXPORT int cn_replace_allocator(cn_malloc_fn m, cn_realloc_fn r, cn_calloc_fn c, cn_free_fn f);
CN_EXPORT void *cn_malloc(size_t size);
CN_EXPORT void *cn_realloc(void *ptr, size_t size);
CN_EXPORT void *cn_calloc(size_t count, size_t size);
CN_EXPORT void cn_free(void *ptr);
/* Returns a copy of the first n bytes of s plus a NUL (caller frees with cn_free), or NULL. */
CN_EXPORT char *cn_strndup(const char *s, size_t n);

/* A growable byte buffer. Zero-initialise it ({0}) before first use; cn_buf_free releases the storage. */
typedef struct cn_buf {
  uint8_t *data;
  size_t len;
  size_t cap;
} cn_buf;

/* Makes room for n more bytes; returns 0 or CN_ENOMEM (the buffer is unchanged on error). */
CN_EXPORT int cn_buf_reserve(cn_buf *b, size_t n);
/* Appends n bytes; 0 or CN_ENOMEM. */
CN_EXPORT int cn_buf_append(cn_buf *b, const void *p, size_t n);
CN_EXPORT int cn_buf_put8(cn_buf *b, uint8_t v);
CN_EXPORT int cn_buf_put16(cn_buf *b, uint16_t v); /* big-endian, as the wire is */
CN_EXPORT int cn_buf_put32(cn_buf *b, uint32_t v);
CN_EXPORT int cn_buf_put64(cn_buf *b, uint64_t v);
/* Appends printf-formatted text (no NUL counted in len, but one is kept after data[len]). */
CN_EXPORT int cn_buf_printf(cn_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes (n <= len). */
CN_EXPORT void cn_buf_consume(cn_buf *b, size_t n);
CN_EXPORT void cn_buf_free(cn_buf *b);

/* A reference-counted byte chunk: the bytes a connection read, shared by the large binaries decoded from them
 * (cn_decode_opts.chunk) instead of copied. The count is atomic: a reference may be dropped on any thread. The
 * bytes are writable only while one reference exists (cn_chunk_shared false). */
typedef struct cn_chunk cn_chunk;
/* A chunk of cap bytes (uninitialised) with one reference, or NULL on out-of-memory. */
CN_EXPORT cn_chunk *cn_chunk_new(size_t cap);
/* Grows or shrinks an unshared chunk to cap bytes (contents kept up to the smaller size), as realloc; NULL on
 * out-of-memory or when the chunk is shared (then c is unchanged). */
CN_EXPORT cn_chunk *cn_chunk_resize(cn_chunk *c, size_t cap);
CN_EXPORT uint8_t *cn_chunk_data(cn_chunk *c);
CN_EXPORT size_t cn_chunk_cap(const cn_chunk *c);
/* Takes one more reference (c may be NULL). */
CN_EXPORT void cn_chunk_retain(cn_chunk *c);
/* Drops one reference; the last frees the chunk. NULL is ignored. */
CN_EXPORT void cn_chunk_release(cn_chunk *c);
/* True while more than one reference exists. */
CN_EXPORT bool cn_chunk_shared(const cn_chunk *c);

/* A few chunks kept for reuse (one reference each): a chunk put back while its binaries live is taken again once
 * they are freed, so a steady stream of messages cycles through the same memory. Zero-initialise it. */
#define CN_CHUNK_POOL 4
typedef struct cn_chunk_pool {
  cn_chunk *k[CN_CHUNK_POOL];
} cn_chunk_pool;
/* An unshared chunk of at least need bytes from the pool (resized when none is big enough), or NULL. */
CN_EXPORT cn_chunk *cn_chunk_pool_take(cn_chunk_pool *p, size_t need);
/* Keeps k (NULL is ignored); a full pool lets its oldest go (whoever holds it last frees it). */
CN_EXPORT void cn_chunk_pool_put(cn_chunk_pool *p, cn_chunk *k);
/* Releases every chunk of the pool. */
CN_EXPORT void cn_chunk_pool_clear(cn_chunk_pool *p);

/* Big-endian readers for wire fields; the caller has checked the length. */
static inline uint16_t cn_get16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t cn_get32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t cn_get64(const uint8_t *p) { return ((uint64_t)cn_get32(p) << 32) | cn_get32(p + 4); }
static inline void cn_set32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* A comparison that can fail: sets *result (<0, 0, >0) and returns 0, or returns a CN_E* status. */
typedef int (*cn_cmp_fn)(const void *a, const void *b, void *ctx, int *result);
/* Sorts n elements of size bytes at base, stably (equal elements keep their order), with a merge sort that
 * stops at the first failing comparison and returns its status (the order is then unspecified). tmp: scratch
 * space of n * size bytes, borrowed. */
CN_EXPORT int cn_stable_sort(void *base, size_t n, size_t size, void *tmp, cn_cmp_fn cmp, void *ctx);

/* Compares n bytes in time independent of their contents; 0 when equal. */
CN_EXPORT int cn_memeq_ct(const void *a, const void *b, size_t n);

#ifdef __cplusplus
}
#endif
#endif
