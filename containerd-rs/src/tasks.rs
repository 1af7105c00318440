//! Tasks: one shim per container. Creates bundles, starts shims, keeps their clients, and on
//! startup reconnects to the shims that survived a restart (or cleans up after dead ones).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use proto::shim as sh;

use crate::shim::{self, ShimArgs, ShimClient};
use crate::util::Ts;

/// The runtime dir under `--state`, as containerd names it.
pub const RUNTIME_DIR: &str = "io.containerd.runtime.v2.task";

/// A task whose shim is gone: what `shim delete` reported.
#[derive(Debug, Clone)]
pub struct Dead {
    pub pid: u32,
    pub exit_status: u32,
    pub exited_at: Option<prost_types::Timestamp>,
}

#[derive(Clone)]
pub struct Task {
    pub id: String,
    pub namespace: String,
    pub bundle: PathBuf,
    pub client: Option<ShimClient>,
    pub dead: Option<Dead>,
}

pub struct TaskManager {
    pub state: PathBuf,
    pub address: PathBuf,
    /// The shim for bundles that do not name theirs.
    pub shim_binary: PathBuf,
    pub debug: bool,
    tasks: Mutex<HashMap<(String, String), Task>>,
    /// Serialises the cleanup after a dead shim (the monitor and a failing request may both
    /// notice the death).
    cleanup: tokio::sync::Mutex<()>,
}

fn lock_err() -> errdefs::Error {
    errdefs::Error::internal("task table poisoned")
}

impl TaskManager {
    pub fn new(state: PathBuf, address: PathBuf, shim_binary: PathBuf, debug: bool) -> Self {
        Self {
            state,
            address,
            shim_binary,
            debug,
            tasks: Mutex::new(HashMap::new()),
            cleanup: tokio::sync::Mutex::new(()),
        }
    }

    pub fn bundle(&self, ns: &str, id: &str) -> PathBuf {
        self.state.join(RUNTIME_DIR).join(ns).join(id)
    }

