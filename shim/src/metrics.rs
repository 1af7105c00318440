//! Stats: the runtime's `events --stats` JSON (runc's format) as the Metrics message that ctr
//! (`ctr task metrics`) and dockerd decode by its type URL. As containerd-shim-runc-v2 does, the
//! host's cgroup mode picks the message: `io.containerd.cgroups.v2.Metrics` on a unified host
//! (`/sys/fs/cgroup` is a cgroup2 mount), `io.containerd.cgroups.v1.Metrics` on a hybrid or
//! legacy one. The runtime's JSON has the same shape on both.
use std::path::Path;
use std::sync::OnceLock;

use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
use proto::cgroups::v1 as cg;
use proto::cgroups::v2 as cg2;
use serde_json::Value;

/// The Any type URL of [`cg::Metrics`].
pub const METRICS_V1: &str = "io.containerd.cgroups.v1.Metrics";
/// The Any type URL of [`cg2::Metrics`].
pub const METRICS_V2: &str = "io.containerd.cgroups.v2.Metrics";

/// The host's cgroup layout, told apart as containerd's `cgroups.Mode()` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    /// Only v1 hierarchies under `/sys/fs/cgroup`.
    Legacy,
    /// v1 hierarchies plus a cgroup2 mount at `/sys/fs/cgroup/unified`.
    Hybrid,
    /// `/sys/fs/cgroup` is itself the cgroup2 mount.
    Unified,
}

fn is_cgroup2(path: &Path) -> bool {
    statfs(path).is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC)
}

/// The cgroup mode of the hierarchy mounted at `root` (`/sys/fs/cgroup` on a host).
pub fn mode_at(root: &Path) -> CgroupMode {
    if is_cgroup2(root) {
        CgroupMode::Unified
    } else if is_cgroup2(&root.join("unified")) {
        CgroupMode::Hybrid
    } else {
        CgroupMode::Legacy
    }
}

