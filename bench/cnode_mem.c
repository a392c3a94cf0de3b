/* cnode_mem.c: memory per idle C process. Creates a node (not started: spawning needs no network), spawns
 * COUNT processes with an empty handler and prints the resident-set growth per process:
 *   cnode_mem COUNT   ->   "procs=COUNT rss_delta_kib=K bytes_per_proc=B" */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cnode.h"

static long rss_bytes(void) {
  long size = 0, res = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) return -1;
  if (fscanf(f, "%ld %ld", &size, &res) != 2) res = -1;
  fclose(f);
  return res * sysconf(_SC_PAGESIZE);
}

static void idle(cn_proc *self, const cn_term *msg, void *state) { (void)self, (void)msg, (void)state; }

int main(int argc, char **argv) {
  long count = argc > 1 ? atol(argv[1]) : 1000000;
  cn_node_opts o = {.name = "mem@127.0.0.1", .cookie = "x", .log_level = CN_LOG_WARN};
  cn_node *n = NULL;
  int rc = cn_node_new(&n, NULL, &o);
  if (rc) {
    fprintf(stderr, "cnode_mem: %s\n", cn_strerror(rc));
    return 1;
  }
  long before = rss_bytes();
  for (long i = 0; i < count; i++) {
    if ((rc = cn_spawn(n, idle, NULL, NULL, NULL))) {
      fprintf(stderr, "cnode_mem: spawn %ld: %s\n", i, cn_strerror(rc));
      return 1;
    }
  }
  long after = rss_bytes();
  printf("procs=%ld rss_delta_kib=%ld bytes_per_proc=%.1f\n", count, (after - before) / 1024,
         (double)(after - before) / (double)count);
  /* The node is dropped with the process: freeing a million processes one by one is not what is measured. */
  return 0;
}
