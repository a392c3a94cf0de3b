/* phash2.c: erlang:phash2/1,2 over cn_term, bit-exact with OTP 25 on 64-bit (make_hash2: Bob Jenkins'
 * mixer over 32-bit words). Iterative with an explicit stack, so nesting depth costs heap, not C stack. */
#include <string.h>

#include "term_int.h"

/* HG is the golden ratio; Kn = HG * n mod 2^32 tags each kind of value (docs: horde-wire.md section 6). */
#define HG 0x9E3779B9u
#define K2 0x3C6EF372u
#define K3 0xDAA66D2Bu
#define K4 0x78DDE6E4u
#define K5 0x1715609Du
#define K6 0xB54CDA56u
#define K7 0x5384540Fu
#define K9 0x8FF34781u
#define K10 0x2E2AC13Au
#define K11 0xCC623AF3u
#define K12 0x6A99B4ACu
#define K13 0x08D12E65u
#define K14 0xA708A81Eu
#define K15 0x454021D7u
#define K16 0xE3779B90u
#define K19 0xBE1E08BBu

/* What make_hash2 gives [] when nothing has been hashed before it. */
#define NIL_FIRST 3468870702u

static inline void mix3(uint32_t *pa, uint32_t *pb, uint32_t *pc) {
  uint32_t a = *pa, b = *pb, c = *pc;
  a -= b, a -= c, a ^= c >> 13;
  b -= c, b -= a, b ^= a << 8;
  c -= a, c -= b, c ^= b >> 13;
  a -= b, a -= c, a ^= c >> 12;
  b -= c, b -= a, b ^= a << 16;
  c -= a, c -= b, c ^= b >> 5;
  a -= b, a -= c, a ^= c >> 3;
  b -= c, b -= a, b ^= a << 10;
  c -= a, c -= b, c ^= b >> 15;
  *pa = a, *pb = b, *pc = c;
}

/* One word pair mixed into the running hash under constant k. */
static inline uint32_t step(uint32_t h, uint32_t x, uint32_t y, uint32_t k) {
  uint32_t a = k + x, b = k + y;
  mix3(&a, &b, &h);
  return h;
}

static inline uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Bob Jenkins' lookup2 over bytes, seeded with c. */
static uint32_t block_hash(const uint8_t *k, size_t length, uint32_t c) {
  uint32_t a = HG, b = HG;
  size_t len = length;
  while (len >= 12) {
    a += le32(k), b += le32(k + 4), c += le32(k + 8);
    mix3(&a, &b, &c);
    k += 12, len -= 12;
  }
  c += (uint32_t)length;
  /* The first byte of c is reserved for the length. */
  switch (len) {
  case 11: c += (uint32_t)k[10] << 24; /* fall through */
  case 10: c += (uint32_t)k[9] << 16;  /* fall through */
  case 9: c += (uint32_t)k[8] << 8;    /* fall through */
  case 8: b += (uint32_t)k[7] << 24;   /* fall through */
  case 7: b += (uint32_t)k[6] << 16;   /* fall through */
  case 6: b += (uint32_t)k[5] << 8;    /* fall through */
  case 5: b += k[4];                   /* fall through */
  case 4: a += (uint32_t)k[3] << 24;   /* fall through */
  case 3: a += (uint32_t)k[2] << 16;   /* fall through */
  case 2: a += (uint32_t)k[1] << 8;    /* fall through */
  case 1: a += k[0]; break;
  default: break;
  }
  mix3(&a, &b, &c);
  return c;
}

/* The atom table hash the BEAM keeps per atom: hashpjw over the name, where a two-byte UTF-8 sequence for a
 * latin-1 character counts as that one byte (so latin-1 text can be hashed as it is). */
static uint32_t atom_text_hash(const uint8_t *p, size_t len, int utf8) {
  uint32_t h = 0;
  for (size_t i = 0; i < len; i++) {
    uint32_t v = p[i];
    if (utf8 && i + 1 < len && (v & 0xFE) == 0xC2 && (p[i + 1] & 0xC0) == 0x80) {
      v = ((v << 6) | (p[i + 1] & 0x3Fu)) & 0xFF;
      i++;
    }
    h = (h << 4) + v;
    uint32_t g = h & 0xF0000000u;
    if (g) {
      h ^= g >> 24;
      h ^= g;
    }
  }
  return h;
}

/* Integers outside the 28-bit range go limb by limb (64-bit, least significant first), as bignums do. */
static uint32_t hash_mag(uint32_t h, const uint8_t *mag, size_t n, int neg) {
  uint32_t k = neg ? K10 : K11;
  size_t off = 0;
  do {
    uint8_t w[8] = {0};
    if (n > off) memcpy(w, mag + off, n - off < 8 ? n - off : 8);
    h = step(h, le32(w), le32(w + 4), k);
    off += 8;
  } while (off < n);
  return h;
}

