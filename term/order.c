/* order.c: Erlang term order and equality as erts_cmp and eq define them, per OTP release (25/26, or 27+ where
 * -0.0 and 0.0 differ): compare (erlang:'<'/2, lists:sort/1), arithmetic equality (==) and exact equality (=:=).
 * Iterative, so depth costs heap, not stack. */
#include <math.h>
#include <string.h>

#include <ei.h>

#include "term_int.h"

int term_text_cmp(const uint8_t *a, size_t an, int a_utf8, const uint8_t *b, size_t bn, int b_utf8) {
  if (a_utf8 == b_utf8) { /* UTF-8 byte order is code point order */
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c) return c < 0 ? -1 : 1;
    return an < bn ? -1 : an > bn;
  }
  size_t i = 0, j = 0;
  while (i < an && j < bn) {
    uint32_t x = a_utf8 ? term_utf8_next(a, an, &i) : a[i++];
    uint32_t y = b_utf8 ? term_utf8_next(b, bn, &j) : b[j++];
    if (x != y) return x < y ? -1 : 1;
  }
  return i < an ? 1 : j < bn ? -1 : 0;
}

/* ---- scalars ----------------------------------------------------------------------------------------- */

static int atom_cmp(const cn_atom *a, const cn_atom *b) {
  if (a == b) return 0;
  return term_text_cmp((const uint8_t *)a->name, a->len, 1, (const uint8_t *)b->name, b->len, 1);
}

/* Nodes order by name, then creation (CMP_NODES). */
static int node_cmp(const cn_atom *an, uint32_t ac, const cn_atom *bn, uint32_t bc) {
  int c = atom_cmp(an, bn);
  if (c) return c;
  return ac < bc ? -1 : ac > bc;
}

/* An integer as sign and little-endian magnitude, whether it is CN_INT or CN_BIG. */
typedef struct intv {
  int neg;
  const uint8_t *mag;
  size_t n;
  uint8_t buf[8];
} intv;

static void int_view(const cn_term *t, intv *v) {
  if (t->type == CN_INT) {
    uint64_t u = t->v.i < 0 ? 0 - (uint64_t)t->v.i : (uint64_t)t->v.i;
    v->neg = t->v.i < 0;
    v->n = 0;
    while (u) {
      v->buf[v->n++] = (uint8_t)u;
      u >>= 8;
    }
    v->mag = v->buf;
  } else {
    v->mag = t->v.big.mag;
    v->n = t->v.big.n;
    while (v->n && v->mag[v->n - 1] == 0) v->n--;
    v->neg = v->n && t->v.big.sign;
  }
}

static int mag_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
  while (an && a[an - 1] == 0) an--;
  while (bn && b[bn - 1] == 0) bn--;
  if (an != bn) return an < bn ? -1 : 1;
  while (an-- > 0)
    if (a[an] != b[an]) return a[an] < b[an] ? -1 : 1;
  return 0;
}

static int int_cmp(const intv *a, const intv *b) {
  if (a->neg != b->neg) return a->neg ? -1 : 1;
  int c = mag_cmp(a->mag, a->n, b->mag, b->n);
  return a->neg ? -c : c;
}

/* Compares an integer with a double exactly, as the BEAM does (it never rounds the integer). */
static int int_dbl_cmp(const intv *x, double d) {
  if (isnan(d)) return -1; /* the BEAM has no NaN; keep the order total */
  int sx = x->n == 0 ? 0 : x->neg ? -1 : 1;
  int sd = d > 0 ? 1 : d < 0 ? -1 : 0;
  if (sx != sd) return sx < sd ? -1 : 1;
  if (sx == 0) return 0;
  if (isinf(d)) return -sd;
  int e;
  double f = frexp(fabs(d), &e);
  uint64_t m = (uint64_t)ldexp(f, 53); /* |d| = m * 2^(e - 53), m exact */
  int e2 = e - 53, mc;
  if (e2 >= 0) {
    uint8_t buf[8 + 1024 / 8 + 8] = {0};
    size_t q = (size_t)e2 / 8;
    uint64_t v = m << (e2 % 8); /* m < 2^53, so this fits */
    for (int k = 0; k < 8; k++) buf[q + k] = (uint8_t)(v >> (8 * k));
    mc = mag_cmp(x->mag, x->n, buf, q + 8);
  } else {
    int s = -e2;
    uint64_t ip = s >= 64 ? 0 : m >> s;
    int frac = s >= 64 ? m != 0 : (m & ((UINT64_C(1) << s) - 1)) != 0;
    uint8_t buf[8];
    for (int k = 0; k < 8; k++) buf[k] = (uint8_t)(ip >> (8 * k));
    mc = mag_cmp(x->mag, x->n, buf, 8);
    if (mc == 0 && frac) mc = -1;
  }
  return sx > 0 ? mc : -mc;
}

