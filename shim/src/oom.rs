//! OOM notifications from the v1 memory cgroup: an eventfd registered for `memory.oom_control`
//! through `cgroup.event_control`. Each event while the cgroup exists is one TaskOOM.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use tokio::io::unix::AsyncFd;

#[derive(Debug, thiserror::Error)]
pub enum OomError {
    #[error("process {0} has no v1 memory cgroup")]
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

/// The v1 memory cgroup directory of `pid`.
pub fn memory_cgroup(pid: u32) -> Result<PathBuf, OomError> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(io_err(format!("read /proc/{pid}/cgroup")))?;
    let rel = text
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
            ctrls
                .split(',')
                .any(|c| c == "memory")
                .then(|| path.to_string())
        })
        .next()
        .ok_or(OomError::NoMemoryCgroup(pid))?;
    let dir = Path::new("/sys/fs/cgroup/memory").join(rel.trim_start_matches('/'));
    if !dir.join("memory.oom_control").exists() {
        return Err(OomError::NoMemoryCgroup(pid));
    }
    Ok(dir)
}

/// A registered OOM eventfd for one memory cgroup.
pub struct OomWatch {
    cgroup: PathBuf,
    efd: AsyncFd<OwnedFd>,
}

impl OomWatch {
    pub fn new(cgroup: PathBuf) -> Result<Self, OomError> {
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
        Ok(Self { cgroup, efd })
    }

    /// Waits for the next OOM event; `None` once the cgroup is gone (its removal also fires).
    pub async fn next(&self) -> Option<()> {
        loop {
            let mut guard = self.efd.readable().await.ok()?;
            let mut buf = [0u8; 8];
            match guard.try_io(|fd| {
                nix::unistd::read(fd.as_raw_fd(), &mut buf).map_err(std::io::Error::from)
            }) {
                Ok(Ok(8)) => {
                    if !self.cgroup.join("memory.oom_control").exists() {
                        return None;
                    }
                    return Some(());
                }
                Ok(_) => return None,
                Err(_would_block) => continue,
            }
        }
    }
}
