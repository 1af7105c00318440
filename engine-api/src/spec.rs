//! OCI runtime spec generation, shaped like moby's default spec (`oci.DefaultSpec` + `WithX`).
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::{json, Value};

use crate::types::{ContainerRecord, HostConfig, ThrottleDevice};

/// Docker's default capability set.
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const MASKED: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Spec generation failures (all are the user's input).
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    User(String),
    #[error("--init requested but no init binary is available")]
    NoInit,
    #[error("invalid capability {0:?}")]
    Capability(String),
    #[error("{0}")]
    SecurityOpt(String),
    #[error("error gathering device information while adding custom device {path:?}: {source}")]
    Device {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where a container's files live and how it is placed in cgroups.
pub struct SpecContext<'a> {
    /// `<data-root>/containers/<id>`: hostname, hosts, resolv.conf.
    pub container_dir: &'a Path,
    /// Without slashes, e.g. `engine-api`.
    pub cgroup_parent: &'a str,
    /// The image's `Env`.
    pub image_env: &'a [String],
    /// `/etc/passwd` and `/etc/group` of the image, when readable, to resolve user names.
    pub passwd: Option<&'a str>,
    pub group: Option<&'a str>,
    /// The init binary to bind-mount as `/sbin/docker-init` for `--init`.
    pub init_binary: Option<&'a Path>,
}

/// The process arguments: entrypoint + cmd (already merged with the image's in the record).
pub fn process_args(rec: &ContainerRecord) -> Vec<String> {
    let mut args = vec![rec.path.clone()];
    args.extend(rec.args.iter().cloned());
    args
}

/// Merges env lists: later entries replace earlier ones with the same key.
pub fn merge_env(base: &[String], over: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in base.iter().chain(over.iter()) {
        let key = e.split('=').next().unwrap_or(e);
        if let Some(slot) = out
            .iter_mut()
            .find(|x| x.split('=').next().unwrap_or(x) == key)
        {
            *slot = e.clone();
        } else {
            out.push(e.clone());
        }
    }
    out
}

fn lookup_id(file: Option<&str>, name: &str) -> Option<(u32, u32)> {
    for line in file?.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 4 && f[0] == name {
            let a = f[2].parse().ok()?;
            let b = f[3].parse().unwrap_or(0);
            return Some((a, b));
        }
    }
    None
}

/// Resolves `-u user[:group]` to uid/gid (numbers, or names from the image's files).
pub fn resolve_user(user: &str, ctx: &SpecContext<'_>) -> Result<(u32, u32), SpecError> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let (uid, mut gid) = match u.parse::<u32>() {
        Ok(n) => (n, lookup_by_uid(ctx.passwd, n).unwrap_or(0)),
        Err(_) if u == "root" => (0, 0),
        Err(_) => lookup_id(ctx.passwd, u).ok_or_else(|| SpecError::User(u.to_string()))?,
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup_id(ctx.group, g)
                .map(|(gid, _)| gid)
                .ok_or_else(|| SpecError::User(g.to_string()))?,
        };
    }
    Ok((uid, gid))
}

fn lookup_by_uid(file: Option<&str>, uid: u32) -> Option<u32> {
    for line in file?.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 4 && f[2].parse::<u32>().ok() == Some(uid) {
            return f[3].parse().ok();
        }
    }
    None
}

/// The container's capability set (`--privileged`, `--cap-add`, `--cap-drop`).
pub fn capabilities(hc: &HostConfig) -> Result<Vec<String>, SpecError> {
    let norm = |c: &str| -> String {
        let up = c.to_ascii_uppercase();
        if up.starts_with("CAP_") {
            up
        } else {
            format!("CAP_{up}")
        }
    };
    let all = hc
        .cap_add
        .iter()
        .flatten()
        .any(|c| c.eq_ignore_ascii_case("ALL"));
    let mut caps: Vec<String> = if hc.privileged || all {
        all_caps()
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
    };
    for c in hc
        .cap_add
        .iter()
        .flatten()
        .filter(|c| !c.eq_ignore_ascii_case("ALL"))
    {
        let c = norm(c);
        if !ALL_CAPS.contains(&c.as_str()) {
            return Err(SpecError::Capability(c));
        }
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    if hc
        .cap_drop
        .iter()
        .flatten()
        .any(|c| c.eq_ignore_ascii_case("ALL"))
    {
        caps.retain(|c| hc.cap_add.iter().flatten().any(|a| norm(a) == *c));
    } else {
        for c in hc.cap_drop.iter().flatten() {
            let c = norm(c);
            caps.retain(|x| *x != c);
        }
    }
    Ok(caps)
}

const ALL_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Every capability this daemon can hand on: [`ALL_CAPS`] that are in its own bounding set.
/// (A root without CAP_SYS_RESOURCE, as in some sandboxes, cannot grant it: `--privileged`
/// gets the rest instead of failing in capset.)
pub fn all_caps() -> Vec<String> {
    static BOUNDING: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let bounding = *BOUNDING.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("CapBnd:"))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
            .unwrap_or(u64::MAX)
    });
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding & (1u64 << bit) != 0)
        .map(|(_, c)| c.to_string())
        .collect()
}

