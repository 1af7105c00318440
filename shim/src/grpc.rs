//! `containerd.task.v2.Task` over tonic: converts between protobuf and the domain types of
//! `task.rs`, and serves on the shim's unix socket.

use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use proto::shim::task_server::{Task, TaskServer};
use proto::shim::*;
use tonic::{Request, Response, Status};

use crate::mount::MountSpec;
use crate::process::{ProcessState, Status as ProcStatus};
use crate::stdio::StdioPaths;
use crate::task::{CreateTask, RuntimeOptions, Shim, TaskError};

/// The Any type URL of `containerd.runc.v1.Options`.
const RUNC_OPTIONS: &str = "containerd.runc.v1.Options";
/// Shim API version reported by Connect.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Serves until Shutdown; then waits up to [`crate::SHUTDOWN_GRACE`] for open requests.
pub(crate) async fn serve(shim: Arc<Shim>, listener: UnixListener) -> Result<(), errdefs::Error> {
    listener
        .set_nonblocking(true)
        .map_err(|e| errdefs::Error::internal(format!("listener: {e}")))?;
    let listener = tokio::net::UnixListener::from_std(listener)
        .map_err(|e| errdefs::Error::internal(format!("listener: {e}")))?;
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let stop = crate::shutdown_signal(&shim);
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .add_service(TaskServer::new(Service(shim)))
        .serve_with_incoming_shutdown(incoming, async move {
            stop.await;
            let _ = stopped_tx.send(());
        });
    let deadline = async move {
        let _ = stopped_rx.await;
        tokio::time::sleep(crate::SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        r = server => r.map_err(|e| errdefs::Error::internal(format!("serve: {e}"))),
        _ = deadline => Ok(()),
    }
}

/// The protobuf DeleteResponse that `delete` prints.
pub(crate) fn encode_delete_response(pid: u32, exit_status: u32, exited_at: SystemTime) -> Vec<u8> {
    DeleteResponse {
        pid,
        exit_status,
        exited_at: Some(timestamp(exited_at)),
    }
    .encode_to_vec()
}

pub(crate) fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    prost_types::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

fn status(e: TaskError) -> Status {
    tracing::debug!(cause = %e, "request failed");
    errdefs::Error::from(e).into()
}

fn proc_status(s: ProcStatus) -> i32 {
    use proto::types::v1::Status as S;
    (match s {
        ProcStatus::Created => S::Created,
        ProcStatus::Running => S::Running,
        ProcStatus::Stopped => S::Stopped,
        ProcStatus::Paused => S::Paused,
    }) as i32
}

fn decode_options(any: Option<&prost_types::Any>) -> Result<Option<RuntimeOptions>, TaskError> {
    let Some(any) = any else { return Ok(None) };
    if any.value.is_empty() {
        return Ok(None);
    }
    if !any.type_url.ends_with(RUNC_OPTIONS) {
        return Err(TaskError::Invalid(format!(
            "unsupported runtime options type {}",
            any.type_url
        )));
    }
    let o = proto::runc::Options::decode(any.value.as_slice())
        .map_err(|e| TaskError::Invalid(format!("decode runtime options: {e}")))?;
    Ok(Some(RuntimeOptions {
        binary_name: o.binary_name,
        root: o.root,
        systemd_cgroup: o.systemd_cgroup,
    }))
}

struct Service(Arc<Shim>);

#[tonic::async_trait]
impl Task for Service {
    async fn state(&self, req: Request<StateRequest>) -> Result<Response<StateResponse>, Status> {
        let r = req.into_inner();
        let (st, bundle) = self.0.state(&r.id, &r.exec_id).await.map_err(status)?;
        Ok(Response::new(state_response(
            &r.id,
            &bundle.display().to_string(),
            st,
        )))
    }

    async fn create(
        &self,
        req: Request<CreateTaskRequest>,
    ) -> Result<Response<CreateTaskResponse>, Status> {
        let r = req.into_inner();
        if !r.checkpoint.is_empty() || !r.parent_checkpoint.is_empty() {
            return Err(Status::unimplemented("checkpoint/restore is not supported"));
        }
        let options = decode_options(r.options.as_ref()).map_err(status)?;
        let create = CreateTask {
            id: r.id,
            bundle: r.bundle,
            rootfs: r
                .rootfs
                .into_iter()
                .map(|m| MountSpec {
                    kind: m.r#type,
                    source: m.source,
                    target: m.target,
                    options: m.options,
                })
                .collect(),
            stdio: StdioPaths {
                stdin: r.stdin,
                stdout: r.stdout,
                stderr: r.stderr,
                terminal: r.terminal,
            },
            options,
        };
        let pid = self.0.create(create).await.map_err(status)?;
        Ok(Response::new(CreateTaskResponse { pid }))
    }

    async fn start(&self, req: Request<StartRequest>) -> Result<Response<StartResponse>, Status> {
        let r = req.into_inner();
        let pid = self.0.start(&r.id, &r.exec_id).await.map_err(status)?;
        Ok(Response::new(StartResponse { pid }))
    }

    async fn delete(
        &self,
        req: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let r = req.into_inner();
        let st = self.0.delete(&r.id, &r.exec_id).await.map_err(status)?;
        let (exit_status, at) = st
            .exit
            .map(|e| (e.status, e.at))
            .unwrap_or((0, SystemTime::now()));
        Ok(Response::new(DeleteResponse {
            pid: st.pid,
            exit_status,
            exited_at: Some(timestamp(at)),
        }))
    }

    async fn pids(&self, req: Request<PidsRequest>) -> Result<Response<PidsResponse>, Status> {
        let r = req.into_inner();
        let pids = self.0.pids(&r.id).await.map_err(status)?;
        let processes = pids
            .into_iter()
            .map(|(pid, exec_id)| proto::types::v1::ProcessInfo {
                pid,
                info: (!exec_id.is_empty()).then(|| prost_types::Any {
                    type_url: "containerd.runc.v1.ProcessDetails".into(),
                    value: proto::runc::ProcessDetails { exec_id }.encode_to_vec(),
                }),
            })
            .collect();
        Ok(Response::new(PidsResponse { processes }))
    }

    async fn pause(&self, req: Request<PauseRequest>) -> Result<Response<()>, Status> {
        self.0.pause(&req.into_inner().id).await.map_err(status)?;
        Ok(Response::new(()))
    }

    async fn resume(&self, req: Request<ResumeRequest>) -> Result<Response<()>, Status> {
        self.0.resume(&req.into_inner().id).await.map_err(status)?;
        Ok(Response::new(()))
    }

    async fn checkpoint(
        &self,
        _req: Request<CheckpointTaskRequest>,
    ) -> Result<Response<()>, Status> {
        Err(Status::unimplemented(
            "checkpoint is not supported by containerd-shim-rs",
        ))
    }

    async fn kill(&self, req: Request<KillRequest>) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        self.0
            .kill(&r.id, &r.exec_id, r.signal, r.all)
            .await
            .map_err(status)?;
        Ok(Response::new(()))
    }

    async fn exec(&self, req: Request<ExecProcessRequest>) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        let spec = r.spec.map(|a| a.value).unwrap_or_default();
        if spec.is_empty() {
            return Err(Status::invalid_argument("exec needs a process spec"));
        }
        let stdio = StdioPaths {
            stdin: r.stdin,
            stdout: r.stdout,
            stderr: r.stderr,
            terminal: r.terminal,
        };
        self.0
            .exec(&r.id, &r.exec_id, stdio, spec)
            .await
            .map_err(status)?;
        Ok(Response::new(()))
    }

    async fn resize_pty(&self, req: Request<ResizePtyRequest>) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        self.0
            .resize_pty(&r.id, &r.exec_id, r.width, r.height)
            .await
            .map_err(status)?;
        Ok(Response::new(()))
    }

    async fn close_io(&self, req: Request<CloseIoRequest>) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        if r.stdin {
            self.0.close_io(&r.id, &r.exec_id).await.map_err(status)?;
        }
        Ok(Response::new(()))
    }

    async fn update(&self, req: Request<UpdateTaskRequest>) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        let resources = r.resources.map(|a| a.value).unwrap_or_default();
        if resources.is_empty() {
            return Err(Status::invalid_argument("update needs resources"));
        }
        self.0.update(&r.id, &resources).await.map_err(status)?;
        Ok(Response::new(()))
    }

    async fn wait(&self, req: Request<WaitRequest>) -> Result<Response<WaitResponse>, Status> {
        let r = req.into_inner();
        let exit = self.0.wait(&r.id, &r.exec_id).await.map_err(status)?;
        Ok(Response::new(WaitResponse {
            exit_status: exit.status,
            exited_at: Some(timestamp(exit.at)),
        }))
    }

    async fn stats(&self, req: Request<StatsRequest>) -> Result<Response<StatsResponse>, Status> {
        let r = req.into_inner();
        let stats = self.0.stats(&r.id).await.map_err(status)?;
        Ok(Response::new(StatsResponse {
            stats: Some(crate::metrics::any(&stats)),
        }))
    }

    async fn connect(
        &self,
        req: Request<ConnectRequest>,
    ) -> Result<Response<ConnectResponse>, Status> {
        let (shim_pid, task_pid) = self.0.connect(&req.into_inner().id).await.map_err(status)?;
        Ok(Response::new(ConnectResponse {
            shim_pid,
            task_pid,
            version: VERSION.into(),
        }))
    }

    async fn shutdown(&self, req: Request<ShutdownRequest>) -> Result<Response<()>, Status> {
        self.0.shutdown(req.into_inner().now).await;
        Ok(Response::new(()))
    }
}

fn state_response(id: &str, bundle: &str, st: ProcessState) -> StateResponse {
    StateResponse {
        id: id.to_string(),
        bundle: bundle.to_string(),
        pid: st.pid,
        status: proc_status(st.status),
        stdin: st.stdio.stdin,
        stdout: st.stdio.stdout,
        stderr: st.stdio.stderr,
        terminal: st.stdio.terminal,
        exit_status: st.exit.map(|e| e.status).unwrap_or(0),
        exited_at: st.exit.map(|e| timestamp(e.at)),
        exec_id: st.exec_id,
    }
}
