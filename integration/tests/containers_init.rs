//! `docker run --init`: engine-init is pid 1 of the container, reaps orphaned zombies and
//! forwards signals to the command; without `--init` the same orphan stays a zombie.

use std::time::{Duration, Instant};

use integration::{procfs, wait_until, Stack};

/// Children of `pid` (zombies included) with their process states.
fn children(pid: i32) -> Vec<(i32, String)> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .map(|p| (p, procfs::state(p).unwrap_or_default()))
        .collect()
}

fn logs(s: &Stack, name: &str) -> String {
    let out = s.docker(&["logs", name]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn init_is_pid_1_reaps_orphans_and_forwards_signals() {
    let s = Stack::start();
    // The subshell's `sleep 2` is orphaned at once and re-parented to pid 1.
    let script =
        "trap 'echo got-usr1' USR1; (sleep 2 &); echo ready; while true; do sleep 0.1; done";
    s.docker_ok(&[
        "run", "-d", "--init", "--name", "withinit", "busybox", "sh", "-c", script,
    ]);
    let init = s.init_pid("withinit");
    assert_eq!(
        procfs::cmdline(init),
        ["/sbin/docker-init", "--", "sh", "-c", script],
        "State.Pid is the init"
    );
    let ps = s.docker_ok(&["exec", "withinit", "ps", "-o", "pid,args"]);
    assert!(
        ps.lines()
            .any(|l| l.trim_start().starts_with("1 /sbin/docker-init -- sh -c")),
        "pid 1 inside is the init: {ps}"
    );
    let orphan = |c: &[(i32, String)]| c.iter().any(|(p, _)| procfs::cmdline(*p) == ["sleep", "2"]);
    assert!(
        wait_until(Duration::from_secs(10), || orphan(&children(init))),
        "the orphan was re-parented to the init: {:?}",
        children(init)
    );
    // Once it exits the init reaps it: only the shell is left, and no zombie.
    assert!(
        wait_until(Duration::from_secs(15), || {
            let c = children(init);
            c.len() == 1 && !c.iter().any(|(_, st)| st.starts_with('Z'))
        }),
        "children of the init: {:?}",
        children(init)
    );
    assert!(wait_until(Duration::from_secs(10), || logs(&s, "withinit")
        .contains("ready")));
    s.docker_ok(&["kill", "-s", "USR1", "withinit"]);
    assert!(
        wait_until(Duration::from_secs(10), || logs(&s, "withinit")
            .contains("got-usr1")),
        "USR1 forwarded to the shell: {}",
        logs(&s, "withinit")
    );
    // SIGTERM reaches the shell (pid 2, default action): stop returns well before its timeout.
    let t = Instant::now();
    s.docker_ok(&["stop", "-t", "30", "withinit"]);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        t.elapsed()
    );
    let v = s.inspect("withinit");
    assert_eq!(
        v["State"]["ExitCode"], 143,
        "128 + SIGTERM from the init: {v}"
    );
    assert_eq!(v["HostConfig"]["Init"], true, "{v}");
}

#[test]
fn without_init_the_orphan_stays_a_zombie() {
    let s = Stack::start();
    s.docker_ok(&[
        "run",
        "-d",
        "--name",
        "noinit",
        "busybox",
        "sh",
        "-c",
        "(sleep 1 &); exec sleep 300",
    ]);
    let pid1 = s.init_pid("noinit");
    assert_eq!(procfs::cmdline(pid1), ["sleep", "300"]);
    assert!(
        wait_until(Duration::from_secs(15), || children(pid1)
            .iter()
            .any(|(_, st)| st.starts_with('Z'))),
        "sleep as pid 1 never reaps: {:?}",
        children(pid1)
    );
    // The init's exit status follows the command's.
    let out = s.docker(&["run", "--rm", "--init", "busybox", "sh", "-c", "exit 7"]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        integration::describe(&out)
    );
    let out = s.docker(&["run", "--rm", "--init", "busybox", "/no/such/binary"]);
    assert_eq!(
        out.status.code(),
        Some(127),
        "{}",
        integration::describe(&out)
    );
}
