/* print.c: terms in Erlang syntax on one line, as io_lib's ~tp prints them (UTF-8 output), plus our own
 * forms for identifiers that carry their node: #Pid<'n@h'.Id.Serial.Creation>, #Port<..>, #Ref<..>. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "term_int.h"

static int put(cn_buf *b, const char *s) { return cn_buf_append(b, s, strlen(s)); }

static int put_utf8(cn_buf *b, uint32_t cp) {
  uint8_t u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (uint8_t)cp, n = 1;
  } else if (cp < 0x800) {
    u[0] = (uint8_t)(0xC0 | (cp >> 6)), u[1] = (uint8_t)(0x80 | (cp & 0x3F)), n = 2;
  } else if (cp < 0x10000) {
    u[0] = (uint8_t)(0xE0 | (cp >> 12)), u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (uint8_t)(0x80 | (cp & 0x3F)), n = 3;
  } else {
    u[0] = (uint8_t)(0xF0 | (cp >> 18)), u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)), u[3] = (uint8_t)(0x80 | (cp & 0x3F)), n = 4;
  }
  return cn_buf_append(b, u, n);
}

/* One character inside quotes q, escaped as io_lib's string_char does in unicode mode. */
static int put_char(cn_buf *b, uint32_t c, char q) {
  static const char esc[] = {
      ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't', ['\v'] = 'v', ['\b'] = 'b', ['\f'] = 'f', [27] = 'e', [127] = 'd'};
  if (c == (uint32_t)q || c == '\\') return cn_buf_printf(b, "\\%c", (char)c);
  if ((c >= ' ' && c <= '~') || c >= 160) return put_utf8(b, c);
  if (c < sizeof esc && esc[c]) return cn_buf_printf(b, "\\%c", esc[c]);
  return cn_buf_printf(b, "\\%03o", (unsigned)c);
}

/* io_lib:printable_latin1_list's set: what makes a list print as "..." and a binary as <<"...">>. */
static bool printable(int64_t c) {
  return (c >= ' ' && c <= '~') || (c >= 160 && c <= 255) || (c >= '\b' && c <= '\r') || c == 27;
}

static bool latin1_letter(uint32_t c) { return c >= 192 && c <= 255 && c != 215 && c != 247; }

static bool atom_needs_quotes(const uint8_t *s, size_t len) {
  static const char *const reserved[] = {"after", "and",  "andalso", "band",   "begin",   "bnot", "bor", "bsl",  "bsr",
                                         "bxor",  "case", "catch",   "cond",   "div",     "end",  "fun", "if",   "let",
                                         "not",   "of",   "or",      "orelse", "receive", "rem",  "try", "when", "xor"};
  if (len == 0) return true;
  size_t i = 0;
  uint32_t c = term_utf8_next(s, len, &i);
  if (!((c >= 'a' && c <= 'z') || (c >= 223 && c <= 255 && c != 247))) return true;
  while (i < len) {
    c = term_utf8_next(s, len, &i);
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '@' ||
          latin1_letter(c)))
      return true;
  }
  for (size_t k = 0; k < sizeof reserved / sizeof *reserved; k++)
    if (strlen(reserved[k]) == len && memcmp(reserved[k], s, len) == 0) return true;
  return false;
}

/* Prints UTF-8 atom text, quoted when the Erlang scanner would need quotes. */
static int put_atom_text(cn_buf *b, const uint8_t *s, size_t len) {
  if (term_utf8_count(s, len) < 0) return CN_EINVAL;
  if (!atom_needs_quotes(s, len)) return cn_buf_append(b, s, len);
  int r = cn_buf_put8(b, '\'');
  for (size_t i = 0; i < len && !r;) r = put_char(b, term_utf8_next(s, len, &i), '\'');
  return r ? r : cn_buf_put8(b, '\'');
}

static int put_atom(cn_buf *b, const cn_atom *a) {
  if (!a) return CN_EINVAL;
  return put_atom_text(b, (const uint8_t *)a->name, a->len);
}

/* Atom text from a fun's raw bytes, which may be latin-1. */
static int put_raw_atom(cn_buf *b, const uint8_t *s, size_t len, int utf8) {
  if (utf8) return put_atom_text(b, s, len);
  uint8_t u[2 * TERM_ATOM_MAX_CHARS];
  size_t k = 0;
  for (size_t i = 0; i < len && i < TERM_ATOM_MAX_CHARS; i++) {
    if (s[i] < 0x80) {
      u[k++] = s[i];
    } else {
      u[k++] = (uint8_t)(0xC0 | (s[i] >> 6));
      u[k++] = (uint8_t)(0x80 | (s[i] & 0x3F));
    }
  }
  return put_atom_text(b, u, k);
}

