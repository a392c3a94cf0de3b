/* decode.c: the external term format decoder: a bounds-checked validating walk, then a build pass.
 * ei's decoders trust their buffer, so they only ever see bytes the walk has proven to hold a whole term.
 * The walk also counts what the term needs (values and bytes), so the build carves the whole tree, root
 * first, from one allocation that cn_term_free releases in one step (the root is marked `block`; a term_blk
 * header before it counts references). Binaries of opts->share_min bytes or more, when the input lies in a
 * chunk (opts->chunk), point into it rather than being copied: the block holds one reference to the chunk. */
#include <math.h>
#include <string.h>

#include <ei.h>

#include "term_int.h"

/* What the build pass will carve from the term's block; the walk adds to it as it goes. */
typedef struct vcount {
  size_t slots; /* cn_term values: the root, array elements, list tails and outgrown list arrays */
  size_t bytes; /* binary, bignum and fun bytes */
  int too_long; /* a list of more elements than cn_term counts (32 bits): CN_ELIMIT once the walk is done */
} vcount;

/* A term must fit in [.., lim); lim is below len only when opts->max_size cuts the input short. */
typedef struct vctx {
  const uint8_t *b;
  size_t len, lim;
  size_t max_depth;
  int check_text;   /* inside a fun: atoms stay raw bytes, never interned, so check their text here */
  vcount *cnt;      /* NULL: count nothing (a fun's insides, which stay raw bytes) */
  size_t share_min; /* binaries (not bitstrings) of this many bytes or more point into the input; 0: none */
  int shared;       /* build: a binary points into the input */
} vctx;

typedef struct bctx {
  vctx v; /* the validated input; the build pass re-reads it without re-checking */
  cn_atoms *tab;
  size_t atom_limit; /* cn_decode_opts.atom_limit */
  cn_atom_cache *cache;
  cn_term *slot, *slot_end; /* the unused values of the block */
  uint8_t *byte, *byte_end; /* the unused bytes of the block (after the values) */
  cn_chunk *chunk;          /* the input's chunk, which shared binaries point into (NULL: none) */
} bctx;

/* A chain of list cells is built into one array that grows as blist finds more cells; the walk computes
 * the same sequence of capacities, so the block has room for every array blist takes (at most 4x the
 * elements, and exactly their number for the usual single cell). */
static size_t list_cap(size_t cap, size_t need) { return cap * 2 > need ? cap * 2 : need; }

/* Running out of bytes is truncation, unless max_size is what stopped us. */
static int short_err(const vctx *v) { return v->lim < v->len ? CN_ELIMIT : CN_ETRUNC; }
#define NEED(n)                                                                                                        \
  do {                                                                                                                 \
    if ((size_t)(n) > v->lim - *p) return short_err(v);                                                                \
  } while (0)

static int is_atom_tag(uint8_t t) {
  return t == ERL_ATOM_EXT || t == ERL_SMALL_ATOM_EXT || t == ERL_ATOM_UTF8_EXT || t == ERL_SMALL_ATOM_UTF8_EXT;
}

/* Checks the bounds of an atom of any of the four encodings; the text itself is checked when interned. */
static int vatom(const vctx *v, size_t *p) {
  NEED(1);
  uint8_t tag = v->b[*p];
  if (!is_atom_tag(tag)) return CN_EDECODE;
  size_t hdr = tag == ERL_ATOM_EXT || tag == ERL_ATOM_UTF8_EXT ? 3 : 2;
  NEED(hdr);
  size_t n = hdr == 3 ? cn_get16(v->b + *p + 1) : v->b[*p + 1];
  /* Latin-1 text is one byte per character; UTF-8 up to four. */
  if (n > (tag == ERL_ATOM_EXT || tag == ERL_SMALL_ATOM_EXT ? TERM_ATOM_MAX_CHARS : TERM_ATOM_MAX_BYTES))
    return CN_EDECODE;
  NEED(hdr + n);
  if (v->check_text && (tag == ERL_ATOM_UTF8_EXT || tag == ERL_SMALL_ATOM_UTF8_EXT)) {
    long chars = term_utf8_count(v->b + *p + hdr, n);
    if (chars < 0 || chars > TERM_ATOM_MAX_CHARS) return CN_EDECODE;
  }
  *p += hdr + n;
  return 0;
}

/* An integer field of a fun: SMALL_INTEGER_EXT or INTEGER_EXT only. */
static int vsmallint(const vctx *v, size_t *p) {
  NEED(1);
  size_t n = v->b[*p] == ERL_SMALL_INTEGER_EXT ? 2 : v->b[*p] == ERL_INTEGER_EXT ? 5 : 0;
  if (!n) return CN_EDECODE;
  NEED(n);
  *p += n;
  return 0;
}

static int vterm(const vctx *v, size_t *p, size_t depth);

static int vpid(const vctx *v, size_t *p) {
  NEED(1);
  uint8_t tag = v->b[*p];
  if (tag != ERL_NEW_PID_EXT && tag != ERL_PID_EXT) return CN_EDECODE;
  (*p)++;
  int r = vatom(v, p);
  if (r) return r;
  size_t rest = tag == ERL_NEW_PID_EXT ? 12 : 9;
  NEED(rest);
  *p += rest;
  return 0;
}

