#!/usr/bin/env bash
# Benchmark (not a timed test). Prints, for our stack and, when dockerd is installed, for a
# private real Docker stack beside it (same run, same machine):
#   - the median latency over $RUNS runs (default 15, min 10) of `docker run --rm busybox true`,
#     the same with `--network none`, and `docker run -d busybox sleep 1000`;
#   - the wall time of 20 parallel `docker run -d busybox sleep 1000`;
#   - GET /containers/json requests/s with those 20 containers, on one keep-alive connection
#     ($RATE_SECS seconds, default 5; tool: api-bench from the integration crate);
#   - the engine daemon's time from exec to its first `/_ping` answer, and its idle resident
#     memory (VmRSS) after start + image load; the RSS of both daemons and of one shim with the
#     20 containers running.
# Each stack runs in its own temp root with its own sockets and cgroup parent; everything the
# script starts is stopped by pid and cleaned by path at exit.
# Binaries: $ENGINE_BIN_DIR, else deploy/build-release.sh (target/engine-bin), else /usr/local/bin.
# BENCH_STACK=system measures the stack deploy/setup.sh started (/run/engine-api.sock) instead;
# BENCH_STACK=docker-only measures only the real Docker stack.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
RUNS=${RUNS:-15}
[ "$RUNS" -ge 10 ] || RUNS=10
RATE_SECS=${RATE_SECS:-5}
PAR=20
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
  BIN=${CARGO_TARGET_DIR:-$REPO/target}/engine-bin
  if command -v cargo >/dev/null; then
    BIN=$(bash deploy/build-release.sh)
  fi
  [ -x "$BIN/engine-api" ] || BIN=/usr/local/bin
fi
APIBENCH=$BIN/api-bench
[ -x "$APIBENCH" ] || { echo "bench: $APIBENCH not found (deploy/build-release.sh)" >&2; exit 1; }
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
    if [ -S "$sock" ]; then
      ids=$(DOCKER_HOST=unix://$sock timeout 60 "$DOCKER_CLI" ps -aq --filter label=bench 2>/dev/null)
      [ -n "$ids" ] && DOCKER_HOST=unix://$sock timeout 120 "$DOCKER_CLI" rm -f $ids >/dev/null 2>&1
    fi
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

median_ms() { # microsecond samples on stdin -> median in ms
  sort -n | awk '{a[NR]=$1} END { m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.1f", m / 1000 }'
}
time_us() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000 )); }

