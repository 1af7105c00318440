//! Test fixtures: a busybox bundle in a unique short temp root, FIFOs, and cleanup by pid/path.
#![allow(dead_code, unreachable_pub)]

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The runtimes to test with: real runc, plus `$SHIM_TEST_RUNTIME` (e.g. runc-rs). crun 1.8 refuses
/// this host's hybrid cgroup layout ("cgroups in hybrid mode not supported") even with
/// `--cgroup-manager=disabled`, so it cannot run containers here at all.
pub fn runtimes() -> Vec<String> {
    let mut v = vec!["/usr/sbin/runc".to_string()];
    if let Ok(p) = std::env::var("SHIM_TEST_RUNTIME") {
        v.push(p);
    }
    v
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let x = (std::process::id() as u64) << 20
        ^ nanos as u64
        ^ (N.fetch_add(1, Ordering::Relaxed) as u64) << 40;
    format!("{:06x}", (x ^ (x >> 24)) & 0xff_ffff)
}

/// A temp root `/tmp/st-<6 hex>` with `bundle/`, the rootfs source `img/`, `rt/` (runtime root
/// base), `s/` (socket dir), and FIFOs. Drop kills recorded pids, deletes the container,
/// unmounts, removes cgroups and the directory.
pub struct Fixture {
    pub root: PathBuf,
    pub bundle: PathBuf,
    pub image: PathBuf,
    pub runtime_root: PathBuf,
    pub socket_dir: PathBuf,
    pub id: String,
    pub namespace: String,
    pub cgroup: String,
    pub runtime: String,
    pub pids: Vec<u32>,
}

impl Fixture {
    pub fn new(runtime: &str) -> Self {
        let tag = unique();
        let root = PathBuf::from(format!("/tmp/st-{tag}"));
        let _ = std::fs::remove_dir_all(&root);
        let bundle = root.join("bundle");
        let image = root.join("img");
        for d in [
            &bundle,
            &image.join("bin"),
            &root.join("rt"),
            &root.join("s"),
        ] {
            std::fs::create_dir_all(d).expect("create fixture dirs");
        }
        std::fs::copy("/usr/bin/busybox", image.join("bin/busybox")).expect("copy busybox");
        for app in [
            "sh", "echo", "cat", "sleep", "true", "ls", "ps", "id", "hostname", "wc", "head",
            "tty", "stty",
        ] {
            std::os::unix::fs::symlink("busybox", image.join("bin").join(app))
                .expect("symlink applet");
        }
        for d in ["proc", "sys", "dev", "tmp", "etc", "root"] {
            std::fs::create_dir_all(image.join(d)).expect("create image dirs");
        }
        Fixture {
            root: root.clone(),
            bundle,
            image,
            runtime_root: root.join("rt"),
            socket_dir: root.join("s"),
            id: format!("c{tag}"),
            namespace: "test".into(),
            cgroup: format!("/shimtest-{tag}"),
            runtime: runtime.to_string(),
            pids: Vec::new(),
        }
    }

    /// Writes a Docker-like config.json running `args`.
    pub fn write_config(&self, args: &[&str], terminal: bool) {
        self.write_config_with(
            args,
            terminal,
            serde_json::json!({"devices": [{"allow": false, "access": "rwm"}]}),
        );
    }

    /// Like `write_config`, with `linux.resources` given.
    pub fn write_config_with(&self, args: &[&str], terminal: bool, resources: serde_json::Value) {
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": terminal,
                "user": {"uid": 0, "gid": 0},
                "args": args,
                "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=shimtest"],
                "cwd": "/",
                "capabilities": caps(),
                "noNewPrivileges": false
            },
            "root": {"path": "rootfs", "readonly": false},
            "hostname": "shimtest",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
                {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
                {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
                {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
            ],
            "linux": {
                "cgroupsPath": self.cgroup,
                "resources": resources,
                "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}],
                "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
                "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
            }
        });
        std::fs::write(
            self.bundle.join("config.json"),
            serde_json::to_vec_pretty(&config).expect("json"),
        )
        .expect("write config.json");
    }

    /// Makes a FIFO in the root.
    pub fn fifo(&self, name: &str) -> PathBuf {
        let p = self.root.join(name);
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
        p
    }

    pub fn rootfs(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }

    /// The runtime root the shim uses for this namespace.
    pub fn task_runtime_root(&self) -> PathBuf {
        self.runtime_root.join(&self.namespace)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for pid in &self.pids {
            // SAFETY: kill(2) with integers only.
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
        let _ = std::process::Command::new(&self.runtime)
            .arg("--root")
            .arg(self.task_runtime_root())
            .args(["delete", "--force", &self.id])
            .stderr(std::process::Stdio::null())
            .status();
        for _ in 0..8 {
            if nix::mount::umount2(&self.rootfs(), nix::mount::MntFlags::MNT_DETACH).is_err() {
                break;
            }
        }
        if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir(e.path().join(self.cgroup.trim_start_matches('/')));
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn caps() -> serde_json::Value {
    let set = [
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
    serde_json::json!({"bounding": set, "effective": set, "permitted": set})
}

/// Opens a FIFO for reading without blocking and reads it until EOF (all writers closed) or
/// `limit` elapses; returns what was read.
pub fn read_fifo(path: &Path, limit: Duration) -> Vec<u8> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .expect("open fifo for reading");
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let mut seen_data = false;
    while Instant::now() < deadline {
        match f.read(&mut buf) {
            Ok(0) if seen_data => break,
            Ok(0) => std::thread::sleep(Duration::from_millis(10)),
            Ok(n) => {
                seen_data = true;
                out.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("read fifo: {e}"),
        }
    }
    out
}

/// The parent pid of `pid` from /proc.
pub fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(1)?.parse().ok()
}

pub fn alive(pid: u32) -> bool {
    // A zombie still has /proc/<pid>; check its state too.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Whether `path` is a mount point (listed in /proc/self/mountinfo).
pub fn is_mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let p = path.display().to_string();
    info.lines()
        .any(|l| l.split_whitespace().nth(4) == Some(p.as_str()))
}

pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}