/* Lists iterate over their tails: a chain of LIST_EXT cells costs no stack however long it is. */
static int vlist(const vctx *v, size_t *p, size_t depth) {
  size_t len = 0, cap = 0; /* as blist will see them */
  for (;;) {
    NEED(1);
    uint8_t tag = v->b[*p];
    if (tag == ERL_NIL_EXT) {
      (*p)++;
      return 0;
    }
    if (tag == ERL_STRING_EXT) {
      NEED(3);
      size_t n = cn_get16(v->b + *p + 1);
      NEED(3 + n);
      *p += 3 + n;
      if (v->cnt) {
        v->cnt->too_long |= len + n > UINT32_MAX;
        if (len + n > cap) v->cnt->slots += list_cap(cap, len + n);
      }
      return 0;
    }
    /* Nil and strings hold no terms, so only a cell counts as a level of nesting. */
    if (depth >= v->max_depth) return CN_ELIMIT;
    if (tag != ERL_LIST_EXT) {
      if (v->cnt) v->cnt->slots++;   /* the tail's own value */
      return vterm(v, p, depth + 1); /* an improper tail */
    }
    NEED(5);
    uint32_t n = cn_get32(v->b + *p + 1);
    *p += 5;
    if (n > v->lim - *p) return short_err(v); /* each element takes at least one byte */
    if (v->cnt) {
      v->cnt->too_long |= len + n > UINT32_MAX;
      if (len + n > cap) {
        cap = list_cap(cap, len + n);
        v->cnt->slots += cap;
      }
    }
    len += n;
    for (uint32_t i = 0; i < n; i++) {
      int r = vterm(v, p, depth + 1);
      if (r) return r;
    }
  }
}

static int vfun(const vctx *outer, size_t *p, size_t depth) {
  vctx fv = *outer;
  const vctx *v = &fv;
  fv.check_text = 1;
  fv.cnt = NULL; /* the fun is kept as raw bytes: its insides build nothing */
  size_t start = *p;
  int r;
  if (v->b[*p] == ERL_EXPORT_EXT) {
    (*p)++;
    if ((r = vatom(v, p)) || (r = vatom(v, p))) return r;
    NEED(2);
    if (v->b[*p] != ERL_SMALL_INTEGER_EXT) return CN_EDECODE;
    *p += 2;
    return 0;
  }
  /* NEW_FUN_EXT: Size counts itself and everything after it, and must agree with the fields. */
  NEED(1 + 4 + 1 + 16 + 4 + 4);
  uint32_t size = cn_get32(v->b + *p + 1);
  uint32_t nfree = cn_get32(v->b + *p + 26);
  if (size < 4 + 1 + 16 + 4 + 4) return CN_EDECODE;
  NEED(1 + (size_t)size);
  *p += 30;
  if ((r = vatom(v, p)) || (r = vsmallint(v, p)) || (r = vsmallint(v, p)) || (r = vpid(v, p))) return r;
  if (nfree > v->lim - *p) return short_err(v);
  if (nfree && depth >= v->max_depth) return CN_ELIMIT;
  for (uint32_t i = 0; i < nfree; i++)
    if ((r = vterm(v, p, depth + 1))) return r;
  return *p - start == 1 + (size_t)size ? 0 : CN_EDECODE;
}

/* Walks one term at *p: every length is checked against the bytes present before it is used. No
 * allocation happens here, so a header claiming 2^32 elements costs nothing. */
