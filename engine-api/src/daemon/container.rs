//! Container objects: creation (image config merged in, as dockerd does), lookup, listing and
//! inspect views.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::sync::watch;

use super::stdio::Hub;
use super::Daemon;
use crate::error::{ApiError, Result};
use crate::types::{self, ContainerRecord, CreateRequest, State};

/// What waiters watch: exits so far, the last exit code, and removal.
#[derive(Debug, Clone, Default)]
pub struct Gen {
    pub exits: u64,
    pub exit_code: i64,
    pub running: bool,
    pub removed: bool,
}

/// One container: its record plus runtime plumbing.
pub struct Ctr {
    pub id: String,
    rec: Mutex<ContainerRecord>,
    /// Serializes start/stop/kill/remove.
    pub op: tokio::sync::Mutex<()>,
    pub gen: watch::Sender<Gen>,
    pub hub: Arc<Hub>,
    /// Copier tasks of the current run.
    pub copiers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The restart policy's current back-off delay.
    pub restart_delay: Mutex<std::time::Duration>,
    /// Done by the background preparation after create (see `spawn_prepare`).
    pub prepared: Mutex<Option<Prepared>>,
}

/// A container prepared for its first start: containerd container and snapshot exist.
pub struct Prepared {
    pub fingerprint: String,
    pub mounts: Vec<crate::containerd::Mount>,
}

impl Ctr {
    pub fn new(rec: ContainerRecord) -> Self {
        let (gen, _) = watch::channel(Gen {
            exits: 0,
            exit_code: rec.state.exit_code,
            running: rec.state.running,
            removed: false,
        });
        Ctr {
            id: rec.id.clone(),
            rec: Mutex::new(rec),
            op: tokio::sync::Mutex::new(()),
            gen,
            hub: Arc::new(Hub::default()),
            copiers: Mutex::new(Vec::new()),
            restart_delay: Mutex::new(std::time::Duration::ZERO),
            prepared: Mutex::new(None),
        }
    }

