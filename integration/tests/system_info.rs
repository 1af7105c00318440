//! docker info (storage driver, runtimes, default runtime, cgroup driver, version, counts, data
//! root) and `docker run --runtime`: runc-rs by default, Debian's runc and crun when configured
//! with --add-runtime or daemon.json, checked in the runtime's own state directory.

use std::path::PathBuf;

use integration::{describe, Options, Stack};

/// The state dir a runtime keeps for container `id`: `<containerd state>/runc/moby/<id>`.
fn runtime_state(s: &Stack, id: &str) -> PathBuf {
    s.state_dir().join("runc/moby").join(id)
}

fn id_of(s: &Stack, name: &str) -> String {
    s.docker_ok(&["inspect", "-f", "{{.Id}}", name])
}

/// crun 1.8 refuses every container on a cgroup v1 host whose cgroup2 hierarchy holds a
/// controller (this CI: hugetlb); elsewhere it runs them.
fn crun_usable() -> bool {
    let hybrid = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .is_ok_and(|c| !c.trim().is_empty());
    !hybrid
}

#[test]
fn info_shows_driver_runtimes_counts_and_root() {
    let s = Stack::start_with(Options {
        engine_args: vec![
            "--add-runtime".into(),
            "runc=/usr/sbin/runc".into(),
            "--add-runtime".into(),
            "crun=/usr/bin/crun".into(),
        ],
        ..Options::default()
    });
    s.docker_ok(&["run", "-d", "--name", "up", "busybox", "sleep", "300"]);
    s.docker_ok(&["run", "--name", "down", "busybox", "true"]);
    s.docker_ok(&["tag", "busybox", "second"]);
    let text = s.docker_ok(&["info"]);
    let cd_version = s.docker_ok(&["version", "-f", "{{(index .Server.Components 1).Version}}"]);
    for want in [
        " Containers: 2".to_string(),
        "  Running: 1".to_string(),
        "  Paused: 0".to_string(),
        "  Stopped: 1".to_string(),
        " Images: 1".to_string(),
        format!(" Server Version: {}", env!("CARGO_PKG_VERSION")),
        " Storage Driver: overlayfs".to_string(),
        "  driver-type: io.containerd.snapshotter.v1".to_string(),
        " Cgroup Driver: cgroupfs".to_string(),
        " Default Runtime: runc-rs".to_string(),
        format!(" containerd version: {cd_version}"),
        format!(" Docker Root Dir: {}", s.root.join("data").display()),
        " Logging Driver: json-file".to_string(),
    ] {
        assert!(
            text.lines().any(|l| l == want),
            "docker info lacks {want:?}:\n{text}"
        );
    }
    assert_eq!(runtimes(&text), ["crun", "runc", "runc-rs"], "{text}");
    assert!(!cd_version.is_empty());
    let info: serde_json::Value =
        serde_json::from_str(&s.docker_ok(&["info", "--format", "{{json .}}"])).expect("json");
    assert_eq!(info["Runtimes"]["runc"]["path"], "/usr/sbin/runc", "{info}");
    assert_eq!(info["Driver"], "overlayfs");
    assert_eq!(info["ContainersRunning"], 1);
}

