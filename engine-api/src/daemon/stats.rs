//! `docker stats`: readings of a container's resource usage as dockerd makes them.
//!
//! The cgroup counters come from containerd, as dockerd gets them: Tasks.Metrics answers the
//! shim's `io.containerd.cgroups.v1.Metrics` (legacy and hybrid hosts) or
//! `io.containerd.cgroups.v2.Metrics` (unified hosts), converted field by field as moby's
//! `daemon/stats_unix.go` (`statsV1`, `statsV2`) does. What dockerd computes itself is computed
//! here too: the host's CPU time and online CPUs from /proc/stat (`getSystemCPUUsage`), the memory
//! limit capped at the host's memory (`machineMemory`), the counters of the container's network
//! namespace, `read` (the Metric's timestamp) and, in the handler, `preread`/`precpu_stats`.
//! The JSON keys are those of the Engine API's `ContainerStatsResponse` (moby's
//! `api/types/container/stats.go`, with its `omitempty`s).
use std::collections::BTreeMap;
use std::sync::OnceLock;

use proto::cgroups::{v1, v2};
use serde::Serialize;

use super::{Ctr, Daemon};
use crate::containerd_ext::CgroupMetrics;
use crate::error::Result;
use crate::types::ZERO_TIME;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// `cpu_stats.cpu_usage`, in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuUsage {
    pub total_usage: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_usage: Vec<u64>,
    pub usage_in_kernelmode: u64,
    pub usage_in_usermode: u64,
}

/// `cpu_stats.throttling_data` (time in nanoseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ThrottlingData {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
}

/// `cpu_stats` and `precpu_stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuStats {
    pub cpu_usage: CpuUsage,
    #[serde(skip_serializing_if = "is_zero")]
    pub system_cpu_usage: u64,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub online_cpus: u32,
    pub throttling_data: ThrottlingData,
}

/// `memory_stats`; `stats` holds the memory.stat counters under dockerd's names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoryStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max_usage: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub stats: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "is_zero")]
    pub failcnt: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

/// `pids_stats` (`limit` 0: no limit).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PidsStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

/// One entry of a `blkio_stats` list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

/// `blkio_stats`: a list that the cgroup did not report is `null`, as Go's nil slices are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlkioStats {
    pub io_service_bytes_recursive: Option<Vec<BlkioEntry>>,
    pub io_serviced_recursive: Option<Vec<BlkioEntry>>,
    pub io_queue_recursive: Option<Vec<BlkioEntry>>,
    pub io_service_time_recursive: Option<Vec<BlkioEntry>>,
    pub io_wait_time_recursive: Option<Vec<BlkioEntry>>,
    pub io_merged_recursive: Option<Vec<BlkioEntry>>,
    pub io_time_recursive: Option<Vec<BlkioEntry>>,
    pub sectors_recursive: Option<Vec<BlkioEntry>>,
}

/// One interface of `networks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NetworkStats {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// `storage_stats`: Windows only, so always `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StorageStats {}

/// One reading of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// RFC 3339 with nanoseconds; Go's zero time for an empty reading.
    pub read: String,
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub blkio: BlkioStats,
    pub networks: BTreeMap<String, NetworkStats>,
}

impl Sample {
    /// What dockerd publishes for a container that is not running or has no task: zero values
    /// (the response then carries only its name and id).
    pub fn empty() -> Self {
        Sample {
            read: ZERO_TIME.to_string(),
            cpu: CpuStats::default(),
            memory: MemoryStats::default(),
            pids: PidsStats::default(),
            blkio: BlkioStats::default(),
            networks: BTreeMap::new(),
        }
    }

    /// The cgroup part of a reading, converted as dockerd's `statsV1`/`statsV2` do.
    pub fn from_metrics(m: &CgroupMetrics) -> Self {
        match m {
            CgroupMetrics::V1(m) => from_v1(m),
            CgroupMetrics::V2(m) => from_v2(m),
        }
    }
}

/// The JSON of one stats line (the Engine API's `ContainerStatsResponse`), in the key order
/// dockerd writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatsResponse {
    pub read: String,
    pub preread: String,
    pub pids_stats: PidsStats,
    pub blkio_stats: BlkioStats,
    pub num_procs: u32,
    pub storage_stats: StorageStats,
    pub cpu_stats: CpuStats,
    pub precpu_stats: CpuStats,
    pub memory_stats: MemoryStats,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, NetworkStats>,
}

