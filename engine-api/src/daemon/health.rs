//! Health checks (`--health-*`, the image's HEALTHCHECK): a probe exec every interval, the
//! result log in `State.Health`, and `health_status: …` events, as dockerd's daemon/health.go.
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::exec::{Exec, ExecConfig};
use super::{Ctr, Daemon};
use crate::types;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: i64 = 3;
/// Results kept in `State.Health.Log`, and output bytes kept per result.
const MAX_LOG: usize = 5;
const MAX_OUTPUT: usize = 4096;

/// A parsed `Config.Healthcheck`.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub argv: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: i64,
}

fn duration(v: &Value, default: Duration) -> Duration {
    match v.as_i64() {
        Some(ns) if ns > 0 => Duration::from_nanos(ns as u64),
        _ => default,
    }
}

/// The probe of a container, or `None` without one (absent, empty or `["NONE"]`).
pub fn parse(hc: &Value, shell: Option<&[String]>) -> Option<Check> {
    let test: Vec<String> = hc["Test"]
        .as_array()?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let argv = match test.first().map(String::as_str) {
        Some("CMD") => test[1..].to_vec(),
        Some("CMD-SHELL") => {
            let mut a = match shell {
                Some(s) if !s.is_empty() => s.to_vec(),
                _ => vec!["/bin/sh".to_string(), "-c".to_string()],
            };
            a.push(test[1..].join(" "));
            a
        }
        _ => return None,
    };
    if argv.is_empty() {
        return None;
    }
    Some(Check {
        argv,
        interval: duration(&hc["Interval"], DEFAULT_INTERVAL),
        timeout: duration(&hc["Timeout"], DEFAULT_TIMEOUT),
        start_period: duration(&hc["StartPeriod"], Duration::ZERO),
        start_interval: duration(&hc["StartInterval"], DEFAULT_START_INTERVAL),
        retries: hc["Retries"]
            .as_i64()
            .filter(|r| *r > 0)
            .unwrap_or(DEFAULT_RETRIES),
    })
}

/// `ps`'s suffix: `health: starting`, `healthy`, `unhealthy`.
pub fn status_suffix(health: &Value) -> Option<String> {
    match health["Status"].as_str()? {
        "starting" => Some("health: starting".to_string()),
        "" | "none" => None,
        s => Some(s.to_string()),
    }
}

/// One probe's result.
struct Probe {
    start: String,
    end: String,
    exit_code: i64,
    output: String,
}

impl Daemon {
    /// Starts the monitor of a running container, if it has a health check; `fresh` (a new
    /// run, not a daemon restart) resets the status to `starting`.
    pub(super) fn start_health_monitor(self: &Arc<Self>, c: &Arc<Ctr>, fresh: bool) {
        let rec = c.record();
        let Some(check) = rec
            .config
            .healthcheck
            .as_ref()
            .and_then(|h| parse(h, rec.config.shell.as_deref()))
        else {
            return;
        };
        c.update(|r| {
            if fresh || r.state.health.is_none() {
                r.state.health = Some(json!({"Status": "starting", "FailingStreak": 0, "Log": []}));
            }
        });
        let _ = self.save(c);
        let runs = c.gen.borrow().exits;
        let d = self.clone();
        let c = c.clone();
        tokio::spawn(async move { d.health_loop(c, check, runs).await });
    }

    async fn health_loop(self: Arc<Self>, c: Arc<Ctr>, check: Check, runs: u64) {
        let mut gen = c.gen.subscribe();
        let started = std::time::Instant::now();
        loop {
            let starting = c.update(|r| {
                r.state
                    .health
                    .as_ref()
                    .and_then(|h| h["Status"].as_str().map(str::to_string))
            }) == Some("starting".to_string());
            let wait = if starting && started.elapsed() < check.start_period {
                check.start_interval
            } else {
                check.interval
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = gen.wait_for(|g| g.exits != runs || g.removed) => return,
            }
            if c.gen.borrow().exits != runs || !c.is_running() {
                return;
            }
            if c.state().paused {
                continue;
            }
            let probe = self.probe(&c, &check).await;
            if c.gen.borrow().exits != runs {
                return;
            }
            self.record_probe(&c, &check, probe, started.elapsed());
        }
    }

