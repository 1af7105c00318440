//! The task service's logic, free of protobuf: one container per shim, its init and its execs.
//! `grpc.rs` converts requests and calls these methods.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{oneshot, Notify};

use crate::console::ConsoleSocket;
use crate::events::{Event, Publisher};
use crate::mount::{self, MountError, MountSpec};
use crate::oom;
use crate::process::{Process, ProcessState, Status};
use crate::reaper::{Exit, Reaper};
use crate::runtime::{self, ChildStdio, Runtime, RuntimeError, SpawnOpts};
use crate::stdio::{ProcessIo, StdioError, StdioPaths};

/// How long an exit waits for the process's output to drain before it is recorded.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);
/// How long the runtime may take to send the pty master after it exited successfully.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("task {0} not found")]
    NotFound(String),
    #[error("process {0} not found")]
    ProcessNotFound(String),
    #[error("process already finished")]
    Finished,
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    Precondition(String),
    #[error("{0}")]
    Invalid(String),
    #[error("OCI runtime {action} failed: {source}")]
    Runtime {
        action: &'static str,
        source: RuntimeError,
    },
    #[error(transparent)]
    Stdio(#[from] StdioError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl From<TaskError> for errdefs::Error {
    fn from(e: TaskError) -> Self {
        let msg = e.to_string();
        match e {
            TaskError::NotFound(_) | TaskError::ProcessNotFound(_) | TaskError::Finished => {
                errdefs::Error::not_found(msg)
            }
            TaskError::AlreadyExists(_) => errdefs::Error::already_exists(msg),
            TaskError::Precondition(_) => errdefs::Error::precondition(msg),
            TaskError::Invalid(_) | TaskError::Stdio(StdioError::Unsupported(_)) => {
                errdefs::Error::invalid(msg)
            }
            TaskError::Runtime { source, .. } if source.is_not_found() => {
                errdefs::Error::not_found(msg)
            }
            _ => errdefs::Error::internal(msg),
        }
    }
}

fn rt(action: &'static str) -> impl FnOnce(RuntimeError) -> TaskError {
    move |source| TaskError::Runtime { action, source }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TaskError {
    let context = context.into();
    move |source| TaskError::Io { context, source }
}

/// `containerd.runc.v1.Options`, the fields the shim uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuntimeOptions {
    #[serde(default)]
    pub binary_name: String,
    #[serde(default)]
    pub root: String,
    #[serde(default)]
    pub systemd_cgroup: bool,
}

/// A CreateTaskRequest in domain terms.
#[derive(Debug, Clone, Default)]
pub struct CreateTask {
    pub id: String,
    pub bundle: String,
    pub rootfs: Vec<MountSpec>,
    pub stdio: StdioPaths,
    pub options: Option<RuntimeOptions>,
}

/// What the shim was started for.
#[derive(Debug, Clone)]
pub struct ShimConfig {
    pub namespace: String,
    pub id: String,
    pub bundle: PathBuf,
    /// The runtime root base; the runtime gets `<base>/<namespace>` unless Options.root is set.
    pub runtime_root: PathBuf,
}

impl ShimConfig {
    /// The runtime for these options (binary resolved, root chosen, log in the bundle).
    pub fn runtime(
        &self,
        opts: &RuntimeOptions,
        reaper: Arc<Reaper>,
    ) -> Result<Runtime, RuntimeError> {
        let binary = runtime::resolve_binary(&opts.binary_name)?;
        let root = if opts.root.is_empty() {
            self.runtime_root.join(&self.namespace)
        } else {
            PathBuf::from(&opts.root)
        };
        Ok(Runtime::new(
            binary,
            root,
            self.bundle.join("log.json"),
            opts.systemd_cgroup,
            reaper,
        ))
    }
}

/// The container this shim runs.
pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub runtime: Runtime,
    pub init: Arc<Process>,
    execs: Mutex<HashMap<String, Arc<Process>>>,
    rootfs_mounted: bool,
}

