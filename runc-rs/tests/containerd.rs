//! Interop: a private real containerd 1.6 whose real containerd-shim-runc-v2 drives runc-rs
//! (`ctr run --runc-binary <runc-rs>`): run --rm, a detached task with exec/ps/pause/resume/
//! kill/delete, a tty, and containerd's default seccomp profile (Docker's).
mod common;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{rand6, BIN};

const IMAGE: &str = "docker.io/library/busybox:latest";

/// containerd with its own config, root, state and sockets under a temp dir.
struct Containerd {
    dir: PathBuf,
    ns: String,
    child: Option<Child>,
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

impl Containerd {
    fn start() -> Containerd {
        let r = rand6();
        let dir = PathBuf::from(format!("/tmp/rrcd-{r}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let d = dir.display();
        // Only what ctr run needs: no CRI, no remote snapshotters, /opt kept under our dir.
        let toml = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.snapshotter.v1.aufs\", \
             \"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.zfs\", \
             \"io.containerd.snapshotter.v1.devmapper\", \"io.containerd.tracing.processor.v1.otlp\", \
             \"io.containerd.internal.v1.tracing\"]\n\
             [grpc]\n  address = \"{d}/c.sock\"\n[ttrpc]\n  address = \"{d}/c.sock.ttrpc\"\n\
             [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n"
        );
        std::fs::write(dir.join("config.toml"), toml).expect("config");
        let log = std::fs::File::create(dir.join("containerd.log")).expect("log");
        let child = Command::new("/usr/bin/containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        let c = Containerd {
            ns: format!("rrcd{r}"),
            dir,
            child: Some(child),
        };
        wait_until("containerd", Duration::from_secs(60), || {
            c.ctr_cmd()
                .arg("version")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        });
        c
    }

    fn ctr_cmd(&self) -> Command {
        let mut c = Command::new("/usr/bin/ctr");
        c.arg("--address")
            .arg(self.dir.join("c.sock"))
            .arg("--namespace")
            .arg(&self.ns);
        c
    }

    fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ctr")
    }