/// This host's cgroup mode, looked up once (containerd caches it too: it does not change while
/// the shim runs).
pub fn host_mode() -> CgroupMode {
    static MODE: OnceLock<CgroupMode> = OnceLock::new();
    *MODE.get_or_init(|| mode_at(Path::new("/sys/fs/cgroup")))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// The stats object of an `events --stats` line (`{"type": "stats", "data": {...}}`), or the
/// stats object itself.
fn data(s: &Value) -> &Value {
    if s["data"].is_object() {
        &s["data"]
    } else {
        s
    }
}

/// A throttling counter: runc spells it `throttledPeriods`/`throttledTime`, runc-rs
/// `throttled_periods`/`throttled_time`.
fn throttle(thr: &Value, camel: &str, snake: &str) -> u64 {
    thr.get(camel).or_else(|| thr.get(snake)).map_or(0, u)
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
    let s = data(s);
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
                throttled_periods: throttle(
                    &cpu["throttling"],
                    "throttledPeriods",
                    "throttled_periods",
                ),
                throttled_time: throttle(&cpu["throttling"], "throttledTime", "throttled_time"),
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

/// The v2 devices of the JSON's blkio lists: runc maps each `io.stat` line to `Read`/`Write`
/// entries of `ioServiceBytesRecursive` (rbytes, wbytes) and `ioServicedRecursive` (rios, wios);
/// this joins them back per device, in the order the devices first appear.
fn io_entries(b: &Value) -> Vec<cg2::IoEntry> {
    type Counter = fn(&mut cg2::IoEntry) -> &mut u64;
    let mut out: Vec<cg2::IoEntry> = Vec::new();
    for (list, bytes) in [
        (&b["ioServiceBytesRecursive"], true),
        (&b["ioServicedRecursive"], false),
    ] {
        for e in list.as_array().into_iter().flatten() {
            let op = e["op"].as_str().unwrap_or_default().to_ascii_lowercase();
            let counter: Counter = match (op.as_str(), bytes) {
                ("read", true) => |d| &mut d.rbytes,
                ("write", true) => |d| &mut d.wbytes,
                ("read", false) => |d| &mut d.rios,
                ("write", false) => |d| &mut d.wios,
                _ => continue,
            };
            let (major, minor) = (u(&e["major"]), u(&e["minor"]));
            let i = match out
                .iter()
                .position(|d| (d.major, d.minor) == (major, minor))
            {
                Some(i) => i,
                None => {
                    out.push(cg2::IoEntry {
                        major,
                        minor,
                        ..Default::default()
                    });
                    out.len() - 1
                }
            };
            *counter(&mut out[i]) = u(&e["value"]);
        }
    }
    out
}

/// Converts runc's stats JSON on a cgroup v2 host to the v2 Metrics containerd's cgroup2
/// manager reports: CPU times from nanoseconds back to the microseconds of `cpu.stat`, the
/// memory counters from `raw` (memory.stat), the limits and usages from `memory.usage`
/// (memory.current/max) and `memory.swap`. runc-rs writes memory.swap.current/max there, as v2
/// means them; runc itself writes memory+swap (its v1-compatible sum), which then shows as
/// `swap_usage`/`swap_limit` unchanged. What the JSON does not carry stays 0: the hugetlb
/// limit (its `max` is a peak), `max_usage` unless the runtime reports memory.peak as
/// `memory.usage.max`; `rdma` and `memory_events` (no runtime's JSON has them) are left out.
pub fn from_runc_stats_v2(s: &Value) -> cg2::Metrics {
    let s = data(s);
    let mut hugetlb: Vec<cg2::HugeTlbStat> = s["hugetlb"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(size, h)| cg2::HugeTlbStat {
                    current: u(&h["usage"]),
                    max: 0,
                    pagesize: size.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    hugetlb.sort_by(|a, b| a.pagesize.cmp(&b.pagesize));
    let cpu = &s["cpu"];
    let thr = &cpu["throttling"];
    let mem = &s["memory"];
    let raw = &mem["raw"];
    let r = |k: &str| u(&raw[k]);
    let pids = &s["pids"];
    let b = &s["blkio"];
    cg2::Metrics {
        pids: pids.as_object().map(|_| cg2::PidsStat {
            current: u(&pids["current"]),
            limit: u(&pids["limit"]),
        }),
        cpu: cpu.as_object().map(|_| cg2::CpuStat {
            usage_usec: u(&cpu["usage"]["total"]) / 1000,
            user_usec: u(&cpu["usage"]["user"]) / 1000,
            system_usec: u(&cpu["usage"]["kernel"]) / 1000,
            nr_periods: u(&thr["periods"]),
            nr_throttled: throttle(thr, "throttledPeriods", "throttled_periods"),
            throttled_usec: throttle(thr, "throttledTime", "throttled_time") / 1000,
        }),
        memory: mem.as_object().map(|_| cg2::MemoryStat {
            anon: r("anon"),
            file: r("file"),
            kernel_stack: r("kernel_stack"),
            slab: r("slab"),
            sock: r("sock"),
            shmem: r("shmem"),
            file_mapped: r("file_mapped"),
            file_dirty: r("file_dirty"),
            file_writeback: r("file_writeback"),
            anon_thp: r("anon_thp"),
            inactive_anon: r("inactive_anon"),
            active_anon: r("active_anon"),
            inactive_file: r("inactive_file"),
            active_file: r("active_file"),
            unevictable: r("unevictable"),
            slab_reclaimable: r("slab_reclaimable"),
            slab_unreclaimable: r("slab_unreclaimable"),
            pgfault: r("pgfault"),
            pgmajfault: r("pgmajfault"),
            workingset_refault: r("workingset_refault"),
            workingset_activate: r("workingset_activate"),
            workingset_nodereclaim: r("workingset_nodereclaim"),
            pgrefill: r("pgrefill"),
            pgscan: r("pgscan"),
            pgsteal: r("pgsteal"),
            pgactivate: r("pgactivate"),
            pgdeactivate: r("pgdeactivate"),
            pglazyfree: r("pglazyfree"),
            pglazyfreed: r("pglazyfreed"),
            thp_fault_alloc: r("thp_fault_alloc"),
            thp_collapse_alloc: r("thp_collapse_alloc"),
            usage: u(&mem["usage"]["usage"]),
            usage_limit: u(&mem["usage"]["limit"]),
            swap_usage: u(&mem["swap"]["usage"]),
            swap_limit: u(&mem["swap"]["limit"]),
            max_usage: u(&mem["usage"]["max"]),
            swap_max_usage: u(&mem["swap"]["max"]),
        }),
        rdma: None,
        io: b.as_object().map(|_| cg2::IoStat {
            usage: io_entries(b),
        }),
        hugetlb,
        memory_events: None,
    }
}

/// The Stats answer on a host in `mode`: v2 Metrics only on a unified host, as
/// containerd-shim-runc-v2 picks its cgroup manager; hybrid and legacy hosts answer v1.
pub fn any_for(mode: CgroupMode, s: &Value) -> prost_types::Any {
    match mode {
        CgroupMode::Unified => proto::any::pack(&from_runc_stats_v2(s)),
        CgroupMode::Hybrid | CgroupMode::Legacy => proto::any::pack(&from_runc_stats(s)),
    }
}

/// The Stats answer on this host: Metrics as an Any (see [`any_for`]).
pub fn any(s: &Value) -> prost_types::Any {
    any_for(host_mode(), s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

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

    /// What runc-rs's `events --stats` prints for a container on a cgroup v2 host
    /// (runc-rs/src/cgroups/stats.rs `v2_stats`), as one event line.
    const V2_EVENT: &str = r#"{"type":"stats","id":"c2","data":{
        "cpu":{"usage":{"total":81234000,"kernel":21000000,"user":60234000},
               "throttling":{"periods":40,"throttled_periods":3,"throttled_time":12345000}},
        "memory":{"cache":1212416,
            "usage":{"limit":268435456,"usage":4083712,"failcnt":2},
            "swap":{"limit":536870912,"usage":65536,"failcnt":0},
            "raw":{"anon":2433024,"file":1212416,"kernel_stack":32768,"slab":294912,"sock":0,
                "shmem":4096,"file_mapped":1150976,"file_dirty":8192,"file_writeback":0,
                "anon_thp":0,"inactive_anon":2420736,"active_anon":12288,"inactive_file":606208,
                "active_file":606208,"unevictable":0,"slab_reclaimable":118784,
                "slab_unreclaimable":176128,"pgfault":1419,"pgmajfault":11,
                "workingset_refault":5,"workingset_activate":4,"workingset_nodereclaim":0,
                "pgrefill":7,"pgscan":9,"pgsteal":8,"pgactivate":6,"pgdeactivate":2,
                "pglazyfree":0,"pglazyfreed":0,"thp_fault_alloc":1,"thp_collapse_alloc":0}},
        "pids":{"current":3,"limit":64},
        "blkio":{
            "ioServiceBytesRecursive":[
                {"major":8,"minor":0,"op":"Read","value":1048576},
                {"major":8,"minor":0,"op":"Write","value":4096},
                {"major":254,"minor":1,"op":"Read","value":0},
                {"major":254,"minor":1,"op":"Write","value":8192}],
            "ioServicedRecursive":[
                {"major":8,"minor":0,"op":"Read","value":32},
                {"major":8,"minor":0,"op":"Write","value":1},
                {"major":254,"minor":1,"op":"Read","value":0},
                {"major":254,"minor":1,"op":"Write","value":2}]},
        "hugetlb":{"2MB":{"usage":2097152,"failcnt":0},"1GB":{"usage":0,"failcnt":0}},
        "intel_rdt":{},"network_interfaces":null}}"#;

    fn v2_event() -> Value {
        serde_json::from_str(V2_EVENT).expect("v2 event json")
    }

    #[test]
    fn runc_stats_on_a_v2_host_become_cgroups_v2_metrics() {
        let a = any_for(CgroupMode::Unified, &v2_event());
        assert_eq!(a.type_url, "io.containerd.cgroups.v2.Metrics");
        let m: cg2::Metrics = proto::any::unpack(&a).expect("unpack v2 metrics");

        // cpu.stat is in microseconds; the JSON carries nanoseconds.
        let cpu = m.cpu.expect("cpu");
        assert_eq!(
            (cpu.usage_usec, cpu.user_usec, cpu.system_usec),
            (81234, 60234, 21000)
        );
        assert_eq!((cpu.nr_periods, cpu.nr_throttled), (40, 3));
        assert_eq!(cpu.throttled_usec, 12345);

        let mem = m.memory.expect("memory");
        assert_eq!((mem.usage, mem.usage_limit), (4083712, 268435456));
        assert_eq!((mem.swap_usage, mem.swap_limit), (65536, 536870912));
        // No memory.peak in the JSON: no max usage.
        assert_eq!((mem.max_usage, mem.swap_max_usage), (0, 0));
        assert_eq!((mem.anon, mem.file, mem.shmem), (2433024, 1212416, 4096));
        assert_eq!((mem.kernel_stack, mem.slab, mem.sock), (32768, 294912, 0));
        assert_eq!(
            (mem.file_mapped, mem.file_dirty, mem.file_writeback),
            (1150976, 8192, 0)
        );
        assert_eq!(
            (
                mem.inactive_anon,
                mem.active_anon,
                mem.inactive_file,
                mem.active_file
            ),
            (2420736, 12288, 606208, 606208)
        );
        assert_eq!(
            (mem.slab_reclaimable, mem.slab_unreclaimable),
            (118784, 176128)
        );
        assert_eq!((mem.pgfault, mem.pgmajfault), (1419, 11));
        assert_eq!((mem.workingset_refault, mem.workingset_activate), (5, 4));
        assert_eq!(
            (
                mem.pgrefill,
                mem.pgscan,
                mem.pgsteal,
                mem.pgactivate,
                mem.pgdeactivate
            ),
            (7, 9, 8, 6, 2)
        );
        assert_eq!(mem.thp_fault_alloc, 1);

        let pids = m.pids.expect("pids");
        assert_eq!((pids.current, pids.limit), (3, 64));

        // One IOEntry per device, joining the Read/Write bytes and ios lists.
        let io = m.io.expect("io").usage;
        assert_eq!(
            io,
            [
                cg2::IoEntry {
                    major: 8,
                    minor: 0,
                    rbytes: 1048576,
                    wbytes: 4096,
                    rios: 32,
                    wios: 1
                },
                cg2::IoEntry {
                    major: 254,
                    minor: 1,
                    rbytes: 0,
                    wbytes: 8192,
                    rios: 0,
                    wios: 2
                },
            ]
        );

        let huge: Vec<(&str, u64, u64)> = m
            .hugetlb
            .iter()
            .map(|h| (h.pagesize.as_str(), h.current, h.max))
            .collect();
        assert_eq!(huge, [("1GB", 0, 0), ("2MB", 2097152, 0)]);

        // runc's JSON has no memory.events counters and no rdma.
        assert_eq!((m.memory_events, m.rdma), (None, None));
    }

    #[test]
    fn the_cgroup_mode_picks_the_metrics_message() {
        let e = v2_event();
        for (mode, url) in [
            (CgroupMode::Legacy, METRICS_V1),
            (CgroupMode::Hybrid, METRICS_V1),
            (CgroupMode::Unified, METRICS_V2),
        ] {
            assert_eq!(any_for(mode, &e).type_url, url, "{mode:?}");
        }
        assert_eq!(METRICS_V1, proto::any::type_url::<cg::Metrics>());
        assert_eq!(METRICS_V2, proto::any::type_url::<cg2::Metrics>());
        // The same JSON on a hybrid host: v1 Metrics in nanoseconds, as before.
        let v1: cg::Metrics =
            proto::any::unpack(&any_for(CgroupMode::Hybrid, &e)).expect("unpack v1 metrics");
        let usage = v1.cpu.expect("cpu").usage.expect("usage");
        assert_eq!(usage.total, 81234000);
        assert_eq!(v1.memory.expect("memory").swap.expect("swap").usage, 65536);
        // And what this host answers is what its mode picks.
        assert_eq!(
            any(&e).type_url,
            any_for(host_mode(), &e).type_url,
            "{:?}",
            host_mode()
        );
    }

    #[test]
    fn runc_spelling_of_throttling_is_read_too() {
        // runc's events JSON spells the throttling counters in camelCase.
        let e = serde_json::json!({"cpu": {"usage": {"total": 2000, "kernel": 0, "user": 2000},
            "throttling": {"periods": 9, "throttledPeriods": 4, "throttledTime": 7000}}});
        let cpu = from_runc_stats_v2(&e).cpu.expect("cpu");
        assert_eq!(
            (cpu.nr_periods, cpu.nr_throttled, cpu.throttled_usec),
            (9, 4, 7)
        );
        let thr = from_runc_stats(&e)
            .cpu
            .expect("cpu")
            .throttling
            .expect("throttling");
        assert_eq!((thr.throttled_periods, thr.throttled_time), (4, 7000));
    }

    #[test]
    fn partial_or_odd_json_converts_without_panicking() {
        let m = from_runc_stats_v2(&serde_json::json!({"memory": {"usage": "x"},
            "blkio": {"ioServiceBytesRecursive": [{"op": "Discard", "value": 5}, 7,
                {"major": 8, "minor": 16, "op": "write", "value": 3}]}}));
        assert_eq!(m.memory.expect("memory").usage, 0);
        // Only Read/Write entries name a device; the others are skipped.
        let io = m.io.expect("io").usage;
        assert_eq!(
            io,
            [cg2::IoEntry {
                major: 8,
                minor: 16,
                wbytes: 3,
                ..Default::default()
            }]
        );
        assert_eq!((m.cpu, m.pids), (None, None));
        let a = any_for(CgroupMode::Unified, &Value::Null);
        let m = cg2::Metrics::decode(a.value.as_slice()).expect("decode");
        assert_eq!(m, cg2::Metrics::default());
    }

    /// The mode by /proc/self/mountinfo: the filesystem type mounted last at each path.
    fn mode_by_mountinfo() -> CgroupMode {
        let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let fstype = |at: &str| {
            info.lines()
                .filter(|l| l.split_whitespace().nth(4) == Some(at))
                .filter_map(|l| l.split_once(" - ")?.1.split_whitespace().next())
                .next_back()
                .map(str::to_string)
        };
        if fstype("/sys/fs/cgroup").as_deref() == Some("cgroup2") {
            CgroupMode::Unified
        } else if fstype("/sys/fs/cgroup/unified").as_deref() == Some("cgroup2") {
            CgroupMode::Hybrid
        } else {
            CgroupMode::Legacy
        }
    }

    #[test]
    fn host_mode_is_what_statfs_says_about_sys_fs_cgroup() {
        assert_eq!(host_mode(), mode_by_mountinfo());
        let d = tempfile::tempdir().expect("tempdir");
        assert_eq!(mode_at(d.path()), CgroupMode::Legacy);
    }
}
