//! `--health-*`: probes run as execs, State.Health in inspect, `(healthy)` in ps, the health
//! filter, and `health_status` events.

use std::time::Duration;

use integration::{wait_until, Stack};

fn health(s: &Stack, name: &str) -> serde_json::Value {
    s.inspect(name)["State"]["Health"].clone()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[test]
fn health_goes_starting_healthy_unhealthy_with_log_ps_and_events() {
    let s = Stack::start();
    let since = now();
    s.docker_ok(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "echo probe-out; test -e /tmp/ok",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        "--health-timeout",
        "10s",
        // Failures within the start period do not count: the first change is to healthy.
        "--health-start-period",
        "30s",
        "--health-start-interval",
        "1s",
        "busybox",
        "sh",
        "-c",
        "sleep 3; touch /tmp/ok; exec sleep 300",
    ]);
    let h = health(&s, "hc");
    assert_eq!(h["Status"], "starting", "{h}");
    let ps = s.docker_ok(&["ps", "--format", "{{.Status}}"]);
    assert!(ps.ends_with("(health: starting)"), "{ps}");
    let cfg = &s.inspect("hc")["Config"]["Healthcheck"];
    assert_eq!(
        cfg["Test"],
        serde_json::json!(["CMD-SHELL", "echo probe-out; test -e /tmp/ok"])
    );
    assert_eq!(cfg["Interval"], 1_000_000_000i64, "{cfg}");

    assert!(
        wait_until(Duration::from_secs(30), || health(&s, "hc")["Status"]
            == "healthy"),
        "{}",
        health(&s, "hc")
    );
    let h = health(&s, "hc");
    assert_eq!(h["FailingStreak"], 0, "{h}");
    let log = h["Log"].as_array().cloned().unwrap_or_default();
    let last = log.last().cloned().unwrap_or_default();
    assert_eq!(last["ExitCode"], 0, "{h}");
    assert_eq!(last["Output"], "probe-out\n", "{h}");
    assert!(log.len() <= 5, "{h}");
    let ps = s.docker_ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(
        ps.starts_with("hc Up ") && ps.ends_with("(healthy)"),
        "{ps}"
    );
    assert_eq!(
        s.docker_ok(&["ps", "-q", "--filter", "health=healthy"])
            .len(),
        12
    );
    assert_eq!(
        s.docker_ok(&["ps", "-q", "--filter", "health=unhealthy"]),
        ""
    );

    // Remove the file: two failing probes make it unhealthy.
    s.docker_ok(&["exec", "hc", "rm", "/tmp/ok"]);
    assert!(
        wait_until(Duration::from_secs(30), || health(&s, "hc")["Status"]
            == "unhealthy"),
        "{}",
        health(&s, "hc")
    );
    let h = health(&s, "hc");
    assert!(h["FailingStreak"].as_i64().unwrap_or(0) >= 2, "{h}");
    let last = h["Log"]
        .as_array()
        .and_then(|l| l.last().cloned())
        .unwrap_or_default();
    assert_eq!(last["ExitCode"], 1, "{h}");
    assert_eq!(
        s.docker_ok(&["ps", "-q", "--filter", "health=unhealthy"])
            .len(),
        12
    );

    let until = now() + 1;
    let ev = s.docker_ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "container=hc",
        "--filter",
        "event=health_status",
        "--format",
        "{{.Action}}",
    ]);
    assert_eq!(
        ev.lines().collect::<Vec<_>>(),
        ["health_status: healthy", "health_status: unhealthy"],
        "{ev}"
    );
}

#[test]
fn a_probe_over_its_timeout_fails_with_dockerd_message() {
    let s = Stack::start();
    s.docker_ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--health-cmd",
        "sleep 30",
        "--health-interval",
        "1s",
        "--health-timeout",
        "1s",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "300",
    ]);
    assert!(
        wait_until(Duration::from_secs(30), || health(&s, "slow")["Status"]
            == "unhealthy"),
        "{}",
        health(&s, "slow")
    );
    let last = health(&s, "slow")["Log"]
        .as_array()
        .and_then(|l| l.first().cloned())
        .unwrap_or_default();
    assert_eq!(last["ExitCode"], -1, "{last}");
    assert_eq!(
        last["Output"], "Health check exceeded timeout (1s)",
        "{last}"
    );
    // A container without a check has no Health.
    s.docker_ok(&["run", "-d", "--name", "plain", "busybox", "sleep", "300"]);
    assert!(health(&s, "plain").is_null());
    assert_eq!(
        s.docker_ok(&["ps", "--filter", "health=none", "--format", "{{.Names}}"]),
        "plain"
    );
}
