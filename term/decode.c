/* decode.c: the external term format decoder: a bounds-checked validating walk, then a build pass.
 * ei's decoders trust their buffer, so they only ever see bytes the walk has proven to hold a whole term. */
#include <math.h>
#include <string.h>

#include <ei.h>

#include "term_int.h"

/* A term must fit in [.., lim); lim is below len only when opts->max_size cuts the input short. */
typedef struct vctx {
  const uint8_t *b;
  size_t len, lim;
  size_t max_depth;
  int check_text; /* inside a fun: atoms stay raw bytes, never interned, so check their text here */
} vctx;

typedef struct bctx {
  vctx v; /* the validated input; the build pass re-reads it without re-checking */
  cn_atoms *tab;
  size_t atom_limit; /* cn_decode_opts.atom_limit */
} bctx;

/* Running out of bytes is truncation, unless max_size is what stopped us. */
static int short_err(const vctx *v) { return v->lim < v->len ? CN_ELIMIT : CN_ETRUNC; }
#define NEED(n)                                                                                              \
  do {                                                                                                       \
    if ((size_t)(n) > v->lim - *p)                                                                           \
      return short_err(v);                                                                                   \
  } while (0)

static int is_atom_tag(uint8_t t) {
  return t == ERL_ATOM_EXT || t == ERL_SMALL_ATOM_EXT || t == ERL_ATOM_UTF8_EXT ||
         t == ERL_SMALL_ATOM_UTF8_EXT;
}

/* Checks the bounds of an atom of any of the four encodings; the text itself is checked when interned. */
static int vatom(const vctx *v, size_t *p) {
  NEED(1);
  uint8_t tag = v->b[*p];
  if (!is_atom_tag(tag))
    return CN_EDECODE;
  size_t hdr = tag == ERL_ATOM_EXT || tag == ERL_ATOM_UTF8_EXT ? 3 : 2;
  NEED(hdr);
  size_t n = hdr == 3 ? cn_get16(v->b + *p + 1) : v->b[*p + 1];
  /* Latin-1 text is one byte per character; UTF-8 up to four. */
  if (n > (tag == ERL_ATOM_EXT || tag == ERL_SMALL_ATOM_EXT ? TERM_ATOM_MAX_CHARS : TERM_ATOM_MAX_BYTES))
    return CN_EDECODE;
  NEED(hdr + n);
  if (v->check_text && (tag == ERL_ATOM_UTF8_EXT || tag == ERL_SMALL_ATOM_UTF8_EXT)) {
    long chars = term_utf8_count(v->b + *p + hdr, n);
    if (chars < 0 || chars > TERM_ATOM_MAX_CHARS)
      return CN_EDECODE;
  }
  *p += hdr + n;
  return 0;
}

/* An integer field of a fun: SMALL_INTEGER_EXT or INTEGER_EXT only. */
static int vsmallint(const vctx *v, size_t *p) {
  NEED(1);
  size_t n = v->b[*p] == ERL_SMALL_INTEGER_EXT ? 2 : v->b[*p] == ERL_INTEGER_EXT ? 5 : 0;
  if (!n)
    return CN_EDECODE;
  NEED(n);
  *p += n;
  return 0;
}

static int vterm(const vctx *v, size_t *p, size_t depth);

static int vpid(const vctx *v, size_t *p) {
  NEED(1);
  uint8_t tag = v->b[*p];
  if (tag != ERL_NEW_PID_EXT && tag != ERL_PID_EXT)
    return CN_EDECODE;
  (*p)++;
  int r = vatom(v, p);
  if (r)
    return r;
  size_t rest = tag == ERL_NEW_PID_EXT ? 12 : 9;
  NEED(rest);
  *p += rest;
  return 0;
}

/* Lists iterate over their tails: a chain of LIST_EXT cells costs no stack however long it is. */
static int vlist(const vctx *v, size_t *p, size_t depth) {
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
      return 0;
    }
    /* Nil and strings hold no terms, so only a cell counts as a level of nesting. */
    if (depth >= v->max_depth)
      return CN_ELIMIT;
    if (tag != ERL_LIST_EXT)
      return vterm(v, p, depth + 1); /* an improper tail */
    NEED(5);
    uint32_t n = cn_get32(v->b + *p + 1);
    *p += 5;
    if (n > v->lim - *p)
      return short_err(v); /* each element takes at least one byte */
    for (uint32_t i = 0; i < n; i++) {
      int r = vterm(v, p, depth + 1);
      if (r)
        return r;
    }
  }
}

