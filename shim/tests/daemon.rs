//! The shim binary end to end: `start` daemonizes, the Task API over its socket, events to a
//! fake containerd Events service, `delete` after the shim is gone.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use prost::Message;
use proto::shim::task_client::TaskClient;
use proto::shim::*;
use tonic::transport::{Channel, Endpoint, Uri};

const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-rs");

fn shim_cmd(fx: &Fixture, action: &str) -> Command {
    let mut cmd = Command::new(SHIM);
    cmd.args(["--namespace", &fx.namespace, "--id", &fx.id, "--address"])
        .arg(fx.root.join("containerd.sock"))
        .arg("--bundle")
        .arg(&fx.bundle)
        .arg("--runtime-root")
        .arg(&fx.runtime_root)
        .arg("--socket-dir")
        .arg(&fx.socket_dir)
        .arg("--debug")
        .arg(action)
        .current_dir(&fx.bundle);
    cmd
}

/// Runs `start` and returns (address, shim pid). The shim pid is recorded for cleanup.
fn start_shim(fx: &mut Fixture) -> (String, u32) {
    let out = shim_cmd(fx, "start")
        .stderr(Stdio::inherit())
        .output()
        .expect("run shim start");
    assert!(out.status.success(), "shim start failed: {out:?}");
    let address = String::from_utf8(out.stdout).expect("utf8 address");
    let pid: u32 = std::fs::read_to_string(fx.bundle.join("shim.pid"))
        .expect("shim.pid")
        .trim()
        .parse()
        .expect("pid");
    fx.pids.push(pid);
    (address, pid)
}

async fn connect(address: &str) -> TaskClient<Channel> {
    TaskClient::new(channel(address).await)
}

async fn channel(address: &str) -> Channel {
    let path = PathBuf::from(address.strip_prefix("unix://").expect("unix address"));
    Endpoint::from_static("http://shim")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                tokio::net::UnixStream::connect(path)
                    .await
                    .map(hyper_util::rt::TokioIo::new)
            }
        }))
        .await
        .expect("connect to shim")
}

fn create_request(fx: &Fixture, stdout: &Path, stderr: &Path) -> CreateTaskRequest {
    let opts = proto::runc::Options {
        binary_name: fx.runtime.clone(),
        ..Default::default()
    };
    CreateTaskRequest {
        id: fx.id.clone(),
        bundle: fx.bundle.display().to_string(),
        rootfs: vec![proto::types::Mount {
            r#type: "bind".into(),
            source: fx.image.display().to_string(),
            target: String::new(),
            options: vec!["rbind".into(), "rw".into()],
        }],
        terminal: false,
        stdin: String::new(),
        stdout: stdout.display().to_string(),
        stderr: stderr.display().to_string(),
        options: Some(prost_types::Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: opts.encode_to_vec(),
        }),
        ..Default::default()
    }
}

/// A fake containerd Events service recording (namespace, topic, type_url).
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<(String, String, String)>>>);

#[tonic::async_trait]
impl proto::services::events::events_server::Events for Events {
    async fn publish(
        &self,
        req: tonic::Request<proto::services::events::PublishRequest>,
    ) -> Result<tonic::Response<()>, tonic::Status> {
        let ns = req
            .metadata()
            .get("containerd-namespace")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let r = req.into_inner();
        let url = r.event.map(|e| e.type_url).unwrap_or_default();
        self.0.lock().unwrap().push((ns, r.topic, url));
        Ok(tonic::Response::new(()))
    }
    async fn forward(
        &self,
        _req: tonic::Request<proto::services::events::ForwardRequest>,
    ) -> Result<tonic::Response<()>, tonic::Status> {
        Ok(tonic::Response::new(()))
    }
    type SubscribeStream =
        tokio_stream::wrappers::ReceiverStream<Result<proto::types::Envelope, tonic::Status>>;
    async fn subscribe(
        &self,
        _req: tonic::Request<proto::services::events::SubscribeRequest>,
    ) -> Result<tonic::Response<Self::SubscribeStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("test"))
    }
}

