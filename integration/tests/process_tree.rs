//! The process architecture seen from /proc: init ← shim (daemonized), no runc-rs left,
//! one shim per running container, containers outlive a `kill -9` of containerd-rs.

use std::time::Duration;

use integration::cleanup::read_pid;
use integration::{procfs, wait_until, Stack};

#[test]
fn init_is_child_of_a_daemonized_shim() {
    let s = Stack::start();
    let shim_bin = s.bin("containerd-shim-rs");
    let mut shims = Vec::new();
    for name in ["sleeper", "sleeper2"] {
        let id = s.docker_ok(&["run", "-d", "--name", name, "busybox", "sleep", "300"]);
        let init = s.init_pid(name);
        let shim = procfs::ppid(init).unwrap_or_else(|| panic!("ppid of init {init}"));
        assert_eq!(
            procfs::exe(shim),
            Some(shim_bin.clone()),
            "init {init}'s parent {shim} is the shim"
        );
        let shim_parent = procfs::ppid(shim).unwrap_or(0);
        assert_ne!(
            shim_parent,
            s.containerd_pid(),
            "shim {shim} was daemonized"
        );
        assert_ne!(
            shim_parent,
            s.engine_pid(),
            "shim {shim} is not engine-api's child"
        );
        assert_eq!(
            read_pid(&s.bundle(&id).join("shim.pid")),
            Some(shim),
            "shim.pid"
        );
        assert_eq!(
            read_pid(&s.bundle(&id).join("init.pid")),
            Some(init),
            "init.pid"
        );
        shims.push(shim);
    }
    shims.sort_unstable();
    assert_ne!(shims[0], shims[1], "one shim per container");
    let mut running = s.processes_of("containerd-shim-rs");
    running.sort_unstable();
    assert_eq!(running, shims, "exactly one shim per running container");

    let runc_bin = s.bin("runc-rs");
    let leftovers: Vec<i32> = procfs::all_pids()
        .into_iter()
        .filter(|&p| procfs::alive(p) && procfs::exe(p).as_deref() == Some(runc_bin.as_path()))
        .filter(|&p| {
            s.processes_of("runc-rs").contains(&p)
                || procfs::ppid(p).is_some_and(|pp| shims.contains(&pp))
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "runc-rs processes left: {leftovers:?}"
    );

    // A stopped container has no shim.
    s.docker_ok(&["stop", "-t", "1", "sleeper2"]);
    assert!(
        wait_until(Duration::from_secs(10), || s
            .processes_of("containerd-shim-rs")
            .len()
            == 1),
        "shims after stopping one of two: {:?}",
        s.processes_of("containerd-shim-rs")
    );
}

#[test]
fn containers_survive_kill9_of_containerd() {
    let mut s = Stack::start();
    let id = s.docker_ok(&["run", "-d", "--name", "sleeper", "busybox", "sleep", "300"]);
    let init = s.init_pid("sleeper");
    let shim = procfs::ppid(init).unwrap_or(0);

    s.kill9_containerd();
    std::thread::sleep(Duration::from_millis(500));
    assert!(procfs::alive(init), "init survives containerd-rs's death");
    assert!(procfs::alive(shim), "shim survives containerd-rs's death");
    assert_eq!(procfs::ppid(init), Some(shim));

    s.start_containerd();
    let listed = |s: &Stack| s.docker_ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(
        wait_until(Duration::from_secs(15), || listed(&s)
            .starts_with("sleeper Up")),
        "docker ps: {}",
        listed(&s)
    );
    // containerd-rs found the task again through the shim's address.
    let tasks = || {
        let out = s.ctr(&["-n", "moby", "tasks", "ls"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        wait_until(Duration::from_secs(15), || tasks()
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("RUNNING"))),
        "ctr tasks ls: {}",
        tasks()
    );

    s.docker_ok(&["stop", "-t", "1", "sleeper"]);
    let v = s.inspect("sleeper");
    assert_eq!(v["State"]["Status"], "exited", "{v}");
    // `sleep` as pid 1 ignores SIGTERM, so the stop ends with SIGKILL.
    assert_eq!(v["State"]["ExitCode"], 137, "{v}");
    assert!(!procfs::alive(init));
    assert!(
        wait_until(Duration::from_secs(10), || !procfs::alive(shim)),
        "shim exits after the task is deleted"
    );
}
