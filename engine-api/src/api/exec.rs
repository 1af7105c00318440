//! `/containers/{id}/exec` and `/exec/{id}/...` handlers.
use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::hijack::{hijack, Session};
use crate::daemon::{Daemon, ExecConfig};
use crate::error::{ApiError, Result};

pub(super) async fn create(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let cfg: ExecConfig = super::containers::json_body(&body)?;
    let c = d.get(&id)?;
    let exec_id = d.exec_create(&c, cfg)?;
    Ok((StatusCode::CREATED, Json(json!({"Id": exec_id}))).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: bool,
    tty: bool,
}

pub(super) async fn start(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response> {
    let e = d.exec_get(&id)?;
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let b: StartBody = super::containers::json_body(&bytes)?;
    let req = Request::from_parts(parts, axum::body::Body::empty());
    if b.detach {
        d.exec_start(&e).await?;
        return Ok(StatusCode::OK.into_response());
    }
    let output = e.hub.subscribe(
        e.config.attach_stdout,
        e.config.attach_stderr && !e.config.tty,
    );
    let starter = {
        let (d, e) = (d.clone(), e.clone());
        Box::pin(async move { d.exec_start(&e).await }) as futures::future::BoxFuture<'static, _>
    };
    let mut done = e.done.subscribe();
    // The session ends with the output; keep the exec alive until then.
    tokio::spawn(async move {
        let _ = done.wait_for(|d| *d).await;
    });
    Ok(hijack(
        req,
        Session {
            hub: e.hub.clone(),
            output: Some(output),
            stdin: e.config.attach_stdin,
            tty: e.config.tty || b.tty,
            close_stdin_on_eof: true,
            preamble: Vec::new(),
            start: Some(starter),
        },
    ))
}

pub(super) async fn inspect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let e = d.exec_get(&id)?;
    Ok(Json(d.exec_inspect(&e)))
}

pub(super) async fn resize(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode> {
    let e = d.exec_get(&id)?;
    let h = q.get("h").and_then(|v| v.parse().ok()).unwrap_or(0);
    let w = q.get("w").and_then(|v| v.parse().ok()).unwrap_or(0);
    d.cd.resize(&e.container_id, &e.id, w, h).await?;
    Ok(StatusCode::OK)
}
