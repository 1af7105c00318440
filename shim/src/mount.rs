//! Mounting the task's rootfs (CreateTaskRequest.rootfs) at `<bundle>/rootfs`, and unmounting it.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mount {kind} {source_path} on {target}: {errno}")]
    Mount {
        kind: String,
        source_path: String,
        target: PathBuf,
        errno: Errno,
    },
    #[error("unmount {target}: {errno}")]
    Unmount { target: PathBuf, errno: Errno },
    #[error("create mount point {target}: {source}")]
    MountPoint {
        target: PathBuf,
        source: std::io::Error,
    },
    #[error("mount target {0:?} escapes the rootfs")]
    BadTarget(String),
    #[error("mount options for {0} are longer than a page")]
    TooLong(String),
}

/// One mount as the client sent it (containerd.types.Mount).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountSpec {
    pub kind: String,
    pub source: String,
    pub target: String,
    pub options: Vec<String>,
}

/// Splits mount(8)-style options into flags and the filesystem data string.
pub fn parse_options(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            _ => {
                data.push(opt.as_str());
                continue;
            }
        };
        flags.insert(set);
        flags.remove(clear);
    }
    (flags, data.join(","))
}

/// Mounts each spec at `rootfs` (or `rootfs/<target>`), in order. On failure, what was mounted
/// is unmounted again.
pub fn mount_all(mounts: &[MountSpec], rootfs: &Path) -> Result<(), MountError> {
    std::fs::create_dir_all(rootfs).map_err(|source| MountError::MountPoint {
        target: rootfs.to_path_buf(),
        source,
    })?;
    let mut done: Vec<PathBuf> = Vec::new();
    for m in mounts {
        let target = target_path(rootfs, &m.target)?;
        if let Err(err) = mount_one(m, &target) {
            for t in done.iter().rev() {
                let _ = unmount_all(t.as_path());
            }
            return Err(err);
        }
        done.push(target);
    }
    Ok(())
}

fn target_path(rootfs: &Path, target: &str) -> Result<PathBuf, MountError> {
    let rel = target.trim_start_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return Err(MountError::BadTarget(target.to_string()));
    }
    Ok(if rel.is_empty() {
        rootfs.to_path_buf()
    } else {
        rootfs.join(rel)
    })
}

fn mount_one(m: &MountSpec, target: &Path) -> Result<(), MountError> {
    let (flags, data) = parse_options(&m.options);
    if data.len() >= 4096 {
        return Err(MountError::TooLong(m.kind.clone()));
    }
    std::fs::create_dir_all(target).map_err(|source| MountError::MountPoint {
        target: target.to_path_buf(),
        source,
    })?;
    let err = |errno| MountError::Mount {
        kind: m.kind.clone(),
        source_path: m.source.clone(),
        target: target.to_path_buf(),
        errno,
    };
    let fstype = if m.kind.is_empty() || flags.contains(MsFlags::MS_BIND) {
        None
    } else {
        Some(m.kind.as_str())
    };
    let data_opt = if data.is_empty() {
        None
    } else {
        Some(data.as_str())
    };
    tracing::debug!(kind = %m.kind, source = %m.source, target = %target.display(), ?flags, "mount");
    mount(Some(m.source.as_str()), target, fstype, flags, data_opt).map_err(err)?;
    // A bind mount ignores MS_RDONLY (and other per-mount flags) until it is remounted.
    if flags.contains(MsFlags::MS_BIND)
        && flags.intersects(
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        )
    {
        let remount = flags | MsFlags::MS_REMOUNT;
        if let Err(errno) = mount(
            None::<&str>,
            target,
            None::<&str>,
            remount - MsFlags::MS_REC,
            None::<&str>,
        ) {
            let _ = umount2(target, MntFlags::MNT_DETACH);
            return Err(err(errno));
        }
    }
    Ok(())
}

/// Unmounts everything stacked on `target`. Not mounted or missing is fine.
pub fn unmount_all(target: &Path) -> Result<(), MountError> {
    drop(detach_all(target)?);
    Ok(())
}

