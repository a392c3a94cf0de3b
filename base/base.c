/* base.c: the version, status strings, allocator hooks, cn_buf and cn_chunk. */
#include "cn_base.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cn_version(void) { return CN_VERSION; }

const char *cn_strerror(int err) {
  switch (err) {
  case 0: return "success";
#define CN__ERR_STR(name, val, msg)                                                                                    \
  case CN_##name: return msg;
    CN_ERRNO_MAP(CN__ERR_STR)
#undef CN__ERR_STR
  default: return "unknown error";
  }
}

const char *cn_err_name(int err) {
  switch (err) {
  case 0: return "CN_OK";
#define CN__ERR_NAME(name, val, msg)                                                                                   \
  case CN_##name: return "CN_" #name;
    CN_ERRNO_MAP(CN__ERR_NAME)
#undef CN__ERR_NAME
  default: return "CN_UNKNOWN";
  }
}

const char *cn_err_reason(int err) {
  switch (err) {
  case 0: return "ok";
  case CN_EINVAL: return "badarg";
  case CN_ENOMEM: return "enomem";
  case CN_EDECODE: return "badarg"; /* binary_to_term/1 on bytes it cannot decode */
  case CN_ETRUNC: return "badarg";
  case CN_ELIMIT: return "system_limit";
  case CN_EPROTO: return "eproto";
  case CN_EAUTH: return "noconnection"; /* a refused handshake: the node is simply not connected */
  case CN_EREFUSED: return "econnrefused";
  case CN_ENOPROC: return "noproc";
  case CN_ENOCONN: return "noconnection";
  case CN_EEXIST: return "eexist";
  case CN_ENOTFOUND: return "not_found"; /* as supervisor:terminate_child/restart_child */
  case CN_ETIMEDOUT: return "timeout";
  case CN_EBLOWN: return "blown"; /* fuse:ask/2's answer */
  case CN_EIO: return "eio";
  case CN_ECLOSED: return "closed";
  case CN_ESTATE: return "einval";
  case CN_EUNSUPPORTED: return "enotsup";
  case CN_EFLAGS: return "noconnection"; /* OTP refuses the handshake: no connection */
  case CN_EEXIT: return "noproc";        /* the process is gone; callers that have its exit reason send that */
  case CN_EBUSY: return "ebusy";
  default: return "unknown";
  }
}

/* The hooks are the one piece of process-wide state, as in libuv: set once, before use. */
static struct {
  cn_malloc_fn m;
  cn_realloc_fn r;
  cn_calloc_fn c;
  cn_free_fn f;
} alloc = {malloc, realloc, calloc, free};

int cn_replace_allocator(cn_malloc_fn m, cn_realloc_fn r, cn_calloc_fn c, cn_free_fn f) {
  if (!m || !r || !c || !f) return CN_EINVAL;
  alloc.m = m;
  alloc.r = r;
  alloc.c = c;
  alloc.f = f;
  return 0;
}

void *cn_malloc(size_t size) { return alloc.m(size ? size : 1); }
void *cn_realloc(void *ptr, size_t size) { return alloc.r(ptr, size ? size : 1); }
void *cn_calloc(size_t count, size_t size) { return alloc.c(count ? count : 1, size ? size : 1); }
void cn_free(void *ptr) {
  if (ptr) alloc.f(ptr);
}