impl Container {
    fn process(&self, exec_id: &str) -> Result<Arc<Process>, TaskError> {
        if exec_id.is_empty() {
            return Ok(self.init.clone());
        }
        lock(&self.execs)
            .get(exec_id)
            .cloned()
            .ok_or_else(|| TaskError::ProcessNotFound(exec_id.to_string()))
    }

    fn execs(&self) -> Vec<Arc<Process>> {
        lock(&self.execs).values().cloned().collect()
    }
}

/// The task service.
pub struct Shim {
    cfg: ShimConfig,
    reaper: Arc<Reaper>,
    events: Publisher,
    slot: tokio::sync::Mutex<Option<Arc<Container>>>,
    shutdown: Arc<Notify>,
}

enum Launch<'a> {
    Create,
    Exec(&'a Path),
}

impl Shim {
    pub fn new(cfg: ShimConfig, reaper: Arc<Reaper>, events: Publisher) -> Arc<Self> {
        Arc::new(Self {
            cfg,
            reaper,
            events,
            slot: tokio::sync::Mutex::new(None),
            shutdown: Arc::new(Notify::new()),
        })
    }

    pub fn config(&self) -> &ShimConfig {
        &self.cfg
    }

    /// Notified when Shutdown asks the daemon to exit.
    pub fn shutdown_signal(&self) -> Arc<Notify> {
        self.shutdown.clone()
    }

    async fn container(&self, id: &str) -> Result<Arc<Container>, TaskError> {
        let slot = self.slot.lock().await;
        match slot.as_ref() {
            Some(c) if c.id == id => Ok(c.clone()),
            _ => Err(TaskError::NotFound(id.to_string())),
        }
    }

    pub async fn create(self: &Arc<Self>, req: CreateTask) -> Result<u32, TaskError> {
        if req.id != self.cfg.id {
            return Err(TaskError::Invalid(format!(
                "this shim serves task {}, not {}",
                self.cfg.id, req.id
            )));
        }
        let mut slot = self.slot.lock().await;
        if slot.is_some() {
            return Err(TaskError::AlreadyExists(format!("task {}", req.id)));
        }
        let bundle = if req.bundle.is_empty() {
            self.cfg.bundle.clone()
        } else {
            PathBuf::from(&req.bundle)
        };
        let opts = req.options.clone().unwrap_or_default();
        let runtime = self
            .cfg
            .runtime(&opts, self.reaper.clone())
            .map_err(rt("create"))?;
        let opts_json = serde_json::to_vec(&opts).map_err(|e| TaskError::Invalid(e.to_string()))?;
        std::fs::write(bundle.join("options.json"), opts_json)
            .map_err(io_err("write options.json"))?;

        let rootfs = bundle.join("rootfs");
        mount::mount_all(&req.rootfs, &rootfs)?;
        let rootfs_mounted = !req.rootfs.is_empty();
        let cleanup = |runtime: Runtime, id: String| async move {
            let _ = runtime.delete(&id, true).await;
            if rootfs_mounted {
                let _ = mount::unmount_all(&rootfs);
            }
        };

        let init = Process::new("", req.stdio.clone(), Vec::new());
        let pid_file = bundle.join("init.pid");
        let since = SystemTime::now();
        let pid = match launch(
            &runtime,
            &req.id,
            &bundle,
            Launch::Create,
            &req.stdio,
            &pid_file,
        )
        .await
        {
            Ok(io) => {
                init.set_io(io);
                read_pid(&pid_file)
            }
            Err(e) => Err(e),
        };
        let pid = match pid {
            Ok(pid) => pid,
            Err(e) => {
                cleanup(runtime, req.id.clone()).await;
                return Err(e);
            }
        };
        init.set_pid(pid);
        let container = Arc::new(Container {
            id: req.id.clone(),
            bundle: bundle.clone(),
            runtime,
            init: init.clone(),
            execs: Mutex::new(HashMap::new()),
            rootfs_mounted,
        });
        self.monitor(&container, &init, self.reaper.watch(pid as i32, since));
        self.watch_oom(&container, pid);
        *slot = Some(container);
        tracing::info!(container_id = %req.id, pid, "task created");
        self.events.publish(Event::Create {
            container_id: req.id,
            bundle: bundle.display().to_string(),
            rootfs: req.rootfs,
            stdio: req.stdio,
            pid,
        });
        Ok(pid)
    }