static int vfun(const vctx *outer, size_t *p, size_t depth) {
  vctx fv = *outer;
  const vctx *v = &fv;
  fv.check_text = 1;
  size_t start = *p;
  int r;
  if (v->b[*p] == ERL_EXPORT_EXT) {
    (*p)++;
    if ((r = vatom(v, p)) || (r = vatom(v, p)))
      return r;
    NEED(2);
    if (v->b[*p] != ERL_SMALL_INTEGER_EXT)
      return CN_EDECODE;
    *p += 2;
    return 0;
  }
  /* NEW_FUN_EXT: Size counts itself and everything after it, and must agree with the fields. */
  NEED(1 + 4 + 1 + 16 + 4 + 4);
  uint32_t size = cn_get32(v->b + *p + 1);
  uint32_t nfree = cn_get32(v->b + *p + 26);
  if (size < 4 + 1 + 16 + 4 + 4)
    return CN_EDECODE;
  NEED(1 + (size_t)size);
  *p += 30;
  if ((r = vatom(v, p)) || (r = vsmallint(v, p)) || (r = vsmallint(v, p)) || (r = vpid(v, p)))
    return r;
  if (nfree > v->lim - *p)
    return short_err(v);
  if (nfree && depth >= v->max_depth)
    return CN_ELIMIT;
  for (uint32_t i = 0; i < nfree; i++)
    if ((r = vterm(v, p, depth + 1)))
      return r;
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
  case ERL_SMALL_ATOM_UTF8_EXT:
    return vatom(v, p);
  case ERL_BINARY_EXT:
    NEED(5);
    n = cn_get32(b + *p + 1);
    NEED(5 + n);
    *p += 5 + n;
    return 0;
  case ERL_BIT_BINARY_EXT: {
    NEED(6);
    n = cn_get32(b + *p + 1);
    uint8_t bits = b[*p + 5];
    if ((bits == 0) != (n == 0) || bits > 8)
      return CN_EDECODE; /* as the BEAM's binary_to_term */
    NEED(6 + n);
    *p += 6 + n;
    return 0;
  }
  case ERL_NIL_EXT:
  case ERL_STRING_EXT:
  case ERL_LIST_EXT:
    return vlist(v, p, depth);
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
    if (n > v->lim - *p)
      return short_err(v);
    if (n && depth >= v->max_depth)
      return CN_ELIMIT;
    for (size_t i = 0; i < n; i++)
      if ((r = vterm(v, p, depth + 1)))
        return r;
    return 0;
  case ERL_MAP_EXT:
    NEED(5);
    n = cn_get32(b + *p + 1);
    *p += 5;
    if (n > (v->lim - *p) / 2)
      return short_err(v);
    if (n && depth >= v->max_depth)
      return CN_ELIMIT;
    for (size_t i = 0; i < 2 * n; i++)
      if ((r = vterm(v, p, depth + 1)))
        return r;
    return 0;
  case ERL_SMALL_BIG_EXT:
    NEED(3);
    n = b[*p + 1];
    NEED(3 + n);
    *p += 3 + n;
    return 0;
  case ERL_LARGE_BIG_EXT:
    NEED(6);
    n = cn_get32(b + *p + 1);
    NEED(6 + n);
    *p += 6 + n;
    return 0;
  case ERL_NEW_PID_EXT:
  case ERL_PID_EXT:
    return vpid(v, p);
  case ERL_NEW_PORT_EXT:
  case ERL_V4_PORT_EXT:
  case ERL_PORT_EXT:
    (*p)++;
    if ((r = vatom(v, p)))
      return r;
    n = tag == ERL_NEW_PORT_EXT ? 8 : tag == ERL_V4_PORT_EXT ? 12 : 5;
    NEED(n);
    *p += n;
    return 0;
  case ERL_NEWER_REFERENCE_EXT:
  case ERL_NEW_REFERENCE_EXT:
    NEED(3);
    n = cn_get16(b + *p + 1);
    if (n < 1 || n > CN_REF_MAX_WORDS)
      return CN_EDECODE;
    *p += 3;
    if ((r = vatom(v, p)))
      return r;
    n = (tag == ERL_NEWER_REFERENCE_EXT ? 4 : 1) + 4 * n;
    NEED(n);
    *p += n;
    return 0;
  case ERL_REFERENCE_EXT:
    (*p)++;
    if ((r = vatom(v, p)))
      return r;
    NEED(5);
    *p += 5;
    return 0;
  case ERL_EXPORT_EXT:
  case ERL_NEW_FUN_EXT:
    return vfun(v, p, depth);
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

/* Interns the atom at *p, converting latin-1 text to UTF-8 first. */
static int batom(bctx *c, size_t *p, const cn_atom **out) {
  const uint8_t *b = c->v.b + *p;
  uint8_t tag = b[0];
  size_t hdr = tag == ERL_ATOM_EXT || tag == ERL_ATOM_UTF8_EXT ? 3 : 2;
  size_t n = hdr == 3 ? cn_get16(b + 1) : b[1];
  const uint8_t *s = b + hdr;
  *p += hdr + n;
  int err;
  if (tag == ERL_ATOM_UTF8_EXT || tag == ERL_SMALL_ATOM_UTF8_EXT) {
    *out = term_atoms_intern(c->tab, (const char *)s, n, c->atom_limit, &err);
    return *out ? 0 : err;
  }
  char u[2 * TERM_ATOM_MAX_CHARS];
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < 0x80) {
      u[k++] = (char)s[i];
    } else {
      u[k++] = (char)(0xC0 | (s[i] >> 6));
      u[k++] = (char)(0x80 | (s[i] & 0x3F));
    }
  }
  *out = term_atoms_intern(c->tab, u, k, c->atom_limit, &err);
  return *out ? 0 : err;
}

