/* horde_sup.c: the cnode program's Horde.DynamicSupervisor members (--horde-supervisor). Placeholder until the
 * supervisor lands: it refuses the flag. */
#include "horde_app.h"

int hsup_add(const char *name) {
  (void)name;
  return -1;
}
int hsup_start(cn_node *n) {
  (void)n;
  return 0;
}
void hsup_shutdown(cn_node *n, void (*done)(void *ctx), void *ctx) {
  (void)n;
  done(ctx);
}
cn_term *hsup_ctl(cn_proc *self, cn_pid from, const cn_term *ref, const char *op, const cn_term *cmd, bool *handled) {
  (void)self;
  (void)from;
  (void)ref;
  (void)op;
  (void)cmd;
  *handled = false;
  return NULL;
}
