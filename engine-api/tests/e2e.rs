//! End-to-end: the real Docker CLI → engine-api → a private real containerd 1.6 → runc.
mod common;

use std::time::{Duration, Instant};

use common::{describe, wait_until, Env};

#[test]
fn version_info_load_and_image_names() {
    let e = Env::start_empty();
    let v: serde_json::Value =
        serde_json::from_str(&e.ok(&["version", "--format", "{{json .Server}}"])).expect("json");
    assert_eq!(v["ApiVersion"], "1.50", "{v}");
    assert_eq!(v["Components"][0]["Name"], "Engine", "{v}");
    let info: serde_json::Value =
        serde_json::from_str(&e.ok(&["info", "--format", "{{json .}}"])).expect("json");
    assert_eq!(info["Containers"], 0, "{info}");
    assert_eq!(info["OSType"], "linux", "{info}");

    let out = e.ok(&["load", "-i", &e.root.join("busybox.tar").to_string_lossy()]);
    assert_eq!(out, "Loaded image: busybox:latest");
    let images = e.ok(&[
        "images",
        "--no-trunc",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ]);
    assert_eq!(images, format!("busybox:latest {}", e.image_id));
    for name in [
        "busybox",
        "busybox:latest",
        "docker.io/library/busybox:latest",
        &e.image_id,
        &e.image_id[7..19],
    ] {
        let got = e.ok(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{.Os}} {{json .RootFS.Layers}}",
            name,
        ]);
        assert_eq!(
            got,
            format!("{} linux [\"{}\"]", e.image_id, e.diff_id),
            "{name}"
        );
    }
    // The blobs are in containerd's content store and the layer is a committed snapshot.
    let hex = e.image_id.trim_start_matches("sha256:");
    assert!(e
        .root
        .join("cd/io.containerd.content.v1.content/blobs/sha256")
        .join(hex)
        .is_file());
    let (status, text) = e.http("GET", "/v1.50/images/busybox:nope/json", None);
    assert_eq!(status, 404, "{text}");
    assert!(
        text.contains(r#"{"message":"No such image: busybox:nope"}"#),
        "{text}"
    );
    let (status, text) = e.http(
        "POST",
        "/v1.50/containers/create",
        Some(r#"{"Image":"nosuchimage","Cmd":["true"]}"#),
    );
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("No such image: nosuchimage:latest"), "{text}");
    // tag / rmi of one name keeps the image under the other.
    e.ok(&["tag", "busybox", "localhost:5000/my/box:v1"]);
    let tags = e.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        tags.contains("localhost:5000/my/box:v1") && tags.contains("busybox:latest"),
        "{tags}"
    );
    let out = e.ok(&["rmi", "localhost:5000/my/box:v1"]);
    assert_eq!(out, "Untagged: localhost:5000/my/box:v1");
    assert_eq!(e.ok(&["images", "-q", "--no-trunc"]), e.image_id);
}

