//! Restart policies (after an exit and after a daemon start), restoring containers after a
//! daemon restart, and the daemon's shutdown (stop everything unless --live-restore).
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::stdio::{spawn_copier, Fifos, JsonLog};
use super::{Ctr, Daemon};
use crate::containerd::TaskStatus;
use crate::error::Result;
use crate::types;

/// First restart delay; doubled after each quick exit, up to [`MAX_DELAY`] (dockerd's).
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run at least this long resets the delay.
const RESET_AFTER: Duration = Duration::from_secs(10);

impl Daemon {
    pub(super) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// dockerd's restart manager decision for an exit with `code`.
    pub(super) fn should_restart(&self, rec: &types::ContainerRecord, code: i64) -> bool {
        if rec.manually_stopped {
            return false;
        }
        let p = &rec.host_config.restart_policy;
        match p.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => {
                code != 0
                    && (p.maximum_retry_count == 0 || rec.restart_count < p.maximum_retry_count)
            }
            _ => false,
        }
    }

    /// Waits the back-off delay, then starts the container again (unless stopped meanwhile).
    pub(super) async fn restart_after_exit(self: Arc<Self>, c: Arc<Ctr>) {
        let ran = c.update(|r| {
            match (
                types::parse_time(&r.state.started_at),
                types::parse_time(&r.state.finished_at),
            ) {
                (Some(s), Some(f)) => (f - s).to_std().unwrap_or_default(),
                _ => Duration::ZERO,
            }
        });
        let delay = {
            let mut d = c.restart_delay.lock().unwrap_or_else(|p| p.into_inner());
            *d = if ran >= RESET_AFTER || d.is_zero() {
                FIRST_DELAY
            } else {
                (*d * 2).min(MAX_DELAY)
            };
            *d
        };
        c.update(|r| {
            r.state.restarting = true;
            r.state.status = "restarting".into();
        });
        let _ = self.save(&c);
        tokio::time::sleep(delay).await;
        if self.is_shutting_down() || c.update(|r| r.manually_stopped || !r.state.restarting) {
            return;
        }
        c.update(|r| {
            r.restart_count += 1;
            r.state.restarting = false;
        });
        if let Err(e) = self.start(&c).await {
            tracing::warn!(container_id = %c.id, error = %e, "restart policy start");
        }
    }

    /// At shutdown without --live-restore, as dockerd: stop every running container (its stop
    /// signal and timeout, all at once). This is not a user's stop: restart policies apply
    /// again when the daemon starts.
    pub async fn shutdown(self: &Arc<Self>) {
        self.shutting_down.store(true, Ordering::SeqCst);
        if self.config.live_restore {
            tracing::info!("live restore: leaving containers running");
            return;
        }
        let stops: Vec<_> = self
            .all()
            .into_iter()
            .filter(|c| c.is_running())
            .map(|c| {
                let d = self.clone();
                tokio::spawn(async move {
                    if c.state().paused {
                        let _ = d.cd.resume(&c.id).await;
                    }
                    if let Err(e) = d.stop_with(&c, None, None, false).await {
                        tracing::warn!(container_id = %c.id, error = %e, "stop at shutdown");
                    }
                })
            })
            .collect();
        for s in stops {
            let _ = s.await;
        }
    }

    /// After a daemon restart: re-attach to a running task or record its exit.
    pub(super) async fn restore_one(self: &Arc<Self>, c: &Arc<Ctr>) -> Result<()> {
        let rec = c.record();
        if !rec.state.running && !rec.state.restarting {
            // dockerd's restore: `always` even after a manual stop, the others as on an exit.
            let always = rec.host_config.restart_policy.name == "always";
            if rec.has_been_started && (always || self.should_restart(&rec, rec.state.exit_code)) {
                tracing::info!(container_id = %c.id, "restart policy: starting after daemon start");
                self.start(c).await?;
            }
            return Ok(());
        }
        match self.cd.get_task(&c.id).await? {
            Some(t)
                if matches!(
                    t.status,
                    TaskStatus::Running | TaskStatus::Paused | TaskStatus::Pausing
                ) =>
            {
                let fifos = Fifos::new(
                    &self.fifo_dir(&c.id),
                    "init",
                    rec.config.open_stdin,
                    rec.config.tty,
                );
                match fifos.open(false) {
                    Ok(opened) => {
                        *c.hub.stdin.lock().await = opened.stdin;
                        if let Ok(mut p) = c.hub.process.lock() {
                            *p = Some((self.cd.clone(), c.id.clone(), String::new()));
                        }
                        let log = Arc::new(JsonLog::open(&self.log_path(&c.id)));
                        let handles: Vec<_> = opened
                            .readers
                            .into_iter()
                            .map(|(s, rx)| spawn_copier(s, rx, c.hub.clone(), log.clone()))
                            .collect();
                        if let Ok(mut h) = c.copiers.lock() {
                            *h = handles;
                        }
                    }
                    Err(e) => tracing::warn!(container_id = %c.id, error = %e, "reopen fifos"),
                }
                c.update(|r| {
                    r.state.pid = t.pid as i64;
                    r.state.paused = t.status != TaskStatus::Running;
                    r.state.status = if r.state.paused {
                        "paused".into()
                    } else {
                        "running".into()
                    };
                });
                self.save(c)?;
                c.gen.send_modify(|g| g.running = true);
                self.spawn_monitor(c.clone());
                self.start_health_monitor(c, false);
                tracing::info!(container_id = %c.id, pid = t.pid, "container found running again");
            }
            Some(t) => self.handle_exit(c, t.exit_status as i64).await,
            None => self.handle_exit(c, 255).await,
        }
        Ok(())
    }
}
