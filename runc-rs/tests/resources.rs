//! cgroup resources on this host's v1 hierarchies (and hugetlb on the unified one), read
//! back from the real cgroup files; `update` and `events` against the same files.
mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::*;
use serde_json::json;

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// major:minor of a real block device (the first disk; loop devices otherwise).
fn block_device() -> (u64, u64) {
    let mut devs: Vec<(String, String)> = std::fs::read_dir("/sys/block")
        .expect("/sys/block")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let dev = std::fs::read_to_string(e.path().join("dev")).ok()?;
            Some((name, dev.trim().to_string()))
        })
        .collect();
    devs.sort_by_key(|(n, _)| (n.starts_with("loop") || n.starts_with("zram"), n.clone()));
    let (_, dev) = devs.first().expect("a block device");
    let (a, b) = dev.split_once(':').expect("major:minor");
    (a.parse().expect("major"), b.parse().expect("minor"))
}

fn start(b: &Bundle) -> i32 {
    become_subreaper();
    let mut create = b.create_piped(&[]);
    assert!(
        create.wait().expect("wait").success(),
        "create: {}",
        b.log()
    );
    b.ok(&["start", &b.id]);
    b.pid()
}

#[test]
fn every_v1_resource_reaches_its_cgroup_file() {
    let b = Bundle::new(&["sleep", "100"]);
    let (maj, min) = block_device();
    // Realtime runtime needs a budget in the parent: give the test's parent one.
    let cpu_parent = Path::new("/sys/fs/cgroup/cpu").join(&b.cg_parent);
    std::fs::create_dir_all(&cpu_parent).expect("mkdir cpu parent");
    std::fs::write(cpu_parent.join("cpu.rt_runtime_us"), "20000").expect("parent rt budget");
    b.edit(|s| {
        s["linux"]["resources"] = json!({
            "devices": [{"allow": false, "access": "rwm"},
                        {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}],
            "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728,
                       "swappiness": 10, "disableOOMKiller": true},
            "cpu": {"shares": 256, "quota": 30000, "period": 200000, "realtimePeriod": 500000,
                    "realtimeRuntime": 10000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 33},
            "blockIO": {
                "throttleReadBpsDevice": [{"major": maj, "minor": min, "rate": 1048576}],
                "throttleWriteBpsDevice": [{"major": maj, "minor": min, "rate": 2097152}],
                "throttleReadIOPSDevice": [{"major": maj, "minor": min, "rate": 100}],
                "throttleWriteIOPSDevice": [{"major": maj, "minor": min, "rate": 200}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]
        });
    });
    let pid = start(&b);
    let m = |f: &str| read(b.cgroup_dir("memory").join(f));
    assert_eq!(m("memory.limit_in_bytes"), "67108864");
    assert_eq!(m("memory.soft_limit_in_bytes"), "33554432");
    assert_eq!(m("memory.memsw.limit_in_bytes"), "134217728");
    assert_eq!(m("memory.swappiness"), "10");
    assert!(m("memory.oom_control").contains("oom_kill_disable 1"));
    let c = |f: &str| read(b.cgroup_dir("cpu").join(f));
    assert_eq!(c("cpu.shares"), "256");
    assert_eq!(c("cpu.cfs_quota_us"), "30000");
    assert_eq!(c("cpu.cfs_period_us"), "200000");
    assert_eq!(c("cpu.rt_period_us"), "500000");
    assert_eq!(c("cpu.rt_runtime_us"), "10000");
    assert_eq!(read(b.cgroup_dir("cpuset").join("cpuset.cpus")), "0");
    assert_eq!(read(b.cgroup_dir("cpuset").join("cpuset.mems")), "0");
    assert_eq!(read(b.cgroup_dir("pids").join("pids.max")), "33");
    let bl = |f: &str| read(b.cgroup_dir("blkio").join(f));
    assert_eq!(
        bl("blkio.throttle.read_bps_device"),
        format!("{maj}:{min} 1048576")
    );
    assert_eq!(
        bl("blkio.throttle.write_bps_device"),
        format!("{maj}:{min} 2097152")
    );
    assert_eq!(
        bl("blkio.throttle.read_iops_device"),
        format!("{maj}:{min} 100")
    );
    assert_eq!(
        bl("blkio.throttle.write_iops_device"),
        format!("{maj}:{min} 200")
    );
    // hugetlb is not a v1 hierarchy on this host: it is limited on the unified one.
    assert_eq!(
        read(b.cgroup_dir("unified").join("hugetlb.2MB.max")),
        "4194304"
    );
    let devices = read(b.cgroup_dir("devices").join("devices.list"));
    let rules: Vec<&str> = devices.lines().collect();
    assert!(rules.contains(&"c 10:229 rw"), "{devices}");
    assert!(rules.contains(&"c 1:3 rwm"), "{devices}");
    assert!(!rules.contains(&"a *:* rwm"), "{devices}");
    // Every process of the container is in each hierarchy.
    for ctrl in [
        "memory", "cpu", "cpuset", "pids", "blkio", "devices", "freezer", "unified",
    ] {
        assert_eq!(
            read(b.cgroup_dir(ctrl).join("cgroup.procs")),
            pid.to_string(),
            "{ctrl}"
        );
    }
    b.ok(&["delete", "--force", &b.id]);
    assert_eq!(wait_pid(pid), 137);
    assert!(!b.cgroup_dir("unified").exists());
}