static int vterm(const vctx *v, size_t *p, size_t depth) {
  NEED(1);
  const uint8_t *b = v->b;
  uint8_t tag = b[*p];
  size_t n;
  int r;
  switch (tag) {
  case ERL_SMALL_INTEGER_EXT:
    NEED(2);
    *p += 2;
    return 0;
  case ERL_INTEGER_EXT:
    NEED(5);
    *p += 5;
    return 0;
  case ERL_FLOAT_EXT:
    NEED(32);
    *p += 32;
    return 0;
  case NEW_FLOAT_EXT:
    NEED(9);
    *p += 9;
    return 0;
  case ERL_ATOM_EXT:
  case ERL_SMALL_ATOM_EXT:
  case ERL_ATOM_UTF8_EXT:
  case ERL_SMALL_ATOM_UTF8_EXT: return vatom(v, p);
  case ERL_BINARY_EXT:
    NEED(5);
    n = cn_get32(b + *p + 1);
    NEED(5 + n);
    *p += 5 + n;
    if (v->cnt && !(v->share_min && n >= v->share_min)) v->cnt->bytes += n;
    return 0;
  case ERL_BIT_BINARY_EXT: {
    NEED(6);
    n = cn_get32(b + *p + 1);
    uint8_t bits = b[*p + 5];
    if ((bits == 0) != (n == 0) || bits > 8) return CN_EDECODE; /* as the BEAM's binary_to_term */
    NEED(6 + n);
    *p += 6 + n;
    if (v->cnt) v->cnt->bytes += n;
    return 0;
  }
  case ERL_NIL_EXT:
  case ERL_STRING_EXT:
  case ERL_LIST_EXT: return vlist(v, p, depth);
  case ERL_SMALL_TUPLE_EXT:
  case ERL_LARGE_TUPLE_EXT:
    if (tag == ERL_SMALL_TUPLE_EXT) {
      NEED(2);
      n = b[*p + 1];
      *p += 2;
    } else {
      NEED(5);
      n = cn_get32(b + *p + 1);
      *p += 5;
    }
    if (n > v->lim - *p) return short_err(v);
    if (n && depth >= v->max_depth) return CN_ELIMIT;
    if (v->cnt) v->cnt->slots += n;
    for (size_t i = 0; i < n; i++)
      if ((r = vterm(v, p, depth + 1))) return r;
    return 0;
  case ERL_MAP_EXT:
    NEED(5);
    n = cn_get32(b + *p + 1);
    *p += 5;
    if (n > (v->lim - *p) / 2) return short_err(v);
    if (n && depth >= v->max_depth) return CN_ELIMIT;
    if (v->cnt) v->cnt->slots += 2 * n;
    for (size_t i = 0; i < 2 * n; i++)
      if ((r = vterm(v, p, depth + 1))) return r;
    return 0;
  case ERL_SMALL_BIG_EXT:
    NEED(3);
    n = b[*p + 1];
    NEED(3 + n);
    *p += 3 + n;
    if (v->cnt) v->cnt->bytes += n;
    return 0;
  case ERL_LARGE_BIG_EXT:
    NEED(6);
    n = cn_get32(b + *p + 1);
    NEED(6 + n);
    *p += 6 + n;
    if (v->cnt) v->cnt->bytes += n;
    return 0;
  case ERL_NEW_PID_EXT:
  case ERL_PID_EXT: return vpid(v, p);
  case ERL_NEW_PORT_EXT:
  case ERL_V4_PORT_EXT:
  case ERL_PORT_EXT:
    (*p)++;
    if ((r = vatom(v, p))) return r;
    n = tag == ERL_NEW_PORT_EXT ? 8 : tag == ERL_V4_PORT_EXT ? 12 : 5;
    NEED(n);
    *p += n;
    return 0;
  case ERL_NEWER_REFERENCE_EXT:
  case ERL_NEW_REFERENCE_EXT:
    NEED(3);
    n = cn_get16(b + *p + 1);
    if (n < 1 || n > CN_REF_MAX_WORDS) return CN_EDECODE;
    *p += 3;
    if ((r = vatom(v, p))) return r;
    n = (tag == ERL_NEWER_REFERENCE_EXT ? 4 : 1) + 4 * n;
    NEED(n);
    *p += n;
    return 0;
  case ERL_REFERENCE_EXT:
    (*p)++;
    if ((r = vatom(v, p))) return r;
    NEED(5);
    *p += 5;
    return 0;
  case ERL_EXPORT_EXT:
  case ERL_NEW_FUN_EXT: {
    size_t start = *p;
    if ((r = vfun(v, p, depth))) return r;
    if (v->cnt) v->cnt->bytes += *p - start; /* kept whole */
    return 0;
  }
  default:
    /* ATOM_CACHE_REF (we never offer the cache), the pre-R8 FUN_EXT, compressed terms, unknown tags. */
    return CN_EDECODE;
  }
}

/* ---- build pass: the input is known to be complete and well-framed here ---- */

static void set_nil(cn_term *t) {
  memset(t, 0, sizeof *t);
  t->type = CN_NIL;
}

/* n values from the block; NULL only if the walk's count were wrong (never: a guard, not a path). */
static cn_term *take_slots(bctx *c, size_t n) {
  if (n > (size_t)(c->slot_end - c->slot)) return NULL;
  cn_term *t = c->slot;
  c->slot += n;
  return t;
}

static uint8_t *take_bytes(bctx *c, size_t n) {
  if (n > (size_t)(c->byte_end - c->byte)) return NULL;
  uint8_t *b = c->byte;
  c->byte += n;
  return b;
}

/* Interns the atom at *p (through the cache when there is one), converting latin-1 text to UTF-8 first. */
static int batom(bctx *c, size_t *p, const cn_atom **out) {
  const uint8_t *b = c->v.b + *p;
  uint8_t tag = b[0];
  size_t hdr = tag == ERL_ATOM_EXT || tag == ERL_ATOM_UTF8_EXT ? 3 : 2;
  size_t n = hdr == 3 ? cn_get16(b + 1) : b[1];
  const char *s = (const char *)b + hdr;
  *p += hdr + n;
  int err;
  char u[2 * TERM_ATOM_MAX_CHARS];
  if (tag == ERL_ATOM_EXT || tag == ERL_SMALL_ATOM_EXT) {
    size_t i = 0;
    while (i < n && (uint8_t)s[i] < 0x80) i++;
    if (i < n) { /* not ASCII: latin-1 to UTF-8 */
      size_t k = i;
      memcpy(u, s, i);
      for (; i < n; i++) {
        uint8_t ch = (uint8_t)s[i];
        if (ch < 0x80) {
          u[k++] = (char)ch;
        } else {
          u[k++] = (char)(0xC0 | (ch >> 6));
          u[k++] = (char)(0x80 | (ch & 0x3F));
        }
      }
      s = u, n = k;
    }
  }
  *out = term_atoms_intern_cached(c->tab, c->cache, s, n, c->atom_limit, &err);
  return *out ? 0 : err;
}

