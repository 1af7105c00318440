#!/usr/bin/env bash
# Benchmark (not a timed test). Prints, for our stack and, when dockerd is installed, for a
# private real Docker stack beside it:
#   - the median latency of `docker run --rm busybox true` over $RUNS runs (default 15, min 10);
#   - the idle resident memory (VmRSS) of the engine daemon, the containerd daemon and one shim
#     (with one `sleep` container running).
# Each stack runs in its own temp root with its own sockets and cgroup parent; everything the
# script starts is stopped by pid and cleaned by path at exit.
# Binaries: $ENGINE_BIN_DIR, else target/release (built if missing), else /usr/local/bin.
# BENCH_STACK=system measures the stack deploy/setup.sh started (/run/engine-api.sock) instead;
# BENCH_STACK=docker-only measures only the real Docker stack.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
RUNS=${RUNS:-15}
[ "$RUNS" -ge 10 ] || RUNS=10
DOCKER_CLI=${DOCKER_CLI:-$(command -v docker || true)}
[ -n "$DOCKER_CLI" ] || { echo "bench: needs a docker CLI" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 1; }

SUFFIX=$(od -An -N3 -tx1 /dev/urandom | tr -d " \n")
ROOT=/tmp/bn-$SUFFIX
mkdir -p "$ROOT"
PIDS_TO_STOP=()   # daemons, in stop order
log() { printf '  %s\n' "$*" >&2; }

if [ -n "${ENGINE_BIN_DIR:-}" ]; then
  BIN=$ENGINE_BIN_DIR
else
  BIN=${CARGO_TARGET_DIR:-$REPO/target}/release
  if [ ! -x "$BIN/engine-api" ] && command -v cargo >/dev/null; then
    cargo build --release --bins >&2
  fi
  [ -x "$BIN/engine-api" ] || BIN=/usr/local/bin
fi
MKIMAGE=$BIN/mkimage
[ -x "$MKIMAGE" ] || MKIMAGE=$(command -v mkimage || true)
[ -x "$MKIMAGE" ] || { echo "bench: mkimage not found" >&2; exit 1; }
"$MKIMAGE" busybox --busybox /usr/bin/busybox -o "$ROOT/busybox.tar" >/dev/null

stop_pid() { # SIGTERM, then SIGKILL after $2 seconds
  local pid=$1 t=${2:-15} i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq $((t * 10))); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  set +e
  for sock in "$ROOT/d.sock" "$ROOT/k/d.sock"; do
    [ -S "$sock" ] && DOCKER_HOST=unix://$sock timeout 60 "$DOCKER_CLI" rm -f bench-idle >/dev/null 2>&1
  done
  for pid in "${PIDS_TO_STOP[@]}"; do stop_pid "$pid" 15; done
  # Shims and container inits of both stacks, by the pid files under our root.
  for f in $(find "$ROOT" -name init.pid -o -name shim.pid 2>/dev/null); do
    kill -KILL "$(cat "$f")" 2>/dev/null
  done
  sleep 0.5
  grep -o " $ROOT[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
  # Our cgroup parents, at a hierarchy's top or nested under this shell's own cgroup (dockerd
  # treats a parent without a leading slash as relative).
  find /sys/fs/cgroup -maxdepth 6 -type d \( -name "bn-$SUFFIX" -o -name "bnd-$SUFFIX" \) -prune -print 2>/dev/null |
    while read -r d; do find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
  rm -rf "$ROOT"
}
trap cleanup EXIT