fn device_numbers(path: &str) -> Result<(u64, u64), SpecError> {
    let md = std::fs::metadata(path).map_err(|source| SpecError::Device {
        path: path.to_string(),
        source,
    })?;
    let rdev = md.rdev();
    Ok((nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev)))
}

fn throttle(list: &Option<Vec<ThrottleDevice>>) -> Result<Vec<Value>, SpecError> {
    let mut out = Vec::new();
    for d in list.iter().flatten() {
        let (major, minor) = device_numbers(&d.path)?;
        out.push(json!({"major": major, "minor": minor, "rate": d.rate}));
    }
    Ok(out)
}

/// `linux.resources` from the HostConfig's resource fields.
pub fn resources(hc: &HostConfig) -> Result<Value, SpecError> {
    let mut r = json!({
        "devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
            {"allow": false, "type": "c", "major": 10, "minor": 229, "access": "rwm"}
        ]
    });
    if hc.privileged {
        r["devices"] = json!([{"allow": true, "access": "rwm"}]);
    }
    let mut mem = serde_json::Map::new();
    if hc.memory > 0 {
        mem.insert("limit".into(), json!(hc.memory));
        // Docker: no --memory-swap means swap = 2 × memory; -1 means unlimited.
        let swap = match hc.memory_swap {
            0 => hc.memory * 2,
            s => s,
        };
        mem.insert("swap".into(), json!(swap));
    } else if hc.memory_swap != 0 {
        mem.insert("swap".into(), json!(hc.memory_swap));
    }
    if hc.memory_reservation > 0 {
        mem.insert("reservation".into(), json!(hc.memory_reservation));
    }
    if let Some(d) = hc.oom_kill_disable {
        mem.insert("disableOOMKiller".into(), json!(d));
    }
    if let Some(s) = hc.memory_swappiness.filter(|s| *s >= 0) {
        mem.insert("swappiness".into(), json!(s));
    }
    if !mem.is_empty() {
        r["memory"] = Value::Object(mem);
    }
    let mut cpu = serde_json::Map::new();
    if hc.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(hc.cpu_shares));
    }
    if hc.nano_cpus > 0 {
        let period: i64 = 100_000;
        cpu.insert("period".into(), json!(period));
        cpu.insert("quota".into(), json!(hc.nano_cpus * period / 1_000_000_000));
    }
    if hc.cpu_period > 0 {
        cpu.insert("period".into(), json!(hc.cpu_period));
    }
    if hc.cpu_quota != 0 {
        cpu.insert("quota".into(), json!(hc.cpu_quota));
    }
    if !hc.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(hc.cpuset_cpus));
    }
    if !hc.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), json!(hc.cpuset_mems));
    }
    if !cpu.is_empty() {
        r["cpu"] = Value::Object(cpu);
    }
    if let Some(p) = hc.pids_limit.filter(|p| *p != 0) {
        r["pids"] = json!({"limit": p});
    }
    let mut blkio = serde_json::Map::new();
    if hc.blkio_weight > 0 {
        blkio.insert("weight".into(), json!(hc.blkio_weight));
    }
    let mut weights = Vec::new();
    for d in hc.blkio_weight_device.iter().flatten() {
        let (major, minor) = device_numbers(&d.path)?;
        weights.push(json!({"major": major, "minor": minor, "weight": d.weight}));
    }
    for (key, list) in [
        ("weightDevice", weights),
        (
            "throttleReadBpsDevice",
            throttle(&hc.blkio_device_read_bps)?,
        ),
        (
            "throttleWriteBpsDevice",
            throttle(&hc.blkio_device_write_bps)?,
        ),
        (
            "throttleReadIOPSDevice",
            throttle(&hc.blkio_device_read_iops)?,
        ),
        (
            "throttleWriteIOPSDevice",
            throttle(&hc.blkio_device_write_iops)?,
        ),
    ] {
        if !list.is_empty() {
            blkio.insert(key.into(), Value::Array(list));
        }
    }
    if !blkio.is_empty() {
        r["blockIO"] = Value::Object(blkio);
    }
    Ok(r)
}