#[test]
fn run_runtime_picks_runc_rs_runc_or_crun() {
    let s = Stack::start_with(Options {
        engine_args: vec![
            "--add-runtime".into(),
            "runc=/usr/sbin/runc".into(),
            "--add-runtime".into(),
            "crun=/usr/bin/crun".into(),
        ],
        ..Options::default()
    });
    // Default: runc-rs, whose state.json has its own shape (pid, start_time).
    s.docker_ok(&["run", "-d", "--name", "ours", "busybox", "sleep", "300"]);
    let id = id_of(&s, "ours");
    let st: serde_json::Value = serde_json::from_slice(
        &std::fs::read(runtime_state(&s, &id).join("state.json")).expect("runc-rs state"),
    )
    .expect("json");
    assert_eq!(st["pid"], s.init_pid("ours"), "{st}");
    assert!(st.get("init_process_pid").is_none(), "{st}");
    assert_eq!(s.inspect("ours")["HostConfig"]["Runtime"], "runc-rs");

    // --runtime runc: Debian's runc created it: libcontainer's state.json, and `runc state`
    // on the same root reports it running with the container's pid.
    s.docker_ok(&[
        "run",
        "-d",
        "--runtime",
        "runc",
        "--name",
        "real",
        "busybox",
        "sleep",
        "300",
    ]);
    let id = id_of(&s, "real");
    let pid = s.init_pid("real");
    let st: serde_json::Value = serde_json::from_slice(
        &std::fs::read(runtime_state(&s, &id).join("state.json")).expect("runc state"),
    )
    .expect("json");
    assert_eq!(st["init_process_pid"], pid, "{st}");
    let out = std::process::Command::new("/usr/sbin/runc")
        .arg("--root")
        .arg(s.state_dir().join("runc/moby"))
        .args(["state", &id])
        .output()
        .expect("runc state");
    assert!(out.status.success(), "{}", describe(&out));
    let rs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (rs["status"].as_str(), rs["pid"].as_i64()),
        (Some("running"), Some(pid as i64))
    );
    assert_eq!(s.inspect("real")["HostConfig"]["Runtime"], "runc");
    assert_eq!(
        s.docker_ok(&[
            "run",
            "--rm",
            "--runtime",
            "runc",
            "busybox",
            "echo",
            "via runc"
        ]),
        "via runc"
    );
    s.docker_ok(&["stop", "-t", "1", "real"]);
    assert_eq!(s.inspect("real")["State"]["Status"], "exited");

    // --runtime crun: crun runs it (its own `status` file, no state.json), or, on a host crun
    // refuses, the error is crun's own.
    let out = s.docker(&[
        "run",
        "-d",
        "--runtime",
        "crun",
        "--name",
        "cr",
        "busybox",
        "sleep",
        "300",
    ]);
    if crun_usable() {
        assert!(out.status.success(), "{}", describe(&out));
        let id = id_of(&s, "cr");
        let dir = runtime_state(&s, &id);
        assert!(
            dir.join("status").is_file() && !dir.join("state.json").exists(),
            "{}",
            dir.display()
        );
    } else {
        assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("/usr/bin/crun") && err.contains("cgroups in hybrid mode not supported"),
            "the shim ran crun: {}",
            describe(&out)
        );
    }
    // An unknown runtime is refused at create.
    let out = s.docker(&["run", "--rm", "--runtime", "nope", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown or invalid runtime name: nope"),
        "{}",
        describe(&out)
    );
}

#[test]
fn daemon_json_adds_runtimes_and_sets_the_default() {
    let dir = std::env::temp_dir().join(format!("itcfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let cfg = dir.join("daemon.json");
    std::fs::write(
        &cfg,
        r#"{"runtimes": {"runc": {"path": "/usr/sbin/runc"}}, "default-runtime": "runc"}"#,
    )
    .expect("write daemon.json");
    let s = Stack::start_with(Options {
        engine_args: vec!["--config-file".into(), cfg.to_string_lossy().into_owned()],
        ..Options::default()
    });
    let _ = std::fs::remove_dir_all(&dir);
    let text = s.docker_ok(&["info"]);
    assert_eq!(runtimes(&text), ["runc", "runc-rs"], "{text}");
    assert!(text.contains(" Default Runtime: runc\n"), "{text}");
    s.docker_ok(&["run", "-d", "--name", "dflt", "busybox", "sleep", "300"]);
    let id = id_of(&s, "dflt");
    assert_eq!(s.inspect("dflt")["HostConfig"]["Runtime"], "runc");
    let st: serde_json::Value = serde_json::from_slice(
        &std::fs::read(runtime_state(&s, &id).join("state.json")).expect("state"),
    )
    .expect("json");
    assert_eq!(
        st["init_process_pid"],
        s.init_pid("dflt"),
        "runc ran it: {st}"
    );
}

/// The names on `docker info`'s Runtimes line, sorted: the CLI prints them in Go map order,
/// which changes from run to run.
fn runtimes(info: &str) -> Vec<String> {
    let mut names: Vec<String> = info
        .lines()
        .find_map(|l| l.strip_prefix(" Runtimes: "))
        .unwrap_or_else(|| panic!("no Runtimes line:\n{info}"))
        .split(' ')
        .map(str::to_string)
        .collect();
    names.sort_unstable();
    names
}
