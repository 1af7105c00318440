#!/usr/bin/env bash
# Paired benchmark of OCI runtimes on one busybox bundle:
#  1. `run` of /bin/true (create + start + wait + delete), median over N runs;
#  2. the shim's lifecycle: create, start, poll `state` until stopped, delete.
# Usage: deploy/bench-runtime.sh [runs]   (as root; RUNC_RS=<path> to skip the build)
# crun refuses a hybrid cgroup layout (v1 plus controllers on /sys/fs/cgroup/unified): the
# script then says why and runs a second paired round, of all three runtimes, in a private
# mount namespace where the cgroup2 mount is hidden (hugetlb unavailable there), so that
# crun can be compared at all.
set -euo pipefail
N=${1:-30}
cd "$(dirname "$0")/.."
if [ -z "${RUNC_RS:-}" ]; then
  RUNC_RS=$(bash deploy/build-release.sh)/runc-rs
fi
WORK=$(mktemp -d /tmp/bench-rt-XXXXXX)
CG=bench-rt-$$
cleanup() {
  for r in runc-rs runc crun; do
    for id in $(ls "$WORK/root-$r" 2>/dev/null); do "$(rt_bin $r)" --root "$WORK/root-$r" delete --force "$id" >/dev/null 2>&1 || true; done
  done
  for d in /sys/fs/cgroup/*/"$CG"; do [ -d "$d" ] && rmdir "$d"/* "$d" 2>/dev/null || true; done
  rm -rf "$WORK"
}
rt_bin() { case $1 in runc-rs) echo "$RUNC_RS";; runc) command -v runc;; crun) command -v crun;; esac; }
trap cleanup EXIT

B=$WORK/bundle
mkdir -p "$B/rootfs/bin" "$B/rootfs/proc" "$B/rootfs/sys" "$B/rootfs/dev"
cp /usr/bin/busybox "$B/rootfs/bin/"
for c in sh true; do ln -s busybox "$B/rootfs/bin/$c"; done
( cd "$B" && "$RUNC_RS" spec )
python3 - "$B/config.json" "$CG" <<'PY'
import json, sys
p, cg = sys.argv[1], sys.argv[2]
d = json.load(open(p))
d["process"]["terminal"] = False
d["process"]["args"] = ["/bin/true"]
d["linux"]["cgroupsPath"] = "/" + cg + "/ID"
json.dump(d, open(p, "w"))
PY

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "n/a"; else if (NR%2) printf "%.2f", a[(NR+1)/2]/1e6; else printf "%.2f", (a[NR/2]+a[NR/2+1])/2e6}'; }

# Each runtime gets its own copy of the config with its own cgroup leaf per run.
runs_ok=()
for r in runc-rs runc crun; do
  bin=$(rt_bin "$r") || true
  if [ -z "$bin" ]; then echo "$r: not installed"; continue; fi
  sed "s#/ID\"#/$r-probe\"#" "$B/config.json" > "$WORK/cfg"; cp "$WORK/cfg" "$B/config.json.$r"
  cp "$B/config.json" "$WORK/config.orig"; cp "$B/config.json.$r" "$B/config.json"
  if out=$("$bin" --root "$WORK/root-$r" run --bundle "$B" "$r-probe" 2>&1 </dev/null); then runs_ok+=("$r")
  else echo "$r: could not run on this host: $(echo "$out" | tail -n1)"; "$bin" --root "$WORK/root-$r" delete --force "$r-probe" >/dev/null 2>&1 || true; fi
  cp "$WORK/config.orig" "$B/config.json"
done

declare -A RUN LIFE
for i in $(seq 1 "$N"); do
  for r in "${runs_ok[@]}"; do
    bin=$(rt_bin "$r"); id="$r-$i"
    sed "s#/ID\"#/$id\"#" "$WORK/config.orig" > "$B/config.json"
    t0=${EPOCHREALTIME/./}; "$bin" --root "$WORK/root-$r" run --bundle "$B" "$id" >/dev/null 2>&1 </dev/null; t1=${EPOCHREALTIME/./}
    RUN[$r]+="$(( (t1 - t0) * 1000 )) "
    id="$r-l$i"
    sed "s#/ID\"#/$id\"#" "$WORK/config.orig" > "$B/config.json"
    t0=${EPOCHREALTIME/./}
    "$bin" --root "$WORK/root-$r" --log "$WORK/log-$r.json" --log-format json create --bundle "$B" --pid-file "$WORK/pid" "$id" >/dev/null 2>&1 </dev/null
    "$bin" --root "$WORK/root-$r" --log "$WORK/log-$r.json" --log-format json start "$id"
    until "$bin" --root "$WORK/root-$r" state "$id" 2>/dev/null | grep -q '"stopped"'; do :; done
    "$bin" --root "$WORK/root-$r" --log "$WORK/log-$r.json" --log-format json delete "$id"
    t1=${EPOCHREALTIME/./}
    LIFE[$r]+="$(( (t1 - t0) * 1000 )) "
  done
done
cp "$WORK/config.orig" "$B/config.json"

if [ -n "${BENCH_NO_UNIFIED:-}" ]; then echo "--- private mount namespace without /sys/fs/cgroup/unified (pure v1) ---"; fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
echo "runtime   run /bin/true (median ms, n=$N)   lifecycle create/start/state-poll/delete (median ms)"
for r in "${runs_ok[@]}"; do
  printf '%-9s %-34s %s\n' "$r" "$(echo ${RUN[$r]} | tr ' ' '\n' | median)" "$(echo ${LIFE[$r]} | tr ' ' '\n' | median)"
done
if [[ " ${runs_ok[*]} " == *" runc-rs "* && " ${runs_ok[*]} " == *" crun "* ]]; then
  a=$(echo ${RUN[runc-rs]} | tr ' ' '\n' | median); b=$(echo ${RUN[crun]} | tr ' ' '\n' | median)
  echo "runc-rs/crun run ratio: $(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f", a/b}')"
fi
if [ -z "${BENCH_NO_UNIFIED:-}" ] && [[ " ${runs_ok[*]} " != *" crun "* ]] && command -v crun >/dev/null \
   && mountpoint -q /sys/fs/cgroup/unified; then
  unshare -m --propagation private bash -c \
    'umount /sys/fs/cgroup/unified && BENCH_NO_UNIFIED=1 RUNC_RS="$1" exec bash "$2" "$3"' \
    bench "$RUNC_RS" "$PWD/deploy/bench-runtime.sh" "$N"
fi