static int bterm(bctx *c, size_t *p, cn_term *out);

/* Builds a list from a chain of LIST_EXT cells (and a STRING_EXT or NIL_EXT end) into one array, so
 * [1|[2|[3|foo]]] becomes a single list of three with tail foo, whatever cells carried it. The array grows
 * as vlist counted: a later cell moves the elements so far into a bigger array further on in the block. */
static int blist(bctx *c, size_t *p, cn_term *out) {
  const uint8_t *b = c->v.b;
  cn_term *arr = NULL, *tail = NULL;
  size_t n = 0, cap = 0;
  size_t q = *p;
  int r;
  for (;;) {
    uint8_t tag = b[q];
    size_t add;
    if (tag == ERL_NIL_EXT) {
      q++;
      break;
    }
    if (tag != ERL_LIST_EXT && tag != ERL_STRING_EXT) {
      if (!(tail = take_slots(c, 1))) return CN_EDECODE;
      if ((r = bterm(c, &q, tail))) return r;
      break;
    }
    add = tag == ERL_LIST_EXT ? cn_get32(b + q + 1) : cn_get16(b + q + 1);
    if (n + add > UINT32_MAX)
      return CN_ELIMIT; /* cn_term counts list elements in 32 bits (the walk reports it first) */
    if (n + add > cap) {
      size_t ncap = list_cap(cap, n + add);
      cn_term *na = take_slots(c, ncap);
      if (!na) return CN_EDECODE;
      if (n) memcpy(na, arr, n * sizeof *na);
      arr = na, cap = ncap;
    }
    if (tag == ERL_STRING_EXT) {
      for (size_t i = 0; i < add; i++) {
        set_nil(&arr[n]);
        arr[n].type = CN_INT;
        arr[n++].v.i = b[q + 3 + i];
      }
      q += 3 + add;
      break;
    }
    q += 5;
    for (size_t i = 0; i < add; i++) {
      if ((r = bterm(c, &q, &arr[n]))) return r;
      n++;
    }
  }
  if (n == 0) { /* [ | T] is T itself; an empty string is nil */
    if (tail) *out = *tail;
    else set_nil(out);
  } else {
    set_nil(out);
    out->type = CN_LIST;
    out->v.list.e = arr;
    out->v.list.len = (uint32_t)n;
    out->v.list.tail = tail;
  }
  *p = q;
  return 0;
}

/* Builds n consecutive values into an array from the block. */
static int barray(bctx *c, size_t *p, size_t n, cn_term **out) {
  *out = NULL;
  if (!n) return 0;
  cn_term *a = take_slots(c, n);
  if (!a) return CN_EDECODE;
  for (size_t i = 0; i < n; i++) {
    int r = bterm(c, p, &a[i]);
    if (r) return r;
  }
  *out = a;
  return 0;
}

static int bbig(bctx *c, const uint8_t *b, size_t n, size_t *p, size_t hdr, cn_term *out) {
  int neg = b[hdr - 1] != 0;
  const uint8_t *mag = b + hdr;
  *p += hdr + n;
  int64_t iv;
  if (term_big_to_int(neg, mag, &n, &iv)) { /* normalises to CN_INT when it fits, as cn_mk_big */
    out->type = CN_INT;
    out->v.i = iv;
    return 0;
  }
  if (n > UINT32_MAX) return CN_ENOMEM; /* as cn_mk_big: cn_term counts magnitude bytes in 32 bits */
  uint8_t *m = take_bytes(c, n);
  if (!m) return CN_EDECODE;
  memcpy(m, mag, n);
  out->type = CN_BIG;
  out->v.big.sign = neg ? 1 : 0;
  out->v.big.n = (uint32_t)n;
  out->v.big.mag = m;
  return 0;
}

static int bbits(bctx *c, const uint8_t *data, size_t n, uint8_t bits, cn_term *out) {
  out->type = CN_BINARY;
  out->v.bin.size = n;
  out->v.bin.bits = n ? bits : 8;
  out->v.bin.chunk = NULL;
  if (n) {
    if (!(out->v.bin.data = take_bytes(c, n))) {
      set_nil(out);
      return CN_EDECODE;
    }
    memcpy(out->v.bin.data, data, n);
    out->v.bin.data[n - 1] &= (uint8_t)(0xFF << (8 - out->v.bin.bits)); /* bits past the end mean nothing */
  }
  return 0;
}

/* Pids and references are read in place, ports by ei; the walk has shown the whole identifier is there. Node names
 * are interned from the raw atom (exact length, latin-1 converted) rather than from ei's NUL-terminated copy. */