/// The full OCI spec for a container's init process.
pub fn generate(rec: &ContainerRecord, ctx: &SpecContext<'_>) -> Result<Value, SpecError> {
    let hc = &rec.host_config;
    let cfg = &rec.config;
    let (uid, gid) = resolve_user(&cfg.user, ctx)?;
    let mut env = merge_env(
        &["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()],
        ctx.image_env,
    );
    env = merge_env(&env, cfg.env.as_deref().unwrap_or_default());
    if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
        env.insert(1.min(env.len()), format!("HOSTNAME={}", hostname(rec)));
    }
    if cfg.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".to_string());
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(if uid == 0 {
            "HOME=/root".to_string()
        } else {
            "HOME=/".to_string()
        });
    }
    let caps = capabilities(hc)?;
    let security = crate::security::of(hc)?;
    let seccomp = crate::security::profile(&security, hc.privileged, &caps)?;
    let unmasked = hc.privileged || security.unmasked_paths;
    let mut args = process_args(rec);
    let dir = ctx.container_dir;
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={}", if hc.shm_size > 0 { hc.shm_size } else { 67_108_864 })]}),
    ];
    let ro = if hc.readonly_rootfs { "ro" } else { "rw" };
    for f in ["resolv.conf", "hostname", "hosts"] {
        mounts.push(json!({
            "destination": format!("/etc/{f}"),
            "type": "bind",
            "source": dir.join(f).to_string_lossy(),
            "options": ["rbind", "rprivate", ro],
        }));
    }
    for b in hc.binds.iter().flatten() {
        mounts.push(bind_mount(b));
    }
    if hc.init.unwrap_or(false) {
        let init = ctx.init_binary.ok_or(SpecError::NoInit)?;
        mounts.push(json!({
            "destination": crate::initbin::INIT_PATH_IN_CONTAINER,
            "type": "bind",
            "source": init.to_string_lossy(),
            "options": ["rbind", "ro", "rprivate"],
        }));
        let mut a = vec![
            crate::initbin::INIT_PATH_IN_CONTAINER.to_string(),
            "--".to_string(),
        ];
        a.append(&mut args);
        args = a;
    }
    let mut namespaces = vec![json!({"type": "mount"})];
    if hc.network_mode != "host" {
        namespaces.push(json!({"type": "network"}));
    }
    if hc.pid_mode != "host" {
        namespaces.push(json!({"type": "pid"}));
    }
    if hc.ipc_mode != "host" {
        namespaces.push(json!({"type": "ipc"}));
    }
    if hc.uts_mode != "host" {
        namespaces.push(json!({"type": "uts"}));
    }
    if hc.cgroupns_mode == "private" {
        namespaces.push(json!({"type": "cgroup"}));
    }
    let parent = if hc.cgroup_parent.is_empty() {
        ctx.cgroup_parent.to_string()
    } else {
        hc.cgroup_parent.trim_matches('/').to_string()
    };
    let cwd = if cfg.working_dir.is_empty() {
        "/".to_string()
    } else {
        cfg.working_dir.clone()
    };
    let mut spec = json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": cfg.tty,
            "user": {"uid": uid, "gid": gid},
            "args": args,
            "env": env,
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "oomScoreAdj": hc.oom_score_adj,
        },
        "root": {"path": "rootfs", "readonly": hc.readonly_rootfs},
        "hostname": hostname(rec),
        "mounts": mounts,
        "linux": {
            "resources": resources(hc)?,
            "cgroupsPath": format!("/{parent}/{}", rec.id),
            "namespaces": namespaces,
            "maskedPaths": if unmasked { json!([]) } else { json!(MASKED) },
            "readonlyPaths": if unmasked { json!([]) } else { json!(READONLY) },
        },
    });
    if let Some(seccomp) = seccomp {
        spec["linux"]["seccomp"] = seccomp;
    }
    if security.no_new_privileges {
        spec["process"]["noNewPrivileges"] = json!(true);
    }
    if let Some(size) = hc
        .console_size
        .as_ref()
        .filter(|s| s.len() == 2 && s[0] > 0)
    {
        spec["process"]["consoleSize"] = json!({"height": size[0], "width": size[1]});
    }
    Ok(spec)
}

