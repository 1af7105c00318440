#!/usr/bin/env bash
# README command 1. On a fresh Debian 12 machine, as root:
#   installs the Debian packages (deploy/packages.txt) and a Rust toolchain if missing,
#   builds release binaries and installs them in /usr/local/bin,
#   starts containerd-rs and engine-api (systemd units when PID 1 is systemd, otherwise background
#   processes with pid files in /run and logs in /var/log),
#   builds the busybox image with the project's own `mkimage`, loads it and runs
#   `docker run --rm busybox echo hello` (Docker CLI if installed, else curl).
# Idempotent: a re-run stops the daemons it started before (by pid file or systemctl) first.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

BIN=/usr/local/bin
ENGINE_SOCK=/run/engine-api.sock
CTRD_SOCK=/run/containerd-rs/containerd.sock
CTRD_PID=/run/containerd-rs.pid
ENGINE_PID=/run/engine-api.pid
CTRD_LOG=/var/log/containerd-rs.log
ENGINE_LOG=/var/log/engine-api.log
DAEMONS="containerd-rs containerd-shim-rs runc-rs engine-api"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root"

# 1. Debian packages (only when something is missing, so a re-run works offline).
export DEBIAN_FRONTEND=noninteractive
mapfile -t PKGS < <(grep -v '^\s*#' deploy/packages.txt | grep -v '^\s*$')
MISSING=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || MISSING+=("$p")
done
if [ ${#MISSING[@]} -gt 0 ]; then
  # Keep postinst scripts from starting Debian's dockerd/containerd on their default paths.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
  fi
  log "apt-get install ${MISSING[*]}"
  apt-get update
  apt-get install -y "${MISSING[@]}"
fi

# 2. Rust toolchain.
if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] || {
    log "installing rustup (stable, minimal profile)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  }
  export PATH="$HOME/.cargo/bin:$PATH"
fi

# 3. Release build.
log "deploy/build-release.sh (cargo build --release; containerd-rs, shim and runc-rs static)"
REL=$(bash deploy/build-release.sh)
for b in $DAEMONS mkimage; do
  [ -x "$REL/$b" ] || die "$REL/$b was not built"
done

# 4. Stop what a previous run started.
is_systemd() { [ -d /run/systemd/system ] && [ "$(ps -p 1 -o comm= 2>/dev/null)" = systemd ]; }

# stop_pidfile <pidfile> <binary name>: SIGTERM, then SIGKILL after 20 s; only if the pid
# still runs that binary.
stop_pidfile() {
  local file=$1 name=$2 pid exe i
  [ -f "$file" ] || return 0
  pid=$(cat "$file" 2>/dev/null || true)
  case "$pid" in ''|*[!0-9]*) rm -f "$file"; return 0 ;; esac
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  if [ "${exe% (deleted)}" = "$BIN/$name" ]; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

if is_systemd; then
  systemctl stop engine-api.service containerd-rs.service 2>/dev/null || true
fi
stop_pidfile "$ENGINE_PID" engine-api
stop_pidfile "$CTRD_PID" containerd-rs

# 5. Install (rename over the old files: running shims keep their old text).
for b in $DAEMONS mkimage; do
  install -m 0755 "$REL/$b" "$BIN/.$b.new"
  mv -f "$BIN/.$b.new" "$BIN/$b"
done
log "installed $DAEMONS mkimage in $BIN"

# 6. Start.
mkdir -p /run/containerd-rs /var/lib/containerd-rs /var/lib/engine-api /run/engine-api
DEAD=0
wait_for() { # wait_for <seconds> <command...>
  local t=$1 i; shift
  for i in $(seq $((t * 10))); do
    if "$@" >/dev/null 2>&1; then [ "$DEAD" = 0 ]; return; fi
    sleep 0.1
  done
  return 1
}
# up_and <pid> <command...>: fails at once (ending wait_for) when the daemon has died.
up_and() { local pid=$1; shift; kill -0 "$pid" 2>/dev/null || { DEAD=1; return 0; }; "$@"; }
ping_engine() { [ "$(curl -sS --max-time 2 --unix-socket "$ENGINE_SOCK" http://d/_ping)" = OK ]; }

if is_systemd; then
  log "starting systemd units"
  install -m 0644 deploy/systemd/containerd-rs.service deploy/systemd/engine-api.service /etc/systemd/system/
  systemctl daemon-reload
  systemctl enable containerd-rs.service engine-api.service
  systemctl restart containerd-rs.service
  wait_for 30 test -S "$CTRD_SOCK" || die "containerd-rs did not create $CTRD_SOCK (journalctl -u containerd-rs)"
  systemctl restart engine-api.service
  wait_for 30 ping_engine || die "engine-api did not answer on $ENGINE_SOCK (journalctl -u engine-api)"
else
  log "starting containerd-rs (log $CTRD_LOG, pid file $CTRD_PID)"
  rm -f "$CTRD_SOCK"
  setsid "$BIN/containerd-rs" --address "$CTRD_SOCK" --root /var/lib/containerd-rs --state /run/containerd-rs \
    </dev/null >>"$CTRD_LOG" 2>&1 &
  echo $! > "$CTRD_PID"
  wait_for 30 up_and "$(cat "$CTRD_PID")" test -S "$CTRD_SOCK" || { tail -n 30 "$CTRD_LOG" >&2; die "containerd-rs did not start"; }
  log "starting engine-api (log $ENGINE_LOG, pid file $ENGINE_PID)"
  rm -f "$ENGINE_SOCK"
  setsid "$BIN/engine-api" -H "unix://$ENGINE_SOCK" --data-root /var/lib/engine-api --exec-root /run/engine-api \
    --containerd "$CTRD_SOCK" </dev/null >>"$ENGINE_LOG" 2>&1 &
  echo $! > "$ENGINE_PID"
  wait_for 30 up_and "$(cat "$ENGINE_PID")" ping_engine || { tail -n 30 "$ENGINE_LOG" >&2; die "engine-api did not answer"; }
fi
log "engine-api answers on $ENGINE_SOCK"

# 7. The busybox image, built by our own code, then hello.
TAR=/var/lib/engine-api/busybox.tar
"$BIN/mkimage" busybox --busybox /usr/bin/busybox -o "$TAR" >/dev/null
export DOCKER_HOST="unix://$ENGINE_SOCK"
if command -v docker >/dev/null 2>&1; then
  log "docker load -i $TAR"
  docker load -i "$TAR"
  log "docker run --rm busybox echo hello"
  docker run --rm busybox echo hello
else
  api() { curl -sS --fail-with-body --unix-socket "$ENGINE_SOCK" "$@"; }
  log "POST /images/load (curl)"
  api -X POST -H 'Content-Type: application/x-tar' --data-binary "@$TAR" 'http://d/images/load?quiet=1' >/dev/null
  log "create/start/wait/logs/delete busybox echo hello (curl)"
  ID=$(api -X POST -H 'Content-Type: application/json' \
    -d '{"Image":"busybox","Cmd":["echo","hello"],"AttachStdout":true,"AttachStderr":true}' \
    http://d/containers/create | jq -r .Id)
  api -X POST "http://d/containers/$ID/start" >/dev/null
  CODE=$(api -X POST "http://d/containers/$ID/wait" | jq -r .StatusCode)
  # One 8-byte multiplexing header precedes "hello\n".
  api "http://d/containers/$ID/logs?stdout=1" | tail -c +9
  api -X DELETE "http://d/containers/$ID" >/dev/null
  [ "$CODE" = 0 ] || die "hello exited with $CODE"
fi
log "done: DOCKER_HOST=unix://$ENGINE_SOCK docker ps"
