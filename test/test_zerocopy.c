/* test_zerocopy.c: zero-copy binaries (issue 23): cn_chunk and its pool, decoding that shares a chunk's bytes,
 * cn_term_retain, and through a socketless peer connection (conn_test_up/feed/output): a received message kept past
 * its handler while later reads go on, a shared binary in the mailbox of a process that dies, a received big binary
 * sent on to another node, fragmented messages; malformed and truncated input with a chunk. Run under ASan (and
 * valgrind) these are the lifetime checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "node_int.h"
#include "testutil.h"

#define BIG 4096

static cn_node *N;
static const cn_atom *peer, *peer2, *peer3;
static size_t feed_size = BIG; /* feed_msg's binary */

/* ---- cn_chunk ---------------------------------------------------------------------------------------------- */

static void test_chunk_refs_and_pool(void **st) {
  (void)st;
  cn_chunk *k = cn_chunk_new(100);
  assert_non_null(k);
  assert_int_equal(cn_chunk_cap(k), 100);
  assert_false(cn_chunk_shared(k));
  cn_chunk_retain(k);
  assert_true(cn_chunk_shared(k));
  assert_null(cn_chunk_resize(k, 200)); /* shared: its bytes must stay where they are */
  cn_chunk_release(k);
  assert_false(cn_chunk_shared(k));
  memset(cn_chunk_data(k), 7, 100);
  k = cn_chunk_resize(k, 300);
  assert_non_null(k);
  assert_int_equal(cn_chunk_data(k)[99], 7);

  cn_chunk_pool p = {0};
  assert_null(cn_chunk_pool_take(&p, 10));
  cn_chunk_retain(k); /* a decoded binary still holds it */
  cn_chunk_pool_put(&p, k);
  assert_null(cn_chunk_pool_take(&p, 10)); /* shared: not yet */
  cn_chunk_release(k);
  cn_chunk *t = cn_chunk_pool_take(&p, 1000); /* free again, and grown */
  assert_ptr_not_equal(t, NULL);
  assert_true(cn_chunk_cap(t) >= 1000);
  for (int i = 0; i < CN_CHUNK_POOL + 2; i++) cn_chunk_pool_put(&p, cn_chunk_new(16)); /* the oldest go */
  cn_chunk_pool_put(&p, t);
  cn_chunk_pool_clear(&p);
  cn_chunk_pool_clear(&p);
  cn_chunk_release(NULL);
}

/* ---- decoding into a chunk -------------------------------------------------------------------------------- */

/* {seq, 1, <<BIG bytes>>, <<10 bytes>>, <<600 bytes, 3 bits>>} encoded into a new chunk; *len: its bytes. */
static cn_chunk *encoded(cn_atoms *tab, size_t *len) {
  static uint8_t big[BIG], small[10], bits[600];
  memset(big, 'b', sizeof big);
  memset(small, 's', sizeof small);
  memset(bits, 0xff, sizeof bits);
  cn_term *t = cn_mk_tuple(5, cn_mk_atom(cn_atoms_intern(tab, "seq", 3)), cn_mk_int(1), cn_mk_binary(big, sizeof big),
                           cn_mk_binary(small, sizeof small), cn_mk_bitstring(bits, sizeof bits, 3));
  assert_non_null(t);
  cn_buf b = {0};
  assert_int_equal(cn_term_encode(t, &b), 0);
  cn_term_free(t);
  cn_chunk *k = cn_chunk_new(b.len);
  memcpy(cn_chunk_data(k), b.data, b.len);
  *len = b.len;
  cn_buf_free(&b);
  return k;
}

static bool inside(cn_chunk *k, size_t len, const uint8_t *p) {
  return p >= cn_chunk_data(k) && p < cn_chunk_data(k) + len;
}

