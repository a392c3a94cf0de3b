/* cn_term.h: Erlang terms in C: interned atoms, the term value model, the external term format codec
 * (through ei) and printing in Erlang syntax. Public: cnode.h includes it. No I/O here. */
#ifndef CN_TERM_H
#define CN_TERM_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cn_base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Atoms ---------------------------------------------------------------------------------------- */

/* An atom (and so a node name, a registered name) is at most 255 characters, which in UTF-8 is up to 1,020
 * bytes: a buffer for an atom's text needs CN_ATOM_MAX_BYTES + 1 bytes, not 256. */
#define CN_ATOM_MAX_CHARS 255
#define CN_ATOM_MAX_BYTES (CN_ATOM_MAX_CHARS * 4)

/* An interned atom. Entries live as long as their table and never move, so atoms of one table compare
 * by pointer. The text is UTF-8 and NUL-terminated; len counts bytes (at most 255 characters). */
typedef struct cn_atom {
  uint32_t len;
  uint32_t hash; /* table-internal hash of the text */
  char name[];
} cn_atom;

/* A table of interned atoms. Thread-safe: interning takes an internal mutex. */
typedef struct cn_atoms cn_atoms;

/* Creates a table that holds at most max_atoms atoms (0: no limit). *out is freed with cn_atoms_free. */
CN_EXPORT int cn_atoms_new(cn_atoms **out, size_t max_atoms);
/* Frees the table and every atom in it; terms that point to them must be freed first. */
CN_EXPORT void cn_atoms_free(cn_atoms *tab);
/* Interns len bytes of UTF-8 text. Returns the atom or NULL (invalid UTF-8, more than 255 characters,
 * table full: cn_atoms_intern_status says which). */
CN_EXPORT const cn_atom *cn_atoms_intern(cn_atoms *tab, const char *utf8, size_t len);
/* Interns a NUL-terminated string; as cn_atoms_intern. */
CN_EXPORT const cn_atom *cn_atoms_get(cn_atoms *tab, const char *utf8);
/* Finds an existing atom without creating one; NULL when absent. */
CN_EXPORT const cn_atom *cn_atoms_find(cn_atoms *tab, const char *utf8, size_t len);
/* Number of atoms in the table. */
CN_EXPORT size_t cn_atoms_count(cn_atoms *tab);
/* How many interns were refused because the table was full (a counter for operations). */
CN_EXPORT uint64_t cn_atoms_refused(cn_atoms *tab);
/* As cn_atoms_intern, with the reason as the status: 0 and *out the atom; else *out NULL and CN_EDECODE (invalid
 * UTF-8 or more than 255 characters), CN_ELIMIT (table full), CN_ENOMEM or CN_EINVAL. */
CN_EXPORT int cn_atoms_intern_status(cn_atoms *tab, const char *utf8, size_t len, const cn_atom **out);

/* ---- Identifiers (small values passed by value) ----------------------------------------------------- */

/* A pid, port or ref names its node by an atom of the table its term belongs to: a term for a node is built
 * with that node's atoms (cn_intern), and an identifier taken from another table is re-interned first. */

typedef struct cn_pid {
  const cn_atom *node;
  uint32_t id;
  uint32_t serial;
  uint32_t creation;
} cn_pid;

typedef struct cn_port {
  const cn_atom *node;
  uint64_t id;
  uint32_t creation;
} cn_port;

#define CN_REF_MAX_WORDS 5
typedef struct cn_ref {
  const cn_atom *node;
  uint32_t creation;
  uint32_t len; /* 1..5 words used in n[] */
  uint32_t n[CN_REF_MAX_WORDS];
} cn_ref;

/* Exact equality (=:=) of two pids / two refs of one atom table: node, creation and every number. */
CN_EXPORT bool cn_pid_eq(cn_pid a, cn_pid b);
CN_EXPORT bool cn_ref_eq(const cn_ref *a, const cn_ref *b);

/* ---- Terms -------------------------------------------------------------------------------------------- */

/* Term types, numbered in Erlang term order (number < atom < reference < fun < port < pid < tuple < map <
 * nil < list < bitstring); the three number types compare as numbers. */
