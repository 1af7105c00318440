//! The event worker: encodes each queued [`Event`] as its `containerd.events.*` message and sends
//! it with `containerd.services.events.v1.Events/Publish` on containerd-rs's socket, the
//! namespace in the `containerd-namespace` metadata. In order, retried with backoff while
//! containerd-rs is unreachable; an event that still fails after [`GIVE_UP`] is dropped.

use std::collections::VecDeque;
use std::time::Duration;

use prost::Message;
use proto::events as ev;
use proto::services::events::events_client::EventsClient;
use proto::services::events::PublishRequest;
use tokio::sync::{mpsc, watch};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::events::Event;
use crate::grpc::timestamp;
use crate::stdio::StdioPaths;

/// Queued events beyond this are dropped, oldest first.
const MAX_QUEUE: usize = 4096;
/// How long one event is retried.
const GIVE_UP: Duration = Duration::from_secs(300);

/// The Any for an event: type URL `containerd.events.<Name>`, as containerd's typeurl writes it.
pub(crate) fn encode(event: &Event) -> prost_types::Any {
    let io = |s: &StdioPaths| ev::TaskIo {
        stdin: s.stdin.clone(),
        stdout: s.stdout.clone(),
        stderr: s.stderr.clone(),
        terminal: s.terminal,
    };
    let (name, value) = match event {
        Event::Create {
            container_id,
            bundle,
            rootfs,
            stdio,
            pid,
        } => (
            "TaskCreate",
            ev::TaskCreate {
                container_id: container_id.clone(),
                bundle: bundle.clone(),
                rootfs: rootfs
                    .iter()
                    .map(|m| proto::types::Mount {
                        r#type: m.kind.clone(),
                        source: m.source.clone(),
                        target: m.target.clone(),
                        options: m.options.clone(),
                    })
                    .collect(),
                io: Some(io(stdio)),
                checkpoint: String::new(),
                pid: *pid,
            }
            .encode_to_vec(),
        ),
        Event::Start { container_id, pid } => (
            "TaskStart",
            ev::TaskStart {
                container_id: container_id.clone(),
                pid: *pid,
            }
            .encode_to_vec(),
        ),
        Event::Exit {
            container_id,
            id,
            pid,
            exit_status,
            exited_at,
        } => (
            "TaskExit",
            ev::TaskExit {
                container_id: container_id.clone(),
                id: id.clone(),
                pid: *pid,
                exit_status: *exit_status,
                exited_at: Some(timestamp(*exited_at)),
            }
            .encode_to_vec(),
        ),
        Event::Delete {
            container_id,
            id,
            pid,
            exit_status,
            exited_at,
        } => (
            "TaskDelete",
            ev::TaskDelete {
                container_id: container_id.clone(),
                id: id.clone(),
                pid: *pid,
                exit_status: *exit_status,
                exited_at: Some(timestamp(*exited_at)),
            }
            .encode_to_vec(),
        ),
        Event::ExecAdded {
            container_id,
            exec_id,
        } => (
            "TaskExecAdded",
            ev::TaskExecAdded {
                container_id: container_id.clone(),
                exec_id: exec_id.clone(),
            }
            .encode_to_vec(),
        ),
        Event::ExecStarted {
            container_id,
            exec_id,
            pid,
        } => (
            "TaskExecStarted",
            ev::TaskExecStarted {
                container_id: container_id.clone(),
                exec_id: exec_id.clone(),
                pid: *pid,
            }
            .encode_to_vec(),
        ),
        Event::Paused { container_id } => (
            "TaskPaused",
            ev::TaskPaused {
                container_id: container_id.clone(),
            }
            .encode_to_vec(),
        ),
        Event::Resumed { container_id } => (
            "TaskResumed",
            ev::TaskResumed {
                container_id: container_id.clone(),
            }
            .encode_to_vec(),
        ),
        Event::Oom { container_id } => (
            "TaskOOM",
            ev::TaskOom {
                container_id: container_id.clone(),
            }
            .encode_to_vec(),
        ),
    };
    prost_types::Any {
        type_url: format!("containerd.events.{name}"),
        value,
    }
}

fn channel(address: &str) -> Result<Channel, tonic::transport::Error> {
    let path = address
        .strip_prefix("unix://")
        .unwrap_or(address)
        .to_string();
    // The URI is required by tonic but unused: every connection goes to the unix socket.
    Ok(Endpoint::from_static("http://containerd.sock")
        .connect_timeout(Duration::from_secs(2))
        .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                tokio::net::UnixStream::connect(path)
                    .await
                    .map(hyper_util::rt::TokioIo::new)
            }
        })))
}

/// The next queued event; `None` when the queue is closed, or empty once `closing` is set (the
/// daemon is exiting: what was queued before is still sent).
async fn next_event(
    queue: &mut mpsc::UnboundedReceiver<Event>,
    closing: &mut watch::Receiver<bool>,
) -> Option<Event> {
    tokio::select! {
        biased;
        e = queue.recv() => e,
        _ = closing.wait_for(|c| *c) => queue.try_recv().ok(),
    }
}

/// Forwards queued events until the queue closes, or until it is empty after `closing` is set.
pub(crate) async fn forward(
    address: String,
    namespace: String,
    mut queue: mpsc::UnboundedReceiver<Event>,
    mut closing: watch::Receiver<bool>,
) {
    let mut client = match channel(&address) {
        Ok(ch) => EventsClient::new(ch),
        Err(e) => {
            tracing::warn!(cause = %e, %address, "events endpoint; events will not be published");
            while next_event(&mut queue, &mut closing).await.is_some() {}
            return;
        }
    };
    let mut pending: VecDeque<Event> = VecDeque::new();
    loop {
        if pending.is_empty() {
            match next_event(&mut queue, &mut closing).await {
                Some(e) => pending.push_back(e),
                None => return,
            }
        }
        while let Ok(e) = queue.try_recv() {
            pending.push_back(e);
        }
        while pending.len() > MAX_QUEUE {
            pending.pop_front();
        }
        let Some(event) = pending.pop_front() else {
            continue;
        };
        let started = tokio::time::Instant::now();
        let mut backoff = Duration::from_millis(50);
        loop {
            let mut req = tonic::Request::new(PublishRequest {
                topic: event.topic().to_string(),
                event: Some(encode(&event)),
            });
            if let Ok(ns) = namespace.parse() {
                req.metadata_mut().insert("containerd-namespace", ns);
            }
            match client.publish(req).await {
                Ok(_) => {
                    tracing::debug!(topic = event.topic(), "event published");
                    break;
                }
                Err(e) if started.elapsed() < GIVE_UP => {
                    tracing::debug!(cause = %e, topic = event.topic(), "publish failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    tracing::warn!(cause = %e, topic = event.topic(), "event dropped");
                    break;
                }
            }
        }
    }
}
