/* encode.c: the external term format encoder, writing what term_to_binary writes (with UTF-8 atoms, as
 * the distribution does). One pass sizes the term, one reserve, then one pass writes straight into cn_buf; with
 * cn_term_encode_ext large refcounted binaries stay out of the buffer and are reported to a callback instead. */
#include <math.h>
#include <string.h>

#include <ei.h>

#include "term_int.h"

/* Like term_to_binary on OTP 25: a port id above 28 bits goes out as V4_PORT_EXT, smaller ones as NEW_PORT_EXT. */
#define PORT_ID_NEW_MAX 0x0fffffffu

/* The BEAM writes a proper list of 1..65535 integers in 0..255 as STRING_EXT; so do we, or bytes differ. */
static bool is_string(const cn_term *t) {
  if (t->v.list.tail || t->v.list.len > 65535) return false;
  for (uint32_t i = 0; i < t->v.list.len; i++) {
    const cn_term *e = &t->v.list.e[i];
    if (e->type != CN_INT || e->v.i < 0 || e->v.i > 255) return false;
  }
  return true;
}

static size_t mag_bytes(uint64_t u) {
  size_t n = 0;
  while (u) n++, u >>= 8;
  return n;
}

static uint64_t int_mag(int64_t v) { return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v; }

static size_t atom_size(const cn_atom *a) { return (a->len <= 255 ? 2 : 3) + a->len; }

/* The large binaries left out of the buffer (cn_term_encode_ext): both passes walk the term in the same order and
 * count down the same budget, so they pick the same binaries. */
typedef struct ectx {
  const cn_encode_ext *x; /* NULL: copy every binary */
  size_t left;            /* binaries still to leave out */
  const uint8_t *base;    /* write pass: out->data, for the offsets told to fn */
  int err;                /* write pass: fn's failure */
} ectx;

static bool leave_out(ectx *e, const cn_term *t) {
  if (!e->x || !e->left || !t->v.bin.chunk || t->v.bin.bits != 8 || t->v.bin.size < e->x->min || !e->x->min)
    return false;
  e->left--;
  return true;
}

/* Adds the encoded size of t to *sz; CN_EINVAL for values the format cannot carry. */
static int esize(const cn_term *t, size_t *sz, ectx *e) {
  size_t n = 0;
  int r;
  switch (t->type) {
  case CN_INT:
    if (t->v.i >= 0 && t->v.i <= 255) n = 2;
    else if (t->v.i >= INT32_MIN && t->v.i <= INT32_MAX) n = 5;
    else n = 3 + mag_bytes(int_mag(t->v.i));
    break;
  case CN_BIG: n = (t->v.big.n <= 255 ? 3 : 6) + (size_t)t->v.big.n; break;
  case CN_FLOAT:
    if (!isfinite(t->v.f)) return CN_EINVAL;
    n = 9;
    break;
  case CN_ATOM:
    if (!t->v.atom) return CN_EINVAL;
    n = atom_size(t->v.atom);
    break;
  case CN_BINARY:
    if (t->v.bin.size > UINT32_MAX || t->v.bin.bits < 1 || t->v.bin.bits > 8) return CN_EINVAL;
    n = (t->v.bin.bits == 8 ? 5 : 6) + (leave_out(e, t) ? 0 : t->v.bin.size);
    break;
  case CN_NIL: n = 1; break;
  case CN_LIST:
    if (is_string(t)) {
      n = 3 + t->v.list.len;
      break;
    }
    *sz += 5;
    for (uint32_t i = 0; i < t->v.list.len; i++)
      if ((r = esize(&t->v.list.e[i], sz, e))) return r;
    if (t->v.list.tail) return esize(t->v.list.tail, sz, e);
    n = 1;
    break;
  case CN_TUPLE:
    *sz += t->v.tuple.arity <= 255 ? 2 : 5;
    for (uint32_t i = 0; i < t->v.tuple.arity; i++)
      if ((r = esize(&t->v.tuple.e[i], sz, e))) return r;
    return 0;
  case CN_MAP:
    *sz += 5;
    for (size_t i = 0; i < 2 * (size_t)t->v.map.size; i++)
      if ((r = esize(&t->v.map.kv[i], sz, e))) return r;
    return 0;
  case CN_PID:
    if (!t->v.pid.node) return CN_EINVAL;
    n = 1 + atom_size(t->v.pid.node) + 12;
    break;
  case CN_PORT:
    if (!t->v.port.node) return CN_EINVAL;
    n = 1 + atom_size(t->v.port.node) + (t->v.port.id > PORT_ID_NEW_MAX ? 12 : 8);
    break;
  case CN_REF:
    if (!t->v.ref.node || t->v.ref.len < 1 || t->v.ref.len > CN_REF_MAX_WORDS) return CN_EINVAL;
    n = 3 + atom_size(t->v.ref.node) + 4 + 4 * (size_t)t->v.ref.len;
    break;
  case CN_FUN:
    if (!t->v.fun.len) return CN_EINVAL;
    n = t->v.fun.len;
    break;
  default: return CN_EINVAL;
  }
  *sz += n;
  return 0;
}

