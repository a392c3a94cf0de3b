#!/bin/sh
# Memory per idle TLS distribution connection (bench/conn_mem.sh's figure over TLS, issue 23):
#   sh bench/tls_mem.sh BUILD [NCONN [BYTES [RUNS]]]
# Builds bench/cnode_bench.c and bench/tls_mem.c against BUILD's libcnode.a, makes certificates with the `openssl`
# command (as bench/tls.sh), starts a private EPMD and per run a fresh TLS cnode_bench (CNODE_BENCH_TLS) that
# NCONN hidden C nodes of one tls_mem process connect to; prints the target's VmRSS growth per connection. BYTES
# > 0: each connection first carries a binary of BYTES to the target, and the figure is taken once the target has
# idled them (a tick interval without messages: 32 s).
set -u
BUILD=${1:-build}
NCONN=${2:-200}
BYTES=${3:-0}
RUNS=${4:-3}
SUB=tls_mem
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
build_plain cnode_bench tls_mem
T=$(mktemp -d "${TMPDIR:-/tmp}/cnode-tlsmem.XXXXXX")
(cd "$T" && {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -subj /CN=ca -days 3
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout node.key -out node.csr -subj /CN=node
  printf 'subjectAltName=DNS:127.0.0.1,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >node.ext
  openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3 -extfile node.ext -out node.pem
}) >"$T/openssl.log" 2>&1 || { echo "bench/tls_mem.sh: openssl failed"; exit 1; }
cat >"$T/dist.conf" <<CONF
[{server, [{certfile, "$T/node.pem"}, {keyfile, "$T/node.key"}, {cacertfile, "$T/ca.pem"},
           {verify, verify_peer}, {fail_if_no_peer_cert, true}]},
 {client, [{certfile, "$T/node.pem"}, {keyfile, "$T/node.key"}, {cacertfile, "$T/ca.pem"}, {verify, verify_peer}]}].
CONF
start_epmd
C=""
trap '[ -n "$C" ] && kill "$C" 2>/dev/null; kill "$EPMD_PID" 2>/dev/null; rm -rf "$T"' EXIT
trap 'exit 1' INT TERM
COOKIE=mem$$
WAIT=1
[ "$BYTES" -gt 0 ] && WAIT=32
i=0
while [ $i -lt "$RUNS" ]; do
  i=$((i + 1))
  : >"$OUT/c.log"
  CNODE_BENCH_TLS=$T/dist.conf $PIN ${MEM_WRAP:-} "$OUT/cnode_bench" "tm$$x$i@127.0.0.1" "$COOKIE" >"$OUT/c.log" 2>&1 &
  C=$!
  wait_ready "$OUT/c.log" cnode_bench
  sleep 0.3
  "$OUT/tls_mem" "tm$$x$i@127.0.0.1" "$COOKIE" "$NCONN" "$C" "$T/dist.conf" "$BYTES" "$WAIT" &
  M=$!
  # TLS_MEM_HOLD=S: the target is stopped while the connections are still up (for MEM_WRAP's profile).
  [ -n "${TLS_MEM_HOLD:-}" ] && { sleep "$TLS_MEM_HOLD"; kill "$C" 2>/dev/null; }
  wait "$M"
  kill "$C" 2>/dev/null; wait "$C" 2>/dev/null; C=""
done
