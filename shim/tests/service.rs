//! The task service driven in-process (this test binary is the subreaper), with real runc.
mod common;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::*;
use containerd_shim_rs::events::{Event, Publisher};
use containerd_shim_rs::mount::MountSpec;
use containerd_shim_rs::process::Status;
use containerd_shim_rs::reaper::Reaper;
use containerd_shim_rs::stdio::StdioPaths;
use containerd_shim_rs::task::{CreateTask, RuntimeOptions, Shim, ShimConfig};
use tokio::sync::mpsc::UnboundedReceiver;

/// One reaper for the whole test binary (a second `waitpid(-1)` loop would steal exits), on its
/// own thread and runtime so it outlives every test's runtime.
fn reaper() -> Arc<Reaper> {
    static REAPER: OnceLock<Arc<Reaper>> = OnceLock::new();
    REAPER
        .get_or_init(|| {
            // SAFETY: prctl with integer arguments.
            let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
            assert_eq!(rc, 0);
            let reaper = Reaper::new();
            let r = reaper.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let run = tokio::spawn(r.run());
                    tx.send(()).expect("signal ready");
                    let _ = run.await;
                });
            });
            rx.recv().expect("reaper thread started");
            reaper
        })
        .clone()
}

fn shim(fx: &Fixture) -> (Arc<Shim>, UnboundedReceiver<Event>) {
    let reaper = reaper();
    let (events, rx) = Publisher::channel();
    let cfg = ShimConfig {
        namespace: fx.namespace.clone(),
        id: fx.id.clone(),
        bundle: fx.bundle.clone(),
        runtime_root: fx.runtime_root.clone(),
    };
    (Shim::new(cfg, reaper, events), rx)
}

