//! Real clients on containerd-rs: Debian's `ctr` (tasks, exec, pause, tty, live events, runtime
//! names from the config file) and Debian's dockerd 20.10 with `--containerd`.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{bin_dir, req, CgroupGuard, Daemon};
use proto::services::containers::containers_client::ContainersClient;
use proto::services::tasks::tasks_client::TasksClient;
use proto::services::{containers as cpb, tasks as tpb};

fn text(o: &std::process::Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: std::process::Output) -> String {
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A namespace unique to this daemon (ctr's cgroup is `/<namespace>/<id>`).
fn unique_ns(d: &Daemon, prefix: &str) -> String {
    format!(
        "{prefix}{}",
        d.dir
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or("x")
            .replace('-', "")
    )
}

fn import_busybox(d: &Daemon, ns: &str) {
    let tar = d.dir.join("bb.tar");
    fixtures::ensure_busybox_tar(&tar).expect("busybox image tar");
    ok(d.ctr(&["-n", ns, "images", "import", tar.to_str().expect("utf8")]));
}

const IMAGE: &str = "docker.io/library/busybox:latest";

/// The status column of `ctr task ls` for a task.
fn task_status(d: &Daemon, ns: &str, id: &str) -> String {
    ok(d.ctr(&["-n", ns, "task", "ls"]))
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("")
        .to_string()
}

/// `ctr events` in the background, its output collected.
struct Events {
    child: Child,
    out: Arc<Mutex<String>>,
}

impl Events {
    fn start(d: &Daemon) -> Self {
        let mut child = Command::new("ctr")
            .arg("--address")
            .arg(&d.sock)
            .arg("events")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ctr events");
        let mut stdout = child.stdout.take().expect("stdout");
        let out = Arc::new(Mutex::new(String::new()));
        let o = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                o.lock()
                    .expect("events")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self { child, out }
    }

    fn text(&self) -> String {
        self.out.lock().expect("events").clone()
    }

    /// Waits until a line shows `topic` for container `id` (live, as it happens).
    fn wait_for(&self, topic: &str, id: &str) {
        until(
            &format!("event {topic} for {id}"),
            Duration::from_secs(30),
            || {
                self.text().lines().any(|l| {
                    l.split_whitespace().nth(5) == Some(topic) && l.contains(&format!("\"{id}\""))
                })
            },
        );
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ctr_runs_and_manages_tasks_with_live_events() {
    let d = common::daemon();
    let ns = unique_ns(&d, "c");
    let _cg = CgroupGuard(ns.clone());
    let ns = ns.as_str();
    let fifos = d.dir.join("fifo");
    let fifo_dir = fifos.to_str().expect("utf8");
    let events = Events::start(&d);
    ok(d.ctr(&["namespaces", "create", ns, "team=x"]));
    let listed = ok(d.ctr(&["namespaces", "ls"]));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(ns) && l.contains("team=x")),
        "{listed}"
    );
    import_busybox(&d, ns);
    assert!(ok(d.ctr(&["-n", ns, "content", "ls"])).contains("sha256:"));
    assert!(ok(d.ctr(&["-n", ns, "snapshots", "ls"])).contains("Committed"));
    let out = ok(d.ctr(&[
        "-n",
        ns,
        "run",
        "--rm",
        "--fifo-dir",
        fifo_dir,
        IMAGE,
        "once",
        "echo",
        "hi",
    ]));
    assert_eq!(out.trim(), "hi");

    ok(d.ctr(&[
        "-n",
        ns,
        "run",
        "-d",
        "--fifo-dir",
        fifo_dir,
        IMAGE,
        "bg",
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 300 & wait",
    ]));
    events.wait_for("/tasks/start", "bg");
    assert_eq!(task_status(&d, ns, "bg"), "RUNNING");
    let pid: u32 = ok(d.ctr(&["-n", ns, "task", "ls"]))
        .lines()
        .find(|l| l.starts_with("bg "))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .expect("pid in task ls");
    let ps = ok(d.ctr(&["-n", ns, "task", "ps", "bg"]));
    let pids: Vec<&str> = ps
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        pids.contains(&pid.to_string().as_str()) && pids.len() >= 2,
        "{ps}"
    );

    let out = ok(d.ctr(&[
        "-n",
        ns,
        "task",
        "exec",
        "--exec-id",
        "e1",
        "--fifo-dir",
        fifo_dir,
        "bg",
        "sh",
        "-c",
        "echo exec-$((40+2)) $(cat /proc/1/cmdline | tr '\\0' ' ')",
    ]));
    assert_eq!(
        out.trim(),
        "exec-42 sh -c trap 'exit 0' TERM; sleep 300 & wait"
    );
    let failed = d.ctr(&[
        "-n",
        ns,
        "task",
        "exec",
        "--exec-id",
        "e2",
        "--fifo-dir",
        fifo_dir,
        "bg",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(failed.status.code(), Some(3), "{}", text(&failed));
    events.wait_for("/tasks/exec-started", "bg");

    ok(d.ctr(&["-n", ns, "task", "pause", "bg"]));
    assert_eq!(task_status(&d, ns, "bg"), "PAUSED");
    events.wait_for("/tasks/paused", "bg");
    ok(d.ctr(&["-n", ns, "task", "resume", "bg"]));
    assert_eq!(task_status(&d, ns, "bg"), "RUNNING");
    events.wait_for("/tasks/resumed", "bg");
    // `ctr task metrics` decodes the shim's Stats by its type URL: cgroups v2 Metrics on a
    // unified host, v1 Metrics on a hybrid or legacy one, each printed with its own names.
    let metrics = ok(d.ctr(&["-n", ns, "task", "metrics", "bg"]));
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some(name)).then(|| f.next().and_then(|v| v.parse().ok()))?
            })
            .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
    };
    let unified = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    let (memory, cpu) = if unified {
        ("memory.usage", "cpu.usage_usec")
    } else {
        ("memory.usage_in_bytes", "cpuacct.usage")
    };
    assert!(value("pids.current") >= 2, "{metrics}");
    assert!(value(memory) > 0, "{metrics}");
    assert!(value(cpu) > 0, "{metrics}");

    ok(d.ctr(&["-n", ns, "task", "kill", "bg"]));
    events.wait_for("/tasks/exit", "bg");
    until("bg to stop", Duration::from_secs(30), || {
        task_status(&d, ns, "bg") == "STOPPED"
    });
    ok(d.ctr(&["-n", ns, "task", "delete", "bg"]));
    events.wait_for("/tasks/delete", "bg");
    assert!(!ok(d.ctr(&["-n", ns, "task", "ls"])).contains("bg"));
    ok(d.ctr(&["-n", ns, "containers", "rm", "bg"]));
    // Each task event came with its container id, in order.
    let all = events.text();
    let order: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("\"bg\""))
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|t| t.starts_with("/tasks/"))
        .collect();
    let first = |t: &str| order.iter().position(|x| *x == t).unwrap_or(usize::MAX);
    assert!(first("/tasks/create") < first("/tasks/start"), "{all}");
    assert!(
        first("/tasks/exec-added") < first("/tasks/exec-started"),
        "{all}"
    );
    assert!(first("/tasks/paused") < first("/tasks/resumed"), "{all}");
    assert!(first("/tasks/exit") < first("/tasks/delete"), "{all}");
    assert!(first("/tasks/delete") != usize::MAX, "{all}");
}