static int bterm(bctx *c, size_t *p, size_t depth, cn_term *out);

/* Builds a list from a chain of LIST_EXT cells (and a STRING_EXT or NIL_EXT end) into one array, so
 * [1|[2|[3|foo]]] becomes a single list of three with tail foo, whatever cells carried it. */
static int blist(bctx *c, size_t *p, size_t depth, cn_term *out) {
  const uint8_t *b = c->v.b;
  cn_term *arr = NULL, *tail = NULL;
  size_t n = 0, cap = 0;
  size_t q = *p;
  int r = 0;
  for (;;) {
    uint8_t tag = b[q];
    size_t add;
    if (tag == ERL_NIL_EXT) {
      q++;
      break;
    }
    if (tag != ERL_LIST_EXT && tag != ERL_STRING_EXT) {
      tail = cn_malloc(sizeof *tail);
      if (!tail) {
        r = CN_ENOMEM;
        goto fail;
      }
      if ((r = bterm(c, &q, depth + 1, tail)))
        goto fail;
      break;
    }
    add = tag == ERL_LIST_EXT ? cn_get32(b + q + 1) : cn_get16(b + q + 1);
    if (n + add > UINT32_MAX) {
      r = CN_ELIMIT; /* cn_term counts list elements in 32 bits */
      goto fail;
    }
    if (n + add > cap) {
      size_t ncap = cap * 2 > n + add ? cap * 2 : n + add;
      cn_term *na = cn_realloc(arr, ncap * sizeof *na);
      if (!na) {
        r = CN_ENOMEM;
        goto fail;
      }
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
      if ((r = bterm(c, &q, depth + 1, &arr[n])))
        goto fail;
      n++;
    }
  }
  if (n == 0) { /* [ | T] is T itself; an empty string is nil */
    cn_free(arr);
    if (tail) {
      *out = *tail;
      cn_free(tail);
    } else {
      set_nil(out);
    }
  } else {
    if (cap > n) { /* give back the slack of the doubling; keeping it on failure is harmless */
      cn_term *na = cn_realloc(arr, n * sizeof *na);
      if (na)
        arr = na;
    }
    set_nil(out);
    out->type = CN_LIST;
    out->v.list.e = arr;
    out->v.list.len = (uint32_t)n;
    out->v.list.tail = tail;
  }
  *p = q;
  return 0;
fail:
  for (size_t i = 0; i < n; i++)
    term_clear(&arr[i]);
  cn_free(arr);
  cn_free(tail); /* a failed bterm left it owning nothing */
  set_nil(out);
  return r;
}