wait_for() { local t=$1 i; shift; for i in $(seq $((t * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
ping_ok() { [ "$(curl -sS --max-time 2 --unix-socket "$1" http://d/_ping)" = OK ]; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
mib() { awk -v k="$1" 'BEGIN { if (k > 0) printf "%.1f MiB", k / 1024; else printf "n/a" }'; }

# measure <docker host> <engine pid> <containerd pid>: sets MEDIAN_MS, RSS_ENGINE, RSS_CTRD, RSS_SHIM
measure() {
  local host=$1 epid=$2 cpid=$3 i t0 t1 times=() init shim
  export DOCKER_HOST=$host DOCKER_CONFIG=$ROOT/docker-config
  "$DOCKER_CLI" load -i "$ROOT/busybox.tar" >/dev/null
  "$DOCKER_CLI" run --rm busybox true   # warm-up
  for i in $(seq "$RUNS"); do
    t0=$(date +%s%N)
    "$DOCKER_CLI" run --rm busybox true
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000 )))
  done
  MEDIAN_MS=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END { m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.1f", m / 1000 }')
  "$DOCKER_CLI" run -d --name bench-idle busybox sleep 600 >/dev/null
  sleep 3
  init=$("$DOCKER_CLI" inspect -f '{{.State.Pid}}' bench-idle)
  shim=$(awk '{ sub(/.*\) /, ""); split($0, f, " "); print f[2] }' "/proc/$init/stat")
  RSS_ENGINE=$(rss_kib "$epid"); RSS_CTRD=$(rss_kib "$cpid"); RSS_SHIM=$(rss_kib "$shim")
  SHIM_EXE=$(readlink "/proc/$shim/exe" || echo '?')
  "$DOCKER_CLI" rm -f bench-idle >/dev/null
  unset DOCKER_HOST
}

# ---- our stack
O_MED=n/a O_E=0 O_C=0 O_S=0 O_SHIM=-
if [ "${BENCH_STACK:-private}" = docker-only ]; then
  echo "ours: skipped (BENCH_STACK=docker-only)" >&2
elif [ "${BENCH_STACK:-private}" = system ]; then
  echo "ours: the stack from deploy/setup.sh (/run/engine-api.sock)" >&2
  OUR_ENGINE=$(cat /run/engine-api.pid 2>/dev/null || systemctl show -p MainPID --value engine-api 2>/dev/null)
  OUR_CTRD=$(cat /run/containerd-rs.pid 2>/dev/null || systemctl show -p MainPID --value containerd-rs 2>/dev/null)
  OUR_HOST=unix:///run/engine-api.sock
else
  echo "ours: private stack in $ROOT, binaries from $BIN" >&2
  mkdir -p "$ROOT/cd" "$ROOT/cs" "$ROOT/data" "$ROOT/exec"
  "$BIN/containerd-rs" --address "$ROOT/c.sock" --root "$ROOT/cd" --state "$ROOT/cs" \
    </dev/null >"$ROOT/containerd.log" 2>&1 &
  OUR_CTRD=$!
  wait_for 30 test -S "$ROOT/c.sock" || { cat "$ROOT/containerd.log" >&2; exit 1; }
  "$BIN/engine-api" -H "unix://$ROOT/d.sock" --data-root "$ROOT/data" --exec-root "$ROOT/exec" \
    --containerd "$ROOT/c.sock" --cgroup-parent "bn-$SUFFIX" </dev/null >"$ROOT/engine.log" 2>&1 &
  OUR_ENGINE=$!
  PIDS_TO_STOP=("$OUR_ENGINE" "$OUR_CTRD")
  wait_for 30 ping_ok "$ROOT/d.sock" || { cat "$ROOT/engine.log" >&2; exit 1; }
  OUR_HOST=unix://$ROOT/d.sock
fi
if [ -n "${OUR_HOST:-}" ]; then
  measure "$OUR_HOST" "$OUR_ENGINE" "$OUR_CTRD"
  O_MED=$MEDIAN_MS O_E=$RSS_ENGINE O_C=$RSS_CTRD O_S=$RSS_SHIM O_SHIM=$SHIM_EXE
fi

# ---- the real Docker stack, private
D_MED=n/a D_E=0 D_C=0 D_S=0 D_VER="not installed"
if command -v dockerd >/dev/null 2>&1; then
  K=$ROOT/k
  mkdir -p "$K"
  echo "docker: private dockerd in $K" >&2
  dockerd --data-root "$K/data" --exec-root "$K/exec" -H "unix://$K/d.sock" --pidfile "$K/d.pid" \
    --bridge none --iptables=false --ip-masq=false --cgroup-parent "bnd-$SUFFIX" \
    </dev/null >"$K/dockerd.log" 2>&1 &
  DPID=$!
  PIDS_TO_STOP+=("$DPID")
  if wait_for 60 ping_ok "$K/d.sock"; then
    # dockerd's own containerd is its child.
    DCTRD=$(ps -o pid= --ppid "$DPID" | head -n1 | tr -d ' ')
    D_VER=$(DOCKER_HOST=unix://$K/d.sock "$DOCKER_CLI" version -f '{{.Server.Version}}' 2>/dev/null || echo '?')
    measure "unix://$K/d.sock" "$DPID" "${DCTRD:-0}"
    D_MED=$MEDIAN_MS D_E=$RSS_ENGINE D_C=$RSS_CTRD D_S=$RSS_SHIM
  else
    echo "bench: dockerd did not start; see below" >&2
    tail -n 20 "$K/dockerd.log" >&2
  fi
fi

printf '\n%-44s %-22s %s\n' "" "ours" "docker $D_VER"
printf '%-44s %-22s %s\n' "docker run --rm busybox true (median of $RUNS)" "$O_MED ms" "$D_MED ms"
printf '%-44s %-22s %s\n' "engine daemon RSS (engine-api / dockerd)" "$(mib "$O_E")" "$(mib "$D_E")"
printf '%-44s %-22s %s\n' "containerd RSS (containerd-rs / containerd)" "$(mib "$O_C")" "$(mib "$D_C")"
printf '%-44s %-22s %s\n' "one shim RSS (idle sleep container)" "$(mib "$O_S")" "$(mib "$D_S")"
printf '(our shim: %s)\n' "$O_SHIM"
