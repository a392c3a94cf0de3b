/* epmd.h: internal header of the epmd/ part: a pure EPMD codec (client and server side, no I/O), an
 * async EPMD client and an EPMD server on libuv. Never installed; the node runtime and cnode-epmd include it. */
#ifndef EPMD_H
#define EPMD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "cn_base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EPMD_DEFAULT_PORT 4369
#define EPMD_MAX_NAME                                                                                                  \
  (255 * 4)                /* bytes of a node name's alive part: an atom, 255 characters of up to 4 UTF-8
                                  bytes (OTP's epmd: MAXSYMLEN); name[] keeps a NUL after it */
#define EPMD_MAX_EXTRA 256 /* bytes of the ALIVE2 "extra" field we accept */

/* Response tags (requests are in epmd_req_type). */
enum {
  EPMD_ALIVE2_X_RESP = 118, /* 32-bit creation, sent when highest version >= 6 */
  EPMD_PORT2_RESP = 119,
  EPMD_ALIVE2_RESP = 121, /* legacy 16-bit creation */
};

#define EPMD_NODE_NORMAL 77 /* 'M' */
#define EPMD_NODE_HIDDEN 72 /* 'H' */

typedef struct epmd_node_info {
  uint16_t port;
  uint8_t node_type;            /* 77 normal ('M'), 72 hidden ('H') */
  uint8_t protocol;             /* 0 = tcp/ipv4 */
  uint16_t highest, lowest;     /* distribution versions, 6 and 5 for OTP 23+ */
  char name[EPMD_MAX_NAME + 1]; /* NUL-terminated, 1..EPMD_MAX_NAME bytes, no NUL inside */
  uint16_t extra_len;
  uint8_t extra[256];
} epmd_node_info;

/* ---- codec, client side. Encoders append to out; on error out is unchanged (CN_EINVAL / CN_ENOMEM). ---- */

/* Appends a whole ALIVE2_REQ (2-byte length included); CN_EINVAL on an empty/too long name or extra_len > 256. */
int epmd_enc_alive2_req(cn_buf *out, const epmd_node_info *info);
/* Decodes ALIVE2_X_RESP (118, 32-bit creation) or ALIVE2_RESP (121, 16-bit creation): bytes consumed, 0 = need
 * more, CN_EPROTO on another tag. result is epmd's code (0 = registered). */
ssize_t epmd_dec_alive2_resp(const uint8_t *buf, size_t len, uint8_t *result, uint32_t *creation);
/* Appends a PORT_PLEASE2_REQ for name (1..EPMD_MAX_NAME bytes, else CN_EINVAL). */
int epmd_enc_port_please2_req(cn_buf *out, const char *name);
/* Decodes PORT2_RESP (119): result != 0 means not found (consumes 2, info untouched); else fills info. Returns
 * bytes consumed, 0 = need more, CN_EPROTO (wrong tag), CN_EDECODE (empty name / NUL in name), CN_ELIMIT
 * (extra longer than 256). Invalid fields are reported as soon as they are visible, before the rest arrives. */
ssize_t epmd_dec_port2_resp(const uint8_t *buf, size_t len, uint8_t *result, epmd_node_info *info);
/* Appends NAMES_REQ. */
int epmd_enc_names_req(cn_buf *out);
/* Addition: decodes the 4-byte epmd port that opens a NAMES (and DUMP) response: 4 or 0 = need more. The text
 * that follows runs until epmd closes the connection. */
ssize_t epmd_dec_names_hdr(const uint8_t *buf, size_t len, uint32_t *epmd_port_no);

/* ---- codec, server side ---- */

typedef enum {
  EPMD_REQ_ALIVE2 = 120,
  EPMD_REQ_PORT_PLEASE2 = 122,
  EPMD_REQ_NAMES = 110,
  EPMD_REQ_DUMP = 100,
  EPMD_REQ_KILL = 107,
  EPMD_REQ_STOP = 115
} epmd_req_type;

typedef struct epmd_request {
  epmd_req_type type;
  epmd_node_info node;          /* for ALIVE2 */
  char name[EPMD_MAX_NAME + 1]; /* for PORT_PLEASE2, STOP */
} epmd_request;

/* Decodes one request (2-byte length + body). max bounds the length field (the body); a larger one is
 * CN_ELIMIT as soon as the 2 length bytes are present. Returns bytes consumed, 0 = need more, CN_EDECODE
 * (empty body, sizes that do not add up to the length, empty name or NUL in a name), CN_ELIMIT (name > EPMD_MAX_NAME,
 * extra > 256, length > max), CN_EUNSUPPORTED (unknown tag; the server should close). */
