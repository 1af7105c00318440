//! `events`: the container's cgroup counters as runc's JSON events, once (`--stats`) or
//! every `--interval`, plus `oom` events when the kernel's OOM killer hits the cgroup.
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cgroups::stats;
use crate::error::{Context, Error, Result};
use crate::state::{State, Status};

/// A Go duration (`5s`, `100ms`, `1m30s`, `1.5h`).
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || Error::InvalidArgument(format!("invalid duration {s:?}"));
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let v: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += v * scale;
        rest = &rest[u..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// The OOM-kill counter of the container's memory cgroup (v1 oom_control or v2 memory.events).
fn oom_kills(st: &State) -> u64 {
    let read = |p: &Path, f: &str, key: &str| -> Option<u64> {
        std::fs::read_to_string(p.join(f))
            .ok()?
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok()).flatten()
            })
    };
    if let Some(d) = st.cgroup.v1.get("memory") {
        return read(d, "memory.oom_control", "oom_kill").unwrap_or(0);
    }
    st.cgroup
        .unified
        .as_deref()
        .and_then(|d| read(d, "memory.events", "oom_kill"))
        .unwrap_or(0)
}

fn emit(kind: &str, id: &str, data: Option<serde_json::Value>) -> Result<()> {
    let v = match data {
        Some(d) => json!({"type": kind, "id": id, "data": d}),
        None => json!({"type": kind, "id": id}),
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{v}").ctx(|| "write stdout".into())?;
    out.flush().ctx(|| "write stdout".into())
}

pub fn events(root: &Path, id: &str, once: bool, interval: Duration) -> Result<()> {
    let st = State::load(root, id)?;
    if st.status(root) == Status::Stopped {
        return Err(Error::State(format!(
            "container with id {id} is not running"
        )));
    }
    if once {
        return emit("stats", id, Some(stats::stats(&st.cgroup)));
    }
    if interval.is_zero() {
        return Err(Error::InvalidArgument(
            "duration interval must be greater than 0".into(),
        ));
    }
    let mut ooms = oom_kills(&st);
    let mut next = Instant::now();
    // Until the container stops: stats every interval, OOM kills as soon as they are seen.
    while st.init_alive() {
        let now = Instant::now();
        if now >= next {
            emit("stats", id, Some(stats::stats(&st.cgroup)))?;
            next = now + interval;
        }
        let o = oom_kills(&st);
        if o > ooms {
            emit("oom", id, None)?;
            ooms = o;
        }
        std::thread::sleep(interval.min(Duration::from_millis(100)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("5s").ok(), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_duration("100ms").ok(),
            Some(Duration::from_millis(100))
        );
        assert_eq!(parse_duration("1m30s").ok(), Some(Duration::from_secs(90)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("x").is_err());
    }
}
