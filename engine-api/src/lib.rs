//! engine-api: the Docker Engine API daemon (dockerd's role). It keeps Docker's object model
//! (containers with names, configs, logs; images as repo:tag) and reaches containerd only through
//! the containerd v1 gRPC API. See ARCHITECTURE.md.
#![forbid(unsafe_code)]
#![recursion_limit = "256"]

pub mod api;
pub mod config;
pub mod containerd;
pub mod containerd_ext;
pub mod daemon;
pub mod daemon_json;
pub mod error;
pub mod images;
pub mod initbin;
pub mod observability;
pub mod reference;
pub mod security;
pub mod server;
pub mod spec;
pub mod store;
pub mod sysinfo;
pub mod types;

pub use api::router;
pub use config::Config;

use tokio::signal::unix::{signal, SignalKind};

/// Startup failures.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Server(#[from] server::ServerError),
    #[error("daemon: {0}")]
    Daemon(String),
    #[error("write pidfile {path}: {source}")]
    Pidfile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn run(config: Config) -> Result<(), RunError> {
    if let Some(p) = &config.pidfile {
        std::fs::write(p, format!("{}\n", std::process::id())).map_err(|source| {
            RunError::Pidfile {
                path: p.display().to_string(),
                source,
            }
        })?;
    }
    let mut term = signal(SignalKind::terminate()).map_err(server::ServerError::Io)?;
    let mut int = signal(SignalKind::interrupt()).map_err(server::ServerError::Io)?;
    let (child, socket) = match &config.containerd {
        Some(s) => (None, s.clone()),
        None => {
            let bin = server::find_containerd(config.containerd_binary.as_deref())?;
            let c = server::ChildContainerd::start(
                &bin,
                &config.data_root,
                &config.exec_root,
                config.debug,
            )
            .await?;
            let s = c.socket.clone();
            (Some(c), s)
        }
    };
    let cd = containerd::Containerd::new(&socket, &config.namespace)
        .map_err(|e| RunError::Daemon(e.to_string()))?;
    let hosts = config.hosts.clone();
    let pidfile = config.pidfile.clone();
    let d = daemon::Daemon::new(config, cd).map_err(|e| RunError::Daemon(e.to_string()))?;
    let mut listeners = Vec::new();
    let mut sockets = Vec::new();
    for h in &hosts {
        let l = server::bind(h).await?;
        if let server::Listener::Unix(_, p) = &l {
            sockets.push(p.clone());
        }
        listeners.push(l);
    }
    let app = router(d.clone());
    let tasks: Vec<_> = listeners
        .into_iter()
        .map(|l| tokio::spawn(server::serve(l, app.clone())))
        .collect();
    {
        let d = d.clone();
        tokio::spawn(async move { d.restore().await });
    }
    tracing::info!(hosts = ?hosts, containerd = %socket.display(), "engine-api ready");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    for t in tasks {
        t.abort();
    }
    d.shutdown().await;
    for s in sockets {
        let _ = std::fs::remove_file(s);
    }
    if let Some(c) = child {
        c.stop().await;
    }
    if let Some(p) = pidfile {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}