#[test]
fn ctr_run_t_gets_a_tty() {
    let d = common::daemon();
    let ns = unique_ns(&d, "t");
    let _cg = CgroupGuard(ns.clone());
    import_busybox(&d, &ns);
    let fifos = d.dir.join("fifo");
    // `script` runs ctr on a new pty and copies our pipe to it: ctr sees a terminal.
    let cmd = format!(
        "ctr --address {} -n {ns} run -t --rm --fifo-dir {} {IMAGE} tty1 sh",
        d.sock.display(),
        fifos.display()
    );
    let mut child = Command::new("script")
        .args(["-qefc", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let out = Arc::new(Mutex::new(String::new()));
    let o = out.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            o.lock()
                .expect("out")
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    // Typed lines go through the pty to the shell until it answers.
    while !out.lock().expect("out").contains("typed-42") {
        assert!(
            Instant::now() < deadline,
            "no answer: {}",
            out.lock().expect("out")
        );
        let _ = stdin.write_all(b"echo typed-$((40+2)); tty; [ -t 0 ] && echo stdin-is-a-tty\n");
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = stdin.write_all(b"exit 7\n");
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait script") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "ctr did not exit: {}",
            out.lock().expect("out")
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let got = out.lock().expect("out").clone();
    assert!(got.contains("/dev/pts/0"), "{got}");
    assert!(got.contains("stdin-is-a-tty"), "{got}");
    assert_eq!(status.code(), Some(7), "{got}");
    assert!(!ok(d.ctr(&["-n", &ns, "containers", "ls", "-q"])).contains("tty1"));
}

/// Whether the host mixes cgroup v1 controllers with a cgroup2 mount (where crun refuses to run).
fn hybrid_cgroups() -> bool {
    Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists()
        && Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
}

#[tokio::test(flavor = "multi_thread")]
async fn runtime_names_map_to_configured_shims_and_runtimes() {
    let dir = common::unique_dir();
    let real_root = dir.join("runc-real");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"version = 2
[runtimes."io.containerd.runcreal.v2"]
shim = "containerd-shim-rs"
[runtimes."io.containerd.runcreal.v2".options]
BinaryName = "/usr/sbin/runc"
Root = "{}"
[runtimes."io.containerd.crun.v2".options]
BinaryName = "/usr/bin/crun"
"#,
            real_root.display()
        ),
    )
    .expect("config");
    let runc_rs = bin_dir().join("runc-rs");
    let d = Daemon::start_with(&[
        "--runtime-binary",
        runc_rs.to_str().expect("utf8"),
        "--config",
        config.to_str().expect("utf8"),
    ]);
    let ns = "rt";
    let ch = d.channel().await;
    let rootfs = common::busybox_rootfs(&d.dir);
    let mut tasks = TasksClient::new(ch.clone());
    let make = |id: &str, runtime: &str| {
        let spec = common::spec(
            &["/bin/busybox", "sh", "-c", "echo ran-by-config"],
            &common::cgroup_of(&d, id),
        );
        cpb::CreateContainerRequest {
            container: Some(cpb::Container {
                id: id.into(),
                runtime: Some(cpb::container::Runtime {
                    name: runtime.into(),
                    options: None,
                }),
                spec: Some(spec),
                ..Default::default()
            }),
        }
    };
    let task = |id: &str, out: &Path| tpb::CreateTaskRequest {
        container_id: id.into(),
        rootfs: vec![proto::types::Mount {
            r#type: "bind".into(),
            source: rootfs.display().to_string(),
            target: String::new(),
            options: vec!["rbind".into(), "rw".into()],
        }],
        stdout: out.display().to_string(),
        stderr: out.display().to_string(),
        ..Default::default()
    };
    let mut containers = ContainersClient::new(ch.clone());
    // io.containerd.runcreal.v2: our shim running the real runc, with the configured root.
    containers
        .create(req(ns, make("real", "io.containerd.runcreal.v2")))
        .await
        .expect("container");
    let out = d.dir.join("real.out");
    let pid = tasks
        .create(req(ns, task("real", &out)))
        .await
        .expect("task on runc")
        .into_inner()
        .pid;
    // Before Start the init is runc's own `runc init`.
    let cmdline = |pid: u32| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .expect("cmdline")
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
    };
    let argv = cmdline(pid);
    assert_eq!(argv.get(1).map(String::as_str), Some("init"), "{argv:?}");
    assert!(
        argv[0].ends_with("runc") && !argv[0].ends_with("runc-rs"),
        "{argv:?}"
    );
    assert!(
        real_root.join("real/state.json").exists(),
        "runc root from the config"
    );
    tasks
        .start(req(
            ns,
            tpb::StartRequest {
                container_id: "real".into(),
                exec_id: String::new(),
            },
        ))
        .await
        .expect("start");
    let w = tasks
        .wait(req(
            ns,
            tpb::WaitRequest {
                container_id: "real".into(),
                exec_id: String::new(),
            },
        ))
        .await
        .expect("wait")
        .into_inner();
    assert_eq!(w.exit_status, 0);
    assert_eq!(
        std::fs::read_to_string(&out).expect("out"),
        "ran-by-config\n"
    );
    tasks
        .delete(req(
            ns,
            tpb::DeleteTaskRequest {
                container_id: "real".into(),
            },
        ))
        .await
        .expect("delete");
    // The built-in name still runs runc-rs (the flag's runtime).
    containers
        .create(req(ns, make("ours", "io.containerd.runc.v2")))
        .await
        .expect("container");
    let pid = tasks
        .create(req(ns, task("ours", &d.dir.join("ours.out"))))
        .await
        .expect("task on runc-rs")
        .into_inner()
        .pid;
    let argv = cmdline(pid);
    assert!(argv[0].ends_with("runc-rs"), "{argv:?}");
    // Deleting a created task kills its init (runtime delete --force).
    tasks
        .delete(req(
            ns,
            tpb::DeleteTaskRequest {
                container_id: "ours".into(),
            },
        ))
        .await
        .expect("delete");
    // crun: configured by name; on a hybrid cgroup host it refuses, and says so.
    containers
        .create(req(ns, make("cr", "io.containerd.crun.v2")))
        .await
        .expect("container");
    let crun = tasks
        .create(req(ns, task("cr", &d.dir.join("cr.out"))))
        .await;
    if hybrid_cgroups() {
        let e = crun.expect_err("crun refuses hybrid cgroups");
        assert!(
            e.message().contains("/usr/bin/crun") && e.message().contains("hybrid"),
            "{e}"
        );
        assert!(
            !d.state()
                .join("io.containerd.runtime.v2.task/rt/cr")
                .exists(),
            "failed create cleaned up"
        );
    } else {
        crun.expect("crun runs here");
    }
    // A name nobody configured.
    containers
        .create(req(ns, make("kata", "io.containerd.kata.v2")))
        .await
        .expect("container");
    let e = tasks
        .create(req(ns, task("kata", &d.dir.join("k.out"))))
        .await
        .expect_err("unknown runtime");
    assert_eq!(e.code(), tonic::Code::NotFound, "{e}");
    assert!(e.message().contains("io.containerd.kata.v2"), "{e}");
    // ctr picks a runtime by name too.
    let ctr_ns = unique_ns(&d, "r");
    let _cg = CgroupGuard(ctr_ns.clone());
    import_busybox(&d, &ctr_ns);
    let out = ok(d.ctr(&[
        "-n",
        &ctr_ns,
        "run",
        "--rm",
        "--runtime",
        "io.containerd.runcreal.v2",
        "--fifo-dir",
        d.dir.join("fifo").to_str().expect("utf8"),
        IMAGE,
        "byname",
        "echo",
        "via-ctr",
    ]));
    assert_eq!(out.trim(), "via-ctr");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A private dockerd on containerd-rs: own data/exec roots, socket, pid file, cgroup parent, no
/// bridge or iptables. Stopped by pid; its mounts and cgroups removed on drop.
struct Dockerd {
    child: Option<Child>,
    dir: PathBuf,
    cgroup_parent: String,
}

impl Dockerd {
    fn start(d: &Daemon) -> Self {
        let dir = d.dir.join("docker");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("daemon.json"), "{}").expect("daemon.json");
        let cgroup_parent = unique_ns(d, "dk");
        let log = std::fs::File::create(dir.join("dockerd.log")).expect("log");
        let child = Command::new("/usr/sbin/dockerd")
            .arg("--config-file")
            .arg(dir.join("daemon.json"))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", dir.join("d.sock").display()))
            .arg("--pidfile")
            .arg(dir.join("d.pid"))
            .arg("--containerd")
            .arg(&d.sock)
            .args(["--bridge", "none", "--iptables=false", "--ip6tables=false"])
            .args(["--ip-masq=false", "--userland-proxy=false"])
            .arg("--cgroup-parent")
            .arg(&cgroup_parent)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn dockerd");
        let s = Self {
            child: Some(child),
            dir,
            cgroup_parent,
        };
        until("dockerd to answer", Duration::from_secs(90), || {
            s.docker(&["version"]).status.success()
        });
        s
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("/usr/local/bin/docker")
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.dir.join("d.sock").display()),
            )
            .env("DOCKER_CONFIG", self.dir.join("cli"))
            .args(args)
            .output()
            .expect("docker")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- dockerd log ---\n{}", self.log());
        }
        common::unmount_under(&self.dir);
        // dockerd with cgroupfs nests a relative parent under its own cgroup, or at the top.
        for base in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(base.path().join(&self.cgroup_parent));
        }
    }
}