ssize_t epmd_dec_request(const uint8_t *buf, size_t len, size_t max, epmd_request *out);
/* Appends ALIVE2_X_RESP (118, result, 32-bit creation). */
int epmd_enc_alive2_x_resp(cn_buf *out, uint8_t result, uint32_t creation);
/* Addition: appends the legacy ALIVE2_RESP (121, result, 16-bit creation) for clients with highest < 6. */
int epmd_enc_alive2_resp(cn_buf *out, uint8_t result, uint16_t creation);
/* Appends PORT2_RESP: the node info, or result 1 ("not found") when info_or_null is NULL. CN_EINVAL on a bad
 * name or extra_len > 256. */
int epmd_enc_port2_resp(cn_buf *out, const epmd_node_info *info_or_null);
/* Addition: appends the 4-byte epmd port that opens a NAMES response. */
int epmd_enc_names_hdr(cn_buf *out, uint32_t epmd_port_no);
/* Addition: appends one NAMES line, "name <name> at port <port>\n", as OTP's epmd formats it. */
int epmd_enc_names_entry(cn_buf *out, const char *name, uint16_t port);
/* Addition: appends a request with no body (NAMES, DUMP, KILL); CN_EINVAL for other types. */
int epmd_enc_simple_req(cn_buf *out, epmd_req_type type);
/* Addition: appends STOP_REQ for name (1..EPMD_MAX_NAME bytes, else CN_EINVAL). */
int epmd_enc_stop_req(cn_buf *out, const char *name);
/* Addition: appends one DUMP line as OTP's epmd formats it, NUL included: for a registered name
 * "active name     <name> at port P, fd = F\n\0", for a remembered one "old/unused name <name>, port = P,
 * fd = F \n\0". */
int epmd_enc_dump_entry(cn_buf *out, int active, const char *name, uint16_t port, int fd);

/* ---- async client on libuv. host: numeric IPv4/IPv6 or a name (uv_getaddrinfo, each address tried in
 * turn); NULL means "127.0.0.1". timeout_ms 0 means no timeout. Strings are copied; the caller keeps
 * nothing alive. Every handle is closed before a callback's final run. ---- */

/* $ERL_EPMD_PORT if it is a valid port number (1..65535), else 4369. */
uint16_t epmd_default_port(void);

typedef struct epmd_reg epmd_reg;
/* Called once with status 0 + creation when epmd accepted the name; then, if the registration socket is later
 * lost, again with CN_ECLOSED (creation 0). Failures: CN_EEXIST (epmd refused: the name is taken),
 * CN_ETIMEDOUT, CN_EIO (resolve/connect/read/write), CN_ECLOSED (epmd closed before answering), CN_EPROTO.
 * After a call with status != 0, r is freed when the callback returns (epmd_reg_close inside it is a no-op).
 * Never called after epmd_reg_close. */
typedef void (*epmd_reg_cb)(epmd_reg *r, int status, uint32_t creation, void *ctx);
/* Connects to host:port, sends ALIVE2_REQ for info and keeps the socket open as the registration. timeout_ms
 * covers resolve+connect+response. *out gets the handle (also on the path to a later failure callback).
 * Returns CN_EINVAL (bad name/extra/arguments) or CN_ENOMEM, and then cb never runs. */
int epmd_register(uv_loop_t *loop, const char *host, uint16_t epmd_port, const epmd_node_info *info,
                  unsigned timeout_ms, epmd_reg_cb cb, void *ctx, epmd_reg **out);
/* Unregisters (closes the socket), also while the registration is still in progress; memory is freed in the
 * close callback; cb is not called afterwards. Not valid after a failure callback has returned. */
void epmd_reg_close(epmd_reg *r);

typedef struct epmd_req epmd_req;
/* status 0 and info (borrowed, valid until the callback returns) on success; CN_ENOTFOUND when epmd does not
 * know the name; CN_EIO / CN_ETIMEDOUT / CN_ECLOSED / CN_EPROTO on failure (info NULL). */
typedef void (*epmd_port_cb)(int status, const epmd_node_info *info, void *ctx);
/* PORT_PLEASE2 lookup of name. *out (optional, may be NULL) lets the caller cancel until cb runs; cb runs
 * exactly once if this returns 0 (with CN_ECLOSED after cancel), never if it returns an error. The request is
 * freed once cb returns. */
int epmd_port_please(uv_loop_t *loop, const char *host, uint16_t epmd_port, const char *name, unsigned timeout_ms,
                     epmd_port_cb cb, void *ctx, epmd_req **out);
