//! OOM notifications for a container's memory cgroup, one TaskOOM per OOM kill:
//! - cgroup v1: an eventfd registered for `memory.oom_control` through `cgroup.event_control`;
//!   each event while the cgroup exists is one OOM.
//! - cgroup v2: inotify on `memory.events` (kernfs notifies on every counter change); an OOM is
//!   a rise of its `oom_kill` counter, as containerd's v2 watcher counts them. The watch ends
//!   when `cgroup.events` says `populated 0` or the files are gone (cgroup removed).
//!
//! On a hybrid host the memory controller is on v1, so v1 is used whenever the process has a v1
//! memory cgroup; v2 only when memory is a cgroup2 controller.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use tokio::io::unix::AsyncFd;

#[derive(Debug, thiserror::Error)]
pub enum OomError {
    #[error("process {0} has no memory cgroup")]
    NoMemoryCgroup(u32),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> OomError {
    let context = context.into();
    move |source| OomError::Io { context, source }
}

/// Where a process's memory controller lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryCgroup {
    V1(PathBuf),
    V2(PathBuf),
}

/// The memory cgroup directory of `pid`: its v1 memory cgroup under `/sys/fs/cgroup/memory`,
/// else its cgroup2 directory if memory is enabled there.
pub fn memory_cgroup(pid: u32) -> Result<MemoryCgroup, OomError> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(io_err(format!("read /proc/{pid}/cgroup")))?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(io_err("read /proc/self/mountinfo"))?;
    find_memory_cgroup(&text, &mountinfo).ok_or(OomError::NoMemoryCgroup(pid))
}

/// [`memory_cgroup`] over the texts of `/proc/<pid>/cgroup` and `/proc/self/mountinfo`;
/// checks that the chosen directory has the controller's files.
pub fn find_memory_cgroup(proc_cgroup: &str, mountinfo: &str) -> Option<MemoryCgroup> {
    let mut v2_rel = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if id == "0" && ctrls.is_empty() {
            v2_rel = Some(path);
        } else if ctrls.split(',').any(|c| c == "memory") {
            let root = mount_point(mountinfo, |fstype, super_opts| {
                fstype == "cgroup" && super_opts.split(',').any(|o| o == "memory")
            })?;
            let dir = root.join(path.trim_start_matches('/'));
            return dir
                .join("memory.oom_control")
                .exists()
                .then_some(MemoryCgroup::V1(dir));
        }
    }
    let root = mount_point(mountinfo, |fstype, _| fstype == "cgroup2")?;
    let dir = root.join(v2_rel?.trim_start_matches('/'));
    dir.join("memory.events")
        .exists()
        .then_some(MemoryCgroup::V2(dir))
}

