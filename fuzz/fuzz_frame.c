/* fuzz_frame.c: what follows the handshake: 4-byte frames (dist_frame_parse), message headers
 * (dist_msg_hdr_parse) and fragment reassembly (dist_frags_*) under limits the input picks, checked against
 * a small reference model; then the input as a message body through dist_msg_begin/end and back.
 * Input: max-frame byte, max-sequences byte, 2 bytes of byte budget, fragment-size byte, then frames. */
#include <string.h>

#include "dist.h"
#include "fuzz.h"

#define MODEL_SEQS 8

/* The reference: the protocol page's rules written the plain way (erl_dist_protocol, "Distribution Header
 * for Fragmented Messages"), with the limits dist_frags_new documents. */
typedef struct model {
  size_t max_total, max_seqs, total, n;
  struct {
    uint64_t seq, next;
    cn_buf body;
  } s[MODEL_SEQS];
} model;

static int model_find(const model *m, uint64_t seq) {
  for (size_t i = 0; i < m->n; i++)
    if (m->s[i].seq == seq) return (int)i;
  return -1;
}

static void model_drop(model *m, int i, cn_buf *keep) {
  m->total -= m->s[i].body.len;
  if (keep) *keep = m->s[i].body;
  else cn_buf_free(&m->s[i].body);
  m->s[i] = m->s[--m->n];
}

static int model_add(model *m, const dist_msg_hdr *h, const uint8_t *body, size_t blen, cn_buf *done) {
  int i = model_find(m, h->seq);
  if (h->kind == DIST_MSG_FRAG_HDR) {
    if (i >= 0) return CN_EPROTO;
    if (blen > m->max_total - m->total) return CN_ELIMIT;
    if (h->frag_id == 1) {
      *done = (cn_buf){0};
      FUZZ_CHECK(cn_buf_append(done, body, blen) == 0);
      return 1;
    }
    if (m->n == m->max_seqs) return CN_ELIMIT;
    i = (int)m->n++;
    m->s[i].seq = h->seq;
    m->s[i].next = h->frag_id - 1;
    m->s[i].body = (cn_buf){0};
  } else {
    if (i < 0) return CN_EPROTO;
    if (h->frag_id != m->s[i].next) {
      model_drop(m, i, NULL);
      return CN_EPROTO;
    }
    if (blen > m->max_total - m->total) {
      model_drop(m, i, NULL);
      return CN_ELIMIT;
    }
    m->s[i].next--;
  }
  FUZZ_CHECK(cn_buf_append(&m->s[i].body, body, blen) == 0);
  m->total += blen;
  if (m->s[i].next > 0) return 0;
  model_drop(m, i, done);
  return 1;
}

static void model_free(model *m) {
  while (m->n) model_drop(m, (int)m->n - 1, NULL);
}

/* Frames, headers and reassembly over the rest of the input. */
static void parse_stream(const uint8_t *buf, size_t len, size_t max, size_t max_seqs, size_t max_total) {
  dist_frags *f = NULL;
  if (dist_frags_new(&f, max_total, max_seqs)) return;
  model m = {.max_total = max_total, .max_seqs = max_seqs};
  size_t off = 0;
  while (off < len) {
    const uint8_t *d = NULL;
    size_t dlen = 0;
    ssize_t r = dist_frame_parse(buf + off, len - off, max, &d, &dlen);
    if (r < 0) {
      FUZZ_CHECK(r == CN_ELIMIT && len - off >= 4 && cn_get32(buf + off) > max);
      break;
    }
    if (r == 0) {
      FUZZ_CHECK(len - off < 4 || len - off - 4 < cn_get32(buf + off));
      break;
    }
    FUZZ_CHECK(d == buf + off + 4 && dlen == (size_t)r - 4 && dlen <= max && (size_t)r <= len - off);
    off += (size_t)r;
    if (dlen == 0) continue; /* a tick */
    dist_msg_hdr h;
    if (dist_msg_hdr_parse(d, dlen, &h)) continue;
    FUZZ_CHECK(h.body_off <= dlen);
    if (h.kind != DIST_MSG_FRAG_HDR && h.kind != DIST_MSG_FRAG_CONT) continue;
    FUZZ_CHECK(h.frag_id != 0);
    cn_buf got = {0}, want = {0};
    int rc = dist_frags_add(f, &h, d + h.body_off, dlen - h.body_off, &got);
    if (rc == CN_ENOMEM) break;
    int mrc = model_add(&m, &h, d + h.body_off, dlen - h.body_off, &want);
    FUZZ_CHECK(rc == mrc);
    FUZZ_CHECK(dist_frags_open(f) == m.n && m.n <= max_seqs);
    if (rc == 1) {
      FUZZ_CHECK(got.len == want.len && (got.len == 0 || !memcmp(got.data, want.data, got.len)));
      FUZZ_CHECK(got.len <= max_total);
      cn_buf_free(&got);
      cn_buf_free(&want);
    }
  }
  model_free(&m);
  dist_frags_free(f);
}

