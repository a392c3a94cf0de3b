/* phash2_bench.c: erlang:phash2/2 throughput of libcnode on the terms of a hex file (one term_to_binary
 * result per line), for bench/phash2.sh. Prints `terms_per_s checksum` (the checksum is the sum of
 * phash2(T, 2^32) over one pass, so the BEAM side can confirm the same answers). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cn_term.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int hexval(int c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: phash2_bench TERMS.hex SECONDS\n");
    return 2;
  }
  FILE *f = fopen(argv[1], "r");
  if (!f) return 1;
  cn_atoms *tab;
  if (cn_atoms_new(&tab, 0)) return 1;
  size_t n = 0, cap = 1024;
  cn_term **terms = malloc(cap * sizeof *terms);
  char *line = NULL;
  size_t lcap = 0;
  ssize_t len;
  while ((len = getline(&line, &lcap, f)) > 0) {
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
    if (len < 2) continue;
    size_t bn = (size_t)len / 2;
    uint8_t *b = malloc(bn);
    for (size_t i = 0; i < bn; i++) b[i] = (uint8_t)(hexval(line[2 * i]) << 4 | hexval(line[2 * i + 1]));
    if (n == cap) terms = realloc(terms, (cap *= 2) * sizeof *terms);
    if (cn_term_from_binary(tab, b, bn, NULL, &terms[n]) != 0) {
      fprintf(stderr, "bad term on line %zu\n", n + 1);
      return 1;
    }
    n++;
    free(b);
  }
  free(line);
  fclose(f);
  unsigned long long sum = 0;
  for (size_t i = 0; i < n; i++) sum += cn_phash2_range(terms[i], UINT64_C(1) << 32);
  double secs = atof(argv[2]), t0 = now_s(), t;
  unsigned long long done = 0, sink = 0;
  do {
    for (size_t i = 0; i < n; i++) sink += cn_phash2_range(terms[i], UINT64_C(1) << 32);
    done += n;
  } while ((t = now_s()) - t0 < secs);
  fprintf(stderr, "c fold %llu\n", sink); /* uses every hash, so no call can be dropped */
  printf("%.0f %llu\n", (double)done / (t - t0), sum);
  for (size_t i = 0; i < n; i++) cn_term_free(terms[i]);
  free(terms);
  cn_atoms_free(tab);
  return 0;
}
