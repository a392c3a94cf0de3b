/* bench_rss.h: the resident set of another process, for the memory benchmarks (conn_mem.c, tls_mem.c). */
#ifndef BENCH_RSS_H
#define BENCH_RSS_H

#include <stdio.h>

/* VmRSS of process pid (a decimal string) in KiB, from /proc/PID/status; -1 when it cannot be read. */
static inline long vmrss_kib(const char *pid) {
  char path[64], line[256];
  long kib = -1;
  snprintf(path, sizeof path, "/proc/%s/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld", &kib) == 1) break;
  fclose(f);
  return kib;
}

#endif
