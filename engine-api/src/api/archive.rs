//! `/containers/{id}/archive` (HEAD stat, GET, PUT), `/export` and `/changes`.
use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;

use super::containers::qbool;
use crate::daemon::Daemon;
use crate::error::{ApiError, Result};

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

fn path_query(q: &HashMap<String, String>) -> Result<String> {
    match q.get("path").filter(|p| !p.is_empty()) {
        Some(p) => Ok(p.clone()),
        None => Err(ApiError::invalid("Path cannot be empty")),
    }
}

fn stat_header(stat: &Value) -> Result<HeaderValue> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(stat.to_string());
    HeaderValue::from_str(&b64).map_err(|e| ApiError::internal(e.to_string()))
}

/// A `std::io::Write` that feeds a streaming body.
struct ChannelWriter(mpsc::Sender<std::io::Result<Bytes>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A `std::io::Read` over a request body forwarded by an async task.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// Streams a tar produced by `f` on a blocking thread.
fn tar_body(
    f: impl FnOnce(ChannelWriter) -> Result<()> + Send + 'static,
    headers: Vec<(&'static str, HeaderValue)>,
) -> Response {
    let (tx, rx) = mpsc::channel(16);
    let err_tx = tx.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = f(ChannelWriter(tx)) {
            tracing::warn!(error = %e, "tar stream");
            let _ = err_tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let mut res =
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    for (k, v) in headers {
        res.headers_mut().insert(k, v);
    }
    res
}

/// `HEAD /containers/{id}/archive`: the stat header only.
pub(super) async fn head(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let c = d.get(&id)?;
    let path = path_query(&q)?;
    let (_, _, stat) = d.path_stat(&c, &path).await?;
    Ok((StatusCode::OK, [(STAT_HEADER, stat_header(&stat)?)]).into_response())
}

/// `GET /containers/{id}/archive`: a tar of the path, entries named after its last element.
pub(super) async fn get(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let c = d.get(&id)?;
    let path = path_query(&q)?;
    let (view, rel, stat) = d.path_stat(&c, &path).await?;
    let name = stat["name"].as_str().unwrap_or(".").to_string();
    let name = if name == "/" { String::new() } else { name };
    let hv = stat_header(&stat)?;
    let d2 = d.clone();
    Ok(tar_body(
        move |w| d2.write_tar(&c, &view, &rel, &name, w),
        vec![(STAT_HEADER, hv)],
    ))
}

/// `PUT /containers/{id}/archive`: extracts the tar body into the directory `path`.
pub(super) async fn put(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Result<StatusCode> {
    let c = d.get(&id)?;
    let path = path_query(&q)?;
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let mut body = req.into_body().into_data_stream();
    tokio::spawn(async move {
        while let Some(Ok(chunk)) = body.next().await {
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
    });
    let reader = ChannelReader {
        rx,
        cur: Bytes::new(),
    };
    d.put_archive(
        &c,
        &path,
        reader,
        qbool(&q, "noOverwriteDirNonDir"),
        qbool(&q, "copyUIDGID"),
    )
    .await?;
    Ok(StatusCode::OK)
}

/// `GET /containers/{id}/export`: the whole root filesystem (image + writable layer).
pub(super) async fn export(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<Response> {
    let c = d.get(&id)?;
    let view = d.fs_view(&c, false).await?;
    d.emit_container(&c, "export");
    let d2 = d.clone();
    Ok(tar_body(
        move |w| d2.write_tar(&c, &view, std::path::Path::new(""), "", w),
        Vec::new(),
    ))
}

/// `GET /containers/{id}/changes`.
pub(super) async fn changes(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let c = d.get(&id)?;
    Ok(Json(d.changes(&c).await?))
}