# measure <docker host> <engine pid> <containerd pid>: sets MED_RM, MED_NONET, MED_D, PAR_S, RATE,
# RSS_IDLE, RSS_ENGINE, RSS_CTRD, RSS_SHIM, SHIM_EXE
measure() {
  local host=$1 epid=$2 cpid=$3 i init shim sock=${1#unix://} ids
  export DOCKER_HOST=$host DOCKER_CONFIG=$ROOT/docker-config
  "$DOCKER_CLI" load -i "$ROOT/busybox.tar" >/dev/null
  sleep 2
  RSS_IDLE=$(rss_kib "$epid")
  "$DOCKER_CLI" run --rm busybox true   # warm-up
  MED_RM=$(for i in $(seq "$RUNS"); do time_us "$DOCKER_CLI" run --rm busybox true; done | median_ms)
  MED_NONET=$(for i in $(seq "$RUNS"); do time_us "$DOCKER_CLI" run --rm --network none busybox true; done | median_ms)
  MED_D=$(for i in $(seq "$RUNS"); do time_us "$DOCKER_CLI" run -d --label bench busybox sleep 1000; done | median_ms)
  ids=$("$DOCKER_CLI" ps -aq --filter label=bench)
  "$DOCKER_CLI" rm -f $ids >/dev/null
  local t0 t1
  t0=$(date +%s%N)
  local pids=()
  for i in $(seq $PAR); do "$DOCKER_CLI" run -d --label bench busybox sleep 1000 >/dev/null & pids+=($!); done
  wait "${pids[@]}"
  t1=$(date +%s%N)
  PAR_S=$(awk -v us=$(( (t1 - t0) / 1000 )) 'BEGIN { printf "%.2f", us / 1e6 }')
  local running
  running=$("$DOCKER_CLI" ps -q --filter label=bench | wc -l)
  [ "$running" = $PAR ] || echo "bench: $running of $PAR parallel containers running" >&2
  RATE=$("$APIBENCH" rate "$sock" /containers/json "$RATE_SECS" | awk '{print $2}')
  init=$("$DOCKER_CLI" inspect -f '{{.State.Pid}}' "$("$DOCKER_CLI" ps -q --filter label=bench | head -n1)")
  shim=$(awk '{ sub(/.*\) /, ""); split($0, f, " "); print f[2] }' "/proc/$init/stat")
  RSS_ENGINE=$(rss_kib "$epid"); RSS_CTRD=$(rss_kib "$cpid"); RSS_SHIM=$(rss_kib "$shim")
  SHIM_EXE=$(readlink "/proc/$shim/exe" || echo '?')
  ids=$("$DOCKER_CLI" ps -aq --filter label=bench)
  "$DOCKER_CLI" rm -f $ids >/dev/null
  unset DOCKER_HOST
}

# ---- our stack
O_RM=n/a O_NONET=n/a O_D=n/a O_PAR=n/a O_RATE=n/a O_READY=n/a O_I=0 O_E=0 O_C=0 O_S=0 O_SHIM=-
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
  PIDS_TO_STOP=("$OUR_CTRD")
  read -r OUR_ENGINE O_READY < <("$APIBENCH" spawn "$ROOT/d.sock" "$ROOT/engine.log" \
    "$BIN/engine-api" -H "unix://$ROOT/d.sock" --data-root "$ROOT/data" --exec-root "$ROOT/exec" \
    --containerd "$ROOT/c.sock" --cgroup-parent "bn-$SUFFIX") || { cat "$ROOT/engine.log" >&2; exit 1; }
  PIDS_TO_STOP=("$OUR_ENGINE" "$OUR_CTRD")
  OUR_HOST=unix://$ROOT/d.sock
fi
if [ -n "${OUR_HOST:-}" ]; then
  measure "$OUR_HOST" "$OUR_ENGINE" "$OUR_CTRD"
  O_RM=$MED_RM O_NONET=$MED_NONET O_D=$MED_D O_PAR=$PAR_S O_RATE=$RATE
  O_I=$RSS_IDLE O_E=$RSS_ENGINE O_C=$RSS_CTRD O_S=$RSS_SHIM O_SHIM=$SHIM_EXE
fi

# ---- the real Docker stack, private
D_RM=n/a D_NONET=n/a D_D=n/a D_PAR=n/a D_RATE=n/a D_READY=n/a D_I=0 D_E=0 D_C=0 D_S=0 D_VER="not installed"
if command -v dockerd >/dev/null 2>&1; then
  K=$ROOT/k
  mkdir -p "$K"
  echo "docker: private dockerd in $K" >&2
  if read -r DPID D_READY < <("$APIBENCH" spawn "$K/d.sock" "$K/dockerd.log" \
    "$(command -v dockerd)" --data-root "$K/data" --exec-root "$K/exec" -H "unix://$K/d.sock" \
    --pidfile "$K/d.pid" --bridge none --iptables=false --ip-masq=false --cgroup-parent "bnd-$SUFFIX"); then
    PIDS_TO_STOP+=("$DPID")
    # dockerd's own containerd is its child.
    DCTRD=$(ps -o pid= --ppid "$DPID" | head -n1 | tr -d ' ')
    D_VER=$(DOCKER_HOST=unix://$K/d.sock "$DOCKER_CLI" version -f '{{.Server.Version}}' 2>/dev/null || echo '?')
    measure "unix://$K/d.sock" "$DPID" "${DCTRD:-0}"
    D_RM=$MED_RM D_NONET=$MED_NONET D_D=$MED_D D_PAR=$PAR_S D_RATE=$RATE
    D_I=$RSS_IDLE D_E=$RSS_ENGINE D_C=$RSS_CTRD D_S=$RSS_SHIM
  else
    echo "bench: dockerd did not start; see below" >&2
    tail -n 20 "$K/dockerd.log" >&2
  fi
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf " (%.1fx)", a / b }'; }
W=54
printf "\n%-${W}s %-14s %s\n" "" "ours" "docker $D_VER"
printf "%-${W}s %-14s %s\n" "docker run --rm busybox true (median of $RUNS)" "$O_RM ms" "$D_RM ms"
printf "%-${W}s %-14s %s\n" "docker run --rm --network none busybox true" "$O_NONET ms" "$D_NONET ms"
printf "%-${W}s %-14s %s\n" "docker run -d busybox sleep 1000 (median)" "$O_D ms" "$D_D ms"
printf "%-${W}s %-14s %s\n" "$PAR parallel docker run -d (wall time)" "$O_PAR s" "$D_PAR s"
printf "%-${W}s %-14s %s%s\n" "GET /containers/json, $PAR containers, 1 connection" "$O_RATE req/s" "$D_RATE req/s" "$(ratio "$O_RATE" "$D_RATE")"
printf "%-${W}s %-14s %s\n" "engine daemon: exec to first /_ping answer" "$O_READY ms" "$D_READY ms"
printf "%-${W}s %-14s %s\n" "engine daemon RSS, idle after start + load" "$(mib "$O_I")" "$(mib "$D_I")"
printf "%-${W}s %-14s %s\n" "engine daemon RSS, $PAR containers" "$(mib "$O_E")" "$(mib "$D_E")"
printf "%-${W}s %-14s %s\n" "containerd RSS, $PAR containers" "$(mib "$O_C")" "$(mib "$D_C")"
printf "%-${W}s %-14s %s\n" "one shim RSS (idle sleep container)" "$(mib "$O_S")" "$(mib "$D_S")"
printf '(our shim: %s)\n' "$O_SHIM"