static void test_decode_shares_big_binaries(void **st) {
  (void)st;
  cn_atoms *tab = NULL;
  assert_int_equal(cn_atoms_new(&tab, 0), 0);
  size_t len, off = 0;
  cn_chunk *k = encoded(tab, &len);
  cn_decode_opts o = {.chunk = k};
  cn_term *t = NULL;
  assert_int_equal(cn_term_decode(tab, cn_chunk_data(k), len, &off, &o, &t), 0);
  assert_int_equal(off, len);
  const cn_term *e = t->v.tuple.e;
  assert_true(inside(k, len, e[2].v.bin.data)); /* BIG bytes: shared */
  assert_int_equal(e[2].v.bin.size, BIG);
  assert_false(inside(k, len, e[3].v.bin.data)); /* 10 bytes: copied */
  assert_false(inside(k, len, e[4].v.bin.data)); /* a bitstring: copied (its last byte is masked) */
  assert_int_equal(e[4].v.bin.bits, 3);
  assert_true(cn_chunk_shared(k));

  cn_term *kept = cn_term_retain(t); /* the same term, one more reference */
  assert_ptr_equal(kept, t);
  cn_term *copy = cn_term_copy(t);
  assert_false(inside(k, len, copy->v.tuple.e[2].v.bin.data));
  assert_true(cn_term_exact_eq(copy, t));
  cn_term *sub = cn_term_retain(&e[2]); /* a subterm: a copy */
  assert_false(inside(k, len, sub->v.bin.data));
  cn_term_free(t);
  assert_true(cn_chunk_shared(k)); /* kept still holds it */
  assert_int_equal(kept->v.tuple.e[2].v.bin.data[BIG - 1], 'b');
  cn_term_free(kept);
  assert_false(cn_chunk_shared(k));
  cn_term_free(copy);
  cn_term_free(sub);

  /* share_min: 0 means the default; a larger one copies. */
  off = 0;
  o.share_min = BIG + 1;
  assert_int_equal(cn_term_decode(tab, cn_chunk_data(k), len, &off, &o, &t), 0);
  assert_false(inside(k, len, t->v.tuple.e[2].v.bin.data));
  assert_false(cn_chunk_shared(k));
  /* A decoded root handed to a constructor: copied out, the chunk let go. */
  off = 0;
  o.share_min = 0;
  cn_term *t2 = NULL;
  assert_int_equal(cn_term_decode(tab, cn_chunk_data(k), len, &off, &o, &t2), 0);
  cn_term *wrap = cn_mk_tuple(2, t, t2);
  assert_non_null(wrap);
  assert_false(cn_chunk_shared(k));
  cn_term_free(wrap);
  cn_chunk_release(k);
  cn_atoms_free(tab);
}

/* Every truncation and a corrupted length fail cleanly and leave the chunk unshared. */
static void test_decode_bad_input_with_chunk(void **st) {
  (void)st;
  cn_atoms *tab = NULL;
  assert_int_equal(cn_atoms_new(&tab, 0), 0);
  size_t len;
  cn_chunk *k = encoded(tab, &len);
  cn_decode_opts o = {.chunk = k};
  for (size_t cut = 0; cut < len; cut += cut < 64 ? 1 : 97) {
    size_t off = 0;
    cn_term *t = (cn_term *)1;
    int rc = cn_term_decode(tab, cn_chunk_data(k), cut, &off, &o, &t);
    assert_true(rc == CN_ETRUNC || rc == CN_EDECODE);
    assert_null(t);
    assert_int_equal(off, 0);
    assert_false(cn_chunk_shared(k));
  }
  uint8_t *d = cn_chunk_data(k);
  for (size_t i = 0; i + 4 < len; i++) {
    if (d[i] != 109 || cn_get32(d + i + 1) != BIG) continue; /* BINARY_EXT of BIG bytes: claim more than there is */
    cn_set32(d + i + 1, 0x7fffffff);
    size_t off = 0;
    cn_term *t = NULL;
    assert_int_equal(cn_term_decode(tab, d, len, &off, &o, &t), CN_ETRUNC);
    o.max_size = 100;
    assert_int_equal(cn_term_decode(tab, d, len, &off, &o, &t), CN_ELIMIT);
    assert_false(cn_chunk_shared(k));
    break;
  }
  cn_chunk_release(k);
  cn_atoms_free(tab);
}

/* ---- encoding with large binaries left out (cn_term_encode_ext) ------------------------------------------- */

typedef struct segs {
  size_t n, at[8], len[8];
  const uint8_t *p[8];
  int fail; /* return this from the callback */
} segs;

