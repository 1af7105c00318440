//! Resource flags end up in the container's v1 cgroup files; the OOM kill; `docker update`;
//! `docker stats` from the cgroups (containerd's Tasks.Metrics, as dockerd reads them).

use std::time::Duration;

use integration::{cmd::describe, wait_until, Options, Stack};

/// `/sys/fs/cgroup/<controller>/<parent>/<id>/<file>`, trimmed.
fn cg(s: &Stack, id: &str, controller: &str, file: &str) -> String {
    let p = format!(
        "/sys/fs/cgroup/{controller}/{}/{id}/{file}",
        s.cgroup_parent()
    );
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {p}: {e}"))
        .trim()
        .to_string()
}

/// A whole-disk block device (blkio throttling needs one): (path, "major:minor").
fn block_device() -> (String, String) {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/sys/block")
        .expect("/sys/block")
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let dev = format!("/dev/{name}");
        if e.path().join("device").exists() && std::path::Path::new(&dev).exists() {
            let mm = std::fs::read_to_string(e.path().join("dev")).unwrap_or_default();
            found.push((dev, mm.trim().to_string()));
        }
    }
    found.sort();
    found
        .into_iter()
        .next()
        .expect("a block device with a /dev node under /sys/block")
}

#[test]
fn memory_cpu_pids_flags_are_in_the_cgroup_files() {
    let s = Stack::start();
    let id = s.docker_ok(&[
        "run",
        "-d",
        "-m",
        "64m",
        "--memory-swap",
        "128m",
        "--memory-reservation",
        "32m",
        "--oom-kill-disable",
        "--cpu-shares",
        "512",
        "--cpus",
        "1.5",
        "--cpuset-cpus",
        "1",
        "--cpuset-mems",
        "0",
        "--pids-limit",
        "50",
        "busybox",
        "sleep",
        "300",
    ]);
    assert_eq!(cg(&s, &id, "memory", "memory.limit_in_bytes"), "67108864");
    assert_eq!(
        cg(&s, &id, "memory", "memory.memsw.limit_in_bytes"),
        "134217728"
    );
    assert_eq!(
        cg(&s, &id, "memory", "memory.soft_limit_in_bytes"),
        "33554432"
    );
    assert!(
        cg(&s, &id, "memory", "memory.oom_control").contains("oom_kill_disable 1"),
        "{}",
        cg(&s, &id, "memory", "memory.oom_control")
    );
    assert_eq!(cg(&s, &id, "cpu", "cpu.shares"), "512");
    assert_eq!(cg(&s, &id, "cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(cg(&s, &id, "cpu", "cpu.cfs_quota_us"), "150000");
    assert_eq!(cg(&s, &id, "cpuset", "cpuset.cpus"), "1");
    assert_eq!(cg(&s, &id, "cpuset", "cpuset.mems"), "0");
    assert_eq!(cg(&s, &id, "pids", "pids.max"), "50");
    let hc = &s.inspect(&id)["HostConfig"];
    assert_eq!(hc["Memory"], 67108864, "{hc}");
    assert_eq!(hc["NanoCpus"], 1_500_000_000i64, "{hc}");
    assert_eq!(hc["PidsLimit"], 50, "{hc}");

    // Explicit period and quota; -m alone gets swap = 2 × memory as in dockerd.
    let id2 = s.docker_ok(&[
        "run",
        "-d",
        "-m",
        "32m",
        "--cpu-period",
        "50000",
        "--cpu-quota",
        "25000",
        "busybox",
        "sleep",
        "300",
    ]);
    assert_eq!(cg(&s, &id2, "cpu", "cpu.cfs_period_us"), "50000");
    assert_eq!(cg(&s, &id2, "cpu", "cpu.cfs_quota_us"), "25000");
    assert_eq!(
        cg(&s, &id2, "memory", "memory.memsw.limit_in_bytes"),
        "67108864"
    );

    // The pids limit holds inside: forking past it fails.
    let out = s.docker(&[
        "run",
        "--rm",
        "--pids-limit",
        "5",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done 2>&1; wait",
    ]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("can't fork") || text.contains("Resource temporarily unavailable"),
        "{text}"
    );
}

#[test]
fn blkio_flags_are_in_the_cgroup_files() {
    let s = Stack::start();
    let (dev, mm) = block_device();
    let out = s.docker(&[
        "run",
        "-d",
        "--blkio-weight",
        "300",
        "--device-read-bps",
        &format!("{dev}:1mb"),
        "--device-write-bps",
        &format!("{dev}:2mb"),
        "--device-read-iops",
        &format!("{dev}:100"),
        "--device-write-iops",
        &format!("{dev}:200"),
        "busybox",
        "sleep",
        "300",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let weight_file = ["blkio.weight", "blkio.bfq.weight"].into_iter().find(|f| {
        std::path::Path::new(&format!(
            "/sys/fs/cgroup/blkio/{}/{id}/{f}",
            s.cgroup_parent()
        ))
        .exists()
    });
    match weight_file {
        Some(f) => {
            let w = cg(&s, &id, "blkio", f);
            assert!(w == "300" || w.starts_with("default 300"), "{f}: {w}");
            assert!(!stderr.contains("WARNING"), "{stderr}");
        }
        // No weight-aware I/O scheduler (CFQ or BFQ): as dockerd, the weight is dropped with a
        // warning and the container runs with the throttles.
        None => assert!(
            stderr.contains(
                "WARNING: Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."
            ),
            "{stderr}"
        ),
    }
    assert_eq!(
        cg(&s, &id, "blkio", "blkio.throttle.read_bps_device"),
        format!("{mm} 1048576")
    );
    assert_eq!(
        cg(&s, &id, "blkio", "blkio.throttle.write_bps_device"),
        format!("{mm} 2097152")
    );
    assert_eq!(
        cg(&s, &id, "blkio", "blkio.throttle.read_iops_device"),
        format!("{mm} 100")
    );
    assert_eq!(
        cg(&s, &id, "blkio", "blkio.throttle.write_iops_device"),
        format!("{mm} 200")
    );
}

#[test]
fn over_its_memory_limit_a_container_is_oom_killed() {
    let s = Stack::start();
    // tail keeps the "line" of /dev/zero in memory until the limit is hit.
    let out = s.docker(&[
        "run",
        "--name",
        "hog",
        "-m",
        "16m",
        "busybox",
        "tail",
        "/dev/zero",
    ]);
    assert_eq!(
        out.status.code(),
        Some(137),
        "{}",
        integration::describe(&out)
    );
    let st = &s.inspect("hog")["State"];
    assert_eq!(st["OOMKilled"], true, "{st}");
    assert_eq!(st["ExitCode"], 137, "{st}");
    // A container killed otherwise is not OOMKilled.
    s.docker_ok(&[
        "run", "-d", "--name", "killed", "-m", "16m", "busybox", "sleep", "300",
    ]);
    s.docker_ok(&["kill", "killed"]);
    assert!(wait_until(Duration::from_secs(10), || s.inspect("killed")
        ["State"]["Status"]
        == "exited"));
    let st = &s.inspect("killed")["State"];
    assert_eq!(
        (st["ExitCode"].as_i64(), st["OOMKilled"].as_bool()),
        (Some(137), Some(false)),
        "{st}"
    );
}

/// `docker update` on runtime `name` (the shim runs `<runtime> update --resources -`).
fn update_on(runtime: &str) {
    let s = Stack::start_with(Options {
        engine_args: vec![
            "--add-runtime".to_string(),
            "runc=/usr/sbin/runc".to_string(),
        ],
        ..Options::default()
    });
    let id = s.docker_ok(&[
        "run",
        "-d",
        "--name",
        "upd",
        "--runtime",
        runtime,
        "-m",
        "32m",
        "busybox",
        "sleep",
        "300",
    ]);
    s.docker_ok(&[
        "update",
        "--memory",
        "48m",
        "--memory-swap",
        "96m",
        "--cpu-shares",
        "256",
        "--pids-limit",
        "20",
        "--restart",
        "on-failure:3",
        "upd",
    ]);
    assert_eq!(cg(&s, &id, "memory", "memory.limit_in_bytes"), "50331648");
    assert_eq!(
        cg(&s, &id, "memory", "memory.memsw.limit_in_bytes"),
        "100663296"
    );
    assert_eq!(cg(&s, &id, "cpu", "cpu.shares"), "256");
    assert_eq!(cg(&s, &id, "pids", "pids.max"), "20");
    let hc = &s.inspect("upd")["HostConfig"];
    assert_eq!(hc["Memory"], 50331648, "{hc}");
    assert_eq!(hc["CpuShares"], 256, "{hc}");
    assert_eq!(hc["RestartPolicy"]["Name"], "on-failure", "{hc}");
    assert_eq!(hc["RestartPolicy"]["MaximumRetryCount"], 3, "{hc}");
    // Kept for the next start.
    s.docker_ok(&["restart", "-t", "1", "upd"]);
    assert_eq!(cg(&s, &id, "cpu", "cpu.shares"), "256");
    assert_eq!(cg(&s, &id, "memory", "memory.limit_in_bytes"), "50331648");
    // Bad values are refused with dockerd's message, and nothing changes.
    let out = s.docker(&["update", "--memory", "1m", "upd"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Minimum memory limit allowed is 6MB"),
        "{}",
        integration::describe(&out)
    );
    assert_eq!(cg(&s, &id, "memory", "memory.limit_in_bytes"), "50331648");
    // A stopped container is updated in its config only; the next start applies it.
    s.docker_ok(&["stop", "-t", "1", "upd"]);
    s.docker_ok(&["update", "--cpu-shares", "128", "upd"]);
    s.docker_ok(&["start", "upd"]);
    assert_eq!(cg(&s, &id, "cpu", "cpu.shares"), "128");
}

// runc-rs gains `update` on the runc-rs branch; until then the real runc runs this path.
#[test]
fn update_changes_the_cgroups_of_a_running_container_and_is_kept() {
    update_on("runc");
}

fn bytes(text: &str) -> f64 {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let n: f64 = t[..split].parse().unwrap_or(-1.0);
    let mult = match &t[split..] {
        "B" => 1.0,
        "kB" | "KiB" => 1e3,
        "MB" | "MiB" => 1e6,
        "GB" | "GiB" => 1e9,
        _ => -1.0,
    };
    n * mult
}

/// The whole disk under `path` (its `/dev` node), for the throttle rules that make a v1 kernel
/// count block I/O: since Linux 6.9 blk-throttle is set up on a disk only once a rule names it,
/// and until then `blkio.throttle.io_service_bytes` stays 0 (dockerd's stats read the same file).
fn disk_of(path: &std::path::Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).expect("stat").dev();
    let (maj, min) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    let mut sys = std::fs::canonicalize(format!("/sys/dev/block/{maj}:{min}")).expect("sysfs");
    if sys.join("partition").exists() {
        sys.pop();
    }
    let uevent = std::fs::read_to_string(sys.join("uevent")).unwrap_or_default();
    let name = uevent
        .lines()
        .find_map(|l| l.strip_prefix("DEVNAME="))
        .unwrap_or_else(|| panic!("no DEVNAME in {}", sys.display()));
    format!("/dev/{name}")
}

#[test]
fn stats_show_cpu_memory_pids_and_block_io_from_the_cgroups() {
    let s = Stack::start();
    let disk = disk_of(&s.root);
    s.docker_ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "-m",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "--device-read-bps",
        &format!("{disk}:10gb"),
        "--device-write-bps",
        &format!("{disk}:10gb"),
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/tmp/f bs=1M count=8 oflag=direct 2>/dev/null; \
         dd if=/tmp/f of=/dev/null bs=1M iflag=direct 2>/dev/null; echo io-done; \
         while :; do :; done",
    ]);
    assert!(wait_until(Duration::from_secs(30), || {
        String::from_utf8_lossy(&s.docker(&["logs", "busy"]).stdout).contains("io-done")
    }));
    let text = s.docker_ok(&["stats", "--no-stream", "--format", "{{json .}}", "busy"]);
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("stats json ({e}): {text}"));
    let cpu: f64 = v["CPUPerc"]
        .as_str()
        .unwrap_or("")
        .trim_end_matches('%')
        .parse()
        .unwrap_or(-1.0);
    assert!(cpu > 5.0, "a busy loop uses CPU: {v}");
    let mem = v["MemUsage"].as_str().unwrap_or_default().to_string();
    let (usage, limit) = mem.split_once(" / ").unwrap_or_else(|| panic!("{v}"));
    assert_eq!(limit, "64MiB", "{v}");
    assert!(bytes(usage) > 0.0, "{v}");
    assert_eq!(v["PIDs"], "1", "{v}");
    assert_eq!(v["NetIO"], "0B / 0B", "{v}");
    let bio = v["BlockIO"].as_str().unwrap_or_default().to_string();
    let (r, w) = bio.split_once(" / ").unwrap_or_else(|| panic!("{v}"));
    assert!(bytes(w) >= 8e6, "8 MiB written with O_DIRECT: {v}");
    assert!(bytes(r) >= 8e6, "8 MiB read with O_DIRECT: {v}");
    // Streaming: a sample a second on one connection, each with the previous one as precpu.
    let samples = stream_samples(&s, "/v1.50/containers/busy/stats", 3);
    for pair in samples.windows(2) {
        assert_eq!(pair[1]["precpu_stats"], pair[0]["cpu_stats"], "{pair:?}");
        assert!(
            pair[1]["cpu_stats"]["cpu_usage"]["total_usage"].as_u64()
                > pair[0]["cpu_stats"]["cpu_usage"]["total_usage"].as_u64(),
            "{pair:?}"
        );
    }
    assert_eq!(samples[0]["memory_stats"]["limit"], 67108864);
    assert_eq!(samples[0]["pids_stats"]["current"], 1);
    assert_eq!(samples[1]["preread"], samples[0]["read"]);
    // What containerd's v1 Metrics carry besides usage totals (0 when engine-api read the
    // cgroup files itself): user/kernel time, per-CPU usage, CFS throttling of the 0.5 CPU
    // quota, the pids limit, memory.stat under dockerd's names, max usage, per-device I/O.
    let last = &samples[2];
    let cpu = &last["cpu_stats"];
    assert!(
        cpu["cpu_usage"]["usage_in_usermode"].as_u64() > Some(0),
        "a busy loop runs in user mode: {cpu}"
    );
    assert!(
        cpu["cpu_usage"]["percpu_usage"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{cpu}"
    );
    let thr = &cpu["throttling_data"];
    assert!(thr["periods"].as_u64() > Some(0), "--cpus 0.5: {thr}");
    assert!(thr["throttled_periods"].as_u64() > Some(0), "{thr}");
    assert!(thr["throttled_time"].as_u64() > Some(0), "{thr}");
    assert!(cpu["system_cpu_usage"].as_u64() > Some(0), "{cpu}");
    let online = std::fs::read_to_string("/proc/stat")
        .expect("/proc/stat")
        .lines()
        .filter(|l| l.starts_with("cpu") && l[3..].starts_with(|c: char| c.is_ascii_digit()))
        .count();
    assert_eq!(cpu["online_cpus"], online, "{cpu}");
    assert_eq!(
        last["pids_stats"],
        serde_json::json!({"current": 1, "limit": 50})
    );
    let mem = &last["memory_stats"];
    // A hybrid host: containerd's v1 Metrics, so dockerd's v1 memory.stat names.
    for key in [
        "cache",
        "rss",
        "total_inactive_file",
        "total_rss",
        "hierarchical_memory_limit",
    ] {
        assert!(mem["stats"].get(key).is_some(), "{key}: {mem}");
    }
    assert_eq!(mem["stats"]["hierarchical_memory_limit"], 67108864, "{mem}");
    assert!(mem["max_usage"].as_u64() >= mem["usage"].as_u64(), "{mem}");
    let bytes_io = last["blkio_stats"]["io_service_bytes_recursive"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        bytes_io.iter().any(|e| e["op"] == "Write"
            && e["major"].as_u64() > Some(0)
            && e["value"].as_u64() >= Some(8_000_000)),
        "{bytes_io:?}"
    );

    // Not running: dockerd's empty reading at once, with only the name and id.
    s.docker_ok(&["kill", "busy"]);
    s.docker_ok(&["wait", "busy"]);
    let r = s.api("GET", "/v1.50/containers/busy/stats?stream=false", None);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["name"], "/busy", "{v}");
    assert_eq!(v["read"], "0001-01-01T00:00:00Z", "{v}");
    assert_eq!(v["cpu_stats"]["cpu_usage"]["total_usage"], 0, "{v}");
    assert_eq!(v["memory_stats"], serde_json::json!({}), "{v}");
    assert_eq!(v["pids_stats"], serde_json::json!({}), "{v}");
    // dockerd refuses a one-shot stream.
    let r = s.api("GET", "/v1.50/containers/busy/stats?one-shot=1", None);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("cannot have stream=true and one-shot=true"),
        "{}",
        r.body
    );
}

