//! `docker exec`: extra processes in a running container's task.
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{json, Value};

use super::stdio::{spawn_copier, Fifos, Hub, JsonLog};
use super::{Ctr, Daemon};
use crate::error::{ApiError, Result};
use crate::spec;

/// The body of `POST /containers/{id}/exec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecConfig {
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub detach_keys: String,
    pub tty: bool,
    pub env: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub privileged: bool,
    pub user: String,
    pub working_dir: String,
    pub console_size: Option<Vec<u32>>,
}

/// What `GET /exec/{id}/json` shows.
#[derive(Debug, Clone, Default)]
pub struct ExecInfo {
    pub running: bool,
    pub exit_code: Option<i64>,
    pub pid: u32,
}

/// One exec instance.
pub struct Exec {
    pub id: String,
    pub container_id: String,
    pub config: ExecConfig,
    pub info: Mutex<ExecInfo>,
    pub hub: Arc<Hub>,
    pub done: tokio::sync::watch::Sender<bool>,
}

impl Exec {
    /// A new exec instance (not yet registered or started) with a random id.
    pub fn new(container_id: &str, config: ExecConfig) -> Self {
        let (done, _) = tokio::sync::watch::channel(false);
        Exec {
            id: hex::encode(rand::random::<[u8; 32]>()),
            container_id: container_id.to_string(),
            config,
            info: Mutex::new(ExecInfo::default()),
            hub: Arc::new(Hub::default()),
            done,
        }
    }
}

impl Daemon {
    /// `POST /containers/{id}/exec`.
    pub fn exec_create(&self, c: &Ctr, cfg: ExecConfig) -> Result<String> {
        let state = c.state();
        if !state.running {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        if state.paused {
            return Err(ApiError::conflict(format!(
                "Container {} is paused, unpause the container before exec",
                c.id
            )));
        }
        if cfg.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(ApiError::invalid("No exec command specified"));
        }
        let cmd = cfg.cmd.clone().unwrap_or_default().join(" ");
        let e = Arc::new(Exec::new(&c.id, cfg));
        let id = e.id.clone();
        if let Ok(mut m) = self.execs.write() {
            m.insert(id.clone(), e);
        }
        let mut extra = std::collections::BTreeMap::new();
        extra.insert("execID".to_string(), id.clone());
        self.emit_container_with(c, &format!("exec_create: {cmd}"), extra);
        Ok(id)
    }

    pub fn exec_get(&self, id: &str) -> Result<Arc<Exec>> {
        self.execs
            .read()
            .ok()
            .and_then(|m| m.get(id).cloned())
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
    }

