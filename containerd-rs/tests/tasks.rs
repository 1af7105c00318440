//! Tasks through the real shim (containerd-shim-rs) and runtime (runc-rs) built in the same
//! target directory: a busybox container's output, exit status, events, and a task that
//! survives `kill -9` of containerd-rs.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{create, daemon, req};
use proto::services::events::events_client::EventsClient;
use proto::services::tasks::tasks_client::TasksClient;
use proto::services::{events as epb, tasks as tpb};
use tokio_stream::StreamExt;

#[tokio::test(flavor = "multi_thread")]
async fn busybox_task_runs_exits_and_is_deleted() {
    let d = daemon();
    let out = d.dir.join("out.txt");
    let mut events = EventsClient::new(d.channel().await)
        .subscribe(epb::SubscribeRequest {
            filters: vec![r#"topic=="/tasks/exit""#.into()],
        })
        .await
        .expect("subscribe")
        .into_inner();
    let ch = create(
        &d,
        "t",
        "bb1",
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "echo hello from busybox; exit 3",
        ],
        &out,
    )
    .await;
    let mut tasks = TasksClient::new(ch);
    let bundle = d.state().join("io.containerd.runtime.v2.task/t/bb1");
    assert!(bundle.join("config.json").exists());
    let got = tasks
        .get(req(
            "t",
            tpb::GetRequest {
                container_id: "bb1".into(),
                exec_id: String::new(),
            },
        ))
        .await
        .expect("get");
    assert_eq!(
        got.into_inner().process.expect("p").status,
        proto::types::Status::Created as i32
    );
    let pid = tasks
        .start(req(
            "t",
            tpb::StartRequest {
                container_id: "bb1".into(),
                exec_id: String::new(),
            },
        ))
        .await
        .expect("start")
        .into_inner()
        .pid;
    assert!(pid > 0);
    let w = tasks
        .wait(req(
            "t",
            tpb::WaitRequest {
                container_id: "bb1".into(),
                exec_id: String::new(),
            },
        ))
        .await
        .expect("wait")
        .into_inner();
    assert_eq!(w.exit_status, 3);
    let env = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("exit event in time")
        .expect("stream")
        .expect("envelope");
    let exit: proto::events::TaskExit =
        proto::any::unpack(&env.event.expect("any")).expect("TaskExit");
    assert_eq!((exit.container_id.as_str(), exit.exit_status), ("bb1", 3));
    let st = tasks
        .get(req(
            "t",
            tpb::GetRequest {
                container_id: "bb1".into(),
                exec_id: String::new(),
            },
        ))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(
        st.process.expect("p").status,
        proto::types::Status::Stopped as i32
    );
    let del = tasks
        .delete(req(
            "t",
            tpb::DeleteTaskRequest {
                container_id: "bb1".into(),
            },
        ))
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(del.exit_status, 3);
    assert!(!bundle.exists(), "bundle removed");
    assert_eq!(
        std::fs::read_to_string(&out).expect("output"),
        "hello from busybox\n"
    );
    let e = tasks
        .get(req(
            "t",
            tpb::GetRequest {
                container_id: "bb1".into(),
                exec_id: String::new(),
            },
        ))
        .await
        .expect_err("gone");
    assert_eq!(e.code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn task_survives_kill_9_and_wait_reports_the_exit_after_restart() {
    let mut d = daemon();
    let out = d.dir.join("out.txt");
    let ch = create(
        &d,
        "k",
        "bb2",
        &["/bin/busybox", "sh", "-c", "sleep 2; echo done; exit 5"],
        &out,
    )
    .await;
    TasksClient::new(ch)
        .start(req(
            "k",
            tpb::StartRequest {
                container_id: "bb2".into(),
                exec_id: String::new(),
            },
        ))
        .await
        .expect("start");
    d.stop(true);
    // The process finishes while containerd-rs is down.
    tokio::time::sleep(Duration::from_secs(3)).await;
    d.spawn();
    let mut tasks = TasksClient::new(d.channel().await);
    let list = tasks
        .list(req(
            "k",
            tpb::ListTasksRequest {
                filter: String::new(),
            },
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.tasks.len(), 1, "task recovered after restart");
    let w = tasks
        .wait(req(
            "k",
            tpb::WaitRequest {
                container_id: "bb2".into(),
                exec_id: String::new(),
            },
        ))
        .await
        .expect("wait")
        .into_inner();
    assert_eq!(w.exit_status, 5);
    assert_eq!(std::fs::read_to_string(&out).expect("output"), "done\n");
    let del = tasks
        .delete(req(
            "k",
            tpb::DeleteTaskRequest {
                container_id: "bb2".into(),
            },
        ))
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(del.exit_status, 5);
    let _ = HashMap::<String, String>::new();
}

#[tokio::test(flavor = "multi_thread")]
async fn ctr_images_import_and_run_rm() {
    let d = daemon();
    // A namespace of our own: ctr's cgroup is /<namespace>/<id>.
    let ns = format!(
        "c{}",
        d.dir
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or("x")
            .replace('-', "")
    );
    let _cg = common::CgroupGuard(ns.clone());
    let ns = ns.as_str();
    let tar = d.dir.join("bb.tar");
    fixtures::ensure_busybox_tar(&tar).expect("busybox image tar");
    let out = d.ctr(&["-n", ns, "images", "import", tar.to_str().expect("utf8")]);
    assert!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = d.ctr(&["-n", ns, "images", "ls", "-q"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "docker.io/library/busybox:latest"
    );
    // The unpacked layer is a committed overlayfs snapshot.
    let out = d.ctr(&["-n", ns, "snapshots", "ls"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Committed"));
    let out = d.ctr(&[
        "-n",
        ns,
        "run",
        "--rm",
        "docker.io/library/busybox:latest",
        "r1",
        "/bin/busybox",
        "sh",
        "-c",
        "echo hi-from-ctr",
    ]);
    assert!(
        out.status.success(),
        "run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hi-from-ctr");
    // --rm removed the container and its task.
    let out = d.ctr(&["-n", ns, "containers", "ls", "-q"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "");
}