    /// Runs the probe as an exec; a timeout kills it and counts as exit -1.
    async fn probe(self: &Arc<Self>, c: &Arc<Ctr>, check: &Check) -> Probe {
        let start = types::now_rfc3339();
        let e = Arc::new(Exec::new(
            &c.id,
            ExecConfig {
                attach_stdout: true,
                attach_stderr: true,
                cmd: Some(check.argv.clone()),
                ..Default::default()
            },
        ));
        let mut out = e.hub.subscribe(true, true);
        let mut done = e.done.subscribe();
        if let Err(err) = self.exec_start(&e).await {
            return Probe {
                start,
                end: types::now_rfc3339(),
                exit_code: -1,
                output: err.to_string(),
            };
        }
        let mut output = Vec::new();
        let collect = async {
            while let Some((_, data)) = out.recv().await {
                let room = MAX_OUTPUT.saturating_sub(output.len());
                output.extend_from_slice(&data[..data.len().min(room)]);
            }
            let _ = done.wait_for(|d| *d).await;
        };
        let timed_out = tokio::time::timeout(check.timeout, collect).await.is_err();
        let (exit_code, text) = if timed_out {
            let _ = self.cd.kill(&c.id, &e.id, 9, false).await;
            (
                -1,
                format!(
                    "Health check exceeded timeout ({})",
                    go_duration(check.timeout)
                ),
            )
        } else {
            let code = e.info.lock().ok().and_then(|i| i.exit_code).unwrap_or(-1);
            (code, String::from_utf8_lossy(&output).into_owned())
        };
        Probe {
            start,
            end: types::now_rfc3339(),
            exit_code,
            output: text,
        }
    }

    fn record_probe(&self, c: &Ctr, check: &Check, p: Probe, since_start: Duration) {
        let changed = c.update(|r| {
            let h = r
                .state
                .health
                .get_or_insert_with(|| json!({"Status": "starting", "FailingStreak": 0, "Log": []}));
            let before = h["Status"].as_str().unwrap_or_default().to_string();
            let mut streak = h["FailingStreak"].as_i64().unwrap_or(0);
            let mut status = before.clone();
            if p.exit_code == 0 {
                streak = 0;
                status = "healthy".to_string();
            } else if !(before == "starting" && since_start < check.start_period) {
                streak += 1;
                if streak >= check.retries {
                    status = "unhealthy".to_string();
                }
            }
            let mut log: Vec<Value> = h["Log"].as_array().cloned().unwrap_or_default();
            log.push(json!({"Start": p.start, "End": p.end, "ExitCode": p.exit_code, "Output": p.output}));
            if log.len() > MAX_LOG {
                log.drain(..log.len() - MAX_LOG);
            }
            *h = json!({"Status": status, "FailingStreak": streak, "Log": log});
            (status != before).then_some(status)
        });
        let _ = self.save(c);
        if let Some(status) = changed {
            tracing::info!(container_id = %c.id, status, "health status changed");
            self.emit_container(c, &format!("health_status: {status}"));
        }
    }
}

/// Go's `time.Duration.String()` for whole and fractional seconds (`1s`, `1.5s`, `2m0s`).
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        let s = format!("{secs:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        return format!("{s}s");
    }
    let m = d.as_secs() / 60;
    format!("{m}m{}s", d.as_secs() % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthchecks_parse_like_dockerd() {
        let hc = json!({"Test": ["CMD-SHELL", "test -e /ok"], "Interval": 1_000_000_000i64, "Retries": 2});
        let c = parse(&hc, None).expect("check");
        assert_eq!(c.argv, ["/bin/sh", "-c", "test -e /ok"]);
        assert_eq!(c.interval, Duration::from_secs(1));
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.retries, 2);
        let c = parse(&json!({"Test": ["CMD", "true", "x"]}), None).expect("cmd");
        assert_eq!(c.argv, ["true", "x"]);
        assert_eq!(c.retries, 3);
        assert!(parse(&json!({"Test": ["NONE"]}), None).is_none());
        assert!(parse(&json!({}), None).is_none());
        let shell = ["/bin/ash".to_string(), "-ec".to_string()];
        let c = parse(&json!({"Test": ["CMD-SHELL", "x"]}), Some(&shell)).expect("shell");
        assert_eq!(c.argv, ["/bin/ash", "-ec", "x"]);
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(200)), "200ms");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
    }

    #[test]
    fn ps_suffixes() {
        assert_eq!(
            status_suffix(&json!({"Status": "starting"})).as_deref(),
            Some("health: starting")
        );
        assert_eq!(
            status_suffix(&json!({"Status": "healthy"})).as_deref(),
            Some("healthy")
        );
        assert_eq!(status_suffix(&json!({})), None);
    }
}