/* Floats by value; with signed_zero (exact order of OTP 27+) -0.0 comes before 0.0, as erts_cmp's exact mode
 * there orders them (measured: maps:to_list(#{0.0 => a, -0.0 => b}) lists -0.0 first on OTP 27 and 29). */
static int dbl_cmp(double a, double b, int signed_zero) {
  if (a == b && a == 0.0 && signed_zero && signbit(a) != signbit(b)) return signbit(a) ? -1 : 1;
  return a < b ? -1 : a == b ? 0 : 1;
}

/* Numbers: by value; with exact set (map keys, =:=) every integer sorts before every float, and from OTP 27
 * (sem set) -0.0 before 0.0. */
static int num_cmp(const cn_term *a, const cn_term *b, int exact, int sem) {
  if (a->type == CN_INT && b->type == CN_INT) return a->v.i < b->v.i ? -1 : a->v.i > b->v.i;
  if (a->type == CN_FLOAT && b->type == CN_FLOAT) return dbl_cmp(a->v.f, b->v.f, exact && sem);
  if (a->type != CN_FLOAT && b->type != CN_FLOAT) {
    intv x, y;
    int_view(a, &x);
    int_view(b, &y);
    return int_cmp(&x, &y);
  }
  if (exact) return a->type == CN_FLOAT ? 1 : -1;
  intv x;
  if (a->type == CN_FLOAT) {
    int_view(b, &x);
    return -int_dbl_cmp(&x, a->v.f);
  }
  int_view(a, &x);
  return int_dbl_cmp(&x, b->v.f);
}

static int is_export_fun(const cn_term *t) { return t->v.fun.len > 0 && t->v.fun.ext[0] == ERL_EXPORT_EXT; }

/* Type classes in term order; local funs come before export funs (OTP 25's FUN_DEF vs EXPORT_DEF). */
static int rank(const cn_term *t) {
  switch (t->type) {
  case CN_INT:
  case CN_BIG:
  case CN_FLOAT: return 0;
  case CN_ATOM: return 1;
  case CN_REF: return 2;
  case CN_FUN: return is_export_fun(t) ? 4 : 3;
  case CN_PORT: return 5;
  case CN_PID: return 6;
  case CN_TUPLE: return 7;
  case CN_MAP: return 8;
  case CN_NIL: return 9;
  case CN_LIST: return 10;
  case CN_BINARY: return 11;
  default: return 12;
  }
}

static uint32_t ref_word(const cn_ref *r, uint32_t i) { return i < r->len && i < CN_REF_MAX_WORDS ? r->n[i] : 0; }

/* Bitstrings compare bit by bit over the common length, then the shorter is smaller. */
static int bin_cmp(const cn_term *a, const cn_term *b) {
  size_t abits = a->v.bin.size ? (a->v.bin.size - 1) * 8 + a->v.bin.bits : 0;
  size_t bbits = b->v.bin.size ? (b->v.bin.size - 1) * 8 + b->v.bin.bits : 0;
  size_t m = abits < bbits ? abits : bbits;
  if (m / 8) {
    int c = memcmp(a->v.bin.data, b->v.bin.data, m / 8);
    if (c) return c < 0 ? -1 : 1;
  }
  if (m % 8) {
    unsigned sh = 8 - (unsigned)(m % 8);
    unsigned x = a->v.bin.data[m / 8] >> sh, y = b->v.bin.data[m / 8] >> sh;
    if (x != y) return x < y ? -1 : 1;
  }
  return abits < bbits ? -1 : abits > bbits;
}

/* The sign of a 32-bit wrapped difference: how OTP 25 compares fun indexes and old uniques. */
static int wrap_cmp(uint32_t a, uint32_t b) {
  uint32_t d = a - b;
  return d == 0 ? 0 : (d & 0x80000000u) ? -1 : 1;
}