#[test]
fn devices_cgroup_denies_what_the_spec_does_not_allow() {
    let b = Bundle::new(&[
        "sh",
        "-c",
        "echo x > /dev/null && echo null-ok; head -c1 /dev/mydisk >/dev/null 2>&1; echo disk=$?",
    ]);
    let (maj, min) = block_device();
    b.edit(|s| {
        s["linux"]["devices"] =
            json!([{"path": "/dev/mydisk", "type": "b", "major": maj, "minor": min}]);
    });
    let (out, code) = b.run_to_end();
    assert_eq!(code, 0);
    // The node exists (mknod is allowed: `b *:* m`) but reading it is denied.
    assert_eq!(out, "null-ok\ndisk=1\n");
}

/// Whether this kernel has a weight-aware I/O scheduler for cgroup v1: CFQ's `blkio.weight` in
/// the root, or BFQ registered (its files appear only in child cgroups).
fn blkio_weight_supported() -> bool {
    std::path::Path::new("/sys/fs/cgroup/blkio/blkio.weight").exists()
        || std::fs::read_dir("/sys/block")
            .map(|d| {
                d.flatten().any(|e| {
                    std::fs::read_to_string(e.path().join("queue/scheduler"))
                        .unwrap_or_default()
                        .split_whitespace()
                        .any(|w| w.trim_matches(|c| c == '[' || c == ']') == "bfq")
                })
            })
            .unwrap_or(false)
}

