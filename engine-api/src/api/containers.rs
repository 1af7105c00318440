//! `/containers/...` handlers.
use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::daemon::logs::{parse_timestamp, LogOptions};
use crate::daemon::stats::{Sample, StatsResponse};
use crate::daemon::{events, Daemon};
use crate::error::{ApiError, Result};
use crate::types::CreateRequest;

pub(super) type Q = Query<HashMap<String, String>>;

/// Docker's boolean query values: `1`, `true`, `True`.
pub(super) fn qbool(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k)
        .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "True" | "TRUE" | "yes"))
}

fn qint(q: &HashMap<String, String>, k: &str) -> Result<Option<i64>> {
    match q.get(k).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::invalid(format!("invalid value for {k}: {v}"))),
    }
}

/// Decodes a JSON body; malformed JSON or wrong types are 400.
pub(super) fn json_body<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> Result<T> {
    if body.is_empty() {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("invalid JSON: {e}")))
}

pub(super) async fn create(
    State(d): State<Arc<Daemon>>,
    Query(q): Q,
    body: Bytes,
) -> Result<Response> {
    if body.is_empty() {
        return Err(ApiError::invalid("invalid JSON: empty body"));
    }
    let req: CreateRequest = json_body(&body)?;
    let (id, warnings) = d.create(q.get("name").map(String::as_str), req).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": id, "Warnings": warnings})),
    )
        .into_response())
}

pub(super) async fn list(
    State(d): State<Arc<Daemon>>,
    Query(q): Q,
) -> Result<Json<Vec<crate::daemon::ListEntry>>> {
    let filters =
        events::parse_filters(q.get("filters").map(String::as_str)).map_err(ApiError::invalid)?;
    let limit = qint(&q, "limit")?.filter(|l| *l > 0).map(|l| l as usize);
    let all = qbool(&q, "all") || limit.is_some();
    Ok(Json(
        d.list_entries(all, limit, qbool(&q, "size"), &filters)
            .await?,
    ))
}

pub(super) async fn inspect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>> {
    let c = d.get(&id)?;
    Ok(Json(d.inspect(&c, qbool(&q, "size")).await?))
}

pub(super) async fn start(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let c = d.get(&id)?;
    Ok(if d.start(&c).await? {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    })
}