    /// Records the process's exit when the reaper reports it, then publishes TaskExit.
    fn monitor(
        self: &Arc<Self>,
        container: &Arc<Container>,
        process: &Arc<Process>,
        exit: oneshot::Receiver<Exit>,
    ) {
        let (shim, container, process) = (self.clone(), container.clone(), process.clone());
        tokio::spawn(async move {
            let Ok(exit) = exit.await else { return };
            let _started = process.lifecycle.lock().await;
            if let Some(io) = process.io() {
                io.wait_output(OUTPUT_DRAIN).await;
            }
            process.set_exited(exit);
            tracing::info!(container_id = %container.id, exec_id = %process.exec_id, pid = exit.pid, status = exit.status, "process exited");
            if process.is_init() {
                // The execs cannot outlive the init (containerd kills them the same way).
                for exec in container.execs() {
                    if exec.status() == Status::Running {
                        signal(exec.pid(), libc::SIGKILL);
                    }
                }
            }
            let id = if process.is_init() {
                container.id.clone()
            } else {
                process.exec_id.clone()
            };
            shim.events.publish(Event::Exit {
                container_id: container.id.clone(),
                id,
                pid: exit.pid as u32,
                exit_status: exit.status,
                exited_at: exit.at,
            });
        });
    }

    /// Publishes TaskOOM for every OOM kill in the init's memory cgroup (v1 or v2), until the
    /// cgroup is empty or removed.
    fn watch_oom(self: &Arc<Self>, container: &Arc<Container>, pid: u32) {
        let watch = match oom::OomWatch::for_process(pid) {
            Ok(w) => w,
            Err(e) => {
                tracing::debug!(cause = %e, "no oom notifications");
                return;
            }
        };
        let (events, container_id) = (self.events.clone(), container.id.clone());
        tokio::spawn(async move {
            while watch.next().await.is_some() {
                tracing::info!(%container_id, "oom");
                events.publish(Event::Oom {
                    container_id: container_id.clone(),
                });
            }
        });
    }

    pub async fn start(self: &Arc<Self>, id: &str, exec_id: &str) -> Result<u32, TaskError> {
        let c = self.container(id).await?;
        let p = c.process(exec_id)?;
        let _starting = p.lifecycle.lock().await;
        if p.status() != Status::Created || (!p.is_init() && p.pid() != 0) {
            return Err(TaskError::Precondition(format!(
                "process {} is {:?}, not created",
                display_id(&c, &p),
                p.status()
            )));
        }
        if p.is_init() {
            c.runtime.start(id).await.map_err(rt("start"))?;
            p.transition(Status::Created, Status::Running);
            self.events.publish(Event::Start {
                container_id: c.id.clone(),
                pid: p.pid(),
            });
            return Ok(p.pid());
        }
        if c.init.status() != Status::Running {
            return Err(TaskError::Precondition(format!("task {id} is not running")));
        }
        let spec_file = c.bundle.join(format!("exec-{}.json", p.exec_id));
        std::fs::write(&spec_file, &p.spec).map_err(io_err("write exec process spec"))?;
        let pid_file = c.bundle.join(format!("exec-{}.pid", p.exec_id));
        let since = SystemTime::now();
        let launched = launch(
            &c.runtime,
            id,
            &c.bundle,
            Launch::Exec(&spec_file),
            &p.stdio,
            &pid_file,
        )
        .await;
        let _ = std::fs::remove_file(&spec_file);
        p.set_io(launched?);
        let pid = read_pid(&pid_file)?;
        p.set_pid(pid);
        self.monitor(&c, &p, self.reaper.watch(pid as i32, since));
        p.transition(Status::Created, Status::Running);
        self.events.publish(Event::ExecStarted {
            container_id: c.id.clone(),
            exec_id: p.exec_id.clone(),
            pid,
        });
        Ok(pid)
    }

