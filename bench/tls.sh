#!/bin/sh
# TLS distribution: throughput (1 MiB binaries echoed, 8 in flight) and ping-pong latency (one small message
# echoed at a time), C node vs BEAM node as the echoing peer, measured from the same erl driver in the same run,
# over TLS (-proto_dist inet_tls, one ssl_dist_optfile for every node, TLS 1.2 as inet_tls_dist's default) and
# over plain TCP, to show what TLS costs each. Prints `bench=<name> impl=<cnode|beam> value=<v> unit=<u>`,
# `ratio=<cnode/beam>` after each pair, and the TLS/TCP cost lines. `sh bench/tls.sh BUILD`; BENCH_QUICK=1 for a
# short run (under 60 s). Certificates are made with the `openssl` command in a temporary folder.
set -u
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
CNODE=$BUILD/cnode
[ -x "$CNODE" ] || { echo "bench/tls.sh: $CNODE not built (make all)"; exit 1; }
if [ -n "${BENCH_QUICK:-}" ]; then QUICK=1; else QUICK=0; fi
T=$(mktemp -d "${TMPDIR:-/tmp}/cnode-tlsbench.XXXXXX")
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

(cd "$T" && {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -subj /CN=ca -days 3
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout node.key -out node.csr -subj /CN=node
  printf 'subjectAltName=DNS:127.0.0.1,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >node.ext
  openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3 -extfile node.ext -out node.pem
}) >"$T/openssl.log" 2>&1 || { echo "bench/tls.sh: openssl failed: $(tail -3 "$T/openssl.log")"; exit 1; }
cat >"$T/dist.conf" <<CONF
[{server, [{certfile, "$T/node.pem"}, {keyfile, "$T/node.key"}, {cacertfile, "$T/ca.pem"},
           {verify, verify_peer}, {fail_if_no_peer_cert, true}]},
 {client, [{certfile, "$T/node.pem"}, {keyfile, "$T/node.key"}, {cacertfile, "$T/ca.pem"}, {verify, verify_peer}]}].
CONF
cat >"$T/tlsbench.erl" <<'ERL'
-module(tlsbench).
-export([run/1]).
%% run([Proto, CNode, BeamNode, Quick]): measures both peers the same way, then halts.
run([Proto, CN, BN, Quick]) ->
    C = list_to_atom(CN), B = list_to_atom(BN), Q = Quick =:= "1",
    [pong = net_adm:ping(N) || N <- [C, B]],
    Bin = crypto:strong_rand_bytes(1 bsl 20),
    {NT, NL} = case Q of true -> {96, 2000}; false -> {512, 10000} end,
    R = [{I, tput(N, Bin, 16), tput(N, Bin, NT), lat(N, 200), lat(N, NL)} || {I, N} <- [{cnode, C}, {beam, B}]],
    [{_, _, TC, _, LC}, {_, _, TB, _, LB}] = R,
    line(Proto ++ "_throughput", cnode, TC, "MiB/s"), line(Proto ++ "_throughput", beam, TB, "MiB/s"),
    io:format("ratio=~.2f~n", [TC / TB]),
    line(Proto ++ "_pingpong", cnode, LC, "us/roundtrip"), line(Proto ++ "_pingpong", beam, LB, "us/roundtrip"),
    io:format("ratio=~.2f~n", [LC / LB]),
    halt().
line(B, I, V, U) -> io:format("bench=~s impl=~s value=~.1f unit=~s~n", [B, I, V, U]).
%% N binaries of 1 MiB echoed with 8 in flight; MiB/s one way (each byte also comes back).
tput(Node, Bin, N) ->
    T0 = erlang:monotonic_time(microsecond),
    W = min(8, N),
    [{echo, Node} ! {self(), Bin} || _ <- lists:seq(1, W)],
    tput_loop(Node, Bin, N - W, N),
    N / ((erlang:monotonic_time(microsecond) - T0) / 1.0e6).
%% ToSend more to send, ToRecv echoes still to come.
tput_loop(_, _, _, 0) -> ok;
tput_loop(Node, Bin, ToSend, ToRecv) ->
    receive Bin -> ok after 30000 -> exit(timeout) end,
    case ToSend > 0 of true -> {echo, Node} ! {self(), Bin}; false -> ok end,
    tput_loop(Node, Bin, max(ToSend - 1, 0), ToRecv - 1).
lat(Node, N) ->
    T0 = erlang:monotonic_time(microsecond),
    [begin {echo, Node} ! {self(), {ping, I}}, receive {ping, I} -> ok after 5000 -> exit(timeout) end end
     || I <- lists:seq(1, N)],
    (erlang:monotonic_time(microsecond) - T0) / N.
ERL
(cd "$T" && erlc tlsbench.erl) || exit 1

EPMD_PORT=$(free_port)
epmd -port "$EPMD_PORT" >"$T/epmd.log" 2>&1 &
PIDS="$PIDS $!"
export ERL_EPMD_PORT=$EPMD_PORT
sleep 0.3
COOKIE=tlsbench$$
TLS_ERL="-proto_dist inet_tls -ssl_dist_optfile $T/dist.conf"
ECHO='register(echo, spawn(fun L() -> receive {P, M} -> P ! M, L() end end)), io:format("ECHO_READY~n").'
for proto in tcp tls; do
  if [ $proto = tls ]; then CA="--proto-dist inet_tls --ssl-dist-optfile $T/dist.conf"; EA=$TLS_ERL; else CA=""; EA=""; fi
  "$CNODE" --name "bc_$proto@127.0.0.1" --cookie $COOKIE --epmd-port "$EPMD_PORT" $CA >"$T/cnode_$proto.log" 2>&1 &
  PIDS="$PIDS $!"
  erl -noinput -name "bb_$proto@127.0.0.1" -setcookie $COOKIE $EA -connect_all false -eval "$ECHO" \
    >"$T/beam_$proto.log" 2>&1 &
  PIDS="$PIDS $!"
done
i=0
until [ "$(grep -l 'ready: port' "$T"/cnode_*.log 2>/dev/null | wc -l)" = 2 ] && \
      [ "$(grep -l ECHO_READY "$T"/beam_*.log 2>/dev/null | wc -l)" = 2 ]; do
  i=$((i + 1)); [ $i -gt 150 ] && { echo "bench/tls.sh: peers did not start"; tail -n 3 "$T"/*.log; exit 1; }
  sleep 0.1
done
for proto in tcp tls; do
  if [ $proto = tls ]; then EA=$TLS_ERL; else EA=""; fi
  timeout 120 erl -noinput -name "drv_$proto@127.0.0.1" -setcookie $COOKIE $EA -connect_all false -pa "$T" \
    -run tlsbench run $proto "bc_$proto@127.0.0.1" "bb_$proto@127.0.0.1" $QUICK | tee "$T/res_$proto.txt"
done
# What TLS costs each: TLS throughput as a share of TCP's, and the latency added per round trip.
awk '/^bench=/ { split($1, b, "="); split($2, i, "="); split($3, v, "="); val[b[2] "/" i[2]] = v[2] }
     END { n = split("cnode beam", im, " ");
           for (k = 1; k <= n; k++) { x = im[k];
             if (val["tcp_throughput/" x] > 0)
               printf "bench=tls_cost_throughput impl=%s value=%.1f unit=%%_of_tcp\n", x, 100 * val["tls_throughput/" x] / val["tcp_throughput/" x];
             printf "bench=tls_cost_pingpong impl=%s value=%.1f unit=us_added\n", x, val["tls_pingpong/" x] - val["tcp_pingpong/" x] } }' \
  "$T/res_tcp.txt" "$T/res_tls.txt"