/* Builds n consecutive values into a new array; on failure frees what was built. */
static int barray(bctx *c, size_t *p, size_t depth, size_t n, cn_term **out) {
  *out = NULL;
  if (!n)
    return 0;
  cn_term *a = cn_malloc(n * sizeof *a);
  if (!a)
    return CN_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    int r = bterm(c, p, depth + 1, &a[i]);
    if (r) {
      while (i-- > 0)
        term_clear(&a[i]);
      cn_free(a);
      return r;
    }
  }
  *out = a;
  return 0;
}

static int bbig(const uint8_t *b, size_t n, size_t *p, size_t hdr, cn_term *out) {
  int neg = b[hdr - 1] != 0;
  const uint8_t *mag = b + hdr;
  *p += hdr + n;
  cn_term *t = cn_mk_big(neg, mag, n); /* normalises to CN_INT when it fits */
  if (!t)
    return CN_ENOMEM;
  *out = *t;
  cn_free(t);
  return 0;
}

static int bbits(const uint8_t *data, size_t n, uint8_t bits, cn_term *out) {
  out->type = CN_BINARY;
  out->v.bin.size = n;
  out->v.bin.bits = n ? bits : 8;
  if (n) {
    out->v.bin.data = cn_malloc(n);
    if (!out->v.bin.data) {
      set_nil(out);
      return CN_ENOMEM;
    }
    memcpy(out->v.bin.data, data, n);
    out->v.bin.data[n - 1] &= (uint8_t)(0xFF << (8 - out->v.bin.bits)); /* bits past the end mean nothing */
  }
  return 0;
}

/* ei reads these in place; the walk has shown the whole identifier is there. Node names are interned
 * from the raw atom (exact length, latin-1 converted) rather than from ei's NUL-terminated copy. */
static int bident(bctx *c, size_t *p, cn_term *out) {
  const char *s = (const char *)c->v.b + *p;
  uint8_t tag = (uint8_t)s[0];
  int idx = 0;
  size_t ap = *p + 1 + (tag == ERL_NEWER_REFERENCE_EXT || tag == ERL_NEW_REFERENCE_EXT ? 2 : 0);
  const cn_atom *node;
  int r = batom(c, &ap, &node);
  if (r)
    return r;
  if (tag == ERL_NEW_PID_EXT || tag == ERL_PID_EXT) {
    erlang_pid e;
    if (ei_decode_pid(s, &idx, &e) < 0)
      return CN_EDECODE;
    out->type = CN_PID;
    out->v.pid = (cn_pid){node, e.num, e.serial, e.creation};
  } else if (tag == ERL_NEW_PORT_EXT || tag == ERL_V4_PORT_EXT || tag == ERL_PORT_EXT) {
    erlang_port e;
    if (ei_decode_port(s, &idx, &e) < 0)
      return CN_EDECODE;
    out->type = CN_PORT;
    /* ei sign-extends a 4-byte id with bit 31 set; only V4_PORT_EXT carries more than 32 bits. */
    out->v.port = (cn_port){node, tag == ERL_V4_PORT_EXT ? e.id : (uint32_t)e.id, e.creation};
  } else {
    erlang_ref e;
    if (ei_decode_ref(s, &idx, &e) < 0 || e.len < 1 || e.len > CN_REF_MAX_WORDS)
      return CN_EDECODE;
    out->type = CN_REF;
    out->v.ref.node = node;
    out->v.ref.creation = e.creation;
    out->v.ref.len = (uint32_t)e.len;
    for (int i = 0; i < e.len; i++)
      out->v.ref.n[i] = e.n[i];
  }
  *p += (size_t)idx;
  return 0;
}