/* Decimal digits of a magnitude by repeated division by 10^9 (bignums are rare and short in practice). */
static int put_big(cn_buf *b, const cn_term *t) {
  size_t nw = (t->v.big.n + 3) / 4;
  uint32_t *w = cn_calloc(nw ? nw : 1, sizeof *w);
  uint32_t *chunks = cn_malloc((nw * 10 / 9 + 2) * sizeof *chunks); /* 2^32 < 10^9 * 5: ample */
  int r = 0;
  if (!w || !chunks) {
    r = CN_ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < t->v.big.n; i++) w[i / 4] |= (uint32_t)t->v.big.mag[i] << (8 * (i % 4));
  size_t nc = 0;
  while (nw) {
    uint64_t rem = 0;
    for (size_t i = nw; i-- > 0;) {
      uint64_t cur = (rem << 32) | w[i];
      w[i] = (uint32_t)(cur / 1000000000u);
      rem = cur % 1000000000u;
    }
    chunks[nc++] = (uint32_t)rem;
    while (nw && w[nw - 1] == 0) nw--;
  }
  if (t->v.big.sign) r = cn_buf_put8(b, '-');
  if (!r) r = cn_buf_printf(b, "%u", nc ? chunks[nc - 1] : 0u);
  for (size_t i = nc ? nc - 1 : 0; !r && i-- > 0;) r = cn_buf_printf(b, "%09u", chunks[i]);
out:
  cn_free(w);
  cn_free(chunks);
  return r;
}

/* Shortest digits that read back to the same double, laid out as io_lib_format:fwrite_g/1 does: fixed
 * notation unless the exponent form is shorter (1.0e20, 100.0, 1.0e3, 0.0001, 1.0e-5). */
static int put_float(cn_buf *b, double f) {
  char tmp[40], digits[20];
  if (f == 0.0) return put(b, signbit(f) ? "-0.0" : "0.0");
  int r = 0;
  if (f < 0) {
    if ((r = cn_buf_put8(b, '-'))) return r;
    f = -f;
  }
  for (int prec = 0; prec < 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*e", prec, f);
    if (strtod(tmp, NULL) == f) break;
  }
  /* tmp is "d.ddde[+-]XX": collect the digits, drop trailing zeros, and read the exponent. */
  size_t nd = 0;
  char *e = strchr(tmp, 'e');
  for (char *c = tmp; c < e; c++)
    if (*c != '.') digits[nd++] = *c;
  while (nd > 1 && digits[nd - 1] == '0') nd--;
  digits[nd] = 0;
  long place = strtol(e + 1, NULL, 10) + 1; /* value = 0.DIGITS * 10^place */
  long L = (long)nd;
  if (place >= 0 && place < L) {
    if (place == 0) return cn_buf_printf(b, "0.%s", digits);
    return cn_buf_printf(b, "%.*s.%s", (int)place, digits, digits + place);
  }
  char expl[24];
  snprintf(expl, sizeof expl, "%ld", place - 1);
  long cost = (long)strlen(expl) + 1 + (L == 1 ? 2 : 1);
  if (place < 0 && 2 - place <= cost) {
    if ((r = put(b, "0."))) return r;
    for (long i = 0; i < -place && !r; i++) r = cn_buf_put8(b, '0');
    return r ? r : put(b, digits);
  }
  /* At 2^53 and above the zeros of a fixed form would claim a precision the double lacks. */
  if (place >= L && place - L + 2 <= cost && f < 9007199254740992.0) {
    if ((r = put(b, digits))) return r;
    for (long i = 0; i < place - L && !r; i++) r = cn_buf_put8(b, '0');
    return r ? r : put(b, ".0");
  }
  if (L == 1) return cn_buf_printf(b, "%c.0e%s", digits[0], expl);
  return cn_buf_printf(b, "%c.%se%s", digits[0], digits + 1, expl);
}

static int put_binary(cn_buf *b, const cn_term *t) {
  size_t n = t->v.bin.size;
  const uint8_t *d = t->v.bin.data;
  int r = put(b, "<<");
  if (t->v.bin.bits == 8 && n) {
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) ok = printable(d[i]);
    if (ok) {
      r = r ? r : cn_buf_put8(b, '"');
      for (size_t i = 0; i < n && !r; i++) r = put_char(b, d[i], '"');
      r = r ? r : cn_buf_put8(b, '"');
      return r ? r : put(b, ">>");
    }
  }
  size_t full = t->v.bin.bits == 8 ? n : n - 1;
  for (size_t i = 0; i < full && !r; i++) r = cn_buf_printf(b, i ? ",%u" : "%u", d[i]);
  if (!r && t->v.bin.bits != 8)
    r = cn_buf_printf(b, "%s%u:%u", full ? "," : "", (unsigned)(d[n - 1] >> (8 - t->v.bin.bits)), t->v.bin.bits);
  return r ? r : put(b, ">>");
}

static int pr(cn_buf *b, const cn_term *t);

