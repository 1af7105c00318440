//! containerd.services.tasks.v1.Tasks: forwards to each task's shim (`containerd.task.v2.Task`).

use std::sync::Arc;

use proto::services::tasks::{self as pb, tasks_server::Tasks};
use proto::shim as sh;
use proto::types::v1::{Process, Status as PStatus};
use tonic::Request;

use super::{ok, Resp};
use crate::meta::ContainerRecord;
use crate::tasks::{client, Task};
use crate::util::namespace;
use crate::Daemon;

pub struct Service(pub Arc<Daemon>);

fn shim_err(s: tonic::Status) -> tonic::Status {
    errdefs::Error::from(s).into()
}

impl Service {
    /// The shim and its runtime options for a container: the runtime its name maps to (see
    /// [`crate::config`]), options from the request, else the container's, with empty fields
    /// filled from the configured defaults.
    fn runtime_for(
        &self,
        c: &ContainerRecord,
        req: Option<prost_types::Any>,
    ) -> Result<(std::path::PathBuf, prost_types::Any), errdefs::Error> {
        let rt = self.0.runtimes.resolve(&c.runtime_name)?;
        let any = req
            .filter(|a| !a.type_url.is_empty())
            .or_else(|| c.runtime_options.as_ref().map(|a| a.proto()));
        let mut opts = match &any {
            Some(a) if proto::any::is::<proto::runc::Options>(a) => {
                proto::any::unpack::<proto::runc::Options>(a).map_err(|e| {
                    errdefs::Error::invalid(format!("runtime options: {e}: invalid argument"))
                })?
            }
            Some(a) if !a.value.is_empty() => {
                return Err(errdefs::Error::invalid(format!(
                    "unsupported runtime options type {}: invalid argument",
                    a.type_url
                )))
            }
            _ => proto::runc::Options::default(),
        };
        if opts.binary_name.is_empty() {
            opts.binary_name = rt.options.binary_name.clone().unwrap_or_default();
        }
        if opts.root.is_empty() {
            opts.root = rt.options.root.clone().unwrap_or_default();
        }
        if !opts.systemd_cgroup {
            opts.systemd_cgroup = rt.options.systemd_cgroup.unwrap_or(false);
        }
        Ok((rt.shim, proto::any::pack(&opts)))
    }

    async fn state(&self, t: &Task, exec_id: &str) -> Result<Process, tonic::Status> {
        if let Some(d) = &t.dead {
            return Ok(Process {
                container_id: t.id.clone(),
                id: t.id.clone(),
                pid: d.pid,
                status: PStatus::Stopped as i32,
                exit_status: d.exit_status,
                exited_at: d.exited_at,
                ..Default::default()
            });
        }
        let s = match client(t)?
            .state(sh::StateRequest {
                id: t.id.clone(),
                exec_id: exec_id.to_string(),
            })
            .await
        {
            Ok(s) => s.into_inner(),
            Err(e) => match self.0.tasks.shim_gone(&t.namespace, &t.id).await? {
                Some(d) => {
                    let t = Task {
                        dead: Some(d),
                        client: None,
                        ..t.clone()
                    };
                    return Box::pin(self.state(&t, exec_id)).await;
                }
                None => return Err(shim_err(e)),
            },
        };
        Ok(Process {
            container_id: t.id.clone(),
            id: if exec_id.is_empty() {
                t.id.clone()
            } else {
                exec_id.to_string()
            },
            pid: s.pid,
            status: s.status,
            stdin: s.stdin,
            stdout: s.stdout,
            stderr: s.stderr,
            terminal: s.terminal,
            exit_status: s.exit_status,
            exited_at: s.exited_at,
        })
    }
}