static uint8_t *w32(uint8_t *w, uint32_t v) {
  cn_set32(w, v);
  return w + 4;
}

static uint8_t *watom(uint8_t *w, const cn_atom *a) {
  if (a->len <= 255) {
    *w++ = ERL_SMALL_ATOM_UTF8_EXT;
    *w++ = (uint8_t)a->len;
  } else {
    *w++ = ERL_ATOM_UTF8_EXT;
    *w++ = (uint8_t)(a->len >> 8);
    *w++ = (uint8_t)a->len;
  }
  memcpy(w, a->name, a->len);
  return w + a->len;
}

/* Writes t at w (room was reserved by esize) and returns the end. */
static uint8_t *ewrite(const cn_term *t, uint8_t *w, ectx *e) {
  switch (t->type) {
  case CN_INT: {
    int64_t v = t->v.i;
    if (v >= 0 && v <= 255) {
      *w++ = ERL_SMALL_INTEGER_EXT;
      *w++ = (uint8_t)v;
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      *w++ = ERL_INTEGER_EXT;
      w = w32(w, (uint32_t)(int32_t)v);
    } else {
      uint64_t u = int_mag(v);
      *w++ = ERL_SMALL_BIG_EXT;
      *w++ = (uint8_t)mag_bytes(u);
      *w++ = v < 0;
      for (; u; u >>= 8) *w++ = (uint8_t)u;
    }
    return w;
  }
  case CN_BIG:
    if (t->v.big.n <= 255) {
      *w++ = ERL_SMALL_BIG_EXT;
      *w++ = (uint8_t)t->v.big.n;
    } else {
      *w++ = ERL_LARGE_BIG_EXT;
      w = w32(w, t->v.big.n);
    }
    *w++ = t->v.big.sign ? 1 : 0;
    memcpy(w, t->v.big.mag, t->v.big.n);
    return w + t->v.big.n;
  case CN_FLOAT: {
    uint64_t u;
    memcpy(&u, &t->v.f, sizeof u);
    *w++ = NEW_FLOAT_EXT;
    w = w32(w, (uint32_t)(u >> 32));
    return w32(w, (uint32_t)u);
  }
  case CN_ATOM: return watom(w, t->v.atom);
  case CN_BINARY:
    if (t->v.bin.bits == 8) {
      *w++ = ERL_BINARY_EXT;
      w = w32(w, (uint32_t)t->v.bin.size);
    } else {
      *w++ = ERL_BIT_BINARY_EXT;
      w = w32(w, (uint32_t)t->v.bin.size);
      *w++ = t->v.bin.bits;
    }
    if (leave_out(e, t)) {
      int r = e->x->fn(e->x->ctx, (size_t)(w - e->base), t->v.bin.chunk, t->v.bin.data, t->v.bin.size);
      if (r && !e->err) e->err = r;
      return w;
    }
    if (t->v.bin.size) memcpy(w, t->v.bin.data, t->v.bin.size);
    return w + t->v.bin.size;
  case CN_NIL: *w++ = ERL_NIL_EXT; return w;
  case CN_LIST:
    if (is_string(t)) {
      *w++ = ERL_STRING_EXT;
      *w++ = (uint8_t)(t->v.list.len >> 8);
      *w++ = (uint8_t)t->v.list.len;
      for (uint32_t i = 0; i < t->v.list.len; i++) *w++ = (uint8_t)t->v.list.e[i].v.i;
      return w;
    }
    *w++ = ERL_LIST_EXT;
    w = w32(w, t->v.list.len);
    for (uint32_t i = 0; i < t->v.list.len; i++) w = ewrite(&t->v.list.e[i], w, e);
    if (t->v.list.tail) return ewrite(t->v.list.tail, w, e);
    *w++ = ERL_NIL_EXT;
    return w;
  case CN_TUPLE:
    if (t->v.tuple.arity <= 255) {
      *w++ = ERL_SMALL_TUPLE_EXT;
      *w++ = (uint8_t)t->v.tuple.arity;
    } else {
      *w++ = ERL_LARGE_TUPLE_EXT;
      w = w32(w, t->v.tuple.arity);
    }
    for (uint32_t i = 0; i < t->v.tuple.arity; i++) w = ewrite(&t->v.tuple.e[i], w, e);
    return w;
  case CN_MAP:
    *w++ = ERL_MAP_EXT;
    w = w32(w, t->v.map.size);
    for (size_t i = 0; i < 2 * (size_t)t->v.map.size; i++) w = ewrite(&t->v.map.kv[i], w, e);
    return w;
  case CN_PID:
    *w++ = ERL_NEW_PID_EXT;
    w = watom(w, t->v.pid.node);
    w = w32(w, t->v.pid.id);
    w = w32(w, t->v.pid.serial);
    return w32(w, t->v.pid.creation);
  case CN_PORT:
    /* NEW_PORT_EXT while the id fits 32 bits, as OTP 24+ does; V4_PORT_EXT beyond. */
    if (t->v.port.id > PORT_ID_NEW_MAX) {
      *w++ = ERL_V4_PORT_EXT;
      w = watom(w, t->v.port.node);
      w = w32(w, (uint32_t)(t->v.port.id >> 32));
      w = w32(w, (uint32_t)t->v.port.id);
    } else {
      *w++ = ERL_NEW_PORT_EXT;
      w = watom(w, t->v.port.node);
      w = w32(w, (uint32_t)t->v.port.id);
    }
    return w32(w, t->v.port.creation);
  case CN_REF:
    *w++ = ERL_NEWER_REFERENCE_EXT;
    *w++ = 0;
    *w++ = (uint8_t)t->v.ref.len;
    w = watom(w, t->v.ref.node);
    w = w32(w, t->v.ref.creation);
    for (uint32_t i = 0; i < t->v.ref.len; i++) w = w32(w, t->v.ref.n[i]);
    return w;
  case CN_FUN: memcpy(w, t->v.fun.ext, t->v.fun.len); return w + t->v.fun.len;
  default: return w; /* esize rejected it */
  }
}

static int encode(const cn_term *t, cn_buf *out, int version, const cn_encode_ext *x) {
  if (!t || !out || (x && !x->fn)) return CN_EINVAL;
  size_t sz = version ? 1 : 0;
  ectx e = {x, x ? x->max : 0, NULL, 0};
  int r = esize(t, &sz, &e);
  if (r) return r;
  if (cn_buf_reserve(out, sz)) return CN_ENOMEM;
  uint8_t *w = out->data + out->len;
  if (version) *w++ = 131;
  e.left = x ? x->max : 0;
  e.base = out->data;
  w = ewrite(t, w, &e);
  (void)w; /* == data + len + sz: esize and ewrite agree */
  if (e.err) return e.err;
  out->len += sz;
  out->data[out->len] = 0; /* cn_buf keeps a NUL after its data */
  return 0;
}

int cn_term_encode(const cn_term *t, cn_buf *out) { return encode(t, out, 0, NULL); }

int cn_term_to_binary(const cn_term *t, cn_buf *out) { return encode(t, out, 1, NULL); }

int cn_term_encode_ext(const cn_term *t, cn_buf *out, int version, const cn_encode_ext *ext) {
  return encode(t, out, version ? 1 : 0, ext);
}
