//! exec, the console socket, hooks, and a side-by-side run under real runc.
mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use common::*;
use serde_json::json;

fn start_sleeper(b: &Bundle) -> i32 {
    become_subreaper();
    let mut create = b.create_piped(&[]);
    assert!(
        create.wait().expect("wait").success(),
        "create: {}",
        b.log()
    );
    b.ok(&["start", &b.id]);
    b.pid()
}

#[test]
fn exec_joins_namespaces_and_cgroup() {
    let b = Bundle::new(&["sleep", "100"]);
    b.edit(|s| s["hostname"] = "exec-host".into());
    let pid = start_sleeper(&b);
    let o = b.run(&[
        "exec",
        "--env",
        "X=1",
        "--cwd",
        "/tmp",
        &b.id,
        "sh",
        "-c",
        "echo $X $(hostname) $(pwd); exit 5",
    ]);
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "1 exec-host /tmp\n");
    let o = b.run(&[
        "exec",
        &b.id,
        "sh",
        "-c",
        "echo $X; set -- /proc/[0-9]*; echo $#",
    ]);
    // The shell expands the glob itself: only the init and the exec'd shell are there.
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "\n2\n",
        "init and sh only"
    );
    // A detached exec with a pid file, as the shim runs it.
    let pidfile = b.dir.join("exec.pid");
    let proc_json = b.dir.join("process.json");
    std::fs::write(&proc_json, json!({"args": ["sleep", "50"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin"]}).to_string())
        .expect("process.json");
    let mut o = b.cmd();
    o.args(["exec", "--detach", "--process"])
        .arg(&proc_json)
        .arg("--pid-file")
        .arg(&pidfile)
        .arg(&b.id);
    let o = o
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("exec");
    assert!(o.success());
    let epid: i32 = std::fs::read_to_string(&pidfile)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(
        ns_inode(&epid.to_string(), "pid"),
        ns_inode(&pid.to_string(), "pid")
    );
    assert_eq!(
        ns_inode(&epid.to_string(), "mnt"),
        ns_inode(&pid.to_string(), "mnt")
    );
    let procs =
        std::fs::read_to_string(b.cgroup_dir("memory").join("cgroup.procs")).expect("procs");
    assert!(
        procs.lines().any(|l| l == epid.to_string()),
        "exec not in the cgroup: {procs}"
    );
    let ps = b.ok(&["ps", "--format", "json", &b.id]);
    let pids: Vec<i32> = serde_json::from_slice(&ps.stdout).expect("json");
    assert!(pids.contains(&pid) && pids.contains(&epid));
    b.ok(&["kill", "--all", &b.id, "KILL"]);
    // The init (pid 1 of its namespace) exits only once the exec'd process is reaped.
    assert_eq!(wait_pid(epid), 137);
    assert_eq!(wait_pid(pid), 137);
    b.ok(&["delete", &b.id]);
}

#[test]
fn console_socket_receives_pty_master() {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    become_subreaper();
    let b = Bundle::new(&["sh", "-c", "tty; echo on-tty"]);
    b.edit(|s| s["process"]["terminal"] = true.into());
    let sock = b.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind console socket");
    let sock_s = sock.to_string_lossy().into_owned();
    let mut create = b.create_piped(&["--console-socket", &sock_s]);
    let (conn, _) = listener.accept().expect("accept");
    let mut buf = [0u8; 256];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .expect("recvmsg");
    let mut master = None;
    for c in msg.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the fd was just received with SCM_RIGHTS and is owned by nobody else.
            master = fds.first().map(|fd| unsafe { OwnedFd::from_raw_fd(*fd) });
        }
    }
    let master = master.expect("pty master fd");
    assert!(create.wait().expect("wait").success(), "{}", b.log());
    let pid = b.pid();
    b.ok(&["start", &b.id]);
    assert_eq!(wait_pid(pid), 0);
    let mut out = Vec::new();
    let mut f = std::fs::File::from(master);
    let mut chunk = [0u8; 256];
    while let Ok(n) = std::io::Read::read(&mut f, &mut chunk) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(String::from_utf8_lossy(&out), "/dev/pts/0\r\non-tty\r\n");
    b.ok(&["delete", &b.id]);
}

#[test]
fn hooks_get_state_on_stdin_in_order() {
    become_subreaper();
    let b = Bundle::new(&["true"]);
    let log = b.dir.join("hooks.log");
    let hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("read -r s; echo \"{name} $s\" >> {}", log.display())]});
    b.edit(|s| {
        s["hooks"] = json!({
            "prestart": [hook("prestart")], "createRuntime": [hook("createRuntime")],
            "poststart": [hook("poststart")], "poststop": [hook("poststop")]
        });
    });
    let (_, code) = b.run_to_end();
    assert_eq!(code, 0);
    let text = std::fs::read_to_string(&log).expect("hooks ran");
    let names: Vec<&str> = text
        .lines()
        .map(|l| l.split(' ').next().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        ["prestart", "createRuntime", "poststart", "poststop"]
    );
    let first: serde_json::Value = serde_json::from_str(
        text.lines()
            .next()
            .and_then(|l| l.split_once(' '))
            .map(|x| x.1)
            .unwrap_or(""),
    )
    .expect("state json");
    assert_eq!(first["id"], b.id.as_str());
    assert_eq!(first["status"], "creating");
    assert!(first["pid"].as_i64().unwrap_or(0) > 0);
    assert!(text
        .lines()
        .last()
        .unwrap_or_default()
        .contains("\"status\":\"stopped\""));
}

#[test]
fn failing_hook_fails_create_and_cleans_up() {
    let b = Bundle::new(&["true"]);
    b.edit(|s| s["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]}));
    let st = b.create_piped(&[]).wait().expect("wait");
    assert!(!st.success());
    assert!(b.log().contains("/bin/false"), "{}", b.log());
    assert!(!b.root.join(&b.id).exists());
    assert!(!b.cgroup_dir("memory").exists());
}

#[test]
fn state_keys_match_real_runc() {
    become_subreaper();
    let ours = Bundle::new(&["sleep", "100"]);
    let pid = start_sleeper(&ours);
    let mut theirs = Bundle::new(&["sleep", "100"]);
    theirs.runtime = "/usr/sbin/runc".into();
    let tpid = start_sleeper(&theirs);
    let a = ours.state();
    let b = theirs.state();
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&a), keys(&b));
    assert_eq!(a["status"], b["status"]);
    assert_eq!(a["ociVersion"], b["ociVersion"]);
    ours.ok(&["kill", &ours.id, "KILL"]);
    theirs.ok(&["kill", &theirs.id, "KILL"]);
    assert_eq!(wait_pid(pid), 137);
    assert_eq!(wait_pid(tpid), 137);
    assert_eq!(ours.status(), theirs.status());
}