/// The first mount point in `mountinfo` whose filesystem type and super options match.
fn mount_point(mountinfo: &str, want: impl Fn(&str, &str) -> bool) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        let mut fs = fs.split(' ');
        let (fstype, _source, super_opts) = (fs.next()?, fs.next()?, fs.next().unwrap_or(""));
        let point = mount.split(' ').nth(4)?;
        want(fstype, super_opts).then(|| PathBuf::from(unescape_octal(point)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let code = (b[i] == b'\\')
            .then(|| s.get(i + 1..i + 4))
            .flatten()
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(v) => {
                out.push(v);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A watch on one memory cgroup.
pub enum OomWatch {
    V1 {
        cgroup: PathBuf,
        efd: AsyncFd<OwnedFd>,
    },
    V2 {
        cgroup: PathBuf,
        inotify: AsyncFd<OwnedFd>,
        /// The `oom_kill` count already reported.
        seen: std::sync::atomic::AtomicU64,
    },
}

impl OomWatch {
    /// The watch for `pid`'s memory cgroup (v1 or v2).
    pub fn for_process(pid: u32) -> Result<Self, OomError> {
        match memory_cgroup(pid)? {
            MemoryCgroup::V1(dir) => Self::v1(dir),
            MemoryCgroup::V2(dir) => Self::v2(dir),
        }
    }

    /// An eventfd on `<cgroup>/memory.oom_control` (v1).
    pub fn v1(cgroup: PathBuf) -> Result<Self, OomError> {
        // SAFETY: eventfd takes integers and returns a new fd or -1.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(io_err("eventfd")(std::io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh fd owned by nobody else.
        let efd = unsafe { OwnedFd::from_raw_fd(raw) };
        let control = std::fs::File::open(cgroup.join("memory.oom_control"))
            .map_err(io_err("open memory.oom_control"))?;
        let mut events = std::fs::OpenOptions::new()
            .write(true)
            .open(cgroup.join("cgroup.event_control"))
            .map_err(io_err("open cgroup.event_control"))?;
        events
            .write_all(format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()).as_bytes())
            .map_err(io_err("register oom eventfd"))?;
        // SAFETY: the OwnedFd moves into the AsyncFd and stays open as long as the registration.
        let efd = unsafe { AsyncFd::register(efd) }
            .map_err(std::io::Error::from)
            .map_err(io_err("register eventfd with tokio"))?;
        Ok(Self::V1 { cgroup, efd })
    }

    /// inotify on `<cgroup>/memory.events` and `<cgroup>/cgroup.events` (v2). OOM kills counted
    /// before the watch starts are not reported.
    pub fn v2(cgroup: PathBuf) -> Result<Self, OomError> {
        // SAFETY: inotify_init1 takes flags and returns a new fd or -1.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io_err("inotify_init1")(std::io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh fd owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        for (file, required) in [("memory.events", true), ("cgroup.events", false)] {
            let path = cgroup.join(file);
            let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
                return Err(io_err(format!("watch {}", path.display()))(
                    std::io::ErrorKind::InvalidInput.into(),
                ));
            };
            // SAFETY: `fd` is our inotify fd and `c_path` a NUL-terminated string that lives
            // across the call.
            let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c_path.as_ptr(), IN_FLAGS) };
            if wd < 0 && required {
                return Err(io_err(format!("watch {}", path.display()))(
                    std::io::Error::last_os_error(),
                ));
            }
        }
        let seen = read_oom_kills(&cgroup.join("memory.events")).unwrap_or(0);
        // SAFETY: the OwnedFd moves into the AsyncFd and stays open as long as the registration.
        let inotify = unsafe { AsyncFd::register(fd) }
            .map_err(std::io::Error::from)
            .map_err(io_err("register inotify with tokio"))?;
        Ok(Self::V2 {
            cgroup,
            inotify,
            seen: seen.into(),
        })
    }

    /// Waits for the next OOM kill; `None` once the cgroup is empty or gone.
    pub async fn next(&self) -> Option<()> {
        match self {
            Self::V1 { cgroup, efd } => loop {
                let mut guard = efd.readable().await.ok()?;
                let mut buf = [0u8; 8];
                match guard.try_io(|fd| {
                    nix::unistd::read(fd.as_raw_fd(), &mut buf).map_err(std::io::Error::from)
                }) {
                    Ok(Ok(8)) => {
                        // The cgroup's removal fires the eventfd too.
                        if !cgroup.join("memory.oom_control").exists() {
                            return None;
                        }
                        return Some(());
                    }
                    Ok(_) => return None,
                    Err(_would_block) => continue,
                }
            },
            Self::V2 {
                cgroup,
                inotify,
                seen,
            } => loop {
                use std::sync::atomic::Ordering;
                let events = cgroup.join("memory.events");
                // Read the counter before waiting too: a change between two waits is not lost.
                let Some(kills) = read_oom_kills(&events) else {
                    if !events.exists() {
                        return None;
                    }
                    // A partial write (only in fakes: kernfs replaces the content at once).
                    wait_readable(inotify).await?;
                    continue;
                };
                if kills > seen.swap(kills, Ordering::Relaxed) {
                    return Some(());
                }
                if !populated(&cgroup.join("cgroup.events")) {
                    return None;
                }
                wait_readable(inotify).await?;
            },
        }
    }
}

const IN_FLAGS: u32 = libc::IN_MODIFY | libc::IN_DELETE_SELF | libc::IN_IGNORED;

/// Waits until the inotify fd has events and drains them (the files are re-read anyway).
async fn wait_readable(inotify: &AsyncFd<OwnedFd>) -> Option<()> {
    loop {
        let mut guard = inotify.readable().await.ok()?;
        let mut buf = [0u8; 512];
        match guard
            .try_io(|fd| nix::unistd::read(fd.as_raw_fd(), &mut buf).map_err(std::io::Error::from))
        {
            Ok(Ok(n)) if n > 0 => {
                // Drain whatever else is queued.
                while matches!(nix::unistd::read(inotify.get_ref().as_raw_fd(), &mut buf), Ok(n) if n > 0)
                {
                }
                return Some(());
            }
            Ok(_) => return None,
            Err(_would_block) => continue,
        }
    }
}

/// The `oom_kill` counter of a `memory.events` file; `None` if it cannot be read or parsed.
pub fn read_oom_kills(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == "oom_kill").then(|| v.trim().parse().ok()).flatten()
    })
}

