/* frame.c: distribution framing after the handshake: 4-byte frames, message headers (pass-through, normal,
 * fragment start/continuation), reassembly of incoming fragments and framing (with fragmentation) of ours. */
#include "dist.h"

#include <string.h>

#define VERSION_MAGIC 131
#define PASS_THROUGH 112
#define HDR_NORMAL 68
#define HDR_FRAG 69
#define HDR_FRAG_CONT 70

ssize_t dist_frame_parse(const uint8_t *buf, size_t len, size_t max, const uint8_t **data, size_t *dlen) {
  if (len < 4) return 0;
  size_t n = cn_get32(buf);
  /* Check against max before anything else: a peer can claim 4 GiB in four bytes. */
  if (n > max) return CN_ELIMIT;
  if (len - 4 < n) return 0;
  *data = buf + 4;
  *dlen = n;
  return (ssize_t)(4 + n);
}

int dist_msg_hdr_parse(const uint8_t *data, size_t len, dist_msg_hdr *out) {
  memset(out, 0, sizeof *out);
  if (len < 1) return CN_EDECODE;
  if (data[0] == PASS_THROUGH) {
    out->kind = DIST_MSG_PASS;
    out->body_off = 1;
    out->versioned = true;
    return 0;
  }
  if (data[0] != VERSION_MAGIC || len < 2) return CN_EDECODE;
  switch (data[1]) {
  case HDR_NORMAL:
    if (len < 3) return CN_EDECODE;
    /* A non-zero count means atom cache refs we never agreed to (we do not set DIST_HDR_ATOM_CACHE). */
    if (data[2] != 0) return CN_EUNSUPPORTED;
    out->kind = DIST_MSG_NORMAL;
    out->body_off = 3;
    return 0;
  case HDR_FRAG:
    if (len < 19) return CN_EDECODE;
    out->seq = cn_get64(data + 2);
    out->frag_id = cn_get64(data + 10);
    if (out->frag_id == 0) return CN_EDECODE;
    if (data[18] != 0) return CN_EUNSUPPORTED;
    out->kind = DIST_MSG_FRAG_HDR;
    out->body_off = 19;
    return 0;
  case HDR_FRAG_CONT:
    if (len < 18) return CN_EDECODE;
    out->seq = cn_get64(data + 2);
    out->frag_id = cn_get64(data + 10);
    if (out->frag_id == 0) return CN_EDECODE;
    out->kind = DIST_MSG_FRAG_CONT;
    out->body_off = 18;
    return 0;
  default: return CN_EDECODE;
  }
}

/* ---- Reassembly ---------------------------------------------------------------------------------------- */

typedef struct seq_state {
  uint64_t seq;
  uint64_t next; /* the frag_id the next continuation must carry */
  cn_chunk *body;
  size_t len; /* bytes of body used */
} seq_state;

struct dist_frags {
  size_t max_total, max_seqs;
  size_t total; /* bytes held by all open sequences */
  size_t n;     /* open sequences */
  size_t cap;   /* slots allocated in seqs */
  /* A flat array: the number of open sequences is small (one per sending process mid-message) and bounded
   * by max_seqs, so a linear search beats a hash table here. */
  seq_state *seqs;
  cn_chunk_pool spare; /* finished bodies given back (dist_frags_recycle), reused once their binaries are freed */
};

int dist_frags_new(dist_frags **out, size_t max_total_bytes, size_t max_sequences) {
  *out = NULL;
  if (max_sequences == 0 || max_sequences > SIZE_MAX / sizeof(seq_state)) return CN_EINVAL;
  dist_frags *f = cn_calloc(1, sizeof *f);
  if (!f) return CN_ENOMEM;
  f->max_total = max_total_bytes;
  f->max_seqs = max_sequences;
  *out = f;
  return 0;
}

static seq_state *find(dist_frags *f, uint64_t seq) {
  for (size_t i = 0; i < f->n; i++)
    if (f->seqs[i].seq == seq) return &f->seqs[i];
  return NULL;
}

/* Removes s from the array (swap with the last); its body must have been released or handed over. */
static void drop(dist_frags *f, seq_state *s) {
  f->total -= s->len;
  f->seqs[s - f->seqs] = f->seqs[--f->n];
}

