//! btrfs: each snapshot is a subvolume `<root>/<n>`, created empty or as a snapshot of its
//! parent's subvolume (read-only for views/commits), presented by a `btrfs` mount with `subvolid`
//! (containerd's btrfs snapshotter mounts the subvolume this way). Loaded only when `<root>`
//! is on btrfs.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::backend::{io, Backend, BackendError, MountSpec};
use crate::meta::SnapKind;

const BTRFS_SUPER_MAGIC: i64 = 0x9123683e;

pub struct Btrfs {
    root: PathBuf,
    device: String,
}

fn run(args: &[&str]) -> Result<String, BackendError> {
    let out = Command::new("btrfs")
        .args(args)
        .output()
        .map_err(io("btrfs", Path::new("btrfs")))?;
    if !out.status.success() {
        return Err(BackendError::Command(format!(
            "btrfs {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// The device mounted at or above `path` (from /proc/self/mountinfo, longest match).
fn device_of(path: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(usize, String)> = None;
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let sep = f.iter().position(|x| *x == "-")?;
        let mp = Path::new(f.get(4)?);
        if path.starts_with(mp) && f.get(sep + 1) == Some(&"btrfs") {
            let len = mp.as_os_str().len();
            if best.as_ref().is_none_or(|(l, _)| len > *l) {
                best = Some((len, f.get(sep + 2)?.to_string()));
            }
        }
    }
    best.map(|(_, d)| d)
}

impl Btrfs {
    /// Some when `root` (created if needed) is on btrfs.
    pub fn open(root: PathBuf) -> Option<Self> {
        let parent = root.parent()?;
        let st = nix::sys::statfs::statfs(parent).ok()?;
        if st.filesystem_type().0 as i64 != BTRFS_SUPER_MAGIC {
            return None;
        }
        std::fs::create_dir_all(&root).ok()?;
        let device = device_of(&std::fs::canonicalize(&root).ok()?)?;
        Some(Self { root, device })
    }

    fn subvol_id(&self, id: u64) -> Option<String> {
        let out = run(&[
            "subvolume",
            "show",
            &self.data_dir(id).display().to_string(),
        ])
        .ok()?;
        out.lines().find_map(|l| {
            l.trim()
                .strip_prefix("Subvolume ID:")
                .map(|v| v.trim().to_string())
        })
    }
}

impl Backend for Btrfs {
    fn name(&self) -> &'static str {
        "btrfs"
    }
    fn create(&self, id: u64, kind: SnapKind, parents: &[u64]) -> Result<(), BackendError> {
        let dst = self.data_dir(id).display().to_string();
        match parents.first() {
            None => run(&["subvolume", "create", &dst])?,
            Some(p) => {
                let src = self.data_dir(*p).display().to_string();
                if kind == SnapKind::View {
                    run(&["subvolume", "snapshot", "-r", &src, &dst])?
                } else {
                    run(&["subvolume", "snapshot", &src, &dst])?
                }
            }
        };
        Ok(())
    }
    fn mounts(&self, id: u64, kind: SnapKind, _parents: &[u64]) -> Vec<MountSpec> {
        let ro = if kind == SnapKind::View { "ro" } else { "rw" };
        let mut options = vec![ro.to_string()];
        match self.subvol_id(id) {
            Some(sv) => options.push(format!("subvolid={sv}")),
            None => options.push(format!("subvol={}", self.data_dir(id).display())),
        }
        vec![MountSpec {
            kind: "btrfs".into(),
            source: self.device.clone(),
            target: String::new(),
            options,
        }]
    }
    /// Committed snapshots are read-only subvolumes, as containerd's (which snapshots the
    /// active subvolume read-only and deletes it; the flag gives the same result in place).
    fn commit(&self, id: u64) -> Result<(), BackendError> {
        let p = self.data_dir(id).display().to_string();
        run(&["property", "set", "-ts", &p, "ro", "true"]).map(|_| ())
    }
    fn remove(&self, id: u64) -> Result<(), BackendError> {
        let p = self.data_dir(id);
        if !p.exists() {
            return Ok(());
        }
        run(&["subvolume", "delete", &p.display().to_string()]).map(|_| ())
    }
    fn data_dir(&self, id: u64) -> PathBuf {
        self.root.join(id.to_string())
    }
    fn root(&self) -> &std::path::Path {
        &self.root
    }
}
