#!/bin/sh
# The OTP version matrix: `sh interop/otp_matrix.sh BUILD [debian-suite...]` (what `make test-otp` runs; the
# default suites are trixie and sid: OTP 27 and the newest OTP in Debian). Root only.
#
# Per Debian suite, a chroot made once with `debootstrap --variant=minbase` from the host's Debian mirror and
# cached in $CNODE_OTP_CACHE (/var/cache/cnode-otp)/<suite>; its stamp file (.cnode-otp-complete, written last,
# holding the package list) says it is complete, so an interrupted or outdated one is made again. In a private
# mount namespace (unshare -m) /proc, /dev, /dev/pts, /sys, /tmp, /etc/hosts, the repository (and BUILD when it
# is elsewhere) and the shared test vectors (../shared, /work/shared) are bind-mounted at the same paths inside,
# and interop/run.sh runs in the chroot: that release's erl, escript, epmd and elixir, with the host-built cnode
# (its libuv and libssl come from the chroot). The chroot shares the host's network, so everything talks over
# loopback as in `make interop`, on free ports picked there. Cleanup: run.sh stops what it started (its pid
# file); afterwards every process still rooted in the chroot is killed by pid, and the mounts are unmounted (the
# namespace drops them anyway when its last process exits, even after kill -9). A lock per suite keeps two runs
# from sharing a chroot at once.
#
# Prints run.sh's output, then one line per release:
#   otp-matrix: OTP 27.3.4.1 (trixie, Elixir 1.18.3): N passed, N failed (T s)
# and exits non-zero if any test failed. INTEROP_SEED, INTEROP_KEEP, INTEROP_FAKE, INTEROP_ONLY, TERM_SUITE_SEED and
# RING_SUITE_SEED are passed to run.sh.
# CNODE_OTP_MIRROR overrides the mirror (default: the first .../debian URI in the host's apt sources).
set -u

PKGS="erlang-nox erlang-dev erlang-ssl elixir make openssl procps iproute2 libuv1t64 liburing2 libssl3t64 libc-ares2 dnsmasq-base
  libmicrohttpd12t64 python3-yaml"
PATH_IN=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
STAMP=.cnode-otp-complete

