//! create, start, run, kill, delete, pause, resume.
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::create::{self, CreateOpts};
use crate::error::{Context, Error, Result};
use crate::state::{self, State, Status};
use crate::{hooks, utils};

pub fn create(root: &Path, o: &CreateOpts) -> Result<()> {
    create::create(root, o, true).map(|_| ())
}

/// Releases the init blocked on the exec fifo.
pub fn start(root: &Path, id: &str) -> Result<()> {
    let st = State::load(root, id)?;
    match st.status(root) {
        Status::Created => {}
        Status::Stopped => {
            return Err(Error::State(
                "cannot start a container that has stopped".into(),
            ))
        }
        Status::Running => {
            return Err(Error::State(
                "cannot start an already running container".into(),
            ))
        }
        Status::Paused => {
            return Err(Error::State(
                "cannot start a container in the paused state".into(),
            ))
        }
    }
    let fifo = state::container_dir(root, id).join("exec.fifo");
    release_fifo(&fifo, &st)?;
    let _ = std::fs::remove_file(&fifo);
    if let Some(h) = st
        .config
        .hooks()
        .as_ref()
        .and_then(|h| h.poststart().as_ref())
    {
        let json = crate::create::hook_state(&st, "running");
        if let Err(e) = hooks::run(Some(h), &json) {
            tracing::warn!(error = %e, "poststart hook failed");
            return Err(e);
        }
    }
    Ok(())
}

fn release_fifo(fifo: &Path, st: &State) -> Result<()> {
    use std::os::fd::AsFd;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(fifo)
        .map_err(|e| Error::io(format!("open exec fifo {}", fifo.display()), e))?;
    let mut buf = [0u8; 1];
    loop {
        let mut fds = [nix::poll::PollFd::new(
            f.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16)) {
            Ok(0) => {
                if !st.init_alive() {
                    return Err(Error::State(
                        "cannot start a container that has stopped".into(),
                    ));
                }
                continue;
            }
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(Error::sys("poll exec fifo", e)),
        }
        match nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&f), &mut buf) {
            Ok(1) if buf[0] == b'0' => return Ok(()),
            Ok(_) => {
                return Err(Error::State(
                    "cannot start a container that has stopped".into(),
                ))
            }
            Err(nix::Error::EAGAIN) => continue,
            Err(e) => return Err(Error::sys("read exec fifo", e)),
        }
    }
}

use std::os::unix::fs::OpenOptionsExt;

/// `run`: create + start; without `detach`, wait for the init and return its exit code.
pub fn run(root: &Path, o: &CreateOpts, detach: bool) -> Result<i32> {
    if !detach {
        super::run::block_forwarded()?;
    }
    // In the foreground with a terminal and no console socket, runc-rs makes the pty.
    let terminal = !detach
        && o.console_socket.is_none()
        && create::load_spec(&std::fs::canonicalize(&o.bundle).unwrap_or(o.bundle.clone()))
            .ok()
            .and_then(|s| s.process().as_ref().and_then(|p| p.terminal()))
            == Some(true);
    let (ours, theirs) = if terminal {
        let (a, b) = std::os::unix::net::UnixStream::pair().ctx(|| "socketpair".into())?;
        (Some(a), Some(b))
    } else {
        (None, None)
    };
    let pid = create::create_with_console(root, o, false, theirs)?;
    let master = ours.as_ref().map(super::run::recv_master).transpose()?;
    let st = State::load(root, &o.id)?;
    if let Some(h) = st
        .config
        .hooks()
        .as_ref()
        .and_then(|h| h.poststart().as_ref())
    {
        hooks::run(Some(h), &crate::create::hook_state(&st, "running"))?;
    }
    if detach {
        return Ok(0);
    }
    // The init is our child: wait for it, forwarding signals (and the terminal).
    let exited = super::run::supervise(pid, master)?;
    destroy(root, &st)?;
    Ok(exited.finish())
}

pub fn kill(root: &Path, id: &str, signal: &str, all: bool) -> Result<()> {
    let sig = utils::parse_signal(signal)?;
    let st = State::load(root, id)?;
    if st.status(root) == Status::Stopped {
        return Err(Error::State("container not running".into()));
    }
    if all {
        signal_all(&st, sig);
        return Ok(());
    }
    nix::sys::signal::kill(Pid::from_raw(st.pid), sig)
        .map_err(|e| Error::sys(format!("kill {} with {sig}", st.pid), e))
}

/// Signals every process of the container's cgroup (frozen around it, as runc does).
fn signal_all(st: &State, sig: Signal) {
    let frozen = st.cgroup.freeze(true).is_ok();
    for p in st.cgroup.pids() {
        let _ = nix::sys::signal::kill(Pid::from_raw(p), sig);
    }
    if !st.cgroup.pids().contains(&st.pid) && st.init_alive() {
        let _ = nix::sys::signal::kill(Pid::from_raw(st.pid), sig);
    }
    if frozen {
        let _ = st.cgroup.freeze(false);
    }
}

pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let st = match State::load(root, id) {
        Ok(s) => s,
        Err(Error::NotExist(_)) => {
            // An aborted create may leave a directory without state.json.
            let dir = state::container_dir(root, id);
            let existed = dir.exists();
            let _ = std::fs::remove_dir_all(&dir);
            if force || existed {
                return Ok(());
            }
            return Err(Error::NotExist(id.into()));
        }
        Err(e) => return Err(e),
    };
    match st.status(root) {
        Status::Stopped | Status::Created => {}
        s if force => {
            tracing::debug!(status = s.as_str(), "force delete");
        }
        s => {
            return Err(Error::State(format!(
                "cannot delete container {id} that is not stopped: {}",
                s.as_str()
            )))
        }
    }
    destroy(root, &st)
}

/// Kills whatever is left, removes the cgroup and the state dir, runs poststop hooks.
fn destroy(root: &Path, st: &State) -> Result<()> {
    if st.init_alive() || !st.cgroup.pids().is_empty() {
        signal_all(st, Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(10);
        while (st.init_alive() || !st.cgroup.pids().is_empty()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    st.cgroup.destroy()?;
    let _ = std::fs::remove_dir_all(state::container_dir(root, &st.id));
    if let Some(h) = st
        .config
        .hooks()
        .as_ref()
        .and_then(|h| h.poststop().as_ref())
    {
        if let Err(e) = hooks::run(Some(h), &crate::create::hook_state(st, "stopped")) {
            tracing::warn!(error = %e, "poststop hook failed");
        }
    }
    Ok(())
}

pub fn pause(root: &Path, id: &str) -> Result<()> {
    let st = State::load(root, id)?;
    match st.status(root) {
        Status::Running | Status::Created => st.cgroup.freeze(true),
        s => Err(Error::State(format!(
            "container not running or created: {}",
            s.as_str()
        ))),
    }
}

pub fn resume(root: &Path, id: &str) -> Result<()> {
    let st = State::load(root, id)?;
    match st.status(root) {
        Status::Paused => st.cgroup.freeze(false),
        _ => Err(Error::State("container not paused".into())),
    }
}