static int bident(bctx *c, size_t *p, cn_term *out) {
  const char *s = (const char *)c->v.b + *p;
  uint8_t tag = (uint8_t)s[0];
  int idx = 0;
  size_t ap = *p + 1 + (tag == ERL_NEWER_REFERENCE_EXT || tag == ERL_NEW_REFERENCE_EXT ? 2 : 0);
  const cn_atom *node;
  int r = batom(c, &ap, &node);
  if (r) return r;
  if (tag == ERL_NEW_PID_EXT || tag == ERL_PID_EXT) {
    /* The hot identifier (every send carries one): ID, Serial, then Creation, 32 bits in
     * NEW_PID_EXT and 8 in PID_EXT, of which ei keeps the low 2 bits; we do the same. */
    const uint8_t *f = c->v.b + ap;
    out->type = CN_PID;
    out->v.pid = (cn_pid){node, cn_get32(f), cn_get32(f + 4), tag == ERL_NEW_PID_EXT ? cn_get32(f + 8) : f[8] & 3u};
    *p = ap + (tag == ERL_NEW_PID_EXT ? 12 : 9);
    return 0;
  } else if (tag == ERL_NEW_PORT_EXT || tag == ERL_V4_PORT_EXT || tag == ERL_PORT_EXT) {
    erlang_port e;
    if (ei_decode_port(s, &idx, &e) < 0) return CN_EDECODE;
    out->type = CN_PORT;
    /* ei sign-extends a 4-byte id with bit 31 set; only V4_PORT_EXT carries more than 32 bits. */
    out->v.port = (cn_port){node, tag == ERL_V4_PORT_EXT ? e.id : (uint32_t)e.id, e.creation};
    *p += (size_t)idx;
    return 0;
  }
  /* A reference, read in place too (every call carries several): NEWER_REFERENCE_EXT (OTP 23+) Len, Node,
   * Creation (32 bits), Len ID words; NEW_REFERENCE_EXT the same with an 8-bit Creation; REFERENCE_EXT Node, one
   * ID word, an 8-bit Creation. Of an 8-bit Creation only the low 2 bits count, as ei keeps them; the walk has
   * checked 1 <= Len <= CN_REF_MAX_WORDS and the bytes. */
  const uint8_t *f = c->v.b + ap;
  out->type = CN_REF;
  out->v.ref.node = node;
  if (tag == ERL_REFERENCE_EXT) {
    out->v.ref.len = 1;
    out->v.ref.n[0] = cn_get32(f);
    out->v.ref.creation = f[4] & 3u;
    *p = ap + 5;
    return 0;
  }
  uint32_t len = cn_get16(c->v.b + *p + 1);
  if (len < 1 || len > CN_REF_MAX_WORDS) return CN_EDECODE; /* the walk's check, kept for the reader */
  bool newer = tag == ERL_NEWER_REFERENCE_EXT;
  out->v.ref.creation = newer ? cn_get32(f) : f[0] & 3u;
  f += newer ? 4 : 1;
  out->v.ref.len = len;
  for (uint32_t i = 0; i < len; i++) out->v.ref.n[i] = cn_get32(f + 4 * i);
  *p = (size_t)(f - c->v.b) + 4 * len;
  return 0;
}

static int bfloat(const uint8_t *b, size_t *p, cn_term *out) {
  double d;
  int idx = 0;
  if (b[*p] == NEW_FLOAT_EXT) {
    if (ei_decode_double((const char *)b + *p, &idx, &d) < 0) return CN_EDECODE;
    *p += 9;
  } else {
    /* FLOAT_EXT is "%.20e" text in 31 bytes with no terminator promised: ei scans it with sscanf, so give
     * it a terminated copy instead of the wire bytes. */
    char tmp[33];
    memcpy(tmp, b + *p, 32);
    tmp[32] = 0;
    if (ei_decode_double(tmp, &idx, &d) < 0) return CN_EDECODE;
    *p += 32;
  }
  if (!isfinite(d)) return CN_EDECODE; /* the BEAM has no NaN or infinity */
  out->type = CN_FLOAT;
  out->v.f = d;
  return 0;
}

/* Builds the validated term at *p into out (a value slot), carving arrays and bytes from the block. On
 * error the caller frees the whole block, so nothing here unwinds. */
