//! The spec's security and process settings, checked from inside with the static probe.
mod common;

use common::*;
use serde_json::json;

fn mask(names: &[&str]) -> String {
    let m = names
        .iter()
        .map(|n| runc_rs::caps::number(n).expect("known cap"))
        .fold(0u64, |m, n| m | (1 << n));
    format!("{m:016x}")
}

const DOCKER_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

#[test]
fn probe_sees_what_config_json_asks_for() {
    let b = Bundle::new(&["/bin/probe"]);
    b.add_probe();
    b.edit(|s| {
        s["hostname"] = "probe-host".into();
        s["domainname"] = "example.org".into();
        s["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 23});
        s["process"]["cwd"] = "/tmp".into();
        s["process"]["env"] = json!(["PATH=/bin", "FOO=bar"]);
        s["process"]["noNewPrivileges"] = true.into();
        s["process"]["oomScoreAdj"] = 100.into();
        s["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}]);
        s["process"]["capabilities"] = json!({
            "bounding": DOCKER_CAPS, "effective": DOCKER_CAPS, "permitted": DOCKER_CAPS,
            "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]
        });
        s["linux"]["resources"]["memory"] = json!({"limit": 67108864});
        s["linux"]["resources"]["pids"] = json!({"limit": 50});
        s["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]});
    });
    let (out, code) = b.run_to_end();
    assert_eq!(code, 0, "probe failed: {out}");
    let p: serde_json::Value = serde_json::from_str(&out).expect("probe json");
    assert_eq!(p["pid"], 1);
    assert_eq!(p["ppid"], 0);
    assert_eq!(p["hostname"], "probe-host");
    assert_eq!(p["domainname"], "example.org");
    let me = std::process::id().to_string();
    for ns in ["mnt", "pid", "net", "ipc", "uts"] {
        assert_ne!(p["namespaces"][ns], ns_inode(&me, ns), "{ns}");
    }
    assert_eq!(p["caps"]["bounding"], mask(DOCKER_CAPS));
    // A non-root user keeps across execve only its ambient set (as under runc).
    assert_eq!(p["caps"]["effective"], mask(&["CAP_KILL"]));
    assert_eq!(p["caps"]["permitted"], mask(&["CAP_KILL"]));
    assert_eq!(p["caps"]["inheritable"], mask(&["CAP_KILL"]));
    assert_eq!(p["caps"]["ambient"], mask(&["CAP_KILL"]));
    assert_eq!(p["seccomp"], 2);
    assert_eq!(p["no_new_privs"], 1);
    assert_eq!(p["uid"], json!([1000, 1000, 1000, 1000]));
    assert_eq!(p["gid"], json!([1000, 1000, 1000, 1000]));
    assert_eq!(p["groups"], json!([10, 20]));
    assert_eq!(p["umask"], "0027");
    assert_eq!(p["cwd"], "/tmp");
    let env: Vec<&str> = p["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        env.contains(&"FOO=bar") && env.contains(&"PATH=/bin"),
        "{env:?}"
    );
    assert_eq!(p["oom_score_adj"], 100);
    assert_eq!(
        p["rlimits"]["RLIMIT_NOFILE"],
        json!({"soft": 256, "hard": 512})
    );
    assert_eq!(
        p["cgroup_limits"]["memory/memory.limit_in_bytes"],
        "67108864"
    );
    assert_eq!(p["cgroup_limits"]["pids/pids.max"], "50");
    let mounts = p["mounts"].as_array().expect("mounts");
    let find = |d: &str| {
        mounts
            .iter()
            .rfind(|m| m["destination"] == d)
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        find("/")["options"]
            .as_str()
            .unwrap_or_default()
            .starts_with("ro"),
        "root not read-only"
    );
    assert!(
        find("/proc/sys")["options"]
            .as_str()
            .unwrap_or_default()
            .starts_with("ro"),
        "/proc/sys not read-only"
    );
    assert!(
        !find("/proc/keys").is_null(),
        "/proc/keys not masked (bind of /dev/null)"
    );
    assert_eq!(find("/proc/acpi")["type"], "tmpfs", "/proc/acpi not masked");
    assert_eq!(find("/sys/fs/cgroup")["type"], "tmpfs");
    assert!(find("/sys/fs/cgroup/memory")["options"]
        .as_str()
        .unwrap_or_default()
        .starts_with("ro"));
    assert_eq!(find("/dev/pts")["type"], "devpts");
}

#[test]
fn seccomp_rules_are_enforced_with_arguments() {
    let b = Bundle::new(&[
        "sh",
        "-c",
        "mkdir /tmp/x; echo mkdir=$?; cat /proc/self/status | grep Seccomp:",
    ]);
    b.edit(|s| {
        s["root"]["readonly"] = false.into();
        s["process"]["noNewPrivileges"] = false.into();
        s["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_NE"}]},
                {"names": ["not_a_syscall"], "action": "SCMP_ACT_ERRNO"}
            ]});
    });
    let (out, code) = b.run_to_end();
    assert_eq!(code, 0);
    assert_eq!(out, "mkdir=1\nSeccomp:\t2\n");
}

#[test]
fn sysctl_readonly_root_and_masked_paths() {
    let b = Bundle::new(&[
        "sh",
        "-c",
        "cat /proc/sys/kernel/shm_rmid_forced; touch /x 2>/dev/null; echo touch=$?; cat /proc/keys | wc -c; ls /sys/firmware | wc -l",
    ]);
    b.edit(|s| {
        s["linux"]["sysctl"] = json!({"kernel.shm_rmid_forced": "1"});
    });
    let (out, code) = b.run_to_end();
    assert_eq!(code, 0);
    assert_eq!(out, "1\ntouch=1\n0\n0\n");
}

#[test]
fn root_user_gets_the_configured_capability_sets() {
    let b = Bundle::new(&["/bin/probe"]);
    b.add_probe();
    b.edit(|s| {
        s["process"]["capabilities"] = json!({
            "bounding": DOCKER_CAPS, "effective": DOCKER_CAPS, "permitted": DOCKER_CAPS, "inheritable": [], "ambient": []
        });
    });
    let (out, code) = b.run_to_end();
    assert_eq!(code, 0, "{out}");
    let p: serde_json::Value = serde_json::from_str(&out).expect("probe json");
    assert_eq!(p["caps"]["bounding"], mask(DOCKER_CAPS));
    assert_eq!(p["caps"]["effective"], mask(DOCKER_CAPS));
    assert_eq!(p["caps"]["permitted"], mask(DOCKER_CAPS));
    assert_eq!(p["caps"]["inheritable"], "0000000000000000");
    assert_eq!(p["uid"], json!([0, 0, 0, 0]));
}