fn serve_events(fx: &Fixture) -> Events {
    let events = Events::default();
    let listener = tokio::net::UnixListener::bind(fx.root.join("containerd.sock"))
        .expect("bind events socket");
    let svc = proto::services::events::events_server::EventsServer::new(events.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_create_wait_delete_over_grpc() {
    for runtime in runtimes() {
        let mut fx = Fixture::new(&runtime);
        fx.write_config(&["sh", "-c", "echo out; echo err >&2; exit 3"], false);
        let (out, err) = (fx.fifo("out"), fx.fifo("err"));
        let events = serve_events(&fx);
        let (address, shim_pid) = start_shim(&mut fx);

        // The contract: socket in the socket dir named by the hash, address and pid files.
        assert!(
            address.starts_with(&format!("unix://{}/", fx.socket_dir.display())),
            "{address}"
        );
        assert_eq!(
            std::fs::read_to_string(fx.bundle.join("address")).unwrap(),
            address
        );
        let parent = ppid(shim_pid).expect("shim alive");
        assert_ne!(
            parent,
            std::process::id(),
            "the shim is not a child of its caller"
        );

        let mut client = connect(&address).await;
        let pid = client
            .create(create_request(&fx, &out, &err))
            .await
            .expect("create")
            .into_inner()
            .pid;
        fx.pids.push(pid);
        assert_eq!(ppid(pid), Some(shim_pid), "the init's parent is the shim");
        let st = client
            .state(StateRequest {
                id: fx.id.clone(),
                exec_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (st.pid, st.status),
            (pid, proto::types::v1::Status::Created as i32)
        );

        let readers = {
            let (o, e) = (out.clone(), err.clone());
            tokio::task::spawn_blocking(move || {
                (
                    read_fifo(&o, Duration::from_secs(10)),
                    read_fifo(&e, Duration::from_secs(10)),
                )
            })
        };
        client
            .start(StartRequest {
                id: fx.id.clone(),
                exec_id: String::new(),
            })
            .await
            .expect("start");
        let wait = client
            .wait(WaitRequest {
                id: fx.id.clone(),
                exec_id: String::new(),
            })
            .await
            .expect("wait")
            .into_inner();
        assert_eq!(wait.exit_status, 3);
        let (o, e) = readers.await.unwrap();
        assert_eq!(String::from_utf8_lossy(&o), "out\n");
        assert_eq!(String::from_utf8_lossy(&e), "err\n");

        let del = client
            .delete(DeleteRequest {
                id: fx.id.clone(),
                exec_id: String::new(),
            })
            .await
            .expect("delete")
            .into_inner();
        assert_eq!((del.pid, del.exit_status), (pid, 3));
        assert!(!is_mounted(&fx.rootfs()));
        assert!(!alive(pid));

        client
            .shutdown(ShutdownRequest {
                id: fx.id.clone(),
                now: false,
            })
            .await
            .expect("shutdown");
        assert!(
            wait_until(Duration::from_secs(5), || !alive(shim_pid)),
            "shim exits after Shutdown"
        );
        assert!(
            !Path::new(address.trim_start_matches("unix://")).exists(),
            "socket removed"
        );

        let want = [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete",
        ];
        assert!(wait_until(Duration::from_secs(5), || events
            .0
            .lock()
            .unwrap()
            .len()
            >= want.len()));
        let got = events.0.lock().unwrap().clone();
        let topics: Vec<&str> = got.iter().map(|(_, t, _)| t.as_str()).collect();
        assert_eq!(topics, want);
        assert!(got.iter().all(|(ns, _, _)| ns == &fx.namespace));
        assert_eq!(got[2].2, "containerd.events.TaskExit");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shim_outlives_its_caller_and_cleans_up_on_kill() {
    let mut fx = Fixture::new("/usr/sbin/runc");
    fx.write_config(&["sleep", "100"], false);
    let (out, err) = (fx.root.join("out.log"), fx.root.join("err.log"));
    // The caller is a shell that runs `start` and exits.
    let line = format!("{:?} {}", SHIM, shim_args(&fx).join(" "));
    let status = Command::new("/bin/sh")
        .args(["-c", &line])
        .current_dir(&fx.bundle)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let shim_pid: u32 = std::fs::read_to_string(fx.bundle.join("shim.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    fx.pids.push(shim_pid);
    let address = std::fs::read_to_string(fx.bundle.join("address")).unwrap();

    let pid = {
        let mut client = connect(&address).await;
        let pid = client
            .create(create_request(&fx, &out, &err))
            .await
            .expect("create")
            .into_inner()
            .pid;
        fx.pids.push(pid);
        client
            .start(StartRequest {
                id: fx.id.clone(),
                exec_id: String::new(),
            })
            .await
            .expect("start");
        pid
    };
    // A new connection sees the same running task.
    let mut client = connect(&address).await;
    let st = client
        .state(StateRequest {
            id: fx.id.clone(),
            exec_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (st.pid, st.status),
        (pid, proto::types::v1::Status::Running as i32)
    );
    let conn = client
        .connect(ConnectRequest { id: fx.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((conn.shim_pid, conn.task_pid), (shim_pid, pid));
    let pids = client
        .pids(PidsRequest { id: fx.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(pids.processes.iter().any(|p| p.pid == pid));

    client
        .kill(KillRequest {
            id: fx.id.clone(),
            exec_id: String::new(),
            signal: 9,
            all: false,
        })
        .await
        .expect("kill");
    let wait = client
        .wait(WaitRequest {
            id: fx.id.clone(),
            exec_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(wait.exit_status, 137);
    let st = client
        .state(StateRequest {
            id: fx.id.clone(),
            exec_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (st.status, st.exit_status),
        (proto::types::v1::Status::Stopped as i32, 137)
    );
    client
        .delete(DeleteRequest {
            id: fx.id.clone(),
            exec_id: String::new(),
        })
        .await
        .expect("delete");
    assert!(!is_mounted(&fx.rootfs()));
    assert!(!alive(pid));
    let missing = client
        .state(StateRequest {
            id: fx.id.clone(),
            exec_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    client
        .shutdown(ShutdownRequest {
            id: fx.id.clone(),
            now: false,
        })
        .await
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || !alive(shim_pid)));
}

fn shim_args(fx: &Fixture) -> Vec<String> {
    vec![
        format!("--namespace {} --id {}", fx.namespace, fx.id),
        format!("--address {}", fx.root.join("containerd.sock").display()),
        format!(
            "--bundle {} --runtime-root {}",
            fx.bundle.display(),
            fx.runtime_root.display()
        ),
        format!("--socket-dir {} start", fx.socket_dir.display()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_after_shim_death() {
    let mut fx = Fixture::new("/usr/sbin/runc");
    fx.write_config(&["sleep", "100"], false);
    let (address, shim_pid) = start_shim(&mut fx);
    let mut client = connect(&address).await;
    let (out, err) = (fx.root.join("out.log"), fx.root.join("err.log"));
    let pid = client
        .create(create_request(&fx, &out, &err))
        .await
        .expect("create")
        .into_inner()
        .pid;
    fx.pids.push(pid);
    client
        .start(StartRequest {
            id: fx.id.clone(),
            exec_id: String::new(),
        })
        .await
        .expect("start");
    // SAFETY: kill(2) with integers only.
    unsafe { libc::kill(shim_pid as i32, libc::SIGKILL) };
    assert!(wait_until(Duration::from_secs(5), || !alive(shim_pid)));
    assert!(alive(pid), "the container survives its shim");

    let out = shim_cmd(&fx, "delete").output().expect("run shim delete");
    assert!(out.status.success(), "{out:?}");
    let resp = DeleteResponse::decode(out.stdout.as_slice()).expect("DeleteResponse on stdout");
    assert_eq!((resp.pid, resp.exit_status), (pid, 137));
    assert!(resp.exited_at.is_some());
    assert!(
        wait_until(Duration::from_secs(5), || !alive(pid)),
        "container killed"
    );
    assert!(!is_mounted(&fx.rootfs()));
}

/// The shim's own gRPC server answers bad calls with the codes a gRPC client expects, and a
/// call the client abandons leaves the connection usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_calls_get_grpc_codes_and_the_connection_survives() {
    let mut fx = Fixture::new("/usr/sbin/runc");
    fx.write_config(&["sleep", "100"], false);
    let (address, shim_pid) = start_shim(&mut fx);
    let mut client = connect(&address).await;
    let id = || fx.id.clone();

    let code = client
        .checkpoint(CheckpointTaskRequest {
            id: id(),
            ..Default::default()
        })
        .await
        .unwrap_err()
        .code();
    assert_eq!(code, tonic::Code::Unimplemented);
    let missing = client
        .state(StateRequest {
            id: "nope".into(),
            exec_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert!(missing.message().contains("nope"), "{missing:?}");
    let bad_exec = client
        .exec(ExecProcessRequest {
            id: id(),
            exec_id: "e1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_exec.code(), tonic::Code::InvalidArgument);
    assert_eq!(bad_exec.message(), "exec needs a process spec");
    // More than the 4 MiB a message may have.
    let big = client
        .update(UpdateTaskRequest {
            id: id(),
            resources: Some(prost_types::Any {
                type_url: "x".into(),
                value: vec![b' '; 5 << 20],
            }),
            annotations: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(big.code(), tonic::Code::ResourceExhausted, "{big:?}");

    // Methods and services the shim does not serve.
    let mut raw = tonic::client::Grpc::new(channel(&address).await);
    for path in [
        "/containerd.task.v2.Task/Nope",
        "/grpc.health.v1.Health/Check",
    ] {
        raw.ready().await.expect("ready");
        let err = raw
            .unary::<_, ConnectResponse, _>(
                tonic::Request::new(ConnectRequest { id: id() }),
                tonic::codegen::http::uri::PathAndQuery::from_static(path),
                tonic::codec::ProstCodec::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unimplemented, "{path}: {err:?}");
    }

    // A running task; a Wait the client gives up on; the same connection still serves.
    let (out, err) = (fx.root.join("out.log"), fx.root.join("err.log"));
    let pid = client
        .create(create_request(&fx, &out, &err))
        .await
        .expect("create")
        .into_inner()
        .pid;
    fx.pids.push(pid);
    client
        .start(StartRequest {
            id: id(),
            exec_id: String::new(),
        })
        .await
        .expect("start");
    let abandoned = tokio::time::timeout(
        Duration::from_millis(300),
        client.wait(WaitRequest {
            id: id(),
            exec_id: String::new(),
        }),
    )
    .await;
    assert!(abandoned.is_err(), "wait returned for a running task");
    let conn = client
        .connect(ConnectRequest { id: id() })
        .await
        .expect("connect after an abandoned wait")
        .into_inner();
    assert_eq!((conn.shim_pid, conn.task_pid), (shim_pid, pid));
    client
        .kill(KillRequest {
            id: id(),
            exec_id: String::new(),
            signal: 9,
            all: false,
        })
        .await
        .expect("kill");
    let wait = client
        .wait(WaitRequest {
            id: id(),
            exec_id: String::new(),
        })
        .await
        .expect("wait")
        .into_inner();
    assert_eq!(wait.exit_status, 137);
    client
        .delete(DeleteRequest {
            id: id(),
            exec_id: String::new(),
        })
        .await
        .expect("delete");
    client
        .shutdown(ShutdownRequest {
            id: id(),
            now: false,
        })
        .await
        .expect("shutdown");
    assert!(wait_until(Duration::from_secs(5), || !alive(shim_pid)));
}
