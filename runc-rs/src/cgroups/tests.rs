//! The cgroup logic against fake cgroupfs directories: exact file names and values.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use super::Cgroup;

/// Parsed as runc-rs parses config.json (with the IOPS key fix).
fn res(json: &str) -> LinuxResources {
    let mut b = json.as_bytes().to_vec();
    crate::create::fix_oci_names(&mut b);
    serde_json::from_slice(&b).expect("resources json")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn touch(dir: &Path, files: &[&str]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for f in files {
        std::fs::write(dir.join(f), "").expect("write");
    }
}

/// A v2-only host: root with cgroup.controllers, the container two levels down.
fn v2_host(root: &Path) -> Cgroup {
    std::fs::write(
        root.join("cgroup.controllers"),
        "cpuset cpu io memory hugetlb pids rdma misc",
    )
    .expect("w");
    touch(root, &["cgroup.subtree_control"]);
    touch(&root.join("engine"), &["cgroup.subtree_control"]);
    let dir = root.join("engine/ctr");
    touch(&dir, &["cgroup.subtree_control", "cgroup.freeze"]);
    Cgroup {
        v1: BTreeMap::new(),
        unified: Some(dir),
        unified_root: Some(root.to_path_buf()),
        v2_only: true,
    }
}

#[test]
fn v2_only_apply_enables_controllers_and_writes_each_file() {
    let d = tempfile::tempdir().expect("tempdir");
    let cg = v2_host(d.path());
    let r = res(
        r#"{"memory":{"limit":268435456,"reservation":134217728,"swap":536870912},
        "cpu":{"shares":2048,"quota":150000,"period":100000,"cpus":"0-1","mems":"0"},
        "pids":{"limit":99},
        "blockIO":{"weight":1000,"weightDevice":[{"major":8,"minor":16,"weight":10}],
                   "throttleWriteBpsDevice":[{"major":8,"minor":0,"rate":2097152}],
                   "throttleReadIOPSDevice":[{"major":8,"minor":0,"rate":300}]},
        "hugepageLimits":[{"pageSize":"1GB","limit":0}],
        "unified":{"pids.max":"77"}}"#,
    );
    // Not "creating": the device filter needs a real cgroup2 directory (tested in
    // tests/resources.rs on this host's unified hierarchy).
    cg.apply(Some(&r), false).expect("apply");
    let dir = cg.unified.clone().expect("dir");
    let f = |n: &str| read(&dir.join(n));
    assert_eq!(f("memory.max"), "268435456");
    assert_eq!(f("memory.low"), "134217728");
    assert_eq!(f("memory.swap.max"), "268435456");
    assert_eq!(f("cpu.weight"), "79");
    assert_eq!(f("cpu.max"), "150000 100000");
    assert_eq!(f("cpuset.cpus"), "0-1");
    assert_eq!(f("cpuset.mems"), "0");
    // `unified` is written last and wins.
    assert_eq!(f("pids.max"), "77");
    assert_eq!(f("io.weight"), "8:16 1");
    assert_eq!(f("io.max"), "8:0 riops=300");
    assert_eq!(f("hugetlb.1GB.max"), "0");
    for p in [d.path().to_path_buf(), d.path().join("engine")] {
        assert_eq!(
            read(&p.join("cgroup.subtree_control")),
            "+memory +cpu +cpuset +pids +io +hugetlb"
        );
    }
}