    fn ctr_ok(&self, args: &[&str]) -> String {
        let o = self.ctr(args);
        assert!(
            o.status.success(),
            "ctr {args:?}: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn import_busybox(&self) {
        let tar = self.dir.join("busybox.tar");
        fixtures::ensure_busybox_tar(&tar).expect("build busybox image tar");
        let tar_s = tar.to_string_lossy().into_owned();
        self.ctr_ok(&["images", "import", &tar_s]);
        assert!(self.ctr_ok(&["images", "ls", "-q"]).contains(IMAGE));
    }

    /// `ctr run` arguments up to the image: runc-rs as the shim's runtime, our own runc root,
    /// FIFO dir and cgroup.
    fn run_args(&self, id: &str) -> Vec<String> {
        let d = self.dir.display();
        vec![
            "run".into(),
            "--runc-binary".into(),
            BIN.into(),
            "--runc-root".into(),
            format!("{d}/runc"),
            "--fifo-dir".into(),
            format!("{d}/fifo"),
            "--cgroup".into(),
            format!("/{}/{id}", self.ns),
        ]
    }

    fn cgroup_dir(&self, ctrl: &str, id: &str) -> PathBuf {
        Path::new("/sys/fs/cgroup")
            .join(ctrl)
            .join(&self.ns)
            .join(id)
    }

    fn logs(&self) -> String {
        let mut s = std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
        // runc-rs's --log files, written by the shim into each bundle.
        let tasks = self
            .dir
            .join("state/io.containerd.runtime.v2.task")
            .join(&self.ns);
        for e in std::fs::read_dir(tasks).into_iter().flatten().flatten() {
            let l = std::fs::read_to_string(e.path().join("log.json")).unwrap_or_default();
            s.push_str(&format!("\n--- {}/log.json\n{l}", e.path().display()));
        }
        s
    }

    fn task_status(&self, id: &str) -> String {
        let out = self.ctr_ok(&["task", "ls"]);
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or("")
            .to_string()
    }
}

/// Pids of processes whose command line mentions `needle`.
fn pids_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if pid != me && String::from_utf8_lossy(&cmd).contains(needle) {
            out.push(pid);
        }
    }
    out
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        let kill = |pid: i32| {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        };
        // Containers first (by the pids in their cgroups), then containerd, then its shims.
        let cg_parents: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join(&self.ns))
            .filter(|p| p.is_dir())
            .collect();
        for p in &cg_parents {
            for c in std::fs::read_dir(p).into_iter().flatten().flatten() {
                let procs =
                    std::fs::read_to_string(c.path().join("cgroup.procs")).unwrap_or_default();
                procs.lines().filter_map(|l| l.parse().ok()).for_each(kill);
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let dir = self.dir.to_string_lossy().into_owned();
        for pid in pids_mentioning(&dir) {
            kill(pid);
        }
        std::thread::sleep(Duration::from_millis(100));
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut targets: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4))
            .filter(|m| m.starts_with(&dir))
            .collect();
        targets.reverse();
        for t in targets {
            let _ = nix::mount::umount2(t, nix::mount::MntFlags::MNT_DETACH);
        }
        for p in &cg_parents {
            for c in std::fs::read_dir(p).into_iter().flatten().flatten() {
                let _ = std::fs::remove_dir(c.path());
            }
            let _ = std::fs::remove_dir(p);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn ctr_run_rm_echo_through_containerd_shim_runc_v2() {
    let cd = Containerd::start();
    cd.import_busybox();
    let mut args = cd.run_args("echo1");
    args.extend(["--rm".into(), IMAGE.into(), "echo1".into()]);
    args.extend([
        "sh".into(),
        "-c".into(),
        "echo hi; cat /proc/1/cgroup | grep memory".into(),
    ]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cd.ctr_ok(&a);
    assert_eq!(
        out,
        format!("hi\n4:memory:/{}/echo1\n", cd.ns),
        "{}",
        cd.logs()
    );
    // --rm: the container, its runc-rs state and its cgroup are gone.
    assert_eq!(cd.ctr_ok(&["containers", "ls", "-q"]), "");
    assert!(!cd.dir.join("runc").join(&cd.ns).join("echo1").exists());
    assert!(!cd.cgroup_dir("memory", "echo1").exists());
    // No runtime error reached containerd.
    let log = cd.logs();
    assert!(
        !log.lines()
            .any(|l| l.contains("level=error") && (l.contains("runc") || l.contains("shim"))),
        "{log}"
    );
}

#[test]
fn ctr_detached_task_exec_ps_pause_resume_kill_delete() {
    let cd = Containerd::start();
    cd.import_busybox();
    let id = "det1";
    let mut args = cd.run_args(id);
    args.extend([
        "-d".into(),
        IMAGE.into(),
        id.into(),
        "sleep".into(),
        "1000".into(),
    ]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    cd.ctr_ok(&a);
    assert_eq!(cd.task_status(id), "RUNNING");
    // runc-rs's own state, as the shim sees it through `runc-rs state`.
    let root = cd.dir.join("runc").join(&cd.ns);
    let st = Command::new(BIN)
        .arg("--root")
        .arg(&root)
        .args(["state", id])
        .output()
        .expect("state");
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).expect("state json");
    assert_eq!(st["status"], "running");
    let init = st["pid"].as_i64().expect("pid");

    let out = cd.ctr_ok(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        id,
        "sh",
        "-c",
        "echo from-exec; cat /proc/1/cmdline",
    ]);
    assert_eq!(out, "from-exec\nsleep\x001000\0");
    // A long-running exec shows up in `ctr task ps` (the shim's `runc-rs ps --format json`).
    let mut exec = cd
        .ctr_cmd()
        .args(["task", "exec", "--exec-id", "e2", id, "sleep", "1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn exec");
    let mut pids: Vec<i64> = Vec::new();
    wait_until("exec in ps", Duration::from_secs(30), || {
        let ps = cd.ctr_ok(&["task", "ps", id]);
        pids = ps
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        pids.len() == 2
    });
    assert!(pids.contains(&init), "{pids:?}");
    let procs = std::fs::read_to_string(cd.cgroup_dir("memory", id).join("cgroup.procs"))
        .expect("cgroup.procs");
    let mut in_cg: Vec<i64> = procs.lines().filter_map(|l| l.parse().ok()).collect();
    in_cg.sort();
    pids.sort();
    assert_eq!(in_cg, pids);

    cd.ctr_ok(&["task", "pause", id]);
    assert_eq!(cd.task_status(id), "PAUSED");
    let freezer = cd.cgroup_dir("freezer", id).join("freezer.state");
    assert_eq!(
        std::fs::read_to_string(&freezer).expect("freezer").trim(),
        "FROZEN"
    );
    cd.ctr_ok(&["task", "resume", id]);
    assert_eq!(cd.task_status(id), "RUNNING");
    assert_eq!(
        std::fs::read_to_string(&freezer).expect("freezer").trim(),
        "THAWED"
    );

    cd.ctr_ok(&["task", "kill", "--signal", "KILL", id]);
    wait_until("task stopped", Duration::from_secs(30), || {
        cd.task_status(id) == "STOPPED"
    });
    let _ = exec.wait();
    cd.ctr_ok(&["task", "delete", id]);
    cd.ctr_ok(&["containers", "delete", id]);
    assert!(!root.join(id).exists(), "runc-rs state left behind");
    assert!(!cd.cgroup_dir("memory", id).exists(), "cgroup left behind");
    assert!(!Path::new(&format!("/proc/{init}")).exists());
}

#[test]
fn ctr_run_with_a_tty() {
    let cd = Containerd::start();
    cd.import_busybox();
    let id = "tty1";
    let ws = nix::pty::Winsize {
        ws_row: 33,
        ws_col: 101,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&ws), None).expect("openpty");
    let master: OwnedFd = pty.master;
    let slave: OwnedFd = pty.slave;
    let mut args = cd.run_args(id);
    args.extend(["--rm".into(), "-t".into(), IMAGE.into(), id.into()]);
    args.extend([
        "sh".into(),
        "-c".into(),
        "tty; read x; stty size; echo got-$x".into(),
    ]);
    let mut cmd = cd.ctr_cmd();
    cmd.args(&args)
        .stdin(slave.try_clone().expect("dup"))
        .stdout(slave.try_clone().expect("dup"))
        .stderr(slave.try_clone().expect("dup"));
    // SAFETY: setsid and ioctl are async-signal-safe; the closure touches no locks.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn ctr run -t");
    drop(slave);
    let mut m = std::fs::File::from(master);
    let reader = {
        let mut m2 = m.try_clone().expect("dup master");
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let mut buf = [0u8; 1024];
            // EIO once every slave fd is closed.
            while let Ok(n) = m2.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&out).contains("got-") && out.ends_with(b"\n") {
                    break;
                }
            }
            String::from_utf8_lossy(&out).into_owned()
        })
    };
    // Type once the container's shell is waiting on its tty.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cd.task_status(id).eq("RUNNING") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    m.write_all(b"abc\n").expect("type");
    let status = wait_child(&mut child, Duration::from_secs(60));
    let out = reader.join().expect("reader");
    assert_eq!(status, Some(0), "output: {out:?}\n{}", cd.logs());
    // Two ptys in a row (the container's, then ours): each turns \n into \r\n.
    assert!(out.contains("/dev/pts/0\r\r\n"), "{out:?}");
    assert!(
        out.contains("33 101\r\r\n"),
        "window size not passed: {out:?}"
    );
    assert!(out.contains("got-abc\r\r\n"), "{out:?}");
    let _ = m.as_raw_fd();
}

