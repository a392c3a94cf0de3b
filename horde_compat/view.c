/* view.c: terms built to be sent once: their arrays come from an arena and their leaves may borrow terms the CRDT
 * holds (keys, entries, hashes), so a sync message of N keys is encoded without copying N entries first. A view is
 * dropped with its arena, never with cn_term_free. */
#include <string.h>

#include "hc_int.h"

typedef struct hc_chunk {
  struct hc_chunk *next;
  size_t size, used;
  max_align_t data[];
} hc_chunk;

#define CHUNK_MIN (64 * 1024)

void hc_arena_free(hc_arena *a) {
  for (hc_chunk *c = a->head, *nx; c; c = nx) {
    nx = c->next;
    cn_free(c);
  }
  memset(a, 0, sizeof *a);
}

/* n zeroed bytes aligned for a cn_term, or NULL (and a->oom) without memory. */
static void *take(hc_arena *a, size_t n) {
  n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
  hc_chunk *c = a->head;
  if (!c || c->size - c->used < n) {
    size_t size = n > CHUNK_MIN ? n : CHUNK_MIN;
    if (c && c->size * 2 > size && c->size < (64u << 20)) size = c->size * 2; /* fewer chunks for a large view */
    c = cn_malloc(sizeof *c + size);
    if (!c) {
      a->oom = true;
      return NULL;
    }
    c->size = size, c->used = 0, c->next = a->head;
    a->head = c;
  }
  void *p = (char *)c->data + c->used;
  c->used += n;
  memset(p, 0, n);
  return p;
}

cn_term *hc_arena_terms(hc_arena *a, size_t n) { return take(a, (n ? n : 1) * sizeof(cn_term)); }

void hc_v_ref(cn_term *out, const cn_term *t) {
  *out = *t;
  out->block = 0; /* a view of a decoded root is not that root's allocation */
}

void hc_v_atom(cn_term *out, const cn_atom *at) {
  memset(out, 0, sizeof *out);
  out->type = CN_ATOM;
  out->v.atom = at;
}

void hc_v_int(cn_term *out, int64_t v) {
  memset(out, 0, sizeof *out);
  out->type = CN_INT;
  out->v.i = v;
}

cn_term *hc_v_tuple(hc_arena *a, cn_term *out, size_t n) {
  memset(out, 0, sizeof *out);
  out->type = CN_TUPLE;
  out->v.tuple.arity = (uint32_t)n;
  return out->v.tuple.e = hc_arena_terms(a, n);
}

cn_term *hc_v_list(hc_arena *a, cn_term *out, size_t n) {
  memset(out, 0, sizeof *out);
  if (!n) {
    out->type = CN_NIL;
    return out; /* nothing to fill */
  }
  out->type = CN_LIST;
  out->v.list.len = (uint32_t)n;
  return out->v.list.e = hc_arena_terms(a, n);
}

cn_term *hc_v_map(hc_arena *a, cn_term *out, size_t n) {
  memset(out, 0, sizeof *out);
  out->type = CN_MAP;
  out->v.map.size = (uint32_t)n;
  return out->v.map.kv = hc_arena_terms(a, 2 * n);
}

bool hc_v_bits(hc_arena *a, cn_term *out, const void *p, size_t n, uint8_t bits) {
  memset(out, 0, sizeof *out);
  out->type = CN_BINARY;
  out->v.bin.size = n;
  out->v.bin.bits = bits;
  out->v.bin.data = take(a, n);
  if (!out->v.bin.data) return false;
  if (n) memcpy(out->v.bin.data, p, n);
  return true;
}

cn_term *hc_v_struct(const hc_ctx *c, hc_arena *a, cn_term *out, const cn_atom *mod, size_t n,
                     const cn_atom *const *fields) {
  cn_term *kv = hc_v_map(a, out, n + 1);
  if (!kv) return NULL;
  hc_v_atom(&kv[0], c->a_struct);
  hc_v_atom(&kv[1], mod);
  for (size_t i = 0; i < n; i++) hc_v_atom(&kv[2 + 2 * i], fields[i]);
  return kv + 3; /* value i at [2 * i] */
}

int hc_v_vv(hc_arena *a, cn_term *out, const hc_vv *v) {
  cn_term *kv = hc_v_map(a, out, v->n);
  if (!kv) return CN_ENOMEM;
  for (size_t i = 0; i < v->n; i++) hc_v_int(&kv[2 * i], v->e[i].id), hc_v_int(&kv[2 * i + 1], v->e[i].n);
  return 0;
}