/// Whether `cgroup.events` says the cgroup still has processes (true when it cannot tell).
fn populated(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return path
            .parent()
            .is_some_and(|d| d.join("memory.events").exists());
    };
    !text.lines().any(|l| l.trim() == "populated 0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const EVENTS: &str = "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n";

    fn mountinfo(v1_memory: &Path, v2: &Path) -> String {
        format!(
            "24 1 0:22 / /proc rw,nosuid - proc proc rw\n\
             30 25 0:26 / {} rw,nosuid - cgroup cgroup rw,memory\n\
             31 25 0:27 / {} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
            v1_memory.display(),
            v2.display()
        )
    }

    #[test]
    fn finds_v1_memory_first_then_cgroup2() {
        let root = tempfile::tempdir().expect("tempdir");
        let (v1, v2) = (root.path().join("memory"), root.path().join("unified"));
        std::fs::create_dir_all(v1.join("ctr/a")).expect("mkdir");
        std::fs::create_dir_all(v2.join("ctr/a")).expect("mkdir");
        std::fs::write(v2.join("ctr/a/memory.events"), EVENTS).expect("write");
        let info = mountinfo(&v1, &v2);
        let hybrid = "12:memory:/ctr/a\n3:cpu,cpuacct:/ctr/a\n0::/ctr/a\n";
        // A v1 memory cgroup without its files is not used; nor is cgroup2 then.
        assert_eq!(find_memory_cgroup(hybrid, &info), None);
        std::fs::write(v1.join("ctr/a/memory.oom_control"), "").expect("write");
        assert_eq!(
            find_memory_cgroup(hybrid, &info),
            Some(MemoryCgroup::V1(v1.join("ctr/a")))
        );
        assert_eq!(
            find_memory_cgroup("0::/ctr/a\n", &info),
            Some(MemoryCgroup::V2(v2.join("ctr/a")))
        );
        assert_eq!(find_memory_cgroup("0::/ctr/missing\n", &info), None);
        assert_eq!(find_memory_cgroup("garbage\n", &info), None);
        assert_eq!(unescape_octal(r"/a\040b\134c"), r"/a b\c");
    }

    async fn next(w: &OomWatch) -> Option<()> {
        tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .expect("the watch answers within 10 s")
    }

    /// No event within a short while (the watch would report an OOM at once otherwise).
    async fn quiet(w: &OomWatch) {
        let r = tokio::time::timeout(Duration::from_millis(300), w.next()).await;
        assert!(r.is_err(), "unexpected oom event: {r:?}");
    }

    #[tokio::test]
    async fn v2_reports_each_rise_of_oom_kill_until_the_cgroup_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cg = dir.path().to_path_buf();
        let events = cg.join("memory.events");
        std::fs::write(&events, EVENTS.replace("oom_kill 0", "oom_kill 2")).expect("write");
        std::fs::write(cg.join("cgroup.events"), "populated 1\nfrozen 0\n").expect("write");
        let w = OomWatch::v2(cg.clone()).expect("watch");
        // Kills from before the watch are not reported; nor other counters' changes.
        quiet(&w).await;
        std::fs::write(
            &events,
            EVENTS
                .replace("max 0", "max 7")
                .replace("oom_kill 0", "oom_kill 2"),
        )
        .expect("write");
        quiet(&w).await;
        std::fs::write(
            &events,
            EVENTS
                .replace("oom 0", "oom 1")
                .replace("oom_kill 0", "oom_kill 3"),
        )
        .expect("write");
        assert_eq!(next(&w).await, Some(()));
        quiet(&w).await;
        std::fs::write(&events, EVENTS.replace("oom_kill 0", "oom_kill 4")).expect("write");
        assert_eq!(next(&w).await, Some(()));
        std::fs::write(cg.join("cgroup.events"), "populated 0\nfrozen 0\n").expect("write");
        assert_eq!(next(&w).await, None, "ends once the cgroup is empty");
    }

    #[tokio::test]
    async fn v2_ends_when_the_cgroup_is_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cg = dir.path().join("c");
        std::fs::create_dir(&cg).expect("mkdir");
        std::fs::write(cg.join("memory.events"), EVENTS).expect("write");
        let w = OomWatch::v2(cg.clone()).expect("watch without cgroup.events");
        quiet(&w).await;
        std::fs::remove_dir_all(&cg).expect("rm");
        assert_eq!(next(&w).await, None);
        assert!(OomWatch::v2(cg).is_err(), "no memory.events: no watch");
    }
}