static uint32_t hash_int(uint32_t h, int64_t v) {
  if (v >= -(INT64_C(1) << 27) && v < (INT64_C(1) << 27)) {
    if (v < 0) /* negative numbers are mixed twice, as the BEAM does */
      h = step(h, (uint32_t)-v, 0, HG);
    return step(h, (uint32_t)v, 0, HG);
  }
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  return step(h, (uint32_t)u, (uint32_t)(u >> 32), v < 0 ? K10 : K11);
}

static uint32_t hash_float(uint32_t h, double d) {
  if (d == 0.0) d = 0.0; /* -0.0 hashes as 0.0 */
  uint64_t bits;
  memcpy(&bits, &d, sizeof bits);
  return step(h, (uint32_t)(bits >> 32), (uint32_t)bits, K12);
}

static uint32_t hash_bin(uint32_t h, const cn_term *t) {
  size_t size = t->v.bin.size;
  unsigned tail = size && t->v.bin.bits < 8 ? t->v.bin.bits : 0;
  size_t whole = tail ? size - 1 : size;
  uint32_t c0 = K13 + h;
  if (whole == 0 && tail == 0) return c0;
  h = block_hash(t->v.bin.data, whole, c0);
  if (tail) h = step(h, tail, (uint32_t)(t->v.bin.data[whole] >> (8 - tail)), K15);
  return h;
}

static int is_byte(const cn_term *t) { return t->type == CN_INT && t->v.i >= 0 && t->v.i <= 255; }

enum { HF_SEQ, HF_LIST, HF_MAP };

typedef struct hframe {
  const cn_term *e; /* HF_SEQ: element array; HF_LIST, HF_MAP: the term */
  uint32_t i, n;
  uint32_t saved, acc; /* HF_MAP: the hash before the map, xor of the pair hashes so far */
  cn_term *owned;      /* HF_SEQ over a fun's decoded free variables: freed with the frame */
  cn_atoms *tab;
  uint8_t kind;
} hframe;

#define HSTACK_INLINE 32

typedef struct hstack {
  hframe *f;
  size_t n, cap;
  hframe inl[HSTACK_INLINE];
} hstack;

static hframe *hpush(hstack *st, uint8_t kind, const cn_term *e, uint32_t n) {
  if (st->n == st->cap) {
    hframe *nf = term_stack_grow(st->f, st->inl, st->n, &st->cap, sizeof *nf);
    if (!nf) return NULL;
    st->f = nf;
  }
  hframe *f = &st->f[st->n++];
  f->kind = kind;
  f->e = e;
  f->i = 0;
  f->n = n;
  f->owned = NULL;
  f->tab = NULL;
  return f;
}

static void hpop(hstack *st) {
  hframe *f = &st->f[--st->n];
  cn_term_free(f->owned);
  if (f->tab) cn_atoms_free(f->tab);
}

/* Export funs: arity and module, then the function name. Local funs: free variable count and module,
 * Index and OldUniq, then the free variables like tuple elements. */
static int hash_fun(hstack *st, const cn_term *t, uint32_t *h) {
  term_fun_id id;
  if (term_fun_id_get(t, &id)) return CN_EDECODE;
  uint32_t mh = atom_text_hash(id.mod, id.mod_len, id.mod_utf8);
  if (id.is_export) {
    *h = step(*h, id.arity, mh, HG);
    *h = step(*h, atom_text_hash(id.fun, id.fun_len, id.fun_utf8), 0, K14);
    return 0;
  }
  *h = step(*h, id.num_free, mh, HG);
  *h = step(*h, id.index, id.old_uniq, HG);
  if (id.num_free == 0) return 0;
  hframe *f = hpush(st, HF_SEQ, NULL, 0);
  if (!f) return CN_ENOMEM;
  int r;
  if ((r = cn_atoms_new(&f->tab, 0)) || (r = term_fun_env(t, &id, f->tab, &f->owned)))
    return r; /* the caller pops the frame */
  f->e = f->owned->v.tuple.e;
  f->n = id.num_free;
  return 0;
}

static const cn_term NIL_TERM = {.type = CN_NIL};

