//! The event worker: encodes each queued [`Event`] as its `containerd.events.*` message and sends
//! it with `containerd.services.events.v1.Events/Publish` on containerd-rs's socket (a unary gRPC
//! call over one HTTP/2 connection, `rpc.rs`), the namespace in the `containerd-namespace`
//! metadata. In order, retried with backoff while
//! containerd-rs is unreachable; an event that still fails after [`GIVE_UP`] is dropped.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use http::header::{HeaderValue, CONTENT_TYPE, TE};
use prost::Message;
use proto::events as ev;
use proto::services::events::PublishRequest;
use tokio::sync::{mpsc, watch};

use crate::events::Event;
use crate::grpc::timestamp;
use crate::rpc::{self, Status};
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

/// The path of PublishRequest's method, on containerd-rs's socket.
const PUBLISH: &str = "http://containerd/containerd.services.events.v1.Events/Publish";
/// How long one attempt (connect, handshake, call) may take.
const ATTEMPT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
enum PublishError {
    #[error("connect {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("http/2: {0}")]
    H2(#[from] h2::Error),
    #[error("bad request: {0}")]
    Request(#[from] http::Error),
    #[error("http status {0}")]
    HttpStatus(http::StatusCode),
    #[error("no grpc-status in the response")]
    NoStatus,
    #[error(transparent)]
    Grpc(#[from] Status),
    #[error("timed out")]
    Timeout,
}

/// An HTTP/2 connection to containerd-rs; its I/O runs in a task of its own.
async fn connect(address: &str) -> Result<SendRequest<Bytes>, PublishError> {
    let path = address.strip_prefix("unix://").unwrap_or(address);
    let io = tokio::net::UnixStream::connect(path)
        .await
        .map_err(|source| PublishError::Connect {
            path: path.to_string(),
            source,
        })?;
    let (send, connection) = h2::client::handshake(io).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(cause = %e, "events connection closed");
        }
    });
    Ok(send)
}

/// One `Events/Publish` call on `send`.
async fn publish(
    send: &SendRequest<Bytes>,
    namespace: &HeaderValue,
    event: &Event,
) -> Result<(), PublishError> {
    let request = http::Request::post(PUBLISH)
        .header(CONTENT_TYPE, rpc::GRPC)
        .header(TE, "trailers")
        .header("containerd-namespace", namespace)
        .body(())?;
    let message = rpc::frame(&PublishRequest {
        topic: event.topic().to_string(),
        event: Some(encode(event)),
    });
    let mut send = send.clone().ready().await?;
    let (response, mut body) = send.send_request(request, false)?;
    body.send_data(message, true)?;
    let (head, mut body) = response.await?.into_parts();
    if head.status != http::StatusCode::OK {
        return Err(PublishError::HttpStatus(head.status));
    }
    // A trailers-only response carries its status in the headers.
    let status = match Status::from_headers(&head.headers) {
        Some(status) => status,
        None => {
            while let Some(chunk) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk?.len());
            }
            let trailers = body.trailers().await?.unwrap_or_default();
            Status::from_headers(&trailers).ok_or(PublishError::NoStatus)?
        }
    };
    if status.code != rpc::code::OK {
        return Err(status.into());
    }
    Ok(())
}

/// Connects when there is no connection, then publishes, within [`ATTEMPT`]. A failed attempt
/// drops the connection: the next one starts afresh.
async fn attempt(
    conn: &mut Option<SendRequest<Bytes>>,
    address: &str,
    namespace: &HeaderValue,
    event: &Event,
) -> Result<(), PublishError> {
    let result = tokio::time::timeout(ATTEMPT, async {
        let send = match conn {
            Some(send) => send.clone(),
            None => conn.insert(connect(address).await?).clone(),
        };
        publish(&send, namespace, event).await
    })
    .await
    .unwrap_or(Err(PublishError::Timeout));
    if result.is_err() {
        *conn = None;
    }
    result
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
    let namespace = match HeaderValue::from_str(&namespace) {
        Ok(ns) => ns,
        Err(e) => {
            tracing::warn!(cause = %e, %namespace, "namespace; events will not be published");
            while next_event(&mut queue, &mut closing).await.is_some() {}
            return;
        }
    };
    let mut conn = None;
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
            match attempt(&mut conn, &address, &namespace, &event).await {
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
