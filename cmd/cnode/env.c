/* env.c: CNODE_* variables for every long option of the cnode program (derived from its option table, so options
 * added later get theirs too), the Elixir release's variables as fallbacks, and messages that name the source of
 * a bad value. The variables become "--opt=value" arguments ahead of the command line's, so one parser and one
 * set of checks serve both. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"

enum { MAX_INJECTED = 512, NAME_MAX_LEN = 128 };

/* The arguments made from variables: each string, and the variable it came from (for env_where). */
static struct injected {
  char *arg;
  char var[NAME_MAX_LEN + 8];
} inj[MAX_INJECTED];
static size_t ninj;
static char **vec; /* the vector handed to the parser; freed at exit */

/* Frees what env_args made (registered with atexit: main returns from many places, and leak checkers look). */
static void env_free(void) {
  for (size_t i = 0; i < ninj; i++) free(inj[i].arg);
  ninj = 0;
  free(vec);
  vec = NULL;
}

/* True when name is one of the space-separated words of list. */
static bool in_words(const char *list, const char *name, char sep) {
  size_t k = strlen(name);
  for (const char *p = list; p && *p;) {
    while (*p == ' ' || *p == sep) p++;
    size_t w = strcspn(p, sep == ' ' ? " " : " |");
    if (w == k && !strncmp(p, name, k)) return true;
    p += w;
  }
  return false;
}

/* The exclusive group ("name|sname") that holds name, copied into buf; NULL when it is in none. */
static const char *group_of(const char *groups, const char *name, char *buf, size_t cap) {
  for (const char *p = groups; p && *p;) {
    while (*p == ' ') p++;
    size_t w = strcspn(p, " ");
    if (w && w < cap) {
      memcpy(buf, p, w);
      buf[w] = 0;
      if (in_words(buf, name, '|')) return buf;
    }
    p += w;
  }
  return NULL;
}

/* CNODE_FOO_BAR for foo-bar; false when the name does not fit. */
static bool var_name(const char *opt, char *out, size_t cap) {
  int k = snprintf(out, cap, "CNODE_%s", opt);
  if (k < 0 || (size_t)k >= cap) return false;
  for (char *p = out + 6; *p; p++) *p = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
  return true;
}

static int opt_index(const struct option *opts, const char *name) {
  for (int i = 0; opts[i].name; i++)
    if (!strcmp(opts[i].name, name)) return i;
  return -1;
}

/* True when the command line gives name or another option of its exclusive group. */
static bool given_or_group(const struct option *opts, const bool *given, const env_rules *r, const char *name) {
  int i = opt_index(opts, name);
  if (i >= 0 && given[i]) return true;
  char g[256];
  if (!group_of(r->exclusive, name, g, sizeof g)) return false;
  for (int j = 0; opts[j].name; j++)
    if (given[j] && in_words(g, opts[j].name, '|')) return true;
  return false;
}

/* Adds "--opt=value" (value NULL: "--opt") from variable var; false when out of room or memory. */
static bool inject(const char *opt, const char *value, size_t vlen, const char *var) {
  if (ninj == MAX_INJECTED) return false;
  size_t len = strlen(opt) + vlen + 4;
  char *a = malloc(len);
  if (!a) return false;
  if (value) snprintf(a, len, "--%s=%.*s", opt, (int)vlen, value);
  else snprintf(a, len, "--%s", opt);
  inj[ninj].arg = a;
  snprintf(inj[ninj].var, sizeof inj[ninj].var, "%s", var);
  ninj++;
  return true;
}

static bool was_injected(const char *opt) {
  size_t k = strlen(opt);
  for (size_t i = 0; i < ninj; i++)
    if (!strncmp(inj[i].arg + 2, opt, k) && (inj[i].arg[2 + k] == '=' || !inj[i].arg[2 + k])) return true;
  return false;
}

/* A switch's variable: 1 (true, 1, yes, on), 0 (false, 0, no, off), -1 for anything else. */
static int switch_value(const char *v) {
  static const char *const yes[] = {"true", "1", "yes", "on"}, *const no[] = {"false", "0", "no", "off"};
  for (size_t i = 0; i < 4; i++) {
    if (!strcasecmp(v, yes[i])) return 1;
    if (!strcasecmp(v, no[i])) return 0;
  }
  return -1;
}

