//! What the cgroups count, in the JSON shape of runc's `events --stats` (`types.Stats`):
//! cpu, cpuset, memory, pids, blkio, hugetlb. v1 reads each controller's files, v2 the
//! unified directory; on a hybrid host hugetlb comes from the unified directory.
use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

use super::Cgroup;

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file))
        .ok()
        .map(|s| s.trim().to_string())
}

fn num(dir: &Path, file: &str) -> Option<u64> {
    let s = read(dir, file)?;
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat, cpuacct.stat).
fn flat_keyed(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    read(dir, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// `0-2,5` as [0, 1, 2, 5].
pub fn parse_list(s: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.parse::<u64>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u64>().ok()),
        }
    }
    out
}

fn nums(dir: &Path, file: &str) -> Vec<u64> {
    read(dir, file)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect()
}

/// One memory counter set: `<prefix>.usage_in_bytes` etc. (v1).
fn mem_entry(dir: &Path, prefix: &str) -> Value {
    let mut m = Map::new();
    for (k, f) in [
        ("limit", "limit_in_bytes"),
        ("usage", "usage_in_bytes"),
        ("max", "max_usage_in_bytes"),
        ("failcnt", "failcnt"),
    ] {
        if let Some(v) = num(dir, &format!("{prefix}.{f}")) {
            if v != 0 || k == "failcnt" || k == "limit" {
                m.insert(k.into(), v.into());
            }
        }
    }
    Value::Object(m)
}

/// `8:0 Read 4096` lines of a v1 blkio file.
fn blkio_entries(dir: &Path, file: &str) -> Vec<Value> {
    read(dir, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (maj, min) = f.first()?.split_once(':')?;
            let (op, value) = match f.len() {
                3 => (f[1], f[2]),
                2 => ("", f[1]),
                _ => return None,
            };
            Some(
                json!({"major": maj.parse::<u64>().ok()?, "minor": min.parse::<u64>().ok()?,
                        "op": op, "value": value.parse::<u64>().ok()?}),
            )
        })
        .collect()
}

fn hugetlb_sizes() -> Vec<String> {
    let mut sizes: Vec<String> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let kb: u64 = n
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some(page_size_name(kb * 1024))
        })
        .collect();
    sizes.sort();
    sizes
}

/// 2097152 → "2MB", as the kernel names hugetlb files.
pub fn page_size_name(bytes: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut v = bytes;
    let mut i = 0;
    while v >= 1024 && v.is_multiple_of(1024) && i + 1 < units.len() {
        v /= 1024;
        i += 1;
    }
    format!("{v}{}", units[i])
}

fn hugetlb_v1(dir: &Path, sizes: &[String]) -> Value {
    let mut m = Map::new();
    for s in sizes {
        let p = format!("hugetlb.{s}");
        if let Some(usage) = num(dir, &format!("{p}.usage_in_bytes")) {
            m.insert(
                s.clone(),
                json!({"usage": usage,
                "max": num(dir, &format!("{p}.max_usage_in_bytes")).unwrap_or(0),
                "failcnt": num(dir, &format!("{p}.failcnt")).unwrap_or(0)}),
            );
        }
    }
    Value::Object(m)
}

fn hugetlb_v2(dir: &Path, sizes: &[String]) -> Value {
    let mut m = Map::new();
    for s in sizes {
        if let Some(usage) = num(dir, &format!("hugetlb.{s}.current")) {
            let failcnt = flat_keyed(dir, &format!("hugetlb.{s}.events"))
                .get("max")
                .copied()
                .unwrap_or(0);
            m.insert(s.clone(), json!({"usage": usage, "failcnt": failcnt}));
        }
    }
    Value::Object(m)
}