# ---- inside the private mount namespace: `otp_matrix.sh --inside DIR REPO BUILD_ABS` -----------------------
if [ "${1:-}" = "--inside" ]; then
  DIR=$2 REPO=$3 BUILD_ABS=$4
  MOUNTED=""
  CHILD=""
  # Processes whose root is this chroot (the lock makes them ours): what run.sh left, if anything.
  rooted() {
    for p in /proc/[0-9]*; do
      [ "$(readlink "$p/root" 2>/dev/null)" = "$DIR" ] && echo "${p#/proc/}"
    done
  }
  cleanup() {
    trap - EXIT INT TERM HUP
    if [ -n "$CHILD" ] && kill -0 "$CHILD" 2>/dev/null; then
      kill -TERM "$CHILD" 2>/dev/null
      i=0
      while kill -0 "$CHILD" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    fi
    left=$(rooted)
    if [ -n "$left" ]; then
      echo "otp-matrix: killing processes left in the chroot: $(echo $left)"
      kill -9 $left 2>/dev/null
      sleep 0.2
    fi
    for m in $MOUNTED; do # innermost first
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "otp-matrix: cannot unmount $m"
    done
  }
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM HUP

  bind() { # bind SRC: mounted at the same path in the chroot
    mkdir -p "$DIR$1" && mount --bind "$1" "$DIR$1" || { echo "otp-matrix: cannot bind-mount $1"; exit 1; }
    MOUNTED="$DIR$1 $MOUNTED"
  }
  # The chroot's root a mount point of its own: `ip netns exec` (discovery_suite, ops_suite) makes / a slave mount,
  # which fails on a plain directory.
  mount --bind "$DIR" "$DIR" && MOUNTED="$DIR" || { echo "otp-matrix: cannot bind-mount $DIR onto itself"; exit 1; }
  bind /proc
  bind /dev
  bind /dev/pts
  bind /sys
  bind /tmp
  # The host's name resolution (localhost, the host name) for erl and cnode; minbase has no /etc/hosts.
  [ -e "$DIR/etc/hosts" ] || : >"$DIR/etc/hosts"
  mount --bind /etc/hosts "$DIR/etc/hosts" && MOUNTED="$DIR/etc/hosts $MOUNTED"
  case "$REPO/" in /tmp/*) ;; *) bind "$REPO" ;; esac
  case "$BUILD_ABS/" in "$REPO"/*|/tmp/*) ;; *) bind "$BUILD_ABS" ;; esac
  # The shared test vectors term_suite reads (../shared of the repository, else /work/shared), when present.
  for d in "$(dirname "$REPO")/shared" /work/shared; do
    [ -d "$d" ] && ! mountpoint -q "$DIR$d" && case "$d/" in "$REPO"/*|/tmp/*) ;; *) bind "$d" ;; esac
  done

  missing=$(chroot "$DIR" /usr/bin/ldd "$BUILD_ABS/cnode" 2>&1 | grep 'not found')
  if [ -n "$missing" ]; then
    echo "FAIL setup: $BUILD_ABS/cnode lacks libraries in $DIR: $missing"
    echo "interop: 0 passed, 1 failed"
    exit 1
  fi

  # A clean environment: the chroot's PATH, a UTF-8 locale for Elixir; CNODE_PREBUILT makes the `make run` test
  # run the host build as it is (no compiler in there).
  chroot "$DIR" /usr/bin/env -i PATH="$PATH_IN" HOME=/root LANG=C.UTF-8 TMPDIR=/tmp CNODE_PREBUILT=1 \
    ${INTEROP_SEED:+INTEROP_SEED=$INTEROP_SEED} ${INTEROP_KEEP:+INTEROP_KEEP=$INTEROP_KEEP} \
    ${INTEROP_FAKE:+INTEROP_FAKE=$INTEROP_FAKE} ${TERM_SUITE_SEED:+TERM_SUITE_SEED=$TERM_SUITE_SEED} \
    ${INTEROP_ONLY:+INTEROP_ONLY="$INTEROP_ONLY"} \
    ${RING_SUITE_SEED:+RING_SUITE_SEED=$RING_SUITE_SEED} \
    /bin/sh -c 'cd "$1" && exec sh interop/run.sh "$2"' sh "$REPO" "$BUILD_ABS" &
  CHILD=$!
  wait "$CHILD"
  rc=$?
  CHILD=""
  exit $rc
fi

# ---- the matrix ------------------------------------------------------------------------------------------
BUILD=${1:-build}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- trixie sid
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
case "$BUILD" in /*) BUILD_ABS=$BUILD ;; *) BUILD_ABS=$(pwd)/$BUILD ;; esac
CACHE=${CNODE_OTP_CACHE:-/var/cache/cnode-otp}

die() { echo "otp-matrix: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mounts)"
for tool in debootstrap unshare flock chroot; do
  command -v $tool >/dev/null 2>&1 || die "'$tool' not found (apt-get install debootstrap util-linux coreutils)"
done
[ -x "$BUILD_ABS/cnode" ] || die "$BUILD_ABS/cnode not built (make all)"

# The mirror the host uses: the first URI ending in /debian in its apt sources (deb822 or one-line format).
MIRROR=${CNODE_OTP_MIRROR:-$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
  /etc/apt/sources.list 2>/dev/null | grep -v '^[[:space:]]*#' | tr ' \t' '\n\n' |
  grep -E '^(https?|file)://.*/debian/?$' | head -n 1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

mkdir -p "$CACHE" || die "cannot create $CACHE"

# A signal stops the child we wait for (debootstrap's whole process group, or the namespace holder, which then
# cleans up), and the matrix stops after it.
CHILD=""
CHILD_GROUP=""
INTERRUPTED=""
on_signal() {
  INTERRUPTED=1
  [ -n "$CHILD" ] || return 0
  if [ -n "$CHILD_GROUP" ]; then kill -TERM "-$CHILD" 2>/dev/null; else kill -TERM "$CHILD" 2>/dev/null; fi
}
trap on_signal INT TERM HUP

# Waits for CHILD (a wait cut short by a trapped signal is resumed); its status in rc.
wait_child() {
  while :; do
    wait "$CHILD"
    rc=$?
    [ $rc -gt 128 ] && kill -0 "$CHILD" 2>/dev/null && continue
    break
  done
  CHILD=""
  CHILD_GROUP=""
}

