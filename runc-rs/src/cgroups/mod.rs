//! cgroups: v1 hierarchies (one directory per mounted controller), the v2 unified
//! hierarchy, and the hybrid layout where only some controllers live on v2.
pub mod devices_bpf;
pub mod stats;
pub mod v1;
pub mod v2;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::utils;

/// The container's cgroup directories, as stored in state.json.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cgroup {
    /// v1 controller (`memory`, `name=systemd`...) → the container's directory.
    pub v1: BTreeMap<String, PathBuf>,
    /// The container's directory in the cgroup2 hierarchy (hybrid or unified host).
    pub unified: Option<PathBuf>,
    /// The cgroup2 mount point (to enable controllers in ancestors).
    pub unified_root: Option<PathBuf>,
    /// The host has only cgroup2.
    pub v2_only: bool,
}

fn err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Cgroup {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// The cgroup of this process per v1 controller ("" for v2), from /proc/self/cgroup.
fn own_cgroups() -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    if let Ok(s) = std::fs::read_to_string("/proc/self/cgroup") {
        for line in s.lines() {
            let mut it = line.splitn(3, ':');
            let (_, ctrls, path) = (it.next(), it.next(), it.next());
            if let (Some(ctrls), Some(path)) = (ctrls, path) {
                if ctrls.is_empty() {
                    map.insert(String::new(), path.to_string());
                }
                for c in ctrls.split(',').filter(|c| !c.is_empty()) {
                    map.insert(c.to_string(), path.to_string());
                }
            }
        }
    }
    map
}

fn join_rel(mount: &Path, mount_root: &str, cg: &str) -> PathBuf {
    let rel = cg.strip_prefix(mount_root).unwrap_or(cg);
    mount.join(rel.trim_start_matches('/'))
}

impl Cgroup {
    /// Resolves `cgroupsPath` (absolute: from each hierarchy's root; relative or empty:
    /// under this process's own cgroup, empty meaning `<id>`) in every mounted hierarchy.
    pub fn resolve(cgroups_path: Option<&Path>, id: &str) -> Result<Cgroup> {
        let mounts = utils::mountinfo()?;
        let own = own_cgroups();
        let path = cgroups_path
            .map(|p| p.to_string_lossy().into_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| id.to_string());
        if path.split('/').any(|c| c == "..") {
            return Err(Error::InvalidArgument(format!(
                "invalid cgroupsPath {path:?}"
            )));
        }
        let inner = |ctrl: &str| -> String {
            if path.starts_with('/') {
                path.clone()
            } else {
                let base = own.get(ctrl).map(String::as_str).unwrap_or("/");
                format!("{}/{}", base.trim_end_matches('/'), path)
            }
        };
        let mut cg = Cgroup::default();
        for m in &mounts {
            if m.fstype == "cgroup" {
                let ctrls: Vec<&str> = m
                    .super_opts
                    .split(',')
                    .filter(|o| {
                        !matches!(*o, "rw" | "ro" | "clone_children" | "noprefix" | "xattr")
                            && !o.starts_with("release_agent")
                    })
                    .collect();
                if let Some(first) = ctrls.first() {
                    let dir = join_rel(&m.mount_point, &m.root, &inner(first));
                    for c in ctrls {
                        cg.v1.entry(c.to_string()).or_insert_with(|| dir.clone());
                    }
                }
            } else if m.fstype == "cgroup2" && cg.unified.is_none() {
                cg.unified = Some(join_rel(&m.mount_point, &m.root, &inner("")));
                cg.unified_root = Some(m.mount_point.clone());
            }
        }
        cg.v2_only = cg.v1.is_empty() && cg.unified.is_some();
        if cg.v1.is_empty() && cg.unified.is_none() {
            return Err(err(
                Path::new("/sys/fs/cgroup"),
                "no cgroup hierarchy is mounted",
            ));
        }
        Ok(cg)
    }

