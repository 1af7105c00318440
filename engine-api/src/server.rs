//! Listeners (unix and tcp) served with hyper HTTP/1.1 + upgrades, and the child containerd-rs.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, UnixListener};
use tower::ServiceExt;

/// Server failures.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "containerd-rs binary not found (flag --containerd-binary, beside engine-api, or PATH)"
    )]
    NoContainerd,
    #[error("start {bin}: {source}")]
    Spawn {
        bin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("containerd-rs did not create {0} within 30s")]
    ContainerdTimeout(PathBuf),
    #[error("containerd-rs exited during startup: {0}")]
    ContainerdExited(std::process::ExitStatus),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A bound listener.
pub enum Listener {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener),
}

/// Binds `unix://path` or `tcp://host:port`.
pub async fn bind(addr: &str) -> Result<Listener, ServerError> {
    let lerr = |source| ServerError::Listen {
        addr: addr.to_string(),
        source,
    };
    if let Some(path) = addr.strip_prefix("unix://") {
        let path = PathBuf::from(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(lerr)?;
        }
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path).map_err(lerr)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)).map_err(lerr)?;
        Ok(Listener::Unix(l, path))
    } else {
        let hostport = addr.strip_prefix("tcp://").unwrap_or(addr);
        Ok(Listener::Tcp(
            TcpListener::bind(hostport).await.map_err(lerr)?,
        ))
    }
}

async fn serve_conn<IO>(io: IO, app: Router)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let app = app.clone();
        async move { app.oneshot(req.map(axum::body::Body::new)).await }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended");
    }
}

/// Accepts connections until the task is dropped.
pub async fn serve(listener: Listener, app: Router) {
    loop {
        match &listener {
            Listener::Unix(l, _) => match l.accept().await {
                Ok((s, _)) => {
                    tokio::spawn(serve_conn(s, app.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Listener::Tcp(l) => match l.accept().await {
                Ok((s, _)) => {
                    let _ = s.set_nodelay(true);
                    tokio::spawn(serve_conn(s, app.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// The containerd-rs binary: flag, beside our executable, or PATH.
pub fn find_containerd(flag: Option<&Path>) -> Result<PathBuf, ServerError> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("containerd-rs")))
        .filter(|p| p.is_file())
    {
        return Ok(p);
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("containerd-rs"))
                .find(|p| p.is_file())
        })
        .ok_or(ServerError::NoContainerd)
}

/// A containerd-rs started by engine-api; SIGTERMed on [`ChildContainerd::stop`].
pub struct ChildContainerd {
    child: tokio::process::Child,
    pub socket: PathBuf,
}

impl ChildContainerd {
    /// Starts containerd-rs with the ARCHITECTURE.md flags and waits for its socket.
    pub async fn start(
        bin: &Path,
        data_root: &Path,
        exec_root: &Path,
        debug: bool,
    ) -> Result<Self, ServerError> {
        let dir = exec_root.join("containerd");
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("containerd.sock");
        let _ = std::fs::remove_file(&socket);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("containerd.log"))?;
        let mut cmd = tokio::process::Command::new(bin);
        cmd.arg("--address")
            .arg(&socket)
            .arg("--root")
            .arg(data_root.join("containerd"))
            .arg("--state")
            .arg(dir.join("state"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if debug {
            cmd.arg("--debug");
        }
        let mut child = cmd.spawn().map_err(|source| ServerError::Spawn {
            bin: bin.display().to_string(),
            source,
        })?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                break;
            }
            if let Some(st) = child.try_wait()? {
                return Err(ServerError::ContainerdExited(st));
            }
            if Instant::now() > deadline {
                let _ = child.start_kill();
                return Err(ServerError::ContainerdTimeout(socket));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::info!(pid = child.id(), socket = %socket.display(), "started containerd-rs");
        Ok(ChildContainerd { child, socket })
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
                .await
                .is_err()
            {
                let _ = self.child.kill().await;
            }
        }
    }
}
