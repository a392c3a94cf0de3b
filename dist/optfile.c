/* optfile.c: reads OTP's ssl_dist_optfile: a small, bounded parser for Erlang term text (atoms, quoted atoms,
 * strings, binaries of strings, integers, lists, tuples, comments, the closing '.') and the mapping of the
 * [{server, Opts}, {client, Opts}] term onto cn_tls_opts. The parser does no I/O; cn_tls_opts_load reads. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cn_base.h"
#include "cn_tls.h"

#define MAX_TEXT ((size_t)1 << 20)
#define MAX_DEPTH 32
#define MAX_TERMS 65536
#define MAX_STR 4096 /* one string or atom: paths and cipher lists are far shorter */

typedef enum { T_ATOM, T_STR, T_INT, T_LIST, T_TUPLE } tkind;

typedef struct tm {
  tkind k;
  char *s; /* atom or string text, NUL-terminated */
  long long i;
  struct tm **e; /* list or tuple elements */
  size_t n;
} tm;

typedef struct ps {
  const char *p, *end;
  size_t terms;
  char *err;
  size_t errlen;
  int rc;
} ps;

static int perr(ps *s, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(ps *s, int rc, const char *fmt, ...) {
  if (s->rc) return s->rc;
  s->rc = rc;
  if (s->err && s->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, s->errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

static void tm_free(tm *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n; i++) tm_free(t->e[i]);
  cn_free(t->e);
  cn_free(t->s);
  cn_free(t);
}

/* Skips blanks and % comments. */
static void skip_ws(ps *s) {
  while (s->p < s->end) {
    if (*s->p == '%') {
      while (s->p < s->end && *s->p != '\n') s->p++;
    } else if (isspace((unsigned char)*s->p)) {
      s->p++;
    } else {
      break;
    }
  }
}

static size_t line_of(const ps *s, const char *start) {
  size_t l = 1;
  for (const char *q = start; q < s->p; q++) l += *q == '\n';
  return l;
}

/* Reads one escape after a backslash, as Erlang's scanner does; appends the byte(s) to b. */
static int read_escape(ps *s, cn_buf *b) {
  if (s->p >= s->end) return -1;
  char c = *s->p++;
  unsigned v;
  switch (c) {
  case 'n': v = '\n'; break;
  case 't': v = '\t'; break;
  case 'r': v = '\r'; break;
  case 's': v = ' '; break;
  case 'e': v = 27; break;
  case 'd': v = 127; break;
  case 'b': v = '\b'; break;
  case 'f': v = '\f'; break;
  case 'v': v = '\v'; break;
  case '^':
    if (s->p >= s->end) return -1;
    v = (unsigned)(*s->p++) & 31;
    break;
  case 'x':
    v = 0;
    if (s->p < s->end && *s->p == '{') {
      s->p++;
      int k = 0;
      while (s->p < s->end && isxdigit((unsigned char)*s->p) && k < 6) {
        v = v * 16 +
            (unsigned)(isdigit((unsigned char)*s->p) ? *s->p - '0' : (tolower((unsigned char)*s->p) - 'a' + 10));
        s->p++, k++;
      }
      if (!k || s->p >= s->end || *s->p != '}') return -1;
      s->p++;
    } else {
      for (int k = 0; k < 2; k++) {
        if (s->p >= s->end || !isxdigit((unsigned char)*s->p)) return -1;
        v = v * 16 +
            (unsigned)(isdigit((unsigned char)*s->p) ? *s->p - '0' : (tolower((unsigned char)*s->p) - 'a' + 10));
        s->p++;
      }
    }
    break;
  default:
    if (c >= '0' && c <= '7') {
      v = (unsigned)(c - '0');
      for (int k = 0; k < 2 && s->p < s->end && *s->p >= '0' && *s->p <= '7'; k++)
        v = v * 8 + (unsigned)(*s->p++ - '0');
    } else {
      v = (unsigned char)c; /* \\ \" \' and any other character stand for themselves */
    }
  }
  if (v > 255) return -1; /* paths and names are bytes; wider characters are not needed here */
  return cn_buf_put8(b, (uint8_t)v) ? -2 : 0;
}

/* Reads a quoted string or atom body up to the closing quote q (the opening one is consumed). */
static int read_quoted(ps *s, char q, cn_buf *b) {
  const char *start = s->p;
  while (s->p < s->end && *s->p != q) {
    int rc = 0;
    if (*s->p == '\\') {
      s->p++;
      rc = read_escape(s, b);
      if (rc == -1) return perr(s, CN_EDECODE, "line %zu: bad escape sequence", line_of(s, start));
    } else {
      rc = cn_buf_put8(b, (uint8_t)*s->p++) ? -2 : 0;
    }
    if (rc == -2) return perr(s, CN_ENOMEM, "out of memory");
    if (b->len > MAX_STR)
      return perr(s, CN_ELIMIT, "line %zu: string or atom over %d bytes", line_of(s, start), MAX_STR);
  }
  if (s->p >= s->end) return perr(s, CN_EDECODE, "unterminated %s", q == '"' ? "string" : "quoted atom");
  s->p++;
  return 0;
}

static tm *mk(ps *s, tkind k) {
  if (++s->terms > MAX_TERMS) {
    perr(s, CN_ELIMIT, "more than %d terms", MAX_TERMS);
    return NULL;
  }
  tm *t = cn_calloc(1, sizeof *t);
  if (!t) perr(s, CN_ENOMEM, "out of memory");
  else t->k = k;
  return t;
}

static tm *mk_text(ps *s, tkind k, cn_buf *b) {
  tm *t = mk(s, k);
  if (t && !(t->s = cn_strndup(b->len ? (const char *)b->data : "", b->len))) {
    cn_free(t);
    t = NULL;
    perr(s, CN_ENOMEM, "out of memory");
  }
  cn_buf_free(b);
  return t;
}

/* Strings, "a" "b" concatenated as Erlang does. */
static tm *parse_string(ps *s) {
  cn_buf b = {0};
  for (;;) {
    s->p++; /* the opening quote */
    if (read_quoted(s, '"', &b)) {
      cn_buf_free(&b);
      return NULL;
    }
    skip_ws(s);
    if (s->p >= s->end || *s->p != '"') break;
  }
  return mk_text(s, T_STR, &b);
}

static tm *parse(ps *s, int depth);

/* Elements up to the closing bracket; list and tuple share this. */
static tm *parse_seq(ps *s, int depth, tkind k, char close) {
  tm *t = mk(s, k);
  if (!t) return NULL;
  s->p++;
  skip_ws(s);
  if (s->p < s->end && *s->p == close) {
    s->p++;
    return t;
  }
  size_t cap = 0;
  for (;;) {
    tm *e = parse(s, depth + 1);
    if (!e) goto fail;
    if (t->n == cap) {
      size_t nc = cap ? cap * 2 : 4;
      tm **ne = cn_realloc(t->e, nc * sizeof *ne);
      if (!ne) {
        tm_free(e);
        perr(s, CN_ENOMEM, "out of memory");
        goto fail;
      }
      t->e = ne;
      cap = nc;
    }
    t->e[t->n++] = e;
    skip_ws(s);
    if (s->p < s->end && *s->p == ',') {
      s->p++;
      continue;
    }
    if (s->p < s->end && *s->p == close) {
      s->p++;
      return t;
    }
    if (s->p < s->end && *s->p == '|') perr(s, CN_EDECODE, "improper lists are not supported");
    else perr(s, CN_EDECODE, "expected ',' or '%c'%s", close, s->p >= s->end ? " before the end of the text" : "");
    goto fail;
  }
fail:
  tm_free(t);
  return NULL;
}

static tm *parse(ps *s, int depth) {
  if (depth > MAX_DEPTH) {
    perr(s, CN_ELIMIT, "terms nested deeper than %d", MAX_DEPTH);
    return NULL;
  }
  skip_ws(s);
  if (s->p >= s->end) {
    perr(s, CN_EDECODE, "unexpected end of text");
    return NULL;
  }
  const char *start = s->p;
  char c = *s->p;
  if (c == '[') return parse_seq(s, depth, T_LIST, ']');
  if (c == '{') return parse_seq(s, depth, T_TUPLE, '}');
  if (c == '"') return parse_string(s);
  if (c == '<' && s->end - s->p >= 2 && s->p[1] == '<') {
    /* <<"text">>: a binary of a string, as password or certfile may be given. */
    s->p += 2;
    skip_ws(s);
    tm *t = NULL;
    if (s->p < s->end && *s->p == '"') {
      t = parse_string(s);
    } else if (s->p < s->end && *s->p == '>') {
      cn_buf b = {0};
      t = mk_text(s, T_STR, &b);
    }
    if (!t) {
      if (!s->rc) perr(s, CN_EDECODE, "line %zu: only <<\"text\">> binaries are supported", line_of(s, start));
      return NULL;
    }
    skip_ws(s);
    if (s->end - s->p < 2 || s->p[0] != '>' || s->p[1] != '>') {
      tm_free(t);
      perr(s, CN_EDECODE, "line %zu: only <<\"text\">> binaries are supported", line_of(s, start));
      return NULL;
    }
    s->p += 2;
    return t;
  }
  if (c == '\'') {
    cn_buf b = {0};
    s->p++;
    if (read_quoted(s, '\'', &b)) {
      cn_buf_free(&b);
      return NULL;
    }
    return mk_text(s, T_ATOM, &b);
  }
  if (islower((unsigned char)c)) {
    const char *a = s->p;
    while (s->p < s->end && (isalnum((unsigned char)*s->p) || *s->p == '_' || *s->p == '@')) s->p++;
    if ((size_t)(s->p - a) > MAX_STR) {
      perr(s, CN_ELIMIT, "line %zu: atom over %d bytes", line_of(s, start), MAX_STR);
      return NULL;
    }
    if (s->p - a == 3 && !memcmp(a, "fun", 3)) {
      perr(s, CN_EDECODE, "line %zu: funs are unsupported (verify_fun): only literal terms", line_of(s, start));
      return NULL;
    }
    skip_ws(s);
    if (s->p < s->end && (*s->p == ':' || *s->p == '(')) {
      perr(s, CN_EDECODE, "line %zu: function calls are not supported (only literal terms)", line_of(s, start));
      return NULL;
    }
    cn_buf b = {0};
    if (cn_buf_append(&b, a, (size_t)(s->p - a))) {
      perr(s, CN_ENOMEM, "out of memory");
      return NULL;
    }
    return mk_text(s, T_ATOM, &b);
  }
  if (isdigit((unsigned char)c) || ((c == '-' || c == '+') && s->end - s->p > 1 && isdigit((unsigned char)s->p[1]))) {
    bool neg = c == '-';
    if (c == '-' || c == '+') s->p++;
    long long v = 0;
    int base = 10;
    const char *d = s->p;
    while (s->p < s->end && isdigit((unsigned char)*s->p)) {
      if (v > 100000000000LL) {
        perr(s, CN_ELIMIT, "line %zu: integer too large", line_of(s, start));
        return NULL;
      }
      v = v * 10 + (*s->p++ - '0');
    }
    if (s->p < s->end && *s->p == '#' && s->p - d <= 2 && v >= 2 && v <= 36) {
      base = (int)v;
      v = 0;
      s->p++;
      const char *ds = s->p;
      while (s->p < s->end && isalnum((unsigned char)*s->p)) {
        int dv = isdigit((unsigned char)*s->p) ? *s->p - '0' : tolower((unsigned char)*s->p) - 'a' + 10;
        if (dv >= base) break;
        if (v > 100000000000LL) {
          perr(s, CN_ELIMIT, "line %zu: integer too large", line_of(s, start));
          return NULL;
        }
        v = v * base + dv;
        s->p++;
      }
      if (s->p == ds) {
        perr(s, CN_EDECODE, "line %zu: bad based integer", line_of(s, start));
        return NULL;
      }
    }
    if (s->p < s->end && *s->p == '.' && s->end - s->p > 1 && isdigit((unsigned char)s->p[1])) {
      perr(s, CN_EDECODE, "line %zu: floats are not supported", line_of(s, start));
      return NULL;
    }
    tm *t = mk(s, T_INT);
    if (t) t->i = neg ? -v : v;
    return t;
  }
  if (isupper((unsigned char)c) || c == '_')
    perr(s, CN_EDECODE, "line %zu: variables are not allowed in an optfile", line_of(s, start));
  else if (c == '#') perr(s, CN_EDECODE, "line %zu: maps and records are not supported", line_of(s, start));
  else if (c == 'f' || c == '$') perr(s, CN_EDECODE, "line %zu: unsupported term", line_of(s, start));
  else
    perr(s, CN_EDECODE, "line %zu: unexpected character '%c'", line_of(s, start), isprint((unsigned char)c) ? c : '?');
  return NULL;
}

/* ---- Mapping onto cn_tls_opts -------------------------------------------------------------------------- */

int cn_tls_set(char **field, const char *value) {
  char *c = NULL;
  if (value && !(c = cn_strndup(value, strlen(value)))) return CN_ENOMEM;
  cn_free(*field);
  *field = c;
  return 0;
}

static void side_clear(cn_tls_side *s) {
  cn_free(s->certfile);
  cn_free(s->keyfile);
  cn_free(s->cacertfile);
  if (s->password) {
    volatile char *p = s->password;
    while (*p) *p++ = 0;
  }
  cn_free(s->password);
  cn_free(s->ciphers);
  cn_free(s->sni);
  memset(s, 0, sizeof *s);
}

void cn_tls_opts_clear(cn_tls_opts *o) {
  if (!o) return;
  side_clear(&o->server);
  side_clear(&o->client);
}

static bool is_atom(const tm *t, const char *a) { return t->k == T_ATOM && !strcmp(t->s, a); }

static void add_warn(char *warn, size_t warnlen, const char *side, const char *key) {
  if (!warn || !warnlen) return;
  size_t l = strlen(warn);
  if (l + 1 >= warnlen) return;
  snprintf(warn + l, warnlen - l, "%s%s:%s", l ? ", " : "", side, key);
}

/* A string value (string or binary; an empty list is the empty string, as in Erlang). */
static const char *str_of(const tm *v) {
  if (v->k == T_STR) return v->s;
  if (v->k == T_LIST && v->n == 0) return "";
  return NULL;
}

static int set_str(ps *s, char **field, const tm *v, const char *side, const char *key) {
  const char *t = str_of(v);
  if (!t) return perr(s, CN_EINVAL, "%s option %s: expected a string", side, key);
  if (cn_tls_set(field, t)) return perr(s, CN_ENOMEM, "out of memory");
  return 0;
}

static int map_option(ps *s, cn_tls_side *o, const char *side, const tm *opt, char *warn, size_t warnlen) {
  if (opt->k != T_TUPLE || opt->n != 2 || opt->e[0]->k != T_ATOM) {
    if (opt->k == T_ATOM) {
      add_warn(warn, warnlen, side, opt->s); /* a bare atom such as binary: a socket option, not TLS */
      return 0;
    }
    return perr(s, CN_EINVAL, "%s options: each must be {Key, Value}", side);
  }
  const char *k = opt->e[0]->s;
  const tm *v = opt->e[1];
  if (!strcmp(k, "certfile")) return set_str(s, &o->certfile, v, side, k);
  if (!strcmp(k, "keyfile")) return set_str(s, &o->keyfile, v, side, k);
  if (!strcmp(k, "cacertfile")) return set_str(s, &o->cacertfile, v, side, k);
  if (!strcmp(k, "password")) return set_str(s, &o->password, v, side, k);
  if (!strcmp(k, "verify")) {
    if (is_atom(v, "verify_peer")) o->verify = CN_TLS_VERIFY_PEER;
    else if (is_atom(v, "verify_none")) o->verify = CN_TLS_VERIFY_NONE;
    else return perr(s, CN_EINVAL, "%s option verify: expected verify_peer or verify_none", side);
    return 0;
  }
  if (!strcmp(k, "fail_if_no_peer_cert")) {
    if (is_atom(v, "true")) o->fail_if_no_peer_cert = true;
    else if (is_atom(v, "false")) o->fail_if_no_peer_cert = false;
    else return perr(s, CN_EINVAL, "%s option fail_if_no_peer_cert: expected true or false", side);
    return 0;
  }
  if (!strcmp(k, "depth")) {
    if (v->k != T_INT || v->i < 0 || v->i > 100) return perr(s, CN_EINVAL, "%s option depth: expected 0..100", side);
    o->has_depth = true;
    o->depth = (int)v->i;
    return 0;
  }
  if (!strcmp(k, "versions")) {
    if (v->k != T_LIST) return perr(s, CN_EINVAL, "%s option versions: expected a list", side);
    unsigned set = 0;
    for (size_t i = 0; i < v->n; i++) {
      const tm *x = v->e[i];
      if (is_atom(x, "tlsv1.2")) set |= CN_TLS_V12;
      else if (is_atom(x, "tlsv1.3")) set |= CN_TLS_V13;
      else if (x->k == T_ATOM) add_warn(warn, warnlen, side, x->s); /* older versions: not offered */
      else return perr(s, CN_EINVAL, "%s option versions: expected atoms such as 'tlsv1.3'", side);
    }
    if (!set) return perr(s, CN_EINVAL, "%s option versions: neither 'tlsv1.2' nor 'tlsv1.3' given", side);
    o->versions = set;
    return 0;
  }
  if (!strcmp(k, "ciphers")) {
    if (str_of(v)) return set_str(s, &o->ciphers, v, side, k);
    if (v->k != T_LIST) return perr(s, CN_EINVAL, "%s option ciphers: expected a string or a list of strings", side);
    cn_buf b = {0};
    for (size_t i = 0; i < v->n; i++) {
      if (v->e[i]->k != T_STR) {
        cn_buf_free(&b);
        return perr(s, CN_EINVAL, "%s option ciphers: only cipher names (strings) are supported", side);
      }
      if ((i && cn_buf_put8(&b, ':')) || cn_buf_append(&b, v->e[i]->s, strlen(v->e[i]->s))) {
        cn_buf_free(&b);
        return perr(s, CN_ENOMEM, "out of memory");
      }
    }
    cn_free(o->ciphers);
    o->ciphers = cn_strndup(b.len ? (const char *)b.data : "", b.len);
    cn_buf_free(&b);
    return o->ciphers ? 0 : perr(s, CN_ENOMEM, "out of memory");
  }
  if (!strcmp(k, "server_name_indication")) {
    if (is_atom(v, "disable")) {
      o->sni_disable = true;
      return cn_tls_set(&o->sni, NULL);
    }
    o->sni_disable = false;
    return set_str(s, &o->sni, v, side, k);
  }
  add_warn(warn, warnlen, side, k);
  return 0;
}

int cn_tls_opts_parse(const char *text, size_t len, cn_tls_opts *out, char *err, size_t errlen, char *warn,
                      size_t warnlen) {
  memset(out, 0, sizeof *out);
  if (err && errlen) err[0] = 0;
  if (warn && warnlen) warn[0] = 0;
  ps s = {.p = text, .end = text + len, .err = err, .errlen = errlen};
  if (!text && len) return perr(&s, CN_EINVAL, "no text");
  if (len > MAX_TEXT) return perr(&s, CN_ELIMIT, "optfile over %zu bytes", MAX_TEXT);
  tm *t = parse(&s, 0);
  if (!t) return s.rc;
  skip_ws(&s);
  /* consult takes exactly one expression followed by '.', then only blanks and comments. */
  if (s.p >= s.end || *s.p != '.') {
    tm_free(t);
    return perr(&s, CN_EDECODE, "expected '.' after the term");
  }
  s.p++;
  skip_ws(&s);
  if (s.p < s.end) {
    tm_free(t);
    return perr(&s, CN_EDECODE, "text after the closing '.' (the file holds one term)");
  }
  if (t->k != T_LIST) {
    tm_free(t);
    return perr(&s, CN_EINVAL, "the optfile must hold a list [{server, [...]}, {client, [...]}]");
  }
  for (size_t i = 0; i < t->n && !s.rc; i++) {
    const tm *e = t->e[i];
    if (e->k != T_TUPLE || e->n != 2 || e->e[0]->k != T_ATOM || e->e[1]->k != T_LIST) {
      perr(&s, CN_EINVAL, "element %zu: expected {server, [...]} or {client, [...]}", i + 1);
      break;
    }
    cn_tls_side *side = is_atom(e->e[0], "server") ? &out->server : is_atom(e->e[0], "client") ? &out->client : NULL;
    if (!side) {
      add_warn(warn, warnlen, "optfile", e->e[0]->s);
      continue;
    }
    /* A repeated {server, ...} replaces the earlier one, as ets:insert into OTP's set table does. */
    side_clear(side);
    for (size_t j = 0; j < e->e[1]->n && !s.rc; j++) map_option(&s, side, e->e[0]->s, e->e[1]->e[j], warn, warnlen);
  }
  tm_free(t);
  if (s.rc) cn_tls_opts_clear(out);
  return s.rc;
}

int cn_tls_opts_load(const char *path, cn_tls_opts *out, char *err, size_t errlen, char *warn, size_t warnlen) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (err && errlen) snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    return CN_EIO;
  }
  char *buf = cn_malloc(MAX_TEXT + 1);
  if (!buf) {
    fclose(f);
    return CN_ENOMEM;
  }
  size_t n = fread(buf, 1, MAX_TEXT + 1, f);
  int bad = ferror(f);
  fclose(f);
  int rc;
  if (bad) {
    if (err && errlen) snprintf(err, errlen, "cannot read %s", path);
    rc = CN_EIO;
  } else {
    rc = cn_tls_opts_parse(buf, n, out, err, errlen, warn, warnlen);
  }
  cn_free(buf);
  return rc;
}
