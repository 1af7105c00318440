//! `/_ping`, `/version`, `/info`, `/events`, `/system/df`.
use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{API_VERSION, MIN_API_VERSION};
use crate::daemon::{events, Daemon};
use crate::error::{ApiError, Result};

pub(super) async fn ping(method: Method) -> Response {
    let mut h = HeaderMap::new();
    h.insert("Api-Version", API_VERSION.parse().expect("static header"));
    h.insert("Builder-Version", "1".parse().expect("static header"));
    h.insert(
        "Docker-Experimental",
        "false".parse().expect("static header"),
    );
    h.insert("Ostype", "linux".parse().expect("static header"));
    h.insert("Swarm", "inactive".parse().expect("static header"));
    h.insert(
        header::CACHE_CONTROL,
        "no-cache, no-store, must-revalidate"
            .parse()
            .expect("static header"),
    );
    h.insert(header::PRAGMA, "no-cache".parse().expect("static header"));
    h.insert(
        header::CONTENT_TYPE,
        "text/plain; charset=utf-8".parse().expect("static header"),
    );
    if method == Method::HEAD {
        return (StatusCode::OK, h).into_response();
    }
    (StatusCode::OK, h, "OK").into_response()
}

fn kernel() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(super) async fn version(State(d): State<Arc<Daemon>>) -> Json<Value> {
    let cd_version = d.cd.version().await.unwrap_or_default();
    let v = env!("CARGO_PKG_VERSION");
    Json(json!({
        "Platform": {"Name": "engine-api"},
        "Components": [
            {"Name": "Engine", "Version": v, "Details": {
                "ApiVersion": API_VERSION, "Arch": "amd64", "BuildTime": "", "Experimental": "false",
                "GitCommit": "", "GoVersion": "rust", "KernelVersion": kernel(),
                "MinAPIVersion": MIN_API_VERSION, "Os": "linux"}},
            {"Name": "containerd", "Version": cd_version, "Details": {"GitCommit": ""}},
        ],
        "Version": v,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "rust",
        "Os": "linux",
        "Arch": "amd64",
        "KernelVersion": kernel(),
        "BuildTime": "",
    }))
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "linux".to_string())
}

