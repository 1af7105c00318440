//! create/start/state/kill/delete as the shim drives them, checked from the host's side.
mod common;

use common::*;

#[test]
fn create_start_prints_output_as_pid1_in_own_namespaces() {
    become_subreaper();
    let b = Bundle::new(&[
        "sh",
        "-c",
        "echo hello; echo $$; hostname; ls /sys/class/net",
    ]);
    b.edit(|s| s["hostname"] = "box1".into());
    let mut create = b.create_piped(&[]);
    let mut out = create.stdout.take().expect("stdout");
    let st = create.wait().expect("wait create");
    assert!(st.success(), "create failed: {}", b.log());
    let pid = b.pid();
    assert_eq!(b.status(), "created");
    assert_eq!(b.state()["pid"], pid);
    let me = std::process::id().to_string();
    for ns in ["mnt", "pid", "net", "ipc", "uts"] {
        assert_ne!(
            ns_inode(&pid.to_string(), ns),
            ns_inode(&me, ns),
            "{ns} namespace is the host's"
        );
    }
    // runc's default spec has no cgroup namespace.
    assert_eq!(
        ns_inode(&pid.to_string(), "cgroup"),
        ns_inode(&me, "cgroup")
    );
    b.ok(&["start", &b.id]);
    assert_eq!(read_all(&mut out), "hello\n1\nbox1\nlo\n");
    assert_eq!(wait_pid(pid), 0);
    assert_eq!(b.status(), "stopped");
    assert_eq!(b.state()["pid"], 0);
    b.ok(&["delete", &b.id]);
    assert!(!b.root.join(&b.id).exists());
    assert!(!b.cgroup_dir("memory").exists());
}