static int bfloat(const uint8_t *b, size_t *p, cn_term *out) {
  double d;
  int idx = 0;
  if (b[*p] == NEW_FLOAT_EXT) {
    if (ei_decode_double((const char *)b + *p, &idx, &d) < 0)
      return CN_EDECODE;
    *p += 9;
  } else {
    /* FLOAT_EXT is "%.20e" text in 31 bytes with no terminator promised: ei scans it with sscanf, so give
     * it a terminated copy instead of the wire bytes. */
    char tmp[33];
    memcpy(tmp, b + *p, 32);
    tmp[32] = 0;
    if (ei_decode_double(tmp, &idx, &d) < 0)
      return CN_EDECODE;
    *p += 32;
  }
  if (!isfinite(d))
    return CN_EDECODE; /* the BEAM has no NaN or infinity */
  out->type = CN_FLOAT;
  out->v.f = d;
  return 0;
}

/* Builds the validated term at *p into out (a value slot). On error out owns nothing. */
static int bterm(bctx *c, size_t *p, size_t depth, cn_term *out) {
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
  case NEW_FLOAT_EXT:
    return bfloat(c->v.b, p, out);
  case ERL_ATOM_EXT:
  case ERL_SMALL_ATOM_EXT:
  case ERL_ATOM_UTF8_EXT:
  case ERL_SMALL_ATOM_UTF8_EXT: {
    const cn_atom *a;
    if ((r = batom(c, p, &a)))
      return r;
    out->type = CN_ATOM;
    out->v.atom = a;
    return 0;
  }
  case ERL_BINARY_EXT:
    n = cn_get32(b + 1);
    if ((r = bbits(b + 5, n, 8, out)))
      return r;
    *p += 5 + n;
    return 0;
  case ERL_BIT_BINARY_EXT:
    n = cn_get32(b + 1);
    if ((r = bbits(b + 6, n, b[5], out)))
      return r;
    *p += 6 + n;
    return 0;
  case ERL_NIL_EXT:
  case ERL_STRING_EXT:
  case ERL_LIST_EXT:
    return blist(c, p, depth, out);
  case ERL_SMALL_TUPLE_EXT:
  case ERL_LARGE_TUPLE_EXT: {
    size_t hdr = b[0] == ERL_SMALL_TUPLE_EXT ? 2 : 5;
    n = hdr == 2 ? b[1] : cn_get32(b + 1);
    *p += hdr;
    cn_term *e;
    if ((r = barray(c, p, depth, n, &e)))
      return r;
    out->type = CN_TUPLE;
    out->v.tuple.arity = (uint32_t)n;
    out->v.tuple.e = e;
    return 0;
  }
  case ERL_MAP_EXT: {
    n = cn_get32(b + 1);
    *p += 5;
    cn_term *kv;
    if ((r = barray(c, p, depth, 2 * n, &kv)))
      return r;
    out->type = CN_MAP;
    out->v.map.size = (uint32_t)n;
    out->v.map.kv = kv;
    return 0;
  }
  case ERL_SMALL_BIG_EXT:
    return bbig(b, b[1], p, 3, out);
  case ERL_LARGE_BIG_EXT:
    return bbig(b, cn_get32(b + 1), p, 6, out);
  case ERL_NEW_PID_EXT:
  case ERL_PID_EXT:
  case ERL_NEW_PORT_EXT:
  case ERL_V4_PORT_EXT:
  case ERL_PORT_EXT:
  case ERL_NEWER_REFERENCE_EXT:
  case ERL_NEW_REFERENCE_EXT:
  case ERL_REFERENCE_EXT:
    r = bident(c, p, out);
    if (r)
      set_nil(out);
    return r;
  case ERL_EXPORT_EXT:
  case ERL_NEW_FUN_EXT: {
    /* Funs travel intact: re-walk to find their length (cheap, and already known to succeed). */
    vctx v = c->v;
    v.max_depth = SIZE_MAX;
    size_t q = *p;
    if ((r = vterm(&v, &q, 0)))
      return r;
    n = q - *p;
    out->v.fun.ext = cn_malloc(n);
    if (!out->v.fun.ext)
      return CN_ENOMEM;
    memcpy(out->v.fun.ext, b, n);
    out->v.fun.len = n;
    out->type = CN_FUN;
    *p = q;
    return 0;
  }
  default:
    return CN_EDECODE; /* unreachable after the walk */
  }
}

