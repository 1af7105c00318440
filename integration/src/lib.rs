//! Test harness: starts the real binaries in private temp roots.
//!
//! [`Stack::start`] creates `/tmp/it-<6 random>`, starts `containerd-rs` and `engine-api` on
//! sockets inside it (cgroup parent `it-<same random>`), waits until both answer, and loads the
//! busybox fixture image. Dropping the stack (also while panicking) prints the daemon logs when
//! the test failed, kills everything it started by pid, unmounts everything under the root,
//! removes its cgroups and deletes the root.
#![forbid(unsafe_code)]

pub mod cleanup;
pub mod cmd;
pub mod http;
pub mod procfs;

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rand::Rng;

pub use cmd::describe;

/// The Docker CLI the tests drive by default (CLI 28.2 on CI).
pub const DOCKER: &str = "/usr/local/bin/docker";
/// The containerd client from Debian's containerd package.
pub const CTR: &str = "/usr/bin/ctr";
/// Where the shims' bundles live under containerd-rs's state dir.
pub const TASK_DIR: &str = "io.containerd.runtime.v2.task";
const STARTUP: Duration = Duration::from_secs(30);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// Which binaries a [`Stack`] runs; the default is ours for every layer.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Run this containerd instead of containerd-rs (e.g. Debian's `/usr/bin/containerd`,
    /// which gets a config disabling its CRI plugin and `--log-level debug` instead of `-D`).
    pub containerd_bin: Option<PathBuf>,
    /// Extra flags for containerd-rs (e.g. `--runtime-binary /usr/sbin/runc`).
    pub containerd_args: Vec<String>,
    /// Do not load the busybox image.
    pub no_image: bool,
    /// Extra flags for engine-api (e.g. `--add-runtime runc=/usr/sbin/runc`).
    pub engine_args: Vec<String>,
}

/// A private engine-api + containerd-rs pair.
pub struct Stack {
    /// `/tmp/it-<random>`.
    pub root: PathBuf,
    /// The random suffix shared by the root and the cgroup parent.
    pub suffix: String,
    /// Directory holding the four binaries.
    pub bin_dir: PathBuf,
    options: Options,
    containerd: Option<Child>,
    engine: Option<Child>,
}

/// The directory with `engine-api`, `containerd-rs`, `containerd-shim-rs` and `runc-rs`:
/// `$ENGINE_BIN_DIR`, else the cargo target dir this test binary was built in, else
/// `<workspace>/target/debug`.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ENGINE_BIN_DIR") {
        return PathBuf::from(d);
    }
    // target/debug/deps/<test binary> → target/debug
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent()?.parent().map(Path::to_path_buf))
    {
        if dir.join("engine-api").is_file() && dir.join("containerd-rs").is_file() {
            return dir;
        }
    }
    workspace_dir().join("target/debug")
}

/// The workspace root (parent of this crate).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the integration crate lives inside the workspace")
        .to_path_buf()
}

/// Builds the busybox fixture once per test binary into `<workspace>/target/fixtures/busybox.tar`
/// (written atomically, so concurrent test binaries never see half a file).
pub fn busybox_tar() -> &'static Path {
    &busybox_fixture().0
}

/// The fixture's path and digests (image ID, diff ID).
pub fn busybox_fixture() -> &'static (PathBuf, fixtures::BuiltImage) {
    static TAR: OnceLock<(PathBuf, fixtures::BuiltImage)> = OnceLock::new();
    TAR.get_or_init(|| {
        let path = workspace_dir().join("target/fixtures/busybox.tar");
        let image = fixtures::ensure_busybox_tar(&path)
            .unwrap_or_else(|e| panic!("build busybox fixture {}: {e:?}", path.display()));
        (path, image)
    })
}

/// The Docker CLI: `$DOCKER_CLI`, else [`DOCKER`] when present, else `docker` on PATH
/// (Debian's docker.io CLI).
pub fn docker_cli() -> PathBuf {
    if let Some(p) = std::env::var_os("DOCKER_CLI") {
        return PathBuf::from(p);
    }
    if Path::new(DOCKER).is_file() {
        return PathBuf::from(DOCKER);
    }
    PathBuf::from("docker")
}

/// Polls `f` every 50 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn random_suffix() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..6)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

impl Stack {
    /// Starts both daemons and loads `busybox:latest`.
    pub fn start() -> Stack {
        Stack::start_with(Options::default())
    }

