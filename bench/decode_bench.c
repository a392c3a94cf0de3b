/* decode_bench.c: the receive path's decoding cost (issue 7). Decodes and frees N messages, each the control
 * term {6, Pid, '', sink} followed by the payload {seq, Seq, <<64 bytes>>}, in batches of B messages decoded
 * before any is freed (a 64 KiB read holds ~700 of them), with and without a per-connection atom cache.
 * Prints ns/message for each mode. For instructions: valgrind --tool=callgrind --toggle-collect=bench_run
 * build/bench/decode_bench [N] [B] [mode: 0 both, 1 no cache, 2 cache]; Ir / N is instructions/message.
 * Build: cc -O2 -Iterm -Ibase bench/decode_bench.c BUILD/libcnode.a -L$EI/lib -lei -lpthread -lm
 * Note: with glibc's default trim threshold, freeing a whole batch of one-block terms (no fastbin-sized
 * pieces left between them) coalesces into the heap top and is trimmed each batch (page faults dominate);
 * compare with GLIBC_TUNABLES=glibc.malloc.trim_threshold=100000000 to see the decoder alone. */
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

#ifdef CN_ATOM_CACHE_API
typedef cn_atom_cache cache_t;
#else
typedef void cache_t;
#endif

/* Decodes n messages of buf (offsets in offs) in batches; returns the number of failures. */
__attribute__((noinline)) long bench_run(cn_atoms *tab, const uint8_t *buf, size_t len, size_t n, size_t batch,
                                         cache_t *cache, cn_term **held) {
  cn_decode_opts o = {.atom_limit = 0};
#ifdef CN_ATOM_CACHE_API
  o.cache = cache;
#else
  (void)cache;
#endif
  long bad = 0;
  size_t off = 0;
  for (size_t done = 0; done < n;) {
    size_t k = n - done < batch ? n - done : batch;
    for (size_t i = 0; i < k; i++) {
      if (off >= len) off = 0;
      if (cn_term_decode(tab, buf, len, &off, &o, &held[2 * i]) ||
          cn_term_decode(tab, buf, len, &off, &o, &held[2 * i + 1]))
        bad++;
    }
    for (size_t i = 0; i < 2 * k; i++) {
      cn_term_free(held[i]);
      held[i] = NULL;
    }
    done += k;
  }
  return bad;
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
  size_t batch = argc > 2 ? strtoul(argv[2], NULL, 10) : 700;
  int mode = argc > 3 ? atoi(argv[3]) : 0;
  cn_atoms *tab;
  if (cn_atoms_new(&tab, 0)) return 1;
  /* One distinct copy per message of a batch, so the bytes are read as a socket buffer would be. */
  cn_buf out = {0};
  uint8_t pay[64];
  for (int i = 0; i < 64; i++) pay[i] = (uint8_t)i;
  for (size_t i = 0; i < batch; i++) {
    cn_pid pid = {cn_atoms_get(tab, "bench@127.0.0.1"), 40 + (uint32_t)i, 0, 3};
    cn_term *ctl = cn_mk_tuple(4, cn_mk_int(6), cn_mk_pid(pid), cn_mk_atom(cn_atoms_get(tab, "")),
                               cn_mk_atom(cn_atoms_get(tab, "sink")));
    cn_term *msg = cn_mk_tuple(3, cn_mk_atom(cn_atoms_get(tab, "seq")), cn_mk_int((int64_t)i * 1000),
                               cn_mk_binary(pay, sizeof pay));
    if (!ctl || !msg || cn_term_encode(ctl, &out) || cn_term_encode(msg, &out)) return 1;
    cn_term_free(ctl);
    cn_term_free(msg);
  }
  cn_term **held = calloc(2 * batch, sizeof *held);
  if (!held) return 1;
  for (int m = 1; m <= 2; m++) {
    if (mode && mode != m) continue;
    cache_t *cache = NULL;
#ifdef CN_ATOM_CACHE_API
    if (m == 2 && !(cache = cn_atom_cache_new(0))) return 1;
#else
    if (m == 2) continue;
#endif
    double t0 = now_s();
    long bad = bench_run(tab, out.data, out.len, n, batch, cache, held);
    double t1 = now_s();
    printf("%-8s %zu messages (batch %zu, %zu bytes each): %.1f ns/message%s\n", m == 1 ? "no-cache" : "cache", n,
           batch, out.len / batch, (t1 - t0) * 1e9 / (double)n, bad ? " (DECODE FAILURES)" : "");
#ifdef CN_ATOM_CACHE_API
    cn_atom_cache_free(cache);
#endif
  }
  free(held);
  cn_buf_free(&out);
  cn_atoms_free(tab);
  return 0;
}