pub(super) async fn info(State(d): State<Arc<Daemon>>) -> Result<Json<Value>> {
    let list = d.list(true, None, false, &Default::default()).await?;
    let count = |s: &str| list.iter().filter(|c| c["State"] == s).count();
    let images = d.images.list().await.map(|l| l.len()).unwrap_or(0);
    let containerd_version = d.cd.version().await.unwrap_or_default();
    let runtimes: serde_json::Map<String, Value> = d
        .config
        .runtimes
        .iter()
        .map(|(n, p)| (n.clone(), json!({"path": p})))
        .collect();
    let cgroup_v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Json(json!({
        "ID": "",
        "Containers": list.len(),
        "ContainersRunning": count("running"),
        "ContainersPaused": count("paused"),
        "ContainersStopped": list.len() - count("running") - count("paused"),
        "Images": images,
        "Driver": d.config.snapshotter,
        "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]],
        "Plugins": {"Volume": ["local"], "Network": ["null"], "Authorization": null, "Log": ["json-file"]},
        "MemoryLimit": true,
        "SwapLimit": true,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": true,
        "PidsLimit": true,
        "IPv4Forwarding": true,
        "Debug": d.config.debug,
        "NFd": std::fs::read_dir("/proc/self/fd").map(|r| r.count()).unwrap_or(0),
        "OomKillDisable": true,
        "NGoroutines": 0,
        "SystemTime": crate::types::now_rfc3339(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": if cgroup_v2 { "2" } else { "1" },
        "NEventsListener": 0,
        "KernelVersion": kernel(),
        "OperatingSystem": os_name(),
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": [], "Mirrors": []},
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": crate::daemon::stats::machine_memory(),
        "GenericResources": null,
        "DockerRootDir": d.config.data_root,
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": hostname,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": runtimes,
        "DefaultRuntime": d.config.default_runtime,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
        "LiveRestoreEnabled": d.config.live_restore,
        "Isolation": "",
        "InitBinary": "engine-init",
        "ContainerdCommit": {"ID": containerd_version},
        "RuncCommit": {"ID": ""},
        "InitCommit": {"ID": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": null,
    })))
}

pub(super) async fn events(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let filters =
        events::parse_filters(q.get("filters").map(String::as_str)).map_err(ApiError::invalid)?;
    let since = q
        .get("since")
        .and_then(|s| crate::daemon::logs::parse_timestamp(s));
    let until = q
        .get("until")
        .and_then(|s| crate::daemon::logs::parse_timestamp(s));
    let (past, mut rx) = d.events.subscribe();
    let (tx, out) =
        tokio::sync::mpsc::channel::<std::result::Result<bytes::Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let nanos = |e: &Value| e["timeNano"].as_i64().unwrap_or(0) as i128;
        let line = |e: &Value| bytes::Bytes::from(format!("{e}\n"));
        if let Some(s) = since {
            for e in past
                .iter()
                .filter(|e| nanos(e) >= s && until.is_none_or(|u| nanos(e) <= u))
            {
                if events::matches(e, &filters) && tx.send(Ok(line(e))).await.is_err() {
                    return;
                }
            }
        }
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as i128;
        if until.is_some_and(|u| u <= now) {
            return;
        }
        loop {
            let next = match until {
                Some(u) => {
                    let left = std::time::Duration::from_nanos(
                        (u - chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as i128).max(0)
                            as u64,
                    );
                    match tokio::time::timeout(left, rx.recv()).await {
                        Ok(r) => r,
                        Err(_) => return,
                    }
                }
                None => tokio::select! {
                    r = rx.recv() => r,
                    _ = tx.closed() => return,
                },
            };
            match next {
                Ok(e) => {
                    if events::matches(&e, &filters) && tx.send(Ok(line(&e))).await.is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(out));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

pub(super) async fn df(State(d): State<Arc<Daemon>>) -> Result<Json<Value>> {
    let containers = d.list(true, None, true, &Default::default()).await?;
    let images = d.images.list().await?;
    // How many images use each layer (by digest), and each layer's size.
    let mut users: HashMap<&str, (usize, i64)> = HashMap::new();
    for i in &images {
        let mut seen = std::collections::HashSet::new();
        for l in &i.meta.layers {
            if seen.insert(l.digest.as_str()) {
                let e = users.entry(l.digest.as_str()).or_insert((0, l.size));
                e.0 += 1;
            }
        }
    }
    let imgs: Vec<Value> = images
        .iter()
        .map(|i| {
            let used = containers.iter().filter(|c| c["ImageID"] == i.meta.id.as_str()).count();
            let mut seen = std::collections::HashSet::new();
            let shared: i64 = i
                .meta
                .layers
                .iter()
                .filter(|l| seen.insert(l.digest.as_str()))
                .filter(|l| users.get(l.digest.as_str()).is_some_and(|u| u.0 > 1))
                .map(|l| l.size)
                .sum();
            json!({
                "Id": i.meta.id, "ParentId": "", "RepoTags": i.names.iter().map(|n| crate::reference::familiar(n)).collect::<Vec<_>>(),
                "RepoDigests": [], "Created": i.meta.created_unix(), "Size": i.meta.size,
                "SharedSize": shared,
                "Labels": i.meta.config["config"]["Labels"].as_object().cloned().unwrap_or_default(),
                "Containers": used,
            })
        })
        .collect();
    let layers: i64 = users.values().map(|(_, size)| size).sum();
    Ok(Json(json!({
        "LayersSize": layers,
        "Images": imgs,
        "Containers": containers,
        "Volumes": [],
        "BuildCache": [],
    })))
}