fn v1_stats(cg: &Cgroup) -> Map<String, Value> {
    let mut out = Map::new();
    let p = |c: &str| cg.v1.get(c).map(|p| p.as_path());
    let mut cpu = Map::new();
    if let Some(d) = p("cpuacct") {
        let tick = 1_000_000_000 / clock_ticks();
        let st = flat_keyed(d, "cpuacct.stat");
        let mut usage = Map::new();
        usage.insert("total".into(), num(d, "cpuacct.usage").unwrap_or(0).into());
        usage.insert("percpu".into(), nums(d, "cpuacct.usage_percpu").into());
        let sys = nums(d, "cpuacct.usage_percpu_sys");
        if !sys.is_empty() {
            usage.insert("percpu_kernel".into(), sys.into());
            usage.insert(
                "percpu_user".into(),
                nums(d, "cpuacct.usage_percpu_user").into(),
            );
        }
        usage.insert(
            "kernel".into(),
            (st.get("system").copied().unwrap_or(0) * tick).into(),
        );
        usage.insert(
            "user".into(),
            (st.get("user").copied().unwrap_or(0) * tick).into(),
        );
        cpu.insert("usage".into(), Value::Object(usage));
    }
    let mut thr = Map::new();
    if let Some(d) = p("cpu") {
        let st = flat_keyed(d, "cpu.stat");
        for (k, f) in [
            ("periods", "nr_periods"),
            ("throttledPeriods", "nr_throttled"),
            ("throttledTime", "throttled_time"),
        ] {
            if let Some(v) = st.get(f).filter(|v| **v != 0) {
                thr.insert(k.into(), (*v).into());
            }
        }
    }
    cpu.insert("throttling".into(), Value::Object(thr));
    out.insert("cpu".into(), Value::Object(cpu));
    if let Some(d) = p("cpuset") {
        let mut c = Map::new();
        c.insert(
            "cpus".into(),
            parse_list(&read(d, "cpuset.cpus").unwrap_or_default()).into(),
        );
        c.insert(
            "cpu_exclusive".into(),
            num(d, "cpuset.cpu_exclusive").unwrap_or(0).into(),
        );
        c.insert(
            "mems".into(),
            parse_list(&read(d, "cpuset.mems").unwrap_or_default()).into(),
        );
        for f in [
            "mem_hardwall",
            "mem_exclusive",
            "memory_migrate",
            "memory_spread_page",
            "memory_spread_slab",
            "memory_pressure",
            "sched_load_balance",
        ] {
            c.insert(f.into(), num(d, &format!("cpuset.{f}")).unwrap_or(0).into());
        }
        let relax: i64 = read(d, "cpuset.sched_relax_domain_level")
            .and_then(|s| s.parse().ok())
            .unwrap_or(-1);
        c.insert("sched_relax_domain_level".into(), relax.into());
        out.insert("cpuset".into(), Value::Object(c));
    }
    if let Some(d) = p("memory") {
        let raw = flat_keyed(d, "memory.stat");
        let mut m = Map::new();
        if let Some(c) = raw
            .get("total_cache")
            .or(raw.get("cache"))
            .filter(|c| **c != 0)
        {
            m.insert("cache".into(), (*c).into());
        }
        m.insert("usage".into(), mem_entry(d, "memory"));
        m.insert("swap".into(), mem_entry(d, "memory.memsw"));
        m.insert("kernel".into(), mem_entry(d, "memory.kmem"));
        m.insert("kernelTCP".into(), mem_entry(d, "memory.kmem.tcp"));
        m.insert("raw".into(), json!(raw));
        out.insert("memory".into(), Value::Object(m));
    }
    out.insert("pids".into(), pids(p("pids")));
    let mut b = Map::new();
    if let Some(d) = p("blkio") {
        for (k, f) in [
            (
                "ioServiceBytesRecursive",
                "blkio.throttle.io_service_bytes_recursive",
            ),
            (
                "ioServicedRecursive",
                "blkio.throttle.io_serviced_recursive",
            ),
            ("ioQueueRecursive", "blkio.io_queued_recursive"),
            ("ioServiceTimeRecursive", "blkio.io_service_time_recursive"),
            ("ioWaitTimeRecursive", "blkio.io_wait_time_recursive"),
            ("ioMergedRecursive", "blkio.io_merged_recursive"),
            ("ioTimeRecursive", "blkio.time_recursive"),
            ("sectorsRecursive", "blkio.sectors_recursive"),
        ] {
            let e = blkio_entries(d, f);
            if !e.is_empty() {
                b.insert(k.into(), e.into());
            }
        }
    }
    out.insert("blkio".into(), Value::Object(b));
    let sizes = hugetlb_sizes();
    let huge = match (p("hugetlb"), &cg.unified) {
        (Some(d), _) => hugetlb_v1(d, &sizes),
        (None, Some(u)) => hugetlb_v2(u, &sizes),
        _ => json!({}),
    };
    out.insert("hugetlb".into(), huge);
    out
}

fn pids(dir: Option<&Path>) -> Value {
    let mut m = Map::new();
    if let Some(d) = dir {
        m.insert("current".into(), num(d, "pids.current").unwrap_or(0).into());
        if let Some(l) = num(d, "pids.max").filter(|l| *l != u64::MAX && *l != 0) {
            m.insert("limit".into(), l.into());
        }
    }
    Value::Object(m)
}