static int collect(void *ctx, size_t at, cn_chunk *k, const uint8_t *p, size_t len) {
  segs *g = ctx;
  assert_non_null(k);
  assert_true(p >= cn_chunk_data(k) && p + len <= cn_chunk_data(k) + cn_chunk_cap(k));
  if (g->fail) return g->fail;
  assert_true(g->n < 8);
  assert_true(g->n == 0 || at > g->at[g->n - 1]);
  g->at[g->n] = at, g->len[g->n] = len, g->p[g->n] = p;
  g->n++;
  return 0;
}

/* out's bytes from `from` with g's binaries spliced in: what the connection's writev sends. */
static void splice_segs(const cn_buf *out, size_t from, const segs *g, cn_buf *dst) {
  size_t pos = from;
  for (size_t i = 0; i < g->n; i++) {
    assert_int_equal(cn_buf_append(dst, out->data + pos, g->at[i] - pos), 0);
    assert_int_equal(cn_buf_append(dst, g->p[i], g->len[i]), 0);
    pos = g->at[i];
  }
  assert_int_equal(cn_buf_append(dst, out->data + pos, out->len - pos), 0);
}

/* {big, <<70000>>, [<<10>>, Sub], #{k => <<200000>>}, <<70000 bytes, 3 bits>>, <<65535>>}: Sub is 100000 bytes at
 * offset 10 of k. Three binaries are large and in chunks; the bitstring and the one under the minimum are copied. */
static cn_term *large_term(cn_atoms *tab, cn_chunk *k) {
  static uint8_t a[70000], m[200000], s[65535];
  memset(a, 'a', sizeof a);
  for (size_t i = 0; i < sizeof m; i++) m[i] = (uint8_t)i;
  memset(s, 's', sizeof s);
  cn_term *kv[2] = {cn_mk_atom(cn_atoms_get(tab, "k")), cn_mk_binary(m, sizeof m)};
  return cn_mk_tuple(6, cn_mk_atom(cn_atoms_get(tab, "big")), cn_mk_binary(a, sizeof a),
                     cn_mk_list(2, cn_mk_binary("0123456789", 10), cn_mk_binary_chunk(k, 10, 100000)), cn_mk_map(1, kv),
                     cn_mk_bitstring(a, sizeof a, 3), cn_mk_binary(s, sizeof s));
}

static cn_chunk *filled_chunk(size_t n) {
  cn_chunk *k = cn_chunk_new(n);
  assert_non_null(k);
  for (size_t i = 0; i < n; i++) cn_chunk_data(k)[i] = (uint8_t)(i * 7 + 1);
  return k;
}

static void test_encode_ext(void **st) {
  (void)st;
  cn_atoms *tab = NULL;
  assert_int_equal(cn_atoms_new(&tab, 0), 0);
  cn_chunk *k = filled_chunk(200000);
  cn_term *t = large_term(tab, k);
  assert_non_null(t);
  assert_true(cn_chunk_shared(k)); /* the sub-binary holds it */
  assert_null(cn_mk_binary_chunk(k, 100000, 100001));
  for (int version = 0; version <= 1; version++) {
    cn_buf ref = {0};
    assert_int_equal(version ? cn_term_to_binary(t, &ref) : cn_term_encode(t, &ref), 0);
    for (size_t max = 0; max <= 4; max++) {
      segs g = {0};
      cn_encode_ext x = {CN_BINARY_CHUNK_MIN, max, collect, &g};
      cn_buf out = {0}, wire = {0};
      assert_int_equal(cn_buf_append(&out, "pre", 3), 0);
      assert_int_equal(cn_term_encode_ext(t, &out, version, &x), 0);
      assert_int_equal(g.n, max < 3 ? max : 3);
      size_t left = 0;
      for (size_t i = 0; i < g.n; i++) left += g.len[i];
      assert_int_equal(out.len - 3 + left, ref.len);
      splice_segs(&out, 3, &g, &wire);
      assert_int_equal(wire.len, ref.len);
      assert_memory_equal(wire.data, ref.data, ref.len); /* the bytes of the copying path */
      cn_buf_free(&out);
      cn_buf_free(&wire);
    }
    cn_buf_free(&ref);
  }
  segs g = {.fail = CN_ENOMEM};
  cn_encode_ext x = {CN_BINARY_CHUNK_MIN, 8, collect, &g};
  cn_buf out = {0};
  assert_int_equal(cn_buf_append(&out, "pre", 3), 0);
  assert_int_equal(cn_term_encode_ext(t, &out, 1, &x), CN_ENOMEM);
  assert_int_equal(out.len, 3); /* nothing appended */
  cn_buf_free(&out);
  /* A copy owns its bytes: large ones in chunks of their own (left out as well), small ones plain. */
  cn_term *c = cn_term_copy(t);
  assert_non_null(c);
  cn_term_free(t);
  assert_false(cn_chunk_shared(k)); /* the copy's sub-binary is its own */
  assert_non_null(cn_tuple_elem(c, 6, 1)->v.bin.chunk);
  assert_null(cn_tuple_elem(c, 6, 5)->v.bin.chunk);
  segs g2 = {0};
  cn_encode_ext x2 = {CN_BINARY_CHUNK_MIN, 8, collect, &g2};
  assert_int_equal(cn_term_encode_ext(c, &out, 1, &x2), 0);
  assert_int_equal(g2.n, 3);
  cn_buf_free(&out);
  cn_term_free(c);
  cn_chunk_release(k);
  cn_atoms_free(tab);
}

