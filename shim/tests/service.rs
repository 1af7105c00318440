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
            assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }, 0);
            let reaper = Reaper::new();
            let r = reaper.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
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
    let cfg = ShimConfig { namespace: fx.namespace.clone(), id: fx.id.clone(), bundle: fx.bundle.clone(), runtime_root: fx.runtime_root.clone() };
    (Shim::new(cfg, reaper, events), rx)
}

fn create_req(fx: &Fixture, stdio: StdioPaths) -> CreateTask {
    CreateTask {
        id: fx.id.clone(),
        bundle: fx.bundle.display().to_string(),
        rootfs: vec![MountSpec { kind: "bind".into(), source: fx.image.display().to_string(), target: String::new(), options: vec!["rbind".into(), "rw".into()] }],
        stdio,
        options: Some(RuntimeOptions { binary_name: fx.runtime.clone(), ..Default::default() }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_to_exit_with_runc() {
    for runtime in runtimes() {
        let mut fx = Fixture::new(&runtime);
        fx.write_config(&["sh", "-c", "echo out; echo err >&2; exit 3"], false);
        let (out, err) = (fx.fifo("out"), fx.fifo("err"));
        let (shim, mut events) = shim(&fx);
        let stdio = StdioPaths { stdin: String::new(), stdout: out.display().to_string(), stderr: err.display().to_string(), terminal: false };
        let pid = shim.create(create_req(&fx, stdio)).await.expect("create");
        fx.pids.push(pid);
        assert!(is_mounted(&fx.rootfs()));
        assert_eq!(ppid(pid), Some(std::process::id()), "init is the shim's child");
        let (state, _) = shim.state(&fx.id, "").await.unwrap();
        assert_eq!(state.status, Status::Created);
        let readers = {
            let (o, e) = (out.clone(), err.clone());
            tokio::task::spawn_blocking(move || (read_fifo(&o, Duration::from_secs(10)), read_fifo(&e, Duration::from_secs(10))))
        };
        shim.start(&fx.id, "").await.expect("start");
        let exit = tokio::time::timeout(Duration::from_secs(10), shim.wait(&fx.id, "")).await.expect("wait in time").unwrap();
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
        assert_eq!(topics, ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_failure_reports_runtime_error() {
    let fx = Fixture::new("/usr/sbin/runc");
    fx.write_config(&["/no/such/binary"], false);
    let (shim, _events) = shim(&fx);
    let err = shim.create(create_req(&fx, StdioPaths::default())).await.err().expect("create must fail");
    let msg = err.to_string();
    assert!(msg.contains("/no/such/binary"), "{msg}");
    assert!(!is_mounted(&fx.rootfs()));
}