fn wait_child(c: &mut Child, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = c.try_wait() {
            return s.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
    None
}

#[test]
fn ctr_default_seccomp_profile_is_enforced() {
    let cd = Containerd::start();
    cd.import_busybox();
    // containerd's default profile is Docker's default.json: unshare and mount are denied,
    // ordinary syscalls pass. Without --seccomp the same commands succeed.
    let script = "grep Seccomp: /proc/self/status; unshare -U true 2>/dev/null; echo unshare=$?; \
                  mkdir /tmp/m && mount -t tmpfs none /tmp/m 2>/dev/null; echo mount=$?; echo ok";
    let mut args = cd.run_args("sc1");
    args.extend([
        "--rm".into(),
        "--seccomp".into(),
        IMAGE.into(),
        "sc1".into(),
    ]);
    args.extend(["sh".into(), "-c".into(), script.into()]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(cd.ctr_ok(&a), "Seccomp:\t2\nunshare=1\nmount=1\nok\n");
    let mut args = cd.run_args("sc2");
    args.extend([
        "--rm".into(),
        "--privileged".into(),
        IMAGE.into(),
        "sc2".into(),
    ]);
    args.extend(["sh".into(), "-c".into(), script.into()]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(cd.ctr_ok(&a), "Seccomp:\t0\nunshare=0\nmount=0\nok\n");
}
