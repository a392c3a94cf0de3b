/* testutil.c: guard-page inputs, hex parsing and the vectors folder for unit tests. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

uint8_t *guard_copy(const void *data, size_t len) {
  size_t ps = page_size();
  size_t pages = (len + ps - 1) / ps + 1;
  uint8_t *base = mmap(NULL, pages * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return NULL;
  mprotect(base + (pages - 1) * ps, ps, PROT_NONE);
  uint8_t *p = base + (pages - 1) * ps - len;
  if (len) memcpy(p, data, len);
  return p;
}

void guard_free(uint8_t *p, size_t len) {
  size_t ps = page_size();
  size_t pages = (len + ps - 1) / ps + 1;
  uint8_t *base = p + len - (pages - 1) * ps;
  munmap(base, pages * ps);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

long hex_decode(const char *hex, uint8_t **out) {
  size_t n = strlen(hex);
  if (n % 2) return -1;
  uint8_t *b = malloc(n / 2 + 1);
  if (!b) return -1;
  for (size_t i = 0; i < n / 2; i++) {
    int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      free(b);
      return -1;
    }
    b[i] = (uint8_t)(hi << 4 | lo);
  }
  *out = b;
  return (long)(n / 2);
}

const char *vectors_dir(void) {
  const char *d = getenv("CN_VECTORS_DIR");
  return d && *d ? d : "../shared/vectors";
}