static int put_seq(cn_buf *b, const cn_term *e, size_t n) {
  int r = 0;
  for (size_t i = 0; i < n && !r; i++) {
    if (i) r = cn_buf_put8(b, ',');
    if (!r) r = pr(b, &e[i]);
  }
  return r;
}

static int put_list(cn_buf *b, const cn_term *t) {
  bool str = !t->v.list.tail;
  for (uint32_t i = 0; i < t->v.list.len && str; i++)
    str = t->v.list.e[i].type == CN_INT && printable(t->v.list.e[i].v.i);
  int r;
  if (str) {
    r = cn_buf_put8(b, '"');
    for (uint32_t i = 0; i < t->v.list.len && !r; i++) r = put_char(b, (uint32_t)t->v.list.e[i].v.i, '"');
    return r ? r : cn_buf_put8(b, '"');
  }
  r = cn_buf_put8(b, '[');
  if (!r) r = put_seq(b, t->v.list.e, t->v.list.len);
  if (!r && t->v.list.tail) r = cn_buf_put8(b, '|');
  if (!r && t->v.list.tail) r = pr(b, t->v.list.tail);
  return r ? r : cn_buf_put8(b, ']');
}

static int put_fun(cn_buf *b, const cn_term *t) {
  term_fun_id fi;
  int r;
  if (term_fun_id_get(t, &fi)) return put(b, "#Fun<?>");
  if (fi.is_export) {
    if ((r = put(b, "fun ")) || (r = put_raw_atom(b, fi.mod, fi.mod_len, fi.mod_utf8)) || (r = cn_buf_put8(b, ':')) ||
        (r = put_raw_atom(b, fi.fun, fi.fun_len, fi.fun_utf8)))
      return r;
    return cn_buf_printf(b, "/%lld", (long long)(int32_t)fi.arity);
  }
  if ((r = put(b, "#Fun<")) || (r = put_raw_atom(b, fi.mod, fi.mod_len, fi.mod_utf8))) return r;
  return cn_buf_printf(b, ".%lld.%lld>", (long long)(int32_t)fi.old_index, (long long)(int32_t)fi.old_uniq);
}

static int pr(cn_buf *b, const cn_term *t) {
  int r;
  switch (t->type) {
  case CN_INT: return cn_buf_printf(b, "%lld", (long long)t->v.i);
  case CN_BIG: return put_big(b, t);
  case CN_FLOAT: return put_float(b, t->v.f);
  case CN_ATOM: return put_atom(b, t->v.atom);
  case CN_REF:
    if ((r = put(b, "#Ref<")) || (r = put_atom(b, t->v.ref.node))) return r;
    for (uint32_t i = t->v.ref.len; i-- > 0 && !r;) r = cn_buf_printf(b, ".%u", t->v.ref.n[i]);
    return r ? r : cn_buf_printf(b, ".%u>", t->v.ref.creation);
  case CN_FUN: return put_fun(b, t);
  case CN_PORT:
    if ((r = put(b, "#Port<")) || (r = put_atom(b, t->v.port.node))) return r;
    return cn_buf_printf(b, ".%llu.%u>", (unsigned long long)t->v.port.id, t->v.port.creation);
  case CN_PID:
    if ((r = put(b, "#Pid<")) || (r = put_atom(b, t->v.pid.node))) return r;
    return cn_buf_printf(b, ".%u.%u.%u>", t->v.pid.id, t->v.pid.serial, t->v.pid.creation);
  case CN_TUPLE:
    if ((r = cn_buf_put8(b, '{')) || (r = put_seq(b, t->v.tuple.e, t->v.tuple.arity))) return r;
    return cn_buf_put8(b, '}');
  case CN_MAP:
    if ((r = put(b, "#{"))) return r;
    for (uint32_t i = 0; i < t->v.map.size && !r; i++) {
      if (i) r = cn_buf_put8(b, ',');
      if (!r) r = pr(b, &t->v.map.kv[2 * i]);
      if (!r) r = put(b, " => ");
      if (!r) r = pr(b, &t->v.map.kv[2 * i + 1]);
    }
    return r ? r : cn_buf_put8(b, '}');
  case CN_NIL: return put(b, "[]");
  case CN_LIST: return put_list(b, t);
  case CN_BINARY: return put_binary(b, t);
  default: return CN_EINVAL;
  }
}

int cn_term_print(const cn_term *t, cn_buf *out) {
  if (!t || !out) return CN_EINVAL;
  size_t mark = out->len;
  int r = pr(out, t);
  if (r) { /* leave the buffer as it was rather than half a term */
    out->len = mark;
    if (out->data) out->data[mark] = 0;
  }
  return r;
}

char *cn_term_to_string(const cn_term *t) {
  cn_buf b = {0};
  if (cn_term_print(t, &b) || cn_buf_append(&b, "", 0)) {
    cn_buf_free(&b);
    return NULL;
  }
  return (char *)b.data; /* cn_buf keeps a NUL after its data */
}
