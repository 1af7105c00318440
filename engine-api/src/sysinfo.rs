//! What this kernel's cgroups can enforce, as dockerd's `pkg/sysinfo` reads it, and the
//! resource settings dockerd discards with a warning when the kernel cannot (its
//! `verifyPlatformContainerResources`): `docker run --blkio-weight 300` on a kernel without a
//! weight-aware I/O scheduler prints a WARNING and runs the container without the weight, rather
//! than failing in the runtime.
use std::path::{Path, PathBuf};

use crate::types::HostConfig;

/// dockerd's warning for a `--blkio-weight` the kernel cannot apply.
pub const WEIGHT_DISCARDED: &str =
    "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.";

/// The block I/O knobs this kernel offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Blkio {
    pub weight: bool,
    pub weight_device: bool,
    pub read_bps: bool,
    pub write_bps: bool,
    pub read_iops: bool,
    pub write_iops: bool,
}

impl Blkio {
    /// Reads the blkio hierarchy (cgroup v1) or the unified one (v2) under `cgroup_root`
    /// (normally `/sys/fs/cgroup`), and `sys_block` (normally `/sys/block`) for the schedulers.
    pub fn probe(cgroup_root: &Path, sys_block: &Path) -> Blkio {
        let v1 = cgroup_root.join("blkio");
        if v1.is_dir() {
            let has = |f: &str| v1.join(f).exists();
            // BFQ's files are not created in the root cgroup; they exist in every child as soon
            // as the scheduler is registered, which is when the schedulers list it.
            let bfq = bfq_registered(sys_block);
            return Blkio {
                weight: has("blkio.weight") || has("blkio.bfq.weight") || bfq,
                weight_device: has("blkio.weight_device") || has("blkio.bfq.weight_device") || bfq,
                read_bps: has("blkio.throttle.read_bps_device"),
                write_bps: has("blkio.throttle.write_bps_device"),
                read_iops: has("blkio.throttle.read_iops_device"),
                write_iops: has("blkio.throttle.write_iops_device"),
            };
        }
        let controllers =
            std::fs::read_to_string(cgroup_root.join("cgroup.controllers")).unwrap_or_default();
        let io = controllers.split_whitespace().any(|c| c == "io");
        let bfq = bfq_registered(sys_block);
        Blkio {
            weight: io && bfq,
            weight_device: io && bfq,
            read_bps: io,
            write_bps: io,
            read_iops: io,
            write_iops: io,
        }
    }

    /// The host's.
    pub fn host() -> Blkio {
        Blkio::probe(Path::new("/sys/fs/cgroup"), Path::new("/sys/block"))
    }

    /// Drops what the kernel cannot enforce from `hc`, returning dockerd's warning for each.
    pub fn discard_unsupported(&self, hc: &mut HostConfig) -> Vec<String> {
        let mut warnings = Vec::new();
        if hc.blkio_weight > 0 && !self.weight {
            warnings.push(WEIGHT_DISCARDED.to_string());
            hc.blkio_weight = 0;
        }
        if hc
            .blkio_weight_device
            .as_ref()
            .is_some_and(|v| !v.is_empty())
            && !self.weight_device
        {
            warnings.push(
                "Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded."
                    .to_string(),
            );
            hc.blkio_weight_device = Some(Vec::new());
        }
        let mut throttle = |list: &mut Option<Vec<crate::types::ThrottleDevice>>,
                            supported: bool,
                            what: &str,
                            rw: &str| {
            if list.as_ref().is_some_and(|v| !v.is_empty()) && !supported {
                warnings.push(format!(
                    "Your kernel does not support {what} Block I/O {rw} limit or the cgroup is not mounted. Block I/O {what} {rw} limit discarded."
                ));
                *list = Some(Vec::new());
            }
        };
        throttle(&mut hc.blkio_device_read_bps, self.read_bps, "BPS", "read");
        throttle(
            &mut hc.blkio_device_write_bps,
            self.write_bps,
            "BPS",
            "write",
        );
        throttle(
            &mut hc.blkio_device_read_iops,
            self.read_iops,
            "IOPS",
            "read",
        );
        throttle(
            &mut hc.blkio_device_write_iops,
            self.write_iops,
            "IOPS",
            "write",
        );
        warnings
    }
}

/// Whether BFQ is registered: some block device lists it among its schedulers.
fn bfq_registered(sys_block: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(sys_block) else {
        return false;
    };
    entries.flatten().any(|e| {
        let p: PathBuf = e.path().join("queue/scheduler");
        std::fs::read_to_string(p)
            .map(|s| {
                s.split_whitespace()
                    .any(|w| w.trim_matches(|c| c == '[' || c == ']') == "bfq")
            })
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        for f in files {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(
                &p,
                if f.ends_with("scheduler") {
                    "none [mq-deadline] kyber\n"
                } else {
                    ""
                },
            )
            .expect("write");
        }
        d
    }

    #[test]
    fn v1_without_a_weight_scheduler_discards_the_weight_with_dockerds_warning() {
        let d = tree(&[
            "cg/blkio/blkio.throttle.read_bps_device",
            "cg/blkio/blkio.throttle.write_bps_device",
            "cg/blkio/blkio.throttle.read_iops_device",
            "cg/blkio/blkio.throttle.write_iops_device",
            "block/vda/queue/scheduler",
        ]);
        let b = Blkio::probe(&d.path().join("cg"), &d.path().join("block"));
        assert!(!b.weight && !b.weight_device && b.read_bps && b.write_iops);
        let mut hc = HostConfig {
            blkio_weight: 300,
            blkio_device_read_bps: Some(vec![crate::types::ThrottleDevice {
                path: "/dev/vda".into(),
                rate: 1,
            }]),
            ..Default::default()
        };
        let w = b.discard_unsupported(&mut hc);
        assert_eq!(
            w,
            ["Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."]
        );
        assert_eq!(w, [WEIGHT_DISCARDED]);
        assert_eq!(hc.blkio_weight, 0);
        assert_eq!(hc.blkio_device_read_bps.map(|v| v.len()), Some(1));
    }

    #[test]
    fn bfq_listed_by_a_disk_means_weights_work() {
        let d = tree(&["cg/blkio/blkio.throttle.read_bps_device"]);
        std::fs::create_dir_all(d.path().join("block/sda/queue")).expect("mkdir");
        std::fs::write(
            d.path().join("block/sda/queue/scheduler"),
            "mq-deadline kyber [bfq] none\n",
        )
        .expect("write");
        let b = Blkio::probe(&d.path().join("cg"), &d.path().join("block"));
        assert!(b.weight && b.weight_device && b.read_bps && !b.write_bps);
        let mut hc = HostConfig {
            blkio_weight: 300,
            ..Default::default()
        };
        assert!(b.discard_unsupported(&mut hc).is_empty());
        assert_eq!(hc.blkio_weight, 300);
    }
}
