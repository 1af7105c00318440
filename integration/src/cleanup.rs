//! Tear-down by pid and by path: kill, unmount, rmdir cgroups.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::procfs;

/// Sends `sig` to `pid`, ignoring "no such process".
pub fn signal(pid: i32, sig: Signal) {
    if pid > 1 {
        let _ = kill(Pid::from_raw(pid), sig);
    }
}

/// Waits until none of `pids` is alive (zombies count as gone); true if they all went.
pub fn wait_gone(pids: &[i32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if pids.iter().all(|&p| !procfs::alive(p)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Files named `name` anywhere under `dir` (not following symlinks, not crossing into /proc).
pub fn find_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                // Do not descend into container rootfs mounts.
                if e.file_name() != "rootfs" {
                    stack.push(e.path());
                }
            } else if e.file_name() == name {
                out.push(e.path());
            }
        }
    }
    out
}

/// Reads an integer pid from a file.
pub fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Every mount point at or under `root` in our mount namespace.
pub fn mounts_under(root: &Path) -> Vec<String> {
    let prefix = root.to_string_lossy().into_owned();
    procfs::mountinfo("self")
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .collect()
}

/// Detaches every mount under `root`, deepest first; true when none is left.
pub fn unmount_all(root: &Path) -> bool {
    for _ in 0..5 {
        let mut mounts = mounts_under(root);
        if mounts.is_empty() {
            return true;
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.matches('/').count()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
    mounts_under(root).is_empty()
}

/// The cgroup dirs named `name` in each mounted v1/v2 hierarchy: at its top, and under the
/// cgroup this process is in there (where a runtime puts a relative cgroups path).
pub fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return out;
    };
    for e in entries.flatten() {
        let hierarchy = e.path();
        let mut candidates = vec![hierarchy.join(name)];
        let ctrl = e.file_name().to_string_lossy().into_owned();
        for line in own.lines() {
            let mut f = line.splitn(3, ':');
            let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or("/"));
            let matches = ctrls
                .split(',')
                .any(|c| c == ctrl || c == format!("name={ctrl}"))
                || (ctrls.is_empty() && ctrl == "unified");
            if matches && path != "/" {
                candidates.push(hierarchy.join(path.trim_start_matches('/')).join(name));
            }
        }
        out.extend(candidates.into_iter().filter(|d| d.is_dir()));
    }
    out
}

/// Pids in every cgroup at or under `dir`.
pub fn cgroup_pids(dir: &Path) -> Vec<i32> {
    let mut out = Vec::new();
    for d in subdirs_deepest_first(dir) {
        if let Ok(text) = std::fs::read_to_string(d.join("cgroup.procs")) {
            out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// `dir` and all its subdirectories, children before parents.
pub fn subdirs_deepest_first(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < all.len() {
        if let Ok(entries) = std::fs::read_dir(&all[i]) {
            for e in entries.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    all.push(e.path());
                }
            }
        }
        i += 1;
    }
    all.reverse();
    all
}

/// Removes the cgroup tree `name` in every hierarchy; retries while processes exit.
pub fn remove_cgroups(name: &str, timeout: Duration) -> Vec<PathBuf> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut left = Vec::new();
        for top in cgroup_dirs(name) {
            for d in subdirs_deepest_first(&top) {
                if std::fs::remove_dir(&d).is_err() && d.exists() {
                    left.push(d);
                }
            }
        }
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
