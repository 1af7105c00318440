//! `/images/...` handlers. Names may contain `/` and `:`, so `/images/*rest` is split here.
use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::containers::qbool;
use crate::daemon::{events, Daemon};
use crate::error::{ApiError, Result};
use crate::images::Image;
use crate::reference;

type Q = Query<HashMap<String, String>>;

fn summary(i: &Image, containers: i64) -> Value {
    let tags: Vec<String> = i.names.iter().map(|n| reference::familiar(n)).collect();
    json!({
        "Id": i.meta.id,
        "ParentId": "",
        "RepoTags": tags,
        "RepoDigests": [],
        "Created": i.meta.created_unix(),
        "Size": i.meta.size,
        "SharedSize": -1,
        "VirtualSize": i.meta.size,
        "Labels": i.meta.config["config"]["Labels"].as_object().cloned().unwrap_or_default(),
        "Containers": containers,
    })
}

pub(super) async fn list(State(d): State<Arc<Daemon>>, Query(q): Q) -> Result<Json<Vec<Value>>> {
    let filters =
        events::parse_filters(q.get("filters").map(String::as_str)).map_err(ApiError::invalid)?;
    for k in filters.keys() {
        if !matches!(
            k.as_str(),
            "dangling" | "reference" | "label" | "before" | "since" | "until"
        ) {
            return Err(ApiError::invalid(format!("invalid filter '{k}'")));
        }
    }
    let images = d.images.list().await?;
    // before=/since= name an image; the others are compared with its creation time.
    let mut bounds = Vec::new();
    for (k, vals) in &filters {
        if k == "before" || k == "since" {
            for v in vals {
                let i = d.images.get(v).await?;
                bounds.push((k.as_str() == "before", i.meta.created_unix()));
            }
        }
    }
    let until = match filters.get("until").and_then(|v| v.first()) {
        Some(u) => Some(
            crate::daemon::logs::parse_timestamp(u)
                .map(|n| (n / 1_000_000_000) as i64)
                .ok_or_else(|| ApiError::invalid(format!("invalid until filter: {u}")))?,
        ),
        None => None,
    };
    let mut out = Vec::new();
    for mut i in images {
        if let Some(dang) = filters.get("dangling").and_then(|v| v.first()) {
            let want = match dang.as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                other => {
                    return Err(ApiError::invalid(format!(
                        "invalid filter 'dangling={other}'"
                    )))
                }
            };
            if want != i.names.is_empty() {
                continue;
            }
        }
        if let Some(refs) = filters.get("reference").filter(|r| !r.is_empty()) {
            // As dockerd: only the matching names are listed.
            i.names
                .retain(|n| refs.iter().any(|r| reference_match(r, n)));
            if i.names.is_empty() {
                continue;
            }
        }
        if let Some(labels) = filters.get("label") {
            let il = &i.meta.config["config"]["Labels"];
            let ok = labels.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => il[k].as_str() == Some(v),
                None => !il[l.as_str()].is_null(),
            });
            if !ok {
                continue;
            }
        }
        let created = i.meta.created_unix();
        if bounds.iter().any(|(before, t)| {
            if *before {
                created >= *t
            } else {
                created <= *t
            }
        }) {
            continue;
        }
        if until.is_some_and(|u| created > u) {
            continue;
        }
        out.push(summary(&i, -1));
    }
    Ok(Json(out))
}

/// dockerd's `reference=` match: the familiar name with its tag, or without it, against a
/// `path.Match` pattern.
fn reference_match(pattern: &str, full: &str) -> bool {
    let fam = reference::familiar(full);
    let (repo, _) = reference::split_repo_tag(&fam);
    path_match(pattern.as_bytes(), fam.as_bytes())
        || path_match(pattern.as_bytes(), repo.as_bytes())
}

/// Go's `path.Match` for `*` and `?` (neither matches `/`).
fn path_match(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => {
            let mut i = 0;
            loop {
                if path_match(rest, &s[i..]) {
                    return true;
                }
                if i == s.len() || s[i] == b'/' {
                    return false;
                }
                i += 1;
            }
        }
        Some((b'?', rest)) => {
            matches!(s.split_first(), Some((c, tail)) if *c != b'/' && path_match(rest, tail))
        }
        Some((c, rest)) => {
            matches!(s.split_first(), Some((x, tail)) if x == c && path_match(rest, tail))
        }
    }
}

