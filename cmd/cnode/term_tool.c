/* term_tool.c: the `cnode term` subcommands. Each input line holds a hex-encoded term_to_binary result in its
 * first column (upper or lower case; further columns are ignored); blank lines are skipped. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cn_term.h"
#include "horde.h"
#include "term_tool.h"

#define EXIT_BAD 2

static void usage(FILE *f) {
  fprintf(f, "usage: cnode term decode | hash [--range R] | sort | compare | choose [--uniform]   (input on stdin)\n"
             "       [--otp-release N]\n"
             "  Each line: a hex-encoded term_to_binary result in the first column; further columns are ignored.\n"
             "  --otp-release N: answer as OTP N does (27 and later: -0.0 and 0.0 are different map keys, so maps\n"
             "                   holding them order differently); default 25. phash2 is the same in every release.\n"
             "  decode           prints each term in Erlang syntax\n"
             "  hash [--range R] prints `phash2(T, R) phash2(T)`; R is 1..4294967296 (the default)\n"
             "  sort             prints the lines in term order (a stable sort: equal terms keep input order)\n"
             "  compare          two terms per line (columns 1 and 2); prints -1, 0 (only when ==) or 1\n"
             "  choose           each term {Spec, [Member]} (Member: a Horde.DynamicSupervisor.Member map);\n"
             "                   prints the name {N,Node} that CNode.Horde.Distribution.choose_node/2 picks,\n"
             "                   or {error,no_alive_nodes}\n"
             "  choose --uniform the same with plain Horde.UniformDistribution (no capability filter)\n");
}

typedef struct tool {
  const char *cmd;
  cn_atoms *atoms;
  unsigned long lineno;
  int otp_release; /* whose term order compare and sort follow */
} tool;

