//! The one place that calls `waitpid`: a SIGCHLD-driven loop that reaps every child of the shim
//! (it is a subreaper, so orphans of the container land here too) and routes each exit to whoever
//! watches that pid.
//!
//! Runtime invocations are spawned through [`Reaper::spawn`], which holds the table lock across
//! fork+exec and registration, so the loop can never reap a runtime child before its watcher
//! exists (and `std`'s own `waitpid` on a failed exec never races with ours).

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::sync::oneshot;

/// Unclaimed exits kept for pids whose watcher is registered late (an exec that exits before its
/// pid file is read). Bounded so that reaped orphans cannot grow the table forever.
const MAX_UNCLAIMED: usize = 1024;

/// The exit of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub pid: i32,
    /// The exit code, or 128 + signal number when killed by a signal (as containerd reports it).
    pub status: u32,
    pub at: SystemTime,
}

#[derive(Default)]
struct Table {
    watchers: HashMap<i32, oneshot::Sender<Exit>>,
    unclaimed: HashMap<i32, Exit>,
}

/// The exit table shared by the reaping loop and everything that waits for a process.
#[derive(Default)]
pub struct Reaper {
    table: Mutex<Table>,
}

impl Reaper {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A poisoned lock only means another thread panicked while holding it; the table is
        // still consistent (every mutation is a single insert/remove).
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Spawns `cmd` and returns the child with a receiver that resolves when it exits.
    /// Never call `wait` on the returned `Child`: the reaper owns its exit status.
    pub fn spawn(&self, cmd: &mut Command) -> std::io::Result<(Child, oneshot::Receiver<Exit>)> {
        let mut table = self.lock();
        let child = cmd.spawn()?;
        let (tx, rx) = oneshot::channel();
        table.watchers.insert(child.id() as i32, tx);
        Ok((child, rx))
    }

    /// Watches `pid`, a process the shim learned about from a pid file. An exit already reaped
    /// at or after `since` is delivered at once.
    pub fn watch(&self, pid: i32, since: SystemTime) -> oneshot::Receiver<Exit> {
        let mut table = self.lock();
        let (tx, rx) = oneshot::channel();
        match table.unclaimed.remove(&pid) {
            Some(exit) if exit.at >= since => {
                let _ = tx.send(exit);
            }
            _ => {
                table.watchers.insert(pid, tx);
            }
        }
        rx
    }

    /// Reaps every child that has exited, without blocking.
    pub fn reap_all(&self) {
        let mut table = self.lock();
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    table.deliver(pid.as_raw(), code as u32);
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    table.deliver(pid.as_raw(), 128 + sig as u32);
                }
                Ok(WaitStatus::StillAlive) => break,
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(Errno::ECHILD) => break,
                Err(err) => {
                    tracing::warn!(cause = %err, "waitpid failed");
                    break;
                }
            }
        }
    }

    /// Runs the reaping loop forever, woken by SIGCHLD. Must run inside a tokio runtime.
    pub async fn run(self: Arc<Self>) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut sigchld = signal(SignalKind::child())?;
        loop {
            self.reap_all();
            if sigchld.recv().await.is_none() {
                return Ok(());
            }
        }
    }
}

impl Table {
    fn deliver(&mut self, pid: i32, status: u32) {
        let exit = Exit {
            pid,
            status,
            at: SystemTime::now(),
        };
        tracing::debug!(pid, status, "reaped");
        if let Some(tx) = self.watchers.remove(&pid) {
            if tx.send(exit).is_ok() {
                return;
            }
        }
        if self.unclaimed.len() >= MAX_UNCLAIMED {
            if let Some(oldest) = self.unclaimed.values().min_by_key(|e| e.at).map(|e| e.pid) {
                self.unclaimed.remove(&oldest);
            }
        }
        self.unclaimed.insert(pid, exit);
    }
}
