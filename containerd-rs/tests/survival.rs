//! Tasks outliving daemons and daemons outliving shims: ten tasks across a `kill -9` of
//! containerd-rs (one exits meanwhile), output through a FIFO while containerd-rs is down, a
//! `kill -9` of a shim, and `kill -9` during a content Write and a layer Apply.

mod common;

use std::io::BufRead;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{cgroup_of, create_io, daemon, req, Daemon};
use proto::services::content::content_client::ContentClient;
use proto::services::content::{self as cpb, WriteAction, WriteContentRequest};
use proto::services::diff::diff_client::DiffClient;
use proto::services::events::events_client::EventsClient;
use proto::services::leases::leases_client::LeasesClient;
use proto::services::snapshots::snapshots_client::SnapshotsClient;
use proto::services::tasks::tasks_client::TasksClient;
use proto::services::{diff as dpb, events as epb, leases as lpb, snapshots as spb, tasks as tpb};
use proto::types::Status as PStatus;
use tokio_stream::StreamExt;

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
        .unwrap_or(false)
}

async fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn get(ns: &str, id: &str) -> tonic::Request<tpb::GetRequest> {
    req(
        ns,
        tpb::GetRequest {
            container_id: id.into(),
            exec_id: String::new(),
        },
    )
}

fn wait(ns: &str, id: &str) -> tonic::Request<tpb::WaitRequest> {
    req(
        ns,
        tpb::WaitRequest {
            container_id: id.into(),
            exec_id: String::new(),
        },
    )
}

fn with_lease<T>(ns: &str, lease: &str, t: T) -> tonic::Request<T> {
    let mut r = req(ns, t);
    r.metadata_mut()
        .insert("containerd-lease", lease.parse().expect("lease header"));
    r
}

async fn lease(d: &Daemon, ns: &str, id: &str) {
    LeasesClient::new(d.channel().await)
        .create(req(
            ns,
            lpb::CreateRequest {
                id: id.into(),
                labels: Default::default(),
            },
        ))
        .await
        .expect("lease");
}

/// Cgroup dirs of a task in every v1 hierarchy and the unified one.
fn cgroup_dirs(cg: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path().join(cg.trim_start_matches('/')))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default()
}

