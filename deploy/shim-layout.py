#!/usr/bin/env python3
"""Turns callgrind profiles of one shim daemon into deploy/shim-layout.txt (see build-shim.sh).

usage: shim-layout.py <binary with symbols> <symbols.tsv> <out> <profile>...

Each profile is one part of the daemon's run (callgrind --dump-before splits it), in the order
the daemon ran them; a function is listed under the first part that ran it. callgrind runs the
code on a simulated CPU without AVX-512, so where glibc picks a string function by CPU feature
(IFUNC: __memmove_avx_unaligned_erms here, __memmove_evex_unaligned_erms on the host), every
variant of a family that ran is listed with it.
"""

import bisect
import re
import subprocess
import sys

# What glibc's posix_spawn child runs before its exec. std's Command spawns with posix_spawn,
# whose child shares the shim's memory (CLONE_VM) until it execs, so the code it runs is
# resident in the shim; callgrind runs that child as a separate process and never sees it.
SPAWN_CHILD = [
    "__spawni_child", "__spawnix", "__spawni", "__sigprocmask", "sigprocmask", "__pthread_sigmask",
    "pthread_sigmask", "__libc_sigaction", "__sigaction", "sigaction", "__dup2", "dup2",
    "__close_nocancel", "__open_nocancel", "__chdir", "__fchdir", "__closefrom", "__execvpex",
    "__execvpe_common", "__execve", "execve", "_exit", "_Exit", "__spawn_valid_fd",
    # execvpe's PATH search (each stands for its IFUNC family)
    "__strchr_avx2", "__strchrnul_avx2", "__strlen_avx2", "__memcpy_avx_unaligned_erms",
    "__mempcpy_avx_unaligned_erms",
]

IFUNC = re.compile(r"^(__[a-z0-9]+?)_(sse2|ssse3|sse4_1|sse4_2|sse42|avx|avx2|avx512|evex|erms)")


def functions(binary):
    """(start, end, mangled name) of every function, sorted by address."""
    out = subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True, text=True,
                         check=True).stdout
    funcs = []
    for line in out.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[2] in "tTwW":
            funcs.append((int(parts[0], 16), int(parts[0], 16) + max(int(parts[1], 16), 1),
                          parts[3]))
    funcs.sort()
    return funcs


def executed(profile, funcs, starts):
    """Mangled names of the functions whose instructions the profile counts, in file order."""
    seen = {}
    last = 0
    with open(profile) as f:
        for line in f:
            if not line or line[0] not in "0123456789+-*":
                continue
            tok = line.split()[0]
            try:
                if tok.startswith("0x"):
                    addr = int(tok, 16)
                elif tok[0] == "+":
                    addr = last + int(tok[1:], 0)
                elif tok[0] == "-":
                    addr = last - int(tok[1:], 0)
                elif tok == "*":
                    addr = last
                else:
                    continue
            except ValueError:
                continue
            last = addr
            i = bisect.bisect_right(starts, addr) - 1
            if i >= 0 and funcs[i][0] <= addr < funcs[i][1]:
                seen.setdefault(funcs[i][2], None)
    return list(seen)


def main():
    binary, table, out, profiles = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    demangled = {}
    with open(table) as f:
        for line in f:
            mangled, _, name = line.rstrip("\n").partition("\t")
            demangled[mangled] = name
    funcs = functions(binary)
    starts = [f[0] for f in funcs]
    families = {}
    for _, _, name in funcs:
        m = IFUNC.match(name)
        if m:
            families.setdefault(m.group(1), []).append(name)
    listed = set()
    lines = []
    for n, profile in enumerate(profiles, 1):
        tier = []
        for mangled in executed(profile, funcs, starts):
            m = IFUNC.match(mangled)
            for name in families.get(m.group(1), [mangled]) if m else [mangled]:
                name = demangled.get(name, name)
                if name not in listed:
                    listed.add(name)
                    tier.append(name)
        if n == 1:
            # The drop glue of the shim's own types and futures: which of it runs depends on
            # timing (the branch a select! drops, a request the client cancels), so a profile
            # sees only some of it; all of it is small.
            for name in sorted(demangled.values()):
                if (name.startswith("core::ptr::drop_in_place::<")
                        and "containerd_shim_rs::" in name and name not in listed):
                    listed.add(name)
                    tier.append(name)
            for mangled in SPAWN_CHILD:
                m = IFUNC.match(mangled)
                for name in families.get(m.group(1), [mangled]) if m else [mangled]:
                    if name not in listed:
                        listed.add(name)
                        tier.append(name)
        lines.append(f"# part {n}: {len(tier)} functions")
        lines.extend(tier)
    with open(out, "a") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
