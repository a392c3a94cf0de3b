/* fuzz_epmd.c: the EPMD decoders (epmd_dec_*) on bytes from an epmd or a client. A first byte picks the
 * decoder (low 2 bits) and epmd_dec_request's max (the rest). Decoders are incremental, so every prefix of
 * the input must agree with the whole: a prefix of a good message needs more, and a message found in a
 * prefix is the one found in the whole. What decodes must re-encode to the very same bytes. */
#include <string.h>

#include "epmd.h"
#include "fuzz.h"

/* Longest message any decoder here can accept (PORT2_RESP: 2 + 12 + 255 + 256), with room to spare. */
#define MSG_MAX 600

typedef struct dec_out {
  uint8_t result;
  uint32_t u32;
  epmd_node_info info;
  epmd_request req;
} dec_out;

static ssize_t dec(int which, const uint8_t *buf, size_t len, size_t max, dec_out *o) {
  switch (which) {
  case 0: return epmd_dec_alive2_resp(buf, len, &o->result, &o->u32);
  case 1: return epmd_dec_port2_resp(buf, len, &o->result, &o->info);
  case 2: return epmd_dec_names_hdr(buf, len, &o->u32);
  default: return epmd_dec_request(buf, len, max, &o->req);
  }
}

/* Decodes an exact-size copy of buf[0..len), so a read past len is an ASan error. */
static ssize_t dec_copy(int which, const uint8_t *buf, size_t len, size_t max, dec_out *o) {
  uint8_t *c = malloc(len ? len : 1);
  if (!c) return CN_ENOMEM;
  if (len) memcpy(c, buf, len);
  memset(o, 0xa5, sizeof *o); /* decoders must not depend on what the output held */
  ssize_t r = dec(which, c, len, max, o);
  free(c);
  return r;
}

static void check_name(const char *name) {
  size_t n = strnlen(name, 256);
  FUZZ_CHECK(n >= 1 && n <= EPMD_MAX_NAME);
}

/* What decoded must encode to the same bytes (every field of these messages is kept). */
static void check_reencode(int which, const uint8_t *buf, size_t n, const dec_out *o) {
  cn_buf b = {0};
  int rc = 0;
  switch (which) {
  case 0:
    rc = buf[0] == EPMD_ALIVE2_X_RESP ? epmd_enc_alive2_x_resp(&b, o->result, o->u32)
                                      : epmd_enc_alive2_resp(&b, o->result, (uint16_t)o->u32);
    if (buf[0] == EPMD_ALIVE2_RESP) FUZZ_CHECK(o->u32 <= 0xffff);
    break;
  case 1:
    FUZZ_CHECK(buf[0] == EPMD_PORT2_RESP && o->result == buf[1]);
    if (o->result != 0) {
      FUZZ_CHECK(n == 2);
      goto out; /* only the result travels; "not found" is all we encode */
    }
    check_name(o->info.name);
    FUZZ_CHECK(o->info.extra_len <= EPMD_MAX_EXTRA);
    rc = epmd_enc_port2_resp(&b, &o->info);
    break;
  case 2: rc = epmd_enc_names_hdr(&b, o->u32); break;
  default:
    switch (o->req.type) {
    case EPMD_REQ_ALIVE2:
      check_name(o->req.node.name);
      FUZZ_CHECK(o->req.node.extra_len <= EPMD_MAX_EXTRA);
      rc = epmd_enc_alive2_req(&b, &o->req.node);
      break;
    case EPMD_REQ_PORT_PLEASE2:
      check_name(o->req.name);
      rc = epmd_enc_port_please2_req(&b, o->req.name);
      break;
    case EPMD_REQ_STOP:
      check_name(o->req.name);
      rc = epmd_enc_stop_req(&b, o->req.name);
      break;
    case EPMD_REQ_NAMES:
    case EPMD_REQ_DUMP:
    case EPMD_REQ_KILL: rc = epmd_enc_simple_req(&b, o->req.type); break;
    default: FUZZ_CHECK(!"request of an unknown type decoded");
    }
  }
  FUZZ_CHECK(rc == 0);
  FUZZ_CHECK(b.len == n && !memcmp(b.data, buf, n));
out:
  cn_buf_free(&b);
}

int fuzz_epmd_one(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int which = data[0] & 3;
  size_t max = data[0] >> 2 ? (size_t)(data[0] >> 2) * 16 : 65535;
  const uint8_t *buf = data + 1;
  size_t len = size - 1;

  dec_out whole;
  ssize_t r = dec_copy(which, buf, len, max, &whole);
  FUZZ_CHECK(r <= (ssize_t)len);
  if (r > 0) check_reencode(which, buf, (size_t)r, &whole);
  if (which == 3 && len >= 2 && cn_get16(buf) > max) FUZZ_CHECK(r == CN_ELIMIT);

  /* Every prefix (up to a message's worth) against the whole input. */
  size_t upto = r > 0 ? (size_t)r : len < MSG_MAX ? len : MSG_MAX;
  for (size_t k = 0; k < upto; k++) {
    dec_out part;
    ssize_t rk = dec_copy(which, buf, k, max, &part);
    if (rk == CN_ENOMEM) continue;
    if (r > 0) FUZZ_CHECK(rk == 0);  /* a prefix of a good message is not yet a message */
    if (rk < 0) FUZZ_CHECK(r < 0);   /* bad stays bad as bytes arrive */
    if (rk > 0) FUZZ_CHECK(rk == r); /* a message seen early is the message */
  }
  return 0;
}

FUZZ_ENTRY(fuzz_epmd_one)