char *cn_strndup(const char *s, size_t n) {
  char *p = cn_malloc(n + 1);
  if (!p) return NULL;
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

int cn_buf_reserve(cn_buf *b, size_t n) {
  if (n > SIZE_MAX - b->len - 1) return CN_ENOMEM;
  size_t need = b->len + n + 1; /* +1 keeps room for a NUL after text */
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  uint8_t *p = cn_realloc(b->data, cap);
  if (!p) return CN_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int cn_buf_append(cn_buf *b, const void *p, size_t n) {
  if (cn_buf_reserve(b, n)) return CN_ENOMEM;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = 0;
  return 0;
}

int cn_buf_put8(cn_buf *b, uint8_t v) { return cn_buf_append(b, &v, 1); }
int cn_buf_put16(cn_buf *b, uint16_t v) {
  uint8_t p[2] = {(uint8_t)(v >> 8), (uint8_t)v};
  return cn_buf_append(b, p, 2);
}
int cn_buf_put32(cn_buf *b, uint32_t v) {
  uint8_t p[4];
  cn_set32(p, v);
  return cn_buf_append(b, p, 4);
}
int cn_buf_put64(cn_buf *b, uint64_t v) {
  uint8_t p[8];
  cn_set32(p, (uint32_t)(v >> 32));
  cn_set32(p + 4, (uint32_t)v);
  return cn_buf_append(b, p, 8);
}

int cn_buf_printf(cn_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return CN_EINVAL;
  if (cn_buf_reserve(b, (size_t)n)) return CN_ENOMEM;
  va_start(ap, fmt);
  vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

void cn_buf_consume(cn_buf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
  } else {
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
  }
  if (b->data) b->data[b->len] = 0;
}

void cn_buf_free(cn_buf *b) {
  cn_free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

int cn_stable_sort(void *base, size_t n, size_t size, void *tmp, cn_cmp_fn cmp, void *ctx) {
  uint8_t *src = base, *dst = tmp;
  for (size_t w = 1; w < n; w *= 2) {
    for (size_t lo = 0; lo < n; lo += 2 * w) {
      size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
      size_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi) {
        int c, r = cmp(src + j * size, src + i * size, ctx, &c);
        if (r) return r;
        /* Only a strictly smaller right element goes first: that is what keeps the sort stable. */
        memcpy(dst + k++ * size, c < 0 ? src + j++ * size : src + i++ * size, size);
      }
      memcpy(dst + k * size, src + i * size, (mid - i) * size);
      k += mid - i;
      memcpy(dst + k * size, src + j * size, (hi - j) * size);
    }
    uint8_t *x = src;
    src = dst;
    dst = x;
  }
  if (src != (uint8_t *)base) memcpy(base, src, n * size);
  return 0;
}

int cn_memeq_ct(const void *a, const void *b, size_t n) {
  const volatile uint8_t *x = a, *y = b;
  uint8_t d = 0;
  for (size_t i = 0; i < n; i++) d |= (uint8_t)(x[i] ^ y[i]);
  return d != 0;
}

/* ---- cn_chunk ---------------------------------------------------------------------------------------------- */

struct cn_chunk {
  atomic_size_t refs;
  size_t cap;
  max_align_t data[]; /* cap bytes */
};

cn_chunk *cn_chunk_new(size_t cap) {
  if (cap > SIZE_MAX - sizeof(cn_chunk)) return NULL;
  cn_chunk *c = cn_malloc(sizeof *c + cap);
  if (!c) return NULL;
  atomic_init(&c->refs, 1);
  c->cap = cap;
  return c;
}

cn_chunk *cn_chunk_resize(cn_chunk *c, size_t cap) {
  if (cn_chunk_shared(c) || cap > SIZE_MAX - sizeof(cn_chunk)) return NULL;
  cn_chunk *p = cn_realloc(c, sizeof *c + cap);
  if (!p) return NULL;
  p->cap = cap;
  return p;
}

uint8_t *cn_chunk_data(cn_chunk *c) { return (uint8_t *)c->data; }
size_t cn_chunk_cap(const cn_chunk *c) { return c->cap; }

void cn_chunk_retain(cn_chunk *c) {
  if (c) atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void cn_chunk_release(cn_chunk *c) {
  if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1) cn_free(c);
}

bool cn_chunk_shared(const cn_chunk *c) { return atomic_load_explicit(&c->refs, memory_order_acquire) > 1; }

cn_chunk *cn_chunk_pool_take(cn_chunk_pool *p, size_t need) {
  size_t pick = CN_CHUNK_POOL;
  for (size_t i = 0; i < CN_CHUNK_POOL; i++) {
    cn_chunk *k = p->k[i];
    if (!k || cn_chunk_shared(k)) continue;
    if (k->cap >= need) {
      pick = i;
      break;
    }
    if (pick == CN_CHUNK_POOL || k->cap > p->k[pick]->cap) pick = i;
  }
  if (pick == CN_CHUNK_POOL) return NULL;
  cn_chunk *k = p->k[pick];
  if (k->cap < need && !(k = cn_chunk_resize(k, need))) return NULL;
  p->k[pick] = NULL;
  return k;
}

void cn_chunk_pool_put(cn_chunk_pool *p, cn_chunk *k) {
  if (!k) return;
  for (size_t i = 0; i < CN_CHUNK_POOL; i++) {
    if (!p->k[i]) {
      p->k[i] = k;
      return;
    }
  }
  cn_chunk_release(p->k[0]);
  memmove(&p->k[0], &p->k[1], (CN_CHUNK_POOL - 1) * sizeof p->k[0]);
  p->k[CN_CHUNK_POOL - 1] = k;
}

void cn_chunk_pool_clear(cn_chunk_pool *p) {
  for (size_t i = 0; i < CN_CHUNK_POOL; i++) {
    cn_chunk_release(p->k[i]);
    p->k[i] = NULL;
  }
}