typedef enum cn_type {
  CN_INT = 1,   /* fits int64_t */
  CN_BIG = 2,   /* integer outside int64_t */
  CN_FLOAT = 3, /* IEEE double */
  CN_ATOM = 4,
  CN_REF = 5,
  CN_FUN = 6, /* export or local fun, kept as its raw external format */
  CN_PORT = 7,
  CN_PID = 8,
  CN_TUPLE = 9,
  CN_MAP = 10,
  CN_NIL = 11,
  CN_LIST = 12,  /* at least one element; tail NULL means proper */
  CN_BINARY = 13 /* binaries and bitstrings */
} cn_type;

typedef struct cn_term cn_term;

/* A term is a tagged value. Compound terms own arrays of child values (not pointers). A decoded term is one
 * allocation (its root, arrays and bytes together; large binaries may point into the input chunk, see
 * cn_decode_opts); built terms and copies own each part separately. Fields
 * are read-only for users: build terms with cn_mk_* and free roots with cn_term_free. */
struct cn_term {
  uint8_t type;  /* cn_type */
  uint8_t block; /* library-internal: nonzero only on a decoded root, whose whole tree is one allocation */
  union {
    int64_t i;
    struct {
      uint8_t sign; /* 1 when negative */
      uint32_t n;   /* bytes of magnitude, no high zero bytes */
      uint8_t *mag; /* little-endian magnitude, as in the external format */
    } big;
    double f;
    const cn_atom *atom;
    struct {
      size_t size;  /* bytes */
      uint8_t bits; /* bits used in the last byte: 8 for a binary, 1..7 for a bitstring (8 when size 0) */
      uint8_t *data;
      cn_chunk *chunk; /* library-internal: the refcounted storage data lies in, or NULL (zero it in a term
                        * made by hand); a sender writes such bytes from there instead of copying them */
    } bin;
    struct {
      uint32_t arity;
      cn_term *e; /* arity values */
    } tuple;
    struct {
      uint32_t len;  /* >= 1 */
      cn_term *e;    /* len values */
      cn_term *tail; /* NULL for a proper list, else one heap value (not a list or nil) */
    } list;
    struct {
      uint32_t size;
      cn_term *kv; /* 2*size values: key, value, key, value... in the order decoded or built */
    } map;
    cn_pid pid;
    cn_port port;
    cn_ref ref;
    struct {
      size_t len;
      uint8_t *ext; /* the fun's external format, tag byte first; carried intact, never executed */
    } fun;
  } v;
};

/* Constructors. Each returns a new heap root (free with cn_term_free) or NULL on out-of-memory. Terms
 * passed in as children are taken over by the new term, even on failure; a NULL child makes the result
 * NULL (after freeing the other children), so nested constructor calls need one NULL check at the end. */
CN_EXPORT cn_term *cn_mk_int(int64_t v);
/* An integer from sign and little-endian magnitude bytes; normalised to CN_INT when it fits. */
CN_EXPORT cn_term *cn_mk_big(int negative, const uint8_t *mag_le, size_t n);
CN_EXPORT cn_term *cn_mk_float(double v);
/* NULL atom gives NULL. */
CN_EXPORT cn_term *cn_mk_atom(const cn_atom *a);
/* Copies len bytes. From CN_BINARY_CHUNK_MIN bytes on they go to a refcounted chunk of their own (as in a copy
 * of such a binary), which a connection writes from (no second copy into its output; cn_term_encode_ext). */
#define CN_BINARY_CHUNK_MIN ((size_t)64 * 1024)
CN_EXPORT cn_term *cn_mk_binary(const void *data, size_t len);
/* A binary of the len bytes at off in chunk k, no copy: the term takes one more reference to k (the caller keeps
 * its own). The bytes must not change while k is shared. NULL on out-of-memory or when off + len exceeds k. */
