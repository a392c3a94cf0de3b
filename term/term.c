/* term.c: the term value model: constructors, deep copy, free, exact equality and accessors.
 * Compound terms own arrays of child values; a child passed to a constructor is moved in, its shell freed (a
 * decoded child, whose parts share its one allocation, is copied out first unless it owns none). */
#include <stdlib.h>
#include <string.h>

#include "term_int.h"

static cn_term *alloc_term(uint8_t type) {
  cn_term *t = cn_calloc(1, sizeof *t);
  if (t) t->type = type;
  return t;
}

void term_clear(cn_term *t) {
  switch (t->type) {
  case CN_BIG: cn_free(t->v.big.mag); break;
  case CN_BINARY:
    if (t->v.bin.chunk) cn_chunk_release(t->v.bin.chunk); /* the term's own reference (see term_copy_into) */
    else cn_free(t->v.bin.data);
    break;
  case CN_FUN: cn_free(t->v.fun.ext); break;
  case CN_TUPLE:
    for (uint32_t i = 0; i < t->v.tuple.arity; i++) term_clear(&t->v.tuple.e[i]);
    cn_free(t->v.tuple.e);
    break;
  case CN_LIST:
    for (uint32_t i = 0; i < t->v.list.len; i++) term_clear(&t->v.list.e[i]);
    cn_free(t->v.list.e);
    cn_term_free(t->v.list.tail);
    break;
  case CN_MAP:
    for (uint32_t i = 0; i < 2 * t->v.map.size; i++) term_clear(&t->v.map.kv[i]);
    cn_free(t->v.map.kv);
    break;
  default: break;
  }
  memset(t, 0, sizeof *t);
  t->type = CN_NIL;
}

/* Drops one reference to a decoded root (its whole tree is one allocation, after a term_blk header). */
static void block_release(cn_term *t) {
  term_blk *h = (term_blk *)t - 1;
  if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) != 1) return;
  cn_chunk_release(h->chunk);
  cn_free(h);
}

void cn_term_free(cn_term *t) {
  if (!t) return;
  if (t->block) {
    block_release(t);
    return;
  }
  term_clear(t);
  cn_free(t);
}

cn_term *cn_term_retain(const cn_term *t) {
  if (!t || !t->block) return cn_term_copy(t);
  term_blk *h = (term_blk *)t - 1;
  atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
  return (cn_term *)t;
}

/* Whether the value points to storage (arrays, bytes) that it owns. */
static bool owns_storage(const cn_term *t) {
  switch (t->type) {
  case CN_BIG:
  case CN_FUN:
  case CN_LIST: return true;
  case CN_BINARY: return t->v.bin.data != NULL;
  case CN_TUPLE: return t->v.tuple.e != NULL;
  case CN_MAP: return t->v.map.kv != NULL;
  default: return false;
  }
}

/* Moves the value of heap root r into *dst and frees r's shell. A decoded root's parts live in its own
 * allocation, so they are deep-copied out first (unless it owns none). 0, or CN_ENOMEM: r freed, *dst nil. */
static int take_value(cn_term *dst, cn_term *r) {
  if (r->block) { /* the parts may be shared with other references, and always with the block */
    int rc = owns_storage(r) ? term_copy_into(dst, r) : (*dst = *r, dst->block = 0, 0);
    block_release(r);
    return rc;
  }
  *dst = *r;
  cn_free(r);
  return 0;
}

bool term_big_to_int(int negative, const uint8_t *mag_le, size_t *n, int64_t *v) {
  size_t k = *n;
  while (k && mag_le[k - 1] == 0) k--; /* canonical: no high zero bytes */
  *n = k;
  if (k > 8) return false;
  uint64_t u = 0;
  for (size_t i = k; i-- > 0;) u = (u << 8) | mag_le[i];
  if (!negative && u <= (uint64_t)INT64_MAX) {
    *v = (int64_t)u;
    return true;
  }
  if (negative && u <= (uint64_t)INT64_MAX + 1) {
    *v = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
    return true;
  }
  return false;
}

cn_term *cn_mk_int(int64_t v) {
  cn_term *t = alloc_term(CN_INT);
  if (t) t->v.i = v;
  return t;
}

cn_term *cn_mk_big(int negative, const uint8_t *mag_le, size_t n) {
  int64_t iv;
  if (term_big_to_int(negative, mag_le, &n, &iv)) return cn_mk_int(iv);
  if (n > UINT32_MAX) return NULL;
  cn_term *t = alloc_term(CN_BIG);
  if (!t) return NULL;
  t->v.big.mag = cn_malloc(n);
  if (!t->v.big.mag) {
    cn_free(t);
    return NULL;
  }
  memcpy(t->v.big.mag, mag_le, n);
  t->v.big.n = (uint32_t)n;
  t->v.big.sign = negative ? 1 : 0;
  return t;
}