/* ---- the compare machine ----------------------------------------------------------------------------- */

enum { CF_SEQ, CF_LIST, CF_MAP };

/* Compound terms push a frame; their children are compared pairwise until one differs. */
typedef struct cframe {
  const cn_term *a, *b; /* CF_SEQ: element arrays; CF_LIST, CF_MAP: the terms themselves */
  uint32_t i, n;
  uint32_t *oa, *ob;      /* CF_MAP: pair order by key (NULL: the stored order is already sorted) */
  cn_term *own_a, *own_b; /* CF_SEQ over fun environments: decoded tuples, freed with the frame */
  cn_atoms *tab;          /* the atom table those tuples use */
  uint8_t kind, exact, keys;
} cframe;

#define CSTACK_INLINE 24

typedef struct cstack {
  cframe *f;
  size_t n, cap;
  int sem; /* TERM_SEM_*: the release's semantics, the same for the whole comparison */
  cframe inl[CSTACK_INLINE];
} cstack;

static void frame_release(cframe *f) {
  cn_free(f->oa);
  cn_free(f->ob);
  cn_term_free(f->own_a);
  cn_term_free(f->own_b);
  if (f->tab) cn_atoms_free(f->tab);
}

static cframe *push(cstack *st) {
  if (st->n == st->cap) {
    cframe *nf = term_stack_grow(st->f, st->inl, st->n, &st->cap, sizeof *nf);
    if (!nf) return NULL;
    st->f = nf;
  }
  cframe *f = &st->f[st->n++];
  memset(f, 0, sizeof *f);
  return f;
}

static void pop(cstack *st) { frame_release(&st->f[--st->n]); }

/* A map's key/value array and the semantics its keys are ordered by. */
typedef struct pair_ctx {
  const cn_term *kv;
  int sem;
} pair_ctx;

/* Exact term order of two pair indexes of the map in ctx. */
static int pair_cmp(const void *a, const void *b, void *ctx, int *result) {
  const pair_ctx *p = ctx;
  const cn_term *kv = p->kv;
  return term_compare(&kv[2 * (size_t) * (const uint32_t *)a], &kv[2 * (size_t) * (const uint32_t *)b], 1, p->sem,
                      result);
}

/* The order of a map's pairs by key: *out stays NULL when the stored order is already ascending, the usual
 * case for maps of up to 32 keys from the BEAM, which sends those sorted. */
static int pair_order(const cn_term *m, int sem, uint32_t **out) {
  *out = NULL;
  uint32_t n = m->v.map.size;
  const cn_term *kv = m->v.map.kv;
  uint32_t i = 1;
  for (; i < n; i++) {
    int c, r = term_compare(&kv[2 * (size_t)(i - 1)], &kv[2 * (size_t)i], 1, sem, &c);
    if (r) return r;
    if (c >= 0) break;
  }
  if (i >= n) return 0;
  uint32_t *idx = cn_malloc(2 * (size_t)n * sizeof *idx);
  if (!idx) return CN_ENOMEM;
  for (uint32_t k = 0; k < n; k++) idx[k] = k;
  pair_ctx ctx = {kv, sem};
  int r = cn_stable_sort(idx, n, sizeof *idx, idx + n, pair_cmp, &ctx);
  if (r) {
    cn_free(idx);
    return r;
  }
  *out = idx;
  return 0;
}

static const cn_term NIL_TERM = {.type = CN_NIL};

