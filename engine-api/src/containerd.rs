//! The containerd v1 gRPC client: every call carries `containerd-namespace`, and errors become
//! `errdefs::Error` kinds. The rest of engine-api uses these methods and never sees a channel.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use proto::services::{containers, content, diff, images, leases, snapshots, tasks, version};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

pub use proto::types::{Descriptor, Mount};

/// containerd's WriteAction values.
const WRITE: i32 = 1;
const COMMIT: i32 = 2;
/// Chunk size of content writes (below gRPC's default 4 MiB message limit).
const CHUNK: usize = 1 << 20;

/// The containerd task status values (`containerd.v1.types.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Unknown,
    Created,
    Running,
    Stopped,
    Paused,
    Pausing,
}

impl From<i32> for TaskStatus {
    fn from(v: i32) -> Self {
        match v {
            1 => TaskStatus::Created,
            2 => TaskStatus::Running,
            3 => TaskStatus::Stopped,
            4 => TaskStatus::Paused,
            5 => TaskStatus::Pausing,
            _ => TaskStatus::Unknown,
        }
    }
}

/// A task as Tasks.Get reports it.
#[derive(Debug, Clone)]
pub struct TaskInfo {
    pub pid: u32,
    pub status: TaskStatus,
    pub exit_status: u32,
}

/// An exit as Tasks.Wait / Tasks.Delete report it.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    pub status: u32,
    pub exited_at: Option<prost_types::Timestamp>,
}

/// What a container needs at Containers.Create.
#[derive(Debug, Clone)]
pub struct NewContainer {
    pub id: String,
    pub image: String,
    pub labels: HashMap<String, String>,
    pub runtime_binary: String,
    pub runtime_root: String,
    pub spec_json: Vec<u8>,
    pub snapshotter: String,
}