#[test]
fn blkio_weight_and_a_clear_error_for_per_device_weight() {
    if !blkio_weight_supported() {
        // Without CFQ or BFQ there is no weight knob: create fails as runc's does, with a clear
        // message, and leaves nothing behind.
        let b = Bundle::new(&["true"]);
        b.edit(|s| s["linux"]["resources"]["blockIO"] = json!({"weight": 300}));
        let st = b.create_piped(&[]).wait().expect("wait");
        assert!(!st.success());
        assert!(
            b.log().contains("blkio weight is not supported"),
            "{}",
            b.log()
        );
        assert!(!b.root.join(&b.id).exists());
        assert!(!b.cgroup_dir("blkio").exists());
        return;
    }
    let b = Bundle::new(&["sleep", "100"]);
    b.edit(|s| s["linux"]["resources"]["blockIO"] = json!({"weight": 300}));
    let pid = start(&b);
    let dir = b.cgroup_dir("blkio");
    let file = if dir.join("blkio.weight").exists() {
        "blkio.weight"
    } else {
        "blkio.bfq.weight"
    };
    assert_eq!(read(dir.join(file)), "300");
    b.ok(&["delete", "--force", &b.id]);
    assert_eq!(wait_pid(pid), 137);
    // A per-device weight on a disk whose scheduler is not BFQ is refused by the kernel:
    // create fails, says which file, and leaves nothing behind.
    let (maj, min) = block_device();
    let sched = std::fs::read_dir("/sys/block")
        .expect("/sys/block")
        .flatten()
        .find(|e| {
            std::fs::read_to_string(e.path().join("dev"))
                .unwrap_or_default()
                .trim()
                == format!("{maj}:{min}")
        })
        .map(|e| read(e.path().join("queue/scheduler")))
        .unwrap_or_default();
    let b = Bundle::new(&["true"]);
    b.edit(|s| {
        s["linux"]["resources"]["blockIO"] =
            json!({"weight": 300, "weightDevice": [{"major": maj, "minor": min, "weight": 500}]})
    });
    let st = b.create_piped(&[]).wait().expect("wait");
    if sched.contains("[bfq]") {
        assert!(st.success(), "{}", b.log());
        assert!(read(b.cgroup_dir("blkio").join("blkio.bfq.weight_device"))
            .contains(&format!("{maj}:{min} 500")));
    } else {
        assert!(!st.success());
        assert!(b.log().contains("weight_device"), "{}", b.log());
        assert!(!b.root.join(&b.id).exists());
        assert!(!b.cgroup_dir("blkio").exists());
    }
}

