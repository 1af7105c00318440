//! docker run -d / ps / inspect / logs / stop / rm.

use std::time::{Duration, Instant};

use integration::{procfs, wait_until, Stack};

fn logs(s: &Stack, name: &str) -> (String, String) {
    let out = s.docker(&["logs", name]);
    assert!(out.status.success(), "{}", integration::describe(&out));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sleeper_lifecycle() {
    let s = Stack::start();
    let id = s.docker_ok(&["run", "-d", "--name", "sleeper", "busybox", "sleep", "300"]);
    assert_eq!(id.len(), 64, "run -d prints the full id: {id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");

    let ps = s.docker_ok(&[
        "ps",
        "--format",
        "{{.Names}} {{.Status}} {{.Image}} {{.ID}}",
    ]);
    assert!(ps.starts_with("sleeper Up "), "{ps}");
    assert!(ps.ends_with(&format!("busybox {}", &id[..12])), "{ps}");

    let v = s.inspect("sleeper");
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["Name"], "/sleeper");
    assert_eq!(v["State"]["Status"], "running", "{v}");
    assert_eq!(v["State"]["Running"], true, "{v}");
    assert_eq!(v["State"]["ExitCode"], 0, "{v}");
    let pid = v["State"]["Pid"].as_i64().unwrap_or(0) as i32;
    assert!(
        pid > 0 && procfs::alive(pid),
        "State.Pid {pid} is a live process"
    );
    assert_eq!(procfs::cmdline(pid), ["sleep", "300"]);

    assert_eq!(logs(&s, "sleeper"), (String::new(), String::new()));

    // sleep as pid 1 of its namespace ignores SIGTERM: stop must fall back to SIGKILL.
    let t = Instant::now();
    s.docker_ok(&["stop", "-t", "1", "sleeper"]);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "stop waited the timeout: {took:?}"
    );
    assert!(took < Duration::from_secs(10), "stop took {took:?}");
    assert!(!procfs::alive(pid), "init {pid} is gone after stop");
    let v = s.inspect("sleeper");
    assert_eq!(v["State"]["Status"], "exited", "{v}");
    assert_eq!(v["State"]["ExitCode"], 137, "{v}");
    let ps = s.docker_ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.starts_with("sleeper Exited (137)"), "{ps}");

    s.docker_ok(&["rm", "sleeper"]);
    assert_eq!(s.docker_ok(&["ps", "-a", "-q"]), "");
    let out = s.docker(&["inspect", "sleeper"]);
    assert!(!out.status.success());
    assert!(!s.bundle(&id).exists(), "bundle removed with the container");
}

#[test]
fn logs_keep_stdout_and_stderr_apart() {
    let s = Stack::start();
    s.docker_ok(&[
        "run",
        "-d",
        "--name",
        "talker",
        "busybox",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2; exec sleep 300",
    ]);
    assert!(
        wait_until(Duration::from_secs(10), || logs(&s, "talker")
            .1
            .contains("to-err")),
        "logs never showed the output: {:?}",
        logs(&s, "talker")
    );
    assert_eq!(
        logs(&s, "talker"),
        ("to-out\n".to_string(), "to-err\n".to_string())
    );
    s.docker_ok(&["rm", "-f", "talker"]);
    assert_eq!(s.docker_ok(&["ps", "-a", "-q"]), "");
}

#[test]
fn stop_sends_sigterm_first() {
    let s = Stack::start();
    s.docker_ok(&[
        "run",
        "-d",
        "--name",
        "polite",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.1; done",
    ]);
    assert!(wait_until(Duration::from_secs(10), || logs(&s, "polite")
        .0
        .contains("ready")));
    let t = Instant::now();
    s.docker_ok(&["stop", "-t", "30", "polite"]);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "TERM handled quickly: {:?}",
        t.elapsed()
    );
    let v = s.inspect("polite");
    assert_eq!(v["State"]["ExitCode"], 0, "{v}");
    assert!(logs(&s, "polite").0.contains("got-term"));
}

#[test]
fn stop_kills_after_timeout_when_sigterm_is_ignored() {
    let s = Stack::start();
    s.docker_ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "busybox",
        "sh",
        "-c",
        "trap '' TERM; echo ready; while true; do sleep 0.1; done",
    ]);
    assert!(wait_until(Duration::from_secs(10), || logs(&s, "stubborn")
        .0
        .contains("ready")));
    let pid = s.init_pid("stubborn");
    let t = Instant::now();
    s.docker_ok(&["stop", "-t", "2", "stubborn"]);
    let took = t.elapsed();
    assert!(took >= Duration::from_secs(2), "stop waited -t 2: {took:?}");
    assert!(took < Duration::from_secs(12), "stop took {took:?}");
    assert!(!procfs::alive(pid));
    let v = s.inspect("stubborn");
    assert_eq!(v["State"]["ExitCode"], 137, "{v}");
}
