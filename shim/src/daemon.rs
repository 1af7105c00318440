//! `start`: bind the shim socket, detach a daemon (double fork + setsid) that becomes the
//! container's subreaper, and report the address once the daemon is up.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::wait::waitpid;
use nix::unistd::{dup2, fork, setsid, ForkResult};
use sha2::{Digest, Sha256};

use crate::Config;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{context}: {errno}")]
    Sys {
        context: &'static str,
        errno: nix::errno::Errno,
    },
    #[error("shim daemon exited before it was ready; see {0}")]
    NotReady(PathBuf),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let context = context.into();
    move |source| DaemonError::Io { context, source }
}

/// The directory of shim sockets: `--socket-dir`, else `<parent of --runtime-root>/s`, else
/// `<state>/s` where the bundle is `<state>/io.containerd.runtime.v2.task/<ns>/<id>`.
pub fn socket_dir(cfg: &Config) -> PathBuf {
    if let Some(dir) = &cfg.socket_dir {
        return dir.clone();
    }
    if let Some(parent) = cfg.runtime_root.as_deref().and_then(Path::parent) {
        return parent.join("s");
    }
    match cfg.bundle.ancestors().nth(3) {
        Some(state) if !state.as_os_str().is_empty() => state.join("s"),
        _ => PathBuf::from("/run/containerd-rs/s"),
    }
}

/// `<socket dir>/<first 16 hex digits of sha256("<ns>/<id>")>`.
pub fn socket_path(cfg: &Config) -> PathBuf {
    let digest = Sha256::digest(format!("{}/{}", cfg.namespace, cfg.id).as_bytes());
    socket_dir(cfg).join(&hex::encode(digest)[..16])
}

/// Binds the socket, forks the daemon and returns the address (`unix://<path>`) once the
/// daemon is serving. When a shim already answers on the socket, returns its address.
///
/// Must be called while the process is single-threaded (before any tokio runtime exists).
pub fn start(cfg: &Config) -> Result<String, DaemonError> {
    let path = socket_path(cfg);
    let address = format!("unix://{}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
    }
    if UnixStream::connect(&path).is_ok() {
        tracing::info!(%address, "a shim already serves this task");
        return Ok(address);
    }
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(io_err(format!("bind {}", path.display())))?;
    let (ready_rx, ready_tx) = nix::unistd::pipe().map_err(|errno| DaemonError::Sys {
        context: "pipe",
        errno,
    })?;

    // SAFETY: the `start` process is single-threaded here (no runtime has been built), so the
    // child may run arbitrary code after fork.
    match unsafe { fork() }.map_err(|errno| DaemonError::Sys {
        context: "fork",
        errno,
    })? {
        ForkResult::Parent { child } => {
            drop(ready_tx);
            drop(listener);
            let _ = waitpid(child, None);
            let mut byte = [0u8; 1];
            let mut rx = std::fs::File::from(ready_rx);
            match rx.read(&mut byte) {
                Ok(1) => Ok(address),
                _ => Err(DaemonError::NotReady(cfg.bundle.join("shim.log"))),
            }
        }
        ForkResult::Child => {
            drop(ready_rx);
            let _ = setsid();
            // SAFETY: still single-threaded (we are the forked copy of a single-threaded process).
            match unsafe { fork() } {
                Ok(ForkResult::Parent { .. }) => std::process::exit(0),
                Ok(ForkResult::Child) => {
                    std::process::exit(daemon_main(cfg, &path, listener, ready_tx))
                }
                Err(_) => std::process::exit(1),
            }
        }
    }
}

/// The daemon: stdio detached from the caller, logs in `<bundle>/shim.log`, subreaper, state
/// files, then the gRPC server on a current-thread runtime built after the fork. `socket` is
/// the path `start` bound (not hashed again here: every function the daemon runs stays
/// resident in every shim).
fn daemon_main(cfg: &Config, socket: &Path, listener: UnixListener, ready: OwnedFd) -> i32 {
    if let Err(err) = detach_stdio(&cfg.bundle.join("shim.log")) {
        tracing::error!(cause = %err, "detach stdio");
        return 1;
    }
    if let Err(err) = set_subreaper() {
        tracing::error!(cause = %err, "set subreaper");
        return 1;
    }
    let address = format!("unix://{}", socket.display());
    let files = [
        ("address", address.clone()),
        ("shim.pid", std::process::id().to_string()),
    ];
    for (name, content) in files {
        if let Err(err) = std::fs::write(cfg.bundle.join(name), content) {
            tracing::error!(cause = %err, file = name, "write state file");
            return 1;
        }
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            tracing::error!(cause = %err, "build runtime");
            return 1;
        }
    };
    tracing::info!(%address, pid = std::process::id(), namespace = %cfg.namespace, id = %cfg.id, "shim serving");
    let mut ready = std::fs::File::from(ready);
    let _ = ready.write_all(b"1");
    drop(ready);
    let result = rt.block_on(crate::serve(cfg.clone(), listener));
    let _ = std::fs::remove_file(socket);
    match result {
        Ok(()) => {
            tracing::info!("shim exiting");
            0
        }
        Err(err) => {
            tracing::error!(cause = %err, "shim failed");
            1
        }
    }
}

/// Points stdin/stdout at /dev/null (so the caller's pipes see EOF) and stderr at the log.
fn detach_stdio(log: &Path) -> std::io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    for (fd, target) in [(&null, 0), (&null, 1), (&log, 2)] {
        dup2(fd.as_raw_fd(), target)?;
    }
    Ok(())
}

fn set_subreaper() -> std::io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer argument and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config {
            namespace: "moby".into(),
            id: "abc".into(),
            address: "/run/containerd-rs/containerd.sock".into(),
            bundle: PathBuf::from("/run/containerd-rs/io.containerd.runtime.v2.task/moby/abc"),
            runtime_root: None,
            socket_dir: None,
            debug: false,
        }
    }

    #[test]
    fn socket_path_is_hash_of_namespace_and_id() {
        let expected = &hex::encode(Sha256::digest(b"moby/abc"))[..16];
        assert_eq!(
            socket_path(&cfg()),
            PathBuf::from(format!("/run/containerd-rs/s/{expected}"))
        );
        let c = Config {
            runtime_root: Some("/x/state/runc".into()),
            ..cfg()
        };
        assert_eq!(socket_dir(&c), PathBuf::from("/x/state/s"));
        let c = Config {
            socket_dir: Some("/y".into()),
            ..c
        };
        assert_eq!(socket_dir(&c), PathBuf::from("/y"));
    }
}