/* Cancels a pending lookup/names request: its callback runs once, later, with CN_ECLOSED. A no-op from inside
 * that request's callback or on a request that already finished its I/O; invalid after the callback. */
void epmd_req_cancel(epmd_req *r);
/* NAMES result: epmd's own port and the text lines (borrowed, valid until the callback returns; NUL-terminated
 * at text[len]). On failure text is NULL and len 0. */
typedef void (*epmd_names_cb)(int status, uint32_t epmd_port_no, const char *text, size_t len, void *ctx);
/* NAMES request; the text is capped at 1 MiB (CN_ELIMIT). Same guarantees as epmd_port_please. */
int epmd_names(uv_loop_t *loop, const char *host, uint16_t epmd_port, unsigned timeout_ms, epmd_names_cb cb, void *ctx,
               epmd_req **out);

/* ---- EPMD server on libuv (server.c): what OTP's epmd does, on a caller's loop. One request per
 * connection, as OTP: the reply is written and the connection closed, except after ALIVE2, whose socket is
 * the registration (closed or sent more bytes: the name is unregistered at once). Bad, truncated, oversized
 * or unknown requests close their connection without a reply; the server lives on. ---- */

typedef struct epmd_srv epmd_srv;

/* A log line (msg borrowed for the call, no newline). level 0: a request refused or a connection dropped
 * for bad input (OTP's epmd prints these without -d); 1: requests and (un)registrations (-d); 2: connections
 * (-d -d). */
typedef void (*epmd_srv_log_fn)(int level, const char *msg, void *ctx);
/* Called once when a KILL_REQ was accepted and "OK" written: the server has already stopped serving (every
 * listener and connection is closing); the handle stays valid until epmd_srv_close. */
typedef void (*epmd_srv_kill_fn)(epmd_srv *s, void *ctx);
typedef void (*epmd_srv_close_cb)(void *ctx);

/* Server options: zero-initialise, then set what you need. */
typedef struct epmd_srv_opts {
  uint16_t port;              /* listen port; 0 lets the OS pick one (tests), see epmd_srv_port */
  const char *addresses;      /* NULL or blank: every address (0.0.0.0 and ::). Else a comma/space separated
                                 list of numeric IPv4/IPv6 addresses; 127.0.0.1 and ::1 are always added, as
                                 OTP does (a missing ::1 is skipped). Copied. */
  int relaxed_command_check;  /* allow KILL with live names and STOP (OTP's -relaxed_command_check) */
  unsigned packet_timeout_ms; /* a connection that sends no complete request for this long is closed: 60000 */
  unsigned max_conns;         /* open connections (registrations included) beyond this are closed: 4096 */
  unsigned max_unreg;         /* unregistered names remembered for their creation: 1000 (OTP's) */
  int debug;                  /* highest log level passed to log (0: only level 0) */
  int unref;                  /* the server's handles do not keep the loop alive (embedded in a node) */
  epmd_srv_log_fn log;        /* NULL: no logging */
  epmd_srv_kill_fn on_kill;   /* NULL: after KILL the server just stops serving */
  void *ctx;                  /* passed to log and on_kill */
} epmd_srv_opts;

/* Binds and listens on every address (all sockets are opened before any libuv handle, so on error nothing
 * is left behind), then serves from loop. Returns 0 and *out, CN_EEXIST when the port is in use, CN_EINVAL
 * (bad address or options), CN_EIO (socket/bind/listen failed), CN_ENOMEM. */
int epmd_srv_start(uv_loop_t *loop, const epmd_srv_opts *opts, epmd_srv **out);
/* The port listened on (the OS's pick when opts.port was 0). */
uint16_t epmd_srv_port(const epmd_srv *s);

typedef struct epmd_srv_stats {
  size_t registered;  /* names registered now */
  size_t remembered;  /* unregistered names kept for their creation */
  size_t connections; /* open connections, registrations included */
  size_t listeners;   /* listening sockets */
  uint64_t requests;  /* complete requests handled */
  uint64_t dropped;   /* connections closed for bad input, timeout or over the limit */
} epmd_srv_stats;
void epmd_srv_get_stats(const epmd_srv *s, epmd_srv_stats *out);

/* Closes every listener and connection (registrations end); s is freed once all handles are closed, then
 * cb (may be NULL) runs, later, from the loop. s is invalid after this call. */
void epmd_srv_close(epmd_srv *s, epmd_srv_close_cb cb, void *ctx);

#ifdef __cplusplus
}
#endif
#endif