/// Stdio of a new task or exec (FIFO paths; empty = none).
#[derive(Debug, Clone, Default)]
pub struct Stdio {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// A containerd connection (cheap to clone).
#[derive(Clone)]
pub struct Containerd {
    pub(crate) channel: Channel,
    namespace: String,
    pub address: PathBuf,
}

pub(crate) fn status_ctx(what: &'static str) -> impl Fn(Status) -> crate::error::ApiError {
    move |s| {
        tracing::debug!(call = what, code = ?s.code(), message = s.message(), "containerd call failed");
        crate::error::ApiError::from(s)
    }
}

type R<T> = Result<T, crate::error::ApiError>;

impl Containerd {
    /// A lazily connected client of the containerd socket at `address`.
    pub fn new(address: &Path, namespace: &str) -> R<Self> {
        let path = address.to_path_buf();
        let endpoint = Endpoint::try_from("http://[::1]:50051")
            .map_err(|e| crate::error::ApiError::internal(e.to_string()))?
            .connect_timeout(Duration::from_secs(5));
        let channel = endpoint.connect_with_connector_lazy(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                tokio::net::UnixStream::connect(path)
                    .await
                    .map(TokioIo::new)
            }
        }));
        Ok(Containerd {
            channel,
            namespace: namespace.to_string(),
            address: address.to_path_buf(),
        })
    }

    pub(crate) fn req<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        if let Ok(v) = self.namespace.parse() {
            r.metadata_mut().insert("containerd-namespace", v);
        }
        r
    }

    pub(crate) fn leased<T>(&self, msg: T, lease: &str) -> Request<T> {
        let mut r = self.req(msg);
        if let Ok(v) = lease.parse() {
            r.metadata_mut().insert("containerd-lease", v);
        }
        r
    }

    /// Version.Version.
    pub async fn version(&self) -> R<String> {
        let mut c = version::version_client::VersionClient::new(self.channel.clone());
        let v = c
            .version(self.req(()))
            .await
            .map_err(status_ctx("version"))?
            .into_inner();
        Ok(v.version)
    }

    // ---------- leases ----------

    /// Creates a lease that protects content and snapshots until [`Self::delete_lease`].
    pub async fn create_lease(&self) -> R<String> {
        let id = format!("engine-api-{}", hex::encode(rand::random::<[u8; 8]>()));
        let mut labels = HashMap::new();
        labels.insert(
            "containerd.io/gc.expire".to_string(),
            expire_in(Duration::from_secs(3600)),
        );
        let mut c = leases::leases_client::LeasesClient::new(self.channel.clone());
        c.create(self.req(leases::CreateRequest {
            id: id.clone(),
            labels,
        }))
        .await
        .map_err(status_ctx("leases.create"))?;
        Ok(id)
    }

    /// Creates lease `id` without expiry (an existing one is kept).
    pub async fn create_named_lease(&self, id: &str) -> R<()> {
        let mut c = leases::leases_client::LeasesClient::new(self.channel.clone());
        match c
            .create(self.req(leases::CreateRequest {
                id: id.to_string(),
                labels: HashMap::new(),
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(()),
            Err(s) => Err(status_ctx("leases.create")(s)),
        }
    }

    pub async fn delete_lease(&self, id: &str) -> R<()> {
        let mut c = leases::leases_client::LeasesClient::new(self.channel.clone());
        c.delete(self.req(leases::DeleteRequest {
            id: id.to_string(),
            sync: false,
        }))
        .await
        .map_err(status_ctx("leases.delete"))?;
        Ok(())
    }

    // ---------- content ----------

    /// Writes a blob with its expected digest; an existing blob is not an error.
    pub async fn write_blob(
        &self,
        lease: &str,
        digest: &str,
        data: bytes::Bytes,
        labels: HashMap<String, String>,
    ) -> R<()> {
        let total = data.len() as i64;
        let reference = format!("engine-api-{digest}");
        // Messages are made as the stream is polled: one chunk copied at a time.
        let chunks = data.len().div_ceil(CHUNK);
        let expected = digest.to_string();
        let msgs = (0..=chunks).map(move |i| {
            if i == chunks {
                return content::WriteContentRequest {
                    action: COMMIT,
                    r#ref: reference.clone(),
                    total,
                    expected: expected.clone(),
                    offset: total,
                    data: Vec::new(),
                    labels: labels.clone(),
                };
            }
            let (start, end) = (i * CHUNK, ((i + 1) * CHUNK).min(data.len()));
            content::WriteContentRequest {
                action: WRITE,
                r#ref: reference.clone(),
                total,
                expected: expected.clone(),
                offset: start as i64,
                data: data.slice(start..end).to_vec(),
                labels: HashMap::new(),
            }
        });
        let mut c = content::content_client::ContentClient::new(self.channel.clone());
        let stream = tokio_stream::iter(msgs);
        let resp = c.write(self.leased(stream, lease)).await;
        let mut inbound = match resp {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == tonic::Code::AlreadyExists => return Ok(()),
            Err(s) => return Err(status_ctx("content.write")(s)),
        };
        loop {
            match inbound.message().await {
                Ok(Some(_)) => {}
                Ok(None) => return Ok(()),
                Err(s) if s.code() == tonic::Code::AlreadyExists => return Ok(()),
                Err(s) => return Err(status_ctx("content.write")(s)),
            }
        }
    }

    /// Reads a whole blob.
    pub async fn read_blob(&self, digest: &str) -> R<Vec<u8>> {
        let mut c = content::content_client::ContentClient::new(self.channel.clone());
        let mut s = c
            .read(self.req(content::ReadContentRequest {
                digest: digest.to_string(),
                offset: 0,
                size: 0,
            }))
            .await
            .map_err(status_ctx("content.read"))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(m) = s.message().await.map_err(status_ctx("content.read"))? {
            out.extend_from_slice(&m.data);
        }
        Ok(out)
    }

    /// Sets labels on a blob (only the given label keys are touched).
    pub async fn label_blob(&self, digest: &str, labels: HashMap<String, String>) -> R<()> {
        let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
        let mut c = content::content_client::ContentClient::new(self.channel.clone());
        c.update(self.req(content::UpdateRequest {
            info: Some(content::Info {
                digest: digest.to_string(),
                labels,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths }),
        }))
        .await
        .map_err(status_ctx("content.update"))?;
        Ok(())
    }

    pub async fn delete_blob(&self, digest: &str) -> R<()> {
        let mut c = content::content_client::ContentClient::new(self.channel.clone());
        match c
            .delete(self.req(content::DeleteContentRequest {
                digest: digest.to_string(),
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(status_ctx("content.delete")(s)),
        }
    }

    // ---------- images ----------

    /// Creates or updates the image `name` → `target`.
    pub async fn put_image(&self, name: &str, target: Descriptor) -> R<()> {
        let image = images::Image {
            name: name.to_string(),
            target: Some(target),
            ..Default::default()
        };
        let mut c = images::images_client::ImagesClient::new(self.channel.clone());
        match c
            .create(self.req(images::CreateImageRequest {
                image: Some(image.clone()),
                ..Default::default()
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::AlreadyExists => {
                c.update(self.req(images::UpdateImageRequest {
                    image: Some(image),
                    ..Default::default()
                }))
                .await
                .map_err(status_ctx("images.update"))?;
                Ok(())
            }
            Err(s) => Err(status_ctx("images.create")(s)),
        }
    }

    /// Every image: (name, target, created seconds).
    pub async fn list_images(&self) -> R<Vec<(String, Descriptor, i64)>> {
        let mut c = images::images_client::ImagesClient::new(self.channel.clone());
        let resp = c
            .list(self.req(images::ListImagesRequest::default()))
            .await
            .map_err(status_ctx("images.list"))?
            .into_inner();
        Ok(resp
            .images
            .into_iter()
            .filter_map(|i| {
                let created = i.created_at.map(|t| t.seconds).unwrap_or(0);
                Some((i.name, i.target?, created))
            })
            .collect())
    }

    pub async fn delete_image(&self, name: &str) -> R<()> {
        let mut c = images::images_client::ImagesClient::new(self.channel.clone());
        c.delete(self.req(images::DeleteImageRequest {
            name: name.to_string(),
            ..Default::default()
        }))
        .await
        .map_err(status_ctx("images.delete"))?;
        Ok(())
    }

    // ---------- snapshots ----------

    fn snap(&self) -> snapshots::snapshots_client::SnapshotsClient<Channel> {
        snapshots::snapshots_client::SnapshotsClient::new(self.channel.clone())
    }

    /// Whether the snapshot `key` exists.
    pub async fn snapshot_exists(&self, snapshotter: &str, key: &str) -> R<bool> {
        match self
            .snap()
            .stat(self.req(snapshots::StatSnapshotRequest {
                snapshotter: snapshotter.to_string(),
                key: key.to_string(),
            }))
            .await
        {
            Ok(_) => Ok(true),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(false),
            Err(s) => Err(status_ctx("snapshots.stat")(s)),
        }
    }

    /// Prepares an active snapshot and returns its mounts.
    pub async fn prepare(
        &self,
        lease: Option<&str>,
        snapshotter: &str,
        key: &str,
        parent: &str,
    ) -> R<Vec<Mount>> {
        let msg = snapshots::PrepareSnapshotRequest {
            snapshotter: snapshotter.to_string(),
            key: key.to_string(),
            parent: parent.to_string(),
            labels: HashMap::new(),
        };
        let r = match lease {
            Some(l) => self.leased(msg, l),
            None => self.req(msg),
        };
        let resp = self
            .snap()
            .prepare(r)
            .await
            .map_err(status_ctx("snapshots.prepare"))?;
        Ok(resp.into_inner().mounts)
    }

    pub async fn mounts(&self, snapshotter: &str, key: &str) -> R<Vec<Mount>> {
        let resp = self
            .snap()
            .mounts(self.req(snapshots::MountsRequest {
                snapshotter: snapshotter.to_string(),
                key: key.to_string(),
            }))
            .await
            .map_err(status_ctx("snapshots.mounts"))?;
        Ok(resp.into_inner().mounts)
    }

    pub async fn commit(&self, lease: &str, snapshotter: &str, name: &str, key: &str) -> R<()> {
        self.snap()
            .commit(self.leased(
                snapshots::CommitSnapshotRequest {
                    snapshotter: snapshotter.to_string(),
                    name: name.to_string(),
                    key: key.to_string(),
                    labels: HashMap::new(),
                },
                lease,
            ))
            .await
            .map_err(status_ctx("snapshots.commit"))?;
        Ok(())
    }

    /// Removes a snapshot; a missing one is not an error.
    pub async fn remove_snapshot(&self, snapshotter: &str, key: &str) -> R<()> {
        match self
            .snap()
            .remove(self.req(snapshots::RemoveSnapshotRequest {
                snapshotter: snapshotter.to_string(),
                key: key.to_string(),
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(status_ctx("snapshots.remove")(s)),
        }
    }

    /// Disk usage of a snapshot in bytes.
    pub async fn snapshot_usage(&self, snapshotter: &str, key: &str) -> R<i64> {
        let resp = self
            .snap()
            .usage(self.req(snapshots::UsageRequest {
                snapshotter: snapshotter.to_string(),
                key: key.to_string(),
            }))
            .await
            .map_err(status_ctx("snapshots.usage"))?;
        Ok(resp.into_inner().size)
    }

    // ---------- diff ----------

    /// Applies a layer onto mounts.
    pub async fn apply(&self, lease: &str, layer: Descriptor, mounts: Vec<Mount>) -> R<()> {
        let mut c = diff::diff_client::DiffClient::new(self.channel.clone());
        c.apply(self.leased(
            diff::ApplyRequest {
                diff: Some(layer),
                mounts,
                ..Default::default()
            },
            lease,
        ))
        .await
        .map_err(status_ctx("diff.apply"))?;
        Ok(())
    }

    // ---------- containers ----------

    /// Containers.Create; an existing container with this id is replaced.
    pub async fn create_container(&self, n: NewContainer) -> R<()> {
        let options = proto::runc::Options {
            binary_name: n.runtime_binary.clone(),
            root: n.runtime_root.clone(),
            ..Default::default()
        };
        let c = containers::Container {
            id: n.id.clone(),
            labels: n.labels,
            image: n.image,
            runtime: Some(containers::container::Runtime {
                name: "io.containerd.runc.v2".to_string(),
                options: Some(prost_types::Any {
                    type_url: "containerd.runc.v1.Options".to_string(),
                    value: prost::Message::encode_to_vec(&options),
                }),
            }),
            spec: Some(prost_types::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".to_string(),
                value: n.spec_json,
            }),
            snapshotter: n.snapshotter,
            snapshot_key: n.id.clone(),
            ..Default::default()
        };
        let mut cl = containers::containers_client::ContainersClient::new(self.channel.clone());
        match cl
            .create(self.req(containers::CreateContainerRequest {
                container: Some(c.clone()),
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::AlreadyExists => {
                // Replace it in place (Update without a mask: labels, spec, image, snapshot
                // key). Deleting and re-creating would leave the snapshot unreferenced in
                // between, and a GC run in that window (containerd collects after deletions)
                // would take the container's writable layer with it.
                let updated = cl
                    .update(self.req(containers::UpdateContainerRequest {
                        container: Some(c.clone()),
                        update_mask: None,
                    }))
                    .await;
                if let Err(e) = updated {
                    // A peer that refuses the replacement (an immutable field changed).
                    tracing::debug!(error = %e, id = %n.id, "containers.update; re-creating");
                    self.delete_container(&n.id).await?;
                    cl.create(self.req(containers::CreateContainerRequest { container: Some(c) }))
                        .await
                        .map_err(status_ctx("containers.create"))?;
                }
                Ok(())
            }
            Err(s) => Err(status_ctx("containers.create")(s)),
        }
    }

    /// Containers.Delete; a missing container is not an error.
    pub async fn delete_container(&self, id: &str) -> R<()> {
        let mut c = containers::containers_client::ContainersClient::new(self.channel.clone());
        match c
            .delete(self.req(containers::DeleteContainerRequest { id: id.to_string() }))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(status_ctx("containers.delete")(s)),
        }
    }

    // ---------- tasks ----------

    fn tasks(&self) -> tasks::tasks_client::TasksClient<Channel> {
        tasks::tasks_client::TasksClient::new(self.channel.clone())
    }

    pub async fn create_task(&self, id: &str, rootfs: Vec<Mount>, io: &Stdio) -> R<u32> {
        let resp = self
            .tasks()
            .create(self.req(tasks::CreateTaskRequest {
                container_id: id.to_string(),
                rootfs,
                stdin: io.stdin.clone(),
                stdout: io.stdout.clone(),
                stderr: io.stderr.clone(),
                terminal: io.terminal,
                ..Default::default()
            }))
            .await
            .map_err(status_ctx("tasks.create"))?;
        Ok(resp.into_inner().pid)
    }

    pub async fn start_task(&self, id: &str, exec_id: &str) -> R<u32> {
        let resp = self
            .tasks()
            .start(self.req(tasks::StartRequest {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
            }))
            .await
            .map_err(status_ctx("tasks.start"))?;
        Ok(resp.into_inner().pid)
    }

    /// Tasks.Get; `None` when there is no task.
    pub async fn get_task(&self, id: &str) -> R<Option<TaskInfo>> {
        match self
            .tasks()
            .get(self.req(tasks::GetRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
            }))
            .await
        {
            Ok(r) => Ok(r.into_inner().process.map(|p| TaskInfo {
                pid: p.pid,
                status: TaskStatus::from(p.status),
                exit_status: p.exit_status,
            })),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(status_ctx("tasks.get")(s)),
        }
    }

    /// Tasks.Wait: blocks until the process exits. The raw status is returned so that the
    /// caller can tell a broken connection (retry) from an answer.
    pub async fn wait(&self, id: &str, exec_id: &str) -> Result<Exit, Status> {
        let r = self
            .tasks()
            .wait(self.req(tasks::WaitRequest {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
            }))
            .await?
            .into_inner();
        Ok(Exit {
            status: r.exit_status,
            exited_at: r.exited_at,
        })
    }

    pub async fn kill(&self, id: &str, exec_id: &str, signal: u32, all: bool) -> R<()> {
        self.tasks()
            .kill(self.req(tasks::KillRequest {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
                signal,
                all,
            }))
            .await
            .map_err(status_ctx("tasks.kill"))?;
        Ok(())
    }

    /// Tasks.Delete; `None` when there was no task.
    pub async fn delete_task(&self, id: &str) -> R<Option<Exit>> {
        match self
            .tasks()
            .delete(self.req(tasks::DeleteTaskRequest {
                container_id: id.to_string(),
            }))
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                Ok(Some(Exit {
                    status: r.exit_status,
                    exited_at: r.exited_at,
                }))
            }
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(status_ctx("tasks.delete")(s)),
        }
    }

    pub async fn exec(&self, id: &str, exec_id: &str, io: &Stdio, spec_json: Vec<u8>) -> R<()> {
        self.tasks()
            .exec(self.req(tasks::ExecProcessRequest {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
                stdin: io.stdin.clone(),
                stdout: io.stdout.clone(),
                stderr: io.stderr.clone(),
                terminal: io.terminal,
                spec: Some(prost_types::Any {
                    type_url:
                        "types.containerd.io/opencontainers/runtime-spec/1/Process".to_string(),
                    value: spec_json,
                }),
            }))
            .await
            .map_err(status_ctx("tasks.exec"))?;
        Ok(())
    }

    pub async fn delete_process(&self, id: &str, exec_id: &str) -> R<()> {
        match self
            .tasks()
            .delete_process(self.req(tasks::DeleteProcessRequest {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(status_ctx("tasks.delete_process")(s)),
        }
    }

    pub async fn resize(&self, id: &str, exec_id: &str, width: u32, height: u32) -> R<()> {
        self.tasks()
            .resize_pty(self.req(tasks::ResizePtyRequest {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
                width,
                height,
            }))
            .await
            .map_err(status_ctx("tasks.resize_pty"))?;
        Ok(())
    }

    pub async fn close_stdin(&self, id: &str, exec_id: &str) -> R<()> {
        self.tasks()
            .close_io(self.req(tasks::CloseIoRequest {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
                stdin: true,
            }))
            .await
            .map_err(status_ctx("tasks.close_io"))?;
        Ok(())
    }

    pub async fn pause(&self, id: &str) -> R<()> {
        self.tasks()
            .pause(self.req(tasks::PauseTaskRequest {
                container_id: id.to_string(),
            }))
            .await
            .map_err(status_ctx("tasks.pause"))?;
        Ok(())
    }

    pub async fn resume(&self, id: &str) -> R<()> {
        self.tasks()
            .resume(self.req(tasks::ResumeTaskRequest {
                container_id: id.to_string(),
            }))
            .await
            .map_err(status_ctx("tasks.resume"))?;
        Ok(())
    }

    /// Tasks.Update with new `linux.resources` (OCI JSON, as containerd's typeurl Any).
    pub async fn update_task(&self, id: &str, resources_json: Vec<u8>) -> R<()> {
        self.tasks()
            .update(
                self.req(tasks::UpdateTaskRequest {
                    container_id: id.to_string(),
                    resources: Some(prost_types::Any {
                        type_url:
                            "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
                                .to_string(),
                        value: resources_json,
                    }),
                    ..Default::default()
                }),
            )
            .await
            .map_err(status_ctx("tasks.update"))?;
        Ok(())
    }

    /// Host pids of the task's processes.
    pub async fn pids(&self, id: &str) -> R<Vec<u32>> {
        let r = self
            .tasks()
            .list_pids(self.req(tasks::ListPidsRequest {
                container_id: id.to_string(),
            }))
            .await
            .map_err(status_ctx("tasks.list_pids"))?;
        Ok(r.into_inner()
            .processes
            .into_iter()
            .map(|p| p.pid)
            .collect())
    }
}

/// `containerd.io/gc.expire` value: now + d in RFC 3339.
fn expire_in(d: Duration) -> String {
    let t = chrono::Utc::now() + chrono::Duration::from_std(d).unwrap_or_default();
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
