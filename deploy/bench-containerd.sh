#!/usr/bin/env bash
# Benchmark (not a timed test): containerd-rs + containerd-shim-rs beside the real containerd 1.6
# + containerd-shim-runc-v2, both running runc-rs (`ctr run --runc-binary`), driven by Debian's
# ctr. Prints side by side:
#   - the median of `ctr run --rm busybox <id> true` over $RUNS runs (default 15, min 10);
#   - the RSS of one shim with a running container (busybox sleep), and its anonymous part;
#   - the idle RSS of the daemon (image imported, no container running);
#   - the time from starting the daemon until its socket answers, twice: measured by a small
#     Rust probe (containerd-rs/examples/answer_time.rs: spawns the daemon, then calls
#     Version every millisecond), and by polling with `ctr version` (the same ctr on both
#     sides, so ctr's own start-up, ~10-20 ms, is in both of those figures). Each on a fresh root.
# Each daemon runs in its own temp root (socket, root, state, namespace, cgroup); everything the
# script starts is stopped by pid and cleaned by path at exit.
# Binaries: $ENGINE_BIN_DIR, else deploy/build-release.sh (target/engine-bin).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
RUNS=${RUNS:-15}
[ "$RUNS" -ge 10 ] || RUNS=10
[ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 1; }
command -v ctr >/dev/null || { echo "bench: needs ctr (Debian package containerd)" >&2; exit 1; }

TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
BIN=${ENGINE_BIN_DIR:-$(bash deploy/build-release.sh)}
MKIMAGE=$BIN/mkimage
PROBE=$TARGET_DIR/release/examples/answer_time
[ -x "$PROBE" ] || cargo build --release -p containerd-rs --example answer_time >&2

SUFFIX=$(od -An -N3 -tx1 /dev/urandom | tr -d " \n")
ROOT=/tmp/bc-$SUFFIX
NS=bc$SUFFIX
mkdir -p "$ROOT"
DAEMON_PID=
"$MKIMAGE" busybox --busybox /usr/bin/busybox -o "$ROOT/busybox.tar" >/dev/null

stop_daemon() {
  [ -n "$DAEMON_PID" ] || return 0
  kill -TERM "$DAEMON_PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$DAEMON_PID" 2>/dev/null || true
  wait "$DAEMON_PID" 2>/dev/null || true
  DAEMON_PID=
}

cleanup() {
  set +e
  stop_daemon
  # Shims and container inits, by the pid files under our root.
  for f in $(find "$ROOT" \( -name init.pid -o -name shim.pid \) 2>/dev/null); do
    kill -KILL "$(cat "$f")" 2>/dev/null
  done
  sleep 0.3
  grep -o " $ROOT[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
  find /sys/fs/cgroup -maxdepth 2 -type d -name "$NS" -prune -print 2>/dev/null |
    while read -r d; do find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
  rm -rf "$ROOT"
}
trap cleanup EXIT