#[test]
fn run_attach_streams_and_exit_codes() {
    let e = Env::start();
    let out = e.docker(&["run", "--rm", "busybox", "echo", "hello"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    let out = e.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    assert_eq!(e.ok(&["ps", "-aq"]), "", "--rm removed both");
    // Spec: hostname = first 12 of the id, pid 1, env, workdir, user.
    let out = e.ok(&[
        "run",
        "--name",
        "probe",
        "-e",
        "A=b c",
        "-w",
        "/tmp",
        "-u",
        "65534",
        "busybox",
        "sh",
        "-c",
        "echo $$ $(hostname) $A $(pwd) $(id -u)",
    ]);
    let id = e.inspect("probe")["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(out, format!("1 {} b c /tmp 65534", &id[..12]));
    // stdin through attach, half-close honoured.
    let out = e.docker_stdin(
        &["run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done"],
        Some(b"piped\n"),
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped\ndone\n");
}

#[test]
fn detached_lifecycle_logs_stop_rm() {
    let e = Env::start();
    let id = e.ok(&[
        "run",
        "-d",
        "--name",
        "sleeper",
        "busybox",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2; exec sleep 300",
    ]);
    assert_eq!(id.len(), 64, "{id}");
    let ps = e.ok(&[
        "ps",
        "--format",
        "{{.Names}} {{.Status}} {{.Image}} {{.ID}}",
    ]);
    assert!(ps.starts_with("sleeper Up "), "{ps}");
    assert!(ps.ends_with(&format!("busybox {}", &id[..12])), "{ps}");
    let v = e.inspect("sleeper");
    assert_eq!(v["Name"], "/sleeper");
    assert_eq!(v["State"]["Status"], "running");
    let pid = v["State"]["Pid"].as_i64().unwrap_or(0);
    assert!(
        pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "{v}"
    );
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    assert!(
        cgroup.contains(&format!("/{}/{id}", e.cgroup_parent())),
        "{cgroup}"
    );
    assert!(wait_until(Duration::from_secs(10), || {
        let out = e.docker(&["logs", "sleeper"]);
        String::from_utf8_lossy(&out.stderr).contains("to-err")
    }));
    let out = e.docker(&["logs", "sleeper"]);
    assert_eq!(
        (
            String::from_utf8_lossy(&out.stdout).as_ref(),
            String::from_utf8_lossy(&out.stderr).as_ref()
        ),
        ("to-out\n", "to-err\n")
    );
    let t = Instant::now();
    e.ok(&["stop", "-t", "1", "sleeper"]);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "{took:?}"
    );
    let v = e.inspect("sleeper");
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 137);
    let ps = e.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.starts_with("sleeper Exited (137)"), "{ps}");
    e.ok(&["rm", "sleeper"]);
    assert_eq!(e.ok(&["ps", "-aq"]), "");
    let out = e.docker(&["stop", "sleeper"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No such container: sleeper"),
        "{}",
        describe(&out)
    );
    // SIGTERM handled by the process: stop returns quickly with its exit code.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "polite",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.1; done",
    ]);
    assert!(wait_until(Duration::from_secs(10), || e
        .ok(&["logs", "polite"])
        .contains("ready")));
    let t = Instant::now();
    e.ok(&["stop", "-t", "30", "polite"]);
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(e.inspect("polite")["State"]["ExitCode"], 0);
    assert!(e.ok(&["logs", "polite"]).contains("got-term"));
}

#[test]
fn state_survives_engine_and_containerd_restart() {
    let mut e = Env::start();
    // Running containers outlive engine-api restarts only with --live-restore.
    e.live_restore = true;
    e.stop_engine();
    e.start_engine();
    e.ok(&["run", "-d", "--name", "sleeper", "busybox", "sleep", "300"]);
    let out = e.docker(&["run", "--name", "done", "busybox", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    let snapshot = |e: &Env| {
        let images = e.ok(&[
            "images",
            "--no-trunc",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}}",
        ]);
        let mut ps: Vec<String> = e
            .ok(&[
                "ps",
                "-a",
                "--no-trunc",
                "--format",
                "{{.ID}} {{.Names}} {{.Image}} {{.Command}}",
            ])
            .lines()
            .map(str::to_string)
            .collect();
        ps.sort();
        (images, ps)
    };
    let before = snapshot(&e);
    let pid = e.inspect("sleeper")["State"]["Pid"].as_i64().unwrap_or(0);
    e.stop_engine();
    e.kill_containerd();
    e.start_containerd();
    e.start_engine();
    assert_eq!(snapshot(&e), before);
    assert!(wait_until(Duration::from_secs(10), || e.inspect("sleeper")
        ["State"]["Running"]
        == true));
    assert_eq!(
        e.inspect("sleeper")["State"]["Pid"].as_i64().unwrap_or(0),
        pid
    );
    assert_eq!(e.inspect("done")["State"]["ExitCode"], 7);
    let t = Instant::now();
    e.ok(&["stop", "-t", "1", "sleeper"]);
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(e.inspect("sleeper")["State"]["ExitCode"], 137);
}

