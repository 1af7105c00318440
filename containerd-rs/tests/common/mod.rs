//! Test harness: starts containerd-rs in a private temp root and tears everything down (by pid
//! and path) when dropped, on success and on failure.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use proto::services::containers::containers_client::ContainersClient;
use proto::services::tasks::tasks_client::TasksClient;
use proto::services::{containers as cpb, tasks as tpb};
use tonic::transport::{Channel, Endpoint, Uri};

pub struct Daemon {
    pub dir: PathBuf,
    pub sock: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
}

pub fn unique_dir() -> PathBuf {
    let n: u32 = rand::random::<u32>() % 1_000_000;
    let d = PathBuf::from(format!("/tmp/cr-{n:06}"));
    std::fs::create_dir_all(&d).expect("mkdir temp root");
    d
}

impl Daemon {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_in(unique_dir(), extra)
    }

    /// [`Daemon::start_with`] in a directory the caller prepared (a filesystem mounted at
    /// `dir/root`, say); dropping the daemon unmounts what is under `dir` and removes it.
    pub fn start_in(dir: PathBuf, extra: &[&str]) -> Self {
        let mut d = Self {
            sock: dir.join("c.sock"),
            dir,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        d.spawn();
        d
    }

    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    pub fn spawn(&mut self) {
        let collections = self.log().matches("garbage collected").count();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_containerd-rs"))
            .arg("--address")
            .arg(&self.sock)
            .arg("--root")
            .arg(self.root())
            .arg("--state")
            .arg(self.state())
            .arg("-D")
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn containerd-rs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&self.sock).is_err() {
            assert!(
                Instant::now() < deadline,
                "containerd-rs did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The collection containerd-rs runs after startup: wait for it, so that objects a test
        // writes without a lease are not collected under it.
        while self.log().matches("garbage collected").count() <= collections {
            assert!(
                Instant::now() < deadline,
                "no startup collection: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the daemon: SIGTERM (graceful) or SIGKILL.
    pub fn stop(&mut self, hard: bool) {
        if let Some(mut c) = self.child.take() {
            let sig = if hard { libc::SIGKILL } else { libc::SIGTERM };
            // SAFETY: kill(2) on the pid of our own child; no memory is touched.
            unsafe { libc::kill(c.id() as i32, sig) };
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop(false);
        self.spawn();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub async fn channel(&self) -> Channel {
        let path = self.sock.clone();
        Endpoint::try_from("http://[::]:50051")
            .expect("endpoint")
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    tokio::net::UnixStream::connect(path)
                        .await
                        .map(TokioIo::new)
                }
            }))
            .await
            .expect("connect")
    }

    pub fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.sock)
            .args(args)
            .output()
            .expect("run ctr")
    }
}

/// Unmounts everything under `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut mps: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| Path::new(m).starts_with(dir))
        .collect();
    mps.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mps {
        let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(true);
        // Shims started by this daemon: kill them by the pid files in the bundles.
        kill_shims(&self.state());
        unmount_under(&self.dir);
        if std::thread::panicking() {
            eprintln!("--- containerd-rs log ---\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn kill_shims(state: &Path) {
    let root = state.join("io.containerd.runtime.v2.task");
    let Ok(nss) = std::fs::read_dir(&root) else {
        return;
    };
    for ns in nss.flatten() {
        let Ok(ids) = std::fs::read_dir(ns.path()) else {
            continue;
        };
        for id in ids.flatten() {
            for f in ["init.pid", "shim.pid"] {
                if let Ok(s) = std::fs::read_to_string(id.path().join(f)) {
                    if let Ok(pid) = s.trim().parse::<i32>() {
                        // SAFETY: kill(2) on a pid recorded by our own shim; no memory is touched.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
        }
    }
    std::thread::sleep(Duration::from_millis(100));
}

/// A request carrying the namespace header.
pub fn req<T>(ns: &str, t: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(t);
    r.metadata_mut()
        .insert("containerd-namespace", ns.parse().expect("ns header"));
    r
}

pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// Removes `/<name>` and everything under it from every mounted cgroup hierarchy when dropped
/// (ctr puts a task in `/<namespace>/<id>`). A test that failed half-way may leave a task
/// running there: its processes are killed by the pids its cgroups list, then the directories
/// are removed deepest first.
pub struct CgroupGuard(pub String);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") else {
            return;
        };
        let tops: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path().join(&self.0))
            .filter(|p| p.is_dir())
            .collect();
        let mut dirs = Vec::new();
        for top in &tops {
            collect_dirs(top, &mut dirs);
        }
        // Deepest first.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for _ in 0..50 {
            for d in &dirs {
                for pid in std::fs::read_to_string(d.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.trim().parse::<i32>().ok())
                {
                    // SAFETY: kill(2) on a pid listed in this test's own cgroup.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            for d in &dirs {
                let _ = std::fs::remove_dir(d);
            }
            if dirs.iter().all(|d| !d.exists()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

pub fn bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_containerd-rs"))
        .parent()
        .expect("bin dir")
        .to_path_buf()
}

/// A daemon using the shim and runc-rs beside our binary (`cargo build --workspace` builds them).
pub fn daemon() -> Daemon {
    let runc = bin_dir().join("runc-rs");
    assert!(runc.exists(), "build runc-rs first: {}", runc.display());
    assert!(
        bin_dir().join("containerd-shim-rs").exists(),
        "build containerd-shim-rs first"
    );
    Daemon::start_with(&["--runtime-binary", runc.to_str().expect("utf8")])
}

pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs-src");
    std::fs::create_dir_all(root.join("bin")).expect("mkdir");
    // Copied once: later tasks share it (it may be executing, so it cannot be rewritten).
    if !root.join("bin/busybox").exists() {
        std::fs::copy("/usr/bin/busybox", root.join("bin/busybox")).expect("copy busybox");
    }
    root
}

pub fn spec(args: &[&str], cgroup: &str) -> prost_types::Any {
    spec_with_namespaces(args, cgroup, &["pid", "ipc", "uts", "mount"])
}

/// [`spec`] with the given namespace types.
pub fn spec_with_namespaces(args: &[&str], cgroup: &str, namespaces: &[&str]) -> prost_types::Any {
    let namespaces: Vec<serde_json::Value> = namespaces
        .iter()
        .map(|t| serde_json::json!({ "type": t }))
        .collect();
    let spec = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]
            },
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "bb",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}
        ],
        "linux": {
            "cgroupsPath": cgroup,
            "namespaces": namespaces
        }
    });
    proto::any::pack_bytes(
        proto::any::SPEC_TYPE_URL,
        serde_json::to_vec(&spec).expect("json"),
    )
}

