/* cn_sorted_set.h: a sorted set of Erlang terms (the seed's SortedSet, after Discord's) and the gen_server that
 * serves it to Erlang and Elixir. Members are terms, unique under =:=; the set is ordered by {Score, Member} in
 * Erlang term order of an OTP release (cn_term_cmp_otp), with O(log n) add, remove, rank and access by rank.
 * A library part on the public API (cnode.h); #include <cnode/cn_sorted_set.h>. */
#ifndef CN_SORTED_SET_H
#define CN_SORTED_SET_H

#include <stdbool.h>
#include <stddef.h>

#include "cn_base.h"
#include "cn_term.h"
#include "cnode.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- The data structure (no node needed; not thread-safe: one owner at a time) ------------------------------ */

typedef struct cn_sset cn_sset;

/* A new empty set ordering terms as OTP otp_release does (CN_OTP_RELEASE_MIN..MAX; 0: CN_OTP_RELEASE_DEFAULT).
 * *out is freed with cn_sset_free. CN_EINVAL, CN_ENOMEM. */
CN_EXPORT int cn_sset_new(cn_sset **out, int otp_release);
CN_EXPORT void cn_sset_free(cn_sset *s);
/* Adds member with score (both borrowed: copied), or replaces the score of a member already there (=:= of the
 * release). 0, or CN_ENOMEM (the set is unchanged). */
CN_EXPORT int cn_sset_add(cn_sset *s, const cn_term *score, const cn_term *member);
/* Removes member: true when it was there. */
CN_EXPORT bool cn_sset_remove(cn_sset *s, const cn_term *member);
/* member's score (borrowed until the member is removed or re-added, or the set freed), or NULL. */
CN_EXPORT const cn_term *cn_sset_score(const cn_sset *s, const cn_term *member);
/* member's 0-based rank in {Score, Member} order: 0, or CN_ENOTFOUND. */
CN_EXPORT int cn_sset_rank(const cn_sset *s, const cn_term *member, size_t *rank);
CN_EXPORT size_t cn_sset_size(const cn_sset *s);
/* The element of a rank (borrowed, as cn_sset_score): 0, or CN_ENOTFOUND past the end. */
CN_EXPORT int cn_sset_at(const cn_sset *s, size_t rank, const cn_term **score, const cn_term **member);
/* Calls fn for each element of rank start..stop (inclusive, clipped to the set), in order; a non-zero return from
 * fn stops the walk and is returned. O(log n + k). */
typedef int (*cn_sset_each_fn)(const cn_term *score, const cn_term *member, void *ctx);
CN_EXPORT int cn_sset_range(const cn_sset *s, size_t start, size_t stop, cn_sset_each_fn fn, void *ctx);
/* Follows another release's order (the node learned its cluster's): re-sorts when it differs in anything the
 * members hold (-0.0 under =:=, maps with -0.0 keys). 0, or CN_ENOMEM (the set keeps its old order). */
CN_EXPORT int cn_sset_set_release(cn_sset *s, int otp_release);
CN_EXPORT int cn_sset_release(const cn_sset *s);

/* ---- The gen_server ----------------------------------------------------------------------------------------- */

/* Starts a sorted set gen_server, registered as name when not NULL, following the node's OTP release
 * (cn_node_otp_release; re-sorted once if the node learns another after members were added). It answers, as
 * gen_server:call/2 replies:
 *   {add, Score, Member} -> ok (an existing member's score is replaced); {add_many, [{Score, Member}]} -> ok;
 *   {remove, Member} -> ok (also when absent); {score, Member} -> {ok, Score} | error;
 *   {rank, Member} -> {ok, Rank} (0-based) | error; {range, Start, Stop} -> [{Score, Member}] by rank, inclusive;
 *   size -> N; anything else -> {error, badarg}; no memory -> {error, enomem} (nothing changed).
 * The process runs on the node's loop (every request is O(log n), or O(k log n) for add_many of k). */
CN_EXPORT int cn_sorted_set_start(cn_node *n, const char *name, cn_pid *pid_out);

#ifdef __cplusplus
}
#endif
#endif