#[test]
fn v2_rejects_realtime_and_bad_unified_keys() {
    let d = tempfile::tempdir().expect("tempdir");
    let cg = v2_host(d.path());
    let e = cg
        .apply(Some(&res(r#"{"cpu":{"realtimeRuntime":1000}}"#)), true)
        .expect_err("rt on v2");
    assert!(e.to_string().contains("not supported on cgroup v2"), "{e}");
    let e = cg
        .apply(Some(&res(r#"{"unified":{"../x":"1"}}"#)), true)
        .expect_err("bad key");
    assert!(e.to_string().contains("invalid unified key"), "{e}");
}

#[test]
fn v2_freeze_writes_cgroup_freeze_and_waits_for_events() {
    let d = tempfile::tempdir().expect("tempdir");
    let cg = v2_host(d.path());
    let dir = cg.unified.clone().expect("dir");
    std::fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 1\n").expect("w");
    cg.freeze(true).expect("freeze");
    assert_eq!(read(&dir.join("cgroup.freeze")), "1");
    assert!(cg.is_frozen());
    std::fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 0\n").expect("w");
    cg.freeze(false).expect("thaw");
    assert_eq!(read(&dir.join("cgroup.freeze")), "0");
    assert!(!cg.is_frozen());
}

/// A v1 host with one directory per controller (and hugetlb only on the unified one).
fn hybrid_host(root: &Path) -> Cgroup {
    let mut v1 = BTreeMap::new();
    for c in [
        "memory", "cpu", "cpuset", "pids", "blkio", "devices", "freezer", "net_cls", "net_prio",
    ] {
        let dir = root.join(c).join("ctr");
        touch(&dir, &[]);
        v1.insert(c.to_string(), dir);
    }
    touch(&root.join("blkio/ctr"), &["blkio.weight"]);
    let uroot = root.join("unified");
    std::fs::create_dir_all(&uroot).expect("mkdir");
    std::fs::write(uroot.join("cgroup.controllers"), "hugetlb").expect("w");
    touch(&uroot, &["cgroup.subtree_control"]);
    touch(&uroot.join("ctr"), &[]);
    Cgroup {
        v1,
        unified: Some(uroot.join("ctr")),
        unified_root: Some(uroot),
        v2_only: false,
    }
}

#[test]
fn v1_apply_writes_exact_files_and_hugetlb_goes_to_unified() {
    let d = tempfile::tempdir().expect("tempdir");
    let cg = hybrid_host(d.path());
    let r = res(
        r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"b","major":8,"minor":0,"access":"r"}],
        "memory":{"limit":1000000,"swap":2000000,"reservation":500000,"swappiness":60,"disableOOMKiller":true},
        "cpu":{"shares":100,"quota":5000,"period":10000,"realtimePeriod":1000000,"realtimeRuntime":950,"cpus":"1","mems":"0"},
        "pids":{"limit":-1},
        "blockIO":{"weight":123,"weightDevice":[{"major":8,"minor":0,"weight":456}],
                   "throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1}],
                   "throttleWriteIOPSDevice":[{"major":8,"minor":0,"rate":4}]},
        "hugepageLimits":[{"pageSize":"2MB","limit":2097152}],
        "network":{"classID":42,"priorities":[{"name":"eth0","priority":3}]}}"#,
    );
    cg.apply(Some(&r), true).expect("apply");
    let f = |c: &str, n: &str| read(&cg.v1[c].join(n));
    // Each write replaces the fake file: the last rule written is what remains.
    assert_eq!(f("devices", "devices.deny"), "a *:* rwm");
    assert_eq!(f("devices", "devices.allow"), "c 10:200 rwm");
    assert_eq!(f("memory", "memory.limit_in_bytes"), "1000000");
    assert_eq!(f("memory", "memory.memsw.limit_in_bytes"), "2000000");
    assert_eq!(f("memory", "memory.soft_limit_in_bytes"), "500000");
    assert_eq!(f("memory", "memory.swappiness"), "60");
    assert_eq!(f("memory", "memory.oom_control"), "1");
    assert_eq!(f("cpu", "cpu.shares"), "100");
    assert_eq!(f("cpu", "cpu.cfs_quota_us"), "5000");
    assert_eq!(f("cpu", "cpu.cfs_period_us"), "10000");
    assert_eq!(f("cpu", "cpu.rt_period_us"), "1000000");
    assert_eq!(f("cpu", "cpu.rt_runtime_us"), "950");
    assert_eq!(f("cpuset", "cpuset.cpus"), "1");
    assert_eq!(f("cpuset", "cpuset.mems"), "0");
    assert_eq!(f("pids", "pids.max"), "max");
    assert_eq!(f("blkio", "blkio.weight"), "123");
    assert_eq!(f("blkio", "blkio.weight_device"), "8:0 456");
    assert_eq!(f("blkio", "blkio.throttle.read_bps_device"), "8:0 1");
    assert_eq!(f("blkio", "blkio.throttle.write_iops_device"), "8:0 4");
    assert_eq!(f("net_cls", "net_cls.classid"), "42");
    assert_eq!(f("net_prio", "net_prio.ifpriomap"), "eth0 3");
    let u = cg.unified.clone().expect("unified");
    assert_eq!(read(&u.join("hugetlb.2MB.max")), "2097152");
    assert_eq!(
        read(&u.parent().expect("root").join("cgroup.subtree_control")),
        "+hugetlb"
    );
    assert!(!cg.v1["memory"].join("hugetlb.2MB.limit_in_bytes").exists());
}

#[test]
fn v1_update_does_not_rewrite_devices() {
    let d = tempfile::tempdir().expect("tempdir");
    let cg = hybrid_host(d.path());
    cg.apply(Some(&res(r#"{"memory":{"limit":7}}"#)), false)
        .expect("apply");
    assert!(!cg.v1["devices"].join("devices.deny").exists());
    assert_eq!(read(&cg.v1["memory"].join("memory.limit_in_bytes")), "7");
    let _: PathBuf = cg.v1["memory"].clone();
}

#[test]
fn default_allowed_devices_as_rules() {
    let d = super::v1::default_allowed();
    assert_eq!(d.len(), 11);
    let rules: Vec<String> = d.iter().map(super::v1::device_rule).collect();
    assert_eq!(rules[0], "c *:* m");
    assert_eq!(rules[8], "c 136:* rwm");
}