static int bterm(bctx *c, size_t *p, cn_term *out) {
  const uint8_t *b = c->v.b + *p;
  size_t n;
  int r = 0;
  set_nil(out);
  switch (b[0]) {
  case ERL_SMALL_INTEGER_EXT:
    out->type = CN_INT;
    out->v.i = b[1];
    *p += 2;
    return 0;
  case ERL_INTEGER_EXT:
    out->type = CN_INT;
    out->v.i = (int32_t)cn_get32(b + 1);
    *p += 5;
    return 0;
  case ERL_FLOAT_EXT:
  case NEW_FLOAT_EXT: return bfloat(c->v.b, p, out);
  case ERL_ATOM_EXT:
  case ERL_SMALL_ATOM_EXT:
  case ERL_ATOM_UTF8_EXT:
  case ERL_SMALL_ATOM_UTF8_EXT: {
    const cn_atom *a;
    if ((r = batom(c, p, &a))) return r;
    out->type = CN_ATOM;
    out->v.atom = a;
    return 0;
  }
  case ERL_BINARY_EXT:
    n = cn_get32(b + 1);
    *p += 5 + n;
    if (c->v.share_min && n >= c->v.share_min) { /* shared with the input's chunk, as the walk counted */
      out->type = CN_BINARY;
      out->v.bin.size = n;
      out->v.bin.bits = 8;
      out->v.bin.data = (uint8_t *)b + 5; /* never written through: the chunk is read-only while shared */
      out->v.bin.chunk = c->chunk;        /* the block's reference keeps it; a sender may take one more */
      c->v.shared = 1;
      return 0;
    }
    return bbits(c, b + 5, n, 8, out);
  case ERL_BIT_BINARY_EXT:
    n = cn_get32(b + 1);
    if ((r = bbits(c, b + 6, n, b[5], out))) return r;
    *p += 6 + n;
    return 0;
  case ERL_NIL_EXT:
  case ERL_STRING_EXT:
  case ERL_LIST_EXT: return blist(c, p, out);
  case ERL_SMALL_TUPLE_EXT:
  case ERL_LARGE_TUPLE_EXT: {
    size_t hdr = b[0] == ERL_SMALL_TUPLE_EXT ? 2 : 5;
    n = hdr == 2 ? b[1] : cn_get32(b + 1);
    *p += hdr;
    cn_term *e;
    if ((r = barray(c, p, n, &e))) return r;
    out->type = CN_TUPLE;
    out->v.tuple.arity = (uint32_t)n;
    out->v.tuple.e = e;
    return 0;
  }
  case ERL_MAP_EXT: {
    n = cn_get32(b + 1);
    *p += 5;
    cn_term *kv;
    if ((r = barray(c, p, 2 * n, &kv))) return r;
    out->type = CN_MAP;
    out->v.map.size = (uint32_t)n;
    out->v.map.kv = kv;
    return 0;
  }
  case ERL_SMALL_BIG_EXT: return bbig(c, b, b[1], p, 3, out);
  case ERL_LARGE_BIG_EXT: return bbig(c, b, cn_get32(b + 1), p, 6, out);
  case ERL_NEW_PID_EXT:
  case ERL_PID_EXT:
  case ERL_NEW_PORT_EXT:
  case ERL_V4_PORT_EXT:
  case ERL_PORT_EXT:
  case ERL_NEWER_REFERENCE_EXT:
  case ERL_NEW_REFERENCE_EXT:
  case ERL_REFERENCE_EXT:
    r = bident(c, p, out);
    if (r) set_nil(out);
    return r;
  case ERL_EXPORT_EXT:
  case ERL_NEW_FUN_EXT: {
    /* Funs travel intact: re-walk to find their length (cheap, and already known to succeed). */
    vctx v = c->v;
    v.max_depth = SIZE_MAX;
    v.cnt = NULL;
    size_t q = *p;
    if ((r = vterm(&v, &q, 0))) return r;
    n = q - *p;
    if (!(out->v.fun.ext = take_bytes(c, n))) return CN_EDECODE;
    memcpy(out->v.fun.ext, b, n);
    out->v.fun.len = n;
    out->type = CN_FUN;
    *p = q;
    return 0;
  }
  default: return CN_EDECODE; /* unreachable after the walk */
  }
}

/* ---- one pass for a small term (the common message): checked and built at once, into scratch on the stack ----
 * It handles the shapes messages mostly have (integers, atoms the connection's cache already holds, binaries,
 * strings, proper lists and lists with a tail other than a list, small tuples, pids, references) with every bound
 * the walk checks; anything else (another tag, an atom not cached, more values or bytes than the scratch, any
 * error at all) gives up without a trace, and the two passes decode the input from the start, errors included. So
 * the fast path never interns an atom, and a message is accepted or refused exactly as before. The built values
 * are then copied to their block and their pointers moved along. */
#define FAST_SLOTS 48
#define FAST_BYTES 256

typedef struct fctx {
  const uint8_t *b;
  size_t lim, max_depth, share_min;
  const cn_atoms *tab;
  const cn_atom_cache *cache;
  cn_chunk *chunk;
  int shared;
  size_t nslot, nbyte;
  cn_term slot[FAST_SLOTS];
  uint8_t byte[FAST_BYTES];
} fctx;

static cn_term *ftake(fctx *f, size_t n) {
  if (n > FAST_SLOTS - f->nslot) return NULL;
  cn_term *t = f->slot + f->nslot;
  f->nslot += n;
  return t;
}

/* A UTF-8 atom the cache holds (the peer's encoding since OTP 20); 1 otherwise. */
static int fatom(fctx *f, size_t *p, const cn_atom **out) {
  const uint8_t *b = f->b + *p;
  size_t rem = f->lim - *p;
  if (rem < 2 || (b[0] != ERL_SMALL_ATOM_UTF8_EXT && b[0] != ERL_ATOM_UTF8_EXT)) return 1;
  size_t hdr = b[0] == ERL_ATOM_UTF8_EXT ? 3 : 2;
  if (hdr > rem) return 1;
  size_t n = hdr == 3 ? cn_get16(b + 1) : b[1];
  if (n > TERM_ATOM_MAX_BYTES || n > rem - hdr) return 1;
  if (!(*out = term_atom_cache_peek(f->tab, f->cache, (const char *)b + hdr, n))) return 1;
  *p += hdr + n;
  return 0;
}