/* ---- through a connection ---------------------------------------------------------------------------------- */

static int setup(void **st) {
  (void)st;
  if (test_node_quiet(&N, "zc@127.0.0.1")) return -1;
  peer = cn_intern(N, "peer@127.0.0.1");
  peer2 = cn_intern(N, "other@127.0.0.1");
  peer3 = cn_intern(N, "nofrag@127.0.0.1"); /* pass-through frames (no DFLAG_FRAGMENTS) */
  return conn_test_up(N, peer, DIST_FLAGS_DEFAULT) || conn_test_up(N, peer2, DIST_FLAGS_DEFAULT) ||
                 conn_test_up(N, peer3, DIST_FLAGS_DEFAULT & ~DFLAG_FRAGMENTS)
             ? -1
             : 0;
}

static int teardown(void **st) {
  (void)st;
  test_node_drop(&N);
  return 0;
}

/* A process that keeps its first message (cn_term_retain), counts the rest, and on {fwd, Dest, Bin} sends Bin on. */
typedef struct keeper {
  cn_term *kept;
  int n;
} keeper;

static void keeper_handle(cn_proc *self, const cn_term *msg, void *state) {
  keeper *k = state;
  if (!k->kept) k->kept = cn_term_retain(msg);
  k->n++;
  const cn_term *dest = cn_tuple_elem(msg, 3, 1);
  if (dest && cn_is_atom(cn_tuple_elem(msg, 3, 0), "fwd")) cn_send_to(N, self, dest, cn_tuple_elem(msg, 3, 2));
}

static cn_pid spawn_keeper(keeper *k) {
  memset(k, 0, sizeof *k);
  cn_pid pid;
  assert_int_equal(cn_spawn(N, keeper_handle, k, NULL, &pid), 0);
  return pid;
}

/* {Tag, Dest, <<BIG bytes of fill>>} to `to` as one SEND frame from the peer, in fragments of frag bytes (0: one
 * normal frame), fed in pieces of piece bytes (0: at once). */
static void feed_msg(cn_pid to, const char *tag, const cn_term *dest, uint8_t fill, size_t frag, size_t piece) {
  static uint8_t big[200000];
  memset(big, fill, feed_size);
  cn_term *ctl = cn_mk_tuple(3, cn_mk_int(DOP_SEND), cn_mk_atom(cn_intern(N, "")), cn_mk_pid(to));
  cn_term *pay = cn_mk_tuple(3, cn_mk_atom(cn_intern(N, tag)), cn_term_copy(dest), cn_mk_binary(big, feed_size));
  assert_non_null(ctl);
  assert_non_null(pay);
  cn_buf b = {0};
  size_t start = dist_msg_begin(&b);
  assert_int_equal(cn_term_encode(ctl, &b), 0);
  assert_int_equal(cn_term_encode(pay, &b), 0);
  static uint64_t seq = 1;
  assert_int_equal(dist_msg_end(&b, start, seq++, frag), 0);
  size_t step = piece ? piece : b.len;
  for (size_t off = 0; off < b.len; off += step)
    assert_int_equal(conn_test_feed(N, peer, b.data + off, b.len - off < step ? b.len - off : step), 0);
  cn_buf_free(&b);
  cn_term_free(ctl);
  cn_term_free(pay);
}