    /// Shim arguments for a bundle; the shim is the one named in the bundle (written at Create).
    fn args<'a>(&'a self, ns: &'a str, id: &'a str, bundle: &'a std::path::Path) -> ShimArgs<'a> {
        let binary = std::fs::read_to_string(bundle.join(shim::SHIM_BINARY_FILE))
            .ok()
            .map(|s| PathBuf::from(s.trim()))
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| self.shim_binary.clone());
        ShimArgs {
            binary,
            namespace: ns,
            id,
            address: &self.address,
            bundle,
            state: &self.state,
            debug: self.debug,
        }
    }

    pub fn get(&self, ns: &str, id: &str) -> Result<Task, errdefs::Error> {
        self.tasks
            .lock()
            .map_err(|_| lock_err())?
            .get(&(ns.to_string(), id.to_string()))
            .cloned()
            .ok_or_else(|| {
                errdefs::Error::not_found(format!("no running task found: task {id} not found"))
            })
    }

    pub fn list(&self, ns: &str) -> Result<Vec<Task>, errdefs::Error> {
        let mut v: Vec<Task> = self
            .tasks
            .lock()
            .map_err(|_| lock_err())?
            .values()
            .filter(|t| t.namespace == ns)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(v)
    }

    pub fn all(&self) -> Result<Vec<Task>, errdefs::Error> {
        Ok(self
            .tasks
            .lock()
            .map_err(|_| lock_err())?
            .values()
            .cloned()
            .collect())
    }

    fn insert(&self, t: Task) -> Result<(), errdefs::Error> {
        self.tasks
            .lock()
            .map_err(|_| lock_err())?
            .insert((t.namespace.clone(), t.id.clone()), t);
        Ok(())
    }

    pub fn remove(&self, ns: &str, id: &str) {
        if let Ok(mut m) = self.tasks.lock() {
            m.remove(&(ns.to_string(), id.to_string()));
        }
    }

    /// Reserves the id (AlreadyExists if a task exists), writes the bundle, starts the shim and
    /// sends it Create. On failure everything is undone.
    pub async fn create(
        &self,
        ns: &str,
        id: &str,
        spec_json: &[u8],
        shim_binary: &std::path::Path,
        req: sh::CreateTaskRequest,
    ) -> Result<(Task, u32), errdefs::Error> {
        let bundle = self.bundle(ns, id);
        {
            let mut m = self.tasks.lock().map_err(|_| lock_err())?;
            let k = (ns.to_string(), id.to_string());
            if m.contains_key(&k) {
                return Err(errdefs::Error::already_exists(format!(
                    "task {id}: already exists"
                )));
            }
            // Reserve with a placeholder so a concurrent Create fails.
            m.insert(
                k,
                Task {
                    id: id.to_string(),
                    namespace: ns.to_string(),
                    bundle: bundle.clone(),
                    client: None,
                    dead: None,
                },
            );
        }
        match self
            .create_inner(ns, id, &bundle, spec_json, shim_binary, req)
            .await
        {
            Ok((task, pid)) => {
                self.insert(task.clone())?;
                Ok((task, pid))
            }
            Err(e) => {
                self.remove(ns, id);
                Err(e)
            }
        }
    }

    async fn create_inner(
        &self,
        ns: &str,
        id: &str,
        bundle: &std::path::Path,
        spec_json: &[u8],
        shim_binary: &std::path::Path,
        mut req: sh::CreateTaskRequest,
    ) -> Result<(Task, u32), errdefs::Error> {
        let ioe = |what: &str, e: std::io::Error| {
            errdefs::Error::internal(format!("{what} {}: {e}", bundle.display()))
        };
        if bundle.exists() {
            // Left over from a crash: clean it like a dead shim.
            let _ = self.args(ns, id, bundle).delete().await;
            let _ = std::fs::remove_dir_all(bundle);
        }
        std::fs::create_dir_all(bundle.join("rootfs")).map_err(|e| ioe("mkdir", e))?;
        std::fs::write(bundle.join("config.json"), spec_json)
            .map_err(|e| ioe("write config.json", e))?;
        std::fs::write(
            bundle.join(shim::SHIM_BINARY_FILE),
            shim_binary.as_os_str().as_encoded_bytes(),
        )
        .map_err(|e| ioe("write shim-binary-path", e))?;
        let undo = |bundle: PathBuf| async move {
            let _ = std::fs::remove_dir_all(&bundle);
        };
        let args = self.args(ns, id, bundle);
        let address = match args.start().await {
            Ok(a) => a,
            Err(e) => {
                undo(bundle.to_path_buf()).await;
                return Err(e.into());
            }
        };
        tracing::debug!(namespace = ns, id, address = %address, "shim started");
        let mut client = match shim::connect(&address).await {
            Ok(c) => c,
            Err(e) => {
                let _ = args.delete().await;
                undo(bundle.to_path_buf()).await;
                return Err(e.into());
            }
        };
        req.id = id.to_string();
        req.bundle = bundle.display().to_string();
        match client.create(req).await {
            Ok(resp) => {
                let pid = resp.into_inner().pid;
                Ok((
                    Task {
                        id: id.to_string(),
                        namespace: ns.to_string(),
                        bundle: bundle.to_path_buf(),
                        client: Some(client),
                        dead: None,
                    },
                    pid,
                ))
            }
            Err(status) => {
                let _ = client
                    .shutdown(sh::ShutdownRequest {
                        id: id.to_string(),
                        now: true,
                    })
                    .await;
                let _ = args.delete().await;
                undo(bundle.to_path_buf()).await;
                Err(errdefs::Error::from(status))
            }
        }
    }

    /// Deletes the init process in the shim, shuts the shim down and removes the bundle.
    pub async fn delete(&self, ns: &str, id: &str) -> Result<Dead, errdefs::Error> {
        let started = std::time::Instant::now();
        let task = self.get(ns, id)?;
        let dead = match (&task.dead, task.client.clone()) {
            (Some(d), _) => d.clone(),
            (None, Some(mut c)) => {
                let deleted = c
                    .delete(sh::DeleteRequest {
                        id: id.to_string(),
                        exec_id: String::new(),
                    })
                    .await;
                match deleted {
                    Ok(r) => {
                        let r = r.into_inner();
                        // From here on the task is going: requests (and the monitor) see it as
                        // "being created/deleted" rather than as a shim that died.
                        if let Ok(mut m) = self.tasks.lock() {
                            if let Some(t) = m.get_mut(&(ns.to_string(), id.to_string())) {
                                t.client = None;
                            }
                        }
                        let deleted_at = started.elapsed();
                        let _ = c
                            .shutdown(sh::ShutdownRequest {
                                id: id.to_string(),
                                now: false,
                            })
                            .await;
                        tracing::debug!(
                            namespace = ns,
                            id,
                            delete_micros = deleted_at.as_micros() as u64,
                            shutdown_micros = (started.elapsed() - deleted_at).as_micros() as u64,
                            "shim deleted the task and shut down"
                        );
                        Dead {
                            pid: r.pid,
                            exit_status: r.exit_status,
                            exited_at: r.exited_at,
                        }
                    }
                    // A shim that died under us: clean up after it and report its exit.
                    Err(status) => match self.shim_gone(ns, id).await? {
                        Some(d) => d,
                        None => return Err(errdefs::Error::from(status)),
                    },
                }
            }
            (None, None) => {
                return Err(errdefs::Error::precondition(format!(
                    "task {id} is being created: failed precondition"
                )))
            }
        };
        if let Err(e) = std::fs::remove_dir_all(&task.bundle) {
            if e.kind() != std::io::ErrorKind::NotFound {
                // A rootfs still mounted: detach it and retry.
                let _ = nix::mount::umount2(
                    &task.bundle.join("rootfs"),
                    nix::mount::MntFlags::MNT_DETACH,
                );
                if let Err(e) = std::fs::remove_dir_all(&task.bundle) {
                    tracing::warn!(bundle = %task.bundle.display(), error = %e, "removing bundle");
                }
            }
        }
        self.remove(ns, id);
        tracing::debug!(
            namespace = ns,
            id,
            micros = started.elapsed().as_micros() as u64,
            "task deleted"
        );
        Ok(dead)
    }

    /// Scans the bundles left by a previous run: reconnects to live shims; for dead ones runs
    /// `shim delete` and keeps the task as stopped. Returns every task found, with the exit of
    /// the dead ones (to publish), `None` for the live ones (to watch).
    pub async fn recover(&self) -> Vec<(Task, Option<Dead>)> {
        let mut dead_tasks = Vec::new();
        let root = self.state.join(RUNTIME_DIR);
        let Ok(nss) = std::fs::read_dir(&root) else {
            return dead_tasks;
        };
        for nsd in nss.flatten() {
            let Some(ns) = nsd.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Ok(ids) = std::fs::read_dir(nsd.path()) else {
                continue;
            };
            for idd in ids.flatten() {
                let Some(id) = idd.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                let bundle = idd.path();
                let addr = std::fs::read_to_string(bundle.join("address")).unwrap_or_default();
                let mut task = Task {
                    id: id.clone(),
                    namespace: ns.clone(),
                    bundle: bundle.clone(),
                    client: None,
                    dead: None,
                };
                if !addr.trim().is_empty() {
                    if let Ok(mut c) = shim::connect(addr.trim()).await {
                        let alive = c
                            .connect(sh::ConnectRequest { id: id.clone() })
                            .await
                            .is_ok();
                        if alive {
                            tracing::info!(namespace = %ns, id = %id, "reconnected to shim");
                            task.client = Some(c);
                            let _ = self.insert(task.clone());
                            dead_tasks.push((task, None));
                            continue;
                        }
                    }
                }
                tracing::info!(namespace = %ns, id = %id, "shim is gone; cleaning up");
                let d = self.cleanup_dead(&ns, &id, &bundle).await;
                task.dead = Some(d.clone());
                let _ = self.insert(task.clone());
                dead_tasks.push((task, Some(d)));
            }
        }
        dead_tasks
    }
}

