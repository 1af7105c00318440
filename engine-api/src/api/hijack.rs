//! Hijacked streams (`Upgrade: tcp` → `101 UPGRADED`) for attach and exec start.
use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::containers::qbool;
use crate::daemon::stdio::{frame_header, Frame, Hub};
use crate::daemon::Daemon;
use crate::error::Result;

pub(super) fn stream_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// Options of one hijacked session.
pub(super) struct Session {
    pub hub: Arc<Hub>,
    pub output: Option<mpsc::UnboundedReceiver<Frame>>,
    pub stdin: bool,
    pub tty: bool,
    /// Close the process's stdin when the client closes its side.
    pub close_stdin_on_eof: bool,
    /// Bytes written before the live stream (attach `logs=1`).
    pub preamble: Vec<bytes::Bytes>,
    /// Runs once the client has the `101` head (exec start: the process starts only then,
    /// as with dockerd, so no output can arrive in the same read as the head; clients such as
    /// docker-py read the socket past their HTTP parser's buffer). An error is written into
    /// the stream.
    pub start: Option<futures::future::BoxFuture<'static, Result<()>>>,
}

/// Upgrades the connection (or, without `Upgrade`, streams the output as a plain body).
pub(super) fn hijack(mut req: Request, mut s: Session) -> Response {
    let wants_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"));
    let on_upgrade = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>();
    let ct = stream_type(s.tty);
    match (wants_upgrade, on_upgrade) {
        (true, Some(on_upgrade)) => {
            tokio::spawn(async move {
                match on_upgrade.await {
                    Ok(upgraded) => run_session(TokioIo::new(upgraded), s).await,
                    Err(e) => tracing::debug!(error = %e, "upgrade failed"),
                }
            });
            let mut res = Response::new(Body::empty());
            *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            // dockerd's status line: `HTTP/1.1 101 UPGRADED`.
            res.extensions_mut()
                .insert(hyper::ext::ReasonPhrase::from_static(b"UPGRADED"));
            let h = res.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
            res
        }
        _ => {
            if let Some(start) = s.start.take() {
                // No upgrade: the body is the stream; start first, reporting errors as a status.
                let (tx, rx) = tokio::sync::oneshot::channel();
                tokio::spawn(async move {
                    let _ = tx.send(start.await);
                });
                return plain_after(rx, s, ct);
            }
            let tty = s.tty;
            let pre = futures::stream::iter(s.preamble.into_iter().map(Ok::<_, std::io::Error>));
            let live = futures::stream::unfold(s.output, move |rx| async move {
                let mut rx = rx?;
                let (stream, data) = rx.recv().await?;
                Some((Ok(encode(stream, &data, tty)), Some(rx)))
            });
            let body = Body::from_stream(futures::StreamExt::chain(pre, live));
            ([(header::CONTENT_TYPE, ct)], body).into_response()
        }
    }
}

/// The plain-body stream of a session whose start runs first (its error ends the stream).
fn plain_after(
    started: tokio::sync::oneshot::Receiver<Result<()>>,
    s: Session,
    ct: &'static str,
) -> Response {
    let tty = s.tty;
    let head = futures::stream::once(async move {
        match started.await {
            Ok(Ok(())) => Ok(bytes::Bytes::new()),
            Ok(Err(e)) => Err(std::io::Error::other(e.to_string())),
            Err(_) => Err(std::io::Error::other("exec start was dropped")),
        }
    });
    let pre = futures::stream::iter(s.preamble.into_iter().map(Ok::<_, std::io::Error>));
    let live = futures::stream::unfold(s.output, move |rx| async move {
        let mut rx = rx?;
        let (stream, data) = rx.recv().await?;
        Some((Ok(encode(stream, &data, tty)), Some(rx)))
    });
    let body = Body::from_stream(futures::StreamExt::chain(
        futures::StreamExt::chain(head, pre),
        live,
    ));
    ([(header::CONTENT_TYPE, ct)], body).into_response()
}

fn encode(stream: u8, data: &[u8], tty: bool) -> bytes::Bytes {
    if tty {
        return bytes::Bytes::copy_from_slice(data);
    }
    let mut out = frame_header(stream, data.len()).to_vec();
    out.extend_from_slice(data);
    out.into()
}

/// Waits (up to a minute) until the process's stdin writer exists.
async fn wait_stdin(hub: &Hub) -> bool {
    for _ in 0..3000 {
        if hub.stdin.lock().await.is_some() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

async fn run_session<IO>(io: IO, s: Session)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let hub = s.hub.clone();
    let input = if s.stdin {
        let close = s.close_stdin_on_eof;
        Some(tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        // Attach comes before start: hold the input until the process exists.
                        if !wait_stdin(&hub).await {
                            return;
                        }
                        let mut guard = hub.stdin.lock().await;
                        let Some(w) = guard.as_mut() else { break };
                        if w.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            if close && wait_stdin(&hub).await {
                hub.client_closed_stdin().await;
            }
        }))
    } else {
        None
    };
    if let Some(start) = s.start {
        if let Err(e) = start.await {
            let _ = wr.write_all(format!("{e}\r\n").as_bytes()).await;
            let _ = wr.shutdown().await;
            if let Some(h) = input {
                h.abort();
            }
            return;
        }
    }
    for p in &s.preamble {
        if wr.write_all(p).await.is_err() {
            return;
        }
    }
    if let Some(mut rx) = s.output {
        while let Some((stream, data)) = rx.recv().await {
            if wr.write_all(&encode(stream, &data, s.tty)).await.is_err() {
                break;
            }
        }
    }
    let _ = wr.flush().await;
    let _ = wr.shutdown().await;
    if let Some(h) = input {
        h.abort();
    }
}

/// `POST /containers/{id}/attach`.
pub(super) async fn attach(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Result<Response> {
    let c = d.get(&id)?;
    let rec = c.record();
    let (stdout, stderr) = (qbool(&q, "stdout"), qbool(&q, "stderr"));
    let stream = qbool(&q, "stream");
    let mut preamble = Vec::new();
    if qbool(&q, "logs") {
        let o = crate::daemon::logs::LogOptions {
            stdout,
            stderr,
            ..Default::default()
        };
        let mut rx = d.logs(c.clone(), o);
        while let Some(b) = rx.recv().await {
            preamble.push(b);
        }
    }
    let output = stream.then(|| c.hub.subscribe(stdout, stderr && !rec.config.tty));
    let stdin = qbool(&q, "stdin") && rec.config.open_stdin;
    d.emit_container(&c, "attach");
    Ok(hijack(
        req,
        Session {
            hub: c.hub.clone(),
            output,
            stdin,
            tty: rec.config.tty,
            close_stdin_on_eof: rec.config.stdin_once,
            preamble,
            start: None,
        },
    ))
}