/* body as one message through dist_msg_begin/end, behind some bytes already queued; parsed back, the
 * frames must give body again, in one frame or as fragments of at most frag_size bytes. */
static void round_trip(const uint8_t *pre, size_t plen, const uint8_t *body, size_t blen, uint64_t seq,
                       size_t frag_size) {
  cn_buf out = {0};
  if (cn_buf_append(&out, pre, plen)) return;
  size_t start = dist_msg_begin(&out);
  FUZZ_CHECK(start == plen);
  FUZZ_CHECK(cn_buf_append(&out, body, blen) == 0);
  FUZZ_CHECK(dist_msg_end(&out, start, seq, frag_size) == 0);
  FUZZ_CHECK(!memcmp(out.data, pre, plen));

  dist_frags *f = NULL;
  FUZZ_CHECK(dist_frags_new(&f, blen, 1) == 0);
  size_t off = start, frames = 0, done_n = 0;
  cn_buf done = {0};
  while (off < out.len) {
    const uint8_t *d;
    size_t dlen;
    ssize_t r = dist_frame_parse(out.data + off, out.len - off, SIZE_MAX, &d, &dlen);
    FUZZ_CHECK(r > 0);
    off += (size_t)r;
    frames++;
    dist_msg_hdr h;
    FUZZ_CHECK(dist_msg_hdr_parse(d, dlen, &h) == 0);
    if (h.kind == DIST_MSG_NORMAL) {
      FUZZ_CHECK(frames == 1 && (frag_size == 0 || blen <= frag_size));
      FUZZ_CHECK(dlen - h.body_off == blen && (blen == 0 || !memcmp(d + h.body_off, body, blen)));
      done_n++;
      continue;
    }
    FUZZ_CHECK(frag_size && dlen - h.body_off <= frag_size && h.seq == seq);
    FUZZ_CHECK(h.kind == (frames == 1 ? DIST_MSG_FRAG_HDR : DIST_MSG_FRAG_CONT));
    int rc = dist_frags_add(f, &h, d + h.body_off, dlen - h.body_off, &done);
    FUZZ_CHECK(rc == (h.frag_id == 1 ? 1 : 0));
    if (rc == 1) {
      FUZZ_CHECK(done.len == blen && !memcmp(done.data, body, blen));
      cn_buf_free(&done);
      done_n++;
    }
  }
  FUZZ_CHECK(off == out.len && done_n == 1 && dist_frags_open(f) == 0);
  if (frag_size && blen > frag_size) FUZZ_CHECK(frames == (blen + frag_size - 1) / frag_size);
  dist_frags_free(f);
  cn_buf_free(&out);
}

int fuzz_frame_one(const uint8_t *data, size_t size) {
  fuzz_in in = {data, size, 0};
  uint8_t mb = fuzz_u8(&in);
  size_t max = mb == 0xff ? SIZE_MAX : (size_t)1 << (mb % 24);
  size_t max_seqs = 1 + fuzz_u8(&in) % MODEL_SEQS;
  size_t max_total = (size_t)fuzz_u8(&in) << 8;
  max_total |= fuzz_u8(&in);
  size_t frag_size = fuzz_u8(&in);

  /* An exact-size copy of the stream, so ASan sees a read past its end. */
  size_t n;
  const uint8_t *p = fuzz_take(&in, fuzz_left(&in), &n);
  uint8_t *stream = calloc(n ? n : 1, 1);
  if (!stream) return 0;
  memcpy(stream, p, n);
  parse_stream(stream, n, max, max_seqs, max_total);

  /* The same bytes as an outgoing body; a few of them stand for frames queued before it. */
  size_t plen = n ? stream[0] % 8 : 0;
  if (plen > n) plen = n;
  round_trip(stream, plen, stream + plen, n - plen, (uint64_t)mb << 56 | max_total, frag_size);
  free(stream);
  return 0;
}

FUZZ_ENTRY(fuzz_frame_one)