static int hash_term(const cn_term *t, uint32_t *out) {
  hstack st;
  st.f = st.inl;
  st.n = 0;
  st.cap = HSTACK_INLINE;
  uint32_t h = 0;
  int r = 0;
  const cn_term *cur = t;
  for (;;) {
    switch (cur->type) {
    case CN_INT: h = hash_int(h, cur->v.i); break;
    case CN_BIG: h = hash_mag(h, cur->v.big.mag, cur->v.big.n, cur->v.big.sign); break;
    case CN_FLOAT: h = hash_float(h, cur->v.f); break;
    case CN_ATOM: {
      /* An atom or [] hashed first (h still 0) gives its raw value: make_hash2's shortcut. */
      uint32_t v = atom_text_hash((const uint8_t *)cur->v.atom->name, cur->v.atom->len, 1);
      h = h == 0 ? v : step(h, v, 0, K3);
      break;
    }
    case CN_NIL: h = h == 0 ? NIL_FIRST : step(h, 2, 0, K2); break;
    case CN_BINARY: h = hash_bin(h, cur); break;
    case CN_PID:
      /* Only the number: node, serial and creation do not take part. */
      h = step(h, cur->v.pid.id, 0, K5);
      break;
    case CN_PORT: h = step(h, (uint32_t)cur->v.port.id, (uint32_t)(cur->v.port.id >> 32), K6); break;
    case CN_REF: h = step(h, cur->v.ref.n[0], 0, K7); break;
    case CN_FUN: r = hash_fun(&st, cur, &h); break;
    case CN_TUPLE:
      h = step(h, cur->v.tuple.arity, 0, K9);
      if (cur->v.tuple.arity && !hpush(&st, HF_SEQ, cur->v.tuple.e, cur->v.tuple.arity)) r = CN_ENOMEM;
      break;
    case CN_LIST:
      if (!hpush(&st, HF_LIST, cur, cur->v.list.len)) r = CN_ENOMEM;
      break;
    case CN_MAP: {
      /* Each pair hashes from 0 and the pairs are xor-ed, so the order of the pairs does not matter. */
      h = step(h, cur->v.map.size, 0, K16);
      if (cur->v.map.size == 0) break;
      hframe *f = hpush(&st, HF_MAP, cur, cur->v.map.size);
      if (!f) {
        r = CN_ENOMEM;
        break;
      }
      f->saved = h;
      f->acc = 0;
      h = 0;
      break;
    }
    default: break;
    }
    if (r) goto done;

    /* The next value to hash comes from the innermost unfinished compound. */
    for (;;) {
      if (st.n == 0) goto done;
      hframe *f = &st.f[st.n - 1];
      if (f->kind == HF_SEQ) {
        if (f->i < f->n) {
          cur = &f->e[f->i++];
          break;
        }
        hpop(&st);
        continue;
      }
      if (f->kind == HF_LIST) {
        /* A run of byte elements is packed four to a word; anything else ends the run. */
        const cn_term *el = f->e->v.list.e;
        if (f->i < f->n && is_byte(&el[f->i])) {
          uint32_t sh = 0;
          int c = 0;
          while (f->i < f->n && is_byte(&el[f->i])) {
            sh = (sh << 8) + (uint32_t)el[f->i++].v.i;
            if (c == 3) {
              h = step(h, sh, 0, K4);
              c = 0;
              sh = 0;
            } else {
              c++;
            }
          }
          if (c > 0) h = step(h, sh, 0, K4);
        }
        if (f->i < f->n) {
          cur = &el[f->i++];
          break;
        }
        cur = f->e->v.list.tail ? f->e->v.list.tail : &NIL_TERM;
        hpop(&st);
        break;
      }
      /* HF_MAP: i counts keys and values; back here with i even and > 0, a pair is complete. */
      if (f->i > 0 && f->i % 2 == 0) {
        f->acc ^= h;
        h = 0;
      }
      if (f->i < 2 * f->n) {
        cur = &f->e->v.map.kv[f->i++];
        break;
      }
      h = step(f->saved, f->acc, 0, K19);
      hpop(&st);
    }
  }
done:
  while (st.n > 0) hpop(&st);
  if (st.f != st.inl) cn_free(st.f);
  *out = h;
  return r;
}

int cn_phash2_checked(const cn_term *t, uint64_t range, uint32_t *out) {
  if (!out) return CN_EINVAL;
  *out = 0;
  if (!t || range > (UINT64_C(1) << 32)) return CN_EINVAL;
  uint32_t h;
  int r = hash_term(t, &h);
  if (r) return r;
  /* range 0 is phash2/1: the low 27 bits. */
  *out = range == 0 ? h & ((1u << 27) - 1) : range == (UINT64_C(1) << 32) ? h : (uint32_t)(h % range);
  return 0;
}

uint32_t cn_phash2(const cn_term *t) {
  uint32_t v = 0;
  cn_phash2_checked(t, 0, &v);
  return v;
}

uint32_t cn_phash2_range(const cn_term *t, uint64_t range) {
  uint32_t v = 0;
  if (range == 0) return 0;
  cn_phash2_checked(t, range, &v);
  return v;
}