cn_term *cn_mk_float(double v) {
  cn_term *t = alloc_term(CN_FLOAT);
  if (t) t->v.f = v;
  return t;
}

cn_term *cn_mk_atom(const cn_atom *a) {
  if (!a) return NULL;
  cn_term *t = alloc_term(CN_ATOM);
  if (t) t->v.atom = a;
  return t;
}

cn_term *cn_mk_bitstring(const void *data, size_t size, uint8_t bits) {
  if (bits < 1 || bits > 8 || (size && !data)) return NULL;
  cn_term *t = alloc_term(CN_BINARY);
  if (!t) return NULL;
  if (size >= CN_BINARY_CHUNK_MIN) { /* refcounted: written to a socket and copied without copying the bytes */
    cn_chunk *k = cn_chunk_new(size);
    if (!k) {
      cn_free(t);
      return NULL;
    }
    t->v.bin.chunk = k;
    t->v.bin.data = cn_chunk_data(k);
  } else if (size) {
    t->v.bin.data = cn_malloc(size);
    if (!t->v.bin.data) {
      cn_free(t);
      return NULL;
    }
  }
  if (size) {
    memcpy(t->v.bin.data, data, size);
    /* The bits past the end are not part of the value; zero them so equality and encoding are exact. */
    t->v.bin.data[size - 1] &= (uint8_t)(0xFF << (8 - bits));
  }
  t->v.bin.size = size;
  t->v.bin.bits = size ? bits : 8;
  return t;
}

cn_term *cn_mk_binary(const void *data, size_t len) { return cn_mk_bitstring(data, len, 8); }

cn_term *cn_mk_binary_chunk(cn_chunk *k, size_t off, size_t len) {
  if (!k || off > cn_chunk_cap(k) || len > cn_chunk_cap(k) - off) return NULL;
  cn_term *t = alloc_term(CN_BINARY);
  if (!t) return NULL;
  cn_chunk_retain(k);
  t->v.bin.chunk = k;
  t->v.bin.data = cn_chunk_data(k) + off;
  t->v.bin.size = len;
  t->v.bin.bits = 8;
  return t;
}

cn_term *cn_mk_nil(void) { return alloc_term(CN_NIL); }

cn_term *cn_mk_string(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s);
  if (n == 0) return cn_mk_nil();
  if (n > UINT32_MAX) return NULL;
  cn_term *t = alloc_term(CN_LIST);
  if (!t) return NULL;
  t->v.list.e = cn_calloc(n, sizeof(cn_term));
  if (!t->v.list.e) {
    cn_free(t);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    t->v.list.e[i].type = CN_INT;
    t->v.list.e[i].v.i = (uint8_t)s[i];
  }
  t->v.list.len = (uint32_t)n;
  return t;
}

static void free_all(size_t n, cn_term **elems) {
  for (size_t i = 0; i < n; i++) cn_term_free(elems[i]);
}

static bool any_null(size_t n, cn_term **elems) {
  for (size_t i = 0; i < n; i++)
    if (!elems[i]) return true;
  return false;
}

/* Moves n heap roots into arr and frees their shells; on failure every child is freed (arr left empty). */
static int move_into(cn_term *arr, size_t n, cn_term **elems) {
  for (size_t i = 0; i < n; i++) {
    if (take_value(&arr[i], elems[i])) {
      free_all(n - i - 1, elems + i + 1);
      while (i-- > 0) term_clear(&arr[i]);
      return CN_ENOMEM;
    }
  }
  return 0;
}

/* Moves n heap roots into a new value array and frees their shells; NULL (children freed) on failure. */
static cn_term *move_array(size_t n, cn_term **elems) {
  cn_term *arr = cn_malloc(n * sizeof *arr);
  if (!arr) {
    free_all(n, elems);
    return NULL;
  }
  if (move_into(arr, n, elems)) {
    cn_free(arr);
    return NULL;
  }
  return arr;
}

cn_term *cn_mk_tuplev(size_t n, cn_term **elems) {
  if (n && (!elems || any_null(n, elems) || n > UINT32_MAX)) {
    if (elems) free_all(n, elems);
    return NULL;
  }
  cn_term *t = alloc_term(CN_TUPLE);
  if (!t) {
    free_all(n, elems);
    return NULL;
  }
  if (n) {
    t->v.tuple.e = move_array(n, elems);
    if (!t->v.tuple.e) {
      cn_free(t);
      return NULL;
    }
  }
  t->v.tuple.arity = (uint32_t)n;
  return t;
}