fn create_req(fx: &Fixture, stdio: StdioPaths) -> CreateTask {
    CreateTask {
        id: fx.id.clone(),
        bundle: fx.bundle.display().to_string(),
        rootfs: vec![MountSpec {
            kind: "bind".into(),
            source: fx.image.display().to_string(),
            target: String::new(),
            options: vec!["rbind".into(), "rw".into()],
        }],
        stdio,
        options: Some(RuntimeOptions {
            binary_name: fx.runtime.clone(),
            ..Default::default()
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_to_exit_with_runc() {
    for runtime in runtimes() {
        let mut fx = Fixture::new(&runtime);
        fx.write_config(&["sh", "-c", "echo out; echo err >&2; exit 3"], false);
        let (out, err) = (fx.fifo("out"), fx.fifo("err"));
        let (shim, mut events) = shim(&fx);
        let stdio = StdioPaths {
            stdin: String::new(),
            stdout: out.display().to_string(),
            stderr: err.display().to_string(),
            terminal: false,
        };
        let pid = shim.create(create_req(&fx, stdio)).await.expect("create");
        fx.pids.push(pid);
        assert!(is_mounted(&fx.rootfs()));
        assert_eq!(
            ppid(pid),
            Some(std::process::id()),
            "init is the shim's child"
        );
        let (state, _) = shim.state(&fx.id, "").await.unwrap();
        assert_eq!(state.status, Status::Created);
        let readers = {
            let (o, e) = (out.clone(), err.clone());
            tokio::task::spawn_blocking(move || {
                (
                    read_fifo(&o, Duration::from_secs(10)),
                    read_fifo(&e, Duration::from_secs(10)),
                )
            })
        };
        shim.start(&fx.id, "").await.expect("start");
        let exit = tokio::time::timeout(Duration::from_secs(10), shim.wait(&fx.id, ""))
            .await
            .expect("wait in time")
            .unwrap();
        assert_eq!(exit.status, 3);
        let (o, e) = readers.await.unwrap();
        assert_eq!(String::from_utf8_lossy(&o), "out\n");
        assert_eq!(String::from_utf8_lossy(&e), "err\n");
        let deleted = shim.delete(&fx.id, "").await.expect("delete");
        assert_eq!(deleted.exit.unwrap().status, 3);
        assert!(!is_mounted(&fx.rootfs()));
        assert!(!alive(pid));
        let mut topics = Vec::new();
        while let Ok(ev) = events.try_recv() {
            topics.push(ev.topic());
        }
        assert_eq!(
            topics,
            [
                "/tasks/create",
                "/tasks/start",
                "/tasks/exit",
                "/tasks/delete"
            ]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_failure_reports_runtime_error() {
    let fx = Fixture::new("/usr/sbin/runc");
    fx.write_config(&["/no/such/binary"], false);
    let (shim, _events) = shim(&fx);
    let err = shim
        .create(create_req(&fx, StdioPaths::default()))
        .await
        .expect_err("create must fail");
    let msg = err.to_string();
    assert!(msg.contains("/no/such/binary"), "{msg}");
    assert!(!is_mounted(&fx.rootfs()));
}

fn exec_spec(args: &[&str], terminal: bool) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "terminal": terminal,
        "user": {"uid": 0, "gid": 0},
        "args": args,
        "env": ["PATH=/bin"],
        "cwd": "/",
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_kill_pids_and_stdin() {
    for runtime in runtimes() {
        let mut fx = Fixture::new(&runtime);
        fx.write_config(&["cat"], false);
        let (stdin, out) = (fx.fifo("in"), fx.fifo("out"));
        let (shim, _events) = shim(&fx);
        let stdio = StdioPaths {
            stdin: stdin.display().to_string(),
            stdout: out.display().to_string(),
            stderr: String::new(),
            terminal: false,
        };
        let pid = shim.create(create_req(&fx, stdio)).await.expect("create");
        fx.pids.push(pid);
        shim.start(&fx.id, "").await.expect("start");
        let reader = {
            let o = out.clone();
            tokio::task::spawn_blocking(move || read_fifo(&o, Duration::from_secs(10)))
        };
        // The shim opened the stdin FIFO without blocking, so this open does not block; the
        // writer stays open so that only CloseIO ends cat's input.
        let mut writer = std::fs::OpenOptions::new()
            .write(true)
            .open(&stdin)
            .unwrap();
        std::io::Write::write_all(&mut writer, b"hello\n").unwrap();

        // An exec with its own stdout, and its exit status.
        let eout = fx.fifo("eout");
        let estdio = StdioPaths {
            stdout: eout.display().to_string(),
            ..Default::default()
        };
        shim.exec(
            &fx.id,
            "e1",
            estdio,
            exec_spec(&["sh", "-c", "echo exec-out; exit 5"], false),
        )
        .await
        .expect("exec");
        let ereader = {
            let o = eout.clone();
            tokio::task::spawn_blocking(move || read_fifo(&o, Duration::from_secs(10)))
        };
        let epid = shim.start(&fx.id, "e1").await.expect("start exec");
        let eexit = tokio::time::timeout(Duration::from_secs(10), shim.wait(&fx.id, "e1"))
            .await
            .expect("exec exits")
            .unwrap();
        assert_eq!((eexit.pid as u32, eexit.status), (epid, 5));
        assert_eq!(
            String::from_utf8_lossy(&ereader.await.unwrap()),
            "exec-out\n"
        );
        assert_eq!(
            shim.delete(&fx.id, "e1")
                .await
                .unwrap()
                .exit
                .unwrap()
                .status,
            5
        );
        assert!(
            shim.state(&fx.id, "e1").await.is_err(),
            "deleted exec is gone"
        );

        // A long-running exec shows up in Pids and dies with kill.
        shim.exec(
            &fx.id,
            "e2",
            StdioPaths::default(),
            exec_spec(&["sleep", "100"], false),
        )
        .await
        .unwrap();
        let e2 = shim.start(&fx.id, "e2").await.unwrap();
        fx.pids.push(e2);
        let pids: Vec<u32> = shim
            .pids(&fx.id)
            .await
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert!(
            pids.contains(&pid) && pids.contains(&e2),
            "{pids:?} has {pid} and {e2}"
        );
        assert!(
            shim.delete(&fx.id, "e2").await.is_err(),
            "running exec cannot be deleted"
        );
        shim.kill(&fx.id, "e2", 9, false).await.unwrap();
        assert_eq!(shim.wait(&fx.id, "e2").await.unwrap().status, 137);

        // CloseIO ends cat's input: it exits 0 after echoing what it read.
        shim.close_io(&fx.id, "").await.unwrap();
        let exit = tokio::time::timeout(Duration::from_secs(10), shim.wait(&fx.id, ""))
            .await
            .expect("init exits")
            .unwrap();
        assert_eq!(exit.status, 0);
        assert_eq!(String::from_utf8_lossy(&reader.await.unwrap()), "hello\n");
        drop(writer);
        assert!(matches!(
            shim.kill(&fx.id, "", 9, false).await,
            Err(containerd_shim_rs::task::TaskError::Finished)
        ));
        shim.delete(&fx.id, "").await.unwrap();
        assert!(!is_mounted(&fx.rootfs()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_resize_and_kill() {
    for runtime in runtimes() {
        let mut fx = Fixture::new(&runtime);
        fx.write_config(&["sh", "-c", "tty; stty size; sleep 100"], true);
        let out = fx.fifo("out");
        let (shim, _events) = shim(&fx);
        let stdio = StdioPaths {
            stdout: out.display().to_string(),
            terminal: true,
            ..Default::default()
        };
        let pid = shim
            .create(create_req(&fx, stdio))
            .await
            .expect("create with terminal");
        fx.pids.push(pid);
        shim.resize_pty(&fx.id, "", 100, 30).await.expect("resize");
        let reader = {
            let o = out.clone();
            tokio::task::spawn_blocking(move || read_fifo(&o, Duration::from_secs(3)))
        };
        shim.start(&fx.id, "").await.expect("start");
        let text = String::from_utf8_lossy(&reader.await.unwrap()).to_string();
        assert!(
            text.contains("/dev/pts/0") || text.contains("/dev/console"),
            "{text:?}"
        );
        assert!(text.contains("30 100"), "{text:?}");
        shim.kill(&fx.id, "", 9, false).await.unwrap();
        assert_eq!(shim.wait(&fx.id, "").await.unwrap().status, 137);
        shim.delete(&fx.id, "").await.unwrap();
        assert!(!alive(pid));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_kill_is_published() {
    let mut fx = Fixture::new("/usr/sbin/runc");
    let resources = serde_json::json!({
        "devices": [{"allow": false, "access": "rwm"}],
        "memory": {"limit": 16 * 1024 * 1024, "swap": 16 * 1024 * 1024}
    });
    fx.write_config_with(
        &[
            "sh",
            "-c",
            "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived",
        ],
        false,
        resources,
    );
    let (shim, mut events) = shim(&fx);
    let pid = shim
        .create(create_req(&fx, StdioPaths::default()))
        .await
        .expect("create");
    fx.pids.push(pid);
    shim.start(&fx.id, "").await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(20), shim.wait(&fx.id, ""))
        .await
        .expect("exits")
        .unwrap();
    assert_eq!(exit.status, 137, "killed by the OOM killer");
    shim.delete(&fx.id, "").await.unwrap();
    let mut topics = Vec::new();
    while let Ok(ev) = events.try_recv() {
        topics.push(ev.topic());
    }
    assert!(topics.contains(&"/tasks/oom"), "{topics:?}");
}
