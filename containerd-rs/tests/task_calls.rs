//! The calls of containerd's API that the other suites reach only through ctr or dockerd, made
//! directly and checked by what a user sees: Health and Introspection, and the Tasks calls on a
//! running container (ListPids, Exec + DeleteProcess, Update, Metrics, CloseIO, ResizePty) and
//! Events.Forward.

mod common;

use std::time::{Duration, Instant};

use common::{cgroup_of, daemon, req, spec, CgroupGuard};
use prost::Message;
use proto::services::events::events_client::EventsClient;
use proto::services::introspection::introspection_client::IntrospectionClient;
use proto::services::tasks::tasks_client::TasksClient;
use proto::services::{events as epb, introspection as ipb, tasks as tpb};
use tokio_stream::StreamExt;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{health_check_response::ServingStatus, HealthCheckRequest};

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read(path: &std::path::Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_introspection_answer_like_containerd() {
    let mut d = daemon();
    let ch = d.channel().await;
    let health = HealthClient::new(ch.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    let mut intro = IntrospectionClient::new(ch);
    let all = intro
        .plugins(ipb::PluginsRequest { filters: vec![] })
        .await
        .expect("plugins")
        .into_inner()
        .plugins;
    let has = |t: &str, id: &str| all.iter().any(|p| p.r#type == t && p.id == id);
    for (t, id) in [
        ("io.containerd.content.v1", "content"),
        ("io.containerd.snapshotter.v1", "overlayfs"),
        ("io.containerd.snapshotter.v1", "native"),
        ("io.containerd.runtime.v2", "task"),
        ("io.containerd.grpc.v1", "tasks"),
        ("io.containerd.grpc.v1", "introspection"),
    ] {
        assert!(has(t, id), "no plugin {t}.{id} in {all:?}");
    }
    // containerd's filter syntax selects plugins by their fields.
    let snapshotters = intro
        .plugins(ipb::PluginsRequest {
            filters: vec![r#"type=="io.containerd.snapshotter.v1""#.into()],
        })
        .await
        .expect("filtered plugins")
        .into_inner()
        .plugins;
    assert!(!snapshotters.is_empty());
    assert!(snapshotters
        .iter()
        .all(|p| p.r#type == "io.containerd.snapshotter.v1"));
    let bad = intro
        .plugins(ipb::PluginsRequest {
            filters: vec!["type==".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");

    // The server's uuid names its state: the same after a restart, as containerd keeps it.
    let first = intro.server(()).await.expect("server").into_inner().uuid;
    assert!(uuid_shaped(&first), "{first}");
    d.restart();
    let again = IntrospectionClient::new(d.channel().await)
        .server(())
        .await
        .expect("server after restart")
        .into_inner()
        .uuid;
    assert_eq!(first, again);
    assert_eq!(
        std::fs::read_to_string(d.root().join("io.containerd.grpc.v1.introspection/uuid"))
            .expect("uuid file"),
        first
    );
}

fn uuid_shaped(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

/// A process spec for Exec (the runtime-spec Process JSON).
fn process(args: &[&str], terminal: bool) -> prost_types::Any {
    let p = serde_json::json!({
        "terminal": terminal,
        "user": {"uid": 0, "gid": 0},
        "args": args,
        "env": ["PATH=/bin"],
        "cwd": "/",
    });
    proto::any::pack_bytes(
        "types.containerd.io/opencontainers/runtime-spec/1/Process",
        serde_json::to_vec(&p).expect("json"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn task_calls_on_a_running_container() {
    let d = daemon();
    let ns = "calls";
    let id = "calls1";
    let _cg = CgroupGuard(cgroup_of(&d, id).trim_start_matches('/').to_string());
    // stdin is a FIFO the test writes; `cat` copies it to stdout until CloseIO.
    let stdin = d.dir.join("stdin");
    nix::unistd::mkfifo(&stdin, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let out = d.dir.join("out.txt");
    let s = spec(
        &["/bin/busybox", "sh", "-c", "cat; echo stdin-closed"],
        &cgroup_of(&d, id),
    );
    let ch = create_with_stdin(&d, ns, id, s, &stdin, &out).await;
    let mut tasks = TasksClient::new(ch.clone());
    let init = tasks
        .start(req(
            ns,
            tpb::StartRequest {
                container_id: id.into(),
                exec_id: String::new(),
            },
        ))
        .await
        .expect("start")
        .into_inner()
        .pid;
    // The shim holds the FIFO's read end open (O_NONBLOCK): opening it for writing succeeds.
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .open(&stdin)
        .expect("open stdin fifo");
    std::io::Write::write_all(&mut writer, b"through stdin\n").expect("write stdin");
    wait_for("cat's output", Duration::from_secs(10), || {
        read(&out).contains("through stdin")
    });

    // Exec: a second process in the container, listed by ListPids with its exec id.
    let exec_out = d.dir.join("exec.txt");
    tasks
        .exec(req(
            ns,
            tpb::ExecProcessRequest {
                container_id: id.into(),
                exec_id: "sleeper".into(),
                stdout: exec_out.display().to_string(),
                stderr: exec_out.display().to_string(),
                terminal: false,
                spec: Some(process(&["/bin/busybox", "sleep", "300"], false)),
                ..Default::default()
            },
        ))
        .await
        .expect("exec");
    let exec_pid = tasks
        .start(req(
            ns,
            tpb::StartRequest {
                container_id: id.into(),
                exec_id: "sleeper".into(),
            },
        ))
        .await
        .expect("start exec")
        .into_inner()
        .pid;
    let procs = tasks
        .list_pids(req(
            ns,
            tpb::ListPidsRequest {
                container_id: id.into(),
            },
        ))
        .await
        .expect("list pids")
        .into_inner()
        .processes;
    assert!(procs.iter().any(|p| p.pid == init), "{procs:?}");
    let sleeper = procs
        .iter()
        .find(|p| p.pid == exec_pid)
        .unwrap_or_else(|| panic!("exec pid {exec_pid} not in {procs:?}"));
    let info = sleeper.info.as_ref().expect("exec process details");
    assert_eq!(info.type_url, "containerd.runc.v1.ProcessDetails");
    let details = proto::runc::ProcessDetails::decode(info.value.as_slice()).expect("decode");
    assert_eq!(details.exec_id, "sleeper");

    // Update: the new memory limit is in the container's cgroup.
    let resources = serde_json::json!({"memory": {"limit": 96 * 1024 * 1024}});
    tasks
        .update(req(
            ns,
            tpb::UpdateTaskRequest {
                container_id: id.into(),
                resources: Some(proto::any::pack_bytes(
                    "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources",
                    serde_json::to_vec(&resources).expect("json"),
                )),
                annotations: Default::default(),
            },
        ))
        .await
        .expect("update");
    let limit_file = if std::path::Path::new("/sys/fs/cgroup/memory").is_dir() {
        format!(
            "/sys/fs/cgroup/memory{}/memory.limit_in_bytes",
            cgroup_of(&d, id)
        )
    } else {
        format!("/sys/fs/cgroup{}/memory.max", cgroup_of(&d, id))
    };
    assert_eq!(
        std::fs::read_to_string(&limit_file)
            .expect("memory limit file")
            .trim(),
        (96 * 1024 * 1024).to_string()
    );

    // Metrics: one entry for the container, a cgroups Metrics message it decodes to.
    let metrics = tasks
        .metrics(req(
            ns,
            tpb::MetricsRequest {
                filters: vec![format!("id=={id}")],
            },
        ))
        .await
        .expect("metrics")
        .into_inner()
        .metrics;
    assert_eq!(metrics.len(), 1, "{metrics:?}");
    assert_eq!(metrics[0].id, id);
    let data = metrics[0].data.as_ref().expect("metrics data");
    let pids = match data.type_url.as_str() {
        "io.containerd.cgroups.v1.Metrics" => {
            let m = proto::cgroups::v1::Metrics::decode(data.value.as_slice()).expect("v1");
            assert_eq!(
                m.memory.and_then(|m| m.usage).map(|u| u.limit),
                Some(96 * 1024 * 1024)
            );
            m.pids.map(|p| p.current)
        }
        "io.containerd.cgroups.v2.Metrics" => {
            let m = proto::cgroups::v2::Metrics::decode(data.value.as_slice()).expect("v2");
            m.pids.map(|p| p.current)
        }
        other => panic!("unexpected metrics type {other}"),
    };
    // sh, cat and the exec'd sleep.
    assert!(pids.unwrap_or(0) >= 3, "pids {pids:?}");

    // The exec is killed, waited for and deleted: its exit status, then NotFound.
    tasks
        .kill(req(
            ns,
            tpb::KillRequest {
                container_id: id.into(),
                exec_id: "sleeper".into(),
                signal: 9,
                all: false,
            },
        ))
        .await
        .expect("kill exec");
    let waited = tasks
        .wait(req(
            ns,
            tpb::WaitRequest {
                container_id: id.into(),
                exec_id: "sleeper".into(),
            },
        ))
        .await
        .expect("wait exec")
        .into_inner();
    assert_eq!(waited.exit_status, 137);
    let deleted = tasks
        .delete_process(req(
            ns,
            tpb::DeleteProcessRequest {
                container_id: id.into(),
                exec_id: "sleeper".into(),
            },
        ))
        .await
        .expect("delete process")
        .into_inner();
    assert_eq!((deleted.pid, deleted.exit_status), (exec_pid, 137));
    let gone = tasks
        .get(req(
            ns,
            tpb::GetRequest {
                container_id: id.into(),
                exec_id: "sleeper".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound, "{gone:?}");

    // CloseIO: the container's stdin reaches EOF, so cat ends and the init exits 0.
    tasks
        .close_io(req(
            ns,
            tpb::CloseIoRequest {
                container_id: id.into(),
                exec_id: String::new(),
                stdin: true,
            },
        ))
        .await
        .expect("close io");
    drop(writer);
    assert_eq!(
        exit_then_delete(&mut tasks, ns, id, "init exits after CloseIO").await,
        0
    );
    wait_for("the last line", Duration::from_secs(5), || {
        read(&out).contains("stdin-closed")
    });
}

/// Waits (up to 20 s) for the init of `id` to exit, deletes the task, returns the exit status.
async fn exit_then_delete(
    tasks: &mut TasksClient<tonic::transport::Channel>,
    ns: &str,
    id: &str,
    what: &str,
) -> u32 {
    let exit = tokio::time::timeout(
        Duration::from_secs(20),
        tasks.wait(req(
            ns,
            tpb::WaitRequest {
                container_id: id.into(),
                exec_id: String::new(),
            },
        )),
    )
    .await;
    let Ok(exit) = exit else {
        panic!("timed out: {what}");
    };
    let exit = exit.expect("wait").into_inner();
    tasks
        .delete(req(
            ns,
            tpb::DeleteTaskRequest {
                container_id: id.into(),
            },
        ))
        .await
        .expect("delete");
    exit.exit_status
}

/// Creates the container and its task with stdin from `stdin` and stdout/stderr to `out`.
async fn create_with_stdin(
    d: &common::Daemon,
    ns: &str,
    id: &str,
    spec: prost_types::Any,
    stdin: &std::path::Path,
    out: &std::path::Path,
) -> tonic::transport::Channel {
    common::create_with_spec_io(
        d,
        ns,
        id,
        spec,
        &stdin.display().to_string(),
        &out.display().to_string(),
        &out.display().to_string(),
        false,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn resize_pty_reaches_the_container_s_terminal() {
    let d = daemon();
    let ns = "tty";
    let id = "tty1";
    let _cg = CgroupGuard(cgroup_of(&d, id).trim_start_matches('/').to_string());
    let out = d.dir.join("tty.txt");
    // Waits until its terminal is 40 rows by 100 columns.
    let mut s: serde_json::Value = serde_json::from_slice(
        &spec(
            &[
                "/bin/busybox",
                "sh",
                "-c",
                r#"until [ "$(stty size)" = "40 100" ]; do sleep 0.1; done; echo resized-to-$(stty size | tr ' ' x)"#,
            ],
            &cgroup_of(&d, id),
        )
        .value,
    )
    .expect("spec json");
    s["process"]["terminal"] = serde_json::Value::Bool(true);
    // A terminal needs the container's own devpts, as containerd's default spec mounts it.
    if let Some(mounts) = s["mounts"].as_array_mut() {
        mounts.push(serde_json::json!({
            "destination": "/dev/pts", "type": "devpts", "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
        }));
    }
    let s = proto::any::pack_bytes(
        proto::any::SPEC_TYPE_URL,
        serde_json::to_vec(&s).expect("json"),
    );
    let ch =
        common::create_with_spec_io(&d, ns, id, s, "", &out.display().to_string(), "", true).await;
    let mut tasks = TasksClient::new(ch);
    tasks
        .start(req(
            ns,
            tpb::StartRequest {
                container_id: id.into(),
                exec_id: String::new(),
            },
        ))
        .await
        .expect("start");
    tasks
        .resize_pty(req(
            ns,
            tpb::ResizePtyRequest {
                container_id: id.into(),
                exec_id: String::new(),
                width: 100,
                height: 40,
            },
        ))
        .await
        .expect("resize pty");
    let status = exit_then_delete(&mut tasks, ns, id, "the task sees its new size").await;
    assert_eq!(status, 0);
    wait_for("the terminal's output", Duration::from_secs(5), || {
        read(&out).contains("resized-to-40x100")
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_events_reach_subscribers_with_their_namespace() {
    let d = common::Daemon::start();
    let ch = d.channel().await;
    let mut events = EventsClient::new(ch.clone());
    let mut stream = events
        .subscribe(epb::SubscribeRequest {
            filters: vec![r#"topic~="^/test/""#.into()],
        })
        .await
        .expect("subscribe")
        .into_inner();
    let payload = proto::any::pack_bytes("containerd.events.TaskPaused", vec![0x0a, 0x01, b'x']);
    for (topic, ns) in [("/other/skip", "n1"), ("/test/forwarded", "n2")] {
        events
            .forward(epb::ForwardRequest {
                envelope: Some(proto::types::Envelope {
                    timestamp: Some(prost_types::Timestamp {
                        seconds: 1_700_000_000,
                        nanos: 5,
                    }),
                    namespace: ns.into(),
                    topic: topic.into(),
                    event: Some(payload.clone()),
                }),
            })
            .await
            .expect("forward");
    }
    let got = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event")
        .expect("stream open")
        .expect("envelope");
    // The filter let only /test/ through; the envelope arrives as it was forwarded.
    assert_eq!(got.topic, "/test/forwarded");
    assert_eq!(got.namespace, "n2");
    assert_eq!(
        got.timestamp,
        Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 5
        })
    );
    assert_eq!(got.event, Some(payload));
    // A forward without an envelope is refused.
    let bad = events
        .forward(epb::ForwardRequest { envelope: None })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");
}