pub async fn create(
    d: &Daemon,
    ns: &str,
    id: &str,
    args: &[&str],
    out: &Path,
) -> tonic::transport::Channel {
    let out = out.display().to_string();
    create_io(d, ns, id, args, &out, &out).await
}

/// The cgroup path `create_io` gives a task.
pub fn cgroup_of(d: &Daemon, id: &str) -> String {
    format!(
        "/crt-{}-{id}",
        d.dir.file_name().and_then(|s| s.to_str()).unwrap_or("x")
    )
}

/// Creates a container (runtime io.containerd.runc.v2) and its task on a bind-mounted busybox
/// rootfs, stdout/stderr to the given paths (files or FIFOs).
pub async fn create_io(
    d: &Daemon,
    ns: &str,
    id: &str,
    args: &[&str],
    stdout: &str,
    stderr: &str,
) -> tonic::transport::Channel {
    let cg = cgroup_of(d, id);
    create_with_spec(d, ns, id, spec(args, &cg), stdout, stderr).await
}

/// [`create_io`] with a spec of the caller's (see [`spec_with_namespaces`]).
pub async fn create_with_spec(
    d: &Daemon,
    ns: &str,
    id: &str,
    spec: prost_types::Any,
    stdout: &str,
    stderr: &str,
) -> tonic::transport::Channel {
    create_with_spec_io(d, ns, id, spec, "", stdout, stderr, false).await
}

/// [`create_with_spec`] with a stdin path and the task's terminal flag.
#[allow(clippy::too_many_arguments)]
pub async fn create_with_spec_io(
    d: &Daemon,
    ns: &str,
    id: &str,
    spec: prost_types::Any,
    stdin: &str,
    stdout: &str,
    stderr: &str,
    terminal: bool,
) -> tonic::transport::Channel {
    let ch = d.channel().await;
    ContainersClient::new(ch.clone())
        .create(req(
            ns,
            cpb::CreateContainerRequest {
                container: Some(cpb::Container {
                    id: id.into(),
                    runtime: Some(cpb::container::Runtime {
                        name: "io.containerd.runc.v2".into(),
                        options: None,
                    }),
                    spec: Some(spec),
                    ..Default::default()
                }),
            },
        ))
        .await
        .expect("container create");
    let rootfs = busybox_rootfs(&d.dir);
    TasksClient::new(ch.clone())
        .create(req(
            ns,
            tpb::CreateTaskRequest {
                container_id: id.into(),
                rootfs: vec![proto::types::Mount {
                    r#type: "bind".into(),
                    source: rootfs.display().to_string(),
                    target: String::new(),
                    options: vec!["rbind".into(), "rw".into()],
                }],
                stdin: stdin.to_string(),
                stdout: stdout.to_string(),
                stderr: stderr.to_string(),
                terminal,
                ..Default::default()
            },
        ))
        .await
        .expect("task create");
    ch
}