static void drop_free(dist_frags *f, seq_state *s) {
  cn_chunk *k = s->body;
  drop(f, s);
  dist_frags_recycle(f, k);
}

/* Makes room for need bytes in s's body (the spare first, else a new chunk); 0 or CN_ENOMEM. */
static int room(dist_frags *f, seq_state *s, size_t need) {
  if (s->body && cn_chunk_cap(s->body) >= need) return 0;
  if (!s->body && (s->body = cn_chunk_pool_take(&f->spare, need))) return 0;
  size_t cap = s->body ? cn_chunk_cap(s->body) : 0;
  cap = cap && cap <= SIZE_MAX / 2 && 2 * cap > need ? 2 * cap : need;
  cn_chunk *k = s->body ? cn_chunk_resize(s->body, cap) : cn_chunk_new(cap);
  if (!k) return CN_ENOMEM;
  s->body = k;
  return 0;
}

/* Appends to an open sequence within the byte budget. */
static int grow(dist_frags *f, seq_state *s, const uint8_t *body, size_t blen) {
  if (blen > f->max_total - f->total) return CN_ELIMIT;
  if (room(f, s, s->len + blen)) return CN_ENOMEM;
  if (blen) memcpy(cn_chunk_data(s->body) + s->len, body, blen);
  s->len += blen;
  f->total += blen;
  return 0;
}

int dist_frags_take(dist_frags *f, const dist_msg_hdr *h, const uint8_t *body, size_t blen, cn_chunk **done,
                    size_t *done_len) {
  int rc;
  if (h->frag_id == 0) return CN_EINVAL;
  if (h->kind == DIST_MSG_FRAG_HDR) {
    if (find(f, h->seq)) return CN_EPROTO; /* a second start for an open sequence */
    if (h->frag_id == 1) {
      /* A one-fragment message needs no state: it is whole where it lies. */
      if (blen > f->max_total - f->total) return CN_ELIMIT;
      return 2;
    }
    if (f->n == f->max_seqs) return CN_ELIMIT;
    if (f->n == f->cap) {
      /* Grown on demand: most connections never see a fragment, and max_seqs may be generous. */
      size_t cap = f->cap ? f->cap * 2 : 4;
      if (cap > f->max_seqs) cap = f->max_seqs;
      seq_state *p = cn_realloc(f->seqs, cap * sizeof *p);
      if (!p) return CN_ENOMEM;
      f->seqs = p;
      f->cap = cap;
    }
    seq_state *s = &f->seqs[f->n++];
    *s = (seq_state){.seq = h->seq, .next = h->frag_id - 1};
    /* The header says how many fragments follow, and all but the last are as long as this one: reserve the
     * whole message once (within the limit) instead of growing it fragment by fragment. */
    /* Capped: a peer can claim any fragment count, and past 8 MiB doubling growth is cheap anyway. */
    size_t left = f->max_total - f->total;
    if (left > ((size_t)8 << 20)) left = (size_t)8 << 20;
    size_t est = h->frag_id <= left / (blen ? blen : 1) ? (size_t)h->frag_id * blen : left;
    if (est > blen) room(f, s, est); /* a failure here only costs the later growth */
    if ((rc = grow(f, s, body, blen))) {
      drop_free(f, s);
      return rc;
    }
    return 0;
  }
  if (h->kind != DIST_MSG_FRAG_CONT) return CN_EINVAL;
  seq_state *s = find(f, h->seq);
  if (!s) return CN_EPROTO;
  if (h->frag_id != s->next) {
    drop_free(f, s);
    return CN_EPROTO;
  }
  if ((rc = grow(f, s, body, blen))) {
    drop_free(f, s);
    return rc;
  }
  if (--s->next > 0) return 0;
  *done = s->body;
  *done_len = s->len;
  drop(f, s);
  return 1;
}

void dist_frags_recycle(dist_frags *f, cn_chunk *k) { cn_chunk_pool_put(&f->spare, k); }

void dist_frags_idle(dist_frags *f) {
  if (f) cn_chunk_pool_clear(&f->spare);
}

