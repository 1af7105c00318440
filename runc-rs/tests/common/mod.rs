//! Shared test harness: a busybox bundle in a short temp dir, runc-rs invocations, and a
//! guard that force-deletes the container and removes cgroups and dirs on drop.
#![allow(dead_code, unreachable_pub)]
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_runc-rs");

pub fn rand6() -> String {
    let mut b = [0u8; 3];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .expect("urandom");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub struct Bundle {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub id: String,
    pub cg_parent: String,
    pub runtime: String,
}

impl Bundle {
    /// A bundle with runc's default spec, no terminal, `args`, and a unique cgroup parent.
    pub fn new(args: &[&str]) -> Bundle {
        let r = rand6();
        let dir = PathBuf::from(format!("/tmp/rr-{r}"));
        let rootfs = dir.join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "etc", "tmp"] {
            std::fs::create_dir_all(rootfs.join(d)).expect("mkdir rootfs");
        }
        std::fs::copy("/usr/bin/busybox", rootfs.join("bin/busybox")).expect("copy busybox");
        for c in [
            "sh", "echo", "cat", "hostname", "ls", "sleep", "true", "false", "id", "readlink",
            "touch", "tty", "stat", "ulimit", "umask", "pwd", "env", "grep", "mount", "wc",
        ] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(c)).expect("symlink");
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n",
        )
        .expect("passwd");
        let cg_parent = format!("rr-test-{r}");
        let id = format!("c{r}");
        let mut spec = runc_rs::spec::default_spec(false);
        spec["process"]["terminal"] = false.into();
        spec["process"]["args"] = serde_json::json!(args);
        spec["linux"]["cgroupsPath"] = format!("/{cg_parent}/{id}").into();
        let b = Bundle {
            root: dir.join("state"),
            dir,
            id,
            cg_parent,
            runtime: BIN.into(),
        };
        b.write_spec(&spec);
        b
    }

    pub fn spec(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.dir.join("config.json")).expect("read spec"))
            .expect("spec json")
    }

    pub fn write_spec(&self, v: &serde_json::Value) {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(v).expect("json"),
        )
        .expect("write spec");
    }

    pub fn edit(&self, f: impl FnOnce(&mut serde_json::Value)) {
        let mut v = self.spec();
        f(&mut v);
        self.write_spec(&v);
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.runtime);
        c.arg("--root").arg(&self.root);
        c
    }

    /// `create` with the shim's flags; stdout and stderr of the container are pipes.
    pub fn create_piped(&self, extra: &[&str]) -> std::process::Child {
        let mut c = self.cmd();
        c.arg("--log").arg(self.dir.join("log.json")).args([
            "--log-format",
            "json",
            "create",
            "--bundle",
        ]);
        c.arg(&self.dir)
            .arg("--pid-file")
            .arg(self.dir.join("init.pid"))
            .args(extra)
            .arg(&self.id);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().expect("spawn create")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run runtime")
    }

    pub fn ok(&self, args: &[&str]) -> Output {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    pub fn state(&self) -> serde_json::Value {
        let o = self.ok(&["state", &self.id]);
        serde_json::from_slice(&o.stdout).expect("state json")
    }

    pub fn status(&self) -> String {
        self.state()["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn pid(&self) -> i32 {
        std::fs::read_to_string(self.dir.join("init.pid"))
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid")
    }

    pub fn cgroup_dir(&self, ctrl: &str) -> PathBuf {
        PathBuf::from("/sys/fs/cgroup")
            .join(ctrl)
            .join(&self.cg_parent)
            .join(&self.id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log.json")).unwrap_or_default()
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .args(["delete", "--force", &self.id])
            .stderr(Stdio::null())
            .output();
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in rd.flatten() {
                let parent = e.path().join(&self.cg_parent);
                let _ = std::fs::remove_dir(parent.join(&self.id));
                let _ = std::fs::remove_dir(&parent);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Makes this test process the subreaper of orphaned container inits, so tests can wait for them.
pub fn become_subreaper() {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// Waits for an (adopted) init and returns its exit code (128+signal when killed).
pub fn wait_pid(pid: i32) -> i32 {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, c)) => return c,
            Ok(WaitStatus::Signaled(_, s, _)) => return 128 + s as i32,
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(e) => panic!("waitpid {pid}: {e}"),
        }
    }
}

pub fn ns_inode(pid: &str, name: &str) -> u64 {
    std::os::unix::fs::MetadataExt::ino(
        &std::fs::metadata(Path::new("/proc").join(pid).join("ns").join(name)).expect("ns"),
    )
}

/// Reads a child's piped output to the end.
pub fn read_all(r: &mut impl std::io::Read) -> String {
    let mut s = String::new();
    r.read_to_string(&mut s).expect("read output");
    s
}

/// Builds the static probe once per test binary and returns its path.
pub fn probe_binary() -> PathBuf {
    static PROBE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PROBE
        .get_or_init(|| {
            // BIN is <target>/debug/runc-rs.
            let target = Path::new(BIN)
                .parent()
                .and_then(Path::parent)
                .expect("target dir")
                .to_path_buf();
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../probe/Cargo.toml");
            let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args([
                    "build",
                    "-q",
                    "--target",
                    "x86_64-unknown-linux-gnu",
                    "--manifest-path",
                ])
                .arg(&manifest)
                .env("CARGO_TARGET_DIR", &target)
                .env("RUSTFLAGS", "-C target-feature=+crt-static")
                .status()
                .expect("run cargo build for probe");
            assert!(st.success(), "building the static probe failed");
            target.join("x86_64-unknown-linux-gnu/debug/probe")
        })
        .clone()
}

impl Bundle {
    /// Copies the static probe into the rootfs as /bin/probe.
    pub fn add_probe(&self) {
        std::fs::copy(probe_binary(), self.dir.join("rootfs/bin/probe")).expect("copy probe");
    }

    /// create + start with piped stdout; returns (stdout text, exit code).
    pub fn run_to_end(&self) -> (String, i32) {
        become_subreaper();
        let mut create = self.create_piped(&[]);
        let mut out = create.stdout.take().expect("stdout");
        let st = create.wait().expect("wait create");
        assert!(st.success(), "create failed: {}", self.log());
        let pid = self.pid();
        self.ok(&["start", &self.id]);
        let text = read_all(&mut out);
        let code = wait_pid(pid);
        self.ok(&["delete", &self.id]);
        (text, code)
    }
}