static void assert_filled(const cn_term *msg, uint8_t fill) {
  const cn_term *bin = cn_tuple_elem(msg, 3, 2);
  assert_non_null(bin);
  assert_int_equal(bin->v.bin.size, BIG);
  for (size_t i = 0; i < BIG; i++)
    if (bin->v.bin.data[i] != fill) fail_msg("byte %zu is %u, not %u", i, bin->v.bin.data[i], fill);
}

/* The first message is kept past its handler while 50 more arrive (in pieces, so reads reuse and switch chunks):
 * its bytes stay as they arrived. */
static void test_kept_past_handler(void **st) {
  (void)st;
  keeper k;
  cn_pid pid = spawn_keeper(&k);
  cn_term nil = {CN_NIL, 0, {0}};
  feed_msg(pid, "first", &nil, 'A', 0, 0);
  test_spin(N);
  assert_non_null(k.kept);
  for (int i = 0; i < 50; i++) {
    feed_msg(pid, "more", &nil, (uint8_t)('a' + i % 26), 0, i % 3 ? 1000 : 0);
    if (i % 7 == 0) test_spin(N);
  }
  test_spin(N);
  assert_int_equal(k.n, 51);
  assert_filled(k.kept, 'A');
  cn_term_free(k.kept);
}

/* Messages sharing the read chunk sit in the mailbox of a process that dies before it runs: freed with it. */
static void test_mailbox_of_dying_process(void **st) {
  (void)st;
  keeper k;
  cn_pid pid = spawn_keeper(&k);
  cn_term nil = {CN_NIL, 0, {0}};
  for (int i = 0; i < 5; i++) feed_msg(pid, "queued", &nil, 'q', 0, 0);
  cn_term kill = cn_tv_atom(cn_intern(N, "kill"));
  assert_int_equal(cn_exit(N, NULL, pid, &kill), 0);
  test_spin(N);
  assert_int_equal(k.n, 0);
  assert_null(proc_lookup(N, pid));
  feed_msg(pid, "late", &nil, 'l', 0, 0); /* to a dead pid: dropped */
  test_spin(N);
}

/* A received big binary sent on to another node goes out whole and unchanged. */
static void test_forward_to_another_node(void **st) {
  (void)st;
  keeper k;
  cn_pid pid = spawn_keeper(&k);
  cn_buf drop = {0};
  assert_int_equal(conn_test_output(N, peer2, &drop), 0);
  cn_buf_free(&drop);
  cn_pid there = {.node = peer2, .id = 77, .serial = 0, .creation = 3};
  cn_term dest = cn_tv_pid(there);
  feed_msg(pid, "fwd", &dest, 'F', 0, 0);
  test_spin(N);
  assert_int_equal(k.n, 1);
  cn_term_free(k.kept);
  cn_buf out = {0};
  assert_int_equal(conn_test_output(N, peer2, &out), 0);
  cn_term *pay = NULL;
  size_t at = 0;
  while (!pay) { /* past ticks and the node's own requests (rex) to the forwarded binary */
    const uint8_t *d;
    size_t dlen;
    ssize_t r = dist_frame_parse(out.data + at, out.len - at, (size_t)1 << 30, &d, &dlen);
    assert_true(r > 0);
    at += (size_t)r;
    if (!dlen) continue;
    dist_msg_hdr h;
    assert_int_equal(dist_msg_hdr_parse(d, dlen, &h), 0);
    size_t off = h.body_off + (h.versioned ? 1 : 0); /* pass-through frames: 131 before each term */
    cn_term *ctl = NULL;
    cn_decode_opts o = {0};
    assert_int_equal(cn_term_decode(N->atoms, d, dlen, &off, &o, &ctl), 0);
    dist_ctl c;
    assert_int_equal(dist_ctl_parse(ctl, &c), 0);
    if (dist_op_has_payload(c.op)) {
      off += h.versioned ? 1 : 0;
      assert_int_equal(cn_term_decode(N->atoms, d, dlen, &off, &o, &pay), 0);
      if (pay->type != CN_BINARY) { /* another message of the node's own */
        cn_term_free(pay);
        pay = NULL;
      }
    }
    cn_term_free(ctl);
  }
  assert_int_equal(pay->type, CN_BINARY);
  assert_int_equal(pay->v.bin.size, BIG);
  for (size_t i = 0; i < BIG; i++) assert_int_equal(pay->v.bin.data[i], 'F');
  cn_term_free(pay);
  cn_buf_free(&out);
}