/// Stats of a cgroup v2 directory.
pub fn v2_stats(d: &Path) -> Map<String, Value> {
    let mut out = Map::new();
    let st = flat_keyed(d, "cpu.stat");
    let us = |k: &str| st.get(k).copied().unwrap_or(0) * 1000;
    let mut thr = Map::new();
    for (k, f, scale) in [
        ("periods", "nr_periods", 1),
        ("throttledPeriods", "nr_throttled", 1),
        ("throttledTime", "throttled_usec", 1000),
    ] {
        if let Some(v) = st.get(f).filter(|v| **v != 0) {
            thr.insert(k.into(), (*v * scale).into());
        }
    }
    out.insert(
        "cpu".into(),
        json!({"usage": {"total": us("usage_usec"), "kernel": us("system_usec"), "user": us("user_usec")},
               "throttling": thr}),
    );
    let raw = flat_keyed(d, "memory.stat");
    let events = flat_keyed(d, "memory.events");
    let mut m = Map::new();
    if let Some(c) = raw.get("file").filter(|c| **c != 0) {
        m.insert("cache".into(), (*c).into());
    }
    let entry = |cur: &str, max: &str, fail: u64| {
        let mut e = Map::new();
        e.insert("limit".into(), num(d, max).unwrap_or(u64::MAX).into());
        if let Some(u) = num(d, cur).filter(|u| *u != 0) {
            e.insert("usage".into(), u.into());
        }
        e.insert("failcnt".into(), fail.into());
        Value::Object(e)
    };
    m.insert(
        "usage".into(),
        entry(
            "memory.current",
            "memory.max",
            events.get("max").copied().unwrap_or(0),
        ),
    );
    m.insert(
        "swap".into(),
        entry("memory.swap.current", "memory.swap.max", 0),
    );
    m.insert("raw".into(), json!(raw));
    out.insert("memory".into(), Value::Object(m));
    out.insert("pids".into(), pids(Some(d)));
    let mut bytes = Vec::new();
    let mut ios = Vec::new();
    for l in read(d, "io.stat").unwrap_or_default().lines() {
        let mut f = l.split_whitespace();
        let Some((maj, min)) = f.next().and_then(|x| x.split_once(':')) else {
            continue;
        };
        let (Ok(maj), Ok(min)) = (maj.parse::<u64>(), min.parse::<u64>()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(v) = v.parse::<u64>() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                _ => continue,
            };
            list.push(json!({"major": maj, "minor": min, "op": op, "value": v}));
        }
    }
    let mut b = Map::new();
    if !bytes.is_empty() {
        b.insert("ioServiceBytesRecursive".into(), bytes.into());
    }
    if !ios.is_empty() {
        b.insert("ioServicedRecursive".into(), ios.into());
    }
    out.insert("blkio".into(), Value::Object(b));
    out.insert("hugetlb".into(), hugetlb_v2(d, &hugetlb_sizes()));
    out
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// runc's `types.Stats` for the container's cgroup.
pub fn stats(cg: &Cgroup) -> Value {
    let mut m = if cg.v2_only {
        cg.unified.as_deref().map(v2_stats).unwrap_or_default()
    } else {
        v1_stats(cg)
    };
    m.insert("intel_rdt".into(), json!({}));
    m.insert("network_interfaces".into(), Value::Null);
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_page_sizes() {
        assert_eq!(parse_list("0-2,5"), vec![0, 1, 2, 5]);
        assert_eq!(parse_list(""), Vec::<u64>::new());
        assert_eq!(page_size_name(2 * 1024 * 1024), "2MB");
        assert_eq!(page_size_name(1024 * 1024 * 1024), "1GB");
    }

    #[test]
    fn v2_counters_from_a_fake_cgroupfs() {
        let d = tempfile::tempdir().expect("tempdir");
        let w = |f: &str, v: &str| std::fs::write(d.path().join(f), v).expect("write");
        w("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 2\nthrottled_usec 30\n");
        w("memory.current", "4096\n");
        w("memory.max", "max\n");
        w("memory.swap.current", "0\n");
        w("memory.swap.max", "8192\n");
        w("memory.stat", "anon 4096\nfile 12288\n");
        w("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
        w("pids.current", "2\n");
        w("pids.max", "10\n");
        w(
            "io.stat",
            "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n",
        );
        let s = v2_stats(d.path());
        assert_eq!(s["cpu"]["usage"]["total"], 1_500_000);
        assert_eq!(s["cpu"]["usage"]["kernel"], 500_000);
        assert_eq!(s["cpu"]["usage"]["user"], 1_000_000);
        assert_eq!(
            s["cpu"]["throttling"],
            json!({"periods": 4, "throttledPeriods": 2, "throttledTime": 30000})
        );
        assert_eq!(
            s["memory"]["usage"],
            json!({"limit": u64::MAX, "usage": 4096, "failcnt": 3})
        );
        assert_eq!(s["memory"]["swap"], json!({"limit": 8192, "failcnt": 0}));
        assert_eq!(s["memory"]["cache"], 12288);
        assert_eq!(s["memory"]["raw"]["anon"], 4096);
        assert_eq!(s["pids"], json!({"current": 2, "limit": 10}));
        assert_eq!(
            s["blkio"]["ioServiceBytesRecursive"],
            json!([{"major": 8, "minor": 0, "op": "Read", "value": 100},
                   {"major": 8, "minor": 0, "op": "Write", "value": 200}])
        );
        assert_eq!(s["blkio"]["ioServicedRecursive"][1]["value"], 2);
    }
}
