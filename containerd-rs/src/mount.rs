//! Performing `containerd.types.Mount`s into a temporary directory (for Diff on mounts that are
//! not a plain bind or an overlay with an upperdir).

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::snapshot::MountSpec;

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mount {kind} {source_path} on {target}: {errno}")]
    Mount {
        kind: String,
        source_path: String,
        target: String,
        errno: nix::Error,
    },
    #[error("mkdir {0}: {1}")]
    Mkdir(String, std::io::Error),
}

impl From<MountError> for errdefs::Error {
    fn from(e: MountError) -> Self {
        tracing::error!(error = %e, "mount");
        errdefs::Error::internal(e.to_string())
    }
}

fn parse_options(opts: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in opts {
        match o.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" | "defaults" => {}
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            other => data.push(other.to_string()),
        }
    }
    (flags, data.join(","))
}

/// Mounts are undone (lazily detached) when this is dropped.
pub struct TempMount {
    pub path: PathBuf,
}

impl TempMount {
    pub fn new(parent: &Path, mounts: &[MountSpec]) -> Result<Self, MountError> {
        let path = parent.join(format!("m-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path)
            .map_err(|e| MountError::Mkdir(path.display().to_string(), e))?;
        let guard = Self { path };
        for m in mounts {
            let (flags, data) = parse_options(&m.options);
            let target = if m.target.is_empty() {
                guard.path.clone()
            } else {
                guard.path.join(m.target.trim_start_matches('/'))
            };
            let is_bind = flags.contains(MsFlags::MS_BIND) || m.kind == "bind";
            let flags = if m.kind == "bind" {
                flags | MsFlags::MS_BIND
            } else {
                flags
            };
            // A bind mount ignores MS_RDONLY; it is applied by a remount below.
            let mount_flags = if is_bind {
                flags - MsFlags::MS_RDONLY
            } else {
                flags
            };
            let res = mount(
                Some(m.source.as_str()),
                &target,
                Some(m.kind.as_str()),
                mount_flags,
                if data.is_empty() {
                    None
                } else {
                    Some(data.as_str())
                },
            );
            res.map_err(|errno| MountError::Mount {
                kind: m.kind.clone(),
                source_path: m.source.clone(),
                target: target.display().to_string(),
                errno,
            })?;
            if is_bind && flags.contains(MsFlags::MS_RDONLY) {
                let remount = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
                mount(None::<&str>, &target, None::<&str>, remount, None::<&str>).map_err(
                    |errno| MountError::Mount {
                        kind: "remount".into(),
                        source_path: m.source.clone(),
                        target: target.display().to_string(),
                        errno,
                    },
                )?;
            }
        }
        Ok(guard)
    }
}

impl Drop for TempMount {
    fn drop(&mut self) {
        while umount2(&self.path, MntFlags::MNT_DETACH).is_ok() {}
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Detaches every mount at or below `dir`, deepest first (what a crash left in `tmpmounts`).
pub fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(dir))
        .collect();
    points.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in points {
        if let Err(e) = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(mountpoint = m, error = %e, "unmount leftover");
        } else {
            tracing::info!(mountpoint = m, "unmounted leftover");
        }
    }
}
