//! `POST /containers/{id}/update` (`docker update`): new resource limits and restart policy,
//! persisted and, for a running container, applied through Tasks.Update.
use serde::Deserialize;

use super::{Ctr, Daemon};
use crate::error::{ApiError, Result};
use crate::types::RestartPolicy;

/// The body of `POST /containers/{id}/update`: `Resources` fields plus `RestartPolicy`.
/// Zero (or absent) means "leave as it is", as in dockerd.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpdateConfig {
    pub cpu_shares: i64,
    pub memory: i64,
    pub nano_cpus: i64,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub memory_reservation: i64,
    pub memory_swap: i64,
    pub blkio_weight: u16,
    pub pids_limit: Option<i64>,
    pub restart_policy: Option<RestartPolicy>,
}

impl Daemon {
    /// Applies an update; returns dockerd's warnings (a blkio weight the kernel cannot apply).
    pub async fn update(&self, c: &Ctr, u: UpdateConfig) -> Result<Vec<String>> {
        let _op = c.op.lock().await;
        let rec = c.record();
        let mut hc = rec.host_config.clone();
        if u.memory != 0 {
            if u.memory < 6 * 1024 * 1024 {
                return Err(ApiError::invalid("Minimum memory limit allowed is 6MB"));
            }
            if u.memory_swap == 0 && hc.memory_swap > 0 && u.memory > hc.memory_swap {
                return Err(ApiError::invalid(
                    "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time",
                ));
            }
            hc.memory = u.memory;
        }
        if u.memory_swap != 0 {
            hc.memory_swap = u.memory_swap;
        }
        if hc.memory_swap > 0 && hc.memory > 0 && hc.memory_swap < hc.memory {
            return Err(ApiError::invalid(
                "Minimum memoryswap limit should be larger than memory limit, see usage",
            ));
        }
        if u.memory_reservation != 0 {
            hc.memory_reservation = u.memory_reservation;
        }
        if u.cpu_shares != 0 {
            hc.cpu_shares = u.cpu_shares;
        }
        if u.nano_cpus != 0 {
            if hc.cpu_quota > 0 || u.cpu_quota > 0 {
                return Err(ApiError::conflict(
                    "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set",
                ));
            }
            hc.nano_cpus = u.nano_cpus;
        }
        if u.cpu_period != 0 {
            hc.cpu_period = u.cpu_period;
        }
        if u.cpu_quota != 0 {
            if hc.nano_cpus > 0 {
                return Err(ApiError::conflict(
                    "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set",
                ));
            }
            hc.cpu_quota = u.cpu_quota;
        }
        if !u.cpuset_cpus.is_empty() {
            hc.cpuset_cpus = u.cpuset_cpus.clone();
        }
        if !u.cpuset_mems.is_empty() {
            hc.cpuset_mems = u.cpuset_mems.clone();
        }
        let mut warnings = Vec::new();
        if u.blkio_weight != 0 && !self.blkio.weight {
            warnings.push(crate::sysinfo::WEIGHT_DISCARDED.to_string());
        } else if u.blkio_weight != 0 {
            if !(10..=1000).contains(&u.blkio_weight) {
                return Err(ApiError::invalid(
                    "Range of blkio weight is from 10 to 1000",
                ));
            }
            hc.blkio_weight = u.blkio_weight;
        }
        if let Some(p) = u.pids_limit.filter(|p| *p != 0) {
            hc.pids_limit = Some(p);
        }
        if let Some(p) = u.restart_policy.filter(|p| !p.name.is_empty()) {
            if hc.auto_remove && p.name != "no" {
                return Err(ApiError::invalid(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container",
                ));
            }
            if !matches!(
                p.name.as_str(),
                "no" | "always" | "unless-stopped" | "on-failure"
            ) {
                return Err(ApiError::invalid(format!(
                    "invalid restart policy '{}'",
                    p.name
                )));
            }
            hc.restart_policy = p;
        }
        if c.is_running() {
            let mut res =
                crate::spec::resources(&hc).map_err(|e| ApiError::invalid(e.to_string()))?;
            if let Some(m) = res.as_object_mut() {
                m.remove("devices");
            }
            let json = serde_json::to_vec(&res).map_err(|e| ApiError::io("encode resources", e))?;
            self.cd.update_task(&c.id, json).await.map_err(|e| {
                ApiError::internal(format!("Cannot update container {}: {}", c.id, e.message()))
            })?;
        }
        c.update(|r| r.host_config = hc);
        self.save(c)?;
        self.emit_container(c, "update");
        Ok(warnings)
    }
}