/// The mounts [`detach_all`] took off the tree, still pinned by an `O_PATH` descriptor each.
/// Dropping it releases them: the last reference to a filesystem does the final unmount work
/// (an overlay syncs its whole upper filesystem then, which takes milliseconds to seconds on a
/// busy disk), so callers drop it where nobody waits (see [`Detached::release_in_background`]).
#[derive(Debug, Default)]
pub struct Detached(Vec<std::os::fd::OwnedFd>);

impl Detached {
    /// How many mounts were detached.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pinning descriptors, topmost mount first (each refers to its mount's root).
    pub fn fds(&self) -> impl Iterator<Item = std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.0.iter().map(|fd| fd.as_fd())
    }

    /// Drops the pins on a short-lived thread (inline if no thread can be started).
    pub fn release_in_background(self) {
        if self.0.is_empty() {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("unmount".into())
            .stack_size(64 << 10)
            .spawn(move || drop(self));
        if let Err(e) = spawned {
            tracing::warn!(cause = %e, "no thread for the final unmount; doing it inline");
        }
    }
}

/// Lazily unmounts everything stacked on `target`, keeping each detached mount pinned (see
/// [`Detached`]). The path is free as soon as this returns: nothing is mounted on it any more
/// and the directory can be removed. Not mounted or missing is fine.
pub fn detach_all(target: &Path) -> Result<Detached, MountError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut pins = Vec::new();
    for _ in 0..64 {
        // Opening the path resolves to the topmost mount on it; the descriptor keeps that
        // mount alive after it is detached below.
        let pin = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(target)
            .ok();
        match umount2(target, MntFlags::MNT_DETACH) {
            Ok(()) => pins.extend(pin.map(std::os::fd::OwnedFd::from)),
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => return Ok(Detached(pins)),
            Err(errno) => {
                return Err(MountError::Unmount {
                    target: target.to_path_buf(),
                    errno,
                })
            }
        }
    }
    Ok(Detached(pins))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn overlay_options_go_to_data() {
        let (flags, data) = parse_options(&opts(&[
            "index=off",
            "workdir=/w",
            "upperdir=/u",
            "lowerdir=/a:/b",
        ]));
        assert!(flags.is_empty());
        assert_eq!(data, "index=off,workdir=/w,upperdir=/u,lowerdir=/a:/b");
    }

    #[test]
    fn bind_flags() {
        let (flags, data) = parse_options(&opts(&["rbind", "ro", "nosuid"]));
        assert_eq!(
            flags,
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID
        );
        assert_eq!(data, "");
        let (flags, _) = parse_options(&opts(&["ro", "rw"]));
        assert!(!flags.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn targets_stay_inside() {
        assert_eq!(
            target_path(Path::new("/r"), "").unwrap(),
            PathBuf::from("/r")
        );
        assert_eq!(
            target_path(Path::new("/r"), "/a/b").unwrap(),
            PathBuf::from("/r/a/b")
        );
        assert!(target_path(Path::new("/r"), "../x").is_err());
    }

    #[test]
    fn bind_mount_ro_and_unmount() {
        let base = std::env::temp_dir().join(format!("shim-mnt-{}", std::process::id()));
        let src = base.join("src");
        let dst = base.join("rootfs");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("f"), b"x").unwrap();
        let m = MountSpec {
            kind: "bind".into(),
            source: src.display().to_string(),
            target: String::new(),
            options: opts(&["rbind", "ro"]),
        };
        mount_all(&[m], &dst).unwrap();
        let seen = std::fs::read(dst.join("f"));
        let write = std::fs::write(dst.join("g"), b"y");
        unmount_all(&dst).unwrap();
        let after = dst.join("f").exists();
        std::fs::remove_dir_all(&base).unwrap();
        assert_eq!(seen.unwrap(), b"x");
        assert_eq!(write.unwrap_err().raw_os_error(), Some(libc::EROFS));
        assert!(!after);
    }
}
