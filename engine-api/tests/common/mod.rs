//! A private real containerd 1.6 + engine-api pair for end-to-end tests, driven by the real
//! Docker CLI. Everything lives under `/tmp/ea-<random>`; `Drop` removes containers, kills the
//! daemons and shims by pid, unmounts, removes cgroups and the directory.
#![allow(dead_code, unreachable_pub)]

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const DOCKER: &str = "/usr/local/bin/docker";
pub const CONTAINERD: &str = "/usr/bin/containerd";

pub struct Env {
    pub root: PathBuf,
    pub suffix: String,
    containerd: Option<Child>,
    engine: Option<Child>,
    pub image_id: String,
    pub diff_id: String,
    /// Start engine-api with `--live-restore` (containers survive its restarts).
    pub live_restore: bool,
}

fn random_suffix() -> String {
    let mut b = [0u8; 3];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("urandom");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Env {
    /// Starts containerd and engine-api and loads the busybox image.
    pub fn start() -> Env {
        let mut e = Self::start_empty();
        let out = e.docker(&["load", "-i", &e.root.join("busybox.tar").to_string_lossy()]);
        assert!(out.status.success(), "load: {}", describe(&out));
        e.image_id = e.image_id.clone();
        e
    }

    pub fn start_empty() -> Env {
        let suffix = random_suffix();
        let root = PathBuf::from(format!("/tmp/ea-{suffix}"));
        std::fs::create_dir_all(root.join("dcfg")).expect("create root");
        let image = fixtures::BusyboxImage::new(fixtures::DEFAULT_BUSYBOX)
            .build()
            .expect("build busybox image");
        image
            .write_to(&root.join("busybox.tar"))
            .expect("write image tar");
        let mut e = Env {
            root,
            suffix,
            containerd: None,
            engine: None,
            image_id: image.image_id.clone(),
            diff_id: image.diff_id.clone(),
            live_restore: false,
        };
        e.start_containerd();
        e.start_engine();
        e
    }

    pub fn containerd_sock(&self) -> PathBuf {
        self.root.join("c.sock")
    }

    pub fn engine_sock(&self) -> PathBuf {
        self.root.join("d.sock")
    }

    pub fn cgroup_parent(&self) -> String {
        format!("ea-{}", self.suffix)
    }

    pub fn start_containerd(&mut self) {
        let cfg = self.root.join("containerd.toml");
        let toml = format!(
            "version = 2\nroot = \"{r}/cd\"\nstate = \"{r}/cs\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{r}/c.sock\"\n[ttrpc]\n  address = \"{r}/c.sock.ttrpc\"\n",
            r = self.root.display()
        );
        std::fs::write(&cfg, toml).expect("write containerd config");
        let _ = std::fs::remove_file(self.containerd_sock());
        let log = std::fs::File::create(self.root.join("containerd.log")).expect("log");
        let child = Command::new(CONTAINERD)
            .arg("--config")
            .arg(&cfg)
            .arg("--address")
            .arg(self.containerd_sock())
            .arg("--root")
            .arg(self.root.join("cd"))
            .arg("--state")
            .arg(self.root.join("cs"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        self.containerd = Some(child);
        let sock = self.containerd_sock();
        wait_for("containerd", || UnixStream::connect(&sock).is_ok());
    }

    pub fn start_engine(&mut self) {
        let _ = std::fs::remove_file(self.engine_sock());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("engine.log"))
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_engine-api"))
            .arg("-H")
            .arg(format!("unix://{}", self.engine_sock().display()))
            .arg("--data-root")
            .arg(self.root.join("data"))
            .arg("--exec-root")
            .arg(self.root.join("exec"))
            .arg("--containerd")
            .arg(self.containerd_sock())
            .arg("--cgroup-parent")
            .arg(self.cgroup_parent())
            .arg("--add-runtime")
            .arg("runc=/usr/sbin/runc")
            .arg("--default-runtime")
            .arg("runc")
            .arg("-D")
            .args(self.live_restore.then_some("--live-restore"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn engine-api");
        self.engine = Some(child);
        let sock = self.engine_sock();
        wait_for("engine-api", || UnixStream::connect(&sock).is_ok());
    }

    pub fn stop_engine(&mut self) {
        if let Some(mut c) = self.engine.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn kill_containerd(&mut self) {
        if let Some(mut c) = self.containerd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_stdin(args, None)
    }

    pub fn docker_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = Command::new(DOCKER);
        cmd.args(args)
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.engine_sock().display()),
            )
            .env("DOCKER_CONFIG", self.root.join("dcfg"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = cmd.spawn().expect("spawn docker");
        if let Some(data) = stdin {
            use std::io::Write;
            let mut s = child.stdin.take().expect("stdin");
            s.write_all(data).expect("write stdin");
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        child.wait_with_output().expect("docker output")
    }

    /// Runs docker, asserts success, returns trimmed stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(out.status.success(), "docker {args:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let text = self.ok(&["inspect", "--type", "container", name]);
        let v: serde_json::Value = serde_json::from_str(&text).expect("inspect json");
        v[0].clone()
    }

    /// One raw HTTP/1.0 request on the engine socket: (status, headers+body text).
    pub fn http(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        use std::io::Write;
        let mut s = UnixStream::connect(self.engine_sock()).expect("connect engine");
        let body = body.unwrap_or("");
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("write request");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, out)
    }

    fn dump_logs(&self) {
        for f in ["engine.log", "containerd.log"] {
            let text = std::fs::read_to_string(self.root.join(f)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            eprintln!("----- {f} (last 60 lines) -----");
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not become ready");
}

pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Pids whose command line mentions `needle` (our unique root path).
fn pids_mentioning(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    let me = std::process::id() as i32;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(needle) {
            out.push(pid);
        }
    }
    out
}

impl Drop for Env {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        if self.engine.is_some() {
            let ids = self.docker(&["ps", "-aq"]);
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                let _ = self.docker(&["rm", "-f", id]);
            }
        }
        self.stop_engine();
        if let Some(c) = self.containerd.as_mut() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && !matches!(c.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill_containerd();
        // Shims (and anything else) started for this root: identified by our unique path.
        let root = self.root.to_string_lossy().into_owned();
        for pid in pids_mentioning(&root) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(100));
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut targets: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4))
            .filter(|m| m.starts_with(&root))
            .collect();
        targets.reverse();
        for t in targets {
            let _ = nix::mount::umount2(t, nix::mount::MntFlags::MNT_DETACH);
        }
        let ctls: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        for ctl in ctls {
            let dir = ctl.join(self.cgroup_parent());
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    if e.path().is_dir() {
                        let _ = std::fs::remove_dir(e.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(&dir);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