/// `-v /host:/ctr[:ro]` as an OCI bind mount.
fn bind_mount(b: &str) -> Value {
    let parts: Vec<&str> = b.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, m, ..] => (*s, *d, *m),
        _ => (b, b, ""),
    };
    let ro = mode.split(',').any(|m| m == "ro");
    json!({
        "destination": dst,
        "type": "bind",
        "source": src,
        "options": ["rbind", "rprivate", if ro { "ro" } else { "rw" }],
    })
}

/// The container's hostname: `--hostname` or the first 12 characters of the id.
pub fn hostname(rec: &ContainerRecord) -> String {
    if rec.config.hostname.is_empty() {
        rec.id.chars().take(12).collect()
    } else {
        rec.config.hostname.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ContainerConfig, State};

    fn rec() -> ContainerRecord {
        ContainerRecord {
            id: "0123456789abcdef".repeat(4),
            name: "/t".into(),
            created: String::new(),
            path: "sh".into(),
            args: vec!["-c".into(), "true".into()],
            config: ContainerConfig {
                env: Some(vec!["A=1".into(), "PATH=/bin".into()]),
                ..Default::default()
            },
            host_config: HostConfig {
                memory: 1 << 20,
                pids_limit: Some(10),
                ..Default::default()
            },
            image: String::new(),
            snapshot_parent: String::new(),
            state: State::default(),
            restart_count: 0,
            manually_stopped: false,
            runtime: "runc".into(),
            has_been_started: false,
        }
    }

    #[test]
    fn default_spec_matches_moby_shape() {
        let r = rec();
        let ctx = SpecContext {
            container_dir: Path::new("/d/c"),
            cgroup_parent: "engine-api",
            image_env: &["B=2".to_string()],
            passwd: None,
            group: None,
            init_binary: None,
        };
        let s = generate(&r, &ctx).expect("spec");
        assert_eq!(s["hostname"], "0123456789ab");
        assert_eq!(s["linux"]["cgroupsPath"], format!("/engine-api/{}", r.id));
        assert_eq!(s["process"]["args"], json!(["sh", "-c", "true"]));
        let env: Vec<String> = serde_json::from_value(s["process"]["env"].clone()).expect("env");
        assert!(env.contains(&"PATH=/bin".to_string()) && env.contains(&"B=2".to_string()));
        assert_eq!(
            s["process"]["capabilities"]["bounding"]
                .as_array()
                .map(Vec::len),
            Some(14)
        );
        assert_eq!(s["linux"]["resources"]["memory"]["limit"], 1 << 20);
        assert_eq!(s["linux"]["resources"]["memory"]["swap"], 2 << 20);
        assert_eq!(s["linux"]["resources"]["pids"]["limit"], 10);
        let ns: Vec<&str> = s["linux"]["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .filter_map(|n| n["type"].as_str())
            .collect();
        assert_eq!(ns, ["mount", "network", "pid", "ipc", "uts"]);
    }

    #[test]
    fn users_resolve_from_image_files() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n";
        let group = "root:x:0:\nnogroup:x:65534:\nwheel:x:10:\n";
        let ctx = SpecContext {
            container_dir: Path::new("/"),
            cgroup_parent: "p",
            image_env: &[],
            passwd: Some(passwd),
            group: Some(group),
            init_binary: None,
        };
        assert_eq!(
            resolve_user("nobody", &ctx).expect("nobody"),
            (65534, 65534)
        );
        assert_eq!(
            resolve_user("1000:wheel", &ctx).expect("uid:group"),
            (1000, 10)
        );
        assert!(resolve_user("ghost", &ctx).is_err());
    }
}
