#!/usr/bin/env bash
# Builds the release binaries and gathers them in one directory (default
# ${CARGO_TARGET_DIR:-target}/engine-bin; printed on stdout), which deploy/setup.sh installs from
# and the bench scripts run from.
#
# containerd-rs, containerd-shim-rs and runc-rs are linked statically (glibc static-pie:
# `-C target-feature=+crt-static` for the host triple, so build scripts and proc macros stay
# dynamic; the shim is static non-PIE with a profile-guided code layout: deploy/build-shim.sh). A static binary starts without the dynamic loader and maps no libc.so/libm.so/
# libgcc_s.so pages: per shim that is about 1 MiB less resident memory, and each runc-rs
# invocation (three per container) starts faster. engine-api, mkimage and api-bench stay dynamic
# (engine-api resolves host names through NSS).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
OUT=${1:-$TARGET_DIR/engine-bin}
HOST=$(rustc -vV | sed -n 's/^host: //p')
STATIC="containerd-rs runc-rs"
DYNAMIC="engine-api mkimage api-bench"

cargo build --release --bins >&2
# shellcheck disable=SC2086
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C symbol-mangling-version=v0" \
  cargo build --release --target "$HOST" $(printf -- '-p %s ' $STATIC) >&2
SHIM=$(bash deploy/build-shim.sh)

mkdir -p "$OUT"
for b in $STATIC; do
  ln -f "$TARGET_DIR/$HOST/release/$b" "$OUT/$b"
done
ln -f "$SHIM" "$OUT/containerd-shim-rs"
for b in $DYNAMIC; do
  ln -f "$TARGET_DIR/release/$b" "$OUT/$b"
done
echo "$OUT"