    /// Starts both daemons with no image loaded.
    pub fn start_empty() -> Stack {
        Stack::start_with(Options {
            no_image: true,
            ..Options::default()
        })
    }

    /// Starts a stack with some layers swapped for other binaries.
    pub fn start_with(options: Options) -> Stack {
        let (suffix, root) = loop {
            let s = random_suffix();
            let root = PathBuf::from(format!("/tmp/it-{s}"));
            if std::fs::create_dir(&root).is_ok() {
                break (s, root);
            }
        };
        let mut stack = Stack {
            root,
            suffix,
            bin_dir: bin_dir(),
            options,
            containerd: None,
            engine: None,
        };
        for d in ["cd", "cs", "data", "exec", "docker-config"] {
            std::fs::create_dir_all(stack.root.join(d))
                .unwrap_or_else(|e| panic!("mkdir {d}: {e}"));
        }
        for b in [
            "engine-api",
            "containerd-rs",
            "containerd-shim-rs",
            "runc-rs",
        ] {
            assert!(
                stack.bin_dir.join(b).is_file(),
                "{b} not found in {} (run `cargo build --workspace --bins` or set ENGINE_BIN_DIR)",
                stack.bin_dir.display()
            );
        }
        stack.start_containerd();
        stack.start_engine();
        if !stack.options.no_image {
            let out = stack.docker(&["load", "-i", &busybox_tar().to_string_lossy()]);
            assert!(out.status.success(), "docker load: {}", describe(&out));
        }
        stack
    }

    /// `it-<random>`: the cgroup parent given to engine-api.
    pub fn cgroup_parent(&self) -> String {
        format!("it-{}", self.suffix)
    }

    /// containerd-rs's socket.
    pub fn containerd_sock(&self) -> PathBuf {
        self.root.join("c.sock")
    }

    /// engine-api's socket.
    pub fn engine_sock(&self) -> PathBuf {
        self.root.join("d.sock")
    }