impl TaskManager {
    /// `shim delete`: the runtime kills what is left of the container and deletes it (cgroup
    /// included), the rootfs is unmounted. Returns the exit it reported (137 when it failed).
    async fn cleanup_dead(&self, ns: &str, id: &str, bundle: &std::path::Path) -> Dead {
        match self.args(ns, id, bundle).delete().await {
            Ok(r) => Dead {
                pid: r.pid,
                exit_status: r.exit_status,
                exited_at: r.exited_at,
            },
            Err(e) => {
                tracing::warn!(id = %id, error = %e, "shim delete");
                Dead {
                    pid: 0,
                    exit_status: 137,
                    exited_at: Some(Ts::now().proto()),
                }
            }
        }
    }

    /// Called when a request to a task's shim failed: if the shim process is gone, cleans up
    /// after it (once) and marks the task stopped. Returns the exit of a dead task, or None when
    /// the shim is alive (or the task is being created or deleted).
    pub async fn shim_gone(&self, ns: &str, id: &str) -> Result<Option<Dead>, errdefs::Error> {
        let _once = self.cleanup.lock().await;
        let mut task = self.get(ns, id)?;
        if let Some(d) = task.dead {
            return Ok(Some(d));
        }
        if task.client.is_none() || shim_alive(&task.bundle) {
            return Ok(None);
        }
        tracing::warn!(namespace = ns, id, "shim died; cleaning up after it");
        let d = self.cleanup_dead(ns, id, &task.bundle).await;
        task.client = None;
        task.dead = Some(d.clone());
        // Deleted meanwhile (by a Delete that raced with us): leave it deleted.
        if self.get(ns, id).is_ok() {
            self.insert(task)?;
        }
        Ok(Some(d))
    }
}

/// Whether the shim whose pid is in `<bundle>/shim.pid` still runs.
pub fn shim_alive(bundle: &std::path::Path) -> bool {
    let Some(pid) = std::fs::read_to_string(bundle.join("shim.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|p| *p > 0)
    else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => !is_zombie(pid),
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
        })
        .is_some_and(|state| state == 'Z')
}

/// The shim client of a live task, or FailedPrecondition for a stopped/creating one.
pub fn client(task: &Task) -> Result<ShimClient, errdefs::Error> {
    task.client.clone().ok_or_else(|| {
        errdefs::Error::precondition(format!(
            "task {} is not running: failed precondition",
            task.id
        ))
    })
}

pub type SharedTasks = Arc<TaskManager>;
