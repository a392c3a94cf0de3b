/* fun.c: the one reader of a fun's raw external format (EXPORT_EXT, NEW_FUN_EXT), for term order, phash2 and
 * printing. The bytes were validated when the fun was decoded; this only finds the fields. */
#include <string.h>

#include <ei.h>

#include "term_int.h"

static int fun_atom(const uint8_t *b, size_t len, size_t *p, const uint8_t **s, size_t *n, int *utf8) {
  if (*p >= len) return CN_EDECODE;
  uint8_t tag = b[*p];
  size_t hdr;
  if (tag == ERL_ATOM_EXT || tag == ERL_ATOM_UTF8_EXT) hdr = 3;
  else if (tag == ERL_SMALL_ATOM_EXT || tag == ERL_SMALL_ATOM_UTF8_EXT) hdr = 2;
  else return CN_EDECODE;
  if (hdr > len - *p) return CN_EDECODE;
  size_t k = hdr == 3 ? cn_get16(b + *p + 1) : b[*p + 1];
  if (k > len - *p - hdr) return CN_EDECODE;
  *s = b + *p + hdr;
  *n = k;
  *utf8 = tag == ERL_ATOM_UTF8_EXT || tag == ERL_SMALL_ATOM_UTF8_EXT;
  *p += hdr + k;
  return 0;
}

static int fun_int(const uint8_t *b, size_t len, size_t *p, uint32_t *out) {
  if (*p + 2 <= len && b[*p] == ERL_SMALL_INTEGER_EXT) {
    *out = b[*p + 1];
    *p += 2;
    return 0;
  }
  if (*p + 5 <= len && b[*p] == ERL_INTEGER_EXT) {
    *out = cn_get32(b + *p + 1);
    *p += 5;
    return 0;
  }
  return CN_EDECODE;
}

int term_fun_id_get(const cn_term *t, term_fun_id *id) {
  memset(id, 0, sizeof *id);
  if (t->type != CN_FUN || t->v.fun.len < 1) return CN_EDECODE;
  const uint8_t *b = t->v.fun.ext;
  size_t len = t->v.fun.len, p = 1;
  if (b[0] == ERL_EXPORT_EXT) {
    id->is_export = 1;
    if (fun_atom(b, len, &p, &id->mod, &id->mod_len, &id->mod_utf8) ||
        fun_atom(b, len, &p, &id->fun, &id->fun_len, &id->fun_utf8) || fun_int(b, len, &p, &id->arity))
      return CN_EDECODE;
    return 0;
  }
  /* NEW_FUN_EXT: tag, Size, Arity, Uniq[16], Index, NumFree, Module, OldIndex, OldUniq, Pid, FreeVars. */
  if (b[0] != ERL_NEW_FUN_EXT || len < 30) return CN_EDECODE;
  id->arity = b[5];
  id->index = cn_get32(b + 22);
  id->num_free = cn_get32(b + 26);
  p = 30;
  const uint8_t *node;
  size_t node_len;
  int node_utf8;
  if (fun_atom(b, len, &p, &id->mod, &id->mod_len, &id->mod_utf8) || fun_int(b, len, &p, &id->old_index) ||
      fun_int(b, len, &p, &id->old_uniq) || p >= len)
    return CN_EDECODE;
  uint8_t ptag = b[p++];
  if ((ptag != ERL_NEW_PID_EXT && ptag != ERL_PID_EXT) || fun_atom(b, len, &p, &node, &node_len, &node_utf8))
    return CN_EDECODE;
  size_t rest = ptag == ERL_NEW_PID_EXT ? 12 : 9;
  if (rest > len - p) return CN_EDECODE;
  id->env_off = p + rest;
  return 0;
}

int term_fun_env(const cn_term *t, const term_fun_id *id, cn_atoms *tab, cn_term **env) {
  *env = NULL;
  if (id->num_free > t->v.fun.len) /* each free variable takes at least one byte */
    return CN_EDECODE;
  cn_term **vars = cn_calloc(id->num_free ? id->num_free : 1, sizeof *vars);
  if (!vars) return CN_ENOMEM;
  size_t off = id->env_off;
  int r = 0;
  uint32_t i = 0;
  for (; i < id->num_free && !r; i++) r = cn_term_decode(tab, t->v.fun.ext, t->v.fun.len, &off, NULL, &vars[i]);
  if (r) {
    for (uint32_t k = 0; k < i; k++) cn_term_free(vars[k]);
    cn_free(vars);
    return r;
  }
  *env = cn_mk_tuplev(id->num_free, vars); /* takes the elements, even on failure */
  cn_free(vars);
  return *env ? 0 : CN_ENOMEM;
}