/* Builds the term at *p into out; 0, or 1 to give up. */
static int fterm(fctx *f, size_t *p, size_t depth, cn_term *out) {
  if (*p >= f->lim) return 1;
  const uint8_t *b = f->b + *p;
  size_t rem = f->lim - *p, n;
  set_nil(out);
  switch (b[0]) {
  case ERL_SMALL_INTEGER_EXT:
    if (rem < 2) return 1;
    out->type = CN_INT;
    out->v.i = b[1];
    *p += 2;
    return 0;
  case ERL_INTEGER_EXT:
    if (rem < 5) return 1;
    out->type = CN_INT;
    out->v.i = (int32_t)cn_get32(b + 1);
    *p += 5;
    return 0;
  case ERL_SMALL_ATOM_UTF8_EXT:
  case ERL_ATOM_UTF8_EXT:
    if (fatom(f, p, &out->v.atom)) return 1;
    out->type = CN_ATOM;
    return 0;
  case ERL_BINARY_EXT:
    if (rem < 5 || (n = cn_get32(b + 1)) > rem - 5) return 1;
    out->type = CN_BINARY;
    out->v.bin.size = n;
    out->v.bin.bits = 8;
    if (f->share_min && n >= f->share_min) {
      out->v.bin.data = (uint8_t *)b + 5; /* as bterm: shared with the input's chunk */
      out->v.bin.chunk = f->chunk;
      f->shared = 1;
    } else if (n) {
      if (n > FAST_BYTES - f->nbyte) return 1;
      out->v.bin.data = f->byte + f->nbyte;
      memcpy(out->v.bin.data, b + 5, n);
      f->nbyte += n;
    }
    *p += 5 + n;
    return 0;
  case ERL_NIL_EXT: *p += 1; return 0;
  case ERL_STRING_EXT: {
    if (rem < 3 || (n = cn_get16(b + 1)) > rem - 3) return 1;
    *p += 3 + n;
    if (!n) return 0; /* nil */
    cn_term *e = ftake(f, n);
    if (!e) return 1;
    for (size_t i = 0; i < n; i++) {
      set_nil(&e[i]);
      e[i].type = CN_INT;
      e[i].v.i = b[3 + i];
    }
    out->type = CN_LIST;
    out->v.list.e = e;
    out->v.list.len = (uint32_t)n;
    return 0;
  }
  case ERL_LIST_EXT: {
    if (depth >= f->max_depth || rem < 5 || (n = cn_get32(b + 1)) == 0 || n > rem - 5) return 1;
    cn_term *e = ftake(f, n);
    if (!e) return 1;
    *p += 5;
    for (size_t i = 0; i < n; i++)
      if (fterm(f, p, depth + 1, &e[i])) return 1;
    if (*p >= f->lim) return 1;
    uint8_t tag = f->b[*p];
    cn_term *tail = NULL;
    if (tag == ERL_NIL_EXT) {
      (*p)++;
    } else {
      if (tag == ERL_LIST_EXT || tag == ERL_STRING_EXT || !(tail = ftake(f, 1))) return 1; /* chains: bblist */
      if (fterm(f, p, depth + 1, tail)) return 1;
    }
    out->type = CN_LIST;
    out->v.list.e = e;
    out->v.list.len = (uint32_t)n;
    out->v.list.tail = tail;
    return 0;
  }
  case ERL_SMALL_TUPLE_EXT: {
    if (rem < 2 || (n = b[1]) > rem - 2 || (n && depth >= f->max_depth)) return 1;
    cn_term *e = n ? ftake(f, n) : NULL;
    if (n && !e) return 1;
    *p += 2;
    for (size_t i = 0; i < n; i++)
      if (fterm(f, p, depth + 1, &e[i])) return 1;
    out->type = CN_TUPLE;
    out->v.tuple.arity = (uint32_t)n;
    out->v.tuple.e = e;
    return 0;
  }
  case ERL_NEW_PID_EXT: {
    const cn_atom *node;
    size_t q = *p + 1;
    if (fatom(f, &q, &node) || f->lim - q < 12) return 1;
    const uint8_t *x = f->b + q;
    out->type = CN_PID;
    out->v.pid = (cn_pid){node, cn_get32(x), cn_get32(x + 4), cn_get32(x + 8)};
    *p = q + 12;
    return 0;
  }
  case ERL_NEWER_REFERENCE_EXT: {
    const cn_atom *node;
    if (rem < 3 || (n = cn_get16(b + 1)) < 1 || n > CN_REF_MAX_WORDS) return 1;
    size_t q = *p + 3;
    if (fatom(f, &q, &node) || f->lim - q < 4 + 4 * n) return 1;
    const uint8_t *x = f->b + q;
    out->type = CN_REF;
    out->v.ref.node = node;
    out->v.ref.creation = cn_get32(x);
    out->v.ref.len = (uint32_t)n;
    for (size_t i = 0; i < n; i++) out->v.ref.n[i] = cn_get32(x + 4 + 4 * i);
    *p = q + 4 + 4 * n;
    return 0;
  }
  default: return 1;
  }
}

/* Moves f's values into blk (their bytes to bytes), pointers included. */
static void fmove(const fctx *f, cn_term *blk, uint8_t *bytes) {
  memcpy(blk, f->slot, f->nslot * sizeof *blk);
  if (f->nbyte) memcpy(bytes, f->byte, f->nbyte);
  for (size_t i = 0; i < f->nslot; i++) {
    cn_term *t = &blk[i];
    if (t->type == CN_TUPLE) {
      if (t->v.tuple.e) t->v.tuple.e = blk + (t->v.tuple.e - f->slot);
    } else if (t->type == CN_LIST) {
      t->v.list.e = blk + (t->v.list.e - f->slot);
      if (t->v.list.tail) t->v.list.tail = blk + (t->v.list.tail - f->slot);
    } else if (t->type == CN_BINARY && t->v.bin.data && !t->v.bin.chunk) {
      t->v.bin.data = bytes + (t->v.bin.data - f->byte);
    }
  }
}