pub(super) async fn load(State(d): State<Arc<Daemon>>, body: Bytes) -> Result<Response> {
    let loaded = d.images.load(body).await?;
    let mut out = String::new();
    let mut line = |l: String| {
        // dockerd prints the "Loaded image" lines even with quiet=1 (quiet hides progress bars).
        out.push_str(&json!({"stream": format!("{l}\n")}).to_string());
        out.push('\n');
    };
    for l in &loaded {
        if l.names.is_empty() {
            line(format!("Loaded image ID: {}", l.id));
        }
        for n in &l.names {
            line(format!("Loaded image: {n}"));
        }
    }
    for l in &loaded {
        let name = l.names.first().cloned().unwrap_or_else(|| l.id.clone());
        d.events
            .emit("image", "load", &l.id, attrs(&[("name", &name)]));
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

fn attrs(kv: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every value of a repeated query parameter (`changes=...&changes=...`).
fn query_all(uri: &axum::http::Uri, key: &str) -> Vec<String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode(v))
        .collect()
}

/// `repo` (which may carry a tag) plus `tag`, as dockerd combines them; `None` when empty.
fn target_name(q: &HashMap<String, String>) -> Result<Option<String>> {
    let repo = q.get("repo").cloned().unwrap_or_default();
    if repo.is_empty() {
        return Ok(None);
    }
    let name = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo,
    };
    let r = reference::parse(&name).map_err(|e| ApiError::invalid(e.to_string()))?;
    if r.digest.is_some() {
        return Err(ApiError::invalid(
            "refusing to create a tag with a digest reference",
        ));
    }
    Ok(Some(r.full()))
}

