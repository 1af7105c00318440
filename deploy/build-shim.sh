#!/usr/bin/env bash
# Links the release containerd-shim-rs: static glibc, not position-independent, with its code laid
# out by deploy/shim-layout.txt. Called by deploy/build-release.sh (and deploy/shim-layout.sh);
# prints the path of the binary on stdout.
#
# Why: one shim runs per container and stays resident for the container's life. Its resident
# memory is mostly the pages of its own executable that it has touched, and on a read fault the
# kernel maps a whole 64 KiB window of the file ("fault-around"), so code a running shim touches
# once, scattered over the 2 MiB of .text, keeps nearly all of .text resident. The layout file
# lists the functions a shim runs, in the order it first needs them (from its fork to a running
# container first); the linker (lld, --symbol-ordering-file) puts them at the start of .text, so
# a running shim touches a few contiguous windows instead of all of them. Not PIE: a static
# non-PIE binary has no relocations to apply at start, so its read-only data stays file-backed
# and shared instead of becoming per-shim anonymous memory.
#
# The layout names functions by their demangled names, without hashes, so it survives rebuilds
# and small code changes; names that no longer exist are skipped. The link is done twice: the
# first (with symbols) gives the mangled names the second orders by. The first one is kept as
# $TARGET_DIR/shim-layout/containerd-shim-rs.sym for deploy/shim-layout.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
HOST=$(rustc -vV | sed -n 's/^host: //p')
LAYOUT=${SHIM_LAYOUT:-$PWD/deploy/shim-layout.txt}
WORK=$TARGET_DIR/shim-layout
OUT=$TARGET_DIR/$HOST/release/containerd-shim-rs
mkdir -p "$WORK"
# The same RUSTFLAGS as build-release.sh's static binaries, so the dependencies built for them
# are reused; the shim's own flags go to its final link only. v0 symbol mangling: a demangled v0
# name carries the generic arguments, so each instantiation of a generic function has its own
# name (legacy names of all of tokio's task pollers, say, demangle to one).
export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C symbol-mangling-version=v0"
# Segments start on 64 KiB boundaries in the file as in memory: the page cache holds a file in
# folios of up to 64 KiB here, aligned in the file, and a fault maps whole folios; with .text at
# an offset that is not 64 KiB-aligned, each 64 KiB fault-around window would straddle two.
link() {
  cargo rustc --release --target "$HOST" -p containerd-shim-rs --bin containerd-shim-rs -- \
    -C relocation-model=static -C link-arg=-Wl,-z,max-page-size=65536 \
    -C link-arg=-Wl,-z,separate-loadable-segments "$@" >&2
}
# Without lld (whose options these are) the shim is linked as the other static binaries are:
# it works the same, only with more of its code resident.
plain() {
  echo "shim layout: the linker refused the layout options; default layout" >&2
  cargo rustc --release --target "$HOST" -p containerd-shim-rs --bin containerd-shim-rs >&2
  echo "$OUT"
  exit 0
}

link -C strip=none || plain
cp "$OUT" "$WORK/containerd-shim-rs.sym"

# mangled <TAB> demangled, for every defined symbol (nm -p keeps the two listings in step).
paste <(nm -p --defined-only "$WORK/containerd-shim-rs.sym" | cut -d' ' -f3-) \
  <(nm -p --defined-only --demangle "$WORK/containerd-shim-rs.sym" | cut -d' ' -f3-) \
  >"$WORK/symbols.tsv"
# The layout's names, in its order, as the mangled names of this build.
awk -F'\t' 'NR == FNR { if ($0 != "" && $0 !~ /^#/ && !($0 in rank)) rank[$0] = ++n; next }
  ($2 in rank) { print rank[$2] "\t" $1 }' "$LAYOUT" "$WORK/symbols.tsv" |
  sort -n -s -k1,1 | cut -f2 >"$WORK/order.txt"
# Named by its content: cargo relinks when the arguments change, not when a file they name does.
ORDER=$WORK/order-$(sha256sum "$WORK/order.txt" | cut -c1-16).txt
rm -f "$WORK"/order-*.txt
mv "$WORK/order.txt" "$ORDER"
echo "shim layout: $(wc -l <"$ORDER") symbols ordered from $LAYOUT" >&2

link -C link-arg=-Wl,--symbol-ordering-file="$ORDER" -C link-arg=-Wl,--no-warn-symbol-ordering ||
  plain
echo "$OUT"