int cn_term_decode(cn_atoms *tab, const uint8_t *buf, size_t len, size_t *off, const cn_decode_opts *opts,
                   cn_term **out) {
  if (!out)
    return CN_EINVAL;
  *out = NULL;
  if (!tab || !off || (!buf && len))
    return CN_EINVAL;
  if (*off >= len)
    return CN_ETRUNC;
  size_t max_size = opts ? opts->max_size : 0;
  vctx v = {buf, len, len, opts && opts->max_depth ? opts->max_depth : 1000, 0};
  if (max_size && max_size < len - *off)
    v.lim = *off + max_size;
  size_t end = *off;
  int r = vterm(&v, &end, 0);
  if (r)
    return r;
  cn_term *t = cn_malloc(sizeof *t);
  if (!t)
    return CN_ENOMEM;
  bctx c = {v, tab, opts ? opts->atom_limit : 0};
  size_t q = *off;
  r = bterm(&c, &q, 0, t);
  if (r) {
    cn_free(t);
    return r;
  }
  *off = end;
  *out = t;
  return 0;
}

int cn_term_from_binary(cn_atoms *tab, const uint8_t *buf, size_t len, const cn_decode_opts *opts,
                        cn_term **out) {
  if (!out)
    return CN_EINVAL;
  *out = NULL;
  if (!tab || (!buf && len))
    return CN_EINVAL;
  if (len < 1)
    return CN_ETRUNC;
  if (buf[0] != 131)
    return CN_EDECODE;
  size_t off = 1;
  int r = cn_term_decode(tab, buf, len, &off, opts, out);
  if (r)
    return r;
  if (off != len) { /* binary_to_term rejects trailing bytes */
    cn_term_free(*out);
    *out = NULL;
    return CN_EDECODE;
  }
  return 0;
}

/* ---- fun fields for printing ---- */

static int fi_atom(const uint8_t *b, size_t len, size_t *p, const uint8_t **s, size_t *n, int *utf8) {
  vctx v = {b, len, len, 1, 0};
  size_t q = *p;
  int r = vatom(&v, &q);
  if (r)
    return r;
  uint8_t tag = b[*p];
  size_t hdr = tag == ERL_ATOM_EXT || tag == ERL_ATOM_UTF8_EXT ? 3 : 2;
  *s = b + *p + hdr;
  *n = q - *p - hdr;
  *utf8 = tag == ERL_ATOM_UTF8_EXT || tag == ERL_SMALL_ATOM_UTF8_EXT;
  *p = q;
  return 0;
}

static int fi_int(const uint8_t *b, size_t len, size_t *p, long long *out) {
  if (*p + 2 <= len && b[*p] == ERL_SMALL_INTEGER_EXT) {
    *out = b[*p + 1];
    *p += 2;
    return 0;
  }
  if (*p + 5 <= len && b[*p] == ERL_INTEGER_EXT) {
    *out = (int32_t)cn_get32(b + *p + 1);
    *p += 5;
    return 0;
  }
  return CN_EDECODE;
}

int term_fun_info_get(const cn_term *t, term_fun_info *fi) {
  memset(fi, 0, sizeof *fi);
  if (t->type != CN_FUN || t->v.fun.len < 1)
    return CN_EDECODE;
  const uint8_t *b = t->v.fun.ext;
  size_t len = t->v.fun.len, p = 1;
  if (b[0] == ERL_EXPORT_EXT) {
    fi->is_export = 1;
    if (fi_atom(b, len, &p, &fi->mod, &fi->mod_len, &fi->mod_utf8) ||
        fi_atom(b, len, &p, &fi->fun, &fi->fun_len, &fi->fun_utf8) || fi_int(b, len, &p, &fi->arity))
      return CN_EDECODE;
    return 0;
  }
  if (b[0] != ERL_NEW_FUN_EXT || len < 30)
    return CN_EDECODE;
  fi->arity = b[5];
  p = 30;
  if (fi_atom(b, len, &p, &fi->mod, &fi->mod_len, &fi->mod_utf8) || fi_int(b, len, &p, &fi->index) ||
      fi_int(b, len, &p, &fi->uniq))
    return CN_EDECODE;
  return 0;
}