    pub async fn exec(
        &self,
        id: &str,
        exec_id: &str,
        stdio: StdioPaths,
        spec: Vec<u8>,
    ) -> Result<(), TaskError> {
        validate_exec_id(exec_id)?;
        let c = self.container(id).await?;
        if c.init.status() == Status::Stopped {
            return Err(TaskError::Precondition(format!("task {id} is stopped")));
        }
        {
            let mut execs = lock(&c.execs);
            if execs.contains_key(exec_id) {
                return Err(TaskError::AlreadyExists(format!("exec {exec_id}")));
            }
            execs.insert(exec_id.to_string(), Process::new(exec_id, stdio, spec));
        }
        self.events.publish(Event::ExecAdded {
            container_id: c.id.clone(),
            exec_id: exec_id.to_string(),
        });
        Ok(())
    }

    pub async fn state(
        &self,
        id: &str,
        exec_id: &str,
    ) -> Result<(ProcessState, PathBuf), TaskError> {
        let c = self.container(id).await?;
        Ok((c.process(exec_id)?.state(), c.bundle.clone()))
    }

    pub async fn wait(&self, id: &str, exec_id: &str) -> Result<Exit, TaskError> {
        let p = self.container(id).await?.process(exec_id)?;
        Ok(p.wait().await)
    }

    pub async fn kill(
        &self,
        id: &str,
        exec_id: &str,
        sig: u32,
        all: bool,
    ) -> Result<(), TaskError> {
        let c = self.container(id).await?;
        let p = c.process(exec_id)?;
        if p.status() == Status::Stopped {
            return Err(TaskError::Finished);
        }
        if p.is_init() {
            return c.runtime.kill(id, sig, all).await.map_err(rt("kill"));
        }
        if p.pid() == 0 {
            return Err(TaskError::Precondition(format!(
                "exec {exec_id} is not started"
            )));
        }
        if !signal(p.pid(), sig as i32) {
            return Err(TaskError::Finished);
        }
        Ok(())
    }

    pub async fn delete(&self, id: &str, exec_id: &str) -> Result<ProcessState, TaskError> {
        if !exec_id.is_empty() {
            let c = self.container(id).await?;
            let p = c.process(exec_id)?;
            if matches!(p.status(), Status::Running | Status::Paused) {
                return Err(TaskError::Precondition(format!(
                    "cannot delete running exec {exec_id}"
                )));
            }
            lock(&c.execs).remove(exec_id);
            let state = p.state();
            let exit = state.exit.unwrap_or(Exit {
                pid: state.pid as i32,
                status: 0,
                at: SystemTime::now(),
            });
            self.events.publish(Event::Delete {
                container_id: c.id.clone(),
                id: exec_id.to_string(),
                pid: state.pid,
                exit_status: exit.status,
                exited_at: exit.at,
            });
            return Ok(state);
        }
        let mut slot = self.slot.lock().await;
        let c = match slot.as_ref() {
            Some(c) if c.id == id => c.clone(),
            _ => return Err(TaskError::NotFound(id.to_string())),
        };
        let status = c.init.status();
        if matches!(status, Status::Running | Status::Paused) {
            return Err(TaskError::Precondition(format!(
                "cannot delete running task {id}"
            )));
        }
        if let Err(e) = c.runtime.delete(id, status == Status::Created).await {
            if !e.is_not_found() {
                return Err(rt("delete")(e));
            }
        }
        if status == Status::Created {
            let _ = tokio::time::timeout(OUTPUT_DRAIN, c.init.wait()).await;
        }
        if c.rootfs_mounted {
            // The rootfs is off the tree at once; the filesystem's final teardown (an overlay
            // syncs its upper filesystem) runs after the reply.
            mount::detach_all(&c.bundle.join("rootfs"))?.release_in_background();
        }
        *slot = None;
        let state = c.init.state();
        let exit = state.exit.unwrap_or(Exit {
            pid: state.pid as i32,
            status: 137,
            at: SystemTime::now(),
        });
        tracing::info!(container_id = %id, status = exit.status, "task deleted");
        self.events.publish(Event::Delete {
            container_id: id.to_string(),
            id: id.to_string(),
            pid: state.pid,
            exit_status: exit.status,
            exited_at: exit.at,
        });
        Ok(ProcessState {
            exit: Some(exit),
            ..state
        })
    }

