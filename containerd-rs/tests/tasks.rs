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

/// (ppid, state) of a live process, from /proc/<pid>/stat; None once it is gone (reaped).
fn ppid_and_state(pid: u32) -> Option<(u32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(") ")?.1;
    let mut f = rest.split(' ');
    let state = f.next()?.chars().next()?;
    Some((f.next()?.parse().ok()?, state))
}

/// Processes whose parent is `ppid`, with their state and command line.
fn children_of(ppid: u32) -> Vec<(u32, char, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some((pp, state)) = ppid_and_state(pid) {
            if pp == ppid {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                    .unwrap_or_default();
                out.push((pid, state, cmd));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shim_reaps_orphans_that_exit() {
    let d = daemon();
    let (ns, id) = ("z", "orphans");
    let out = d.dir.join("out.txt").display().to_string();
    // No pid namespace: what the init's child leaves behind is re-parented to the nearest
    // subreaper, the shim (in a pid namespace the container's init would get it).
    let spec = common::spec_with_namespaces(
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "/bin/busybox sh -c '/bin/busybox sleep 3 & /bin/busybox sleep 3 & exit 0'; \
             echo forked; exec /bin/busybox sleep 300",
        ],
        &common::cgroup_of(&d, id),
        &["ipc", "uts", "mount"],
    );
    let ch = common::create_with_spec(&d, ns, id, spec, &out, &out).await;
    let bundle = d
        .state()
        .join("io.containerd.runtime.v2.task")
        .join(ns)
        .join(id);
    let shim: u32 = std::fs::read_to_string(bundle.join("shim.pid"))
        .expect("shim.pid")
        .trim()
        .parse()
        .expect("shim pid");
    let mut tasks = TasksClient::new(ch);
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
    // The two sleeps show up as the shim's children (orphans adopted by the subreaper).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let orphans = loop {
        let kids: Vec<u32> = children_of(shim)
            .into_iter()
            .filter(|(pid, _, cmd)| *pid != init && cmd.contains("sleep 3"))
            .map(|(pid, _, _)| pid)
            .collect();
        if kids.len() == 2 {
            break kids;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "orphans not adopted by the shim {shim}: {:?}; output {:?}",
            children_of(shim),
            std::fs::read_to_string(&out)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // They exit after 3 s; the shim reaps them: no zombie is left (a zombie keeps its /proc
    // entry, in state Z, until its parent waits for it).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while orphans.iter().any(|p| ppid_and_state(*p).is_some()) {
        assert!(
            std::time::Instant::now() < deadline,
            "orphans not reaped: {:?}",
            orphans
                .iter()
                .map(|p| (p, ppid_and_state(*p)))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let zombies: Vec<_> = children_of(shim)
        .into_iter()
        .filter(|(_, state, _)| *state == 'Z')
        .collect();
    assert!(zombies.is_empty(), "zombies under the shim: {zombies:?}");
    // The init itself still runs and is still the shim's.
    assert_eq!(ppid_and_state(init).map(|(pp, _)| pp), Some(shim));
    tasks
        .kill(req(
            ns,
            tpb::KillRequest {
                container_id: id.into(),
                exec_id: String::new(),
                signal: 9,
                all: false,
            },
        ))
        .await
        .expect("kill");
    let w = tasks
        .wait(req(
            ns,
            tpb::WaitRequest {
                container_id: id.into(),
                exec_id: String::new(),
            },
        ))
        .await
        .expect("wait")
        .into_inner();
    assert_eq!(w.exit_status, 137);
    tasks
        .delete(req(
            ns,
            tpb::DeleteTaskRequest {
                container_id: id.into(),
            },
        ))
        .await
        .expect("delete");
    assert_eq!(std::fs::read_to_string(&out).expect("output"), "forked\n");
}