/// `POST /images/create`: `fromSrc` imports the body (docker import); `fromImage` would pull.
pub(super) async fn create(
    State(d): State<Arc<Daemon>>,
    Query(q): Q,
    uri: axum::http::Uri,
    body: Bytes,
) -> Result<Response> {
    let from = q.get("fromImage").cloned().unwrap_or_default();
    let src = q.get("fromSrc").cloned().unwrap_or_default();
    if from.is_empty() && src.is_empty() {
        return Err(ApiError::invalid("fromImage or fromSrc is required"));
    }
    if !from.is_empty() {
        return Err(ApiError::not_found(format!(
            "pull access denied for {from}, repository does not exist or may require 'docker login': registry access is not implemented"
        )));
    }
    if src != "-" {
        return Err(ApiError::invalid(format!(
            "importing from {src} is not supported: send the tar in the request body (fromSrc=-)"
        )));
    }
    let name = target_name(&q)?;
    let message = match q.get("message").filter(|m| !m.is_empty()) {
        Some(m) => m.clone(),
        None => format!("Imported from {src}"),
    };
    let changes = query_all(&uri, "changes");
    let id = d
        .images
        .import(body, name.clone(), &message, &changes)
        .await?;
    let shown = name
        .as_deref()
        .map(reference::familiar)
        .unwrap_or_else(|| id.clone());
    d.events
        .emit("image", "import", &id, attrs(&[("name", &shown)]));
    let out = format!("{}\n", json!({"status": id}));
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=`.
pub(super) async fn commit(
    State(d): State<Arc<Daemon>>,
    Query(q): Q,
    uri: axum::http::Uri,
    body: Bytes,
) -> Result<Response> {
    let name = q.get("container").cloned().unwrap_or_default();
    let c = d.get(&name)?;
    let overrides: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))?
    };
    let pause = match q.get("pause").map(|v| v.to_ascii_lowercase()) {
        None => true,
        Some(v) => !matches!(v.as_str(), "0" | "false" | "no"),
    };
    let req = crate::daemon::CommitRequest {
        name: target_name(&q)?,
        comment: q.get("comment").cloned().unwrap_or_default(),
        author: q.get("author").cloned().unwrap_or_default(),
        changes: query_all(&uri, "changes"),
        pause,
        overrides,
    };
    let id = d.commit(&c, req).await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": id}))).into_response())
}

async fn save_names(d: &Daemon, names: &[String]) -> Result<Response> {
    let mut sel: Vec<(Image, Vec<String>)> = Vec::new();
    for n in names {
        let img = d.images.get(n).await?;
        // By name: that name goes in the tar; by ID: no name (as dockerd).
        let tags = match reference::parse(n) {
            Ok(r) if img.names.contains(&r.full()) && !n.starts_with("sha256:") => vec![r.full()],
            _ => Vec::new(),
        };
        match sel.iter_mut().find(|(i, _)| i.meta.id == img.meta.id) {
            Some((_, t)) => {
                for x in tags {
                    if !t.contains(&x) {
                        t.push(x);
                    }
                }
            }
            None => sel.push((img, tags)),
        }
    }
    let tar = d.images.save(&sel).await?;
    for (img, tags) in &sel {
        let name = tags
            .first()
            .map(|t| reference::familiar(t))
            .unwrap_or_else(|| img.meta.id.clone());
        d.events
            .emit("image", "save", &img.meta.id, attrs(&[("name", &name)]));
    }
    Ok(([(header::CONTENT_TYPE, "application/x-tar")], tar).into_response())
}

pub(super) async fn save_many(
    State(d): State<Arc<Daemon>>,
    uri: axum::http::Uri,
) -> Result<Response> {
    let names: Vec<String> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "names")
        .map(|(_, v)| percent_decode(v))
        .collect();
    save_names(&d, &names).await
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) async fn prune(State(d): State<Arc<Daemon>>, Query(q): Q) -> Result<Json<Value>> {
    let filters =
        events::parse_filters(q.get("filters").map(String::as_str)).map_err(ApiError::invalid)?;
    let all = filters
        .get("dangling")
        .and_then(|v| v.first())
        .is_some_and(|v| v == "false" || v == "0");
    let used: Vec<String> = d
        .list(true, None, false, &Default::default())
        .await?
        .iter()
        .filter_map(|c| c["ImageID"].as_str().map(str::to_string))
        .collect();
    let mut deleted = Vec::new();
    let mut space = 0;
    for i in d.images.list().await? {
        if used.contains(&i.meta.id) || (!all && !i.names.is_empty()) {
            continue;
        }
        for n in &i.names {
            deleted.push(json!({"Untagged": reference::familiar(n)}));
            let name = reference::familiar(n);
            d.events
                .emit("image", "untag", &i.meta.id, attrs(&[("name", &name)]));
        }
        d.images.delete_all(&i).await?;
        deleted.push(json!({"Deleted": i.meta.id}));
        d.events.emit(
            "image",
            "delete",
            &i.meta.id,
            attrs(&[("name", &i.meta.id)]),
        );
        space += i.meta.size;
    }
    d.events.emit(
        "image",
        "prune",
        "",
        attrs(&[("reclaimed", &space.to_string())]),
    );
    Ok(Json(
        json!({"ImagesDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }, "SpaceReclaimed": space}),
    ))
}

/// `/images/{name}/json|history|tag|get|push` and `DELETE /images/{name}`.
pub(super) async fn dispatch(
    State(d): State<Arc<Daemon>>,
    method: Method,
    Path(rest): Path<String>,
    Query(q): Q,
) -> Result<Response> {
    let rest = rest.trim_start_matches('/');
    if method == Method::DELETE {
        return remove(&d, rest, qbool(&q, "force")).await;
    }
    let (name, action) = match rest.rsplit_once('/') {
        Some((n, a)) => (n, a),
        None => return Err(ApiError::not_found("page not found")),
    };
    match (method.as_str(), action) {
        ("GET", "json") => {
            let i = d.images.get(name).await?;
            Ok(Json(inspect(&i)).into_response())
        }
        ("GET", "history") => {
            let i = d.images.get(name).await?;
            Ok(Json(history(&i)).into_response())
        }
        ("GET", "get") => save_names(&d, &[name.to_string()]).await,
        ("POST", "tag") => {
            let i = d.images.get(name).await?;
            let repo = q.get("repo").cloned().unwrap_or_default();
            if repo.is_empty() {
                return Err(ApiError::invalid(
                    "repository name must have at least one component",
                ));
            }
            let new = match q.get("tag").filter(|t| !t.is_empty()) {
                Some(t) => format!("{repo}:{t}"),
                None => repo,
            };
            d.images.tag(&i, &new).await?;
            let r = reference::parse(&new).map_err(|e| ApiError::invalid(e.to_string()))?;
            d.events.emit(
                "image",
                "tag",
                &i.meta.id,
                [("name".to_string(), reference::familiar(&r.full()))]
                    .into_iter()
                    .collect(),
            );
            Ok(StatusCode::CREATED.into_response())
        }
        ("POST", "push") => Err(ApiError::unimplemented(
            "registry access is not implemented",
        )),
        _ => Err(ApiError::not_found("page not found")),
    }
}

fn inspect(i: &Image) -> Value {
    let c = &i.meta.config;
    json!({
        "Id": i.meta.id,
        "RepoTags": i.names.iter().map(|n| reference::familiar(n)).collect::<Vec<_>>(),
        "RepoDigests": [],
        "Parent": "",
        "Comment": c["comment"].as_str().unwrap_or_default(),
        "Created": i.meta.created(),
        "DockerVersion": c["docker_version"].as_str().unwrap_or_default(),
        "Author": c["author"].as_str().unwrap_or_default(),
        "Config": c["config"],
        "Architecture": c["architecture"].as_str().unwrap_or("amd64"),
        "Variant": c["variant"],
        "Os": c["os"].as_str().unwrap_or("linux"),
        "Size": i.meta.size,
        "GraphDriver": {"Name": "overlayfs", "Data": null},
        "RootFS": {"Type": "layers", "Layers": i.meta.diff_ids},
        "Metadata": {"LastTagTime": crate::types::ZERO_TIME},
        "Descriptor": {"mediaType": i.meta.manifest.media_type, "digest": i.meta.manifest.digest, "size": i.meta.manifest.size},
    })
}

fn history(i: &Image) -> Value {
    let hist = i.meta.config["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut layer = i.meta.layers.len();
    let mut out = Vec::new();
    for (n, h) in hist.iter().enumerate().rev() {
        let empty = h["empty_layer"].as_bool().unwrap_or(false);
        let size = if empty || layer == 0 {
            0
        } else {
            layer -= 1;
            i.meta.layers[layer].size
        };
        let created = h["created"]
            .as_str()
            .and_then(crate::types::parse_time)
            .map(|t| t.timestamp())
            .unwrap_or(0);
        out.push(json!({
            "Id": if n == hist.len() - 1 { i.meta.id.clone() } else { "<missing>".to_string() },
            "Created": created,
            "CreatedBy": h["created_by"].as_str().unwrap_or_default(),
            "Tags": if n == hist.len() - 1 { json!(i.names.iter().map(|x| reference::familiar(x)).collect::<Vec<_>>()) } else { Value::Null },
            "Size": size,
            "Comment": h["comment"].as_str().unwrap_or_default(),
        }));
    }
    json!(out)
}

async fn remove(d: &Daemon, name: &str, force: bool) -> Result<Response> {
    let img = d.images.get(name).await?;
    let users: Vec<Value> = d
        .list(true, None, false, &Default::default())
        .await?
        .into_iter()
        .filter(|c| c["ImageID"] == img.meta.id.as_str())
        .collect();
    let by_id =
        name.starts_with("sha256:") || img.meta.id.trim_start_matches("sha256:").starts_with(name);
    let mut out = Vec::new();
    let full = reference::parse(name)
        .ok()
        .map(|r| r.full())
        .filter(|f| img.names.contains(f));
    match full {
        Some(full) if !by_id || img.names.len() > 1 => {
            // Removing one name: the image goes only with its last name and no container.
            let last = img.names.len() == 1;
            if last && !users.is_empty() && !force {
                let cid = users[0]["Id"].as_str().unwrap_or_default();
                return Err(ApiError::conflict(format!(
                    "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                    &cid[..12.min(cid.len())],
                    &img.meta.id.trim_start_matches("sha256:")[..12]
                )));
            }
            d.images
                .untag(&img, &full, last && !users.is_empty())
                .await?;
            out.push(json!({"Untagged": reference::familiar(&full)}));
            d.events.emit(
                "image",
                "untag",
                &img.meta.id,
                [("name".to_string(), reference::familiar(&full))]
                    .into_iter()
                    .collect(),
            );
            if last && users.is_empty() {
                d.images.delete_all(&img).await?;
                out.push(json!({"Deleted": img.meta.id}));
                d.events.emit(
                    "image",
                    "delete",
                    &img.meta.id,
                    attrs(&[("name", &img.meta.id)]),
                );
            }
        }
        _ => {
            if !users.is_empty() {
                let cid = users[0]["Id"].as_str().unwrap_or_default();
                let running = users.iter().any(|c| c["State"] == "running");
                if !force || running {
                    return Err(ApiError::conflict(format!(
                        "conflict: unable to delete {} (must be forced) - image is being used by {} container {}",
                        &img.meta.id.trim_start_matches("sha256:")[..12],
                        if running { "running" } else { "stopped" },
                        &cid[..12.min(cid.len())]
                    )));
                }
            }
            if img.names.len() > 1 && !force {
                return Err(ApiError::conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    &img.meta.id.trim_start_matches("sha256:")[..12]
                )));
            }
            for n in &img.names {
                out.push(json!({"Untagged": reference::familiar(n)}));
            }
            d.images.delete_all(&img).await?;
            out.push(json!({"Deleted": img.meta.id}));
            d.events.emit(
                "image",
                "delete",
                &img.meta.id,
                attrs(&[("name", &img.meta.id)]),
            );
        }
    }
    Ok(Json(out).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_filters_match_like_dockerd() {
        let m = |p, n| reference_match(p, n);
        assert!(m("busybox", "docker.io/library/busybox:latest"));
        assert!(m("busybox:latest", "docker.io/library/busybox:latest"));
        assert!(m("busy*", "docker.io/library/busybox:latest"));
        assert!(!m("busybox:1", "docker.io/library/busybox:latest"));
        assert!(m("localhost:5000/*/*", "localhost:5000/team/app:1.0"));
        assert!(!m("localhost:5000/*", "localhost:5000/team/app:1.0"));
        assert!(m("*/app", "docker.io/team/app:1"));
        assert!(m("b?sybox", "docker.io/library/busybox:latest"));
    }
}
