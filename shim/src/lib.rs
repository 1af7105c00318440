//! containerd-shim-rs: one per container, in the role of containerd-shim-runc-v2.
//!
//! [`start`] detaches a daemon that is the container's subreaper and serves the shim Task API
//! (`containerd.task.v2.Task`) on a unix socket; [`serve`] is that daemon's server; [`delete`]
//! cleans up after a shim that is gone. See ARCHITECTURE.md for the command-line contract.

pub mod console;
pub mod daemon;
pub mod events;
mod grpc;
pub mod metrics;
pub mod mount;
pub mod oom;
pub mod process;
mod publish;
pub mod reaper;
mod rpc;
pub mod runtime;
mod server;
pub mod stdio;
pub mod task;

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use daemon::{socket_dir, socket_path, DaemonError};

use crate::events::Publisher;
use crate::reaper::Reaper;
use crate::task::{RuntimeOptions, Shim, ShimConfig};

/// The runtime root base when `--runtime-root` is not given.
pub const DEFAULT_RUNTIME_ROOT: &str = "/run/containerd-rs/runc";

/// The shim's command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub namespace: String,
    pub id: String,
    /// containerd-rs's socket (`/path` or `unix:///path`), where events are published.
    pub address: String,
    pub bundle: PathBuf,
    pub runtime_root: Option<PathBuf>,
    pub socket_dir: Option<PathBuf>,
    pub debug: bool,
}

impl Config {
    fn shim_config(&self) -> ShimConfig {
        ShimConfig {
            namespace: self.namespace.clone(),
            id: self.id.clone(),
            bundle: self.bundle.clone(),
            runtime_root: self
                .runtime_root
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_RUNTIME_ROOT)),
        }
    }
}

/// `start`: see [`daemon::start`]. Returns the address to print.
pub fn start(cfg: &Config) -> Result<String, errdefs::Error> {
    daemon::start(cfg).map_err(|e| errdefs::Error::internal(e.to_string()))
}

/// Serves the Task API on `listener` until Shutdown. Runs the reaper and the event publisher.
/// The calling process should be a subreaper (the daemon is), or re-parented container
/// processes are not seen.
pub async fn serve(cfg: Config, listener: UnixListener) -> Result<(), errdefs::Error> {
    let reaper = Reaper::new();
    tokio::spawn(reaper.clone().run());
    let (events, queue) = Publisher::channel();
    let (closing, closing_rx) = tokio::sync::watch::channel(false);
    let publisher = tokio::spawn(publish::forward(
        cfg.address.clone(),
        cfg.namespace.clone(),
        queue,
        closing_rx,
    ));
    let shim = Shim::new(cfg.shim_config(), reaper, events);
    let served = server::serve(shim, listener).await;
    // The last events (TaskDelete just before Shutdown) must not die with the process.
    let _ = closing.send(true);
    if tokio::time::timeout(EVENTS_DRAIN, publisher).await.is_err() {
        tracing::warn!("events still queued at exit were dropped");
    }
    served
}

/// How long an exiting shim keeps trying to publish the events still queued.
const EVENTS_DRAIN: Duration = Duration::from_secs(2);

/// `delete`: cleanup when the shim is gone: `<runtime> delete --force <id>`, unmount the rootfs.
/// Returns the protobuf-encoded DeleteResponse to print on stdout (exit status 137).
pub fn delete(cfg: &Config) -> Result<Vec<u8>, errdefs::Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| errdefs::Error::internal(format!("build runtime: {e}")))?;
    rt.block_on(async {
        let reaper = Reaper::new();
        tokio::spawn(reaper.clone().run());
        let opts: RuntimeOptions = std::fs::read(cfg.bundle.join("options.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let runtime = cfg
            .shim_config()
            .runtime(&opts, reaper)
            .map_err(|e| errdefs::Error::internal(e.to_string()))?;
        if let Err(e) = runtime.delete(&cfg.id, true).await {
            tracing::warn!(cause = %e, container_id = %cfg.id, "runtime delete --force");
        }
        if let Err(e) = mount::unmount_all(&cfg.bundle.join("rootfs")) {
            tracing::warn!(cause = %e, "unmount rootfs");
        }
        let pid = std::fs::read_to_string(cfg.bundle.join("init.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        Ok(grpc::encode_delete_response(pid, 137, SystemTime::now()))
    })
}

/// How long Shutdown waits for open requests before the daemon exits anyway.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

pub(crate) fn shutdown_signal(shim: &Arc<Shim>) -> impl std::future::Future<Output = ()> {
    let notify = shim.shutdown_signal();
    async move { notify.notified().await }
}