/* cn_term_decode and cn_term_decode_into: mem (cap bytes) takes the term when the walk finds it fits, else a block
 * from the heap does. A term in mem shares no binary with the input's chunk: mem holds no reference. */
static int decode(cn_atoms *tab, const uint8_t *buf, size_t len, size_t *off, const cn_decode_opts *opts, void *mem,
                  size_t cap, cn_term **out) {
  if (!out) return CN_EINVAL;
  *out = NULL;
  if (!tab || !off || (!buf && len)) return CN_EINVAL;
  if (*off >= len) return CN_ETRUNC;
  size_t max_size = opts ? opts->max_size : 0;
  vcount cnt = {1, 0, 0}; /* the root */
  cn_chunk *chunk = opts && !mem ? opts->chunk : NULL;
  size_t share = chunk ? (opts->share_min ? opts->share_min : CN_SHARE_MIN_DEFAULT) : 0;
  vctx v = {buf, len, len, opts && opts->max_depth ? opts->max_depth : 1000, 0, &cnt, share, 0};
  if (max_size && max_size < len - *off) v.lim = *off + max_size;
  if (opts && opts->cache) { /* a connection's messages: one pass when they are small and their atoms known */
    fctx f;
    f.b = buf, f.lim = v.lim, f.max_depth = v.max_depth, f.share_min = share;
    f.tab = tab, f.cache = opts->cache, f.chunk = chunk, f.shared = 0, f.nslot = 1, f.nbyte = 0;
    size_t q = *off;
    if (!fterm(&f, &q, 0, f.slot)) {
      size_t need = f.nslot * sizeof(cn_term) + f.nbyte;
      term_blk *h = NULL;
      cn_term *blk = mem;
      if (!mem || need > cap) {
        if (!(h = cn_malloc(sizeof *h + need))) return CN_ENOMEM;
        blk = (cn_term *)(h + 1);
      }
      fmove(&f, blk, (uint8_t *)(blk + f.nslot));
      if (h) {
        atomic_init(&h->refs, 1);
        h->chunk = f.shared ? chunk : NULL;
        cn_chunk_retain(h->chunk);
        blk->block = 1;
      }
      *off = q;
      *out = blk;
      return 0;
    }
  }
  size_t end = *off;
  int r = vterm(&v, &end, 0);
  if (r) return r;
  if (cnt.too_long) return CN_ELIMIT;
  if (cnt.slots > (SIZE_MAX - sizeof(term_blk) - cnt.bytes) / sizeof(cn_term)) return CN_ENOMEM;
  size_t need = cnt.slots * sizeof(cn_term) + cnt.bytes;
  term_blk *h = NULL;
  cn_term *blk = mem;
  if (!mem || need > cap) {
    if (!(h = cn_malloc(sizeof *h + need))) return CN_ENOMEM;
    blk = (cn_term *)(h + 1);
  }
  uint8_t *bytes = (uint8_t *)(blk + cnt.slots);
  bctx c = {v,
            tab,
            opts ? opts->atom_limit : 0,
            opts ? opts->cache : NULL,
            blk + 1,
            blk + cnt.slots,
            bytes,
            bytes + cnt.bytes,
            chunk};
  c.v.cnt = NULL;
  size_t q = *off;
  r = bterm(&c, &q, blk);
  if (r) {
    cn_free(h);
    return r;
  }
  if (h) {
    atomic_init(&h->refs, 1);
    h->chunk = c.v.shared ? chunk : NULL;
    cn_chunk_retain(h->chunk);
    blk->block = 1; /* cn_term_free: through the header, no walk */
  }
  *off = end;
  *out = blk;
  return 0;
}

int cn_term_decode(cn_atoms *tab, const uint8_t *buf, size_t len, size_t *off, const cn_decode_opts *opts,
                   cn_term **out) {
  return decode(tab, buf, len, off, opts, NULL, 0, out);
}

int cn_term_decode_into(cn_atoms *tab, const uint8_t *buf, size_t len, size_t *off, const cn_decode_opts *opts,
                        void *mem, size_t cap, cn_term **out) {
  if (!mem) cap = 0;
  return decode(tab, buf, len, off, opts, mem, cap, out);
}

int cn_term_from_binary(cn_atoms *tab, const uint8_t *buf, size_t len, const cn_decode_opts *opts, cn_term **out) {
  if (!out) return CN_EINVAL;
  *out = NULL;
  if (!tab || (!buf && len)) return CN_EINVAL;
  if (len < 1) return CN_ETRUNC;
  if (buf[0] != 131) return CN_EDECODE;
  size_t off = 1;
  int r = cn_term_decode(tab, buf, len, &off, opts, out);
  if (r) return r;
  if (off != len) { /* binary_to_term rejects trailing bytes */
    cn_term_free(*out);
    *out = NULL;
    return CN_EDECODE;
  }
  return 0;
}
