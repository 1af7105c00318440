//! Everyday container commands through the real CLI: run flags, ps variants, logs options,
//! attach, exec (-d, -it), top, port, pause (freezer), resize, rm -f -v.

use std::process::Command;
use std::time::{Duration, Instant};

use integration::{describe, procfs, wait_until, Stack};

fn logs(s: &Stack, args: &[&str]) -> String {
    let mut a = vec!["logs"];
    a.extend_from_slice(args);
    let out = s.docker(&a);
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the CLI inside a pseudo-terminal of `rows`×`cols` (util-linux `script`).
fn docker_in_pty(s: &Stack, rows: u32, cols: u32, args: &str) -> std::process::Output {
    let mut cmd = Command::new("script");
    cmd.args(["-qfec"])
        .arg(format!(
            "stty rows {rows} cols {cols}; {} {args}",
            integration::DOCKER
        ))
        .arg("/dev/null")
        .env(
            "DOCKER_HOST",
            format!("unix://{}", s.engine_sock().display()),
        )
        .env("DOCKER_CONFIG", s.root.join("docker-config"))
        .env("DOCKER_CLI_HINTS", "false");
    integration::cmd::run_with_timeout(cmd, Duration::from_secs(120))
}

#[test]
fn run_flags_reach_the_process() {
    let s = Stack::start();
    assert_eq!(
        s.docker_ok(&["run", "--rm", "--entrypoint", "echo", "busybox", "a", "b"]),
        "a b"
    );
    assert_eq!(
        s.docker_ok(&["run", "--rm", "--hostname", "myhost", "busybox", "hostname"]),
        "myhost"
    );
    let env_file = s.root.join("env.list");
    std::fs::write(&env_file, "# comment\nA=1\nB=two words\n").expect("env file");
    assert_eq!(
        s.docker_ok(&[
            "run",
            "--rm",
            "--env-file",
            &env_file.to_string_lossy(),
            "-e",
            "C=3",
            "busybox",
            "sh",
            "-c",
            "echo $A/$B/$C",
        ]),
        "1/two words/3"
    );
    assert_eq!(
        s.docker_ok(&[
            "run",
            "--rm",
            "-w",
            "/tmp",
            "-u",
            "65534:65534",
            "busybox",
            "sh",
            "-c",
            "echo $(pwd) $(id -u) $(id -g)"
        ]),
        "/tmp 65534 65534"
    );
    s.docker_ok(&[
        "create", "--name", "labelled", "-l", "team=x", "-l", "tier=web", "busybox",
    ]);
    let labels = &s.inspect("labelled")["Config"]["Labels"];
    assert_eq!(labels["team"], "x", "{labels}");
    assert_eq!(labels["tier"], "web", "{labels}");

    // --stop-signal: docker stop sends it instead of SIGTERM.
    s.docker_ok(&[
        "run",
        "-d",
        "--name",
        "usr1",
        "--stop-signal",
        "USR1",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got-usr1; exit 4' USR1; echo ready; while true; do sleep 0.1; done",
    ]);
    assert!(wait_until(Duration::from_secs(10), || logs(&s, &["usr1"])
        .contains("ready")));
    s.docker_ok(&["stop", "usr1"]);
    assert_eq!(s.inspect("usr1")["State"]["ExitCode"], 4);
    assert!(logs(&s, &["usr1"]).contains("got-usr1"));
    assert_eq!(s.inspect("usr1")["Config"]["StopSignal"], "USR1");
    // --stop-timeout: the SIGKILL comes after 1 s instead of 10 s.
    s.docker_ok(&[
        "run",
        "-d",
        "--name",
        "quick",
        "--stop-timeout",
        "1",
        "busybox",
        "sleep",
        "300",
    ]);
    let t = Instant::now();
    s.docker_ok(&["stop", "quick"]);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(8),
        "{took:?}"
    );
    assert_eq!(s.inspect("quick")["State"]["ExitCode"], 137);
    assert_eq!(s.inspect("quick")["Config"]["StopTimeout"], 1);
}