CN_EXPORT cn_term *cn_mk_binary_chunk(cn_chunk *k, size_t off, size_t len);
/* Copies size bytes; bits (1..8) used in the last byte. */
CN_EXPORT cn_term *cn_mk_bitstring(const void *data, size_t size, uint8_t bits);
/* A list of small integers: the bytes of s (latin-1), or nil when empty. */
CN_EXPORT cn_term *cn_mk_string(const char *s);
CN_EXPORT cn_term *cn_mk_nil(void);
CN_EXPORT cn_term *cn_mk_tuple(size_t n, ...);
CN_EXPORT cn_term *cn_mk_tuplev(size_t n, cn_term **elems);
/* A proper list of n elements (nil when n == 0). */
CN_EXPORT cn_term *cn_mk_list(size_t n, ...);
/* n elements plus a tail (NULL or nil: proper). A tail that is a list is spliced, so the result is
 * canonical. */
CN_EXPORT cn_term *cn_mk_listv(size_t n, cn_term **elems, cn_term *tail);
/* A map from n key/value pairs: kv[0] key, kv[1] value... */
CN_EXPORT cn_term *cn_mk_map(size_t n, cn_term **kv);
CN_EXPORT cn_term *cn_mk_pid(cn_pid pid);
CN_EXPORT cn_term *cn_mk_port(cn_port port);
CN_EXPORT cn_term *cn_mk_ref(cn_ref ref);

/* Stack views: a term on the caller's stack that borrows its parts (no allocation, nothing to free), for calls
 * that take a borrowed const cn_term * (cn_send, cn_monitor, cn_call...). A tuple view borrows e[0..n-1]. */
static inline cn_term cn_tv_int(int64_t i) {
  cn_term t = {CN_INT, 0, {0}}; /* no designated initializer: C++ includes this header too */
  t.v.i = i;
  return t;
}
static inline cn_term cn_tv_atom(const cn_atom *a) {
  cn_term t = {CN_ATOM, 0, {0}};
  t.v.atom = a;
  return t;
}
static inline cn_term cn_tv_pid(cn_pid p) {
  cn_term t = {CN_PID, 0, {0}};
  t.v.pid = p;
  return t;
}
static inline cn_term cn_tv_ref(cn_ref r) {
  cn_term t = {CN_REF, 0, {0}};
  t.v.ref = r;
  return t;
}
static inline cn_term cn_tv_tuple(cn_term *e, uint32_t n) {
  cn_term t = {CN_TUPLE, 0, {0}};
  t.v.tuple.arity = n;
  t.v.tuple.e = e;
  return t;
}
/* A deep copy (always separately owned parts), or NULL on out-of-memory. */
CN_EXPORT cn_term *cn_term_copy(const cn_term *t);
/* Keeps a term past the call that lent it (a handler's message): for a decoded root (a received message) one
 * more reference to the same immutable term, no copy, its large binaries still pointing into the bytes they
 * arrived in; for any other term, cn_term_copy. Free the result with cn_term_free. NULL on out-of-memory. */
CN_EXPORT cn_term *cn_term_retain(const cn_term *t);
/* Frees a root made by a constructor, a decoder or cn_term_copy; NULL is ignored. A decoded root is freed
 * whole in one step: never free or take over its subterms, only the root (or pass it to a constructor). */
CN_EXPORT void cn_term_free(cn_term *t);

/* Accessor helpers for handlers: each returns false when the term has another shape. */
CN_EXPORT bool cn_is_atom(const cn_term *t, const char *name);
/* The element at index i of a tuple of the given arity, or NULL. */
CN_EXPORT const cn_term *cn_tuple_elem(const cn_term *t, uint32_t arity, uint32_t i);
/* Exact equality, Erlang's =:= as OTP 25/26 define it (0.0 =:= -0.0; cn_term_exact_eq_otp for a given release);
 * atoms compare by text, so tables may differ. False also when memory runs out (see cn_term_compare_checked). */
CN_EXPORT bool cn_term_exact_eq(const cn_term *a, const cn_term *b);

/* ---- External term format ------------------------------------------------------------------------------ */

/* A small direct-mapped cache of encoded atom text -> interned atom, put in front of the table by one decoder
 * at a time (one per connection): a hit costs a hash and a compare, no UTF-8 check and no lock. Not
 * thread-safe; use it from one thread at a time. It binds to the first table it is used with (using it with
 * another table empties it first). Its entries point into that table, so use it only while the table lives. */
