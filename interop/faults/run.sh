#!/bin/sh
# interop/faults/run.sh: the network-fault harness (issue 24) and its runner; `make faults` runs
# `sh interop/faults/run.sh BUILD` (the scenarios of interop/faults/faults.escript).
#
#   sh interop/faults/run.sh BUILD [SCRIPT.escript] [scenario...]
#
# What it makes (and removes on any exit, Ctrl-C included, by the trap below):
#   - a hub network namespace <P>h holding a bridge br0 (10.77.0.1/24, the driver's address) and
#     FAULTS_NODES (default 5) node namespaces <P>1..<P>N, each with a veth eth0 on the bridge at 10.77.0.1I
#     (I = 1..N), lo up, and its own OTP epmd on port 4369; P = flt<pid>, so runs side by side never meet;
#   - in each node namespace the nft table `inet faults`: sets drop_in/drop_out (addresses whose packets are
#     dropped: a partition, one-way or both), reset_in (their TCP packets answered with a reset: a cut
#     connection), chains loss_in/loss_out (jumped to for eth0 traffic: random loss with `numgen`), and a
#     named counter from_J/to_J of the bytes exchanged with node namespace J;
#   - delay and jitter: this kernel has no netem (`tc qdisc add ... netem` answers "Specified qdisc kind is
#     unknown"; /proc/config.gz: "# CONFIG_NET_SCH_NETEM is not set"), and nft's `queue` statement needs
#     CONFIG_NFT_QUEUE, also not set ("Could not process rule: No such file or directory"); the kernel has the
#     xtables NFQUEUE target, so the driver sends a namespace's eth0 output to a queue with
#     `iptables-nft -A OUTPUT -o eth0 -j NFQUEUE` and runs BUILD/faults_delay (faults_delay.c, libnetfilter-queue)
#     there, which holds each packet DELAY +- JITTER ms (packets overtake each other: reordering). If a
#     kernel has netem, the harness says so, and still uses the delayer so that every kernel runs the same test.
# Then it runs SCRIPT (default interop/faults/faults.escript) inside the hub namespace with interop_lib's
# arguments (--cnode --repo --build --epmd-port 4369 --tmp --pidfile) plus --prefix P --subnet 10.77.0
# --nodes N --delayer BIN; the escript compiles interop/interop_lib.erl and interop/faults/faults_lib.erl
# (the driver's API: nodes in namespaces, partitions, cuts, loss, delay, SIGSTOP; see its header) and prints
# `ok name` / `FAIL name: reason` and `faults: N passed, N failed` (another SCRIPT prints its own name).
# Every process started is listed in the pid file (+pid/-pid) and killed by pid at the end.
# Needs root, `ip netns`, nft, iptables-nft and a kernel with nf_tables and NFQUEUE: otherwise it prints
# why and `faults: 0 passed, 1 failed` and fails (CI runs as root). FAULTS_KEEP=1 keeps the log directory.
set -u

