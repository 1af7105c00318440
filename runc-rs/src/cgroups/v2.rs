//! cgroup v2: the unified hierarchy, with controllers enabled from the root down.
use std::path::Path;

use oci_spec::runtime::{LinuxHugepageLimit, LinuxResources};

use crate::error::{Error, Result};

fn write(dir: &Path, file: &str, value: impl ToString) -> Result<()> {
    let p = dir.join(file);
    let v = value.to_string();
    std::fs::write(&p, &v).map_err(|e| Error::Cgroup {
        path: p,
        msg: format!("write {v:?}: {e}"),
    })
}

/// Controllers the resources need.
pub fn needed_controllers(res: &LinuxResources) -> Vec<&'static str> {
    let mut c = Vec::new();
    if res.memory().is_some() {
        c.push("memory");
    }
    if let Some(cpu) = res.cpu() {
        if cpu.shares().is_some() || cpu.quota().is_some() || cpu.period().is_some() {
            c.push("cpu");
        }
        if cpu.cpus().is_some() || cpu.mems().is_some() {
            c.push("cpuset");
        }
    }
    if res.pids().is_some() {
        c.push("pids");
    }
    if res.block_io().is_some() {
        c.push("io");
    }
    if res
        .hugepage_limits()
        .as_ref()
        .is_some_and(|h| !h.is_empty())
    {
        c.push("hugetlb");
    }
    c
}

/// Writes `+ctrl` into cgroup.subtree_control of every ancestor of `dir` below `root`
/// (and of `root` itself), for the controllers `root` offers.
pub fn enable_controllers(root: &Path, dir: &Path, ctrls: &[&str]) -> Result<()> {
    let available = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    let wanted: Vec<String> = ctrls
        .iter()
        .filter(|c| available.split_whitespace().any(|a| a == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let Ok(rel) = dir.strip_prefix(root) else {
        return Err(Error::Cgroup {
            path: dir.to_path_buf(),
            msg: format!("not under {}", root.display()),
        });
    };
    let mut cur = root.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for (i, c) in comps.iter().enumerate() {
        if i + 1 == comps.len() {
            break;
        }
        write(&cur, "cgroup.subtree_control", wanted.join(" "))?;
        cur.push(c);
    }
    if comps.len() <= 1 {
        write(root, "cgroup.subtree_control", wanted.join(" "))?;
    } else {
        write(&cur, "cgroup.subtree_control", wanted.join(" "))?;
    }
    Ok(())
}

/// runc's conversion of v1 cpu.shares [2, 262144] to cpu.weight [1, 10000].
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.saturating_sub(2)) * 9999) / 262142
}

/// runc's conversion of blkio.weight [10, 1000] to io.weight [1, 10000].
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w).saturating_sub(10)) * 9999 / 990
}