impl StatsResponse {
    /// The reading `cur` of container `name` (with its slash) / `id`, `prev` giving
    /// `preread` and `precpu_stats`.
    pub fn new(name: &str, id: &str, cur: &Sample, prev: &Sample) -> Self {
        StatsResponse {
            read: cur.read.clone(),
            preread: prev.read.clone(),
            pids_stats: cur.pids.clone(),
            blkio_stats: cur.blkio.clone(),
            num_procs: 0,
            storage_stats: StorageStats {},
            cpu_stats: cur.cpu.clone(),
            precpu_stats: prev.cpu.clone(),
            memory_stats: cur.memory.clone(),
            name: name.to_string(),
            id: id.to_string(),
            networks: cur.networks.clone(),
        }
    }
}

fn blkio_v1(entries: &[v1::BlkIoEntry]) -> Option<Vec<BlkioEntry>> {
    Some(
        entries
            .iter()
            .map(|e| BlkioEntry {
                major: e.major,
                minor: e.minor,
                op: e.op.clone(),
                value: e.value,
            })
            .collect(),
    )
}

/// memory.stat of a v1 cgroup under the names dockerd gives them.
fn memory_stat_v1(m: &v1::MemoryStat) -> BTreeMap<String, u64> {
    [
        ("cache", m.cache),
        ("rss", m.rss),
        ("rss_huge", m.rss_huge),
        ("mapped_file", m.mapped_file),
        ("dirty", m.dirty),
        ("writeback", m.writeback),
        ("pgpgin", m.pg_pg_in),
        ("pgpgout", m.pg_pg_out),
        ("pgfault", m.pg_fault),
        ("pgmajfault", m.pg_maj_fault),
        ("inactive_anon", m.inactive_anon),
        ("active_anon", m.active_anon),
        ("inactive_file", m.inactive_file),
        ("active_file", m.active_file),
        ("unevictable", m.unevictable),
        ("hierarchical_memory_limit", m.hierarchical_memory_limit),
        ("hierarchical_memsw_limit", m.hierarchical_swap_limit),
        ("total_cache", m.total_cache),
        ("total_rss", m.total_rss),
        ("total_rss_huge", m.total_rss_huge),
        ("total_mapped_file", m.total_mapped_file),
        ("total_dirty", m.total_dirty),
        ("total_writeback", m.total_writeback),
        ("total_pgpgin", m.total_pg_pg_in),
        ("total_pgpgout", m.total_pg_pg_out),
        ("total_pgfault", m.total_pg_fault),
        ("total_pgmajfault", m.total_pg_maj_fault),
        ("total_inactive_anon", m.total_inactive_anon),
        ("total_active_anon", m.total_active_anon),
        ("total_inactive_file", m.total_inactive_file),
        ("total_active_file", m.total_active_file),
        ("total_unevictable", m.total_unevictable),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// dockerd's `statsV1`: a legacy or hybrid host's Metrics.
fn from_v1(m: &v1::Metrics) -> Sample {
    let mut s = Sample::empty();
    if let Some(b) = &m.blkio {
        s.blkio = BlkioStats {
            io_service_bytes_recursive: blkio_v1(&b.io_service_bytes_recursive),
            io_serviced_recursive: blkio_v1(&b.io_serviced_recursive),
            io_queue_recursive: blkio_v1(&b.io_queued_recursive),
            io_service_time_recursive: blkio_v1(&b.io_service_time_recursive),
            io_wait_time_recursive: blkio_v1(&b.io_wait_time_recursive),
            io_merged_recursive: blkio_v1(&b.io_merged_recursive),
            io_time_recursive: blkio_v1(&b.io_time_recursive),
            sectors_recursive: blkio_v1(&b.sectors_recursive),
        };
    }
    if let Some(cpu) = &m.cpu {
        let usage = cpu.usage.clone().unwrap_or_default();
        let thr = cpu.throttling.unwrap_or_default();
        s.cpu = CpuStats {
            cpu_usage: CpuUsage {
                total_usage: usage.total,
                percpu_usage: usage.per_cpu,
                usage_in_kernelmode: usage.kernel,
                usage_in_usermode: usage.user,
            },
            throttling_data: ThrottlingData {
                periods: thr.periods,
                throttled_periods: thr.throttled_periods,
                throttled_time: thr.throttled_time,
            },
            ..CpuStats::default()
        };
    }
    if let Some(mem) = &m.memory {
        let usage = mem.usage.unwrap_or_default();
        s.memory = MemoryStats {
            usage: usage.usage,
            max_usage: usage.max,
            stats: memory_stat_v1(mem),
            failcnt: usage.failcnt,
            limit: usage.limit,
        };
    }
    if let Some(p) = &m.pids {
        s.pids = PidsStats {
            current: p.current,
            limit: p.limit,
        };
    }
    s
}

/// memory.stat of a v2 cgroup under the names dockerd gives them (the kernel's own).
fn memory_stat_v2(m: &v2::MemoryStat) -> BTreeMap<String, u64> {
    [
        ("anon", m.anon),
        ("file", m.file),
        ("kernel_stack", m.kernel_stack),
        ("slab", m.slab),
        ("sock", m.sock),
        ("shmem", m.shmem),
        ("file_mapped", m.file_mapped),
        ("file_dirty", m.file_dirty),
        ("file_writeback", m.file_writeback),
        ("anon_thp", m.anon_thp),
        ("inactive_anon", m.inactive_anon),
        ("active_anon", m.active_anon),
        ("inactive_file", m.inactive_file),
        ("active_file", m.active_file),
        ("unevictable", m.unevictable),
        ("slab_reclaimable", m.slab_reclaimable),
        ("slab_unreclaimable", m.slab_unreclaimable),
        ("pgfault", m.pgfault),
        ("pgmajfault", m.pgmajfault),
        ("workingset_refault", m.workingset_refault),
        ("workingset_activate", m.workingset_activate),
        ("workingset_nodereclaim", m.workingset_nodereclaim),
        ("pgrefill", m.pgrefill),
        ("pgscan", m.pgscan),
        ("pgsteal", m.pgsteal),
        ("pgactivate", m.pgactivate),
        ("pgdeactivate", m.pgdeactivate),
        ("pglazyfree", m.pglazyfree),
        ("pglazyfreed", m.pglazyfreed),
        ("thp_fault_alloc", m.thp_fault_alloc),
        ("thp_collapse_alloc", m.thp_collapse_alloc),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// dockerd's `statsV2`: a unified host's Metrics. cpu.stat's microseconds become nanoseconds;
/// io.stat gives only `io_service_bytes_recursive` (a `read` and a `write` entry per device);
/// there is no per-CPU usage and no `max_usage`; `failcnt` is memory.events' `oom`.
fn from_v2(m: &v2::Metrics) -> Sample {
    let mut s = Sample::empty();
    if let Some(io) = &m.io {
        let entries: Vec<BlkioEntry> = io
            .usage
            .iter()
            .flat_map(|e| {
                [("read", e.rbytes), ("write", e.wbytes)].map(|(op, value)| BlkioEntry {
                    major: e.major,
                    minor: e.minor,
                    op: op.to_string(),
                    value,
                })
            })
            .collect();
        // Go appends to a nil slice: no device, no list.
        s.blkio.io_service_bytes_recursive = (!entries.is_empty()).then_some(entries);
    }
    if let Some(cpu) = &m.cpu {
        s.cpu = CpuStats {
            cpu_usage: CpuUsage {
                total_usage: cpu.usage_usec.saturating_mul(1000),
                percpu_usage: Vec::new(),
                usage_in_kernelmode: cpu.system_usec.saturating_mul(1000),
                usage_in_usermode: cpu.user_usec.saturating_mul(1000),
            },
            throttling_data: ThrottlingData {
                periods: cpu.nr_periods,
                throttled_periods: cpu.nr_throttled,
                throttled_time: cpu.throttled_usec.saturating_mul(1000),
            },
            ..CpuStats::default()
        };
    }
    if let Some(mem) = &m.memory {
        s.memory = MemoryStats {
            usage: mem.usage,
            max_usage: 0,
            stats: memory_stat_v2(mem),
            failcnt: m.memory_events.as_ref().map_or(0, |e| e.oom),
            limit: mem.usage_limit,
        };
    }
    if let Some(p) = &m.pids {
        s.pids = PidsStats {
            current: p.current,
            limit: p.limit,
        };
    }
    s
}

/// USER_HZ: dockerd takes the clock-tick rate of /proc/stat as the constant 100.
const CLOCK_TICKS_PER_SECOND: u64 = 100;

/// The host's CPU time in nanoseconds and its number of online CPUs from /proc/stat, read as
/// dockerd's `getSystemCPUUsage` reads it: the first seven fields of the `cpu` line (user nice
/// system idle iowait irq softirq, in clock ticks) and the count of `cpuN` lines.
pub fn parse_proc_stat(text: &str) -> (u64, u32) {
    let (mut usage, mut cpus) = (0u64, 0u32);
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            break;
        };
        if rest.starts_with(' ') {
            let ticks: u64 = rest
                .split_whitespace()
                .take(7)
                .filter_map(|v| v.parse::<u64>().ok())
                .fold(0, u64::saturating_add);
            usage = ticks.saturating_mul(1_000_000_000 / CLOCK_TICKS_PER_SECOND);
        } else if rest.starts_with(|c: char| c.is_ascii_digit()) {
            cpus += 1;
        }
    }
    (usage, cpus)
}

/// `MemTotal` of /proc/meminfo in bytes (0 when it cannot be read).
pub fn parse_mem_total(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb.saturating_mul(1024))
}

/// The host's memory, read once as dockerd reads its `machineMemory` at start (also `docker
/// info`'s MemTotal).
pub fn machine_memory() -> u64 {
    static MEM: OnceLock<u64> = OnceLock::new();
    *MEM.get_or_init(|| {
        std::fs::read_to_string("/proc/meminfo")
            .map(|t| parse_mem_total(&t))
            .unwrap_or(0)
    })
}

/// dockerd: "if the container does not set memory limit, use the machineMemory".
pub fn cap_limit(limit: u64, machine: u64) -> u64 {
    if machine > 0 && limit > machine {
        machine
    } else {
        limit
    }
}

/// The interfaces of a /proc/<pid>/net/dev other than `lo`.
pub fn parse_net_dev(text: &str) -> BTreeMap<String, NetworkStats> {
    let mut out = BTreeMap::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        if f.len() < 12 {
            continue;
        }
        out.insert(
            name.to_string(),
            NetworkStats {
                rx_bytes: f[0],
                rx_packets: f[1],
                rx_errors: f[2],
                rx_dropped: f[3],
                tx_bytes: f[8],
                tx_packets: f[9],
                tx_errors: f[10],
                tx_dropped: f[11],
            },
        );
    }
    out
}