BUILD=${1:-build}
[ $# -gt 0 ] && shift
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
case "$BUILD" in /*) BUILD_ABS=$BUILD ;; *) BUILD_ABS=$(pwd)/$BUILD ;; esac
SCRIPT=$HERE/faults.escript
case "${1:-}" in
  *.escript)
    s=$1
    [ -f "$s" ] || s=$HERE/$1 # a name alone: one of interop/faults/
    SCRIPT=$(cd "$(dirname "$s")" && pwd)/$(basename "$s")
    shift
    ;;
esac
NAME=$(basename "$SCRIPT" .escript)
[ "$NAME" = faults ] || NAME=${NAME%_suite}
N=${FAULTS_NODES:-5}
SUB=10.77.0
P=flt$$
HUB=${P}h

fail_setup() {
  echo "FAIL setup: $1"
  echo "$NAME: 0 passed, 1 failed"
  exit 1
}

[ "$(id -u)" = 0 ] || fail_setup "needs root (network namespaces, nft); run as root, as CI does"
for tool in ip nft iptables-nft erl escript epmd; do
  command -v $tool >/dev/null 2>&1 || fail_setup "'$tool' not found (make deps installs iproute2 nftables iptables erlang-nox)"
done
[ -x "$BUILD_ABS/cnode" ] || fail_setup "$BUILD_ABS/cnode not built (make all)"
[ -x "$BUILD_ABS/faults_delay" ] || fail_setup "$BUILD_ABS/faults_delay not built (make faults builds it)"
[ "$N" -ge 2 ] && [ "$N" -le 9 ] || fail_setup "FAULTS_NODES must be 2..9"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cnode-faults.XXXXXX")
PIDFILE=$TMP/pids
NSFILE=$TMP/netns
: >"$PIDFILE"
: >"$NSFILE"
SCRIPT_PID=
RC=1

# Kills every pid recorded with "+pid" and not yet with "-pid", then deletes the namespaces (their nft tables,
# veths and bridge go with them).
cleanup() {
  trap - EXIT INT TERM HUP
  [ -n "$SCRIPT_PID" ] && kill -9 "$SCRIPT_PID" 2>/dev/null
  for p in $(awk '$1 ~ /^\+/ { live[substr($1,2)] = 1 } $1 ~ /^-/ { delete live[substr($1,2)] }
                  END { for (p in live) print p }' "$PIDFILE"); do
    kill -9 "$p" 2>/dev/null
  done
  sleep 0.2
  for ns in $(cat "$NSFILE"); do ip netns del "$ns" 2>/dev/null; done
  if [ -z "${FAULTS_KEEP:-}" ] && [ "$RC" = 0 ]; then rm -rf "$TMP"; fi
}
trap 'cleanup' EXIT
trap 'RC=130; exit 130' INT
trap 'RC=143; exit 143' TERM HUP

# ---- the network --------------------------------------------------------------------------------------------
ip netns add "$HUB" || fail_setup "ip netns add $HUB failed (no network namespaces here?)"
echo "$HUB" >>"$NSFILE"
ip -n "$HUB" link set lo up
ip -n "$HUB" link add br0 type bridge
ip -n "$HUB" addr add "$SUB.1/24" dev br0
ip -n "$HUB" link set br0 up

# nft_base I: the table `inet faults` of node namespace I (see the header).
nft_base() {
  counters="" rules_in="" rules_out=""
  j=1
  while [ $j -le "$N" ]; do
    counters="$counters
  counter from_$j { }
  counter to_$j { }"
    rules_in="$rules_in
    ip saddr $SUB.1$j counter name from_$j"
    rules_out="$rules_out
    ip daddr $SUB.1$j counter name to_$j"
    j=$((j + 1))
  done
  ip netns exec "$P$1" nft -f - <<EOF
table inet faults {
  set drop_in { type ipv4_addr; }
  set drop_out { type ipv4_addr; }
  set reset_in { type ipv4_addr; }
  $counters
  chain loss_in { }
  chain loss_out { }
  chain input {
    type filter hook input priority 0; policy accept;
    $rules_in
    ip saddr @drop_in drop
    ip saddr @reset_in tcp flags & rst == 0 reject with tcp reset
    iifname "eth0" jump loss_in
  }
  chain output {
    type filter hook output priority 0; policy accept;
    $rules_out
    ip daddr @drop_out drop
    oifname "eth0" jump loss_out
  }
}
EOF
}

i=1
while [ $i -le "$N" ]; do
  ns=$P$i
  ip netns add "$ns" || fail_setup "ip netns add $ns failed"
  echo "$ns" >>"$NSFILE"
  ip -n "$HUB" link add "vp$i" type veth peer name eth0 netns "$ns"
  ip -n "$HUB" link set "vp$i" master br0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$SUB.1$i/24" dev eth0
  ip -n "$ns" link set eth0 up
  nft_base "$i" || fail_setup "nft: cannot make table inet faults in $ns (nf_tables missing?)"
  i=$((i + 1))
done

# The probes the header speaks of, printed so a log says what this kernel offers.
if ip netns exec "${P}1" tc qdisc add dev lo root netem delay 1ms 2>/dev/null; then
  ip netns exec "${P}1" tc qdisc del dev lo root 2>/dev/null
  NETEM="netem: present (the NFQUEUE delayer is used anyway)"
else
  NETEM="netem: absent (delay and jitter by the NFQUEUE delayer)"
fi
ip netns exec "${P}1" iptables-nft -A OUTPUT -o lo -p udp --dport 9 -j NFQUEUE --queue-num 9 --queue-bypass 2>/dev/null &&
  ip netns exec "${P}1" iptables-nft -F OUTPUT 2>/dev/null ||
  fail_setup "iptables-nft -j NFQUEUE refused (the kernel needs xt_NFQUEUE and nft_compat)"

# One epmd per namespace, the driver's too.
for ns in $HUB $(i=1; while [ $i -le "$N" ]; do echo "$P$i"; i=$((i + 1)); done); do
  ip netns exec "$ns" epmd -port 4369 >"$TMP/epmd_$ns.log" 2>&1 &
  echo "+$! epmd_$ns" >>"$PIDFILE"
done
for ns in $HUB $(i=1; while [ $i -le "$N" ]; do echo "$P$i"; i=$((i + 1)); done); do
  k=0
  until ip netns exec "$ns" epmd -port 4369 -names >/dev/null 2>&1; do
    k=$((k + 1))
    [ $k -gt 50 ] && fail_setup "epmd did not start in $ns: $(cat "$TMP/epmd_$ns.log")"
    sleep 0.1
  done
done
echo "  # $NAME: namespaces $HUB (bridge $SUB.1/24) and ${P}1..$P$N ($SUB.11..$SUB.1$N); $NETEM; logs in $TMP"

# ---- the scenarios --------------------------------------------------------------------------------------------
ip netns exec "$HUB" env ERL_EPMD_PORT=4369 HOME="$TMP" escript "$SCRIPT" --cnode "$BUILD_ABS/cnode" --repo "$REPO" \
  --build "$BUILD_ABS" --epmd-port 4369 --tmp "$TMP" --pidfile "$PIDFILE" --prefix "$P" --subnet "$SUB" \
  --nodes "$N" --delayer "$BUILD_ABS/faults_delay" "$@" &
SCRIPT_PID=$!
wait "$SCRIPT_PID"
RC=$?
SCRIPT_PID=
exit "$RC"
