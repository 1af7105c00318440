//! `tmpcopyup`: a tmpfs mount that starts with a copy of the directory it covers.
use std::path::{Path, PathBuf};

use nix::mount::{umount2, MntFlags, MsFlags};

use crate::error::{Context, Result};
use crate::rootfs::do_mount;

/// `tmpcopyup`: mount the tmpfs on a staging directory, copy what `dst` holds into it,
/// then move it over `dst` (runc's way; the staging directory is removed).
pub(crate) fn tmpfs_copyup(dst: &Path, flags: MsFlags, data: Option<&str>) -> Result<()> {
    let stage = PathBuf::from(format!("/tmp/runc-rs-copyup.{}", std::process::id()));
    std::fs::create_dir(&stage).ctx(|| format!("mkdir {}", stage.display()))?;
    let r = (|| {
        do_mount(Some(Path::new("tmpfs")), &stage, Some("tmpfs"), flags, data)?;
        copy_tree(dst, &stage)?;
        do_mount(Some(&stage), dst, None, MsFlags::MS_MOVE, None)
    })();
    if r.is_err() {
        let _ = umount2(&stage, MntFlags::MNT_DETACH);
    }
    let _ = std::fs::remove_dir(&stage);
    r
}

/// Copies directories, files and symlinks with their modes and owners.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(from).ctx(|| format!("stat {}", from.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
        .ctx(|| format!("chmod {}", to.display()))?;
    std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()))
        .ctx(|| format!("chown {}", to.display()))?;
    for e in std::fs::read_dir(from).ctx(|| format!("read {}", from.display()))? {
        let e = e.ctx(|| format!("read {}", from.display()))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let m = std::fs::symlink_metadata(&src).ctx(|| format!("stat {}", src.display()))?;
        let ft = m.file_type();
        if ft.is_symlink() {
            let t = std::fs::read_link(&src).ctx(|| format!("readlink {}", src.display()))?;
            std::os::unix::fs::symlink(&t, &dst).ctx(|| format!("symlink {}", dst.display()))?;
        } else if ft.is_dir() {
            std::fs::create_dir(&dst).ctx(|| format!("mkdir {}", dst.display()))?;
            copy_tree(&src, &dst)?;
            continue;
        } else if ft.is_file() {
            std::fs::copy(&src, &dst).ctx(|| format!("copy {}", src.display()))?;
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(m.mode() & 0o7777))
                .ctx(|| format!("chmod {}", dst.display()))?;
        } else {
            // Devices, fifos and sockets are skipped.
            continue;
        }
        std::os::unix::fs::lchown(&dst, Some(m.uid()), Some(m.gid()))
            .ctx(|| format!("chown {}", dst.display()))?;
    }
    Ok(())
}