    pub(super) fn exec_ids(&self, container_id: &str) -> Vec<String> {
        self.execs
            .read()
            .map(|m| {
                m.values()
                    .filter(|e| e.container_id == container_id)
                    .map(|e| e.id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(super) fn remove_execs_of(&self, container_id: &str) {
        if let Ok(mut m) = self.execs.write() {
            m.retain(|_, e| e.container_id != container_id);
        }
    }

    /// Starts an exec: creates FIFOs and the process; output goes to `e.hub`.
    pub async fn exec_start(self: &Arc<Self>, e: &Arc<Exec>) -> Result<()> {
        {
            let info = e
                .info
                .lock()
                .map_err(|_| ApiError::internal("exec poisoned"))?;
            if info.running || info.exit_code.is_some() {
                return Err(ApiError::conflict(format!(
                    "Error: Exec command {} has already run",
                    e.id
                )));
            }
        }
        let c = self.get(&e.container_id)?;
        let rec = c.record();
        if !rec.state.running {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        let cfg = &e.config;
        let user = if cfg.user.is_empty() {
            rec.config.user.clone()
        } else {
            cfg.user.clone()
        };
        let needs_names = user
            .split(':')
            .any(|p| !p.is_empty() && p.parse::<u32>().is_err() && p != "root");
        let (passwd, group) = if needs_names {
            let img = self.images.get(&rec.image).await?;
            (
                self.images.read_file(&img.meta, "etc/passwd").await,
                self.images.read_file(&img.meta, "etc/group").await,
            )
        } else {
            (None, None)
        };
        let dir = self.container_dir(&c.id);
        let ctx = spec::SpecContext {
            container_dir: &dir,
            cgroup_parent: &self.config.cgroup_parent,
            image_env: &[],
            passwd: passwd.as_deref(),
            group: group.as_deref(),
            init_binary: None,
        };
        let (uid, gid) =
            spec::resolve_user(&user, &ctx).map_err(|e| ApiError::invalid(e.to_string()))?;
        let mut env = spec::merge_env(
            &["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()],
            rec.config.env.as_deref().unwrap_or_default(),
        );
        env = spec::merge_env(&env, cfg.env.as_deref().unwrap_or_default());
        if cfg.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".to_string());
        }
        // As dockerd: the container's capabilities (all of them for `exec --privileged`), and
        // its no-new-privileges.
        let hc = &rec.host_config;
        let caps: Vec<String> = if cfg.privileged {
            spec::all_caps()
        } else {
            spec::capabilities(hc).map_err(|e| ApiError::invalid(e.to_string()))?
        };
        let no_new_privileges = crate::security::of(hc)
            .map(|o| o.no_new_privileges)
            .unwrap_or(false);
        let cwd = if !cfg.working_dir.is_empty() {
            cfg.working_dir.clone()
        } else if !rec.config.working_dir.is_empty() {
            rec.config.working_dir.clone()
        } else {
            "/".to_string()
        };
        let mut process = json!({
            "terminal": cfg.tty,
            "user": {"uid": uid, "gid": gid},
            "args": cfg.cmd.clone().unwrap_or_default(),
            "env": env,
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": no_new_privileges,
        });
        if let Some(size) = cfg
            .console_size
            .as_ref()
            .filter(|s| s.len() == 2 && s[0] > 0)
        {
            process["consoleSize"] = json!({"height": size[0], "width": size[1]});
        }
        let spec_json =
            serde_json::to_vec(&process).map_err(|e| ApiError::io("encode process", e))?;
        let fifos = Fifos::new(
            &self.fifo_dir(&c.id),
            &e.id[..12],
            cfg.attach_stdin,
            cfg.tty,
        );
        fifos.create()?;
        let opened = fifos.open(true)?;
        let stdin = opened.stdin;
        if let Ok(mut p) = e.hub.process.lock() {
            *p = Some((self.cd.clone(), c.id.clone(), e.id.clone()));
        }
        let created = self
            .cd
            .exec(&c.id, &e.id, &fifos.stdio(cfg.tty), spec_json)
            .await;
        // Placeholder writers stay until Start: a shim may open its ends only then (execs).
        let holders = opened.holders;
        if let Err(err) = created {
            fifos.remove();
            return Err(err);
        }
        let log = Arc::new(JsonLog::none());
        let handles: Vec<_> = opened
            .readers
            .into_iter()
            .map(|(s, rx)| spawn_copier(s, rx, e.hub.clone(), log.clone()))
            .collect();
        let pid = match self.cd.start_task(&c.id, &e.id).await {
            Ok(p) => p,
            Err(err) => {
                let _ = self.cd.delete_process(&c.id, &e.id).await;
                fifos.remove();
                return Err(err);
            }
        };
        drop(holders);
        *e.hub.stdin.lock().await = stdin;
        if let Ok(mut i) = e.info.lock() {
            i.running = true;
            i.pid = pid;
        }
        let mut extra = std::collections::BTreeMap::new();
        extra.insert("execID".to_string(), e.id.clone());
        self.emit_container_with(&c, "exec_start", extra);
        let d = self.clone();
        let e = e.clone();
        tokio::spawn(async move {
            let code = loop {
                match d.cd.wait(&e.container_id, &e.id).await {
                    Ok(x) => break x.status as i64,
                    Err(s) if s.code() == tonic::Code::NotFound => break 126,
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
                }
            };
            for h in handles {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), h).await;
            }
            let _ = d.cd.delete_process(&e.container_id, &e.id).await;
            if let Ok(mut i) = e.info.lock() {
                i.running = false;
                i.exit_code = Some(code);
            }
            e.hub.close();
            e.hub.close_stdin().await;
            fifos.remove();
            if let Ok(c) = d.get(&e.container_id) {
                let mut extra = std::collections::BTreeMap::new();
                extra.insert("execID".to_string(), e.id.clone());
                extra.insert("exitCode".to_string(), code.to_string());
                d.emit_container_with(&c, "exec_die", extra);
            }
            e.done.send_replace(true);
        });
        Ok(())
    }

    /// `GET /exec/{id}/json`.
    pub fn exec_inspect(&self, e: &Exec) -> Value {
        let info = e.info.lock().map(|i| i.clone()).unwrap_or_default();
        let cmd = e.config.cmd.clone().unwrap_or_default();
        json!({
            "ID": e.id,
            "Running": info.running,
            "ExitCode": info.exit_code,
            "ProcessConfig": {
                "tty": e.config.tty,
                "entrypoint": cmd.first().cloned().unwrap_or_default(),
                "arguments": cmd.iter().skip(1).collect::<Vec<_>>(),
                "privileged": e.config.privileged,
                "user": e.config.user,
            },
            "OpenStdin": e.config.attach_stdin,
            "OpenStderr": e.config.attach_stderr,
            "OpenStdout": e.config.attach_stdout,
            "CanRemove": false,
            "ContainerID": e.container_id,
            "DetachKeys": e.config.detach_keys,
            "Pid": info.pid,
        })
    }
}