# Makes CACHE/SUITE unless its stamp says it is complete with this package list. Called under the suite's lock.
ensure_chroot() {
  suite=$1 dir=$CACHE/$1
  [ -f "$dir/$STAMP" ] && [ "$(cat "$dir/$STAMP")" = "$PKGS" ] && return 0
  if grep -q " $dir[/ ]" /proc/self/mountinfo; then
    echo "otp-matrix: something is mounted under $dir; not removing it"
    return 1
  fi
  echo "otp-matrix: creating the $suite chroot in $dir from $MIRROR (a few minutes; log in $CACHE/$suite.log)"
  t0=$(date +%s)
  rm -rf "$dir"
  # In its own mount namespace, so the /proc and /sys debootstrap mounts never outlive it, and its own session,
  # so a signal stops all of it (wget, dpkg); without the stamp, the next run starts again.
  setsid unshare --mount --propagation private debootstrap --variant=minbase \
    --include="$(echo $PKGS | tr ' ' ,)" "$suite" "$dir" "$MIRROR" >"$CACHE/$suite.log" 2>&1 &
  CHILD=$!
  CHILD_GROUP=1
  wait_child
  [ -n "$INTERRUPTED" ] && { echo "otp-matrix: interrupted while creating the $suite chroot"; return 1; }
  if [ $rc != 0 ]; then
    echo "otp-matrix: debootstrap $suite failed; the end of $CACHE/$suite.log:"
    tail -n 15 "$CACHE/$suite.log" | sed 's/^/  /'
    return 1
  fi
  echo "$PKGS" >"$dir/$STAMP"
  echo "otp-matrix: created the $suite chroot in $(($(date +%s) - t0)) s"
}

# One release: make or reuse its chroot, run the suites in it, print its summary line into SUMMARY.
OUT=$(mktemp -d "${TMPDIR:-/tmp}/cnode-otp-matrix.XXXXXX") || die "cannot make a temporary directory"
SUMMARY=$OUT/summary
: >"$SUMMARY"
run_release() {
  suite=$1 dir=$CACHE/$1 log=$OUT/$1.out
  exec 9>"$CACHE/$suite.lock"
  if ! flock -n 9; then
    echo "otp-matrix: waiting for another run using the $suite chroot"
    flock 9
  fi
  if ! ensure_chroot "$suite"; then
    echo "otp-matrix: $suite: chroot not available, 0 passed, 1 failed" >>"$SUMMARY"
    exec 9>&-
    return
  fi
  otp=$(cat "$dir"/usr/lib/erlang/releases/*/OTP_VERSION 2>/dev/null | head -n 1)
  ex=$(chroot "$dir" dpkg-query -W -f '${Version}' elixir 2>/dev/null | sed 's/[.~+-]dfsg.*//; s/-.*//')
  echo "otp-matrix: == OTP $otp, Elixir $ex ($suite chroot $dir)"
  t0=$(date +%s)
  : >"$log"
  # run.sh's output goes to the terminal and to the log; the namespace holder is our child.
  unshare --mount --propagation private sh "$HERE/otp_matrix.sh" --inside "$dir" "$REPO" "$BUILD_ABS" \
    >"$log" 2>&1 &
  CHILD=$!
  tail -n +1 -f "$log" --pid=$CHILD 2>/dev/null &
  TAIL=$!
  wait_child
  wait "$TAIL" 2>/dev/null
  exec 9>&-
  secs=$(($(date +%s) - t0))
  line=$(grep '^interop: [0-9]* passed, [0-9]* failed' "$log" | tail -n 1)
  passed=$(echo "$line" | awk '{print $2+0}')
  failed=$(echo "$line" | awk '{print $4+0}')
  [ -z "$line" ] && failed=$((failed + 1))
  [ "$rc" != 0 ] && [ "$failed" = 0 ] && failed=1
  echo "otp-matrix: OTP $otp ($suite, Elixir $ex): $passed passed, $failed failed ($secs s)" >>"$SUMMARY"
  names=$(sed -n 's/^FAIL \([^: ]*\).*/\1/p' "$log" | sort -u | tr "\n" " " | sed "s/ $//")
  [ -n "$names" ] && echo "otp-matrix:   failed in $suite: $names" >>"$SUMMARY"
}

for suite in "$@"; do
  [ -n "$INTERRUPTED" ] && break
  run_release "$suite"
done
echo
cat "$SUMMARY"
[ -n "$INTERRUPTED" ] && { echo "otp-matrix: interrupted"; rm -rf "$OUT"; exit 130; }
if grep -q ' [1-9][0-9]* failed' "$SUMMARY" || [ ! -s "$SUMMARY" ]; then
  rm -rf "$OUT"
  exit 1
fi
rm -rf "$OUT"
exit 0
