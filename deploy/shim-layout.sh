#!/usr/bin/env bash
# Regenerates deploy/shim-layout.txt, the code layout build-shim.sh links the release shim with.
# Run it (as root, with valgrind, ctr and python3) after changes to what the shim runs; a stale
# layout only costs memory: functions it no longer names are laid out after the ones it does.
#
# It builds the release binaries, then twice starts a private containerd-rs (own root, socket,
# namespace and cgroup) whose shims run under callgrind, and starts one container with
# `ctr run -d`. callgrind splits each shim's profile where the daemon is forked (`_Fork`), so
# only the daemon's own run is counted.
#   part 1: the first run ends the shim with SIGTERM once its container runs: what every
#           running shim has touched, from its fork to a running container;
#   part 2: the second run goes on with ps, exec, pause/resume, metrics (what `docker
#           top/exec/pause/stats` use), kill, exit, delete and shutdown: what part 1 lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
[ "$(id -u)" = 0 ] || { echo "shim-layout: run as root" >&2; exit 1; }
for c in valgrind ctr python3; do
  command -v $c >/dev/null || { echo "shim-layout: needs $c" >&2; exit 1; }
done
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
BIN=$(bash deploy/build-release.sh)
SYM=$TARGET_DIR/shim-layout/containerd-shim-rs.sym

SUFFIX=$(od -An -N3 -tx1 /dev/urandom | tr -d " \n")
R=/tmp/sl-$SUFFIX
NS=sl$SUFFIX
mkdir -p "$R"
DAEMON_PID=
stop_daemon() {
  [ -n "$DAEMON_PID" ] || return 0
  kill "$DAEMON_PID" 2>/dev/null
  wait "$DAEMON_PID" 2>/dev/null || true
  DAEMON_PID=
}
cleanup() {
  set +e
  stop_daemon
  for f in $(find "$R" \( -name init.pid -o -name shim.pid \) 2>/dev/null); do
    kill -KILL "$(cat "$f")" 2>/dev/null
  done
  sleep 0.3
  grep -o " $R[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
  find /sys/fs/cgroup -maxdepth 2 -type d -name "$NS" -prune -print 2>/dev/null |
    while read -r d; do find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
  if [ -n "${KEEP:-}" ]; then echo "shim-layout: kept $R" >&2; else rm -rf "$R"; fi
}
trap cleanup EXIT

"$BIN/mkimage" busybox --busybox /usr/bin/busybox -o "$R/busybox.tar" >/dev/null

# profile <name> running|full: sets PROFILE to the path of the shim daemon's profile.
PROFILE=
profile() {
  local dir=$R/$1 mode=$2 shim
  mkdir -p "$dir/cg"
  {
    echo '#!/bin/sh'
    echo "exec valgrind -q --tool=callgrind --dump-instr=yes --log-file=$dir/cg/vg.%p.log" \
      "--callgrind-out-file=$dir/cg/cg.%p --dump-before=_Fork $SYM \"\$@\""
  } >"$dir/shim"
  chmod +x "$dir/shim"
  "$BIN/containerd-rs" --address "$dir/c.sock" --root "$dir/root" --state "$dir/state" \
    --shim-binary "$dir/shim" >"$dir/containerd.log" 2>&1 &
  DAEMON_PID=$!
  until ctr --address "$dir/c.sock" version >/dev/null 2>&1; do
    kill -0 "$DAEMON_PID" || { cat "$dir/containerd.log" >&2; exit 1; }
    sleep 0.01
  done
  local C=(ctr --address "$dir/c.sock" -n "$NS")
  "${C[@]}" images import "$R/busybox.tar" >/dev/null
  "${C[@]}" run -d --runc-binary "$BIN/runc-rs" --null-io docker.io/library/busybox:latest \
    idle sleep 600
  sleep 2
  shim=$(cat "$dir/state/io.containerd.runtime.v2.task/$NS/idle/shim.pid")
  if [ "$mode" = running ]; then
    kill -TERM "$shim"
  else
    "${C[@]}" task ps idle >/dev/null
    "${C[@]}" task exec --exec-id e1 idle true
    "${C[@]}" task pause idle
    "${C[@]}" task resume idle
    "${C[@]}" task metrics idle >/dev/null
    "${C[@]}" task kill -s KILL idle
  fi
  for _ in $(seq 50); do "${C[@]}" task delete idle >/dev/null 2>&1 && break; sleep 0.2; done
  "${C[@]}" containers rm idle >/dev/null
  # callgrind writes the profile when the daemon exits.
  for _ in $(seq 100); do kill -0 "$shim" 2>/dev/null || break; sleep 0.1; done
  stop_daemon
  PROFILE=$dir/cg/cg.$shim
  [ -s "$PROFILE" ] || { echo "shim-layout: no profile of shim $shim ($mode)" >&2; exit 1; }
}
profile a running
P=("$PROFILE")
profile b full
P+=("$PROFILE")

OUT=deploy/shim-layout.txt
cat >"$OUT" <<EOF
# The order of containerd-shim-rs's functions in its release binary (deploy/build-shim.sh), by
# demangled name. Written by deploy/shim-layout.sh from callgrind profiles of one shim daemon
# driven through ctr; regenerate it after changes to what the shim runs.
EOF
python3 deploy/shim-layout.py "$SYM" "$TARGET_DIR/shim-layout/symbols.tsv" "$OUT" "${P[@]}"
grep '^# part' "$OUT" >&2
echo "shim-layout: wrote $OUT; rebuild with deploy/build-release.sh" >&2
