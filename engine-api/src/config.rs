//! Command line and daemon configuration.
use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Parser;

/// `engine-api` flags (ARCHITECTURE.md: later work adds flags, never renames).
#[derive(Debug, Parser)]
#[command(
    name = "engine-api",
    about = "Docker Engine API daemon over containerd gRPC"
)]
pub struct Cli {
    /// Listen address: unix://<path> or tcp://<host:port> (repeatable).
    #[arg(short = 'H', long = "host")]
    pub hosts: Vec<String>,
    #[arg(long, default_value = "/var/lib/engine-api")]
    pub data_root: PathBuf,
    #[arg(long, default_value = "/run/engine-api")]
    pub exec_root: PathBuf,
    /// containerd socket; without it engine-api starts its own containerd-rs.
    #[arg(long)]
    pub containerd: Option<PathBuf>,
    /// containerd-rs binary to start when --containerd is not given.
    #[arg(long)]
    pub containerd_binary: Option<PathBuf>,
    /// containerd namespace used for every call.
    #[arg(long, default_value = "moby")]
    pub containerd_namespace: String,
    #[arg(long, default_value = "engine-api")]
    pub cgroup_parent: String,
    /// Extra OCI runtime, `name=path` (repeatable).
    #[arg(long = "add-runtime")]
    pub add_runtime: Vec<String>,
    /// Runtime used when a container names none (default runc-rs, or daemon.json's).
    #[arg(long)]
    pub default_runtime: Option<String>,
    /// daemon.json (runtimes, default-runtime); default /etc/engine-api/daemon.json if present.
    #[arg(long)]
    pub config_file: Option<PathBuf>,
    #[arg(long)]
    pub pidfile: Option<PathBuf>,
    /// Snapshotter used for images and containers.
    #[arg(long, default_value = "overlayfs")]
    pub snapshotter: String,
    #[arg(short = 'D', long = "debug")]
    pub debug: bool,
    /// Keep containers running while engine-api is down (dockerd's --live-restore); without it
    /// engine-api stops running containers when it shuts down.
    #[arg(long)]
    pub live_restore: bool,
    /// The init binary for `--init` (default: the embedded engine-init).
    #[arg(long)]
    pub init_path: Option<PathBuf>,
}

/// A resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub hosts: Vec<String>,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub containerd: Option<PathBuf>,
    pub containerd_binary: Option<PathBuf>,
    pub namespace: String,
    pub cgroup_parent: String,
    /// Runtime name → binary (path or name looked up by the shim).
    pub runtimes: BTreeMap<String, String>,
    pub default_runtime: String,
    pub pidfile: Option<PathBuf>,
    pub snapshotter: String,
    pub debug: bool,
    pub live_restore: bool,
    pub init_path: Option<PathBuf>,
}

/// Bad flag values.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid --add-runtime {0:?}: expected name=path")]
    Runtime(String),
    #[error("default runtime {0:?} is not configured")]
    DefaultRuntime(String),
    #[error("invalid -H {0:?}: expected unix://<path> or tcp://<host:port>")]
    Host(String),
    #[error(transparent)]
    File(#[from] crate::daemon_json::DaemonJsonError),
    #[error("runtime {0:?} is configured both by --add-runtime and in the config file")]
    RuntimeConflict(String),
}

impl Cli {
    /// Validates and resolves the flags.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let mut runtimes = BTreeMap::new();
        runtimes.insert("runc-rs".to_string(), default_runc_rs());
        for r in &self.add_runtime {
            match r.split_once('=') {
                Some((n, p)) if !n.is_empty() && !p.is_empty() => {
                    runtimes.insert(n.to_string(), p.to_string());
                }
                _ => return Err(ConfigError::Runtime(r.clone())),
            }
        }
        let file = match &self.config_file {
            Some(p) => crate::daemon_json::DaemonJson::read(p, true)?,
            None => crate::daemon_json::DaemonJson::read(
                std::path::Path::new(crate::daemon_json::DEFAULT_PATH),
                false,
            )?,
        };
        for (name, r) in &file.runtimes {
            if self
                .add_runtime
                .iter()
                .any(|a| a.split_once('=').map(|x| x.0) == Some(name))
            {
                return Err(ConfigError::RuntimeConflict(name.clone()));
            }
            runtimes.insert(name.clone(), r.path.clone());
        }
        let default_runtime = self
            .default_runtime
            .or(file.default_runtime)
            .unwrap_or_else(|| "runc-rs".to_string());
        if !runtimes.contains_key(&default_runtime) {
            return Err(ConfigError::DefaultRuntime(default_runtime));
        }
        let hosts = if self.hosts.is_empty() {
            vec!["unix:///run/engine-api.sock".to_string()]
        } else {
            self.hosts
        };
        for h in &hosts {
            if !(h.starts_with("unix://") || h.starts_with("tcp://")) {
                return Err(ConfigError::Host(h.clone()));
            }
        }
        Ok(Config {
            hosts,
            data_root: self.data_root,
            exec_root: self.exec_root,
            containerd: self.containerd,
            containerd_binary: self.containerd_binary,
            namespace: self.containerd_namespace,
            cgroup_parent: self.cgroup_parent.trim_matches('/').to_string(),
            runtimes,
            default_runtime,
            pidfile: self.pidfile,
            snapshotter: self.snapshotter,
            debug: self.debug,
            live_restore: self.live_restore,
            init_path: self.init_path,
        })
    }
}

/// `runc-rs` beside our executable when it is there, else the bare name (PATH of the shim).
fn default_runc_rs() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("runc-rs")))
        .filter(|p| p.is_file())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "runc-rs".to_string())
}

impl Config {
    /// A configuration for tests and embedding: one unix socket, defaults elsewhere.
    pub fn for_roots(data_root: PathBuf, exec_root: PathBuf, containerd: PathBuf) -> Self {
        let mut runtimes = BTreeMap::new();
        runtimes.insert("runc-rs".to_string(), default_runc_rs());
        Config {
            hosts: Vec::new(),
            data_root,
            exec_root,
            containerd: Some(containerd),
            containerd_binary: None,
            namespace: "moby".to_string(),
            cgroup_parent: "engine-api".to_string(),
            runtimes,
            default_runtime: "runc-rs".to_string(),
            pidfile: None,
            snapshotter: "overlayfs".to_string(),
            debug: false,
            live_restore: false,
            init_path: None,
        }
    }
}
