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
static const cn_atom *peer, *peer2;

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

/* ---- through a connection ---------------------------------------------------------------------------------- */

static int setup(void **st) {
  (void)st;
  if (test_node_quiet(&N, "zc@127.0.0.1")) return -1;
  peer = cn_intern(N, "peer@127.0.0.1");
  peer2 = cn_intern(N, "other@127.0.0.1");
  return conn_test_up(N, peer, DIST_FLAGS_DEFAULT) || conn_test_up(N, peer2, DIST_FLAGS_DEFAULT) ? -1 : 0;
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
  static uint8_t big[BIG];
  memset(big, fill, sizeof big);
  cn_term *ctl = cn_mk_tuple(3, cn_mk_int(DOP_SEND), cn_mk_atom(cn_intern(N, "")), cn_mk_pid(to));
  cn_term *pay = cn_mk_tuple(3, cn_mk_atom(cn_intern(N, tag)), cn_term_copy(dest), cn_mk_binary(big, sizeof big));
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_chunk_refs_and_pool),
      cmocka_unit_test(test_decode_shares_big_binaries),
      cmocka_unit_test(test_decode_bad_input_with_chunk),
      cmocka_unit_test_setup_teardown(test_kept_past_handler, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mailbox_of_dying_process, setup, teardown),
      cmocka_unit_test_setup_teardown(test_forward_to_another_node, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fragmented, setup, teardown),
      cmocka_unit_test_setup_teardown(test_malformed_frame, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