#[test]
fn dockerd_20_10_runs_containers_on_containerd_rs() {
    let d = common::daemon();
    let docker = Dockerd::start(&d);
    let server = ok(docker.docker(&["version", "-f", "{{.Server.Version}}"]));
    assert!(server.starts_with("20.10"), "{server}");
    let tar = d.dir.join("bb.tar");
    fixtures::ensure_busybox_tar(&tar).expect("busybox image tar");
    ok(docker.docker(&["load", "-i", tar.to_str().expect("utf8")]));
    let out = ok(docker.docker(&["run", "--rm", "busybox", "echo", "hi"]));
    assert_eq!(out.trim(), "hi");
    let id = ok(docker.docker(&["run", "-d", "busybox", "sleep", "300"]))
        .trim()
        .to_string();
    // The task is containerd-rs's: ctr sees it in dockerd's namespace.
    let tasks = ok(d.ctr(&["-n", "moby", "task", "ls"]));
    assert!(
        tasks
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("RUNNING")),
        "{tasks}"
    );
    let out = ok(docker.docker(&["exec", &id, "sh", "-c", "echo exec-$((2+3))"]));
    assert_eq!(out.trim(), "exec-5");
    let e = docker.docker(&["exec", &id, "sh", "-c", "exit 4"]);
    assert_eq!(e.status.code(), Some(4), "{}", text(&e));
    // dockerd's stats come from Tasks.Metrics: the shim's cgroups v1 Metrics, decoded.
    let stats = ok(docker.docker(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.PIDs}} {{.MemUsage}}",
        &id,
    ]));
    let (pids, mem) = stats.trim().split_once(' ').unwrap_or(("", ""));
    assert_eq!(pids, "1", "{stats}");
    assert!(
        !mem.starts_with("0B") && mem.contains(" / "),
        "memory usage from the cgroup: {stats}"
    );
    let started = Instant::now();
    ok(docker.docker(&["stop", "-t", "2", &id]));
    assert!(started.elapsed() < Duration::from_secs(30));
    let state = ok(docker.docker(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        &id,
    ]));
    assert_eq!(state.trim(), "exited 137");
    let tasks = ok(d.ctr(&["-n", "moby", "task", "ls"]));
    assert!(!tasks.contains(&id), "task deleted after stop: {tasks}");
    ok(docker.docker(&["rm", &id]));
    let left = ok(d.ctr(&["-n", "moby", "containers", "ls", "-q"]));
    assert!(!left.contains(&id), "{left}");
}