/// Reads `n` JSON lines of a streaming response, then drops the connection.
fn stream_samples(s: &Stack, path: &str, n: usize) -> Vec<serde_json::Value> {
    use std::io::{BufRead, BufReader, Write};
    let mut sock = std::os::unix::net::UnixStream::connect(s.engine_sock()).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(sock, "GET {path} HTTP/1.1\r\nHost: d\r\n\r\n").expect("write");
    let mut out = Vec::new();
    for line in BufReader::new(sock).lines() {
        let line = line.expect("read a sample within 30 s");
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            if v.is_object() {
                out.push(v);
            }
        }
        if out.len() == n {
            break;
        }
    }
    out
}

/// The start after a create uses the background preparation only if nothing changed since.
#[test]
fn update_between_create_and_start_is_applied() {
    let s = Stack::start();
    let id = s.docker_ok(&[
        "create", "--name", "later", "-m", "32m", "busybox", "sleep", "300",
    ]);
    s.docker_ok(&[
        "update",
        "--memory",
        "48m",
        "--memory-swap",
        "96m",
        "--cpu-shares",
        "300",
        "later",
    ]);
    s.docker_ok(&["start", "later"]);
    assert_eq!(cg(&s, &id, "memory", "memory.limit_in_bytes"), "50331648");
    assert_eq!(cg(&s, &id, "cpu", "cpu.shares"), "300");
}