    /// The pids in the container, each with its exec id when it is one of the shim's execs.
    pub async fn pids(&self, id: &str) -> Result<Vec<(u32, String)>, TaskError> {
        let c = self.container(id).await?;
        let execs: HashMap<u32, String> = c
            .execs()
            .iter()
            .map(|p| (p.pid(), p.exec_id.clone()))
            .collect();
        let pids = match c.runtime.ps(id).await {
            Ok(pids) => pids,
            Err(e) => {
                tracing::warn!(cause = %e, "runtime ps failed; listing the shim's own processes");
                let mut pids = vec![c.init.pid()];
                pids.extend(execs.keys().copied().filter(|p| *p != 0));
                pids
            }
        };
        Ok(pids
            .into_iter()
            .map(|pid| (pid, execs.get(&pid).cloned().unwrap_or_default()))
            .collect())
    }

    pub async fn pause(&self, id: &str) -> Result<(), TaskError> {
        let c = self.container(id).await?;
        c.runtime.pause(id).await.map_err(rt("pause"))?;
        c.init.transition(Status::Running, Status::Paused);
        self.events.publish(Event::Paused {
            container_id: c.id.clone(),
        });
        Ok(())
    }

    pub async fn resume(&self, id: &str) -> Result<(), TaskError> {
        let c = self.container(id).await?;
        c.runtime.resume(id).await.map_err(rt("resume"))?;
        c.init.transition(Status::Paused, Status::Running);
        self.events.publish(Event::Resumed {
            container_id: c.id.clone(),
        });
        Ok(())
    }

    pub async fn close_io(&self, id: &str, exec_id: &str) -> Result<(), TaskError> {
        let p = self.container(id).await?.process(exec_id)?;
        if let Some(io) = p.io() {
            io.close_stdin();
        }
        Ok(())
    }

    pub async fn resize_pty(
        &self,
        id: &str,
        exec_id: &str,
        width: u32,
        height: u32,
    ) -> Result<(), TaskError> {
        let p = self.container(id).await?.process(exec_id)?;
        let io = p
            .io()
            .ok_or_else(|| TaskError::Precondition("process has no io".into()))?;
        let (w, h) = (
            u16::try_from(width).unwrap_or(u16::MAX),
            u16::try_from(height).unwrap_or(u16::MAX),
        );
        io.resize(w, h).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => TaskError::Precondition(e.to_string()),
            _ => TaskError::Io {
                context: "resize pty".into(),
                source: e,
            },
        })
    }

    pub async fn update(&self, id: &str, resources_json: &[u8]) -> Result<(), TaskError> {
        let c = self.container(id).await?;
        c.runtime
            .update(id, resources_json)
            .await
            .map_err(rt("update"))
    }

    /// The runtime's stats event for the container (`events --stats`).
    pub async fn stats(&self, id: &str) -> Result<serde_json::Value, TaskError> {
        let c = self.container(id).await?;
        c.runtime.stats(id).await.map_err(rt("stats"))
    }

    /// (shim pid, task pid).
    pub async fn connect(&self, id: &str) -> Result<(u32, u32), TaskError> {
        let task_pid = match self.container(id).await {
            Ok(c) => c.init.pid(),
            Err(_) => 0,
        };
        Ok((std::process::id(), task_pid))
    }

    /// Exits the daemon, unless a task is still there and `now` is false.
    pub async fn shutdown(&self, now: bool) {
        if !now && self.slot.lock().await.is_some() {
            tracing::debug!("shutdown ignored: a task is still present");
            return;
        }
        self.shutdown.notify_one();
    }
}