static int bad(const tool *t, const char *what) {
  fprintf(stderr, "cnode term %s: line %lu: %s\n", t->cmd, t->lineno, what);
  return EXIT_BAD;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Splits off the next whitespace-separated column of *s; NULL when there is none. */
static char *column(char **s, size_t *len) {
  char *p = *s;
  while (*p == ' ' || *p == '\t') p++;
  if (!*p) return NULL;
  char *start = p;
  while (*p && *p != ' ' && *p != '\t') p++;
  *len = (size_t)(p - start);
  *s = p;
  return start;
}

/* Decodes one hex column into a term; 0, EXIT_BAD (message printed) or 1 (out of memory). */
static int parse_term(const tool *t, const char *hex, size_t n, cn_term **out) {
  *out = NULL;
  if (n % 2) return bad(t, "odd number of hex digits");
  uint8_t *b = malloc(n / 2 + 1);
  if (!b) return 1;
  for (size_t i = 0; i < n / 2; i++) {
    int hi = hexval((unsigned char)hex[2 * i]), lo = hexval((unsigned char)hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      free(b);
      return bad(t, "not a hex string");
    }
    b[i] = (uint8_t)(hi << 4 | lo);
  }
  int r = cn_term_from_binary(t->atoms, b, n / 2, NULL, out);
  free(b);
  if (r == CN_ENOMEM) return 1;
  if (r) {
    char msg[160];
    snprintf(msg, sizeof msg, "not a term in the external format (%s)", cn_strerror(r));
    return bad(t, msg);
  }
  return 0;
}

/* Reads the next line without its line break; 1, 0 at the end, or -1 on a read error. */
static int next_line(tool *t, char **line, size_t *cap) {
  errno = 0;
  ssize_t n = getline(line, cap, stdin);
  if (n < 0) return errno ? -1 : 0;
  while (n > 0 && ((*line)[n - 1] == '\n' || (*line)[n - 1] == '\r')) (*line)[--n] = 0;
  t->lineno++;
  return 1;
}

/* Reads stdin line by line and runs fn on each (line borrowed for the call); stops at fn's first non-zero
 * status, which it returns; 1 on a read error. */
static int each_line(tool *t, int (*fn)(tool *t, char *line, void *ctx), void *ctx) {
  char *line = NULL;
  size_t cap = 0;
  int r, st = 0;
  while (!st && (r = next_line(t, &line, &cap)) > 0) st = fn(t, line, ctx);
  free(line);
  return st ? st : r < 0 ? 1 : 0;
}

/* The term in a line's first column: 0 and *term (NULL for a blank line), or the status of a bad line. */
static int line_term(tool *t, char *line, cn_term **term) {
  char *s = line, *hex;
  size_t n;
  *term = NULL;
  if (!(hex = column(&s, &n))) return 0;
  return parse_term(t, hex, n, term);
}

static int decode_line(tool *t, char *line, void *ctx) {
  (void)ctx;
  cn_term *term;
  int st = line_term(t, line, &term);
  if (st || !term) return st;
  char *txt = cn_term_to_string(term);
  cn_term_free(term);
  if (!txt) return 1;
  puts(txt);
  cn_free(txt);
  return 0;
}

static int do_decode(tool *t) { return each_line(t, decode_line, NULL); }

static int hash_line(tool *t, char *line, void *ctx) {
  uint64_t range = *(const uint64_t *)ctx;
  cn_term *term;
  int st = line_term(t, line, &term);
  if (st || !term) return st;
  uint32_t h; /* one pass gives both: phash2/1 is the low 27 bits of the full 32-bit hash */
  int hr = cn_phash2_checked(term, UINT64_C(1) << 32, &h);
  cn_term_free(term);
  if (hr) return hr == CN_ENOMEM ? 1 : bad(t, cn_strerror(hr));
  uint32_t hr_range = range == (UINT64_C(1) << 32) ? h : (uint32_t)(h % range);
  printf("%u %u\n", hr_range, h & ((1u << 27) - 1));
  return 0;
}

static int do_hash(tool *t, uint64_t range) { return each_line(t, hash_line, &range); }

static int compare_line(tool *t, char *line, void *ctx) {
  (void)ctx;
  char *s = line, *h1, *h2;
  size_t n1, n2;
  if (!(h1 = column(&s, &n1))) return 0;
  if (!(h2 = column(&s, &n2))) return bad(t, "two terms expected, separated by a space");
  cn_term *a, *b = NULL;
  int st;
  if ((st = parse_term(t, h1, n1, &a)) || (st = parse_term(t, h2, n2, &b))) {
    cn_term_free(a);
    return st;
  }
  int c, cr = cn_term_compare_otp(a, b, false, t->otp_release, &c);
  cn_term_free(a);
  cn_term_free(b);
  if (cr) return cr == CN_ENOMEM ? 1 : bad(t, cn_strerror(cr));
  printf("%d\n", c < 0 ? -1 : c > 0);
  return 0;
}

static int do_compare(tool *t) { return each_line(t, compare_line, NULL); }

/* The members of a {Spec, [Member]} line into m (n of them; names borrowed from t); CN_EDECODE on another shape. */
static int line_members(const cn_term *t, cn_horde_member **m, size_t *n) {
  const cn_term *ms = cn_tuple_elem(t, 2, 1);
  *m = NULL;
  *n = 0;
  if (!ms || !(ms->type == CN_NIL || (ms->type == CN_LIST && !ms->v.list.tail))) return CN_EDECODE;
  *n = ms->type == CN_LIST ? ms->v.list.len : 0;
  if (!(*m = malloc((*n + 1) * sizeof **m))) return CN_ENOMEM;
  int rc = 0;
  for (size_t i = 0; !rc && i < *n; i++) rc = cn_horde_member_parse(&ms->v.list.e[i], &(*m)[i]);
  return rc;
}

/* {Spec, [Member]} -> the chosen member's name or {error,no_alive_nodes}, printed as decode prints terms. */
static int choose_line(tool *t, char *line, void *ctx) {
  int mode = *(const int *)ctx;
  cn_term *term;
  int st = line_term(t, line, &term);
  if (st || !term) return st;
  cn_horde_member *m;
  size_t n, k = 0;
  int rc = line_members(term, &m, &n);
  if (!rc) rc = cn_horde_choose(cn_tuple_elem(term, 2, 0), m, n, mode, &k);
  char *txt = !rc && k < n ? cn_term_to_string(m[k].name) : NULL;
  free(m);
  cn_term_free(term);
  if (rc == CN_ENOTFOUND) txt = cn_strndup("{error,no_alive_nodes}", 22);
  else if (rc) return rc == CN_ENOMEM ? 1 : bad(t, "not {Spec, [Member]} with a map Spec and Member maps with a name");
  if (!txt) return 1;
  puts(txt);
  cn_free(txt);
  return 0;
}

static int do_choose(tool *t, int mode) { return each_line(t, choose_line, &mode); }

typedef struct item {
  char *line;
  cn_term *term;
} item;

/* Term order over items (ctx: the tool); cn_stable_sort keeps terms that compare equal (1 and 1.0) in input order. */
static int item_cmp(const void *a, const void *b, void *ctx, int *result) {
  const tool *t = ctx;
  return cn_term_compare_otp(((const item *)a)->term, ((const item *)b)->term, false, t->otp_release, result);
}

typedef struct items {
  item *v;
  size_t n, cap;
} items;

static int collect_line(tool *t, char *line, void *ctx) {
  items *it = ctx;
  if (it->n == it->cap) {
    size_t nc = it->cap ? 2 * it->cap : 1024;
    item *nv = realloc(it->v, nc * sizeof *nv);
    if (!nv) return 1;
    it->v = nv;
    it->cap = nc;
  }
  item *x = &it->v[it->n];
  int st = line_term(t, line, &x->term);
  if (st || !x->term) return st;
  if (!(x->line = strdup(line))) {
    cn_term_free(x->term);
    return 1;
  }
  it->n++;
  return 0;
}

static int do_sort(tool *t) {
  items it = {0};
  int st = each_line(t, collect_line, &it);
  if (!st) {
    item *tmp = malloc((it.n ? it.n : 1) * sizeof *tmp);
    int sr = tmp ? cn_stable_sort(it.v, it.n, sizeof *it.v, tmp, item_cmp, t) : CN_ENOMEM;
    free(tmp);
    if (sr) {
      fprintf(stderr, "cnode term sort: %s\n", cn_strerror(sr));
      st = sr == CN_ENOMEM ? 1 : EXIT_BAD;
    }
  }
  for (size_t i = 0; i < it.n; i++) {
    if (!st) puts(it.v[i].line);
    free(it.v[i].line);
    cn_term_free(it.v[i].term);
  }
  free(it.v);
  return st;
}

int term_tool_main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? EXIT_BAD : 0;
  }
  tool t = {argv[1], NULL, 0, CN_OTP_RELEASE_DEFAULT};
  uint64_t range = UINT64_C(1) << 32;
  int is_hash = !strcmp(t.cmd, "hash"), is_choose = !strcmp(t.cmd, "choose"), mode = CN_HORDE_FILTERED;
  for (int i = 2; i < argc; i++) {
    if (is_choose && !strcmp(argv[i], "--uniform")) {
      mode = CN_HORDE_UNIFORM;
      continue;
    }
    if (!strcmp(argv[i], "--otp-release") && i + 1 < argc) {
      char *end;
      errno = 0;
      long v = strtol(argv[++i], &end, 10);
      if (errno || *end || end == argv[i] || v < CN_OTP_RELEASE_MIN || v > CN_OTP_RELEASE_MAX) {
        fprintf(stderr, "cnode term: --otp-release must be an OTP release (%d..%d)\n", CN_OTP_RELEASE_MIN,
                CN_OTP_RELEASE_MAX);
        return EXIT_BAD;
      }
      t.otp_release = (int)v;
    } else if (is_hash && !strcmp(argv[i], "--range") && i + 1 < argc) {
      char *end;
      errno = 0;
      unsigned long long v = strtoull(argv[++i], &end, 10);
      if (errno || *end || end == argv[i] || argv[i][0] == '-' || v < 1 || v > (UINT64_C(1) << 32)) {
        fprintf(stderr, "cnode term hash: --range must be an integer in 1..4294967296\n");
        return EXIT_BAD;
      }
      range = v;
    } else {
      usage(stderr);
      return EXIT_BAD;
    }
  }
  int (*run)(tool *) = !strcmp(t.cmd, "decode")    ? do_decode
                       : !strcmp(t.cmd, "sort")    ? do_sort
                       : !strcmp(t.cmd, "compare") ? do_compare
                                                   : NULL;
  if (!run && !is_hash && !is_choose) {
    usage(stderr);
    return EXIT_BAD;
  }
  if (cn_atoms_new(&t.atoms, 0)) {
    fprintf(stderr, "cnode term: out of memory\n");
    return 1;
  }
  int st = is_hash ? do_hash(&t, range) : is_choose ? do_choose(&t, mode) : run(&t);
  cn_atoms_free(t.atoms);
  if (st == 1) fprintf(stderr, "cnode term %s: out of memory or read error (line %lu)\n", t.cmd, t.lineno);
  if (fflush(stdout) != 0 && st == 0) {
    fprintf(stderr, "cnode term %s: cannot write the output\n", t.cmd);
    st = 1;
  }
  return st;
}