fn mounted_under(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| Path::new(m).starts_with(dir))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_tasks_survive_kill_9_and_an_exit_while_down_is_reported() {
    let mut d = daemon();
    let ns = "ten";
    let mut pids = Vec::new();
    for i in 0..10 {
        let id = format!("t{i}");
        let out = d.dir.join(format!("{id}.out"));
        let args: &[&str] = if i == 9 {
            &["/bin/busybox", "sh", "-c", "sleep 3; exit 7"]
        } else {
            &["/bin/busybox", "sleep", "300"]
        };
        let o = out.display().to_string();
        let ch = create_io(&d, ns, &id, args, &o, &o).await;
        let pid = TasksClient::new(ch)
            .start(req(
                ns,
                tpb::StartRequest {
                    container_id: id.clone(),
                    exec_id: String::new(),
                },
            ))
            .await
            .expect("start")
            .into_inner()
            .pid;
        pids.push(pid);
    }
    d.stop(true);
    // t9 exits while containerd-rs is down.
    until("t9 to exit", Duration::from_secs(30), || !alive(pids[9])).await;
    d.spawn();
    let mut tasks = TasksClient::new(d.channel().await);
    let list = tasks
        .list(req(ns, tpb::ListTasksRequest::default()))
        .await
        .expect("list")
        .into_inner()
        .tasks;
    assert_eq!(list.len(), 10, "{list:?}");
    for p in &list {
        let want = if p.id == "t9" {
            PStatus::Stopped
        } else {
            PStatus::Running
        };
        assert_eq!(p.status, want as i32, "{p:?}");
    }
    let t9 = tasks.get(get(ns, "t9")).await.expect("get t9").into_inner();
    assert_eq!(t9.process.expect("p").exit_status, 7);
    assert_eq!(
        tasks
            .wait(wait(ns, "t9"))
            .await
            .expect("wait")
            .into_inner()
            .exit_status,
        7
    );
    // Manageable again: exec into one, then kill and delete all.
    let exec_out = d.dir.join("exec.out");
    let spec = serde_json::json!({
        "args": ["/bin/busybox", "sh", "-c", "echo exec-after-restart"],
        "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "terminal": false
    });
    tasks
        .exec(req(
            ns,
            tpb::ExecProcessRequest {
                container_id: "t3".into(),
                exec_id: "e1".into(),
                stdout: exec_out.display().to_string(),
                spec: Some(proto::any::pack_bytes(
                    "types.containerd.io/opencontainers/runtime-spec/1/Process",
                    serde_json::to_vec(&spec).expect("json"),
                )),
                ..Default::default()
            },
        ))
        .await
        .expect("exec");
    tasks
        .start(req(
            ns,
            tpb::StartRequest {
                container_id: "t3".into(),
                exec_id: "e1".into(),
            },
        ))
        .await
        .expect("start exec");
    let w = tasks
        .wait(req(
            ns,
            tpb::WaitRequest {
                container_id: "t3".into(),
                exec_id: "e1".into(),
            },
        ))
        .await
        .expect("wait exec")
        .into_inner();
    assert_eq!(w.exit_status, 0);
    assert_eq!(
        std::fs::read_to_string(&exec_out).expect("exec output"),
        "exec-after-restart\n"
    );
    for (i, &pid) in pids.iter().enumerate().take(10) {
        let id = format!("t{i}");
        if i < 9 {
            tasks
                .kill(req(
                    ns,
                    tpb::KillRequest {
                        container_id: id.clone(),
                        exec_id: String::new(),
                        signal: 9,
                        all: false,
                    },
                ))
                .await
                .expect("kill");
            let w = tasks.wait(wait(ns, &id)).await.expect("wait").into_inner();
            assert_eq!(w.exit_status, 137, "{id}");
        }
        let del = tasks
            .delete(req(
                ns,
                tpb::DeleteTaskRequest {
                    container_id: id.clone(),
                },
            ))
            .await
            .expect("delete")
            .into_inner();
        assert_eq!(del.exit_status, if i == 9 { 7 } else { 137 }, "{id}");
        assert!(!alive(pid), "{id} gone");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn output_keeps_flowing_through_a_fifo_while_containerd_rs_is_down() {
    let mut d = daemon();
    let ns = "fifo";
    let fifo = d.dir.join("out.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    // The reader is ours (as `ctr` or dockerd would be), not containerd-rs's.
    let reader = {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .expect("open fifo");
        nix::fcntl::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
        )
        .expect("blocking");
        f
    };
    // Until the shim opens its end, a writer of ours keeps the reader from seeing EOF.
    let holder = std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .expect("open fifo writer");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = lines.clone();
    let reading = std::thread::spawn(move || {
        for l in std::io::BufReader::new(reader).lines() {
            match l {
                Ok(l) => seen.lock().expect("lines").push(l),
                Err(_) => break,
            }
        }
    });
    let f = fifo.display().to_string();
    let ch = create_io(
        &d,
        ns,
        "counter",
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "i=0; while [ $i -lt 80 ]; do echo line-$i; i=$((i+1)); sleep 0.05; done",
        ],
        &f,
        "",
    )
    .await;
    drop(holder);
    TasksClient::new(ch)
        .start(req(
            ns,
            tpb::StartRequest {
                container_id: "counter".into(),
                exec_id: String::new(),
            },
        ))
        .await
        .expect("start");
    let count = |l: &Arc<Mutex<Vec<String>>>| l.lock().expect("lines").len();
    until("first lines", Duration::from_secs(30), || {
        count(&lines) >= 5
    })
    .await;
    d.stop(true);
    let at_kill = count(&lines);
    // Lines keep arriving with containerd-rs gone.
    until("lines while down", Duration::from_secs(30), || {
        count(&lines) >= at_kill + 20
    })
    .await;
    d.spawn();
    let w = TasksClient::new(d.channel().await)
        .wait(wait(ns, "counter"))
        .await
        .expect("wait")
        .into_inner();
    assert_eq!(w.exit_status, 0);
    TasksClient::new(d.channel().await)
        .delete(req(
            ns,
            tpb::DeleteTaskRequest {
                container_id: "counter".into(),
            },
        ))
        .await
        .expect("delete");
    until("EOF on the fifo", Duration::from_secs(30), || {
        reading.is_finished()
    })
    .await;
    let got = lines.lock().expect("lines").clone();
    let want: Vec<String> = (0..80).map(|i| format!("line-{i}")).collect();
    assert_eq!(got, want, "every line, in order, none lost");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_a_shim_stops_the_task_and_leaves_nothing_behind() {
    let d = daemon();
    let ns = "shimdeath";
    let mut events = EventsClient::new(d.channel().await)
        .subscribe(epb::SubscribeRequest {
            filters: vec![r#"topic=="/tasks/exit",event.container_id==victim"#.into()],
        })
        .await
        .expect("subscribe")
        .into_inner();
    let out = d.dir.join("v.out").display().to_string();
    let ch = create_io(
        &d,
        ns,
        "victim",
        &["/bin/busybox", "sh", "-c", "sleep 300 & sleep 300"],
        &out,
        &out,
    )
    .await;
    let mut tasks = TasksClient::new(ch);
    let pid = tasks
        .start(req(
            ns,
            tpb::StartRequest {
                container_id: "victim".into(),
                exec_id: String::new(),
            },
        ))
        .await
        .expect("start")
        .into_inner()
        .pid;
    let bundle = d
        .state()
        .join("io.containerd.runtime.v2.task")
        .join(ns)
        .join("victim");
    let rootfs = bundle.join("rootfs");
    assert!(!mounted_under(&rootfs).is_empty(), "rootfs mounted");
    let cg = cgroup_of(&d, "victim");
    assert!(!cgroup_dirs(&cg).is_empty(), "cgroup exists");
    let procs: Vec<u32> = cgroup_dirs(&cg)
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    assert!(procs.len() >= 2, "init and its child: {procs:?}");
    let shim: i32 = std::fs::read_to_string(bundle.join("shim.pid"))
        .expect("shim.pid")
        .trim()
        .parse()
        .expect("pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(shim), nix::sys::signal::SIGKILL)
        .expect("kill shim");
    let env = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("TaskExit in time")
        .expect("stream")
        .expect("envelope");
    let exit: proto::events::TaskExit = proto::any::unpack(&env.event.expect("any")).expect("exit");
    assert_eq!((exit.id.as_str(), exit.exit_status), ("victim", 137));
    let p = tasks
        .get(get(ns, "victim"))
        .await
        .expect("get")
        .into_inner()
        .process
        .expect("process");
    assert_eq!((p.status, p.exit_status), (PStatus::Stopped as i32, 137));
    until(
        "container processes killed",
        Duration::from_secs(30),
        || !alive(pid) && procs.iter().all(|p| !alive(*p)),
    )
    .await;
    assert!(mounted_under(&rootfs).is_empty(), "rootfs unmounted");
    assert!(
        cgroup_dirs(&cg).is_empty(),
        "cgroup removed: {:?}",
        cgroup_dirs(&cg)
    );
    assert_eq!(
        tasks
            .wait(wait(ns, "victim"))
            .await
            .expect("wait")
            .into_inner()
            .exit_status,
        137
    );
    let del = tasks
        .delete(req(
            ns,
            tpb::DeleteTaskRequest {
                container_id: "victim".into(),
            },
        ))
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(del.exit_status, 137);
    assert!(!bundle.exists());
}

fn big_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let data = vec![b'x'; 1024];
    for i in 0..20_000 {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append_data(&mut h, format!("d{}/f{i}", i % 100), data.as_slice())
            .expect("append");
    }
    b.into_inner().expect("tar")
}

async fn write_all(
    ch: tonic::transport::Channel,
    r: tonic::Request<tokio_stream::Iter<std::vec::IntoIter<WriteContentRequest>>>,
) -> Result<Vec<cpb::WriteContentResponse>, tonic::Status> {
    let mut out = ContentClient::new(ch).write(r).await?.into_inner();
    let mut v = Vec::new();
    while let Some(m) = out.next().await {
        v.push(m?);
    }
    Ok(v)
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_write_and_apply_keeps_metadata_and_gc_cleans_up() {
    let mut d = daemon();
    let ns = "crash";
    let ch = d.channel().await;
    let layer = big_layer();
    let digest = common::sha256(&layer);
    // A leased partial write (to be resumed) ...
    lease(&d, ns, "keep").await;
    let half = layer.len() / 2;
    write_all(
        ch.clone(),
        with_lease(
            ns,
            "keep",
            tokio_stream::iter(vec![WriteContentRequest {
                action: WriteAction::Write as i32,
                r#ref: "resumable".into(),
                total: layer.len() as i64,
                expected: digest.clone(),
                data: layer[..half].to_vec(),
                ..Default::default()
            }]),
        ),
    )
    .await
    .expect("first half");
    // ... and an unleased one, cut by the kill while its stream is open.
    let (tx, rx) = tokio::sync::mpsc::channel::<WriteContentRequest>(4);
    let mut cut = ContentClient::new(ch.clone())
        .write(req(ns, tokio_stream::wrappers::ReceiverStream::new(rx)))
        .await
        .expect("open write")
        .into_inner();
    tx.send(WriteContentRequest {
        action: WriteAction::Write as i32,
        r#ref: "cut".into(),
        data: vec![7u8; 1 << 20],
        ..Default::default()
    })
    .await
    .expect("send");
    cut.next().await.expect("response").expect("written");
    // A layer Apply into a leased snapshot, cut by the same kill.
    let layer_dg = {
        let v = write_all(
            ch.clone(),
            with_lease(
                ns,
                "keep",
                tokio_stream::iter(
                    layer
                        .chunks(8 << 20)
                        .enumerate()
                        .map(|(i, c)| WriteContentRequest {
                            action: WriteAction::Write as i32,
                            r#ref: "layer".into(),
                            total: layer.len() as i64,
                            offset: (i * (8 << 20)) as i64,
                            data: c.to_vec(),
                            ..Default::default()
                        })
                        .chain(std::iter::once(WriteContentRequest {
                            action: WriteAction::Commit as i32,
                            r#ref: "layer".into(),
                            total: layer.len() as i64,
                            offset: layer.len() as i64,
                            ..Default::default()
                        }))
                        .collect::<Vec<_>>(),
                ),
            ),
        )
        .await
        .expect("layer blob");
        v.last().expect("commit response").digest.clone()
    };
    lease(&d, ns, "apply").await;
    let mounts = SnapshotsClient::new(ch.clone())
        .prepare(with_lease(
            ns,
            "apply",
            spb::PrepareSnapshotRequest {
                snapshotter: "overlayfs".into(),
                key: "extract-crash".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("prepare")
        .into_inner()
        .mounts;
    // A snapshot without parent is a bind mount of its directory; with one, an overlay.
    let upper = match mounts[0].r#type.as_str() {
        "bind" => mounts[0].source.clone(),
        _ => mounts[0]
            .options
            .iter()
            .find_map(|o| o.strip_prefix("upperdir="))
            .expect("upperdir")
            .to_string(),
    };
    let applying = tokio::spawn({
        let ch = ch.clone();
        let digest = layer_dg.clone();
        async move {
            DiffClient::new(ch)
                .apply(req(
                    "crash",
                    dpb::ApplyRequest {
                        diff: Some(proto::types::Descriptor {
                            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                            digest,
                            size: 0,
                            annotations: Default::default(),
                        }),
                        mounts,
                        ..Default::default()
                    },
                ))
                .await
        }
    });
    let upper_dir = std::path::PathBuf::from(&upper);
    until("apply to start writing", Duration::from_secs(60), || {
        applying.is_finished()
            || std::fs::read_dir(&upper_dir)
                .map(|r| r.count() > 3)
                .unwrap_or(false)
    })
    .await;
    if applying.is_finished() {
        panic!("apply ended before the kill: {:?}", applying.await);
    }
    d.stop(true);
    let applied = applying.await.expect("join");
    assert!(applied.is_err(), "the kill cut the Apply: {applied:?}");
    drop(tx);

    d.spawn(); // waits for the startup collection
    assert!(
        mounted_under(&d.root()).is_empty(),
        "no mount left: {:?}",
        mounted_under(&d.root())
    );
    let ch = d.channel().await;
    let mut content = ContentClient::new(ch.clone());
    let statuses = content
        .list_statuses(req(ns, cpb::ListStatusesRequest::default()))
        .await
        .expect("statuses")
        .into_inner()
        .statuses;
    let refs: Vec<&str> = statuses.iter().map(|s| s.r#ref.as_str()).collect();
    assert_eq!(refs, vec!["resumable"], "unleased partial write collected");
    assert_eq!(statuses[0].offset, half as i64);
    // Metadata is whole: the listing answers and the leased layer is intact.
    let mut list = content
        .list(req(ns, cpb::ListContentRequest::default()))
        .await
        .expect("list")
        .into_inner();
    let mut infos = Vec::new();
    while let Some(m) = list.next().await {
        infos.extend(m.expect("list chunk").info);
    }
    assert!(infos.iter().any(|i| i.digest == layer_dg));
    // Resume the leased write where it stopped.
    let v = write_all(
        ch.clone(),
        with_lease(
            ns,
            "keep",
            tokio_stream::iter(vec![
                WriteContentRequest {
                    action: WriteAction::Stat as i32,
                    r#ref: "resumable".into(),
                    ..Default::default()
                },
                WriteContentRequest {
                    action: WriteAction::Commit as i32,
                    r#ref: "resumable".into(),
                    offset: half as i64,
                    total: layer.len() as i64,
                    expected: digest.clone(),
                    data: layer[half..].to_vec(),
                    ..Default::default()
                },
            ]),
        ),
    )
    .await;
    // The layer blob has the same bytes, so the commit finds it present.
    match v {
        Ok(v) => {
            assert_eq!(v[0].offset, half as i64, "Stat reports the offset");
            assert_eq!(v.last().expect("commit").digest, digest);
        }
        Err(e) => assert_eq!(e.code(), tonic::Code::AlreadyExists, "{e}"),
    }
    // The cut Apply's snapshot stays while its lease does; then GC takes it and its files.
    let mut snaps = SnapshotsClient::new(ch.clone());
    snaps
        .stat(req(
            ns,
            spb::StatSnapshotRequest {
                snapshotter: "overlayfs".into(),
                key: "extract-crash".into(),
            },
        ))
        .await
        .expect("leased snapshot kept");
    LeasesClient::new(ch.clone())
        .delete(req(
            ns,
            lpb::DeleteRequest {
                id: "apply".into(),
                sync: true,
            },
        ))
        .await
        .expect("delete lease");
    let e = snaps
        .stat(req(
            ns,
            spb::StatSnapshotRequest {
                snapshotter: "overlayfs".into(),
                key: "extract-crash".into(),
            },
        ))
        .await
        .expect_err("collected");
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(
        !upper_dir.parent().expect("snapshot dir").exists(),
        "partial layer files removed"
    );
}
