//! Wiring: [`Daemon::new`] builds every store; [`run`] serves the gRPC services on the socket.

use std::path::PathBuf;
use std::sync::Arc;

use crate::content::ContentStore;
use crate::events::Exchange;
use crate::meta::Meta;
use crate::snapshot::{backend, Backend, Snapshots};
use crate::tasks::TaskManager;
use crate::Config;

/// Everything the services share.
pub struct Daemon {
    pub config: Config,
    pub meta: Arc<Meta>,
    pub content: ContentStore,
    pub snapshots: Snapshots,
    pub events: Exchange,
    pub tasks: TaskManager,
    /// Runtime names -> shim binary and default runtime options.
    pub runtimes: crate::config::Runtimes,
    /// Scratch space for temporary mounts and diff output (on the root filesystem).
    pub tmp: PathBuf,
    pub started: std::time::Instant,
    pub uuid: String,
    /// Wakes the garbage collector ([`crate::gc::scheduler`]).
    pub gc_wanted: tokio::sync::Notify,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Init(#[from] errdefs::Error),
    #[error("serve: {0}")]
    Serve(#[from] tonic::transport::Error),
}

fn io<'a>(
    what: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> ServerError + 'a {
    move |source| ServerError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

impl Daemon {
    pub fn new(config: Config) -> Result<Self, ServerError> {
        for d in [&config.root, &config.state] {
            std::fs::create_dir_all(d).map_err(io("mkdir", d))?;
        }
        let meta =
            Arc::new(Meta::open(&config.root.join("meta.redb")).map_err(errdefs::Error::from)?);
        let content =
            ContentStore::open(&config.root.join("content")).map_err(errdefs::Error::from)?;
        let snaps = config.root.join("snapshots");
        let mut backends: Vec<Arc<dyn Backend>> = vec![
            Arc::new(backend::Overlay::new(snaps.join("overlayfs")).map_err(errdefs::Error::from)?),
            Arc::new(backend::Native::new(snaps.join("native")).map_err(errdefs::Error::from)?),
        ];
        if let Some(b) = crate::snapshot::btrfs::Btrfs::open(snaps.join("btrfs")) {
            backends.push(Arc::new(b));
        }
        let tmp = config.root.join("tmpmounts");
        // Mounts left by a crash inside Diff.Apply or Diff.Diff.
        crate::mount::unmount_under(&tmp);
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io("mkdir", &tmp))?;
        let default_shim = crate::shim::find_shim(config.shim_binary.as_deref());
        let tasks = TaskManager::new(
            config.state.clone(),
            config.address.clone(),
            default_shim.clone(),
            config.debug,
        );
        let runtimes = crate::config::Runtimes::new(
            default_shim,
            config
                .runtime_binary
                .as_ref()
                .map(|p| p.display().to_string()),
            config.runtimes.clone(),
        );
        Ok(Self {
            snapshots: Snapshots::new(meta.clone(), backends),
            meta,
            content,
            events: Exchange::new(),
            tasks,
            runtimes,
            tmp,
            started: std::time::Instant::now(),
            uuid: server_uuid(&config.root)?,
            gc_wanted: tokio::sync::Notify::new(),
            config,
        })
    }
}

/// Introspection.Server's uuid: kept in `<root>/io.containerd.grpc.v1.introspection/uuid`, where
/// containerd keeps it, so that it names this daemon's state across restarts (clients compare
/// it to tell a restarted daemon from a different one). Written once, atomically.
fn server_uuid(root: &std::path::Path) -> Result<String, ServerError> {
    let dir = root.join("io.containerd.grpc.v1.introspection");
    let path = dir.join("uuid");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(id) = uuid::Uuid::parse_str(text.trim()) {
            return Ok(id.to_string());
        }
        tracing::warn!(path = %path.display(), "unreadable server uuid; writing a new one");
    }
    std::fs::create_dir_all(&dir).map_err(io("mkdir", &dir))?;
    let id = uuid::Uuid::new_v4().to_string();
    let tmp = dir.join("uuid.tmp");
    std::fs::write(&tmp, &id).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("rename", &path))?;
    Ok(id)
}

/// Runs until SIGTERM or SIGINT. Shims keep running.
pub async fn run(config: Config) -> Result<(), ServerError> {
    let daemon = Arc::new(Daemon::new(config)?);
    let address = daemon.config.address.clone();
    if let Some(parent) = address.parent() {
        std::fs::create_dir_all(parent).map_err(io("mkdir", parent))?;
    }
    match std::fs::remove_file(&address) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("remove", &address)(e)),
    }
    let listener = tokio::net::UnixListener::bind(&address).map_err(io("listen", &address))?;
    tracing::info!(address = %address.display(), "serving");

    // Reconnect to shims before serving tasks; publish the exits of those that died.
    for (task, dead) in daemon.tasks.recover().await {
        let Some(dead) = dead else {
            crate::monitor::watch(daemon.clone(), task.namespace.clone(), task.id.clone());
            continue;
        };
        daemon.events.publish(
            &task.namespace,
            "/tasks/exit",
            &proto::events::TaskExit {
                container_id: task.id.clone(),
                id: task.id.clone(),
                pid: dead.pid,
                exit_status: dead.exit_status,
                exited_at: dead.exited_at,
            },
        );
    }

    // A first collection soon after startup cleans what a crash left (partial ingests,
    // unreferenced snapshots), as containerd's scheduler does.
    tokio::spawn(crate::gc::scheduler(daemon.clone()));
    daemon.schedule_gc();

    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let shutdown = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "signal handler");
                    return std::future::pending().await;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down");
    };
    let router = crate::services::router(daemon.clone()).await;
    router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    let _ = std::fs::remove_file(&address);
    Ok(())
}
