//! Task events, queued without blocking the request that caused them and forwarded to
//! containerd-rs's `containerd.services.events.v1.Events/Publish` by a background worker
//! (see `publish.rs`), retried while containerd-rs is away.

use std::time::SystemTime;

use tokio::sync::mpsc;

use crate::mount::MountSpec;
use crate::stdio::StdioPaths;

/// The events the shim publishes (containerd.events.Task*).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Create {
        container_id: String,
        bundle: String,
        rootfs: Vec<MountSpec>,
        stdio: StdioPaths,
        pid: u32,
    },
    Start {
        container_id: String,
        pid: u32,
    },
    /// `id` is the container id for the init, the exec id for an exec.
    Exit {
        container_id: String,
        id: String,
        pid: u32,
        exit_status: u32,
        exited_at: SystemTime,
    },
    Delete {
        container_id: String,
        id: String,
        pid: u32,
        exit_status: u32,
        exited_at: SystemTime,
    },
    ExecAdded {
        container_id: String,
        exec_id: String,
    },
    ExecStarted {
        container_id: String,
        exec_id: String,
        pid: u32,
    },
    Paused {
        container_id: String,
    },
    Resumed {
        container_id: String,
    },
    Oom {
        container_id: String,
    },
}

impl Event {
    /// The topic containerd uses for this event.
    pub fn topic(&self) -> &'static str {
        match self {
            Event::Create { .. } => "/tasks/create",
            Event::Start { .. } => "/tasks/start",
            Event::Exit { .. } => "/tasks/exit",
            Event::Delete { .. } => "/tasks/delete",
            Event::ExecAdded { .. } => "/tasks/exec-added",
            Event::ExecStarted { .. } => "/tasks/exec-started",
            Event::Paused { .. } => "/tasks/paused",
            Event::Resumed { .. } => "/tasks/resumed",
            Event::Oom { .. } => "/tasks/oom",
        }
    }
}

/// The sending side: never blocks, never fails the caller.
#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::UnboundedSender<Event>,
}

impl Publisher {
    pub fn channel() -> (Publisher, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Publisher { tx }, rx)
    }

    pub fn publish(&self, event: Event) {
        tracing::debug!(topic = event.topic(), "queue event");
        if self.tx.send(event).is_err() {
            tracing::debug!("event worker gone; event dropped");
        }
    }
}