/* Compares a and b if they are scalars or differ in shape (*res), or pushes a frame for their children. */
static int open_pair(cstack *st, const cn_term *a, const cn_term *b, int exact, int *res) {
  *res = 0;
  int ra = rank(a), rb = rank(b);
  if (ra != rb) {
    *res = ra < rb ? -1 : 1;
    return 0;
  }
  cframe *f;
  int r;
  switch (a->type) {
  case CN_INT:
  case CN_BIG:
  case CN_FLOAT: *res = num_cmp(a, b, exact, st->sem); return 0;
  case CN_ATOM: *res = atom_cmp(a->v.atom, b->v.atom); return 0;
  case CN_REF: {
    const cn_ref *x = &a->v.ref, *y = &b->v.ref;
    if ((*res = node_cmp(x->node, x->creation, y->node, y->creation))) return 0;
    /* Missing high words count as zero; the highest word decides first. */
    for (uint32_t i = CN_REF_MAX_WORDS; i-- > 0;) {
      uint32_t wx = ref_word(x, i), wy = ref_word(y, i);
      if (wx != wy) {
        *res = wx < wy ? -1 : 1;
        return 0;
      }
    }
    return 0;
  }
  case CN_PORT:
    if ((*res = node_cmp(a->v.port.node, a->v.port.creation, b->v.port.node, b->v.port.creation))) return 0;
    *res = a->v.port.id < b->v.port.id ? -1 : a->v.port.id > b->v.port.id;
    return 0;
  case CN_PID: {
    /* Pids order by serial, then number, and only then by node (erts_cmp's pid_common). */
    uint64_t x = (uint64_t)a->v.pid.serial << 32 | a->v.pid.id, y = (uint64_t)b->v.pid.serial << 32 | b->v.pid.id;
    if (x != y) {
      *res = x < y ? -1 : 1;
      return 0;
    }
    *res = node_cmp(a->v.pid.node, a->v.pid.creation, b->v.pid.node, b->v.pid.creation);
    return 0;
  }
  case CN_FUN: {
    term_fun_id x, y;
    if (term_fun_id_get(a, &x) || term_fun_id_get(b, &y)) return CN_EDECODE;
    if ((*res = term_text_cmp(x.mod, x.mod_len, x.mod_utf8, y.mod, y.mod_len, y.mod_utf8))) return 0;
    if (x.is_export) {
      if ((*res = term_text_cmp(x.fun, x.fun_len, x.fun_utf8, y.fun, y.fun_len, y.fun_utf8))) return 0;
      *res = x.arity < y.arity ? -1 : x.arity > y.arity;
      return 0;
    }
    if ((*res = wrap_cmp(x.index, y.index)) || (*res = wrap_cmp(x.old_uniq, y.old_uniq))) return 0;
    if (x.num_free != y.num_free) {
      *res = x.num_free < y.num_free ? -1 : 1;
      return 0;
    }
    if (x.num_free == 0) return 0;
    if (!(f = push(st))) return CN_ENOMEM;
    f->kind = CF_SEQ;
    f->exact = (uint8_t)exact;
    if ((r = cn_atoms_new(&f->tab, 0)) || (r = term_fun_env(a, &x, f->tab, &f->own_a)) ||
        (r = term_fun_env(b, &y, f->tab, &f->own_b)))
      return r; /* the caller pops the frame */
    f->a = f->own_a->v.tuple.e;
    f->b = f->own_b->v.tuple.e;
    f->n = x.num_free;
    return 0;
  }
  case CN_TUPLE:
    if (a->v.tuple.arity != b->v.tuple.arity) {
      *res = a->v.tuple.arity < b->v.tuple.arity ? -1 : 1;
      return 0;
    }
    if (a->v.tuple.arity == 0) return 0;
    if (!(f = push(st))) return CN_ENOMEM;
    f->kind = CF_SEQ;
    f->exact = (uint8_t)exact;
    f->a = a->v.tuple.e;
    f->b = b->v.tuple.e;
    f->n = a->v.tuple.arity;
    return 0;
  case CN_MAP:
    /* Maps order by size, then by their keys in (exact) key order, then by the values in that order. */
    if (a->v.map.size != b->v.map.size) {
      *res = a->v.map.size < b->v.map.size ? -1 : 1;
      return 0;
    }
    if (a->v.map.size == 0) return 0;
    if (!(f = push(st))) return CN_ENOMEM;
    f->kind = CF_MAP;
    f->exact = (uint8_t)exact;
    f->keys = 1;
    f->a = a;
    f->b = b;
    f->n = a->v.map.size;
    if ((r = pair_order(a, st->sem, &f->oa)) || (r = pair_order(b, st->sem, &f->ob))) return r;
    return 0;
  case CN_NIL: return 0;
  case CN_LIST:
    if (!(f = push(st))) return CN_ENOMEM;
    f->kind = CF_LIST;
    f->exact = (uint8_t)exact;
    f->a = a;
    f->b = b;
    f->n = a->v.list.len < b->v.list.len ? a->v.list.len : b->v.list.len;
    return 0;
  case CN_BINARY: *res = bin_cmp(a, b); return 0;
  default: return 0; /* unknown types (never built) compare equal among themselves */
  }
}

