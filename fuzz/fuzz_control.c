/* fuzz_control.c: a message body as conn_io.c sees it after the header: the control term, checked by
 * dist_ctl_parse, then for operations that carry one the payload term. A leading 131 (pass-through bodies
 * version each term) is skipped before either term. */
#include <string.h>

#include "control.h"
#include "fuzz.h"

static bool is_pid(const cn_term *t) { return t && t->type == CN_PID; }

/* What the runtime's dispatch reads without further checks: each field it uses is where parse said. */
static void check_ctl(const cn_term *ctl, const dist_ctl *c) {
  FUZZ_CHECK(ctl->type == CN_TUPLE && ctl->v.tuple.arity >= 1 && ctl->v.tuple.e[0].type == CN_INT);
  FUZZ_CHECK(c->op == ctl->v.tuple.e[0].v.i && strcmp(dist_op_name(c->op), "?") != 0);
  const cn_term *lo = ctl->v.tuple.e, *hi = lo + ctl->v.tuple.arity;
  const cn_term *fields[] = {c->from,  c->to,  c->name, c->ref, c->reason, c->id,
                             c->token, c->mfa, c->opts, c->gl,  c->flags,  c->result};
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
    FUZZ_CHECK(!fields[i] || (fields[i] > lo && fields[i] < hi)); /* borrowed from the tuple, never the op */
  switch (c->op) {
  case DOP_SEND:
  case DOP_SEND_TT: FUZZ_CHECK(is_pid(c->to)); break;
  case DOP_REG_SEND:
  case DOP_REG_SEND_TT: FUZZ_CHECK(is_pid(c->from) && c->name && c->name->type == CN_ATOM); break;
  case DOP_MONITOR_P:
  case DOP_DEMONITOR_P:
  case DOP_MONITOR_P_EXIT:
  case DOP_PAYLOAD_MONITOR_P_EXIT: FUZZ_CHECK(c->from && c->to && c->ref && c->ref->type == CN_REF); break;
  case DOP_SPAWN_REQUEST:
  case DOP_SPAWN_REQUEST_TT:
    FUZZ_CHECK(is_pid(c->from) && c->id && c->id->type == CN_REF && c->mfa && c->opts && c->gl);
    break;
  case DOP_ALIAS_SEND:
  case DOP_ALIAS_SEND_TT: FUZZ_CHECK(is_pid(c->from) && c->ref && c->ref->type == CN_REF); break;
  case DOP_SPAWN_REPLY:
  case DOP_SPAWN_REPLY_TT: FUZZ_CHECK(is_pid(c->to) && c->id && c->flags && c->result); break;
  case DOP_UNLINK_ID:
  case DOP_UNLINK_ID_ACK: FUZZ_CHECK(is_pid(c->from) && is_pid(c->to) && c->id); break;
  case DOP_NODE_LINK: break;
  case DOP_ALTACT_SIG_SEND:
    /* Exactly one addressing field, of the type its flag says; the token only with its bit. */
    FUZZ_CHECK(is_pid(c->from) && c->flags && !(c->altact & ~(unsigned)DIST_ALTACT_KNOWN));
    FUZZ_CHECK(!!c->to + !!c->name + !!c->ref == 1);
    FUZZ_CHECK(c->ref    ? c->ref->type == CN_REF && (c->altact & DIST_ALTACT_ALIAS)
               : c->name ? c->name->type == CN_ATOM && (c->altact & DIST_ALTACT_NAME)
                         : is_pid(c->to));
    FUZZ_CHECK(!!c->token == !!(c->altact & DIST_ALTACT_TOKEN));
    break;
  default: FUZZ_CHECK(is_pid(c->from) && is_pid(c->to)); break;
  }
  if (c->op == DOP_EXIT || c->op == DOP_EXIT2 || c->op == DOP_EXIT_TT || c->op == DOP_EXIT2_TT ||
      c->op == DOP_MONITOR_P_EXIT)
    FUZZ_CHECK(c->reason != NULL);
  if (c->op == DOP_SEND_TT || c->op == DOP_EXIT_TT || c->op == DOP_REG_SEND_TT || c->op == DOP_EXIT2_TT ||
      c->op == DOP_SEND_SENDER_TT || c->op == DOP_PAYLOAD_EXIT_TT || c->op == DOP_PAYLOAD_EXIT2_TT ||
      c->op == DOP_SPAWN_REQUEST_TT || c->op == DOP_SPAWN_REPLY_TT || c->op == DOP_ALIAS_SEND_TT)
    FUZZ_CHECK(c->token != NULL);
}

int fuzz_control_one(const uint8_t *data, size_t size) {
  cn_atoms *tab;
  if (cn_atoms_new(&tab, 0)) return 0;
  cn_decode_opts opts = {0};
  size_t off = size && data[0] == 131;
  cn_term *ctl = NULL;
  if (cn_term_decode(tab, data, size, &off, &opts, &ctl) == 0) {
    dist_ctl c;
    int rc = dist_ctl_parse(ctl, &c);
    FUZZ_CHECK(rc == 0 || rc == CN_EPROTO || rc == CN_EUNSUPPORTED);
    if (rc == 0) {
      check_ctl(ctl, &c);
      /* conn.c logs the control term of a message it drops; print it as that log line would. */
      char *s = cn_term_to_string(ctl);
      FUZZ_CHECK(s != NULL);
      cn_free(s);
      if (dist_op_has_payload(c.op)) {
        if (off < size && data[off] == 131) off++;
        cn_term *payload = NULL;
        size_t before = off;
        int prc = cn_term_decode(tab, data, size, &off, &opts, &payload);
        if (prc == 0) {
          FUZZ_CHECK(payload && off > before && off <= size);
          cn_term *copy = cn_term_copy(payload);
          FUZZ_CHECK(copy && cn_term_exact_eq(copy, payload));
          cn_term_free(copy);
          cn_term_free(payload);
        } else {
          FUZZ_CHECK(!payload && off == before);
        }
      }
    }
    cn_term_free(ctl);
  } else {
    FUZZ_CHECK(ctl == NULL);
  }
  cn_atoms_free(tab);
  return 0;
}

FUZZ_ENTRY(fuzz_control_one)
