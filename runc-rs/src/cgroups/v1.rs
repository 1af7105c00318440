//! cgroup v1: one file per knob in each controller's directory.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use crate::error::{Error, Result};

fn write(dir: &Path, file: &str, value: impl ToString) -> Result<()> {
    let p = dir.join(file);
    let v = value.to_string();
    std::fs::write(&p, &v).map_err(|e| Error::Cgroup {
        path: p,
        msg: format!("write {v:?}: {e}"),
    })
}

/// A new cpuset cgroup starts with empty cpus/mems: copy them down from the parents.
pub fn init_cpuset(dir: &Path) -> Result<()> {
    let mut chain: Vec<PathBuf> = Vec::new();
    let mut cur = dir.to_path_buf();
    while cur.join("cpuset.cpus").exists() {
        chain.push(cur.clone());
        if !cur.pop() {
            break;
        }
    }
    chain.reverse();
    for pair in chain.windows(2) {
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let own = std::fs::read_to_string(pair[1].join(f)).unwrap_or_default();
            if own.trim().is_empty() {
                let parent = std::fs::read_to_string(pair[0].join(f)).unwrap_or_default();
                write(&pair[1], f, parent.trim())?;
            }
        }
    }
    Ok(())
}

/// runc's default allowed devices, appended after the spec's rules.
const DEFAULT_ALLOWED: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:8 rwm",
    "c 1:7 rwm",
    "c 5:0 rwm",
    "c 1:5 rwm",
    "c 1:9 rwm",
    "c 136:* rwm",
    "c 5:2 rwm",
    "c 10:200 rwm",
];

/// runc's default allowed devices as spec rules (for the cgroup2 device filter).
pub fn default_allowed() -> Vec<LinuxDeviceCgroup> {
    DEFAULT_ALLOWED
        .iter()
        .filter_map(|r| {
            let (t, rest) = r.split_once(' ')?;
            let (num, access) = rest.split_once(' ')?;
            let (maj, min) = num.split_once(':')?;
            let n = |s: &str| {
                if s == "*" {
                    "null".to_string()
                } else {
                    s.to_string()
                }
            };
            serde_json::from_str(&format!(
                r#"{{"allow":true,"type":"{t}","major":{},"minor":{},"access":"{access}"}}"#,
                n(maj),
                n(min)
            ))
            .ok()
        })
        .collect()
}

/// `c 1:3 rwm` as the devices cgroup wants it.
pub fn device_rule(d: &LinuxDeviceCgroup) -> String {
    let t = match d.typ() {
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
        Some(LinuxDeviceType::B) => 'b',
        Some(LinuxDeviceType::P) => 'p',
        Some(LinuxDeviceType::A) | None => 'a',
    };
    let num = |n: Option<i64>| {
        n.filter(|n| *n >= 0)
            .map(|n| n.to_string())
            .unwrap_or_else(|| "*".into())
    };
    let access = d.access().clone().unwrap_or_else(|| "rwm".into());
    format!("{t} {}:{} {access}", num(d.major()), num(d.minor()))
}