#[test]
fn exec_kill_rename_pause_top_logs_prune() {
    let e = Env::start();
    e.ok(&["run", "-d", "--name", "box", "busybox", "sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; trap 'echo usr1' USR1; while true; do sleep 0.1; done"]);
    assert!(wait_until(Duration::from_secs(10), || e
        .ok(&["logs", "box"])
        .contains("line5")));
    assert_eq!(e.ok(&["logs", "--tail", "2", "box"]), "line4\nline5");
    let ts = e.ok(&["logs", "-t", "--tail", "1", "box"]);
    assert!(ts.ends_with(" line5") && ts.contains('T'), "{ts}");
    // exec: output, exit code, env, workdir, user.
    assert_eq!(
        e.ok(&[
            "exec",
            "-e",
            "X=1",
            "-w",
            "/tmp",
            "-u",
            "65534",
            "box",
            "sh",
            "-c",
            "echo $X $(pwd) $(id -u)"
        ]),
        "1 /tmp 65534"
    );
    let out = e.docker(&["exec", "box", "sh", "-c", "exit 5"]);
    assert_eq!(out.status.code(), Some(5), "{}", describe(&out));
    let out = e.docker_stdin(&["exec", "-i", "box", "cat"], Some(b"via-exec\n"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "via-exec\n",
        "{}",
        describe(&out)
    );
    // kill -s delivers the signal; the container keeps running.
    e.ok(&["kill", "-s", "USR1", "box"]);
    assert!(wait_until(Duration::from_secs(10), || e
        .ok(&["logs", "box"])
        .contains("usr1")));
    assert_eq!(e.inspect("box")["State"]["Running"], true);
    // top lists the container's processes.
    let top = e.ok(&["top", "box"]);
    assert!(
        top.contains("PID") && top.contains("sleep") || top.contains("sh -c"),
        "{top}"
    );
    // pause / unpause show in ps.
    e.ok(&["pause", "box"]);
    assert!(e
        .ok(&["ps", "--format", "{{.Status}}"])
        .contains("(Paused)"));
    e.ok(&["unpause", "box"]);
    assert_eq!(e.inspect("box")["State"]["Status"], "running");
    // rename, ps filters.
    e.ok(&["rename", "box", "crate"]);
    assert_eq!(
        e.ok(&["ps", "--filter", "name=crate", "--format", "{{.Names}}"]),
        "crate"
    );
    assert_eq!(e.ok(&["ps", "--filter", "status=exited", "-q"]), "");
    e.ok(&["restart", "-t", "1", "crate"]);
    assert_eq!(e.inspect("crate")["State"]["Running"], true);
    // prune removes only stopped containers.
    let out = e.docker(&["run", "--name", "gone", "busybox", "true"]);
    assert!(out.status.success(), "{}", describe(&out));
    e.ok(&["container", "prune", "-f"]);
    let names = e.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(names, "crate");
    e.ok(&["rm", "-f", "crate"]);
}

#[test]
fn tty_restart_policy_and_events() {
    let e = Env::start();
    let since = chrono_now();
    let out = e.docker(&[
        "run",
        "-t",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "test -t 1 && echo is-a-tty",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "is-a-tty\r\n");
    e.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "exit 1",
    ]);
    assert!(
        wait_until(Duration::from_secs(20), || {
            let v = e.inspect("flaky");
            v["RestartCount"] == 2 && v["State"]["Status"] == "exited"
        }),
        "{}",
        e.inspect("flaky")
    );
    let until = chrono_now() + 1;
    let ev = e.ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "container=flaky",
        "--format",
        "{{.Action}}",
    ]);
    let actions: Vec<&str> = ev.lines().collect();
    assert_eq!(actions.iter().filter(|a| **a == "start").count(), 3, "{ev}");
    assert_eq!(actions.iter().filter(|a| **a == "die").count(), 3, "{ev}");
    assert_eq!(actions.first(), Some(&"create"), "{ev}");
}

fn chrono_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