/// A protobuf timestamp as dockerd prints times (RFC 3339, nanoseconds, UTC).
fn rfc3339(t: &prost_types::Timestamp) -> Option<String> {
    let nanos = u32::try_from(t.nanos).ok()?;
    chrono::DateTime::from_timestamp(t.seconds, nanos)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
}

impl Daemon {
    /// One reading of `c`: empty when it is not running or containerd has no task for it (as
    /// dockerd publishes for a container it cannot read), else its task's Metrics plus what
    /// dockerd adds itself (host CPU time and CPUs, the capped memory limit, the network
    /// namespace's counters). A failing containerd call is the error.
    pub async fn stats_sample(&self, c: &Ctr) -> Result<Sample> {
        let state = c.state();
        if !state.running || state.restarting {
            return Ok(Sample::empty());
        }
        let Some(m) = self.cd.task_metrics(&c.id).await? else {
            return Ok(Sample::empty());
        };
        let mut s = Sample::from_metrics(&m.data);
        s.read = m
            .timestamp
            .as_ref()
            .and_then(rfc3339)
            .unwrap_or_else(crate::types::now_rfc3339);
        // Sampled right after the container, as dockerd does, to keep the CPU ratio steady.
        let (system, cpus) = std::fs::read_to_string("/proc/stat")
            .map(|t| parse_proc_stat(&t))
            .unwrap_or_default();
        s.cpu.system_cpu_usage = system;
        s.cpu.online_cpus = cpus;
        s.memory.limit = cap_limit(s.memory.limit, machine_memory());
        // A host-network container has no namespace of its own: dockerd reports no networks.
        if state.pid > 0 && c.record().host_config.network_mode != "host" {
            if let Ok(t) = std::fs::read_to_string(format!("/proc/{}/net/dev", state.pid)) {
                s.networks = parse_net_dev(&t);
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn line(cur: &Sample, prev: &Sample) -> Value {
        serde_json::to_value(StatsResponse::new("/web", "c0ffee", cur, prev)).expect("json")
    }

    /// What containerd-shim-runc-v2 (and our shim) answers on a hybrid host for a container
    /// with `-m 64m --pids-limit 50 --cpus 0.5` running a busy loop after some disk I/O.
    fn v1_metrics() -> v1::Metrics {
        let bio = |op: &str, value| v1::BlkIoEntry {
            op: op.to_string(),
            device: String::new(),
            major: 8,
            minor: 0,
            value,
        };
        v1::Metrics {
            hugetlb: vec![v1::HugetlbStat {
                pagesize: "2MB".to_string(),
                ..Default::default()
            }],
            pids: Some(v1::PidsStat {
                current: 2,
                limit: 50,
            }),
            cpu: Some(v1::CpuStat {
                usage: Some(v1::CpuUsage {
                    total: 2_051_234_567,
                    kernel: 30_000_000,
                    user: 2_010_000_000,
                    per_cpu: vec![1_000_000_000, 1_051_234_567],
                }),
                throttling: Some(v1::Throttle {
                    periods: 41,
                    throttled_periods: 39,
                    throttled_time: 1_950_123_456,
                }),
            }),
            memory: Some(v1::MemoryStat {
                cache: 8_650_752,
                rss: 421_888,
                mapped_file: 4096,
                pg_pg_in: 4_381,
                pg_pg_out: 2_162,
                pg_fault: 4_815,
                pg_maj_fault: 1,
                active_anon: 421_888,
                inactive_file: 8_388_608,
                active_file: 262_144,
                hierarchical_memory_limit: 67_108_864,
                hierarchical_swap_limit: 134_217_728,
                total_cache: 8_650_752,
                total_rss: 421_888,
                total_mapped_file: 4096,
                total_pg_pg_in: 4_381,
                total_pg_pg_out: 2_162,
                total_pg_fault: 4_815,
                total_pg_maj_fault: 1,
                total_active_anon: 421_888,
                total_inactive_file: 8_388_608,
                total_active_file: 262_144,
                usage: Some(v1::MemoryEntry {
                    limit: 67_108_864,
                    usage: 9_474_048,
                    max: 10_002_432,
                    failcnt: 3,
                }),
                swap: Some(v1::MemoryEntry {
                    limit: 134_217_728,
                    usage: 9_474_048,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            blkio: Some(v1::BlkIoStat {
                io_service_bytes_recursive: vec![
                    bio("Read", 8_388_608),
                    bio("Write", 8_388_608),
                    bio("Sync", 16_777_216),
                    bio("Async", 0),
                    bio("Discard", 0),
                    bio("Total", 16_777_216),
                ],
                io_serviced_recursive: vec![bio("Read", 8), bio("Write", 8)],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn v1_metrics_become_dockerd_stats_json() {
        let mut cur = Sample::from_metrics(&CgroupMetrics::V1(Box::new(v1_metrics())));
        cur.read = "2024-05-06T07:08:09.123456789Z".to_string();
        cur.cpu.system_cpu_usage = 8_730_560_000_000;
        cur.cpu.online_cpus = 2;
        let v = line(&cur, &Sample::empty());
        assert_eq!(v["read"], "2024-05-06T07:08:09.123456789Z");
        assert_eq!(v["preread"], ZERO_TIME);
        assert_eq!(
            (&v["name"], &v["id"], &v["num_procs"]),
            (&json!("/web"), &json!("c0ffee"), &json!(0))
        );
        assert_eq!(
            v["cpu_stats"],
            json!({
                "cpu_usage": {"total_usage": 2_051_234_567u64,
                    "percpu_usage": [1_000_000_000u64, 1_051_234_567u64],
                    "usage_in_kernelmode": 30_000_000, "usage_in_usermode": 2_010_000_000u64},
                "system_cpu_usage": 8_730_560_000_000u64,
                "online_cpus": 2,
                "throttling_data": {"periods": 41, "throttled_periods": 39,
                    "throttled_time": 1_950_123_456u64}
            })
        );
        assert_eq!(
            v["precpu_stats"],
            json!({"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                   "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}})
        );
        let mem = &v["memory_stats"];
        assert_eq!(mem["usage"], 9_474_048);
        assert_eq!(mem["max_usage"], 10_002_432);
        assert_eq!(mem["limit"], 67_108_864);
        assert_eq!(mem["failcnt"], 3);
        let stats = mem["stats"].as_object().expect("stats");
        assert_eq!(stats.len(), 32, "{stats:?}");
        for (k, want) in [
            ("cache", 8_650_752u64),
            ("rss", 421_888),
            ("rss_huge", 0),
            ("pgpgin", 4_381),
            ("pgmajfault", 1),
            ("inactive_file", 8_388_608),
            ("hierarchical_memory_limit", 67_108_864),
            ("hierarchical_memsw_limit", 134_217_728),
            ("total_pgpgout", 2_162),
            ("total_inactive_file", 8_388_608),
            ("total_active_file", 262_144),
            ("total_unevictable", 0),
        ] {
            assert_eq!(stats.get(k), Some(&json!(want)), "{k}: {stats:?}");
        }
        assert_eq!(v["pids_stats"], json!({"current": 2, "limit": 50}));
        let blk = &v["blkio_stats"];
        assert_eq!(
            blk["io_service_bytes_recursive"][0],
            json!({"major": 8, "minor": 0, "op": "Read", "value": 8_388_608})
        );
        assert_eq!(
            blk["io_service_bytes_recursive"].as_array().map(Vec::len),
            Some(6)
        );
        assert_eq!(
            blk["io_serviced_recursive"][1],
            json!({"major": 8, "minor": 0, "op": "Write", "value": 8})
        );
        // Lists the cgroup reported empty are [], as dockerd's copyBlkioEntry makes them.
        assert_eq!(blk["io_queue_recursive"], json!([]));
        assert_eq!(blk["sectors_recursive"], json!([]));
        assert_eq!(v["storage_stats"], json!({}));
        assert!(v.get("networks").is_none(), "{v}");
    }

    #[test]
    fn v1_metrics_without_parts_leave_zero_values() {
        let m = v1::Metrics {
            cpu: Some(v1::CpuStat::default()),
            memory: Some(v1::MemoryStat::default()),
            ..Default::default()
        };
        let v = line(
            &Sample::from_metrics(&CgroupMetrics::V1(Box::new(m))),
            &Sample::empty(),
        );
        assert_eq!(v["cpu_stats"]["cpu_usage"]["total_usage"], 0);
        assert!(v["cpu_stats"]["cpu_usage"].get("percpu_usage").is_none());
        assert_eq!(v["memory_stats"]["stats"]["total_inactive_file"], 0);
        assert!(v["memory_stats"].get("usage").is_none(), "{v}");
        assert_eq!(v["pids_stats"], json!({}));
        assert_eq!(v["blkio_stats"]["io_service_bytes_recursive"], Value::Null);
    }

    /// What our shim answers on a unified host (shim/src/metrics.rs `from_runc_stats_v2`) for
    /// a throttled busy container that wrote to two devices.
    fn v2_metrics() -> v2::Metrics {
        v2::Metrics {
            pids: Some(v2::PidsStat {
                current: 3,
                limit: 64,
            }),
            cpu: Some(v2::CpuStat {
                usage_usec: 81_234,
                user_usec: 60_234,
                system_usec: 21_000,
                nr_periods: 40,
                nr_throttled: 3,
                throttled_usec: 12_345,
            }),
            memory: Some(v2::MemoryStat {
                anon: 2_433_024,
                file: 1_212_416,
                kernel_stack: 32_768,
                slab: 294_912,
                shmem: 4096,
                file_mapped: 1_150_976,
                file_dirty: 8192,
                inactive_anon: 2_420_736,
                active_anon: 12_288,
                inactive_file: 606_208,
                active_file: 606_208,
                slab_reclaimable: 118_784,
                slab_unreclaimable: 176_128,
                pgfault: 1_419,
                pgmajfault: 11,
                workingset_refault: 5,
                thp_fault_alloc: 1,
                usage: 4_083_712,
                usage_limit: 268_435_456,
                swap_usage: 65_536,
                swap_limit: 536_870_912,
                max_usage: 5_000_000,
                ..Default::default()
            }),
            rdma: None,
            io: Some(v2::IoStat {
                usage: vec![
                    v2::IoEntry {
                        major: 8,
                        minor: 0,
                        rbytes: 1_048_576,
                        wbytes: 4096,
                        rios: 16,
                        wios: 1,
                    },
                    v2::IoEntry {
                        major: 254,
                        minor: 1,
                        rbytes: 0,
                        wbytes: 8192,
                        rios: 0,
                        wios: 2,
                    },
                ],
            }),
            hugetlb: Vec::new(),
            memory_events: Some(v2::MemoryEvents {
                oom: 2,
                oom_kill: 1,
                max: 7,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn v2_metrics_become_dockerd_stats_json() {
        let mut cur = Sample::from_metrics(&CgroupMetrics::V2(Box::new(v2_metrics())));
        cur.read = "2024-05-06T07:08:10.5Z".to_string();
        let mut prev = Sample::from_metrics(&CgroupMetrics::V2(Box::new(v2::Metrics {
            cpu: Some(v2::CpuStat {
                usage_usec: 1_000,
                ..Default::default()
            }),
            ..Default::default()
        })));
        prev.read = "2024-05-06T07:08:09.5Z".to_string();
        let v = line(&cur, &prev);
        assert_eq!(v["preread"], "2024-05-06T07:08:09.5Z");
        assert_eq!(
            v["cpu_stats"],
            json!({
                "cpu_usage": {"total_usage": 81_234_000, "usage_in_kernelmode": 21_000_000,
                    "usage_in_usermode": 60_234_000},
                "throttling_data": {"periods": 40, "throttled_periods": 3, "throttled_time": 12_345_000}
            })
        );
        assert_eq!(v["precpu_stats"]["cpu_usage"]["total_usage"], 1_000_000);
        let mem = &v["memory_stats"];
        assert_eq!(mem["usage"], 4_083_712);
        assert_eq!(mem["limit"], 268_435_456);
        assert_eq!(mem["failcnt"], 2, "memory.events oom");
        assert!(
            mem.get("max_usage").is_none(),
            "v2 has no max_usage in dockerd: {mem}"
        );
        let stats = mem["stats"].as_object().expect("stats");
        assert_eq!(stats.len(), 31, "{stats:?}");
        for (k, want) in [
            ("anon", 2_433_024u64),
            ("file", 1_212_416),
            ("kernel_stack", 32_768),
            ("slab", 294_912),
            ("sock", 0),
            ("shmem", 4096),
            ("file_mapped", 1_150_976),
            ("file_dirty", 8192),
            ("inactive_file", 606_208),
            ("active_file", 606_208),
            ("slab_unreclaimable", 176_128),
            ("pgfault", 1_419),
            ("pgmajfault", 11),
            ("workingset_refault", 5),
            ("thp_fault_alloc", 1),
            ("thp_collapse_alloc", 0),
        ] {
            assert_eq!(stats.get(k), Some(&json!(want)), "{k}: {stats:?}");
        }
        assert!(
            stats.get("total_inactive_file").is_none(),
            "v1 names only on v1"
        );
        assert_eq!(v["pids_stats"], json!({"current": 3, "limit": 64}));
        assert_eq!(
            v["blkio_stats"],
            json!({
                "io_service_bytes_recursive": [
                    {"major": 8, "minor": 0, "op": "read", "value": 1_048_576},
                    {"major": 8, "minor": 0, "op": "write", "value": 4096},
                    {"major": 254, "minor": 1, "op": "read", "value": 0},
                    {"major": 254, "minor": 1, "op": "write", "value": 8192}],
                "io_serviced_recursive": null, "io_queue_recursive": null,
                "io_service_time_recursive": null, "io_wait_time_recursive": null,
                "io_merged_recursive": null, "io_time_recursive": null, "sectors_recursive": null
            })
        );
    }

    #[test]
    fn v2_without_devices_or_memory_events() {
        let m = v2::Metrics {
            io: Some(v2::IoStat { usage: Vec::new() }),
            memory: Some(v2::MemoryStat {
                usage: 4096,
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = line(
            &Sample::from_metrics(&CgroupMetrics::V2(Box::new(m))),
            &Sample::empty(),
        );
        assert_eq!(v["blkio_stats"]["io_service_bytes_recursive"], Value::Null);
        assert!(v["memory_stats"].get("failcnt").is_none(), "{v}");
        assert!(v["memory_stats"].get("limit").is_none(), "{v}");
    }

    /// dockerd's answer for a container that is not running: zero values, its name and id.
    #[test]
    fn empty_sample_is_dockerds_answer_for_a_stopped_container() {
        let v = line(&Sample::empty(), &Sample::empty());
        let zero_cpu = json!({"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
            "usage_in_usermode": 0}, "throttling_data": {"periods": 0, "throttled_periods": 0,
            "throttled_time": 0}});
        let null_blkio = json!({"io_service_bytes_recursive": null, "io_serviced_recursive": null,
            "io_queue_recursive": null, "io_service_time_recursive": null,
            "io_wait_time_recursive": null, "io_merged_recursive": null, "io_time_recursive": null,
            "sectors_recursive": null});
        assert_eq!(
            v,
            json!({"read": ZERO_TIME, "preread": ZERO_TIME, "pids_stats": {},
                "blkio_stats": null_blkio, "num_procs": 0, "storage_stats": {},
                "cpu_stats": zero_cpu, "precpu_stats": zero_cpu, "memory_stats": {},
                "name": "/web", "id": "c0ffee"})
        );
    }

    #[test]
    fn proc_stat_as_dockerd_reads_it() {
        let text = "cpu  100 2 30 400 5 6 7 8 9 10\ncpu0 50 1 15 200 2 3 3 4 0 0\n\
                    cpu1 50 1 15 200 3 3 4 4 0 0\nintr 12345 0 0\nctxt 999\n";
        // 100+2+30+400+5+6+7 = 550 ticks of 10 ms; steal and guest are left out.
        assert_eq!(parse_proc_stat(text), (5_500_000_000, 2));
        assert_eq!(parse_proc_stat(""), (0, 0));
    }

    #[test]
    fn memory_limit_is_capped_at_the_host_memory() {
        let text = "MemTotal:       24523648 kB\nMemFree:         1000 kB\n";
        let host = parse_mem_total(text);
        assert_eq!(host, 24_523_648 * 1024);
        assert_eq!(cap_limit(9_223_372_036_854_771_712, host), host);
        assert_eq!(cap_limit(67_108_864, host), 67_108_864);
        assert_eq!(cap_limit(67_108_864, 0), 67_108_864);
        assert_eq!(parse_mem_total("garbage"), 0);
    }

    #[test]
    fn net_dev_interfaces_but_lo() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
             lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0\n  \
             eth0:  5000      40    1    2    0     0          0         0     3000      30    3    4    0     0       0          0\n";
        let n = parse_net_dev(text);
        assert_eq!(n.len(), 1, "{n:?}");
        assert_eq!(
            n["eth0"],
            NetworkStats {
                rx_bytes: 5000,
                rx_packets: 40,
                rx_errors: 1,
                rx_dropped: 2,
                tx_bytes: 3000,
                tx_packets: 30,
                tx_errors: 3,
                tx_dropped: 4,
            }
        );
        assert!(parse_net_dev("eth0: 1 2\n").is_empty());
    }

    #[test]
    fn metric_timestamps_print_as_dockerd_times() {
        let t = prost_types::Timestamp {
            seconds: 1_714_979_289,
            nanos: 5,
        };
        assert_eq!(
            rfc3339(&t).as_deref(),
            Some("2024-05-06T07:08:09.000000005Z")
        );
        assert_eq!(
            rfc3339(&prost_types::Timestamp {
                seconds: 0,
                nanos: -1
            }),
            None
        );
    }
}