#[tonic::async_trait]
impl Tasks for Service {
    async fn create(&self, req: Request<pb::CreateTaskRequest>) -> Resp<pb::CreateTaskResponse> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let id = r.container_id.clone();
        let c: ContainerRecord = self.0.meta.get(&format!("c/{ns}/{id}"))?.ok_or_else(|| {
            errdefs::Error::not_found(format!(
                "container \"{id}\" in namespace \"{ns}\": not found"
            ))
        })?;
        if r.checkpoint.is_some() {
            return Err(
                errdefs::Error::unimplemented("checkpoint restore is not supported").into(),
            );
        }
        let spec = c
            .spec
            .as_ref()
            .ok_or_else(|| errdefs::Error::invalid("container has no spec: invalid argument"))?;
        let (mut shim, options) = self.runtime_for(&c, r.options)?;
        if !r.runtime_path.is_empty() {
            // containerd 1.7: a client may name the shim binary itself.
            shim = std::path::PathBuf::from(&r.runtime_path);
        }
        let shim_req = sh::CreateTaskRequest {
            id: id.clone(),
            bundle: String::new(),
            rootfs: r.rootfs,
            terminal: r.terminal,
            stdin: r.stdin,
            stdout: r.stdout,
            stderr: r.stderr,
            checkpoint: String::new(),
            parent_checkpoint: String::new(),
            options: Some(options),
        };
        let (_, pid) = self
            .0
            .tasks
            .create(&ns, &id, &spec.value, &shim, shim_req)
            .await?;
        crate::monitor::watch(self.0.clone(), ns.clone(), id.clone());
        tracing::info!(namespace = %ns, id = %id, pid, "task created");
        ok(pb::CreateTaskResponse {
            container_id: id,
            pid,
        })
    }

    async fn start(&self, req: Request<pb::StartRequest>) -> Resp<pb::StartResponse> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let t = self.0.tasks.get(&ns, &r.container_id)?;
        let pid = client(&t)?
            .start(sh::StartRequest {
                id: r.container_id,
                exec_id: r.exec_id,
            })
            .await
            .map_err(shim_err)?
            .into_inner()
            .pid;
        ok(pb::StartResponse { pid })
    }

    async fn delete(&self, req: Request<pb::DeleteTaskRequest>) -> Resp<pb::DeleteResponse> {
        let ns = namespace(&req)?;
        let id = req.into_inner().container_id;
        let d = self.0.tasks.delete(&ns, &id).await?;
        ok(pb::DeleteResponse {
            id,
            pid: d.pid,
            exit_status: d.exit_status,
            exited_at: d.exited_at,
        })
    }

    async fn delete_process(
        &self,
        req: Request<pb::DeleteProcessRequest>,
    ) -> Resp<pb::DeleteResponse> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        if r.exec_id.is_empty() {
            return Err(errdefs::Error::invalid("exec_id is required: invalid argument").into());
        }
        let t = self.0.tasks.get(&ns, &r.container_id)?;
        let d = client(&t)?
            .delete(sh::DeleteRequest {
                id: r.container_id,
                exec_id: r.exec_id.clone(),
            })
            .await
            .map_err(shim_err)?
            .into_inner();
        ok(pb::DeleteResponse {
            id: r.exec_id,
            pid: d.pid,
            exit_status: d.exit_status,
            exited_at: d.exited_at,
        })
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Resp<pb::GetResponse> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let t = self.0.tasks.get(&ns, &r.container_id)?;
        let p = self.state(&t, &r.exec_id).await?;
        ok(pb::GetResponse { process: Some(p) })
    }

    async fn list(&self, req: Request<pb::ListTasksRequest>) -> Resp<pb::ListTasksResponse> {
        let ns = namespace(&req)?;
        let mut tasks = Vec::new();
        for t in self.0.tasks.list(&ns)? {
            if t.client.is_none() && t.dead.is_none() {
                continue;
            }
            match self.state(&t, "").await {
                Ok(p) => tasks.push(p),
                Err(e) => tracing::warn!(id = %t.id, error = %e, "task state"),
            }
        }
        ok(pb::ListTasksResponse { tasks })
    }

    async fn kill(&self, req: Request<pb::KillRequest>) -> Resp<()> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let t = self.0.tasks.get(&ns, &r.container_id)?;
        if t.dead.is_some() {
            return Err(errdefs::Error::not_found(format!(
                "process already finished: task {} not found",
                r.container_id
            ))
            .into());
        }
        client(&t)?
            .kill(sh::KillRequest {
                id: r.container_id,
                exec_id: r.exec_id,
                signal: r.signal,
                all: r.all,
            })
            .await
            .map_err(shim_err)?;
        ok(())
    }

    async fn exec(&self, req: Request<pb::ExecProcessRequest>) -> Resp<()> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        if r.exec_id.is_empty() {
            return Err(
                errdefs::Error::invalid("exec id cannot be empty: invalid argument").into(),
            );
        }
        let t = self.0.tasks.get(&ns, &r.container_id)?;
        client(&t)?
            .exec(sh::ExecProcessRequest {
                id: r.container_id,
                exec_id: r.exec_id,
                terminal: r.terminal,
                stdin: r.stdin,
                stdout: r.stdout,
                stderr: r.stderr,
                spec: r.spec,
            })
            .await
            .map_err(shim_err)?;
        ok(())
    }

    async fn resize_pty(&self, req: Request<pb::ResizePtyRequest>) -> Resp<()> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let t = self.0.tasks.get(&ns, &r.container_id)?;
        client(&t)?
            .resize_pty(sh::ResizePtyRequest {
                id: r.container_id,
                exec_id: r.exec_id,
                width: r.width,
                height: r.height,
            })
            .await
            .map_err(shim_err)?;
        ok(())
    }

    async fn close_io(&self, req: Request<pb::CloseIoRequest>) -> Resp<()> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let t = self.0.tasks.get(&ns, &r.container_id)?;
        client(&t)?
            .close_io(sh::CloseIoRequest {
                id: r.container_id,
                exec_id: r.exec_id,
                stdin: r.stdin,
            })
            .await
            .map_err(shim_err)?;
        ok(())
    }

    async fn pause(&self, req: Request<pb::PauseTaskRequest>) -> Resp<()> {
        let ns = namespace(&req)?;
        let id = req.into_inner().container_id;
        let t = self.0.tasks.get(&ns, &id)?;
        client(&t)?
            .pause(sh::PauseRequest { id })
            .await
            .map_err(shim_err)?;
        ok(())
    }

    async fn resume(&self, req: Request<pb::ResumeTaskRequest>) -> Resp<()> {
        let ns = namespace(&req)?;
        let id = req.into_inner().container_id;
        let t = self.0.tasks.get(&ns, &id)?;
        client(&t)?
            .resume(sh::ResumeRequest { id })
            .await
            .map_err(shim_err)?;
        ok(())
    }

    async fn list_pids(&self, req: Request<pb::ListPidsRequest>) -> Resp<pb::ListPidsResponse> {
        let ns = namespace(&req)?;
        let id = req.into_inner().container_id;
        let t = self.0.tasks.get(&ns, &id)?;
        let processes = client(&t)?
            .pids(sh::PidsRequest { id })
            .await
            .map_err(shim_err)?
            .into_inner()
            .processes;
        ok(pb::ListPidsResponse { processes })
    }

    async fn checkpoint(
        &self,
        _: Request<pb::CheckpointTaskRequest>,
    ) -> Resp<pb::CheckpointTaskResponse> {
        Err(errdefs::Error::unimplemented("checkpoint is not supported (no criu)").into())
    }

    async fn update(&self, req: Request<pb::UpdateTaskRequest>) -> Resp<()> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let t = self.0.tasks.get(&ns, &r.container_id)?;
        client(&t)?
            .update(sh::UpdateTaskRequest {
                id: r.container_id,
                resources: r.resources,
                annotations: r.annotations,
            })
            .await
            .map_err(shim_err)?;
        ok(())
    }

    async fn metrics(&self, req: Request<pb::MetricsRequest>) -> Resp<pb::MetricsResponse> {
        let ns = namespace(&req)?;
        let f = crate::filter::Filter::parse_all(&req.into_inner().filters)
            .map_err(errdefs::Error::from)?;
        struct Id<'a>(&'a str);
        impl crate::filter::Fields for Id<'_> {
            fn field(&self, path: &[String]) -> Option<String> {
                (path.len() == 1 && path[0] == "id").then(|| self.0.to_string())
            }
        }
        let mut metrics = Vec::new();
        for t in self.0.tasks.list(&ns)? {
            if !f.matches(&Id(&t.id)) {
                continue;
            }
            let Some(mut c) = t.client.clone() else {
                continue;
            };
            match c.stats(sh::StatsRequest { id: t.id.clone() }).await {
                Ok(s) => metrics.push(proto::types::Metric {
                    timestamp: Some(crate::util::Ts::now().proto()),
                    id: t.id.clone(),
                    data: s.into_inner().stats,
                }),
                Err(e) => tracing::debug!(id = %t.id, error = %e, "stats"),
            }
        }
        ok(pb::MetricsResponse { metrics })
    }

    async fn wait(&self, req: Request<pb::WaitRequest>) -> Resp<pb::WaitResponse> {
        let ns = namespace(&req)?;
        let r = req.into_inner();
        let t = self.0.tasks.get(&ns, &r.container_id)?;
        if let Some(d) = &t.dead {
            return ok(pb::WaitResponse {
                exit_status: d.exit_status,
                exited_at: d.exited_at,
            });
        }
        let waited = client(&t)?
            .wait(sh::WaitRequest {
                id: r.container_id.clone(),
                exec_id: r.exec_id.clone(),
            })
            .await;
        let w = match waited {
            Ok(w) => w.into_inner(),
            // The shim died: the init's exit is what its cleanup reported.
            Err(e) => match self.0.tasks.shim_gone(&ns, &r.container_id).await? {
                Some(d) if r.exec_id.is_empty() => {
                    return ok(pb::WaitResponse {
                        exit_status: d.exit_status,
                        exited_at: d.exited_at,
                    })
                }
                _ => return Err(shim_err(e)),
            },
        };
        ok(pb::WaitResponse {
            exit_status: w.exit_status,
            exited_at: w.exited_at,
        })
    }
}
