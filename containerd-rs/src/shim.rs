//! Shims: starting `containerd-shim-rs`, connecting to its socket, and reconnecting after a
//! restart. One [`ShimClient`] per task.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use proto::shim::task_client::TaskClient;
use tonic::transport::{Channel, Endpoint, Uri};

pub type ShimClient = TaskClient<Channel>;

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("start shim {binary}: {source}")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    #[error("shim start failed ({status}): {stderr}")]
    StartFailed { status: String, stderr: String },
    #[error("shim printed no address")]
    NoAddress,
    #[error("connect to shim {address}: {message}")]
    Connect { address: String, message: String },
    #[error("shim delete failed: {0}")]
    Delete(String),
}

impl From<ShimError> for errdefs::Error {
    fn from(e: ShimError) -> Self {
        tracing::error!(error = %e, "shim");
        errdefs::Error::internal(e.to_string())
    }
}

/// The shim binary: the flag, beside our executable, or on PATH.
pub fn find_shim(flag: Option<&Path>) -> PathBuf {
    resolve_shim(flag.unwrap_or(Path::new("containerd-shim-rs")))
}

/// A shim named in configuration: a path as given; a bare name beside our executable if it is
/// there, else the name itself (found on PATH when it is run).
pub fn resolve_shim(p: &Path) -> PathBuf {
    if p.components().count() > 1 || p.is_absolute() {
        return p.to_path_buf();
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let beside = dir.join(p);
            if beside.exists() {
                return beside;
            }
        }
    }
    p.to_path_buf()
}

/// The file in a bundle naming the shim binary that serves it (as containerd 1.7 keeps it), so
/// that cleanup after a restart runs the same shim.
pub const SHIM_BINARY_FILE: &str = "shim-binary-path";

/// Arguments shared by `start` and `delete`.
pub struct ShimArgs<'a> {
    pub binary: PathBuf,
    pub namespace: &'a str,
    pub id: &'a str,
    pub address: &'a Path,
    pub bundle: &'a Path,
    pub state: &'a Path,
    pub debug: bool,
}

impl ShimArgs<'_> {
    fn command(&self, action: &str) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.binary);
        c.arg("--namespace")
            .arg(self.namespace)
            .arg("--id")
            .arg(self.id)
            .arg("--address")
            .arg(self.address)
            .arg("--bundle")
            .arg(self.bundle)
            .arg("--runtime-root")
            .arg(self.state.join("runc"))
            .arg("--socket-dir")
            .arg(self.state.join("s"));
        if self.debug {
            c.arg("--debug");
        }
        c.arg(action)
            .current_dir(self.bundle)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false);
        c
    }

    /// `start`: returns the printed `unix://` address.
    pub async fn start(&self) -> Result<String, ShimError> {
        let out = self
            .command("start")
            .output()
            .await
            .map_err(|source| ShimError::Spawn {
                binary: self.binary.display().to_string(),
                source,
            })?;
        if !out.status.success() {
            return Err(ShimError::StartFailed {
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        let addr = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if addr.is_empty() {
            return Err(ShimError::NoAddress);
        }
        Ok(addr)
    }

    /// `delete`: cleanup of a dead shim; returns the protobuf DeleteResponse it printed.
    pub async fn delete(&self) -> Result<proto::shim::DeleteResponse, ShimError> {
        let out = self
            .command("delete")
            .output()
            .await
            .map_err(|source| ShimError::Spawn {
                binary: self.binary.display().to_string(),
                source,
            })?;
        if !out.status.success() {
            return Err(ShimError::Delete(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        <proto::shim::DeleteResponse as prost::Message>::decode(out.stdout.as_slice())
            .map_err(|e| ShimError::Delete(format!("decode DeleteResponse: {e}")))
    }
}

/// Connects to a shim's `unix://` address.
pub async fn connect(address: &str) -> Result<ShimClient, ShimError> {
    let path = PathBuf::from(address.strip_prefix("unix://").unwrap_or(address));
    let err = |message: String| ShimError::Connect {
        address: address.to_string(),
        message,
    };
    let channel = Endpoint::try_from("http://[::]:50051")
        .map_err(|e| err(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                tokio::net::UnixStream::connect(path)
                    .await
                    .map(TokioIo::new)
            }
        }))
        .await
        .map_err(|e| err(e.to_string()))?;
    Ok(TaskClient::new(channel))
}