/* Fragmented messages (1 KiB fragments, fed in odd pieces) reassemble into pooled chunks; the first is kept while
 * later ones reuse the pool. */
static void test_fragmented(void **st) {
  (void)st;
  keeper k;
  cn_pid pid = spawn_keeper(&k);
  cn_term nil = {CN_NIL, 0, {0}};
  feed_msg(pid, "frag", &nil, 'X', 1024, 0);
  test_spin(N);
  assert_int_equal(k.n, 1);
  for (int i = 0; i < 20; i++) feed_msg(pid, "frag", &nil, (uint8_t)('0' + i % 10), 1024, i % 2 ? 333 : 0);
  test_spin(N);
  assert_int_equal(k.n, 21);
  assert_filled(k.kept, 'X');
  cn_term_free(k.kept);
  assert_int_equal(conn_peer_flags(N, peer), DIST_FLAGS_DEFAULT); /* the connection lives on */
}

/* A frame that claims a binary longer than itself costs the connection, cleanly. */
static void test_malformed_frame(void **st) {
  (void)st;
  static const uint8_t bad[] = {0, 0, 0, 12, 131, 68, 0, 104, 1, 109, 0, 0, 16, 0, 'x', 'y'};
  assert_int_equal(conn_test_feed(N, peer, bad, sizeof bad), 0);
  test_spin(N);
  assert_int_equal(conn_test_feed(N, peer, bad, 4), CN_ENOCONN);
}

/* The payload of the first message in out with a payload of the given type (past ticks and the node's own
 * requests): decoded into *pay, its encoded bytes (with the version byte in pass-through frames) at *p, *len. */
static void first_payload(const cn_buf *out, uint8_t type, cn_term **pay, const uint8_t **p, size_t *len) {
  size_t at = 0;
  *pay = NULL;
  while (!*pay) {
    const uint8_t *d;
    size_t dlen;
    ssize_t r = dist_frame_parse(out->data + at, out->len - at, (size_t)1 << 30, &d, &dlen);
    assert_true(r > 0);
    at += (size_t)r;
    if (!dlen) continue;
    dist_msg_hdr h;
    assert_int_equal(dist_msg_hdr_parse(d, dlen, &h), 0);
    assert_true(h.kind == DIST_MSG_PASS || h.kind == DIST_MSG_NORMAL);
    size_t off = h.body_off + (h.versioned ? 1 : 0);
    cn_term *ctl = NULL;
    cn_decode_opts o = {0};
    assert_int_equal(cn_term_decode(N->atoms, d, dlen, &off, &o, &ctl), 0);
    dist_ctl c;
    assert_int_equal(dist_ctl_parse(ctl, &c), 0);
    if (dist_op_has_payload(c.op)) {
      *p = d + off;
      off += h.versioned ? 1 : 0;
      assert_int_equal(cn_term_decode(N->atoms, d, dlen, &off, &o, pay), 0);
      assert_int_equal(off, dlen); /* the frame's length counts the binaries written from their own bytes */
      *len = (size_t)(d + off - *p);
      if ((*pay)->type != type) {
        cn_term_free(*pay);
        *pay = NULL;
      }
    }
    cn_term_free(ctl);
  }
}

static size_t queue_bytes(const cn_atom *to) {
  cn_conn_info ci[8];
  size_t n = cn_node_conns(N, ci, 8);
  for (size_t i = 0; i < n && i < 8; i++)
    if (ci[i].node == to) return ci[i].queue_bytes;
  return 0;
}

/* A term with large binaries sent and freed at once: the connection holds their bytes (queued, counted), writes
 * exactly the bytes the copying encoder would, and lets them go once written. Normal and pass-through frames, and
 * twice in one batch (the segments of two frames). */
