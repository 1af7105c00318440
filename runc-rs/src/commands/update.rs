//! `update`: change a running container's resources from `--resources <file|->` or flags,
//! as runc does; the new values go into the cgroup and into state.json.
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;
use serde_json::{json, Map, Value};

use crate::error::{Context, Error, Result};
use crate::state::{State, Status};

/// runc's `update` flags (memory values take units: `100m`, `1g`, `-1`).
#[derive(Debug, Clone, Default)]
pub struct UpdateOpts {
    pub id: String,
    pub resources: Option<PathBuf>,
    pub blkio_weight: Option<u16>,
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_share: Option<u64>,
    pub cpu_rt_period: Option<u64>,
    pub cpu_rt_runtime: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    pub memory_swap: Option<String>,
    pub kernel_memory: Option<String>,
    pub kernel_memory_tcp: Option<String>,
    pub pids_limit: Option<i64>,
}

/// Docker's RAMInBytes: `1024`, `64k`, `100m`, `1.5g`, `-1` (unlimited).
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let bad = || Error::InvalidArgument(format!("invalid size: {s:?}"));
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (numpart, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        Some('p') => (&t[..t.len() - 1], 1 << 50),
        _ => (t, 1),
    };
    let v: f64 = numpart.trim().parse().map_err(|_| bad())?;
    if v < 0.0 || !v.is_finite() {
        return Err(bad());
    }
    Ok((v * mult as f64) as i64)
}

fn opt_bytes(v: &Option<String>) -> Result<Option<i64>> {
    v.as_deref().map(parse_bytes).transpose()
}

/// Inserts `key: value` when the value is set.
fn put<T: Into<Value>>(m: &mut Map<String, Value>, key: &str, v: Option<T>) {
    if let Some(v) = v {
        m.insert(key.into(), v.into());
    }
}

/// The requested change as resources JSON: from the file (or stdin), else from the flags.
fn requested(o: &UpdateOpts) -> Result<Value> {
    if let Some(p) = &o.resources {
        let mut data = Vec::new();
        if p == Path::new("-") {
            std::io::stdin()
                .read_to_end(&mut data)
                .ctx(|| "read resources from stdin".into())?;
        } else {
            data = std::fs::read(p).ctx(|| format!("read {}", p.display()))?;
        }
        crate::create::fix_oci_names(&mut data);
        // Checked against the spec's types, then used as JSON.
        let r: LinuxResources = serde_json::from_slice(&data)
            .map_err(|e| Error::InvalidArgument(format!("decode resources: {e}")))?;
        return serde_json::to_value(r).map_err(|e| Error::InvalidArgument(e.to_string()));
    }
    let mut mem = Map::new();
    put(&mut mem, "limit", opt_bytes(&o.memory)?);
    put(&mut mem, "reservation", opt_bytes(&o.memory_reservation)?);
    put(&mut mem, "swap", opt_bytes(&o.memory_swap)?);
    put(&mut mem, "kernel", opt_bytes(&o.kernel_memory)?);
    put(&mut mem, "kernelTCP", opt_bytes(&o.kernel_memory_tcp)?);
    let mut cpu = Map::new();
    put(&mut cpu, "shares", o.cpu_share);
    put(&mut cpu, "quota", o.cpu_quota);
    put(&mut cpu, "period", o.cpu_period);
    put(&mut cpu, "realtimePeriod", o.cpu_rt_period);
    put(&mut cpu, "realtimeRuntime", o.cpu_rt_runtime);
    put(&mut cpu, "cpus", o.cpuset_cpus.clone());
    put(&mut cpu, "mems", o.cpuset_mems.clone());
    let mut r = Map::new();
    if !mem.is_empty() {
        r.insert("memory".into(), mem.into());
    }
    if !cpu.is_empty() {
        r.insert("cpu".into(), cpu.into());
    }
    if let Some(l) = o.pids_limit {
        r.insert("pids".into(), json!({ "limit": l }));
    }
    if let Some(w) = o.blkio_weight {
        r.insert("blockIO".into(), json!({ "weight": w }));
    }
    Ok(Value::Object(r))
}

fn obj(v: &Value, key: &str) -> Map<String, Value> {
    v.get(key)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// The fields runc's update changes: memory, cpu, pids, blkio weight, unified. Returns the
/// merged full resources (for state.json) and the part to write to the cgroup.
pub(crate) fn merge(old: &LinuxResources, req: &Value) -> Result<(LinuxResources, LinuxResources)> {
    let enc = |e: serde_json::Error| Error::InvalidArgument(format!("resources: {e}"));
    let mut full = serde_json::to_value(old).map_err(enc)?;
    if !full.is_object() {
        full = json!({});
    }
    let mut delta = Map::new();
    for key in ["memory", "cpu", "unified"] {
        let add = obj(req, key);
        if add.is_empty() {
            continue;
        }
        let mut cur = obj(&full, key);
        cur.extend(add.clone());
        full[key] = cur.into();
        delta.insert(key.into(), add.into());
    }
    if let Some(p) = req.get("pids").filter(|p| p.is_object()) {
        full["pids"] = p.clone();
        delta.insert("pids".into(), p.clone());
    }
    if let Some(w) = req.get("blockIO").and_then(|b| b.get("weight")) {
        let mut cur = obj(&full, "blockIO");
        cur.insert("weight".into(), w.clone());
        full["blockIO"] = cur.into();
        delta.insert("blockIO".into(), json!({ "weight": w }));
    }
    Ok((
        serde_json::from_value(full).map_err(enc)?,
        serde_json::from_value(Value::Object(delta)).map_err(enc)?,
    ))
}

pub fn update(root: &Path, o: &UpdateOpts) -> Result<()> {
    let mut st = State::load(root, &o.id)?;
    if st.status(root) == Status::Stopped {
        return Err(Error::State("container not running".into()));
    }
    let req = requested(o)?;
    let old = st
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    let (full, delta) = merge(&old, &req)?;
    st.cgroup.apply(Some(&delta), false)?;
    if let Some(l) = st.config.linux_mut() {
        l.set_resources(Some(full));
    }
    st.save(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_units() {
        assert_eq!(parse_bytes("1024").ok(), Some(1024));
        assert_eq!(parse_bytes("64k").ok(), Some(65536));
        assert_eq!(parse_bytes("100M").ok(), Some(100 << 20));
        assert_eq!(parse_bytes("1gb").ok(), Some(1 << 30));
        assert_eq!(parse_bytes("-1").ok(), Some(-1));
        assert!(parse_bytes("ten").is_err());
    }

    #[test]
    fn merge_keeps_unrequested_fields() {
        let old: LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":100,"reservation":50},"cpu":{"shares":512,"cpus":"0"},
                "devices":[{"allow":false,"access":"rwm"}]}"#,
        )
        .expect("json");
        let req = json!({"memory":{"limit":200},"pids":{"limit":7}});
        let (full, delta) = merge(&old, &req).expect("merge");
        let m = full.memory().expect("memory");
        assert_eq!((m.limit(), m.reservation()), (Some(200), Some(50)));
        assert_eq!(full.cpu().as_ref().and_then(|c| c.shares()), Some(512));
        assert_eq!(full.pids().as_ref().map(|p| p.limit()), Some(7));
        assert_eq!(full.devices().as_ref().map(Vec::len), Some(1));
        // Only what was asked for reaches the cgroup: the device rules are not rewritten.
        assert!(delta.devices().is_none());
        assert!(delta.cpu().is_none());
        assert_eq!(delta.memory().as_ref().and_then(|m| m.reservation()), None);
    }
}
