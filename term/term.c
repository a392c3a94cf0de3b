/* term.c: the term value model: constructors, deep copy, free, structural equality and accessors.
 * Compound terms own arrays of child values; a child passed to a constructor is moved in, its shell freed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "term_int.h"

static cn_term *alloc_term(uint8_t type) {
  cn_term *t = cn_calloc(1, sizeof *t);
  if (t)
    t->type = type;
  return t;
}

void term_clear(cn_term *t) {
  switch (t->type) {
  case CN_BIG:
    cn_free(t->v.big.mag);
    break;
  case CN_BINARY:
    cn_free(t->v.bin.data);
    break;
  case CN_FUN:
    cn_free(t->v.fun.ext);
    break;
  case CN_TUPLE:
    for (uint32_t i = 0; i < t->v.tuple.arity; i++)
      term_clear(&t->v.tuple.e[i]);
    cn_free(t->v.tuple.e);
    break;
  case CN_LIST:
    for (uint32_t i = 0; i < t->v.list.len; i++)
      term_clear(&t->v.list.e[i]);
    cn_free(t->v.list.e);
    cn_term_free(t->v.list.tail);
    break;
  case CN_MAP:
    for (uint32_t i = 0; i < 2 * t->v.map.size; i++)
      term_clear(&t->v.map.kv[i]);
    cn_free(t->v.map.kv);
    break;
  default:
    break;
  }
  memset(t, 0, sizeof *t);
  t->type = CN_NIL;
}

void cn_term_free(cn_term *t) {
  if (!t)
    return;
  term_clear(t);
  cn_free(t);
}

cn_term *cn_mk_int(int64_t v) {
  cn_term *t = alloc_term(CN_INT);
  if (t)
    t->v.i = v;
  return t;
}

cn_term *cn_mk_big(int negative, const uint8_t *mag_le, size_t n) {
  while (n && mag_le[n - 1] == 0)
    n--; /* canonical: no high zero bytes */
  if (n <= 8) {
    uint64_t u = 0;
    for (size_t i = n; i-- > 0;)
      u = (u << 8) | mag_le[i];
    if (!negative && u <= (uint64_t)INT64_MAX)
      return cn_mk_int((int64_t)u);
    if (negative && u <= (uint64_t)INT64_MAX + 1)
      return cn_mk_int(u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u);
  }
  if (n > UINT32_MAX)
    return NULL;
  cn_term *t = alloc_term(CN_BIG);
  if (!t)
    return NULL;
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
  if (t)
    t->v.f = v;
  return t;
}

cn_term *cn_mk_atom(const cn_atom *a) {
  if (!a)
    return NULL;
  cn_term *t = alloc_term(CN_ATOM);
  if (t)
    t->v.atom = a;
  return t;
}

cn_term *cn_mk_bitstring(const void *data, size_t size, uint8_t bits) {
  if (bits < 1 || bits > 8 || (size && !data))
    return NULL;
  cn_term *t = alloc_term(CN_BINARY);
  if (!t)
    return NULL;
  if (size) {
    t->v.bin.data = cn_malloc(size);
    if (!t->v.bin.data) {
      cn_free(t);
      return NULL;
    }
    memcpy(t->v.bin.data, data, size);
    /* The bits past the end are not part of the value; zero them so equality and encoding are exact. */
    t->v.bin.data[size - 1] &= (uint8_t)(0xFF << (8 - bits));
  }
  t->v.bin.size = size;
  t->v.bin.bits = size ? bits : 8;
  return t;
}

cn_term *cn_mk_binary(const void *data, size_t len) { return cn_mk_bitstring(data, len, 8); }

cn_term *cn_mk_nil(void) { return alloc_term(CN_NIL); }

cn_term *cn_mk_string(const char *s) {
  if (!s)
    return NULL;
  size_t n = strlen(s);
  if (n == 0)
    return cn_mk_nil();
  if (n > UINT32_MAX)
    return NULL;
  cn_term *t = alloc_term(CN_LIST);
  if (!t)
    return NULL;
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
  for (size_t i = 0; i < n; i++)
    cn_term_free(elems[i]);
}

static bool any_null(size_t n, cn_term **elems) {
  for (size_t i = 0; i < n; i++)
    if (!elems[i])
      return true;
  return false;
}

/* Moves n heap roots into a new value array and frees their shells; NULL (children freed) on failure. */
static cn_term *move_array(size_t n, cn_term **elems) {
  cn_term *arr = cn_malloc(n * sizeof *arr);
  if (!arr) {
    free_all(n, elems);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    arr[i] = *elems[i];
    cn_free(elems[i]);
  }
  return arr;
}

