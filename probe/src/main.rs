//! A static probe that runs inside a container and reports what it sees as JSON:
//! pid, ppid, hostname, namespaces, mounts, capabilities, seccomp, no_new_privs,
//! rlimits, ids, cwd, env and the cgroup limits it can read.
//!
//! Build (glibc, static; no musl target is needed):
//! `RUSTFLAGS="-C target-feature=+crt-static" cargo build -p probe --target x86_64-unknown-linux-gnu`
use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

fn read(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim_end().to_string())
}

/// Fields of /proc/self/status we report, by name.
fn status() -> BTreeMap<String, String> {
    read("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        })
        .collect()
}

fn namespaces() -> Value {
    let mut m = Map::new();
    for ns in ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts", "time"] {
        if let Ok(l) = std::fs::read_link(format!("/proc/self/ns/{ns}")) {
            let s = l.to_string_lossy().into_owned();
            let inode = s
                .split('[')
                .nth(1)
                .and_then(|x| x.trim_end_matches(']').parse::<u64>().ok());
            m.insert(ns.into(), json!(inode));
        }
    }
    Value::Object(m)
}

fn mounts() -> Value {
    let text = read("/proc/self/mountinfo").unwrap_or_default();
    let list: Vec<Value> = text
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let lf: Vec<&str> = left.split(' ').collect();
            let rf: Vec<&str> = right.split(' ').collect();
            Some(json!({
                "destination": lf.get(4)?,
                "options": lf.get(5)?,
                "optional": lf.get(6..).map(|o| o.join(" ")).unwrap_or_default(),
                "type": rf.first()?,
                "source": rf.get(1).unwrap_or(&""),
                "super_options": rf.get(2).unwrap_or(&""),
            }))
        })
        .collect();
    Value::Array(list)
}

fn rlimits() -> Value {
    // /proc/self/limits: "Max open files            1024                 1024                 files"
    let mut m = Map::new();
    let names = [
        ("Max cpu time", "RLIMIT_CPU"),
        ("Max file size", "RLIMIT_FSIZE"),
        ("Max data size", "RLIMIT_DATA"),
        ("Max stack size", "RLIMIT_STACK"),
        ("Max core file size", "RLIMIT_CORE"),
        ("Max resident set", "RLIMIT_RSS"),
        ("Max processes", "RLIMIT_NPROC"),
        ("Max open files", "RLIMIT_NOFILE"),
        ("Max locked memory", "RLIMIT_MEMLOCK"),
        ("Max address space", "RLIMIT_AS"),
        ("Max file locks", "RLIMIT_LOCKS"),
        ("Max pending signals", "RLIMIT_SIGPENDING"),
        ("Max msgqueue size", "RLIMIT_MSGQUEUE"),
        ("Max nice priority", "RLIMIT_NICE"),
        ("Max realtime priority", "RLIMIT_RTPRIO"),
        ("Max realtime timeout", "RLIMIT_RTTIME"),
    ];
    for line in read("/proc/self/limits").unwrap_or_default().lines() {
        for (prefix, name) in names {
            if let Some(rest) = line.strip_prefix(prefix) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let num = |s: Option<&&str>| match s {
                    Some(&"unlimited") => json!("unlimited"),
                    Some(v) => v.parse::<u64>().map(|n| json!(n)).unwrap_or(Value::Null),
                    None => Value::Null,
                };
                m.insert(
                    name.into(),
                    json!({"soft": num(f.first()), "hard": num(f.get(1))}),
                );
            }
        }
    }
    Value::Object(m)
}

fn cgroup_limits() -> Value {
    let files = [
        "memory/memory.limit_in_bytes",
        "memory/memory.soft_limit_in_bytes",
        "memory/memory.memsw.limit_in_bytes",
        "memory/memory.swappiness",
        "cpu/cpu.shares",
        "cpu/cpu.cfs_quota_us",
        "cpu/cpu.cfs_period_us",
        "cpuset/cpuset.cpus",
        "cpuset/cpuset.mems",
        "pids/pids.max",
        "blkio/blkio.weight",
        "memory.max",
        "memory.low",
        "memory.swap.max",
        "cpu.max",
        "cpu.weight",
        "pids.max",
        "cpuset.cpus",
        "unified/hugetlb.2MB.max",
    ];
    let mut m = Map::new();
    for f in files {
        if let Some(v) = read(&format!("/sys/fs/cgroup/{f}")) {
            m.insert(f.into(), v.into());
        }
    }
    Value::Object(m)
}

/// The session keyring's description (`keyring;uid;gid;perm;name`), if there is one.
fn session_keyring() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: KEYCTL_DESCRIBE (6) of KEY_SPEC_SESSION_KEYRING (-3) writes at most buf.len()
    // bytes into buf.
    let n = unsafe { libc::syscall(libc::SYS_keyctl, 6, -3, buf.as_mut_ptr(), buf.len()) };
    (n > 0).then(|| {
        String::from_utf8_lossy(&buf[..(n as usize).min(buf.len())])
            .trim_end_matches('\0')
            .to_string()
    })
}

/// Open fd numbers (without the one reading /proc/self/fd).
fn open_fds() -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect();
    v.sort_unstable();
    // The last one is read_dir's own.
    v.pop();
    v
}

fn main() {
    let st = status();
    let get = |k: &str| st.get(k).cloned().unwrap_or_default();
    let ids = |k: &str| -> Vec<u64> {
        get(k)
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect()
    };
    let ppid: i64 = get("PPid").parse().unwrap_or(-1);
    let out = json!({
        "pid": std::process::id(),
        "ppid": ppid,
        "hostname": read("/proc/sys/kernel/hostname"),
        "domainname": read("/proc/sys/kernel/domainname"),
        "namespaces": namespaces(),
        "mounts": mounts(),
        "caps": {
            "inheritable": get("CapInh"), "permitted": get("CapPrm"), "effective": get("CapEff"),
            "bounding": get("CapBnd"), "ambient": get("CapAmb"),
        },
        "seccomp": get("Seccomp").parse::<u32>().ok(),
        "no_new_privs": get("NoNewPrivs").parse::<u32>().ok(),
        "umask": get("Umask"),
        "oom_score_adj": read("/proc/self/oom_score_adj").and_then(|s| s.parse::<i64>().ok()),
        "rlimits": rlimits(),
        "uid": ids("Uid"),
        "gid": ids("Gid"),
        "groups": ids("Groups"),
        "cwd": std::env::current_dir().ok().map(|p| p.to_string_lossy().into_owned()),
        "env": std::env::vars().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "cgroup": read("/proc/self/cgroup"),
        "cgroup_limits": cgroup_limits(),
        "args": std::env::args().collect::<Vec<_>>(),
        "session_keyring": session_keyring(),
        "open_fds": open_fds(),
    });
    println!("{out}");
}
