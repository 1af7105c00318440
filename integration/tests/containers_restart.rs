//! Restart policies, and what an engine-api restart keeps: without --live-restore running
//! containers are stopped at shutdown and policies bring them back; with --live-restore they
//! keep running (and logging) while engine-api is down and are managed again after.

use std::time::{Duration, Instant};

use integration::{procfs, wait_until, Options, Stack};

fn logs(s: &Stack, name: &str) -> String {
    let out = s.docker(&["logs", name]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn restart_count(s: &Stack, name: &str) -> i64 {
    s.inspect(name)["RestartCount"].as_i64().unwrap_or(-1)
}

#[test]
fn always_and_unless_stopped_restart_until_stopped() {
    let s = Stack::start();
    for (name, policy) in [("alw", "always"), ("uls", "unless-stopped")] {
        s.docker_ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--restart",
            policy,
            "busybox",
            "sh",
            "-c",
            "echo run; exit 0",
        ]);
    }
    for name in ["alw", "uls"] {
        assert!(
            wait_until(Duration::from_secs(30), || restart_count(&s, name) >= 2),
            "{name}: {}",
            s.inspect(name)
        );
        assert!(
            wait_until(Duration::from_secs(10), || logs(&s, name)
                .matches("run")
                .count()
                >= 3),
            "every run logs: {:?}",
            logs(&s, name)
        );
        assert_eq!(
            s.inspect(name)["HostConfig"]["RestartPolicy"]["Name"],
            if name == "alw" {
                "always"
            } else {
                "unless-stopped"
            }
        );
        s.docker_ok(&["stop", "-t", "1", name]);
        let v = s.inspect(name);
        assert_eq!(v["State"]["Status"], "exited", "{v}");
        let count = restart_count(&s, name);
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(
            restart_count(&s, name),
            count,
            "no restart after docker stop"
        );
        assert_eq!(s.inspect(name)["State"]["Status"], "exited");
    }
    // --restart no (the default) and on-failure with exit 0 never restart.
    s.docker_ok(&[
        "run",
        "-d",
        "--name",
        "onf",
        "--restart",
        "on-failure",
        "busybox",
        "true",
    ]);
    s.docker_ok(&[
        "run", "-d", "--name", "nop", "busybox", "sh", "-c", "exit 1",
    ]);
    for name in ["onf", "nop"] {
        assert!(wait_until(Duration::from_secs(10), || s.inspect(name)
            ["State"]["Status"]
            == "exited"));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(restart_count(&s, "onf"), 0);
    assert_eq!(restart_count(&s, "nop"), 0);
}

#[test]
fn engine_restart_stops_containers_and_policies_bring_them_back() {
    let mut s = Stack::start();
    let run = |name: &str, policy: &str| {
        s.docker_ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--restart",
            policy,
            "--stop-timeout",
            "1",
            "busybox",
            "sh",
            "-c",
            "echo started; exec sleep 300",
        ]);
    };
    run("uls", "unless-stopped");
    run("uls-stopped", "unless-stopped");
    run("alw-stopped", "always");
    run("plain", "no");
    s.docker_ok(&["stop", "-t", "1", "uls-stopped"]);
    s.docker_ok(&["stop", "-t", "1", "alw-stopped"]);
    s.docker_ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo once; exit 1",
    ]);
    assert!(wait_until(Duration::from_secs(30), || {
        let v = s.inspect("flaky");
        v["RestartCount"] == 2 && v["State"]["Status"] == "exited"
    }));
    let pid_uls = s.init_pid("uls");
    let pid_plain = s.init_pid("plain");

    // Without --live-restore a shutdown stops running containers (--stop-timeout 1: SIGKILL
    // after a second, as `sleep` ignores SIGTERM as pid 1).
    let t = Instant::now();
    s.stop_engine();
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "shutdown took {:?}",
        t.elapsed()
    );
    assert!(
        !procfs::alive(pid_uls) && !procfs::alive(pid_plain),
        "containers stopped"
    );
    s.start_engine();

    for name in ["uls", "alw-stopped"] {
        assert!(
            wait_until(Duration::from_secs(20), || s.inspect(name)["State"]
                ["Running"]
                == true),
            "{name} restarted by its policy: {}",
            s.inspect(name)
        );
    }
    assert_ne!(s.init_pid("uls"), pid_uls, "a new process");
    for name in ["uls-stopped", "plain", "flaky"] {
        let v = s.inspect(name);
        assert_eq!(v["State"]["Status"], "exited", "{name}: {v}");
    }
    assert_eq!(s.inspect("plain")["State"]["ExitCode"], 137);
    // Restart counts and logs came back with the daemon.
    assert_eq!(restart_count(&s, "flaky"), 2);
    assert_eq!(logs(&s, "flaky"), "once\nonce\nonce\n");
    assert!(
        wait_until(Duration::from_secs(10), || logs(&s, "uls")
            == "started\nstarted\n"),
        "log of both runs: {:?}",
        logs(&s, "uls")
    );
}

#[test]
fn live_restore_keeps_containers_running_and_logging() {
    let mut s = Stack::start_with(Options {
        engine_args: vec!["--live-restore".to_string()],
        ..Options::default()
    });
    assert_eq!(
        s.docker_ok(&["info", "-f", "{{.LiveRestoreEnabled}}"])
            .trim(),
        "true"
    );
    s.docker_ok(&[
        "run",
        "-d",
        "--name",
        "counter",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo line$i; sleep 0.1; done",
    ]);
    let pid = s.init_pid("counter");
    assert!(wait_until(Duration::from_secs(10), || logs(&s, "counter")
        .contains("line3")));
    s.stop_engine();
    assert!(
        procfs::alive(pid),
        "the container survives engine-api's shutdown"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        procfs::alive(pid),
        "and keeps running while engine-api is down"
    );
    s.start_engine();
    let v = s.inspect("counter");
    assert_eq!(v["State"]["Status"], "running", "{v}");
    assert_eq!(v["State"]["Pid"], pid, "{v}");
    // What it printed while engine-api was down waited in the FIFO: no line is missing.
    let want = |n: usize| (1..=n).map(|i| format!("line{i}\n")).collect::<String>();
    assert!(
        wait_until(Duration::from_secs(10), || logs(&s, "counter")
            .starts_with(&want(25))),
        "logs: {}",
        logs(&s, "counter")
    );
    // Managed again: stop, exit code, state.
    s.docker_ok(&["stop", "-t", "1", "counter"]);
    assert!(!procfs::alive(pid));
    let v = s.inspect("counter");
    assert_eq!(v["State"]["Status"], "exited", "{v}");
    assert_eq!(
        v["State"]["ExitCode"], 137,
        "sh as pid 1 ignores SIGTERM: {v}"
    );
}