int dist_frags_add(dist_frags *f, const dist_msg_hdr *h, const uint8_t *body, size_t blen, cn_buf *done) {
  cn_chunk *k = NULL;
  size_t len = 0;
  int rc = dist_frags_take(f, h, body, blen, &k, &len);
  if (rc == 2) {
    k = NULL;
    len = blen;
  }
  if (rc >= 1) {
    *done = (cn_buf){0};
    if (cn_buf_append(done, k ? cn_chunk_data(k) : body, len)) rc = CN_ENOMEM;
    dist_frags_recycle(f, k);
    if (rc < 0) return rc;
    return 1;
  }
  return rc;
}

size_t dist_frags_open(const dist_frags *f) { return f->n; }

void dist_frags_free(dist_frags *f) {
  if (!f) return;
  for (size_t i = 0; i < f->n; i++) cn_chunk_release(f->seqs[i].body);
  cn_chunk_pool_clear(&f->spare);
  cn_free(f->seqs);
  cn_free(f);
}

/* ---- Outgoing ------------------------------------------------------------------------------------------ */

#define NORMAL_HDR 3     /* 131,68,0 */
#define FRAG_HDR 19      /* 131,69,Seq(8),FragId(8),0 */
#define FRAG_CONT_HDR 18 /* 131,70,Seq(8),FragId(8) */

size_t dist_msg_begin(cn_buf *out) {
  static const uint8_t start[4 + NORMAL_HDR] = {0, 0, 0, 0, VERSION_MAGIC, HDR_NORMAL, 0};
  size_t at = out->len;
  if (cn_buf_append(out, start, sizeof start)) return SIZE_MAX;
  return at;
}

static void put64(uint8_t *p, uint64_t v) {
  cn_set32(p, (uint32_t)(v >> 32));
  cn_set32(p + 4, (uint32_t)v);
}

int dist_msg_end(cn_buf *out, size_t start, uint64_t seq, size_t frag_size) {
  if (start > out->len || out->len - start < 4 + NORMAL_HDR) return CN_EINVAL;
  size_t body = out->len - start - 4 - NORMAL_HDR;
  if (frag_size == 0 || body <= frag_size) {
    if (NORMAL_HDR + body > UINT32_MAX) {
      out->len = start;
      return CN_ELIMIT;
    }
    cn_set32(out->data + start, (uint32_t)(NORMAL_HDR + body));
    return 0;
  }
  /* The frame size is capped so each fragment's length fits the 4-byte prefix. */
  if (frag_size > UINT32_MAX - FRAG_HDR) frag_size = UINT32_MAX - FRAG_HDR;
  size_t n = body / frag_size + (body % frag_size != 0);
  size_t grow = 4 + FRAG_HDR - (4 + NORMAL_HDR) + (n - 1) * (4 + FRAG_CONT_HDR);
  if (cn_buf_reserve(out, grow)) {
    out->len = start;
    return CN_ENOMEM;
  }
  /* Rewrite in place from the last chunk back: every chunk moves forward (headers only add bytes), and a
   * chunk's new place never reaches an earlier chunk's old one, so nothing unmoved is overwritten. */
  uint8_t *base = out->data + start;
  const size_t old0 = 4 + NORMAL_HDR, new0 = 4 + FRAG_HDR, step = 4 + FRAG_CONT_HDR + frag_size;
  for (size_t i = n; i-- > 0;) {
    size_t clen = i == n - 1 ? body - i * frag_size : frag_size;
    uint8_t *dst = base + new0 + i * step;
    memmove(dst, base + old0 + i * frag_size, clen);
    uint64_t fid = n - i;
    if (i == 0) {
      uint8_t *h = base;
      cn_set32(h, (uint32_t)(FRAG_HDR + clen));
      h[4] = VERSION_MAGIC, h[5] = HDR_FRAG;
      put64(h + 6, seq);
      put64(h + 14, fid);
      h[22] = 0; /* no atom cache refs */
    } else {
      uint8_t *h = dst - 4 - FRAG_CONT_HDR;
      cn_set32(h, (uint32_t)(FRAG_CONT_HDR + clen));
      h[4] = VERSION_MAGIC, h[5] = HDR_FRAG_CONT;
      put64(h + 6, seq);
      put64(h + 14, fid);
    }
  }
  out->len += grow;
  out->data[out->len] = 0; /* cn_buf keeps a NUL after its data */
  return 0;
}
