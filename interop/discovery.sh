#!/bin/sh
# discovery.sh CNODE TMP [PIDFILE]: the discovery interop tests (issue 20), run by discovery_suite.escript.
# In network namespaces it creates and removes (a hub namespace holding a bridge, one namespace per node with its
# own IPv4 and IPv6 address on it, multicast routed to the bridge, each namespace's /etc/resolv.conf pointing at
# a dnsmasq on the hub): two C nodes find each other by gossip (IPv4 and inet6 names); a C node and an Elixir node
# running interop/gossip_standin.ex find each other both ways, with and without a secret, and not with another
# secret; hosts reconnects with back-off; DNS A and SRV records served by a real dnsmasq, one added later and one
# removed. Without namespaces (not root, no `ip netns`; or DISCOVERY_LOOPBACK=1) it runs what loopback allows
# (gossip on a free port, hosts, DNS A records from a dnsmasq on 127.0.0.1 asked through --dns-server) and says so.
# Every process it starts is stopped by its pid (and listed in PIDFILE as +pid/-pid for run.sh's cleanup); the
# namespaces and /etc/netns/<ns> are deleted on exit. Prints ok/FAIL lines and `discovery_suite: N passed, N failed`.
set -u
CNODE=$1
TMP=$2/discovery
PIDFILE=${3:-/dev/null}
HERE=$(cd "$(dirname "$0")" && pwd)
STANDIN=$HERE/gossip_standin.ex
mkdir -p "$TMP"
COOKIE=disc$$
PASSED=0
FAILED=0
PIDS=""
NSS=""
P=cnd$$
N=$(($$ % 250 + 1))
SUB=10.213.$N
V6=fd00:cd:$N:

ok() { echo "ok $1"; PASSED=$((PASSED + 1)); }
bad() { echo "FAIL $1: $2"; FAILED=$((FAILED + 1)); }
skip() { echo "skip $1: $2"; }

# start NS LOG CMD...: runs CMD in namespace NS ("" : here) in the background; sets LAST to its pid.
start() {
  ns=$1 log=$2
  shift 2
  if [ -n "$ns" ]; then
    env -u ERL_EPMD_PORT ip netns exec "$ns" "$@" >"$log" 2>&1 &
  else
    "$@" >"$log" 2>&1 &
  fi
  LAST=$!
  PIDS="$PIDS $LAST"
  echo "+$LAST" >>"$PIDFILE"
}

# stop PID...: SIGTERM, then SIGKILL after 3 s; waits for each.
stop() {
  for p in "$@"; do kill "$p" 2>/dev/null; done
  for p in "$@"; do
    i=0
    while kill -0 "$p" 2>/dev/null && [ $i -lt 30 ]; do
      sleep 0.1
      i=$((i + 1))
    done
    kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    echo "-$p" >>"$PIDFILE"
    PIDS=$(echo "$PIDS" | tr ' ' '\n' | grep -vx "$p" | tr '\n' ' ')
  done
}

