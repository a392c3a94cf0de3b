/* encode.c: the external term format encoder, writing what term_to_binary writes (with UTF-8 atoms, as
 * the distribution does). One pass writes straight into cn_buf, which doubles when it fills (a separate sizing pass
 * cost as much as the writing for the large terms of a Horde sync); with cn_term_encode_ext large refcounted
 * binaries stay out of the buffer and are reported to a callback instead. */
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

/* The writer: w in out's data past out->len, end its capacity (the NUL's byte kept free); x, left: the large
 * binaries left out of the buffer (cn_term_encode_ext; x NULL: copy every binary). */
typedef struct enc {
  cn_buf *out;
  uint8_t *w, *end;
  const cn_encode_ext *x;
  size_t left;
} enc;

static bool leave_out(enc *e, const cn_term *t) {
  if (!e->x || !e->left || !t->v.bin.chunk || t->v.bin.bits != 8 || t->v.bin.size < e->x->min || !e->x->min)
    return false;
  e->left--;
  return true;
}

/* Room for n more bytes at e->w (the buffer doubles, so a term is written in one pass with few moves). */
static int room(enc *e, size_t n) {
  if ((size_t)(e->end - e->w) >= n) return 0;
  size_t used = (size_t)(e->w - (e->out->data + e->out->len));
  if (cn_buf_reserve(e->out, used + n)) return CN_ENOMEM;
  e->w = e->out->data + e->out->len + used;
  e->end = e->out->data + e->out->cap - 1;
  return 0;
}