fn limit(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// Hugepage limits (`hugetlb.<size>.max`).
pub fn apply_hugetlb(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<()> {
    for h in limits {
        write(dir, &format!("hugetlb.{}.max", h.page_size()), h.limit())?;
    }
    Ok(())
}

/// Writes the v2 files for every resource set in the spec.
pub fn apply(dir: &Path, res: &LinuxResources) -> Result<()> {
    if let Some(m) = res.memory() {
        if let Some(r) = m.reservation() {
            write(dir, "memory.low", limit(r))?;
        }
        if let Some(l) = m.limit() {
            write(dir, "memory.max", limit(l))?;
        }
        if let Some(sw) = m.swap() {
            // v1 swap is memory+swap; v2 counts swap alone.
            let v = match (sw, m.limit()) {
                (s, _) if s < 0 => "max".to_string(),
                (s, Some(l)) if l > 0 => (s - l).max(0).to_string(),
                (s, _) => s.to_string(),
            };
            write(dir, "memory.swap.max", v)?;
        }
        if m.disable_oom_killer() == Some(true) {
            tracing::debug!("disableOOMKiller has no cgroup v2 equivalent: skipped");
        }
    }
    if let Some(c) = res.cpu() {
        if c.realtime_period().is_some_and(|v| v != 0)
            || c.realtime_runtime().is_some_and(|v| v != 0)
        {
            return Err(Error::InvalidArgument(
                "cpu realtimePeriod/realtimeRuntime are not supported on cgroup v2".into(),
            ));
        }
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            write(dir, "cpu.weight", shares_to_weight(s))?;
        }
        if c.quota().is_some() || c.period().is_some() {
            let q = c
                .quota()
                .filter(|q| *q > 0)
                .map(|q| q.to_string())
                .unwrap_or_else(|| "max".into());
            let p = c.period().filter(|p| *p != 0).unwrap_or(100_000);
            write(dir, "cpu.max", format!("{q} {p}"))?;
        }
        if let Some(s) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            write(dir, "cpuset.cpus", s)?;
        }
        if let Some(s) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            write(dir, "cpuset.mems", s)?;
        }
    }
    if let Some(p) = res.pids() {
        write(
            dir,
            "pids.max",
            if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".into()
            },
        )?;
    }
    if let Some(b) = res.block_io() {
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            write(dir, "io.weight", blkio_to_io_weight(w))?;
        }
        for d in b.weight_device().as_deref().unwrap_or(&[]) {
            if let Some(w) = d.weight() {
                write(
                    dir,
                    "io.weight",
                    format!("{}:{} {}", d.major(), d.minor(), blkio_to_io_weight(w)),
                )?;
            }
        }
        let throttles = [
            ("rbps", b.throttle_read_bps_device()),
            ("wbps", b.throttle_write_bps_device()),
            ("riops", b.throttle_read_iops_device()),
            ("wiops", b.throttle_write_iops_device()),
        ];
        for (key, list) in throttles {
            for d in list.as_deref().unwrap_or(&[]) {
                write(
                    dir,
                    "io.max",
                    format!("{}:{} {key}={}", d.major(), d.minor(), d.rate()),
                )?;
            }
        }
    }
    apply_hugetlb(dir, res.hugepage_limits().as_deref().unwrap_or(&[]))?;
    for (k, v) in res.unified().iter().flatten() {
        if k.contains('/') {
            return Err(Error::InvalidArgument(format!("invalid unified key {k:?}")));
        }
        write(dir, k, v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_cgroupfs(root: &Path, rel: &str, files: &[&str]) {
        std::fs::write(
            root.join("cgroup.controllers"),
            "cpu io memory pids hugetlb",
        )
        .expect("write");
        let mut cur = root.to_path_buf();
        std::fs::write(cur.join("cgroup.subtree_control"), "").expect("write");
        for c in rel.split('/') {
            cur.push(c);
            std::fs::create_dir_all(&cur).expect("mkdir");
            std::fs::write(cur.join("cgroup.subtree_control"), "").expect("write");
        }
        for f in files {
            std::fs::write(cur.join(f), "").expect("write");
        }
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).expect("read")
    }

    #[test]
    fn writes_v2_files_from_spec_resources() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path();
        fake_cgroupfs(root, "parent/ctr", &[]);
        let res: LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":104857600,"reservation":52428800,"swap":209715200},
                "cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0"},
                "pids":{"limit":42},
                "blockIO":{"weight":500,"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}]},
                "hugepageLimits":[{"pageSize":"2MB","limit":4194304}],
                "unified":{"memory.high":"90000000"}}"#,
        )
        .expect("resources json");
        let dir = root.join("parent/ctr");
        enable_controllers(root, &dir, &needed_controllers(&res)).expect("enable");
        apply(&dir, &res).expect("apply");
        assert_eq!(read(&dir.join("memory.max")), "104857600");
        assert_eq!(read(&dir.join("memory.low")), "52428800");
        assert_eq!(read(&dir.join("memory.swap.max")), "104857600");
        assert_eq!(read(&dir.join("cpu.weight")), "39");
        assert_eq!(read(&dir.join("cpu.max")), "50000 100000");
        assert_eq!(read(&dir.join("cpuset.cpus")), "0");
        assert_eq!(read(&dir.join("pids.max")), "42");
        assert_eq!(read(&dir.join("io.weight")), "4950");
        assert_eq!(read(&dir.join("io.max")), "8:0 rbps=1048576");
        assert_eq!(read(&dir.join("hugetlb.2MB.max")), "4194304");
        assert_eq!(read(&dir.join("memory.high")), "90000000");
        // cpuset is not offered by this fake root: only offered controllers are enabled.
        assert_eq!(
            read(&root.join("cgroup.subtree_control")),
            "+memory +cpu +pids +io +hugetlb"
        );
        assert_eq!(
            read(&root.join("parent/cgroup.subtree_control")),
            "+memory +cpu +pids +io +hugetlb"
        );
        assert_eq!(read(&dir.join("cgroup.subtree_control")), "");
    }

    #[test]
    fn unlimited_values_become_max() {
        let d = tempfile::tempdir().expect("tempdir");
        fake_cgroupfs(d.path(), "c", &[]);
        let res: LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":-1,"swap":-1},"pids":{"limit":0},"cpu":{"quota":-1}}"#,
        )
        .expect("json");
        let dir = d.path().join("c");
        apply(&dir, &res).expect("apply");
        assert_eq!(read(&dir.join("memory.max")), "max");
        assert_eq!(read(&dir.join("memory.swap.max")), "max");
        assert_eq!(read(&dir.join("pids.max")), "max");
        assert_eq!(read(&dir.join("cpu.max")), "max 100000");
    }

    #[test]
    fn weight_conversions_match_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10000);
    }
}