#[test]
fn update_by_flags_and_by_resources_json_on_stdin() {
    let b = Bundle::new(&["sleep", "100"]);
    b.edit(|s| {
        s["linux"]["resources"]["memory"] = json!({"limit": 67108864});
        s["linux"]["resources"]["pids"] = json!({"limit": 20});
    });
    let pid = start(&b);
    b.ok(&[
        "update",
        "--memory",
        "128m",
        "--cpu-share",
        "300",
        "--pids-limit",
        "30",
        "--cpu-quota",
        "25000",
        "--cpu-period",
        "100000",
        &b.id,
    ]);
    assert_eq!(
        read(b.cgroup_dir("memory").join("memory.limit_in_bytes")),
        "134217728"
    );
    assert_eq!(read(b.cgroup_dir("cpu").join("cpu.shares")), "300");
    assert_eq!(read(b.cgroup_dir("cpu").join("cpu.cfs_quota_us")), "25000");
    assert_eq!(read(b.cgroup_dir("pids").join("pids.max")), "30");
    // As containerd-shim-runc-v2 does it: the resources JSON on stdin.
    let mut child = b
        .cmd()
        .args(["update", "--resources", "-", &b.id])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn update");
    std::io::Write::write_all(
        child.stdin.as_mut().expect("stdin"),
        br#"{"memory":{"limit":33554432,"reservation":16777216},"cpu":{"quota":-1},"pids":{"limit":0}}"#,
    )
    .expect("write resources");
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("update");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        read(b.cgroup_dir("memory").join("memory.limit_in_bytes")),
        "33554432"
    );
    assert_eq!(
        read(b.cgroup_dir("memory").join("memory.soft_limit_in_bytes")),
        "16777216"
    );
    assert_eq!(read(b.cgroup_dir("cpu").join("cpu.cfs_quota_us")), "-1");
    assert_eq!(read(b.cgroup_dir("pids").join("pids.max")), "max");
    // Unchanged by the second update.
    assert_eq!(read(b.cgroup_dir("cpu").join("cpu.shares")), "300");
    let bad = b.run(&["update", "--memory", "lots", &b.id]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid size"));
    b.ok(&["kill", &b.id, "KILL"]);
    assert_eq!(wait_pid(pid), 137);
    let stopped = b.run(&["update", "--memory", "64m", &b.id]);
    assert!(!stopped.status.success());
    assert!(String::from_utf8_lossy(&stopped.stderr).contains("container not running"));
    b.ok(&["delete", &b.id]);
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

#[test]
fn events_stats_report_cgroup_counters_like_runc() {
    let ours = Bundle::new(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; sleep 100",
    ]);
    ours.edit(|s| {
        s["linux"]["resources"]["memory"] = json!({"limit": 67108864});
        s["linux"]["resources"]["pids"] = json!({"limit": 40});
    });
    let pid = start(&ours);
    let mut theirs = Bundle::new(&["sleep", "100"]);
    theirs.runtime = "/usr/sbin/runc".into();
    theirs.write_spec(&ours.spec());
    theirs.edit(|s| {
        s["linux"]["cgroupsPath"] = format!("/{}/{}", theirs.cg_parent, theirs.id).into()
    });
    let tpid = start(&theirs);
    // Let the loop burn some CPU time first.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let ev = loop {
        let o = ours.ok(&["events", "--stats", &ours.id]);
        let ev: serde_json::Value = serde_json::from_slice(&o.stdout).expect("events json");
        // The shell execs `sleep` once its loop is done.
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "sleep" || std::time::Instant::now() > deadline {
            break ev;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], ours.id.as_str());
    let d = &ev["data"];
    assert_eq!(d["memory"]["usage"]["limit"], 67108864);
    assert!(d["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0);
    assert!(d["memory"]["raw"]["rss"].is_u64());
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0);
    assert_eq!(d["pids"]["limit"], 40);
    assert!(d["pids"]["current"].as_u64().unwrap_or(0) >= 1);
    assert_eq!(
        d["cpuset"]["cpus"].as_array().map(Vec::len),
        Some(num_cpus())
    );
    let o = theirs.ok(&["events", "--stats", &theirs.id]);
    let tev: serde_json::Value = serde_json::from_slice(&o.stdout).expect("runc events json");
    let td = &tev["data"];
    assert_eq!(keys(&ev), keys(&tev));
    // `memory.cache` is omitted when zero (runc's omitempty), and whether a container has page
    // cache charged yet varies: compare without it, and check ours is absent only when zero.
    let without_cache = |v: &serde_json::Value| {
        let mut k = keys(v);
        k.retain(|k| k != "cache");
        k
    };
    for k in ["cpu", "memory", "pids", "cpuset"] {
        assert_eq!(without_cache(&d[k]), without_cache(&td[k]), "data.{k}");
    }
    let raw_cache = d["memory"]["raw"]["total_cache"]
        .as_u64()
        .or(d["memory"]["raw"]["cache"].as_u64())
        .unwrap_or(0);
    assert_eq!(
        d["memory"]["cache"].as_u64().unwrap_or(0),
        raw_cache,
        "memory.cache is the cgroup's cache: {d}"
    );
    assert_eq!(keys(&d["cpu"]["usage"]), keys(&td["cpu"]["usage"]));
    assert_eq!(keys(&d["memory"]["usage"]), keys(&td["memory"]["usage"]));
    assert_eq!(keys(&d["memory"]["raw"]), keys(&td["memory"]["raw"]));
    ours.ok(&["delete", "--force", &ours.id]);
    theirs.ok(&["delete", "--force", &theirs.id]);
    assert_eq!(wait_pid(pid), 137);
    assert_eq!(wait_pid(tpid), 137);
}

fn num_cpus() -> usize {
    runc_rs::cgroups::stats::parse_list(&read(PathBuf::from("/sys/fs/cgroup/cpuset/cpuset.cpus")))
        .len()
}

