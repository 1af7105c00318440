//! The Docker object model over containerd: `Daemon` owns the container table, the store, the
//! image service and the event bus. HTTP handlers are thin over its methods.
mod archive;
mod commit;
mod container;
pub mod events;
mod exec;
pub mod fsview;
pub mod health;
mod lifecycle;
pub mod logs;
mod restart;
pub mod stats;
pub mod stdio;
mod update;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

pub use commit::CommitRequest;
pub use container::{Ctr, Gen, ListEntry};
pub use exec::{ExecConfig, ExecInfo};
pub use update::UpdateConfig;

use crate::config::Config;
use crate::containerd::Containerd;
use crate::error::{ApiError, Result};
use crate::images::Images;
use crate::store::Store;

/// The daemon.
pub struct Daemon {
    pub config: Config,
    pub cd: Containerd,
    pub images: Images,
    pub store: Store,
    pub events: events::Events,
    containers: RwLock<HashMap<String, Arc<Ctr>>>,
    execs: RwLock<HashMap<String, Arc<exec::Exec>>>,
    /// Serializes name reservations.
    names: tokio::sync::Mutex<()>,
    pub started: std::time::Instant,
    /// Set once shutdown begins: no restart policy fires after that.
    shutting_down: std::sync::atomic::AtomicBool,
    /// The init bind-mounted for `--init` (None when it could not be installed).
    pub init_binary: Option<PathBuf>,
    /// The block I/O knobs the kernel offers (read once, as dockerd's sysinfo).
    pub blkio: crate::sysinfo::Blkio,
}

impl Daemon {
    /// Opens the store and loads the container records (no containerd call yet).
    pub fn new(config: Config, cd: Containerd) -> Result<Arc<Self>> {
        std::fs::create_dir_all(config.data_root.join("containers"))
            .map_err(|e| ApiError::io("create data root", e))?;
        std::fs::create_dir_all(config.exec_root.join("containerd"))
            .map_err(|e| ApiError::io("create exec root", e))?;
        let store = Store::open(&config.data_root.join("engine.redb"))?;
        let init_binary = match &config.init_path {
            Some(p) => Some(p.clone()),
            None => crate::initbin::install(&config.exec_root)
                .map_err(|e| tracing::warn!(error = %e, "install engine-init"))
                .ok(),
        };
        let mut map = HashMap::new();
        for rec in store.all()? {
            map.insert(rec.id.clone(), Arc::new(Ctr::new(rec)));
        }
        Ok(Arc::new(Daemon {
            images: Images::new(cd.clone(), &config.snapshotter),
            cd,
            store,
            events: events::Events::new(),
            containers: RwLock::new(map),
            blkio: crate::sysinfo::Blkio::host(),
            execs: RwLock::new(HashMap::new()),
            names: tokio::sync::Mutex::new(()),
            started: std::time::Instant::now(),
            init_binary,
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            config,
        }))
    }

    /// `<data-root>/containers/<id>`.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.config.data_root.join("containers").join(id)
    }

    /// `<exec-root>/containerd/<id>`: the FIFOs.
    pub fn fifo_dir(&self, id: &str) -> PathBuf {
        self.config.exec_root.join("containerd").join(id)
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join(format!("{id}-json.log"))
    }

    fn all(&self) -> Vec<Arc<Ctr>> {
        self.containers
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Finds a container by full id, name, or unique id prefix.
    pub fn get(&self, name: &str) -> Result<Arc<Ctr>> {
        let map = self
            .containers
            .read()
            .map_err(|_| ApiError::internal("container table poisoned"))?;
        if let Some(c) = map.get(name) {
            return Ok(c.clone());
        }
        let slashed = if name.starts_with('/') {
            name.to_string()
        } else {
            format!("/{name}")
        };
        if let Some(c) = map.values().find(|c| c.name() == slashed) {
            return Ok(c.clone());
        }
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_hexdigit()) {
            let m: Vec<&Arc<Ctr>> = map.values().filter(|c| c.id.starts_with(name)).collect();
            if m.len() == 1 {
                return Ok(m[0].clone());
            }
            if m.len() > 1 {
                return Err(ApiError::invalid(format!(
                    "multiple IDs found with provided prefix: {name}"
                )));
            }
        }
        Err(ApiError::no_such_container(name))
    }

    fn insert(&self, c: Arc<Ctr>) {
        if let Ok(mut m) = self.containers.write() {
            m.insert(c.id.clone(), c);
        }
    }

    fn forget(&self, id: &str) {
        if let Ok(mut m) = self.containers.write() {
            m.remove(id);
        }
    }

    /// Persists a container's record.
    fn save(&self, c: &Ctr) -> Result<()> {
        let rec = c.record();
        self.store.put(&rec)?;
        Ok(())
    }

    /// After a restart: find running containers again and monitor them; restart policies.
    pub async fn restore(self: &Arc<Self>) {
        for c in self.all() {
            let d = self.clone();
            if let Err(e) = d.restore_one(&c).await {
                tracing::warn!(container_id = %c.id, error = %e, "restore container");
            }
        }
    }
}