now_us() { echo $(( $(date +%s%N) / 1000 )); }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# Anonymous memory (heap, stacks, written data): what each further shim adds, since the pages of
# the executable are one copy in the page cache shared by every shim.
anon_kib() { awk '/^Anonymous:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
mib() { awk -v k="$1" 'BEGIN { if (k > 0) printf "%.1f MiB", k / 1024; else printf "n/a" }'; }
median_ms() { sort -n | awk '{a[NR]=$1} END { m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.1f", m / 1000 }'; }

# measure <name> <sock> <fresh-dirs> <command...>: starts the daemon, sets PROBE_MS START_MS
# MEDIAN_MS RSS_IDLE RSS_SHIM. <fresh-dirs> (space-separated) are removed before each start.
measure() {
  local name=$1 sock=$2 fresh=$3 t0 t1 i times=() pid shim
  shift 3
  local C=(ctr --address "$sock" -n "$NS")
  # shellcheck disable=SC2086
  rm -rf $fresh
  PROBE_MS=$("$PROBE" "$sock" "$ROOT/$name.pid" "$@" 2>"$ROOT/$name.probe.log") ||
    { cat "$ROOT/$name.probe.log" >&2; exit 1; }
  DAEMON_PID=$(cat "$ROOT/$name.pid")
  stop_daemon
  # shellcheck disable=SC2086
  rm -rf $fresh
  t0=$(now_us)
  "$@" </dev/null >"$ROOT/$name.log" 2>&1 &
  DAEMON_PID=$!
  until ctr --address "$sock" version >/dev/null 2>&1; do
    kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$ROOT/$name.log" >&2; exit 1; }
    [ $(( $(now_us) - t0 )) -lt 30000000 ] || { echo "bench: $name did not answer" >&2; exit 1; }
    sleep 0.002
  done
  t1=$(now_us)
  START_MS=$(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.1f", d / 1000 }')
  "${C[@]}" images import "$ROOT/busybox.tar" >/dev/null
  local run=("${C[@]}" run --rm --runc-binary "$BIN/runc-rs" --fifo-dir "$ROOT/fifo" --null-io)
  "${run[@]}" docker.io/library/busybox:latest warm true
  for i in $(seq "$RUNS"); do
    t0=$(now_us)
    "${run[@]}" docker.io/library/busybox:latest "r$i" true
    t1=$(now_us)
    times+=($((t1 - t0)))
  done
  MEDIAN_MS=$(printf '%s\n' "${times[@]}" | median_ms)
  sleep 2
  RSS_IDLE=$(rss_kib "$DAEMON_PID")
  "${C[@]}" run -d --runc-binary "$BIN/runc-rs" --fifo-dir "$ROOT/fifo" --null-io \
    docker.io/library/busybox:latest idle sleep 600
  sleep 2
  pid=$("${C[@]}" task ls | awk '$1 == "idle" {print $2}')
  shim=$(awk '{ sub(/.*\) /, ""); split($0, f, " "); print f[2] }' "/proc/$pid/stat")
  RSS_SHIM=$(rss_kib "$shim")
  ANON_SHIM=$(anon_kib "$shim")
  SHIM_EXE=$(readlink "/proc/$shim/exe" || echo '?')
  "${C[@]}" task kill -s KILL idle
  "${C[@]}" task delete idle >/dev/null 2>&1 || { sleep 1; "${C[@]}" task delete idle >/dev/null; }
  "${C[@]}" containers rm idle
  stop_daemon
}

echo "containerd-rs: $BIN/containerd-rs, root $ROOT/ours" >&2
mkdir -p "$ROOT/ours"
measure ours "$ROOT/ours/c.sock" "$ROOT/ours/root $ROOT/ours/state" "$BIN/containerd-rs" \
  --address "$ROOT/ours/c.sock" --root "$ROOT/ours/root" --state "$ROOT/ours/state" \
  --shim-binary "$BIN/containerd-shim-rs"
O=("$MEDIAN_MS" "$RSS_SHIM" "$RSS_IDLE" "$START_MS" "$SHIM_EXE" "$PROBE_MS" "$ANON_SHIM")

K=("n/a" 0 0 "n/a" "-" "n/a" 0) KVER="not installed"
if command -v containerd >/dev/null; then
  KVER=$(containerd --version | awk '{print $3}')
  mkdir -p "$ROOT/real"
  cat >"$ROOT/real/config.toml" <<EOF
version = 2
root = "$ROOT/real/root"
state = "$ROOT/real/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$ROOT/real/c.sock"
[ttrpc]
  address = "$ROOT/real/c.sock.ttrpc"
[debug]
  address = "$ROOT/real/debug.sock"
EOF
  echo "containerd $KVER: root $ROOT/real" >&2
  measure real "$ROOT/real/c.sock" "$ROOT/real/root $ROOT/real/state" \
    containerd --config "$ROOT/real/config.toml"
  K=("$MEDIAN_MS" "$RSS_SHIM" "$RSS_IDLE" "$START_MS" "$SHIM_EXE" "$PROBE_MS" "$ANON_SHIM")
fi

printf '\n%-46s %-18s %-18s %s\n' "" "containerd-rs" "containerd $KVER" "target"
printf '%-46s %-18s %-18s %s\n' "ctr run --rm busybox true (median of $RUNS)" "${O[0]} ms" "${K[0]} ms" "<= 60 ms"
printf '%-46s %-18s %-18s %s\n' "shim RSS, one running container" "$(mib "${O[1]}")" "$(mib "${K[1]}")" "<= 2 MB"
printf '%-46s %-18s %-18s %s\n' "  of which anonymous (each further shim)" "$(mib "${O[6]}")" "$(mib "${K[6]}")" ""
printf '%-46s %-18s %-18s %s\n' "daemon idle RSS" "$(mib "${O[2]}")" "$(mib "${K[2]}")" "<= 10 MB"
printf '%-46s %-18s %-18s %s\n' "start until the socket answers (Version probe)" "${O[5]} ms" "${K[5]} ms" "<= 30 ms"
printf '%-46s %-18s %-18s %s\n' "start until \`ctr version\` answers" "${O[3]} ms" "${K[3]} ms" "(ctr start-up included)"
printf '(shims: %s | %s; runtime: %s)\n' "${O[4]}" "${K[4]}" "$BIN/runc-rs"
