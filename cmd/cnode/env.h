/* env.h: the cnode program's configuration from the environment: every long option --foo-bar of the option table
 * also reads CNODE_FOO_BAR (flags given on the command line win), the Elixir release's RELEASE_NODE, RELEASE_COOKIE
 * and RELEASE_DISTRIBUTION are fallbacks, and a bad value of either kind is reported by name (env_bad). */
#ifndef CNODE_ENV_H
#define CNODE_ENV_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

/* What the table cannot say about its options. */
typedef struct env_rules {
  const char *skip;       /* space-separated option names with no variable ("help version") */
  const char *repeatable; /* options that may be given many times: their variable holds values separated by
                             whitespace ("horde-registry horde-supervisor") */
  const char *exclusive;  /* groups of options that exclude each other, groups separated by spaces and names by
                             '|' ("name|sname cookie|cookie-file"): one given on the command line hides the
                             variables of the whole group */
} env_rules;

/* Builds the argument vector to parse (freed at exit): argv[0], then a "--opt=value" (or "--opt") for every set, non-empty
 * variable whose option (or group) the command line does not give, then the RELEASE_* fallbacks, then argv[1..].
 * 0 and *out_argc, *out_argv (owned by env.c until exit), or 2 after printing one line naming a variable with a
 * bad value (a switch that is not true/false, RELEASE_DISTRIBUTION not name/sname). Resets getopt (optind = 0). */
int env_args(int argc, char **argv, const struct option *opts, const env_rules *rules, int *out_argc, char ***out_argv);

/* How a value is named in messages: "CNODE_TICKTIME=soon" when value came from a variable (value must be the
 * optarg getopt gave), else "--ticktime soon". Static storage, overwritten by the next call. */
const char *env_where(const char *flag, const char *value);
/* Prints "cnode: <env_where>: expected <expected>" on stderr and returns 2 (the exit status of a bad value). */
int env_bad(const char *flag, const char *value, const char *expected);
/* A whole decimal number in min..max (no sign, no blanks): true and *out. */
bool env_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out);

#endif
