//! Stats: the runtime's `events --stats` JSON (runc's format) as the
//! `io.containerd.cgroups.v1.Metrics` message that ctr (`ctr task metrics`) and dockerd decode
//! by its type URL, as containerd-shim-runc-v2 returns on a cgroup v1 host.
use prost::Message;
use proto::cgroups::v1 as cg;
use serde_json::Value;

/// The Any type URL of [`cg::Metrics`].
pub const METRICS_V1: &str = "io.containerd.cgroups.v1.Metrics";

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn entry(v: &Value) -> Option<cg::MemoryEntry> {
    v.as_object().map(|_| cg::MemoryEntry {
        limit: u(&v["limit"]),
        usage: u(&v["usage"]),
        max: u(&v["max"]),
        failcnt: u(&v["failcnt"]),
    })
}

fn blkio(v: &Value) -> Vec<cg::BlkIoEntry> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|e| cg::BlkIoEntry {
                    op: e["op"].as_str().unwrap_or_default().to_string(),
                    device: String::new(),
                    major: u(&e["major"]),
                    minor: u(&e["minor"]),
                    value: u(&e["value"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Converts runc's stats JSON (an `events --stats` line, or its `data`) to Metrics.
pub fn from_runc_stats(s: &Value) -> cg::Metrics {
    let s = if s["data"].is_object() { &s["data"] } else { s };
    let mut hugetlb: Vec<cg::HugetlbStat> = s["hugetlb"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(size, h)| cg::HugetlbStat {
                    usage: u(&h["usage"]),
                    max: u(&h["max"]),
                    failcnt: u(&h["failcnt"]),
                    pagesize: size.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    hugetlb.sort_by(|a, b| a.pagesize.cmp(&b.pagesize));
    let cpu = &s["cpu"];
    let mem = &s["memory"];
    let raw = &mem["raw"];
    let r = |k: &str| u(&raw[k]);
    let b = &s["blkio"];
    cg::Metrics {
        hugetlb,
        pids: s["pids"].as_object().map(|_| cg::PidsStat {
            current: u(&s["pids"]["current"]),
            limit: u(&s["pids"]["limit"]),
        }),
        cpu: cpu.as_object().map(|_| cg::CpuStat {
            usage: Some(cg::CpuUsage {
                total: u(&cpu["usage"]["total"]),
                kernel: u(&cpu["usage"]["kernel"]),
                user: u(&cpu["usage"]["user"]),
                per_cpu: cpu["usage"]["percpu"]
                    .as_array()
                    .map(|a| a.iter().map(u).collect())
                    .unwrap_or_default(),
            }),
            throttling: Some(cg::Throttle {
                periods: u(&cpu["throttling"]["periods"]),
                throttled_periods: u(&cpu["throttling"]["throttled_periods"]),
                throttled_time: u(&cpu["throttling"]["throttled_time"]),
            }),
        }),
        memory: mem.as_object().map(|_| cg::MemoryStat {
            cache: r("cache"),
            rss: r("rss"),
            rss_huge: r("rss_huge"),
            mapped_file: r("mapped_file"),
            dirty: r("dirty"),
            writeback: r("writeback"),
            pg_pg_in: r("pgpgin"),
            pg_pg_out: r("pgpgout"),
            pg_fault: r("pgfault"),
            pg_maj_fault: r("pgmajfault"),
            inactive_anon: r("inactive_anon"),
            active_anon: r("active_anon"),
            inactive_file: r("inactive_file"),
            active_file: r("active_file"),
            unevictable: r("unevictable"),
            hierarchical_memory_limit: r("hierarchical_memory_limit"),
            hierarchical_swap_limit: r("hierarchical_memsw_limit"),
            total_cache: r("total_cache"),
            total_rss: r("total_rss"),
            total_rss_huge: r("total_rss_huge"),
            total_mapped_file: r("total_mapped_file"),
            total_dirty: r("total_dirty"),
            total_writeback: r("total_writeback"),
            total_pg_pg_in: r("total_pgpgin"),
            total_pg_pg_out: r("total_pgpgout"),
            total_pg_fault: r("total_pgfault"),
            total_pg_maj_fault: r("total_pgmajfault"),
            total_inactive_anon: r("total_inactive_anon"),
            total_active_anon: r("total_active_anon"),
            total_inactive_file: r("total_inactive_file"),
            total_active_file: r("total_active_file"),
            total_unevictable: r("total_unevictable"),
            usage: entry(&mem["usage"]),
            swap: entry(&mem["swap"]),
            kernel: entry(&mem["kernel"]),
            kernel_tcp: entry(&mem["kernelTCP"]),
        }),
        blkio: b.as_object().map(|_| cg::BlkIoStat {
            io_service_bytes_recursive: blkio(&b["ioServiceBytesRecursive"]),
            io_serviced_recursive: blkio(&b["ioServicedRecursive"]),
            io_queued_recursive: blkio(&b["ioQueueRecursive"]),
            io_service_time_recursive: blkio(&b["ioServiceTimeRecursive"]),
            io_wait_time_recursive: blkio(&b["ioWaitTimeRecursive"]),
            io_merged_recursive: blkio(&b["ioMergedRecursive"]),
            io_time_recursive: blkio(&b["ioTimeRecursive"]),
            sectors_recursive: blkio(&b["sectorsRecursive"]),
        }),
    }
}

/// The Stats answer: Metrics as an Any.
pub fn any(s: &Value) -> prost_types::Any {
    prost_types::Any {
        type_url: METRICS_V1.into(),
        value: from_runc_stats(s).encode_to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_stats_become_cgroups_v1_metrics() {
        let s: Value = serde_json::from_str(
            r#"{"cpu":{"usage":{"total":1500,"percpu":[1000,500],"kernel":300,"user":1200},
                "throttling":{"periods":4,"throttled_periods":2,"throttled_time":77}},
               "memory":{"cache":8192,"usage":{"limit":67108864,"usage":1048576,"max":2097152,"failcnt":1},
                "swap":{"limit":134217728,"usage":1048576},"kernel":{},"kernelTCP":{},
                "raw":{"rss":4096,"total_rss":4096,"pgmajfault":3,"hierarchical_memory_limit":67108864}},
               "pids":{"current":2,"limit":100},
               "blkio":{"ioServiceBytesRecursive":[{"major":254,"minor":0,"op":"Write","value":8388608}]},
               "hugetlb":{"2MB":{"usage":0,"max":0,"failcnt":0}}}"#,
        )
        .expect("json");
        let a = any(&serde_json::json!({"type": "stats", "id": "c1", "data": s}));
        assert_eq!(a.type_url, "io.containerd.cgroups.v1.Metrics");
        let m = cg::Metrics::decode(a.value.as_slice()).expect("decode");
        let cpu = m.cpu.expect("cpu");
        let usage = cpu.usage.expect("usage");
        assert_eq!((usage.total, usage.kernel, usage.user), (1500, 300, 1200));
        assert_eq!(usage.per_cpu, [1000, 500]);
        assert_eq!(cpu.throttling.expect("thr").throttled_periods, 2);
        let mem = m.memory.expect("memory");
        assert_eq!(mem.usage.expect("usage").limit, 67108864);
        assert_eq!((mem.rss, mem.pg_maj_fault), (4096, 3));
        assert_eq!(mem.hierarchical_memory_limit, 67108864);
        assert_eq!(m.pids.expect("pids").limit, 100);
        let io = &m.blkio.expect("blkio").io_service_bytes_recursive;
        assert_eq!((io[0].op.as_str(), io[0].value), ("Write", 8388608));
        assert_eq!(m.hugetlb[0].pagesize, "2MB");
    }
}