#[test]
fn ps_lists_filters_and_sizes() {
    let s = Stack::start();
    let up = s.docker_ok(&[
        "run",
        "-d",
        "--name",
        "up",
        "-l",
        "tier=web",
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/big bs=1M count=2 2>/dev/null; exec sleep 300",
    ]);
    let out = s.docker(&["run", "--name", "three", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    let created = s.docker_ok(&["create", "--name", "fresh", "busybox", "true"]);
    assert_eq!(s.docker_ok(&["ps", "-q"]), &up[..12]);
    assert_eq!(s.docker_ok(&["ps", "-aq"]).lines().count(), 3);
    assert_eq!(s.docker_ok(&["ps", "-q", "--no-trunc"]), up);
    let f = |filter: &str| s.docker_ok(&["ps", "-a", "--filter", filter, "--format", "{{.Names}}"]);
    assert_eq!(f("label=tier=web"), "up");
    assert_eq!(f("label=tier"), "up");
    assert_eq!(f(&format!("id={}", &created[..10])), "fresh");
    assert_eq!(f("exited=3"), "three");
    assert_eq!(f("status=created"), "fresh");
    assert_eq!(f("status=running"), "up");
    assert_eq!(f("name=thr"), "three");
    let mut all: Vec<String> = f("ancestor=busybox").lines().map(str::to_string).collect();
    all.sort();
    assert_eq!(all, ["fresh", "three", "up"]);
    assert_eq!(f("ancestor=busybox:nosuchtag"), "");
    let fmt = s.docker_ok(&[
        "ps",
        "--format",
        "{{.ID}}|{{.Image}}|{{.Command}}|{{.Labels}}",
    ]);
    assert_eq!(
        fmt,
        format!("{}|busybox|\"sh -c 'dd if=/dev/z…\"|tier=web", &up[..12])
    );
    // -s: the writable layer holds the 2 MiB file.
    assert!(wait_until(Duration::from_secs(10), || {
        let v = s.inspect("up");
        v["State"]["Running"] == true
    }));
    let size = s.docker_ok(&["ps", "-s", "--filter", "name=up", "--format", "{{.Size}}"]);
    assert!(
        size.starts_with("2.1") && size.contains("MB (virtual "),
        "{size}"
    );
}

#[test]
fn logs_follow_since_until_and_survive_an_engine_restart() {
    let mut s = Stack::start();
    s.docker_ok(&[
        "run",
        "-d",
        "--name",
        "talk",
        "busybox",
        "sh",
        "-c",
        "echo one; sleep 1; echo two; echo err-two >&2; sleep 1; echo three",
    ]);
    // -f ends when the container exits and has every line.
    let out = s.docker(&["logs", "-f", "talk"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\ntwo\nthree\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err-two\n");
    let ts = logs(&s, &["-t", "talk"]);
    let stamp = |word: &str| {
        ts.lines()
            .find(|l| l.ends_with(&format!(" {word}")))
            .and_then(|l| l.split(' ').next())
            .unwrap_or_else(|| panic!("{word} in {ts}"))
            .to_string()
    };
    assert_eq!(
        logs(&s, &["--since", &stamp("two"), "talk"]),
        "two\nthree\n"
    );
    assert_eq!(logs(&s, &["--until", &stamp("two"), "talk"]), "one\ntwo\n");
    assert_eq!(logs(&s, &["--tail", "1", "talk"]), "three\n");
    assert_eq!(logs(&s, &["--tail", "0", "talk"]), "");
    s.restart_engine();
    let out = s.docker(&["logs", "talk"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "one\ntwo\nthree\n",
        "{}",
        describe(&out)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err-two\n");
    // Follow a running container from the tail: new lines keep coming.
    s.docker_ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo t$i; sleep 0.3; done",
    ]);
    let out = s.docker(&["logs", "-f", "--tail", "2", "ticker"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.ends_with("t4\nt5\n") && text.lines().count() <= 5,
        "{text}"
    );
}

#[test]
fn attach_exec_top_port_and_pause() {
    let s = Stack::start();
    s.docker_ok(&[
        "run",
        "-d",
        "--name",
        "att",
        "busybox",
        "sh",
        "-c",
        "sleep 2; echo via-attach; echo err-attach >&2; exit 5",
    ]);
    let out = s.docker(&["attach", "att"]);
    assert_eq!(out.status.code(), Some(5), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "via-attach\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err-attach\n");

    let id = s.docker_ok(&["run", "-d", "--name", "box", "busybox", "sleep", "300"]);
    s.docker_ok(&["exec", "-d", "box", "sh", "-c", "echo detached > /tmp/x"]);
    assert!(wait_until(Duration::from_secs(10), || {
        s.docker(&["exec", "box", "cat", "/tmp/x"]).stdout == b"detached\n"
    }));
    let top = s.docker_ok(&["top", "box", "-o", "pid,comm"]);
    let mut lines = top.lines();
    assert_eq!(
        lines
            .next()
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["PID", "COMMAND"]),
        "{top}"
    );
    let init = s.init_pid("box");
    assert_eq!(
        lines
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        vec![vec![init.to_string().as_str(), "sleep"]],
        "{top}"
    );
    assert_eq!(s.docker_ok(&["port", "box"]), "");

    // pause freezes the cgroup; unpause thaws it.
    s.docker_ok(&["pause", "box"]);
    let freezer = format!(
        "/sys/fs/cgroup/freezer/{}/{id}/freezer.state",
        s.cgroup_parent()
    );
    let state = || {
        std::fs::read_to_string(&freezer)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    assert_eq!(state(), "FROZEN");
    assert_eq!(
        procfs::state(init).as_deref(),
        Some("D"),
        "a frozen task sleeps uninterruptibly"
    );
    assert!(s
        .docker_ok(&["ps", "--format", "{{.Status}}"])
        .ends_with("(Paused)"));
    let out = s.docker(&["exec", "box", "true"]);
    assert!(!out.status.success(), "no exec in a paused container");
    s.docker_ok(&["unpause", "box"]);
    assert_eq!(state(), "THAWED");
    s.docker_ok(&["rm", "-f", "-v", "box"]);
    assert!(!procfs::alive(init));
    assert_eq!(s.docker_ok(&["ps", "-aq", "--filter", "name=box"]), "");
}

#[test]
fn interactive_tty_sessions_and_resize() {
    let s = Stack::start();
    let out = docker_in_pty(&s, 33, 77, "run -it --rm busybox sh -c 'tty; stty size'");
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(out.status.success(), "{}", describe(&out));
    assert!(text.contains("/dev/pts/0\n33 77\n"), "{text:?}");

    s.docker_ok(&[
        "run", "-d", "-t", "--name", "term", "busybox", "sleep", "300",
    ]);
    let out = docker_in_pty(&s, 20, 90, "exec -it term sh -c 'tty; stty size; exit 6'");
    assert_eq!(out.status.code(), Some(6), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(text.contains("20 90"), "{text:?}");
    // The resize endpoint changes the container's own terminal.
    let r = s.api("POST", "/v1.50/containers/term/resize?h=41&w=101", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        s.docker_ok(&["exec", "term", "stty", "-F", "/proc/1/fd/0", "size"]),
        "41 101"
    );
}
