//! Start, stop, kill, exit monitoring, restart policies and removal.
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::stdio::{spawn_copier, Fifos, JsonLog};
use super::{Ctr, Daemon};
use crate::containerd::NewContainer;
use crate::error::{ApiError, Result};
use crate::spec;
use crate::types;

/// How long the copiers may take to drain after an exit before the exit is recorded.
const DRAIN: Duration = Duration::from_secs(2);

/// Parses `SIGTERM`, `TERM`, `15`.
pub(crate) fn parse_signal(s: &str) -> Result<u32> {
    if let Ok(n) = s.parse::<u32>() {
        if n == 0 || n > 64 {
            return Err(ApiError::invalid(format!("Invalid signal: {s}")));
        }
        return Ok(n);
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>()
        .map(|sig| sig as i32 as u32)
        .map_err(|_| ApiError::invalid(format!("Invalid signal: {s}")))
}

fn exit_code_for_start_error(msg: &str) -> i64 {
    let m = msg.to_ascii_lowercase();
    if m.contains("no such file") || m.contains("not found") {
        127
    } else if m.contains("permission denied") {
        126
    } else {
        128
    }
}

/// What a prepared container depends on: a change (update, rename) means preparing again.
fn fingerprint(rec: &types::ContainerRecord) -> String {
    serde_json::to_string(&(&rec.name, &rec.config, &rec.host_config, &rec.runtime))
        .unwrap_or_default()
}

impl Daemon {
    /// `POST /containers/{id}/start`. `Ok(false)` when it was already running (304).
    pub async fn start(self: &Arc<Self>, c: &Arc<Ctr>) -> Result<bool> {
        let started = self.start_op(c).await;
        // As dockerd: an `--rm` container whose start failed is removed, so that a client
        // waiting for `condition=removed` (`docker run --rm`) gets its answer and exits.
        if started.is_err() && c.update(|r| r.host_config.auto_remove) {
            if let Err(e) = self.remove(c, true, true).await {
                tracing::warn!(container_id = %c.id, error = %e, "remove after failed start");
            }
        }
        started
    }

    async fn start_op(self: &Arc<Self>, c: &Arc<Ctr>) -> Result<bool> {
        let _op = c.op.lock().await;
        if c.is_running() {
            return Ok(false);
        }
        if c.update(|r| r.state.status == "removing" || r.state.dead) {
            return Err(ApiError::conflict(
                "container is marked for removal and cannot be started",
            ));
        }
        c.update(|r| r.manually_stopped = false);
        match self.start_locked(c).await {
            Ok(()) => Ok(true),
            Err(e) => {
                let code = exit_code_for_start_error(e.message());
                c.update(|r| {
                    r.state.error = e.message().to_string();
                    r.state.exit_code = code;
                    r.state.status = if r.has_been_started {
                        "exited".into()
                    } else {
                        "created".into()
                    };
                });
                let _ = self.save(c);
                Err(e)
            }
        }
    }

    /// The containerd side of a start before the task: the snapshot (under a lease until the
    /// container holds it), the /etc files, the OCI spec and Containers.Create. Returns the
    /// rootfs mounts.
    async fn prepare_container(
        &self,
        rec: &types::ContainerRecord,
    ) -> Result<Vec<crate::containerd::Mount>> {
        let id = rec.id.clone();
        let snap = &self.config.snapshotter;
        // A new snapshot is unreferenced until Containers.Create: hold a lease so that
        // containerd's GC cannot collect it in between.
        // After a first start the snapshot exists: ask for its mounts. Before it, prepare
        // (one call fewer); AlreadyExists means `docker cp` prepared it early.
        let mut lease = None;
        let mut prepared_early = false;
        let existing = if rec.has_been_started {
            match self.cd.mounts(snap, &id).await {
                Ok(m) => Some(m),
                Err(e) if e.kind() == crate::error::Kind::NotFound => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        let mounts = match existing {
            Some(m) => m,
            None => {
                let l = self.cd.create_lease().await?;
                match self
                    .cd
                    .prepare(Some(&l), snap, &id, &rec.snapshot_parent)
                    .await
                {
                    Ok(m) => {
                        lease = Some(l);
                        m
                    }
                    Err(e) if e.kind() == crate::error::Kind::AlreadyExists => {
                        self.spawn_delete_lease(l);
                        prepared_early = !rec.has_been_started;
                        self.cd.mounts(snap, &id).await?
                    }
                    Err(e) => {
                        self.spawn_delete_lease(l);
                        return Err(e);
                    }
                }
            }
        };
        self.write_etc_files(rec)?;
        let passwd;
        let group;
        let needs_names = rec
            .config
            .user
            .split(':')
            .any(|p| !p.is_empty() && p.parse::<u32>().is_err() && p != "root");
        if needs_names {
            let img = self.images.get(&rec.image).await?;
            passwd = self.images.read_file(&img.meta, "etc/passwd").await;
            group = self.images.read_file(&img.meta, "etc/group").await;
        } else {
            passwd = None;
            group = None;
        }
        let init = self.init_binary.clone();
        let dir = self.container_dir(&id);
        let ctx = spec::SpecContext {
            container_dir: &dir,
            cgroup_parent: &self.config.cgroup_parent,
            image_env: &[],
            passwd: passwd.as_deref(),
            group: group.as_deref(),
            init_binary: init.as_deref(),
        };
        let spec = spec::generate(rec, &ctx).map_err(|e| ApiError::invalid(e.to_string()))?;
        let spec_json = serde_json::to_vec(&spec).map_err(|e| ApiError::io("encode spec", e))?;
        let mut labels = std::collections::HashMap::new();
        for (k, v) in rec.config.labels.clone().unwrap_or_default() {
            labels.insert(k, v);
        }
        self.cd
            .create_container(NewContainer {
                id: id.clone(),
                image: rec.config.image.clone(),
                labels,
                runtime_binary: self
                    .config
                    .runtimes
                    .get(&rec.runtime)
                    .cloned()
                    .unwrap_or_default(),
                runtime_root: String::new(),
                spec_json,
                snapshotter: snap.clone(),
            })
            .await?;
        // The container holds the snapshot now; the leases go in the background.
        if let Some(l) = lease {
            self.spawn_delete_lease(l);
        }
        if prepared_early {
            // The snapshot `docker cp` prepared before the first start.
            self.spawn_delete_lease(super::archive::early_lease(&id));
        }
        Ok(mounts)
    }

    /// After `docker create`: prepares the container in the background (under its op lock), so
    /// that the start that usually follows only creates the task.
    pub(super) fn spawn_prepare(self: &Arc<Self>, c: &Arc<Ctr>) {
        let d = self.clone();
        let c = c.clone();
        tokio::spawn(async move {
            let _op = c.op.lock().await;
            let rec = c.record();
            if rec.has_been_started || c.gen.borrow().removed || rec.state.status != "created" {
                return;
            }
            match d.prepare_container(&rec).await {
                Ok(mounts) => {
                    if let Ok(mut p) = c.prepared.lock() {
                        *p = Some(super::container::Prepared {
                            fingerprint: fingerprint(&rec),
                            mounts,
                        });
                    }
                }
                Err(e) => tracing::debug!(container_id = %c.id, error = %e, "early prepare"),
            }
        });
    }

    async fn start_locked(self: &Arc<Self>, c: &Arc<Ctr>) -> Result<()> {
        let rec = c.record();
        let id = rec.id.clone();
        // Prepared in the background after `docker create` when nothing changed since.
        let early = c
            .prepared
            .lock()
            .map(|mut p| p.take())
            .unwrap_or_default()
            .filter(|p| p.fingerprint == fingerprint(&rec));
        let mounts = match early {
            Some(p) => p.mounts,
            None => self.prepare_container(&rec).await?,
        };
        let tty = rec.config.tty;
        let fifos = Fifos::new(&self.fifo_dir(&id), "init", rec.config.open_stdin, tty);
        fifos.create()?;
        let opened = fifos.open(true)?;
        // Published to attached clients only once the process exists (CloseIO needs the task).
        let stdin = opened.stdin;
        if let Ok(mut p) = c.hub.process.lock() {
            *p = Some((self.cd.clone(), id.clone(), String::new()));
        }
        let mut created = self
            .cd
            .create_task(&id, mounts.clone(), &fifos.stdio(tty))
            .await;
        if matches!(&created, Err(e) if e.kind() == crate::error::Kind::AlreadyExists) {
            // A stale task from an earlier run (e.g. a daemon crash).
            let _ = self.cd.delete_task(&id).await;
            created = self.cd.create_task(&id, mounts, &fifos.stdio(tty)).await;
        }
        // Placeholder writers stay until Start: a shim may open its ends only then (execs).
        let holders = opened.holders;
        if let Err(e) = created {
            fifos.remove();
            return Err(e);
        }
        let log = Arc::new(JsonLog::open(&self.log_path(&id)));
        let handles: Vec<_> = opened
            .readers
            .into_iter()
            .map(|(stream, rx)| spawn_copier(stream, rx, c.hub.clone(), log.clone()))
            .collect();
        if let Ok(mut h) = c.copiers.lock() {
            *h = handles;
        }
        let pid = match self.cd.start_task(&id, "").await {
            Ok(pid) => pid,
            Err(e) => {
                let _ = self.cd.delete_task(&id).await;
                c.hub.close_stdin().await;
                return Err(e);
            }
        };
        drop(holders);
        *c.hub.stdin.lock().await = stdin;
        c.update(|r| {
            r.state = types::State {
                status: "running".into(),
                running: true,
                pid: pid as i64,
                started_at: types::now_rfc3339(),
                finished_at: r.state.finished_at.clone(),
                exit_code: 0,
                ..Default::default()
            };
            r.has_been_started = true;
        });
        self.save(c)?;
        c.gen.send_modify(|g| g.running = true);
        self.emit_container(c, "start");
        self.spawn_monitor(c.clone());
        self.start_health_monitor(c, true);
        tracing::info!(container_id = %id, pid, "container started");
        Ok(())
    }

    /// Deletes a lease in the background (a missing one is fine).
    fn spawn_delete_lease(&self, lease: String) {
        let cd = self.cd.clone();
        tokio::spawn(async move {
            if let Err(e) = cd.delete_lease(&lease).await {
                if e.kind() != crate::error::Kind::NotFound {
                    tracing::warn!(lease, error = %e, "delete lease");
                }
            }
        });
    }

    /// hostname, hosts and resolv.conf in the container dir (bind-mounted by the spec).
    fn write_etc_files(&self, rec: &types::ContainerRecord) -> Result<()> {
        let dir = self.container_dir(&rec.id);
        std::fs::create_dir_all(&dir).map_err(|e| ApiError::io("create container dir", e))?;
        let host = spec::hostname(rec);
        let w = |name: &str, data: String| {
            std::fs::write(dir.join(name), data).map_err(|e| ApiError::io("write etc file", e))
        };
        w("hostname", format!("{host}\n"))?;
        let mut hosts = String::from(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
        );
        for h in rec.host_config.extra_hosts.iter().flatten() {
            if let Some((name, ip)) = h.split_once(':') {
                hosts.push_str(&format!("{ip}\t{name}\n"));
            }
        }
        w("hosts", hosts)?;
        let mut resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        if let Some(dns) = rec.host_config.dns.as_ref().filter(|d| !d.is_empty()) {
            resolv = dns.iter().map(|d| format!("nameserver {d}\n")).collect();
        }
        w("resolv.conf", resolv)
    }

    pub(super) fn spawn_monitor(self: &Arc<Self>, c: Arc<Ctr>) {
        let d = self.clone();
        tokio::spawn(async move { d.monitor(c).await });
    }

    /// Waits for the task to exit, across containerd restarts, then records the exit.
    async fn monitor(self: Arc<Self>, c: Arc<Ctr>) {
        let mut not_found = 0;
        let exit = loop {
            match self.cd.wait(&c.id, "").await {
                Ok(e) => break Some(e),
                Err(s) if s.code() == tonic::Code::NotFound => {
                    not_found += 1;
                    if not_found > 10 {
                        break None;
                    }
                }
                Err(s) => {
                    tracing::debug!(container_id = %c.id, code = ?s.code(), message = s.message(), "wait interrupted; reconnecting");
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let code = exit.map(|e| e.status as i64).unwrap_or(255);
        self.handle_exit(&c, code).await;
    }

    pub(super) async fn handle_exit(self: &Arc<Self>, c: &Arc<Ctr>, code: i64) {
        // Read before Tasks.Delete: the runtime removes the cgroup on delete.
        let oom = self.oom_killed(&c.id, code);
        // As dockerd: delete the task (the shim closes its FIFO ends), then drain the copiers.
        if let Err(e) = self.cd.delete_task(&c.id).await {
            tracing::warn!(container_id = %c.id, error = %e, "delete task");
        }
        let handles: Vec<_> = c
            .copiers
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .unwrap_or_default();
        for h in handles {
            let _ = tokio::time::timeout(DRAIN, h).await;
        }
        c.hub.close();
        c.hub.close_stdin().await;
        Fifos::new(&self.fifo_dir(&c.id), "init", true, false).remove();
        c.update(|r| {
            r.state.running = false;
            r.state.paused = false;
            r.state.status = "exited".into();
            r.state.pid = 0;
            r.state.exit_code = code;
            r.state.oom_killed = oom;
            r.state.finished_at = types::now_rfc3339();
        });
        let auto_remove = c.update(|r| r.host_config.auto_remove);
        // An auto-removed container's record is deleted next: saved only if that fails.
        if !auto_remove {
            if let Err(e) = self.save(c) {
                tracing::warn!(container_id = %c.id, error = %e, "save state");
            }
        }
        if oom {
            self.emit_container(c, "oom");
        }
        let mut extra = std::collections::BTreeMap::new();
        extra.insert("exitCode".to_string(), code.to_string());
        self.emit_container_with(c, "die", extra);
        c.gen.send_modify(|g| {
            g.exits += 1;
            g.exit_code = code;
            g.running = false;
        });
        tracing::info!(container_id = %c.id, exit_code = code, "container exited");
        let rec = c.record();
        if auto_remove {
            if let Err(e) = self.remove_stopped(c, true).await {
                tracing::warn!(container_id = %c.id, error = %e, "auto-remove");
                let _ = self.save(c);
            }
            return;
        }
        if !self.is_shutting_down() && self.should_restart(&rec, code) {
            let d = self.clone();
            let c = c.clone();
            tokio::spawn(async move { d.restart_after_exit(c).await });
        }
    }

    /// Whether the memory cgroup recorded an OOM kill for this container (cgroup v1).
    fn oom_killed(&self, id: &str, code: i64) -> bool {
        if code != 137 {
            return false;
        }
        let path = format!(
            "/sys/fs/cgroup/memory/{}/{id}/memory.oom_control",
            self.config.cgroup_parent
        );
        std::fs::read_to_string(path)
            .map(|s| {
                s.lines()
                    .any(|l| l.starts_with("oom_kill ") && l.trim_end() != "oom_kill 0")
            })
            .unwrap_or(false)
    }

    /// Sends a signal to the init process.
    pub async fn kill(&self, c: &Ctr, signal: Option<&str>) -> Result<()> {
        let sig = match signal.filter(|s| !s.is_empty()) {
            Some(s) => parse_signal(s)?,
            None => Signal::SIGKILL as i32 as u32,
        };
        if !c.is_running() {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        if sig == Signal::SIGKILL as i32 as u32 {
            c.update(|r| r.manually_stopped = true);
        }
        let mut extra = std::collections::BTreeMap::new();
        extra.insert("signal".to_string(), sig.to_string());
        self.emit_container_with(c, "kill", extra);
        self.cd.kill(&c.id, "", sig, false).await
    }

    /// Waits until the exit counter passes `after` or the timeout elapses.
    async fn wait_exit(&self, c: &Ctr, after: u64, timeout: Duration) -> bool {
        let mut rx = c.gen.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|g| g.exits > after || g.removed))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// `POST /containers/{id}/stop`: the stop signal, then SIGKILL after the timeout.
    /// `Ok(false)` when it was not running (304).
    pub async fn stop(&self, c: &Ctr, timeout: Option<i64>, signal: Option<&str>) -> Result<bool> {
        self.stop_with(c, timeout, signal, true).await
    }

    /// Stop; `manual` = a user's stop (restart policies then leave the container alone), as
    /// opposed to the daemon's own stop at shutdown.
    pub(super) async fn stop_with(
        &self,
        c: &Ctr,
        timeout: Option<i64>,
        signal: Option<&str>,
        manual: bool,
    ) -> Result<bool> {
        let _op = c.op.lock().await;
        c.update(|r| {
            r.manually_stopped |= manual;
            if r.state.restarting {
                r.state.restarting = false;
                r.state.status = "exited".into();
            }
        });
        if !c.is_running() {
            let _ = self.save(c);
            return Ok(false);
        }
        let rec = c.record();
        let sig = match signal
            .filter(|s| !s.is_empty())
            .or(rec.config.stop_signal.as_deref())
        {
            Some(s) => parse_signal(s)?,
            None => Signal::SIGTERM as i32 as u32,
        };
        let secs = timeout.or(rec.config.stop_timeout).unwrap_or(10);
        let before = c.gen.borrow().exits;
        let mut extra = std::collections::BTreeMap::new();
        extra.insert("signal".to_string(), sig.to_string());
        self.emit_container_with(c, "kill", extra);
        if let Err(e) = self.cd.kill(&c.id, "", sig, false).await {
            tracing::warn!(container_id = %c.id, error = %e, "stop signal");
        }
        let wait = if secs < 0 {
            Duration::from_secs(u64::MAX / 4)
        } else {
            Duration::from_secs(secs as u64)
        };
        if !self.wait_exit(c, before, wait).await {
            tracing::info!(container_id = %c.id, "stop timeout; sending SIGKILL");
            self.cd
                .kill(&c.id, "", Signal::SIGKILL as i32 as u32, true)
                .await?;
            if !self.wait_exit(c, before, Duration::from_secs(30)).await {
                return Err(ApiError::internal("container did not exit after SIGKILL"));
            }
        }
        self.emit_container(c, "stop");
        Ok(true)
    }

    /// `POST /containers/{id}/restart`.
    pub async fn restart(
        self: &Arc<Self>,
        c: &Arc<Ctr>,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        self.stop(c, timeout, signal).await?;
        self.start(c).await?;
        c.update(|r| r.manually_stopped = false);
        self.emit_container(c, "restart");
        Ok(())
    }

    /// `DELETE /containers/{id}`.
    pub async fn remove(&self, c: &Arc<Ctr>, force: bool, _volumes: bool) -> Result<()> {
        if c.is_running() {
            if !force {
                let state = if c.state().paused {
                    "paused"
                } else {
                    "running"
                };
                return Err(ApiError::conflict(format!(
                    "cannot remove container \"{}\": container is {state}: stop the container before removing or force remove",
                    c.name()
                )));
            }
            let before = c.gen.borrow().exits;
            c.update(|r| r.manually_stopped = true);
            if c.state().paused {
                let _ = self.cd.resume(&c.id).await;
            }
            self.cd
                .kill(&c.id, "", Signal::SIGKILL as i32 as u32, true)
                .await?;
            self.wait_exit(c, before, Duration::from_secs(30)).await;
        }
        self.remove_stopped(c, false).await
    }

    /// Removes a container that is not running; `task_deleted` when the exit handler has
    /// just deleted its task.
    async fn remove_stopped(&self, c: &Arc<Ctr>, task_deleted: bool) -> Result<()> {
        let _op = c.op.lock().await;
        if c.gen.borrow().removed {
            return Ok(());
        }
        let started = c.update(|r| {
            r.state.status = "removing".into();
            r.has_been_started
        });
        if !task_deleted {
            let _ = self.cd.delete_task(&c.id).await;
        }
        if !started {
            // A snapshot `docker cp` prepared before any start.
            self.spawn_delete_lease(super::archive::early_lease(&c.id));
        }
        // The snapshot is only referenced by the container record: both go at once.
        let (deleted, removed) = tokio::join!(
            self.cd.delete_container(&c.id),
            self.cd.remove_snapshot(&self.config.snapshotter, &c.id)
        );
        deleted?;
        removed?;
        self.images.container_removed(&c.record().image).await;
        let _ = std::fs::remove_dir_all(self.container_dir(&c.id));
        let _ = std::fs::remove_dir_all(self.fifo_dir(&c.id));
        self.store.delete(&c.id)?;
        self.forget(&c.id);
        self.remove_execs_of(&c.id);
        self.emit_container(c, "destroy");
        c.gen.send_modify(|g| g.removed = true);
        Ok(())
    }

    /// `POST /containers/{id}/pause` and `unpause`.
    pub async fn pause(&self, c: &Ctr, pause: bool) -> Result<()> {
        let _op = c.op.lock().await;
        let s = c.state();
        if !s.running {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        if pause {
            if s.paused {
                return Err(ApiError::conflict(format!(
                    "Container {} is already paused",
                    c.id
                )));
            }
            self.cd.pause(&c.id).await?;
        } else {
            if !s.paused {
                return Err(ApiError::conflict(format!(
                    "Container {} is not paused",
                    c.id
                )));
            }
            self.cd.resume(&c.id).await?;
        }
        c.update(|r| {
            r.state.paused = pause;
            r.state.status = if pause {
                "paused".into()
            } else {
                "running".into()
            };
        });
        self.save(c)?;
        self.emit_container(c, if pause { "pause" } else { "unpause" });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_like_docker() {
        assert_eq!(parse_signal("SIGTERM").expect("SIGTERM"), 15);
        assert_eq!(parse_signal("term").expect("term"), 15);
        assert_eq!(parse_signal("9").expect("9"), 9);
        assert_eq!(parse_signal("USR1").expect("USR1"), 10);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
    }
}