/* Takes the next pair of children from the top frame: 1 with *a, *b, *exact set; 0 when the frame is done
 * (popped); or a decided result in *res (a list that ends before the other). */
static int next_pair(cstack *st, const cn_term **a, const cn_term **b, int *exact, int *res) {
  cframe *f = &st->f[st->n - 1];
  switch (f->kind) {
  case CF_SEQ:
    if (f->i < f->n) {
      *a = &f->a[f->i];
      *b = &f->b[f->i];
      f->i++;
      *exact = f->exact;
      return 1;
    }
    pop(st);
    return 0;
  case CF_LIST: {
    const cn_term *x = f->a, *y = f->b;
    if (f->i < f->n) {
      *a = &x->v.list.e[f->i];
      *b = &y->v.list.e[f->i];
      f->i++;
      *exact = f->exact;
      return 1;
    }
    *exact = f->exact;
    uint32_t lx = x->v.list.len, ly = y->v.list.len;
    const cn_term *tx = x->v.list.tail ? x->v.list.tail : &NIL_TERM;
    const cn_term *ty = y->v.list.tail ? y->v.list.tail : &NIL_TERM;
    pop(st);
    if (lx == ly) {
      *a = tx;
      *b = ty;
      return 1;
    }
    /* One side ends (its tail is [] or a non-list) where the other still has cells: a list. */
    if (lx < ly) *res = rank(tx) < rank(y) ? -1 : 1;
    else *res = rank(x) < rank(ty) ? -1 : 1;
    return 0;
  }
  default: { /* CF_MAP: first every key pair (exact), then every value pair */
    if (f->i == f->n && f->keys) {
      f->keys = 0;
      f->i = 0;
    }
    if (f->i < f->n) {
      size_t ia = f->oa ? f->oa[f->i] : f->i, ib = f->ob ? f->ob[f->i] : f->i;
      size_t off = f->keys ? 0 : 1;
      *a = &f->a->v.map.kv[2 * ia + off];
      *b = &f->b->v.map.kv[2 * ib + off];
      f->i++;
      *exact = f->keys ? 1 : f->exact;
      return 1;
    }
    pop(st);
    return 0;
  }
  }
}

int term_compare(const cn_term *a, const cn_term *b, int exact, int sem, int *res) {
  cstack st;
  st.f = st.inl;
  st.n = 0;
  st.cap = CSTACK_INLINE;
  st.sem = sem;
  int r = 0, c = 0;
  for (;;) {
    if (a != b) { /* the same value is equal to itself */
      r = open_pair(&st, a, b, exact, &c);
      if (r || c) break;
    }
    int got = 0;
    while (st.n > 0 && !(got = next_pair(&st, &a, &b, &exact, &c)) && !c)
      ;
    if (c || !got) break;
  }
  while (st.n > 0) pop(&st);
  if (st.f != st.inl) cn_free(st.f);
  *res = r ? 0 : c;
  return r;
}

/* ---- public ------------------------------------------------------------------------------------------ */

int term_sem(int otp_release) { return otp_release >= 27 ? TERM_SEM_27 : TERM_SEM_25; }

int cn_term_compare_otp(const cn_term *a, const cn_term *b, bool exact, int otp_release, int *result) {
  if (!result) return CN_EINVAL;
  *result = 0;
  if (!a || !b) return CN_EINVAL;
  return term_compare(a, b, exact ? 1 : 0, term_sem(otp_release), result);
}

int cn_term_compare_checked(const cn_term *a, const cn_term *b, bool exact, int *result) {
  return cn_term_compare_otp(a, b, exact, 0, result);
}

int cn_term_cmp_otp(const cn_term *a, const cn_term *b, int otp_release) {
  int c = 0;
  if (a && b) term_compare(a, b, 0, term_sem(otp_release), &c);
  return c;
}

int cn_term_cmp(const cn_term *a, const cn_term *b) { return cn_term_cmp_otp(a, b, 0); }

bool cn_term_arith_eq_otp(const cn_term *a, const cn_term *b, int otp_release) {
  int c = 1;
  if (a == b) return true;
  if (!a || !b || term_compare(a, b, 0, term_sem(otp_release), &c)) return false;
  return c == 0;
}