#[test]
fn exit_code_and_stderr_reach_the_caller() {
    become_subreaper();
    let b = Bundle::new(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
    let mut create = b.create_piped(&[]);
    let mut out = create.stdout.take().expect("stdout");
    let mut err = create.stderr.take().expect("stderr");
    assert!(create.wait().expect("wait").success(), "{}", b.log());
    let pid = b.pid();
    b.ok(&["start", &b.id]);
    assert_eq!(read_all(&mut out), "out\n");
    assert_eq!(read_all(&mut err), "err\n");
    assert_eq!(wait_pid(pid), 3);
    b.ok(&["delete", &b.id]);
}

#[test]
fn state_transitions_and_kill_by_name() {
    become_subreaper();
    let b = Bundle::new(&["sleep", "100"]);
    let mut create = b.create_piped(&[]);
    assert!(create.wait().expect("wait").success(), "{}", b.log());
    let pid = b.pid();
    assert_eq!(b.status(), "created");
    // start twice: the second must fail like runc.
    b.ok(&["start", &b.id]);
    assert_eq!(b.status(), "running");
    let again = b.run(&["start", &b.id]);
    assert!(!again.status.success());
    // delete without --force refuses a running container.
    let del = b.run(&["delete", &b.id]);
    assert!(!del.status.success());
    assert!(String::from_utf8_lossy(&del.stderr).contains("is not stopped: running"));
    b.ok(&["pause", &b.id]);
    assert_eq!(b.status(), "paused");
    b.ok(&["resume", &b.id]);
    assert_eq!(b.status(), "running");
    b.ok(&["kill", &b.id, "KILL"]);
    assert_eq!(wait_pid(pid), 128 + 9);
    assert_eq!(b.status(), "stopped");
    let k = b.run(&["kill", &b.id]);
    assert!(!k.status.success(), "kill of a stopped container must fail");
    b.ok(&["delete", &b.id]);
    let st = b.run(&["state", &b.id]);
    assert!(!st.status.success());
    assert!(String::from_utf8_lossy(&st.stderr).contains("container does not exist"));
}

#[test]
fn kill_default_sigterm_and_numbers() {
    become_subreaper();
    let b = Bundle::new(&[
        "sh",
        "-c",
        "trap 'exit 42' TERM; while true; do sleep 0.05; done",
    ]);
    let mut create = b.create_piped(&[]);
    assert!(create.wait().expect("wait").success(), "{}", b.log());
    let pid = b.pid();
    b.ok(&["start", &b.id]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    b.ok(&["kill", &b.id]);
    assert_eq!(wait_pid(pid), 42);
    b.ok(&["delete", &b.id]);

    let b = Bundle::new(&["sleep", "100"]);
    let mut create = b.create_piped(&[]);
    assert!(create.wait().expect("wait").success(), "{}", b.log());
    let pid = b.pid();
    b.ok(&["start", &b.id]);
    b.ok(&["kill", "--all", &b.id, "9"]);
    assert_eq!(wait_pid(pid), 137);
    b.ok(&["delete", &b.id]);
}

#[test]
fn delete_force_removes_running_container_cgroup_and_state() {
    become_subreaper();
    let b = Bundle::new(&["sleep", "100"]);
    b.edit(|s| {
        s["linux"]["resources"]["memory"] = serde_json::json!({"limit": 67108864});
        s["linux"]["resources"]["pids"] = serde_json::json!({"limit": 20});
        s["linux"]["resources"]["cpu"] =
            serde_json::json!({"shares": 512, "quota": 20000, "period": 100000});
    });
    let mut create = b.create_piped(&[]);
    assert!(create.wait().expect("wait").success(), "{}", b.log());
    let pid = b.pid();
    let read = |p: std::path::PathBuf| {
        std::fs::read_to_string(p)
            .expect("read cgroup file")
            .trim()
            .to_string()
    };
    assert_eq!(
        read(b.cgroup_dir("memory").join("memory.limit_in_bytes")),
        "67108864"
    );
    assert_eq!(read(b.cgroup_dir("pids").join("pids.max")), "20");
    assert_eq!(read(b.cgroup_dir("cpu").join("cpu.shares")), "512");
    assert_eq!(read(b.cgroup_dir("cpu").join("cpu.cfs_quota_us")), "20000");
    assert!(read(b.cgroup_dir("freezer").join("cgroup.procs")).contains(&pid.to_string()));
    assert!(read(b.cgroup_dir("devices").join("devices.list")).contains("c 1:3 rwm"));
    b.ok(&["start", &b.id]);
    b.ok(&["delete", "--force", &b.id]);
    assert_eq!(wait_pid(pid), 137);
    assert!(!b.root.join(&b.id).exists());
    for c in [
        "memory", "pids", "cpu", "freezer", "devices", "blkio", "cpuset", "systemd", "unified",
    ] {
        assert!(!b.cgroup_dir(c).exists(), "{c} cgroup left behind");
    }
}

#[test]
fn failed_create_leaves_nothing_and_logs_json_error() {
    let b = Bundle::new(&["/bin/does-not-exist"]);
    let mut create = b.create_piped(&[]);
    let st = create.wait().expect("wait");
    assert!(!st.success());
    let log = b.log();
    let line: serde_json::Value =
        serde_json::from_str(log.lines().last().expect("a log line")).expect("json log line");
    assert_eq!(line["level"], "error");
    assert!(
        line["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("/bin/does-not-exist"),
        "{log}"
    );
    assert!(line["time"].is_string());
    assert!(!b.root.join(&b.id).exists(), "state dir left behind");
    for c in ["memory", "pids", "freezer", "systemd", "unified"] {
        assert!(!b.cgroup_dir(c).exists(), "{c} cgroup left behind");
    }
    let again = b.create_piped(&[]).wait().expect("wait");
    assert!(!again.success());
}

#[test]
fn duplicate_id_is_refused() {
    become_subreaper();
    let b = Bundle::new(&["sleep", "100"]);
    assert!(
        b.create_piped(&[]).wait().expect("wait").success(),
        "{}",
        b.log()
    );
    let pid = b.pid();
    let second = b.create_piped(&[]).wait().expect("wait");
    assert!(!second.success());
    assert!(b.log().contains("container with id exists"));
    assert_eq!(b.status(), "created");
    b.ok(&["delete", &b.id]);
    assert_eq!(wait_pid(pid), 137);
}

#[test]
fn raising_hard_rlimit_fails_clearly() {
    let b = Bundle::new(&["true"]);
    b.edit(|s| {
        s["process"]["rlimits"] =
            serde_json::json!([{"type": "RLIMIT_NOFILE", "hard": 1u64 << 40, "soft": 1024}])
    });
    let st = b.create_piped(&[]).wait().expect("wait");
    assert!(!st.success());
    let log = b.log();
    assert!(
        log.contains("RLIMIT_NOFILE") && log.contains("CAP_SYS_RESOURCE"),
        "{log}"
    );
    assert!(!b.root.join(&b.id).exists());
}

#[test]
fn run_waits_and_returns_exit_code() {
    let b = Bundle::new(&["sh", "-c", "echo ran; exit 7"]);
    let o = b
        .cmd()
        .args(["run", "--bundle"])
        .arg(&b.dir)
        .arg(&b.id)
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ran\n");
    assert!(!b.root.join(&b.id).exists());
    assert!(!b.cgroup_dir("memory").exists());
}

#[test]
fn list_and_state_json() {
    become_subreaper();
    let b = Bundle::new(&["sleep", "100"]);
    assert!(
        b.create_piped(&[]).wait().expect("wait").success(),
        "{}",
        b.log()
    );
    let pid = b.pid();
    let o = b.ok(&["list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v[0]["id"], b.id.as_str());
    assert_eq!(v[0]["status"], "created");
    let q = b.ok(&["list", "-q"]);
    assert_eq!(String::from_utf8_lossy(&q.stdout), format!("{}\n", b.id));
    let ps = b.ok(&["ps", "--format", "json", &b.id]);
    let pids: Vec<i32> = serde_json::from_slice(&ps.stdout).expect("ps json");
    assert_eq!(pids, vec![pid]);
    b.ok(&["delete", "--force", &b.id]);
    assert_eq!(wait_pid(pid), 137);
}

#[test]
fn foreground_run_makes_its_own_pty_and_forwards_signals() {
    use std::io::{Read, Write};
    use std::os::unix::process::CommandExt;
    let b = Bundle::new(&["sh", "-c", "tty; read x; echo got-$x; exit 3"]);
    b.edit(|s| s["process"]["terminal"] = true.into());
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave = pty.slave;
    let mut cmd = b.cmd();
    cmd.args(["run", "--bundle"]).arg(&b.dir).arg(&b.id);
    cmd.stdin(slave.try_clone().expect("dup"))
        .stdout(slave.try_clone().expect("dup"))
        .stderr(std::process::Stdio::piped());
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("run");
    // Only runc-rs (and the container) may hold the slave: EIO on the master ends the output.
    drop(cmd);
    drop(slave);
    let mut m = std::fs::File::from(pty.master);
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    while !String::from_utf8_lossy(&out).contains("/dev/pts/") {
        let n = m.read(&mut buf).expect("read tty");
        assert!(n > 0, "run ended early: {}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
    }
    m.write_all(b"abc\n").expect("type");
    let st = child.wait().expect("wait run");
    while let Ok(n) = m.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&out);
    assert_eq!(st.code(), Some(3), "{text}");
    assert!(text.contains("got-abc"), "{text}");
    assert!(!b.root.join(&b.id).exists());

    // Signals to a foreground run reach the container's init.
    let b = Bundle::new(&[
        "sh",
        "-c",
        "trap 'exit 7' TERM; echo ready; while true; do sleep 0.05; done",
    ]);
    let mut child = b
        .cmd()
        .args(["run", "--bundle"])
        .arg(&b.dir)
        .arg(&b.id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let mut o = child.stdout.take().expect("stdout");
    let mut line = [0u8; 6];
    o.read_exact(&mut line).expect("ready");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal run");
    assert_eq!(child.wait().expect("wait").code(), Some(7));
    assert!(!b.cgroup_dir("memory").exists());
}