cn_term *cn_mk_tuplev(size_t n, cn_term **elems) {
  if (n && (!elems || any_null(n, elems) || n > UINT32_MAX)) {
    if (elems)
      free_all(n, elems);
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
#define VA_COLLECT(n, arr, last)                                                                             \
  cn_term *stack_[16];                                                                                       \
  cn_term **arr = (n) <= 16 ? stack_ : cn_malloc((n) * sizeof(cn_term *));                                   \
  va_list ap_;                                                                                               \
  va_start(ap_, last);                                                                                       \
  if (!arr) {                                                                                                \
    for (size_t i_ = 0; i_ < (n); i_++)                                                                      \
      cn_term_free(va_arg(ap_, cn_term *));                                                                  \
    va_end(ap_);                                                                                             \
    return NULL;                                                                                             \
  }                                                                                                          \
  for (size_t i_ = 0; i_ < (n); i_++)                                                                        \
    arr[i_] = va_arg(ap_, cn_term *);                                                                        \
  va_end(ap_)

cn_term *cn_mk_tuple(size_t n, ...) {
  VA_COLLECT(n, elems, n);
  cn_term *t = cn_mk_tuplev(n, elems);
  if (elems != stack_)
    cn_free(elems);
  return t;
}

cn_term *cn_mk_list(size_t n, ...) {
  VA_COLLECT(n, elems, n);
  cn_term *t = cn_mk_listv(n, elems, NULL);
  if (elems != stack_)
    cn_free(elems);
  return t;
}

cn_term *cn_mk_listv(size_t n, cn_term **elems, cn_term *tail) {
  if (n && (!elems || any_null(n, elems))) {
    if (elems)
      free_all(n, elems);
    cn_term_free(tail);
    return NULL;
  }
  if (tail && tail->type == CN_NIL) {
    cn_term_free(tail);
    tail = NULL;
  }
  size_t extra = tail && tail->type == CN_LIST ? tail->v.list.len : 0;
  if (n == 0)
    return tail ? tail : cn_mk_nil(); /* [ | T] is T itself */
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
  for (size_t i = 0; i < n; i++) {
    arr[i] = *elems[i];
    cn_free(elems[i]);
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
    if (kv)
      free_all(2 * n, kv);
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

cn_term *cn_mk_pid(cn_pid pid) {
  if (!pid.node)
    return NULL;
  cn_term *t = alloc_term(CN_PID);
  if (t)
    t->v.pid = pid;
  return t;
}

cn_term *cn_mk_port(cn_port port) {
  if (!port.node)
    return NULL;
  cn_term *t = alloc_term(CN_PORT);
  if (t)
    t->v.port = port;
  return t;
}

cn_term *cn_mk_ref(cn_ref ref) {
  if (!ref.node || ref.len < 1 || ref.len > CN_REF_MAX_WORDS)
    return NULL;
  cn_term *t = alloc_term(CN_REF);
  if (t) {
    for (uint32_t i = ref.len; i < CN_REF_MAX_WORDS; i++)
      ref.n[i] = 0; /* unused words do not count */
    t->v.ref = ref;
  }
  return t;
}

static void *dup_bytes(const void *p, size_t n) {
  if (!n)
    return NULL;
  void *d = cn_malloc(n);
  if (d)
    memcpy(d, p, n);
  return d;
}

/* Copies n values into a new array; on failure everything copied so far is freed. */
static int copy_array(cn_term **dst, const cn_term *src, size_t n) {
  *dst = NULL;
  if (!n)
    return 0;
  cn_term *a = cn_malloc(n * sizeof *a);
  if (!a)
    return CN_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (term_copy_into(&a[i], &src[i]) != 0) {
      while (i-- > 0)
        term_clear(&a[i]);
      cn_free(a);
      return CN_ENOMEM;
    }
  }
  *dst = a;
  return 0;
}

int term_copy_into(cn_term *dst, const cn_term *src) {
  *dst = *src;
  switch (src->type) {
  case CN_BIG:
    dst->v.big.mag = dup_bytes(src->v.big.mag, src->v.big.n);
    if (src->v.big.n && !dst->v.big.mag)
      goto fail;
    break;
  case CN_BINARY:
    dst->v.bin.data = dup_bytes(src->v.bin.data, src->v.bin.size);
    if (src->v.bin.size && !dst->v.bin.data)
      goto fail;
    break;
  case CN_FUN:
    dst->v.fun.ext = dup_bytes(src->v.fun.ext, src->v.fun.len);
    if (src->v.fun.len && !dst->v.fun.ext)
      goto fail;
    break;
  case CN_TUPLE:
    if (copy_array(&dst->v.tuple.e, src->v.tuple.e, src->v.tuple.arity))
      goto fail;
    break;
  case CN_MAP:
    if (copy_array(&dst->v.map.kv, src->v.map.kv, 2 * (size_t)src->v.map.size))
      goto fail;
    break;
  case CN_LIST:
    if (copy_array(&dst->v.list.e, src->v.list.e, src->v.list.len))
      goto fail;
    if (src->v.list.tail) {
      dst->v.list.tail = cn_term_copy(src->v.list.tail);
      if (!dst->v.list.tail) {
        for (uint32_t i = 0; i < src->v.list.len; i++)
          term_clear(&dst->v.list.e[i]);
        cn_free(dst->v.list.e);
        goto fail;
      }
    }
    break;
  default:
    break;
  }
  return 0;
fail:
  memset(dst, 0, sizeof *dst);
  dst->type = CN_NIL;
  return CN_ENOMEM;
}

cn_term *cn_term_copy(const cn_term *t) {
  if (!t)
    return NULL;
  cn_term *c = cn_malloc(sizeof *c);
  if (!c)
    return NULL;
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

const cn_term *cn_tuple_elem(const cn_term *t, uint32_t arity, uint32_t i) {
  if (!t || t->type != CN_TUPLE || t->v.tuple.arity != arity || i >= arity)
    return NULL;
  return &t->v.tuple.e[i];
}

static bool atom_eq(const cn_atom *a, const cn_atom *b) {
  /* One table gives one pointer per atom; the text compare only runs for atoms of different tables. */
  return a == b || (a && b && a->len == b->len && memcmp(a->name, b->name, a->len) == 0);
}

/* A structural hash consistent with cn_term_eq (0.0 and -0.0 hash alike), used to match map keys. */
static uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  return h;
}
static uint64_t hash_bytes(uint64_t h, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 1099511628211ull;
  return h;
}
static uint64_t term_hash(const cn_term *t) {
  uint64_t h = mix(14695981039346656037ull, t->type);
  switch (t->type) {
  case CN_INT:
    return mix(h, (uint64_t)t->v.i);
  case CN_BIG:
    return hash_bytes(mix(h, t->v.big.sign), t->v.big.mag, t->v.big.n);
  case CN_FLOAT: {
    double d = t->v.f == 0.0 ? 0.0 : t->v.f;
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return mix(h, u);
  }
  case CN_ATOM:
    return hash_bytes(h, (const uint8_t *)t->v.atom->name, t->v.atom->len);
  case CN_PID:
    return mix(mix(mix(h, t->v.pid.id), t->v.pid.serial), t->v.pid.creation);
  case CN_PORT:
    return mix(mix(h, t->v.port.id), t->v.port.creation);
  case CN_REF:
    for (uint32_t i = 0; i < t->v.ref.len; i++)
      h = mix(h, t->v.ref.n[i]);
    return h;
  case CN_FUN:
    return hash_bytes(h, t->v.fun.ext, t->v.fun.len);
  case CN_BINARY:
    return hash_bytes(mix(h, t->v.bin.bits), t->v.bin.data, t->v.bin.size);
  case CN_TUPLE:
    for (uint32_t i = 0; i < t->v.tuple.arity; i++)
      h = mix(h, term_hash(&t->v.tuple.e[i]));
    return h;
  case CN_LIST:
    for (uint32_t i = 0; i < t->v.list.len; i++)
      h = mix(h, term_hash(&t->v.list.e[i]));
    return t->v.list.tail ? mix(h, term_hash(t->v.list.tail)) : h;
  case CN_MAP: { /* order-independent: sum of pair hashes */
    uint64_t s = 0;
    for (uint32_t i = 0; i < t->v.map.size; i++)
      s += mix(term_hash(&t->v.map.kv[2 * i]), term_hash(&t->v.map.kv[2 * i + 1]));
    return mix(h, s);
  }
  default:
    return h;
  }
}

typedef struct {
  uint64_t h;
  uint32_t i;
} hidx;

static int hidx_cmp(const void *a, const void *b) {
  const hidx *x = a, *y = b;
  if (x->h != y->h)
    return x->h < y->h ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

/* Maps are equal when they hold the same pairs in any order. Same order is the common case (both sides
 * decoded from the BEAM), so try it first; otherwise group keys by hash to stay near-linear. */
static bool map_eq(const cn_term *a, const cn_term *b) {
  uint32_t n = a->v.map.size;
  if (n != b->v.map.size)
    return false;
  uint32_t i = 0;
  while (i < n && cn_term_eq(&a->v.map.kv[2 * i], &b->v.map.kv[2 * i])) {
    if (!cn_term_eq(&a->v.map.kv[2 * i + 1], &b->v.map.kv[2 * i + 1]))
      return false;
    i++;
  }
  if (i == n)
    return true;
  hidx *ha = cn_malloc(2 * (size_t)n * sizeof *ha);
  if (!ha) { /* out of memory: fall back to a quadratic search rather than a wrong answer */
    for (uint32_t x = 0; x < n; x++) {
      uint32_t y = 0;
      while (y < n && !cn_term_eq(&a->v.map.kv[2 * x], &b->v.map.kv[2 * y]))
        y++;
      if (y == n || !cn_term_eq(&a->v.map.kv[2 * x + 1], &b->v.map.kv[2 * y + 1]))
        return false;
    }
    return true;
  }
  hidx *hb = ha + n;
  for (uint32_t x = 0; x < n; x++) {
    ha[x] = (hidx){term_hash(&a->v.map.kv[2 * x]), x};
    hb[x] = (hidx){term_hash(&b->v.map.kv[2 * x]), x};
  }
  qsort(ha, n, sizeof *ha, hidx_cmp);
  qsort(hb, n, sizeof *hb, hidx_cmp);
  bool ok = true;
  /* Keys of a map are distinct, so within one hash group each key of a must find its twin in b. */
  for (uint32_t x = 0; x < n && ok; x++) {
    if (ha[x].h != hb[x].h) {
      ok = false;
      break;
    }
    uint32_t g0 = x;
    while (g0 > 0 && hb[g0 - 1].h == ha[x].h)
      g0--;
    ok = false;
    for (uint32_t y = g0; y < n && hb[y].h == ha[x].h; y++) {
      const cn_term *ka = &a->v.map.kv[2 * ha[x].i], *kb = &b->v.map.kv[2 * hb[y].i];
      if (cn_term_eq(ka, kb)) {
        ok = cn_term_eq(ka + 1, kb + 1);
        break;
      }
    }
  }
  cn_free(ha);
  return ok;
}

bool cn_term_eq(const cn_term *a, const cn_term *b) {
  if (a == b)
    return true;
  if (!a || !b || a->type != b->type)
    return false;
  switch (a->type) {
  case CN_INT:
    return a->v.i == b->v.i;
  case CN_BIG:
    return a->v.big.sign == b->v.big.sign && a->v.big.n == b->v.big.n &&
           memcmp(a->v.big.mag, b->v.big.mag, a->v.big.n) == 0;
  case CN_FLOAT:
    /* OTP 25/26 semantics: 0.0 =:= -0.0 is true (OTP 27 made them differ). The BEAM has no NaN. */
    return a->v.f == b->v.f;
  case CN_ATOM:
    return atom_eq(a->v.atom, b->v.atom);
  case CN_REF:
    return atom_eq(a->v.ref.node, b->v.ref.node) && a->v.ref.creation == b->v.ref.creation &&
           a->v.ref.len == b->v.ref.len &&
           memcmp(a->v.ref.n, b->v.ref.n, a->v.ref.len * sizeof(uint32_t)) == 0;
  case CN_FUN:
    return a->v.fun.len == b->v.fun.len && memcmp(a->v.fun.ext, b->v.fun.ext, a->v.fun.len) == 0;
  case CN_PORT:
    return atom_eq(a->v.port.node, b->v.port.node) && a->v.port.id == b->v.port.id &&
           a->v.port.creation == b->v.port.creation;
  case CN_PID:
    return atom_eq(a->v.pid.node, b->v.pid.node) && a->v.pid.id == b->v.pid.id &&
           a->v.pid.serial == b->v.pid.serial && a->v.pid.creation == b->v.pid.creation;
  case CN_TUPLE:
    if (a->v.tuple.arity != b->v.tuple.arity)
      return false;
    for (uint32_t i = 0; i < a->v.tuple.arity; i++)
      if (!cn_term_eq(&a->v.tuple.e[i], &b->v.tuple.e[i]))
        return false;
    return true;
  case CN_MAP:
    return map_eq(a, b);
  case CN_NIL:
    return true;
  case CN_LIST:
    if (a->v.list.len != b->v.list.len)
      return false;
    for (uint32_t i = 0; i < a->v.list.len; i++)
      if (!cn_term_eq(&a->v.list.e[i], &b->v.list.e[i]))
        return false;
    return cn_term_eq(a->v.list.tail, b->v.list.tail);
  case CN_BINARY:
    return a->v.bin.size == b->v.bin.size && a->v.bin.bits == b->v.bin.bits &&
           (a->v.bin.size == 0 || memcmp(a->v.bin.data, b->v.bin.data, a->v.bin.size) == 0);
  default:
    return false;
  }
}
