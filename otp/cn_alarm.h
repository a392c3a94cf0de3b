/* cn_alarm.h: named alarms set and cleared from C, as SASL's alarm_handler keeps them ({Id, Description}), and
 * mirrored into alarm_handler on the BEAM nodes named with cn_alarm_mirror: alarm_handler:set_alarm({Id, Desc}) and
 * alarm_handler:clear_alarm(Id) through rpc there, in order (one call in flight per node), sent again to a node after
 * it reconnects (a clear of each id first, so a node that kept them does not hold two). Fuses (cn_fuse.h) and
 * watchdogs (cn_watchdog.h) raise theirs here. On the node's loop thread only. */
#ifndef CN_ALARM_H
#define CN_ALARM_H

#include "cnode.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sets the alarm id with desc (both borrowed, copied). An id already set with an equal desc is left as it is; with
 * another desc it is replaced (and mirrored as clear then set). 0, CN_EINVAL, CN_ENOMEM. */
CN_EXPORT int cn_alarm_set(cn_node *n, const cn_term *id, const cn_term *desc);
/* Clears the alarm id (borrowed): 0, or CN_ENOTFOUND when it is not set. */
CN_EXPORT int cn_alarm_clear(cn_node *n, const cn_term *id);
/* The alarms set now, as alarm_handler:get_alarms/0 gives them: a new list [{Id, Desc}] (caller frees; [] when
 * none), NULL on no memory. Newest first. */
CN_EXPORT cn_term *cn_alarm_list(cn_node *n);
/* How many alarms are set. */
CN_EXPORT size_t cn_alarm_count(cn_node *n);
/* Mirrors the alarms into alarm_handler on node (SASL must run there): connects to it, sends every alarm set, then
 * each change; retried after a nodedown (every 1 s, then less often up to 30 s). 0, CN_EEXIST, CN_ENOMEM. */
CN_EXPORT int cn_alarm_mirror(cn_node *n, const cn_atom *node);
/* A graceful stop: clears every alarm here and on the mirror nodes that are up; done(ctx) runs once (at once, or later from the
 * loop) when those clears have been answered or failed. 0, or CN_ENOMEM (done never runs then). */
CN_EXPORT int cn_alarm_clear_all(cn_node *n, void (*done)(void *ctx), void *ctx);

#ifdef __cplusplus
}
#endif
#endif
