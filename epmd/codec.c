/* codec.c: the EPMD wire format, both directions: requests a node sends and the responses epmd sends back.
 * Pure bytes in/out (no I/O, no clock); decoders are incremental: consumed, 0 = need more, or CN_E*. */
#include <string.h>

#include "epmd.h"

/* A node name must fit name[EPMD_MAX_NAME + 1] with its NUL, and a NUL inside would silently shorten it. */
static int name_ok(const char *name, size_t *nlen) {
  if (!name) return 0;
  size_t n = strnlen(name, EPMD_MAX_NAME + 1);
  if (n == 0 || n > EPMD_MAX_NAME) return 0;
  *nlen = n;
  return 1;
}

static int wire_name_ok(const uint8_t *p, size_t n) { return n > 0 && memchr(p, 0, n) == NULL; }

/* Node info as it appears in ALIVE2_REQ (after the tag) and PORT2_RESP (after tag and result). */
static size_t info_size(size_t nlen, size_t elen) { return 2 + 1 + 1 + 2 + 2 + 2 + nlen + 2 + elen; }

static void put_info(cn_buf *out, const epmd_node_info *info, size_t nlen) {
  /* Callers reserved the room, so none of these can fail. */
  cn_buf_put16(out, info->port);
  cn_buf_put8(out, info->node_type);
  cn_buf_put8(out, info->protocol);
  cn_buf_put16(out, info->highest);
  cn_buf_put16(out, info->lowest);
  cn_buf_put16(out, (uint16_t)nlen);
  cn_buf_append(out, info->name, nlen);
  cn_buf_put16(out, info->extra_len);
  cn_buf_append(out, info->extra, info->extra_len);
}

int epmd_enc_alive2_req(cn_buf *out, const epmd_node_info *info) {
  size_t nlen;
  if (!out || !info || !name_ok(info->name, &nlen) || info->extra_len > EPMD_MAX_EXTRA) return CN_EINVAL;
  size_t body = 1 + info_size(nlen, info->extra_len);
  if (cn_buf_reserve(out, 2 + body)) return CN_ENOMEM;
  cn_buf_put16(out, (uint16_t)body);
  cn_buf_put8(out, EPMD_REQ_ALIVE2);
  put_info(out, info, nlen);
  return 0;
}

ssize_t epmd_dec_alive2_resp(const uint8_t *buf, size_t len, uint8_t *result, uint32_t *creation) {
  if (len < 1) return 0;
  size_t need;
  if (buf[0] == EPMD_ALIVE2_X_RESP) need = 6;
  else if (buf[0] == EPMD_ALIVE2_RESP) need = 4;
  else return CN_EPROTO;
  if (len < need) return 0;
  *result = buf[1];
  *creation = need == 6 ? cn_get32(buf + 2) : cn_get16(buf + 2);
  return (ssize_t)need;
}

static int put_name_req(cn_buf *out, uint8_t tag, const char *name) {
  size_t nlen;
  if (!out || !name_ok(name, &nlen)) return CN_EINVAL;
  if (cn_buf_reserve(out, 3 + nlen)) return CN_ENOMEM;
  cn_buf_put16(out, (uint16_t)(1 + nlen));
  cn_buf_put8(out, tag);
  cn_buf_append(out, name, nlen);
  return 0;
}

int epmd_enc_port_please2_req(cn_buf *out, const char *name) { return put_name_req(out, EPMD_REQ_PORT_PLEASE2, name); }

int epmd_enc_stop_req(cn_buf *out, const char *name) { return put_name_req(out, EPMD_REQ_STOP, name); }

int epmd_enc_simple_req(cn_buf *out, epmd_req_type type) {
  if (!out || (type != EPMD_REQ_NAMES && type != EPMD_REQ_DUMP && type != EPMD_REQ_KILL)) return CN_EINVAL;
  if (cn_buf_reserve(out, 3)) return CN_ENOMEM;
  cn_buf_put16(out, 1);
  cn_buf_put8(out, (uint8_t)type);
  return 0;
}

int epmd_enc_names_req(cn_buf *out) { return epmd_enc_simple_req(out, EPMD_REQ_NAMES); }

/* Parses node info at p (avail bytes present). For a request the size is known (avail is the whole rest of
 * the body and must be used exactly); for a response it is not, so 0 means need more. Returns the size or
 * a CN_E* error. Fields are checked as soon as they are present, so garbage fails early. */
static ssize_t get_info(const uint8_t *p, size_t avail, int exact, epmd_node_info *info) {
  if (avail < 10) return exact ? CN_EDECODE : 0;
  size_t nlen = cn_get16(p + 8);
  if (nlen == 0) return CN_EDECODE;
  if (nlen > EPMD_MAX_NAME) return CN_ELIMIT;
  if (avail < 10 + nlen) return exact ? CN_EDECODE : 0;
  if (!wire_name_ok(p + 10, nlen)) return CN_EDECODE;
  if (avail < 10 + nlen + 2) return exact ? CN_EDECODE : 0;
  size_t elen = cn_get16(p + 10 + nlen);
  if (elen > EPMD_MAX_EXTRA) return CN_ELIMIT;
  size_t total = info_size(nlen, elen);
  if (avail < total) return exact ? CN_EDECODE : 0;
  if (exact && avail != total) return CN_EDECODE;
  memset(info, 0, sizeof *info); /* the whole output is defined, padding and unused name bytes too */
  info->port = cn_get16(p);
  info->node_type = p[2];
  info->protocol = p[3];
  info->highest = cn_get16(p + 4);
  info->lowest = cn_get16(p + 6);
  memcpy(info->name, p + 10, nlen);
  info->name[nlen] = 0;
  info->extra_len = (uint16_t)elen;
  memcpy(info->extra, p + 12 + nlen, elen);
  return (ssize_t)total;
}