bool cn_term_arith_eq(const cn_term *a, const cn_term *b) { return cn_term_arith_eq_otp(a, b, 0); }

/* Exact equality (=:=) is term order's exact mode at 0, so the two can never disagree. Funs are equal by module,
 * index, old uniq and free variables, as on the BEAM. */
/* =:= without ordering, for the shapes that decide it by themselves (keys and entries: atoms, binaries, pids,
 * small integers, tuples, proper or improper lists, maps whose keys come in the same order): 1 equal, 0 not, -1 when
 * term order has to decide (floats, bignums, mixed numbers, refs, ports, funs, maps in another key order, nesting
 * deeper than 16). Every 0 and 1 is what term_compare's exact mode gives. */
static int quick_exact_eq(const cn_term *a, const cn_term *b, unsigned depth) {
  if (a == b) return 1;
  if (depth > 16) return -1;
  if (a->type != b->type) return rank(a) != rank(b) ? 0 : -1; /* one rank of two types: numbers */
  switch (a->type) {
  case CN_INT: return a->v.i == b->v.i;
  case CN_ATOM:
    return a->v.atom == b->v.atom ||
           (a->v.atom->len == b->v.atom->len && !memcmp(a->v.atom->name, b->v.atom->name, a->v.atom->len));
  case CN_BINARY:
    if (a->v.bin.size != b->v.bin.size || a->v.bin.bits != b->v.bin.bits) return 0;
    if (a->v.bin.bits != 8 && a->v.bin.size) return -1; /* the last byte's unused bits */
    return !a->v.bin.size || !memcmp(a->v.bin.data, b->v.bin.data, a->v.bin.size);
  case CN_PID:
    return a->v.pid.id == b->v.pid.id && a->v.pid.serial == b->v.pid.serial && a->v.pid.creation == b->v.pid.creation &&
           (a->v.pid.node == b->v.pid.node || (a->v.pid.node->len == b->v.pid.node->len &&
                                               !memcmp(a->v.pid.node->name, b->v.pid.node->name, a->v.pid.node->len)));
  case CN_NIL: return 1;
  case CN_TUPLE:
  case CN_LIST: {
    uint32_t n = a->type == CN_TUPLE ? a->v.tuple.arity : a->v.list.len;
    if (n != (a->type == CN_TUPLE ? b->v.tuple.arity : b->v.list.len)) return 0;
    const cn_term *x = a->type == CN_TUPLE ? a->v.tuple.e : a->v.list.e;
    const cn_term *y = a->type == CN_TUPLE ? b->v.tuple.e : b->v.list.e;
    int r = 1;
    for (uint32_t i = 0; i < n; i++) {
      int e = quick_exact_eq(&x[i], &y[i], depth + 1);
      if (!e) return 0;
      if (e < 0) r = -1;
    }
    if (a->type == CN_LIST && r > 0) { /* a tail is never a list or nil */
      const cn_term *ta = a->v.list.tail, *tb = b->v.list.tail;
      if (!ta || !tb) return !ta && !tb;
      return quick_exact_eq(ta, tb, depth + 1);
    }
    return r;
  }
  case CN_MAP: {
    if (a->v.map.size != b->v.map.size) return 0;
    int r = 1;
    for (uint32_t i = 0; i < a->v.map.size && r > 0; i++) /* keys pairwise equal: the same key set */
      if (quick_exact_eq(&a->v.map.kv[2 * i], &b->v.map.kv[2 * i], depth + 1) != 1) r = -1;
    for (uint32_t i = 0; i < a->v.map.size && r > 0; i++) {
      int e = quick_exact_eq(&a->v.map.kv[2 * i + 1], &b->v.map.kv[2 * i + 1], depth + 1);
      if (!e) return 0;
      if (e < 0) r = -1;
    }
    return r;
  }
  default: return -1;
  }
}

bool cn_term_exact_eq_otp(const cn_term *a, const cn_term *b, int otp_release) {
  if (a == b) return true;
  if (!a || !b) return false;
  int q = quick_exact_eq(a, b, 0);
  if (q >= 0) return q == 1;
  int c = 1;
  if (!a || !b || term_compare(a, b, 1, term_sem(otp_release), &c)) return false;
  return c == 0;
}

bool cn_term_exact_eq(const cn_term *a, const cn_term *b) { return cn_term_exact_eq_otp(a, b, 0); }
