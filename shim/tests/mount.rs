//! Unmounting a task's rootfs: lazily, with the final teardown deferred to a pin (root: real
//! mounts).

use std::os::fd::AsRawFd;
use std::path::Path;

use containerd_shim_rs::mount::{detach_all, unmount_all};
use nix::mount::{mount, MsFlags};

fn mounted(path: &Path) -> usize {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let p = path.to_str().expect("utf-8 path");
    info.lines()
        .filter(|l| l.split(' ').nth(4) == Some(p))
        .count()
}

fn tmpfs(target: &Path, file: &str) {
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=1m"),
    )
    .expect("mount tmpfs");
    std::fs::write(target.join(file), file).expect("write into tmpfs");
}

#[test]
fn detach_frees_the_path_at_once_and_keeps_the_filesystems_until_released() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("rootfs");
    std::fs::create_dir(&target).expect("mkdir");
    tmpfs(&target, "lower");
    tmpfs(&target, "upper");
    assert_eq!(mounted(&target), 2);

    let detached = detach_all(&target).expect("detach");
    assert_eq!(detached.len(), 2, "both stacked mounts are pinned");
    assert_eq!(
        mounted(&target),
        0,
        "nothing is mounted on the path any more"
    );
    assert!(!target.join("upper").exists() && !target.join("lower").exists());
    // Each detached filesystem is still there behind its pin, topmost first.
    let files: Vec<String> = detached
        .fds()
        .map(|fd| {
            std::fs::read_to_string(format!("/proc/self/fd/{}/", fd.as_raw_fd()) + "upper")
                .or_else(|_| {
                    std::fs::read_to_string(format!("/proc/self/fd/{}/lower", fd.as_raw_fd()))
                })
                .expect("file in the detached filesystem")
        })
        .collect();
    assert_eq!(files, ["upper", "lower"]);
    // The directory can go while the filesystems are still alive.
    std::fs::remove_dir(&target).expect("rmdir the freed mount point");
    drop(detached);

    // Nothing mounted, or no directory at all: fine, nothing pinned.
    assert!(detach_all(&target).expect("missing dir").is_empty());
    std::fs::create_dir(&target).expect("mkdir");
    assert!(detach_all(&target).expect("plain dir").is_empty());
    tmpfs(&target, "x");
    unmount_all(&target).expect("unmount");
    assert_eq!(mounted(&target), 0);
}