    /// containerd-rs's `--state` dir.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("cs")
    }

    /// The bundle of container `id` in namespace moby.
    pub fn bundle(&self, id: &str) -> PathBuf {
        self.state_dir().join(TASK_DIR).join("moby").join(id)
    }

    /// Path of a binary in the bin dir.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// The pid of the running containerd-rs.
    pub fn containerd_pid(&self) -> i32 {
        self.containerd
            .as_ref()
            .expect("containerd-rs is running")
            .id() as i32
    }

    /// The pid of the running engine-api.
    pub fn engine_pid(&self) -> i32 {
        self.engine.as_ref().expect("engine-api is running").id() as i32
    }

    fn log_file(&self, name: &str) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join(name))
            .unwrap_or_else(|e| panic!("open log {name}: {e}"))
    }

    fn daemon(&self, bin: &Path, args: &[String], log: &str) -> Child {
        let path = std::env::var("PATH").unwrap_or_default();
        let log_out = self.log_file(log);
        let log_err = log_out.try_clone().expect("dup log fd");
        Command::new(bin)
            .args(args)
            .env("PATH", format!("{}:{path}", self.bin_dir.display()))
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(log_out)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()))
    }

    /// Starts containerd-rs (same flags every time) and waits for its socket to accept.
    pub fn start_containerd(&mut self) {
        assert!(self.containerd.is_none(), "containerd-rs already running");
        let _ = std::fs::remove_file(self.containerd_sock());
        let r = |p: &str| self.root.join(p).to_string_lossy().into_owned();
        let mut args = vec![
            "--address".to_string(),
            r("c.sock"),
            "--root".to_string(),
            r("cd"),
            "--state".to_string(),
            r("cs"),
        ];
        if self.options.containerd_bin.is_some() {
            let config = self.root.join("containerd.toml");
            std::fs::write(
                &config,
                "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n",
            )
            .unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
            args.extend(["--config".to_string(), r("containerd.toml")]);
            args.push("--log-level=debug".to_string());
        } else {
            args.push("-D".to_string());
        }
        args.extend(self.options.containerd_args.iter().cloned());
        let bin = self
            .options
            .containerd_bin
            .clone()
            .unwrap_or_else(|| self.bin("containerd-rs"));
        let child = self.daemon(&bin, &args, "containerd.log");
        self.containerd = Some(child);
        let sock = self.containerd_sock();
        self.wait_ready("containerd-rs", |_| UnixStream::connect(&sock).is_ok());
    }

    /// Starts engine-api and waits until `/_ping` answers 200.
    pub fn start_engine(&mut self) {
        assert!(self.engine.is_none(), "engine-api already running");
        let _ = std::fs::remove_file(self.engine_sock());
        let r = |p: &str| self.root.join(p).to_string_lossy().into_owned();
        let args = vec![
            "-H".to_string(),
            format!("unix://{}", r("d.sock")),
            "--data-root".to_string(),
            r("data"),
            "--exec-root".to_string(),
            r("exec"),
            "--containerd".to_string(),
            r("c.sock"),
            "--cgroup-parent".to_string(),
            self.cgroup_parent(),
            "-D".to_string(),
        ];
        let args: Vec<String> = args
            .into_iter()
            .chain(self.options.engine_args.iter().cloned())
            .collect();
        let child = self.daemon(&self.bin("engine-api"), &args, "engine.log");
        self.engine = Some(child);
        let sock = self.engine_sock();
        self.wait_ready("engine-api", |_| {
            http::request(&sock, "GET", "/_ping", None).is_ok_and(|r| r.status == 200)
        });
    }

    fn wait_ready(&mut self, name: &str, mut ready: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + STARTUP;
        loop {
            if ready(self) {
                return;
            }
            let child = match name {
                "engine-api" => self.engine.as_mut(),
                _ => self.containerd.as_mut(),
            }
            .expect("daemon was just started");
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{name} exited during startup with {status}");
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not answer within {STARTUP:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop_child(child: &mut Option<Child>, sig: Signal, grace: Duration) {
        if let Some(mut c) = child.take() {
            let pid = c.id() as i32;
            cleanup::signal(pid, sig);
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            cleanup::signal(pid, Signal::SIGKILL);
            let _ = c.wait();
        }
    }

    /// SIGTERM (then SIGKILL after 10 s) containerd-rs and reap it.
    pub fn stop_containerd(&mut self) {
        Self::stop_child(
            &mut self.containerd,
            Signal::SIGTERM,
            Duration::from_secs(10),
        );
    }

    /// SIGTERM (then SIGKILL after 20 s) engine-api and reap it.
    pub fn stop_engine(&mut self) {
        Self::stop_child(&mut self.engine, Signal::SIGTERM, Duration::from_secs(20));
    }

    /// `kill -9` containerd-rs and reap it; it stays down until [`Stack::start_containerd`].
    pub fn kill9_containerd(&mut self) {
        Self::stop_child(
            &mut self.containerd,
            Signal::SIGKILL,
            Duration::from_secs(5),
        );
    }

    /// Stops and restarts containerd-rs with the same flags.
    pub fn restart_containerd(&mut self) {
        self.stop_containerd();
        self.start_containerd();
    }

    /// Stops and restarts engine-api with the same flags.
    pub fn restart_engine(&mut self) {
        self.stop_engine();
        self.start_engine();
    }

    /// Runs the Docker CLI against this stack (private DOCKER_CONFIG), with a 120 s deadline.
    pub fn docker(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(docker_cli());
        cmd.args(args)
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.engine_sock().display()),
            )
            .env("DOCKER_CONFIG", self.root.join("docker-config"))
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION");
        cmd::run_with_timeout(cmd, CLIENT_TIMEOUT)
    }

    /// Runs the Docker CLI, asserts exit 0 and returns stdout with the trailing newline trimmed.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed:\n{}",
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim_end_matches('\n')
            .to_string()
    }

    /// `docker inspect <name>` parsed: the first object.
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let text = self.docker_ok(&["inspect", name]);
        let v: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("docker inspect {name}: not JSON ({e}): {text}"));
        v.get(0).cloned().unwrap_or(serde_json::Value::Null)
    }

    /// State.Pid of a running container.
    pub fn init_pid(&self, name: &str) -> i32 {
        let v = self.inspect(name);
        let pid = v["State"]["Pid"].as_i64().unwrap_or(0) as i32;
        assert!(pid > 0, "{name} has no State.Pid: {v}");
        pid
    }

    /// Runs `ctr --address <containerd sock> <args>`.
    pub fn ctr(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(CTR);
        cmd.arg("--address").arg(self.containerd_sock()).args(args);
        cmd::run_with_timeout(cmd, CLIENT_TIMEOUT)
    }

    /// A raw request to engine-api.
    pub fn api(&self, method: &str, path: &str, body: Option<&[u8]>) -> http::Response {
        http::request(&self.engine_sock(), method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Pids recorded in `<state>/**/shim.pid` whose processes are alive.
    pub fn shim_pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = cleanup::find_files(&self.state_dir(), "shim.pid")
            .iter()
            .filter_map(|p| cleanup::read_pid(p))
            .filter(|&p| procfs::alive(p))
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Live processes running `bin_dir/<bin>` whose command line mentions this stack's root.
    pub fn processes_of(&self, bin: &str) -> Vec<i32> {
        procfs::pids_with_exe_mentioning(&self.bin(bin), &self.root.to_string_lossy())
    }

    /// Concatenated daemon and shim logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut files = vec![
            self.root.join("containerd.log"),
            self.root.join("engine.log"),
        ];
        for name in ["shim.log", "log.json"] {
            files.extend(cleanup::find_files(&self.state_dir(), name));
        }
        let mut out = String::new();
        for f in files {
            let mut text = String::new();
            if let Ok(mut file) = File::open(&f) {
                let _ = file.read_to_string(&mut text);
            }
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(300)..];
            out.push_str(&format!(
                "===== {} (last {} lines)\n",
                f.display(),
                tail.len()
            ));
            for l in tail {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// True when `pid` sits in our cgroup parent or is a child of one of our shims: guards
    /// against killing a recycled pid read from a stale init.pid.
    fn is_our_container_process(&self, pid: i32) -> bool {
        let parent = format!("/{}/", self.cgroup_parent());
        let in_cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .is_ok_and(|c| c.contains(&parent));
        let shim = self.bin("containerd-shim-rs");
        in_cgroup || procfs::ppid(pid).and_then(procfs::exe).as_deref() == Some(shim.as_path())
    }

    fn teardown(&mut self) {
        let root_text = self.root.to_string_lossy().into_owned();
        // 1. Container processes: everything in our cgroups and every init.pid.
        let mut victims: Vec<i32> = cleanup::cgroup_dirs(&self.cgroup_parent())
            .iter()
            .flat_map(|d| cleanup::cgroup_pids(d))
            .collect();
        victims.extend(
            cleanup::find_files(&self.state_dir(), "init.pid")
                .iter()
                .filter_map(|p| cleanup::read_pid(p))
                .filter(|&p| self.is_our_container_process(p)),
        );
        for &p in &victims {
            cleanup::signal(p, Signal::SIGKILL);
        }
        // 2. The daemons.
        Self::stop_child(&mut self.engine, Signal::SIGTERM, Duration::from_secs(5));
        Self::stop_child(
            &mut self.containerd,
            Signal::SIGTERM,
            Duration::from_secs(5),
        );
        // 3. Shims and leftover runtimes: by shim.pid and by our root on their command line.
        let mut rest: Vec<i32> = cleanup::find_files(&self.state_dir(), "shim.pid")
            .iter()
            .filter_map(|p| cleanup::read_pid(p))
            .filter(|&p| {
                procfs::exe(p).is_some_and(|e| e.starts_with(&self.bin_dir))
                    || procfs::cmdline(p).iter().any(|a| a.contains(&root_text))
            })
            .collect();
        for b in [
            "containerd-shim-rs",
            "runc-rs",
            "containerd-rs",
            "engine-api",
        ] {
            rest.extend(self.processes_of(b));
        }
        for &p in &rest {
            cleanup::signal(p, Signal::SIGKILL);
        }
        victims.extend(rest);
        if !cleanup::wait_gone(&victims, Duration::from_secs(10)) {
            eprintln!("teardown {root_text}: some processes survived SIGKILL: {victims:?}");
        }
        // 4. Mounts, cgroups, files.
        let unmounted = cleanup::unmount_all(&self.root);
        let left = cleanup::remove_cgroups(&self.cgroup_parent(), Duration::from_secs(5));
        if !left.is_empty() {
            eprintln!("teardown {root_text}: cgroups left: {left:?}");
        }
        if unmounted {
            if let Err(e) = std::fs::remove_dir_all(&self.root) {
                eprintln!("teardown {root_text}: remove: {e}");
            }
        } else {
            eprintln!(
                "teardown {root_text}: mounts left, not removing: {:?}",
                cleanup::mounts_under(&self.root)
            );
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- logs of stack {} ----\n{}",
                self.root.display(),
                self.logs()
            );
        }
        self.teardown();
    }
}