/* Collects variadic children into a small array; the stack is enough for the usual handful. */
#define VA_COLLECT(n, arr, last)                                                                                       \
  cn_term *stack_[16];                                                                                                 \
  cn_term **arr = (n) <= 16 ? stack_ : cn_malloc((n) * sizeof(cn_term *));                                             \
  va_list ap_;                                                                                                         \
  va_start(ap_, last);                                                                                                 \
  if (!arr) {                                                                                                          \
    for (size_t i_ = 0; i_ < (n); i_++) cn_term_free(va_arg(ap_, cn_term *));                                          \
    va_end(ap_);                                                                                                       \
    return NULL;                                                                                                       \
  }                                                                                                                    \
  for (size_t i_ = 0; i_ < (n); i_++) arr[i_] = va_arg(ap_, cn_term *);                                                \
  va_end(ap_)

cn_term *cn_mk_tuple(size_t n, ...) {
  VA_COLLECT(n, elems, n);
  cn_term *t = cn_mk_tuplev(n, elems);
  if (elems != stack_) cn_free(elems);
  return t;
}

cn_term *cn_mk_list(size_t n, ...) {
  VA_COLLECT(n, elems, n);
  cn_term *t = cn_mk_listv(n, elems, NULL);
  if (elems != stack_) cn_free(elems);
  return t;
}

cn_term *cn_mk_listv(size_t n, cn_term **elems, cn_term *tail) {
  if (n && (!elems || any_null(n, elems))) {
    if (elems) free_all(n, elems);
    cn_term_free(tail);
    return NULL;
  }
  if (tail && tail->type == CN_NIL) {
    cn_term_free(tail);
    tail = NULL;
  }
  if (n == 0) return tail ? tail : cn_mk_nil();       /* [ | T] is T itself */
  if (tail && tail->type == CN_LIST && tail->block) { /* its cells live in its block: splice a copy */
    cn_term *c = cn_term_copy(tail);
    cn_term_free(tail);
    if (!(tail = c)) {
      free_all(n, elems);
      return NULL;
    }
  }
  size_t extra = tail && tail->type == CN_LIST ? tail->v.list.len : 0;
  if (n + extra > UINT32_MAX) {
    free_all(n, elems);
    cn_term_free(tail);
    return NULL;
  }
  cn_term *t = alloc_term(CN_LIST);
  cn_term *arr = t ? cn_malloc((n + extra) * sizeof *arr) : NULL;
  if (!arr) {
    cn_free(t);
    free_all(n, elems);
    cn_term_free(tail);
    return NULL;
  }
  if (move_into(arr, n, elems)) {
    cn_free(arr);
    cn_free(t);
    cn_term_free(tail);
    return NULL;
  }
  if (extra) { /* splice a list tail so the result stays canonical: one array, non-list tail */
    memcpy(arr + n, tail->v.list.e, extra * sizeof *arr);
    cn_free(tail->v.list.e);
    cn_term *tt = tail->v.list.tail;
    cn_free(tail);
    tail = tt;
  }
  t->v.list.e = arr;
  t->v.list.len = (uint32_t)(n + extra);
  t->v.list.tail = tail;
  return t;
}

cn_term *cn_mk_map(size_t n, cn_term **kv) {
  if (n && (!kv || n > UINT32_MAX || any_null(2 * n, kv))) {
    if (kv) free_all(2 * n, kv);
    return NULL;
  }
  cn_term *t = alloc_term(CN_MAP);
  if (!t) {
    free_all(2 * n, kv);
    return NULL;
  }
  if (n) {
    t->v.map.kv = move_array(2 * n, kv);
    if (!t->v.map.kv) {
      cn_free(t);
      return NULL;
    }
  }
  t->v.map.size = (uint32_t)n;
  return t;
}

void *term_stack_grow(void *frames, void *inl, size_t n, size_t *cap, size_t elem) {
  size_t ncap = *cap * 2;
  void *nf = frames == inl ? cn_malloc(ncap * elem) : cn_realloc(frames, ncap * elem);
  if (!nf) return NULL;
  if (frames == inl) memcpy(nf, inl, n * elem);
  *cap = ncap;
  return nf;
}

cn_term *cn_mk_pid(cn_pid pid) {
  if (!pid.node) return NULL;
  cn_term *t = alloc_term(CN_PID);
  if (t) t->v.pid = pid;
  return t;
}

cn_term *cn_mk_port(cn_port port) {
  if (!port.node) return NULL;
  cn_term *t = alloc_term(CN_PORT);
  if (t) t->v.port = port;
  return t;
}

