//! `containerd.task.v2.Task`: [`dispatch`] decodes a method's request, converts it to the domain
//! types of `task.rs`, runs it and encodes the reply. `server.rs` carries it over HTTP/2.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message;
use proto::shim::*;

use crate::mount::MountSpec;
use crate::process::{ProcessState, Status as ProcStatus};
use crate::rpc::{code, decode, frame, Status};
use crate::stdio::StdioPaths;
use crate::task::{CreateTask, RuntimeOptions, Shim, TaskError};

/// The Any type URL of `containerd.runc.v1.Options`.
const RUNC_OPTIONS: &str = "containerd.runc.v1.Options";
/// Shim API version reported by Connect.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs one method of `containerd.task.v2.Task` on its framed request message and returns the
/// framed reply.
pub(crate) async fn dispatch(shim: &Arc<Shim>, method: &str, msg: &[u8]) -> Result<Bytes, Status> {
    let s = Service(shim);
    match method {
        "State" => s.state(decode(msg)?).await.map(|r| frame(&r)),
        "Create" => s.create(decode(msg)?).await.map(|r| frame(&r)),
        "Start" => s.start(decode(msg)?).await.map(|r| frame(&r)),
        "Delete" => s.delete(decode(msg)?).await.map(|r| frame(&r)),
        "Pids" => s.pids(decode(msg)?).await.map(|r| frame(&r)),
        "Pause" => s.pause(decode(msg)?).await.map(|r| frame(&r)),
        "Resume" => s.resume(decode(msg)?).await.map(|r| frame(&r)),
        "Checkpoint" => Err(Status::new(
            code::UNIMPLEMENTED,
            "checkpoint is not supported by containerd-shim-rs",
        )),
        "Kill" => s.kill(decode(msg)?).await.map(|r| frame(&r)),
        "Exec" => s.exec(decode(msg)?).await.map(|r| frame(&r)),
        "ResizePty" => s.resize_pty(decode(msg)?).await.map(|r| frame(&r)),
        "CloseIO" => s.close_io(decode(msg)?).await.map(|r| frame(&r)),
        "Update" => s.update(decode(msg)?).await.map(|r| frame(&r)),
        "Wait" => s.wait(decode(msg)?).await.map(|r| frame(&r)),
        "Stats" => s.stats(decode(msg)?).await.map(|r| frame(&r)),
        "Connect" => s.connect(decode(msg)?).await.map(|r| frame(&r)),
        "Shutdown" => s.shutdown(decode(msg)?).await.map(|r| frame(&r)),
        _ => Err(Status::new(
            code::UNIMPLEMENTED,
            format!("unknown method containerd.task.v2.Task/{method}"),
        )),
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

/// The Task methods: each converts its request to the domain types of `task.rs` and back.
struct Service<'a>(&'a Arc<Shim>);

impl Service<'_> {
    async fn state(&self, r: StateRequest) -> Result<StateResponse, Status> {
        let (st, bundle) = self.0.state(&r.id, &r.exec_id).await.map_err(status)?;
        Ok(state_response(&r.id, &bundle.display().to_string(), st))
    }

    async fn create(&self, r: CreateTaskRequest) -> Result<CreateTaskResponse, Status> {
        if !r.checkpoint.is_empty() || !r.parent_checkpoint.is_empty() {
            return Err(Status::new(
                code::UNIMPLEMENTED,
                "checkpoint/restore is not supported",
            ));
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
        Ok(CreateTaskResponse { pid })
    }

    async fn start(&self, r: StartRequest) -> Result<StartResponse, Status> {
        let pid = self.0.start(&r.id, &r.exec_id).await.map_err(status)?;
        Ok(StartResponse { pid })
    }

    async fn delete(&self, r: DeleteRequest) -> Result<DeleteResponse, Status> {
        let st = self.0.delete(&r.id, &r.exec_id).await.map_err(status)?;
        let (exit_status, at) = st
            .exit
            .map(|e| (e.status, e.at))
            .unwrap_or((0, SystemTime::now()));
        Ok(DeleteResponse {
            pid: st.pid,
            exit_status,
            exited_at: Some(timestamp(at)),
        })
    }

    async fn pids(&self, r: PidsRequest) -> Result<PidsResponse, Status> {
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
        Ok(PidsResponse { processes })
    }

    async fn pause(&self, r: PauseRequest) -> Result<(), Status> {
        self.0.pause(&r.id).await.map_err(status)?;
        Ok(())
    }

    async fn resume(&self, r: ResumeRequest) -> Result<(), Status> {
        self.0.resume(&r.id).await.map_err(status)?;
        Ok(())
    }

    async fn kill(&self, r: KillRequest) -> Result<(), Status> {
        self.0
            .kill(&r.id, &r.exec_id, r.signal, r.all)
            .await
            .map_err(status)?;
        Ok(())
    }

    async fn exec(&self, r: ExecProcessRequest) -> Result<(), Status> {
        let spec = r.spec.map(|a| a.value).unwrap_or_default();
        if spec.is_empty() {
            return Err(Status::new(
                code::INVALID_ARGUMENT,
                "exec needs a process spec",
            ));
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
        Ok(())
    }

    async fn resize_pty(&self, r: ResizePtyRequest) -> Result<(), Status> {
        self.0
            .resize_pty(&r.id, &r.exec_id, r.width, r.height)
            .await
            .map_err(status)?;
        Ok(())
    }

    async fn close_io(&self, r: CloseIoRequest) -> Result<(), Status> {
        if r.stdin {
            self.0.close_io(&r.id, &r.exec_id).await.map_err(status)?;
        }
        Ok(())
    }

    async fn update(&self, r: UpdateTaskRequest) -> Result<(), Status> {
        let resources = r.resources.map(|a| a.value).unwrap_or_default();
        if resources.is_empty() {
            return Err(Status::new(
                code::INVALID_ARGUMENT,
                "update needs resources",
            ));
        }
        self.0.update(&r.id, &resources).await.map_err(status)?;
        Ok(())
    }

    async fn wait(&self, r: WaitRequest) -> Result<WaitResponse, Status> {
        let exit = self.0.wait(&r.id, &r.exec_id).await.map_err(status)?;
        Ok(WaitResponse {
            exit_status: exit.status,
            exited_at: Some(timestamp(exit.at)),
        })
    }

    async fn stats(&self, r: StatsRequest) -> Result<StatsResponse, Status> {
        let stats = self.0.stats(&r.id).await.map_err(status)?;
        Ok(StatsResponse {
            stats: Some(crate::metrics::any(&stats)),
        })
    }

    async fn connect(&self, r: ConnectRequest) -> Result<ConnectResponse, Status> {
        let (shim_pid, task_pid) = self.0.connect(&r.id).await.map_err(status)?;
        Ok(ConnectResponse {
            shim_pid,
            task_pid,
            version: VERSION.into(),
        })
    }

    async fn shutdown(&self, r: ShutdownRequest) -> Result<(), Status> {
        self.0.shutdown(r.now).await;
        Ok(())
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