pub(super) async fn stop(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<StatusCode> {
    let c = d.get(&id)?;
    let stopped = d
        .stop(&c, qint(&q, "t")?, q.get("signal").map(String::as_str))
        .await?;
    Ok(if stopped {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    })
}

pub(super) async fn restart(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<StatusCode> {
    let c = d.get(&id)?;
    d.restart(&c, qint(&q, "t")?, q.get("signal").map(String::as_str))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn kill(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<StatusCode> {
    let c = d.get(&id)?;
    d.kill(&c, q.get("signal").map(String::as_str)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn remove(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<StatusCode> {
    let c = d.get(&id)?;
    d.remove(&c, qbool(&q, "force"), qbool(&q, "v")).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends the headers at once; the body comes when the condition is met.
pub(super) async fn wait(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Response> {
    let c = d.get(&id)?;
    let condition = q.get("condition").cloned().unwrap_or_default();
    let mut rx = c.gen.subscribe();
    let now = rx.borrow_and_update().clone();
    let running = c.is_running();
    let fut = async move {
        let g = match condition.as_str() {
            "" | "not-running" if !running => now,
            "" | "not-running" | "next-exit" => rx
                .wait_for(|g| g.exits > now.exits || g.removed)
                .await
                .map(|g| g.clone())
                .unwrap_or(now),
            "removed" => rx
                .wait_for(|g| g.removed)
                .await
                .map(|g| g.clone())
                .unwrap_or(now),
            _ => now,
        };
        let line = format!("{}\n", json!({"StatusCode": g.exit_code, "Error": null}));
        Ok::<_, std::io::Error>(Bytes::from(line))
    };
    match q.get("condition").map(String::as_str) {
        None | Some("" | "not-running" | "next-exit" | "removed") => {}
        Some(other) => return Err(ApiError::invalid(format!("invalid condition: \"{other}\""))),
    }
    let body = Body::from_stream(futures::stream::once(fut));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

pub(super) async fn logs(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Response> {
    let c = d.get(&id)?;
    let o = LogOptions {
        stdout: qbool(&q, "stdout"),
        stderr: qbool(&q, "stderr"),
        follow: qbool(&q, "follow"),
        timestamps: qbool(&q, "timestamps"),
        tail: q.get("tail").and_then(|t| t.parse::<usize>().ok()),
        since: q
            .get("since")
            .and_then(|s| parse_timestamp(s))
            .filter(|s| *s > 0),
        until: q
            .get("until")
            .and_then(|s| parse_timestamp(s))
            .filter(|s| *s > 0),
    };
    if !o.stdout && !o.stderr {
        return Err(ApiError::invalid(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let tty = c.record().config.tty;
    let rx = d.logs(c, o);
    let stream = futures::StreamExt::map(
        tokio_stream::wrappers::ReceiverStream::new(rx),
        Ok::<_, std::io::Error>,
    );
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Ok(([(header::CONTENT_TYPE, ct)], Body::from_stream(stream)).into_response())
}

pub(super) async fn resize(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<StatusCode> {
    let c = d.get(&id)?;
    let h = qint(&q, "h")?.unwrap_or(0).max(0) as u32;
    let w = qint(&q, "w")?.unwrap_or(0).max(0) as u32;
    if !c.is_running() {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            c.id
        )));
    }
    d.cd.resize(&c.id, "", w, h).await?;
    Ok(StatusCode::OK)
}

pub(super) async fn rename(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<StatusCode> {
    let c = d.get(&id)?;
    let new = q.get("name").cloned().unwrap_or_default();
    d.rename(&c, &new).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn pause(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let c = d.get(&id)?;
    d.pause(&c, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn unpause(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let c = d.get(&id)?;
    d.pause(&c, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn prune(State(d): State<Arc<Daemon>>, Query(q): Q) -> Result<Json<Value>> {
    let filters =
        events::parse_filters(q.get("filters").map(String::as_str)).map_err(ApiError::invalid)?;
    let mut f = filters.clone();
    f.insert(
        "status".to_string(),
        vec![
            "exited".to_string(),
            "created".to_string(),
            "dead".to_string(),
        ],
    );
    let list = d.list(true, None, true, &f).await?;
    let mut deleted = Vec::new();
    let mut space = 0i64;
    for c in list {
        let id = c["Id"].as_str().unwrap_or_default().to_string();
        if let Ok(ctr) = d.get(&id) {
            if ctr.is_running() {
                continue;
            }
            if d.remove(&ctr, false, false).await.is_ok() {
                space += c["SizeRw"].as_i64().unwrap_or(0);
                deleted.push(id);
            }
        }
    }
    d.events.emit(
        "container",
        "prune",
        "",
        [("reclaimed".to_string(), space.to_string())]
            .into_iter()
            .collect(),
    );
    Ok(Json(
        json!({"ContainersDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }, "SpaceReclaimed": space}),
    ))
}

/// `GET /containers/{id}/top`: `ps` on the host, restricted to the container's pids.
pub(super) async fn top(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Json<Value>> {
    let c = d.get(&id)?;
    if !c.is_running() {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            c.id
        )));
    }
    let pids = d.cd.pids(&c.id).await?;
    let args = q
        .get("ps_args")
        .cloned()
        .unwrap_or_else(|| "-ef".to_string());
    let out = tokio::process::Command::new("ps")
        .args(args.split_whitespace())
        .output()
        .await
        .map_err(|e| ApiError::io("run ps", e))?;
    if !out.status.success() {
        return Err(ApiError::internal(format!(
            "Error running ps: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let titles: Vec<&str> = header.split_whitespace().collect();
    let pid_col = titles
        .iter()
        .position(|t| *t == "PID")
        .ok_or_else(|| ApiError::invalid("Couldn't find PID field in ps output"))?;
    let mut procs = Vec::new();
    for l in lines {
        let fields: Vec<&str> = l.split_whitespace().collect();
        let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        let n = titles.len();
        let mut row: Vec<String> = fields.iter().take(n - 1).map(|s| s.to_string()).collect();
        row.push(
            fields
                .iter()
                .skip(n - 1)
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
        );
        procs.push(row);
    }
    Ok(Json(json!({"Titles": titles, "Processes": procs})))
}

/// `GET /containers/{id}/stats`: a reading a second (`stream`, the default), or one reading:
/// with `stream=false` a second after a first one (so that `precpu_stats` means something), with
/// `one-shot` at once. The cgroup counters come from containerd's Tasks.Metrics
/// ([`crate::daemon::stats`]). A container that is not running answers dockerd's empty reading.
pub(super) async fn stats(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Response> {
    let c = d.get(&id)?;
    // dockerd's BoolValueOrDefault: "False" (docker-py) is false too.
    let stream = q
        .get("stream")
        .map(|v| v.trim().to_ascii_lowercase())
        .is_none_or(|v| v.is_empty() || !matches!(v.as_str(), "0" | "no" | "false" | "none"));
    let one_shot = qbool(&q, "one-shot");
    if stream && one_shot {
        return Err(ApiError::invalid(
            "cannot have stream=true and one-shot=true",
        ));
    }
    let rec = c.record();
    let (name, cid) = (rec.name, rec.id);
    let json_line = move |cur: &Sample, prev: &Sample| {
        let mut line = serde_json::to_vec(&StatsResponse::new(&name, &cid, cur, prev))
            .map_err(std::io::Error::other)?;
        line.push(b'\n');
        Ok::<_, std::io::Error>(Bytes::from(line))
    };
    // The first reading is taken before the answer starts: a failing containerd call is the
    // request's error status.
    let first = d.stats_sample(&c).await?;
    let state = c.state();
    if !stream && (!state.running || state.restarting) {
        // dockerd answers a container that is not running at once, with no second reading.
        let empty = Sample::empty();
        let body = Body::from_stream(futures::stream::once(
            async move { json_line(&empty, &empty) },
        ));
        return Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<std::result::Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut prev = first;
        if !one_shot {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        loop {
            let cur = match d.stats_sample(&c).await {
                Ok(s) => s,
                Err(e) => {
                    // dockerd's collector: log it and publish an empty reading.
                    tracing::warn!(container_id = %c.id, error = %e, "container stats");
                    Sample::empty()
                }
            };
            let line = json_line(&cur, &prev);
            if tx.send(line).await.is_err() || !stream {
                return;
            }
            prev = cur;
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `POST /containers/{id}/update`.
pub(super) async fn update(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>> {
    let u: crate::daemon::UpdateConfig = json_body(&body)?;
    let c = d.get(&id)?;
    let warnings = d.update(&c, u).await?;
    Ok(Json(json!({"Warnings": warnings})))
}