    /// Distinct directories of this cgroup (v1 controllers sharing a mount appear once).
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut d: Vec<PathBuf> = self.v1.values().cloned().collect();
        d.extend(self.unified.clone());
        d.sort();
        d.dedup();
        d
    }

    /// Creates the directories and applies the resource limits.
    pub fn create(&self, res: Option<&LinuxResources>) -> Result<()> {
        for d in self.dirs() {
            std::fs::create_dir_all(&d).map_err(|e| err(&d, format!("mkdir: {e}")))?;
        }
        if let Some(cpuset) = self.v1.get("cpuset") {
            v1::init_cpuset(cpuset)?;
        }
        self.apply(res, true)
    }

    /// Applies (or updates) resource limits.
    pub fn apply(&self, res: Option<&LinuxResources>, creating: bool) -> Result<()> {
        if self.v2_only {
            if let (Some(dir), Some(root)) = (&self.unified, &self.unified_root) {
                if let Some(r) = res {
                    v2::enable_controllers(root, dir, &v2::needed_controllers(r))?;
                    v2::apply(dir, r)?;
                }
                // cgroup2 has no devices files: the allow/deny list is an eBPF program,
                // with runc's default rules after the spec's.
                if creating {
                    let mut devs = res.and_then(|r| r.devices().clone()).unwrap_or_default();
                    devs.extend(v1::default_allowed());
                    devices_bpf::apply(dir, &devs)?;
                }
            }
            return Ok(());
        }
        v1::apply(&self.v1, res, creating)?;
        // Hybrid: controllers missing on v1 (hugetlb here) are applied on the unified dir.
        if let (Some(r), Some(dir), Some(root)) = (res, &self.unified, &self.unified_root) {
            let hp = r.hugepage_limits().as_deref().unwrap_or(&[]);
            if !hp.is_empty() && !self.v1.contains_key("hugetlb") {
                v2::enable_controllers(root, dir, &["hugetlb"])?;
                v2::apply_hugetlb(dir, hp)?;
            }
        }
        Ok(())
    }

    /// Moves `pid` into every directory.
    pub fn add_pid(&self, pid: i32) -> Result<()> {
        for d in self.dirs() {
            let f = d.join("cgroup.procs");
            std::fs::write(&f, pid.to_string())
                .map_err(|e| err(&d, format!("add pid {pid}: {e}")))?;
        }
        Ok(())
    }

    /// Moves the calling (single-threaded) process into every v1 directory by writing `0`
    /// to `tasks`. Moving only the current thread skips the kernel's global threadgroup
    /// rwsem, so no RCU grace period is waited for (writing a pid to `cgroup.procs` waits
    /// for one: several ms on a busy host).
    pub fn join_v1_self(&self) -> Result<()> {
        let mut dirs: Vec<&PathBuf> = self.v1.values().collect();
        dirs.sort();
        dirs.dedup();
        for d in dirs {
            std::fs::write(d.join("tasks"), "0").map_err(|e| err(d, format!("join: {e}")))?;
        }
        Ok(())
    }

    /// Writes `pid` into the unified directory's `cgroup.procs` (when clone3 could not
    /// place the child there).
    pub fn add_pid_unified(&self, pid: i32) -> Result<()> {
        if let Some(d) = &self.unified {
            std::fs::write(d.join("cgroup.procs"), pid.to_string())
                .map_err(|e| err(d, format!("add pid {pid}: {e}")))?;
        }
        Ok(())
    }

    /// An O_PATH fd of the unified directory, for clone3's CLONE_INTO_CGROUP.
    pub fn unified_fd(&self) -> Option<std::os::fd::OwnedFd> {
        let d = self.unified.as_ref()?;
        let fd = nix::fcntl::open(
            d,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok()?;
        // SAFETY: open returned a new fd that nothing else owns.
        Some(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
    }

    /// The pids in the cgroup (from the first directory that answers).
    pub fn pids(&self) -> Vec<i32> {
        let pref = ["freezer", "pids", "memory", "devices", "cpu"];
        let mut dirs: Vec<PathBuf> = pref
            .iter()
            .filter_map(|c| self.v1.get(*c).cloned())
            .collect();
        dirs.extend(self.dirs());
        for d in dirs {
            if let Ok(s) = std::fs::read_to_string(d.join("cgroup.procs")) {
                return s.lines().filter_map(|l| l.trim().parse().ok()).collect();
            }
        }
        Vec::new()
    }

    /// Freezes or thaws every process in the cgroup, waiting until the kernel agrees.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        if let Some(d) = self.v1.get("freezer") {
            let want = if frozen { "FROZEN" } else { "THAWED" };
            let f = d.join("freezer.state");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                utils::write_file(&f, want)?;
                let now = std::fs::read_to_string(&f).unwrap_or_default();
                if now.trim() == want {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err(err(d, format!("freezer stuck in {}", now.trim())));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if let Some(d) = &self.unified {
            if d.join("cgroup.freeze").exists() {
                utils::write_file(&d.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
                // Freezing is asynchronous on v2: cgroup.events says when it is done.
                let want = if frozen { "frozen 1" } else { "frozen 0" };
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let ev = std::fs::read_to_string(d.join("cgroup.events")).unwrap_or_default();
                    if ev.is_empty() || ev.lines().any(|l| l.trim() == want) {
                        return Ok(());
                    }
                    if Instant::now() > deadline {
                        return Err(err(d, format!("cgroup.events never said {want:?}")));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        Err(err(Path::new("/sys/fs/cgroup"), "no freezer controller"))
    }

    /// Whether the freezer says FROZEN (or cgroup.freeze is 1).
    pub fn is_frozen(&self) -> bool {
        if let Some(d) = self.v1.get("freezer") {
            return std::fs::read_to_string(d.join("freezer.state"))
                .map(|s| s.trim() == "FROZEN")
                .unwrap_or(false);
        }
        if let Some(d) = &self.unified {
            return std::fs::read_to_string(d.join("cgroup.freeze"))
                .map(|s| s.trim() == "1")
                .unwrap_or(false);
        }
        false
    }

    /// Removes the container's directories (not the parents), retrying while
    /// dying processes still hold them.
    pub fn destroy(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        for d in self.dirs() {
            loop {
                match std::fs::remove_dir(&d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => return Err(err(&d, format!("rmdir: {e}"))),
                }
            }
        }
        Ok(())
    }
}

/// `--systemd-cgroup`: runc-rs drives cgroupfs only; say why the systemd driver is refused.
pub fn systemd_unsupported() -> Error {
    if Path::new("/run/systemd/system").is_dir() {
        Error::InvalidArgument(
            "the systemd cgroup driver is not implemented by runc-rs: use the cgroupfs driver (drop --systemd-cgroup)"
                .into(),
        )
    } else {
        Error::InvalidArgument(
            "systemd not running on this host, cannot use systemd cgroups manager".into(),
        )
    }
}

#[cfg(test)]
mod tests;