    /// A copy of the record.
    pub fn record(&self) -> ContainerRecord {
        match self.rec.lock() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Changes the record.
    pub fn update<T>(&self, f: impl FnOnce(&mut ContainerRecord) -> T) -> T {
        match self.rec.lock() {
            Ok(mut r) => f(&mut r),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    pub fn name(&self) -> String {
        self.update(|r| r.name.clone())
    }

    pub fn state(&self) -> State {
        self.update(|r| r.state.clone())
    }

    pub fn is_running(&self) -> bool {
        self.update(|r| r.state.running)
    }

    /// Docker's one-line status: `Up 3 seconds`, `Exited (0) 2 minutes ago`, `Created`.
    pub fn status_line(&self) -> String {
        self.update(|r| status_line(&r.state))
    }
}

/// [`Ctr::status_line`] of a record's state.
fn status_line(s: &State) -> String {
    let since = |t: &str| {
        types::parse_time(t)
            .map(|t| (chrono::Utc::now() - t).to_std().unwrap_or_default())
            .unwrap_or_default()
    };
    match s.status.as_str() {
        "running" | "paused" => {
            let mut line = format!("Up {}", types::human_duration(since(&s.started_at)));
            if s.paused {
                line.push_str(" (Paused)");
            } else if let Some(h) = s.health.as_ref().and_then(super::health::status_suffix) {
                line.push_str(&format!(" ({h})"));
            }
            line
        }
        "restarting" => format!(
            "Restarting ({}) {} ago",
            s.exit_code,
            types::human_duration(since(&s.finished_at))
        ),
        "exited" if types::parse_time(&s.finished_at).is_some() => {
            format!(
                "Exited ({}) {} ago",
                s.exit_code,
                types::human_duration(since(&s.finished_at))
            )
        }
        "exited" => format!("Exited ({})", s.exit_code),
        "removing" => "Removal In Progress".to_string(),
        "dead" => "Dead".to_string(),
        _ => "Created".to_string(),
    }
}

const LEFT: [&str; 24] = [
    "admiring", "adoring", "agitated", "amazing", "angry", "awesome", "blissful", "bold", "brave",
    "busy", "charming", "clever", "cool", "dreamy", "eager", "ecstatic", "elegant", "epic",
    "festive", "focused", "friendly", "gallant", "happy", "jolly",
];
const RIGHT: [&str; 24] = [
    "albattani",
    "allen",
    "archimedes",
    "babbage",
    "banach",
    "bardeen",
    "bohr",
    "curie",
    "darwin",
    "einstein",
    "euclid",
    "fermat",
    "feynman",
    "galileo",
    "gauss",
    "hopper",
    "hypatia",
    "kepler",
    "lovelace",
    "newton",
    "noether",
    "pascal",
    "tesla",
    "turing",
];

fn random_name() -> String {
    let l = LEFT[rand::random::<usize>() % LEFT.len()];
    let r = RIGHT[rand::random::<usize>() % RIGHT.len()];
    format!("{l}_{r}")
}

fn valid_name(n: &str) -> bool {
    let n = n.strip_prefix('/').unwrap_or(n);
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && n.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn strs(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    })
}

impl Daemon {
    /// Reserves a name for `id`, or says which container holds it.
    fn check_name(&self, name: &str, id: &str) -> Result<()> {
        for c in self.all() {
            if c.id != id && c.name() == name {
                return Err(ApiError::conflict(format!(
                    "Conflict. The container name \"{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                    c.id
                )));
            }
        }
        Ok(())
    }

    /// `POST /containers/create`.
    pub async fn create(
        self: &Arc<Self>,
        name: Option<&str>,
        req: CreateRequest,
    ) -> Result<(String, Vec<String>)> {
        let mut cfg = req.config;
        let mut hc = req.host_config.unwrap_or_default();
        if cfg.image.is_empty() {
            return Err(ApiError::invalid(
                "config cannot be empty in order to create a container",
            ));
        }
        let image = self.images.get(&cfg.image).await?;
        let icfg = &image.meta.config["config"];
        // Merge the image config the way dockerd does (daemon.mergeAndVerifyConfig).
        let user_entry = cfg.entrypoint.clone();
        let entry_cleared = matches!(&user_entry, Some(e) if e.len() == 1 && e[0].is_empty());
        if entry_cleared {
            cfg.entrypoint = None;
        } else if user_entry.as_ref().is_none_or(|e| e.is_empty()) {
            cfg.entrypoint = strs(&icfg["Entrypoint"]).filter(|e| !e.is_empty());
            if cfg.cmd.as_ref().is_none_or(|c| c.is_empty()) {
                cfg.cmd = strs(&icfg["Cmd"]);
            }
        }
        let image_env = strs(&icfg["Env"]).unwrap_or_default();
        cfg.env = Some(crate::spec::merge_env(
            &image_env,
            cfg.env.as_deref().unwrap_or_default(),
        ));
        if cfg.working_dir.is_empty() {
            cfg.working_dir = icfg["WorkingDir"].as_str().unwrap_or_default().to_string();
        }
        if cfg.user.is_empty() {
            cfg.user = icfg["User"].as_str().unwrap_or_default().to_string();
        }
        if cfg.stop_signal.is_none() {
            cfg.stop_signal = icfg["StopSignal"].as_str().map(str::to_string);
        }
        if cfg.healthcheck.is_none() && !icfg["Healthcheck"].is_null() {
            cfg.healthcheck = Some(icfg["Healthcheck"].clone());
        }
        let mut labels: BTreeMap<String, String> = icfg["Labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        labels.extend(cfg.labels.take().unwrap_or_default());
        cfg.labels = Some(labels);
        let mut argv: Vec<String> = cfg.entrypoint.clone().unwrap_or_default();
        argv.extend(cfg.cmd.clone().unwrap_or_default());
        if argv.is_empty() {
            return Err(ApiError::invalid("No command specified"));
        }
        if !cfg.working_dir.is_empty() && !cfg.working_dir.starts_with('/') {
            return Err(ApiError::invalid(format!(
                "the working directory '{}' is invalid, it needs to be an absolute path",
                cfg.working_dir
            )));
        }
        let runtime = if hc.runtime.is_empty() {
            self.config.default_runtime.clone()
        } else {
            hc.runtime.clone()
        };
        if !self.config.runtimes.contains_key(&runtime) {
            return Err(ApiError::invalid(format!(
                "unknown or invalid runtime name: {runtime}"
            )));
        }
        hc.runtime = runtime.clone();
        if hc.network_mode.is_empty() {
            hc.network_mode = "default".to_string();
        }
        match hc.restart_policy.name.as_str() {
            "" | "no" | "always" | "unless-stopped" | "on-failure" => {}
            other => {
                return Err(ApiError::invalid(format!(
                    "invalid restart policy '{other}'"
                )))
            }
        }
        if hc.auto_remove && !matches!(hc.restart_policy.name.as_str(), "" | "no") {
            return Err(ApiError::invalid(
                "can't create 'AutoRemove' container with restart policy",
            ));
        }
        crate::security::of(&hc).map_err(|e| ApiError::invalid(e.to_string()))?;
        if hc.memory > 0 && hc.memory < 6 * 1024 * 1024 {
            return Err(ApiError::invalid("Minimum memory limit allowed is 6MB"));
        }
        if hc.memory_swap > 0 && hc.memory > 0 && hc.memory_swap < hc.memory {
            return Err(ApiError::invalid(
                "Minimum memoryswap limit should be larger than memory limit, see usage",
            ));
        }
        if hc.nano_cpus > 0 && (hc.cpu_quota > 0 || hc.cpu_period > 0) {
            return Err(ApiError::conflict(
                "Conflicting options: Nano CPUs and CPU Period cannot both be set",
            ));
        }
        let warnings = self.blkio.discard_unsupported(&mut hc);
        if hc.blkio_weight > 0 && !(10..=1000).contains(&hc.blkio_weight) {
            return Err(ApiError::invalid(
                "Range of blkio weight is from 10 to 1000",
            ));
        }
        let id = hex::encode(rand::random::<[u8; 32]>());
        let _names = self.names.lock().await;
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                if !valid_name(n) {
                    return Err(ApiError::invalid(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                let n = if n.starts_with('/') {
                    n.to_string()
                } else {
                    format!("/{n}")
                };
                self.check_name(&n, &id)?;
                n
            }
            None => loop {
                let n = format!("/{}", random_name());
                if self.check_name(&n, &id).is_ok() {
                    break n;
                }
            },
        };
        let rec = ContainerRecord {
            id: id.clone(),
            name,
            created: types::now_rfc3339(),
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            config: cfg,
            host_config: hc,
            image: image.meta.id.clone(),
            snapshot_parent: image.meta.top_chain(),
            state: State::default(),
            restart_count: 0,
            manually_stopped: false,
            runtime,
            has_been_started: false,
        };
        std::fs::create_dir_all(self.container_dir(&id))
            .map_err(|e| ApiError::io("create container dir", e))?;
        self.store.put(&rec)?;
        let ctr = Arc::new(Ctr::new(rec));
        self.insert(ctr.clone());
        drop(_names);
        self.emit_container(&ctr, "create");
        self.spawn_prepare(&ctr);
        Ok((id, warnings))
    }

    /// Emits a container event with dockerd's attributes (name, image, labels).
    pub fn emit_container(&self, c: &Ctr, action: &str) {
        self.emit_container_with(c, action, BTreeMap::new());
    }

    pub fn emit_container_with(&self, c: &Ctr, action: &str, extra: BTreeMap<String, String>) {
        let rec = c.record();
        let mut attrs: BTreeMap<String, String> = rec.config.labels.clone().unwrap_or_default();
        attrs.insert("name".into(), rec.name.trim_start_matches('/').to_string());
        attrs.insert("image".into(), rec.config.image.clone());
        attrs.extend(extra);
        self.events.emit("container", action, &c.id, attrs);
    }

    /// `POST /containers/{id}/rename`.
    pub async fn rename(&self, c: &Ctr, new: &str) -> Result<()> {
        if !valid_name(new) {
            return Err(ApiError::invalid(format!(
                "Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let _names = self.names.lock().await;
        let new = if new.starts_with('/') {
            new.to_string()
        } else {
            format!("/{new}")
        };
        let old = c.name();
        if old == new {
            return Err(ApiError::invalid(
                "Renaming a container with the same name as its current name",
            ));
        }
        self.check_name(&new, &c.id)?;
        c.update(|r| r.name = new.clone());
        self.save(c)?;
        let mut extra = BTreeMap::new();
        extra.insert("oldName".to_string(), old);
        self.emit_container_with(c, "rename", extra);
        Ok(())
    }

    /// `GET /containers/json`, as JSON values.
    pub async fn list(
        &self,
        all: bool,
        limit: Option<usize>,
        size: bool,
        filters: &BTreeMap<String, Vec<String>>,
    ) -> Result<Vec<Value>> {
        let entries = self.list_entries(all, limit, size, filters).await?;
        Ok(entries
            .iter()
            .filter_map(|e| serde_json::to_value(e).ok())
            .collect())
    }

    /// `GET /containers/json`: typed entries, serialized without a JSON value tree.
    pub async fn list_entries(
        &self,
        all: bool,
        limit: Option<usize>,
        size: bool,
        filters: &BTreeMap<String, Vec<String>>,
    ) -> Result<Vec<ListEntry>> {
        let mut ctrs = self.all();
        ctrs.sort_by_cached_key(|c| std::cmp::Reverse(c.update(|r| r.created.clone())));
        let shown = |rec: &ContainerRecord| {
            all || rec.state.running
                || filters.contains_key("status")
                || filters.contains_key("exited")
        };
        let mut out = Vec::new();
        for c in ctrs {
            // Without filters the entry is built under the record's lock, from borrowed fields:
            // no copy of the whole record (config, host config, health log) per container.
            let mut v = if filters.is_empty() {
                match c.update(|rec| shown(rec).then(|| list_entry(rec))) {
                    Some(v) => v,
                    None => continue,
                }
            } else {
                let rec = c.record();
                if !shown(&rec) || !self.filter_matches(&rec, filters).await {
                    continue;
                }
                list_entry(&rec)
            };
            if size {
                let (id, image) = c.update(|r| (r.id.clone(), r.image.clone()));
                let rw = self
                    .cd
                    .snapshot_usage(&self.config.snapshotter, &id)
                    .await
                    .unwrap_or(0);
                let image = self
                    .images
                    .get(&image)
                    .await
                    .map(|i| i.meta.size)
                    .unwrap_or(0);
                v.size_rw = Some(rw);
                v.size_root_fs = Some(rw + image);
            }
            out.push(v);
            if limit.is_some_and(|l| l > 0 && out.len() >= l) {
                break;
            }
        }
        Ok(out)
    }

    async fn filter_matches(
        &self,
        rec: &ContainerRecord,
        f: &BTreeMap<String, Vec<String>>,
    ) -> bool {
        for (k, vals) in f {
            if vals.is_empty() {
                continue;
            }
            let ok = match k.as_str() {
                "status" => vals.contains(&rec.state.status),
                "name" => vals.iter().any(|v| {
                    rec.name
                        .trim_start_matches('/')
                        .contains(v.trim_start_matches('/'))
                }),
                "id" => vals.iter().any(|v| rec.id.starts_with(v.as_str())),
                "label" => vals.iter().all(|v| {
                    let labels = rec.config.labels.clone().unwrap_or_default();
                    match v.split_once('=') {
                        Some((lk, lv)) => labels.get(lk).map(String::as_str) == Some(lv),
                        None => labels.contains_key(v),
                    }
                }),
                "exited" => {
                    rec.state.status == "exited"
                        && vals
                            .iter()
                            .any(|v| v.parse::<i64>().ok() == Some(rec.state.exit_code))
                }
                "ancestor" => {
                    let mut ok = false;
                    for v in vals {
                        if let Ok(img) = self.images.get(v).await {
                            if img.meta.id == rec.image {
                                ok = true;
                            }
                        }
                    }
                    ok
                }
                "before" | "since" => {
                    let mut ok = true;
                    for v in vals {
                        if let Ok(other) = self.get(v) {
                            let t = other.update(|r| r.created.clone());
                            ok &= if k == "before" {
                                rec.created < t
                            } else {
                                rec.created > t
                            };
                        }
                    }
                    ok
                }
                "health" => {
                    let h = rec
                        .state
                        .health
                        .as_ref()
                        .and_then(|h| h["Status"].as_str())
                        .unwrap_or("none");
                    vals.iter().any(|v| v == h)
                }
                "volume" | "network" | "publish" | "expose" | "isolation" | "is-task" => true,
                _ => true,
            };
            if !ok {
                return false;
            }
        }
        true
    }

    /// `GET /containers/{id}/json`.
    pub async fn inspect(&self, c: &Ctr, size: bool) -> Result<Value> {
        let rec = c.record();
        let dir = self.container_dir(&rec.id);
        let mut v = json!({
            "Id": rec.id,
            "Created": rec.created,
            "Path": rec.path,
            "Args": rec.args,
            "State": rec.state,
            "Image": rec.image,
            "ResolvConfPath": dir.join("resolv.conf"),
            "HostnamePath": dir.join("hostname"),
            "HostsPath": dir.join("hosts"),
            "LogPath": self.log_path(&rec.id),
            "Name": rec.name,
            "RestartCount": rec.restart_count,
            "Driver": self.config.snapshotter,
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": self.exec_ids(&rec.id),
            "HostConfig": rec.host_config,
            "GraphDriver": {"Name": self.config.snapshotter, "Data": null},
            "Mounts": [],
            "Config": rec.config,
            "NetworkSettings": {
                "Bridge": "", "SandboxID": "", "SandboxKey": "", "Ports": {},
                "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": "", "Networks": {}
            },
        });
        if v["ExecIDs"].as_array().is_some_and(Vec::is_empty) {
            v["ExecIDs"] = Value::Null;
        }
        if size {
            let rw = self
                .cd
                .snapshot_usage(&self.config.snapshotter, &rec.id)
                .await
                .unwrap_or(0);
            let image = self
                .images
                .get(&rec.image)
                .await
                .map(|i| i.meta.size)
                .unwrap_or(0);
            v["SizeRw"] = json!(rw);
            v["SizeRootFs"] = json!(rw + image);
        }
        Ok(v)
    }
}

/// `ps`'s Command column: the command line, as dockerd joins it (arguments with spaces in
/// single quotes).
/// One entry of `GET /containers/json`, in dockerd's field order.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListEntry {
    pub id: String,
    pub names: [String; 1],
    pub image: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    pub command: String,
    pub created: i64,
    pub ports: [(); 0],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_rw: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_root_fs: Option<i64>,
    pub labels: BTreeMap<String, String>,
    pub state: String,
    pub status: String,
    pub host_config: ListHostConfig,
    pub network_settings: ListNetworks,
    pub mounts: [(); 0],
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListHostConfig {
    pub network_mode: String,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListNetworks {
    pub networks: BTreeMap<String, Value>,
}

fn list_entry(rec: &ContainerRecord) -> ListEntry {
    ListEntry {
        id: rec.id.clone(),
        names: [rec.name.clone()],
        image: rec.config.image.clone(),
        image_id: rec.image.clone(),
        command: command_line(rec),
        created: types::parse_time(&rec.created)
            .map(|t| t.timestamp())
            .unwrap_or(0),
        ports: [],
        size_rw: None,
        size_root_fs: None,
        labels: rec.config.labels.clone().unwrap_or_default(),
        state: rec.state.status.clone(),
        status: status_line(&rec.state),
        host_config: ListHostConfig {
            network_mode: rec.host_config.network_mode.clone(),
        },
        network_settings: ListNetworks {
            networks: BTreeMap::new(),
        },
        mounts: [],
    }
}

pub(crate) fn command_line(rec: &ContainerRecord) -> String {
    let mut parts = vec![rec.path.clone()];
    parts.extend(rec.args.iter().map(|a| {
        if a.contains(' ') {
            format!("'{a}'")
        } else {
            a.clone()
        }
    }));
    parts.join(" ")
}
