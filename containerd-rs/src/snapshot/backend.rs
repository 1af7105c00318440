//! Snapshotter backends: the directories of each snapshot and the mounts that present them.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::meta::SnapKind;

/// A mount as returned to clients (`containerd.types.Mount`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub kind: String,
    pub source: String,
    pub target: String,
    pub options: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Command(String),
}

impl From<BackendError> for errdefs::Error {
    fn from(e: BackendError) -> Self {
        tracing::error!(error = %e, "snapshotter backend");
        errdefs::Error::internal(e.to_string())
    }
}

pub(crate) fn io<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> BackendError + 'a {
    move |source| BackendError::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

/// One snapshotter's storage. `parents` are ids nearest first.
pub trait Backend: Send + Sync {
    fn name(&self) -> &'static str;
    fn create(&self, id: u64, kind: SnapKind, parents: &[u64]) -> Result<(), BackendError>;
    fn mounts(&self, id: u64, kind: SnapKind, parents: &[u64]) -> Vec<MountSpec>;
    /// An active snapshot becomes committed (inside the metadata transaction: an error
    /// leaves it active).
    fn commit(&self, _id: u64) -> Result<(), BackendError> {
        Ok(())
    }
    fn remove(&self, id: u64) -> Result<(), BackendError>;
    /// The directory holding the snapshot's own files (what usage measures).
    fn data_dir(&self, id: u64) -> PathBuf;
    /// The directory with one `<id>` entry per snapshot.
    fn root(&self) -> &Path;
    /// The ids that have an entry on disk.
    fn ids_on_disk(&self) -> Vec<u64> {
        fs::read_dir(self.root())
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// overlayfs: `<root>/<n>/fs` (upper) and `<root>/<n>/work`.
pub struct Overlay {
    root: PathBuf,
}

impl Overlay {
    pub fn new(root: PathBuf) -> Result<Self, BackendError> {
        fs::create_dir_all(&root).map_err(io("mkdir", &root))?;
        Ok(Self { root })
    }
    fn upper(&self, id: u64) -> PathBuf {
        self.root.join(id.to_string()).join("fs")
    }
    fn work(&self, id: u64) -> PathBuf {
        self.root.join(id.to_string()).join("work")
    }
}

impl Backend for Overlay {
    fn name(&self) -> &'static str {
        "overlayfs"
    }
    fn create(&self, id: u64, kind: SnapKind, _parents: &[u64]) -> Result<(), BackendError> {
        let fs_dir = self.upper(id);
        fs::create_dir_all(&fs_dir).map_err(io("mkdir", &fs_dir))?;
        if kind == SnapKind::Active {
            let w = self.work(id);
            fs::create_dir_all(&w).map_err(io("mkdir", &w))?;
        }
        Ok(())
    }
    fn mounts(&self, id: u64, kind: SnapKind, parents: &[u64]) -> Vec<MountSpec> {
        let path = |p: PathBuf| p.display().to_string();
        if parents.is_empty() {
            let ro = if kind == SnapKind::View { "ro" } else { "rw" };
            return vec![MountSpec {
                kind: "bind".into(),
                source: path(self.upper(id)),
                target: String::new(),
                options: vec![ro.into(), "rbind".into()],
            }];
        }
        let mut options = vec!["index=off".to_string()];
        if kind == SnapKind::Active {
            options.push(format!("workdir={}", path(self.work(id))));
            options.push(format!("upperdir={}", path(self.upper(id))));
        } else if parents.len() == 1 {
            return vec![MountSpec {
                kind: "bind".into(),
                source: path(self.upper(parents[0])),
                target: String::new(),
                options: vec!["ro".into(), "rbind".into()],
            }];
        }
        let lower: Vec<String> = parents.iter().map(|p| path(self.upper(*p))).collect();
        options.push(format!("lowerdir={}", lower.join(":")));
        vec![MountSpec {
            kind: "overlay".into(),
            source: "overlay".into(),
            target: String::new(),
            options,
        }]
    }
    fn remove(&self, id: u64) -> Result<(), BackendError> {
        let d = self.root.join(id.to_string());
        match fs::remove_dir_all(&d) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", &d)(e)),
        }
    }
    fn data_dir(&self, id: u64) -> PathBuf {
        self.upper(id)
    }
    fn root(&self) -> &Path {
        &self.root
    }
}

/// native: each snapshot is a full copy of its parent in `<root>/<n>`, presented by a bind mount.
pub struct Native {
    root: PathBuf,
}

impl Native {
    pub fn new(root: PathBuf) -> Result<Self, BackendError> {
        fs::create_dir_all(&root).map_err(io("mkdir", &root))?;
        Ok(Self { root })
    }
}

/// Copies a tree preserving owners, modes, times, xattrs, links and devices.
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), BackendError> {
    let out = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .output()
        .map_err(io("cp", from))?;
    if !out.status.success() {
        return Err(BackendError::Command(format!(
            "cp -a {} {}: {}",
            from.display(),
            to.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

impl Backend for Native {
    fn name(&self) -> &'static str {
        "native"
    }
    fn create(&self, id: u64, kind: SnapKind, parents: &[u64]) -> Result<(), BackendError> {
        // A view of a committed snapshot is a read-only bind of the parent's directory, as in
        // containerd: no copy.
        if kind == SnapKind::View && !parents.is_empty() {
            return Ok(());
        }
        let d = self.data_dir(id);
        fs::create_dir_all(&d).map_err(io("mkdir", &d))?;
        if let Some(p) = parents.first() {
            copy_tree(&self.data_dir(*p), &d)?;
        }
        Ok(())
    }
    fn mounts(&self, id: u64, kind: SnapKind, parents: &[u64]) -> Vec<MountSpec> {
        let ro = if kind == SnapKind::View { "ro" } else { "rw" };
        let dir = match parents.first() {
            Some(p) if kind == SnapKind::View => self.data_dir(*p),
            _ => self.data_dir(id),
        };
        vec![MountSpec {
            kind: "bind".into(),
            source: dir.display().to_string(),
            target: String::new(),
            options: vec![ro.into(), "rbind".into()],
        }]
    }
    fn remove(&self, id: u64) -> Result<(), BackendError> {
        let d = self.data_dir(id);
        match fs::remove_dir_all(&d) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", &d)(e)),
        }
    }
    fn data_dir(&self, id: u64) -> PathBuf {
        self.root.join(id.to_string())
    }
    fn root(&self) -> &Path {
        &self.root
    }
}

/// Disk usage of a tree as containerd counts it: allocated blocks of distinct inodes.
pub fn disk_usage(dir: &Path) -> (i64, i64) {
    let mut seen = std::collections::HashSet::new();
    let mut size = 0i64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(md) = fs::symlink_metadata(&p) else {
            continue;
        };
        if seen.insert((md.dev(), md.ino())) {
            size += (md.blocks() * 512) as i64;
        }
        if md.is_dir() {
            if let Ok(rd) = fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    (size, seen.len() as i64)
}