typedef struct cn_atom_cache cn_atom_cache;
#define CN_ATOM_CACHE_API 1
/* A cache of up to slots entries (rounded up to a power of two, 1..65536; 0: 256), or NULL on out-of-memory. It
 * starts with 16 (about 300 bytes) and grows, four times at a time, each time its misses reach twice its
 * entries, so a decoder that sees few distinct atoms keeps it small. */
CN_EXPORT cn_atom_cache *cn_atom_cache_new(size_t slots);
/* Frees the cache (not the atoms); NULL is ignored. */
CN_EXPORT void cn_atom_cache_free(cn_atom_cache *c);

typedef struct cn_decode_opts {
  size_t max_depth;     /* nesting limit (0: 1000); deeper input is CN_ELIMIT */
  size_t max_size;      /* limit on bytes of input for one term (0: none) */
  size_t atom_limit;    /* create no atom once the table holds this many (0: only the table's own limit), so
                        input from peers cannot take the atoms a node keeps for itself and new peers' names */
  cn_atom_cache *cache; /* NULL: none; else consulted before the table, filled on misses (see above) */
  cn_chunk *chunk;      /* NULL: copy every binary; else the input lies in this chunk, and binaries of share_min
                         * bytes or more point into it (the term holds a reference, so the chunk lives while the
                         * term does); leave the chunk's bytes unchanged while it is shared */
  size_t share_min;     /* with chunk: the smallest binary shared (0: 512 bytes) */
} cn_decode_opts;

/* Decodes one term body (no version byte) at buf[*off..len). Atoms are interned in tab. Every length is
 * checked against the bytes present before use. On success *off moves past the term and *out is a new
 * root, a single allocation. On error (CN_EDECODE, CN_ETRUNC, CN_ELIMIT, CN_ENOMEM) *out is NULL and *off is
 * unchanged. */
CN_EXPORT int cn_term_decode(cn_atoms *tab, const uint8_t *buf, size_t len, size_t *off, const cn_decode_opts *opts,
                             cn_term **out);
/* As cn_term_decode, but the term is built in the caller's memory mem (cap bytes, aligned for a cn_term) when it
 * fits there, with no allocation: then *out == mem, and the term is the caller's to drop with mem (never
 * cn_term_free it; copy what must outlive mem). Otherwise *out is a new root as cn_term_decode makes. Either way
 * no binary points into opts->chunk. For short-lived terms such as a message's control tuple. */
CN_EXPORT int cn_term_decode_into(cn_atoms *tab, const uint8_t *buf, size_t len, size_t *off,
                                  const cn_decode_opts *opts, void *mem, size_t cap, cn_term **out);
/* Decodes a whole binary_to_term input: version byte 131, one term, nothing after it. */
CN_EXPORT int cn_term_from_binary(cn_atoms *tab, const uint8_t *buf, size_t len, const cn_decode_opts *opts,
                                  cn_term **out);
/* Appends the term's external format without the version byte, as term_to_binary writes it. */
CN_EXPORT int cn_term_encode(const cn_term *t, cn_buf *out);
/* Appends 131 and the term: the bytes of term_to_binary/1. */
CN_EXPORT int cn_term_to_binary(const cn_term *t, cn_buf *out);

/* Encoding with large binaries left out of the buffer (a vectored write sends them from their own bytes). A binary
 * of at least min bytes held in a chunk (bin.chunk: built by cn_mk_binary or cn_mk_binary_chunk, or decoded into a
 * shared chunk) is not copied: its header is appended and fn(ctx, at, k, data, len) is told that its len bytes
 * belong at offset at of out->data (before the byte there, after those before it; offsets increase). k and data are
 * borrowed from the term: retain k to keep them. At most max binaries are left out; later ones are copied. fn
 * returns 0 or a CN_E* code that ends the encoding. */
typedef int (*cn_encode_ext_fn)(void *ctx, size_t at, cn_chunk *k, const uint8_t *data, size_t len);
typedef struct cn_encode_ext {
  size_t min;
  size_t max;
  cn_encode_ext_fn fn;
  void *ctx;
} cn_encode_ext;
/* As cn_term_encode (version 0) or cn_term_to_binary (version 1), leaving large binaries out as ext says (NULL:
 * none). On error out's length is unchanged (fn may have been called for binaries before the failure). */