/// Runs `create` or `exec` with the process's stdio (pipes, or a console socket for a terminal).
async fn launch(
    runtime: &Runtime,
    id: &str,
    bundle: &Path,
    what: Launch<'_>,
    paths: &StdioPaths,
    pid_file: &Path,
) -> Result<ProcessIo, TaskError> {
    if !paths.terminal {
        let (child, io) = ProcessIo::pipes(paths)?;
        run_launch(
            runtime,
            id,
            bundle,
            &what,
            SpawnOpts {
                pid_file,
                console_socket: None,
                stdio: child,
            },
        )
        .await?;
        return Ok(io);
    }
    let console = ConsoleSocket::new().map_err(io_err("console socket"))?;
    let (stdin, stdout) = ProcessIo::terminal(paths)?;
    let null = ChildStdio::null().map_err(io_err("open /dev/null"))?;
    let running = run_launch(
        runtime,
        id,
        bundle,
        &what,
        SpawnOpts {
            pid_file,
            console_socket: Some(console.path()),
            stdio: null,
        },
    );
    let receiving = console.receive();
    tokio::pin!(running, receiving);
    let mut master = None;
    let result = loop {
        tokio::select! {
            r = &mut running => break r,
            m = &mut receiving, if master.is_none() => master = Some(m),
        }
    };
    result?;
    let master = match master {
        Some(m) => m,
        None => tokio::time::timeout(CONSOLE_TIMEOUT, receiving)
            .await
            .map_err(|_| TaskError::Precondition("runtime did not send the console".into()))?,
    }
    .map_err(io_err("receive console"))?;
    ProcessIo::attach_console(master, stdin, stdout).map_err(io_err("attach console"))
}

async fn run_launch(
    runtime: &Runtime,
    id: &str,
    bundle: &Path,
    what: &Launch<'_>,
    opts: SpawnOpts<'_>,
) -> Result<(), TaskError> {
    match what {
        Launch::Create => runtime.create(id, bundle, opts).await.map_err(rt("create")),
        Launch::Exec(file) => runtime.exec(id, file, opts).await.map_err(rt("exec")),
    }
}

fn read_pid(path: &Path) -> Result<u32, TaskError> {
    let text = std::fs::read_to_string(path).map_err(io_err(format!("read {}", path.display())))?;
    text.trim()
        .parse::<u32>()
        .map_err(|e| TaskError::Invalid(format!("pid file {}: {e}", path.display())))
}

fn validate_exec_id(exec_id: &str) -> Result<(), TaskError> {
    let ok = !exec_id.is_empty()
        && exec_id.len() <= 76
        && exec_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !exec_id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(TaskError::Invalid(format!("invalid exec id {exec_id:?}")))
    }
}

fn display_id(c: &Container, p: &Process) -> String {
    if p.is_init() {
        c.id.clone()
    } else {
        p.exec_id.clone()
    }
}

/// Sends `sig` to `pid`; false when the process is gone.
fn signal(pid: u32, sig: i32) -> bool {
    if pid == 0 {
        return false;
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe { libc::kill(pid as libc::pid_t, sig) == 0 }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_ids() {
        assert!(validate_exec_id("exec-1.a_b").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(validate_exec_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn error_kinds() {
        let k = |e: TaskError| errdefs::Error::from(e).kind;
        assert_eq!(k(TaskError::NotFound("x".into())), errdefs::Kind::NotFound);
        assert_eq!(k(TaskError::Finished), errdefs::Kind::NotFound);
        assert_eq!(
            k(TaskError::AlreadyExists("x".into())),
            errdefs::Kind::AlreadyExists
        );
        assert_eq!(
            k(TaskError::Precondition("x".into())),
            errdefs::Kind::FailedPrecondition
        );
    }
}
