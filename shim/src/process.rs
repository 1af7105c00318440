//! One process of the task: the init or an exec, with its status and exit.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::reaper::Exit;
use crate::stdio::{ProcessIo, StdioPaths};

/// The lifecycle status, as containerd.v1.types.Status names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Stopped,
    Paused,
}

/// A process's state as State and Delete report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessState {
    pub exec_id: String,
    pub pid: u32,
    pub status: Status,
    pub stdio: StdioPaths,
    pub exit: Option<Exit>,
}

/// The init (exec_id "") or one exec.
pub struct Process {
    pub exec_id: String,
    pub stdio: StdioPaths,
    /// The OCI process JSON of an exec (empty for the init).
    pub spec: Vec<u8>,
    pid: AtomicU32,
    status: Mutex<Status>,
    exit: watch::Sender<Option<Exit>>,
    io: Mutex<Option<Arc<ProcessIo>>>,
    /// Held while the process is being started, so its exit is recorded (and published) only
    /// after the start completed.
    pub lifecycle: tokio::sync::Mutex<()>,
}

impl Process {
    pub fn new(exec_id: &str, stdio: StdioPaths, spec: Vec<u8>) -> Arc<Self> {
        Arc::new(Self {
            exec_id: exec_id.to_string(),
            stdio,
            spec,
            pid: AtomicU32::new(0),
            status: Mutex::new(Status::Created),
            exit: watch::channel(None).0,
            io: Mutex::new(None),
            lifecycle: tokio::sync::Mutex::new(()),
        })
    }

    pub fn is_init(&self) -> bool {
        self.exec_id.is_empty()
    }

    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::SeqCst)
    }

    pub fn set_pid(&self, pid: u32) {
        self.pid.store(pid, Ordering::SeqCst);
    }

    pub fn status(&self) -> Status {
        *lock(&self.status)
    }

    /// Moves `from` → `to`; returns false (and changes nothing) when the status is not `from`.
    pub fn transition(&self, from: Status, to: Status) -> bool {
        let mut s = lock(&self.status);
        if *s == from {
            *s = to;
            true
        } else {
            false
        }
    }

    pub fn set_io(&self, io: ProcessIo) {
        *lock(&self.io) = Some(Arc::new(io));
    }

    pub fn io(&self) -> Option<Arc<ProcessIo>> {
        lock(&self.io).clone()
    }

    pub fn exit(&self) -> Option<Exit> {
        *self.exit.borrow()
    }

    /// Records the exit: status Stopped, waiters released.
    pub fn set_exited(&self, exit: Exit) {
        *lock(&self.status) = Status::Stopped;
        self.exit.send_replace(Some(exit));
    }

    /// Blocks until the process has exited.
    pub async fn wait(&self) -> Exit {
        let mut rx = self.exit.subscribe();
        let exit = rx.wait_for(Option::is_some).await.map(|e| *e);
        match exit {
            Ok(Some(exit)) => exit,
            Ok(None) => unreachable!("wait_for returned a value that fails its predicate"),
            // The sender lives in `self`, which outlives this call: it cannot be dropped.
            Err(_) => std::future::pending().await,
        }
    }

    pub fn state(&self) -> ProcessState {
        ProcessState {
            exec_id: self.exec_id.clone(),
            pid: self.pid(),
            status: self.status(),
            stdio: self.stdio.clone(),
            exit: self.exit(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_returns_after_exit() {
        let p = Process::new("e1", StdioPaths::default(), Vec::new());
        assert!(p.transition(Status::Created, Status::Running));
        assert!(!p.transition(Status::Created, Status::Running));
        let waiter = {
            let p = p.clone();
            tokio::spawn(async move { p.wait().await })
        };
        tokio::task::yield_now().await;
        let exit = Exit {
            pid: 42,
            status: 3,
            at: std::time::SystemTime::now(),
        };
        p.set_exited(exit);
        assert_eq!(waiter.await.unwrap(), exit);
        assert_eq!(p.status(), Status::Stopped);
        assert_eq!(p.wait().await.status, 3);
    }
}