CN_EXPORT int cn_term_encode_ext(const cn_term *t, cn_buf *out, int version, const cn_encode_ext *ext);

/* Appends the term in Erlang syntax (as io:format("~p") would print it, on one line). */
CN_EXPORT int cn_term_print(const cn_term *t, cn_buf *out);
/* Returns the term in Erlang syntax as a new string (free with cn_free), or NULL. */
CN_EXPORT char *cn_term_to_string(const cn_term *t);

/* ---- Order, equality and erlang:phash2 (order.c, phash2.c) --------------------------------------------- */

/* These need memory only for terms nested more than a few dozen levels deep, maps whose keys are not stored
 * in key order (cn_term_cmp, cn_term_arith_eq, cn_term_exact_eq) and funs with free variables. Where running out of
 * memory must be told apart from a result, use the _checked forms. Terms are borrowed. */

/* Term order as erlang:'<'/2 and lists:sort/1 see it: <0, 0 or >0. 0 exactly when a == b (so 1 and 1.0
 * compare 0). Maps order by size, then keys in key order (integers before floats), then values. */
CN_EXPORT int cn_term_cmp(const cn_term *a, const cn_term *b);
/* Arithmetic equality, Erlang's ==: 1 == 1.0, and #{1 => x} == #{1 => x}, but #{1 => x} /= #{1.0 => x}. */
CN_EXPORT bool cn_term_arith_eq(const cn_term *a, const cn_term *b);
/* cn_term_cmp (exact false) or the exact order behind =:= (exact true: every integer before every float);
 * *result gets <0, 0 or >0. 0, CN_EINVAL, CN_ENOMEM, or CN_EDECODE (a malformed fun). */
CN_EXPORT int cn_term_compare_checked(const cn_term *a, const cn_term *b, bool exact, int *result);

/* Per OTP release. otp_release is the release whose semantics to follow (25, 26, 27, 29...; 0 or anything
 * below 27: OTP 25/26). From OTP 27 on, 0.0 and -0.0 are different terms: 0.0 =:= -0.0 is false, they are two
 * map keys, and in the exact order (=:=, map keys, so also maps under ==/<) -0.0 comes before 0.0; == and <
 * on the floats themselves still see them equal. The forms without _otp follow OTP 25/26. erlang:phash2 is the
 * same in every release (it hashes -0.0 as 0.0), so it takes no release. A node's setting: cn_node_otp_release. */
#define CN_OTP_RELEASE_MIN 17 /* the releases a node or tool accepts as a setting */
#define CN_OTP_RELEASE_MAX 999
#define CN_OTP_RELEASE_DEFAULT 25 /* what a node follows until it learns its cluster's release */
CN_EXPORT int cn_term_cmp_otp(const cn_term *a, const cn_term *b, int otp_release);
CN_EXPORT bool cn_term_arith_eq_otp(const cn_term *a, const cn_term *b, int otp_release);
CN_EXPORT bool cn_term_exact_eq_otp(const cn_term *a, const cn_term *b, int otp_release);
/* cn_term_compare_checked under otp_release's semantics. */
CN_EXPORT int cn_term_compare_otp(const cn_term *a, const cn_term *b, bool exact, int otp_release, int *result);

/* erlang:phash2/1: the term's portable hash in 0..2^27-1, bit-exact with the BEAM (0 on out-of-memory). */
CN_EXPORT uint32_t cn_phash2(const cn_term *t);
/* erlang:phash2/2: 0..range-1 for range 1..2^32 (merkle_map uses 2^32, libring 2^32-1); 0 for other ranges. */
CN_EXPORT uint32_t cn_phash2_range(const cn_term *t, uint64_t range);
/* Both with a status: range 0 means phash2/1, else 1..2^32. 0, CN_EINVAL, CN_ENOMEM or CN_EDECODE. */
CN_EXPORT int cn_phash2_checked(const cn_term *t, uint64_t range, uint32_t *out);

#ifdef __cplusplus
}
#endif
#endif