cleanup() {
  trap - EXIT INT TERM HUP
  [ -n "$PIDS" ] && stop $PIDS
  for ns in $NSS; do
    ip netns del "$ns" 2>/dev/null
    rm -rf "/etc/netns/$ns"
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# wait_for LOG REGEX SECS: true once LOG has a line matching REGEX.
wait_for() {
  i=0
  while [ $i -lt $(($3 * 5)) ]; do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    sleep 0.2
    i=$((i + 1))
  done
  return 1
}

# ---- the network ------------------------------------------------------------------------------------------------
NETNS=1
# DISCOVERY_LOOPBACK=1 forces the loopback mode (to check it on a machine that has namespaces).
if [ -n "${DISCOVERY_LOOPBACK:-}" ] || [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null ||
  ! ip netns add "${P}h" 2>/dev/null; then
  NETNS=
  echo "discovery: no network namespaces here (needs root and ip netns): loopback only, DNS SRV and inet6 skipped"
else
  NSS="${P}h"
  ip -n "${P}h" link set lo up
  ip -n "${P}h" link add br0 type bridge mcast_snooping 0
  ip -n "${P}h" addr add "$SUB.1/24" dev br0
  ip -n "${P}h" link set br0 up
  for i in 1 2 3; do
    ns=$P$i
    ip netns add "$ns" || { bad setup "ip netns add $ns"; exit 1; }
    NSS="$NSS $ns"
    ip -n "${P}h" link add "vp$i" type veth peer name eth0 netns "$ns"
    ip -n "${P}h" link set "vp$i" master br0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$SUB.1$i/24" dev eth0
    ip -n "$ns" addr add "${V6}:1$i/64" dev eth0 nodad
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add 224.0.0.0/4 dev eth0
    mkdir -p "/etc/netns/$ns"
    echo "nameserver $SUB.1" >"/etc/netns/$ns/resolv.conf"
  done
  echo "discovery: namespaces $NSS on bridge $SUB.0/24 and ${V6}:/64"
fi

# Where node i runs, and its address.
ns_of() { [ -n "$NETNS" ] && echo "$P$1" || echo ""; }
ip_of() { [ -n "$NETNS" ] && echo "$SUB.1$1" || echo "127.0.0.1"; }

EPMDS=""
# Each namespace gets its own epmd (port 4369) for the Elixir node; the C nodes embed one when none answers.
epmd_in() {
  if [ -n "$NETNS" ]; then
    start "$(ns_of "$1")" "$TMP/epmd$1.log" epmd -port 4369
    EPMDS="$EPMDS $LAST"
    sleep 0.3
  fi
}

# cnode_at I NAME LOG ARGS...: a C node in namespace I; LAST is its pid.
cnode_at() {
  i=$1 name=$2 log=$3
  shift 3
  start "$(ns_of "$i")" "$log" "$CNODE" --name "$name" --cookie "$COOKIE" --verbose "$@"
}

# standin_at I LOG VAR=VALUE...: the Elixir Gossip stand-in in namespace I.
standin_at() {
  i=$1 log=$2
  shift 2
  start "$(ns_of "$i")" "$log" env "$@" elixir --name "e@$(ip_of "$i")" --cookie "$COOKIE" "$STANDIN"
}

# In loopback mode every node shares one host, so the nodes get other names and gossip another port.
GPORT=45892
GOSSIP_EXTRA=""
if [ -z "$NETNS" ]; then
  GPORT=$(erl -noshell -eval '{ok,S}=gen_udp:open(0),{ok,P}=inet:port(S),io:format("~b",[P]),halt().')
  GOSSIP_EXTRA="--gossip-port $GPORT"
fi
C1=c@$(ip_of 1)
C2=c@$(ip_of 2)
[ -z "$NETNS" ] && C1=c1@127.0.0.1 && C2=c2@127.0.0.1
E3=e@$(ip_of 3)

# ---- gossip: two C nodes ------------------------------------------------------------------------------------------
# gossip_pair TEST NAME1 NAME2 LOGTAG ARGS...: C nodes 1 and 2 with --cluster gossip and ARGS see each other's nodeup.
gossip_pair() {
  t=$1 n1=$2 n2=$3 l=$4
  shift 4
  cnode_at 1 "$n1" "$TMP/${l}1.log" --cluster gossip "$@"
  a=$LAST
  cnode_at 2 "$n2" "$TMP/${l}2.log" --cluster gossip "$@"
  b=$LAST
  if wait_for "$TMP/${l}1.log" "nodeup $n2" 15 && wait_for "$TMP/${l}2.log" "nodeup $n1" 5 &&
    grep -qE "discovery \(gossip\): connected to ($n1|$n2) \(heartbeat from" "$TMP/${l}1.log" "$TMP/${l}2.log"; then
    ok "$t"
  else
    bad "$t" "no nodeup both ways in 15 s (logs $TMP/${l}1.log, ${l}2.log)"
  fi
  stop $a $b
}
gossip_pair gossip_two_c_nodes "$C1" "$C2" g $GOSSIP_EXTRA

# ---- gossip: C and the Elixir stand-in, both ways, with and without a secret -----------------------------------------
epmd_in 3
for secret in "" s3cr3t; do
  sarg=""
  [ -n "$secret" ] && sarg="--gossip-secret $secret"
  tag=${secret:+_secret}
  # The Elixir node only listens: it connects because it heard the C node's heartbeat.
  standin_at 3 "$TMP/e_listen$tag.log" GOSSIP_MODE=listen GOSSIP_PORT=$GPORT ${secret:+GOSSIP_SECRET=$secret}
  e=$LAST
  wait_for "$TMP/e_listen$tag.log" "^standin" 20
  cnode_at 1 "$C1" "$TMP/c_listen$tag.log" --cluster gossip $GOSSIP_EXTRA $sarg
  c=$LAST
  if wait_for "$TMP/e_listen$tag.log" "^connected $C1" 15 && wait_for "$TMP/c_listen$tag.log" "nodeup $E3" 5; then
    ok "gossip_elixir_hears_c$tag"
  else
    bad "gossip_elixir_hears_c$tag" "the Elixir node did not connect (logs $TMP/e_listen$tag.log, c_listen$tag.log)"
  fi
  stop $c $e
  # The Elixir node only sends: the C node connects because it heard the Elixir heartbeat.
  standin_at 3 "$TMP/e_send$tag.log" GOSSIP_MODE=send GOSSIP_PORT=$GPORT ${secret:+GOSSIP_SECRET=$secret}
  e=$LAST
  wait_for "$TMP/e_send$tag.log" "^standin" 20
  cnode_at 1 "$C1" "$TMP/c_send$tag.log" --cluster gossip $GOSSIP_EXTRA $sarg
  c=$LAST
  if wait_for "$TMP/c_send$tag.log" "discovery \(gossip\): connected to $E3 \(heartbeat from" 15 &&
    wait_for "$TMP/e_send$tag.log" "^nodeup $C1" 5; then
    ok "gossip_c_hears_elixir$tag"
  else
    bad "gossip_c_hears_elixir$tag" "the C node did not connect (logs $TMP/c_send$tag.log, e_send$tag.log)"
  fi
  stop $c $e
done
# Another secret: both sides ignore each other's heartbeats.
standin_at 3 "$TMP/e_wrong.log" GOSSIP_MODE=both GOSSIP_PORT=$GPORT GOSSIP_SECRET=theirs
e=$LAST
wait_for "$TMP/e_wrong.log" "^standin" 20
cnode_at 1 "$C1" "$TMP/c_wrong.log" --cluster gossip $GOSSIP_EXTRA --gossip-secret ours
c=$LAST
if wait_for "$TMP/c_wrong.log" "ignored [0-9]+ bytes from .*not encrypted with our secret" 12 &&
  wait_for "$TMP/e_wrong.log" "^ignored" 8 && ! grep -q "nodeup" "$TMP/c_wrong.log"; then
  ok gossip_wrong_secret
else
  bad gossip_wrong_secret "heartbeats of another secret were not ignored both ways (logs $TMP/c_wrong.log, e_wrong.log)"
fi
stop $c $e
[ -n "$EPMDS" ] && stop $EPMDS
EPMDS=""

# ---- gossip under inet6: names with IPv6 addresses, and heartbeats over IPv6 multicast ----------------------------------
if [ -n "$NETNS" ]; then
  gossip_pair gossip_inet6 "c@${V6}:11" "c@${V6}:12" g6 --proto-dist inet6_tcp
  # A cnode extension: libcluster's Gossip is IPv4 only.
  gossip_pair gossip_ipv6_multicast "c@${V6}:11" "c@${V6}:12" g7 --proto-dist inet6_tcp --gossip-multicast-addr ff05::4532
else
  skip gossip_inet6 "no namespaces"
fi

# ---- hosts: back-off while the peer is missing, reconnect when it is lost --------------------------------------------
cnode_at 1 "$C1" "$TMP/h1.log" --cluster "hosts:$C2"
a=$LAST
wait_for "$TMP/h1.log" "cannot connect to $C2 \(listed in hosts\): .*next try in" 10
sleep 2
cnode_at 2 "$C2" "$TMP/h2.log"
b=$LAST
if wait_for "$TMP/h1.log" "connected to $C2 \(listed in hosts\)" 15 && grep -q "next try in 2000 ms" "$TMP/h1.log"; then
  stop $b
  cnode_at 2 "$C2" "$TMP/h2b.log"
  b=$LAST
  if wait_for "$TMP/h1.log" "lost $C2 .*reconnecting" 5 && wait_for "$TMP/h2b.log" "nodeup $C1" 15; then
    ok hosts_backoff_and_reconnect
  else
    bad hosts_backoff_and_reconnect "not reconnected after the peer restarted (log $TMP/h1.log)"
  fi
else
  bad hosts_backoff_and_reconnect "no connect with back-off to a late peer (log $TMP/h1.log)"
fi
stop $a $b

# ---- DNS: A records, then SRV records, from a real dnsmasq -------------------------------------------------------------
if command -v dnsmasq >/dev/null 2>&1; then
  HOSTS=$TMP/dns.hosts
  if [ -n "$NETNS" ]; then
    DNS_AT="--listen-address=$SUB.1 --port=53"
    DNS_NS=${P}h
    DNS_ARG=""
    D1=$C1 D2=c@$(ip_of 2) D3=c@$(ip_of 3) A1=$(ip_of 1) A2=$(ip_of 2) A3=$(ip_of 3)
  else
    DPORT=$(erl -noshell -eval '{ok,S}=gen_udp:open(0),{ok,P}=inet:port(S),io:format("~b",[P]),halt().')
    DNS_AT="--listen-address=127.0.0.1 --port=$DPORT"
    DNS_NS=""
    DNS_ARG="--dns-server 127.0.0.1:$DPORT"
    D1=d@127.0.0.1 D2=c@127.0.0.1 D3="" A1=127.0.0.3 A2=127.0.0.1 A3=""
  fi
  # dnsmasq_run EXTRA...: dnsmasq answering from $HOSTS (re-read on SIGHUP) and the SRV records given.
  dnsmasq_run() {
    start "$DNS_NS" "$TMP/dnsmasq.log" dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts \
      --bind-interfaces $DNS_AT --local=/test/ --addn-hosts="$HOSTS" --user=root --pid-file= --log-queries "$@"
    DNSMASQ=$LAST
    sleep 0.5
  }
  # Three answers: INIT at first (NEW0 connected), then ADD added (NEW1 connected), then DROP removed (GONE
  # disconnected). On loopback one EPMD holds the nodes, so only one node may be called c: the first answer names
  # a dead address, the one added is the node, then it is removed again.
  if [ -n "$NETNS" ]; then
    INIT="$A1 $A2" NEW0="connected to $D2" ADD="$A1 $A2 $A3" NEW1=$D3 DROP="$A1 $A3" GONE=$D2
  else
    INIT="$A1" NEW0="cannot connect to c@$A1" ADD="$A1 $A2" NEW1=$D2 DROP="$A1" GONE=$D2
  fi
  answer() { for ip in "$@"; do echo "$ip svc.test"; done >"$HOSTS"; }
  answer $INIT
  dnsmasq_run
  cnode_at 2 "$D2" "$TMP/d2.log"
  b=$LAST
  c=""
  if [ -n "$NETNS" ]; then
    cnode_at 3 "$D3" "$TMP/d3.log"
    c=$LAST
  fi
  cnode_at 1 "$D1" "$TMP/d1.log" --cluster dns:svc.test --dns-basename c --dns-poll-ms 500 $DNS_ARG
  a=$LAST
  if wait_for "$TMP/d1.log" "$NEW0 \(the A/AAAA records of svc.test\)" 10; then
    answer $ADD
    kill -HUP "$DNSMASQ"
    if wait_for "$TMP/d1.log" "connected to $NEW1 \(the A/AAAA records of svc.test\)" 10; then
      answer $DROP
      kill -HUP "$DNSMASQ"
      if wait_for "$TMP/d1.log" "$GONE is no longer in the A/AAAA records of svc.test: disconnecting" 10 &&
        wait_for "$TMP/d1.log" "nodedown $GONE" 5; then
        if grep -q "connecting to $D1\b" "$TMP/d1.log"; then
          bad dns_a_records "the node connected to itself"
        else
          ok dns_a_records
        fi
      else
        bad dns_a_records "a removed record's node was not dropped (log $TMP/d1.log)"
      fi
    else
      bad dns_a_records "a record added later was not connected (log $TMP/d1.log)"
    fi
  else
    bad dns_a_records "the first answer was not followed (logs $TMP/d1.log, dnsmasq.log)"
  fi
  stop $a $b $c $DNSMASQ
  if [ -n "$NETNS" ]; then
    # SRV: basename@target; the targets resolve through the same dnsmasq.
    printf '%s n1.svc.test\n%s n2.svc.test\n%s n3.svc.test\n' "$A1" "$A2" "$A3" >"$HOSTS"
    SRV=_cnode._tcp.svc.test
    dnsmasq_run --srv-host=$SRV,n1.svc.test,4369 --srv-host=$SRV,n2.svc.test,4369
    cnode_at 2 c@n2.svc.test "$TMP/s2.log"
    b=$LAST
    cnode_at 3 c@n3.svc.test "$TMP/s3.log"
    c=$LAST
    cnode_at 1 c@n1.svc.test "$TMP/s1.log" --cluster dnssrv:$SRV --dns-poll-ms 500
    a=$LAST
    if wait_for "$TMP/s1.log" "connected to c@n2.svc.test \(the SRV records of $SRV\)" 10; then
      stop $DNSMASQ
      dnsmasq_run --srv-host=$SRV,n1.svc.test,4369 --srv-host=$SRV,n3.svc.test,4369
      if wait_for "$TMP/s1.log" "connected to c@n3.svc.test \(the SRV records" 10 &&
        wait_for "$TMP/s1.log" "c@n2.svc.test is no longer in the SRV records of $SRV: disconnecting" 10 &&
        ! grep -q "connecting to c@n1.svc.test" "$TMP/s1.log"; then
        ok dnssrv_records
      else
        bad dnssrv_records "the changed SRV records were not followed (log $TMP/s1.log)"
      fi
    else
      bad dnssrv_records "no connect from the SRV records (logs $TMP/s1.log, dnsmasq.log)"
    fi
    stop $a $b $c $DNSMASQ
    # AAAA under inet6.
    printf '%s svc6.test\n%s svc6.test\n' "${V6}:11" "${V6}:12" >"$HOSTS"
    dnsmasq_run
    cnode_at 2 "c@${V6}:12" "$TMP/a2.log" --proto-dist inet6_tcp
    b=$LAST
    cnode_at 1 "c@${V6}:11" "$TMP/a1.log" --proto-dist inet6_tcp --cluster dns:svc6.test --dns-poll-ms 500
    a=$LAST
    if wait_for "$TMP/a1.log" "connected to c@${V6}:12 \(the A/AAAA records of svc6.test\)" 10; then
      ok dns_aaaa_inet6
    else
      bad dns_aaaa_inet6 "no connect from AAAA records under inet6 (log $TMP/a1.log)"
    fi
    stop $a $b $DNSMASQ
  else
    skip dnssrv_records "no namespaces (SRV targets need a host each)"
  fi
else
  bad dns "dnsmasq not installed (apt-get install dnsmasq-base)"
fi

echo "discovery_suite: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