static void test_send_large_freed_at_once(void **st) {
  (void)st;
  const cn_atom *to[2] = {peer, peer3};
  for (int i = 0; i < 2; i++) {
    assert_int_equal(conn_test_output(N, to[i], NULL), 0);
    cn_chunk *k = filled_chunk(200000);
    cn_term *t = large_term(cn_node_atoms(N), k);
    cn_term *ref = cn_term_copy(t); /* shares the chunks; compared below */
    assert_non_null(ref);
    cn_pid dest = {.node = to[i], .id = 5, .serial = 0, .creation = 1};
    size_t q0 = queue_bytes(to[i]);
    assert_int_equal(cn_send(N, NULL, dest, t), 0);
    assert_int_equal(cn_send(N, NULL, dest, t), 0);
    cn_term_free(t);
    assert_true(cn_chunk_shared(k)); /* only the connection holds the sub-binary's chunk now (ref has its own) */
    assert_true(queue_bytes(to[i]) - q0 > 2 * (70000 + 100000 + 200000 + 70000 + 65535));
    cn_buf out = {0}, want = {0};
    assert_int_equal(conn_test_output(N, to[i], &out), 0);
    assert_int_equal(queue_bytes(to[i]), 0);
    assert_int_equal(i ? cn_term_to_binary(ref, &want) : cn_term_encode(ref, &want), 0);
    for (int rep = 0; rep < 2; rep++) {
      cn_term *pay;
      const uint8_t *p;
      size_t len;
      first_payload(&out, CN_TUPLE, &pay, &p, &len);
      assert_int_equal(len, want.len);
      assert_memory_equal(p, want.data, want.len);
      assert_true(cn_term_exact_eq(pay, ref));
      cn_term_free(pay);
      size_t used = (size_t)(p + len - out.data);
      cn_buf_consume(&out, used);
    }
    cn_buf_free(&out);
    cn_buf_free(&want);
    cn_term_free(ref);
    assert_false(cn_chunk_shared(k)); /* the connection's references went with the output */
    cn_chunk_release(k);
  }
}

/* A received large binary (shared with the read chunk) sent on: written from the read chunk, intact, while later
 * reads go on. */
static void test_forward_large_received(void **st) {
  (void)st;
  keeper k;
  cn_pid pid = spawn_keeper(&k);
  assert_int_equal(conn_test_output(N, peer2, NULL), 0);
  cn_pid there = {.node = peer2, .id = 77, .serial = 0, .creation = 3};
  cn_term dest = cn_tv_pid(there);
  feed_size = 150000;
  feed_msg(pid, "fwd", &dest, 'G', 0, 0);
  test_spin(N);
  assert_int_equal(k.n, 1);
  cn_term_free(k.kept);
  k.kept = NULL;
  assert_true(queue_bytes(peer2) > 150000);
  cn_term nil = {CN_NIL, 0, {0}};
  for (int i = 0; i < 5; i++) feed_msg(pid, "more", &nil, 'x', 0, 7000); /* reads into other chunks meanwhile */
  test_spin(N);
  feed_size = BIG;
  cn_buf out = {0};
  assert_int_equal(conn_test_output(N, peer2, &out), 0);
  cn_term *pay;
  const uint8_t *p;
  size_t len;
  first_payload(&out, CN_BINARY, &pay, &p, &len);
  assert_int_equal(pay->type, CN_BINARY);
  assert_int_equal(pay->v.bin.size, 150000);
  for (size_t i = 0; i < 150000; i++)
    if (pay->v.bin.data[i] != 'G') fail_msg("byte %zu is %u", i, pay->v.bin.data[i]);
  cn_term_free(pay);
  cn_buf_free(&out);
  cn_term_free(k.kept); /* the first "more" */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_chunk_refs_and_pool),
      cmocka_unit_test(test_decode_shares_big_binaries),
      cmocka_unit_test(test_decode_bad_input_with_chunk),
      cmocka_unit_test(test_encode_ext),
      cmocka_unit_test_setup_teardown(test_kept_past_handler, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mailbox_of_dying_process, setup, teardown),
      cmocka_unit_test_setup_teardown(test_forward_to_another_node, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fragmented, setup, teardown),
      cmocka_unit_test_setup_teardown(test_malformed_frame, setup, teardown),
      cmocka_unit_test_setup_teardown(test_send_large_freed_at_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_forward_large_received, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