/// Writes every limit the spec sets into the controllers that are mounted.
pub fn apply(
    paths: &BTreeMap<String, PathBuf>,
    res: Option<&LinuxResources>,
    creating: bool,
) -> Result<()> {
    let Some(res) = res else {
        return Ok(());
    };
    if let (Some(dir), Some(devs)) = (paths.get("devices"), res.devices()) {
        if creating || !devs.is_empty() {
            write(dir, "devices.deny", "a")?;
            for d in devs {
                let rule = device_rule(d);
                if rule == "a *:* rwm" && d.allow() {
                    write(dir, "devices.allow", "a")?;
                    continue;
                }
                write(
                    dir,
                    if d.allow() {
                        "devices.allow"
                    } else {
                        "devices.deny"
                    },
                    &rule,
                )?;
            }
            for r in DEFAULT_ALLOWED {
                write(dir, "devices.allow", r)?;
            }
        }
    }
    if let (Some(dir), Some(m)) = (paths.get("memory"), res.memory()) {
        if let Some(l) = m.limit() {
            // Raising the limit above memsw first fails: raise memsw before.
            if let Some(sw) = m.swap() {
                if sw != 0 && dir.join("memory.memsw.limit_in_bytes").exists() {
                    let _ = write(dir, "memory.memsw.limit_in_bytes", sw);
                }
            }
            write(dir, "memory.limit_in_bytes", l)?;
        }
        if let Some(sw) = m.swap() {
            if sw != 0 {
                write(dir, "memory.memsw.limit_in_bytes", sw)?;
            }
        }
        if let Some(r) = m.reservation() {
            write(dir, "memory.soft_limit_in_bytes", r)?;
        }
        if let Some(s) = m.swappiness() {
            if s <= 100 {
                write(dir, "memory.swappiness", s)?;
            } else if s != u64::MAX {
                return Err(Error::InvalidArgument(format!(
                    "invalid memory swappiness {s}"
                )));
            }
        }
        if m.disable_oom_killer() == Some(true) {
            write(dir, "memory.oom_control", 1)?;
        }
    }
    if let Some(c) = res.cpu() {
        if let Some(dir) = paths.get("cpu") {
            if let Some(s) = c.shares().filter(|s| *s != 0) {
                write(dir, "cpu.shares", s)?;
            }
            if let Some(p) = c.period().filter(|p| *p != 0) {
                write(dir, "cpu.cfs_period_us", p)?;
            }
            if let Some(q) = c.quota().filter(|q| *q != 0) {
                write(dir, "cpu.cfs_quota_us", q)?;
            }
            if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
                write(dir, "cpu.rt_period_us", p)?;
            }
            if let Some(r) = c.realtime_runtime().filter(|r| *r != 0) {
                write(dir, "cpu.rt_runtime_us", r)?;
            }
        }
        if let Some(dir) = paths.get("cpuset") {
            if let Some(s) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
                write(dir, "cpuset.cpus", s)?;
            }
            if let Some(s) = c.mems().as_deref().filter(|s| !s.is_empty()) {
                write(dir, "cpuset.mems", s)?;
            }
        }
    }
    if let (Some(dir), Some(p)) = (paths.get("pids"), res.pids()) {
        let v = if p.limit() > 0 {
            p.limit().to_string()
        } else {
            "max".into()
        };
        write(dir, "pids.max", v)?;
    }
    if let (Some(dir), Some(b)) = (paths.get("blkio"), res.block_io()) {
        let (wfile, wdfile) = if dir.join("blkio.weight").exists() {
            ("blkio.weight", "blkio.weight_device")
        } else {
            ("blkio.bfq.weight", "blkio.bfq.weight_device")
        };
        let wants_weight = b.weight().is_some_and(|w| w != 0)
            || b.weight_device().as_ref().is_some_and(|v| !v.is_empty());
        if wants_weight && !dir.join(wfile).exists() {
            return Err(Error::Cgroup {
                path: dir.clone(),
                msg: "blkio weight is not supported by this kernel's I/O scheduler \
                      (no blkio.weight nor blkio.bfq.weight)"
                    .into(),
            });
        }
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            write(dir, wfile, w)?;
        }
        for d in b.weight_device().as_deref().unwrap_or(&[]) {
            if let Some(w) = d.weight() {
                write(dir, wdfile, format!("{}:{} {w}", d.major(), d.minor()))?;
            }
        }
        let throttles = [
            (
                "blkio.throttle.read_bps_device",
                b.throttle_read_bps_device(),
            ),
            (
                "blkio.throttle.write_bps_device",
                b.throttle_write_bps_device(),
            ),
            (
                "blkio.throttle.read_iops_device",
                b.throttle_read_iops_device(),
            ),
            (
                "blkio.throttle.write_iops_device",
                b.throttle_write_iops_device(),
            ),
        ];
        for (file, list) in throttles {
            for d in list.as_deref().unwrap_or(&[]) {
                write(
                    dir,
                    file,
                    format!("{}:{} {}", d.major(), d.minor(), d.rate()),
                )?;
            }
        }
    }
    if let Some(dir) = paths.get("hugetlb") {
        for h in res.hugepage_limits().as_deref().unwrap_or(&[]) {
            write(
                dir,
                &format!("hugetlb.{}.limit_in_bytes", h.page_size()),
                h.limit(),
            )?;
        }
    }
    if let Some(n) = res.network() {
        let prios = n.priorities().as_deref().unwrap_or(&[]);
        // A limit that cannot be applied is an error, not silently dropped.
        for (ctrl, wanted) in [
            ("net_cls", n.class_id().is_some()),
            ("net_prio", !prios.is_empty()),
        ] {
            if wanted && !paths.contains_key(ctrl) {
                return Err(Error::Cgroup {
                    path: PathBuf::from("/sys/fs/cgroup").join(ctrl),
                    msg: format!(
                        "the {ctrl} controller is not mounted on this host: cannot apply linux.resources.network"
                    ),
                });
            }
        }
        if let (Some(dir), Some(id)) = (paths.get("net_cls"), n.class_id()) {
            write(dir, "net_cls.classid", id)?;
        }
        if let Some(dir) = paths.get("net_prio") {
            for p in prios {
                write(
                    dir,
                    "net_prio.ifpriomap",
                    format!("{} {}", p.name(), p.priority()),
                )?;
            }
        }
    }
    Ok(())
}