static int from_variable(const struct option *o, const env_rules *r, const char *var, const char *v) {
  if (o->has_arg == no_argument) {
    int on = switch_value(v);
    if (on < 0) {
      fprintf(stderr, "cnode: %s=%s: expected true or false (also 1/0, yes/no, on/off)\n", var, v);
      return 2;
    }
    return !on || inject(o->name, NULL, 0, var) ? 0 : 1;
  }
  if (!in_words(r->repeatable, o->name, ' ')) return inject(o->name, v, strlen(v), var) ? 0 : 1;
  for (const char *p = v; *p;) {
    p += strspn(p, " \t\r\n");
    size_t w = strcspn(p, " \t\r\n");
    if (w && !inject(o->name, p, w, var)) return 1;
    p += w;
  }
  return 0;
}

/* RELEASE_NODE (as --name or --sname by RELEASE_DISTRIBUTION, default sname as mix release) and RELEASE_COOKIE,
 * when neither flags nor CNODE_* variables set them. */
static int release_fallbacks(const struct option *opts, const bool *given, const env_rules *r) {
  const char *node = getenv("RELEASE_NODE"), *dist = getenv("RELEASE_DISTRIBUTION"), *cookie = getenv("RELEASE_COOKIE");
  if (dist && *dist && strcmp(dist, "name") && strcmp(dist, "sname")) {
    fprintf(stderr, "cnode: RELEASE_DISTRIBUTION=%s: expected name or sname (cnode always runs distributed)\n", dist);
    return 2;
  }
  bool named = given_or_group(opts, given, r, "name") || was_injected("name") || was_injected("sname");
  if (node && *node && !named &&
      !inject(dist && !strcmp(dist, "name") ? "name" : "sname", node, strlen(node), "RELEASE_NODE"))
    return 1;
  bool cookied = given_or_group(opts, given, r, "cookie") || was_injected("cookie") || was_injected("cookie-file");
  if (cookie && *cookie && !cookied && !inject("cookie", cookie, strlen(cookie), "RELEASE_COOKIE")) return 1;
  return 0;
}

int env_args(int argc, char **argv, const struct option *opts, const env_rules *r, int *out_argc, char ***out_argv) {
  int nopts = 0;
  while (opts[nopts].name) nopts++;
  atexit(env_free);
  bool *given = calloc((size_t)nopts + 1, sizeof *given);
  if (!given) return 1;
  /* What the command line gives: a quiet pass of the same parser, so abbreviations count as getopt reads them. */
  opterr = 0;
  optind = 0;
  int li = -1, c;
  while ((c = getopt_long(argc, argv, "h", opts, &li)) != -1) {
    if (c != '?' && c != ':' && li >= 0) given[li] = true;
    li = -1;
  }
  opterr = 1;
  optind = 0;
  int rc = 0;
  for (int i = 0; !rc && i < nopts; i++) {
    char var[NAME_MAX_LEN];
    if (in_words(r->skip, opts[i].name, ' ') || given_or_group(opts, given, r, opts[i].name)) continue;
    const char *v = var_name(opts[i].name, var, sizeof var) ? getenv(var) : NULL;
    if (v && *v) rc = from_variable(&opts[i], r, var, v);
  }
  if (!rc) rc = release_fallbacks(opts, given, r);
  free(given);
  if (rc == 1) fprintf(stderr, "cnode: out of memory reading the environment\n");
  if (rc) return rc;
  vec = calloc((size_t)argc + ninj + 1, sizeof *vec);
  if (!vec) return 1;
  int k = 0;
  vec[k++] = argv[0];
  for (size_t i = 0; i < ninj; i++) vec[k++] = inj[i].arg;
  for (int i = 1; i < argc; i++) vec[k++] = argv[i];
  *out_argc = k;
  *out_argv = vec;
  return 0;
}

const char *env_where(const char *flag, const char *value) {
  static char buf[1200];
  for (size_t i = 0; value && i < ninj; i++) {
    const char *a = inj[i].arg;
    if (value >= a && value < a + strlen(a) + 1) {
      snprintf(buf, sizeof buf, "%s=%.1000s", inj[i].var, value);
      return buf;
    }
  }
  snprintf(buf, sizeof buf, "--%s%s%.1000s", flag, value ? " " : "", value ? value : "");
  return buf;
}

int env_bad(const char *flag, const char *value, const char *expected) {
  fprintf(stderr, "cnode: %s: expected %s\n", env_where(flag, value), expected);
  return 2;
}

bool env_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out) {
  if (!s || !*s || strlen(s) > 10) return false;
  unsigned long v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9') return false;
    v = v * 10 + (unsigned long)(*p - '0');
  }
  if (v < min || v > max) return false;
  *out = v;
  return true;
}