ssize_t epmd_dec_port2_resp(const uint8_t *buf, size_t len, uint8_t *result, epmd_node_info *info) {
  if (len < 1) return 0;
  if (buf[0] != EPMD_PORT2_RESP) return CN_EPROTO;
  if (len < 2) return 0;
  if (buf[1] != 0) {
    *result = buf[1];
    return 2;
  }
  ssize_t n = get_info(buf + 2, len - 2, 0, info);
  if (n <= 0) return n;
  *result = 0;
  return 2 + n;
}

ssize_t epmd_dec_names_hdr(const uint8_t *buf, size_t len, uint32_t *epmd_port_no) {
  if (len < 4) return 0;
  *epmd_port_no = cn_get32(buf);
  return 4;
}

ssize_t epmd_dec_request(const uint8_t *buf, size_t len, size_t max, epmd_request *out) {
  if (len < 2) return 0;
  size_t body = cn_get16(buf);
  /* Checked before waiting for the body, so a peer cannot make the server buffer past its limit. */
  if (body > max) return CN_ELIMIT;
  if (body == 0) return CN_EDECODE;
  if (len < 2 + body) return 0;
  const uint8_t *p = buf + 3;
  size_t rest = body - 1;
  switch (buf[2]) {
  case EPMD_REQ_ALIVE2: {
    epmd_node_info info;
    ssize_t n = get_info(p, rest, 1, &info);
    if (n < 0) return n;
    memset(out, 0, sizeof *out);
    out->node = info;
    break;
  }
  case EPMD_REQ_PORT_PLEASE2:
  case EPMD_REQ_STOP:
    if (rest > EPMD_MAX_NAME) return CN_ELIMIT;
    if (!wire_name_ok(p, rest)) return CN_EDECODE;
    memset(out, 0, sizeof *out);
    memcpy(out->name, p, rest);
    break;
  case EPMD_REQ_NAMES:
  case EPMD_REQ_DUMP:
  case EPMD_REQ_KILL:
    if (rest != 0) return CN_EDECODE;
    memset(out, 0, sizeof *out);
    break;
  default: return CN_EUNSUPPORTED;
  }
  out->type = (epmd_req_type)buf[2];
  return (ssize_t)(2 + body);
}

int epmd_enc_alive2_x_resp(cn_buf *out, uint8_t result, uint32_t creation) {
  if (!out) return CN_EINVAL;
  if (cn_buf_reserve(out, 6)) return CN_ENOMEM;
  cn_buf_put8(out, EPMD_ALIVE2_X_RESP);
  cn_buf_put8(out, result);
  cn_buf_put32(out, creation);
  return 0;
}

int epmd_enc_alive2_resp(cn_buf *out, uint8_t result, uint16_t creation) {
  if (!out) return CN_EINVAL;
  if (cn_buf_reserve(out, 4)) return CN_ENOMEM;
  cn_buf_put8(out, EPMD_ALIVE2_RESP);
  cn_buf_put8(out, result);
  cn_buf_put16(out, creation);
  return 0;
}

int epmd_enc_port2_resp(cn_buf *out, const epmd_node_info *info) {
  if (!out) return CN_EINVAL;
  if (!info) {
    if (cn_buf_reserve(out, 2)) return CN_ENOMEM;
    cn_buf_put8(out, EPMD_PORT2_RESP);
    cn_buf_put8(out, 1);
    return 0;
  }
  size_t nlen;
  if (!name_ok(info->name, &nlen) || info->extra_len > EPMD_MAX_EXTRA) return CN_EINVAL;
  if (cn_buf_reserve(out, 2 + info_size(nlen, info->extra_len))) return CN_ENOMEM;
  cn_buf_put8(out, EPMD_PORT2_RESP);
  cn_buf_put8(out, 0);
  put_info(out, info, nlen);
  return 0;
}

int epmd_enc_names_hdr(cn_buf *out, uint32_t epmd_port_no) {
  if (!out) return CN_EINVAL;
  return cn_buf_put32(out, epmd_port_no);
}

int epmd_enc_names_entry(cn_buf *out, const char *name, uint16_t port) {
  size_t nlen;
  if (!out || !name_ok(name, &nlen)) return CN_EINVAL;
  return cn_buf_printf(out, "name %.*s at port %u\n", (int)nlen, name, (unsigned)port);
}

int epmd_enc_dump_entry(cn_buf *out, int active, const char *name, uint16_t port, int fd) {
  size_t nlen;
  if (!out || !name_ok(name, &nlen)) return CN_EINVAL;
  size_t before = out->len;
  int rc =
      active ? cn_buf_printf(out, "active name     <%.*s> at port %u, fd = %d\n", (int)nlen, name, (unsigned)port, fd)
             : cn_buf_printf(out, "old/unused name <%.*s>, port = %u, fd = %d \n", (int)nlen, name, (unsigned)port, fd);
  /* OTP's epmd sends each line's terminating NUL too. */
  if (!rc && (rc = cn_buf_put8(out, 0))) out->len = before;
  return rc;
}