cn_term *cn_mk_ref(cn_ref ref) {
  if (!ref.node || ref.len < 1 || ref.len > CN_REF_MAX_WORDS) return NULL;
  cn_term *t = alloc_term(CN_REF);
  if (t) {
    for (uint32_t i = ref.len; i < CN_REF_MAX_WORDS; i++) ref.n[i] = 0; /* unused words do not count */
    t->v.ref = ref;
  }
  return t;
}

static void *dup_bytes(const void *p, size_t n) {
  if (!n) return NULL;
  void *d = cn_malloc(n);
  if (d) memcpy(d, p, n);
  return d;
}

/* Copies n values into a new array; on failure everything copied so far is freed. */
static int copy_array(cn_term **dst, const cn_term *src, size_t n) {
  *dst = NULL;
  if (!n) return 0;
  cn_term *a = cn_malloc(n * sizeof *a);
  if (!a) return CN_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (term_copy_into(&a[i], &src[i]) != 0) {
      while (i-- > 0) term_clear(&a[i]);
      cn_free(a);
      return CN_ENOMEM;
    }
  }
  *dst = a;
  return 0;
}

int term_copy_into(cn_term *dst, const cn_term *src) {
  *dst = *src;
  dst->block = 0; /* the copy owns its parts separately */
  switch (src->type) {
  case CN_BIG:
    dst->v.big.mag = dup_bytes(src->v.big.mag, src->v.big.n);
    if (src->v.big.n && !dst->v.big.mag) goto fail;
    break;
  case CN_BINARY:
    dst->v.bin.chunk = NULL;
    if (src->v.bin.size >= CN_BINARY_CHUNK_MIN) { /* as cn_mk_binary: its own chunk (not a received one's) */
      if (!(dst->v.bin.chunk = cn_chunk_new(src->v.bin.size))) goto fail;
      dst->v.bin.data = cn_chunk_data(dst->v.bin.chunk);
      memcpy(dst->v.bin.data, src->v.bin.data, src->v.bin.size);
      break;
    }
    dst->v.bin.data = dup_bytes(src->v.bin.data, src->v.bin.size);
    if (src->v.bin.size && !dst->v.bin.data) goto fail;
    break;
  case CN_FUN:
    dst->v.fun.ext = dup_bytes(src->v.fun.ext, src->v.fun.len);
    if (src->v.fun.len && !dst->v.fun.ext) goto fail;
    break;
  case CN_TUPLE:
    if (copy_array(&dst->v.tuple.e, src->v.tuple.e, src->v.tuple.arity)) goto fail;
    break;
  case CN_MAP:
    if (copy_array(&dst->v.map.kv, src->v.map.kv, 2 * (size_t)src->v.map.size)) goto fail;
    break;
  case CN_LIST:
    if (copy_array(&dst->v.list.e, src->v.list.e, src->v.list.len)) goto fail;
    if (src->v.list.tail) {
      dst->v.list.tail = cn_term_copy(src->v.list.tail);
      if (!dst->v.list.tail) {
        for (uint32_t i = 0; i < src->v.list.len; i++) term_clear(&dst->v.list.e[i]);
        cn_free(dst->v.list.e);
        goto fail;
      }
    }
    break;
  default: break;
  }
  return 0;
fail:
  memset(dst, 0, sizeof *dst);
  dst->type = CN_NIL;
  return CN_ENOMEM;
}

cn_term *cn_term_copy(const cn_term *t) {
  if (!t) return NULL;
  cn_term *c = cn_malloc(sizeof *c);
  if (!c) return NULL;
  if (term_copy_into(c, t) != 0) {
    cn_free(c);
    return NULL;
  }
  return c;
}

bool cn_is_atom(const cn_term *t, const char *name) {
  return t && name && t->type == CN_ATOM && t->v.atom && strlen(name) == t->v.atom->len &&
         memcmp(t->v.atom->name, name, t->v.atom->len) == 0;
}

bool cn_pid_eq(cn_pid a, cn_pid b) {
  return a.node == b.node && a.id == b.id && a.serial == b.serial && a.creation == b.creation;
}

bool cn_ref_eq(const cn_ref *a, const cn_ref *b) {
  return a->node == b->node && a->creation == b->creation && a->len == b->len && a->len <= CN_REF_MAX_WORDS &&
         !memcmp(a->n, b->n, a->len * sizeof a->n[0]);
}

const cn_term *cn_tuple_elem(const cn_term *t, uint32_t arity, uint32_t i) {
  if (!t || t->type != CN_TUPLE || t->v.tuple.arity != arity || i >= arity) return NULL;
  return &t->v.tuple.e[i];
}