/* Writes t at e->w; CN_EINVAL for values the format cannot carry, CN_ENOMEM. */
static int ewrite(const cn_term *t, enc *e) {
  int r;
  uint8_t *w;
  switch (t->type) {
  case CN_INT: {
    if ((r = room(e, 11))) return r;
    w = e->w;
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
    break;
  }
  case CN_BIG:
    if ((r = room(e, 6 + (size_t)t->v.big.n))) return r;
    w = e->w;
    if (t->v.big.n <= 255) {
      *w++ = ERL_SMALL_BIG_EXT;
      *w++ = (uint8_t)t->v.big.n;
    } else {
      *w++ = ERL_LARGE_BIG_EXT;
      w = w32(w, t->v.big.n);
    }
    *w++ = t->v.big.sign ? 1 : 0;
    memcpy(w, t->v.big.mag, t->v.big.n);
    w += t->v.big.n;
    break;
  case CN_FLOAT: {
    if (!isfinite(t->v.f)) return CN_EINVAL;
    if ((r = room(e, 9))) return r;
    w = e->w;
    uint64_t u;
    memcpy(&u, &t->v.f, sizeof u);
    *w++ = NEW_FLOAT_EXT;
    w = w32(w, (uint32_t)(u >> 32));
    w = w32(w, (uint32_t)u);
    break;
  }
  case CN_ATOM:
    if (!t->v.atom) return CN_EINVAL;
    if ((r = room(e, atom_size(t->v.atom)))) return r;
    w = watom(e->w, t->v.atom);
    break;
  case CN_BINARY:
    if (t->v.bin.size > UINT32_MAX || t->v.bin.bits < 1 || t->v.bin.bits > 8) return CN_EINVAL;
    {
      bool out = leave_out(e, t);
      if ((r = room(e, 6 + (out ? 0 : t->v.bin.size)))) return r;
      w = e->w;
      if (t->v.bin.bits == 8) {
        *w++ = ERL_BINARY_EXT;
        w = w32(w, (uint32_t)t->v.bin.size);
      } else {
        *w++ = ERL_BIT_BINARY_EXT;
        w = w32(w, (uint32_t)t->v.bin.size);
        *w++ = t->v.bin.bits;
      }
      if (out) {
        /* Its bytes belong at this offset of out's data (offsets stay true when the buffer moves). */
        if ((r = e->x->fn(e->x->ctx, (size_t)(w - e->out->data), t->v.bin.chunk, t->v.bin.data, t->v.bin.size)))
          return r;
        break;
      }
      if (t->v.bin.size) memcpy(w, t->v.bin.data, t->v.bin.size);
      w += t->v.bin.size;
      break;
    }
  case CN_NIL:
    if ((r = room(e, 1))) return r;
    *e->w++ = ERL_NIL_EXT;
    return 0;
  case CN_LIST:
    if (is_string(t)) {
      if ((r = room(e, 3 + (size_t)t->v.list.len))) return r;
      w = e->w;
      *w++ = ERL_STRING_EXT;
      *w++ = (uint8_t)(t->v.list.len >> 8);
      *w++ = (uint8_t)t->v.list.len;
      for (uint32_t i = 0; i < t->v.list.len; i++) *w++ = (uint8_t)t->v.list.e[i].v.i;
      break;
    }
    if ((r = room(e, 5))) return r;
    *e->w = ERL_LIST_EXT;
    e->w = w32(e->w + 1, t->v.list.len);
    for (uint32_t i = 0; i < t->v.list.len; i++)
      if ((r = ewrite(&t->v.list.e[i], e))) return r;
    if (t->v.list.tail) return ewrite(t->v.list.tail, e);
    if ((r = room(e, 1))) return r;
    *e->w++ = ERL_NIL_EXT;
    return 0;
  case CN_TUPLE:
    if ((r = room(e, 5))) return r;
    if (t->v.tuple.arity <= 255) {
      *e->w++ = ERL_SMALL_TUPLE_EXT;
      *e->w++ = (uint8_t)t->v.tuple.arity;
    } else {
      *e->w = ERL_LARGE_TUPLE_EXT;
      e->w = w32(e->w + 1, t->v.tuple.arity);
    }
    for (uint32_t i = 0; i < t->v.tuple.arity; i++)
      if ((r = ewrite(&t->v.tuple.e[i], e))) return r;
    return 0;
  case CN_MAP:
    if ((r = room(e, 5))) return r;
    *e->w = ERL_MAP_EXT;
    e->w = w32(e->w + 1, t->v.map.size);
    for (size_t i = 0; i < 2 * (size_t)t->v.map.size; i++)
      if ((r = ewrite(&t->v.map.kv[i], e))) return r;
    return 0;
  case CN_PID:
    if (!t->v.pid.node) return CN_EINVAL;
    if ((r = room(e, 1 + atom_size(t->v.pid.node) + 12))) return r;
    w = e->w;
    *w++ = ERL_NEW_PID_EXT;
    w = watom(w, t->v.pid.node);
    w = w32(w, t->v.pid.id);
    w = w32(w, t->v.pid.serial);
    w = w32(w, t->v.pid.creation);
    break;
  case CN_PORT:
    if (!t->v.port.node) return CN_EINVAL;
    if ((r = room(e, 1 + atom_size(t->v.port.node) + 12))) return r;
    w = e->w;
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
    w = w32(w, t->v.port.creation);
    break;
  case CN_REF:
    if (!t->v.ref.node || t->v.ref.len < 1 || t->v.ref.len > CN_REF_MAX_WORDS) return CN_EINVAL;
    if ((r = room(e, 3 + atom_size(t->v.ref.node) + 4 + 4 * (size_t)t->v.ref.len))) return r;
    w = e->w;
    *w++ = ERL_NEWER_REFERENCE_EXT;
    *w++ = 0;
    *w++ = (uint8_t)t->v.ref.len;
    w = watom(w, t->v.ref.node);
    w = w32(w, t->v.ref.creation);
    for (uint32_t i = 0; i < t->v.ref.len; i++) w = w32(w, t->v.ref.n[i]);
    break;
  case CN_FUN:
    if (!t->v.fun.len) return CN_EINVAL;
    if ((r = room(e, t->v.fun.len))) return r;
    memcpy(e->w, t->v.fun.ext, t->v.fun.len);
    w = e->w + t->v.fun.len;
    break;
  default: return CN_EINVAL;
  }
  e->w = w;
  return 0;
}

static int encode(const cn_term *t, cn_buf *out, int version, const cn_encode_ext *x) {
  if (!t || !out || (x && !x->fn)) return CN_EINVAL;
  if (cn_buf_reserve(out, 64)) return CN_ENOMEM;
  enc e = {out, out->data + out->len, out->data + out->cap - 1, x, x ? x->max : 0};
  if (version) *e.w++ = 131;
  int r = ewrite(t, &e);
  if (r) {
    out->data[out->len] = 0; /* nothing added: the NUL after the data again */
    return r;
  }
  out->len = (size_t)(e.w - out->data);
  out->data[out->len] = 0; /* cn_buf keeps a NUL after its data */
  return 0;
}

int cn_term_encode(const cn_term *t, cn_buf *out) { return encode(t, out, 0, NULL); }

int cn_term_to_binary(const cn_term *t, cn_buf *out) { return encode(t, out, 1, NULL); }

int cn_term_encode_ext(const cn_term *t, cn_buf *out, int version, const cn_encode_ext *ext) {
  return encode(t, out, version ? 1 : 0, ext);
}