#[test]
fn events_stream_stats_and_an_oom_kill() {
    let b = Bundle::new(&[
        "sh",
        "-c",
        "sleep 0.3; (x=$(head -c 67108864 /dev/zero | tr '\\0' a)); sleep 100",
    ]);
    b.edit(|s| {
        s["linux"]["resources"]["memory"] = json!({"limit": 16777216, "swap": 16777216});
    });
    let pid = start(&b);
    let mut ev = b
        .cmd()
        .args(["events", "--interval", "100ms", &b.id])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn events");
    let out = ev.stdout.take().expect("stdout");
    let mut stats = 0;
    let mut oom = false;
    for line in std::io::BufReader::new(out).lines() {
        let line = line.expect("line");
        let v: serde_json::Value = serde_json::from_str(&line).expect("event json");
        assert_eq!(v["id"], b.id.as_str());
        match v["type"].as_str() {
            Some("stats") => stats += 1,
            Some("oom") => oom = true,
            t => panic!("unexpected event {t:?}"),
        }
        if oom && stats >= 2 {
            break;
        }
    }
    assert!(oom && stats >= 2);
    // The init survived (only the hog was killed); events ends when the container stops.
    b.ok(&["kill", &b.id, "KILL"]);
    assert_eq!(wait_pid(pid), 137);
    let st = ev.wait().expect("events exit");
    assert!(st.success());
    b.ok(&["delete", &b.id]);
}

/// net_cls and net_prio are not mounted on this host. Mounting them here, even in a private
/// mount namespace, creates a hierarchy that can outlive its last mount (invisible to every
/// process, and it makes containerd log "cannot find cgroup mount destination"), so the
/// mounted case is checked on a fake cgroupfs (cgroups::tests::v1_apply_writes_exact_files...).
#[test]
fn net_cls_and_net_prio_not_mounted_is_a_clear_error() {
    let b = Bundle::new(&["true"]);
    b.edit(|s| {
        s["linux"]["resources"]["network"] =
            json!({"classID": 1048577, "priorities": [{"name": "lo", "priority": 5}]})
    });
    assert!(
        !Path::new("/sys/fs/cgroup/net_cls").exists(),
        "this host mounts net_cls"
    );
    let st = b.create_piped(&[]).wait().expect("wait");
    assert!(!st.success());
    assert!(
        b.log()
            .contains("the net_cls controller is not mounted on this host"),
        "{}",
        b.log()
    );
    assert!(!b.root.join(&b.id).exists());
    assert!(!b.cgroup_dir("memory").exists());
    // priorities alone need net_prio.
    let b = Bundle::new(&["true"]);
    b.edit(|s| {
        s["linux"]["resources"]["network"] = json!({"priorities": [{"name": "lo", "priority": 5}]})
    });
    assert!(!b.create_piped(&[]).wait().expect("wait").success());
    assert!(
        b.log().contains("the net_prio controller is not mounted"),
        "{}",
        b.log()
    );
}

#[test]
fn v2_device_filter_is_enforced_by_the_kernel() {
    // The cgroup2 logic for devices runs on this host's unified hierarchy: a program that
    // allows /dev/zero and denies /dev/null reads, checked by a process inside.
    let dir = Path::new("/sys/fs/cgroup/unified").join(format!("rr-dev-{}", rand6()));
    std::fs::create_dir(&dir).expect("mkdir unified cgroup");
    struct Rm(PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _rm = Rm(dir.clone());
    let devices: Vec<oci_spec::runtime::LinuxDeviceCgroup> = serde_json::from_value(json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rw"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "w"}
    ]))
    .expect("devices");
    runc_rs::cgroups::devices_bpf::apply(&dir, &devices).expect("load and attach");
    let script = format!(
        "echo $$ > {}/cgroup.procs; head -c1 /dev/zero | wc -c; echo x > /dev/null && echo w-ok; \
         cat /dev/null 2>/dev/null; echo r=$?",
        dir.display()
    );
    let o = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("sh");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "1\nw-ok\nr=1\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
