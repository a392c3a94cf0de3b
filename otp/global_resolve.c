/* global_resolve.c: name clashes resolved as OTP's global resolves them. The node that resolves a clash found
 * while two partitions join asks the holder's node to run global:resolve_it(Method, Name, Pid1, Pid2) (an rpc), so
 * this node serves that function (cn_register_function) for its own holders, and runs the same code when it is the
 * resolver. Method is the fun given at registration: global:random_exit_name/3 (OTP's default, and what C
 * registrations carry), random_notify_name/3 and notify_all_name/3 run as in OTP; any other fun cannot run here and
 * gets the default. */
#include <string.h>

#include "global_int.h"

cn_term *gl_method(cn_node *n, const char *fun) {
  /* fun global:Fun/3 in the external format: EXPORT_EXT, the two atoms (SMALL_ATOM_UTF8_EXT), SMALL_INTEGER_EXT 3 */
  size_t fl = strlen(fun);
  if (fl > 200) return NULL;
  uint8_t b[256] = {131, 113, 119, 6, 'g', 'l', 'o', 'b', 'a', 'l', 119, (uint8_t)fl};
  memcpy(b + 12, fun, fl);
  b[12 + fl] = 97;
  b[13 + fl] = 3;
  cn_term *t = NULL;
  return cn_term_from_binary(cn_node_atoms(n), b, 14 + fl, NULL, &t) ? NULL : t;
}

static bool is_method(cn_node *n, const cn_term *method, const char *fun) {
  if (!method || method->type != CN_FUN) return false;
  cn_term *m = gl_method(n, fun);
  bool same = m && cn_term_exact_eq(method, m); /* funs compare by module, name and arity, whatever the encoding */
  cn_term_free(m);
  return same;
}

static void conflict(cn_node *n, cn_proc *self, cn_pid to, const cn_term *name, const cn_pid *other) {
  cn_term *msg = other ? cn_mk_tuple(3, cn_mk_atomc(n, "global_name_conflict"), cn_term_copy(name), cn_mk_pid(*other))
                       : cn_mk_tuple(2, cn_mk_atomc(n, "global_name_conflict"), cn_term_copy(name));
  if (msg) cn_send(n, self, to, msg);
  cn_term_free(msg);
}

bool gl_resolve(cn_node *n, cn_proc *self, const cn_term *method, const cn_term *name, cn_pid p1, cn_pid p2,
                cn_pid *winner) {
  if (is_method(n, method, "notify_all_name")) {
    conflict(n, self, p1, name, &p2);
    conflict(n, self, p2, name, &p1);
    return false;
  }
  /* minmax/2: by the pids' node names */
  bool p1_min = gl_atom_cmp(p1.node, p2.node) < 0;
  cn_pid min = p1_min ? p1 : p2, max = p1_min ? p2 : p1;
  if (is_method(n, method, "random_notify_name")) {
    conflict(n, self, max, name, NULL);
  } else {
    char *txt = cn_term_to_string(name);
    cn_log(n, CN_LOG_INFO, "global: Name conflict terminating {%s,<%s.%u.%u>}", txt ? txt : "?", max.node->name, max.id,
           max.serial);
    cn_free(txt);
    cn_term kill = cn_tv_atom(cn_intern(n, "kill"));
    cn_exit(n, self, max, &kill);
  }
  *winner = min;
  return true;
}

/* global:resolve_it(Method, Name, Pid1, Pid2), as an rpc from the resolving node: the winner's pid, or none. */
static cn_term *resolve_it(cn_node *n, const cn_term *argv, uint32_t argc, bool *badarg, void *ctx) {
  (void)ctx;
  if (argc != 4 || argv[2].type != CN_PID || argv[3].type != CN_PID) {
    *badarg = true;
    return NULL;
  }
  cn_pid winner;
  return gl_resolve(n, NULL, &argv[0], &argv[1], argv[2].v.pid, argv[3].v.pid, &winner) ? cn_mk_pid(winner)
                                                                                        : cn_mk_atomc(n, "none");
}

int gl_resolve_serve(cn_node *n) {
  int rc = cn_register_function(n, "global", "resolve_it", 4, resolve_it, NULL);
  return rc == CN_EEXIST ? 0 : rc;
}
